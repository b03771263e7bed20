"""Shifts (GeoPackage and PostGIS): a long grid's patrol cut into closed routes of at most M
minutes that together cover every street, stored one row per shift, printed one shift per page."""
from __future__ import annotations

import json
import math
import os
import subprocess

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.streets import NOT_WALKABLE
from gridpatrol.layers.importing import import_osm
from gridpatrol.layers.routes import Target, plan_routes, print_route, read_routes
from gridpatrol.layers.store import open_store
from shapely.geometry import box
from sqlalchemy import text

from tests.cached_stores import chengdu_osm_inputs, chengdu_osm_only
from tests.conftest import data_path
from tests.migration_helpers import column_names, reopen_as_upgraded
from tests.store_cache import cached_module_store_url

LONG = box(104.071, 30.667, 104.087, 30.678)  # central Chengdu: about 28 km of walking, over 6 hours
MAX_MIN = 100.0
WALK_MPS = 4.5 / 3.6
CRS = local_metric_crs(104.08, 30.67)


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def chengdu(request, tmp_path_factory):  # noqa: ANN001, ANN201
    """Chengdu's streets and buildings imported (a store of the module's own, copied from the cached one)."""
    with cached_module_store_url(request, tmp_path_factory, "chengdu-osm", chengdu_osm_only, chengdu_osm_inputs()) as url:
        s = open_store(url)
        yield s
        s.dispose()


@pytest.fixture(scope="module")
def planned(chengdu):
    """The store with the long grid planned whole (code WHOLE) and in shifts (code LONG)."""
    whole = plan_routes(chengdu, [Target("WHOLE", LONG)], mode="walk")
    shifts = plan_routes(chengdu, [Target("LONG", LONG)], mode="walk", max_minutes=MAX_MIN)
    return chengdu, whole[0], shifts[0]


def test_every_shift_is_a_closed_route_within_the_limit(planned):
    store, whole, out = planned
    assert out.ok, out.error
    rows = read_routes(store, "LONG")
    n = len(rows)
    assert n >= 2 and sorted(rows["shift"].astype(int)) == list(range(1, n + 1))
    lines = rows.to_crs(CRS).geometry
    for (_, r), line in zip(rows.iterrows(), lines):
        assert r["duration_s"] <= MAX_MIN * 60 + 1e-6, f"shift {r['shift']}: {r['duration_s'] / 60:.1f} min"
        assert r["duration_s"] == pytest.approx(r["length_m"] / WALK_MPS)  # walking 4.5 km/h by default
        assert line.length == pytest.approx(r["length_m"], rel=0.005)
        assert shapely.Point(line.coords[0]).distance(shapely.Point(line.coords[-1])) < 1.0  # back at the station
        steps = json.loads(r["directions_json"])
        assert steps[-1]["text"] == "回到起点" and sum(s["distance_m"] for s in steps) == pytest.approx(r["length_m"])
    # The plan's report: the times of the shifts and a lower bound on their number.
    rep = out.summary["shifts"]
    assert rep["shifts"] == n and max(rep["shift_s"]) <= MAX_MIN * 60 + 1e-6
    assert rep["lower_bound_shifts"] <= n
    # The bound holds by reasoning made here: the shifts walk every required metre at 4.5 km/h.
    assert rep["lower_bound_shifts"] >= math.ceil(out.summary["required_m"] / WALK_MPS / (MAX_MIN * 60))
    assert rep["farthest_round_trip_s"] <= MAX_MIN * 60
    # Whole, the grid takes longer than the limit (else there would be nothing to cut).
    assert whole.summary["length_m"] / WALK_MPS > MAX_MIN * 60


def test_the_shifts_together_cover_every_street_the_whole_route_covers(planned):
    store, _whole, _out = planned
    whole = read_routes(store, "WHOLE").to_crs(CRS).geometry.iloc[0]
    shifts = shapely.union_all(list(read_routes(store, "LONG").to_crs(CRS).geometry))
    roads = store.read_layer("roads", bbox=LONG.bounds)
    roads = roads[~roads["highway"].isin(NOT_WALKABLE)].to_crs(CRS)
    inside = roads[roads.within(gpd.GeoSeries([LONG], crs=4326).to_crs(CRS).iloc[0])]
    walked = inside[inside.geometry.covered_by(whole.buffer(1.0))]
    assert len(walked) > 100
    missed = walked[~walked.geometry.covered_by(shifts.buffer(1.0))]
    assert not len(missed), f"{len(missed)} street segment(s) walked by the whole route are in no shift"


