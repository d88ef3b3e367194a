"""`AwsFaultProxy`: a loopback HTTP proxy in front of moto that injects AWS faults on the wire, seeded.

Point the code under test at it (``AwsSettings(endpoint_url=proxy.endpoint_url)``) and it forwards every request
to the real (moto) endpoint, except those it decides to fail: 503 SlowDown, 500 InternalError, throttling (400
Throttling for IAM and STS, 503 SlowDown for S3), read timeouts and connection resets. Scripted replies (a 403
for one bucket, a 301 PermanentRedirect) stand in for what moto does not emulate. Every request is recorded with
botocore's invocation id and attempt number, so a test can check retries per call, backoff and jitter.

Decisions are reproducible under concurrency: whether the n-th request with a given key (service, API, path,
query, body) fails, and how, depends only on the seed and that key and n, never on thread timing.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from xml.sax.saxutils import escape


class Fault(StrEnum):
    """A transient fault; botocore's standard retry mode retries each of them."""

    SLOW_DOWN = "SlowDown"  # S3: 503 SlowDown; IAM and STS: 503 ServiceUnavailable
    INTERNAL_ERROR = "InternalError"  # 500 InternalError
    THROTTLING = "Throttling"  # IAM and STS: 400 Throttling; S3 throttles with 503 SlowDown
    READ_TIMEOUT = "ReadTimeout"  # forwarded (so it may take effect), then no answer until the client gives up
    CONNECTION_RESET = "ConnectionReset"  # the connection is reset (TCP RST) before anything is forwarded


