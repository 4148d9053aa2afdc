"""Storage volumes: which pool, creating, copying (full and linked clones) and deleting them.

New disks are qcow2 volumes in a libvirt storage pool: the disk's ``storage``,
else the connection option ``pool=``, else the pool named ``default``, else the
only active pool. Volume names are derived from the VM name with anything but
``[A-Za-z0-9._-]`` replaced by ``_`` and made unique within the pool.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

from virtabstract.errors import AlreadyExists, StorageNotFound

from ._errors import map_libvirt_errors
from ._xml import parse_xml

__all__ = ["create_volume", "delete_paths", "resolve_pool", "volume_name", "volume_xml"]

log = logging.getLogger("virtabstract.kvm")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def resolve_pool(conn: Any, wanted: str | None, default: str | None) -> Any:
    """The storage pool for a new disk (see the module docstring); raise StorageNotFound."""
    name = wanted or default
    with map_libvirt_errors(f"storage pool {name or 'default'!r}"):
        if name:
            pool = conn.storagePoolLookupByName(name)
        else:
            pools = [p for p in conn.listAllStoragePools(0) if p.isActive()]
            by_name = {p.name(): p for p in pools}
            if "default" in by_name:
                pool = by_name["default"]
            elif len(pools) == 1:
                pool = pools[0]
            else:
                names = ", ".join(sorted(by_name)) or "none"
                raise StorageNotFound(
                    f"no storage pool named 'default' and {len(pools)} active pools ({names}): "
                    "give Disk(storage=...) or the connection option pool="
                )
        if not pool.isActive():
            raise StorageNotFound(f"storage pool {pool.name()!r} is not active")
    return pool


def volume_name(pool: Any, base: str, suffix: str, explicit: str | None = None) -> str:
    """A free volume name in *pool*: *explicit* as given (AlreadyExists if taken), else ``<base>-<suffix>``."""
    with map_libvirt_errors(f"list volumes of pool {pool.name()!r}"):
        taken = set(pool.listVolumes())
    if explicit:
        if explicit in taken:
            raise AlreadyExists(f"storage pool {pool.name()!r} already has a volume named {explicit!r}")
        return explicit
    stem = _UNSAFE.sub("_", base).strip("._") or "vm"
    candidate = f"{stem}-{suffix}"
    n = 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{suffix.rsplit('.', 1)[0]}-{n}.{suffix.rsplit('.', 1)[-1]}"
    return candidate


def volume_xml(name: str, size_mib: int, *, thin: bool = True, backing: tuple[str, str] | None = None) -> str:
    """``<volume>`` XML of a qcow2 volume; *backing* is ``(path, format)`` for a linked clone."""
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", unit="MiB").text = str(size_mib)
    ET.SubElement(vol, "allocation", unit="MiB").text = "0" if thin else str(size_mib)
    target = ET.SubElement(vol, "target")
    ET.SubElement(target, "format", type="qcow2")
    if backing is not None:
        store = ET.SubElement(vol, "backingStore")
        ET.SubElement(store, "path").text = backing[0]
        ET.SubElement(store, "format", type=backing[1])
    return ET.tostring(vol, encoding="unicode")


def create_volume(pool: Any, name: str, size_mib: int, *, thin: bool = True) -> Any:
    """Create a qcow2 volume and return it."""
    with map_libvirt_errors(f"create volume {name!r} in pool {pool.name()!r}"):
        return pool.createXML(volume_xml(name, size_mib, thin=thin), 0)


def volume_format(vol: Any) -> str:
    """The format of a volume (``qcow2``, ``raw`` …) from its XML."""
    with map_libvirt_errors(f"read volume {vol.name()!r}"):
        root = parse_xml(vol.XMLDesc(0))
    fmt = root.find("target/format")
    return fmt.get("type", "raw") if fmt is not None else "raw"


def delete_paths(conn: Any, paths: Iterable[str]) -> list[str]:
    """Delete the storage volumes at *paths*; return the paths that are not volumes (left alone)."""
    left: list[str] = []
    for path in paths:
        try:
            with map_libvirt_errors(f"look up volume {path!r}"):
                vol = conn.storageVolLookupByPath(path)
        except StorageNotFound:
            log.warning("disk %s is not a storage volume; not deleted", path)
            left.append(path)
            continue
        with map_libvirt_errors(f"delete volume {path!r}"):
            vol.delete(0)
    return left


def delete_volumes(volumes: Iterable[Any]) -> None:
    """Best-effort removal of volumes created by a failed operation (rollback)."""
    for vol in volumes:
        try:
            vol.delete(0)
        except Exception as exc:  # noqa: BLE001 - rollback continues, the original error matters more
            log.warning("rollback: could not delete volume %s: %s", getattr(vol, "name", lambda: "?")(), exc)
