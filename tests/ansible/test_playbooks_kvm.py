"""Real ``ansible-playbook`` runs against ``qemu:///system`` on a real libvirtd (QEMU TCG).

Skips with the reason when the kvm backend (virtabstract-kvm, libvirt-python) or
libvirtd is unavailable, or libvirtd does not answer. Everything is named ``vatest-ansible-…``
and removed before and after by ``tests.infra.libvirt.cleanup_prefixed``; ``virsh`` cross-checks what the modules did.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PREFIX = "vatest-ansible-"
"""Only VMs with this prefix are cleaned up, so that concurrent KVM tests of others are left alone."""
PROBE_TIMEOUT = 15

pytestmark = [pytest.mark.libvirtd, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def kvm() -> Iterator[dict[str, Any]]:
    pytest.importorskip("virtabstract_kvm", reason="the kvm backend (pip install -e backends/kvm) is not installed")
    pytest.importorskip("libvirt", reason="libvirt-python is not installed")
    infra = pytest.importorskip("tests.infra.libvirt")
    ok, why = infra.libvirt_available()
    if not ok:
        pytest.skip(f"libvirtd is unavailable: {why}")
    try:
        uri = infra.ensure_libvirtd()
    except infra.LibvirtUnavailable as exc:
        pytest.skip(f"libvirtd is unavailable: {exc}")
    probe = "import libvirt, sys; libvirt.open(sys.argv[1]).getCapabilities()"
    try:
        subprocess.run([sys.executable, "-c", probe, uri], check=True, capture_output=True, timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.skip(f"libvirtd at {uri} does not answer getCapabilities within {PROBE_TIMEOUT} s (busy or stuck)")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"libvirtd at {uri} refused getCapabilities: {exc.stderr.strip()[-300:]}")
    conn = infra.open_connection(uri)
    infra.cleanup_prefixed(conn, prefix=PREFIX)
    pool = infra.ensure_storage_pool(conn)
    network = infra.ensure_network(conn)
    try:
        yield {"uri": f"{uri}?domain_type=qemu&pool={pool.name()}", "network": network.name}
    finally:
        infra.cleanup_prefixed(conn, prefix=PREFIX)
        conn.close()


def _virsh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True, text=True, check=False)


PLAY = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/virtabstract.hypervisor.virtabstract:
      uri: "@URI@"
  vars:
    vm_name: "@NAME@"
    vm_options: &vm
      name: "@NAME@"
      cpus: 1
      memory: 128MiB
      guest_os: other
      acceleration: software
      graphics: none
      disks: [{size: 64MiB}]
      nics: [{network: "@NETWORK@"}]
      tags: [ansible]
  tasks:
    - name: create (stopped)
      virtabstract.hypervisor.vm: *vm
      register: create1
    - name: create again
      virtabstract.hypervisor.vm: *vm
      register: create2
    - name: predict more memory (check mode)
      virtabstract.hypervisor.vm: {name: "{{ vm_name }}", memory: 256MiB}
      check_mode: true
      diff: true
      register: predict
    - name: nothing changed
      virtabstract.hypervisor.vm_info: {name: "{{ vm_name }}"}
      register: info1
    - name: more memory, offline
      virtabstract.hypervisor.vm: {name: "{{ vm_name }}", memory: 256MiB, state: running}
      register: grow
    - name: bad memory size
      virtabstract.hypervisor.vm: {name: "{{ vm_name }}", memory: 256 bananas}
      register: bad
      ignore_errors: true
    - name: stop; nothing in the VM answers ACPI, so escalate to a power-off
      virtabstract.hypervisor.vm: {name: "{{ vm_name }}", state: stopped, shutdown_timeout: 2, force: true}
      register: stop
    - name: snapshot
      virtabstract.hypervisor.snapshot: {vm: "{{ vm_name }}", name: s1}
      register: snap1
    - name: snapshot again
      virtabstract.hypervisor.snapshot: {vm: "{{ vm_name }}", name: s1}
      register: snap2
    - ansible.builtin.assert:
        that:
          - create1 is changed and create1.actions == ['create'] and create1.vm.backend == 'kvm'
          - create1.vm.state == 'stopped' and create1.vm.memory_mib == 128
          - create2 is not changed
          - predict is changed and predict.diff.before.memory_mib == 128 and predict.diff.after.memory_mib == 256
          - info1.vms[0].memory_mib == 128
          - grow is changed and grow.actions == ['reconfigure', 'start']
          - grow.changes[0].mode == 'offline'
          - grow.vm.memory_mib == 256 and grow.vm.state == 'running'
          - bad is failed and bad.field == 'memory'
          - stop is changed and stop.shutdown == 'forced' and stop.vm.state == 'stopped'
          - snap1 is changed and snap2 is not changed
          - snap2.tree | map(attribute='name') | list == ['s1']
"""

ABSENT = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: delete
      virtabstract.hypervisor.vm: {uri: "@URI@", name: "@NAME@", state: absent}
      register: absent1
    - name: delete again
      virtabstract.hypervisor.vm: {uri: "@URI@", name: "@NAME@", state: absent}
      register: absent2
    - ansible.builtin.assert:
        that:
          - absent1 is changed and absent2 is not changed
"""


def test_vm_on_real_libvirtd(ansible_env, kvm: dict[str, Any]) -> None:
    name = f"{PREFIX}{secrets.token_hex(3)}"

    def fill(text: str) -> str:
        return text.replace("@URI@", kvm["uri"]).replace("@NAME@", name).replace("@NETWORK@", kvm["network"])

    ansible_env.playbook(fill(PLAY)).check()
    if shutil.which("virsh"):
        info = _virsh("dominfo", name)
        assert info.returncode == 0, info.stderr
        assert "shut off" in info.stdout
        assert "262144 KiB" in info.stdout  # Max memory: 256 MiB, as seen by libvirt's own client
        assert "s1" in _virsh("snapshot-list", name, "--name").stdout
    ansible_env.playbook(fill(ABSENT)).check()
    if shutil.which("virsh"):
        assert _virsh("dominfo", name).returncode != 0
