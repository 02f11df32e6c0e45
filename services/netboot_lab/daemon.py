"""Run the real `netboot serve` as a process and read its log as it runs.

Tests wait on log lines (the daemon's readiness signal), never on sleeps. The
timeouts here only bound how long a broken daemon can hang the suite.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

START_TIMEOUT = 60.0
READY = re.compile(r"netboot \S+ ready: ")


def without_nfs(args: Sequence[str]) -> list[str]:
    """The daemon's arguments with `[nfs] mode = "off"` unless the test configured NFS.

    nfs-ganesha and rpcbind share files under /run across namespaces, so only the
    tests about NFS start them.
    """
    args = list(args)
    if "--config" in args:
        position = args.index("--config") + 1
        original = Path(args[position])
        text = original.read_text()
        if "[nfs]" in text:
            return args
        patched = original.with_name(original.stem + ".no-nfs.toml")
        patched.write_text(text + '\n[nfs]\nmode = "off"\n')
        args[position] = str(patched)
        return args
    handle, name = tempfile.mkstemp(prefix="netboot-no-nfs-", suffix=".toml")
    os.write(handle, b'[nfs]\nmode = "off"\n')
    os.close(handle)
    return ["--config", name, *args]


PRIVATE_STATE = (
    ("--bindings-database", "bindings_database", "bsdp-bindings.sqlite3"),
    ("--state-database", "state_database", "state.sqlite3"),
    ("--admin-token-file", "token_file", "admin-token"),
    ("--audit-log", "audit_log", "audit.log"),
)
"""The daemon's state files: (flag, config key, file name in the private directory)."""


def private_bindings(args: Sequence[str]) -> tuple[list[str], Path | None]:
    """The daemon's arguments with state files of its own, unless the test chose them.

    The defaults under /var/lib/netboot would carry BSDP bindings (and priority
    drops with them), assignments and the admin token from one test's daemon
    into the next. Returns the directory made for the files, removed when the
    daemon is done.
    """
    args = list(args)
    config = Path(args[args.index("--config") + 1]).read_text() if "--config" in args else ""
    missing = [
        (flag, name) for flag, key, name in PRIVATE_STATE if flag not in args and key not in config
    ]
    if not missing:
        return args, None
    directory = Path(tempfile.mkdtemp(prefix="netboot-state-"))
    directory.chmod(0o755)  # a daemon started with --user keeps using it after dropping root
    for flag, name in missing:
        args += [flag, str(directory / name)]
    return args, directory


class Daemon:
    def __init__(self, args: Sequence[str], netns: str | None = None) -> None:
        args, self._state_dir = private_bindings(args)
        configured = (
            "--config" in args
            and "allow_root" in Path(args[args.index("--config") + 1]).read_text()
        )
        if "--user" not in args and not configured:
            args.append("--allow-root")  # the tests run as root in their own namespaces
        command = [sys.executable, "-m", "netboot", "serve", *without_nfs(args)]
        if netns is not None:
            command = ["ip", "netns", "exec", netns, *command]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = START_TIMEOUT) -> str:
        """Return the first new log line matching `pattern`; fail if the daemon exits first."""
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no log line matching {compiled.pattern!r} within {timeout}s; "
                    f"log so far:\n" + "\n".join(self.lines)
                ) from None
            if line is None:
                raise AssertionError(
                    f"daemon exited ({self.process.wait()}) before logging "
                    f"{compiled.pattern!r}; log:\n" + "\n".join(self.lines)
                )
            self.lines.append(line)
            if compiled.search(line):
                return line

    def seen_or_wait(self, pattern: str, timeout: float = START_TIMEOUT) -> str:
        """A line already logged that matches `pattern`, else the next one that does."""
        compiled = re.compile(pattern)
        for line in self.lines:
            if compiled.search(line):
                return line
        return self.wait_for(compiled, timeout)

    def wait_ready(self) -> str:
        return self.wait_for(READY)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` and return the exit status; kills and fails if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"daemon ignored signal {sig} for {timeout}s") from None
        self._reader.join(timeout=5)
        while not self._queue.empty():
            line = self._queue.get_nowait()
            if line is not None:
                self.lines.append(line)
        self._remove_state()
        return status

    def _remove_state(self) -> None:
        if self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None

    def __enter__(self) -> Daemon:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._remove_state()
