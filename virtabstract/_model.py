"""The object model's value types: states, capabilities and frozen info records.

Info objects are what the library *reports*; specs (``_spec.py``) are what a
user *asks for*. Every info object is a frozen, typed dataclass: never a dict.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from .errors import GuestCommandFailed

__all__ = [
    "Capability",
    "ConsoleInfo",
    "DiskInfo",
    "ExecResult",
    "Firmware",
    "GuestInfo",
    "HostInfo",
    "IPAddressInfo",
    "NetworkInfo",
    "NicInfo",
    "OSFamily",
    "PowerState",
    "ReconfigureChange",
    "ReconfigurePlan",
    "ResourceAllocation",
    "Secret",
    "ShutdownResult",
    "SnapshotInfo",
    "StorageInfo",
    "VMInfo",
    "VMSummary",
    "to_dict",
]


class PowerState(enum.StrEnum):
    """The normalised power state of a VM, the same on every backend.

    The native state and its reason always travel beside it in
    :class:`VMInfo` (``native_state``), so nothing is lost in the mapping.
    Transient states (``STARTING``, ``STOPPING``, ``SAVING``, ``RESTORING``)
    are reported by backends that can observe them::

                    start()                  pause()
        STOPPED ─────────────▶ RUNNING ─────────────▶ PAUSED
           ▲   ◀─────────────    │  ▲   ◀─────────────   │
           │ shutdown()/power_off()  │   resume()          │ power_off()
           │                     │  │                     │
           │          suspend()  ▼  │ start()             │
           ├─────────────────  SUSPENDED  ◀──────────────┘ suspend()
           │   delete saved state    (state saved to disk)
           │
        CRASHED ── start() ──▶ RUNNING       UNKNOWN: the backend cannot tell

    ``reboot()`` and ``reset()`` keep a VM ``RUNNING``.
    """

    STOPPED = "stopped"
    """Powered off: no process, no memory. ``start()`` boots it."""
    STARTING = "starting"
    """Transient: powering on or being created."""
    RUNNING = "running"
    """The guest executes (including libvirt's *blocked*: waiting on a resource)."""
    PAUSED = "paused"
    """Execution frozen with memory kept in RAM; ``resume()`` continues it."""
    STOPPING = "stopping"
    """Transient: a graceful shutdown is in progress."""
    SAVING = "saving"
    """Transient: memory is being written to disk (suspend)."""
    SUSPENDED = "suspended"
    """Memory saved to disk, no process; ``start()`` restores it (``resume()`` is for PAUSED only)."""
    RESTORING = "restoring"
    """Transient: a saved state is being loaded."""
    CRASHED = "crashed"
    """The VM process or guest died abnormally."""
    UNKNOWN = "unknown"
    """The backend cannot tell (native state carries the detail)."""

    @property
    def is_active(self) -> bool:
        """True when a VM process exists (running, paused or in transition)."""
        return self in _ACTIVE_STATES

    def __str__(self) -> str:
        return self.value


_ACTIVE_STATES = frozenset(
    {PowerState.STARTING, PowerState.RUNNING, PowerState.PAUSED, PowerState.STOPPING, PowerState.SAVING}
)


class Capability(enum.StrEnum):
    """What a connection can do. A backend declares its set; absent ones raise UnsupportedOperation."""

    CREATE = "create"
    DELETE = "delete"
    UNREGISTER = "unregister"
    START = "start"
    SHUTDOWN = "shutdown"
    POWER_OFF = "power_off"
    REBOOT = "reboot"
    RESET = "reset"
    PAUSE = "pause"
    SUSPEND = "suspend"
    AUTOSTART = "autostart"
    RECONFIGURE = "reconfigure"
    RECONFIGURE_LIVE = "reconfigure_live"
    RECONFIGURE_DEFERRED = "reconfigure_deferred"
    RESOURCES = "resources"
    DISKS = "disks"
    DISK_RESIZE = "disk_resize"
    NICS = "nics"
    SNAPSHOTS = "snapshots"
    SNAPSHOT_MEMORY = "snapshot_memory"
    CLONE = "clone"
    LINKED_CLONE = "linked_clone"
    CONSOLE = "console"
    GUEST_INFO = "guest_info"
    GUEST_EXEC = "guest_exec"
    GUEST_FILES = "guest_files"
    GUEST_NETWORK = "guest_network"
    NETWORKS = "networks"
    STORAGE = "storage"
    EVENTS = "events"

    def __str__(self) -> str:
        return self.value


class OSFamily(enum.StrEnum):
    """Operating-system family of a host or a guest."""

    LINUX = "linux"
    WINDOWS = "windows"
    BSD = "bsd"
    MACOS = "macos"
    ESXI = "esxi"
    SOLARIS = "solaris"
    OTHER = "other"

    def __str__(self) -> str:
        return self.value


class Firmware(enum.StrEnum):
    """Boot firmware of a VM."""

    BIOS = "bios"
    UEFI = "uefi"

    def __str__(self) -> str:
        return self.value


class Secret:
    """A string that never shows itself: ``repr``/``str`` print ``***``.

    Call :meth:`reveal` where the real value must be sent to a hypervisor or shown
    on purpose (e.g. ``virtabstract vm console --show-password``).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class HostInfo:
    """The host that runs the hypervisor."""

    hostname: str
    os_family: OSFamily
    cpu_count: int
    memory_mib: int
    hypervisor: str
    """Product name, e.g. ``"QEMU"``, ``"VMware ESXi"``, ``"VirtualBox"``, ``"mock"``."""
    version: str
    """Hypervisor version, e.g. ``"8.0.2"``."""
    backend: str
    """virtabstract backend name (``"kvm"``, ``"esxi"``, ``"vbox"``, ``"mock"``)."""
    os_name: str = ""
    cpu_model: str = ""
    cpu_mhz: int | None = None
    free_memory_mib: int | None = None
    api_version: str = ""
    """Version of the management API or library (libvirt, vSphere API, VirtualBox API)."""
    build: str = ""


@dataclass(frozen=True)
class NetworkInfo:
    """A network VMs can attach to (libvirt network, portgroup, host-only net, …)."""

    name: str
    id: str
    kind: str
    """``"nat"``, ``"bridge"``, ``"isolated"``, ``"hostonly"``, ``"internal"``, ``"portgroup"``, ``"distributed"``."""
    active: bool = True
    bridge: str = ""
    cidr: str = ""


@dataclass(frozen=True)
class StorageInfo:
    """A storage pool or datastore."""

    name: str
    id: str
    kind: str
    capacity_mib: int | None = None
    free_mib: int | None = None
    path: str = ""
    active: bool = True


@dataclass(frozen=True)
class DiskInfo:
    """A disk attached to a VM."""

    id: str
    """Stable id within the VM (target dev, device key, controller slot)."""
    size_mib: int
    path: str = ""
    storage: str = ""
    bus: str = ""
    format: str = ""
    thin: bool = True
    backing: str = ""
    """Backing/parent image of a linked clone, if any."""


@dataclass(frozen=True)
class NicInfo:
    """A network interface of a VM."""

    id: str
    mac: str
    network: str
    kind: str = "network"
    model: str = ""
    connected: bool = True


@dataclass(frozen=True)
class VMInfo:
    """A snapshot of a VM's configuration and state at the moment it was read."""

    id: str
    name: str
    state: PowerState
    native_state: str
    """The backend's own state (and reason), e.g. ``"shutoff:saved"``, ``"poweredOn"``, ``"Aborted"``."""
    cpus: int
    memory_mib: int
    guest_os: str | None = None
    """Canonical catalog id, or ``None`` when the native id has no catalog entry."""
    guest_os_native: str = ""
    disks: tuple[DiskInfo, ...] = ()
    nics: tuple[NicInfo, ...] = ()
    description: str = ""
    tags: tuple[str, ...] = ()
    firmware: Firmware = Firmware.BIOS
    autostart: bool = False
    boot_order: tuple[str, ...] = ()
    cdrom: str | None = None
    backend: str = ""


@dataclass(frozen=True)
class VMSummary:
    """The fields an inventory needs, read for every VM in the cheapest bulk call the backend has.

    Unlike :class:`VMInfo` it carries no devices; it does carry the IP addresses the
    hypervisor already knows without asking each guest (empty when it knows none).
    """

    id: str
    name: str
    state: PowerState
    native_state: str
    cpus: int
    memory_mib: int
    guest_os: str | None = None
    guest_os_native: str = ""
    ip_addresses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @classmethod
    def from_info(cls, info: VMInfo) -> VMSummary:
        """The summary part of a full :class:`VMInfo` (no IP addresses)."""
        return cls(
            id=info.id,
            name=info.name,
            state=info.state,
            native_state=info.native_state,
            cpus=info.cpus,
            memory_mib=info.memory_mib,
            guest_os=info.guest_os,
            guest_os_native=info.guest_os_native,
            tags=info.tags,
        )


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot in a VM's tree. ``id`` is stable for the snapshot's lifetime."""

    id: str
    name: str
    vm_id: str
    parent_id: str | None
    description: str = ""
    created: datetime | None = None
    vm_state: PowerState = PowerState.STOPPED
    """The VM's state when the snapshot was taken."""
    has_memory: bool = False
    is_current: bool = False
    children_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResourceAllocation:
    """CPU and memory entitlements of a VM (``None``: unlimited / default / not set)."""

    cpu_limit_mhz: int | None = None
    cpu_reservation_mhz: int | None = None
    cpu_shares: int | None = None
    memory_limit_mib: int | None = None
    memory_reservation_mib: int | None = None
    memory_shares: int | None = None
    disk_weight: int | None = None


@dataclass(frozen=True)
class ReconfigureChange:
    """One field of a reconfiguration and how it is (or would be) applied."""

    field: str
    old: Any
    new: Any
    mode: str
    """``"offline"`` (VM is off), ``"live"`` (applied to the running VM), ``"deferred"``
    (saved in the config, effective at the next power cycle) or ``"needs_power_off"``."""


@dataclass(frozen=True)
class ReconfigurePlan:
    """What :meth:`VM.reconfigure` did, or would do with ``dry_run=True``."""

    vm_id: str
    changes: tuple[ReconfigureChange, ...]
    applied: bool

    @property
    def needs_power_off(self) -> tuple[ReconfigureChange, ...]:
        """Changes that cannot apply while the VM runs."""
        return tuple(c for c in self.changes if c.mode == "needs_power_off")

    @property
    def changed(self) -> bool:
        """True when at least one field differs from the current value."""
        return bool(self.changes)


@dataclass(frozen=True)
class ShutdownResult:
    """How :meth:`VM.shutdown` brought the VM down."""

    stage: str
    """``"already_stopped"``, ``"graceful"`` or ``"forced"`` (escalated to power_off)."""
    method: str = ""
    """How the graceful request was sent: ``"acpi"``, ``"agent"``, ``"tools"``, ``"mock"``."""
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class ConsoleInfo:
    """How to reach a VM's console. The password is a :class:`Secret`."""

    protocol: str
    """``"vnc"``, ``"spice"``, ``"rdp"`` (VirtualBox VRDE), ``"webmks"``, ``"serial"``."""
    host: str = ""
    port: int | None = None
    password: Secret | None = None
    tls_port: int | None = None
    url: str = ""
    serial_device: str = ""
    username: str = ""
    """The console user, where the protocol has one (VirtualBox VRDE simple authentication)."""


@dataclass(frozen=True)
class IPAddressInfo:
    """One IP address of a guest and where it was learnt."""

    address: str
    prefix: int | None = None
    interface: str = ""
    mac: str = ""
    source: str = "agent"
    """``"agent"`` (guest agent/tools), ``"dhcp"`` (lease), ``"arp"`` (host neighbour table)."""

    @property
    def version(self) -> int:
        """4 or 6."""
        return ipaddress.ip_address(self.address).version

    @property
    def is_loopback(self) -> bool:
        """True for 127.0.0.0/8 and ::1."""
        return ipaddress.ip_address(self.address).is_loopback

    @property
    def is_link_local(self) -> bool:
        """True for 169.254.0.0/16 and fe80::/10."""
        return ipaddress.ip_address(self.address).is_link_local


@dataclass(frozen=True)
class GuestInfo:
    """What the guest agent reports about the guest OS."""

    agent: str
    """``"qemu-guest-agent"``, ``"vmware-tools"``, ``"guest-additions"``, ``"mock-agent"``."""
    agent_version: str = ""
    ready: bool = True
    os_family: OSFamily = OSFamily.OTHER
    os_name: str = ""
    os_version: str = ""
    kernel: str = ""
    hostname: str = ""


@dataclass(frozen=True)
class ExecResult:
    """The outcome of :meth:`Guest.exec`: exit code, standard output and error."""

    exit_code: int
    stdout: str
    stderr: str
    argv: tuple[str, ...] = field(default=(), compare=False)

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_code == 0

    def check(self) -> ExecResult:
        """Return self, or raise :class:`~virtabstract.errors.GuestCommandFailed` on a non-zero exit."""
        if self.exit_code != 0:
            raise GuestCommandFailed(list(self.argv) or ["?"], self.exit_code, self.stderr)
        return self


def to_dict(info: Any) -> Any:
    """Convert an info dataclass (recursively) to JSON-ready plain data; secrets stay masked."""
    if isinstance(info, Secret):
        return "***"
    if isinstance(info, enum.Enum):
        return info.value
    if isinstance(info, datetime):
        return info.isoformat()
    if hasattr(info, "__dataclass_fields__"):
        return {f.name: to_dict(getattr(info, f.name)) for f in fields(info)}
    if isinstance(info, (list, tuple, frozenset, set)):
        return [to_dict(v) for v in info]
    if isinstance(info, dict):
        return {str(k): to_dict(v) for k, v in info.items()}
    return info
