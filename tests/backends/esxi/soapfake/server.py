"""The SOAP proxy: vcsim for everything it implements, our fake for what it lacks.

Real pyVmomi (through the backend) talks to this proxy as to an ESXi host or vCenter. Every SOAP
call is forwarded byte for byte to vcsim (inventory, sessions, property collector, tasks …) except
the methods in :data:`INTERCEPTED`, which vcsim 0.24 does not implement (or implements without the
VMware Tools requirement). Those are answered here, from VMware's documented semantics, after the
same checks a real host makes, with the facts read from vcsim itself:

* the caller's session: the proxy asks vcsim for ``SessionManager.currentSession`` with the caller's
  cookie — none gives ``NotAuthenticated`` (so re-login works for guest operations too);
* the VM: ``runtime.powerState``, ``guest.toolsRunningStatus``, ``guest.guestFamily``,
  ``config.files.vmPathName`` read from vcsim (an unknown VM gets vcsim's own fault back). Tests set
  Tools state through vcsim's ``SET.guest.toolsRunningStatus`` extraConfig (``ReconfigVM_Task``).

Guest file transfers use URLs on this server (``/guestFile?id=…&token=…``, host ``*`` as ESXi
writes it), single use, like the host's ``/guestFile`` handler.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import itertools
import secrets
import socket
import ssl
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import wire
from .guest import FakeGuest
from .wire import VIM, MoRef, SoapFault, SoapRequest, leaf, obj

__all__ = ["INTERCEPTED", "SoapFakeProxy"]

GUEST_OPERATIONS = frozenset(
    {
        "StartProgramInGuest",
        "ListProcessesInGuest",
        "TerminateProcessInGuest",
        "CreateTemporaryFileInGuest",
        "DeleteFileInGuest",
        "InitiateFileTransferFromGuest",
        "InitiateFileTransferToGuest",
    }
)
INTERCEPTED = GUEST_OPERATIONS | {"RebootGuest", "ShutdownGuest", "AcquireTicket"}
"""Methods answered by the fake; everything else goes to vcsim."""

TICKET_TYPES = frozenset({"mks", "device", "guestControl", "webmks", "guestIntegrity", "webRemoteDevice"})
VM_PATHS = ("runtime.powerState", "guest.toolsRunningStatus", "guest.guestFamily", "config.files.vmPathName")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection"}


@dataclass
class Transfer:
    guest: FakeGuest
    path: str
    direction: str  # "from" (GET) or "to" (PUT)
    size: int = 0


@dataclass
class Ticket:
    vm: str
    ticket_type: str
    ticket: str
    host: str
    port: int


class SoapFakeProxy:
    """A vSphere endpoint: vcsim behind, the fake guest operations in front.

    :param upstream: vcsim's ``http://host:port/sdk`` URL.
    :param host: address to listen on (``127.0.0.2`` with a certificate for it, for TLS tests).
    :param cert: ``(cert_pem, key_pem)`` to serve https; plain http without.
    """

    def __init__(self, upstream: str, host: str = "127.0.0.1", cert: tuple[Path, Path] | None = None) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.upstream_path = parts.path or "/sdk"
        self.host = host
        self.guests: dict[str, FakeGuest] = {}
        """Fake guests by VM MoRef id (created at first use; Windows when vcsim says windowsGuest)."""
        self.calls: list[tuple[str, str]] = []
        """``(method, this)`` of every SOAP call seen, forwarded or not."""
        self.tickets: list[Ticket] = []
        self.guest_defaults: dict[str, Any] = {}
        """Keyword arguments for FakeGuest when one is created (e.g. ``username``/``password``)."""
        self.intercept_hook: Callable[[SoapRequest], None] | None = None
        """Called before each intercepted call is answered (raise SoapFault to inject a fault)."""
        self._transfers: dict[str, Transfer] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        self.thumbprint = "00:" * 19 + "00"
        if cert is not None:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(str(cert[0]), str(cert[1]))
            der = ssl.PEM_cert_to_DER_cert(Path(cert[0]).read_text())
            digest = hashlib.sha1(der).hexdigest().upper()
            self.thumbprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.property_collector = MoRef("PropertyCollector", "propertyCollector")
        self.session_manager = MoRef("SessionManager", "SessionManager")

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def scheme(self) -> str:
        return "https" if self._tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.upstream_path}"

    def start(self) -> SoapFakeProxy:
        self._learn_service_content()
        proxy = self

        class Handler(_Handler):
            fake = proxy

        server = ThreadingHTTPServer((self.host, 0), Handler)
        server.daemon_threads = True
        if self._tls is not None:
            server.socket = self._tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="soapfake", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SoapFakeProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- upstream ----------------------------------------------------------------------------------

    def upstream(
        self, body: bytes, headers: dict[str, str], method: str = "POST", path: str = ""
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send a request to vcsim (a SOAP POST to /sdk by default); returns ``(status, headers, body)``."""
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            connection.request(method, path or self.upstream_path, body=body or None, headers=headers)
            reply = connection.getresponse()
            return reply.status, reply.getheaders(), reply.read()
        finally:
            connection.close()

    def _learn_service_content(self) -> None:
        body = wire.envelope(
            f'<RetrieveServiceContent xmlns="{VIM}"><_this type="ServiceInstance">ServiceInstance</_this>'
            "</RetrieveServiceContent>"
        )
        _, _, reply = self.upstream(body, {"Content-Type": "text/xml; charset=utf-8"})
        returnval = wire.parse_response(reply).find(f"{{{VIM}}}returnval")
        assert returnval is not None, reply[:500]
        for name, attr in (("propertyCollector", "property_collector"), ("sessionManager", "session_manager")):
            element = returnval.find(f"{{{VIM}}}{name}")
            if element is not None:
                setattr(self, attr, MoRef(element.get("type", ""), element.text or ""))

    def vm_facts(self, vm: MoRef, cookie: str, this: MoRef | None = None) -> dict[str, str]:
        """The VM's properties (:data:`VM_PATHS`) read from vcsim with the caller's session.

        Raises SoapFault ``NotAuthenticated`` without a session; an upstream fault is re-raised as is.
        """
        paths = "".join(f"<pathSet>{p}</pathSet>" for p in VM_PATHS)
        body = wire.envelope(
            f'<RetrievePropertiesEx xmlns="{VIM}">{self.property_collector.xml("_this")}'
            f"<specSet><propSet><type>VirtualMachine</type>{paths}</propSet>"
            f"<objectSet>{vm.xml('obj')}<skip>false</skip></objectSet></specSet>"
            f"<specSet><propSet><type>SessionManager</type><pathSet>currentSession</pathSet></propSet>"
            f"<objectSet>{self.session_manager.xml('obj')}<skip>false</skip></objectSet></specSet>"
            "<options></options></RetrievePropertiesEx>"
        )
        headers = {"Content-Type": "text/xml; charset=utf-8"}
        if cookie:
            headers["Cookie"] = cookie
        status, _, reply = self.upstream(body, headers)
        if status != 200:
            raise _Verbatim(status, reply)
        facts: dict[str, str] = {}
        result = wire.parse_response(reply)
        session = False
        for objects in result.iter(f"{{{VIM}}}objects"):
            for prop in objects.findall(f"{{{VIM}}}propSet"):
                name = prop.findtext(f"{{{VIM}}}name", "")
                value = prop.find(f"{{{VIM}}}val")
                if name == "currentSession":
                    session = value is not None
                elif value is not None:
                    facts[name] = value.text or ""
        if not session:
            raise SoapFault(
                "NotAuthenticated",
                "The session is not authenticated.",
                (this or vm).xml("object"),
                leaf("privilegeId", "System.View"),
            )
        if "runtime.powerState" not in facts:
            raise SoapFault("ManagedObjectNotFound", f"The object '{vm.value}' has already been deleted", vm.xml("obj"))
        return facts

    # -- the fake ----------------------------------------------------------------------------------

    def guest(self, vm_moid: str, *, windows: bool | None = None) -> FakeGuest:
        """The fake guest of a VM (created with :attr:`guest_defaults` on first use)."""
        with self._lock:
            found = self.guests.get(vm_moid)
            if found is None:
                found = FakeGuest(windows=bool(windows), **self.guest_defaults)
                self.guests[vm_moid] = found
            return found

    def _transfer_url(self, transfer: Transfer) -> tuple[str, str]:
        token = secrets.token_hex(16)
        with self._lock:
            self._transfers[token] = transfer
        # ESXi writes '*' for "the host you are talking to"; clients substitute it.
        return token, f"{self.scheme}://*:{self.port}/guestFile?id={next(self._ids)}&token={token}"

    def take_transfer(self, token: str, direction: str) -> Transfer | None:
        with self._lock:
            transfer = self._transfers.get(token)
            if transfer is None or transfer.direction != direction:
                return None
            del self._transfers[token]
            return transfer

    def answer(self, request: SoapRequest, cookie: str, host: str) -> bytes:
        """The response body for an intercepted call (raises SoapFault / _Verbatim for faults)."""
        vm = request.moref("vm") if request.method in GUEST_OPERATIONS else request.this
        assert vm is not None
        facts = self.vm_facts(vm, cookie, request.this)
        if self.intercept_hook is not None:
            self.intercept_hook(request)
        power = facts.get("runtime.powerState", "")
        tools = facts.get("guest.toolsRunningStatus", "")
        method = request.method
        if method == "AcquireTicket":
            return self._acquire_ticket(request, vm, facts, host)
        if power != "poweredOn":
            raise SoapFault(
                "InvalidPowerState",
                f"The attempted operation cannot be performed in the current state ({power}).",
                leaf("requestedState", "poweredOn"),
                leaf("existingState", power),
            )
        if method in ("RebootGuest", "ShutdownGuest"):
            if tools != "guestToolsRunning":
                raise SoapFault(
                    "ToolsUnavailable",
                    "Cannot complete operation because VMware Tools is not running in this virtual machine.",
                )
            if method == "ShutdownGuest":
                raise _Forward()  # vcsim powers the VM off
            self.guest(vm.value).reboots += 1
            return wire.response(method)
        if tools != "guestToolsRunning":
            raise SoapFault("GuestOperationsUnavailable", "The guest operations agent could not be contacted.")
        guest = self.guest(vm.value, windows=facts.get("guest.guestFamily") == "windowsGuest")
        guest.check_auth(request.data("auth"))
        return self._guest_operation(request, guest)

    def _acquire_ticket(self, request: SoapRequest, vm: MoRef, facts: dict[str, str], host: str) -> bytes:
        ticket_type = request.text("ticketType")
        if ticket_type not in TICKET_TYPES:
            raise SoapFault(
                "InvalidArgument",
                f"A specified parameter was not correct: ticketType ({ticket_type})",
                leaf("invalidProperty", "ticketType"),
            )
        power = facts.get("runtime.powerState", "")
        if ticket_type in ("mks", "webmks") and power != "poweredOn":
            raise SoapFault(
                "InvalidPowerState",
                f"The attempted operation cannot be performed in the current state ({power}).",
                leaf("requestedState", "poweredOn"),
                leaf("existingState", power),
            )
        ticket = Ticket(vm.value, ticket_type, secrets.token_hex(16), host, 443)
        self.tickets.append(ticket)
        return wire.response(
            "AcquireTicket",
            "<returnval>"
            + leaf("ticket", ticket.ticket)
            + leaf("cfgFile", facts.get("config.files.vmPathName", ""))
            + leaf("host", ticket.host)
            + leaf("port", ticket.port)
            + leaf("sslThumbprint", self.thumbprint)
            + "</returnval>",
        )

    def _guest_operation(self, request: SoapRequest, guest: FakeGuest) -> bytes:
        method = request.method
        if method == "StartProgramInGuest":
            spec = request.data("spec")
            env = spec.get("envVariables")
            env_list = env if isinstance(env, list) else ([env] if env else None)
            pid = guest.start(str(spec.get("programPath", "")), str(spec.get("arguments", "")), env_list)
            return wire.response(method, leaf("returnval", pid))
        if method == "ListProcessesInGuest":
            pids = [int(e.text or "0") for e in request.args.get("pids", [])]
            rows = []
            for process in guest.list(pids):
                children = [
                    leaf("name", process.name),
                    leaf("pid", process.pid),
                    leaf("owner", process.owner),
                    leaf("cmdLine", process.cmd_line),
                    leaf("startTime", process.start_time),
                ]
                if process.ended():
                    children += [leaf("endTime", process.end_time), leaf("exitCode", process.exit_code)]
                rows.append(obj("returnval", "GuestProcessInfo", *children))
            return wire.response(method, *rows)
        if method == "TerminateProcessInGuest":
            guest.terminate(int(request.text("pid") or "0"))
            return wire.response(method)
        if method == "CreateTemporaryFileInGuest":
            path = guest.create_temp(request.text("prefix"), request.text("suffix"), request.text("directoryPath"))
            return wire.response(method, leaf("returnval", path))
        if method == "DeleteFileInGuest":
            guest.delete(request.text("filePath"))
            return wire.response(method)
        if method == "InitiateFileTransferFromGuest":
            path = request.text("guestFilePath")
            data = guest.read(path)
            _, url = self._transfer_url(Transfer(guest, path, "from"))
            attributes = "GuestWindowsFileAttributes" if guest.windows else "GuestPosixFileAttributes"
            return wire.response(
                method,
                obj(
                    "returnval",
                    "FileTransferInformation",
                    obj("attributes", attributes),
                    leaf("size", len(data)),
                    leaf("url", url),
                ),
            )
        if method == "InitiateFileTransferToGuest":
            path = request.text("guestFilePath")
            guest.check_writable(path, request.text("overwrite") == "true")
            _, url = self._transfer_url(Transfer(guest, path, "to", int(request.text("fileSize") or "0")))
            return wire.response(method, leaf("returnval", url))
        raise SoapFault("MethodNotFound", f"{method} is not handled by the fake")


