"""The live stream behind `GET /api/events`: numbered events, kept a while, as SSE frames.

Server-sent events rather than a WebSocket: the stream only flows one way,
EventSource reconnects by itself and sends `Last-Event-ID`, and it is plain
HTTP that Twisted's web server streams without another protocol. The log
keeps the last `capacity` events so a console that lost its connection for a
moment gets what it missed instead of reloading; one that was away longer
gets a `resync` event and fetches the lists anew.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any

CAPACITY = 1000


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    name: str
    """`machine`, `assignment`, `images`, `hello`, `resync`."""
    data: str
    """The event's JSON, encoded once however many consoles are listening."""

    def frame(self) -> bytes:
        """The event as one SSE frame (the data is one line: JSON has no raw newlines)."""
        return f"id: {self.id}\nevent: {self.name}\ndata: {self.data}\n\n".encode()


KEEPALIVE = b": keepalive\n\n"
"""A comment frame: keeps proxies and idle timers from closing a quiet stream."""


class EventLog:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)
        self.last_id = 0

    def append(self, name: str, data: Any) -> Event:
        self.last_id += 1
        event = Event(self.last_id, name, json.dumps(data, separators=(",", ":")))
        self._events.append(event)
        return event

    def since(self, last_id: int) -> list[Event] | None:
        """The events after `last_id`, or None when some of them are no longer kept."""
        if last_id >= self.last_id:
            return []
        if not self._events or self._events[0].id > last_id + 1:
            return None
        return [event for event in self._events if event.id > last_id]


def parse_last_event_id(header: str | None) -> int | None:
    """`Last-Event-ID` as sent back by EventSource; None when absent or not ours."""
    if header is None or not header.strip().isdigit():
        return None
    return int(header.strip())
