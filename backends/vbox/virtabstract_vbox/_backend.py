"""The VirtualBox backend (``vbox:///session``) on the VBoxManage transport, and transport selection.

Transport selection (URL ``?transport=`` or the ``transport=`` option, :func:`select_transport`):

* ``vboxmanage`` -- implemented here; every VirtualBox install ships VBoxManage.
* ``api`` -- the Main API through vboxapi/pyvbox:
  :class:`~virtabstract_vbox._api_backend.VBoxApiBackend`, which ``VBoxBackend(...)``
  constructs instead of itself (``__new__``). It implements a subset of the verbs
  (see its module); the others raise UnsupportedOperation there.
* ``auto`` (default) -- the API when vboxapi imports (and no VBoxManage option is
  given), else VBoxManage.

Honest semantics, per verb:

* ``reboot`` -- VirtualBox has no guest-cooperative reboot (``controlvm reset`` is a
  hard reset). ``reboot()`` runs the guest's own reboot command through Guest
  Additions (``guestcontrol run``), so :attr:`Capability.REBOOT` is declared only
  on connections with guest credentials.
* ``suspend`` is ``controlvm savestate`` (Saved state); ``start`` restores it.
* CPU/memory/description/tags change only while the VM is off: VBoxManage
  ``modifyvm`` needs a write lock, which a running or saved VM holds (plan mode
  ``needs_power_off``). Tags are stored as VirtualBox groups (``/tag``).
* CPU limit: VirtualBox caps each vCPU at a percentage of one host CPU
  (``--cpuexecutioncap``). ``cpu_limit_mhz = cap/100 * vCPUs * host MHz`` (host MHz
  from ``list hostinfo``); the cap is rounded to a whole percent, so values read back
  may differ slightly from those set. Reservations and shares do not exist
  (:class:`~virtabstract.errors.SpecError`).
* A snapshot of a running VM always includes memory (VirtualBox cannot take a
  disk-only snapshot of a running VM). Whether a snapshot has memory is
  remembered in the VM's extradata (``virtabstract/snapshot-memory/<uuid>``);
  reverting to one restores the Saved state and starts the VM.
* A linked clone needs a snapshot; without one, a snapshot named
  ``linked-clone-base-<name>`` is taken on the source first (as Vagrant does).
* A VM whose disks back linked clones keeps them: ``delete(delete_disks=True)`` is
  refused before anything changes (VirtualBox would unregister the VM, then fail to
  delete the shared disk), ``delete_disks=False`` unregisters it (VirtualBox cannot
  merge its snapshots: its settings and disks stay on disk, as ``unregistervm`` leaves them).
* NICs: which setting changes in which state is one table for both transports
  (:mod:`~virtabstract_vbox._nic_rules`); on a running VM the network and the cable
  change live (``controlvm nic<N>`` / ``setlinkstate<N>``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid as uuidlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
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
    Firmware,
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
    check_transition,
    get_guest_os,
    guest_os_from_native,
    option_seconds,
    parse_size,
    snapshot_deletion_order,
)
from virtabstract.errors import (
    AlreadyExists,
    BackendError,
    DeviceNotFound,
    GuestAgentUnavailable,
    GuestError,
    InvalidState,
    InvalidURL,
    NetworkNotFound,
    SnapshotNotFound,
    SpecError,
    StorageNotFound,
    VMNotFound,
)

from ._nic_rules import require_nic_change
from ._parse import (
    MediumRecord,
    ParseError,
    VBoxVersion,
    parse_blocks,
    parse_guestproperties,
    parse_list_vms,
    parse_machinereadable,
    parse_media,
    parse_snapshots,
    parse_version,
)
from ._states import AdditionsRunLevel, additions_ready, is_online, power_state
from ._vboxmanage import DEFAULT_TIMEOUT, VBoxManage, find_vboxmanage, password_file
from ._versions import check_version

__all__ = ["VBoxBackend"]

log = logging.getLogger("virtabstract.vbox")

VRDE_USER = "virtabstract"
"""The VRDE user created with VBoxAuthSimple."""
VRDE_PASSWORD_KEY = "virtabstract/vrde-password"  # noqa: S105 - an extradata key, not a secret

TRANSPORTS = ("auto", "vboxmanage", "api")
MAX_NICS = 8
_C = Capability

_BUS_CONTROLLERS: dict[str, tuple[str, list[str]]] = {
    # bus -> (controller name, storagectl arguments)
    "sata": ("SATA", ["--add", "sata", "--controller", "IntelAhci", "--portcount", "4"]),
    "ide": ("IDE", ["--add", "ide", "--controller", "PIIX4"]),
    "scsi": ("SCSI", ["--add", "scsi", "--controller", "LsiLogic"]),
    "nvme": ("NVMe", ["--add", "pcie", "--controller", "NVMe", "--portcount", "4"]),
    "virtio": ("VirtIO", ["--add", "virtio", "--controller", "VirtIO", "--portcount", "4"]),
}
_CONTROLLER_BUS = {name: bus for bus, (name, _) in _BUS_CONTROLLERS.items()}
_NIC_MODELS = {"e1000": "82540EM", "virtio": "virtio", "virtio-net": "virtio", "pcnet": "Am79C973"}
_NIC_MODEL_NAMES = {
    "82540EM": "e1000",
    "82543GC": "e1000",
    "82545EM": "e1000",
    "virtio": "virtio",
    "Am79C970A": "pcnet",
    "Am79C973": "pcnet",
    "Am79C960": "pcnet",
}
_BOOT_DEVICES = {"disk": "disk", "cdrom": "dvd", "network": "net"}
_BOOT_NAMES = {v: k for k, v in _BOOT_DEVICES.items()}
_MEMORY_EXTRADATA = "virtabstract/snapshot-memory/"
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _mac_out(raw: str) -> str:
    raw = raw.replace(":", "").lower()
    return ":".join(raw[i : i + 2] for i in range(0, len(raw), 2))


def _size_mib(text: str) -> int:
    """A size as VBoxManage prints it (``"2048 MBytes"``, ``"1.50 GBytes"``) in MiB; 0 when absent or unreadable."""
    try:
        return parse_size(text, what="VirtualBox size")
    except ValueError:
        return 0


_NIC_NETWORK_KEYS = {
    # --nic mode -> the modifyvm option (and showvminfo key prefix) naming its network
    "natnetwork": "nat-network",
    "hostonly": "hostonlyadapter",
    "bridged": "bridgeadapter",
    "intnet": "intnet",
}
_NIC_KINDS = {"nat": "nat", "natnetwork": "nat", "bridged": "bridge", "hostonly": "hostonly", "intnet": "internal"}
"""VirtualBox attachment mode -> the ``NicInfo.kind`` reported for it."""


def resolve_nic(nic: Nic, nets: Sequence[NetworkInfo]) -> tuple[str, str]:
    """Where *nic* attaches on a host offering *nets*: ``(mode, network)``.

    *mode* is VBoxManage's ``--nic`` mode: ``nat`` (the default NAT, network ``"default"``),
    ``natnetwork``, ``hostonly``, ``bridged`` or ``intnet`` (internal networks need no host
    object). ``kind="network"`` picks the kind from the network's name (NAT network,
    host-only interface, bridgeable interface, in that order). Both transports use this.

    :raises NetworkNotFound: the host has no such network of that kind.
    """
    by_kind = {(n.kind, n.name) for n in nets}
    natnets = {n.name for n in nets if n.id.startswith("natnetwork:")}
    hostonly = {n.name for n in nets if n.kind == "hostonly"}
    kind, net = nic.kind, nic.network
    if kind == "network":
        if net in ("default", "nat") or net in natnets:
            kind = "nat"
        elif net in hostonly:
            kind = "hostonly"
        elif ("bridge", net) in by_kind:
            kind = "bridge"
        else:
            raise NetworkNotFound(f"VirtualBox has no network {net!r} (see list_networks())")
    if kind == "nat":
        if net in ("default", "nat"):
            return "nat", "default"
        if net not in natnets:
            raise NetworkNotFound(f"VirtualBox has no NAT network {net!r}")
        return "natnetwork", net
    if kind == "hostonly":
        if net not in hostonly:
            raise NetworkNotFound(f"VirtualBox has no host-only interface {net!r}")
        return "hostonly", net
    if kind == "bridge":
        if ("bridge", net) not in by_kind:
            raise NetworkNotFound(f"the host has no bridgeable interface {net!r}")
        return "bridged", net
    return "intnet", net


def nic_type(nic: Nic) -> str:
    """The VirtualBox adapter type (VBoxManage ``--nictype`` name) of *nic*'s model; e1000 by default.

    :raises SpecError: a model VirtualBox does not emulate.
    """
    model = nic.model or "e1000"
    if model not in _NIC_MODELS:
        raise SpecError("model", f"one of {', '.join(sorted(_NIC_MODELS))} on VirtualBox", model)
    return _NIC_MODELS[model]


def nic_model(adapter_type: str) -> str:
    """The model name ``NicInfo.model`` reports for a VBoxManage ``nictype`` (``"82540EM"`` -> ``"e1000"``)."""
    return _NIC_MODEL_NAMES.get(adapter_type, adapter_type)


def cidr(address: str, mask: str) -> str:
    """``"192.168.56.1/24"`` from an address and a dotted netmask; ``""`` when either is missing."""
    if not address or not mask:
        return ""
    prefix = sum(bin(int(o)).count("1") for o in mask.split(".") if o.isdigit())
    return f"{address}/{prefix}"


def disk_path(folder: str, disk: Disk, default_name: str) -> str:
    """Where a new disk image goes: ``<folder>/<disk.name or default_name>`` (``.vdi`` unless named otherwise)."""
    base = disk.name or default_name
    return str(Path(folder) / (base if base.endswith((".vdi", ".vmdk", ".vhd")) else base + ".vdi"))


def on_off(flag: bool) -> str:
    """VBoxManage's spelling of a boolean."""
    return "on" if flag else "off"


