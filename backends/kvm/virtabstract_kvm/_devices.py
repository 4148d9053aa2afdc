"""Changing a domain: CPUs and memory, metadata, resources (cputune/memtune/blkiotune), disks and NICs.

Two ways to change a domain, chosen by its state:

* running (or paused): the live APIs with ``VIR_DOMAIN_AFFECT_LIVE | CONFIG``
  (``setVcpusFlags``, ``setMemoryFlags``, ``attachDeviceFlags`` …), so the
  change applies now and survives the next boot;
* stopped: the persistent XML is read (with secrets, so the console password
  survives), edited with ElementTree and defined again. This also works on
  libvirt's test driver, which has no ``attachDeviceFlags``.

What applies live (:func:`plan_reconfigure`): more vCPUs up to the domain's
maximum, memory up to its maximum (balloon), description and tags. Anything
else needs a power-off or is deferred to the persistent config
(``Capability.RECONFIGURE_DEFERRED``).

Resources map as follows: ``cpu_shares`` → ``<cputune><shares>``,
``cpu_limit_mhz`` → ``<period>``/``<quota>`` per vCPU (limit / (host MHz *
vCPUs) * period), ``memory_limit_mib`` → ``<memtune><hard_limit>``,
``memory_reservation_mib`` → ``<memtune><soft_limit>`` (what cgroups protect
under memory pressure; ``min_guarantee`` is not implemented by the QEMU driver),
``disk_weight`` → ``<blkiotune><weight>``. CPU reservations and memory shares
have no KVM equivalent.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from virtabstract import DiskInfo, NicInfo, ReconfigureChange, ResourceAllocation, get_guest_os, wait_until
from virtabstract._spec import Disk, Nic
from virtabstract.errors import DeviceNotFound, UnsupportedOperation, VirtAbstractError

from . import _sdk, _storage
from ._errors import map_libvirt_errors
from ._xml import VA_NS, disk_element, find_device, interface_element, nic_kind, parse_xml, to_string

if TYPE_CHECKING:
    from ._backend import KVMBackend

__all__ = [
    "add_disk",
    "add_nic",
    "apply_reconfigure",
    "get_resources",
    "plan_reconfigure",
    "remove_disk",
    "remove_nic",
    "resize_disk",
    "set_resources",
    "update_nic",
]

T = TypeVar("T")
MIB = 1024 * 1024
PERIOD_US = 100_000
DEFAULT_SHARES = 1024


def _do(b: KVMBackend, what: str, vm_id: str, method: Callable[..., Any], *args: Any) -> Any:
    """``method(*args)`` as a change of *vm_id* through :meth:`LibvirtConnection.write`."""
    return b.lc.write(what, lambda _c: method(*args), vm_id=vm_id)


def _active(b: KVMBackend, vm_id: str) -> bool:
    return b.get_state(vm_id)[0].is_active


def _flags(active: bool) -> int:
    lv = _sdk.libvirt()
    return int(lv.VIR_DOMAIN_AFFECT_CONFIG | (lv.VIR_DOMAIN_AFFECT_LIVE if active else 0))


def _redefine(b: KVMBackend, dom: Any, what: str, mutate: Callable[[ET.Element], T]) -> T:
    """Edit the persistent XML (secrets included) and define it again."""
    root = parse_xml(b.lc.xml(dom, inactive=True, secure=True))
    result = mutate(root)
    xml = to_string(root)
    b.lc.write(what, lambda c: c.defineXML(xml), vm_id=dom.UUIDString())
    return result


# -- reconfigure --------------------------------------------------------------------------------


def plan_reconfigure(b: KVMBackend, vm_id: str, changes: Mapping[str, Any]) -> list[ReconfigureChange]:
    """``offline`` when stopped; when running: ``live`` within the maxima, else ``needs_power_off``."""
    dom = b.lc.domain(vm_id)
    active = _active(b, vm_id)
    cfg = b.lc.config(dom, fresh=True)
    current = {"cpus": cfg.cpus, "memory_mib": cfg.memory_mib, "description": cfg.description, "tags": cfg.tags}
    plan = []
    for field, new in changes.items():
        if not active:
            mode = "offline"
        elif field == "cpus":
            mode = "live" if cfg.cpus <= new <= cfg.max_cpus else "needs_power_off"
        elif field == "memory_mib":
            live = new <= cfg.max_memory_mib and (new == cfg.memory_mib or balloon_active(b, dom))
            mode = "live" if live else "needs_power_off"
        else:
            mode = "live"
        plan.append(ReconfigureChange(field, current.get(field), new, mode))
    return plan


BALLOON_GUEST_STATS = ("unused", "available", "usable", "major_fault", "minor_fault", "swap_in", "disk_caches")
"""``memoryStats()`` keys only the guest's virtio balloon driver provides (QEMU alone gives ``actual``, ``rss``)."""


