"""The user-facing object model: Hypervisor → VMs → snapshots, guest.

These classes hold the policies that must be the same on every backend
(name resolution, shutdown escalation, reconfigure rules, waits, hooks) and
delegate everything hypervisor-specific to a :class:`~virtabstract.Backend`.
"""

from __future__ import annotations

import builtins
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

from ._backend import RECONFIGURABLE_FIELDS, Backend
from ._model import (
    Capability,
    ConsoleInfo,
    DiskInfo,
    ExecResult,
    GuestInfo,
    HostInfo,
    IPAddressInfo,
    NetworkInfo,
    NicInfo,
    OSFamily,
    PowerState,
    ReconfigurePlan,
    ResourceAllocation,
    ShutdownResult,
    SnapshotInfo,
    StorageInfo,
    VMInfo,
    VMSummary,
)
from ._spec import Disk, Nic, VMSpec, _check_name, _check_text
from ._units import parse_size
from ._url import URL
from ._wait import wait_until
from .errors import (
    AlreadyExists,
    AmbiguousName,
    GuestAgentUnavailable,
    InvalidState,
    OperationTimeout,
    SnapshotNotFound,
    SpecError,
    UnsupportedOperation,
    UsageError,
    VMNotFound,
)

__all__ = ["VM", "Guest", "Hypervisor", "OperationContext", "Snapshot", "SnapshotCollection", "VMCollection"]

log = logging.getLogger("virtabstract")
T = TypeVar("T")

_UNSET: Any = object()


class OperationContext(NamedTuple):
    """What hooks see of an operation (immutable). Never holds secrets.

    A named tuple rather than a dataclass: one is built for every hooked call, and this keeps
    the hooks' overhead to a few microseconds.
    """

    operation: str
    """The operation's name (``"start"``, ``"snapshot_create"``, ``"list_vms"`` …)."""
    backend: str
    """The backend's name."""
    url: str
    """The connection URL, password masked."""
    vm_id: str | None = None
    """The VM's id, for operations on one VM."""
    params: Mapping[str, Any] = MappingProxyType({})
    """The operation's parameters (never secrets)."""
    elapsed_s: float = 0.0
    """Seconds the operation took (after-operation hook only)."""


_NO_PARAMS: Mapping[str, Any] = MappingProxyType({})
_READY_PROBE_MAX_S = 0.25
"""The longest pause between two guest-agent probes of ``wait_ready``."""
_monotonic = time.monotonic
_context = tuple.__new__
"""Builds an :class:`OperationContext` from all six fields without the Python-level ``__new__`` frame."""
_START, _POWER_OFF, _SNAPSHOTS = Capability.START, Capability.POWER_OFF, Capability.SNAPSHOTS
"""Capabilities checked on the hottest verbs (an enum member read from its class costs ~0.1 µs each time)."""


