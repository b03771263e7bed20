"""Benchmark: camera linking with 1,000,000 cameras — bulk incidents in memory and in both stores, map-click lookups — against geopandas sjoin and brute force."""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from gridpatrol.gis.cameras import CameraIndex, distance_bearing, ecef, sector_contains
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.scripts.bench.common import timed
from sqlalchemy import create_engine, text

LON0, LAT0, WIDTH_DEG = 104.0, 30.2, 1.0  # about 96 × 111 km around Chengdu


def make_cameras(n: int, seed: int) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    dome = rng.random(n) < 0.15
    return gpd.GeoDataFrame({
        "code": [f"bench:{i}" for i in range(n)], "project": "other",
        "azimuth_deg": np.where(dome, np.nan, rng.uniform(0, 360, n)),
        "fov_deg": np.where(dome, 360.0, rng.uniform(30, 110, n)),
        "range_m": rng.uniform(20, 150, n), "camera_type": np.where(dome, "dome", "fixed"),
        "status": rng.choice(["online", "offline", "fault"], n, p=[0.93, 0.05, 0.02]), "synthetic": True,
    }, geometry=shapely.points(LON0 + rng.random(n) * WIDTH_DEG, LAT0 + rng.random(n) * WIDTH_DEG), crs=4326)


def make_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    return LON0 + rng.random(n) * WIDTH_DEG, LAT0 + rng.random(n) * WIDTH_DEG


