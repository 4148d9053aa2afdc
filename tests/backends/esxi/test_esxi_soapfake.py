"""What vcsim 0.24 cannot simulate, through real pyVmomi on the vSphere wire protocol.

``soapfake.SoapFakeProxy`` sits between the backend (real pyVmomi) and vcsim: inventory, sessions,
property collector and tasks are vcsim's; guest operations (StartProgramInGuest, ListProcessesInGuest,
TerminateProcessInGuest, CreateTemporaryFileInGuest, DeleteFileInGuest, InitiateFileTransferTo/FromGuest
and the ``/guestFile`` transfer URLs), RebootGuest, ShutdownGuest's Tools check and AcquireTicket are
answered by the fake from VMware's documented semantics. The proxy serves https on 127.0.0.2 with a
generated CA, so the SOAP calls and the transfer URLs are TLS-verified with the connection's context.

VM setup: vcsim's ESX model with three running VMs; VMware Tools state and guest family are set in
vcsim with its ``SET.guest.*`` extraConfig keys (ReconfigVM_Task), and the fake reads them from vcsim.
"""

from __future__ import annotations

import http.client
import ssl
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

pytest.importorskip("pyVmomi")
from pyVim.task import WaitForTask
from pyVmomi import vim
from soapfake import (
    FakeGuest,
    SoapFakeProxy,
    run_soapfake,
    wire,
)

import virtabstract
from tests.infra.vcsim import VcsimInstance, make_test_ca, run_vcsim
from virtabstract import VM, Hypervisor, Secret
from virtabstract.errors import (
    GuestAgentUnavailable,
    GuestError,
    GuestFileNotFound,
    InvalidState,
    OperationTimeout,
)
from virtabstract.testing import ContractTimeouts
from virtabstract.testing.contract import ContractBase, GuestContract, LifecycleContract, PowerContract
from virtabstract.testing.contract.guest import BINARY_PAYLOAD

pytestmark = pytest.mark.vcsim

GUEST_USER = "root"
GUEST_PASSWORD = "s3cret-guest"
TLS_HOST = "127.0.0.2"


@pytest.fixture(scope="module")
def sim(vcsim_ok: None) -> Iterator[VcsimInstance]:
    with run_vcsim(model="esx", vms=4) as instance:
        yield instance


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Any]:
    return make_test_ca(tmp_path_factory.mktemp("soapfake-pki"), host=TLS_HOST)


@pytest.fixture(scope="module")
def proxy(sim: VcsimInstance, pki: tuple[Any, Any, Any]) -> Iterator[SoapFakeProxy]:
    _, cert, key = pki
    with run_soapfake(sim.url, host=TLS_HOST, cert=(cert, key)) as fake:
        fake.guest_defaults = {"username": GUEST_USER, "password": GUEST_PASSWORD}
        yield fake


def fake_url(sim: VcsimInstance, proxy: SoapFakeProxy, ca: Any) -> str:
    return f"esx://{sim.username}:{sim.password}@{TLS_HOST}:{proxy.port}/?ca_file={ca}"


@pytest.fixture(scope="module")
def hv(sim: VcsimInstance, proxy: SoapFakeProxy, pki: tuple[Any, Any, Any]) -> Iterator[Hypervisor]:
    url = fake_url(sim, proxy, pki[0])
    with virtabstract.connect(url, guest_username=GUEST_USER, guest_password=GUEST_PASSWORD) as conn:
        yield conn


def set_guest(hv: Hypervisor, vm: VM, **props: str) -> None:
    """Set vcsim's ``guest.*`` properties of *vm* (``SET.guest.<name>`` extraConfig)."""
    spec = vim.vm.ConfigSpec(
        extraConfig=[vim.option.OptionValue(key=f"SET.guest.{k}", value=v) for k, v in props.items()]
    )
    WaitForTask(hv.backend.native_vm(vm.id).ReconfigVM_Task(spec))


