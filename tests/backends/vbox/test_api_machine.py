"""The API transport's clones, device changes, CPU limit, firmware, networks and AbortedSaved, on the fake COM layer.

Behaviour tests run on every version profile (the ``fake_com`` fixture); the ``api_hv``
fixture also checks that no session is left locked. Table tests cover the helpers both
transports share and the fake's own rules (so the fake stays faithful).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from virtabstract_vbox._backend import nic_type, resolve_nic

import virtabstract
from virtabstract import Capability, Disk, Firmware, NetworkInfo, Nic, PowerState, ResourceAllocation, VMSpec
from virtabstract.errors import (
    AlreadyExists,
    BackendError,
    DeviceNotFound,
    InvalidState,
    NetworkNotFound,
    SpecError,
    UnsupportedOperation,
)

from .conftest import PROFILES
from .fake_com import COMError, make_vboxapi
from .fake_com.machine import NetworkAdapter, machine_enums
from .fake_vboxmanage import since

GiB = 2**30
MiB = 2**20


def _vm(hv: virtabstract.Hypervisor, name: str = "m1", **overrides: Any) -> virtabstract.VM:
    fields: dict[str, Any] = {"name": name, "memory": "256MiB", "disks": [{"size": "64MiB"}],
                              "nics": [{"network": "default"}]}  # fmt: skip
    fields.update(overrides)
    return hv.vms.create(VMSpec.from_dict(fields))


def _machine(fake_com: Any, vm: virtabstract.VM) -> Any:
    return fake_com.server.vbox.findMachine(vm.id)


def _media_paths(fake_com: Any) -> set[str]:
    return {m.location for m in fake_com.server.media}


# -- tables: shared helpers ---------------------------------------------------------------------

NETS = [
    NetworkInfo("default", "nat", "nat"),
    NetworkInfo("NatNetwork", "natnetwork:NatNetwork", "nat"),
    NetworkInfo("vboxnet0", "hostonly:vboxnet0", "hostonly"),
    NetworkInfo("eth0", "bridged:eth0", "bridge"),
]
RESOLVE_TABLE = [
    ("network", "default", ("nat", "default")),
    ("nat", "nat", ("nat", "default")),
    ("network", "NatNetwork", ("natnetwork", "NatNetwork")),
    ("nat", "NatNetwork", ("natnetwork", "NatNetwork")),
    ("network", "vboxnet0", ("hostonly", "vboxnet0")),
    ("hostonly", "vboxnet0", ("hostonly", "vboxnet0")),
    ("network", "eth0", ("bridged", "eth0")),
    ("bridge", "eth0", ("bridged", "eth0")),
    ("internal", "lab", ("intnet", "lab")),
    ("network", "nowhere", NetworkNotFound),
    ("nat", "nowhere", NetworkNotFound),
    ("hostonly", "eth0", NetworkNotFound),
    ("bridge", "vboxnet0", NetworkNotFound),
]


@pytest.mark.parametrize(("kind", "network", "expected"), RESOLVE_TABLE)
def test_resolve_nic_table(kind: str, network: str, expected: Any) -> None:
    nic = Nic(network=network, kind=kind)
    if isinstance(expected, tuple):
        assert resolve_nic(nic, NETS) == expected
    else:
        with pytest.raises(expected):
            resolve_nic(nic, NETS)


@pytest.mark.parametrize(
    ("model", "expected"),
    [(None, "82540EM"), ("e1000", "82540EM"), ("virtio", "virtio"), ("virtio-net", "virtio"), ("pcnet", "Am79C973")],
)
def test_nic_type_table(model: str | None, expected: str) -> None:
    assert nic_type(Nic(model=model)) == expected


def test_nic_type_refuses_models_virtualbox_lacks() -> None:
    with pytest.raises(SpecError) as excinfo:
        nic_type(Nic(model="vmxnet3"))
    assert excinfo.value.field == "model"


CAP_TABLE = [  # (vCPUs, cpu_limit_mhz, cap) with a 2000 MHz host
    (1, None, 100),
    (1, 1000, 50),
    (1, 1001, 51),  # rounded up: never less than asked
    (2, 1000, 25),
    (1, 2000, 100),
    (4, 20, 1),
]


@pytest.mark.parametrize(("cpus", "limit", "cap"), CAP_TABLE)
def test_cpu_cap_conversion_table(api_hv: virtabstract.Hypervisor, cpus: int, limit: int | None, cap: int) -> None:
    backend = api_hv.backend
    assert backend._cpu_cap(ResourceAllocation(cpu_limit_mhz=limit), cpus) == cap
    if limit is not None and cap < 100:
        assert backend._cap_to_mhz(cap, cpus) >= limit


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        (ResourceAllocation(cpu_limit_mhz=2001), "cpu_limit_mhz"),
        (ResourceAllocation(cpu_shares=1000), "cpu_shares"),
        (ResourceAllocation(memory_limit_mib=64), "memory_limit_mib"),
    ],
)
def test_cpu_cap_refusals(api_hv: virtabstract.Hypervisor, resources: ResourceAllocation, field: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        api_hv.backend._cpu_cap(resources, 1)
    assert excinfo.value.field == field


# -- tables: the fake's rules ------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_fake_enums_per_profile(profile: str) -> None:
    enums = machine_enums(profile)
    assert ("HostOnlyNetwork" in enums["NetworkAttachmentType"]) is (profile != "6.1")
    assert enums["NetworkAttachmentType"]["NATNetwork"] == 6
    assert enums["FirmwareType"]["EFI"] == 2


@pytest.mark.parametrize(
    ("mac", "ok"),
    [("080027ABCDEF", True), ("5254007ac001", True), ("0A0027000000", True), ("010203040506", False),
     ("0B0027000000", False), ("08002700000", False), ("08002700000G", False), ("08:00:27:00:00:00", False)],
)  # fmt: skip
def test_fake_mac_validation(mac: str, ok: bool) -> None:
    if ok:
        assert NetworkAdapter._checked_mac(mac, True) == mac.upper()
    else:
        with pytest.raises(COMError) as excinfo:
            NetworkAdapter._checked_mac(mac, True)
        assert excinfo.value.code_name == "E_INVALIDARG"


# Which INetworkAdapter setters VirtualBox allows in which machine state (NetworkAdapterImpl.cpp).
ADAPTER_STATE_TABLE = [
    ("cableConnected", False, {"PoweredOff": True, "Saved": True, "Running": True}),
    ("internalNetwork", "lab", {"PoweredOff": True, "Saved": True, "Running": True}),
    ("enabled", False, {"PoweredOff": True, "Saved": False, "Running": False}),
    ("MACAddress", "080027000001", {"PoweredOff": True, "Saved": False, "Running": False}),
    ("adapterType", 6, {"PoweredOff": True, "Saved": False, "Running": False}),
]


@pytest.mark.parametrize(("attribute", "value", "allowed"), ADAPTER_STATE_TABLE)
def test_fake_adapter_state_dependencies(tmp_path: Path, attribute: str, value: Any, allowed: dict[str, bool]) -> None:
    fake = make_vboxapi("7.0", str(tmp_path))
    with virtabstract.connect("vbox:///session?transport=api", vboxapi_module=fake) as hv:
        vm = _vm(hv)
        machine = _machine(fake, vm)
        with pytest.raises(COMError):  # a registered IMachine is read-only
            setattr(machine.getNetworkAdapter(0), attribute, value)
        for state, ok in allowed.items():
            machine._state = state  # only the state matters to the setters' state dependency
            with hv.backend.api.session(machine) as session:
                adapter = session.machine.getNetworkAdapter(0)
                if ok:
                    setattr(adapter, attribute, value)
                    assert getattr(adapter, attribute) == value
                else:
                    with pytest.raises(COMError) as excinfo:
                        setattr(adapter, attribute, value)
                    assert excinfo.value.code_name == "VBOX_E_INVALID_VM_STATE"
        machine._state = "PoweredOff"


# -- create: firmware and every network kind ------------------------------------------------------


def test_create_uefi_and_every_nic_kind(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    nics = [
        {"network": "default"},
        {"network": "NatNetwork"},
        {"network": "vboxnet0", "kind": "hostonly", "model": "virtio"},
        {"network": "eth0", "kind": "bridge", "connected": False},
        {"network": "lab", "kind": "internal", "mac": "52:54:00:7a:c0:01"},
    ]
    vm = _vm(api_hv, firmware="uefi", nics=nics)
    info = vm.info()
    assert info.firmware is Firmware.UEFI
    got = [(n.id, n.kind, n.network, n.model, n.connected) for n in info.nics]
    assert got == [
        ("nic1", "nat", "default", "e1000", True),
        ("nic2", "nat", "NatNetwork", "e1000", True),
        ("nic3", "hostonly", "vboxnet0", "virtio", True),
        ("nic4", "bridge", "eth0", "e1000", False),
        ("nic5", "internal", "lab", "e1000", True),
    ]
    assert info.nics[4].mac == "52:54:00:7a:c0:01"
    machine = _machine(fake_com, vm)
    efi = fake_com.server.constants.FirmwareType_EFI
    if since(fake_com.server.profile, "7.1"):  # IFirmwareSettings; IMachine has no firmwareType any more
        assert machine.firmwareSettings.firmwareType == efi
        assert not hasattr(machine, "firmwareType")
    else:
        assert machine.firmwareType == efi
        assert not hasattr(machine, "firmwareSettings")
    assert _vm(api_hv, "bios").info().firmware is Firmware.BIOS


def test_create_refuses_unknown_networks_and_models(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    for nic in (
        {"network": "nowhere"},
        {"network": "eth1", "kind": "bridge"},
        {"network": "vboxnet9", "kind": "hostonly"},
    ):
        with pytest.raises(NetworkNotFound):
            _vm(api_hv, "bad", nics=[nic])
    with pytest.raises(SpecError) as excinfo:
        _vm(api_hv, "bad", nics=[{"network": "default"}, {"network": "default", "model": "vmxnet3"}])
    assert excinfo.value.field == "nics[1].model"
    assert len(api_hv.vms) == 0
    assert fake_com.server.machines == []


def test_create_disks_on_every_bus_and_existing_image(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    disks = [{"size": 32, "bus": bus} for bus in ("sata", "ide", "scsi", "nvme", "virtio")]
    vm = _vm(api_hv, disks=disks)
    info = vm.info()
    assert [(d.id, d.bus, d.size_mib) for d in info.disks] == [
        ("SATA-0-0", "sata", 32), ("IDE-0-0", "ide", 32), ("SCSI-0-0", "scsi", 32), ("NVMe-0-0", "nvme", 32),
        ("VirtIO-0-0", "virtio", 32),
    ]  # fmt: skip
    assert Path(info.disks[0].path).name == "m1-disk0.vdi"
    kept = info.disks[0].path
    api_hv.backend.remove_disk(vm.id, "SATA-0-0", delete=False)
    other = _vm(api_hv, "m2", disks=[{"path": kept, "bus": "sata"}])
    assert [d.path for d in other.info().disks] == [kept]


def test_list_networks(api_hv: virtabstract.Hypervisor, fake_com: Any) -> None:
    nets = {n.name: n for n in api_hv.networks()}
    assert list(nets) == ["default", "NatNetwork", "vboxnet0", "eth0"]
    assert (nets["NatNetwork"].kind, nets["NatNetwork"].cidr) == ("nat", "10.0.2.0/24")
    assert (nets["vboxnet0"].kind, nets["vboxnet0"].cidr, nets["vboxnet0"].id) == (
        "hostonly", "192.168.56.1/24", "hostonly:vboxnet0")  # fmt: skip
    assert (nets["eth0"].kind, nets["eth0"].id) == ("bridge", "bridged:eth0")
    fake_com.server.vbox.host.interfaces[0].status = 2  # Down
    fake_com.server.vbox.nat_networks[0].enabled = False
    nets = {n.name: n for n in api_hv.networks()}
    assert not nets["vboxnet0"].active and not nets["NatNetwork"].active


def test_capabilities_match_the_vboxmanage_transport(api_hv: virtabstract.Hypervisor) -> None:
    from virtabstract_vbox._backend import VBoxBackend

    added = {Capability.CLONE, Capability.LINKED_CLONE, Capability.DISKS, Capability.DISK_RESIZE, Capability.NICS,
             Capability.RESOURCES}  # fmt: skip
    assert added <= api_hv.backend.capabilities <= VBoxBackend.capabilities


# -- clones ----------------------------------------------------------------------------------------


def test_full_clone(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    source = _vm(api_hv, "src", cpus=2, tags=["lab"], disks=[{"size": 64}, {"size": 32}])
    before = source.info()
    clone = source.clone("copy")
    info = clone.info()
    assert (info.name, info.cpus, info.memory_mib, info.tags, info.state) == (
        "copy", 2, 256, ("lab",), PowerState.STOPPED)  # fmt: skip
    assert info.id != before.id
    assert [d.size_mib for d in info.disks] == [64, 32]
    assert [Path(d.path).name for d in info.disks] == ["copy-disk1.vdi", "copy-disk2.vdi"]
    assert all(Path(d.path).exists() and not d.backing for d in info.disks)
    assert {n.mac for n in info.nics}.isdisjoint({n.mac for n in before.nics})
    assert source.info() == before
    progress = next(p for p in fake_com.server.progresses if p.kind == "cloneTo")
    assert progress.descriptions == ["Initialize Cloning", "Cloning Disk 'src-disk0.vdi' ...",
                                     "Cloning Disk 'src-disk1.vdi' ...", "Create Machine Clone 'copy' ..."]  # fmt: skip
    target = _machine(fake_com, clone)
    assert Path(target.settingsFilePath).exists()
    clone.delete()
    assert not any(Path(d.path).exists() for d in info.disks)
    assert all(Path(d.path).exists() for d in before.disks)


def test_clone_from_snapshot_and_linked(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    source = _vm(api_hv, "base")
    snap = source.snapshots.create("s1")
    source.reconfigure(cpus=3)
    from_snap = source.clone("from-snap", snapshot=snap)
    assert from_snap.info().cpus == 1
    linked = source.clone("linked", linked=True, snapshot=snap)
    info, base = linked.info(), source.info()
    assert info.cpus == 1
    assert info.disks[0].backing == base.disks[0].path  # a differencing image of the source's disk
    assert info.disks[0].size_mib == base.disks[0].size_mib
    assert Path(info.disks[0].path).parent.name == "Snapshots"
    medium = fake_com.server.vbox.openMedium(base.disks[0].path, 3, 2, False)
    assert [c.location for c in medium.children] == [info.disks[0].path]
    assert [s.name for s in source.snapshots.list()] == ["s1"]  # no extra snapshot: one was given


def test_linked_clone_without_snapshot_takes_one(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    source = _vm(api_hv, "base")
    source.start()
    clone = source.clone("lc", linked=True)
    snaps = api_hv.backend.list_snapshots(source.id)
    assert [(s.name, s.has_memory) for s in snaps] == [("linked-clone-base-lc", True)]
    assert clone.state is PowerState.SUSPENDED  # the clone of a memory snapshot has its saved state
    assert source.state is PowerState.RUNNING


def test_clone_of_a_running_vm_is_refused_and_leaves_nothing(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    source = _vm(api_hv, "busy")
    source.start()
    files = _media_paths(fake_com)
    with pytest.raises(InvalidState, match="locked for writing"):
        source.clone("copy")  # its media are locked by the running VM: VirtualBox clones snapshots of running VMs
    assert [vm.name for vm in api_hv.vms] == ["busy"]
    assert _media_paths(fake_com) == files
    assert not (Path(fake_com.server.machine_folder) / "copy" / "copy.vbox").exists()


def test_clone_failures_roll_back(
    fake_com: Any, api_hv: virtabstract.Hypervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = fake_com.server
    source = _vm(api_hv, "src")
    files = _media_paths(fake_com)
    # The progress fails: VirtualBox cleans its own files; the linked clone's snapshot goes too.
    server.fail_next["cloneTo"] = ("VBOX_E_FILE_ERROR", "Could not create the clone medium (fake)")
    with pytest.raises(BackendError, match="clone medium"):
        source.clone("lc", linked=True)
    assert source.snapshots.list() == []
    # Registering fails after the clone was made: its settings and new disks are deleted.
    real = server.vbox.registerMachine

    def refuse(machine: Any) -> None:
        if machine._data["name"] == "copy":
            raise COMError("VBOX_E_OBJECT_IN_USE", "A machine with UUID {...} is already registered (fake)")
        real(machine)

    monkeypatch.setattr(server.vbox, "registerMachine", refuse)
    with pytest.raises(InvalidState, match="already registered"):
        source.clone("copy")
    assert [vm.name for vm in api_hv.vms] == ["src"]
    assert _media_paths(fake_com) == files
    folder = Path(server.machine_folder) / "copy"
    assert not any(folder.glob("*.vdi")) and not (folder / "copy.vbox").exists()


def test_clone_name_taken_on_disk_goes_to_its_own_folder(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    source = _vm(api_hv, "src")
    leftover = Path(fake_com.server.machine_folder) / "copy" / "copy.vbox"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("<VirtualBox/>")  # the files of an unregistered VM of that name
    clone = source.clone("copy")
    assert Path(_machine(fake_com, clone).settingsFilePath).parent.parent.name == f"copy-{clone.id[:8]}"
    with pytest.raises(AlreadyExists):
        source.clone("copy")  # a registered VM of that name: refused by the core


def test_fake_clone_rules(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    server = fake_com.server
    machine = _machine(fake_com, _vm(api_hv, "src"))
    c = server.constants
    target = server.vbox.createMachine(*_create_args(server.profile, "t"))
    for mode, options, text in [
        (c.CloneMode_MachineState, [c.CloneOptions_Link], "only be created from a snapshot"),
        (c.CloneMode_MachineState, [c.CloneOptions_KeepAllMACs, c.CloneOptions_KeepNATMACs], "cannot be combined"),
        (c.CloneMode_AllStates, [], "MachineState only"),
    ]:
        with pytest.raises(COMError, match=text):
            machine.cloneTo(target, mode, options)
    snapshot_machine = _snapshot(api_hv, machine).machine
    with pytest.raises(COMError, match="single machine state"):
        snapshot_machine.cloneTo(target, c.CloneMode_AllStates, [c.CloneOptions_Link])
    progress = machine.cloneTo(target, c.CloneMode_MachineState, [c.CloneOptions_KeepAllMACs])
    progress.waitForCompletion(-1)
    same = [target._data["adapters"][i]["MACAddress"] == machine.getNetworkAdapter(i).MACAddress for i in range(8)]
    assert all(same)


def _create_args(profile: str, name: str) -> list[Any]:
    if since(profile, "7.1"):
        return ["", name, 1, ["/"], "Other_64", "", "", "", ""]
    if since(profile, "7.0"):
        return ["", name, ["/"], "Other_64", "", "", "", ""]
    return ["", name, ["/"], "Other_64", ""]


def _snapshot(hv: virtabstract.Hypervisor, machine: Any) -> Any:
    hv.backend.create_snapshot(str(machine.id), "s", description="", memory=False, quiesce=False)
    return machine.findSnapshot("s")


# -- disks -----------------------------------------------------------------------------------------


def test_add_remove_resize_disks(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    vm = _vm(api_hv)
    added = [vm.add_disk(Disk(size=16)) for _ in range(4)]  # SATA has 4 ports: the 5th disk raises the count
    assert [d.id for d in added] == ["SATA-1-0", "SATA-2-0", "SATA-3-0", "SATA-4-0"]
    machine = _machine(fake_com, vm)
    assert machine.getStorageControllerByName("SATA").portCount == 5
    scsi = vm.add_disk({"size": 8, "bus": "scsi", "thin": False})
    assert (scsi.id, scsi.bus, scsi.size_mib, scsi.thin) == ("SCSI-0-0", "scsi", 8, False)
    grown = vm.resize_disk(scsi.id, "24MiB")
    assert grown.size_mib == 24 and grown.id == scsi.id
    vm.remove_disk(added[0].id)
    assert not Path(added[0].path).exists()
    vm.remove_disk(added[1].id, delete=False)
    assert Path(added[1].path).exists()
    assert added[1].path not in _media_paths(fake_com)  # closed, not deleted
    assert [d.id for d in vm.info().disks] == ["SATA-0-0", "SATA-3-0", "SATA-4-0", "SCSI-0-0"]
    with pytest.raises(DeviceNotFound):
        vm.resize_disk("SATA-9-0", "1GiB")


def test_disk_changes_follow_the_vboxmanage_rules(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    vm = _vm(api_hv)
    disk = vm.info().disks[0]
    vm.start()
    with pytest.raises(InvalidState):
        vm.add_disk(Disk(size=16))  # no hot-plug, as on VBoxManage
    with pytest.raises(InvalidState):
        vm.remove_disk(disk.id)
    with pytest.raises(InvalidState, match="locked for writing"):
        vm.resize_disk(disk.id, "128MiB")  # VirtualBox refuses: the running VM holds the medium
    vm.power_off()
    files = _media_paths(fake_com)
    fake_com.server.fail_next["createBaseStorage"] = ("VBOX_E_FILE_ERROR", "No space left on device (fake)")
    with pytest.raises(BackendError, match="No space"):
        vm.add_disk(Disk(size=16))
    assert _media_paths(fake_com) == files
    assert [d.id for d in vm.info().disks] == [disk.id]
    vmdk = fake_com.server.vbox.openMedium(disk.path, 3, 2, False)
    vmdk.format = "VMDK"
    with pytest.raises(UnsupportedOperation):
        vm.resize_disk(disk.id, "128MiB")


def test_fake_medium_diff_and_resize(fake_com: Any, api_hv: virtabstract.Hypervisor, tmp_path: Path) -> None:
    server = fake_com.server
    path = _vm(api_hv).info().disks[0].path
    base = server.vbox.openMedium(path, 3, 2, False)
    diff = server.vbox.createMedium("VDI", str(tmp_path / "diff.vdi"), 2, 3)
    assert diff.state == server.constants.MediumState_NotCreated
    diff_progress = base.createDiffStorage(diff, [0])
    diff_progress.waitForCompletion(-1)
    assert diff.parent is base and base.children == [diff] and diff.logicalSize == base.logicalSize
    assert diff.variant[0] & server.constants.MediumVariant_Diff
    with pytest.raises(COMError, match="already created"):
        base.createDiffStorage(diff, [0])
    shrink = base.resize(MiB)
    shrink.waitForCompletion(-1)
    assert shrink.resultCode != 0 and "Shrinking" in shrink.errorInfo.text
    assert base.logicalSize == 64 * MiB


def test_fake_storage_controller_rules(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    c = fake_com.server.constants
    machine = _machine(fake_com, _vm(api_hv, disks=[]))
    with api_hv.backend.api.session(machine) as session:
        mutable = session.machine
        mutable.addStorageController("IDE", c.StorageBus_IDE)
        mutable.addStorageController("SATA", c.StorageBus_SATA)
        ide, sata = mutable.getStorageControllerByName("IDE"), mutable.getStorageControllerByName("SATA")
        assert (ide.portCount, ide.controllerType, sata.portCount) == (2, c.StorageControllerType_PIIX4, 30)
        for controller, attribute, value in [(ide, "portCount", 3), (sata, "portCount", 31),
                                             (sata, "controllerType", c.StorageControllerType_PIIX4)]:  # fmt: skip
            with pytest.raises(COMError) as excinfo:
                setattr(controller, attribute, value)
            assert excinfo.value.code_name == "E_INVALIDARG"
        with pytest.raises(COMError, match="out of range"):
            mutable.attachDevice("SATA", 30, 0, 3, None)
        mutable.attachDevice("IDE", 1, 1, 2, None)  # IDE: two devices per port
        with pytest.raises(COMError, match="Could not find a storage controller"):
            mutable.getStorageControllerByName("SCSI")


# -- NICs ------------------------------------------------------------------------------------------


def test_add_remove_nics(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    vm = _vm(api_hv)
    bridged = vm.add_nic({"network": "eth0", "kind": "bridge", "model": "virtio", "connected": False})
    assert (bridged.id, bridged.kind, bridged.network, bridged.model, bridged.connected) == (
        "nic2", "bridge", "eth0", "virtio", False)  # fmt: skip
    fixed = vm.add_nic(Nic(network="lab", kind="internal", mac="52:54:00:7a:c0:02"))
    assert (fixed.id, fixed.mac) == ("nic3", "52:54:00:7a:c0:02")
    vm.remove_nic(bridged.mac)
    assert [n.id for n in vm.info().nics] == ["nic1", "nic3"]
    assert vm.add_nic(Nic(network="vboxnet0")).id == "nic2"  # the freed slot is reused
    for _ in range(5):
        vm.add_nic(Nic())
    with pytest.raises(InvalidState, match="8 NICs"):
        vm.add_nic(Nic())
    with pytest.raises(DeviceNotFound):
        vm.remove_nic("nic9")
    vm.start()
    with pytest.raises(InvalidState):
        vm.remove_nic("nic1")


def test_update_nic_live_and_offline(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    server = fake_com.server
    vm = _vm(api_hv)
    nic = vm.info().nics[0]
    moved = vm.update_nic(nic.id, network="NatNetwork", connected=False)
    assert (moved.network, moved.kind, moved.connected, moved.mac) == ("NatNetwork", "nat", False, nic.mac)
    vm.start()
    unlocks = server.unlocks
    live = vm.update_nic(nic.id, network="default", connected=True)  # a shared lock links to the VM process
    assert (live.network, live.connected, live.mac) == ("default", True, nic.mac)
    assert server.unlocks == unlocks + 1 and vm.state is PowerState.RUNNING
    assert vm.update_nic(nic.id, network="default", connected=True) == live  # nothing to change: no lock
    assert server.unlocks == unlocks + 1
    with pytest.raises(NetworkNotFound):
        vm.update_nic(nic.id, network="nowhere")
    vm.suspend()
    saved = vm.update_nic(nic.id, network="vboxnet0")  # a saved VM takes attachment changes too
    assert (saved.kind, saved.network) == ("hostonly", "vboxnet0")


# -- resources, AbortedSaved -------------------------------------------------------------------------


def test_resources_offline_and_live(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    vm = _vm(api_hv, cpus=2)
    assert vm.resources() == ResourceAllocation()
    assert vm.set_resources(cpu_limit_mhz=1000).cpu_limit_mhz == 1000
    machine = _machine(fake_com, vm)
    assert machine.CPUExecutionCap == 25
    vm.start()
    vm.set_resources(cpu_limit_mhz=3000)  # live: CPUExecutionCap is MutableOrRunning
    assert machine.CPUExecutionCap == 75 and vm.resources().cpu_limit_mhz == 3000
    vm.set_resources(cpu_limit_mhz=None)
    assert machine.CPUExecutionCap == 100
    with pytest.raises(SpecError):
        vm.set_resources(cpu_limit_mhz=5000)
    vm.suspend()
    with pytest.raises(InvalidState):
        vm.set_resources(cpu_limit_mhz=1000)  # a saved VM's cap cannot change


def test_fake_cpu_cap_range(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    vm = _vm(api_hv)
    machine = _machine(fake_com, vm)
    api = api_hv.backend.api
    with api.session(machine) as session:
        for bad in (0, 101):
            with pytest.raises(COMError) as excinfo:
                session.machine.CPUExecutionCap = bad
            assert excinfo.value.code_name == "E_INVALIDARG"
        session.machine.CPUExecutionCap = 1
    assert machine.CPUExecutionCap == 100  # never saved


def test_power_off_discards_an_aborted_saved_state(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    vm = _vm(api_hv)
    vm.start()
    vm.suspend()
    with pytest.raises(InvalidState):
        vm.power_off()  # Saved is SUSPENDED: power_off is not a legal transition (as on VBoxManage)
    machine = _machine(fake_com, vm)
    if fake_com.server.profile == "6.1":
        with pytest.raises(COMError, match="not in the Saved state"):
            with api_hv.backend.api.session(machine) as session:
                machine._state = "PoweredOff"
                session.machine.discardSavedState(True)
        return
    machine._state = "AbortedSaved"  # the VM process died while restoring the saved state
    assert vm.state is PowerState.CRASHED
    vm.power_off()
    assert (vm.state, vm.info().native_state) == (PowerState.STOPPED, "PoweredOff")
    assert machine.transitions[-1] == "PoweredOff"
    machine._state = "Aborted"
    vm.power_off()  # nothing to stop
    assert machine._state == "Aborted"


def test_add_disk_failure_deletes_the_image_it_created(
    fake_com: Any, api_hv: virtabstract.Hypervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """attachDevice refused after createBaseStorage: the new image is deleted, the VM keeps its disks."""
    from .fake_com import SessionMachine

    vm = _vm(api_hv)
    before_media, before_disks = _media_paths(fake_com), [d.id for d in vm.info().disks]
    folder = Path(_machine(fake_com, vm).settingsFilePath).parent
    before_files = set(folder.glob("*.vdi"))

    def refuse(*_args: Any) -> None:
        raise COMError("VBOX_E_OBJECT_IN_USE", "The port is in use (fake)")

    monkeypatch.setattr(SessionMachine, "attachDevice", refuse)
    with pytest.raises(InvalidState, match="port is in use"):
        vm.add_disk(Disk(size=16))
    assert _media_paths(fake_com) == before_media
    assert set(folder.glob("*.vdi")) == before_files
    assert [d.id for d in vm.info().disks] == before_disks
    assert fake_com.server.locked_sessions() == []
