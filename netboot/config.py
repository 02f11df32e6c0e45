"""The daemon's configuration: one frozen object, validated once, passed down.

The TOML file has one table per concern (`[server]`, `[logging]`; later issues
add one per service). Each table is a frozen dataclass below; a field's
metadata carries its check and the sentence `docs/configuration.md` shows, so
the code and the documentation cannot drift apart (a test compares them).
An unknown table or key, or a value of the wrong type, is a `ConfigError`
naming the file and the dotted key. Nothing below the CLI reads files, flags or
the environment: the CLI calls `load_config` and `with_overrides`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from netboot.errors import ConfigError
from netboot.firmware import FAMILIES
from netboot.macaddr import MacAddress, parse_mac

LOG_FORMATS = ("text", "json", "journal")
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")

Check = Callable[[object, "_Context"], Any]


@dataclass(frozen=True)
class _Context:
    """Where a value came from: to name it in errors and resolve relative paths."""

    source: str
    key: str
    base_dir: Path

    def error(self, message: str) -> ConfigError:
        return ConfigError(self.source, self.key, message)


def _type_name(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _path(value: object, where: _Context) -> Path:
    if not isinstance(value, str) or not value:
        raise where.error(f"must be a non-empty string (a path), not {_type_name(value)}")
    path = Path(value)
    return path if path.is_absolute() else where.base_dir / path


POSTGRESQL_SCHEMES = ("postgresql://", "postgres://")
"""A lease database named by one of these is a PostgreSQL URL; anything else is a file."""


def is_postgresql_url(database: Path | str) -> bool:
    """Whether `database` names a PostgreSQL database rather than an SQLite file.

    A `Path` never is: pathlib collapses the `//` of a URL, so URLs travel as strings.
    """
    return isinstance(database, str) and database.startswith(POSTGRESQL_SCHEMES)


def _lease_database(value: object, where: _Context) -> Path | str:
    """A path, or a PostgreSQL URL kept as a string."""
    if isinstance(value, str) and is_postgresql_url(value):
        return value
    return _path(value, where)


def _string_list(value: object, where: _Context) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise where.error("must be a list of non-empty strings")
    return tuple(value)


def _optional_path(value: object, where: _Context) -> Path | None:
    if value == "":
        return None
    return _path(value, where)


def _boolean(value: object, where: _Context) -> bool:
    if not isinstance(value, bool):
        raise where.error(f"must be true or false, not {_type_name(value)}")
    return value


def _int_range(low: int, high: int) -> Check:
    def check(value: object, where: _Context) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise where.error(f"must be an integer from {low} to {high} (got {value!r})")
        return value

    return check


def _positive_seconds(value: object, where: _Context) -> tuple[float, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not all(0 < v <= 300 for v in value)
    ):
        raise where.error("must be a non-empty list of seconds, each above 0 and at most 300")
    return tuple(float(v) for v in value)


def _string(value: object, where: _Context) -> str:
    if not isinstance(value, str):
        raise where.error(f"must be a string, not {_type_name(value)}")
    return value


def _http_url_or_empty(value: object, where: _Context) -> str:
    text = _string(value, where)
    if text and not text.startswith(("http://", "https://")):
        raise where.error(f"must be an http:// or https:// URL or empty (got {text!r})")
    return text


def _ipv4_or_empty(value: object, where: _Context) -> str:
    text = _string(value, where)
    if text:
        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            raise where.error(
                f"must be an IPv4 address (EFI booters cannot resolve names), got {text!r}"
            ) from None
    return text


def _machine_name_format(value: object, where: _Context) -> str:
    text = _string(value, where)
    try:
        sample = text % 1
    except (TypeError, ValueError):
        raise where.error("must be a printf format with one number, like NetBoot%03d") from None
    if not sample or sample == text % 2:
        raise where.error("must put the host number in the name, like NetBoot%03d")
    return text


def _positive_number(value: object, where: _Context) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise where.error(f"must be a number of seconds above 0 (got {value!r})")
    return float(value)


def _seconds_up_to(high: float) -> Check:
    def check(value: object, where: _Context) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
            raise where.error(
                f"must be a number of seconds above 0 and at most {high:g} (got {value!r})"
            )
        return float(value)

    return check


def _one_of(*choices: str) -> Check:
    def check(value: object, where: _Context) -> str:
        if value not in choices:
            raise where.error(f"must be one of {', '.join(choices)} (got {value!r})")
        assert isinstance(value, str)
        return value

    return check


class Applies(Enum):
    """When a running daemon takes a changed value: the option table says, per key."""

    RELOAD = "reload"
    """On SIGHUP, together with every other reloadable change."""
    RESTART = "restart"
    """Only at the next start: the value owns a socket, a child process, an identity or a
    file the daemon holds open. Until then the old value stays in force everywhere."""


def option(default: Any, check: Check, doc: str, applies: Applies = Applies.RELOAD) -> Any:
    """A config field: its default, how to check a value, its documentation, and whether a
    running daemon can apply a change to it."""
    return field(default=default, metadata={"check": check, "doc": doc, "applies": applies})


RESTART = Applies.RESTART


@dataclass(frozen=True, slots=True)
class AddressRange:
    """An inclusive range of IPv4 addresses (`dhcp.pool`), parsed once."""

    first: ipaddress.IPv4Address
    last: ipaddress.IPv4Address

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


IPV6_POOL_PREFIX = 64
"""The prefix length of the link a DHCPv6 pool lies in: the /64 router advertisements
announce as on-link and whose interface leases are given on (docs/protocols/dhcpv6.md)."""


@dataclass(frozen=True, slots=True)
class Ipv6Range:
    """An inclusive range of IPv6 addresses inside one /64 (`dhcp6.pool`), parsed once."""

    first: ipaddress.IPv6Address
    last: ipaddress.IPv6Address

    @property
    def prefix(self) -> ipaddress.IPv6Network:
        """The /64 holding the range: the link it is leased on."""
        return ipaddress.IPv6Network((self.first, IPV6_POOL_PREFIX), strict=False)

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """HOST:PORT of a listener (`admin.listen`), parsed once; the host without brackets."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class ServerConfig:
    root: Path = option(
        Path("nbimages"),
        _path,
        "Directory holding the NBI sets (`X.nbi/`, or sharepoints such as "
        "`NetBootSP0/X.nbi/`). Relative paths are taken from the config file's directory.",
        RESTART,
    )
    interfaces: tuple[str, ...] = option(
        (),
        _string_list,
        "Network interfaces to serve on, by name; empty means every interface. "
        "Each must exist when the daemon starts. TFTP and HTTP listen on each one's "
        "IPv4 and IPv6 addresses, link-local ones included.",
        RESTART,
    )
    public_host: str = option(
        "",
        _ipv4_or_empty,
        "Address to put in root paths and boot URLs instead of the one a request arrived "
        "on (NAT, a load balancer in front of this server).",
    )
    user: str = option(
        "",
        _string,
        "Started as root: the user to become once the ports are bound (no supplementary "
        "groups). Empty: stay who we are, which as root is refused unless `allow_root`.",
        RESTART,
    )
    group: str = option("", _string, "Group to become with `user`; empty: the user's own.", RESTART)
    allow_root: bool = option(
        False,
        _boolean,
        "Keep running as root (for tests and throw-away labs only).",
        RESTART,
    )
    rescan_interval: float = option(
        5.0,
        _positive_number,
        "Seconds between two scans of the image root; a set added, removed or changed is "
        "served (or no longer) from the next scan on, without a restart.",
    )
    id: str = option(
        "",
        _string,
        "This daemon's name among several that share one lease database (`dhcp."
        "lease_database` on PostgreSQL): written with every lease it grants, and shown in "
        "logs, `netboot status` and the status page. Empty: the host name.",
        RESTART,
    )
    state_database: Path = option(
        Path("/var/lib/netboot/state.sqlite3"),
        _path,
        "SQLite file of the daemon's own state: the machine assignments made through the "
        "admin API and console (which image a MAC boots next). Survives restarts.",
        RESTART,
    )


