"""Registers the ESXi/vCenter backend for ``esx://``, ``vpx://`` and ``vsphere://`` URLs.

Found through the ``virtabstract`` entry-point group. Importing this module imports
neither pyVmomi nor the backend: the registry loads ``virtabstract_esxi._backend`` on the
first matching ``connect()``, and the backend imports pyVmomi in ``import_sdk``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from virtabstract import hookimpl

if TYPE_CHECKING:
    from virtabstract import BackendRegister

SCHEMES = ("esx", "vpx", "vsphere")


@hookimpl
def virtabstract_register_backends(register: BackendRegister) -> None:
    """Serve ``esx://host/`` (one ESXi host) and ``vpx://vcenter[/DC[/Cluster[/Host]]]`` (alias ``vsphere://``)."""
    register(SCHEMES, "virtabstract_esxi._backend:ESXiBackend")
