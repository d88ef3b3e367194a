"""`KeepAliveWSGIServer`: a threaded standard-library WSGI server that keeps HTTP/1.1 connections open, for moto.

moto's `ThreadedMotoServer` uses werkzeug's development server, which answers every request with
`Connection: close` (it cannot tell where an unread request body ends). Every boto3 call then opened a new TCP
connection, which S3, IAM and STS do not make clients do, and benchmarks of the operator's CPU counted a connect()
and a getaddrinfo() per call. This server keeps connections alive as AWS does: it reads each request body whole
(by Content-Length, or by decoding a chunked body) so the next request starts where it should, buffers each
response to send it with a Content-Length, and closes a connection the client asks to close or that stays idle
for `idle_timeout` seconds (S3 closes idle ones after about 20 s), so idle threads do not pile up.

It imports only the standard library: `_moto_server.py`, which runs in a child process that imports nothing of
bucketwarden, loads it as a sibling file.
"""

from __future__ import annotations

import contextlib
import io
import sys
import traceback
import urllib.parse
from collections.abc import Callable, Iterable
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

WSGIEnvironment = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]


class WSGIApplication(Protocol):
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse, /) -> Iterable[bytes]: ...


# Adds to the environ built from a request's headers; moto's keeps S3 metadata names that contain underscores.
EnvironHook = Callable[[WSGIEnvironment, Message], None]

DEFAULT_IDLE_TIMEOUT = 20.0  # seconds; about what S3 waits before it closes an idle kept-alive connection
_MAX_LINE = 65536  # the longest request-body chunk-size or trailer line accepted, as http.server does for headers
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


class BadRequestBody(ValueError):
    """The request's framing (Content-Length, Transfer-Encoding, chunks) is malformed; the connection is closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class KeepAliveWSGIServer(ThreadingHTTPServer):
    """Serves `app` on `address`, one daemon thread per connection, keeping connections alive between requests."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 drops connections when a client pool opens many at once

    def __init__(
        self,
        address: tuple[str, int],
        app: WSGIApplication,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        environ_hook: EnvironHook | None = None,
    ) -> None:
        self.app = app
        self.idle_timeout = idle_timeout
        self.environ_hook = environ_hook
        self.connections_accepted = 0  # TCP connections accepted so far: tests prove reuse with it
        super().__init__(address, _WSGIRequestHandler)

    def get_request(self) -> tuple[Any, Any]:
        request = super().get_request()
        self.connections_accepted += 1  # only the serving thread accepts, so no lock is needed
        return request


