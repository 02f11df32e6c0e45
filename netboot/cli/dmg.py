"""`netboot dmg`: look into, check and convert Apple disk images (UDIF `.dmg`) and raw disks.

Exit status: 0 on success, 1 when the input is bad (the message names the file
and, for UDIF structures, the byte offset), 2 on usage errors.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from netboot.errors import HfsError, UdifError
from netboot.udif.conversion import LayoutKind, OutputFormat
from netboot.udif.sector import SECTOR

# The reader, writer, codecs and rich load when a command runs, not for `--help`
# (docs/architecture.md, "The command line").
if TYPE_CHECKING:
    from netboot.hfs.volume import Entry
    from netboot.udif.detect import ImageFormat
    from netboot.udif.partitions import Partition, Reader
    from netboot.udif.reader import VerifyReport
    from netboot.udif.writer import ProgressCallback

_CONVERT_FORMATS = [f.value for f in OutputFormat]
_LEVELLED = (OutputFormat.UDZO, OutputFormat.UDBZ)


@click.group()
def dmg() -> None:
    """Inspect, verify and convert disk images (UDIF .dmg, raw images, block devices)."""


# ----------------------------------------------------------------------------------------
# info
# ----------------------------------------------------------------------------------------


@dmg.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(image: Path, as_json: bool) -> None:
    """Show IMAGE's format, size, partitions, chunk types and checksums.

    Every chunk of a UDIF image is decoded to check the checksums, so this
    reads the whole image. Exit status 0 when IMAGE could be read (even with
    bad checksums: `verify` is the check), 1 when it is not a disk image.
    """
    with _errors_exit_1():
        summary = _describe(image, progress=_progress_enabled(quiet=as_json))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)


def _describe(path: Path, progress: bool) -> dict[str, Any]:
    """The `info` object (README "Commands" lists its keys)."""
    from netboot.udif.detect import ImageFormat
    from netboot.udif.source import open_source

    detected = _detect(path)
    if detected is ImageFormat.UDIF:
        return _describe_udif(path, progress)
    if detected is ImageFormat.SPARSE_IMAGE:
        return _describe_sparse(path)
    with open_source(path) as source:
        scheme, partitions, problems = _partitions(source.read, source.size, path)
        summary = _summary(path, "raw", source.size, scheme, partitions, {}, None)
    summary["problems"] = problems
    return summary


def _describe_udif(path: Path, progress: bool) -> dict[str, Any]:
    from netboot.udif.reader import UdifImage

    with UdifImage.open(path) as image:
        counts = image.chunk_counts()
        scheme, partitions, problems = _partitions(image.read, image.size, path)
        with _progress_bar(progress, "checking", image.size) as advance:
            report = image.verify(progress=advance)
        summary = _summary(
            path, _udif_format(counts), image.size, scheme, partitions, counts, report
        )
    summary["problems"] = problems + report.problems
    return summary


def _partitions(
    read: Reader, size: int, path: Path
) -> tuple[str | None, list[Partition], list[str]]:
    """The partition map, or none and the reason: a broken map is a finding, not a failure."""
    from netboot.udif.partitions import read_partitions

    try:
        scheme, partitions = read_partitions(read, size, str(path))
    except UdifError as error:
        return None, [], [str(error)]
    return scheme, partitions, []


def _describe_sparse(path: Path) -> dict[str, Any]:
    # .sparseimage header: 'sprs', version, sectors per band (u32 @8), total sectors (u32 @16).
    with path.open("rb") as stream:
        head = stream.read(64)
    if len(head) < 20:
        raise UdifError(str(path), 0, "sparse image header is cut short")
    (sectors,) = struct.unpack_from(">I", head, 16)
    summary = _summary(path, "sparseimage", sectors * SECTOR, None, [], {}, None)
    summary["problems"] = []
    return summary


def _summary(
    path: Path,
    image_format: str,
    size: int,
    scheme: str | None,
    partitions: list[Partition],
    chunks: dict[str, int],
    report: VerifyReport | None,
) -> dict[str, Any]:
    from netboot.udif.layout import sectors_for

    tables = report.tables if report else []
    return {
        "path": str(path),
        "format": image_format,
        "size": size,
        "sectors": sectors_for(size),
        "partition_scheme": scheme,
        "partitions": [
            {
                "index": p.index,
                "name": p.name,
                "type": p.type,
                "first_sector": p.first_sector,
                "sector_count": p.sector_count,
            }
            for p in partitions
        ],
        "chunks": chunks,
        "checksums": {
            "data_fork": report.data_fork if report else "absent",
            "master": report.master if report else "absent",
            "tables": [{"name": name, "status": status} for name, status in tables],
        },
    }


def _udif_format(counts: dict[str, int]) -> str:
    """The hdiutil format name the chunk types imply; `mixed` when they name several.

    Which hdiutil format a set of chunk types means: docs/protocols/udif.md §7.
    """
    from netboot.udif.blkx import ChunkType, chunk_type_name

    format_by_chunk = {
        chunk_type_name(ChunkType.ZLIB): "UDZO",
        chunk_type_name(ChunkType.BZIP2): "UDBZ",
        chunk_type_name(ChunkType.LZFSE): "ULFO",
        chunk_type_name(ChunkType.LZMA): "ULMO",
        chunk_type_name(ChunkType.ADC): "UDCO",
    }
    formats = {name for chunk, name in format_by_chunk.items() if counts.get(chunk)}
    if len(formats) > 1:
        return "mixed"
    return formats.pop() if formats else "UDRO"


def _print_summary(summary: dict[str, Any]) -> None:
    size, sectors = summary["size"], summary["sectors"]
    click.echo(summary["path"])
    click.echo(f"  format      {summary['format']}")
    click.echo(f"  size        {size} bytes ({sectors} sectors, {_human(size)})")
    click.echo(f"  partitions  {summary['partition_scheme'] or 'none found'}")
    for p in summary["partitions"]:
        click.echo(
            f"    {p['index']:>3}  {p['first_sector']:>12}  {p['sector_count']:>12}  "
            f"{p['type']}  {p['name']}".rstrip()
        )
    if summary["chunks"]:
        chunks = ", ".join(f"{name} {count}" for name, count in sorted(summary["chunks"].items()))
        click.echo(f"  chunks      {chunks}")
    checksums = summary["checksums"]
    tables = checksums["tables"]
    valid = sum(1 for t in tables if t["status"] == "valid")
    click.echo(
        f"  checksums   data fork {checksums['data_fork']}, master {checksums['master']}, "
        f"tables {valid} of {len(tables)} valid"
    )
    for table in tables:
        if table["status"] != "valid":
            click.echo(f"    {table['status']}: {table['name']}")
    for problem in summary.get("problems", []):
        click.echo(f"  problem     {problem}")


# ----------------------------------------------------------------------------------------
# verify
# ----------------------------------------------------------------------------------------


@dmg.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="Print problems only, no summary or progress.")
def verify(image: Path, quiet: bool) -> None:
    """Decode every chunk of IMAGE and check every checksum; one line per problem.

    Exit status 0 when everything is valid, 1 otherwise (including when IMAGE
    is not a UDIF image at all), 2 on usage errors.
    """
    from netboot.udif.detect import ImageFormat
    from netboot.udif.reader import UdifImage

    with _errors_exit_1():
        detected = _detect(image)
        if detected is not ImageFormat.UDIF:
            raise UdifError(str(image), None, f"not a UDIF image ({detected}): nothing to verify")
        with UdifImage.open(image) as udif:
            with _progress_bar(_progress_enabled(quiet), "verifying", udif.size) as advance:
                report = udif.verify(progress=advance)
            chunks = sum(udif.chunk_counts().values())
    for problem in report.problems:
        click.echo(problem)
    if not quiet:
        outcome = "all checksums valid" if report.ok else f"{len(report.problems)} problem(s)"
        click.echo(f"{image}: {chunks} chunk entries, {outcome}", err=True)
    sys.exit(0 if report.ok else 1)


# ----------------------------------------------------------------------------------------
# convert
# ----------------------------------------------------------------------------------------


@dmg.command()
@click.argument("source", metavar="IN", type=click.Path(path_type=Path))
@click.argument("out", metavar="OUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "out_format",
    type=click.Choice(_CONVERT_FORMATS, case_sensitive=False),
    default=OutputFormat.UDZO.value,
    show_default=True,
    help="raw: the expanded disk; UDRO: uncompressed; UDZO: zlib; UDBZ: bzip2; ULFO: LZFSE.",
)
@click.option(
    "--layout",
    type=click.Choice([k.value for k in LayoutKind]),
    default=LayoutKind.AUTO.value,
    show_default=True,
    help="apm: wrap a volume in an Apple Partition Map (what NetBoot clients boot); "
    "bare: one whole-disk entry; keep: the input's own partitions; "
    "auto: keep for disks, UDIF input and raw output, apm for a bare volume.",
)
@click.option("--level", type=click.IntRange(1, 9), help="Compression level (UDZO: 6, UDBZ: 9).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Threads compressing or decompressing (default: one per CPU).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on success.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def convert(
    source: Path,
    out: Path,
    out_format: str,
    layout: str,
    level: int | None,
    workers: int | None,
    quiet: bool,
    force: bool,
) -> None:
    """Convert IN (a .dmg, a raw image or a block device) to OUT.

    OUT is written under a temporary name beside it and renamed at the end, so
    it never exists half-written, even after an error or Ctrl-C. Exit status 0
    on success, 1 on bad input or when OUT exists without --force, 2 on usage
    errors.
    """
    from netboot.udif.layout import plan_layout
    from netboot.udif.source import open_source
    from netboot.udif.writer import write_image

    fmt = OutputFormat(next(f for f in _CONVERT_FORMATS if f.lower() == out_format.lower()))
    if level is not None and fmt not in _LEVELLED:
        raise click.BadParameter(f"{fmt} has no compression level", param_hint="--level")
    with _errors_exit_1(), open_source(source) as opened:
        plan = plan_layout(opened, layout, raw_output=fmt is OutputFormat.RAW)
        with _progress_bar(_progress_enabled(quiet), f"{fmt} {out.name}", plan.size) as advance:
            result = write_image(
                opened,
                out,
                fmt,
                layout=plan,
                level=level,
                progress=advance,
                workers=workers or os.cpu_count() or 1,
                overwrite=force,
            )
    if not quiet:
        ratio = f", {result.file_size / plan.size:.1%} of the disk" if plan.size else ""
        click.echo(
            f"wrote {out}: {fmt}, {plan.scheme} layout ({len(plan.regions)} entries), "
            f"{plan.sector_count} sectors, {_human(result.file_size)}{ratio}"
        )


# ----------------------------------------------------------------------------------------
# ls, cp: files of the HFS+ volume inside an image
# ----------------------------------------------------------------------------------------

_PARTITION = click.option(
    "--partition",
    type=click.IntRange(min=0),
    help="The partition map index of the HFS+ volume (default: the first HFS+ partition).",
)


@dmg.command(name="ls")
@click.argument("image", type=click.Path(path_type=Path))
@click.argument("path", default="/")
@_PARTITION
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def ls_command(image: Path, path: str, partition: int | None, as_json: bool) -> None:
    """List PATH (default: the root) of the HFS+ volume inside IMAGE.

    IMAGE is a UDIF image, a raw disk (APM or GPT) or a bare HFS+/HFSX volume;
    a UDIF image is read chunk by chunk, never expanded. Exit status 0 on
    success, 1 when IMAGE cannot be read or PATH is not on the volume, 2 on
    usage errors.
    """
    from netboot.hfs.volume import EntryKind, open_image

    with _errors_exit_1(), open_image(image, partition) as volume:
        top = volume.lookup(path)
        entries = list(volume.listdir(top)) if top.kind is EntryKind.DIRECTORY else [top]
        links = {e.path: volume.read_link(e) for e in entries if e.kind is EntryKind.SYMLINK}
        info = volume.info
    if as_json:
        listing = {
            "image": str(image),
            "volume": {
                "name": info.volume_name,
                "signature": info.signature,
                "block_size": info.block_size,
                "total_blocks": info.total_blocks,
                "case_sensitive": info.case_sensitive,
                "journaled": info.journaled,
            },
            "path": top.path,
            "entries": [_entry_json(e, links.get(e.path)) for e in entries],
        }
        click.echo(json.dumps(listing, indent=2, ensure_ascii=False))
        return
    for entry in entries:
        _print_entry(entry, links.get(entry.path))


def _entry_json(entry: Entry, link: str | None) -> dict[str, Any]:
    """One `ls --json` entry (README "Commands" lists the keys)."""
    return {
        "name": entry.name,
        "path": entry.path,
        "kind": str(entry.kind),
        "size": entry.size,
        "mode": entry.mode,
        "uid": entry.uid,
        "gid": entry.gid,
        "modified": entry.modified.isoformat(),
        "cnid": entry.cnid,
        "compressed": entry.compressed,
        "link_count": entry.link_count,
        "resource_fork_size": entry.resource_fork_size,
        "link_target": link,
    }


def _print_entry(entry: Entry, link: str | None) -> None:
    import stat

    modified = entry.modified.strftime("%Y-%m-%d %H:%M")
    name = entry.name + ("/" if str(entry.kind) == "directory" else "")
    arrow = f" -> {link}" if link is not None else ""
    click.echo(
        f"{stat.filemode(entry.mode)} {entry.uid:>5} {entry.gid:>5} {entry.size:>12} "
        f"{modified}  {name}{arrow}"
    )


@dmg.command(name="cp")
@click.argument("image", type=click.Path(path_type=Path))
@click.argument("path")
@click.argument("dest", type=click.Path(path_type=Path))
@_PARTITION
@click.option("--force", is_flag=True, help="Replace files that exist in DEST.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on success.")
def cp_command(
    image: Path, path: str, dest: Path, partition: int | None, force: bool, quiet: bool
) -> None:
    """Copy PATH (a file, or a directory recursively) from the HFS+ volume in IMAGE to DEST.

    When DEST is a directory PATH is copied into it, else to DEST itself.
    Each file is written under a temporary name and renamed, so none is ever
    half-written; existing files are kept unless --force. Names from the
    volume that cannot be a safe host name ('..', '/') are refused, never
    written. Exit status 0 on success, 1 on bad input, an existing file
    without --force or a refused name, 2 on usage errors.
    """
    from netboot.hfs.extract import extract, target_for
    from netboot.hfs.volume import open_image

    with _errors_exit_1(), open_image(image, partition) as volume:
        entry = volume.lookup(path)
        target = target_for(entry, dest, volume.info.volume_name)
        if target is None:
            raise UdifError(str(image), None, f"{entry.path}: the name is not a safe file name")
        with _progress_bar(_progress_enabled(quiet), f"copying {entry.name}", entry.size) as bar:
            report = extract(volume, entry, target, force, progress=bar)
    for skipped in report.skipped:
        click.echo(f"skipped {skipped}: not a file, directory or symlink", err=True)
    for refused in report.refused:
        click.echo(f"error: {image}: {refused}: the name is not a safe file name", err=True)
    if not quiet:
        click.echo(
            f"copied {entry.path} to {target}: {report.files} files, {report.directories} "
            f"directories, {report.symlinks} symlinks, {_human(report.bytes)}"
        )
    if report.refused:
        sys.exit(1)


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _errors_exit_1() -> Iterator[None]:
    """Bad input and I/O trouble end the command with `error: ...` and status 1."""
    try:
        yield
    except (UdifError, HfsError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        click.echo(f"error: {where}{error.strerror or error}", err=True)
        sys.exit(1)


def _detect(path: Path) -> ImageFormat:
    from netboot.udif.detect import ImageFormat, detect_format

    try:
        with path.open("rb") as stream:
            detected = detect_format(stream)
    except IsADirectoryError:
        raise UdifError(str(path), None, "is a directory") from None
    except OSError as error:
        raise UdifError(str(path), None, error.strerror or str(error)) from None
    if detected is ImageFormat.EMPTY:
        raise UdifError(str(path), None, "the file is empty")
    return detected


def _progress_enabled(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@contextlib.contextmanager
def _progress_bar(enabled: bool, description: str, total: int) -> Iterator[ProgressCallback | None]:
    """A rich progress bar on stderr, or None (no callback at all) when disabled."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(done: int) -> None:
            bar.advance(task, done)

        yield advance


def _human(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
