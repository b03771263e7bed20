"""Incident register on both stores: import with mapping, grid/worker attachment, closed loop with events, races on PostGIS, overdue, duplicates, map-click lookup."""
from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta, timezone

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from gridpatrol.gis.errors import ConflictError, InputError, NotFoundError
from gridpatrol.gis.incidents import legal_paths
from gridpatrol.layers.cameras import cameras_at, write_cameras
from gridpatrol.layers.incidents import (
    advance_incident,
    create_incident,
    import_incidents,
    incident_events,
    lookup,
    overdue_incidents,
)
from gridpatrol.layers.models import GridPlan, IncidentEvent
from sqlalchemy import func, select

from tests.conftest import data_path
from tests.odd_cameras import odd_cameras

GEOD = pyproj.Geod(ellps="WGS84")
CRIME_MAP = "occurred_at=CrimeDate,time=CrimeTime,category=Description,lon=Longitude,lat=Latitude"
LON0, LAT0 = 104.06, 30.66


def add_plan(store, cells: dict[str, tuple[shapely.Polygon, str]], name: str = "plan") -> int:
    """A grid plan with grids code → (polygon, worker); returns its id."""
    with store.begin() as conn:
        pid = conn.execute(GridPlan.__table__.insert().returning(GridPlan.__table__.c.id).values(name=name)).scalar_one()
        gdf = gpd.GeoDataFrame({"plan_id": pid, "code": list(cells), "name": [f"{c}网格" for c in cells],
                                "worker": [w for _, w in cells.values()]},
                               geometry=[shapely.MultiPolygon([p]) for p, _ in cells.values()], crs=4326)
        store.insert_gdf(conn, "grids", gdf)
    return pid


def test_baltimore_crime_import_reports_records_without_coordinates(store, tmp_path):
    recs = json.loads(data_path("baltimore", "crime_2018_property.json").read_text())
    # The 2018 files have coordinates on every record; older Open Baltimore exports leave them
    # empty for records geocoding failed on. Blank every 97th, as those exports do.
    for r in recs[::97]:
        r["Longitude"] = r["Latitude"] = None
    src = tmp_path / "property.json"
    src.write_text(json.dumps(recs))
    missing = [i + 1 for i, r in enumerate(recs) if r.get("Longitude") is None or r.get("Latitude") is None]
    res = import_incidents(store, src, mapping=CRIME_MAP, tz="America/New_York", state="closed")
    assert res.counts["no_coordinates"] == len(missing)
    assert res.counts["incidents"] == len(recs) - len(missing) == store.count("incidents")
    assert [int(re.match(r"row (\d+):", s).group(1)) for s in res.dropped["no_coordinates"]] == missing
    assert res.warnings and "without coordinates" in res.warnings[0]
    inc = store.read_layer("incidents")
    # CrimeDate is the calendar day (epoch ms at 00:00 UTC), CrimeTime the local time in Baltimore
    first = next(r for r in recs if r.get("Longitude") is not None)
    day = datetime.fromtimestamp(first["CrimeDate"] / 1000, tz=timezone.utc).date()
    local = pd.Timestamp(f"{day} {first['CrimeTime']}", tz="America/New_York").tz_convert("UTC")
    got = pd.Timestamp(inc.sort_values("id")["occurred_at"].iloc[0])
    got = got.tz_localize("UTC") if got.tzinfo is None else got.tz_convert("UTC")
    assert got == local
    assert (inc["state"] == "closed").all()


def test_failed_incident_import_changes_nothing(store, tmp_path):
    import_incidents(store, data_path("baltimore", "crime_2018_homicide.json"), mapping=CRIME_MAP, state="closed")
    before = store.count("incidents")
    with store.engine.connect() as c:
        events_before = c.execute(select(func.count()).select_from(IncidentEvent.__table__)).scalar_one()
    f = tmp_path / "inc.csv"
    f.write_text("occurred_at,category,lon,lat\n2026-01-01T08:00,治安,104.06,30.66\n"
                 "not a date,治安,104.06,30.66\n2026-01-02T08:00,,104.06,30.66\n2026-01-03,治安,,\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        import_incidents(store, f)
    assert "row 2 (line 3): time 'not a date' is not a date/time" in str(err.value)
    assert "row 3 (line 4): missing category" in str(err.value)
    assert store.count("incidents") == before
    with store.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(IncidentEvent.__table__)).scalar_one() == events_before
    res = import_incidents(store, f, skip_bad=True)
    assert res.counts["incidents"] == 1 and res.counts["no_coordinates"] == 1 and len(res.dropped["bad_rows"]) == 2


