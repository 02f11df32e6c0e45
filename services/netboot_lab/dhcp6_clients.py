"""Real DHCPv6 clients in a namespace, and what each of them got.

ISC `dhclient -6` and dhcpcd are the clients people run; each is started one
shot with files of its own under a work directory (never the host's lease
files, pid files or DUID), and what it was given is read back from what it
wrote: dhclient's lease file, dhcpcd's hook environment. The result is a
`Lease6` either way, so a test compares servers, not file formats.

* dhclient -6 runs with `-1` (try once) and `-D LL` (a DUID-LL, so the server
  can learn the MAC from it); once bound it forks into the background and
  exits 0. Its lease file keeps the DUID (`default-duid`), so a second run
  with the same file is the same client. `release_dhclient6` (`-r`) sends a
  Release for the lease in the file and stops the background client;
  `stop_dhclient6` (`-x`) stops it without one.
* dhcpcd writes its DUID and leases under /var/lib/dhcpcd and its sockets
  under /run/dhcpcd; it runs in a mount namespace of its own where both are
  the work directory's, so nothing of the host's is read or written. With
  `noipv6rs` and `ia_na` it solicits at once, with no router advertisement.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path

from netboot.dhcp6wire.duid import Duid, build_duid
from netboot.dhcp6wire.ia import IaAddress, IaNa, build_ia_na, parse_ia_na, parse_status_code
from netboot.dhcp6wire.options import HARDWARE_TYPE_ETHERNET, DuidType, MessageType, Option
from netboot.dhcp6wire.packet import Dhcp6Message, RawOption, build_message, parse_message
from netboot.dhcp6wire.values import build_elapsed_time, build_oro
from netboot.errors import MalformedPacket
from netboot_lab.ipv6 import ClientSocket
from netboot_lab.netns import LabError, run_in

CLIENT_TIMEOUT = 30.0
"""Seconds one client run may take; each gets its answer in milliseconds from a live server."""
ANSWER_WAIT = 3.0
"""Seconds the hand-built client waits for an answer before calling it missing."""


@dataclass(frozen=True)
class Lease6:
    """One IA_NA address a client was given, with what came beside it."""

    address: IPv6Address
    preferred_lifetime: int
    valid_lifetime: int
    iaid: bytes
    client_duid: bytes
    server_duid: bytes
    dns_servers: tuple[IPv6Address, ...]
    domain_search: tuple[str, ...]


def _run(namespace: str, command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """`run_in`, with a client that hangs reported as a LabError naming it."""
    try:
        return run_in(namespace, *command, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        message = f"{command[0]} did not finish within {timeout} s: {error.stderr!r}"
        raise LabError(message) from None


# -- ISC dhclient -6 ------------------------------------------------------------------


@dataclass(frozen=True)
class Dhclient6:
    """One dhclient -6 client: its files, so later runs are the same client."""

    namespace: str
    interface: str
    work: Path

    @property
    def leases(self) -> Path:
        return self.work / "dhclient6.leases"

    def command(self, *action: str) -> list[str]:
        config = self.work / "dhclient6.conf"
        if not config.exists():
            # Our own configuration, so the host's is never read.
            config.write_text(
                "timeout 20;\nretry 60;\nrequest dhcp6.name-servers, dhcp6.domain-search;\n"
            )
        return [
            "dhclient", "-6", *action, "-v", "-D", "LL",
            "-cf", str(config),
            "-sf", "/bin/true",  # never configure the interface
            "-lf", str(self.leases),
            "-pf", str(self.work / "dhclient6.pid"),
            self.interface,
        ]  # fmt: skip

    def lease(self) -> Lease6:
        """Solicit, Request, and return the bound lease; dhclient stays in the background."""
        done = _run(self.namespace, self.command("-1"), CLIENT_TIMEOUT)
        if done.returncode != 0:
            raise LabError(f"dhclient -6 got no lease ({done.returncode}):\n{done.stderr}")
        lease = parse_dhclient6_leases(self.leases.read_text())
        if lease is None:
            raise LabError(f"dhclient -6 bound but wrote no lease6:\n{self.leases.read_text()}")
        return lease

    def release(self) -> str:
        """Release the lease in the file (`-r`), stopping the background client; its log."""
        done = _run(self.namespace, self.command("-r"), CLIENT_TIMEOUT)
        if done.returncode != 0:
            raise LabError(f"dhclient -6 -r failed ({done.returncode}):\n{done.stderr}")
        return done.stderr

    def stop(self) -> None:
        """Stop the background client without a Release (`-x`); never raises."""
        _run(self.namespace, self.command("-x"), CLIENT_TIMEOUT)


def _dhclient_string(text: str) -> bytes:
    """A dhclient lease-file string ("\\000\\003...") as bytes."""
    return text.encode("latin-1").decode("unicode_escape").encode("latin-1")


def _colon_hex(text: str) -> bytes:
    """dhclient's "0:3:0:1:96:d3" byte lists."""
    return bytes(int(part, 16) for part in text.split(":"))


