"""`netboot images validate` warns when the enabled sets are more than one 8 KiB ACK[LIST] holds.

Names of 246 bytes make 251-byte records, one per option-43 instance: an
8192-byte reply leaves 7,903 bytes for option 43 (docs/protocols/bsdp.md
§4.4), so the header instance and 30 such records fit, and the 31st set is
the first a Mac is not shown.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from netboot.bsdp.bindings import BindingTable
from netboot.bsdp.client import inform_list
from netboot.bsdp.list_capacity import list_overflow
from netboot.bsdp.options import decode_instances
from netboot.bsdp.policy import BsdpPolicy, BsdpSettings, Reply
from netboot.cli import cli
from netboot.dhcpwire.options import Option
from netboot.dhcpwire.packet import build_packet, parse_packet
from netboot.nbi.catalog import scan_catalog
from netboot.nbi.problems import Severity
from netboot_lab.factories import make_set

LONG = "n" * 246
FITTING = 30


def long_named_sets(root: Path, count: int, **plist: object) -> None:
    for number in range(1, count + 1):
        make_set(root, f"Img{number:03d}", Name=LONG, Index=number, **plist)


def test_as_many_sets_as_one_reply_holds_are_fine(tmp_path: Path) -> None:
    long_named_sets(tmp_path, FITTING)
    assert list_overflow(scan_catalog(tmp_path)) == []


def test_one_set_more_is_warned_of_on_the_first_set_past_the_cut(tmp_path: Path) -> None:
    long_named_sets(tmp_path, FITTING + 5)
    (problem,) = list_overflow(scan_catalog(tmp_path))
    assert str(problem.file) == f"Img{FITTING + 1:03d}.nbi/NBImageInfo.plist"
    assert problem.severity is Severity.WARNING
    assert problem.message == (
        f"{FITTING + 5} enabled i386 sets are more than one 8192-byte ACK[LIST] holds: "
        f"a Mac that may boot them all is listed the first {FITTING}, "
        "not this set nor the 4 after it"
    )


def test_the_warning_agrees_with_what_the_server_lists(tmp_path: Path) -> None:
    long_named_sets(tmp_path, FITTING + 5)
    catalog = scan_catalog(tmp_path)
    request = inform_list(1, bytes.fromhex("0016cb123456"), "192.0.2.50", "i386", "Mac")
    policy = BsdpPolicy(BsdpSettings(), BindingTable())
    reply = policy.decide(parse_packet(build_packet(request)), catalog, "192.0.2.10", 0.0)
    assert isinstance(reply, Reply)
    (packet,) = reply.packets
    listed = decode_instances(packet.all_of(Option.VENDOR_SPECIFIC)).images or ()
    assert len(listed) == FITTING
    assert reply.list_cut is not None and reply.list_cut.offered == FITTING + 5


def test_only_sets_a_client_could_be_shown_count(tmp_path: Path) -> None:
    long_named_sets(tmp_path, FITTING)
    make_set(tmp_path, "Off", Name=LONG, Index=900, IsEnabled=False)
    make_set(tmp_path, "OnRequest", Name=LONG, Index=901, FilterOnly=True)
    make_set(tmp_path, "Diagnostics", Name=LONG, Index=902, Kind=3)
    make_set(tmp_path, "PowerPC", Name=LONG, Index=903, Architectures=["ppc"], arch_dir="ppc")
    assert list_overflow(scan_catalog(tmp_path)) == []


def test_validate_prints_the_warning_and_exits_0(tmp_path: Path) -> None:
    long_named_sets(tmp_path, FITTING + 1)
    result = CliRunner().invoke(cli, ["images", "validate", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{tmp_path}/Img031.nbi/NBImageInfo.plist: -: warning: {FITTING + 1} enabled i386 "
        f"sets are more than one 8192-byte ACK[LIST] holds: a Mac that may boot them all "
        f"is listed the first {FITTING}, not this set nor the 0 after it"
    ]
    named = CliRunner().invoke(cli, ["images", "validate", "--root", str(tmp_path), "Img001"])
    assert (named.exit_code, named.stdout) == (0, "")
