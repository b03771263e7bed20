"""Grid plans on both stores: draw on Chengdu and Nanjing, independent re-check of the exported
files, versioned redraw operations that keep the plan valid, refused edits that change nothing."""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.gis.errors import ConflictError, GridPatrolError, InputError
from gridpatrol.layers import grids as plans
from gridpatrol.layers.export import export_layer
from gridpatrol.layers.grids import edits as plan_edits
from gridpatrol.layers.importing import import_areas, import_osm
from gridpatrol.layers.models import Block, Grid, GridPlan
from sqlalchemy import func, select

from tests.cached_stores import CHENGDU_DISTRICTS, chengdu_five_districts, chengdu_inputs
from tests.conftest import data_path
from tests.store_cache import open_filled


@pytest.fixture
def chengdu_store(store_url):  # noqa: ANN001, ANN201
    """Chengdu's streets and its five central districts, no plan: a copy of the cached store."""
    yield from open_filled(store_url, "chengdu-five-districts", chengdu_five_districts, chengdu_inputs())


def _load_nanjing(store) -> None:
    import_osm(store, data_path("nanjing", "xuanwu.osm"))
    import_areas(store, data_path("nanjing", "320102.geojson"), crs="gcj02")


def _counts(store) -> dict:
    """Row counts of the plan tables and the newest plan id: what a refused edit must not change."""
    with store.engine.connect() as c:
        out = {t.__tablename__: c.execute(select(func.count()).select_from(t.__table__)).scalar_one()
               for t in (GridPlan, Grid, Block)}
        out["latest"] = c.execute(select(func.max(GridPlan.__table__.c.id))).scalar()
    return out


def _independent_recheck(store, tmp_path: Path) -> dict:
    """Export grids and buildings, then verify the plan with shapely only, on the files."""
    gpath, bpath = tmp_path / "grids.geojson", tmp_path / "buildings.gpkg"
    export_layer(store, "grids", gpath)
    export_layer(store, "buildings", bpath)
    grids = gpd.read_file(gpath)
    buildings = gpd.read_file(bpath)
    # Planning areas straight from the stored inputs: area ∩ the union of the OSM import coverage.
    areas = store.read_layer("areas")
    imports = store.read_layer("imports")
    cover = shapely.union_all(imports.geometry[imports["kind"] == "osm"].to_numpy())
    c = shapely.centroid(cover)
    metric = local_metric_crs(c.x, c.y)
    areas_m = gpd.GeoSeries(shapely.intersection(areas.geometry.to_numpy(), cover), crs=4326).to_crs(metric)
    area_by_code = dict(zip(areas["code"], areas_m))
    g_m = grids.to_crs(metric)
    geoms = g_m.geometry.to_numpy()

    # single-polygon grids
    assert (shapely.get_num_geometries(geoms) == 1).all()
    # nesting: every grid inside its parent area
    for code, parent, geom in zip(grids["code"], grids["parent_code"], geoms):
        assert shapely.difference(geom, area_by_code[parent]).area < 1.0, code
    # coverage: union equals the planning areas within 1 m² per km²
    used = sorted(set(grids["parent_code"]))
    target = shapely.union_all([area_by_code[p] for p in used])
    union = shapely.union_all(geoms)
    sym = shapely.symmetric_difference(union, target).area
    assert sym <= 1.0 * target.area / 1e6, (sym, target.area)
    # pairwise overlaps
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = a < b
    overlap = float(shapely.area(shapely.intersection(geoms[a[keep]], geoms[b[keep]])).sum())
    assert overlap < 1.0
    # every building inside the planning areas in exactly one grid, and its grid_code says which
    pts = shapely.point_on_surface(buildings.geometry.to_numpy())
    inside = shapely.contains(shapely.union_all(
        [shapely.intersection(a_, cover) for a_, c_ in zip(areas.geometry, areas["code"]) if c_ in used]), pts)
    hits = np.zeros(len(pts), dtype=int)
    first = np.full(len(pts), None, dtype=object)
    for code, geom in zip(grids["code"], grids.geometry):
        h = shapely.covers(geom, pts)
        first[h & (hits == 0)] = code
        hits += h
    assert (hits[inside] == 1).all()
    assert inside.sum() > 0
    assert (buildings["grid_code"].to_numpy()[inside] == first[inside]).all()
    return {"grids": len(grids), "buildings_checked": int(inside.sum()), "overlap_m2": overlap, "sym_m2": sym}


