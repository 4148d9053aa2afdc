"""map_libvirt_errors(): every libvirt error code maps into the core error tree (table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from virtabstract import errors as E

libvirt = pytest.importorskip("libvirt")

from virtabstract_kvm._errors import CALL, GUEST, OPEN, map_libvirt_errors, translate  # noqa: E402


def make_error(code: str | int, origin: str = "VIR_FROM_NONE", message: str = "boom") -> Any:
    exc = libvirt.libvirtError(message)
    number = getattr(libvirt, code) if isinstance(code, str) else code
    exc.err = (number, getattr(libvirt, origin, 0), message, 2, None, None, None, 0, 0)
    return exc


CASES = [
    # (code, origin, message, phase, expected)
    ("VIR_ERR_NO_DOMAIN", "VIR_FROM_QEMU", "Domain not found", CALL, E.VMNotFound),
    ("VIR_ERR_NO_DOMAIN_SNAPSHOT", "VIR_FROM_DOMAIN_SNAPSHOT", "no snapshot", CALL, E.SnapshotNotFound),
    ("VIR_ERR_NO_NETWORK", "VIR_FROM_NETWORK", "no network", CALL, E.NetworkNotFound),
    ("VIR_ERR_NO_STORAGE_POOL", "VIR_FROM_STORAGE", "no pool", CALL, E.StorageNotFound),
    ("VIR_ERR_NO_STORAGE_VOL", "VIR_FROM_STORAGE", "no vol", CALL, E.StorageNotFound),
    ("VIR_ERR_DEVICE_MISSING", "VIR_FROM_QEMU", "no device", CALL, E.DeviceNotFound),
    ("VIR_ERR_OPERATION_INVALID", "VIR_FROM_QEMU", "domain is not running", CALL, E.InvalidState),
    ("VIR_ERR_AUTH_FAILED", "VIR_FROM_AUTH", "authentication failed", OPEN, E.AuthenticationFailed),
    ("VIR_ERR_AUTH_FAILED", "VIR_FROM_AUTH", "authentication failed", CALL, E.AuthenticationFailed),
    ("VIR_ERR_AUTH_CANCELLED", "VIR_FROM_AUTH", "cancelled", OPEN, E.AuthenticationFailed),
    ("VIR_ERR_INVALID_ARG", "VIR_FROM_TEST", "Missing authentication credentials", OPEN, E.AuthenticationFailed),
    ("VIR_ERR_NO_CONNECT", "VIR_FROM_NONE", "no connection driver", OPEN, E.ConnectionFailed),
    ("VIR_ERR_SYSTEM_ERROR", "VIR_FROM_RPC", "Failed to connect socket", OPEN, E.ConnectionFailed),
    ("VIR_ERR_INTERNAL_ERROR", "VIR_FROM_RPC", "client socket is closed", OPEN, E.ConnectionFailed),
    ("VIR_ERR_INTERNAL_ERROR", "VIR_FROM_RPC", "client socket is closed", CALL, E.ConnectionLost),
    ("VIR_ERR_SYSTEM_ERROR", "VIR_FROM_RPC", "Cannot recv data", CALL, E.ConnectionLost),
    ("VIR_ERR_INVALID_CONN", "VIR_FROM_NONE", "invalid connection pointer", CALL, E.ConnectionLost),
    ("VIR_ERR_NO_SUPPORT", "VIR_FROM_NONE", "this function is not supported", CALL, E.UnsupportedOperation),
    ("VIR_ERR_OPERATION_UNSUPPORTED", "VIR_FROM_QEMU", "not supported", CALL, E.UnsupportedOperation),
    ("VIR_ERR_CONFIG_UNSUPPORTED", "VIR_FROM_QEMU", "unsupported configuration", CALL, E.UnsupportedOperation),
    ("VIR_ERR_INVALID_ARG", "VIR_FROM_TEST", "unsupported flags (0x5)", CALL, E.UnsupportedOperation),
    ("VIR_ERR_AGENT_UNRESPONSIVE", "VIR_FROM_QEMU", "agent not connected", CALL, E.GuestAgentUnavailable),
    ("VIR_ERR_AGENT_UNSYNCED", "VIR_FROM_QEMU", "agent unsynced", CALL, E.GuestAgentUnavailable),
    (
        "VIR_ERR_ARGUMENT_UNSUPPORTED",
        "VIR_FROM_QEMU",
        "QEMU guest agent is not configured",
        CALL,
        E.GuestAgentUnavailable,
    ),
    (
        "VIR_ERR_INTERNAL_ERROR",
        "VIR_FROM_QEMU",
        "unable to execute QEMU agent command 'guest-file-open': No such file or directory",
        GUEST,
        E.GuestFileNotFound,
    ),
    (
        "VIR_ERR_INTERNAL_ERROR",
        "VIR_FROM_QEMU",
        "unable to execute QEMU agent command 'guest-exec': x",
        CALL,
        E.GuestError,
    ),
    ("VIR_ERR_OPERATION_TIMEOUT", "VIR_FROM_QEMU", "timed out", CALL, E.OperationTimeout),
    ("VIR_ERR_DOM_EXIST", "VIR_FROM_DOMAIN", "domain exists", CALL, E.AlreadyExists),
    ("VIR_ERR_STORAGE_VOL_EXIST", "VIR_FROM_STORAGE", "volume exists", CALL, E.AlreadyExists),
    ("VIR_ERR_OPERATION_FAILED", "VIR_FROM_DOMAIN", "domain 'test' already exists with uuid", CALL, E.AlreadyExists),
    ("VIR_ERR_OPERATION_FAILED", "VIR_FROM_DOMAIN_SNAPSHOT", "domain moment a already exists", CALL, E.AlreadyExists),
    ("VIR_ERR_XML_ERROR", "VIR_FROM_DOMAIN", "bad xml", CALL, E.BackendError),
    ("VIR_ERR_INVALID_ARG", "VIR_FROM_QEMU", "cannot set memory higher than max memory", CALL, E.BackendError),
]


@pytest.mark.parametrize(
    ("code", "origin", "message", "phase", "expected"), CASES, ids=[f"{c[0]}-{c[3]}-{i}" for i, c in enumerate(CASES)]
)
def test_mapping_table(code: str, origin: str, message: str, phase: str, expected: type[Exception]) -> None:
    exc = make_error(code, origin, message)
    mapped = translate(exc, what="doing it", phase=phase)
    assert type(mapped) is expected, (code, phase, type(mapped).__name__)
    assert mapped.orig is exc  # type: ignore[attr-defined]
    if expected is not E.UnsupportedOperation:
        assert str(mapped).startswith("doing it: ")


ERROR_CODE_NAMES = sorted(
    n
    for n in dir(libvirt)
    if n.startswith("VIR_ERR_") and n not in ("VIR_ERR_NONE", "VIR_ERR_OK", "VIR_ERR_WARNING", "VIR_ERR_ERROR")
)


@pytest.mark.parametrize("code", ERROR_CODE_NAMES)
@pytest.mark.parametrize("phase", [OPEN, CALL])
def test_every_libvirt_code_maps_into_the_tree(code: str, phase: str) -> None:
    mapped = translate(make_error(code), phase=phase)
    assert isinstance(mapped, E.VirtAbstractError)
    if phase == OPEN:
        assert isinstance(mapped, E.HypervisorConnectionError)


def test_context_manager_chains_the_cause() -> None:
    exc = make_error("VIR_ERR_NO_DOMAIN")
    with pytest.raises(E.VMNotFound) as info, map_libvirt_errors("look up"):
        raise exc
    assert info.value.__cause__ is exc


def test_non_libvirt_errors_pass_through() -> None:
    with pytest.raises(KeyError), map_libvirt_errors("x"):
        raise KeyError("k")
