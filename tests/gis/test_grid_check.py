"""check_plan finds every kind of planning-rule violation, with its location, and none on a clean plan."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from gridpatrol.gis.assign import crossing_buildings
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.grid_check import SEVERITY, check_plan
from gridpatrol.gis.gridcodes import assign_codes

from tests.gis.test_assign import nanjing  # noqa: F401  (shared fixture: real 玄武区 data)

LOOSE = {"min_households": 0, "max_households": 1e9}


@pytest.fixture(scope="module")
def plan(nanjing):  # noqa: F811  (the imported fixture)
    """A gap-free Voronoi plan of real 玄武区 with the real buildings it does not cut."""
    area, buildings, metric = nanjing
    areas = gpd.GeoDataFrame({"code": ["320102"]}, geometry=[area], crs="EPSG:4326")
    rng = np.random.default_rng(7)
    minx, miny, maxx, maxy = area.bounds
    pts = shapely.points(rng.uniform(minx, maxx, 120), rng.uniform(miny, maxy, 120))
    pts = pts[shapely.contains(area, pts)][:30]
    cells = shapely.intersection(
        shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=area)), area)
    # Cells clipped to a concave district can fall apart: each piece is a grid of its own.
    cells = shapely.get_parts(cells)
    grids = gpd.GeoDataFrame({"parent_code": ["320102"] * len(cells)}, geometry=cells, crs="EPSG:4326")
    grids["code"] = assign_codes(grids)
    inside = buildings[buildings.representative_point().within(area)].reset_index(drop=True)
    cut = crossing_buildings(inside, grids, metric_crs=metric)
    cut_positions = set(cut["building"])
    clean = inside.drop(index=list(cut_positions)).reset_index(drop=True)
    return {"areas": areas, "grids": grids, "buildings": clean, "cut": inside.iloc[sorted(cut_positions)],
            "outside": buildings[~buildings.representative_point().within(area)],
            "metric": metric}


def _check(p, grids=None, buildings=None, **kw):
    opts = {**LOOSE, **kw}
    return check_plan(p["grids"] if grids is None else grids, p["areas"],
                      p["buildings"] if buildings is None else buildings, metric_crs=p["metric"], **opts)


def test_clean_plan_is_valid(plan):
    res = _check(plan)
    assert res.valid, res.problems[["kind", "detail"]]
    assert len(res.problems) == 0
    assert res.summary["gap_m2"] < 1 and res.summary["overlap_m2"] < 1
    assert len(plan["buildings"]) > 200


def test_missing_grid_is_a_gap_of_its_area_at_its_place(plan):
    grids = plan["grids"]
    gone = grids.iloc[4]
    res = _check(plan, grids=grids.drop(index=grids.index[4]))
    gaps = res.problems[res.problems["kind"] == "gap"]
    want_m2 = gpd.GeoSeries([gone.geometry], crs="EPSG:4326").to_crs(plan["metric"]).area.iloc[0]
    assert len(gaps) == 1
    assert gaps["area_m2"].iloc[0] == pytest.approx(want_m2, rel=1e-6)
    assert gaps.geometry.iloc[0].representative_point().within(gone.geometry.buffer(1e-7))
    assert not res.valid
    # buildings of the removed grid are now in no grid
    n_in_gone = int(plan["buildings"].representative_point().within(gone.geometry).sum())
    assert res.summary["buildings_unassigned"] == n_in_gone


def test_overlap_and_outside_parent_are_measured(plan):
    grids = plan["grids"].copy()
    metric = plan["metric"]
    g_m = grids.to_crs(metric)
    area_m = plan["areas"].to_crs(metric).geometry.iloc[0]
    # a grid on the district's edge: grown by 25 m it overlaps its neighbours and leaves the district
    i = next(k for k in range(10, len(g_m)) if g_m.geometry.iloc[k].buffer(25.0).difference(area_m).area > 1_000)
    grown = g_m.geometry.iloc[i].buffer(25.0)
    g_m.loc[g_m.index[i], "geometry"] = grown
    res = _check(plan, grids=g_m.to_crs("EPSG:4326"), buildings=plan["buildings"].iloc[:0])
    overlaps = res.problems[res.problems["kind"] == "overlap"]
    others = g_m.drop(index=g_m.index[i]).geometry
    want = float(others.intersection(grown).area.sum())
    assert overlaps["area_m2"].sum() == pytest.approx(want, rel=1e-3)
    assert all(plan["grids"]["code"].iloc[i] in d for d in overlaps["detail"])
    outside = grown.difference(area_m).area
    assert outside > 1_000
    got_out = res.problems.loc[res.problems["kind"] == "outside_parent", "area_m2"].sum()
    assert got_out == pytest.approx(outside, rel=1e-3, abs=1.0)
    # the summary's totals are those of the problems listed
    assert res.summary["outside_parent_m2"] == pytest.approx(got_out, rel=1e-9)
    assert res.summary["overlap_m2"] == pytest.approx(overlaps["area_m2"].sum(), rel=1e-9)


def test_non_contiguous_grid_and_unknown_parent(plan):
    grids = plan["grids"].copy()
    a, b = grids.index[0], grids.index[1]
    far = grids.geometry.distance(grids.geometry.loc[a]).idxmax()
    grids.loc[a, "geometry"] = shapely.union_all([grids.geometry.loc[a], grids.geometry.loc[far]])
    grids = grids.drop(index=far)
    grids.loc[b, "parent_code"] = "320199"
    res = _check(plan, grids=grids, buildings=plan["buildings"].iloc[:0])
    kinds = res.problems.set_index("grid_code")["kind"]
    assert "non_contiguous" in set(res.problems.loc[res.problems["grid_code"] == grids.loc[a, "code"], "kind"])
    assert {"unknown_parent", "code_parent_mismatch"} <= set(kinds[kinds.index == grids.loc[b, "code"]])
    # the unknown-parent grid leaves a hole in 320102
    assert "gap" in set(res.problems["kind"])


def test_cut_buildings_are_listed_and_outside_buildings_ignored(plan):
    some_cut = plan["cut"].iloc[:2]
    outside = plan["outside"].iloc[:2]
    assert len(some_cut) == 2 and len(outside) == 2
    b = pd.concat([plan["buildings"], some_cut, outside], ignore_index=True)
    res = _check(plan, buildings=b)
    cut = res.problems[res.problems["kind"] == "building_cut"]
    assert sorted(cut["detail"].str.extract(r"building (\S+) is cut")[0]) == sorted(
        f"{t}/{i}" for t, i in zip(some_cut["osm_type"], some_cut["osm_id"]))
    # Buildings outside the planning area belong to no grid by design: not a problem.
    assert (res.problems["kind"] == "building_unassigned").sum() == 0
    assert not res.valid
    assert res.summary["buildings_cut"] == 2 and res.summary["buildings_unassigned"] == 0


def test_household_band_with_single_block_grids_exempt_not_hidden(plan):
    hh = plan["buildings"]["households"]
    res = _check(plan, min_households=float(hh.sum()) / 30, max_households=float(hh.sum()) / 30 * 1.5)
    out = res.problems[res.problems["kind"] == "households_out_of_band"]
    assert len(out) > 0 and not res.valid
    # Declare every out-of-band grid a single block: they become exempt (info) and the plan valid.
    codes = list(out["grid_code"])
    blocks = pd.DataFrame({"grid_code": list(plan["grids"]["code"]) + [c for c in plan["grids"]["code"]
                                                                       if c not in codes]})
    res2 = _check(plan, blocks=blocks, min_households=float(hh.sum()) / 30,
                  max_households=float(hh.sum()) / 30 * 1.5)
    ex = res2.problems[res2.problems["kind"] == "households_exempt"]
    assert sorted(ex["grid_code"]) == sorted(codes)
    assert (ex["severity"] == "info").all() and SEVERITY["households_exempt"] == "info"
    assert res2.valid and res2.summary["exempt_grids"] == len(codes)


def test_duplicate_and_malformed_codes(plan):
    grids = plan["grids"].copy()
    grids.loc[grids.index[1], "code"] = grids["code"].iloc[0]
    grids.loc[grids.index[2], "code"] = "G-2"
    res = _check(plan, grids=grids, buildings=plan["buildings"].iloc[:0])
    assert (res.problems["kind"] == "duplicate_code").sum() == 2
    assert list(res.problems.loc[res.problems["kind"] == "malformed_code", "grid_code"]) == ["G-2"]


def test_problem_locations_are_lon_lat(plan):
    res = _check(plan, grids=plan["grids"].iloc[1:])
    assert res.problems.crs.equals("EPSG:4326")
    minx, miny, maxx, maxy = plan["areas"].total_bounds
    b = res.problems.total_bounds
    assert minx - 0.01 <= b[0] and b[2] <= maxx + 0.01 and miny - 0.01 <= b[1] and b[3] <= maxy + 0.01


def test_building_on_an_area_boundary_is_reported_not_an_error(plan):
    """Two areas split at a line through a building: no grid boundary can avoid cutting it."""
    b = plan["buildings"].iloc[[0]]
    x = b.geometry.iloc[0].centroid.x
    minx, miny, maxx, maxy = b.geometry.iloc[0].buffer(0.002).bounds
    west, east = shapely.box(minx, miny, x, maxy), shapely.box(x, miny, maxx, maxy)
    areas = gpd.GeoDataFrame({"code": ["320102001", "320102002"]}, geometry=[west, east], crs="EPSG:4326")
    grids = gpd.GeoDataFrame({"code": ["320102001000001", "320102002000001"],
                              "parent_code": ["320102001", "320102002"]}, geometry=[west, east], crs="EPSG:4326")
    res = check_plan(grids, areas, b, metric_crs=plan["metric"], **LOOSE)
    kinds = res.problems["kind"].tolist()
    assert kinds == ["building_on_area_boundary"] and res.valid


def test_forced_deviations_are_exempt_with_reason_and_bound_like_the_partition():
    """check_plan finds the same exemptions from grid geometry alone as grid_table does from the
    block graph: a single block above the window, and a piece whose total (460) no grid count
    splits into 300–330; the bound is recomputed by looping over every grid count."""
    from gridpatrol.gis.blocks import block_adjacency
    from gridpatrol.gis.grid_metrics import grid_table
    from gridpatrol.gis.partition import partition_blocks

    utm = 32648
    boxes, hh = [], []
    for i in range(23):  # piece A: 460 households, cut off from the rest
        boxes.append(shapely.box(400_000 + (i % 5) * 100, 3_389_000 - (i // 5) * 100,
                                 400_100 + (i % 5) * 100, 3_389_100 - (i // 5) * 100))
        hh.append(20.0)
    for i in range(61):  # piece B: 1,260 households (4 × 315) plus one 400-household block (a tower)
        boxes.append(shapely.box(402_000 + (i % 10) * 100, 3_389_000 - (i // 10) * 100,
                                 402_100 + (i % 10) * 100, 3_389_100 - (i // 10) * 100))
        hh.append(400.0 if i == 0 else 21.0)
    blocks = gpd.GeoDataFrame({"block_id": np.arange(1, len(boxes) + 1), "households": hh},
                              geometry=gpd.GeoSeries(boxes, crs=utm)).to_crs(4326)
    graph = block_adjacency(blocks, metric_crs=utm)
    labels = partition_blocks(blocks, graph)
    table = grid_table(blocks, labels, metric_crs=utm, adjacency=graph)
    area = shapely.union_all(blocks.geometry.to_numpy())
    areas = gpd.GeoDataFrame({"code": ["510108"]}, geometry=[area], crs="EPSG:4326")
    grids = table.assign(parent_code="510108")[["grid", "households", "parent_code", "geometry"]]
    grids["code"] = assign_codes(grids)
    code_of = dict(zip(grids["grid"], grids["code"]))
    per_block = pd.DataFrame({"grid_code": [code_of[lab] for lab in labels]})
    res = check_plan(grids.drop(columns=["grid"]), areas, None, blocks=per_block, metric_crs=utm,
                     recount_households=False, target_households=300)
    assert res.valid, res.problems[["kind", "detail"]]
    ex_table = set(grids.loc[table["exempt"].to_numpy(), "code"])
    assert len(ex_table) == 2
    listed = res.problems[res.problems["kind"].isin(["deviation_exempt", "households_exempt"])]
    assert set(listed["grid_code"]) == ex_table
    # each listed grid carries its own households and deviation (as the problems' GeoJSON shows them)
    hh_of = dict(zip(grids["code"], grids["households"]))
    assert set(listed["kind"]) == {"deviation_exempt"}  # both in the band (400 and 460), outside the window
    for code, kind, got_hh, pct in listed[["grid_code", "kind", "households", "deviation_pct"]].itertuples(index=False):
        assert got_hh == pytest.approx(hh_of[code]), kind
        assert pct == pytest.approx(abs(hh_of[code] - 300) / 3), kind
    assert (listed["severity"] == "info").all()
    assert res.summary["deviation_exempt_by_reason"] == {"piece_total": 1, "single_block": 1}
    # bounds: the tower's own deviation; for the 460 piece the least |460/k − 300| over band k
    ks = [k for k in range(1, 24) if 300 <= 460 / k <= 500]
    assert ks == [1]
    assert np.isclose(res.summary["forced_deviation_bound"], max(100 / 300, abs(460 / ks[0] - 300) / 300))
    assert "53.3 %" in " ".join(listed["detail"]) and "33.3 %" in " ".join(listed["detail"])
    assert res.summary["worst_deviation_non_exempt"] <= 0.1 + 1e-9
    assert np.isclose(res.summary["worst_deviation_all"], 160 / 300)
    # without a target no window is checked: nothing is listed beyond the band rule
    res2 = check_plan(grids.drop(columns=["grid"]), areas, None, blocks=per_block, metric_crs=utm,
                      recount_households=False)
    assert (res2.problems["kind"] == "deviation_exempt").sum() == 0


def test_grids_outside_the_window_are_listed_as_deviation_warnings(plan, tmp_path):
    """A plan whose grids are all in the band 300–500 but some more than 10 % off the target 300
    stays valid, and each such grid (not exempt) is listed as a ``deviation`` warning with its
    households, the window and its deviation, in the problems and in the GeoJSON written from them."""
    grids = plan["grids"].copy()
    # the stored households of the plan (as the store's plans keep them): 300–489.5
    hh = pd.Series(300 + (np.arange(len(grids)) * 37 % 190) + 0.5, index=grids["code"].to_numpy())
    grids["households"] = hh.to_numpy()
    res = _check(plan, grids=grids, buildings=plan["buildings"].iloc[:0], recount_households=False,
                 min_households=300, max_households=500, target_households=300)
    assert res.valid, res.problems[["kind", "detail"]]
    exempt = set(res.problems.loc[res.problems["kind"] == "deviation_exempt", "grid_code"])
    off = hh[(hh > 330) & ~hh.index.isin(list(exempt))]
    dev = res.problems[res.problems["kind"] == "deviation"].set_index("grid_code")
    assert len(off) >= 10 and len(exempt) <= 3
    assert set(dev.index) == set(off.index)
    assert (dev["severity"] == "warning").all() and SEVERITY["deviation"] == "warning"
    for code, want in off.items():
        assert dev.loc[code, "households"] == pytest.approx(want)
        assert dev.loc[code, "deviation_pct"] == pytest.approx((want - 300) / 3)
        assert f"{want:.1f} households" in dev.loc[code, "detail"]
        assert "window 300–330" in dev.loc[code, "detail"]
        assert f"{(want - 300) / 3:.1f} % off the target 300" in dev.loc[code, "detail"]
    assert res.summary["deviation_grids"] == len(off)
    assert res.summary["worst_deviation_non_exempt"] == pytest.approx(
        float(hh[~hh.index.isin(list(exempt))].max() - 300) / 300)
    out = tmp_path / "problems.geojson"
    res.problems.to_file(out, driver="GeoJSON")
    back = gpd.read_file(out)
    back = back[back["kind"] == "deviation"].set_index("grid_code")
    assert set(back.index) == set(off.index)
    assert np.allclose(back.loc[off.index, "households"], off.to_numpy())
    assert np.allclose(back.loc[off.index, "deviation_pct"], (off.to_numpy() - 300) / 3)
    # a grid outside the band is an error (listed once, with its deviation), not a warning
    res2 = _check(plan, grids=grids, buildings=plan["buildings"].iloc[:0], recount_households=False,
                  min_households=300, max_households=450, target_households=300)
    above = res2.problems[res2.problems["kind"] == "households_out_of_band"].set_index("grid_code")
    assert not res2.valid and set(above.index) == set(hh[hh > 450].index)
    assert not set(above.index) & set(res2.problems.loc[res2.problems["kind"] == "deviation", "grid_code"])
    _each_at_its_grid(res2.problems, grids)
    assert np.allclose(above["deviation_pct"], (hh[above.index].to_numpy() - 300) / 3)
    # without a target no window is checked
    res3 = _check(plan, grids=grids, buildings=plan["buildings"].iloc[:0], recount_households=False,
                  min_households=300, max_households=500)
    assert (res3.problems["kind"] == "deviation").sum() == 0 and res3.valid


def _each_at_its_grid(problems, grids):
    """Every problem of one grid is shown at a point of that grid (where the map puts its marker)."""
    geom_of = dict(zip(grids["code"], grids.geometry))
    assert len(problems)
    for kind, code, geom in problems[["kind", "grid_code", "geometry"]].itertuples(index=False):
        assert geom is not None and not geom.is_empty, (kind, code)
        assert geom_of[code].buffer(1e-7).contains(geom), (kind, code)


def _stored(plan, households, **cols):
    """The plan's grids with stored households (and other stored columns), as the store keeps them."""
    grids = plan["grids"].copy()
    grids["households"] = households
    for k, v in cols.items():
        grids[k] = v
    return grids