class Hypervisor:
    """One open connection to a hypervisor. Use as a context manager, or call :meth:`close`.

    Obtain one with :func:`virtabstract.connect`.
    """

    def __init__(self, backend: Backend, url: URL, plugin_manager: Any) -> None:
        self._backend = backend
        self._url = url
        self._plugins = plugin_manager
        self._before_hook, self._after_hook = plugin_manager.operation_hooks()
        self._hooks = self._before_hook is not None or self._after_hook is not None
        self._url_text: str | None = None
        self._backend_name: str = backend.name  # read per hooked call: an instance attribute is the fast lookup
        self._capabilities = frozenset(backend.connection_capabilities())
        self._closed = False
        self.vms = VMCollection(self)
        """The VMs of this hypervisor: iterate, ``len()``, ``get()``, ``find()``, ``create()``."""

    # -- connection ---------------------------------------------------------------

    def __enter__(self) -> Hypervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Hypervisor {self._url} backend={self._backend.name} {state}>"

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._plugins.hook.virtabstract_connection_closed(hypervisor=self)
        finally:
            self._backend.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    @property
    def url(self) -> URL:
        """The connection URL (its password is masked whenever it is shown)."""
        return self._url

    @property
    def backend(self) -> Backend:
        """The backend object serving this connection."""
        return self._backend

    @property
    def backend_name(self) -> str:
        """The backend's short name (``"kvm"``, ``"esxi"``, ``"vbox"``, ``"mock"``)."""
        return self._backend.name

    @property
    def native(self) -> Any:
        """The SDK's connection object: a documented, non-portable escape hatch."""
        return self._backend.native

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What this connection can do."""
        return self._capabilities

    def supports(self, capability: Capability) -> bool:
        """True when this connection declares *capability*."""
        return capability in self._capabilities

    @property
    def host(self) -> HostInfo:
        """The host and hypervisor (read fresh on each access)."""
        return self._call("host_info", None, self._backend.host_info)

    def networks(self) -> list[NetworkInfo]:
        """Networks VMs can attach to."""
        return self._call("list_networks", None, self._backend.list_networks, capability=Capability.NETWORKS)

    def storage(self) -> list[StorageInfo]:
        """Storage pools or datastores."""
        return self._call("list_storage", None, self._backend.list_storage, capability=Capability.STORAGE)

    # -- plumbing -----------------------------------------------------------------

    def _require(self, capability: Capability | None, operation: str) -> None:
        if self._closed:
            raise UsageError(f"cannot {operation}: the connection to {self._url} is closed")
        if capability is not None and capability not in self._capabilities:
            raise UnsupportedOperation(self._backend.name, operation, self._backend.unsupported_reason(capability))

    def _call(
        self,
        operation: str,
        vm_id: str | None,
        func: Callable[..., T],
        *args: Any,
        capability: Capability | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> T:
        """Run ``func(*args)``, one backend call, with the capability check and the hooks around it.

        The hot path of every operation: no hooks, one test; the hook path builds two contexts.
        Passing *args* instead of a closure keeps the hottest verbs free of per-call function objects.
        """
        if self._closed or (capability is not None and capability not in self._capabilities):
            self._require(capability, operation)
        if not self._hooks:
            return func(*args)
        url = self._url_text
        if url is None:  # the URL is immutable: render (and mask) it once
            url = self._url_text = str(self._url)
        backend = self._backend_name
        given = params if params else _NO_PARAMS  # every caller passes a fresh dict: no copy
        if self._before_hook is not None:
            self._before_hook(_context(OperationContext, (operation, backend, url, vm_id, given, 0.0)))
        after = self._after_hook
        if after is None:
            return func(*args)
        started = _monotonic()
        try:
            result = func(*args)
        except BaseException as exc:
            elapsed = _monotonic() - started
            after(_context(OperationContext, (operation, backend, url, vm_id, given, elapsed)), None, exc)
            raise
        elapsed = _monotonic() - started
        after(_context(OperationContext, (operation, backend, url, vm_id, given, elapsed)), result, None)
        return result

    def _vm(self, info: VMInfo) -> VM:
        return VM(self, info)

    def start_many(self, vms: Sequence[VM | str]) -> dict[str, BaseException | None]:
        """Start several VMs at once; return each VM id's error, or ``None`` when it started.

        Backends with asynchronous tasks issue every start first and then wait for all.
        """
        ids = [vm.id if isinstance(vm, VM) else self.vms.get(vm).id for vm in vms]
        return self._call(
            "start_many",
            None,
            lambda: self._backend.start_many(ids),
            capability=Capability.START,
            params={"count": len(ids)},
        )


class VMCollection:
    """The VMs of a hypervisor."""

    def __init__(self, hypervisor: Hypervisor) -> None:
        self._hv = hypervisor

    def __iter__(self) -> Iterator[VM]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self.list_info())

    def __contains__(self, name_or_id: object) -> bool:
        if not isinstance(name_or_id, str):
            return False
        try:
            self.get(name_or_id)
        except VMNotFound:
            return False
        return True

    def list(self) -> list[VM]:
        """Every VM, each carrying the info read in the same inventory call."""
        return [self._hv._vm(info) for info in self.list_info()]

    def list_info(self) -> builtins.list[VMInfo]:
        """Every VM's :class:`VMInfo`, in a number of round trips independent of the VM count."""
        return self._hv._call("list_vms", None, self._hv.backend.list_vms)

    def list_summaries(self) -> builtins.list[VMSummary]:
        """Every VM's :class:`VMSummary` (state, size, guest OS, known IPs): the fastest inventory."""
        return self._hv._call("list_vm_summaries", None, self._hv.backend.list_vm_summaries)

    def get(self, name_or_id: str) -> VM:
        """The VM with this id, or else this exact name.

        :raises VMNotFound: nothing matches.
        :raises AmbiguousName: several VMs have that name (use the id).
        """
        if not isinstance(name_or_id, str) or not name_or_id:
            raise UsageError("a VM is addressed by a non-empty name or id string")
        backend = self._hv.backend
        try:
            return self._hv._vm(self._hv._call("get_vm", name_or_id, lambda: backend.get_vm(name_or_id)))
        except VMNotFound:
            pass
        matches = self._hv._call("find_vms", None, lambda: backend.find_vms_by_name(name_or_id))
        if not matches:
            raise VMNotFound(f"no VM has the name or id {name_or_id!r} on {self._hv.url}")
        if len(matches) > 1:
            raise AmbiguousName("VM", name_or_id, [m.id for m in matches])
        return self._hv._vm(matches[0])

    def find(
        self,
        *,
        name: str | None = None,
        state: PowerState | None = None,
        tag: str | None = None,
        guest_os: str | None = None,
        os_family: OSFamily | str | None = None,
    ) -> builtins.list[VM]:
        """VMs matching every filter given (``name`` accepts shell-style wildcards)."""
        from fnmatch import fnmatchcase

        from ._catalog import get_guest_os

        family = OSFamily(os_family) if os_family is not None else None
        result = []
        for info in self.list_info():
            if name is not None and not fnmatchcase(info.name, name):
                continue
            if state is not None and info.state is not PowerState(state):
                continue
            if tag is not None and tag not in info.tags:
                continue
            if guest_os is not None and info.guest_os != guest_os:
                continue
            if family is not None and (info.guest_os is None or get_guest_os(info.guest_os).family is not family):
                continue
            result.append(self._hv._vm(info))
        return result

    def create(self, spec: VMSpec | Mapping[str, Any], *, start: bool = False) -> VM:
        """Create a VM from *spec* (a :class:`VMSpec` or a mapping); optionally start it.

        :raises SpecError: a field is invalid; nothing was created.
        :raises AlreadyExists: a VM with that name exists.
        """
        spec = VMSpec.from_dict(spec) if not isinstance(spec, VMSpec) else spec
        backend = self._hv.backend
        self._hv._require(Capability.CREATE, "create")
        if self._hv._call("find_vms", None, lambda: backend.find_vms_by_name(spec.name)):
            raise AlreadyExists(f"a VM named {spec.name!r} already exists on {self._hv.url}")
        info = self._hv._call(
            "create", None, lambda: backend.create_vm(spec), capability=Capability.CREATE, params={"name": spec.name}
        )
        vm = self._hv._vm(info)
        if start:
            vm.start()
        return vm


