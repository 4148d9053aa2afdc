"""Every command through the real console entry against a file-backed mock hypervisor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VMINFO_KEYS = {
    "id",
    "name",
    "state",
    "native_state",
    "cpus",
    "memory_mib",
    "guest_os",
    "guest_os_native",
    "disks",
    "nics",
    "description",
    "tags",
    "firmware",
    "autostart",
    "boot_order",
    "cdrom",
    "backend",
}


def test_host_info(cli: Any) -> None:
    data = cli.json("host", "info")
    assert data["backend"] == "mock"
    assert data["url"].startswith("mock://")
    assert {"hostname", "os_family", "cpu_count", "memory_mib", "hypervisor", "version"} <= set(data)
    assert "start" in data["capabilities"] and data["capabilities"] == sorted(data["capabilities"])
    human = cli.ok("host", "info").stdout
    assert "hostname:" in human and "capabilities:" in human


def test_vm_list_filters_and_quiet(cli: Any, seeded: Any) -> None:
    everything = cli.json("vm", "list")
    assert [v["name"] for v in everything] == ["db1", "web1", "web2", "win1"]
    assert set(everything[0]) == VMINFO_KEYS
    assert [v["name"] for v in cli.json("vm", "list", "--state", "running")] == ["web1"]
    assert [v["name"] for v in cli.json("vm", "list", "--name", "web*", "--state", "stopped")] == ["web2"]
    assert [v["name"] for v in cli.json("vm", "list", "--tag", "web")] == ["web1", "web2"]
    assert [v["name"] for v in cli.json("vm", "list", "--os-family", "windows")] == ["win1"]
    assert cli.ok("vm", "list", "-q").stdout.split() == ["db1", "web1", "web2", "win1"]
    table = cli.ok("vm", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "STATE", "CPUS"]
    bad = cli("vm", "list", "--state", "sideways")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --state 'sideways'")


def test_vm_show_and_not_found(cli: Any, seeded: Any) -> None:
    data = cli.json("vm", "show", "web1")
    assert data["name"] == "web1" and data["state"] == "running" and data["memory_mib"] == 2048
    assert data["disks"][0]["size_mib"] == 10240 and data["nics"][0]["network"] == "default"
    assert cli.json("vm", "show", data["id"])["name"] == "web1"  # by id too
    human = cli.ok("vm", "show", "web1").stdout
    assert "state:" in human and "DISK" in human and "NIC" in human
    missing = cli("vm", "show", "nope")
    assert missing.returncode == 3
    assert missing.stdout == ""
    lines = missing.stderr.splitlines()
    assert lines[0].startswith("error: ") and "nope" in lines[0]
    assert lines[1].startswith("hint: ") and len(lines) == 2


def test_vm_create_from_flags_file_and_errors(cli: Any, hv: Any, tmp_path: Path) -> None:
    created = cli.json(
        "vm", "create", "--name", "app1", "--cpus", "2", "--memory", "2GiB", "--guest-os", "ubuntu-22.04",
        "--disk", "20GiB", "--disk", "1GiB", "--nic", "default", "--tag", "app", "--start",
    )  # fmt: skip
    assert created["name"] == "app1" and created["state"] == "running"
    assert [d["size_mib"] for d in created["disks"]] == [20480, 1024] and created["tags"] == ["app"]

    yaml_spec = tmp_path / "app2.yaml"
    yaml_spec.write_text("name: app2\ncpus: 4\nmemory: 1GiB\nguest_os: debian-12\ndisks:\n  - size: 5GiB\n")
    from_yaml = cli.json("vm", "create", "-f", str(yaml_spec), "--cpus", "3")  # flags override the file
    assert from_yaml["cpus"] == 3 and from_yaml["memory_mib"] == 1024 and from_yaml["state"] == "stopped"

    json_spec = tmp_path / "app3.json"
    json_spec.write_text(json.dumps({"name": "app3", "memory": 512}))
    dry = cli.json("vm", "create", "-f", str(json_spec), "--dry-run")
    assert dry["name"] == "app3" and dry["memory"] == 512
    assert "app3" not in hv.vms
    assert cli.ok("vm", "create", "-f", "-", input=json.dumps({"name": "app3"})).stdout.startswith("app3: created")

    bad = cli("vm", "create", "--name", "bad", "--memory", "lots")
    assert bad.returncode == 2 and "memory" in bad.stderr and "spec schema" in bad.stderr
    duplicate = cli("vm", "create", "--name", "app1")
    assert duplicate.returncode == 8 and "already exists" in duplicate.stderr
    nameless = cli("vm", "create", "--cpus", "2")
    assert nameless.returncode == 2 and "--name" in nameless.stderr


def test_power_verbs_concurrently(cli: Any, seeded: Any) -> None:
    started = cli.json("vm", "start", "web2", "db1", "win1")
    assert [(r["vm"], r["ok"], r["state"]) for r in started] == [
        ("web2", True, "running"),
        ("db1", True, "running"),
        ("win1", True, "running"),
    ]
    assert set(started[0]) == {"vm", "ok", "id", "state"}
    again = cli("--json", "vm", "start", "web2", "nope", "db1")
    assert again.returncode == 4  # the first failure in argument order: web2 is already running
    results = again.json()
    assert [r["ok"] for r in results] == [False, False, False]
    assert results[0]["error"]["type"] == "InvalidState" and results[0]["error"]["exit_code"] == 4
    assert results[1]["error"] == {"type": "VMNotFound", "message": results[1]["error"]["message"], "exit_code": 3}

    assert cli.ok("vm", "pause", "web1", "web2").stdout.splitlines() == ["web1: paused", "web2: paused"]
    assert cli.json("vm", "resume", "web1", "web2")[1]["state"] == "running"
    assert cli.json("vm", "reboot", "web1")[0]["ok"]
    assert cli.json("vm", "reset", "web1")[0]["state"] == "running"
    assert cli.json("vm", "suspend", "web2")[0]["state"] == "suspended"
    assert cli.json("vm", "start", "web2")[0]["state"] == "running"
    down = cli.json("vm", "shutdown", "web1", "web2", "--timeout", "20")
    assert {(r["vm"], r["stage"], r["state"]) for r in down} == {
        ("web1", "graceful", "stopped"),
        ("web2", "graceful", "stopped"),
    }
    assert cli.json("vm", "shutdown", "web1")[0]["stage"] == "already_stopped"
    assert cli.ok("vm", "power-off", "db1", "win1", "-q").stdout == ""
    assert {info.state.value for info in seeded.vms.list_info()} == {"stopped"}
    not_running = cli("vm", "pause", "db1")
    assert not_running.returncode == 4 and not_running.stderr.startswith("error: db1: ")


def test_shutdown_timeout_and_force(cli: Any, seeded: Any, lab_uri: str) -> None:
    stubborn = f"{lab_uri}?faults=ignore_shutdown"
    timed_out = cli("--uri", stubborn, "vm", "shutdown", "web1", "--timeout", "0.3")
    assert timed_out.returncode == 6 and "--force" in timed_out.stderr
    forced = cli.json("--uri", stubborn, "vm", "shutdown", "web1", "--timeout", "0.3", "--force")
    assert forced[0]["stage"] == "forced" and forced[0]["state"] == "stopped"


def test_unsupported_and_connection_errors(cli: Any, seeded: Any, lab_uri: str, tmp_path: Path) -> None:
    no_pause = cli("--uri", f"{lab_uri}?capabilities=-pause", "vm", "pause", "web1")
    assert no_pause.returncode == 5 and "pause" in no_pause.stderr and "virtabstract backends" in no_pause.stderr
    unreachable = cli("--uri", f"mock://{(tmp_path / 'missing' / 'lab.json').as_posix()}", "vm", "list")
    assert unreachable.returncode == 7 and unreachable.stderr.startswith("error: ")
    no_backend = cli("--uri", "nosuch:///x", "vm", "list")
    assert no_backend.returncode == 5 and "no backend" in no_backend.stderr
    bad_url = cli("--uri", "not a url", "vm", "list")
    assert bad_url.returncode == 2


def test_reconfigure(cli: Any, seeded: Any) -> None:
    plan = cli.json("vm", "reconfigure", "web1", "--memory", "1GiB", "--cpus", "4", "--dry-run")
    assert plan["applied"] is False
    modes = {c["field"]: c["mode"] for c in plan["changes"]}
    assert modes == {"memory_mib": "needs_power_off", "cpus": "live"}
    human = cli.ok("vm", "reconfigure", "web1", "--memory", "1GiB", "--dry-run").stdout
    assert "needs power off" in human and "dry run" in human
    refused = cli("vm", "reconfigure", "web1", "--memory", "1GiB")
    assert refused.returncode == 4 and "power it off" in refused.stderr
    deferred = cli.json("vm", "reconfigure", "web1", "--memory", "1GiB", "--defer")
    assert deferred["applied"] and deferred["changes"][0]["mode"] == "deferred"
    offline = cli.json("vm", "reconfigure", "db1", "--cpus", "3", "--tag", "x", "--tag", "y")
    assert offline["applied"] and seeded.vms.get("db1").info().tags == ("x", "y")
    assert cli("vm", "reconfigure", "db1").returncode == 2


def test_clone_delete_console(cli: Any, seeded: Any) -> None:
    cli.ok("snapshot", "create", "web1", "base")
    linked = cli.json("vm", "clone", "web1", "web1-linked", "--linked", "--snapshot", "base")
    assert linked["name"] == "web1-linked" and linked["disks"][0]["backing"]
    full = cli.json("vm", "clone", "db1", "db2")
    assert full["name"] == "db2" and full["id"] != seeded.vms.get("db1").id
    assert cli("vm", "clone", "db1", "db2").returncode == 8

    refused = cli("vm", "delete", "db2")  # stdin is not a terminal: --yes is required
    assert refused.returncode == 2 and "--yes" in refused.stderr
    deleted = cli.json("vm", "delete", "db2", "web1-linked", "--yes", "--keep-disks")
    assert [r["ok"] for r in deleted] == [True, True]
    assert "db2" not in seeded.vms and "web1-linked" not in seeded.vms
    running = cli("vm", "delete", "web1", "--yes")
    assert running.returncode == 4

    console = cli.json("vm", "console", "web1")
    assert console["protocol"] == "vnc" and console["password"] == "***" and console["port"] >= 5900
    secret = seeded.vms.get("web1").console().password.reveal()
    shown = cli.json("vm", "console", "web1", "--show-password")
    assert shown["password"] == secret
    human = cli.ok("vm", "console", "web1").stdout
    assert secret not in human and "***" in human


def test_snapshots(cli: Any, seeded: Any) -> None:
    first = cli.json("snapshot", "create", "web1", "clean", "--description", "fresh")
    assert first["name"] == "clean" and first["parent_id"] is None
    cli.ok("snapshot", "create", "web1", "two", "--memory")
    cli.ok("snapshot", "revert", "web1", "clean")
    cli.ok("snapshot", "create", "web1", "branch")
    listing = cli.json("snapshot", "list", "web1")
    assert [s["name"] for s in listing] == ["clean", "two", "branch"]
    assert {s["name"]: s["parent_id"] for s in listing}["branch"] == first["id"]
    tree = cli.ok("snapshot", "list", "web1").stdout.splitlines()
    assert tree[0].startswith("clean ") and tree[1].startswith("├── two") and tree[2].startswith("└── branch")
    assert "*" in tree[2]
    reverted = cli.json("snapshot", "revert", "web1", "two")
    assert reverted["snapshot"]["name"] == "two" and reverted["state"] == "running"
    assert cli("snapshot", "revert", "web1", "nope").returncode == 3
    assert cli("snapshot", "create", "web1", "two").returncode == 8
    gone = cli.json("snapshot", "delete", "web1", "clean", "--children")
    assert gone == {"vm": "web1", "snapshot": first["id"], "children": True, "deleted": True}
    assert cli.json("snapshot", "list", "web1") == []
    assert cli.ok("snapshot", "list", "web1").stdout.strip() == "web1: no snapshots"


def test_guest_exec_cp_ip(cli: Any, seeded: Any, tmp_path: Path) -> None:
    ip = cli.ok("guest", "ip", "web1", "--wait", "--timeout", "20").stdout.strip()
    assert ip.startswith("192.168.122.")
    addresses = cli.json("guest", "ip", "web1")
    assert ip in [a["address"] for a in addresses] and {"address", "prefix", "interface", "mac", "source"} <= set(
        addresses[0]
    )

    echoed = cli("guest", "exec", "web1", "--", "sh", "-c", "echo out; cat /no/such/file; exit 3")
    assert echoed.returncode == 3 and echoed.stdout == "out\n" and "/no/such/file" in echoed.stderr
    assert not echoed.stderr.startswith("error:")  # the guest's stderr, passed through
    as_json = cli("--json", "guest", "exec", "web1", "--", "uname", "-s")
    assert as_json.returncode == 0 and as_json.json()["exit_code"] == 0 and as_json.json()["stdout"].strip()
    piped = cli("guest", "exec", "web1", "-i", "--", "cat", input="from stdin\n")
    assert piped.returncode == 0 and piped.stdout == "from stdin\n"
    missing = cli("guest", "exec", "web1", "--", "no-such-program")
    assert missing.returncode == 127
    assert cli("guest", "exec", "web1").returncode == 2
    stopped = cli("guest", "exec", "db1", "--", "true")
    assert stopped.returncode != 0 and stopped.stderr.startswith("error: ")

    local = tmp_path / "hello.txt"
    local.write_bytes(b"hello\x00guest\n")
    pushed = cli.json("guest", "cp", str(local), "web1:/tmp/")
    assert pushed == {
        "vm": "web1",
        "direction": "to_guest",
        "source": str(local),
        "destination": "/tmp/hello.txt",
        "bytes": 12,
    }
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    pulled = cli.json("guest", "cp", "web1:/tmp/hello.txt", str(out_dir))
    assert pulled["direction"] == "from_guest" and (out_dir / "hello.txt").read_bytes() == b"hello\x00guest\n"
    assert cli.ok("guest", "cp", "web1:/tmp/hello.txt", "-").stdout == "hello\x00guest\n"
    cli.ok("guest", "cp", "-", "web1:/tmp/piped", input="piped data")
    assert seeded.vms.get("web1").guest.read_file("/tmp/piped") == b"piped data"
    assert cli("guest", "cp", "web1:/nope", str(out_dir)).returncode == 3
    assert cli("guest", "cp", str(local), str(out_dir)).returncode == 2  # neither side is a guest


def test_backends_and_spec(cli: Any, tmp_path: Path) -> None:
    listed = cli.json("backends")
    mock = next(b for b in listed if b["name"] == "mock")
    assert mock["schemes"] == ["mock"] and mock["available"] is True and "snapshots" in mock["capabilities"]
    assert set(mock) == {"name", "schemes", "plugin", "available", "problem", "capabilities", "options"}
    assert "mock://" in cli.ok("backends").stdout

    schema = json.loads(cli.ok("spec", "schema").stdout)
    assert schema["title"] == "VMSpec" and "name" in schema["required"]
    jsonschema = pytest.importorskip("jsonschema")
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s1\nmemory: 2GiB\ndisks: [{size: 8GiB}]\n")
    normalised = cli.json("spec", "validate", str(spec))
    assert normalised["memory"] == 2048
    jsonschema.validate(normalised, schema)
    spec.write_text("name: s1\ncpus: zero\n")
    invalid = cli("spec", "validate", str(spec))
    assert invalid.returncode == 2 and "cpus" in invalid.stderr
