"""Which clients an NBI set admits by MAC address, for BSDP and PXE alike.

One rule for both protocols, so a Mac and a PC are filtered the same way by
the same plist keys: Apple's bootpd checks `DisabledMACAddresses` first, then,
when `EnabledMACAddresses` is not empty, admits only the MACs it lists.
"""

from __future__ import annotations

from netboot.macaddr import MacAddress
from netboot.nbi.model import NBImageInfo


def mac_allowed(info: NBImageInfo, mac: MacAddress) -> bool:
    """True when the set's MAC lists let `mac` (canonical form) boot it."""
    if mac in info.disabled_mac_addresses:
        return False
    return not info.enabled_mac_addresses or mac in info.enabled_mac_addresses
