"""Apple Data Compression (ADC), the LZ77 variant of UDCO images (chunk type 0x80000004).

The format is three kinds of token, told apart by the top bits of the first byte
(as decoded by libdmg-hfsplus `dmg/adc.c` and 7-Zip's DmgHandler):

* `1nnnnnnn`: a literal run of n+1 bytes (1..128) that follow the token;
* `0nnnnodd dddddddd`: copy n+3 bytes (3..18) from distance d+1 (1..1024);
* `01nnnnnn dddddddd dddddddd`: copy n+4 bytes (4..67) from distance d+1 (1..65536).

Copies may overlap their own output (distance shorter than length), which is
how runs are encoded. ADC is a legacy format (Mac OS X 10.0 era images); this
pure-Python decoder is correct and bounded rather than fast.
"""

from __future__ import annotations


class AdcError(ValueError):
    """The ADC stream is malformed or does not decode to the expected size."""


def adc_decompress(data: bytes, expected_size: int) -> bytes:
    """Decode `data`, which must produce exactly `expected_size` bytes.

    Decoding stops (with AdcError) as soon as the output would exceed
    `expected_size`, so a hostile stream cannot make it allocate more.
    """
    out = bytearray()
    position, end = 0, len(data)
    while position < end:
        token = data[position]
        if token & 0x80:
            length = (token & 0x7F) + 1
            if position + 1 + length > end:
                raise AdcError(f"literal run at {position} is cut short by the end of data")
            if len(out) + length > expected_size:
                raise AdcError(f"output exceeds {expected_size} bytes at input {position}")
            out += data[position + 1 : position + 1 + length]
            position += 1 + length
            continue
        if token & 0x40:
            if position + 3 > end:
                raise AdcError(f"3-byte copy at {position} is cut short by the end of data")
            length = (token & 0x3F) + 4
            distance = ((data[position + 1] << 8) | data[position + 2]) + 1
            position += 3
        else:
            if position + 2 > end:
                raise AdcError(f"2-byte copy at {position} is cut short by the end of data")
            length = ((token & 0x3F) >> 2) + 3
            distance = (((token & 0x03) << 8) | data[position + 1]) + 1
            position += 2
        if distance > len(out):
            raise AdcError(f"copy at input {position} reaches {distance} bytes back, before start")
        if len(out) + length > expected_size:
            raise AdcError(f"output exceeds {expected_size} bytes at input {position}")
        start = len(out) - distance
        if distance >= length:
            out += out[start : start + length]
        else:
            pattern = out[start:]
            out += (pattern * (length // distance + 1))[:length]
    if len(out) != expected_size:
        raise AdcError(f"decodes to {len(out)} bytes, expected {expected_size}")
    return bytes(out)


def adc_compress(data: bytes) -> bytes:
    """A simple greedy ADC encoder, for building test images (not tuned for ratio or speed).

    It finds matches through a hash of the next three bytes, looking back at
    most 65536 bytes, and emits the 2-byte form whenever it fits.
    """
    out = bytearray()
    literals = bytearray()
    recent: dict[bytes, int] = {}
    position, end = 0, len(data)

    def flush() -> None:
        for start in range(0, len(literals), 128):
            run = literals[start : start + 128]
            out.append(0x80 | (len(run) - 1))
            out.extend(run)
        literals.clear()

    while position < end:
        key = data[position : position + 3]
        candidate = recent.get(key) if len(key) == 3 else None
        recent[key] = position
        length = 0
        if candidate is not None and position - candidate <= 65536:
            while (
                length < 67
                and position + length < end
                and data[candidate + length] == data[position + length]
            ):
                length += 1
        if length < 3:
            literals.append(data[position])
            position += 1
            continue
        flush()
        distance = position - candidate - 1 if candidate is not None else 0
        if length <= 18 and distance < 1024:
            out += bytes([((length - 3) << 2) | (distance >> 8), distance & 0xFF])
        elif length >= 4:
            out += bytes([0x40 | (length - 4), distance >> 8, distance & 0xFF])
        else:  # length 3 but too far for the short form: spell it out
            literals.extend(data[position : position + 3])
        position += length
    flush()
    return bytes(out)
