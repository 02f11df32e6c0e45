#!/bin/sh
# netboot quick start on Debian (run as root, or with the packages below installed):
#   ./bootstrap.sh serve [SERVE-OPTIONS]   install, build the demo set, serve nbimages/
#   ./bootstrap.sh test  [PYTEST-OPTIONS]  install, then ruff, mypy, lint-imports and the whole test suite
# Everything Python goes into .venv/ in this directory; system packages come from apt.
set -eu
cd "$(dirname "$0")"

# What the daemon and `netboot images demo` need at run time (NFS: nfs-ganesha,
# which the daemon runs, its VFS backend, and rpcbind for NFSv3). Debian's signed shim
# and GRUB for Secure Boot PCs are fetched, not installed (`netboot fetch-signed-chain`):
# shim-signed's postinst would reinstall the boot loader of a UEFI host.
RUNTIME_PACKAGES="python3 python3-venv ipxe xorriso iproute2 nfs-ganesha nfs-ganesha-vfs rpcbind"
# grub-mkimage (grub-common; no boot loader is installed by it) builds the network GRUB with
# `http` that UEFI HTTP-boot clients without an iPXE (arm64) get: `netboot build-http-grub`.
RUNTIME_PACKAGES="$RUNTIME_PACKAGES grub-common"
# What the tests need on top: clients and dissectors written by others: TFTP
# (curl, tftp-hpa, atftp), BSDP (insomniacslk's Go library, built with golang-go),
# DHCP (busybox's udhcpc, ISC dhclient (also -6), dhcpcd, Kea's perfdhcp, and dnsmasq as a site's
# DHCP server or a rival), NFS (libnfs's nfs-cat and nfs-ls), Wireshark's tshark,
# systemd-analyze for the units, Chromium to render the status page, and chromedriver for
# Selenium to drive Chromium through the console (tests/browser.py).
TEST_PACKAGES="$RUNTIME_PACKAGES curl tftp-hpa atftp golang-go golang-github-insomniacslk-dhcp-dev"
TEST_PACKAGES="$TEST_PACKAGES busybox isc-dhcp-client dhcpcd-base kea-admin dnsmasq-base"
# Kea's DHCPv4 server: the benchmark's rival on PostgreSQL (services/netboot_lab/kea.py), run
# with a configuration of its own; the packaged service Debian enables names no interface
# in /etc/kea/kea-dhcp4.conf, so it answers nobody.
TEST_PACKAGES="$TEST_PACKAGES kea-dhcp4-server"
TEST_PACKAGES="$TEST_PACKAGES tshark libnfs-utils systemd chromium chromium-driver"
# Disk images: readers others wrote, to check ours against (qemu-img, dmg2img, 7-Zip).
TEST_PACKAGES="$TEST_PACKAGES qemu-utils dmg2img 7zip"
# The QEMU lab: real BIOS (QEMU's iPXE ROMs) and UEFI (OVMF) firmware; Debian's signed
# shim and network GRUB, and sbsigntool to strip a kernel's signature (Secure Boot).
TEST_PACKAGES="$TEST_PACKAGES qemu-system-x86 ipxe-qemu ovmf shim-signed grub-efi-amd64-signed"
TEST_PACKAGES="$TEST_PACKAGES sbsigntool"
# ARM64 UEFI guests: qemu-system-aarch64 and AAVMF (both arch-independent or amd64 builds; the
# arm64 shim, GRUB, kernel and busybox are fetched for arm64 without dpkg --add-architecture).
TEST_PACKAGES="$TEST_PACKAGES qemu-system-arm qemu-efi-aarch64"
# The HFS+ tests' Linux-written volume (tests/hfs_linux.py) boots Debian's kernel in QEMU
# too; it fetches the kernel, busybox-static, attr and libc6 with apt-get download.
# Reliability: nftables drops a share of packets where the kernel has no netem.
TEST_PACKAGES="$TEST_PACKAGES nftables"
# Benchmarks: wrk reads root images as random ranges on keep-alive connections.
TEST_PACKAGES="$TEST_PACKAGES wrk"
# Leases in PostgreSQL: the tests and benchmarks initdb a private cluster with Debian's
# server binaries (services/netboot_lab/postgres.py); the daemon itself needs only psycopg.
TEST_PACKAGES="$TEST_PACKAGES postgresql"

install_packages() {
    missing=""
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
            missing="$missing $package"
        fi
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: these Debian packages are missing:$missing; run as root or install them" >&2
        exit 1
    fi
    echo "bootstrap: installing$missing" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

install_python() {
    extras="$1"
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --editable ".$extras"
}

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
serve)
    install_packages $RUNTIME_PACKAGES
    install_python ""
    .venv/bin/netboot fetch-signed-chain --if-missing --all >/dev/null ||
        echo "bootstrap: no signed shim and GRUB: Secure Boot PCs cannot boot (see above)" >&2
    .venv/bin/netboot build-http-grub --if-missing --all >/dev/null ||
        echo "bootstrap: no HTTP GRUB: arm64 PCs cannot UEFI HTTP boot (see above)" >&2
    if [ -z "$(find nbimages -mindepth 1 -maxdepth 2 -name '*.nbi' -print -quit)" ]; then
        .venv/bin/netboot images demo --root nbimages
    fi
    # A quick look as root; under systemd the daemon runs as its own user (docs/operations.md).
    exec .venv/bin/netboot serve --allow-root --root nbimages "$@"
    ;;
test)
    install_packages $TEST_PACKAGES
    install_python "[test]"
    # The arm64 lab boots through arm64's signed chain, which no amd64 package installs; the
    # lab's kernels and initrds (x86 and arm64) are fetched when a lab is first set up.
    .venv/bin/netboot fetch-signed-chain --if-missing --family efi-arm64 >/dev/null ||
        echo "bootstrap: no arm64 signed shim and GRUB: the arm64 lab tests will fail" >&2
    .venv/bin/netboot build-http-grub --if-missing --family efi-arm64 >/dev/null ||
        echo "bootstrap: no arm64 HTTP GRUB: the arm64 HTTP boot test will fail" >&2
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
    .venv/bin/mypy
    .venv/bin/lint-imports --no-cache
    exec .venv/bin/pytest "$@"
    ;;
*)
    echo "usage: $0 serve [SERVE-OPTIONS] | test [PYTEST-OPTIONS]" >&2
    exit 2
    ;;
esac