@pytest.fixture(scope="module")
def vms(hv: Hypervisor) -> dict[str, VM]:
    """linux: Tools running; windows: Tools running, windowsGuest; notools: Tools not running; spare."""
    found = sorted(hv.vms.list(), key=lambda v: v.name)
    assert len(found) >= 4, [v.name for v in found]
    roles = dict(zip(("linux", "windows", "notools", "spare"), found, strict=False))
    set_guest(
        hv, roles["linux"], toolsRunningStatus="guestToolsRunning", guestFamily="linuxGuest", ipAddress="10.0.0.7"
    )
    set_guest(hv, roles["windows"], toolsRunningStatus="guestToolsRunning", guestFamily="windowsGuest")
    set_guest(hv, roles["notools"], toolsRunningStatus="guestToolsNotRunning", guestFamily="linuxGuest")
    set_guest(hv, roles["spare"], toolsRunningStatus="guestToolsRunning", guestFamily="linuxGuest")
    return roles


def guest_of(proxy: SoapFakeProxy, vm: VM) -> FakeGuest:
    return proxy.guests[vm.native._moId]


def called(proxy: SoapFakeProxy, method: str) -> int:
    return sum(1 for m, _ in proxy.calls if m == method)


# -- exec -----------------------------------------------------------------------------------------


def test_exec_stdout_exit_code_and_temp_files_deleted(vms: dict[str, VM], proxy: SoapFakeProxy) -> None:
    vm = vms["linux"]
    result = vm.guest.exec(["echo", "hello", "wire world"], timeout=20)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "hello wire world\n", "")
    guest = guest_of(proxy, vm)
    program, arguments, _ = guest.started[-1]
    assert program == "/usr/bin/env"
    assert arguments.startswith("echo hello 'wire world' >")
    temps = guest.temp_files[-2:]
    assert [t.rsplit(".", 1)[1] for t in temps] == ["out", "err"]
    assert set(temps) <= set(guest.deleted)
    assert not any(guest.exists(t) for t in temps), "the backend left its temp files in the guest"


def test_exec_stderr_and_non_zero_exit(vms: dict[str, VM], proxy: SoapFakeProxy) -> None:
    result = vms["linux"].guest.exec(["cat", "/no/such/file"], timeout=20)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "/no/such/file: No such file or directory" in result.stderr
    assert vms["linux"].guest.exec(["sh", "-c", "exit 7"], timeout=20).exit_code == 7


def test_exec_stdin_and_env(vms: dict[str, VM], proxy: SoapFakeProxy) -> None:
    vm = vms["linux"]
    result = vm.guest.exec(["cat"], timeout=20, stdin=b"line one\nline two\n")
    assert (result.exit_code, result.stdout) == (0, "line one\nline two\n")
    guest = guest_of(proxy, vm)
    stdin_file = guest.temp_files[-1]
    assert stdin_file.endswith(".in") and stdin_file in guest.deleted
    env = vm.guest.exec(["printenv", "VA_VALUE"], timeout=20, env={"VA_VALUE": "forty two"})
    assert env.stdout == "forty two\n"
    # added to the environment through /usr/bin/env, not envVariables (which would replace it)
    assert guest.started[-1][2] is None
    assert "'VA_VALUE=forty two'" in guest.started[-1][1]


def test_exec_unknown_program_is_exit_127(vms: dict[str, VM]) -> None:
    result = vms["linux"].guest.exec(["va-no-such-program", "x"], timeout=20)
    assert result.exit_code == 127
    assert "va-no-such-program" in result.stderr


def test_exec_timeout_terminates_the_process_and_cleans_up(vms: dict[str, VM], proxy: SoapFakeProxy) -> None:
    vm = vms["linux"]
    before = called(proxy, "TerminateProcessInGuest")
    started = time.monotonic()
    with pytest.raises(OperationTimeout):
        vm.guest.exec(["sleep", "30"], timeout=1.5)
    assert time.monotonic() - started < 10
    assert called(proxy, "TerminateProcessInGuest") == before + 1
    guest = guest_of(proxy, vm)
    pid = max(guest.processes)
    assert guest.processes[pid].terminated
    assert not any(guest.exists(t) for t in guest.temp_files[-2:])


def test_wrong_guest_password_is_a_clear_guest_error(
    sim: VcsimInstance, proxy: SoapFakeProxy, pki: tuple[Any, Any, Any], vms: dict[str, VM]
) -> None:
    wrong = "not-the-password-xyzzy"
    url = fake_url(sim, proxy, pki[0])
    with virtabstract.connect(url, guest_username=GUEST_USER, guest_password=wrong) as other:
        vm = other.vms.get(vms["linux"].id)
        with pytest.raises(GuestError) as excinfo:
            vm.guest.exec(["echo", "x"], timeout=20)
        with pytest.raises(GuestError):
            vm.guest.read_file("/etc/hostname")
    error = excinfo.value
    assert "guest_password" in str(error) and "refused the credentials" in str(error)
    assert isinstance(error.__cause__, vim.fault.InvalidGuestLogin)
    chain = f"{error!s} {error!r} {error.__cause__!s} {error.__cause__!r}"
    assert wrong not in chain and GUEST_PASSWORD not in chain


