"""LZVN, the LZ77 codec of decmpfs types 7 and 8 (macOS 10.10+ kernelcaches and system files).

An LZVN stream is a run of opcodes; each may carry a few literal bytes and a
match (copy M bytes from D bytes back in the output, overlapping allowed). The
opcode classes, as decoded by Apple's reference decoder (`lzfse`
`src/lzvn_decode_base.c`), by the first byte b0:

    sml_d  LLMMMDDD DDDDDDDD            L=b0>>6  M=((b0>>3)&7)+3  D=((b0&7)<<8)|b1
    pre_d  LLMMM110                     same L, M; D = previous D
    lrg_d  LLMMM111 DDDDDDDD DDDDDDDD   same L, M; D = LE16(b1, b2)
    med_d  101LLMMM DDDDDDMM DDDDDDDD   L=(b0>>3)&3  M=((b0&7)<<2 | w&3)+3  D=w>>2
    sml_l  1110LLLL                     L=b0&15 (1..15)
    lrg_l  11100000 LLLLLLLL            L=b1+16
    sml_m  1111MMMM                     M=b0&15 (1..15), D = previous D
    lrg_m  11110000 MMMMMMMM            M=b1+16, D = previous D
    eos    0x06 and 7 padding bytes;  nop 0x0E, 0x16;  undefined: the rest

The literal bytes follow the opcode bytes; the match comes after the literal.
Where the reference decoder writes through raw pointers, this one checks every
count against the input and the expected output size, so a hostile stream
fails with `HfsCompressionError` naming the input offset instead of reading or
allocating past its bounds.

Speed matters (a kernelcache is tens of MB): the opcode class comes from a
256-entry table, the output is one preallocated bytearray filled by slice
assignment (a memmove for literals and non-overlapping matches), and an
overlapping match is built by repeating its period rather than byte by byte.
"""

from __future__ import annotations

from netboot.hfs.errors import HfsCompressionError

# Opcode classes, ordered roughly by how often an encoder emits them.
_SML_D, _MED_D, _PRE_D, _LRG_D, _SML_L, _LRG_L, _SML_M, _LRG_M, _NOP, _EOS, _UNDEFINED = range(11)

EOS_LENGTH = 8
"""The end-of-stream opcode is 0x06 followed by seven padding bytes."""

MAX_EXPANSION = 136
"""No stream decodes to more than 136 times its length (lrg_m: 2 bytes make 271), so a
claimed size beyond that is refused before the output buffer is allocated."""


def _opcode_class(b0: int) -> int:
    if b0 == 0x06:
        return _EOS
    if b0 in (0x0E, 0x16):
        return _NOP
    if 0x70 <= b0 <= 0x7F or 0xD0 <= b0 <= 0xDF or b0 in (0x1E, 0x26, 0x2E, 0x36, 0x3E):
        return _UNDEFINED
    if 0xA0 <= b0 <= 0xBF:
        return _MED_D
    if b0 == 0xE0:
        return _LRG_L
    if 0xE1 <= b0 <= 0xEF:
        return _SML_L
    if b0 == 0xF0:
        return _LRG_M
    if b0 >= 0xF1:
        return _SML_M
    low = b0 & 7
    if low == 7:
        return _LRG_D
    if low == 6:
        return _PRE_D
    return _SML_D


_CLASS = bytes(_opcode_class(b0) for b0 in range(256))
# For the four classes that carry both: literal and match lengths by b0 (med_d's M
# needs two more bits from the operand and is computed inline).
_LITERAL = bytes(
    (b0 >> 3) & 3 if _CLASS[b0] == _MED_D else b0 >> 6 if _CLASS[b0] <= _LRG_D else 0
    for b0 in range(256)
)
_MATCH = bytes(((b0 >> 3) & 7) + 3 if _CLASS[b0] <= _LRG_D else 0 for b0 in range(256))


