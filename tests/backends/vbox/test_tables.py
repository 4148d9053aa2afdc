"""Table tests: machine states, error mapping, VBoxManage output parsers (no subprocess)."""

from __future__ import annotations

import pytest
from virtabstract_vbox._errors import ERROR_CODES, exception_for_code, map_vboxmanage_failure, parse_stderr
from virtabstract_vbox._parse import (
    parse_blocks,
    parse_guestproperties,
    parse_list_vms,
    parse_machinereadable,
    parse_snapshots,
    parse_version,
)
from virtabstract_vbox._states import MACHINE_STATES, api_names, is_online, power_state, state_from_number, state_number

from virtabstract import PowerState
from virtabstract.errors import (
    AlreadyExists,
    BackendError,
    ConnectionFailed,
    GuestAgentUnavailable,
    GuestError,
    GuestFileNotFound,
    InvalidState,
    NetworkNotFound,
    NotFound,
    OperationTimeout,
    SnapshotNotFound,
    SpecError,
    UnsupportedOperation,
    VMNotFound,
)

P = PowerState
STATE_TABLE = [
    ("poweroff", "PoweredOff", P.STOPPED), ("saved", "Saved", P.SUSPENDED), ("teleported", "Teleported", P.STOPPED),
    ("aborted", "Aborted", P.CRASHED), ("aborted-saved", "AbortedSaved", P.CRASHED), ("running", "Running", P.RUNNING),
    ("paused", "Paused", P.PAUSED), ("gurumeditation", "Stuck", P.CRASHED), ("teleporting", "Teleporting", P.RUNNING),
    ("livesnapshotting", "LiveSnapshotting", P.RUNNING), ("starting", "Starting", P.STARTING),
    ("stopping", "Stopping", P.STOPPING), ("saving", "Saving", P.SAVING), ("restoring", "Restoring", P.RESTORING),
    ("teleportingpausedvm", "TeleportingPausedVM", P.PAUSED), ("teleportingin", "TeleportingIn", P.STARTING),
    ("deletingsnapshotlive", "DeletingSnapshotOnline", P.RUNNING),
    ("deletingsnapshotlivepaused", "DeletingSnapshotPaused", P.PAUSED),
    ("onlinesnapshotting", "OnlineSnapshotting", P.RUNNING), ("restoringsnapshot", "RestoringSnapshot", P.STOPPED),
    ("deletingsnapshot", "DeletingSnapshot", P.STOPPED), ("settingup", "SettingUp", P.STOPPED),
    ("snapshotting", "Snapshotting", P.STOPPED), ("null", "Null", P.UNKNOWN),
]  # fmt: skip


@pytest.mark.parametrize(("cli", "api", "expected"), STATE_TABLE)
def test_every_machine_state_maps(cli: str, api: str, expected: PowerState) -> None:
    assert power_state(cli) is expected
    assert power_state(api) is expected
    assert power_state(cli.upper()) is expected


def test_state_table_is_complete() -> None:
    assert {s.cli_name for s in MACHINE_STATES} == {row[0] for row in STATE_TABLE}
    assert power_state("stuck") is P.CRASHED
    assert power_state("some-future-state") is P.UNKNOWN


def test_state_numbers_differ_between_versions() -> None:
    assert state_number("Running", (6, 1)) == 5
    assert state_number("Running", (7, 0)) == 6
    assert state_number("AbortedSaved", (7, 1)) == 5
    assert state_from_number(5, (6, 1)).api_name == "Running"
    assert state_from_number(5, (7, 0)).api_name == "AbortedSaved"
    assert len(api_names((6, 1))) == 23 and len(api_names((7, 0))) == 24
    with pytest.raises(ValueError):
        state_number("AbortedSaved", (6, 1))
    with pytest.raises(ValueError):
        state_from_number(99, (7, 0))
    online = [s.api_name for s in MACHINE_STATES if s.online]
    assert online[0] == "Running" and online[-1] == "OnlineSnapshotting"  # FirstOnline..LastOnline
    assert is_online("paused") and not is_online("saved")


