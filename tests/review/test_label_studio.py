"""Label Studio: the form from the taxonomy, tasks with predictions, answers read back.

The export in data/label_studio_export.json was recorded from Label Studio 1.23.2
(`label_studio` fixture); the tests marked slow run against such a server itself.
"""

from __future__ import annotations

import copy
import http.server
import json
import threading
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from petal_labeller.review.answers import Answer, AnswerError
from petal_labeller.review.label_studio import (
    LabelStudio,
    LabelStudioError,
    label_config,
    read_answers,
    task,
)
from petal_labeller.review.publish import collect_label_studio, publish_label_studio
from petal_labeller.review.selection import select_papers
from petal_labeller.taxonomy import Label, Taxonomy
from tests.review.conftest import TREE, curator_labels

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
EXPORT = json.loads((Path(__file__).parent / "data" / "label_studio_export.json").read_text())
USERS = {1: "curator@example.com"}


def _record(**fields) -> dict:
    record = {
        "paper_id": 5, "title": "Heat", "abstract": "An abstract.", "model_version": "v1",
        "doi_url": "https://doi.org/10.5555/torn", "uncertainty": 0.467,
        "model_labels": [
            {"label": "protect", "name": "Protect from harm", "score": 0.5},
            {"label": "heat", "name": "Protect from temperature", "score": 0.3},
        ],
    }  # fmt: skip
    return {**record, **fields}


def test_the_form_holds_the_whole_tree_with_ids_as_aliases_and_the_two_verdicts():
    view = ET.fromstring(label_config(TREE))
    tree = view.find("Taxonomy")
    assert tree.get("name") == "labels" and tree.get("toName") == "abstract"
    top = {c.get("alias"): [g.get("alias") for g in c] for c in tree}
    assert top == {"protect": ["heat", "cold"], "move": ["swim"]}
    assert tree.find("Choice[@alias='protect']/Choice[@alias='heat']").get("value") == (
        "Protect from temperature"
    )
    verdict = view.find("Choices[@name='verdict']")
    assert [(c.get("alias"), c.get("value")) for c in verdict] == [
        ("irrelevant", "Not biomimicry relevant"), ("not_sure", "Not sure"),
    ]  # fmt: skip
    assert {e.get("value") for e in view.iter("Header")} >= {"$title"}
    assert view.find("Text").get("value") == "$abstract"


def test_label_names_with_markup_stay_text_in_the_form():
    tree = Taxonomy([Label("x", 'Heat "<script>alert(1)</script>" & cold', 1, None)])
    config = label_config(tree)
    assert "<script>" not in config
    assert ET.fromstring(config).find("Taxonomy/Choice").get("value") == (
        'Heat "<script>alert(1)</script>" & cold'
    )


def test_a_task_carries_the_paper_and_the_models_labels_as_a_scored_prediction():
    made = task(_record(title="<b>Heat</b>", doi_url='https://doi.org/10.1/"><script>'), TREE)
    assert made["data"]["title"] == "<b>Heat</b>"  # Label Studio shows it as text
    assert "<script>" not in made["data"]["doi_link"]  # HyperText: escaped by us
    assert made["data"]["doi_link"].startswith(
        '<a href="https://doi.org/10.1/&quot;&gt;&lt;script&gt;"'
    )
    (prediction,) = made["predictions"]
    assert prediction["score"] == 0.533 and prediction["model_version"] == "v1"
    (result,) = prediction["result"]
    assert result["value"] == {"taxonomy": [["protect", "heat"]]}  # the deepest paths only


def test_the_recorded_export_reads_as_one_answer_with_who_and_when():
    (answer,) = read_answers(EXPORT, TREE, NOW, USERS)
    assert answer == Answer(
        task="1", verdict="labels", labels=("cold",), reviewer="curator@example.com",
        answered_at=datetime(2026, 12, 2, 14, 43, 3, 863624, tzinfo=UTC), paper_id=5,
        shown=answer.shown,
    )  # fmt: skip
    # A user Label Studio does not list is named by its id, never left anonymous.
    (unknown,) = read_answers(EXPORT, TREE, NOW, {})
    assert unknown.reviewer == "label-studio-user-1"


def _export_with(**annotation) -> list:
    export = copy.deepcopy(EXPORT)
    export[0]["annotations"][0].update(annotation)
    return export


def _verdict(value):
    return [{"from_name": "verdict", "to_name": "abstract", "type": "choices", "value": value}]


