"""The PeTaL function taxonomy: a three-level label tree.

Everything that reasons about label levels, parents or ancestors goes through
`Taxonomy`, so the store, the model and the pipeline agree on one tree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


class TaxonomyError(ValueError):
    """The taxonomy file or a label set does not fit the tree."""


@dataclass(frozen=True)
class Label:
    id: str
    name: str
    level: int
    parent: str | None


class Taxonomy:
    """An immutable label tree with O(1) lookups of level, parent and ancestors."""

    def __init__(self, labels: Iterable[Label]):
        self._labels: dict[str, Label] = {}
        for label in labels:
            if label.id in self._labels:
                raise TaxonomyError(f"label {label.id!r}: duplicate id")
            self._labels[label.id] = label
        for label in self._labels.values():
            self._check(label)
        self._ancestors = {label_id: self._walk_up(label_id) for label_id in self._labels}

    def _check(self, label: Label) -> None:
        if label.level not in (1, 2, 3):
            raise TaxonomyError(f"label {label.id!r}: field 'level' must be 1, 2 or 3")
        if label.level == 1:
            if label.parent is not None:
                raise TaxonomyError(f"label {label.id!r}: level-1 label has a parent")
            return
        parent = self._labels.get(label.parent or "")
        if parent is None:
            raise TaxonomyError(f"label {label.id!r}: field 'parent' {label.parent!r} is unknown")
        if parent.level != label.level - 1:
            raise TaxonomyError(
                f"label {label.id!r}: parent {parent.id!r} is level {parent.level}, "
                f"expected {label.level - 1}"
            )

    def _walk_up(self, label_id: str) -> tuple[str, ...]:
        chain: list[str] = []
        parent = self._labels[label_id].parent
        while parent is not None:
            chain.append(parent)
            parent = self._labels[parent].parent
        return tuple(chain)

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, object]]) -> Taxonomy:
        labels = []
        for index, record in enumerate(records):
            try:
                labels.append(
                    Label(
                        id=str(record["id"]),
                        name=str(record["name"]),
                        level=int(record["level"]),  # type: ignore[arg-type]
                        parent=None if record.get("parent") is None else str(record["parent"]),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise TaxonomyError(f"taxonomy record {index}: {exc!r}") from exc
        return cls(labels)

    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        """Read `taxonomy.json`: a list of {id, name, level, parent}."""
        try:
            records = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # JSON, UTF-8, over-long integers
            raise TaxonomyError(f"{path}: cannot read taxonomy: {exc}") from exc
        except RecursionError:
            raise TaxonomyError(f"{path}: cannot read taxonomy: nested too deeply") from None
        if not isinstance(records, list):
            raise TaxonomyError(f"{path}: expected a JSON list of labels")
        return cls.from_records(records)

    def to_records(self) -> list[dict[str, object]]:
        return [
            {"id": label.id, "name": label.name, "level": label.level, "parent": label.parent}
            for label in self._labels.values()
        ]

    # Lookups -----------------------------------------------------------------
    @property
    def ids(self) -> list[str]:
        """Label ids in file order; models use this order for their outputs."""
        return list(self._labels)

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, label_id: object) -> bool:
        return label_id in self._labels

    def __iter__(self):
        return iter(self._labels.values())

    def __getitem__(self, label_id: str) -> Label:
        try:
            return self._labels[label_id]
        except KeyError:
            raise TaxonomyError(f"unknown label id {label_id!r}") from None

    def level(self, label_id: str) -> int:
        return self[label_id].level

    def parent(self, label_id: str) -> str | None:
        return self[label_id].parent

    def ancestors(self, label_id: str) -> tuple[str, ...]:
        """Parent first, root last."""
        self[label_id]
        return self._ancestors[label_id]

    def children(self, label_id: str | None) -> list[str]:
        """Direct children; `None` gives the level-1 labels."""
        return [label.id for label in self._labels.values() if label.parent == label_id]

    def unknown(self, label_ids: Iterable[str]) -> list[str]:
        return [label_id for label_id in label_ids if label_id not in self._labels]

    # Consistency -------------------------------------------------------------
    def close_upwards(self, label_ids: Iterable[str]) -> list[str]:
        """Add every ancestor, so a level-3 label implies its level-2 and level-1 parents.

        Returns the closed set in taxonomy order.
        """
        closed: set[str] = set()
        for label_id in label_ids:
            closed.add(label_id)
            closed.update(self.ancestors(label_id))
        return [label_id for label_id in self._labels if label_id in closed]

    def is_consistent(self, label_ids: Iterable[str]) -> bool:
        chosen = set(label_ids)
        return all(set(self.ancestors(label_id)) <= chosen for label_id in chosen)

    def cap_scores(self, scores: Mapping[str, float]) -> dict[str, float]:
        """Cap each score at its parent's, so no label outranks its ancestor."""
        capped: dict[str, float] = {}
        for label in sorted(self._labels.values(), key=lambda item: item.level):
            score = float(scores[label.id])
            if label.parent is not None:
                score = min(score, capped[label.parent])
            capped[label.id] = score
        return {label_id: capped[label_id] for label_id in self._labels}
