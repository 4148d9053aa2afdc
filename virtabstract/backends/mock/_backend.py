"""The mock backend: a deterministic state machine that behaves like a real hypervisor.

URLs::

    mock://                          in memory, one hypervisor per connection
    mock:///abs/path/lab.json        in a JSON file shared by processes (CLI, Ansible, tests)
    mock:///C:/labs/lab.json         the same on Windows
    mock://?clock=manual&seed=1&agent_delay=5&vms=1000&capabilities=-pause,-snapshot_memory

Options (URL query or keyword arguments of :func:`virtabstract.connect`; keywords win):

=================  ==================================================================================
``clock``          ``system`` (default), ``manual`` (a :class:`~virtabstract.ManualClock`: nothing
                   ever sleeps, time moves only when a wait sleeps or a test advances it), or — as a
                   keyword — any :class:`~virtabstract.Clock` object.
``seed``           integer: ids, MAC addresses and console passwords become deterministic.
``agent_delay``    seconds from boot until the guest agent answers (default 0.2).
``ip_delay``       seconds from boot until the guest has a routable address (default 0.3).
``shutdown_delay`` seconds a responsive guest takes to power down after an ACPI request (default 0.1).
``vms``            a new store starts with N stopped VMs ``vm-0001``… (ignored for an existing file).
``capabilities``   ``-name,-name`` removes capabilities; bare names keep only those
                   (``capabilities=create,start,power_off``).
``faults``         guest faults for every VM of the connection: ``agent_absent``, ``ignore_shutdown``.
``lock_timeout``   seconds to wait for another process's write to a file store (default 30).
=================  ==================================================================================

Behaviour (what the contract suite and users' tests can rely on):

* Native states and :data:`NATIVE_STATES`: ``shutoff``, ``running``, ``paused``, ``shutdown`` (an ACPI
  shutdown in progress: ``STOPPING``), ``saved`` (suspended), ``crashed``; ``starting``, ``blocked``,
  ``saving``, ``restoring``, ``nostate`` appear only through :meth:`FaultPlan.force_state`.
* Power verbs follow :data:`virtabstract._backend.LEGAL_TRANSITIONS`; anything else raises
  :class:`~virtabstract.errors.InvalidState` carrying the state (a second shutdown request while the
  guest is already shutting down too). ``suspend`` keeps the guest's memory (its uptime and agent
  state continue after ``start``); ``reboot``/``reset`` restart the guest (the agent is not ready again
  for ``agent_delay``); a guest that ignores ACPI (fault) ignores ``shutdown`` and ``reboot``.
* Duplicate VM names are allowed by the backend (like vSphere and VirtualBox); the core refuses them on
  create/clone, so :class:`~virtabstract.errors.AmbiguousName` can be tested by writing the store directly.
* ``delete``/``unregister`` need ``STOPPED``. ``delete(disks=False)`` and ``unregister`` keep the volumes,
  so a later ``add_disk(Disk(path=...))`` attaches them again.
* New volumes are ``/mock/pool/<vm name>-disk<N>.qcow2`` (``-1``, ``-2``… appended when that path is taken,
  e.g. by a kept volume); an explicit ``Disk(name=...)`` that is taken raises
  :class:`~virtabstract.errors.AlreadyExists`.
* Reconfigure: stopped VMs change ``offline``; on an active VM, description and tags are ``live``, CPUs may
  grow ``live`` up to :data:`MAX_LIVE_CPUS`, memory may grow ``live``; shrinking either ``needs_power_off``.
  ``deferred`` changes are stored and applied when the VM next stops (so the next start uses them).
* Resources (vSphere-like ranges): shares 0..1,000,000, ``disk_weight`` 100..1000 (libvirt's blkio
  weight), CPU reservation at most the host's 16 x 2400 MHz and at most the limit, memory reservation at
  most the limit and the VM's memory; violations raise :class:`~virtabstract.errors.SpecError`.
* Disks hot-plug on ``virtio`` and ``scsi`` buses while the VM runs or is paused; other buses need it
  stopped. Disks only grow. NICs hot-plug on every model. A suspended VM refuses device changes.
* Snapshots: a tree with stable ids and a current snapshot. ``memory=True`` needs a running or paused VM;
  reverting to it restores that state (running or paused, with the guest's uptime); reverting to a
  disk-only snapshot leaves the VM ``STOPPED``. A revert restores CPUs, memory, disks, NICs and the guest's
  files. Deleting a snapshot re-parents its children (or removes them with ``children=True``).
* Clones: the source must be ``STOPPED``, unless a snapshot is given (cloned from the snapshot's state,
  in any power state) — like libvirt, which needs a consistent disk. A full clone copies the disks
  (``backing`` empty); a linked clone's disks have ``backing`` = the source disk's path. New id, MACs,
  console port and password; the guest's files are copied; snapshots are not.
* Guest: the agent answers ``agent_delay`` s after boot (never while stopped or paused). Addresses: at boot
  a link-local fe80:: (from the MAC) and 169.254.x.y; after ``ip_delay`` the 169.254 one is replaced by a
  192.168.122.x DHCP address and an fd00:: address on NICs of the ``default`` network (``isolated`` has no
  DHCP); loopback is reported too. Before the agent answers, the DHCP lease (source ``"dhcp"``) is known.
  Files and commands: see :mod:`virtabstract.backends.mock._guest`.
* Time: with the system clock the mock stores wall-clock times (so a file store works across processes);
  with any other clock it uses ``clock.monotonic()`` (a manual clock is per process).
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import logging
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from ..._backend import Backend, Credentials, check_transition
from ..._catalog import GuestOS, get_guest_os
from ..._model import (
    Capability,
    ConsoleInfo,
    DiskInfo,
    ExecResult,
    Firmware,
    GuestInfo,
    HostInfo,
    IPAddressInfo,
    NetworkInfo,
    NicInfo,
    OSFamily,
    PowerState,
    ReconfigureChange,
    ResourceAllocation,
    Secret,
    SnapshotInfo,
    StorageInfo,
    VMInfo,
)
from ..._spec import Disk, Nic, VMSpec
from ..._url import URL, option_seconds
from ..._wait import Clock, ManualClock, SystemClock
from ...errors import (
    AlreadyExists,
    ConnectionLost,
    DeviceNotFound,
    GuestAgentUnavailable,
    GuestError,
    InvalidState,
    InvalidURL,
    NetworkNotFound,
    SnapshotNotFound,
    SpecError,
    StorageNotFound,
    UsageError,
    VirtAbstractError,
    VMNotFound,
)
from ._faults import FaultPlan, MockStats
from ._guest import (
    GuestCommand,
    GuestFS,
    GuestPrograms,
    apply_journal,
    builtin_programs,
    default_filesystem,
    run_program,
)
from ._store import Document, FileStore, MemoryStore, Store, pause_gc

__all__ = ["MAX_LIVE_CPUS", "NATIVE_STATES", "MockBackend"]

log = logging.getLogger("virtabstract.mock")

NATIVE_STATES: Mapping[str, PowerState] = {
    "shutoff": PowerState.STOPPED,
    "starting": PowerState.STARTING,
    "running": PowerState.RUNNING,
    "blocked": PowerState.RUNNING,
    "paused": PowerState.PAUSED,
    "shutdown": PowerState.STOPPING,
    "saving": PowerState.SAVING,
    "saved": PowerState.SUSPENDED,
    "restoring": PowerState.RESTORING,
    "crashed": PowerState.CRASHED,
    "nostate": PowerState.UNKNOWN,
}
"""Every native state of the mock and its :class:`~virtabstract.PowerState` (libvirt's vocabulary)."""

MAX_LIVE_CPUS = 64
"""CPUs a running mock VM can be hot-plugged up to."""

HOST_CPUS = 16
HOST_CPU_MHZ = 2400
HOST_MEMORY_MIB = 65536
POOL_PATH = "/mock/pool"
POOL_CAPACITY_MIB = 4 * 1024 * 1024
MAX_SHARES = 1_000_000
DISK_WEIGHT_RANGE = (100, 1000)
HOT_PLUG_BUSES = frozenset({"virtio", "scsi"})
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)