def parse_dhclient6_leases(text: str) -> Lease6 | None:
    """The last `lease6` block of a dhclient -6 lease file that holds an address."""
    found = None
    for block in re.findall(r"^lease6 \{\n(.*?)^\}", text, re.M | re.S):
        address = re.search(
            r"iaaddr (\S+) \{.*?preferred-life (\d+);.*?max-life (\d+);", block, re.S
        )
        iaid = re.search(r"ia-na (\S+) \{", block)
        client = re.search(r"option dhcp6\.client-id (\S+);", block)
        server = re.search(r"option dhcp6\.server-id (\S+);", block)
        if not (address and iaid and client and server):
            continue
        dns = re.search(r"option dhcp6\.name-servers ([^;]+);", block)
        search = re.search(r"option dhcp6\.domain-search ([^;]+);", block)
        found = Lease6(
            address=IPv6Address(address.group(1)),
            preferred_lifetime=int(address.group(2)),
            valid_lifetime=int(address.group(3)),
            iaid=_colon_hex(iaid.group(1)),
            client_duid=_colon_hex(client.group(1)),
            server_duid=_colon_hex(server.group(1)),
            dns_servers=tuple(IPv6Address(a.strip()) for a in dns.group(1).split(","))
            if dns
            else (),
            domain_search=tuple(
                name.strip().strip('"').rstrip(".") for name in search.group(1).split(",")
            )
            if search
            else (),
        )
    return found


def default_duid(leases: Path) -> bytes | None:
    """The DUID dhclient keeps at the top of its lease file (`default-duid "..."`)."""
    found = re.search(r'^default-duid "((?:[^"\\]|\\.)*)";', leases.read_text(), re.M)
    return _dhclient_string(found.group(1)) if found else None


# -- dhcpcd ---------------------------------------------------------------------------

DHCPCD_CONFIG = """\
# One shot DHCPv6 for an address: no router solicitation first (the lab sends
# no RA unless the test asks), one IA_NA, a DUID-LL so the server sees the MAC.
noipv6rs
ia_na 1
duid ll
option domain_name_servers, domain_search
nohook resolv.conf
"""

DHCPCD_HOOK = """\
#!/bin/sh
# dhcpcd calls this with the reason and the lease in its environment.
env | grep -E '^(reason|interface|new_dhcp6_)' > "{work}/dhcpcd-hook.$reason"
"""


@dataclass(frozen=True)
class Dhcpcd6:
    """One dhcpcd client, its state in `work` (mounted over /var/lib/dhcpcd)."""

    namespace: str
    interface: str
    work: Path

    def lease(self) -> Lease6:
        """`dhcpcd -6 -1 -B` to BOUND6; the lease from its hook's environment."""
        state, run = self.work / "dhcpcd-db", self.work / "dhcpcd-run"
        state.mkdir(exist_ok=True)
        run.mkdir(exist_ok=True)
        config, hook = self.work / "dhcpcd.conf", self.work / "dhcpcd-hook"
        config.write_text(DHCPCD_CONFIG)
        hook.write_text(DHCPCD_HOOK.format(work=self.work))
        hook.chmod(0o755)
        bound = self.work / "dhcpcd-hook.BOUND6"
        bound.unlink(missing_ok=True)
        dhcpcd = (
            f"dhcpcd -6 -1 -B -t {int(CLIENT_TIMEOUT) - 5} -f {shlex.quote(str(config))}"
            f" -c {shlex.quote(str(hook))} {shlex.quote(self.interface)}"
        )
        script = (
            "mkdir -p /var/lib/dhcpcd /run/dhcpcd"
            f" && mount --bind {shlex.quote(str(state))} /var/lib/dhcpcd"
            f" && mount --bind {shlex.quote(str(run))} /run/dhcpcd && exec {dhcpcd}"
        )
        done = _run(self.namespace, ["unshare", "-m", "sh", "-c", script], CLIENT_TIMEOUT)
        if done.returncode != 0 or not bound.exists():
            raise LabError(f"dhcpcd got no lease ({done.returncode}):\n{done.stderr}")
        return parse_dhcpcd_environment(bound.read_text())