TFTP_RETRY_SCHEDULE = (1.0, 2.0, 4.0, 8.0, 8.0)
"""Seconds to wait before each TFTP retransmission while no round trip is known.

A read session waits the entries in turn and the last once more before it gives
up (31 s without progress); each adaptive wait stays within its entry.
"""

TFTP_MIN_RETRY_TIMEOUT = 0.01
"""Seconds: the floor of the measured TFTP retransmission timeout.

A client's round trip can jump (firmware busy writing a block, a loaded host);
below this, retransmissions would mostly duplicate blocks already on their way.
The RTO itself (SRTT + 4 RTTVAR) grows with a client's jitter; the floor only
stops a steady client's rare pause from drawing a repeat. 10 ms: in the lab
(TCG, GRUB at 0.4 ms a block, EDK2, iPXE) no boot drew a single spurious
repeat, while a 50 ms floor made GRUB's 14,000-block kernel take 90 s at 5 %
loss each way (10 ms: about 25 s); every loss of a lock-step transfer costs
at least the floor (docs/protocols/tftp.md §2)."""


@dataclass(frozen=True)
class TftpConfig:
    enabled: bool = option(True, _boolean, "Serve TFTP.", RESTART)
    port: int = option(
        69,
        _int_range(0, 65535),
        "UDP port for read requests; 0 picks a free one (tests).",
        RESTART,
    )
    extra_dir: Path | None = option(
        Path("/usr/lib/ipxe"),
        _optional_path,
        "Directory of PXE programs (e.g. `/usr/lib/ipxe`) served by their path inside it, "
        "beside the booter directories of the NBI sets; a file there may be a link to a file "
        "elsewhere (Debian's `ipxe.efi` links to `/boot/ipxe.efi`), a link to a directory "
        'outside serves nothing; `""` serves none.',
    )
    mtu: int = option(
        1500,
        _int_range(68, 65535),
        "Path MTU to the clients; blksize is clamped so a block fits one datagram "
        "(1468 bytes at 1500 over IPv4, 1448 over IPv6).",
    )
    max_windowsize: int = option(
        64, _int_range(1, 65535), "Largest RFC 7440 windowsize granted to a client."
    )
    retry_schedule: tuple[float, ...] = option(
        TFTP_RETRY_SCHEDULE,
        _positive_seconds,
        "Seconds to wait before each retransmission while no round trip to the client is "
        "known. It bounds patience: a transfer fails once it has waited every entry and the "
        "last once more (31 s by default) without progress, never sooner. With "
        "`adaptive_timeout` the retransmissions come sooner on a fast link, backing off to at "
        "most the first entry, so there are more of them before the same give-up time. A client's "
        "`timeout` option (T s) caps every wait at T and sets the patience to T for each entry "
        "and once more; the pace still follows the round trip (docs/protocols/tftp.md §2).",
    )
    adaptive_timeout: bool = option(
        True,
        _boolean,
        "Time retransmissions from measured round trips (RFC 6298, with Karn's algorithm) "
        "instead of waiting the schedule's entries: only the server's timer recovers a lost "
        "block, so on a LAN a loss then costs tens of milliseconds instead of a second. "
        "false: always the schedule's waits.",
    )
    min_retry_timeout: float = option(
        TFTP_MIN_RETRY_TIMEOUT,
        _seconds_up_to(10),
        "Seconds, above 0 and at most 10: the shortest adaptive retransmission timeout, "
        "however short the measured round trip. A client's answer can come late (firmware "
        "busy, a loaded host), and retransmitting sooner mostly duplicates blocks. The first "
        "`retry_schedule` entry wins if it is smaller.",
    )
    single_port: bool = option(
        False,
        _boolean,
        "Run every transfer on the request port instead of a new port per transfer "
        "(RFC 1350); for servers behind NAT, firewalls or container bridges.",
        RESTART,
    )
    busy_poll_us: int = option(
        50,
        _int_range(0, 10000),
        "Microseconds to poll a lock-step transfer's socket for the next ACK before "
        "sleeping in the event loop; cuts the wake-up latency that bounds lock-step TFTP, "
        "for at most two concurrent transfers, and stops for a client that keeps missing "
        "it. 0 turns it off.",
    )
    max_transfers: int = option(
        1000, _int_range(1, 100000), "Concurrent transfers; more requests get an error."
    )


