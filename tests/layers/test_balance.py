"""Plans balanced on population or a weighted workload (#15): drawn, reported per grid and judged
by check-grids, the edits and the planner's preview against the workload they were drawn for, on
锦江区 in both stores."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import shapely
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.gis.errors import ConflictError, InputError
from gridpatrol.layers import grids as gl
from gridpatrol.layers import planner
from gridpatrol.layers.registers import import_households

from tests.cached_stores import jinjiang_inputs, jinjiang_with_users
from tests.store_cache import open_filled

WEIGHTED = {"balance": "weighted", "weights": "households=1,street_km=20", "seed": 1}


@pytest.fixture
def jj(store_url):  # noqa: ANN001, ANN201
    """Chengdu's streets and buildings, 锦江区 as the district, no plan (both stores)."""
    yield from open_filled(store_url, "jobs-jinjiang", jinjiang_with_users, jinjiang_inputs())


def _band(params: gl.PlanParams, scale: float) -> tuple[float, float]:
    return params.min_households * scale, params.max_households * scale


def test_weighted_plan_is_balanced_and_judged_on_its_workload(jj):  # noqa: ANN001
    store = jj
    pid = gl.draw_grids(store, gl.PlanParams.parse(WEIGHTED))
    row = gl.plan_row(store, pid)
    stored = json.loads(row["params_json"])
    assert stored["balance"] == "weighted" and stored["weights"] == "households=1,street_km=20"
    # the band is scaled by the plan's workload per household, computed from its blocks
    blocks = gl.read_blocks(store, pid)
    hh_total = blocks["households"].sum()
    load_total = hh_total + 20 * blocks["street_m"].sum() / 1000
    assert stored["workload_per_household"] == pytest.approx(load_total / hh_total, rel=1e-9)
    lo, hi = _band(gl.PlanParams(), stored["workload_per_household"])

    res, _ = gl.check_grids(store, pid)
    table = res.grids.set_index("code")
    grids = gl.read_grids(store, pid).set_index("code")
    # every measure per grid, and the workload is the weighted sum of two of them
    assert {"households", "population", "street_km", "area_km2", "buildings", "workload"} <= set(table.columns)
    np.testing.assert_allclose(table["street_km"], grids["street_m"] / 1000)
    np.testing.assert_allclose(table["area_km2"], grids["area_m2"] / 1e6)
    np.testing.assert_allclose(table["workload"], grids["households"] + 20 * grids["street_m"] / 1000)
    ok = ~grids["exempt"].astype(bool)
    w = table["workload"][ok]
    assert ((w >= lo - 1e-6) & (w <= hi + 1e-6)).all(), w
    # the households alone are not balanced (so a check by the household band would fail) ...
    hh = grids["households"][ok]
    assert ((hh < 300) | (hh > 500)).any()
    # ... but check-grids judges the plan by its own workload: valid, nothing out of band
    assert res.valid, res.problems[res.problems["severity"] == "error"]["detail"].tolist()
    assert res.summary["problems_by_kind"].get("households_out_of_band", 0) == 0
    assert res.summary["balance"] == "weighted" and res.summary["workload_band"][1:] == pytest.approx([lo, hi])
    # the planner page's grids are coloured and listed by the same workload
    from gridpatrol.layers.mapdata import plan_frame

    frame, band = plan_frame(store, pid)
    assert band["balance"] == "weighted" and (band["min_workload"], band["max_workload"]) == pytest.approx((lo, hi))
    np.testing.assert_allclose(frame.set_index("code")["workload"], table["workload"], atol=0.06)


def _register_csv(store, path) -> None:  # noqa: ANN001
    """A register of every mapped footprint in 锦江区: the households it has, and persons per
    household 1.5 west of the district's centre and 4.5 east of it."""
    b = store.read_layer("buildings")
    b = b[b["estimate_method"] == "footprint"].sort_values("id")
    area = store.read_layer("areas").geometry.iloc[0]
    pts = shapely.point_on_surface(b.geometry.to_numpy())
    inside = shapely.within(pts, area)
    cx = area.centroid.x
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["标准地址", "经度", "纬度", "户数", "实有人口"])
        for k, (p, h) in enumerate(zip(pts[inside], b["households"].to_numpy()[inside])):
            h = max(round(float(h)), 1)
            w.writerow([f"锦江区平衡测试{k}号", f"{p.x:.7f}", f"{p.y:.7f}", h, round(h * (1.5 if p.x < cx else 4.5))])


def _population_per_grid(store, grids) -> np.ndarray:  # noqa: ANN001
    """Persons per grid counted independently: footprints by inner point, landuse estimates by area share."""
    area = store.read_layer("areas").geometry.iloc[0]
    metric = local_metric_crs(area.centroid.x, area.centroid.y)
    gm = grids.to_crs(metric).geometry.to_numpy()
    bm = store.read_layer("buildings").to_crs(metric)
    fp = bm[bm["estimate_method"] != "landuse"]
    lu = bm[bm["estimate_method"] == "landuse"]
    pts = shapely.point_on_surface(fp.geometry.to_numpy())
    out = np.zeros(len(gm))
    for i, g in enumerate(gm):
        out[i] += fp["population"].to_numpy()[shapely.covers(g, pts)].sum()
        share = shapely.area(shapely.intersection(lu.geometry.to_numpy(), g)) / shapely.area(lu.geometry.to_numpy())
        out[i] += (lu["population"].to_numpy() * share).sum()
    return out


