"""Every vSphere fault the backend can meet, mapped to the core error tree in one place.

:func:`map_vim_faults` wraps each backend operation. pyVmomi raises SOAP faults as
exceptions (``vim.fault.InvalidPowerState`` …) and returns task failures as
``task.info.error`` objects, which :mod:`._tasks` raises inside the same context
manager, so both paths go through :data:`FAULT_TABLE`.

Faults are matched by their vim type *name* along the class hierarchy, most
specific first: ``vim.fault.InvalidPowerState`` has its own row, any other
``vim.fault.InvalidState`` subclass falls back to the ``InvalidState`` row, and
anything unknown becomes :class:`~virtabstract.errors.BackendError` with the
fault as ``.orig``. Name matching needs no pyVmomi import, which keeps the
table testable on its own.

Python-level errors (TLS, refused connections, dropped sockets) are mapped
here too: while connecting they are :class:`ConnectionFailed`, afterwards
:class:`ConnectionLost`.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from virtabstract import PowerState
from virtabstract.errors import (
    AlreadyExists,
    AuthenticationFailed,
    BackendError,
    ConnectionFailed,
    ConnectionLost,
    DeviceNotFound,
    GuestAgentUnavailable,
    GuestError,
    GuestFileNotFound,
    InvalidState,
    NetworkNotFound,
    NotFound,
    OperationTimeout,
    SnapshotNotFound,
    SpecError,
    StorageNotFound,
    UnsupportedOperation,
    UsageError,
    VirtAbstractError,
    VMNotFound,
)

from ._sdk import fault_names
from ._states import map_state

__all__ = ["FAULT_TABLE", "TLS_HINT", "FaultContext", "map_exception", "map_vim_faults"]

log = logging.getLogger("virtabstract.esxi")

BACKEND = "esxi"

TLS_HINT = (
    "the server's TLS certificate is not trusted; add ?ca_file=/path/to/ca.pem to the URL "
    "(the CA that signed the ESXi/vCenter certificate), or ?no_verify=1 to skip verification (insecure)"
)
"""Appended to every certificate-verification failure: the fix, named."""


@dataclass(frozen=True)
class FaultContext:
    """What the operation was doing, so a fault can be described precisely.

    :ivar operation: the backend operation (``"start"``, ``"snapshot_revert"``, ``"guest_read_file"``).
    :ivar subject: what it acted on, for messages (``"VM 'web1'"``).
    :ivar not_found: the NotFound subclass a plain ``vim.fault.NotFound`` means here.
    :ivar connecting: true while the connection is being opened.
    """

    operation: str = ""
    subject: str = ""
    not_found: type[NotFound] = VMNotFound
    connecting: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


def _msg(fault: BaseException) -> str:
    """The fault's own message (``msg`` or the first localized message), without the data-object dump."""
    text = getattr(fault, "msg", None)
    if not text:
        for message in getattr(fault, "faultMessage", None) or ():
            text = getattr(message, "message", None)
            if text:
                break
    if not text:
        text = type(fault).__name__.rsplit(".", 1)[-1]
    return str(text)


def _prefix(ctx: FaultContext) -> str:
    parts = [p for p in (ctx.operation.replace("_", " "), ctx.subject) if p]
    return (" ".join(parts) + ": ") if parts else ""


def _not_found(fault: BaseException, ctx: FaultContext) -> VirtAbstractError:
    return ctx.not_found(f"{_prefix(ctx)}{_msg(fault)}")


def _managed_object_not_found(fault: BaseException, ctx: FaultContext) -> VirtAbstractError:
    obj = getattr(fault, "obj", None)
    kind = getattr(obj, "_wsdlName", "") if obj is not None else ""
    moid = getattr(obj, "_moId", "?") if obj is not None else "?"
    cls: type[NotFound] = {
        "VirtualMachine": VMNotFound,
        "VirtualMachineSnapshot": SnapshotNotFound,
        "Datastore": StorageNotFound,
        "Network": NetworkNotFound,
        "DistributedVirtualPortgroup": NetworkNotFound,
    }.get(kind, ctx.not_found)
    return cls(f"{_prefix(ctx)}the {kind or 'object'} {moid} no longer exists")


def _invalid_power_state(fault: BaseException, ctx: FaultContext) -> VirtAbstractError:
    existing = getattr(fault, "existingState", None)
    state = map_state(str(existing)) if existing else None
    detail = f" (it is {state.value})" if state is not None else ""
    return InvalidState(f"{_prefix(ctx)}{_msg(fault)}{detail}", state=state, operation=ctx.operation)