_NETWORKS: tuple[NetworkInfo, ...] = (
    NetworkInfo(name="default", id="net-default", kind="nat", bridge="virbr0", cidr="192.168.122.0/24"),
    NetworkInfo(name="isolated", id="net-isolated", kind="isolated", bridge="virbr1"),
)
_BRIDGES = frozenset({"br0", "virbr0", "virbr1"})
_DHCP_NETWORKS = frozenset({"default"})

_OPTIONS: Mapping[str, str] = {
    "clock": "'system' (default), 'manual' (a ManualClock), or a Clock object",
    "seed": "an integer: deterministic ids, MAC addresses and console passwords",
    "agent_delay": "seconds from boot until the guest agent answers (default 0.2)",
    "ip_delay": "seconds from boot until the guest has a routable IP address (default 0.3)",
    "shutdown_delay": "seconds a guest takes to shut down after an ACPI request (default 0.1)",
    "vms": "pre-populate a new store with this many stopped VMs",
    "capabilities": "'-name,…' removes capabilities; bare names keep only those",
    "faults": "guest faults for every VM: agent_absent, ignore_shutdown",
    "lock_timeout": "seconds to wait for the file store's lock (default 30)",
}

_OPERATION_CAPABILITY: Mapping[str, Capability] = {
    "create": Capability.CREATE,
    "delete": Capability.DELETE,
    "unregister": Capability.UNREGISTER,
    "start": Capability.START,
    "shutdown": Capability.SHUTDOWN,
    "power_off": Capability.POWER_OFF,
    "reboot": Capability.REBOOT,
    "reset": Capability.RESET,
    "pause": Capability.PAUSE,
    "resume": Capability.PAUSE,
    "suspend": Capability.SUSPEND,
    "autostart": Capability.AUTOSTART,
    "plan_reconfigure": Capability.RECONFIGURE,
    "reconfigure": Capability.RECONFIGURE,
    "get_resources": Capability.RESOURCES,
    "set_resources": Capability.RESOURCES,
    "add_disk": Capability.DISKS,
    "remove_disk": Capability.DISKS,
    "resize_disk": Capability.DISK_RESIZE,
    "add_nic": Capability.NICS,
    "remove_nic": Capability.NICS,
    "update_nic": Capability.NICS,
    "list_snapshots": Capability.SNAPSHOTS,
    "snapshot_create": Capability.SNAPSHOTS,
    "snapshot_revert": Capability.SNAPSHOTS,
    "snapshot_delete": Capability.SNAPSHOTS,
    "clone": Capability.CLONE,
    "console": Capability.CONSOLE,
    "guest_info": Capability.GUEST_INFO,
    "guest_ip_addresses": Capability.GUEST_NETWORK,
    "guest_exec": Capability.GUEST_EXEC,
    "guest_read_file": Capability.GUEST_FILES,
    "guest_write_file": Capability.GUEST_FILES,
    "list_networks": Capability.NETWORKS,
    "list_storage": Capability.STORAGE,
    "events": Capability.EVENTS,
}

_BUILTIN_PROGRAMS = builtin_programs()
_RESOURCE_FIELDS = (
    "cpu_limit_mhz",
    "cpu_reservation_mhz",
    "cpu_shares",
    "memory_limit_mib",
    "memory_reservation_mib",
    "memory_shares",
    "disk_weight",
)
_KERNELS = {OSFamily.WINDOWS: "10.0.20348.2340", OSFamily.BSD: "14.0-RELEASE"}
_ACTIVE = frozenset({PowerState.RUNNING, PowerState.PAUSED, PowerState.STOPPING})

Record = dict[str, Any]
EventCallback = Callable[[str, PowerState, str], None]


def _ip(text: str) -> str:
    return ipaddress.ip_address(text).compressed


def sanitise_hostname(name: str) -> str:
    """The guest hostname a VM name gives: lower case, ``[a-z0-9-]``, at most 63 characters."""
    host = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return host or "localhost"


class _Options:
    """The parsed connection options."""

    def __init__(self, url: URL, options: Mapping[str, Any]) -> None:
        raw: dict[str, Any] = {}
        for key in url.query:
            if key not in _OPTIONS:
                raise InvalidURL(f"unknown option {key!r} in mock URL {url} (accepted: {', '.join(sorted(_OPTIONS))})")
            raw[key] = url.query[key]
        for key, value in options.items():
            if key not in _OPTIONS:
                raise InvalidURL(
                    f"unknown option {key!r} for the mock backend (accepted: {', '.join(sorted(_OPTIONS))})"
                )
            raw[key] = value
        self.clock = self._clock(raw.get("clock"))
        self.seed = self._int(raw, "seed", None, minimum=None)
        self.agent_delay = self._float(raw, "agent_delay", 0.2)
        self.ip_delay = self._float(raw, "ip_delay", 0.3)
        self.shutdown_delay = self._float(raw, "shutdown_delay", 0.1)
        self.lock_timeout = self._float(raw, "lock_timeout", 30.0)
        self.vms = self._int(raw, "vms", 0, minimum=0) or 0
        self.capabilities = self._capabilities(raw.get("capabilities"))
        self.faults = self._faults(raw.get("faults"))

    @staticmethod
    def _clock(value: Any) -> Clock:
        if value is None or value == "system":
            return SystemClock()
        if value == "manual":
            return ManualClock()
        if (
            not isinstance(value, str)
            and callable(getattr(value, "monotonic", None))
            and callable(getattr(value, "sleep", None))
        ):
            return value  # type: ignore[no-any-return]
        raise InvalidURL(f"mock option clock={value!r}: expected 'system', 'manual' or a Clock object")

    @staticmethod
    def _int(raw: Mapping[str, Any], key: str, default: int | None, *, minimum: int | None) -> int | None:
        value = raw.get(key)
        if value is None:
            return default
        try:
            if isinstance(value, (bool, float)):
                raise ValueError(value)
            number = int(value)
        except (TypeError, ValueError):
            raise InvalidURL(f"mock option {key}={value!r}: expected an integer") from None
        if minimum is not None and number < minimum:
            raise InvalidURL(f"mock option {key}={value!r}: expected at least {minimum}")
        return number

    @staticmethod
    def _float(raw: Mapping[str, Any], key: str, default: float) -> float:
        value = raw.get(key)
        return default if value is None else option_seconds(key, value, allow_zero=True)

    @staticmethod
    def _names(value: Any, key: str) -> list[str]:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple, set, frozenset)):
            return [str(v).strip() for v in value]
        raise InvalidURL(f"mock option {key}={value!r}: expected a comma-separated list")

    def _capabilities(self, value: Any) -> frozenset[Capability]:
        everything = frozenset(Capability)
        if value is None:
            return everything
        keep: set[Capability] = set()
        remove: set[Capability] = set()
        for item in self._names(value, "capabilities"):
            name = item.lstrip("+-")
            try:
                cap = Capability(name.lower())
            except ValueError:
                known = ", ".join(c.value for c in Capability)
                raise InvalidURL(f"mock option capabilities: unknown capability {name!r} (known: {known})") from None
            (remove if item.startswith("-") else keep).add(cap)
        base = frozenset(keep) if keep else everything
        return base - remove

    def _faults(self, value: Any) -> frozenset[str]:
        if value is None:
            return frozenset()
        names = frozenset(self._names(value, "faults"))
        unknown = names - {"agent_absent", "ignore_shutdown"}
        if unknown:
            raise InvalidURL(
                f"mock option faults: unknown fault(s) {', '.join(sorted(unknown))} "
                "(known: agent_absent, ignore_shutdown)"
            )
        return names


