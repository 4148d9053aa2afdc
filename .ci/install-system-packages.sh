#!/usr/bin/env bash
# Install the Debian 12 system packages the virtabstract test suite needs.
#
# Idempotent: when every package is already installed (checked with dpkg -s),
# apt-get is not run at all, so reruns take well under a second.
#
# What needs what:
#   libvirt-daemon-system libvirt-clients  libvirtd/virtlogd + virsh (real-libvirt tests, cross-checks)
#   dnsmasq-base iproute2 iptables           libvirt's 'default' NAT network (only Recommends, so listed)
#   libvirt-dev pkg-config gcc python3-dev   building libvirt-python from PyPI
#   qemu-system-x86 qemu-utils                 QEMU/TCG guests, qemu-img for volumes
#   busybox-static cpio                        the tiny test guest (tests/infra/guest_image.py)
#   golang-go golang-github-vmware-govmomi-dev vcsim (VMware simulator) built in GOPATH mode
# The guest kernel and qemu-guest-agent are NOT installed: tests/infra/guest_image.py
# fetches them with `apt-get download` and unpacks them into its cache.
# ansible comes from PyPI, not from here.
set -euo pipefail

PACKAGES=(
    libvirt-daemon-system
    libvirt-clients
    dnsmasq-base
    iproute2
    iptables
    libvirt-dev
    pkg-config
    gcc
    python3-dev
    python3-venv
    qemu-system-x86
    qemu-utils
    busybox-static
    cpio
    golang-go
    golang-github-vmware-govmomi-dev
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    # dpkg -s exits 0 also for "deinstall ok config-files"; require "install ok installed".
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-system-packages: all ${#PACKAGES[@]} packages already installed"
    exit 0
fi

echo "install-system-packages: installing: ${missing[*]}"

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    SUDO=(sudo -n)
fi

export DEBIAN_FRONTEND=noninteractive
# Never let a package's postinst start or restart services in CI containers
# (there is usually no init system); tests start libvirtd/virtlogd themselves.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 755 "$policy"
    created_policy=1
fi
cleanup() {
    if [[ $created_policy -eq 1 ]]; then
        "${SUDO[@]}" rm -f "$policy"
    fi
}
trap cleanup EXIT

apt_get() {
    "${SUDO[@]}" apt-get -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef \
        -o Dpkg::Options::=--force-confold "$@"
}

for attempt in 1 2 3; do
    if apt_get update -qq && \
       apt_get install -y -qq --no-install-recommends "${missing[@]}"; then
        break
    fi
    if [[ $attempt -eq 3 ]]; then
        echo "install-system-packages: apt-get failed after $attempt attempts" >&2
        exit 1
    fi
    echo "install-system-packages: apt-get failed (attempt $attempt), retrying" >&2
    sleep $((attempt * 5))
done

echo "install-system-packages: done"