@pytest.mark.parametrize("city", ["chengdu", "nanjing"])
def test_draw_passes_check_and_independent_recheck(request, store_url, tmp_path, city):  # noqa: ARG001
    # store_url: parametrises the test over both store kinds (the store is chosen per city below)
    store = request.getfixturevalue("chengdu_store" if city == "chengdu" else "store")
    if city == "nanjing":
        _load_nanjing(store)
        # the Xuanwu extract covers 4 % of 玄武区 (the rest of the district has no data): refused
        # unless asked for, then drawn with the data_coverage warning
        with pytest.raises(InputError, match=r"area 320102: 4 % of 66\.7 km²"):
            plans.draw_grids(store)
    pid = plans.draw_grids(store, plans.PlanParams(allow_sparse=city == "nanjing"))
    res, checked = plans.check_grids(store)
    assert checked == pid
    coverage = res.problems[res.problems["kind"] == "data_coverage"]
    assert len(coverage) == (1 if city == "nanjing" else 0), coverage["detail"].tolist()
    assert res.valid, res.problems.loc[res.problems["severity"] == "error", ["kind", "detail"]].head(20)
    grids = plans.read_grids(store, pid)
    parents = set(grids["parent_code"])
    if city == "chengdu":
        assert parents == set(CHENGDU_DISTRICTS)
    else:
        assert parents == {"320102"}
    # every non-exempt grid within the band; exempt ones are listed, not hidden
    hh = grids["households"]
    out = ~hh.between(300, 500)
    assert (grids.loc[out, "exempt"]).all()
    listed = set(res.problems.loc[res.problems["kind"] == "households_exempt", "grid_code"])
    assert set(grids.loc[out, "code"]) == listed
    # per-grid metrics as stored agree with the blocks they are made of
    blocks = plans.read_blocks(store, pid)
    by_grid = blocks.groupby("grid_code")["households"].sum()
    assert np.allclose(grids.set_index("code")["households"], by_grid.reindex(grids["code"]).to_numpy())
    assert (grids["polsby_popper"].between(0, 1)).all() and (grids["area_m2"] > 0).all()
    m = plans.plan_row(store, pid)
    assert '"worst_deviation"' in m["metrics_json"] and '"boundary_on_street_share"' in m["metrics_json"]
    stats = _independent_recheck(store, tmp_path)
    assert stats["grids"] == len(grids)
    if city == "chengdu":
        # the balance window (target ±10 %): every grid not exempt by what the data force is in
        # it, for the default seed and the demo's seed 1 (which left 510108000000100 at 351.2
        # households, and seed 0 one at 426.2, before the exact neighbourhood re-splits)
        for seed in (0, 1):
            if seed:
                pid = plans.draw_grids(store, plans.PlanParams(seed=seed))
                res, _ = plans.check_grids(store)
                assert res.valid
                grids = plans.read_grids(store, pid)
            exempt = set(res.problems.loc[res.problems["kind"].isin(["deviation_exempt", "households_exempt"]),
                                          "grid_code"])
            ne = grids[~grids["code"].isin(list(exempt))]
            # 9 exempt (each with its proof) since duplicate footprints are merged at import (8 before).
            assert len(exempt) <= 10 and len(ne) > 250
            assert ne["households"].between(300, 330).all(), (seed, ne.loc[~ne["households"].between(300, 330),
                                                                           ["code", "households"]])
            assert (res.problems["kind"] == "deviation").sum() == 0
            assert res.summary["worst_deviation_non_exempt"] <= 0.1 + 1e-9


