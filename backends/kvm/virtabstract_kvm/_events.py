"""libvirt's event loop in a background daemon thread, and lifecycle subscriptions.

libvirt delivers domain events, keepalive pings and close callbacks only while
an event loop runs. :func:`ensure_event_loop` registers libvirt's default
implementation once per process (it must happen before a connection is
opened) and runs it in a daemon thread named ``libvirt-event-loop``; every
connection of the process shares it.

Callbacks run on that thread: they must not block. Subscriptions live in
:class:`~virtabstract_kvm._connection.LibvirtConnection`, which owns the one
lifecycle registration libvirt-python allows per connection.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from . import _sdk

__all__ = ["ensure_event_loop", "event_loop_running"]

log = logging.getLogger("virtabstract.kvm")

_lock = threading.Lock()
_thread: threading.Thread | None = None


def _run_forever(lv: Any) -> None:
    while True:
        try:
            lv.virEventRunDefaultImpl()
        except Exception:
            log.exception("libvirt event loop iteration failed")


def ensure_event_loop() -> bool:
    """Register libvirt's default event loop and start its thread, once per process; True when running."""
    global _thread
    with _lock:
        if _thread is not None:
            return True
        lv = _sdk.libvirt()
        try:
            lv.virEventRegisterDefaultImpl()
        except lv.libvirtError as exc:
            log.warning("cannot register libvirt's event loop (events and keepalive disabled): %s", exc)
            return False
        _thread = threading.Thread(target=_run_forever, args=(lv,), name="libvirt-event-loop", daemon=True)
        _thread.start()
        return True


def event_loop_running() -> bool:
    """True once :func:`ensure_event_loop` has started the loop."""
    return _thread is not None