def balloon_active(b: KVMBackend, dom: Any) -> bool:
    """Whether a live memory change can take effect: the guest's balloon driver answers.

    A live memory change is a balloon request; a guest without a virtio balloon driver
    ignores it and keeps all its memory. Domains created here poll balloon statistics
    (``<memballoon><stats period='5'/>``), which only a working guest driver fills in.
    The test driver has no balloon and applies the value directly.
    """
    if b.lc.is_test:
        return True
    try:
        stats = b.lc.read("read memory statistics", lambda _c: dom.memoryStats())
    except VirtAbstractError:  # no statistics: no driver seen
        return False
    return int(stats.get("last_update", 0)) > 0 or any(key in stats for key in BALLOON_GUEST_STATS)


def _wait_balloon(b: KVMBackend, dom: Any, kib: int, timeout: float = 30.0) -> None:
    """Wait until the balloon reaches *kib* (the guest gives memory back asynchronously)."""
    if b.lc.is_test:
        return
    wait_until(
        lambda: abs(int(b.lc.read("read memory", lambda _c: dom.info())[2]) - kib) <= 1024,
        timeout=timeout,
        what=f"the balloon of {dom.name()!r} to reach {kib // 1024} MiB",
        clock=b.clock,
    )


def apply_reconfigure(b: KVMBackend, vm_id: str, changes: Sequence[ReconfigureChange]) -> None:
    """Apply each change live (LIVE|CONFIG) or to the persistent config only (offline, deferred)."""
    lv = _sdk.libvirt()
    dom = b.lc.domain(vm_id)
    name = dom.name()
    config_only = lv.VIR_DOMAIN_AFFECT_CONFIG
    live_only = lv.VIR_DOMAIN_AFFECT_LIVE
    for change in changes:
        live = change.mode == "live"
        what = f"change {change.field} of VM {name!r}"
        if change.field == "cpus":
            new = int(change.new)
            if live:
                for flags in (live_only, config_only):  # separately: some drivers refuse LIVE|CONFIG
                    _do(b, what, vm_id, dom.setVcpusFlags, new, flags)
                continue
            persistent = b.lc.config(dom, fresh=True, inactive=True)
            if new > persistent.max_cpus:
                _do(b, what, vm_id, dom.setVcpusFlags, new, config_only | lv.VIR_DOMAIN_VCPU_MAXIMUM)
            _do(b, what, vm_id, dom.setVcpusFlags, new, config_only)
        elif change.field == "memory_mib":
            kib = int(change.new) * 1024
            if live:
                for flags in (live_only, config_only):
                    _do(b, what, vm_id, dom.setMemoryFlags, kib, flags)
                _wait_balloon(b, dom, kib)
                continue
            maximum = config_only | lv.VIR_DOMAIN_MEM_MAXIMUM
            persistent = b.lc.config(dom, fresh=True, inactive=True)
            steps = [maximum, config_only] if kib > persistent.max_memory_mib * 1024 else [config_only, maximum]
            for flags in steps:
                _do(b, what, vm_id, dom.setMemoryFlags, kib, flags)
        elif change.field == "description":
            text = str(change.new) or None
            for flags in (live_only, config_only) if live else (config_only,):
                _do(b, what, vm_id, dom.setMetadata, lv.VIR_DOMAIN_METADATA_DESCRIPTION, text, None, None, flags)
        elif change.field == "tags":
            for flags in (live_only, config_only) if live else (config_only,):
                _set_tags(b, dom, tuple(change.new), flags)
        else:  # pragma: no cover - the core only passes RECONFIGURABLE_FIELDS
            raise UnsupportedOperation(b.name, f"reconfigure {change.field}")


