"""Hook specifications: how plugins extend virtabstract.

A plugin is a module (or object) with functions named like the specs below,
decorated with :data:`hookimpl`. Third-party plugins are found through the
``virtabstract`` entry-point group::

    # pyproject.toml of a plugin distribution
    [project.entry-points.virtabstract]
    mybackend = "virtabstract_mybackend.plugin"

Two uses of pluggy, and only two:

1. **Registration** — :func:`virtabstract_register_backends` lets a plugin
   announce which URL schemes its :class:`~virtabstract.Backend` subclass
   serves. Backend operations are *not* hooks: they are methods of the ABC.
2. **Cross-cutting policy and audit** — :func:`virtabstract_before_operation`
   and :func:`virtabstract_after_operation` wrap every operation of every
   backend; a policy plugin vetoes an operation by raising.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._hypervisor import Hypervisor, OperationContext
    from ._plugins import BackendRegister

__all__ = [
    "hookimpl",
    "hookspec",
    "virtabstract_after_operation",
    "virtabstract_before_operation",
    "virtabstract_connection_closed",
    "virtabstract_connection_opened",
    "virtabstract_register_backends",
]

PROJECT_NAME = "virtabstract"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marker for hook specifications (this module)."""
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker plugins put on their hook implementations: ``@virtabstract.hookimpl``."""


@hookspec
def virtabstract_register_backends(register: BackendRegister) -> None:
    """Register backends for URL schemes.

    Called once, when the plugin manager is first used (never at import time).
    Call ``register(schemes, backend)`` once per backend::

        @virtabstract.hookimpl
        def virtabstract_register_backends(register):
            register(["qemu", "test", "kvm"], "virtabstract_kvm._backend:KVMBackend")

    :param register: a :class:`~virtabstract.BackendRegister`. ``backend`` is a
        :class:`~virtabstract.Backend` subclass or a ``"module:Class"`` string,
        which is imported only when a URL with that scheme is opened, so that
        registering never imports an SDK.

    All implementations are called; a scheme registered twice raises an error
    naming both plugins.

    .. versionadded:: 0.1
    """


@hookspec
def virtabstract_before_operation(context: OperationContext) -> None:
    """Called before every operation a :class:`~virtabstract.Hypervisor` sends to its backend.

    Raise :class:`~virtabstract.errors.OperationVetoed` (or any
    :class:`~virtabstract.errors.VirtAbstractError`) to refuse the operation:
    the backend is not called and the caller gets the error.

    :param context: the operation's name, backend, URL (password masked), VM id and
        parameters. It never holds secrets.

    .. versionadded:: 0.1
    """


@hookspec
def virtabstract_after_operation(context: OperationContext, result: Any, error: BaseException | None) -> None:
    """Called after every operation, whether it succeeded or failed (audit logging, metrics).

    :param context: as for :func:`virtabstract_before_operation`, with ``elapsed_s`` set.
    :param result: what the operation returned (``None`` on error).
    :param error: the exception the caller is about to receive, or ``None``.

    Exceptions raised here propagate to the caller.

    .. versionadded:: 0.1
    """


@hookspec
def virtabstract_connection_opened(hypervisor: Hypervisor) -> None:
    """Called when :func:`virtabstract.connect` has opened a connection.

    :param hypervisor: the new connection.

    .. versionadded:: 0.1
    """


@hookspec
def virtabstract_connection_closed(hypervisor: Hypervisor) -> None:
    """Called when a connection is closed (explicitly or by leaving its ``with`` block).

    :param hypervisor: the connection being closed.

    .. versionadded:: 0.1
    """
