"""`petal review publish | collect`: the review DAG's steps from a shell (issue 27)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from petal_labeller.cli import main
from petal_labeller.store import review_tasks
from tests.review.conftest import curator_labels
from tests.review.test_label_studio import _closed_port, _labels

TOKEN = "s3cret-token-never-shown"


@pytest.fixture
def review_cli(database_url, monkeypatch):
    monkeypatch.delenv("PETAL_LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("PETAL_LABEL_STUDIO_TOKEN", raising=False)

    def run(*args, code=0, env=None):
        result = CliRunner().invoke(main, ["--database-url", database_url, "review", *args],
                                    env=env)  # fmt: skip
        assert result.exit_code == code, result.output
        assert TOKEN not in result.output
        return result

    return run


def _queue(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_files_batch_is_published_once_answered_and_collected_once(store, tmp_path, review_cli):
    conn, ids = store["conn"], store["ids"]
    first = tmp_path / "week-1.jsonl"
    out = review_cli("publish", "--papers", "2", "--selection", "uncertain", "--output", str(first))
    assert "sent 2 papers as batch week-1.jsonl" in out.output
    sent = {r["paper_id"] for r in _queue(first)}
    assert sent == {ids["torn"], ids["deep"]}  # the two least sure first
    assert set(review_tasks.open_tasks(conn, "files", "week-1.jsonl")) == {str(i) for i in sent}
    # Papers out with curators are not sent twice: the next batch holds the one left.
    second = tmp_path / "week-2.jsonl"
    review_cli("publish", "--papers", "5", "--selection", "uncertain", "--output", str(second))
    assert [r["paper_id"] for r in _queue(second)] == [ids["sure"]]
    nothing = review_cli("publish", "--output", str(tmp_path / "week-3.jsonl"))
    assert "nothing to send" in nothing.output

    early = review_cli("collect", str(first), code=2)
    assert "no answers yet" in early.output and "week-1.answers.jsonl" in early.output
    [torn] = [r for r in _queue(first) if r["paper_id"] == ids["torn"]]
    answer = {**torn, "accept": True, "remove": ["heat"], "reviewer": "ana"}
    (tmp_path / "week-1.answers.jsonl").write_text(json.dumps(answer) + "\n", encoding="utf-8")
    done = review_cli("collect", str(first))
    assert "1 papers curated, 1 answers applied" in done.output and "0 rejected" in done.output
    assert curator_labels(conn, ids["torn"]) == [("protect", "ana")]
    assert set(review_tasks.open_tasks(conn, "files", "week-1.jsonl")) == {str(ids["deep"])}
    again = review_cli("collect", str(first))
    assert "0 papers curated, 0 answers applied" in again.output


def test_a_bad_answer_is_rejected_naming_it_and_the_rest_apply(store, tmp_path, review_cli):
    conn, ids = store["conn"], store["ids"]
    batch = tmp_path / "b.jsonl"
    review_cli("publish", "--papers", "2", "--selection", "uncertain", "--output", str(batch))
    torn, deep = sorted(_queue(batch), key=lambda r: r["paper_id"] != ids["torn"])
    lines = [{**torn, "accept": True, "reviewer": "ana"},
             {**deep, "add": ["no-such-label"], "reviewer": "ana"}]  # fmt: skip
    (tmp_path / "b.answers.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    rejects = tmp_path / "rejects.jsonl"
    out = review_cli("collect", str(batch), "--rejects", str(rejects), code=1)
    assert "1 rejected" in out.output and "no-such-label" in out.output
    assert curator_labels(conn, ids["torn"]) == [("heat", "ana"), ("protect", "ana")]
    assert curator_labels(conn, ids["deep"]) == []
    assert "no-such-label" in rejects.read_text(encoding="utf-8")


def test_unusable_invocations_exit_2_and_name_what_is_missing(store, tmp_path, review_cli):
    assert "--output is needed" in review_cli("publish", code=2).output
    assert "QUEUE_FILE" in review_cli("collect", code=2).output
    no_url = review_cli("publish", "--backend", "label_studio", code=2)
    assert "PETAL_LABEL_STUDIO_URL" in no_url.output
    no_token = review_cli("publish", "--backend", "label_studio",
                          "--label-studio-url", "http://127.0.0.1:9", code=2)  # fmt: skip
    assert "PETAL_LABEL_STUDIO_TOKEN" in no_token.output
    bad_scheme = review_cli(
        "publish",
        "--backend",
        "label_studio",
        "--label-studio-url",
        "file:///etc/passwd",
        code=2,
        env={"PETAL_LABEL_STUDIO_TOKEN": TOKEN},
    )
    assert "http(s)" in bad_scheme.output
    bad_env = review_cli("publish", "--backend", "label_studio", code=2,
                         env={"PETAL_LABEL_STUDIO_URL": "ftp://ls.example.org"})  # fmt: skip
    assert "PETAL_LABEL_STUDIO_URL" in bad_env.output and "http://" in bad_env.output
    bad_token = review_cli("publish", "--backend", "label_studio", code=2, env={
        "PETAL_LABEL_STUDIO_URL": "http://127.0.0.1:9",
        "PETAL_LABEL_STUDIO_TOKEN": TOKEN[:6] + "\x01" + TOKEN[6:],
    })  # fmt: skip
    assert "PETAL_LABEL_STUDIO_TOKEN" in bad_token.output and "<hidden>" in bad_token.output
    gone = f"http://127.0.0.1:{_closed_port()}"
    down = review_cli(
        "publish",
        "--backend",
        "label_studio",
        code=2,
        env={"PETAL_LABEL_STUDIO_URL": gone, "PETAL_LABEL_STUDIO_TOKEN": TOKEN},
    )
    assert "Label Studio unreachable" in down.output
    assert review_tasks.open_batches(store["conn"], "label_studio") == []  # nothing recorded


def test_publish_and_collect_on_a_real_label_studio(store, label_studio, review_cli):
    from petal_labeller.review.label_studio import LabelStudio

    conn, ids = store["conn"], store["ids"]
    env = {"PETAL_LABEL_STUDIO_URL": label_studio.url,
           "PETAL_LABEL_STUDIO_TOKEN": label_studio.token}  # fmt: skip
    out = review_cli("publish", "--backend", "label_studio", "--papers", "3",
                     "--project", "PeTaL review (cli)", env=env)  # fmt: skip
    assert "sent 3 papers to Label Studio project 'PeTaL review (cli)'" in out.output
    [batch] = review_tasks.open_batches(conn, "label_studio")
    by_paper = {p: int(t) for t, p in review_tasks.batch_tasks(conn, "label_studio", batch).items()}
    client = LabelStudio(label_studio.url, label_studio.token)
    client._request("POST", f"/api/tasks/{by_paper[ids['torn']]}/annotations",
                    json={"result": _labels(["protect", "cold"])})  # fmt: skip
    done = review_cli("collect", "--backend", "label_studio", env=env)
    assert "1 papers curated" in done.output
    assert [label for label, _ in curator_labels(conn, ids["torn"])] == ["cold", "protect"]
    assert "0 papers curated" in review_cli("collect", "--backend", "label_studio", env=env).output
