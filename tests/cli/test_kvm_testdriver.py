"""The CLI against libvirt's test driver (``test:///default``) through the kvm backend.

Each CLI process gets a fresh test driver (its state lives in the process), with
one running domain named ``test``. Skipped when the kvm backend or libvirt-python
is not installed.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

_MISSING = [name for name in ("virtabstract_kvm", "libvirt") if importlib.util.find_spec(name) is None]

pytestmark = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"the kvm backend needs {' and '.join(_MISSING)} (pip install 'virtabstract[kvm]')",
)

URI = "test:///default"


def test_inventory_and_errors(cli: Any) -> None:
    host = cli.json("--uri", URI, "host", "info")
    assert host["backend"] == "kvm" and host["url"] == URI and "start" in host["capabilities"]
    vms = cli.json("--uri", URI, "vm", "list")
    assert "test" in [v["name"] for v in vms]
    shown = cli.json("--uri", URI, "vm", "show", "test")
    assert shown["state"] == "running" and shown["cpus"] >= 1
    assert cli("--uri", URI, "vm", "show", "nope").returncode == 3
    assert cli("--uri", URI, "vm", "start", "test").returncode == 4  # already running
    backends = cli.json("backends")
    kvm = next(b for b in backends if b["name"] == "kvm")
    assert "test" in kvm["schemes"] and kvm["available"] is True


def test_power_verbs(cli: Any) -> None:
    paused = cli.json("--uri", URI, "vm", "pause", "test")
    assert paused[0]["ok"] and paused[0]["state"] == "paused"
    off = cli.json("--uri", URI, "vm", "power-off", "test")
    assert off[0]["state"] == "stopped"
