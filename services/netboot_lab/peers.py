"""The peers we are measured against and tested beside, started the same way everywhere.

dnsmasq is the peer of our DHCP and TFTP (benchmarks) and a site's DHCP server
beside our proxyDHCP (tests, the lab). Each use adds its own flags to
`DNSMASQ_ALONE`: dnsmasq in the foreground with no configuration file, no DNS
(port 0) and nothing read from the host's hosts or resolver files, so a run
depends on no file outside the one it names.
"""

from __future__ import annotations

DNSMASQ_ALONE = (
    "dnsmasq",
    "--keep-in-foreground",
    "--conf-file=/dev/null",
    "--port=0",
    "--no-hosts",
    "--no-resolv",
)
