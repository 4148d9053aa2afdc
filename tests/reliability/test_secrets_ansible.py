"""Secrets through the Ansible collection: a canary password (the real password of a vcsim) given as
the ``password`` option, inside ``uri``, and through ``VIRTABSTRACT_PASSWORD``, never appears in the
output of ``ansible-playbook -vvvv`` (module arguments, results, failures, tracebacks)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import CANARY, REPO, SecretScanner

pytestmark = [pytest.mark.vcsim, pytest.mark.slow]

COLLECTION = REPO / "ansible"


def _playbook_tool() -> str | None:
    local = Path(sys.executable).parent / "ansible-playbook"
    return str(local) if local.exists() else shutil.which("ansible-playbook")


@pytest.fixture(scope="module")
def ansible(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tool = _playbook_tool()
    modules = COLLECTION / "plugins" / "modules"
    if tool is None:
        pytest.skip("ansible-core is not installed")
    if not (modules / "vm_info.py").exists() or not (modules / "host_info.py").exists():
        pytest.skip("the Ansible collection (vm_info, host_info) has not landed yet")
    root = tmp_path_factory.mktemp("ansible")
    target = root / "collections" / "ansible_collections" / "virtabstract" / "hypervisor"
    target.parent.mkdir(parents=True)
    target.symlink_to(COLLECTION, target_is_directory=True)
    (root / "hosts.ini").write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "VIRTABSTRACT_"))}
    env.update(HOME=str(root), ANSIBLE_COLLECTIONS_PATH=str(root / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(root / "tmp"), ANSIBLE_REMOTE_TEMP=str(root / "tmp"),
               ANSIBLE_CONFIG=str(root / "none.cfg"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_DEPRECATION_WARNINGS="false", ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false")  # fmt: skip
    return {"tool": tool, "root": root, "env": env}


@pytest.fixture(scope="module")
def secret_sim(vcsim_ok: None) -> Iterator[Any]:
    from tests.infra.vcsim import run_vcsim

    with run_vcsim(model="esx", vms=1, password=CANARY) as sim:
        yield sim


def test_playbook_at_vvvv(ansible: dict[str, Any], secret_sim: Any, scanner: SecretScanner) -> None:
    # The secret lives in a vars file, as it would in a vault: Ansible itself prints the *source* lines of a
    # failing task, so a password written literally into a playbook would be shown by Ansible, not by us.
    (ansible["root"] / "secrets.yml").write_text(f'secret: "{CANARY}"\n')
    where = f"{secret_sim.host}:{secret_sim.port}"
    play = textwrap.dedent(f"""
        - hosts: localhost
          gather_facts: false
          vars_files: [secrets.yml]
          vars:
            plain: "esx://{where}/?protocol=http"
            with_pw: "esx://user:{{{{ secret | urlencode }}}}@{where}/?protocol=http"
          tasks:
            - name: password option
              virtabstract.hypervisor.host_info:
                {{uri: "{{{{ plain }}}}", username: user, password: "{{{{ secret }}}}"}}
            - name: password in the uri
              virtabstract.hypervisor.vm_info: {{uri: "{{{{ with_pw }}}}"}}
              register: listed
            - name: password from the environment of ansible-playbook (exported on the controller)
              virtabstract.hypervisor.vm_info: {{uri: "{{{{ plain }}}}", username: user}}
            - name: a failing task (no such VM) with the password in the uri
              virtabstract.hypervisor.vm_info: {{uri: "{{{{ with_pw }}}}", id: 00000000-0000-0000-0000-000000000000}}
              register: missing
              failed_when: missing.vms | length > 0
            - name: a refused login
              virtabstract.hypervisor.host_info:
                {{uri: "{{{{ plain }}}}", username: nobody, password: "{{{{ secret }}}}x"}}
              ignore_errors: true
            - name: the results, printed
              ansible.builtin.debug: {{var: listed}}
        """)  # fmt: skip
    path = ansible["root"] / "play.yml"
    path.write_text(play)
    # Not through a task's `environment:` keyword: Ansible prints those values in its EXEC line at -vvv.
    env = dict(ansible["env"], VIRTABSTRACT_PASSWORD=CANARY)
    proc = subprocess.run([ansible["tool"], "-vvvv", "-i", str(ansible["root"] / "hosts.ini"), str(path)],
                          capture_output=True, text=True, env=env, cwd=ansible["root"], timeout=120)  # fmt: skip
    output = proc.stdout + proc.stderr
    assert "ok=" in output, output[-3000:]
    recap = output[output.rfind("PLAY RECAP") :]
    assert "failed=0" in recap and "ignored=1" in recap, output[-3000:]
    scanner.check(proc.stdout, "ansible-vvvv", "stdout")
    scanner.check(proc.stderr, "ansible-vvvv", "stderr")
