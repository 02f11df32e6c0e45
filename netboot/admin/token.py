"""The admin token: one secret in one file, made once, readable by its owner only.

The daemon makes it on first start (`admin.token_file`) and `netboot
admin-token` prints it, so an admin never has to invent, type or configure a
secret. It is written whole or not at all (a temporary file linked into place,
which fails if another process got there first), with mode 0600 from the
start, and a token file others can read is refused the way ssh refuses a
private key: a secret that every local user could copy protects nothing.
"""

from __future__ import annotations

import os
import secrets
import stat
from contextlib import suppress
from pathlib import Path

from netboot.errors import NetbootError

TOKEN_BYTES = 32
"""256 bits of randomness: guessing is hopeless even without the rate limit."""


class TokenFileError(NetbootError):
    """The token file cannot be used; names it, since the admin must act on it."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def read_token(path: Path) -> str:
    """The token in `path`; TokenFileError when it is missing, empty or readable by others."""
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            text = handle.read(4096)
    except FileNotFoundError:
        raise TokenFileError(
            path, "no admin token yet (the daemon makes it on its first start)"
        ) from None
    except OSError as error:
        raise TokenFileError(path, f"cannot be read: {error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenFileError(
            path, f"is readable by others (mode {stat.S_IMODE(mode):04o}); chmod 600 it"
        )
    token = text.decode("ascii", "replace").strip()
    if len(token) < 16 or not token.isprintable() or " " in token:
        raise TokenFileError(path, "does not hold a token (at least 16 printable characters)")
    return token


def ensure_token(path: Path) -> str:
    """The token in `path`, made first if there is none (mode 0600, written whole)."""
    if path.exists():
        return read_token(path)
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(temporary, flags, 0o600)
    except OSError as error:
        raise TokenFileError(path, f"cannot be created: {error.strerror}") from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secrets.token_urlsafe(TOKEN_BYTES).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        with suppress(FileExistsError):  # another process made it meanwhile: use theirs
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return read_token(path)
