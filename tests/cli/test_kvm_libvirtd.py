"""The CLI against a real libvirtd (``qemu:///system``): create, show, snapshot, delete.

Uses the test pool and network of tests/infra/libvirt.py and names prefixed by this
run (``run_prefix``), removed even when a test fails. Skips with the reason when
libvirtd, root or the kvm backend is not available.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.libvirtd, pytest.mark.slow]

_MISSING = [name for name in ("virtabstract_kvm", "libvirt") if importlib.util.find_spec(name) is None]
if _MISSING:
    pytest.skip(f"the kvm backend needs {' and '.join(_MISSING)}", allow_module_level=True)

infra_libvirt = pytest.importorskip("tests.infra.libvirt")


@pytest.fixture(scope="module")
def libvirtd() -> Iterator[dict[str, str]]:
    ok, why = infra_libvirt.libvirt_available()
    if not ok:
        pytest.skip(why)
    try:
        uri = infra_libvirt.ensure_libvirtd()
    except infra_libvirt.LibvirtUnavailable as exc:
        pytest.skip(str(exc))
    conn = infra_libvirt.open_connection(uri)
    prefix = infra_libvirt.run_prefix("cli")
    try:
        pool = infra_libvirt.ensure_storage_pool(conn).name()
        network = infra_libvirt.ensure_network(conn).name
        yield {"uri": f"{uri}?domain_type=qemu&pool={pool}", "prefix": prefix, "network": network}
    finally:
        infra_libvirt.cleanup_prefixed(conn, prefix)
        conn.close()


def test_create_show_snapshot_delete(cli: Any, libvirtd: dict[str, str], tmp_path: Path) -> None:
    uri, name = libvirtd["uri"], libvirtd["prefix"] + "vm"
    spec = tmp_path / "vm.json"
    spec.write_text(
        json.dumps(
            {
                "name": name,
                "cpus": 1,
                "memory": 128,
                "guest_os": "debian-12",
                "disks": [{"size": 64}],
                "nics": [{"network": libvirtd["network"]}],
                "description": "made by the <CLI> & 'tests'",
            }
        )
    )
    created = cli.json("--uri", uri, "vm", "create", "-f", str(spec))
    assert created["name"] == name and created["state"] == "stopped"
    shown = cli.json("--uri", uri, "vm", "show", name)
    assert shown["description"] == "made by the <CLI> & 'tests'"
    assert shown["disks"][0]["size_mib"] == 64
    assert name in [v["name"] for v in cli.json("--uri", uri, "vm", "list", "--name", libvirtd["prefix"] + "*")]
    snap = cli.json("--uri", uri, "snapshot", "create", name, "base")
    assert snap["name"] == "base"
    assert [s["name"] for s in cli.json("--uri", uri, "snapshot", "list", name)] == ["base"]
    assert cli("--uri", uri, "vm", "create", "-f", str(spec)).returncode == 8  # already exists
    assert cli("--uri", uri, "vm", "delete", name, "--yes").returncode == 0
    assert cli("--uri", uri, "vm", "show", name).returncode == 3
