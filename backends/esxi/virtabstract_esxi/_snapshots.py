"""The snapshot tree: ``snapshot.rootSnapshotList`` walked recursively, parents before children.

Snapshot ids are the snapshot MoRef values (``snapshot-123``): stable for the snapshot's
lifetime and unique, while names may repeat (the core's duplicate-name policy handles
those). A tree node has no "has memory" flag: vSphere records the VM's power state at
snapshot time, and a snapshot of a running VM *without* memory is recorded as
``poweredOff`` (reverting to it powers the VM off), so ``poweredOn``/``suspended`` means
the memory state is included.

The VM's ``snapshot`` property reaches this module in one of two forms: a
:class:`SnapshotTree` decoded by the lean reader (:mod:`._lean`), or pyVmomi's
``vim.vm.SnapshotInfo`` when pyVmomi did the read. :func:`snapshot_tree` turns the
latter into the former, so :func:`snapshot_infos` has one input shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from virtabstract import SnapshotInfo

from ._states import map_state

__all__ = ["SnapshotNode", "SnapshotTree", "snapshot_infos", "snapshot_tree"]


@dataclass(frozen=True)
class SnapshotNode:
    """One ``VirtualMachineSnapshotTree`` node (the fields the backend uses)."""

    moid: str
    """The ``snapshot`` MoRef value (``snapshot-123``): the snapshot's id here."""
    name: str
    description: str = ""
    created: datetime | None = None
    state: str = "poweredOff"
    """The VM's ``VirtualMachinePowerState`` when the snapshot was taken."""
    quiesced: bool = False
    number: int | None = None
    """The node's ``id`` (a per-VM counter; not the snapshot's identity)."""
    children: tuple[SnapshotNode, ...] = ()


@dataclass(frozen=True)
class SnapshotTree:
    """A ``VirtualMachineSnapshotInfo``: the current snapshot and the root nodes."""

    current: str | None
    roots: tuple[SnapshotNode, ...]


def _node_from_sdk(node: Any) -> SnapshotNode:
    created = getattr(node, "createTime", None)
    number = getattr(node, "id", None)
    return SnapshotNode(
        moid=str(node.snapshot._moId),
        name=str(node.name),
        description=str(getattr(node, "description", "") or ""),
        created=created if isinstance(created, datetime) else None,
        state=str(getattr(node, "state", "poweredOff") or "poweredOff"),
        quiesced=bool(getattr(node, "quiesced", False)),
        number=int(number) if number is not None else None,
        children=tuple(_node_from_sdk(c) for c in getattr(node, "childSnapshotList", None) or ()),
    )


def snapshot_tree(value: Any) -> SnapshotTree | None:
    """The ``snapshot`` property as a :class:`SnapshotTree` (``None``: the VM has no snapshots)."""
    if value is None or isinstance(value, SnapshotTree):
        return value
    current = getattr(value, "currentSnapshot", None)
    return SnapshotTree(
        current=str(current._moId) if current is not None else None,
        roots=tuple(_node_from_sdk(n) for n in getattr(value, "rootSnapshotList", None) or ()),
    )


def snapshot_infos(vm_id: str, snapshot_info: Any) -> list[SnapshotInfo]:
    """Flatten the ``snapshot`` property (a :class:`SnapshotTree`, pyVmomi's object, or ``None``) depth-first."""
    tree = snapshot_tree(snapshot_info)
    if tree is None:
        return []
    out: list[SnapshotInfo] = []

    def walk(nodes: Iterable[SnapshotNode], parent_id: str | None) -> None:
        for node in nodes:
            out.append(
                SnapshotInfo(
                    id=node.moid,
                    name=node.name,
                    vm_id=vm_id,
                    parent_id=parent_id,
                    description=node.description,
                    created=node.created,
                    vm_state=map_state(node.state),
                    has_memory=node.state in ("poweredOn", "suspended"),
                    is_current=node.moid == tree.current,
                    children_ids=tuple(c.moid for c in node.children),
                )
            )
            walk(node.children, node.moid)

    walk(tree.roots, None)
    return out