def _set_tags(b: KVMBackend, dom: Any, tags: tuple[str, ...], flags: int) -> None:
    lv = _sdk.libvirt()
    guest_os = b.lc.config(dom, fresh=True).guest_os
    va = ET.Element("virtabstract")
    if guest_os:
        ET.SubElement(va, "guest-os").text = guest_os
    tags_el = ET.SubElement(va, "tags")
    for tag in tags:
        ET.SubElement(tags_el, "tag").text = tag
    xml = to_string(va)
    b.lc.write(
        f"set the tags of VM {dom.name()!r}",
        lambda _c: dom.setMetadata(lv.VIR_DOMAIN_METADATA_ELEMENT, xml, "va", VA_NS, flags),
        vm_id=dom.UUIDString(),
    )


# -- resources ------------------------------------------------------------------------------------


def _host_mhz(b: KVMBackend) -> int:
    if b._host_mhz is None:
        b._host_mhz = int(b.lc.read("read node info", lambda c: c.getInfo())[3]) or 1000
    return b._host_mhz


def _int(root: ET.Element, path: str) -> int | None:
    text = root.findtext(path)
    return int(text) if text and text.strip().lstrip("-").isdigit() else None


def get_resources(b: KVMBackend, vm_id: str) -> ResourceAllocation:
    """Read cputune/memtune/blkiotune from the domain XML."""
    dom = b.lc.domain(vm_id)
    root = parse_xml(b.lc.xml(dom))
    cpus = b.lc.config(dom).cpus or 1
    quota, period = _int(root, "cputune/quota"), _int(root, "cputune/period") or PERIOD_US
    limit = round(quota * _host_mhz(b) * cpus / period) if quota and quota > 0 else None
    hard, soft = _int(root, "memtune/hard_limit"), _int(root, "memtune/soft_limit")
    unlimited = 2**53 - 1
    return ResourceAllocation(
        cpu_limit_mhz=limit,
        cpu_shares=_int(root, "cputune/shares"),
        memory_limit_mib=hard // 1024 if hard and hard < unlimited else None,
        memory_reservation_mib=soft // 1024 if soft and soft < unlimited else None,
        disk_weight=_int(root, "blkiotune/weight"),
    )


def _set_child(root: ET.Element, section: str, tag: str, value: int | None, unit: str | None = None) -> None:
    parent = root.find(section)
    if value is None:
        if parent is not None:
            for old in parent.findall(tag):
                parent.remove(old)
            if len(parent) == 0:
                root.remove(parent)
        return
    if parent is None:
        parent = ET.SubElement(root, section)
    found = parent.find(tag)
    child = found if found is not None else ET.SubElement(parent, tag)
    child.text = str(value)
    if unit:
        child.set("unit", unit)


