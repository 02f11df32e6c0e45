"""iPXE scripts for PCs: the text that boots the image `netboot.pc.choice` chose.

Pure functions of the catalog and a few strings, so the HTTP and TFTP services
can hand out the same bytes and tests can compare them byte for byte.

Nothing from a plist may change what a script does. iPXE (`src/core/exec.c`)
splits a line into words at whitespace with no quoting, ends a command at a
word `||`, `&&` or `;`, takes a word starting with `#` as the start of a
comment, and expands `${name}` in every word. So every piece of plist text
(names, descriptions, the kernel command line) goes through `script_text()`,
which makes it one line of plain words; paths go into URLs percent-encoded,
which leaves none of those characters; and initrd image names are reduced to
a safe alphabet.

When a boot fails (a fetch error, a server being reloaded, a kernel that
returns), the script tries `BOOT_ATTEMPTS` times with a short pause, since
most such failures are transient; then it says so and leaves iPXE with a
failure status, so the firmware moves on to its next boot device (usually the
local disk). A lab PC thus never sits in a shell waiting for a keyboard, and
never reboots in a loop against a server that cannot boot it.
`no_image_script()` ends the same way.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from pathlib import PurePosixPath
from urllib.parse import quote

from netboot.pc.choice import PcImage

MAGIC = "#!ipxe"
BOOT_ATTEMPTS = 3
"""Tries of the whole kernel/initrd/boot sequence before giving up."""
RETRY_PAUSE = 5
"""Seconds between tries."""
LEAVE_PAUSE = 10
"""Seconds a final message stays on screen before iPXE exits to the firmware."""
TRIES_SETTING = "netboot-tries"
"""The iPXE setting counting tries (iPXE settings outlive one script)."""
MENU_TITLE = "netboot: choose what to boot"

_TERMINATORS = frozenset({"||", "&&", ";"})
_LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._+-]")


# -- rendering -----------------------------------------------------------------------------


def script_text(value: str) -> str:
    """`value` as plain iPXE words: one line, no `${`, no command terminator or comment.

    Line breaks and other control characters become spaces, `${` becomes
    `$ {`, a word that iPXE would read as `||`, `&&`, `;` or a comment is put
    in single quotes (iPXE has no quoting, so they are shown literally), and
    runs of whitespace become one space, as iPXE would print them anyway.
    """
    flat = "".join(
        " " if unicodedata.category(character) in _LINE_BREAKING else character
        for character in value
    )
    flat = flat.replace("${", "$ {")
    words = [
        f"'{word}'" if word in _TERMINATORS or word.startswith("#") else word
        for word in flat.split()
    ]
    return " ".join(words)


def boot_script(image: PcImage, base_url: str) -> str:
    """The script that boots `image` from files under `base_url` (`http://10.0.0.1`).

    `initrd=<name>` on the kernel line lets the Linux EFI stub find each initrd
    iPXE loaded under that name (`initrd -n`); a BIOS kernel ignores it.
    """
    _check_url(base_url)
    name = _display_name(image)
    initrds = [
        (initrd_name, file_url(base_url, image.set_path, path))
        for initrd_name, path in zip(initrd_names(image), image.initrds, strict=True)
    ]
    kernel_words = [file_url(base_url, image.set_path, image.kernel)]
    kernel_words += [f"initrd={initrd_name}" for initrd_name, _ in initrds]
    command_line = script_text(image.command_line)
    if command_line:
        kernel_words.append(command_line)
    tries = f"${{{TRIES_SETTING}}}"
    lines = [
        MAGIC,
        f"set {TRIES_SETTING}:int32 0",
        ":retry",
        f"echo Booting {name}",
        f"kernel {' '.join(kernel_words)} || goto failed",
        *(f"initrd -n {initrd_name} {url} || goto failed" for initrd_name, url in initrds),
        "boot || goto failed",
        ":failed",
        f"inc {TRIES_SETTING}",
        f"iseq {tries} {BOOT_ATTEMPTS} && goto give_up ||",
        f"echo Booting {name} failed (attempt {tries} of {BOOT_ATTEMPTS}),"
        f" trying again in {RETRY_PAUSE} seconds",
        f"sleep {RETRY_PAUSE}",
        "imgfree",
        "goto retry",
        ":give_up",
        f"echo Could not boot {name} after {BOOT_ATTEMPTS} attempts",
        *_leave(),
    ]
    return _script(lines)


def menu_script(
    images: list[PcImage],
    base_url: str,
    script_url: Callable[[PcImage], str],
    timeout: int,
    default: PcImage | None,
) -> str:
    """A menu of `images`; each item chains to the boot script at `script_url(image)`.

    `timeout` is in seconds (0: wait for a key); when it runs out, `default`
    (or the first item) boots. Escape, like the last item, leaves iPXE so the
    firmware boots its next device. `base_url` is not used by the menu itself
    (the item URLs come from `script_url`); it is checked like theirs so a
    caller passing a broken base learns it here.
    """
    _check_url(base_url)
    if timeout < 0:
        raise ValueError(f"menu timeout {timeout} is negative")
    if default is not None and default not in images:
        raise ValueError(f"default image {default.name!r} is not in the menu")
    labels = [f"img{position}" for position in range(len(images))]
    choose = ["choose"]
    if timeout:
        choose.append(f"--timeout {timeout * 1000}")
    if default is not None:
        choose.append(f"--default {labels[images.index(default)]}")
    choose.append("target && goto ${target} || goto exit")
    lines = [MAGIC, ":menu", f"menu {MENU_TITLE}"]
    for label, image in zip(labels, images, strict=True):
        text = _display_name(image)
        description = script_text(image.description or "")
        lines.append(
            f"item {label} {text} - {description}" if description else f"item {label} {text}"
        )
    lines += [
        "item --gap",
        "item shell iPXE shell",
        "item exit Exit iPXE (boot from the next device)",
        " ".join(choose),
    ]
    for label, image in zip(labels, images, strict=True):
        url = script_url(image)
        _check_url(url)
        lines += [f":{label}", f"chain {url} || goto failed"]
    lines += [
        ":shell",
        "shell",
        "goto menu",
        ":failed",
        "echo The chosen image did not boot",
        *_leave(),
        ":exit",
        "exit 1",
    ]
    return _script(lines)


def no_image_script(reason: str) -> str:
    """Say why nothing boots here, then let the firmware try its next boot device."""
    return _script([MAGIC, f"echo netboot: {script_text(reason)}", *_leave()])


def file_url(base_url: str, set_path: PurePosixPath, relative: str) -> str:
    """`base_url/<set>/<relative>` with every path segment percent-encoded.

    Encoding leaves only letters, digits and `-._~` in the path, so names with
    spaces work and no `$`, `#` or whitespace reaches iPXE.
    """
    parts = (*set_path.parts, *PurePosixPath(relative).parts)
    return base_url.rstrip("/") + "/" + "/".join(quote(part, safe="") for part in parts)


def initrd_names(image: PcImage) -> list[str]:
    """The iPXE image name of each initrd: its file name, made safe and unique.

    The name is both a word on the kernel line (`initrd=<name>`) and the
    argument of `initrd -n`, so it keeps only `A-Za-z0-9._+-` and does not
    start with `-` (iPXE would read an option). Two initrds with the same file
    name, or one named like the kernel, would replace each other in iPXE, so
    later ones get a number in front.
    """
    used = {PurePosixPath(image.kernel).name}
    names = []
    for path in image.initrds:
        base = _UNSAFE_IN_NAME.sub("_", PurePosixPath(path).name).lstrip("-") or "initrd"
        name, number = base, 1
        while name in used:
            number += 1
            name = f"{number}-{base}"
        used.add(name)
        names.append(name)
    return names


def _display_name(image: PcImage) -> str:
    return script_text(image.name) or script_text(str(image.set_path))


def _leave() -> list[str]:
    return [
        f"echo Leaving iPXE in {LEAVE_PAUSE} seconds, the firmware then tries its next boot device",
        f"sleep {LEAVE_PAUSE}",
        "exit 1",
    ]


def _check_url(url: str) -> None:
    """Refuse a URL that would not be one iPXE word.

    URLs come from our own configuration, not from plists, so `${...}` is
    allowed on purpose (`http://${next-server}/...` is a common base).
    """
    if (
        not url
        or url.startswith("-")
        or any(
            character.isspace() or unicodedata.category(character) in _LINE_BREAKING
            for character in url
        )
    ):
        raise ValueError(f"{url!r} is not usable as an iPXE URL (empty, '-' or whitespace)")


def _script(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"
