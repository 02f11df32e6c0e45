"""`netboot bsdp probe`: ask the network's BSDP servers what a Mac would be offered."""

from __future__ import annotations

import sys

import click

from netboot.macaddr import parse_mac


def _image_id(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an image ID (decimal or 0x hex)") from None


def _show_packets(datagrams: list[tuple[str, bytes]]) -> None:
    """Each datagram as scapy dissects it, BSDP layer included; stderr keeps --json parseable."""
    from netboot.bsdp.scapy_layer import describe

    for direction, datagram in datagrams:
        click.echo(f"--- {direction}: {describe(datagram)}", err=True)


@click.group()
def bsdp() -> None:
    """BSDP (Apple NetBoot) diagnostics."""


@bsdp.command()
@click.option("--interface", metavar="IF", help="Interface to send from (its IPv4 is ciaddr).")
@click.option("--server", metavar="ADDR", help="Ask this server only (default: broadcast).")
@click.option("--arch", default="i386", show_default=True, help="Client architecture.")
@click.option("--model", default="MacBookPro11,1", show_default=True, help="Model identifier.")
@click.option("--mac", help="Client MAC (default: the interface's).")
@click.option("--select", "select_image", metavar="ID", help="Then SELECT this image ID.")
@click.option(
    "--timeout",
    default=3.0,
    show_default=True,
    type=click.FloatRange(0.1, 120),
    help="Seconds to gather answers.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--show-packets",
    is_flag=True,
    help="Dissect every packet sent and received with scapy's BSDP layer (on stderr).",
)
def probe(
    interface: str | None,
    server: str | None,
    arch: str,
    model: str,
    mac: str | None,
    select_image: str | None,
    timeout: float,
    as_json: bool,
    show_packets: bool,
) -> None:
    """Send INFORM[LIST] (and INFORM[SELECT] with --select) from port 68 as a Mac does.

    Exit status 0 when at least one server answered (and, with --select, the
    selection was acknowledged), 1 otherwise. Needs root for port 68.
    """
    from netboot_services.bsdp_probe import Probe, ProbeResult

    if interface is None and server is None:
        raise click.UsageError("give --interface, --server, or both")
    raw_mac = bytes.fromhex(parse_mac(mac).replace(":", "")) if mac else None
    wanted = _image_id(select_image) if select_image is not None else None
    try:
        client = Probe(interface, server, arch, model, raw_mac, timeout)
    except (OSError, ValueError) as error:
        result = ProbeResult(error=str(error))
    else:
        try:
            result = client.run(wanted)
        finally:
            client.close()
        if show_packets:
            _show_packets(client.datagrams)
    if as_json:
        click.echo(result.dumps())
    else:
        for listing in result.servers.values():
            click.echo(
                f"server {listing.server_id} priority {listing.priority} "
                f"default {listing.default_image_id or 0:#010x}"
            )
            for image in listing.images:
                click.echo(f"  {image.image_id:#010x}  {image.name}")
        if result.selected:
            chosen = result.selected
            click.echo(
                f"selected {chosen['image_id']:#010x} from {chosen['server_id']}: "
                f"boot file {chosen['boot_file']!r} from {chosen['siaddr']}, "
                f"root path {chosen['root_path']!r}"
            )
        if result.error:
            click.echo(f"error: {result.error}", err=True)
    sys.exit(0 if result.servers and result.error is None else 1)