def _pool(value: object, where: _Context) -> AddressRange | None:
    text = _string(value, where)
    if not text:
        return None
    first, dash, last = text.partition("-")
    try:
        low, high = ipaddress.IPv4Address(first.strip()), ipaddress.IPv4Address(last.strip())
    except ValueError:
        raise where.error(f"must be FIRST-LAST, two IPv4 addresses (got {text!r})") from None
    if not dash or low > high:
        raise where.error(f"must be FIRST-LAST with FIRST not above LAST (got {text!r})")
    if int(high) - int(low) >= 65536:
        raise where.error("holds more than 65536 addresses")
    return AddressRange(low, high)


def _ipv4_list(value: object, where: _Context) -> tuple[str, ...]:
    items = _string_list(value, where) if value != [] else ()
    for item in items:
        _ipv4_or_empty(item, where)
    return items


def _reservations(
    value: object, where: _Context
) -> tuple[tuple[MacAddress, ipaddress.IPv4Address], ...]:
    items = _string_list(value, where) if value != [] else ()
    out: dict[MacAddress, ipaddress.IPv4Address] = {}
    for item in items:
        mac, equals, address = item.partition("=")
        try:
            canonical = parse_mac(mac.strip())
            parsed = ipaddress.IPv4Address(address.strip())
        except ValueError:
            raise where.error(f"each entry must be MAC=ADDRESS (got {item!r})") from None
        if not equals:
            raise where.error(f"each entry must be MAC=ADDRESS (got {item!r})")
        if canonical in out and out[canonical] != parsed:
            raise where.error(f"{canonical} is reserved twice ({out[canonical]} and {parsed})")
        out[canonical] = parsed
    return tuple(out.items())


@dataclass(frozen=True)
class DhcpConfig:
    port: int = option(
        67,
        _int_range(0, 65535),
        "UDP port of the DHCP listener that BSDP (and PXE) share; 0 picks a free one (tests).",
        RESTART,
    )
    mode: str = option(
        "proxy",
        _one_of("proxy", "full", "off"),
        "`proxy`: answer only PXE, iPXE and UEFI HTTP-boot clients with boot information, "
        "never an address (safe beside a site's DHCP server); `full`: also lease addresses "
        "from `pool` (an isolated lab net only); `off`: no PXE answers at all (BSDP stays).",
        RESTART,
    )
    pool: AddressRange | None = option(
        None,
        _pool,
        "FIRST-LAST addresses to lease in full mode, e.g. `10.0.0.100-10.0.0.199`; full "
        "mode refuses to start without it, and leases only on the interface whose subnet "
        "holds it.",
        RESTART,
    )
    lease_time: int = option(
        3600, _int_range(60, 31536000), "Seconds an address is leased for (full mode)."
    )
    router: str = option(
        "", _ipv4_or_empty, "Default gateway handed out in full mode; empty: none."
    )
    dns_servers: tuple[str, ...] = option((), _ipv4_list, "DNS servers handed out in full mode.")
    domain_name: str = option("", _string, "Domain name handed out in full mode; empty: none.")
    reservations: tuple[tuple[MacAddress, ipaddress.IPv4Address], ...] = option(
        (),
        _reservations,
        'Fixed addresses by MAC in full mode, as `"MAC=ADDRESS"` strings; a reserved '
        "address may lie outside the pool and is never given to another client.",
        RESTART,
    )
    lease_database: Path | str = option(
        Path("/var/lib/netboot/leases.sqlite3"),
        _lease_database,
        "SQLite file of the full-mode leases; they survive restarts and crashes. A "
        "`postgresql://` URL keeps the IPv4 leases in PostgreSQL instead, shared by several "
        "daemons (docs/operations.md); DHCPv6 full mode needs a file.",
        RESTART,
    )
    quarantine: float = option(
        600.0,
        _positive_number,
        "Seconds an address a client DECLINEd (found in use) is withheld from everyone.",
    )
    boot_server_port: int = option(
        4011,
        _int_range(0, 65535),
        "UDP port of the PXE boot server that UEFI ROMs ask after a proxy offer; 0 picks a "
        "free one (tests).",
        RESTART,
    )
    answer_router_solicitations: bool = option(
        False,
        _boolean,
        "Lab nets only: answer IPv6 router solicitations on the served interfaces (which "
        "must be named) with a lifetime-0 advertisement, which ends the ~13 s IPv6 wait of "
        "iPXE ROMs on an IPv4-only net. Never on a LAN with real IPv6 routers.",
        RESTART,
    )
    watch_rivals: bool = option(
        True,
        _boolean,
        "In full mode, listen on UDP 68 for other DHCP servers' offers and warn loudly "
        "about each rival server.",
        RESTART,
    )
    heartbeat_interval: float = option(
        2.0,
        _positive_number,
        "Full mode: seconds between two heartbeats this daemon writes into the lease "
        "database. Daemons sharing a database split new clients between the live ones; "
        "a daemon silent for three intervals is taken for dead and its share moves on.",
        RESTART,
    )
    takeover_after: int = option(
        3,
        _int_range(0, 65535),
        "Full mode with peers: a client whose DHCP `secs` field says it has tried for at "
        "least this many seconds is answered by any live daemon, not only the one its MAC "
        "falls to; 0 answers every client from every daemon.",
    )


