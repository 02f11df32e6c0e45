"""Every machine the daemon has seen, keyed by MAC: its boot journeys and live transfers.

The status page's client table (`netboot_services.clients`) files clients by
address and keeps one record of stages; the admin console wants more: who
the machine is (a Mac's model, a PC's firmware family), each of its last few
boots as a timeline of steps, and how far its large transfers (a booter or
kernel over TFTP, a root image over HTTP) have got while they run. The
services report into one `MachineRegistry`; the API reads its `machines()`
and turns each `MachineChange` it returns into a `machine` event on the live
stream.

Pure: every time is passed in as `now`. Bounded: at most `limit` machines
(the least recently seen forgotten first), `journeys_kept` journeys each,
`MAX_STEPS` steps and `MAX_TRANSFERS` transfers per journey. Quiet: a step
already in the journey, or a transfer's progress within a second of the last
one reported for that machine, is recorded without a change, so a root image
read in thousands of ranges never storms the event stream.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

STAGES = (
    "dhcp offer",
    "proxy offer",
    "dhcp ack",
    "4011 ack",
    "bsdp offer",
    "bsdp list",
    "bsdp select",
    "tftp",
    "tftp done",
    "ipxe script",
    "grub config",
    "http",
)
"""The steps in boot order; a client's progress is the furthest one reached."""
SIDE_STEPS = ("nak", "inform ack", "dhcp release", "dhcp decline")
"""Steps recorded with a client (the status page lists them) that are no progress."""
NEW_BOOT = ("dhcp offer", "proxy offer", "bsdp offer", "bsdp list")
"""Steps that start a boot: seen after later steps, they begin a new record."""
STAGE_ORDER = {stage: place for place, stage in enumerate(STAGES)}

MAX_MACHINES = 500
JOURNEYS_KEPT = 5
MAX_STEPS = 64
"""Steps per journey; past it the oldest step goes (a journey is a handful in practice)."""
MAX_TRANSFERS = 32
"""Transfers per journey; past it the oldest goes."""
PROGRESS_INTERVAL = 1.0
"""Seconds between two progress changes of one machine's transfers."""

Kind = Literal["mac", "pc"]
Protocol = Literal["tftp", "http"]


@dataclass(frozen=True, slots=True)
class MachineChange:
    """Something the console shows about this machine changed (the API sends it as an event)."""

    mac: str


@dataclass(slots=True)
class Step:
    stage: str
    at: float
    detail: str
    bytes: int | None

    def as_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "at": self.at, "detail": self.detail, "bytes": self.bytes}


@dataclass(slots=True)
class Transfer:
    protocol: Protocol
    name: str
    bytes: int
    size: int | None
    done: bool
    started: float
    updated: float

    def as_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "name": self.name,
            "bytes": self.bytes,
            "size": self.size,
            "done": self.done,
            "started": self.started,
            "updated": self.updated,
        }


@dataclass(slots=True)
class Journey:
    """One boot: from its first step (an offer or a LIST) until the next boot begins."""

    started: float
    ended: float | None = None
    """When its last step or transfer happened; None while it is the machine's current one."""
    last_activity: float = 0.0
    steps: dict[tuple[str, str], Step] = field(default_factory=dict)
    """By (stage, detail): the same step seen again (a range of the same file) is no new step."""
    transfers: dict[tuple[str, str], Transfer] = field(default_factory=dict)
    """By (protocol, name)."""

    @property
    def progress(self) -> str:
        reached = {step.stage for step in self.steps.values()}
        furthest = [stage for stage in STAGES if stage in reached]
        return furthest[-1] if furthest else "-"

    def begins_anew(self, stage: str) -> bool:
        """Whether `stage` starts a new boot: a NEW_BOOT step after a step that follows it.

        Stricter than the status page's rule (any step past the first offers):
        a Mac whose Startup Disk pane asks for the list every few seconds, or
        the LIST after a fast-path OFFER, stays in one journey rather than
        pushing the real boots out of the few that are kept.
        """
        if stage not in NEW_BOOT:
            return False
        place = STAGE_ORDER[stage]
        return any(STAGE_ORDER.get(step.stage, -1) > place for step in self.steps.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "ended": self.ended,
            "steps": [step.as_json() for step in self.steps.values()],
            "transfers": [transfer.as_json() for transfer in self.transfers.values()],
        }


@dataclass(slots=True)
class Machine:
    mac: str
    first_seen: float
    last_seen: float
    address: str | None = None
    kind: Kind | None = None
    model: str | None = None
    architecture: str | None = None
    firmware: str | None = None
    server: str | None = None
    image: str | None = None
    journeys: list[Journey] = field(default_factory=list)
    """Oldest first; the last is the current one."""
    progress_reported: float | None = None
    """When a transfer's progress was last reported as a change (the throttle)."""

    def current(self, now: float) -> Journey:
        """The journey under way (the first one begins with whatever is seen first)."""
        if not self.journeys:
            self.journeys.append(Journey(now, last_activity=now))
        return self.journeys[-1]

    def begin_journey(self, now: float, journeys_kept: int) -> Journey:
        if self.journeys:
            previous = self.journeys[-1]
            previous.ended = previous.last_activity
        journey = Journey(now, last_activity=now)
        self.journeys.append(journey)
        del self.journeys[:-journeys_kept]
        return journey

    def as_json(self) -> dict[str, Any]:
        """The Machine object of the API, `assignment` and `lease` None (the API fills them)."""
        return {
            "mac": self.mac,
            "address": self.address,
            "kind": self.kind,
            "model": self.model,
            "architecture": self.architecture,
            "firmware": self.firmware,
            "server": self.server,
            "lease": None,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "progress": self.journeys[-1].progress if self.journeys else "-",
            "image": self.image,
            "assignment": None,
            "journeys": [journey.as_json() for journey in reversed(self.journeys)],
        }


