# Copyright: virtabstract developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Ansible inventory plugin: the VMs of one or several hypervisors as hosts."""

from __future__ import annotations

DOCUMENTATION = r"""
name: virtabstract
short_description: Virtual machines of KVM, ESXi, VirtualBox (any virtabstract hypervisor) as inventory hosts
version_added: 0.1.0
description:
  - Reads the VMs of one or several hypervisors, of any kind virtabstract supports, and makes each VM a host.
  - Groups hosts by backend (C(backend_kvm)), power state (C(state_running)), guest OS family (C(os_linux))
    and tag (C(tag_web)). Host variables carry the VM's id, hypervisor URL, state, guest OS and IP addresses,
    and C(ansible_host) is set to the guest's first routable IPv4 address.
  - C(compose), C(groups) and C(keyed_groups) work as in every constructed inventory, on the
    C(virtabstract_*) host variables.
  - The configuration file must end in C(virtabstract.yml) or C(virtabstract.yaml).
author:
  - virtabstract developers (@virtabstract)
requirements:
  - python >= 3.11 on the controller
  - virtabstract, plus the backend package of each hypervisor (virtabstract-kvm, virtabstract-esxi, ...)
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin; it identifies the file as its configuration.
    type: str
    required: true
    choices: [virtabstract.hypervisor.virtabstract]
  hypervisors:
    description:
      - The hypervisors to read, each a connection URL (V(qemu:///system), V(esx://esx1.example.com/),
        V(mock:///tmp/lab.json), ...) or a dictionary with the keys C(uri), C(username), C(password) and
        C(validate_certs) for per-hypervisor credentials.
      - Entries without credentials use O(username), O(password) and O(validate_certs).
    type: list
    elements: raw
    required: true
  username:
    description: User name for hypervisors that need a login.
    type: str
    env:
      - name: VIRTABSTRACT_USERNAME
  password:
    description:
      - Password for O(username). Never shown in output, host variables or the cache.
      - Prefer the environment variable or an Ansible Vault encrypted string to writing it in clear text.
    type: str
    env:
      - name: VIRTABSTRACT_PASSWORD
  validate_certs:
    description:
      - Verify TLS certificates; V(false) adds C(no_verify=1) to TLS URLs (C(esx://), C(vpx://), C(qemu+tls://)).
    type: bool
    default: true
    env:
      - name: VIRTABSTRACT_VALIDATE_CERTS
  hostnames:
    description:
      - Use the VM's V(name) or its V(id) as inventory host name.
      - With V(name), VMs sharing a name (on one or several hypervisors) are all named
        C(<name>_<first 8 characters of the id>).
    type: str
    choices: [name, id]
    default: name
  guest_ips:
    description:
      - Ask each running VM's guest agent (or the DHCP leases) for its IP addresses.
      - One call per running VM; set to V(false) for large inventories when addresses are not needed.
    type: bool
    default: true
  set_ansible_host:
    description:
      - Set C(ansible_host) to the first routable IPv4 address of the guest (else the first other address).
    type: bool
    default: true
  fail_on_errors:
    description:
      - Fail when a hypervisor cannot be read. With V(false), warn and use the others.
    type: bool
    default: true
"""

EXAMPLES = r"""
# lab.virtabstract.yml - two hypervisors, with groups of their own
plugin: virtabstract.hypervisor.virtabstract
hypervisors:
  - qemu:///system
  - uri: esx://esx1.example.com/
    username: readonly
    password: !vault |
      $ANSIBLE_VAULT;1.1;AES256
      6238...
keyed_groups:
  - key: virtabstract_guest_os
    prefix: guest
compose:
  ansible_user: "'administrator' if virtabstract_os_family == 'windows' else 'ansible'"
groups:
  big: virtabstract_memory_mib >= 8192
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/ansible-virtabstract
cache_timeout: 300

# Use it:
#   ansible-inventory -i lab.virtabstract.yml --graph
#   ansible -i lab.virtabstract.yml state_running -m ping
"""

from ansible.errors import AnsibleParserError  # noqa: E402
from ansible.module_utils.common.text.converters import to_native  # noqa: E402

from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402

try:
    import virtabstract
    from virtabstract import errors as va_errors
except ImportError:
    virtabstract = None

