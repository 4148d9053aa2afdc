# Copyright: virtabstract developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Thin glue between AnsibleModule and the virtabstract library.

The library is the client: this file only declares the connection options
(documented by the ``virtabstract.hypervisor.connection`` doc fragment), opens
the connection, and turns library errors into ``fail_json`` with the
library's own message. Nothing here knows about a particular hypervisor.
"""

from __future__ import annotations

import traceback
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

try:
    import virtabstract
    from virtabstract import errors as va_errors
except ImportError:
    virtabstract = None
    va_errors = None
    VIRTABSTRACT_IMPORT_ERROR = traceback.format_exc()
else:
    VIRTABSTRACT_IMPORT_ERROR = None

TLS_SCHEMES = ("esx", "vpx", "gsx")
"""URL schemes that always use TLS; ``…+tls`` transports are TLS too."""


def connection_argument_spec():
    """Return the connection options shared by every module (see the ``connection`` doc fragment)."""
    return dict(
        uri=dict(type="str", required=True, fallback=(env_fallback, ["VIRTABSTRACT_URI"])),
        username=dict(type="str", fallback=(env_fallback, ["VIRTABSTRACT_USERNAME"])),
        password=dict(type="str", no_log=True, fallback=(env_fallback, ["VIRTABSTRACT_PASSWORD"])),
        validate_certs=dict(type="bool", fallback=(env_fallback, ["VIRTABSTRACT_VALIDATE_CERTS"])),
    )


class VirtAbstractModule(AnsibleModule):
    """AnsibleModule that also hides a password written into ``uri`` (``esx://user:secret@host/``).

    The password is added to the values Ansible masks before the invocation is first logged,
    so it is hidden like O(password) everywhere: logs, results, errors.
    """

    def _log_invocation(self):
        self.hide_url_password()
        super()._log_invocation()

    def hide_url_password(self):
        """Add the password of O(uri), if it has one, to the values Ansible masks."""
        uri = self.params.get("uri")
        try:
            password = urlsplit(uri).password if isinstance(uri, str) else None
        except ValueError:
            password = None
        if password:
            self.no_log_values.add(password)
            self.no_log_values.add(unquote(password))


def new_module(argument_spec, **kwargs):
    """Create the module with the connection options added; fail early without the library."""
    spec = connection_argument_spec()
    spec.update(argument_spec)
    module = VirtAbstractModule(argument_spec=spec, **kwargs)
    module.hide_url_password()
    if virtabstract is None:
        module.fail_json(msg=missing_required_lib("virtabstract"), exception=VIRTABSTRACT_IMPORT_ERROR)
    return module


def connection_url(uri, validate_certs):
    """Return the URL to open: *uri*, with ``no_verify=1`` for TLS schemes when *validate_certs* is false."""
    url = virtabstract.make_url(uri)
    tls = url.scheme in TLS_SCHEMES or url.transport == "tls"
    if validate_certs is False and tls and url.option("no_verify") is None:
        query = dict(url.query)
        query["no_verify"] = "1"
        url = url.set(query=query)
    return url


def fail_from_error(module, err, **result):
    """Fail the task with the library's message (it never contains a secret), its class and field."""
    details = dict(result)
    details["error"] = type(err).__name__
    field = getattr(err, "field", None)
    if field:
        details["field"] = field
    state = getattr(err, "state", None)
    if state is not None:
        details["vm_state"] = str(state)
    module.fail_json(msg=str(err), **details)


@contextmanager
def handle_errors(module, **result):
    """Turn any virtabstract error raised in the block into ``fail_json``."""
    try:
        yield
    except va_errors.VirtAbstractError as err:
        fail_from_error(module, err, **result)


@contextmanager
def hypervisor(module):
    """Open the connection described by the module's connection options; close it afterwards."""
    params = module.params
    with handle_errors(module):
        url = connection_url(params["uri"], params.get("validate_certs"))
        hv = virtabstract.connect(url, username=params.get("username"), password=params.get("password"))
    try:
        with handle_errors(module):
            yield hv
    finally:
        hv.close()


def find_vm(hv, name=None, vm_id=None):
    """Return the VM with id *vm_id* (else the one named *name*), or ``None`` when it does not exist.

    :raises AmbiguousName: several VMs have that name (the message lists their ids).
    """
    try:
        return hv.vms.get(vm_id or name)
    except va_errors.VMNotFound:
        if vm_id and name:
            return find_vm(hv, name=name)
        return None


def to_data(value):
    """Return library info objects as plain, JSON-ready data (secrets stay masked)."""
    return virtabstract.to_dict(value)


def vm_summary(info):
    """The fields the ``vm`` module manages, as compared in check mode and shown by ``--diff``."""
    if info is None:
        return {}
    return dict(
        name=info.name,
        state=str(info.state),
        cpus=info.cpus,
        memory_mib=info.memory_mib,
        description=info.description,
        tags=list(info.tags),
        autostart=info.autostart,
        guest_os=info.guest_os,
    )


def ip_addresses(vm, state):
    """The guest's IP addresses as plain data; empty when it is not running or has no agent/lease."""
    if str(state) != "running":
        return []
    try:
        return [dict(to_data(a), version=a.version) for a in vm.guest.ip_addresses(include_loopback=False)]
    except (va_errors.GuestError, va_errors.UnsupportedOperation, va_errors.InvalidState):
        return []
