"""Redraw edits of a plan (split, merge, move, lock, rebalance, workers): one transaction and a new version each."""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from gridpatrol.gis.assign import assign_xy, representative_xy
from gridpatrol.gis.errors import (
    ConflictError,
    GridPatrolError,
    InputError,
    NotFoundError,
)
from gridpatrol.gis.grid_check import CheckResult
from gridpatrol.gis.grid_names import unique_names
from gridpatrol.gis.gridcodes import CodeFormat
from gridpatrol.gis.slivers import absorb_detached, settle_blocks
from gridpatrol.layers.grid_moves import move_refusals
from gridpatrol.layers.grids import rural_edits
from gridpatrol.layers.grids.core import (
    STATION_TOLERANCE_M,
    check_frames,
    grid_workload,
    grids_from_blocks,
    insert_plan,
    insert_rows,
    latest_plan_id,
    mark_exempt,
    metric_crs_of,
    plan_metrics,
    plan_row,
    planning_areas,
    read_blocks,
    read_grids,
    read_within,
)
from gridpatrol.layers.names import clean_name
from gridpatrol.layers.plan_params import PlanParams
from gridpatrol.layers.store import Store


@dataclass
class EditResult:
    """Outcome of a redraw operation: the new plan version and what changed."""

    plan_id: int
    parent_plan_id: int
    changed_codes: list[str]
    removed_codes: list[str] = field(default_factory=list)
    message: str = ""


@dataclass
class _Ctx:
    store: Store
    row: dict
    params: PlanParams
    grids: gpd.GeoDataFrame
    blocks: gpd.GeoDataFrame
    areas: gpd.GeoDataFrame
    metric: object


def _context(store: Store, plan_id: int | None, *, need_blocks: bool = True) -> _Ctx:
    row = plan_row(store, plan_id)
    grids = read_grids(store, row["id"])
    blocks = read_blocks(store, row["id"])
    if need_blocks and len(blocks) == 0:
        raise ConflictError(f"plan {row['id']} has no blocks (it was imported), so its grids cannot be "
                            "regrouped", hint="draw-grids to get a plan made of street blocks")
    # Attribute edits (lock, workers) work on any plan, imported ones too, without areas.
    areas = planning_areas(store) if need_blocks else gpd.GeoDataFrame(geometry=[], crs="EPSG:4326")
    metric = metric_crs_of(shapely.box(*grids.total_bounds))
    return _Ctx(store, row, PlanParams.from_json(row["params_json"]), grids, blocks, areas, metric)


def _require_grids(ctx: _Ctx, codes: Sequence[str], *, unlocked: bool = True) -> gpd.GeoDataFrame:
    codes = [str(c) for c in codes]
    known = set(ctx.grids["code"].astype(str))
    missing = [c for c in codes if c not in known]
    if missing:
        raise NotFoundError(f"grid {missing[0]} is not in plan {ctx.row['id']}",
                            hint="gridpatrol check-grids lists the codes; codes change when grids are redrawn")
    sel = ctx.grids[ctx.grids["code"].astype(str).isin(codes)]
    if unlocked:
        locked = sorted(sel.loc[sel["locked"].fillna(False).astype(bool), "code"])
        if locked:
            raise ConflictError(f"网格 {', '.join(locked)} 已锁定，编辑被拒绝 / grid {', '.join(locked)} is locked; "
                                "the edit is refused", hint=f"先解锁 / gridpatrol unlock-grid {locked[0]} first")
    return sel


def _grid_graph(ctx: _Ctx, codes: Iterable[str] | None = None) -> nx.Graph:
    """Grids sharing a boundary of positive length (via their blocks' rook adjacency)."""
    g = ctx.grids if codes is None else ctx.grids[ctx.grids["code"].isin(list(codes))]
    geoms = g.to_crs(ctx.metric).geometry.to_numpy()
    names = g["code"].astype(str).to_numpy()
    graph = nx.Graph()
    graph.add_nodes_from(names)
    if len(geoms) > 1:
        a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
        keep = a < b
        a, b = a[keep], b[keep]
        shared = shapely.length(shapely.intersection(shapely.boundary(geoms[a]), shapely.boundary(geoms[b])))
        for i, j, s in zip(a, b, shared):
            if s > 0.01:
                graph.add_edge(names[i], names[j], length_m=float(s))
    return graph


def _block_graph(ctx: _Ctx, blocks: gpd.GeoDataFrame) -> nx.Graph:
    """Rook adjacency of ``blocks`` with the roads and barriers they lie along (for metrics)."""
    from gridpatrol.gis.blocks import block_adjacency

    geom = shapely.box(*blocks.total_bounds)
    roads = read_within(ctx.store, "roads", geom)
    barriers = read_within(ctx.store, "barriers", geom)
    return block_adjacency(blocks, roads, barriers, metric_crs=ctx.metric)


