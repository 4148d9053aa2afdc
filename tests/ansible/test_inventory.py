"""``ansible-inventory --list`` with the collection's inventory plugin over two hypervisors at once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import virtabstract

pytestmark = pytest.mark.timeout(240)

CANARY = "canary-InvPw-0b6c21"


def _load(path: Path) -> dict:
    """Read ``ansible-inventory --output`` JSON; values from the plugin come marked unsafe (never templated)."""

    def unwrap(obj: dict) -> object:
        return obj["__ansible_unsafe"] if set(obj) == {"__ansible_unsafe"} else obj

    return json.loads(path.read_text(encoding="utf-8"), object_hook=unwrap)


def _labs(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """Two mock hypervisors: a running tagged Linux VM on each, a stopped one, and a name used on both."""
    lab_a, lab_b = tmp_path / "a.json", tmp_path / "b.json"
    ids: dict[str, str] = {}
    with virtabstract.connect(f"mock://{lab_a}") as hv:
        vm = hv.vms.create(
            {"name": "web-a", "guest_os": "debian-12", "tags": ["web"], "memory": 2048, "nics": [{}]}, start=True
        )
        ids["web-a"] = vm.id
        ids["db-a"] = hv.vms.create({"name": "db-a", "guest_os": "windows-server-2022", "memory": 512}).id
        ids["dup@a"] = hv.vms.create({"name": "dup"}).id
    with virtabstract.connect(f"mock://{lab_b}") as hv:
        vm = hv.vms.create(
            {"name": "web-b", "guest_os": "ubuntu-22.04", "tags": ["web", "blue"], "nics": [{}]}, start=True
        )
        ids["web-b"] = vm.id
        ids["dup@b"] = hv.vms.create({"name": "dup"}).id
    time.sleep(0.5)  # the mock guests report their DHCP address 0.3 s after boot
    return lab_a, lab_b, ids


def test_inventory_over_two_hypervisors(ansible_env, tmp_path: Path) -> None:
    lab_a, lab_b, ids = _labs(tmp_path)
    cache_dir = tmp_path / "cache"
    config = f"""
        plugin: virtabstract.hypervisor.virtabstract
        hypervisors:
          - mock://{lab_a}
          - uri: mock://{lab_b}
            username: admin
            password: {CANARY}
        keyed_groups:
          - key: virtabstract_guest_os
            prefix: guest
        compose:
          ansible_user: "'Administrator' if virtabstract_os_family == 'windows' else 'root'"
        groups:
          big: virtabstract_memory_mib >= 2048
        cache: true
        cache_plugin: ansible.builtin.jsonfile
        cache_connection: {cache_dir}
    """
    out = tmp_path / "inventory.json"
    run = ansible_env.inventory_list(config, "--output", str(out), "-vvvv").check()
    assert CANARY not in run.output
    data = _load(out)
    hostvars = data["_meta"]["hostvars"]

    dup_a, dup_b = f"dup_{ids['dup@a'][:8]}", f"dup_{ids['dup@b'][:8]}"
    assert sorted(hostvars) == sorted(["web-a", "db-a", "web-b", dup_a, dup_b])
    assert "several VMs are named 'dup'" in run.output

    web_a = hostvars["web-a"]
    assert web_a["virtabstract_id"] == ids["web-a"]
    assert web_a["virtabstract_uri"] == f"mock://{lab_a}"
    assert web_a["virtabstract_backend"] == "mock"
    assert web_a["virtabstract_state"] == "running"
    assert web_a["virtabstract_os_family"] == "linux"
    assert web_a["virtabstract_tags"] == ["web"]
    assert web_a["ansible_host"].startswith("192.168.122.")
    assert web_a["ansible_host"] in web_a["virtabstract_ip_addresses"]
    assert web_a["ansible_user"] == "root"
    assert hostvars["web-b"]["virtabstract_uri"] == f"mock://{lab_b}"
    assert hostvars["db-a"]["ansible_user"] == "Administrator"
    assert hostvars["db-a"]["virtabstract_ip_addresses"] == []
    assert "ansible_host" not in hostvars["db-a"]

    def members(group: str) -> list[str]:
        return sorted(data.get(group, {}).get("hosts", []))

    assert members("backend_mock") == sorted(hostvars)
    assert members("state_running") == ["web-a", "web-b"]
    assert members("state_stopped") == sorted(["db-a", dup_a, dup_b])
    assert members("os_linux") == ["web-a", "web-b"]
    assert members("os_windows") == ["db-a"]
    assert members("tag_web") == ["web-a", "web-b"]
    assert members("tag_blue") == ["web-b"]
    assert members("guest_debian_12") == ["web-a"]
    assert members("big") == ["web-a"]

    # The cache holds no secret, and a second run reads it instead of the hypervisors.
    cached = "".join(p.read_text(encoding="utf-8") for p in cache_dir.iterdir())
    assert "web-a" in cached
    assert CANARY not in cached
    with virtabstract.connect(f"mock://{lab_a}") as hv:
        hv.vms.get("db-a").delete()
    again = tmp_path / "again.json"
    ansible_env.inventory_list(config, "--output", str(again)).check()
    assert "db-a" in _load(again)["_meta"]["hostvars"]
    fresh = tmp_path / "fresh.json"
    ansible_env.inventory_list(config, "--output", str(fresh), "--flush-cache").check()
    assert "db-a" not in _load(fresh)["_meta"]["hostvars"]


def test_inventory_error_is_clear_and_leaks_nothing(ansible_env, tmp_path: Path) -> None:
    config = f"""
        plugin: virtabstract.hypervisor.virtabstract
        hypervisors:
          - mock://{tmp_path / "ok.json"}
          - uri: nosuchscheme://admin:{CANARY}@host/
    """
    run = ansible_env.inventory_list(config, "-vvvv", env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"})
    assert run.returncode != 0
    assert "virtabstract inventory: cannot read nosuchscheme://admin:***@host/" in run.output
    assert CANARY not in run.output
