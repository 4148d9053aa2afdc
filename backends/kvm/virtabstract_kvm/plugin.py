"""Registers the KVM backend for libvirt's QEMU and test URIs (and the ``kvm://`` alias).

This module is what the ``virtabstract`` entry point loads: it must stay cheap,
so it names the backend class as a string and never imports libvirt.
"""

from __future__ import annotations

from virtabstract import BackendRegister, hookimpl

SCHEMES = ("qemu", "test", "kvm")
"""URL schemes served; ``qemu+ssh``, ``qemu+tls``, ``test+unix`` … resolve through their driver part."""


@hookimpl
def virtabstract_register_backends(register: BackendRegister) -> None:
    """Serve ``qemu://``, ``qemu+<transport>://``, ``test://`` and ``kvm://`` URLs."""
    register(SCHEMES, "virtabstract_kvm._backend:KVMBackend")