def test_the_sheet_prints_one_shift_per_page(planned, tmp_path):
    store, _whole, _out = planned
    rows = read_routes(store, "LONG")
    pdf = tmp_path / "long.pdf"
    gpx = tmp_path / "long.gpx"
    print_route(store, "LONG", pdf, gpx=gpx)
    pages = int(next(line.split()[-1] for line in subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True,
                                                                   check=True).stdout.splitlines() if line.startswith("Pages")))
    heads = []
    for p in range(1, pages + 1):
        t = subprocess.run(["pdftotext", "-f", str(p), "-l", str(p), "-layout", str(pdf), "-"], capture_output=True,
                           text=True, check=True).stdout
        heads.append(next((f"{k}/{len(rows)}" for k in range(1, len(rows) + 1) if f"第 {k}/{len(rows)} 班" in t), None))
    # Every shift begins a page of its own, in order, and takes at most two pages.
    firsts = [h for h in heads if h]
    assert firsts == [f"{k}/{len(rows)}" for k in range(1, len(rows) + 1)], heads
    assert pages <= 2 * len(rows)
    # GPX: one track per shift, and a waypoint with the Chinese instruction at every step.
    import gpxpy

    g = gpxpy.parse(gpx.read_text(encoding="utf-8"))
    assert len(g.tracks) == len(rows) and all("班" in t.name for t in g.tracks)
    n_steps = sum(len(json.loads(r)) for r in rows["directions_json"])
    assert len(g.waypoints) == n_steps and any("步行" in (w.description or "") for w in g.waypoints)
    if os.environ.get("GRIDPATROL_SHEET_PNG"):  # to look at the pages: pdftoppm into that folder
        subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), os.path.join(os.environ["GRIDPATROL_SHEET_PNG"], "shift")],
                       check=True)


def test_a_shift_limit_below_the_farthest_round_trip_is_refused_and_changes_nothing(planned):
    store, _whole, _out = planned
    before = read_routes(store, "LONG")
    with pytest.raises(InputError, match=r"round trip .*raise --max-minutes to at least"):
        plan_routes(store, [Target("LONG", LONG)], mode="walk", max_minutes=3)
    after = read_routes(store, "LONG")
    assert sorted(after["id"]) == sorted(before["id"])


def test_a_store_from_before_shifts_is_upgraded(store_url):
    s = open_store(store_url)
    import_osm(s, data_path("nanjing", "xuanwu.osm"))
    plan_routes(s, [Target("NJ", box(118.770, 32.035, 118.780, 32.043))], mode="walk")
    gpkg = s.is_gpkg

    def as_version_5(c):  # noqa: ANN001, ANN202  (a version-5 store with a route stored then)
        if gpkg:
            # GDAL's triggers keep SQLite from dropping a GeoPackage column: the route's shift is unset instead.
            c.execute(text("UPDATE routes SET shift = NULL"))
        else:
            c.execute(text("ALTER TABLE routes DROP COLUMN shift"))

    s = reopen_as_upgraded(s, store_url, 5, as_version_5)
    try:
        assert "shift" in column_names(s, "routes")
        assert read_routes(s, "NJ")["shift"].tolist() == [1]
    finally:
        s.dispose()


def test_shift_options_are_checked():
    from gridpatrol.gis.routing.coverage import plan_coverage

    roads = gpd.GeoDataFrame({"u": [1], "v": [2], "length_m": [100.0], "oneway": [False], "name": ["a"],
                              "highway": ["residential"]},
                             geometry=[shapely.LineString([(104.07, 30.67), (104.071, 30.67)])], crs=4326)
    with pytest.raises(InputError, match="max-minutes"):
        plan_coverage(roads, box(104.069, 30.669, 104.072, 30.671), max_minutes=0)
    with pytest.raises(InputError, match="one worker"):
        plan_coverage(roads, box(104.069, 30.669, 104.072, 30.671), max_minutes=30, workers=2)
    with pytest.raises(InputError, match="speed"):
        plan_coverage(roads, box(104.069, 30.669, 104.072, 30.671), max_minutes=30, speed_kmh=-1)
    one = plan_coverage(roads, box(104.069, 30.669, 104.072, 30.671), max_minutes=30, speed_kmh=3.6)
    assert len(one.routes) == 1 and one.routes[0].duration_s == pytest.approx(one.routes[0].length_m)
    assert np.isclose(one.stats["shifts"]["whole_s"], one.routes[0].length_m)


