"""What the API transport's mixins need from :class:`~virtabstract_vbox._api_backend.VBoxApiBackend`.

:class:`ApiHooks` declares those methods once, as abstract methods, and both mixins
(:class:`~virtabstract_vbox._api_guest.ApiGuestMixin`,
:class:`~virtabstract_vbox._api_machine.ApiMachineMixin`) derive from it.

Why abstract methods rather than ``if TYPE_CHECKING:`` stubs: ``Backend`` is an ABC, so an
abstract hook is a contract Python enforces (a class that forgets one cannot be
instantiated, instead of failing with an AttributeError mid-operation), it carries its
docstring at run time as well as for mypy, and a stub block that only the type checker
reads can silently drift from the real signatures.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from ._api import VBoxApi
from ._backend import VBoxBackend

__all__ = ["ApiHooks"]


class ApiHooks(VBoxBackend):
    """The hooks :class:`~virtabstract_vbox._api_backend.VBoxApiBackend` provides to its mixins."""

    @property
    @abstractmethod
    def api(self) -> VBoxApi:
        """The Main API of the open connection."""

    @abstractmethod
    def _machine(self, vm_id: str) -> Any:
        """The registered ``IMachine`` of *vm_id* (VMNotFound when there is none)."""

    @abstractmethod
    def _state(self, machine: Any) -> str:
        """The machine's ``MachineState`` API name."""

    @abstractmethod
    def _require_off_api(self, machine: Any, operation: str) -> str:
        """The machine's state name; InvalidState while a VM process runs."""

    @abstractmethod
    def _delete(self, machine: Any, delete_disks: bool, extra_media: Sequence[Any] = ()) -> None:
        """Unregister *machine* and delete its files (its disks too when *delete_disks*, and *extra_media*)."""
