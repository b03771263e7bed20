"""A rural plan (draw-grids --mode rural, #15) is imported, split, rebalanced and moved by the rural
rules: whole villages, area and travel limits, households second; and villages mapped as areas
name its grids. Both stores, on the generated county with another seed (1) than the drawing was
developed on, its villages mapped as areas rather than place nodes."""
from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
from gridpatrol.gis.assign import assign_xy, representative_xy
from gridpatrol.gis.errors import ConflictError
from gridpatrol.layers import planner
from gridpatrol.layers.grids import (
    check_grids,
    draw_grids,
    import_grids,
    list_plans,
    move_blocks,
    plan_row,
    planning_areas,
    read_blocks,
    read_grids,
    rebalance_grids,
    split_grid,
)
from gridpatrol.layers.plan_params import PlanParams

from tests.synth_rural import VILLAGES, load_rural_county, village_areas_osm

SEED = 1
ORIGIN = (380_000.0, 3_370_000.0)
TOWN = "石桥镇"
BORDER_VILLAGE = "河口村"


@pytest.fixture(scope="module")
def county(module_store):  # noqa: ANN001, ANN201
    layers = load_rural_county(module_store, seed=SEED, village_areas=True)
    return module_store, layers


def _village_grid(store, layers: dict, pid: int) -> dict[str, set[str]]:  # noqa: ANN001
    """{generated village: the grid codes holding its houses} (villages from the generator)."""
    grids = read_grids(store, pid)
    x, y = representative_xy(layers["buildings"].geometry)
    grid_of = assign_xy(x, y, grids.geometry)
    c = shapely.get_coordinates(shapely.centroid(layers["buildings"].to_crs(32648).geometry.to_numpy()))
    out: dict[str, set[str]] = {}
    for name, cx, cy, r, _n, _road in VILLAGES:
        near = np.hypot(c[:, 0] - ORIGIN[0] - cx, c[:, 1] - ORIGIN[1] - cy) <= r + 15
        out[name] = {str(grids["code"].iloc[i]) if i >= 0 else "" for i in grid_of[near]}
    return out


def _whole(villages: dict[str, set[str]]) -> bool:
    """Every village in one grid (河口村, which the township border runs through, in one per side)."""
    return all(len(codes - {""}) == (2 if name == BORDER_VILLAGE else 1) and "" not in codes
               for name, codes in villages.items())


def _write(frame: gpd.GeoDataFrame, path) -> str:  # noqa: ANN001
    frame[["code", "parent_code", "geometry"]].to_crs(4326).to_file(path, driver="GeoJSON")
    return str(path)


def test_villages_mapped_as_areas_name_their_grids(county) -> None:  # noqa: ANN001
    store, layers = county
    pid = draw_grids(store, PlanParams(mode="rural", max_area_m2=4_000_000, max_travel_min=10, allow_sparse=True))
    grids = read_grids(store, pid).set_index("code")
    by_area = set(layers["place_areas"]["name"])
    assert {TOWN, "王家村", "河口村"} <= by_area and not (set(layers["places"]["name"]) & by_area)
    for name, codes in _village_grid(store, layers, pid).items():
        if name in by_area:  # no place node: the name can only come from the village's area
            for c in codes - {""}:
                assert name in str(grids.loc[c, "name"]), (name, c, grids.loc[c, "name"])


def test_import_osm_stores_the_village_areas(store, tmp_path) -> None:  # noqa: ANN001
    """import-osm keeps villages mapped as areas in the place_areas layer; importing the extract
    again replaces them, not duplicates."""
    from gridpatrol.layers.importing import import_osm

    src = village_areas_osm(tmp_path / "villages.osm")
    for _ in range(2):
        import_osm(store, src)
        pa = store.read_layer("place_areas").set_index("osm_id")
        assert sorted(pa.index) == [1, 2] and pa.loc[1, "name"] == "王家村" and pa.loc[2, "place"] == "landuse=residential"


