"""Unit tables of the esxi backend: every fault mapping, every state, paging, ids, snapshots, devices."""

from __future__ import annotations

import http.client
import socket
import ssl
from types import SimpleNamespace
from typing import Any

import pytest

from virtabstract import URL, PowerState
from virtabstract import errors as E

pyVmomi = pytest.importorskip("pyVmomi")
from pyVmomi import vim, vmodl  # noqa: E402
from virtabstract_esxi._faults import FAULT_TABLE, TLS_HINT, FaultContext, map_exception, map_vim_faults  # noqa: E402
from virtabstract_esxi._inventory import (  # noqa: E402
    Inventory,
    ObjectProps,
    tags_from_extra_config,
    vm_info_from_props,
)
from virtabstract_esxi._snapshots import snapshot_infos  # noqa: E402
from virtabstract_esxi._states import CONNECTION_STATES, POWER_STATES, map_state, native_power_state  # noqa: E402


def _fault(name: str, **kw: Any) -> BaseException:
    obj: Any = {"vim": vim, "vmodl": vmodl}[name.split(".")[0]]
    for part in name.split(".")[1:]:
        obj = getattr(obj, part)
    return obj(**kw)


EXPECTED: dict[str, type[BaseException]] = {
    "vim.fault.InvalidLogin": E.AuthenticationFailed,
    "vim.fault.NotAuthenticated": E.ConnectionLost,
    "vim.fault.HostConnectFault": E.ConnectionFailed,
    "vim.fault.NoPermission": E.BackendError,
    "vmodl.fault.SecurityError": E.BackendError,
    "vmodl.fault.ManagedObjectNotFound": E.VMNotFound,
    "vim.fault.NotFound": E.VMNotFound,
    "vim.fault.InvalidDatastore": E.StorageNotFound,
    "vim.fault.FileNotFound": E.StorageNotFound,
    "vim.fault.DuplicateName": E.AlreadyExists,
    "vim.fault.AlreadyExists": E.AlreadyExists,
    "vim.fault.FileAlreadyExists": E.AlreadyExists,
    "vim.fault.InvalidName": E.SpecError,
    "vim.fault.InvalidPowerState": E.InvalidState,
    "vim.fault.TaskInProgress": E.InvalidState,
    "vim.fault.InvalidState": E.InvalidState,
    "vmodl.fault.NotEnoughLicenses": E.UnsupportedOperation,
    "vmodl.fault.NotSupported": E.UnsupportedOperation,
    "vim.fault.NotSupportedHost": E.UnsupportedOperation,
    "vmodl.fault.NotImplemented": E.UnsupportedOperation,
    "vmodl.fault.MethodNotFound": E.UnsupportedOperation,
    "vim.fault.DisallowedOperationOnFailoverHost": E.UnsupportedOperation,
    "vim.fault.SnapshotFault": E.InvalidState,
    "vim.fault.InvalidDeviceSpec": E.SpecError,
    "vim.fault.DeviceNotFound": E.DeviceNotFound,
    "vim.fault.InvalidVmConfig": E.SpecError,
    "vim.fault.VmConfigFault": E.SpecError,
    "vmodl.fault.InvalidArgument": E.UsageError,
    "vmodl.fault.InvalidRequest": E.UsageError,
    "vim.fault.InvalidGuestLogin": E.GuestError,
    "vim.fault.GuestPermissionDenied": E.GuestError,
    "vim.fault.GuestOperationsUnavailable": E.GuestAgentUnavailable,
    "vim.fault.ToolsUnavailable": E.GuestAgentUnavailable,
    "vim.fault.GuestComponentsOutOfDate": E.GuestAgentUnavailable,
    "vim.fault.GuestOperationsFault": E.GuestError,
    "vim.fault.Timedout": E.OperationTimeout,
    "vmodl.fault.RequestCanceled": E.OperationTimeout,
}


def test_fault_table_is_fully_tested() -> None:
    assert set(EXPECTED) == set(FAULT_TABLE)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fault_mapping(name: str) -> None:
    fault = _fault(name, msg=f"{name} happened")
    with pytest.raises(EXPECTED[name]) as info, map_vim_faults("start", "VM 'x'"):
        raise fault
    assert info.value.__cause__ is fault
    if isinstance(info.value, E.BackendError):
        assert info.value.orig is fault


