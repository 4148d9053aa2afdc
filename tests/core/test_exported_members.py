"""The public surface is curated: __all__ matches what is exported, and errors form one tree."""

import inspect

import virtabstract
from virtabstract import errors


def test_all_is_exact():
    for name in virtabstract.__all__:
        assert hasattr(virtabstract, name), name
    for name in dir(virtabstract):
        obj = getattr(virtabstract, name)
        if name.startswith("_") or inspect.ismodule(obj):
            continue
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__.startswith("virtabstract"):
            assert name in virtabstract.__all__, f"{name} is public but not in __all__"


def test_public_objects_show_as_virtabstract():
    for name in virtabstract.__all__:
        obj = getattr(virtabstract, name)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__.startswith("virtabstract._"):
            raise AssertionError(f"{name} still shows as {obj.__module__}")


def test_contract_names_exist():
    from virtabstract import Capability, Disk, Nic, PowerState, VMSpec  # noqa: F401
    from virtabstract.errors import (  # noqa: F401
        AlreadyExists,
        AuthenticationFailed,
        BackendError,
        ConnectionFailed,
        ConnectionLost,
        GuestError,
        InvalidState,
        NotFound,
        OperationTimeout,
        SpecError,
        UnsupportedOperation,
        VirtAbstractError,
        VMNotFound,
    )

    assert callable(virtabstract.connect)
    for state in ("RUNNING", "STOPPED", "PAUSED", "SUSPENDED"):
        assert hasattr(PowerState, state)


def test_every_error_is_in_the_tree_and_the_docstring():
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.VirtAbstractError)
        assert name in doc, f"{name} missing from the tree drawn in errors.__doc__"
        assert cls.__doc__, name


def test_public_api_has_docstrings():
    missing = []
    for name in virtabstract.__all__:
        obj = getattr(virtabstract, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            if not inspect.getdoc(obj):
                missing.append(name)
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
                        continue
                    if not inspect.getdoc(member):
                        missing.append(f"{name}.{attr}")
    assert not missing, missing
