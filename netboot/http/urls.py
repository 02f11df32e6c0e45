"""The one way we write the base of an HTTP URL that points at this server.

BSDP root paths, the UEFI HTTP-boot and iPXE-script URLs in DHCP answers, and
the file URLs inside iPXE scripts all start with it, so they agree on the
host and on whether the port is written (never for 80, which EFI booters and
old Macs take as implied).
"""

from __future__ import annotations


def http_base(host: str, port: int) -> str:
    """`http://host` or `http://host:port`; `host` is an IP literal or a name."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}" if port == 80 else f"http://{shown}:{port}"