class MockBackend(Backend):
    """The mock hypervisor (``mock://`` and ``mock:///path/lab.json``); see the module docstring.

    Test helpers beyond the :class:`~virtabstract.Backend` contract:

    * :attr:`faults` — a :class:`~virtabstract.backends.mock.FaultPlan` (failures, latency, session
      expiry, absent agents, guests ignoring ACPI, crashes);
    * :attr:`stats` — :class:`~virtabstract.backends.mock.MockStats` (calls, relogins…);
    * :attr:`guest_programs` — the connection's :class:`~virtabstract.backends.mock.GuestPrograms`;
    * :attr:`native` — the store (``.data`` is the document); :meth:`native_vm` — a VM's record.
    """

    name: ClassVar[str] = "mock"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)
    accepted_options: ClassVar[Mapping[str, str]] = _OPTIONS
    install_hint: ClassVar[str] = "nothing (the mock backend ships with virtabstract)"

    def __init__(self, url: URL, credentials: Credentials, options: Mapping[str, Any]) -> None:
        super().__init__(url, credentials, options)
        self._opts = _Options(url, options)
        self.clock = self._opts.clock
        self.agent_delay = self._opts.agent_delay
        """Seconds from boot until the guest agent answers (may be changed by tests)."""
        self.ip_delay = self._opts.ip_delay
        """Seconds from boot until a routable address appears (may be changed by tests)."""
        self.shutdown_delay = self._opts.shutdown_delay
        """Seconds a guest takes to power down after an ACPI request (may be changed by tests)."""
        self.seed = self._opts.seed
        self.stats = MockStats()
        """Call counters, relogins and injected faults of this connection."""
        self.faults = FaultPlan(self)
        """Fault injection for this connection."""
        self.guest_programs = GuestPrograms(parent=_BUILTIN_PROGRAMS)
        """Programs the guests of this connection can run (register your own here)."""
        for fault in self._opts.faults:
            if fault == "agent_absent":
                self.faults.agent_absent()
            else:
                self.faults.ignore_shutdown()
        if url.host or url.port is not None:
            raise InvalidURL(f"mock URLs have no host: use mock:// or mock:///absolute/path/lab.json, not {url}")
        self.store: Store
        if url.path in ("", "/"):
            self.store = MemoryStore()
        else:
            path = url.local_path
            if not os.path.isabs(path):
                raise InvalidURL(f"the mock store path {path!r} must be absolute (mock:///abs/path/lab.json)")
            self.store = FileStore(path, lock_timeout=self._opts.lock_timeout)
        self._lock = threading.RLock()
        self._closed = False
        self._session = 0
        self._subscribers: list[EventCallback] = []
        self._last_states: dict[str, PowerState] = {}
        self._pending_events: list[tuple[str, PowerState, str]] = []

    # -- connection -----------------------------------------------------------------

    def open(self) -> None:
        """Log in: open (or create) the store and apply the ``vms=N`` preset to a new one."""
        if isinstance(self.store, FileStore):
            self.store.open()
        self._session = 1
        if self._opts.vms and self.store.is_new:
            with self._txn() as doc:
                if not doc["vms"]:
                    self._populate(doc, self._opts.vms)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._closed = True

    def connection_capabilities(self) -> frozenset[Capability]:
        """The declared capabilities minus those removed with the ``capabilities`` option."""
        return self._opts.capabilities

    @property
    def native(self) -> Store:
        """The store: :class:`MemoryStore` or :class:`FileStore` (``.data`` is the document)."""
        return self.store

    def native_vm(self, vm_id: str) -> Record:
        """The VM's stored record (the live one for memory stores; a fresh read for file stores)."""
        with self._lock:
            return self._rec(self.store.read(), vm_id)

    def _relogin(self) -> None:
        with self._lock:
            self._session += 1
            self.stats.relogins += 1
        log.info("mock session expired; logged in again (session %d)", self._session)

    # -- plumbing -------------------------------------------------------------------

    def _enter(self, operation: str, vm_id: str | None = None, capability: Capability | None = None) -> None:
        """Count the call, check the capability, and apply injected faults (before any effect)."""
        if self._closed:
            raise ConnectionLost(f"the mock connection to {self.url} is closed")
        cap = capability or _OPERATION_CAPABILITY.get(operation)
        if cap is not None and cap not in self._opts.capabilities:
            self.unsupported(operation, f"capability {cap.value!r} was removed from this connection")
        self.faults.before_call(operation, vm_id, self.clock.sleep)

    def _now(self) -> float:
        """The mock's time: wall-clock seconds with the system clock, else the clock's monotonic time."""
        if isinstance(self.clock, SystemClock):
            return time.time()
        return self.clock.monotonic()

    def _wall(self, t: float) -> datetime:
        if isinstance(self.clock, SystemClock):
            return datetime.fromtimestamp(t, tz=UTC)
        return _EPOCH + timedelta(seconds=t)

    @contextmanager
    def _txn(self) -> Iterator[Document]:
        with self._lock, self.store.transaction() as doc:
            yield doc
        self._flush_events()

    @contextmanager
    def _reading(self) -> Iterator[Document]:
        with self._lock:
            yield self.store.read()
        self._flush_events()

    def _rec(self, doc: Document, vm_id: str) -> Record:
        rec: Record | None = doc["vms"].get(vm_id) if isinstance(vm_id, str) else None
        if rec is None:
            raise VMNotFound(f"no VM has the id {vm_id!r} on {self.url}")
        self._settle(rec)
        return rec

    def _settle(self, rec: Record) -> None:
        """Apply the time-based transitions that are due (a requested shutdown completing)."""
        if rec["state"] == "shutdown" and rec.get("shutdown_at") is not None and self._now() >= rec["shutdown_at"]:
            self._to_stopped(rec)
        self._note(rec)

    def _note(self, rec: Record) -> None:
        state = NATIVE_STATES[rec["state"]]
        if self._last_states.get(rec["id"]) is not state:
            if rec["id"] in self._last_states and self._subscribers:
                self._pending_events.append((rec["id"], state, rec["state"]))
            self._last_states[rec["id"]] = state

    def _flush_events(self) -> None:
        if not self._pending_events:
            return
        with self._lock:
            events, self._pending_events = self._pending_events, []
            subscribers = list(self._subscribers)
        for vm_id, state, native in events:
            for callback in subscribers:
                try:
                    callback(vm_id, state, native)
                except Exception:  # a subscriber must not break the mock
                    log.exception("mock event subscriber failed")

    @staticmethod
    def _state(rec: Record) -> PowerState:
        return NATIVE_STATES[rec["state"]]

    def _set_state(self, rec: Record, native: str) -> None:
        rec["state"] = native
        self._note(rec)

    def _to_stopped(self, rec: Record) -> None:
        rec["state"] = "shutoff"
        rec["booted_at"] = rec["paused_at"] = rec["shutdown_at"] = rec["saved_uptime"] = None
        pending = rec.get("pending") or {}
        for key, value in pending.items():
            rec[key] = list(value) if key == "tags" else value
        rec["pending"] = {}

    # -- ids and addresses ----------------------------------------------------------

    def _digest(self, doc: Document, counter: str, label: str) -> bytes:
        n = doc["counters"][counter]
        doc["counters"][counter] = n + 1
        if self.seed is None:
            return os.urandom(16)
        return hashlib.sha256(f"{self.seed}:{label}:{n}".encode()).digest()[:16]

    def _new_id(self, doc: Document) -> str:
        return str(uuid.UUID(bytes=self._digest(doc, "id", "id"), version=4))

    def _new_mac(self, doc: Document, used: set[str]) -> str:
        while True:
            tail = self._digest(doc, "mac", "mac")[:3]
            mac = "52:54:00:" + ":".join(f"{b:02x}" for b in tail)
            if mac not in used:
                used.add(mac)
                return mac

    def _new_ipv4(self, doc: Document) -> str:
        n = doc["counters"]["ip"]
        doc["counters"]["ip"] = n + 1
        return f"192.168.{122 + n // 253}.{2 + n % 253}"

    def _new_password(self, doc: Document) -> str:
        if self.seed is None:
            return secrets.token_urlsafe(9)
        return self._digest(doc, "id", "pw").hex()[:12]

    @staticmethod
    def _used_macs(doc: Document) -> set[str]:
        return {nic["mac"] for vm in doc["vms"].values() for nic in vm["nics"]}

    # -- host and inventory -----------------------------------------------------------

    def host_info(self) -> HostInfo:
        """The mock host: 16 CPUs, 64 GiB, Linux."""
        self._enter("host_info")
        from ... import __version__

        with self._reading() as doc:
            used = sum(vm["memory_mib"] for vm in doc["vms"].values() if self._state(vm).is_active)
        return HostInfo(
            hostname="mock-host",
            os_family=OSFamily.LINUX,
            cpu_count=HOST_CPUS,
            memory_mib=HOST_MEMORY_MIB,
            hypervisor="mock",
            version=__version__,
            backend=self.name,
            os_name="Mock Linux",
            cpu_model="Mock CPU @ 2.40GHz",
            cpu_mhz=HOST_CPU_MHZ,
            free_memory_mib=max(HOST_MEMORY_MIB - used, 0),
            api_version=__version__,
        )

    def list_vms(self) -> list[VMInfo]:
        """Every VM, from one read of the store."""
        self._enter("list_vms")
        with self._reading() as doc, pause_gc():
            out = []
            for rec in doc["vms"].values():
                self._settle(rec)
                out.append(self._info(rec))
            return out

    def get_vm(self, vm_id: str) -> VMInfo:
        """One VM by id."""
        self._enter("get_vm", vm_id)
        with self._reading() as doc:
            return self._info(self._rec(doc, vm_id))

    def find_vms_by_name(self, name: str) -> list[VMInfo]:
        """VMs named exactly *name* (one read)."""
        self._enter("find_vms")
        with self._reading() as doc:
            found = []
            for rec in doc["vms"].values():
                if rec["name"] == name:
                    self._settle(rec)
                    found.append(self._info(rec))
            return found

    def get_state(self, vm_id: str) -> tuple[PowerState, str]:
        """The normalised and native state of one VM."""
        self._enter("get_state", vm_id)
        with self._reading() as doc:
            rec = self._rec(doc, vm_id)
            return self._state(rec), rec["state"]

    def list_networks(self) -> list[NetworkInfo]:
        """``default`` (NAT with DHCP, 192.168.122.0/24) and ``isolated``."""
        self._enter("list_networks")
        return list(_NETWORKS)

    def list_storage(self) -> list[StorageInfo]:
        """The ``default`` pool at /mock/pool (4 TiB)."""
        self._enter("list_storage")
        with self._reading() as doc:
            used = sum(v["size_mib"] for v in doc["volumes"].values())
        return [
            StorageInfo(
                name="default",
                id="pool-default",
                kind="dir",
                capacity_mib=POOL_CAPACITY_MIB,
                free_mib=max(POOL_CAPACITY_MIB - used, 0),
                path=POOL_PATH,
            )
        ]

    def _info(self, rec: Record) -> VMInfo:
        return VMInfo(
            id=rec["id"],
            name=rec["name"],
            state=self._state(rec),
            native_state=rec["state"],
            cpus=rec["cpus"],
            memory_mib=rec["memory_mib"],
            guest_os=rec["guest_os"],
            guest_os_native=rec["guest_os"],
            disks=tuple(self._disk_info(d) for d in rec["disks"]),
            nics=tuple(self._nic_info(n) for n in rec["nics"]),
            description=rec["description"],
            tags=tuple(rec["tags"]),
            firmware=Firmware(rec["firmware"]),
            autostart=rec["autostart"],
            boot_order=tuple(rec["boot_order"]),
            cdrom=rec["cdrom"],
            backend=self.name,
        )

    @staticmethod
    def _disk_info(d: Record) -> DiskInfo:
        return DiskInfo(
            id=d["id"],
            size_mib=d["size_mib"],
            path=d["path"],
            storage=d["storage"],
            bus=d["bus"],
            format=d["format"],
            thin=d["thin"],
            backing=d["backing"],
        )

    @staticmethod
    def _nic_info(n: Record) -> NicInfo:
        return NicInfo(
            id=n["id"], mac=n["mac"], network=n["network"], kind=n["kind"], model=n["model"], connected=n["connected"]
        )

    # -- lifecycle --------------------------------------------------------------------

    def _check_network(self, nic: Nic, where: str) -> None:
        if nic.kind == "bridge":
            if nic.network not in _BRIDGES:
                raise NetworkNotFound(
                    f"{where}: the mock host has no bridge {nic.network!r} (has {', '.join(sorted(_BRIDGES))})"
                )
        elif nic.kind != "internal" and nic.network not in {n.name for n in _NETWORKS}:
            raise NetworkNotFound(
                f"{where}: no network named {nic.network!r} (has {', '.join(n.name for n in _NETWORKS)})"
            )

    @staticmethod
    def _check_storage(name: str | None, where: str) -> str:
        storage = name or "default"
        if storage != "default":
            raise StorageNotFound(f"{where}: no storage pool named {storage!r} (has 'default')")
        return storage

    def _plan_disk(self, doc: Document, disk: Disk, vm_name: str, index: int, where: str, taken: set[str]) -> Record:
        """Validate one disk spec and return its record (the volume is created by the caller)."""
        storage = self._check_storage(disk.storage, where)
        bus = disk.bus or "virtio"
        if disk.path is not None:
            volume = doc["volumes"].get(disk.path)
            if volume is None:
                raise StorageNotFound(f"{where}: no disk image at {disk.path!r}")
            return {
                "id": f"disk{index}",
                "size_mib": volume["size_mib"],
                "path": disk.path,
                "storage": volume["storage"],
                "bus": bus,
                "format": volume["format"],
                "thin": volume["thin"],
                "backing": volume["backing"],
                "new": False,
            }
        file_name = disk.name or f"{vm_name}-disk{index}"
        if "." not in file_name:
            file_name += ".qcow2"
        path = f"{POOL_PATH}/{file_name}"
        if disk.name is None:
            # a generated name never collides: a VM that shares a name, or a kept volume, gets "-1", "-2"…
            stem, ext = file_name.rsplit(".", 1)
            suffix = 0
            while path in doc["volumes"] or path in taken:
                suffix += 1
                file_name = f"{stem}-{suffix}.{ext}"
                path = f"{POOL_PATH}/{file_name}"
        elif path in doc["volumes"] or path in taken:
            raise AlreadyExists(f"{where}: a volume {path!r} already exists in pool 'default'")
        taken.add(path)
        assert disk.size_mib is not None
        return {
            "id": f"disk{index}",
            "size_mib": disk.size_mib,
            "path": path,
            "storage": storage,
            "bus": bus,
            "format": file_name.rsplit(".", 1)[-1],
            "thin": disk.thin,
            "backing": "",
            "new": True,
        }

    def _nic_record(self, doc: Document, nic: Nic, index: int, used: set[str], where: str) -> Record:
        self._check_network(nic, where)
        if nic.mac is not None:
            if nic.mac in used:
                raise SpecError(f"{where}.mac", "a MAC address no other NIC uses", nic.mac)
            used.add(nic.mac)
            mac = nic.mac
        else:
            mac = self._new_mac(doc, used)
        return {
            "id": f"nic{index}",
            "mac": mac,
            "network": nic.network,
            "kind": nic.kind,
            "model": nic.model or "virtio",
            "connected": nic.connected,
            "ipv4": self._new_ipv4(doc),
        }

    @staticmethod
    def _add_volume(doc: Document, disk: Record) -> None:
        new = disk.pop("new", False)
        if new or disk["path"] not in doc["volumes"]:
            doc["volumes"][disk["path"]] = {
                "size_mib": disk["size_mib"],
                "storage": disk["storage"],
                "format": disk["format"],
                "thin": disk["thin"],
                "backing": disk["backing"],
            }

    def create_vm(self, spec: VMSpec) -> VMInfo:
        """Define a stopped VM; nothing is stored when a disk, network or pool is wrong."""
        self._enter("create")
        with self._txn() as doc:
            rec = self._build_record(doc, spec)
            doc["vms"][rec["id"]] = rec
            self._note(rec)
            log.debug("mock: created VM %s (%s)", rec["name"], rec["id"])
            return self._info(rec)

    def _build_record(self, doc: Document, spec: VMSpec, used_macs: set[str] | None = None) -> Record:
        taken: set[str] = set()
        disk_specs = [Disk.from_dict(d) for d in spec.disks]
        nic_specs = [Nic.from_dict(n) for n in spec.nics]
        disks = [self._plan_disk(doc, d, spec.name, i, f"disks[{i}]", taken) for i, d in enumerate(disk_specs)]
        for i, nic in enumerate(nic_specs):
            self._check_network(nic, f"nics[{i}]")
        counters = dict(doc["counters"])
        try:
            used = self._used_macs(doc) if used_macs is None else used_macs
            nics = [self._nic_record(doc, n, i, used, f"nics[{i}]") for i, n in enumerate(nic_specs)]
        except VirtAbstractError:
            doc["counters"] = counters
            raise
        for disk in disks:
            self._add_volume(doc, disk)
        cdrom = spec.cdrom.iso if spec.cdrom is not None and not isinstance(spec.cdrom, str) else spec.cdrom
        vm_id = self._new_id(doc)
        display = doc["counters"]["display"]
        doc["counters"]["display"] = display + 1
        assert isinstance(spec.firmware, Firmware)
        return {
            "id": vm_id,
            "name": spec.name,
            "state": "shutoff",
            "cpus": spec.cpus,
            "memory_mib": spec.memory_mib,
            "guest_os": spec.guest_os,
            "firmware": spec.firmware.value,
            "secure_boot": spec.secure_boot,
            "boot_order": list(spec.boot_order),
            "cdrom": cdrom,
            "autostart": spec.autostart,
            "description": spec.description,
            "tags": list(spec.tags),
            "graphics": spec.graphics,
            "acceleration": spec.acceleration,
            "disks": disks,
            "nics": nics,
            "display": display,
            "console_password": self._new_password(doc),
            "booted_at": None,
            "paused_at": None,
            "shutdown_at": None,
            "saved_uptime": None,
            "saved_paused": False,
            "pending": {},
            "resources": {},
            "snapshots": [],
            "current_snapshot": None,
            "files": None,
            "dirs": [],
        }

    def _populate(self, doc: Document, count: int) -> None:
        width = max(4, len(str(count)))
        used = self._used_macs(doc)
        for i in range(1, count + 1):
            spec = VMSpec(
                name=f"vm-{i:0{width}d}",
                cpus=1,
                memory=1024,
                guest_os="ubuntu-22.04",
                disks=(Disk(size=10240),),
                nics=(Nic(network="default"),),
                tags=("preset",),
            )
            rec = self._build_record(doc, spec, used)
            doc["vms"][rec["id"]] = rec

    def _require_stopped(self, rec: Record, operation: str) -> None:
        state = self._state(rec)
        if state is not PowerState.STOPPED:
            raise InvalidState(
                f"cannot {operation} VM {rec['name']!r}: it is {state.value} (power it off first)",
                state=state,
                operation=operation,
            )

    def delete_vm(self, vm_id: str, *, delete_disks: bool) -> None:
        """Remove a stopped VM with its snapshots, and its volumes when *delete_disks*."""
        self._enter("delete", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            self._require_stopped(rec, "delete")
            del doc["vms"][vm_id]
            if delete_disks:
                in_use = {d["path"] for vm in doc["vms"].values() for d in vm["disks"]}
                for disk in rec["disks"]:
                    if disk["path"] not in in_use:
                        doc["volumes"].pop(disk["path"], None)
            self._last_states.pop(vm_id, None)

    def unregister_vm(self, vm_id: str) -> None:
        """Forget a stopped VM; its volumes stay in the pool."""
        self._enter("unregister", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            self._require_stopped(rec, "unregister")
            del doc["vms"][vm_id]
            self._last_states.pop(vm_id, None)

    def _guest_os(self, rec: Record) -> GuestOS:
        return get_guest_os(rec["guest_os"])

    def _boot(self, rec: Record, now: float) -> None:
        rec["booted_at"] = now
        rec["paused_at"] = rec["shutdown_at"] = rec["saved_uptime"] = None
        if rec.get("files") is None:
            os_ = self._guest_os(rec)
            files, dirs = default_filesystem(os_.family, sanitise_hostname(rec["name"]), os_.name, os_.id, os_.version)
            rec["files"], rec["dirs"] = files, dirs
        self._set_state(rec, "running")

    def start(self, vm_id: str) -> None:
        """Boot a stopped or crashed VM; restore a suspended one from its saved memory."""
        self._enter("start", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            check_transition("start", self._state(rec), rec["name"])
            now = self._now()
            if rec["state"] == "saved":
                uptime = rec["saved_uptime"] or 0.0
                rec["booted_at"] = now - uptime
                rec["saved_uptime"] = rec["paused_at"] = rec["shutdown_at"] = None
                self._set_state(rec, "running")
                return
            if rec["state"] == "crashed":
                self._to_stopped(rec)
            self._boot(rec, now)

    def request_shutdown(self, vm_id: str) -> str:
        """Press the ACPI power button; a responsive guest stops ``shutdown_delay`` seconds later."""
        self._enter("shutdown", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            check_transition("shutdown", self._state(rec), rec["name"])
            if self.faults.ignores_shutdown(vm_id):
                log.debug("mock: guest of %s ignores the ACPI shutdown request", vm_id)
                return "acpi"
            if self.shutdown_delay <= 0:
                self._to_stopped(rec)
                self._note(rec)
            else:
                rec["shutdown_at"] = self._now() + self.shutdown_delay
                self._set_state(rec, "shutdown")
            return "acpi"

    def power_off(self, vm_id: str) -> None:
        """Cut the power."""
        self._enter("power_off", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            check_transition("power_off", self._state(rec), rec["name"])
            self._to_stopped(rec)
            self._note(rec)

    def reboot(self, vm_id: str) -> None:
        """ACPI reboot: the guest restarts (its agent is not ready again for ``agent_delay``)."""
        self._enter("reboot", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            check_transition("reboot", self._state(rec), rec["name"])
            if self.faults.ignores_shutdown(vm_id):
                return
            rec["booted_at"] = self._now()

    def reset(self, vm_id: str) -> None:
        """Hard reset: the guest restarts at once."""
        self._enter("reset", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            check_transition("reset", self._state(rec), rec["name"])
            rec["booted_at"] = self._now()

    def pause(self, vm_id: str) -> None:
        """Freeze the VM (guest time stops too)."""
        self._enter("pause", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            check_transition("pause", self._state(rec), rec["name"])
            rec["paused_at"] = self._now()
            self._set_state(rec, "paused")

    def resume(self, vm_id: str) -> None:
        """Continue a paused VM."""
        self._enter("resume", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            check_transition("resume", self._state(rec), rec["name"])
            now = self._now()
            if rec.get("booted_at") is not None and rec.get("paused_at") is not None:
                rec["booted_at"] += now - rec["paused_at"]
            rec["paused_at"] = None
            self._set_state(rec, "running")

    def suspend(self, vm_id: str) -> None:
        """Save the memory (the guest's uptime) and stop; ``start`` restores it running."""
        self._enter("suspend", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            check_transition("suspend", self._state(rec), rec["name"])
            now = self._now()
            frozen_at = rec["paused_at"] if rec.get("paused_at") is not None else now
            rec["saved_uptime"] = frozen_at - (rec["booted_at"] if rec.get("booted_at") is not None else frozen_at)
            rec["saved_paused"] = rec["state"] == "paused"
            rec["booted_at"] = rec["paused_at"] = rec["shutdown_at"] = None
            self._set_state(rec, "saved")

    def set_autostart(self, vm_id: str, enabled: bool) -> None:
        """Flag the VM to start with the host."""
        self._enter("autostart", vm_id)
        with self._txn() as doc:
            self._rec(doc, vm_id)["autostart"] = bool(enabled)

    def _crash(self, vm_id: str) -> None:
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            state = self._state(rec)
            if state not in _ACTIVE:
                raise InvalidState(
                    f"cannot crash VM {rec['name']!r}: it is {state.value} (needs running, paused or stopping)",
                    state=state,
                    operation="crash",
                )
            rec["booted_at"] = rec["paused_at"] = rec["shutdown_at"] = None
            self._set_state(rec, "crashed")

    def _force_state(self, vm_id: str, native: str) -> None:
        if native not in NATIVE_STATES:
            raise UsageError(f"unknown mock native state {native!r}; known: {', '.join(NATIVE_STATES)}")
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            now = self._now()
            if native in ("running", "blocked", "paused", "shutdown") and rec.get("booted_at") is None:
                if rec.get("files") is None:
                    self._boot(rec, now)
                rec["booted_at"] = now
            if native == "paused" and rec.get("paused_at") is None:
                rec["paused_at"] = now
            if native == "shutdown" and rec.get("shutdown_at") is None:
                rec["shutdown_at"] = now + self.shutdown_delay
            if native == "saved" and rec.get("saved_uptime") is None:
                rec["saved_uptime"] = 0.0
            if NATIVE_STATES[native] is PowerState.STOPPED:
                self._to_stopped(rec)
            self._set_state(rec, native)

    # -- configuration ------------------------------------------------------------------

    def _mode(self, rec: Record, field: str, old: Any, new: Any) -> str:
        state = self._state(rec)
        if state not in _ACTIVE:
            return "offline"
        if field in ("description", "tags"):
            return "live"
        if Capability.RECONFIGURE_LIVE not in self._opts.capabilities:
            return "needs_power_off"
        if field == "cpus":
            return "live" if old < new <= MAX_LIVE_CPUS else "needs_power_off"
        if field == "memory_mib":
            return "live" if new > old else "needs_power_off"
        raise UsageError(f"the mock cannot reconfigure {field!r}")

    def plan_reconfigure(self, vm_id: str, changes: Mapping[str, Any]) -> list[ReconfigureChange]:
        """``offline`` when stopped; ``live`` or ``needs_power_off`` when running (see the module docstring)."""
        self._enter("plan_reconfigure", vm_id)
        with self._reading() as doc:
            rec = self._rec(doc, vm_id)
            plan = []
            for field, new in changes.items():
                old = tuple(rec["tags"]) if field == "tags" else rec.get(field)
                if field not in ("cpus", "memory_mib", "description", "tags"):
                    raise UsageError(f"the mock cannot reconfigure {field!r}")
                plan.append(ReconfigureChange(field, old, new, self._mode(rec, field, old, new)))
            return plan

    def apply_reconfigure(self, vm_id: str, changes: Sequence[ReconfigureChange]) -> None:
        """Apply planned changes; ``deferred`` ones wait for the VM's next stop."""
        self._enter("reconfigure", vm_id)
        if (
            any(c.mode == "deferred" for c in changes)
            and Capability.RECONFIGURE_DEFERRED not in self._opts.capabilities
        ):
            self.unsupported("deferred reconfigure", "capability 'reconfigure_deferred' was removed")
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            state = self._state(rec)
            updates: dict[str, Any] = {}
            deferred: dict[str, Any] = {}
            for change in changes:
                if change.field not in ("cpus", "memory_mib", "description", "tags"):
                    raise UsageError(f"the mock cannot reconfigure {change.field!r}")
                value = list(change.new) if change.field == "tags" else change.new
                now_mode = self._mode(rec, change.field, rec.get(change.field), change.new)
                if change.mode == "deferred":
                    (updates if now_mode in ("offline", "live") else deferred)[change.field] = value
                elif change.mode in ("offline", "live") and now_mode in ("offline", "live"):
                    updates[change.field] = value
                else:
                    raise InvalidState(
                        f"cannot change {change.field} of VM {rec['name']!r} while it is {state.value}"
                        + (" (power it off, or defer the change)" if now_mode == "needs_power_off" else ""),
                        state=state,
                        operation="reconfigure",
                    )
            rec.update(updates)
            for key in updates:
                rec["pending"].pop(key, None)
            rec["pending"].update(deferred)

    def get_resources(self, vm_id: str) -> ResourceAllocation:
        """The stored entitlements (all ``None`` by default)."""
        self._enter("get_resources", vm_id)
        with self._reading() as doc:
            return ResourceAllocation(**self._rec(doc, vm_id)["resources"])

    def set_resources(self, vm_id: str, resources: ResourceAllocation) -> ResourceAllocation:
        """Validate (vSphere-like ranges) and store the entitlements."""
        self._enter("set_resources", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            values = {f: getattr(resources, f) for f in _RESOURCE_FIELDS}
            self._check_resources(values, rec["memory_mib"])
            rec["resources"] = {k: v for k, v in values.items() if v is not None}
            return ResourceAllocation(**rec["resources"])

    @staticmethod
    def _check_resources(values: Mapping[str, int | None], memory_mib: int) -> None:
        for key, value in values.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise SpecError(key, "a non-negative integer or None", value)
        for key in ("cpu_shares", "memory_shares"):
            value = values[key]
            if value is not None and value > MAX_SHARES:
                raise SpecError(key, f"shares from 0 to {MAX_SHARES:,}", value)
        weight = values["disk_weight"]
        low, high = DISK_WEIGHT_RANGE
        if weight is not None and not low <= weight <= high:
            raise SpecError("disk_weight", f"a weight from {low} to {high}", weight)
        capacity = HOST_CPUS * HOST_CPU_MHZ
        reservation, limit = values["cpu_reservation_mhz"], values["cpu_limit_mhz"]
        if reservation is not None and reservation > capacity:
            raise SpecError("cpu_reservation_mhz", f"at most the host's {capacity} MHz", reservation)
        if reservation is not None and limit is not None and reservation > limit:
            raise SpecError("cpu_reservation_mhz", f"at most cpu_limit_mhz ({limit})", reservation)
        mem_res, mem_limit = values["memory_reservation_mib"], values["memory_limit_mib"]
        if mem_res is not None and mem_res > memory_mib:
            raise SpecError("memory_reservation", f"at most the VM's memory ({memory_mib} MiB)", mem_res)
        if mem_res is not None and mem_limit is not None and mem_res > mem_limit:
            raise SpecError("memory_reservation", f"at most memory_limit ({mem_limit} MiB)", mem_res)

    def _require_device_change(self, rec: Record, bus: str | None, operation: str) -> None:
        state = self._state(rec)
        if state is PowerState.STOPPED or state is PowerState.CRASHED:
            return
        if state in (PowerState.RUNNING, PowerState.PAUSED) and (bus is None or bus in HOT_PLUG_BUSES):
            return
        why = f"a {bus} disk cannot be hot-plugged" if bus is not None and state in _ACTIVE else f"it is {state.value}"
        raise InvalidState(
            f"cannot {operation} on VM {rec['name']!r}: {why} (power it off first)", state=state, operation=operation
        )

    def add_disk(self, vm_id: str, disk: Disk) -> DiskInfo:
        """Create a volume (or attach an existing image) and attach it."""
        self._enter("add_disk", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            self._require_device_change(rec, disk.bus or "virtio", "add a disk")
            if disk.path is not None and any(d["path"] == disk.path for d in rec["disks"]):
                raise AlreadyExists(f"{disk.path!r} is already attached to VM {rec['name']!r}")
            taken = {d["id"] for d in rec["disks"]}
            index = next(i for i in range(len(taken) + 1) if f"disk{i}" not in taken)
            record = self._plan_disk(doc, disk, rec["name"], index, "disk", set())
            self._add_volume(doc, record)
            rec["disks"].append(record)
            return self._disk_info(record)

    def _find_disk(self, rec: Record, disk_id: str) -> Record:
        item: Record
        for item in rec["disks"]:
            disk = item
            if disk["id"] == disk_id or disk["path"] == disk_id:
                return disk
        raise DeviceNotFound(f"VM {rec['name']!r} has no disk {disk_id!r}")

    def remove_disk(self, vm_id: str, disk_id: str, *, delete: bool) -> None:
        """Detach a disk (virtio/scsi while running), deleting its volume when *delete*."""
        self._enter("remove_disk", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            disk = self._find_disk(rec, disk_id)
            self._require_device_change(rec, disk["bus"], "remove a disk")
            rec["disks"].remove(disk)
            if delete:
                in_use = {d["path"] for vm in doc["vms"].values() for d in vm["disks"]}
                if disk["path"] not in in_use:
                    doc["volumes"].pop(disk["path"], None)

    def resize_disk(self, vm_id: str, disk_id: str, size_mib: int) -> DiskInfo:
        """Grow a disk (virtio/scsi while running)."""
        self._enter("resize_disk", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            disk = self._find_disk(rec, disk_id)
            if isinstance(size_mib, bool) or not isinstance(size_mib, int) or size_mib < disk["size_mib"]:
                raise SpecError("size", f"at least the current {disk['size_mib']} MiB (disks only grow)", size_mib)
            self._require_device_change(rec, disk["bus"], "resize a disk")
            disk["size_mib"] = size_mib
            volume = doc["volumes"].get(disk["path"])
            if volume is not None:
                volume["size_mib"] = size_mib
            return self._disk_info(disk)

    def _find_nic(self, rec: Record, nic_id: str) -> Record:
        wanted = nic_id.lower() if isinstance(nic_id, str) else nic_id
        item: Record
        for item in rec["nics"]:
            nic = item
            if nic["id"] == nic_id or nic["mac"] == wanted:
                return nic
        raise DeviceNotFound(f"VM {rec['name']!r} has no NIC {nic_id!r}")

    def add_nic(self, vm_id: str, nic: Nic) -> NicInfo:
        """Attach a NIC (hot-plug works on every model)."""
        self._enter("add_nic", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            self._require_device_change(rec, None, "add a NIC")
            taken = {n["id"] for n in rec["nics"]}
            index = next(i for i in range(len(taken) + 1) if f"nic{i}" not in taken)
            record = self._nic_record(doc, nic, index, self._used_macs(doc), "nic")
            rec["nics"].append(record)
            return self._nic_info(record)

    def remove_nic(self, vm_id: str, nic_id: str) -> None:
        """Detach a NIC (by id or MAC)."""
        self._enter("remove_nic", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            nic = self._find_nic(rec, nic_id)
            self._require_device_change(rec, None, "remove a NIC")
            rec["nics"].remove(nic)

    def update_nic(self, vm_id: str, nic_id: str, *, network: str | None, connected: bool | None) -> NicInfo:
        """Move a NIC to another network and/or change its link state (live)."""
        self._enter("update_nic", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            nic = self._find_nic(rec, nic_id)
            if network is not None:
                self._check_network(Nic(network=network, kind=nic["kind"]), "network")
            if self._state(rec) is PowerState.SUSPENDED:
                self._require_device_change(rec, None, "update a NIC")
            if network is not None:
                nic["network"] = network
            if connected is not None:
                nic["connected"] = bool(connected)
            return self._nic_info(nic)

    # -- snapshots and clones -------------------------------------------------------------

    def _snapshot_infos(self, rec: Record) -> list[SnapshotInfo]:
        children: dict[str, list[str]] = {}
        item: Record
        for item in rec["snapshots"]:
            snap = item
            if snap["parent_id"] is not None:
                children.setdefault(snap["parent_id"], []).append(snap["id"])
        return [
            SnapshotInfo(
                id=s["id"],
                name=s["name"],
                vm_id=rec["id"],
                parent_id=s["parent_id"],
                description=s["description"],
                created=self._wall(s["created"]),
                vm_state=PowerState(s["vm_state"]),
                has_memory=s["has_memory"],
                is_current=s["id"] == rec["current_snapshot"],
                children_ids=tuple(children.get(s["id"], ())),
            )
            for s in rec["snapshots"]
        ]

    @staticmethod
    def _find_snapshot(rec: Record, snapshot_id: str) -> Record:
        item: Record
        for item in rec["snapshots"]:
            snap = item
            if snap["id"] == snapshot_id:
                return snap
        raise SnapshotNotFound(f"VM {rec['name']!r} has no snapshot with the id {snapshot_id!r}")

    def list_snapshots(self, vm_id: str) -> list[SnapshotInfo]:
        """The whole tree, parents before children."""
        self._enter("list_snapshots", vm_id)
        with self._reading() as doc:
            return self._snapshot_infos(self._rec(doc, vm_id))

    def create_snapshot(self, vm_id: str, name: str, *, description: str, memory: bool, quiesce: bool) -> SnapshotInfo:
        """Take a snapshot (``memory`` needs a running or paused VM; ``quiesce`` a ready agent when running)."""
        self._enter("snapshot_create", vm_id)
        if memory and Capability.SNAPSHOT_MEMORY not in self._opts.capabilities:
            self.unsupported("snapshot with memory", "capability 'snapshot_memory' was removed")
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            state = self._state(rec)
            if memory and state not in (PowerState.RUNNING, PowerState.PAUSED):
                raise InvalidState(
                    f"cannot take a memory snapshot of VM {rec['name']!r}: "
                    f"it is {state.value} (needs running or paused)",
                    state=state,
                    operation="snapshot_create",
                )
            if state in (PowerState.STARTING, PowerState.SAVING, PowerState.RESTORING, PowerState.UNKNOWN):
                raise InvalidState(
                    f"cannot snapshot VM {rec['name']!r} while it is {state.value}",
                    state=state,
                    operation="snapshot_create",
                )
            if quiesce and state is PowerState.RUNNING:
                self._require_agent(rec)
            now = self._now()
            uptime = None
            if memory:
                frozen = rec["paused_at"] if rec.get("paused_at") is not None else now
                uptime = frozen - rec["booted_at"] if rec.get("booted_at") is not None else 0.0
            snap = {
                "id": self._new_id(doc),
                "name": name,
                "description": description,
                "created": now,
                "vm_state": state.value,
                "has_memory": bool(memory),
                "parent_id": rec["current_snapshot"],
                "uptime": uptime,
                "config": self._capture(rec),
            }
            rec["snapshots"].append(snap)
            rec["current_snapshot"] = snap["id"]
            return next(i for i in self._snapshot_infos(rec) if i.id == snap["id"])

    @staticmethod
    def _capture(rec: Record) -> Record:
        return copy.deepcopy(
            {
                "cpus": rec["cpus"],
                "memory_mib": rec["memory_mib"],
                "disks": rec["disks"],
                "nics": rec["nics"],
                "files": rec["files"],
                "dirs": rec["dirs"],
            }
        )

    def revert_snapshot(self, vm_id: str, snapshot_id: str) -> None:
        """Restore the snapshot's configuration and files; its power state when it has memory, else STOPPED."""
        self._enter("snapshot_revert", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            snap = self._find_snapshot(rec, snapshot_id)
            config = copy.deepcopy(snap["config"])
            rec.update(config)
            rec["pending"] = {}
            for disk in rec["disks"]:
                volume = doc["volumes"].setdefault(
                    disk["path"],
                    {
                        "size_mib": disk["size_mib"],
                        "storage": disk["storage"],
                        "format": disk["format"],
                        "thin": disk["thin"],
                        "backing": disk["backing"],
                    },
                )
                volume["size_mib"] = disk["size_mib"]
            now = self._now()
            if snap["has_memory"]:
                rec["booted_at"] = now - (snap["uptime"] or 0.0)
                rec["shutdown_at"] = rec["saved_uptime"] = None
                if snap["vm_state"] == PowerState.PAUSED.value:
                    rec["paused_at"] = now
                    self._set_state(rec, "paused")
                else:
                    rec["paused_at"] = None
                    self._set_state(rec, "running")
            else:
                self._to_stopped(rec)
                self._note(rec)
            rec["current_snapshot"] = snap["id"]

    def delete_snapshot(self, vm_id: str, snapshot_id: str, *, children: bool) -> None:
        """Delete a snapshot (children move to its parent), or its whole subtree with *children*."""
        self._enter("snapshot_delete", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            snap = self._find_snapshot(rec, snapshot_id)
            parent = snap["parent_id"]
            doomed = {snapshot_id}
            if children:
                grew = True
                while grew:
                    extra = {s["id"] for s in rec["snapshots"] if s["parent_id"] in doomed} - doomed
                    doomed |= extra
                    grew = bool(extra)
            else:
                for other in rec["snapshots"]:
                    if other["parent_id"] == snapshot_id:
                        other["parent_id"] = parent
            rec["snapshots"] = [s for s in rec["snapshots"] if s["id"] not in doomed]
            if rec["current_snapshot"] in doomed:
                rec["current_snapshot"] = parent

    def clone_vm(self, vm_id: str, name: str, *, linked: bool, snapshot_id: str | None) -> VMInfo:
        """Copy a stopped VM (or any VM's snapshot) under a new id, MACs and console port."""
        self._enter("clone", vm_id, Capability.LINKED_CLONE if linked else Capability.CLONE)
        with self._txn() as doc:
            src = self._rec(doc, vm_id)
            if snapshot_id is not None:
                config = self._find_snapshot(src, snapshot_id)["config"]
            else:
                state = self._state(src)
                if state is not PowerState.STOPPED:
                    raise InvalidState(
                        f"cannot clone VM {src['name']!r} while it is {state.value}: "
                        "power it off, or clone from a snapshot",
                        state=state,
                        operation="clone",
                    )
                config = self._capture(src)
            config = copy.deepcopy(config)
            disks: list[Record] = []
            taken: set[str] = set()
            for src_disk in config["disks"]:
                index = int(src_disk["id"].removeprefix("disk")) if src_disk["id"].startswith("disk") else len(disks)
                spec = Disk(size=src_disk["size_mib"], bus=src_disk["bus"], thin=src_disk["thin"])
                disk = self._plan_disk(doc, spec, name, index, f"disks[{len(disks)}]", taken)
                disk["id"] = src_disk["id"]
                disk["format"] = src_disk["format"] if not linked else "qcow2"
                disk["backing"] = src_disk["path"] if linked else ""
                disks.append(disk)
            used = self._used_macs(doc)
            nics = [dict(n, mac=self._new_mac(doc, used), ipv4=self._new_ipv4(doc)) for n in config["nics"]]
            for disk in disks:
                self._add_volume(doc, disk)
            rec = copy.deepcopy(src)
            display = doc["counters"]["display"]
            doc["counters"]["display"] = display + 1
            rec.update(
                {
                    "id": self._new_id(doc),
                    "name": name,
                    "cpus": config["cpus"],
                    "memory_mib": config["memory_mib"],
                    "disks": disks,
                    "nics": nics,
                    "files": config["files"],
                    "dirs": config["dirs"],
                    "display": display,
                    "console_password": self._new_password(doc),
                    "autostart": False,
                    "snapshots": [],
                    "current_snapshot": None,
                    "pending": {},
                }
            )
            self._to_stopped(rec)
            doc["vms"][rec["id"]] = rec
            self._note(rec)
            return self._info(rec)

    # -- console and guest ------------------------------------------------------------------

    def console(self, vm_id: str) -> ConsoleInfo:
        """VNC/SPICE on 127.0.0.1:5900+n with a per-VM password, or a serial console for ``graphics='none'``."""
        self._enter("console", vm_id)
        with self._reading() as doc:
            rec = self._rec(doc, vm_id)
            if rec["graphics"] == "none":
                return ConsoleInfo(protocol="serial", serial_device=f"/dev/pts/{rec['display']}")
            port = 5900 + rec["display"]
            protocol = rec["graphics"]
            return ConsoleInfo(
                protocol=protocol,
                host="127.0.0.1",
                port=port,
                password=Secret(rec["console_password"]),
                url=f"{protocol}://127.0.0.1:{port}",
            )

    def _agent_problem(self, rec: Record) -> str | None:
        state = self._state(rec)
        if state is not PowerState.RUNNING:
            return f"VM {rec['name']!r} is {state.value}"
        if self.faults.is_agent_absent(rec["id"]):
            return f"VM {rec['name']!r} has no guest agent"
        booted = rec.get("booted_at")
        if booted is None or self._now() < booted + self.agent_delay:
            return f"the guest agent of VM {rec['name']!r} is not running yet"
        return None

    def _require_agent(self, rec: Record) -> None:
        problem = self._agent_problem(rec)
        if problem is not None:
            raise GuestAgentUnavailable(problem)

    def guest_info(self, vm_id: str) -> GuestInfo:
        """What the mock agent reports (from the guest OS catalog)."""
        self._enter("guest_info", vm_id)
        from ... import __version__

        with self._reading() as doc:
            rec = self._rec(doc, vm_id)
            self._require_agent(rec)
            os_ = self._guest_os(rec)
            return GuestInfo(
                agent="mock-agent",
                agent_version=__version__,
                ready=True,
                os_family=os_.family,
                os_name=os_.name,
                os_version=os_.version,
                kernel=_KERNELS.get(os_.family, "6.1.0-mock-amd64"),
                hostname=sanitise_hostname(rec["name"]),
            )

    def guest_ip_addresses(self, vm_id: str) -> list[IPAddressInfo]:
        """Addresses as the guest would report them over time (see the module docstring)."""
        self._enter("guest_ip_addresses", vm_id)
        with self._reading() as doc:
            rec = self._rec(doc, vm_id)
            state = self._state(rec)
            if state is not PowerState.RUNNING:
                raise GuestAgentUnavailable(f"VM {rec['name']!r} is {state.value}")
            now = self._now()
            booted = rec["booted_at"] if rec.get("booted_at") is not None else now
            leased = now >= booted + self.ip_delay
            windows = self._guest_os(rec).family is OSFamily.WINDOWS
            if self._agent_problem(rec) is not None:
                return [
                    IPAddressInfo(n["ipv4"], 24, "", n["mac"], "dhcp")
                    for n in rec["nics"]
                    if leased and n["connected"] and n["network"] in _DHCP_NETWORKS
                ]
            out: list[IPAddressInfo] = []
            for index, nic in enumerate(rec["nics"]):
                if not nic["connected"]:
                    continue
                ifname = f"Ethernet{index}" if windows else f"eth{index}"
                mac = nic["mac"]
                octets = [int(b, 16) for b in mac.split(":")]
                eui = (
                    f"{octets[0] ^ 2:02x}{octets[1]:02x}:{octets[2]:02x}ff:"
                    f"fe{octets[3]:02x}:{octets[4]:02x}{octets[5]:02x}"
                )
                routable = leased and (nic["network"] in _DHCP_NETWORKS or nic["kind"] == "bridge")
                if routable:
                    out.append(IPAddressInfo(nic["ipv4"], 24, ifname, mac, "agent"))
                    out.append(IPAddressInfo(_ip(f"fd00::{eui}"), 64, ifname, mac, "agent"))
                else:
                    out.append(
                        IPAddressInfo(f"169.254.{octets[4] % 254 + 1}.{octets[5] % 254 + 1}", 16, ifname, mac, "agent")
                    )
                out.append(IPAddressInfo(_ip(f"fe80::{eui}"), 64, ifname, mac, "agent"))
            lo = "Loopback Pseudo-Interface 1" if windows else "lo"
            out.append(IPAddressInfo("127.0.0.1", 8, lo, "", "agent"))
            out.append(IPAddressInfo("::1", 128, lo, "", "agent"))
            return out

    def _guest_fs(self, rec: Record) -> GuestFS:
        windows = self._guest_os(rec).family is OSFamily.WINDOWS
        return GuestFS(rec["files"] or {}, rec["dirs"], windows=windows)

    def _commit_fs(self, vm_id: str, fs: GuestFS) -> None:
        if not fs.journal:
            return
        with self._txn() as doc:
            rec = doc["vms"].get(vm_id)
            if rec is None:
                return
            if rec.get("files") is None:
                rec["files"] = {}
            apply_journal(rec, fs.journal)

    def guest_exec(
        self, vm_id: str, argv: Sequence[str], *, stdin: bytes | None, timeout: float, env: Mapping[str, str]
    ) -> ExecResult:
        """Run *argv* through the connection's :attr:`guest_programs` (outside the store lock)."""
        self._enter("guest_exec", vm_id)
        if not argv:
            raise UsageError("argv must not be empty")
        with self._reading() as doc:
            rec = self._rec(doc, vm_id)
            self._require_agent(rec)
            os_ = self._guest_os(rec)
            fs = self._guest_fs(rec)
            name = rec["name"]
        command = GuestCommand(
            argv=list(argv),
            stdin=stdin or b"",
            env=dict(env),
            files=fs,
            vm_id=vm_id,
            vm_name=name,
            hostname=sanitise_hostname(name),
            os_family=os_.family,
            kernel=_KERNELS.get(os_.family, "6.1.0-mock-amd64"),
            clock=self.clock,
            timeout=timeout,
            programs=self.guest_programs,
            started=self._now(),
        )
        try:
            return run_program(command)
        except VirtAbstractError:
            raise
        except Exception as exc:
            raise GuestError(f"guest program {argv[0]!r} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self._commit_fs(vm_id, fs)

    def guest_read_file(self, vm_id: str, path: str) -> bytes:
        """Read a guest file (GuestFileNotFound when missing)."""
        self._enter("guest_read_file", vm_id)
        with self._reading() as doc:
            rec = self._rec(doc, vm_id)
            self._require_agent(rec)
            return self._guest_fs(rec).read(path)

    def guest_write_file(self, vm_id: str, path: str, data: bytes) -> None:
        """Create or replace a guest file (its directory must exist)."""
        self._enter("guest_write_file", vm_id)
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            self._require_agent(rec)
            fs = self._guest_fs(rec)
            fs.write(path, bytes(data))
            apply_journal(rec, fs.journal)

    # -- events ---------------------------------------------------------------------------

    def subscribe_events(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(vm_id, state, native_state)`` when this connection sees a VM change state.

        Changes made by this connection are reported at once; time-based ones (a shutdown
        completing) and other processes' changes when this connection next reads the VM.
        """
        self._enter("events")
        with self._lock:
            for rec in self.store.read()["vms"].values():
                self._last_states.setdefault(rec["id"], self._state(rec))
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe
