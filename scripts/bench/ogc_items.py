"""Time the parts of an OGC items page on PostGIS, one statement at a time: our page statement with
and without the count, keyset or offset, with and without the role filter, the ids and count
alone, from the covering point index or (as before schema version 15) the geometry index, against
the raw SQL of bench_api (three columns, and every property); walks (page k + 1
after page k, k in 1–9, by cursor or offset).

Usage: python -m gridpatrol.scripts.bench.ogc_items --schema bench_xxxxxxxx [--boxes N] [--pg URL]

Uses a schema kept by ``gridpatrol.scripts.bench.api --keep``. Each variant gets its own random
0.05° boxes (about 3,900 of the million cameras each; offsets 0/100/200, keyset pages after page
1–9), run in turn so that they share the machine's load, each box read once (its heap pages
not yet in PostgreSQL's buffers, as in the load test). Prints a markdown table of the CPU time the
database backend used per page (Linux /proc/PID/schedstat: robust to the other load on the
machine) and the wall time.
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

from gridpatrol.scripts.bench.common import cpu_seconds

ITEMS_SQL = """SELECT id, code, ST_AsGeoJSON(geom) FROM cameras
 WHERE geom && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326) ORDER BY id LIMIT 100 OFFSET %(off)s"""
REGION = (103.69, 30.29, 104.49, 31.09)


def main() -> None:
    import psycopg
    from gridpatrol.layers import features
    from gridpatrol.layers.store import open_store
    from gridpatrol.layers.visibility import secrecy_rows
    from gridpatrol.scripts.bench.api import items_all_sql, pg_server_url

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--schema", required=True)
    ap.add_argument("--boxes", type=int, default=60, help="boxes (pages) per variant")
    ap.add_argument("--pg", help="PostgreSQL URL of the bench database (as bench_api's --pg)")
    args = ap.parse_args()
    url = pg_server_url(args.pg)
    url = url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{args.schema},public"
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    store = open_store(url, create=False)
    table = store.table("cameras")
    role = secrecy_rows(table, 0)  # what bench_api's dispatcher sees
    raw = psycopg.connect(dsn, autocommit=True)
    ours = psycopg.connect(dsn, autocommit=True)
    # As the API's pool connections (api.deps.PgPool): generic plans, the page settings.
    for key, value in {"plan_cache_mode": "force_generic_plan", **features.PAGE_SETTINGS}.items():
        ours.execute(f"SET {key} = '{value}'")
    pids = {id(raw): raw.info.backend_pid, id(ours): ours.info.backend_pid}
    all_sql = items_all_sql()

    def page(**kw):  # noqa: ANN003, ANN202
        sql, params = features.page_statement(store, "cameras", limit=100, **kw)
        return ours, sql, params, True

    def geometry_index(fn):  # noqa: ANN001, ANN202
        # The variant as before schema version 15: ST_Intersects on the geometry's GiST index (no
        # index-only scan of the covering point index, models.POINT_XY_LAYERS).
        def run(*a, **kw):  # noqa: ANN002, ANN003, ANN202
            saved, features.POINT_XY_LAYERS = features.POINT_XY_LAYERS, {}
            try:
                return fn(*a, **kw)
            finally:
                features.POINT_XY_LAYERS = saved
        return run

    def ids_and_count(**kw):  # noqa: ANN003, ANN202
        sql, params = features.page_statement(store, "cameras", limit=100, **kw)
        return ours, sql[:sql.rindex(", (SELECT '['")], params, True  # the statement without the features

    def raw_walk(box, k):  # noqa: ANN001, ANN202
        raw.execute(ITEMS_SQL, _p(box, (k - 1) * 100)).fetchall()  # page k, as a walk reads it first (not timed)
        return raw, ITEMS_SQL, _p(box, k * 100), False

    def keyset(box, k, admin=False):  # noqa: ANN001, ANN202
        # The cursor of page k + 1: the last id of page k (read first, as a walk does; not timed).
        sql, params = features.page_statement(store, "cameras", bbox=box, limit=100 * k, count=False,
                                              role_where=None if admin else role)
        last = ours.execute(sql, params, prepare=True).fetchone()[2]
        return page(bbox=box, after=last, count=False, role_where=None if admin else role)

    variants = {
        "raw SQL (id, code, geometry), offset": lambda box, off, k: (raw, ITEMS_SQL, _p(box, off), False),
        "raw SQL, every property, offset": lambda box, off, k: (raw, all_sql, _p(box, off), False),
        "ours: page + exact count (offset, as a first page)": lambda box, off, k: page(bbox=box, offset=off,
                                                                                      role_where=role),
        "ours: ids + count only, no features": lambda box, off, k: ids_and_count(bbox=box, offset=off,
                                                                                 role_where=role),
        "ours: page, no count (offset)": lambda box, off, k: page(bbox=box, offset=off, count=False,
                                                                  role_where=role),
        "ours, geometry index (before): page + exact count": lambda box, off, k: geometry_index(page)(
            bbox=box, offset=off, role_where=role),
        "ours, geometry index (before): page, no count": lambda box, off, k: geometry_index(page)(
            bbox=box, offset=off, count=False, role_where=role),
        "raw SQL (id, code, geometry), walk: page k + 1 by offset after page k": lambda box, off, k: raw_walk(box, k),
        "ours: walk: page k + 1 by cursor after page k (no count)": lambda box, off, k: keyset(box, k),
        "ours: walk, the same without role filter (admin)": lambda box, off, k: keyset(box, k, admin=True),
        "ours, geometry index (before): walk by cursor": lambda box, off, k: geometry_index(keyset)(box, k),
    }
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    wall: dict[str, list[float]] = {name: [] for name in variants}
    rng = random.Random(3)
    for _ in range(args.boxes):
        names = list(variants)
        rng.shuffle(names)
        for name in names:
            x, y = rng.uniform(REGION[0], REGION[2] - 0.05), rng.uniform(REGION[1], REGION[3] - 0.05)
            conn, sql, params, prepare = variants[name]((x, y, x + 0.05, y + 0.05), rng.choice([0, 100, 200]),
                                                        rng.randint(1, 9))
            pid = pids[id(conn)]
            c0, t0 = cpu_seconds([pid]), time.perf_counter()
            conn.execute(sql, params, prepare=prepare).fetchall()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(cpu_seconds([pid]) - c0)
    print(f"\n{args.boxes} pages per variant (100 cameras of one 0.05° box each), schema {args.schema}\n")
    print("| variant | database CPU ms/page, median | mean | wall ms, median |")
    print("|---|---:|---:|---:|")
    for name in variants:
        print(f"| {name} | {statistics.median(cpu[name]) * 1000:.2f} | {statistics.mean(cpu[name]) * 1000:.2f} "
              f"| {statistics.median(wall[name]) * 1000:.1f} |")
    store.dispose()


def _p(box: tuple[float, float, float, float], off: int) -> dict[str, float]:
    return {"x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3], "off": off}


if __name__ == "__main__":
    main()
