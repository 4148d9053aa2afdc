#!/usr/bin/python
# Copyright: virtabstract developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: copy a file into a VM's guest, or fetch one from it, through the guest agent."""

from __future__ import annotations

DOCUMENTATION = r"""
module: guest_file
short_description: Copy a file into a virtual machine's guest OS, or fetch one from it
version_added: 0.1.0
description:
  - Copies O(src) or O(content) to O(path) inside the guest, or fetches the guest's O(path) into the
    local file O(dest), through the guest agent (qemu-guest-agent, VMware Tools, Guest Additions).
  - Idempotent by content - the file is only written when its bytes differ.
  - "I(Local) means the host the module runs on, usually the controller
    (C(hosts: localhost) or C(delegate_to: localhost))."
author:
  - virtabstract developers (@virtabstract)
extends_documentation_fragment:
  - virtabstract.hypervisor.connection
attributes:
  check_mode:
    support: full
    description: Compares the contents and reports whether they differ, without writing.
  diff_mode:
    support: full
    description: Shows the text before and after for UTF-8 files up to 64 KiB.
options:
  vm:
    description:
      - The VM's name or id. It must be running with a guest agent.
    type: str
    required: true
  path:
    description:
      - The file's path inside the guest (its directory must exist).
    type: str
    required: true
  src:
    description:
      - A local file to copy to O(path) in the guest.
    type: path
  content:
    description:
      - Text to write to O(path) in the guest (as UTF-8), instead of O(src).
    type: str
  dest:
    description:
      - A local path to fetch the guest's O(path) into. Its directory must exist.
    type: path
  agent_timeout:
    description:
      - Seconds to wait for the guest agent to answer first. V(0) does not wait.
    type: int
    default: 60
notes:
  - Exactly one of O(src), O(content) (copy to the guest) and O(dest) (fetch from the guest) is required.
  - File modes and owners are not managed; guest agents do not expose them the same way on every hypervisor.
seealso:
  - module: virtabstract.hypervisor.guest_exec
"""

EXAMPLES = r"""
- name: Put a configuration file into the guest
  virtabstract.hypervisor.guest_file:
    uri: qemu:///system
    vm: web1
    path: /etc/motd
    content: "Managed by Ansible\n"

- name: Copy a local file into the guest
  virtabstract.hypervisor.guest_file:
    uri: qemu:///system
    vm: web1
    src: files/app.conf
    path: /etc/app.conf

- name: Fetch a log file from the guest
  virtabstract.hypervisor.guest_file:
    uri: qemu:///system
    vm: web1
    path: /var/log/app.log
    dest: /tmp/web1-app.log
"""

RETURN = r"""
direction:
  description: C(to_guest) for a copy, C(from_guest) for a fetch.
  returned: always
  type: str
  sample: to_guest
checksum:
  description: SHA-1 of the file's content after the run.
  returned: success
  type: str
  sample: 0b1d8f5e4b0d7f1b1e0c7a0d9f6c1b2a3c4d5e6f
size:
  description: Size of the content in bytes.
  returned: success
  type: int
  sample: 19
"""

import hashlib  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.common.text.converters import to_bytes  # noqa: E402
from ansible_collections.virtabstract.hypervisor.plugins.module_utils.common import (  # noqa: E402
    hypervisor,
    new_module,
    va_errors,
)

DIFF_LIMIT = 64 * 1024


def as_text(data):
    """The data as text for --diff, or None when it is binary or large."""
    if data is None:
        return ""
    if len(data) > DIFF_LIMIT:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_local(module, path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        module.fail_json(msg=f"cannot read {path}: {exc.strerror}")


def write_local(module, path, data):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        module.fail_json(msg=f"the directory of dest {path} does not exist")
    fd, tmp = tempfile.mkstemp(dir=module.tmpdir)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    module.atomic_move(tmp, os.path.abspath(path))


def main():
    argument_spec = dict(
        vm=dict(type="str", required=True),
        path=dict(type="str", required=True),
        src=dict(type="path"),
        content=dict(type="str"),
        dest=dict(type="path"),
        agent_timeout=dict(type="int", default=60),
    )
    module = new_module(
        argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("src", "content", "dest")],
        required_one_of=[("src", "content", "dest")],
    )
    params = module.params
    fetch = params["dest"] is not None
    result = dict(changed=False, direction="from_guest" if fetch else "to_guest")
    if not fetch:
        if params["src"] is not None:
            wanted = read_local(module, params["src"])
            if wanted is None:
                module.fail_json(msg=f"src {params['src']} does not exist", **result)
        else:
            wanted = to_bytes(params["content"], errors="surrogate_or_strict")
    with hypervisor(module) as hv:
        vm = hv.vms.get(params["vm"])
        if params["agent_timeout"] > 0:
            vm.guest.wait_ready(timeout=params["agent_timeout"])
        try:
            in_guest = vm.guest.read_file(params["path"])
        except va_errors.GuestFileNotFound:
            if fetch:
                raise
            in_guest = None
        if fetch:
            wanted = in_guest
            before = read_local(module, params["dest"])
        else:
            before = in_guest
        result["changed"] = before != wanted
        if result["changed"] and not module.check_mode and not fetch:
            vm.guest.write_file(params["path"], wanted)
    if result["changed"] and not module.check_mode and fetch:
        write_local(module, params["dest"], wanted)
    result["checksum"] = hashlib.sha1(wanted).hexdigest()  # noqa: S324 - a content checksum, like copy's
    result["size"] = len(wanted)
    if module._diff:
        old, new = as_text(before), as_text(wanted)
        where = params["dest"] if fetch else f"{params['vm']}:{params['path']}"
        if old is None or new is None:
            note = "(binary or larger than 64 KiB: not shown)\n"
            result["diff"] = dict(
                before_header=where,
                after_header=where,
                before=note,
                after=note if not result["changed"] else note + "(changed)\n",
            )
        else:
            result["diff"] = dict(before_header=where, after_header=where, before=old, after=new)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
