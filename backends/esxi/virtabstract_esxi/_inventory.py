"""Reading the inventory through the PropertyCollector, never through pyVmomi attribute access.

Every read names its exact property paths (``pathSet``) and goes through
``RetrievePropertiesEx``/``ContinueRetrievePropertiesEx``: one round trip per page
(:data:`PAGE_SIZE` objects) however many VMs exist. pyVmomi's lazy attribute reads
(``vm.runtime.powerState``) are avoided because each is a round trip (a ``Fetch``)
and vcsim 0.24 crashes on some of them (an unset property, govmomi #3337).

VMs are seen through one ContainerView per session (recursive, rooted at the URL's
scope: the whole inventory, a datacenter, a cluster or a host), created lazily and
recreated after a re-login, because views belong to a session.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from virtabstract import (
    DiskInfo,
    Firmware,
    NetworkInfo,
    NicInfo,
    StorageInfo,
    VMInfo,
    VMSummary,
    guest_os_from_native,
)

from ._lean import Read, read_objects, retrieve_scalars
from ._sdk import sdk, vim_type
from ._session import Session
from ._states import map_state, native_power_state

__all__ = [
    "PAGE_SIZE",
    "SUMMARY_PROPERTIES",
    "TAGS_KEY",
    "VM_PROPERTIES",
    "Inventory",
    "ObjectProps",
    "vm_info_from_props",
    "vm_summary",
    "vm_summary_from_props",
]

log = logging.getLogger("virtabstract.esxi")

PAGE_SIZE = 500
"""``RetrieveOptions.maxObjects``: objects per page of a property retrieval."""

TAGS_KEY = "virtabstract.tags"
"""extraConfig key holding the VM's virtabstract tags (comma-separated)."""

VM_PROPERTIES: tuple[str, ...] = (
    "name",
    "runtime.powerState",
    "runtime.connectionState",
    "config.instanceUuid",
    "config.guestId",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "config.hardware.device",
    "config.annotation",
    "config.firmware",
    "config.extraConfig",
    "config.template",
)
"""Everything a :class:`~virtabstract.VMInfo` needs, and nothing else."""

SUMMARY_PROPERTIES: tuple[str, ...] = (
    "name",
    "runtime.powerState",
    "runtime.connectionState",
    "config.instanceUuid",
    "config.guestId",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "guest.ipAddress",
)
"""What a :class:`~virtabstract.VMSummary` needs: scalars only.

No tags: they live in ``config.extraConfig``, and selecting one key
(``config.extraConfig["virtabstract.tags"]``) is not supported by vcsim 0.24 (it answers
InvalidProperty), while the whole list costs as much as the rest of the summary. No
``guest.net`` either: a nested object per NIC, where ``guest.ipAddress`` (Tools' primary
address) is one string; :meth:`VM.guest.ip_addresses` has every address.
"""

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MOREF_RE = re.compile(r"^vm-\d+$")
_DS_PATH_RE = re.compile(r"^\[([^\]]*)\]\s*(.*)$")


@dataclass(frozen=True)
class ObjectProps:
    """One object of a property retrieval: its managed-object proxy and its property values by path."""

    obj: Any
    props: Mapping[str, Any]

    @property
    def moid(self) -> str:
        """The managed object id (``vm-12``)."""
        return str(self.obj._moId)

    def get(self, path: str, default: Any = None) -> Any:
        """The value of *path*, or *default* when the server left it unset."""
        value = self.props.get(path, default)
        return default if value is None else value


def datastore_of(path: str) -> str:
    """``"datastore1"`` from ``"[datastore1] vm/vm.vmdk"``."""
    match = _DS_PATH_RE.match(path or "")
    return match.group(1) if match else ""


def _kind(obj: Any) -> str:
    """The vim type name without the ``vim.`` prefix (``vm.device.VirtualDisk``)."""
    return type(obj).__name__.removeprefix("vim.")