TRANSIENT_FAULTS: tuple[Fault, ...] = tuple(Fault)
SERVICES = ("s3", "iam", "sts")


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An AWS error response, rendered in the service's protocol (S3's REST-XML, or IAM's and STS's query XML)."""

    status: int
    code: str
    message: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


Reply = Fault | ErrorReply


@dataclass(frozen=True, slots=True)
class AwsRequest:
    """One HTTP request as the proxy saw it."""

    service: str  # s3, iam, sts (from the SigV4 credential scope)
    api: str  # GetBucketPolicy, GetRole, ...
    method: str
    path: str
    query: str
    bucket: str | None
    headers: Mapping[str, str]
    body: bytes
    invocation_id: str | None  # botocore's amz-sdk-invocation-id: the same for every attempt of one call
    attempt: int | None  # botocore's amz-sdk-request: attempt=N
    max_attempts: int | None  # ... max=M


@dataclass(frozen=True, slots=True)
class ProxyRecord:
    """What happened to one request."""

    at: float  # time.monotonic() when it arrived
    service: str
    api: str
    bucket: str | None
    invocation_id: str | None
    attempt: int | None
    max_attempts: int | None
    outcome: str  # "forwarded", a Fault value, "scripted", or "upstream-error" (the upstream failed; not injected)
    status: int | None  # the HTTP status the client got; None for a reset or a timeout


@dataclass(slots=True)
class Rule:
    """A scripted reply for matching requests; ``times=None`` matches forever."""

    reply: Reply
    service: str | None = None
    api: str | None = None
    bucket: str | None = None
    when: Callable[[AwsRequest], bool] | None = None
    times: int | None = None
    used: int = 0

    def matches(self, request: AwsRequest) -> bool:
        return (
            (self.times is None or self.used < self.times)
            and self.service in (None, request.service)
            and self.api in (None, request.api)
            and self.bucket in (None, request.bucket)
            and (self.when is None or self.when(request))
        )


_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/[0-9]{8}/[^/]+/([a-z0-9-]+)/aws4_request")
_SDK_REQUEST = re.compile(r"attempt=([0-9]+)(?:;\s*max=([0-9]+))?")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect", "host"}
_S3_SUBRESOURCE_APIS = {
    ("GET", "policy"): "GetBucketPolicy",
    ("PUT", "policy"): "PutBucketPolicy",
    ("DELETE", "policy"): "DeleteBucketPolicy",
    ("GET", "versioning"): "GetBucketVersioning",
    ("PUT", "versioning"): "PutBucketVersioning",
    ("GET", "location"): "GetBucketLocation",
    ("GET", "tagging"): "GetBucketTagging",
}
_S3_PLAIN_APIS = {
    ("GET", False, False): "ListBuckets",
    ("PUT", True, False): "CreateBucket",
    ("DELETE", True, False): "DeleteBucket",
    ("HEAD", True, False): "HeadBucket",
    ("GET", True, False): "ListObjects",
    ("PUT", True, True): "PutObject",
    ("GET", True, True): "GetObject",
    ("HEAD", True, True): "HeadObject",
    ("DELETE", True, True): "DeleteObject",
}
_S3_LIST_PARAMETERS = {"prefix", "delimiter", "max-keys", "marker", "list-type", "continuation-token", "encoding-type"}
_QUERY_NAMESPACES = {
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
}


def _service_of(headers: Mapping[str, str], body: bytes) -> str:
    match = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
    if match:
        return match.group(1)
    return "sts" if b"Action=" in body and b"Version=2011-06-15" in body else "s3"


def _s3_api(method: str, path: str, query: str) -> tuple[str, str | None]:
    """The S3 operation of a path-style request (the endpoint is an IP address, so botocore uses path style)."""
    parts = [p for p in path.split("/") if p]
    bucket = urllib.parse.unquote(parts[0]) if parts else None
    keys = [k for k, _ in urllib.parse.parse_qsl(query, keep_blank_values=True)]
    for key in keys:
        api = _S3_SUBRESOURCE_APIS.get((method, key))
        if api:
            return api, bucket
    plain = _S3_PLAIN_APIS.get((method, bucket is not None, len(parts) > 1))
    if plain and (not keys or (method == "GET" and set(keys) <= _S3_LIST_PARAMETERS)):
        return plain, bucket
    return f"{method}:{','.join(keys) or path}", bucket


def parse_request(method: str, target: str, headers: Mapping[str, str], body: bytes) -> AwsRequest:
    """Which AWS service and API an HTTP request is (headers keyed in lower case)."""
    split = urllib.parse.urlsplit(target)
    service = _service_of(headers, body)
    bucket: str | None = None
    if service == "s3":
        api, bucket = _s3_api(method, split.path, split.query)
    else:
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"))) if body else {}
        query = dict(urllib.parse.parse_qsl(split.query))
        # Query protocol (IAM, STS) names the operation in Action; JSON protocol (SQS) in X-Amz-Target.
        target_api = headers.get("x-amz-target", "").rpartition(".")[2]
        api = form.get("Action") or query.get("Action") or target_api or f"{method}:{split.path}"
    sdk = _SDK_REQUEST.search(headers.get("amz-sdk-request", ""))
    return AwsRequest(
        service=service,
        api=api,
        method=method,
        path=split.path,
        query=split.query,
        bucket=bucket,
        headers=headers,
        body=body,
        invocation_id=headers.get("amz-sdk-invocation-id"),
        attempt=int(sdk.group(1)) if sdk else None,
        max_attempts=int(sdk.group(2)) if sdk and sdk.group(2) else None,
    )


def error_reply_for(fault: Fault, service: str) -> ErrorReply:
    """The error response a fault that is a reply stands for, as the service would send it."""
    if fault is Fault.INTERNAL_ERROR:
        return ErrorReply(500, "InternalError", "We encountered an internal error. Please try again.")
    if service == "s3":  # S3 throttles with 503 SlowDown
        return ErrorReply(503, "SlowDown", "Please reduce your request rate.")
    if fault is Fault.SLOW_DOWN:
        return ErrorReply(503, "ServiceUnavailable", "Service is unavailable. Please try again.")
    return ErrorReply(400, "Throttling", "Rate exceeded")


def render_error(reply: ErrorReply, service: str, request_id: str) -> bytes:
    code, message = escape(reply.code), escape(reply.message or reply.code)
    if service == "s3":
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>bucketwarden-fault-proxy</HostId></Error>"
        ).encode()
    kind = "Sender" if reply.status < 500 else "Receiver"
    namespace = _QUERY_NAMESPACES.get(service, f"https://{service}.amazonaws.com/")
    return (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>{kind}</Type><Code>{code}</Code>'
        f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) determined by ``parts``."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 drops connections when a client pool opens many at once
    proxy: AwsFaultProxy


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    upstream: http.client.HTTPConnection | None = None
    disable_nagle_algorithm = True  # headers and body are separate writes: Nagle would stall each reply 40 ms

    def do_GET(self) -> None:
        self.server.proxy._handle(self)

    def do_PUT(self) -> None:
        self.server.proxy._handle(self)

    def do_POST(self) -> None:
        self.server.proxy._handle(self)

    def do_DELETE(self) -> None:
        self.server.proxy._handle(self)

    def do_HEAD(self) -> None:
        self.server.proxy._handle(self)

    def handle(self) -> None:
        # A reset we made, or a client that gave up on a withheld answer, ends the connection mid-way.
        try:
            with contextlib.suppress(ConnectionError, OSError, ValueError):
                super().handle()
        finally:
            if self.upstream is not None:
                self.upstream.close()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if self.command != "HEAD" or not any(n.lower() == "content-length" for n, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def reset(self) -> None:
        """Abort the connection with a TCP RST, as a dropped load balancer connection looks to the client."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.connection.close()


