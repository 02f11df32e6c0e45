"""The root path (DHCP option 17) of an ACK[SELECT]: where the Mac's image is.

* HTTP images: `http://<host>[:<port>]/<set>/<image>`, each path segment
  percent-escaped, or `<base URL>/<set>/<image>` when a base URL is configured
  (a reverse proxy, a CDN, or a web server other than ours).
* NFS images: `nfs:<host>:<export>:<set>/<image>`, colons in the export
  escaped as `\\:` (Apple's form: `nfs:192.0.2.10:/Library/NetBoot/NetBootSP0:
  HighSierra.nbi/NetBoot.dmg`). The export defaults to the image root.
* A RootPath that already names another server is used as it is (NFS ones
  get the `nfs:` prefix).
* BootFileOnly images have no root path.

`<host>` is the image's LoadBalanceServer (which serves it instead of us),
else the configured public host, else the address the request arrived on
(EFI booters do no DNS, so that is an IP literal). A base URL applies to
images we serve, not to balanced ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from netboot.http.urls import http_base
from netboot.nbi.catalog import NbiSet
from netboot.nbi.model import ImageType
from netboot.nbi.validate import RootPathForm, root_path_form


@dataclass(frozen=True, slots=True)
class RootPathSettings:
    public_host: str = ""
    """Host (an IP literal, for EFI) to put in root paths instead of our address."""
    http_port: int = 80
    http_base_url: str = ""
    """If set, HTTP root paths are this URL plus `/<set>/<image>`."""
    nfs_export: str = ""
    """The NFS export holding the image root; default: the image root's path."""


def root_path(
    nbi_set: NbiSet,
    settings: RootPathSettings,
    server_address: str,
    image_root: Path,
    load_balancer: str | None = None,
) -> str | None:
    info = nbi_set.info
    if info is None or info.image_type is ImageType.BOOT_FILE_ONLY or info.root_path is None:
        return None
    form = root_path_form(info.root_path)
    if form is RootPathForm.HTTP_REMOTE:
        return info.root_path
    if form is RootPathForm.NFS_REMOTE:
        return f"nfs:{info.root_path}"
    relative = f"{nbi_set.path}/{info.root_path}"
    host = load_balancer or settings.public_host or server_address
    if info.image_type is ImageType.HTTP:
        escaped = quote(relative)
        if settings.http_base_url and load_balancer is None:
            return f"{settings.http_base_url.rstrip('/')}/{escaped}"
        return f"{http_base(host, settings.http_port)}/{escaped}"
    export = settings.nfs_export or str(image_root.resolve())
    return f"nfs:{host}:{export.replace(':', chr(92) + ':')}:{relative}"