def parse_dhcpcd_environment(text: str) -> Lease6:
    """The first address of the first IA_NA in a dhcpcd hook's `new_dhcp6_*` variables."""
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    try:
        return Lease6(
            address=IPv6Address(values["new_dhcp6_ia_na1_ia_addr1"]),
            preferred_lifetime=int(values["new_dhcp6_ia_na1_ia_addr1_pltime"]),
            valid_lifetime=int(values["new_dhcp6_ia_na1_ia_addr1_vltime"]),
            iaid=bytes.fromhex(values["new_dhcp6_ia_na1_iaid"]),
            client_duid=bytes.fromhex(values["new_dhcp6_client_id"]),
            server_duid=bytes.fromhex(values["new_dhcp6_server_id"]),
            dns_servers=tuple(
                IPv6Address(a) for a in values.get("new_dhcp6_name_servers", "").split()
            ),
            domain_search=tuple(values.get("new_dhcp6_domain_search", "").split()),
        )
    except (KeyError, ValueError) as error:
        raise LabError(f"dhcpcd's BOUND6 lacks {error}:\n{text}") from None


# -- a hand-built client --------------------------------------------------------------


@dataclass
class HandClient6:
    """A DHCPv6 client of our own codec, for what no real client sends on demand.

    A Decline (dhclient sends one only when DAD fails), a relay's Relay-forward,
    an Information-request: each is built with `netboot.dhcp6wire` and sent
    from a socket in the client namespace (`netboot_lab.ipv6.ClientSocket`).
    Its identity is a DUID-LL of `mac` and one IA_NA `iaid`, so two of them
    with the same values are the same client to the server.
    """

    sock: ClientSocket
    mac: bytes
    iaid: int = 1
    transaction_id: int = 0x100

    @property
    def duid(self) -> bytes:
        return build_duid(Duid(DuidType.LL, self.mac, hardware_type=HARDWARE_TYPE_ETHERNET))

    def message(self, msg_type: int, *options: RawOption) -> Dhcp6Message:
        self.transaction_id = (self.transaction_id + 1) & 0xFFFFFF
        return Dhcp6Message(
            msg_type,
            self.transaction_id,
            ((Option.CLIENTID, self.duid), (Option.ELAPSED_TIME, build_elapsed_time(0)), *options),
        )

    def ia_na(self, *addresses: IPv6Address) -> RawOption:
        held = tuple(IaAddress(address, 0, 0) for address in addresses)
        return (Option.IA_NA, build_ia_na(IaNa(self.iaid, 0, 0, held)))

    def ask(self, message: Dhcp6Message, wait: float = ANSWER_WAIT) -> Dhcp6Message | None:
        """Send to ff02::1:2; the first answer with our transaction id, or None."""
        self.sock.send(build_message(message))
        deadline = time.monotonic() + wait
        while (received := self.sock.receive(deadline)) is not None:
            with contextlib.suppress(MalformedPacket):
                reply = parse_message(received[1])
                if (
                    isinstance(reply, Dhcp6Message)
                    and reply.transaction_id == message.transaction_id
                ):
                    return reply
        return None

    def solicit(self) -> Dhcp6Message | None:
        oro = (Option.ORO, build_oro([Option.DNS_SERVERS, Option.DOMAIN_LIST]))
        return self.ask(self.message(MessageType.SOLICIT, self.ia_na(), oro))

    def request(self, advertise: Dhcp6Message) -> Dhcp6Message | None:
        """Request what `advertise` offered, from the server that offered it."""
        server = advertise.option(Option.SERVERID) or b""
        addresses = leased_addresses(advertise)
        return self.ask(
            self.message(MessageType.REQUEST, (Option.SERVERID, server), self.ia_na(*addresses))
        )

    def lease(self) -> tuple[IPv6Address | None, Dhcp6Message | None]:
        """Solicit and Request: the bound address (None when refused) and the last reply."""
        advertise = self.solicit()
        if advertise is None or not leased_addresses(advertise):
            return None, advertise
        reply = self.request(advertise)
        addresses = leased_addresses(reply) if reply is not None else ()
        return (addresses[0] if addresses else None), reply

    def decline(self, reply: Dhcp6Message, address: IPv6Address) -> Dhcp6Message | None:
        server = reply.option(Option.SERVERID) or b""
        return self.ask(
            self.message(MessageType.DECLINE, (Option.SERVERID, server), self.ia_na(address))
        )


def leased_addresses(message: Dhcp6Message) -> tuple[IPv6Address, ...]:
    """The addresses (with a valid lifetime) in the IA_NAs of a server's message."""
    found: list[IPv6Address] = []
    for raw in message.all_of(Option.IA_NA):
        with contextlib.suppress(MalformedPacket):
            found += [a.address for a in parse_ia_na(raw).addresses if a.valid_lifetime > 0]
    return tuple(found)


def status_codes(message: Dhcp6Message) -> tuple[int, ...]:
    """Every status code of a message: top level, then in its IA_NAs."""
    codes = [parse_status_code(raw).code for raw in message.all_of(Option.STATUS_CODE)]
    for raw in message.all_of(Option.IA_NA):
        with contextlib.suppress(MalformedPacket):
            status = parse_ia_na(raw).status
            if status is not None:
                codes.append(status.code)
    return tuple(codes)