def forward_request(
    handler: _Handler, upstream: tuple[str, int], body: bytes, *, timeout: float
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send the handler's request to ``upstream`` unchanged; (status, headers to pass on, body)."""
    host, port = upstream
    headers = {name: value for name, value in handler.headers.items() if name.lower() not in _HOP_BY_HOP}
    headers["Host"] = f"{host}:{port}"
    if body or handler.command in ("PUT", "POST", "PATCH"):
        headers["Content-Length"] = str(len(body))
    # One kept-alive upstream connection per client connection: a new TCP connection per request would
    # cost moto a thread each. A kept-alive connection the upstream closed meanwhile is opened again, once.
    for fresh in (False, True):
        kept_alive = None if fresh else handler.upstream
        reused = kept_alive is not None
        connection = kept_alive or http.client.HTTPConnection(host, port, timeout=timeout)
        handler.upstream = connection
        try:
            connection.request(handler.command, handler.path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            break
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            connection.close()
            handler.upstream = None
            if not reused:
                raise
    if response.will_close:
        connection.close()
        handler.upstream = None
    skip = _HOP_BY_HOP | {"server", "date"} | ({"content-length"} if handler.command != "HEAD" else set())
    kept = [(name, value) for name, value in response.getheaders() if name.lower() not in skip]
    return response.status, kept, payload


class AwsFaultProxy:
    """A threaded loopback proxy to ``upstream`` (moto) that fails a share of requests, reproducibly.

    ``rate`` is the share of requests failed, over ``services`` and, if given, only ``apis``; each failure is
    one of ``faults``, chosen with the same seeded hash. ``hang_seconds`` is how long a READ_TIMEOUT withholds
    the answer: set the client's read timeout below it. Scripted rules (``script``) come first and are
    never random. Use it as a context manager, or ``start()`` and ``stop()``::

        with MotoServer() as moto, AwsFaultProxy(moto.endpoint_url, rate=0.2, seed=7) as proxy:
            gateway = AwsGateway(AwsSettings(endpoint_url=proxy.endpoint_url, read_timeout=0.5))
    """

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.0,
        faults: Collection[Fault] = TRANSIENT_FAULTS,
        seed: int = 0,
        services: Collection[str] = SERVICES,
        apis: Collection[str] | None = None,
        hang_seconds: float = 2.0,
        upstream_timeout: float = 30.0,
    ) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
            raise ValueError(f"upstream must be http://HOST:PORT, got {upstream!r}")
        self.upstream = upstream
        self._upstream_address = (parsed.hostname, parsed.port)
        self.seed = seed
        self.hang_seconds = hang_seconds
        self.upstream_timeout = upstream_timeout
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._rate = 0.0
        self._faults: tuple[Fault, ...] = ()
        self._services: frozenset[str] = frozenset()
        self._apis: frozenset[str] | None = None
        self.configure(rate=rate, faults=faults, services=services, apis=apis)
        self._rules: list[Rule] = []
        self._seen: Counter[tuple[str, ...]] = Counter()
        self._records: list[ProxyRecord] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> str:
        if self._server is not None:
            raise RuntimeError("the fault proxy is already running")
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.proxy = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="aws-fault-proxy", daemon=True)
        self._thread.start()
        return self.endpoint_url

    def stop(self) -> None:
        server, self._server = self._server, None
        self._stopping.set()  # wakes every withheld answer
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fault proxy is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- what to inject ----------------------------------------------------------------------------------

    def configure(
        self,
        *,
        rate: float | None = None,
        faults: Collection[Fault] | None = None,
        services: Collection[str] | None = None,
        apis: Collection[str] | None = None,
    ) -> None:
        """Change the random faults; arguments left out keep their value (``apis=()`` means every API)."""
        with self._lock:
            if rate is not None:
                if not 0.0 <= rate <= 1.0:
                    raise ValueError(f"rate must be between 0 and 1, got {rate}")
                self._rate = rate
            if faults is not None:
                if not faults:
                    raise ValueError("give at least one fault")
                self._faults = tuple(sorted(set(faults)))
            if services is not None:
                self._services = frozenset(services)
            if apis is not None:
                self._apis = frozenset(apis) or None

    def script(
        self,
        reply: Reply,
        *,
        service: str | None = None,
        api: str | None = None,
        bucket: str | None = None,
        when: Callable[[AwsRequest], bool] | None = None,
        times: int | None = None,
    ) -> Rule:
        """Answer matching requests with ``reply`` (``times`` of them, or all); the first matching rule wins."""
        rule = Rule(reply, service=service, api=api, bucket=bucket, when=when, times=times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()

    def reset(self, *, seed: int | None = None) -> None:
        """Start afresh: no random faults, no rules, no records, repeat counts from zero (and a new seed)."""
        with self._lock:
            self._rate = 0.0
            self._rules.clear()
            self._records.clear()
            self._seen.clear()
            if seed is not None:
                self.seed = seed

    # --- what happened -----------------------------------------------------------------------------------

    def records(self) -> list[ProxyRecord]:
        with self._lock:
            return list(self._records)

    def reset_records(self) -> None:
        with self._lock:
            self._records.clear()

    def injected(self) -> Counter[str]:
        """Faults and scripted replies sent, by kind ("SlowDown", ..., "scripted")."""
        with self._lock:
            return Counter(r.outcome for r in self._records if r.outcome not in ("forwarded", "upstream-error"))

    def calls(self) -> dict[str, list[ProxyRecord]]:
        """Records grouped by botocore invocation id: the attempts of each call, in order."""
        grouped: dict[str, list[ProxyRecord]] = {}
        for record in self.records():
            if record.invocation_id is not None:
                grouped.setdefault(record.invocation_id, []).append(record)
        return grouped

    # --- the wire ----------------------------------------------------------------------------------------

    def _decide(self, request: AwsRequest) -> tuple[Reply | None, bool]:
        """(reply or None to forward, whether it was scripted)."""
        digest = hashlib.sha256(request.body).hexdigest()[:16]
        key = (request.service, request.api, request.method, request.path, request.query, digest)
        with self._lock:
            for rule in self._rules:
                if rule.matches(request):
                    rule.used += 1
                    return rule.reply, True
            n = self._seen[key]
            self._seen[key] = n + 1
            eligible = request.service in self._services and (self._apis is None or request.api in self._apis)
            if not eligible or self._rate <= 0.0 or _unit(self.seed, *key, n) >= self._rate:
                return None, False
            pick = int(_unit(self.seed, "kind", *key, n) * len(self._faults))
            return self._faults[pick], False

    def _record(self, request: AwsRequest, outcome: str, status: int | None, at: float) -> None:
        record = ProxyRecord(
            at=at,
            service=request.service,
            api=request.api,
            bucket=request.bucket,
            invocation_id=request.invocation_id,
            attempt=request.attempt,
            max_attempts=request.max_attempts,
            outcome=outcome,
            status=status,
        )
        with self._lock:
            self._records.append(record)

    def _forward(self, handler: _Handler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        return forward_request(handler, self._upstream_address, body, timeout=self.upstream_timeout)

    def _handle(self, handler: _Handler) -> None:
        at = time.monotonic()
        body = handler.read_body()
        headers = {name.lower(): value for name, value in handler.headers.items()}
        request = parse_request(handler.command, handler.path, headers, body)
        reply, scripted = self._decide(request)
        if reply is None:
            try:
                status, response_headers, payload = self._forward(handler, body)
            except (OSError, http.client.HTTPException):
                self._record(request, "upstream-error", None, at)  # not ours: the client sees a reset
                handler.reset()
                return
            self._record(request, "forwarded", status, at)
            handler.reply(status, response_headers, payload)
        elif reply is Fault.CONNECTION_RESET:
            self._record(request, "scripted" if scripted else reply.value, None, at)
            handler.reset()
        elif reply is Fault.READ_TIMEOUT:
            with contextlib.suppress(OSError, http.client.HTTPException):
                self._forward(handler, body)
            self._record(request, "scripted" if scripted else reply.value, None, at)
            self._stopping.wait(self.hang_seconds)
            handler.reset()
        else:
            error = reply if isinstance(reply, ErrorReply) else error_reply_for(reply, request.service)
            request_id = hashlib.sha256(f"{at}{request.path}".encode()).hexdigest()[:16].upper()
            payload = render_error(error, request.service, request_id)
            self._record(request, "scripted" if scripted else str(reply), error.status, at)
            response_headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
            handler.reply(error.status, [*response_headers, *error.headers.items()], payload)
