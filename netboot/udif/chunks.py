"""Decoding one chunk of a UDIF data fork into exactly the bytes its entry promises.

Every decoder here is bounded: it never produces more than `expected_size + 1`
bytes, so a zip bomb (a few kilobytes claiming 1 MiB but inflating to 1 GiB)
is stopped after the first excess byte, not after the allocation. zlib, bz2 and
lzma do this with `max_length`; ADC is our own decoder; LZFSE goes through the
`lzfse` package's C library with a fixed-size output buffer (see `_lzfse`).

The stdlib decompressors release the GIL while they work, which is what lets
`UdifImage.copy_raw` decode chunks on several threads.
"""

from __future__ import annotations

import bz2
import ctypes
import lzma
import zlib
from collections.abc import Callable
from typing import Protocol

import lzfse

from netboot.errors import UdifError
from netboot.udif.adc import AdcError, adc_decompress
from netboot.udif.blkx import ChunkType, chunk_type_name

CHUNK_NAMES: dict[int, str] = {kind.value: kind.name.lower() for kind in ChunkType}
# qemu's limit for one chunk, compressed and expanded (block/dmg.c DMG_LENGTHS_MAX).
MAX_CHUNK_SIZE = 64 << 20
# XZ streams name their dictionary size; hdiutil and liblzma presets stay <= 64 MiB.
LZMA_MEMORY_LIMIT = 128 << 20


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


def decode_chunk(
    chunk_type: int, data: bytes, expected_size: int, image: str, offset: int
) -> bytes:
    """Decode one chunk's stored bytes (read from file offset `offset` of `image`).

    Returns exactly `expected_size` bytes or raises UdifError naming the image,
    the offset and the chunk type. Zero-fill and ignore chunks need no data;
    comments and terminators decode to nothing.
    """
    name = CHUNK_NAMES.get(chunk_type, chunk_type_name(chunk_type))
    if expected_size > MAX_CHUNK_SIZE:
        raise UdifError(
            image, offset, f"{name} chunk of {expected_size} bytes exceeds the 64 MiB limit"
        )
    decoder = _DECODERS.get(chunk_type)
    if decoder is None:
        raise UdifError(image, offset, f"unknown chunk type 0x{chunk_type:08X}")
    try:
        out = decoder(data, expected_size)
    except (zlib.error, OSError, EOFError, lzma.LZMAError, AdcError, lzfse.error) as error:
        raise UdifError(image, offset, f"{name} chunk does not decode: {error}") from None
    except _SizeError as error:
        raise UdifError(image, offset, f"{name} chunk {error}") from None
    return out


class _SizeError(Exception):
    """The stream decoded cleanly but to the wrong size."""


def _check_size(produced: int, expected: int, *, more: bool) -> None:
    if more or produced > expected:
        raise _SizeError(f"inflates to more than the {expected} bytes its entry claims")
    if produced < expected:
        raise _SizeError(f"inflates to {produced} bytes, its entry claims {expected}")


def _zero(data: bytes, expected: int) -> bytes:
    return bytes(expected)


def _nothing(data: bytes, expected: int) -> bytes:
    _check_size(0, expected, more=False)
    return b""


def _raw(data: bytes, expected: int) -> bytes:
    if len(data) != expected:
        raise _SizeError(f"stores {len(data)} bytes, its entry claims {expected}")
    return data


def _stream(decompressor: _Decompressor, data: bytes, expected: int) -> bytes:
    """Run a stdlib decompressor for at most expected + 1 bytes of output."""
    out = decompressor.decompress(data, expected + 1)
    if len(out) > expected:
        _check_size(len(out), expected, more=True)
    if not decompressor.eof:
        # Exactly `expected` so far: either the stream ends here (eof after one
        # more call), produces more (too big), or is cut short (truncated).
        more = decompressor.decompress(b"", 1)
        if more:
            _check_size(len(out), expected, more=True)
        if not decompressor.eof:
            raise EOFError(f"stream ends early after {len(out)} bytes")
    _check_size(len(out), expected, more=False)
    return out


class _ZlibAdapter:
    """zlib's decompressobj keeps unconsumed input itself; give it bz2/lzma's interface."""

    def __init__(self) -> None:
        self._inner = zlib.decompressobj()

    @property
    def eof(self) -> bool:
        return self._inner.eof

    def decompress(self, data: bytes, max_length: int = -1, /) -> bytes:
        pending = self._inner.unconsumed_tail + data
        return self._inner.decompress(pending, max(max_length, 0))