def test_new_incident_gets_grid_and_worker_of_the_newest_plan_and_duplicates_are_flagged(store):
    west = shapely.box(LON0 - 0.01, LAT0 - 0.01, LON0, LAT0 + 0.01)
    east = shapely.box(LON0, LAT0 - 0.01, LON0 + 0.01, LAT0 + 0.01)
    add_plan(store, {"OLD1": (shapely.box(LON0 - 0.01, LAT0 - 0.01, LON0 + 0.01, LAT0 + 0.01), "老王")}, "old")
    add_plan(store, {"G001": (west, "张三"), "G002": (east, "李四")}, "new")
    t0 = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
    a = create_incident(store, lon=LON0 + 0.003, lat=LAT0, category="环境卫生", occurred_at=t0)
    assert (a["grid_code"], a["worker"], a["duplicate_of"]) == ("G002", "李四", None)
    lon30, lat30, _ = GEOD.fwd(LON0 + 0.003, LAT0, 0, 30)
    b = create_incident(store, lon=lon30, lat=lat30, category="环境卫生", occurred_at=t0 + timedelta(hours=5))
    assert b["duplicate_of"] == a["id"]
    c = create_incident(store, lon=lon30, lat=lat30, category="治安", occurred_at=t0 + timedelta(hours=5))
    assert c["duplicate_of"] is None  # another category
    lon80, lat80, _ = GEOD.fwd(LON0 + 0.003, LAT0, 0, 80)
    d = create_incident(store, lon=lon80, lat=lat80, category="环境卫生", occurred_at=t0 + timedelta(hours=5))
    assert d["duplicate_of"] is None  # 80 m away
    e = create_incident(store, lon=LON0 - 0.003, lat=LAT0, category="环境卫生", occurred_at=t0)
    assert (e["grid_code"], e["worker"]) == ("G001", "张三")
    out = create_incident(store, lon=LON0 + 0.5, lat=LAT0, category="治安")
    assert out["grid_code"] is None
    # a closed original is not an original any more
    for to in ("escalated", "assigned", "completed", "feedback", "revisited", "closed"):
        advance_incident(store, a["id"], to)
    f = create_incident(store, lon=LON0 + 0.003, lat=LAT0, category="环境卫生", occurred_at=t0 + timedelta(hours=6))
    assert f["duplicate_of"] == b["id"]


@pytest.mark.parametrize("path", legal_paths(), ids=lambda p: "-".join(s[:3] for s in p))
def test_every_legal_path_through_the_store_appends_every_event(store, path):
    inc = create_incident(store, lon=LON0, lat=LAT0, category="矛盾纠纷", actor="网格员")
    for k, to in enumerate(path[1:], start=2):
        res = advance_incident(store, inc["id"], to, actor=f"user{k}", note=f"step {k}")
        assert res["version"] == k
    ev = incident_events(store, inc["id"])
    assert list(ev["seq"]) == list(range(1, len(path) + 1))
    assert list(ev["to_state"]) == path
    assert list(ev["from_state"][1:]) == path[:-1]
    with pytest.raises(ConflictError, match="cannot move"):
        advance_incident(store, inc["id"], "reported", note="x")
    assert len(incident_events(store, inc["id"])) == len(path)