def _next_codes(ctx: _Ctx, parent: str, n: int, taken: set[str]) -> list[str]:
    """The next ``n`` free sequence numbers of ``parent`` (codes of other grids never change)."""
    fmt = CodeFormat(ctx.params.code_format)
    seqs = []
    for c in taken:
        try:
            p = fmt.parse(c)
        except InputError:
            continue
        if fmt.parent_of(c) == parent or fmt.format(parent, int(p["seq"])) == c:
            seqs.append(int(p["seq"]))
    start = max(seqs, default=0) + 1
    return [fmt.format(parent, start + i) for i in range(n)]


def _commit_edit(store: Store, ctx: _Ctx, blocks: gpd.GeoDataFrame, changed: list[str], *,
                 removed: Sequence[str] = (), locked: dict[str, bool] | None = None, force: bool = False,
                 note: str, created_by: str | None = None) -> EditResult:
    """Rebuild the changed grids from ``blocks``, validate, and write a new plan version."""
    lock_map = dict(zip(ctx.grids["code"].astype(str), ctx.grids["locked"].fillna(False).astype(bool)))
    if locked:
        lock_map.update(locked)
    changed_set = set(changed) | set(removed)
    keep = ctx.grids[~ctx.grids["code"].astype(str).isin(changed_set)].copy()
    new = blocks[blocks["grid_code"].isin(changed)]
    rebuilt = mark_exempt(grids_from_blocks(new, ctx.metric, lock_map), ctx.params) if len(new) else None
    if rebuilt is not None:
        rebuilt = _carry_assignments(ctx, rebuilt)
    cols = ["code", "parent_code", "name", "households", "population", "buildings", "street_m", "area_m2",
            "polsby_popper", "exempt", "locked", "worker", "station_lon", "station_lat", "geometry"]
    keep["n_blocks"] = keep["code"].map(blocks["grid_code"].value_counts()).fillna(0).astype(int)
    parts = [keep] + ([rebuilt] if rebuilt is not None else [])
    grids = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs="EPSG:4326")
    for c in cols:
        if c not in grids.columns:
            grids[c] = None
    grids = grids.sort_values("code").reset_index(drop=True)
    # Validate: the edit may not add any error the previous version did not have.
    # (without the proven least number of grids of 0 households: no rule, and its proof can take half a minute)
    before = check_frames(store, ctx.grids, ctx.blocks, ctx.areas, ctx.params, least_empty=False)
    after = check_frames(store, grids, blocks, ctx.areas, ctx.params, least_empty=False)
    new_errors = added_errors(before, after, set(changed), force)
    if getattr(ctx.params, "mode", "urban") == "rural":  # exempt: over a rural limit and indivisible
        p = after.problems
        grids["exempt"] = grids["code"].astype(str).isin(set(p.loc[p["kind"] == "rural_limit_exempt", "grid_code"]))
        # reshaped grids are named after the settlements they now hold, as drawn ones are
        # (their settlements, else the nearest named streets; a name another grid of the area keeps gets a suffix)
        names = after.summary["rural"]["grid_names"]
        reshaped = grids["code"].astype(str).isin(set(changed))
        grids.loc[reshaped, "name"] = [names.get(c) for c in grids.loc[reshaped, "code"].astype(str)]
        grids["name"] = unique_names(grids["name"].tolist(), grids["parent_code"].astype(str).tolist(),
                                     fixed=(~reshaped).tolist())
    if new_errors:
        raise ConflictError("编辑被拒绝，会破坏方案的规则 / edit refused, it would break the plan: " + "; ".join(new_errors[:5])
                            + (f" (and {len(new_errors) - 5} more)" if len(new_errors) > 5 else ""),
                            hint="未做任何更改 / nothing was changed" + (
                                "" if force or getattr(ctx.params, "mode", "urban") == "rural"  # rural limits are hard
                                else "；--force 可接受户数区间外的网格 / --force accepts grids outside the household band"))
    try:
        adj = _block_graph(ctx, blocks)
        gob = dict(zip(blocks["block_id"].astype(int), blocks["grid_code"]))
    except GridPatrolError:  # metrics only: a failed adjacency must not block a valid edit
        adj, gob = None, None
    metrics = plan_metrics(grids, ctx.params, adj, gob)
    with store.begin() as conn:
        pid = insert_plan(conn, method="edit", parent=int(ctx.row["id"]), params=ctx.params, metrics=metrics,
                           created_by=created_by, note=note)
        insert_rows(store, conn, pid, grids[cols], blocks)
    return EditResult(plan_id=pid, parent_plan_id=int(ctx.row["id"]), changed_codes=sorted(changed),
                      removed_codes=sorted(removed), message=note)


