"""Errors: the right exception for unknown VMs, duplicates, illegal transitions, bad specs and missing capabilities."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ..._backend import LEGAL_TRANSITIONS
from ..._hypervisor import VM, Hypervisor
from ..._model import Capability, PowerState, ReconfigureChange, ResourceAllocation
from ..._spec import Disk, Nic
from ...errors import (
    AlreadyExists,
    AmbiguousName,
    InvalidState,
    NetworkNotFound,
    SpecError,
    StorageNotFound,
    UnsupportedOperation,
    VMNotFound,
)
from .._factory import VMFactory
from ._base import ContractBase, require

__all__ = ["BAD_SPECS", "INVALID_TRANSITIONS", "OPERATION_CAPABILITY", "ErrorsContract"]

OPERATION_CAPABILITY: dict[str, Capability] = {
    "start": Capability.START,
    "shutdown": Capability.SHUTDOWN,
    "power_off": Capability.POWER_OFF,
    "reboot": Capability.REBOOT,
    "reset": Capability.RESET,
    "pause": Capability.PAUSE,
    "resume": Capability.PAUSE,
    "suspend": Capability.SUSPEND,
    "delete": Capability.DELETE,
}
"""The capability each power verb needs."""

_REACHABLE = (PowerState.STOPPED, PowerState.RUNNING, PowerState.PAUSED, PowerState.SUSPENDED)
_LEGAL: dict[str, frozenset[PowerState]] = {**LEGAL_TRANSITIONS, "delete": frozenset({PowerState.STOPPED})}
_NOT_CHECKED = {
    ("shutdown", PowerState.STOPPED),  # the facade answers "already_stopped" (tested in PowerContract)
    ("resume", PowerState.SUSPENDED),  # PowerState's docs say resume() restores; LEGAL_TRANSITIONS says no
    ("delete", PowerState.SUSPENDED),  # deleting a saved VM (and its saved state) is allowed by some backends
}

INVALID_TRANSITIONS: list[tuple[str, PowerState]] = [
    (op, state)
    for state in _REACHABLE
    for op in OPERATION_CAPABILITY
    if state not in _LEGAL[op] and (op, state) not in _NOT_CHECKED
]
"""Every (operation, state) pair that must raise :class:`InvalidState`, from :data:`LEGAL_TRANSITIONS`."""

BAD_SPECS: list[tuple[str, dict[str, Any], str]] = [
    ("cpus-zero", {"cpus": 0}, "cpus"),
    ("cpus-string", {"cpus": "two"}, "cpus"),
    ("memory-word", {"memory": "lots"}, "memory"),
    ("memory-tiny", {"memory": 1}, "memory"),
    ("guest-os-unknown", {"guest_os": "no-such-os-9.9"}, "guest_os"),
    ("disk-size", {"disks": [{"size": "-1GiB"}]}, "disks[0].size"),
    ("disk-bus", {"disks": [{"size": 64, "bus": "usb3"}]}, "disks[0].bus"),
    ("nic-multicast-mac", {"nics": [{"network": "default", "mac": "01:00:5e:00:00:01"}]}, "nics[0].mac"),
    ("unknown-field", {"colour": "blue"}, "colour"),
    ("name-slash", {"name": "bad/name"}, "name"),
    ("secure-boot-bios", {"firmware": "bios", "secure_boot": True}, "secure_boot"),
    ("tag-comma", {"tags": ["a,b"]}, "tags[0]"),
]
"""(id, fields to change in a good spec, the field path the SpecError must name)."""


class ErrorsContract(ContractBase):
    """Failures are reported with the documented exception, and leave nothing behind."""

    # -- unknown and deleted VMs ----------------------------------------------------------

    def test_errors_unknown_vm_id_at_backend(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """Every declared backend operation on an id that does not exist raises :class:`VMNotFound`."""
        backend = hypervisor.backend
        ghost = vm_factory.name("ghost")
        calls: list[tuple[Capability | None, str, Callable[[], object]]] = [
            (None, "get_vm", lambda: backend.get_vm(ghost)),
            (None, "get_state", lambda: backend.get_state(ghost)),
            (Capability.START, "start", lambda: backend.start(ghost)),
            (Capability.POWER_OFF, "power_off", lambda: backend.power_off(ghost)),
            (Capability.DELETE, "delete_vm", lambda: backend.delete_vm(ghost, delete_disks=True)),
            (Capability.SNAPSHOTS, "list_snapshots", lambda: backend.list_snapshots(ghost)),
            (Capability.RESOURCES, "get_resources", lambda: backend.get_resources(ghost)),
            (
                Capability.CLONE,
                "clone_vm",
                lambda: backend.clone_vm(ghost, ghost + "c", linked=False, snapshot_id=None),
            ),
        ]
        wrong: list[str] = []
        for capability, name, call in calls:
            if capability is not None and not hypervisor.supports(capability):
                continue
            try:
                call()
            except VMNotFound:
                continue
            except Exception as exc:  # noqa: BLE001 - reported below
                wrong.append(f"{name}: {type(exc).__name__}: {exc}")
            else:
                wrong.append(f"{name}: returned without error")
        assert not wrong, "operations on an unknown VM id did not raise VMNotFound:\n" + "\n".join(wrong)

    def test_errors_deleted_vm(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """A VM object whose VM was deleted raises :class:`VMNotFound` for every operation."""
        stopped_vm.delete()
        with pytest.raises(VMNotFound):
            stopped_vm.info()
        with pytest.raises(VMNotFound):
            stopped_vm.delete()
        if hypervisor.supports(Capability.START):
            with pytest.raises(VMNotFound):
                stopped_vm.start()
        if hypervisor.supports(Capability.SNAPSHOTS):
            with pytest.raises(VMNotFound):
                stopped_vm.snapshots.list()
        if hypervisor.supports(Capability.RECONFIGURE):
            with pytest.raises(VMNotFound):
                stopped_vm.reconfigure(cpus=2)

    # -- names ------------------------------------------------------------------------------

    def test_errors_duplicate_name(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """Creating a VM with a name in use raises :class:`AlreadyExists` and creates nothing."""
        require(hypervisor, Capability.CREATE)
        vm = vm_factory()
        count = len(hypervisor.vms)
        with pytest.raises(AlreadyExists):
            hypervisor.vms.create(vm_factory.spec(name=vm.name))
        assert len(hypervisor.vms) == count
        assert [i.id for i in hypervisor.vms.list_info() if i.name == vm.name] == [vm.id]

    def test_errors_ambiguous_name(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """Where two VMs may share a name, looking it up raises :class:`AmbiguousName` listing both ids."""
        require(hypervisor, Capability.CREATE)
        if self.duplicate_vm_names is False:
            pytest.skip(f"the {hypervisor.backend_name} backend keeps VM names unique")
        first = vm_factory()
        try:
            # the facade refuses duplicates, so go to the backend as another client would
            second_info = hypervisor.backend.create_vm(vm_factory.spec(name=first.name))
        except AlreadyExists:
            if self.duplicate_vm_names:
                raise
            pytest.skip(f"the {hypervisor.backend_name} backend keeps VM names unique")
        vm_factory.track(second_info.id, hypervisor)
        assert second_info.id != first.id
        with pytest.raises(AmbiguousName) as excinfo:
            hypervisor.vms.get(first.name)
        assert set(excinfo.value.ids) == {first.id, second_info.id}
        assert hypervisor.vms.get(second_info.id).id == second_info.id
        with pytest.raises(AlreadyExists):
            hypervisor.vms.create(vm_factory.spec(name=first.name))

    # -- power-state rules ------------------------------------------------------------------

    def _bring_to(self, vm: VM, state: PowerState) -> None:
        if state is PowerState.STOPPED:
            return
        vm.start()
        self.wait(vm, PowerState.RUNNING)
        if state is PowerState.PAUSED:
            vm.pause()
        elif state is PowerState.SUSPENDED:
            vm.suspend()
        self.wait(vm, state)

    @pytest.mark.parametrize(
        ("operation", "state"), INVALID_TRANSITIONS, ids=[f"{op}-from-{st.value}" for op, st in INVALID_TRANSITIONS]
    )
    def test_errors_invalid_transition(
        self, hypervisor: Hypervisor, vm_factory: VMFactory, operation: str, state: PowerState
    ) -> None:
        """An operation illegal in the VM's state raises :class:`InvalidState` carrying that state; nothing changes."""
        needed = {Capability.CREATE, Capability.DELETE, OPERATION_CAPABILITY[operation]}
        if state is not PowerState.STOPPED:
            needed |= {Capability.START, Capability.POWER_OFF}
        if state is PowerState.PAUSED:
            needed.add(Capability.PAUSE)
        if state is PowerState.SUSPENDED:
            needed.add(Capability.SUSPEND)
        require(hypervisor, *sorted(needed, key=lambda c: c.value))
        vm = vm_factory()
        self._bring_to(vm, state)
        call: Callable[[], object] = getattr(vm, operation)
        if operation == "shutdown":
            call = lambda: vm.shutdown(timeout=self.timeouts.shutdown)  # noqa: E731
        with pytest.raises(InvalidState) as excinfo:
            call()
        assert excinfo.value.state is state, (
            f"InvalidState.state is {excinfo.value.state!r}, expected {state.value}: {excinfo.value}"
        )
        assert vm.state is state, f"the refused {operation} changed the state to {vm.state.value}"
        assert vm.id in hypervisor.vms

    # -- specs --------------------------------------------------------------------------------

    @pytest.mark.parametrize(("changes", "field"), [(c, f) for _, c, f in BAD_SPECS], ids=[i for i, _, _ in BAD_SPECS])
    def test_errors_bad_spec_creates_nothing(
        self, hypervisor: Hypervisor, vm_factory: VMFactory, changes: dict[str, Any], field: str
    ) -> None:
        """An invalid spec raises :class:`SpecError` naming the field path, and no VM appears."""
        require(hypervisor, Capability.CREATE)
        data = vm_factory.spec().to_dict()
        data.update(changes)
        before = {i.id for i in hypervisor.vms.list_info()}
        with pytest.raises(SpecError) as excinfo:
            hypervisor.vms.create(data)
        assert excinfo.value.field == field, str(excinfo.value)
        assert {i.id for i in hypervisor.vms.list_info()} == before

    def test_errors_unknown_network_creates_nothing(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """A NIC on a network the hypervisor lacks is refused (NetworkNotFound or SpecError); no VM appears."""
        require(hypervisor, Capability.CREATE, Capability.NETWORKS)
        name = vm_factory.name("nonet")
        spec = vm_factory.spec(name=name, nics=[Nic(network=vm_factory.name("no-such-network"))])
        before = {i.id for i in hypervisor.vms.list_info()}
        with pytest.raises((NetworkNotFound, SpecError)):
            hypervisor.vms.create(spec)
        assert {i.id for i in hypervisor.vms.list_info()} == before
        assert name not in hypervisor.vms

    def test_errors_unknown_storage_creates_nothing(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """A disk on storage the hypervisor lacks is refused (StorageNotFound or SpecError); no VM appears."""
        require(hypervisor, Capability.CREATE, Capability.STORAGE)
        name = vm_factory.name("nostore")
        spec = vm_factory.spec(name=name, disks=[Disk(size=64, storage=vm_factory.name("no-such-pool"))])
        before = {i.id for i in hypervisor.vms.list_info()}
        with pytest.raises((StorageNotFound, SpecError)):
            hypervisor.vms.create(spec)
        assert {i.id for i in hypervisor.vms.list_info()} == before
        assert name not in hypervisor.vms

    # -- capabilities ---------------------------------------------------------------------------

    def test_errors_undeclared_capabilities_raise_unsupported(
        self, hypervisor: Hypervisor, vm_factory: VMFactory
    ) -> None:
        """Each backend operation of a capability the connection does not declare raises UnsupportedOperation.

        Called on the backend directly (the facade would refuse before reaching it), so a
        backend that declares less than it implements, or answers NotImplementedError or a
        silent success, fails here.
        """
        undeclared = [c for c in Capability if not hypervisor.supports(c)]
        if not undeclared:
            pytest.skip(f"the {hypervisor.backend_name} backend declares every capability")
        vm_id = self._some_vm_id(hypervisor, vm_factory)
        info = hypervisor.backend.get_vm(vm_id)
        probes = _capability_probes(hypervisor, vm_factory, vm_id, info.cpus, [d.id for d in info.disks])
        wrong: list[str] = []
        for capability in undeclared:
            for label, probe in probes.get(capability, []):
                try:
                    result = probe()
                except UnsupportedOperation:
                    continue
                except Exception as exc:  # noqa: BLE001 - reported below
                    wrong.append(f"{capability.name}: {label} raised {type(exc).__name__}: {exc}")
                else:
                    if capability is Capability.EVENTS and callable(result):
                        result()
                    wrong.append(f"{capability.name}: {label} succeeded although {capability.name} is not declared")
        assert not wrong, "declared capabilities and behaviour disagree:\n" + "\n".join(wrong)

    def _some_vm_id(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> str:
        if hypervisor.supports(Capability.CREATE):
            return vm_factory().id
        infos = hypervisor.vms.list_info()
        if not infos:
            pytest.skip("CREATE is not declared and the hypervisor has no VM to probe with")
        return infos[0].id


GUEST_PROBE_PATH = "/tmp/vatest-probe"  # noqa: S108 - a path inside the guest, not on this host


def _capability_probes(
    hv: Hypervisor, factory: VMFactory, vm_id: str, cpus: int, disk_ids: list[str]
) -> dict[Capability, list[tuple[str, Callable[[], object]]]]:
    """Backend calls that exercise each capability, on a stopped VM."""
    b = hv.backend
    disk_id = disk_ids[0] if disk_ids else "disk0"
    spec = factory.spec("probe")
    return {
        Capability.CREATE: [("create_vm", lambda: b.create_vm(spec))],
        Capability.UNREGISTER: [("unregister_vm", lambda: b.unregister_vm(vm_id))],
        Capability.START: [("start", lambda: b.start(vm_id))],
        Capability.SHUTDOWN: [("request_shutdown", lambda: b.request_shutdown(vm_id))],
        Capability.POWER_OFF: [("power_off", lambda: b.power_off(vm_id))],
        Capability.REBOOT: [("reboot", lambda: b.reboot(vm_id))],
        Capability.RESET: [("reset", lambda: b.reset(vm_id))],
        Capability.PAUSE: [("pause", lambda: b.pause(vm_id)), ("resume", lambda: b.resume(vm_id))],
        Capability.SUSPEND: [("suspend", lambda: b.suspend(vm_id))],
        Capability.AUTOSTART: [("set_autostart", lambda: b.set_autostart(vm_id, True))],
        Capability.RECONFIGURE: [
            ("plan_reconfigure", lambda: b.plan_reconfigure(vm_id, {"cpus": cpus + 1})),
            (
                "apply_reconfigure",
                lambda: b.apply_reconfigure(vm_id, [ReconfigureChange("cpus", cpus, cpus + 1, "offline")]),
            ),
        ],
        Capability.RESOURCES: [
            ("get_resources", lambda: b.get_resources(vm_id)),
            ("set_resources", lambda: b.set_resources(vm_id, ResourceAllocation(cpu_shares=1000))),
        ],
        Capability.DISKS: [
            ("add_disk", lambda: b.add_disk(vm_id, Disk(size=64))),
            ("remove_disk", lambda: b.remove_disk(vm_id, disk_id, delete=True)),
        ],
        Capability.DISK_RESIZE: [("resize_disk", lambda: b.resize_disk(vm_id, disk_id, 1 << 20))],
        Capability.NICS: [
            ("add_nic", lambda: b.add_nic(vm_id, Nic())),
            ("update_nic", lambda: b.update_nic(vm_id, "nic0", network=None, connected=False)),
            ("remove_nic", lambda: b.remove_nic(vm_id, "nic0")),
        ],
        Capability.SNAPSHOTS: [
            ("list_snapshots", lambda: b.list_snapshots(vm_id)),
            (
                "create_snapshot",
                lambda: b.create_snapshot(vm_id, "probe", description="", memory=False, quiesce=False),
            ),
        ],
        Capability.CLONE: [
            ("clone_vm", lambda: b.clone_vm(vm_id, factory.name("probe"), linked=False, snapshot_id=None))
        ],
        Capability.LINKED_CLONE: [
            ("clone_vm(linked=True)", lambda: b.clone_vm(vm_id, factory.name("probe"), linked=True, snapshot_id=None))
        ],
        Capability.CONSOLE: [("console", lambda: b.console(vm_id))],
        Capability.GUEST_INFO: [("guest_info", lambda: b.guest_info(vm_id))],
        Capability.GUEST_EXEC: [("guest_exec", lambda: b.guest_exec(vm_id, ["true"], stdin=None, timeout=10, env={}))],
        Capability.GUEST_FILES: [
            ("guest_read_file", lambda: b.guest_read_file(vm_id, "/etc/hostname")),
            ("guest_write_file", lambda: b.guest_write_file(vm_id, GUEST_PROBE_PATH, b"x")),
        ],
        Capability.GUEST_NETWORK: [("guest_ip_addresses", lambda: b.guest_ip_addresses(vm_id))],
        Capability.NETWORKS: [("list_networks", b.list_networks)],
        Capability.STORAGE: [("list_storage", b.list_storage)],
        Capability.EVENTS: [("subscribe_events", lambda: b.subscribe_events(lambda *args: None))],
    }
