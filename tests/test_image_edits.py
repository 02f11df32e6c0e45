"""Image edits through the admin API (`netboot.admin.image_edits`), and concurrent
edits of one NBI set: threads, processes and `netboot nbi edit` at once.

Each writer adds MACs of its own to EnabledMACAddresses with a read-modify-write
(`update_set`); at the end every MAC of every writer must be there, the plist
must parse and validate, and the set must be served. Without the set's lock
the same detector sees lost updates (`test_without_the_lock_updates_are_lost`),
so the first test can fail.
"""

from __future__ import annotations

import json
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
from netboot.admin.image_edits import (
    SAFE_KEYS,
    EditRefused,
    ImageEdit,
    RefusalReason,
    default_conflict,
    image_json,
    plan_image_edit,
)
from netboot.errors import ImageError
from netboot.nbi.catalog import scan_catalog
from netboot.nbi.edit import PlistChanges, edit_set, update_set
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


# -- plan_image_edit: every key ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "changes"),
    [
        ({"is_enabled": False}, {"IsEnabled": False}),
        ({"is_enabled": True}, {"IsEnabled": True}),
        ({"is_default": True}, {"IsDefault": True}),
        ({"name": "Lab tools"}, {"Name": "Lab tools"}),
        ({"description": "Disk tools\n\tand more"}, {"Description": "Disk tools\n\tand more"}),
        (
            {"enabled_system_identifiers": ["iMac18,3", "MacBookPro14,1"]},
            {"EnabledSystemIdentifiers": ["iMac18,3", "MacBookPro14,1"]},
        ),
        (
            {"disabled_system_identifiers": ["/NetBoot1"]},
            {"DisabledSystemIdentifiers": ["/NetBoot1"]},
        ),
        (
            {"enabled_mac_addresses": ["0:1B:63:a:b:c", "52:54:00:12:34:56"]},
            {"EnabledMACAddresses": ["00:1b:63:0a:0b:0c", "52:54:00:12:34:56"]},
        ),
        (
            {"disabled_mac_addresses": ["AA:BB:CC:DD:EE:FF"]},
            {"DisabledMACAddresses": ["aa:bb:cc:dd:ee:ff"]},
        ),
        ({"enabled_system_identifiers": []}, {"EnabledSystemIdentifiers": None}),
        ({"disabled_system_identifiers": []}, {"DisabledSystemIdentifiers": None}),
        ({"enabled_mac_addresses": []}, {"EnabledMACAddresses": None}),
        ({"disabled_mac_addresses": []}, {"DisabledMACAddresses": None}),
        (
            {"is_enabled": True, "name": "X", "disabled_mac_addresses": []},
            {"IsEnabled": True, "Name": "X", "DisabledMACAddresses": None},
        ),
    ],
)
def test_each_safe_key_becomes_its_plist_change(body: object, changes: dict[str, object]) -> None:
    edit = plan_image_edit(body)
    assert isinstance(edit, ImageEdit)
    assert edit.plist_changes() == changes


def test_the_safe_keys_are_the_api_contracts() -> None:
    assert set(SAFE_KEYS) == {
        "is_enabled", "is_default", "name", "description",
        "enabled_system_identifiers", "disabled_system_identifiers",
        "enabled_mac_addresses", "disabled_mac_addresses",
    }  # fmt: skip


