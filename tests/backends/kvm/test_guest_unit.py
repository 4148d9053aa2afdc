"""Guest-agent protocol handling against a fake qemu-guest-agent (no libvirt needed)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest
from virtabstract_kvm import _guest

from virtabstract import ManualClock, OSFamily
from virtabstract.errors import GuestError, OperationTimeout


class FakeAgent:
    def __init__(self, *, exits_after: int = 2) -> None:
        self.files: dict[str, bytearray] = {}
        self.handles: dict[int, tuple[str, int]] = {}
        self.calls: list[str] = []
        self.exits_after = exits_after
        self.polls = 0

    def __call__(self, command: str, args: Mapping[str, Any] | None) -> Any:
        self.calls.append(command)
        a = dict(args or {})
        if command == "guest-info":
            return {"version": "7.2.0"}
        if command == "guest-get-osinfo":
            return {"id": "debian", "pretty-name": "Debian 12", "version-id": "12", "kernel-release": "6.1.0"}
        if command == "guest-get-host-name":
            return {"host-name": "g1"}
        if command == "guest-exec":
            self.exec_args = a
            return {"pid": 42}
        if command == "guest-exec-status":
            self.polls += 1
            if self.polls < self.exits_after:
                return {"exited": False}
            return {
                "exited": True,
                "exitcode": 3,
                "out-data": base64.b64encode(b"o\xc3\xbc").decode(),
                "err-data": base64.b64encode(b"e").decode(),
            }
        if command == "guest-file-open":
            handle = len(self.handles) + 1
            if a["mode"].startswith("w"):
                self.files[a["path"]] = bytearray()
            self.handles[handle] = (a["path"], 0)
            return handle
        if command == "guest-file-read":
            path, pos = self.handles[a["handle"]]
            data = bytes(self.files[path][pos : pos + a["count"]])
            self.handles[a["handle"]] = (path, pos + len(data))
            return {
                "count": len(data),
                "buf-b64": base64.b64encode(data).decode(),
                "eof": pos + len(data) >= len(self.files[path]),
            }
        if command == "guest-file-write":
            path, _ = self.handles[a["handle"]]
            data = base64.b64decode(a["buf-b64"])[:10_000]  # short writes
            self.files[path] += data
            return {"count": len(data), "eof": False}
        if command in ("guest-file-close", "guest-file-flush"):
            return {}
        raise GuestError(command)


def test_guest_info() -> None:
    info = _guest.guest_info(FakeAgent())
    assert (info.agent_version, info.os_family, info.os_name, info.hostname) == (
        "7.2.0",
        OSFamily.LINUX,
        "Debian 12",
        "g1",
    )


def test_exec_polls_and_decodes() -> None:
    agent = FakeAgent(exits_after=3)
    result = _guest.exec_command(agent, ["sh", "-c", "x"], stdin=b"in", env={"A": "1"}, timeout=10, clock=ManualClock())
    assert (result.exit_code, result.stdout, result.stderr) == (3, "oü", "e")
    assert agent.exec_args == {
        "path": "sh",
        "arg": ["-c", "x"],
        "capture-output": True,
        "env": ["A=1"],
        "input-data": base64.b64encode(b"in").decode(),
    }


def test_exec_timeout_uses_the_backend_clock() -> None:
    with pytest.raises(OperationTimeout):
        _guest.exec_command(
            FakeAgent(exits_after=10**9), ["sleep", "1000"], stdin=None, env={}, timeout=5, clock=ManualClock()
        )


def test_files_round_trip_in_chunks() -> None:
    agent = FakeAgent()
    data = bytes(range(256)) * 1000
    _guest.write_file(agent, "/f", data)
    assert bytes(agent.files["/f"]) == data
    assert _guest.read_file(agent, "/f") == data
    assert agent.calls.count("guest-file-read") == -(-len(data) // _guest.CHUNK)
    assert agent.calls[-1] == "guest-file-close"


def test_rank_addresses() -> None:
    found = [
        ("dhcp", {"vnet0": {"hwaddr": "52:54:00:AA:BB:CC", "addrs": [{"addr": "192.168.122.5", "prefix": 24}]}}),
        (
            "agent",
            {
                "lo": {"hwaddr": "00:00:00:00:00:00", "addrs": [{"addr": "127.0.0.1", "prefix": 8}]},
                "eth0": {
                    "hwaddr": "52:54:00:aa:bb:cc",
                    "addrs": [{"addr": "fe80::1", "prefix": 64}, {"addr": "192.168.122.5", "prefix": 24}],
                },
            },
        ),
    ]
    ranked = _guest.rank_addresses(found)
    assert [(a.address, a.source, a.mac) for a in ranked] == [
        ("192.168.122.5", "agent", "52:54:00:aa:bb:cc"),
        ("fe80::1", "agent", "52:54:00:aa:bb:cc"),
        ("127.0.0.1", "agent", "00:00:00:00:00:00"),
    ]