def test_population_plan_from_a_register_and_its_edits(jj, tmp_path):  # noqa: ANN001
    store = jj
    f = tmp_path / "register.csv"
    _register_csv(store, f)
    import_households(store, f)
    pid = gl.draw_grids(store, gl.PlanParams(balance="population", seed=1))
    params = gl.PlanParams.from_json(gl.plan_row(store, pid)["params_json"])
    blocks = gl.read_blocks(store, pid)
    assert params.balance == "population"
    assert params.workload_per_household == pytest.approx(blocks["population"].sum() / blocks["households"].sum())
    lo, hi = _band(params, params.workload_per_household)
    grids = gl.read_grids(store, pid)
    np.testing.assert_allclose(grids["population"], _population_per_grid(store, grids), rtol=1e-3, atol=1.0)
    ok = ~grids["exempt"].astype(bool).to_numpy()
    pop = grids["population"].to_numpy()
    assert ((pop[ok] >= lo - 1e-6) & (pop[ok] <= hi + 1e-6)).all()
    hh = grids["households"].to_numpy()
    assert ((hh[ok] < 300) | (hh[ok] > 500)).any()  # balanced on persons, not on households
    res, _ = gl.check_grids(store, pid)
    assert res.valid, res.problems[res.problems["severity"] == "error"]["detail"].tolist()

    # the planner's preview judges a move by persons
    by_code = grids.set_index("code")
    a = str(by_code[ok]["population"].idxmax())
    shared = shapely.length(shapely.intersection(by_code.geometry.boundary, by_code.at[a, "geometry"].boundary))
    near = [c for c, s in zip(by_code.index, shared) if s > 1e-6 and c != a]
    b = max(near, key=lambda c: float(by_code.at[c, "population"]))
    blocks = gl.read_blocks(store, pid)
    one = blocks[blocks["grid_code"] == a].sort_values("population").iloc[-1]
    prev = planner.preview_move(store, [int(one["block_id"])], b)
    assert prev["balance"] == "population" and prev["band"] == pytest.approx([lo, hi])
    for gr in prev["grids"]:
        for side in ("before", "after"):
            t = gr[side]
            assert t["workload"] == pytest.approx(t["population"])
            assert t["status"] == ("below" if t["workload"] < lo else "above" if t["workload"] > hi else "in")

    # a merge and a split that leave the persons' band are refused in persons; nothing is written
    with pytest.raises(ConflictError, match=f"persons, outside {lo:g}–{hi:g}"):
        gl.merge_grids(store, [a, b])
    with pytest.raises(ConflictError, match=f"persons, outside {lo:g}–{hi:g}"):
        gl.split_grid(store, a, 2)
    assert gl.latest_plan_id(store) == pid
    merged = gl.merge_grids(store, [a, b], force=True)
    res, _ = gl.check_grids(store, merged.plan_id)
    out = res.problems[res.problems["kind"] == "households_out_of_band"]
    assert list(out["grid_code"]) == [min(a, b)] and "persons" in out["detail"].iloc[0]
    assert out["households"].iloc[0] == pytest.approx(by_code.loc[[a, b], "households"].sum())


@pytest.mark.parametrize(("values", "words"), [
    ({"balance": "weighted", "weights": "households=1,lanes=2"}, "unknown measure 'lanes'"),
    ({"balance": "weighted", "weights": "households=-1"}, "finite numbers ≥ 0"),
    ({"balance": "weighted"}, "needs --weights"),
    ({"balance": "households", "weights": "street_km=5"}, "--weights is for --balance weighted"),
    ({"balance": "persons"}, "--balance"),
])
def test_bad_balance_options_are_refused_with_what_and_where(jj, values, words):  # noqa: ANN001
    with pytest.raises(InputError, match=words):
        gl.draw_grids(jj, gl.PlanParams.parse(values))
    with pytest.raises(Exception, match="no grid plan yet"):
        gl.latest_plan_id(jj)


def test_split_of_a_population_plan_cuts_equal_persons_not_equal_households(jj, tmp_path):  # noqa: ANN001
    """split-grid on a population plan cuts parts of equal persons: on the grid where a cut into
    equal households (the same splitter on households, computed here) leaves the persons most
    unequal, the edit's parts are far more equal in persons (#15: a split by households was not
    caught before)."""
    from gridpatrol.gis.blocks import block_adjacency
    from gridpatrol.gis.partition import split_grid as split_blocks

    store = jj
    f = tmp_path / "register.csv"
    _register_csv(store, f)
    import_households(store, f)
    pid = gl.draw_grids(store, gl.PlanParams(balance="population", seed=1))
    blocks = gl.read_blocks(store, pid)
    metric = local_metric_crs(*blocks.union_all().centroid.coords[0])
    adj = block_adjacency(blocks, metric_crs=metric)
    gaps = {}
    for code, sub in blocks.groupby("grid_code"):
        if len(sub) < 4:
            continue
        sub = sub.reset_index(drop=True)
        pop = sub["population"].to_numpy()
        by_hh = split_blocks(sub, adj, 2, seed=1)
        by_pop = split_blocks(sub.assign(households=pop), adj, 2, seed=1)
        gaps[code] = (abs(pop[by_hh == 0].sum() - pop[by_hh == 1].sum()),
                      abs(pop[by_pop == 0].sum() - pop[by_pop == 1].sum()), pop.sum())
    code = max(gaps, key=lambda c: gaps[c][0] - gaps[c][1])
    hh_cut_gap, pop_cut_gap, total = gaps[code]
    assert hh_cut_gap > 2 * pop_cut_gap + 20, gaps[code]  # the grid tells the two cuts apart

    r = gl.split_grid(store, code, 2, force=True)
    p = gl.read_grids(store, r.plan_id).set_index("code").loc[r.changed_codes, "population"].to_numpy()
    assert len(p) == 2 and p.sum() == pytest.approx(total)
    assert abs(p[0] - p[1]) < 0.5 * hh_cut_gap, (p, gaps[code])
