"""`petal model register | promote | predict` under hostile input (issue 24 items 12, 15, 17):
only fetchable artefacts become production, and only after they are checked; a bounded batch
size; a malformed Airflow reply or a huge argument is one clear error."""

from __future__ import annotations

import http.server
import json
import threading
from contextlib import closing
from typing import ClassVar

import pytest
from click.testing import CliRunner

from petal_labeller.cli import main
from petal_labeller.cli.airflow_api import AirflowApiError, notify_promotion
from petal_labeller.pipeline.promotion import PRODUCTION_MODEL_URI, check_artefact_uri
from petal_labeller.runtime.errors import ArtefactError

BAD_URIS = [
    "http://example.org/model.tar.gz",
    "ftp://example.org/model.tar.gz",
    "s3://petal-models",
    "s3://petal-models/",
    "s3://petal-models/a/../model.tar.gz",
    "s3://petal-models/a/./model.tar.gz",
    "s3://petal-models//model.tar.gz",
    "s3://petal-models/a\nb/model.tar.gz",
    "s3://Bad_Bucket/model.tar.gz",
    "s3://petal-models/model.tar.gz?versionId=1",
    "s3://" + "k" * 2000,
]


@pytest.mark.parametrize("uri", BAD_URIS)
def test_only_local_paths_and_s3_bucket_key_are_artefact_uris(uri):
    with pytest.raises(ArtefactError) as refused:
        check_artefact_uri(uri)
    assert len(str(refused.value)) < 200


@pytest.mark.parametrize("uri", ["s3://petal-models/v1/model.tar.gz", "/srv/m.tar.gz", "m.tar.gz"])
def test_good_uris_pass(uri):
    assert check_artefact_uri(uri) == uri


def _versions(url: str) -> tuple[list[str], str | None]:
    from petal_labeller.store.connection import connect
    from petal_labeller.store.models import list_model_versions, production_model

    with closing(connect(url)) as conn:
        production = production_model(conn)
        return sorted(
            m.version for m in list_model_versions(conn)
        ), production and production.version


@pytest.mark.slow
@pytest.mark.parametrize("uri", BAD_URIS[:6])
def test_register_promote_refuses_an_unfetchable_uri_and_changes_nothing(labelling_database, uri):
    before = _versions(labelling_database)
    args = ["--database-url", labelling_database, "model", "register", uri, "--version", "v9"]
    result = CliRunner().invoke(main, [*args, "--promote"])
    assert result.exit_code == 2, result.output
    assert "local path or s3://bucket/key" in result.output and "Traceback" not in result.output
    assert _versions(labelling_database) == before


@pytest.fixture
def s3_bucket(monkeypatch):
    """A moto S3 bucket, in process."""
    from moto import mock_aws

    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    with mock_aws():
        import boto3

        client = boto3.client("s3")
        client.create_bucket(Bucket="petal-models")
        yield client


@pytest.mark.slow
def test_an_s3_artefact_is_fetched_and_checked_before_it_is_promoted(
    labelling_database, tiny_model_tar, s3_bucket, tmp_path
):
    s3_bucket.upload_file(str(tiny_model_tar), "petal-models", "good/model.tar.gz")
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(tiny_model_tar.read_bytes()[:5000])
    s3_bucket.upload_file(str(broken), "petal-models", "broken/model.tar.gz")
    base = ["--database-url", labelling_database, "model", "register"]

    before = _versions(labelling_database)
    for uri in ("s3://petal-models/broken/model.tar.gz", "s3://petal-models/missing/model.tar.gz"):
        result = CliRunner().invoke(main, [*base, uri, "--version", "v9", "--promote"])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
    assert _versions(labelling_database) == before

    good = "s3://petal-models/good/model.tar.gz"
    result = CliRunner().invoke(main, [*base, good, "--version", "v9", "--promote"])
    assert result.exit_code == 0, result.output
    assert _versions(labelling_database)[1] == "v9"


# Item 15: a batch size below 1 made range() skip the encoder (exit 0, scores off).


