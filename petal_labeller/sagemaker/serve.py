"""`serve`: SageMaker's inference HTTP contract on uvicorn, around the runtime's handlers.

SageMaker starts a hosting or batch-transform container as `<image> serve` and
talks to port 8080: `GET /ping` (200 once the model is loaded), `POST /invocations`
(here `application/jsonlines` in and out, many papers a request) and, for batch
transform, the optional `GET /execution-parameters`. The work itself is
`model_fn`/`input_fn`/`predict_fn`/`output_fn` from the image's installed
`petal_labeller.runtime.handlers`, the functions the local backend and the
tests run, so every path labels a paper the same way; the model artefact is data
only and is refused unless it names this runtime's format.

Hand-written on Starlette because the alternative, SageMaker's inference toolkit,
runs a Java model server (MMS/TorchServe) for what is five small handlers here.

Settings come from the environment (SageMaker passes a model's `Environment`),
read through `petal_labeller.config` (the table in docs/deploy.md): the model
(PETAL_SERVE_MODEL, else SM_MODEL_DIR, else /opt/ml/model), the request limits
(PETAL_SERVE_MAX_*, SAGEMAKER_MAX_PAYLOAD_IN_MB), SAGEMAKER_MODEL_SERVER_WORKERS and
SAGEMAKER_BIND_TO_PORT. A bad one stops the start with one line naming it, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from petal_labeller import config
from petal_labeller.papers import LineError, decode_line
from petal_labeller.runtime import handlers
from petal_labeller.runtime.jsonlines import ANY_MEDIA, JSONLINES, JSONLINES_ALIASES, media_type
from petal_labeller.sagemaker.admission import CHUNK_LINES, Admission, Busy, ClientGone

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_MAX_BODY_BYTES = 6 * MIB
#: 6 MiB of papers averaging 630 bytes; the shared PeTaL papers average 1,400 bytes a line
#: (10% under 710), so a 6 MiB MultiRecord batch holds about 4,500 of them.
DEFAULT_MAX_RECORDS = 10_000
DEFAULT_MAX_HEADER_BYTES = 16 * 1024  # h11's default; httptools has no limit at all
DEFAULT_MAX_HEADERS = 100
DEFAULT_PORT = 8080
RETRY_AFTER_SECONDS = 5


class BadRequest(Exception):
    """The request cannot be served; carries the HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ServeSettings:
    """Everything the server reads from the environment, read once."""

    model_path: Path
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_concurrency: int = 1
    max_queue: int = 4
    max_records: int = DEFAULT_MAX_RECORDS
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_headers: int = DEFAULT_MAX_HEADERS
    workers: int = 1
    host: str = "0.0.0.0"  # a container must listen on every interface
    port: int = DEFAULT_PORT

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ServeSettings:
        """Read through `config`, the one settings parser: SettingError names a bad one."""
        environ = os.environ if environ is None else environ

        def get(name: str) -> Any:
            return config.get(name, environ)

        model = get("PETAL_SERVE_MODEL") or get("SM_MODEL_DIR")
        return cls(
            model_path=model or get("SAGEMAKER_BASE_DIR") / "model",
            max_body_bytes=get("PETAL_SERVE_MAX_BODY_BYTES")
            or get("SAGEMAKER_MAX_PAYLOAD_IN_MB") * MIB,
            max_concurrency=get("PETAL_SERVE_MAX_CONCURRENCY"),
            max_queue=get("PETAL_SERVE_MAX_QUEUE"),
            max_records=get("PETAL_SERVE_MAX_RECORDS"),
            max_header_bytes=get("PETAL_SERVE_MAX_HEADER_BYTES"),
            max_headers=get("PETAL_SERVE_MAX_HEADERS"),
            workers=get("SAGEMAKER_MODEL_SERVER_WORKERS"),
            port=get("SAGEMAKER_BIND_TO_PORT"),
        )


