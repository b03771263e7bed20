"""Benchmark: `import-osm` of an extract into both stores vs osmnx.graph_from_xml + features_from_xml.

Usage: python -m gridpatrol.scripts.bench.imports [--osm PATH] [--repeat N] [--pg URL]
Prints a markdown table (best of N runs). The osmnx baseline only parses the file into a graph
and feature frames (it writes nothing), so it is the cost of reading the same data with the
tool planners would otherwise use.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import pyogrio  # noqa: F401  (before mod_spatialite)
from gridpatrol.scripts.bench.common import local_pg_url
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OSM = ROOT.parent / "shared" / "data" / "chengdu" / "chengdu.osm"


def bench_gridpatrol_gpkg(osm: Path) -> tuple[float, dict]:
    from gridpatrol.layers.importing import import_osm
    from gridpatrol.layers.store import open_store

    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"gpkg:///{d}/bench.gpkg")
        t = time.perf_counter()
        res = import_osm(store, osm)
        dt = time.perf_counter() - t
        store.dispose()
    return dt, res.counts


def bench_gridpatrol_pg(osm: Path, server: str) -> tuple[float, dict]:
    from gridpatrol.layers.importing import import_osm
    from gridpatrol.layers.store import open_store

    schema = "bench_" + uuid.uuid4().hex[:8]
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        c.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in server else "?"
    try:
        store = open_store(f"{server}{sep}options=-csearch_path%3D{schema},public")
        t = time.perf_counter()
        res = import_osm(store, osm)
        dt = time.perf_counter() - t
        store.dispose()
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
    return dt, res.counts


def bench_osmnx(osm: Path) -> tuple[float, dict]:
    import osmnx as ox

    # osmnx needs the XML filtered to streets to build a street graph from a file; the filter is
    # its own documented behaviour (retain_all keeps clipped pieces instead of failing).
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = ox.graph_from_xml(osm, simplify=False, retain_all=True)
        feats = ox.features_from_xml(osm, tags={"building": True, "waterway": True, "railway": True,
                                                 "man_made": "surveillance"})
    dt = time.perf_counter() - t
    return dt, {"graph_edges": g.number_of_edges(), "features": len(feats)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--osm", type=Path, default=DEFAULT_OSM)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pg", default=local_pg_url("gridpatrol_test"))
    a = ap.parse_args()
    rows = []
    for name, fn in (
        ("gridpatrol import-osm → GeoPackage", lambda: bench_gridpatrol_gpkg(a.osm)),
        ("gridpatrol import-osm → PostGIS", lambda: bench_gridpatrol_pg(a.osm, a.pg)),
        ("osmnx graph_from_xml + features_from_xml (parse only)", lambda: bench_osmnx(a.osm)),
    ):
        times = [fn() for _ in range(a.repeat)]
        best = min(t for t, _ in times)
        rows.append((name, best, times[-1][1]))
    base = rows[-1][1]
    print(f"\nfile: {a.osm.name} ({a.osm.stat().st_size / 1e6:.1f} MB), best of {a.repeat}\n")
    print("| method | time (s) | vs osmnx | output |")
    print("|---|---:|---:|---|")
    for name, t, out in rows:
        summary = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in out.items()
                            if k in ("road_segments", "buildings", "landuse_estimates", "barriers", "graph_edges", "features"))
        print(f"| {name} | {t:.2f} | {base / t:.1f}× | {summary} |")


if __name__ == "__main__":
    main()
