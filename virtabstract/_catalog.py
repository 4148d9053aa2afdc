"""The guest-OS catalog: one canonical id per guest OS, and the native id each backend needs.

A VM spec names its guest OS once, with a canonical id such as ``"ubuntu-22.04"``
or ``"windows-server-2022"`` (or an alias: ``"jammy"``, ``"ws2022"``). Each backend
then reads the id it needs from the :class:`GuestOS` record:

* **KVM/libvirt** -- :attr:`GuestOS.libosinfo`, the libosinfo OS id URL written into
  the domain's ``<metadata><libosinfo:os id="..."/>`` (what virt-install and
  virt-manager write and read);
* **ESXi/vSphere** -- :attr:`GuestOS.vsphere`, the ``guestId``
  (``VirtualMachineGuestOsIdentifier``) of the VM's config spec;
* **VirtualBox** -- :attr:`GuestOS.virtualbox`, the ``OSTypeId`` given to
  ``createvm --ostype``; the newest VirtualBox releases know it (a few need 7.1,
  e.g. ``Windows2025_64``, ``RedHat10_64``), and :attr:`GuestOS.virtualbox_fallback`
  is an id that every VirtualBox 6.1 release already knows. A backend that talks to
  an older VirtualBox uses the fallback when the newer id is refused.

Reverse lookup (:func:`guest_os_from_native`) maps what a hypervisor reports back to
the catalog. Several catalog entries can share one native id (vSphere has a single
``ubuntu64Guest`` for every Ubuntu release; VirtualBox knows no Rocky Linux and files
it under ``RedHat9_64``). Such an id resolves by the explicit table ``_PREFERRED``:
the most recent release of the canonical product (``ubuntu64Guest`` -> ``ubuntu-24.04``,
``RedHat9_64`` -> ``rhel-9``, ``Windows2019_64`` -> ``windows-server-2019``), and a
native id that names no distribution at all (``other6xLinux64Guest``) resolves to the
generic entry (``linux``). Every shared native id must be listed there; the tests
enforce it, so the answer never depends on the order of the table.

Where the native ids were checked (when this table was written):

* libosinfo ids: every one against the ``<os id=...>`` of Debian 12's ``osinfo-db``
  package (0.20221130) in ``/usr/share/osinfo/os``; the ids that package is too old
  to have (Windows Server 2025, Ubuntu 24.04, Debian 12 and 13, RHEL 10, Fedora
  39-43, FreeBSD 14.0, Oracle Linux 9.0, openSUSE Leap 15.6, Alpine 3.21) against the
  upstream osinfo-db data files (``data/os/<vendor>/<os>.xml.in``). libosinfo has
  one id per minor release for several OSes (RHEL, Oracle Linux, FreeBSD, OpenBSD):
  the catalog uses the major-level id where libosinfo has one (``rocky/9``,
  ``sle/15``, ``debian/12``) and otherwise the ``.0`` id of the major release.
* vSphere guestIds: against the full ``VirtualMachineGuestOsIdentifier``
  enumeration as mapped in a public vSphere API client (``windows2019srvNext_64Guest``
  is Server 2022 and ``windows2022srvNext_64Guest`` is Server 2025: the names are
  one release behind on purpose; ``windows9Server64Guest`` is Server 2016,
  ``windows8Server64Guest`` is Server 2012 / 2012 R2, ``windows9_64Guest`` is
  Windows 10). vSphere has no OpenBSD, Alpine or Arch id: the catalog uses
  ``otherGuest64`` / ``other6xLinux64Guest`` for them.
* VirtualBox OSTypeIds: :attr:`GuestOS.virtualbox` against ``VBoxManage list
  ostypes`` of VirtualBox 7.1.18 (227 types); :attr:`GuestOS.virtualbox_fallback`
  against the OS type table (``src/VBox/Main/src-all/Global.cpp``) of the 6.0
  sources, so it exists on every 6.1.x as well. VirtualBox has no Rocky, AlmaLinux,
  CentOS or Alpine type: those use the ``RedHat*`` and ``Linux_64`` types.

The table is data only: no I/O at import, and the lookup indexes are built on first
use.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ._model import Firmware, OSFamily
from .errors import SpecError, UsageError

__all__ = [
    "NATIVE_KINDS",
    "GuestOS",
    "all_guest_oses",
    "get_guest_os",
    "guest_os_from_native",
    "guest_os_ids",
    "render_catalog_markdown",
]

NATIVE_KINDS: Final[tuple[str, ...]] = ("libosinfo", "virtualbox", "vsphere")
"""The kinds of native id :func:`guest_os_from_native` understands."""


# __init__, __eq__ and __repr__ are written by hand below: having the dataclass machinery
# generate them (it compiles each at import) costs more than all the rest of this module.
# The dataclass still provides fields(), replace() and frozenness.
@dataclass(frozen=True, init=False, repr=False, eq=False)
class GuestOS:
    """One guest operating system and the id each hypervisor knows it by.

    Sizes are *recommended* defaults for a new VM (used by the docs and the CLI), not
    hard minimums enforced anywhere. Two records are equal when all their fields are.
    """

    id: str
    """Canonical id, lower case: ``"ubuntu-22.04"``, ``"windows-server-2022"``, ``"linux"``."""
    name: str
    """Human name: ``"Ubuntu 22.04 LTS"``."""
    family: OSFamily
    """OS family."""
    version: str
    """Release, ``""`` for the generic entries (``linux``, ``windows``, ``other``)."""
    libosinfo: str
    """libosinfo OS id URL for libvirt ``<metadata>``: ``"http://ubuntu.com/ubuntu/22.04"``."""
    vsphere: str
    """vSphere ``guestId`` (``VirtualMachineGuestOsIdentifier``): ``"ubuntu64Guest"``."""
    virtualbox: str
    """VirtualBox ``OSTypeId`` known to current VirtualBox (7.x): ``"Ubuntu22_LTS_64"``."""
    virtualbox_fallback: str
    """VirtualBox ``OSTypeId`` known to every VirtualBox 6.1 release: ``"Ubuntu_64"``."""
    min_memory_mib: int
    """Recommended memory for a new VM, MiB."""
    min_disk_mib: int
    """Recommended system disk for a new VM, MiB."""
    firmware: Firmware
    """Recommended boot firmware."""
    aliases: tuple[str, ...] = ()
    """Other names accepted by :func:`get_guest_os` (``"jammy"``, ``"ubuntu2204"``)."""
    eol: bool = False
    """The vendor's general support had ended when the table was last updated (the entry still works)."""
    notes: str = ""
    """Anything a user must know: requirements (TPM, Secure Boot), substitutes used."""

    def __init__(
        self,
        id: str,
        name: str,
        family: OSFamily,
        version: str,
        libosinfo: str,
        vsphere: str,
        virtualbox: str,
        virtualbox_fallback: str,
        min_memory_mib: int,
        min_disk_mib: int,
        firmware: Firmware,
        aliases: tuple[str, ...] = (),
        eol: bool = False,
        notes: str = "",
    ) -> None:
        setattr_ = object.__setattr__  # the instance is frozen
        setattr_(self, "id", id)
        setattr_(self, "name", name)
        setattr_(self, "family", family)
        setattr_(self, "version", version)
        setattr_(self, "libosinfo", libosinfo)
        setattr_(self, "vsphere", vsphere)
        setattr_(self, "virtualbox", virtualbox)
        setattr_(self, "virtualbox_fallback", virtualbox_fallback)
        setattr_(self, "min_memory_mib", min_memory_mib)
        setattr_(self, "min_disk_mib", min_disk_mib)
        setattr_(self, "firmware", firmware)
        setattr_(self, "aliases", aliases)
        setattr_(self, "eol", eol)
        setattr_(self, "notes", notes)

    def _astuple(self) -> tuple[object, ...]:
        return (
            self.id, self.name, self.family, self.version, self.libosinfo, self.vsphere, self.virtualbox,
            self.virtualbox_fallback, self.min_memory_mib, self.min_disk_mib, self.firmware, self.aliases,
            self.eol, self.notes,
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GuestOS):
            return NotImplemented
        return self._astuple() == other._astuple()

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"GuestOS(id={self.id!r}, name={self.name!r}, family={self.family.value!r})"