def test_redraw_operations_keep_the_plan_valid_and_refusals_change_nothing(chengdu_store, tmp_path):
    store = chengdu_store
    # A wider band than the default, so that split and merge results can lie inside it.
    params = plans.PlanParams(target_households=400, min_households=150, max_households=700, seed=1)
    p0 = plans.draw_grids(store, params)
    res, _ = plans.check_grids(store)
    assert res.valid, res.problems[["kind", "detail"]].head(20)
    total_hh = plans.read_grids(store)["households"].sum()

    def ctx():
        c = plan_edits._context(store, None)
        return c, plan_edits._grid_graph(c)

    # --- split the biggest multi-block grid in two
    c, gg = ctx()
    nb = c.blocks["grid_code"].value_counts()
    big = c.grids[c.grids["code"].isin(nb[nb >= 2].index) & (c.grids["households"] >= 300)]
    # The biggest grid of many blocks: two halves of it lie inside the 150–700 band, so the split
    # must be accepted (a refusal here is a failure, not a reason to try another grid).
    code = big.sort_values("households", ascending=False)["code"].iloc[0]
    assert 300 <= big.set_index("code").loc[code, "households"] <= 700 and nb[code] >= 4
    r = plans.split_grid(store, code, 2)
    assert r.parent_plan_id == p0 and len(r.changed_codes) == 2
    assert plans.check_grids(store)[0].valid
    g1 = plans.read_grids(store, r.plan_id)
    assert g1["households"].sum() == pytest.approx(total_hh)
    assert len(g1) == len(c.grids) + 1
    # the diff lists exactly the buildings that moved to the new code
    changes, summary = plans.diff_plans(store, p0, r.plan_id)
    new_code = (set(r.changed_codes) - {r.message.split()[1]}).pop()
    assert set(changes["grid_b"]) <= {new_code} and set(changes["grid_a"]) <= set(r.changed_codes)
    assert summary["households_changed"] == pytest.approx(changes["households"].sum())
    assert plans.read_grids(store, p0)["code"].tolist() == c.grids["code"].tolist()  # old plan readable

    # --- merge the adjacent pair (same area) with the fewest households
    c, gg = ctx()
    hh = dict(zip(c.grids["code"], c.grids["households"]))
    par = dict(zip(c.grids["code"], c.grids["parent_code"]))
    pairs = sorted((hh[a] + hh[b], a, b) for a, b in gg.edges if par[a] == par[b])
    # The touching pair with the fewest households: together inside the band, so it must merge.
    s0, a0, b0 = pairs[0]
    assert 150 <= s0 <= 700
    r = plans.merge_grids(store, [a0, b0])
    assert r.removed_codes == [max(a0, b0)] and r.changed_codes == [min(a0, b0)]
    assert plans.read_grids(store, r.plan_id).set_index("code").loc[min(a0, b0), "households"] == pytest.approx(s0)
    assert plans.check_grids(store)[0].valid

    # --- move a boundary block into a neighbouring grid
    c, gg = ctx()
    adj = plan_edits._block_graph(c, c.blocks)
    gob = dict(zip(c.blocks["block_id"], c.blocks["grid_code"]))
    hh = dict(zip(c.grids["code"], c.grids["households"]))
    bhh = dict(zip(c.blocks["block_id"], c.blocks["households"]))

    def legal(b, to) -> bool:  # noqa: ANN001
        """Same area, the source stays one piece and both grids stay inside the 150–700 band."""
        frm = gob[b]
        rest = adj.subgraph([x for x, g in gob.items() if g == frm and x != b])
        return (frm != to and par.get(frm) == par.get(to) and len(rest) > 0 and nx.is_connected(rest)
                and hh[frm] - bhh[b] >= 150 and hh[to] + bhh[b] <= 700)

    b0, to0 = next((b, gob[n]) for b, n in sorted(adj.edges) if legal(b, gob[n]))
    r = plans.move_blocks(store, to0, [b0])
    assert plans.read_blocks(store, r.plan_id).set_index("block_id").loc[b0, "grid_code"] == to0
    assert plans.check_grids(store)[0].valid

    # --- rebalance a grid with its neighbours of the same area
    c, gg = ctx()
    seed = c.grids.sort_values("households")["code"].iloc[0]
    group = [seed] + [n for n in gg[seed] if par.get(n) == par.get(seed)]
    if len(group) >= 2:
        r = plans.rebalance_grids(store, group)
        assert plans.check_grids(store)[0].valid
        assert plans.read_grids(store)["households"].sum() == pytest.approx(total_hh)

    # --- refused edits: nothing changes
    c, gg = ctx()
    codes = list(c.grids["code"])
    par = dict(zip(c.grids["code"], c.grids["parent_code"]))
    before = _counts(store)
    a = codes[0]
    far = next(x for x in codes if x != a and par[x] == par[a] and x not in gg[a])
    with pytest.raises(ConflictError, match="not adjacent"):
        plans.merge_grids(store, [a, far])
    cross = next(((u, v) for u, v in gg.edges if par[u] != par[v]), None)
    assert cross is not None, "five districts must have neighbouring grids across a district boundary"
    with pytest.raises(ConflictError, match="different areas"):
        plans.merge_grids(store, list(cross))
    gob = dict(zip(c.blocks["block_id"], c.blocks["grid_code"]))
    adj = plan_edits._block_graph(c, c.blocks)
    out_move = next((u, gob[v]) for u, v in adj.edges if par[gob[u]] != par[gob[v]])
    with pytest.raises(ConflictError, match="may not leave"):
        plans.move_blocks(store, out_move[1], [out_move[0]])
    assert _counts(store) == before

    # --- locking: a locked grid refuses edits until unlocked
    r = plans.set_locked(store, [a], True)
    assert plans.read_grids(store).set_index("code").loc[a, "locked"]
    before = _counts(store)
    neighbour = next(iter(gg[a]))
    for edit in (lambda: plans.split_grid(store, a, 2), lambda: plans.merge_grids(store, [a, neighbour]),
                 lambda: plans.rebalance_grids(store, [a, neighbour])):
        with pytest.raises(ConflictError, match="locked"):
            edit()
    assert _counts(store) == before
    plans.set_locked(store, [a], False)
    assert not plans.read_grids(store).set_index("code").loc[a, "locked"]
    assert plans.check_grids(store)[0].valid
    # every version is kept, chained by parent_plan_id
    lst = plans.list_plans(store)
    assert lst["plan"].tolist() == sorted(lst["plan"]) and lst["parent"].iloc[1:].notna().all()


