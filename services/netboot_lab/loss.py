"""Impaired links for the loss tests and benchmark: netem, or nftables where netem is missing.

Loss (and, with netem, reordering and jitter) is applied to both ends of a
`VethPair`, and only what was added here is ever removed again. `curl_ranges`
is the client side that has to survive it: one curl reading several ranges.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from netboot_lab.netns import LabError, VethPair, run_in

ONE_PACKET = 1500
"""Bytes: a GSO limit of one Ethernet packet (`ip link set ... gso_max_size`)."""
LINUX_GSO_MAX_SIZE = 65536
"""Linux's default GSO limit for a bridge or a veth, restored afterwards."""
LOSS_TABLE = "netboot_loss"
"""The nftables table the loss fallback adds; only it is ever removed again."""


def curl_ranges(
    url: str, ranges: Sequence[tuple[int, int]], outputs: Sequence[Path], max_time: int
) -> list[str]:
    """One curl reading `ranges` (first, last) of `url` into `outputs`, on one connection.

    As a lossy link needs: 5 retries of any error for every range, and
    `--fail-early`, because curl's exit status is otherwise only the last
    transfer's, and a failed earlier range would pass unnoticed. `--next` resets
    the per-transfer options, so the retries and the time bound are given again
    for each range (a connection reset under 20 % loss hit a later range once).
    """
    command = ["curl", "-sS", "--fail-early"]
    for number, ((first, last), out) in enumerate(zip(ranges, outputs, strict=True)):
        if number:
            command.append("--next")
        command += ["--retry", "5", "--retry-all-errors", "--max-time", str(max_time)]
        command += ["-r", f"{first}-{last}", "-o", str(out), url]
    return command


TFTP_CLIENTS = ("curl", "tftp-hpa", "atftp", "atftp-window16")
"""TFTP clients others wrote, run by the loss tests and benchmark (docs/protocols/tftp.md §1)."""


def tftp_client_command(client: str, server: str, name: str, out: Path) -> list[str]:
    """One download of `name` from `server` into `out`, as `client` does it by default
    apart from the block size (1468, where the client can ask it; tftp-hpa cannot).

    curl also asks `timeout 6` (from its connect timeout); atftp asks nothing unless
    told, so it is given `blksize` (lock step) and `windowsize 16` too (windowed).
    """
    if client == "curl":
        return ["curl", "-sS", "--tftp-blksize", "1468", "-o", str(out), f"tftp://{server}/{name}"]
    if client == "tftp-hpa":
        return ["tftp", server, "-m", "binary", "-c", "get", name, str(out)]
    if client in ("atftp", "atftp-window16"):
        window = ["--option", "windowsize 16"] if client == "atftp-window16" else []
        return ["atftp", "--option", "blksize 1468", *window, "-g", "-r", name, "-l", str(out),
                server]  # fmt: skip
    raise ValueError(f"unknown TFTP client {client!r} (known: {', '.join(TFTP_CLIENTS)})")


def netem_available(namespace: str, interface: str) -> bool:
    """Whether `tc ... netem` works here: tries a qdisc on `interface` and removes it.

    Some kernels (this project's CI VM among them) are built without sch_netem;
    `tc` then says "Specified qdisc kind is unknown".
    """
    added = run_in(
        namespace, "tc", "qdisc", "add", "dev", interface, "root", "netem", "loss", "1%", timeout=10
    )
    if added.returncode != 0:
        return False
    run_in(namespace, "tc", "qdisc", "del", "dev", interface, "root", timeout=10)
    return True


def nft_available() -> bool:
    """Whether the `nft` command (Debian: nftables) is installed."""
    try:
        done = subprocess.run(["nft", "--version"], capture_output=True, check=False)
    except FileNotFoundError:
        return False
    return done.returncode == 0


@dataclass(frozen=True)
class Impairment:
    """What `impair` did: the method, and what it could not do with that method."""

    method: str
    """"netem" (loss, reordering and jitter) or "nftables" (loss only)."""
    loss_percent: int
    note: str


