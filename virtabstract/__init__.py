"""virtabstract: one Python API for virtual machines on KVM, VMware ESXi and VirtualBox.

::

    import virtabstract
    from virtabstract import VMSpec, Disk, Nic

    with virtabstract.connect("mock://") as hv:
        vm = hv.vms.create(VMSpec(name="web1", cpus=2, memory="2GiB", guest_os="ubuntu-22.04",
                                  disks=[Disk(size="20GiB")], nics=[Nic(network="default")]))
        vm.start()

Importing this package loads no hypervisor SDK and no plugin: backends are
found and imported when :func:`connect` first needs them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from . import errors
from ._backend import Backend, Credentials, check_transition, snapshot_deletion_order
from ._catalog import GuestOS, all_guest_oses, get_guest_os, guest_os_from_native, guest_os_ids
from ._hypervisor import VM, Guest, Hypervisor, OperationContext, Snapshot, SnapshotCollection, VMCollection
from ._model import (
    Capability,
    ConsoleInfo,
    DiskInfo,
    ExecResult,
    Firmware,
    GuestInfo,
    HostInfo,
    IPAddressInfo,
    NetworkInfo,
    NicInfo,
    OSFamily,
    PowerState,
    ReconfigureChange,
    ReconfigurePlan,
    ResourceAllocation,
    Secret,
    ShutdownResult,
    SnapshotInfo,
    StorageInfo,
    VMInfo,
    VMSummary,
    to_dict,
)
from ._plugins import BackendRegister, PluginManager, get_plugin_manager
from ._security import InsecureConnectionWarning, warn_insecure
from ._spec import CdRom, Disk, Nic, VMSpec, load_spec, spec_schema
from ._units import format_size, parse_size
from ._url import URL, make_url, option_bool, option_seconds
from ._wait import Clock, ManualClock, SystemClock, wait_until
from .hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "URL",
    "VM",
    "Backend",
    "BackendRegister",
    "Capability",
    "CdRom",
    "Clock",
    "ConsoleInfo",
    "Credentials",
    "Disk",
    "DiskInfo",
    "ExecResult",
    "Firmware",
    "Guest",
    "GuestInfo",
    "GuestOS",
    "HostInfo",
    "Hypervisor",
    "IPAddressInfo",
    "InsecureConnectionWarning",
    "ManualClock",
    "NetworkInfo",
    "Nic",
    "NicInfo",
    "OSFamily",
    "OperationContext",
    "PluginManager",
    "PowerState",
    "ReconfigureChange",
    "ReconfigurePlan",
    "ResourceAllocation",
    "Secret",
    "ShutdownResult",
    "Snapshot",
    "SnapshotCollection",
    "SnapshotInfo",
    "StorageInfo",
    "SystemClock",
    "VMCollection",
    "VMInfo",
    "VMSpec",
    "VMSummary",
    "__version__",
    "all_guest_oses",
    "check_transition",
    "connect",
    "errors",
    "format_size",
    "get_guest_os",
    "get_plugin_manager",
    "guest_os_from_native",
    "guest_os_ids",
    "hookimpl",
    "load_spec",
    "make_url",
    "option_bool",
    "option_seconds",
    "parse_size",
    "snapshot_deletion_order",
    "spec_schema",
    "to_dict",
    "wait_until",
    "warn_insecure",
]

log = logging.getLogger("virtabstract")
log.addHandler(logging.NullHandler())

ENV_USERNAME = "VIRTABSTRACT_USERNAME"
ENV_PASSWORD = "VIRTABSTRACT_PASSWORD"  # noqa: S105 - the variable's name, not a secret


def connect(
    url: str | URL,
    *,
    username: str | None = None,
    password: str | Secret | None = None,
    plugin_manager: PluginManager | None = None,
    **options: Any,
) -> Hypervisor:
    """Open a connection to the hypervisor named by *url*; the backend is chosen by the URL's scheme.

    :param url: e.g. ``"mock://"``, ``"mock:///tmp/lab.json"``, ``"qemu:///system"``,
        ``"esx://esx1/?no_verify=1"``, ``"vpx://vcenter/DC1"``, ``"vbox:///session"``.
    :param username: overrides the URL's user; falls back to ``VIRTABSTRACT_USERNAME``.
    :param password: overrides the URL's password; falls back to ``VIRTABSTRACT_PASSWORD``.
        Never logged, never shown in reprs or errors.
    :param plugin_manager: an isolated :class:`PluginManager` (default: the shared one).
    :param options: backend options (see each backend's ``accepted_options``).
    :raises InvalidURL: the URL or an option is malformed or unknown.
    :raises BackendUnavailable: nothing serves the scheme, or its SDK is not installed.
    :raises ConnectionFailed: the hypervisor could not be reached.
    :raises AuthenticationFailed: the credentials were refused.
    """
    parsed = make_url(url)
    manager = plugin_manager or get_plugin_manager()
    backend_cls = manager.backend_for(parsed.scheme)
    unknown = sorted(set(options) - set(backend_cls.accepted_options))
    if unknown:
        accepted = ", ".join(sorted(backend_cls.accepted_options)) or "none"
        raise errors.InvalidURL(
            f"unknown option(s) for the {backend_cls.name} backend: {', '.join(unknown)} (accepted: {accepted})"
        )
    try:
        backend_cls.import_sdk()
    except ImportError as exc:
        hint = backend_cls.install_hint or f"the SDK of the {backend_cls.name} backend"
        raise errors.BackendUnavailable(f"the {backend_cls.name} backend needs {hint} ({exc.name or exc})") from exc
    credentials = _resolve_credentials(parsed, username, password, os.environ)
    backend = backend_cls(parsed.set(password=None), credentials, options)
    log.debug("connecting to %s with the %s backend", parsed, backend_cls.name)
    backend.open()
    hypervisor = Hypervisor(backend, parsed.set(password=None), manager)
    try:
        manager.hook.virtabstract_connection_opened(hypervisor=hypervisor)
    except BaseException:
        hypervisor.close()
        raise
    return hypervisor


def _resolve_credentials(
    url: URL, username: str | None, password: str | Secret | None, environ: Mapping[str, str]
) -> Credentials:
    """Explicit arguments win over the URL, which wins over the environment."""
    user = username or url.username or environ.get(ENV_USERNAME) or None
    raw: str | Secret | None = password if password is not None else url.password
    if raw is None and environ.get(ENV_PASSWORD):
        raw = environ[ENV_PASSWORD]
    secret = raw if isinstance(raw, Secret) or raw is None else Secret(raw)
    return Credentials(user, secret)


def _fix_module_names() -> None:
    """Show public objects as ``virtabstract.X`` (not ``virtabstract._model.X``) in reprs and docs."""
    for name in __all__:
        obj = globals().get(name)
        if isinstance(obj, type) or callable(obj):
            try:
                if getattr(obj, "__module__", "").startswith("virtabstract._"):
                    obj.__module__ = "virtabstract"
            except (AttributeError, TypeError):  # pragma: no cover - builtins
                pass


_fix_module_names()
