"""Shared by the benchmarks: the local PostgreSQL server URL the tests use too, and a best-of-n timer."""
from __future__ import annotations

import getpass
import os
import time


def local_pg_url(database: str, *, sqlalchemy: bool = True) -> str:
    """URL of ``database`` on the local server over its Unix socket as the current user (what
    ``scripts/run.sh`` sets up); ``GRIDPATROL_BENCH_PG`` overrides it with a full URL.
    ``sqlalchemy=False`` gives the plain libpq form for psycopg."""
    url = os.environ.get("GRIDPATROL_BENCH_PG") or (
        f"postgresql+psycopg://{getpass.getuser()}@/{database}?host=/var/run/postgresql"
        f"&port={os.environ.get('PGPORT', '5432')}")
    return url if sqlalchemy else url.replace("postgresql+psycopg://", "postgresql://", 1)


def timed(fn, repeat: int = 1):  # noqa: ANN001, ANN201
    """(best wall time in s, result of the last run)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out