_L, _W, _B, _O = OSFamily.LINUX, OSFamily.WINDOWS, OSFamily.BSD, OSFamily.OTHER
_BIOS, _UEFI = Firmware.BIOS, Firmware.UEFI
_MS = "http://microsoft.com/win/"
_UB = "http://ubuntu.com/ubuntu/"
_DEB = "http://debian.org/debian/"
_RH = "http://redhat.com/rhel/"
_FED = "http://fedoraproject.org/fedora/"
_G = GuestOS

# id, name, family, version, libosinfo, vsphere, virtualbox (7.x), virtualbox (6.1),
# memory MiB, disk MiB, firmware, aliases, eol, notes
# fmt: off
_CATALOG: Final[tuple[GuestOS, ...]] = (
    # --- Windows -------------------------------------------------------------------------------
    _G("windows-11", "Windows 11", _W, "11", _MS + "11", "windows11_64Guest", "Windows11_64",
       "Windows10_64", 4096, 65536, _UEFI, ("win11", "windows11"),
       notes="needs UEFI with Secure Boot and a TPM 2.0 (vTPM); VirtualBox 6.1 has no vTPM"),
    _G("windows-10", "Windows 10", _W, "10", _MS + "10", "windows9_64Guest", "Windows10_64",
       "Windows10_64", 4096, 65536, _UEFI, ("win10", "windows10"), eol=True),
    _G("windows-server-2025", "Windows Server 2025", _W, "2025", _MS + "2k25",
       "windows2022srvNext_64Guest", "Windows2025_64", "Windows2019_64", 4096, 40960, _UEFI,
       ("win2025", "win2k25", "ws2025", "windows2025", "windows-2025"),
       notes="VirtualBox type Windows2025_64 needs VirtualBox 7.1"),
    _G("windows-server-2022", "Windows Server 2022", _W, "2022", _MS + "2k22",
       "windows2019srvNext_64Guest", "Windows2022_64", "Windows2019_64", 4096, 40960, _UEFI,
       ("win2022", "win2k22", "ws2022", "windows2022", "windows-2022")),
    _G("windows-server-2019", "Windows Server 2019", _W, "2019", _MS + "2k19",
       "windows2019srv_64Guest", "Windows2019_64", "Windows2019_64", 4096, 40960, _UEFI,
       ("win2019", "win2k19", "ws2019", "windows2019", "windows-2019")),
    _G("windows-server-2016", "Windows Server 2016", _W, "2016", _MS + "2k16",
       "windows9Server64Guest", "Windows2016_64", "Windows2016_64", 2048, 40960, _UEFI,
       ("win2016", "win2k16", "ws2016", "windows2016", "windows-2016")),
    _G("windows-server-2012-r2", "Windows Server 2012 R2", _W, "2012 R2", _MS + "2k12r2",
       "windows8Server64Guest", "Windows2012_64", "Windows2012_64", 2048, 40960, _BIOS,
       ("win2012r2", "win2k12r2", "ws2012r2", "windows2012r2", "windows-2012-r2"), eol=True),
    _G("windows", "Windows (generic)", _W, "", _MS + "10", "windows9_64Guest", "WindowsNT_64",
       "WindowsNT_64", 4096, 65536, _BIOS, ("win", "windows-generic"),
       notes="libosinfo and vSphere have no generic Windows id: the Windows 10 ids are used"),
    # --- Ubuntu --------------------------------------------------------------------------------
    _G("ubuntu-24.04", "Ubuntu 24.04 LTS", _L, "24.04", _UB + "24.04", "ubuntu64Guest",
       "Ubuntu24_LTS_64", "Ubuntu_64", 4096, 25600, _UEFI, ("ubuntu24.04", "ubuntu2404", "noble")),
    _G("ubuntu-22.04", "Ubuntu 22.04 LTS", _L, "22.04", _UB + "22.04", "ubuntu64Guest",
       "Ubuntu22_LTS_64", "Ubuntu_64", 2048, 25600, _UEFI, ("ubuntu22.04", "ubuntu2204", "jammy")),
    _G("ubuntu-20.04", "Ubuntu 20.04 LTS", _L, "20.04", _UB + "20.04", "ubuntu64Guest",
       "Ubuntu20_LTS_64", "Ubuntu_64", 2048, 20480, _UEFI, ("ubuntu20.04", "ubuntu2004", "focal"),
       eol=True),
    _G("ubuntu-18.04", "Ubuntu 18.04 LTS", _L, "18.04", _UB + "18.04", "ubuntu64Guest",
       "Ubuntu18_LTS_64", "Ubuntu_64", 2048, 20480, _BIOS, ("ubuntu18.04", "ubuntu1804", "bionic"),
       eol=True),
    # --- Debian --------------------------------------------------------------------------------
    _G("debian-13", "Debian 13 (trixie)", _L, "13", _DEB + "13", "debian13_64Guest", "Debian13_64",
       "Debian_64", 2048, 20480, _UEFI, ("debian13", "trixie")),
    _G("debian-12", "Debian 12 (bookworm)", _L, "12", _DEB + "12", "debian12_64Guest", "Debian12_64",
       "Debian_64", 2048, 20480, _UEFI, ("debian12", "bookworm")),
    _G("debian-11", "Debian 11 (bullseye)", _L, "11", _DEB + "11", "debian11_64Guest", "Debian11_64",
       "Debian_64", 1024, 20480, _UEFI, ("debian11", "bullseye")),
    _G("debian-10", "Debian 10 (buster)", _L, "10", _DEB + "10", "debian10_64Guest", "Debian10_64",
       "Debian_64", 1024, 20480, _BIOS, ("debian10", "buster"), eol=True),
    # --- Red Hat Enterprise Linux and rebuilds -------------------------------------------------
    _G("rhel-10", "Red Hat Enterprise Linux 10", _L, "10", _RH + "10.0", "rhel10_64Guest",
       "RedHat10_64", "RedHat_64", 2048, 20480, _UEFI, ("rhel10", "redhat10", "redhat-10"),
       notes="VirtualBox type RedHat10_64 needs VirtualBox 7.1"),
    _G("rhel-9", "Red Hat Enterprise Linux 9", _L, "9", _RH + "9.0", "rhel9_64Guest", "RedHat9_64",
       "RedHat_64", 2048, 20480, _UEFI, ("rhel9", "redhat9", "redhat-9")),
    _G("rhel-8", "Red Hat Enterprise Linux 8", _L, "8", _RH + "8.0", "rhel8_64Guest", "RedHat8_64",
       "RedHat_64", 2048, 20480, _UEFI, ("rhel8", "redhat8", "redhat-8")),
    _G("rhel-7", "Red Hat Enterprise Linux 7", _L, "7", _RH + "7.0", "rhel7_64Guest", "RedHat7_64",
       "RedHat_64", 2048, 20480, _BIOS, ("rhel7", "redhat7", "redhat-7"), eol=True),
    _G("rocky-9", "Rocky Linux 9", _L, "9", "http://rockylinux.org/rocky/9", "rockylinux_64Guest",
       "RedHat9_64", "RedHat_64", 2048, 20480, _UEFI, ("rocky9", "rockylinux9", "rockylinux-9"),
       notes="VirtualBox has no Rocky Linux type: RHEL's is used"),
    _G("rocky-8", "Rocky Linux 8", _L, "8", "http://rockylinux.org/rocky/8", "rockylinux_64Guest",
       "RedHat8_64", "RedHat_64", 2048, 20480, _UEFI, ("rocky8", "rockylinux8", "rockylinux-8"),
       notes="VirtualBox has no Rocky Linux type: RHEL's is used"),
    _G("almalinux-9", "AlmaLinux 9", _L, "9", "http://almalinux.org/almalinux/9", "almalinux_64Guest",
       "RedHat9_64", "RedHat_64", 2048, 20480, _UEFI, ("almalinux9", "alma9", "alma-9"),
       notes="VirtualBox has no AlmaLinux type: RHEL's is used"),
    _G("almalinux-8", "AlmaLinux 8", _L, "8", "http://almalinux.org/almalinux/8", "almalinux_64Guest",
       "RedHat8_64", "RedHat_64", 2048, 20480, _UEFI, ("almalinux8", "alma8", "alma-8"),
       notes="VirtualBox has no AlmaLinux type: RHEL's is used"),
    _G("centos-stream-9", "CentOS Stream 9", _L, "9", "http://centos.org/centos-stream/9",
       "centos9_64Guest", "RedHat9_64", "RedHat_64", 2048, 20480, _UEFI,
       ("centos-stream9", "centosstream9", "c9s"),
       notes="VirtualBox has no CentOS type: RHEL's is used"),
    _G("centos-7", "CentOS Linux 7", _L, "7", "http://centos.org/centos/7.0", "centos7_64Guest",
       "RedHat7_64", "RedHat_64", 2048, 20480, _BIOS, ("centos7", "centos7.0"), eol=True,
       notes="VirtualBox has no CentOS type: RHEL's is used"),
    _G("oracle-linux-9", "Oracle Linux 9", _L, "9", "http://oracle.com/ol/9.0", "oracleLinux9_64Guest",
       "Oracle9_64", "Oracle_64", 2048, 20480, _UEFI, ("ol9", "oraclelinux9", "oracle9")),
    _G("oracle-linux-8", "Oracle Linux 8", _L, "8", "http://oracle.com/ol/8.0", "oracleLinux8_64Guest",
       "Oracle8_64", "Oracle_64", 2048, 20480, _UEFI, ("ol8", "oraclelinux8", "oracle8")),
    # --- Fedora --------------------------------------------------------------------------------
    _G("fedora-43", "Fedora Linux 43", _L, "43", _FED + "43", "fedora64Guest", "Fedora_64",
       "Fedora_64", 4096, 20480, _UEFI, ("fedora43", "f43")),
    _G("fedora-42", "Fedora Linux 42", _L, "42", _FED + "42", "fedora64Guest", "Fedora_64",
       "Fedora_64", 4096, 20480, _UEFI, ("fedora42", "f42")),
    _G("fedora-41", "Fedora Linux 41", _L, "41", _FED + "41", "fedora64Guest", "Fedora_64",
       "Fedora_64", 4096, 20480, _UEFI, ("fedora41", "f41"), eol=True),
    _G("fedora-40", "Fedora Linux 40", _L, "40", _FED + "40", "fedora64Guest", "Fedora_64",
       "Fedora_64", 4096, 20480, _UEFI, ("fedora40", "f40"), eol=True),
    _G("fedora-39", "Fedora Linux 39", _L, "39", _FED + "39", "fedora64Guest", "Fedora_64",
       "Fedora_64", 4096, 20480, _UEFI, ("fedora39", "f39"), eol=True),
    # --- SUSE ----------------------------------------------------------------------------------
    _G("sles-15", "SUSE Linux Enterprise Server 15", _L, "15", "http://suse.com/sle/15",
       "sles15_64Guest", "SUSE_LE_64", "OpenSUSE_64", 2048, 32768, _UEFI, ("sles15", "sle15")),
    _G("sles-12", "SUSE Linux Enterprise Server 12", _L, "12", "http://suse.com/sles/12",
       "sles12_64Guest", "SUSE_LE_64", "OpenSUSE_64", 2048, 32768, _BIOS, ("sles12", "sle12"),
       eol=True),
    _G("opensuse-leap-15", "openSUSE Leap 15.6", _L, "15.6", "http://opensuse.org/opensuse/15.6",
       "opensuse64Guest", "OpenSUSE_Leap_64", "OpenSUSE_64", 2048, 16384, _UEFI,
       ("opensuse15", "opensuse15.6", "leap15", "opensuse-leap15", "leap-15.6")),
    _G("opensuse-tumbleweed", "openSUSE Tumbleweed", _L, "rolling",
       "http://opensuse.org/opensuse/tumbleweed", "opensuse64Guest", "OpenSUSE_Tumbleweed_64",
       "OpenSUSE_64", 2048, 20480, _UEFI, ("tumbleweed", "opensusetumbleweed")),
    # --- other Linux ---------------------------------------------------------------------------
    _G("alpine-3.21", "Alpine Linux 3.21", _L, "3.21", "http://alpinelinux.org/alpinelinux/3.21",
       "other6xLinux64Guest", "Linux_64", "Linux26_64", 512, 4096, _BIOS,
       ("alpine3.21", "alpinelinux3.21", "alpine321"),
       notes="vSphere and VirtualBox have no Alpine type: generic Linux ones are used"),
    _G("archlinux", "Arch Linux", _L, "rolling", "http://archlinux.org/archlinux/rolling",
       "other6xLinux64Guest", "ArchLinux_64", "ArchLinux_64", 1024, 20480, _BIOS,
       ("arch", "arch-linux"), notes="vSphere has no Arch type: a generic Linux 6.x one is used"),
    _G("linux", "Linux (generic)", _L, "", "http://libosinfo.org/linux/2022", "otherLinux64Guest",
       "Linux_64", "Linux26_64", 1024, 10240, _BIOS, ("linux-generic", "other-linux", "otherlinux")),
    # --- BSD -----------------------------------------------------------------------------------
    _G("freebsd-14", "FreeBSD 14", _B, "14", "http://freebsd.org/freebsd/14.0", "freebsd14_64Guest",
       "FreeBSD_64", "FreeBSD_64", 1024, 10240, _BIOS, ("freebsd14",)),
    _G("freebsd-13", "FreeBSD 13", _B, "13", "http://freebsd.org/freebsd/13.0", "freebsd13_64Guest",
       "FreeBSD_64", "FreeBSD_64", 1024, 10240, _BIOS, ("freebsd13",)),
    _G("openbsd-7", "OpenBSD 7", _B, "7", "http://openbsd.org/openbsd/7.0", "otherGuest64",
       "OpenBSD_64", "OpenBSD_64", 1024, 10240, _BIOS, ("openbsd7",),
       notes="vSphere has no OpenBSD type: otherGuest64 is used"),
    # --- anything else -------------------------------------------------------------------------
    _G("other", "Other / unknown", _O, "", "http://libosinfo.org/unknown", "otherGuest64", "Other_64",
       "Other_64", 1024, 10240, _BIOS, ("unknown", "other-64")),
)
# fmt: on

