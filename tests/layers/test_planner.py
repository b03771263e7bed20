"""The workbench's block-move preview predicts the commit (totals and refusals) and writes nothing; undo/redo
make new versions equal to old ones; an edit on a stale version is refused inside its transaction. Both stores."""
from __future__ import annotations

import networkx as nx
import pytest
from gridpatrol.gis.errors import ConflictError
from gridpatrol.layers import grids as plans
from gridpatrol.layers import planner
from gridpatrol.layers.grids import edits as plan_edits
from gridpatrol.layers.plan_base import StaleVersionError, on_base

from tests.cached_stores import BAND_400, jinjiang_band400, jinjiang_inputs
from tests.layers.test_grid_refusals import BAND, _snapshot
from tests.store_cache import open_filled


@pytest.fixture
def drawn(store_url):  # noqa: ANN001, ANN201
    """Chengdu's streets and 锦江区 drawn with BAND: an open copy of the cached store (tests/cached_stores.py)."""
    assert BAND == plans.PlanParams(**BAND_400)
    yield from open_filled(store_url, "jinjiang-band400", jinjiang_band400, jinjiang_inputs())


def _moves(store):  # noqa: ANN001, ANN202
    """(block, its grid, a neighbouring grid, splits_source) for every boundary block of the newest plan."""
    ctx = plan_edits._context(store, None)
    adj = plan_edits._block_graph(ctx, ctx.blocks)
    gob = dict(zip(ctx.blocks["block_id"].astype(int), ctx.blocks["grid_code"].astype(str)))
    out = []
    for u, v in adj.edges:
        for b, n in ((u, v), (v, u)):
            src, to = gob[int(b)], gob[int(n)]
            if src == to:
                continue
            rest = adj.subgraph([x for x, g in gob.items() if g == src and x != b])
            out.append((int(b), src, to, len(rest) == 0 or not nx.is_connected(rest)))
    return ctx, out


def test_preview_predicts_the_move_and_writes_nothing(drawn):  # noqa: ANN001
    store = drawn
    ctx, moves = _moves(store)
    hh = dict(zip(ctx.grids["code"].astype(str), ctx.grids["households"]))
    bhh = dict(zip(ctx.blocks["block_id"].astype(int), ctx.blocks["households"]))
    lo, hi = BAND.min_households, BAND.max_households
    legal = next(m for m in moves if not m[3] and bhh[m[0]] > 0 and lo <= hh[m[1]] - bhh[m[0]] and hh[m[2]] + bhh[m[0]] <= hi)
    b, src, to, _ = legal
    before = _snapshot(store)
    p = planner.preview_move(store, [b], to)
    assert _snapshot(store) == before, "a preview wrote to the store"
    assert p["ok"] and p["refusals"] == [] and to in p["neighbours"]
    rows = {g["code"]: g for g in p["grids"]}
    assert rows[to]["after"]["households"] == pytest.approx(hh[to] + bhh[b])
    assert rows[src]["after"]["households"] == pytest.approx(hh[src] - bhh[b])
    assert rows[src]["before"]["households"] == pytest.approx(hh[src])
    # The commit gives what the preview said.
    res = plans.move_blocks(store, to, [b])
    g = plans.read_grids(store, res.plan_id).set_index("code")
    for code, row in rows.items():
        assert g.loc[code, "households"] == pytest.approx(row["after"]["households"])
        assert g.loc[code, "street_m"] == pytest.approx(row["after"]["street_m"], rel=1e-6, abs=1e-3)
    # Undo: a new version with the grids of the one before the move; redo: the move again. History kept.
    n = len(plans.list_plans(store))
    u = planner.undo(store, created_by="pia")
    assert u.plan_id == res.plan_id + 1 and u.parent_plan_id == res.plan_id
    assert plans.read_blocks(store, u.plan_id).set_index("block_id").loc[b, "grid_code"] == src
    assert plans.read_grids(store, u.plan_id)["households"].tolist() == plans.read_grids(store, res.parent_plan_id)["households"].tolist()
    r = planner.redo(store, created_by="pia")
    assert plans.read_blocks(store, r.plan_id).set_index("block_id").loc[b, "grid_code"] == to
    assert len(plans.list_plans(store)) == n + 2
    with pytest.raises(ConflictError, match="没有可重做"):
        planner.redo(store)
    vs = planner.versions(store)
    assert vs[0]["redo_of"] == res.plan_id and vs[1]["undo_of"] == res.plan_id and vs[0]["created_by"] == "pia"


def test_preview_names_the_rule_the_commit_refuses(drawn):  # noqa: ANN001
    store = drawn
    ctx, moves = _moves(store)
    par = dict(zip(ctx.grids["code"].astype(str), ctx.grids["parent_code"].astype(str)))
    b, src, to, _ = next(m for m in moves if m[3] and par[m[1]] == par[m[2]])
    p = planner.preview_move(store, [b], to)
    assert not p["ok"] and p["refusals"][0]["kind"] in ("split", "emptied"), p["refusals"]
    before = _snapshot(store)
    with pytest.raises(ConflictError) as info:
        plans.move_blocks(store, to, [b])
    assert str(info.value).startswith(p["refusals"][0]["message"])
    assert "网格" in str(info.value)
    assert _snapshot(store) == before
    # A locked target: the preview says so, in Chinese first.
    b, src, to, _ = next(m for m in moves if not m[3] and par[m[1]] == par[m[2]])
    plans.set_locked(store, [to], True)
    p = planner.preview_move(store, [b], to)
    assert [r["kind"] for r in p["refusals"] if r["blocking"]] == ["locked"]
    assert p["refusals"][0]["message"].startswith(f"网格 {to} 已锁定")


def test_edit_on_a_stale_version_is_refused_in_its_transaction(drawn):  # noqa: ANN001
    store = drawn
    old = plans.latest_plan_id(store)
    code = plans.read_grids(store)["code"].iloc[0]
    plans.set_locked(store, [code], True)  # someone else's edit: version old + 1
    before = _snapshot(store)
    with pytest.raises(StaleVersionError, match="版本 1"):
        on_base(old, lambda: plans.latest_plan_id(store), lambda: plans.set_locked(store, [code], False, plan_id=old))
    # Even when the early check is passed (a race), the write transaction refuses it.
    with pytest.raises(StaleVersionError, match="方案已被他人修改"):
        on_base(old, lambda: old, lambda: plans.set_locked(store, [code], False, plan_id=old))
    assert _snapshot(store) == before
    assert on_base(old + 1, lambda: plans.latest_plan_id(store),
                   lambda: plans.set_locked(store, [code], False)).plan_id == old + 2
