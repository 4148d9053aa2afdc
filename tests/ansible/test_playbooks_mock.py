"""Real ``ansible-playbook`` runs of every module against the file-backed mock hypervisor.

Each playbook batches many tasks and asserts (ansible-playbook starts slowly),
and checks idempotency the way integration targets do: the same task twice,
``changed`` the first time and not the second.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import virtabstract

pytestmark = pytest.mark.timeout(240)


def _header(uri: str) -> str:
    """A play on localhost whose modules all get *uri* through the collection's action group."""
    return f"""
    - hosts: localhost
      gather_facts: false
      module_defaults:
        group/virtabstract.hypervisor.virtabstract:
          uri: "{uri}"
      tasks:
    """


LIFECYCLE = """
        - name: create and start web1
          virtabstract.hypervisor.vm:
            name: web1
            state: running
            cpus: 1
            memory: 512MiB
            guest_os: debian-12
            disks: [{size: 1GiB}]
            nics: [{network: default}]
            tags: [web, blue]
            wait_for_ip: true
            wait_timeout: 30
          register: create1
        - name: the same again
          virtabstract.hypervisor.vm:
            name: web1
            state: running
            cpus: 1
            memory: 512
            guest_os: debian-12
            disks: [{size: 1GiB}]
            nics: [{network: default}]
            tags: [blue, web]
          register: create2
        - ansible.builtin.assert:
            that:
              - create1 is changed
              - create1.actions == ['create', 'start']
              - create1.vm.state == 'running'
              - create1.vm.memory_mib == 512
              - create1.vm.tags == ['blue', 'web']
              - create1.ip_address is match('^192\\\\.168\\\\.')
              - create2 is not changed
              - create2.actions == []

        - name: grow memory live
          virtabstract.hypervisor.vm: {name: web1, memory: 1GiB, description: grown}
          register: grow1
        - ansible.builtin.assert:
            that:
              - grow1 is changed
              - grow1.actions == ['reconfigure']
              - grow1.changes | map(attribute='field') | sort == ['description', 'memory_mib']
              - grow1.changes | selectattr('field', 'eq', 'memory_mib') | map(attribute='mode') | first == 'live'
              - grow1.vm.memory_mib == 1024

        - name: shrinking memory needs a power-off, refused without allow_power_cycle
          virtabstract.hypervisor.vm: {name: web1, memory: 512}
          register: shrink_refused
          ignore_errors: true
        - name: shrink with a power cycle
          virtabstract.hypervisor.vm: {name: web1, memory: 512, allow_power_cycle: true, shutdown_timeout: 10}
          register: shrink
        - ansible.builtin.assert:
            that:
              - shrink_refused is failed
              - "'allow_power_cycle' in shrink_refused.msg"
              - "'memory_mib' in shrink_refused.msg"
              - "'Nothing was changed' in shrink_refused.msg"
              - shrink.changes[0].old == 1024
              - shrink is changed
              - shrink.actions == ['shutdown', 'reconfigure', 'start']
              - shrink.shutdown == 'graceful'
              - shrink.vm.memory_mib == 512
              - shrink.vm.state == 'running'

        - name: pause
          virtabstract.hypervisor.vm: {name: web1, state: paused}
          register: pause1
        - name: suspend
          virtabstract.hypervisor.vm: {name: web1, state: suspended}
          register: suspend1
        - name: running again (restores the saved state)
          virtabstract.hypervisor.vm: {name: web1, state: running}
          register: resume1
        - name: restarted always restarts
          virtabstract.hypervisor.vm: {name: web1, state: restarted}
          register: restart1
        - name: stop gracefully
          virtabstract.hypervisor.vm: {name: web1, state: stopped, shutdown_timeout: 10}
          register: stop1
        - name: stop again
          virtabstract.hypervisor.vm: {name: web1, state: stopped}
          register: stop2
        - ansible.builtin.assert:
            that:
              - pause1 is changed and pause1.actions == ['pause'] and pause1.vm.state == 'paused'
              - suspend1 is changed and suspend1.vm.state == 'suspended'
              - resume1 is changed and resume1.actions == ['start'] and resume1.vm.state == 'running'
              - restart1 is changed and restart1.actions == ['reboot']
              - stop1 is changed and stop1.actions == ['shutdown'] and stop1.vm.state == 'stopped'
              - stop2 is not changed

        - name: a second VM, stopped, found by id later
          virtabstract.hypervisor.vm: {name: db1, memory: 256, tags: [db], autostart: true}
          register: db1
        - name: by id, autostart off
          virtabstract.hypervisor.vm: {id: "{{ db1.vm.id }}", autostart: false}
          register: db1_autostart
        - ansible.builtin.assert:
            that:
              - db1 is changed and db1.actions == ['create'] and db1.vm.state == 'stopped'
              - db1_autostart is changed and db1_autostart.actions == ['set_autostart']
              - not db1_autostart.vm.autostart

        - name: bad memory size
          virtabstract.hypervisor.vm: {name: bad1, memory: lots}
          register: bad_memory
          ignore_errors: true
        - name: bad disk size
          virtabstract.hypervisor.vm: {name: bad2, disks: [{size: huge}]}
          register: bad_disk
          ignore_errors: true
        - name: bad memory on an existing VM fails too
          virtabstract.hypervisor.vm: {name: web1, memory: -5}
          register: bad_existing
          ignore_errors: true
        - name: a VM that does not exist, by id only
          virtabstract.hypervisor.vm: {id: 00000000-0000-0000-0000-000000000000}
          register: bad_id
          ignore_errors: true
        - ansible.builtin.assert:
            that:
              - bad_memory is failed and bad_memory.msg is match('^memory:') and bad_memory.field == 'memory'
              - "'lots' in bad_memory.msg"
              - bad_memory.error == 'SpecError'
              - bad_disk is failed and bad_disk.field == 'disks[0].size'
              - bad_existing is failed and bad_existing.field == 'memory'
              - bad_id is failed and 'without a name none can be created' in bad_id.msg

        - name: vm_info of all linux VMs
          virtabstract.hypervisor.vm_info: {os_family: linux}
          register: info_linux
        - name: vm_info of all VMs (the failures created nothing)
          virtabstract.hypervisor.vm_info:
          register: info_all
        - name: vm_info by id
          virtabstract.hypervisor.vm_info: {id: "{{ db1.vm.id }}"}
          register: info_id
        - name: host_info
          virtabstract.hypervisor.host_info:
          register: host
        - ansible.builtin.assert:
            that:
              - info_linux.vms | map(attribute='name') | list == ['web1']
              - info_all.vms | map(attribute='name') | list == ['web1', 'db1']
              - info_all is not changed
              - info_id.vms | map(attribute='name') | list == ['db1']
              - info_id.vms[0].ip_addresses == []
              - host.backend == 'mock'
              - host.host.cpu_count > 0
              - "'snapshots' in host.capabilities"
              - host.networks | map(attribute='name') | list is contains('default')

        - name: delete db1
          virtabstract.hypervisor.vm: {name: db1, state: absent}
          register: absent1
        - name: delete db1 again
          virtabstract.hypervisor.vm: {name: db1, state: absent}
          register: absent2
        - ansible.builtin.assert:
            that:
              - absent1 is changed and absent1.actions == ['delete'] and absent1.vm is not defined
              - absent2 is not changed
"""

