"""NBImageInfo.plist: every key Apple's tools write, typed, with Apple's defaults.

`parse_image_info()` turns the plist's top-level dict into an `NBImageInfo`, or
into a list of problems naming each bad key; it never stops at the first one, so
an admin fixes a plist in one pass. Fields hold the values a server acts on (the
defaults of Apple's bootpd applied: a missing `Architectures` means PowerPC
only, a missing `Kind` means Mac OS X for NFS/HTTP images); `present_keys`
remembers which keys the file really had, so `to_plist()` gives back what was
read and keys no tool of ours knows survive in `extra`.

PC boot keys: so one catalog serves Macs (BSDP) and PCs (PXE/iPXE), a set may
also carry keys Apple's tools ignore. `PCKernel` (string) is a Linux kernel
(bzImage or EFI stub) inside the set, `PCInitrd` (string or array of strings)
its initrds, `PCCommandLine` (string) the kernel command line, and
`PCArchitectures` (array, default `bios` and `efi-x64`) the PC firmware
families that may boot it. A set with `PCKernel` is PC-bootable; it still needs
every Mac key, because the same set is offered over BSDP.

`PCKernels` (dictionary) gives further families their own kernel, so one set
boots x86-64 and arm64 PCs: each key is a family, each value a dictionary with
`Kernel` (string, required), `Initrd` (string or array) and `CommandLine`
(string; without it `PCCommandLine`), e.g. `{"efi-arm64": {"Kernel":
"pc/arm64/vmlinuz", "Initrd": "pc/arm64/initrd.gz", "CommandLine":
"console=ttyAMA0"}}`. `PCKernel` keeps meaning what it did: the kernel of the
families in `PCArchitectures`; a family may have one kernel only, so naming
one of those in `PCKernels` too is an error. A set with only `PCKernels` is
PC-bootable for exactly its families. A client whose family is not known
(an iPXE request without `arch=`) gets `PCKernel`, never a `PCKernels` pair.

Only the plist's own content is judged here; whether the files it names exist
is the catalog's business (`validate.py`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any, ClassVar

from netboot.firmware import DEFAULT_PC_FAMILIES, FAMILIES
from netboot.macaddr import MacAddress, parse_mac
from netboot.nbi.image_id import INDEX_MAX, KIND_MAX, BootImageId
from netboot.nbi.mac_models import cannot_netboot, spelled_differently
from netboot.nbi.problems import Problem, Severity
from netboot.paths import is_safe_relative

PLIST_NAME = "NBImageInfo.plist"

KNOWN_ARCHITECTURES = ("i386", "ppc", "arm")
"""What BSDP clients put in option 60 (`AAPLBSDPC/<arch>/<model>`)."""

PC_ARCHITECTURES = FAMILIES
"""PC firmware families `PCArchitectures` may name: the family names the PXE
classifier derives from option 93 (`netboot.firmware`)."""

DEFAULT_PC_ARCHITECTURES = DEFAULT_PC_FAMILIES
"""Without `PCArchitectures`: the two families almost every PC kernel boots on."""

NAME_WIRE_LIMIT = 246
"""Bytes of a name that fit in one BSDP image-list entry (docs/protocols/bsdp.md §4.2)."""


class ImageType(StrEnum):
    """How the root image reaches the client (the `Type` key)."""

    NFS = "NFS"
    HTTP = "HTTP"
    BOOT_FILE_ONLY = "BootFileOnly"


@dataclass(frozen=True, slots=True)
class PcKernelPair:
    """The files one PC family boots, paths inside the set."""

    kernel: str
    initrds: tuple[str, ...] = ()
    command_line: str | None = None
    """None: the set's `PCCommandLine` applies."""


PC_KERNEL_KEYS = ("Kernel", "Initrd", "CommandLine")
"""The keys of one `PCKernels` entry."""


class ImageKind:
    """Known values of the `Kind` key (any 0-127 is legal)."""

    MAC_OS_9 = 0
    MAC_OS_X = 1
    MAC_OS_X_SERVER = 2
    HARDWARE_DIAGNOSTICS = 3

    NAMES: ClassVar[dict[int, str]] = {
        0: "Mac OS 9",
        1: "Mac OS X",
        2: "Mac OS X Server",
        3: "Hardware Diagnostics",
    }


