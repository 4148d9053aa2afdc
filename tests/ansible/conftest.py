"""Fixtures that run the real ``ansible-playbook`` / ``ansible-inventory`` against the collection in ansible/.

The collection is exposed as ``ansible_collections/virtabstract/hypervisor`` (a
symlink to the repository's ``ansible/`` directory) in a temporary directory
named by ANSIBLE_COLLECTIONS_PATH. Modules run on ``localhost`` with this
interpreter, so they import the virtabstract installed here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COLLECTION_SOURCE = REPO / "ansible"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str | None:
    local = BIN / name
    if local.exists():
        return str(local)
    return shutil.which(name)


ANSIBLE_PLAYBOOK = _tool("ansible-playbook")
ANSIBLE_INVENTORY = _tool("ansible-inventory")

try:
    import ansible  # noqa: F401
except ImportError:
    HAVE_ANSIBLE = False
else:
    HAVE_ANSIBLE = ANSIBLE_PLAYBOOK is not None and ANSIBLE_INVENTORY is not None


@dataclass
class Run:
    """The outcome of one ansible command."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def check(self) -> Run:
        """Return self, or fail the test with the whole output when the command failed."""
        assert self.returncode == 0, f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        return self


class AnsibleEnv:
    """Runs playbooks and inventories against the collection, in a private temporary tree."""

    def __init__(self, root: Path) -> None:
        self.root = root
        collections = root / "collections"
        target = collections / "ansible_collections" / "virtabstract" / "hypervisor"
        target.parent.mkdir(parents=True)
        target.symlink_to(COLLECTION_SOURCE, target_is_directory=True)
        self.inventory = root / "hosts.ini"
        self.inventory.write_text(
            f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n", encoding="utf-8"
        )
        home = root / "home"
        home.mkdir()
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("ANSIBLE_", "VIRTABSTRACT_")) and key not in ("PYTHONPATH",)
        }
        self.env.update(
            HOME=str(home),
            ANSIBLE_COLLECTIONS_PATH=str(collections),
            ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
            ANSIBLE_LOCAL_TEMP=str(root / "tmp"),
            ANSIBLE_REMOTE_TEMP=str(root / "tmp"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_RETRY_FILES_ENABLED="false",
            ANSIBLE_DEPRECATION_WARNINGS="false",
            ANSIBLE_PYTHON_INTERPRETER=sys.executable,
            ANSIBLE_CONFIG=str(root / "none.cfg"),
            PYTHONDONTWRITEBYTECODE="1",
        )
        self.count = 0

    def playbook(self, text: str, *args: str, env: dict[str, str] | None = None) -> Run:
        """Run *text* (a playbook) with ``ansible-playbook``; return its output."""
        self.count += 1
        path = self.root / f"play{self.count}.yml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return self._run([ANSIBLE_PLAYBOOK, "-i", str(self.inventory), str(path), *args], env)

    def inventory_list(self, config: str, *args: str, name: str = "lab.virtabstract.yml", env=None) -> Run:
        """Write an inventory source *config* and run ``ansible-inventory --list`` on it."""
        path = self.root / name
        path.write_text(textwrap.dedent(config), encoding="utf-8")
        return self._run([ANSIBLE_INVENTORY, "-i", str(path), "--list", *args], env)

    def _run(self, argv: list[str], env: dict[str, str] | None) -> Run:
        full_env = dict(self.env, **(env or {}))
        proc = subprocess.run(argv, capture_output=True, text=True, env=full_env, cwd=self.root, timeout=240)
        return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def ansible_env(tmp_path_factory: pytest.TempPathFactory) -> AnsibleEnv:
    """One collection tree and inventory for the whole session (skips without ansible-core)."""
    if not HAVE_ANSIBLE:
        pytest.skip("ansible-core is not installed (pip install ansible-core; it is in requirements-dev.txt)")
    return AnsibleEnv(tmp_path_factory.mktemp("ansible"))
