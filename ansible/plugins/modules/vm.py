#!/usr/bin/python
# Copyright: virtabstract developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: create, configure, power and delete a VM on any virtabstract hypervisor."""

from __future__ import annotations

DOCUMENTATION = r"""
module: vm
short_description: Create, reconfigure, power and delete a virtual machine on KVM, ESXi or VirtualBox
version_added: 0.1.0
description:
  - Makes a virtual machine match the options given, on any hypervisor virtabstract supports,
    with the same options and the same behaviour on every one.
  - Creates the VM from the VMSpec options when it does not exist, changes CPUs, memory, description,
    tags and autostart of an existing one, and brings it to the power state O(state) asks for.
  - Idempotent - a second run with the same options reports no change (except O(state=restarted)).
  - Check mode reports what would change without changing anything (the reconfiguration is planned with
    the library's dry run). C(--diff) shows the managed fields before and after.
author:
  - virtabstract developers (@virtabstract)
extends_documentation_fragment:
  - virtabstract.hypervisor.connection
  - virtabstract.hypervisor.vm_spec
attributes:
  check_mode:
    support: full
    description: Predicts every action, including reconfiguration plans, without changing anything.
  diff_mode:
    support: full
    description: Shows the managed fields (name, state, cpus, memory_mib, description, tags, autostart, guest_os).
options:
  name:
    description:
      - The VM's name. Required to create a VM.
      - Names need not be unique on every hypervisor; when several VMs share it the module fails and lists
        their ids, so give O(id) instead.
    type: str
  id:
    description:
      - The VM's id on the hypervisor (libvirt UUID, vSphere instance UUID, VirtualBox machine id).
      - Takes precedence over O(name) to find the VM.
    type: str
  state:
    description:
      - V(present) - the VM exists with the given configuration; its power state is left as it is
        (a new VM stays stopped).
      - V(running) - exists and runs (a paused VM is resumed, a suspended one restored).
      - V(stopped) - exists and is powered off. A running VM is shut down gracefully and the module waits
        O(shutdown_timeout) seconds; with O(force=true) it then powers the VM off, otherwise it fails.
      - V(paused) - exists and its execution is frozen in memory.
      - V(suspended) - exists with its memory saved to disk and no process.
      - V(restarted) - exists and is restarted. A running guest is rebooted gracefully (with O(force=true),
        reset). A VM that is not running is started. Always reports a change.
      - V(absent) - the VM does not exist. A VM that is not stopped is powered off first (hard).
    type: str
    choices: [present, absent, running, stopped, paused, suspended, restarted]
    default: present
  allow_power_cycle:
    description:
      - Some changes cannot be made while the VM runs (for example removing CPUs or memory on most
        hypervisors). Without this option the module then fails and changes nothing.
      - With V(true), the module shuts the VM down (like O(state=stopped), honouring O(shutdown_timeout) and
        O(force)), applies the change and brings the VM back to its previous or requested power state.
    type: bool
    default: false
  shutdown_timeout:
    description:
      - Seconds to wait for a graceful shutdown before O(force) applies.
    type: int
    default: 120
  force:
    description:
      - Power the VM off when a graceful shutdown does not finish within O(shutdown_timeout), and
        power off a paused VM directly instead of resuming it to shut it down.
      - With O(state=restarted), reset the VM instead of asking the guest to reboot.
    type: bool
    default: false
  delete_disks:
    description:
      - With O(state=absent), also delete the VM's disks. With V(false) the disk images are kept.
    type: bool
    default: true
  wait_for_ip:
    description:
      - After a run that leaves the VM running, wait until the guest reports a routable IPv4 address
        and return it as RV(ip_address). Needs a guest agent or a DHCP lease the hypervisor knows.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds O(wait_for_ip) waits.
    type: int
    default: 300
notes:
  - Only O(cpus), O(memory), O(description), O(tags) and O(autostart) are changed on an existing VM.
    The other VMSpec options are used when the VM is created; to change disks or NICs later, recreate the VM.
seealso:
  - module: virtabstract.hypervisor.vm_info
  - module: virtabstract.hypervisor.snapshot
"""

