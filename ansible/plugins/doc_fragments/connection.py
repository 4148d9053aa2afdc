# Copyright: virtabstract developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Documentation of the connection options every virtabstract module shares."""

from __future__ import annotations


class ModuleDocFragment:
    """The options of ``module_utils.common.connection_argument_spec()``, documented once."""

    DOCUMENTATION = r"""
options:
  uri:
    description:
      - The hypervisor connection URL; its scheme selects the backend.
      - Examples are C(qemu:///system) (KVM through libvirt), C(esx://esx1.example.com/) (one ESXi host),
        C(vpx://vcenter.example.com/DC1) (vCenter), C(vbox:///session) (VirtualBox)
        and C(mock:///path/lab.json) (the file-backed mock hypervisor, for tests and demos).
      - Give the password in O(password), not in the URL, so that Ansible can hide it.
      - If not set, the value of the E(VIRTABSTRACT_URI) environment variable is used.
    type: str
    required: true
  username:
    description:
      - User name for hypervisors that need a login (ESXi, vCenter, remote libvirt).
      - Overrides a user name in O(uri).
      - If not set, the value of the E(VIRTABSTRACT_USERNAME) environment variable is used.
    type: str
  password:
    description:
      - Password for O(username). Never shown in output or logs.
      - If not set, the value of the E(VIRTABSTRACT_PASSWORD) environment variable is used.
    type: str
  validate_certs:
    description:
      - Verify the hypervisor's TLS certificate.
      - Set to V(false) only for lab hosts with self-signed certificates; this adds C(no_verify=1)
        to TLS URLs (C(esx://), C(vpx://), C(qemu+tls://)). Other URLs have no certificate to verify.
      - If not set, the value of the E(VIRTABSTRACT_VALIDATE_CERTS) environment variable is used,
        and V(true) when that is not set either.
    type: bool
requirements:
  - python >= 3.11
  - virtabstract (the Python library), plus the backend package of the hypervisor used
    (virtabstract-kvm, virtabstract-esxi or virtabstract-vbox)
notes:
  - "The module talks to the hypervisor's API from the host it runs on, usually the controller
    (C(delegate_to: localhost), or C(hosts: localhost) with C(connection: local))."
"""
