"""The watch for GRUBs that went elsewhere for their configuration (netboot.grub.arrival)."""

from __future__ import annotations

from netboot.grub.arrival import GRUB_NAMES, GrubArrivals, SilentGrub


def test_a_client_that_asks_nothing_under_grub_within_its_patience_is_silent_once() -> None:
    arrivals = GrubArrivals(patience=30.0)
    assert arrivals.next_due() is None
    arrivals.requested("10.0.0.5", "sb/x64/grubx64.efi", 100.0)
    assert arrivals.next_due() == 130.0
    assert arrivals.silent(129.9) == ()
    assert arrivals.silent(130.0) == (SilentGrub("10.0.0.5", 100.0),)
    assert arrivals.silent(500.0) == ()  # reported once
    assert arrivals.next_due() is None


def test_any_request_under_grubs_prefix_means_it_came_back() -> None:
    arrivals = GrubArrivals(patience=30.0)
    for client, name in (
        ("10.0.0.5", "/grub/x86_64-efi/command.lst"),  # found or not, it asked us
        ("10.0.0.6", "/grub/grub.cfg"),
        ("10.0.0.7", "grub/grub.cfg"),
    ):
        arrivals.requested(client, "sb/x64/grubx64.efi", 0.0)
        arrivals.requested(client, name, 2.0)
    assert arrivals.silent(100.0) == ()


def test_other_files_neither_start_nor_end_a_wait() -> None:
    arrivals = GrubArrivals(patience=30.0)
    arrivals.requested("10.0.0.5", "sb/x64/shimx64.efi", 0.0)
    arrivals.requested("10.0.0.6", "sb/x64/grubx64.efi", 0.0)
    arrivals.requested("10.0.0.6", "sb/x64/revocations_sbat.efi", 1.0)
    assert arrivals.silent(100.0) == (SilentGrub("10.0.0.6", 0.0),)


def test_the_newest_hand_out_counts_and_the_oldest_client_is_forgotten_first() -> None:
    arrivals = GrubArrivals(patience=30.0, limit=2)
    arrivals.requested("10.0.0.5", "/sb/x64/grubx64.efi", 0.0)
    arrivals.requested("10.0.0.5", "sb/x64/grubx64.efi", 20.0)  # shim's size probe, then the file
    assert arrivals.silent(40.0) == ()
    arrivals.requested("10.0.0.6", "sb/aa64/grubaa64.efi", 21.0)
    arrivals.requested("10.0.0.7", "sb/x64/grubx64.efi", 22.0)
    assert [s.client for s in arrivals.silent(60.0)] == ["10.0.0.6", "10.0.0.7"]


def test_every_uefi_family_grub_name_is_watched() -> None:
    assert {"sb/x64/grubx64.efi", "sb/aa64/grubaa64.efi", "sb/ia32/grubia32.efi"} <= GRUB_NAMES
