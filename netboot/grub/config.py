"""GRUB configurations for PCs booting the signed chain: the third rendering of the PC choice.

Debian's signed network GRUB (`grubnetx64.efi.signed`) reads exactly one file
from the server: `$prefix/grub.cfg`, i.e. `/grub/grub.cfg` by TFTP from the
DHCP ACK's siaddr. It does no per-MAC or per-IP lookup (its embedded config
calls `normal` with an argument, which skips GRUB's own search), so that file
is the same for every client (`GENERIC_CONFIG`): it sources the client's own
file, named from variables GRUB sets itself, `grub_cpu`-`grub_platform` (the
firmware family, e.g. `x86_64-efi`) and `net_default_mac`:
`/grub/netboot/x86_64-efi/52:54:00:77:00:10.cfg`. That file is rendered from
the catalog by `client_config` with the choice `netboot.pc.choice` makes for
the iPXE script too.

The signed GRUB has no `http` module (and may not load one under Secure
Boot), so the kernel and initrds are fetched by TFTP, by their path under the
image root (`/Demo.nbi/pc/vmlinuz`), which the TFTP service already serves.

Nothing from a plist may change what a configuration does: every word is put
in GRUB single quotes (`quote`), after control characters became spaces, so
no `$`, `;`, `#` or newline is read by GRUB's shell. A kernel command line is
split at whitespace into words, because GRUB's `linux` wraps an argument that
holds a space in double quotes for the kernel; for the same reason a `"`,
`'` or `\\` in the command line reaches the kernel with a backslash in front.

When the boot fails (a kernel refused by shim under Secure Boot prints
`error: bad shim signature.`), or nothing fits, the configuration says so and
leaves GRUB with `exit` after a pause, so the firmware tries its next boot
device, as the iPXE script does.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath

from netboot.macaddr import MacAddress, parse_mac
from netboot.nbi.catalog import Catalog
from netboot.pc.choice import (
    BootImage,
    ChoiceSettings,
    ImageMenu,
    PcImage,
    choose_pc_image,
    describe,
)

GENERIC_CONFIG_NAME = "grub/grub.cfg"
"""What GRUB asks (as `/grub/grub.cfg`): its embedded prefix is `/grub`."""
SEARCH_NAMES = re.compile(
    r"^grub/grub\.cfg-(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|01-(?:[0-9a-f]{2}-){5}[0-9a-f]{2}|[0-9A-F]{1,8})$",
    re.IGNORECASE,
)
"""The names upstream GRUB's own search asks before `grub.cfg` when its `normal` runs
without an argument (`grub_net_search_config_file()`, grub-core/net/net.c): the
client's UUID, `01-` and its MAC with dashes, then its IPv4 address in hex, shortened
one digit at a time. Debian's signed image never searches (it calls `normal` with its
memdisk's file); a GRUB that does gets the generic configuration at its first name,
which sources the client's own file, so the search ends there."""
CLIENT_CONFIG_DIRECTORY = "grub/netboot"
"""Where the per-client files live: `grub/netboot/<cpu>-<platform>/<mac>.cfg`."""
GENERIC_CONFIG = (
    "# netboot: every client reads this file; it sources the one rendered for it.\n"
    'source "${prefix}/netboot/${grub_cpu}-${grub_platform}/${net_default_mac}.cfg"\n'
)
LEAVE_PAUSE = 10
"""Seconds a final message stays on screen before GRUB exits to the firmware."""
EXIT_ENTRY = "Exit GRUB (boot from the next device)"

GRUB_TARGETS: dict[str, str] = {
    "i386-pc": "bios",
    "i386-efi": "efi-ia32",
    "x86_64-efi": "efi-x64",
    "arm-efi": "efi-arm32",
    "arm64-efi": "efi-arm64",
    "riscv32-efi": "efi-riscv32",
    "riscv64-efi": "efi-riscv64",
    "loongarch64-efi": "efi-loong64",
}
"""GRUB's `${grub_cpu}-${grub_platform}` to the firmware family."""

_CLIENT_NAME = re.compile(
    r"^grub/netboot/(?P<target>[a-z0-9_]+-[a-z]+)/(?P<mac>[0-9a-fA-F:]+)\.cfg$"
)
_LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """Who a per-client configuration name is for."""

    mac: MacAddress
    family: str


@dataclass(frozen=True, slots=True)
class GrubConfig:
    """A rendered configuration and what it does, for the log and the client's journey."""

    text: str
    summary: str
    mac: MacAddress
    image: PcImage | None = None


def is_generic_name(name: str) -> bool:
    """Whether a TFTP name (without its leading `/`) is answered with `GENERIC_CONFIG`."""
    return name == GENERIC_CONFIG_NAME or SEARCH_NAMES.match(name) is not None


def client_request(name: str) -> ClientRequest | None:
    """The client a TFTP name (without its leading `/`) asks the configuration of, if any."""
    match = _CLIENT_NAME.match(name)
    if match is None:
        return None
    family = GRUB_TARGETS.get(match["target"])
    try:
        mac = parse_mac(match["mac"])
    except ValueError:
        return None
    return ClientRequest(mac, family) if family is not None else None


