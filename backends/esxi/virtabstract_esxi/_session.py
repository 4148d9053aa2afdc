"""One vSphere session: TLS, login, transparent re-login, logout.

TLS is verified by default. An ``ssl.SSLContext`` is *always* passed to pyVmomi,
because pyVmomi silently skips certificate checks for ``localhost``,
``127.0.0.1`` and ``::1`` when it gets none. URL options:

* ``ca_file=/path/ca.pem`` — trust this CA bundle (in addition to nothing else);
* ``no_verify=1`` — skip verification: warns once per process (``warnings`` and ``logging``);
* ``protocol=http`` — plain HTTP, only when asked explicitly (vcsim serves http by default);
* the port comes from the URL (default 443, or 80 with ``protocol=http``).

Re-login: every SDK call goes through :meth:`Session.call`, which retries the call
once after logging in again when the server says ``NotAuthenticated`` (session
idle timeout, ``TerminateSession`` by an administrator, a vCenter restart). The
re-login holds a lock and is skipped when another thread already renewed the
session (a *generation* counter tells), so N threads hitting an expired session
cause one Login, not N.

Threads: pyVmomi's ``SoapStubAdapter`` keeps a pool of HTTP connections guarded
by a lock, so stubs and managed-object proxies may be used from several threads;
the only shared mutable state is the session cookie, which changes only under
the re-login lock. Objects bound to a session (ContainerView, PropertyCollector
filters) are recreated after a re-login: callers ask :meth:`Session.generation`.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from virtabstract import URL, Credentials, InsecureConnectionWarning, warn_insecure
from virtabstract.errors import AuthenticationFailed, InvalidURL

from ._faults import map_vim_faults
from ._sdk import fault_names, sdk

__all__ = ["InsecureConnectionWarning", "Session", "build_ssl_context", "connection_target"]

log = logging.getLogger("virtabstract.esxi")
T = TypeVar("T")


def _warn_no_verify(host: str) -> None:
    warn_insecure(
        f"esxi:{host}",
        f"TLS certificate verification is disabled for {host} (no_verify=1): the connection can be "
        "intercepted; prefer ?ca_file=/path/to/ca.pem",
        stacklevel=5,
    )


def build_ssl_context(url: URL) -> ssl.SSLContext:
    """The SSL context for *url*: verified by default, a CA bundle with ``ca_file``, unverified with ``no_verify``."""
    no_verify = url.flag("no_verify")
    ca_file = url.option("ca_file")
    if no_verify and ca_file:
        raise InvalidURL("no_verify=1 and ca_file=… contradict each other: give one")
    if no_verify:
        _warn_no_verify(url.host)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise InvalidURL(f"ca_file={ca_file!r} is not a readable PEM CA bundle ({exc})") from exc


def connection_target(url: URL) -> tuple[str, int, str]:
    """``(host, port, protocol)`` from the URL (``protocol`` is ``https`` unless ``?protocol=http``)."""
    protocol = (url.option("protocol") or "https").lower()
    if protocol not in ("https", "http"):
        raise InvalidURL(f"protocol={protocol!r}: use https (default) or http")
    if not url.host:
        raise InvalidURL(f"{url} names no host: use esx://host/ or vpx://vcenter/")
    port = url.port or (443 if protocol == "https" else 80)
    return url.host, port, protocol


def is_not_authenticated(exc: BaseException) -> bool:
    """True for ``vim.fault.NotAuthenticated`` (expired or terminated session)."""
    return "vim.fault.NotAuthenticated" in fault_names(exc)


_SESSION_OBJECTS = ("ContainerView", "ListView", "InventoryView", "PropertyCollector", "PropertyFilter")


def is_lost_session_object(exc: BaseException) -> bool:
    """True for ``ManagedObjectNotFound`` about a session-bound object (our view or collector)."""
    if "vmodl.fault.ManagedObjectNotFound" not in fault_names(exc):
        return False
    obj = getattr(exc, "obj", None)
    return getattr(obj, "_wsdlName", "") in _SESSION_OBJECTS


class Session:
    """A logged-in vSphere session (one SOAP stub) with transparent re-login."""

    def __init__(self, url: URL, credentials: Credentials, *, timeout: float | None = None) -> None:
        self.url = url
        self._credentials = credentials
        self._timeout = timeout
        self.host, self.port, self.protocol = connection_target(url)
        self.ssl_context = build_ssl_context(url)
        self._lock = threading.RLock()
        self._generation = 0
        self.stub: Any = None
        self.si: Any = None
        self.content: Any = None
        self.logged_in = False

    # -- lifecycle -------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Incremented at every (re-)login; session-bound objects compare it to know they are stale."""
        return self._generation

    def open(self) -> None:
        """Negotiate the API version, fetch the ServiceContent and log in."""
        s = sdk()
        user, password = self._secrets()
        with map_vim_faults("connect", self.url.render(), connecting=True):
            # sslContext is always given, so pyVmomi never turns verification off by itself
            # (it does for localhost/127.0.0.1/::1 when it gets none).
            self.si = s.connect.SmartConnect(
                protocol=self.protocol,
                host=self.host,
                port=self.port,
                user=user,
                pwd=password,
                path=self.url.option("sdk_path") or "/sdk",
                sslContext=self.ssl_context,
                httpConnectionTimeout=self._timeout,
            )
            self.stub = self.si._stub
            self.content = self.si.RetrieveContent()
            self._generation += 1
            self.logged_in = True
        about = self.content.about
        log.info("connected to %s: %s (%s)", self.url, about.fullName, about.apiType)

    def _secrets(self) -> tuple[str, str]:
        user = self._credentials.username
        password = self._credentials.password.reveal() if self._credentials.password else ""
        if not user:
            raise AuthenticationFailed(
                f"no user name for {self.url}: put it in the URL (esx://root@host/), pass username=, "
                "or set VIRTABSTRACT_USERNAME"
            )
        return user, password

    def _login(self) -> None:
        user, password = self._secrets()
        self.content.sessionManager.Login(user, password, None)
        self._generation += 1
        self.logged_in = True

    def relogin(self, seen_generation: int) -> None:
        """Log in again unless another thread already did since *seen_generation*."""
        with self._lock:
            if self._generation != seen_generation:
                return
            log.info("vSphere session to %s expired or was terminated; logging in again", self.url)
            with map_vim_faults("re-login", str(self.url), connecting=True):
                self._login()

    def close(self) -> None:
        """Log out (best effort) and drop the connection pool; idempotent."""
        with self._lock:
            if self.logged_in and self.content is not None:
                try:
                    self.content.sessionManager.Logout()
                except Exception as exc:  # noqa: BLE001 - logging out is best effort
                    log.debug("logout from %s failed: %s", self.url, type(exc).__name__)
            self.logged_in = False
            stub, self.stub = self.stub, None
            if stub is not None:
                pool = getattr(stub, "DropConnections", None)
                if callable(pool):
                    pool()

    # -- calls -----------------------------------------------------------------------

    def call(self, func: Callable[[], T]) -> T:
        """Run one SDK call (a closure); on ``NotAuthenticated`` log in again and run it once more.

        The closure must rebuild anything session-bound it uses (it is called again after the
        re-login), e.g. ``lambda: pc.RetrievePropertiesEx([spec_for(view())], options)``.
        """
        if self.stub is None:
            raise AuthenticationFailed(f"the connection to {self.url} is closed")
        seen = self._generation
        try:
            return func()
        except Exception as exc:
            if is_not_authenticated(exc):
                self.relogin(seen)
            elif is_lost_session_object(exc):
                self.refresh(seen)
            else:
                raise
        return func()

    def session_alive(self) -> bool:
        """True when the server still knows our session (read through the PropertyCollector)."""
        q = sdk().vmodl.query.PropertyCollector
        manager = self.content.sessionManager
        spec = q.FilterSpec(
            objectSet=[q.ObjectSpec(obj=manager, skip=False)],
            propSet=[q.PropertySpec(type=type(manager), pathSet=["currentSession"], all=False)],
        )
        try:
            result = self.content.propertyCollector.RetrievePropertiesEx([spec], q.RetrieveOptions())
        except Exception as exc:
            if is_not_authenticated(exc):
                return False
            raise
        for content in getattr(result, "objects", None) or ():
            for prop in content.propSet or ():
                if prop.name == "currentSession" and prop.val is not None:
                    return True
        return False

    def refresh(self, seen_generation: int) -> None:
        """A session-bound object vanished: log in again if the session is gone, else just renew the objects.

        vcsim (and vCenter) allow RetrievePropertiesEx without a session, so an expired session
        may show up as ``ManagedObjectNotFound`` for our ContainerView instead of NotAuthenticated.
        """
        with self._lock:
            if self._generation != seen_generation:
                return
            with map_vim_faults("re-login", str(self.url), connecting=True):
                if self.session_alive():
                    self._generation += 1  # views and collectors are recreated on the next use
                    return
                log.info("vSphere session to %s is gone; logging in again", self.url)
                self._login()

    def moref(self, type_name: str, value: str) -> Any:
        """A managed-object proxy of *type_name* with id *value*, bound to this session's stub."""
        return getattr(sdk().vim, type_name)(value, self.stub)

    @property
    def is_vcenter(self) -> bool:
        """True when the server is vCenter (``about.apiType == "VirtualCenter"``)."""
        return bool(self.content is not None and self.content.about.apiType == "VirtualCenter")