SNAPSHOTS_AND_GUEST = """
        - name: snapshot base
          virtabstract.hypervisor.snapshot: {vm: web1, name: base, description: first}
          register: snap1
        - name: snapshot base again
          virtabstract.hypervisor.snapshot: {vm: web1, name: base}
          register: snap2
        - name: a child by its name path
          virtabstract.hypervisor.snapshot: {vm: web1, name: base/child}
          register: child1
        - name: the child by id
          virtabstract.hypervisor.snapshot: {vm: web1, id: "{{ child1.snapshot.id }}"}
          register: child3
        - name: a path whose parent is not the current snapshot
          virtabstract.hypervisor.snapshot: {vm: web1, name: other/child}
          register: bad_path
          ignore_errors: true
        - ansible.builtin.assert:
            that:
              - snap1 is changed and snap1.snapshot.name == 'base' and snap1.snapshot.description == 'first'
              - snap2 is not changed
              - child1 is changed and child1.snapshot.path == 'base/child'
              - child1.snapshot.parent_id == snap1.snapshot.id
              - child3 is not changed and child3.snapshot.path == 'base/child'
              - child1.tree | length == 1
              - child1.tree[0].name == 'base'
              - child1.tree[0].children | map(attribute='name') | list == ['child']
              - bad_path is failed and 'revert to' in bad_path.msg

        - name: write a file in the guest
          virtabstract.hypervisor.guest_file: {vm: web1, path: /tmp/motd, content: "hello from ansible\\n"}
          register: put1
        - name: write it again
          virtabstract.hypervisor.guest_file: {vm: web1, path: /tmp/motd, content: "hello from ansible\\n"}
          register: put2
        - name: copy a local file
          virtabstract.hypervisor.guest_file: {vm: web1, path: /tmp/local-copy, src: "{{ local_src }}"}
          register: put3
        - name: fetch it back
          virtabstract.hypervisor.guest_file: {vm: web1, path: /tmp/motd, dest: "{{ fetched }}"}
          register: get1
        - name: fetch it again
          virtabstract.hypervisor.guest_file: {vm: web1, path: /tmp/motd, dest: "{{ fetched }}"}
          register: get2
        - ansible.builtin.assert:
            that:
              - put1 is changed and put1.size == 19
              - put2 is not changed and put2.checksum == put1.checksum
              - put3 is changed
              - get1 is changed and get1.checksum == put1.checksum
              - get2 is not changed
              - lookup('file', fetched) == 'hello from ansible'

        - name: run a program
          virtabstract.hypervisor.guest_exec: {vm: web1, argv: [cat, /tmp/motd]}
          register: exec1
        - name: create a marker once
          virtabstract.hypervisor.guest_exec: {vm: web1, argv: [touch, /tmp/marker], creates: /tmp/marker}
          register: marker1
        - name: not again
          virtabstract.hypervisor.guest_exec: {vm: web1, argv: [touch, /tmp/marker], creates: /tmp/marker}
          register: marker2
        - name: a failing program fails the task
          virtabstract.hypervisor.guest_exec: {vm: web1, argv: [cat, /tmp/does-not-exist]}
          register: exec_fail
          ignore_errors: true
        - ansible.builtin.assert:
            that:
              - exec1 is changed and exec1.rc == 0 and exec1.stdout_lines == ['hello from ansible']
              - marker1 is changed and marker2 is not changed
              - "'exists' in marker2.msg"
              - exec_fail is failed and exec_fail.rc != 0 and '/tmp/does-not-exist' in exec_fail.stderr
              - exec_fail.msg == 'non-zero return code'

        - name: revert to base (the guest file goes away with it)
          virtabstract.hypervisor.snapshot: {vm: web1, name: base, state: reverted}
          register: revert1
        - name: remove base, its child moves up
          virtabstract.hypervisor.snapshot: {vm: web1, name: base, state: absent}
          register: drop1
        - name: remove base again
          virtabstract.hypervisor.snapshot: {vm: web1, name: base, state: absent}
          register: drop2
        - ansible.builtin.assert:
            that:
              - revert1 is changed
              - revert1.snapshot.is_current
              - drop1 is changed and drop1.tree | map(attribute='name') | list == ['child']
              - drop2 is not changed
"""