class MachineRegistry:
    """Every machine seen, most recently seen last; see the module's docstring."""

    def __init__(self, limit: int = MAX_MACHINES, journeys_kept: int = JOURNEYS_KEPT) -> None:
        if limit < 1 or journeys_kept < 1:
            raise ValueError("a registry keeps at least one machine and one journey")
        self.limit = limit
        self.journeys_kept = journeys_kept
        self.listeners: list[Callable[[MachineChange], None]] = []
        """Called with every change a method returns (the API's event stream)."""
        self._machines: OrderedDict[str, Machine] = OrderedDict()

    def __len__(self) -> int:
        return len(self._machines)

    def observe(
        self,
        mac: str,
        now: float,
        *,
        address: str | None = None,
        stage: str | None = None,
        detail: str = "",
        bytes: int | None = None,
        image: str | None = None,
        kind: Kind | None = None,
        model: str | None = None,
        architecture: str | None = None,
        firmware: str | None = None,
        server: str | None = None,
    ) -> MachineChange | None:
        """Record what a service saw of `mac` (None facts: not known from this step).

        A change when the machine is new, a fact about it changed, or `stage`
        is a step its current journey does not have yet (a NEW_BOOT step after
        later ones starts a new journey). The same step again only updates
        `last_seen`: that is no change worth an event.
        """
        machine, changed = self._touch(mac, now)
        # Spelled out rather than looped over: HTTP reports every range response here.
        if address is not None and machine.address != address:
            machine.address, changed = address, True
        if kind is not None and machine.kind != kind:
            machine.kind, changed = kind, True
        if model is not None and machine.model != model:
            machine.model, changed = model, True
        if architecture is not None and machine.architecture != architecture:
            machine.architecture, changed = architecture, True
        if firmware is not None and machine.firmware != firmware:
            machine.firmware, changed = firmware, True
        if server is not None and machine.server != server:
            machine.server, changed = server, True
        if image is not None and machine.image != image:
            machine.image, changed = image, True
        if stage is not None:
            journey = machine.current(now)
            if journey.begins_anew(stage):
                journey = machine.begin_journey(now, self.journeys_kept)
                changed = True
            journey.last_activity = now
            key = (stage, detail)
            step = journey.steps.get(key)
            if step is None:
                journey.steps[key] = Step(stage, now, detail, bytes)
                if len(journey.steps) > MAX_STEPS:
                    del journey.steps[next(iter(journey.steps))]
                changed = True
            elif bytes is not None and step.bytes != bytes:
                step.bytes = bytes
                changed = True
        return self._changed(mac) if changed else None

    def transfer(
        self,
        mac: str,
        now: float,
        *,
        protocol: Protocol,
        name: str,
        bytes: int,
        size: int | None,
        done: bool,
    ) -> MachineChange | None:
        """Progress of a transfer to `mac` in its current journey.

        A change for a transfer's first update, when it becomes done, and
        otherwise at most once per `PROGRESS_INTERVAL` per machine. Fewer
        bytes than last time is the same file fetched again: it starts over.
        """
        machine = self._touch(mac, now)[0]
        journey = machine.current(now)
        journey.last_activity = now
        key = (protocol, name)
        current = journey.transfers.get(key)
        if current is None:
            journey.transfers[key] = Transfer(protocol, name, bytes, size, done, now, now)
            if len(journey.transfers) > MAX_TRANSFERS:
                del journey.transfers[next(iter(journey.transfers))]
            machine.progress_reported = now
            return self._changed(mac)
        if bytes < current.bytes:
            current.started = now
        finished = done and not current.done
        current.bytes, current.size, current.done, current.updated = bytes, size, done, now
        last = machine.progress_reported
        if finished or last is None or now - last >= PROGRESS_INTERVAL:
            machine.progress_reported = now
            return self._changed(mac)
        return None

    def machines(self) -> list[dict[str, Any]]:
        """Every machine as the API's Machine object, most recently seen first.

        `assignment` and `lease` are None here: the registry knows neither;
        the API fills them in from the assignments and the lease store.
        """
        return [machine.as_json() for machine in reversed(self._machines.values())]

    def machine(self, mac: str) -> dict[str, Any] | None:
        found = self._machines.get(mac.lower())
        return found.as_json() if found is not None else None

    def forget(self, mac: str) -> MachineChange | None:
        """Drop a machine and its journeys; None when it was not known."""
        if self._machines.pop(mac.lower(), None) is None:
            return None
        return self._changed(mac.lower())

    def _touch(self, mac: str, now: float) -> tuple[Machine, bool]:
        """The machine, made most recently seen (created if new; the oldest forgotten)."""
        mac = mac.lower()
        machine = self._machines.get(mac)
        if machine is not None:
            self._machines.move_to_end(mac)
            machine.last_seen = now
            return machine, False
        machine = self._machines[mac] = Machine(mac, now, now)
        while len(self._machines) > self.limit:
            self._machines.popitem(last=False)
        return machine, True

    def _changed(self, mac: str) -> MachineChange:
        change = MachineChange(mac.lower())
        for listener in self.listeners:
            listener(change)
        return change
