"""Benchmark: building → grid assignment (ours) vs geopandas.sjoin vs a PostGIS ST_Contains join."""
from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import time
import uuid

import geopandas as gpd
import numpy as np
import shapely
from gridpatrol.gis.assign import assign_xy, reassign_buildings, representative_xy
from gridpatrol.scripts.bench.common import local_pg_url, timed

UTM_CHENGDU = "EPSG:32648"  # WGS 84 / UTM 48N: metres around Chengdu


def make_grids(n: int, side_m: float, seed: int) -> np.ndarray:
    """n Voronoi grids tiling a side_m × side_m square (UTM 48N), boundaries densified to ~20 m."""
    rng = np.random.default_rng(seed)
    square = shapely.box(0, 0, side_m, side_m)
    seeds = shapely.multipoints(np.column_stack([rng.uniform(0, side_m, n), rng.uniform(0, side_m, n)]))
    cells = shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=square))
    # Real grid boundaries follow streets: many vertices, not 6-gons. Densify to be fair to all.
    return shapely.segmentize(shapely.intersection(cells, square), 20.0)


def make_buildings(n: int, side_m: float, seed: int) -> np.ndarray:
    """n rotated rectangular footprints of 8–40 m sides spread over the square (UTM 48N)."""
    rng = np.random.default_rng(seed + 1)
    cx, cy = rng.uniform(0, side_m, n), rng.uniform(0, side_m, n)
    w, h = rng.uniform(8, 40, n), rng.uniform(8, 25, n)
    ang = rng.uniform(0, np.pi, n)
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    dx = corners[None, :, 0] * w[:, None]
    dy = corners[None, :, 1] * h[:, None]
    x = cx[:, None] + dx * np.cos(ang)[:, None] - dy * np.sin(ang)[:, None]
    y = cy[:, None] + dx * np.sin(ang)[:, None] + dy * np.cos(ang)[:, None]
    return shapely.polygons(np.stack([x, y], axis=-1))


