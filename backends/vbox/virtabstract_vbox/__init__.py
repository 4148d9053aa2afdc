"""VirtualBox backend for virtabstract: ``vbox:///session``.

Two transports sit behind one backend class, :class:`~virtabstract_vbox._backend.VBoxBackend`:

* ``vboxmanage`` -- the ``VBoxManage`` command line every VirtualBox install ships,
  driven with argument lists (never a shell) and ``--machinereadable`` output;
* ``api`` -- the VirtualBox Main API through ``vboxapi``/pyvbox (not available in
  this release: selecting it raises :class:`~virtabstract.errors.BackendUnavailable`).

Importing this package imports neither pyvbox nor any VirtualBox SDK.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
