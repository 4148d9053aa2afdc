"""The KVM backend: virtabstract's object model on libvirt (QEMU/KVM and libvirt's test driver).

URLs: ``qemu:///system``, ``qemu:///session``, ``qemu+ssh://user@host/system``,
``qemu+tls://``, ``qemu+tcp://``, ``qemu+unix://``, ``test:///default``,
``test:///path/to/node.xml`` and the alias ``kvm://`` (→ ``qemu:///system``).
Options (URL query or :func:`virtabstract.connect` keywords): see
:data:`virtabstract_kvm._uri.OPTIONS`.

Device changes (:mod:`._devices`), guest-agent operations (:mod:`._guest`),
snapshots (:mod:`._snapshots`) and volumes (:mod:`._storage`) live in their own
modules; this class wires them to the :class:`~virtabstract.Backend` contract.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from operator import methodcaller
from typing import Any, ClassVar
from xml.sax.saxutils import escape

from virtabstract import (
    URL,
    Backend,
    Capability,
    ConsoleInfo,
    Credentials,
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
    VMSpec,
    VMSummary,
    check_transition,
    get_guest_os,
    guest_os_from_native,
)
from virtabstract._spec import CdRom, Disk, Nic
from virtabstract.errors import BackendError, InvalidState, SpecError, UnsupportedOperation, VirtAbstractError

from . import _devices, _guest, _sdk, _snapshots, _storage
from ._connection import LibvirtConnection
from ._errors import GUEST, map_libvirt_errors
from ._states import WITHOUT_IMAGE, managed_save_possible, power_state
from ._uri import OPTIONS, parse_options
from ._xml import (
    DiskPlan,
    DomainConfig,
    build_domain,
    cdrom_plan,
    clone_domain,
    default_disk_bus,
    new_password,
    parse_domain,
    parse_xml,
    target_name,
    to_string,
)

__all__ = ["KVMBackend"]

log = logging.getLogger("virtabstract.kvm")

_ALL = frozenset(Capability)
_READ_ONLY = frozenset(
    {
        Capability.NETWORKS,
        Capability.STORAGE,
        Capability.EVENTS,
        Capability.CONSOLE,
        Capability.GUEST_INFO,
        Capability.GUEST_NETWORK,
    }
)
_NOT_ON_TEST_DRIVER = frozenset(
    {
        Capability.GUEST_INFO,  # no qemuAgentCommand in the test driver
        Capability.GUEST_EXEC,
        Capability.GUEST_FILES,
        Capability.DISK_RESIZE,  # no virStorageVolResize / blockResize
        Capability.CONSOLE,  # no graphics ports, no serial pty
    }
)
_UNDEFINE = (
    "VIR_DOMAIN_UNDEFINE_MANAGED_SAVE",
    "VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA",
    "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA",
)


def _flags(lv: Any, *names: str) -> int:
    value = 0
    for name in names:
        value |= int(getattr(lv, name, 0))
    return value


class KVMBackend(Backend):
    """virtabstract backend for libvirt's QEMU driver (and its test driver)."""

    name: ClassVar[str] = "kvm"
    capabilities: ClassVar[frozenset[Capability]] = _ALL
    accepted_options: ClassVar[Mapping[str, str]] = OPTIONS
    install_hint: ClassVar[str] = "libvirt-python: pip install 'virtabstract[kvm]' (needs libvirt-dev, pkg-config, gcc)"
    unique_snapshot_names: ClassVar[bool] = True  # libvirt keys snapshots by name and refuses a taken one

    def __init__(self, url: URL, credentials: Credentials, options: Mapping[str, Any]) -> None:
        super().__init__(url, credentials, options)
        self.settings = parse_options(url, options)
        self.lc = LibvirtConnection(url, credentials, self.settings)
        self._domain_type: tuple[str, str] | None = None
        self._no_leases = False
        self._host_mhz: int | None = None

    # -- connection -----------------------------------------------------------------------

    @classmethod
    def import_sdk(cls) -> None:
        """Import libvirt-python (and silence its stderr error printer)."""
        _sdk.libvirt()

    def open(self) -> None:
        """Open the libvirt connection."""
        self.lc.open()

    def close(self) -> None:
        """Close the libvirt connection (idempotent)."""
        self.lc.close()

    def connection_capabilities(self) -> frozenset[Capability]:
        """Everything on QEMU; the test driver lacks the guest agent and resizing; read-only narrows to reads."""
        caps = set(_ALL)
        if self.lc.is_test:
            caps -= _NOT_ON_TEST_DRIVER
        if not self.lc.events:
            caps.discard(Capability.EVENTS)
        if self.settings.readonly:
            caps &= _READ_ONLY
        return frozenset(caps)

    @property
    def native(self) -> Any:
        """The ``libvirt.virConnect``."""
        return self.lc.live()

    def native_vm(self, vm_id: str) -> Any:
        """The ``libvirt.virDomain``."""
        return self.lc.domain(vm_id)

    # -- host and inventory ---------------------------------------------------------------

    def host_info(self) -> HostInfo:
        """Node info, hypervisor and libvirt versions, free memory."""

        def read(conn: Any) -> HostInfo:
            model, memory, cpus, mhz, *_ = conn.getInfo()
            caps = parse_xml(conn.getCapabilities())
            hv_type = conn.getType()
            return HostInfo(
                hostname=conn.getHostname(),
                os_family=OSFamily.LINUX,
                cpu_count=int(cpus),
                memory_mib=int(memory),
                hypervisor=hv_type,
                version=_version(conn.getVersion()),
                backend=self.name,
                os_name="Linux" if hv_type == "QEMU" else f"libvirt {hv_type} driver",
                cpu_model=caps.findtext("host/cpu/model") or str(model),
                cpu_mhz=int(mhz) or None,
                free_memory_mib=int(conn.getFreeMemory()) // (1024 * 1024),
                api_version=_version(conn.getLibVersion()),
            )

        return self.lc.read("read host information", read)

    def list_networks(self) -> list[NetworkInfo]:
        """Libvirt networks (NAT, routed, isolated, bridge)."""

        def read(conn: Any) -> list[NetworkInfo]:
            out = []
            for net in conn.listAllNetworks(0):
                root = parse_xml(net.XMLDesc(0))
                forward = root.find("forward")
                mode = forward.get("mode", "nat") if forward is not None else "isolated"
                ip = root.find("ip")
                cidr = ""
                if ip is not None and ip.get("address"):
                    import ipaddress

                    mask = ip.get("prefix") or ip.get("netmask") or "24"
                    cidr = str(ipaddress.ip_interface(f"{ip.get('address')}/{mask}").network)
                bridge = root.find("bridge")
                out.append(
                    NetworkInfo(
                        net.name(),
                        net.UUIDString(),
                        mode,
                        bool(net.isActive()),
                        bridge.get("name", "") if bridge is not None else "",
                        cidr,
                    )
                )
            return out

        return self.lc.read("list networks", read)

    def list_storage(self) -> list[StorageInfo]:
        """Libvirt storage pools."""

        def read(conn: Any) -> list[StorageInfo]:
            out = []
            for pool in conn.listAllStoragePools(0):
                root = parse_xml(pool.XMLDesc(0))
                _state, capacity, _alloc, available = pool.info()
                active = bool(pool.isActive())
                out.append(
                    StorageInfo(
                        pool.name(),
                        pool.UUIDString(),
                        root.get("type", ""),
                        capacity // 2**20 if active else None,
                        available // 2**20 if active else None,
                        root.findtext("target/path") or "",
                        active,
                    )
                )
            return out

        return self.lc.read("list storage pools", read)

    def _vm_info(
        self,
        dom: Any,
        cfg: DomainConfig,
        state: tuple[int, int],
        managed: bool,
        autostart: bool,
        stats: Mapping[str, Any] | None = None,
    ) -> VMInfo:
        power, native = power_state(state[0], state[1], managed_save=managed)
        stats = stats or {}
        cpus = int(stats.get("vcpu.current", cfg.cpus))
        memory = int(stats["balloon.current"]) // 1024 if "balloon.current" in stats else cfg.memory_mib
        guest = cfg.guest_os
        if guest is None and cfg.libosinfo:
            found = guest_os_from_native("libosinfo", cfg.libosinfo)
            guest = found.id if found else None
        return VMInfo(
            id=dom.UUIDString(),
            name=cfg.name or dom.name(),
            state=power,
            native_state=native,
            cpus=cpus,
            memory_mib=memory,
            guest_os=guest,
            guest_os_native=cfg.libosinfo,
            disks=cfg.disks,
            nics=cfg.nics,
            description=cfg.description,
            tags=cfg.tags,
            firmware=cfg.firmware,
            autostart=autostart,
            boot_order=cfg.boot_order,
            cdrom=cfg.cdrom,
            backend=self.name,
        )

    def list_vms(self) -> list[VMInfo]:
        """Every domain: stats, the autostart set and, if needed, the managed-save set; XML for uncached domains."""
        lv = _sdk.libvirt()
        self.lc.need_events()  # before reading: the XML read now is kept, so every later change must be heard

        def read(conn: Any) -> list[tuple[Any, dict[str, Any]]]:
            groups = lv.VIR_DOMAIN_STATS_STATE | lv.VIR_DOMAIN_STATS_VCPU | lv.VIR_DOMAIN_STATS_BALLOON
            return list(conn.getAllDomainStats(groups, 0))

        records = self.lc.read("list VMs", read)
        uuids = [dom.UUIDString() for dom, _stats in records]
        autostart = self._uuid_set(lv.VIR_CONNECT_LIST_DOMAINS_AUTOSTART)
        managed = self._managed_save_uuids(records, uuids)
        out = []
        for (dom, stats), uuid in zip(records, uuids, strict=True):
            try:
                cfg = self.lc.config(dom)
            except VirtAbstractError as exc:  # vanished between the two calls
                log.debug("skipping domain %s: %s", uuid, exc)
                continue
            state = (int(stats.get("state.state", 0)), int(stats.get("state.reason", 0)))
            out.append(self._vm_info(dom, cfg, state, uuid in managed, uuid in autostart, stats))
        return out

    def list_vm_summaries(self) -> list[VMSummary]:
        """Every domain's summary in a constant number of calls, whatever the number of domains.

        * ``getAllDomainStats(STATE|VCPU|BALLOON)``: one call. The qemu driver answers the state,
          vCPUs and memory; libvirt's test driver only the state.
        * ``listAllDomains(MANAGEDSAVE)`` when a shut-off domain may have a managed save image and is not
          known to lack one (see :meth:`_managed_save_uuids`); an image makes it SUSPENDED.
        * Guest OS and tags (our metadata), and the vCPUs and memory the stats lack, come from the
          domain's XML. It is read once per domain and kept while the event loop delivers the events
          that invalidate it (as for :meth:`list_vms`); so a warm listing makes no per-domain call.
          The first listing registers those event callbacks (see ``LibvirtConnection.need_events``).
          Without events (``events=0``) every listing reads every domain's XML.
        * IP addresses: the DHCP leases of the active networks (``listAllNetworks`` plus one call per
          network), matched on the NICs' MAC addresses, for running domains only; none when no
          domain runs, and never again on a connection whose driver has no lease API. Addresses only
          the guest agent or the ARP table know are left to :meth:`guest_ip_addresses`.

        An unchanged domain gets the very same (immutable) :class:`VMSummary` as in the previous listing.
        Nothing read is kept when an invalidating event arrived during the listing.
        """
        lv = _sdk.libvirt()
        groups = lv.VIR_DOMAIN_STATS_STATE | lv.VIR_DOMAIN_STATS_VCPU | lv.VIR_DOMAIN_STATS_BALLOON
        self.lc.need_events()  # before reading, as in list_vms
        generation = self.lc.generation
        records = self.lc.read("list VMs", lambda c: c.getAllDomainStats(groups, 0))
        uuids = [dom.UUIDString() for dom, _stats in records]  # once: both loops below need them
        managed = self._managed_save_uuids(records, uuids)
        running = any(st.get("state.state") != _SHUTOFF for _d, st in records)
        leases = self._dhcp_leases() if running else {}
        scratch = self.lc.summaries
        caching = self.lc.caching
        lc = self.lc
        out: list[VMSummary] = []
        append = out.append
        for (dom, stats), uuid in zip(records, uuids, strict=True):
            state = stats.get("state.state", 0)
            reason = stats.get("state.reason", 0)
            cpus = stats.get("vcpu.current")
            memory = stats.get("balloon.current")
            entry = scratch.get(uuid)
            if entry is None:
                try:
                    entry = self._summary_meta(dom)
                except VirtAbstractError as exc:  # vanished between the two calls
                    log.debug("skipping domain %s: %s", uuid, exc)
                    continue
                if caching and lc.generation == generation:
                    scratch[uuid] = entry
            meta, last_key, last = entry
            ips: tuple[str, ...] = ()
            if leases and state != _SHUTOFF:
                ips = tuple(ip for mac in meta[5] for ip in leases.get(mac, ()))
            key = (state, reason, uuid in managed, cpus, memory, ips)
            if key == last_key and last is not None:
                append(last)
                continue
            power, native = power_state(state, reason, managed_save=key[2])
            summary = VMSummary(
                id=uuid,
                name=dom.name(),
                state=power,
                native_state=native,
                cpus=meta[0] if cpus is None else int(cpus),
                memory_mib=meta[1] if memory is None else int(memory) // 1024,
                guest_os=meta[2],
                guest_os_native=meta[3],
                ip_addresses=ips,
                tags=meta[4],
            )
            if caching and lc.generation == generation:
                scratch[uuid] = (meta, key, summary)
            append(summary)
        return out

    def _summary_meta(self, dom: Any) -> tuple[tuple[Any, ...], Any, VMSummary | None]:
        """What a summary takes from the XML: (cpus, memory, guest os, libosinfo id, tags, MACs)."""
        uuid = dom.UUIDString()
        cfg = self.lc.cached_config(uuid)
        if cfg is None:
            cfg = parse_domain(self.lc.read(f"read the XML of VM {uuid}", lambda _c: dom.XMLDesc(0)))
        guest = cfg.guest_os
        if guest is None and cfg.libosinfo:
            found = guest_os_from_native("libosinfo", cfg.libosinfo)
            guest = found.id if found else None
        macs = tuple(n.mac.lower() for n in cfg.nics if n.mac)
        return (cfg.cpus, cfg.memory_mib, guest, cfg.libosinfo, cfg.tags, macs), None, None

    def _dhcp_leases(self) -> dict[str, tuple[str, ...]]:
        """MAC → leased addresses, over every active network (one call each); {} without a lease API."""
        if self._no_leases:
            return {}
        lv = _sdk.libvirt()

        def read(conn: Any) -> dict[str, tuple[str, ...]]:
            found: dict[str, list[str]] = {}
            for net in conn.listAllNetworks(lv.VIR_CONNECT_LIST_NETWORKS_ACTIVE):
                try:
                    leases = net.DHCPLeases(None, 0)
                except lv.libvirtError as exc:
                    if exc.get_error_code() in (lv.VIR_ERR_NO_SUPPORT, lv.VIR_ERR_OPERATION_UNSUPPORTED):
                        self._no_leases = True
                        return {}
                    log.debug("no DHCP leases from network %s: %s", net.name(), exc)
                    continue
                for lease in leases:
                    mac, ip = lease.get("mac"), lease.get("ipaddr")
                    if mac and ip:
                        found.setdefault(str(mac).lower(), []).append(str(ip))
            return {mac: tuple(ips) for mac, ips in found.items()}

        try:
            return self.lc.read("read DHCP leases", read)
        except UnsupportedOperation:
            self._no_leases = True
            return {}
        except VirtAbstractError as exc:
            log.debug("no DHCP leases: %s", exc)
            return {}

    def _managed_save_uuids(self, records: Sequence[tuple[Any, Mapping[str, Any]]], uuids: Sequence[str]) -> set[str]:
        """The UUIDs, among the listed domains (*uuids*: theirs, in order), of those with a managed save image.

        One ``listAllDomains(MANAGEDSAVE)`` (through libvirtd, the daemon walks every domain), and only when
        some shut-off domain may have an image (its reason allows one: :func:`managed_save_possible`) and
        is not known to lack one. What the call shows is remembered as for :meth:`get_state`
        (``LibvirtConnection.remember_no_image``). So a warm listing of domains never saved is the stats
        call alone.
        """
        lc = self.lc
        unsure = [
            (uuid, stats.get("state.reason", 0))
            for (_dom, stats), uuid in zip(records, uuids, strict=True)
            if not lc.image_known_absent(uuid, stats.get("state.state", 0), stats.get("state.reason", 0))
        ]
        if not unsure:
            return set()
        watch = lc.image_watch()
        managed = self._uuid_set(_sdk.libvirt().VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE)
        for uuid, reason in unsure:
            if uuid not in managed:
                lc.remember_no_image(uuid, reason, watch)
        return managed

    def _uuid_set(self, flag: int) -> set[str]:
        return set(self.lc.read("list VMs", lambda c: [d.UUIDString() for d in c.listAllDomains(flag)]))

    def get_vm(self, vm_id: str) -> VMInfo:
        """One domain, read fresh."""
        dom = self.lc.domain(vm_id)
        cfg = self.lc.config(dom, fresh=True)
        state, managed, autostart = self.lc.read(
            f"read VM {vm_id}", lambda _c: (dom.state(0), dom.hasManagedSaveImage(0), dom.autostart())
        )
        return self._vm_info(dom, cfg, (state[0], state[1]), bool(managed), bool(autostart))

    def find_vms_by_name(self, name: str) -> list[VMInfo]:
        """Libvirt names are unique: one hashed lookup."""
        lv = _sdk.libvirt()

        def lookup(conn: Any) -> Any:
            try:
                return conn.lookupByName(name)
            except lv.libvirtError as exc:
                if exc.get_error_code() == lv.VIR_ERR_NO_DOMAIN:
                    return None
                raise

        dom = self.lc.read(f"look up VM {name!r}", lookup)
        return [] if dom is None else [self.get_vm(dom.UUIDString())]

    def get_state(self, vm_id: str) -> tuple[PowerState, str]:
        """One ``state()`` call.

        A shut-off domain may need its managed-save flag too (SUSPENDED), but only when its
        reason allows an image (:func:`managed_save_possible`: not after a shutdown, destroy or
        crash). A domain found without an image is remembered while the lifecycle callback is
        registered (a listing or a subscriber asked for it): an image only appears when a running
        domain is saved, which libvirt announces with a lifecycle event (STOPPED/SAVED), and
        :meth:`suspend` through this connection forgets it at once. Without the callback, a domain
        with reason *unknown* (defined, never started since) found without an image is remembered
        while that reason stays (``LibvirtConnection.no_image_while_unknown``). The memo never
        registers the callback itself: a registered callback costs every start and stop a GIL
        hand-off on the event thread (10 to 20 µs, and the event message through libvirtd).
        """
        lc = self.lc
        what = "read the state of"
        if lc.in_process and not lc.lifecycle_watched:  # nothing will be remembered: both reads in one pass
            return lc.on_domain(what, vm_id, _read_power_state)
        state, reason = lc.on_domain(what, vm_id, _read_state)
        known = WITHOUT_IMAGE.get((state, reason))
        if known is not None:
            return known
        if lc.image_known_absent(vm_id, state, reason):
            return power_state(state, reason)
        watch = lc.image_watch()
        managed = lc.on_domain(what, vm_id, _has_managed_save)
        if not managed:
            lc.remember_no_image(vm_id, reason, watch)
        return power_state(state, reason, managed_save=bool(managed))

    # -- power ------------------------------------------------------------------------------

    def _power(self, operation: str, vm_id: str, action: Callable[[Any], Any], *, precheck: bool = True) -> Any:
        """Run a power verb; with *precheck* the state is read first (libvirt would allow what the contract forbids).

        Without it, libvirt's own refusal (``VIR_ERR_OPERATION_INVALID``, or the test driver's
        internal error) is followed by one state read, and becomes the contract's InvalidState
        when the verb is illegal in that state.
        """
        if precheck:
            state, _native = self.get_state(vm_id)
            self._check_transition(operation, vm_id, state)
        try:
            return self.lc.on_domain(_ACTIONS.get(operation, operation), vm_id, action, change=True)
        except (BackendError, InvalidState) as exc:
            if precheck:
                raise
            try:
                state, _native = self.get_state(vm_id)
            except VirtAbstractError:
                raise exc from None
            self._check_transition(operation, vm_id, state)
            if isinstance(exc, InvalidState) and exc.state is None:
                exc.state, exc.operation = state, operation
            raise

    def _check_transition(self, operation: str, vm_id: str, state: PowerState) -> None:
        """The contract's InvalidState when *operation* is illegal in *state*, naming the VM by its current name."""
        try:
            check_transition(operation, state)
        except InvalidState:
            check_transition(operation, state, self.lc.name(vm_id))
            raise

    def start(self, vm_id: str) -> None:
        """``create()``: boots, or restores the managed save image."""
        self._power("start", vm_id, _create, precheck=False)

    def request_shutdown(self, vm_id: str) -> str:
        """ACPI power button (default) or the guest agent (``shutdown_method=agent``)."""
        lv = _sdk.libvirt()
        method = self.settings.shutdown_method
        if self.lc.is_test:
            self._power("shutdown", vm_id, lambda d: d.shutdown())
            return "acpi"
        flag = lv.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT if method == "agent" else lv.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN
        self._power("shutdown", vm_id, lambda d: d.shutdownFlags(flag))
        return method

    def power_off(self, vm_id: str) -> None:
        """``destroy()``: the hard stop."""
        self._power("power_off", vm_id, _destroy, precheck=False)

    def reboot(self, vm_id: str) -> None:
        """Graceful reboot through ACPI (or the agent with ``shutdown_method=agent``)."""
        lv = _sdk.libvirt()
        if self.lc.is_test:
            self._power("reboot", vm_id, lambda d: d.reboot(0))
            return
        agent = self.settings.shutdown_method == "agent"
        flag = lv.VIR_DOMAIN_REBOOT_GUEST_AGENT if agent else lv.VIR_DOMAIN_REBOOT_ACPI_POWER_BTN
        self._power("reboot", vm_id, lambda d: d.reboot(flag))

    def reset(self, vm_id: str) -> None:
        """Hard reset."""
        self._power("reset", vm_id, lambda d: d.reset(0))

    def pause(self, vm_id: str) -> None:
        """``suspend()`` in libvirt's words: freeze the vCPUs."""
        self._power("pause", vm_id, lambda d: d.suspend())

    def resume(self, vm_id: str) -> None:
        """Continue a paused domain (wakes a guest-suspended one with ``pmWakeup``)."""
        lv = _sdk.libvirt()

        def action(dom: Any) -> None:
            if dom.state(0)[0] == lv.VIR_DOMAIN_PMSUSPENDED:
                dom.pmWakeup(0)
            else:
                dom.resume()

        self._power("resume", vm_id, action)

    def suspend(self, vm_id: str) -> None:
        """Managed save: memory to disk, process gone; ``start`` restores."""
        self.lc.no_managed_save.discard(vm_id)
        self.lc.no_image_while_unknown.discard(vm_id)
        try:
            self._power("suspend", vm_id, lambda d: d.managedSave(0))
        finally:
            self.lc.no_managed_save.discard(vm_id)

    def set_autostart(self, vm_id: str, enabled: bool) -> None:
        """Start with libvirtd."""
        dom = self.lc.domain(vm_id)
        self.lc.write(f"set autostart of VM {dom.name()!r}", lambda _c: dom.setAutostart(1 if enabled else 0))

    # -- lifecycle --------------------------------------------------------------------------

    def domain_type(self, acceleration: str = "auto") -> tuple[str, str]:
        """``(domain type, arch)`` for new domains: kvm when the host offers it, else qemu (TCG)."""
        if self._domain_type is None:
            root = parse_xml(self.lc.read("read capabilities", lambda c: c.getCapabilities()))
            host_arch = root.findtext("host/cpu/arch") or "x86_64"
            offered: dict[str, list[str]] = {}
            for guest in root.findall("guest"):
                arch_el = guest.find("arch")
                if guest.findtext("os_type") != "hvm" or arch_el is None:
                    continue
                for dom in arch_el.findall("domain"):
                    offered.setdefault(dom.get("type", ""), []).append(arch_el.get("name", ""))
            for kind in ("kvm", "qemu", "test"):
                if kind in offered:
                    arches = offered[kind]
                    self._domain_type = (kind, host_arch if host_arch in arches else arches[0])
                    break
            else:
                raise UnsupportedOperation(self.name, "create", "the host offers no hvm domain type")
        kind, arch = self._domain_type
        forced = self.settings.domain_type or {"software": "qemu", "hardware": "kvm"}.get(acceleration)
        if forced and kind != "test":
            return forced, arch
        return kind, arch

    def create_vm(self, spec: VMSpec) -> VMInfo:
        """Volumes first, then ``defineXML``; anything created is removed again on failure."""
        kind, arch = self.domain_type(spec.acceleration)
        family = get_guest_os(spec.guest_os).family
        self.check_networks([n for n in spec.nics if isinstance(n, Nic)])
        conn = self.lc.live()
        created: list[Any] = []
        plans: list[DiskPlan] = []
        try:
            for i, disk in enumerate(spec.disks):
                assert isinstance(disk, Disk)
                plans.append(self._disk_plan(conn, spec.name, disk, family, [p.target for p in plans], created, i))
            if isinstance(spec.cdrom, CdRom):
                plans.append(
                    cdrom_plan(spec.cdrom, uefi=spec.firmware is Firmware.UEFI, used=[p.target for p in plans])
                )
            password = new_password() if spec.graphics != "none" else None
            host_cpus = int(self.lc.read("read node info", lambda c: c.getInfo())[2])
            xml = to_string(
                build_domain(
                    spec,
                    domain_type=kind,
                    arch=arch,
                    disks=plans,
                    vnc_password=password,
                    max_cpus=min(max(host_cpus, 1), 64),
                )
            )
            dom = self.lc.write(f"define VM {spec.name!r}", lambda c: c.defineXML(xml))
        except BaseException:
            _storage.delete_volumes(created)
            raise
        try:
            if spec.autostart:
                self.lc.write(f"set autostart of VM {spec.name!r}", lambda _c: dom.setAutostart(1))
            return self.get_vm(dom.UUIDString())
        except BaseException:
            self._undefine(dom, keep_nvram=False)
            _storage.delete_volumes(created)
            raise

    def check_networks(self, nics: Sequence[Nic]) -> None:
        """NetworkNotFound for a NIC on a libvirt network that does not exist (libvirt would only fail at start).

        Host bridges (``kind='bridge'``) cannot be checked through libvirt and are taken as given.
        """
        for name in {nic.network for nic in nics if nic.kind != "bridge"}:
            self.lc.read(f"look up network {name!r}", lambda c: c.networkLookupByName(name))  # noqa: B023

    def _disk_plan(
        self, conn: Any, vm_name: str, disk: Disk, family: OSFamily, used: list[str], created: list[Any], index: int
    ) -> DiskPlan:
        bus = disk.bus or default_disk_bus(family)
        if bus == "nvme":
            raise SpecError(f"disks[{index}].bus", "virtio, scsi, sata or ide on KVM (libvirt 9 has no NVMe disk bus)")
        target = target_name(bus, used)
        if disk.path:
            fmt = "qcow2" if disk.path.endswith(".qcow2") else "raw"
            return DiskPlan(disk.path, target, bus, format=fmt, block=disk.path.startswith("/dev/"))
        pool = _storage.resolve_pool(conn, disk.storage, self.settings.pool)
        name = _storage.volume_name(pool, vm_name, f"{target}.qcow2", disk.name)
        vol = _storage.create_volume(pool, name, disk.size_mib or 0, thin=disk.thin)
        created.append(vol)
        return DiskPlan(vol.path(), target, bus)

    def _undefine(self, dom: Any, *, keep_nvram: bool) -> None:
        """Undefine with managed save, snapshot/checkpoint metadata and nvram (or keeping it).

        Drivers that reject some flags (the test driver has no nvram or checkpoint flags) get
        the flags they know, and the pieces are removed one by one if even those fail.
        """
        lv = _sdk.libvirt()
        nvram = lv.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM if keep_nvram else lv.VIR_DOMAIN_UNDEFINE_NVRAM
        basic = _flags(lv, "VIR_DOMAIN_UNDEFINE_MANAGED_SAVE", "VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA")
        uuid = dom.UUIDString()
        for flags in (_flags(lv, *_UNDEFINE) | nvram, basic):
            try:
                self._do(f"undefine VM {dom.name()!r}", uuid, dom.undefineFlags, flags)
                return
            except (UnsupportedOperation, BackendError) as exc:
                log.debug("undefineFlags(%#x) refused: %s", flags, exc)
        if dom.hasManagedSaveImage(0):
            self.lc.write("remove the managed save image", lambda _c: dom.managedSaveRemove(0))
        for snap in dom.listAllSnapshots(0):
            self._do("remove snapshot metadata", uuid, snap.delete, lv.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)
        self.lc.write(f"undefine VM {dom.name()!r}", lambda _c: dom.undefine(), vm_id=uuid)

    def _do(self, what: str, vm_id: str, method: Callable[..., Any], *args: Any) -> Any:
        return self.lc.write(what, lambda _c: method(*args), vm_id=vm_id)

    def _require_stopped(self, vm_id: str, operation: str) -> Any:
        dom = self.lc.domain(vm_id)
        state, _ = self.get_state(vm_id)
        if state.is_active:
            raise InvalidState(
                f"cannot {operation} VM {self.lc.name(vm_id)!r}: it is {state.value} (stop it first)",
                state=state,
                operation=operation,
            )
        return dom

    def delete_vm(self, vm_id: str, *, delete_disks: bool) -> None:
        """Undefine (managed save, snapshot metadata and nvram too) and delete the disk volumes."""
        dom = self._require_stopped(vm_id, "delete")
        cfg = self.lc.config(dom, fresh=True, inactive=True)
        self._undefine(dom, keep_nvram=False)
        self.lc.forget_domain(vm_id)
        if delete_disks:
            _storage.delete_paths(self.lc.live(), [d.path for d in cfg.disks if d.path])

    def unregister_vm(self, vm_id: str) -> None:
        """Undefine but keep the volumes (and the nvram file)."""
        dom = self._require_stopped(vm_id, "unregister")
        self._undefine(dom, keep_nvram=True)
        self.lc.forget_domain(vm_id)

    def clone_vm(self, vm_id: str, name: str, *, linked: bool, snapshot_id: str | None) -> VMInfo:
        """Copy each disk volume (full) or layer a qcow2 on it (linked), then define the rewritten XML."""
        dom = self._require_stopped(vm_id, "clone")
        root = parse_xml(self.lc.xml(dom, inactive=True, secure=True))
        if snapshot_id is not None:
            self._check_clone_snapshot(dom, snapshot_id)
            root = _snapshots.domain_definition(dom, snapshot_id) or root
        conn = self.lc.live()
        created: list[Any] = []
        paths: dict[str, str] = {}
        try:
            for disk in self.lc.config(dom, fresh=True, inactive=True).disks:
                if not disk.path:
                    continue
                paths[disk.id] = self._clone_volume(conn, disk, name, linked, created)
            clone = clone_domain(root, name, paths, new_password())
            xml = to_string(clone)
            new = self.lc.write(f"define clone {name!r}", lambda c: c.defineXML(xml))
        except BaseException:
            _storage.delete_volumes(created)
            raise
        return self.get_vm(new.UUIDString())

    def _check_clone_snapshot(self, dom: Any, snapshot_id: str) -> None:
        """Cloning "from a snapshot" copies the disks as they are, so they must still hold that snapshot's state.

        Internal qcow2 snapshots cannot be copied out through libvirt. The clone is exact when the
        snapshot is the current one and no disk was written after it was taken (volume mtime, where
        the pool reports it); anything else is refused rather than silently cloning newer data.
        """
        snaps = {s.id: s for s in _snapshots.list_snapshots(dom, dom.UUIDString())}
        snap = snaps.get(snapshot_id)
        if snap is None or not snap.is_current:
            raise UnsupportedOperation(
                self.name,
                "clone from a snapshot",
                "only the current snapshot of a stopped VM can be cloned; revert to it first",
            )
        taken = snap.created.timestamp() if snap.created else None
        for disk in self.lc.config(dom, fresh=True, inactive=True).disks:
            mtime = self.lc.volume_mtime(disk.path)
            if taken is not None and mtime is not None and mtime > taken + 2:
                raise UnsupportedOperation(
                    self.name,
                    "clone from a snapshot",
                    f"disk {disk.id} changed after snapshot {snapshot_id!r}; revert to it first",
                )

    def _clone_volume(self, conn: Any, disk: DiskInfo, name: str, linked: bool, created: list[Any]) -> str:
        with map_libvirt_errors(f"look up the volume of disk {disk.id}"):
            source = conn.storageVolLookupByPath(disk.path)
            pool = source.storagePoolLookupByVolume()
        new_name = _storage.volume_name(pool, name, f"{disk.id}.qcow2")
        size_mib = max(disk.size_mib, 1)
        if linked:
            fmt = _storage.volume_format(source)
            xml = _storage.volume_xml(new_name, size_mib, backing=(disk.path, fmt))
            with map_libvirt_errors(f"create linked volume {new_name!r}"):
                vol = pool.createXML(xml, 0)
        else:
            xml = _storage.volume_xml(new_name, size_mib)
            with map_libvirt_errors(f"copy volume {disk.path!r}"):
                vol = pool.createXMLFrom(xml, source, 0)
        created.append(vol)
        return str(vol.path())

    # -- configuration (see _devices) ---------------------------------------------------------

    def plan_reconfigure(self, vm_id: str, changes: Mapping[str, Any]) -> list[ReconfigureChange]:
        """cpus/memory live up to the domain's maximum, config-only beyond; metadata always live."""
        return _devices.plan_reconfigure(self, vm_id, changes)

    def apply_reconfigure(self, vm_id: str, changes: Sequence[ReconfigureChange]) -> None:
        """``setVcpusFlags``/``setMemoryFlags``/``setMetadata`` with LIVE and/or CONFIG."""
        _devices.apply_reconfigure(self, vm_id, changes)

    def get_resources(self, vm_id: str) -> ResourceAllocation:
        """Cputune shares/quota, memtune hard/soft limit, blkiotune weight."""
        return _devices.get_resources(self, vm_id)

    def set_resources(self, vm_id: str, resources: ResourceAllocation) -> ResourceAllocation:
        """Apply cputune/memtune/blkiotune (live API for running domains, XML for stopped ones)."""
        return _devices.set_resources(self, vm_id, resources)

    def add_disk(self, vm_id: str, disk: Disk) -> DiskInfo:
        """New qcow2 volume (or existing image) attached live or in the definition."""
        return _devices.add_disk(self, vm_id, disk)

    def remove_disk(self, vm_id: str, disk_id: str, *, delete: bool) -> None:
        """Detach by target name (``vdb``) and optionally delete the volume."""
        _devices.remove_disk(self, vm_id, disk_id, delete=delete)

    def resize_disk(self, vm_id: str, disk_id: str, size_mib: int) -> DiskInfo:
        """``blockResize`` when running, volume ``resize`` when stopped."""
        return _devices.resize_disk(self, vm_id, disk_id, size_mib)

    def add_nic(self, vm_id: str, nic: Nic) -> NicInfo:
        """Attach an interface; its id is its MAC address."""
        return _devices.add_nic(self, vm_id, nic)

    def remove_nic(self, vm_id: str, nic_id: str) -> None:
        """Detach the interface with that MAC."""
        _devices.remove_nic(self, vm_id, nic_id)

    def update_nic(self, vm_id: str, nic_id: str, *, network: str | None, connected: bool | None) -> NicInfo:
        """``updateDeviceFlags``: move to another network, set the link up or down."""
        return _devices.update_nic(self, vm_id, nic_id, network=network, connected=connected)

    # -- snapshots ------------------------------------------------------------------------------

    def list_snapshots(self, vm_id: str) -> list[SnapshotInfo]:
        """The snapshot tree, parents first."""
        return _snapshots.list_snapshots(self.lc.domain(vm_id), vm_id)

    def get_snapshot(self, vm_id: str, snapshot_id: str) -> SnapshotInfo:
        """One snapshot: its XML, whether it is current, and its children (not the whole tree)."""
        return _snapshots.get(self.lc.domain(vm_id), vm_id, snapshot_id, self.lc.snapshot_handle(vm_id, snapshot_id))

    def create_snapshot(self, vm_id: str, name: str, *, description: str, memory: bool, quiesce: bool) -> str:
        """Internal snapshot: disk-only when stopped, with memory when running and asked; returns its id (the name).

        One call, no read-back: libvirt answers with a handle that holds the name alone, and the parent,
        creation time and memory flag exist only in the snapshot's XML, which costs another call (another
        RPC through libvirtd; the test driver formats the whole domain definition into it). The core reads
        them with :meth:`get_snapshot` when first asked. libvirt's own error names the snapshot.
        """
        if quiesce and not memory:
            log.debug("quiesce is implied for internal snapshots of stopped VMs and unavailable otherwise")
        # One string, escaped only when needed: this is the hot path. <memory snapshot='no'/> is what libvirt
        # assumes for an inactive domain anyway, so no state is read first to decide.
        name_xml = escape(name) if "&" in name or "<" in name or ">" in name else name
        description_xml = f"<description>{escape(description)}</description>" if description else ""
        memory_xml = "" if memory else "<memory snapshot='no'/>"
        xml = f"<domainsnapshot><name>{name_xml}</name>{description_xml}{memory_xml}</domainsnapshot>"
        lc = self.lc  # an internal snapshot: the cached definition stays
        handle = lc.on_domain("create a snapshot of", vm_id, _create_snapshot, xml, change=True, same_definition=True)
        lc.keep_snapshot(vm_id, name, handle)  # a revert or delete often follows: it needs no lookup then
        return name

    def revert_snapshot(self, vm_id: str, snapshot_id: str) -> None:
        """Revert, to the state the snapshot recorded."""
        self.lc.forget(vm_id)
        _snapshots.revert(self.lc.domain(vm_id), snapshot_id, self.lc.snapshot_handle(vm_id, snapshot_id))

    def delete_snapshot(self, vm_id: str, snapshot_id: str, *, children: bool) -> None:
        """Delete one snapshot or its subtree."""
        handle = self.lc.snapshot_handle(vm_id, snapshot_id, drop=True)
        if children:  # the subtree's handles go with it
            self.lc.forget_snapshots(vm_id)
        _snapshots.delete(self.lc.domain(vm_id), snapshot_id, children=children, snap=handle)

    # -- console, guest, events -----------------------------------------------------------------

    def console(self, vm_id: str) -> ConsoleInfo:
        """VNC/SPICE port and password from the live XML, the serial pty path."""
        if self.lc.is_test:
            self.unsupported("console", "libvirt's test driver allocates no graphics port or serial pty")
        dom = self.lc.domain(vm_id)
        root = parse_xml(self.lc.xml(dom, secure=True))
        serial = root.find("devices/serial/source")
        serial_path = serial.get("path", "") if serial is not None else ""
        graphics = root.find("devices/graphics")
        if graphics is None:
            return ConsoleInfo("serial", serial_device=serial_path)
        protocol = graphics.get("type", "vnc")
        host = graphics.get("listen") or (
            graphics.find("listen").get("address", "")  # type: ignore[union-attr]
            if graphics.find("listen") is not None
            else ""
        )
        port = int(graphics.get("port", "-1"))
        tls = int(graphics.get("tlsPort", "-1"))
        password = graphics.get("passwd")
        return ConsoleInfo(
            protocol,
            host=host or "127.0.0.1",
            port=port if port > 0 else None,
            password=Secret(password) if password else None,
            tls_port=tls if tls > 0 else None,
            url=f"{protocol}://{host or '127.0.0.1'}:{port}" if port > 0 else "",
            serial_device=serial_path,
        )

    def _agent(self, vm_id: str, *, phase: str = "call") -> _guest.AgentRun:
        dom = self.lc.domain(vm_id)
        lq = _sdk.libvirt_qemu()

        def run(command: str, arguments: Mapping[str, Any] | None) -> Any:
            payload: dict[str, Any] = {"execute": command}
            if arguments is not None:
                payload["arguments"] = dict(arguments)
            with map_libvirt_errors(f"guest agent command {command}", phase=phase):
                reply = lq.qemuAgentCommand(dom, json.dumps(payload), 30, 0)
            return json.loads(reply).get("return")

        return run

    def guest_info(self, vm_id: str) -> GuestInfo:
        """guest-info, guest-get-osinfo, guest-get-host-name."""
        return _guest.guest_info(self._agent(vm_id))

    def guest_ip_addresses(self, vm_id: str) -> list[IPAddressInfo]:
        """InterfaceAddresses from the agent, then DHCP leases, then the ARP table; ranked."""
        lv = _sdk.libvirt()
        dom = self.lc.domain(vm_id)
        found: list[tuple[str, Mapping[str, Any]]] = []
        sources = (
            ("agent", "VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT"),
            ("dhcp", "VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE"),
            ("arp", "VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP"),
        )
        for source, flag in sources:
            if not hasattr(lv, flag):
                continue
            try:
                with map_libvirt_errors(f"read {source} addresses"):
                    found.append((source, dom.interfaceAddresses(getattr(lv, flag), 0) or {}))
            except VirtAbstractError as exc:
                log.debug("no %s addresses for %s: %s", source, vm_id, exc)
        return _guest.rank_addresses(found)

    def guest_exec(
        self, vm_id: str, argv: Sequence[str], *, stdin: bytes | None, timeout: float, env: Mapping[str, str]
    ) -> ExecResult:
        """guest-exec with captured output, polled with guest-exec-status.

        qemu-ga *replaces* the environment when given one; the core promises variables are *added*,
        so on non-Windows guests they go through ``/usr/bin/env NAME=VALUE … argv`` instead.
        """
        if env and not self._is_windows_guest(vm_id):
            argv = ["/usr/bin/env", *(f"{k}={v}" for k, v in env.items()), *argv]
            env = {}
        return _guest.exec_command(self._agent(vm_id), argv, stdin=stdin, env=env, timeout=timeout, clock=self.clock)

    def _is_windows_guest(self, vm_id: str) -> bool:
        guest_os = self.get_vm(vm_id).guest_os
        return guest_os is not None and get_guest_os(guest_os).family is OSFamily.WINDOWS

    def guest_read_file(self, vm_id: str, path: str) -> bytes:
        """guest-file-open/read/close in 48 KiB chunks."""
        return _guest.read_file(self._agent(vm_id, phase=GUEST), path)

    def guest_write_file(self, vm_id: str, path: str, data: bytes) -> None:
        """guest-file-open/write/close in 48 KiB chunks."""
        _guest.write_file(self._agent(vm_id, phase=GUEST), path, data)

    def subscribe_events(self, callback: Callable[[str, PowerState, str], None]) -> Callable[[], None]:
        """Lifecycle events from libvirt's event loop thread: ``callback(uuid, state, "event:detail")``."""
        if not self.lc.events:
            self.unsupported("events", "the libvirt event loop is off (events=0)")
        self.lc.live()
        return self.lc.subscribe(callback)