class VM:
    """One virtual machine. Methods act on the hypervisor at once; :meth:`info` reads it fresh."""

    def __init__(self, hypervisor: Hypervisor, info: VMInfo) -> None:
        self._hv = hypervisor
        self._info = info
        self.id: str = info.id
        """The backend's stable id (libvirt UUID, vSphere instance UUID / MoRef, VirtualBox machine id)."""
        self.snapshots = SnapshotCollection(self)
        """This VM's snapshot tree."""
        self.guest = Guest(self)
        """Operations inside the guest OS, through its agent."""

    def __repr__(self) -> str:
        return f"<VM {self._info.name!r} id={self.id} backend={self._hv.backend_name}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VM) and other.id == self.id and other._hv is self._hv

    def __hash__(self) -> int:
        return hash((id(self._hv), self.id))

    @property
    def hypervisor(self) -> Hypervisor:
        """The connection this VM belongs to."""
        return self._hv

    @property
    def name(self) -> str:
        """The name, as of the last read (:meth:`info` refreshes it)."""
        return self._info.name

    @property
    def state(self) -> PowerState:
        """The current power state (read fresh)."""
        return self._hv._call("get_state", self.id, self._hv._backend.get_state, self.id)[0]

    @property
    def native(self) -> Any:
        """The SDK's VM object: a documented, non-portable escape hatch."""
        return self._hv.backend.native_vm(self.id)

    @property
    def cached_info(self) -> VMInfo:
        """The :class:`VMInfo` this object last read (no round trip; may be stale)."""
        return self._info

    def info(self) -> VMInfo:
        """Read the VM's configuration and state now."""
        self._info = self._call("get_vm", lambda: self._hv.backend.get_vm(self.id))
        return self._info

    def _call(
        self,
        operation: str,
        func: Callable[[], T],
        capability: Capability | None = None,
        **params: Any,
    ) -> T:
        return self._hv._call(operation, self.id, func, capability=capability, params=params)

    # -- power ----------------------------------------------------------------------

    def start(self) -> None:
        """Power on; a suspended VM resumes from its saved state."""
        self._hv._call("start", self.id, self._hv._backend.start, self.id, capability=_START)

    def shutdown(self, timeout: float = 60, force: bool = False) -> ShutdownResult:
        """Shut down gracefully (ACPI / agent / tools) and wait until stopped.

        :param timeout: seconds to wait for the guest to stop.
        :param force: power off when the guest does not stop in time, instead of raising.
        :returns: which stage worked (``graceful``, ``forced`` or ``already_stopped``).
        :raises OperationTimeout: the guest did not stop and *force* is false.
        :raises GuestAgentUnavailable: the backend needs a guest agent for a graceful shutdown, none
            answers, and *force* is false (with *force*, the VM is powered off at once).
        """
        backend = self._hv.backend
        self._hv._require(Capability.SHUTDOWN, "shutdown")
        started = time.monotonic()
        state = self.state
        if state is PowerState.STOPPED:
            return ShutdownResult("already_stopped")
        if state is not PowerState.RUNNING and force:
            self.power_off()
            return ShutdownResult("forced", elapsed_s=time.monotonic() - started)
        try:
            method = self._call(
                "shutdown", lambda: backend.request_shutdown(self.id), Capability.SHUTDOWN, timeout=timeout
            )
        except GuestAgentUnavailable:
            # Graceful needs the guest's cooperation (e.g. VMware Tools); none is there.
            if not force:
                raise
            log.info("VM %s cannot be shut down gracefully (no guest agent); powering off", self.id)
            self.power_off()
            return ShutdownResult("forced", "none", time.monotonic() - started)
        try:
            self.wait_for_state(PowerState.STOPPED, timeout=timeout)
        except OperationTimeout:
            if not force:
                raise
            log.info("VM %s did not stop within %ss; powering off", self.id, timeout)
            try:
                self.power_off()
            except InvalidState:
                if self.state is not PowerState.STOPPED:
                    raise
                return ShutdownResult("graceful", method, time.monotonic() - started)
            return ShutdownResult("forced", method, time.monotonic() - started)
        return ShutdownResult("graceful", method, time.monotonic() - started)

    def power_off(self) -> None:
        """Cut the power at once (no guest cooperation)."""
        self._hv._call("power_off", self.id, self._hv._backend.power_off, self.id, capability=_POWER_OFF)

    def reboot(self) -> None:
        """Ask the guest to restart (graceful)."""
        self._call("reboot", lambda: self._hv.backend.reboot(self.id), Capability.REBOOT)

    def reset(self) -> None:
        """Hard reset, like pressing the reset button."""
        self._call("reset", lambda: self._hv.backend.reset(self.id), Capability.RESET)

    def pause(self) -> None:
        """Freeze execution; memory stays in RAM."""
        self._call("pause", lambda: self._hv.backend.pause(self.id), Capability.PAUSE)

    def resume(self) -> None:
        """Continue a paused VM."""
        self._call("resume", lambda: self._hv.backend.resume(self.id), Capability.PAUSE)

    def suspend(self) -> None:
        """Save memory to disk and stop the VM process; :meth:`start` restores it."""
        self._call("suspend", lambda: self._hv.backend.suspend(self.id), Capability.SUSPEND)

    def set_autostart(self, enabled: bool = True) -> None:
        """Start the VM automatically when the host boots."""
        self._call("autostart", lambda: self._hv.backend.set_autostart(self.id, enabled), Capability.AUTOSTART)

    def wait_for_state(self, state: PowerState | str, timeout: float = 60) -> None:
        """Wait until the VM reaches *state*.

        :raises OperationTimeout: it did not in time.
        """
        target = PowerState(state)
        backend = self._hv.backend
        wait_until(
            lambda: backend.get_state(self.id)[0] is target,
            timeout=timeout,
            what=f"VM {self.name!r} to be {target.value}",
            clock=backend.clock,
        )

    # -- lifecycle -------------------------------------------------------------------

    def delete(self, disks: bool = True) -> None:
        """Remove the VM (it must be stopped), its snapshots and, with *disks*, its disks."""
        self._call(
            "delete",
            lambda: self._hv.backend.delete_vm(self.id, delete_disks=disks),
            Capability.DELETE,
            disks=disks,
        )

    def unregister(self) -> None:
        """Forget the VM but keep its disks on storage."""
        self._call("unregister", lambda: self._hv.backend.unregister_vm(self.id), Capability.UNREGISTER)

    def clone(self, name: str, linked: bool = False, snapshot: Snapshot | str | None = None) -> VM:
        """Copy this VM as *name*, with a new id and new MAC addresses.

        :param linked: share the source's disks copy-on-write instead of copying them.
        :param snapshot: clone the state of this snapshot (required by some backends for linked clones).
        """
        try:
            _check_name(name, "name")
        except SpecError as err:
            raise err from None
        capability = Capability.LINKED_CLONE if linked else Capability.CLONE
        self._hv._require(capability, "linked clone" if linked else "clone")
        backend = self._hv.backend
        if backend.find_vms_by_name(name):
            raise AlreadyExists(f"a VM named {name!r} already exists on {self._hv.url}")
        snapshot_id = None
        if snapshot is not None:
            snapshot_id = snapshot.id if isinstance(snapshot, Snapshot) else self.snapshots.get(snapshot).id
        info = self._call(
            "clone",
            lambda: backend.clone_vm(self.id, name, linked=linked, snapshot_id=snapshot_id),
            capability,
            name=name,
            linked=linked,
        )
        return self._hv._vm(info)

    # -- configuration ---------------------------------------------------------------

    def reconfigure(
        self,
        *,
        cpus: int | None = None,
        memory: int | str | None = None,
        description: str | None = None,
        tags: Sequence[str] | None = None,
        dry_run: bool = False,
        defer: bool = False,
    ) -> ReconfigurePlan:
        """Change CPUs, memory, description or tags; return the plan saying how each applies.

        Changes a running VM can take are applied live. Those that need a power-off raise
        :class:`~virtabstract.errors.InvalidState` (nothing is changed), unless *defer* is true,
        in which case they are saved for the next power cycle on backends that can do so.

        :param dry_run: only return the plan.
        """
        wanted = self._requested_changes(cpus, memory, description, tags)
        backend = self._hv.backend
        self._hv._require(Capability.RECONFIGURE, "reconfigure")
        current = self.info()
        changes = {k: v for k, v in wanted.items() if getattr(current, k) != v}
        planned = self._call("plan_reconfigure", lambda: backend.plan_reconfigure(self.id, changes)) if changes else []
        blocked = [c for c in planned if c.mode == "needs_power_off"]
        if blocked and defer and not dry_run:
            self._hv._require(Capability.RECONFIGURE_DEFERRED, "deferred reconfigure")
            planned = [replace(c, mode="deferred") if c.mode == "needs_power_off" else c for c in planned]
        elif blocked and not dry_run:
            names = ", ".join(c.field for c in blocked)
            raise InvalidState(
                f"cannot change {names} of VM {current.name!r} while it is {current.state.value}: "
                "power it off first, or pass defer=True to apply at the next power cycle",
                state=current.state,
                operation="reconfigure",
            )
        plan = ReconfigurePlan(self.id, tuple(planned), applied=False)
        if dry_run or not planned:
            return plan
        self._call("reconfigure", lambda: backend.apply_reconfigure(self.id, planned), **changes)
        return replace(plan, applied=True)

    @staticmethod
    def _requested_changes(
        cpus: int | None, memory: int | str | None, description: str | None, tags: Sequence[str] | None
    ) -> dict[str, Any]:
        """Validate the requested fields through VMSpec's own rules (one set of rules)."""
        probe: dict[str, Any] = {"name": "probe"}
        if cpus is not None:
            probe["cpus"] = cpus
        if memory is not None:
            probe["memory"] = memory
        if description is not None:
            probe["description"] = description
        if tags is not None:
            probe["tags"] = tags
        checked = VMSpec.from_dict(probe)
        out: dict[str, Any] = {}
        if cpus is not None:
            out["cpus"] = checked.cpus
        if memory is not None:
            out["memory_mib"] = checked.memory_mib
        if description is not None:
            out["description"] = checked.description
        if tags is not None:
            out["tags"] = tuple(checked.tags)
        assert set(out) <= set(RECONFIGURABLE_FIELDS)
        return out

    def resources(self) -> ResourceAllocation:
        """The VM's CPU and memory entitlements."""
        return self._call("get_resources", lambda: self._hv.backend.get_resources(self.id), Capability.RESOURCES)

    def set_resources(
        self,
        *,
        cpu_limit_mhz: int | None = _UNSET,
        cpu_reservation_mhz: int | None = _UNSET,
        cpu_shares: int | None = _UNSET,
        memory_limit: int | str | None = _UNSET,
        memory_reservation: int | str | None = _UNSET,
        memory_shares: int | None = _UNSET,
        disk_weight: int | None = _UNSET,
    ) -> ResourceAllocation:
        """Set CPU/memory entitlements; fields not given keep their value, ``None`` clears one.

        Memory values accept sizes (``"1GiB"``); the result is what the hypervisor now reports.
        """
        current = self.resources()
        updates: dict[str, Any] = {}
        for key, value in (
            ("cpu_limit_mhz", cpu_limit_mhz),
            ("cpu_reservation_mhz", cpu_reservation_mhz),
            ("cpu_shares", cpu_shares),
            ("memory_shares", memory_shares),
            ("disk_weight", disk_weight),
        ):
            if value is not _UNSET:
                if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                    raise SpecError(key, "a non-negative integer or None", value)
                updates[key] = value
        for key, size in (("memory_limit_mib", memory_limit), ("memory_reservation_mib", memory_reservation)):
            if size is not _UNSET:
                try:
                    updates[key] = None if size is None else parse_size(size, what=key)
                except ValueError as exc:
                    raise SpecError(key.removesuffix("_mib"), "a size such as '1GiB' or an int of MiB", size) from exc
        wanted = replace(current, **updates)
        return self._call(
            "set_resources",
            lambda: self._hv.backend.set_resources(self.id, wanted),
            Capability.RESOURCES,
            **updates,
        )

    def add_disk(self, disk: Disk | Mapping[str, Any]) -> DiskInfo:
        """Create and attach a disk."""
        spec = Disk.from_dict(disk, path="disk")
        return self._call("add_disk", lambda: self._hv.backend.add_disk(self.id, spec), Capability.DISKS)

    def remove_disk(self, disk_id: str, delete: bool = True) -> None:
        """Detach a disk; with *delete*, remove its storage as well."""
        self._call(
            "remove_disk",
            lambda: self._hv.backend.remove_disk(self.id, disk_id, delete=delete),
            Capability.DISKS,
            disk_id=disk_id,
        )

    def resize_disk(self, disk_id: str, size: int | str) -> DiskInfo:
        """Grow a disk to *size*; shrinking is refused."""
        try:
            size_mib = parse_size(size, what="size")
        except ValueError as exc:
            raise SpecError("size", "a size such as '40GiB' or an int of MiB", size) from exc
        current = next((d for d in self.info().disks if d.id == disk_id), None)
        if current is not None and size_mib < current.size_mib:
            raise SpecError("size", f"at least the current {current.size_mib} MiB (disks only grow)", size)
        return self._call(
            "resize_disk",
            lambda: self._hv.backend.resize_disk(self.id, disk_id, size_mib),
            Capability.DISK_RESIZE,
            disk_id=disk_id,
            size_mib=size_mib,
        )

    def add_nic(self, nic: Nic | Mapping[str, Any]) -> NicInfo:
        """Attach a network interface."""
        spec = Nic.from_dict(nic, path="nic")
        return self._call("add_nic", lambda: self._hv.backend.add_nic(self.id, spec), Capability.NICS)

    def remove_nic(self, nic_id: str) -> None:
        """Detach a network interface (by id or MAC address)."""
        self._call("remove_nic", lambda: self._hv.backend.remove_nic(self.id, nic_id), Capability.NICS, nic_id=nic_id)

    def update_nic(self, nic_id: str, *, network: str | None = None, connected: bool | None = None) -> NicInfo:
        """Move a NIC to another network and/or plug or unplug its link."""
        if network is not None:
            Nic(network=network)
        return self._call(
            "update_nic",
            lambda: self._hv.backend.update_nic(self.id, nic_id, network=network, connected=connected),
            Capability.NICS,
            nic_id=nic_id,
        )

    def console(self) -> ConsoleInfo:
        """How to reach the console (protocol, host, port, password as a Secret)."""
        return self._call("console", lambda: self._hv.backend.console(self.id), Capability.CONSOLE)

    def wait_for_ip(
        self,
        timeout: float = 120,
        *,
        version: int | None = 4,
        include_link_local: bool = False,
    ) -> str:
        """Wait until the guest reports a usable IP address and return it.

        Loopback addresses never count; link-local ones only with *include_link_local*.
        """
        return self.guest.wait_for_ip(timeout, version=version, include_link_local=include_link_local)


