"""No grid of 0 households unless a cap forces it (#15): after draw-grids with caps, every grid of a
plan holds households, or check-grids lists it exempt with its reason, and the test confirms the
reason on its own: the block it names is farther (streets / area of a shortest chain of touching
blocks) from every block with households than the cap allows, or merging the grid into each
touching grid breaks a cap or the band's upper end. Generated cities whose households sit in a
few patches of empty land (seeds not used to tune the drawing) and 锦江区, whose extract holds
homes in a corner and km of streets without any."""
from __future__ import annotations

import json
import re

import networkx as nx
import numpy as np
import pytest
import shapely
from gridpatrol.layers import grids as gl

from tests.cached_stores import jinjiang_inputs, jinjiang_with_users
from tests.store_cache import open_filled

HIGH = 500.0  # the default band's upper end


def _hollow_city(store, monkeypatch, seed: int, blocks: int = 300, discs: int = 3) -> None:  # noqa: ANN001
    """A generated city of ~``blocks`` blocks (lumpy households) whose buildings are kept only in
    ``discs`` discs of a quarter of its width: streets and parks around them hold no households."""
    import gridpatrol.layers.synth_province as sp
    from gridpatrol.gis.synth_city import synth_city

    def hollow(*a, **k):  # noqa: ANN002, ANN003, ANN202
        c = synth_city(*a, **k)
        x0, y0, x1, _ = c.area.bounds
        rng = np.random.default_rng(a[1])
        pts = c.buildings.geometry.representative_point().to_numpy()
        keep = np.zeros(len(pts), dtype=bool)
        for _ in range(discs):
            centre = shapely.Point(rng.uniform(x0, x1), rng.uniform(y0, c.area.bounds[3]))
            keep |= shapely.distance(pts, centre) < 0.25 * (x1 - x0)
        c.buildings = c.buildings[keep].reset_index(drop=True)
        return c

    monkeypatch.setattr(sp, "synth_city", hollow)
    sp.load_province(store, 1, blocks, seed=seed, footprints="mixed", per_cell=9, tower_share=0.08)


def _block_graph(blocks) -> nx.Graph:  # noqa: ANN001
    """Blocks (rows) that share a boundary of positive length: what one polygon per grid needs."""
    geoms = blocks.geometry.to_numpy()
    g = nx.Graph()
    g.add_nodes_from(range(len(geoms)))
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    for i, j in zip(left.tolist(), right.tolist()):
        if i < j and shapely.length(shapely.intersection(geoms[i].boundary, geoms[j].boundary)) > 0.01:
            g.add_edge(i, j)
    return g


def _least_to_households(graph: nx.Graph, start: int, weight: np.ndarray, hh: np.ndarray) -> float:
    """Least total ``weight`` of a chain of touching blocks from ``start`` to a block with households."""
    dist = nx.single_source_dijkstra_path_length(graph, start, weight=lambda u, v, d: float(weight[v]))
    return min((d + float(weight[start]) for b, d in dist.items() if hh[b] > 0), default=float("inf"))


