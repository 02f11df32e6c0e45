"""The DHCP floor that BSDP and PXE share: packets and their codec, option codes,
option 60's client families, and the outcome kinds every port-67 decision speaks.

It sits below both `netboot.bsdp` and `netboot.dhcp` (PXE and full DHCP), which
never import each other; `netboot.port67` above them combines the two.
"""
