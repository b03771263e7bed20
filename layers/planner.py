"""The planner's workbench in the store: block-move previews (nothing written), undo/redo, versions, blocks to draw."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from gridpatrol.gis.errors import ConflictError, InputError, NotFoundError
from gridpatrol.gis.grid_check import PROBLEM_COLUMNS, CheckResult
from gridpatrol.gis.workload import workload
from gridpatrol.layers import grids as gl
from gridpatrol.layers.grid_moves import KINDS, Refusal, band_status, grid_totals, move_refusals
from gridpatrol.layers.models import Block, Grid, GridPlan
from gridpatrol.layers.store import Store
from sqlalchemy import and_, func, select

MAX_PREVIEW_BLOCKS = 10_000


BLOCK_COLS = ("block_id", "grid_code", "area_code", "households", "buildings", "street_m", "area_m2", "population")


def _blocks_where(store: Store, pid: int, cond: Any, *, bbox: Sequence[float] | None = None,
                  cols: Sequence[str] = BLOCK_COLS) -> tuple[pd.DataFrame, np.ndarray]:
    """Blocks of plan ``pid`` matching ``cond`` (and ``bbox``): their ``cols`` and their geometries (WGS-84).

    Plain frames and arrays: a preview must not pay for building GeoDataFrames."""
    t = Block.__table__
    conds = [t.c.plan_id == pid, cond] + ([store.bbox_filter(t, bbox)] if bbox is not None else [])
    stmt = select(*[t.c[c] for c in cols], func.ST_AsBinary(t.c.geom)).where(and_(*conds))
    with store.engine.connect() as c:
        rows = c.execute(stmt).all()
    df = pd.DataFrame([r[:-1] for r in rows], columns=list(cols))
    return df, shapely.from_wkb([bytes(r[-1]) for r in rows])


def _metres(geoms: np.ndarray, lon0: float, lat0: float) -> np.ndarray:
    """WGS-84 geometries in local metres (equirectangular about lon0, lat0): an affine map, so contacts
    and shared boundaries are kept and lengths are right to well under 1 % within a county."""
    kx, ky = 111_320.0 * np.cos(np.radians(lat0)), 110_574.0
    return shapely.transform(geoms, lambda xy: (xy - [lon0, lat0]) * [kx, ky])


def move_neighbours(sel_geoms: np.ndarray, sel_codes: np.ndarray, around_geoms: np.ndarray,
                    around_codes: np.ndarray) -> list[str]:
    """Grids sharing boundary (> 1 cm, geometries in metres) with the selected blocks, longest first.

    The grid every selected block is in is left out; ``around`` are the blocks near them."""
    src = set(sel_codes.tolist())
    i, j = shapely.STRtree(around_geoms).query(sel_geoms, predicate="intersects")
    shared = (shapely.length(shapely.intersection(shapely.boundary(sel_geoms[i]), shapely.boundary(around_geoms[j])))
              if len(i) else np.zeros(0))
    s = pd.Series(shared).groupby(around_codes[j]).sum() if len(j) else pd.Series(dtype=float)
    s = s[s > 0.01]
    if len(src) == 1:
        s = s.drop(list(src), errors="ignore")
    return [str(c) for c in s.sort_values(ascending=False).index]


def rook_graph(ids: np.ndarray, geoms: np.ndarray) -> nx.Graph:
    """Blocks (geometries in metres) sharing a boundary longer than 1 cm: the contiguity the move checks."""
    graph = nx.Graph()
    graph.add_nodes_from(int(b) for b in ids)
    if len(geoms) > 1:
        a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
        keep = a < b
        a, b = a[keep], b[keep]
        shared = shapely.length(shapely.intersection(shapely.boundary(geoms[a]), shapely.boundary(geoms[b])))
        graph.add_edges_from((int(ids[x]), int(ids[y])) for x, y, s in zip(a, b, shared) if s > 0.01)
    return graph


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
    sel, sel_geoms = _blocks_where(store, pid, b.c.block_id.in_(ids), cols=("block_id", "grid_code"))
    missing = sorted(set(ids) - set(sel["block_id"].astype(int)))
    if missing:
        raise NotFoundError(f"街区 {missing[0]} 不在方案 {pid} 中 / block {missing[0]} is not in plan {pid}",
                            hint="重新载入页面 / reload the page")
    x0, y0, x1, y1 = shapely.total_bounds(sel_geoms)
    lon0, lat0 = (x0 + x1) / 2, (y0 + y1) / 2
    pad = 1e-4  # ~10 m: blocks touching the selection's edge
    around, around_geoms = _blocks_where(store, pid, True, bbox=[x0 - pad, y0 - pad, x1 + pad, y1 + pad],  # noqa: FBT003
                                         cols=("block_id", "grid_code"))
    neighbours = move_neighbours(_metres(sel_geoms, lon0, lat0), sel["grid_code"].astype(str).to_numpy(),
                                 _metres(around_geoms, lon0, lat0), around["grid_code"].astype(str).to_numpy())
    to = str(to_code) if to_code else (neighbours[0] if neighbours else None)
    if to is None:
        raise ConflictError("所选街区没有相邻的其他网格 / the selected blocks touch no other grid")
    src = sorted(set(sel["grid_code"].astype(str)) - {to})
    affected = [to, *src]
    blocks, geoms = _blocks_where(store, pid, b.c.grid_code.in_(affected))
    g = Grid.__table__
    with store.engine.connect() as conn:
        grows = pd.DataFrame(conn.execute(select(g.c.code, g.c.name, g.c.parent_code, g.c.locked, g.c.worker).where(
            and_(g.c.plan_id == pid, g.c.code.in_(affected)))).all(),
            columns=["code", "name", "parent_code", "locked", "worker"])
    if to not in set(grows["code"].astype(str)):
        raise NotFoundError(f"网格 {to} 不在方案 {pid} 中 / grid {to} is not in plan {pid}")
    adj = rook_graph(blocks["block_id"].to_numpy(), _metres(geoms, lon0, lat0))
    # judged by the workload the plan was drawn for (households, persons or a weighted sum)
    target, lo, hi = params.workload_band()
    weights = params.workload_weights()
    rural = getattr(params, "mode", "urban") == "rural"
    after, refusals = move_refusals(blocks, ids, to, grows, adj, band=None if rural else (lo, hi), weights=weights,
                                    unit=params.workload_unit())
    warnings: list[dict[str, Any]] = []
    rural_out = None
    if rural:  # what the rural check of the edit would say
        rural_out, more, warnings = _rural_preview(store, pid, params, ids, to, affected)
        refusals += more
    t0, t1 = grid_totals(blocks, affected), grid_totals(after, affected)
    names = dict(zip(grows["code"].astype(str), grows["name"]))
    out = []
    for code in affected:
        def shaped(t: pd.DataFrame) -> dict[str, Any]:
            r = {k: (float(v) if k != "n_blocks" else int(v)) for k, v in t.loc[code].items()}
            r["workload"] = float(workload(t.loc[[code]], weights)[0])
            r["status"] = band_status(r["workload"], lo, hi)
            return r
        out.append({"code": code, "name": names.get(code), "role": "target" if code == to else "source",
                    "before": shaped(t0), "after": shaped(t1)})
    return {"plan_id": pid, "to": to, "neighbours": neighbours, "blocks": ids, "band": [lo, hi],
            "target_households": params.target_households, "grids": out,
            "balance": params.balance, "weights": weights, "target_workload": target,
            "refusals": [{"kind": r.kind, "title": KINDS[r.kind], "grid_code": r.grid_code, "message": r.message,
                          "blocking": r.blocking} for r in refusals],
            "warnings": warnings, "rural": rural_out,
            "ok": not any(r.blocking for r in refusals)}


def _rural_preview(store: Store, pid: int, params: gl.PlanParams, ids: Sequence[int], to: str,
                   affected: Sequence[str]) -> tuple[dict[str, Any], list[Refusal], list[dict[str, Any]]]:
    """The rural check (``rural_draw.check_rural``) of the areas a move involves, before and after it:
    the errors the move adds, as the edit judges them (``edits.added_errors``: a village spread over one
    more grid, a grid pushed over the area or travel limit), blocking; households newly off the band
    a warning (the secondary balance). Returns (limits, each grid's worst travel after the move, refusals, warnings)."""
    from gridpatrol.layers.grids.edits import added_errors, drop_stations_outside
    from gridpatrol.layers.grids.rural_draw import check_rural

    b, g = Block.__table__, Grid.__table__
    with store.engine.connect() as conn:
        parents = sorted({str(p) for p in conn.execute(select(g.c.parent_code).where(
            and_(g.c.plan_id == pid, g.c.code.in_(list(affected))))).scalars()})
        stations = pd.DataFrame(conn.execute(select(g.c.code, g.c.station_lon, g.c.station_lat).where(
            and_(g.c.plan_id == pid, g.c.parent_code.in_(parents)))).all(), columns=["code", "station_lon", "station_lat"])
    before, geoms = _blocks_where(store, pid, b.c.area_code.in_(parents), cols=("block_id", "grid_code", "area_code", "households"))
    after = before.copy()
    after.loc[after["block_id"].astype(int).isin([int(i) for i in ids]), "grid_code"] = str(to)
    areas = gl.planning_areas(store)
    st = stations.assign(code=stations["code"].astype(str)).set_index("code")

    def checked(frame: pd.DataFrame) -> CheckResult:
        bl = gpd.GeoDataFrame(frame[["block_id", "grid_code", "area_code"]].astype({"grid_code": str}),
                              geometry=list(geoms), crs="EPSG:4326")
        gr = bl.dissolve("grid_code", as_index=False).rename(columns={"grid_code": "code", "area_code": "parent_code"})
        tot = grid_totals(frame, list(gr["code"]))
        gr["households"] = gr["code"].map(tot["households"])
        gr["station_lon"] = gr["code"].map(st["station_lon"])
        gr["station_lat"] = gr["code"].map(st["station_lat"])
        metric = gl.metric_crs_of(shapely.box(*gr.total_bounds))
        drop_stations_outside(gr, metric)  # a station the new shape leaves is dropped, as the edit drops it
        rows, summary = check_rural(store, gr, bl, areas[areas["code"].astype(str).isin(set(gr["parent_code"].astype(str)))],
                                    params, metric)
        problems = gpd.GeoDataFrame(rows, columns=PROBLEM_COLUMNS, geometry="geometry", crs="EPSG:4326")
        return CheckResult(problems, {"rural": summary})

    res0, res1 = checked(before), checked(after)
    p0, p1 = res0.problems, res1.problems
    errors = p1[p1["severity"] == "error"]
    by_detail = {d: (str(k), "" if pd.isna(c) else str(c)) for d, k, c in zip(errors["detail"], errors["kind"], errors["grid_code"])}
    refusals = [Refusal(by_detail[m][0], by_detail[m][1], m) for m in added_errors(res0, res1, set(affected), force=False)]
    off0 = set(p0.loc[p0["kind"] == "rural_households_off_band", "grid_code"].astype(str))
    warnings = [{"kind": "rural_households_off_band", "grid_code": str(c), "message": d}
                for c, d in zip(p1.loc[p1["kind"] == "rural_households_off_band", "grid_code"],
                                p1.loc[p1["kind"] == "rural_households_off_band", "detail"]) if str(c) not in off0]
    s = res1.summary["rural"]
    return ({"max_area_m2": s["max_area_m2"], "max_travel_min": s["max_travel_min"], "travel_mode": s["travel_mode"],
             "travel_min": {c: t for c, t in s["travel_min"].items() if c in set(affected)},
             "settlements_split": s["settlements_split"]}, refusals, warnings)


def plan_blocks(store: Store, plan_id: int | None = None) -> gpd.GeoDataFrame:
    """Blocks of a plan (default newest) for the map: block_id, grid_code, households, 1e-6° precision."""
    pid = gl.plan_row(store, plan_id)["id"]
    blocks = store.read_layer("blocks", where=Block.__table__.c.plan_id == pid)
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