def _assert_no_unexplained_empty_grid(store, pid: int, caps: dict) -> dict:  # noqa: ANN001
    grids, blocks = gl.read_grids(store, pid), gl.read_blocks(store, pid)
    res, _ = gl.check_grids(store, pid)
    assert res.valid, res.problems[res.problems["severity"] == "error"]["detail"].tolist()
    metric = blocks.estimate_utm_crs()
    b = blocks.to_crs(metric).reset_index(drop=True)
    hh = b["households"].to_numpy(dtype=float)
    street, area = b["street_m"].to_numpy(dtype=float), b["area_m2"].to_numpy(dtype=float)
    graph = _block_graph(b)
    rows = res.problems.set_index("grid_code")
    empty = grids.loc[grids["households"] <= 0, "code"].astype(str).tolist()
    assert res.summary["empty_grids"] == len(empty) == res.summary["empty_grids_exempt"]
    per_grid = b.groupby("grid_code")[["households", "street_m", "area_m2"]].sum()
    gpoly = grids.to_crs(metric).set_index("code").geometry
    proven = 0
    for code in empty:
        detail = rows.loc[code, "detail"]
        assert rows.loc[code, "kind"] == "households_exempt" and "no households" in detail, detail
        m = re.search(r"its block (\d+) is ([\d,.]+) (m of streets|m² of area) from", detail)
        if m:  # the global proof: recomputed here on the blocks' own geometry
            proven += 1
            row = int(np.flatnonzero(b["block_id"].to_numpy() == int(m.group(1)))[0])
            assert b["grid_code"].iloc[row] == code
            col = "street_m" if m.group(3).startswith("m of") else "area_m2"
            least = _least_to_households(graph, row, street if col == "street_m" else area, hh)
            assert least == pytest.approx(float(m.group(2).replace(",", "")), abs=1.0)
            assert least > caps[{"street_m": "max_street_m", "area_m2": "max_area_m2"}[col]]
            continue
        # the local reason: every merge with a touching grid breaks a cap or the band's upper end
        others = [c for c in gpoly.index if c != code
                  and shapely.length(shapely.intersection(gpoly[code].boundary, gpoly[c].boundary)) > 0.01]
        assert others
        for o in others:
            s = per_grid.loc[code] + per_grid.loc[o]
            assert (s["street_m"] > caps["max_street_m"] or s["area_m2"] > caps["max_area_m2"]
                    or s["households"] > HIGH), (code, o, s.to_dict())
    assert res.summary["empty_grids_proven"] == proven
    # the proven least number of grids of 0 households any plan within the caps has (#15): never above
    # this plan's count, and draw-grids stored the same number
    bound = res.summary["empty_grids_lower_bound"]
    assert 0 <= bound <= len(empty)
    assert json.loads(gl.plan_row(store, pid)["metrics_json"])["empty_grids_lower_bound"] == bound
    return {"grids": len(grids), "empty": len(empty), "proven": proven, "bound": bound}


@pytest.mark.parametrize("store_url", ["gpkg"], indirect=True)
@pytest.mark.parametrize("seed", [4, 9])
def test_generated_hollow_cities_leave_no_unexplained_empty_grid(store, monkeypatch, seed):  # noqa: ANN001
    _hollow_city(store, monkeypatch, seed)
    caps = {"max_street_m": 1500.0, "max_area_m2": 150_000.0}
    pid = gl.draw_grids(store, gl.PlanParams(seed=1, **caps))
    facts = _assert_no_unexplained_empty_grid(store, pid, caps)
    assert facts["grids"] > 10
    print(f"hollow city {seed}: {facts['empty']} grids of 0 households ({facts['proven']} with a global proof), "
          f"proven lower bound {facts['bound']}")


def _count_solves(monkeypatch) -> list:  # noqa: ANN001
    """Calls of the proof of an area's least number of grids of 0 households from now on (each one runs)."""
    import gridpatrol.gis.partition.empty_bound as eb

    asked: list = []
    solve = eb.empty_grids_lower_bound
    monkeypatch.setattr(eb, "empty_grids_lower_bound", lambda *a, **k: asked.append(1) or solve(*a, **k))
    return asked


def test_check_reads_the_bound_the_draw_proved_until_a_block_changes(store, monkeypatch):  # noqa: ANN001
    """The proven least number of grids of 0 households is kept in the store by draw-grids (keyed by
    the digest of the area's blocks, caps, contiguity, seed and work): check-grids, of the plan or of an
    edit of it (the same blocks grouped otherwise), reads it instead of solving again, until one block's
    households change."""
    from gridpatrol.gis.errors import ConflictError
    from sqlalchemy import text

    _hollow_city(store, monkeypatch, 4, blocks=60, discs=1)
    caps = {"max_street_m": 1500.0, "max_area_m2": 150_000.0}
    pid = gl.draw_grids(store, gl.PlanParams(seed=1, **caps))
    drawn = json.loads(gl.plan_row(store, pid)["metrics_json"])["empty_grids_lower_bound"]
    assert drawn >= 1
    asked = _count_solves(monkeypatch)
    res, _ = gl.check_grids(store, pid)
    assert res.summary["empty_grids_lower_bound"] == drawn and res.summary["empty_grids"] >= drawn
    assert not asked
    largest = str(gl.read_blocks(store, pid)["grid_code"].value_counts().idxmax())
    try:
        edited = gl.split_grid(store, largest, 2, force=True).plan_id
    except ConflictError:
        edited = None  # refused by its check: nothing to check then
    if edited is not None:
        assert gl.check_grids(store, edited)[0].summary["empty_grids_lower_bound"] == drawn
        assert not asked
    blocks = gl.read_blocks(store, pid)
    home = int(blocks.loc[blocks["households"].idxmax(), "block_id"])
    with store.begin() as c:
        c.execute(text("UPDATE blocks SET households = households + 1 WHERE plan_id = :p AND block_id = :b"),
                  {"p": pid, "b": home})
    res, _ = gl.check_grids(store, pid)
    assert len(asked) == 1 and res.summary["empty_grids_lower_bound"] >= 0


