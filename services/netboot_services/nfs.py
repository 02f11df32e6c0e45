"""nfs-ganesha as a child of `netboot serve`: configured, watched, restarted, stopped.

Macs whose image is of Type NFS mount the image root over NFS. We do not
implement NFS; we run nfs-ganesha (user space, NFSv3 and v4) with a
configuration written from ours, forward its log lines into our log, restart
it with exponential backoff if it dies, and stop it with the daemon. NFSv3
needs rpcbind: if nothing answers on port 111 we run one too.

`available` tells the BSDP side whether NFS images can be offered: while
ganesha is missing or down, they are not (unless `nfs.mode` is `external`,
where another NFS server exports the image root).
"""

from __future__ import annotations

import shutil
import signal
import socket
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from netboot.config import NfsConfig
from netboot.nfs.ganesha import GaneshaSettings, render_config

log = Logger(namespace="netboot.nfs")
child_log = Logger(namespace="netboot.nfs.child")

BACKOFF_START = 1.0
BACKOFF_MAX = 60.0
STABLE_AFTER = 60.0
"""A child that ran this long is healthy again: the next restart waits BACKOFF_START."""
STOP_GRACE = 5.0


class _Child(ProcessProtocol):
    """One run of a supervised program; forwards its output line by line."""

    def __init__(self, supervisor: Supervised) -> None:
        self.supervisor = supervisor
        self._partial = {1: b"", 2: b""}
        self.ended: Deferred[None] = Deferred()

    def childDataReceived(self, fd: int, data: bytes) -> None:  # noqa: N802
        text = self._partial.get(fd, b"") + data
        *lines, self._partial[fd] = text.split(b"\n")
        for line in lines:
            if line.strip():
                child_log.info(
                    "{name}: {line}",
                    name=self.supervisor.name,
                    line=line.decode("utf-8", "replace").rstrip(),
                )

    def processEnded(self, reason: Failure) -> None:  # noqa: N802
        self.supervisor.ended(self, reason)
        self.ended.callback(None)


class Supervised:
    """Keeps one program running: restarts with backoff, stops on request."""

    def __init__(self, name: str, argv: list[str], reactor: Any) -> None:
        self.name = name
        self.argv = argv
        self.reactor = reactor
        self.child: _Child | None = None
        self.transport: Any = None
        self.stopping = False
        self.restarts = 0
        self._backoff = BACKOFF_START
        self._started_at = 0.0
        self._restart_call: Any = None

    @property
    def running(self) -> bool:
        return self.child is not None

    @property
    def pid(self) -> int | None:
        return None if self.transport is None else self.transport.pid

    def start(self) -> None:
        self._restart_call = None
        self.child = _Child(self)
        self._started_at = self.reactor.seconds()
        argv = self.argv
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            # The child gets SIGTERM if we die, even by SIGKILL: no orphaned servers.
            argv = [setpriv, "--pdeathsig", "TERM", *argv]
        self.transport = self.reactor.spawnProcess(
            self.child, argv[0], argv, env=None, childFDs={0: "w", 1: "r", 2: "r"}
        )
        log.info("started {name} (pid {pid})", name=self.name, pid=self.transport.pid)

    def ended(self, child: _Child, reason: Failure) -> None:
        if child is not self.child:
            return
        self.child = None
        self.transport = None
        status = getattr(reason.value, "exitCode", None)
        signal_number = getattr(reason.value, "signal", None)
        how = f"signal {signal_number}" if signal_number else f"status {status}"
        if self.stopping:
            log.info("{name} stopped ({how})", name=self.name, how=how)
            return
        if self.reactor.seconds() - self._started_at >= STABLE_AFTER:
            self._backoff = BACKOFF_START
        log.warn(
            "{name} exited ({how}); restarting in {delay:g}s",
            name=self.name,
            how=how,
            delay=self._backoff,
        )
        self.restarts += 1
        self._restart_call = self.reactor.callLater(self._backoff, self.start)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    def stop(self) -> Deferred[None]:
        self.stopping = True
        if self._restart_call is not None and self._restart_call.active():
            self._restart_call.cancel()
        if self.child is None:
            return succeed(None)
        ended = self.child.ended
        self.transport.signalProcess("TERM")
        kill = self.reactor.callLater(STOP_GRACE, self._kill)
        ended.addBoth(lambda result: kill.cancel() if kill.active() else None)
        return ended

    def _kill(self) -> None:
        if self.transport is not None:
            log.warn(
                "{name} ignored SIGTERM for {grace:g}s; killing it",
                name=self.name,
                grace=STOP_GRACE,
            )
            self.transport.signalProcess(signal.SIGKILL)


def rpcbind_answers(host: str = "127.0.0.1", port: int = 111) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class NfsService(Service):
    def __init__(
        self, config: NfsConfig, image_root: Path, bind_address: str, reactor: Any
    ) -> None:
        self.config = config
        self.image_root = image_root
        self.bind_address = bind_address
        self.reactor = reactor
        self.children: list[Supervised] = []
        self.ganesha: Supervised | None = None

    @property
    def available(self) -> bool:
        """Can NFS images be offered right now?"""
        if self.config.mode == "external":
            return True
        return self.ganesha is not None and self.ganesha.running

    def startService(self) -> None:  # noqa: N802
        super().startService()
        if self.config.mode != "ganesha":
            log.info("NFS: mode {mode}; not running nfs-ganesha", mode=self.config.mode)
            return
        binary = shutil.which(self.config.ganesha_binary)
        if binary is None:
            log.warn(
                "nfs-ganesha ({binary}) is not installed: NFS images are not offered "
                "(install Debian's nfs-ganesha and nfs-ganesha-vfs, or set nfs.mode)",
                binary=self.config.ganesha_binary,
            )
            return
        state = self.config.state_dir
        (state / "recovery").mkdir(parents=True, exist_ok=True)
        if self.config.shadow_root is not None:
            # Configured, so ours to create; ganesha refuses to export a missing path.
            self.config.shadow_root.mkdir(mode=0o755, parents=True, exist_ok=True)
        settings = GaneshaSettings(
            image_root=self.image_root,
            state_dir=state,
            shadow_root=self.config.shadow_root,
            port=self.config.port,
            bind_address=self.bind_address,
        )
        conf = state / "ganesha.conf"
        conf.write_text(render_config(settings))
        if not rpcbind_answers():
            rpcbind = shutil.which("rpcbind")
            if rpcbind is None:
                log.warn("rpcbind is not installed: NFSv3 clients cannot find the server")
            else:
                self._supervise("rpcbind", [rpcbind, "-f", "-w"])
        self.ganesha = self._supervise(
            "nfs-ganesha",
            [
                binary,
                "-F",
                "-f",
                str(conf),
                "-L",
                "/dev/stderr",
                "-p",
                str(state / "ganesha.pid"),
                "-N",
                "NIV_EVENT",
            ],
        )
        log.info(
            "NFS: exporting {root} read-only{shadow} (NFSv3 and v4, port {port})",
            root=str(self.image_root.resolve()),
            shadow=f", shadows at {self.config.shadow_root}" if self.config.shadow_root else "",
            port=self.config.port,
        )

    def _supervise(self, name: str, argv: list[str]) -> Supervised:
        child = Supervised(name, argv, self.reactor)
        self.children.append(child)
        child.start()
        return child

    def stopService(self) -> Deferred[Any]:  # noqa: N802
        super().stopService()
        from twisted.internet.defer import gatherResults

        # ganesha first, then the rpcbind it registered with.
        stops: list[Deferred[None]] = []
        for child in reversed(self.children):
            stops.append(child.stop())
        return gatherResults(stops)
