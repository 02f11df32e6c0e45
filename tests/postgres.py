"""pytest glue for `netboot_lab.postgres`: one private cluster per session, a schema per test.

A missing PostgreSQL (Debian's `postgresql` package) is a skip here, which
NETBOOT_REQUIRE_ALL=1 turns into a failure (see conftest.py), like every other
missing tool.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import psycopg
import pytest

from netboot_lab.postgres import PostgresMissing, PrivateCluster, private_postgres, server_binaries

_schemas = itertools.count(1)


def session_cluster() -> Iterator[PrivateCluster]:
    """The session's private cluster (Unix socket only), removed at the end; conftest.py
    makes it the `postgres_cluster` fixture."""
    try:
        server_binaries()
    except PostgresMissing as missing:
        pytest.skip(str(missing))
    with private_postgres() as cluster:
        yield cluster


def fresh_schema_url(cluster: PrivateCluster) -> str:
    """A URL whose tables land in a new, empty schema of the cluster."""
    schema = f"t{next(_schemas)}"
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return cluster.schema_url(schema)
