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
    """(best wall time in s over ``repeat`` runs (at least one), result of the last run)."""
    best, out = float("inf"), None
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def cpu_seconds(pids) -> float:  # noqa: ANN001
    """CPU time (s) the processes ``pids`` have used so far, from Linux's /proc/PID/schedstat
    (nanoseconds, unlike the 10 ms ticks of /proc/PID/stat); processes gone count 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat", encoding="ascii") as fh:
                total += int(fh.read().split()[0])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            pass
    return total / 1e9


def serving_pids(port: int) -> list[int]:
    """The process started with ``--port PORT`` (``gridpatrol serve``) and all its descendants
    (uvicorn's workers)."""
    parents: dict[int, int] = {}
    root = None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        if b"--port" in args and args.index(b"--port") + 1 < len(args) and args[args.index(b"--port") + 1] == str(port).encode():
            root = int(entry)
    if root is None:
        return []
    out, todo = [root], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        todo += kids
    return out
