"""A real uvicorn server on a free local port, and the tiny model unpacked for it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from petal_labeller.model.artefact import unpack
from petal_labeller.sagemaker.serve import protocol_options

STARTUP_SECONDS = 30
MODEL_LOAD_SECONDS = 300


@contextmanager
def running_server(app) -> Iterator[str]:
    """Serve `app` (from `create_app`) on 127.0.0.1 in a thread, as `serve` would; yield
    its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # The protocol settings `serve` runs with (h11 and its header limit), not uvicorn's.
    options = protocol_options(app.state.settings)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_SECONDS)
        sock.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def ping_status(url: str) -> int | None:
    """/ping's status, or None while nothing listens yet."""
    try:
        return httpx.get(f"{url}/ping", timeout=5).status_code
    except httpx.TransportError:
        return None


def wait_until_ready(url: str, timeout: float = MODEL_LOAD_SECONDS) -> None:
    """Poll /ping as SageMaker does until the model is loaded."""
    wait_for(lambda: ping_status(url) == 200, f"{url}/ping to answer 200", timeout)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny artefact unpacked, as SageMaker leaves it in /opt/ml/model."""
    return unpack(tiny_model_tar, tmp_path_factory.mktemp("opt-ml-model"))