def test_illegal_transitions_and_stale_versions_are_refused_without_an_event(store):
    inc = create_incident(store, lon=LON0, lat=LAT0, category="治安")
    for bad in ("assigned", "completed", "feedback", "revisited", "reported"):
        with pytest.raises(ConflictError):
            advance_incident(store, inc["id"], bad, note="x")
    with pytest.raises(InputError, match="needs a note"):
        advance_incident(store, inc["id"], "closed")
    with pytest.raises(InputError, match="unknown incident state"):
        advance_incident(store, inc["id"], "finished")
    with pytest.raises(NotFoundError):
        advance_incident(store, 999_999, "handled")
    advance_incident(store, inc["id"], "上报")
    with pytest.raises(ConflictError, match="changed since you loaded it"):
        advance_incident(store, inc["id"], "assigned", expected_version=1)
    assert list(incident_events(store, inc["id"])["to_state"]) == ["reported", "escalated"]


def test_two_concurrent_transitions_on_postgis_lose_no_event(store):
    if store.is_gpkg:
        pytest.skip("the race is tested on PostGIS (a GeoPackage has one writer at a time)")
    inc = create_incident(store, lon=LON0, lat=LAT0, category="治安")
    # Both sessions read version 1 before either writes: a real race, every time.
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def run(name: str, to: str) -> None:
        try:
            results[name] = advance_incident(store, inc["id"], to, actor=name, note=name,
                                             on_read=lambda: barrier.wait(timeout=20))
        except ConflictError as exc:
            results[name] = exc

    threads = [threading.Thread(target=run, args=("a", "handled")), threading.Thread(target=run, args=("b", "escalated"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    wins = [k for k, v in results.items() if isinstance(v, dict)]
    losses = [k for k, v in results.items() if isinstance(v, ConflictError)]
    assert len(wins) == 1 and len(losses) == 1, results
    ev = incident_events(store, inc["id"])
    assert list(ev["seq"]) == [1, 2]
    assert ev["actor"].iloc[1] == wins[0]
    # many racers without the barrier: each transition happens once, versions = events
    inc2 = create_incident(store, lon=LON0, lat=LAT0, category="消防安全")
    outcomes: list[object] = []

    def racer(i: int) -> None:
        for to in ("escalated", "assigned", "completed"):
            try:
                outcomes.append(advance_incident(store, inc2["id"], to, actor=f"r{i}", note=f"racer {i}"))
            except ConflictError as exc:
                outcomes.append(exc)

    ts = [threading.Thread(target=racer, args=(i,)) for i in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    ok = [o for o in outcomes if isinstance(o, dict)]
    ev2 = incident_events(store, inc2["id"])
    assert len(ok) == len(ev2) - 1
    assert list(ev2["seq"]) == list(range(1, len(ev2) + 1))
    assert list(ev2["to_state"])[:2] == ["reported", "escalated"]


def test_overdue_listing_from_the_store(store):
    now = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)
    a = create_incident(store, lon=LON0, lat=LAT0, category="治安", occurred_at=now - timedelta(hours=1))
    b = create_incident(store, lon=LON0 + 0.01, lat=LAT0, category="治安", occurred_at=now - timedelta(hours=5))
    c = create_incident(store, lon=LON0 + 0.02, lat=LAT0, category="治安", occurred_at=now - timedelta(days=9))
    advance_incident(store, c["id"], "escalated", at=now - timedelta(days=5))
    advance_incident(store, c["id"], "assigned", at=now - timedelta(days=4))
    d = create_incident(store, lon=LON0 + 0.03, lat=LAT0, category="治安", occurred_at=now - timedelta(days=9))
    advance_incident(store, d["id"], "closed", note="duplicate", at=now - timedelta(days=8))
    res = overdue_incidents(store, now=now)
    assert list(res["id"]) == [c["id"], b["id"]]  # assigned 96 h > 72 h; reported 5 h > 2 h
    assert res["overdue_h"].tolist() == pytest.approx([24.0, 3.0], abs=1e-6)
    res = overdue_incidents(store, now=now, deadlines={"assigned": 120, "reported": 0.5})
    assert list(res["id"]) == [b["id"], a["id"]]


def test_map_click_lookup(store):
    add_plan(store, {"G001": (shapely.box(LON0 - 0.01, LAT0 - 0.01, LON0 + 0.01, LAT0 + 0.01), "张三")})
    now = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)
    spots = {  # (distance m, bearing, days ago) → expected in the answer?
        "near_recent": (150, 0, 10, True), "far_recent": (250, 90, 10, False),
        "near_old": (150, 180, 120, False), "near_future": (100, 270, -2, False),
    }
    ids = {}
    for k, (dist, brg, days, _) in spots.items():
        lon, lat, _ = GEOD.fwd(LON0, LAT0, brg, dist)
        ids[k] = create_incident(store, lon=lon, lat=lat, category=k, occurred_at=now - timedelta(days=days))["id"]
    rng = np.random.default_rng(3)
    n = 400
    lon, lat, _ = GEOD.fwd(np.full(n, LON0), np.full(n, LAT0), rng.uniform(0, 360, n), rng.uniform(0, 200, n))
    cams = gpd.GeoDataFrame({"code": [f"t:{i}" for i in range(n)], "azimuth_deg": rng.uniform(0, 360, n),
                             "fov_deg": 60.0, "range_m": rng.uniform(30, 200, n), "camera_type": "fixed",
                             "status": rng.choice(["online", "offline"], n)},
                            geometry=shapely.points(lon, lat), crs=4326)
    with store.begin() as conn:
        write_cameras(store, conn, cams)
    res = lookup(store, LON0, LAT0, at=now)
    assert res["grid"] == {"code": "G001", "name": "G001网格", "worker": "张三"}
    assert [i["id"] for i in res["incidents"]] == [ids["near_recent"]]
    want = cameras_at(store, LON0, LAT0, in_view_only=True)
    assert [c["code"] for c in res["cameras"]] == list(want["code"]) and len(want) > 5
    # brute force over all cameras with pyproj's geodesic
    az, _, d = GEOD.inv(lon, lat, np.full(n, LON0), np.full(n, LAT0))
    off = np.abs((az - cams["azimuth_deg"].to_numpy() + 180) % 360 - 180)
    seen = (d <= cams["range_m"].to_numpy()) & (off <= 30.0)
    assert set(c["code"] for c in res["cameras"]) == set(cams["code"][seen])
    onl = [c["online"] for c in res["cameras"]]
    assert onl == sorted(onl, reverse=True)  # online ones first


def _click_scene(store, now: datetime) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Two grids (workers 张三, 李四), 300 cameras with every optics oddity the store may hold
    (no azimuth, no range, no fov, fov ≥ 360, dome/PTZ spelled loosely, status missing or in
    capitals, secrecy levels 0–3) and 300 incidents over 60 days, some assigned to 张三."""
    add_plan(store, {"G1": (shapely.box(LON0 - 0.01, LAT0 - 0.01, LON0, LAT0 + 0.01), "张三"),
                     "G2": (shapely.box(LON0, LAT0 - 0.01, LON0 + 0.01, LAT0 + 0.01), "李四")})
    rng = np.random.default_rng(11)
    cams = odd_cameras(rng, LON0, LAT0, n=300, spread_m=250, code="c:", name="摄像机",
                       types=["fixed", "dome", " PTZ ", "Speed_Dome", "bullet", "box"])
    m = 300
    ilon, ilat, _ = GEOD.fwd(np.full(m, LON0), np.full(m, LAT0), rng.uniform(0, 360, m), rng.uniform(0, 400, m))
    when = [now - timedelta(hours=float(h)) for h in rng.uniform(-24, 60 * 24, m)]
    incs = gpd.GeoDataFrame({
        "occurred_at": when, "category": rng.choice(["治安", "消防安全"], m), "description": "测试",
        "state": rng.choice(["reported", "assigned", "closed"], m), "state_since": when, "version": 1,
        "grid_code": np.where(ilon < LON0, "G1", "G2"), "worker": rng.choice(["张三", "李四", None], m),
        "synthetic": True}, geometry=shapely.points(ilon, ilat), crs=4326)
    with store.begin() as conn:
        store.insert_gdf(conn, "cameras", cams)
        store.insert_gdf(conn, "incidents", incs)
    return store.read_layer("cameras"), store.read_layer("incidents")  # as stored, with their ids


def test_lookup_views_match_brute_force_and_both_paths(store):
    """The map click per view (what a role may see) against a brute force with pyproj's geodesic
    over every camera and incident, and — on PostGIS — the one-statement path against the numpy
    path (``python=True``) on the same store: the same answer, field for field."""
    from gridpatrol.layers.incidents import LookupView, lookup_json

    now = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)
    cams, incs = _click_scene(store, now)
    views = [LookupView(), LookupView(camera_max_secrecy=1), LookupView(worker_names=False, cameras=False,
                                                                       incidents_of="张三"),
             LookupView(worker_names=False, incidents=False, cameras=False)]
    typ = cams["camera_type"].str.strip().str.lower()
    dome = typ.isin(["dome", "ptz", "speed_dome"]).to_numpy()
    az = cams["azimuth_deg"].to_numpy()
    full = dome | np.isnan(az) | (cams["fov_deg"].to_numpy() >= 360)
    reach = np.where(np.isnan(cams["range_m"]), np.where(dome, 100.0, 50.0), cams["range_m"])
    half = np.where(np.isnan(cams["fov_deg"]), 60.0, cams["fov_deg"]) / 2
    clon, clat = cams.geometry.x.to_numpy(), cams.geometry.y.to_numpy()
    ilon, ilat = incs.geometry.x.to_numpy(), incs.geometry.y.to_numpy()
    t = pd.to_datetime(incs["occurred_at"], utc=True)
    rng = np.random.default_rng(5)
    seen_cams = seen_incs = 0
    for k in range(40):
        lon, lat, _ = GEOD.fwd(LON0, LAT0, rng.uniform(0, 360), rng.uniform(0, 120))
        view = views[k % len(views)]
        radius = [200.0, 80.0, 350.0][k % 3]
        got = json.loads(lookup_json(store, lon, lat, now, radius_m=radius, days=30, view=view))
        if not store.is_gpkg:
            assert got == json.loads(lookup_json(store, lon, lat, now, radius_m=radius, days=30, view=view, python=True))
        assert got["grid"]["code"] == ("G1" if lon < LON0 else "G2")
        assert ("worker" in got["grid"]) == view.worker_names
        fwd, _, d = GEOD.inv(clon, clat, np.full(len(clon), lon), np.full(len(clon), lat))
        off = np.abs((fwd - np.nan_to_num(az) + 180) % 360 - 180)
        in_view = (d <= reach) & (full | (off <= half))
        if view.camera_max_secrecy is not None:
            in_view &= cams["secrecy_level"].to_numpy() <= view.camera_max_secrecy
        if view.cameras:
            assert {c["code"] for c in got["cameras"]} == set(cams["code"][in_view])
            online = [c["online"] for c in got["cameras"]]
            assert online == sorted(online, reverse=True)
            seen_cams += len(got["cameras"])
        else:
            assert "cameras" not in got
        _, _, di = GEOD.inv(ilon, ilat, np.full(len(ilon), lon), np.full(len(ilon), lat))
        near = (di <= radius) & (t >= now - timedelta(days=30)).to_numpy() & (t <= now).to_numpy()
        if view.incidents_of is not None:
            # a worker's incidents are those of their grids in the current plan, whoever the
            # incident's own worker field names (it keeps the worker of the day it came in)
            near &= (incs["grid_code"] == "G1").to_numpy()
        if view.incidents:
            ids = [i["id"] for i in got["incidents"]]
            assert sorted(ids) == sorted(incs.index[near].tolist())
            dist = [i["distance_m"] for i in got["incidents"]]
            assert dist == sorted(dist)
            seen_incs += len(ids)
        else:
            assert "incidents" not in got
    assert seen_cams > 40 and seen_incs > 40  # the scene really exercised both sections


def test_postgis_lookup_statements_stay_cacheable():
    """psycopg caches the conversion of statements of at most 4096 characters; every combination
    of sections a role can get stays within that (the per-click cost depends on it)."""
    from gridpatrol.layers.incidents import _pg_lookup_sql

    combos = [(True, False, True, False), (True, False, True, True), (True, True, False, False),
              (False, False, False, False)]
    assert max(len(_pg_lookup_sql(*c)) for c in combos) <= 4096