def _stderr(message: str, code: str = "", *more: str) -> str:
    lines = [f"VBoxManage: error: {message}", *[f"VBoxManage: error: {m}" for m in more]]
    if code:
        lines.append(f"VBoxManage: error: Details: code {code} (0x{ERROR_CODES.get(code, 0):08x}), component "
                     "MachineWrap, interface IMachine, callee nsISupports")  # fmt: skip
        lines.append('VBoxManage: error: Context: "LockMachine(a->session, LockType_Write)" at line 554 of file X.cpp')
    return "\n".join(lines) + "\n"


ERROR_TABLE = [
    (_stderr("Could not find a registered machine named 'x'", "VBOX_E_OBJECT_NOT_FOUND"), VMNotFound),
    (_stderr("Could not find a registered machine with UUID {0000}", "VBOX_E_OBJECT_NOT_FOUND"), VMNotFound),
    (_stderr("Could not find a snapshot named 'snap'", "VBOX_E_OBJECT_NOT_FOUND"), SnapshotNotFound),
    (_stderr("The machine 'x' is already locked by a session (or being locked or unlocked)",
             "VBOX_E_INVALID_OBJECT_STATE"), InvalidState),
    (_stderr("The machine 'x' is already locked for a session (or being unlocked)", "VBOX_E_INVALID_OBJECT_STATE"),
     InvalidState),
    (_stderr("Invalid machine state: PoweredOff", "VBOX_E_INVALID_VM_STATE"), InvalidState),
    (_stderr("Machine 'x' is not currently running"), InvalidState),
    (_stderr("The machine is not mutable (state is Saved)", "VBOX_E_INVALID_VM_STATE"), InvalidState),
    (_stderr("Something odd", "VBOX_E_INVALID_VM_STATE"), InvalidState),
    (_stderr("Something odd", "VBOX_E_INVALID_OBJECT_STATE"), InvalidState),
    (_stderr("Something odd", "VBOX_E_OBJECT_NOT_FOUND"), NotFound),
    (_stderr("Something odd", "E_ACCESSDENIED"), ConnectionFailed),
    (_stderr("Something odd", "VBOX_E_FILE_ERROR"), BackendError),
    (_stderr("Something odd", "VBOX_E_IPRT_ERROR"), BackendError),
    (_stderr("Something odd", "VBOX_E_HOST_ERROR"), BackendError),
    (_stderr("Something odd", "VBOX_E_TIMEOUT"), OperationTimeout),
    (_stderr("Something odd", "VBOX_E_GSTCTL_GUEST_ERROR"), GuestError),
    (_stderr("Something odd", "VBOX_E_NOT_SUPPORTED"), UnsupportedOperation),
    (_stderr("Machine settings file '/v/x.vbox' already exists", "VBOX_E_FILE_ERROR"), AlreadyExists),
    (_stderr("Failed to create medium", "VBOX_E_FILE_ERROR", "VDI: cannot create image '/x' (VERR_ALREADY_EXISTS)"),
     BackendError),
    (_stderr("Guest OS type 'Nope' is invalid", "VBOX_E_OBJECT_NOT_FOUND"), SpecError),
    (_stderr("Could not find a host-only network interface named 'vboxnet9'", "E_INVALIDARG"), NetworkNotFound),
    (_stderr("Guest Additions are not installed or not running in the guest", "VBOX_E_IPRT_ERROR"),
     GuestAgentUnavailable),
    (_stderr('Querying guest file information for "/x" failed: VERR_FILE_NOT_FOUND', "VBOX_E_IPRT_ERROR"),
     GuestFileNotFound),
    (_stderr("The specified user was not able to logon on guest", "VBOX_E_IPRT_ERROR"), GuestError),
    (_stderr("Waiting for guest process failed: VERR_TIMEOUT", "VBOX_E_IPRT_ERROR"), OperationTimeout),
    (_stderr("Failed to create the VirtualBox object!", "E_ACCESSDENIED"), ConnectionFailed),
    ("garbage without prefix\n", BackendError),
]  # fmt: skip


