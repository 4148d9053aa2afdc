"""The minimal HTTP/1.1 exchange of the ESXi hot path (``virtabstract_esxi._http``), table-driven.

Answers are parsed from scripted bytes on a fake socket; the request bytes are compared with
what ``http.client`` itself writes; :func:`usable` is checked against instrumented ``http.client``.
"""

from __future__ import annotations

import functools
import http.client
import io
from typing import Any

import pytest
from virtabstract_esxi._http import MAX_HEADERS, MAX_LINE, HttpAnswer, exchange, request_bytes, usable


class FakeSocket:
    """Records what is sent; serves *answer* to ``makefile("rb")``."""

    def __init__(self, answer: bytes) -> None:
        self.answer = io.BytesIO(answer)
        self.sent: list[bytes] = []
        self.closed = False

    def sendall(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    def makefile(self, mode: str) -> Any:
        assert mode == "rb"
        answer = self.answer

        class _File(io.BufferedReader):
            def close(self) -> None:  # the socket stays open, as with socket.makefile
                pass

        return _File(answer)  # type: ignore[arg-type]

    def close(self) -> None:
        self.closed = True


def _conn(answer: bytes, host: str = "vc.example", port: int = 8080) -> tuple[http.client.HTTPConnection, FakeSocket]:
    conn = http.client.HTTPConnection(host, port)
    sock = FakeSocket(answer)
    conn.sock = sock  # type: ignore[assignment]
    return conn, sock


HEADERS = {"Cookie": 'vmware_soap_session="abc"', "SOAPAction": "urn:vim25/6.5", "Content-Type": "text/xml"}

# -- answers ------------------------------------------------------------------------------------------------

GOOD: list[tuple[str, bytes, HttpAnswer, bool]] = [
    # (case, bytes on the wire, answer, connection still open)
    (
        "content-length",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 5\r\n\r\nhello",
        HttpAnswer(200, "OK", {"content-type": "text/xml", "content-length": "5"}, b"hello"),
        True,
    ),
    (
        "chunked with an extension and a trailer",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;name=x\r\nhel\r\n2\r\nlo\r\n0\r\nX-Trailer: 1\r\n\r\n",
        HttpAnswer(200, "OK", {"transfer-encoding": "chunked"}, b"hello"),
        True,
    ),
    (
        "SOAP fault answer (500) with a body",
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail",
        HttpAnswer(500, "Internal Server Error", {"content-length": "4"}, b"fail"),
        True,
    ),
    (
        "Connection: close",
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok",
        HttpAnswer(200, "OK", {"connection": "keep-alive, Close", "content-length": "2"}, b"ok"),
        False,
    ),
    (
        "HTTP/1.0",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        HttpAnswer(200, "OK", {"content-length": "2"}, b"ok"),
        False,
    ),
    (
        "body delimited by the close",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\nuntil the end",
        HttpAnswer(200, "OK", {"content-type": "text/xml"}, b"until the end"),
        False,
    ),
    (
        "100 Continue first",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        HttpAnswer(200, "OK", {"content-length": "2"}, b"ok"),
        True,
    ),
    (
        "folded header and a repeated header",
        b"HTTP/1.1 200 OK\r\nX-Long: a\r\n  b\r\nSet-Cookie: one=1\r\nset-cookie: two=2\r\nContent-Length: 0\r\n\r\n",
        HttpAnswer(200, "OK", {"x-long": "a b", "set-cookie": "one=1, two=2", "content-length": "0"}, b""),
        True,
    ),
    (
        "204 has no body",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        HttpAnswer(204, "No Content", {}, b""),
        True,
    ),
    (
        "status line without a reason",
        b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
        HttpAnswer(200, "", {"content-length": "0"}, b""),
        True,
    ),
    (
        "bare LF line ends",
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
        HttpAnswer(200, "OK", {"content-length": "2"}, b"ok"),
        True,
    ),
]


@pytest.mark.parametrize(("case", "wire", "expected", "open_after"), GOOD, ids=[c[0] for c in GOOD])
def test_answers(case: str, wire: bytes, expected: HttpAnswer, open_after: bool) -> None:
    conn, sock = _conn(wire)
    answer = exchange(conn, "/sdk", HEADERS, b"<body/>")
    assert answer == expected
    assert (conn.sock is not None) is open_after
    assert sock.closed is not open_after
    assert len(sock.sent) == 1  # headers and body in one write


BAD: list[tuple[str, bytes, type[BaseException]]] = [
    ("nothing (server closed)", b"", http.client.RemoteDisconnected),
    ("not HTTP", b"SSH-2.0-OpenSSH\r\n\r\n", http.client.BadStatusLine),
    ("HTTP/2 status line", b"HTTP/2 200 OK\r\n\r\n", http.client.BadStatusLine),
    ("non-numeric status", b"HTTP/1.1 2xx OK\r\n\r\n", http.client.BadStatusLine),
    ("truncated body", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", http.client.IncompleteRead),
    ("bad chunk size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", http.client.IncompleteRead),
    (
        "chunk without its CRLF",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
        http.client.IncompleteRead,
    ),
    (
        "truncated chunk",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nok",
        http.client.IncompleteRead,
    ),
    ("invalid Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", http.client.HTTPException),
    (
        "conflicting Content-Length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        http.client.HTTPException,
    ),
    ("gzip transfer coding", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", http.client.HTTPException),
    ("header line without a colon", b"HTTP/1.1 200 OK\r\nnonsense\r\n\r\n", http.client.HTTPException),
    ("folded first header", b"HTTP/1.1 200 OK\r\n folded\r\n\r\n", http.client.HTTPException),
    (
        "too many headers",
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADERS + 1)) + b"\r\n",
        http.client.HTTPException,
    ),
    ("line too long", b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_LINE + b"\r\n\r\n", http.client.LineTooLong),
]


@pytest.mark.parametrize(("case", "wire", "error"), BAD, ids=[c[0] for c in BAD])
def test_malformed_answers_raise_and_close(case: str, wire: bytes, error: type[BaseException]) -> None:
    conn, sock = _conn(wire)
    with pytest.raises(error):
        exchange(conn, "/sdk", HEADERS, b"<body/>")
    assert conn.sock is None and sock.closed  # never back in the pool half-read


def test_send_failure_closes_the_connection() -> None:
    conn, sock = _conn(b"")

    def broken(data: bytes) -> None:
        raise ConnectionResetError("reset")

    sock.sendall = broken  # type: ignore[method-assign]
    with pytest.raises(ConnectionResetError):
        exchange(conn, "/sdk", HEADERS, b"x")
    assert conn.sock is None


def test_needs_an_open_connection() -> None:
    conn = http.client.HTTPConnection("vc.example", 443)
    with pytest.raises(http.client.NotConnected):
        exchange(conn, "/sdk", HEADERS, b"x")


# -- requests -----------------------------------------------------------------------------------------------


def _http_client_bytes(conn: http.client.HTTPConnection, headers: dict[str, str], body: bytes) -> bytes:
    """What ``http.client`` writes for the same request (its ``send`` captured)."""
    sent: list[bytes] = []
    conn.sock = FakeSocket(b"")  # type: ignore[assignment]
    conn.send = sent.append  # type: ignore[method-assign]
    conn.request("POST", "/sdk", body, headers)
    return b"".join(sent)


@pytest.mark.parametrize(
    ("host", "port", "https", "host_header"),
    [
        ("vc.example", 443, True, "vc.example"),
        ("vc.example", 8443, True, "vc.example:8443"),
        ("127.0.0.1", 80, False, "127.0.0.1"),
        ("127.0.0.1", 43123, False, "127.0.0.1:43123"),
        ("::1", 443, True, "[::1]"),
        ("::1", 8443, True, "[::1]:8443"),
    ],
)
def test_request_bytes_are_what_http_client_writes(host: str, port: int, https: bool, host_header: str) -> None:
    cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
    body = "<soap>é</soap>".encode()
    ours = request_bytes(cls(host, port), "/sdk", HEADERS, body)
    assert ours == _http_client_bytes(cls(host, port), HEADERS, body)
    assert f"\r\nHost: {host_header}\r\n".encode() in ours


@pytest.mark.parametrize(
    "headers",
    [{"Cookie": "a\r\nX-Evil: 1"}, {"X\r\nEvil": "1"}, {"": "1"}, {"Bad:Name": "1"}, {"Cookie": "nul\0"}],
)
def test_header_injection_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="invalid HTTP header"):
        request_bytes(http.client.HTTPConnection("h", 80), "/sdk", headers, b"")


