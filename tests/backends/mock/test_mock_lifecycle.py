"""Create, delete, devices, reconfigure and resources of the mock backend."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from virtabstract import VM, Disk, Hypervisor, ManualClock, Nic, PowerState, ResourceAllocation, VMSpec
from virtabstract.backends.mock import MAX_LIVE_CPUS, MockBackend
from virtabstract.errors import (
    AlreadyExists,
    DeviceNotFound,
    InvalidState,
    NetworkNotFound,
    SpecError,
    StorageNotFound,
    UnsupportedOperation,
    VMNotFound,
)


def test_create_reports_what_was_asked(hv: Hypervisor) -> None:
    vm = hv.vms.create(
        VMSpec(
            name="web1",
            cpus=2,
            memory="2GiB",
            guest_os="windows-server-2022",
            disks=[Disk(size="20GiB"), Disk(size=512, bus="scsi", name="data")],
            nics=[Nic(network="default"), Nic(network="isolated", model="e1000", mac="52:54:00:aa:bb:cc")],
            firmware="uefi",
            description="front end",
            tags=["web", "prod"],
            cdrom="/isos/win.iso",
        )
    )
    info = vm.info()
    assert info.state is PowerState.STOPPED
    assert info.native_state == "shutoff"
    assert (info.cpus, info.memory_mib) == (2, 2048)
    assert info.guest_os == info.guest_os_native == "windows-server-2022"
    assert [d.id for d in info.disks] == ["disk0", "disk1"]
    assert info.disks[0].path == "/mock/pool/web1-disk0.qcow2"
    assert info.disks[0].size_mib == 20480 and info.disks[0].bus == "virtio" and info.disks[0].format == "qcow2"
    assert info.disks[1].path == "/mock/pool/data.qcow2" and info.disks[1].bus == "scsi"
    assert [n.id for n in info.nics] == ["nic0", "nic1"]
    assert re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", info.nics[0].mac)
    assert info.nics[1].mac == "52:54:00:aa:bb:cc" and info.nics[1].model == "e1000"
    assert info.tags == ("prod", "web") and info.description == "front end"
    assert info.firmware.value == "uefi" and info.cdrom == "/isos/win.iso"
    assert info.backend == "mock"
    assert hv.vms.get("web1") == vm
    assert hv.vms.get(vm.id) == vm


def test_ids_and_macs_are_unique(make_vm: Callable[..., VM]) -> None:
    vms = [make_vm(nics=[Nic(), Nic(), Nic()]) for _ in range(30)]
    ids = {vm.id for vm in vms}
    macs = [n.mac for vm in vms for n in vm.info().nics]
    assert len(ids) == 30
    assert len(set(macs)) == len(macs) == 90


def test_seed_makes_ids_deterministic() -> None:
    import virtabstract

    def ids(url: str) -> list[tuple[str, str]]:
        with virtabstract.connect(url) as hv:
            vm = hv.vms.create(VMSpec(name="a", nics=[Nic()]))
            return [(vm.id, vm.info().nics[0].mac)]

    assert ids("mock://?seed=3") == ids("mock://?seed=3")
    assert ids("mock://?seed=3") != ids("mock://?seed=4")
    assert ids("mock://") != ids("mock://")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"nics": [Nic(network="nope")]}, NetworkNotFound),
        ({"nics": [Nic(network="br9", kind="bridge")]}, NetworkNotFound),
        ({"disks": [Disk(size=10, storage="fast")]}, StorageNotFound),
        ({"disks": [Disk(path="/mock/pool/missing.qcow2")]}, StorageNotFound),
        ({"disks": [Disk(size=10, name="x"), Disk(size=10, name="x")]}, AlreadyExists),
    ],
)
def test_create_failures_leave_nothing(
    hv: Hypervisor, backend: MockBackend, fields: dict[str, object], error: type[Exception]
) -> None:
    before = dict(backend.store.read()["volumes"])
    with pytest.raises(error):
        hv.vms.create(VMSpec(name="bad", **fields))  # type: ignore[arg-type]
    assert len(hv.vms) == 0
    assert backend.store.read()["volumes"] == before


def test_duplicate_names_are_refused_by_core(make_vm: Callable[..., VM]) -> None:
    make_vm("same")
    with pytest.raises(AlreadyExists):
        make_vm("same")


def test_delete_needs_stopped(running_vm: VM) -> None:
    with pytest.raises(InvalidState) as err:
        running_vm.delete()
    assert err.value.state is PowerState.RUNNING


def test_delete_with_and_without_disks(hv: Hypervisor, backend: MockBackend, make_vm: Callable[..., VM]) -> None:
    keep = make_vm("keep")
    drop = make_vm("drop")
    keep_path = keep.info().disks[0].path
    drop_path = drop.info().disks[0].path
    keep.delete(disks=False)
    drop.delete(disks=True)
    volumes = backend.store.read()["volumes"]
    assert keep_path in volumes and drop_path not in volumes
    with pytest.raises(VMNotFound):
        hv.vms.get("keep")
    # the kept volume can be attached again by path
    other = make_vm("other", disks=[])
    disk = other.add_disk(Disk(path=keep_path))
    assert disk.path == keep_path and disk.size_mib == 10240


def test_unregister_keeps_volumes(backend: MockBackend, make_vm: Callable[..., VM]) -> None:
    vm = make_vm()
    path = vm.info().disks[0].path
    vm.unregister()
    assert path in backend.store.read()["volumes"]
    assert backend.list_vms() == []


def test_suspend_keeps_memory(running_vm: VM, clock: ManualClock, backend: MockBackend) -> None:
    running_vm.guest.write_file("/tmp/state", b"warm")
    running_vm.suspend()
    assert running_vm.info().native_state == "saved"
    clock.advance(100)
    running_vm.start()
    # the agent was up before suspending, so it answers at once after restore
    assert running_vm.guest.info().ready
    assert running_vm.guest.read_file("/tmp/state") == b"warm"


def test_reboot_and_reset_restart_the_agent(running_vm: VM, clock: ManualClock, backend: MockBackend) -> None:
    from virtabstract.errors import GuestAgentUnavailable

    for verb in (running_vm.reboot, running_vm.reset):
        assert running_vm.guest.info()
        verb()
        assert running_vm.state is PowerState.RUNNING
        with pytest.raises(GuestAgentUnavailable):
            running_vm.guest.info()
        clock.advance(backend.agent_delay)
        assert running_vm.guest.info().ready


def test_ignored_reboot(running_vm: VM, backend: MockBackend) -> None:
    backend.faults.ignore_shutdown(running_vm.id)
    running_vm.reboot()
    assert running_vm.guest.info().ready  # nothing happened


# -- reconfigure --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("running", "changes", "modes"),
    [
        (False, {"cpus": 8, "memory": "1GiB"}, {"cpus": "offline", "memory_mib": "offline"}),
        (True, {"cpus": 4}, {"cpus": "live"}),
        (True, {"cpus": MAX_LIVE_CPUS}, {"cpus": "live"}),
        (True, {"cpus": MAX_LIVE_CPUS + 1}, {"cpus": "needs_power_off"}),
        (True, {"cpus": 1}, {"cpus": "needs_power_off"}),
        (True, {"memory": "4GiB"}, {"memory_mib": "live"}),
        (True, {"memory": "1GiB"}, {"memory_mib": "needs_power_off"}),
        (True, {"description": "x", "tags": ["a"]}, {"description": "live", "tags": "live"}),
        (True, {"cpus": 2, "memory": "2GiB"}, {}),
    ],
)
def test_reconfigure_plans(
    make_vm: Callable[..., VM], running: bool, changes: dict[str, object], modes: dict[str, str]
) -> None:
    vm = make_vm()
    if running:
        vm.start()
    plan = vm.reconfigure(dry_run=True, **changes)  # type: ignore[arg-type]
    assert {c.field: c.mode for c in plan.changes} == modes
    assert not plan.applied


def test_reconfigure_applies_live_and_refuses_power_off(running_vm: VM) -> None:
    plan = running_vm.reconfigure(cpus=4, memory="4GiB", tags=["x"])
    assert plan.applied
    info = running_vm.info()
    assert (info.cpus, info.memory_mib, info.tags) == (4, 4096, ("x",))
    with pytest.raises(InvalidState):
        running_vm.reconfigure(cpus=2)
    assert running_vm.info().cpus == 4


def test_reconfigure_deferred_applies_at_next_stop(running_vm: VM, backend: MockBackend) -> None:
    plan = running_vm.reconfigure(cpus=1, memory="1GiB", description="later", defer=True)
    modes = {c.field: c.mode for c in plan.changes}
    assert modes == {"cpus": "deferred", "memory_mib": "deferred", "description": "live"}
    info = running_vm.info()
    assert (info.cpus, info.memory_mib, info.description) == (2, 2048, "later")
    assert backend.native_vm(running_vm.id)["pending"] == {"cpus": 1, "memory_mib": 1024}
    running_vm.shutdown(timeout=10)
    info = running_vm.info()
    assert (info.cpus, info.memory_mib) == (1, 1024)
    running_vm.start()
    assert running_vm.info().cpus == 1


def test_reconfigure_offline(make_vm: Callable[..., VM]) -> None:
    vm = make_vm()
    vm.reconfigure(cpus=100, memory="512MiB")
    assert (vm.info().cpus, vm.info().memory_mib) == (100, 512)


def test_live_capability_removed() -> None:
    import virtabstract

    with virtabstract.connect("mock://?capabilities=-reconfigure_live,-reconfigure_deferred") as hv:
        vm = hv.vms.create(VMSpec(name="a", cpus=2))
        vm.start()
        plan = vm.reconfigure(cpus=4, description="d", dry_run=True)
        assert {c.field: c.mode for c in plan.changes} == {"cpus": "needs_power_off", "description": "live"}
        with pytest.raises(UnsupportedOperation):
            vm.reconfigure(cpus=4, defer=True)


# -- resources ----------------------------------------------------------------------------


def test_resources_round_trip(make_vm: Callable[..., VM]) -> None:
    vm = make_vm()
    assert vm.resources() == ResourceAllocation()
    result = vm.set_resources(cpu_shares=2000, memory_limit="1GiB", memory_reservation="512MiB", disk_weight=500)
    assert result == ResourceAllocation(
        cpu_shares=2000, memory_limit_mib=1024, memory_reservation_mib=512, disk_weight=500
    )
    assert vm.resources() == result
    assert vm.set_resources(cpu_shares=None).cpu_shares is None
    assert vm.resources().memory_limit_mib == 1024


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cpu_shares": 1_000_001}, "cpu_shares"),
        ({"memory_shares": 2_000_000}, "memory_shares"),
        ({"disk_weight": 50}, "disk_weight"),
        ({"disk_weight": 1001}, "disk_weight"),
        ({"cpu_reservation_mhz": 50_000}, "cpu_reservation_mhz"),
        ({"cpu_reservation_mhz": 2000, "cpu_limit_mhz": 1000}, "cpu_reservation_mhz"),
        ({"memory_reservation": "4GiB"}, "memory_reservation"),
        ({"memory_reservation": "1GiB", "memory_limit": "512MiB"}, "memory_reservation"),
    ],
)
def test_resources_validation(make_vm: Callable[..., VM], kwargs: dict[str, object], field: str) -> None:
    vm = make_vm()
    with pytest.raises(SpecError) as err:
        vm.set_resources(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field
    assert vm.resources() == ResourceAllocation()


# -- disks and NICs ---------------------------------------------------------------------------


def test_disk_hot_plug_rules(running_vm: VM) -> None:
    disk = running_vm.add_disk(Disk(size="1GiB", bus="scsi"))
    assert disk.id == "disk1"
    with pytest.raises(InvalidState):
        running_vm.add_disk(Disk(size="1GiB", bus="ide"))
    assert running_vm.resize_disk("disk1", "2GiB").size_mib == 2048
    running_vm.remove_disk("disk1")
    assert [d.id for d in running_vm.info().disks] == ["disk0"]
    running_vm.power_off()
    ide = running_vm.add_disk(Disk(size="1GiB", bus="ide"))
    assert ide.bus == "ide" and ide.id == "disk1"
    running_vm.start()
    with pytest.raises(InvalidState):
        running_vm.remove_disk("disk1")
    with pytest.raises(InvalidState):
        running_vm.resize_disk("disk1", "4GiB")


def test_disks_only_grow(make_vm: Callable[..., VM], backend: MockBackend) -> None:
    vm = make_vm()
    with pytest.raises(SpecError):
        vm.resize_disk("disk0", "1GiB")
    with pytest.raises(SpecError):
        backend.resize_disk(vm.id, "disk0", 1024)
    with pytest.raises(DeviceNotFound):
        vm.resize_disk("disk9", "100GiB")


def test_remove_disk_delete_flag(backend: MockBackend, make_vm: Callable[..., VM]) -> None:
    vm = make_vm(disks=[Disk(size=10), Disk(size=20)])
    paths = [d.path for d in vm.info().disks]
    vm.remove_disk("disk0", delete=False)
    vm.remove_disk("disk1", delete=True)
    volumes = backend.store.read()["volumes"]
    assert paths[0] in volumes and paths[1] not in volumes


def test_suspended_vm_refuses_device_changes(running_vm: VM) -> None:
    running_vm.suspend()
    with pytest.raises(InvalidState):
        running_vm.add_disk(Disk(size=10, bus="virtio"))
    with pytest.raises(InvalidState):
        running_vm.add_nic(Nic())


def test_nics(running_vm: VM) -> None:
    nic = running_vm.add_nic(Nic(network="isolated"))
    assert nic.id == "nic1" and nic.network == "isolated"
    moved = running_vm.update_nic(nic.mac, network="default", connected=False)
    assert moved.network == "default" and moved.connected is False
    with pytest.raises(NetworkNotFound):
        running_vm.update_nic("nic1", network="nowhere")
    running_vm.remove_nic("nic1")
    assert [n.id for n in running_vm.info().nics] == ["nic0"]
    with pytest.raises(DeviceNotFound):
        running_vm.remove_nic("nic7")
    with pytest.raises(SpecError):
        running_vm.add_nic(Nic(mac=running_vm.info().nics[0].mac))


def test_console(hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
    a, b = make_vm(), make_vm(graphics="none")
    c = make_vm(graphics="spice")
    ca = a.console()
    assert (ca.protocol, ca.host, ca.port) == ("vnc", "127.0.0.1", 5900)
    assert ca.password is not None and len(ca.password.reveal()) >= 8 and "***" in repr(ca)
    assert b.console().protocol == "serial" and b.console().serial_device
    cc = c.console()
    assert cc.protocol == "spice" and cc.port == 5902
    assert cc.password != ca.password


def test_host_networks_storage(hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
    import virtabstract

    host = hv.host
    assert (host.hostname, host.os_family.value, host.cpu_count, host.memory_mib) == ("mock-host", "linux", 16, 65536)
    assert host.hypervisor == "mock" and host.version == virtabstract.__version__ and host.backend == "mock"
    assert [(n.name, n.kind) for n in hv.networks()] == [("default", "nat"), ("isolated", "isolated")]
    pools = hv.storage()
    assert [p.name for p in pools] == ["default"]
    free = pools[0].free_mib
    make_vm(disks=[Disk(size="1GiB")])
    assert hv.storage()[0].free_mib == free - 1024  # type: ignore[operator]


def test_generated_volume_names_never_collide(hv: Hypervisor, backend: MockBackend, make_vm: Callable[..., VM]) -> None:
    first = make_vm("dup")
    first.delete(disks=False)
    again = make_vm("dup")
    assert again.info().disks[0].path == "/mock/pool/dup-disk0-1.qcow2"
    twin = backend.create_vm(VMSpec(name="dup", disks=[Disk(size=10)]))  # the backend allows duplicate names
    assert twin.disks[0].path == "/mock/pool/dup-disk0-2.qcow2"
    from virtabstract.errors import AmbiguousName

    with pytest.raises(AmbiguousName):
        hv.vms.get("dup")
    with pytest.raises(AlreadyExists):
        again.add_disk(Disk(size=10, name="dup-disk0-1"))