def markdown(rows: list[dict]) -> str:
    """A markdown table of dicts with the same keys."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def brute_force(cams: CameraIndex, lon: np.ndarray, lat: np.ndarray) -> set[tuple[int, int]]:
    """Every camera against every point, numpy (no index): the same ENU maths per pair."""
    xyz = ecef(cams.lon, cams.lat)
    lam, phi = np.radians(cams.lon), np.radians(cams.lat)
    sl, cl, sp, cp = np.sin(lam), np.cos(lam), np.sin(phi), np.cos(phi)
    out = set()
    pts = ecef(lon, lat)
    for k in range(len(lon)):
        d = pts[k] - xyz
        east = -sl * d[:, 0] + cl * d[:, 1]
        north = -sp * cl * d[:, 0] - sp * sl * d[:, 1] + cp * d[:, 2]
        dist = np.hypot(east, north)
        bearing = np.degrees(np.arctan2(east, north)) % 360.0
        ok = sector_contains(dist, bearing, cams.azimuth, cams.fov, cams.range, cams.full)
        out |= {(k, int(j)) for j in np.flatnonzero(ok)}
    return out


def setup_store(url: str, cams: gpd.GeoDataFrame, lon: np.ndarray, lat: np.ndarray, seed: int):  # noqa: ANN201
    from gridpatrol.layers.cameras import write_cameras
    from gridpatrol.layers.models import GridPlan, Incident, IncidentEvent
    from gridpatrol.layers.store import open_store

    store = open_store(url)
    t = time.perf_counter()
    with store.begin() as conn:
        conn.execute(IncidentEvent.__table__.delete())
        conn.execute(Incident.__table__.delete())
        conn.execute(text("DELETE FROM cameras"))
        conn.execute(text("DELETE FROM grids"))
        write_cameras(store, conn, cams)
        # a 20 × 20 grid plan over the area, each grid with a worker
        pid = conn.execute(GridPlan.__table__.insert().returning(GridPlan.__table__.c.id).values(name="bench")).scalar_one()
        step = WIDTH_DEG / 20
        boxes = [shapely.MultiPolygon([shapely.box(LON0 + i * step, LAT0 + j * step, LON0 + (i + 1) * step,
                                                   LAT0 + (j + 1) * step)]) for i in range(20) for j in range(20)]
        grids = gpd.GeoDataFrame({"plan_id": pid, "code": [f"G{k:04d}" for k in range(400)],
                                  "worker": [f"网格员{k}" for k in range(400)]}, geometry=boxes, crs=4326)
        store.insert_gdf(conn, "grids", grids)
        rng = np.random.default_rng(seed + 2)
        now = datetime.now(timezone.utc)
        inc = gpd.GeoDataFrame({
            "occurred_at": [now - timedelta(days=float(d)) for d in rng.uniform(0, 120, len(lon))],
            "category": rng.choice(["治安", "环境卫生", "矛盾纠纷"], len(lon)), "state": "reported",
            "state_since": now, "version": 1, "synthetic": True,
        }, geometry=shapely.points(lon, lat), crs=4326)
        store.insert_gdf(conn, "incidents", inc)
    if not store.is_gpkg:
        with store.engine.begin() as c:
            c.execute(text("ANALYZE cameras; ANALYZE incidents; ANALYZE grids"))
    return store, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cameras", type=int, default=1_000_000)
    ap.add_argument("--incidents", type=int, default=10_000)
    ap.add_argument("--clicks", type=int, default=300)
    ap.add_argument("--brute-sample", type=int, default=200, help="incidents checked against brute force")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pg", default=os.environ.get("GRIDPATROL_BENCH_PG", "postgresql+psycopg://root@127.0.0.1:5432/test"),
                    help="PostGIS server database (a schema bench_linking is created and dropped)")
    ap.add_argument("--no-stores", action="store_true", help="in-memory part only")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep the loaded stores (GeoPackage in this folder, PostGIS schema bench_linking) for --reuse")
    ap.add_argument("--reuse", action="store_true", help="use stores kept by --keep instead of loading again")
    args = ap.parse_args()

    rows: list[dict] = []

    def add(what: str, method: str, seconds: float, n: int, note: str = "") -> None:
        rows.append({"what": what, "method": method, "time_s": round(seconds, 4),
                     "per_second": f"{n / seconds:,.0f}" if seconds > 0 else "", "note": note})
        print(f"  {what:<34} {method:<42} {seconds:9.4f} s  {note}", flush=True)

    print(f"generating {args.cameras:,} cameras, {args.incidents:,} incidents", flush=True)
    cams = make_cameras(args.cameras, args.seed)
    lon, lat = make_points(args.incidents, args.seed)
    area_km2 = (WIDTH_DEG * 111.32 * np.cos(np.radians(LAT0 + WIDTH_DEG / 2))) * (WIDTH_DEG * 110.9)
    density = args.cameras / area_km2

    t_build, idx = timed(lambda: CameraIndex(cams), repeat=1)
    add(f"index build ({args.cameras:,} cameras)", "CameraIndex (2-D cKDTree)", t_build, args.cameras)
    t_link, pairs = timed(lambda: idx.link(lon, lat), repeat=3)
    n_view = int(pairs["in_view"].sum())
    add("bulk link: cameras that see each", "CameraIndex.link (KD + exact ENU)", t_link, args.incidents,
        f"{len(pairs):,} pairs in range, {n_view:,} in view")

    # brute force on a sample, and equality on it
    k = min(args.brute_sample, args.incidents)
    t_bf, bf = timed(lambda: brute_force(idx, lon[:k], lat[:k]), repeat=1)
    mem = set(zip(pairs["point"][pairs["point"] < k].tolist(), pairs["cam"][pairs["point"] < k].tolist()))
    mem_view = {p for p, v in zip(zip(pairs["point"].tolist(), pairs["cam"].tolist()), pairs["in_view"]) if v and p[0] < k}
    add("bulk link (brute force, sample)", "numpy all-pairs, chunked", t_bf, k,
        f"{k} incidents; mismatches vs KD: {len(bf ^ mem_view)} (pairs in view {len(bf)})")
    del mem

    # geopandas baseline: sjoin with dwithin in the local metric CRS (pairs within 150 m only,
    # no field-of-view test), and sjoin_nearest
    metric = local_metric_crs(LON0 + WIDTH_DEG / 2, LAT0 + WIDTH_DEG / 2)
    t_proj, mcams = timed(lambda: cams[["code", "geometry"]].to_crs(metric), repeat=1)
    t_sidx, _ = timed(lambda: mcams.sindex, repeat=1)
    add(f"index build ({args.cameras:,} cameras)", "geopandas to_crs + sindex (STRtree)", t_proj + t_sidx, args.cameras)
    inc = gpd.GeoDataFrame(geometry=shapely.points(lon, lat), crs=4326).to_crs(metric)
    t_sj, sj = timed(lambda: gpd.sjoin(inc, mcams, predicate="dwithin", distance=150.0), repeat=3)
    add("bulk link: cameras within 150 m", "geopandas sjoin(dwithin), no FOV test", t_sj, args.incidents, f"{len(sj):,} pairs")
    t_kd150, p150 = timed(lambda: idx.link(lon, lat, radius_m=150.0), repeat=3)
    add("bulk link: cameras within 150 m", "CameraIndex.link(radius_m=150) + FOV", t_kd150, args.incidents, f"{len(p150):,} pairs")
    t_sn, _ = timed(lambda: gpd.sjoin_nearest(inc, mcams, distance_col="d"), repeat=3)
    add("nearest camera per incident", "geopandas sjoin_nearest", t_sn, args.incidents)
    t_nn, _ = timed(lambda: idx.nearest_many(lon, lat, 1), repeat=3)
    add("nearest camera per incident", "CameraIndex.nearest_many (exact re-rank)", t_nn, args.incidents)

    # single in-memory clicks
    clicks = list(zip(lon[:args.clicks], lat[:args.clicks]))
    lat_ms = []
    for x, y in clicks:
        t = time.perf_counter()
        idx.in_view(x, y)
        lat_ms.append((time.perf_counter() - t) * 1000)
    p50, p95 = np.percentile(lat_ms, [50, 95])
    add("map click: cameras in view", "CameraIndex.in_view (memory)", sum(lat_ms) / 1000, len(clicks), f"p50 {p50:.2f} ms, p95 {p95:.2f} ms")
    bf_ms = []
    for x, y in clicks[:20]:
        t = time.perf_counter()
        d, b = distance_bearing(idx.lon, idx.lat, x, y)
        sector_contains(d, b, idx.azimuth, idx.fov, idx.range, idx.full)
        bf_ms.append((time.perf_counter() - t) * 1000)
    add("map click: cameras in view", f"brute force numpy over {args.cameras:,}", sum(bf_ms) / 1000, len(bf_ms),
        f"p50 {np.percentile(bf_ms, 50):.1f} ms")

    if not args.no_stores:
        from gridpatrol.layers.cameras import link_incidents
        from gridpatrol.layers.incidents import lookup

        tmp = args.keep or Path(tempfile.mkdtemp(prefix="bench_linking_"))
        tmp.mkdir(parents=True, exist_ok=True)
        stores = [("GeoPackage", f"gpkg:///{tmp / 'bench.gpkg'}")]
        schema = "bench_linking"
        admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as c:
                c.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
                if not args.reuse:
                    c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
                c.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
            sep = "&" if "?" in args.pg else "?"
            stores.append(("PostGIS", f"{args.pg}{sep}options=-csearch_path%3D{schema},public"))
        except Exception as exc:  # noqa: BLE001  a bench without PostgreSQL still reports the rest
            print(f"PostGIS not reachable ({exc}); skipping it")
        for name, url in stores:
            print(f"loading {name}", flush=True)
            if args.reuse:
                from gridpatrol.layers.store import open_store

                store = open_store(url)
                if store.count("cameras") != args.cameras or store.count("incidents") != args.incidents:
                    raise SystemExit(f"{name}: the kept store does not hold this benchmark's data; run without --reuse")
            else:
                store, t_load = setup_store(url, cams, lon, lat, args.seed)
            if not args.reuse:
                add(f"load {args.cameras:,} cameras + {args.incidents:,} incidents", f"{name} insert", t_load, args.cameras)
            t_sl, sp = timed(lambda: link_incidents(store), repeat=2)
            add("bulk link: cameras that see each", f"{name}: index join + exact test", t_sl, args.incidents,
                f"{len(sp):,} pairs, {int(sp['in_view'].sum()):,} in view (memory: {len(pairs):,}/{n_view:,})")
            at = datetime.now(timezone.utc)
            for x, y in clicks[:20]:
                lookup(store, x, y, at)  # warm-up: connection pool, statement caches
            ms = []
            sizes = []
            for x, y in clicks:
                t = time.perf_counter()
                res = lookup(store, x, y, at)
                ms.append((time.perf_counter() - t) * 1000)
                sizes.append(len(res["cameras"]))
            p50, p95 = np.percentile(ms, [50, 95])
            add("map click: grid+worker+incidents+cameras", f"{name}: lookup()", sum(ms) / 1000, len(ms),
                f"p50 {p50:.2f} ms, p95 {p95:.2f} ms, {statistics.mean(sizes):.1f} cameras in view")
            store.dispose()
        if len(stores) > 1 and args.keep is None:
            with admin.connect() as c:
                c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at the end; {args.cameras:,} cameras over "
          f"{area_km2:,.0f} km² ({density:,.0f} per km²), ranges 20–150 m, 15 % domes; "
          f"{args.incidents:,} incidents.")
    print()
    print(markdown(rows))


if __name__ == "__main__":
    main()
