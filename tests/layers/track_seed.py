"""Test data for the track tests: Chengdu's streets, three small grids (two of worker wu, one of li),
their walking routes (grid 2 cut into shifts), and users of every role."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import shapely

from tests.conftest import data_path

PASSWORD = "test-password-123"
USERS = {"admin": "ada", "dispatcher": "dan", "worker": "wu", "viewer": "vic", "planner": "pia"}
OTHER_WORKER = "li"
GRIDS = {  # code → (box, worker)
    "T01": ((104.071, 30.667, 104.078, 30.672), "wu"),
    "T02": ((104.078, 30.667, 104.085, 30.672), "wu"),
    "T03": ((104.071, 30.672, 104.078, 30.677), "li"),
}
SHIFT_MINUTES = 45.0  # grid T02 is cut into shifts of at most this
CYCLE_DAYS = 2  # seed_calendar: T02's shifts laid out over a two-day patrol calendar
# A working morning in Chengdu: 2026-11-02 09:00 Asia/Shanghai.
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def chengdu_osm():
    return data_path("chengdu", "chengdu.osm")


def seed(store, cycle_days: int | None = None) -> None:
    """Import Chengdu, add the users, the three grids and their walking routes (T02's shifts over a
    patrol calendar of ``cycle_days`` days when given)."""
    import geopandas as gpd
    from gridpatrol.layers import users
    from gridpatrol.layers.importing import import_osm
    from gridpatrol.layers.models import GridPlan
    from gridpatrol.layers.routes import grid_targets, plan_routes
    from sqlalchemy import insert

    import_osm(store, chengdu_osm())
    for role, name in USERS.items():
        users.create_user(store, name, role, PASSWORD)
    users.create_user(store, OTHER_WORKER, "worker", PASSWORD)
    with store.begin() as conn:
        plan_id = conn.execute(insert(GridPlan).values(name="tracks", method="import", params_json="{}", metrics_json="{}")
                               .returning(GridPlan.id)).scalar_one()
        codes = list(GRIDS)
        grids = gpd.GeoDataFrame(
            {"plan_id": plan_id, "code": codes, "worker": [GRIDS[c][1] for c in codes], "households": 400.0,
             "name": ["测试网格一", "测试网格二", "测试网格三"]},
            geometry=[shapely.MultiPolygon([shapely.box(*GRIDS[c][0])]) for c in codes], crs=4326)
        store.insert_gdf(conn, "grids", grids)
    for code in ("T01", "T03"):
        out = plan_routes(store, grid_targets(store, [code]), mode="walk")
        assert out[0].ok, out[0].error
    out = plan_routes(store, grid_targets(store, ["T02"]), mode="walk", max_minutes=SHIFT_MINUTES, cycle_days=cycle_days)
    assert out[0].ok, out[0].error


def seed_calendar(store) -> None:
    """As :func:`seed`, with grid T02's shifts on a patrol calendar of CYCLE_DAYS days."""
    seed(store, cycle_days=CYCLE_DAYS)



WALK_BBOX = (104.06, 30.657, 104.095, 30.687)  # the streets around the grids, for their walking network


def walk_network(store):  # noqa: ANN001, ANN201
    """The walking street network around the grids, from the store's roads."""
    from gridpatrol.gis.streets import street_network

    return street_network(store.read_layer("roads", bbox=WALK_BBOX), mode="walk")


def seeded_store_fixture(key: str, seeder):  # noqa: ANN001, ANN201
    """A module fixture: an open store of the module's own seeded by seeder (cached under key, see
    tests/store_cache.py), on GeoPackage and PostGIS; disposed after the module."""
    import pytest
    from gridpatrol.layers.store import open_store

    from tests.store_cache import cached_module_store_url

    @pytest.fixture(scope="module", params=["gpkg", "postgis"])
    def seeded_store(request, tmp_path_factory):  # noqa: ANN001, ANN202
        with cached_module_store_url(request, tmp_path_factory, key, seeder, [chengdu_osm()]) as url:
            s = open_store(url)
            yield s
            s.dispose()

    return seeded_store


def gpx_xml(lon, lat, t, name: str = "wu") -> str:  # noqa: ANN001
    """A GPX document of one track (named name) through the points (lon, lat) at Unix times t."""
    from datetime import UTC

    import gpxpy.gpx

    gpx = gpxpy.gpx.GPX()
    trk = gpxpy.gpx.GPXTrack(name=name)
    seg = gpxpy.gpx.GPXTrackSegment()
    for a, b, when in zip(lon, lat, t):
        seg.points.append(gpxpy.gpx.GPXTrackPoint(b, a, time=datetime.fromtimestamp(when, UTC)))
    trk.segments.append(seg)
    gpx.tracks.append(trk)
    return gpx.to_xml()
