"""The `netboot` command: one click group, one module per command family.

The group loads a command's module only when that command runs (or its own
`--help` is asked for): importing every module up front cost ~370 ms, most of
it Twisted, rich and the UDIF reader, for `netboot --version` as much as for
`netboot serve`. `netboot --help` lists the commands from the summaries kept
here, so it imports none of them; `tests/test_cli_lazy.py` checks that each
summary still says what its command's docstring says.
"""

from __future__ import annotations

from dataclasses import dataclass

import click


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives, and the first paragraph of its docstring for `--help`."""

    module: str
    attribute: str
    summary: str


COMMANDS: dict[str, LazyCommand] = {
    "admin-token": LazyCommand(
        "netboot.cli.admin",
        "admin_token",
        "Print the admin token (made by the daemon on its first start).",
    ),
    "assign": LazyCommand(
        "netboot.cli.admin",
        "assign",
        "Make machine MAC boot image IMAGE_ID next (`none`: no image, its menu).",
    ),
    "bsdp": LazyCommand("netboot.cli.bsdp", "bsdp", "BSDP (Apple NetBoot) diagnostics."),
    "build-http-grub": LazyCommand(
        "netboot.cli.http_grub",
        "build_http_grub",
        "Build a network GRUB with the `http` module from Debian's GRUB modules.",
    ),
    "dmg": LazyCommand(
        "netboot.cli.dmg",
        "dmg",
        "Inspect, verify and convert disk images (UDIF .dmg, raw images, block devices).",
    ),
    "fetch-signed-chain": LazyCommand(
        "netboot.cli.signed_chain",
        "fetch_signed_chain",
        "Fetch Debian's signed shim and network GRUB for Secure Boot PCs, not installed.",
    ),
    "images": LazyCommand(
        "netboot.cli.images", "images", "Inspect and build the NBI sets under the image root."
    ),
    "install-units": LazyCommand(
        "netboot.cli.units",
        "install_units",
        "Install netboot.service, its sysusers entry, an nfs-ganesha drop-in and a config.",
    ),
    "lab": LazyCommand(
        "netboot.cli.lab",
        "lab",
        "An isolated boot lab: our daemon and QEMU guests in a network namespace.",
    ),
    "leases": LazyCommand(
        "netboot.cli.leases",
        "leases",
        "Full-mode lease databases: move leases between backends.",
    ),
    "machines": LazyCommand(
        "netboot.cli.admin",
        "machines",
        "List the machines the daemon has seen, their last boot and their assignment.",
    ),
    "nbi": LazyCommand(
        "netboot.cli.nbi", "nbi", "Build NBI sets and edit their NBImageInfo.plist."
    ),
    "nfs-config": LazyCommand(
        "netboot.cli.units",
        "nfs_config",
        "Print the nfs-ganesha configuration that exports the image root read-only.",
    ),
    "serve": LazyCommand(
        "netboot.cli.serve",
        "serve",
        "Serve the NBI sets under the image root until SIGTERM or SIGINT.",
    ),
    "status": LazyCommand(
        "netboot.cli.status",
        "status",
        "Show the images, counters and service health of a running daemon.",
    ),
    "tftp": LazyCommand("netboot.cli.tftp", "tftp", "TFTP diagnostics."),
}


def load_command(name: str) -> click.Command:
    """Import the module that defines command `name` and return the command."""
    entry = COMMANDS[name]
    # __import__ rather than importlib.import_module: the import statement's own
    # path, which `python -X importtime` reports (import_module's is not timed).
    module = __import__(entry.module, fromlist=[entry.attribute])
    command = getattr(module, entry.attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{entry.module}.{entry.attribute} is not a click command")
    return command


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (click's LazyGroup pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        command = load_command(cmd_name)
        self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the kept summaries, shortened as click shortens docstrings.

        Each row is built by a bare `click.Command` holding the summary as its
        help, so the shortening to the terminal's width is click's own.
        """
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            loaded = self.commands.get(name)
            stand_in = loaded or click.Command(name, help=COMMANDS[name].summary)
            if not stand_in.hidden:
                rows.append((name, stand_in.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """click's `version_option` output, with the version looked up only when asked for.

    `click.version_option(__version__)` needs the string when the group is
    defined, and reading it costs `importlib.metadata` (~35 ms) on every run.
    """
    if not value or ctx.resilient_parsing:
        return
    import netboot

    click.echo(f"netboot, version {netboot.__version__}", color=ctx.color)
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
def cli() -> None:
    """NetBoot server for Macs (BSDP) and PCs (PXE/iPXE).

    Images are NBI sets (X.nbi/NBImageInfo.plist with a booter and a root
    image) under an image root, `nbimages/` by default.
    """


def main() -> None:
    cli()
