"""A small UDIF builder for the reader's tests, and the checks that it builds what others read.

This is deliberately not the project's writer (`netboot.udif.writer`): the
reader is tested against files laid out by hand from docs/protocols/udif.md
§2 to §5 and §8, so a mistake shared by reader and writer cannot hide. The
builder uses only the codecs (`Koly.build`, `BlockTable.build`,
`build_resources`), whose bytes are pinned by the vectors in test_udif_trailer.

Independent readers: 7-Zip's Dmg handler (`7zz t`/`7zz x`, which checks every
CRC) and dmg2img must accept what this builder makes; test_udif_reader then
checks that our reader agrees with them byte for byte.
"""

from __future__ import annotations

import bz2
import lzma
import shutil
import subprocess
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import lzfse
import pytest

from netboot.udif.adc import adc_compress
from netboot.udif.blkx import BlockTable, Chunk, ChunkType
from netboot.udif.resources import BlkxEntry, build_resources
from netboot.udif.trailer import Checksum, Koly

SECTOR = 512
FIXED_UUID = bytes.fromhex("00112233445566778899aabbccddeeff")

COMPRESSORS: dict[int, Callable[[bytes], bytes]] = {
    ChunkType.RAW: lambda raw: raw,
    ChunkType.ADC: adc_compress,
    ChunkType.ZLIB: lambda raw: zlib.compress(raw, 9),
    ChunkType.BZIP2: bz2.compress,
    ChunkType.LZFSE: lzfse.compress,
    ChunkType.LZMA: lambda raw: lzma.compress(raw, format=lzma.FORMAT_XZ),
}


@dataclass(frozen=True)
class Part:
    """One blkx entry to build: its expanded bytes (a multiple of 512) and how to store them."""

    name: str
    ident: int
    data: bytes
    kind: int = ChunkType.ZLIB  # chunk type for runs that hold data
    zero_kind: int | None = ChunkType.IGNORE  # type for all-zero runs; None stores them as data
    descriptor: int | None = None
    skip: int = 0  # sectors before this entry that no table covers (they read as zeros)


