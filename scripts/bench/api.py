"""Load-test the running service from a second process: map-click lookups and OGC item pages on
PostGIS with 1,000,000 cameras and 500,000 incidents, against pg_featureserv-style raw SQL.

Usage: python -m gridpatrol.scripts.bench.api [--cameras N] [--incidents N] [--requests N] [--cpu-clicks N]
       [--concurrency N] [--workers N] [--walk-pages N] [--pg URL] [--keep] [--schema S]

Builds a PostGIS schema (Chengdu streets, 锦江区 grids, N synthetic cameras and incidents spread over
about 0.8° × 0.8° around Chengdu), starts ``gridpatrol serve`` on a free loopback port, and fires
bounded request batches from this process with ``--concurrency`` clients: map clicks, OGC item
pages at random offsets, and walks of ``--walk-pages`` pages per box by the ``next`` links (the
keyset cursor) as GIS clients page. The baseline runs the
same questions as plain SQL from the same process over as many pooled connections (what a
pg_featureserv-style server does per request, without our role checks and exact in-view test).
Prints a markdown table: throughput and p50/p95/p99 latency.
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NamedTuple

import httpx
from gridpatrol.scripts.bench.common import cpu_seconds, serving_pids

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("GRIDPATROL_DATA", ROOT.parent / "shared" / "data"))
# The region the generated cameras and incidents cover (around the Chengdu extract), degrees.
REGION = (103.69, 30.29, 104.49, 31.09)
EXTRACT = (104.0421, 30.6528, 104.1296, 30.7279)
PASSWORD = "bench-password-1"


def pg_server_url(pg: str | None) -> str:
    return pg or os.environ.get("GRIDPATROL_BENCH_PG") or (
        f"postgresql+psycopg://{getpass.getuser()}@/gridpatrol_bench?host=/var/run/postgresql")


def build(url_db: str, n_cams: int, n_inc: int) -> tuple[str, str]:
    """Create database/schema, import Chengdu and generate the layers; returns (store url, schema)."""
    from gridpatrol.layers import users
    from gridpatrol.layers.grids import draw_grids
    from gridpatrol.layers.importing import import_areas, import_osm
    from gridpatrol.layers.store import open_store
    from sqlalchemy import create_engine, text

    base, _, query = url_db.partition("?")
    dbname = base.rsplit("/", 1)[1]
    admin = create_engine(base.rsplit("/", 1)[0] + "/postgres" + ("?" + query if query else ""), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        if not c.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": dbname}).first():
            c.execute(text(f'CREATE DATABASE "{dbname}"'))
    admin.dispose()
    eng = create_engine(url_db, isolation_level="AUTOCOMMIT")
    schema = "bench_" + uuid.uuid4().hex[:8]
    with eng.connect() as c:
        c.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        c.execute(text(f"CREATE SCHEMA {schema}"))
    eng.dispose()
    url = url_db + ("&" if "?" in url_db else "?") + f"options=-csearch_path%3D{schema},public"
    store = open_store(url)
    t0 = time.perf_counter()
    import_osm(store, DATA / "chengdu" / "chengdu.osm")
    import_areas(store, DATA / "chengdu" / "510104.geojson", crs="gcj02", name="锦江区")
    draw_grids(store)
    minx, miny, maxx, maxy = REGION
    with store.begin() as c:
        c.execute(text("UPDATE grids SET worker = 'worker-' || code"))
        c.execute(text(f"""
            INSERT INTO cameras (code, name, project, azimuth_deg, fov_deg, range_m, height_m, camera_type, status,
                                 secrecy_level, synthetic, source, geom)
            SELECT 'B' || lpad(g::text, 19, '0'), 'bench camera ' || g,
                   CASE WHEN g % 3 = 0 THEN 'sharp_eyes' ELSE 'skynet' END, random() * 360, 50 + random() * 60,
                   30 + random() * 70, 6, CASE WHEN g % 10 = 0 THEN 'dome' ELSE 'fixed' END,
                   CASE WHEN g % 50 = 0 THEN 'offline' ELSE 'online' END, 0, true, 'bench',
                   ST_SetSRID(ST_MakePoint({minx} + random() * {maxx - minx}, {miny} + random() * {maxy - miny}), 4326)
            FROM generate_series(1, {int(n_cams)}) g"""))
        c.execute(text(f"""
            INSERT INTO incidents (occurred_at, category, description, source, state, state_since, version,
                                   synthetic, geom)
            SELECT now() - random() * interval '365 days', (ARRAY['治安','矛盾纠纷','环境卫生','消防安全'])[1 + g % 4],
                   'bench incident', 'bench', 'reported', now(), 1, true,
                   ST_SetSRID(ST_MakePoint({minx} + random() * {maxx - minx}, {miny} + random() * {maxy - miny}), 4326)
            FROM generate_series(1, {int(n_inc)}) g"""))
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        # VACUUM: the visibility map a server's autovacuum keeps, which index-only scans need.
        c.execute(text("VACUUM ANALYZE"))
    users.create_user(store, "bench-dispatcher", "dispatcher", PASSWORD)
    print(f"built {schema}: {store.count('cameras'):,} cameras, {store.count('incidents'):,} incidents, "
          f"{store.count('grids')} grids in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    store.dispose()
    return url, schema


def drop(url_db: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(url_db, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    eng.dispose()


def stats(name: str, impl: str, res: LoadResult, server_ms: list[float] | None = None) -> dict:
    lat_s = res.lat
    q = statistics.quantiles(lat_s, n=100) if len(lat_s) >= 2 else [lat_s[0]] * 99
    row = {"operation": name, "implementation": impl, "requests": len(lat_s), "errors": res.errors,
           "req/s": len(lat_s) / res.wall, "p50 ms": q[49] * 1000, "p95 ms": q[94] * 1000, "p99 ms": q[98] * 1000,
           "server p50/p95 ms": "–", "client CPU": f"{res.client_cpu:.0%}",
           "CPU ms/request": (res.other_cpu_s + res.client_cpu * res.wall) / max(1, len(lat_s)) * 1000}
    if server_ms and len(server_ms) >= 2:
        sq = statistics.quantiles(server_ms, n=100)
        row["server p50/p95 ms"] = f"{sq[49]:.1f} / {sq[94]:.1f}"
    return row


def server_durations(log: Path, offset: int, prefix: str) -> list[float]:
    """duration_ms of the requests under ``prefix`` the server logged after byte ``offset``
    (its own time per request, without the client's queueing)."""
    import json

    out = []
    with open(log, encoding="utf-8") as fh:
        fh.seek(offset)
        for line in fh:
            if '"msg": "request"' in line and f'"path": "{prefix}' in line:
                out.append(float(json.loads(line)["duration_ms"]))
    return out


class LoadResult(NamedTuple):
    """Latencies (s) of the requests, wall time (s), failed requests, and the load client's own
    CPU time as a share of one core over the run."""

    lat: list[float]
    wall: float
    errors: int
    client_cpu: float
    other_cpu_s: float = 0.0  # CPU time of the server processes and/or database backends serving the run


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and keep-alive of one HTTP/1.1 response (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, keep = None, False, True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            keep = False
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        return status, b"".join(p[:-2] for p in parts), keep
    return status, await reader.readexactly(length or 0), keep


def _http_target(base: str, headers: dict[str, str]) -> tuple[str, int, Callable[[str], bytes]]:
    """(host, port, request): where ``base`` (http://host:port) listens, and the GET request of a path
    on it with ``headers``, as bytes for a keep-alive HTTP/1.1 connection."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return host, int(port), lambda path: f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode()


class _Tally:
    """Latencies (s) and failures of a run's requests, as its workers record them."""

    def __init__(self) -> None:
        self.lat: list[float] = []
        self.errors = 0

    def record(self, t0: float, ok: bool) -> None:
        """A request started at ``time.perf_counter()`` = ``t0`` has ended, well (``ok``) or not."""
        self.lat.append(time.perf_counter() - t0)
        self.errors += not ok


async def _timed(workers: list[Awaitable[None]]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds per wall second) of running ``workers`` together."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*workers)
    wall = time.perf_counter() - t0
    return wall, (time.process_time() - cpu0) / wall


async def http_load(base: str, paths: list[str], headers: dict[str, str], concurrency: int) -> LoadResult:
    """GET every path on ``concurrency`` keep-alive HTTP/1.1 connections (plain asyncio streams:
    a few tens of µs of client CPU per request, so the client takes little from the server)."""
    host, port, request = _http_target(base, headers)
    tally = _Tally()
    queue = list(reversed(paths))

    async def worker() -> None:
        conn = None
        while queue:
            path = queue.pop()
            req = request(path)
            t = time.perf_counter()
            ok = False
            for _attempt in range(2):  # once more on a fresh connection if the server closed this one
                try:
                    if conn is None:
                        conn = await asyncio.open_connection(host, port)
                    conn[1].write(req)
                    status, _body, keep = await _read_response(conn[0])
                    ok = status == 200
                    if not keep:
                        conn[1].close()
                        conn = None
                    break
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    if conn is not None:
                        conn[1].close()
                    conn = None
            tally.record(t, ok)
        if conn is not None:
            conn[1].close()

    wall, cpu_share = await _timed([worker() for _ in range(concurrency)])
    return LoadResult(tally.lat, wall, tally.errors, cpu_share)


async def http_walk(base: str, starts: list[str], headers: dict[str, str], concurrency: int,
                    max_pages: int) -> LoadResult:
    """Page through each start path by its ``next`` links (up to ``max_pages`` pages), as GDAL and
    QGIS do, on ``concurrency`` keep-alive connections; one latency per page."""
    import json
    from urllib.parse import urlsplit

    host, port, request = _http_target(base, headers)
    tally = _Tally()
    queue = list(reversed(starts))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        while queue:
            path: str | None = queue.pop()
            for _ in range(max_pages):
                if path is None:
                    break
                t = time.perf_counter()
                writer.write(request(path))
                status, body, _keep = await _read_response(reader)
                tally.record(t, status == 200)
                if status != 200:
                    break
                nxt = [x["href"] for x in json.loads(body)["links"] if x["rel"] == "next"]
                path = (lambda u: f"{u.path}?{u.query}")(urlsplit(nxt[0])) if nxt else None
        writer.close()

    wall, cpu_share = await _timed([worker() for _ in range(concurrency)])
    return LoadResult(tally.lat, wall, tally.errors, cpu_share)


async def sql_load(dsn: str, jobs: list[tuple[str, dict]], concurrency: int) -> LoadResult:
    """Run every job (statements separated by ``;\\n``) with the same asyncio worker loop as
    :func:`http_load`, over ``concurrency`` connections (psycopg, async)."""
    import psycopg

    conns = [await psycopg.AsyncConnection.connect(dsn, autocommit=True) for _ in range(concurrency)]
    tally = _Tally()
    queue = list(reversed(jobs))

    async def worker(conn: psycopg.AsyncConnection) -> None:
        while queue:
            sqls, params = queue.pop()
            t, ok = time.perf_counter(), True
            try:
                for sql in sqls.split(";\n"):
                    await (await conn.execute(sql, params)).fetchall()
            except psycopg.Error:
                ok = False
            tally.record(t, ok)

    pids = [c.info.backend_pid for c in conns]
    db0 = cpu_seconds(pids)
    wall, cpu_share = await _timed([worker(c) for c in conns])
    db = cpu_seconds(pids) - db0
    for c in conns:
        await c.close()
    return LoadResult(tally.lat, wall, tally.errors, cpu_share, db)


def click_cpu(dsn: str, pts: list[tuple[float, float]]) -> str:
    """CPU per map click, split: PostgreSQL's (the backend's utime + stime from /proc, so the
    database must run on this machine) for the statement, and this process's for the answer
    built from its row (layers.incidents.lookup_document), of it the exact tests of gis.cameras."""
    from datetime import datetime, timezone

    import psycopg
    from gridpatrol.gis.cameras import cameras_in_view, points_within
    from gridpatrol.layers.incidents import (
        FULL_VIEW,
        LOOKUP_RADIUS_M,
        lookup_document,
        lookup_statement,
        row_candidates,
    )

    tick = os.sysconf("SC_CLK_TCK")
    when = datetime.now(timezone.utc)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]

        def db_cpu() -> float:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick

        for x, y in pts[:100]:  # warm-up: the prepared statement, caches
            conn.execute(*lookup_statement(x, y, when), prepare=True).fetchone()
        cpu0, rows = db_cpu(), []
        for x, y in pts:
            rows.append(conn.execute(*lookup_statement(x, y, when), prepare=True).fetchone())
        db = (db_cpu() - cpu0) / len(pts)
    t0 = time.process_time()
    for (x, y), row in zip(pts, rows):
        lookup_document(x, y, when, row, radius_m=LOOKUP_RADIUS_M)
    py = (time.process_time() - t0) / len(pts)
    cands = [row_candidates(row, FULL_VIEW) for row in rows]
    t0 = time.process_time()
    for (x, y), c in zip(pts, cands):
        cameras_in_view(x, y, c.cameras)
        points_within(x, y, c.incidents["lon"], c.incidents["lat"], LOOKUP_RADIUS_M)
    exact = (time.process_time() - t0) / len(pts)
    return (f"CPU per map click ({len(pts):,} clicks, one connection): PostgreSQL {db * 1e3:.3f} ms for the statement, "
            f"Python {py * 1e3:.3f} ms for the answer, of it {exact * 1e3:.3f} ms in the exact tests (gis.cameras)")


# What a pg_featureserv-style server runs for the same click: cameras within reach with the
# sector test in SQL, incidents within the radius of the last 30 days, and the grid. The
# ``geom && ST_Expand`` box (degrees, generous at 30° N) lets the geometry GiST index work.
LOOKUP_SQL = """SELECT code, ST_Distance(geography(geom), geography(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326))) AS d
 FROM cameras WHERE geom && ST_Expand(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), 0.0015)
 AND ST_DWithin(geography(geom), geography(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)), 110)
 AND ST_Distance(geography(geom), geography(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326))) <= range_m
 AND (camera_type <> 'fixed' OR abs(mod((degrees(ST_Azimuth(geom, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326))) - azimuth_deg + 540)::numeric, 360) - 180) <= fov_deg / 2);
SELECT id, category FROM incidents WHERE geom && ST_Expand(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), 0.0035)
 AND ST_DWithin(geography(geom), geography(ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)), 300)
 AND occurred_at >= now() - interval '30 days';
SELECT code, worker FROM grids WHERE plan_id = (SELECT max(id) FROM grid_plans) AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)) LIMIT 1"""
ITEMS_SQL = """SELECT id, code, ST_AsGeoJSON(geom) FROM cameras
 WHERE geom && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326) ORDER BY id LIMIT 100 OFFSET %(off)s"""


def items_all_sql() -> str:
    """The items query as pg_featureserv writes it: every property column and the geometry as
    GeoJSON (15 decimals, as ours), no count."""
    from gridpatrol.layers.models import LAYERS

    cols = ", ".join(c.name for c in LAYERS["cameras"].__table__.columns if c.name not in ("id", "geom"))
    return ITEMS_SQL.replace("id, code, ST_AsGeoJSON(geom)", f"id, ST_AsGeoJSON(geom, 15), {cols}")


APP_NAME = "gridpatrol-bench-api"  # the server's database connections, to count their CPU


def serving_cpu(dsn: str, port: int) -> dict[int, float]:
    """CPU time (s) so far of each process serving the API: the server's and its database backends'."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        backends = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APP_NAME,))]
    return {pid: cpu_seconds([pid]) for pid in [*serving_pids(port), *backends]}


def http_run(dsn: str, base: str, load) -> LoadResult:  # noqa: ANN001
    """``asyncio.run(load)`` with the CPU the server and its backends used during it (processes
    started meanwhile count from 0)."""
    port = int(base.rsplit(":", 1)[1])
    before = serving_cpu(dsn, port)
    res = asyncio.run(load)
    after = serving_cpu(dsn, port)
    print(f"CPU counted over {len(after)} processes (server and its database backends)", file=sys.stderr)
    return res._replace(other_cpu_s=sum(v - before.get(pid, 0.0) for pid, v in after.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", type=int, default=1_000_000)
    ap.add_argument("--incidents", type=int, default=500_000)
    ap.add_argument("--requests", type=int, default=2000, help="requests per scenario (bounded)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="server worker processes")
    ap.add_argument("--walk-pages", type=int, default=10, help="pages per box in the paging walk")
    ap.add_argument("--pg", help="PostgreSQL URL of the bench database (created if missing)")
    ap.add_argument("--keep", action="store_true", help="keep the bench schema")
    ap.add_argument("--schema", help="reuse a bench schema kept by an earlier --keep run (no build)")
    ap.add_argument("--cpu-clicks", type=int, default=2000, help="map clicks for the CPU-per-click split (0: skip)")
    args = ap.parse_args()
    if args.concurrency < 1 or args.requests < 10:
        ap.error("--concurrency ≥ 1 and --requests ≥ 10")
    url_db = pg_server_url(args.pg)
    if args.schema:
        schema = args.schema
        url = url_db + ("&" if "?" in url_db else "?") + f"options=-csearch_path%3D{schema},public"
        args.keep = True
    else:
        url, schema = build(url_db, args.cameras, args.incidents)
    from gridpatrol.scripts.serving import running_server  # the helper the e2e tests use too

    rng = random.Random(1)
    rows = []
    load0 = os.getloadavg()[0]
    try:
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with running_server(f"{url}&application_name={APP_NAME}", workers=args.workers) as base:
            token = httpx.post(base + "/auth/token", data={"username": "bench-dispatcher", "password": PASSWORD}).json()
            headers = {"Authorization": "Bearer " + token["access_token"]}
            x0, y0, x1, y1 = EXTRACT
            pts = [(rng.uniform(x0, x1), rng.uniform(y0, y1)) for _ in range(args.requests)]
            # Warm-up: connection pools and caches on both sides.
            asyncio.run(http_load(base, [f"/lookup?lon={x}&lat={y}" for x, y in pts[:200]], headers, 8))
            log = Path(os.environ.get("TMPDIR", "/tmp")) / f"gp-e2e-server-{base.rsplit(':', 1)[1]}.log"
            at = log.stat().st_size
            res = http_run(dsn, base, http_load(base, [f"/lookup?lon={x}&lat={y}" for x, y in pts], headers, args.concurrency))
            rows.append(stats("lookup (map click)", "gridpatrol API", res, server_durations(log, at, "/lookup")))
            # The same clicks past the fast path (api/routes/lookup.py declines a query with any other
            # parameter): the FastAPI route with its dependencies, what the fast path buys.
            at = log.stat().st_size
            res = http_run(dsn, base, http_load(base, [f"/lookup?lon={x}&lat={y}&via=route" for x, y in pts], headers,
                                                args.concurrency))
            rows.append(stats("lookup (map click)", "gridpatrol API, route (no fast path)", res,
                              server_durations(log, at, "/lookup")))
            boxes = []
            for _ in range(args.requests):
                cx, cy = rng.uniform(REGION[0], REGION[2] - 0.05), rng.uniform(REGION[1], REGION[3] - 0.05)
                boxes.append((cx, cy, cx + 0.05, cy + 0.05, rng.choice([0, 100, 200])))
            paths = [f"/ogc/collections/cameras/items?bbox={a},{b},{c},{d}&limit=100&offset={o}" for a, b, c, d, o in boxes]
            asyncio.run(http_load(base, paths[:50], headers, 8))
            at = log.stat().st_size
            res = http_run(dsn, base, http_load(base, paths, headers, args.concurrency))
            rows.append(stats("OGC items page (100 cameras, bbox)", "gridpatrol API", res,
                              server_durations(log, at, "/ogc/collections/cameras/items")))
            # A GIS client's walk: the first page of a box, then its next links (keyset cursor,
            # the count of the first page carried along).
            walks = boxes[: max(1, args.requests // args.walk_pages)]
            starts = [f"/ogc/collections/cameras/items?bbox={a},{b},{c},{d}&limit=100" for a, b, c, d, _o in walks]
            at = log.stat().st_size
            res = http_run(dsn, base, http_walk(base, starts, headers, args.concurrency, args.walk_pages))
            rows.append(stats(f"OGC items walk ({args.walk_pages} pages of 100 per box)", "gridpatrol API", res,
                              server_durations(log, at, "/ogc/collections/cameras/items")))
        jobs = [(LOOKUP_SQL, {"lon": x, "lat": y}) for x, y in pts]
        asyncio.run(sql_load(dsn, jobs[:200], 8))
        res = asyncio.run(sql_load(dsn, jobs, args.concurrency))
        rows.append(stats("lookup (map click)", "raw SQL (pg_featureserv-style)", res))
        jobs = [(ITEMS_SQL, {"x0": a, "y0": b, "x1": c, "y1": d, "off": o}) for a, b, c, d, o in boxes]
        res = asyncio.run(sql_load(dsn, jobs, args.concurrency))
        rows.append(stats("OGC items page (100 cameras, bbox)", "raw SQL (pg_featureserv-style)", res))
        jobs = [(items_all_sql(), {"x0": a, "y0": b, "x1": c, "y1": d, "off": o}) for a, b, c, d, o in boxes]
        res = asyncio.run(sql_load(dsn, jobs, args.concurrency))
        rows.append(stats("OGC items page (100 cameras, bbox)", "raw SQL, every property", res))
        # Page k of every box before page k + 1 of any: as in the API walk, the clients work on
        # different boxes at once (all pages of one box at once would share its heap pages).
        jobs = [(ITEMS_SQL, {"x0": a, "y0": b, "x1": c, "y1": d, "off": k * 100})
                for k in range(args.walk_pages) for a, b, c, d, _o in walks]
        res = asyncio.run(sql_load(dsn, jobs, args.concurrency))
        rows.append(stats(f"OGC items walk ({args.walk_pages} pages of 100 per box)", "raw SQL (pg_featureserv-style)", res))
        cpu_line = click_cpu(dsn, [(rng.uniform(x0, x1), rng.uniform(y0, y1)) for _ in range(args.cpu_clicks)]) \
            if args.cpu_clicks > 0 else ""
    finally:
        if not args.keep:
            drop(url_db, schema)
    print(f"\n{args.cameras:,} cameras, {args.incidents:,} incidents on PostGIS; {args.concurrency} concurrent clients, "
          f"{args.workers} server workers; {os.cpu_count()} CPU cores shared by server, database and client; "
          f"load average {load0:.1f} before the runs, {os.getloadavg()[0]:.1f} after\n")
    print("req/s and p50/p95/p99: seen by the client (including queueing behind the other clients and the\n"
          "client's own CPU); server p50/p95: the server's own time per request from its log; client CPU: the\n"
          "load client's CPU time over the run, as a share of one core; CPU ms/request: the CPU time every\n"
          "process involved used per request (server and its database backends, or the raw SQL's backends,\n"
          "plus the load client), which bounds the throughput on a shared machine whatever the other load.\n")
    if cpu_line:
        print(cpu_line + "\n")
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
                                for v in r.values()) + " |")


if __name__ == "__main__":
    main()
