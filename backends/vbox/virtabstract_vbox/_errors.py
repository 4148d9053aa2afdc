"""Every VirtualBox error mapped to the virtabstract tree, in one place.

VBoxManage reports a failure as exit status 1 (2 for a syntax error) and a
triplet on stderr::

    VBoxManage: error: Could not find a registered machine named 'web1'
    VBoxManage: error: Details: code VBOX_E_OBJECT_NOT_FOUND (0x80bb0001), component VirtualBoxWrap,
        interface IVirtualBox, callee nsISupports          (one line in reality)
    VBoxManage: error: Context: "FindMachine(Bstr(a->argv[0]).raw(), machine.asOutParam())" at line 2782 of
        file VBoxManageInfo.cpp                            (one line in reality)

:func:`map_vboxmanage_failure` turns that into an exception: message patterns
first (they are more precise than codes), then the result code, then
:class:`~virtabstract.errors.BackendError`. The API transport maps its HRESULTs
through :func:`exception_for_code` with the same table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from virtabstract.errors import (
    AlreadyExists,
    BackendError,
    ConnectionFailed,
    GuestAgentUnavailable,
    GuestError,
    GuestFileNotFound,
    InvalidState,
    NetworkNotFound,
    NotFound,
    OperationTimeout,
    SnapshotNotFound,
    SpecError,
    UnsupportedOperation,
    VirtAbstractError,
    VMNotFound,
)

__all__ = [
    "ERROR_CODES",
    "MESSAGE_RULES",
    "VBoxManageFailure",
    "exception_for_code",
    "exception_for_hresult",
    "map_vboxmanage_failure",
    "parse_stderr",
]

ERROR_CODES: dict[str, int] = {
    "VBOX_E_OBJECT_NOT_FOUND": 0x80BB0001,
    "VBOX_E_INVALID_VM_STATE": 0x80BB0002,
    "VBOX_E_VM_ERROR": 0x80BB0003,
    "VBOX_E_FILE_ERROR": 0x80BB0004,
    "VBOX_E_IPRT_ERROR": 0x80BB0005,
    "VBOX_E_PDM_ERROR": 0x80BB0006,
    "VBOX_E_INVALID_OBJECT_STATE": 0x80BB0007,
    "VBOX_E_HOST_ERROR": 0x80BB0008,
    "VBOX_E_NOT_SUPPORTED": 0x80BB0009,
    "VBOX_E_XML_ERROR": 0x80BB000A,
    "VBOX_E_INVALID_SESSION_STATE": 0x80BB000B,
    "VBOX_E_OBJECT_IN_USE": 0x80BB000C,
    "VBOX_E_PASSWORD_INCORRECT": 0x80BB000D,
    "VBOX_E_MAXIMUM_REACHED": 0x80BB000E,
    "VBOX_E_GSTCTL_GUEST_ERROR": 0x80BB000F,
    "VBOX_E_TIMEOUT": 0x80BB0010,
    "E_ACCESSDENIED": 0x80070005,
    "E_INVALIDARG": 0x80070057,
    "E_OUTOFMEMORY": 0x8007000E,
    "E_NOTIMPL": 0x80004001,
    "E_FAIL": 0x80004005,
    "E_UNEXPECTED": 0x8000FFFF,
    "E_POINTER": 0x80004003,
    "E_NOINTERFACE": 0x80004002,
    "E_ABORT": 0x80004004,
}
"""VirtualBox and COM result codes by name (``VBoxErrorObjectNotFound`` … in pyvbox)."""

_CODE_NAMES = {value: name for name, value in ERROR_CODES.items()}


@dataclass(frozen=True)
class VBoxManageFailure:
    """A parsed VBoxManage error: the message lines, the result code and the context."""

    messages: tuple[str, ...]
    code_name: str = ""
    code: int | None = None
    context: str = ""

    @property
    def message(self) -> str:
        """The error messages joined into one line."""
        return " ".join(self.messages)


_ERROR_PREFIX = re.compile(r"^VBoxManage(?:\.exe)?: error: ?(.*)$")
_DETAILS = re.compile(r"^Details: code (\w+) \((0x[0-9a-fA-F]+)\)")
_SYNTAX = re.compile(r"^(?:VBoxManage(?:\.exe)?: error: )?(Unknown option|Invalid parameter|Syntax error|Unknown sub)")


def parse_stderr(stderr: str) -> VBoxManageFailure:
    """Extract the messages, code and context from VBoxManage's stderr."""
    messages: list[str] = []
    code_name = ""
    code: int | None = None
    context = ""
    for raw in stderr.splitlines():
        line = raw.strip()
        match = _ERROR_PREFIX.match(line)
        if not match:
            continue
        text = match.group(1).strip()
        details = _DETAILS.match(text)
        if details:
            code_name = details.group(1)
            code = int(details.group(2), 16)
        elif text.startswith("Context:"):
            context = text[len("Context:") :].strip()
        elif text:
            messages.append(text)
    if not messages:
        other = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
        messages = other[-1:] if other else []
    if code is None and code_name in ERROR_CODES:
        code = ERROR_CODES[code_name]
    if code is not None and not code_name:
        code_name = _CODE_NAMES.get(code, "")
    return VBoxManageFailure(tuple(messages), code_name, code, context)


_Factory = Callable[[str, VBoxManageFailure], VirtAbstractError]


def _state(msg: str, failure: VBoxManageFailure) -> VirtAbstractError:
    return InvalidState(msg)


def _backend_error(msg: str, failure: VBoxManageFailure) -> VirtAbstractError:
    return BackendError(msg, code=failure.code_name or failure.code)


