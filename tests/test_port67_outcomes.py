"""The tables from outcome kind to counter and journey step, and the floors they rest on.

Every kind must say what it counts in each handler and which step of a
client's journey it marks (or None, deliberately); every counter of /metrics
must be reachable from some kind; the steps must be those the status page
shows today. The floors of docs/architecture.md are checked on the source:
`netboot.dhcp` never imports `netboot.bsdp`, `netboot.bsdp` uses only the
DHCP floor, and neither imports `netboot.port67`, which sits above both.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from netboot.admin.machines import SIDE_STEPS, STAGES
from netboot.dhcpwire.outcome_kind import OutcomeKind as K
from netboot.lab.stages import BOOT_INFO, LEASED
from netboot_services.bsdp import BsdpCounters
from netboot_services.counters import Counters
from netboot_services.outcomes import (
    BSDP_COUNTERS,
    JOURNEY_STAGES,
    NOT_REQUESTS,
    PXE_COUNTERS,
    tally,
)
from netboot_services.pxe import PxeCounters

ROOT = Path(__file__).resolve().parent.parent

TABLES = [
    pytest.param(BSDP_COUNTERS, BsdpCounters, id="bsdp"),
    pytest.param(PXE_COUNTERS, PxeCounters, id="pxe"),
]


@pytest.mark.parametrize(("table", "counters"), TABLES)
def test_every_kind_counts_one_field_of_its_handler_or_none(
    table: dict[K, str | None], counters: type[Counters]
) -> None:
    assert set(table) == set(K)
    names = {f.name for f in fields(counters)}
    for kind, counter in table.items():
        assert counter is None or counter in names, kind
        assert counter != "requests", kind  # counted by the rule, not the table


@pytest.mark.parametrize(("table", "counters"), TABLES)
def test_every_counter_is_reached_by_some_kind(
    table: dict[K, str | None], counters: type[Counters]
) -> None:
    reached = {counter for counter in table.values() if counter is not None} | {"requests"}
    assert reached == {f.name for f in fields(counters)}


def test_counters_keep_their_metric_names() -> None:
    assert list(BsdpCounters().as_dict()) == [
        "requests", "list_replies", "select_replies", "failed_replies", "offer_replies",
        "ignored",
    ]  # fmt: skip
    assert list(PxeCounters().as_dict()) == [
        "requests", "proxy_offers", "boot_server_acks", "offers", "acks", "naks", "releases",
        "declines", "informs", "exhausted", "ignored", "rival_offers",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "pxe", "bsdp"),
    [
        (K.PROXY_OFFER, "proxy_offers", None),
        (K.BOOT_SERVER_ACK, "boot_server_acks", None),
        (K.OFFER, "offers", None),
        (K.ACK, "acks", None),
        (K.NAK, "naks", None),
        (K.INFORM_ACK, "informs", None),
        (K.RELEASED, "releases", None),
        (K.DECLINED, "declines", None),
        (K.POOL_EXHAUSTED, "exhausted", None),
        (K.IGNORED, "ignored", None),
        (K.RIVAL_OFFER, "rival_offers", None),
        (K.BSDP_LIST, None, "list_replies"),
        (K.BSDP_SELECT, None, "select_replies"),
        (K.BSDP_FAILED, None, "failed_replies"),
        (K.BSDP_OFFER, None, "offer_replies"),
        (K.BSDP_IGNORED, None, "ignored"),
        (K.MALFORMED, None, "ignored"),
        (K.OVERHEARD, None, None),
    ],
)
def test_each_kind_counts_where_it_did_when_summaries_were_parsed(
    kind: K, pxe: str | None, bsdp: str | None
) -> None:
    assert (PXE_COUNTERS[kind], BSDP_COUNTERS[kind]) == (pxe, bsdp)


def test_journey_steps_are_total_and_known_to_the_status_page() -> None:
    assert set(JOURNEY_STAGES) == set(K)
    steps = {step for step in JOURNEY_STAGES.values() if step is not None}
    assert steps <= set(STAGES) | set(SIDE_STEPS)
    assert set(SIDE_STEPS) <= steps
    assert {
        K.BSDP_LIST: "bsdp list",
        K.BSDP_SELECT: "bsdp select",
        K.BSDP_OFFER: "bsdp offer",
        K.PROXY_OFFER: "proxy offer",
        K.BOOT_SERVER_ACK: "4011 ack",
        K.OFFER: "dhcp offer",
        K.ACK: "dhcp ack",
        K.NAK: "nak",
        K.INFORM_ACK: "inform ack",
        K.RELEASED: "dhcp release",
        K.DECLINED: "dhcp decline",
        **dict.fromkeys(
            (K.BSDP_FAILED, K.BSDP_IGNORED, K.POOL_EXHAUSTED, K.IGNORED, K.MALFORMED),
        ),
        **dict.fromkeys((K.OVERHEARD, K.RIVAL_OFFER)),
    } == JOURNEY_STAGES


@pytest.mark.parametrize("kind", list(K))
def test_tally_counts_requests_and_the_kinds_own_counter(kind: K) -> None:
    counters = PxeCounters()
    tally(counters, PXE_COUNTERS, kind)
    expected = {"requests": 0 if kind in NOT_REQUESTS else 1}
    counter = PXE_COUNTERS[kind]
    if counter is not None:
        expected[counter] = 1
    assert {name: value for name, value in counters.as_dict().items() if value} == {
        name: value for name, value in expected.items() if value
    }


def test_outcome_kinds_are_the_json_log_values() -> None:
    assert {kind.value for kind in K} == {kind.name.lower() for kind in K}


def test_the_lab_reads_outcome_values_the_daemon_writes() -> None:
    assert K(LEASED) is K.ACK
    assert {K(value) for value in BOOT_INFO} == {K.PROXY_OFFER, K.BOOT_SERVER_ACK}
