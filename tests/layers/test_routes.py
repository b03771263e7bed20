"""Routes in the store (GeoPackage and PostGIS): plan, replace, read back, print, visit, bad input."""
from __future__ import annotations

import itertools
import json
import re

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.gis.errors import InputError, NotFoundError
from gridpatrol.layers.importing import import_osm
from gridpatrol.layers.routes import (
    Target,
    grid_targets,
    plan_routes,
    plan_visit_route,
    print_route,
    read_routes,
    route_folium_map,
)
from shapely.geometry import box

from tests.conftest import data_path

AREA = box(118.770, 32.035, 118.780, 32.043)  # a piece of Nanjing 玄武区 with streets
NOWHERE = box(118.60, 31.90, 118.601, 31.901)  # inside the extract's bounds, no streets


@pytest.fixture
def nanjing(store):
    import_osm(store, data_path("nanjing", "xuanwu.osm"))
    return store


def test_plan_routes_stores_routes_that_read_back(nanjing):
    store = nanjing
    out = plan_routes(store, [Target("NJ-1", AREA)], mode="walk", time_limit_s=10)
    assert out[0].ok, out[0].error
    routes = read_routes(store, "NJ-1")
    assert len(routes) == 1
    r = routes.iloc[0]
    assert r["kind"] == "coverage" and r["mode"] == "walk"
    assert r["lower_bound_m"] <= r["length_m"] and r["required_m"] <= r["length_m"]
    assert r["duration_s"] == pytest.approx(r["length_m"] / 1.25)
    # The stored line is the route: its length in metres matches length_m.
    line_m = gpd.GeoSeries([r.geometry], crs=4326).to_crs(local_metric_crs(118.775, 32.04)).iloc[0]
    assert line_m.length == pytest.approx(r["length_m"], rel=0.005)
    steps = json.loads(r["directions_json"])
    assert steps[0]["text"].startswith("从起点出发") and steps[0]["text_en"].startswith("Start on")
    assert sum(s["distance_m"] for s in steps) == pytest.approx(r["length_m"])
    stats = json.loads(r["stats_json"])
    assert stats["segments_required"] > 10
    # Planning again replaces the route instead of adding a second one.
    plan_routes(store, [Target("NJ-1", AREA)], mode="walk", workers=2, time_limit_s=10)
    again = read_routes(store, "NJ-1")
    assert sorted(again["worker_index"]) == [0, 1]
    assert max(again["length_m"]) <= 1.10 * again["length_m"].mean()


def test_driving_and_walking_routes_live_side_by_side(nanjing):
    plan_routes(nanjing, [Target("NJ-1", AREA)], mode="walk")
    plan_routes(nanjing, [Target("NJ-1", AREA)], mode="drive", time_limit_s=10)
    both = read_routes(nanjing, "NJ-1")
    assert sorted(both["mode"]) == ["drive", "walk"]
    assert len(read_routes(nanjing, "NJ-1", mode="drive")) == 1


def test_a_failing_target_writes_nothing(nanjing):
    store = nanjing
    with pytest.raises(InputError, match=r"EMPTY: no (walkable )?streets"):
        plan_routes(store, [Target("NJ-1", AREA), Target("EMPTY", NOWHERE)])
    assert store.count("routes") == 0
    # With --all semantics the empty grid is reported and the others stored.
    out = plan_routes(store, [Target("NJ-1", AREA), Target("EMPTY", NOWHERE)], skip_failures=True)
    assert [o.ok for o in out] == [True, False]
    assert out[1].error.startswith("EMPTY: no")
    assert store.count("routes") == 1
    with pytest.raises(InputError, match="km from the nearest street"):
        plan_routes(store, [Target("NJ-2", AREA)], start=(119.3, 32.04))
    with pytest.raises(NotFoundError):
        read_routes(store, "NJ-2")


def test_grids_planned_together_count_the_same_incidents_as_one_by_one(nanjing):
    """plan-routes --all reads the incidents of all grids at once: each grid still gets exactly its own."""
    from gridpatrol.layers.incidents import create_incident

    store = nanjing
    west, east = box(118.770, 32.035, 118.775, 32.043), box(118.775, 32.035, 118.780, 32.043)
    rng = np.random.default_rng(3)
    pts = rng.uniform([118.7705, 32.0355], [118.7795, 32.0425], (12, 2))
    for lon, lat in pts:
        create_incident(store, lon=float(lon), lat=float(lat), category="治安", synthetic=True)
    together = plan_routes(store, [Target("W", west), Target("E", east)], mode="walk", time_limit_s=10)
    stats_together = {c: json.loads(read_routes(store, c).iloc[0]["stats_json"]) for c in ("W", "E")}
    for c, poly in (("W", west), ("E", east)):
        plan_routes(store, [Target(c, poly)], mode="walk", time_limit_s=10)
        alone = json.loads(read_routes(store, c).iloc[0]["stats_json"])
        # Independent count: the incidents inside the polygon within 50 m of a street are at most those inside.
        inside = int(shapely.contains_xy(poly, pts[:, 0], pts[:, 1]).sum())
        assert 0 < stats_together[c]["incidents_near_streets"] <= inside
        for k in ("incidents_near_streets", "hot_weighted_m", "hot_covered_share", "synthetic"):
            assert stats_together[c][k] == pytest.approx(alone[k]), (c, k)
    assert all(o.ok for o in together)