def _carry_assignments(ctx: _Ctx, rebuilt: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Keep the worker and station of every grid an edit reshapes but does not rename.

    A station that the new shape no longer contains (within ``STATION_TOLERANCE_M``) is
    dropped rather than left outside its grid.
    """
    old = ctx.grids.set_index(ctx.grids["code"].astype(str))
    rebuilt = rebuilt.copy()
    for col in ("worker", "station_lon", "station_lat"):
        rebuilt[col] = rebuilt["code"].map(old[col]) if col in old else None
    drop_stations_outside(rebuilt, ctx.metric)
    return rebuilt


def drop_stations_outside(grids: gpd.GeoDataFrame, metric: object) -> None:
    """Clear (in place) the station of every grid whose shape no longer holds it within
    ``STATION_TOLERANCE_M`` (distances in the metric CRS ``metric``), rather than leave it outside."""
    has = grids["station_lon"].notna() & grids["station_lat"].notna()
    if has.any():
        pts = gpd.GeoSeries(shapely.points(grids.loc[has, "station_lon"].astype(float),
                                           grids.loc[has, "station_lat"].astype(float)),
                            index=grids.index[has], crs="EPSG:4326").to_crs(metric)
        shapes = grids.loc[has].geometry.to_crs(metric)
        gone = pts.distance(shapes, align=True) > STATION_TOLERANCE_M
        grids.loc[gone[gone].index, ["station_lon", "station_lat"]] = None


def assign_workers(store: Store, workers: dict[str, str | None], *,
                   stations: dict[str, tuple[float, float]] | None = None, plan_id: int | None = None,
                   created_by: str | None = None, names: dict[str, str | None] | None = None) -> EditResult:
    """Set the responsible grid worker (网格员), the station and the name of grids (new version).

    ``workers`` maps grid codes to worker names (None clears); ``stations`` maps codes to a
    (lon, lat) in WGS-84 that must lie in the grid or within ``STATION_TOLERANCE_M`` of it (the
    start of its patrol routes); ``names`` maps codes to grid names (e.g. 锦官驿社区第3网格; None
    clears). Unknown codes are refused with nothing written. The worker name is what the service
    matches against a worker's user name.
    """
    stations = stations or {}
    names = names or {}
    codes = sorted(set(workers) | set(stations) | set(names))
    if not codes:
        raise InputError("no grid given", hint="give CODE WORKER, or a file with code,worker columns")
    ctx = _context(store, plan_id, need_blocks=False)
    sel = _require_grids(ctx, codes, unlocked=False)
    grids = ctx.grids.copy()
    idx = dict(zip(grids.loc[sel.index, "code"].astype(str), sel.index))
    for code, name in workers.items():
        name = None if name is None or not str(name).strip() else clean_name(name, "worker", where=f"grid {code}")
        grids.loc[idx[code], "worker"] = name
    for code, name in names.items():
        grids.loc[idx[code], "name"] = (None if name is None or not str(name).strip()
                                        else clean_name(name, "grid", where=f"grid {code}"))
    for code, (lon, lat) in stations.items():
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise InputError(f"station of {code}: ({lon}, {lat}) is not longitude/latitude in WGS-84")
        shape = gpd.GeoSeries([grids.loc[idx[code]].geometry], crs="EPSG:4326").to_crs(ctx.metric).iloc[0]
        pt = gpd.GeoSeries([shapely.Point(lon, lat)], crs="EPSG:4326").to_crs(ctx.metric).iloc[0]
        d = shape.distance(pt)
        if d > STATION_TOLERANCE_M:
            raise InputError(f"station of {code} at ({lon:.6f}, {lat:.6f}) is {d:.0f} m outside the grid",
                             hint=f"a station must lie in its grid or within {STATION_TOLERANCE_M:.0f} m of it")
        grids.loc[idx[code], ["station_lon", "station_lat"]] = [float(lon), float(lat)]
    what = [("workers", workers), ("names", names)] if workers or not names else [("names", names)]
    note = "; ".join(f"{label}: " + ", ".join(f"{c}={given.get(c) or '—'}" for c in sorted(given)[:10])
                     + (" …" if len(given) > 10 else "") for label, given in what if given or label == "workers")
    metrics = json.loads(ctx.row["metrics_json"] or "{}")
    with store.begin() as conn:
        pid = insert_plan(conn, method="edit", parent=int(ctx.row["id"]), params=ctx.params, metrics=metrics,
                           created_by=created_by, note=note)
        cols = [c for c in grids.columns if c not in ("id", "plan_id")]
        insert_rows(store, conn, pid, grids[cols], ctx.blocks.drop(columns=["id", "plan_id"]) if len(ctx.blocks) else None)
    return EditResult(plan_id=pid, parent_plan_id=int(ctx.row["id"]), changed_codes=codes, message=note)


def added_errors(before: CheckResult, after: CheckResult, changed: set[str], force: bool) -> list[str]:
    def keys(res: CheckResult) -> set[tuple[str, str]]:
        p = res.problems
        p = p[p["severity"] == "error"]
        return {(k, str(c)) for k, c in zip(p["kind"], p["grid_code"])}

    band = {"households_out_of_band"}
    old = keys(before)
    old_splits = _settlement_splits(before)
    msgs = []
    p = after.problems
    for _, r in p[p["severity"] == "error"].iterrows():
        key = (r["kind"], str(r["grid_code"]))
        if r["kind"] in band and force:
            continue
        if r["kind"] == "settlement_split":
            # a rural problem without a grid: new unless the village already straddled these grids
            from gridpatrol.layers.grids.rural_draw import split_settlement_grids

            if split_settlement_grids(r["detail"]) <= old_splits.get(_point_key(r.geometry), frozenset()):
                continue
            msgs.append(r["detail"])
            continue
        if key in old and r["kind"] not in ("gap", "overlap"):
            continue
        if r["kind"] in ("gap", "overlap") and after.summary[f"{r['kind']}_m2"] <= before.summary[f"{r['kind']}_m2"] + 1.0:
            continue
        msgs.append(r["detail"])
    return msgs


def _point_key(geom) -> str:  # noqa: ANN001
    return "" if geom is None or geom.is_empty else f"{geom.x:.6f},{geom.y:.6f}"


def _settlement_splits(res: CheckResult) -> dict[str, frozenset[str]]:
    """{settlement (its point): the grids it straddles} of a rural check's settlement_split errors."""
    from gridpatrol.layers.grids.rural_draw import split_settlement_grids

    p = res.problems
    p = p[p["kind"] == "settlement_split"]
    return {_point_key(g): split_settlement_grids(d) for g, d in zip(p.geometry, p["detail"])}


def split_grid(store: Store, code: str, parts: int, *, plan_id: int | None = None, force: bool = False,
               created_by: str | None = None) -> EditResult:
    """Split grid ``code`` into ``parts`` contiguous grids of balanced households (new version).

    The part holding most of the old grid's households keeps its code; the other parts take
    the next free sequence numbers of the parent. Refused (nothing written) when the grid is
    locked, has fewer blocks than ``parts``, or a part would leave the household band (unless
    ``force``).
    """
    from gridpatrol.gis.partition import split_grid as split_blocks

    if parts < 2:
        raise InputError(f"--parts must be at least 2, got {parts}")
    ctx = _context(store, plan_id)
    _require_grids(ctx, [code])
    blocks = ctx.blocks.copy()
    sel = blocks["grid_code"] == code
    if sel.sum() < parts:
        raise ConflictError(f"grid {code} has {int(sel.sum())} blocks and cannot be split into {parts} parts",
                            hint="split into fewer parts")
    sub = _single_part_blocks(ctx, blocks[sel].reset_index(drop=True), int(blocks["block_id"].max()) + 1)
    adj = _block_graph(ctx, sub)
    # parts of equal workload (the plan's: households, persons or the weighted sum)
    loads = sub if ctx.params.on_households else sub.assign(households=grid_workload(sub, ctx.params))
    rural = _rural_settlements(ctx, sub, roads=True)
    sub_m = sub.to_crs(ctx.metric).geometry.to_numpy()

    def single_pieces(labels: np.ndarray) -> np.ndarray | None:
        # Parts must be single pieces: a bit joined to its part only at a corner goes to the part it
        # shares the longest boundary with; anything larger refuses the split.
        labels, _ = absorb_detached(sub_m, labels)
        pieces = [len(shapely.get_parts(shapely.union_all(sub_m[labels == lab]))) for lab in sorted(set(labels.tolist()))]
        return labels if len(pieces) == parts and max(pieces) == 1 else None

    labels = None
    if rural is None:
        labels = single_pieces(np.asarray(split_blocks(loads, adj, parts, seed=ctx.params.seed)))
    else:  # a rural plan: whole settlements move, a village is never cut; parts meet the limits when they can
        unit_frame, unit_adj, back = _contract(loads, adj, rural.unit_of_block)
        if len(unit_frame) < parts:
            raise ConflictError(f"网格 {code} 只有 {len(unit_frame)} 个不可分的部分（完整的居民点和空地街区），不能分成 "
                                f"{parts} 份 / grid {code} has {len(unit_frame)} indivisible parts (whole settlements "
                                f"and land blocks) and cannot be split into {parts}", hint="split into fewer parts")
        # parts of equal households first, then parts of equal land (hectares), a few seeds each
        by_land = unit_frame.assign(households=pd.Series(sub["area_m2"].to_numpy(dtype=float) / 1e4)
                                    .groupby(back).sum().sort_index().to_numpy())
        best = None
        for frame in (unit_frame, by_land):
            for k in range(rural_edits.SPLIT_TRIES):
                unit_labels = np.asarray(split_blocks(frame, unit_adj, parts, seed=ctx.params.seed + k))
                misses = rural_edits.split_misses(ctx, rural, sub, unit_labels[back], code)
                if misses:  # units hand over to a touching part while that lowers the excess over the limits
                    unit_labels, misses = rural_edits.repair_split(ctx, rural, sub, code, unit_labels, unit_adj, back, misses)
                cand = single_pieces(unit_labels[back])
                if cand is None:
                    continue
                misses = rural_edits.split_misses(ctx, rural, sub, cand, code)
                worst = max((v / cap for _, _, v, cap in misses), default=0.0)
                if best is None or worst < best[0]:
                    best = (worst, cand, misses)
                if not misses:
                    break
            if best is not None and not best[2]:
                break
        if best is not None and best[2]:
            raise ConflictError(rural_edits.split_misses_message(code, parts, best[2]),
                                hint="nothing was changed; split into fewer or more parts, or move blocks by hand "
                                     "(move-blocks)")
        labels = None if best is None else best[1]
    if labels is None:
        raise ConflictError(f"grid {code} could not be split into {parts} contiguous parts; nothing was changed",
                            hint="split into fewer parts, or move blocks by hand (move-blocks)")
    blocks = pd.concat([blocks[~sel], sub], ignore_index=True)
    sel = blocks["grid_code"] == code
    hh = pd.Series(sub["households"].to_numpy()).groupby(labels).sum()
    keeper = hh.idxmax()
    others = [lab for lab in sorted(set(labels.tolist())) if lab != keeper]
    new_codes = _next_codes(ctx, str(sub["area_code"].iloc[0]), len(others), set(ctx.grids["code"].astype(str)))
    code_of = {keeper: code, **dict(zip(others, new_codes))}
    blocks.loc[sel, "grid_code"] = [code_of[lab] for lab in labels]
    return _commit_edit(store, ctx, blocks, [code, *new_codes], force=force, created_by=created_by,
                        note=f"split {code} into {', '.join([code, *new_codes])}")


def _neighbour_group(store: Store, plan_id: int | None, codes: Sequence[str], verb: str) -> tuple[_Ctx, list[str]]:
    """Context and sorted codes of ≥2 unlocked grids of one area forming one connected group."""
    codes = sorted({str(c) for c in codes})
    if len(codes) < 2:
        raise InputError(f"{verb} needs at least two grid codes")
    ctx = _context(store, plan_id)
    sel = _require_grids(ctx, codes)
    parents = sorted(set(sel["parent_code"].astype(str)))
    if len(parents) > 1:
        raise ConflictError(f"grids {', '.join(codes)} lie in different areas ({', '.join(parents)}); "
                            "a grid must stay inside one community/district", hint=f"{verb} grids of one area only")
    graph = _grid_graph(ctx, codes)
    if not nx.is_connected(graph):
        comps = [sorted(c) for c in nx.connected_components(graph)]
        raise ConflictError(f"grids {', '.join(codes)} are not adjacent (separate groups: "
                            + " | ".join(", ".join(c) for c in comps) + ")",
                            hint=f"{verb} only grids that share a boundary")
    return ctx, codes


def merge_grids(store: Store, codes: Sequence[str], *, plan_id: int | None = None, force: bool = False,
                created_by: str | None = None) -> EditResult:
    """Merge adjacent grids of one parent area into the one with the lowest code (new version).

    Refused when fewer than two codes are given, a grid is locked, the grids lie in different
    parent areas, or they do not form one connected piece.
    """
    ctx, codes = _neighbour_group(store, plan_id, codes, "merge")
    keep = codes[0]
    blocks = ctx.blocks.copy()
    blocks.loc[blocks["grid_code"].isin(codes), "grid_code"] = keep
    return _commit_edit(store, ctx, blocks, [keep], removed=codes[1:], force=force, created_by=created_by,
                        note=f"merged {', '.join(codes)} into {keep}")


def move_blocks(store: Store, to_code: str, items: Sequence[str | int], *, plan_id: int | None = None,
                force: bool = False, created_by: str | None = None) -> EditResult:
    """Move blocks (block ids, or buildings named by name or ``way/123``) into grid ``to_code``.

    Refused when a block would leave its area (community/district), a source or the target is
    locked, the moved blocks do not touch the target, or a grid would fall apart or become
    empty.
    """
    if not items:
        raise InputError("name at least one block id or building to move")
    ctx = _context(store, plan_id)
    _require_grids(ctx, [to_code], unlocked=False)
    ids = _resolve_blocks(store, ctx, items)
    # The rules of layers.grid_moves (the page's preview checks the same ones), over the grids involved.
    src = set(ctx.blocks.loc[ctx.blocks["block_id"].isin(ids), "grid_code"].astype(str))
    affected = [str(to_code), *sorted(src - {str(to_code)})]
    sub = ctx.blocks[ctx.blocks["grid_code"].astype(str).isin(affected)].reset_index(drop=True)
    adj = _block_graph(ctx, sub) if len(affected) > 1 else None
    _, refusals = move_refusals(sub, ids, str(to_code), ctx.grids[ctx.grids["code"].astype(str).isin(affected)], adj)
    if refusals:
        raise ConflictError(refusals[0].message, hint="nothing was changed; move only blocks adjacent to the target "
                            "grid, within its area, from unlocked grids")
    blocks = ctx.blocks.copy()
    blocks.loc[blocks["block_id"].isin(ids), "grid_code"] = str(to_code)
    return _commit_edit(store, ctx, blocks, affected, force=force, created_by=created_by,
                        note=f"moved blocks {', '.join(map(str, ids))} to {to_code}")


def _resolve_blocks(store: Store, ctx: _Ctx, items: Sequence[str | int]) -> list[int]:
    """Block ids from ids or building names / ``osm_type/osm_id`` (the block holding its point)."""
    ids: list[int] = []
    known = set(ctx.blocks["block_id"].astype(int))
    names: list[str] = []
    for it in items:
        s = str(it).strip()
        if s.isdigit():
            if int(s) not in known:
                raise NotFoundError(f"block {s} is not in plan {ctx.row['id']}",
                                    hint="export blocks to see their ids: gridpatrol export blocks FILE")
            ids.append(int(s))
        else:
            names.append(s)
    if names:
        b = store.read_layer("buildings", bbox=ctx.blocks.total_bounds.tolist())
        for n in names:
            if "/" in n and n.split("/", 1)[1].isdigit():
                t, i = n.split("/", 1)
                hit = b[(b["osm_type"].astype(str) == t) & (b["osm_id"] == int(i))]
            else:
                hit = b[b["name"].astype(str) == n]
            if len(hit) == 0:
                raise NotFoundError(f"no building named {n!r}", hint="use a block id, a building name or way/<osm id>")
            x, y = representative_xy(hit.geometry)
            idx = assign_xy(x, y, ctx.blocks.geometry)
            ids.extend(int(ctx.blocks["block_id"].iloc[i]) for i in idx if i >= 0)
    return sorted(set(ids))


def set_locked(store: Store, codes: Sequence[str], locked: bool, *, plan_id: int | None = None,
               created_by: str | None = None) -> EditResult:
    """Lock or unlock grids (new plan version). Edits that touch a locked grid are refused."""
    ctx = _context(store, plan_id, need_blocks=False)
    sel = _require_grids(ctx, codes, unlocked=False)
    grids = ctx.grids.copy()
    grids.loc[sel.index, "locked"] = bool(locked)
    word = "locked" if locked else "unlocked"
    metrics = json.loads(ctx.row["metrics_json"] or "{}")
    with store.begin() as conn:
        pid = insert_plan(conn, method="edit", parent=int(ctx.row["id"]), params=ctx.params, metrics=metrics,
                           created_by=created_by, note=f"{word} {', '.join(map(str, codes))}")
        cols = [c for c in grids.columns if c not in ("id", "plan_id")]
        insert_rows(store, conn, pid, grids[cols], ctx.blocks.drop(columns=["id", "plan_id"]) if len(ctx.blocks) else None)
    return EditResult(plan_id=pid, parent_plan_id=int(ctx.row["id"]), changed_codes=sorted(map(str, codes)),
                      message=f"{word} {', '.join(map(str, codes))}")


def rebalance_grids(store: Store, codes: Sequence[str], *, plan_id: int | None = None, force: bool = False,
                    created_by: str | None = None) -> EditResult:
    """Rebalance households among neighbouring grids of one area with few block moves.

    Grid codes and the set of grids stay; only boundary blocks move (``gis.partition.rebalance``).
    When no block moves, no version is written: the result names the current plan as both
    ``plan_id`` and ``parent_plan_id``, with ``changed_codes`` empty. Refused when a grid is locked, the grids are in different areas or not connected.
    """
    from gridpatrol.gis.partition import rebalance

    ctx, codes = _neighbour_group(store, plan_id, codes, "rebalance")
    blocks = ctx.blocks.copy()
    mask = blocks["grid_code"].isin(codes)
    bare = sorted(set(codes) - set(blocks.loc[mask, "grid_code"].astype(str)))
    if bare:  # a grid whose blocks were all given away outside gridpatrol: nothing to balance it with
        raise ConflictError(f"网格 {', '.join(bare)} 没有街区，无法重新平衡 / grid {', '.join(bare)} holds no blocks, "
                            "so households cannot be moved to or from it",
                            hint="gridpatrol check-grids lists the grid; merge it into a neighbour or redraw the area")
    sub = blocks[mask].reset_index(drop=True)
    adj = _block_graph(ctx, sub)
    index_of = {c: i for i, c in enumerate(codes)}
    start = np.array([index_of[c] for c in sub["grid_code"]])
    target, low, high = ctx.params.workload_band()
    loads = sub if ctx.params.on_households else sub.assign(households=grid_workload(sub, ctx.params))
    rural = _rural_settlements(ctx, sub, roads=True)
    refused: dict[tuple[int, str], tuple[float, float]] = {}
    if rural is None:
        labels = np.asarray(rebalance(loads, adj, start, list(range(len(codes))),
                                      target_households=target, min_households=low, max_households=high))
    else:  # a rural plan: whole settlements move (a unit already split keeps its parts in their grids)
        unit_frame, unit_adj, back = _contract(loads, adj, rural.unit_of_block, start)
        unit_start = np.zeros(len(unit_frame), dtype=np.int64)
        unit_start[back] = start
        accept, prefer = rural_edits.rebalance_limits(ctx, rural, sub, codes, back, unit_start, refused)
        labels = np.asarray(rebalance(unit_frame, unit_adj, unit_start, list(range(len(codes))),
                                      target_households=target, min_households=low, max_households=high,
                                      accept=accept, prefer=prefer))[back]
        if refused and not (labels != start).any():  # the nearest miss, in a share of its limit
            (g, limit), (value, cap) = min(refused.items(), key=lambda kv: (kv[1][0] / kv[1][1], kv[0]))
            if limit == "area":
                zh = f"面积超过上限 {cap:,.0f} m²（--max-area-m2，超出 {value - cap:,.0f} m²）"
                en = f"over the area limit of {cap:,.0f} m² (--max-area-m2) by {value - cap:,.0f} m²"
            else:
                zh = (f"到最远的居民点需 {value / 60:.1f} 分钟，超过路程上限 {cap / 60:g} 分钟"
                      f"（--max-travel-min，超出 {(value - cap) / 60:.1f} 分钟）")
                en = (f"{value / 60:.1f} min to its farthest settlement (from its station, else its best hub), over the travel limit of "
                      f"{cap / 60:g} min (--max-travel-min) by {(value - cap) / 60:.1f} min")
            raise ConflictError(f"重新平衡被拒绝：平衡户数的移动都会使网格超过上限，网格 {codes[g]} {zh} / rebalance refused: "
                                f"every move that balances households would break a limit: grid {codes[g]} would be {en}",
                                hint="nothing was changed; move blocks by hand (move-blocks) or redraw the area with "
                                     "other limits")
    moved = int((labels != start).sum())
    if moved == 0:
        pid = int(ctx.row["id"])
        return EditResult(plan_id=pid, parent_plan_id=pid, changed_codes=[],
                          message=f"nothing to rebalance in {', '.join(codes)}: no block move brings them nearer "
                                  f"the target; no new version written (plan {pid} stays current)")
    blocks.loc[mask, "grid_code"] = [codes[int(lab)] for lab in labels]
    return _commit_edit(store, ctx, blocks, codes, force=force, created_by=created_by,
                        note=f"rebalanced {', '.join(codes)} ({moved} blocks moved"
                             + ("; moves over the rural limits left out)" if refused else ")"))


def _rural_settlements(ctx: _Ctx, sub: gpd.GeoDataFrame, *, roads: bool = False):  # noqa: ANN202
    """The settlements of ``sub``'s blocks (one area's; rural_draw.SettlementBlocks) when the plan is
    rural, else None; with ``roads``, their travel over the plan's streets too (a travel limit only)."""
    if getattr(ctx.params, "mode", "urban") != "rural":
        return None
    from gridpatrol.layers.grids.rural_draw import SettlementBlocks

    area = ctx.areas[ctx.areas["code"].astype(str) == str(sub["area_code"].iloc[0])]
    if len(area) == 0:
        raise NotFoundError(f"area {sub['area_code'].iloc[0]} of the plan is not among the planning areas",
                            hint="import the area boundaries again (import-areas)")
    return SettlementBlocks.of(ctx.store, sub, area.geometry.iloc[0], ctx.params, ctx.metric,
                               shapely.box(*ctx.grids.total_bounds) if roads else None)


def _rural_units(ctx: _Ctx, sub: gpd.GeoDataFrame) -> np.ndarray | None:
    """The settlement unit of each block of ``sub`` (one area's) when the plan is rural, else None."""
    rural = _rural_settlements(ctx, sub)
    return None if rural is None else rural.unit_of_block


def _contract(frame: pd.DataFrame, adj: nx.Graph, units: np.ndarray, start: np.ndarray | None = None
              ) -> tuple[pd.DataFrame, nx.Graph, np.ndarray]:
    """``frame``'s blocks grouped by unit (and by ``start`` grid, when given, so that a unit lying in
    two grids is two): (one row per group with block_id and households summed, their adjacency
    with the shared lengths summed, the group of each row of ``frame``)."""
    key = pd.MultiIndex.from_arrays([units, np.zeros(len(units), dtype=np.int64) if start is None else start])
    back, _ = pd.factorize(key)
    groups = pd.DataFrame({"block_id": back, "households": frame["households"].to_numpy(dtype=float)})
    groups = groups.groupby("block_id", as_index=False)["households"].sum()
    group_of = dict(zip(frame["block_id"].astype(int), back.tolist()))
    graph = nx.Graph()
    graph.add_nodes_from(groups["block_id"].tolist())
    for u, v, d in adj.edges(data=True):
        a, b = group_of.get(int(u)), group_of.get(int(v))
        if a is None or b is None or a == b:
            continue
        w = float(d.get("weight", d.get("length_m", 1.0)))
        if graph.has_edge(a, b):
            graph[a][b]["length_m"] += w
        else:
            graph.add_edge(a, b, length_m=w)
    return groups, graph, back


def _single_part_blocks(ctx: _Ctx, blocks: gpd.GeoDataFrame, first_new_id: int) -> gpd.GeoDataFrame:
    """``blocks`` (EPSG:4326) with every multi-part block made single: its minor parts join the
    neighbouring block they share the longest boundary with (see gis.slivers.settle_blocks)."""
    if (shapely.get_num_geometries(blocks.geometry.to_numpy()) <= 1).all():
        return blocks
    buildings = read_within(ctx.store, "buildings", shapely.box(*blocks.total_bounds))
    settled, _ = settle_blocks(blocks.to_crs(ctx.metric), buildings.to_crs(ctx.metric), first_new_id=first_new_id)
    return settled.drop(columns=["owner"]).to_crs("EPSG:4326")


def plan_from_blocks(store: Store, blocks: gpd.GeoDataFrame, params: PlanParams, *, note: str,
                     created_by: str | None = None) -> int:
    """Store a plan made elsewhere of ready blocks (block_id, area_code, grid_code, households,
    buildings, street_m, area_m2; EPSG:4326): grids are their dissolve, with metrics. Returns its id."""
    metric = metric_crs_of(shapely.box(*blocks.total_bounds))
    grids = mark_exempt(grids_from_blocks(blocks, metric), params.checked())
    with store.begin() as conn:
        pid = insert_plan(conn, method="draw", parent=None, params=params, metrics=plan_metrics(grids, params),
                          created_by=created_by, note=note)
        insert_rows(store, conn, pid, grids, blocks)
    return pid


def restore_version(store: Store, source: int, *, note: str, extra: dict | None = None,
                    created_by: str | None = None) -> EditResult:
    """A new version (child of the newest) with the grids and blocks of version ``source``: undo and redo.

    Nothing is lost: ``source`` and every version after it stay. ``extra`` is kept in the new
    version's metrics (e.g. ``{"undo_of": 7}``)."""
    parent = latest_plan_id(store)
    src = plan_row(store, source)
    grids, blocks = read_grids(store, source), read_blocks(store, source)
    kept = {k: v for k, v in json.loads(src["metrics_json"] or "{}").items() if k not in ("restored", "undo_of", "redo_of")}
    metrics = {**kept, "restored": int(source), **(extra or {})}
    with store.begin() as conn:
        pid = insert_plan(conn, method="edit", parent=parent, params=PlanParams.from_json(src["params_json"]),
                          metrics=metrics, created_by=created_by, note=note)
        insert_rows(store, conn, pid, grids.drop(columns=["id", "plan_id"]),
                    blocks.drop(columns=["id", "plan_id"]) if len(blocks) else None)
    before = set(read_grids(store, parent)["code"].astype(str))
    after = set(grids["code"].astype(str))
    return EditResult(plan_id=pid, parent_plan_id=parent, changed_codes=sorted(after),
                      removed_codes=sorted(before - after), message=note)