EXAMPLES = r"""
- name: Create and start a VM (KVM through libvirt)
  virtabstract.hypervisor.vm:
    uri: qemu:///system
    name: web1
    state: running
    cpus: 2
    memory: 2GiB
    guest_os: ubuntu-22.04
    disks:
      - size: 20GiB
    nics:
      - network: default
    tags: [web, production]
    wait_for_ip: true
  register: web1

- name: Show its address
  ansible.builtin.debug:
    msg: "web1 is at {{ web1.ip_address }}"

- name: Grow it to 4 CPUs and 4 GiB, live where the hypervisor can, else with a restart
  virtabstract.hypervisor.vm:
    uri: esx://esx1.example.com/
    username: root
    password: "{{ vault_esx_password }}"
    name: web1
    cpus: 4
    memory: 4GiB
    allow_power_cycle: true

- name: Shut down gracefully, power off after 60 seconds
  virtabstract.hypervisor.vm:
    uri: vbox:///session
    name: build-agent
    state: stopped
    shutdown_timeout: 60
    force: true

- name: Delete a VM but keep its disks
  virtabstract.hypervisor.vm:
    uri: qemu:///system
    name: old-vm
    state: absent
    delete_disks: false
"""

RETURN = r"""
vm:
  description:
    - The VM as the hypervisor reports it after the run (the library's VMInfo).
    - Not returned when the VM is absent, or would only be created in check mode.
  returned: when the VM exists
  type: dict
  sample:
    id: 7b0c6a53-6b6e-4f21-9b0e-0b7f6f0a9c11
    name: web1
    state: running
    native_state: running
    cpus: 2
    memory_mib: 2048
    guest_os: ubuntu-22.04
    guest_os_native: http://ubuntu.com/ubuntu/22.04
    disks: [{id: vda, size_mib: 20480, path: /var/lib/libvirt/images/web1.qcow2, storage: default, bus: virtio,
             format: qcow2, thin: true, backing: ""}]
    nics: [{id: "52:54:00:6b:3c:01", mac: "52:54:00:6b:3c:01", network: default, kind: network, model: virtio,
            connected: true}]
    description: ""
    tags: [production, web]
    firmware: bios
    autostart: false
    boot_order: [disk]
    cdrom: null
    backend: kvm
actions:
  description:
    - The steps taken (or, in check mode, that would be taken), in order. Empty when nothing changed.
    - Steps are C(create), C(reconfigure), C(set_autostart), C(start), C(shutdown), C(power_off), C(pause),
      C(resume), C(suspend), C(reboot), C(reset), C(wait_stopped) and C(delete).
  returned: always
  type: list
  elements: str
  sample: [create, start]
changes:
  description:
    - The reconfiguration plan - one entry per field that differs, with how it is (or would be) applied.
    - C(mode) is C(offline) (the VM is off), C(live) (applied to the running VM) or C(needs_power_off).
  returned: always
  type: list
  elements: dict
  sample: [{field: memory_mib, old: 2048, new: 4096, mode: live}]
ip_address:
  description: The guest's IPv4 address found by O(wait_for_ip).
  returned: when O(wait_for_ip=true), the VM runs and it is not check mode
  type: str
  sample: 192.168.122.17
shutdown:
  description: How a shutdown went - C(graceful), C(forced) (escalated to a power-off) or C(already_stopped).
  returned: when the module shut the VM down
  type: str
  sample: graceful
"""

from ansible_collections.virtabstract.hypervisor.plugins.module_utils.common import (  # noqa: E402
    find_vm,
    hypervisor,
    new_module,
    to_data,
    va_errors,
    virtabstract,
    vm_summary,
)
from ansible_collections.virtabstract.hypervisor.plugins.module_utils.spec import (  # noqa: E402
    RECONFIGURABLE,
    spec_argument_spec,
    spec_params,
)

STATES = ("present", "absent", "running", "stopped", "paused", "suspended", "restarted")
SETTLED = ("stopped", "running", "paused", "suspended", "crashed")