def test_guest_ops_without_tools(vms: dict[str, VM], hv: Hypervisor) -> None:
    vm = vms["notools"]
    with pytest.raises(GuestAgentUnavailable):
        vm.guest.exec(["echo", "x"], timeout=20)
    # the server-side check too (the backend checks first; raw pyVmomi reaches the fake)
    content = hv.backend.native.content
    auth = vim.vm.guest.NamePasswordAuthentication(username=GUEST_USER, password=GUEST_PASSWORD)
    spec = vim.vm.guest.ProcessManager.ProgramSpec(programPath="/bin/true", arguments="")
    with pytest.raises(vim.fault.GuestOperationsUnavailable):
        content.guestOperationsManager.processManager.StartProgramInGuest(vm.native, auth, spec)


def test_raw_pyvmomi_documented_faults(vms: dict[str, VM], hv: Hypervisor) -> None:
    """The fake's faults arrive in pyVmomi as the documented vim fault types, with their properties."""
    content = hv.backend.native.content
    processes = content.guestOperationsManager.processManager
    files = content.guestOperationsManager.fileManager
    vm = vms["linux"].native
    auth = vim.vm.guest.NamePasswordAuthentication(username=GUEST_USER, password=GUEST_PASSWORD)
    with pytest.raises(vim.fault.FileNotFound) as missing:
        processes.StartProgramInGuest(vm, auth, vim.vm.guest.ProcessManager.ProgramSpec(programPath="/bin/nope"))
    assert missing.value.file == "/bin/nope"
    with pytest.raises(vim.fault.GuestProcessNotFound) as gone:
        processes.TerminateProcessInGuest(vm, auth, 999999)
    assert gone.value.pid == 999999
    assert processes.ListProcessesInGuest(vm, auth, [999999]) == []
    pid = processes.StartProgramInGuest(
        vm, auth, vim.vm.guest.ProcessManager.ProgramSpec(programPath="/bin/sh", arguments="-c 'exit 5'")
    )
    (info,) = processes.ListProcessesInGuest(vm, auth, [pid])
    assert (info.pid, info.exitCode, info.owner) == (pid, 5, GUEST_USER)
    assert info.endTime is not None and info.startTime <= info.endTime
    with pytest.raises(vim.fault.FileNotFound):
        files.DeleteFileInGuest(vm, auth, "/tmp/not-there")
    with pytest.raises(vim.fault.FileAlreadyExists):
        files.InitiateFileTransferToGuest(
            vm, auth, "/etc/hostname", vim.vm.guest.FileManager.FileAttributes(), 1, False
        )
    with pytest.raises(vim.fault.InvalidGuestLogin):
        files.CreateTemporaryFileInGuest(
            vm, vim.vm.guest.NamePasswordAuthentication(username=GUEST_USER, password="wrong"), "a", "b", None
        )
    stopped = hv.vms.create({"name": "soapfake-stopped", "guest_os": "linux", "memory": "64MiB", "cpus": 1})
    try:
        with pytest.raises(vim.fault.InvalidPowerState) as off:
            processes.ListProcessesInGuest(stopped.native, auth, [])
        assert off.value.existingState == "poweredOff"
    finally:
        stopped.delete()


def test_fault_envelope_matches_vcsim(proxy: SoapFakeProxy, vms: dict[str, VM]) -> None:
    """Our NotAuthenticated fault has exactly the envelope shape vcsim gives for the same unauthenticated call."""
    vm = vms["linux"].native._moId
    body = wire.envelope(
        f'<StartProgramInGuest xmlns="{wire.VIM}"><_this type="GuestProcessManager">'
        "guestOperationsProcessManager</_this>"
        f'<vm type="VirtualMachine">{vm}</vm></StartProgramInGuest>'
    )
    vcsim_status, _, vcsim_reply = proxy.upstream(body, {"Content-Type": "text/xml; charset=utf-8"})
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the shape is what matters here; TLS is verified by the other tests
    connection = http.client.HTTPSConnection(TLS_HOST, proxy.port, context=context)
    connection.request("POST", "/sdk", body=body, headers={"Content-Type": "text/xml; charset=utf-8"})
    reply = connection.getresponse()
    ours = reply.read()
    connection.close()
    assert (reply.status, vcsim_status) == (500, 500)
    assert b"NotAuthenticated" in vcsim_reply
    assert wire.skeleton(ours) == wire.skeleton(vcsim_reply)


