"""The ESXi / vCenter backend (``esx://``, ``vpx://``, ``vsphere://``) on pyVmomi.

URLs::

    esx://root@esx1/                      one ESXi host (https, certificate verified)
    esx://esx1/?ca_file=/etc/ssl/my-ca.pem
    esx://esx1/?no_verify=1               insecure: warns once
    vpx://administrator%40vsphere.local@vc1/                 the whole vCenter inventory
    vpx://vc1/DC1  vpx://vc1/DC1/Cluster1  vpx://vc1/DC1/Cluster1/host1.example   a scope
    vsphere://…                           alias of vpx://
    esx://127.0.0.1:8989/?protocol=http   plain http, only when asked (vcsim)

VM ids are **instance UUIDs** (``config.instanceUuid``): vCenter keeps them unique
and stable across re-registration, unlike names (duplicates are legal) and unlike
MoRef ids (``vm-12``), which change when a VM is re-registered. Lookup by id is
one ``SearchIndex.FindByUuid(instanceUuid=True)`` (cached per connection) plus one
property read; a MoRef id (``vm-12``) is accepted too.

Every read goes through the PropertyCollector (:mod:`._inventory`; the scalar-only inventory
answer of :meth:`ESXiBackend.list_vm_summaries` is parsed by :mod:`._lean`); every task is
waited for by one status read, then ``WaitForUpdatesEx`` if still running (:mod:`._tasks`); only
``start`` skips the state pre-check (see :data:`PRECHECKED_VERBS`); every fault is mapped in
:func:`~virtabstract_esxi._faults.map_vim_faults`; every SDK call passes through
:meth:`Session.call <virtabstract_esxi._session.Session.call>` (transparent re-login).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

from virtabstract import (
    URL,
    Backend,
    Capability,
    ConsoleInfo,
    Credentials,
    Disk,
    DiskInfo,
    ExecResult,
    GuestInfo,
    HostInfo,
    IPAddressInfo,
    NetworkInfo,
    Nic,
    NicInfo,
    OSFamily,
    PowerState,
    ReconfigureChange,
    ResourceAllocation,
    Secret,
    SnapshotInfo,
    StorageInfo,
    VMInfo,
    VMSpec,
    VMSummary,
    check_transition,
    get_guest_os,
    option_seconds,
)
from virtabstract.errors import (
    BackendError,
    ConnectionFailed,
    DeviceNotFound,
    GuestAgentUnavailable,
    InvalidState,
    InvalidURL,
    SnapshotNotFound,
    SpecError,
    StorageNotFound,
    UnsupportedOperation,
    VirtAbstractError,
    VMNotFound,
)

from ._create import (
    DeviceBuilder,
    NetworkRef,
    backing_for,
    check_spec_for_vsphere,
    config_spec_for,
    resolve_network,
    tags_option,
)
from ._faults import map_exception, map_vim_faults
from ._guest import (
    GUEST_PROPERTIES,
    GuestCredentials,
    GuestOps,
    guest_family,
    guest_info_from_props,
    ip_addresses_from_net,
)
from ._inventory import (
    MOREF_RE,
    SUMMARY_PROPERTIES,
    UUID_RE,
    VM_PROPERTIES,
    Inventory,
    ObjectProps,
    is_disk,
    is_nic,
    vm_info_from_props,
    vm_summary,
)
from ._lean import invoke
from ._sdk import sdk
from ._session import Session
from ._snapshots import snapshot_infos
from ._states import map_state, native_power_state
from ._tasks import ProgressCallback, collector_pool, wait_for_task, wait_for_task_and_read, wait_for_tasks

__all__ = ["ESXiBackend", "Topology"]

log = logging.getLogger("virtabstract.esxi")

URL_OPTIONS = ("no_verify", "ca_file", "protocol", "sdk_path")
DEFAULT_TASK_TIMEOUT = 3600.0
ISSUE_WORKERS = 16
"""Threads issuing the calls of a bulk operation (``start_many``) once calls are slow, so their waits overlap."""
SLOW_CALL_SECONDS = 0.005
"""A bulk operation whose call takes longer than this issues its remaining calls from the thread pool."""
PRECHECKED_VERBS = frozenset({"power_off", "reset", "suspend", "shutdown", "reboot"})
"""Power verbs whose state is read first, because the server accepts some states the contract forbids:
vSphere powers off (and resets) a *suspended* VM, discarding its saved state; vcsim 0.24 also
suspends a powered-off VM and shuts down a suspended one. ``start`` is the one verb vSphere refuses
in exactly the states the contract forbids (InvalidPowerState on a running VM, InvalidState on a
disconnected one), so it is issued at once and the state is read only after a failure."""
MIB = 1024 * 1024

ALL_CAPABILITIES = frozenset(
    {
        Capability.CREATE,
        Capability.DELETE,
        Capability.UNREGISTER,
        Capability.START,
        Capability.SHUTDOWN,
        Capability.POWER_OFF,
        Capability.REBOOT,
        Capability.RESET,
        Capability.SUSPEND,
        Capability.RECONFIGURE,
        Capability.RECONFIGURE_LIVE,
        Capability.RESOURCES,
        Capability.DISKS,
        Capability.DISK_RESIZE,
        Capability.NICS,
        Capability.SNAPSHOTS,
        Capability.SNAPSHOT_MEMORY,
        Capability.CLONE,
        Capability.LINKED_CLONE,
        Capability.CONSOLE,
        Capability.GUEST_INFO,
        Capability.GUEST_EXEC,
        Capability.GUEST_FILES,
        Capability.GUEST_NETWORK,
        Capability.NETWORKS,
        Capability.STORAGE,
    }
)
VCENTER_ONLY = frozenset({Capability.CLONE, Capability.LINKED_CLONE})
CLONE_NEEDS_VCENTER = (
    "cloning needs vCenter (CloneVM_Task does not exist on a standalone ESXi host); connect with vpx://vcenter/"
)


@dataclass(frozen=True)
class Topology:
    """Datacenters, clusters and hosts in the connection's scope (:meth:`ESXiBackend.topology`)."""

    datacenters: tuple[str, ...]
    clusters: tuple[str, ...]
    hosts: tuple[str, ...]


@dataclass
class _Placement:
    datacenter: Any
    folder: Any
    pool: Any
    host: Any
    environment_browser: Any
    datastore: str


