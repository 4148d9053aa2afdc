"""The one place that imports pyVmomi, lazily, and hands it out untyped.

pyVmomi ships stubs, but its dynamic data objects (``vim.vm.ConfigSpec(...)``,
managed-object proxies) type-check poorly. The backend therefore treats the
SDK as ``Any`` at this boundary and keeps its own code fully typed: every value
that leaves an SDK call is converted to core types (``str``, ``int``, info
records) before it travels further.

Nothing here runs at import time: :func:`sdk` imports pyVmomi on the first
connection, so ``import virtabstract_esxi`` (and the plugin hook) stay cheap and
work without pyVmomi installed.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any

__all__ = ["Sdk", "sdk"]


@dataclass(frozen=True)
class Sdk:
    """The pyVmomi names the backend uses."""

    vim: Any
    """``pyVmomi.vim``: managed objects, data objects and faults."""
    vmodl: Any
    """``pyVmomi.vmodl``: PropertyCollector types and the generic faults."""
    connect: Any
    """``pyVim.connect``: ``SmartConnect`` (API version negotiation and login)."""
    soap_stub_adapter: Any
    """``pyVmomi.SoapStubAdapter``."""


@functools.cache
def sdk() -> Sdk:
    """Import pyVmomi once and return its namespaces; raises ImportError when it is missing."""
    pyvmomi = importlib.import_module("pyVmomi")
    connect = importlib.import_module("pyVim.connect")
    return Sdk(vim=pyvmomi.vim, vmodl=pyvmomi.vmodl, connect=connect, soap_stub_adapter=pyvmomi.SoapStubAdapter)


def moref(type_name: str, value: str, stub: Any = None) -> Any:
    """Build a managed-object reference (``vim.VirtualMachine('vm-12')``) bound to *stub*."""
    return vim_type(type_name)(value, stub)


def fault_names(exc: BaseException) -> list[str]:
    """The vim/vmodl type names of *exc* and its bases, most specific first.

    ``vim.fault.InvalidPowerState`` gives ``["vim.fault.InvalidPowerState",
    "vim.fault.InvalidState", "vim.fault.VimFault", "vmodl.MethodFault", ...]``.
    Works without importing pyVmomi (only names are compared), which keeps the
    fault table testable with stand-in classes.
    """
    return [cls.__name__ for cls in type(exc).__mro__]


def vim_type(name: str) -> Any:
    """The vim class for a dotted name relative to ``vim``, e.g. ``"dvs.DistributedVirtualPortgroup"``."""
    obj: Any = sdk().vim
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj
