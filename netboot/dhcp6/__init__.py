"""The DHCPv6 decisions (RFC 8415) of issue #20: who is asking, which address, which answer.

Pure like `netboot.dhcp`, whose boot decision it reuses so a PXE, HTTP-boot or
iPXE client gets the same boot file in either family: messages come in as
`netboot.dhcp6wire` values with their arrival, the time is an argument, and
typed outcomes go out. The rules are docs/protocols/dhcpv6.md §9 to §12.
"""
