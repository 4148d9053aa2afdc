"""The plugin manager and the backend registry.

Nothing here runs at import time. The first :func:`virtabstract.connect` (or an
explicit :meth:`PluginManager.load`) loads, in order:

1. the built-in plugins in :data:`DEFAULT_PLUGINS` (the mock backend),
   through the same registration hook a third-party plugin uses;
2. the ``virtabstract`` entry-point group, unless
   ``VIRTABSTRACT_DISABLE_PLUGIN_AUTOLOAD`` is set;

skipping any plugin named in ``VIRTABSTRACT_BLOCK_PLUGINS`` (comma-separated).
``VIRTABSTRACT_TRACE_PLUGINS=1`` logs every hook call at DEBUG level on the
``virtabstract.plugins`` logger.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pluggy

from . import hookspecs
from ._backend import Backend
from .errors import BackendUnavailable, UsageError

__all__ = ["DEFAULT_PLUGINS", "BackendEntry", "BackendRegister", "PluginManager", "get_plugin_manager"]

log = logging.getLogger("virtabstract.plugins")

DEFAULT_PLUGINS: tuple[str, ...] = ("virtabstract.backends.mock.plugin",)
"""Built-in plugin modules, registered through the same hook as third-party ones."""

ENV_DISABLE_AUTOLOAD = "VIRTABSTRACT_DISABLE_PLUGIN_AUTOLOAD"
ENV_BLOCK = "VIRTABSTRACT_BLOCK_PLUGINS"
ENV_TRACE = "VIRTABSTRACT_TRACE_PLUGINS"

KNOWN_SCHEMES: dict[str, str] = {
    "qemu": "virtabstract[kvm]",
    "test": "virtabstract[kvm]",
    "kvm": "virtabstract[kvm]",
    "esx": "virtabstract[esxi]",
    "vpx": "virtabstract[esxi]",
    "vsphere": "virtabstract[esxi]",
    "vbox": "virtabstract[vbox]",
}
"""Schemes served by first-party distributions, for a helpful error when one is missing."""


@dataclass
class BackendEntry:
    """One registered backend: its schemes, the class (or where to import it) and who registered it."""

    schemes: tuple[str, ...]
    target: type[Backend] | str
    plugin: str

    def load(self) -> type[Backend]:
        """Import (if needed) and return the backend class."""
        if isinstance(self.target, str):
            module_name, _, attr = self.target.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise BackendUnavailable(f"the backend for {self.schemes[0]}:// could not be imported ({exc})") from exc
            cls = getattr(module, attr, None)
            if not (isinstance(cls, type) and issubclass(cls, Backend)):
                raise BackendUnavailable(f"{self.target} (from plugin {self.plugin}) is not a Backend subclass")
            self.target = cls
        return self.target


class BackendRegister:
    """The ``register`` callable given to :func:`~virtabstract.hookspecs.virtabstract_register_backends`."""

    def __init__(self) -> None:
        self._by_scheme: dict[str, BackendEntry] = {}
        self._entries: list[BackendEntry] = []
        self.current_plugin = "?"

    def __call__(self, schemes: str | Iterable[str], backend: type[Backend] | str) -> None:
        """Register *backend* for *schemes* (``"qemu"`` also serves ``qemu+ssh`` etc.)."""
        names = (schemes,) if isinstance(schemes, str) else tuple(schemes)
        if not names:
            raise UsageError("register() needs at least one scheme")
        if isinstance(backend, str) and ":" not in backend:
            raise UsageError(f"backend {backend!r} must be a Backend subclass or 'module:Class'")
        entry = BackendEntry(tuple(s.lower() for s in names), backend, self.current_plugin)
        for scheme in entry.schemes:
            if scheme in self._by_scheme:
                other = self._by_scheme[scheme].plugin
                raise UsageError(f"scheme {scheme!r} is registered by both {other} and {entry.plugin}")
        for scheme in entry.schemes:
            self._by_scheme[scheme] = entry
        self._entries.append(entry)

    def lookup(self, scheme: str) -> BackendEntry:
        """Return the entry serving *scheme* (full ``driver+transport`` first, then the driver)."""
        scheme = scheme.lower()
        entry = self._by_scheme.get(scheme) or self._by_scheme.get(scheme.partition("+")[0])
        if entry is None:
            driver = scheme.partition("+")[0]
            hint = KNOWN_SCHEMES.get(driver)
            known = ", ".join(sorted(self._by_scheme)) or "none"
            message = f"no backend serves {scheme}:// URLs (registered schemes: {known})"
            if hint:
                message += f"; install it with: pip install '{hint}'"
            raise BackendUnavailable(message)
        return entry

    @property
    def entries(self) -> Sequence[BackendEntry]:
        """Every registered backend, in registration order."""
        return tuple(self._entries)


class PluginManager:
    """virtabstract's plugin manager: hooks plus the backend registry, loaded lazily.

    Most programs use the shared instance from :func:`get_plugin_manager`. Tests
    and embedders may build their own (``PluginManager(autoload=False)``) and pass
    it to :func:`virtabstract.connect` for an isolated set of plugins.
    """

    def __init__(
        self,
        *,
        autoload: bool | None = None,
        blocked: Iterable[str] | None = None,
        trace: bool | None = None,
        default_plugins: Sequence[str] = DEFAULT_PLUGINS,
    ) -> None:
        env_block = os.environ.get(ENV_BLOCK, "")
        self.autoload = not os.environ.get(ENV_DISABLE_AUTOLOAD) if autoload is None else autoload
        self.blocked = frozenset(blocked) if blocked is not None else frozenset(filter(None, env_block.split(",")))
        self.trace = bool(os.environ.get(ENV_TRACE)) if trace is None else trace
        self.default_plugins = tuple(default_plugins)
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.backends = BackendRegister()
        self._loaded = False
        self._lock = threading.RLock()
        self._extra: list[tuple[Any, str]] = []

    @property
    def hook(self) -> Any:
        """The pluggy hook relay (``pm.hook.virtabstract_before_operation(...)``)."""
        return self.pm.hook

    def register(self, plugin: Any, name: str | None = None) -> None:
        """Register a plugin object or module (before or after loading)."""
        with self._lock:
            plugin_name = name or getattr(plugin, "__name__", None) or repr(plugin)
            if plugin_name in self.blocked:
                log.debug("plugin %s is blocked", plugin_name)
                return
            if self._loaded:
                self._register_now(plugin, plugin_name)
            else:
                self._extra.append((plugin, plugin_name))

    def load(self) -> PluginManager:
        """Load built-in and entry-point plugins once; return self."""
        with self._lock:
            if self._loaded:
                return self
            if self.trace:
                self.pm.trace.root.setwriter(lambda message: log.debug("%s", message.rstrip()))
                self.pm.enable_tracing()
            for module_name in self.default_plugins:
                if module_name not in self.blocked:
                    self._register_now(importlib.import_module(module_name), module_name)
            if self.autoload:
                self._load_entry_points()
            for plugin, plugin_name in self._extra:
                self._register_now(plugin, plugin_name)
            self._extra.clear()
            self.pm.check_pending()
            self._loaded = True
            return self

    def _load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=hookspecs.PROJECT_NAME):
            if ep.name in self.blocked or self.pm.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the others
                log.warning("plugin %s (%s) failed to load: %s", ep.name, ep.value, exc)
                continue
            self._register_now(plugin, ep.name)

    def _register_now(self, plugin: Any, name: str) -> None:
        self.pm.register(plugin, name=name)
        impl = getattr(plugin, "virtabstract_register_backends", None)
        if impl is not None:
            self.backends.current_plugin = name
            try:
                impl(register=self.backends)
            finally:
                self.backends.current_plugin = "?"

    def backend_for(self, scheme: str) -> type[Backend]:
        """The backend class serving *scheme* (loading plugins first)."""
        return self.load().backends.lookup(scheme).load()

    def operation_hooks(self) -> tuple[Callable[..., Any] | None, Callable[..., Any] | None]:
        """Positional callables ``before(context)`` and ``after(context, result, error)`` (``None``: not implemented).

        Every operation of every connection goes through these, so when the implementations are
        plain functions (no wrappers, no tracing) they are called directly, in pluggy's order
        (last registered first) and with the arguments each declares (pluggy lets an
        implementation take a subset), instead of through pluggy's generic dispatch; a single
        implementation taking every argument is itself the callable.
        """
        self.load()
        return (
            self._fast_caller(self.pm.hook.virtabstract_before_operation, ("context",)),
            self._fast_caller(self.pm.hook.virtabstract_after_operation, ("context", "result", "error")),
        )

    def _fast_caller(self, caller: Any, names: tuple[str, ...]) -> Callable[..., Any] | None:
        impls = caller.get_hookimpls()
        if not impls:
            return None
        if self.trace or any(impl.hookwrapper or impl.wrapper for impl in impls):

            def through_pluggy(*args: Any) -> None:
                caller(**dict(zip(names, args, strict=True)))

            return through_pluggy
        every = tuple(range(len(names)))
        calls = [(impl.function, tuple(names.index(name) for name in impl.argnames)) for impl in reversed(impls)]
        if len(calls) == 1 and calls[0][1] == every:
            return calls[0][0]  # type: ignore[no-any-return]

        def call_all(*args: Any) -> None:
            for function, picks in calls:
                if picks == every:
                    function(*args)
                else:
                    function(*[args[index] for index in picks])

        return call_all

    def has_operation_hooks(self) -> bool:
        """True when any plugin implements the before/after operation hooks (else the core skips them)."""
        self.load()
        return bool(
            self.pm.hook.virtabstract_before_operation.get_hookimpls()
            or self.pm.hook.virtabstract_after_operation.get_hookimpls()
        )

    def plugin_names(self) -> list[str]:
        """Names of the registered plugins."""
        self.load()
        return [name for name, _ in self.pm.list_name_plugin()]


_default_manager: PluginManager | None = None
_default_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """Return the process-wide plugin manager, creating it (but not loading it) on first use."""
    global _default_manager
    with _default_lock:
        if _default_manager is None:
            _default_manager = PluginManager()
        return _default_manager