def test_import_exported_grids_as_plan(store, tmp_path):
    _load_nanjing(store)
    pid = plans.draw_grids(store, plans.PlanParams(target_households=60, min_households=30, max_households=90,
                                                   allow_sparse=True))  # the extract covers 4 % of 玄武区
    path = tmp_path / "grids.geojson"
    export_layer(store, "grids", path)
    before = _counts(store)
    new = plans.import_grids(store, path)
    assert new == before["latest"] + 1
    assert plans.plan_row(store, new)["method"] == "import"
    res, _ = plans.check_grids(store, new)
    structural = res.problems[(res.problems["severity"] == "error")
                              & ~res.problems["kind"].str.startswith("households")]
    assert structural.empty, structural[["kind", "detail"]]
    changes, summary = plans.diff_plans(store, pid, new)
    assert summary["buildings_changed"] == 0 and len(changes) == 0
    # The imported plan is made of blocks again, nested in its grids, covering them.
    imp = plan_edits._context(store, new)
    assert len(imp.blocks) > 0 and set(imp.blocks["grid_code"]) == set(imp.grids["code"])
    grids_m = imp.grids.set_index("code").to_crs(imp.metric)
    for code, grp in imp.blocks.to_crs(imp.metric).groupby("grid_code"):
        g = grids_m.loc[code].geometry
        union = shapely.union_all(grp.geometry.to_numpy())
        # within 1 m², or 1 m² per km² (blocks are computed on a 1 cm grid in metres)
        assert union.symmetric_difference(g).area <= max(1.0, 1e-6 * g.area), code
    # …so it can be redrawn: split its biggest grid and the plan stays valid.
    big = imp.blocks["grid_code"].value_counts().index[0]
    split = plans.split_grid(store, big, 2, plan_id=new, force=True)
    res, _ = plans.check_grids(store, split.plan_id)
    structural = res.problems[(res.problems["severity"] == "error") & ~res.problems["kind"].str.startswith("households")]
    assert structural.empty, structural[["kind", "detail"]]
    # buildings name the blocks that hold them (move-blocks accepts way/<id> and names)
    ctx = plan_edits._context(store, pid)
    b = store.read_layer("buildings")
    b = b[b["estimate_method"] == "footprint"]
    pts = b.representative_point()
    inside = b[pts.within(shapely.union_all(ctx.blocks.geometry.to_numpy()))].iloc[:5]
    for _, row in inside.iterrows():
        want = [int(bid) for bid, geom in zip(ctx.blocks["block_id"], ctx.blocks.geometry)
                if geom.covers(row.geometry.representative_point())]
        assert plan_edits._resolve_blocks(store, ctx, [f"{row['osm_type']}/{row['osm_id']}"]) == want[:1]
    n = _counts(store)
    with pytest.raises(GridPatrolError, match="no building named"):
        plans.move_blocks(store, ctx.grids["code"].iloc[0], ["no such building"], plan_id=pid)
    assert _counts(store) == n

    # a broken file is refused and writes nothing
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
                   '"geometry": {"type": "Point", "coordinates": [118.79, 32.05]}}]}')
    n = _counts(store)
    with pytest.raises(GridPatrolError, match="not a polygon"):
        plans.import_grids(store, bad)
    assert _counts(store) == n