@pytest.mark.parametrize("size", ["-1", "0", "1025", "١٢"])
def test_predict_refuses_a_batch_size_out_of_range(tmp_path, size):
    model, papers = tmp_path / "m.tar.gz", tmp_path / "p.jsonl"
    model.write_bytes(b"x")
    papers.write_text('{"title": "Gecko feet"}\n')
    args = ["model", "predict", "--model", str(model), "--papers", str(papers)]
    result = CliRunner().invoke(
        main, [*args, "--output", str(tmp_path / "o"), "--batch-size", size]
    )
    assert result.exit_code == 2 and "--batch-size" in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_the_library_refuses_a_batch_size_below_1_on_every_path(tiny_model_tar, tmp_path):
    from petal_labeller import config
    from petal_labeller.model.predict import predict_file
    from petal_labeller.runtime.load import load_model

    papers = tmp_path / "p.jsonl"
    papers.write_text('{"title": "Gecko feet"}\n')
    model = load_model(tiny_model_tar, cache=True)
    for size in (-1, 0, 10**30, True):
        with pytest.raises(config.SettingError, match="batch size"):
            predict_file(tiny_model_tar, papers, tmp_path / "o.jsonl", batch_size=size, model=model)
        with pytest.raises(config.SettingError, match="batch size"):
            load_model(tiny_model_tar, batch_size=size, cache=True)
    model.batch_size = -1
    with pytest.raises(ValueError, match="batch size"):
        type(model).__post_init__(model)


# Item 17: a malformed reply from Airflow, a huge argument.

NESTED = b"[" * 200_000


class _Airflow(http.server.BaseHTTPRequestHandler):
    replies: ClassVar[dict[str, bytes]] = {}

    def _answer(self) -> None:
        path = self.path.split("?")[0]
        body = self.replies.get(path, b"{}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def airflow_server(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Airflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PETAL_AIRFLOW_USER", "admin")
    monkeypatch.setenv("PETAL_AIRFLOW_PASSWORD", "secret")
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


TOKEN = json.dumps({"access_token": "eyJ.a.b"}).encode()
ASSETS = json.dumps({"assets": [{"id": 3, "uri": PRODUCTION_MODEL_URI}]}).encode()


@pytest.mark.parametrize(
    "replies",
    [
        {"/auth/token": b"not json"},
        {"/auth/token": NESTED},
        {"/auth/token": b'{"access_token": 5}'},
        {"/auth/token": b'{"access_token": "a\\nb"}'},
        {"/auth/token": b"[1, 2]"},
        {"/auth/token": TOKEN, "/api/v2/assets": b'{"assets": "x"}'},
        {"/auth/token": TOKEN, "/api/v2/assets": b"[1]"},
        {"/auth/token": TOKEN, "/api/v2/assets": NESTED},
        {"/auth/token": TOKEN, "/api/v2/assets": b'{"assets": [5, {"uri": 1}]}'},
        {"/auth/token": TOKEN, "/api/v2/assets": ASSETS, "/api/v2/assets/events": b'{"id": "x"}'},
        {"/auth/token": TOKEN, "/api/v2/assets": ASSETS, "/api/v2/assets/events": b"[]"},
        {"/auth/token": TOKEN, "/api/v2/assets": ASSETS, "/api/v2/assets/events": b"null"},
    ],
)
def test_a_malformed_airflow_reply_is_one_clear_error(airflow_server, monkeypatch, replies):
    monkeypatch.setattr(_Airflow, "replies", replies)
    with pytest.raises(AirflowApiError) as failed:
        notify_promotion({"version": "v2", "previous": "v1"}, airflow_server)
    assert len(str(failed.value)) < 200 and "\n" not in str(failed.value)


def test_a_good_reply_sends_the_event(airflow_server, monkeypatch):
    replies = {
        "/auth/token": TOKEN,
        "/api/v2/assets": ASSETS,
        "/api/v2/assets/events": b'{"id": 7}',
    }
    monkeypatch.setattr(_Airflow, "replies", replies)
    assert notify_promotion({"version": "v2"}, airflow_server).startswith("Asset event 7 sent")


def test_promote_with_a_huge_version_is_refused_without_echoing_it():
    result = CliRunner().invoke(main, ["model", "promote", "v" * 100_000])
    assert result.exit_code == 2 and len(result.output) < 300, result.output[:300]


@pytest.mark.parametrize("url", ["ftp://airflow", "http://", "http://a b", "x" * 100_000])
def test_promote_refuses_a_bad_airflow_url_before_promoting(url, monkeypatch):
    import petal_labeller.pipeline.promotion as promotion

    def never(*args, **kwargs):
        raise AssertionError("promoted before the Airflow URL was checked")

    monkeypatch.setattr(promotion, "promote_version", never)
    result = CliRunner().invoke(main, ["model", "promote", "v1", "--airflow-url", url])
    assert result.exit_code == 2 and len(result.output) < 300, result.output[:300]
