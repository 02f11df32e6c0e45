"""Option 60, the vendor class: which family of client is asking, by its first bytes.

The recognition sits on the DHCP floor, below both `netboot.bsdp` and the PXE
decisions of `netboot.dhcp`, because both need it: the PXE classifier must
leave a Mac's `AAPLBSDPC` to BSDP, and BSDP must claim it. Parsing the rest
of a BSDP class (architecture and model) is BSDP's own business
(`netboot.bsdp.vendor_class`).
"""

from __future__ import annotations

BSDP_PREFIX = b"AAPLBSDPC"
PXE_PREFIX = b"PXEClient"
HTTP_BOOT_PREFIX = b"HTTPClient"


def is_bsdp(vendor_class: bytes | None) -> bool:
    return vendor_class is not None and vendor_class.startswith(BSDP_PREFIX)