class SnapshotCollection:
    """The snapshot tree of one VM.

    Ids are stable for a snapshot's lifetime. Names need not be unique on every
    hypervisor; creating a snapshot whose name the VM already has raises
    :class:`~virtabstract.errors.AlreadyExists` unless ``allow_duplicate=True``,
    and looking up a duplicated name raises :class:`~virtabstract.errors.AmbiguousName`.
    """

    def __init__(self, vm: VM) -> None:
        self._vm = vm

    def _infos(self) -> builtins.list[SnapshotInfo]:
        backend = self._vm.hypervisor.backend
        return self._vm._call("list_snapshots", lambda: backend.list_snapshots(self._vm.id), Capability.SNAPSHOTS)

    def list(self) -> list[Snapshot]:
        """Every snapshot, parents before children."""
        return [Snapshot(self, info) for info in self._infos()]

    def __iter__(self) -> Iterator[Snapshot]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._infos())

    def tree(self) -> builtins.list[Snapshot]:
        """The root snapshots; walk ``.children`` for the rest."""
        return [s for s in self.list() if s.parent_id is None]

    @property
    def current(self) -> Snapshot | None:
        """The snapshot the VM's state derives from, or ``None``."""
        return next((s for s in self.list() if s.info.is_current), None)

    def get(self, name_or_id: str) -> Snapshot:
        """The snapshot with this id, or else this name.

        :raises SnapshotNotFound: nothing matches.
        :raises AmbiguousName: several snapshots have that name.
        """
        infos = self._infos()
        for info in infos:
            if info.id == name_or_id:
                return Snapshot(self, info)
        matches = [info for info in infos if info.name == name_or_id]
        if not matches:
            raise SnapshotNotFound(f"VM {self._vm.name!r} has no snapshot with the name or id {name_or_id!r}")
        if len(matches) > 1:
            raise AmbiguousName("snapshot", name_or_id, [m.id for m in matches])
        return Snapshot(self, matches[0])

    def create(
        self,
        name: str,
        description: str = "",
        memory: bool = False,
        *,
        quiesce: bool = False,
        allow_duplicate: bool = False,
    ) -> Snapshot:
        """Take a snapshot.

        :param memory: include the running VM's memory, so reverting resumes it running.
        :param quiesce: ask the guest agent to flush file systems first.
        :param allow_duplicate: permit a name the VM already uses.
        """
        _check_name(name, "name", 255)
        if description != "":  # the usual empty one needs no check; None, 0 or [] are refused
            _check_text(description, "description", 8192)
        vm = self._vm
        hv = vm._hv
        if hv._closed or _SNAPSHOTS not in hv._capabilities:
            hv._require(_SNAPSHOTS, "snapshot create")
        if memory:
            hv._require(Capability.SNAPSHOT_MEMORY, "snapshot with memory")
        backend = hv._backend
        if not (allow_duplicate or backend.unique_snapshot_names) and backend.snapshot_name_exists(vm.id, name):
            raise AlreadyExists(f"VM {vm.name!r} already has a snapshot named {name!r}")
        params = {"name": name, "memory": memory}
        return hv._call("snapshot_create", vm.id, self._take, name, description, memory, quiesce, params=params)

    def _take(self, name: str, description: str, memory: bool, quiesce: bool) -> Snapshot:
        """The backend's create, as the handle the caller (and the after-operation hook) gets."""
        vm = self._vm
        made = vm._hv._backend.create_snapshot(vm.id, name, description=description, memory=memory, quiesce=quiesce)
        if isinstance(made, SnapshotInfo):
            return Snapshot(self, made)
        return Snapshot(self, None, made, name)

    def _read(self, snapshot_id: str) -> SnapshotInfo:
        """One snapshot's details, read now (for a :class:`Snapshot` created without them)."""
        backend = self._vm.hypervisor.backend
        return self._vm._call(
            "get_snapshot",
            lambda: backend.get_snapshot(self._vm.id, snapshot_id),
            Capability.SNAPSHOTS,
            snapshot_id=snapshot_id,
        )


