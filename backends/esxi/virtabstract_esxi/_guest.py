"""Guest operations through VMware Tools: exec with output, file transfer, guest info, IPs.

vSphere's ``StartProgramInGuest`` returns only a pid, and ``ListProcessesInGuest``
only the exit code: there is no stdout/stderr channel (this is why community.vmware's
``vmware_vm_shell`` cannot return output). :meth:`GuestOps.exec` therefore:

1. creates two (three with stdin) temporary files in the guest
   (``CreateTemporaryFileInGuest``), uploading stdin into the third;
2. starts the program with its output redirected to them — on Linux/Unix through
   ``/usr/bin/env`` (Tools runs the command line through the guest's shell, so the
   redirections work and ``argv`` is quoted with :func:`shlex.quote`); on Windows through
   ``cmd.exe /c`` with :func:`subprocess.list2cmdline` quoting, caret-escaped for cmd
   (:func:`windows_command_line`);
3. waits for ``ListProcessesInGuest(pids=[pid])`` to report an ``endTime``
   (guest processes have no update channel, so this is a bounded poll through the
   core's :func:`virtabstract.wait_until`);
4. downloads both files over the transfer URL (``InitiateFileTransferFromGuest``; HTTPS
   with the connection's own SSL context, ``*`` in the URL replaced by the server's host);
5. deletes the temporary files (best effort).

Guest credentials come from the connect options ``guest_username`` /
``guest_password``, else from ``VIRTABSTRACT_GUEST_USERNAME`` /
``VIRTABSTRACT_GUEST_PASSWORD``; they are never logged nor put into messages.

vcsim 0.24 implements none of the process operations and only container-backed file
transfers, so this module is verified against ``tests/backends/esxi/soapfake`` (real pyVmomi on
the SOAP wire, the guest operations answered from VMware's documented semantics) and by unit tests
against a fake service object.
"""

from __future__ import annotations

import logging
import os
import shlex
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from virtabstract import Clock, ExecResult, GuestInfo, IPAddressInfo, OSFamily, Secret, wait_until
from virtabstract.errors import GuestAgentUnavailable, GuestError, GuestFileNotFound, OperationTimeout, UsageError

from ._sdk import sdk

__all__ = ["GUEST_PROPERTIES", "GuestCredentials", "GuestOps", "guest_info_from_props", "ip_addresses_from_net"]

log = logging.getLogger("virtabstract.esxi")

ENV_GUEST_USERNAME = "VIRTABSTRACT_GUEST_USERNAME"
ENV_GUEST_PASSWORD = "VIRTABSTRACT_GUEST_PASSWORD"  # noqa: S105 - a variable name, not a password

GUEST_PROPERTIES: tuple[str, ...] = (
    "guest.toolsRunningStatus",
    "guest.toolsVersion",
    "guest.guestFamily",
    "guest.guestFullName",
    "guest.guestId",
    "guest.hostName",
    "guest.guestState",
    "runtime.powerState",
)
"""What :meth:`GuestOps.info` reads (one round trip)."""

_FAMILIES = {
    "linuxGuest": OSFamily.LINUX,
    "windowsGuest": OSFamily.WINDOWS,
    "solarisGuest": OSFamily.SOLARIS,
    "darwinGuestFamily": OSFamily.MACOS,
    "netwareGuest": OSFamily.OTHER,
    "otherGuestFamily": OSFamily.OTHER,
}