def isa(obj: Any, vim_type: str) -> bool:
    """True when *obj* is a (subclass of) vim type *vim_type*, e.g. ``"vm.device.VirtualDisk"``."""
    wanted = "vim." + vim_type
    return any(cls.__name__ == wanted for cls in type(obj).__mro__)


_CONTROLLER_BUSES = (
    ("vm.device.VirtualSCSIController", "scsi"),
    ("vm.device.VirtualSATAController", "sata"),
    ("vm.device.VirtualIDEController", "ide"),
    ("vm.device.VirtualNVMEController", "nvme"),
)


def controller_bus(device: Any) -> str:
    """The bus a controller device provides: ``scsi``, ``sata``, ``ide``, ``nvme`` or ``""``."""
    for type_name, bus in _CONTROLLER_BUSES:
        if isa(device, type_name):
            return bus
    return ""


def is_disk(device: Any) -> bool:
    """True for ``VirtualDisk``."""
    return isa(device, "vm.device.VirtualDisk")


def is_nic(device: Any) -> bool:
    """True for any ``VirtualEthernetCard`` (vmxnet3, e1000e, …)."""
    return isa(device, "vm.device.VirtualEthernetCard")


def is_cdrom(device: Any) -> bool:
    """True for ``VirtualCdrom``."""
    return isa(device, "vm.device.VirtualCdrom")


NIC_MODELS: Mapping[str, str] = {
    "VirtualVmxnet3": "vmxnet3",
    "VirtualVmxnet3Vrdma": "vmxnet3",
    "VirtualE1000e": "e1000e",
    "VirtualE1000": "e1000",
    "VirtualPCNet32": "pcnet",
    "VirtualVmxnet2": "vmxnet2",
    "VirtualVmxnet": "vmxnet",
    "VirtualSriovEthernetCard": "sriov",
}


def nic_model(device: Any) -> str:
    """The virtabstract NIC model of a vSphere ethernet card."""
    return NIC_MODELS.get(_kind(device).rsplit(".", 1)[-1], _kind(device).rsplit(".", 1)[-1])


def disk_info(device: Any, buses: Mapping[int, str]) -> DiskInfo:
    """A DiskInfo from a ``VirtualDisk``."""
    backing = device.backing
    capacity_kb = int(getattr(device, "capacityInKB", 0) or 0)
    capacity_bytes = int(getattr(device, "capacityInBytes", 0) or 0)
    size_mib = capacity_bytes // (1024 * 1024) if capacity_bytes else capacity_kb // 1024
    path = str(getattr(backing, "fileName", "") or "")
    parent = getattr(backing, "parent", None)
    thin = getattr(backing, "thinProvisioned", None)
    return DiskInfo(
        id=str(device.key),
        size_mib=size_mib,
        path=path,
        storage=datastore_of(path),
        bus=buses.get(int(getattr(device, "controllerKey", 0) or 0), ""),
        format="vmdk",
        thin=bool(thin) if thin is not None else False,
        backing=str(getattr(parent, "fileName", "") or "") if parent is not None else "",
    )


def nic_info(device: Any, network_names: Mapping[str, str]) -> NicInfo:
    """A NicInfo from a ``VirtualEthernetCard``; DV portgroup keys are named through *network_names*."""
    backing = device.backing
    network = ""
    kind = "network"
    port = getattr(backing, "port", None)
    if port is not None and getattr(port, "portgroupKey", None):
        key = str(port.portgroupKey)
        network = network_names.get(key, key)
        kind = "network"
    else:
        network = str(getattr(backing, "deviceName", "") or "")
    connectable = getattr(device, "connectable", None)
    connected = True
    if connectable is not None:
        connected = bool(getattr(connectable, "connected", False) or getattr(connectable, "startConnected", False))
    return NicInfo(
        id=str(device.key),
        mac=str(getattr(device, "macAddress", "") or "").lower(),
        network=network,
        kind=kind,
        model=nic_model(device),
        connected=connected,
    )


