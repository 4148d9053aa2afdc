"""Snapshots: libvirt's snapshot tree in virtabstract's terms.

A snapshot's id is its libvirt name: libvirt keys snapshots by name, so the
id is stable for the snapshot's lifetime and names are unique per VM. The
core's duplicate-name policy therefore ends at libvirt: even with
``allow_duplicate=True`` a second snapshot of the same name raises
:class:`~virtabstract.errors.AlreadyExists`.

On QEMU the snapshots are *internal* (inside the qcow2 images): a stopped VM
gets a disk-only snapshot, a running one a full system checkpoint with
memory (``memory=True``). QEMU cannot take an internal snapshot of a running
VM without its memory; that combination raises UnsupportedOperation.

Taking one is ``KVMBackend.create_snapshot`` (one ``snapshotCreateXML``, its XML built inline on that hot
path); this module reads them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from virtabstract import PowerState, SnapshotInfo

from . import _sdk
from ._errors import map_libvirt_errors
from ._xml import parse_xml

__all__ = ["delete", "domain_definition", "get", "list_snapshots", "revert"]

_SNAP_STATES = {
    "running": PowerState.RUNNING,
    "blocked": PowerState.RUNNING,
    "paused": PowerState.PAUSED,
    "shutdown": PowerState.STOPPING,
    "shutoff": PowerState.STOPPED,
    "crashed": PowerState.CRASHED,
    "pmsuspended": PowerState.PAUSED,
    "disk-snapshot": PowerState.STOPPED,
}


_DOMAIN = re.compile(r"<domain[\s>/]")
_HEAD = re.compile(
    r"<domainsnapshot>\s*<name>(?P<name>[^<\r]*)</name>\s*"
    r"(?:<description>(?P<description>[^<\r]*)</description>\s*)?"
    r"(?:<state>(?P<state>[a-z-]*)</state>\s*)?"
    r"(?:<parent>\s*<name>(?P<parent>[^<\r]*)</name>\s*</parent>\s*)?"
    r"(?:<creationTime>(?P<created>[0-9]+)</creationTime>\s*)?"
    r"(?:<memory snapshot='(?P<memory>[a-z]*)'(?: file='[^'<]*')?/>\s*)?"
    r"(?=<disks>|<domain[\s>]|</domainsnapshot>)"
)
"""The head of libvirt's snapshot XML, exactly as ``virDomainSnapshotDefFormat`` writes it (name, description,
state, parent, creationTime, memory, then disks/domain): anything else falls back to the XML parser."""
_ENTITY = re.compile(r"&(?!(?:lt|gt|amp|apos|quot);)")


def _text(value: str) -> str | None:
    """Text as an XML parser returns it, for the five entities libvirt escapes; None for any other reference."""
    if "&" not in value:
        return value
    if _ENTITY.search(value):
        return None
    return (
        value.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&apos;", "'")
        .replace("&quot;", '"')
        .replace("&amp;", "&")
    )


def _fields(xml: str) -> tuple[str, str, str | None, str | None, str | None, str | None] | None:
    """``(name, description, state, parent, creationTime, memory snapshot)`` by one regex over the head, or None.

    None (parse instead) for anything the regex was not written for: other elements or attributes, other
    entities, a carriage return (a parser would normalise it). About 2 µs, where parsing takes 15.
    """
    match = _HEAD.match(xml)
    if match is None:
        return None
    name, description, state, parent, created, memory = match.group(
        "name", "description", "state", "parent", "created", "memory"
    )
    name = _text(name)
    description = _text(description or "")
    if parent is not None:
        parent = _text(parent)
        if parent is None:
            return None
    if name is None or description is None:
        return None
    return name, description, state, parent, created, memory


def _parsed_fields(xml: str) -> tuple[str, str, str | None, str | None, str | None, str | None]:
    """The same fields with the XML parser.

    The embedded ``<domain>`` is cut off first (the fields all precede it, and text is escaped, so
    ``<domain`` can only be that element's tag): that makes parsing several times cheaper.
    """
    cut = _DOMAIN.search(xml)
    root = parse_xml(xml[: cut.start()] + "</domainsnapshot>" if cut else xml)
    memory = root.find("memory")
    return (
        root.findtext("name") or "",
        root.findtext("description") or "",
        root.findtext("state"),
        root.findtext("parent/name"),
        root.findtext("creationTime"),
        None if memory is None else memory.get("snapshot", ""),
    )


def _info(vm_id: str, xml: str, current: str | None) -> SnapshotInfo:
    name, description, state, parent, created, memory = _fields(xml) or _parsed_fields(xml)
    state = state or "shutoff"
    # without <memory> (older libvirt) an active state means a full checkpoint
    has_memory = state in ("running", "paused", "blocked") if memory is None else memory not in ("no", "")
    return SnapshotInfo(
        id=name,
        name=name,
        vm_id=vm_id,
        parent_id=parent or None,
        description=description,
        created=datetime.fromtimestamp(int(created), UTC) if created else None,
        vm_state=_SNAP_STATES.get(state, PowerState.UNKNOWN),
        has_memory=has_memory,
        is_current=name == current,
    )


def list_snapshots(dom: Any, vm_id: str) -> list[SnapshotInfo]:
    """Every snapshot of *dom*, parents before children, with children ids filled in."""
    lv = _sdk.libvirt()
    with map_libvirt_errors("list snapshots"):
        snaps = dom.listAllSnapshots(0)
        current = None
        if snaps and dom.hasCurrentSnapshot(0):
            current = dom.snapshotCurrent(0).getName()
        infos = [_info(vm_id, s.getXMLDesc(lv.VIR_DOMAIN_SNAPSHOT_XML_SECURE), current) for s in snaps]
    children: dict[str | None, list[str]] = {}
    for info in infos:
        children.setdefault(info.parent_id, []).append(info.id)
    by_id = {i.id: i for i in infos}
    ordered: list[SnapshotInfo] = []

    def order(snap_id: str) -> tuple[datetime, str]:
        return by_id[snap_id].created or datetime.min.replace(tzinfo=UTC), snap_id

    def visit(snap_id: str) -> None:
        info = by_id[snap_id]
        kids = sorted(children.get(snap_id, []), key=order)
        ordered.append(SnapshotInfo(**{**info.__dict__, "children_ids": tuple(kids)}))
        for kid in kids:
            visit(kid)

    roots = [i.id for i in infos if i.parent_id is None or i.parent_id not in by_id]
    for root_id in sorted(roots, key=order):
        visit(root_id)
    return ordered


def get(dom: Any, vm_id: str, name: str, snap: Any = None) -> SnapshotInfo:
    """One snapshot, as :func:`list_snapshots` gives it (children by creation time), without reading the others.

    *snap* is its handle when known (else it is looked up), as for :func:`revert` and :func:`delete`.
    """
    lv = _sdk.libvirt()
    with map_libvirt_errors(f"snapshot {name!r}"):
        snap = snap if snap is not None else dom.snapshotLookupByName(name, 0)
        info = _info(vm_id, snap.getXMLDesc(lv.VIR_DOMAIN_SNAPSHOT_XML_SECURE), name if snap.isCurrent(0) else None)
        kids = [_info(vm_id, kid.getXMLDesc(0), None) for kid in snap.listAllChildren(0)]
    kids.sort(key=lambda kid: (kid.created or datetime.min.replace(tzinfo=UTC), kid.id))
    return replace(info, children_ids=tuple(kid.id for kid in kids))


def revert(dom: Any, name: str, snap: Any = None) -> None:
    """Revert to the snapshot *name*, to the state it recorded (running when it has memory)."""
    lv = _sdk.libvirt()
    with map_libvirt_errors(f"snapshot {name!r}"):
        snap = snap if snap is not None else dom.snapshotLookupByName(name, 0)
    try:
        with map_libvirt_errors(f"revert to snapshot {name!r}"):
            dom.revertToSnapshot(snap, 0)
    except Exception as exc:
        orig = getattr(exc, "orig", None)
        if orig is None or orig.get_error_code() != lv.VIR_ERR_SNAPSHOT_REVERT_RISKY:
            raise
        with map_libvirt_errors(f"revert to snapshot {name!r}"):
            dom.revertToSnapshot(snap, lv.VIR_DOMAIN_SNAPSHOT_REVERT_FORCE)


def delete(dom: Any, name: str, *, children: bool, snap: Any = None) -> None:
    """Delete the snapshot *name* (its data merges into its children), or its whole subtree."""
    lv = _sdk.libvirt()
    with map_libvirt_errors(f"delete snapshot {name!r}"):
        snap = snap if snap is not None else dom.snapshotLookupByName(name, 0)
        snap.delete(lv.VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN if children else 0)


def domain_definition(dom: Any, name: str) -> ET.Element | None:
    """The domain definition recorded in snapshot *name* (secrets included), if libvirt kept one."""
    lv = _sdk.libvirt()
    with map_libvirt_errors(f"snapshot {name!r}"):
        xml = dom.snapshotLookupByName(name, 0).getXMLDesc(lv.VIR_DOMAIN_SNAPSHOT_XML_SECURE)
    return parse_xml(xml).find("domain")
