"""Time the parts of an OGC items page in one process on a bench schema: keyset vs offset, with and
without the count, with and without the role filter, against the raw SQL of bench_api.

Usage: python -m gridpatrol.scripts.bench.ogc_items --schema bench_xxxxxxxx [--boxes N] [--pages N] [--pg URL]

Uses a schema kept by ``gridpatrol.scripts.bench.api --keep``. For each random 0.05° box it reads
``--pages`` pages of 100 cameras, interleaving the variants so that they share the machine's
load; prints a markdown table of the median and p95 time per page (database and our Python, no
HTTP).
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

ITEMS_SQL = """SELECT id, code, ST_AsGeoJSON(geom) FROM cameras
 WHERE geom && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326) ORDER BY id LIMIT 100 OFFSET %(off)s"""
REGION = (103.69, 30.29, 104.49, 31.09)


def main() -> None:
    import psycopg
    from gridpatrol.layers import features
    from gridpatrol.layers.store import open_store
    from gridpatrol.layers.visibility import secrecy_rows

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--schema", required=True)
    ap.add_argument("--boxes", type=int, default=30)
    ap.add_argument("--pages", type=int, default=5)
    ap.add_argument("--pg", default="postgresql://root@/gridpatrol_bench?host=/var/run/postgresql")
    args = ap.parse_args()
    dsn = f"{args.pg}&options=-csearch_path%3D{args.schema},public"
    store = open_store(dsn.replace("postgresql://", "postgresql+psycopg://"), create=False)
    table = store.table("cameras")
    conn = psycopg.connect(dsn, autocommit=True)
    role = secrecy_rows(table, 0)  # what bench_api's dispatcher sees
    times: dict[str, list[float]] = {}

    def timed(name: str, fn):  # noqa: ANN001, ANN202
        t = time.perf_counter()
        out = fn()
        times.setdefault(name, []).append(time.perf_counter() - t)
        return out

    rng = random.Random(3)
    for _ in range(args.boxes):
        x, y = rng.uniform(REGION[0], REGION[2] - 0.05), rng.uniform(REGION[1], REGION[3] - 0.05)
        box = (x, y, x + 0.05, y + 0.05)
        after = after_all = None
        for k in range(args.pages):
            timed("raw SQL, offset", lambda: conn.execute(ITEMS_SQL, dict(x0=box[0], y0=box[1], x1=box[2], y1=box[3],
                                                                         off=k * 100)).fetchall())
            timed("ours, offset + exact count", lambda: features.items_page(
                store, "cameras", role_where=role, bbox=box, limit=100, offset=k * 100))
            timed("ours, offset, no count", lambda: features.items_page(
                store, "cameras", role_where=role, bbox=box, limit=100, offset=k * 100, count=False))
            res = timed("ours, keyset (count on page 1 only)", lambda: features.items_page(
                store, "cameras", role_where=role, bbox=box, limit=100, after=after, count=after is None))
            after = res[3]
            res = timed("ours, keyset, no role filter (admin)", lambda: features.items_page(
                store, "cameras", bbox=box, limit=100, after=after_all, count=after_all is None))
            after_all = res[3]
    print(f"\n{args.boxes} boxes × {args.pages} pages of 100 cameras, schema {args.schema}\n")
    print("| variant | pages | median ms | p95 ms |")
    print("|---|---:|---:|---:|")
    for name, ts in times.items():
        q = statistics.quantiles(ts, n=20)
        print(f"| {name} | {len(ts)} | {statistics.median(ts) * 1000:.1f} | {q[18] * 1000:.1f} |")
    store.dispose()


if __name__ == "__main__":
    main()