# -- plan_image_edit: every refusal --------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason", "key", "problem"),
    [
        ([{"is_enabled": True}], RefusalReason.NOT_AN_OBJECT, None, "not a list"),
        (None, RefusalReason.NOT_AN_OBJECT, None, "not null"),
        ("is_enabled", RefusalReason.NOT_AN_OBJECT, None, "not a string"),
        ({}, RefusalReason.EMPTY, None, "nothing to change"),
        ({"colour": "red"}, RefusalReason.UNKNOWN_KEY, "colour", "unknown key; the keys are"),
        ({"Index": 9}, RefusalReason.UNSAFE_KEY, "Index", "cannot be changed through the API"),
        ({"index": 9}, RefusalReason.UNSAFE_KEY, "index", "cannot be changed"),
        ({"RootPath": "/x"}, RefusalReason.UNSAFE_KEY, "RootPath", "cannot be changed"),
        ({"root_path": "/x"}, RefusalReason.UNSAFE_KEY, "root_path", "cannot be changed"),
        ({"rootpath": "/x"}, RefusalReason.UNSAFE_KEY, "rootpath", "cannot be changed"),
        ({"BootFile": "b"}, RefusalReason.UNSAFE_KEY, "BootFile", "cannot be changed"),
        ({"boot_file": "b"}, RefusalReason.UNSAFE_KEY, "boot_file", "cannot be changed"),
        ({"Type": "NFS"}, RefusalReason.UNSAFE_KEY, "Type", "cannot be changed"),
        ({"type": "NFS"}, RefusalReason.UNSAFE_KEY, "type", "cannot be changed"),
        ({"PCKernel": "k"}, RefusalReason.UNSAFE_KEY, "PCKernel", "cannot be changed"),
        ({"id": 1}, RefusalReason.UNSAFE_KEY, "id", "cannot be changed"),
        ({"IsEnabled": True}, RefusalReason.UNSAFE_KEY, "IsEnabled", "cannot be changed"),
        ({"is_enabled": "true"}, RefusalReason.WRONG_TYPE, "is_enabled", "not a string"),
        ({"is_enabled": 1}, RefusalReason.WRONG_TYPE, "is_enabled", "not a number"),
        ({"is_default": None}, RefusalReason.WRONG_TYPE, "is_default", "not null"),
        ({"name": 5}, RefusalReason.WRONG_TYPE, "name", "must be a string, not a number"),
        ({"name": "two\nlines"}, RefusalReason.BAD_VALUE, "name", "character 3 ('\\n')"),
        ({"name": "nul\x00"}, RefusalReason.BAD_VALUE, "name", "control character"),
        ({"description": ["x"]}, RefusalReason.WRONG_TYPE, "description", "not a list"),
        ({"description": "half \ud800"}, RefusalReason.BAD_VALUE, "description", "surrogate"),
        ({"description": "bell\x07"}, RefusalReason.BAD_VALUE, "description", "control"),
        (
            {"enabled_system_identifiers": "iMac18,3"},
            RefusalReason.WRONG_TYPE,
            "enabled_system_identifiers",
            "must be a list of strings, not a string",
        ),
        (
            {"disabled_system_identifiers": ["iMac18,3", 7]},
            RefusalReason.WRONG_TYPE,
            "disabled_system_identifiers",
            "item 1 must be a string, not a number",
        ),
        (
            {"enabled_system_identifiers": ["iMac 18,3"]},
            RefusalReason.BAD_VALUE,
            "enabled_system_identifiers",
            "item 0: 'iMac 18,3' is not a model identifier",
        ),
        (
            {"enabled_system_identifiers": [""]},
            RefusalReason.BAD_VALUE,
            "enabled_system_identifiers",
            "item 0: '' is not a model identifier",
        ),
        (
            {"disabled_system_identifiers": ["iMac18,3", "iMac18,3"]},
            RefusalReason.BAD_VALUE,
            "disabled_system_identifiers",
            "item 1 ('iMac18,3') repeats item 0",
        ),
        (
            {"enabled_mac_addresses": ["52:54:00:12:34:56", "zz"]},
            RefusalReason.BAD_VALUE,
            "enabled_mac_addresses",
            "item 1: 'zz' is not a MAC address",
        ),
        (
            {"disabled_mac_addresses": ["52:54:00:12:34"]},
            RefusalReason.BAD_VALUE,
            "disabled_mac_addresses",
            "is not a MAC address",
        ),
        (
            {"enabled_mac_addresses": ["0:1b:63:a:b:c", "00:1B:63:0A:0B:0C"]},
            RefusalReason.BAD_VALUE,
            "enabled_mac_addresses",
            "item 1 ('00:1B:63:0A:0B:0C') repeats item 0 ('0:1b:63:a:b:c')",
        ),
        (
            {"disabled_mac_addresses": {"a": 1}},
            RefusalReason.WRONG_TYPE,
            "disabled_mac_addresses",
            "not an object",
        ),
        # The first bad key is named, whatever good keys come with it.
        ({"is_enabled": True, "Index": 3}, RefusalReason.UNSAFE_KEY, "Index", "cannot"),
    ],
)
def test_a_bad_body_is_refused_naming_the_key(
    body: object, reason: RefusalReason, key: str | None, problem: str
) -> None:
    refused = plan_image_edit(body)
    assert isinstance(refused, EditRefused)
    assert (refused.reason, refused.key) == (reason, key)
    assert problem in refused.problem
    assert refused.message == (f"{key}: {refused.problem}" if key else refused.problem)