@dataclass(frozen=True)
class NicUpdate:
    """What ``update_nic`` changes on one NIC and how; both transports plan it with ``_plan_nic_update``."""

    slot: int
    """1-based, as VBoxManage numbers NICs (``nic1`` is the API's adapter slot 0)."""
    attachment: tuple[str, str] | None
    """``(mode, network)`` as :func:`resolve_nic` names them; ``None``: unchanged."""
    connected: bool | None
    """The new cable state; ``None``: unchanged."""
    mode: str
    """``live`` (the VM runs) or ``offline`` (settings only), from :mod:`~virtabstract_vbox._nic_rules`."""


def first_port(ports: str) -> int | None:
    """The first port of a VRDE port list (``"5000-5099"``, ``"3389,5000"``); ``None`` when there is none."""
    match = re.match(r"\s*(\d+)", ports)
    return int(match.group(1)) if match and int(match.group(1)) > 0 else None


def _reachable_host(address: str) -> str:
    """Where a client reaches a server listening on *address*: a wildcard becomes the loopback of its family."""
    if not address:
        return "127.0.0.1"  # VRDE's empty TCP/Address means every interface
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # a host name: reachable as it is
    if ip.is_unspecified:
        return "127.0.0.1" if ip.version == 4 else "::1"
    return address


def vrde_console_info(address: str, port: int | None, password: Secret | None) -> ConsoleInfo:
    """The console record of a VRDE server listening on *address* (``TCP/Address``) and *port*.

    A wildcard or empty address is not something to connect to, so the loopback is
    reported (VRDE serves the local host); IPv6 hosts are bracketed in the URL.
    """
    host = _reachable_host(address)
    url_host = f"[{host}]" if ":" in host else host
    return ConsoleInfo(protocol="rdp", host=host, port=port, url=f"rdp://{url_host}:{port}" if port else "",
                       password=password, username=VRDE_USER if password else "")  # fmt: skip


def require_guest_control(run_level: int, vm_name: str) -> None:
    """Refuse guest control (exec, files) until the Additions reach Userland (VBoxService runs).

    :raises GuestAgentUnavailable: the Additions are not up that far (yet).
    """
    if not additions_ready(run_level):
        level = {lvl.value: lvl.name.title() for lvl in AdditionsRunLevel}.get(run_level, str(run_level))
        raise GuestAgentUnavailable(
            f"Guest Additions are not running in VM {vm_name!r} (run level {level}: guest control needs Userland)"
        )


def linked_clone_names(vm_uuid: str, media: Sequence[MediumRecord]) -> list[str]:
    """The VMs whose disks are children of *vm_uuid*'s disks (its linked clones), by name.

    A child medium no VM uses is named by its location. *media* must hold the VM's own
    media and their children (``list hdds`` holds every medium).
    """
    own = {m.uuid for m in media if any(uuid == vm_uuid.lower() for _name, uuid in m.users)}
    names: list[str] = []
    for medium in media:
        if medium.parent in own and medium.uuid not in own:
            for name in [name for name, _uuid in medium.users] or [medium.location]:
                if name not in names:
                    names.append(name)
    return names


def local_session_timeout(url: URL, options: Mapping[str, Any]) -> float:
    """Check that *url* names the local VirtualBox and return the call timeout (both transports).

    :raises InvalidURL: a host or a path other than ``/session``, or a timeout that is not a
        positive number of seconds.
    """
    if url.host or url.path not in ("", "/", "/session"):
        raise InvalidURL(f"{url}: only the local VirtualBox is supported (vbox:///session)")
    value = options.get("timeout")
    if value is None:
        value = url.option("timeout")
    return DEFAULT_TIMEOUT if value is None else option_seconds("timeout", value)


def select_transport(url: URL, options: Mapping[str, Any]) -> str:
    """``api`` or ``vboxmanage`` for these URL and options.

    ``transport=api|vboxmanage`` forces one. ``auto`` (the default) picks VBoxManage
    when a VBoxManage option (``vboxmanage``, ``vboxmanage_runner``) is given, the API
    when ``vboxapi_module`` is given or vboxapi imports (through pyvbox), else VBoxManage.

    :raises InvalidURL: an unknown transport name.
    """
    transport = str(options.get("transport") or url.option("transport") or "auto").lower()
    if transport not in TRANSPORTS:
        raise InvalidURL(f"transport={transport!r}: expected one of {', '.join(TRANSPORTS)}")
    if transport != "auto":
        return transport
    if options.get("vboxmanage") or url.option("vboxmanage") or options.get("vboxmanage_runner"):
        return "vboxmanage"
    if options.get("vboxapi_module") is not None:
        return "api"
    from ._api import import_vboxapi

    try:
        import_vboxapi()
    except Exception as exc:  # noqa: BLE001 - ImportError, or COM/XPCOM failing to load
        log.debug("vboxapi does not import (%s): using VBoxManage", exc)
        return "vboxmanage"
    return "api"