def test_unknown_grid_code_is_not_found(nanjing):
    with pytest.raises(NotFoundError):
        grid_targets(nanjing, ["999999"])


def test_print_route_from_the_store(nanjing, tmp_path):
    import subprocess

    plan_routes(nanjing, [Target("NJ-1", AREA)], mode="walk")
    pdf, gpx = tmp_path / "r.pdf", tmp_path / "r.gpx"
    sr = print_route(nanjing, "NJ-1", pdf, gpx=gpx, gpx_crs="gcj02", geojson=tmp_path / "r.geojson")
    assert pdf.stat().st_size < 2 * 1024 * 1024 and gpx.exists() and (tmp_path / "r.geojson").exists()
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    named = {s["street"] for s in sr.steps if s["street"]}
    assert named and all(n in text for n in named)
    with pytest.raises(NotFoundError, match="no stored route"):
        print_route(nanjing, "NOPE", tmp_path / "x.pdf")
    from gridpatrol.api.static_assets import save_offline

    html = save_offline(route_folium_map(nanjing, "NJ-1"), tmp_path / "r.html").read_text(encoding="utf-8")
    # Offline: no script or stylesheet from the network.
    assert not re.search(r"<script[^>]+src=[\"']https?:", html)
    assert not re.search(r"<link[^>]+href=[\"']https?:", html)
    assert "OpenStreetMap" in html


def _network_distances(store, sites):
    """Shortest walking distances between street nodes nearest to ``sites`` (networkx, metres)."""
    roads = store.read_layer("roads")
    crs = local_metric_crs(118.775, 32.04)
    rm = roads.to_crs(crs)
    G = nx.Graph()
    for r in roads.itertuples():
        if r.highway in ("motorway", "motorway_link"):
            continue
        if not G.has_edge(r.u, r.v) or G[r.u][r.v]["w"] > r.length_m:
            G.add_edge(r.u, r.v, w=r.length_m)
    ends = {}
    for (u, v), g in zip(roads[["u", "v"]].itertuples(index=False), rm.geometry):
        ends[u] = g.coords[0]
        ends[v] = g.coords[-1]
    main = max(nx.connected_components(G), key=len)
    ids = np.array([k for k in ends if k in main])
    xy = np.array([ends[k] for k in ids])
    pts = gpd.GeoSeries(sites, crs=4326).to_crs(crs)
    nodes = [ids[np.argmin(np.hypot(xy[:, 0] - p.x, xy[:, 1] - p.y))] for p in pts]
    return np.array([[nx.shortest_path_length(G, a, b, weight="w") for b in nodes] for a in nodes])


def test_visit_route_is_the_brute_force_optimum(nanjing, tmp_path):
    rng = np.random.default_rng(7)
    minx, miny, maxx, maxy = AREA.bounds
    pts = shapely.points(np.column_stack([rng.uniform(minx, maxx, 6), rng.uniform(miny, maxy, 6)]))
    gdf = gpd.GeoDataFrame({"name": [f"重点{i}" for i in range(6)], "importance": [1, 1, 1, 1, 1, 1]},
                           geometry=pts, crs=4326)
    f = tmp_path / "points.geojson"
    gdf.to_file(f, driver="GeoJSON")
    plan, _ = plan_visit_route(nanjing, f, code="重点巡访", time_limit_s=2)
    D = _network_distances(nanjing, pts)
    best = min(D[0, p[0]] + sum(D[a, b] for a, b in zip(p[:-1], p[1:])) + D[p[-1], 0]
               for p in itertools.permutations(range(1, 6)))
    assert plan.length_m == pytest.approx(best, abs=1.0)
    assert plan.gap == pytest.approx(0.0, abs=1e-6)
    assert sorted(plan.order) == list(range(6))
    stored = read_routes(nanjing, "重点巡访", kind="visit")
    assert stored.iloc[0]["length_m"] == pytest.approx(plan.length_m)