class ESXiBackend(Backend):
    """VMware ESXi hosts and vCenter servers through pyVmomi (see the module docstring)."""

    name: ClassVar[str] = "esxi"
    capabilities: ClassVar[frozenset[Capability]] = ALL_CAPABILITIES
    accepted_options: ClassVar[Mapping[str, str]] = {
        "guest_username": "guest OS user for VMware Tools operations (else VIRTABSTRACT_GUEST_USERNAME)",
        "guest_password": "guest OS password (else VIRTABSTRACT_GUEST_PASSWORD); never logged",
        "timeout": "HTTP timeout of one SOAP call, seconds (default: none)",
        "task_timeout": f"longest wait for one vSphere task, seconds (default {DEFAULT_TASK_TIMEOUT:.0f})",
        "progress": "callable(task_id, percent) called as vSphere tasks progress",
    }
    install_hint: ClassVar[str] = "pyVmomi (pip install 'virtabstract[esxi]')"

    def __init__(self, url: URL, credentials: Credentials, options: Mapping[str, Any]) -> None:
        super().__init__(url, credentials, options)
        unknown = sorted(set(url.query) - set(URL_OPTIONS))
        if unknown:
            raise InvalidURL(
                f"unknown URL option(s) for the esxi backend: {', '.join(unknown)} (accepted: {', '.join(URL_OPTIONS)})"
            )
        timeout, task_timeout = options.get("timeout"), options.get("task_timeout")
        self.task_timeout = DEFAULT_TASK_TIMEOUT
        if task_timeout is not None:
            self.task_timeout = option_seconds("task_timeout", task_timeout)
        self.progress: ProgressCallback | None = options.get("progress")
        session_timeout = None if timeout is None else option_seconds("timeout", timeout)
        self._session = Session(url, credentials, timeout=session_timeout)
        self._inventory = Inventory(self._session, self._scope_root)
        self._scope: Any = None
        self._scope_dc: Any = None
        self._scope_compute: Any = None
        self._scope_host: Any = None
        self._ids: dict[str, str] = {}
        self._ids_lock = threading.Lock()
        self._pg_names: dict[str, str] = {}
        self._guest_ids: dict[str, frozenset[str]] = {}
        self._guest: GuestOps | None = None

    # -- connection --------------------------------------------------------------------------

    @classmethod
    def import_sdk(cls) -> None:
        """Import pyVmomi (at connect time only)."""
        sdk()

    def open(self) -> None:
        """Log in and resolve the URL's inventory scope."""
        self._session.open()
        try:
            with map_vim_faults("connect", str(self.url), connecting=True):
                self._resolve_scope()
        except BaseException:
            self._session.close()
            raise
        self._guest = GuestOps(
            self._session.content,
            self._session.call,
            self._session.host,
            self._session.ssl_context,
            GuestCredentials.resolve(self.options),
            self.clock,
        )

    def close(self) -> None:
        """Destroy the cached views and log out (idempotent)."""
        if self._session.stub is not None:
            self._inventory.destroy_views()
            collector_pool(self._session).destroy()
        self._session.close()

    def connection_capabilities(self) -> frozenset[Capability]:
        """Everything on vCenter; no cloning on a standalone ESXi host."""
        if self._session.is_vcenter:
            return self.capabilities
        return self.capabilities - VCENTER_ONLY

    def unsupported_reason(self, capability: Capability) -> str:
        """Explain what a standalone ESXi host cannot do."""
        if capability in VCENTER_ONLY and not self._session.is_vcenter:
            return CLONE_NEEDS_VCENTER
        return ""

    @property
    def native(self) -> Any:
        """PyVmomi's ``vim.ServiceInstance``."""
        return self._session.si

    @property
    def session(self) -> Session:
        """The vSphere session (advanced use: ``session.call(lambda: ...)`` gets re-login for free)."""
        return self._session

    def native_vm(self, vm_id: str) -> Any:
        """PyVmomi's ``vim.VirtualMachine`` (beware: its attribute reads are round trips)."""
        with map_vim_faults("native_vm", vm_id):
            return self._vm_ref(vm_id)

    def _resolve_scope(self) -> None:
        content = self._session.content
        parts = [p for p in self.url.path.split("/") if p]
        if self.url.driver == "esx" or not parts:
            self._scope = content.rootFolder
            return
        if len(parts) > 3:
            raise InvalidURL(f"{self.url}: the path is /Datacenter[/Cluster[/Host]], not {self.url.path!r}")
        index = content.searchIndex
        inventory_paths = [parts[0], f"{parts[0]}/host/{parts[1]}" if len(parts) > 1 else ""]
        if len(parts) > 2:
            inventory_paths.append(f"{parts[0]}/host/{parts[1]}/{parts[2]}")
        found: list[Any] = []
        for inventory_path in filter(None, inventory_paths):
            obj = self._session.call(lambda p=inventory_path: index.FindByInventoryPath(p))  # type: ignore[misc]
            if obj is None:
                raise ConnectionFailed(f"{self.url}: no inventory object at {inventory_path!r}")
            found.append(obj)
        self._scope_dc = found[0]
        if len(found) > 1:
            self._scope_compute = found[1]
        if len(found) > 2:
            self._scope_host = found[2]
        self._scope = found[-1]

    def _scope_root(self) -> Any:
        return self._scope if self._scope is not None else self._session.content.rootFolder

    # -- helpers -------------------------------------------------------------------------------

    def _call(self, func: Callable[[], Any]) -> Any:
        return self._session.call(func)

    def _wait(self, task: Any, what: str) -> Any:
        return wait_for_task(
            self._session, task, timeout=self.task_timeout, progress=self.progress, clock=self.clock, what=what
        )

    def _remember(self, instance_uuid: str, moid: str) -> None:
        if instance_uuid:
            with self._ids_lock:
                self._ids[instance_uuid.lower()] = moid

    def _vm_ref(self, vm_id: str) -> Any:
        """The VirtualMachine proxy for an instance UUID (cached) or a MoRef id."""
        if MOREF_RE.match(vm_id):
            return self._session.moref("VirtualMachine", vm_id)
        if not UUID_RE.match(vm_id):
            raise VMNotFound(f"{vm_id!r} is not a VM id here (ids are instance UUIDs, or MoRef ids like vm-12)")
        with self._ids_lock:
            moid = self._ids.get(vm_id.lower())
        if moid is not None:
            return self._session.moref("VirtualMachine", moid)
        index = self._session.content.searchIndex
        ref = self._call(lambda: index.FindByUuid(None, vm_id, True, True))
        if ref is None:
            raise VMNotFound(f"no VM has the id {vm_id!r} on {self.url}")
        self._remember(vm_id, str(ref._moId))
        return ref

    def _read_vm(self, vm_id: str, paths: Sequence[str], *, lean: bool = False) -> tuple[Any, ObjectProps]:
        """Read *paths* of one VM; a stale cached MoRef is dropped and looked up again once.

        *lean*: the paths are ones :mod:`._lean` decodes (scalars, ``snapshot``), read without
        pyVmomi's objects on the hot paths (values are text, or a SnapshotTree).
        """
        read = self._inventory.read_lean if lean else self._inventory.read
        for attempt in (1, 2):
            ref = self._vm_ref(vm_id)
            try:
                item = read("VirtualMachine", ref, [*paths, "config.instanceUuid"])
            except Exception as exc:
                if attempt == 2 or not isinstance(map_exception(exc, _CTX), VMNotFound):
                    raise
                item = ObjectProps(ref, {})
            uuid = str(item.get("config.instanceUuid", "") or "")
            if item.props and (MOREF_RE.match(vm_id) or uuid.lower() == vm_id.lower()):
                return ref, item
            with self._ids_lock:
                self._ids.pop(vm_id.lower(), None)
            if attempt == 2 or MOREF_RE.match(vm_id):
                break
        raise VMNotFound(f"no VM has the id {vm_id!r} on {self.url}")

    def _names_for(self, items: Iterable[ObjectProps]) -> dict[str, str]:
        keys: set[str] = set()
        for item in items:
            for device in item.get("config.hardware.device", ()):
                port = getattr(getattr(device, "backing", None), "port", None)
                if port is not None and getattr(port, "portgroupKey", None):
                    keys.add(str(port.portgroupKey))
        if keys - set(self._pg_names):
            self._pg_names = self._inventory.portgroup_names()
        return self._pg_names

    def _info(self, item: ObjectProps) -> VMInfo:
        info = vm_info_from_props(item, self._names_for([item]))
        self._remember(info.id, item.moid)
        return info

    def _state(self, vm_id: str) -> tuple[Any, PowerState, str]:
        ref, item = self._read_vm(vm_id, ("name", "runtime.powerState", "runtime.connectionState"), lean=True)
        state = map_state(item.get("runtime.powerState"), item.get("runtime.connectionState", "connected"))
        return ref, state, str(item.get("name", ""))

    # -- host and inventory --------------------------------------------------------------------

    def host_info(self) -> HostInfo:
        """The ESXi host, or vCenter with the CPU and memory of the hosts in scope summed."""
        about = self._session.content.about
        with map_vim_faults("host_info"):
            hosts = self._inventory.retrieve(
                self._inventory.view_specs(
                    "HostSystem",
                    [
                        "name",
                        "summary.hardware.numCpuThreads",
                        "summary.hardware.memorySize",
                        "summary.hardware.cpuModel",
                        "summary.hardware.cpuMhz",
                        "summary.quickStats.overallMemoryUsage",
                    ],
                )
            )
        cpus = sum(int(h.get("summary.hardware.numCpuThreads", 0) or 0) for h in hosts)
        memory = sum(int(h.get("summary.hardware.memorySize", 0) or 0) for h in hosts) // MIB
        used = sum(int(h.get("summary.quickStats.overallMemoryUsage", 0) or 0) for h in hosts)
        first = hosts[0] if hosts else ObjectProps(None, {})
        vcenter = about.apiType == "VirtualCenter"
        return HostInfo(
            hostname=self.url.host if vcenter or not hosts else str(first.get("name", self.url.host)),
            os_family=OSFamily.ESXI,
            cpu_count=cpus,
            memory_mib=memory,
            hypervisor="VMware vCenter Server" if vcenter else "VMware ESXi",
            version=str(about.version),
            backend=self.name,
            os_name=str(about.fullName),
            cpu_model=str(first.get("summary.hardware.cpuModel", "")),
            cpu_mhz=int(first.get("summary.hardware.cpuMhz", 0) or 0) or None,
            free_memory_mib=max(memory - used, 0) if hosts else None,
            api_version=str(about.apiVersion),
            build=str(about.build),
        )

    def topology(self) -> Topology:
        """Datacenters, clusters and hosts in scope (one round trip)."""
        with map_vim_faults("topology"):
            items = self._inventory.retrieve(
                self._inventory.view_specs(
                    "Datacenter", ["name"], types=["Datacenter", "ClusterComputeResource", "HostSystem"]
                )
            )
            by_kind: dict[str, list[str]] = {"Datacenter": [], "ClusterComputeResource": [], "HostSystem": []}
            # A view does not contain its own root: name the scope's datacenter and cluster explicitly.
            for scope_obj in (self._scope_dc, self._scope_compute, self._scope_host):
                if scope_obj is not None:
                    kind = str(scope_obj._wsdlName)
                    name = str(self._inventory.read(kind, scope_obj, ["name"]).get("name", ""))
                    by_kind.setdefault(kind, []).append(name)
        for item in items:
            names = by_kind.setdefault(str(item.obj._wsdlName), [])
            name = str(item.get("name", ""))
            if name not in names:
                names.append(name)
        return Topology(
            tuple(by_kind["Datacenter"]), tuple(by_kind["ClusterComputeResource"]), tuple(by_kind["HostSystem"])
        )

    def list_networks(self) -> list[NetworkInfo]:
        """Standard and distributed port groups."""
        with map_vim_faults("list_networks"):
            return self._inventory.networks()

    def list_storage(self) -> list[StorageInfo]:
        """Datastores."""
        with map_vim_faults("list_storage", not_found=StorageNotFound):
            return self._inventory.storage()

    def list_vms(self) -> list[VMInfo]:
        """Every VM in scope: one round trip per page of 500 VMs."""
        with map_vim_faults("list_vms"):
            items = self._inventory.retrieve(self._inventory.view_specs("VirtualMachine", VM_PROPERTIES))
            names = self._names_for(items)
        infos = [vm_info_from_props(item, names) for item in items]
        for info, item in zip(infos, items, strict=True):
            self._remember(info.id, item.moid)
        return infos

    def list_vm_summaries(self) -> list[VMSummary]:
        """Every VM's summary: one round trip per page, scalar paths only (:data:`SUMMARY_PROPERTIES`).

        Summaries carry no tags on vSphere (see :data:`~._inventory.SUMMARY_PROPERTIES`); their
        ``ip_addresses`` hold Tools' primary address when known.
        """
        with map_vim_faults("list_vm_summaries"):
            items = self._inventory.retrieve_scalars(self._inventory.view_specs("VirtualMachine", SUMMARY_PROPERTIES))
        summaries = [vm_summary(moid, props) for moid, props in items]
        with self._ids_lock:
            for summary, (moid, _) in zip(summaries, items, strict=True):
                if summary.id != moid:
                    self._ids[summary.id.lower()] = moid
        return summaries

    def get_vm(self, vm_id: str) -> VMInfo:
        """One VM by instance UUID (or MoRef id)."""
        with map_vim_faults("get_vm", vm_id):
            _, item = self._read_vm(vm_id, VM_PROPERTIES)
            return self._info(item)

    def find_vms_by_name(self, name: str) -> list[VMInfo]:
        """Two round trips: names of every VM in scope, then the full properties of the matches."""
        with map_vim_faults("find_vms", name):
            named = self._inventory.retrieve(self._inventory.view_specs("VirtualMachine", ["name"]))
            matches = [item.obj for item in named if item.get("name") == name]
            if not matches:
                return []
            items = self._inventory.retrieve(self._inventory.object_specs("VirtualMachine", matches, VM_PROPERTIES))
            return [self._info(item) for item in items]

    def get_state(self, vm_id: str) -> tuple[PowerState, str]:
        """State from ``runtime.powerState``/``runtime.connectionState`` (one round trip, read leanly)."""
        with map_vim_faults("get_state", vm_id):
            _, item = self._read_vm(vm_id, ("runtime.powerState", "runtime.connectionState"), lean=True)
        power = item.get("runtime.powerState")
        connection = item.get("runtime.connectionState", "connected")
        return map_state(power, connection), native_power_state(power, connection)

    # -- power -----------------------------------------------------------------------------------

    def _on_vm(self, vm_id: str, call: Callable[[Any], Any]) -> tuple[Any, Any]:
        """``call(ref)`` on the VM's proxy; a cached MoRef that no longer exists is looked up again once."""
        for attempt in (1, 2):
            cached = not MOREF_RE.match(vm_id) and vm_id.lower() in self._ids
            ref = self._vm_ref(vm_id)
            try:
                return ref, self._call(lambda ref=ref: call(ref))  # type: ignore[misc]
            except Exception as exc:
                if attempt == 2 or not cached or not isinstance(map_exception(exc, _CTX), VMNotFound):
                    raise
                with self._ids_lock:
                    self._ids.pop(vm_id.lower(), None)
        raise AssertionError("unreachable")

    def _power_failure(self, operation: str, vm_id: str, exc: BaseException) -> BaseException:
        """The core error for a failed power verb issued without a state pre-check.

        vSphere's InvalidPowerState usually names the existing state; when it does not (or the
        fault is another one, e.g. for a disconnected VM), the state is read now, *after* the
        failure, so the error is the same InvalidState a pre-check would have raised.
        """
        mapped = map_exception(exc, _ctx(operation, f"VM {vm_id}"))
        if isinstance(mapped, InvalidState):
            if mapped.state is not None:
                return mapped
        elif type(mapped) is not BackendError:  # not found, lost connection, permissions …: no state involved
            return mapped
        try:
            state, _ = self.get_state(vm_id)
        except Exception as read_exc:  # noqa: BLE001 - the original failure matters more
            log.debug("state read after a failed %s: %s", operation, type(read_exc).__name__)
            return mapped
        try:
            check_transition(operation, state)
        except InvalidState as invalid:
            return invalid
        if isinstance(mapped, InvalidState):
            return InvalidState(f"{mapped} (it is {state.value})", state=state, operation=mapped.operation or operation)
        return mapped

    def _power_task(self, operation: str, vm_id: str, method: str) -> None:
        if operation in PRECHECKED_VERBS:
            with map_vim_faults(operation, f"VM {vm_id}"):
                ref, state, name = self._state(vm_id)
                check_transition(operation, state, name)
                task = self._call(lambda: invoke(ref, method))
                self._wait(task, f"{operation} of VM {name!r}")
            return
        with map_vim_faults(operation, f"VM {vm_id}"):
            try:
                _, task = self._on_vm(vm_id, lambda ref: invoke(ref, method))
                self._wait(task, f"{operation} of VM {vm_id}")
            except VirtAbstractError:
                raise
            except Exception as exc:
                failure = self._power_failure(operation, vm_id, exc)
                if failure is exc:
                    raise
                raise failure from exc

    def start(self, vm_id: str) -> None:
        """PowerOnVM_Task (a suspended VM resumes)."""
        self._power_task("start", vm_id, "PowerOnVM_Task")

    def power_off(self, vm_id: str) -> None:
        """PowerOffVM_Task (hard)."""
        self._power_task("power_off", vm_id, "PowerOffVM_Task")

    def reset(self, vm_id: str) -> None:
        """ResetVM_Task (hard reset)."""
        self._power_task("reset", vm_id, "ResetVM_Task")

    def suspend(self, vm_id: str) -> None:
        """SuspendVM_Task (memory to disk; start() resumes)."""
        self._power_task("suspend", vm_id, "SuspendVM_Task")

    def request_shutdown(self, vm_id: str) -> str:
        """ShutdownGuest through VMware Tools; returns at once with ``"tools"``.

        Without Tools the server answers ToolsUnavailable, raised as GuestAgentUnavailable.
        """
        with map_vim_faults("shutdown", f"VM {vm_id}"):
            ref, state, name = self._state(vm_id)
            check_transition("shutdown", state, name)
            self._call(lambda: ref.ShutdownGuest())
        return "tools"

    def reboot(self, vm_id: str) -> None:
        """RebootGuest through VMware Tools (graceful; ``reset`` is the hard one)."""
        with map_vim_faults("reboot", f"VM {vm_id}"):
            ref, state, name = self._state(vm_id)
            check_transition("reboot", state, name)
            self._call(lambda: ref.RebootGuest())

    def _prefetch_refs(self, vm_ids: Sequence[str]) -> None:
        """Fill the id → MoRef cache in one round trip when several instance UUIDs are not cached."""
        with self._ids_lock:
            missing = [i for i in vm_ids if UUID_RE.match(i) and i.lower() not in self._ids]
        if len(missing) < 2:
            return
        items = self._inventory.retrieve(self._inventory.view_specs("VirtualMachine", ["config.instanceUuid"]))
        for item in items:
            self._remember(str(item.get("config.instanceUuid", "") or ""), item.moid)

    def start_many(self, vm_ids: Sequence[str]) -> dict[str, BaseException | None]:
        """Issue every PowerOnVM_Task (from a small thread pool when calls are slow), then wait for all at once.

        No state is read first: vSphere refuses to power on a running VM (InvalidPowerState, mapped
        to InvalidState per VM). Calls are issued in order while they are quick; as soon as one
        takes longer than ``SLOW_CALL_SECONDS`` (a busy vCenter, a long RTT, vcsim running the
        task inside the call) the rest are issued concurrently (``ISSUE_WORKERS`` threads sharing
        the session's stub — its HTTP connection pool is lock-guarded, and widened to match).
        """
        unique = list(dict.fromkeys(vm_ids))
        results: dict[str, BaseException | None] = {}
        issued: dict[str, Any] = {}
        with map_vim_faults("start_many"):
            self._prefetch_refs(unique)

        def issue(vm_id: str) -> tuple[str, Any, BaseException | None]:
            try:
                with map_vim_faults("start", f"VM {vm_id}"):
                    try:
                        return vm_id, self._on_vm(vm_id, lambda ref: invoke(ref, "PowerOnVM_Task"))[1], None
                    except VirtAbstractError:
                        raise
                    except Exception as exc:
                        failure = self._power_failure("start", vm_id, exc)
                        if failure is exc:
                            raise
                        raise failure from exc
            except Exception as exc:  # noqa: BLE001 - reported per VM
                return vm_id, None, exc

        # Issue in order while calls are quick (loopback, an idle vCenter: a thread pool would only
        # add overhead); once one call is slow (a busy vCenter, a long RTT, vcsim running the task
        # inside the call), issue the rest from the pool so the waits overlap.
        outcomes_issued: list[tuple[str, Any, BaseException | None]] = []
        position = 0
        while position < len(unique):
            began = time.perf_counter()
            outcomes_issued.append(issue(unique[position]))
            position += 1
            if time.perf_counter() - began > SLOW_CALL_SECONDS and len(unique) - position > 1:
                break
        rest = unique[position:]
        workers = min(ISSUE_WORKERS, len(rest))
        if workers:
            stub = self._session.stub
            if stub is not None and getattr(stub, "poolSize", workers) < workers:
                stub.poolSize = workers  # keep one idle HTTP connection per issuing thread
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="virtabstract-esxi") as pool:
                outcomes_issued += pool.map(issue, rest)
        for vm_id, task, error in outcomes_issued:
            if task is not None:
                issued[vm_id] = task
            else:
                results[vm_id] = error
        with map_vim_faults("start_many"):
            outcomes = wait_for_tasks(
                self._session,
                list(issued.values()),
                timeout=self.task_timeout,
                progress=self.progress,
                clock=self.clock,
                what=f"starting {len(issued)} VMs",
            )
        for vm_id, task in issued.items():
            outcome = outcomes[str(task._moId)]
            if outcome.state == "error":
                fault = outcome.error if isinstance(outcome.error, BaseException) else BackendError("task failed")
                results[vm_id] = self._power_failure("start", vm_id, fault)
            else:
                results[vm_id] = None
        return {vm_id: results.get(vm_id) for vm_id in vm_ids}

    # -- lifecycle ---------------------------------------------------------------------------------

    def _require_stopped(self, operation: str, vm_id: str) -> tuple[Any, str]:
        ref, state, name = self._state(vm_id)
        if state is not PowerState.STOPPED:
            raise InvalidState(
                f"cannot {operation} VM {name!r}: it is {state.value} (needs stopped)", state=state, operation=operation
            )
        return ref, name

    def delete_vm(self, vm_id: str, *, delete_disks: bool) -> None:
        """Destroy_Task; without *delete_disks* the disks are detached first so their files survive."""
        with map_vim_faults("delete", f"VM {vm_id}"):
            ref, name = self._require_stopped("delete", vm_id)
            if not delete_disks:
                _, item = self._read_vm(vm_id, ("config.hardware.device",))
                builder = DeviceBuilder(existing=list(item.get("config.hardware.device", ())))
                for device in builder.existing:
                    if is_disk(device):
                        builder.remove(device, destroy_file=False)
                if builder.changes:
                    spec = sdk().vim.vm.ConfigSpec(deviceChange=builder.changes)
                    self._wait(self._call(lambda: ref.ReconfigVM_Task(spec)), f"detaching the disks of {name!r}")
            self._wait(self._call(lambda: ref.Destroy_Task()), f"deleting VM {name!r}")
        with self._ids_lock:
            self._ids.pop(vm_id.lower(), None)

    def unregister_vm(self, vm_id: str) -> None:
        """UnregisterVM: the VM leaves the inventory, its files stay on the datastore."""
        with map_vim_faults("unregister", f"VM {vm_id}"):
            ref, _ = self._require_stopped("unregister", vm_id)
            self._call(lambda: ref.UnregisterVM())
        with self._ids_lock:
            self._ids.pop(vm_id.lower(), None)

    # -- create -------------------------------------------------------------------------------------

    def create_vm(self, spec: VMSpec) -> VMInfo:
        """CreateVM_Task in the scope's (or first) datacenter; a half-made VM is destroyed on failure."""
        check_spec_for_vsphere(spec)
        with map_vim_faults("create", f"VM {spec.name!r}"):
            first_disk = next((d for d in spec.disks if isinstance(d, Disk) and d.storage), None)
            placement = self._placement(first_disk.storage if first_disk else None)
            guest_id = get_guest_os(spec.guest_os).vsphere
            self._check_guest_id(placement, guest_id)
            networks = self._network_refs() if spec.nics else {}
            config = config_spec_for(spec, guest_id=guest_id, datastore=placement.datastore, networks=networks)
            task = self._call(lambda: placement.folder.CreateVM_Task(config, placement.pool, placement.host))
            try:
                ref = self._wait(task, f"creating VM {spec.name!r}")
            except Exception:
                self._remove_half_made(placement.folder, spec.name)
                raise
            try:
                if tuple(spec.boot_order) != ("disk", "cdrom", "network"):
                    self._set_boot_order(ref, spec.boot_order)
                item = self._inventory.read("VirtualMachine", ref, VM_PROPERTIES)
                self._inventory_changed()
                return self._info(item)
            except BaseException:
                log.warning("creating VM %r failed after CreateVM_Task; destroying it", spec.name)
                try:
                    self._wait(self._call(lambda: ref.Destroy_Task()), f"rolling back VM {spec.name!r}")
                except Exception as exc:  # noqa: BLE001 - the original error matters more
                    log.error("rollback of VM %r failed: %s", spec.name, type(exc).__name__)
                raise

    def _inventory_changed(self) -> None:
        """A VM was added: renew views rooted below a datacenter (vcsim 0.24 does not update those)."""
        if self._scope_compute is not None:
            self._inventory.destroy_views()

    def _remove_half_made(self, folder: Any, name: str) -> None:
        try:
            ref = self._call(lambda: self._session.content.searchIndex.FindChild(folder, name))
            if ref is not None:
                log.warning("CreateVM_Task of %r failed but left a VM behind; destroying it", name)
                self._wait(self._call(lambda: ref.Destroy_Task()), f"rolling back VM {name!r}")
        except Exception as exc:  # noqa: BLE001 - best effort, the task's error is re-raised
            log.error("could not check for a half-made VM %r: %s", name, type(exc).__name__)

    def _set_boot_order(self, ref: Any, order: Sequence[str]) -> None:
        vim = sdk().vim
        item = self._inventory.read("VirtualMachine", ref, ["config.hardware.device"])
        devices = list(item.get("config.hardware.device", ()))
        boot: list[Any] = []
        for entry in order:
            if entry == "disk":
                disk = next((d for d in devices if is_disk(d)), None)
                if disk is not None:
                    boot.append(vim.vm.BootOptions.BootableDiskDevice(deviceKey=disk.key))
            elif entry == "cdrom":
                boot.append(vim.vm.BootOptions.BootableCdromDevice())
            elif entry == "network":
                nic = next((d for d in devices if is_nic(d)), None)
                if nic is not None:
                    boot.append(vim.vm.BootOptions.BootableEthernetDevice(deviceKey=nic.key))
        spec = vim.vm.ConfigSpec(bootOptions=vim.vm.BootOptions(bootOrder=boot))
        self._wait(self._call(lambda: ref.ReconfigVM_Task(spec)), "setting the boot order")

    def _placement(self, datastore: str | None) -> _Placement:
        inv = self._inventory
        dc = self._scope_dc
        if dc is None:
            dcs = inv.retrieve(inv.view_specs("Datacenter", ["name"], root=self._session.content.rootFolder))
            if not dcs:
                raise BackendError("the server has no datacenter to create VMs in")
            dc = dcs[0].obj
        dc_props = inv.read("Datacenter", dc, ["vmFolder", "hostFolder"])
        compute = self._scope_compute
        if compute is None:
            computes = inv.retrieve(
                inv.view_specs(
                    "ComputeResource",
                    ["name"],
                    types=["ClusterComputeResource", "ComputeResource"],
                    root=dc_props.get("hostFolder"),
                )
            )
            if not computes:
                raise BackendError("the datacenter has no host or cluster to create VMs on")
            computes.sort(key=lambda c: 0 if str(c.obj._wsdlName) == "ClusterComputeResource" else 1)
            compute = computes[0].obj
        compute_type = str(compute._wsdlName)
        props = inv.read(compute_type, compute, ["resourcePool", "host", "datastore", "environmentBrowser"])
        host = self._scope_host
        if host is None and compute_type == "ComputeResource" and props.get("host"):
            host = props.get("host")[0]
        candidates = list(props.get("datastore", ()))
        if host is not None and self._scope_host is not None:
            candidates = list(inv.read("HostSystem", host, ["datastore"]).get("datastore", ())) or candidates
        chosen = self._choose_datastore(candidates, datastore)
        return _Placement(
            datacenter=dc,
            folder=dc_props.get("vmFolder"),
            pool=props.get("resourcePool"),
            host=host,
            environment_browser=props.get("environmentBrowser"),
            datastore=chosen,
        )

    def _choose_datastore(self, candidates: Sequence[Any], wanted: str | None) -> str:
        if not candidates:
            raise StorageNotFound("the compute resource has no datastore")
        items = self._inventory.retrieve(
            self._inventory.object_specs(
                "Datastore", candidates, ["summary.name", "summary.freeSpace", "summary.accessible"]
            )
        )
        usable = [i for i in items if i.get("summary.accessible", True)]
        if wanted is not None:
            if any(i.get("summary.name") == wanted for i in usable):
                return wanted
            known = ", ".join(sorted(str(i.get("summary.name")) for i in usable)) or "none"
            raise StorageNotFound(f"no accessible datastore named {wanted!r} here (known: {known})")
        if not usable:
            raise StorageNotFound("no accessible datastore")
        best = max(usable, key=lambda i: int(i.get("summary.freeSpace", 0) or 0))
        return str(best.get("summary.name"))

    def _check_guest_id(self, placement: _Placement, guest_id: str) -> None:
        browser = placement.environment_browser
        if browser is None:
            return
        key = str(browser._moId)
        if key not in self._guest_ids:
            try:
                option = self._call(lambda: browser.QueryConfigOption(None, placement.host))
            except Exception as exc:  # noqa: BLE001 - optional check
                log.debug("QueryConfigOption unavailable (%s); guestId not checked", type(exc).__name__)
                self._guest_ids[key] = frozenset()
            else:
                descriptors = getattr(option, "guestOSDescriptor", None) or ()
                self._guest_ids[key] = frozenset(str(d.id) for d in descriptors)
        supported = self._guest_ids[key]
        if supported and guest_id not in supported:
            raise SpecError("guest_os", f"a guest OS this host supports (its vSphere guestId {guest_id!r} is not)")

    def _network_refs(self) -> dict[str, NetworkRef]:
        inv = self._inventory
        items = inv.retrieve(inv.view_specs("Network", ["name"], types=["Network", "dvs.DistributedVirtualPortgroup"]))
        refs: dict[str, NetworkRef] = {}
        dv_items = [i for i in items if str(i.obj._wsdlName) == "DistributedVirtualPortgroup"]
        switch_uuids: dict[str, str] = {}
        if dv_items:
            details = inv.retrieve(
                inv.object_specs(
                    "dvs.DistributedVirtualPortgroup",
                    [i.obj for i in dv_items],
                    ["key", "config.distributedVirtualSwitch"],
                )
            )
            switches = {
                str(d.get("config.distributedVirtualSwitch")._moId): d.get("config.distributedVirtualSwitch")
                for d in details
                if d.get("config.distributedVirtualSwitch") is not None
            }
            if switches:
                for sw in inv.retrieve(inv.object_specs("DistributedVirtualSwitch", list(switches.values()), ["uuid"])):
                    switch_uuids[sw.moid] = str(sw.get("uuid", ""))
            detail_by_moid = {d.moid: d for d in details}
        for item in items:
            name = str(item.get("name", ""))
            if str(item.obj._wsdlName) == "DistributedVirtualPortgroup":
                detail = detail_by_moid.get(item.moid)
                switch = detail.get("config.distributedVirtualSwitch") if detail else None
                refs[name] = NetworkRef(
                    name=name,
                    obj=item.obj,
                    distributed=True,
                    portgroup_key=str(detail.get("key", item.moid)) if detail else item.moid,
                    switch_uuid=switch_uuids.get(str(switch._moId), "") if switch is not None else "",
                )
            else:
                refs.setdefault(name, NetworkRef(name=name, obj=item.obj))
        return refs

    # -- reconfigure ----------------------------------------------------------------------------------

    def plan_reconfigure(self, vm_id: str, changes: Mapping[str, Any]) -> list[ReconfigureChange]:
        """CPU/memory are live only when the hot-add flag is set (and only upwards); text is always live."""
        with map_vim_faults("reconfigure", f"VM {vm_id}"):
            _, item = self._read_vm(
                vm_id,
                (
                    "runtime.powerState",
                    "runtime.connectionState",
                    "config.hardware.numCPU",
                    "config.hardware.memoryMB",
                    "config.cpuHotAddEnabled",
                    "config.cpuHotRemoveEnabled",
                    "config.memoryHotAddEnabled",
                    "config.annotation",
                    "config.extraConfig",
                ),
            )
        state = map_state(item.get("runtime.powerState"), item.get("runtime.connectionState", "connected"))
        current = vm_info_from_props(item)
        plan = []
        for field_name, new in changes.items():
            old = getattr(current, field_name)
            if state is PowerState.STOPPED:
                mode = "offline"
            elif field_name in ("description", "tags"):
                mode = "live"
            elif state is not PowerState.RUNNING:
                mode = "needs_power_off"
            elif field_name == "cpus":
                grow = new > old and item.get("config.cpuHotAddEnabled", False)
                shrink = new < old and item.get("config.cpuHotRemoveEnabled", False)
                mode = "live" if grow or shrink else "needs_power_off"
            elif field_name == "memory_mib":
                mode = "live" if new > old and item.get("config.memoryHotAddEnabled", False) else "needs_power_off"
            else:
                mode = "needs_power_off"
            plan.append(ReconfigureChange(field_name, old, new, mode))
        return plan

    def apply_reconfigure(self, vm_id: str, changes: Sequence[ReconfigureChange]) -> None:
        """One ReconfigVM_Task with every change (vSphere has no deferred configuration)."""
        vim = sdk().vim
        spec = vim.vm.ConfigSpec()
        for change in changes:
            if change.mode == "deferred":
                self.unsupported("deferred reconfigure", "vSphere applies configuration changes immediately")
            if change.field == "cpus":
                spec.numCPUs = int(change.new)
            elif change.field == "memory_mib":
                spec.memoryMB = int(change.new)
            elif change.field == "description":
                spec.annotation = str(change.new)
            elif change.field == "tags":
                spec.extraConfig = [tags_option(change.new)]
        with map_vim_faults("reconfigure", f"VM {vm_id}"):
            ref = self._vm_ref(vm_id)
            self._wait(self._call(lambda: ref.ReconfigVM_Task(spec)), f"reconfiguring VM {vm_id}")

    # -- resources -------------------------------------------------------------------------------------

    def get_resources(self, vm_id: str) -> ResourceAllocation:
        """CpuAllocation / memoryAllocation: limit (-1 = none), reservation, shares."""
        with map_vim_faults("get_resources", f"VM {vm_id}"):
            _, item = self._read_vm(vm_id, ("config.cpuAllocation", "config.memoryAllocation"))
        cpu = item.get("config.cpuAllocation")
        mem = item.get("config.memoryAllocation")

        def limit(alloc: Any) -> int | None:
            value = getattr(alloc, "limit", None) if alloc is not None else None
            return None if value is None or int(value) < 0 else int(value)

        def reservation(alloc: Any) -> int | None:
            value = getattr(alloc, "reservation", None) if alloc is not None else None
            return None if not value else int(value)

        def shares(alloc: Any) -> int | None:
            info = getattr(alloc, "shares", None) if alloc is not None else None
            if info is None or getattr(info, "level", "normal") != "custom":
                return None
            return int(info.shares)

        return ResourceAllocation(
            cpu_limit_mhz=limit(cpu),
            cpu_reservation_mhz=reservation(cpu),
            cpu_shares=shares(cpu),
            memory_limit_mib=limit(mem),
            memory_reservation_mib=reservation(mem),
            memory_shares=shares(mem),
        )

    def set_resources(self, vm_id: str, resources: ResourceAllocation) -> ResourceAllocation:
        """Write both allocations in one ReconfigVM_Task; ``None`` means unlimited / 0 / normal shares."""
        if resources.disk_weight is not None:
            self.unsupported("resources", "disk_weight: vSphere sets disk shares per virtual disk")
        vim = sdk().vim

        def allocation(limit: int | None, reservation: int | None, shares: int | None) -> Any:
            level = (
                vim.SharesInfo(level="custom", shares=shares)
                if shares is not None
                else vim.SharesInfo(level="normal", shares=0)
            )
            return vim.ResourceAllocationInfo(
                limit=-1 if limit is None else limit, reservation=reservation or 0, shares=level
            )

        spec = vim.vm.ConfigSpec(
            cpuAllocation=allocation(resources.cpu_limit_mhz, resources.cpu_reservation_mhz, resources.cpu_shares),
            memoryAllocation=allocation(
                resources.memory_limit_mib, resources.memory_reservation_mib, resources.memory_shares
            ),
        )
        with map_vim_faults("set_resources", f"VM {vm_id}"):
            ref = self._vm_ref(vm_id)
            self._wait(self._call(lambda: ref.ReconfigVM_Task(spec)), f"setting resources of VM {vm_id}")
        return self.get_resources(vm_id)

    # -- devices ------------------------------------------------------------------------------------------

    def _devices(self, vm_id: str) -> tuple[Any, list[Any], str]:
        ref, item = self._read_vm(vm_id, ("config.hardware.device", "config.guestId", "name"))
        return ref, list(item.get("config.hardware.device", ())), str(item.get("config.guestId", ""))

    def _reconfig_devices(self, ref: Any, builder: DeviceBuilder, what: str) -> None:
        spec = sdk().vim.vm.ConfigSpec(deviceChange=builder.changes)
        self._wait(self._call(lambda: ref.ReconfigVM_Task(spec)), what)

    @staticmethod
    def _find_device(devices: Sequence[Any], device_id: str, kind: str, predicate: Callable[[Any], bool]) -> Any:
        for device in devices:
            if predicate(device) and (
                str(device.key) == device_id
                or str(getattr(device, "macAddress", "") or "").lower() == device_id.lower()
            ):
                return device
        raise DeviceNotFound(f"the VM has no {kind} with id {device_id!r}")

    def add_disk(self, vm_id: str, disk: Disk) -> DiskInfo:
        """Add a disk (thin by default) on the VM's datastore or ``disk.storage``."""
        with map_vim_faults("add_disk", f"VM {vm_id}"):
            ref, devices, guest_id = self._devices(vm_id)
            existing_path = next((str(d.backing.fileName) for d in devices if is_disk(d)), "")
            from ._inventory import datastore_of

            datastore = disk.storage or datastore_of(existing_path)
            if not datastore:
                datastore = self._vm_datastore(ref)
            before = {int(d.key) for d in devices}
            entry = _guest_family_of(guest_id)
            builder = DeviceBuilder(existing=devices, guest_family=entry)
            builder.add_disk(disk, datastore, path="disk")
            self._reconfig_devices(ref, builder, f"adding a disk to VM {vm_id}")
            info = self.get_vm(vm_id)
            new = [d for d in info.disks if int(d.id) not in before]
            if not new:
                raise BackendError("the disk was added but does not appear in the VM's configuration")
            return new[0]

    def _vm_datastore(self, ref: Any) -> str:
        item = self._inventory.read("VirtualMachine", ref, ["config.files.vmPathName"])
        from ._inventory import datastore_of

        return datastore_of(str(item.get("config.files.vmPathName", "")))

    def remove_disk(self, vm_id: str, disk_id: str, *, delete: bool) -> None:
        """Detach the disk; with *delete* its VMDK is destroyed too."""
        with map_vim_faults("remove_disk", f"VM {vm_id}", not_found=DeviceNotFound):
            ref, devices, _ = self._devices(vm_id)
            device = self._find_device(devices, disk_id, "disk", is_disk)
            builder = DeviceBuilder(existing=devices)
            builder.remove(device, destroy_file=delete)
            self._reconfig_devices(ref, builder, f"removing disk {disk_id} of VM {vm_id}")

    def resize_disk(self, vm_id: str, disk_id: str, size_mib: int) -> DiskInfo:
        """Grow the disk's capacity (the guest must grow its file system itself)."""
        with map_vim_faults("resize_disk", f"VM {vm_id}", not_found=DeviceNotFound):
            ref, devices, _ = self._devices(vm_id)
            device = self._find_device(devices, disk_id, "disk", is_disk)
            device.capacityInKB = size_mib * 1024
            if getattr(device, "capacityInBytes", None):
                device.capacityInBytes = size_mib * MIB
            builder = DeviceBuilder(existing=devices)
            builder.edit(device)
            self._reconfig_devices(ref, builder, f"resizing disk {disk_id} of VM {vm_id}")
            info = self.get_vm(vm_id)
        return next(d for d in info.disks if d.id == disk_id)

    def add_nic(self, vm_id: str, nic: Nic) -> NicInfo:
        """Add a vmxnet3 (or e1000e/e1000) NIC on a standard or distributed port group."""
        with map_vim_faults("add_nic", f"VM {vm_id}"):
            ref, devices, _ = self._devices(vm_id)
            network = resolve_network(nic.network, self._network_refs(), path="nic.network")
            before = {int(d.key) for d in devices}
            builder = DeviceBuilder(existing=devices)
            builder.add_nic(nic, network, path="nic")
            self._reconfig_devices(ref, builder, f"adding a NIC to VM {vm_id}")
            info = self.get_vm(vm_id)
        new = [n for n in info.nics if int(n.id) not in before]
        if not new:
            raise BackendError("the NIC was added but does not appear in the VM's configuration")
        return new[0]

    def remove_nic(self, vm_id: str, nic_id: str) -> None:
        """Remove the NIC (by device key or MAC address)."""
        with map_vim_faults("remove_nic", f"VM {vm_id}", not_found=DeviceNotFound):
            ref, devices, _ = self._devices(vm_id)
            device = self._find_device(devices, nic_id, "NIC", is_nic)
            builder = DeviceBuilder(existing=devices)
            builder.remove(device)
            self._reconfig_devices(ref, builder, f"removing NIC {nic_id} of VM {vm_id}")

    def update_nic(self, vm_id: str, nic_id: str, *, network: str | None, connected: bool | None) -> NicInfo:
        """Move the NIC to another port group and/or connect or disconnect it."""
        with map_vim_faults("update_nic", f"VM {vm_id}", not_found=DeviceNotFound):
            ref, devices, _ = self._devices(vm_id)
            device = self._find_device(devices, nic_id, "NIC", is_nic)
            if network is not None:
                device.backing = backing_for(resolve_network(network, self._network_refs(), path="network"))
            if connected is not None:
                connectable = device.connectable or sdk().vim.vm.device.VirtualDevice.ConnectInfo()
                connectable.connected = connected
                connectable.startConnected = connected
                device.connectable = connectable
            builder = DeviceBuilder(existing=devices)
            builder.edit(device)
            self._reconfig_devices(ref, builder, f"updating NIC {nic_id} of VM {vm_id}")
            key = str(device.key)
            info = self.get_vm(vm_id)
        return next(n for n in info.nics if n.id == key)

    # -- snapshots ----------------------------------------------------------------------------------------

    def list_snapshots(self, vm_id: str) -> list[SnapshotInfo]:
        """The whole tree from ``snapshot`` (read through the PropertyCollector: absent means none)."""
        with map_vim_faults("snapshots", f"VM {vm_id}", not_found=SnapshotNotFound):
            _, item = self._read_vm(vm_id, ("snapshot",), lean=True)
        return snapshot_infos(vm_id, item.get("snapshot"))

    def create_snapshot(self, vm_id: str, name: str, *, description: str, memory: bool, quiesce: bool) -> SnapshotInfo:
        """CreateSnapshot_Task; the new node is read from the tree in the same call that sees the task end.

        *memory* is passed as asked: vSphere ignores it for a VM that is not running (no state
        read first). The tree is read back rather than the record built from the task result,
        because its parent, creation time and recorded power state are the server's; that read
        rides along with the task's first status look (one ``RetrievePropertiesEx``), so a
        snapshot costs the call plus one round trip. The call and the read go through
        :mod:`._lean` (the tree is decoded without pyVmomi's objects).
        """
        with map_vim_faults("snapshot_create", f"VM {vm_id}"):
            ref, task = self._on_vm(
                vm_id, lambda r: invoke(r, "CreateSnapshot_Task", name, description, memory, quiesce)
            )
            result, values = wait_for_task_and_read(
                self._session,
                task,
                (ref, "VirtualMachine", ("snapshot",)),
                timeout=self.task_timeout,
                progress=self.progress,
                clock=self.clock,
                what=f"snapshot {name!r} of VM {vm_id}",
            )
        snap_id = str(result._moId) if result is not None else ""
        # values is None when the task was still running at the first look: read the tree again
        snapshots = snapshot_infos(vm_id, values.get("snapshot")) if values is not None else self.list_snapshots(vm_id)
        for info in snapshots:
            if info.id == snap_id:
                return info
        matches = [s for s in snapshots if s.name == name and s.is_current]
        if matches:
            return matches[0]
        raise BackendError(f"snapshot {name!r} was created but is not in the VM's snapshot tree")

    def _snapshot_ref(self, vm_id: str, snapshot_id: str) -> Any:
        if not any(s.id == snapshot_id for s in self.list_snapshots(vm_id)):
            raise SnapshotNotFound(f"VM {vm_id} has no snapshot with id {snapshot_id!r}")
        return self._session.moref("vm.Snapshot", snapshot_id)

    def revert_snapshot(self, vm_id: str, snapshot_id: str) -> None:
        """RevertToSnapshot_Task (a memory snapshot brings the VM back running)."""
        with map_vim_faults("snapshot_revert", f"VM {vm_id}", not_found=SnapshotNotFound):
            snap = self._snapshot_ref(vm_id, snapshot_id)
            task = self._call(lambda: invoke(snap, "RevertToSnapshot_Task", None, False))
            self._wait(task, f"reverting to {snapshot_id}")

    def delete_snapshot(self, vm_id: str, snapshot_id: str, *, children: bool) -> None:
        """RemoveSnapshot_Task(removeChildren=children, consolidate=True)."""
        with map_vim_faults("snapshot_delete", f"VM {vm_id}", not_found=SnapshotNotFound):
            snap = self._snapshot_ref(vm_id, snapshot_id)
            task = self._call(lambda: invoke(snap, "RemoveSnapshot_Task", children, True))
            self._wait(task, f"deleting {snapshot_id}")

    def delete_all_snapshots(self, vm_id: str) -> None:
        """RemoveAllSnapshots_Task (non-portable extra: ``hv.backend.delete_all_snapshots(vm.id)``)."""
        with map_vim_faults("snapshot_delete", f"VM {vm_id}"):
            ref = self._vm_ref(vm_id)
            task = self._call(lambda: invoke(ref, "RemoveAllSnapshots_Task"))
            self._wait(task, f"deleting every snapshot of {vm_id}")

    # -- clone ------------------------------------------------------------------------------------------------

    def clone_vm(self, vm_id: str, name: str, *, linked: bool, snapshot_id: str | None) -> VMInfo:
        """CloneVM_Task through vCenter; linked clones share the snapshot's disks (createNewChildDiskBacking)."""
        if not self._session.is_vcenter:
            self.unsupported("clone", CLONE_NEEDS_VCENTER)
        vim = sdk().vim
        with map_vim_faults("clone", f"VM {vm_id}"):
            ref, item = self._read_vm(vm_id, ("parent", "resourcePool", "snapshot"))
            snap = None
            if snapshot_id is not None:
                snap = self._snapshot_ref(vm_id, snapshot_id)
            elif linked:
                current = getattr(item.get("snapshot"), "currentSnapshot", None)
                if current is None:
                    raise InvalidState(
                        "a linked clone is made from a snapshot: take one first (vm.snapshots.create(...))",
                        operation="clone",
                    )
                snap = current
            relocate = vim.vm.RelocateSpec(pool=item.get("resourcePool"))
            if linked:
                relocate.diskMoveType = "createNewChildDiskBacking"
            spec = vim.vm.CloneSpec(location=relocate, powerOn=False, template=False, snapshot=snap)
            folder = item.get("parent")
            if folder is None:
                raise UnsupportedOperation(self.name, "clone", "the VM is in a vApp; clone it with the vSphere client")
            task = self._call(lambda: ref.CloneVM_Task(folder, name, spec))
            new_ref = self._wait(task, f"cloning VM {vm_id} as {name!r}")
            self._inventory_changed()
            return self._info(self._inventory.read("VirtualMachine", new_ref, VM_PROPERTIES))

    # -- console ------------------------------------------------------------------------------------------------

    def console(self, vm_id: str) -> ConsoleInfo:
        """A WebMKS ticket (``AcquireTicket("webmks")``); the ticket is the Secret password."""
        with map_vim_faults("console", f"VM {vm_id}"):
            ref = self._vm_ref(vm_id)
            ticket = self._call(lambda: ref.AcquireTicket("webmks"))
        host = str(getattr(ticket, "host", "") or self._session.host)
        port = int(getattr(ticket, "port", 0) or 443)
        secret = str(ticket.ticket)
        return ConsoleInfo(
            protocol="webmks",
            host=host,
            port=port,
            password=Secret(secret),
            tls_port=port,
            url=str(getattr(ticket, "url", "") or ""),
        )

    # -- guest ----------------------------------------------------------------------------------------------------

    def _guest_ops(self) -> GuestOps:
        if self._guest is None:
            raise ConnectionFailed("the connection is not open")
        return self._guest

    def guest_info(self, vm_id: str) -> GuestInfo:
        """VMware Tools' report (one property read)."""
        with map_vim_faults("guest_info", f"VM {vm_id}"):
            _, item = self._read_vm(vm_id, GUEST_PROPERTIES)
        return guest_info_from_props(item.props)

    def guest_ip_addresses(self, vm_id: str) -> list[IPAddressInfo]:
        """Addresses from ``guest.net`` (Tools), the primary ``guest.ipAddress`` first."""
        with map_vim_faults("guest_ip_addresses", f"VM {vm_id}"):
            _, item = self._read_vm(vm_id, ("guest.net", "guest.ipAddress", "guest.toolsRunningStatus"))
        found = ip_addresses_from_net(list(item.get("guest.net", ())), item.get("guest.ipAddress"))
        if not found and item.get("guest.toolsRunningStatus") != "guestToolsRunning":
            raise GuestAgentUnavailable("VMware Tools are not running, so the guest's addresses are unknown")
        return found

    def _guest_ready(self, vm_id: str) -> tuple[Any, OSFamily]:
        """The VM proxy and guest family, once Tools are known to run (one property read)."""
        ref, item = self._read_vm(
            vm_id, ("runtime.powerState", "guest.toolsRunningStatus", "guest.guestFamily", "config.guestId")
        )
        if item.get("runtime.powerState") != "poweredOn":
            raise GuestAgentUnavailable("the VM is not running, so VMware Tools cannot answer")
        if item.get("guest.toolsRunningStatus") != "guestToolsRunning":
            status = item.get("guest.toolsRunningStatus") or "unknown"
            raise GuestAgentUnavailable(f"VMware Tools are not running in the guest (toolsRunningStatus={status})")
        family = guest_family(item.get("guest.guestFamily"))
        if family is OSFamily.OTHER:
            family = _guest_family_of(str(item.get("config.guestId", "")))
        return ref, family

    def guest_exec(
        self, vm_id: str, argv: Sequence[str], *, stdin: bytes | None, timeout: float, env: Mapping[str, str]
    ) -> ExecResult:
        """StartProgramInGuest with output redirected to guest temp files (see :mod:`._guest`)."""
        with map_vim_faults("guest_exec", f"VM {vm_id}"):
            ref, family = self._guest_ready(vm_id)
            return self._guest_ops().exec(ref, argv, family=family, stdin=stdin, timeout=timeout, env=env)

    def guest_read_file(self, vm_id: str, path: str) -> bytes:
        """InitiateFileTransferFromGuest + HTTPS GET."""
        with map_vim_faults("guest_read_file", f"VM {vm_id}"):
            ref, _ = self._guest_ready(vm_id)
            return self._guest_ops().read_file(ref, path)

    def guest_write_file(self, vm_id: str, path: str, data: bytes) -> None:
        """InitiateFileTransferToGuest + HTTPS PUT."""
        with map_vim_faults("guest_write_file", f"VM {vm_id}"):
            ref, _ = self._guest_ready(vm_id)
            self._guest_ops().write_file(ref, path, data)


def _guest_family_of(guest_id: str) -> OSFamily:
    from virtabstract import guest_os_from_native

    entry = guest_os_from_native("vsphere", guest_id) if guest_id else None
    return entry.family if entry is not None else OSFamily.OTHER


def _ctx(operation: str, subject: str) -> Any:
    from ._faults import FaultContext

    return FaultContext(operation, subject)


_CTX = _ctx("", "")
