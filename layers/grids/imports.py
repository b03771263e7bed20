"""Importing a grid layer made elsewhere as a new plan."""
from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from gridpatrol.gis.assign import assign_buildings
from gridpatrol.gis.errors import InputError, NotFoundError
from gridpatrol.gis.gridcodes import assign_codes
from gridpatrol.gis.slivers import settle_blocks
from gridpatrol.layers.grids.core import (
    area_label,
    as_multi,
    insert_plan,
    insert_rows,
    metric_crs_of,
    plan_metrics,
    plan_row,
    planning_areas,
    read_within,
    shape_metrics,
)
from gridpatrol.layers.models import GridPlan, utcnow
from gridpatrol.layers.plan_params import PlanParams
from gridpatrol.layers.store import Store
from sqlalchemy import select


def _blocks_of_imported(store: Store, grids: gpd.GeoDataFrame, areas: gpd.GeoDataFrame, params: PlanParams,
                        metric) -> tuple[gpd.GeoDataFrame, list[dict]]:
    """Street blocks of each planning area cut along the imported grid boundaries too, each given
    the grid overlapping it most: an imported plan can then be split, merged, moved and
    rebalanced like a drawn one. Blocks are single polygons; a detached sliver (under
    ``gis.slivers.SLIVER_M2``) goes to the neighbouring grid it shares the longest boundary
    with, and is returned in the report (area_code, from, to, area_m2, shared_m). Parts of an
    area no imported grid covers get no block (check-grids reports them as gaps)."""
    from gridpatrol.gis.blocks import build_blocks

    out, report, next_id = [], [], 1
    for _, area in areas.iterrows():
        inside = grids[grids["parent_code"].astype(str) == str(area["code"])]
        if not len(inside):
            continue
        geom = area.geometry
        roads = read_within(store, "roads", geom)
        barriers = read_within(store, "barriers", geom)
        buildings = read_within(store, "buildings", geom)
        edges = inside.boundary.explode(index_parts=False)
        cuts = gpd.GeoDataFrame({"kind": ["grid_boundary"] * len(edges)}, geometry=edges.to_numpy(), crs="EPSG:4326")
        lines = pd.concat([barriers, cuts], ignore_index=True) if len(barriers) else cuts
        try:
            b = build_blocks(geom, roads, lines, buildings, metric_crs=metric,
                             max_block_households=max(params.target_households / 6.0, 1.0),
                             area_name=area_label(area))
        except InputError:
            continue
        b = b[b["area_m2"] > 0.01]  # a degenerate face adds nothing and touches nothing
        if not len(b):
            continue
        # Faces under the sliver size of build_blocks are merged across an imported edge too, and
        # such merges can leave a block in parts touching at a corner: settle both here, so that
        # every grid rebuilt from its blocks is the imported one up to slivers, in one piece.
        bm, absorbed = settle_blocks(b.to_crs(metric), buildings.to_crs(metric),
                                     owners_m=inside.to_crs(metric).geometry.to_numpy())
        codes = inside["code"].astype(str).to_numpy()
        report += [{"area_code": str(area["code"]), "from": str(codes[m.from_label]), "to": str(codes[m.to_label]),
                    "area_m2": round(m.area_m2, 2), "shared_m": round(m.shared_m, 2)} for m in absorbed]
        b = bm[bm["owner"] >= 0].to_crs("EPSG:4326")
        b["grid_code"] = codes[b["owner"].to_numpy()]
        b = b.drop(columns=["owner"])
        b["area_code"] = str(area["code"])
        b["block_id"] = np.arange(next_id, next_id + len(b))
        next_id += len(b)
        out.append(b)
    if not out:
        empty = gpd.GeoDataFrame({"block_id": [], "grid_code": [], "area_code": []}, geometry=[], crs="EPSG:4326")
        return empty, report
    return gpd.GeoDataFrame(pd.concat(out, ignore_index=True), geometry="geometry", crs="EPSG:4326"), report


def _inherited_params(store: Store) -> PlanParams:
    """The newest plan's params when it is rural (the county plans its villages that way), else the default."""
    try:
        newest = PlanParams.from_json(plan_row(store)["params_json"])
    except NotFoundError:
        return PlanParams()
    return newest if newest.mode == "rural" else PlanParams()