# -- through edit_set: what the plist and the catalog then say -----------------------


def edit_of(body: object) -> ImageEdit:
    edit = plan_image_edit(body)
    assert isinstance(edit, ImageEdit), edit
    return edit


def test_an_edit_is_applied_by_edit_set_and_seen_by_the_catalog(tmp_path: Path) -> None:
    set_dir = make_set(tmp_path, "Alpha", Index=3, EnabledMACAddresses=["52:54:00:00:00:01"])
    edit = edit_of(
        {
            "is_enabled": False,
            "name": "Renamed",
            "description": "for the lab",
            "enabled_system_identifiers": ["iMac13,2"],
            "disabled_mac_addresses": ["52:54:00:00:00:02"],
            "enabled_mac_addresses": [],
        }
    )
    warnings = edit_set(set_dir, edit.plist_changes())
    assert [w.key for w in warnings] == ["IsEnabled"]  # "not offered to clients"
    plist = plist_of(set_dir)
    assert "EnabledMACAddresses" not in plist
    assert plist["Index"] == 3  # untouched keys stay
    (alpha,) = scan_catalog(tmp_path).sets
    image = image_json(alpha, str(tmp_path))
    assert image["name"] == "Renamed"
    assert image["description"] == "for the lab"
    assert image["is_enabled"] is False
    assert image["servable"] is False
    assert image["valid"] is True
    assert image["enabled_system_identifiers"] == ["iMac13,2"]
    assert image["disabled_system_identifiers"] == []
    assert image["enabled_mac_addresses"] == []
    assert image["disabled_mac_addresses"] == ["52:54:00:00:00:02"]


def test_an_edit_the_set_cannot_take_is_refused_by_edit_set_and_not_written(
    tmp_path: Path,
) -> None:
    set_dir = make_set(tmp_path, "Alpha", Index=3)
    before = (set_dir / "NBImageInfo.plist").read_bytes()
    with pytest.raises(ImageError, match="Name: must not be empty"):
        edit_set(set_dir, edit_of({"name": " "}).plist_changes())
    assert (set_dir / "NBImageInfo.plist").read_bytes() == before


def test_image_json_is_the_summary_plus_the_lists_and_servable(tmp_path: Path) -> None:
    make_set(
        tmp_path,
        "Alpha",
        Index=3,
        EnabledSystemIdentifiers=["iMac13,2"],
        DisabledSystemIdentifiers=["iMac14,1"],
        EnabledMACAddresses=["0:1b:63:a:b:c"],
        DisabledMACAddresses=["52:54:00:00:00:09"],
    )
    make_set(tmp_path, "Broken", plist=b"not a plist")
    alpha, broken = scan_catalog(tmp_path).sets
    image = image_json(alpha, "/srv/nb")
    summary = alpha.summary("/srv/nb")
    assert {k: v for k, v in image.items() if k in summary} == summary
    assert set(image) - set(summary) == {
        "servable", "enabled_system_identifiers", "disabled_system_identifiers",
        "enabled_mac_addresses", "disabled_mac_addresses",
    }  # fmt: skip
    assert image["servable"] is True
    assert image["enabled_system_identifiers"] == ["iMac13,2"]
    assert image["disabled_system_identifiers"] == ["iMac14,1"]
    assert image["enabled_mac_addresses"] == ["00:1b:63:0a:0b:0c"]
    assert image["disabled_mac_addresses"] == ["52:54:00:00:00:09"]
    assert json.loads(json.dumps(image)) == image
    broken_image = image_json(broken)
    assert broken_image["servable"] is False
    assert broken_image["valid"] is False
    assert broken_image["enabled_mac_addresses"] == []