@dataclass(frozen=True)
class GuestCredentials:
    """Guest OS user and password for Tools operations (the password is a Secret)."""

    username: str
    password: Secret

    def __repr__(self) -> str:
        return f"GuestCredentials(username={self.username!r}, password='***')"

    @classmethod
    def resolve(cls, options: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> GuestCredentials | None:
        """From the connect options, else the environment; ``None`` when no user name is known."""
        env = os.environ if environ is None else environ
        user = options.get("guest_username") or env.get(ENV_GUEST_USERNAME)
        raw = options.get("guest_password")
        if raw is None:
            raw = env.get(ENV_GUEST_PASSWORD, "")
        if not user:
            return None
        password = raw if isinstance(raw, Secret) else Secret(str(raw))
        return cls(str(user), password)


def guest_family(value: str | None) -> OSFamily:
    """OSFamily of vSphere's ``guest.guestFamily``."""
    return _FAMILIES.get(value or "", OSFamily.OTHER)


def tools_running(props: Mapping[str, Any]) -> bool:
    """True when VMware Tools report ``guestToolsRunning``."""
    return props.get("guest.toolsRunningStatus") == "guestToolsRunning"


def guest_info_from_props(props: Mapping[str, Any]) -> GuestInfo:
    """A GuestInfo from :data:`GUEST_PROPERTIES`; raises GuestAgentUnavailable when Tools do not run."""
    if props.get("runtime.powerState") != "poweredOn":
        raise GuestAgentUnavailable("the VM is not running, so VMware Tools cannot answer")
    if not tools_running(props):
        status = props.get("guest.toolsRunningStatus") or "unknown"
        raise GuestAgentUnavailable(f"VMware Tools are not running in the guest (toolsRunningStatus={status})")
    return GuestInfo(
        agent="vmware-tools",
        agent_version=str(props.get("guest.toolsVersion") or ""),
        ready=props.get("guest.guestState", "running") == "running",
        os_family=guest_family(props.get("guest.guestFamily")),
        os_name=str(props.get("guest.guestFullName") or ""),
        os_version="",
        kernel="",
        hostname=str(props.get("guest.hostName") or ""),
    )


def ip_addresses_from_net(net: Sequence[Any], primary: str | None) -> list[IPAddressInfo]:
    """Every address of ``guest.net`` (with prefix, MAC, port group), the primary ``guest.ipAddress`` first."""
    found: list[IPAddressInfo] = []
    seen: set[str] = set()
    for nic in net or ():
        mac = str(getattr(nic, "macAddress", "") or "").lower()
        interface = str(getattr(nic, "network", "") or "")
        config = getattr(nic, "ipConfig", None)
        entries = list(getattr(config, "ipAddress", None) or ()) if config is not None else []
        if entries:
            for entry in entries:
                address = str(getattr(entry, "ipAddress", "") or "")
                if address and address not in seen:
                    seen.add(address)
                    prefix = getattr(entry, "prefixLength", None)
                    found.append(IPAddressInfo(address, int(prefix) if prefix is not None else None, interface, mac))
        else:
            for address in getattr(nic, "ipAddress", None) or ():
                if address and address not in seen:
                    seen.add(str(address))
                    found.append(IPAddressInfo(str(address), None, interface, mac))
    if primary and primary not in seen:
        found.insert(0, IPAddressInfo(primary, None, "", ""))
    elif primary:
        found.sort(key=lambda a: a.address != primary)
    return found


_CMD_METACHARACTERS = frozenset('"&|<>^()')


def cmd_escape(command_line: str) -> str:
    """Caret-escape every character cmd.exe would interpret (``& | < > ^ ( )`` and ``"``).

    cmd.exe parses the line before the program sees it: an unquoted ``&`` starts another command,
    ``<``/``>`` redirect, and ``"`` toggles cmd's own quoting — so an argument such as ``a&b`` (or one
    with an embedded quote) quoted only for the program would run a second command. ``^x`` is a
    literal ``x`` to cmd, which removes the caret, and an escaped ``^"`` opens no quoted region: the
    program receives exactly *command_line*. (``%NAME%`` is still expanded when NAME is defined.)
    """
    return "".join("^" + c if c in _CMD_METACHARACTERS else c for c in command_line)


def windows_command_line(argv: Sequence[str], out: str, err: str, stdin: str | None) -> str:
    """``cmd.exe /c`` arguments running *argv* with redirections.

    *argv* is quoted for the program (:func:`subprocess.list2cmdline`, the C runtime's rules), then
    escaped for cmd.exe (:func:`cmd_escape`); only our own redirections are left for cmd to act on.
    The program itself is the exception when the quoting put it in double quotes (a path with
    spaces): cmd finds the program from its first token, which a caret-escaped ``^"`` would cut at
    the first space — inside real quotes its ``( ) &`` are literal to cmd anyway.
    """
    program = subprocess.list2cmdline(list(argv[:1]))
    if not (program.startswith('"') and '"' not in argv[0]):
        program = cmd_escape(program)
    rest = cmd_escape(subprocess.list2cmdline(list(argv[1:])))
    inner = program + (f" {rest}" if rest else "") + f' >"{out}" 2>"{err}"'
    if stdin:
        inner += f' <"{stdin}"'
    return f'/c "{inner}"'


def unix_command_line(argv: Sequence[str], out: str, err: str, stdin: str | None) -> str:
    """Arguments for ``/usr/bin/env`` running *argv* with shell redirections (Tools use the guest shell)."""
    line = " ".join(shlex.quote(a) for a in argv) + f" >{shlex.quote(out)} 2>{shlex.quote(err)}"
    line += f" <{shlex.quote(stdin)}" if stdin else " </dev/null"
    return line


class GuestOps:
    """Tools-based guest operations on one connection.

    :param content: the ServiceContent (for ``guestOperationsManager``).
    :param call: the session's re-login wrapper (``Session.call``).
    :param host: the server host, substituted for ``*`` in transfer URLs.
    :param ssl_context: the connection's SSL context, reused for transfers.
    """

    def __init__(
        self,
        content: Any,
        call: Callable[[Callable[[], Any]], Any],
        host: str,
        ssl_context: ssl.SSLContext,
        credentials: GuestCredentials | None,
        clock: Clock,
        opener: Callable[[urllib.request.Request, ssl.SSLContext], bytes] | None = None,
    ) -> None:
        self._content = content
        self._call = call
        self._host = host
        self._ssl = ssl_context
        self._credentials = credentials
        self._clock = clock
        self._open = opener or _http_open

    # -- plumbing -------------------------------------------------------------------------

    def _auth(self) -> Any:
        if self._credentials is None:
            raise UsageError(
                "guest operations need guest OS credentials: connect(..., guest_username=..., guest_password=...) "
                f"or set {ENV_GUEST_USERNAME} / {ENV_GUEST_PASSWORD}"
            )
        return sdk().vim.vm.guest.NamePasswordAuthentication(
            username=self._credentials.username,
            password=self._credentials.password.reveal(),
            interactiveSession=False,
        )

    def _managers(self) -> tuple[Any, Any]:
        manager = self._content.guestOperationsManager
        if manager is None:
            raise GuestAgentUnavailable("this server has no GuestOperationsManager")
        return manager.processManager, manager.fileManager

    def _transfer_url(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.hostname in ("*", None, ""):
            netloc = self._host + (f":{parts.port}" if parts.port else "")
            return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        return url

    # -- files ----------------------------------------------------------------------------

    def read_file(self, vm: Any, path: str) -> bytes:
        """Download *path* from the guest."""
        _, files = self._managers()
        auth = self._auth()
        info = self._call(lambda: files.InitiateFileTransferFromGuest(vm, auth, path))
        return self._open(_request(self._transfer_url(str(info.url)), "GET"), self._ssl)

    def write_file(self, vm: Any, path: str, data: bytes) -> None:
        """Upload *data* to *path* in the guest (created or replaced)."""
        _, files = self._managers()
        auth = self._auth()
        attributes = sdk().vim.vm.guest.FileManager.FileAttributes()
        url = self._call(lambda: files.InitiateFileTransferToGuest(vm, auth, path, attributes, len(data), True))
        self._open(_request(self._transfer_url(str(url)), "PUT", data), self._ssl)

    def _delete_quietly(self, vm: Any, auth: Any, path: str) -> None:
        _, files = self._managers()
        try:
            self._call(lambda: files.DeleteFileInGuest(vm, auth, path))
        except Exception as exc:  # noqa: BLE001 - cleanup of our own temp files is best effort
            log.debug("could not delete guest temp file: %s", type(exc).__name__)

    # -- exec -------------------------------------------------------------------------------

    def exec(
        self,
        vm: Any,
        argv: Sequence[str],
        *,
        family: OSFamily,
        stdin: bytes | None,
        timeout: float,
        env: Mapping[str, str],
    ) -> ExecResult:
        """Run *argv* in the guest and return exit code, stdout and stderr (see the module docstring)."""
        processes, files = self._managers()
        auth = self._auth()
        vim = sdk().vim
        windows = family is OSFamily.WINDOWS
        temp: list[str] = []
        try:
            out = self._call(lambda: files.CreateTemporaryFileInGuest(vm, auth, "va-", ".out", None))
            temp.append(str(out))
            err = self._call(lambda: files.CreateTemporaryFileInGuest(vm, auth, "va-", ".err", None))
            temp.append(str(err))
            stdin_path: str | None = None
            if stdin is not None:
                stdin_path = str(self._call(lambda: files.CreateTemporaryFileInGuest(vm, auth, "va-", ".in", None)))
                temp.append(stdin_path)
                self.write_file(vm, stdin_path, stdin)
            if windows:
                program = r"C:\Windows\System32\cmd.exe"
                arguments = windows_command_line(argv, str(out), str(err), stdin_path)
            else:
                # Tools *replace* the environment with envVariables; the core promises additions,
                # which /usr/bin/env NAME=VALUE gives on Unix guests.
                program = "/usr/bin/env"
                assignments = "".join(shlex.quote(f"{k}={v}") + " " for k, v in env.items())
                arguments = assignments + unix_command_line(argv, str(out), str(err), stdin_path)
            spec = vim.vm.guest.ProcessManager.ProgramSpec(
                programPath=program,
                arguments=arguments,
                envVariables=[f"{k}={v}" for k, v in env.items()] if windows and env else None,
            )
            pid = int(self._call(lambda: processes.StartProgramInGuest(vm, auth, spec)))
            log.debug("guest program %s started with pid %d", argv[0], pid)

            def finished() -> int | None:
                listed = self._call(lambda: processes.ListProcessesInGuest(vm, auth, [pid])) or []
                for process in listed:
                    if int(process.pid) == pid and getattr(process, "endTime", None) is not None:
                        code = getattr(process, "exitCode", None)
                        return int(code) if code is not None else -1
                if not listed:
                    raise GuestError(f"guest process {pid} ({argv[0]}) vanished without an exit code")
                return None

            try:
                exit_code = wait_until(finished, timeout=timeout, what=f"guest command {argv[0]!r}", clock=self._clock)
            except OperationTimeout:
                try:
                    self._call(lambda: processes.TerminateProcessInGuest(vm, auth, pid))
                except Exception as exc:  # noqa: BLE001 - best effort after a timeout
                    log.debug("could not terminate guest process %d: %s", pid, type(exc).__name__)
                raise
            stdout = self.read_file(vm, str(out))
            stderr = self.read_file(vm, str(err))
        finally:
            for path in temp:
                self._delete_quietly(vm, auth, path)
        return ExecResult(
            exit_code=exit_code,
            stdout=stdout.decode("utf-8", errors="replace"),
            stderr=stderr.decode("utf-8", errors="replace"),
            argv=tuple(argv),
        )


def _request(url: str, method: str, data: bytes | None = None) -> urllib.request.Request:
    """A request for a transfer URL; only https/http URLs are accepted (never ``file:``)."""
    if urlsplit(url).scheme not in ("https", "http"):
        raise GuestError("the server returned a transfer URL that is neither https nor http")
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - scheme checked above
    if data is not None:
        request.add_header("Content-Length", str(len(data)))
    return request


def _http_open(request: urllib.request.Request, context: ssl.SSLContext) -> bytes:
    """Perform a transfer-URL request with the connection's SSL context (never an unverified default)."""
    try:
        with urllib.request.urlopen(request, context=context, timeout=300) as response:  # noqa: S310 - scheme checked
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise GuestFileNotFound(f"the guest file transfer failed: HTTP {exc.code}") from exc
        raise GuestError(f"the guest file transfer failed: HTTP {exc.code} {exc.reason}") from exc
