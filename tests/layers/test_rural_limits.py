"""Edits of a rural plan steer by its limits (#15): rebalance never pushes a grid over
``--max-travel-min`` (and says which grid and by how much when every balancing move would),
``split-grid`` cuts parts that meet the area and travel limits, ``import-grids --mode`` picks the
rules an imported plan is judged by, and a rural redraw keeps locked grids. Both stores, on the
generated county (tests/synth_rural.py; no rural area is in /work/shared/data), seed 1."""
from __future__ import annotations

import json

import geopandas as gpd
import pytest
import shapely
from gridpatrol.gis.errors import ConflictError, InputError
from gridpatrol.layers.grids import (
    check_grids,
    draw_grids,
    import_grids,
    list_plans,
    plan_row,
    planning_areas,
    read_grids,
    rebalance_grids,
)
from gridpatrol.layers.plan_params import PlanParams

from tests.synth_rural import load_rural_county

NORTH, REST, EAST = "519990001000001", "519990001000002", "519990002000001"


@pytest.fixture(scope="module")
def county(module_store):  # noqa: ANN001, ANN201
    load_rural_county(module_store, seed=1, village_areas=True)
    return module_store


def _northeast_plan(store, tmp_path) -> int:  # noqa: ANN001
    """A hand-drawn plan of the west township: its north-east corner (x ≥ 2500 m, y ≥ 3400 m: 上坪,
    12 households) and the rest (the town, 李家湾, the west half of 河口村, …); the east township whole.
    Imported over the newest plan, so with its rules."""
    areas = planning_areas(store).to_crs(32648).set_index("code")
    west, east = areas.geometry.iloc[0], areas.geometry.iloc[1]
    x0, y0, x1, y1 = west.bounds
    ne = west.intersection(shapely.box(x0 + 2500, y0 + 3400, x1, y1))
    frame = gpd.GeoDataFrame({"code": [NORTH, REST, EAST], "parent_code": ["519990001", "519990001", "519990002"]},
                             geometry=[ne, west.difference(ne), east], crs=32648)
    path = tmp_path / "northeast.geojson"
    frame.to_crs(4326).to_file(path, driver="GeoJSON")
    return import_grids(store, str(path))


def test_rebalance_refuses_moves_over_the_travel_limit(county, tmp_path) -> None:  # noqa: ANN001
    """Under a 3-minute limit every household move into the 12-household corner grid would take its
    worst travel over the limit (the nearest, 河口村's west half, to 5.0 min): the rebalance is
    refused naming the grid, the limit and by how much, in Chinese then English; nothing is written."""
    store = county
    draw_grids(store, PlanParams(mode="rural", max_travel_min=3, allow_sparse=True))  # the county plans rurally
    pid = _northeast_plan(store, tmp_path)
    assert json.loads(plan_row(store, pid)["params_json"])["max_travel_min"] == 3
    n_plans = len(list_plans(store))
    with pytest.raises(ConflictError) as refused:
        rebalance_grids(store, [NORTH, REST], plan_id=pid)
    msg = str(refused.value)
    assert msg.startswith("重新平衡被拒绝") and f"网格 {NORTH} 到最远的居民点需 5.0 分钟" in msg, msg
    assert "超过路程上限 3 分钟（--max-travel-min，超出 2.0 分钟）" in msg, msg
    assert f"grid {NORTH} would be 5.0 min" in msg and "by 2.0 min" in msg, msg
    assert len(list_plans(store)) == n_plans


def test_rebalance_keeps_the_travel_limit(county, tmp_path) -> None:  # noqa: ANN001
    """Under a 10-minute limit the same rebalance moves 河口村's west half (88 households) into the
    corner grid, whose worst travel stays under the limit; the move into it of the town's unit
    (27.4 min: the roadless hamlet 孤山 comes with it) is left out."""
    store = county
    draw_grids(store, PlanParams(mode="rural", max_travel_min=10, allow_sparse=True))
    pid = _northeast_plan(store, tmp_path)
    before = read_grids(store, pid).set_index("code")["households"]
    res = rebalance_grids(store, [NORTH, REST], plan_id=pid)
    assert res.plan_id != pid, res.message
    after = read_grids(store, res.plan_id).set_index("code")["households"]
    assert after[NORTH] == before[NORTH] + 88 and after[REST] == before[REST] - 88
    checked, _ = check_grids(store, res.plan_id)
    assert checked.summary["rural"]["travel_min"][NORTH] <= 10
    p = checked.problems
    assert not ((p["kind"] == "over_travel_limit") & (p["grid_code"] == NORTH)).any()
    assert checked.summary["rural"]["settlements_split"] == 0


