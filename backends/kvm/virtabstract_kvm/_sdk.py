"""Lazy access to libvirt-python, the only place this package imports it.

libvirt-python ships no type information, so the modules are handed out as
``Any``; the rest of the package treats libvirt objects as opaque handles.
Importing the SDK also silences libvirt's default error printer (it writes every
error to stderr, even ones we handle) by registering a no-op handler once.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["libvirt", "libvirt_qemu"]

_lock = threading.Lock()
_modules: dict[str, Any] = {}


def _ignore_error(_ctx: Any, _err: Any) -> None:
    """Libvirt's error callback: errors are raised as exceptions anyway."""


def libvirt() -> Any:
    """Return the ``libvirt`` module, importing it on first use; raise ImportError when missing."""
    module = _modules.get("libvirt")
    if module is not None:
        return module
    with _lock:
        if "libvirt" not in _modules:
            import libvirt as lv

            if not hasattr(lv, "virConnect"):
                raise ImportError(f"'import libvirt' found {getattr(lv, '__file__', '?')}, not libvirt-python")
            lv.registerErrorHandler(_ignore_error, None)
            _modules["libvirt"] = lv
        return _modules["libvirt"]


def libvirt_qemu() -> Any:
    """Return the ``libvirt_qemu`` module (guest-agent commands), importing it on first use."""
    module = _modules.get("libvirt_qemu")
    if module is None:
        libvirt()
        import libvirt_qemu as lq

        _modules["libvirt_qemu"] = module = lq
    return module