def test_vm_lifecycle_idempotency_and_errors(ansible_env, tmp_path: Path) -> None:
    lab = tmp_path / "lab.json"
    run = ansible_env.playbook(_header(f"mock://{lab}") + LIFECYCLE)
    run.check()
    assert "failed=0" in run.stdout
    recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)", run.stdout)
    assert recap is not None


def test_snapshots_and_guest_operations(ansible_env, tmp_path: Path) -> None:
    lab = tmp_path / "lab.json"
    local_src = tmp_path / "local.txt"
    local_src.write_text("local content\n", encoding="utf-8")
    fetched = tmp_path / "fetched.txt"
    with virtabstract.connect(f"mock://{lab}") as hv:
        hv.vms.create({"name": "web1", "memory": 256, "guest_os": "debian-12", "nics": [{}]}, start=True)
    run = ansible_env.playbook(
        _header(f"mock://{lab}") + SNAPSHOTS_AND_GUEST,
        "-e",
        f"local_src={local_src}",
        "-e",
        f"fetched={fetched}",
    )
    run.check()
    assert fetched.read_text(encoding="utf-8") == "hello from ansible\n"


CANARY = "canary-Pw-5f3e9a1c"
URL_CANARY = "canary-UrlPw-77d2b0"

CHECK_MODE = """
        - name: would create and start new1
          virtabstract.hypervisor.vm: {name: new1, state: running, cpus: 2, memory: 1GiB}
          register: c_create
        - name: would grow keep and stop it
          virtabstract.hypervisor.vm: {name: keep, state: stopped, memory: 1GiB, tags: [a, b]}
          register: c_update
        - name: would delete keep
          virtabstract.hypervisor.vm: {name: keep, state: absent}
          register: c_absent
        - name: would take a snapshot
          virtabstract.hypervisor.snapshot: {vm: keep, name: s1}
          register: c_snap
        - name: would write a guest file
          virtabstract.hypervisor.guest_file: {vm: keep, path: /tmp/motd, content: "new text\\n"}
          register: c_file
        - name: would run a program
          virtabstract.hypervisor.guest_exec: {vm: keep, argv: [touch, /tmp/x], creates: /tmp/x}
          register: c_exec
        - name: bad input fails in check mode too
          virtabstract.hypervisor.vm: {name: keep, memory: 12 parsecs}
          register: c_bad
          ignore_errors: true
        - name: a password in the URL is hidden as well
          virtabstract.hypervisor.host_info:
            uri: "mock://admin:@URL_CANARY@@@LAB@"
          register: c_host
        - name: nothing changed
          virtabstract.hypervisor.vm_info: {name: keep}
          register: c_info
        - ansible.builtin.assert:
            that:
              - c_create is changed and c_create.actions == ['create', 'start'] and c_create.vm is not defined
              - c_create.diff.before == {}
              - c_create.diff.after.memory_mib == 1024 and c_create.diff.after.state == 'running'
              - c_update is changed and c_update.actions == ['shutdown', 'reconfigure']
              - c_update.diff.before.memory_mib == 512 and c_update.diff.after.memory_mib == 1024
              - c_update.diff.before.state == 'running' and c_update.diff.after.state == 'stopped'
              - c_update.diff.after.tags == ['a', 'b']
              - c_absent is changed and c_absent.actions == ['power_off', 'delete']
              - c_absent.diff.after == {}
              - c_snap is changed and c_snap.tree == [] and c_snap.snapshot is not defined
              - c_snap.diff.after.snapshots == ['s1']
              - c_file is changed and c_file.diff.after == 'new text\\n'
              - c_exec is changed and c_exec.rc == 0
              - c_bad is failed and c_bad.field == 'memory'
              - c_host.uri is not search('@URL_CANARY@')
              - c_info.vms[0].state == 'running' and c_info.vms[0].memory_mib == 512
              - c_info.vms[0].tags == ['a']
"""


