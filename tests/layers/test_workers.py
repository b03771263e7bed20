"""Grid workers (网格员) and stations: assignment, what incidents see, and what edits keep."""
from __future__ import annotations

import geopandas as gpd
import pytest
import shapely
from gridpatrol.gis.errors import InputError, NotFoundError
from gridpatrol.layers import grids as plans
from gridpatrol.layers.incidents import create_incident

from tests.cached_stores import jinjiang_district_seed1, jinjiang_inputs
from tests.store_cache import open_filled


@pytest.fixture
def jinjiang(store_url):
    """锦江区 drawn with seed 1: a copy of the cached store (tests/cached_stores.py), per test."""
    yield from open_filled(store_url, "jinjiang-district-seed1", jinjiang_district_seed1, jinjiang_inputs())


def test_workers_reach_incidents_and_survive_edits(jinjiang):
    store = jinjiang
    grids = plans.read_grids(store)
    first_plan = int(grids["plan_id"].iloc[0])
    most_blocks = plans.read_blocks(store)["grid_code"].value_counts().index[0]
    big = grids.set_index("code", drop=False).loc[most_blocks]
    other = grids[grids["code"] != big["code"]].iloc[0]
    inside = shapely.point_on_surface(big.geometry)
    res = plans.assign_workers(store, {big["code"]: "张伟", other["code"]: "李娜"},
                               stations={big["code"]: (inside.x, inside.y)})
    assert res.parent_plan_id == first_plan and res.plan_id > first_plan
    now = plans.read_grids(store).set_index("code")
    assert now.loc[big["code"], "worker"] == "张伟" and now.loc[other["code"], "worker"] == "李娜"
    assert now.loc[big["code"], "station_lon"] == pytest.approx(inside.x)
    # The earlier version is kept as it was.
    assert plans.read_grids(store, first_plan)["worker"].isna().all()

    # A new incident in the grid gets its worker.
    inc = create_incident(store, lon=inside.x, lat=inside.y, category="环境卫生")
    assert inc["grid_code"] == big["code"] and inc["worker"] == "张伟"

    # Splitting the grid keeps the worker on the part that keeps the code.
    plans.split_grid(store, big["code"], 2, force=True)
    after = plans.read_grids(store).set_index("code")
    assert after.loc[big["code"], "worker"] == "张伟"
    assert after.loc[other["code"], "worker"] == "李娜"
    # The station stays when the reshaped grid holds it or lies within 200 m of it, else it is
    # dropped (never left far outside its grid): decided here in metres, both ways checked.
    station = after.loc[big["code"], ["station_lon", "station_lat"]]
    metric = after.estimate_utm_crs()
    shape_m = gpd.GeoSeries([after.loc[big["code"]].geometry], crs=4326).to_crs(metric).iloc[0]
    d = shape_m.distance(gpd.GeoSeries([inside], crs=4326).to_crs(metric).iloc[0])
    if d <= 199.0:
        assert station.tolist() == pytest.approx([inside.x, inside.y])
    else:
        assert d > 201.0 and station.isna().all(), (d, station.tolist())


def test_bad_assignments_change_nothing(jinjiang):
    store = jinjiang
    before = plans.list_plans(store)
    code = plans.read_grids(store)["code"].iloc[0]
    with pytest.raises(NotFoundError, match="not in plan"):
        plans.assign_workers(store, {"999999000000001": "王芳"})
    with pytest.raises(InputError, match="outside the grid"):
        plans.assign_workers(store, {code: "王芳"}, stations={code: (104.5, 30.2)})
    with pytest.raises(InputError, match="no grid given"):
        plans.assign_workers(store, {})
    assert len(plans.list_plans(store)) == len(before)
