# Copyright: virtabstract developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Documentation of the VMSpec options of ``module_utils.spec.spec_argument_spec()``."""

from __future__ import annotations


class ModuleDocFragment:
    """The VMSpec fields as module options, documented once."""

    DOCUMENTATION = r"""
options:
  cpus:
    description:
      - Number of virtual CPUs, 1 to 768.
      - V(1) when the VM is created without it. Changed on an existing VM (see O(allow_power_cycle)).
    type: int
  memory:
    description:
      - Memory size, as an integer of MiB (V(2048)) or a string with a unit (V(2GiB), V(512MiB)).
      - V(1024) MiB when the VM is created without it. Changed on an existing VM (see O(allow_power_cycle)).
    type: raw
  guest_os:
    description:
      - Guest OS catalog id, for example V(ubuntu-22.04), V(debian-12), V(windows-server-2022), V(other).
      - The catalog maps it to each hypervisor's own id; an unknown id fails before anything is created.
        C(python -c "import virtabstract; print(virtabstract.guest_os_ids())") lists the ids.
      - Used when the VM is created; on an existing VM a different value only gives a warning.
    type: str
  disks:
    description:
      - Disks to create (O(disks[].size)) or existing images to attach (O(disks[].path)), in boot order.
      - Used when the VM is created.
    type: list
    elements: dict
    suboptions:
      size:
        description:
          - Size as an integer of MiB or a string such as V(20GiB). Required unless O(disks[].path) is given.
        type: raw
      storage:
        description:
          - Storage pool or datastore name; the hypervisor's default when omitted.
        type: str
      path:
        description:
          - An existing disk image to attach instead of creating one.
        type: str
      bus:
        description:
          - One of V(virtio), V(scsi), V(sata), V(ide), V(nvme); the backend's best default when omitted.
        type: str
      thin:
        description:
          - Thin-provisioned (sparse) disk. V(true) when omitted.
        type: bool
      name:
        description:
          - Volume or file name; generated from the VM name when omitted.
        type: str
  nics:
    description:
      - Network interfaces. Used when the VM is created.
    type: list
    elements: dict
    suboptions:
      network:
        description:
          - Network, bridge or portgroup to attach to. V(default) when omitted.
        type: str
      kind:
        description:
          - One of V(network) (managed network or portgroup, the default), V(bridge), V(nat), V(hostonly),
            V(internal).
        type: str
      model:
        description:
          - One of V(virtio), V(e1000), V(e1000e), V(vmxnet3), V(rtl8139), V(pcnet), V(virtio-net);
            the backend's best default when omitted.
        type: str
      mac:
        description:
          - A fixed unicast MAC address such as V(52:54:00:12:34:56); generated when omitted.
        type: str
      connected:
        description:
          - Whether the link starts connected. V(true) when omitted.
        type: bool
  firmware:
    description:
      - V(bios) (the default) or V(uefi). Used when the VM is created.
    type: str
  secure_boot:
    description:
      - UEFI secure boot; needs O(firmware=uefi). Used when the VM is created.
    type: bool
  boot_order:
    description:
      - Boot devices in order, drawn from V(disk), V(cdrom), V(network). Used when the VM is created.
    type: list
    elements: str
  cdrom:
    description:
      - A CD-ROM drive, given as the path of an ISO image or as a dictionary with the keys C(iso) and C(bus)
        (V(sata), V(ide) or V(scsi)). Used when the VM is created.
    type: raw
  autostart:
    description:
      - Start the VM when the host boots. Managed on existing VMs too.
    type: bool
  description:
    description:
      - Free text stored with the VM. Changed on existing VMs while they run.
    type: str
  tags:
    description:
      - Short labels stored with the VM (no commas); the inventory plugin groups VMs by them.
      - The list replaces the VM's tags; order and duplicates do not matter.
    type: list
    elements: str
  graphics:
    description:
      - V(vnc) (the default), V(spice) or V(none). Used when the VM is created.
    type: str
  acceleration:
    description:
      - V(auto) (the default), V(hardware) (for example KVM) or V(software) (for example QEMU TCG).
        Used when the VM is created.
    type: str
"""
