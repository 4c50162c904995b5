"""Review in Label Studio: the labelling config, the tasks, the REST client, the answers.

The project's form shows the paper (title, abstract, DOI link) and the whole
taxonomy as one `Taxonomy` tag (each choice's alias is the label id, so answers
carry ids, not names), with "Not biomimicry relevant" and "Not sure" beside it.
Each task carries the model's labels as a prediction, scored by the model's
confidence (1 - the queue's uncertainty), so the form opens pre-filled and
Label Studio can sort by it.

The client is plain `requests` (a dependency of the `airflow` extra already):
label-studio-sdk would move pinned packages (numpy down, pandas in). It speaks
the documented REST API: `Authorization: Token` for a legacy token, or a
personal access token (a JWT) traded for an access token at /api/token/refresh.
Every response is read bounded; the token is never part of a message.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from datetime import datetime
from html import escape
from typing import Any

from petal_labeller.papers import LineError, decode_line
from petal_labeller.review.answers import (
    Answer,
    AnswerError,
    instant_field,
    label_ids,
    shown_text,
    text_field,
)
from petal_labeller.review.errors import ReviewError
from petal_labeller.taxonomy import Taxonomy

#: The project a batch goes to when none is named (Variable or --project).
DEFAULT_PROJECT = "PeTaL review"
TAXONOMY = "labels"
VERDICT = "verdict"
TEXT = "abstract"
VERDICTS = {"irrelevant": "Not biomimicry relevant", "not_sure": "Not sure"}
#: Largest response read from Label Studio (an export of a big batch is a few MiB).
MAX_RESPONSE = 64 << 20
#: Tasks imported per request.
IMPORT_CHUNK = 500
#: Pages of 100 projects looked through for ours by title.
MAX_PROJECT_PAGES = 50
TIMEOUT_S = 60
MAX_ANNOTATIONS = 20  # per task: more is not a curator's work


class LabelStudioError(ReviewError):
    """Label Studio refused a request or answered what its API does not."""


# The form and the tasks ---------------------------------------------------------


def _tree(parent: ET.Element, taxonomy: Taxonomy, label_id: str | None) -> None:
    for child in taxonomy.children(label_id):
        # value is shown; alias is what an answer holds (ElementTree escapes both).
        node = ET.SubElement(parent, "Choice", value=taxonomy[child].name, alias=child)
        _tree(node, taxonomy, child)


def label_config(taxonomy: Taxonomy) -> str:
    """The project's labelling config: the paper, the whole tree, and the two verdicts."""
    view = ET.Element("View")
    ET.SubElement(view, "Header", value="$title")
    ET.SubElement(view, "HyperText", name="doi", value="$doi_link", inline="true")
    ET.SubElement(view, "Text", name=TEXT, value="$abstract")
    ET.SubElement(view, "Header", value="Model's labels: $model_labels", size="6")
    ET.SubElement(view, "Header", value="Labels (the whole tree; parents are implied)", size="5")
    tree = ET.SubElement(
        view, "Taxonomy", name=TAXONOMY, toName=TEXT, leafsOnly="false", showFullPath="true"
    )
    _tree(tree, taxonomy, None)
    ET.SubElement(view, "Header", value="Or", size="5")
    verdict = ET.SubElement(view, "Choices", name=VERDICT, toName=TEXT, choice="single")
    for alias, shown in VERDICTS.items():
        ET.SubElement(verdict, "Choice", value=shown, alias=alias)
    return ET.tostring(view, encoding="unicode")


def _path(taxonomy: Taxonomy, label: str) -> list[str]:
    return [*reversed(taxonomy.ancestors(label)), label]


def _deepest(taxonomy: Taxonomy, labels: list[str]) -> list[str]:
    """The labels with no chosen child: the paths that show the whole set in the tree."""
    chosen = set(labels)
    return [label for label in labels if not chosen.intersection(taxonomy.children(label))]


def task(record: Mapping[str, Any], taxonomy: Taxonomy) -> dict[str, Any]:
    """One paper of the queue (`review.queue` record) as a Label Studio task."""
    labels = [m["label"] for m in record["model_labels"]]
    doi = record.get("doi_url")
    link = (
        f'<a href="{escape(doi)}" target="_blank" rel="noopener">{escape(doi)}</a>' if doi else ""
    )
    return {
        "data": {
            "paper_id": record["paper_id"],
            "title": record["title"],
            "abstract": record.get("abstract") or "",
            "doi_link": link,
            "model_labels": "; ".join(
                f"{m['name']} ({m['score']:.2f})" for m in record["model_labels"]
            ),
            "model_version": record["model_version"],
        },
        "predictions": [
            {
                "model_version": record["model_version"],
                "score": round(1.0 - float(record["uncertainty"]), 4),
                "result": [
                    {
                        "from_name": TAXONOMY,
                        "to_name": TEXT,
                        "type": "taxonomy",
                        "value": {
                            "taxonomy": [
                                _path(taxonomy, label) for label in _deepest(taxonomy, labels)
                            ]
                        },
                    }
                ],
            }
        ],
    }