def test_the_balance_window_edges_are_inside_and_one_household_beyond_is_a_deviation(plan):
    """Band 250–500, target 300: the window is 270–330 (target ±10 %). A grid at exactly 270 or
    330 households is in the window (no warning); 269 or 331 is one household outside it, and
    is listed as a ``deviation`` warning; the summary counts those two only."""
    n = len(plan["grids"])
    hh = np.full(n, 300.0)
    hh[[2, 3, 4, 5]] = [270.0, 330.0, 269.0, 331.0]
    grids = _stored(plan, hh)
    res = _check(plan, grids=grids, buildings=plan["buildings"].iloc[:0], recount_households=False,
                 min_households=250, max_households=500, target_households=300)
    assert res.valid, res.problems[["kind", "detail"]]
    assert set(res.problems["kind"]) == {"deviation"}
    codes = grids["code"].to_numpy()
    dev = res.problems.set_index("grid_code")
    assert sorted(dev.index) == sorted([codes[4], codes[5]])
    assert "269.0 households, outside the window 270–330: 10.3 % off the target 300" in dev.loc[codes[4], "detail"]
    assert "331.0 households, outside the window 270–330: 10.3 % off the target 300" in dev.loc[codes[5], "detail"]
    assert res.summary["deviation_grids"] == 2
    assert res.summary["share_in_window_non_exempt"] == pytest.approx((n - 2) / n)
    assert res.summary["worst_deviation_non_exempt"] == pytest.approx(31 / 300)