def client_config_name(mac: MacAddress, target: str = "x86_64-efi") -> str:
    """The TFTP name (without `/`) GRUB asks for the client's configuration."""
    return f"{CLIENT_CONFIG_DIRECTORY}/{target}/{mac}.cfg"


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """What a configuration name is answered with, by TFTP or HTTP alike."""

    content: bytes
    summary: str
    """What it does, for the log and the client's journey."""
    mac: MacAddress | None = None
    """The client it was rendered for; None for the file that is the same for everyone."""
    image: str | None = None
    """The name of the image it boots, if it boots one."""


def config_file(catalog: Catalog, name: str, settings: ChoiceSettings) -> ConfigFile | None:
    """The configuration a request name (without its leading `/`) asks for; None when the
    name is no configuration's. The one answer for TFTP (the signed chain, whose GRUB
    reads by TFTP) and HTTP (`build-http-grub`'s GRUB under UEFI HTTP boot)."""
    if is_generic_name(name):
        return ConfigFile(GENERIC_CONFIG.encode(), "GRUB configuration for every client")
    request = client_request(name)
    if request is None:
        return None
    config = client_config(catalog, request, settings)
    image = config.image.name if config.image is not None else None
    return ConfigFile(config.text.encode(), config.summary, config.mac, image)


def client_config(catalog: Catalog, request: ClientRequest, settings: ChoiceSettings) -> GrubConfig:
    """The configuration of one client, with the image choice the iPXE script would make."""
    choice = choose_pc_image(catalog, request.mac, request.family, None, settings)
    summary = describe(choice)
    if isinstance(choice, BootImage):
        return GrubConfig(boot_config(choice.image), summary, request.mac, choice.image)
    if isinstance(choice, ImageMenu):
        text = menu_config(list(choice.images), choice.timeout, choice.default)
        return GrubConfig(text, summary, request.mac)
    return GrubConfig(no_image_config(choice.reason), summary, request.mac)


def boot_config(image: PcImage) -> str:
    """Boot `image` at once; if that fails, say so and leave GRUB."""
    name = _display_name(image)
    return _config(
        [
            f"echo {quote(f'Booting {name}')}",
            *_boot_lines(image),
            f"echo {quote(f'netboot: could not boot {name}')}",
            *_leave(),
        ]
    )


def menu_config(images: list[PcImage], timeout: int, default: PcImage | None) -> str:
    """A menu entry per image; `default` (or the first) boots after `timeout` seconds.

    0 waits for a key, as in the iPXE menu (GRUB's own 0 would boot at once).
    """
    if timeout < 0:
        raise ValueError(f"menu timeout {timeout} is negative")
    if default is not None and default not in images:
        raise ValueError(f"default image {default.name!r} is not in the menu")
    ids = [f"img{position}" for position in range(len(images))]
    chosen = ids[images.index(default)] if default is not None else ids[0] if ids else "exit"
    lines = [f"set timeout={timeout or -1}", f"set default={quote(chosen)}"]
    for entry_id, image in zip(ids, images, strict=True):
        title = _display_name(image)
        if image.description:
            title = f"{title} - {_flat(image.description)}"
        lines.append(f"menuentry {quote(title)} --id {quote(entry_id)} {{")
        lines += [f"    {line}" for line in _boot_lines(image)]
        lines.append(f"    echo {quote(f'netboot: could not boot {_display_name(image)}')}")
        lines += [f"    {line}" for line in _leave()]
        lines.append("}")
    lines += [f"menuentry {quote(EXIT_ENTRY)} --id exit {{", "    exit", "}"]
    return _config(lines)


def no_image_config(reason: str) -> str:
    """Say why nothing boots here, then let the firmware try its next boot device."""
    return _config([f"echo {quote(f'netboot: {_flat(reason)}')}", *_leave()])


def file_path(image: PcImage, relative: str) -> str:
    """The TFTP path of a file of the set, from the root of GRUB's `tftp` device."""
    return "/" + str(image.set_path / PurePosixPath(relative))


def quote(value: str) -> str:
    """`value` as one word of GRUB's shell: in single quotes, each `'` as `'\\''`.

    Inside single quotes GRUB takes every character literally (no `$`
    expansion, no `;`, no comment), up to the next `'`.
    """
    return "'" + value.replace("'", "'\\''") + "'"


def _boot_lines(image: PcImage) -> list[str]:
    kernel = [quote(file_path(image, image.kernel))]
    kernel += [quote(word) for word in _flat(image.command_line).split()]
    lines = [f"linux {' '.join(kernel)}"]
    if image.initrds:
        lines.append("initrd " + " ".join(quote(file_path(image, i)) for i in image.initrds))
    lines.append("boot")
    return lines


def _leave() -> list[str]:
    message = f"Leaving GRUB in {LEAVE_PAUSE} seconds, the firmware then tries its next boot device"
    return [
        f"echo {quote(message)}",
        f"sleep {LEAVE_PAUSE}",
        "exit",
    ]


def _flat(value: str) -> str:
    """One line: control and line-breaking characters become spaces, runs of space one."""
    return " ".join(
        "".join(
            " " if unicodedata.category(character) in _LINE_BREAKING else character
            for character in value
        ).split()
    )


def _display_name(image: PcImage) -> str:
    return _flat(image.name) or _flat(str(image.set_path))


def _config(lines: list[str]) -> str:
    return "# netboot: rendered from the catalog for this client\n" + "\n".join(lines) + "\n"
