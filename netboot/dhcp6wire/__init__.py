"""The DHCPv6 floor (RFC 8415): messages, relay wrappers and the option values
network boot reads and writes, as values with a pure wire codec.

It mirrors `netboot.dhcpwire` for IPv4 and, like it, knows nothing of sockets,
leases or decisions; the DHCPv6 service and its decision core sit above it.
The layouts it implements are in docs/protocols/dhcpv6.md.
"""