def test_hard_caps_hold_at_the_cap_and_name_their_option_just_above_it(plan):
    """A grid at exactly --max-street-m / --max-area-m2 / --max-route-min is no error; one just
    above (1 m, 1 m², 10 % of the patrol) is an error that names the option to change; a grid
    that is one block over a cap is exempt (info) with its own value as the bound."""
    n = len(plan["grids"])
    street = np.full(n, 500.0)
    area = np.full(n, 5_000.0)
    minutes = np.full(n, 30.0)
    street[[1, 2]] = [1_000.0, 1_001.0]
    area[[3, 4]] = [9_000.0, 9_001.0]
    minutes[[5, 6]] = [60.0, 66.0]
    street[7] = 2_500.0  # one block: exempt
    minutes[7] = 90.0  # and its patrol too
    grids = _stored(plan, np.full(n, 300.0), street_m=street, area_m2=area)
    codes = grids["code"].to_numpy()
    blocks = pd.DataFrame({"grid_code": [*codes, *(c for c in codes if c != codes[7])]})  # two blocks each but grid 7
    res = _check(plan, grids=grids, buildings=plan["buildings"].iloc[:0], recount_households=False, blocks=blocks,
                 max_street_m=1_000, max_area_m2=9_000, max_route_min=60, route_minutes=minutes)
    got = {(k, c): d for k, c, d in res.problems[["kind", "grid_code", "detail"]].itertuples(index=False)}
    assert set(got) == {("over_street_cap", codes[2]), ("over_area_cap", codes[4]),
                        ("over_route_cap", codes[6]), ("cap_exempt", codes[7]), ("route_exempt", codes[7])}
    assert "1,001 m of streets, over the hard cap 1,000 (--max-street-m)" in got["over_street_cap", codes[2]]
    assert "9,001 m² of area, over the hard cap 9,000 (--max-area-m2)" in got["over_area_cap", codes[4]]
    assert "66.0 min on foot, over the hard cap 60 min (--max-route-min)" in got["over_route_cap", codes[6]]
    assert "one block with 2,500 m of streets" in got["cap_exempt", codes[7]]
    assert "lower bound 2,500" in got["cap_exempt", codes[7]]
    assert "one block whose patrol takes 90.0 min on foot, over the cap 60 min" in got["route_exempt", codes[7]]
    assert not res.valid and res.summary["errors"] == 3
    _each_at_its_grid(res.problems, grids)