MESSAGE_RULES: tuple[tuple[re.Pattern[str], _Factory], ...] = (
    (re.compile(r"Could not find a registered machine", re.I), lambda m, f: VMNotFound(m)),
    (re.compile(r"Could not find a snapshot", re.I), lambda m, f: SnapshotNotFound(m)),
    (
        re.compile(r"Could not find (?:a )?host(?:-only)? (?:network )?interface|Could not find a NAT network", re.I),
        lambda m, f: NetworkNotFound(m),
    ),
    (
        re.compile(r"Guest OS type '.*' is invalid|Unknown OS type", re.I),
        lambda m, f: SpecError("guest_os", "an OSTypeId this VirtualBox knows (VBoxManage list ostypes)", hint=m),
    ),
    (re.compile(r"settings file .* already exists|already exists", re.I), lambda m, f: AlreadyExists(m)),
    (re.compile(r"already locked|is locked|being locked or unlocked", re.I), _state),
    (
        re.compile(
            r"Invalid machine state|not currently running|is not running|machine is not mutable|"
            r"state is (?:Running|Paused|Saved|PoweredOff)|Cannot (?:unregister|delete|restore)",
            re.I,
        ),
        _state,
    ),
    (
        re.compile(
            r"Guest Additions (?:are not|is not|not) (?:installed|running|ready|active)|"
            r"VERR_NOT_FOUND.*guest|no guest session|Guest control is not available",
            re.I,
        ),
        lambda m, f: GuestAgentUnavailable(m),
    ),
    (re.compile(r"VERR_(?:FILE|PATH)_NOT_FOUND|No such file or directory", re.I), lambda m, f: GuestFileNotFound(m)),
    (re.compile(r"not able to logon|VERR_AUTHENTICATION_FAILURE|password incorrect", re.I), lambda m, f: GuestError(m)),
    (re.compile(r"VERR_TIMEOUT|timed out|timeout", re.I), lambda m, f: OperationTimeout(m)),
    (
        re.compile(
            r"Failed to create the VirtualBox object|VBoxSVC|Failed to initialize COM|"
            r"The object is not ready",
            re.I,
        ),
        lambda m, f: ConnectionFailed(m),
    ),
)
"""Message patterns, tried in order before the result code."""

CODE_RULES: dict[str, _Factory] = {
    "VBOX_E_OBJECT_NOT_FOUND": lambda m, f: NotFound(m),
    "VBOX_E_INVALID_VM_STATE": _state,
    "VBOX_E_INVALID_OBJECT_STATE": _state,
    "VBOX_E_INVALID_SESSION_STATE": _state,
    "VBOX_E_OBJECT_IN_USE": _state,
    "VBOX_E_TIMEOUT": lambda m, f: OperationTimeout(m),
    "VBOX_E_GSTCTL_GUEST_ERROR": lambda m, f: GuestError(m),
    "VBOX_E_PASSWORD_INCORRECT": lambda m, f: GuestError(m),
    "VBOX_E_NOT_SUPPORTED": lambda m, f: UnsupportedOperation("vbox", "this operation", m),
    "VBOX_E_FILE_ERROR": _backend_error,
    "VBOX_E_IPRT_ERROR": _backend_error,
    "VBOX_E_HOST_ERROR": _backend_error,
    "VBOX_E_VM_ERROR": _backend_error,
    "VBOX_E_PDM_ERROR": _backend_error,
    "VBOX_E_XML_ERROR": _backend_error,
    "VBOX_E_MAXIMUM_REACHED": _backend_error,
    "E_ACCESSDENIED": lambda m, f: ConnectionFailed(f"access denied by VirtualBox: {m}"),
    "E_INVALIDARG": _backend_error,
    "E_FAIL": _backend_error,
}
"""Result code → exception factory, when no message pattern matched."""


def exception_for_code(code_name: str, message: str) -> VirtAbstractError:
    """Map a result code name (``"VBOX_E_INVALID_VM_STATE"``) and its message to an exception."""
    failure = VBoxManageFailure((message,), code_name, ERROR_CODES.get(code_name))
    return _map(failure)


def exception_for_hresult(code: int, message: str) -> VirtAbstractError:
    """Map an API failure (a COM/XPCOM exception or an IProgress ``resultCode``) to an exception.

    :param code: the HRESULT; XPCOM reports it as a signed 32-bit int, so it is normalised.
    :param message: the error text (``errorInfo.text`` or the exception's message).
    """
    unsigned = code & 0xFFFFFFFF
    failure = VBoxManageFailure((message,), _CODE_NAMES.get(unsigned, f"0x{unsigned:08X}"), unsigned)
    return _map(failure)


def _map(failure: VBoxManageFailure) -> VirtAbstractError:
    message = failure.message or "VBoxManage failed without a message"
    shown = f"{message} ({failure.code_name})" if failure.code_name else message
    for pattern, factory in MESSAGE_RULES:
        if pattern.search(message):
            return factory(shown, failure)
    if failure.code_name in CODE_RULES:
        return CODE_RULES[failure.code_name](shown, failure)
    return BackendError(shown, code=failure.code_name or failure.code)


def map_vboxmanage_failure(argv: list[str], returncode: int, stderr: str) -> VirtAbstractError:
    """Turn a failed VBoxManage run into the exception to raise.

    :param argv: the arguments after the executable (for the message; never holds secrets).
    :param returncode: VBoxManage's exit status.
    :param stderr: its standard error.
    """
    failure = parse_stderr(stderr)
    error = _map(failure)
    if isinstance(error, BackendError) and returncode == 2 and not failure.code_name:
        error = BackendError(f"VBoxManage {' '.join(argv[:2])}: syntax error: {failure.message}", code="syntax")
    if isinstance(error, BackendError) and error.orig is None:
        error.orig = RuntimeError(stderr.strip()[-2000:])
    return error