class VmModule:
    """Plans the steps from the VM's current state to the requested one, then runs them unless in check mode."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.actions = []
        self.result = dict(changed=False, actions=self.actions, changes=[])

    # -- planning -----------------------------------------------------------------------

    def stop_steps(self, state):
        """Steps that bring a VM in *state* to stopped (graceful, escalating per ``force``)."""
        force = self.params["force"]
        return {
            "stopped": [],
            "running": ["shutdown"],
            "paused": ["power_off"] if force else ["resume", "shutdown"],
            "suspended": ["start", "shutdown"],
            "crashed": ["power_off"],
            "stopping": ["wait_stopped"],
        }[state]

    def power_steps(self, state, target):
        """Steps from the settled *state* to the requested *target* state."""
        if target == "present":
            return []
        if state == "stopping":
            return ["wait_stopped", *self.power_steps("stopped", target)]
        if target == "stopped":
            return self.stop_steps(state)
        not_running = state in ("stopped", "suspended", "crashed")
        if target == "running":
            return [] if state == "running" else ["resume"] if state == "paused" else ["start"]
        if target == "paused":
            return [] if state == "paused" else ["pause"] if state == "running" else ["start", "pause"]
        if target == "suspended":
            if state == "suspended":
                return []
            return ["suspend"] if state in ("running", "paused") else ["start", "suspend"]
        # restarted
        if not_running:
            return ["start"]
        restart = "reset" if self.params["force"] else "reboot"
        return [restart] if state == "running" else ["resume", restart]

    @staticmethod
    def predicted_state(state, target):
        """The power state after the steps towards *target*."""
        if target == "present":
            return state
        return "running" if target == "restarted" else target

    # -- running ------------------------------------------------------------------------

    def run_steps(self, vm, steps, reconfigure_args=None):
        """Record *steps* and, unless in check mode, run them."""
        for step in steps:
            self.actions.append(step)
            if self.check_mode:
                continue
            if step == "shutdown":
                self.shutdown(vm)
            elif step == "wait_stopped":
                self.wait_stopped(vm)
            elif step == "reconfigure":
                plan = vm.reconfigure(**reconfigure_args)
                self.result["changes"] = to_data(list(plan.changes))
            elif step == "set_autostart":
                vm.set_autostart(self.params["autostart"])
            elif step == "delete":
                vm.delete(disks=self.params["delete_disks"])
            else:
                getattr(vm, step)()

    def shutdown(self, vm):
        timeout = self.params["shutdown_timeout"]
        try:
            outcome = vm.shutdown(timeout=timeout, force=self.params["force"])
        except va_errors.OperationTimeout:
            self.fail(
                f"VM {vm.name!r} did not shut down within shutdown_timeout={timeout} seconds; "
                "set force: true to power it off after the timeout, or raise shutdown_timeout"
            )
        self.result["shutdown"] = outcome.stage

    def wait_stopped(self, vm):
        try:
            vm.wait_for_state("stopped", timeout=self.params["shutdown_timeout"])
        except va_errors.OperationTimeout:
            if not self.params["force"]:
                raise
            vm.power_off()

    def fail(self, msg, **extra):
        self.module.fail_json(msg=msg, **dict(self.result, **extra))

    # -- the states ---------------------------------------------------------------------

    def settled_state(self, vm, info):
        state = str(info.state)
        if state not in SETTLED and state != "stopping":
            self.fail(
                f"VM {info.name!r} is {state}; the module acts on VMs that are stopped, running, paused, "
                "suspended or crashed - run it again when the transition has finished"
            )
        return state

    def absent(self, vm):
        if vm is None:
            return {}, {}
        info = vm.info()
        state = self.settled_state(vm, info)
        steps = {
            "stopped": [],
            "running": ["power_off"],
            "paused": ["power_off"],
            "crashed": ["power_off"],
            "suspended": ["start", "power_off"],
            "stopping": ["wait_stopped"],
        }[state]
        self.run_steps(vm, [*steps, "delete"])
        return vm_summary(info), {}

    def create(self, hv, fields):
        params = self.params
        if not params["name"]:
            self.fail(f"no VM has the id {params['id']!r}, and without a name none can be created")
        spec = virtabstract.VMSpec.from_dict(dict(fields, name=params["name"]))
        self.actions.append("create")
        target = params["state"]
        steps = self.power_steps("stopped", target)
        predicted = dict(
            name=spec.name,
            state=self.predicted_state("stopped", target),
            cpus=spec.cpus,
            memory_mib=spec.memory_mib,
            description=spec.description,
            tags=list(spec.tags),
            autostart=spec.autostart,
            guest_os=spec.guest_os,
        )
        if self.check_mode:
            self.actions.extend(steps)
            return {}, predicted
        vm = hv.vms.create(spec)
        self.run_steps(vm, steps)
        return {}, self.finish(vm)

    def update(self, vm, fields):
        params = self.params
        info = vm.info()
        # Validate every given field with the library's rules, even those an existing VM does not use.
        spec = virtabstract.VMSpec.from_dict(dict(fields, name=info.name))
        self.warn_differences(info, spec, fields)
        state = self.settled_state(vm, info)
        target = params["state"]
        args = {key: fields[key] for key in RECONFIGURABLE if key in fields}
        plan = vm.reconfigure(dry_run=True, **args) if args else None
        if plan is not None:
            self.result["changes"] = to_data(list(plan.changes))
        autostart = ["set_autostart"] if spec.autostart != info.autostart and "autostart" in fields else []
        reconfigure = ["reconfigure"] if plan is not None and plan.changed else []
        if reconfigure and target == "stopped":
            steps = [*self.stop_steps(state), *reconfigure, *autostart]
        elif plan is not None and plan.needs_power_off and state not in ("stopped", "crashed"):
            if not params["allow_power_cycle"]:
                blocked = ", ".join(c.field for c in plan.needs_power_off)
                self.fail(
                    f"changing {blocked} of VM {info.name!r} needs a power-off while it is {state}: "
                    "set allow_power_cycle: true to let the module shut it down, apply the change and "
                    "start it again, or use state: stopped. Nothing was changed."
                )
            back_to = target if target not in ("present", "restarted") else state
            if target == "restarted":
                back_to = "running"
            steps = [*self.stop_steps(state), *reconfigure, *autostart, *self.power_steps("stopped", back_to)]
        else:
            steps = [*reconfigure, *autostart, *self.power_steps(state, target)]
        before = vm_summary(info)
        if self.check_mode:
            predicted = dict(before, state=self.predicted_state(state, target))
            if "cpus" in args:
                predicted["cpus"] = spec.cpus
            if "memory" in args:
                predicted["memory_mib"] = spec.memory_mib
            if "description" in args:
                predicted["description"] = spec.description
            if "tags" in args:
                predicted["tags"] = list(spec.tags)
            if "autostart" in fields:
                predicted["autostart"] = spec.autostart
            self.actions.extend(steps)
            return before, predicted
        self.run_steps(vm, steps, args)
        return before, self.finish(vm)

    def warn_differences(self, info, spec, fields):
        if self.params["name"] and self.params["id"] and self.params["name"] != info.name:
            self.module.warn(f"VM {info.id} is named {info.name!r}, not {self.params['name']!r}: it is not renamed")
        if "guest_os" in fields and info.guest_os is not None and info.guest_os != spec.guest_os:
            self.module.warn(
                f"VM {info.name!r} has guest_os {info.guest_os!r}, not {spec.guest_os!r}: "
                "guest_os is only used when a VM is created"
            )

    def finish(self, vm):
        info = vm.info()
        self.result["vm"] = to_data(info)
        if self.params["wait_for_ip"] and str(info.state) == "running":
            self.result["ip_address"] = vm.wait_for_ip(timeout=self.params["wait_timeout"])
        return vm_summary(info)

    def run(self):
        params = self.params
        fields = spec_params(params)
        with hypervisor(self.module) as hv:
            vm = find_vm(hv, params["name"], params["id"])
            if params["state"] == "absent":
                before, after = self.absent(vm)
            elif vm is None:
                before, after = self.create(hv, fields)
            else:
                before, after = self.update(vm, fields)
        self.result["changed"] = bool(self.actions)
        if self.module._diff:
            self.result["diff"] = dict(before=before, after=after)
        self.module.exit_json(**self.result)


def main():
    argument_spec = dict(
        name=dict(type="str"),
        id=dict(type="str"),
        state=dict(type="str", default="present", choices=list(STATES)),
        allow_power_cycle=dict(type="bool", default=False),
        shutdown_timeout=dict(type="int", default=120),
        force=dict(type="bool", default=False),
        delete_disks=dict(type="bool", default=True),
        wait_for_ip=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=300),
    )
    argument_spec.update(spec_argument_spec())
    module = new_module(argument_spec, supports_check_mode=True, required_one_of=[("name", "id")])
    VmModule(module).run()


if __name__ == "__main__":
    main()
