"""Which PC image a machine boots: one decision, rendered as an iPXE script or a GRUB config.

A PC reaches the catalog by two paths - iPXE fetching `/boot.ipxe`, and the
signed shim -> GRUB chain reading its configuration by TFTP - and both must
offer the same images: the servable PC-bootable sets the machine's MAC is
admitted to, built for its firmware family, the default first. Which one
boots is decided here once (`choose_pc_image`): an image asked for by name
(a menu item, `[pxe] assignments`) or nothing if that name is not there,
else a menu of them all when `[pxe] menu` is on, else `default_image`, the
catalog's default or the first by index. The renderers (`netboot.ipxe`,
`netboot.grub`) only write the outcome in their own language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from netboot.macaddr import MacAddress
from netboot.nbi.access import mac_allowed
from netboot.nbi.catalog import SET_SUFFIX, Catalog
from netboot.nbi.model import NBImageInfo


@dataclass(frozen=True, slots=True)
class PcImage:
    """One PC-bootable image as a renderer needs it; paths are relative to the set."""

    name: str
    image_id: int
    """The set's BSDP image ID: what the admin API assigns by."""
    set_path: PurePosixPath
    """The set's directory under the image root (`Demo.nbi`, `NetBootSP0/X.nbi`)."""
    index: int
    is_default: bool
    kernel: str
    initrds: tuple[str, ...]
    command_line: str
    architectures: tuple[str, ...]
    """Every family the set boots (`PCArchitectures` and the `PCKernels` families)."""
    description: str | None

    @property
    def set_name(self) -> str:
        """The set's directory name without `.nbi`, a name that is stable across renames."""
        return self.set_path.name.removesuffix(SET_SUFFIX)


@dataclass(frozen=True, slots=True)
class ChoiceSettings:
    """The `[pxe]` options that pick a PC's image."""

    default_image: str = ""
    menu: bool = False
    menu_timeout: int = 10
    assignments: Mapping[str, str] = field(default_factory=dict)
    """MAC to the image that client boots (`[pxe] assignments`)."""
    assigned: Mapping[MacAddress, int | None] = field(default_factory=dict)
    """MAC to the image ID the admin API assigned (None: the menu); before `assignments`."""


@dataclass(frozen=True, slots=True)
class BootImage:
    """Boot this image."""

    image: PcImage


@dataclass(frozen=True, slots=True)
class ImageMenu:
    """Let the user pick among `images`; `default` boots after `timeout` seconds (0: wait)."""

    images: tuple[PcImage, ...]
    default: PcImage | None
    timeout: int


@dataclass(frozen=True, slots=True)
class NoImage:
    """Nothing to boot here; `reason` is said to the client."""

    reason: str


PcChoice = BootImage | ImageMenu | NoImage


def choose_pc_image(
    catalog: Catalog,
    mac: MacAddress | None,
    family: str | None,
    requested: str | None,
    settings: ChoiceSettings,
) -> PcChoice:
    """What this machine boots; `requested` is an image name the request itself carries.

    A name in the request (a menu item) wins; then the admin API's assignment for
    the MAC (an image it may boot, or the menu), then `[pxe] assignments`. An
    assigned image this machine may not boot (disabled, removed, built for other
    firmware) is passed over as if unassigned.
    """
    images = pc_images(catalog, mac, family)
    if not images:
        who = f"{mac or 'this client'} ({family or 'any firmware'})"
        return NoImage(f"no PC-bootable image in the catalog for {who}")
    if requested is None and mac is not None and mac in settings.assigned:
        wanted = settings.assigned[mac]
        if wanted is None:
            default = choose_image(images, settings.default_image or None)
            return ImageMenu(tuple(images), default, settings.menu_timeout)
        assigned = next((image for image in images if image.image_id == wanted), None)
        if assigned is not None:
            return BootImage(assigned)
    requested = requested or (settings.assignments.get(mac) if mac else None)
    if settings.menu and requested is None:
        default = choose_image(images, settings.default_image or None)
        return ImageMenu(tuple(images), default, settings.menu_timeout)
    if requested is not None and not any(requested in (i.name, i.set_name) for i in images):
        return NoImage(f"no PC-bootable image {requested!r} for {mac or 'this client'}")
    image = choose_image(images, requested or settings.default_image or None)
    assert image is not None  # images is not empty
    return BootImage(image)


def describe(choice: PcChoice) -> str:
    """For the logs and the client's journey: which image, or why none."""
    if isinstance(choice, BootImage):
        return f"boot {choice.image.name!r}"
    if isinstance(choice, ImageMenu):
        return f"menu of {len(choice.images)} image(s)"
    return choice.reason


def pc_images(catalog: Catalog, mac: MacAddress | None, family: str | None) -> list[PcImage]:
    """The images this PC may boot: default first, then by Index.

    Servable (valid and enabled) sets with a PC kernel for the firmware
    `family` (`bios`, `efi-x64`, `efi-arm64`, ...), admitted by their MAC
    lists; each image carries that family's kernel, initrds and command line
    (`NBImageInfo.pc_boot`), so a set with an x86-64 and an arm64 kernel gives
    each PC its own and a set without one for the family is not offered at
    all. A family not known gets `PCKernel`. Without a MAC (a request that did
    not say) a set restricted to listed MACs is left out: it cannot be shown
    to admit this client.
    """
    images = []
    for nbi_set in catalog.servable:
        info = nbi_set.info
        if info is None or not nbi_set.pc_bootable:
            continue
        if not _admits(info, mac):
            continue
        boot = info.pc_boot(family)
        if boot is None:
            continue
        images.append(
            PcImage(
                name=info.name,
                image_id=int(info.image_id),
                set_path=nbi_set.path,
                index=info.index,
                is_default=info.is_default,
                kernel=boot.kernel,
                initrds=boot.initrds,
                command_line=boot.command_line or "",
                architectures=info.pc_families,
                description=info.description,
            )
        )
    return sorted(images, key=lambda image: (not image.is_default, image.index))


def _admits(info: NBImageInfo, mac: MacAddress | None) -> bool:
    if mac is None:
        return not info.enabled_mac_addresses
    return mac_allowed(info, mac)


def choose_image(images: list[PcImage], requested: str | None) -> PcImage | None:
    """The requested image, else the default, else the first; None when there is none.

    `requested` matches an image's name or its set's directory name without
    `.nbi` exactly. A name that matches nothing (a set renamed or disabled
    since the client was configured) falls back to the default like no name.
    """
    if requested is not None:
        for image in images:
            if requested in (image.name, image.set_name):
                return image
    default = next((image for image in images if image.is_default), None)
    if default is not None:
        return default
    return images[0] if images else None