def bench_postgis(url: str, grids: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict:
    """Load grids and points into a scratch schema, index them, time the ST_Contains join."""
    import psycopg

    schema = "bench_assign_" + uuid.uuid4().hex[:8]
    result: dict = {}
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(f"CREATE SCHEMA {schema}")
            # The scratch database may lack PostGIS: install it into the scratch schema so that
            # dropping the schema afterwards leaves the database as it was.
            own_ext = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").fetchone() is None
            if own_ext:
                conn.execute(f"CREATE EXTENSION postgis SCHEMA {schema}")
            conn.execute(f"SET search_path TO {schema}, public")
            conn.execute(f"CREATE TABLE {schema}.grids (gid integer PRIMARY KEY, geom geometry(Polygon, 32648))")
            conn.execute(f"CREATE TABLE {schema}.pts (pid integer PRIMARY KEY, geom geometry(Point, 32648))")
            t = time.perf_counter()
            with conn.cursor().copy(f"COPY {schema}.grids (gid, geom) FROM STDIN") as cp:
                for i, w in enumerate(shapely.to_wkt(grids, rounding_precision=-1)):
                    cp.write_row((i, "SRID=32648;" + w))
            buf = io.StringIO()
            for i in range(0, len(x), 200_000):
                xs, ys = x[i:i + 200_000], y[i:i + 200_000]
                buf.write("".join(f"{i + k}\tSRID=32648;POINT({a!r} {b!r})\n"
                                  for k, (a, b) in enumerate(zip(xs.tolist(), ys.tolist()))))
            buf.seek(0)
            with conn.cursor().copy(f"COPY {schema}.pts (pid, geom) FROM STDIN") as cp:
                while chunk := buf.read(1 << 20):
                    cp.write(chunk)
            conn.execute(f"CREATE INDEX ON {schema}.grids USING gist (geom)")
            conn.execute(f"CREATE INDEX ON {schema}.pts USING gist (geom)")
            conn.execute(f"ANALYZE {schema}.grids")
            conn.execute(f"ANALYZE {schema}.pts")
            result["load_s"] = time.perf_counter() - t

            def join():
                conn.execute(f"DROP TABLE IF EXISTS {schema}.result")
                conn.execute(f"CREATE TABLE {schema}.result AS SELECT p.pid, min(g.gid) AS gid "
                             f"FROM {schema}.pts p JOIN {schema}.grids g ON ST_Contains(g.geom, p.geom) "
                             "GROUP BY p.pid")

            result["join_s"], _ = timed(join)
            rows = conn.execute(f"SELECT pid, gid FROM {schema}.result").fetchall()
            got = np.full(len(x), -1, dtype=np.int64)
            if rows:
                arr = np.array(rows, dtype=np.int64)
                got[arr[:, 0]] = arr[:, 1]
            result["assignment"] = got
        finally:
            conn.execute("RESET search_path")
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--buildings", type=int, default=1_000_000)
    ap.add_argument("--grids", type=int, default=3_000)
    ap.add_argument("--side-km", type=float, default=40.0, help="side of the generated county square")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="runs per in-process method (best is shown)")
    ap.add_argument("--pg-url", default=local_pg_url("postgres", sqlalchemy=False))
    ap.add_argument("--skip-postgis", action="store_true")
    args = ap.parse_args(argv)

    side = args.side_km * 1000.0
    print(f"generating {args.grids:,} grids and {args.buildings:,} buildings (seed {args.seed}) …", file=sys.stderr)
    grids = make_grids(args.grids, side, args.seed)
    buildings = make_buildings(args.buildings, side, args.seed)
    rep_s, (x, y) = timed(lambda: representative_xy(buildings))
    points = shapely.points(x, y)

    rows = []
    ours_s, ours = timed(lambda: assign_xy(x, y, grids), args.repeat)
    rows.append(("gridpatrol assign_xy (bucket index + prepared contains_xy)", ours_s, ours))

    left = gpd.GeoDataFrame(geometry=points, crs=UTM_CHENGDU)
    right = gpd.GeoDataFrame(geometry=grids, crs=UTM_CHENGDU)

    def sjoin():
        j = gpd.sjoin(left, right, predicate="within", how="left")
        j = j[~j.index.duplicated(keep="first")]
        return j["index_right"].fillna(-1).to_numpy(dtype=np.int64)

    sj_s, sj = timed(sjoin, args.repeat)
    rows.append(("geopandas.sjoin(predicate='within')", sj_s, sj))

    # Incremental: split the busiest grid in two; only its buildings are re-tested.
    target = int(np.bincount(ours[ours >= 0]).argmax())
    g = grids[target]
    cx = shapely.centroid(g).x
    west = shapely.intersection(g, shapely.box(-1e9, -1e9, cx, 1e9))
    east = shapely.difference(g, west)
    codes = np.arange(len(grids)).astype(str).astype(object)
    bgdf = gpd.GeoDataFrame(geometry=points, crs=UTM_CHENGDU)
    current = gpd.pd.Series(np.where(ours >= 0, codes[np.clip(ours, 0, None)], None), dtype=object)
    edited = gpd.GeoDataFrame({"code": [f"{target}w", f"{target}e"]}, geometry=[west, east], crs=UTM_CHENGDU)
    inc_s, inc = timed(lambda: reassign_buildings(bgdf, current, edited, {str(target), f"{target}w", f"{target}e"}),
                       args.repeat)
    moved = int((current == str(target)).sum())
    assert inc.notna().sum() == current.notna().sum(), "incremental assignment lost buildings"

    pg = None
    if not args.skip_postgis:
        print("loading into PostGIS …", file=sys.stderr)
        try:
            pg = bench_postgis(args.pg_url, grids, x, y)
            rows.append(("PostGIS ST_Contains join (GiST on both, CREATE TABLE AS)", pg["join_s"], pg["assignment"]))
        except Exception as exc:  # report, do not hide: the table says PostGIS was not measured
            print(f"PostGIS not measured: {exc}", file=sys.stderr)

    sys.stdout.flush()
    print(f"\nAssign {args.buildings:,} generated buildings to {args.grids:,} generated grids "
          f"({args.side_km:g} km square, UTM 48N); {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, best of {args.repeat} for in-process methods.\n")
    print("| method | time (s) | assigned | same grid as ours | vs sjoin |")
    print("|---|---:|---:|---:|---:|")
    for name, sec, assignment in rows:
        same = float((assignment == ours).mean())
        print(f"| {name} | {sec:.2f} | {int((assignment >= 0).sum()):,} | {same:.4%} | {sj_s / sec:.1f}× |")
    print(f"| incremental after splitting one grid ({moved:,} buildings re-tested) | {inc_s:.3f} | | | |")
    print(f"\nRepresentative points of the footprints (shared input of every method): {rep_s:.2f} s.")
    if pg is not None:
        print(f"PostGIS load (COPY + GiST indexes + ANALYZE, not in the join time): {pg['load_s']:.1f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
