"""The label tree in the database: `load_taxonomy(conn, taxonomy)` and `read_taxonomy(conn)`.

`load_taxonomy(conn, taxonomy, *, allow_shrink=False, commit=True) -> int` upserts
every label (id, name, level, parent, file position) and deletes labels the new
tree no longer has, unless a paper label still uses them (then `StoreError`,
nothing changed). An empty tree, or one that would drop more than half of the
stored labels, is refused unless `allow_shrink`: a wrong file must not empty the store.
`read_taxonomy(conn) -> Taxonomy` returns the tree in file order.
"""

from __future__ import annotations

import psycopg2.extensions
from psycopg2.extras import execute_values

from petal_labeller.store.unit import StoreError, write_unit
from petal_labeller.taxonomy import Taxonomy, TaxonomyError

#: Dropping more than this share of the stored labels needs `allow_shrink`.
MAX_DROPPED_SHARE = 0.5


def load_taxonomy(
    conn: psycopg2.extensions.connection,
    taxonomy: Taxonomy,
    *,
    allow_shrink: bool = False,
    commit: bool = True,
) -> int:
    """Make the stored tree equal to `taxonomy`; return the number of labels."""
    if not len(taxonomy) and not allow_shrink:
        raise StoreError("the new taxonomy has no labels; refusing to empty the store")
    # Parents before children, so the self-referencing foreign key holds row by row.
    rows = sorted(
        (
            (label.id, label.name, label.level, label.parent, position)
            for position, label in enumerate(taxonomy)
        ),
        key=lambda row: row[2],
    )
    with write_unit(conn, commit), conn.cursor() as cur:
        cur.execute("SELECT id FROM taxonomy_labels WHERE NOT (id = ANY(%s))", (taxonomy.ids,))
        dropped = [row[0] for row in cur.fetchall()]
        _check_shrink(cur, len(dropped), len(taxonomy), allow_shrink)
        if dropped:
            cur.execute(
                "SELECT label_id, count(*) FROM paper_labels WHERE label_id = ANY(%s) "
                "GROUP BY label_id ORDER BY label_id",
                (dropped,),
            )
            in_use = cur.fetchall()
            if in_use:
                listed = ", ".join(f"{label} ({count} paper labels)" for label, count in in_use)
                raise StoreError(f"the new taxonomy drops labels still in use: {listed}")
        execute_values(
            cur,
            """INSERT INTO taxonomy_labels (id, name, level, parent, position) VALUES %s
               ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, level = EXCLUDED.level,
                   parent = EXCLUDED.parent, position = EXCLUDED.position""",
            rows,
        )
        if dropped:
            # Children first: a dropped parent may still be referenced by a dropped child.
            cur.execute(
                "DELETE FROM taxonomy_labels WHERE id = ANY(%s) AND level = 3;"
                "DELETE FROM taxonomy_labels WHERE id = ANY(%s) AND level = 2;"
                "DELETE FROM taxonomy_labels WHERE id = ANY(%s)",
                (dropped, dropped, dropped),
            )
    return len(rows)


def _check_shrink(cur, dropped: int, new: int, allow_shrink: bool) -> None:
    if allow_shrink or not dropped:
        return
    cur.execute("SELECT count(*) FROM taxonomy_labels")
    stored = cur.fetchone()[0]
    if dropped > MAX_DROPPED_SHARE * stored:
        raise StoreError(
            f"the new taxonomy ({new} labels) would drop {dropped} of the {stored} stored "
            "labels; refusing (load it with --allow-shrink if that is meant)"
        )


def read_taxonomy(conn: psycopg2.extensions.connection) -> Taxonomy:
    """The stored tree; `TaxonomyError` when none has been loaded."""
    with conn.cursor() as cur:
        cur.execute("SELECT id, name, level, parent FROM taxonomy_labels ORDER BY position, id")
        rows = cur.fetchall()
    if not rows:
        raise TaxonomyError("no taxonomy in the database: run `petal taxonomy load PATH` first")
    return Taxonomy.from_records(
        {"id": id_, "name": name, "level": level, "parent": parent}
        for id_, name, level, parent in rows
    )
