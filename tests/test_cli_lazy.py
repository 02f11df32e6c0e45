"""The `netboot` group loads a command's module only when that command is used.

Start-up time is not asserted (it depends on the machine); what is imported is.
`python -X importtime` lists every module a run imports, so these tests fail
as soon as a top-level import drags Twisted, scapy, rich, prometheus_client or
the UDIF reader back into `netboot --version`.
"""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from netboot.cli import COMMANDS, cli, load_command

HEAVY = ("twisted", "scapy", "rich", "prometheus_client", "netboot.udif", "lzfse")
# A command's own --help may name the UDIF output formats (netboot.udif.conversion)
# or detect a format, but not load the reader, the writer or their codecs.
HEAVY_FOR_COMMAND_HELP = (
    *(name for name in HEAVY if name != "netboot.udif"),
    "netboot.udif.reader",
    "netboot.udif.writer",
    "netboot.udif.chunks",
    "netboot.nbi.catalog",
)


def imported_modules(*args: str) -> set[str]:
    """Every module `python -m netboot ARGS` imports, read from `-X importtime`."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "netboot", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in run.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "netboot.cli" in names, "importtime output not understood"
    return names


def heavy_among(names: set[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(n for n in names if any(n == h or n.startswith(h + ".") for h in heavy))


@pytest.mark.parametrize("args", [("--version",), ("--help",)])
def test_version_and_help_import_no_heavy_module(args: tuple[str, ...]) -> None:
    names = imported_modules(*args)
    assert heavy_among(names) == []
    # The version is read only by --version (importlib.metadata costs ~35 ms).
    assert ("importlib.metadata" in names) == (args == ("--version",))


@pytest.mark.parametrize(
    "command", ["bsdp", "dmg", "images", "nbi", "serve", "status", "tftp", "nfs-config"]
)
def test_command_help_imports_no_heavy_module(command: str) -> None:
    """`netboot X --help` imports X's module, and none of what X needs only to run."""
    names = imported_modules(command, "--help")
    assert COMMANDS[command].module in names
    assert heavy_among(names, HEAVY_FOR_COMMAND_HELP) == []


def test_top_level_help_imports_no_command_module() -> None:
    names = imported_modules("--help")
    assert sorted({entry.module for entry in COMMANDS.values()} & names) == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_kept_summary_is_the_command_docstring(name: str) -> None:
    """`netboot --help` shows each summary exactly as click would shorten the docstring."""
    command = load_command(name)
    assert command.name == name
    stand_in = click.Command(name, help=COMMANDS[name].summary)
    for limit in range(20, 160, 7):
        assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit)


def test_unknown_command_is_none_and_known_ones_resolve() -> None:
    context = click.Context(cli)
    assert isinstance(cli, click.Group)
    assert cli.get_command(context, "no-such-command") is None
    assert cli.list_commands(context) == sorted(COMMANDS)
    for name in COMMANDS:
        assert cli.get_command(context, name) is load_command(name)
