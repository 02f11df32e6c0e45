"""The machines registry: journeys split and bounded, quiet repeats, throttled progress."""

from __future__ import annotations

import pytest

from netboot.admin.machines import (
    MAX_STEPS,
    MAX_TRANSFERS,
    MachineChange,
    MachineRegistry,
)

MAC = "52:54:00:12:34:56"
OTHER = "52:54:00:ab:cd:ef"


def steps(registry: MachineRegistry, mac: str = MAC, journey: int = 0) -> list[str]:
    machine = registry.machine(mac)
    assert machine is not None
    return [step["stage"] for step in machine["journeys"][journey]["steps"]]


def test_a_new_machine_is_a_change_with_its_facts() -> None:
    registry = MachineRegistry()
    change = registry.observe(
        MAC.upper(),
        10.0,
        address="10.0.0.5",
        stage="bsdp list",
        detail="LIST",
        kind="mac",
        model="iMac13,2",
        architecture="i386",
        server="boot1",
    )
    assert change == MachineChange(MAC)
    machine = registry.machine(MAC)
    assert machine == {
        "mac": MAC,
        "address": "10.0.0.5",
        "kind": "mac",
        "model": "iMac13,2",
        "architecture": "i386",
        "firmware": None,
        "server": "boot1",
        "lease": None,
        "first_seen": 10.0,
        "last_seen": 10.0,
        "progress": "bsdp list",
        "image": None,
        "assignment": None,
        "journeys": [
            {
                "started": 10.0,
                "ended": None,
                "steps": [{"stage": "bsdp list", "at": 10.0, "detail": "LIST", "bytes": None}],
                "transfers": [],
            }
        ],
    }


def test_the_same_step_again_only_moves_last_seen() -> None:
    registry = MachineRegistry()
    registry.observe(MAC, 1.0, stage="http", detail="HTTP /a.nbi/NetBoot.dmg")
    assert registry.observe(MAC, 2.0, stage="http", detail="HTTP /a.nbi/NetBoot.dmg") is None
    machine = registry.machine(MAC)
    assert machine is not None and machine["last_seen"] == 2.0
    assert [s["at"] for s in machine["journeys"][0]["steps"]] == [1.0]
    assert registry.observe(MAC, 3.0, stage="http", detail="HTTP /a.nbi/other") is not None


def test_a_changed_fact_is_a_change_an_unknown_one_is_not() -> None:
    registry = MachineRegistry()
    registry.observe(MAC, 1.0, address="10.0.0.5", kind="pc", firmware="bios")
    assert registry.observe(MAC, 2.0, address="10.0.0.5") is None
    assert registry.observe(MAC, 3.0, address=None, firmware=None) is None
    assert registry.observe(MAC, 4.0, firmware="ipxe") == MachineChange(MAC)
    machine = registry.machine(MAC)
    assert machine is not None
    assert (machine["address"], machine["firmware"], machine["kind"]) == ("10.0.0.5", "ipxe", "pc")


def test_a_new_boot_after_later_steps_starts_a_journey() -> None:
    registry = MachineRegistry()
    for at, stage in enumerate(("dhcp offer", "dhcp ack", "tftp", "tftp done")):
        registry.observe(MAC, float(at), stage=stage)
    assert registry.observe(MAC, 10.0, stage="dhcp offer") is not None
    machine = registry.machine(MAC)
    assert machine is not None
    assert len(machine["journeys"]) == 2
    current, previous = machine["journeys"]
    assert current == {
        "started": 10.0,
        "ended": None,
        "steps": [{"stage": "dhcp offer", "at": 10.0, "detail": "", "bytes": None}],
        "transfers": [],
    }
    assert previous["started"] == 0.0 and previous["ended"] == 3.0
    assert machine["progress"] == "dhcp offer"