def _labels(*paths):
    value = {"taxonomy": [list(p) for p in paths]}
    return [{"from_name": "labels", "to_name": "abstract", "type": "taxonomy", "value": value}]


def test_verdicts_and_skipped_annotations():
    (irrelevant,) = read_answers(
        _export_with(result=_verdict({"choices": ["irrelevant"]})), TREE, NOW, USERS
    )
    assert (irrelevant.verdict, irrelevant.labels) == ("irrelevant", ())
    (unsure,) = read_answers(
        _export_with(result=_verdict({"choices": ["not_sure"]})), TREE, NOW, USERS
    )
    assert unsure.verdict == "not_sure"
    assert list(read_answers(_export_with(was_cancelled=True), TREE, NOW, USERS)) == []


@pytest.mark.parametrize(
    ("annotation", "field", "reason"),
    [
        ({"result": _labels(["protect", "<script>"])}, "labels", "unknown label ids ['<script>']"),
        ({"result": _labels(["heat"])}, "labels", "['heat'] is not a path in the taxonomy"),
        ({"result": _labels(["move", "heat"])}, "labels", "is not a path in the taxonomy"),
        ({"result": _labels(["protect", "heat", "cold", "swim"])}, "labels", "1 to 3 label ids"),
        ({"result": [{"from_name": "labels", "value": {"taxonomy": "heat"}}]}, "labels", "paths"),
        ({"result": "heat"}, "result", "must be a list"),
        ({"result": [{"from_name": "labels", "value": None}]}, "result", "no value object"),
        ({"result": [{"from_name": "other", "value": {}}]}, "result", "unknown control 'other'"),
        ({"result": []}, "labels", "is empty"),
        ({"result": _verdict({"choices": ["maybe"]})}, "verdict", "must be one of"),
        ({"result": _verdict({"choices": ["irrelevant"]}) + _labels(["move"])}, "verdict", "which"),
        ({"completed_by": None}, "completed_by", "is missing"),
        ({"completed_by": "x" * 500}, "completed_by", "at most 200 printable characters"),
        ({"updated_at": 5, "created_at": None}, "updated_at", "must be an ISO 8601 string"),
        ({"updated_at": "yesterday"}, "updated_at", "yesterday"),
    ],
)
def test_each_hostile_annotation_is_its_own_error_naming_the_task_and_field(
    annotation, field, reason
):
    export = _export_with(**annotation)
    export.append(copy.deepcopy(EXPORT[0]) | {"id": 2})  # a good task after the bad one
    bad, good = read_answers(export, TREE, NOW, USERS)
    assert isinstance(bad, AnswerError) and (bad.task, bad.field) == ("1", field), str(bad)
    assert reason in str(bad) and str(bad).startswith(f"task 1: field {field!r}")
    assert bad.shown and len(bad.shown) <= 2000
    assert isinstance(good, Answer) and good.task == "2"


@pytest.mark.parametrize(
    ("task_", "field"),
    [
        ({"id": "1"}, "id"),
        ({"id": True}, "id"),
        ({"id": 3, "data": {"paper_id": "5"}}, "paper_id"),
        ({"id": 3, "annotations": [{}] * 21}, "annotations"),
        ({"id": 3, "annotations": "all"}, "annotations"),
        ({"id": 3, "annotations": [7]}, "annotations"),
    ],
)
def test_hostile_tasks_are_errors_too(task_, field):
    (bad,) = read_answers([task_], TREE, NOW, USERS)
    assert isinstance(bad, AnswerError) and bad.field == field


def test_an_export_that_is_not_a_list_is_unusable():
    with pytest.raises(LabelStudioError, match="not a list of tasks"):
        list(read_answers({"detail": "oops"}, TREE, NOW, USERS))


# The client at the HTTP boundary ---------------------------------------------------


class _Replies(http.server.BaseHTTPRequestHandler):
    body: bytes = b"[]"
    status: int = 200
    seen: list

    def do_GET(self):
        self.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def replying():
    servers = []

    def serve(body: bytes, status: int = 200):
        handler = type("Handler", (_Replies,), {"body": body, "status": status, "seen": []})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}", handler.seen

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_huge_response_is_refused_without_reading_it_all(replying, monkeypatch):
    from petal_labeller.review import label_studio

    monkeypatch.setattr(label_studio, "MAX_RESPONSE", 1 << 20)
    url, _ = replying(b"[" + b"0," * (1 << 20) + b"0]")
    with pytest.raises(LabelStudioError, match="response over 1048576 bytes"):
        LabelStudio(url, "legacy-token").export(1, [1])