#: Which entry a native id shared by several entries resolves to (see the module docstring).
#: The rule: the most recent release of the canonical product; a native id that names no
#: distribution resolves to the generic entry of its family.
_PREFERRED: Final[Mapping[str, Mapping[str, str]]] = {
    "libosinfo": {
        _MS + "10": "windows-10",
    },
    "vsphere": {
        "windows9_64Guest": "windows-10",
        "ubuntu64Guest": "ubuntu-24.04",
        "rockylinux_64Guest": "rocky-9",
        "almalinux_64Guest": "almalinux-9",
        "fedora64Guest": "fedora-43",
        "opensuse64Guest": "opensuse-leap-15",
        "other6xLinux64Guest": "linux",
        "otherGuest64": "other",
    },
    "virtualbox": {
        "Windows10_64": "windows-10",
        "Windows2019_64": "windows-server-2019",
        "Ubuntu_64": "ubuntu-24.04",
        "Debian_64": "debian-13",
        "RedHat_64": "rhel-10",
        "RedHat9_64": "rhel-9",
        "RedHat8_64": "rhel-8",
        "RedHat7_64": "rhel-7",
        "Oracle_64": "oracle-linux-9",
        "Fedora_64": "fedora-43",
        "SUSE_LE_64": "sles-15",
        "OpenSUSE_64": "opensuse-leap-15",
        "FreeBSD_64": "freebsd-14",
        "Linux_64": "linux",
        "Linux26_64": "linux",
    },
}


