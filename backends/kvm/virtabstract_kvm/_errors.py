"""The one place where libvirt errors become virtabstract errors.

libvirt-python raises a single exception type, ``libvirtError``, carrying an
integer error code (``VIR_ERR_*``), the subsystem it came from (``VIR_FROM_*``)
and a message. :data:`RULES` maps them to the core error tree; the first rule
that matches wins, and anything unmatched becomes
:class:`~virtabstract.errors.BackendError` with the native exception as
``.orig`` (and ``__cause__``). Codes are named, not numbered, and resolved
against the installed libvirt module, so a name a given libvirt does not have
simply never matches.

Use :func:`map_libvirt_errors` around every libvirt call::

    with map_libvirt_errors("start VM web1"):
        dom.create()
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

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
    StorageNotFound,
    UnsupportedOperation,
    VirtAbstractError,
    VMNotFound,
)

from . import _sdk

__all__ = ["CALL", "GUEST", "OPEN", "RULES", "Rule", "map_libvirt_errors", "translate"]

OPEN = "open"
"""Phase of :func:`map_libvirt_errors` while a connection is being opened."""
CALL = "call"
"""Phase of every other call."""
GUEST = "guest"
"""Phase of a file operation through the guest agent (a missing path is :class:`GuestFileNotFound`)."""


@dataclass(frozen=True)
class Rule:
    """One mapping: libvirt error code (and optionally origin, message, phase) → error class."""

    codes: tuple[str, ...]
    """``VIR_ERR_*`` names (empty: any code)."""
    error: type[VirtAbstractError]
    origin: str | None = None
    """A ``VIR_FROM_*`` name the error must come from."""
    message: tuple[str, ...] = ()
    """Lower-case substrings of which the message must contain one."""
    phase: str | None = None
    """:data:`OPEN`, :data:`CALL` or :data:`GUEST`; ``None`` for every phase but OPEN's catch-all order."""

    def matches(self, code: int, origin: int, message: str, phase: str) -> bool:
        """True when the error described by the arguments is covered by this rule."""
        lv = _sdk.libvirt()
        if self.phase is not None and self.phase != phase:
            return False
        if self.codes and code not in {getattr(lv, name, None) for name in self.codes}:
            return False
        if self.origin is not None and origin != getattr(lv, self.origin, None):
            return False
        return not self.message or any(m in message.lower() for m in self.message)


_LOST = ("VIR_ERR_INTERNAL_ERROR", "VIR_ERR_SYSTEM_ERROR", "VIR_ERR_RPC", "VIR_ERR_NO_CONNECT")
_AUTH = ("VIR_ERR_AUTH_FAILED", "VIR_ERR_AUTH_CANCELLED", "VIR_ERR_AUTH_UNAVAILABLE")
_UNSUPPORTED = (
    "VIR_ERR_NO_SUPPORT",
    "VIR_ERR_OPERATION_UNSUPPORTED",
    "VIR_ERR_ARGUMENT_UNSUPPORTED",
    "VIR_ERR_CONFIG_UNSUPPORTED",
)