def _zlib(data: bytes, expected: int) -> bytes:
    return _stream(_ZlibAdapter(), data, expected)


def _bzip2(data: bytes, expected: int) -> bytes:
    return _stream(bz2.BZ2Decompressor(), data, expected)


def _lzma(data: bytes, expected: int) -> bytes:
    # FORMAT_AUTO takes the XZ container 7-Zip expects and also a bare .lzma stream.
    return _stream(lzma.LZMADecompressor(lzma.FORMAT_AUTO, LZMA_MEMORY_LIMIT), data, expected)


def _adc(data: bytes, expected: int) -> bytes:
    return adc_decompress(data, expected)


def _lzfse(data: bytes, expected: int) -> bytes:
    """LZFSE through the reference decoder with an output buffer of expected + 1 bytes.

    The `lzfse` package's `decompress()` grows its buffer until the stream
    ends, so a bomb would be inflated whole; the reference library it wraps,
    `lzfse_decode_buffer`, stops when the buffer is full. The package's
    extension module exports that symbol, so we call it directly. Should a
    build not export it, the block headers are walked first instead (their
    declared sizes must add up) and `decompress()` is used.
    """
    if _DECODE_BUFFER is None:
        _lzfse_declared_size(data, expected)
        out: bytes = lzfse.decompress(data)
        _check_size(len(out), expected, more=False)
        return out
    buffer = ctypes.create_string_buffer(expected + 1)
    produced = _DECODE_BUFFER(buffer, expected + 1, data, len(data), None)
    if produced == 0 and expected > 0:
        raise lzfse.error("LZFSE stream is corrupt")
    _check_size(produced, expected, more=produced > expected)
    return buffer.raw[:expected]


def _lzfse_declared_size(data: bytes, expected: int) -> None:
    """Check that the LZFSE block headers add up to `expected` raw bytes.

    Block layout from the reference `lzfse_internal.h`: every block starts with
    a 4-byte magic and the little-endian u32 count of raw bytes it decodes to.
    """
    position, total = 0, 0
    while True:
        magic = data[position : position + 4]
        if magic == b"bvx$":
            break
        if len(data) < position + 8:
            raise lzfse.error(f"LZFSE block header at {position} is cut short")
        raw_bytes = int.from_bytes(data[position + 4 : position + 8], "little")
        if magic == b"bvx-":
            size = 8 + raw_bytes
        elif magic == b"bvxn":
            size = 12 + int.from_bytes(data[position + 8 : position + 12], "little")
        elif magic == b"bvx2":
            fields = [
                int.from_bytes(data[position + at : position + at + 8], "little")
                for at in (8, 16, 24)
            ]
            header_size = fields[2] & 0xFFFFFFFF
            literal_payload = (fields[0] >> 20) & 0xFFFFF
            lmd_payload = (fields[1] >> 40) & 0xFFFFF
            size = header_size + literal_payload + lmd_payload
        else:
            raise lzfse.error(f"unknown LZFSE block magic {magic!r} at {position}")
        total += raw_bytes
        position += size
        if total > expected:
            raise _SizeError(f"declares more than the {expected} bytes its entry claims")


_DECODERS: dict[int, Callable[[bytes, int], bytes]] = {
    ChunkType.ZERO: _zero,
    ChunkType.IGNORE: _zero,
    ChunkType.RAW: _raw,
    ChunkType.ADC: _adc,
    ChunkType.ZLIB: _zlib,
    ChunkType.BZIP2: _bzip2,
    ChunkType.LZFSE: _lzfse,
    ChunkType.LZMA: _lzma,
    ChunkType.COMMENT: _nothing,
    ChunkType.TERMINATOR: _nothing,
}


def _load_decode_buffer() -> Callable[..., int] | None:
    """`size_t lzfse_decode_buffer(uint8_t *dst, size_t, const uint8_t *src, size_t, void *)`."""
    try:
        library = ctypes.CDLL(lzfse.__file__)
        function = library.lzfse_decode_buffer
    except (OSError, AttributeError, TypeError):
        return None
    function.restype = ctypes.c_size_t
    function.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_void_p,
    ]
    decode: Callable[..., int] = function
    return decode


_DECODE_BUFFER = _load_decode_buffer()