def _norm(name: str) -> str:
    """Lookup key of a guest OS id or alias: case-folded, ``_`` and blanks read as ``-``."""
    return "-".join(name.strip().casefold().replace("_", " ").split())


def _native_values(entry: GuestOS, kind: str) -> tuple[str, ...]:
    if kind == "libosinfo":
        return (entry.libosinfo,)
    if kind == "vsphere":
        return (entry.vsphere,)
    return (entry.virtualbox, entry.virtualbox_fallback)


class _Index:
    """The lookup tables, built once on first use (a plain class: cheaper to define than a dataclass)."""

    __slots__ = ("by_name", "by_native", "shared")

    def __init__(
        self,
        by_name: dict[str, GuestOS],
        by_native: dict[str, dict[str, GuestOS]],
        shared: dict[str, dict[str, tuple[str, ...]]],
    ) -> None:
        self.by_name = by_name
        """Normalised id or alias -> entry."""
        self.by_native = by_native
        """Kind -> case-folded native id -> resolved entry."""
        self.shared = shared
        """Kind -> native id -> ids of every entry carrying it, where there are several."""


@functools.cache
def _index() -> _Index:
    by_id = {entry.id: entry for entry in _CATALOG}
    by_name: dict[str, GuestOS] = {}
    for entry in _CATALOG:
        for name in (entry.id, *entry.aliases):
            by_name.setdefault(_norm(name), entry)
    by_native: dict[str, dict[str, GuestOS]] = {}
    shared: dict[str, dict[str, tuple[str, ...]]] = {}
    for kind in NATIVE_KINDS:
        holders: dict[str, list[str]] = {}
        for entry in _CATALOG:
            for native in dict.fromkeys(_native_values(entry, kind)):
                holders.setdefault(native, []).append(entry.id)
        preferred = _PREFERRED.get(kind, {})
        table: dict[str, GuestOS] = {}
        shared[kind] = {}
        for native, ids in holders.items():
            if len(ids) > 1:
                shared[kind][native] = tuple(ids)
            # An unlisted shared id falls back to the first entry of the table; the tests
            # require every shared id to be listed, so this is only a safety net.
            table[native.casefold()] = by_id[preferred.get(native, ids[0])]
        by_native[kind] = table
    return _Index(by_name, by_native, shared)


