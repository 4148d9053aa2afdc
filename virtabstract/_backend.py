"""The backend contract: the ABC every hypervisor backend subclasses.

A backend is constructed by :func:`virtabstract.connect` with the parsed URL,
the resolved credentials and the connect options. It talks to one hypervisor
with its SDK and speaks the core's vocabulary: VM ids, specs in, frozen info
records out, errors from :mod:`virtabstract.errors`.

What the core owns (so backends must not re-implement it): spec validation,
name→id resolution and the duplicate-name policy, the shutdown policy
(graceful → wait → optional power-off), the reconfigure policy (live / deferred
/ refused), waits and timeouts (:func:`virtabstract.wait_until`), hooks, and the
capability check before each call.

Abstract methods are the minimum every backend has. Every other operation
raises :class:`~virtabstract.errors.UnsupportedOperation` by default, and a
backend that overrides it declares the matching :class:`Capability`; a
contract test checks that declarations and behaviour agree.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

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
    PowerState,
    ReconfigureChange,
    ResourceAllocation,
    Secret,
    SnapshotInfo,
    StorageInfo,
    VMInfo,
    VMSummary,
)
from ._spec import Disk, Nic, VMSpec
from ._url import URL
from ._wait import Clock, SystemClock
from .errors import InvalidState, SnapshotNotFound, UnsupportedOperation

__all__ = ["LEGAL_TRANSITIONS", "RECONFIGURABLE_FIELDS", "Backend", "Credentials", "check_transition"]

RECONFIGURABLE_FIELDS = ("cpus", "memory_mib", "description", "tags")
"""Fields :meth:`Backend.plan_reconfigure` receives (sizes already parsed to MiB)."""

LEGAL_TRANSITIONS: Mapping[str, frozenset[PowerState]] = {
    "start": frozenset({PowerState.STOPPED, PowerState.SUSPENDED, PowerState.CRASHED}),
    "shutdown": frozenset({PowerState.RUNNING}),
    "power_off": frozenset({PowerState.RUNNING, PowerState.PAUSED, PowerState.STOPPING, PowerState.CRASHED}),
    "reboot": frozenset({PowerState.RUNNING}),
    "reset": frozenset({PowerState.RUNNING}),
    "pause": frozenset({PowerState.RUNNING}),
    "resume": frozenset({PowerState.PAUSED}),
    "suspend": frozenset({PowerState.RUNNING, PowerState.PAUSED}),
}
"""The states from which each power verb is legal, the same for every backend."""


def check_transition(operation: str, state: PowerState, vm_name: str = "") -> None:
    """Raise :class:`~virtabstract.errors.InvalidState` when *operation* is illegal in *state*.

    Backends whose SDK reports illegal transitions vaguely call this to produce
    the same message everywhere.
    """
    allowed = LEGAL_TRANSITIONS.get(operation)
    if allowed is not None and state not in allowed:
        who = f"VM {vm_name!r}" if vm_name else "the VM"
        wanted = " or ".join(sorted(s.value for s in allowed))
        raise InvalidState(
            f"cannot {operation.replace('_', ' ')} {who}: it is {state.value} (needs {wanted})",
            state=state,
            operation=operation,
        )


def snapshot_deletion_order(snapshots: Sequence[SnapshotInfo], snapshot_id: str, *, children: bool) -> list[str]:
    """Ids to delete for ``delete(children=...)``: descendants first (deepest first), the target last.

    For backends whose hypervisor deletes one snapshot at a time.

    :raises SnapshotNotFound: *snapshot_id* is not among *snapshots* (compared case-insensitively).
    """
    by_id = {s.id.lower(): s for s in snapshots}
    target = by_id.get(snapshot_id.lower())
    if target is None:
        raise SnapshotNotFound(f"VM has no snapshot with id {snapshot_id!r}")
    order: list[str] = []

    def descend(snap_id: str) -> None:
        for child in by_id[snap_id.lower()].children_ids:
            descend(child)
            order.append(child)

    if children:
        descend(target.id)
    return [*order, target.id]


@dataclass(frozen=True)
class Credentials:
    """User name and password resolved from the URL, options or environment."""

    username: str | None = None
    password: Secret | None = None

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password={'***' if self.password else None})"


_SECRET_OPTION = re.compile(r"pass(?:word|wd|phrase)?$|secret|token|ticket|credential", re.IGNORECASE)


class _ConnectOptions(dict[str, Any]):
    """The connect options as given, but ``repr()`` masks secret-looking ones (``guest_password`` …).

    Backends read them like any dict; a user printing ``hv.backend.options`` (or ``vars(hv.backend)``)
    while debugging sees ``'***'`` instead of the value.
    """

    def __repr__(self) -> str:
        return repr({k: "***" if v is not None and _SECRET_OPTION.search(str(k)) else v for k, v in self.items()})


class Backend(ABC):
    """Base class of every hypervisor backend.

    Subclasses set :attr:`name`, declare :attr:`capabilities`, accept the
    options in :attr:`accepted_options`, and implement the operations they
    support. Methods take VM ids (the backend's stable identifier) and return
    info records; they raise errors from :mod:`virtabstract.errors` only.
    """

    name: ClassVar[str] = ""
    """Short backend name, e.g. ``"kvm"``: used in errors and the support matrix."""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    """What this backend can do. A backend may narrow it per connection via :meth:`connection_capabilities`."""
    accepted_options: ClassVar[Mapping[str, str]] = {}
    """Names of the keyword options :func:`connect` accepts for this backend, with a description."""
    install_hint: ClassVar[str] = ""
    """What to install when :meth:`import_sdk` fails, e.g. ``"pip install 'virtabstract[kvm]'"``."""
    unique_snapshot_names: ClassVar[bool] = False
    """True when :meth:`create_snapshot` itself refuses, atomically, a name the VM already has (raising
    :class:`~virtabstract.errors.AlreadyExists`), as libvirt does: the core then skips its own check,
    :meth:`snapshot_name_exists`, which costs a call (a round trip on most backends) per create."""

    @classmethod
    def variants(cls) -> Mapping[str, type[Backend]]:
        """The classes this backend constructs, by label, when it has several (e.g. one per transport).

        A backend whose constructor picks a subclass by URL (VirtualBox: VBoxManage or the API)
        returns each, so the support matrix shows what every variant declares. The default is
        the class itself under an empty label.
        """
        return {"": cls}

    def __init__(self, url: URL, credentials: Credentials, options: Mapping[str, Any]) -> None:
        self.url = url
        self.credentials = credentials
        self.options: dict[str, Any] = _ConnectOptions(options)
        """The keyword options given to :func:`~virtabstract.connect` (secret ones masked in ``repr``)."""
        self.clock: Clock = SystemClock()

    # -- connection -----------------------------------------------------------------

    @classmethod
    def import_sdk(cls) -> None:
        """Import the SDK the backend needs; raise ImportError when it is missing.

        Called by :func:`connect` before construction, never at import time.
        """
        return None

    def open(self) -> None:
        """Open the connection (log in). Called once, right after construction."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Close the connection and release resources; must be idempotent."""

    def connection_capabilities(self) -> frozenset[Capability]:
        """The capabilities of this connection (defaults to the class's declaration)."""
        return self.capabilities

    def unsupported_reason(self, capability: Capability) -> str:
        """Why this connection lacks *capability*, for the UnsupportedOperation message (``""``: no reason)."""
        return ""

    @property
    def native(self) -> Any:
        """The SDK's connection object (non-portable escape hatch)."""
        return None

    def native_vm(self, vm_id: str) -> Any:
        """The SDK's object for a VM (``virDomain``, ``vim.VirtualMachine``, ``IMachine``)."""
        return None

    # -- host and inventory ---------------------------------------------------------

    @abstractmethod
    def host_info(self) -> HostInfo:
        """Describe the host and hypervisor."""

    @abstractmethod
    def list_vms(self) -> list[VMInfo]:
        """Every VM, in a number of round trips that does not grow with the VM count."""

    def list_vm_summaries(self) -> list[VMSummary]:
        """Every VM's :class:`VMSummary`; override with the backend's cheapest bulk call."""
        return [VMSummary.from_info(info) for info in self.list_vms()]

    @abstractmethod
    def get_vm(self, vm_id: str) -> VMInfo:
        """One VM by id; raise :class:`~virtabstract.errors.VMNotFound` if absent."""

    def find_vms_by_name(self, name: str) -> list[VMInfo]:
        """VMs whose name is exactly *name* (backends override with an indexed lookup)."""
        return [vm for vm in self.list_vms() if vm.name == name]

    def get_state(self, vm_id: str) -> tuple[PowerState, str]:
        """The normalised and native state of one VM (override with a cheaper call)."""
        info = self.get_vm(vm_id)
        return info.state, info.native_state

    def list_networks(self) -> list[NetworkInfo]:
        """Networks VMs can attach to (``Capability.NETWORKS``)."""
        self.unsupported("list_networks")

    def list_storage(self) -> list[StorageInfo]:
        """Storage pools or datastores (``Capability.STORAGE``)."""
        self.unsupported("list_storage")

    # -- lifecycle ------------------------------------------------------------------

    def create_vm(self, spec: VMSpec) -> VMInfo:
        """Create (define) a stopped VM from a validated spec, rolling back on failure."""
        self.unsupported("create")

    def delete_vm(self, vm_id: str, *, delete_disks: bool) -> None:
        """Remove a stopped VM, and its disks when *delete_disks* (snapshots and nvram too)."""
        self.unsupported("delete")

    def unregister_vm(self, vm_id: str) -> None:
        """Forget a stopped VM but keep its disks on storage."""
        self.unsupported("unregister")

    def start(self, vm_id: str) -> None:
        """Power on (restoring a suspended state if there is one)."""
        self.unsupported("start")

    def request_shutdown(self, vm_id: str) -> str:
        """Ask the guest to shut down and return at once; return the method (``"acpi"``, ``"agent"``…).

        The core waits for ``STOPPED`` and escalates per the caller's policy.
        """
        self.unsupported("shutdown")

    def power_off(self, vm_id: str) -> None:
        """Cut the power (hard stop)."""
        self.unsupported("power_off")

    def reboot(self, vm_id: str) -> None:
        """Ask the guest to restart (graceful)."""
        self.unsupported("reboot")

    def reset(self, vm_id: str) -> None:
        """Hard reset, like the reset button."""
        self.unsupported("reset")

    def pause(self, vm_id: str) -> None:
        """Freeze execution, keeping memory in RAM."""
        self.unsupported("pause")

    def resume(self, vm_id: str) -> None:
        """Continue a paused VM."""
        self.unsupported("resume")

    def suspend(self, vm_id: str) -> None:
        """Save memory to disk and stop the VM process (``start`` restores it)."""
        self.unsupported("suspend")

    def set_autostart(self, vm_id: str, enabled: bool) -> None:
        """Start the VM when the host boots."""
        self.unsupported("autostart")

    def start_many(self, vm_ids: Sequence[str]) -> dict[str, BaseException | None]:
        """Start several VMs; return each id's error or ``None``.

        The default starts them one after another; backends with asynchronous
        tasks override it to issue every start first and then wait for all.
        """
        results: dict[str, BaseException | None] = {}
        for vm_id in vm_ids:
            try:
                self.start(vm_id)
                results[vm_id] = None
            except Exception as exc:  # noqa: BLE001 - reported per VM to the caller
                results[vm_id] = exc
        return results

    # -- configuration --------------------------------------------------------------

    def plan_reconfigure(self, vm_id: str, changes: Mapping[str, Any]) -> list[ReconfigureChange]:
        """Say how each changed field would apply now: ``offline``, ``live`` or ``needs_power_off``.

        *changes* holds only fields of :data:`RECONFIGURABLE_FIELDS` whose value differs.
        """
        self.unsupported("reconfigure")

    def apply_reconfigure(self, vm_id: str, changes: Sequence[ReconfigureChange]) -> None:
        """Apply planned changes; ``deferred`` ones go to the persistent config only."""
        self.unsupported("reconfigure")

    def get_resources(self, vm_id: str) -> ResourceAllocation:
        """Current CPU/memory entitlements."""
        self.unsupported("resources")

    def set_resources(self, vm_id: str, resources: ResourceAllocation) -> ResourceAllocation:
        """Replace the entitlements with *resources* (fields already merged by the core)."""
        self.unsupported("resources")

    def add_disk(self, vm_id: str, disk: Disk) -> DiskInfo:
        """Create and attach a disk (or attach an existing image)."""
        self.unsupported("add_disk")

    def remove_disk(self, vm_id: str, disk_id: str, *, delete: bool) -> None:
        """Detach a disk, deleting its storage when *delete*."""
        self.unsupported("remove_disk")

    def resize_disk(self, vm_id: str, disk_id: str, size_mib: int) -> DiskInfo:
        """Grow a disk to *size_mib* (shrinking is refused by the core)."""
        self.unsupported("resize_disk")

    def add_nic(self, vm_id: str, nic: Nic) -> NicInfo:
        """Attach a network interface."""
        self.unsupported("add_nic")

    def remove_nic(self, vm_id: str, nic_id: str) -> None:
        """Detach a network interface."""
        self.unsupported("remove_nic")

    def update_nic(self, vm_id: str, nic_id: str, *, network: str | None, connected: bool | None) -> NicInfo:
        """Move a NIC to another network and/or change its link state."""
        self.unsupported("update_nic")

    # -- snapshots and clones -------------------------------------------------------

    def list_snapshots(self, vm_id: str) -> list[SnapshotInfo]:
        """Every snapshot of the VM (the whole tree, parents before children)."""
        self.unsupported("snapshots")

    def snapshot_name_exists(self, vm_id: str, name: str) -> bool:
        """Whether the VM already has a snapshot named *name* (the core's duplicate check before create).

        The default lists the tree. Not called on a backend that declares :attr:`unique_snapshot_names`.
        """
        return any(s.name == name for s in self.list_snapshots(vm_id))

    def get_snapshot(self, vm_id: str, snapshot_id: str) -> SnapshotInfo:
        """One snapshot's details (the default reads the tree).

        :raises SnapshotNotFound: the VM has no snapshot with that id.
        """
        for info in self.list_snapshots(vm_id):
            if info.id == snapshot_id:
                return info
        raise SnapshotNotFound(f"VM {vm_id} has no snapshot with id {snapshot_id!r}")

    def create_snapshot(
        self, vm_id: str, name: str, *, description: str, memory: bool, quiesce: bool
    ) -> SnapshotInfo | str:
        """Take a snapshot; with *memory*, the running state is included.

        Return the new snapshot's :class:`SnapshotInfo`, or only its id when the hypervisor answers
        with the id alone and its details (parent, creation time, recorded state) would cost another
        round trip: the core's :class:`~virtabstract.Snapshot` then reads them with
        :meth:`get_snapshot` the first time they are asked for (libvirt does this).
        """
        self.unsupported("snapshot_create")

    def revert_snapshot(self, vm_id: str, snapshot_id: str) -> None:
        """Return the VM to the snapshot (its power state included when it has memory)."""
        self.unsupported("snapshot_revert")

    def delete_snapshot(self, vm_id: str, snapshot_id: str, *, children: bool) -> None:
        """Delete a snapshot (merging its data), and its descendants when *children*."""
        self.unsupported("snapshot_delete")

    def clone_vm(self, vm_id: str, name: str, *, linked: bool, snapshot_id: str | None) -> VMInfo:
        """Copy the VM under a new name with a new id and new MAC addresses."""
        self.unsupported("clone")

    # -- console and guest ------------------------------------------------------------

    def console(self, vm_id: str) -> ConsoleInfo:
        """How to reach the VM's console."""
        self.unsupported("console")

    def guest_info(self, vm_id: str) -> GuestInfo:
        """Ask the guest agent about the guest; raise GuestAgentUnavailable if it does not answer."""
        self.unsupported("guest_info")

    def guest_ip_addresses(self, vm_id: str) -> list[IPAddressInfo]:
        """Every IP address known for the guest, best source first."""
        self.unsupported("guest_ip_addresses")

    def guest_exec(
        self, vm_id: str, argv: Sequence[str], *, stdin: bytes | None, timeout: float, env: Mapping[str, str]
    ) -> ExecResult:
        """Run *argv* in the guest and return its exit code and output."""
        self.unsupported("guest_exec")

    def guest_read_file(self, vm_id: str, path: str) -> bytes:
        """Read a whole file from the guest."""
        self.unsupported("guest_read_file")

    def guest_write_file(self, vm_id: str, path: str, data: bytes) -> None:
        """Write (create or replace) a file in the guest."""
        self.unsupported("guest_write_file")

    # -- events -----------------------------------------------------------------------

    def subscribe_events(self, callback: Callable[[str, PowerState, str], None]) -> Callable[[], None]:
        """Call ``callback(vm_id, state, native_event)`` on lifecycle events; return an unsubscribe function."""
        self.unsupported("events")

    # -- helpers ------------------------------------------------------------------------

    def unsupported(self, operation: str, reason: str = "") -> NoReturn:
        """Raise :class:`~virtabstract.errors.UnsupportedOperation` for this backend."""
        raise UnsupportedOperation(self.name or type(self).__name__, operation, reason)