def test_a_grid_below_the_band_that_no_merge_can_absorb_under_a_cap_is_exempt_and_says_why(plan):
    """Every grid has 900 m of streets and the cap is 1,000 m: merging any two gives 1,800 m
    (180 % of the cap), so a grid below the band cannot be fixed. It is exempt (info), and the
    reason says so; an empty grid (0 households: streets or land without homes) says that too."""
    n = len(plan["grids"])
    hh = np.full(n, 400.0)
    hh[[2, 3]] = [0.0, 100.0]
    grids = _stored(plan, hh, street_m=np.full(n, 900.0))
    codes = grids["code"].to_numpy()
    res = _check(plan, grids=grids, buildings=plan["buildings"].iloc[:0], recount_households=False,
                 min_households=300, max_households=500, max_street_m=1_000)
    assert res.valid, res.problems[["kind", "detail"]]
    ex = res.problems[res.problems["kind"] == "households_exempt"].set_index("grid_code")
    assert sorted(ex.index) == sorted([codes[2], codes[3]])
    assert (ex["severity"] == "info").all()
    merge = ("merging it into any neighbouring grid breaks a hard cap or the band's upper end; "
             "the least merge over a cap reaches 180 % of it")
    assert f"(exempt: it holds no households (streets or land without homes) and {merge})" in ex.loc[codes[2], "detail"]
    assert f"(exempt: {merge})" in ex.loc[codes[3], "detail"]
    assert ex.loc[codes[2], "households"] == 0 and ex.loc[codes[3], "households"] == 100


