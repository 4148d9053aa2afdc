"""Guest operations through qemu-guest-agent: info, exec, files, IP addresses.

The functions here speak the agent's JSON protocol through a ``run`` callable
(``run(command, arguments) -> return value``) that the backend implements with
``libvirt_qemu.qemuAgentCommand`` inside :func:`~virtabstract_kvm._errors.map_libvirt_errors`;
tests substitute a fake agent. Waits go through the core's
:func:`~virtabstract.wait_until` with the backend's clock.

Windows guests need no special casing for exec (the agent starts the program
directly, no shell) or files (the agent takes native paths); output is decoded
as UTF-8 with replacement, since Windows programs may print in an OEM code page.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from virtabstract import Clock, ExecResult, GuestInfo, IPAddressInfo, OSFamily, wait_until
from virtabstract.errors import GuestError

__all__ = [
    "CHUNK",
    "AgentRun",
    "exec_command",
    "guest_info",
    "rank_addresses",
    "read_file",
    "write_file",
]

CHUNK = 48 * 1024
"""Bytes per guest-file-read/write call (the agent's replies must fit its 16 MiB JSON limit comfortably)."""

AgentRun = Callable[[str, Mapping[str, Any] | None], Any]
"""``run(command, arguments)`` → the ``return`` member of the agent's reply."""

_FAMILIES = {
    "mswindows": OSFamily.WINDOWS,
    "windows": OSFamily.WINDOWS,
    "freebsd": OSFamily.BSD,
    "openbsd": OSFamily.BSD,
    "netbsd": OSFamily.BSD,
    "darwin": OSFamily.MACOS,
}


def guest_info(run: AgentRun) -> GuestInfo:
    """Ask the agent for its version, the OS and the host name."""
    info = run("guest-info", None) or {}
    try:
        osinfo = run("guest-get-osinfo", None) or {}
    except GuestError:  # old agents lack the command
        osinfo = {}
    try:
        hostname = (run("guest-get-host-name", None) or {}).get("host-name", "")
    except GuestError:
        hostname = ""
    os_id = str(osinfo.get("id", "")).lower()
    family = _FAMILIES.get(os_id, OSFamily.LINUX if osinfo.get("kernel-release") else OSFamily.OTHER)
    if os_id and os_id not in _FAMILIES and osinfo.get("kernel-release"):
        family = OSFamily.LINUX
    return GuestInfo(
        agent="qemu-guest-agent",
        agent_version=str(info.get("version", "")),
        ready=True,
        os_family=family,
        os_name=str(osinfo.get("pretty-name") or osinfo.get("name") or ""),
        os_version=str(osinfo.get("version-id") or osinfo.get("version") or ""),
        kernel=str(osinfo.get("kernel-release", "")),
        hostname=str(hostname),
    )


def _decode(data: str | None) -> bytes:
    return base64.b64decode(data) if data else b""


def exec_command(
    run: AgentRun,
    argv: Sequence[str],
    *,
    stdin: bytes | None,
    env: Mapping[str, str],
    timeout: float,
    clock: Clock,
) -> ExecResult:
    """Start *argv* with guest-exec and poll guest-exec-status until it exits or *timeout* passes."""
    args: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
    if env:
        args["env"] = [f"{k}={v}" for k, v in env.items()]
    if stdin:
        args["input-data"] = base64.b64encode(stdin).decode()
    pid = run("guest-exec", args)["pid"]

    def probe() -> dict[str, Any] | None:
        status: dict[str, Any] = run("guest-exec-status", {"pid": pid})
        return status if status.get("exited") else None

    status = wait_until(
        probe, timeout=timeout, what=f"{argv[0]!r} to exit in the guest", clock=clock, interval=0.05, max_interval=0.5
    )
    code = status.get("exitcode")
    if code is None:  # killed by a signal: report it like a shell would
        code = 128 + int(status.get("signal", 0))
    return ExecResult(
        exit_code=int(code),
        stdout=_decode(status.get("out-data")).decode("utf-8", "replace"),
        stderr=_decode(status.get("err-data")).decode("utf-8", "replace"),
        argv=tuple(argv),
    )


def read_file(run: AgentRun, path: str) -> bytes:
    """Read a whole file in :data:`CHUNK`-sized pieces."""
    handle = run("guest-file-open", {"path": path, "mode": "rb"})
    chunks: list[bytes] = []
    try:
        while True:
            reply = run("guest-file-read", {"handle": handle, "count": CHUNK})
            chunks.append(_decode(reply.get("buf-b64")))
            if reply.get("eof") or not reply.get("count"):
                break
    finally:
        run("guest-file-close", {"handle": handle})
    return b"".join(chunks)


def write_file(run: AgentRun, path: str, data: bytes) -> None:
    """Create or truncate *path* and write *data* in :data:`CHUNK`-sized pieces."""
    handle = run("guest-file-open", {"path": path, "mode": "wb"})
    try:
        for offset in range(0, len(data), CHUNK):
            piece = data[offset : offset + CHUNK]
            written = 0
            while written < len(piece):
                encoded = base64.b64encode(piece[written:]).decode()
                reply = run("guest-file-write", {"handle": handle, "buf-b64": encoded})
                count = int(reply.get("count", 0))
                if count <= 0:
                    raise GuestError(f"the guest agent wrote nothing to {path!r}")
                written += count
        run("guest-file-flush", {"handle": handle})
    finally:
        run("guest-file-close", {"handle": handle})


_SOURCE_RANK = {"agent": 0, "dhcp": 1, "arp": 2}


def rank_addresses(found: Iterable[tuple[str, Mapping[str, Any]]]) -> list[IPAddressInfo]:
    """Turn ``(source, interfaceAddresses() result)`` pairs into a ranked, de-duplicated list.

    Best source first (agent, then DHCP lease, then ARP); within a source, global
    addresses before private, link-local and loopback ones, IPv4 before IPv6.
    """
    seen: set[str] = set()
    out: list[IPAddressInfo] = []
    for source, interfaces in sorted(found, key=lambda pair: _SOURCE_RANK.get(pair[0], 9)):
        for ifname, details in interfaces.items():
            mac = str((details or {}).get("hwaddr") or "").lower()
            for addr in (details or {}).get("addrs") or []:
                address = str(addr.get("addr", "")).split("%")[0]
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    continue
                if address in seen:
                    continue
                seen.add(address)
                prefix = addr.get("prefix")
                out.append(IPAddressInfo(address, int(prefix) if prefix is not None else None, ifname, mac, source))

    def key(info: IPAddressInfo) -> tuple[int, int, int]:
        ip = ipaddress.ip_address(info.address)
        quality = 3 if ip.is_loopback else 2 if ip.is_link_local else 1 if ip.is_private else 0
        return _SOURCE_RANK.get(info.source, 9), quality, ip.version

    return sorted(out, key=key)