def test_check_mode_diff_and_no_password_leak(ansible_env, tmp_path: Path) -> None:
    """--check changes nothing (the lab file stays byte-identical), --diff shows before/after,
    and a password given to the modules never appears, even at -vvvv."""
    lab = tmp_path / "lab.json"
    with virtabstract.connect(f"mock://{lab}") as hv:
        hv.vms.create({"name": "keep", "memory": 512, "tags": ["a"], "nics": [{}]}, start=True)
    before = lab.read_bytes()
    header = _header(f"mock://{lab}").replace(
        f'uri: "mock://{lab}"', f'uri: "mock://{lab}"\n          password: "{CANARY}"'
    )
    run = ansible_env.playbook(
        header + CHECK_MODE.replace("@URL_CANARY@", URL_CANARY).replace("@LAB@", str(lab)), "--check", "--diff", "-vvvv"
    )
    run.check()
    assert lab.read_bytes() == before
    # the diff of the reconfiguration, as the default callback prints it
    assert re.search(r'^-\s+"memory_mib": 512,$', run.stdout, re.M), run.stdout
    assert re.search(r'^\+\s+"memory_mib": 1024,$', run.stdout, re.M)
    assert re.search(r'^\+\s+"state": "stopped",?$', run.stdout, re.M)
    assert "+new text" in run.stdout
    assert CANARY not in run.output
    assert URL_CANARY not in run.output
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in run.output


def test_readme_playbook_runs_and_is_idempotent(ansible_env, tmp_path: Path) -> None:
    """The complete playbook of ansible/README.md, copied as a user would, against the mock."""
    readme = (Path(__file__).resolve().parents[2] / "ansible" / "README.md").read_text(encoding="utf-8")
    playbook = re.search(r"## A complete playbook.*?```yaml\n(.*?)```", readme, re.S)
    assert playbook is not None
    lab = tmp_path / "lab.json"
    first = ansible_env.playbook(playbook.group(1), "-e", f"hypervisor_uri=mock://{lab}").check()
    assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=3\s", first.stdout), first.stdout
    assert "running web VMs: web1" in first.stdout
    second = ansible_env.playbook(playbook.group(1), "-e", f"hypervisor_uri=mock://{lab}").check()
    assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=0\s", second.stdout), second.stdout
