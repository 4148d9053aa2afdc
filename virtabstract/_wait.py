"""Clocks and the one wait/poll helper every backend and the core use.

Backends never sleep-poll on their own: they hand a probe to :func:`wait_until`,
which owns timeouts, back-off and the error message. A backend whose SDK can
block on an event (vSphere's WaitForUpdatesEx, libvirt events) may wait
natively instead and still raise :class:`~virtabstract.errors.OperationTimeout`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from .errors import OperationTimeout

__all__ = ["Clock", "ManualClock", "SystemClock", "wait_until"]

T = TypeVar("T")


class Clock(Protocol):
    """Where time comes from: the real clock, or a manual one in tests."""

    def monotonic(self) -> float:
        """Seconds since an arbitrary point, never going backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let *seconds* pass."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        time.sleep(seconds)


class ManualClock:
    """A deterministic clock: time only moves when :meth:`advance` or :meth:`sleep` is called.

    Waits against a manual clock finish instantly in wall time, which makes
    time-dependent behaviour (boot delays, timeouts) testable without sleeping.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        """Return the manual time."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by *seconds*."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Advance instead of sleeping."""
        self.advance(max(seconds, 0.0))


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    clock: Clock | None = None,
    interval: float = 0.1,
    max_interval: float = 2.0,
) -> T:
    """Call *probe* until it returns something other than ``None``/``False``; return that.

    :param probe: returns the result when the wait is over, ``None`` (or ``False``) to keep waiting.
        Exceptions it raises propagate at once.
    :param timeout: seconds before :class:`~virtabstract.errors.OperationTimeout` is raised.
    :param what: what is awaited, for the error message (``"web1 to stop"``).
    :param clock: the clock to use; the real one by default.
    :param interval: first pause between probes; doubles up to *max_interval*.
    """
    if timeout < 0:
        raise ValueError("timeout must not be negative")
    clock = clock or SystemClock()
    deadline = clock.monotonic() + timeout
    pause = interval
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            raise OperationTimeout(f"timed out after {timeout:g}s waiting for {what}", timeout=timeout)
        clock.sleep(min(pause, remaining))
        pause = min(pause * 2, max_interval)
