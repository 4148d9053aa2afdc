"""A small, portable, inter-process file lock with a timeout.

The lock lives in its own file (``lab.json.lock`` beside ``lab.json``): the data
file itself is replaced atomically on every write, so it cannot carry a lock.

* POSIX: :func:`fcntl.flock` (``LOCK_EX | LOCK_NB`` polled until the deadline).
  ``flock`` locks belong to the open file description, so two :class:`FileLock`
  objects in one process exclude each other just like two processes do.
* Windows: :func:`msvcrt.locking` on the first byte of the lock file
  (``LK_NBLCK`` polled until the deadline).

The lock is not re-entrant: callers serialise their own threads (the mock
backend holds an :class:`threading.RLock` around every store access).
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType

from ...errors import OperationTimeout

__all__ = ["FileLock"]

_POLL_S = 0.005
_MAX_POLL_S = 0.05


class FileLock:
    """An exclusive lock on *path*, held between :meth:`acquire` and :meth:`release` (or in a ``with``).

    :param path: the lock file; created if missing, never deleted (deleting would race).
    :param timeout: seconds to wait for the lock before raising
        :class:`~virtabstract.errors.OperationTimeout`.
    """

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None

    @property
    def locked(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, waiting up to :attr:`timeout` seconds (wall clock: this is real I/O)."""
        if self._fd is not None:
            raise RuntimeError(f"lock {self.path} is already held by this object")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        pause = _POLL_S
        try:
            while not _try_lock(fd):
                if time.monotonic() >= deadline:
                    raise OperationTimeout(
                        f"timed out after {self.timeout:g}s waiting for the lock {self.path}", timeout=self.timeout
                    )
                time.sleep(pause)
                pause = min(pause * 2, _MAX_POLL_S)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Release the lock (a no-op when it is not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            _unlock(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
