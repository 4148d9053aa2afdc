"""VirtualBox backend for virtabstract: ``vbox:///session``.

Two transports sit behind one backend class, :class:`~virtabstract_vbox._backend.VBoxBackend`:

* ``vboxmanage`` -- the ``VBoxManage`` command line every VirtualBox install ships,
  driven with argument lists (never a shell) and ``--machinereadable`` output;
* ``api`` -- the VirtualBox Main API through the SDK's ``vboxapi`` (found through
  pyvbox), :class:`~virtabstract_vbox._api_backend.VBoxApiBackend`, with a version
  shim for 6.1 / 7.0 / 7.1 / 7.2 (:mod:`virtabstract_vbox._api`), with the VBoxManage
  transport's capabilities and semantics (``VBoxBackend.variants()`` lists both classes).

``transport=auto`` (the default) uses the API when vboxapi imports, else VBoxManage.

Versions (:mod:`virtabstract_vbox._versions`): 6.1 to 7.2 are known; an older one is
refused, a newer one is used with 7.2's behaviour and an :class:`UntestedVersionWarning`.

Importing this package imports neither pyvbox nor any VirtualBox SDK.
"""

from __future__ import annotations

from ._versions import UntestedVersionWarning

__all__ = ["UntestedVersionWarning", "__version__"]

__version__ = "0.1.0"
