"""The production BSDP codec against the scapy layer, on the same bytes.

`netboot.bsdp.options` (the daemon's fast codec) and `netboot.bsdp.scapy_layer`
(what people, the probe, the fuzzer and the lab read packets with) must agree:
the same values from the same bytes, the same refusals, the same bytes built
from the same message. Vectors are docs/protocols/bsdp.md §8 (shared with
tests/test_bsdp_options.py); the properties draw sub-option lists, framed
well or badly. The last tests read a pcap of a whole exchange with `rdpcap`.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import rdpcap, wrpcap

from netboot.bsdp.options import BsdpMessage, decode, encode
from netboot.bsdp.scapy_layer import (
    BSDP,
    BSDPImage,
    BSDPImageList,
    BSDPMessageType,
    BSDPSelectedImage,
    bsdp_of,
    image_id_parts,
    vendor_specific_options,
)
from netboot.errors import MalformedPacket
from netboot_lab.fuzzer import ScapySource
from netboot_lab.mac import bsdp_exchange
from tests.scapy_bsdp import scapy_decode, scapy_encode
from tests.test_bsdp_dissector import exchange
from tests.test_bsdp_options import ALL, KNOWN, MALFORMED, NON_EMPTY, Vector, messages

vectors = pytest.mark.parametrize("vec", ALL.values(), ids=ALL.keys())


def outcome(decoder: object, raw: bytes) -> BsdpMessage | str:
    """The decoded message, or "malformed"; any other exception fails the test."""
    assert callable(decoder)
    try:
        message = decoder(raw)
    except MalformedPacket:
        return "malformed"
    assert isinstance(message, BsdpMessage)
    return message


# -- the vectors ---------------------------------------------------------------------


@vectors
def test_the_layer_reads_each_vector_as_the_codec(vec: Vector) -> None:
    assert scapy_decode(vec.raw) == decode(vec.raw) == vec.message


@vectors
def test_the_layer_builds_each_vector_byte_for_byte(vec: Vector) -> None:
    assert scapy_encode(vec.message) == encode(vec.message) == vec.raw
    assert bytes(BSDP(vec.raw)) == vec.raw


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_the_layer_refuses_what_the_codec_refuses(raw: bytes) -> None:
    assert outcome(scapy_decode, raw) == outcome(decode, raw) == "malformed"
    assert bytes(BSDP(raw)) == raw  # dissected as raw pieces, never misread or lost


@pytest.mark.parametrize("vec", NON_EMPTY.values(), ids=NON_EMPTY.keys())
def test_truncated_twins_are_refused_by_both(vec: Vector) -> None:
    assert outcome(scapy_decode, vec.truncated) == outcome(decode, vec.truncated) == "malformed"


def test_image_ids_are_dissected_into_their_fields() -> None:
    listing = BSDP(ALL["8.2 ACK[LIST]"].raw)
    images = listing.images()
    assert images is not None
    high_sierra, install = images
    assert (high_sierra.install, high_sierra.kind, high_sierra.index) == (0, 1, 1)
    assert (install.install, install.kind, install.index) == (1, 1, 4096)
    assert install.image_name == b"Install macOS"
    selected = BSDP(ALL["8.3 INFORM[SELECT]"].raw).last(BSDPSelectedImage)
    assert selected is not None and selected.image_id() == 0x01000001
    assert BSDPSelectedImage(**image_id_parts(0x81001000)).image_id() == 0x81001000


def test_summaries_name_the_message() -> None:
    assert BSDP(ALL["8.1 INFORM[LIST]"].raw).summary() == "BSDP LIST"
    assert BSDP(ALL["8.2 ACK[LIST]"].raw).summary() == "BSDP LIST 2 images default 0x01000001"
    assert BSDP(ALL["8.3 INFORM[SELECT]"].raw).summary() == "BSDP SELECT image 0x01000001"
    assert BSDP(ALL["8.5 ACK[FAILED]"].raw).summary() == "BSDP FAILED"


# -- properties ----------------------------------------------------------------------


@settings(max_examples=300)
@given(messages)
def test_both_build_the_same_bytes_and_read_them_back(message: BsdpMessage) -> None:
    try:
        expected = encode(message)
    except ValueError:
        with pytest.raises(ValueError):
            scapy_encode(message)
        return
    assert scapy_encode(message) == expected
    assert scapy_decode(expected) == decode(expected) == message


sub_option = st.tuples(st.sampled_from([*KNOWN, 0, 13, 200, 255]), st.binary(max_size=12))


@settings(max_examples=300)
@given(st.lists(sub_option, max_size=8), st.data())
def test_both_agree_on_sub_option_lists_framed_well_or_badly(
    sub_options: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    raw = b"".join(bytes((code, len(value))) + value for code, value in sub_options)
    if raw and data.draw(st.booleans(), label="cut"):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="cut at")]
    assert outcome(scapy_decode, raw) == outcome(decode, raw)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_both_agree_on_any_bytes(raw: bytes) -> None:
    assert outcome(scapy_decode, raw) == outcome(decode, raw)
    assert bytes(BSDP(raw)) == raw


# -- several option-43 instances and captures ----------------------------------------


def ack(options: list[object]) -> Ether:
    return (
        Ether()
        / IP(src="192.0.2.10", dst="192.0.2.50")
        / UDP(sport=67, dport=68)
        / BOOTP(op=2, xid=7)
        / DHCP(options=[("message-type", "ack"), ("vendor_class_id", b"AAPLBSDPC"), *options])
    )


def test_option_43_instances_are_joined_before_dissecting() -> None:
    # 8.6: a sub-option header at the end of one instance, its data in the next.
    packet = ack([("vendor_specific", bytes.fromhex("01 01 01 09")),
                  ("vendor_specific", bytes.fromhex("05 02 00 00 07 00")), "end"])  # fmt: skip
    message = bsdp_of(Ether(bytes(packet)))
    assert message is not None
    assert message.message_type() == 1
    images = message.images()
    assert images is not None and [record.image_id() for record in images] == [0x02000007]


def test_vendor_specific_options_cut_a_long_message_into_instances() -> None:
    names = [f"Image number {n}".encode() for n in range(1, 41)]
    records = [BSDPImage(kind=1, index=n, image_name=names[n - 1]) for n in range(1, 41)]
    lists = [BSDPImageList(images=records[at : at + 12]) for at in range(0, 40, 12)]
    message = BSDP(options=[BSDPMessageType(msg_type=1), *lists])  # 4 lists of <= 252 bytes
    instances = vendor_specific_options(message)
    assert len(instances) > 1 and all(len(value) <= 255 for _, value in instances)
    read = bsdp_of(Ether(bytes(ack([*instances, "end"]))))
    assert read is not None
    assert [record.image_name for record in read.images() or ()] == names
    assert [image.name.encode() for image in decode(bytes(message)).images or ()] == names


def test_a_non_bsdp_packet_has_no_bsdp() -> None:
    packet = ack([("vendor_specific", b"\x01\x01\x01"), "end"])
    packet[DHCP].options[1] = ("vendor_class_id", b"PXEClient:Arch:00000")
    assert bsdp_of(Ether(bytes(packet))) is None


def test_rdpcap_of_an_exchange_shows_list_select_the_images_and_the_selection(
    tmp_path: Path,
) -> None:
    pcap = tmp_path / "bsdp.pcap"
    frames = [frame for frame in exchange(tmp_path) if isinstance(frame, Packet)]
    wrpcap(str(pcap), frames)
    packets = rdpcap(str(pcap))
    summaries = [packet.summary() for packet in packets]
    assert [summary.split(" / ")[-1] for summary in summaries] == [
        "DHCP Inform BSDP LIST",
        "DHCP Ack BSDP LIST 40 images default 0x01000001",
        "DHCP Inform BSDP SELECT image 0x01000001",
        "DHCP Ack BSDP SELECT image 0x01000001",
        "DHCP Inform BSDP SELECT image 0x01000003",
        "DHCP Ack BSDP SELECT image 0x01000003",
        "DHCP Inform BSDP SELECT image 0x01000999",
        "DHCP Ack BSDP FAILED",
    ]
    for packet, sent in zip(packets, frames, strict=True):
        assert bytes(packet) == bytes(sent)  # registering the layer changes no byte
    listing = bsdp_of(packets[1])
    assert listing is not None
    assert [record.image_name for record in listing.images() or ()] == [
        f"Image number {n}".encode() for n in range(1, 41)
    ]
    shown = packets[1].show(dump=True)
    assert "Image number 40" in shown and "BSDP continued" in shown
    assert "msg_type=SELECT" in packets[3].show(dump=True)


def test_the_fuzzers_layer_made_option_43_is_read_alike_and_is_both_good_and_bad() -> None:
    source = ScapySource("192.0.2.10")
    rng = random.Random(18)
    outcomes = []
    for _ in range(300):
        raw = b"".join(value for _, value in source.bsdp_options(rng))
        outcomes.append(outcome(decode, raw))
        assert outcome(scapy_decode, raw) == outcomes[-1]
    kinds = {o.message_type for o in outcomes if isinstance(o, BsdpMessage)}
    assert {1, 2} <= kinds  # LIST and SELECT get through whole
    assert "malformed" in outcomes  # and fuzzed sub-options get refused


def test_the_lab_reads_a_macs_bsdp_exchange_from_its_capture(tmp_path: Path) -> None:
    pcap = tmp_path / "boot.pcap"
    wrpcap(str(pcap), [frame for frame in exchange(tmp_path) if isinstance(frame, Packet)])
    lines = bsdp_exchange(pcap)
    assert lines[:4] == [
        "192.0.2.50 > 255.255.255.255 DHCP Inform BSDP LIST",
        "192.0.2.10 > 192.0.2.50 DHCP Ack BSDP LIST 40 images default 0x01000001",
        "192.0.2.50 > 255.255.255.255 DHCP Inform BSDP SELECT image 0x01000001",
        "192.0.2.10 > 192.0.2.50 DHCP Ack BSDP SELECT image 0x01000001",
    ]
    assert len(lines) == 8
