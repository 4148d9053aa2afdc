"""Where the mock keeps its state: in memory, or in a JSON file shared between processes.

The state is one JSON-ready document (see :func:`new_document`)::

    {"format": "virtabstract-mock/1",
     "vms": {vm_id: vm_record, ...},          # insertion order = creation order
     "volumes": {path: volume_record, ...},   # every disk image, attached or not
     "counters": {"id": 0, "mac": 0, "display": 0, "ip": 0}}

:class:`MemoryStore` keeps the document in the process. :class:`FileStore`
keeps it in a file: each mutation takes the inter-process lock, loads the file,
mutates, writes a temporary file in the same directory, fsyncs it and
``os.replace``-s it over the original, then releases the lock. Reads just load
the file (a reader sees the old or the new version, never half of one), and a
parsed copy is reused while the file's bytes are unchanged.
"""

from __future__ import annotations

import copy
import gc
import json
import logging
import os
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any

from ...errors import BackendError, ConnectionFailed
from ._filelock import FileLock

__all__ = ["FORMAT", "FileStore", "MemoryStore", "Store", "new_document", "pause_gc"]

log = logging.getLogger("virtabstract.mock")

FORMAT = "virtabstract-mock/1"
"""The ``format`` marker of a mock document; other files are refused."""

Document = dict[str, Any]


@contextmanager
def pause_gc() -> Iterator[None]:
    """Suspend the cyclic garbage collector while building many small objects (no cycles are made).

    Parsing a 1000-VM store allocates ~100k containers, which otherwise triggers
    several full collections and doubles the time of a listing.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def new_document() -> Document:
    """An empty mock hypervisor."""
    return {"format": FORMAT, "vms": {}, "volumes": {}, "counters": {"id": 0, "mac": 0, "display": 0, "ip": 0}}


if sys.platform == "win32":  # pragma: no cover - Windows only

    def _replace(src: str, dst: str) -> None:
        """``os.replace``, retried briefly: on Windows a reader holding *dst* open blocks it."""
        for attempt in range(50):
            try:
                os.replace(src, dst)
                return
            except PermissionError:
                if attempt == 49:
                    raise
                time.sleep(0.01)

else:
    _replace = os.replace


class Store(ABC):
    """Where a mock connection's document lives.

    Callers serialise threads themselves; :meth:`transaction` additionally
    excludes other processes for file stores.
    """

    file_reads = 0
    """How many times the document was read from storage (file stores)."""
    file_writes = 0
    """How many times the document was written to storage (file stores)."""

    @abstractmethod
    def read(self) -> Document:
        """The current document (do not mutate it outside :meth:`transaction`)."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Document]:
        """Yield the current document for mutation; persist it when the block exits without error."""

    @property
    def is_new(self) -> bool:
        """True when the store was created by this connection (so presets may populate it)."""
        return False

    @abstractmethod
    def describe(self) -> str:
        """``"memory"`` or the file path, for messages."""


class MemoryStore(Store):
    """The document in memory: one per ``mock://`` connection.

    A transaction works on a copy that replaces the document only when the block
    succeeds, so an operation failing midway (even with an unexpected exception)
    leaves no trace, exactly like the file store, which writes only on success.
    """

    def __init__(self) -> None:
        self.data = new_document()

    def read(self) -> Document:
        """Return the live document."""
        return self.data

    @contextmanager
    def transaction(self) -> Iterator[Document]:
        """Yield a working copy; it becomes the document when the block exits without an error."""
        working = copy.deepcopy(self.data)
        yield working
        self.data = working

    @property
    def is_new(self) -> bool:
        """Always true: nothing persists a memory store."""
        return True

    def describe(self) -> str:
        """``"memory"``."""
        return "memory"

    def __repr__(self) -> str:
        return f"<MemoryStore vms={len(self.data['vms'])}>"


class FileStore(Store):
    """The document in a JSON file, shared by every process that opens it.

    :param path: the JSON file (created on :meth:`open` when missing; its directory must exist).
    :param lock_timeout: seconds to wait for another process's write.
    """

    def __init__(self, path: str, lock_timeout: float = 30.0) -> None:
        self.path = os.path.abspath(path)
        self.lock = FileLock(self.path + ".lock", timeout=lock_timeout)
        self._cache_raw: bytes | None = None
        self._cache_doc: Document | None = None
        self._created = False

    def open(self) -> None:
        """Check the file (creating an empty hypervisor if it does not exist)."""
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise ConnectionFailed(f"cannot open the mock store {self.path}: directory {directory} does not exist")
        with self.lock:
            if not os.path.exists(self.path):
                self._write(new_document())
                self._created = True
        try:
            self.read()
        except BackendError as exc:
            raise ConnectionFailed(str(exc)) from exc

    @property
    def is_new(self) -> bool:
        """True when :meth:`open` created the file."""
        return self._created

    def describe(self) -> str:
        """The file path."""
        return self.path

    @property
    def data(self) -> Document:
        """The document as currently stored (read fresh)."""
        return self.read()

    def read(self) -> Document:
        """Load the file; reuse the parsed copy when its bytes did not change."""
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            return new_document()
        except OSError as exc:
            raise BackendError(f"cannot read the mock store {self.path}: {exc}", orig=exc) from exc
        self.file_reads += 1
        if raw == self._cache_raw and self._cache_doc is not None:
            return self._cache_doc
        doc = self._parse(raw)
        self._cache_raw, self._cache_doc = raw, doc
        return doc

    def _parse(self, raw: bytes) -> Document:
        try:
            with pause_gc():
                doc = json.loads(raw)
        except ValueError as exc:
            raise BackendError(f"the mock store {self.path} is not valid JSON: {exc}", orig=exc) from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise BackendError(f"{self.path} is not a virtabstract mock store (expected format {FORMAT!r})")
        return doc

    @contextmanager
    def transaction(self) -> Iterator[Document]:
        """Lock, load, yield for mutation, write atomically, unlock."""
        with self.lock:
            doc = self.read()
            # the cached copy may be mutated below: forget it until the new bytes are written
            self._cache_raw = self._cache_doc = None
            yield doc
            self._write(doc)

    def _write(self, doc: Document) -> None:
        raw = json.dumps(doc, separators=(",", ":")).encode()
        directory = os.path.dirname(self.path)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(self.path) + ".", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(raw)
                fh.flush()
                os.fsync(fh.fileno())
            _replace(tmp, self.path)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)
            raise
        if sys.platform != "win32":
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self.file_writes += 1
        self._cache_raw, self._cache_doc = raw, doc

    def __repr__(self) -> str:
        return f"<FileStore {self.path}>"