def all_guest_oses() -> tuple[GuestOS, ...]:
    """Return every catalog entry, in the catalog's order (by product line, newest first)."""
    return _CATALOG


def guest_os_ids() -> tuple[str, ...]:
    """Return the canonical ids of every catalog entry, sorted."""
    return tuple(sorted(entry.id for entry in _CATALOG))


def get_guest_os(os_id: str) -> GuestOS:
    """Return the catalog entry named by *os_id*: a canonical id or an alias.

    The lookup ignores case and reads ``_`` and blanks as ``-``, so ``"Ubuntu-22.04"``,
    ``"ubuntu2204"``, ``"jammy"`` and ``"ubuntu 22.04"`` all name ``ubuntu-22.04``.

    :raises SpecError: (field ``"guest_os"``) for a name the catalog does not know;
        the message suggests the nearest known ids.
    """
    if isinstance(os_id, str):
        found = _index().by_name.get(_norm(os_id))
        if found is not None:
            return found
    raise SpecError("guest_os", "a known guest OS id", got=os_id, hint=_suggest(os_id))


def _suggest(os_id: object) -> str:
    see = "see virtabstract.guest_os_ids()"
    if not isinstance(os_id, str) or not os_id.strip():
        return see
    import difflib  # only on the error path: keeps importing this module cheap

    by_name = _index().by_name
    close = difflib.get_close_matches(_norm(os_id), list(by_name), n=6, cutoff=0.6)
    ids = list(dict.fromkeys(by_name[name].id for name in close))[:3]
    if not ids:
        return see
    return "did you mean " + ", ".join(repr(i) for i in ids) + "? " + see


