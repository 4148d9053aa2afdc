"""Shared machinery of the reliability suite: the tally, the secret scanner, a fault-injecting HTTP proxy.

* :class:`Tally` counts what the suite did (faults injected and survived, inputs tried,
  secret scans, concurrent operations, TLS checks). ``conftest.py`` writes it to JSON at
  the end of the session and prints a one-line summary.
* :class:`SecretScanner` greps every captured text (reprs, logs, messages, tracebacks,
  CLI output) for the canary password, and counts each scan.
* :class:`SoapProxy` sits between pyVmomi and vcsim and, on request, answers a SOAP call
  with an HTTP status (503), drops the TCP connection, delays it, or runs a hook first.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import re
import socket
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[2]

CANARY = "Canary-9xQ7w!Pz"
"""The secret the suite hunts for. It has a character that URL-encoding changes, so both forms are searched."""


# -- counting ----------------------------------------------------------------------------------


class Tally:
    """Counters for the report; one per session (see ``conftest.py``). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.survived: Counter[str] = Counter()
        self.inputs: Counter[str] = Counter()
        self.scans: Counter[str] = Counter()
        self.operations: Counter[str] = Counter()
        self.tls_checks: Counter[str] = Counter()

    @contextlib.contextmanager
    def fault(self, backend: str, kind: str, n: int = 1) -> Iterator[None]:
        """Count *n* faults of *kind* injected on *backend*; they count as survived if the block passes."""
        key = f"{backend}:{kind}"
        with self._lock:
            self.injected[key] += n
        yield
        with self._lock:
            self.survived[key] += n

    def add_inputs(self, area: str, n: int = 1) -> None:
        with self._lock:
            self.inputs[area] += n

    def add_scan(self, channel: str, n: int = 1) -> None:
        with self._lock:
            self.scans[channel] += n

    def add_operations(self, area: str, n: int) -> None:
        with self._lock:
            self.operations[area] += n

    def add_tls(self, check: str) -> None:
        with self._lock:
            self.tls_checks[check] += 1

    def as_dict(self) -> dict[str, Any]:
        def by_backend(counter: Counter[str]) -> dict[str, int]:
            out: Counter[str] = Counter()
            for key, n in counter.items():
                out[key.split(":", 1)[0]] += n
            return dict(sorted(out.items()))

        return {
            "faults": {
                "injected": sum(self.injected.values()),
                "survived": sum(self.survived.values()),
                "injected_by_backend": by_backend(self.injected),
                "survived_by_backend": by_backend(self.survived),
                "kinds": {k: [self.injected[k], self.survived[k]] for k in sorted(self.injected)},
            },
            "inputs": {"total": sum(self.inputs.values()), **dict(sorted(self.inputs.items()))},
            "secret_scans": {"total": sum(self.scans.values()), **dict(sorted(self.scans.items()))},
            "concurrent_operations": {
                "total": sum(self.operations.values()),
                **dict(sorted(self.operations.items())),
            },
            "tls_checks": {"total": sum(self.tls_checks.values()), **dict(sorted(self.tls_checks.items()))},
        }


TALLY = Tally()
"""The session's tally (module-level so helpers and subprocess-free code can reach it)."""


# -- secrets -----------------------------------------------------------------------------------


def secret_forms(secret: str) -> list[str]:
    """The ways a leaked secret could be spelled in text: as is, URL-encoded, repr-escaped, base64."""
    forms = {secret, quote(secret, safe=""), quote(secret), secret.encode("unicode_escape").decode()}
    forms.add(base64.b64encode(secret.encode()).decode().rstrip("="))
    return sorted(forms)


@dataclass
class SecretScanner:
    """Greps texts for every form of the canaries; each text scanned counts once per channel."""

    secrets: tuple[str, ...] = (CANARY,)
    tally: Tally = field(default_factory=lambda: TALLY)

    def check(self, text: str | bytes | None, channel: str, where: str = "") -> None:
        if text is None:
            text = ""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        for secret in self.secrets:
            for form in secret_forms(secret):
                assert form not in text, f"secret leaked through {channel} ({where}): …{_around(text, form)}…"
        self.tally.add_scan(channel)

    def check_all(self, texts: Iterable[tuple[str, str]], channel: str) -> int:
        count = 0
        for where, text in texts:
            self.check(text, channel, where)
            count += 1
        return count

    def check_exception(self, exc: BaseException, where: str = "") -> None:
        """The message, repr, args, the whole chained traceback, and every chained exception's attributes."""
        self.check(str(exc), "exception-message", where)
        self.check(repr(exc), "exception-repr", where)
        self.check("".join(traceback.format_exception(exc)), "traceback", where)
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            self.check(repr(getattr(current, "args", ())), "exception-args", where)
            self.check(repr(vars(current)) if hasattr(current, "__dict__") else "", "exception-attrs", where)
            current = current.__cause__ or current.__context__


def _around(text: str, needle: str, width: int = 40) -> str:
    i = text.find(needle)
    return text[max(0, i - width) : i + len(needle) + width]


# -- the fault-injecting HTTP proxy -----------------------------------------------------------

_SOAP_METHOD = re.compile(rb"<(?:[\w-]+:)?Body[^>]*>\s*<(?:[\w-]+:)?(\w+)")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class ProxyRule:
    """What to do with the next *count* calls of *method* (SOAP name, or ``"*"``)."""

    method: str
    action: str  # "status" | "drop" | "delay" | "hook"
    count: int = 1
    status: int = 503
    delay_s: float = 0.0
    hook: Callable[[], None] | None = None
    after: str | None = None
    """Only once this SOAP method has been seen (and let through): "the call after PowerOnVM_Task"."""
    fired: int = 0
    armed: bool = False


class SoapProxy:
    """A tiny HTTP/1.1 proxy for vcsim's ``/sdk`` endpoint with per-SOAP-method fault rules.

    ``proxy.upstream`` may be changed at any time (a restarted simulator on a new port).
    ``proxy.calls`` counts every SOAP method seen.
    """

    def __init__(self, upstream_host: str, upstream_port: int, listen: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.rules: list[ProxyRule] = []
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                self._forward(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._forward(self.rfile.read(length) if length else b"")

            def _forward(self, body: bytes) -> None:
                match = _SOAP_METHOD.search(body)
                method = match.group(1).decode() if match else ""
                rule = proxy._take(method)
                if rule is not None:
                    if rule.action == "drop":
                        self.close_connection = True
                        with contextlib.suppress(OSError):
                            self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if rule.action == "status":
                        payload = f"{rule.status} injected by the reliability suite\n".encode()
                        self.send_response(rule.status)
                        self.send_header("Content-Type", "text/plain")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                    if rule.action == "delay":
                        time.sleep(rule.delay_s)
                    if rule.action == "hook" and rule.hook is not None:
                        rule.hook()
                host, port = proxy.upstream
                upstream = http.client.HTTPConnection(host, port, timeout=120)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException):
                    self.close_connection = True  # mirror a dead upstream: the client sees the drop
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                finally:
                    upstream.close()
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer((listen, 0), Handler)
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _take(self, method: str) -> ProxyRule | None:
        with self._lock:
            if method:
                self.calls[method] += 1
            for rule in self.rules:
                if rule.after is not None and not rule.armed:
                    rule.armed = method == rule.after
                    continue
                if rule.fired < rule.count and rule.method in ("*", method):
                    rule.fired += 1
                    return rule
        return None

    def add(self, method: str, action: str, **kwargs: Any) -> ProxyRule:
        rule = ProxyRule(method, action, **kwargs)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def __enter__(self) -> SoapProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
