"""The API transport's Guest Additions, console and reboot on the fake COM layer (every version profile)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from virtabstract_vbox import _api_guest
from virtabstract_vbox._api_backend import VBoxApiBackend
from virtabstract_vbox._api_guest import _octets
from virtabstract_vbox._backend import VRDE_PASSWORD_KEY, VRDE_USER, VBoxBackend, first_port

import virtabstract
from virtabstract import Capability, OSFamily, PowerState, Secret, VMSpec
from virtabstract.errors import (
    GuestAgentUnavailable,
    GuestError,
    GuestFileNotFound,
    InvalidState,
    OperationTimeout,
    UnsupportedOperation,
)

from .conftest import GUEST_PASSWORD, GUEST_USER
from .fake_com import VERSIONS, COMError
from .fake_com.guest import (
    ADDITIONS_POLLS,
    FILE_CHUNK,
    READ_CHUNK,
    SYSTEM_POLLS,
    FakeGuest,
    guest_os,
    open_guest_sessions,
)
from .fake_vboxmanage import since

BINARY = bytes(range(256)) * 3 + b"\x00tail\r\n"


def _connect(fake_com: Any, **options: Any) -> virtabstract.Hypervisor:
    return virtabstract.connect("vbox:///session?transport=api", vboxapi_module=fake_com, **options)


@pytest.fixture
def guest_hv(fake_com: Any) -> Iterator[virtabstract.Hypervisor]:
    """The API transport with the fake guest's account; no machine lock and no guest session left behind."""
    with _connect(fake_com, guest_username=GUEST_USER, guest_password=GUEST_PASSWORD) as hv:
        yield hv
    assert fake_com.server.locked_sessions() == [], "a session was left locked"
    assert open_guest_sessions(fake_com.server) == [], "a guest session was left open"


def _running(hv: virtabstract.Hypervisor, name: str = "g1", **spec: Any) -> virtabstract.VM:
    vm = hv.vms.create(VMSpec(name=name, memory="256MiB", nics=[{"network": "default"}], **spec))
    vm.start()
    return vm


def _machine(fake_com: Any, vm: virtabstract.VM) -> Any:
    return fake_com.server.vbox.findMachine(vm.id)


# -- tables -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(b"ab", b"ab"), (memoryview(b"\x00\xff"), b"\x00\xff"), (bytearray(b"x"), b"x"), ([104, 105], b"hi"), (None, b"")],
)
def test_octets(value: Any, expected: bytes) -> None:
    assert _octets(value) == expected


@pytest.mark.parametrize(
    ("ports", "expected"), [("5000-5099", 5000), ("3389", 3389), ("5000,6000-6010", 5000), ("", None), ("0", None)]
)
def test_first_vrde_port(ports: str, expected: int | None) -> None:
    assert first_port(ports) == expected


def test_capabilities_are_the_vboxmanage_transports() -> None:
    assert VBoxApiBackend.capabilities == VBoxBackend.capabilities


# -- guest information ------------------------------------------------------------------------


def test_additions_come_up_after_some_polls(fake_com: Any, guest_hv: virtabstract.Hypervisor) -> None:
    vm = _running(guest_hv)
    for _ in range(ADDITIONS_POLLS):  # the transient: right after the start, no Additions answer
        with pytest.raises(GuestAgentUnavailable, match="not running"):
            vm.guest.info()
    for _ in range(SYSTEM_POLLS):  # then the driver reports (System), but VBoxService is not up: not ready
        early = vm.guest.info()
        assert not early.ready and early.agent_version == VERSIONS[fake_com.server.profile][0]
    info = vm.guest.info()
    assert info.ready and info.agent == "guest-additions"
    assert info.agent_version == VERSIONS[fake_com.server.profile][0]
    assert info.os_family is OSFamily.LINUX and info.kernel == "6.1.0-18-amd64"
    addresses = vm.guest.ip_addresses()
    mac = vm.info().nics[0].mac
    assert [(a.address, a.prefix, a.interface, a.mac) for a in addresses] == [("10.0.2.15", 24, "net0", mac)]
    assert vm.wait_for_ip(timeout=5) == "10.0.2.15"