def test_offers_before_any_later_step_stay_in_one_journey() -> None:
    """A Mac's LIST after its fast-path OFFER, or its LIST asked again and again while its
    Startup Disk pane is open, are one boot; a LIST after its SELECT is the next one."""
    registry = MachineRegistry()
    registry.observe(MAC, 0.0, stage="bsdp offer")
    registry.observe(MAC, 1.0, stage="bsdp list")
    registry.observe(MAC, 2.0, stage="bsdp list")
    assert steps(registry) == ["bsdp offer", "bsdp list"]
    registry.observe(MAC, 3.0, stage="bsdp select")
    registry.observe(MAC, 4.0, stage="bsdp list")
    assert steps(registry) == ["bsdp list"]
    assert steps(registry, journey=1) == ["bsdp offer", "bsdp list", "bsdp select"]
    registry.observe(MAC, 5.0, stage="bsdp offer")  # OFFER after LIST: a boot began again
    assert steps(registry) == ["bsdp offer"]


def test_journeys_kept_are_bounded_newest_first() -> None:
    registry = MachineRegistry(journeys_kept=3)
    for boot in range(5):
        registry.observe(MAC, boot * 10.0, stage="dhcp offer")
        registry.observe(MAC, boot * 10.0 + 1, stage="tftp")
    machine = registry.machine(MAC)
    assert machine is not None
    assert [journey["started"] for journey in machine["journeys"]] == [40.0, 30.0, 20.0]
    assert [journey["ended"] for journey in machine["journeys"]] == [None, 31.0, 21.0]
    assert machine["first_seen"] == 0.0


def test_progress_is_the_furthest_stage_in_boot_order() -> None:
    registry = MachineRegistry()
    registry.observe(MAC, 0.0, stage="http", detail="HTTP /x")
    registry.observe(MAC, 1.0, stage="tftp", detail="TFTP booter")
    registry.observe(MAC, 2.0, stage="dhcp release")
    machine = registry.machine(MAC)
    assert machine is not None and machine["progress"] == "http"
    registry.observe(OTHER, 0.0, address="10.0.0.9")
    other = registry.machine(OTHER)
    assert other is not None and other["progress"] == "-" and other["journeys"] == []


def test_steps_per_journey_are_bounded_oldest_gone() -> None:
    registry = MachineRegistry()
    registry.observe(MAC, 0.0, stage="dhcp offer")
    for n in range(MAX_STEPS + 5):
        registry.observe(MAC, 1.0 + n, stage="http", detail=f"HTTP /file{n}")
    details = [step for step in steps(registry)]
    assert len(details) == MAX_STEPS
    machine = registry.machine(MAC)
    assert machine is not None
    assert machine["journeys"][0]["steps"][-1]["detail"] == f"HTTP /file{MAX_STEPS + 4}"
    assert machine["journeys"][0]["steps"][0]["detail"] == "HTTP /file5"


def test_a_steps_bytes_are_recorded() -> None:
    registry = MachineRegistry()
    registry.observe(MAC, 0.0, stage="tftp done", detail="TFTP booter done", bytes=1000)
    machine = registry.machine(MAC)
    assert machine is not None
    assert machine["journeys"][0]["steps"][0]["bytes"] == 1000


def test_machines_are_newest_first_and_bounded_oldest_forgotten() -> None:
    registry = MachineRegistry(limit=3)
    macs = [f"52:54:00:00:00:0{n}" for n in range(5)]
    for at, mac in enumerate(macs):
        registry.observe(mac, float(at), stage="dhcp offer")
    assert len(registry) == 3
    assert [m["mac"] for m in registry.machines()] == macs[:1:-1]
    assert registry.machine(macs[0]) is None
    registry.observe(macs[2], 9.0, stage="dhcp ack")  # seen again: newest
    assert [m["mac"] for m in registry.machines()] == [macs[2], macs[4], macs[3]]
    registry.transfer(macs[3], 10.0, protocol="tftp", name="x", bytes=0, size=1, done=False)
    assert registry.machines()[0]["mac"] == macs[3]