@pytest.mark.parametrize(
    ("name", "context", "expected"),
    [
        ("vim.fault.FileNotFound", FaultContext("guest_read_file"), E.GuestFileNotFound),
        ("vim.fault.NotFound", FaultContext("snapshots", not_found=E.SnapshotNotFound), E.SnapshotNotFound),
        ("vim.fault.GuestProcessNotFound", FaultContext("guest_exec"), E.GuestError),  # subclass → parent row
        ("vim.fault.InvalidPowerState", FaultContext("reset"), E.InvalidState),
    ],
)
def test_fault_mapping_in_context(name: str, context: FaultContext, expected: type[BaseException]) -> None:
    assert type(map_exception(_fault(name), context)) is expected


def test_managed_object_not_found_names_the_kind() -> None:
    snap = map_exception(vmodl.fault.ManagedObjectNotFound(obj=vim.vm.Snapshot("snapshot-3")), FaultContext())
    assert isinstance(snap, E.SnapshotNotFound) and "snapshot-3" in str(snap)
    ds = map_exception(vmodl.fault.ManagedObjectNotFound(obj=vim.Datastore("ds-1")), FaultContext())
    assert isinstance(ds, E.StorageNotFound)


def test_invalid_power_state_carries_state() -> None:
    err = map_exception(vim.fault.InvalidPowerState(existingState="poweredOff"), FaultContext("reset"))
    assert isinstance(err, E.InvalidState) and err.state is PowerState.STOPPED and err.operation == "reset"


def test_unknown_vim_fault_is_backend_error_with_orig() -> None:
    fault = vim.fault.InsufficientResourcesFault(msg="no room")
    err = map_exception(fault, FaultContext("start"))
    assert isinstance(err, E.BackendError) and err.orig is fault and err.code == "InsufficientResourcesFault"
    assert "no room" in str(err)


@pytest.mark.parametrize(
    ("exc", "connecting", "expected"),
    [
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), True, E.ConnectionFailed),
        (ssl.SSLError(1, "wrong version number"), True, E.ConnectionFailed),
        (ConnectionRefusedError(111, "refused"), True, E.ConnectionFailed),
        (socket.gaierror(-2, "Name or service not known"), True, E.ConnectionFailed),
        (http.client.RemoteDisconnected("closed"), False, E.ConnectionLost),
        (ConnectionResetError(104, "reset"), False, E.ConnectionLost),
        (http.client.HTTPException("503 Service Unavailable"), False, E.ConnectionLost),
        (BrokenPipeError(32, "pipe"), False, E.ConnectionLost),
    ],
)
def test_transport_errors(exc: BaseException, connecting: bool, expected: type[BaseException]) -> None:
    assert type(map_exception(exc, FaultContext("x", connecting=connecting))) is expected


def test_tls_failure_names_the_fix() -> None:
    err = map_exception(ssl.SSLCertVerificationError(1, "certificate verify failed"), FaultContext(connecting=True))
    assert TLS_HINT in str(err)


def test_programming_errors_pass_through() -> None:
    with pytest.raises(KeyError), map_vim_faults("x"):
        raise KeyError("bug")


# -- states ---------------------------------------------------------------------------------------


POWER_VALUES = list(vim.VirtualMachine.PowerState.values)
CONNECTION_VALUES = list(vim.VirtualMachine.ConnectionState.values)


def test_state_tables_cover_every_sdk_value() -> None:
    assert set(POWER_VALUES) == {"poweredOn", "poweredOff", "suspended"} == set(POWER_STATES)
    assert set(CONNECTION_VALUES) == set(CONNECTION_STATES)


