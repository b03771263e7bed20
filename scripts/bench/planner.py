"""Benchmark: the workbench's block-move preview vs the commit and the CLI's move-blocks, at ~100k blocks, both stores.

A synthetic lattice (316 × 316 square blocks of 90 m, 45 households each, 16 communities, grids of
3 × 3 blocks) is written straight into a fresh store as one plan; then the same kind of edit (a
block on a grid's east edge into the grid east of it) is previewed (``layers.planner.preview_move``),
committed (``layers.grids.move_blocks``) and done by ``gridpatrol move-blocks``.

    python -m gridpatrol.scripts.bench.planner [--side 316] [--previews 40] [--commits 3] [--stores gpkg,postgis]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[2]

from gridpatrol.gis.gridcodes import DEFAULT_CODE_FORMAT, CodeFormat
from gridpatrol.layers import grids as gl
from gridpatrol.layers import planner
from gridpatrol.layers.store import open_store
from gridpatrol.scripts.bench.common import local_pg_url

LON0, LAT0, BLOCK_M, HH = 104.0, 30.6, 90.0, 45.0
AREAS, TILE = 4, 3  # 4 × 4 communities, grids of 3 × 3 blocks


def lattice_store(url: str, side: int) -> dict:
    """Write the lattice plan into the store at ``url``; returns the edits to time (block id, target grid)."""
    store = open_store(url)
    dx = BLOCK_M / (111_320 * np.cos(np.radians(LAT0)))
    dy = BLOCK_M / 110_574
    fmt = CodeFormat(DEFAULT_CODE_FORMAT)
    per = side // AREAS
    i, j = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")  # i: column (east), j: row (north)
    i, j = i.ravel(), j.ravel()
    ai, aj = np.minimum(i // per, AREAS - 1), np.minimum(j // per, AREAS - 1)
    area_code = np.array([f"510199001{a:03d}" for a in (ai * AREAS + aj + 1)])
    li, lj = i - ai * per, j - aj * per
    ti, tj = li // TILE, lj // TILE
    tiles_per = (per + (side - AREAS * per) + TILE - 1) // TILE + 1
    seq = ti * tiles_per + tj + 1
    grid_code = np.array([fmt.format(a, int(s)) for a, s in zip(area_code, seq)])
    geoms = shapely.box(LON0 + i * dx, LAT0 + j * dy, LON0 + (i + 1) * dx, LAT0 + (j + 1) * dy)
    blocks = gpd.GeoDataFrame({"block_id": np.arange(1, len(i) + 1), "area_code": area_code, "grid_code": grid_code,
                               "households": HH, "buildings": 3, "street_m": 2 * BLOCK_M, "area_m2": BLOCK_M ** 2},
                              geometry=geoms, crs="EPSG:4326")
    areas = blocks.dissolve("area_code").reset_index()[["area_code", "geometry"]].rename(columns={"area_code": "code"})
    areas["geometry"] = [shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g for g in areas.geometry]
    areas["level"], areas["name"] = "community", [f"社区{k + 1}" for k in range(len(areas))]
    whole = shapely.box(*blocks.total_bounds)
    now = datetime.now(timezone.utc)
    params = gl.PlanParams(target_households=400, min_households=300, max_households=500)
    with store.begin() as conn:
        store.insert_gdf(conn, "areas", areas)
        store.insert_gdf(conn, "imports", gpd.GeoDataFrame([{
            "kind": "osm", "source_path": "synthetic lattice", "source_sha256": "-", "source_bytes": 0,
            "started_at": now, "finished_at": now}], geometry=[shapely.MultiPolygon([whole])], crs="EPSG:4326"))
    pid = gl.plan_from_blocks(store, blocks, params, note="synthetic lattice", created_by="bench")
    # Edits: the middle block of a tile's east column into the tile east of it (same community).
    code_at = dict(zip(zip(i.tolist(), j.tolist()), grid_code.tolist()))
    id_at = dict(zip(zip(i.tolist(), j.tolist()), blocks["block_id"].tolist()))
    edits = []
    for t in range(0, per // TILE - 2, 2):
        for u in range(0, per // TILE - 2, 4):
            x, y = t * TILE + 2, u * TILE + 1
            if (x + 1, y) in code_at and code_at[(x + 1, y)] != code_at[(x, y)]:
                edits.append((int(id_at[(x, y)]), code_at[(x + 1, y)]))
    store.dispose()
    return {"plan_id": pid, "blocks": len(blocks), "grids": int(blocks["grid_code"].nunique()), "edits": edits}


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, q))


def run(kind: str, url: str, args) -> dict:  # noqa: ANN001
    info = lattice_store(url, args.side)
    store = open_store(url)
    edits = info["edits"]
    prev = []
    for bid, to in (edits * (args.previews // max(len(edits), 1) + 1))[: args.previews]:
        t0 = time.perf_counter()
        p = planner.preview_move(store, [bid], to)
        prev.append(time.perf_counter() - t0)
        assert p["ok"], p["refusals"]
    com = []
    for bid, to in edits[: args.commits]:
        t0 = time.perf_counter()
        gl.move_blocks(store, to, [bid])
        com.append(time.perf_counter() - t0)
    after = []  # preview again, with the versions the commits added in the store
    for bid, to in edits[args.commits: args.commits + 10]:
        t0 = time.perf_counter()
        planner.preview_move(store, [bid], to)
        after.append(time.perf_counter() - t0)
    store.dispose()
    cli = []
    exe = str(Path(sys.executable).parent / "gridpatrol")
    for bid, to in edits[args.commits + 10: args.commits + 10 + args.cli]:
        t0 = time.perf_counter()
        subprocess.run([exe, "--db", url, "move-blocks", "--to", to, str(bid)], check=True, capture_output=True,
                       env=dict(os.environ))
        cli.append(time.perf_counter() - t0)
    return {"store": kind, "blocks": info["blocks"], "grids": info["grids"],
            "preview": prev, "preview_after_commits": after, "commit": com, "cli": cli}


def report(results: list[dict], first: bool = True) -> None:
    """Print the table rows of ``results`` (the header too when ``first``)."""
    if first:
        print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"load {os.getloadavg()[0]:.1f}")
        print(f"{'store':8} {'blocks':>7} {'grids':>6} | {'what':38} {'n':>3} {'p50 ms':>9} {'p95 ms':>9}")
    for r in results:
        for what, key in (("preview (layers.planner)", "preview"), ("preview, after the commits", "preview_after_commits"),
                          ("commit (layers.grids.move_blocks)", "commit"), ("CLI gridpatrol move-blocks (baseline)", "cli")):
            xs = r[key]
            if xs:
                print(f"{r['store']:8} {r['blocks']:>7} {r['grids']:>6} | {what:38} {len(xs):>3} {pct(xs, 50):>9.1f} "
                      f"{pct(xs, 95):>9.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=316, help="blocks per side (316² ≈ 100k)")
    ap.add_argument("--previews", type=int, default=40)
    ap.add_argument("--commits", type=int, default=3)
    ap.add_argument("--cli", type=int, default=2)
    ap.add_argument("--stores", default="gpkg,postgis")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.stores.split(","):
            if kind == "gpkg":
                url = f"gpkg:///{Path(tmp) / 'bench_planner.gpkg'}"
            else:
                from sqlalchemy import create_engine, text

                schema = f"bench_planner_{os.getpid()}"
                eng = create_engine(local_pg_url("gridpatrol_test"), isolation_level="AUTOCOMMIT")
                with eng.connect() as c:
                    c.execute(text(f"CREATE SCHEMA {schema}"))
                url = local_pg_url("gridpatrol_test") + f"&options=-csearch_path%3D{schema},public"
            try:
                out.append(run(kind, url, args))
                report(out[-1:], first=len(out) == 1)
            finally:
                if kind != "gpkg":
                    with eng.connect() as c:
                        c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
                    eng.dispose()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
