"""How the CLI talks to a running daemon's admin API: its address, its token, one request.

`netboot assign`, `netboot machines` and `netboot status` use the API rather
than the files behind it, so a change made from the command line is checked,
stored, audited and put in force exactly as one made in the console. The
address and the token file come from the configuration (`admin.listen`,
`admin.token_file`) unless given; the token is sent whenever it can be read,
since a listener off loopback wants it for reads too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from netboot.config import Config, load_config
from netboot.errors import ConfigError

TOKEN_VARIABLE = "NETBOOT_ADMIN_TOKEN"  # noqa: S105 - the name of a variable


@dataclass(frozen=True, slots=True)
class AdminTarget:
    url: str
    """Base URL of the admin listener, without a trailing slash."""
    token: str | None
    token_file: Path


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any
    """The decoded JSON body; None when there was none."""


SYSTEM_CONFIG = Path("/etc/netboot/netboot.toml")
"""The configuration `netboot install-units` writes and the unit starts the daemon with."""


def load(config_file: Path | None) -> Config:
    """`config_file`, else the system's configuration when there is one, else the defaults."""
    if config_file is None and SYSTEM_CONFIG.is_file():
        config_file = SYSTEM_CONFIG
    try:
        return load_config(config_file) if config_file else Config()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def base_url(config: Config) -> str:
    """The admin listener's URL; a wildcard listener is reached on loopback."""
    listen = config.admin.listen
    if listen is None:
        raise click.ClickException("the admin listener is off (admin.listen is empty)")
    wildcards = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
    host = wildcards.get(listen.host, listen.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{listen.port}"


def target(config_file: Path | None, admin_url: str | None, token_file: Path | None) -> AdminTarget:
    """Where the daemon is and the token to show it (None when it cannot be read)."""
    from netboot.admin.token import TokenFileError, read_token

    config = load(config_file)
    url = (admin_url or base_url(config)).rstrip("/")
    file = token_file or config.admin.token_file
    token = os.environ.get(TOKEN_VARIABLE) or None
    if token is None:
        try:
            token = read_token(file)
        except TokenFileError:
            token = None
    return AdminTarget(url, token, file)


def call(target: AdminTarget, method: str, path: str, body: Any = None) -> Answer:
    """One request; ClickException (exit 1) when the daemon cannot be reached."""
    # urllib.request brings http.client and email: loaded only when asked.
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(target.url + path, data=data, method=method)  # noqa: S310
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if target.token is not None:
        request.add_header("Authorization", f"Bearer {target.token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - admin URL
            return Answer(response.status, _decoded(response.read()))
    except urllib.error.HTTPError as error:
        return Answer(error.code, _decoded(error.read()))
    except (urllib.error.URLError, OSError) as error:
        raise click.ClickException(f"no netboot daemon at {target.url}: {error}") from None


def _decoded(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


EXIT_REFUSED = 3
"""The daemon refused the change (unknown image, an image the machine cannot boot, bad input)."""
EXIT_UNAUTHORIZED = 4
"""No token, a wrong one, or too many attempts."""


def fail_unless_ok(target: AdminTarget, answer: Answer) -> None:
    """Exit with a clear message unless `answer` is a success."""
    if 200 <= answer.status < 300:
        return
    message = answer.body.get("error") if isinstance(answer.body, dict) else None
    if answer.status in (401, 403, 429):
        hint = (
            f"read the token from {target.token_file} (as a user who may), or set {TOKEN_VARIABLE}"
            if target.token is None
            else "the token was refused"
        )
        click.echo(f"error: not authorized ({answer.status}): {hint}", err=True)
        raise SystemExit(EXIT_UNAUTHORIZED)
    click.echo(f"error: {message or f'the daemon answered {answer.status}'}", err=True)
    raise SystemExit(EXIT_REFUSED if 400 <= answer.status < 500 else 1)