@pytest.mark.parametrize(
    ("power", "connection", "paused", "expected", "native"),
    [
        ("poweredOn", "connected", False, PowerState.RUNNING, "poweredOn"),
        ("poweredOff", "connected", False, PowerState.STOPPED, "poweredOff"),
        ("suspended", "connected", False, PowerState.SUSPENDED, "suspended"),
        ("poweredOn", "connected", True, PowerState.PAUSED, "poweredOn:paused"),
        ("poweredOn", "disconnected", False, PowerState.UNKNOWN, "poweredOn:disconnected"),
        ("poweredOff", "orphaned", False, PowerState.UNKNOWN, "poweredOff:orphaned"),
        ("poweredOff", "inaccessible", False, PowerState.UNKNOWN, "poweredOff:inaccessible"),
        ("poweredOn", "invalid", False, PowerState.UNKNOWN, "poweredOn:invalid"),
        ("somethingNew", "connected", False, PowerState.UNKNOWN, "somethingNew"),
        (None, None, False, PowerState.UNKNOWN, "unknown"),
        ("poweredOn", "brandNewState", False, PowerState.UNKNOWN, "poweredOn:brandNewState"),
    ],
)
def test_state_mapping(
    power: str | None, connection: str | None, paused: bool, expected: PowerState, native: str
) -> None:
    assert map_state(power, connection, paused) is expected
    assert native_power_state(power, connection, paused) == native


# -- inventory --------------------------------------------------------------------------------------


class _PagingCollector:
    """A PropertyCollector that serves three pages through RetrievePropertiesEx/ContinueRetrievePropertiesEx."""

    def __init__(self, pages: list[list[str]]) -> None:
        self.pages = pages
        self.calls: list[str] = []

    def _result(self, index: int) -> Any:
        objects = [
            SimpleNamespace(obj=vim.VirtualMachine(name), propSet=[SimpleNamespace(name="name", val=name)])
            for name in self.pages[index]
        ]
        token = str(index + 1) if index + 1 < len(self.pages) else None
        return SimpleNamespace(objects=objects, token=token)

    def RetrievePropertiesEx(self, specs: Any, options: Any) -> Any:
        self.calls.append(f"retrieve:{options.maxObjects}")
        return self._result(0)

    def ContinueRetrievePropertiesEx(self, token: str) -> Any:
        self.calls.append(f"continue:{token}")
        return self._result(int(token))


def test_retrieve_follows_every_page() -> None:
    collector = _PagingCollector([["vm-1", "vm-2"], ["vm-3"], ["vm-4"]])
    session = SimpleNamespace(content=SimpleNamespace(propertyCollector=collector), generation=1, call=lambda f: f())
    inventory = Inventory(session, lambda: None)  # type: ignore[arg-type]
    found = inventory.retrieve(lambda: [])
    assert [o.moid for o in found] == ["vm-1", "vm-2", "vm-3", "vm-4"]
    assert collector.calls == ["retrieve:500", "continue:1", "continue:2"]


def test_tags_last_entry_wins() -> None:
    opts = [SimpleNamespace(key="virtabstract.tags", value="a,b"), SimpleNamespace(key="virtabstract.tags", value="c")]
    assert tags_from_extra_config(opts) == ("c",)
    assert tags_from_extra_config([]) == ()


def test_vm_info_from_devices() -> None:
    dev = vim.vm.device
    controller = dev.ParaVirtualSCSIController(key=1000, busNumber=0)
    disk = dev.VirtualDisk(
        key=2000,
        controllerKey=1000,
        unitNumber=0,
        capacityInKB=2 * 1024 * 1024,
        backing=dev.VirtualDisk.FlatVer2BackingInfo(fileName="[ds1] web/web.vmdk", thinProvisioned=True),
    )
    nic = dev.VirtualVmxnet3(
        key=4000,
        macAddress="00:50:56:AA:BB:CC",
        backing=dev.VirtualEthernetCard.DistributedVirtualPortBackingInfo(
            port=vim.dvs.PortConnection(portgroupKey="dvportgroup-7", switchUuid="x")
        ),
        connectable=dev.VirtualDevice.ConnectInfo(connected=False, startConnected=True),
    )
    cd = dev.VirtualCdrom(key=3000, backing=dev.VirtualCdrom.IsoBackingInfo(fileName="[ds1] iso/d.iso"))
    item = ObjectProps(
        vim.VirtualMachine("vm-5"),
        {
            "name": "web",
            "runtime.powerState": "poweredOn",
            "runtime.connectionState": "connected",
            "config.instanceUuid": "5003a9f2-0000-0000-0000-000000000001",
            "config.guestId": "ubuntu64Guest",
            "config.hardware.numCPU": 2,
            "config.hardware.memoryMB": 2048,
            "config.hardware.device": [controller, disk, nic, cd],
            "config.firmware": "efi",
        },
    )
    info = vm_info_from_props(item, {"dvportgroup-7": "prod-pg"})
    assert info.id == "5003a9f2-0000-0000-0000-000000000001" and info.state is PowerState.RUNNING
    assert info.guest_os == "ubuntu-24.04" and info.firmware.value == "uefi"
    (d,) = info.disks
    assert (d.id, d.size_mib, d.storage, d.bus, d.thin) == ("2000", 2048, "ds1", "scsi", True)
    (n,) = info.nics
    assert (n.network, n.mac, n.model, n.connected) == ("prod-pg", "00:50:56:aa:bb:cc", "vmxnet3", True)
    assert info.cdrom == "[ds1] iso/d.iso"


