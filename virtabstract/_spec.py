"""Specs: what a user asks for (VMSpec, Disk, Nic), validated at the boundary.

Every spec validates itself when constructed; a bad field raises
:class:`~virtabstract.errors.SpecError` naming the field path
(``disks[1].size``) and what was expected, before anything is created.
:func:`spec_schema` exports the same rules as JSON Schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ._catalog import get_guest_os
from ._model import Firmware
from ._units import parse_size
from .errors import SpecError

__all__ = ["CdRom", "Disk", "Nic", "VMSpec", "load_spec", "spec_schema"]

MAX_NAME_LENGTH = 80
MAX_DESCRIPTION_LENGTH = 8192
MAX_TAG_LENGTH = 64
MAX_CPUS = 768
MAX_MEMORY_MIB = 24 * 1024 * 1024  # 24 TiB, vSphere's ceiling
MAX_DISK_MIB = 62 * 1024 * 1024  # 62 TiB, vSphere's VMDK ceiling
MIN_MEMORY_MIB = 4

DISK_BUSES = ("virtio", "scsi", "sata", "ide", "nvme")
NIC_KINDS = ("network", "bridge", "nat", "hostonly", "internal")
NIC_MODELS = ("virtio", "e1000", "e1000e", "vmxnet3", "rtl8139", "pcnet", "virtio-net")
BOOT_DEVICES = ("disk", "cdrom", "network")
GRAPHICS = ("vnc", "spice", "none")
ACCELERATION = ("auto", "hardware", "software")

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")

_S = TypeVar("_S", bound="_SpecBase")


def _check_name(value: Any, path: str, max_length: int = MAX_NAME_LENGTH) -> str:
    # Fast path for the usual name, without the regex engine (this runs on every create): printable
    # text has no control character, so it only needs the separator and edge-space rules.
    if (
        type(value) is str
        and 0 < len(value) <= max_length
        and value.isprintable()
        and "/" not in value
        and "\\" not in value
        and value.strip() == value
    ):
        return value
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise SpecError(path, _name_rule(max_length), value)
    if _CONTROL_CHARS.search(value) or "/" in value or "\\" in value or value != value.strip():
        raise SpecError(path, _name_rule(max_length), value, hint="no leading/trailing spaces either")
    return value


def _name_rule(max_length: int) -> str:
    return f"a non-empty string of at most {max_length} characters without '/', '\\\\' or control characters"


def _check_size(value: Any, path: str, *, maximum: int) -> int:
    try:
        mib = parse_size(value, what=path)
    except ValueError as exc:
        raise SpecError(path, "a size such as '20GiB', '512MiB' or an int of MiB", value) from exc
    if mib > maximum:
        raise SpecError(path, f"a size of at most {maximum} MiB", value)
    return mib


def _check_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(path, "true or false", value)
    return value


def _check_choice(value: Any, path: str, choices: Iterable[str], *, optional: bool = False) -> str | None:
    options = tuple(choices)
    if value is None and optional:
        return None
    if isinstance(value, str) and value.lower() in options:
        return value.lower()
    raise SpecError(path, "one of " + ", ".join(repr(c) for c in options), value)


def _check_text(value: Any, path: str, max_length: int, *, optional: bool = False) -> str | None:
    if value == "":
        return ""
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
        raise SpecError(path, f"a string of at most {max_length} characters", value)
    return value


class _SpecBase:
    """Shared construction from plain data with unknown-key detection."""

    _kind: ClassVar[str] = "spec"

    @classmethod
    def from_dict(cls: type[_S], data: Mapping[str, Any] | _S, *, path: str = "") -> _S:
        """Build the spec from a mapping (e.g. parsed YAML), naming the path of any bad field."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise SpecError(path or cls._kind, f"a mapping of {cls._kind} fields", data)
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        for key in data:
            if key not in known:
                raise SpecError(
                    f"{path}.{key}" if path else str(key),
                    "a known field: " + ", ".join(sorted(known)),
                    hint=f"unknown {cls._kind} field",
                )
        try:
            return cls(**dict(data))
        except SpecError as err:
            raise (err.within(path) if path else err) from err.__cause__
        except TypeError as exc:  # a required field is missing
            missing = [f.name for f in fields(cls) if f.name not in data]  # type: ignore[arg-type]
            raise SpecError(path or cls._kind, "the required field(s) " + ", ".join(missing)) from exc

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as plain data (sizes in MiB, unset fields left out), suitable for JSON/YAML."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [v.to_dict() if isinstance(v, _SpecBase) else v for v in value]
            elif isinstance(value, _SpecBase):
                value = value.to_dict()
            elif isinstance(value, Firmware):
                value = value.value
            if value is not None:
                out[f.name] = value
        return out