def test_buildings_of_the_first_grid_are_in_it(plan):
    """The grids' order does not matter: with the grid holding the most buildings first, every
    building is still in a grid and the plan is as valid as before."""
    grids = plan["grids"]
    pts = plan["buildings"].representative_point()
    n_in = [int(pts.within(geom).sum()) for geom in grids.geometry]
    first = int(np.argmax(n_in))
    assert n_in[first] > 0
    res = _check(plan, grids=grids.iloc[[first, *(i for i in range(len(grids)) if i != first)]])
    assert res.valid, res.problems[["kind", "detail"]]
    assert res.summary["buildings_unassigned"] == 0 and len(res.problems) == 0


def test_the_planners_exempt_column_exempts_its_grids_from_the_band(plan):
    """A plan's ``exempt`` column (set by the planner's tool, missing for most grids) exempts the
    grids it marks: one below the band and marked is listed as exempt (info), one below and not
    marked is an error."""
    n = len(plan["grids"])
    hh = np.full(n, 400.0)
    hh[[2, 3]] = [100.0, 100.0]
    exempt = pd.array([pd.NA] * n, dtype="boolean")
    exempt[2], exempt[3], exempt[5] = True, False, True
    grids = _stored(plan, hh, exempt=exempt)
    codes = grids["code"].to_numpy()
    res = _check(plan, grids=grids, buildings=plan["buildings"].iloc[:0], recount_households=False,
                 min_households=300, max_households=500)
    got = dict(zip(res.problems["grid_code"], res.problems["kind"]))
    assert got == {codes[2]: "households_exempt", codes[3]: "households_out_of_band"}
    assert not res.valid and res.summary["errors"] == 1 and res.summary["exempt_grids"] == 1


