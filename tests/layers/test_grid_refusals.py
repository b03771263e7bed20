"""Redraw edits that would break a named rule of the plan are refused and change nothing (row
contents and plan versions, both stores); edits that keep every rule are written."""
from __future__ import annotations

import networkx as nx
import pytest
import shapely
from gridpatrol.gis.blocks import block_adjacency
from gridpatrol.gis.errors import ConflictError
from gridpatrol.layers import grids as plans
from gridpatrol.layers.models import Block, Grid, GridPlan
from sqlalchemy import select

from tests.cached_stores import BAND_400, jinjiang_band400, jinjiang_inputs
from tests.store_cache import fill_from_cache

BAND = plans.PlanParams(target_households=400, min_households=300, max_households=500, seed=1)
WINDOW = "300–500"  # how the household rule names the band in its message


@pytest.fixture
def drawn(store_url):  # noqa: ANN001, ANN201
    """One Chengdu district (锦江区 510104) drawn with the 300–500 household band: a copy of the
    cached store (tests/cached_stores.py), per test."""
    from gridpatrol.layers.store import open_store

    assert BAND == plans.PlanParams(**BAND_400)
    fill_from_cache(store_url, "jinjiang-band400", jinjiang_band400, jinjiang_inputs())
    store = open_store(store_url)
    assert plans.check_grids(store)[0].valid
    yield store
    store.dispose()


def _cell(v):  # noqa: ANN001, ANN202
    """A stored value in a comparable form (geometry elements as their bytes)."""
    data = getattr(v, "data", None)
    return bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else (str(data) if data is not None else v)


def _snapshot(store) -> dict:  # noqa: ANN001
    """Every row of the plan tables, column by column: what a refused edit must leave as it was."""
    with store.engine.connect() as c:
        return {t.__tablename__: [tuple(_cell(v) for v in row) for row in
                                  c.execute(select(t.__table__).order_by(t.__table__.c.id))]
                for t in (GridPlan, Grid, Block)}


def _grid_neighbours(grids) -> nx.Graph:  # noqa: ANN001
    """Grids sharing more than 1 m of boundary, computed here with shapely in metres."""
    gm = grids.to_crs(grids.estimate_utm_crs())
    geoms, codes = gm.geometry.to_numpy(), gm["code"].to_numpy()
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = a < b
    shared = shapely.length(shapely.intersection(shapely.boundary(geoms[a[keep]]), shapely.boundary(geoms[b[keep]])))
    graph = nx.Graph()
    graph.add_edges_from((codes[i], codes[j]) for i, j, s in zip(a[keep], b[keep], shared) if s > 1.0)
    return graph


def _refused(store, edit, match: str) -> ConflictError:  # noqa: ANN001
    """Run ``edit``, which must be refused with ``match`` in its message and change no stored row."""
    before, versions = _snapshot(store), plans.list_plans(store)
    with pytest.raises(ConflictError, match=match) as info:
        edit()
    assert _snapshot(store) == before
    assert plans.list_plans(store).equals(versions)
    return info.value


def test_edits_outside_the_household_band_are_refused_and_change_nothing(drawn):
    store = drawn
    grids = plans.read_grids(store)
    hh = dict(zip(grids["code"], grids["households"]))
    assert all(300 <= v <= 500 for c, v in hh.items() if not grids.set_index("code").loc[c, "exempt"])
    graph = _grid_neighbours(grids)
    a, b = sorted(next((u, v) for u, v in graph.edges if 300 <= hh[u] <= 500 and 300 <= hh[v] <= 500))
    # Merging two grids of 300–500 households makes one of 600–1000: the band is broken, in grid a.
    err = _refused(store, lambda: plans.merge_grids(store, [a, b]),
                   rf"edit refused, it would break the plan: grid {a} has {hh[a] + hh[b]:.0f} households, "
                   rf"outside {WINDOW}")
    assert "nothing was changed" in str(err)
    # Splitting a grid of at most 500 households in two leaves a part below 300.
    blocks = plans.read_blocks(store)
    n_blocks = blocks["grid_code"].value_counts()
    big = max((c for c in hh if n_blocks.get(c, 0) >= 4 and 300 <= hh[c] <= 500), key=lambda c: n_blocks[c])
    _refused(store, lambda: plans.split_grid(store, big, 2),
             rf"edit refused, it would break the plan: grid 510104\d+ has \d+ households, outside {WINDOW}")
    # --force accepts grids outside the band: the same merge is then written as a new version.
    p0 = plans.latest_plan_id(store)
    r = plans.merge_grids(store, [a, b], force=True)
    assert r.parent_plan_id == p0 and r.plan_id == p0 + 1 and r.removed_codes == [b]
    merged = plans.read_grids(store, r.plan_id).set_index("code")
    assert merged.loc[a, "households"] == pytest.approx(hh[a] + hh[b]) and b not in merged.index


