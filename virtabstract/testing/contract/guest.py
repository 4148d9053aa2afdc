"""Guest: agent info, exec (stdout, stderr, exit code, stdin, env), files (binary round trip), IP addresses."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping

import pytest

from ..._catalog import get_guest_os
from ..._hypervisor import VM, Hypervisor
from ..._model import Capability, ExecResult, GuestInfo, IPAddressInfo, OSFamily
from ...errors import GuestAgentUnavailable, GuestCommandFailed, GuestError, GuestFileNotFound, InvalidState
from ._base import ContractBase, require

__all__ = ["BINARY_PAYLOAD", "GuestContract"]

BINARY_PAYLOAD = b"\x00\x01binary\xff\xfe\x80 not utf-8 \xc3\x28\r\n\x00trailing NUL\x00" + bytes(range(256))
"""Bytes every file transfer must carry unchanged: NULs, CR/LF, invalid UTF-8, all 256 values."""


class GuestContract(ContractBase):
    """Inside-the-guest operations, against the :meth:`guest_vm` fixture (a running VM whose agent answers)."""

    def _path(self, suffix: str) -> str:
        return f"{self.guest_tmp_dir.rstrip('/')}/{self.name_prefix}{uuid.uuid4().hex[:8]}{suffix}"

    def _exec(
        self, vm: VM, argv: list[str], *, stdin: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> ExecResult:
        return vm.guest.exec(argv, self.timeouts.exec, stdin=stdin, env=env)

    def test_guest_info(self, hypervisor: Hypervisor, guest_vm: VM) -> None:
        """The agent reports itself ready, names itself, and reports the guest's OS family."""
        require(hypervisor, Capability.GUEST_INFO)
        info = guest_vm.guest.info()
        assert isinstance(info, GuestInfo)
        assert info.ready is True
        assert info.agent, "GuestInfo.agent is empty"
        assert isinstance(info.os_family, OSFamily)
        declared = guest_vm.info().guest_os
        if declared is not None:
            family = get_guest_os(declared).family
            if family is not OSFamily.OTHER and info.os_family is not OSFamily.OTHER:
                assert info.os_family is family, f"the agent reports {info.os_family}, the VM is {declared}"

    def test_guest_wait_ready(self, hypervisor: Hypervisor, guest_vm: VM) -> None:
        """``wait_ready()`` on a ready guest returns its info."""
        require(hypervisor, Capability.GUEST_INFO)
        info = guest_vm.guest.wait_ready(timeout=self.timeouts.guest)
        assert info.ready is True

    def test_guest_exec_stdout(self, hypervisor: Hypervisor, guest_vm: VM) -> None:
        """A command's standard output and exit status 0 come back; ``argv`` is recorded."""
        require(hypervisor, Capability.GUEST_EXEC)
        result = self._exec(guest_vm, ["echo", "hello", "contract"])
        assert isinstance(result, ExecResult)
        assert result.exit_code == 0
        assert result.ok
        assert result.stdout.rstrip("\r\n") == "hello contract"
        assert result.stderr == ""
        assert result.argv == ("echo", "hello", "contract")

    def test_guest_exec_exit_code(self, hypervisor: Hypervisor, guest_vm: VM) -> None:
        """A non-zero exit status is reported, not raised; ``check=True`` raises GuestCommandFailed."""
        require(hypervisor, Capability.GUEST_EXEC)
        result = self._exec(guest_vm, [*self.guest_shell, "exit 3"])
        assert result.exit_code == 3
        assert not result.ok
        with pytest.raises(GuestCommandFailed) as excinfo:
            guest_vm.guest.exec([*self.guest_shell, "exit 4"], self.timeouts.exec, check=True)
        assert excinfo.value.exit_code == 4

    def test_guest_exec_stderr(self, hypervisor: Hypervisor, guest_vm: VM) -> None:
        """Standard error is captured separately from standard output."""
        require(hypervisor, Capability.GUEST_EXEC)
        missing = self._path(".missing")
        result = self._exec(guest_vm, ["cat", missing])
        assert result.exit_code != 0
        assert missing in result.stderr
        assert result.stdout == ""

    def test_guest_exec_stdin(self, hypervisor: Hypervisor, guest_vm: VM) -> None:
        """Standard input reaches the command."""
        require(hypervisor, Capability.GUEST_EXEC)
        result = self._exec(guest_vm, ["cat"], stdin=b"line one\nline two\n")
        assert result.exit_code == 0
        assert result.stdout == "line one\nline two\n"

    def test_guest_exec_env(self, hypervisor: Hypervisor, guest_vm: VM) -> None:
        """Environment variables given to ``exec`` are visible to the command."""
        require(hypervisor, Capability.GUEST_EXEC)
        result = self._exec(guest_vm, ["printenv", "VATEST_VALUE"], env={"VATEST_VALUE": "forty-two"})
        assert result.exit_code == 0
        assert result.stdout.strip() == "forty-two"

    def test_guest_exec_unknown_program(self, hypervisor: Hypervisor, guest_vm: VM) -> None:
        """A program that does not exist gives a failure (non-zero exit or a GuestError), never success."""
        require(hypervisor, Capability.GUEST_EXEC)
        try:
            result = self._exec(guest_vm, [f"vatest-no-such-program-{uuid.uuid4().hex[:6]}"])
        except GuestAgentUnavailable:
            raise
        except GuestError:
            return
        assert result.exit_code != 0

    def test_guest_file_round_trip_binary(self, hypervisor: Hypervisor, guest_vm: VM) -> None:
        """Bytes written are the bytes read back: NULs, invalid UTF-8 and every byte value survive."""
        require(hypervisor, Capability.GUEST_FILES)
        path = self._path(".bin")
        guest_vm.guest.write_file(path, BINARY_PAYLOAD)
        assert guest_vm.guest.read_file(path) == BINARY_PAYLOAD

    def test_guest_file_replace_and_text(self, hypervisor: Hypervisor, guest_vm: VM) -> None:
        """Writing replaces the whole file (no leftover tail); ``str`` is written as UTF-8."""
        require(hypervisor, Capability.GUEST_FILES)
        path = self._path(".txt")
        guest_vm.guest.write_file(path, b"a much longer first version\n" * 10)
        guest_vm.guest.write_file(path, "short \u00e9\u2603\n")
        assert guest_vm.guest.read_file(path) == "short \u00e9\u2603\n".encode()

    def test_guest_file_empty(self, hypervisor: Hypervisor, guest_vm: VM) -> None:
        """An empty file round-trips as ``b""``."""
        require(hypervisor, Capability.GUEST_FILES)
        path = self._path(".empty")
        guest_vm.guest.write_file(path, b"")
        assert guest_vm.guest.read_file(path) == b""

    def test_guest_file_seen_by_exec(self, hypervisor: Hypervisor, guest_vm: VM) -> None:
        """A file written through the file API is what programs in the guest read."""
        require(hypervisor, Capability.GUEST_FILES, Capability.GUEST_EXEC)
        path = self._path(".txt")
        guest_vm.guest.write_file(path, "written by the contract\n")
        result = self._exec(guest_vm, ["cat", path])
        assert result.exit_code == 0
        assert result.stdout == "written by the contract\n"

    def test_guest_file_missing(self, hypervisor: Hypervisor, guest_vm: VM) -> None:
        """Reading a path that does not exist raises :class:`GuestFileNotFound`."""
        require(hypervisor, Capability.GUEST_FILES)
        with pytest.raises(GuestFileNotFound):
            guest_vm.guest.read_file(self._path(".missing"))

    def test_guest_ip_addresses(self, hypervisor: Hypervisor, guest_vm: VM) -> None:
        """Addresses are valid :class:`IPAddressInfo` records, and every filter really filters."""
        require(hypervisor, Capability.GUEST_NETWORK)
        guest_vm.wait_for_ip(timeout=self.timeouts.ip)
        everything = guest_vm.guest.ip_addresses(include_loopback=True, include_link_local=True)
        assert everything, "no address at all, after wait_for_ip() found one"
        for addr in everything:
            assert isinstance(addr, IPAddressInfo)
            ipaddress.ip_address(addr.address)
            assert addr.version in (4, 6)
            if addr.prefix is not None:
                assert 0 <= addr.prefix <= (32 if addr.version == 4 else 128)
        v4 = guest_vm.guest.ip_addresses(version=4, include_loopback=True)
        assert all(a.version == 4 for a in v4)
        v6 = guest_vm.guest.ip_addresses(version=6, include_loopback=True)
        assert all(a.version == 6 for a in v6)
        default = guest_vm.guest.ip_addresses()
        assert not any(a.is_loopback for a in default), "loopback addresses are excluded by default"
        no_link_local = guest_vm.guest.ip_addresses(include_link_local=False)
        assert not any(a.is_link_local for a in no_link_local)
        addresses = {a.address for a in everything}
        assert {a.address for a in default} <= addresses
        assert {a.address for a in v4} | {a.address for a in v6} == addresses

    def test_guest_wait_for_ip(self, hypervisor: Hypervisor, guest_vm: VM) -> None:
        """``wait_for_ip()`` returns a usable IPv4 address the guest really reports."""
        require(hypervisor, Capability.GUEST_NETWORK)
        found = guest_vm.wait_for_ip(timeout=self.timeouts.ip)
        parsed = ipaddress.ip_address(found)
        assert parsed.version == 4
        assert not parsed.is_loopback
        assert not parsed.is_link_local
        assert found in {a.address for a in guest_vm.guest.ip_addresses()}

    def test_guest_unavailable_when_stopped(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """Guest operations on a stopped VM fail with GuestAgentUnavailable (or InvalidState), never succeed."""
        require(hypervisor, Capability.GUEST_INFO)
        with pytest.raises((GuestAgentUnavailable, InvalidState)):
            stopped_vm.guest.info()
        if hypervisor.supports(Capability.GUEST_EXEC):
            with pytest.raises((GuestAgentUnavailable, InvalidState)):
                stopped_vm.guest.exec(["true"], self.timeouts.exec)
        if hypervisor.supports(Capability.GUEST_FILES):
            with pytest.raises((GuestAgentUnavailable, InvalidState)):
                stopped_vm.guest.read_file(self._path(".x"))
