"""One libvirt connection: opening, keepalive, loss detection, reconnect, domain lookup, XML cache.

Reliability rules:

* remote URIs (``qemu+ssh://`` …) get a keepalive (``setKeepAlive``), which
  needs the event loop of :mod:`._events`: it is started before they are opened;
* a close callback (``registerCloseCallback``) marks the connection lost the
  moment libvirt notices (EOF, keepalive timeout, error); libvirt delivers it
  from the event loop, so only on a connection the loop watches (below);
* without the loop (a local socket or the in-process test driver before any
  event was needed) a loss is met by the next call: libvirt reports the dead
  socket, :func:`._errors.translate` makes it ConnectionLost, and the rules
  below apply;
* :meth:`LibvirtConnection.read` runs an idempotent read and, when the
  connection turns out to be lost, reconnects once and retries transparently;
* :meth:`LibvirtConnection.write` never retries: a lost connection raises
  :class:`~virtabstract.errors.ConnectionLost` (the change may or may not have
  happened), and the next call reconnects first. So the first change after a
  loss nobody noticed yet (no loop, no read since) raises.

libvirt's event loop starts *on demand* too. A remote-driver connection
(``qemu:///system``, ``test+unix://``: any socket) opened while the loop is
registered has its socket watched by the loop, and the client disables and
re-enables that watch around every call, which wakes the loop thread, which
takes the GIL: each RPC costs 7 to 20 % more (``state()`` through libvirtd
about 90 µs without the loop, 98 to 104 µs with it, interleaved call by call).
So :meth:`LibvirtConnection.open` starts the loop only for a remote URI with
events on (keepalive needs it at once). For a local socket or the in-process
test driver the first :meth:`LibvirtConnection.need_events` (a listing, a
subscriber) starts it; libvirt attaches a socket to the loop only at open, so
a socket connection opened before is then reopened (not a reconnect: the
counter stays, caches and handles are dropped as on every open). The
in-process test driver needs no reopen: it adds its event timer to the loop
when a callback is registered. :attr:`LibvirtConnection.events` keeps meaning
"events are enabled" (``events`` option), whether the loop runs yet or not.

Domain event callbacks are registered *on demand*, not at open: libvirt calls
a registered callback on the event-loop thread for every matching event, and
taking the GIL there costs the caller 10 to 20 µs per state change (a no-op
callback costs the same), which is more than an in-process driver call and a
fifth of a local RPC. So a connection registers:

* the lifecycle callback (:data:`LIFECYCLE`) when a memo needs it to stay
  true (the "no managed save image" memo, see ``KVMBackend.get_state``) or
  when someone subscribes to lifecycle events;
* every cache-invalidating event (:data:`CACHE`: lifecycle, metadata, device,
  balloon, tunable changes) the first time a listing wants to reuse parsed
  XML (``list_vms``, ``list_vm_summaries``).

Until then nothing is cached that an event would have to invalidate: every
cache checks :attr:`LibvirtConnection.caching` or
:attr:`LibvirtConnection.lifecycle_watched`, and reads instead. Parsed domain
XML is then cached per UUID and dropped on every change made through this
connection, so that listing VMs costs a constant number of calls once warm.

``virDomain`` handles are cached per UUID, so that an operation on a known VM
costs no ``lookupByUUIDString``. libvirt resolves a handle by its UUID on
every call (in the remote protocol and in the drivers), so a cached handle
stays valid as long as a domain with that UUID exists; only its ``name()``
can go stale after a rename by another client, which is why data (VMInfo.name)
comes from the XML or a fresh listing, never from a cached handle. A handle is
dropped when libvirt reports the domain defined or undefined (a rename is
both; only while the lifecycle callback is registered), when it is undefined
through this connection, when a call on it reports the domain gone, and all
of them on close and reconnect: a handle belongs to the connection that made
it. A handle needs no event to stay *usable*; without the lifecycle callback
only its ``name()`` may lag a rename, which only error messages use.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from virtabstract import URL, Credentials, PowerState, warn_insecure
from virtabstract.errors import ConnectionFailed, ConnectionLost, UnsupportedOperation, VMNotFound

from . import _sdk
from ._errors import OPEN, map_libvirt_errors, translate
from ._events import ensure_event_loop, event_loop_running
from ._states import event_state, managed_save_possible
from ._uri import ConnectOptions, libvirt_uri
from ._xml import DomainConfig, parse_domain, parse_xml

__all__ = ["LibvirtConnection"]

log = logging.getLogger("virtabstract.kvm")
T = TypeVar("T")

LIFECYCLE = ("VIR_DOMAIN_EVENT_ID_LIFECYCLE",)
"""The events the managed-save memo, the handle cache's rename invalidation and subscribers need."""
CACHE = (
    *LIFECYCLE,
    "VIR_DOMAIN_EVENT_ID_METADATA_CHANGE",
    "VIR_DOMAIN_EVENT_ID_DEVICE_ADDED",
    "VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED",
    "VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE",
    "VIR_DOMAIN_EVENT_ID_TUNABLE",
)
"""The events that invalidate cached domain XML (a superset of :data:`LIFECYCLE`)."""
_REASON_UNKNOWN = 0  # VIR_DOMAIN_SHUTOFF_UNKNOWN
SNAPSHOT_HANDLES = 32
"""How many snapshot handles a connection keeps (:meth:`LibvirtConnection.keep_snapshot`)."""
_NO_ARG: Any = object()
"""``arg`` of :meth:`LibvirtConnection.on_domain` when the call has none."""


