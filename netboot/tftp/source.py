"""Where a transfer's bytes come from: a file read block by block, never whole, or bytes
made for the request (a GRUB configuration).

Sessions read strictly in order and keep the blocks of their current window
themselves, so a source only ever moves forward. That is what makes netascii
(RFC 1350's line-ending conversion, which changes every later offset) as cheap
as octet mode.
"""

from __future__ import annotations

from typing import BinaryIO, Protocol


class BlockSource(Protocol):
    size: int | None
    """Bytes the client will receive, when known before sending (for tsize)."""

    def read(self, count: int) -> bytes:
        """Up to `count` bytes; fewer only at the end."""
        ...

    def close(self) -> None: ...


class OctetSource:
    """A file sent byte for byte."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream = stream
        self.size: int | None = size

    def read(self, count: int) -> bytes:
        first = self._stream.read(count)
        if len(first) == count or not first:
            return first  # a buffered file gives the whole block in one read
        chunks = [first]
        count -= len(first)
        while count > 0:
            chunk = self._stream.read(count)
            if not chunk:
                break
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self._stream.close()


class NetasciiSource:
    """A file sent as netascii: LF becomes CR LF, a bare CR becomes CR NUL."""

    def __init__(self, stream: BinaryIO, chunk_size: int = 65536) -> None:
        self._stream = stream
        self._chunk_size = chunk_size
        self._pending = bytearray()
        self._eof = False
        self.size: int | None = None

    def read(self, count: int) -> bytes:
        while len(self._pending) < count and not self._eof:
            chunk = self._stream.read(self._chunk_size)
            if not chunk:
                self._eof = True
                break
            self._pending += netascii_bytes(chunk)
        out = bytes(self._pending[:count])
        del self._pending[:count]
        return out

    def close(self) -> None:
        self._stream.close()


class BytesSource:
    """Content already in memory, sent byte for byte (netascii: see `netascii_bytes`)."""

    def __init__(self, content: bytes) -> None:
        self._content = memoryview(content)
        self._offset = 0
        self.size: int | None = len(content)

    def read(self, count: int) -> bytes:
        block = bytes(self._content[self._offset : self._offset + count])
        self._offset += len(block)
        return block

    def close(self) -> None:
        self._content.release()


def netascii_bytes(content: bytes) -> bytes:
    """`content` as netascii: LF becomes CR LF, a bare CR becomes CR NUL (as `NetasciiSource`)."""
    # CR first, so the CR added in front of LF is not converted again.
    return content.replace(b"\r", b"\r\x00").replace(b"\n", b"\r\n")
