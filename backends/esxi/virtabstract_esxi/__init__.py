"""virtabstract's VMware ESXi / vCenter backend (pyVmomi).

Install ``virtabstract[esxi]`` and connect with ``esx://host/`` or
``vpx://vcenter/Datacenter/Cluster``; see :mod:`virtabstract_esxi._backend` for the URL
options, ids and what was verified against what. Importing this package does not
import pyVmomi.
"""

from __future__ import annotations

__all__ = ["ESXiBackend", "map_vim_faults"]


def __getattr__(name: str) -> object:
    if name == "ESXiBackend":
        from ._backend import ESXiBackend

        return ESXiBackend
    if name == "map_vim_faults":
        from ._faults import map_vim_faults

        return map_vim_faults
    raise AttributeError(name)
