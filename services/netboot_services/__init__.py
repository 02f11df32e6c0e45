"""The Twisted services of netboot: thin adapters that own sockets, clocks and logs.

Every decision is made by the pure library in `netboot`; this package only moves
bytes and events between the network and it. It is installed under its own name
(`netboot_services`, from the `services/` source root) so it cannot collide with
a top-level `services` package of another distribution.
"""