TLS_SCHEMES = ("esx", "vpx", "gsx")


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """VMs of one or several hypervisors as hosts, grouped by backend, state, OS family and tags."""

    NAME = "virtabstract.hypervisor.virtabstract"

    def verify_file(self, path):
        """Accept only ``*virtabstract.yml`` / ``*virtabstract.yaml`` files."""
        return super().verify_file(path) and path.endswith(("virtabstract.yml", "virtabstract.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        """Read the configuration, then the VMs (or the cache), and fill the inventory."""
        super().parse(inventory, loader, path, cache)
        if virtabstract is None:
            raise AnsibleParserError(
                "the virtabstract inventory plugin needs the virtabstract Python library on the controller: "
                "pip install virtabstract (plus the backend packages you use)"
            )
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        vms = None
        if use_cache:
            try:
                vms = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if vms is None:
            vms = self._read_hypervisors()
        if update_cache:
            self._cache[cache_key] = vms
        self._populate(vms)

    # -- reading ---------------------------------------------------------------------------

    def _entries(self):
        """Each configured hypervisor as (uri, username, password, validate_certs)."""
        entries = []
        for index, raw in enumerate(self.get_option("hypervisors") or []):
            if isinstance(raw, str):
                raw = {"uri": raw}
            if not isinstance(raw, dict) or not isinstance(raw.get("uri"), str):
                raise AnsibleParserError(
                    f"hypervisors[{index}]: expected a URL string or a dictionary with a 'uri' key"
                )
            unknown = sorted(set(raw) - {"uri", "username", "password", "validate_certs"})
            if unknown:
                raise AnsibleParserError(
                    f"hypervisors[{index}]: unknown key(s) {', '.join(unknown)} "
                    "(accepted: uri, username, password, validate_certs)"
                )
            validate = raw.get("validate_certs", self.get_option("validate_certs"))
            entries.append(
                (
                    str(raw["uri"]),
                    raw.get("username") or self.get_option("username"),
                    raw.get("password") or self.get_option("password"),
                    validate,
                )
            )
        if not entries:
            raise AnsibleParserError("hypervisors: give at least one hypervisor URL")
        return entries

    def _read_hypervisors(self):
        """Read every hypervisor's VMs as plain data (no secrets: safe to cache)."""
        vms = []
        for uri, username, password, validate_certs in self._entries():
            try:
                vms.extend(self._read_one(uri, username, password, validate_certs))
            except va_errors.VirtAbstractError as err:
                where = self._masked(uri)
                message = f"virtabstract inventory: cannot read {where}: {to_native(err)}"
                if self.get_option("fail_on_errors"):
                    raise AnsibleParserError(message) from None
                self.display.warning(message)
        return vms

    @staticmethod
    def _masked(uri):
        try:
            return str(virtabstract.make_url(uri))
        except va_errors.VirtAbstractError:
            return "(an invalid URL)"

    def _read_one(self, uri, username, password, validate_certs):
        url = virtabstract.make_url(uri)
        tls = url.scheme in TLS_SCHEMES or url.transport == "tls"
        if not validate_certs and tls and url.option("no_verify") is None:
            url = url.set(query=dict(url.query, no_verify="1"))
        guest_ips = self.get_option("guest_ips")
        out = []
        with virtabstract.connect(url, username=username, password=password) as hv:
            shown = str(hv.url)
            for vm in hv.vms.list():
                info = vm.info()
                family = None
                if info.guest_os:
                    try:
                        family = str(virtabstract.get_guest_os(info.guest_os).family)
                    except va_errors.VirtAbstractError:
                        family = None
                addresses = []
                if guest_ips and str(info.state) == "running":
                    try:
                        addresses = [
                            dict(address=a.address, version=a.version, link_local=a.is_link_local)
                            for a in vm.guest.ip_addresses(include_loopback=False)
                        ]
                    except (va_errors.GuestError, va_errors.UnsupportedOperation, va_errors.InvalidState):
                        addresses = []
                out.append(
                    dict(
                        id=info.id,
                        name=info.name,
                        uri=shown,
                        backend=hv.backend_name,
                        state=str(info.state),
                        native_state=info.native_state,
                        cpus=info.cpus,
                        memory_mib=info.memory_mib,
                        guest_os=info.guest_os,
                        os_family=family or "other",
                        tags=list(info.tags),
                        description=info.description,
                        addresses=addresses,
                    )
                )
        return out

    # -- filling the inventory -----------------------------------------------------------------

    def _host_names(self, vms):
        if self.get_option("hostnames") == "id":
            return [vm["id"] for vm in vms]
        counts = {}
        for vm in vms:
            counts[vm["name"]] = counts.get(vm["name"], 0) + 1
        names = []
        for vm in vms:
            if counts[vm["name"]] > 1:
                names.append(f"{vm['name']}_{vm['id'][:8]}")
            else:
                names.append(vm["name"])
        duplicated = sorted(n for n, c in counts.items() if c > 1)
        if duplicated:
            self.display.warning(
                "virtabstract inventory: several VMs are named "
                + ", ".join(repr(n) for n in duplicated)
                + "; their host names end in the first 8 characters of their ids"
            )
        return names

    @staticmethod
    def _ansible_host(addresses):
        routable = [a for a in addresses if a["version"] == 4 and not a["link_local"]]
        others = [a for a in addresses if not a["link_local"]] or addresses
        chosen = routable or others
        return chosen[0]["address"] if chosen else None

    def _populate(self, vms):
        strict = self.get_option("strict")
        for host, vm in zip(self._host_names(vms), vms, strict=True):
            self.inventory.add_host(host)
            hostvars = {
                "virtabstract_id": vm["id"],
                "virtabstract_name": vm["name"],
                "virtabstract_uri": vm["uri"],
                "virtabstract_backend": vm["backend"],
                "virtabstract_state": vm["state"],
                "virtabstract_native_state": vm["native_state"],
                "virtabstract_cpus": vm["cpus"],
                "virtabstract_memory_mib": vm["memory_mib"],
                "virtabstract_guest_os": vm["guest_os"],
                "virtabstract_os_family": vm["os_family"],
                "virtabstract_tags": vm["tags"],
                "virtabstract_description": vm["description"],
                "virtabstract_ip_addresses": [a["address"] for a in vm["addresses"]],
            }
            if self.get_option("set_ansible_host"):
                address = self._ansible_host(vm["addresses"])
                if address:
                    hostvars["ansible_host"] = address
            for key, value in hostvars.items():
                self.inventory.set_variable(host, key, value)
            groups = [f"backend_{vm['backend']}", f"state_{vm['state']}", f"os_{vm['os_family']}"]
            groups += [f"tag_{tag}" for tag in vm["tags"]]
            for group in groups:
                group = self._sanitize_group_name(group)
                self.inventory.add_group(group)
                self.inventory.add_child(group, host)
            self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict)
