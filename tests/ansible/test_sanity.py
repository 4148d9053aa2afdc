"""``ansible-test sanity`` on the collection, as Ansible's own CI would run it.

ansible-test creates one virtualenv per sanity tool and bootstraps pip in each from
``get-pip.py``, which it downloads from ci-files.testing.ansible.com. That host is not
reachable from this project's CI (only package registries are), so the test places an
offline stand-in in ansible-test's download cache: Python's bundled pip (``ensurepip``),
then ``pip install`` of whatever ansible-test asks for, from PyPI as usual.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_TEST = shutil.which("ansible-test", path=str(Path(sys.executable).parent)) or shutil.which("ansible-test")

GET_PIP_STAND_IN = '''"""Offline stand-in for get-pip.py: bundled pip (ensurepip), then the packages asked for."""
import ensurepip
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
if args and subprocess.call([sys.executable, "-m", "pip", "install", *args]) != 0:
    print("warning: could not install", args, "- keeping the bundled pip", file=sys.stderr)
'''


def _place_get_pip_stand_in() -> None:
    """ansible-test looks for ~/.ansible/test/cache/get_pip_<version>.py before downloading it."""
    from types import SimpleNamespace

    from ansible_test._internal.python_requirements import get_venv_packages

    version = get_venv_packages(SimpleNamespace(version=f"{sys.version_info.major}.{sys.version_info.minor}"))["pip"]
    target = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{version.replace('.', '_')}.py"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(GET_PIP_STAND_IN)


@pytest.mark.slow
@pytest.mark.skipif(ANSIBLE_TEST is None, reason="ansible-core (ansible-test) is not installed")
def test_ansible_test_sanity_passes(tmp_path: Path) -> None:
    _place_get_pip_stand_in()
    collection = tmp_path / "ansible_collections" / "virtabstract" / "hypervisor"
    shutil.copytree(REPO / "ansible", collection, ignore=shutil.ignore_patterns("__pycache__", "tests/output"))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert ANSIBLE_TEST is not None
    result = subprocess.run(
        [ANSIBLE_TEST, "sanity", "--local", "--requirements", "--python", version, "--color", "no"],
        cwd=collection,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert 'Running sanity test "validate-modules"' in result.stdout