@pytest.mark.parametrize(("stderr", "expected"), ERROR_TABLE)
def test_error_mapping(stderr: str, expected: type[Exception]) -> None:
    error = map_vboxmanage_failure(["showvminfo", "x"], 1, stderr)
    assert type(error) is expected, (stderr, error)


def test_parse_stderr_extracts_code_and_context() -> None:
    failure = parse_stderr("WARNING: noise\n" + _stderr("Boom", "VBOX_E_INVALID_VM_STATE"))
    assert failure.messages == ("Boom",)
    assert failure.code_name == "VBOX_E_INVALID_VM_STATE" and failure.code == 0x80BB0002
    assert failure.context.startswith('"LockMachine')
    assert isinstance(exception_for_code("VBOX_E_OBJECT_NOT_FOUND", "no such thing"), NotFound)


def test_syntax_error_exit_2() -> None:
    error = map_vboxmanage_failure(["createvm"], 2, "VBoxManage: error: Unknown option: --platform-architecture\n")
    assert isinstance(error, BackendError) and error.code == "syntax"


SHOWVMINFO_61 = r"""name="web \"one\" \\ x=y"
groups="/a,/b"
ostype="Ubuntu (64-bit)"
UUID="3f0a0e52-6a5c-4c1e-9c7e-1b0e0e0e0e0e"
CfgFile="C:\\Users\\me\\VirtualBox VMs\\web\\web.vbox"
memory=1024
cpus=2
cpuexecutioncap=100
firmware="BIOS"
VMState="poweroff"
VMStateChangeTime="2019-02-09T21:00:33.575000000"
storagecontrollername0="SATA Controller"
"SATA Controller-0-0"="C:\\disks\\a=b.vdi"
"SATA Controller-ImageUUID-0-0"="11111111-2222-3333-4444-555555555555"
"SATA Controller-1-0"="none"
nic1="nat"
macaddress1="080027AABBCC"
description="line one
line two"
SnapshotName="root "quoted" name"
SnapshotUUID="aaaaaaaa-0000-0000-0000-000000000001"
SnapshotName-1="child = 1"
SnapshotUUID-1="aaaaaaaa-0000-0000-0000-000000000002"
SnapshotDescription-1="multi
line desc"
SnapshotName-1-1="grandchild"
SnapshotUUID-1-1="aaaaaaaa-0000-0000-0000-000000000003"
SnapshotName-2="second child"
SnapshotUUID-2="aaaaaaaa-0000-0000-0000-000000000004"
CurrentSnapshotName="grandchild"
CurrentSnapshotUUID="aaaaaaaa-0000-0000-0000-000000000003"
CurrentSnapshotNode="SnapshotName-1-1"
"""


def test_parse_showvminfo() -> None:
    info = parse_machinereadable(SHOWVMINFO_61)
    assert info["name"] == 'web "one" \\ x=y'
    assert info["CfgFile"] == "C:\\Users\\me\\VirtualBox VMs\\web\\web.vbox"
    assert info["memory"] == "1024"
    assert info["SATA Controller-0-0"] == "C:\\disks\\a=b.vdi"
    assert info["SATA Controller-1-0"] == "none"
    assert info["description"] == "line one\nline two"
    assert info["SnapshotName"] == 'root "quoted" name'
    assert info["SnapshotDescription-1"] == "multi\nline desc"
    snaps = parse_snapshots(info)
    assert [s.name for s in snaps] == ['root "quoted" name', "child = 1", "second child", "grandchild"]
    by_name = {s.name: s for s in snaps}
    assert by_name["grandchild"].parent_uuid == by_name["child = 1"].uuid
    assert by_name["second child"].parent_uuid == snaps[0].uuid
    assert snaps[0].children == [by_name["child = 1"].uuid, by_name["second child"].uuid]
    assert by_name["grandchild"].is_current and not snaps[0].is_current