def test_snapshot_tree_flattened_depth_first() -> None:
    def node(moid: str, name: str, state: str, children: list[Any]) -> Any:
        return vim.vm.SnapshotTree(
            snapshot=vim.vm.Snapshot(moid), name=name, state=state, childSnapshotList=children, description=""
        )

    leaf = node("snapshot-4", "leaf", "poweredOn", [])
    tree = vim.vm.SnapshotInfo(
        currentSnapshot=vim.vm.Snapshot("snapshot-4"),
        rootSnapshotList=[
            node(
                "snapshot-1",
                "root",
                "poweredOff",
                [node("snapshot-2", "a", "poweredOff", [leaf]), node("snapshot-3", "a", "suspended", [])],
            )
        ],
    )
    infos = snapshot_infos("vm", tree)
    assert [(s.id, s.parent_id) for s in infos] == [
        ("snapshot-1", None),
        ("snapshot-2", "snapshot-1"),
        ("snapshot-4", "snapshot-2"),
        ("snapshot-3", "snapshot-1"),
    ]
    assert infos[0].children_ids == ("snapshot-2", "snapshot-3")
    assert [s.has_memory for s in infos] == [False, False, True, True]
    assert [s.is_current for s in infos] == [False, False, True, False]
    assert snapshot_infos("vm", None) == []


# -- URLs and options ---------------------------------------------------------------------------------


def test_connection_target() -> None:
    from virtabstract_esxi._session import connection_target

    assert connection_target(URL.parse("esx://h/")) == ("h", 443, "https")
    assert connection_target(URL.parse("esx://h/?protocol=http")) == ("h", 80, "http")
    assert connection_target(URL.parse("vpx://h:8443/DC")) == ("h", 8443, "https")
    with pytest.raises(E.InvalidURL):
        connection_target(URL.parse("esx://h/?protocol=ftp"))
    with pytest.raises(E.InvalidURL):
        connection_target(URL.parse("esx:///"))


@pytest.mark.parametrize(("option", "value"), [("timeout", "soon"), ("timeout", 0), ("task_timeout", -1)])
def test_timeouts_must_be_positive_seconds(option: str, value: object) -> None:
    import virtabstract

    with pytest.raises(E.InvalidURL, match=f"option {option}="):
        virtabstract.connect("esx://esx1.invalid/", username="u", password="p", **{option: value})


def test_ssl_context_always_verifies_by_default() -> None:
    from virtabstract_esxi._session import build_ssl_context

    for host in ("localhost", "127.0.0.1", "esx1.example"):
        context = build_ssl_context(URL.parse(f"esx://{host}/"))
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_plugin_import_does_not_import_pyvmomi() -> None:
    import subprocess
    import sys

    code = "import sys, virtabstract_esxi.plugin, virtabstract_esxi._backend; print('pyVmomi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_entry_point_registers_schemes() -> None:
    from virtabstract import PluginManager

    manager = PluginManager().load()
    for scheme in ("esx", "vpx", "vsphere"):
        assert manager.backends.lookup(scheme).load().name == "esxi"
