"""What a conversion reads from: a UDIF image, a raw image file or a block device.

A NetBoot root image is gigabytes, so a source is never loaded whole: every
read is a positioned read (`os.pread`, or the UDIF reader decoding only the
chunks it needs) and `iter_blocks` hands out one bounded block at a time.
The writer only ever asks for `size` and bytes by offset, so it treats a
compressed `.dmg`, a `.img` file and `/dev/sdb` alike.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterator
from enum import StrEnum
from types import TracebackType

from netboot.errors import UdifError
from netboot.udif.detect import ImageFormat, detect_format
from netboot.udif.reader import UdifImage

BLKGETSIZE64 = 0x80081272
"""Linux ioctl: the size of a block device in bytes (<linux/fs.h>)."""


class SourceKind(StrEnum):
    UDIF = "udif"
    RAW = "raw"
    DEVICE = "device"


class Source(ABC):
    """Bytes by offset with a known size; subclasses say where they come from."""

    path: str
    kind: SourceKind
    size: int
    detected: ImageFormat
    """What `detect_format` saw in the file (for a UDIF image: `udif`)."""

    @abstractmethod
    def read(self, offset: int, size: int) -> bytes:
        """Exactly `size` bytes at `offset`, fewer only where the source ends.

        Raises UdifError when the bytes cannot be had (I/O error, corrupt chunk).
        """

    def iter_blocks(self, block_size: int, start: int = 0) -> Iterator[bytes]:
        """The source from `start` to its end, `block_size` bytes at a time (the last shorter)."""
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        offset = start
        while offset < self.size:
            block = self.read(offset, min(block_size, self.size - offset))
            yield block
            offset += len(block)

    @abstractmethod
    def close(self) -> None:
        """Release the file; reading afterwards is an error."""

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class RawSource(Source):
    """A raw image file or a block device, read with pread."""

    def __init__(self, path: str, fd: int, size: int, kind: SourceKind, detected: ImageFormat):
        self.path = path
        self.kind = kind
        self.size = size
        self.detected = detected
        self._fd = fd

    def read(self, offset: int, size: int) -> bytes:
        if offset < 0 or size < 0:
            raise ValueError("offset and size must not be negative")
        size = max(0, min(size, self.size - offset))
        parts: list[bytes] = []
        done = 0
        while done < size:
            try:
                part = os.pread(self._fd, size - done, offset + done)
            except OSError as error:
                raise UdifError(
                    self.path, offset + done, f"read failed: {error.strerror}"
                ) from None
            if not part:
                # The file shrank under us (or the device lied about its size).
                raise UdifError(self.path, offset + done, "unexpected end of input")
            parts.append(part)
            done += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class UdifSource(Source):
    """The expanded disk of a UDIF image, decoded chunk by chunk on demand."""

    def __init__(self, path: str, image: UdifImage):
        self.path = path
        self.kind = SourceKind.UDIF
        self.size = image.byte_length
        self.detected = ImageFormat.UDIF
        self.image = image

    def read(self, offset: int, size: int) -> bytes:
        return self.image.read(offset, max(0, min(size, self.size - offset)))

    def close(self) -> None:
        self.image.close()


def open_source(path: str | os.PathLike[str]) -> Source:
    """Open `path` for a conversion: UDIF images are decoded, anything else is read as is.

    Refuses what cannot be a disk (directories, sparse images, which are not
    UDIF and need hdiutil) with a UdifError naming the file.
    """
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise UdifError(name, None, error.strerror or str(error)) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise UdifError(name, None, "is a directory")
        if stat.S_ISBLK(mode):
            return RawSource(name, fd, _device_size(fd), SourceKind.DEVICE, _detect(name, fd))
        if not stat.S_ISREG(mode):
            raise UdifError(name, None, "not a regular file or block device")
        detected = _detect(name, fd)
        if detected is ImageFormat.SPARSE_IMAGE:
            raise UdifError(
                name, None, "a sparse image (.sparseimage) is not UDIF; convert it with hdiutil"
            )
        if detected is not ImageFormat.UDIF:
            return RawSource(name, fd, os.fstat(fd).st_size, SourceKind.RAW, detected)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return UdifSource(name, UdifImage.open(name))


def _detect(name: str, fd: int) -> ImageFormat:
    # detect_format wants a file object; dup so closing it leaves our descriptor open.
    with os.fdopen(os.dup(fd), "rb") as stream:
        try:
            return detect_format(stream)
        except OSError as error:
            raise UdifError(name, None, f"read failed: {error.strerror}") from None


def _device_size(fd: int) -> int:
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        # Some drivers do not answer SEEK_END; the ioctl always does.
        answer = fcntl.ioctl(fd, BLKGETSIZE64, b"\0" * 8)
        size = int(struct.unpack("@Q", answer)[0])
    return size
