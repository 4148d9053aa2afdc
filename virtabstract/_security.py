"""Security helpers shared by every backend: the insecure-connection warning.

TLS is verified by default everywhere. Turning verification off is explicit
(``no_verify=1``) and produces :class:`InsecureConnectionWarning` once per target
and process, through :mod:`warnings` and the ``virtabstract`` logger.
"""

from __future__ import annotations

import logging
import threading
import warnings

__all__ = ["InsecureConnectionWarning", "warn_insecure"]

log = logging.getLogger("virtabstract")

_warned: set[str] = set()
_lock = threading.Lock()


class InsecureConnectionWarning(UserWarning):
    """TLS certificate verification was turned off (``no_verify=1``)."""


def warn_insecure(target: str, message: str, *, stacklevel: int = 3) -> None:
    """Warn, once per *target* in this process, that a connection is not verified.

    :param target: what the warning is about (e.g. ``"esxi:esx1.example"``); repeats are silent.
    :param message: the text: say what is unverified and how to verify it instead. Never a secret.
    """
    with _lock:
        if target in _warned:
            return
        _warned.add(target)
    log.warning("%s", message)
    warnings.warn(message, InsecureConnectionWarning, stacklevel=stacklevel)


def _reset_insecure_warnings() -> None:
    """Forget which targets were warned about (for tests that need a fresh process's state)."""
    with _lock:
        _warned.clear()
