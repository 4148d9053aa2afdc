"""A minimal HTTP/1.1 request/answer exchange on one of pyVmomi's pooled connections.

The per-operation hot path (:mod:`._lean`: a VM's state, a task's status, a power or snapshot
call) is one small SOAP request and one small answer. ``http.client`` formats such a request
with a validated ``putheader`` per header, writes headers and body with two ``send`` calls (so
the server wakes twice), and parses the answer's headers with the ``email`` package: together
about a third of a loopback round trip to vcsim (~0.1 ms of ~0.3 ms). :func:`exchange` writes
the request with one ``sendall`` and reads the status line, the headers and a
``Content-Length``, chunked or read-until-close body itself.

It borrows only the connection's socket: ``http.client``'s own state machine stays idle, so
the connection goes back to pyVmomi's pool usable by either. It is used only for plain
``HTTPConnection`` / ``HTTPSConnection`` objects without a proxy tunnel (:func:`usable`);
pyVmomi's Unix-socket and TLS-tunnel connections keep ``http.client``, and so does every
connection while ``http.client`` is instrumented (a wrapper must see every request). A malformed answer raises
an ``http.client.HTTPException`` (an EOF before the status line ``RemoteDisconnected``), as
``http.client`` would, and closes the connection; when the answer says the connection ends
(``Connection: close``, HTTP/1.0, a body delimited by the close), it is closed too, and
``http.client`` opens it again on its next use.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["HttpAnswer", "exchange", "usable"]

MAX_LINE = 65536
"""Longest status or header line accepted (``http.client``'s limit)."""
MAX_HEADERS = 100
"""Most header lines accepted (``http.client``'s limit)."""

_PLAIN = (http.client.HTTPConnection, http.client.HTTPSConnection)


class HttpAnswer(NamedTuple):
    """One HTTP answer, read whole."""

    status: int
    reason: str
    headers: Mapping[str, str]
    """Lower-case names; a repeated header's values joined with ``", "``."""
    body: bytes


_WATCHED = ("request", "getresponse", "send")
"""Methods that instrumentation wraps (tracing, recording, request counters)."""


def _instrumented(cls: type) -> bool:
    """True when one of ``http.client``'s request methods on *cls* is not ``http.client``'s own code."""
    for name in _WATCHED:
        code = getattr(getattr(cls, name, None), "__code__", None)
        if code is None or code.co_filename != http.client.__file__:
            return True
    return False


def usable(conn: Any) -> bool:
    """True when :func:`exchange` may talk on *conn*.

    Only on an open plain http(s) connection without a proxy tunnel (pyVmomi opens a new pooled
    connection itself, with its certificate-thumbprint check; one that was closed is reopened by
    ``http.client``, as pyVmomi's own call would), and only while ``http.client`` is not
    instrumented: a wrapped ``HTTPConnection.request`` (OpenTelemetry, a recorder, a test's or a
    benchmark's round-trip counter) must see every request, so then ``http.client`` carries them.
    """
    cls = type(conn)
    return (
        cls in _PLAIN
        and conn.sock is not None
        and getattr(conn, "_tunnel_host", None) is None
        and not _instrumented(cls)
    )


def _host_header(conn: Any) -> str:
    host = str(conn.host)
    if ":" in host and not host.startswith("["):  # an IPv6 literal
        host = f"[{host}]"
    return host if conn.port == conn.default_port else f"{host}:{conn.port}"


def request_bytes(conn: Any, path: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """``POST path`` with *headers* and *body* as ``http.client`` writes it (with ``Host``, ``Accept-Encoding``)."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {_host_header(conn)}",
        "Accept-Encoding: identity",
        f"Content-Length: {len(body)}",
    ]
    for name, value in headers.items():
        if any(c in name or c in value for c in "\r\n\0") or not name or ":" in name:
            raise ValueError(f"invalid HTTP header {name!r}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _line(fp: Any) -> bytes:
    line: bytes = fp.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise http.client.LineTooLong("HTTP line")
    return line


def _status(fp: Any) -> tuple[str, int, str]:
    line = _line(fp)
    if not line:
        raise http.client.RemoteDisconnected("Remote end closed connection without response")
    try:
        version, code, *rest = line.decode("latin-1").rstrip("\r\n").split(None, 2)
        status = int(code)
    except ValueError:
        raise http.client.BadStatusLine(repr(line)) from None
    if version not in ("HTTP/1.1", "HTTP/1.0") or not 100 <= status <= 999:
        raise http.client.BadStatusLine(repr(line))
    return version, status, rest[0] if rest else ""


def _headers(fp: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    last: str | None = None
    for _ in range(MAX_HEADERS + 1):
        line = _line(fp)
        if line in (b"\r\n", b"\n", b""):
            return headers
        text = line.decode("latin-1").rstrip("\r\n")
        if text[:1] in (" ", "\t"):  # obsolete line folding: continues the previous value
            if last is None:
                raise http.client.HTTPException(f"folded header line without a header: {text!r}")
            headers[last] = f"{headers[last]} {text.strip()}"
            continue
        name, colon, value = text.partition(":")
        if not colon or not name or name != name.strip():
            raise http.client.HTTPException(f"malformed header line {text!r}")
        last = name.lower()
        value = value.strip()
        headers[last] = f"{headers[last]}, {value}" if last in headers else value
    raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")


def _read_exactly(fp: Any, size: int) -> bytes:
    data: bytes = fp.read(size)
    if len(data) != size:
        raise http.client.IncompleteRead(data, size - len(data))
    return data


def _chunked(fp: Any) -> bytes:
    parts: list[bytes] = []
    while True:
        size_text = _line(fp).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise http.client.IncompleteRead(b"".join(parts)) from None
        if size < 0:
            raise http.client.IncompleteRead(b"".join(parts))
        if size == 0:
            _headers(fp)  # trailers, up to the empty line
            return b"".join(parts)
        parts.append(_read_exactly(fp, size))
        if _line(fp) not in (b"\r\n", b"\n"):
            raise http.client.IncompleteRead(b"".join(parts))


def _answer(fp: Any) -> tuple[HttpAnswer, bool]:
    """Read one answer; return it and whether the connection can carry another request."""
    version, status, reason = _status(fp)
    while status == 100:  # "100 Continue" (never asked for; skipped as http.client does)
        _headers(fp)
        version, status, reason = _status(fp)
    headers = _headers(fp)
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    reusable = version == "HTTP/1.1" and "close" not in tokens
    coding = headers.get("transfer-encoding")
    length = headers.get("content-length")
    if coding is not None:
        if coding.strip().lower() != "chunked":
            raise http.client.HTTPException(f"unsupported Transfer-Encoding {coding!r}")
        body = _chunked(fp)
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    elif length is not None:
        values = {v.strip() for v in length.split(",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise http.client.HTTPException(f"invalid Content-Length {length!r}")
        body = _read_exactly(fp, int(values.pop()))
    else:  # delimited by the end of the connection
        body = fp.read()
        reusable = False
    return HttpAnswer(status, reason, headers, body), reusable


def exchange(conn: Any, path: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
    """``POST`` *body* to *path* on *conn* (see :func:`usable`) and read the whole answer.

    Raises ``OSError`` (socket errors, timeouts) and ``http.client.HTTPException`` (a malformed
    or truncated answer) after closing the connection; closes it as well when the answer says it
    cannot carry another request.
    """
    request = request_bytes(conn, path, headers, body)
    if conn.sock is None:
        raise http.client.NotConnected("exchange() needs an open connection (see usable())")
    fp = None
    try:
        conn.sock.sendall(request)
        fp = conn.sock.makefile("rb")
        answer, reusable = _answer(fp)
    except BaseException:
        if fp is not None:
            fp.close()
        conn.close()
        raise
    fp.close()
    if not reusable:
        conn.close()
    return answer