@dataclass(frozen=True)
class Disk(_SpecBase):
    """A disk to create (``size``) or an existing image to attach (``path``).

    :param size: ``"20GiB"``, ``"512MiB"`` or an int of MiB; stored as MiB.
    :param storage: storage pool / datastore name; the backend's default when omitted.
    :param path: an existing image to attach instead of creating one.
    :param bus: ``virtio``, ``scsi``, ``sata``, ``ide`` or ``nvme``; the backend's best default when omitted.
    :param thin: thin-provisioned (sparse) when true.
    :param name: volume/file name; generated from the VM name when omitted.
    """

    _kind: ClassVar[str] = "disk"

    size: int | str | None = None
    storage: str | None = None
    path: str | None = None
    bus: str | None = None
    thin: bool = True
    name: str | None = None

    def __post_init__(self) -> None:
        if self.size is None and self.path is None:
            raise SpecError("size", "a size such as '20GiB' (or give path= for an existing image)")
        if self.size is not None:
            object.__setattr__(self, "size", _check_size(self.size, "size", maximum=MAX_DISK_MIB))
        if self.storage is not None:
            _check_name(self.storage, "storage", max_length=255)
        _check_text(self.path, "path", 4096, optional=True)
        if self.path == "":
            raise SpecError("path", "a non-empty path", self.path)
        object.__setattr__(self, "bus", _check_choice(self.bus, "bus", DISK_BUSES, optional=True))
        _check_bool(self.thin, "thin")
        if self.name is not None:
            _check_name(self.name, "name", max_length=200)

    @property
    def size_mib(self) -> int | None:
        """The size in MiB (``None`` when attaching an existing image)."""
        return self.size if isinstance(self.size, int) else None


@dataclass(frozen=True)
class Nic(_SpecBase):
    """A network interface.

    :param network: the network, bridge or portgroup name to attach to.
    :param kind: ``network`` (managed network / portgroup), ``bridge``, ``nat``, ``hostonly``, ``internal``.
    :param model: ``virtio``, ``e1000``, ``e1000e``, ``vmxnet3``, …; the backend's best default when omitted.
    :param mac: a fixed unicast MAC address; generated when omitted.
    :param connected: whether the link starts connected.
    """

    _kind: ClassVar[str] = "nic"

    network: str = "default"
    kind: str = "network"
    model: str | None = None
    mac: str | None = None
    connected: bool = True

    def __post_init__(self) -> None:
        _check_name(self.network, "network", max_length=255)
        object.__setattr__(self, "kind", _check_choice(self.kind, "kind", NIC_KINDS))
        object.__setattr__(self, "model", _check_choice(self.model, "model", NIC_MODELS, optional=True))
        if self.mac is not None:
            if not isinstance(self.mac, str) or not _MAC_RE.match(self.mac):
                raise SpecError("mac", "a MAC address like '52:54:00:12:34:56'", self.mac)
            if int(self.mac[:2], 16) & 1:
                raise SpecError("mac", "a unicast MAC address (first octet even)", self.mac)
            object.__setattr__(self, "mac", self.mac.lower())
        _check_bool(self.connected, "connected")


@dataclass(frozen=True)
class CdRom(_SpecBase):
    """A CD-ROM drive, optionally with an ISO image inserted."""

    _kind: ClassVar[str] = "cdrom"

    iso: str | None = None
    bus: str | None = None

    def __post_init__(self) -> None:
        _check_text(self.iso, "iso", 4096, optional=True)
        if self.iso == "":
            raise SpecError("iso", "a path to an ISO image, or null for an empty drive", self.iso)
        object.__setattr__(self, "bus", _check_choice(self.bus, "bus", ("sata", "ide", "scsi"), optional=True))


