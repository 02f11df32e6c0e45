"""Which image a machine boots next, as an admin decided it, and whether it may.

An assignment names a machine by MAC and an image by its BSDP image ID (the
ID `netboot images list` and `/api/images` show), or no image at all: "none"
leaves the choice to the machine (a Mac's own default, a PC's menu). The
admin API and console make them; `[pxe] assignments` in the configuration
still name PC images by name, and are shown beside them with their source.

`check_assignable` is the API's answer before anything is stored: 404 for an
ID no set has, 422 with the reason for an image this machine cannot boot (a
disabled or broken set, MAC lists that leave it out, a Mac model or firmware
the set is not built for). What the machine is comes from what it sent when
it was last seen (`MachineFacts`); a machine never seen is checked by its MAC
alone, and the protocols pass over an assigned image it turns out not to be
able to boot, as if unassigned (docs/operations.md, "Assignments").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from netboot.bsdp.policy import ineligibility
from netboot.macaddr import MacAddress
from netboot.nbi.access import mac_allowed
from netboot.nbi.catalog import SET_SUFFIX, Catalog, NbiSet


class AssignmentSource(StrEnum):
    API = "api"
    """Made through the admin API or console; kept in the state database."""
    CONFIG = "config"
    """`[pxe] assignments` in the configuration file (PC images, by name)."""


@dataclass(frozen=True, slots=True)
class Assignment:
    mac: MacAddress
    image_id: int | None
    """The image's BSDP image ID; None: no image chosen (a Mac's default, a PC's menu)."""
    changed_by: str
    """Who made it, as the audit log says it (`token`, `session 1a2b3c4d`)."""
    changed_at: float


def applied(assignments: Mapping[MacAddress, Assignment]) -> Mapping[MacAddress, int | None]:
    """What the BSDP policy and the PC choice read: MAC to image ID (None: the menu)."""
    return MappingProxyType({mac: a.image_id for mac, a in assignments.items()})


def assignment_json(
    assignment: Assignment | None,
    catalog: Catalog,
    config_name: str | None = None,
) -> dict[str, Any] | None:
    """The API's Assignment object: the API's own, else the configuration's, else None."""
    if assignment is not None:
        found = find_set(catalog, assignment.image_id) if assignment.image_id is not None else None
        return {
            "mac": assignment.mac,
            "image_id": assignment.image_id,
            "image_name": found.info.name if found is not None and found.info else None,
            "source": str(AssignmentSource.API),
            "changed_by": assignment.changed_by,
            "changed_at": assignment.changed_at,
        }
    return None if config_name is None else _config_json(None, config_name, catalog)


def assignments_json(
    stored: Mapping[MacAddress, Assignment],
    configured: Iterable[tuple[MacAddress, str]],
    catalog: Catalog,
) -> list[dict[str, Any]]:
    """Every assignment in force, by MAC: the API's, and the configuration's it does not
    override (an API assignment is tried first, so it hides the configured one)."""
    out = [assignment_json(a, catalog) for a in stored.values()]
    for mac, name in configured:
        if mac not in stored:
            out.append(_config_json(mac, name, catalog))
    return sorted((a for a in out if a is not None), key=lambda a: str(a["mac"]))


def _config_json(mac: MacAddress | None, name: str, catalog: Catalog) -> dict[str, Any]:
    found = next(
        (
            s
            for s in catalog
            if s.info is not None and name in (s.info.name, s.path.name.removesuffix(SET_SUFFIX))
        ),
        None,
    )
    return {
        "mac": mac,
        "image_id": int(found.info.image_id) if found is not None and found.info else None,
        "image_name": name,
        "source": str(AssignmentSource.CONFIG),
        "changed_by": None,
        "changed_at": None,
    }


@dataclass(frozen=True, slots=True)
class MachineFacts:
    """What a machine said about itself when it was last seen (None: it did not say)."""

    kind: str | None = None
    """`mac` (BSDP) or `pc` (PXE, iPXE, GRUB)."""
    model: str | None = None
    architecture: str | None = None
    """A Mac's BSDP architecture (`i386`, `ppc`)."""
    firmware: str | None = None
    """A PC's firmware family as the catalog names it (`bios`, `efi-x64`, ...)."""


@dataclass(frozen=True, slots=True)
class Assignable:
    nbi_set: NbiSet | None
    """The set assigned; None for "no image"."""


@dataclass(frozen=True, slots=True)
class UnknownImage:
    image_id: int


@dataclass(frozen=True, slots=True)
class CannotBoot:
    reason: str
    """Why this machine cannot boot the image, for the admin (the API's 422 error)."""


Check = Assignable | UnknownImage | CannotBoot


def find_set(catalog: Catalog, image_id: int) -> NbiSet | None:
    """The set with this image ID (enabled or not, valid or not), or None."""
    return next(
        (s for s in catalog if s.image_id is not None and int(s.image_id) == image_id), None
    )


def check_assignable(
    catalog: Catalog, mac: MacAddress, image_id: int | None, facts: MachineFacts
) -> Check:
    """Whether `mac` may be assigned `image_id` (None: no image, always fine)."""
    if image_id is None:
        return Assignable(None)
    nbi_set = find_set(catalog, image_id)
    if nbi_set is None:
        return UnknownImage(image_id)
    where = f"{nbi_set.path} ({image_id:#010x})"
    info = nbi_set.info
    if info is None or not nbi_set.is_valid:
        first = nbi_set.errors[0].render() if nbi_set.errors else "its plist does not parse"
        return CannotBoot(f"{where} is not valid: {first}")
    if not info.is_enabled:
        return CannotBoot(f"{where} is disabled")
    if facts.kind == "mac":
        reason = ineligibility(info, facts.architecture, facts.model, mac)
        return CannotBoot(f"{where} {reason}") if reason else Assignable(nbi_set)
    if not mac_allowed(info, mac):
        return CannotBoot(f"{where} does not admit {mac} (its MAC address lists)")
    if facts.kind == "pc":
        return _pc_check(nbi_set, where, facts)
    return Assignable(nbi_set)


def _pc_check(nbi_set: NbiSet, where: str, facts: MachineFacts) -> Check:
    info = nbi_set.info
    assert info is not None
    if not nbi_set.pc_bootable:
        return CannotBoot(f"{where} has no PC kernel (a Mac-only set)")
    if facts.firmware is not None and facts.firmware not in info.pc_families:
        built = ", ".join(info.pc_families)
        return CannotBoot(f"{where} is built for {built}, this PC is {facts.firmware}")
    return Assignable(nbi_set)
