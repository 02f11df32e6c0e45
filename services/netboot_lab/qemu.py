"""Whether KVM really boots a lab guest here: the probe behind `--accel auto`.

/dev/kvm existing and QEMU starting with it is not enough. On some hosts
(nested virtualisation) SeaBIOS still prints its banner under KVM, but the
NIC's iPXE ROM, or OVMF, then hangs: the guest never sends a packet nor
prints a byte, and a boot would only time out. So the probe runs what a boot
runs, the guest's own firmware and NIC ROM (`netboot.lab.qemu.probe_command`),
and waits for the first frame of its network boot.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from netboot.lab.qemu import ARM64, OVMF_VARS, QEMU, KvmProbe, kvm_can_run, probe_command
from netboot_lab.process import read_bytes

PROBE_TIMEOUT = 10.0
"""Seconds the firmware gets to send its first frame under KVM. Under a working KVM it
takes about a second (BIOS) or three (UEFI); under TCG about 3 and 13 s."""
PCAP_HEADER = 24
"""A pcap file's global header: a file no longer than this holds no frame."""


def probe_kvm(firmware: str, timeout: float = PROBE_TIMEOUT) -> KvmProbe:
    """Run `firmware` with its NIC ROM under KVM until its first frame, or `timeout` s.

    A guest of another CPU architecture than the host's is not tried; nor, for now, an
    arm64 guest on an arm64 host (the probe boots x86 firmware): both run under TCG."""
    if not kvm_can_run(firmware, platform.machine()):
        return KvmProbe.FOREIGN
    if firmware == ARM64:
        return KvmProbe.UNAVAILABLE
    if not Path("/dev/kvm").exists() or shutil.which(QEMU) is None:
        return KvmProbe.UNAVAILABLE
    with tempfile.TemporaryDirectory(prefix="netboot-kvm-probe-") as scratch:
        pcap = Path(scratch) / "probe.pcap"
        uefi_vars = None
        if firmware == "uefi":
            uefi_vars = Path(scratch) / "OVMF_VARS.fd"
            shutil.copyfile(OVMF_VARS, uefi_vars)
        process = subprocess.Popen(
            probe_command(firmware, pcap, uefi_vars),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process.poll() is None:
                if len(read_bytes(pcap)) > PCAP_HEADER:
                    return KvmProbe.BOOTS
                time.sleep(0.1)
            return KvmProbe.SILENT
        finally:
            process.kill()
            process.wait()
