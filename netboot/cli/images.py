"""`netboot images`: list, validate and build NBI sets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from netboot.errors import ImageError
from netboot.nbi.demo import DEBIAN_IPXE_EFI, DEMO_SET_NAME, build_demo_set

# The catalog, rich and the lab's asset fetcher load when a command runs, not
# for `--help` (docs/architecture.md, "The command line").
if TYPE_CHECKING:
    from rich.table import Table

    from netboot.nbi.catalog import Catalog, NbiSet

root_option = click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("nbimages"),
    show_default=True,
    help="Image root holding the NBI sets.",
)


@click.group()
def images() -> None:
    """Inspect and build the NBI sets under the image root."""


def _scan(root: Path) -> Catalog:
    from netboot.nbi.catalog import scan_catalog

    try:
        return scan_catalog(root)
    except OSError as error:
        raise click.UsageError(f"cannot read image root {root}: {error.strerror}") from None


@images.command("list")
@root_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per set.")
def list_images(root: Path, as_json: bool) -> None:
    """List every NBI set, valid or not, with its BSDP image ID."""
    catalog = _scan(root)
    label = str(root)
    if as_json:
        click.echo(json.dumps([s.summary(label) for s in catalog], indent=2))
        return
    from rich.console import Console

    console = Console()
    if not len(catalog):
        console.print(f"No NBI sets under {root}.")
        return
    console.print(_table(catalog))
    for nbi_set in catalog:
        for problem in nbi_set.problems:
            style = "red" if problem in nbi_set.errors else "yellow"
            console.print(
                problem.render(label), style=style, markup=False, highlight=False, soft_wrap=True
            )


def _table(catalog: Catalog) -> Table:
    from rich.table import Table

    from netboot.nbi.model import ImageKind

    table = Table(title=f"NBI sets in {catalog.root}")
    for column in ("ID", "Index", "Name", "Kind", "Type", "Arch", "Flags", "Set", "Status"):
        # Identifiers stay whole so they can be copied; prose columns may wrap.
        table.add_column(column, no_wrap=column not in ("Name", "Kind", "Flags"))
    for nbi_set in catalog:
        row = nbi_set.summary()
        table.add_row(
            f"{row['id']:#010x}" if row["id"] is not None else "-",
            str(row["index"] or "-"),
            row["name"] or "-",
            ImageKind.NAMES.get(row["kind"], str(row["kind"])),
            row["type"] or "-",
            ",".join(row["architectures"]),
            _flags(row),
            row["path"],
            _status(nbi_set),
        )
    return table


def _flags(row: dict[str, object]) -> str:
    flags = [
        name for name, key in (("default", "is_default"), ("install", "is_install")) if row[key]
    ]
    if not row["is_enabled"]:
        flags.append("disabled")
    return ",".join(flags) or "-"


def _status(nbi_set: NbiSet) -> str:
    if nbi_set.errors:
        return f"[red]{len(nbi_set.errors)} error(s)[/red]"
    if nbi_set.warnings:
        return f"[yellow]ok, {len(nbi_set.warnings)} warning(s)[/yellow]"
    return "[green]ok[/green]"


@images.command()
@root_option
@click.argument("sets", nargs=-1, metavar="[SET]...")
def validate(root: Path, sets: tuple[str, ...]) -> None:
    """Check NBI sets; print `<file>: <key>: <message>` for every problem.

    Exit status 0 when every checked set is valid (warnings allowed), 1 when
    any has an error, 2 on usage errors. SET is a set's directory under the
    root (`Alpha.nbi`) or its name (`Alpha`); default: every set. Sets are
    always checked against all others (duplicate Index, several defaults),
    and warned of when the enabled sets are more than one 8 KiB ACK[LIST] holds.
    """
    catalog = _scan(root)
    chosen = list(catalog)
    if sets:
        chosen = []
        for wanted in sets:
            found = catalog.by_path(wanted)
            if found is None:
                raise click.BadParameter(f"no NBI set {wanted!r} under {root}", param_hint="SET")
            chosen.append(found)
    from netboot.bsdp.list_capacity import list_overflow

    label = str(root)
    overflow = list_overflow(catalog)
    for nbi_set in chosen:
        for problem in nbi_set.problems:
            click.echo(problem.render(label))
        for problem in overflow:
            if problem.file.parent == nbi_set.path:
                click.echo(problem.render(label))
    invalid = [s for s in chosen if not s.is_valid]
    click.echo(f"{len(chosen) - len(invalid)} of {len(chosen)} set(s) valid", err=True)
    sys.exit(1 if invalid else 0)


@images.command()
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("nbimages"),
    show_default=True,
    help="Image root to create the set in (created if missing).",
)
@click.option("--name", default=DEMO_SET_NAME, show_default=True, help="Set name (<name>.nbi).")
@click.option(
    "--booter",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEBIAN_IPXE_EFI,
    show_default=True,
    help="EFI program to use as the booter.",
)
@click.option("--force", is_flag=True, help="Rebuild the set if it exists.")
@click.option(
    "--pc/--no-pc",
    default=None,
    help="Add Debian's kernel and a busybox initrd for PCs (default: if they can be "
    "fetched; --pc: fail if not).",
)
def demo(root: Path, name: str, booter: Path, force: bool, pc: bool | None) -> None:
    """Build a small demo NBI set from Debian's ipxe, xorriso, kernel and busybox."""
    from netboot_lab.assets import pc_boot_files  # apt-get and dpkg-deb: only when asked

    pc_files = None
    if pc is not False:
        try:
            pc_files = pc_boot_files()
        except (ImageError, OSError) as error:
            if pc:
                click.echo(f"error: {error}", err=True)
                sys.exit(1)
            click.echo(f"warning: no PC boot files, the set boots Macs only: {error}", err=True)
    try:
        target = build_demo_set(
            root, name=name, booter=booter, replace_existing=force, pc_files=pc_files
        )
    except ImageError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    click.echo(f"built {target}")
