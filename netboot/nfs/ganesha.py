"""Render nfs-ganesha's configuration for the image root (and the shadow area).

Export 1 is the image root, read-only, at the same pseudo path as its real
path, so an NFS root path `nfs:<server>:<root>:<set>/<image>` names the same
file for NFSv3 (mount path) and NFSv4 (pseudo path). Export 2, when diskless
clients are served, is the shadow area, read-write. NFSv4's grace period is
off (`Graceless`): a restarted server must answer at once, and there is no
lock state worth recovering for read-only images. NLM and RQUOTA are off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class GaneshaSettings:
    image_root: Path
    state_dir: Path
    """Where ganesha keeps its recovery data (ours, under the daemon's state dir)."""
    shadow_root: Path | None = None
    port: int = 2049
    bind_address: str = ""
    """Empty: every address."""


def _quoted(path: Path) -> str:
    text = str(path)
    if '"' in text or "\n" in text:
        raise ValueError(f"{text!r} cannot be written into a ganesha configuration")
    return f'"{text}"'


def _export(export_id: int, path: Path, access: str) -> str:
    return f"""EXPORT {{
    Export_Id = {export_id};
    Path = {_quoted(path)};
    Pseudo = {_quoted(path)};
    Access_Type = {access};
    Squash = No_Root_Squash;
    Protocols = 3, 4;
    Transports = TCP, UDP;
    SecType = sys;
    FSAL {{ Name = VFS; }}
}}
"""


def render_config(settings: GaneshaSettings) -> str:
    bind = f"    Bind_addr = {settings.bind_address};\n" if settings.bind_address else ""
    text = f"""# Written by netboot serve; every start rewrites it.
NFS_CORE_PARAM {{
    Protocols = 3, 4;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    NFS_Port = {settings.port};
{bind}}}
NFSV4 {{
    Graceless = true;
    RecoveryBackend = fs;
    RecoveryRoot = {_quoted(settings.state_dir / "recovery")};
    Minor_Versions = 0, 1, 2;
}}
NFS_KRB5 {{ Active_krb5 = false; }}
"""
    text += _export(1, settings.image_root.resolve(), "RO")
    if settings.shadow_root is not None:
        text += _export(2, settings.shadow_root.resolve(), "RW")
    return text
