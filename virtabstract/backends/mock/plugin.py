"""Registers the mock backend for ``mock://`` URLs, through the same hook as any plugin."""

from __future__ import annotations

from ..._plugins import BackendRegister
from ...hookspecs import hookimpl


@hookimpl
def virtabstract_register_backends(register: BackendRegister) -> None:
    """Serve ``mock://`` (in memory) and ``mock:///path.json`` (file-backed)."""
    register(["mock"], "virtabstract.backends.mock._backend:MockBackend")
