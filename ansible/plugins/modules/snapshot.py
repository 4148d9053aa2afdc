#!/usr/bin/python
# Copyright: virtabstract developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: create, delete and revert VM snapshots, by name path or id."""

from __future__ import annotations

DOCUMENTATION = r"""
module: snapshot
short_description: Create, delete and revert snapshots of a virtual machine
version_added: 0.1.0
description:
  - Makes a snapshot of a VM exist (V(present)) or not (V(absent)), or returns the VM to it (V(reverted)),
    on any hypervisor virtabstract supports that can take snapshots.
  - A snapshot is found by its id, or by its name or name path - V(base/after-update) names the snapshot
    C(after-update) whose parent is C(base). V(present) and V(absent) are idempotent.
  - The whole snapshot tree of the VM is returned after the run.
author:
  - virtabstract developers (@virtabstract)
extends_documentation_fragment:
  - virtabstract.hypervisor.connection
attributes:
  check_mode:
    support: full
    description: Reports what would be created, deleted or reverted without doing it.
  diff_mode:
    support: full
    description: Shows the name paths of the VM's snapshots before and after.
options:
  vm:
    description:
      - The VM's name or id.
    type: str
    required: true
  name:
    description:
      - The snapshot's name, or its name path from a root snapshot, separated by C(/) (snapshot names
        cannot contain C(/)).
      - When several snapshots match, the module fails and lists their ids; give O(id) instead.
      - A new snapshot becomes a child of the VM's current snapshot. To create one by a path, the path's
        parent must be the current snapshot.
    type: str
  id:
    description:
      - The snapshot's id. Takes precedence over O(name) for finding it.
    type: str
  state:
    description:
      - V(present) - the snapshot exists; taken now when it does not.
      - V(absent) - the snapshot does not exist. Its children are re-parented unless O(children=true).
      - V(reverted) - the VM is returned to the snapshot. Always reports a change, since the VM may have
        changed since; fails when the snapshot does not exist.
    type: str
    choices: [present, absent, reverted]
    default: present
  description:
    description:
      - Free text stored with a new snapshot. An existing snapshot's description is not compared.
    type: str
    default: ""
  memory:
    description:
      - Include the running VM's memory, so reverting resumes it running. Needs a running or paused VM.
    type: bool
    default: false
  quiesce:
    description:
      - Ask the guest agent to flush the guest's file systems before a disk-only snapshot.
    type: bool
    default: false
  children:
    description:
      - With O(state=absent), delete the whole subtree under the snapshot as well.
    type: bool
    default: false
seealso:
  - module: virtabstract.hypervisor.vm
"""

EXAMPLES = r"""
- name: Take a clean snapshot before an upgrade
  virtabstract.hypervisor.snapshot:
    uri: qemu:///system
    vm: web1
    name: before-upgrade
    description: taken by Ansible before the upgrade

- name: Go back to it when the upgrade failed
  virtabstract.hypervisor.snapshot:
    uri: qemu:///system
    vm: web1
    name: before-upgrade
    state: reverted

- name: Remove a nested snapshot by its path
  virtabstract.hypervisor.snapshot:
    uri: esx://esx1.example.com/
    username: root
    password: "{{ vault_esx_password }}"
    vm: web1
    name: base/before-upgrade
    state: absent
"""

RETURN = r"""
snapshot:
  description:
    - The snapshot acted on (the library's SnapshotInfo plus C(path)).
  returned: when the snapshot exists after the run (not in check mode when it would only be created)
  type: dict
  sample:
    id: "1700000000"
    name: before-upgrade
    path: before-upgrade
    vm_id: 7b0c6a53-6b6e-4f21-9b0e-0b7f6f0a9c11
    parent_id: null
    description: taken by Ansible before the upgrade
    created: "2026-01-01T12:00:00+00:00"
    vm_state: running
    has_memory: false
    is_current: true
    children_ids: []
tree:
  description:
    - The VM's snapshot tree after the run - the root snapshots, each with the same keys as RV(snapshot)
      and C(children), a list of the same.
  returned: always
  type: list
  elements: dict
  sample: [{id: "1", name: base, path: base, is_current: false,
            children: [{id: "2", name: before-upgrade, path: base/before-upgrade, is_current: true, children: []}]}]
"""

from ansible_collections.virtabstract.hypervisor.plugins.module_utils.common import (  # noqa: E402
    hypervisor,
    new_module,
    to_data,
    va_errors,
)


