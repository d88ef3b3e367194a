"""KeepAliveWSGIServer on the wire: kept-alive connections, the WSGI environ, request bodies, response framing."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from bucketwarden_testkit._keepalive_wsgi import KeepAliveWSGIServer

ENVIRON_KEYS = (
    "REQUEST_METHOD",
    "PATH_INFO",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "RAW_URI",
    "SCRIPT_NAME",
    "wsgi.url_scheme",
    "wsgi.input_terminated",
    "HTTP_X_FOO",
    "HTTP_HOST",
    "HTTP_TRANSFER_ENCODING",
    "HTTP_X_AMZ_META_MY_KEY",
    "HOOKED",
)


def echo_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answers with the environ entries the tests look at and the body it read; some paths do something else."""
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("the application failed")
    if path == "/empty":
        start_response("204 No Content", [("Content-Length", "0")])
        return []
    if path == "/close":
        start_response("200 OK", [("Connection", "close")])
        return [b"bye"]
    if path == "/fixed":  # like werkzeug's Response for a HEAD: the length of the GET's body, and no body
        start_response("200 OK", [("Content-Length", "10")])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [b"0123456789"]
    if path == "/generator":
        return _generator(start_response)
    seen = {key: environ[key] for key in ENVIRON_KEYS if key in environ}
    seen["body"] = environ["wsgi.input"].read().decode("latin-1")
    payload = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def _generator(start_response: Callable[..., Any]) -> Iterator[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain")])  # no Content-Length: the server adds it
    write(b"written ")
    yield b"and "
    yield b"yielded"


def hook(environ: dict[str, Any], headers: Any) -> None:
    environ["HOOKED"] = ",".join(name for name in headers if "_" in name)


@pytest.fixture
def server() -> Iterator[KeepAliveWSGIServer]:
    server = KeepAliveWSGIServer(("127.0.0.1", 0), echo_app, idle_timeout=0.5, environ_hook=hook)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def connect(server: KeepAliveWSGIServer) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)


def raw(server: KeepAliveWSGIServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5)


def ask(connection: http.client.HTTPConnection, method: str, path: str, **kwargs: Any) -> http.client.HTTPResponse:
    connection.request(method, path, **kwargs)
    response = connection.getresponse()
    response.read()
    return response


def environ_of(connection: http.client.HTTPConnection, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    connection.request(method, path, **kwargs)
    response = connection.getresponse()
    assert response.status == 200
    result: dict[str, Any] = json.loads(response.read())
    return result


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_several_requests_share_one_connection(server: KeepAliveWSGIServer) -> None:
    connection = connect(server)
    for n in range(5):
        response = ask(connection, "PUT" if n % 2 else "GET", f"/bucket/key-{n}", body=b"x" * n)
        assert response.status == 200
        assert response.getheader("Connection") is None
        assert not response.will_close
    assert server.connections_accepted == 1
    connection.close()


def test_the_environ_is_what_a_wsgi_server_builds(server: KeepAliveWSGIServer) -> None:
    connection = connect(server)
    headers = {"Content-Type": "text/plain", "X-Foo": "one", "x-amz-meta-my_key": "underscored"}
    environ = environ_of(
        connection, "POST", "/bucket/a%2Fb%20c%C3%A9?list-type=2&prefix=a%2F", body=b"hi", headers=headers
    )
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["PATH_INFO"] == "/bucket/a/b cé".encode().decode("latin-1")  # unquoted; WSGI strings are latin-1
    assert environ["RAW_URI"] == "/bucket/a%2Fb%20c%C3%A9?list-type=2&prefix=a%2F"  # as sent
    assert environ["QUERY_STRING"] == "list-type=2&prefix=a%2F"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "2"
    assert environ["body"] == "hi"
    assert environ["HTTP_X_FOO"] == "one"
    assert environ["HTTP_HOST"] == f"127.0.0.1:{server.server_address[1]}"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("127.0.0.1", str(server.server_address[1]))
    assert (environ["SERVER_PROTOCOL"], environ["SCRIPT_NAME"], environ["wsgi.url_scheme"]) == ("HTTP/1.1", "", "http")
    assert "HTTP_X_AMZ_META_MY_KEY" not in environ  # an underscored name is dropped ...
    assert environ["HOOKED"] == "x-amz-meta-my_key"  # ... but the hook sees it, as spelled


def test_repeated_headers_are_joined_and_a_bodiless_request_has_no_length(server: KeepAliveWSGIServer) -> None:
    sock = raw(server)
    sock.sendall(b"GET /x HTTP/1.1\r\nHost: h\r\nX-Foo: a\r\nX-Foo: b\r\nConnection: close\r\n\r\n")
    _, _, body = read_until_closed(sock).partition(b"\r\n\r\n")
    environ = json.loads(body)
    assert environ["HTTP_X_FOO"] == "a,b"
    assert "CONTENT_LENGTH" not in environ
    assert environ["body"] == ""


def test_a_chunked_body_is_decoded_and_the_connection_stays_usable(server: KeepAliveWSGIServer) -> None:
    connection = connect(server)
    environ = environ_of(connection, "PUT", "/bucket/key", body=iter([b"hello ", b"chunked ", b"world"]))
    assert environ["body"] == "hello chunked world"
    assert environ["CONTENT_LENGTH"] == str(len("hello chunked world"))
    assert "HTTP_TRANSFER_ENCODING" not in environ  # the body the application reads is no longer chunked
    assert environ["wsgi.input_terminated"] is True
    assert environ_of(connection, "GET", "/after")["body"] == ""
    assert server.connections_accepted == 1


def test_chunk_extensions_and_trailers_are_accepted(server: KeepAliveWSGIServer) -> None:
    sock = raw(server)
    sock.sendall(
        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n"
        b"GET /y HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    replies = read_until_closed(sock).split(b"HTTP/1.1 200 OK")
    assert len(replies) == 3  # both answered, on one connection
    assert b'"body": "hello!"' in replies[1]
    assert b'"PATH_INFO": "/y"' in replies[2]


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"Content-Length: -1\r\n\r\n", b"400"),
        (b"Content-Length: 1, 2\r\n\r\nab", b"400"),
        (b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", b"501"),
        (b"Transfer-Encoding: chunked\r\n\r\n-1\r\n", b"400"),
        (b"Transfer-Encoding: chunked\r\n\r\n0x1\r\na\r\n0\r\n\r\n", b"400"),
        (b"Transfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n", b"400"),
    ],
)
def test_malformed_framing_is_refused_and_closes(
    server: KeepAliveWSGIServer, request_head: bytes, status: bytes
) -> None:
    sock = raw(server)
    sock.sendall(b"PUT /x HTTP/1.1\r\nHost: h\r\n" + request_head)
    reply = read_until_closed(sock)  # returns only because the server closes
    assert reply.startswith(b"HTTP/1.1 " + status)
    assert b"\r\nConnection: close\r\n" in reply