# Reading answers ----------------------------------------------------------------


def _who(task_id: str, annotation: Mapping, users: Mapping[int, str]) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, Mapping):
        who = who.get("email") or who.get("username") or who.get("id")
    if isinstance(who, int) and not isinstance(who, bool):
        who = users.get(who) or f"label-studio-user-{who}"
    return text_field(task_id, "completed_by", who)


def _result_value(task_id: str, item: Any) -> tuple[str, Any]:
    if not isinstance(item, Mapping):
        raise AnswerError(task_id, "result", "each result must be an object")
    name, value = item.get("from_name"), item.get("value")
    if not isinstance(value, Mapping):
        raise AnswerError(task_id, "result", f"result {str(name)[:40]!r} has no value object")
    return name, value


def _verdict(task_id: str, value: Mapping) -> str:
    choices = value.get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or choices[0] not in VERDICTS:
        raise AnswerError(task_id, VERDICT, f"must be one of {sorted(VERDICTS)}")
    return choices[0]


def _chosen(task_id: str, value: Mapping, taxonomy: Taxonomy) -> tuple[str, ...]:
    paths = value.get("taxonomy")
    if not isinstance(paths, list) or len(paths) > len(taxonomy):
        raise AnswerError(task_id, TAXONOMY, "must be a list of paths in the taxonomy")
    chosen = []
    for path in paths:
        if not isinstance(path, list) or not path or len(path) > 3:
            raise AnswerError(task_id, TAXONOMY, "each path must list 1 to 3 label ids")
        ids = label_ids(task_id, TAXONOMY, path, taxonomy)
        if list(ids) != _path(taxonomy, ids[-1]):
            raise AnswerError(task_id, TAXONOMY, f"{list(ids)} is not a path in the taxonomy")
        chosen.append(ids[-1])
    return tuple(dict.fromkeys(chosen))


def _answer(
    task_id: str, paper, annotation: Any, taxonomy: Taxonomy, users, now: datetime
) -> Answer | None:
    """The answer in one annotation; None for a cancelled (skipped) one."""
    if not isinstance(annotation, Mapping):
        raise AnswerError(task_id, "annotations", "each annotation must be an object")
    if annotation.get("was_cancelled") is True:
        return None
    result = annotation.get("result")
    if not isinstance(result, list) or len(result) > 10:
        raise AnswerError(task_id, "result", "must be a list of at most 10 results")
    verdict, chosen = None, ()
    for item in result:
        name, value = _result_value(task_id, item)
        if name == VERDICT:
            verdict = _verdict(task_id, value)
        elif name == TAXONOMY:
            chosen = _chosen(task_id, value, taxonomy)
        else:
            raise AnswerError(task_id, "result", f"unknown control {str(name)[:40]!r}")
    if verdict is None and not chosen:
        raise AnswerError(task_id, TAXONOMY, "is empty: pick labels, or a verdict")
    if verdict is not None and chosen:
        raise AnswerError(task_id, VERDICT, f"{verdict!r} with labels ticked: which is meant?")
    when = annotation.get("updated_at") or annotation.get("created_at")
    return Answer(
        task=task_id,
        verdict=verdict or "labels",
        labels=chosen,
        reviewer=_who(task_id, annotation, users),
        answered_at=instant_field(task_id, "updated_at", when, now),
        paper_id=paper,
        shown=shown_text(annotation),
    )


def read_answers(
    tasks: Any, taxonomy: Taxonomy, now: datetime, users: Mapping[int, str] | None = None
) -> Iterator[Answer | AnswerError]:
    """Every annotation of a Label Studio JSON export (a list of tasks)."""
    if not isinstance(tasks, list):
        raise LabelStudioError("the export is not a list of tasks")
    for item in tasks:
        if (
            not isinstance(item, Mapping)
            or isinstance(item.get("id"), bool)
            or not isinstance(item.get("id"), int)
        ):
            yield AnswerError(None, "id", "a task without an integer id", shown_text(item))
            continue
        task_id = str(item["id"])
        data = item.get("data")
        paper = data.get("paper_id") if isinstance(data, Mapping) else None
        if paper is not None and (isinstance(paper, bool) or not isinstance(paper, int)):
            yield AnswerError(task_id, "paper_id", "must be an integer", shown_text(data))
            continue
        annotations = item.get("annotations") or []
        if not isinstance(annotations, list) or len(annotations) > MAX_ANNOTATIONS:
            yield AnswerError(
                task_id, "annotations", f"must be a list of at most {MAX_ANNOTATIONS}"
            )
            continue
        for annotation in annotations:
            try:
                found = _answer(task_id, paper, annotation, taxonomy, users or {}, now)
            except AnswerError as error:
                error.shown = error.shown or shown_text(annotation)
                yield error
                continue
            if found is not None:
                yield found


# The REST client ----------------------------------------------------------------