def _invalid_state(fault: BaseException, ctx: FaultContext) -> VirtAbstractError:
    return InvalidState(f"{_prefix(ctx)}{_msg(fault)}", operation=ctx.operation)


def _unsupported(fault: BaseException, ctx: FaultContext) -> VirtAbstractError:
    return UnsupportedOperation(BACKEND, ctx.operation or "this operation", f"the server refused: {_msg(fault)}")


def _invalid_argument(fault: BaseException, ctx: FaultContext) -> VirtAbstractError:
    prop = getattr(fault, "invalidProperty", None) or getattr(fault, "property", None)
    if prop:
        return SpecError(str(prop), "a value the server accepts", hint=_msg(fault))
    return UsageError(f"{_prefix(ctx)}invalid argument: {_msg(fault)}")


def _invalid_config(fault: BaseException, ctx: FaultContext) -> VirtAbstractError:
    prop = getattr(fault, "property", None) or getattr(fault, "invalidProperty", None) or "config"
    return SpecError(str(prop), "a configuration the server accepts", hint=_msg(fault))


def _simple(cls: Callable[[str], VirtAbstractError], text: str = "") -> Callable[[BaseException, FaultContext], Any]:
    def build(fault: BaseException, ctx: FaultContext) -> VirtAbstractError:
        return cls(f"{_prefix(ctx)}{text or _msg(fault)}")

    return build


def _timeout(fault: BaseException, ctx: FaultContext) -> VirtAbstractError:
    return OperationTimeout(f"{_prefix(ctx)}the server timed out: {_msg(fault)}")


def _not_authenticated(fault: BaseException, ctx: FaultContext) -> VirtAbstractError:
    # The session wrapper re-logs in once; reaching here means that did not help.
    return ConnectionLost(f"{_prefix(ctx)}the vSphere session ended and logging in again did not restore it")


def _invalid_login(fault: BaseException, ctx: FaultContext) -> VirtAbstractError:
    return AuthenticationFailed("the ESXi/vCenter server refused the user name or password")


def _file_not_found(fault: BaseException, ctx: FaultContext) -> VirtAbstractError:
    name = getattr(fault, "file", "") or ""
    if ctx.operation.startswith("guest"):
        return GuestFileNotFound(f"{_prefix(ctx)}no such file in the guest: {name or _msg(fault)}")
    return StorageNotFound(f"{_prefix(ctx)}no such datastore file: {name or _msg(fault)}")


def _guest_login(fault: BaseException, ctx: FaultContext) -> VirtAbstractError:
    return GuestError(
        f"{_prefix(ctx)}the guest refused the credentials (set guest_username/guest_password or "
        "VIRTABSTRACT_GUEST_USERNAME/VIRTABSTRACT_GUEST_PASSWORD)"
    )


def _tools_unavailable(fault: BaseException, ctx: FaultContext) -> VirtAbstractError:
    return GuestAgentUnavailable(f"{_prefix(ctx)}VMware Tools are not running in the guest ({_msg(fault)})")


def _permission(fault: BaseException, ctx: FaultContext) -> VirtAbstractError:
    privilege = getattr(fault, "privilegeId", "") or ""
    need = f" (needs privilege {privilege})" if privilege else ""
    return BackendError(f"{_prefix(ctx)}permission denied{need}", orig=fault, code="NoPermission")


FaultMapper = Callable[[BaseException, FaultContext], VirtAbstractError]