def test_guest_exec_after_session_terminated_logs_in_again(
    sim: VcsimInstance, proxy: SoapFakeProxy, pki: tuple[Any, Any, Any], vms: dict[str, VM]
) -> None:
    url = fake_url(sim, proxy, pki[0])
    with (
        virtabstract.connect(url, guest_username=GUEST_USER, guest_password=GUEST_PASSWORD) as victim,
        virtabstract.connect(url) as admin,
    ):
        vm = victim.vms.get(vms["spare"].id)
        key = victim.backend.native.content.sessionManager.currentSession.key
        admin.backend.native.content.sessionManager.TerminateSession([key])
        logins = called(proxy, "Login")
        assert vm.guest.exec(["echo", "again"], timeout=20).stdout == "again\n"
        assert called(proxy, "Login") == logins + 1


# -- files ------------------------------------------------------------------------------------------


def test_file_round_trip_binary_both_ways(vms: dict[str, VM], proxy: SoapFakeProxy) -> None:
    vm = vms["linux"]
    vm.guest.write_file("/tmp/payload.bin", BINARY_PAYLOAD)
    guest = guest_of(proxy, vm)
    assert guest.fs.read("/tmp/payload.bin") == BINARY_PAYLOAD  # the bytes landed unchanged in the guest
    guest.write("/root/from-guest.bin", BINARY_PAYLOAD[::-1])
    assert vm.guest.read_file("/root/from-guest.bin") == BINARY_PAYLOAD[::-1]
    vm.guest.write_file("/tmp/payload.bin", b"")
    assert vm.guest.read_file("/tmp/payload.bin") == b""


def test_read_missing_file_is_guest_file_not_found(vms: dict[str, VM]) -> None:
    with pytest.raises(GuestFileNotFound):
        vms["linux"].guest.read_file("/tmp/va-missing-file")
    with pytest.raises(GuestFileNotFound, match="/no/such/dir"):  # the parent directory does not exist
        vms["linux"].guest.write_file("/no/such/dir/file", b"x")


# -- Windows ------------------------------------------------------------------------------------------


def test_windows_guest_goes_through_cmd(vms: dict[str, VM], proxy: SoapFakeProxy) -> None:
    vm = vms["windows"]
    result = vm.guest.exec(["echo", "hello"], timeout=20)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "hello\r\n", "")
    guest = guest_of(proxy, vm)
    assert guest.windows
    program, arguments, _ = guest.started[-1]
    assert program.lower().endswith("\\cmd.exe")
    assert arguments.startswith('/c "echo hello >"')
    guest.fs.mkdir("C:\\Program Files", parents=True)
    vm.guest.write_file("C:\\Program Files\\notes.txt", b"windows text\r\n")
    typed = vm.guest.exec(["type", "C:\\Program Files\\notes.txt"], timeout=20)
    assert (typed.exit_code, typed.stdout) == (0, "windows text\r\n")
    guest.programs.register("more", lambda cmd: cmd.stdin_text)
    fed = vm.guest.exec(["more"], timeout=20, stdin=b"from stdin\r\n")
    assert (fed.exit_code, fed.stdout) == (0, "from stdin\r\n")
    assert guest.started[-1][1].endswith('.in""')  # <"…\va-….in" inside the /c "…" quotes
    missing = vm.guest.exec(["va-nothing"], timeout=20)
    assert missing.exit_code == 9009 and "is not recognized" in missing.stderr
    assert all(t.lower().startswith("c:\\users\\administrator\\appdata\\local\\temp\\") for t in guest.temp_files)
    assert not any(guest.exists(t) for t in guest.temp_files)


