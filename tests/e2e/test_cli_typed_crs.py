"""Coordinates the user types or lists take --crs: lookup, assign-worker --station and plan-visit
--points/--start read GCJ-02 numbers as GCJ-02; a GCJ-02 points file read as WGS-84 is warned about."""
from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from gridpatrol.gis.crs import wgs84_to_gcj02
from gridpatrol.layers import grids as plans
from gridpatrol.layers.store import open_store

from tests.cached_stores import jinjiang_band400, jinjiang_inputs
from tests.e2e.test_cli_grids import run
from tests.store_cache import fill_from_cache


@pytest.fixture
def drawn(store_url):
    fill_from_cache(store_url, "jinjiang-band400", jinjiang_band400, jinjiang_inputs())
    store = open_store(store_url)
    grids = plans.read_grids(store)
    roads = store.read_layer("roads")
    store.dispose()
    return store_url, grids, roads


def _gcj(lon: float, lat: float) -> tuple[float, float]:
    x, y = wgs84_to_gcj02(np.array([lon]), np.array([lat]))
    return float(x[0]), float(y[0])


def test_lookup_and_station_read_gcj02(drawn):
    url, grids, _ = drawn
    g = grids.iloc[len(grids) // 2]
    p = shapely.point_on_surface(g.geometry)
    gx, gy = _gcj(p.x, p.y)
    at = "2026-01-01T08:00:00+08:00"
    as_wgs = json.loads(run(url, "lookup", f"{p.x}", f"{p.y}", "--at", at).stdout)
    as_gcj = json.loads(run(url, "lookup", f"{gx}", f"{gy}", "--crs", "gcj02", "--at", at).stdout)
    assert as_wgs["grid"]["code"] == g["code"] == as_gcj["grid"]["code"]
    assert abs(as_gcj["lon"] - p.x) < 1e-6 and abs(as_gcj["lat"] - p.y) < 1e-6
    run(url, "assign-worker", g["code"], "王芳", "--station", f"{gx},{gy}", "--crs", "gcj02")
    store = open_store(url)
    try:
        row = plans.read_grids(store).set_index("code").loc[g["code"]]
    finally:
        store.dispose()
    assert abs(row["station_lon"] - p.x) < 1e-6 and abs(row["station_lat"] - p.y) < 1e-6


def test_a_gcj02_points_file_is_warned_about_unless_declared(drawn, tmp_path):
    url, grids, roads = drawn
    # key points on real streets inside the district's part of the extract, given in GCJ-02
    inside = shapely.union_all(grids.geometry.to_numpy())
    pts = [shapely.line_interpolate_point(r, 0.5, normalized=True) for r in roads.geometry]
    pts = [p for p in pts if inside.contains(p)][:12]
    assert len(pts) >= 8
    csv = tmp_path / "points.csv"
    rows = [f"{x:.7f},{y:.7f},p{k}" for k, (x, y) in enumerate(_gcj(p.x, p.y) for p in pts)]
    csv.write_text("lon,lat,name\n" + "\n".join(rows) + "\n", encoding="utf-8")
    warned = run(url, "plan-visit", "--points", str(csv), "--time-limit", "2")
    assert "probably in gcj02" in " ".join(warned.stderr.split()) and "points.csv" in warned.stderr
    clean = run(url, "plan-visit", "--points", str(csv), "--crs", "gcj02", "--time-limit", "2",
                "--start", rows[0].rsplit(",", 1)[0])
    assert "warning" not in clean.stderr