def test_head_keeps_the_applications_length_and_sends_no_body(server: KeepAliveWSGIServer) -> None:
    connection = connect(server)
    head = ask(connection, "HEAD", "/fixed")
    assert head.status == 200
    assert head.getheader("Content-Length") == "10"
    # Had a body followed the HEAD's headers, it would be read as the start of this response.
    assert environ_of(connection, "GET", "/after-head")["PATH_INFO"] == "/after-head"
    assert server.connections_accepted == 1


def test_no_content_has_neither_length_nor_body(server: KeepAliveWSGIServer) -> None:
    sock = raw(server)
    sock.sendall(b"DELETE /empty HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    first, _, rest = read_until_closed(sock).partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 204")
    assert b"content-length" not in first.lower()
    assert rest.startswith(b"HTTP/1.1 200")  # nothing between the 204's headers and the next response


def test_every_response_has_a_content_length(server: KeepAliveWSGIServer) -> None:
    connection = connect(server)
    connection.request("GET", "/generator")
    response = connection.getresponse()
    assert response.getheader("Content-Length") == str(len(b"written and yielded"))
    assert response.getheader("Transfer-Encoding") is None
    assert response.read() == b"written and yielded"


def test_a_client_that_asks_to_close_is_closed(server: KeepAliveWSGIServer) -> None:
    sock = raw(server)
    sock.sendall(b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    reply = read_until_closed(sock)
    assert b"\r\nConnection: close\r\n" in reply
    assert reply.count(b"HTTP/1.1 200") == 1


def test_an_http_1_0_client_is_closed_unless_it_asks_for_keep_alive(server: KeepAliveWSGIServer) -> None:
    sock = raw(server)
    sock.sendall(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n")
    reply = read_until_closed(sock)
    assert reply.count(b"HTTP/1.1 200") == 2
    assert b"\r\nConnection: keep-alive\r\n" in reply
    assert reply.endswith(b"}") and b"\r\nConnection: close\r\n" in reply.split(b"HTTP/1.1 200")[2]


def test_an_application_that_says_close_closes(server: KeepAliveWSGIServer) -> None:
    connection = connect(server)
    response = ask(connection, "GET", "/close")
    assert response.will_close
    assert response.getheader("Connection") == "close"


def test_an_idle_connection_is_closed_after_the_timeout(server: KeepAliveWSGIServer) -> None:
    sock = raw(server)
    sock.sendall(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
    started = time.monotonic()
    reply = read_until_closed(sock)  # the server closes it once idle for idle_timeout (0.5 s)
    assert reply.startswith(b"HTTP/1.1 200")
    assert 0.4 < time.monotonic() - started < 4.0


def test_an_application_error_is_a_500_and_the_connection_lives_on(
    server: KeepAliveWSGIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    connection = connect(server)
    assert ask(connection, "GET", "/boom").status == 500
    assert "RuntimeError: the application failed" in capsys.readouterr().err
    assert environ_of(connection, "GET", "/fine")["PATH_INFO"] == "/fine"
    assert server.connections_accepted == 1