def test_import_mode_picks_the_rules(county, tmp_path) -> None:  # noqa: ANN001
    """import-grids --mode: rural over an urban plan takes the limits of the newest rural plan and
    the rural check; urban over a rural plan is judged by the urban rules; without --mode the newest plan's mode; an unknown mode is refused with nothing written."""
    store = county
    rural = draw_grids(store, PlanParams(mode="rural", max_area_m2=4_000_000, max_travel_min=10, allow_sparse=True))
    path = tmp_path / "rural.geojson"
    read_grids(store, rural)[["code", "parent_code", "geometry"]].to_file(path, driver="GeoJSON")
    draw_grids(store, PlanParams(allow_sparse=True))  # the newest plan is urban now
    follows = import_grids(store, str(path))
    assert json.loads(plan_row(store, follows)["params_json"])["mode"] == "urban"
    res, _ = check_grids(store, follows)
    assert "rural" not in res.summary and "settlement_split" not in set(res.problems["kind"])
    back = import_grids(store, str(path), mode="rural")
    stored = json.loads(plan_row(store, back)["params_json"])
    assert (stored["mode"], stored["max_area_m2"], stored["max_travel_min"]) == ("rural", 4_000_000, 10)
    res, _ = check_grids(store, back)
    assert res.valid and res.summary["rural"]["settlements_split"] == 0
    urban = import_grids(store, str(path), mode="urban")  # the newest plan is rural now
    assert json.loads(plan_row(store, urban)["params_json"])["mode"] == "urban"
    n_plans = len(list_plans(store))
    with pytest.raises(InputError, match="--mode 只能是 urban 或 rural"):
        import_grids(store, str(path), mode="village")
    assert len(list_plans(store)) == n_plans


def test_rural_redraw_keeps_locked_grids(county) -> None:  # noqa: ANN001
    """A grid locked in a rural plan (the west half of 河口村, 1.76 km², drawn under 4 km² and 10 min) is
    kept by a rural redraw under other limits (2 km², 3 min) that would reshape it: same code, shape,
    households, name and station, still locked; the rest is drawn around it and the plan is valid,
    no village split."""
    from gridpatrol.gis.crs import local_metric_crs
    from gridpatrol.layers.grids import set_locked

    store = county
    first = draw_grids(store, PlanParams(mode="rural", max_area_m2=4_000_000, max_travel_min=10, allow_sparse=True))
    g1 = read_grids(store, first).set_index("code")
    second = PlanParams(mode="rural", max_travel_min=10, allow_sparse=True)
    free = read_grids(store, draw_grids(store, second))
    keep = next(c for c, n in g1["name"].items() if n == "河口村" and c.startswith("519990001"))
    metric = local_metric_crs(*g1.geometry.union_all().centroid.coords[0])
    shape = gpd.GeoSeries([g1.loc[keep, "geometry"]], crs=4326).to_crs(metric).iloc[0]
    assert all(shape.symmetric_difference(f).area > 1.0 for f in free.to_crs(metric).geometry), \
        "the second limits reshape the grid"
    assert any("河口村" in str(n) and "李家湾" in str(n) for n in free["name"])
    set_locked(store, [keep], True, plan_id=first)
    p2 = draw_grids(store, second)
    g2 = read_grids(store, p2).set_index("code")
    assert g2.index.is_unique and bool(g2.loc[keep, "locked"])
    kept = gpd.GeoSeries([g2.loc[keep, "geometry"]], crs=4326).to_crs(metric).iloc[0]
    assert kept.symmetric_difference(shape).area < 1.0
    for col in ("households", "station_lon", "station_lat"):
        assert g2.loc[keep, col] == pytest.approx(g1.loc[keep, col]), col
    assert g2.loc[keep, "name"] == "河口村"
    assert json.loads(plan_row(store, p2)["metrics_json"])["rural"]["519990001"]["locked"] == [keep]
    res, _ = check_grids(store, p2)
    assert res.valid, res.problems[res.problems["severity"] == "error"][["kind", "detail"]].to_string()
    assert res.summary["rural"]["settlements_split"] == 0
    assert not any("河口村" in str(n) and "李家湾" in str(n) for n in g2["name"])