_ACTIONS = {"power_off": "power off"}
"""Operation names whose verb phrase in an error message differs (``on_domain`` builds the message)."""
_SHUTOFF = 5  # VIR_DOMAIN_SHUTOFF


_read_state = methodcaller("state", 0)
"""``dom.state(0)``: ``[state, reason]``. The hot calls are ``methodcaller`` objects, not functions: C-level
callables add no Python frame to every state query, start and stop."""


def _has_managed_save(dom: Any) -> int:
    return int(dom.hasManagedSaveImage(0))


def _read_power_state(dom: Any) -> tuple[PowerState, str]:
    """The state, with the managed-save image asked about only where one can exist."""
    state, reason = dom.state(0)
    known = WITHOUT_IMAGE.get((state, reason))
    if known is not None:
        return known
    if managed_save_possible(state, reason):
        return power_state(state, reason, managed_save=bool(dom.hasManagedSaveImage(0)))
    return power_state(state, reason)


_create = methodcaller("create")
_destroy = methodcaller("destroy")


def _create_snapshot(dom: Any, xml: str) -> Any:
    """``dom.snapshotCreateXML(xml, 0)``: a function made once, for :meth:`LibvirtConnection.on_domain`."""
    return dom.snapshotCreateXML(xml, 0)


def _version(number: int) -> str:
    """Libvirt's packed version (major * 1,000,000 + minor * 1,000 + release) as text."""
    major, rest = divmod(int(number), 1_000_000)
    minor, release = divmod(rest, 1_000)
    return f"{major}.{minor}.{release}"
