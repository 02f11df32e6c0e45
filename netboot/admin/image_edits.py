"""What a `PATCH /api/images/{id}` body may change in a set's NBImageInfo.plist.

`plan_image_edit(body)` turns the JSON body into the plist changes
`netboot.nbi.edit.edit_set` applies (the same validated, atomic, locked edit
`netboot nbi edit` makes), or into an `EditRefused` naming the body key and
what is wrong with it. Only the safe keys are accepted: whether the set is
offered (`is_enabled`), whether it is the default (`is_default`), its name and
description, and the model and MAC lists that decide who may boot it. Keys
that decide *what files* a set serves or *which image* it is (`Index`,
`RootPath`, `BootFile`, `Type`, `PCKernel`, ...) are refused, in either
spelling: a browser session must not be able to point a set at other files.
An empty list removes its key (a set with no `EnabledMACAddresses` admits
every MAC). Whether the result is a valid set is `edit_set`'s judgement, made
with the server's own rules (an empty name, say, is refused there).

Refusal reasons map onto the API's statuses: `RefusalReason.CONFLICT` means
the edit would make a set invalid (422); every other reason is a bad body (400).

The default image. `is_default: true` writes `IsDefault` true on this set
only, as `netboot nbi edit SET IsDefault=true` does; other sets are never
cleared behind the admin's back (`netboot nbi set-default` clears them, and
says so). Apple's bsdpd tolerates several defaults and BSDP's LIST orders
them (`netboot.bsdp.policy.in_list_order`: defaults first, unrestricted
defaults before those limited by `EnabledSystemIdentifiers`, then catalog
order) and announces the first set the Mac may boot as its default. This
catalog, however, lets only one *enabled* set be the default
(`netboot.nbi.validate.check_conflicts`): every later claimant gets an error
and is not served at all. So `default_conflict(catalog, nbi_set, edit)`
refuses (CONFLICT) an edit that would make a second enabled default, naming
the set that already is one; the admin clears that one first. Two admins
setting two defaults at the same instant can still both pass this check (the
lock is per set, not per root): the catalog then reports the conflict, as it
does for a hand edit.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from netboot.macaddr import parse_mac
from netboot.nbi.catalog import Catalog, NbiSet
from netboot.nbi.model import KNOWN_KEYS, NBImageInfo
from netboot.nbi.problems import Problem
from netboot.nbi.validate import check_conflicts

_NOT_TEXT = frozenset({"Cc", "Cs"})
"""Unicode categories no name or description holds: controls, lone surrogates."""

PlistValue = bool | str | tuple[str, ...]
"""What one safe key holds: a boolean, a string or a list of strings."""


class RefusalReason(StrEnum):
    NOT_AN_OBJECT = "not an object"
    EMPTY = "empty"
    UNKNOWN_KEY = "unknown key"
    UNSAFE_KEY = "not editable through the API"
    WRONG_TYPE = "wrong type"
    BAD_VALUE = "bad value"
    CONFLICT = "conflict"
    """The edit would make a set invalid (a second enabled default)."""


@dataclass(frozen=True)
class EditRefused:
    """Why a body cannot be applied; `key` is the body key at fault (None: the body)."""

    reason: RefusalReason
    key: str | None
    problem: str

    @property
    def message(self) -> str:
        """For people (the API's `{"error": ...}`): `<key>: <problem>`."""
        return f"{self.key}: {self.problem}" if self.key is not None else self.problem


@dataclass(frozen=True)
class ImageEdit:
    """Plist key -> new value; None removes the key. Keys are the plist's own."""

    changes: tuple[tuple[str, PlistValue | None], ...]

    def plist_changes(self) -> dict[str, Any]:
        """The mapping `edit_set` takes (lists as plistlib and the model want them)."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in self.changes
        }

    def value(self, plist_key: str) -> PlistValue | None:
        """The new value of `plist_key` (None when removed or not changed)."""
        return dict(self.changes).get(plist_key)

    def changes_key(self, plist_key: str) -> bool:
        return any(key == plist_key for key, _ in self.changes)


class _BadValueError(Exception):
    """Raised by a value's check; `plan_image_edit` turns it into an EditRefused."""

    def __init__(self, reason: RefusalReason, problem: str) -> None:
        super().__init__(problem)
        self.reason = reason
        self.problem = problem


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _BadValueError(
            RefusalReason.WRONG_TYPE, f"must be true or false, not {_json_type(value)}"
        )
    return value


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise _BadValueError(RefusalReason.WRONG_TYPE, f"must be a string, not {_json_type(value)}")
    return value


def _line(value: object) -> str:
    """One line of text: no control characters (an XML plist cannot even hold most)."""
    return _text(value, allowed="")


def _paragraph(value: object) -> str:
    """Text that may run over lines and hold tabs."""
    return _text(value, allowed="\t\n")


def _text(value: object, allowed: str) -> str:
    text = _string(value)
    for position, character in enumerate(text):
        if character not in allowed and unicodedata.category(character) in _NOT_TEXT:
            raise _BadValueError(
                RefusalReason.BAD_VALUE,
                f"character {position} ({character!r}) is a control character or half a "
                "surrogate pair, not text",
            )
    return text


def _strings(value: object) -> list[str]:
    if not isinstance(value, list):
        raise _BadValueError(
            RefusalReason.WRONG_TYPE, f"must be a list of strings, not {_json_type(value)}"
        )
    for position, item in enumerate(value):
        if not isinstance(item, str):
            raise _BadValueError(
                RefusalReason.WRONG_TYPE,
                f"item {position} must be a string, not {_json_type(item)}",
            )
    return value


def _models(value: object) -> tuple[str, ...]:
    """Model identifiers (`iMac18,3`): compared exactly, so no blanks in them."""
    models = [_line(item) for item in _strings(value)]
    for position, model in enumerate(models):
        if not model or any(c.isspace() for c in model):
            raise _BadValueError(
                RefusalReason.BAD_VALUE,
                f"item {position}: {model!r} is not a model identifier (such as iMac18,3)",
            )
    return _no_repeats(models, models)


def _macs(value: object) -> tuple[str, ...]:
    """MACs as ether_aton reads them, stored in the canonical form."""
    texts = _strings(value)
    canonical = []
    for position, text in enumerate(texts):
        try:
            canonical.append(str(parse_mac(text)))
        except ValueError as error:
            raise _BadValueError(RefusalReason.BAD_VALUE, f"item {position}: {error}") from None
    return _no_repeats(canonical, texts)


def _no_repeats(items: list[str], as_given: list[str]) -> tuple[str, ...]:
    first_at: dict[str, int] = {}
    for position, item in enumerate(items):
        if item in first_at:
            earlier = first_at[item]
            raise _BadValueError(
                RefusalReason.BAD_VALUE,
                f"item {position} ({as_given[position]!r}) repeats item {earlier} "
                f"({as_given[earlier]!r})",
            )
        first_at[item] = position
    return tuple(items)


@dataclass(frozen=True)
class _SafeKey:
    plist_key: str
    parse: Callable[[object], PlistValue]
    empty_removes: bool = False


SAFE_KEYS: Mapping[str, _SafeKey] = {
    "is_enabled": _SafeKey("IsEnabled", _boolean),
    "is_default": _SafeKey("IsDefault", _boolean),
    "name": _SafeKey("Name", _line),
    "description": _SafeKey("Description", _paragraph),
    "enabled_system_identifiers": _SafeKey("EnabledSystemIdentifiers", _models, True),
    "disabled_system_identifiers": _SafeKey("DisabledSystemIdentifiers", _models, True),
    "enabled_mac_addresses": _SafeKey("EnabledMACAddresses", _macs, True),
    "disabled_mac_addresses": _SafeKey("DisabledMACAddresses", _macs, True),
}
"""Body key -> the plist key it writes and how its JSON value is checked."""

_MODEL_FIELDS = frozenset(f.name for f in dataclasses.fields(NBImageInfo))
_UNSAFE_KEYS = frozenset(
    key.casefold() for key in KNOWN_KEYS | _MODEL_FIELDS | {"id", "type", "path"}
) - set(SAFE_KEYS)
"""Plist keys and their snake_case names outside the safe set (case folded): refused as such."""


def plan_image_edit(body: object) -> ImageEdit | EditRefused:
    """The plist changes a PATCH body asks for, or the first thing wrong with it."""
    if not isinstance(body, dict):
        return EditRefused(
            RefusalReason.NOT_AN_OBJECT,
            None,
            f"the body must be a JSON object, not {_json_type(body)}",
        )
    if not body:
        return EditRefused(
            RefusalReason.EMPTY, None, f"nothing to change: give any of {', '.join(SAFE_KEYS)}"
        )
    changes: list[tuple[str, PlistValue | None]] = []
    for key, value in body.items():
        safe = SAFE_KEYS.get(key)
        if safe is None:
            return _refuse_key(str(key))
        try:
            parsed = safe.parse(value)
        except _BadValueError as refusal:
            return EditRefused(refusal.reason, key, refusal.problem)
        changes.append((safe.plist_key, None if safe.empty_removes and not parsed else parsed))
    return ImageEdit(tuple(changes))


def _refuse_key(key: str) -> EditRefused:
    if key.casefold() in _UNSAFE_KEYS:
        return EditRefused(
            RefusalReason.UNSAFE_KEY,
            key,
            "cannot be changed through the API (it decides what the set is or serves; "
            "use `netboot nbi edit` on the server)",
        )
    return EditRefused(
        RefusalReason.UNKNOWN_KEY, key, f"unknown key; the keys are {', '.join(SAFE_KEYS)}"
    )


def default_conflict(catalog: Catalog, nbi_set: NbiSet, edit: ImageEdit) -> EditRefused | None:
    """CONFLICT when `edit` on `nbi_set` would make a second enabled default.

    The catalog's own rule (`check_conflicts`) is run on the claims as they
    would be after the edit; a refusal names the set(s) already the default.
    """
    claim = nbi_set.claim
    fields = nbi_set.parsed.fields
    is_default = _after(edit, "IsDefault", fields.get("is_default", False))
    is_enabled = _after(edit, "IsEnabled", fields.get("is_enabled", True))
    wanted = replace(claim, is_default=is_default and is_enabled)
    if not wanted.is_default or claim.is_default:
        return None
    claims = [s.claim for s in catalog.sets]
    before = _default_problems(check_conflicts(claims))
    after = _default_problems(
        check_conflicts([wanted if c.set_path == nbi_set.path else c for c in claims])
    )
    if after <= before:
        return None
    holders = [str(c.set_path) for c in claims if c.is_default and c.set_path != nbi_set.path]
    key = "is_default" if edit.value("IsDefault") is True else "is_enabled"
    return EditRefused(
        RefusalReason.CONFLICT,
        key,
        f"the default image is already {', '.join(holders)}; only one enabled set may be "
        "the default (set is_default to false there first)",
    )


def _after(edit: ImageEdit, plist_key: str, current: object) -> bool:
    return bool(edit.value(plist_key)) if edit.changes_key(plist_key) else bool(current)


def _default_problems(
    conflicts: Mapping[PurePosixPath, list[Problem]],
) -> set[tuple[PurePosixPath, str]]:
    return {
        (path, problem.message)
        for path, problems in conflicts.items()
        for problem in problems
        if problem.key == "IsDefault"
    }


def image_json(nbi_set: NbiSet, root_label: str | None = None) -> dict[str, Any]:
    """The API's Image object: `netboot images list --json`'s summary, whether the
    set is served, and the model and MAC lists the console edits."""
    fields = nbi_set.parsed.fields
    return {
        **nbi_set.summary(root_label),
        "servable": nbi_set.is_servable,
        **{
            body_key: [str(item) for item in fields.get(body_key, ())]
            for body_key in (
                "enabled_system_identifiers",
                "disabled_system_identifiers",
                "enabled_mac_addresses",
                "disabled_mac_addresses",
            )
        },
    }


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