class ModelHolder:
    """The model, loaded once in a background thread so /ping can answer 503 meanwhile."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self._load = load
        self._loaded = threading.Event()
        self.model: Any = None
        self.error: str | None = None

    @property
    def ready(self) -> bool:
        return self._loaded.is_set() and self.error is None

    def load(self) -> None:
        try:
            self.model = self._load()
        except Exception as exc:
            log.exception("model failed to load")
            self.error = f"{type(exc).__name__}: {exc}"
        else:
            log.info("model loaded")
        finally:
            self._loaded.set()

    def status(self) -> tuple[int, str]:
        if not self._loaded.is_set():
            return 503, "model is loading"
        if self.error is not None:
            return 503, f"model failed to load: {self.error}"
        return 200, "ok"


def _check_content_type(header: str | None) -> None:
    if media_type(header) not in JSONLINES_ALIASES:
        shown = header or "none"
        raise BadRequest(415, f"Content-Type {shown} is not supported: send {JSONLINES}")


def _response_type(accept: str | None) -> str:
    """The media type to answer in; only JSON Lines exists, so Accept can only refuse it."""
    if not accept:
        return JSONLINES
    offered = {media_type(part) for part in accept.split(",")}
    if offered & (JSONLINES_ALIASES | ANY_MEDIA):
        return JSONLINES
    raise BadRequest(406, f"Accept {accept} cannot be met: this model answers in {JSONLINES}")


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    too_large = BadRequest(413, f"request body exceeds the limit of {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    # Counted while streaming too: a chunked request declares no length.
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _check_records(body: bytes, limit: int) -> None:
    """413 for more papers than one request may hold: it would keep the slot for minutes."""
    count = sum(1 for line in body.split(b"\n") if line.strip())
    if count > limit:
        raise BadRequest(
            413, f"request has {count} records; the limit is {limit} a request "
            "(PETAL_SERVE_MAX_RECORDS): send smaller batches",
        )  # fmt: skip


def _check_jsonlines(body: bytes) -> None:
    """Refuse a body that is not JSON Lines at all, before it reaches the model.

    A batch with some bad lines is served: the handlers answer each bad line with
    an error naming it, so one malformed paper never fails a whole transform job.
    Lines are judged one by one, as the handlers do (a bad byte spoils one line).
    """
    lines = [(number, line) for number, line in enumerate(body.split(b"\n"), 1) if line.strip()]
    if not lines:
        raise BadRequest(400, f"empty body: send one JSON object per line ({JSONLINES})")
    first_error = None
    for number, line in lines:
        try:
            decode_line(line)
        except LineError as exc:
            first_error = first_error or f"line {number}: {exc}"
        else:
            return
    raise BadRequest(400, f"body is not JSON Lines: {first_error}")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _chunks(model: Any, body: bytes, accept: str) -> list[Callable[[], str]]:
    """The request's work in chunks of lines, each one input_fn -> predict_fn -> output_fn."""
    lines = body.split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()

    def chunk(first: int) -> Callable[[], str]:
        def work() -> str:
            part = b"\n".join(lines[first : first + CHUNK_LINES])
            items = handlers.input_fn(part, JSONLINES, first_line=first + 1)
            return handlers.output_fn(handlers.predict_fn(items, model), accept)

        return work

    return [chunk(first) for first in range(0, len(lines), CHUNK_LINES)]


async def _invocation_response(
    request: Request, settings: ServeSettings, holder: ModelHolder, admission: Admission
) -> Response:
    """One /invocations request: checks, a place in the admission, the chunks, the errors."""
    status, message = holder.status()
    if status != 200:
        return _error(status, message)
    try:
        _check_content_type(request.headers.get("content-type"))
        accept = _response_type(request.headers.get("accept"))
        body = await _read_body(request, settings.max_body_bytes)
        _check_records(body, settings.max_records)
        _check_jsonlines(body)
        parts = await admission.run(request, _chunks(holder.model, body, accept))
    except BadRequest as exc:
        return _error(exc.status, exc.message)
    except Busy:
        response = _error(503, "every prediction slot and queue place is taken; retry")
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    except ClientDisconnect:
        # One line, no traceback: a client hanging up is not a server fault.
        log.info("client disconnected while sending its request")
        return Response(status_code=499)
    except ClientGone:  # the watcher logged it
        return Response(status_code=499)
    except ValueError as exc:
        # The handlers raise ValueError for a request they cannot read as a whole.
        return _error(400, str(exc))
    except Exception as exc:
        log.exception("prediction failed")
        return _error(500, f"prediction failed: {type(exc).__name__}: {exc}")
    return Response("".join(parts).encode("utf-8"), media_type=accept)


