"""Model scoping: PlatformSupport.plist, board ids to models, T2 Macs, validate's warnings."""

from __future__ import annotations

import plistlib
from pathlib import PurePosixPath

import pytest

from netboot.nbi.mac_models import (
    KNOWN_MODELS,
    MODEL_BOARD_IDS,
    T2_MODELS,
    PlatformSupport,
    PlatformSupportError,
    cannot_netboot,
    models_for_board,
    parse_platform_support,
    scope_models,
    spelled_differently,
)
from netboot.nbi.model import parse_image_info
from netboot.nbi.problems import Severity
from netboot_lab.factories import plist_dict

FILE = PurePosixPath("Alpha.nbi/NBImageInfo.plist")


def test_every_t2_model_is_in_the_table_with_the_board_id_opencore_gives() -> None:
    # Board ids from OpenCorePkg's database, as the installers brief lists them.
    assert models_for_board("Mac-7BA5B2D9E42DDD94") == ("iMacPro1,1",)
    assert models_for_board("Mac-27AD2F918AE68F61") == ("MacPro7,1",)
    assert T2_MODELS <= KNOWN_MODELS
    assert len(T2_MODELS) == 16


def test_board_ids_shared_and_several_per_model() -> None:
    assert models_for_board("Mac-F221BEC8") == ("MacPro4,1", "MacPro5,1")
    imac17 = dict(MODEL_BOARD_IDS)["iMac17,1"]
    assert len(imac17) == 3
    assert all(models_for_board(board) == ("iMac17,1",) for board in imac17)
    assert models_for_board("Mac-0000000000000000") == ()


def test_the_last_non_t2_imacs_netboot() -> None:
    assert not cannot_netboot("iMac19,1")
    assert not cannot_netboot("iMac19,2")
    assert cannot_netboot("iMacPro1,1")
    assert cannot_netboot("iMac20,1")


def test_platform_support_with_both_keys_binary_or_xml() -> None:
    plist = {
        "SupportedModelProperties": ["MacBookAir6,2", "iMac14,1"],
        "SupportedBoardIds": ["Mac-7DF21CB3ED6977E5"],
    }
    for fmt in (plistlib.FMT_XML, plistlib.FMT_BINARY):
        support = parse_platform_support(plistlib.dumps(plist, fmt=fmt))
        assert support.models == ("MacBookAir6,2", "iMac14,1")
        assert support.board_ids == ("Mac-7DF21CB3ED6977E5",)


def test_platform_support_with_board_ids_only_like_10_11() -> None:
    support = parse_platform_support(
        plistlib.dumps({"SupportedBoardIds": ["Mac-F60DEB81FF30ACF6"]})
    )
    assert support == PlatformSupport(models=(), board_ids=("Mac-F60DEB81FF30ACF6",))


@pytest.mark.parametrize(
    "data",
    [b"not a plist", plistlib.dumps([1]), plistlib.dumps({"SupportedBoardIds": "Mac-1"})],
)
def test_platform_support_refuses_what_apple_never_writes(data: bytes) -> None:
    with pytest.raises(PlatformSupportError):
        parse_platform_support(data)


def test_scope_resolves_board_ids_and_leaves_t2_out() -> None:
    support = PlatformSupport(
        models=("iMac19,1",),
        board_ids=(
            "Mac-7BA5B2D9E42DDD94",  # iMacPro1,1 (T2)
            "Mac-F221BEC8",  # MacPro4,1 and MacPro5,1
            "Mac-AA95B1DDAB278B95",  # iMac19,1 again
            "Mac-0000000000000000",
        ),
    )
    scope = scope_models(support, exclude_t2=True)
    assert scope.enabled == ("MacPro4,1", "MacPro5,1", "iMac19,1")
    assert scope.excluded == ("iMacPro1,1",)
    assert scope.unknown_board_ids == ("Mac-0000000000000000",)
    kept = scope_models(support, exclude_t2=False, exclude=["MacPro4,1"])
    assert kept.enabled == ("MacPro5,1", "iMac19,1", "iMacPro1,1")
    assert kept.excluded == ("MacPro4,1",)
    assert not set(kept.enabled) & set(kept.excluded)


def test_models_sort_by_number_within_a_family() -> None:
    support = PlatformSupport(models=("iMac10,1", "iMac9,1", "MacBookPro11,1"), board_ids=())
    assert scope_models(support, exclude_t2=True).enabled == (
        "MacBookPro11,1",
        "iMac9,1",
        "iMac10,1",
    )


def test_case_only_spelling_is_found() -> None:
    assert spelled_differently("MacBooKAir6,2") == "MacBookAir6,2"
    assert spelled_differently("MacBookAir6,2") is None
    assert spelled_differently("Unknown1,1") is None


def _warnings(enabled: list[str]) -> list[str]:
    parsed = parse_image_info(plist_dict(EnabledSystemIdentifiers=enabled), FILE)
    assert parsed.info is not None
    return [
        p.message
        for p in parsed.problems
        if p.key == "EnabledSystemIdentifiers" and p.severity is Severity.WARNING
    ]


def test_validate_warns_about_an_enabled_t2_model() -> None:
    messages = _warnings(["iMac18,3", "iMacPro1,1"])
    assert len(messages) == 1
    assert "iMacPro1,1 has a T2 chip and cannot NetBoot" in messages[0]


def test_validate_warns_about_a_case_only_typo() -> None:
    (message,) = _warnings(["MacBooKAir6,2"])
    assert "did you mean MacBookAir6,2" in message


def test_validate_is_quiet_for_models_that_netboot() -> None:
    assert _warnings(["iMac19,1", "MacBookPro14,3", "Unknown9,9"]) == []