class _Forward(Exception):
    """The intercepted call passed the fake's checks: forward it to vcsim after all."""


class _Verbatim(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: SoapFakeProxy

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK add ~40 ms a call
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(status)
        sent_type = False
        for name, value in headers or []:
            if name.lower() in _HOP_BY_HOP:
                continue
            sent_type = sent_type or name.lower() == "content-type"
            self.send_header(name, value)
        if not sent_type and body:
            self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_POST(self) -> None:
        body = self._body()
        try:
            request = wire.parse_request(body)
        except (ValueError, ET.ParseError):
            request = None
        if request is not None:
            self.fake.calls.append((request.method, request.this.value))
        if request is not None and request.method in INTERCEPTED:
            host = (self.headers.get("Host") or self.fake.host).rsplit(":", 1)[0]
            try:
                self._send(200, self.fake.answer(request, self.headers.get("Cookie", ""), host))
                return
            except SoapFault as fault:
                self._send(500, fault.body())
                return
            except _Verbatim as verbatim:
                self._send(verbatim.status, verbatim.body)
                return
            except _Forward:
                pass
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        status, reply_headers, reply = self.fake.upstream(body, headers)
        self._send(status, reply, reply_headers)

    def _transfer(self, direction: str) -> Transfer | None:
        parts = urlsplit(self.path)
        token = parse_qs(parts.query).get("token", [""])[0]
        if parts.path != "/guestFile":
            return None
        return self.fake.take_transfer(token, direction)

    def do_GET(self) -> None:
        if urlsplit(self.path).path != "/guestFile":  # /sdk/vimServiceVersions.xml etc.: vcsim's
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            status, reply_headers, reply = self.fake.upstream(b"", headers, "GET", self.path)
            self._send(status, reply, reply_headers)
            return
        transfer = self._transfer("from")
        if transfer is None:
            self._send(404, b"")
            return
        try:
            data = transfer.guest.read(transfer.path)
        except SoapFault:
            self._send(404, b"")
            return
        self._send(200, data, [("Content-Type", "application/octet-stream")])

    def do_PUT(self) -> None:
        body = self._body()
        transfer = self._transfer("to")
        if transfer is None:
            self._send(404, b"")
            return
        if len(body) != transfer.size:  # the size announced in InitiateFileTransferToGuest
            self._send(400, b"")
            return
        transfer.guest.write(transfer.path, body)
        self._send(200, b"")


@contextlib.contextmanager
def run_soapfake(
    upstream: str, host: str = "127.0.0.1", cert: tuple[Path, Path] | None = None
) -> Iterator[SoapFakeProxy]:
    """Start a :class:`SoapFakeProxy` in front of *upstream* (vcsim's /sdk URL) and stop it after."""
    proxy = SoapFakeProxy(upstream, host, cert)
    with proxy:
        yield proxy