class HeaderCount:
    """ASGI middleware: 431 for a request with more header fields than `limit`.

    h11 already bounds their bytes (`protocol_options`), so this bounds the work a
    request's headers can cost the app, on every route.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and len(scope["headers"]) > self.limit:
            message = f"more than {self.limit} header fields (PETAL_SERVE_MAX_HEADERS)"
            await _error(431, message)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def protocol_options(settings: ServeSettings) -> dict[str, Any]:
    """uvicorn's HTTP settings: h11 with its limit on the request line and headers.

    uvicorn picks httptools when installed, which reads a header of any length:
    one endless header grew the server by what was sent.
    """
    return {"http": "h11", "h11_max_incomplete_event_size": settings.max_header_bytes}


def create_app(
    settings: ServeSettings | None = None, *, load: Callable[[], Any] | None = None
) -> Starlette:
    """The ASGI app. `load` replaces the default `model_fn(<model path>)`, e.g. to gate it.

    The model path is a folder or a model.tar.gz; a tarball is unpacked into a temporary
    folder removed once the model is in memory, so no start leaves one behind."""
    settings = settings or ServeSettings.from_environ()
    holder = ModelHolder(load or (lambda: handlers.model_fn(settings.model_path)))
    admission = Admission(settings.max_concurrency, settings.max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Not awaited: the server must already answer /ping (503) while the model loads.
        asyncio.get_running_loop().run_in_executor(None, holder.load)
        yield

    async def ping(request: Request) -> Response:
        status, message = holder.status()
        if status == 200:
            return Response(status_code=200)
        return _error(status, message)

    async def execution_parameters(request: Request) -> Response:
        # Batch transform asks this when the job leaves these unset.
        return JSONResponse(
            {
                "MaxConcurrentTransforms": settings.max_concurrency * settings.workers,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": max(1, settings.max_body_bytes // MIB),
            }
        )

    async def invocations(request: Request) -> Response:
        return await _invocation_response(request, settings, holder, admission)

    app = Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/invocations", invocations, methods=["POST"]),
            Route("/execution-parameters", execution_parameters, methods=["GET"]),
        ],
        lifespan=lifespan,
        middleware=[Middleware(HeaderCount, limit=settings.max_headers)],
    )
    app.state.model_holder = holder
    app.state.settings = settings
    return app


def main(argv: list[str] | None = None) -> int:
    """Run the server as SageMaker does: `serve` with no arguments, settings in the env."""
    parser = argparse.ArgumentParser(prog="serve", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or model.tar.gz (else SM_MODEL_DIR)")
    parser.add_argument("--port", type=int, help="port (else SAGEMAKER_BIND_TO_PORT or 8080)")
    args = parser.parse_args(argv)
    # Workers are separate processes that build the app from the environment.
    if args.model:
        os.environ["PETAL_SERVE_MODEL"] = args.model
    if args.port:
        os.environ["SAGEMAKER_BIND_TO_PORT"] = str(args.port)
    try:
        settings = ServeSettings.from_environ()
    except config.SettingError as exc:
        print(f"serve: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    import uvicorn

    uvicorn.run(
        "petal_labeller.sagemaker.serve:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        # SageMaker stops a container with SIGTERM and waits; let requests finish.
        timeout_graceful_shutdown=30,
        access_log=False,
        **protocol_options(settings),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