@pytest.mark.parametrize("col", ["code", "parent_code"])
def test_grids_without_code_or_parent_code_are_refused_saying_what_a_plan_needs(plan, col):
    """A plan file without a ``code`` or ``parent_code`` column is refused (InputError: exit 2,
    HTTP 400) with a message that names the column and says what a plan's grids need."""
    with pytest.raises(InputError) as err:
        _check(plan, grids=plan["grids"].drop(columns=[col]), buildings=plan["buildings"].iloc[:0])
    assert str(err.value) == f"grids have no {col!r} column (a plan's grids need code and parent_code)"


def test_an_invalid_grid_geometry_is_listed_with_shapelys_reason_at_its_grid(plan):
    """A grid drawn with a self-intersecting outline (two corners swapped: a digitising slip) is
    listed as ``invalid_geometry`` (an error) with GEOS's reason, at a point of that grid; the
    other grids are checked as before."""
    grids = plan["grids"].copy()
    i = 6
    ring = list(grids.geometry.iloc[i].exterior.coords)[:-1]
    k = int(np.argmax([np.hypot(x1 - x0, y1 - y0) for (x0, y0), (x1, y1) in zip(ring, ring[1:])]))
    ring[k], ring[k + 1] = ring[k + 1], ring[k]
    bad = shapely.Polygon(ring)
    assert not bad.is_valid and "Self-intersection" in shapely.is_valid_reason(bad)
    grids.loc[grids.index[i], "geometry"] = bad
    code = grids["code"].iloc[i]
    res = _check(plan, grids=grids, buildings=plan["buildings"].iloc[:0])
    inv = res.problems[res.problems["kind"] == "invalid_geometry"]
    assert list(inv["grid_code"]) == [code]
    assert inv["detail"].iloc[0].startswith(f"grid {code}: Self-intersection[")
    assert (inv["severity"] == "error").all() and not res.valid
    assert shapely.make_valid(bad).buffer(1e-7).contains(inv.geometry.iloc[0])
    assert res.summary["problems_by_kind"]["invalid_geometry"] == 1


