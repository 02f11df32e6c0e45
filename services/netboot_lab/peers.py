"""The peers we are measured against and tested beside, started the same way everywhere.

dnsmasq is the peer of our DHCP and TFTP (benchmarks) and a site's DHCP server
beside our proxyDHCP (tests, the lab). Each use adds its own flags to
`DNSMASQ_ALONE`: dnsmasq in the foreground with no configuration file, no DNS
(port 0) and nothing read from the host's hosts or resolver files, so a run
depends on no file outside the one it names.
"""

from __future__ import annotations

from pathlib import Path

DNSMASQ_ALONE = (
    "dnsmasq",
    "--keep-in-foreground",
    "--conf-file=/dev/null",
    "--port=0",
    "--no-hosts",
    "--no-resolv",
)

DNSMASQ_READY = "DHCP, sockets bound exclusively"
"""What dnsmasq logs once its DHCP socket is bound (with `--bind-interfaces`)."""


def site_dnsmasq(
    interface: str, first: str, last: str, state: Path, next_server: str | None = None
) -> list[str]:
    """dnsmasq as a site's DHCP server on `interface`: addresses `first`-`last`, and no boot file.

    With `next_server` its answers also name that host as next-server (siaddr,
    `--dhcp-boot=,,ADDRESS`), the one setting a site's DHCP server must carry
    for Debian's signed GRUB beside our proxyDHCP: GRUB reads its server from
    the site's ACK only (docs/protocols/pxe.md §8.3). Without it dnsmasq puts its
    own address there. Its lease and pid files go to `state`. --no-ping:
    dnsmasq otherwise pings a fresh address before offering it and lets the
    client's first DISCOVER go unanswered while it waits.
    """
    command = [
        *DNSMASQ_ALONE,
        f"--interface={interface}",
        "--bind-interfaces",
        f"--dhcp-range={first},{last},1h",
        f"--dhcp-leasefile={state / 'site-dnsmasq.leases'}",
        f"--pid-file={state / 'site-dnsmasq.pid'}",
        "--log-dhcp",
        "--log-facility=-",
        "--no-ping",
        "--user=root",
        "--group=root",
    ]
    if next_server is not None:
        command.append(f"--dhcp-boot=,,{next_server}")
    return command


DNSMASQ6_READY = "DHCP, sockets bound exclusively"
"""The same line: with `--bind-interfaces` dnsmasq logs it once its DHCPv6 socket is bound."""


def dnsmasq6(
    interface: str,
    first: str,
    last: str,
    state: Path,
    *,
    lease_time: int = 3600,
    dns_servers: tuple[str, ...] = (),
    domain_search: tuple[str, ...] = (),
    log_each: bool = True,
    ipxe_boot_url: str | None = None,
) -> list[str]:
    """dnsmasq as a stateful DHCPv6 server on `interface`: addresses `first`-`last` (/64).

    The DHCPv6 peer of our `[dhcp6] mode = "full"`: the benchmark's rival and,
    while developing, an instrument to check the lab's clients against. It
    needs an address of the range's /64 on `interface`. No router
    advertisements (--enable-ra is not given); DNS servers and the domain
    search list, when given, as options 23 and 24. `log_each`: `--log-dhcp`,
    every option of every message (off in the benchmark, like ours at info
    level it still logs one line per message). Lease and pid files go to `state`.
    `ipxe_boot_url`: option 59 for clients of user class `iPXE` only, what a site's
    server beside our proxy mode must hand iPXE itself (iPXE takes its options from
    the one server it binds with; docs/protocols/dhcpv6.md §17).
    """
    command = [
        *DNSMASQ_ALONE,
        f"--interface={interface}",
        "--bind-interfaces",
        f"--dhcp-range={first},{last},64,{lease_time}",
        f"--dhcp-leasefile={state / 'dnsmasq6.leases'}",
        f"--pid-file={state / 'dnsmasq6.pid'}",
        "--log-facility=-",
        "--user=root",
        "--group=root",
    ]
    if log_each:
        command.append("--log-dhcp")
    if dns_servers:
        command.append(
            "--dhcp-option=option6:dns-server," + ",".join(f"[{a}]" for a in dns_servers)
        )
    if domain_search:
        command.append("--dhcp-option=option6:domain-search," + ",".join(domain_search))
    if ipxe_boot_url is not None:
        command += [
            "--dhcp-userclass=set:ipxe,iPXE",
            f"--dhcp-option=tag:ipxe,option6:bootfile-url,{ipxe_boot_url}",
        ]
    return command