def _township_plan(store, tmp_path) -> int:  # noqa: ANN001
    """The county drawn rurally under a 7.5 km² limit, then a hand-drawn plan imported over it (so with
    that limit): the west township in two halves north and south of y = 3400 m, the east township
    (20 km²: 王家村, 张家坝, the east half of 河口村, 松林, 新屋, 岩脚) one grid, over the limit."""
    draw_grids(store, PlanParams(mode="rural", max_area_m2=7_500_000, allow_sparse=True))
    areas = planning_areas(store).to_crs(32648).set_index("code")
    west, east = areas.geometry.iloc[0], areas.geometry.iloc[1]
    x0, y0, x1, y1 = west.bounds
    frame = gpd.GeoDataFrame({"code": [NORTH, REST, EAST], "parent_code": ["519990001", "519990001", "519990002"]},
                             geometry=[west.intersection(shapely.box(x0, y0 + 3400, x1, y1)),
                                       west.intersection(shapely.box(x0, y0, x1, y0 + 3400)), east], crs=32648)
    path = tmp_path / "townships.geojson"
    frame.to_crs(4326).to_file(path, driver="GeoJSON")
    return import_grids(store, str(path))


def test_rural_split_meets_the_area_limit(county, tmp_path) -> None:  # noqa: ANN001
    """Splitting the 20 km² east township into 3 under the 7.5 km² limit gives three parts each under
    it (a split by households alone leaves a part of over 10 km²), every village whole; into 2 (10 km²
    a part at best) it is refused saying which limit and by how much; nothing is written."""
    from gridpatrol.layers.grids import split_grid

    store = county
    pid = _township_plan(store, tmp_path)
    assert json.loads(plan_row(store, pid)["params_json"])["max_area_m2"] == 7_500_000
    n_plans = len(list_plans(store))
    with pytest.raises(ConflictError) as refused:
        split_grid(store, EAST, 2, plan_id=pid)
    msg = str(refused.value)
    assert msg.startswith(f"拆分被拒绝：网格 {EAST} 分成 2 份"), msg
    assert "超过上限 7,500,000 m²（--max-area-m2，超出 " in msg and "over the area limit of 7,500,000 m²" in msg, msg
    assert len(list_plans(store)) == n_plans
    res = split_grid(store, EAST, 3, plan_id=pid)
    grids = read_grids(store, res.plan_id).set_index("code")
    parts = grids.loc[res.changed_codes]
    assert len(parts) == 3 and (parts["area_m2"] <= 7_500_000).all(), parts[["name", "area_m2"]]
    east_m2 = read_grids(store, pid).set_index("code").loc[EAST, "area_m2"]
    assert parts["area_m2"].sum() == pytest.approx(east_m2, rel=1e-6)
    checked, _ = check_grids(store, res.plan_id)
    assert checked.summary["rural"]["settlements_split"] == 0
    p = checked.problems
    assert not (p["kind"].isin(["over_area_limit", "settlement_split"]) & p["grid_code"].isin(res.changed_codes)).any()


def test_cli_import_grids_mode(county, tmp_path) -> None:  # noqa: ANN001
    """gridpatrol import-grids FILE --mode rural over an urban plan says and stores the rural mode;
    --mode village exits 2 with the Chinese message first, nothing written."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    store = county
    rural = draw_grids(store, PlanParams(mode="rural", max_area_m2=4_000_000, max_travel_min=10, allow_sparse=True))
    path = tmp_path / "rural_cli.geojson"
    read_grids(store, rural)[["code", "parent_code", "geometry"]].to_file(path, driver="GeoJSON")
    draw_grids(store, PlanParams(allow_sparse=True))
    exe = str(Path(sys.executable).with_name("gridpatrol"))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([exe, "--db", store.url, "import-grids", str(path), *args], capture_output=True,
                              text=True, timeout=600, env={**os.environ, "COLUMNS": "200"})

    n_plans = len(list_plans(store))
    bad = run("--mode", "village")
    assert bad.returncode == 2 and "--mode 只能是 urban 或 rural" in bad.stderr + bad.stdout, bad.stderr
    assert len(list_plans(store)) == n_plans
    ok = run("--mode", "rural")
    assert ok.returncode == 0 and "（模式 rural）" in ok.stdout, ok.stderr
    assert json.loads(plan_row(store)["params_json"])["max_travel_min"] == 10
