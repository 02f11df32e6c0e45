"""Which image each client last selected from this server, and its machine name.

Apple's bootpd keeps this table (/var/db/bsdpd_clients) for four things: the
selected image it reports in the next ACK[LIST], the machine name it hands
out, the server priority, which falls as the table grows so that clients
spread over several servers, and the fast path: a bound Mac's plain DISCOVER
is answered with a BSDP OFFER of its image (docs/protocols/bsdp.md §1). A
client that selects another server is dropped.

Two spans of time, both counted from the last SELECT acknowledged here:
`ttl`, within which a binding counts as load on the priority, and `lifetime`,
within which it still serves the fast path. A Mac booting by the fast path
does not renew it (no disk write per DISCOVER); once the lifetime has passed
its DISCOVER gets silence, it runs LIST and SELECT once, and that SELECT
binds it anew.

With a `store` every SELECT is written through before it is acknowledged
and every drop deleted, and the table starts from what the store kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from netboot.macaddr import MacAddress

DEFAULT_LIFETIME = 90 * 86400.0
"""Ninety days: a lab Mac booted once a term still takes the fast path."""


@dataclass(frozen=True, slots=True)
class Binding:
    mac: MacAddress
    image_id: int
    host_number: int
    machine_name: str
    client_ip: str
    last_seen: float
    """When the SELECT was acknowledged (wall-clock seconds)."""


class BindingWriter(Protocol):
    """Where bindings are kept across restarts (`netboot.bsdp.binding_store`)."""

    def save(self, binding: Binding) -> None: ...
    def delete(self, mac: MacAddress) -> None: ...


class BindingTable:
    def __init__(
        self,
        machine_name_format: str = "NetBoot%03d",
        ttl: float = 3600.0,
        lifetime: float = DEFAULT_LIFETIME,
        store: BindingWriter | None = None,
        saved: Iterable[Binding] = (),
    ) -> None:
        self.machine_name_format = machine_name_format
        self.ttl = ttl
        self.lifetime = lifetime
        self.store = store
        saved = tuple(saved)
        self._bindings: dict[MacAddress, Binding] = {b.mac: b for b in saved}
        self._next_host_number = 1 + max((b.host_number for b in saved), default=0)

    def get(self, mac: MacAddress) -> Binding | None:
        return self._bindings.get(mac)

    def bound(self, mac: MacAddress, now: float) -> Binding | None:
        """The binding that may still answer this Mac's DISCOVER: within its lifetime."""
        binding = self._bindings.get(mac)
        if binding is None or now - binding.last_seen >= self.lifetime:
            return None
        return binding

    def bind(self, mac: MacAddress, image_id: int, client_ip: str, now: float) -> Binding:
        """Record a SELECT; a client keeps its host number and machine name."""
        previous = self._bindings.get(mac)
        if previous is not None:
            number = previous.host_number
        else:
            number = self._next_host_number
            self._next_host_number += 1
        binding = Binding(mac, image_id, number, self.machine_name_format % number, client_ip, now)
        if self.store is not None:
            self.store.save(binding)
        self._bindings[mac] = binding
        return binding

    def drop(self, mac: MacAddress) -> bool:
        dropped = self._bindings.pop(mac, None) is not None
        if dropped and self.store is not None:
            self.store.delete(mac)
        return dropped

    def active(self, now: float) -> int:
        """Bindings seen within the last `ttl` seconds: the load behind the priority."""
        return sum(1 for b in self._bindings.values() if now - b.last_seen < self.ttl)

    def __len__(self) -> int:
        return len(self._bindings)