def _boot_files(value: object, where: _Context) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise where.error("must be a table of family = file name")
    for family, name in value.items():
        if family not in FAMILIES:
            raise where.error(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
        if not isinstance(name, str):
            raise where.error(f"{family} must be a file name (a string)")
    return tuple((family, name) for family, name in value.items() if name)


def _assignments(value: object, where: _Context) -> tuple[tuple[MacAddress, str], ...]:
    return _mac_table(value, where, "IMAGE")


def _mac_table(
    value: object, where: _Context, what: str, choices: tuple[str, ...] = ()
) -> tuple[tuple[MacAddress, str], ...]:
    """`"MAC=VALUE"` strings, one value per MAC (from `choices` when given)."""
    items = _string_list(value, where) if value != [] else ()
    out: dict[MacAddress, str] = {}
    for item in items:
        mac, equals, chosen = item.partition("=")
        try:
            canonical = parse_mac(mac.strip())
        except ValueError:
            raise where.error(f"each entry must be MAC={what} (got {item!r})") from None
        if not equals or not chosen.strip():
            raise where.error(f"each entry must be MAC={what} (got {item!r})")
        if choices and chosen.strip() not in choices:
            raise where.error(f"{item!r}: {what} must be one of {', '.join(choices)}")
        if canonical in out and out[canonical] != chosen.strip():
            raise where.error(f"{canonical} is assigned twice ({out[canonical]!r}, {chosen!r})")
        out[canonical] = chosen.strip()
    return tuple(out.items())


LOADERS = ("auto", "shim", "boot_file")
SIGNED_CHAIN_PACKAGES: dict[str, tuple[str, str]] = {
    "efi-x64": ("shim-signed", "grub-efi-amd64-signed"),
    "efi-arm64": ("shim-signed", "grub-efi-arm64-signed"),
}
"""Debian's packages that hold the default `shim_files` and `grub_files`, per family."""
SIGNED_CHAIN_ARCHITECTURES: dict[str, str] = {"efi-x64": "amd64", "efi-arm64": "arm64"}
"""The Debian architecture each family's signed-chain (and HTTP GRUB) packages are built for."""
HTTP_GRUB_PACKAGES: dict[str, str] = {
    "efi-x64": "grub-efi-amd64-bin",
    "efi-arm64": "grub-efi-arm64-bin",
}
"""Debian's unsigned GRUB modules per family, from which `netboot build-http-grub` builds
a network GRUB with the `http` module that Debian's signed one lacks."""
HTTP_GRUB_CACHE = Path("/var/cache/netboot/http-grub")
"""Where `netboot build-http-grub` writes its GRUB builds (the default `http_grub_files`)."""
SIGNED_CHAIN_CACHE = Path("/var/cache/netboot/signed-chain")
"""Where `netboot fetch-signed-chain` unpacks them (as if it were `/`), not installed:
shim-signed's postinst would reinstall the boot loader of a UEFI host. A chain file
missing at its configured path is looked for here, at the same path."""
"""What a UEFI PXE ROM is handed: the signed shim -> GRUB chain, or the `boot_files` entry."""


def _uefi_loaders(value: object, where: _Context) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise where.error("must be a table of family = loader")
    for family, loader in value.items():
        if family not in FAMILIES or family == "bios":
            known = ", ".join(f for f in FAMILIES if f != "bios")
            raise where.error(f"unknown UEFI family {family!r}; known: {known}")
        if loader not in LOADERS:
            raise where.error(f"{family} must be one of {', '.join(LOADERS)} (got {loader!r})")
    return tuple((family, loader) for family, loader in value.items())


def _family_paths(value: object, where: _Context) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise where.error("must be a table of family = file path")
    for family, path in value.items():
        if family not in FAMILIES or family == "bios":
            known = ", ".join(f for f in FAMILIES if f != "bios")
            raise where.error(f"unknown UEFI family {family!r}; known: {known}")
        if not isinstance(path, str):
            raise where.error(f"{family} must be a file path (a string)")
    return tuple((family, str(where.base_dir / path)) for family, path in value.items() if path)


def _loader_assignments(value: object, where: _Context) -> tuple[tuple[MacAddress, str], ...]:
    return _mac_table(value, where, "LOADER", LOADERS)


@dataclass(frozen=True)
class PxeConfig:
    boot_files: tuple[tuple[str, str], ...] = option(
        (("bios", "undionly.kpxe"), ("efi-x64", "ipxe.efi")),
        _boot_files,
        "First-stage file per firmware family, by its name in `tftp.extra_dir` (UEFI HTTP "
        "boot gets the same file over HTTP at `/boot/<name>`). Families: `bios`, "
        "`efi-ia32`, `efi-x64`, `efi-arm32`, `efi-arm64`, `efi-riscv32`, `efi-riscv64`, "
        "`efi-loong64`.",
    )
    ipxe_script: bool = option(
        True,
        _boolean,
        "Hand iPXE (chained, or in a NIC/VM ROM) the URL of its boot script, rendered per "
        "client from the catalog's PC-bootable images.",
    )
    default_image: str = option(
        "",
        _string,
        "PC image iPXE boots when the request names none: an image name or set directory; "
        "empty: the catalog's default PC image, else the first by index.",
    )
    assignments: tuple[tuple[MacAddress, str], ...] = option(
        (),
        _assignments,
        'PC image per client, as `"MAC=IMAGE"` strings (image name or set directory): that '
        "client boots it whatever the default; an image that is not there is reported to "
        "the client instead of booting another.",
    )
    menu: bool = option(
        False, _boolean, "Show iPXE a menu of every PC-bootable image instead of booting one."
    )
    menu_timeout: int = option(
        10, _int_range(0, 3600), "Seconds the iPXE menu waits before booting the default."
    )
    uefi_proxy_via_4011: bool = option(
        True,
        _boolean,
        "In proxy mode, UEFI PXE ROMs get an offer without option 43 and fetch the boot "
        "file from port 4011 (what all UEFI stacks accept); false: the 43.6 'boot now' "
        "form BIOS ROMs get.",
    )
    ipxe_no_proxydhcp: bool = option(
        True,
        _boolean,
        "In full mode, tell iPXE (175.176) not to wait for proxy offers: saves 2-3 s a boot.",
    )
    uefi_loader: tuple[tuple[str, str], ...] = option(
        (("efi-x64", "auto"), ("efi-arm64", "auto")),
        _uefi_loaders,
        "What a UEFI PXE ROM of each family is handed: `shim` the signed chain (shim, then "
        "GRUB, then the catalog's PC kernel by TFTP; boots with Secure Boot on or off), "
        "`boot_file` its `boot_files` entry (iPXE, or an admin's own signed loader), `auto` "
        "the chain where it can finish, else the boot file: in full mode, when the family's "
        "`shim_files` and `grub_files` exist (GRUB reads its configuration only from the "
        "DHCP server's next-server, never from a proxy offer; in proxy mode set `shim` once "
        "the site's DHCP names this server as next-server). A family not listed gets its "
        "`boot_files` entry. iPXE ROMs keep getting the iPXE script, and "
        "UEFI HTTP-boot clients the `boot_files` entry, else the family's "
        "`http_grub_files` GRUB: Debian's signed GRUB has no `http` module, so the signed "
        "chain cannot continue over HTTP.",
    )
    shim_files: tuple[tuple[str, str], ...] = option(
        (
            ("efi-x64", "/usr/lib/shim/shimx64.efi.signed"),
            ("efi-arm64", "/usr/lib/shim/shimaa64.efi.signed"),
        ),
        _family_paths,
        "The signed shim per UEFI family (Debian's `shim-signed` of that architecture); "
        "served by TFTP as "
        "`sb/<arch>/shim<arch>.efi` (`sb/x64/shimx64.efi`). May be a link. A file not at "
        "its path is looked for under /var/cache/netboot/signed-chain, where "
        "`netboot fetch-signed-chain` unpacks Debian's packages without installing them "
        "(`--family efi-arm64` for arm64's, fetched for that architecture on any host).",
    )
    grub_files: tuple[tuple[str, str], ...] = option(
        (
            ("efi-x64", "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"),
            ("efi-arm64", "/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed"),
        ),
        _family_paths,
        "The signed network GRUB per UEFI family (Debian's `grub-efi-amd64-signed`, "
        "`grub-efi-arm64-signed`), served "
        "as `sb/<arch>/grub<arch>.efi`, the name shim loads from its own directory. GRUB "
        "reads `/grub/grub.cfg` from the server, which sources the client's configuration "
        "rendered from the catalog. Looked for under /var/cache/netboot/signed-chain too, "
        "as `shim_files`.",
    )
    http_grub_files: tuple[tuple[str, str], ...] = option(
        (
            ("efi-x64", str(HTTP_GRUB_CACHE / "grubx64.efi")),
            ("efi-arm64", str(HTTP_GRUB_CACHE / "grubaa64.efi")),
        ),
        _family_paths,
        "A network GRUB with the `http` module per UEFI family, which `netboot "
        "build-http-grub` builds from Debian's GRUB modules (unsigned: it boots with Secure "
        "Boot off). A UEFI HTTP-boot client whose family has no `boot_files` entry (arm64: "
        "Debian ships no arm64 iPXE) is handed it as `http://<server>/grub/http/grub<arch>"
        ".efi`; it reads `/grub/grub.cfg`, its own configuration rendered from the catalog "
        "and the kernel and initrds by HTTP. A missing file is not offered.",
    )
    loader_assignments: tuple[tuple[MacAddress, str], ...] = option(
        (),
        _loader_assignments,
        'UEFI loader per client, as `"MAC=shim"` or `"MAC=boot_file"`: overrides '
        "`uefi_loader` for that machine.",
    )


def _ipv6_address(text: str, where: _Context, what: str) -> ipaddress.IPv6Address:
    try:
        return ipaddress.IPv6Address(text.strip())
    except ValueError:
        raise where.error(f"{what} must be an IPv6 address (got {text!r})") from None


def _ipv6_pool(value: object, where: _Context) -> Ipv6Range | None:
    text = _string(value, where)
    if not text:
        return None
    first, dash, last = text.partition("-")
    if not dash:
        raise where.error(f"must be FIRST-LAST, two IPv6 addresses (got {text!r})")
    low = _ipv6_address(first, where, "FIRST")
    high = _ipv6_address(last, where, "LAST")
    if low > high:
        raise where.error(f"must be FIRST-LAST with FIRST not above LAST (got {text!r})")
    if low.is_multicast or low.is_link_local or low.is_loopback or low.is_unspecified:
        raise where.error(f"must be unicast addresses a client can route to (got {text!r})")
    pool = Ipv6Range(low, high)
    if high not in pool.prefix:
        raise where.error(f"FIRST and LAST must lie in one /64 (got {text!r})")
    if int(high) - int(low) >= 65536:
        raise where.error("holds more than 65536 addresses")
    return pool


def _ipv6_list(value: object, where: _Context) -> tuple[ipaddress.IPv6Address, ...]:
    items = _string_list(value, where) if value != [] else ()
    return tuple(_ipv6_address(item, where, "each entry") for item in items)


MAX_DOMAIN_NAME = 253
"""Characters of a domain name in text form, dots included, without the final one."""


def _domain_names(value: object, where: _Context) -> tuple[str, ...]:
    """Host names as DNS carries them (RFC 1035 §2.3.4): ASCII labels of 1 to 63 bytes."""
    items = _string_list(value, where) if value != [] else ()
    for item in items:
        name = item.removesuffix(".")
        labels = name.split(".")
        if (
            not name.isascii()
            or len(name) > MAX_DOMAIN_NAME
            or not all(0 < len(label) <= 63 for label in labels)
            or any(c.isspace() for c in name)
        ):
            raise where.error(
                f"each entry must be a domain name of ASCII labels of 1 to 63 characters "
                f"(got {item!r})"
            )
    return items


@dataclass(frozen=True)
class Dhcp6Config:
    mode: str = option(
        "off",
        _one_of("off", "proxy", "full"),
        "`off`: no DHCPv6; `proxy`: answer only PXE, UEFI HTTP-boot and iPXE clients with "
        "boot options (59, 60), never an address, beside a site's DHCPv6 server; `full`: "
        "also lease addresses from `pool` (an isolated lab net only).",
        RESTART,
    )
    port: int = option(
        547,
        _int_range(0, 65535),
        "UDP port of the DHCPv6 listener; 0 picks a free one (tests).",
        RESTART,
    )
    boot_server_port: int = option(
        4011,
        _int_range(0, 65535),
        "UDP port of the IPv6 PXE boot server, opened in proxy mode only: EDK2's PXEv6 "
        "sends its boot-service Request there after a proxy offer (always 4011 from "
        "firmware); 0 picks a free one (tests).",
        RESTART,
    )
    pool: Ipv6Range | None = option(
        None,
        _ipv6_pool,
        "FIRST-LAST IPv6 addresses to lease in full mode, at most 65536 inside one /64, "
        "e.g. `fd4e:4254:0:1::1000-fd4e:4254:0:1::1fff`; full mode refuses to start without "
        "it, and leases only on the interface holding an address in that /64.",
        RESTART,
    )
    lease_time: int = option(
        3600,
        _int_range(60, 31536000),
        "Seconds an address is valid (and preferred) for in full mode; clients renew (T1) "
        "at half of it and rebind (T2) at 0.8 of it.",
    )
    dns_servers: tuple[ipaddress.IPv6Address, ...] = option(
        (), _ipv6_list, "IPv6 DNS servers handed out (option 23) to clients that ask."
    )
    domain_search: tuple[str, ...] = option(
        (), _domain_names, "Domain search list handed out (option 24) to clients that ask."
    )
    rapid_commit: bool = option(
        True,
        _boolean,
        "Answer a Solicit that carries Rapid Commit (option 14) with a Reply that binds at "
        "once (full mode); false: always Advertise first.",
    )
    preference: int = option(
        255,
        _int_range(0, 255),
        "Server preference (option 7) in our Advertise; 255 makes a client take it at once "
        "instead of waiting for other servers' offers.",
    )
    router_advertisements: bool = option(
        False,
        _boolean,
        "Lab nets only: send IPv6 router advertisements on the served interfaces (which "
        "must be named): the pool's /64 on-link (not for SLAAC), M and O set so clients ask "
        "DHCPv6, with `router_lifetime`; periodic and in answer to solicitations. Needs "
        "`pool`. Never on a LAN with real IPv6 routers.",
        RESTART,
    )
    router_lifetime: int = option(
        1800,
        _int_range(0, 9000),
        "Router Lifetime (seconds) of those RAs. Nonzero makes clients take this server as "
        "their default router: EDK2's PXEv6 waits 10 s for a route to the boot server "
        "otherwise (docs/protocols/dhcpv6.md §13). 0: not a router (no default route).",
        RESTART,
    )


@dataclass(frozen=True)
class BsdpConfig:
    enabled: bool = option(True, _boolean, "Answer Macs' BSDP INFORM[LIST] and [SELECT].", RESTART)
    priority: int = option(
        32768,
        _int_range(0, 65535),
        "Server priority before load: Macs prefer the highest; each client bound here "
        "lowers it by one, so clients spread over several servers.",
    )
    server_name: str = option(
        "", _string, "Host name sent in ACK[SELECT] (sname); empty: this machine's host name."
    )
    machine_name_format: str = option(
        "NetBoot%03d",
        _machine_name_format,
        "Machine name handed to each client, numbered per client as Apple's server does.",
    )
    binding_ttl: float = option(
        3600.0,
        _positive_number,
        "Seconds a client's selection counts as load on this server after its last SELECT.",
    )
    binding_lifetime: float = option(
        7776000.0,
        _positive_number,
        "Seconds after its last SELECT a Mac's binding still answers its plain DISCOVER "
        "with a BSDP OFFER (the fast path; 90 days). Booting by the fast path does not "
        "renew it: afterwards the Mac runs LIST and SELECT once, which binds it anew.",
    )
    bindings_database: Path | None = option(
        Path("/var/lib/netboot/bsdp-bindings.sqlite3"),
        _optional_path,
        "SQLite file of the BSDP bindings (which image each Mac selected here), so the "
        "fast path and the selected image survive restarts; empty: kept in memory only.",
        RESTART,
    )


@dataclass(frozen=True)
class HttpConfig:
    enabled: bool = option(
        True,
        _boolean,
        "Serve the NBI sets over HTTP; turn off when `base_url` points at another server.",
        RESTART,
    )
    port: int = option(
        80,
        _int_range(0, 65535),
        "TCP port to serve on and to put in root paths; 0: a free one.",
        RESTART,
    )
    base_url: str = option(
        "",
        _http_url_or_empty,
        "If set, HTTP root paths are this URL plus `/<set>/<image>` (a reverse proxy, "
        "a CDN, or another web server serving the image root).",
    )
    idle_timeout: float = option(
        30.0,
        _positive_number,
        "Seconds a connection may stay silent before it is closed: nothing received, and "
        "none of our bytes still on their way (a response the kernel is still delivering "
        "over a slow link keeps it open while the queue moves).",
    )
    directory_listing: bool = option(
        False, _boolean, "List directories of NBI sets; off, a directory is 404."
    )


@dataclass(frozen=True)
class NfsConfig:
    mode: str = option(
        "ganesha",
        _one_of("ganesha", "external", "off"),
        "`ganesha`: run nfs-ganesha as a child, exporting the image root read-only (NFS "
        "images are offered while it runs); `external`: another NFS server exports the "
        "image root (NFS images are always offered); `off`: NFS images are not offered.",
        RESTART,
    )
    export: str = option(
        "",
        _string,
        "NFS export that holds the image root, as put in NFS root paths; empty: the image "
        "root's own path (which is what our nfs-ganesha exports).",
    )
    port: int = option(2049, _int_range(1, 65535), "NFS port of the nfs-ganesha we run.", RESTART)
    ganesha_binary: str = option(
        "ganesha.nfsd",
        _string,
        "The nfs-ganesha program, by name or path.",
        RESTART,
    )
    state_dir: Path = option(
        Path("/run/netboot/nfs"),
        _path,
        "Where the generated ganesha.conf, its pid file and its NFSv4 recovery data live.",
        RESTART,
    )
    shadow_root: Path | None = option(
        None,
        _optional_path,
        "Writable area for diskless clients (`SupportsDiskless` images): one directory per "
        "client MAC, exported read-write; must not be inside the image root. Empty: "
        "diskless images boot with local shadows only.",
        RESTART,
    )


def _listen(value: object, where: _Context) -> ListenAddress | None:
    text = _string(value, where)
    if not text:
        return None
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise where.error(f"must be HOST:PORT (like 127.0.0.1:9067) or empty, got {text!r}")
    return ListenAddress(host.removeprefix("[").removesuffix("]"), int(port))


@dataclass(frozen=True)
class AdminConfig:
    listen: ListenAddress | None = option(
        ListenAddress("127.0.0.1", 9067),
        _listen,
        "HOST:PORT of the admin page, `/status.json` and Prometheus `/metrics`; empty: off. "
        "Keep it on loopback or a management network.",
        RESTART,
    )
    token_file: Path = option(
        Path("/var/lib/netboot/admin-token"),
        _path,
        "The admin token, created (mode 0600) on first start; `netboot admin-token` prints "
        "it. Every state-changing API call needs it (`Authorization: Bearer`), and every "
        "call when `listen` is not a loopback address; the console logs in with it.",
        RESTART,
    )
    audit_log: Path | None = option(
        Path("/var/log/netboot/audit.log"),
        _optional_path,
        "File that gets one JSON line per change made through the admin API or console "
        "(who, what, before, after); empty: the daemon's log only (it always gets them).",
        RESTART,
    )
    session_lifetime: float = option(
        43200.0,
        _positive_number,
        "Seconds a console login (its session cookie) lasts.",
        RESTART,
    )


@dataclass(frozen=True)
class LoggingConfig:
    format: str = option(
        "text",
        _one_of(*LOG_FORMATS),
        "`text`: one line per event for people; `json`: one JSON object per line for "
        "log collectors; `journal`: journald's native protocol, every named field of an "
        "event as a NETBOOT_* field (under systemd; JSON on stderr if journald is absent).",
        RESTART,
    )
    level: str = option("info", _one_of(*LOG_LEVELS), "Least severe level written to stderr.")


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    dhcp: DhcpConfig = field(default_factory=DhcpConfig)
    dhcp6: Dhcp6Config = field(default_factory=Dhcp6Config)
    bsdp: BsdpConfig = field(default_factory=BsdpConfig)
    pxe: PxeConfig = field(default_factory=PxeConfig)
    tftp: TftpConfig = field(default_factory=TftpConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    nfs: NfsConfig = field(default_factory=NfsConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: str = field(default="(defaults)", compare=False)
    """The file the configuration came from, for log lines and errors."""


SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "dhcp": DhcpConfig,
    "dhcp6": Dhcp6Config,
    "bsdp": BsdpConfig,
    "pxe": PxeConfig,
    "tftp": TftpConfig,
    "http": HttpConfig,
    "nfs": NfsConfig,
    "admin": AdminConfig,
    "logging": LoggingConfig,
}


def load_config(path: Path) -> Config:
    """Read and validate a TOML file; every problem is a ConfigError."""
    source = str(path)
    try:
        text = path.read_bytes()
    except OSError as error:
        raise ConfigError(source, "-", f"cannot be read: {error.strerror}") from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(source, "-", "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(source, "-", f"is not valid TOML: {error}") from None
    return config_from_mapping(data, source, path.parent)


def config_from_mapping(data: Mapping[str, Any], source: str, base_dir: Path) -> Config:
    sections: dict[str, Any] = {}
    for name, table in data.items():
        section_type = SECTIONS.get(name)
        if section_type is None:
            raise ConfigError(
                source, name, f"unknown table; known tables are {', '.join(SECTIONS)}"
            )
        if not isinstance(table, dict):
            raise ConfigError(source, name, "must be a table ([" + name + "])")
        sections[name] = _build_section(section_type, table, name, source, base_dir)
    return Config(**sections, source=source)


def _build_section(
    section_type: type[Any], table: Mapping[str, Any], name: str, source: str, base_dir: Path
) -> Any:
    fields = {f.name: f for f in dataclasses.fields(section_type)}
    values: dict[str, Any] = {}
    for key, raw in table.items():
        spec = fields.get(key)
        if spec is None:
            raise ConfigError(
                source, f"{name}.{key}", f"unknown key; known keys are {', '.join(fields)}"
            )
        values[key] = spec.metadata["check"](raw, _Context(source, f"{name}.{key}", base_dir))
    return section_type(**values)


def with_overrides(config: Config, **overrides: Any) -> Config:
    """Apply command-line values given as `section__key=value`, checked like the file.

    Paths from the command line are relative to the working directory.
    """
    if overrides:
        source = "command line"
        if config.source != Config.source:
            source = f"{config.source} + command line"
        config = dataclasses.replace(config, source=source)
    for dotted, raw in overrides.items():
        section_name, key = dotted.split("__", 1)
        section = getattr(config, section_name)
        spec = {f.name: f for f in dataclasses.fields(section)}[key]
        where = _Context("command line", f"{section_name}.{key}", Path.cwd())
        value = spec.metadata["check"](raw, where)
        config = dataclasses.replace(
            config, **{section_name: dataclasses.replace(section, **{key: value})}
        )
    return config


def applies(section: str, key: str) -> Applies:
    """When a running daemon takes a change of `section.key` (the option table's word)."""
    spec = {f.name: f for f in dataclasses.fields(SECTIONS[section])}[key]
    return spec.metadata["applies"]  # type: ignore[no-any-return]


def option_keys() -> tuple[tuple[str, str], ...]:
    """Every option as (section, key), in the order of the documentation."""
    return tuple(
        (name, spec.name)
        for name, section_type in SECTIONS.items()
        for spec in dataclasses.fields(section_type)
    )


@dataclass(frozen=True, slots=True)
class Reload:
    """What a reload puts in force, decided from the running and the wanted configuration."""

    config: Config
    """The wanted configuration, except that every restart-only option keeps the value
    the daemon started with: that is the value its sockets and children really have."""
    restart_pending: tuple[str, ...]
    """`section.key` of each restart-only option whose wanted value differs from the one in
    force, in documentation order; empty when a restart would change nothing."""
    changed: tuple[str, ...]
    """`section.key` of each reloadable option whose value changes now."""


def plan_reload(started: Config, running: Config, wanted: Config) -> Reload:
    """Split a re-read configuration into what applies now and what waits for a restart.

    `started` is the configuration the daemon started with (restart-only values come from
    it, whatever earlier reloads asked for); `running` is the one in force, to say what
    changes. A change is applied completely or not at all: the caller builds everything
    from `Reload.config` before swapping anything in.
    """
    sections: dict[str, Any] = {}
    pending: list[str] = []
    changed: list[str] = []
    for name in SECTIONS:
        kept = {}
        for spec in dataclasses.fields(SECTIONS[name]):
            old, new = (
                getattr(getattr(started, name), spec.name),
                getattr(getattr(wanted, name), spec.name),
            )
            if spec.metadata["applies"] is Applies.RESTART:
                kept[spec.name] = old
                if new != old:
                    pending.append(f"{name}.{spec.name}")
            elif new != getattr(getattr(running, name), spec.name):
                changed.append(f"{name}.{spec.name}")
        sections[name] = dataclasses.replace(getattr(wanted, name), **kept)
    config = Config(**sections, source=wanted.source)
    return Reload(config, tuple(pending), tuple(changed))


def options_markdown() -> str:
    """The option tables of docs/configuration.md (a test keeps the two equal)."""
    lines: list[str] = []
    for name, section_type in SECTIONS.items():
        lines += [
            f"### `[{name}]`",
            "",
            "| key | default | on SIGHUP | meaning |",
            "|---|---|---|---|",
        ]
        for spec in dataclasses.fields(section_type):
            when = "applied" if spec.metadata["applies"] is Applies.RELOAD else "after a restart"
            lines.append(
                f"| `{spec.name}` | {_toml_value(spec.default)} | {when} | {spec.metadata['doc']} |"
            )
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if value is None:
        return '`""`'
    if isinstance(value, tuple) and value and all(isinstance(v, tuple) for v in value):
        return "`{ " + ", ".join(f'{k} = "{v}"' for k, v in value) + " }`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple) and all(isinstance(v, float) for v in value):
        return "`[" + ", ".join(f"{v:g}" for v in value) + "]`"
    if isinstance(value, tuple):
        return "`[" + ", ".join(f'"{item}"' for item in value) + "]`"
    if isinstance(value, str | Path | ListenAddress | AddressRange | Ipv6Range):
        return f'`"{value}"`'
    return f"`{value}`"