class VBoxBackend(Backend):
    """VirtualBox through VBoxManage. See the module docstring for the semantics of each verb."""

    name: ClassVar[str] = "vbox"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        _C.CREATE, _C.DELETE, _C.UNREGISTER, _C.START, _C.SHUTDOWN, _C.POWER_OFF, _C.RESET, _C.PAUSE,
        _C.SUSPEND, _C.RECONFIGURE, _C.RESOURCES, _C.DISKS, _C.DISK_RESIZE, _C.NICS, _C.SNAPSHOTS,
        _C.SNAPSHOT_MEMORY, _C.CLONE, _C.LINKED_CLONE, _C.CONSOLE, _C.GUEST_INFO, _C.GUEST_EXEC,
        _C.GUEST_FILES, _C.GUEST_NETWORK, _C.NETWORKS, _C.STORAGE,
    })  # fmt: skip
    accepted_options: ClassVar[Mapping[str, str]] = {
        "transport": "auto (default), vboxmanage or api (also a URL query option)",
        "vboxmanage": "path of the VBoxManage executable (also a URL query option)",
        "timeout": "seconds one VBoxManage call may take (default 120)",
        "guest_username": "guest account for Guest Additions operations (exec, files, reboot)",
        "guest_password": "its password (never on a command line: a private password file for VBoxManage, "
        "the guest session call on the API)",
        "vboxapi_module": "Python only, a test seam: a module-like object with VirtualBoxManager, used instead "
        "of importing vboxapi (API transport)",
        "progress_callback": "Python only: callable(what, percent, operation) called while API progress runs",
        "vboxmanage_runner": "Python only, a test seam: callable(argv, timeout) -> (returncode, stdout, stderr) "
        "that runs VBoxManage instead of a child process",
    }
    install_hint: ClassVar[str] = "VirtualBox 6.1 or later (VBoxManage), or pip install 'virtabstract-vbox[api]'"

    @classmethod
    def variants(cls) -> Mapping[str, type[Backend]]:
        """One class per transport (``__new__`` constructs the API one); imported late: it subclasses this one."""
        from ._api_backend import VBoxApiBackend

        return {"vboxmanage": VBoxBackend, "api": VBoxApiBackend}

    def __new__(cls, url: URL, credentials: Credentials, options: Mapping[str, Any]) -> VBoxBackend:
        """Construct the class of the selected transport.

        The API transport is :class:`~virtabstract_vbox._api_backend.VBoxApiBackend` (a subclass).
        """
        if cls is VBoxBackend and select_transport(url, options) == "api":
            from ._api_backend import VBoxApiBackend

            return super().__new__(VBoxApiBackend)
        return super().__new__(cls)

    def __init__(self, url: URL, credentials: Credentials, options: Mapping[str, Any]) -> None:
        super().__init__(url, credentials, options)
        self._timeout = local_session_timeout(url, self.options)
        self.transport = "vboxmanage"
        self._vboxmanage_path = self.options.get("vboxmanage") or url.option("vboxmanage")
        self._vbm: VBoxManage | None = None
        self.version = VBoxVersion(0, 0, 0)

    # -- connection -----------------------------------------------------------------

    def open(self) -> None:
        """Locate VBoxManage and read the VirtualBox version."""
        runner = self.options.get("vboxmanage_runner")
        if runner is not None and not callable(runner):
            raise InvalidURL("vboxmanage_runner must be a callable (argv, timeout) -> (returncode, stdout, stderr)")
        path = str(self._vboxmanage_path or "VBoxManage") if runner else find_vboxmanage(self._vboxmanage_path)
        self._vbm = VBoxManage(path, timeout=self._timeout, runner=runner)
        text = self.vbm.out("--version")
        try:
            self.version = parse_version(text)
        except ParseError as exc:
            raise BackendError(f"{path} --version printed garbage: {text.strip()[:80]!r}", orig=exc) from exc
        check_version(self.version, "VBoxManage")
        log.debug("VirtualBox %s via %s", self.version, path)

    def close(self) -> None:
        """Nothing to release: every VBoxManage call is its own process."""
        self._vbm = None

    @property
    def vbm(self) -> VBoxManage:
        """The VBoxManage runner (raises when the connection is closed)."""
        if self._vbm is None:
            raise BackendError("the VirtualBox connection is closed")
        return self._vbm

    @property
    def native(self) -> Any:
        """The :class:`~virtabstract_vbox._vboxmanage.VBoxManage` runner."""
        return self._vbm

    def native_vm(self, vm_id: str) -> Any:
        """The VM's ``showvminfo --machinereadable`` keys (the transport has no object)."""
        return self._showvminfo(vm_id)

    def connection_capabilities(self) -> frozenset[Capability]:
        """Adds :attr:`Capability.REBOOT` when guest credentials are configured (reboot runs in the guest)."""
        if self._guest_user() is not None:
            return self.capabilities | {Capability.REBOOT}
        return self.capabilities

    # -- host and inventory ---------------------------------------------------------

    @cached_property
    def _hostinfo(self) -> dict[str, str]:
        blocks = parse_blocks(self.vbm.out("list", "hostinfo"))
        merged: dict[str, str] = {}
        for block in blocks:
            merged.update(block)
        return merged

    def _host_mhz(self) -> int:
        try:
            return int(self._hostinfo.get("Processor#0 speed", "0").split()[0])
        except (ValueError, IndexError):
            return 0

    def host_info(self) -> HostInfo:
        """Host OS, CPU and memory from ``list hostinfo``; the version from ``--version``."""
        info = self._hostinfo
        os_text = info.get("Operating system", "").lower()
        family = (
            OSFamily.WINDOWS if "windows" in os_text
            else OSFamily.MACOS if "darwin" in os_text or "mac" in os_text
            else OSFamily.SOLARIS if "solaris" in os_text or "sunos" in os_text
            else OSFamily.LINUX if "linux" in os_text
            else OSFamily.OTHER
        )  # fmt: skip
        return HostInfo(
            hostname=socket.gethostname(),
            os_family=family,
            cpu_count=int(info.get("Processor online count") or info.get("Processor count") or 0),
            memory_mib=_size_mib(info.get("Memory size", "0")),
            hypervisor="VirtualBox",
            version=str(self.version),
            backend=self.name,
            os_name=f"{info.get('Operating system', '')} {info.get('Operating system version', '')}".strip(),
            cpu_model=info.get("Processor#0 description", ""),
            cpu_mhz=self._host_mhz() or None,
            free_memory_mib=_size_mib(info.get("Memory available", "0")) or None,
            api_version=f"{self.version.major}_{self.version.minor}",
            build=self.version.revision,
        )

    def _ostypes(self) -> dict[str, str]:
        """``list ostypes`` as ``{OSTypeId: description}`` (read once per connection)."""
        if not hasattr(self, "_ostype_cache"):
            blocks = parse_blocks(self.vbm.out("list", "ostypes"))
            self._ostype_cache = {b["ID"]: b.get("Description", b["ID"]) for b in blocks if "ID" in b}
        return self._ostype_cache

    def _ostype_id(self, raw: dict[str, str]) -> str:
        """The OSTypeId: showvminfo prints the *description* as ``ostype`` (``"Ubuntu (64-bit)"``)."""
        if raw.get("OSTypeId"):
            return raw["OSTypeId"]
        shown = raw.get("ostype", "")
        types = self._ostypes()
        if shown in types:
            return shown
        for os_id, description in types.items():
            if description == shown:
                return os_id
        return shown

    def _hdds(self) -> dict[str, dict[str, str]]:
        """``list hdds`` by UUID and by location (one call for every disk)."""
        table: dict[str, dict[str, str]] = {}
        for block in parse_blocks(self.vbm.out("list", "hdds")):
            if "UUID" in block:
                table[block["UUID"].lower()] = block
            if "Location" in block:
                table[block["Location"]] = block
        return table

    def _list_vms(self) -> list[tuple[str, str]]:
        text = self.vbm.out("list", "vms")
        try:
            return parse_list_vms(text)
        except ParseError as exc:
            raise BackendError(f"VBoxManage list vms printed garbage: {exc}", orig=exc) from exc

    def _showvminfo(self, vm_id: str) -> dict[str, str]:
        text = self.vbm.out("showvminfo", vm_id, "--machinereadable")
        raw = parse_machinereadable(text)
        if not raw.get("UUID") or "name" not in raw:
            raise BackendError(f"VBoxManage showvminfo printed no machine (garbage?): {text.strip()[:80]!r}")
        return raw

    def _vminfo(self, raw: dict[str, str], hdds: dict[str, dict[str, str]] | None) -> VMInfo:
        native = raw.get("VMState", "")
        ostype = self._ostype_id(raw)
        entry = guest_os_from_native("virtualbox", ostype) if ostype else None
        disks, cdrom = self._disks(raw, hdds)
        groups = [g for g in raw.get("groups", "/").split(",") if g and g != "/"]
        return VMInfo(
            id=raw.get("UUID", "").lower(),
            name=raw.get("name", ""),
            state=power_state(native),
            native_state=native,
            cpus=int(raw.get("cpus", "1") or 1),
            memory_mib=int(raw.get("memory", "0") or 0),
            guest_os=entry.id if entry else None,
            guest_os_native=ostype,
            disks=tuple(disks),
            nics=tuple(self._nics(raw)),
            description=raw.get("description", ""),
            tags=tuple(g.lstrip("/") for g in groups),
            firmware=Firmware.UEFI if raw.get("firmware", "BIOS").upper().startswith("EFI") else Firmware.BIOS,
            autostart=False,
            boot_order=tuple(_BOOT_NAMES[raw[f"boot{i}"]] for i in range(1, 5) if raw.get(f"boot{i}") in _BOOT_NAMES),
            cdrom=cdrom,
            backend=self.name,
        )

    def _attachments(self, raw: dict[str, str]) -> Iterator[tuple[str, str, int, int, str]]:
        """Yield ``(controller, bus, port, device, medium)`` for each occupied slot."""
        controllers = [v for k, v in raw.items() if re.fullmatch(r"storagecontrollername\d+", k)]
        for ctl in controllers:
            bus = _CONTROLLER_BUS.get(ctl, "sata")
            prefix = f"{ctl}-"
            for key, value in raw.items():
                if not key.startswith(prefix):
                    continue
                match = re.fullmatch(r"(\d+)-(\d+)", key[len(prefix) :])
                if match and value and value != "none":
                    yield ctl, bus, int(match.group(1)), int(match.group(2)), value

    def _disks(self, raw: dict[str, str], hdds: dict[str, dict[str, str]] | None) -> tuple[list[DiskInfo], str | None]:
        disks: list[DiskInfo] = []
        cdrom: str | None = None
        for ctl, bus, port, device, medium in self._attachments(raw):
            is_dvd = (
                f"{ctl}-IsEjected-{port}-{device}" in raw or medium == "emptydrive" or medium.lower().endswith(".iso")
            )
            if is_dvd:
                if medium != "emptydrive":
                    cdrom = medium
                continue
            image_uuid = raw.get(f"{ctl}-ImageUUID-{port}-{device}", "").lower()
            block = (hdds or {}).get(image_uuid) or (hdds or {}).get(medium) or {}
            parent = block.get("Parent UUID", "base")
            backing = ""
            if parent and parent != "base" and hdds is not None:
                backing = hdds.get(parent.lower(), {}).get("Location", parent)
            disks.append(
                DiskInfo(
                    id=f"{ctl}-{port}-{device}",
                    size_mib=_size_mib(block.get("Capacity", "0 MBytes")),
                    path=medium,
                    storage="default",
                    bus=bus,
                    format=block.get("Storage format", Path(medium).suffix.lstrip(".").upper()),
                    thin="fixed" not in block.get("Format variant", "").lower(),
                    backing=backing,
                )
            )
        return disks, cdrom

    def _nics(self, raw: dict[str, str]) -> list[NicInfo]:
        nics: list[NicInfo] = []
        for slot in range(1, MAX_NICS + 1):
            mode = raw.get(f"nic{slot}", "none")
            if mode in ("none", "null", ""):
                continue
            key = _NIC_NETWORK_KEYS.get(mode)
            network = "default" if mode == "nat" else raw.get(f"{key}{slot}", "") if key else ""
            nics.append(
                NicInfo(
                    id=f"nic{slot}",
                    mac=_mac_out(raw.get(f"macaddress{slot}", "")),
                    network=network,
                    kind=_NIC_KINDS.get(mode, mode),
                    model=nic_model(raw.get(f"nictype{slot}", "")),
                    connected=raw.get(f"cableconnected{slot}", "on") == "on",
                )
            )
        return nics

    def list_vms(self) -> list[VMInfo]:
        """``list vms`` then ``showvminfo`` per VM (VBoxManage has no bulk machine-readable listing)."""
        hdds = self._hdds()
        found = []
        for _name, vm_uuid in self._list_vms():
            try:
                found.append(self._vminfo(self._showvminfo(vm_uuid), hdds))
            except VMNotFound:
                continue  # deleted meanwhile
        return found

    def get_vm(self, vm_id: str) -> VMInfo:
        """One VM by UUID.

        VBoxManage also accepts a name, but names may be duplicated on VirtualBox: a
        name raises :class:`VMNotFound` here, so the facade looks it up with
        :meth:`find_vms_by_name` and reports an ambiguous one.
        """
        if not _UUID_RE.fullmatch(vm_id.strip("{}")):
            raise VMNotFound(f"{vm_id!r} is not a VirtualBox machine UUID")
        return self._vminfo(self._showvminfo(vm_id.strip("{}")), self._hdds())

    def find_vms_by_name(self, name: str) -> list[VMInfo]:
        """VMs named exactly *name* (VirtualBox allows duplicates)."""
        hdds: dict[str, dict[str, str]] | None = None
        found = []
        for vm_name, vm_uuid in self._list_vms():
            if vm_name == name:
                hdds = hdds if hdds is not None else self._hdds()
                found.append(self._vminfo(self._showvminfo(vm_uuid), hdds))
        return found

    def get_state(self, vm_id: str) -> tuple[PowerState, str]:
        """The state from one ``showvminfo``."""
        native = self._showvminfo(vm_id).get("VMState", "")
        return power_state(native), native

    def _check(self, vm_id: str, operation: str) -> dict[str, str]:
        raw = self._showvminfo(vm_id)
        check_transition(operation, power_state(raw.get("VMState", "")), raw.get("name", ""))
        return raw

    def list_networks(self) -> list[NetworkInfo]:
        """The default NAT, NAT networks, host-only and bridgeable host interfaces."""
        nets = [NetworkInfo(name="default", id="nat", kind="nat")]
        for block in parse_blocks(self.vbm.out("list", "natnetworks")):
            name = block.get("NetworkName") or block.get("Name", "")
            if name:
                enabled = (block.get("Enabled") or "Yes").lower() in ("yes", "true", "1")
                nets.append(NetworkInfo(name=name, id=f"natnetwork:{name}", kind="nat", active=enabled,
                                        cidr=block.get("Network", "")))  # fmt: skip
        for block in parse_blocks(self.vbm.out("list", "hostonlyifs")):
            if "Name" in block:
                nets.append(
                    NetworkInfo(
                        name=block["Name"],
                        id=f"hostonly:{block['Name']}",
                        kind="hostonly",
                        active=block.get("Status", "Up") == "Up",
                        bridge=block["Name"],
                        cidr=cidr(block.get("IPAddress", ""), block.get("NetworkMask", "")),
                    )
                )
        for block in parse_blocks(self.vbm.out("list", "bridgedifs")):
            if "Name" in block:
                nets.append(
                    NetworkInfo(
                        name=block["Name"],
                        id=f"bridged:{block['Name']}",
                        kind="bridge",
                        active=block.get("Status", "Up") == "Up",
                        bridge=block["Name"],
                    )
                )
        return nets

    def _default_folder(self) -> str:
        for block in parse_blocks(self.vbm.out("list", "systemproperties")):
            if "Default machine folder" in block:
                return block["Default machine folder"]
        return str(Path.home() / "VirtualBox VMs")

    def list_storage(self) -> list[StorageInfo]:
        """One pool, ``default``: the default machine folder (VirtualBox keeps disks beside each VM)."""
        folder = self._default_folder()
        capacity = free = None
        try:
            usage = shutil.disk_usage(folder)
            capacity, free = usage.total // 2**20, usage.free // 2**20
        except OSError:
            pass
        return [StorageInfo(name="default", id="default", kind="directory", capacity_mib=capacity,
                            free_mib=free, path=folder)]  # fmt: skip

    # -- create / delete ------------------------------------------------------------

    def _ostype_for(self, os_id: str) -> str:
        entry = get_guest_os(os_id)
        known = self._ostypes()
        for candidate in (entry.virtualbox, entry.virtualbox_fallback):
            if candidate in known:
                return candidate
        raise SpecError(
            "guest_os",
            f"a guest OS this VirtualBox {self.version} knows",
            os_id,
            hint=f"neither {entry.virtualbox} nor {entry.virtualbox_fallback} is in 'VBoxManage list ostypes'",
        )

    def _nic_args(self, slot: int, nic: Nic, nets: list[NetworkInfo] | None = None) -> list[str]:
        mode, net = resolve_nic(nic, nets if nets is not None else self.list_networks())
        args = self._attachment_args(slot, mode, net)
        args += [f"--nictype{slot}", nic_type(nic), f"--cableconnected{slot}", on_off(nic.connected)]
        if nic.mac:
            args += [f"--macaddress{slot}", nic.mac.replace(":", "").upper()]
        return args

    @staticmethod
    def _attachment_args(slot: int, mode: str, net: str) -> list[str]:
        """``modifyvm`` options attaching NIC *slot* to *net* (only those: a saved VM takes no others)."""
        args = [f"--nic{slot}", mode]
        if mode in _NIC_NETWORK_KEYS:
            args += [f"--{_NIC_NETWORK_KEYS[mode]}{slot}", net]
        return args

    def _check_storage(self, disk: Disk, path: str) -> None:
        if disk.storage not in (None, "default"):
            raise StorageNotFound(f"VirtualBox has one storage pool, 'default'; {disk.storage!r} does not exist")
        if disk.bus is not None and disk.bus not in _BUS_CONTROLLERS:
            raise SpecError(f"{path}.bus", f"one of {', '.join(_BUS_CONTROLLERS)}", disk.bus)

    def create_vm(self, spec: VMSpec) -> VMInfo:
        """Run createvm --register, modifyvm, storagectl, createmedium, storageattach; roll back on failure."""
        ostype = self._ostype_for(spec.guest_os)
        if spec.secure_boot:
            raise SpecError("secure_boot", "false (the vbox backend does not set up Secure Boot keys)", True)
        if spec.autostart:
            raise SpecError("autostart", "false (the vbox backend does not manage the autostart service)", True)
        if len(spec.nics) > MAX_NICS:
            raise SpecError("nics", f"at most {MAX_NICS} NICs", len(spec.nics))
        disks = [d if isinstance(d, Disk) else Disk.from_dict(d) for d in spec.disks]
        nics = [n if isinstance(n, Nic) else Nic.from_dict(n) for n in spec.nics]
        for i, disk in enumerate(disks):
            self._check_storage(disk, f"disks[{i}]")
        nets = self.list_networks() if nics else []
        nic_args: list[str] = []
        for i, nic in enumerate(nics):
            try:
                nic_args += self._nic_args(i + 1, nic, nets)
            except SpecError as err:
                raise err.within(f"nics[{i}]") from None
        vm_uuid = str(uuidlib.uuid4())
        create = ["createvm", "--name", spec.name, "--ostype", ostype, "--register", "--uuid", vm_uuid]
        try:
            self.vbm.out(*create)
        except AlreadyExists as exc:
            if "settings file" not in str(exc).lower():
                raise
            # VirtualBox allows duplicate names, but the default settings path
            # <machine folder>/<name>/<name>.vbox is taken (by a VM of that name, or the
            # files of an unregistered one): put this VM in a folder of its own.
            base = str(Path(self._default_folder()) / f"{spec.name}-{vm_uuid[:8]}")
            log.info("settings file of %r exists; creating the VM under %s", spec.name, base)
            self.vbm.out(*create, "--basefolder", base)
        created_media: list[str] = []
        try:
            args = ["modifyvm", vm_uuid, "--cpus", str(spec.cpus), "--memory", str(spec.memory_mib),
                    "--firmware", "efi" if spec.firmware is Firmware.UEFI else "bios"]  # fmt: skip
            if spec.description:
                args += ["--description", spec.description]
            if spec.tags:
                args += ["--groups", ",".join("/" + t for t in spec.tags)]
            order = [_BOOT_DEVICES[d] for d in spec.boot_order] + ["none"] * 4
            for i in range(4):
                args += [f"--boot{i + 1}", order[i]]
            if spec.graphics != "none":
                # VRDE with VirtualBox's simple authentication: a generated password, never none.
                args += ["--vrde", "on", "--vrdeaddress", "127.0.0.1", "--vrdeport", "5000-5099",
                         "--vrdeauthtype", "external", "--vrdeauthlibrary", "VBoxAuthSimple"]  # fmt: skip
            for slot in range(len(nics) + 1, MAX_NICS + 1):
                args += [f"--nic{slot}", "none"]
            self.vbm.out(*args, *nic_args)
            if spec.graphics != "none":
                self._set_vrde_password(vm_uuid)
            folder = str(Path(self._showvminfo(vm_uuid).get("CfgFile", "")).parent)
            for i, disk in enumerate(disks):
                self._attach_disk(vm_uuid, spec.name, folder, disk, i, created_media)
            if spec.cdrom is not None:
                iso = getattr(spec.cdrom, "iso", None)
                self._ensure_controller(vm_uuid, "ide")
                self.vbm.out("storageattach", vm_uuid, "--storagectl", "IDE", "--port", "1", "--device", "0",
                             "--type", "dvddrive", "--medium", iso or "emptydrive")  # fmt: skip
        except BaseException:
            log.warning("creating VM %r failed; rolling back", spec.name)
            self._rollback(vm_uuid, created_media)
            raise
        return self.get_vm(vm_uuid)

    def _rollback(self, vm_uuid: str, media: list[str]) -> None:
        try:
            self.vbm.run(["unregistervm", vm_uuid, "--delete"], check=False)
        finally:
            for path in media:
                self.vbm.run(["closemedium", "disk", path, "--delete"], check=False)

    def _ensure_controller(self, vm_uuid: str, bus: str, raw: dict[str, str] | None = None) -> str:
        name, args = _BUS_CONTROLLERS[bus]
        raw = raw if raw is not None else self._showvminfo(vm_uuid)
        existing = {v for k, v in raw.items() if re.fullmatch(r"storagecontrollername\d+", k)}
        if name not in existing:
            self.vbm.out("storagectl", vm_uuid, "--name", name, *args)
        return name

    def _free_port(self, raw: dict[str, str], controller: str) -> int:
        used = {port for ctl, _b, port, _d, _m in self._attachments(raw) if ctl == controller}
        port = 0
        while port in used:
            port += 1
        return port

    def _attach_disk(
        self, vm_uuid: str, vm_name: str, folder: str, disk: Disk, index: int, created: list[str]
    ) -> DiskInfo:
        bus = disk.bus or "sata"
        raw = self._showvminfo(vm_uuid)
        controller = self._ensure_controller(vm_uuid, bus, raw)
        raw = self._showvminfo(vm_uuid)
        port = self._free_port(raw, controller)
        if disk.path:
            path = disk.path
        else:
            path = disk_path(folder, disk, f"{vm_name}-disk{index}")
            self.vbm.out("createmedium", "disk", "--filename", path, "--size", str(disk.size_mib),
                         "--format", "VDI", "--variant", "Standard" if disk.thin else "Fixed")  # fmt: skip
            created.append(path)
        self.vbm.out("storageattach", vm_uuid, "--storagectl", controller, "--port", str(port), "--device", "0",
                     "--type", "hdd", "--medium", path)  # fmt: skip
        if created and created[-1] == path:
            created.pop()  # attached: unregistervm --delete removes it from now on
        return DiskInfo(id=f"{controller}-{port}-0", size_mib=disk.size_mib or 0, path=path, storage="default",
                        bus=bus, format="VDI", thin=disk.thin)  # fmt: skip

    def _require_off(self, vm_id: str, operation: str) -> dict[str, str]:
        raw = self._showvminfo(vm_id)
        native = raw.get("VMState", "")
        if is_online(native):
            raise InvalidState(
                f"cannot {operation} VM {raw.get('name', vm_id)!r} while it is {power_state(native).value}",
                state=power_state(native),
                operation=operation,
            )
        return raw

    def _only_unregister(self, vm_name: str, state: str, clones: Sequence[str], *, delete_disks: bool) -> bool:
        """Whether deleting *vm_name* must be an unregistration because linked clones use its disks.

        Both transports ask this before changing anything. VirtualBox unregisters a VM before
        deleting its disks and refuses to delete one a clone still builds on, so such a
        deletion would stop halfway: it is refused. Keeping the disks cannot merge the
        snapshots the clones hang off either, so the VM is only unregistered, as VirtualBox's
        own "remove" does (its files stay; the clones keep working).

        :raises InvalidState: *delete_disks* and the VM has linked clones (nothing was changed).
        """
        if not clones:
            return False
        listed = ", ".join(repr(name) for name in clones)
        if delete_disks:
            raise InvalidState(
                f"cannot delete the disks of VM {vm_name!r}: its linked clones {listed} are built on them "
                "(delete the clones first, or delete with delete_disks=False to keep the disks)",
                state=power_state(state),
                operation="delete",
            )
        log.info("VM %r has linked clones (%s): unregistering it, its files stay", vm_name, listed)
        return True

    def delete_vm(self, vm_id: str, *, delete_disks: bool) -> None:
        """``unregistervm --delete``; without disks, hard disks are detached (and kept) first.

        A VM whose disks back linked clones: see :meth:`_only_unregister`.
        """
        raw = self._require_off(vm_id, "delete")
        clones = linked_clone_names(raw.get("UUID", vm_id), parse_media(self.vbm.out("list", "hdds")))
        if self._only_unregister(raw.get("name", vm_id), raw.get("VMState", ""), clones, delete_disks=delete_disks):
            self.vbm.out("unregistervm", vm_id)
            return
        if not delete_disks:
            for snap in reversed(parse_snapshots(raw)):
                self.vbm.out("snapshot", vm_id, "delete", snap.uuid)
            raw = self._showvminfo(vm_id)
            kept = []
            for ctl, _bus, port, device, medium in list(self._attachments(raw)):
                if f"{ctl}-IsEjected-{port}-{device}" in raw or medium == "emptydrive" or medium.endswith(".iso"):
                    continue
                self.vbm.out("storageattach", vm_id, "--storagectl", ctl, "--port", str(port),
                             "--device", str(device), "--medium", "none")  # fmt: skip
                kept.append(medium)
            self.vbm.out("unregistervm", vm_id, "--delete")
            for medium in kept:
                self.vbm.run(["closemedium", "disk", medium], check=False)
            return
        self.vbm.out("unregistervm", vm_id, "--delete")

    def unregister_vm(self, vm_id: str) -> None:
        """``unregistervm`` (files stay on disk)."""
        self._require_off(vm_id, "unregister")
        self.vbm.out("unregistervm", vm_id)

    # -- power ----------------------------------------------------------------------

    def start(self, vm_id: str) -> None:
        """``startvm --type headless`` (restores a saved state)."""
        self._check(vm_id, "start")
        self.vbm.out("startvm", vm_id, "--type", "headless")

    def request_shutdown(self, vm_id: str) -> str:
        """Press the ACPI power button (``controlvm acpipowerbutton``)."""
        self._check(vm_id, "shutdown")
        self.vbm.out("controlvm", vm_id, "acpipowerbutton")
        return "acpi"

    def power_off(self, vm_id: str) -> None:
        """``controlvm poweroff``; an Aborted-Saved VM has its saved state discarded."""
        raw = self._check(vm_id, "power_off")
        native = raw.get("VMState", "")
        if native == "aborted-saved":
            self.vbm.out("discardstate", vm_id)
        elif native == "aborted":
            log.info("VM %s is aborted: its process is already gone", vm_id)
        else:
            self.vbm.out("controlvm", vm_id, "poweroff")

    def reset(self, vm_id: str) -> None:
        """``controlvm reset`` (hard)."""
        self._check(vm_id, "reset")
        self.vbm.out("controlvm", vm_id, "reset")

    def reboot(self, vm_id: str) -> None:
        """Run the guest's reboot command through Guest Additions (VirtualBox has no graceful reboot)."""
        raw = self._check(vm_id, "reboot")
        entry = guest_os_from_native("virtualbox", self._ostype_id(raw))
        if entry is not None and entry.family is OSFamily.WINDOWS:
            argv = ["C:\\Windows\\System32\\shutdown.exe", "/r", "/t", "0"]
        else:
            argv = ["/sbin/shutdown", "-r", "now"]
        result = self.guest_exec(vm_id, argv, stdin=None, timeout=60, env={})
        if result.exit_code != 0:
            raise GuestError(f"the guest refused to reboot (exit {result.exit_code}): {result.stderr.strip()[:200]}")

    def pause(self, vm_id: str) -> None:
        """``controlvm pause``."""
        self._check(vm_id, "pause")
        self.vbm.out("controlvm", vm_id, "pause")

    def resume(self, vm_id: str) -> None:
        """``controlvm resume``."""
        self._check(vm_id, "resume")
        self.vbm.out("controlvm", vm_id, "resume")

    def suspend(self, vm_id: str) -> None:
        """``controlvm savestate`` (to disk; ``start`` restores)."""
        self._check(vm_id, "suspend")
        self.vbm.out("controlvm", vm_id, "savestate")

    # -- configuration --------------------------------------------------------------

    def plan_reconfigure(self, vm_id: str, changes: Mapping[str, Any]) -> list[ReconfigureChange]:
        """Offline when the VM is off; ``needs_power_off`` otherwise (modifyvm needs the write lock)."""
        raw = self._showvminfo(vm_id)
        info = self._vminfo(raw, None)
        offline = info.state in (PowerState.STOPPED, PowerState.CRASHED) and not is_online(info.native_state)
        if info.native_state in ("aborted-saved",):
            offline = False
        mode = "offline" if offline else "needs_power_off"
        return [ReconfigureChange(field, getattr(info, field), new, mode) for field, new in changes.items()]

    def apply_reconfigure(self, vm_id: str, changes: Sequence[ReconfigureChange]) -> None:
        """One ``modifyvm`` with every change."""
        args: list[str] = []
        for change in changes:
            if change.mode != "offline":
                raise InvalidState(
                    f"cannot apply {change.field} ({change.mode}) on VirtualBox", operation="reconfigure"
                )
            if change.field == "cpus":
                args += ["--cpus", str(change.new)]
            elif change.field == "memory_mib":
                args += ["--memory", str(change.new)]
            elif change.field == "description":
                args += ["--description", str(change.new)]
            elif change.field == "tags":
                args += ["--groups", ",".join("/" + t for t in change.new) or "/"]
        if args:
            self.vbm.out("modifyvm", vm_id, *args)

    def _cap_to_mhz(self, cap: int, cpus: int) -> int | None:
        mhz = self._host_mhz()
        if cap >= 100 or not mhz:
            return None
        return round(cap * cpus * mhz / 100)

    def get_resources(self, vm_id: str) -> ResourceAllocation:
        """The CPU execution cap as ``cpu_limit_mhz``; VirtualBox has no other entitlement."""
        raw = self._showvminfo(vm_id)
        cap = int(raw.get("cpuexecutioncap", "100") or 100)
        return ResourceAllocation(cpu_limit_mhz=self._cap_to_mhz(cap, int(raw.get("cpus", "1") or 1)))

    def _cpu_cap(self, resources: ResourceAllocation, cpus: int) -> int:
        """The CPU execution cap (percent of one host CPU per vCPU) that gives *resources*' CPU limit.

        :raises SpecError: an entitlement VirtualBox does not have, or a limit outside 1-100 %.
        """
        for name in ("cpu_reservation_mhz", "cpu_shares", "memory_limit_mib", "memory_reservation_mib",
                     "memory_shares", "disk_weight"):  # fmt: skip
            if getattr(resources, name) is not None:
                raise SpecError(name, "None: VirtualBox has no such entitlement", getattr(resources, name))
        limit = resources.cpu_limit_mhz
        if limit is None:
            return 100
        mhz = self._host_mhz()
        if not mhz:
            raise SpecError("cpu_limit_mhz", "None", limit, hint="the host CPU speed is unknown")
        cap = math.ceil(limit * 100 / (cpus * mhz))
        if not 1 <= cap <= 100:
            raise SpecError("cpu_limit_mhz", f"1 to {cpus * mhz} MHz ({cpus} vCPUs x {mhz} MHz)", limit)
        return cap

    def set_resources(self, vm_id: str, resources: ResourceAllocation) -> ResourceAllocation:
        """Set ``--cpuexecutioncap`` (``controlvm cpuexecutioncap`` when running)."""
        raw = self._showvminfo(vm_id)
        cap = self._cpu_cap(resources, int(raw.get("cpus", "1") or 1))
        if is_online(raw.get("VMState", "")):
            self.vbm.out("controlvm", vm_id, "cpuexecutioncap", str(cap))
        else:
            self.vbm.out("modifyvm", vm_id, "--cpuexecutioncap", str(cap))
        return self.get_resources(vm_id)

    def add_disk(self, vm_id: str, disk: Disk) -> DiskInfo:
        """Createmedium + storageattach (VM off: VirtualBox hot-plugs only SATA ports marked hot-pluggable)."""
        raw = self._require_off(vm_id, "add a disk to")
        self._check_storage(disk, "disk")
        folder = str(Path(raw.get("CfgFile", "")).parent)
        count = sum(1 for _ in self._disks(raw, None)[0])
        name = disk.name or f"{raw.get('name', 'vm')}-disk{count}-{uuidlib.uuid4().hex[:6]}"
        created: list[str] = []
        try:
            added = self._attach_disk(
                vm_id,
                raw.get("name", ""),
                folder,
                disk.__class__(
                    size=disk.size, path=disk.path, bus=disk.bus, thin=disk.thin, name=name if not disk.path else None
                )
                if not disk.name
                else disk,
                count,
                created,
            )
        finally:
            for path in created:
                self.vbm.run(["closemedium", "disk", path, "--delete"], check=False)
        for info in self.get_vm(vm_id).disks:
            if info.id == added.id:
                return info
        return added

    def _find_disk(self, vm_id: str, disk_id: str) -> DiskInfo:
        for disk in self.get_vm(vm_id).disks:
            if disk_id in (disk.id, disk.path):
                return disk
        raise DeviceNotFound(f"VM {vm_id} has no disk {disk_id!r}")

    def remove_disk(self, vm_id: str, disk_id: str, *, delete: bool) -> None:
        """Storageattach --medium none, then closemedium (--delete when asked)."""
        self._require_off(vm_id, "remove a disk from")
        disk = self._find_disk(vm_id, disk_id)
        ctl, port, device = disk.id.rsplit("-", 2)
        self.vbm.out("storageattach", vm_id, "--storagectl", ctl, "--port", port, "--device", device,
                     "--medium", "none")  # fmt: skip
        args = ["closemedium", "disk", disk.path] + (["--delete"] if delete else [])
        self.vbm.run(args, check=False)

    def resize_disk(self, vm_id: str, disk_id: str, size_mib: int) -> DiskInfo:
        """``modifymedium disk --resize`` (VDI/VHD; grows only)."""
        disk = self._find_disk(vm_id, disk_id)
        self.vbm.out("modifymedium", "disk", disk.path, "--resize", str(size_mib))
        return self._find_disk(vm_id, disk.id)

    def _find_nic(self, raw: dict[str, str], nic_id: str) -> NicInfo:
        wanted = nic_id.lower()
        for nic in self._nics(raw):
            if wanted in (nic.id, nic.mac, nic.mac.replace(":", "")):
                return nic
        raise DeviceNotFound(f"VM {raw.get('name', '')!r} has no NIC {nic_id!r}")

    def add_nic(self, vm_id: str, nic: Nic) -> NicInfo:
        """``modifyvm --nicN`` in the first free slot (VM off)."""
        raw = self._showvminfo(vm_id)
        require_nic_change(["present"], raw.get("VMState", ""), raw.get("name", vm_id), "add_nic")
        used = {int(n.id[3:]) for n in self._nics(raw)}
        free = [s for s in range(1, MAX_NICS + 1) if s not in used]
        if not free:
            raise InvalidState(f"VM already has {MAX_NICS} NICs", operation="add_nic")
        self.vbm.out("modifyvm", vm_id, *self._nic_args(free[0], nic))
        return self._find_nic(self._showvminfo(vm_id), f"nic{free[0]}")

    def remove_nic(self, vm_id: str, nic_id: str) -> None:
        """``modifyvm --nicN none`` (VM off)."""
        raw = self._showvminfo(vm_id)
        require_nic_change(["present"], raw.get("VMState", ""), raw.get("name", vm_id), "remove_nic")
        nic = self._find_nic(raw, nic_id)
        self.vbm.out("modifyvm", vm_id, f"--{nic.id}", "none")

    def _plan_nic_update(
        self, native_state: str, vm_name: str, nic: NicInfo, network: str | None, connected: bool | None
    ) -> NicUpdate | None:
        """What ``update_nic`` changes (``None``: nothing), checked against the host's networks and the NIC rules.

        Shared by both transports, so they accept and refuse the same changes.

        :raises NetworkNotFound: no such network of the NIC's kind.
        :raises InvalidState: VirtualBox cannot make the change in this state (see :mod:`._nic_rules`).
        """
        attachment = None
        if network is not None and network != nic.network:
            kind = "network" if nic.kind in ("nat", "network") else nic.kind
            attachment = resolve_nic(Nic(network=network, kind=kind), self.list_networks())
        if connected == nic.connected:
            connected = None
        settings = [name for name, value in (("network", attachment), ("connected", connected)) if value is not None]
        if not settings:
            return None
        mode = require_nic_change(settings, native_state, vm_name, "update_nic")
        return NicUpdate(slot=int(nic.id[3:]), attachment=attachment, connected=connected, mode=mode)

    def update_nic(self, vm_id: str, nic_id: str, *, network: str | None, connected: bool | None) -> NicInfo:
        """Live on a running VM (``controlvm nicN`` / ``setlinkstateN``), else ``modifyvm`` (off or saved)."""
        raw = self._showvminfo(vm_id)
        nic = self._find_nic(raw, nic_id)
        plan = self._plan_nic_update(raw.get("VMState", ""), raw.get("name", vm_id), nic, network, connected)
        if plan is None:
            return nic
        if plan.mode == "live":
            self._update_nic_live(vm_id, plan)
        else:
            self._update_nic_settings(vm_id, plan)
        return self._find_nic(self._showvminfo(vm_id), nic.id)

    def _update_nic_live(self, vm_id: str, plan: NicUpdate) -> None:
        """``controlvm`` takes the attachment and the cable of a running VM (and saves them)."""
        if plan.attachment is not None:
            mode, net = plan.attachment
            # The default NAT takes no argument: a name after "nat" would set its (unused) NAT network.
            self.vbm.out("controlvm", vm_id, f"nic{plan.slot}", mode, *([net] if mode in _NIC_NETWORK_KEYS else []))
        if plan.connected is not None:
            self.vbm.out("controlvm", vm_id, f"setlinkstate{plan.slot}", on_off(plan.connected))

    def _update_nic_settings(self, vm_id: str, plan: NicUpdate) -> None:
        """One ``modifyvm`` with the attachment and cable options only (a saved VM refuses the others)."""
        args: list[str] = []
        if plan.attachment is not None:
            args += self._attachment_args(plan.slot, *plan.attachment)
        if plan.connected is not None:
            args += [f"--cableconnected{plan.slot}", on_off(plan.connected)]
        self.vbm.out("modifyvm", vm_id, *args)

    # -- snapshots and clones -------------------------------------------------------

    def _memory_snapshots(self, vm_id: str) -> set[str]:
        out = self.vbm.out("getextradata", vm_id, "enumerate")
        found = set()
        for match in re.finditer(r"Key: " + re.escape(_MEMORY_EXTRADATA) + r"(\S+), Value: 1", out):
            found.add(match.group(1).lower())
        return found

    def list_snapshots(self, vm_id: str) -> list[SnapshotInfo]:
        """The tree from showvminfo's ``SnapshotName…``/``SnapshotUUID…`` keys, parents first."""
        raw = self._showvminfo(vm_id)
        nodes = parse_snapshots(raw)
        memory = self._memory_snapshots(vm_id) if nodes else set()
        return [
            SnapshotInfo(
                id=n.uuid,
                name=n.name,
                vm_id=raw.get("UUID", vm_id).lower(),
                parent_id=n.parent_uuid,
                description=n.description,
                vm_state=PowerState.RUNNING if n.uuid in memory else PowerState.STOPPED,
                has_memory=n.uuid in memory,
                is_current=n.is_current,
                children_ids=tuple(n.children),
            )
            for n in nodes
        ]

    def _snapshot(self, vm_id: str, snapshot_id: str) -> SnapshotInfo:
        for snap in self.list_snapshots(vm_id):
            if snap.id == snapshot_id.lower():
                return snap
        raise SnapshotNotFound(f"VM {vm_id} has no snapshot with id {snapshot_id!r}")

    def create_snapshot(self, vm_id: str, name: str, *, description: str, memory: bool, quiesce: bool) -> SnapshotInfo:
        """``snapshot take`` (``--live`` for a running VM, which always includes memory)."""
        if quiesce:
            self.unsupported("snapshot quiesce", "VirtualBox cannot quiesce guest file systems")
        raw = self._showvminfo(vm_id)
        online = is_online(raw.get("VMState", ""))
        if online and not memory:
            raise InvalidState(
                "VirtualBox cannot take a disk-only snapshot of a running VM: pass memory=True or power it off",
                state=power_state(raw.get("VMState", "")),
                operation="snapshot_create",
            )
        args = ["snapshot", vm_id, "take", name]
        if description:
            args += ["--description", description]
        if online:
            args.append("--live")
        out = self.vbm.out(*args)
        match = _UUID_RE.search(out)
        if not match:
            raise BackendError(f"VBoxManage snapshot take printed no UUID: {out.strip()[:200]!r}")
        snap_id = match.group(0).lower()
        if online:
            self.vbm.out("setextradata", vm_id, _MEMORY_EXTRADATA + snap_id, "1")
        return self._snapshot(vm_id, snap_id)

    def revert_snapshot(self, vm_id: str, snapshot_id: str) -> None:
        """``snapshot restore`` (VM off); a memory snapshot leaves it Saved, so it is started."""
        self._require_off(vm_id, "revert")
        snap = self._snapshot(vm_id, snapshot_id)
        self.vbm.out("snapshot", vm_id, "restore", snap.id)
        if snap.has_memory and self.get_state(vm_id)[1] == "saved":
            self.vbm.out("startvm", vm_id, "--type", "headless")

    def delete_snapshot(self, vm_id: str, snapshot_id: str, *, children: bool) -> None:
        """``snapshot delete`` (descendants first when *children*)."""
        for sid in snapshot_deletion_order(self.list_snapshots(vm_id), snapshot_id, children=children):
            self.vbm.out("snapshot", vm_id, "delete", sid)
            self.vbm.run(["setextradata", vm_id, _MEMORY_EXTRADATA + sid], check=False)

    def clone_vm(self, vm_id: str, name: str, *, linked: bool, snapshot_id: str | None) -> VMInfo:
        """``clonevm --register`` (``--options link --snapshot`` for a linked clone); new MACs."""
        new_uuid = str(uuidlib.uuid4())
        args = ["clonevm", vm_id, "--name", name, "--register", "--uuid", new_uuid, "--mode", "machine"]
        if linked and snapshot_id is None:
            snapshot_id = self.create_snapshot(
                vm_id,
                f"linked-clone-base-{name}",
                description="",
                memory=is_online(self.get_state(vm_id)[1]),
                quiesce=False,
            ).id
        if snapshot_id is not None:
            args += ["--snapshot", snapshot_id]
        if linked:
            args += ["--options", "link"]
        try:
            self.vbm.out(*args)
        except VMNotFound:
            raise
        except Exception:
            self.vbm.run(["unregistervm", new_uuid, "--delete"], check=False)
            raise
        return self.get_vm(new_uuid)

    # -- console and guest ----------------------------------------------------------

    def _set_vrde_password(self, vm_uuid: str) -> None:
        """Give the VM's VRDE a generated password (VBoxAuthSimple: the user's SHA-256 in extradata).

        The password itself is kept in the VM's extradata so that :meth:`console` can hand it
        to the user, as libvirt keeps a VNC password in the domain definition.
        """
        password = secrets.token_urlsafe(12)
        digest = hashlib.sha256(password.encode()).hexdigest()
        self.vbm.out("setextradata", vm_uuid, f"VBoxAuthSimple/users/{VRDE_USER}", digest)
        self.vbm.out("setextradata", vm_uuid, VRDE_PASSWORD_KEY, password)

    def _vrde_password(self, vm_id: str) -> Secret | None:
        text = self.vbm.out("getextradata", vm_id, VRDE_PASSWORD_KEY).strip()
        return Secret(text[len("Value: ") :]) if text.startswith("Value: ") else None

    def console(self, vm_id: str) -> ConsoleInfo:
        """VRDE (RDP) address and port from showvminfo, with the generated password."""
        raw = self._showvminfo(vm_id)
        if raw.get("vrde", "off") != "on":
            raise InvalidState(
                f"VRDE is disabled on VM {raw.get('name', vm_id)!r} (VBoxManage modifyvm <vm> --vrde on)",
                operation="console",
            )
        active = raw.get("vrdeport", "")  # the port the running server took (-1: not started)
        port = int(active) if active.isdigit() and int(active) > 0 else first_port(raw.get("vrdeports", ""))
        protected = raw.get("vrdeauthtype", "null") != "null"
        password = self._vrde_password(vm_id) if protected else None
        return vrde_console_info(raw.get("vrdeaddress", ""), port, password)

    def _running_info(self, vm_id: str) -> dict[str, str]:
        """The showvminfo keys of a running VM; GuestAgentUnavailable otherwise (Guest Additions answer only then)."""
        raw = self._showvminfo(vm_id)
        if power_state(raw.get("VMState", "")) is not PowerState.RUNNING:
            raise GuestAgentUnavailable(
                f"VM {raw.get('name', vm_id)!r} is {raw.get('VMState', '?')}: Guest Additions answer only when running"
            )
        return raw

    def _guest_props(self, vm_id: str) -> tuple[dict[str, str], dict[str, Any]]:
        raw = self._running_info(vm_id)
        props = parse_guestproperties(self.vbm.out("guestproperty", "enumerate", vm_id))
        return raw, {k: v.value for k, v in props.items()}

    def _require_guest_control(self, vm_id: str) -> None:
        """Refuse guest control before running VBoxManage guestcontrol unless the Additions reached Userland."""
        raw = self._running_info(vm_id)
        require_guest_control(int(raw.get("GuestAdditionsRunLevel") or 0), raw.get("name", vm_id))

    def guest_info(self, vm_id: str) -> GuestInfo:
        """From ``/VirtualBox/GuestAdd/*`` and ``/VirtualBox/GuestInfo/OS/*`` properties."""
        raw, props = self._guest_props(vm_id)
        version = props.get("/VirtualBox/GuestAdd/Version") or raw.get("GuestAdditionsVersion", "").split(" ")[0]
        if not version:
            raise GuestAgentUnavailable(f"VM {raw.get('name', vm_id)!r}: Guest Additions are not running")
        run_level = int(raw.get("GuestAdditionsRunLevel") or 0)
        product = props.get("/VirtualBox/GuestInfo/OS/Product", "")
        family = OSFamily.WINDOWS if "windows" in product.lower() else OSFamily.LINUX if product else OSFamily.OTHER
        return GuestInfo(
            agent="guest-additions",
            agent_version=version,
            ready=additions_ready(run_level),
            os_family=family,
            os_name=product,
            os_version=props.get("/VirtualBox/GuestInfo/OS/Version", ""),
            kernel=props.get("/VirtualBox/GuestInfo/OS/Release", ""),
            hostname=props.get("/VirtualBox/GuestInfo/Net/Hostname", "")
            or props.get("/VirtualBox/GuestInfo/OS/Hostname", ""),
        )

    def guest_ip_addresses(self, vm_id: str) -> list[IPAddressInfo]:
        """``/VirtualBox/GuestInfo/Net/<n>/V4/IP`` (and ``/V6/IP`` when published), with netmask and MAC."""
        _raw, props = self._guest_props(vm_id)
        if "/VirtualBox/GuestAdd/Version" not in props and not any(
            k.startswith("/VirtualBox/GuestInfo/Net/") for k in props
        ):
            raise GuestAgentUnavailable(f"VM {vm_id}: Guest Additions publish no network information")
        found: list[IPAddressInfo] = []
        count = int(props.get("/VirtualBox/GuestInfo/Net/Count", "0") or 0)
        for n in range(count):
            base = f"/VirtualBox/GuestInfo/Net/{n}"
            mac = _mac_out(props.get(f"{base}/MAC", ""))
            for family in ("V4", "V6"):
                address = props.get(f"{base}/{family}/IP")
                if not address:
                    continue
                prefix: int | None = None
                mask = props.get(f"{base}/{family}/Netmask", "")
                if family == "V4" and mask.count(".") == 3:
                    prefix = sum(bin(int(o)).count("1") for o in mask.split(".") if o.isdigit())
                elif mask.isdigit():
                    prefix = int(mask)
                found.append(
                    IPAddressInfo(address=address, prefix=prefix, interface=f"net{n}", mac=mac, source="agent")
                )
        return found

    def _guest_user(self) -> tuple[str, str] | None:
        user = self.options.get("guest_username") or self.credentials.username
        if not user:
            return None
        secret = self.options.get("guest_password")
        if secret is None and self.credentials.password is not None:
            secret = self.credentials.password.reveal()
        return str(user), "" if secret is None else str(getattr(secret, "reveal", lambda: secret)())

    @contextmanager
    def _guest_auth(self) -> Iterator[list[str]]:
        user = self._guest_user()
        if user is None:
            raise GuestError(
                "Guest Additions operations need a guest account: connect(..., guest_username=..., guest_password=...)"
            )
        with password_file(user[1]) as path:
            yield ["--username", user[0], "--passwordfile", path]

    def _guest_is_windows(self, vm_id: str) -> bool:
        entry = guest_os_from_native("virtualbox", self._ostype_id(self._showvminfo(vm_id)))
        return entry is not None and entry.family is OSFamily.WINDOWS

    def guest_exec(
        self, vm_id: str, argv: Sequence[str], *, stdin: bytes | None, timeout: float, env: Mapping[str, str]
    ) -> ExecResult:
        """``guestcontrol run --exe … --wait-stdout --wait-stderr``.

        VBoxManage cannot feed a guest process's standard input, so *stdin* is copied
        to a private guest temp file first and the command runs through the guest's
        shell with ``< file`` (``/bin/sh -c`` on POSIX guests, ``cmd.exe /c`` on
        Windows); the file is removed afterwards (best effort).
        """
        self._require_guest_control(vm_id)
        if not stdin:
            return self._guest_run(vm_id, argv, list(argv), timeout=timeout, env=env)
        windows = self._guest_is_windows(vm_id)
        token = uuidlib.uuid4().hex
        if windows:
            tmp = f"C:\\Windows\\Temp\\virtabstract-stdin-{token}"
            line = f'{subprocess.list2cmdline(list(argv))} < "{tmp}"'
            shell, cleanup = ["cmd.exe", "/c", line], ["cmd.exe", "/c", f'del /q "{tmp}"']
        else:
            tmp = f"/tmp/virtabstract-stdin-{token}"  # noqa: S108 - a path inside the guest
            line = f"{' '.join(shlex.quote(a) for a in argv)} < {shlex.quote(tmp)}"
            shell, cleanup = ["/bin/sh", "-c", line], ["/bin/rm", "-f", tmp]
        self.guest_write_file(vm_id, tmp, stdin)
        try:
            return self._guest_run(vm_id, argv, shell, timeout=timeout, env=env)
        finally:
            try:
                self._guest_run(vm_id, cleanup, cleanup, timeout=30, env={})
            except Exception:  # noqa: BLE001 - best effort: the command's own result matters
                log.debug("could not remove the guest stdin file %s", tmp)

    def _guest_run(
        self, vm_id: str, argv: Sequence[str], command: list[str], *, timeout: float, env: Mapping[str, str]
    ) -> ExecResult:
        """Run *command* with ``guestcontrol run``; report it as *argv*."""
        with self._guest_auth() as auth:
            args = ["guestcontrol", vm_id, "run", *auth, "--exe", command[0], "--timeout", str(int(timeout * 1000)),
                    "--wait-stdout", "--wait-stderr"]  # fmt: skip
            for key, value in env.items():
                args += ["--putenv", f"{key}={value}"]
            args += ["--", *command]
            code, out, err = self.vbm.run(args, timeout=timeout + 30, check=False)
        if code != 0 and re.search(r"^VBoxManage(?:\.exe)?: error:", err, re.M):
            from ._errors import map_vboxmanage_failure

            raise map_vboxmanage_failure(args[:3], code, err)
        return ExecResult(exit_code=code, stdout=out, stderr=err, argv=tuple(argv))

    def guest_read_file(self, vm_id: str, path: str) -> bytes:
        """``guestcontrol copyfrom`` into a private temp dir, then read it."""
        self._require_guest_control(vm_id)
        with tempfile.TemporaryDirectory(prefix="virtabstract-vbox-") as tmp, self._guest_auth() as auth:
            target = os.path.join(tmp, "data")
            self.vbm.out("guestcontrol", vm_id, "copyfrom", *auth, path, target)
            return Path(target).read_bytes()

    def guest_write_file(self, vm_id: str, path: str, data: bytes) -> None:
        """Write a private temp file, then ``guestcontrol copyto``."""
        self._require_guest_control(vm_id)
        with tempfile.TemporaryDirectory(prefix="virtabstract-vbox-") as tmp, self._guest_auth() as auth:
            source = os.path.join(tmp, "data")
            Path(source).write_bytes(data)
            self.vbm.out("guestcontrol", vm_id, "copyto", *auth, source, path)
