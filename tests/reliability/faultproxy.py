"""A tiny HTTP proxy in front of the moto server that answers chosen AWS calls with errors.

moto has no switch for throttling or 5xx replies, and the rule is to fake AWS
only at the HTTP boundary, so this sits where AWS's front door would be: boto3
(through the `aws_default` connection) talks to it, it forwards to moto, except
for the requests a rule claims, which get the error AWS itself would send.
Hand-written because no installed library does this for botocore clients.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

#: (status, content type, body) AWS sends for each error, per protocol.
_JSON_ERRORS = {
    "ThrottlingException": 400,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
}
_S3_ERRORS = {"SlowDown": 503, "InternalError": 500}


@dataclass
class Rule:
    """Answer requests whose operation `matches` with `error`, `times` times (None: always).

    `forward`: AWS did the work but the reply was lost: the request still reaches
    moto, and the client gets the error.
    """

    matches: Callable[[str], bool]
    error: str
    times: int | None = 1
    used: int = 0
    forward: bool = False

    def claims(self, operation: str) -> bool:
        if not self.matches(operation) or (self.times is not None and self.used >= self.times):
            return False
        self.used += 1
        return True


@dataclass
class Call:
    operation: str
    at: float
    injected: str | None


@dataclass
class FaultProxy:
    upstream: str
    rules: list[Rule] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    #: Operations moto lacks, answered here as AWS would (e.g. StopTransformJob: `{}`).
    canned: dict[str, dict] = field(default_factory=dict)

    def start(self) -> str:
        proxy = self
        target = urlsplit(self.upstream)
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _operation(self) -> str:
                amz_target = self.headers.get("X-Amz-Target")
                if amz_target:  # JSON protocol: "SageMaker.CreateModel"
                    return "sagemaker:" + amz_target.split(".", 1)[-1]
                return f"s3:{self.command} {self.path.split('?')[0]}"

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                operation = self._operation()
                with lock:
                    rule = next((r for r in proxy.rules if r.claims(operation)), None)
                    proxy.calls.append(Call(operation, time.monotonic(), rule and rule.error))
                if rule and rule.forward:
                    self._forward(body, reply=False)
                if rule and operation.startswith("sagemaker:"):
                    payload = {"__type": rule.error, "message": f"injected {rule.error}"}
                    self._reply(
                        _JSON_ERRORS[rule.error],
                        json.dumps(payload).encode(),
                        "application/x-amz-json-1.1",
                    )
                    return
                if rule:
                    xml = (
                        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{rule.error}</Code>"
                        f"<Message>injected {rule.error}</Message></Error>"
                    ).encode()
                    self._reply(_S3_ERRORS[rule.error], xml, "application/xml")
                    return
                if operation in proxy.canned:
                    reply = json.dumps(proxy.canned[operation]).encode()
                    self._reply(200, reply, "application/x-amz-json-1.1")
                    return
                self._forward(body, reply=True)

            def _forward(self, body: bytes, reply: bool) -> None:
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    headers["Host"] = target.netloc
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    if not reply:
                        return
                    self.send_response(response.status)
                    head = self.command == "HEAD"  # keeps the object's real length
                    skip = {"transfer-encoding", "connection"} | (
                        set() if head else {"content-length"}
                    )
                    for key, value in response.getheaders():
                        if key.lower() not in skip:
                            self.send_header(key, value)
                    if not head:
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def operations(self) -> list[str]:
        return [call.operation for call in self.calls]

    def injected(self) -> list[Call]:
        return [call for call in self.calls if call.injected]