def require_tool(name: str) -> str:
    """Path of `name` on PATH, or skip the test saying which tool is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not on PATH (Debian: apt-get install 7zip dmg2img qemu-utils)")
    return path


def build_image(
    parts: Sequence[Part],
    *,
    chunk_sectors: int = 2048,
    plst: bool = True,
    segment_id: bytes = FIXED_UUID,
    sector_count: int | None = None,
    lead: bytes = b"",
    data_start: int = 0,
) -> bytes:
    """A flat UDIF image: data fork, XML plist, koly trailer (docs/protocols/udif.md §8).

    `lead` puts bytes before the data fork (the trailer's data fork offset then
    points past them); `data_start` puts that many unused bytes at the start of
    the data fork and makes every chunk offset relative to the end of them, as
    the mish table's data start field allows.
    """
    fork = bytearray(b"\xee" * data_start)
    entries = []
    first_sector = 0
    for part in parts:
        first_sector += part.skip
        table = _table(part, first_sector, chunk_sectors, fork, data_start)
        entries.append(BlkxEntry(part.ident, part.name, "0x0050", table))
        first_sector += len(part.data) // SECTOR
    xml = build_resources(entries, plst=plst)
    master = zlib.crc32(
        b"".join(
            entry.table.checksum.value
            for entry in entries
            if entry.table.checksum.crc32 is not None
        )
    )
    koly = Koly(
        version=4,
        flags=1,
        data_fork_offset=len(lead),
        data_fork_length=len(fork),
        rsrc_fork_offset=0,
        rsrc_fork_length=0,
        segment_number=1,
        segment_count=1,
        segment_id=segment_id,
        data_checksum=Checksum.of_crc32(zlib.crc32(fork)),
        xml_offset=len(lead) + len(fork),
        xml_length=len(xml),
        code_signature_offset=0,
        code_signature_length=0,
        master_checksum=Checksum.of_crc32(master),
        image_variant=1,
        sector_count=first_sector if sector_count is None else sector_count,
    )
    return lead + bytes(fork) + xml + koly.build()


def _table(
    part: Part, first_sector: int, chunk_sectors: int, fork: bytearray, data_start: int
) -> BlockTable:
    assert len(part.data) % SECTOR == 0, "partition data must be whole sectors"
    sectors = len(part.data) // SECTOR
    chunks = []
    crc = 0
    biggest = 0
    for start in range(0, sectors, chunk_sectors):
        count = min(chunk_sectors, sectors - start)
        run = part.data[start * SECTOR : (start + count) * SECTOR]
        if part.zero_kind is not None and not any(run):
            chunks.append(Chunk(part.zero_kind, 0, start, count, 0, 0))
            if part.zero_kind == ChunkType.ZERO:
                crc = zlib.crc32(run, crc)
            continue
        stored = COMPRESSORS[part.kind](run)
        chunks.append(Chunk(part.kind, 0, start, count, len(fork) - data_start, len(stored)))
        fork.extend(stored)
        crc = zlib.crc32(run, crc)
        biggest = max(biggest, count)
    chunks.append(Chunk(ChunkType.TERMINATOR, 0, sectors, 0, len(fork) - data_start, 0))
    table = BlockTable(
        first_sector=first_sector,
        sector_count=sectors,
        data_start=data_start,
        buffer_sectors=biggest + 8 if biggest else 0,
        descriptor=(part.ident & 0xFFFFFFFF) if part.descriptor is None else part.descriptor,
        checksum=Checksum.of_crc32(crc),
        chunks=tuple(chunks),
    )
    return table


def whole_disk(data: bytes, kind: int = ChunkType.ZLIB, **options: int | None) -> bytes:
    """A one-entry image (`-layout NONE`), as in docs/protocols/udif.md §9."""
    zero_kind = options.pop("zero_kind", ChunkType.IGNORE)
    return build_image(
        [Part("whole disk (Apple_HFS : 0)", -1, data, kind, zero_kind)],
        **{key: value for key, value in options.items() if value is not None},  # type: ignore[arg-type]
    )


def sample_disk(sectors: int = 6000, seed: int = 7) -> bytes:
    """Expanded bytes with text, noise and zero stretches, so every chunk type has work."""
    import random

    rng = random.Random(seed)
    out = bytearray(sectors * SECTOR)
    for start in range(0, len(out), 64 * 1024):
        pick = rng.randrange(4)
        length = min(64 * 1024, len(out) - start)
        if pick == 0:
            out[start : start + length] = rng.randbytes(length)
        elif pick == 1:
            text = b"NetBoot UDIF reader sample line %d\n" % start
            out[start : start + length] = (text * (length // len(text) + 1))[:length]
        # pick 2, 3: zeros
    return bytes(out)


def write(directory: Path, data: bytes, name: str = "image.dmg") -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


# -- the builder's own output is accepted by others ----------------------------


@pytest.mark.parametrize(
    "kind",
    [
        ChunkType.RAW,
        ChunkType.ADC,
        ChunkType.ZLIB,
        ChunkType.BZIP2,
        ChunkType.LZFSE,
        ChunkType.LZMA,
    ],
    ids=lambda kind: ChunkType(kind).name,
)
def test_7zip_accepts_the_builders_images_with_every_crc_checked(tmp_path: Path, kind: int) -> None:
    sevenzip = require_tool("7zz")
    image = write(tmp_path, whole_disk(sample_disk(3000), kind, chunk_sectors=512))
    result = subprocess.run(
        [sevenzip, "t", "-tdmg", str(image)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Everything is Ok" in result.stdout
    assert "Warning" not in result.stdout and "Error" not in result.stdout, result.stdout


def test_dmg2img_expands_the_builders_udzo_to_the_original_bytes(tmp_path: Path) -> None:
    dmg2img = require_tool("dmg2img")
    raw = sample_disk(5000)
    image = write(tmp_path, whole_disk(raw))
    out = tmp_path / "out.img"
    subprocess.run([dmg2img, "-s", str(image), str(out)], capture_output=True, check=True)
    assert out.read_bytes() == raw