def impair(
    lab: VethPair,
    loss_percent: int,
    *,
    reorder_percent: int = 0,
    jitter_ms: int = 0,
    prefer_netem: bool = True,
) -> Impairment:
    """Lose `loss_percent` of the lab's packets in each direction, replacing any earlier loss.

    With netem (a qdisc on both veth ends) reordering and jitter come too. Without
    it, an nftables rule in each namespace's input hook drops a random share of
    the TCP and UDP packets arriving on the veth (`numgen random mod 100 < N`), so
    each direction loses N %; loopback and everything else is untouched. nftables
    cannot reorder or delay, and the note says so. Needs root and `nft` for the
    fallback; callers check `impairment_possible` first.

    Either way both ends' GSO is limited to one packet, as `impair_interface` does
    on the lab's bridge: a veth hands a TCP sender's 64 KB GSO buffer to its peer
    whole, so one drop would lose some forty wire packets at once, and a sender
    that happens to build larger buffers would be punished for it.
    """
    clear_impairment(lab)
    ends = ((lab.server, lab.server_if), (lab.client, lab.client_if))
    for namespace, interface in ends:
        set_gso_max_size(namespace, interface, ONE_PACKET)
    if prefer_netem and netem_available(lab.server, lab.server_if):
        netem = ["netem", "loss", f"{loss_percent}%"]
        if jitter_ms or reorder_percent:
            # Reordering in netem needs a delay; jitter on top of it reorders as well.
            netem += ["delay", "10ms", f"{jitter_ms}ms"] if jitter_ms else ["delay", "10ms"]
        if reorder_percent:
            netem += ["reorder", f"{reorder_percent}%", "50%"]
        for namespace, interface in ends:
            ip_tc = ["tc", "qdisc", "replace", "dev", interface, "root", *netem]
            done = run_in(namespace, *ip_tc, timeout=10)
            if done.returncode != 0:
                raise AssertionError(f"{' '.join(ip_tc)} in {namespace}: {done.stderr}")
        return Impairment("netem", loss_percent, " ".join(netem[1:]))
    for namespace, interface in ends:
        for command in (
            f"add table inet {LOSS_TABLE}",
            f"add chain inet {LOSS_TABLE} input {{ type filter hook input priority 0 ; }}",
            f"add rule inet {LOSS_TABLE} input iifname {interface} meta l4proto {{ udp, tcp }} "
            f"numgen random mod 100 < {loss_percent} drop",
        ):
            done = run_in(namespace, "nft", command, timeout=10)
            if done.returncode != 0:
                raise AssertionError(f"nft {command} in {namespace}: {done.stderr}")
    skipped = []
    if reorder_percent:
        skipped.append(f"reordering {reorder_percent}%")
    if jitter_ms:
        skipped.append(f"jitter {jitter_ms} ms")
    note = "no sch_netem in this kernel: nftables input drop on both veth ends"
    if skipped:
        note += f"; not possible with nftables: {', '.join(skipped)}"
    return Impairment("nftables", loss_percent, note)


def set_gso_max_size(namespace: str, interface: str, size: int) -> None:
    """The largest GSO buffer `interface` hands on: ONE_PACKET while losing packets, so that
    a drop is one wire packet, and LINUX_GSO_MAX_SIZE again afterwards."""
    run_in(namespace, "ip", "link", "set", interface, "gso_max_size", str(size), timeout=10)


def impair_interface(namespace: str, bridge: str, loss_percent: int) -> None:
    """Lose `loss_percent` of the TCP and UDP packets between `bridge`'s ports and the host
    it belongs to, in each direction (the lab: between the guests and the daemon).

    nftables in the bridge family's input and output hooks, so a drop happens on the
    wire's side of the daemon's stack, as on a real link: the daemon's send succeeds
    (an inet output-hook drop would hand it EPERM instead, which no real network does).
    The bridge's GSO is limited to one packet meanwhile: otherwise the stack hands TCP
    segments over in bursts of up to 64 KB, and one drop would lose dozens of wire
    packets. `clear_interface` removes both again.
    """
    clear_interface(namespace, bridge)
    if loss_percent <= 0:
        return
    set_gso_max_size(namespace, bridge, ONE_PACKET)
    drop = f"ether type ip ip protocol {{ udp, tcp }} numgen random mod 100 < {loss_percent}"
    for command in (
        f"add table bridge {LOSS_TABLE}",
        f"add chain bridge {LOSS_TABLE} input {{ type filter hook input priority 0 ; }}",
        f"add chain bridge {LOSS_TABLE} output {{ type filter hook output priority 0 ; }}",
        f"add rule bridge {LOSS_TABLE} input {drop} counter drop",
        f"add rule bridge {LOSS_TABLE} output {drop} counter drop",
    ):
        done = run_in(namespace, "nft", command, timeout=10)
        if done.returncode != 0:
            raise LabError(f"nft {command} in {namespace}: {done.stderr.strip()}")


def clear_interface(namespace: str, bridge: str) -> None:
    """Remove what `impair_interface` added in `namespace`, if anything."""
    if nft_available():
        run_in(namespace, "nft", "delete", "table", "bridge", LOSS_TABLE, timeout=10)
    set_gso_max_size(namespace, bridge, LINUX_GSO_MAX_SIZE)


def clear_impairment(lab: VethPair) -> None:
    """Remove what `impair` added (netem qdiscs and the loss table), if anything."""
    for namespace, interface in ((lab.server, lab.server_if), (lab.client, lab.client_if)):
        run_in(namespace, "tc", "qdisc", "del", "dev", interface, "root", timeout=10)
        set_gso_max_size(namespace, interface, LINUX_GSO_MAX_SIZE)
        if nft_available():
            run_in(namespace, "nft", "delete", "table", "inet", LOSS_TABLE, timeout=10)


def impairment_possible(pair: VethPair) -> bool:
    """Whether netem or nftables can impair the pair's link here."""
    return netem_available(pair.server, pair.server_if) or nft_available()
