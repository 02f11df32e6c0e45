"""A root image read the way a mounting Mac reads it: ranges, the map, the volume header.

A Mac mounts an HTTP root image by reading ranges of it on demand, and an
NFS one through its file; `check_root_image` does the same through our UDIF
reader and the volume checks of `netboot.udif.volumes`, and counts what it
read. `python -m netboot_lab.root_image read-root URL|FILE --json` is this
step on its own: the simulated Mac (`netboot_lab.mac`) runs it inside its
namespace, so its HTTP requests come from the Mac's address.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from netboot.errors import NetbootError, UdifError
from netboot.udif.partitions import Partition, read_partitions
from netboot.udif.reader import FileStorage, UdifImage
from netboot.udif.sector import SECTOR
from netboot.udif.volumes import VolumeError, check_apfs, check_hfs_plus

MIB = 1 << 20
VOLUME_TYPES = ("Apple_HFS", "Apple_HFSX", "Apple_APFS")
FORMATS = {"zlib": "UDZO", "bzip2": "UDBZ", "lzfse": "ULFO", "lzma": "ULMO", "adc": "UDCO"}


class HttpRangeStorage:
    """A remote image as `UdifImage` storage: one keep-alive connection, Range GETs.

    A Mac mounts an HTTP root image by reading ranges of it on demand; this
    does the same, and counts the body bytes and requests so the summary can
    say how little of the image a mount needs.
    """

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        self.url = url
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None
        self._size: int | None = None
        self.bytes_read = 0
        self.requests = 0
        self.ranges: list[tuple[int, int]] = []

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = (
                http.client.HTTPSConnection
                if self._scheme == "https"
                else http.client.HTTPConnection
            )
            self._connection = kind(self._host, self._port, timeout=self._timeout)
        return self._connection

    def _request(
        self, method: str, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        # A kept-alive connection the server has closed fails on first use: one retry.
        for attempt in (1, 2):
            connection = self._connect()
            try:
                connection.request(method, self._target, headers=headers)
                response = connection.getresponse()
                body = response.read()
            except (http.client.HTTPException, OSError) as error:
                self.close()
                if attempt == 2:
                    raise OSError(errno.EIO, f"{method} {self.url}: {error}") from None
                continue
            self.requests += 1
            if response.will_close:
                self.close()
            return response, body
        raise AssertionError("unreachable")

    def size(self) -> int:
        if self._size is None:
            response, _ = self._request("HEAD", {})
            length = response.getheader("Content-Length")
            if response.status != 200 or length is None or not length.isdigit():
                raise OSError(
                    errno.EIO, f"HEAD {self.url}: {response.status} {response.reason}, no length"
                )
            self._size = int(length)
        return self._size

    def pread(self, size: int, offset: int) -> bytes:
        total = self.size()
        if size <= 0 or offset >= total:
            return b""
        last = min(offset + size, total) - 1
        response, body = self._request("GET", {"Range": f"bytes={offset}-{last}"})
        expected = last - offset + 1
        content_range = response.getheader("Content-Range") or ""
        if response.status != 206 or not content_range.startswith(f"bytes {offset}-{last}/"):
            raise OSError(
                errno.EIO,
                f"GET {self.url} bytes {offset}-{last}: {response.status} {response.reason} "
                f"({content_range or 'no Content-Range'})",
            )
        if len(body) != expected:
            raise OSError(errno.EIO, f"GET {self.url}: {len(body)} of {expected} bytes")
        self.bytes_read += len(body)
        self.ranges.append((offset, len(body)))
        return body

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class CountingFileStorage(FileStorage):
    """A local image (an NFS copy), counted like the HTTP storage."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd)
        self.bytes_read = 0
        self.requests = 0
        self.ranges: list[tuple[int, int]] = []

    def pread(self, size: int, offset: int) -> bytes:
        data = super().pread(size, offset)
        self.bytes_read += len(data)
        self.requests += 1
        self.ranges.append((offset, len(data)))
        return data


