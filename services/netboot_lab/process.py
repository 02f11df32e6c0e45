"""Processes the lab starts, watches and stops: servers, guests, packet captures.

Everything here leads its own process group (`start_new_session`), so one
signal ends a process and whatever it forked, and Ctrl-C in the terminal
reaches only the lab, which then stops its children in order. A command may
run in a network namespace (`ip netns exec`); its output goes to a log file
that the callers read to learn when it is ready.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

CAPTURE_READY = "Capturing on"
"""What dumpcap prints once its capture runs; packets before it are not in the file."""


def in_namespace(namespace: str | None, command: Sequence[str]) -> list[str]:
    """`command` as run inside `namespace` (as is without one)."""
    return list(command) if namespace is None else ["ip", "netns", "exec", namespace, *command]


def spawn(
    command: Sequence[str], log: Path, namespace: str | None = None
) -> subprocess.Popen[bytes]:
    """Start `command` (in `namespace`) leading its own group, stdout and stderr to `log`."""
    with log.open("wb") as sink:
        return subprocess.Popen(
            in_namespace(namespace, command),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def read_bytes(path: Path) -> bytes:
    """The file's bytes so far; nothing when it is not there (yet)."""
    try:
        return path.read_bytes()
    except OSError:
        return b""


def read_text(path: Path) -> str:
    return read_bytes(path).decode("utf-8", "replace")


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until `pid` (not our child) has exited; True when it did within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def stop_process(process: subprocess.Popen[bytes], gently: bool = False) -> None:
    """End a process and its group; `gently`: SIGINT to the leader alone (dumpcap),
    which it answers by writing out what it holds and closing its file."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            if gently:
                os.kill(process.pid, signal.SIGINT)
            else:
                os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15 if gently else 5)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def capture_command(interface: str, pcap: str, capture_filter: str | None = None) -> list[str]:
    """dumpcap itself (tshark's capture engine): stopped by SIGINT it closes a complete
    file, with no tshark in between to be killed while its child still buffers."""
    command = ["dumpcap", "-q", "-i", interface, "-w", pcap]
    return command if capture_filter is None else [*command, "-f", capture_filter]


def start_capture(
    interface: str,
    pcap: Path,
    namespace: str | None = None,
    capture_filter: str | None = None,
    timeout: float = 10.0,
) -> subprocess.Popen[bytes] | None:
    """dumpcap on `interface`, returned once it captures; None (and an empty file) without it.

    Its log is `pcap` with the suffix `.log`; waiting for dumpcap's own "Capturing
    on" rather than a fixed sleep means the first packets of a boot are in the file.
    """
    if shutil.which("dumpcap") is None:
        pcap.write_bytes(b"")
        return None
    log = pcap.with_suffix(".log")
    process = spawn(capture_command(interface, str(pcap), capture_filter), log, namespace)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if CAPTURE_READY in read_text(log):
            break
        time.sleep(0.05)
    return process


def stop_capture(process: subprocess.Popen[bytes] | None, pcap: Path) -> None:
    """Stop dumpcap once it has caught up with the traffic, then let it close its file.

    On a loaded machine dumpcap lags behind the wire: packets wait in its
    socket, and a dumpcap told to stop discards them. So wait until the file
    has not grown for a second (at most ten), then SIGINT it alone.
    """
    if process is None:
        return
    last, steady_since, deadline = -1, time.monotonic(), time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None:
        size = pcap.stat().st_size if pcap.exists() else 0
        if size != last:
            last, steady_since = size, time.monotonic()
        elif time.monotonic() - steady_since >= 1.0:
            break
        time.sleep(0.1)
    stop_process(process, gently=True)


def pcap_fields(pcap: Path, *names: str, display_filter: str | None = None) -> list[list[str]]:
    """Wireshark's reading of a capture: one row per packet (matching `display_filter`),
    one string per field in `names` ("" where the packet has none; several values of one
    field joined by "|"). A capture cut short (a guest still sending when dumpcap
    stopped) gives the packets before the cut; one tshark cannot read at all raises
    CalledProcessError."""
    command = ["tshark", "-r", str(pcap), "-T", "fields", "-E", "aggregator=|"]
    if display_filter is not None:
        command += ["-Y", display_filter]
    for name in names:
        command += ["-e", name]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0 and not done.stdout:
        raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)
    return [
        [*line.split("\t"), *[""] * len(names)][: len(names)] for line in done.stdout.splitlines()
    ]
