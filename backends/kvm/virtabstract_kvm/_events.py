"""libvirt's event loop in a background daemon thread, and lifecycle subscriptions.

libvirt delivers domain events, keepalive pings and close callbacks only while
an event loop runs. :func:`ensure_event_loop` registers libvirt's default
implementation once per process and runs it in a daemon thread named
``libvirt-event-loop``; every connection of the process shares it. It cannot be
unregistered.

It is started only when something needs it (see
:class:`~virtabstract_kvm._connection.LibvirtConnection`): before opening a
remote URI (keepalive), or at the first need for events (a listing, a
subscriber). Not earlier, because a remote-driver connection (any socket,
``qemu:///system`` included) opened while the loop is registered has its
socket watched by the loop: the client disables and re-enables the watch
around every call, waking the loop thread, which takes the GIL, and each RPC
costs 7 to 20 % more. A socket is attached to the loop only when the
connection is opened, so a connection opened before the loop must be reopened
to get events; the in-process test driver adds its timer to the loop when a
callback is registered and needs no reopen.

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
