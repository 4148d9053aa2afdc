#!/usr/bin/python
# Copyright: virtabstract developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible module: run a program inside a VM's guest OS through its agent."""

from __future__ import annotations

DOCUMENTATION = r"""
module: guest_exec
short_description: Run a program inside a virtual machine's guest OS through the guest agent
version_added: 0.1.0
description:
  - Runs a program in the guest of a running VM through its agent (qemu-guest-agent, VMware Tools,
    VirtualBox Guest Additions) - no network access to the guest and no SSH needed.
  - Behaves like M(ansible.builtin.command) - the program runs without a shell (pass V([sh, -c, "..."]) for
    one), the task reports a change whenever the program runs, and fails on a non-zero exit code.
    O(creates) and O(removes) skip the run based on paths in the guest.
author:
  - virtabstract developers (@virtabstract)
extends_documentation_fragment:
  - virtabstract.hypervisor.connection
attributes:
  check_mode:
    support: partial
    description: Can run in check mode and predict whether the program would run.
    details:
      - The program is never run in check mode. With O(creates) or O(removes) the module reports whether it
        would run; without them the task is skipped, like M(ansible.builtin.command).
  diff_mode:
    support: none
    description: The effect of a program cannot be predicted.
options:
  vm:
    description:
      - The VM's name or id. It must be running with a guest agent.
    type: str
    required: true
  argv:
    description:
      - The program and its arguments, as a list. No shell expansion is done.
    type: list
    elements: str
    required: true
  stdin:
    description:
      - Text to send to the program's standard input.
    type: str
  env:
    description:
      - Environment variables to set for the program.
    type: dict
  timeout:
    description:
      - Seconds the program may run before the task fails.
    type: int
    default: 30
  creates:
    description:
      - A path in the guest. When it exists, the program is not run.
    type: str
  removes:
    description:
      - A path in the guest. When it does not exist, the program is not run.
    type: str
  agent_timeout:
    description:
      - Seconds to wait for the guest agent to answer before running the program (for example right
        after the VM was started). V(0) does not wait.
    type: int
    default: 60
notes:
  - Existence checks for O(creates) and O(removes) read the path through the agent; a directory counts
    as existing.
seealso:
  - module: virtabstract.hypervisor.guest_file
  - module: ansible.builtin.command
"""

EXAMPLES = r"""
- name: Ask the guest who it is
  virtabstract.hypervisor.guest_exec:
    uri: qemu:///system
    vm: web1
    argv: [uname, -a]
  register: uname
  changed_when: false

- name: Initialise the database once
  virtabstract.hypervisor.guest_exec:
    uri: qemu:///system
    vm: db1
    argv: [sh, -c, "initdb -D /var/lib/pg && touch /var/lib/pg/.initialised"]
    creates: /var/lib/pg/.initialised
    timeout: 300

- name: Run a PowerShell command in a Windows guest
  virtabstract.hypervisor.guest_exec:
    uri: esx://esx1.example.com/
    username: root
    password: "{{ vault_esx_password }}"
    vm: win1
    argv: [powershell.exe, -NoProfile, -Command, Get-Service]
"""

RETURN = r"""
rc:
  description: The program's exit code (0 when skipped).
  returned: always
  type: int
  sample: 0
stdout:
  description: Standard output.
  returned: always
  type: str
  sample: "Linux web1 6.1.0-18-cloud-amd64 #1 SMP x86_64 GNU/Linux"
stderr:
  description: Standard error.
  returned: always
  type: str
  sample: ""
stdout_lines:
  description: RV(stdout) split into lines.
  returned: always
  type: list
  elements: str
  sample: ["Linux web1 6.1.0-18-cloud-amd64 #1 SMP x86_64 GNU/Linux"]
stderr_lines:
  description: RV(stderr) split into lines.
  returned: always
  type: list
  elements: str
  sample: []
cmd:
  description: The program and arguments as run.
  returned: always
  type: list
  elements: str
  sample: [uname, -a]
msg:
  description: Why the program was not run, or C(non-zero return code).
  returned: when skipped or failed
  type: str
  sample: "Did not run command since '/var/lib/pg/.initialised' exists"
"""

from ansible_collections.virtabstract.hypervisor.plugins.module_utils.common import (  # noqa: E402
    hypervisor,
    new_module,
    va_errors,
)


def guest_path_exists(vm, path):
    """True when *path* exists in the guest (a directory counts)."""
    try:
        vm.guest.read_file(path)
    except va_errors.GuestFileNotFound:
        return False
    except (va_errors.GuestAgentUnavailable, va_errors.UnsupportedOperation):
        raise
    except va_errors.GuestError:
        return True
    return True


def main():
    argument_spec = dict(
        vm=dict(type="str", required=True),
        argv=dict(type="list", elements="str", required=True),
        stdin=dict(type="str"),
        env=dict(type="dict"),
        timeout=dict(type="int", default=30),
        creates=dict(type="str"),
        removes=dict(type="str"),
        agent_timeout=dict(type="int", default=60),
    )
    module = new_module(argument_spec, supports_check_mode=True)
    params = module.params
    argv = params["argv"]
    result = dict(changed=False, rc=0, stdout="", stderr="", stdout_lines=[], stderr_lines=[], cmd=argv)
    shoulda = "Would" if module.check_mode else "Did"
    with hypervisor(module) as hv:
        vm = hv.vms.get(params["vm"])
        if params["agent_timeout"] > 0:
            vm.guest.wait_ready(timeout=params["agent_timeout"])
        if params["creates"] and guest_path_exists(vm, params["creates"]):
            result["msg"] = f"{shoulda} not run command since {params['creates']!r} exists"
            module.exit_json(**result)
        if params["removes"] and not guest_path_exists(vm, params["removes"]):
            result["msg"] = f"{shoulda} not run command since {params['removes']!r} does not exist"
            module.exit_json(**result)
        if module.check_mode:
            result["msg"] = "Command would have run if not in check mode"
            if params["creates"] is None and params["removes"] is None:
                result["skipped"] = True
            else:
                result["changed"] = True
            module.exit_json(**result)
        env = {str(k): str(v) for k, v in (params["env"] or {}).items()}
        outcome = vm.guest.exec(argv, timeout=params["timeout"], stdin=params["stdin"], env=env)
    result.update(
        changed=True,
        rc=outcome.exit_code,
        stdout=outcome.stdout,
        stderr=outcome.stderr,
        stdout_lines=outcome.stdout.splitlines(),
        stderr_lines=outcome.stderr.splitlines(),
    )
    if outcome.exit_code != 0:
        result["msg"] = "non-zero return code"
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
