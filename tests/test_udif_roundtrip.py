"""Raw bytes -> UDIF -> raw bytes is the identity, for every format and awkward size.

Hypothesis builds raw images from runs of zeros, text and random bytes, with
sizes around the sector (512) and chunk (2048 sectors) boundaries; each is
written as UDZO, UDRO, UDBZ and ULFO, then read back three ways: the reader's
random access, the writer's own raw output, and a chunk-by-chunk verify. Sizes
that are not whole sectors come back padded with zeros to the next sector (UDIF
has no partial sectors); an empty input is refused (see test_udif_writer).
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from netboot.udif.conversion import OutputFormat
from netboot.udif.reader import UdifImage
from netboot.udif.writer import write_image
from tests.udif_disks import content

SECTOR = 512
CHUNK = 2048 * SECTOR
FORMATS = [OutputFormat.UDZO, OutputFormat.UDRO, OutputFormat.UDBZ, OutputFormat.ULFO]
BOUNDARY_SIZES = [1, 511, 512, 513, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 512]

run = st.one_of(
    st.integers(1, 3 * CHUNK).map(bytes),  # zeros, up to 3 chunks
    st.builds(lambda n, word: (word * (n // len(word) + 1))[:n], st.integers(1, CHUNK),
              st.binary(min_size=1, max_size=40)),  # compressible
    st.builds(lambda n, rng: rng.randbytes(n), st.integers(1, CHUNK // 2),
              st.randoms(use_true_random=False)),  # incompressible
)  # fmt: skip


@st.composite
def raw_images(draw: st.DrawFn) -> bytes:
    """Runs glued together, cut (or zero-padded) to a size near a boundary or anywhere."""
    body = b"".join(draw(st.lists(run, min_size=1, max_size=5)))
    size = draw(
        st.one_of(
            st.sampled_from(BOUNDARY_SIZES),
            st.integers(1, 3 * CHUNK),
            st.just(len(body)),
        )
    )
    return body[:size].ljust(size, b"\0")


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % SECTOR)


def check_round_trip(work: Path, data: bytes, fmt: OutputFormat, layout: str) -> bytes:
    """Write `data` as `fmt`, read it back every way; returns the expanded disk."""
    source = work / "in.raw"
    source.write_bytes(data)
    dmg, raw = work / "out.dmg", work / "out.raw"
    write_image(source, dmg, fmt, layout=layout, workers=2)
    start = 72 * SECTOR if layout == "apm" else 0
    with UdifImage.open(dmg) as image:
        disk = image.read(0, image.size)
        report = image.verify()
    assert report.ok, report.problems
    assert disk[start : start + len(data)] == data
    assert not any(disk[start + len(data) : start + len(padded(data))])
    if layout == "bare":
        assert disk == padded(data)
    write_image(dmg, raw, "raw")
    # The disk is the input itself: raw -> dmg -> raw gives the input back, to the
    # byte, also when its length is not whole sectors.
    assert raw.read_bytes() == (disk if layout == "apm" else data)
    return disk


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_boundary_sizes_round_trip(tmp_path: Path, size: int, fmt: OutputFormat) -> None:
    check_round_trip(tmp_path, content(random.Random(size), size), fmt, "bare")


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=raw_images(),
    fmt=st.sampled_from(FORMATS),
    layout=st.sampled_from(["bare", "auto"]),
    reads=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 3 * CHUNK)), max_size=8),
)
def test_round_trip_is_byte_identical(
    data: bytes, fmt: OutputFormat, layout: str, reads: list[tuple[float, int]]
) -> None:
    assume(not data.startswith(b"sprs"))  # a sparse image's magic: refused, not a disk
    with tempfile.TemporaryDirectory() as directory:
        disk = check_round_trip(Path(directory), data, fmt, layout)
        with UdifImage.open(Path(directory) / "out.dmg") as image:
            for fraction, size in reads:
                offset = int(fraction * image.size)
                assert image.read(offset, size) == disk[offset : offset + size]