class LibvirtConnection:
    """A libvirt ``virConnect`` with reconnect, error mapping and a domain-XML cache."""

    def __init__(self, url: URL, credentials: Credentials, options: ConnectOptions) -> None:
        self.url = url
        self.uri = libvirt_uri(url)
        self.credentials = credentials
        self.options = options
        self.conn: Any = None
        self.lost = False
        self.reconnects = 0
        self.events = False
        """Events are enabled on this connection (the ``events`` option, unless libvirt's event loop failed to
        register): drives ``Capability.EVENTS``. The loop itself may not run yet (see :meth:`need_events`)."""
        self._attached = False
        """The current ``conn`` can deliver events once callbacks are registered: it was opened while libvirt's
        event loop was registered (its socket is watched by the loop), or its driver runs in process."""
        self._lock = threading.RLock()
        self._cache: dict[str, DomainConfig] = {}
        self.summaries: dict[str, Any] = {}
        """Per-UUID scratch of the summary listing (owned by the backend); dropped with the XML cache."""
        self.generation = 0
        """Bumped by every :meth:`forget`: a listing stores what it read only if no event came meanwhile."""
        self._domains: dict[str, Any] = {}
        self._snapshots: dict[tuple[str, str], Any] = {}
        """``virDomainSnapshot`` handles of the snapshots this connection created, by (VM id, name), oldest first
        (at most :data:`SNAPSHOT_HANDLES`; see :meth:`keep_snapshot`)."""
        self.no_managed_save: set[str] = set()
        """Domains known to have no managed save image, kept while events run: an image appears only
        when a running domain is saved (lifecycle event STOPPED/SAVED, or ``suspend`` through the backend)."""
        self.no_image_while_unknown: set[str] = set()
        """Shut-off domains with reason *unknown* found without a managed save image, kept without events.
        libvirt gives that reason only when it defines or loads a domain (a new definition, or a daemon
        restart, which drops this connection and clears the set); a domain that gets an image afterwards
        runs and is saved first, so its reason is no longer *unknown* when it has one."""
        self.save_events = 0
        """STOPPED/SAVED events seen (a reader adds to no_managed_save only if none came in between)."""
        self._libvirt_error: type[BaseException] | None = None  # libvirtError, remembered by open()
        self.in_process = self.is_test and not self.url.transport and not self.url.host
        """True when driver calls run in this process (``test:///…``, not ``test+unix://``): a call costs less
        than an event there."""
        self._wanted: tuple[str, ...] = ()
        """The events asked for so far (:data:`LIFECYCLE` or :data:`CACHE`); registered again on reconnect."""
        self._callbacks: dict[str, int] = {}
        """Registered event callbacks of the current connection: event id name → callback id."""
        self._refused: set[str] = set()
        """Events the current connection refused to register (not asked again)."""
        self._lifecycle = False
        self._all_cache_events = False
        self._subscribers: dict[int, Callable[[str, PowerState, str], None]] = {}
        self._next_subscriber = 0

    # -- opening and closing ------------------------------------------------------------

    @property
    def is_remote(self) -> bool:
        """True for URIs that go through libvirt's remote driver (any transport but the local socket).

        ``ext`` counts: its relay command can freeze like a network, and only keepalive notices.
        """
        return bool(self.url.host) or (self.url.transport or "unix") != "unix"

    @property
    def is_test(self) -> bool:
        """True for libvirt's in-process test driver (``test:///…``)."""
        return self.url.driver == "test"

    def open(self) -> None:
        """Open the connection; start libvirt's event loop first only for a remote URI (keepalive needs it).

        A local socket (``qemu:///system``, ``test+unix://``) or the in-process test driver leaves the loop
        alone: :meth:`need_events` starts it (and reopens a socket connection) when events are first needed.
        """
        lv = _sdk.libvirt()
        self._libvirt_error = lv.libvirtError
        self.events = bool(self.options.events)
        if self.events and self.is_remote:
            self.events = ensure_event_loop()
        if self.url.transport == "tls" and self.url.flag("no_verify"):
            warn_insecure(
                f"kvm:{self.url.host}",
                f"TLS certificate verification is disabled for {self.url.host or 'localhost'} (no_verify=1): "
                "the connection can be intercepted; install the CA as libvirt's cacert.pem instead",
                stacklevel=6,
            )
        flags = lv.VIR_CONNECT_RO if self.options.readonly else 0
        auth = [[lv.VIR_CRED_AUTHNAME, lv.VIR_CRED_PASSPHRASE, lv.VIR_CRED_USERNAME], self._auth_callback, None]
        with map_libvirt_errors(f"connect to {self.url}", phase=OPEN):
            conn = lv.openAuth(self.uri, auth, flags)
        self.conn = conn
        self.lost = False
        # a socket is watched only if the loop was registered before it was opened; the in-process test driver
        # adds its event timer when a callback is registered, so it needs only the loop to run by then
        self._attached = self.in_process or event_loop_running()
        self._cache.clear()
        self.summaries.clear()
        self.no_managed_save.clear()
        self.no_image_while_unknown.clear()
        self._domains.clear()
        self._snapshots.clear()
        self._setup_reliability(conn)

    def _auth_callback(self, credentials: list[list[Any]], _opaque: Any) -> int:
        lv = _sdk.libvirt()
        for cred in credentials:
            if cred[0] in (lv.VIR_CRED_AUTHNAME, lv.VIR_CRED_USERNAME):
                if self.credentials.username is None:
                    return -1
                cred[4] = self.credentials.username
            elif cred[0] == lv.VIR_CRED_PASSPHRASE:
                if self.credentials.password is None:
                    return -1
                cred[4] = self.credentials.password.reveal()
        return 0

    def _setup_reliability(self, conn: Any) -> None:
        lv = _sdk.libvirt()
        interval, count = self.options.keepalive
        if self.is_remote and self.events and interval > 0:
            try:
                conn.setKeepAlive(interval, count)
            except lv.libvirtError as exc:
                log.debug("keepalive not available on %s: %s", self.url, exc)
        try:
            conn.registerCloseCallback(self._on_close, None)
        except lv.libvirtError as exc:
            log.debug("close callback not available on %s: %s", self.url, exc)
        self._callbacks = {}
        self._refused = set()
        self._lifecycle = self._all_cache_events = False
        if self._wanted:
            self._register(conn, self._wanted)

    def _register(self, conn: Any, names: tuple[str, ...]) -> None:
        """Register the callbacks of *names* not registered (or refused) yet on this connection."""
        lv = _sdk.libvirt()
        for name in names:
            event_id = getattr(lv, name, None)
            if event_id is None or name in self._callbacks or name in self._refused:
                continue
            handler = self._on_lifecycle if name == LIFECYCLE[0] else self._on_domain_event
            try:
                self._callbacks[name] = conn.domainEventRegisterAny(None, event_id, handler, None)
            except lv.libvirtError as exc:
                self._refused.add(name)
                log.debug("event %s not available on %s: %s", name, self.url, exc)
        self._lifecycle = LIFECYCLE[0] in self._callbacks
        self._all_cache_events = self._lifecycle and all(
            name in self._callbacks for name in CACHE if getattr(lv, name, None) is not None
        )

    def _registered(self, names: tuple[str, ...]) -> bool:
        return (self._all_cache_events if names == CACHE else self._lifecycle) and not self.lost

    def need_events(self, names: tuple[str, ...] = CACHE) -> bool:
        """Register the callbacks of *names* (:data:`LIFECYCLE` or :data:`CACHE`) now, if not yet; True when they are.

        Call it *before* reading what a cache will keep, so that no change after the read goes unseen, and
        before taking the connection (:meth:`live`, :meth:`read`): the first call may start libvirt's event
        loop and reopen a connection that was opened without it (see :meth:`_attach`).
        False when events are off (``events=0``), the loop cannot be registered, or libvirt refuses one of
        the callbacks.
        """
        if not self.events:
            return False
        if self._registered(names):
            return True
        if not ensure_event_loop():
            self.events = False
            return False
        with self._lock:
            if names == CACHE or not self._wanted:
                self._wanted = names
            self._attach()
            conn = self.live()
            self._register(conn, names)
        return self._registered(names)

    def _attach(self) -> None:
        """Reopen a live socket connection opened before the event loop ran, so that the loop watches it.

        libvirt's remote client adds its socket to the event loop only when the loop is registered at open;
        without that, events (and the close callback) would be read only during our own calls. Not a loss:
        :attr:`reconnects` stays, and the reopen registers :attr:`_wanted` (set first) like any open. A lost
        or closed connection is left to :meth:`live`, whose reconnect attaches it anyway.
        """
        if self._attached or self.conn is None or self.lost:
            return
        log.debug(
            "reopening %s so that libvirt's event loop, started only now for events, watches its socket", self.url
        )
        self.close()
        try:
            self.open()
        except ConnectionFailed as exc:
            raise ConnectionLost(f"the connection to {self.url} could not be reopened for events: {exc}") from exc

    def _on_close(self, _conn: Any, reason: int, _opaque: Any) -> None:
        log.warning("libvirt connection to %s was closed (reason %s)", self.url, reason)
        self.lost = True

    def _on_domain_event(self, _conn: Any, dom: Any, *_args: Any) -> None:
        self.forget(dom.UUIDString())

    def _on_lifecycle(self, _conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
        uuid = dom.UUIDString()
        self.forget(uuid)
        if event in (0, 1):  # VIR_DOMAIN_EVENT_DEFINED / UNDEFINED (a rename is both): the handle may be stale
            self._domains.pop(uuid, None)
            self.no_managed_save.discard(uuid)
            self.no_image_while_unknown.discard(uuid)
        elif event == 5 and detail == 4:  # STOPPED / SAVED: a managed save image may have appeared
            self.save_events += 1
            self.no_managed_save.discard(uuid)
        state, native = event_state(event, detail)
        for callback in list(self._subscribers.values()):
            try:
                callback(uuid, state, native)
            except Exception:
                log.exception("lifecycle event callback failed")

    def subscribe(self, callback: Callable[[str, PowerState, str], None]) -> Callable[[], None]:
        """Add a lifecycle subscriber; return the unsubscribe function.

        libvirt-python accepts one callback per (connection, event id), so this connection
        owns the single LIFECYCLE registration and fans events out to its subscribers.
        """
        if not self.need_events(LIFECYCLE):
            raise UnsupportedOperation("kvm", "events", "lifecycle events are not available on this connection")
        key = self._next_subscriber
        self._next_subscriber += 1
        self._subscribers[key] = callback
        return lambda: self._subscribers.pop(key, None) and None

    @property
    def caching(self) -> bool:
        """True when parsed domain XML may be reused: every invalidating event is registered (:meth:`need_events`)."""
        return self._all_cache_events and not self.lost

    @property
    def lifecycle_watched(self) -> bool:
        """True while the lifecycle callback is registered: a memo only a lifecycle event can falsify may be kept."""
        return self._lifecycle and not self.lost

    def close(self) -> None:
        """Close the connection (idempotent); errors are logged, not raised."""
        conn, self.conn = self.conn, None
        self._domains.clear()
        self._snapshots.clear()
        if conn is None:
            return
        lv = _sdk.libvirt()
        callbacks, self._callbacks = self._callbacks, {}
        self._lifecycle = self._all_cache_events = False
        for callback_id in callbacks.values():
            with contextlib.suppress(lv.libvirtError):
                conn.domainEventDeregisterAny(callback_id)
        with contextlib.suppress(lv.libvirtError):
            conn.unregisterCloseCallback()
        try:
            conn.close()
        except lv.libvirtError as exc:
            log.debug("closing %s: %s", self.url, exc)

    def reconnect(self) -> None:
        """Drop the current connection and open a new one; ConnectionLost if that fails."""
        with self._lock:
            log.info("reconnecting to %s", self.url)
            self.close()
            try:
                self.open()
            except ConnectionFailed as exc:
                raise ConnectionLost(f"the connection to {self.url} was lost and could not be reopened: {exc}") from exc
            self.reconnects += 1

    def live(self) -> Any:
        """The connection, reopened first if it was found lost."""
        if self.conn is None or self.lost:
            self.reconnect()
        return self.conn

    # -- calls --------------------------------------------------------------------------------

    def read(self, what: str, func: Callable[[Any], T]) -> T:
        """Run an idempotent read; on a lost connection reconnect once and retry."""
        conn = self.live()
        try:
            with map_libvirt_errors(what):
                return func(conn)
        except ConnectionLost:
            self.lost = True
            conn = self.live()
            with map_libvirt_errors(what):
                return func(conn)

    def write(self, what: str, func: Callable[[Any], T], *, vm_id: str | None = None) -> T:
        """Run a change (never retried); drop the cached XML of *vm_id*."""
        conn = self.live()
        try:
            with map_libvirt_errors(what):
                return func(conn)
        except ConnectionLost:
            self.lost = True
            raise
        finally:
            if vm_id is not None:
                self.forget(vm_id)

    def forget(self, vm_id: str) -> None:
        """Drop the cached XML and summary scratch of one domain."""
        self.generation += 1
        self._cache.pop(vm_id, None)
        self.summaries.pop(vm_id, None)

    # -- the managed-save memo (one policy for state queries and listings) -----------------------

    def image_known_absent(self, vm_id: str, state: int, reason: int) -> bool:
        """True when the domain cannot have a managed save image, or was found without one and that still holds.

        Only a shut-off domain whose reason allows an image may have one (:func:`managed_save_possible`).
        "No image" is remembered by :meth:`remember_no_image`.
        """
        if not managed_save_possible(state, reason) or vm_id in self.no_managed_save:
            return True
        return reason == _REASON_UNKNOWN and vm_id in self.no_image_while_unknown

    def image_watch(self) -> tuple[bool, int]:
        """Taken before asking libvirt about images, and handed to :meth:`remember_no_image` afterwards."""
        return self.lifecycle_watched, self.save_events

    def remember_no_image(self, vm_id: str, reason: int, watch: tuple[bool, int]) -> None:
        """Remember that libvirt showed no managed save image for the domain (asked after :meth:`image_watch`).

        Kept while the lifecycle callback is registered and no save event came during the call: an image
        only appears when a running domain is saved, which libvirt announces with STOPPED/SAVED. Without the
        callback, kept while the reason stays *unknown*: libvirt gives it only when it defines or loads a
        domain, and a domain that gets an image afterwards runs and is saved first (reason *saved*).
        """
        watched, saves = watch
        if watched and self.save_events == saves:
            self.no_managed_save.add(vm_id)
        elif reason == _REASON_UNKNOWN:
            self.no_image_while_unknown.add(vm_id)

    # -- snapshot handles -------------------------------------------------------------------------

    def keep_snapshot(self, vm_id: str, name: str, handle: Any) -> None:
        """Remember the handle of a snapshot just created, for the revert, delete or detail read that often follows.

        libvirt resolves a snapshot handle by its domain and name on every call, so a kept handle acts exactly
        as a fresh ``snapshotLookupByName`` would (a snapshot deleted meanwhile fails the same way), minus that
        call: one RPC fewer through libvirtd. Handles belong to this connection (dropped on close and
        reconnect); the oldest goes beyond :data:`SNAPSHOT_HANDLES`.
        """
        handles = self._snapshots
        handles[(vm_id, name)] = handle
        if len(handles) > SNAPSHOT_HANDLES:
            del handles[next(iter(handles))]

    def snapshot_handle(self, vm_id: str, name: str, *, drop: bool = False) -> Any | None:
        """The kept handle of snapshot *name* (removed with *drop*), or None: look it up then."""
        if drop:
            return self._snapshots.pop((vm_id, name), None)
        return self._snapshots.get((vm_id, name))

    def forget_snapshots(self, vm_id: str) -> None:
        """Drop every kept snapshot handle of one domain."""
        for key in [key for key in self._snapshots if key[0] == vm_id]:
            del self._snapshots[key]

    def forget_domain(self, vm_id: str) -> None:
        """Drop everything cached about one domain, its handle included (undefined, or found gone)."""
        self.forget(vm_id)
        self.no_managed_save.discard(vm_id)
        self.no_image_while_unknown.discard(vm_id)
        self._domains.pop(vm_id, None)
        self.forget_snapshots(vm_id)

    def on_domain(
        self,
        action: str,
        vm_id: str,
        func: Callable[..., T],
        arg: Any = _NO_ARG,
        *,
        change: bool = False,
        same_definition: bool = False,
    ) -> T:
        """Run ``func(dom)`` or ``func(dom, arg)`` on the domain's handle, translating libvirt errors (hot path).

        Every VM operation goes through here. *func* is made once: a ``methodcaller``, or a module-level
        function taking the call's own argument as *arg*; a ``methodcaller`` or closure made per call
        measured 1 to 2 µs more per snapshot create in process.
        *action* is the verb phrase of an error message (``"start"`` gives "start VM <uuid>"); the
        message is only built when there is an error. A read (``change=False``) whose connection
        turns out lost is retried once on a new connection, with a new handle; a change is never
        retried and drops the cached XML, unless it leaves the domain's definition and state alone
        (*same_definition*: an internal snapshot). VMNotFound drops the cached handle.
        """
        dom = self._domains.get(vm_id)
        if dom is None or self.lost:  # the cached handle is the hot path; domain() looks it up
            dom = self.domain(vm_id)
        error = self._libvirt_error or _sdk.libvirt().libvirtError
        try:
            return func(dom) if arg is _NO_ARG else func(dom, arg)
        except error as exc:
            what = f"{action} VM {vm_id}"
            mapped = translate(exc, what=what)
            if isinstance(mapped, VMNotFound):
                self._domains.pop(vm_id, None)
            if not isinstance(mapped, ConnectionLost):
                raise mapped from exc
            self.lost = True
            if change:
                raise mapped from exc
        finally:
            if change and not same_definition:  # forget(vm_id), inlined: this runs after every change
                self.generation += 1
                self._cache.pop(vm_id, None)
                self.summaries.pop(vm_id, None)
        dom = self.domain(vm_id)
        try:
            return func(dom) if arg is _NO_ARG else func(dom, arg)
        except error as exc:
            raise translate(exc, what=what) from exc

    # -- domains --------------------------------------------------------------------------------

    def domain(self, vm_id: str) -> Any:
        """The ``virDomain`` with UUID *vm_id* (cached); VMNotFound for anything else (names included)."""
        dom = self._domains.get(vm_id)
        if dom is not None and not self.lost:
            return dom
        try:
            uuidlib.UUID(vm_id)
        except (ValueError, AttributeError, TypeError):
            raise VMNotFound(f"{vm_id!r} is not a libvirt domain UUID") from None
        dom = self.read(f"look up VM {vm_id}", lambda c: c.lookupByUUIDString(vm_id))
        self._domains[vm_id] = dom
        return dom

    def name(self, vm_id: str) -> str:
        """The domain's current name, for a message.

        A cached handle's ``name()`` is current only while the lifecycle callback drops handles on
        renames; without it the handle is looked up again.
        """
        if not self.lifecycle_watched:
            self._domains.pop(vm_id, None)
        return str(self.domain(vm_id).name())

    def cached_config(self, uuid: str) -> DomainConfig | None:
        """The cached parsed XML of a domain, if any (no call)."""
        return self._cache.get(uuid) if self.caching else None

    def config(self, dom: Any, *, fresh: bool = False, inactive: bool = False) -> DomainConfig:
        """The parsed XML of *dom* (live XML of a running domain unless *inactive*), cached when possible."""
        key = dom.UUIDString()
        if not fresh and not inactive and self.caching and key in self._cache:
            return self._cache[key]
        lv = _sdk.libvirt()
        flags = lv.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        config = parse_domain(self.read(f"read the XML of VM {key}", lambda _c: dom.XMLDesc(flags)))
        disks = []
        for disk in config.disks:
            size, backing = self.disk_details(dom, disk.path)
            disks.append(replace(disk, size_mib=size, backing=disk.backing or backing))
        config = replace(config, disks=tuple(disks))
        if not inactive and self.caching:
            self._cache[key] = config
        return config

    def disk_details(self, dom: Any, path: str) -> tuple[int, str]:
        """``(capacity MiB, backing file)`` of the disk image at *path* (its volume, else ``blockInfo``)."""
        if not path:
            return 0, ""
        lv = _sdk.libvirt()
        conn = self.live()
        try:
            vol = parse_xml(conn.storageVolLookupByPath(path).XMLDesc(0))
            capacity = int(vol.findtext("capacity") or 0)
            unit = vol.find("capacity").get("unit", "bytes") if vol.find("capacity") is not None else "bytes"  # type: ignore[union-attr]
            scale = {"bytes": 1, "b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3}.get(unit.lower(), 1)
            return capacity * scale // (1024 * 1024), vol.findtext("backingStore/path") or ""
        except lv.libvirtError:
            pass
        try:
            return int(dom.blockInfo(path, 0)[0]) // (1024 * 1024), ""
        except lv.libvirtError:
            return 0, ""

    def volume_mtime(self, path: str) -> float | None:
        """Modification time of the volume at *path*, when its pool reports timestamps."""
        lv = _sdk.libvirt()
        try:
            vol = parse_xml(self.live().storageVolLookupByPath(path).XMLDesc(0))
        except lv.libvirtError:
            return None
        text = vol.findtext("target/timestamps/mtime")
        return float(text) if text else None

    def xml(self, dom: Any, *, inactive: bool = False, secure: bool = False) -> str:
        """The raw domain XML (persistent definition with *inactive*; passwords with *secure*)."""
        lv = _sdk.libvirt()
        flags = (lv.VIR_DOMAIN_XML_INACTIVE if inactive else 0) | (lv.VIR_DOMAIN_XML_SECURE if secure else 0)
        return str(self.read(f"read the XML of VM {dom.UUIDString()}", lambda _c: dom.XMLDesc(flags)))