def test_a_refusal_names_the_call_and_never_the_token(replying):
    url, seen = replying(b'{"detail": "Invalid token."}', status=401)
    with pytest.raises(LabelStudioError) as caught:
        LabelStudio(url, "s3cret-legacy-token").export(4, [7, 8])
    assert str(caught.value).startswith("GET /api/projects/4/export: HTTP 401: ")
    assert "s3cret" not in str(caught.value)
    assert seen == [
        (
            "/api/projects/4/export?exportType=JSON&ids%5B%5D=7&ids%5B%5D=8",
            "Token s3cret-legacy-token",
        )
    ]


def test_not_json_and_not_reachable_are_clear(replying):
    url, _ = replying(b"<html>proxy error</html>")
    with pytest.raises(LabelStudioError, match="the response is not valid JSON"):
        LabelStudio(url, "t").export(1, [1])
    with pytest.raises(LabelStudioError, match="Label Studio unreachable"):
        LabelStudio(f"http://127.0.0.1:{_closed_port()}", "t", timeout=2).export(1, [1])
    with pytest.raises(LabelStudioError, match="must be http"):
        LabelStudio("file:///etc/passwd", "t")


def _closed_port() -> int:
    from tests.fixtures.airflow import free_port

    return free_port()


# Against a real Label Studio -------------------------------------------------------


@pytest.mark.slow
def test_publish_answer_collect_round_trip_on_a_real_label_studio(store, label_studio):
    conn, ids = store["conn"], store["ids"]
    client = LabelStudio(label_studio.url, label_studio.token)
    records = select_papers(conn, TREE, 3, "uncertain", neighbours=0)
    project, task_ids = publish_label_studio(conn, client, "PeTaL review (test)", records, TREE)
    assert select_papers(conn, TREE, 3, "uncertain", neighbours=0) == []  # all out
    by_paper = dict(zip((r["paper_id"] for r in records), task_ids, strict=True))
    # What the form posts when a curator submits (the live tier clicks it in Chromium).
    client._request("POST", f"/api/tasks/{by_paper[ids['torn']]}/annotations",
                    json={"result": _labels(["protect", "cold"])})  # fmt: skip
    client._request("POST", f"/api/tasks/{by_paper[ids['deep']]}/annotations",
                    json={"result": _verdict({"choices": ["irrelevant"]})})  # fmt: skip
    report = collect_label_studio(conn, client, project, TREE, NOW)
    assert (report.curated, report.irrelevant, report.rejects.count) == (1, 1, 0)
    assert curator_labels(conn, ids["torn"]) == [
        ("cold", label_studio.email),
        ("protect", label_studio.email),
    ]
    again = collect_label_studio(conn, client, project, TREE, NOW)
    assert (again.curated, again.answered, again.rejects.count) == (0, 0, 0)
    # The project is found again by name, not made twice.
    assert client.project("PeTaL review (test)", label_config(TREE)) == project


def test_a_response_nested_too_deeply_is_refused_not_a_crash(replying):
    url, _ = replying(b"[" * 50_000 + b"]" * 50_000)
    with pytest.raises(LabelStudioError, match="response is not usable JSON: nested too deeply"):
        LabelStudio(url, "legacy-token").export(1, [1])


class _Pages(http.server.BaseHTTPRequestHandler):
    """Projects over two pages, ours on the second; records each call."""

    calls: list

    def _reply(self, body: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def do_GET(self):
        self.calls.append(("GET", self.path))
        first = "page=1" in self.path
        self._reply({
            "results": [{"id": 1 if first else 7, "title": "other" if first else "PeTaL review"}],
            "next": "http://ls/api/projects?page=2" if first else None,
        })  # fmt: skip

    def do_PATCH(self):
        self.calls.append(("PATCH", self.path))
        self.rfile.read(int(self.headers["Content-Length"]))
        self._reply({})

    def do_POST(self):
        self.calls.append(("POST", self.path))
        self._reply({"id": 99})

    def log_message(self, *args):
        pass


def test_the_project_is_found_on_a_later_page_not_made_twice():
    handler = type("Handler", (_Pages,), {"calls": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = LabelStudio(f"http://127.0.0.1:{server.server_port}", "legacy-token")
        assert client.project("PeTaL review", label_config(TREE)) == 7
    finally:
        server.shutdown()
        server.server_close()
    assert [method for method, _ in handler.calls] == ["GET", "GET", "PATCH"]
    assert handler.calls[-1] == ("PATCH", "/api/projects/7")
