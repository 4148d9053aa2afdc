"""Domain XML: built from a :class:`~virtabstract.VMSpec` and read back, with :mod:`xml.etree` only.

Nothing here formats XML as text: every name, description, tag and path is
set as element text or an attribute value, so ``<``, ``&``, quotes and
unicode survive exactly and cannot inject elements.

Metadata written to ``<metadata>`` (libvirt keeps one element per namespace):

* ``<libosinfo:libosinfo><libosinfo:os id="…"/>`` — what virt-install and
  virt-manager write, from the catalog's :attr:`~virtabstract.GuestOS.libosinfo`;
* ``<va:virtabstract>`` in :data:`VA_NS` — the catalog id and the tags.

The description is libvirt's own ``<description>``.
"""

from __future__ import annotations

import copy
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field

from virtabstract import CdRom, DiskInfo, Firmware, Nic, NicInfo, OSFamily, VMSpec, get_guest_os
from virtabstract.errors import SpecError

__all__ = [
    "LIBOSINFO_NS",
    "VA_NS",
    "DiskPlan",
    "DomainConfig",
    "build_domain",
    "disk_element",
    "interface_element",
    "new_mac",
    "new_password",
    "parse_domain",
    "parse_xml",
    "to_string",
]

LIBOSINFO_NS = "http://libosinfo.org/xmlns/libvirt/domain/1.0"
VA_NS = "https://virtabstract.dev/xmlns/1.0"
AGENT_CHANNEL = "org.qemu.guest_agent.0"

ET.register_namespace("libosinfo", LIBOSINFO_NS)
ET.register_namespace("va", VA_NS)

_BUS_PREFIX = {"virtio": "vd", "scsi": "sd", "sata": "sd", "ide": "hd", "usb": "sd"}
_BOOT_TO_LIBVIRT = {"disk": "hd", "cdrom": "cdrom", "network": "network"}
_BOOT_FROM_LIBVIRT = {v: k for k, v in _BOOT_TO_LIBVIRT.items()}
_NIC_MODELS = {"virtio-net": "virtio"}


def new_mac() -> str:
    """A random MAC address in QEMU's locally administered range ``52:54:00``."""
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def new_password() -> str:
    """A random console password (VNC uses at most 8 characters)."""
    return secrets.token_urlsafe(6)[:8]


def parse_xml(text: str) -> ET.Element:
    """Parse XML that libvirtd produced (domain, snapshot, pool, volume, capabilities).

    The text comes from the hypervisor the caller chose to trust, and ElementTree
    (expat) does not fetch external entities, so the stdlib parser is used.
    """
    return ET.fromstring(text)  # noqa: S314 - trusted source, see the docstring


def to_string(element: ET.Element) -> str:
    """Serialise an element (unicode, no XML declaration)."""
    return ET.tostring(element, encoding="unicode")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


