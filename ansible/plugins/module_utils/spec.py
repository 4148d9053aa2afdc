# Copyright: virtabstract developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The VMSpec fields as module options (documented by the ``virtabstract.hypervisor.vm_spec`` fragment).

The option names, nesting and types follow ``virtabstract.spec_schema()``
(a test in ``tests/ansible`` checks that they agree field by field). The
options declare no choices, ranges or defaults of their own: values go to
``VMSpec.from_dict``, so the library's validation is the only set of rules and
its errors name the field (``disks[0].size: expected a size such as '20GiB'…``).
An option left out means "not managed": it takes the library's default when the
VM is created and is not compared on an existing VM.
"""

from __future__ import annotations

RECONFIGURABLE = ("cpus", "memory", "description", "tags")
"""Spec fields the ``vm`` module changes on an existing VM (through ``VM.reconfigure``)."""

CREATE_ONLY = (
    "guest_os",
    "disks",
    "nics",
    "firmware",
    "secure_boot",
    "boot_order",
    "cdrom",
    "graphics",
    "acceleration",
)
"""Spec fields used when the VM is created and not compared afterwards."""


def spec_argument_spec():
    """Return the VMSpec fields (except ``name``) as AnsibleModule options."""
    disk_options = dict(
        size=dict(type="raw"),
        storage=dict(type="str"),
        path=dict(type="str"),
        bus=dict(type="str"),
        thin=dict(type="bool"),
        name=dict(type="str"),
    )
    nic_options = dict(
        network=dict(type="str"),
        kind=dict(type="str"),
        model=dict(type="str"),
        mac=dict(type="str"),
        connected=dict(type="bool"),
    )
    return dict(
        cpus=dict(type="int"),
        memory=dict(type="raw"),
        guest_os=dict(type="str"),
        disks=dict(type="list", elements="dict", options=disk_options),
        nics=dict(type="list", elements="dict", options=nic_options),
        firmware=dict(type="str"),
        secure_boot=dict(type="bool"),
        boot_order=dict(type="list", elements="str"),
        cdrom=dict(type="raw"),
        autostart=dict(type="bool"),
        description=dict(type="str"),
        tags=dict(type="list", elements="str"),
        graphics=dict(type="str"),
        acceleration=dict(type="str"),
    )


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def spec_params(params):
    """Return the spec fields the user gave, as VMSpec.from_dict data (unset sub-options left out)."""
    return {key: _drop_none(params[key]) for key in spec_argument_spec() if params.get(key) is not None}