def test_stored_households_that_are_not_numbers_count_as_none(plan):
    """Households stored as text (a plan read from a file's attribute table): numbers in text
    are read as numbers, a blank or a word as 0 households, so the grid is listed below the band
    rather than the check failing."""
    n = len(plan["grids"])
    hh = np.array(["400"] * n, dtype=object)
    hh[[2, 3, 4]] = ["", "n/a", "310.5"]
    grids = _stored(plan, hh)
    codes = grids["code"].to_numpy()
    res = _check(plan, grids=grids, buildings=plan["buildings"].iloc[:0], recount_households=False,
                 min_households=300, max_households=500)
    got = res.problems.set_index("grid_code")
    assert sorted(got.index) == sorted([codes[2], codes[3]])
    assert set(got["kind"]) == {"households_out_of_band"} and not res.valid
    assert (got["households"] == 0).all()
    assert f"grid {codes[3]} has 0 households, outside 300–500" in got.loc[codes[3], "detail"]


def test_a_grid_at_the_bands_lower_end_is_not_exempted_by_the_caps(plan):
    """Band 250–500, target 300 (window 270–330), every grid 900 m of streets under a 1,000 m cap:
    no merge is possible. A grid at 249 households is below the band and forced there by the cap
    (exempt, info); a grid at exactly 250 is in the band, so the cap forces nothing: it is a
    ``deviation`` warning (outside the window, no exemption applies)."""
    n = len(plan["grids"])
    hh = np.full(n, 300.0)
    hh[[2, 3]] = [250.0, 249.0]
    grids = _stored(plan, hh, street_m=np.full(n, 900.0))
    codes = grids["code"].to_numpy()
    res = _check(plan, grids=grids, buildings=plan["buildings"].iloc[:0], recount_households=False,
                 min_households=250, max_households=500, target_households=300, max_street_m=1_000)
    assert res.valid, res.problems[["kind", "detail"]]
    got = {(k, c): d for k, c, d in res.problems[["kind", "grid_code", "detail"]].itertuples(index=False)}
    assert set(got) == {("deviation", codes[2]), ("households_exempt", codes[3])}
    assert "250.0 households, outside the window 270–330: 16.7 % off the target 300" in got["deviation", codes[2]]
    assert "the least merge over a cap reaches 180 % of it" in got["households_exempt", codes[3]]
    assert res.summary["deviation_grids"] == 1 and res.summary["exempt_grids"] == 1


def test_the_window_ends_at_the_bands_upper_end_when_that_is_below_target_plus_10_percent(plan):
    """Band 250–320, target 300: the window is 270–320 (target ±10 %, inside the band). A grid at
    320 is in it; 269 is a ``deviation`` whose text gives the window 270–320; 321 is outside the
    band (an error)."""
    n = len(plan["grids"])
    hh = np.full(n, 300.0)
    hh[[2, 3, 4]] = [320.0, 269.0, 321.0]
    grids = _stored(plan, hh)
    codes = grids["code"].to_numpy()
    res = _check(plan, grids=grids, buildings=plan["buildings"].iloc[:0], recount_households=False,
                 min_households=250, max_households=320, target_households=300)
    got = {(k, c): d for k, c, d in res.problems[["kind", "grid_code", "detail"]].itertuples(index=False)}
    assert set(got) == {("deviation", codes[3]), ("households_out_of_band", codes[4])}
    assert "269.0 households, outside the window 270–320: 10.3 % off the target 300" in got["deviation", codes[3]]
    assert "321 households, outside 250–320" in got["households_out_of_band", codes[4]]


def _empty_grid_plan():
    """Three 100 m blocks in a row (EPSG:4326 from UTM 50N): block 1 with 400 households and 400 m
    of streets, blocks 2 and 3 without households, 600 m of streets each. Grid A is block 1, grid B
    blocks 2 and 3 (0 households)."""
    utm = 32650
    boxes = [shapely.box(660_000 + k * 100, 3_549_000, 660_100 + k * 100, 3_549_100) for k in range(3)]
    blocks = gpd.GeoDataFrame({"block_id": [1, 2, 3], "households": [400.0, 0.0, 0.0],
                               "street_m": [400.0, 600.0, 600.0]},
                              geometry=gpd.GeoSeries(boxes, crs=utm)).to_crs(4326)
    grids = gpd.GeoDataFrame({"parent_code": ["320102", "320102"], "households": [400.0, 0.0]},
                             geometry=gpd.GeoSeries([boxes[0], shapely.union_all(boxes[1:])], crs=utm)).to_crs(4326)
    grids["code"] = assign_codes(grids)
    blocks["grid_code"] = [grids["code"].iloc[0], grids["code"].iloc[1], grids["code"].iloc[1]]
    areas = gpd.GeoDataFrame({"code": ["320102"]}, geometry=[shapely.union_all(grids.geometry.to_numpy())],
                             crs="EPSG:4326")
    return grids, areas, blocks, utm