def test_forget_drops_a_machine() -> None:
    registry = MachineRegistry()
    registry.observe(MAC, 0.0, stage="dhcp offer")
    assert registry.forget(MAC.upper()) == MachineChange(MAC)
    assert registry.forget(MAC) is None
    assert registry.machines() == []


def test_transfer_progress_is_throttled_per_machine() -> None:
    registry = MachineRegistry()
    registry.observe(MAC, 0.0, stage="http", detail="HTTP /a.nbi/NetBoot.dmg")

    def send(at: float, sent: int, done: bool = False, mac: str = MAC) -> MachineChange | None:
        return registry.transfer(
            mac, at, protocol="http", name="/a.nbi/NetBoot.dmg", bytes=sent, size=1000, done=done
        )

    assert send(0.0, 0) is not None  # the first update
    assert send(0.2, 100) is None
    assert send(0.9, 200) is None
    assert send(1.0, 300) is not None  # a second after the last one reported
    assert send(1.5, 400) is None
    assert send(1.6, 500, done=True) is not None  # done: at once
    assert send(1.7, 600, done=True) is None  # done again is no news
    assert send(1.8, 100) is None  # re-read from the start: within the second
    assert send(1.8, 0, mac=OTHER) is not None  # another machine has its own second
    machine = registry.machine(MAC)
    assert machine is not None
    (transfer,) = machine["journeys"][0]["transfers"]
    assert transfer == {
        "protocol": "http",
        "name": "/a.nbi/NetBoot.dmg",
        "bytes": 100,
        "size": 1000,
        "done": False,
        "started": 1.8,
        "updated": 1.8,
    }


def test_a_transfer_without_steps_begins_a_journey_and_a_new_boot_leaves_it() -> None:
    registry = MachineRegistry()
    registry.transfer(MAC, 5.0, protocol="tftp", name="booter", bytes=512, size=None, done=False)
    registry.observe(MAC, 6.0, stage="tftp done", detail="TFTP booter done", bytes=2048)
    registry.transfer(MAC, 6.0, protocol="tftp", name="booter", bytes=2048, size=2048, done=True)
    registry.observe(MAC, 9.0, stage="dhcp offer")
    machine = registry.machine(MAC)
    assert machine is not None
    current, previous = machine["journeys"]
    assert current["transfers"] == []
    assert previous["started"] == 5.0 and previous["ended"] == 6.0
    (transfer,) = previous["transfers"]
    assert (transfer["bytes"], transfer["size"], transfer["done"]) == (2048, 2048, True)
    assert (transfer["started"], transfer["updated"]) == (5.0, 6.0)


def test_transfers_per_journey_are_bounded() -> None:
    registry = MachineRegistry()
    for n in range(MAX_TRANSFERS + 2):
        registry.transfer(MAC, float(n), protocol="tftp", name=f"f{n}", bytes=1, size=1, done=True)
    machine = registry.machine(MAC)
    assert machine is not None
    names = [t["name"] for t in machine["journeys"][0]["transfers"]]
    assert names == [f"f{n}" for n in range(2, MAX_TRANSFERS + 2)]


def test_listeners_hear_every_change_and_nothing_else() -> None:
    registry = MachineRegistry()
    heard: list[MachineChange] = []
    registry.listeners.append(heard.append)
    registry.observe(MAC, 0.0, stage="dhcp offer")
    registry.observe(MAC, 0.5, stage="dhcp offer")
    registry.transfer(MAC, 1.0, protocol="tftp", name="f", bytes=0, size=9, done=False)
    registry.transfer(MAC, 1.1, protocol="tftp", name="f", bytes=5, size=9, done=False)
    registry.forget(MAC)
    assert heard == [MachineChange(MAC)] * 3


@pytest.mark.parametrize(("limit", "kept"), [(0, 5), (5, 0)])
def test_a_registry_keeps_something(limit: int, kept: int) -> None:
    with pytest.raises(ValueError, match="at least one"):
        MachineRegistry(limit=limit, journeys_kept=kept)