def test_redraw_keeps_locked_grids(store):
    _load_nanjing(store)
    # Targets well above the largest blocks, so that both plans are made of several blocks per grid.
    # The extract covers 4 % of 玄武区: drawn on purpose (allow_sparse).
    first = plans.PlanParams(target_households=60, min_households=30, max_households=90, allow_sparse=True)
    second = plans.PlanParams(target_households=120, min_households=60, max_households=180, seed=9, allow_sparse=True)
    p1 = plans.draw_grids(store, first)
    g1 = plans.read_grids(store, p1)
    metric = local_metric_crs(*g1.union_all().centroid.coords[0])
    g1m = g1.to_crs(metric)
    # Redraw without a lock first, to find a grid that the second parameters would change.
    p_free = plans.draw_grids(store, second)
    free = plans.read_grids(store, p_free).to_crs(metric).geometry
    changed = [c for c, g in zip(g1m["code"], g1m.geometry)
               if not any(g.symmetric_difference(f).area < 1.0 for f in free)]
    assert changed, "the second parameters must redraw some grid of the first plan"
    keep = changed[0]
    plans.set_locked(store, [keep], True, plan_id=p1)
    p2 = plans.draw_grids(store, second)
    g2 = plans.read_grids(store, p2).set_index("code")
    old = g1.set_index("code").loc[keep]
    assert g2.loc[keep, "locked"] and g2.loc[keep, "households"] == pytest.approx(old["households"])
    kept = gpd.GeoSeries([g2.loc[keep, "geometry"]], crs=4326).to_crs(metric).iloc[0]
    assert kept.symmetric_difference(g1m.set_index("code").loc[keep, "geometry"]).area < 1.0
    assert g2.index.is_unique
    res, _ = plans.check_grids(store, p2)
    assert not (res.problems["kind"].isin(["gap", "overlap", "duplicate_code", "building_cut"])).any()