def test_import_keeps_the_rural_rules(county, tmp_path) -> None:  # noqa: ANN001
    """Grids imported over a rural plan are a rural plan with its limits: the exported plan comes
    back valid (an urban check calls its grids outside the household band errors), and grids that
    cut the market town are reported as a village split."""
    store, _layers = county
    params = PlanParams(mode="rural", max_area_m2=4_000_000, max_travel_min=10, allow_sparse=True)
    pid = draw_grids(store, params)
    back = import_grids(store, _write(read_grids(store, pid), tmp_path / "rural.geojson"))
    stored = json.loads(plan_row(store, back)["params_json"])
    assert (stored["mode"], stored["max_area_m2"], stored["max_travel_min"]) == ("rural", 4_000_000, 10)
    res, _ = check_grids(store, back)
    assert res.valid, res.problems[res.problems["severity"] == "error"][["kind", "detail"]].to_string()
    assert res.summary["rural"]["settlements_split"] == 0
    # a hand-drawn plan of the west township cut through the town at x = 2000 m
    west = planning_areas(store).to_crs(32648).set_index("code").geometry.iloc[0]
    x0, y0, x1, y1 = west.bounds
    halves = [west.intersection(shapely.box(x0, y0, x0 + 2000, y1)), west.intersection(shapely.box(x0 + 2000, y0, x1, y1))]
    cut = gpd.GeoDataFrame({"code": ["519990001000001", "519990001000002"], "parent_code": ["519990001"] * 2},
                           geometry=halves, crs=32648)
    cut_pid = import_grids(store, _write(cut, tmp_path / "cut.geojson"))
    res, _ = check_grids(store, cut_pid)
    split = res.problems[res.problems["kind"] == "settlement_split"]
    assert not res.valid and split["detail"].str.contains(TOWN).any()


def test_rural_split_keeps_the_town_whole(county) -> None:  # noqa: ANN001
    """Splitting the market town's grid cuts land, never the town (an urban split of it by
    households cuts the town and is refused)."""
    store, layers = county
    pid = draw_grids(store, PlanParams(mode="rural", target_households=150, min_households=100, max_households=250,
                                       allow_sparse=True))
    before = _village_grid(store, layers, pid)
    (town_grid,) = before[TOWN]
    res = split_grid(store, town_grid, 2, plan_id=pid)
    assert len(res.changed_codes) == 2
    after = _village_grid(store, layers, res.plan_id)
    assert _whole(after), after
    checked, _ = check_grids(store, res.plan_id)
    assert checked.valid and checked.summary["rural"]["settlements_split"] == 0
    # the reshaped grids are named after the settlements they hold (the land-only part has none)
    grids = read_grids(store, res.plan_id).set_index("code")
    assert TOWN in str(grids.loc[next(iter(after[TOWN])), "name"])


def test_rural_rebalance_moves_whole_villages(county, tmp_path) -> None:  # noqa: ANN001
    """Two grids of a hand-drawn rural plan, 119 and 780 households (north and south of y = 3400 m):
    rebalance moves whole villages north, never part of one (a block-by-block rebalance cuts the
    town and is refused)."""
    store, layers = county
    draw_grids(store, PlanParams(mode="rural", max_travel_min=10, allow_sparse=True))  # the county plans rurally
    areas = planning_areas(store).to_crs(32648).set_index("code")
    west, east = areas.geometry.iloc[0], areas.geometry.iloc[1]
    x0, y0, x1, y1 = west.bounds
    frame = gpd.GeoDataFrame({"code": ["519990001000001", "519990001000002", "519990002000001"],
                              "parent_code": ["519990001", "519990001", "519990002"]},
                             geometry=[west.intersection(shapely.box(x0, y0 + 3400, x1, y1)),
                                       west.intersection(shapely.box(x0, y0, x1, y0 + 3400)), east], crs=32648)
    pid = import_grids(store, _write(frame, tmp_path / "north_south.geojson"))
    hh = read_grids(store, pid).set_index("code")["households"]
    res = rebalance_grids(store, ["519990001000001", "519990001000002"], plan_id=pid)
    assert res.plan_id != pid, res.message
    moved = read_grids(store, res.plan_id).set_index("code")["households"]
    assert moved["519990001000001"] > hh["519990001000001"]
    assert abs(moved["519990001000001"] + moved["519990001000002"] - hh[["519990001000001", "519990001000002"]].sum()) < 1e-6
    assert _whole(_village_grid(store, layers, res.plan_id)), "no village is cut"
    checked, _ = check_grids(store, res.plan_id)
    assert checked.summary["rural"]["settlements_split"] == 0