class LabelStudio:
    """The few calls a review batch needs, on one `requests.Session`."""

    def __init__(self, url: str, token: str, *, timeout: float = TIMEOUT_S):
        import requests

        if not url.startswith(("http://", "https://")):
            raise LabelStudioError(f"Label Studio's URL must be http(s)://, not {url[:80]!r}")
        self.url, self.timeout = url.rstrip("/"), timeout
        self._session = requests.Session()
        self._session.headers["Authorization"] = self._authorization(token)

    def _authorization(self, token: str) -> str:
        if token.count(".") != 2:  # a legacy API token
            return f"Token {token}"
        # A personal access token is a refresh token: trade it for an access token.
        body = self._request("POST", "/api/token/refresh/", json={"refresh": token}, auth=False)
        if not isinstance(body, Mapping) or not isinstance(body.get("access"), str):
            raise LabelStudioError("Label Studio did not trade the token for an access token")
        return f"Bearer {body['access']}"

    def _request(self, method: str, path: str, *, auth: bool = True, **kwargs) -> Any:
        import requests

        headers = {} if auth else {"Authorization": ""}
        try:
            response = self._session.request(
                method,
                self.url + path,
                timeout=self.timeout,
                stream=True,
                headers=headers,
                **kwargs,
            )
        except requests.RequestException as exc:
            raise LabelStudioError(
                f"{method} {path}: Label Studio unreachable ({type(exc).__name__})"
            ) from None
        with response:
            body = bytearray()
            for chunk in response.iter_content(1 << 16):
                body += chunk
                if len(body) > MAX_RESPONSE:
                    raise LabelStudioError(f"{method} {path}: response over {MAX_RESPONSE} bytes")
            if response.status_code >= 400:
                detail = body[:300].decode("utf-8", "replace").replace("\n", " ")
                raise LabelStudioError(f"{method} {path}: HTTP {response.status_code}: {detail}")
        if not body:
            return None
        try:
            return decode_line(bytes(body))
        except LineError as exc:
            raise LabelStudioError(f"{method} {path}: the response is {exc}") from None

    def project(self, title: str, config: str) -> int:
        """The id of the project named `title`, created with `config` when there is none;
        an existing project gets `config` (the taxonomy may have changed)."""
        for item in self._projects(title):
            if (
                isinstance(item, Mapping)
                and item.get("title") == title
                and isinstance(item.get("id"), int)
            ):
                self._request("PATCH", f"/api/projects/{item['id']}", json={"label_config": config})
                return item["id"]
        created = self._request(
            "POST", "/api/projects", json={"title": title, "label_config": config}
        )
        if not isinstance(created, Mapping) or not isinstance(created.get("id"), int):
            raise LabelStudioError("Label Studio created a project without an id")
        return created["id"]

    def _projects(self, title: str) -> Iterator[Any]:
        """Every project the server lists for `title`, page by page (a server with many
        projects must not get ours twice), at most MAX_PROJECT_PAGES pages."""
        for page in range(1, MAX_PROJECT_PAGES + 1):
            found = self._request(
                "GET", "/api/projects", params={"title": title, "page": page, "page_size": 100}
            )
            items = found.get("results", []) if isinstance(found, Mapping) else found
            if not isinstance(items, list):
                return
            yield from items
            if not (isinstance(found, Mapping) and found.get("next")):
                return
        raise LabelStudioError(f"more than {MAX_PROJECT_PAGES * 100} projects listed")

    def import_tasks(self, project: int, tasks: list[dict]) -> list[int]:
        """Import the tasks; their Label Studio ids, in order."""
        ids: list[int] = []
        for start in range(0, len(tasks), IMPORT_CHUNK):
            chunk = tasks[start : start + IMPORT_CHUNK]
            body = self._request(
                "POST",
                f"/api/projects/{project}/import",
                params={"return_task_ids": "true"},
                json=chunk,
            )
            got = body.get("task_ids") if isinstance(body, Mapping) else None
            if (
                not isinstance(got, list)
                or len(got) != len(chunk)
                or not all(isinstance(i, int) for i in got)
            ):
                raise LabelStudioError(f"the import into project {project} returned no task ids")
            ids += got
        return ids

    def export(self, project: int, task_ids: list[int]) -> Any:
        """The annotated tasks among `task_ids`, as Label Studio's JSON export lists them."""
        found: list = []
        for start in range(0, len(task_ids), IMPORT_CHUNK):  # the ids go in the query string
            ids = [("ids[]", str(i)) for i in task_ids[start : start + IMPORT_CHUNK]]
            body = self._request(
                "GET", f"/api/projects/{project}/export", params=[("exportType", "JSON"), *ids]
            )
            if not isinstance(body, list):
                raise LabelStudioError(f"the export of project {project} is not a list of tasks")
            found += body
        return found

    def delete_tasks(self, task_ids: list[int]) -> None:
        for task_id in task_ids:
            self._request("DELETE", f"/api/tasks/{task_id}")

    def users(self) -> dict[int, str]:
        found = self._request("GET", "/api/users")
        items = found.get("results", found) if isinstance(found, Mapping) else found
        return (
            {
                u["id"]: u.get("email") or u.get("username")
                for u in items
                if isinstance(items, list)
                and isinstance(u, Mapping)
                and isinstance(u.get("id"), int)
            }
            if isinstance(items, list)
            else {}
        )