def test_parse_machinereadable_ignores_noise() -> None:
    info = parse_machinereadable('WARNING: The vboxdrv kernel module is not loaded\n0%...100%\nVMState="running"\n')
    assert info == {"VMState": "running"}
    assert parse_snapshots({}) == []


def test_parse_list_vms() -> None:
    text = ('"web1" {3f0a0e52-6a5c-4c1e-9c7e-1b0e0e0e0e0e}\n"a \"b\" {c}" {3F0A0E52-6A5C-4C1E-9C7E-1B0E0E0E0E0F}\n'
            '"<inaccessible>" {00000000-6a5c-4c1e-9c7e-1b0e0e0e0e0e}\ngarbage\n')  # fmt: skip
    assert parse_list_vms(text) == [
        ("web1", "3f0a0e52-6a5c-4c1e-9c7e-1b0e0e0e0e0e"),
        ('a "b" {c}', "3f0a0e52-6a5c-4c1e-9c7e-1b0e0e0e0e0f"),
        ("<inaccessible>", "00000000-6a5c-4c1e-9c7e-1b0e0e0e0e0e"),
    ]


BLOCK_SAMPLES = {
    "ostypes": ("ID:          Ubuntu_64\nDescription: Ubuntu (64-bit)\nFamily ID:   Linux\n64 bit:      true\n\n"
                "ID:          Windows2019_64\nDescription: Windows 2019 (64-bit)\nFamily ID:   Windows\n\n",
                [("ID", "Ubuntu_64"), ("Description", "Ubuntu (64-bit)")]),
    "hostonlyifs": ("Name:            vboxnet0\nGUID:            786f6276-656e-4074-8000-0a0027000000\n"
                    "IPAddress:       192.168.56.1\nNetworkMask:     255.255.255.0\n"
                    "IPV6Address:     fe80::800:27ff:fe00:0\nStatus:          Up\n\n",
                    [("Name", "vboxnet0"), ("IPV6Address", "fe80::800:27ff:fe00:0")]),
    "natnetworks-6.1": ("NetworkName:    NatNetwork\nIP:             10.0.2.1\nNetwork:        10.0.2.0/24\n"
                        "Enabled:        Yes\nloopback mappings (ipv4)\n        127.0.0.1=2\n\n",
                        [("NetworkName", "NatNetwork"), ("Network", "10.0.2.0/24")]),
    "natnetworks-7": ("NAT Networks:\n\nName:         NatNetwork\nNetwork:      10.0.2.0/24\nGateway:      10.0.2.1\n"
                      "Enabled:      Yes\n\n1 network found\n", [("Name", "NatNetwork"), ("Gateway", "10.0.2.1")]),
    "hostinfo": ("Host Information:\n\nHost time: 2024-05-01T10:00:00.000000000Z\nProcessor count: 8\n"
                 "Processor#0 speed: 2600\nMemory size: 15923 MByte\nOperating system: Windows 10\n",
                 [("Processor count", "8"), ("Host time", "2024-05-01T10:00:00.000000000Z")]),
}  # fmt: skip


@pytest.mark.parametrize("sample", sorted(BLOCK_SAMPLES))
def test_parse_blocks(sample: str) -> None:
    text, expected = BLOCK_SAMPLES[sample]
    first = parse_blocks(text)[0]
    for key, value in expected:
        assert first[key] == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7.0.14r161095\n", ((7, 0), "161095", "")),
        ("6.1.50_Ubuntur161033\n", ((6, 1), "161033", "_Ubuntu")),
        ("WARNING: The vboxdrv kernel module is not loaded.\n7.1.4r165100\n", ((7, 1), "165100", "")),
        ("7.2.0_BETA1r166000", ((7, 2), "166000", "_BETA1")),
        ("7.2.4r170995\n", ((7, 2), "170995", "")),
        ("7.0.14_rpmfusionr161095\n", ((7, 0), "161095", "_rpmfusion")),  # a publisher with an "r" in it
        ("7.1.6_OSE\n", ((7, 1), "", "_OSE")),
        ("8.0.0_RC1r180000\n", ((8, 0), "180000", "_RC1")),  # newer than known: parsed, the policy decides
    ],
)
def test_parse_version(text: str, expected: tuple[tuple[int, int], str, str]) -> None:
    version = parse_version(text)
    assert (version.short, version.revision, version.suffix) == expected


