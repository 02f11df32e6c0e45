"""Which image each client last selected from this server, and its machine name.

Apple's bootpd keeps this table (/var/db/bsdpd_clients) for three things: the
selected image it reports in the next ACK[LIST], the machine name it hands
out, and the server priority, which falls as the table grows so that clients
spread over several servers. A client that selects another server is dropped.
Bindings not refreshed within `ttl` seconds no longer count as load.
"""

from __future__ import annotations

from dataclasses import dataclass

from netboot.macaddr import MacAddress


@dataclass(frozen=True, slots=True)
class Binding:
    mac: MacAddress
    image_id: int
    host_number: int
    machine_name: str
    client_ip: str
    last_seen: float


class BindingTable:
    def __init__(self, machine_name_format: str = "NetBoot%03d", ttl: float = 3600.0) -> None:
        self.machine_name_format = machine_name_format
        self.ttl = ttl
        self._bindings: dict[MacAddress, Binding] = {}
        self._next_host_number = 1

    def get(self, mac: MacAddress) -> Binding | None:
        return self._bindings.get(mac)

    def bind(self, mac: MacAddress, image_id: int, client_ip: str, now: float) -> Binding:
        """Record a SELECT; a client keeps its host number and machine name."""
        previous = self._bindings.get(mac)
        if previous is not None:
            number = previous.host_number
        else:
            number = self._next_host_number
            self._next_host_number += 1
        binding = Binding(mac, image_id, number, self.machine_name_format % number, client_ip, now)
        self._bindings[mac] = binding
        return binding

    def drop(self, mac: MacAddress) -> bool:
        return self._bindings.pop(mac, None) is not None

    def active(self, now: float) -> int:
        """Bindings seen within the last `ttl` seconds: the load behind the priority."""
        return sum(1 for b in self._bindings.values() if now - b.last_seen < self.ttl)

    def __len__(self) -> int:
        return len(self._bindings)
