"""Registers the VirtualBox backend for ``vbox://`` URLs.

This module is what the ``virtabstract`` entry point loads: it stays cheap and
names the backend class as a string, so nothing VirtualBox-related is imported.
"""

from __future__ import annotations

from virtabstract import BackendRegister, hookimpl

SCHEMES = ("vbox",)
"""URL schemes served (``vbox:///session``)."""


@hookimpl
def virtabstract_register_backends(register: BackendRegister) -> None:
    """Serve ``vbox:///session``."""
    register(SCHEMES, "virtabstract_vbox._backend:VBoxBackend")
