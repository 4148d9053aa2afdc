"""A SOAP-level vSphere fake for what vcsim 0.24 cannot simulate.

:class:`SoapFakeProxy` sits between real pyVmomi and vcsim: every call goes to vcsim except the guest
operations (``StartProgramInGuest``, ``ListProcessesInGuest``, ``TerminateProcessInGuest``,
``CreateTemporaryFileInGuest``, ``DeleteFileInGuest``, ``InitiateFileTransferTo/FromGuest`` and the
``/guestFile`` transfers), ``RebootGuest``, ``ShutdownGuest`` (the VMware Tools check vcsim skips) and
``AcquireTicket``, which are answered here on the vSphere wire protocol from VMware's documented
semantics (see :mod:`.guest` and :mod:`.server`).
"""

from .guest import FakeGuest, GuestProcess
from .server import INTERCEPTED, SoapFakeProxy, run_soapfake
from .wire import SoapFault

__all__ = ["INTERCEPTED", "FakeGuest", "GuestProcess", "SoapFakeProxy", "SoapFault", "run_soapfake"]