@pytest.fixture
def jj(store_url):  # noqa: ANN001, ANN201
    """Chengdu's streets and buildings, 锦江区 as the district, no plan."""
    yield from open_filled(store_url, "jobs-jinjiang", jinjiang_with_users, jinjiang_inputs())


@pytest.mark.parametrize("store_url", ["gpkg"], indirect=True)
def test_jinjiang_with_caps_leaves_no_unexplained_empty_grid(jj, monkeypatch):  # noqa: ANN001
    caps = {"max_street_m": 3000.0, "max_area_m2": 400_000.0}
    pid = gl.draw_grids(jj, gl.PlanParams(seed=1, **caps))
    solves = _count_solves(monkeypatch)
    facts = _assert_no_unexplained_empty_grid(jj, pid, caps)
    assert not solves  # check-grids read the bound draw-grids proved (~30 s here): the same number
    # the proof of the least number (half a minute here) is for draw-grids and check-grids only: an edit
    # (checked before and after) and the map's problem layer never wait for it
    import gridpatrol.gis.partition.empty_bound as eb
    from gridpatrol.gis.errors import ConflictError
    from gridpatrol.layers.mapdata import plan_problems

    asked = []
    monkeypatch.setattr(eb, "plan_empty_bound", lambda *a, **k: asked.append(1) or (0, False, {}))
    largest = str(gl.read_blocks(jj, pid)["grid_code"].value_counts().idxmax())
    try:
        gl.split_grid(jj, largest, 2, force=True)
    except ConflictError:
        pass  # refused by the check after the split: checked before and after all the same
    assert plan_problems(jj, pid) is not None
    assert not asked
    # the greedy steps alone (absorb_empty, resplit_empty) leave 9 of 28 grids empty here; the exact
    # re-cut of each empty grid's neighbourhood (fill_empty) 7; the re-cut along chains to the homes
    # (fill_along_chains) 6; the plan grown anew from the homes (grow_from_homes: each household block
    # touching the outskirts roots a grid the blocks without households hang on) 2 (docs/partition.md);
    # the proven lower bound is 1: the capacity argument gives 0 (the household blocks touching the
    # outskirts could, as separate grids, take all of their streets), but the exact rooted model with no
    # grid of 0 households has no solution (CP-SAT proves it: none_empty_possible). So 1 or 2 is the least
    assert facts["empty"] <= 2
    assert facts["bound"] >= 1
    print(f"锦江区 with caps: {facts['empty']} grids of 0 households, proven lower bound {facts['bound']}")


@pytest.mark.parametrize("store_url", ["gpkg"], indirect=True)
def test_jinjiang_with_a_patrol_cap_leaves_few_empty_grids(jj):  # noqa: ANN001
    # --max-route-min 60 (seed 1) with the street and area caps: the plan grown anew from the homes
    # (grow_from_homes) had one try, refused as a whole when the exact patrol refused any grown grid (12 of
    # 34 grids of 0 households left, measured); now a refused grid gives up its farthest blocks and the rest
    # is solved again (docs/partition.md, "Grids grown from the homes")
    caps = {"max_street_m": 3000.0, "max_area_m2": 400_000.0}
    pid = gl.draw_grids(jj, gl.PlanParams(seed=1, max_route_min=60.0, **caps))
    grids = gl.read_grids(jj, pid)
    res, _ = gl.check_grids(jj, pid)
    assert res.valid, res.problems[res.problems["severity"] == "error"]["detail"].tolist()
    empty = grids.loc[grids["households"] <= 0, "code"].astype(str).tolist()
    assert res.summary["empty_grids"] == len(empty) == res.summary["empty_grids_exempt"]
    rows = res.problems.set_index("grid_code")
    for code in empty:
        assert rows.loc[code, "kind"] == "households_exempt" and "no households" in rows.loc[code, "detail"]
    # 7 of 33 measured, twice (docs/partition.md); 12 before. One of headroom: the exact patrol's rural-postman
    # step runs with a wall-clock limit (RouteMeter: 10 s a grid), so on a loaded machine a grid near 60 min may be
    # refused where it was accepted; 12 (the step refused as a whole) still fails
    assert len(empty) <= 8
    print(f"锦江区 with --max-route-min 60: {len(empty)} grids of 0 households of {len(grids)}")
