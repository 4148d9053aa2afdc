"""The virtabstract error tree.

Every error the library raises on purpose derives from :class:`VirtAbstractError`.
Backends translate their SDK's errors into this tree in exactly one place each
(a ``map_*_errors()`` context manager), keeping the native exception as
``.orig`` and as ``__cause__``::

    VirtAbstractError
     ├── UsageError (ValueError)          bad arguments outside a spec
     │    ├── InvalidURL                   a URL that cannot be parsed or has bad options
     │    └── SpecError                    a VMSpec/Disk/Nic field is wrong (carries .field)
     ├── HypervisorConnectionError        talking to the hypervisor failed
     │    ├── ConnectionFailed             could not connect (refused, TLS, DNS, …)
     │    ├── AuthenticationFailed         the credentials were refused
     │    └── ConnectionLost               an open connection went away
     ├── BackendUnavailable               no backend for the scheme, or its SDK is missing
     ├── NotFound (LookupError)           the thing named does not exist
     │    ├── VMNotFound
     │    ├── SnapshotNotFound
     │    ├── DeviceNotFound               a disk or NIC of a VM
     │    ├── NetworkNotFound
     │    ├── StorageNotFound              a storage pool or datastore
     │    └── GuestFileNotFound            a path inside the guest
     ├── AmbiguousName (LookupError)      a name matches several objects; use the id
     ├── AlreadyExists                    a VM/snapshot with that name already exists
     ├── InvalidState                     not allowed in the current power state (.state)
     ├── UnsupportedOperation             this backend cannot do it (.backend, .operation)
     ├── OperationTimeout (TimeoutError)  an operation or wait did not finish in time
     ├── OperationVetoed                  a policy plugin refused the operation
     ├── GuestError                       inside-the-guest operations
     │    ├── GuestAgentUnavailable        no agent/tools, or not answering
     │    └── GuestCommandFailed           ExecResult.check() on a non-zero exit
     └── BackendError                     anything else from the SDK (.orig)

Messages never contain secrets: connection errors name the URL with its
password masked, and backends must not interpolate credentials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._model import PowerState

__all__ = [
    "AlreadyExists",
    "AmbiguousName",
    "AuthenticationFailed",
    "BackendError",
    "BackendUnavailable",
    "ConnectionFailed",
    "ConnectionLost",
    "DeviceNotFound",
    "GuestAgentUnavailable",
    "GuestCommandFailed",
    "GuestError",
    "GuestFileNotFound",
    "HypervisorConnectionError",
    "InvalidState",
    "InvalidURL",
    "NetworkNotFound",
    "NotFound",
    "OperationTimeout",
    "OperationVetoed",
    "SnapshotNotFound",
    "SpecError",
    "StorageNotFound",
    "UnsupportedOperation",
    "UsageError",
    "VMNotFound",
    "VirtAbstractError",
]


class VirtAbstractError(Exception):
    """Base of every error virtabstract raises on purpose."""


class UsageError(VirtAbstractError, ValueError):
    """An argument given to the library is wrong (outside a spec)."""


class InvalidURL(UsageError):
    """A connection URL cannot be parsed, or carries an unknown option."""


class SpecError(UsageError):
    """A field of a spec (VMSpec, Disk, Nic, …) is invalid.

    :ivar field: dotted path of the offending field, e.g. ``"disks[0].size"``.
    :ivar expected: what would have been accepted.
    """

    def __init__(self, field: str, expected: str, got: Any = None, *, hint: str = "") -> None:
        self.field = field
        self.expected = expected
        self.got = got
        self.hint = hint
        message = f"{field}: expected {expected}"
        if got is not None:
            shown = repr(got)
            message += f", got {shown[:80] + '…' if len(shown) > 80 else shown}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)

    def within(self, prefix: str) -> SpecError:
        """Return the same error with *prefix* prepended to the field path."""
        joined = f"{prefix}{self.field}" if self.field.startswith("[") else f"{prefix}.{self.field}"
        err = SpecError(joined if prefix else self.field, self.expected, self.got, hint=self.hint)
        err.__cause__ = self.__cause__
        return err


class HypervisorConnectionError(VirtAbstractError):
    """Talking to the hypervisor failed."""


class ConnectionFailed(HypervisorConnectionError):
    """The connection could not be opened (refused, unreachable, TLS, …)."""


class AuthenticationFailed(HypervisorConnectionError):
    """The hypervisor refused the credentials."""


class ConnectionLost(HypervisorConnectionError):
    """An open connection went away and could not be transparently restored."""


class BackendUnavailable(VirtAbstractError):
    """No backend serves the URL's scheme, or the backend's SDK is not installed."""


class NotFound(VirtAbstractError, LookupError):
    """The object named does not exist."""


class VMNotFound(NotFound):
    """No VM has that id or name."""


class SnapshotNotFound(NotFound):
    """The VM has no snapshot with that id or name."""


class DeviceNotFound(NotFound):
    """The VM has no disk or NIC with that id."""


class NetworkNotFound(NotFound):
    """The hypervisor has no network with that name."""


class StorageNotFound(NotFound):
    """The hypervisor has no storage pool / datastore with that name."""


class GuestFileNotFound(NotFound):
    """The path does not exist inside the guest."""


class AmbiguousName(VirtAbstractError, LookupError):
    """A name matches several objects; address it by id instead.

    :ivar ids: the ids of every match.
    """

    def __init__(self, kind: str, name: str, ids: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.ids = list(ids)
        super().__init__(f"{len(ids)} {kind}s are named {name!r}; use an id: {', '.join(ids)}")


class AlreadyExists(VirtAbstractError):
    """An object with that name already exists."""


class InvalidState(VirtAbstractError):
    """The operation is not allowed in the VM's current state.

    :ivar state: the :class:`~virtabstract.PowerState` the VM was in.
    :ivar operation: the operation that was refused.
    """

    def __init__(self, message: str, *, state: PowerState | None = None, operation: str = "") -> None:
        self.state = state
        self.operation = operation
        super().__init__(message)


class UnsupportedOperation(VirtAbstractError):
    """The backend cannot perform the operation (see its declared capabilities).

    :ivar backend: the backend's name (``"kvm"``, ``"esxi"``, …).
    :ivar operation: the operation's name.
    """

    def __init__(self, backend: str, operation: str, reason: str = "") -> None:
        self.backend = backend
        self.operation = operation
        self.reason = reason
        message = f"the {backend} backend does not support {operation}"
        super().__init__(f"{message}: {reason}" if reason else message)


class OperationTimeout(VirtAbstractError, TimeoutError):
    """An operation or a wait did not complete within its timeout."""

    def __init__(self, message: str, *, timeout: float | None = None) -> None:
        self.timeout = timeout
        super().__init__(message)


class OperationVetoed(VirtAbstractError):
    """A policy plugin refused the operation before it ran."""

    def __init__(self, operation: str, reason: str) -> None:
        self.operation = operation
        self.reason = reason
        super().__init__(f"{operation} refused by policy: {reason}")


class GuestError(VirtAbstractError):
    """An operation inside the guest failed."""


class GuestAgentUnavailable(GuestError):
    """The guest agent (qemu-guest-agent, VMware Tools, Guest Additions) is absent or silent."""


class GuestCommandFailed(GuestError):
    """A guest command exited non-zero and the caller asked for a check."""

    def __init__(self, argv: list[str], exit_code: int, stderr: str) -> None:
        self.argv = list(argv)
        self.exit_code = exit_code
        self.stderr = stderr
        tail = stderr.strip().splitlines()[-1:] if stderr.strip() else []
        detail = f": {tail[0][:200]}" if tail else ""
        super().__init__(f"guest command {argv[0]!r} exited with {exit_code}{detail}")


class BackendError(VirtAbstractError):
    """An SDK error with no more specific meaning; the native exception is ``.orig``."""

    def __init__(self, message: str, *, orig: BaseException | None = None, code: Any = None) -> None:
        self.orig = orig
        self.code = code
        super().__init__(message)