def tags_from_extra_config(extra: Iterable[Any]) -> tuple[str, ...]:
    """Virtabstract's tags from ``config.extraConfig`` (the last entry wins: vcsim appends instead of replacing)."""
    value: str | None = None
    for option in extra or ():
        if getattr(option, "key", None) == TAGS_KEY:
            value = str(getattr(option, "value", "") or "")
    if value is None:
        return ()
    return tuple(sorted({t for t in value.split(",") if t}))


def vm_info_from_props(item: ObjectProps, network_names: Mapping[str, str] | None = None) -> VMInfo:
    """Build a :class:`~virtabstract.VMInfo` from one retrieval of :data:`VM_PROPERTIES`."""
    devices = list(item.get("config.hardware.device", ()))
    buses = {int(d.key): controller_bus(d) for d in devices if controller_bus(d)}
    names = network_names or {}
    disks = tuple(disk_info(d, buses) for d in devices if is_disk(d))
    nics = tuple(nic_info(d, names) for d in devices if is_nic(d))
    cdrom: str | None = None
    for device in devices:
        if is_cdrom(device):
            cdrom = str(getattr(device.backing, "fileName", "") or "") or None
            break
    guest_id = str(item.get("config.guestId", "") or "")
    entry = guest_os_from_native("vsphere", guest_id) if guest_id else None
    power = item.get("runtime.powerState")
    connection = item.get("runtime.connectionState", "connected")
    power_text = str(power) if power is not None else None
    connection_text = str(connection) if connection is not None else None
    firmware = Firmware.UEFI if str(item.get("config.firmware", "bios")) == "efi" else Firmware.BIOS
    return VMInfo(
        id=str(item.get("config.instanceUuid", "") or item.moid),
        name=str(item.get("name", "")),
        state=map_state(power_text, connection_text),
        native_state=native_power_state(power_text, connection_text),
        cpus=int(item.get("config.hardware.numCPU", 0) or 0),
        memory_mib=int(item.get("config.hardware.memoryMB", 0) or 0),
        guest_os=entry.id if entry is not None else None,
        guest_os_native=guest_id,
        disks=disks,
        nics=nics,
        description=str(item.get("config.annotation", "") or ""),
        tags=tags_from_extra_config(item.get("config.extraConfig", ())),
        firmware=firmware,
        cdrom=cdrom,
        backend="esxi",
    )


_GUEST_OS_IDS: dict[str, str | None] = {}


def _guest_os_id(guest_id: str) -> str | None:
    """The catalogue id of a vSphere guestId (memoised: a fleet has a handful of distinct ids)."""
    try:
        return _GUEST_OS_IDS[guest_id]
    except KeyError:
        entry = guest_os_from_native("vsphere", guest_id) if guest_id else None
        found = _GUEST_OS_IDS[guest_id] = entry.id if entry is not None else None
        return found


def vm_summary_from_props(item: ObjectProps) -> VMSummary:
    """Build a :class:`~virtabstract.VMSummary` from one retrieval of :data:`SUMMARY_PROPERTIES`."""
    return vm_summary(item.moid, item.props)


def vm_summary(moid: str, props: Mapping[str, Any]) -> VMSummary:
    """Build a :class:`~virtabstract.VMSummary` from :data:`SUMMARY_PROPERTIES` values (pyVmomi's or text)."""
    power = props.get("runtime.powerState")
    connection = props.get("runtime.connectionState") or "connected"
    power_text = str(power) if power is not None else None
    connection_text = str(connection)
    guest_id = str(props.get("config.guestId") or "")
    address = props.get("guest.ipAddress")
    return VMSummary(
        id=str(props.get("config.instanceUuid") or moid),
        name=str(props.get("name") or ""),
        state=map_state(power_text, connection_text),
        native_state=native_power_state(power_text, connection_text),
        cpus=int(props.get("config.hardware.numCPU") or 0),
        memory_mib=int(props.get("config.hardware.memoryMB") or 0),
        guest_os=_guest_os_id(guest_id),
        guest_os_native=guest_id,
        ip_addresses=(str(address),) if address else (),
    )


