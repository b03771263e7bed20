"""Rural grids (draw-grids --mode rural, #15) on a generated rural county, on both stores: whole
villages per grid, the area and travel limits met or exempt with the reason, the area tiled."""
from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
from gridpatrol.gis.assign import assign_xy, representative_xy
from gridpatrol.gis.errors import InputError
from gridpatrol.layers.grids import (
    check_frames,
    check_grids,
    draw_grids,
    plan_row,
    planning_areas,
    read_blocks,
    read_grids,
)
from gridpatrol.layers.plan_params import PlanParams

from tests.synth_rural import BORDER_X, UNNAMED, VILLAGES, load_rural_county

MAX_AREA = 4_000_000.0
MAX_MIN = 10.0


@pytest.fixture(scope="module")
def county(module_store):  # noqa: ANN001, ANN201
    layers = load_rural_county(module_store)
    params = PlanParams(mode="rural", max_area_m2=MAX_AREA, max_travel_min=MAX_MIN, allow_sparse=True)
    pid = draw_grids(module_store, params)
    return module_store, layers, pid


def _village_of_buildings(layers: dict) -> np.ndarray:
    """Which generated village each building belongs to (by the generator's centres and radii, not
    the product's clustering); -1 for none. 河口村's two sides of the border count as two villages."""
    b = layers["buildings"].to_crs(32648)
    c = shapely.get_coordinates(shapely.centroid(b.geometry.to_numpy()))
    out = np.full(len(b), -1)
    ox, oy = 380_000.0, 3_370_000.0
    for k, (_name, cx, cy, r, _n, _road) in enumerate(VILLAGES):
        near = np.hypot(c[:, 0] - ox - cx, c[:, 1] - oy - cy) <= r + 15
        out[near] = 2 * k + (c[near, 0] - ox >= BORDER_X)  # a side of the border is a village of its own
    return out


def test_rural_plan_is_valid_and_tiles_the_area(county) -> None:  # noqa: ANN001
    store, _layers, pid = county
    res, checked = check_grids(store, pid)
    assert checked == pid
    assert res.valid, res.problems[res.problems["severity"] == "error"][["kind", "detail"]].to_string()
    s = res.summary
    assert s["gap_m2"] == 0 and s["overlap_m2"] == 0 and s["outside_parent_m2"] == 0
    assert s["buildings_unassigned"] == 0 and s["buildings_cut"] == 0
    grids = read_grids(store, pid)
    areas = planning_areas(store)
    # an independent tiling test: the grids' union is each area, their areas add up to it
    for _, a in areas.iterrows():
        mine = grids[grids["parent_code"] == a["code"]]
        union = shapely.union_all(mine.geometry.to_numpy())
        am = gpd.GeoSeries([a.geometry], crs=4326).to_crs(32648).iloc[0]
        um = gpd.GeoSeries([union], crs=4326).to_crs(32648).iloc[0]
        assert shapely.symmetric_difference(am, um).area < 1.0
        assert abs(mine.to_crs(32648).area.sum() - am.area) < 1.0