def check_root_image(source: str) -> dict[str, Any]:
    """Open `source` (URL or file) as a mounting Mac would; the report's `error` says why not.

    Reads the UDIF trailer and tables, the partition map, the volume header
    of the Apple_HFS/APFS partition (or bare volume) and the structures a
    mount reads next, and the first and last MiB of the volume, which is
    where a file system keeps its metadata and its backup header.
    """
    report: dict[str, Any] = {"source": source, "bytes": 0, "requests": 0, "error": None}
    storage: HttpRangeStorage | CountingFileStorage
    try:
        if "://" in source:
            storage = HttpRangeStorage(source)
        else:
            storage = CountingFileStorage(os.open(source, os.O_RDONLY))
    except (OSError, ValueError) as error:
        report["error"] = f"{source}: {error}"
        return report
    try:
        with UdifImage.open_storage(source, storage) as image:
            report["format"] = _format_of(image)
            report["size"] = image.size
            scheme, partitions = read_partitions(image.read, image.size, source)
            report["scheme"] = scheme
            report["partitions"] = [
                f"{p.index}:{p.type}:{p.first_sector}+{p.sector_count}" for p in partitions
            ]
            volume = _volume_partition(partitions, source)
            report["partition"] = {
                "index": volume.index,
                "name": volume.name,
                "type": volume.type,
                "first_sector": volume.first_sector,
                "sector_count": volume.sector_count,
            }
            start, length = volume.first_sector * SECTOR, volume.sector_count * SECTOR
            where = (
                f"{source}: partition {volume.index} {volume.name!r} ({volume.type})"
                if volume.index
                else f"{source}: bare {volume.type} volume"
            ) + f" at byte {start}"
            try:
                if volume.type == "Apple_APFS":
                    check = check_apfs(image.read, start, length, where)
                else:
                    check = check_hfs_plus(image.read, start, length, where)
                # The first and last MiB of the volume, as a mount and a backup-header check read.
                for offset in (start, max(start, start + length - MIB)):
                    image.read(offset, min(MIB, length))
            except (UdifError, OSError) as error:
                raise VolumeError(f"{where}: unreadable: {error}") from None
            report.update(
                file_system=check.file_system,
                signature=check.signature,
                block_size=check.block_size,
                total_blocks=check.total_blocks,
                details=check.details,
            )
    except (NetbootError, OSError) as error:
        # The reader names the image by a Path, which folds "http://" to "http:/".
        report["error"] = str(error).replace(str(Path(source)), source)
    finally:
        storage.close()
        report["bytes"] = storage.bytes_read
        report["requests"] = storage.requests
        report["ranges"] = [list(piece) for piece in storage.ranges[:100]]
    return report


def _format_of(image: UdifImage) -> str:
    """hdiutil's name for the chunk types used (as `netboot dmg info` says it)."""
    found = {FORMATS[name] for name in image.chunk_counts() if name in FORMATS}
    if len(found) > 1:
        return "mixed"
    return found.pop() if found else "UDRO"


def _volume_partition(partitions: list[Partition], source: str) -> Partition:
    for wanted in VOLUME_TYPES:
        for partition in partitions:
            if partition.type == wanted:
                return partition
    listed = ", ".join(f"{p.index} {p.type}" for p in partitions) or "nothing"
    raise VolumeError(
        f"{source}: no Apple_HFS or Apple_APFS partition to mount (the disk holds {listed})"
    )


def describe(report: dict[str, Any]) -> list[str]:
    lines = []
    if report.get("format"):
        lines.append(
            f"UDIF {report['format']}: {report.get('size', 0)} bytes expanded, "
            f"{report.get('scheme')} partition scheme"
        )
    partition = report.get("partition")
    if partition:
        lines.append(
            f"partition {partition['index']} {partition['name']!r} ({partition['type']}): "
            f"sectors {partition['first_sector']}+{partition['sector_count']}"
        )
    if report.get("signature"):
        lines.append(
            f"volume header signature {report['signature']} ({report.get('file_system')}), "
            f"block size {report.get('block_size')}, {report.get('total_blocks')} blocks"
        )
    for key, value in (report.get("details") or {}).items():
        lines.append(f"{key.replace('_', ' ')}: {value}")
    if "requests" in report:
        lines.append(
            f"read {report.get('bytes', 0)} bytes of {report.get('source')} "
            f"in {report['requests']} request(s)"
        )
    for start, length in report.get("ranges") or []:
        lines.append(f"  bytes {start}-{start + length - 1}")
    if report.get("error"):
        lines.append(f"error: {report['error']}")
    return lines


@click.group()
def main() -> None:
    """A root image read as a mounting Mac reads it (run in its namespace by `netboot lab mac`)."""


@main.command("read-root")
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def read_root(source: str, as_json: bool) -> None:
    """Read a root image (an http:// URL or a file) as a mounting Mac would, and check it.

    Exit status 0 when the volume checks out, 1 otherwise.
    """
    report = check_root_image(source)
    if as_json:
        click.echo(json.dumps(report))
    else:
        for line in describe(report):
            click.echo(line)
    sys.exit(0 if report["error"] is None else 1)


if __name__ == "__main__":
    main()