def paths_by_id(infos):
    """Map each snapshot id to its name path (infos come parents first)."""
    paths = {}
    by_id = {info.id: info for info in infos}
    for info in infos:
        names = [info.name]
        parent = info.parent_id
        while parent is not None and parent in by_id:
            names.append(by_id[parent].name)
            parent = by_id[parent].parent_id
        paths[info.id] = "/".join(reversed(names))
    return paths


def entry(info, paths):
    data = to_data(info)
    data["path"] = paths[info.id]
    return data


def build_tree(infos):
    """The snapshot forest as nested dicts."""
    paths = paths_by_id(infos)
    nodes = {info.id: dict(entry(info, paths), children=[]) for info in infos}
    roots = []
    for info in infos:
        parent = nodes.get(info.parent_id) if info.parent_id is not None else None
        (parent["children"] if parent is not None else roots).append(nodes[info.id])
    return roots


def find_snapshot(vm_name, infos, name, snap_id):
    """Return the SnapshotInfo with *snap_id*, else the one at name path *name*, else ``None``."""
    if snap_id:
        for info in infos:
            if info.id == snap_id:
                return info
        if not name:
            return None
    paths = paths_by_id(infos)
    wanted = name.strip("/")
    if "/" in wanted:
        matches = [info for info in infos if paths[info.id] == wanted]
    else:
        matches = [info for info in infos if info.name == wanted]
    if len(matches) > 1:
        raise va_errors.AmbiguousName("snapshot", name, [m.id for m in matches])
    return matches[0] if matches else None


def main():
    argument_spec = dict(
        vm=dict(type="str", required=True),
        name=dict(type="str"),
        id=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent", "reverted"]),
        description=dict(type="str", default=""),
        memory=dict(type="bool", default=False),
        quiesce=dict(type="bool", default=False),
        children=dict(type="bool", default=False),
    )
    module = new_module(argument_spec, supports_check_mode=True, required_one_of=[("name", "id")])
    params = module.params
    state = params["state"]
    result = dict(changed=False)
    with hypervisor(module) as hv:
        vm = hv.vms.get(params["vm"])
        infos = [s.info for s in vm.snapshots.list()]
        paths = paths_by_id(infos)
        before = sorted(paths.values())
        after = list(before)
        found = find_snapshot(vm.name, infos, params["name"], params["id"])
        target_id = found.id if found is not None else None

        if state == "present" and found is None:
            if not params["name"]:
                module.fail_json(
                    msg=f"VM {vm.name!r} has no snapshot with the id {params['id']!r}; give name to take one"
                )
            parts = params["name"].strip("/").rpartition("/")
            parent_path, leaf = parts[0], parts[2]
            current = next((info for info in infos if info.is_current), None)
            current_path = paths[current.id] if current is not None else ""
            if parent_path and parent_path != current_path:
                module.fail_json(
                    msg=f"snapshot {params['name']!r} would be created under the current snapshot "
                    f"{current_path or '(none)'!r}, not under {parent_path!r}: revert to {parent_path!r} first"
                )
            result["changed"] = True
            after = sorted([*before, f"{current_path}/{leaf}" if current_path else leaf])
            if not module.check_mode:
                created = vm.snapshots.create(
                    leaf, params["description"], memory=params["memory"], quiesce=params["quiesce"]
                )
                target_id = created.id
        elif state == "absent" and found is not None:
            result["changed"] = True
            gone = paths[found.id]
            if params["children"]:
                after = [p for p in before if p != gone and not p.startswith(gone + "/")]
            else:
                parent = gone.rpartition("/")[0]
                after = sorted(
                    (parent + p[len(gone) :] if parent else p[len(gone) + 1 :]) if p.startswith(gone + "/") else p
                    for p in before
                    if p != gone
                )
            if not module.check_mode:
                vm.snapshots.get(found.id).delete(children=params["children"])
            target_id = None
        elif state == "reverted":
            if found is None:
                wanted = params["id"] or params["name"]
                module.fail_json(msg=f"VM {vm.name!r} has no snapshot {wanted!r} to revert to")
            result["changed"] = True
            if not module.check_mode:
                vm.snapshots.get(found.id).revert()

        infos = [s.info for s in vm.snapshots.list()]
        paths = paths_by_id(infos)
        result["tree"] = build_tree(infos)
        chosen = next((info for info in infos if info.id == target_id), None)
        if chosen is not None:
            result["snapshot"] = entry(chosen, paths)
    if module._diff:
        result["diff"] = dict(before=dict(snapshots=before), after=dict(snapshots=after))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
