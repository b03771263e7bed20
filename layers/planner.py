"""The planner's workbench in the store: block-move previews (nothing written), undo/redo, versions, blocks to draw."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import and_, select

from gis.blocks import block_adjacency
from gis.crs import local_metric_crs
from gis.errors import ConflictError, InputError, NotFoundError
from layers import grids as gl
from layers.grid_moves import KINDS, band_status, grid_totals, move_refusals
from layers.models import Block, Grid, GridPlan
from layers.store import Store

MAX_PREVIEW_BLOCKS = 10_000


def _blocks_where(store: Store, pid: int, cond: Any) -> gpd.GeoDataFrame:
    b = Block.__table__
    return store.read_layer("blocks", where=and_(b.c.plan_id == pid, cond))


def move_neighbours(sel: gpd.GeoDataFrame, around: gpd.GeoDataFrame, metric: Any) -> list[str]:
    """Grids sharing boundary (> 1 cm) with the selected blocks ``sel``, longest shared boundary first.

    The grid every selected block is in is left out; ``around`` are the blocks near them."""
    src = set(sel["grid_code"].astype(str))
    a = sel.to_crs(metric).geometry.to_numpy()
    b = around.to_crs(metric).geometry.to_numpy()
    i, j = shapely.STRtree(b).query(a, predicate="intersects")
    shared = shapely.length(shapely.intersection(shapely.boundary(a[i]), shapely.boundary(b[j]))) if len(i) else np.zeros(0)
    codes = around["grid_code"].astype(str).to_numpy()[j]
    s = pd.Series(shared).groupby(codes).sum() if len(j) else pd.Series(dtype=float)
    s = s[s > 0.01]
    if len(src) == 1:
        s = s.drop(list(src), errors="ignore")
    return [str(c) for c in s.sort_values(ascending=False).index]


def preview_move(store: Store, block_ids: Sequence[int], to_code: str | None = None,
                 plan_id: int | None = None) -> dict[str, Any]:
    """What moving blocks ``block_ids`` into grid ``to_code`` would make of the grids involved; nothing is written.

    Reads only the selected blocks, the blocks around them and those of the grids involved, and
    applies the rules the move itself applies (``layers.grid_moves.move_refusals``: locks, area,
    emptied grid, contiguity) plus the household band. ``to_code`` None: the neighbour sharing
    the longest boundary. Returns plan_id, to, neighbours (candidate targets), grids (before/after
    totals: households, buildings, street_m, area_m2, n_blocks, status against the band),
    refusals [{kind, grid_code, message, blocking}] and ok (no blocking refusal).
    """
    ids = sorted({int(i) for i in block_ids})
    if not ids:
        raise InputError("选择至少一个街区 / select at least one block")
    if len(ids) > MAX_PREVIEW_BLOCKS:
        raise InputError(f"最多选择 {MAX_PREVIEW_BLOCKS} 个街区 / at most {MAX_PREVIEW_BLOCKS} blocks per move")
    row = gl.plan_row(store, plan_id)
    pid = int(row["id"])
    params = gl.PlanParams.from_json(row["params_json"])
    b = Block.__table__
    sel = _blocks_where(store, pid, b.c.block_id.in_(ids))
    missing = sorted(set(ids) - set(sel["block_id"].astype(int)))
    if missing:
        raise NotFoundError(f"街区 {missing[0]} 不在方案 {pid} 中 / block {missing[0]} is not in plan {pid}",
                            hint="重新载入页面 / reload the page")
    c = shapely.centroid(shapely.box(*sel.total_bounds))
    metric = local_metric_crs(c.x, c.y)
    x0, y0, x1, y1 = sel.total_bounds
    pad = 1e-4  # ~10 m: blocks touching the selection's edge
    around = store.read_layer("blocks", bbox=[x0 - pad, y0 - pad, x1 + pad, y1 + pad], where=b.c.plan_id == pid)
    neighbours = move_neighbours(sel, around, metric)
    to = str(to_code) if to_code else (neighbours[0] if neighbours else None)
    if to is None:
        raise ConflictError("所选街区没有相邻的其他网格 / the selected blocks touch no other grid")
    src = sorted(set(sel["grid_code"].astype(str)) - {to})
    affected = [to, *src]
    blocks = _blocks_where(store, pid, b.c.grid_code.in_(affected))
    g = Grid.__table__
    with store.engine.connect() as conn:
        grows = pd.DataFrame(conn.execute(select(g.c.code, g.c.name, g.c.parent_code, g.c.locked, g.c.worker).where(
            and_(g.c.plan_id == pid, g.c.code.in_(affected)))).mappings().all(),
            columns=["code", "name", "parent_code", "locked", "worker"])
    if to not in set(grows["code"].astype(str)):
        raise NotFoundError(f"网格 {to} 不在方案 {pid} 中 / grid {to} is not in plan {pid}")
    adj = block_adjacency(blocks, metric_crs=metric) if len(blocks) > 1 else None
    after, refusals = move_refusals(blocks, ids, to, grows, adj, band=(params.min_households, params.max_households))
    lo, hi = params.min_households, params.max_households
    t0, t1 = grid_totals(blocks, affected), grid_totals(after, affected)
    names = dict(zip(grows["code"].astype(str), grows["name"]))
    out = []
    for code in affected:
        def shaped(t: pd.DataFrame) -> dict[str, Any]:
            r = {k: (float(v) if k != "n_blocks" else int(v)) for k, v in t.loc[code].items()}
            r["status"] = band_status(r["households"], lo, hi)
            return r
        out.append({"code": code, "name": names.get(code), "role": "target" if code == to else "source",
                    "before": shaped(t0), "after": shaped(t1)})
    return {"plan_id": pid, "to": to, "neighbours": neighbours, "blocks": ids, "band": [lo, hi],
            "target_households": params.target_households, "grids": out,
            "refusals": [{"kind": r.kind, "title": KINDS[r.kind], "grid_code": r.grid_code, "message": r.message,
                          "blocking": r.blocking} for r in refusals],
            "ok": not any(r.blocking for r in refusals)}


def plan_blocks(store: Store, plan_id: int | None = None) -> gpd.GeoDataFrame:
    """Blocks of a plan (default newest) for the map: block_id, grid_code, households, 1e-6° precision."""
    pid = gl.plan_row(store, plan_id)["id"]
    blocks = _blocks_where(store, pid, True)  # noqa: FBT003
    out = blocks[["block_id", "grid_code", "households", "geometry"]].copy()
    out["households"] = out["households"].astype(float).round(0)
    if len(out):
        out["geometry"] = shapely.set_precision(out.geometry.values, 1e-6)
    return out.sort_values("block_id").reset_index(drop=True)


def versions(store: Store) -> list[dict[str, Any]]:
    """Plan versions, newest first: id, parent, created_at (aware UTC ISO), who, method, note, undo/redo links."""
    t = GridPlan.__table__
    with store.engine.connect() as c:
        rows = c.execute(select(t.c.id, t.c.parent_plan_id, t.c.created_at, t.c.created_by, t.c.method, t.c.note,
                                t.c.name, t.c.metrics_json).order_by(t.c.id.desc())).mappings().all()
    out = []
    for r in rows:
        m = json.loads(r["metrics_json"] or "{}")
        at = r["created_at"]
        iso = (at.isoformat() if at.tzinfo else at.isoformat() + "+00:00") if at is not None else None
        out.append({"plan_id": int(r["id"]), "parent": r["parent_plan_id"], "created_at": iso,
                    "created_by": r["created_by"], "method": r["method"], "note": r["note"], "name": r["name"],
                    "restored": m.get("restored"), "undo_of": m.get("undo_of"), "redo_of": m.get("redo_of")})
    return out


def _content_of(row: dict[str, Any]) -> int:
    """The version whose grids ``row`` holds: itself, or the one it restored (undo/redo)."""
    return int(row["restored"]) if row.get("restored") else int(row["plan_id"])


def undo_target(store: Store) -> tuple[int, int]:
    """(version to restore, version undone) for undoing the newest version; ConflictError when there is none."""
    vs = {v["plan_id"]: v for v in versions(store)}
    if not vs:
        raise NotFoundError("还没有网格方案 / there is no grid plan yet")
    current = vs[max(vs)]
    undone = vs.get(_content_of(current))
    if undone is None or undone["parent"] is None or undone["method"] != "edit":
        raise ConflictError("没有可撤销的编辑 / nothing to undo: the newest version is not an edit",
                            hint="撤销只能回到编辑之前的版本 / undo goes back to the version before an edit")
    return int(undone["parent"]), int(undone["plan_id"])


def redo_target(store: Store) -> int:
    """The version to restore for redoing the last undo (the newest version must be an undo)."""
    vs = versions(store)
    if not vs or not vs[0].get("undo_of"):
        raise ConflictError("没有可重做的撤销 / nothing to redo: the newest version is not an undo")
    return int(vs[0]["undo_of"])


def undo(store: Store, created_by: str | None = None) -> gl.EditResult:
    """Undo the newest edit: a new version with the grids of the version before it (history kept)."""
    source, undone = undo_target(store)
    return gl.restore_version(store, source, note=f"undo {undone} → {source}", extra={"undo_of": undone},
                              created_by=created_by)


def redo(store: Store, created_by: str | None = None) -> gl.EditResult:
    """Redo the last undo: a new version with the grids of the version that was undone."""
    source = redo_target(store)
    return gl.restore_version(store, source, note=f"redo {source}", extra={"redo_of": source}, created_by=created_by)