def test_windows_arguments_reach_the_program_intact(vms: dict[str, VM], proxy: SoapFakeProxy) -> None:
    """cmd.exe metacharacters in argv are data, not commands: ``&`` must not split the command line."""
    vm = vms["windows"]
    guest = guest_of(proxy, vm)
    guest.programs.register("showargs", lambda cmd: "|".join(cmd.args) + "\r\n")
    argv = ["showargs", "a&b", 'say "hi" & bye', "x|y", "<in>", "c:\\dir with space\\", "", "caret^", "(paren)"]
    result = vm.guest.exec(argv, timeout=20)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == "|".join(argv[1:]) + "\r\n"
    tool = "C:\\Program Files (x86)\\My Tool\\tool.exe"  # cmd must still find a program path with spaces
    guest.programs.register("tool", lambda cmd: "tool:" + "|".join(cmd.args) + "\r\n")
    ran = vm.guest.exec([tool, "x&y", "(1)"], timeout=20)
    assert (ran.exit_code, ran.stdout, ran.stderr) == (0, "tool:x&y|(1)\r\n", "")
    guest.fs.write("C:\\Temp\\a&b.txt", b"ampersand file\r\n")
    typed = vm.guest.exec(["type", "C:\\Temp\\a&b.txt"], timeout=20)
    assert (typed.exit_code, typed.stdout, typed.stderr) == (0, "ampersand file\r\n", "")


# -- power and console ------------------------------------------------------------------------------


def test_reboot_needs_tools(vms: dict[str, VM], proxy: SoapFakeProxy) -> None:
    vm = vms["linux"]
    before = guest_of(proxy, vm).reboots
    vm.reboot()
    assert guest_of(proxy, vm).reboots == before + 1
    with pytest.raises(GuestAgentUnavailable):
        vms["notools"].reboot()


def test_console_webmks_ticket(vms: dict[str, VM], proxy: SoapFakeProxy) -> None:
    console = vms["linux"].console()
    ticket = proxy.tickets[-1]
    assert ticket.ticket_type == "webmks"
    assert console.protocol == "webmks"
    assert isinstance(console.password, Secret) and console.password.reveal() == ticket.ticket
    assert ticket.ticket not in repr(console)
    assert (console.host, console.port) == (TLS_HOST, 443)


def test_shutdown_without_tools(vms: dict[str, VM]) -> None:
    vm = vms["notools"]
    with pytest.raises(GuestAgentUnavailable):
        vm.shutdown(timeout=10)
    assert vm.state.value == "running"
    result = vm.shutdown(timeout=10, force=True)
    assert result.stage == "forced"
    assert vm.state.value == "stopped"
    with pytest.raises(InvalidState):  # no console ticket for a powered-off VM
        vm.console()


def test_shutdown_with_tools_is_graceful(vms: dict[str, VM], proxy: SoapFakeProxy) -> None:
    vm = vms["spare"]
    before = called(proxy, "ShutdownGuest")
    vm.shutdown(timeout=10)
    assert called(proxy, "ShutdownGuest") == before + 1
    assert vm.state.value == "stopped"
    vm.start()


# -- the shipped guest contract ----------------------------------------------------------------------


class TestGuestContractSoapFake(GuestContract):
    """virtabstract.testing.contract.GuestContract through pyVmomi against the fake guest."""

    spec_network: ClassVar[str | None] = "VM Network"
    timeouts: ClassVar[ContractTimeouts] = ContractTimeouts(state=10, shutdown=10, guest=10, ip=5, exec=20)

    @pytest.fixture
    def hypervisor(self, hv: Hypervisor) -> Hypervisor:
        return hv

    @pytest.fixture
    def guest_vm(self, vms: dict[str, VM]) -> VM:
        return vms["linux"]


class TestVcsimGapsContract(ContractBase):
    """The shipped contract tests skipped on plain vcsim (RebootGuest, AcquireTicket), on fresh VMs."""

    spec_network: ClassVar[str | None] = "VM Network"
    timeouts: ClassVar[ContractTimeouts] = ContractTimeouts(state=10, shutdown=10, guest=10, ip=5, exec=20)

    test_power_reboot = PowerContract.test_power_reboot
    test_lifecycle_console = LifecycleContract.test_lifecycle_console

    @pytest.fixture
    def hypervisor(self, hv: Hypervisor) -> Hypervisor:
        return hv

    @pytest.fixture
    def graceful_vm(self, hv: Hypervisor, running_vm: VM) -> VM:
        set_guest(hv, running_vm, toolsRunningStatus="guestToolsRunning", guestFamily="linuxGuest")
        return running_vm
