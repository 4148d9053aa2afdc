"""Connection URLs: libvirt's URI grammar in an immutable value object.

``driver[+transport]://[user[:password]@][host][:port][/path][?query]``

Examples: ``qemu:///system``, ``qemu+ssh://root@kvm1/system``, ``esx://esx1/?no_verify=1``,
``vpx://vc.example/DC1/Cluster``, ``vbox:///session``, ``mock:///tmp/lab.json``.

The password is masked (``***``) in ``str()``, ``repr()`` and therefore in every
log line and error message; :meth:`URL.render` with ``hide_password=False`` is
the only way to get it back, for the backend that must send it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from .errors import InvalidURL

__all__ = ["URL", "make_url", "option_bool", "option_seconds"]

_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9.-]*(\+[a-zA-Z0-9.-]+)?$")
_WINDOWS_DRIVE_PATH = re.compile(r"^/[A-Za-z]:[/\\]")
MASK = "***"
_BAD_HOST = re.compile(r"[\s\x00-\x1f\x7f/\\@?#]")
"""Characters no host name or address literal contains (after percent-decoding)."""


class _Query(Mapping[str, str]):
    """An immutable, ordered, hashable view of the query string."""

    __slots__ = ("_items",)

    def __init__(self, items: tuple[tuple[str, str], ...] = ()) -> None:
        self._items = items

    def __getitem__(self, key: str) -> str:
        for k, v in reversed(self._items):
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        seen: list[str] = []
        for k, _ in self._items:
            if k not in seen:
                seen.append(k)
        return iter(seen)

    def __len__(self) -> int:
        return len(set(k for k, _ in self._items))

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Query) and other._items == self._items

    def __repr__(self) -> str:
        return repr(dict(self.items()))


@dataclass(frozen=True, repr=False)
class URL:
    """A parsed connection URL. Immutable; use :meth:`set` to derive a changed copy.

    :ivar scheme: the full scheme, e.g. ``"qemu+ssh"``.
    :ivar username: user name, or ``None``.
    :ivar password: password, or ``None``; masked in every rendering but :meth:`render`.
    :ivar host: host name or address, ``""`` for local URLs.
    :ivar port: TCP port, or ``None``.
    :ivar path: the path, ``""`` or starting with ``/``.
    :ivar query: the query options as a read-only mapping.
    """

    scheme: str
    username: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    path: str = ""
    query: Mapping[str, str] = field(default_factory=_Query)

    @classmethod
    def parse(cls, text: str) -> URL:
        """Parse *text*; raise :class:`~virtabstract.errors.InvalidURL` naming what is wrong."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidURL("a connection URL must be a non-empty string such as 'qemu:///system'")
        text = text.strip()
        scheme, sep, rest = text.partition("://")
        if not sep:
            raise InvalidURL(f"{_mask_text(text)!r} is not a URL: expected 'scheme://…', e.g. 'qemu:///system'")
        if not _SCHEME_RE.match(scheme):
            raise InvalidURL(f"invalid scheme {scheme!r}: letters, digits, '.', '-' and one '+transport'")
        rest, _, query_text = rest.partition("?")
        rest = rest.split("#", 1)[0]
        authority, slash, path = rest.partition("/")
        path = slash + path
        username = password = None
        if "@" in authority:
            userinfo, _, authority = authority.rpartition("@")
            user, colon, pw = userinfo.partition(":")
            username = unquote(user) or None
            password = unquote(pw) if colon else None
        host, port = _split_host_port(authority, text)
        try:
            pairs = parse_qsl(query_text, keep_blank_values=True, strict_parsing=False)
        except ValueError as exc:  # pragma: no cover - parse_qsl is lenient
            raise InvalidURL(f"bad query string in {_mask_text(text)!r}") from exc
        return cls(
            scheme=scheme.lower(),
            username=username,
            password=password,
            host=host,
            port=port,
            path=unquote(path),
            query=_Query(tuple(pairs)),
        )

    @property
    def driver(self) -> str:
        """The part of the scheme before ``+`` (``"qemu"`` in ``qemu+ssh``)."""
        return self.scheme.partition("+")[0]

    @property
    def transport(self) -> str | None:
        """The part of the scheme after ``+`` (``"ssh"`` in ``qemu+ssh``), or ``None``."""
        return self.scheme.partition("+")[2] or None

    @property
    def local_path(self) -> str:
        """The path as a local file name (``/C:/x`` becomes ``C:/x`` on any OS)."""
        if _WINDOWS_DRIVE_PATH.match(self.path):
            return self.path[1:]
        return self.path

    def option(self, name: str, default: str | None = None) -> str | None:
        """Return query option *name*, or *default*."""
        return self.query.get(name, default)

    def flag(self, name: str, default: bool = False) -> bool:
        """Return query option *name* as a boolean (``1/true/yes/on`` vs ``0/false/no/off``)."""
        raw = self.query.get(name)
        return default if raw is None else option_bool(name, raw)

    def set(self, **changes: Any) -> URL:
        """Return a copy with the given attributes replaced (``query`` may be a dict)."""
        if "query" in changes and not isinstance(changes["query"], _Query):
            changes["query"] = _Query(tuple((str(k), str(v)) for k, v in dict(changes["query"]).items()))
        return replace(self, **changes)

    def render(self, *, hide_password: bool = True) -> str:
        """Render the URL as text; the password is masked unless *hide_password* is false."""
        auth = ""
        if self.username is not None or self.password is not None:
            auth = quote(self.username or "", safe="")
            if self.password is not None:
                auth += ":" + (MASK if hide_password else quote(self.password, safe=""))
            auth += "@"
        host = self.host.replace("%", "%25")  # parse() percent-decodes the host: keep '%' literal
        host = f"[{host}]" if ":" in host else host
        port = f":{self.port}" if self.port is not None else ""
        query = "?" + urlencode(list(self.query.items())) if self.query else ""
        return f"{self.scheme}://{auth}{host}{port}{quote(self.path, safe='/:')}{query}"

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"URL({self.render()!r})"


