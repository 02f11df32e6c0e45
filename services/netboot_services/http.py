"""The HTTP service: NBI sets read-only at `/<set>/<path>`, with byte ranges.

Macs read their root image over HTTP in ranges, many clients at once, so the
body is streamed by a push producer that reads one chunk at a time with
`os.pread` and stops whenever the connection's send buffer is full: memory per
client stays at a chunk or two however large the image. Everything protocol
level (which file, which ranges, which status, which headers, how a
multipart body is framed) is decided in `netboot.http`: `netboot.http.plan`
answers with a `ResponsePlan`, and this module only writes it and streams
its body parts.

Each response is logged when it ends, as a structured access-log line (ranges
coalesced per connection, `netboot.http.range_log`); Twisted's own access log
is replaced by it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import socket
import stat
import sys
import termios
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from html import escape
from ipaddress import IPv6Interface
from pathlib import Path
from typing import Any
from urllib.parse import quote

from twisted.application.service import Service
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IPushProducer, IWriteDescriptor
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http import HTTPChannel, datetimeToString
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

from netboot.admin.file_reads import FileReads, ReadKey
from netboot.config import HttpConfig
from netboot.dhcp.boot import BOOT_SCRIPT_PATH, PXE_FILES_PATH
from netboot.grub.config import config_file
from netboot.http.paths import (
    HttpNamespace,
    Refusal,
    Resolved,
    decode_segments,
    resolve_boot_file,
)
from netboot.http.plan import (
    BodyPart,
    FileFacts,
    Inline,
    Method,
    ResponsePlan,
    file_fields,
    plan,
    single_range,
)
from netboot.http.range_log import RangeRuns, RangeSummary
from netboot.http.urls import http_base, url_host
from netboot.ipxe.request import script_for
from netboot.nbi.catalog import Catalog
from netboot.pc.choice import ChoiceSettings
from netboot_services.clients import ClientTracker
from netboot_services.counters import Counters
from netboot_services.interfaces import ipv6_addresses
from netboot_services.listeners import is_ipv6, listen_label, listen_tcp, scoped_host

log = Logger(namespace="netboot.http")

MSG_MORE: int = getattr(socket, "MSG_MORE", 0)
"""Linux's flag to hold a send's partial segment for the data after it; elsewhere 0."""

CHUNK = 256 * 1024
"""Bytes read and written per step; a client holds about this much of our memory."""


@dataclass
class HttpCounters(Counters):
    requests: int = 0
    refused: int = 0
    not_modified: int = 0
    partial: int = 0
    bytes_sent: int = 0
    aborted: int = 0


@implementer(IPushProducer)
class FileBody:
    """Streams a plan's body parts: inline bytes as they are, file spans from one open file.

    This is the portable path (pread and write, 256 KiB at a time); a plain
    TCP connection whose body is one file span takes `SendfileBody` instead.
    """

    def __init__(
        self,
        request: Request,
        fd: int,
        parts: tuple[BodyPart, ...],
        counters: HttpCounters,
    ) -> None:
        self.request = request
        self.fd = fd
        self.parts = parts
        self.counters = counters
        self.paused = False
        self.done = False
        self._part = 0
        self._sent = 0
        """Bytes of the current file span already written."""

    def start(self) -> None:
        self.request.registerProducer(self, True)
        self.resumeProducing()

    def pauseProducing(self) -> None:  # noqa: N802
        self.paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        self.paused = False
        while not self.paused and not self.done:
            if self._part >= len(self.parts):
                self._finish()
                return
            part = self.parts[self._part]
            if isinstance(part, Inline):
                self._part += 1
                self.request.write(part.data)
                continue
            left = part.length - self._sent
            if left <= 0:
                self._part += 1
                self._sent = 0
                continue
            try:
                data = os.pread(self.fd, min(CHUNK, left), part.offset + self._sent)
            except OSError as error:
                log.warn("read error on {path}: {error}", path=self.request.path, error=str(error))
                self._abort()
                return
            if not data:  # the file shrank under us: the promised length cannot be kept
                log.warn("{path} shrank while being sent", path=self.request.path)
                self._abort()
                return
            self._sent += len(data)
            self.counters.bytes_sent += len(data)
            self.request.write(data)

    def stopProducing(self) -> None:  # noqa: N802
        """The client went away."""
        if not self.done:
            self.counters.aborted += 1
            self.done = True
            os.close(self.fd)

    def _finish(self) -> None:
        self.done = True
        os.close(self.fd)
        self.request.unregisterProducer()
        self.request.finish()

    def _abort(self) -> None:
        self.done = True
        os.close(self.fd)
        self.request.unregisterProducer()
        transport: Any = self.request.transport
        if transport is not None:
            transport.abortConnection()


@implementer(IWriteDescriptor)
class _Writable:
    """Tells a SendfileBody when its socket can take more: a dup of the socket's fd.

    The transport keeps its own registration for the same socket; ours is a
    second descriptor, made and registered only while the kernel's send buffer
    is full (most ranges go out without one).
    """

    def __init__(self, fd: int, ready: Callable[[], None]) -> None:
        self.fd = fd
        self.ready = ready

    def fileno(self) -> int:
        return self.fd

    def doWrite(self) -> None:  # noqa: N802
        self.ready()

    def connectionLost(self, reason: Any) -> None:  # noqa: N802
        pass

    def logPrefix(self) -> str:  # noqa: N802
        return "sendfile"


@implementer(IPushProducer)
class SendfileBody:
    """One byte range of a file straight from the page cache to the socket (sendfile).

    The status line and headers go to the socket at once with MSG_MORE (see
    `IdleChannel.write_headers_before_more`), so they leave in the body's first
    full segment, as nginx's `tcp_nopush` has it, without a cork to set and
    clear or a trip through Twisted's buffer. Whatever the kernel did not take
    stays in that buffer, which is flushed before sendfile runs; sendfile runs
    until the kernel's send buffer is full, then we wait for the socket to be
    writable again. Most 1 MiB ranges go whole in the first sendfile; only one
    that has to wait registers as the request's producer, so the connection's
    own machinery can pause and stop it.
    """

    STEP = 4 * 1024 * 1024

    def __init__(
        self,
        request: Any,
        fd: int,
        offset: int,
        length: int,
        counters: HttpCounters,
        reactor: Any,
        owns_file: bool = True,
    ) -> None:
        """`request`: twisted.web's `Request`, or a `QuickRange` (its headers already sent).

        `owns_file`: close `fd` when done; False for the file a connection holds
        open across its ranges (`IdleChannel.hold_file`), which the connection closes.
        """
        transport: Any = request.transport
        self.request = request
        self.transport = transport
        self.fd = fd
        self.owns_file = owns_file
        self.offset = offset
        self.end = offset + length
        self.counters = counters
        self.reactor = reactor
        self.paused = False
        self.done = False
        self.socket_fd = transport.socket.fileno()
        self.writable: _Writable | None = None
        """Our registration for the socket's writability, while we wait for it."""
        self.registered = False
        """Registered as the request's producer: only once a range did not go at once
        (most go whole in one sendfile, and need neither registration nor its undoing)."""

    @staticmethod
    def usable(request: Request | QuickRange) -> bool:
        transport = request.transport
        return hasattr(os, "sendfile") and hasattr(getattr(transport, "socket", None), "fileno")

    def start(self) -> None:
        channel = self.request.channel
        if isinstance(channel, IdleChannel):
            channel.write_headers_before_more(self.request)
        else:
            self.request.write(b"")  # the status line and headers, into Twisted's buffer
        self.go()

    def go(self) -> None:
        """Send the body, the headers already written; what must wait, waits as a producer."""
        self._send()
        if not self.done:  # the rest waits for the socket: paused and stopped as a producer
            self.request.registerProducer(self, True)
            self.registered = True

    def pauseProducing(self) -> None:  # noqa: N802
        self.paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        self.paused = False
        self._send()

    def _buffered(self) -> bool:
        transport = self.transport
        pending = len(transport.dataBuffer) - transport.offset
        return pending > 0 or bool(getattr(transport, "_tempDataLen", 0))

    def _writable(self) -> None:
        self._stop_waiting()
        self._send()

    def _wait(self) -> None:
        if self.writable is None:
            self.writable = _Writable(os.dup(self.socket_fd), self._writable)
            self.reactor.addWriter(self.writable)

    def _stop_waiting(self) -> None:
        writable, self.writable = self.writable, None
        if writable is not None:
            self.reactor.removeWriter(writable)
            os.close(writable.fd)

    def _send(self) -> None:
        if self.done or self.paused:
            return
        if self._buffered():
            # The headers (or a previous response's tail) are in Twisted's buffer. Flush
            # it now; a lost connection shows in the transport's next doWrite from the
            # reactor (it stays registered for writing), which then stops us.
            self.transport.doWrite()
            if self._buffered():
                self._wait()
                return
        while self.offset < self.end and not self.paused:
            try:
                sent = os.sendfile(
                    self.socket_fd, self.fd, self.offset, min(self.STEP, self.end - self.offset)
                )
            except BlockingIOError:
                self._wait()
                return
            except OSError:
                self._close()
                return  # the connection is gone; Twisted will notice and stop us
            if sent == 0:  # the file shrank under us: the promised length cannot be kept
                log.warn("{path} shrank while being sent", path=self.request.path)
                self._close()
                self.transport.abortConnection()
                return
            self.offset += sent
            self.counters.bytes_sent += sent
            self.request.sentLength += sent
        if self.offset >= self.end:
            self._close()
            if self.registered:
                self.request.unregisterProducer()
            self.request.finish()

    def stopProducing(self) -> None:  # noqa: N802
        if not self.done:
            self.counters.aborted += 1
            self._close()

    def _close(self) -> None:
        if self.done:
            return
        self.done = True
        self._stop_waiting()
        if self.owns_file:
            os.close(self.fd)


