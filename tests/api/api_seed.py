"""Test data for the API tests: real Chengdu streets and buildings, users of every role, four grids
with workers, and generated cameras/incidents with secrecy levels and owners."""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("GRIDPATROL_DATA", ROOT.parent / "shared" / "data"))
PASSWORD = "test-password-123"
ROLE_USERS = {"admin": "ada", "planner": "pia", "dispatcher": "dan", "worker": "wu", "viewer": "vic"}
# A second dispatcher cleared for secrecy level 2 (cameras up to level 2, not 3).
CLEARED_DISPATCHER = "dora"


def chengdu_osm() -> Path:
    p = DATA / "chengdu" / "chengdu.osm"
    if not p.exists():
        pytest.skip(f"real data file {p} is missing (expected ../shared/data next to the repository)")
    return p


def seed(store) -> dict:  # noqa: ANN001
    """Import Chengdu, add users of every role, 4 grids (2 with worker 'wu'), 600 cameras of
    secrecy levels 0–3 and 400 incidents over 2018, half in wu's grids. Returns what was made."""
    from layers import users
    from layers.importing import import_osm

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
        from sqlalchemy import insert

        from layers.models import GridPlan

        plan_id = conn.execute(insert(GridPlan).values(name="test", method="import", params_json="{}", metrics_json="{}")
                               .returning(GridPlan.id)).scalar_one()
        grids = gpd.GeoDataFrame(
            {"plan_id": plan_id, "code": [f"5101040010{i}" for i in range(1, 5)], "worker": ["wu", "wu", "li", "zhang"],
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
        grid_of = np.where(np.arange(m) % 2 == 0, "510104001001", "510104001002")
        incs = gpd.GeoDataFrame(
            {"occurred_at": when, "category": rng.choice(["治安", "矛盾纠纷", "环境卫生"], m),
             "description": "测试事件", "state": "reported", "state_since": when, "version": 1,
             "grid_code": grid_of, "worker": "wu", "synthetic": True},
            geometry=shapely.points(ilon, ilat), crs=4326)
        # Every fourth incident is in zhang's grid instead (upper right) and belongs to zhang.
        sel = np.arange(m) % 4 == 3
        incs.loc[sel, "grid_code"] = "510104001004"
        incs.loc[sel, "worker"] = "zhang"
        incs.loc[sel, "geometry"] = shapely.points(rng.uniform(midx, maxx, sel.sum()), rng.uniform(midy, maxy, sel.sum()))
        store.insert_gdf(conn, "incidents", incs)
    return {"grids": grids, "cameras": cams, "incidents": incs}


