"""`netboot tftp get`: fetch a file the way a PXE client would, for diagnostics."""

from __future__ import annotations

import os
import sys
import tempfile
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

import click


@click.group()
def tftp() -> None:
    """TFTP diagnostics."""


@tftp.command()
@click.argument("host")
@click.argument("path")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the file (default: its base name; '-' for stdout).",
)
@click.option("--port", default=69, show_default=True, type=click.IntRange(1, 65535))
@click.option("--blksize", type=click.IntRange(8, 65464), help="Ask for this block size.")
@click.option("--windowsize", type=click.IntRange(1, 65535), help="Ask for this window (RFC 7440).")
@click.option("--tsize/--no-tsize", default=True, show_default=True, help="Ask for the file size.")
@click.option("--timeout", type=click.IntRange(1, 255), help="Ask the server for this timeout.")
def get(
    host: str,
    path: str,
    output: Path | None,
    port: int,
    blksize: int | None,
    windowsize: int | None,
    tsize: bool,
    timeout: int | None,
) -> None:
    """Download PATH from the TFTP server HOST (an IPv4 or IPv6 address, a link-local
    one as fe80::1%eth0) and report what was negotiated.

    Exit status 0 when the whole file arrived, 1 otherwise.
    """
    from twisted.internet import reactor as global_reactor  # noqa: TID251 - the CLI picks it

    from netboot.hostport import join_host_port
    from netboot.tftp.client import ReadClient
    from netboot.tftp.session import Finished, Outcome
    from netboot_services.listeners import listen_udp
    from netboot_services.tftp_client import Download

    # As the socket will name the server's answers: no brackets, IPv6 compressed.
    host = host.removeprefix("[").removesuffix("]")
    if ":" in host:
        host = str(IPv6Address(host))

    options = {}
    if blksize is not None:
        options["blksize"] = str(blksize)
    if windowsize is not None:
        options["windowsize"] = str(windowsize)
    if timeout is not None:
        options["timeout"] = str(timeout)
    if tsize:
        options["tsize"] = "0"

    target = output or Path(Path(path).name or "download")
    to_stdout = str(target) == "-"
    if to_stdout:
        sink = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
        temporary = None
    else:
        descriptor, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        sink = os.fdopen(descriptor, "wb")
        temporary = Path(name)

    reactor: Any = global_reactor
    client = ReadClient(path, options)
    download = Download(client, (host, port), sink, reactor)
    result: list[Finished] = []

    def done(finished: Finished) -> None:
        result.append(finished)
        reactor.stop()

    download.done.addCallback(done)
    listen_udp(reactor, 0, download, "::" if ":" in host else "")
    reactor.run()
    sink.close()

    finished = result[0] if result else Finished(Outcome.TIMED_OUT, "interrupted")
    seconds = max(download.finished - download.started, 1e-9)
    if finished.outcome is not Outcome.COMPLETED:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        click.echo(
            f"error: {join_host_port(host, port)} {path}: {finished.outcome.value}: "
            f"{finished.detail}",
            err=True,
        )
        sys.exit(1)
    if temporary is not None:
        temporary.chmod(0o644)
        temporary.replace(target)
    negotiated = ", ".join(f"{k}={v}" for k, v in sorted(client.negotiated.items())) or "none"
    click.echo(
        f"received {client.received} bytes in {seconds:.3f}s "
        f"({client.received / seconds / 1e6:.2f} MB/s); options: {negotiated}",
        err=True,
    )
