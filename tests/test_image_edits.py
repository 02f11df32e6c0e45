"""Concurrent edits of one NBI set: threads, processes and `netboot nbi edit` at once.

Each writer adds MACs of its own to EnabledMACAddresses with a read-modify-write
(`update_set`); at the end every MAC of every writer must be there, the plist
must parse and validate, and the set must be served. Without the set's lock
the same detector sees lost updates (`test_without_the_lock_updates_are_lost`),
so the first test can fail.
"""

from __future__ import annotations

import multiprocessing
import plistlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import netboot.nbi.edit
from netboot.nbi.catalog import scan_catalog
from netboot.nbi.edit import PlistChanges, update_set
from netboot_lab.factories import make_set

EDITS_PER_WRITER = 25
THREADS = 4
PROCESSES = 2
CLI_WRITERS = 2
CLI_EDITS = 10


def writer_mac(writer: int, number: int) -> str:
    return f"02:00:00:00:{writer:02x}:{number:02x}"


def add_mac(mac: str, pause: float = 0.0) -> Callable[[dict[str, Any]], PlistChanges]:
    """A `decide` that appends `mac` to what it reads, after `pause` seconds.

    The pause widens the window between read and write, as a slow disk would."""

    def decide(current: dict[str, Any]) -> PlistChanges:
        time.sleep(pause)
        return {"EnabledMACAddresses": [*current.get("EnabledMACAddresses", []), mac]}

    return decide


def append_macs(set_dir: str, writer: int, count: int, pause: float) -> None:
    """One writer's loop; module-level so a spawned process can run it."""
    for number in range(count):
        update_set(Path(set_dir), add_mac(writer_mac(writer, number), pause))


def plist_of(set_dir: Path) -> dict[str, Any]:
    with (set_dir / "NBImageInfo.plist").open("rb") as handle:
        loaded = plistlib.load(handle)
    assert isinstance(loaded, dict)
    return loaded


def cli_loop(set_dir: Path, writer: int) -> subprocess.Popen[bytes]:
    """A shell running `python -m netboot nbi edit` CLI_EDITS times in a row;
    odd runs enable the set, even ones disable it, each names itself in Description."""
    script = (
        f"for n in $(seq 0 {CLI_EDITS - 1}); do "
        f"state=$([ $((n % 2)) = 1 ] && echo true || echo false); "
        f'"$0" -m netboot nbi edit "$1" "Description=cli-{writer} $n" IsEnabled=$state '
        "> /dev/null || exit 1; done"
    )
    return subprocess.Popen(["sh", "-c", script, sys.executable, str(set_dir)])


def test_threads_processes_and_the_cli_lose_no_update(tmp_path: Path) -> None:
    set_dir = make_set(tmp_path, "Shared", Index=7)
    spawn = multiprocessing.get_context("spawn")
    processes = [
        spawn.Process(target=append_macs, args=(str(set_dir), THREADS + p, EDITS_PER_WRITER, 0.001))
        for p in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    clis = [cli_loop(set_dir, writer) for writer in range(CLI_WRITERS)]
    threads = [
        threading.Thread(target=append_macs, args=(str(set_dir), t, EDITS_PER_WRITER, 0.001))
        for t in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    for cli in clis:
        assert cli.wait(timeout=120) == 0

    plist = plist_of(set_dir)
    expected = {
        writer_mac(w, n) for w in range(THREADS + PROCESSES) for n in range(EDITS_PER_WRITER)
    }
    assert set(plist["EnabledMACAddresses"]) == expected
    assert len(plist["EnabledMACAddresses"]) == len(expected)
    # The CLI writers' last edits: one of them wrote last; it was enabled (n odd).
    assert plist["Description"] in {f"cli-{w} {CLI_EDITS - 1}" for w in range(CLI_WRITERS)}
    assert plist["IsEnabled"] is True
    catalog = scan_catalog(tmp_path)
    (shared,) = catalog.sets
    assert shared.is_servable, shared.problems
    assert shared.problems == ()
    # No temporary file and no lock file is left in the set.
    assert sorted(p.name for p in set_dir.iterdir()) == ["NBImageInfo.plist", "NetBoot.dmg", "i386"]


@contextmanager
def no_lock(_set_dir: Path) -> Iterator[None]:
    yield


def test_without_the_lock_updates_are_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The detector above catches a missing lock: all writers read the same plist
    (they meet at a barrier between read and write), so all but one first MAC are lost."""
    monkeypatch.setattr(netboot.nbi.edit, "set_lock", no_lock)
    set_dir = make_set(tmp_path, "Shared", Index=7)
    all_read = threading.Barrier(THREADS, timeout=30)

    def writer(number: int) -> None:
        def decide(current: dict[str, Any]) -> PlistChanges:
            all_read.wait()
            return add_mac(writer_mac(number, 0))(current)

        update_set(set_dir, decide)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(plist_of(set_dir)["EnabledMACAddresses"]) < THREADS


def test_the_lock_serialises_threads_of_one_process(tmp_path: Path) -> None:
    """flock locks belong to the open file description: a second thread waits."""
    set_dir = make_set(tmp_path, "Shared", Index=7)
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def holder() -> None:
        with netboot.nbi.edit.set_lock(set_dir):
            order.append("first in")
            inside.set()
            release.wait(timeout=30)
            order.append("first out")

    def waiter() -> None:
        with netboot.nbi.edit.set_lock(set_dir):
            order.append("second in")

    first = threading.Thread(target=holder)
    first.start()
    assert inside.wait(timeout=30)
    second = threading.Thread(target=waiter)
    second.start()
    second.join(timeout=0.3)
    assert second.is_alive()  # blocked on the lock
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert order == ["first in", "first out", "second in"]
