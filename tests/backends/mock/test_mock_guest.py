"""The simulated guest: agent and IP timing on a manual clock, exec, files."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from virtabstract import VM, ExecResult, ManualClock, Nic, OSFamily
from virtabstract.backends.mock import GuestCommand, MockBackend
from virtabstract.errors import (
    GuestAgentUnavailable,
    GuestCommandFailed,
    GuestError,
    GuestFileNotFound,
    OperationTimeout,
)


def test_agent_timing(make_vm: Callable[..., VM], clock: ManualClock, backend: MockBackend) -> None:
    vm = make_vm()
    with pytest.raises(GuestAgentUnavailable, match="stopped"):
        vm.guest.info()
    vm.start()
    with pytest.raises(GuestAgentUnavailable, match="not running yet"):
        vm.guest.info()
    clock.advance(backend.agent_delay)
    info = vm.guest.info()
    assert (info.agent, info.ready, info.os_family, info.hostname) == ("mock-agent", True, OSFamily.LINUX, vm.name)
    assert info.os_name == "Ubuntu 22.04 LTS" and info.os_version == "22.04"
    vm.pause()
    with pytest.raises(GuestAgentUnavailable, match="paused"):
        vm.guest.info()


def test_wait_ready_uses_the_manual_clock(make_vm: Callable[..., VM], clock: ManualClock) -> None:
    import virtabstract

    with virtabstract.connect("mock://?clock=manual&agent_delay=30") as hv:
        vm = hv.vms.create(virtabstract.VMSpec(name="slow"))
        vm.start()
        with pytest.raises(OperationTimeout):
            vm.guest.wait_ready(timeout=10)
        assert vm.guest.wait_ready(timeout=60).ready
        assert 30 <= hv.backend.clock.monotonic() < 40


def test_wait_ready_notices_a_ready_agent_within_a_quarter_second() -> None:
    """The probe back-off is capped at 0.25 s: a guest that needs 5.25 s is seen by 5.5 s (at 0.5 s, by 5.7 s)."""
    import virtabstract

    with virtabstract.connect("mock://?clock=manual&agent_delay=5.25") as hv:
        vm = hv.vms.create(virtabstract.VMSpec(name="prompt"))
        vm.start()
        started = hv.backend.clock.monotonic()
        assert vm.guest.wait_ready(timeout=60).ready
        assert 5.25 <= hv.backend.clock.monotonic() - started <= 5.5


def test_ip_progression(make_vm: Callable[..., VM], clock: ManualClock) -> None:
    import virtabstract

    with virtabstract.connect("mock://?clock=manual&agent_delay=1&ip_delay=5") as hv:
        vm = hv.vms.create(virtabstract.VMSpec(name="n", nics=[Nic(), Nic(network="isolated")]))
        with pytest.raises(GuestAgentUnavailable):
            vm.guest.ip_addresses()
        vm.start()
        assert vm.guest.ip_addresses() == []  # no agent yet, no lease yet
        hv.backend.clock.sleep(1)
        early = vm.guest.ip_addresses(include_loopback=True)
        kinds = sorted((a.interface, a.is_link_local, a.is_loopback) for a in early)
        assert ("eth0", True, False) in kinds and ("lo", False, True) in kinds
        assert all(a.is_link_local or a.is_loopback for a in early)
        assert {a.version for a in early if a.interface == "eth0"} == {4, 6}
        assert any(a.address.startswith("fe80::") for a in early)
        assert any(a.address.startswith("169.254.") for a in early)
        assert vm.guest.ip_addresses(include_link_local=False) == []
        ip = vm.wait_for_ip(timeout=30)
        assert ip.startswith("192.168.122.")
        late = vm.guest.ip_addresses()
        assert any(a.address.startswith("fd00::") and a.interface == "eth0" for a in late)
        assert not any(a.address.startswith("169.254.") and a.interface == "eth0" for a in late)
        # the isolated network has no DHCP: only link-local addresses on eth1
        assert all(a.is_link_local for a in late if a.interface == "eth1")
        assert vm.wait_for_ip(version=6).startswith("fd00::")


def test_dhcp_lease_without_agent(running_vm: VM, backend: MockBackend) -> None:
    backend.faults.agent_absent(running_vm.id)
    addresses = running_vm.guest.ip_addresses()
    assert [(a.source, a.version) for a in addresses] == [("dhcp", 4)]
    with pytest.raises(GuestAgentUnavailable, match="no guest agent"):
        running_vm.guest.info()
    backend.faults.agent_absent(running_vm.id, absent=False)
    assert running_vm.guest.info().ready


@pytest.mark.parametrize(
    ("argv", "code", "stdout", "stderr"),
    [
        (["echo", "hello", "world"], 0, "hello world\n", ""),
        (["echo", "-n", "x"], 0, "x", ""),
        (["/bin/echo", "path"], 0, "path\n", ""),
        (["true"], 0, "", ""),
        (["false"], 1, "", ""),
        (["hostname"], 0, "guest-1\n", ""),
        (["uname", "-s"], 0, "Linux\n", ""),
        (["uname", "-n", "-r"], 0, "guest-1 6.1.0-mock-amd64\n", ""),
        (["cat", "/etc/hostname"], 0, "guest-1\n", ""),
        (["cat", "/nope"], 1, "", "cat: /nope: No such file or directory\n"),
        (["sh", "-c", "exit 7"], 7, "", ""),
        (["sh", "-c", "false || echo fallback"], 0, "fallback\n", ""),
        (["sh", "-c", "true && echo a; echo b"], 0, "a\nb\n", ""),
        (["sh", "-c", "echo piped | cat"], 0, "piped\n", ""),
        (["sh", "-c", "echo 1 > /tmp/f; echo 2 >> /tmp/f; cat /tmp/f"], 0, "1\n2\n", ""),
        (["sh", "-c", "exit 3; echo never"], 3, "", ""),
        (["bash", "-c", "test -d /etc && echo dir"], 0, "dir\n", ""),
        (["test", "-f", "/etc/os-release"], 0, "", ""),
        (["sleep", "1"], 0, "", ""),
        (["mkdir", "/a/b"], 1, "", None),
        (["mkdir", "-p", "/a/b"], 0, "", ""),
        (["whoami"], 0, "root\n", ""),
        (["printenv", "MODE"], 0, "test\n", ""),
        (["frobnicate", "--x"], 127, "", "frobnicate: command not found\n"),
        (["ver"], 127, "", "ver: command not found\n"),
    ],
)
def test_builtin_programs(
    make_vm: Callable[..., VM],
    backend: MockBackend,
    argv: list[str],
    code: int,
    stdout: str,
    stderr: str | None,
) -> None:
    vm = make_vm("Guest_1")
    vm.start()
    backend.clock.sleep(1)
    result = vm.guest.exec(argv, env={"MODE": "test"})
    assert (result.exit_code, result.stdout) == (code, stdout)
    if stderr is not None:
        assert result.stderr == stderr
    assert result.argv == tuple(argv)


def test_cat_reads_stdin(running_vm: VM) -> None:
    assert running_vm.guest.exec(["cat"], stdin="from stdin").stdout == "from stdin"


def test_exec_check(running_vm: VM) -> None:
    with pytest.raises(GuestCommandFailed) as err:
        running_vm.guest.exec(["sh", "-c", "exit 2"], check=True)
    assert err.value.exit_code == 2


def test_sleep_respects_timeout(running_vm: VM, clock: ManualClock) -> None:
    before = clock.monotonic()
    with pytest.raises(OperationTimeout):
        running_vm.guest.exec(["sleep", "100"], timeout=10)
    assert clock.monotonic() - before == pytest.approx(10)
    assert running_vm.guest.exec(["sleep", "5"], timeout=10).ok
    with pytest.raises(OperationTimeout):
        running_vm.guest.exec(["sh", "-c", "sleep 6; sleep 6"], timeout=10)


def test_custom_program(running_vm: VM, backend: MockBackend) -> None:
    seen: list[GuestCommand] = []

    def myapp(cmd: GuestCommand) -> tuple[int, str, str]:
        seen.append(cmd)
        cmd.files.write("/tmp/myapp.log", cmd.stdin)
        return 4, f"args={cmd.args}\n", "warn\n"

    backend.guest_programs.register("myapp", myapp)
    result = running_vm.guest.exec(["/usr/local/bin/myapp", "-v"], stdin=b"in")
    assert result == ExecResult(4, "args=['-v']\n", "warn\n")
    assert running_vm.guest.read_file("/tmp/myapp.log") == b"in"
    assert seen[0].env == {} and seen[0].vm_id == running_vm.id

    # usable from the shell too, and decorator form
    @backend.guest_programs.program("greet")
    def greet(cmd: GuestCommand) -> str:
        return "hi " + " ".join(cmd.args) + "\n"

    assert running_vm.guest.exec(["sh", "-c", "greet you | cat"]).stdout == "hi you\n"
    assert "greet" in backend.guest_programs and "greet" in backend.guest_programs.names()
    backend.guest_programs.unregister("greet")
    assert running_vm.guest.exec(["greet"]).exit_code == 127


def test_program_registry_is_per_connection(running_vm: VM, backend: MockBackend) -> None:
    import virtabstract

    backend.guest_programs.register("only-here", lambda cmd: 0)
    with virtabstract.connect("mock://") as other:
        assert "only-here" not in other.backend.guest_programs  # type: ignore[attr-defined]


def test_program_errors_become_guest_errors(running_vm: VM, backend: MockBackend) -> None:
    def broken(cmd: GuestCommand) -> int:
        raise RuntimeError("boom")

    backend.guest_programs.register("broken", broken)
    with pytest.raises(GuestError, match="boom"):
        running_vm.guest.exec(["broken"])


def test_files(running_vm: VM) -> None:
    running_vm.guest.write_file("/root/notes.txt", "héllo")
    assert running_vm.guest.read_file("/root/notes.txt") == "héllo".encode()
    assert running_vm.guest.read_file("/root/../root/./notes.txt") == "héllo".encode()
    with pytest.raises(GuestFileNotFound):
        running_vm.guest.read_file("/root/missing")
    with pytest.raises(GuestError, match="does not exist"):
        running_vm.guest.write_file("/no/such/dir/file", b"x")
    with pytest.raises(GuestError, match="directory"):
        running_vm.guest.read_file("/etc")
    with pytest.raises(GuestError, match="absolute"):
        running_vm.guest.read_file("relative.txt")
    # files survive a power cycle
    running_vm.power_off()
    running_vm.start()
    running_vm.guest.wait_ready(timeout=10)
    assert running_vm.guest.read_file("/root/notes.txt") == "héllo".encode()


def test_files_need_the_agent(make_vm: Callable[..., VM]) -> None:
    vm = make_vm()
    with pytest.raises(GuestAgentUnavailable):
        vm.guest.read_file("/etc/hostname")
    with pytest.raises(GuestAgentUnavailable):
        vm.guest.write_file("/tmp/x", b"")
    with pytest.raises(GuestAgentUnavailable):
        vm.guest.exec(["true"])


def test_windows_guest(make_vm: Callable[..., VM], backend: MockBackend) -> None:
    vm = make_vm("win-box", guest_os="windows-server-2022")
    vm.start()
    backend.clock.sleep(1)
    assert vm.guest.info().os_family is OSFamily.WINDOWS
    vm.guest.write_file("C:\\Temp\\out.txt", b"data")
    assert vm.guest.read_file("c:/temp/OUT.TXT") == b"data"
    with pytest.raises(GuestError):
        vm.guest.write_file("D:\\nowhere\\x", b"")
    with pytest.raises(GuestError, match="absolute"):
        vm.guest.read_file("/etc/hostname")
    assert vm.guest.exec(["cmd.exe", "/c", "type C:\\Temp\\out.txt"]).stdout == "data"
    assert vm.guest.exec(["cmd", "/c", "echo hi"]).stdout == "hi\r\n"
    assert vm.guest.exec(["hostname"]).stdout == "win-box\r\n"
    assert vm.guest.exec(["powershell", "-Command", "exit 5"]).exit_code == 5
    missing = vm.guest.exec(["uname", "-a"])
    assert missing.exit_code == 9009 and "not recognized" in missing.stderr
