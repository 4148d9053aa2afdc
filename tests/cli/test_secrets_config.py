"""Secrets never reach stdout/stderr (even with --debug); profiles, config location, permissions."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from virtabstract.cli._config import ConfigError, config_path, load_config, resolve_settings

CANARY = "Canary-Pw-7f3a9c"


def _assert_clean(result: Any) -> None:
    assert CANARY not in result.stdout
    assert CANARY not in result.stderr


def test_canary_in_url_never_shown(cli: Any, seeded: Any, lab_path: Path) -> None:
    uri = f"mock://admin:{CANARY}@{lab_path.as_posix()}"
    listed = cli("--uri", uri, "--json", "vm", "list")
    _assert_clean(listed)
    assert listed.returncode == 0 and "visible to other users" in listed.stderr  # a warning, masked
    failing = cli("--uri", uri, "--debug", "vm", "show", "nope")
    _assert_clean(failing)
    assert failing.returncode == 3 and "Traceback" in failing.stderr
    bulk = cli("--uri", uri, "--debug", "--json", "vm", "start", "web1", "nope")
    _assert_clean(bulk)
    assert "Traceback" in bulk.stderr
    unreachable = cli("--uri", f"mock://admin:{CANARY}@/no/such/dir/lab.json", "--debug", "host", "info")
    _assert_clean(unreachable)
    assert unreachable.returncode == 7 and "***" in unreachable.stderr
    bad = cli("--uri", f"mock://admin:{CANARY}@host:notaport/x", "--debug", "vm", "list")
    _assert_clean(bad)
    assert bad.returncode == 2


def test_canary_in_env_never_shown(cli: Any, seeded: Any) -> None:
    env = {"VIRTABSTRACT_PASSWORD": CANARY, "VIRTABSTRACT_USERNAME": "admin"}
    for args in (("--debug", "vm", "show", "nope"), ("--debug", "--json", "host", "info"), ("--debug", "vm", "list")):
        result = cli(*args, env=env)
        _assert_clean(result)


def _write_profile(tmp_path: Path, lab_uri: str, mode: int) -> Path:
    path = tmp_path / "home" / ".config" / "virtabstract" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        'default_profile = "lab"\n\n'
        f'[profiles.lab]\nuri = "{lab_uri}"\nusername = "admin"\npassword = "{CANARY}"\n\n'
        '[profiles.other]\nuri = "mock:///does/not/matter.json"\n'
    )
    path.chmod(mode)
    return path


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_profile_with_password(cli: Any, seeded: Any, tmp_path: Path, lab_uri: str) -> None:
    path = _write_profile(tmp_path, lab_uri, 0o600)
    env = {"VIRTABSTRACT_URI": ""}  # only the default profile names the lab
    listed = cli("--json", "--debug", "vm", "list", env=env)
    _assert_clean(listed)
    assert listed.returncode == 0 and len(listed.json()) == 4
    by_name = cli("--profile", "lab", "--debug", "vm", "show", "nope", env=env)
    _assert_clean(by_name)
    assert by_name.returncode == 3
    unknown = cli("--profile", "nosuch", "vm", "list", env=env)
    assert unknown.returncode == 2 and "known profiles: lab, other" in unknown.stderr

    path.chmod(0o644)
    refused = cli("--json", "vm", "list", env=env)
    _assert_clean(refused)
    assert refused.returncode == 2 and refused.stdout == ""
    assert f"chmod 600 {path}" in refused.stderr
    assert cli("--json", "vm", "list").returncode == 0  # --uri/VIRTABSTRACT_URI never reads the file


def test_no_connection_given(cli: Any) -> None:
    result = cli("vm", "list", env={"VIRTABSTRACT_URI": ""})
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == "error: no hypervisor given"
    assert "--uri" in result.stderr.splitlines()[1]


def test_ask_password_needs_a_terminal(cli: Any, seeded: Any) -> None:
    result = cli("--ask-password", "vm", "list")
    assert result.returncode == 2 and "not a terminal" in result.stderr


# -- in-process: resolution order and file location (no subprocess) --------------------------------------


def test_config_path_precedence(tmp_path: Path) -> None:
    assert config_path({"VIRTABSTRACT_CONFIG": str(tmp_path / "x.toml")}) == tmp_path / "x.toml"
    if sys.platform != "win32":
        assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "virtabstract" / "config.toml"
        assert config_path({}) == Path.home() / ".config" / "virtabstract" / "config.toml"


def test_resolution_order(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'default_profile = "d"\n[profiles.d]\nuri = "mock:///d.json"\n'
        '[profiles.p]\nuri = "mock:///p.json"\nusername = "pu"\n[profiles.p.options]\nseed = 3\n'
    )
    env = {"VIRTABSTRACT_CONFIG": str(cfg)}
    assert resolve_settings(uri=None, profile=None, environ=env).uri == "mock:///d.json"
    assert (
        resolve_settings(uri=None, profile=None, environ={**env, "VIRTABSTRACT_PROFILE": "p"}).uri == "mock:///p.json"
    )
    from_env = resolve_settings(uri=None, profile=None, environ={**env, "VIRTABSTRACT_URI": "mock:///e.json"})
    assert from_env.uri == "mock:///e.json" and from_env.source == "$VIRTABSTRACT_URI"
    explicit = resolve_settings(uri=None, profile="p", environ={**env, "VIRTABSTRACT_URI": "mock:///e.json"})
    assert explicit.uri == "mock:///p.json" and explicit.username == "pu" and explicit.options == {"seed": 3}
    flag = resolve_settings(
        uri="mock:///u.json", profile="p", environ={**env, "VIRTABSTRACT_PASSWORD": "pw", "VIRTABSTRACT_USERNAME": "eu"}
    )
    assert (flag.uri, flag.username, flag.password) == ("mock:///u.json", "eu", "pw")
    assert "pw" not in repr(flag)


def test_bad_config_files(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("profiles = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(cfg)
    cfg.write_text('[profiles.a]\nuri = "mock://"\npasword = "typo"\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(cfg)
    assert load_config(tmp_path / "absent.toml") == {}
    if sys.platform != "win32":
        cfg.write_text('[profiles.a]\nuri = "mock://"\npassword = "x"\n')
        os.chmod(cfg, 0o640)
        with pytest.raises(ConfigError, match="readable by others") as info:
            load_config(cfg)
        assert info.value.hint == f"run: chmod 600 {cfg}"
        os.chmod(cfg, 0o600)
        assert load_config(cfg)["profiles"]["a"]["password"] == "x"
        cfg.write_text('[profiles.a]\nuri = "mock://"\n')
        os.chmod(cfg, 0o644)  # no password: readable is fine
        assert load_config(cfg)["profiles"]["a"]["uri"] == "mock://"