def test_guest_properties_and_run_level_are_read_as_vboxmanage_shows_them(
    fake_com: Any, guest_hv: virtabstract.Hypervisor
) -> None:
    vm = _running(guest_hv)
    vm.guest.wait_ready(timeout=10)
    guest_os(_machine(fake_com, vm)).props["/VirtualBox/GuestInfo/Net/0/V6/IP"] = "fe80::1"
    raw, props = guest_hv.backend._guest_props(vm.id)
    version, revision = VERSIONS[fake_com.server.profile]
    assert raw["GuestAdditionsVersion"] == f"{version} r{revision}" and raw["GuestAdditionsRunLevel"] == "2"
    assert raw["VMState"] == "Running" and raw["name"] == "g1"
    assert props["/VirtualBox/GuestAdd/Version"] == version
    assert {a.address for a in vm.guest.ip_addresses(include_link_local=True)} == {"10.0.2.15", "fe80::1"}
    names, values, stamps, flags = _machine(fake_com, vm).enumerateGuestProperties("/VirtualBox/GuestAdd/*")
    assert sorted(names) == ["/VirtualBox/GuestAdd/Revision", "/VirtualBox/GuestAdd/Version"]
    assert len(values) == len(stamps) == len(flags) == 2


def test_guest_unavailable_unless_running(fake_com: Any, guest_hv: virtabstract.Hypervisor) -> None:
    vm = _running(guest_hv)
    vm.guest.wait_ready(timeout=10)
    vm.pause()
    with pytest.raises(GuestAgentUnavailable, match="Paused"):
        vm.guest.exec(["true"])
    vm.resume()
    vm.power_off()
    for call in (vm.guest.info, lambda: vm.guest.read_file("/etc/hostname"), lambda: vm.guest.write_file("/x", "")):
        with pytest.raises(GuestAgentUnavailable, match="PoweredOff"):
            call()


def test_no_additions_installed(fake_com: Any, guest_hv: virtabstract.Hypervisor) -> None:
    vm = _running(guest_hv)
    guest = guest_os(_machine(fake_com, vm))
    guest.additions = False
    with pytest.raises(virtabstract.errors.OperationTimeout):
        vm.guest.wait_ready(timeout=0.5)
    with pytest.raises(GuestAgentUnavailable, match="Guest Additions are not running"):
        vm.guest.exec(["true"])
    with pytest.raises(GuestAgentUnavailable):
        vm.guest.read_file("/etc/hostname")
    # 7.x refuses the session itself; its text maps through the one error table to GuestAgentUnavailable.
    if fake_com.server.profile != "6.1":
        with pytest.raises(COMError) as raw:
            FakeGuest(guest).createSession(GUEST_USER, GUEST_PASSWORD, "", "t")
        assert raw.value.code_name == "VBOX_E_GSTCTL_GUEST_ERROR"
        assert isinstance(guest_hv.backend.api.error(raw.value, "createSession"), GuestAgentUnavailable)


# -- exec ------------------------------------------------------------------------------------


def test_exec_output_exit_code_and_env(fake_com: Any, guest_hv: virtabstract.Hypervisor) -> None:
    vm = _running(guest_hv)
    vm.guest.wait_ready(timeout=10)
    long = "x" * (READ_CHUNK * 7 + 3)  # read in many IProcess.read calls
    result = vm.guest.exec(["echo", long])
    assert (result.exit_code, result.stdout, result.stderr) == (0, long + "\n", "")
    failed = vm.guest.exec(["sh", "-c", "echo out; cat /tmp/missing; exit 5"])
    assert (failed.exit_code, failed.stdout) == (5, "out\n")
    assert failed.stderr == "cat: /tmp/missing: No such file or directory\n"
    env = vm.guest.exec(["env"], env={"VATEST": "forty two"}).stdout.splitlines()
    assert "VATEST=forty two" in env and any(line.startswith("PATH=") for line in env)  # added, not replacing
    piped = vm.guest.exec(["cat"], stdin=b"line one\nline two\n")
    assert piped.stdout == "line one\nline two\n" and piped.argv == ("cat",)
    files = guest_os(_machine(fake_com, vm)).fs().listdir("/tmp")
    assert not [f for f in files if f.startswith("virtabstract-stdin-")], "the stdin temp file was not removed"