FAULT_TABLE: Mapping[str, FaultMapper] = MappingProxyType(
    {
        # sessions and connections
        "vim.fault.InvalidLogin": _invalid_login,
        "vim.fault.NotAuthenticated": _not_authenticated,
        "vim.fault.HostConnectFault": _simple(ConnectionFailed),
        "vim.fault.NoPermission": _permission,
        "vmodl.fault.SecurityError": _permission,
        # lookups
        "vmodl.fault.ManagedObjectNotFound": _managed_object_not_found,
        "vim.fault.NotFound": _not_found,
        "vim.fault.InvalidDatastore": _simple(StorageNotFound),
        "vim.fault.FileNotFound": _file_not_found,
        # names
        "vim.fault.DuplicateName": _simple(AlreadyExists),
        "vim.fault.AlreadyExists": _simple(AlreadyExists),
        "vim.fault.FileAlreadyExists": _simple(AlreadyExists),
        "vim.fault.InvalidName": _invalid_config,
        # states
        "vim.fault.InvalidPowerState": _invalid_power_state,
        "vim.fault.TaskInProgress": _invalid_state,
        "vim.fault.InvalidState": _invalid_state,
        "vmodl.fault.NotEnoughLicenses": _unsupported,
        # capability
        "vmodl.fault.NotSupported": _unsupported,
        "vim.fault.NotSupportedHost": _unsupported,
        "vmodl.fault.NotImplemented": _unsupported,
        "vmodl.fault.MethodNotFound": _unsupported,
        "vim.fault.DisallowedOperationOnFailoverHost": _unsupported,
        "vim.fault.SnapshotFault": _invalid_state,
        # arguments and configuration
        "vim.fault.InvalidDeviceSpec": _invalid_config,
        "vim.fault.DeviceNotFound": _simple(DeviceNotFound),
        "vim.fault.InvalidVmConfig": _invalid_config,
        "vim.fault.VmConfigFault": _invalid_config,
        "vmodl.fault.InvalidArgument": _invalid_argument,
        "vmodl.fault.InvalidRequest": _invalid_argument,
        # guest operations (VMware Tools)
        "vim.fault.InvalidGuestLogin": _guest_login,
        "vim.fault.GuestPermissionDenied": _simple(GuestError),
        "vim.fault.GuestOperationsUnavailable": _tools_unavailable,
        "vim.fault.ToolsUnavailable": _tools_unavailable,
        "vim.fault.GuestComponentsOutOfDate": _tools_unavailable,
        "vim.fault.GuestOperationsFault": _simple(GuestError),
        # time
        "vim.fault.Timedout": _timeout,
        "vmodl.fault.RequestCanceled": _timeout,
    }
)
"""vim fault type name → builder of the core error. Matched along the class hierarchy."""


def map_exception(exc: BaseException, ctx: FaultContext) -> BaseException:
    """Return the core error for *exc* (or *exc* itself when it already is one)."""
    if isinstance(exc, VirtAbstractError):
        return exc
    for name in fault_names(exc):
        mapper = FAULT_TABLE.get(name)
        if mapper is not None:
            return mapper(exc, ctx)
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc
        return ConnectionFailed(f"TLS verification failed ({detail}): {TLS_HINT}")
    if isinstance(exc, ssl.SSLError):
        return ConnectionFailed(
            f"TLS handshake failed ({getattr(exc, 'reason', None) or exc}); for an http-only server add ?protocol=http"
        )
    if isinstance(exc, TimeoutError) and not ctx.connecting:
        # The socket timed out waiting for the answer: the connection is fine and the
        # server may still complete the call, so this is a timeout, not a lost connection.
        return OperationTimeout(f"{_prefix(ctx)}no answer from the server in time ({exc})")
    connection_errors = (ConnectionError, http.client.HTTPException, socket.gaierror, socket.timeout, OSError)
    if isinstance(exc, connection_errors):
        if ctx.connecting:
            return ConnectionFailed(f"could not reach the server: {type(exc).__name__}: {exc}")
        return ConnectionLost(f"{_prefix(ctx)}the connection to the server was lost: {type(exc).__name__}: {exc}")
    names = fault_names(exc)
    if any(n.startswith(("vim.", "vmodl.")) for n in names):
        code = names[0].rsplit(".", 1)[-1]
        return BackendError(f"{_prefix(ctx)}vSphere fault {code}: {_msg(exc)}", orig=exc, code=code)
    return exc


@contextlib.contextmanager
def map_vim_faults(
    operation: str = "",
    subject: str = "",
    *,
    not_found: type[NotFound] = VMNotFound,
    connecting: bool = False,
) -> Iterator[FaultContext]:
    """Translate vSphere faults and transport errors raised inside the block to the core tree.

    The native exception stays reachable as ``__cause__`` (and ``.orig`` on BackendError).
    Python programming errors (TypeError, KeyError …) pass through untouched.
    """
    ctx = FaultContext(operation, subject, not_found, connecting)
    try:
        yield ctx
    except VirtAbstractError:
        raise
    except Exception as exc:
        mapped = map_exception(exc, ctx)
        if mapped is exc:
            raise
        log.debug("mapped %s to %s during %s", type(exc).__name__, type(mapped).__name__, operation or "a call")
        raise mapped from exc


def state_from_fault(exc: BaseException) -> PowerState | None:
    """The VM state carried by an InvalidPowerState fault, if any."""
    existing = getattr(exc, "existingState", None)
    return map_state(str(existing)) if existing else None