def test_parse_version_garbage() -> None:
    with pytest.raises(ValueError):
        parse_version("Oracle VM VirtualBox Command Line Management Interface")


GP_61 = ("Name: /VirtualBox/GuestInfo/Net/0/V4/IP, value: 10.0.2.15, timestamp: 1600000000000000000, flags: \n"
         "Name: /VirtualBox/GuestAdd/Version, value: 6.1.50, timestamp: 16000, flags: TRANSIENT, RDONLYGUEST\n"
         "Name: /Custom/x, value: a, b, c, timestamp: 1, flags: \n")  # fmt: skip
GP_7 = (
    "/Custom/x                         = 'it''s'     @ 2024-05-01T10:00:00.000Z\n"
    "/VirtualBox/GuestAdd/Version      = '7.2.4'     @ 2024-05-01T10:00:00.000Z TRANSIENT, RDONLYGUEST\n"
    "/VirtualBox/GuestInfo/Net/0/V4/IP = '10.0.2.15' @ 2024-05-01T10:00:00.000Z TRANSIENT, TRANSRESET\n"
)
"""7.x as handleEnumGuestProperty (VBoxManageGuestProp.cpp) prints it: padded columns, bare flags."""
GP_7_BRACKETED = ("/VirtualBox/GuestInfo/Net/0/V4/IP          = '10.0.2.15' @ 2024-05-01T10:00:00.000000000Z\n"
                  "/VirtualBox/GuestAdd/Version = '7.0.20' @ 2024-05-01T10:00:00.000000000Z [TRANSIENT, RDONLYGUEST]\n"
                  "/Custom/x = 'it''s' @ 2024-05-01T10:00:00.000000000Z\n")  # fmt: skip
"""A ``[flags]`` suffix (what the fake used to print) is still read."""
GP_7_NO_TIMESTAMP = ("/Custom/x = 'it''s'\n"
                     "/VirtualBox/GuestAdd/Version = '7.2.4'      TRANSIENT, RDONLYGUEST\n"
                     "/VirtualBox/GuestInfo/Net/0/V4/IP = '10.0.2.15'\n")  # fmt: skip
"""``--no-timestamp``: the flags follow the value's padding."""


@pytest.mark.parametrize("text", [GP_61, GP_7, GP_7_BRACKETED, GP_7_NO_TIMESTAMP],
                         ids=["6.1", "7.x", "7.x-bracketed", "7.x-no-timestamp"])  # fmt: skip
def test_parse_guestproperties(text: str) -> None:
    props = parse_guestproperties(text)
    assert props["/VirtualBox/GuestInfo/Net/0/V4/IP"].value == "10.0.2.15"
    assert props["/VirtualBox/GuestAdd/Version"].flags == "TRANSIENT, RDONLYGUEST"
    assert props["/Custom/x"].value in ("it''s", "a, b, c") and props["/Custom/x"].flags == ""


def test_parse_guestproperties_fake_layout() -> None:
    """The fake VBoxManage's 7.x lines (long names, quotes in values, flags) read back whole."""
    from .fake_vboxmanage import enumerate_lines_7

    props = {"/VirtualBox/GuestInfo/Net/0/V4/IP": "10.0.2.15", "/VirtualBox/HostInfo/VBoxVer": "7.2.4",
             "/Custom/" + "n" * 60: "it's @ noon", "/Custom/empty": ""}  # fmt: skip
    parsed = parse_guestproperties("\n".join(enumerate_lines_7(props)))
    assert {k: v.value for k, v in parsed.items()} == props
    assert parsed["/VirtualBox/HostInfo/VBoxVer"].flags == "TRANSIENT, RDONLYGUEST"
    assert parsed["/VirtualBox/GuestInfo/Net/0/V4/IP"].timestamp == "2024-05-01T10:00:00.000Z"