def test_exec_process_create_shim(fake_com: Any, guest_hv: virtabstract.Hypervisor) -> None:
    vm = _running(guest_hv)
    vm.guest.wait_ready(timeout=10)
    with guest_hv.backend._guest_session(vm.id) as gsession:
        wrong = 5 if since(fake_com.server.profile, "7.1") else 6  # 7.1 added cwd, 7.2 kept it; other: TypeError
        with pytest.raises(TypeError):
            gsession.processCreate(*(["echo", ["echo"], "", [], [], 1000][:wrong]))
        code, out, err = guest_hv.backend._run_process(gsession, ["echo", "shim"], {}, 10)
    assert (code, out, err) == (0, b"shim\n", b"")


def test_exec_unknown_program_is_a_guest_error(guest_hv: virtabstract.Hypervisor) -> None:
    vm = _running(guest_hv)
    vm.guest.wait_ready(timeout=10)
    with pytest.raises(GuestError, match="could not start 'no-such-program'") as excinfo:
        vm.guest.exec(["no-such-program"])
    assert not isinstance(excinfo.value, GuestFileNotFound)


def test_exec_timeouts(fake_com: Any, guest_hv: virtabstract.Hypervisor, monkeypatch: pytest.MonkeyPatch) -> None:
    vm = _running(guest_hv)
    vm.guest.wait_ready(timeout=10)
    with pytest.raises(OperationTimeout, match="did not finish within 1s"):  # the guest kills it: TimedOutKilled
        vm.guest.exec(["sleep", "100"], timeout=1)
    guest_os(_machine(fake_com, vm)).hang.add("wedged")  # not even the guest ends it: the host gives up
    monkeypatch.setattr(_api_guest, "EXEC_GRACE_SECONDS", 0.3)
    with pytest.raises(OperationTimeout, match="'wedged' did not finish"):
        vm.guest.exec(["wedged"], timeout=0.2)


