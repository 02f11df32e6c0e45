"""Which iPXE script a `/boot.ipxe?mac=..&arch=..&image=..` request gets.

The DHCP side writes the client's MAC and architecture code into the script
URL it hands iPXE, so the HTTP request alone says who is asking: the MAC
picks the images the set's MAC lists admit, the architecture the images
built for that firmware family. `image=` (from a menu item, or typed into
the URL by an admin) or the client's `[pxe] assignments` entry names one
image, and a name that is not there is said to the client rather than
booting another; otherwise `default_image`, the catalog's default, or the
first by index boots, or a menu lists them all (`netboot.pc.choice` decides,
for the GRUB configuration too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from netboot.dhcp.pxe import ARCHITECTURES
from netboot.ipxe.script import boot_script, menu_script, no_image_script
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


@dataclass(frozen=True, slots=True)
class ScriptChoice:
    script: str
    summary: str
    """For the access log and the client's journey: which image, or why none."""
    image: PcImage | None = None
    mac: MacAddress | None = None


def script_for(
    catalog: Catalog,
    query: Mapping[bytes, Sequence[bytes]],
    base_url: str,
    script_path: str,
    settings: ChoiceSettings,
) -> ScriptChoice:
    """The script for one request; `base_url` serves the image root (`http://S:P`)."""
    mac = _mac(query)
    arch_code = _int(query, b"arch")
    arch = ARCHITECTURES.get(arch_code) if arch_code is not None else None
    family = arch.family if arch is not None else None
    choice = choose_pc_image(catalog, mac, family, _text(query, b"image"), settings)
    summary = describe(choice)
    if isinstance(choice, BootImage):
        return ScriptChoice(boot_script(choice.image, base_url), summary, choice.image, mac)
    if isinstance(choice, ImageMenu):

        def item_url(image: PcImage) -> str:
            params = {"image": image.set_name}
            if mac is not None:
                params["mac"] = mac
            if arch_code is not None:
                params["arch"] = str(arch_code)
            return f"{base_url}{script_path}?{urlencode(params)}"

        images = list(choice.images)
        script = menu_script(images, base_url, item_url, choice.timeout, choice.default)
        return ScriptChoice(script, summary, None, mac)
    return ScriptChoice(no_image_script(choice.reason), summary, None, mac)


def _text(query: Mapping[bytes, Sequence[bytes]], key: bytes) -> str | None:
    values = query.get(key)
    if not values:
        return None
    try:
        return values[0].decode("utf-8") or None
    except UnicodeDecodeError:
        return None


def _int(query: Mapping[bytes, Sequence[bytes]], key: bytes) -> int | None:
    text = _text(query, key)
    return int(text) if text is not None and text.isdigit() and len(text) <= 5 else None


def _mac(query: Mapping[bytes, Sequence[bytes]]) -> MacAddress | None:
    text = _text(query, b"mac")
    if text is None:
        return None
    try:
        return parse_mac(text.replace("-", ":"))
    except ValueError:
        return None