def set_resources(b: KVMBackend, vm_id: str, wanted: ResourceAllocation) -> ResourceAllocation:
    """Apply the entitlements that differ from the current ones; return what libvirt now reports."""
    if wanted.cpu_reservation_mhz is not None or wanted.memory_shares is not None:
        raise UnsupportedOperation(
            b.name, "set_resources", "KVM has no CPU reservation or memory shares (use cpu_shares, memory_reservation)"
        )
    current = get_resources(b, vm_id)
    dom = b.lc.domain(vm_id)
    cpus = b.lc.config(dom).cpus or 1
    quota = None
    if wanted.cpu_limit_mhz is not None:
        quota = max(1000, round(wanted.cpu_limit_mhz * PERIOD_US / (_host_mhz(b) * cpus)))
    hard = wanted.memory_limit_mib * 1024 if wanted.memory_limit_mib is not None else None
    soft = wanted.memory_reservation_mib * 1024 if wanted.memory_reservation_mib is not None else None
    if _active(b, vm_id):
        _set_live(b, dom, current, wanted, quota, hard, soft)
    else:

        def edit(root: ET.Element) -> None:
            if wanted.cpu_shares != current.cpu_shares:
                _set_child(root, "cputune", "shares", wanted.cpu_shares)
            if wanted.cpu_limit_mhz != current.cpu_limit_mhz:
                _set_child(root, "cputune", "period", PERIOD_US if quota else None)
                _set_child(root, "cputune", "quota", quota)
            if wanted.memory_limit_mib != current.memory_limit_mib:
                _set_child(root, "memtune", "hard_limit", hard, "KiB")
            if wanted.memory_reservation_mib != current.memory_reservation_mib:
                _set_child(root, "memtune", "soft_limit", soft, "KiB")
            if wanted.disk_weight != current.disk_weight:
                _set_child(root, "blkiotune", "weight", wanted.disk_weight)

        _redefine(b, dom, f"set the resources of VM {dom.name()!r}", edit)
    return get_resources(b, vm_id)


def _set_live(
    b: KVMBackend,
    dom: Any,
    current: ResourceAllocation,
    wanted: ResourceAllocation,
    quota: int | None,
    hard: int | None,
    soft: int | None,
) -> None:
    lv = _sdk.libvirt()
    name = dom.name()
    uuid = dom.UUIDString()
    both = (lv.VIR_DOMAIN_AFFECT_LIVE, lv.VIR_DOMAIN_AFFECT_CONFIG)  # separately: the test driver refuses both at once
    sched: dict[str, int] = {}
    if wanted.cpu_shares != current.cpu_shares:
        sched["cpu_shares"] = wanted.cpu_shares if wanted.cpu_shares is not None else DEFAULT_SHARES
    if wanted.cpu_limit_mhz != current.cpu_limit_mhz:
        sched["vcpu_period"] = PERIOD_US
        sched["vcpu_quota"] = quota if quota is not None else -1
    if sched:
        for flags in both:
            _do(b, f"set the CPU tuning of VM {name!r}", uuid, dom.setSchedulerParametersFlags, sched, flags)
    unlimited = 2**53 - 1  # VIR_DOMAIN_MEMORY_PARAM_UNLIMITED (a C macro libvirt-python does not export)
    mem: dict[str, int] = {}
    if wanted.memory_limit_mib != current.memory_limit_mib:
        mem["hard_limit"] = hard if hard is not None else unlimited
    if wanted.memory_reservation_mib != current.memory_reservation_mib:
        mem["soft_limit"] = soft if soft is not None else unlimited
    if mem:
        for flags in both:
            _do(b, f"set the memory tuning of VM {name!r}", uuid, dom.setMemoryParameters, mem, flags)
    if wanted.disk_weight != current.disk_weight:
        weight = {"weight": wanted.disk_weight if wanted.disk_weight is not None else 100}
        for flags in both:
            _do(b, f"set the disk weight of VM {name!r}", uuid, dom.setBlkioParameters, weight, flags)


# -- disks ----------------------------------------------------------------------------------------


def _disk_info(b: KVMBackend, dom: Any, disk_id: str) -> DiskInfo:
    for disk in b.lc.config(dom, fresh=True).disks:
        if disk.id == disk_id:
            return disk
    raise DeviceNotFound(f"VM {dom.name()!r} has no disk {disk_id!r}")


