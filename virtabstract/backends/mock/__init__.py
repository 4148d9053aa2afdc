"""The mock backend: an in-memory (or file-backed) hypervisor that behaves like a real one.

``virtabstract.connect("mock://")`` gives a fresh in-memory hypervisor per connection;
``virtabstract.connect("mock:///path/lab.json")`` one stored in a file that several
processes share. Options, behaviour and the test helpers (``backend.faults``,
``backend.stats``, ``backend.guest_programs``) are described in
:mod:`virtabstract.backends.mock._backend`.

Nothing here imports at ``import virtabstract`` time: the plugin names the class as a
string, and :func:`virtabstract.connect` imports it on the first ``mock://`` URL.
"""

from __future__ import annotations

from ._backend import MAX_LIVE_CPUS, NATIVE_STATES, MockBackend, sanitise_hostname
from ._faults import OPERATIONS, FaultPlan, MockStats
from ._filelock import FileLock
from ._guest import GuestCommand, GuestFS, GuestPrograms, MockGuestProgram, ProgramResult
from ._store import FileStore, MemoryStore, Store

__all__ = [
    "MAX_LIVE_CPUS",
    "NATIVE_STATES",
    "OPERATIONS",
    "FaultPlan",
    "FileLock",
    "FileStore",
    "GuestCommand",
    "GuestFS",
    "GuestPrograms",
    "MemoryStore",
    "MockBackend",
    "MockGuestProgram",
    "MockStats",
    "ProgramResult",
    "Store",
    "sanitise_hostname",
]
