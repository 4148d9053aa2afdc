"""virtabstract's KVM/QEMU backend, through libvirt.

Importing this package is cheap: libvirt-python is imported only when a
connection is opened (:meth:`KVMBackend.import_sdk`). The plugin entry point is
:mod:`virtabstract_kvm.plugin`; the backend class is
``virtabstract_kvm._backend.KVMBackend``.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
