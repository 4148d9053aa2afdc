import pytest

from virtabstract import PowerState
from virtabstract.errors import (
    AmbiguousName,
    BackendError,
    GuestCommandFailed,
    InvalidState,
    NotFound,
    OperationTimeout,
    SpecError,
    UnsupportedOperation,
    UsageError,
    VMNotFound,
)


def test_builtin_bases_help_callers():
    assert issubclass(VMNotFound, LookupError) and issubclass(VMNotFound, NotFound)
    assert issubclass(OperationTimeout, TimeoutError)
    assert issubclass(SpecError, ValueError) and issubclass(SpecError, UsageError)


def test_spec_error_within_prefixes_paths():
    err = SpecError("size", "a size", "abc")
    assert err.within("disks[0]").field == "disks[0].size"
    assert SpecError("[1]", "x").within("disks").field == "disks[1]"
    assert "got 'abc'" in str(err)
    long = SpecError("name", "short", "x" * 500)
    assert len(str(long)) < 200


def test_rich_attributes():
    err = InvalidState("nope", state=PowerState.RUNNING, operation="delete")
    assert err.state is PowerState.RUNNING and err.operation == "delete"
    err2 = UnsupportedOperation("esxi", "pause", "vSphere has no in-memory pause")
    assert "esxi" in str(err2) and "pause" in str(err2) and "vSphere" in str(err2)
    orig = OSError("boom")
    err3 = BackendError("failed", orig=orig, code=42)
    assert err3.orig is orig and err3.code == 42
    amb = AmbiguousName("VM", "web", ["a", "b"])
    assert amb.ids == ["a", "b"] and "use an id" in str(amb)
    failed = GuestCommandFailed(["ls", "/x"], 2, "ls: /x: No such file\n")
    assert failed.exit_code == 2 and "No such file" in str(failed)


@pytest.mark.parametrize("cls", [VMNotFound, InvalidState, BackendError, OperationTimeout])
def test_constructible_with_a_message(cls):
    assert "msg" in str(cls("msg"))