@pytest.mark.parametrize("caps, cap_text", [
    ({"max_street_m": 1_000}, "over the hard cap 1,000 (--max-street-m)"),
    ({"max_route_min": 16}, "over the hard cap 1,200 (--max-route-min 16 (a patrol walks at least its blocks' "
                            "streets, 75 m a minute))"),
    ({"max_street_m": 1_000, "max_route_min": 16}, "over the hard cap 1,000 (--max-street-m)"),
])
def test_an_empty_grid_that_no_plan_within_the_street_cap_can_fill_is_exempt_with_its_proof(caps, cap_text):
    """Grid B has no households, and its block 3 is 1,600 m of streets from the nearest block
    with households (its own 600 m, block 2's 600 m, block 1's 400 m): any grid holding block 3
    and households breaks a street cap of 1,000 m (or a 16-minute patrol: 1,200 m at 75 m a
    minute). So B is exempt (info) with that proof and the option to change, and the plan is valid;
    without a cap, B is an error."""
    grids, areas, blocks, utm = _empty_grid_plan()
    code_b = grids["code"].iloc[1]
    res = check_plan(grids, areas, None, blocks=blocks, metric_crs=utm, recount_households=False,
                     min_households=300, max_households=500, **caps)
    assert res.valid, res.problems[["kind", "detail"]]
    assert list(zip(res.problems["kind"], res.problems["grid_code"])) == [("households_exempt", code_b)]
    detail = res.problems["detail"].iloc[0]
    assert ("(exempt: it holds no households (streets or land without homes), and its block 3 is 1,600 m of "
            "streets from the nearest block with households: any grid holding both has at least that, "
            f"{cap_text}, so no plan within the caps gives it households)") in detail
    assert (res.summary["empty_grids"], res.summary["empty_grids_exempt"], res.summary["empty_grids_proven"]) == (1, 1, 1)
    plain = check_plan(grids, areas, None, blocks=blocks, metric_crs=utm, recount_households=False,
                       min_households=300, max_households=500)
    assert list(zip(plain.problems["kind"], plain.problems["grid_code"])) == [("households_out_of_band", code_b)]
    assert not plain.valid and plain.summary["empty_grids_proven"] == 0


def test_slivers_of_at_most_the_tolerance_are_noise_and_more_is_listed():
    """A plan in a metric CRS (UTM 50N, whole metres: areas exact): a 1 m² sliver outside the
    district, a 1 m² gap and a 1 m² overlap are at most the tolerance (1 m²) and ignored; 2 m²
    of each is listed with its area."""
    def plan_with(m2: float):
        area = shapely.box(660_000, 3_549_000, 660_200, 3_549_100)
        west = shapely.union_all([shapely.box(660_000, 3_549_000, 660_100, 3_549_100),
                                  shapely.box(660_000 - m2, 3_549_000, 660_000, 3_549_001)])  # outside
        east = shapely.union_all([shapely.box(660_100, 3_549_000, 660_200, 3_549_099),
                                  shapely.box(660_100 - m2, 3_549_000, 660_100, 3_549_001),  # overlaps west
                                  shapely.box(660_100 + m2, 3_549_099, 660_200, 3_549_100)])  # leaves a gap
        grids = gpd.GeoDataFrame({"parent_code": ["320102"] * 2}, geometry=[west, east], crs=32650)
        grids["code"] = assign_codes(grids)
        areas = gpd.GeoDataFrame({"code": ["320102"]}, geometry=[area], crs=32650)
        return check_plan(grids, areas, None, **LOOSE)

    quiet = plan_with(1.0)
    assert quiet.valid and len(quiet.problems) == 0, quiet.problems[["kind", "detail"]]
    loud = plan_with(2.0)
    got = dict(zip(loud.problems["kind"], loud.problems["area_m2"]))
    assert got == {"outside_parent": 2.0, "overlap": 2.0, "gap": 2.0} and not loud.valid
    assert loud.summary["outside_parent_m2"] == 2.0 and loud.summary["gap_m2"] == 2.0


def test_buildings_indexed_by_their_osm_id_are_checked_as_any(plan):
    """Buildings indexed by their OSM id and keeping it as a column (``set_index("osm_id",
    drop=False)``, a common way to read a buildings file): every building is still in its grid,
    and the cut ones are listed, as with a plain frame."""
    b = pd.concat([plan["buildings"], plan["cut"].iloc[:2]], ignore_index=True).set_index("osm_id", drop=False)
    res = _check(plan, buildings=b)
    assert res.summary["buildings_unassigned"] == 0 and res.summary["buildings_cut"] == 2
    assert set(res.problems["kind"]) == {"building_cut"}