def test_visit_budget_keeps_the_important_point(nanjing, tmp_path):
    minx, miny, maxx, maxy = AREA.bounds
    near = [(minx + 0.001 * k, miny + 0.001) for k in range(1, 5)]
    far = (maxx - 0.0005, maxy - 0.0005)
    gdf = gpd.GeoDataFrame({"name": ["起点", "a", "b", "c", "d", "学校"], "importance": [1, 1, 1, 1, 1, 50]},
                           geometry=shapely.points([(minx + 0.0005, miny + 0.0005)] + near[:4] + [far]), crs=4326)
    f = tmp_path / "p.csv"
    df = gdf.drop(columns="geometry")
    df["lon"], df["lat"] = gdf.geometry.x, gdf.geometry.y
    df.to_csv(f, index=False)
    pair = tmp_path / "pair.csv"
    df.iloc[[0, 5]].to_csv(pair, index=False)
    school_only, _ = plan_visit_route(nanjing, pair, time_limit_s=2)
    budget_min = school_only.duration_s * 1.05 / 60
    plan, _ = plan_visit_route(nanjing, f, budget_min=budget_min, time_limit_s=2)
    # Visiting the school (importance 50) beats visiting all four others (importance 4).
    assert 5 in plan.order
    assert plan.duration_s <= budget_min * 60 + 1


def test_empty_points_file_is_a_clear_error(nanjing, tmp_path):
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(InputError, match="no points"):
        plan_visit_route(nanjing, empty)
    blank = tmp_path / "blank.csv"
    blank.write_text("")
    with pytest.raises(InputError, match="empty"):
        plan_visit_route(nanjing, blank)
    assert nanjing.count("routes") == 0


def test_uturns_are_reported_per_route_on_the_sheet_and_in_the_plan_table(nanjing, store_url, tmp_path):
    """Every stored route says its U-turns (all, at dead ends, elsewhere, per km, the fewest
    possible); the sheet's header and plan-routes' table show them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = plan_routes(nanjing, [Target("NJ-1", AREA)], mode="walk", workers=2, time_limit_s=10)
    rows = read_routes(nanjing, "NJ-1")
    stats = [json.loads(s) for s in rows["stats_json"]]
    for st, length in zip(stats, rows["length_m"]):
        assert st["uturns"] == st["uturns_dead_end"] + st["uturns_other"]
        assert st["uturns_per_km"] == pytest.approx(st["uturns"] / (length / 1000))
        assert 0 <= st["uturn_bound"] <= st["uturns"]
    s = out[0].summary
    assert s["uturns"] == sum(st["uturns"] for st in stats) and s["uturn_bound"] == sum(st["uturn_bound"] for st in stats)
    assert any(st["uturns_dead_end"] for st in stats), "the area has dead ends: some route turns round in one"
    def sheet_text(w: int, lang: str) -> str:
        pdf = tmp_path / f"{w}-{lang}.pdf"
        print_route(nanjing, "NJ-1", pdf, worker_index=w, lang=lang)
        return subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout

    for w, st in zip(rows["worker_index"].astype(int), stats):
        zh, en = sheet_text(w, "zh"), sheet_text(w, "en")
        if st["uturns"]:
            assert f"掉头 {st['uturns']} 次（其中断头路 {st['uturns_dead_end']} 次）" in zh
            assert f"U-turns {st['uturns']} ({st['uturns_dead_end']} at dead ends)" in en
        else:
            assert "掉头 0 次" in zh and "U-turns 0" in en
    # The command's table: columns uturns, dead_end, uturns_min, uturns/km with the plan's figures.
    poly = tmp_path / "area.geojson"
    gpd.GeoDataFrame({"code": ["NJ-1"]}, geometry=[AREA], crs=4326).to_file(poly, driver="GeoJSON")
    exe = str(Path(sys.executable).with_name("gridpatrol"))
    p = subprocess.run([exe, "--db", store_url, "--lang", "en", "plan-routes", "--polygon", str(poly)], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "COLUMNS": "250"})
    assert p.returncode == 0, p.stderr
    st = json.loads(read_routes(nanjing, "NJ-1").iloc[0]["stats_json"])
    head = next(line for line in p.stdout.splitlines() if "grid" in line and "uturns" in line)
    assert [c.strip() for c in head.strip("┃│ ").split("┃")][-5:-1] == ["uturns", "dead_end", "uturns_min", "uturns/km"]
    row = next(line for line in p.stdout.splitlines() if "NJ-1" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[-5:-1] == [str(st["uturns"]), str(st["uturns_dead_end"]), str(st["uturn_bound"]), f"{st['uturns_per_km']:.2f}"]
