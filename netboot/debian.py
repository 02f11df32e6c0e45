"""Files from Debian's packages, taken without installing the packages.

`apt-get download` fetches the `.deb` files into a scratch directory and
`dpkg-deb -x` unpacks them there; no maintainer script runs, so nothing on
the host changes. That matters for the files we serve: shim-signed's
postinst reinstalls the boot loader of a UEFI host, and a kernel package
writes to /boot. The unpacked tree is then moved into place file by file
with a rename each, so a reader never sees a file half written and an
interrupted fetch leaves the old files whole.

Packages of another architecture (arm64 on an amd64 server) come the same way
through a private apt state (`ForeignApt`): its own sources list (the host's
sources, restricted to that architecture), lists, cache and an empty dpkg
status, all under one cache directory. The host's dpkg architectures and apt
lists are never touched, so no `dpkg --add-architecture` is needed.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from netboot.errors import ImageError

TOOLS = ("apt-get", "dpkg-deb")


HOST_SOURCES = Path("/etc/apt")
"""Where the host's apt sources are: `sources.list` and `sources.list.d/*.list|*.sources`."""
FOREIGN_APT_CACHE = Path("/var/cache/netboot")
"""`apt-<arch>` under it holds a foreign architecture's private apt state."""


@dataclass(frozen=True, slots=True)
class ForeignApt:
    """A private apt state for packages of `architecture`, kept under `directory`.

    Why private: adding the architecture to the host (`dpkg --add-architecture`)
    changes what every later `apt-get upgrade` considers; these options make
    apt read only our sources list and an empty dpkg status instead.
    """

    architecture: str
    directory: Path

    @property
    def sources_list(self) -> Path:
        return self.directory / "etc" / "sources.list"

    def options(self) -> list[str]:
        """apt-get/apt-cache options that point every piece of apt's state here.

        `SourceParts` and `PreferencesParts` matter: without them apt also reads the
        host's sources.list.d and preferences.d; `Dir::State::status` keeps the host's
        installed packages out of dependency answers."""
        state, etc = self.directory / "state", self.directory / "etc"
        settings = (
            ("APT::Architecture", self.architecture),
            ("APT::Architectures::", self.architecture),
            ("Dir::State", state),
            ("Dir::State::status", state / "status"),
            ("Dir::Cache", self.directory / "cache"),
            ("Dir::Etc::SourceList", self.sources_list),
            ("Dir::Etc::SourceParts", etc / "sources.list.d"),
            ("Dir::Etc::Preferences", etc / "preferences"),
            ("Dir::Etc::PreferencesParts", etc / "preferences.d"),
        )
        return [arg for name, value in settings for arg in ("-o", f"{name}={value}")]

    def prepare(self, sources: str) -> None:
        """Create the state's directories and files, write `sources` and `apt-get update`."""
        for sub in ("state/lists/partial", "cache/archives/partial", "etc/sources.list.d",
                    "etc/preferences.d"):  # fmt: skip
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        (self.directory / "state" / "status").touch()
        self.sources_list.write_text(sources)
        run(["apt-get", *self.options(), "update", "-q"], self.directory)


def host_architecture() -> str:
    """dpkg's architecture of this host (`amd64`); empty without dpkg."""
    try:
        done = subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=False
        )
    except OSError:
        return ""
    return done.stdout.strip()


def apt_for(architecture: str) -> ForeignApt | None:
    """The apt state that has `architecture`'s packages: the host's (None) for its own
    architecture, else that architecture's private state. Without dpkg the host's is
    named, and `unpack_packages` says what is missing."""
    host = host_architecture()
    return None if architecture == host or not host else foreign_apt(architecture)


def foreign_apt(architecture: str, cache: Path = FOREIGN_APT_CACHE) -> ForeignApt:
    """The private apt state of `architecture`, its lists updated from the host's sources now."""
    apt = ForeignApt(architecture, cache / f"apt-{architecture}")
    sources = foreign_sources(host_sources(), architecture)
    if not sources:
        raise ImageError(
            str(HOST_SOURCES), "-", f"no apt source of the host can serve {architecture}"
        )
    apt.prepare(sources)
    return apt


def host_sources(root: Path = HOST_SOURCES) -> list[tuple[str, str]]:
    """The host's apt source files as (name, text): what apt itself reads."""
    files = [root / "sources.list"] if (root / "sources.list").is_file() else []
    parts = root / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    return [(path.name, path.read_text(errors="replace")) for path in files if path.is_file()]