class _WSGIRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bucketwarden-keepalive-wsgi"
    disable_nagle_algorithm = True  # headers and body are separate writes: Nagle would stall each reply 40 ms
    server: KeepAliveWSGIServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)  # an idle connection's read of a request times out

    def handle(self) -> None:
        # A client that goes away mid-request is not an error worth a traceback in the server's log.
        with contextlib.suppress(ConnectionError, TimeoutError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # an access log per request would only fill the child's log; application errors are still printed

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except BadRequestBody as error:
            self.close_connection = True  # where the next request would start is unknown
            self.send_error(error.status, str(error))
            return
        if body is None:
            self.close_connection = True  # the client went away before sending the whole body
            return
        status, headers, payload = self._call_app(self._environ(body))
        self._send(status, headers, payload)

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    # --- the request -------------------------------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        """The whole request body, so that the connection is left at the next request; None if it was cut short."""
        encodings = [c.strip().lower() for c in ",".join(self.headers.get_all("Transfer-Encoding", [])).split(",")]
        encodings = [c for c in encodings if c]
        if encodings:
            if encodings != ["chunked"]:
                raise BadRequestBody(501, f"unsupported Transfer-Encoding {', '.join(encodings)}")
            if "Content-Length" in self.headers:
                # Both framings at once is how requests are smuggled; decode it, but take no further request.
                self.close_connection = True
            return self._read_chunked()
        lengths = {value.strip() for value in self.headers.get_all("Content-Length", [])}
        if not lengths:
            return b""  # an HTTP/1.1 request without either header has no body
        if len(lengths) > 1 or not next(iter(lengths)).isdigit():
            raise BadRequestBody(400, f"bad Content-Length {', '.join(sorted(lengths))}")
        length = int(lengths.pop())
        body = self.rfile.read(length) if length else b""
        return body if len(body) == length else None

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        while True:
            line = self._read_line()
            if line is None:
                return None
            size_text = line.split(b";", 1)[0].strip()  # chunk extensions are allowed, and ignored
            if not size_text or not set(size_text) <= _HEX_DIGITS:  # int() alone would take "-1", "0x1", "1_0"
                raise BadRequestBody(400, f"bad chunk size {size_text!r}")
            size = int(size_text, 16)
            if size == 0:
                while True:  # trailer fields up to the empty line; dropped, as most servers do
                    trailer = self._read_line()
                    if trailer is None:
                        return None
                    if not trailer.strip():
                        return b"".join(chunks)
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                return None
            chunks.append(chunk)
            end = self._read_line()
            if end is None:
                return None
            if end.strip():
                raise BadRequestBody(400, "a chunk is longer than its size says")

    def _read_line(self) -> bytes | None:
        line = self.rfile.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise BadRequestBody(400, "a chunk line is too long")
        return line if line.endswith(b"\n") else None

    def _environ(self, body: bytes) -> WSGIEnvironment:
        """The WSGI environ (PEP 3333) of the request: what werkzeug's dev server would build, with the body read."""
        target = self.path
        host_from_target = None
        if not target.startswith("/") and "://" in target:  # absolute form, as sent to a proxy
            split = urllib.parse.urlsplit(target)
            host_from_target = split.netloc
            target = urllib.parse.urlunsplit(("", "", split.path or "/", split.query, ""))
        path, _, query = target.partition("?")
        host, port = self.server.server_address[:2]
        environ: WSGIEnvironment = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.input_terminated": True,  # wsgi.input ends where the body does, chunked or not
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "SERVER_SOFTWARE": self.server_version,
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            # WSGI strings are bytes as latin-1; the request line arrived as latin-1, so unquote to latin-1 too
            # (as wsgiref does; werkzeug's round trip through UTF-8 gives the same for any valid UTF-8 path).
            "PATH_INFO": urllib.parse.unquote(path, "latin-1"),
            "QUERY_STRING": query,
            # The target as it arrived: moto matches S3 keys against the undecoded path (an encoded slash).
            "REQUEST_URI": self.path,
            "RAW_URI": self.path,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": self.client_address[1],
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
        }
        for name, value in self.headers.items():
            if "_" in name:
                continue  # WSGI cannot tell X_Foo from X-Foo; like werkzeug, drop the one that could spoof the other
            key = name.upper().replace("-", "_")
            value = value.replace("\r\n", "")
            if key in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                continue  # the body is read and decoded: its length is set below
            if key != "CONTENT_TYPE":
                key = "HTTP_" + key
                if key in environ:
                    value = f"{environ[key]},{value}"
            environ[key] = value
        if body or "Content-Length" in self.headers or "Transfer-Encoding" in self.headers:
            environ["CONTENT_LENGTH"] = str(len(body))
        if host_from_target:
            environ["HTTP_HOST"] = host_from_target
        if self.server.environ_hook is not None:
            self.server.environ_hook(environ, self.headers)
        return environ

    # --- the application and the response ----------------------------------------------------------------

    def _call_app(self, environ: WSGIEnvironment) -> tuple[str, list[tuple[str, str]], bytes]:
        """Run the application to the end and buffer what it answers; a failure is a 500, as werkzeug sends."""
        started: list[tuple[str, list[tuple[str, str]]]] = []
        body: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            if started and not exc_info:
                raise AssertionError("start_response called twice without exc_info")
            started[:] = [(status, headers)]  # nothing is sent before the application ends, so it may replace them
            return body.append

        try:
            result = self.server.app(environ, start_response)
            try:
                for data in result:
                    body.append(data)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            if not started:
                raise AssertionError("the application did not call start_response")
        except Exception:
            print(f"Error on request {self.command} {self.path}:", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            return "500 Internal Server Error", [("Content-Type", "text/plain")], b"Internal Server Error\n"
        status, headers = started[0]
        return status, headers, b"".join(body)

    def _send(self, status: str, headers: list[tuple[str, str]], payload: bytes) -> None:
        code_text, _, reason = status.partition(" ")
        code = int(code_text)
        bodiless = self.command == "HEAD" or code in (204, 304) or 100 <= code < 200
        names = {name.lower() for name, _ in headers}
        self.send_response_only(code, reason or None)
        if "server" not in names:
            self.send_header("Server", self.version_string())
        if "date" not in names:
            self.send_header("Date", self.date_time_string())
        for name, value in headers:
            lowered = name.lower()
            if lowered == "connection" and value.strip().lower() == "close":
                self.close_connection = True
            if lowered in _HOP_BY_HOP and not (lowered == "content-length" and self.command == "HEAD"):
                continue  # framing is ours; a HEAD keeps the length the GET would have
            if lowered == "content-length" and code == 204:
                continue
            self.send_header(name, value)
        if not bodiless:
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        elif self.request_version == "HTTP/1.0":
            self.send_header("Connection", "keep-alive")  # an HTTP/1.0 client asked for it, or it would be closed
        self.end_headers()
        if not bodiless and payload:
            self.wfile.write(payload)
