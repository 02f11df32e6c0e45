"""Dropping root once the privileged ports are bound.

Started as root outside systemd (which starts us as our own user with just
the capabilities we need), the daemon binds ports 67, 69 and 80, sets up its
sockets, and then becomes `server.user` / `server.group` with no
supplementary groups before it serves a single request. setuid() from root to
another user also empties the permitted and effective capability sets, so
nothing privileged is left.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass

from netboot.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    uid: int
    group: str
    gid: int


def resolve_identity(source: str, user: str, group: str) -> Identity:
    """Look the names up now, so a typo stops the daemon before it binds anything."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(source, "server.user", f"no such user {user!r}") from None
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(source, "server.group", f"no such group {group!r}") from None
    else:
        gid = entry.pw_gid
        group = grp.getgrgid(gid).gr_name
    return Identity(user, entry.pw_uid, group, gid)


def drop_to(identity: Identity) -> None:
    """Become `identity` for good: groups first, then gid, then uid."""
    os.setgroups([])
    os.setresgid(identity.gid, identity.gid, identity.gid)
    os.setresuid(identity.uid, identity.uid, identity.uid)
    if os.geteuid() != identity.uid or os.getegid() != identity.gid:
        raise OSError(f"could not become {identity.user}:{identity.group}")
