"""Every SQL statement is parameterised: hostile strings in every user-controlled field go
through import, labelling and export verbatim, and no query is built from data."""

from __future__ import annotations

import ast
from contextlib import closing
from pathlib import Path

from petal_labeller.pipeline.validate import CheckedOutput
from petal_labeller.pipeline.write import RunRecord, write_labels
from petal_labeller.store.connection import connect
from petal_labeller.store.labels import export_papers, model_labels
from petal_labeller.store.models import register_model_version
from petal_labeller.store.papers import import_papers
from petal_labeller.store.runs import get_run
from tests.fixtures.airflow import REPO_ROOT
from tests.reliability.conftest import jsonl, query, taxonomy

HOSTILE = [
    "Robert'); DROP TABLE papers; --",
    "x' OR '1'='1",
    "%s %(version)s %% {0} {version}",
    "back\\slash \\N \\. tab\there",
    "$$; DELETE FROM paper_labels; $$",
    "E'\\x27' || chr(39) || '",
    '"; TRUNCATE labelling_runs CASCADE; --',
    "new\nline and carriage\rreturn",
]


def test_hostile_strings_are_stored_and_read_back_verbatim(seeded_url, tmp_path):
    url = seeded_url
    records = [
        {"doi": f"10.6666/inj.{n}", "title": text, "abstract": text, "venue": [text], "url": text}
        for n, text in enumerate(HOSTILE)
    ]
    # A version name is a folder and key name, so it has a strict alphabet (versions.py,
    # tests/test_versions.py); every free-text field takes the hostile strings.
    version, run_id = "v-hostile", HOSTILE[3] + " run"
    with closing(connect(url)) as conn:
        report = import_papers(conn, jsonl(tmp_path / "p.jsonl", records), taxonomy())
        assert report.inserted == len(HOSTILE), report.rejections
        register_model_version(conn, version, base_model=HOSTILE[2], artefact_uri=HOSTILE[4])
    ids = [row[0] for row in query(url, "SELECT id FROM papers ORDER BY id")]
    label = taxonomy().ids[0]
    checked = CheckedOutput(rows=[(i, label, 0.5) for i in ids], labelled=ids)

    write_labels(RunRecord(run_id, version, database_url=url), checked, papers_selected=len(ids))

    with closing(connect(url)) as conn:
        exported = list(export_papers(conn))
        assert [(p["title"], p["abstract"], p["venue"], p["url"]) for p in exported] == [
            (t.strip(), t.strip(), [t.strip()], t.strip()) for t in HOSTILE
        ]
        assert {row[3:] for row in model_labels(conn, version)} == {(version, run_id)}
        assert get_run(conn, run_id).status == "success"
    assert len(query(url, "SELECT * FROM labelling_runs")) == 1
    assert query(url, "SELECT count(*) FROM taxonomy_labels") == [(len(taxonomy()),)]


# Static check: the SQL text of every call is a literal, or an f-string over named constants.
SQL_CALLS = {"execute": 0, "executemany": 0, "copy_expert": 0, "mogrify": 0, "execute_values": 1}
#: Names an f-string may splice into SQL: generated identifiers and constant fragments.
SQL_FRAGMENTS = {
    "incoming", "batch", "same", "marks", "chosen", "_COLUMNS", "IDENTITY_SQL", "HOLDER", "where",
}  # fmt: skip


def _sql_argument(call: ast.Call) -> ast.expr | None:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in SQL_CALLS:
        return None
    index = SQL_CALLS[name]
    return call.args[index] if len(call.args) > index else None


def _problems(path: Path) -> list[str]:
    problems = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        sql = _sql_argument(node) if isinstance(node, ast.Call) else None
        where = f"{path.relative_to(REPO_ROOT)}:{getattr(node, 'lineno', '?')}"
        if isinstance(sql, ast.BinOp) and isinstance(sql.op, ast.Mod):
            problems.append(f"{where}: SQL built with % formatting")
        elif (
            isinstance(sql, ast.Call)
            and getattr(sql.func, "attr", "") == "format"
            and not _is_sql_composition(sql)
        ):
            problems.append(f"{where}: SQL built with str.format")
        elif isinstance(sql, ast.JoinedStr):
            for part in sql.values:
                if isinstance(part, ast.FormattedValue) and not (
                    isinstance(part.value, ast.Name) and part.value.id in SQL_FRAGMENTS
                ):
                    problems.append(f"{where}: f-string splices {ast.unparse(part.value)!r}")
    return problems


def _is_sql_composition(call: ast.Call) -> bool:
    """`sql.SQL("...").format(sql.Identifier(...))`: psycopg2's quoting composition, not str."""
    template = call.func.value if isinstance(call.func, ast.Attribute) else None
    return (
        isinstance(template, ast.Call)
        and ast.unparse(template.func) in {"sql.SQL", "psycopg2.sql.SQL"}
        and all(
            isinstance(arg, ast.Call)
            and ast.unparse(arg.func) in {"sql.Identifier", "psycopg2.sql.Identifier"}
            for arg in call.args
        )
    )


def test_no_sql_is_built_from_values():
    files = [
        p
        for folder in ("petal_labeller", "dags", "plugins")  # product code; tests name databases
        for p in (REPO_ROOT / folder).rglob("*.py")
    ]
    problems = [problem for path in files for problem in _problems(path)]
    assert problems == [], "\n".join(problems)


def test_models_where_clauses_are_literals():
    """`store.models._fetch(cur, where, ...)` is only ever given literal SQL."""
    tree = ast.parse((REPO_ROOT / "petal_labeller/store/models.py").read_text(encoding="utf-8"))
    calls = [
        n for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "_fetch"
    ]  # fmt: skip
    assert calls
    for call in calls:
        assert isinstance(call.args[1], ast.Constant), ast.unparse(call)