IMPORT_MODES = ("urban", "rural")


def import_params(store: Store, mode: str | None) -> PlanParams:
    """The rules an imported plan is judged by: ``mode`` None follows the newest plan (rural with its
    limits when it is rural, else urban); ``urban`` is the default household window; ``rural`` takes
    the limits (area, travel, settlement gap) of the newest rural plan, or rural rules without limits
    when the store has none."""
    if mode is None:
        return _inherited_params(store)
    if mode not in IMPORT_MODES:
        raise InputError(f"--mode 只能是 urban 或 rural，不能是 {mode!r} / --mode must be urban or rural, not {mode!r}",
                         hint="urban（户数区间）或 rural（完整居民点、面积和路程上限） / urban (household window) "
                              "or rural (whole villages, area and travel limits)")
    if mode == "urban":
        return PlanParams()
    t = GridPlan.__table__
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.c.params_json).order_by(t.c.id.desc())).all()
    for (pj,) in rows:
        p = PlanParams.from_json(pj)
        if p.mode == "rural":
            return p
    return PlanParams(mode="rural")


def import_grids(store: Store, path: str | Path, *, crs: str | None = None, code_field: str | None = None,
                 parent_field: str | None = None, params: PlanParams | None = None, mode: str | None = None,
                 created_by: str | None = None) -> int:
    """Import a grid layer made elsewhere (GeoJSON, GPKG, Shapefile) as a new plan.

    Codes come from ``code_field`` (default a field named ``code`` when present, else they are
    assigned); the parent area from ``parent_field`` or, by default, the planning area holding
    most of each grid. Workload metrics are computed from the store's buildings and roads.
    Each grid becomes the union of the street blocks it overlaps most, so an exported plan comes
    back with the same grids and households; detached slivers under ``gis.slivers.SLIVER_M2``
    go to the neighbour they share the longest boundary with, listed in the plan's metrics
    (``slivers_absorbed``). Nothing is written when the file is unusable.

    Without ``params``, the rules come from ``mode`` (``import_params``): ``rural`` makes a rural
    plan with the limits of the newest rural plan (area, travel, settlement gap), judged and edited
    by the rural rules (docs/rural.md); ``urban`` the default household band; None follows the
    newest plan (rural when it is rural, else urban).
    """
    from gridpatrol.gis.vector import checked_polygons, read_vector

    params = (params or import_params(store, mode)).checked()
    path = Path(path)
    gdf = read_vector(path, crs=crs)
    if code_field is None and "code" in gdf.columns:
        code_field = "code"
    for f in (code_field, parent_field):
        if f is not None and f not in gdf.columns:
            raise InputError(f"{path}: no field {f!r}", hint="fields: " + ", ".join(map(str, gdf.columns.drop(gdf.geometry.name))))
    geoms = checked_polygons(gdf.geometry, path, "grids")
    grids = gpd.GeoDataFrame({"name": None}, geometry=geoms, crs="EPSG:4326", index=range(len(geoms)))
    areas = planning_areas(store)
    metric = metric_crs_of(shapely.box(*grids.total_bounds))
    if parent_field is not None:
        grids["parent_code"] = gdf[parent_field].astype(str).to_numpy()
    else:
        gm = grids.to_crs(metric).geometry.to_numpy()
        am = areas.to_crs(metric).geometry.to_numpy()
        gi, ai = shapely.STRtree(am).query(gm, predicate="intersects")
        share = shapely.area(shapely.intersection(gm[gi], am[ai])) if len(gi) else np.zeros(0)
        best = pd.DataFrame({"g": gi, "a": ai, "s": share}).sort_values("s").groupby("g").tail(1)
        parent = np.full(len(grids), None, dtype=object)
        parent[best["g"].to_numpy()] = areas["code"].to_numpy()[best["a"].to_numpy()]
        if (parent == None).any():  # noqa: E711
            i = int(np.flatnonzero(parent == None)[0])  # noqa: E711
            raise InputError(f"{path}: feature {i} lies in no planning area",
                             hint="import the area boundaries (import-areas) that the grids belong to")
        grids["parent_code"] = parent
    grids["code"] = (gdf[code_field].astype(str).to_numpy() if code_field
                     else assign_codes(grids, fmt=params.code_format, metric_crs=metric).to_numpy())
    # Blocks cut along the imported edges too; each grid becomes the union of its blocks, so the
    # plan can be redrawn like a drawn one. That moves an imported edge only where it ran through a
    # sliver thinner than a block may be (4 m) or left the area; the area moved is reported.
    blocks, absorbed = _blocks_of_imported(store, grids, areas, params, metric)
    before_m = grids.to_crs(metric).geometry
    for code, grp in blocks.groupby("grid_code"):
        grids.loc[grids["code"] == code, "geometry"] = as_multi(shapely.union_all(grp.geometry.to_numpy()))
    moved_m2 = float(before_m.symmetric_difference(grids.to_crs(metric).geometry, align=False).area.sum())
    buildings = store.read_layer("buildings", bbox=grids.total_bounds.tolist())
    assigned = assign_buildings(buildings, grids)
    real = (buildings["estimate_method"].astype(str) != "landuse") if len(buildings) else pd.Series(dtype=bool)
    hh = buildings["households"].groupby(assigned).sum() if len(buildings) else pd.Series(dtype=float)
    nb = real.groupby(assigned).sum() if len(buildings) else pd.Series(dtype=float)
    grids["households"] = grids["code"].map(hh).fillna(0.0).to_numpy()
    grids["buildings"] = grids["code"].map(nb).fillna(0).astype(int).to_numpy()
    if len(blocks):
        # A grid made of blocks counts what its blocks count (landuse estimates shared by area), as
        # a drawn plan and every later edit of this one do.
        of_blocks = blocks.groupby("grid_code")[["households", "buildings"]].sum()
        has = grids["code"].isin(of_blocks.index).to_numpy()
        grids.loc[has, "households"] = grids.loc[has, "code"].map(of_blocks["households"]).to_numpy()
        grids.loc[has, "buildings"] = grids.loc[has, "code"].map(of_blocks["buildings"]).astype(int).to_numpy()
    roads = store.read_layer("roads", bbox=grids.total_bounds.tolist())
    if len(roads):
        gm = grids.to_crs(metric).geometry.to_numpy()
        rm = roads.to_crs(metric).geometry.to_numpy()
        gi, ri = shapely.STRtree(rm).query(gm, predicate="intersects")
        lens = shapely.length(shapely.intersection(gm[gi], rm[ri])) if len(gi) else np.zeros(0)
        grids["street_m"] = np.bincount(gi, weights=lens, minlength=len(grids))
    else:
        grids["street_m"] = 0.0
    grids["n_blocks"] = grids["code"].map(blocks["grid_code"].value_counts()).fillna(0).astype(int).to_numpy() \
        if len(blocks) else 0
    grids = shape_metrics(grids, metric)
    grids["exempt"] = False
    grids["locked"] = False
    metrics = plan_metrics(grids, params)
    metrics["source"] = str(path.resolve())
    metrics["blocks"] = len(blocks)
    metrics["boundary_adjusted_m2"] = moved_m2
    metrics["slivers_absorbed"] = absorbed
    from gridpatrol.layers.importing import file_sha256

    with store.begin() as conn:
        pid = insert_plan(conn, method="import", parent=None, params=params, metrics=metrics,
                           created_by=created_by, note=f"imported from {path.name}")
        insert_rows(store, conn, pid, grids.drop(columns=["n_blocks"]), blocks)
        store.insert_gdf(conn, "imports", gpd.GeoDataFrame([{
            "kind": "grids", "source_path": str(path.resolve()), "source_sha256": file_sha256(path),
            "source_bytes": path.stat().st_size, "options_json": json.dumps({"crs": crs, "code_field": code_field}),
            "counts_json": json.dumps({"grids": len(grids), "plan_id": pid}), "dropped_json": "{}",
            "started_at": utcnow(), "finished_at": utcnow()}], geometry=[None], crs="EPSG:4326"))
    return pid