def target_name(bus: str, used: Sequence[str]) -> str:
    """The next free target device name for *bus* (``vda``, ``sdb``, ``hdc`` …)."""
    prefix = _BUS_PREFIX.get(bus, "sd")
    for i in range(26 * 27):
        suffix = chr(ord("a") + i) if i < 26 else chr(ord("a") + i // 26 - 1) + chr(ord("a") + i % 26)
        name = prefix + suffix
        if name not in used:
            return name
    raise SpecError("disks", "fewer disks on one bus")  # pragma: no cover


@dataclass(frozen=True)
class DiskPlan:
    """A disk as it goes into the XML: the storage already exists at *path*."""

    path: str
    target: str
    bus: str
    format: str = "qcow2"
    device: str = "disk"
    readonly: bool = False
    block: bool = False


def disk_element(plan: DiskPlan) -> ET.Element:
    """The ``<disk>`` element for *plan*."""
    disk = ET.Element("disk", {"type": "block" if plan.block else "file", "device": plan.device})
    _sub(disk, "driver", name="qemu", type=plan.format)
    if plan.path:
        _sub(disk, "source", **{"dev" if plan.block else "file": plan.path})
    _sub(disk, "target", dev=plan.target, bus=plan.bus)
    if plan.readonly:
        _sub(disk, "readonly")
    return disk


def nic_kind(nic: Nic) -> str:
    """Libvirt interface type for a :class:`~virtabstract.Nic` (``network`` or ``bridge``)."""
    return "bridge" if nic.kind == "bridge" else "network"


def interface_element(nic: Nic, *, family: OSFamily = OSFamily.LINUX, mac: str | None = None) -> ET.Element:
    """The ``<interface>`` element for *nic* (managed networks, or host bridges for ``kind='bridge'``)."""
    kind = nic_kind(nic)
    iface = ET.Element("interface", {"type": kind})
    _sub(iface, "mac", address=(mac or nic.mac or new_mac()).lower())
    _sub(iface, "source", **{kind: nic.network})
    default_model = "e1000e" if family is OSFamily.WINDOWS else "virtio"
    _sub(iface, "model", type=_NIC_MODELS.get(nic.model or "", nic.model or default_model))
    if not nic.connected:
        _sub(iface, "link", state="down")
    return iface


def default_disk_bus(family: OSFamily) -> str:
    """Virtio for guests that ship its drivers, SATA for Windows (no virtio drivers in the installer)."""
    return "sata" if family is OSFamily.WINDOWS else "virtio"


def build_domain(
    spec: VMSpec,
    *,
    domain_type: str,
    arch: str,
    disks: Sequence[DiskPlan],
    vnc_password: str | None = None,
    max_cpus: int | None = None,
) -> ET.Element:
    """The ``<domain>`` element for *spec*; disk storage must already exist (see :class:`DiskPlan`)."""
    guest = get_guest_os(spec.guest_os)
    uefi = spec.firmware is Firmware.UEFI
    root = ET.Element("domain", {"type": domain_type})
    _sub(root, "name", spec.name)
    if spec.description:
        _sub(root, "description", spec.description)
    metadata = _sub(root, "metadata")
    osinfo = _sub(metadata, f"{{{LIBOSINFO_NS}}}libosinfo")
    _sub(osinfo, f"{{{LIBOSINFO_NS}}}os", id=guest.libosinfo)
    metadata.append(va_metadata(guest.id, spec.tags))
    _sub(root, "memory", str(spec.memory_mib), unit="MiB")
    _sub(root, "currentMemory", str(spec.memory_mib), unit="MiB")
    top = max(spec.cpus, max_cpus or spec.cpus)
    vcpu = _sub(root, "vcpu", str(top), placement="static")
    if top != spec.cpus:
        vcpu.set("current", str(spec.cpus))
    os_el = _sub(root, "os")
    if uefi:
        os_el.set("firmware", "efi")
    os_type = _sub(os_el, "type", "hvm", arch=arch)
    if uefi and arch in ("x86_64", "i686"):
        os_type.set("machine", "q35")
    if spec.secure_boot:
        _sub(os_el, "loader", secure="yes")
    for device in spec.boot_order:
        _sub(os_el, "boot", dev=_BOOT_TO_LIBVIRT[device])
    features = _sub(root, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if spec.secure_boot:
        _sub(features, "smm", state="on")
    if domain_type == "kvm":
        _sub(root, "cpu", mode="host-passthrough")
    _sub(root, "clock", offset="localtime" if guest.family is OSFamily.WINDOWS else "utc")
    for event, action in (("on_poweroff", "destroy"), ("on_reboot", "restart"), ("on_crash", "destroy")):
        _sub(root, event, action)
    devices = _sub(root, "devices")
    for plan in disks:
        devices.append(disk_element(plan))
    if any(p.bus == "scsi" for p in disks):
        _sub(devices, "controller", type="scsi", model="virtio-scsi")
    for nic in spec.nics:
        assert isinstance(nic, Nic)
        devices.append(interface_element(nic, family=guest.family))
    serial = _sub(devices, "serial", type="pty")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    channel = _sub(devices, "channel", type="unix")
    _sub(channel, "target", type="virtio", name=AGENT_CHANNEL)
    if spec.graphics != "none":
        graphics = _sub(devices, "graphics", type=spec.graphics, autoport="yes", listen="127.0.0.1")
        if vnc_password:
            graphics.set("passwd", vnc_password)
        _sub(graphics, "listen", type="address", address="127.0.0.1")
    rng = _sub(devices, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")
    balloon = _sub(devices, "memballoon", model="virtio")
    _sub(balloon, "stats", period="5")  # the guest's balloon driver then reports (see _devices.balloon_active)
    return root


def cdrom_plan(cdrom: CdRom, *, uefi: bool, used: Sequence[str]) -> DiskPlan:
    """The CD-ROM drive: SATA on q35 (UEFI) machines, IDE on the i440fx default, unless asked."""
    bus = cdrom.bus or ("sata" if uefi else "ide")
    return DiskPlan(cdrom.iso or "", target_name(bus, used), bus, format="raw", device="cdrom", readonly=True)


def va_metadata(guest_os: str | None, tags: Sequence[str]) -> ET.Element:
    """Our ``<va:virtabstract>`` metadata element."""
    va = ET.Element(f"{{{VA_NS}}}virtabstract")
    if guest_os:
        _sub(va, f"{{{VA_NS}}}guest-os", guest_os)
    tags_el = _sub(va, f"{{{VA_NS}}}tags")
    for tag in tags:
        _sub(tags_el, f"{{{VA_NS}}}tag", tag)
    return va


# -- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainConfig:
    """What the backend needs from one domain's XML (sizes of volumes are filled in separately)."""

    name: str
    uuid: str
    domain_type: str
    cpus: int
    max_cpus: int
    memory_mib: int
    max_memory_mib: int
    description: str = ""
    tags: tuple[str, ...] = ()
    guest_os: str | None = None
    libosinfo: str = ""
    firmware: Firmware = Firmware.BIOS
    boot_order: tuple[str, ...] = ()
    cdrom: str | None = None
    disks: tuple[DiskInfo, ...] = ()
    nics: tuple[NicInfo, ...] = ()
    nvram: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False)


def _kib(element: ET.Element | None) -> int:
    if element is None or not (element.text or "").strip():
        return 0
    value = int((element.text or "0").strip())
    unit = (element.get("unit") or "KiB").lower()
    factor = {
        "b": 1 / 1024,
        "bytes": 1 / 1024,
        "k": 1,
        "kib": 1,
        "kb": 1000 / 1024,
        "m": 1024,
        "mib": 1024,
        "mb": 1e6 / 1024,
        "g": 1024**2,
        "gib": 1024**2,
        "gb": 1e9 / 1024,
        "t": 1024**3,
        "tib": 1024**3,
    }
    return int(value * factor.get(unit, 1))


def parse_domain(xml: str) -> DomainConfig:
    """Read a domain's XML (``XMLDesc``) into a :class:`DomainConfig`."""
    root = parse_xml(xml)
    vcpu = root.find("vcpu")
    max_cpus = int((vcpu.text or "1").strip()) if vcpu is not None and vcpu.text else 1
    cpus = int(vcpu.get("current", max_cpus)) if vcpu is not None else max_cpus
    memory = _kib(root.find("memory")) // 1024
    current = _kib(root.find("currentMemory")) // 1024 or memory
    os_el = root.find("os")
    firmware = Firmware.BIOS
    boot: list[str] = []
    nvram = ""
    if os_el is not None:
        loader = os_el.find("loader")
        if os_el.get("firmware") == "efi" or (loader is not None and loader.get("type") == "pflash"):
            firmware = Firmware.UEFI
        boot = [_BOOT_FROM_LIBVIRT.get(b.get("dev", ""), b.get("dev", "")) for b in os_el.findall("boot")]
        nvram_el = os_el.find("nvram")
        nvram = (nvram_el.text or "").strip() if nvram_el is not None else ""
    disks, cdrom = _parse_disks(root)
    libosinfo = ""
    os_meta = root.find(f"metadata/{{{LIBOSINFO_NS}}}libosinfo/{{{LIBOSINFO_NS}}}os")
    if os_meta is not None:
        libosinfo = os_meta.get("id", "")
    va = root.find(f"metadata/{{{VA_NS}}}virtabstract")
    tags: tuple[str, ...] = ()
    guest_os = None
    if va is not None:
        tags = tuple(t.text or "" for t in va.findall(f"{{{VA_NS}}}tags/{{{VA_NS}}}tag"))
        guest_os = va.findtext(f"{{{VA_NS}}}guest-os") or None
    return DomainConfig(
        name=root.findtext("name") or "",
        uuid=root.findtext("uuid") or "",
        domain_type=root.get("type", ""),
        cpus=cpus,
        max_cpus=max_cpus,
        memory_mib=current,
        max_memory_mib=memory,
        description=root.findtext("description") or "",
        tags=tags,
        guest_os=guest_os,
        libosinfo=libosinfo,
        firmware=firmware,
        boot_order=tuple(boot),
        cdrom=cdrom,
        disks=tuple(disks),
        nics=tuple(_parse_nics(root)),
        nvram=nvram,
    )


def _parse_disks(root: ET.Element) -> tuple[list[DiskInfo], str | None]:
    disks: list[DiskInfo] = []
    cdrom: str | None = None
    for disk in root.findall("devices/disk"):
        source = disk.find("source")
        path = ""
        pool = ""
        if source is not None:
            path = source.get("file") or source.get("dev") or source.get("volume") or source.get("name") or ""
            pool = source.get("pool", "")
        if disk.get("device") == "cdrom":
            cdrom = cdrom or path or ""
            continue
        if disk.get("device", "disk") != "disk":
            continue
        target = disk.find("target")
        driver = disk.find("driver")
        backing = disk.find("backingStore/source")
        disks.append(
            DiskInfo(
                id=target.get("dev", "") if target is not None else "",
                size_mib=0,
                path=path,
                storage=pool,
                bus=target.get("bus", "") if target is not None else "",
                format=driver.get("type", "") if driver is not None else "",
                backing=backing.get("file", "") if backing is not None else "",
            )
        )
    return disks, cdrom or None


def _parse_nics(root: ET.Element) -> list[NicInfo]:
    nics = []
    for iface in root.findall("devices/interface"):
        mac = (iface.find("mac").get("address", "") if iface.find("mac") is not None else "").lower()  # type: ignore[union-attr]
        source = iface.find("source")
        kind = iface.get("type", "network")
        network = ""
        if source is not None:
            network = source.get("network") or source.get("bridge") or source.get("dev") or ""
        model = iface.find("model")
        link = iface.find("link")
        nics.append(
            NicInfo(
                id=mac,
                mac=mac,
                network=network,
                kind=kind,
                model=model.get("type", "") if model is not None else "",
                connected=link is None or link.get("state", "up") != "down",
            )
        )
    return nics


def find_device(root: ET.Element, kind: str, device_id: str) -> ET.Element | None:
    """The ``<disk>`` with target dev *device_id*, or the ``<interface>`` with that MAC (``kind``: disk/nic)."""
    if kind == "disk":
        for disk in root.findall("devices/disk"):
            target = disk.find("target")
            if target is not None and target.get("dev") == device_id and disk.get("device", "disk") == "disk":
                return disk
        return None
    wanted = device_id.lower()
    for iface in root.findall("devices/interface"):
        mac = iface.find("mac")
        if mac is not None and mac.get("address", "").lower() == wanted:
            return iface
    return None


def clone_domain(root: ET.Element, name: str, disk_paths: dict[str, str], vnc_password: str | None) -> ET.Element:
    """A copy of *root* for a clone: new name and MACs, no UUID or nvram path, disks at *disk_paths* (by target)."""
    clone = copy.deepcopy(root)
    for tag in ("uuid", "title"):
        for element in clone.findall(tag):
            clone.remove(element)
    name_el = clone.find("name")
    if name_el is not None:
        name_el.text = name
    clone.attrib.pop("id", None)
    os_el = clone.find("os")
    if os_el is not None:
        for nvram in os_el.findall("nvram"):
            os_el.remove(nvram)
    devices = clone.find("devices")
    if devices is not None:
        for iface in devices.findall("interface"):
            for mac in iface.findall("mac"):
                mac.set("address", new_mac())
            for target in iface.findall("target"):  # the host tap name (vnetN) is per running domain
                iface.remove(target)
        for disk in devices.findall("disk"):
            target_el = disk.find("target")
            dev = target_el.get("dev", "") if target_el is not None else ""
            if dev in disk_paths:
                found = disk.find("source")
                source = found if found is not None else _sub(disk, "source")
                source.attrib.clear()
                source.set("file", disk_paths[dev])
                disk.set("type", "file")
                for backing in disk.findall("backingStore"):
                    disk.remove(backing)
        for graphics in devices.findall("graphics"):
            graphics.attrib.pop("port", None)
            graphics.set("autoport", "yes")
            if vnc_password and "passwd" in graphics.attrib:
                graphics.set("passwd", vnc_password)
        for channel in devices.findall("channel"):
            channel_source = channel.find("source")
            if channel_source is not None and channel.get("type") == "unix":
                channel.remove(channel_source)  # libvirt generates a per-domain socket path
    return clone