def option_bool(name: str, value: Any) -> bool:
    """A connect option (URL query or keyword) as a boolean: ``1/true/yes/on`` (or empty) vs ``0/false/no/off``.

    :raises InvalidURL: anything else, naming the option and what it expects.
    """
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("", "1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise InvalidURL(f"option {name}={value!r} is not a boolean (use 1 or 0)")


def option_seconds(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A connect option (URL query or keyword) as a duration: a positive, finite number of seconds.

    :param allow_zero: accept ``0`` too (a simulated delay of nothing), not only positive durations.
    :raises InvalidURL: anything else (text, a negative number, ``inf``/``nan``, zero unless
        allowed), naming the option.
    """
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero) or isinstance(value, bool):
        expected = "a non-negative" if allow_zero else "a positive"
        raise InvalidURL(f"option {name}={value!r}: expected {expected} number of seconds, such as 30 or 2.5")
    return seconds


def make_url(value: str | URL) -> URL:
    """Return *value* as a :class:`URL`, parsing it if it is a string."""
    return value if isinstance(value, URL) else URL.parse(value)


def _split_host_port(authority: str, original: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        host, bracket, after = authority[1:].partition("]")
        if not bracket:
            raise InvalidURL(f"unclosed '[' in the host of {_mask_text(original)!r}")
        port_text = after[1:] if after.startswith(":") else ""
        if after and not after.startswith(":"):
            raise InvalidURL(f"unexpected text after the IPv6 host in {_mask_text(original)!r}")
    else:
        host, _, port_text = authority.partition(":")
    port: int | None = None
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            raise InvalidURL(f"port {port_text!r} is not a number between 1 and 65535")
        port = int(port_text)
    host = unquote(host)
    if _BAD_HOST.search(host):
        raise InvalidURL(f"invalid host {host!r} in {_mask_text(original)!r}: no blanks, control characters or /\\@?#")
    return host, port


def _mask_text(text: str) -> str:
    """Mask a password in raw URL text that failed to parse, for error messages."""
    # Over-masking is fine here: the text is only ever shown in an error message. The password runs
    # from the user's ':' to the *last* '@' before the path, whatever it contains (blanks, '@', ':' …).
    return re.sub(r"([^/@:\s]*):[^/?#]*@", rf"\g<1>:{MASK}@", text)