class Snapshot:
    """One snapshot. ``parent`` and ``children`` are read fresh from the tree.

    :attr:`id`, :attr:`name` and :attr:`vm_id` never need a round trip. The rest comes from
    :attr:`info`, the :class:`SnapshotInfo` read with this object; on backends whose hypervisor
    answers a create with the new snapshot's id alone (libvirt), :meth:`SnapshotCollection.create`
    returns without reading it and :attr:`info` is read on first access (reading it then raises
    :class:`~virtabstract.errors.SnapshotNotFound` if the snapshot was deleted meanwhile).
    """

    __slots__ = ("_collection", "_id", "_info", "_name")

    def __init__(
        self,
        collection: SnapshotCollection,
        info: SnapshotInfo | None,
        snapshot_id: str = "",
        name: str = "",
    ) -> None:
        self._collection = collection
        self._info = info
        self._id = snapshot_id if info is None else info.id
        self._name = name if info is None else info.name

    def __repr__(self) -> str:
        return f"<Snapshot {self._name!r} id={self._id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Snapshot) and other._id == self._id and other.vm_id == self.vm_id

    def __hash__(self) -> int:
        return hash((self.vm_id, self._id))

    @property
    def info(self) -> SnapshotInfo:
        """The :class:`SnapshotInfo` read with this object (read now, once, if the create did not return it)."""
        info = self._info
        if info is None:
            info = self._info = self._collection._read(self._id)
        return info

    @property
    def id(self) -> str:
        """Stable id."""
        return self._id

    @property
    def name(self) -> str:
        """Name."""
        return self._name

    @property
    def description(self) -> str:
        """Description."""
        return self.info.description

    @property
    def vm_id(self) -> str:
        """The VM's id."""
        return self._collection._vm.id

    @property
    def parent_id(self) -> str | None:
        """The parent snapshot's id, or ``None`` for a root."""
        return self.info.parent_id

    @property
    def parent(self) -> Snapshot | None:
        """The parent snapshot, or ``None``."""
        parent_id = self.info.parent_id
        if parent_id is None:
            return None
        return self._collection.get(parent_id)

    @property
    def children(self) -> list[Snapshot]:
        """The direct children."""
        return [s for s in self._collection.list() if s.parent_id == self._id]

    def revert(self) -> None:
        """Return the VM to this snapshot."""
        vm = self._collection._vm
        backend = vm.hypervisor.backend
        vm._call(
            "snapshot_revert",
            lambda: backend.revert_snapshot(vm.id, self._id),
            Capability.SNAPSHOTS,
            snapshot_id=self._id,
        )

    def delete(self, children: bool = False) -> None:
        """Delete this snapshot (its data merges into the children), or the whole subtree with *children*."""
        vm = self._collection._vm
        backend = vm.hypervisor.backend
        vm._call(
            "snapshot_delete",
            lambda: backend.delete_snapshot(vm.id, self._id, children=children),
            Capability.SNAPSHOTS,
            snapshot_id=self._id,
            children=children,
        )