@dataclass(frozen=True, slots=True)
class HeldFile:
    """The file a connection keeps open from one quick range to the next.

    A Mac reads thousands of ranges of one image on each connection; opening,
    fstat-ing and closing it for each was three syscalls (and a path walk) of
    the few a range costs. Held, the name is only `stat`ed per range
    (`KnownFiles.open`), so a file replaced meanwhile is still noticed.
    """

    fd: int
    identity: tuple[int, int]
    """(st_dev, st_ino) of the open file."""


@dataclass(frozen=True, slots=True)
class _Known:
    named: str
    name: str
    identity: tuple[int, int]
    """(st_dev, st_ino) of the regular file the full resolution found."""


class KnownFiles:
    """Request paths already resolved to a regular file, so a range needs no realpath.

    A Mac reads its root image as thousands of ranges of one path; resolving
    that path again for each (a `realpath`, an lstat per component, in Python)
    was a tenth of the daemon's time per range. A remembered path is opened as
    the request names it and used only while it still leads to the very file
    the full resolution checked (same device and inode, still a regular file):
    a file replaced, renamed over or re-linked takes the full resolution again,
    and so does everything after a catalog change. Only files that resolution
    let through are remembered, so nothing reaches a client that it would refuse.
    """

    LIMIT = 4096
    """Paths remembered at most; past it the memory starts over (clients read a few)."""

    def __init__(self) -> None:
        self._known: dict[bytes, _Known] = {}
        self._served: object = None

    def open(
        self, raw_path: bytes, served: object, held: HeldFile | None = None
    ) -> tuple[int, os.stat_result, str] | None:
        """(fd, its stat, log name) of a remembered file still named by `raw_path`, or None.

        `served` is what the paths mean (the namespace, the boot files directory):
        when it changes, everything remembered is forgotten. `held`: a file the
        caller already has open; when it is the remembered file, the name is
        only `stat`ed to see that it still leads there, and `held.fd` is the
        answer (the caller's to keep); any other fd answered is a new one.
        """
        if served != self._served:
            self._known.clear()
            self._served = served
            return None
        known = self._known.get(raw_path)
        if known is None:
            return None
        if held is not None and held.identity == known.identity:
            try:
                facts = os.stat(known.named)  # noqa: PTH116 - a str, no Path per range
            except OSError:
                del self._known[raw_path]
                return None
            if (facts.st_dev, facts.st_ino) != known.identity or not stat.S_ISREG(facts.st_mode):
                del self._known[raw_path]
                return None
            return held.fd, facts, known.name
        try:
            fd = os.open(known.named, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:
            del self._known[raw_path]
            return None
        facts = os.fstat(fd)
        if (facts.st_dev, facts.st_ino) != known.identity or not stat.S_ISREG(facts.st_mode):
            os.close(fd)
            del self._known[raw_path]
            return None
        return fd, facts, known.name

    def remember(self, raw_path: bytes, resolved: Resolved, facts: os.stat_result) -> None:
        if len(self._known) >= self.LIMIT:
            self._known.clear()
        identity = (facts.st_dev, facts.st_ino)
        self._known[raw_path] = _Known(str(resolved.named), str(resolved.name), identity)


GRUB_TREE = b"/grub/"
"""Where GRUB under UEFI HTTP boot asks for everything: its prefix is `(http,<server>)/grub`."""


class ImageResource(Resource):
    isLeaf = True  # noqa: N815 - Twisted's name

    def __init__(self, catalog: Callable[[], Catalog], config: HttpConfig, reactor: Any) -> None:
        super().__init__()
        self.catalog = catalog
        self.config = config
        self.reactor = reactor
        self.counters = HttpCounters()
        self._namespace: tuple[Catalog, HttpNamespace] | None = None
        self.scripts: ChoiceSettings | None = None
        """iPXE boot scripts at /boot.ipxe; None: not served."""
        self.boot_files: Path | None = None
        """The PXE programs directory (`tftp.extra_dir`), served at /boot/ for HTTP boot."""
        self.grub: ChoiceSettings | None = None
        """GRUB's configurations under /grub/ (`Runtime.grub`); None: not served."""
        self.grub_files: Mapping[str, Path] = {}
        """The HTTP GRUBs by path without `/` (`Runtime.http_grub_files`)."""
        self.public_host = ""
        self.clients: ClientTracker | None = None
        self.known = KnownFiles()
        self.interface_addresses: Callable[[str], list[IPv6Interface]] = ipv6_addresses
        """An interface's IPv6 addresses, for a URL that must not name a link-local one."""
        self._routable: dict[str, tuple[IPv6Interface, ...]] = {}

    def namespace(self) -> HttpNamespace:
        catalog = self.catalog()
        if self._namespace is None or self._namespace[0] is not catalog:
            self._namespace = (catalog, HttpNamespace(catalog))
        return self._namespace[1]

    def render_HEAD(self, request: Request) -> Any:  # noqa: N802
        return self.render_GET(request)

    def render_GET(self, request: Request) -> Any:  # noqa: N802
        self.counters.requests += 1
        raw_path = request.path
        if raw_path == BOOT_SCRIPT_PATH.encode() and self.scripts is not None:
            return self._script(request, self.scripts)
        if raw_path.startswith(GRUB_TREE):
            grub_answer = self._grub(request, raw_path)
            if grub_answer is not None:
                return grub_answer
        known = self.known.open(raw_path, (self.namespace(), self.boot_files))
        if known is not None:
            fd, facts, name = known
            try:
                return self._serve(request, fd, facts, name)
            except BaseException:
                os.close(fd)
                raise
        if raw_path.startswith(PXE_FILES_PATH.encode()) and self.boot_files is not None:
            resolved = resolve_boot_file(self.boot_files, raw_path[len(PXE_FILES_PATH) - 1 :])
        else:
            resolved = self.namespace().resolve(raw_path)
        if isinstance(resolved, Refusal):
            return self._refuse(request, resolved)
        if resolved.path.is_dir():
            if not self.config.directory_listing:
                return self._refuse(request, Refusal(404, "directory listings are off"))
            return self._listing(request, resolved.path, raw_path)
        try:
            fd = os.open(resolved.path, os.O_RDONLY)
        except OSError as error:
            return self._refuse(request, Refusal(404, f"cannot open: {error.strerror}"))
        try:
            facts = os.fstat(fd)
            if stat.S_ISREG(facts.st_mode):
                self.known.remember(raw_path, resolved, facts)
            return self._serve(request, fd, facts, str(resolved.name))
        except BaseException:
            os.close(fd)
            raise

    def _serve(self, request: Request, fd: int, facts: os.stat_result, name: str) -> Any:
        """Answer with the plan `netboot.http.plan` makes; the open `fd` is ours to close."""
        method: Method = "HEAD" if request.method == b"HEAD" else "GET"
        boundary = secrets.token_hex(16)
        answer = plan(method, name, _header(request), FileFacts.from_stat(facts), boundary)
        self._count(answer)
        request.setResponseCode(answer.status)
        for field, value in answer.headers:
            request.setHeader(field.encode("latin-1"), value.encode("latin-1"))
        span = answer.sole_span
        channel = getattr(request, "channel", None)  # a test's request may have none
        if answer.status in (200, 206) and answer.body and isinstance(channel, IdleChannel):
            channel.file_offset = span.offset if span is not None else -1
            channel.file_size = facts.st_size
        if not answer.body:
            os.close(fd)
            request.write(b"")
            request.finish()
        elif span is not None and SendfileBody.usable(request):
            SendfileBody(request, fd, span.offset, span.length, self.counters, self.reactor).start()
        else:
            FileBody(request, fd, answer.body, self.counters).start()
        return NOT_DONE_YET

    def quick_range(self, request: QuickRange) -> bool:
        """Answer `request` if it is a 206 of a known file by sendfile; False: not mine.

        The same decisions as `render_GET` (the file as `KnownFiles` vouches for
        it; `single_range`, the plan's answer for an unconditional single range),
        with the status line and headers written here as Twisted would write
        them (`range_head`).
        """
        channel = request.channel
        held = channel.held_file
        known = self.known.open(request.path, (self.namespace(), self.boot_files), held)
        if known is None:
            return False
        fd, facts, name = known
        if held is None or fd != held.fd:
            channel.hold_file(HeldFile(fd, (facts.st_dev, facts.st_ino)))
        byte_range = single_range(_quick_header(request.headers), facts.st_size)
        if byte_range is None or not SendfileBody.usable(request):
            return False
        self.counters.requests += 1
        self.counters.partial += 1
        head = range_head(name, FileFacts.from_stat(facts))
        start, length = byte_range.start, byte_range.length
        channel.file_offset, channel.file_size = start, facts.st_size
        channel.send_head(
            b"".join(
                (
                    head.to_date,
                    self._date(),
                    head.to_range,
                    b"%d-%d" % (start, byte_range.end),
                    head.to_length,
                    b"%d\r\n\r\n" % length,
                )
            )
        )
        body = SendfileBody(
            request, fd, start, length, self.counters, self.reactor, owns_file=False
        )
        body.go()
        return True

    _date_cache: tuple[int, bytes] = (0, b"")

    def _date(self) -> bytes:
        """The Date header's value, formatted once a second rather than once a range."""
        now = int(time.time())
        if self._date_cache[0] != now:
            self._date_cache = (now, datetimeToString(now))
        return self._date_cache[1]

    def _count(self, answer: ResponsePlan) -> None:
        if answer.status == 304:
            self.counters.not_modified += 1
        elif answer.status == 206:
            self.counters.partial += 1

    def _script(self, request: Request, settings: ChoiceSettings) -> bytes:
        """An iPXE script made for the client named in the query (docs/protocols/pxe.md §6.4)."""
        if self.config.base_url:
            base = self.config.base_url.rstrip("/")
        else:
            local = request.getHost()
            host = self.public_host or self._url_host(_host_of(local))
            base = http_base(host, local.port)
        choice = script_for(self.catalog(), request.args, base, BOOT_SCRIPT_PATH, settings)
        address = _host_of(request.getClientAddress())
        if self.clients is not None:
            clock: Any = self.reactor
            image = choice.image.name if choice.image is not None else None
            self.clients.note(
                address,
                "ipxe script",
                clock.seconds(),
                choice.summary,
                choice.mac,
                image,
                kind="pc",
            )
        log.info(
            "{mac} iPXE script for {client}: {summary}",
            mac=choice.mac or "-",
            client=address,
            summary=choice.summary,
        )
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        return choice.script.encode()

    def _grub(self, request: Request, raw_path: bytes) -> Any:
        """An HTTP GRUB, or a GRUB configuration rendered from the catalog, as TFTP renders
        it for the signed chain; None: neither, so the path is judged as any other."""
        segments = decode_segments(raw_path)
        if isinstance(segments, Refusal):
            return self._refuse(request, segments)
        name = "/".join(segments)
        grub_file = self.grub_files.get(name)
        if grub_file is not None:
            try:
                fd = os.open(grub_file, os.O_RDONLY)
            except OSError as error:
                return self._refuse(request, Refusal(404, f"cannot open: {error.strerror}"))
            try:
                return self._serve(request, fd, os.fstat(fd), name)
            except BaseException:
                os.close(fd)
                raise
        found = config_file(self.catalog(), name, self.grub) if self.grub is not None else None
        if found is None:
            return None
        address = _host_of(request.getClientAddress())
        if found.mac is not None:
            if self.clients is not None:
                clock: Any = self.reactor
                now = clock.seconds()
                self.clients.note(
                    address, "grub config", now, found.summary, found.mac, found.image, kind="pc"
                )
            log.info(
                "{mac} GRUB configuration for {client}: {summary}",
                mac=found.mac,
                client=address,
                summary=found.summary,
            )
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        return found.content

    def _url_host(self, arrival: str) -> str:
        """The host the script's URLs name (`url_host`); a link-local arrival's interface
        is asked for its addresses once, then remembered."""
        zone = arrival.partition("%")[2]
        if not zone:
            return url_host(arrival)
        known = self._routable.get(zone)
        if known is None:
            try:
                known = tuple(self.interface_addresses(zone))
            except OSError:
                known = ()
            self._routable[zone] = known
        return url_host(arrival, known)

    def _refuse(self, request: Request, refusal: Refusal) -> bytes:
        self.counters.refused += 1
        request.setResponseCode(refusal.status)
        request.setHeader(b"Content-Type", b"text/plain")
        peer = request.getClientAddress()
        log.warn(
            "refused {path} to {client}: {status} {reason}",
            path=request.path.decode("ascii", "replace")[:200],
            client=_host_of(peer),
            status=refusal.status,
            reason=refusal.reason,
        )
        return b"not found\n" if refusal.status == 404 else b"bad request\n"

    def _listing(self, request: Request, directory: Path, raw_path: bytes) -> bytes:
        base = raw_path.decode("ascii", "replace").rstrip("/")
        entries = sorted(
            entry.name + ("/" if entry.is_dir() else "") for entry in directory.iterdir()
        )
        items = "".join(
            f'<li><a href="{escape(base)}/{quote(name)}">{escape(name)}</a></li>'
            for name in entries
        )
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        return f"<!doctype html><ul>{items}</ul>\n".encode()


@dataclass(frozen=True, slots=True)
class RangeHead:
    """One file version's 206 head, in the pieces around what each range formats.

    A range's head differs from the next one's only in the Date, the two
    offsets of Content-Range and Content-Length; formatting all of it per
    range, from the plan's (name, value) pairs, was a tenth of our Python time
    per range. The order and spelling are `plan`'s for a single range, as
    twisted.web writes them (tests/test_http_keepalive.py compares the two).
    """

    to_date: bytes
    """The status line, Server, and Date's name."""
    to_range: bytes
    """After the Date: the file's own fields, then Content-Range up to its offsets."""
    to_length: bytes
    """After the offsets: the size, Content-Type, and Content-Length's name."""


@lru_cache(maxsize=256)
def range_head(name: str, facts: FileFacts) -> RangeHead:
    fields = file_fields(name, facts)
    own = "".join(f"{field}: {value}\r\n" for field, value in fields.always)
    return RangeHead(
        b"HTTP/1.1 206 Partial Content\r\nServer: " + server.version + b"\r\nDate: ",
        f"\r\n{own}Content-Range: bytes ".encode("latin-1"),
        f"/{facts.size}\r\nContent-Type: {fields.media}\r\nContent-Length: ".encode("latin-1"),
    )


def _quick_header(fields: dict[bytes, bytes]) -> Callable[[str], str | None]:
    def get(name: str) -> str | None:
        value = fields.get(name.lower().encode("latin-1"))
        return None if value is None else value.decode("latin-1")

    return get


def _header(request: Request) -> Callable[[str], str | None]:
    def get(name: str) -> str | None:
        # A bytes name gets the raw bytes: with a str name Twisted decodes the value as
        # UTF-8 and raises on any other byte a client sends.
        value = request.getHeader(name.encode("latin-1"))
        return value.decode("latin-1") if isinstance(value, bytes) else value

    return get


def _host_of(peer: Any) -> str:
    """The client's IP address as the log names it, a link-local IPv6 one with its zone
    (`fe80::1%nb0`; another kind of address: as text)."""
    host = getattr(peer, "host", None)
    if not isinstance(host, str):
        return str(peer)
    return scoped_host(host, getattr(peer, "scopeID", 0) or 0)


def unsent_bytes(transport: Any) -> int:
    """Bytes of ours the kernel still holds for the peer (sent but unacknowledged, or unsent)."""
    handle = getattr(transport, "getHandle", None)
    if handle is None:
        return 0
    try:
        queued = fcntl.ioctl(handle().fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError):
        return 0  # closed meanwhile, or not a socket (a test transport)
    return int.from_bytes(queued, sys.byteorder, signed=True)


RangeTarget = tuple[bytes, bytes, bytes | None]
"""(method, URI, User-Agent) as the request holds them: ranges of one run share all three."""


class QuickRange:
    """A GET of one byte range, parsed by `IdleChannel` itself: a Request as far as
    `SendfileBody` and the access log need one.

    Only the plainest form qualifies: the whole request in one read, HTTP/1.1
    keep-alive, no body, no query, one `Range` without a comma, no field
    twice, nothing Twisted would answer with 400. Everything else takes
    twisted.web's path, and so does a request whose answer would not be a
    206 of a file `KnownFiles` already knows.
    """

    __slots__ = ("channel", "code", "headers", "method", "path", "sentLength", "transport", "uri")

    LIMIT = 16 * 1024
    """Bytes of request head at most, Twisted's line limit."""

    def __init__(self, channel: IdleChannel, target: bytes, headers: dict[bytes, bytes]) -> None:
        self.channel = channel
        self.transport: Any = channel.transport
        self.method = b"GET"
        self.uri = self.path = target
        self.headers = headers
        """Field names lower-cased."""
        self.code = 206
        self.sentLength = 0

    HEAD = re.compile(rb"GET (/[^ ?#\r\n]*) HTTP/1\.1\r\n((?:[^\s:]+:[^\r\n]*\r\n)*)\r\n")
    """A GET of a path in HTTP/1.1, its fields one a line: a name of no space, colon,
    a value of no CR or LF (so no folded line, no bare CR or LF anywhere)."""

    FIELD = re.compile(rb"([^:]+):[ \t]*([^\r]*?)[ \t]*\r\n")
    """One field of a head that `HEAD` matched: its name and its value, trimmed."""

    @classmethod
    def parse(cls, channel: IdleChannel, data: bytes) -> QuickRange | None:
        if len(data) > cls.LIMIT:
            return None
        head = cls.HEAD.fullmatch(data)
        if head is None:
            return None
        fields = cls.FIELD.findall(head[2])
        headers = {name.lower(): value for name, value in fields}
        if len(headers) != len(fields):  # a field twice
            return None
        wanted = headers.get(b"range")
        if wanted is None or b"," in wanted:
            return None
        if b"content-length" in headers or b"transfer-encoding" in headers or b"expect" in headers:
            return None
        if headers.get(b"connection", b"keep-alive").lower() != b"keep-alive":
            return None
        return cls(channel, head[1], headers)

    def getHeader(self, name: bytes) -> bytes | None:  # noqa: N802 - as a Request
        return self.headers.get(name.lower())

    def getClientAddress(self) -> Any:  # noqa: N802
        return self.channel.getPeer()

    def registerProducer(self, producer: Any, streaming: bool) -> None:  # noqa: N802
        self.channel.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:  # noqa: N802
        self.channel.unregisterProducer()

    def finish(self) -> None:
        self.channel.quick_range_done(self)


class IdleChannel(HTTPChannel):
    """An HTTP connection that is timed out only when nothing moves either way.

    Twisted restarts the idle timer only on bytes received. A response the
    kernel is still delivering is not idleness: over a slow or lossy link a
    1 MiB range can sit in the send queue for longer than `idle_timeout`
    after we wrote it, and closing then cut the keep-alive connection under
    the client's next request (curl at 20 % loss: error 56, reset by peer).
    So when the timer fires while our bytes are still queued and the queue
    moved since the last look, the timer starts again; a queue that did not
    move for a whole timeout is a stalled reader, and is closed as before.
    """

    _queued_at_last_look = -1

    def __init__(self) -> None:
        super().__init__()
        self.range_runs: RangeRuns[RangeTarget] = RangeRuns()
        """This connection's ranges not yet in the access log."""

    file_offset = -1
    """Where the body of the response under way starts in its file (-1: not one span)."""
    file_size = -1
    """The size of the file the response under way sends from (-1: it sends none)."""
    read_keys: set[ReadKey] | None = None
    """The (MAC, path) reads this connection took part in, for the machines registry."""
    _headers_before_more = False
    _host: Any = None
    _peer: Any = None
    held_file: HeldFile | None = None
    """The file of this connection's last quick range, open (closed with the connection)."""

    def hold_file(self, held: HeldFile) -> None:
        """Keep `held` open for the next ranges instead of the file held before."""
        previous, self.held_file = self.held_file, held
        if previous is not None:
            os.close(previous.fd)

    def getHost(self) -> Any:  # noqa: N802
        """The local address, asked of the kernel once: Twisted asks for every request."""
        if self._host is None:
            self._host = super().getHost()
        return self._host

    def getPeer(self) -> Any:  # noqa: N802
        """The client's address, made once per connection rather than once per request."""
        if self._peer is None:
            self._peer = super().getPeer()
        return self._peer

    def write_headers_before_more(self, request: Request) -> None:
        """Write `request`'s status line and headers to the socket now, flagged MSG_MORE.

        For a body that follows at once by sendfile: the kernel holds the headers'
        partial segment for it. What the socket does not take (or everything, when
        earlier bytes still wait in Twisted's buffer) goes to that buffer as usual.
        """
        self._headers_before_more = True
        try:
            request.write(b"")
        finally:
            self._headers_before_more = False

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:  # noqa: N802
        if not self._headers_before_more:
            super().writeHeaders(version, code, reason, headers)
            return
        lines = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                lines += (name, b": ", value, b"\r\n")
        lines.append(b"\r\n")
        self.send_head(b"".join(lines))

    def send_head(self, data: bytes) -> None:
        """A response's status line and headers to the socket at once, flagged MSG_MORE."""
        transport: Any = self.transport
        sent = 0
        if not transport.dataBuffer and not transport._tempDataLen:
            with contextlib.suppress(OSError):  # full, or gone: the transport finds out
                sent = transport.socket.send(data, MSG_MORE)
        if sent < len(data):
            transport.write(data[sent:])

    _range_going: bool = False
    _held: bytes = b""

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        """A plain range of a known file is answered at once (`ImageResource.quick_range`),
        without twisted.web's request machinery: Twisted's line and header parsing,
        `Request` and its finish were half our Python time per range. Anything
        else, or any request arriving while Twisted is mid-request, is Twisted's."""
        if self._range_going:  # the client sent on before its range went out: later
            self._held += data
            transport: Any = self.transport
            transport.pauseProducing()
            return
        site = self.factory
        if (
            not self.requests
            and not self._buffer
            and self.line_mode
            and isinstance(site, AccessLogSite)
            and site.quick_range is not None
        ):
            request = QuickRange.parse(self, data)
            if request is not None:
                self.resetTimeout()
                self._range_going = True
                if site.quick_range(request):
                    return
                self._range_going = False
        super().dataReceived(data)

    def quick_range_done(self, request: QuickRange) -> None:
        """The quick range went out: log it, then read on (and what the client sent meanwhile)."""
        self._range_going = False
        site = self.factory
        if isinstance(site, AccessLogSite):
            site.log(request)
        held, self._held = self._held, b""
        if held:
            transport: Any = self.transport
            transport.resumeProducing()
            self.dataReceived(held)

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        super().connectionLost(reason)
        held, self.held_file = self.held_file, None
        if held is not None:
            os.close(held.fd)
        site = self.factory
        if isinstance(site, AccessLogSite):
            site.connection_closed(self)

    def timeoutConnection(self) -> None:  # noqa: N802
        queued = unsent_bytes(self.transport)
        if queued > 0 and queued != self._queued_at_last_look:
            self._queued_at_last_look = queued
            self.setTimeout(self.timeOut)  # the timer that fired is spent: a new one
            return
        super().timeoutConnection()


class AccessLogSite(Site):
    """A Site whose access log is ours: a structured line per response, ranges coalesced.

    Whole files, scripts, refusals and other answers get one line each. Range
    responses (206) are logged as `netboot.http.range_log` says: the first of a
    path on a connection at once, the rest as summary lines. The client's
    journey is noted for every response as before.
    """

    # A plain channel, not Twisted's wrapper that can switch to HTTP/2: that
    # needs TLS with ALPN, which this server does not speak.
    protocol = IdleChannel  # type: ignore[assignment]
    clients: ClientTracker | None = None
    quick_range: Callable[[QuickRange], bool] | None = None
    """Answers a plain range without twisted.web's Request (`ImageResource.quick_range`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads = FileReads()
        """How far each client has read each file, for the machines registry."""

    def log(self, request: Any) -> None:
        host = _host_of(request.getClientAddress())
        clients = self.clients
        mac = clients.mac_of(host) if clients is not None else None
        clock: Any = self.reactor
        now: float = clock.seconds()
        if clients is not None and request.code in (200, 206):
            path = request.path.decode("ascii", "replace")[:200]
            clients.note(host, "http", now, "HTTP " + path, mac)
            if mac and clients.registry is not None:
                self._file_read(clients, request, mac, path, now)
        runs: RangeRuns[RangeTarget] | None = getattr(request.channel, "range_runs", None)
        if runs is None:  # a channel that is not ours: every response on its own
            self._line(request, host, mac)
            return
        if request.code != 206:
            self._summary(runs.end(), host, mac)
            self._line(request, host, mac)
            return
        target = (request.method, request.uri, request.getHeader(b"user-agent"))
        header = request.getHeader(b"range") or b""
        logging = runs.range_sent(target, now, request.sentLength, header)
        self._summary(logging.summary, host, mac)
        if logging.own_line:
            self._line(request, host, mac)

    def _file_read(
        self, clients: ClientTracker, request: Any, mac: str, path: str, now: float
    ) -> None:
        """A response's bytes of a file, as the progress of that client's read of it."""
        channel = request.channel
        size = getattr(channel, "file_size", -1)
        if size < 0:
            return  # no file's bytes: an iPXE script, a listing
        channel.file_size = -1
        key = (mac, path)
        read = self.reads.sent(key, channel.file_offset, request.sentLength, size)
        if channel.read_keys is None:
            channel.read_keys = {key}
        else:
            channel.read_keys.add(key)
        clients.progress(mac, now, "http", path, read.sent, size, read.done)

    def connection_closed(self, channel: IdleChannel) -> None:
        """The summary of the ranges a closed connection read since its last line; the
        files it read are done as far as the machines registry can tell."""
        summary = channel.range_runs.end()
        if summary is not None:
            host = _host_of(channel.getPeer())
            mac = self.clients.mac_of(host) if self.clients is not None else None
            self._summary(summary, host, mac)
        if channel.read_keys and self.clients is not None:
            clock: Any = self.reactor
            for key in channel.read_keys:
                read = self.reads.closed(key)
                if read is not None:
                    mac, path = key
                    self.clients.progress(
                        mac, clock.seconds(), "http", path, read.sent, read.size, True
                    )

    def _line(self, request: Any, host: str, mac: str | None) -> None:
        log.info(
            '{client}{who} "{method} {path}" {status} {bytes} "{agent}"',
            client=host,
            who=f" [{mac}]" if mac else "",
            mac=mac,
            method=request.method.decode("ascii", "replace"),
            path=request.uri.decode("ascii", "replace")[:300],
            status=request.code,
            bytes=request.sentLength,
            agent=(request.getHeader(b"user-agent") or b"-").decode("latin-1")[:200],
            range=(request.getHeader(b"range") or b"").decode("latin-1")[:200],
        )

    def _summary(
        self, summary: RangeSummary[RangeTarget] | None, host: str, mac: str | None
    ) -> None:
        if summary is None:
            return
        method, uri, agent = summary.target
        log.info(
            '{client}{who} "{method} {path}" {status} {bytes} "{agent}"'
            " ({ranges} ranges over {seconds} s)",
            client=host,
            who=f" [{mac}]" if mac else "",
            mac=mac,
            method=method.decode("ascii", "replace"),
            path=uri.decode("ascii", "replace")[:300],
            status=206,
            bytes=summary.sent,
            agent=(agent or b"-").decode("latin-1")[:200],
            range=summary.last_range.decode("latin-1")[:200],
            ranges=summary.ranges,
            seconds=summary.seconds,
        )


class HttpService(Service):
    def __init__(
        self,
        config: HttpConfig,
        catalog: Callable[[], Catalog],
        reactor: Any,
        bind_addresses: list[str],
    ) -> None:
        self.config = config
        self.reactor = reactor
        self.bind_addresses = bind_addresses
        self.resource = ImageResource(catalog, config, reactor)
        self.site = AccessLogSite(self.resource, timeout=config.idle_timeout, reactor=reactor)
        self.site.quick_range = self.resource.quick_range
        self.site.displayTracebacks = False
        self.site.noisy = False
        self.ports: list[Any] = []

    def startService(self) -> None:  # noqa: N802
        super().startService()
        for address in self.bind_addresses:
            # Port 0 (tests): the first listener's pick is every other one's port too,
            # as root paths and boot URLs name one port.
            number = self.config.port or (self.bound_port or 0)
            try:
                port = listen_tcp(self.reactor, number, self.site, address)
            except (OSError, CannotListenError) as error:
                if not is_ipv6(address):
                    raise
                log.warn(
                    "HTTP not listening on {address} port {port}: {reason}; IPv6 clients "
                    "cannot reach it there",
                    address=address,
                    port=number,
                    reason=str(error),
                )
                continue
            self.ports.append(port)
            log.info(
                "HTTP listening on {address}:{port}",
                address=listen_label(address),
                port=port.getHost().port,
            )

    @property
    def bound_port(self) -> int | None:
        """The TCP port as bound (a configured 0 becomes the kernel's pick): what root
        paths and boot URLs must name."""
        return self.ports[0].getHost().port if self.ports else None

    def stopService(self) -> Any:  # noqa: N802
        super().stopService()
        ports, self.ports = self.ports, []
        for port in ports:
            port.stopListening()
