"""Test data for the API tests: real Chengdu streets and buildings, users of every role, four grids
with workers, and generated cameras/incidents with secrecy levels and owners."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from tests.conftest import DATA, data_path  # noqa: F401  (DATA: for the API tests that read files)

PASSWORD = "test-password-123"
ROLE_USERS = {"admin": "ada", "planner": "pia", "dispatcher": "dan", "worker": "wu", "viewer": "vic"}
# A second dispatcher cleared for secrecy level 2 (cameras up to level 2, not 3).
CLEARED_DISPATCHER = "dora"


GRID_CODES = [f"5101040010{i}" for i in range(1, 5)]  # lower left, lower right, upper left, upper right
GRID_WORKERS = ["wu", "wu", "li", "zhang"]


def chengdu_osm() -> Path:
    return data_path("chengdu", "chengdu.osm")


def seed(store) -> dict:  # noqa: ANN001
    """Import Chengdu, add users of every role, 4 grids (2 with worker 'wu'), 600 cameras of
    secrecy levels 0–3 and 400 incidents over 2018, half in wu's grids. Returns what was made."""
    from gridpatrol.layers import users
    from gridpatrol.layers.importing import import_osm

    import_osm(store, chengdu_osm())
    for role, name in ROLE_USERS.items():
        users.create_user(store, name, role, PASSWORD)
    users.create_user(store, CLEARED_DISPATCHER, "dispatcher", PASSWORD, max_secrecy_level=2)
    minx, miny, maxx, maxy = store.extent("roads")
    midx, midy = (minx + maxx) / 2, (miny + maxy) / 2
    boxes = [shapely.box(minx, miny, midx, midy), shapely.box(midx, miny, maxx, midy),
             shapely.box(minx, midy, midx, maxy), shapely.box(midx, midy, maxx, maxy)]
    rng = np.random.default_rng(7)
    with store.begin() as conn:
        from gridpatrol.layers.models import GridPlan
        from sqlalchemy import insert

        plan_id = conn.execute(insert(GridPlan).values(name="test", method="import", params_json="{}", metrics_json="{}")
                               .returning(GridPlan.id)).scalar_one()
        grids = gpd.GeoDataFrame(
            {"plan_id": plan_id, "code": GRID_CODES, "worker": GRID_WORKERS,
             "households": 400.0},
            geometry=[shapely.MultiPolygon([b]) for b in boxes], crs=4326)
        store.insert_gdf(conn, "grids", grids)
        n = 600
        lon = rng.uniform(minx, maxx, n)
        lat = rng.uniform(miny, maxy, n)
        cams = gpd.GeoDataFrame(
            {"code": [f"5101040{i:013d}" for i in range(n)], "name": [f"测试摄像机{i}" for i in range(n)],
             "project": rng.choice(["skynet", "sharp_eyes"], n), "azimuth_deg": rng.uniform(0, 360, n),
             "fov_deg": 90.0, "range_m": 80.0, "camera_type": "fixed", "status": "online",
             "secrecy_level": np.arange(n) % 4, "synthetic": True},
            geometry=shapely.points(lon, lat), crs=4326)
        store.insert_gdf(conn, "cameras", cams)
        m = 400
        t0 = datetime(2018, 1, 1, tzinfo=timezone.utc)
        when = [t0 + timedelta(hours=float(h)) for h in rng.uniform(0, 365 * 24, m)]
        ilon = np.where(np.arange(m) % 2 == 0, rng.uniform(minx, midx, m), rng.uniform(midx, maxx, m))
        ilat = rng.uniform(miny, midy - 1e-6, m)
        grid_of = np.where(np.arange(m) % 2 == 0, GRID_CODES[0], GRID_CODES[1])
        incs = gpd.GeoDataFrame(
            {"occurred_at": when, "category": rng.choice(["治安", "矛盾纠纷", "环境卫生"], m),
             "description": "测试事件", "state": "reported", "state_since": when, "version": 1,
             "grid_code": grid_of, "worker": "wu", "synthetic": True},
            geometry=shapely.points(ilon, ilat), crs=4326)
        # Every fourth incident is in zhang's grid instead (upper right) and belongs to zhang.
        sel = np.arange(m) % 4 == 3
        incs.loc[sel, "grid_code"] = GRID_CODES[3]
        incs.loc[sel, "worker"] = "zhang"
        incs.loc[sel, "geometry"] = shapely.points(rng.uniform(midx, maxx, sel.sum()), rng.uniform(midy, maxy, sel.sum()))
        # Every eighth (from 1) is in wu's lower-right grid but assigned to nobody yet: a worker sees
        # it for the grid alone. Every sixteenth (from 7) is in li's grid (upper left).
        incs.loc[np.arange(m) % 8 == 1, "worker"] = None
        sel = np.arange(m) % 16 == 7
        incs.loc[sel, ["grid_code", "worker"]] = [GRID_CODES[2], "li"]
        incs.loc[sel, "geometry"] = shapely.points(rng.uniform(minx, midx, sel.sum()), rng.uniform(midy, maxy, sel.sum()))
        store.insert_gdf(conn, "incidents", incs)
        # Two walking routes per grid (a diagonal and an edge of its box, 1 m inside it).
        lines, codes = [], []
        for code, b in zip(GRID_CODES, boxes):
            x0, y0, x1, y1 = b.buffer(-1e-5).bounds
            lines += [shapely.LineString([(x0, y0), (x1, y1)]), shapely.LineString([(x0, y1), (x1, y1)])]
            codes += [code, code]
        routes = gpd.GeoDataFrame(
            {"plan_id": plan_id, "grid_code": codes, "kind": "coverage", "mode": "walk", "worker_index": 0,
             "length_m": 1000.0, "required_m": 900.0, "lower_bound_m": 900.0, "duration_s": 900.0,
             "directions_json": "[]", "stats_json": "{}"}, geometry=lines, crs=4326)
        store.insert_gdf(conn, "routes", routes)
    return {"grids": grids, "cameras": cams, "incidents": incs, "routes": routes}