class Guest:
    """Operations inside the guest OS through its agent (qemu-guest-agent, VMware Tools, Guest Additions)."""

    def __init__(self, vm: VM) -> None:
        self._vm = vm

    def _backend(self) -> Backend:
        return self._vm.hypervisor.backend

    def info(self) -> GuestInfo:
        """What the agent reports (OS, hostname, agent version).

        :raises GuestAgentUnavailable: no agent answers.
        """
        return self._vm._call("guest_info", lambda: self._backend().guest_info(self._vm.id), Capability.GUEST_INFO)

    def wait_ready(self, timeout: float = 120) -> GuestInfo:
        """Wait until the guest agent answers; return its report.

        :raises OperationTimeout: it did not answer in time.
        """
        self._vm.hypervisor._require(Capability.GUEST_INFO, "guest wait_ready")
        backend = self._backend()

        def probe() -> GuestInfo | None:
            try:
                info = backend.guest_info(self._vm.id)
            except GuestAgentUnavailable:
                return None
            return info if info.ready else None

        # A probe is one cheap agent call (refused at once while no agent listens), and a guest becomes ready
        # once: with the default back-off (up to 2 s between probes) a boot of a few seconds was noticed ~1 s
        # late on average; 0.25 s bounds that to ~0.12 s, about what `virsh` polling every 0.1 s gets.
        what = f"the guest agent of {self._vm.name!r}"
        return wait_until(probe, timeout=timeout, what=what, clock=backend.clock, max_interval=_READY_PROBE_MAX_S)

    def ip_addresses(
        self,
        *,
        version: int | None = None,
        include_loopback: bool = False,
        include_link_local: bool = True,
    ) -> list[IPAddressInfo]:
        """The guest's IP addresses, best source first, filtered as asked."""
        addresses = self._vm._call(
            "guest_ip_addresses",
            lambda: self._backend().guest_ip_addresses(self._vm.id),
            Capability.GUEST_NETWORK,
        )
        return [
            a
            for a in addresses
            if (version is None or a.version == version)
            and (include_loopback or not a.is_loopback)
            and (include_link_local or not a.is_link_local)
        ]

    def wait_for_ip(self, timeout: float = 120, *, version: int | None = 4, include_link_local: bool = False) -> str:
        """Wait for a non-loopback (and, by default, non-link-local) address and return it."""
        self._vm.hypervisor._require(Capability.GUEST_NETWORK, "wait_for_ip")

        def probe() -> str | None:
            try:
                found = self.ip_addresses(version=version, include_link_local=include_link_local)
            except GuestAgentUnavailable:
                return None
            return found[0].address if found else None

        clock = self._backend().clock
        return wait_until(probe, timeout=timeout, what=f"an IP address of {self._vm.name!r}", clock=clock)

    def exec(
        self,
        argv: Sequence[str],
        timeout: float = 30,
        *,
        stdin: bytes | str | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = False,
    ) -> ExecResult:
        """Run a program in the guest (no shell: pass ``["sh", "-c", "…"]`` for one).

        :param argv: the program and its arguments.
        :param timeout: seconds before :class:`~virtabstract.errors.OperationTimeout`.
        :param stdin: data for standard input.
        :param env: variables added to (or overriding) the environment the guest agent gives the program.
        :param check: raise :class:`~virtabstract.errors.GuestCommandFailed` on a non-zero exit.
        """
        if isinstance(argv, (str, bytes)) or not argv or not all(isinstance(a, str) for a in argv):
            raise UsageError("argv must be a non-empty list of strings, e.g. ['uname', '-a'] (no shell strings)")
        if any("\x00" in a for a in argv):
            raise UsageError("argv must not contain NUL characters")
        if timeout <= 0:
            raise UsageError("timeout must be positive")
        data = stdin.encode() if isinstance(stdin, str) else stdin
        result = self._vm._call(
            "guest_exec",
            lambda: self._backend().guest_exec(
                self._vm.id, list(argv), stdin=data, timeout=timeout, env=dict(env or {})
            ),
            Capability.GUEST_EXEC,
            argv=list(argv),
        )
        if not result.argv:
            result = replace(result, argv=tuple(argv))
        return result.check() if check else result

    def read_file(self, path: str) -> bytes:
        """Read a whole file from the guest."""
        _check_guest_path(path)
        return self._vm._call(
            "guest_read_file",
            lambda: self._backend().guest_read_file(self._vm.id, path),
            Capability.GUEST_FILES,
            path=path,
        )

    def write_file(self, path: str, data: bytes | str) -> None:
        """Create or replace a file in the guest (``str`` is written as UTF-8)."""
        _check_guest_path(path)
        payload = data.encode() if isinstance(data, str) else bytes(data)
        self._vm._call(
            "guest_write_file",
            lambda: self._backend().guest_write_file(self._vm.id, path, payload),
            Capability.GUEST_FILES,
            path=path,
            size=len(payload),
        )


def _check_guest_path(path: object) -> None:
    if not isinstance(path, str) or not path or "\x00" in path or len(path) > 4096:
        raise UsageError("a guest path must be a non-empty string without NUL characters")