def lzvn_decode(stream: bytes, expected_size: int, where: str = "LZVN stream") -> bytes:
    """Decode one LZVN stream that must produce exactly `expected_size` bytes and end in eos.

    `where` names the stream in errors (the file and block, as the caller knows
    them); the offset in the message counts bytes from the start of `stream`.
    The output never grows past `expected_size`, whatever the stream claims.
    """
    end = len(stream)
    if expected_size > MAX_EXPANSION * end:
        raise _fault(where, 0, f"{end} bytes cannot decode to {expected_size}")
    out = bytearray(expected_size)
    classes, literals, matches = _CLASS, _LITERAL, _MATCH
    position = 0  # input
    written = 0  # output
    distance = 0
    while position < end:
        opcode_at = position
        b0 = stream[position]
        kind = classes[b0]
        # Each branch sets the literal and match lengths and moves `position` past the
        # opcode bytes; the reference decoder's rule is that the opcode, its literal and
        # at least one more opcode byte (eos, at the latest) must fit in the stream.
        if kind == _SML_D:
            literal = b0 >> 6
            if position + 2 + literal >= end:
                raise _truncated(where, position, b0)
            match = matches[b0]
            distance = ((b0 & 7) << 8) | stream[position + 1]
            position += 2
        elif kind == _LRG_D:
            literal = b0 >> 6
            if position + 3 + literal >= end:
                raise _truncated(where, position, b0)
            match = matches[b0]
            distance = stream[position + 1] | (stream[position + 2] << 8)
            position += 3
        elif kind == _SML_L:
            literal = b0 & 0x0F
            if position + 1 + literal >= end:
                raise _truncated(where, position, b0)
            match = 0
            position += 1
        elif kind == _SML_M:
            literal = 0
            match = b0 & 0x0F
            position += 1
        elif kind == _MED_D:
            literal = literals[b0]
            if position + 3 + literal >= end:
                raise _truncated(where, position, b0)
            operand = stream[position + 1] | (stream[position + 2] << 8)
            match = (((b0 & 7) << 2) | (operand & 3)) + 3
            distance = operand >> 2
            position += 3
        elif kind == _PRE_D:
            literal = b0 >> 6
            if position + 1 + literal >= end:
                raise _truncated(where, position, b0)
            match = matches[b0]
            position += 1
        elif kind == _LRG_L:
            if position + 2 >= end or position + 2 + stream[position + 1] + 16 >= end:
                raise _truncated(where, position, b0)
            literal = stream[position + 1] + 16
            match = 0
            position += 2
        elif kind == _LRG_M:
            if position + 2 >= end:
                raise _truncated(where, position, b0)
            literal = 0
            match = stream[position + 1] + 16
            position += 2
        elif kind == _NOP:
            position += 1
            continue
        elif kind == _EOS:
            if position + EOS_LENGTH > end:
                raise _fault(where, position, "end-of-stream opcode is cut short")
            if written != expected_size:
                raise _fault(
                    where, position, f"stream decodes to {written} bytes, expected {expected_size}"
                )
            return bytes(out)
        else:
            raise _fault(where, position, f"undefined opcode 0x{b0:02x}")
        if written + literal + match > expected_size:
            raise _fault(where, opcode_at, f"output would exceed {expected_size} bytes")
        if literal:
            out[written : written + literal] = stream[position : position + literal]
            written += literal
            position += literal
        if match:
            start = written - distance
            if distance == 0 or start < 0:
                raise _fault(
                    where, opcode_at, f"match distance {distance} reaches before the output"
                )
            if distance >= match:
                out[written : written + match] = out[start : start + match]
            else:
                period = out[start:written]
                out[written : written + match] = (period * (match // distance + 1))[:match]
            written += match
    raise _fault(where, position, "stream ends without an end-of-stream opcode")


def _truncated(where: str, position: int, b0: int) -> HfsCompressionError:
    return _fault(where, position, f"opcode 0x{b0:02x} and its literal run past the stream")


def _fault(where: str, position: int, message: str) -> HfsCompressionError:
    return HfsCompressionError(where, None, f"at LZVN byte {position}: {message}")