def test_session_start_timeout(
    fake_com: Any, guest_hv: virtabstract.Hypervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    vm = _running(guest_hv)
    vm.guest.wait_ready(timeout=10)
    guest_os(_machine(fake_com, vm)).session_start_hangs = True
    monkeypatch.setattr(_api_guest, "SESSION_START_SECONDS", 0.3)
    with pytest.raises(GuestAgentUnavailable, match="did not start a guest session"):
        vm.guest.exec(["true"])


def test_wrong_password_and_secrecy(
    fake_com: Any, guest_hv: virtabstract.Hypervisor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    vm = _running(guest_hv)
    vm.guest.wait_ready(timeout=10)
    vm.guest.exec(["true"])
    wrong = "not-" + GUEST_PASSWORD
    with _connect(fake_com, guest_username=GUEST_USER, guest_password=wrong) as hv:
        other = hv.vms.get(vm.id)
        with pytest.raises(GuestError, match="not able to logon") as excinfo:
            other.guest.exec(["true"])
        assert wrong not in str(excinfo.value) and wrong not in repr(hv.backend.options)
        with pytest.raises(GuestError, match="not able to logon"):
            other.guest.read_file("/etc/hostname")
    assert open_guest_sessions(fake_com.server) == []
    assert GUEST_PASSWORD not in caplog.text and wrong not in caplog.text
    assert GUEST_PASSWORD not in repr(guest_hv.backend.options)


def test_without_a_guest_account(fake_com: Any) -> None:
    with _connect(fake_com) as hv:
        assert Capability.REBOOT not in hv.backend.connection_capabilities()
        vm = _running(hv)
        vm.guest.wait_ready(timeout=10)  # guest information needs no account
        with pytest.raises(GuestError, match="need a guest account"):
            vm.guest.exec(["true"])
        with pytest.raises(UnsupportedOperation):
            vm.reboot()
    assert fake_com.server.locked_sessions() == []


# -- files -----------------------------------------------------------------------------------


def test_files_round_trip_in_chunks(fake_com: Any, guest_hv: virtabstract.Hypervisor) -> None:
    vm = _running(guest_hv)
    vm.guest.wait_ready(timeout=10)
    assert len(BINARY) > 3 * FILE_CHUNK
    vm.guest.write_file("/tmp/blob", BINARY)
    assert vm.guest.read_file("/tmp/blob") == BINARY
    assert guest_os(_machine(fake_com, vm)).fs().read("/tmp/blob") == BINARY  # really in the guest
    vm.guest.write_file("/tmp/blob", b"")  # replaced by an empty file (IFile.write refuses empty data)
    assert vm.guest.read_file("/tmp/blob") == b""
    assert vm.guest.read_file("/etc/hostname") == b"g1\n"


def test_file_errors(guest_hv: virtabstract.Hypervisor) -> None:
    vm = _running(guest_hv)
    vm.guest.wait_ready(timeout=10)
    with pytest.raises(GuestFileNotFound):
        vm.guest.read_file("/tmp/missing")
    with pytest.raises(GuestFileNotFound):
        vm.guest.read_file("/tmp")  # a directory is not a file
    with pytest.raises(GuestFileNotFound, match="VERR_PATH_NOT_FOUND"):
        vm.guest.write_file("/no/such/dir/file", b"x")


# -- reboot ----------------------------------------------------------------------------------


def test_reboot_through_the_guest(fake_com: Any, guest_hv: virtabstract.Hypervisor) -> None:
    assert Capability.REBOOT in guest_hv.backend.connection_capabilities()
    vm = _running(guest_hv)
    vm.guest.wait_ready(timeout=10)
    guest = guest_os(_machine(fake_com, vm))
    vm.reboot()
    assert guest.reboots == 1 and vm.state is PowerState.RUNNING
    with pytest.raises(GuestAgentUnavailable):  # the Additions are down again while the guest boots
        vm.guest.info()
    vm.guest.wait_ready(timeout=10)
    vm.reset()  # a hard reset reboots the guest too
    assert guest.reboots == 2
    vm.power_off()
    with pytest.raises(InvalidState):
        vm.reboot()


# -- console ---------------------------------------------------------------------------------


def test_console_vrde_set_up_at_create(fake_com: Any, guest_hv: virtabstract.Hypervisor) -> None:
    vm = guest_hv.vms.create(VMSpec(name="c1", memory="256MiB"))
    machine = _machine(fake_com, vm)
    vrde = machine.VRDEServer
    assert vrde.enabled and vrde.authType == fake_com.server.constants.AuthType_External
    assert (vrde.authLibrary, vrde.getVRDEProperty("TCP/Address")) == ("VBoxAuthSimple", "127.0.0.1")
    with pytest.raises(COMError):  # the registered IMachine is read-only
        vrde.enabled = False
    stopped = vm.console()
    assert (stopped.protocol, stopped.host, stopped.port, stopped.username) == ("rdp", "127.0.0.1", 5000, VRDE_USER)
    assert isinstance(stopped.password, Secret) and "***" in repr(stopped)
    digest = machine.getExtraData(f"VBoxAuthSimple/users/{VRDE_USER}")
    assert hashlib.sha256(stopped.password.reveal().encode()).hexdigest() == digest
    assert stopped.password.reveal() == machine.getExtraData(VRDE_PASSWORD_KEY)
    other = _running(guest_hv, "c2")
    vm.start()
    ports = {vm.console().port, other.console().port}
    assert ports == {5000, 5001}  # each running VRDE server took a port of the range
    assert vm.console().url == f"rdp://127.0.0.1:{vm.console().port}"


def test_console_without_graphics_is_disabled(guest_hv: virtabstract.Hypervisor) -> None:
    vm = guest_hv.vms.create(VMSpec(name="nog", memory="256MiB", graphics="none"))
    with pytest.raises(InvalidState, match="VRDE is disabled"):
        vm.console()