# -- when the exchange is used --------------------------------------------------------------------------------


def test_usable_only_on_open_plain_uninstrumented_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    conn, _ = _conn(b"")
    assert usable(conn)
    assert not usable(http.client.HTTPConnection("h", 80))  # not open: http.client (and pyVmomi) open it

    class Custom(http.client.HTTPConnection):
        pass

    custom = Custom("h", 80)
    custom.sock = FakeSocket(b"")  # type: ignore[assignment]
    assert not usable(custom)  # pyVmomi's Unix-socket and TLS-tunnel connections are subclasses
    tunnel = http.client.HTTPConnection("proxy", 3128)
    tunnel.set_tunnel("vc.example", 443)
    tunnel.sock = FakeSocket(b"")  # type: ignore[assignment]
    assert not usable(tunnel)

    original = http.client.HTTPConnection.request

    @functools.wraps(original)
    def counting(self: http.client.HTTPConnection, *args: Any, **kwargs: Any) -> Any:
        return original(self, *args, **kwargs)

    monkeypatch.setattr(http.client.HTTPConnection, "request", counting)
    assert not usable(conn)  # instrumentation must see every request
    monkeypatch.undo()
    assert usable(conn)
    monkeypatch.setattr(http.client.HTTPConnection, "getresponse", lambda self: None)
    assert not usable(conn)