def test_a_move_that_splits_a_grid_is_refused_and_a_legal_move_is_written(drawn):
    store = drawn
    grids = plans.read_grids(store)
    blocks = plans.read_blocks(store)
    adj = block_adjacency(blocks)
    gob = dict(zip(blocks["block_id"].astype(int), blocks["grid_code"]))
    hh_block = dict(zip(blocks["block_id"].astype(int), blocks["households"]))
    hh = dict(zip(grids["code"], grids["households"]))
    # A block whose grid falls in two without it (an articulation point), next to another grid.
    cut = None
    for code in sorted(hh):
        own = adj.subgraph([b for b, g in gob.items() if g == code])
        for x in sorted(nx.articulation_points(own)):
            other = sorted({gob[n] for n in adj[x]} - {code})
            if other:
                cut = (x, code, other[0])
                break
        if cut:
            break
    assert cut is not None, "510104 must have a grid that one boundary block holds together"
    x, src, dst = cut
    _refused(store, lambda: plans.move_blocks(store, dst, [x]), rf"move refused: it would split grid {src} "
             r"\(grids must stay in one piece\)")
    # A block that is no articulation point, whose move keeps both grids in the band, is written.
    legal = None
    for u, v in sorted(adj.edges):
        for blk, to in ((u, gob[v]), (v, gob[u])):
            frm = gob[blk]
            if frm == to:
                continue
            rest = adj.subgraph([b for b, g in gob.items() if g == frm and b != blk])
            if (len(rest) and nx.is_connected(rest) and hh_block[blk] > 0
                    and 300 <= hh[frm] - hh_block[blk] and hh[to] + hh_block[blk] <= 500):
                legal = (blk, frm, to)
                break
        if legal:
            break
    assert legal is not None, "some boundary block must be movable within the band"
    blk, frm, to = legal
    p0 = plans.latest_plan_id(store)
    r = plans.move_blocks(store, to, [blk])
    assert r.plan_id == p0 + 1 and set(r.changed_codes) == {frm, to}
    after = plans.read_grids(store, r.plan_id).set_index("code")
    assert after.loc[frm, "households"] == pytest.approx(hh[frm] - hh_block[blk])
    assert after.loc[to, "households"] == pytest.approx(hh[to] + hh_block[blk])
    moved = plans.read_blocks(store, r.plan_id)
    assert moved.set_index("block_id").loc[blk, "grid_code"] == to
    assert plans.check_grids(store)[0].valid
    # The old version is still there, unchanged.
    assert plans.read_grids(store, p0).set_index("code")["households"].to_dict() == pytest.approx(hh)


def test_a_rebalance_that_moves_nothing_writes_no_version(drawn):
    store = drawn
    grids = plans.read_grids(store)
    graph = _grid_neighbours(grids)
    noop = 0
    for a, b in sorted(graph.edges)[:6]:
        before, versions = _snapshot(store), len(plans.list_plans(store))
        r = plans.rebalance_grids(store, [a, b])
        if r.plan_id == r.parent_plan_id:
            noop += 1
            assert _snapshot(store) == before and r.changed_codes == [] and "no new version" in r.message
        else:
            assert len(plans.list_plans(store)) == versions + 1 and r.parent_plan_id < r.plan_id
    # the plan is drawn into the window: some neighbours have nothing to trade
    assert noop


def test_rebalancing_a_grid_without_blocks_is_refused_by_name_and_changes_nothing(drawn):
    """A grid whose blocks were all handed to a neighbour outside gridpatrol (a database edit): the
    rebalance names the grid and says why, and writes nothing."""
    from sqlalchemy import update

    store = drawn
    a, b = sorted(_grid_neighbours(plans.read_grids(store)).edges)[0]
    with store.begin() as c:
        c.execute(update(Block.__table__).where(Block.__table__.c.grid_code == b).values(grid_code=a))
    before, versions = _snapshot(store), len(plans.list_plans(store))
    with pytest.raises(ConflictError) as e:
        plans.rebalance_grids(store, [a, b])
    assert b in str(e.value) and "没有街区" in str(e.value) and a not in str(e.value).split("/")[0]
    assert _snapshot(store) == before and len(plans.list_plans(store)) == versions


def test_rebalance_brings_grids_in_the_band_back_into_the_window(drawn):
    """Two touching grids in the window; a block moved from one to the other leaves both in the
    band 300–500 but one outside the window 360–440: rebalance moves them back into the window
    (it aims at the window, not only the band) and writes a new version (#15)."""
    store = drawn
    grids = plans.read_grids(store).set_index("code")
    blocks = plans.read_blocks(store)
    hh = grids["households"].to_dict()
    lo, hi = 360, 440

    def in_window(x: float) -> bool:
        return lo - 1e-9 <= x <= hi + 1e-9

    graph = _grid_neighbours(grids.reset_index())
    adj = block_adjacency(blocks.to_crs(blocks.estimate_utm_crs()))
    code_of = dict(zip(blocks["block_id"], blocks["grid_code"]))
    hh_block = dict(zip(blocks["block_id"], blocks["households"]))
    chosen = None
    for u, v in adj.edges:
        a, b = code_of[u], code_of[v]
        for frm, to, blk in ((a, b, u), (b, a, v)):
            if frm == to or not graph.has_edge(frm, to) or not (in_window(hh[frm]) and in_window(hh[to])):
                continue
            h = hh_block[blk]
            if hh[to] + h > hi + 1 and hh[to] + h <= 500 and hh[frm] - h >= 300:
                chosen = (frm, to, blk)
                break
        if chosen:
            break
    assert chosen
    frm, to, blk = chosen
    try:
        plans.move_blocks(store, to, [int(blk)])
    except ConflictError:
        pytest.skip("the chosen move is refused (a grid would fall apart)")
    moved = plans.read_grids(store).set_index("code")["households"]
    assert not in_window(moved[to]) and 300 <= moved[to] <= 500 and 300 <= moved[frm] <= 500
    versions = len(plans.list_plans(store))
    r = plans.rebalance_grids(store, [frm, to])
    assert r.plan_id != r.parent_plan_id and len(plans.list_plans(store)) == versions + 1
    after = plans.read_grids(store, r.plan_id).set_index("code")["households"]
    assert in_window(after[frm]) and in_window(after[to])
    assert after[frm] + after[to] == pytest.approx(moved[frm] + moved[to])