def add_disk(b: KVMBackend, vm_id: str, disk: Disk) -> DiskInfo:
    """Create the volume (or use ``disk.path``) and attach it on the next free target of its bus."""
    dom = b.lc.domain(vm_id)
    active = _active(b, vm_id)
    persistent = b.lc.config(dom, fresh=True, inactive=True)
    used = [d.id for d in persistent.disks] + [d.id for d in b.lc.config(dom, fresh=True).disks]
    family = get_guest_os(persistent.guest_os).family if persistent.guest_os else get_guest_os("linux").family
    created: list[Any] = []
    try:
        # the name from the XML just read: a cached handle's name() may lag a rename by another client
        plan = b._disk_plan(b.lc.live(), persistent.name or dom.name(), disk, family, used, created, 0)
        element = disk_element(plan)
        if active:
            xml = to_string(element)
            b.lc.write(f"attach disk {plan.target}", lambda _c: dom.attachDeviceFlags(xml, _flags(True)), vm_id=vm_id)
        else:
            _redefine(b, dom, f"add disk {plan.target}", lambda root: root.find("devices").append(element))  # type: ignore[union-attr]
    except BaseException:
        _storage.delete_volumes(created)
        raise
    return _disk_info(b, dom, plan.target)


def remove_disk(b: KVMBackend, vm_id: str, disk_id: str, *, delete: bool) -> None:
    """Detach (live and config, or by redefining) and optionally delete the volume."""
    dom = b.lc.domain(vm_id)
    info = _disk_info(b, dom, disk_id) if _active(b, vm_id) else None
    root = parse_xml(b.lc.xml(dom, inactive=True, secure=True))
    element = find_device(root, "disk", disk_id)
    if element is None and info is None:
        raise DeviceNotFound(f"VM {dom.name()!r} has no disk {disk_id!r}")
    path = info.path if info is not None else _disk_path(element)
    if _active(b, vm_id):
        live_root = parse_xml(b.lc.xml(dom, secure=True))
        live_el = find_device(live_root, "disk", disk_id)
        xml = to_string(live_el if live_el is not None else element)  # type: ignore[arg-type]
        b.lc.write(f"detach disk {disk_id}", lambda _c: dom.detachDeviceFlags(xml, _flags(True)), vm_id=vm_id)
        wait_until(
            lambda: all(d.id != disk_id for d in b.lc.config(dom, fresh=True).disks),
            timeout=30,
            what=f"disk {disk_id} to be detached from {dom.name()!r}",
            clock=b.clock,
        )
    else:

        def drop(r: ET.Element) -> None:
            found = find_device(r, "disk", disk_id)
            devices = r.find("devices")
            if found is not None and devices is not None:
                devices.remove(found)

        _redefine(b, dom, f"remove disk {disk_id}", drop)
    if delete and path:
        _storage.delete_paths(b.lc.live(), [path])


def _disk_path(element: ET.Element | None) -> str:
    source = element.find("source") if element is not None else None
    return (source.get("file") or source.get("dev") or "") if source is not None else ""