def foreign_sources(files: Iterable[tuple[str, str]], architecture: str) -> str:
    """The host's `deb` sources as one-line entries for `architecture` only.

    Both formats are read: one-line `.list` files and deb822 `.sources` stanzas.
    A source that names its architectures without `architecture`, or is disabled,
    is left out; its `signed-by` is kept, so the same keys vouch for the lists."""
    lines: list[str] = []
    for name, text in files:
        entries = _deb822_entries(text) if name.endswith(".sources") else _one_line_entries(text)
        for uris, suites, components, options in entries:
            wanted = options.get("arch", "")
            if (wanted and architecture not in wanted.replace(",", " ").split()) or (
                options.get("enabled", "yes").lower() == "no"
            ):
                continue
            opts = f"arch={architecture}"
            if options.get("signed-by"):
                opts += f" signed-by={options['signed-by']}"
            lines += [
                f"deb [{opts}] {uri} {suite} {' '.join(components)}".rstrip()
                for uri in uris
                for suite in suites
            ]
    return "".join(f"{line}\n" for line in lines)


_Entry = tuple[list[str], list[str], list[str], dict[str, str]]


def _one_line_entries(text: str) -> list[_Entry]:
    entries: list[_Entry] = []
    for raw in text.splitlines():
        line = raw.partition("#")[0].strip()
        if not line.startswith("deb "):
            continue
        rest = line[4:].strip()
        options: dict[str, str] = {}
        if rest.startswith("["):
            inside, _, rest = rest[1:].partition("]")
            for option in inside.split():
                key, _, value = option.partition("=")
                options[key.lower()] = value
        words = shlex.split(rest)
        if len(words) >= 2:
            entries.append(([words[0]], [words[1]], words[2:], options))
    return entries


def _deb822_entries(text: str) -> list[_Entry]:
    entries: list[_Entry] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for raw in stanza.splitlines():
            if raw.startswith("#"):
                continue
            if raw[:1].isspace() and key:  # a continuation line
                fields[key] += " " + raw.strip()
                continue
            key, colon, value = raw.partition(":")
            key = key.strip().lower()
            if colon:
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        options = {
            "signed-by": fields.get("signed-by", ""),
            "enabled": fields.get("enabled", "yes"),
        }
        if "architectures" in fields:
            options["arch"] = fields["architectures"]
        if fields.get("uris") and fields.get("suites"):
            entries.append((fields["uris"].split(), fields["suites"].split(),
                            fields.get("components", "").split(), options))  # fmt: skip
    return entries


def unpack_packages(
    packages: Sequence[str], into: Path, apt: ForeignApt | None = None
) -> list[Path]:
    """Download `packages` and unpack their files under `into` (as if `into` were `/`).

    Returns the files put in place. ImageError names the tool and what it said
    when a tool is missing or a package cannot be had (not in the apt lists:
    `apt-get update` first). With `apt`, the packages are that architecture's,
    from its private state (`foreign_apt`).
    """
    for tool in TOOLS:
        if shutil.which(tool) is None:
            raise ImageError(tool, "-", "not found: these files come from Debian's archive")
    into.mkdir(parents=True, exist_ok=True)
    placed: list[Path] = []
    with tempfile.TemporaryDirectory(dir=into, prefix=".unpack-") as scratch:
        work = Path(scratch)
        options = apt.options() if apt is not None else []
        run(["apt-get", *options, "download", "-q", *packages], work)
        tree = work / "tree"
        for deb in sorted(work.glob("*.deb")):
            run(["dpkg-deb", "-x", str(deb), str(tree)], work)
        for source in sorted(path for path in tree.rglob("*") if path.is_file()):
            target = into / source.relative_to(tree)
            target.parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)
            placed.append(target)
    return placed


def run(command: list[str], cwd: Path) -> str:
    """Run a packaging tool; its standard output, or ImageError with what it said."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageError(command[0], "-", f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


def versioned_package(meta_package: str, apt: ForeignApt | None = None) -> str:
    """The versioned package a meta-package depends on (`linux-image-amd64` ->
    `linux-image-6.1.0-57-amd64`): `apt-get download` fetches no dependencies, so
    the files come from the package the meta-package points at. With `apt`, in
    that architecture's private state (`linux-image-cloud-arm64` ->
    `linux-image-6.1.0-57-cloud-arm64`)."""
    options = apt.options() if apt is not None else []
    done = subprocess.run(
        ["apt-cache", *options, "depends", "--important", meta_package],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Depends:\s*(\S+)", done.stdout)
    if found is None:
        raise ImageError(meta_package, "-", "not in the apt lists (run apt-get update, as root)")
    return found.group(1)
