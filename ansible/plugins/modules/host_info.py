#!/usr/bin/python
# Copyright: virtabstract developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: read the hypervisor host, its capabilities, networks and storage."""

from __future__ import annotations

DOCUMENTATION = r"""
module: host_info
short_description: Read a hypervisor host - hardware, hypervisor version, capabilities, networks, storage
version_added: 0.1.0
description:
  - Returns what the connection knows about the host that runs the hypervisor, what the connection
    can do, and the networks and storage pools or datastores VMs can use.
  - Never changes anything.
author:
  - virtabstract developers (@virtabstract)
extends_documentation_fragment:
  - virtabstract.hypervisor.connection
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to show.
options: {}
seealso:
  - module: virtabstract.hypervisor.vm_info
"""

EXAMPLES = r"""
- name: What is this hypervisor?
  virtabstract.hypervisor.host_info:
    uri: qemu:///system
  register: host

- name: Snapshots with memory only where the hypervisor can take them
  ansible.builtin.debug:
    msg: "{{ host.host.hypervisor }} {{ host.host.version }} can snapshot memory"
  when: "'snapshot_memory' in host.capabilities"
"""

RETURN = r"""
host:
  description: The host and hypervisor (the library's HostInfo).
  returned: always
  type: dict
  contains:
    hostname:
      description: Host name.
      type: str
      sample: kvm1.example.com
    os_family:
      description: The host OS family (V(linux), V(windows), V(esxi), V(macos), ...).
      type: str
      sample: linux
    cpu_count:
      description: Logical CPUs.
      type: int
      sample: 16
    memory_mib:
      description: Memory in MiB.
      type: int
      sample: 65536
    hypervisor:
      description: Product name.
      type: str
      sample: QEMU
    version:
      description: Hypervisor version.
      type: str
      sample: 8.0.2
    backend:
      description: The virtabstract backend.
      type: str
      sample: kvm
backend:
  description: The virtabstract backend serving the connection.
  returned: always
  type: str
  sample: kvm
uri:
  description: The connection URL, with any password masked.
  returned: always
  type: str
  sample: qemu:///system
capabilities:
  description: What this connection can do, sorted (for example C(create), C(snapshots), C(guest_exec)).
  returned: always
  type: list
  elements: str
  sample: [create, delete, guest_exec, pause, snapshots, start]
networks:
  description: Networks VMs can attach to (name, id, kind, active, bridge, cidr); empty when not supported.
  returned: always
  type: list
  elements: dict
  sample: [{name: default, id: default, kind: nat, active: true, bridge: virbr0, cidr: 192.168.122.0/24}]
storage:
  description:
    - Storage pools or datastores (name, id, kind, capacity_mib, free_mib, path, active); empty when not supported.
  returned: always
  type: list
  elements: dict
  sample: [{name: default, id: default, kind: dir, capacity_mib: 102400, free_mib: 51200,
            path: /var/lib/libvirt/images, active: true}]
"""

from ansible_collections.virtabstract.hypervisor.plugins.module_utils.common import (  # noqa: E402
    hypervisor,
    new_module,
    to_data,
    va_errors,
)


def main():
    module = new_module({}, supports_check_mode=True)
    with hypervisor(module) as hv:
        result = dict(
            changed=False,
            host=to_data(hv.host),
            backend=hv.backend_name,
            uri=str(hv.url),
            capabilities=sorted(str(c) for c in hv.capabilities),
        )
        for key, read in (("networks", hv.networks), ("storage", hv.storage)):
            try:
                result[key] = to_data(read())
            except va_errors.UnsupportedOperation:
                result[key] = []
    module.exit_json(**result)


if __name__ == "__main__":
    main()