def test_a_move_that_splits_a_village_further_is_refused(county, tmp_path) -> None:  # noqa: ANN001
    """In a rural plan where the town already lies in two grids, moving a block of it into a third
    grid is refused (the split the plan had does not excuse a new one), and the planner page's move preview
says so first; nothing is written."""
    store, layers = county
    draw_grids(store, PlanParams(mode="rural", max_travel_min=10, allow_sparse=True))
    urban = draw_grids(store, PlanParams(allow_sparse=True))
    draw_grids(store, PlanParams(mode="rural", max_travel_min=10, allow_sparse=True))
    pid = import_grids(store, _write(read_grids(store, urban), tmp_path / "urban.geojson"))  # rural: the newest was
    town = _village_grid(store, layers, pid)[TOWN]
    assert len(town) == 2, "the urban partition cuts the town in two"
    res = split_grid(store, sorted(town)[0], 2, plan_id=pid)
    (third,) = set(res.changed_codes) - town
    grids, blocks = read_grids(store, res.plan_id), read_blocks(store, res.plan_id)
    # blocks holding town houses that touch the third grid
    b = layers["buildings"].to_crs(32648)
    c = shapely.get_coordinates(shapely.centroid(b.geometry.to_numpy()))
    in_town = np.hypot(c[:, 0] - ORIGIN[0] - 2000, c[:, 1] - ORIGIN[1] - 2500) <= 450
    x, y = representative_xy(layers["buildings"].geometry[in_town])
    town_blocks = blocks.iloc[sorted(set(assign_xy(x, y, blocks.geometry).tolist()) - {-1})].to_crs(32648)
    edge = grids[grids["code"] == third].to_crs(32648).geometry.iloc[0].boundary
    touching = town_blocks[shapely.length(shapely.intersection(town_blocks.geometry.to_numpy(), edge)) > 1.0]
    assert len(touching), "a block of the town touches the third grid"
    n_plans = len(list_plans(store))
    for block_id in touching["block_id"].astype(int):
        # the planner page's preview says so first, in the words of the refusal
        p = planner.preview_move(store, [block_id], third, res.plan_id)
        (split,) = [r for r in p["refusals"] if r["kind"] == "settlement_split"]
        assert not p["ok"] and split["blocking"] and TOWN in split["message"], p["refusals"]
        with pytest.raises(ConflictError, match=TOWN) as refused:
            move_blocks(store, third, [block_id], plan_id=res.plan_id)
        assert split["message"] in str(refused.value)
        assert "--force" not in str(refused.value)  # the rural limits are hard: no hint that --force would help
    assert len(list_plans(store)) == n_plans


def test_rural_rebalance_over_the_area_limit_says_which_and_by_how_much(county, tmp_path) -> None:  # noqa: ANN001
    """The north/south plan of the test above under an area limit just above the north grid's area:
    moving 河口村's half north would push the north grid over it, so the rebalance leaves that move
    out, and with no other move it is refused, naming the grid, the limit (--max-area-m2) and by how
    much; nothing is written."""
    store, _ = county
    areas = planning_areas(store).to_crs(32648).set_index("code")
    west, east = areas.geometry.iloc[0], areas.geometry.iloc[1]
    x0, y0, x1, y1 = west.bounds
    north = west.intersection(shapely.box(x0, y0 + 3400, x1, y1))
    cap = round(north.area + 1000.0)
    draw_grids(store, PlanParams(mode="rural", max_area_m2=cap, allow_sparse=True))  # the county plans rurally
    frame = gpd.GeoDataFrame({"code": ["519990001000001", "519990001000002", "519990002000001"],
                              "parent_code": ["519990001", "519990001", "519990002"]},
                             geometry=[north, west.intersection(shapely.box(x0, y0, x1, y0 + 3400)), east], crs=32648)
    pid = import_grids(store, _write(frame, tmp_path / "north_south_capped.geojson"))
    assert json.loads(plan_row(store, pid)["params_json"])["max_area_m2"] == cap
    n_plans = len(list_plans(store))
    with pytest.raises(ConflictError, match=r"重新平衡被拒绝.*网格 519990001000001 面积超过上限 [\d,]+ m²（--max-area-m2，超出 [\d,]+ m²）"):
        rebalance_grids(store, ["519990001000001", "519990001000002"], plan_id=pid)
    assert len(list_plans(store)) == n_plans
