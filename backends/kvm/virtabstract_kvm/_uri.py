"""From a virtabstract :class:`~virtabstract.URL` to a libvirt URI and backend options.

* ``qemu[+transport]://…`` and ``test[+transport]://…`` pass through unchanged
  (``test:///default`` and ``test:///path/to/node.xml`` are libvirt's in-process
  test driver).
* ``kvm://`` is an alias: ``kvm:///`` → ``qemu:///system``, ``kvm:///session`` →
  ``qemu:///session``, ``kvm+ssh://h/`` → ``qemu+ssh://h/system``.
* Query options of ours (:data:`OPTIONS`) are removed from the URI handed to
  libvirt; libvirt's own (``socket=``, ``keyfile=``, ``no_verify=``, ``command=``…)
  stay. The same options are accepted as keyword arguments of
  :func:`virtabstract.connect`, which win over the URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from virtabstract import URL, option_bool
from virtabstract.errors import InvalidURL

__all__ = ["OPTIONS", "ConnectOptions", "libvirt_uri", "parse_options"]

OPTIONS: Mapping[str, str] = {
    "pool": "storage pool for new disks when Disk.storage is not given (default: 'default', else the only pool)",
    "domain_type": "force the libvirt domain type: 'kvm' or 'qemu' (TCG); default: detected from capabilities",
    "shutdown_method": "how shutdown() asks the guest: 'acpi' (default) or 'agent' (qemu-guest-agent)",
    "keepalive": "keepalive 'interval,count' in seconds for remote URIs (default '5,3'; '0' turns it off)",
    "events": "run libvirt's event loop in a background thread (default true; needed for keepalive and events)",
    "readonly": "open the connection read-only",
}
"""Backend options, from the URL query or :func:`virtabstract.connect` keyword arguments."""

_ALIAS_PATHS = {"": "/system", "/": "/system"}


@dataclass(frozen=True)
class ConnectOptions:
    """The backend options after validation."""

    pool: str | None = None
    domain_type: str | None = None
    shutdown_method: str = "acpi"
    keepalive: tuple[int, int] = (5, 3)
    events: bool = True
    readonly: bool = False


def libvirt_uri(url: URL) -> str:
    """The URI libvirt is opened with: the alias resolved, our options removed, no password."""
    scheme, path = url.scheme, url.path
    if url.driver == "kvm":
        scheme = "qemu" + (f"+{url.transport}" if url.transport else "")
        path = _ALIAS_PATHS.get(path, path)
    query = {k: v for k, v in url.query.items() if k not in OPTIONS}
    return url.set(scheme=scheme, path=path, password=None, query=query).render(hide_password=False)


def _keepalive(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        parts = [str(v) for v in value]
    else:
        parts = str(value).replace(" ", "").split(",")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 1 and numbers[0] == 0:
        return (0, 0)
    if len(numbers) != 2 or numbers[0] < 1 or numbers[1] < 0:
        raise InvalidURL(f"option keepalive={value!r}: expected 'interval,count' such as '5,3', or '0'")
    return numbers[0], numbers[1]


def parse_options(url: URL, options: Mapping[str, Any]) -> ConnectOptions:
    """Merge URL query options with keyword *options* (which win) and validate them."""
    merged: dict[str, Any] = {k: v for k, v in url.query.items() if k in OPTIONS}
    merged.update(options)
    unknown = sorted(set(merged) - set(OPTIONS))
    if unknown:
        raise InvalidURL(f"unknown kvm option(s): {', '.join(unknown)} (accepted: {', '.join(sorted(OPTIONS))})")
    domain_type = merged.get("domain_type")
    if domain_type is not None and domain_type not in ("kvm", "qemu", "test"):
        raise InvalidURL(f"option domain_type={domain_type!r}: expected 'kvm' or 'qemu'")
    method = merged.get("shutdown_method", "acpi")
    if method not in ("acpi", "agent"):
        raise InvalidURL(f"option shutdown_method={method!r}: expected 'acpi' or 'agent'")
    pool = merged.get("pool")
    if pool is not None and (not isinstance(pool, str) or not pool):
        raise InvalidURL(f"option pool={pool!r}: expected a storage pool name")
    return ConnectOptions(
        pool=pool,
        domain_type=domain_type,
        shutdown_method=method,
        keepalive=_keepalive(merged.get("keepalive", "5,3")),
        events=option_bool("events", merged.get("events", True)),
        readonly=option_bool("readonly", merged.get("readonly", False)),
    )