def test_no_village_is_split_across_grids(county) -> None:  # noqa: ANN001
    store, layers, pid = county
    grids = read_grids(store, pid)
    x, y = representative_xy(layers["buildings"].geometry)
    grid_of = assign_xy(x, y, grids.geometry)
    assert (grid_of >= 0).all()
    village = _village_of_buildings(layers)
    assert (village >= 0).all(), "every generated building belongs to a village"
    for v in np.unique(village):
        held = set(grid_of[village == v].tolist())
        assert len(held) == 1, f"village {VILLAGES[v // 2][0]} (side {v % 2}) lies in grids {held}"
    # each grid is named after its villages' place nodes; the one without a node (numbered 居民点N) names no grid:
    # a grid of it alone is named after the streets nearest it (…一带), or by its code where none is near
    for v in np.unique(village):
        name = VILLAGES[v // 2][0]
        g = grids.iloc[int(grid_of[village == v][0])]
        assert (name in str(g["name"])) != (name == UNNAMED), (name, g["name"])
    assert not any(p.startswith("居民点") for n in grids["name"].dropna() for p in str(n).split("、"))
    assert grids.groupby("parent_code")["name"].apply(lambda s: s.dropna().is_unique).all()
    res, _ = check_grids(store, pid)
    assert not (res.problems["kind"] == "settlement_split").any()
    # the border village is reported as cut by the area boundary, on both sides
    assert (res.problems["kind"] == "settlement_on_area_boundary").sum() == 2


def test_limits_met_or_exempt_with_reason(county) -> None:  # noqa: ANN001
    store, _layers, pid = county
    res, _ = check_grids(store, pid)
    p = res.problems
    assert not p["kind"].isin(["over_area_limit", "over_travel_limit"]).any()
    grids = read_grids(store, pid)
    exempt = set(p.loc[p["kind"] == "rural_limit_exempt", "grid_code"])
    over_area = set(grids.loc[grids["area_m2"] > MAX_AREA * (1 + 1e-9), "code"])
    assert over_area <= exempt
    travel = res.summary["rural"]["travel_min"]
    over_travel = {c for c, t in travel.items() if t is None or t > MAX_MIN}
    assert over_travel, "the hamlets no road reaches are over the travel limit"
    assert over_travel <= exempt
    for d in p.loc[p["kind"] == "rural_limit_exempt", "detail"]:
        assert "豁免" in d and "分钟" in d or "m²" in d
    # the plan remembers why: the exempt grids and their reasons are in the plan's metrics
    m = json.loads(plan_row(store, pid)["metrics_json"])["rural"]
    reasons = {c: r for area in m.values() for c, r in area["exempt"].items()}
    assert set(reasons) == exempt and all(reasons.values())
    assert set(grids.loc[grids["exempt"].astype(bool), "code"]) == exempt
    # every grid with settlements has a station; the worst travel is measured from it
    with_people = grids[grids["households"] > 0]
    assert with_people["station_lon"].notna().all() and with_people["name"].notna().all()


def test_more_grids_under_tighter_limits(county) -> None:  # noqa: ANN001
    store, _layers, pid = county
    n = len(read_grids(store, pid))
    loose = draw_grids(store, PlanParams(mode="rural", allow_sparse=True))
    tight = draw_grids(store, PlanParams(mode="rural", max_area_m2=2_000_000, max_travel_min=3, allow_sparse=True))
    n_loose, n_tight = len(read_grids(store, loose)), len(read_grids(store, tight))
    assert n_loose < n < n_tight
    for pid_ in (loose, tight):
        res, _ = check_grids(store, pid_)
        assert res.valid, res.problems[res.problems["severity"] == "error"][["kind", "detail"]].to_string()


def test_urban_plan_of_the_county_splits_the_market_town(county) -> None:  # noqa: ANN001
    """The urban partition cuts the ~700-household market town; the rural check says so."""
    store, _layers, _pid = county
    urban = draw_grids(store, PlanParams(allow_sparse=True))
    params = PlanParams(mode="rural", max_area_m2=MAX_AREA, max_travel_min=MAX_MIN)
    res = check_frames(store, read_grids(store, urban), read_blocks(store, urban), planning_areas(store), params)
    split = res.problems[res.problems["kind"] == "settlement_split"]
    assert len(split) >= 1 and not res.valid
    assert split["detail"].str.contains("网格").all()


def test_travel_limit_without_rural_mode_is_refused() -> None:
    with pytest.raises(InputError, match="--max-travel-min"):
        PlanParams.parse({"max_travel_min": 10})
    with pytest.raises(InputError, match="--mode"):
        PlanParams.parse({"mode": "village"})
    with pytest.raises(InputError, match="--max-street-m"):
        PlanParams.parse({"mode": "rural", "max_street_m": 3000})
    with pytest.raises(InputError, match="--max-route-min"):  # the urban patrol cap: rural has its travel limit
        PlanParams.parse({"mode": "rural", "max_route_min": 60})
    with pytest.raises(InputError, match="balance households only"):
        PlanParams.parse({"mode": "rural", "balance": "population"})
    assert PlanParams.parse({"mode": "rural", "max_travel_min": 10, "travel_mode": "walk"}).max_travel_min == 10


def test_empty_grids_only_where_every_merge_breaks_the_area_limit(county) -> None:  # noqa: ANN001
    """A grid of land without households is kept only when joining it to any touching grid of its
    area would go over --max-area-m2 (measured here on the stored grids, not the drawer's state)."""
    store, _layers, pid = county
    grids = read_grids(store, pid).to_crs(32648)
    empty = grids[grids["households"] <= 0]
    for _, e in empty.iterrows():
        same = grids[(grids["parent_code"] == e["parent_code"]) & (grids["code"] != e["code"])]
        shared = shapely.length(shapely.intersection(same.geometry.to_numpy(), e.geometry.boundary))
        for area in same["area_m2"].to_numpy()[shared > 0.5]:
            assert area + e["area_m2"] > MAX_AREA, f"grid {e['code']} could join a touching grid"
    assert len(empty) <= 2
