"""`netboot install-units` and `netboot nfs-config`: running netboot under systemd."""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

import click

from netboot.config import Config, load_config
from netboot.errors import ConfigError
from netboot.nfs.ganesha import GaneshaSettings, render_config

UNITS_SOURCE = Path(__file__).resolve().parents[2] / "systemd"
DEFAULT_BINARY = "/usr/local/bin/netboot"
DEFAULT_ROOT = "/srv/netboot/nbimages"


def _config(config_file: Path | None) -> Config:
    try:
        return load_config(config_file) if config_file and config_file.exists() else Config()
    except ConfigError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)


def ganesha_config(config: Config) -> str:
    return render_config(
        GaneshaSettings(
            image_root=config.server.root,
            state_dir=Path("/var/lib/nfs/ganesha"),
            shadow_root=config.nfs.shadow_root,
            port=config.nfs.port,
        )
    )


@click.command("nfs-config")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="netboot's TOML configuration (image root, shadow root, port).",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Image root; overrides server.root.",
)
def nfs_config(config_file: Path | None, root: Path | None) -> None:
    """Print the nfs-ganesha configuration that exports the image root read-only.

    For running Debian's nfs-ganesha.service beside an unprivileged netboot
    (nfs.mode = "external"); `netboot serve` writes the same text itself when
    it runs ganesha.
    """
    config = _config(config_file)
    if root is not None:
        config = replace(config, server=replace(config.server, root=root.resolve()))
    click.echo(ganesha_config(config), nl=False)


@click.command("install-units")
@click.option(
    "--prefix",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    show_default=True,
    help="Install under this directory instead of /.",
)
def install_units(prefix: Path) -> None:
    """Install netboot.service, its sysusers entry, an nfs-ganesha drop-in and a config.

    Writes etc/systemd/system/netboot.service, etc/sysusers.d/netboot.conf,
    etc/systemd/system/nfs-ganesha.service.d/netboot.conf and
    etc/ganesha/netboot.conf under PREFIX, and etc/netboot/netboot.toml only if
    it does not exist. Then run: systemd-sysusers; systemctl daemon-reload;
    systemctl enable --now netboot nfs-ganesha.
    """
    if not (UNITS_SOURCE / "netboot.service").is_file():
        click.echo(f"error: unit files not found in {UNITS_SOURCE}", err=True)
        sys.exit(1)
    etc = prefix / "etc"
    config_path = etc / "netboot" / "netboot.toml"
    written: list[Path] = []
    if not config_path.exists():
        config_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(UNITS_SOURCE / "netboot.toml", config_path)
        written.append(config_path)
    config = _config(config_path)
    beside_python = Path(sys.executable).parent / "netboot"
    binary = str(beside_python) if beside_python.is_file() else shutil.which("netboot")
    if binary is None:
        click.echo("error: cannot find the installed netboot command", err=True)
        sys.exit(1)
    unit = (UNITS_SOURCE / "netboot.service").read_text()
    unit = unit.replace(DEFAULT_BINARY, binary).replace(DEFAULT_ROOT, str(config.server.root))
    unit = unit.replace(
        "/etc/netboot/netboot.toml", str(Path("/") / config_path.relative_to(prefix))
    )
    targets = {
        etc / "systemd" / "system" / "netboot.service": unit,
        etc / "sysusers.d" / "netboot.conf": (UNITS_SOURCE / "netboot.sysusers.conf").read_text(),
        etc / "systemd" / "system" / "nfs-ganesha.service.d" / "netboot.conf": (
            UNITS_SOURCE / "nfs-ganesha.service.d" / "netboot.conf"
        ).read_text(),
        etc / "ganesha" / "netboot.conf": ganesha_config(config),
    }
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(
        "next: systemd-sysusers; systemctl daemon-reload; "
        "systemctl enable --now netboot nfs-ganesha"
    )
