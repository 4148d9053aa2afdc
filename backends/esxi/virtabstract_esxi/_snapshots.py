"""The snapshot tree: ``snapshot.rootSnapshotList`` walked recursively, parents before children.

Snapshot ids are the snapshot MoRef values (``snapshot-123``): stable for the snapshot's
lifetime and unique, while names may repeat (the core's duplicate-name policy handles
those). A tree node has no "has memory" flag: vSphere records the VM's power state at
snapshot time, and a snapshot of a running VM *without* memory is recorded as
``poweredOff`` (reverting to it powers the VM off), so ``poweredOn``/``suspended`` means
the memory state is included.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from virtabstract import SnapshotInfo

from ._states import map_state

__all__ = ["snapshot_infos"]


def snapshot_infos(vm_id: str, snapshot_info: Any) -> list[SnapshotInfo]:
    """Flatten a ``VirtualMachineSnapshotInfo`` (or ``None``: no snapshots) depth-first."""
    if snapshot_info is None:
        return []
    current = getattr(snapshot_info, "currentSnapshot", None)
    current_id = str(current._moId) if current is not None else None
    out: list[SnapshotInfo] = []

    def walk(nodes: Iterable[Any], parent_id: str | None) -> None:
        for node in nodes or ():
            snap_id = str(node.snapshot._moId)
            children = list(getattr(node, "childSnapshotList", None) or ())
            state = str(getattr(node, "state", "poweredOff") or "poweredOff")
            created = getattr(node, "createTime", None)
            out.append(
                SnapshotInfo(
                    id=snap_id,
                    name=str(node.name),
                    vm_id=vm_id,
                    parent_id=parent_id,
                    description=str(getattr(node, "description", "") or ""),
                    created=created if isinstance(created, datetime) else None,
                    vm_state=map_state(state),
                    has_memory=state in ("poweredOn", "suspended"),
                    is_current=snap_id == current_id,
                    children_ids=tuple(str(c.snapshot._moId) for c in children),
                )
            )
            walk(children, snap_id)

    walk(getattr(snapshot_info, "rootSnapshotList", None) or (), None)
    return out
