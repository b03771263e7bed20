"""Shared by the benchmark scripts: the local PostgreSQL server URL the tests use too."""
from __future__ import annotations

import getpass
import os


def local_pg_url(database: str, *, sqlalchemy: bool = True) -> str:
    """URL of ``database`` on the local server over its Unix socket as the current user (what
    ``scripts/run.sh`` sets up); ``GRIDPATROL_BENCH_PG`` overrides it with a full URL.
    ``sqlalchemy=False`` gives the plain libpq form for psycopg."""
    url = os.environ.get("GRIDPATROL_BENCH_PG") or (
        f"postgresql+psycopg://{getpass.getuser()}@/{database}?host=/var/run/postgresql"
        f"&port={os.environ.get('PGPORT', '5432')}")
    return url if sqlalchemy else url.replace("postgresql+psycopg://", "postgresql://", 1)