RULES: tuple[Rule, ...] = (
    # -- opening a connection ---------------------------------------------------------
    Rule((*_AUTH, "VIR_ERR_ACCESS_DENIED"), AuthenticationFailed, phase=OPEN),
    Rule(
        ("VIR_ERR_INVALID_ARG", "VIR_ERR_OPERATION_FAILED"),
        AuthenticationFailed,
        phase=OPEN,
        message=("authentication", "credentials", "password"),
    ),
    Rule((), ConnectionFailed, phase=OPEN),  # refused, unknown host, TLS, SSH, no driver …
    # -- a connection that went away ------------------------------------------------------
    Rule(_LOST, ConnectionLost, origin="VIR_FROM_RPC"),
    Rule(_LOST, ConnectionLost, origin="VIR_FROM_REMOTE"),
    Rule(("VIR_ERR_INVALID_CONN", "VIR_ERR_NO_CONNECT"), ConnectionLost),
    Rule((), ConnectionLost, message=("client socket is closed", "connection is closed", "end of file while reading")),
    # -- things that are not there ----------------------------------------------------------
    Rule(("VIR_ERR_NO_DOMAIN",), VMNotFound),
    Rule(("VIR_ERR_NO_DOMAIN_SNAPSHOT",), SnapshotNotFound),
    Rule(("VIR_ERR_NO_NETWORK",), NetworkNotFound),
    Rule(("VIR_ERR_NO_STORAGE_POOL", "VIR_ERR_NO_STORAGE_VOL"), StorageNotFound),
    Rule(("VIR_ERR_DEVICE_MISSING",), DeviceNotFound),
    Rule(("VIR_ERR_NO_DOMAIN_METADATA", "VIR_ERR_NO_DOMAIN_CHECKPOINT", "VIR_ERR_NO_SECRET"), NotFound),
    # -- names taken ------------------------------------------------------------------------
    Rule(("VIR_ERR_DOM_EXIST", "VIR_ERR_STORAGE_VOL_EXIST", "VIR_ERR_NETWORK_EXIST"), AlreadyExists),
    Rule(
        ("VIR_ERR_OPERATION_FAILED", "VIR_ERR_INTERNAL_ERROR", "VIR_ERR_INVALID_ARG"),
        AlreadyExists,
        message=("already exists", "exists already"),
    ),
    # -- the guest agent --------------------------------------------------------------------
    Rule(
        (
            "VIR_ERR_AGENT_UNRESPONSIVE",
            "VIR_ERR_AGENT_UNSYNCED",
            "VIR_ERR_AGENT_COMMAND_TIMEOUT",
            "VIR_ERR_AGENT_COMMAND_FAILED",
        ),
        GuestAgentUnavailable,
    ),
    Rule((*_UNSUPPORTED, "VIR_ERR_OPERATION_INVALID"), GuestAgentUnavailable, message=("guest agent",)),
    Rule((), GuestFileNotFound, message=("no such file or directory", "cannot find the file"), phase=GUEST),
    Rule(("VIR_ERR_INTERNAL_ERROR",), GuestError, message=("agent command",)),
    # -- state, support, time -------------------------------------------------------------------
    Rule(("VIR_ERR_OPERATION_INVALID",), InvalidState),
    Rule(("VIR_ERR_INVALID_ARG",), UnsupportedOperation, message=("unsupported flags",)),
    Rule(_UNSUPPORTED, UnsupportedOperation),
    Rule(("VIR_ERR_OPERATION_TIMEOUT",), OperationTimeout),
    Rule(_AUTH, AuthenticationFailed),
)
"""The mapping, first match wins; everything else becomes :class:`BackendError`."""


def _make(error: type[VirtAbstractError], what: str, text: str, exc: Any, code: int) -> VirtAbstractError:
    message = f"{what}: {text}" if what else text
    builders: dict[type[VirtAbstractError], Callable[[], VirtAbstractError]] = {
        UnsupportedOperation: lambda: UnsupportedOperation("kvm", what or "this operation", text),
        OperationTimeout: lambda: OperationTimeout(message),
        InvalidState: lambda: InvalidState(message),
        BackendError: lambda: BackendError(message, orig=exc, code=code),
    }
    built = builders.get(error, lambda: error(message))()
    built.orig = exc  # type: ignore[attr-defined]
    return built


def translate(exc: BaseException, *, what: str = "", phase: str = CALL) -> VirtAbstractError:
    """Return the virtabstract error for a ``libvirtError`` (*what* prefixes the message)."""
    get = getattr(exc, "get_error_code", None)
    code = int(get() or 0) if get is not None else 0
    origin = int(exc.get_error_domain() or 0) if get is not None else 0  # type: ignore[attr-defined]
    text = (exc.get_error_message() if get is not None else None) or str(exc)  # type: ignore[attr-defined]
    for rule in RULES:
        if rule.matches(code, origin, text, phase):
            return _make(rule.error, what, text, exc, code)
    return _make(BackendError, what, text, exc, code)


@contextmanager
def map_libvirt_errors(what: str = "", *, phase: str = CALL) -> Iterator[None]:
    """Translate any ``libvirtError`` raised inside the block (see :data:`RULES`)."""
    lv = _sdk.libvirt()
    try:
        yield
    except lv.libvirtError as exc:
        raise translate(exc, what=what, phase=phase) from exc