def _coerce_items(value: Any, path: str, item_type: type[_S]) -> tuple[_S, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise SpecError(path, f"a list of {item_type._kind} specs", value)
    return tuple(item_type.from_dict(item, path=f"{path}[{i}]") for i, item in enumerate(value))


@dataclass(frozen=True)
class VMSpec(_SpecBase):
    r"""Everything needed to create a VM, validated when constructed.

    Example::

        VMSpec(name="web1", cpus=2, memory="2GiB", guest_os="ubuntu-22.04",
               disks=[Disk(size="20GiB")], nics=[Nic(network="default")])

    :param name: 1 to 80 characters, no ``/``, ``\\`` or control characters.
    :param cpus: virtual CPUs (1 to 768).
    :param memory: ``"2GiB"`` or an int of MiB; stored as MiB.
    :param guest_os: a catalog id (``virtabstract.guest_os_ids()``); mapped to each backend's native id.
    :param disks: :class:`Disk` specs (or mappings), in boot order.
    :param nics: :class:`Nic` specs (or mappings).
    :param firmware: ``"bios"`` or ``"uefi"``.
    :param secure_boot: UEFI secure boot (requires ``firmware="uefi"``).
    :param boot_order: devices to boot from, in order: ``disk``, ``cdrom``, ``network``.
    :param cdrom: a :class:`CdRom`, an ISO path, or ``None`` for no drive.
    :param autostart: start the VM when the host boots.
    :param description: free text stored with the VM.
    :param tags: short labels stored with the VM (used for grouping, e.g. by the Ansible inventory).
    :param graphics: ``vnc``, ``spice`` or ``none``.
    :param acceleration: ``auto``, ``hardware`` (e.g. KVM) or ``software`` (e.g. QEMU TCG).
    """

    _kind: ClassVar[str] = "vm"

    name: str
    cpus: int = 1
    memory: int | str = 1024
    guest_os: str = "other"
    disks: Sequence[Disk | Mapping[str, Any]] = ()
    nics: Sequence[Nic | Mapping[str, Any]] = ()
    firmware: Firmware | str = Firmware.BIOS
    secure_boot: bool = False
    boot_order: Sequence[str] = ("disk", "cdrom", "network")
    cdrom: CdRom | str | None = None
    autostart: bool = False
    description: str = ""
    tags: Sequence[str] = ()
    graphics: str = "vnc"
    acceleration: str = "auto"

    def __post_init__(self) -> None:
        _check_name(self.name, "name")
        if isinstance(self.cpus, bool) or not isinstance(self.cpus, int) or not 1 <= self.cpus <= MAX_CPUS:
            raise SpecError("cpus", f"an integer from 1 to {MAX_CPUS}", self.cpus)
        memory = _check_size(self.memory, "memory", maximum=MAX_MEMORY_MIB)
        if memory < MIN_MEMORY_MIB:
            raise SpecError("memory", f"at least {MIN_MEMORY_MIB} MiB", self.memory)
        object.__setattr__(self, "memory", memory)
        if not isinstance(self.guest_os, str):
            raise SpecError("guest_os", "a guest OS id such as 'ubuntu-22.04'", self.guest_os)
        object.__setattr__(self, "guest_os", get_guest_os(self.guest_os).id)
        object.__setattr__(self, "disks", _coerce_items(self.disks, "disks", Disk))
        object.__setattr__(self, "nics", _coerce_items(self.nics, "nics", Nic))
        firmware = Firmware(str(_check_choice(str(self.firmware), "firmware", [f.value for f in Firmware])))
        object.__setattr__(self, "firmware", firmware)
        _check_bool(self.secure_boot, "secure_boot")
        if self.secure_boot and firmware is not Firmware.UEFI:
            raise SpecError("secure_boot", "firmware='uefi' when secure_boot is true", firmware.value)
        object.__setattr__(self, "boot_order", self._checked_boot_order())
        if isinstance(self.cdrom, str):
            object.__setattr__(self, "cdrom", CdRom.from_dict({"iso": self.cdrom}, path="cdrom"))
        elif self.cdrom is not None:
            object.__setattr__(self, "cdrom", CdRom.from_dict(self.cdrom, path="cdrom"))
        _check_bool(self.autostart, "autostart")
        _check_text(self.description, "description", MAX_DESCRIPTION_LENGTH)
        object.__setattr__(self, "tags", self._checked_tags())
        object.__setattr__(self, "graphics", _check_choice(self.graphics, "graphics", GRAPHICS))
        object.__setattr__(self, "acceleration", _check_choice(self.acceleration, "acceleration", ACCELERATION))

    def _checked_boot_order(self) -> tuple[str, ...]:
        value = self.boot_order
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise SpecError("boot_order", "a list drawn from 'disk', 'cdrom', 'network'", value)
        # compare case-folded names: ["disk", "Disk"] names one device twice
        order = tuple(str(_check_choice(d, f"boot_order[{i}]", BOOT_DEVICES)) for i, d in enumerate(value))
        if len(set(order)) != len(order):
            raise SpecError("boot_order", "each device at most once", list(order))
        return order

    def _checked_tags(self) -> tuple[str, ...]:
        value = self.tags
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise SpecError("tags", "a list of strings", value)
        tags = tuple(value)
        for i, tag in enumerate(tags):
            if (
                not isinstance(tag, str)
                or not tag
                or len(tag) > MAX_TAG_LENGTH
                or _CONTROL_CHARS.search(tag)
                or "," in tag
                or tag != tag.strip()
            ):
                raise SpecError(
                    f"tags[{i}]", f"a non-empty string of at most {MAX_TAG_LENGTH} characters without commas", tag
                )
        return tuple(sorted(set(tags)))

    @property
    def memory_mib(self) -> int:
        """Memory in MiB."""
        assert isinstance(self.memory, int)
        return self.memory

    @classmethod
    def from_file(cls, path: str | Path) -> VMSpec:
        """Load a spec from a ``.json``, ``.yaml`` or ``.yml`` file."""
        return load_spec(path)


def load_spec(path: str | Path) -> VMSpec:
    """Load a :class:`VMSpec` from a JSON or YAML file (YAML needs PyYAML: ``virtabstract[yaml]``)."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError("file", f"a readable spec file ({exc.strerror})", str(source)) from exc
    if source.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise SpecError("file", "JSON, or install PyYAML (pip install 'virtabstract[yaml]')", str(source)) from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError("file", f"valid YAML ({exc})", str(source)) from exc
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError("file", f"valid JSON ({exc.msg} at line {exc.lineno})", str(source)) from exc
    return VMSpec.from_dict(data)


_DISK_SIZE_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_DISK_MIB, "description": "MiB"},
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([kKmMgGtTpP][iI]?[bB]?)?\s*$"},
    ]
}


def spec_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of :class:`VMSpec` as plain data.

    The schema and the validation in the classes state the same rules; a test
    checks that the field sets agree.
    """
    from ._catalog import guest_os_ids

    name = {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_NAME_LENGTH,
        "pattern": r"^[^\s/\\\x00-\x1f\x7f]([^/\\\x00-\x1f\x7f]*[^\s/\\\x00-\x1f\x7f])?$",
    }
    disk = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "size": {"oneOf": [*_DISK_SIZE_SCHEMA["oneOf"], {"type": "null"}]},
            "storage": {"type": ["string", "null"]},
            "path": {"type": ["string", "null"], "minLength": 1},
            "bus": {"enum": [*DISK_BUSES, None]},
            "thin": {"type": "boolean", "default": True},
            "name": {"type": ["string", "null"]},
        },
        "anyOf": [{"required": ["size"]}, {"required": ["path"]}],
    }
    nic = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "network": {"type": "string", "minLength": 1, "default": "default"},
            "kind": {"enum": list(NIC_KINDS), "default": "network"},
            "model": {"enum": [*NIC_MODELS, None]},
            "mac": {"type": ["string", "null"], "pattern": _MAC_RE.pattern},
            "connected": {"type": "boolean", "default": True},
        },
    }
    cdrom = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"iso": {"type": ["string", "null"]}, "bus": {"enum": ["sata", "ide", "scsi", None]}},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://virtabstract.dev/schemas/vmspec.json",
        "title": "VMSpec",
        "description": "A virtual machine to create with virtabstract.",
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": name,
            "cpus": {"type": "integer", "minimum": 1, "maximum": MAX_CPUS, "default": 1},
            "memory": {
                "oneOf": [
                    {"type": "integer", "minimum": MIN_MEMORY_MIB, "maximum": MAX_MEMORY_MIB},
                    _DISK_SIZE_SCHEMA["oneOf"][1],
                ],
                "default": 1024,
                "description": "MiB, or a string such as '2GiB'",
            },
            "guest_os": {"enum": list(guest_os_ids()), "default": "other"},
            "disks": {"type": "array", "items": disk},
            "nics": {"type": "array", "items": nic},
            "firmware": {"enum": [f.value for f in Firmware], "default": "bios"},
            "secure_boot": {"type": "boolean", "default": False},
            "boot_order": {"type": "array", "items": {"enum": list(BOOT_DEVICES)}, "uniqueItems": True},
            "cdrom": {"oneOf": [{"type": "null"}, {"type": "string", "minLength": 1}, cdrom]},
            "autostart": {"type": "boolean", "default": False},
            "description": {"type": "string", "maxLength": MAX_DESCRIPTION_LENGTH, "default": ""},
            "tags": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": MAX_TAG_LENGTH, "pattern": r"^[^,]*$"},
            },
            "graphics": {"enum": list(GRAPHICS), "default": "vnc"},
            "acceleration": {"enum": list(ACCELERATION), "default": "auto"},
        },
    }