@dataclass(frozen=True)
class NBImageInfo:
    name: str
    index: int
    image_type: ImageType
    boot_file: str
    root_path: str | None = None
    architectures: tuple[str, ...] = ("ppc",)
    kind: int = ImageKind.MAC_OS_X
    is_install: bool = False
    is_enabled: bool = True
    is_default: bool = False
    supports_diskless: bool = False
    filter_only: bool = False
    description: str | None = None
    language: str | None = None
    enabled_system_identifiers: tuple[str, ...] = ()
    disabled_system_identifiers: tuple[str, ...] = ()
    enabled_mac_addresses: tuple[MacAddress, ...] = ()
    disabled_mac_addresses: tuple[MacAddress, ...] = ()
    load_balance_server: str | None = None
    os_version: str | None = None
    siu_image_type: str | None = None
    """`imageType`: netboot, netinstall or netrestore (System Image Utility)."""
    backward_compatible: bool | None = None
    pc_kernel: str | None = None
    """`PCKernel`: a Linux kernel inside the set, for PCs (PXE/iPXE)."""
    pc_initrds: tuple[str, ...] = ()
    """`PCInitrd`: initrds inside the set, loaded in this order."""
    pc_command_line: str | None = None
    """`PCCommandLine`: the kernel command line."""
    pc_architectures: tuple[str, ...] = DEFAULT_PC_ARCHITECTURES
    """`PCArchitectures`: the PC firmware families that may boot `pc_kernel`."""
    pc_kernels: Mapping[str, PcKernelPair] = field(default_factory=dict)
    """`PCKernels`: more families, each with its own kernel and initrds."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Keys we do not model, kept verbatim (builders add their own metadata)."""
    present_keys: frozenset[str] = frozenset()
    """The plist keys the file had; empty for an image built in code."""

    @property
    def image_id(self) -> BootImageId:
        return BootImageId(index=self.index, kind=self.kind, is_install=self.is_install)

    @property
    def pc_bootable(self) -> bool:
        """True when the set names a kernel for PCs; BSDP ignores the PC keys."""
        return self.pc_kernel is not None or bool(self.pc_kernels)

    @property
    def pc_families(self) -> tuple[str, ...]:
        """Every PC firmware family the set boots: `PCKernel`'s, then `PCKernels`'."""
        primary = self.pc_architectures if self.pc_kernel is not None else ()
        return (*primary, *(family for family in self.pc_kernels if family not in primary))

    def pc_boot(self, family: str | None) -> PcKernelPair | None:
        """What a PC of `family` boots (its command line resolved), or None: not built for it.

        A family not known (None) gets `PCKernel`: only that kernel was ever
        offered to every client, and a `PCKernels` pair is for one family alone.
        """
        pair = self.pc_kernels.get(family) if family is not None else None
        if pair is not None:
            command_line = pair.command_line
            return PcKernelPair(
                pair.kernel,
                pair.initrds,
                self.pc_command_line if command_line is None else command_line,
            )
        if self.pc_kernel is None or (family is not None and family not in self.pc_architectures):
            return None
        return PcKernelPair(self.pc_kernel, self.pc_initrds, self.pc_command_line)

    def to_plist(self) -> dict[str, Any]:
        """The top-level dict to write with plistlib.

        A key is written when the source file had it, when it is required, or
        when its value differs from Apple's default; so a parsed file comes back
        unchanged and a new image carries no noise.
        """
        out: dict[str, Any] = {}
        for spec in _SPECS:
            value = getattr(self, spec.attr)
            if (
                spec.key in self.present_keys
                or spec.required
                or (value != spec.default and value is not None)
            ):
                if value is None:
                    continue
                out[spec.key] = spec.dump(value)
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class ParsedImageInfo:
    """The outcome of reading one plist.

    `info` is None when any key is unusable; `fields` then still holds every key
    that did parse, so a listing can show a broken set's name and index.
    """

    info: NBImageInfo | None
    fields: Mapping[str, Any]
    problems: tuple[Problem, ...]