def guest_os_from_native(kind: str, native_id: str) -> GuestOS | None:
    """Map a hypervisor's own guest-OS id back to the catalog.

    :param kind: ``"libosinfo"`` (a libosinfo OS id URL), ``"vsphere"`` (a guestId) or
        ``"virtualbox"`` (an OSTypeId; both :attr:`GuestOS.virtualbox` and
        :attr:`GuestOS.virtualbox_fallback` match).
    :param native_id: the id as the hypervisor reports it; compared case-insensitively.
    :returns: the entry, or ``None`` when the catalog has no entry with that id. A native
        id shared by several entries resolves to the preferred one: the most recent
        release of the canonical product (``ubuntu64Guest`` -> ``ubuntu-24.04``), or the
        generic entry for an id that names no distribution (``other6xLinux64Guest`` ->
        ``linux``).
    :raises UsageError: (a :class:`ValueError`) for an unknown *kind*.
    """
    table = _index().by_native.get(kind)
    if table is None:
        allowed = ", ".join(NATIVE_KINDS)
        raise UsageError(f"unknown native guest OS id kind {kind!r}; expected one of: {allowed}")
    return table.get(native_id.strip().casefold())


def render_catalog_markdown() -> str:
    """Return the catalog as a Markdown (MyST) table, one row per entry, for the docs."""
    header = (
        "| Id | Name | Family | libosinfo | vSphere guestId | VirtualBox (6.1 fallback) "
        "| Memory | Disk | Firmware | Aliases | Notes |"
    )
    rows = [header, "|" + " --- |" * 11]
    for entry in _CATALOG:
        vbox = f"`{entry.virtualbox}`"
        if entry.virtualbox_fallback != entry.virtualbox:
            vbox += f" (`{entry.virtualbox_fallback}`)"
        notes = "; ".join(n for n in ("end of support" if entry.eol else "", entry.notes) if n)
        cells = (
            f"`{entry.id}`",
            entry.name,
            entry.family.value,
            f"`{entry.libosinfo}`",
            f"`{entry.vsphere}`",
            vbox,
            f"{entry.min_memory_mib} MiB",
            f"{entry.min_disk_mib // 1024} GiB",
            entry.firmware.value,
            ", ".join(f"`{alias}`" for alias in entry.aliases),
            notes,
        )
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"
