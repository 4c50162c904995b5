"""The `serve` app over real HTTP: uvicorn on a free port, the tiny trained model inside."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from petal_labeller.config import SHARED_DATA_DIR
from petal_labeller.runtime import handlers as inference
from petal_labeller.sagemaker.serve import ServeSettings, create_app
from tests.docker.conftest import (
    free_port,
    ping_status,
    running_server,
    wait_for,
    wait_until_ready,
)

REPO = Path(__file__).resolve().parents[2]
JSONLINES = {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"}
BODY_LIMIT = 64 * 1024


def shared_papers(count: int, offset: int = 0) -> list[dict]:
    """Real papers from the shared data, with paper ids, minus their labels."""
    with (SHARED_DATA_DIR / "labelled_papers.jsonl").open(encoding="utf-8") as lines:
        records = [json.loads(line) for _, line in zip(range(offset + count), lines, strict=False)]
    papers = []
    for paper_id, record in enumerate(records[offset:], start=1000 + offset):
        record.pop("labels", None)
        papers.append({**record, "paper_id": paper_id})
    return papers


def as_jsonlines(records: list[dict]) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode("utf-8")


def answer_lines(response: httpx.Response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines()]


def label_ids(model_dir: Path) -> list[str]:
    return [label["id"] for label in json.loads((model_dir / "labels.json").read_text())]


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path):
    # Queue room for the 8 concurrent requests below (beyond it they would get 503).
    settings = ServeSettings(
        model_path=tiny_model_dir, max_body_bytes=BODY_LIMIT, max_concurrency=2, max_queue=8
    )
    with running_server(create_app(settings)) as url:
        wait_until_ready(url)
        yield url


@pytest.fixture
def client(server: str):
    with httpx.Client(base_url=server, timeout=120) as client:
        yield client


pytestmark = pytest.mark.slow


def test_ping_answers_200_once_loaded(client):
    assert client.get("/ping").status_code == 200


def test_good_batch_gets_one_answer_per_paper_in_order(client, tiny_model_dir):
    papers = shared_papers(6)
    response = client.post("/invocations", content=as_jsonlines(papers), headers=JSONLINES)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/jsonlines")
    answers = answer_lines(response)
    assert [a["paper_id"] for a in answers] == [p["paper_id"] for p in papers]
    assert [a["doi"] for a in answers] == [p["doi"] for p in papers]
    every_label = label_ids(tiny_model_dir)
    for answer in answers:
        assert list(answer["scores"]) == every_label
        assert all(0.0 <= score <= 1.0 for score in answer["scores"].values())
        assert answer["labels"] and set(answer["labels"]) <= set(every_label)


def test_served_answers_are_exactly_the_inference_functions(client, tiny_model_dir):
    """The server adds transport only: same bytes as inference.py called directly."""
    body = as_jsonlines(shared_papers(4, offset=10))
    model = inference.model_fn(tiny_model_dir)
    direct = inference.output_fn(
        inference.predict_fn(inference.input_fn(body, "application/jsonlines"), model),
        "application/jsonlines",
    )
    response = client.post("/invocations", content=body, headers=JSONLINES)
    assert response.status_code == 200
    served = answer_lines(response)
    expected = [json.loads(line) for line in direct.splitlines()]
    assert [a["labels"] for a in served] == [e["labels"] for e in expected]
    for got, want in zip(served, expected, strict=True):
        assert got["scores"] == pytest.approx(want["scores"], abs=1e-5)


def test_bad_lines_are_answered_in_place_and_the_rest_labelled(client):
    good = shared_papers(2)
    body = b"\n".join(
        [
            json.dumps(good[0]).encode(),
            b'{"title": "truncated',
            json.dumps({"paper_id": 7, "title": 5}).encode(),
            json.dumps(good[1]).encode(),
        ]
    )
    response = client.post("/invocations", content=body, headers=JSONLINES)
    assert response.status_code == 200, response.text
    first, broken, wrong_field, last = answer_lines(response)
    assert first["paper_id"] == good[0]["paper_id"] and "scores" in first
    assert broken["line"] == 2 and "JSON" in broken["error"]
    assert wrong_field == {"line": 3, "paper_id": 7, "error": wrong_field["error"]}
    assert "title" in wrong_field["error"]
    assert last["paper_id"] == good[1]["paper_id"] and "scores" in last


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"this is not json\n", "line 1: not valid JSON"),
        (b'{"title": "a"\n{"title": "b"\n', "body is not JSON Lines"),
        (b"\xff\xfe\n", "line 1: not valid UTF-8"),
    ],
)
def test_a_body_that_is_not_json_lines_is_400(client, body, message):
    response = client.post("/invocations", content=body, headers=JSONLINES)
    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.parametrize("body", [b"", b"\n\n  \n"])
def test_an_empty_body_is_400(client, body):
    response = client.post("/invocations", content=body, headers=JSONLINES)
    assert response.status_code == 400
    assert "empty body" in response.json()["error"]


@pytest.mark.parametrize("content_type", ["application/json", "text/csv", None])
def test_other_content_types_are_415(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    body = as_jsonlines(shared_papers(1))
    response = client.post("/invocations", content=body, headers=headers)
    assert response.status_code == 415
    assert "application/jsonlines" in response.json()["error"]


def test_content_type_parameters_and_aliases_are_accepted(client):
    body = as_jsonlines(shared_papers(1))
    for content_type in ("application/jsonlines; charset=utf-8", "application/jsonl"):
        headers = {"Content-Type": content_type, "Accept": "*/*"}
        assert client.post("/invocations", content=body, headers=headers).status_code == 200


def test_an_unmeetable_accept_is_406(client):
    headers = {**JSONLINES, "Accept": "text/csv"}
    response = client.post("/invocations", content=as_jsonlines(shared_papers(1)), headers=headers)
    assert response.status_code == 406


def oversized_body() -> bytes:
    paper = {"title": "Big", "abstract": "x" * (BODY_LIMIT + 1)}
    return as_jsonlines([paper])


def test_an_oversized_body_is_413(client):
    response = client.post("/invocations", content=oversized_body(), headers=JSONLINES)
    assert response.status_code == 413
    assert str(BODY_LIMIT) in response.json()["error"]


def test_an_oversized_chunked_body_is_413_without_a_declared_length(client):
    def chunks():
        body = oversized_body()
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = client.post("/invocations", content=chunks(), headers=JSONLINES)
    assert response.status_code == 413


def test_concurrent_requests_each_get_their_own_answers(server):
    batches = [shared_papers(3, offset=3 * i) for i in range(8)]

    def post(batch):
        with httpx.Client(base_url=server, timeout=300) as client:
            return client.post("/invocations", content=as_jsonlines(batch), headers=JSONLINES)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(post, batches))
    for batch, response in zip(batches, responses, strict=True):
        assert response.status_code == 200
        assert [a["paper_id"] for a in answer_lines(response)] == [p["paper_id"] for p in batch]
    # Answers do not depend on what else was in flight.
    with httpx.Client(base_url=server, timeout=300) as client:
        alone = client.post("/invocations", content=as_jsonlines(batches[5]), headers=JSONLINES)
    assert [a["labels"] for a in answer_lines(alone)] == [
        a["labels"] for a in answer_lines(responses[5])
    ]


def test_execution_parameters_tell_batch_transform_the_limits(client):
    assert client.get("/execution-parameters").json() == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 1,
    }


def test_ping_is_503_until_the_model_is_loaded(tiny_model_dir):
    release = threading.Event()

    def gated_load():
        release.wait(timeout=120)
        return inference.model_fn(tiny_model_dir)

    settings = ServeSettings(model_path=tiny_model_dir)
    with running_server(create_app(settings, load=gated_load)) as url:
        ping = httpx.get(f"{url}/ping")
        assert ping.status_code == 503
        assert ping.json() == {"error": "model is loading"}
        early = httpx.post(
            f"{url}/invocations", content=as_jsonlines(shared_papers(1)), headers=JSONLINES
        )
        assert early.status_code == 503
        release.set()
        wait_until_ready(url)


def test_a_model_that_cannot_load_keeps_ping_503_with_the_reason(tmp_path):
    missing = tmp_path / "no-such-model"
    with running_server(create_app(ServeSettings(model_path=missing))) as url:
        wait_for(lambda: "failed" in httpx.get(f"{url}/ping").text, "the load to fail")
        ping = httpx.get(f"{url}/ping")
        assert ping.status_code == 503
        assert "model failed to load" in ping.json()["error"]
        assert str(missing) in ping.json()["error"]


def test_the_serve_executable_serves_a_model_tarball(tiny_model_tar):
    """docker/sagemaker/bin/serve as SageMaker runs it, with SM_MODEL_DIR set to a tarball."""
    port = free_port()
    env = {
        **os.environ,
        # `python` in the script must be this interpreter, as it is in the image.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SM_MODEL_DIR": str(tiny_model_tar),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "PETAL_SERVE_USER": "root",  # there is no `petal` user outside the image
    }
    process = subprocess.Popen(
        [str(REPO / "docker" / "sagemaker" / "bin" / "serve")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: process.poll() is not None or ping_status(url) is not None, "serve to listen"
        )
        assert process.poll() is None, "serve exited early"
        wait_until_ready(url)
        response = httpx.post(
            f"{url}/invocations",
            content=as_jsonlines(shared_papers(2)),
            headers=JSONLINES,
            timeout=120,
        )
        assert response.status_code == 200
        assert len(answer_lines(response)) == 2
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    # uvicorn finishes in-flight work, then re-raises SIGTERM so the exit says why.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Finished server process" in output