# -- the default image ---------------------------------------------------------------


def test_a_second_enabled_default_is_refused_naming_the_first(tmp_path: Path) -> None:
    make_set(tmp_path, "Alpha", Index=1, IsDefault=True)
    make_set(tmp_path, "Beta", Index=2)
    catalog = scan_catalog(tmp_path)
    beta = catalog.by_path("Beta.nbi")
    assert beta is not None
    refused = default_conflict(catalog, beta, edit_of({"is_default": True}))
    assert refused == EditRefused(
        RefusalReason.CONFLICT,
        "is_default",
        "the default image is already Alpha.nbi; only one enabled set may be the default "
        "(set is_default to false there first)",
    )


def test_a_default_taken_by_a_set_earlier_in_scan_order_is_refused_too(tmp_path: Path) -> None:
    """Aardvark would win the claim and Zulu, the default now, would stop being served."""
    make_set(tmp_path, "Aardvark", Index=1)
    make_set(tmp_path, "Zulu", Index=2, IsDefault=True)
    catalog = scan_catalog(tmp_path)
    aardvark = catalog.by_path("Aardvark.nbi")
    assert aardvark is not None
    refused = default_conflict(catalog, aardvark, edit_of({"is_default": True}))
    assert refused is not None
    assert (refused.reason, refused.key) == (RefusalReason.CONFLICT, "is_default")
    assert "Zulu.nbi" in refused.problem


def test_enabling_a_disabled_default_is_a_conflict_of_is_enabled(tmp_path: Path) -> None:
    make_set(tmp_path, "Alpha", Index=1, IsDefault=True)
    make_set(tmp_path, "Beta", Index=2, IsDefault=True, IsEnabled=False)
    catalog = scan_catalog(tmp_path)
    assert catalog.problems == tuple(p for p in catalog.problems if p.key == "IsEnabled")
    beta = catalog.by_path("Beta.nbi")
    assert beta is not None
    refused = default_conflict(catalog, beta, edit_of({"is_enabled": True}))
    assert refused is not None
    assert (refused.reason, refused.key) == (RefusalReason.CONFLICT, "is_enabled")
    assert (
        default_conflict(catalog, beta, edit_of({"is_enabled": True, "is_default": False})) is None
    )


@pytest.mark.parametrize(
    "body",
    [
        {"is_default": True},  # already the default
        {"is_default": False},
        {"name": "Other"},
    ],
)
def test_edits_of_the_default_itself_never_conflict(tmp_path: Path, body: object) -> None:
    make_set(tmp_path, "Alpha", Index=1, IsDefault=True)
    make_set(tmp_path, "Beta", Index=2)
    catalog = scan_catalog(tmp_path)
    alpha = catalog.by_path("Alpha.nbi")
    assert alpha is not None
    assert default_conflict(catalog, alpha, edit_of(body)) is None


def test_a_default_that_stays_disabled_or_is_alone_does_not_conflict(tmp_path: Path) -> None:
    make_set(tmp_path, "Alpha", Index=1, IsDefault=True)
    beta_dir = make_set(tmp_path, "Beta", Index=2)
    catalog = scan_catalog(tmp_path)
    beta = catalog.by_path("Beta.nbi")
    assert beta is not None
    assert (
        default_conflict(catalog, beta, edit_of({"is_default": True, "is_enabled": False})) is None
    )
    # Once Alpha is no longer the default, Beta may become it; the catalog agrees.
    edit_set(tmp_path / "Alpha.nbi", edit_of({"is_default": False}).plist_changes())
    catalog = scan_catalog(tmp_path)
    beta = catalog.by_path("Beta.nbi")
    assert beta is not None
    edit = edit_of({"is_default": True})
    assert default_conflict(catalog, beta, edit) is None
    edit_set(beta_dir, edit.plist_changes())
    catalog = scan_catalog(tmp_path)
    assert catalog.problems == ()
    assert [s.path.name for s in catalog.sets if s.info and s.info.is_default] == ["Beta.nbi"]
