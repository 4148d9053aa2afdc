r"""Connection settings for the CLI: ``--uri``, environment variables and named profiles.

The configuration file is TOML::

    default_profile = "lab"

    [profiles.lab]
    uri = "mock:///home/me/lab.json"

    [profiles.esx1]
    uri = "esx://esx1.example.com/?no_verify=1"
    username = "root"
    password = "…"            # the file must then be private: chmod 600
    [profiles.esx1.options]   # backend options passed to virtabstract.connect()

Its location is ``$VIRTABSTRACT_CONFIG``, else ``$XDG_CONFIG_HOME/virtabstract/config.toml``,
else ``~/.config/virtabstract/config.toml`` (on Windows ``%APPDATA%\virtabstract\config.toml``).

The URL is chosen from, in order: ``--uri``, ``--profile``, ``$VIRTABSTRACT_URI``,
``$VIRTABSTRACT_PROFILE``, the file's ``default_profile``. Credentials come from the URL,
the profile, ``$VIRTABSTRACT_USERNAME`` / ``$VIRTABSTRACT_PASSWORD``, or an interactive
prompt (only when standard input is a terminal) — never from a command-line option.

A file that holds a password and is readable by group or others (POSIX mode & 0o077)
is refused. On Windows that check is skipped: files there are protected by ACLs,
which the per-user ``%APPDATA%`` folder already restricts.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = ["ConfigError", "ConnectionSettings", "config_path", "load_config", "resolve_settings"]

ENV_URI = "VIRTABSTRACT_URI"
ENV_PROFILE = "VIRTABSTRACT_PROFILE"
ENV_CONFIG = "VIRTABSTRACT_CONFIG"
ENV_USERNAME = "VIRTABSTRACT_USERNAME"
ENV_PASSWORD = "VIRTABSTRACT_PASSWORD"  # noqa: S105 - the variable's name, not a secret

_PROFILE_KEYS = frozenset({"uri", "username", "password", "options", "description"})


class ConfigError(UsageError):
    """The configuration file or a profile is unusable (exit code 2)."""

    def __init__(self, message: str, hint: str = "") -> None:
        self.hint = hint
        super().__init__(message)


@dataclass
class ConnectionSettings:
    """Everything needed to open a connection; the password is kept out of every repr."""

    uri: str
    source: str
    """Where the URI came from: ``--uri``, ``$VIRTABSTRACT_URI``, ``profile 'lab'``."""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The configuration file's path (it need not exist)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]).expanduser()
    if sys.platform == "win32" and env.get("APPDATA"):
        return Path(env["APPDATA"]) / "virtabstract" / "config.toml"
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "virtabstract" / "config.toml"


def load_config(path: Path) -> dict[str, Any]:
    """Read and check the configuration file; an absent file is an empty configuration.

    :raises ConfigError: unreadable, invalid TOML, a malformed profile, or a password
        in a file that group or others can read.
    """
    import tomllib

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", "fix the file's syntax") from None
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: 'profiles' must be a table such as [profiles.lab]")
    for name, profile in profiles.items():
        if not isinstance(profile, dict):
            raise ConfigError(f"{path}: profile {name!r} must be a table")
        unknown = sorted(set(profile) - _PROFILE_KEYS)
        if unknown:
            raise ConfigError(
                f"{path}: profile {name!r} has unknown key(s) {', '.join(unknown)}",
                "known keys: " + ", ".join(sorted(_PROFILE_KEYS)),
            )
        for key in ("uri", "username", "password"):
            if key in profile and not isinstance(profile[key], str):
                raise ConfigError(f"{path}: profiles.{name}.{key} must be a string")
        if "options" in profile and not isinstance(profile["options"], dict):
            raise ConfigError(f"{path}: profiles.{name}.options must be a table")
    if any("password" in p for p in profiles.values()):
        check_private(path)
    return data


def check_private(path: Path) -> None:
    """Refuse a file holding a password that group or others can read (skipped on Windows)."""
    if sys.platform == "win32":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path} holds a password but is readable by others (mode {mode:04o}); refusing to use it",
            f"run: chmod 600 {path}",
        )


def resolve_settings(
    *,
    uri: str | None,
    profile: str | None,
    environ: Mapping[str, str] | None = None,
) -> ConnectionSettings:
    """Decide the URL and credentials from options, environment and the configuration file.

    :raises ConfigError: no connection was given, or the profile is missing or unusable.
    """
    env = os.environ if environ is None else environ
    settings: ConnectionSettings | None = None
    if uri:
        settings = ConnectionSettings(uri, "--uri")
    elif profile:
        settings = _from_profile(profile, "--profile", env)
    elif env.get(ENV_URI):
        settings = ConnectionSettings(env[ENV_URI], f"${ENV_URI}")
    elif env.get(ENV_PROFILE):
        settings = _from_profile(env[ENV_PROFILE], f"${ENV_PROFILE}", env)
    else:
        path = config_path(env)
        data = load_config(path)
        default = data.get("default_profile")
        if isinstance(default, str) and default:
            settings = _from_profile(default, f"default_profile in {path}", env, data=data)
    if settings is None:
        raise ConfigError(
            "no hypervisor given",
            f"pass --uri (e.g. --uri qemu:///system), set ${ENV_URI}, or add a profile to {config_path(env)}",
        )
    settings.username = settings.username or env.get(ENV_USERNAME) or None
    if settings.password is None and env.get(ENV_PASSWORD):
        settings.password = env[ENV_PASSWORD]
    return settings


def _from_profile(
    name: str, source: str, env: Mapping[str, str], *, data: dict[str, Any] | None = None
) -> ConnectionSettings:
    path = config_path(env)
    if data is None:
        data = load_config(path)
    profiles = data.get("profiles", {})
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(
            f"no profile named {name!r} (from {source}) in {path}",
            f"known profiles: {known}",
        )
    profile = profiles[name]
    if not profile.get("uri"):
        raise ConfigError(f"profile {name!r} in {path} has no 'uri'")
    return ConnectionSettings(
        uri=profile["uri"],
        source=f"profile {name!r}",
        username=profile.get("username"),
        password=profile.get("password"),
        options=dict(profile.get("options", {})),
        profile=name,
    )


def profile_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """Names of the configured profiles (for completion); empty when the file is unusable."""
    try:
        data = load_config(config_path(environ))
    except ConfigError:
        return []
    profiles = data.get("profiles", {})
    return sorted(profiles) if isinstance(profiles, dict) else []
