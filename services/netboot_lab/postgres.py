"""A private PostgreSQL cluster for tests and benchmarks: Debian's binaries, a throwaway directory.

The PostgreSQL lease store (`netboot/dhcp/lease_pg.py`) is tested against the real
server, never a fake: `initdb` in a temporary directory, the server listening
only on a Unix socket in that directory (and, when asked, on one address inside a
network namespace the caller created), trust authentication for the one
superuser `netboot`. Nothing touches the host's own clusters, ports or
configuration, and the directory goes when the context exits.

PostgreSQL refuses to run as root, so as root the cluster belongs to Debian's
`postgres` user (the package creates it) and its commands run through `runuser`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

from netboot.errors import NetbootError
from netboot_lab.process import in_namespace

SUPERUSER = "netboot"
RUN_AS = "postgres"
"""Debian's PostgreSQL system user: the cluster's owner when we are root."""


class PostgresMissing(NetbootError):  # noqa: N818 - the name says what is missing
    """Debian's PostgreSQL server binaries are not installed (`apt-get install postgresql`)."""


def server_binaries() -> Path:
    """The newest `/usr/lib/postgresql/<version>/bin` holding initdb and pg_ctl."""
    found = sorted(
        (path.parent for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")),
        key=lambda bin_dir: int(bin_dir.parent.name) if bin_dir.parent.name.isdigit() else 0,
    )
    found = [bin_dir for bin_dir in found if (bin_dir / "pg_ctl").exists()]
    if not found:
        raise PostgresMissing("PostgreSQL server binaries not found; apt-get install postgresql")
    return found[-1]


class PrivateCluster:
    """One initdb'd cluster in `directory`: start, stop, restart, and its URL."""

    def __init__(
        self, directory: Path, *, listen: str | None = None, namespace: str | None = None
    ) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.socket_dir = directory
        self.log = directory / "server.log"
        self.listen = listen
        """An address to listen on besides the socket (inside `namespace`), or None."""
        self.namespace = namespace
        self.port = 5432
        """Port of the TCP listener and the socket file's name (`.s.PGSQL.5432`)."""
        self._bin = server_binaries()
        self._as_owner = ["runuser", "-u", RUN_AS, "--"] if os.geteuid() == 0 else []

    def _run(self, *command: str, timeout: float = 60) -> None:
        result = subprocess.run(
            in_namespace(self.namespace, [*self._as_owner, *command]),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise NetbootError(
                f"{command[0]} failed ({result.returncode}): {result.stderr.strip()}"
                f"\n{self.log.read_text() if self.log.exists() else ''}"
            )

    def initdb(self) -> None:
        """Create the cluster: trust authentication on its socket only, fsync kept on."""
        if self._as_owner:
            shutil.chown(self.directory, RUN_AS, RUN_AS)
        self._run(
            str(self._bin / "initdb"),
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-instructions",
        )
        listen = self.listen or ""
        settings = (
            f"listen_addresses = '{listen}'\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            f"port = {self.port}\n"
            "max_connections = 40\n"
            "shared_buffers = 32MB\n"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(settings)
        if listen:
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {listen}/32 trust\n")

    def start(self) -> None:
        self._run(
            str(self._bin / "pg_ctl"), "--pgdata", str(self.data), "--log", str(self.log),
            "--wait", "--timeout", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Fast shutdown: clients are disconnected, committed work is kept."""
        self._run(
            str(self._bin / "pg_ctl"), "--pgdata", str(self.data), "--wait", "--mode", "fast",
            "stop",
        )  # fmt: skip

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str = "postgres") -> str:
        """A `postgresql://` URL reaching `database` over the cluster's Unix socket."""
        return f"postgresql://{SUPERUSER}@/{database}?host={quote(str(self.socket_dir), safe='')}"

    def schema_url(self, schema: str, database: str = "postgres") -> str:
        """The URL of `database` with `schema` first on the search path: a test's own
        tables in one shared cluster, far cheaper than a database per test."""
        return f"{self.url(database)}&options={quote(f'-csearch_path={schema}', safe='')}"

    def tcp_url(self, database: str = "postgres") -> str:
        """The URL over TCP, for clients inside the namespace; needs `listen`."""
        if not self.listen:
            raise NetbootError("the cluster listens on its Unix socket only")
        return f"postgresql://{SUPERUSER}@{self.listen}:{self.port}/{database}"


@contextmanager
def private_postgres(
    *, listen: str | None = None, namespace: str | None = None
) -> Iterator[PrivateCluster]:
    """A running private cluster, stopped and deleted on exit.

    The directory is made here, not under pytest's `tmp_path`: as root the server
    runs as `postgres`, which must be able to reach it.
    """
    server_binaries()
    directory = Path(tempfile.mkdtemp(prefix="netboot-pg-"))
    cluster = PrivateCluster(directory, listen=listen, namespace=namespace)
    try:
        cluster.initdb()
        cluster.start()
        yield cluster
    finally:
        if cluster.running():
            with suppress(NetbootError):
                cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
