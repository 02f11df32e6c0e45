"""TOML configuration: defaults, every key, and errors that name the key."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest

from netboot.config import Config, Ipv6Range, load_config, options_markdown, with_overrides
from netboot.errors import ConfigError

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "netboot.toml"
    path.write_text(text)
    return path


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config == Config()
    assert config.source == str(tmp_path / "netboot.toml")


def test_every_key_is_read(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
            [server]
            root = "/srv/nbimages"
            interfaces = ["eth1", "eth2"]
            [logging]
            format = "json"
            level = "debug"
            """,
        )
    )
    assert config.server.root == Path("/srv/nbimages")
    assert config.server.interfaces == ("eth1", "eth2")
    assert (config.logging.format, config.logging.level) == ("json", "debug")


def test_relative_root_is_taken_from_the_config_files_directory(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[server]\nroot = "images"\n'))
    assert config.server.root == tmp_path / "images"


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        (
            "[server]\nrooot = 'x'\n",
            "server.rooot",
            "unknown key; known keys are root, interfaces",
        ),
        (
            "[tftpd]\nport = 69\n",
            "tftpd",
            "unknown table; known tables are server, dhcp",
        ),
        ("server = 5\n", "server", "must be a table ([server])"),
        ("[server]\nroot = 5\n", "server.root", "must be a non-empty string (a path)"),
        ("[server]\nroot = ''\n", "server.root", "must be a non-empty string"),
        ("[server]\ninterfaces = 'eth0'\n", "server.interfaces", "must be a list of non-empty"),
        ("[server]\ninterfaces = ['']\n", "server.interfaces", "must be a list of non-empty"),
        (
            "[logging]\nformat = 'xml'\n",
            "logging.format",
            "must be one of text, json, journal (got 'xml')",
        ),
        ("[logging]\nlevel = 3\n", "logging.level", "must be one of debug, info, warn"),
        ("[server\n", "-", "is not valid TOML"),
        (
            "[pxe]\nuefi_loader = { efi-x64 = 'grub' }\n",
            "pxe.uefi_loader",
            "efi-x64 must be one of auto, shim, boot_file (got 'grub')",
        ),
        ("[pxe]\nuefi_loader = { bios = 'shim' }\n", "pxe.uefi_loader", "unknown UEFI family"),
        ("[pxe]\nshim_files = { bios = '/x' }\n", "pxe.shim_files", "unknown UEFI family"),
        ("[pxe]\ngrub_files = { efi-x64 = 5 }\n", "pxe.grub_files", "must be a file path"),
        (
            "[pxe]\nloader_assignments = ['52:54:00:00:00:01=ipxe']\n",
            "pxe.loader_assignments",
            "LOADER must be one of auto, shim, boot_file",
        ),
        (
            "[pxe]\nloader_assignments = ['nope=shim']\n",
            "pxe.loader_assignments",
            "each entry must be MAC=LOADER",
        ),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, key: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.file == str(path)
    assert raised.value.key == key
    assert message in raised.value.message
    assert str(raised.value).startswith(f"{path}: {key}: ")


def test_signed_chain_paths_are_taken_from_the_config_files_directory(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[pxe]\nshim_files = { efi-x64 = 'sb/shim.efi' }\n"
        "grub_files = { efi-x64 = '/usr/lib/grub.efi' }\n"
        "loader_assignments = ['52:54:00:00:00:01 = boot_file']\n",
    )
    pxe = load_config(path).pxe
    assert pxe.shim_files == (("efi-x64", str(tmp_path / "sb/shim.efi")),)
    assert pxe.grub_files == (("efi-x64", "/usr/lib/grub.efi"),)
    assert [(str(mac), loader) for mac, loader in pxe.loader_assignments] == [
        ("52:54:00:00:00:01", "boot_file")
    ]


def test_binary_garbage_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(path)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path)


def test_command_line_overrides_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[server]\nroot = "images"\n[logging]\nlevel = "warn"'))
    overridden = with_overrides(
        config, server__root="cli-root", server__interfaces=["veth0"], logging__format="json"
    )
    assert overridden.server.root == Path.cwd() / "cli-root"
    assert overridden.server.interfaces == ("veth0",)
    assert overridden.logging == type(config.logging)(format="json", level="warn")
    assert overridden.source == f"{config.source} + command line"


def test_command_line_values_are_checked_like_the_file() -> None:
    with pytest.raises(ConfigError) as raised:
        with_overrides(Config(), logging__format="yaml")
    assert (raised.value.file, raised.value.key) == ("command line", "logging.format")


def test_docs_show_every_option_with_its_default() -> None:
    text = DOCS.read_text()
    begin, end = "<!-- options:begin -->\n", "<!-- options:end -->"
    documented = text[text.index(begin) + len(begin) : text.index(end)]
    assert documented.strip() == options_markdown().strip(), (
        "docs/configuration.md is out of date; paste this between the markers:\n"
        + options_markdown()
    )


def test_adaptive_retransmission_keys_are_read(tmp_path: Path) -> None:
    assert (Config().tftp.adaptive_timeout, Config().tftp.min_retry_timeout) == (True, 0.01)
    config = load_config(
        write(tmp_path, "[tftp]\nadaptive_timeout = false\nmin_retry_timeout = 10\n")
    )
    assert (config.tftp.adaptive_timeout, config.tftp.min_retry_timeout) == (False, 10.0)
    assert isinstance(config.tftp.min_retry_timeout, float)


