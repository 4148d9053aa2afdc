"""The API transport: the VirtualBox Main API through ``vboxapi``, with a version shim.

pyvbox (``virtualbox`` on PyPI) is generated from VirtualBox 6.1.16 and its typed
wrappers are wrong for 7.x, so it is used only to *find* the SDK's ``vboxapi``
(``virtualbox.import_vboxapi()`` knows the install locations of each OS); every call
then goes to the raw COM/XPCOM objects, through this module:

Every shim decision is an ordered comparison of :attr:`VBoxApi.behaviour` -- the
running version, or 7.2 for a newer one (:mod:`~virtabstract_vbox._versions`) -- with
the version that introduced the change, so 7.2 (whose SDK change log and
``VirtualBox.xidl`` change nothing used here) takes 7.1's calls:

* :meth:`VBoxApi.create_machine` -- ``IVirtualBox.createMachine`` takes 5 parameters in
  6.1, 8 in 7.0 (cipher, password id, password) and 9 from 7.1 on (platform
  architecture after the name; the same in 7.2).
* :meth:`VBoxApi.firmware_type` / :meth:`VBoxApi.set_firmware_type` -- the firmware is
  ``IMachine.firmwareType`` in 6.1 and 7.0, ``IMachine.firmwareSettings.firmwareType``
  (``IFirmwareSettings``) from 7.1 on.
* :meth:`VBoxApi.state_name` -- ``MachineState`` is compared by *name*: 7.0 inserted
  ``AbortedSaved`` = 5 and shifted every later number, and the numbers come from the
  running VirtualBox's version (:func:`~virtabstract_vbox._states.state_from_number`;
  7.1 and 7.2 number as 7.0). A VirtualBox newer than the known ones is decoded with
  its SDK's own ``MachineState`` constants, so a renumbering there cannot misread states.
* :meth:`VBoxApi.session` -- session-lock discipline: the session is always unlocked,
  even when the body raises; unlocking is asynchronous, so it waits (in short sleeps)
  until the session reads ``Unlocked`` and the machine is no longer ``Unlocking``. A
  session the VirtualBox side already unlocked (a linked session whose VM process
  ended) is not unlocked twice.
* :meth:`VBoxApi.wait` -- ``IProgress`` is waited in short slices; a
  ``waitForCompletion`` that times out returns normally, so ``completed`` is re-checked
  after each slice; progress callbacks get the percent and the operation; at the
  deadline the progress is canceled (when cancelable) and
  :class:`~virtabstract.errors.OperationTimeout` raised; failure is read from
  ``resultCode`` / ``errorInfo``.
* :meth:`VBoxApi.call` / :meth:`VBoxApi.set` -- COM/XPCOM exceptions of methods and of
  attribute setters become virtabstract errors through
  :func:`~virtabstract_vbox._errors.exception_for_hresult` (the one error table).

Test seam: the Python-only connect option ``vboxapi_module`` hands in a module-like
object with a ``VirtualBoxManager`` class (the test suite's fake COM layer).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from virtabstract import wait_until
from virtabstract.errors import BackendError, OperationTimeout, VirtAbstractError

from ._errors import ERROR_CODES, exception_for_hresult
from ._parse import VBoxVersion, parse_version
from ._states import MACHINE_STATES, state_from_number
from ._versions import behaviour_version, is_newer_than_known

__all__ = ["LOCK_SHARED", "LOCK_WRITE", "ProgressCallback", "VBoxApi", "import_vboxapi"]

log = logging.getLogger("virtabstract.vbox")

LOCK_SHARED = "Shared"
"""Links to the session holding the machine (the VM process), or is a write lock on an unlocked machine."""
LOCK_WRITE = "Write"
"""Exclusive: fails with VBOX_E_INVALID_OBJECT_STATE while another session holds the machine."""

_SESSION_STATES = ("Null", "Unlocked", "Locked", "Spawning", "Unlocking")
_PSEUDO_STATES = frozenset({"FirstOnline", "LastOnline", "FirstTransient", "LastTransient"})
_FIRMWARE_TYPES = ("BIOS", "EFI", "EFI32", "EFI64", "EFIDUAL")
_LOCK_TYPES = {"Shared": 1, "Write": 2, "VM": 3}

ProgressCallback = Callable[[str, int, str], None]
"""``callback(what, percent, operation_description)``, called after every wait slice."""


def import_vboxapi() -> Any:
    """Import the SDK's ``vboxapi``: through pyvbox's ``virtualbox.import_vboxapi()`` when installed.

    :raises ImportError: neither is importable (or COM/XPCOM fails to load).
    """
    try:
        pyvbox = importlib.import_module("virtualbox")
    except ImportError:
        pyvbox = None
    finder = getattr(pyvbox, "import_vboxapi", None)
    if callable(finder):
        return finder()
    return importlib.import_module("vboxapi")


def _enum_name(names: tuple[str, ...], value: Any) -> str:
    try:
        return names[int(value)]
    except (IndexError, TypeError, ValueError):
        return str(value)


class VBoxApi:
    """The Main API objects of one connection and the version-aware calls the backend makes."""

    def __init__(
        self,
        vboxapi: Any,
        *,
        timeout: float,
        slice_seconds: float = 0.2,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.timeout = timeout
        self.slice_seconds = slice_seconds
        self.on_progress = on_progress
        self.manager = vboxapi.VirtualBoxManager(None, None)
        self.constants = self.manager.constants
        self.vbox = self.call("IVirtualBox", self.manager.getVirtualBox)
        text = str(self.vbox.version)
        revision = getattr(self.vbox, "revision", "")
        self.version: VBoxVersion = parse_version(f"{text}r{revision}" if revision else text)
        self.behaviour: tuple[int, int] = behaviour_version(self.version)
        """The (major, minor) whose calls are made: the version, or the newest known one for a newer VirtualBox."""
        self._sdk_states: dict[int, str] | None = None

    # -- errors ----------------------------------------------------------------------

    def error(self, exc: BaseException, what: str) -> VirtAbstractError:
        """The virtabstract error for a COM/XPCOM exception raised by *what*."""
        if isinstance(exc, VirtAbstractError):
            return exc
        code = None
        message = str(exc)
        try:
            if self.manager.xcptIsOurXcptKind(exc):
                code = int(self.manager.xcptGetResult(exc))
                message = str(self.manager.xcptGetMessage(exc))
        except Exception:  # noqa: BLE001 - the manager cannot decode it: use what the exception says
            code = getattr(exc, "errno", getattr(exc, "hresult", None))
        error: VirtAbstractError = (
            BackendError(f"{what}: {message}", orig=exc) if code is None else exception_for_hresult(code, message)
        )
        if isinstance(error, BackendError) and error.orig is None:
            error.orig = exc
        return error

    def call(self, what: str, func: Callable[..., Any], *args: Any) -> Any:
        """Call a COM method; COM errors become virtabstract errors (TypeError etc. are bugs and pass)."""
        try:
            return func(*args)
        except (TypeError, AttributeError, VirtAbstractError):
            raise
        except Exception as exc:
            raise self.error(exc, what) from exc

    def set(self, obj: Any, attribute: str, value: Any) -> None:
        """Set a COM attribute; a refusal (e.g. VBOX_E_INVALID_VM_STATE) becomes a virtabstract error."""
        self.call(f"set {attribute}", setattr, obj, attribute, value)

    # -- version shim ----------------------------------------------------------------

    def state_name(self, machine: Any) -> str:
        """The machine's ``MachineState`` API name, decoded with this VirtualBox version's numbering.

        Known versions use the backend's table; a newer VirtualBox is decoded with its SDK's
        constants (the table of the newest known version where those cannot be read). A number
        neither knows comes back as ``"MachineState <n>"`` (power state UNKNOWN), never an error.
        """
        value = self.call("IMachine.state", lambda: machine.state)
        if isinstance(value, str):
            return value
        number = int(value)
        if is_newer_than_known(self.version):
            name = self._sdk_state_names().get(number)
            if name is not None:
                return name
        try:
            return state_from_number(number, self.behaviour).api_name
        except ValueError:
            return f"MachineState {number}"

    def _sdk_state_names(self) -> dict[int, str]:
        """``{number: name}`` of the running VirtualBox's SDK (``constants.all_values``, else one name at a time)."""
        if self._sdk_states is None:
            values: dict[str, Any] = {}
            try:
                values = dict(self.constants.all_values("MachineState"))
            except Exception as exc:  # noqa: BLE001 - an older vboxapi: ask for the names this backend knows
                log.debug("constants.all_values('MachineState') failed: %s", exc)
                for state in MACHINE_STATES:
                    found = getattr(self.constants, f"MachineState_{state.api_name}", None)
                    if found is not None:
                        values[state.api_name] = found
            self._sdk_states = {}
            for name, number in values.items():
                if name not in _PSEUDO_STATES:  # FirstOnline & co. alias real states
                    self._sdk_states.setdefault(int(number), str(name))
        return self._sdk_states

    def create_machine(self, name: str, os_type: str, groups: list[str], flags: str, settings_file: str = "") -> Any:
        """``IVirtualBox.createMachine`` with the parameter list of this version (5, 8 or 9)."""
        args: list[Any]
        if self.behaviour >= (7, 1):
            platform = getattr(self.constants, "PlatformArchitecture_x86", 1)
            args = [settings_file, name, platform, groups, os_type, flags, "", "", ""]
        elif self.behaviour >= (7, 0):
            args = [settings_file, name, groups, os_type, flags, "", "", ""]
        else:
            args = [settings_file, name, groups, os_type, flags]
        return self.call("IVirtualBox.createMachine", self.vbox.createMachine, *args)

    def _firmware_holder(self, machine: Any) -> Any:
        if self.behaviour >= (7, 1):
            return self.call("IMachine.firmwareSettings", lambda: machine.firmwareSettings)
        return machine

    def firmware_type(self, machine: Any) -> str:
        """The machine's ``FirmwareType`` name (``"BIOS"``, ``"EFI"``, …), wherever this version keeps it."""
        value = self.call("firmwareType", lambda: self._firmware_holder(machine).firmwareType)
        names = {self.constant("FirmwareType", name): name for name in _FIRMWARE_TYPES}
        return names.get(int(value), str(value))

    def set_firmware_type(self, machine: Any, name: str) -> None:
        """Set the ``FirmwareType`` by name on a mutable machine (``session.machine`` or one not registered yet)."""
        self.set(self._firmware_holder(machine), "firmwareType", self.constant("FirmwareType", name))

    def constant(self, enum: str, name: str) -> int:
        """``constants.<enum>_<name>`` (enums other than MachineState kept their numbers across 6.1-7.x)."""
        return int(getattr(self.constants, f"{enum}_{name}"))

    # -- sessions --------------------------------------------------------------------

    def session_state(self, session: Any) -> str:
        """``ISession.state`` by name."""
        return _enum_name(_SESSION_STATES, self.call("ISession.state", lambda: session.state))

    @contextmanager
    def session(self, machine: Any, lock: str = LOCK_SHARED) -> Iterator[Any]:
        """Lock *machine* in a new session; always unlock it afterwards, and wait until it is unlocked."""
        session = self.call("getSessionObject", self.manager.getSessionObject, self.vbox)
        self.call("IMachine.lockMachine", machine.lockMachine, session, _LOCK_TYPES[lock])
        try:
            yield session
        finally:
            self.unlock(session, machine)

    def unlock(self, session: Any, machine: Any | None = None, *, timeout: float = 10.0) -> None:
        """Unlock *session* if it is still locked, then wait for ``Unlocked`` (unlocking is asynchronous)."""
        try:
            if self.session_state(session) in ("Locked", "Spawning"):
                session.unlockMachine()
        except Exception as exc:  # noqa: BLE001 - never mask the body's error; the state is checked below
            log.debug("unlockMachine failed: %s", exc)

        def unlocked() -> bool:
            try:
                done = self.session_state(session) in ("Unlocked", "Null")
                if done and machine is not None:
                    done = _enum_name(_SESSION_STATES, machine.sessionState) != "Unlocking"
            except Exception as exc:  # noqa: BLE001 - a dead session object is an unlocked one
                log.debug("session state unreadable after unlock: %s", exc)
                return True
            return done

        try:
            wait_until(unlocked, timeout=timeout, what="the VirtualBox session to unlock", interval=0.001,
                       max_interval=0.05)  # fmt: skip
        except OperationTimeout:
            log.warning("VirtualBox session still not unlocked after %gs", timeout)

    # -- progress --------------------------------------------------------------------

    def wait(self, progress: Any, what: str, timeout: float | None = None) -> None:
        """Wait for an IProgress in slices; raise the mapped error when it failed.

        :raises OperationTimeout: not completed within *timeout* (the progress is canceled when possible).
        """
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        slice_ms = max(1, int(self.slice_seconds * 1000))
        while not progress.completed:
            self.call(f"{what}: IProgress.waitForCompletion", progress.waitForCompletion, slice_ms)
            if self.on_progress is not None:
                try:
                    self.on_progress(what, int(progress.percent), str(progress.operationDescription))
                except Exception:
                    log.exception("progress callback failed")
            if progress.completed:  # a wait that timed out returned normally: check again
                break
            if time.monotonic() >= deadline:
                try:
                    if progress.cancelable:
                        progress.cancel()
                except Exception as exc:  # noqa: BLE001 - best effort
                    log.debug("cancel failed: %s", exc)
                raise OperationTimeout(f"VirtualBox {what} did not finish within {limit:g}s", timeout=limit)
        code = int(self.call(f"{what}: IProgress.resultCode", lambda: progress.resultCode))
        if code == 0:
            return
        info = progress.errorInfo
        text = str(getattr(info, "text", "") or f"{what} failed")
        if info is not None and getattr(info, "resultCode", None) is not None:
            code = int(info.resultCode)
        if code & 0xFFFFFFFF == ERROR_CODES["E_FAIL"] and getattr(progress, "canceled", False):
            text = f"{what} was canceled: {text}"
        raise exception_for_hresult(code, text)