def resize_disk(b: KVMBackend, vm_id: str, disk_id: str, size_mib: int) -> DiskInfo:
    """Grow a disk: ``blockResize`` on a running domain, the volume's ``resize`` otherwise."""
    lv = _sdk.libvirt()
    dom = b.lc.domain(vm_id)
    info = _disk_info(b, dom, disk_id)
    size = size_mib * MIB
    if _active(b, vm_id):
        _do(b, f"resize disk {disk_id}", vm_id, dom.blockResize, disk_id, size, lv.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
    else:
        with map_libvirt_errors(f"look up the volume of disk {disk_id}"):
            vol = b.lc.live().storageVolLookupByPath(info.path)
        b.lc.write(f"resize disk {disk_id}", lambda _c: vol.resize(size, 0), vm_id=vm_id)
    return _disk_info(b, dom, disk_id)


# -- NICs -------------------------------------------------------------------------------------------


def _nic(b: KVMBackend, dom: Any, mac: str) -> NicInfo:
    for nic in b.lc.config(dom, fresh=True).nics:
        if nic.mac == mac.lower():
            return nic
    raise DeviceNotFound(f"VM {dom.name()!r} has no network interface {mac!r}")


def add_nic(b: KVMBackend, vm_id: str, nic: Nic) -> NicInfo:
    """Attach an interface; libvirt assigns the MAC unless the spec fixes one."""
    b.check_networks([nic])
    dom = b.lc.domain(vm_id)
    before = {n.mac for n in b.lc.config(dom, fresh=True, inactive=True).nics}
    cfg = b.lc.config(dom, fresh=True, inactive=True)
    family = get_guest_os(cfg.guest_os or "linux").family
    element = interface_element(nic, family=family)
    if _active(b, vm_id):
        xml = to_string(element)
        b.lc.write("attach a network interface", lambda _c: dom.attachDeviceFlags(xml, _flags(True)), vm_id=vm_id)
    else:
        _redefine(b, dom, "add a network interface", lambda root: root.find("devices").append(element))  # type: ignore[union-attr]
    after = b.lc.config(dom, fresh=True, inactive=True).nics
    new = [n for n in after if n.mac not in before]
    return _nic(b, dom, new[-1].mac) if new else after[-1]


def remove_nic(b: KVMBackend, vm_id: str, nic_id: str) -> None:
    """Detach the interface whose MAC is *nic_id*."""
    dom = b.lc.domain(vm_id)
    _nic(b, dom, nic_id)
    if _active(b, vm_id):
        live = find_device(parse_xml(b.lc.xml(dom)), "nic", nic_id)
        xml = to_string(live)  # type: ignore[arg-type]
        b.lc.write(f"detach interface {nic_id}", lambda _c: dom.detachDeviceFlags(xml, _flags(True)), vm_id=vm_id)
        return

    def drop(root: ET.Element) -> None:
        found = find_device(root, "nic", nic_id)
        devices = root.find("devices")
        if found is not None and devices is not None:
            devices.remove(found)

    _redefine(b, dom, f"remove interface {nic_id}", drop)


def _retarget(element: ET.Element, network: str | None, connected: bool | None) -> None:
    if network is not None:
        kind = nic_kind(Nic(network=network, kind="bridge" if element.get("type") == "bridge" else "network"))
        source = element.find("source")
        if source is None:
            source = ET.SubElement(element, "source")
        source.attrib.clear()
        source.set(kind, network)
    if connected is not None:
        link = element.find("link")
        if link is None:
            link = ET.SubElement(element, "link")
        link.set("state", "up" if connected else "down")


def update_nic(b: KVMBackend, vm_id: str, nic_id: str, *, network: str | None, connected: bool | None) -> NicInfo:
    """Move the interface to another network (same kind) and/or set its link state."""
    dom = b.lc.domain(vm_id)
    current = _nic(b, dom, nic_id)
    if network is not None:
        b.check_networks([Nic(network=network, kind="bridge" if current.kind == "bridge" else "network")])
    if _active(b, vm_id):
        element = find_device(parse_xml(b.lc.xml(dom)), "nic", nic_id)
        assert element is not None
        _retarget(element, network, connected)
        xml = to_string(element)
        b.lc.write(f"update interface {nic_id}", lambda _c: dom.updateDeviceFlags(xml, _flags(True)), vm_id=vm_id)
    else:

        def edit(root: ET.Element) -> None:
            found = find_device(root, "nic", nic_id)
            if found is not None:
                _retarget(found, network, connected)

        _redefine(b, dom, f"update interface {nic_id}", edit)
    return _nic(b, dom, nic_id)