@pytest.mark.parametrize("value", ["0", "-0.01", "10.001", "true", "'0.1'", "nan", "inf"])
def test_min_retry_timeout_is_above_0_and_at_most_10_seconds(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"[tftp]\nmin_retry_timeout = {value}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.key == "tftp.min_retry_timeout"
    assert "must be a number of seconds above 0 and at most 10" in raised.value.message


def test_the_dhcp6_table_is_read_and_typed(tmp_path: Path) -> None:
    dhcp6 = load_config(
        write(
            tmp_path,
            """
            [dhcp6]
            mode = "full"
            pool = "fd4e:4254:0:1::1000 - fd4e:4254:0:1::1fff"
            lease_time = 600
            dns_servers = ["fd4e:4254:0:1::53", "2001:db8::53"]
            domain_search = ["lab.example", "example.org."]
            rapid_commit = false
            preference = 0
            router_advertisements = true
            """,
        )
    ).dhcp6
    assert dhcp6.mode == "full"
    assert dhcp6.pool == Ipv6Range(
        IPv6Address("fd4e:4254:0:1::1000"), IPv6Address("fd4e:4254:0:1::1fff")
    )
    assert dhcp6.pool.prefix == IPv6Network("fd4e:4254:0:1::/64")
    assert str(dhcp6.pool) == "fd4e:4254:0:1::1000-fd4e:4254:0:1::1fff"
    assert dhcp6.dns_servers == (IPv6Address("fd4e:4254:0:1::53"), IPv6Address("2001:db8::53"))
    assert dhcp6.domain_search == ("lab.example", "example.org.")
    assert (dhcp6.lease_time, dhcp6.rapid_commit, dhcp6.preference) == (600, False, 0)
    assert dhcp6.router_advertisements is True


def test_dhcp6_is_off_by_default() -> None:
    dhcp6 = Config().dhcp6
    assert (dhcp6.mode, dhcp6.port, dhcp6.pool, dhcp6.lease_time) == ("off", 547, None, 3600)
    assert (dhcp6.rapid_commit, dhcp6.preference, dhcp6.router_advertisements) == (True, 255, False)


@pytest.mark.parametrize(
    ("line", "key", "message"),
    [
        ("mode = 'stateless'", "dhcp6.mode", "must be one of off, proxy, full"),
        ("port = 70000", "dhcp6.port", "must be an integer from 0 to 65535"),
        ("pool = 'fd00::1'", "dhcp6.pool", "must be FIRST-LAST, two IPv6 addresses"),
        ("pool = '10.0.0.1-10.0.0.9'", "dhcp6.pool", "FIRST must be an IPv6 address"),
        ("pool = 'fd00::9-fd00::1'", "dhcp6.pool", "FIRST not above LAST"),
        ("pool = 'fd00::1-fd00:0:0:1::1'", "dhcp6.pool", "must lie in one /64"),
        ("pool = 'fe80::1-fe80::9'", "dhcp6.pool", "must be unicast addresses"),
        ("pool = 'fd00::1-fd00::1:1'", "dhcp6.pool", "holds more than 65536 addresses"),
        ("pool = 'ff02::1-ff02::9'", "dhcp6.pool", "must be unicast addresses"),
        ("lease_time = 10", "dhcp6.lease_time", "must be an integer from 60"),
        ("dns_servers = ['10.0.0.53']", "dhcp6.dns_servers", "each entry must be an IPv6 address"),
        ("dns_servers = 'fd00::53'", "dhcp6.dns_servers", "must be a list of non-empty strings"),
        ("domain_search = ['a..b']", "dhcp6.domain_search", "must be a domain name"),
        ("domain_search = ['" + "x" * 64 + ".org']", "dhcp6.domain_search", "1 to 63"),
        ("domain_search = ['ex ample.org']", "dhcp6.domain_search", "must be a domain name"),
        ("domain_search = ['bücher.example']", "dhcp6.domain_search", "ASCII labels"),
        ("rapid_commit = 'yes'", "dhcp6.rapid_commit", "must be true or false"),
        ("preference = 256", "dhcp6.preference", "must be an integer from 0 to 255"),
        ("router_advertisements = 1", "dhcp6.router_advertisements", "must be true or false"),
    ],
)
def test_bad_dhcp6_values_name_the_key(tmp_path: Path, line: str, key: str, message: str) -> None:
    path = write(tmp_path, f"[dhcp6]\n{line}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.key == key
    assert message in raised.value.message


@pytest.mark.parametrize(
    "url", ["postgresql://netboot@db.example:5432/leases", "postgres:///leases?host=/run/pg"]
)
def test_a_lease_database_url_is_kept_whole(tmp_path: Path, url: str) -> None:
    """pathlib would collapse the URL's `//` (and make it relative to the file)."""
    config = load_config(write(tmp_path, f'[dhcp]\nlease_database = "{url}"\n'))
    assert config.dhcp.lease_database == url
    assert with_overrides(Config(), dhcp__lease_database=url).dhcp.lease_database == url
    path = load_config(write(tmp_path, '[dhcp]\nlease_database = "leases.db"\n'))
    assert path.dhcp.lease_database == tmp_path / "leases.db"