def test_a_patrol_calendar_lays_each_workers_shifts_over_the_cycle(planned, tmp_path, monkeypatch):
    """--cycle-days: every shift of the worker's grids gets one day; the stored days add up; the
    busiest day is the lightest any layout of those shift times allows (brute force); the sheet says the day."""
    import itertools

    store, _whole, _out = planned
    west, east = box(104.071, 30.667, 104.079, 30.678), box(104.079, 30.667, 104.087, 30.678)
    out = plan_routes(store, [Target("CAL-W", west, worker="wu"), Target("CAL-E", east, worker="wu")],
                      mode="walk", max_minutes=60, cycle_days=3)
    rows = gpd.GeoDataFrame(pd.concat([read_routes(store, "CAL-W"), read_routes(store, "CAL-E")]))
    assert len(rows) >= 4, "the two halves need several 60-minute shifts"
    cycles = [json.loads(s)["cycle"] for s in rows["stats_json"]]
    assert {c["days"] for c in cycles} == {3} and {c["worker"] for c in cycles} == {"wu"}
    day_total = {}
    for c, secs in zip(cycles, rows["duration_s"]):
        day_total[c["day"]] = day_total.get(c["day"], 0.0) + float(secs)
    for c in cycles:
        assert c["day_s"] == pytest.approx(day_total[c["day"]])
    cal = out[0].summary["calendar"]
    assert cal == out[1].summary["calendar"] and sorted(x for d in cal["days"] for x in d) == sorted(
        f"{g}#{int(s)}" for g, s in zip(rows["grid_code"], rows["shift"]))
    secs = [round(float(s)) for s in rows["duration_s"]]
    best = min(max(sum(s for s, d in zip(secs, a) if d == k) for k in range(3))
               for a in itertools.product(range(3), repeat=len(secs)))
    assert max(day_total.values()) == pytest.approx(best, abs=len(secs))  # whole seconds in the solver
    # The worker's phone page lists each day's shifts: over three days from the day of planning,
    # every shift is due exactly once, on its calendar day. (This store has no grid plan to say
    # whose grids these are: the worker's row filter is replaced by the two grids' codes.)
    from datetime import timedelta

    from gridpatrol.gis.routing.calendar import cycle_day, planned_on
    from gridpatrol.layers import phone_data

    monkeypatch.setattr(phone_data, "worker_rows", lambda table, worker: table.c.grid_code.in_(["CAL-W", "CAL-E"]))
    planned = planned_on(pd.Timestamp(rows["created_at"].iloc[0]), "Asia/Shanghai")
    due_on = {}
    for k in range(6):
        day = planned + timedelta(days=k)
        assert cycle_day(planned, day, 3) == k % 3 + 1
        got = phone_data.shift_rows(store, "wu", today=day)
        for r in got:
            if r["today"]:
                due_on.setdefault(k % 3 + 1, set()).add(f"{r['grid_code']}#{r['shift']}")
    assert {d: sorted(s) for d, s in due_on.items()} == {d + 1: sorted(ks) for d, ks in enumerate(cal["days"]) if ks}
    pdf = tmp_path / "cal.pdf"
    print_route(store, "CAL-W", pdf)
    text_ = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "巡查排班：3 天一轮的第" in text_


def test_a_bad_cycle_is_refused_before_any_work(planned):
    store, _whole, _out = planned
    before = len(read_routes(store, "LONG"))
    with pytest.raises(InputError, match="--cycle-days"):
        plan_routes(store, [Target("LONG", LONG)], mode="walk", max_minutes=MAX_MIN, cycle_days=40)
    assert len(read_routes(store, "LONG")) == before
