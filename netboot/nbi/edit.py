"""Changing an NBImageInfo.plist in place, safely: `netboot nbi enable|disable|edit`.

An edit is read, applied, judged and only then published: the new plist is
written to a temporary file beside the old one, parsed back with the same
rules the server uses (`model.parse_image_info`) and checked against the
files of the set (`validate.check_set_files`), and renamed over the old one
only when it has no errors. A failed edit leaves the set exactly as it was;
the server, which rescans the root, never sees a half-written plist.

Two editors at once (two `netboot nbi edit` runs, the admin API's threads, a
mix) are serialised per set: `update_set` takes an exclusive `flock(2)` on the
set's directory itself, then reads the plist, applies, judges, writes (temp
file, fsync, rename, fsync of the directory) and only then lets go. Without
it each would read the same old plist and the last rename would silently drop
the other's change (a lost update), though no plist would ever be torn.
Why the directory and not a lock file: a lock file would be a new file in the
set, served by TFTP and HTTP, walked by the validator, left behind forever
(removing a lock file is itself racy), and a set on a read-only mount could
not get one; the plist itself cannot carry the lock, as each edit renames a
new inode over it. A directory opened read-only can be flocked on Linux, the
set directory is never replaced by an edit, `flock` locks belong to the open
file description (so two threads of one process exclude each other, where
POSIX `lockf` locks would not), and the kernel drops the lock when its holder
dies. It is advisory: an admin's text editor does not take it; only our
editors exclude each other. NFS-mounted image roots may refuse `flock` on a
directory; the edit then fails with that error and writes nothing.

Values given on the command line are typed by the key: booleans accept
true/false/yes/no/1/0, integers decimal, arrays a comma- or space-separated
list (model identifiers, which contain commas, space-separated only), and
`KEY=` (nothing after `=`) removes the key. Unknown keys are kept as strings,
as Apple's tools keep keys they do not know. `PCKernels`, a dictionary, is
edited a field at a time: `PCKernels.efi-arm64.Kernel=...`, and
`PCKernels.efi-arm64=` removes that family's pair.
"""

from __future__ import annotations

import copy
import fcntl
import os
import plistlib
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from netboot.errors import ImageError
from netboot.nbi.catalog import find_set_directories
from netboot.nbi.model import PC_KERNEL_KEYS, PLIST_NAME, parse_image_info
from netboot.nbi.problems import Problem, Severity
from netboot.nbi.validate import check_set_files