class _KeyError(Exception):
    def __init__(self, message: str, severity: Severity = Severity.ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.severity = severity


# ---------------------------------------------------------------------------
# One parser per plist type. Each returns the field value or raises _KeyError.


def _type_name(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a real",
        str: "a string",
        bytes: "data",
        list: "an array",
        dict: "a dictionary",
    }.get(type(value), type(value).__name__)


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise _KeyError(f"must be a string, not {_type_name(value)}")
    return value


def _non_empty_string(value: object) -> str:
    text = _string(value)
    if not text.strip():
        raise _KeyError("must not be empty")
    return text


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _KeyError(f"must be a boolean (<true/> or <false/>), not {_type_name(value)}")
    return value


def _integer(value: object) -> int:
    # plistlib gives bool for <true/>, and bool is an int in Python: refuse it.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _KeyError(f"must be an integer, not {_type_name(value)}")
    return value


def _index(value: object) -> int:
    index = _integer(value)
    if not 1 <= index <= INDEX_MAX:
        raise _KeyError(f"{index} is outside 1-{INDEX_MAX}")
    return index


def _kind(value: object) -> int:
    kind = _integer(value)
    if not 0 <= kind <= KIND_MAX:
        raise _KeyError(f"{kind} is outside 0-{KIND_MAX}")
    return kind


def _image_type(value: object) -> ImageType:
    text = _string(value)
    if text == "Classic":
        raise _KeyError("Type Classic (Mac OS 9 shared/private images) is not supported")
    try:
        return ImageType(text)
    except ValueError:
        allowed = ", ".join(t.value for t in ImageType)
        raise _KeyError(f"{text!r} is not one of {allowed} (case matters)") from None


def _string_array(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _KeyError(f"must be an array of strings, not {_type_name(value)}")
    for position, item in enumerate(value):
        if not isinstance(item, str):
            raise _KeyError(f"item {position} must be a string, not {_type_name(item)}")
    return tuple(value)


def _architectures(value: object) -> tuple[str, ...]:
    arches = _string_array(value)
    if not arches:
        raise _KeyError("must list at least one architecture (i386, ppc, arm)")
    return arches


def _mac_array(value: object) -> tuple[MacAddress, ...]:
    macs = []
    for position, text in enumerate(_string_array(value)):
        try:
            macs.append(parse_mac(text))
        except ValueError as error:
            raise _KeyError(f"item {position}: {error}") from None
    return tuple(macs)


_SAFE_RELATIVE = re.compile(r"[^\x00\\]+")


def _relative_file(value: object) -> str:
    text = _non_empty_string(value)
    path = PurePosixPath(text)
    if not _SAFE_RELATIVE.fullmatch(text) or path.is_absolute() or ".." in path.parts:
        raise _KeyError(f"{text!r} must be a file name inside the set (no '/', '..', NUL or '\\')")
    return text


def _set_file(value: object) -> str:
    """A path inside the set (`pc/vmlinuz`); whether it exists is validate.py's job."""
    text = _non_empty_string(value)
    if not is_safe_relative(text):
        raise _KeyError(
            f"{text!r} must be a relative path inside the set (no leading '/', '..', NUL or '\\')"
        )
    return text


def _set_files(value: object) -> tuple[str, ...]:
    """One path, or an array of paths; both forms are common in hand-written plists."""
    if isinstance(value, str):
        return (_set_file(value),)
    if not isinstance(value, list):
        raise _KeyError(f"must be a string or an array of strings, not {_type_name(value)}")
    paths = []
    for position, text in enumerate(_string_array(value)):
        try:
            paths.append(_set_file(text))
        except _KeyError as bad:
            raise _KeyError(f"item {position}: {bad.message}") from None
    return tuple(paths)


def _command_line(value: object) -> str:
    text = _string(value)
    if any(character in text for character in "\r\n\x00"):
        raise _KeyError("must be one line (no line breaks or NUL)")
    return text


def _pc_architectures(value: object) -> tuple[str, ...]:
    families = _string_array(value)
    if not families:
        raise _KeyError(f"must list at least one of {', '.join(PC_ARCHITECTURES)}")
    for position, family in enumerate(families):
        if family not in PC_ARCHITECTURES:
            raise _KeyError(
                f"item {position}: {family!r} is not one of {', '.join(PC_ARCHITECTURES)}"
            )
    return families


def _pc_kernels(value: object) -> dict[str, PcKernelPair]:
    """`PCKernels`: family -> {Kernel, Initrd, CommandLine}; each fault names the family."""
    if not isinstance(value, dict):
        raise _KeyError(f"must be a dictionary of families, not {_type_name(value)}")
    if not value:
        raise _KeyError(f"must name at least one of {', '.join(PC_ARCHITECTURES)}")
    pairs = {}
    for family, entry in value.items():
        if family not in PC_ARCHITECTURES:
            raise _KeyError(f"{family!r} is not one of {', '.join(PC_ARCHITECTURES)}")
        try:
            pairs[family] = _pc_kernel_pair(entry)
        except _KeyError as bad:
            raise _KeyError(f"{family}: {bad.message}") from None
    return pairs


def _pc_kernel_pair(entry: object) -> PcKernelPair:
    if not isinstance(entry, dict):
        raise _KeyError(f"must be a dictionary with Kernel, not {_type_name(entry)}")
    unknown = sorted(str(key) for key in entry if key not in PC_KERNEL_KEYS)
    if unknown:
        raise _KeyError(f"{unknown[0]!r} is not one of {', '.join(PC_KERNEL_KEYS)}")
    if "Kernel" not in entry:
        raise _KeyError("Kernel: missing (required)")
    parts: list[tuple[str, Callable[[object], Any]]] = [
        ("Kernel", _set_file),
        ("Initrd", _set_files),
        ("CommandLine", _command_line),
    ]
    parsed: dict[str, Any] = {}
    for key, parse in parts:
        if key in entry:
            try:
                parsed[key] = parse(entry[key])
            except _KeyError as bad:
                raise _KeyError(f"{key}: {bad.message}") from None
    return PcKernelPair(parsed["Kernel"], parsed.get("Initrd", ()), parsed.get("CommandLine"))


def _dump_pc_kernels(pairs: Mapping[str, PcKernelPair]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for family, pair in pairs.items():
        entry: dict[str, Any] = {"Kernel": pair.kernel}
        if pair.initrds:
            entry["Initrd"] = _one_or_list(pair.initrds)
        if pair.command_line is not None:
            entry["CommandLine"] = pair.command_line
        out[family] = entry
    return out


def _identity(value: Any) -> Any:
    return value


def _list(value: tuple[str, ...]) -> list[str]:
    return list(value)


def _one_or_list(value: tuple[str, ...]) -> str | list[str]:
    """One initrd is written as a string, the form people write by hand."""
    return value[0] if len(value) == 1 else list(value)


@dataclass(frozen=True)
class _Spec:
    key: str
    attr: str
    parse: Callable[[object], Any]
    default: Any = None
    required: bool = False
    dump: Callable[[Any], Any] = _identity


_SPECS: tuple[_Spec, ...] = (
    _Spec("Architectures", "architectures", _architectures, ("ppc",), dump=_list),
    _Spec("BackwardCompatible", "backward_compatible", _boolean),
    _Spec("BootFile", "boot_file", _relative_file, required=True),
    _Spec("Description", "description", _string),
    _Spec("DisabledMACAddresses", "disabled_mac_addresses", _mac_array, (), dump=_list),
    _Spec(
        "DisabledSystemIdentifiers", "disabled_system_identifiers", _string_array, (), dump=_list
    ),
    _Spec("EnabledMACAddresses", "enabled_mac_addresses", _mac_array, (), dump=_list),
    _Spec("EnabledSystemIdentifiers", "enabled_system_identifiers", _string_array, (), dump=_list),
    _Spec("FilterOnly", "filter_only", _boolean, False),
    _Spec("Index", "index", _index, required=True),
    _Spec("IsDefault", "is_default", _boolean, False),
    _Spec("IsEnabled", "is_enabled", _boolean, True),
    _Spec("IsInstall", "is_install", _boolean, False),
    _Spec("Kind", "kind", _kind, ImageKind.MAC_OS_X),
    _Spec("Language", "language", _string),
    _Spec("LoadBalanceServer", "load_balance_server", _non_empty_string),
    _Spec("Name", "name", _non_empty_string, required=True),
    _Spec(
        "PCArchitectures",
        "pc_architectures",
        _pc_architectures,
        DEFAULT_PC_ARCHITECTURES,
        dump=_list,
    ),
    _Spec("PCCommandLine", "pc_command_line", _command_line),
    _Spec("PCInitrd", "pc_initrds", _set_files, (), dump=_one_or_list),
    _Spec("PCKernel", "pc_kernel", _set_file),
    _Spec("PCKernels", "pc_kernels", _pc_kernels, {}, dump=_dump_pc_kernels),
    _Spec("RootPath", "root_path", _non_empty_string),
    _Spec("SupportsDiskless", "supports_diskless", _boolean, False),
    _Spec("Type", "image_type", _image_type, required=True, dump=str),
    _Spec("imageType", "siu_image_type", _string),
    _Spec("osVersion", "os_version", _string),
)
_SPEC_BY_KEY = {spec.key: spec for spec in _SPECS}

KNOWN_KEYS = frozenset(_SPEC_BY_KEY)


def parse_image_info(plist: object, file: PurePosixPath) -> ParsedImageInfo:
    """Judge a plist's top-level object; `file` is only used to name problems."""
    problems: list[Problem] = []

    def report(key: str, message: str, severity: Severity = Severity.ERROR) -> None:
        problems.append(Problem(file, key, message, severity))

    if not isinstance(plist, dict):
        report("-", f"the top level must be a dictionary, not {_type_name(plist)}")
        return ParsedImageInfo(None, {}, tuple(problems))

    values: dict[str, Any] = {}
    for key, raw in plist.items():
        spec = _SPEC_BY_KEY.get(key)
        if spec is None:
            continue
        try:
            values[spec.attr] = spec.parse(raw)
        except _KeyError as bad:
            report(key, bad.message, bad.severity)

    for spec in _SPECS:
        if spec.required and spec.key not in plist:
            report(spec.key, "missing (required)")

    image_type = values.get("image_type")
    _apply_type_rules(plist, values, image_type, report)
    _warn_about_content(plist, values, report)

    errors = [p for p in problems if p.severity is Severity.ERROR]
    info = None
    if not errors:
        info = NBImageInfo(
            **values,
            extra={key: value for key, value in plist.items() if key not in KNOWN_KEYS},
            present_keys=frozenset(key for key in plist if key in KNOWN_KEYS),
        )
    return ParsedImageInfo(info, values, tuple(problems))


def _apply_type_rules(
    plist: Mapping[str, Any],
    values: dict[str, Any],
    image_type: ImageType | None,
    report: Callable[..., None],
) -> None:
    """Defaults and requirements that depend on Type and Kind (Apple's nbimages.c)."""
    if image_type is ImageType.BOOT_FILE_ONLY:
        if "Kind" not in plist:
            report("Kind", "missing (required for Type BootFileOnly)")
        if values.get("supports_diskless"):
            report("SupportsDiskless", "ignored for Type BootFileOnly", Severity.WARNING)
            values["supports_diskless"] = False
    elif image_type in (ImageType.NFS, ImageType.HTTP) and "RootPath" not in plist:
        report("RootPath", f"missing (required for Type {image_type})")
    if values.get("kind") == ImageKind.HARDWARE_DIAGNOSTICS and "FilterOnly" not in plist:
        # Apple hides diagnostics images from clients that send no attribute filter.
        values["filter_only"] = True
    _check_one_kernel_per_family(plist, values, report)


def _check_one_kernel_per_family(
    plist: Mapping[str, Any], values: dict[str, Any], report: Callable[..., None]
) -> None:
    """A family in `PCKernels` must not be one `PCKernel` already boots: which would win?"""
    if "pc_kernel" not in values:
        return
    primary = values.get("pc_architectures", DEFAULT_PC_ARCHITECTURES)
    said = "PCArchitectures" if "PCArchitectures" in plist else "PCArchitectures' default"
    for family in values.get("pc_kernels", {}):
        if family in primary:
            report(
                "PCKernels",
                f"{family} already boots PCKernel ({said}: {', '.join(primary)}); "
                f"leave {family} out of one of them",
            )


def _warn_about_content(
    plist: Mapping[str, Any], values: dict[str, Any], report: Callable[..., None]
) -> None:
    if "Architectures" not in plist:
        report(
            "Architectures",
            "missing: Apple's server then offers the image to PowerPC Macs only; "
            "write <array><string>i386</string></array> for Intel Macs",
            Severity.WARNING,
        )
    for arch in values.get("architectures", ()):
        if arch not in KNOWN_ARCHITECTURES:
            report(
                "Architectures",
                f"{arch!r} is not an architecture BSDP clients report "
                f"({', '.join(KNOWN_ARCHITECTURES)})",
                Severity.WARNING,
            )
    name = values.get("name")
    if isinstance(name, str) and len(name.encode()) > NAME_WIRE_LIMIT:
        report(
            "Name",
            f"{len(name.encode())} bytes long; BSDP carries at most {NAME_WIRE_LIMIT}",
            Severity.WARNING,
        )
    if values.get("is_enabled") is False:
        report("IsEnabled", "false: the image is not offered to clients", Severity.WARNING)
    both = set(values.get("enabled_system_identifiers", ())) & set(
        values.get("disabled_system_identifiers", ())
    )
    for model in sorted(both):
        report(
            "DisabledSystemIdentifiers",
            f"{model} is also in EnabledSystemIdentifiers; the image is hidden from it",
            Severity.WARNING,
        )
    _warn_about_models(values.get("enabled_system_identifiers", ()), report)


def _warn_about_models(enabled: tuple[str, ...], report: Callable[..., None]) -> None:
    """Enabled models no Mac will boot the set as (docs/protocols/nbi.md §6)."""
    for model in enabled:
        if cannot_netboot(model):
            report(
                "EnabledSystemIdentifiers",
                f"{model} has a T2 chip and cannot NetBoot; remove it "
                "(`netboot nbi create --from-installer` leaves T2 Macs out by default)",
                Severity.WARNING,
            )
        known = spelled_differently(model)
        if known is not None:
            report(
                "EnabledSystemIdentifiers",
                f"{model} matches no Mac: identifiers are compared exactly; did you mean {known}?",
                Severity.WARNING,
            )