class Inventory:
    """Property retrieval and the session's container views."""

    def __init__(self, session: Session, scope: Callable[[], Any]) -> None:
        self.session = session
        self._scope = scope
        self._views: dict[tuple[str, ...], tuple[int, Any]] = {}
        self._lock = threading.Lock()

    # -- views ------------------------------------------------------------------------

    def view(self, types: Sequence[str], root: Any = None) -> Any:
        """A recursive ContainerView of *types* under the scope (created once per session generation)."""
        key = (*types, str(getattr(root, "_moId", "")))
        generation = self.session.generation
        with self._lock:
            cached = self._views.get(key)
            if cached is not None and cached[0] == generation:
                return cached[1]
        container = root if root is not None else self._scope()
        type_objs = [vim_type(t) for t in types]
        view = self.session.content.viewManager.CreateContainerView(container, type_objs, True)
        with self._lock:
            self._views[key] = (generation, view)
        return view

    def destroy_views(self) -> None:
        """Destroy the cached views (best effort, at close)."""
        with self._lock:
            views = [v for g, v in self._views.values() if g == self.session.generation]
            self._views.clear()
        for view in views:
            try:
                view.DestroyView()
            except Exception as exc:  # noqa: BLE001 - cleanup at close
                log.debug("DestroyView failed: %s", type(exc).__name__)

    # -- retrieval ----------------------------------------------------------------------

    def _retrieve_pages(self, specs: list[Any]) -> list[ObjectProps]:
        vmodl = sdk().vmodl
        pc = self.session.content.propertyCollector
        options = vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=PAGE_SIZE)
        result = pc.RetrievePropertiesEx(specs, options)
        out: list[ObjectProps] = []
        while result is not None:
            for content in result.objects or ():
                props = {p.name: p.val for p in (content.propSet or ())}
                out.append(ObjectProps(content.obj, props))
            token = getattr(result, "token", None)
            if not token:
                break
            result = pc.ContinueRetrievePropertiesEx(token)
        return out

    def retrieve_scalars(self, build_specs: Callable[[], list[Any]]) -> list[tuple[str, Mapping[str, Any]]]:
        """Like :meth:`retrieve` for scalar paths only, read with :mod:`._lean` (pyVmomi as the fallback).

        Returns ``(moid, {path: value})``; values are text from the lean reader, pyVmomi's
        objects from the fallback: convert them with ``str``/``int``.
        """

        def lean() -> list[tuple[str, Mapping[str, Any]]]:
            pc = self.session.content.propertyCollector
            found = retrieve_scalars(self.session.stub, pc, build_specs(), PAGE_SIZE)
            if found is not None:
                return list(found)
            return [(item.moid, item.props) for item in self._retrieve_pages(build_specs())]

        return self.session.call(lean)

    def retrieve(self, build_specs: Callable[[], list[Any]]) -> list[ObjectProps]:
        """Run a paged retrieval; *build_specs* is called again (fresh views) after a re-login."""
        return self.session.call(lambda: self._retrieve_pages(build_specs()))

    def view_specs(
        self, type_name: str, paths: Sequence[str], types: Sequence[str] | None = None, root: Any = None
    ) -> Callable[[], list[Any]]:
        """Specs reading *paths* of every *type_name* object in the scope's view."""
        vmodl = sdk().vmodl
        q = vmodl.query.PropertyCollector

        def build() -> list[Any]:
            view = self.view(types or [type_name], root)
            traversal = q.TraversalSpec(
                name="traverseView", path="view", skip=False, type=vim_type("view.ContainerView")
            )
            obj_spec = q.ObjectSpec(obj=view, skip=True, selectSet=[traversal])
            prop_specs = [
                q.PropertySpec(type=vim_type(t), pathSet=list(paths), all=False) for t in (types or [type_name])
            ]
            return [q.FilterSpec(objectSet=[obj_spec], propSet=prop_specs)]

        return build

    def object_specs(self, type_name: str, objects: Sequence[Any], paths: Sequence[str]) -> Callable[[], list[Any]]:
        """Specs reading *paths* of the given objects (all of one type)."""
        vmodl = sdk().vmodl
        q = vmodl.query.PropertyCollector

        def build() -> list[Any]:
            obj_specs = [q.ObjectSpec(obj=o, skip=False) for o in objects]
            prop = q.PropertySpec(type=vim_type(type_name), pathSet=list(paths), all=False)
            return [q.FilterSpec(objectSet=obj_specs, propSet=[prop])]

        return build

    def read(self, type_name: str, obj: Any, paths: Sequence[str]) -> ObjectProps:
        """The *paths* of one object (one round trip). Missing object → ManagedObjectNotFound."""
        found = self.retrieve(self.object_specs(type_name, [obj], paths))
        if not found:
            return ObjectProps(obj, {})
        return found[0]

    def read_lean(self, type_name: str, obj: Any, paths: Sequence[str]) -> ObjectProps:
        """Like :meth:`read`, through :mod:`._lean` (the per-operation hot paths).

        Scalars come back as text, a ``snapshot`` property as a :class:`~._snapshots.SnapshotTree`;
        an answer the lean reader does not decode is read by pyVmomi from the same bytes (its
        objects then: callers accept both). Faults (``ManagedObjectNotFound``, ``NotAuthenticated``
        …) and transport errors are raised as pyVmomi raises them, from the one request.
        """
        read = Read(type_name, (obj,), tuple(paths))

        def lean() -> ObjectProps:
            found = read_objects(self.session.stub, self.session.content.propertyCollector, (read,))
            if found is None:
                found_sdk = self._retrieve_pages(self.object_specs(type_name, [obj], paths)())
                return found_sdk[0] if found_sdk else ObjectProps(obj, {})
            return ObjectProps(obj, found[0][1]) if found else ObjectProps(obj, {})

        return self.session.call(lean)

    # -- higher-level reads ---------------------------------------------------------------

    def networks(self) -> list[NetworkInfo]:
        """Standard port groups and distributed port groups visible in the scope."""
        items = self.retrieve(
            self.view_specs(
                "Network", ["name", "summary.accessible"], types=["Network", "dvs.DistributedVirtualPortgroup"]
            )
        )
        out = []
        for item in items:
            distributed = _kind(item.obj).endswith("DistributedVirtualPortgroup")
            out.append(
                NetworkInfo(
                    name=str(item.get("name", "")),
                    id=item.moid,
                    kind="distributed" if distributed else "portgroup",
                    active=bool(item.get("summary.accessible", True)),
                )
            )
        return out

    def storage(self) -> list[StorageInfo]:
        """Datastores visible in the scope."""
        items = self.retrieve(
            self.view_specs(
                "Datastore",
                [
                    "summary.name",
                    "summary.capacity",
                    "summary.freeSpace",
                    "summary.type",
                    "summary.url",
                    "summary.accessible",
                ],
            )
        )
        mib = 1024 * 1024
        return [
            StorageInfo(
                name=str(i.get("summary.name", "")),
                id=i.moid,
                kind=str(i.get("summary.type", "")).lower() or "datastore",
                capacity_mib=int(i.get("summary.capacity", 0) or 0) // mib,
                free_mib=int(i.get("summary.freeSpace", 0) or 0) // mib,
                path=str(i.get("summary.url", "") or ""),
                active=bool(i.get("summary.accessible", True)),
            )
            for i in items
        ]

    def portgroup_names(self) -> dict[str, str]:
        """DV portgroup key → name (for naming NICs on distributed switches)."""
        items = self.retrieve(self.view_specs("dvs.DistributedVirtualPortgroup", ["key", "name"]))
        return {str(i.get("key", i.moid)): str(i.get("name", "")) for i in items}
