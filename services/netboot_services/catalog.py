"""The service that owns the image catalog, rescans it, and reports what it serves.

Other services ask it for `.catalog`, which is one immutable `Catalog`; a
rescan replaces the object whole, so a reader never sees a partial scan and a
LIST never sees an empty one. The root is scanned every
`server.rescan_interval` seconds (a polling scan: it works on every file
system, NFS and bind mounts included), and, where inotify is available, half
a second after anything under it changes; only differences are logged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from netboot.nbi.catalog import Catalog, NbiSet, scan_catalog
from netboot.nbi.problems import Severity

log = Logger(namespace="netboot.catalog")


class CatalogService(Service):
    def __init__(self, root: Path, reactor: Any = None, rescan_interval: float = 0.0) -> None:
        """With a reactor and an interval above 0, the root is rescanned on that clock."""
        self.root = root
        self.reactor = reactor
        self.rescan_interval = rescan_interval
        self.catalog = Catalog(root=root)
        self._loop: LoopingCall | None = None
        self._notifier: Any = None
        self._pending: Any = None
        self.listeners: list[Callable[[Catalog], None]] = []
        """Called with the new catalog after a rescan that changed what it holds."""

    def startService(self) -> None:  # noqa: N802 - Twisted's name
        super().startService()
        self.load()
        if self.reactor is not None and self.rescan_interval > 0:
            self._loop = LoopingCall(self.rescan)
            self._loop.clock = self.reactor
            self._loop.start(self.rescan_interval, now=False).addErrback(
                lambda failure: log.failure("catalog rescans stopped", failure)
            )
            self._watch()

    def set_interval(self, seconds: float) -> None:
        """Rescan every `seconds` from now on (`server.rescan_interval`, on reload)."""
        self.rescan_interval = seconds
        loop = self._loop
        if loop is not None and loop.running and loop.interval != seconds:
            loop.stop()
            self._loop = LoopingCall(self.rescan)
            self._loop.clock = self.reactor
            self._loop.start(seconds, now=False).addErrback(
                lambda failure: log.failure("catalog rescans stopped", failure)
            )

    def _watch(self) -> None:
        """Rescan soon after a change under the root (inotify), besides the interval."""
        try:
            from twisted.internet import inotify

            notifier = inotify.INotify(self.reactor)
            notifier.startReading()
        except Exception as error:  # noqa: BLE001 - no inotify: the interval scan remains
            log.info(
                "no inotify watch on {root} ({error}); rescanning every {interval}s",
                root=str(self.root),
                error=str(error),
                interval=self.rescan_interval,
            )
            return
        self._notifier = notifier
        self._watch_directories()

    def _watch_directories(self) -> None:
        """Watch the root and every directory below it that is not reached by a symlink.

        Not Twisted's `recursive`/`autoAdd`: they follow symlinked directories, so a
        set holding `a -> .` and `b -> .` made them add watches without end (2^40
        paths, until ELOOP), and the daemon stopped answering, even SIGTERM. os.walk
        does not follow symlinks; a new directory is watched from the rescan its
        creation triggers on. Watching a directory twice is a dictionary look-up.
        """
        from twisted.internet import inotify
        from twisted.python.filepath import FilePath

        mask = (
            inotify.IN_CREATE
            | inotify.IN_DELETE
            | inotify.IN_CLOSE_WRITE
            | inotify.IN_MOVED_FROM
            | inotify.IN_MOVED_TO
            | inotify.IN_ATTRIB
        )
        for directory, _, _ in os.walk(self.root):
            try:
                self._notifier.watch(FilePath(directory), mask=mask, callbacks=[self._changed])
            except Exception:  # noqa: BLE001, S112 - gone or unreadable: the interval scan sees it
                continue

    def _changed(self, watch: object, path: object, mask: int) -> None:
        if self._pending is None or not self._pending.active():
            self._pending = self.reactor.callLater(0.5, self.rescan)

    def stopService(self) -> None:  # noqa: N802
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        if self._notifier is not None:
            self._notifier.loseConnection()
            self._notifier = None

    def load(self) -> Catalog:
        """Scan the root and publish the new catalog, logging every set and problem."""
        catalog = scan_catalog(self.root)
        for nbi_set in catalog:
            _log_set(nbi_set, self.root)
        self._summarise(catalog)
        self.catalog = catalog
        return catalog

    def rescan(self) -> Catalog:
        """Scan again; log only the sets that appeared, changed or went away."""
        try:
            catalog = scan_catalog(self.root)
        except OSError as error:
            log.warn(
                "cannot rescan {root}: {error}; still serving the previous catalog",
                root=str(self.root),
                error=str(error),
            )
            return self.catalog
        if self._notifier is not None:
            self._watch_directories()
        before = {str(s.path): s.summary() for s in self.catalog}
        after = {str(s.path): s.summary() for s in catalog}
        if before == after:
            self.catalog = catalog  # same content; files may have new mtimes
            return catalog
        for path in sorted(before.keys() - after.keys()):
            log.info("NBI set {set} is gone", set=path)
        for nbi_set in catalog:
            path = str(nbi_set.path)
            if path not in before:
                log.info("NBI set {set} appeared", set=path)
                _log_set(nbi_set, self.root)
            elif before[path] != after[path]:
                log.info("NBI set {set} changed", set=path)
                _log_set(nbi_set, self.root)
        self._summarise(catalog)
        self.catalog = catalog
        for listener in self.listeners:
            listener(catalog)
        return catalog

    def _summarise(self, catalog: Catalog) -> None:
        log.info(
            "catalog: {servable} of {total} NBI sets servable from {root}",
            servable=len(catalog.servable),
            total=len(catalog),
            root=str(self.root),
        )


def _log_set(nbi_set: NbiSet, root: Path) -> None:
    for problem in nbi_set.problems:
        emit = log.warn if problem.severity is Severity.ERROR else log.info
        emit(
            "{problem}",
            problem=problem.render(str(root)),
            set=str(nbi_set.path),
            key=problem.key,
            severity=str(problem.severity),
        )
    if nbi_set.is_servable and nbi_set.info is not None:
        log.info(
            "serving image {image_id} {name!r} ({type}) from {set}",
            image_id=str(nbi_set.image_id),
            name=nbi_set.info.name,
            type=str(nbi_set.info.image_type),
            set=str(nbi_set.path),
            architectures=list(nbi_set.info.architectures),
        )
