#!/usr/bin/python
# Copyright: virtabstract developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: read one VM or a filtered list of VMs, with their guest IP addresses."""

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_info
short_description: Read virtual machines of a hypervisor, with their guest IP addresses
version_added: 0.1.0
description:
  - Returns one VM (by O(id)) or every VM matching all the filters given, on any hypervisor virtabstract
    supports, with the guest's IP addresses for running VMs.
  - Never changes anything. Finding no VM is not an error; RV(vms) is then empty.
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
options:
  id:
    description:
      - Return only the VM with this id. The other filters then do not apply.
    type: str
  name:
    description:
      - Return VMs whose name matches; shell-style wildcards (V(web*), V(db-?)) are allowed.
    type: str
  state:
    description:
      - Return only VMs in this power state.
    type: str
    choices: [stopped, starting, running, paused, stopping, saving, suspended, restoring, crashed, unknown]
  tag:
    description:
      - Return only VMs carrying this tag.
    type: str
  guest_os:
    description:
      - Return only VMs with this guest OS catalog id (for example V(debian-12)).
    type: str
  os_family:
    description:
      - Return only VMs whose guest OS belongs to this family.
    type: str
    choices: [linux, windows, bsd, macos, esxi, solaris, other]
  guest_ips:
    description:
      - Ask the guest agent (or the DHCP leases) of each running VM for its IP addresses.
      - Costs one call per running VM; set to V(false) for large inventories when the addresses are not needed.
    type: bool
    default: true
seealso:
  - module: virtabstract.hypervisor.vm
  - plugin: virtabstract.hypervisor.virtabstract
    plugin_type: inventory
"""

EXAMPLES = r"""
- name: Every running VM tagged web, with addresses
  virtabstract.hypervisor.vm_info:
    uri: qemu:///system
    state: running
    tag: web
  register: web_vms

- name: Print name and first address of each
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.ip_addresses | map(attribute='address') | first | default('no address') }}"
  loop: "{{ web_vms.vms }}"

- name: One VM by id
  virtabstract.hypervisor.vm_info:
    uri: esx://esx1.example.com/
    username: readonly
    password: "{{ vault_esx_password }}"
    id: 564d2e5c-1b2a-7b3c-8d4e-5f6a7b8c9d0e
"""

RETURN = r"""
vms:
  description:
    - The matching VMs, in the hypervisor's order, each as the library's VMInfo plus C(ip_addresses).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The VM's stable id on the hypervisor.
      type: str
      sample: 7b0c6a53-6b6e-4f21-9b0e-0b7f6f0a9c11
    name:
      description: Its name.
      type: str
      sample: web1
    state:
      description: The normalised power state.
      type: str
      sample: running
    native_state:
      description: The hypervisor's own state (and reason).
      type: str
      sample: running
    cpus:
      description: Virtual CPUs.
      type: int
      sample: 2
    memory_mib:
      description: Memory in MiB.
      type: int
      sample: 2048
    guest_os:
      description: Guest OS catalog id, or null when the hypervisor's id has no catalog entry.
      type: str
      sample: ubuntu-22.04
    tags:
      description: The VM's tags.
      type: list
      elements: str
      sample: [web]
    disks:
      description: Attached disks (id, size_mib, path, storage, bus, format, thin, backing).
      type: list
      elements: dict
    nics:
      description: Network interfaces (id, mac, network, kind, model, connected).
      type: list
      elements: dict
    backend:
      description: The virtabstract backend (V(kvm), V(esxi), V(vbox), V(mock)).
      type: str
      sample: kvm
    ip_addresses:
      description:
        - The guest's addresses without loopback ones; empty when the VM is not running, has no agent,
          or O(guest_ips=false).
        - C(source) says where each was learnt - C(agent), C(dhcp) or C(arp).
      type: list
      elements: dict
      sample: [{address: 192.168.122.17, prefix: 24, interface: eth0, mac: "52:54:00:6b:3c:01", source: agent,
                version: 4}]
"""

from ansible_collections.virtabstract.hypervisor.plugins.module_utils.common import (  # noqa: E402
    hypervisor,
    ip_addresses,
    new_module,
    to_data,
    va_errors,
)


def main():
    argument_spec = dict(
        id=dict(type="str"),
        name=dict(type="str"),
        state=dict(
            type="str",
            choices=[
                "stopped",
                "starting",
                "running",
                "paused",
                "stopping",
                "saving",
                "suspended",
                "restoring",
                "crashed",
                "unknown",
            ],
        ),
        tag=dict(type="str"),
        guest_os=dict(type="str"),
        os_family=dict(type="str", choices=["linux", "windows", "bsd", "macos", "esxi", "solaris", "other"]),
        guest_ips=dict(type="bool", default=True),
    )
    module = new_module(argument_spec, supports_check_mode=True)
    params = module.params
    with hypervisor(module) as hv:
        if params["id"]:
            try:
                found = [hv.vms.get(params["id"])]
            except va_errors.VMNotFound:
                found = []
        else:
            found = hv.vms.find(
                name=params["name"],
                state=params["state"],
                tag=params["tag"],
                guest_os=params["guest_os"],
                os_family=params["os_family"],
            )
        vms = []
        for vm in found:
            info = vm.info()
            entry = to_data(info)
            entry["ip_addresses"] = ip_addresses(vm, info.state) if params["guest_ips"] else []
            vms.append(entry)
    module.exit_json(changed=False, vms=vms)


if __name__ == "__main__":
    main()