BOOLEAN_KEYS = frozenset(
    {
        "BackwardCompatible",
        "FilterOnly",
        "IsDefault",
        "IsEnabled",
        "IsInstall",
        "SupportsDiskless",
    }
)
INTEGER_KEYS = frozenset({"Index", "Kind"})
ARRAY_KEYS = frozenset(
    {
        "Architectures",
        "DisabledMACAddresses",
        "DisabledSystemIdentifiers",
        "EnabledMACAddresses",
        "EnabledSystemIdentifiers",
        "PCArchitectures",
        "PCInitrd",
    }
)
MODEL_KEYS = frozenset({"EnabledSystemIdentifiers", "DisabledSystemIdentifiers"})
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def typed_value(key: str, text: str) -> Any:
    """The plist value `text` means for `key`; ValueError saying why not."""
    if key in BOOLEAN_KEYS:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"{key} takes true or false, not {text!r}")
    if key in INTEGER_KEYS:
        try:
            return int(text, 10)
        except ValueError:
            raise ValueError(f"{key} takes an integer, not {text!r}") from None
    if key in MODEL_KEYS:
        return text.split()  # model identifiers have commas in them: iMac18,3
    if key in ARRAY_KEYS:
        return [item for item in text.replace(",", " ").split() if item]
    return text


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` words to {key: typed value}; None means "remove the key".

    A dictionary key is reached into with dots (`DICTIONARY_KEYS`):
    `PCKernels.efi-arm64.Kernel=pc/efi-arm64/vmlinuz` sets one field of one entry,
    `PCKernels.efi-arm64=` removes the entry; `nested_changes` applies them.
    """
    changes: dict[str, Any] = {}
    for word in assignments:
        key, equals, text = word.partition("=")
        if not equals or not key:
            raise ValueError(f"{word!r} is not KEY=VALUE")
        if "." in key:
            changes[key] = _entry_value(key, text)
        else:
            changes[key] = None if text == "" else typed_value(key, text)
    return changes


DICTIONARY_KEYS: dict[str, tuple[str, ...]] = {"PCKernels": PC_KERNEL_KEYS}
"""The keys whose value is a dictionary of entries, each with these fields."""
ARRAY_FIELDS = frozenset({"Initrd"})
"""Entry fields that take a list (comma- or space-separated), as `PCInitrd` does."""


def _entry_value(key: str, text: str) -> Any:
    """The value of a dotted assignment (`KEY.ENTRY.FIELD` or `KEY.ENTRY=`)."""
    top, _, rest = key.partition(".")
    entry, dotted, field = rest.partition(".")
    if top not in DICTIONARY_KEYS:
        known = ", ".join(DICTIONARY_KEYS)
        raise ValueError(f"{key}: only {known} takes KEY.ENTRY.FIELD")
    fields = DICTIONARY_KEYS[top]
    if not entry or (dotted and field not in fields):
        raise ValueError(f"{key}: want {top}.ENTRY.FIELD, FIELD one of {', '.join(fields)}")
    if text == "":
        return None
    if not dotted:
        raise ValueError(f"{key}= only removes the entry; set its fields as {key}.FIELD=...")
    if field in ARRAY_FIELDS:
        return [item for item in text.replace(",", " ").split() if item]
    return text


def nested_changes(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`changes` with every dotted key folded into its dictionary's new whole value.

    Pure: `current` is the plist as read under the lock. An entry or a dictionary
    left empty is removed, so `PCKernels.efi-arm64=` on the last pair removes
    `PCKernels` itself. A dictionary key that is not a dictionary now is replaced.
    """
    folded: dict[str, Any] = {}
    for key, value in changes.items():
        top, dotted, rest = key.partition(".")
        if not dotted:
            folded[key] = value
            continue
        base = folded.get(top, current.get(top))
        table = copy.deepcopy(base) if isinstance(base, dict) else {}
        entry, field_dot, field = rest.partition(".")
        if not field_dot:
            table.pop(entry, None)
        else:
            fields = table.get(entry)
            fields = dict(fields) if isinstance(fields, dict) else {}
            if value is None:
                fields.pop(field, None)
            else:
                fields[field] = value
            if fields:
                table[entry] = fields
            else:
                table.pop(entry, None)
        folded[top] = table or None
    return folded


def set_location(set_dir: Path) -> tuple[Path, PurePosixPath]:
    """The image root and the set's path under it (a sharepoint counts as part of the path)."""
    set_dir = set_dir.resolve()
    if not set_dir.name.endswith(".nbi") or not (set_dir / PLIST_NAME).is_file():
        raise ImageError(str(set_dir), "-", f"is not an NBI set (no {PLIST_NAME})")
    parent = set_dir.parent
    if parent.name.startswith("NetBootSP"):
        return parent.parent, PurePosixPath(parent.name, set_dir.name)
    return parent, PurePosixPath(set_dir.name)


def read_plist(set_dir: Path) -> dict[str, Any]:
    file = set_dir / PLIST_NAME
    try:
        with file.open("rb") as handle:
            loaded = plistlib.load(handle)
    except (OSError, plistlib.InvalidFileException, ValueError) as error:
        raise ImageError(str(file), "-", f"cannot be read: {error}") from None
    if not isinstance(loaded, dict):
        raise ImageError(str(file), "-", "the top level is not a dictionary")
    return loaded


PlistChanges = Mapping[str, Any]
"""Key -> new value for an NBImageInfo.plist; a None value removes the key."""


def edit_set(set_dir: Path, changes: PlistChanges) -> list[Problem]:
    """Apply `changes` (None removes a key); returns the warnings of the result.

    Raises ImageError naming the file, the key and the problem when the edited
    plist would not be valid; nothing is written then.
    """
    return update_set(set_dir, lambda _current: changes)


def update_set(set_dir: Path, decide: Callable[[dict[str, Any]], PlistChanges]) -> list[Problem]:
    """Read-modify-write under the set's lock: `decide` gets the current plist
    (a copy, read once the lock is held) and returns the changes to apply.

    So a change computed from the current content (add one MAC to a list) never
    loses another editor's change made in between. Raises ImageError as
    `edit_set` does; nothing is written then.
    """
    root, set_path = set_location(set_dir)
    with set_lock(set_dir):
        plist = read_plist(set_dir)
        binary = (set_dir / PLIST_NAME).read_bytes().startswith(b"bplist")
        for key, value in decide(copy.deepcopy(plist)).items():
            if value is None:
                plist.pop(key, None)
            else:
                plist[key] = value
        problems = judge(root, set_path, plist)
        errors = [p for p in problems if p.severity is Severity.ERROR]
        if errors:
            first = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise ImageError(str(set_dir / PLIST_NAME), first.key, first.message + more)
        write_plist_atomically(set_dir / PLIST_NAME, plist, binary=binary)
    return [p for p in problems if p.severity is not Severity.ERROR]


@contextmanager
def set_lock(set_dir: Path) -> Iterator[None]:
    """Hold an exclusive flock on the set's directory (see the module docstring)."""
    try:
        descriptor = os.open(set_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise ImageError(str(set_dir), "-", f"cannot be opened: {error.strerror}") from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except OSError as error:
            raise ImageError(
                str(set_dir), "-", f"cannot be locked for editing: {error.strerror}"
            ) from None
        yield
    finally:
        os.close(descriptor)  # closing the last descriptor releases the lock


def judge(root: Path, set_path: PurePosixPath, plist: dict[str, Any]) -> list[Problem]:
    """Every problem the server would find in this plist for this set."""
    parsed = parse_image_info(plist, set_path / PLIST_NAME)
    problems = list(parsed.problems)
    if parsed.info is not None:
        problems += check_set_files(root, set_path, parsed.info).problems
    return problems


def write_plist_atomically(file: Path, plist: dict[str, Any], binary: bool = False) -> None:
    """Write beside the target, flush to disk, rename over it: all or nothing.

    The directory is flushed after the rename too, so after a crash the plist
    is the new one or the old one, never a missing one.
    """
    handle, temporary = tempfile.mkstemp(prefix=f".{file.name}.", dir=file.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            plistlib.dump(plist, out, fmt=plistlib.FMT_BINARY if binary else plistlib.FMT_XML)
            out.flush()
            os.fsync(out.fileno())
        Path(temporary).chmod(0o644)
        Path(temporary).replace(file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(file.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def set_default(set_dir: Path) -> list[Path]:
    """Make this set the default and every other set of its root not; returns those changed.

    Several defaults are a validation error (the server takes the first), so
    the command that sets one clears the rest; each plist is edited safely.
    """
    root, set_path = set_location(set_dir)
    changed = []
    edit_set(set_dir, {"IsDefault": True})
    for other in find_set_directories(root):
        if other == set_path:
            continue
        other_dir = root / other
        try:
            plist = read_plist(other_dir)
        except ImageError:
            continue  # a broken set is the validator's business, not ours
        if plist.get("IsDefault") is True:
            edit_set(other_dir, {"IsDefault": False})
            changed.append(other_dir)
    return changed
