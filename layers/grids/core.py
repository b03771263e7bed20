"""Grid plans in the store: reading, workload and plan metrics, drawing, checking, diffs."""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from gridpatrol.gis.assign import (
    assign_buildings,
    assign_xy,
    blocks_joined_by_buildings,
    representative_xy,
)
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.gis.errors import InputError, NotFoundError
from gridpatrol.gis.grid_check import PROBLEM_COLUMNS, SEVERITY, CheckResult, check_plan
from gridpatrol.gis.gridcodes import CodeFormat, assign_codes
from gridpatrol.gis.partition import merge_blocked
from gridpatrol.gis.workload import block_population, measures_frame, workload
from gridpatrol.layers.empty_bounds import StoredBounds, save_bounds
from gridpatrol.layers.models import Block, Grid, GridPlan, utcnow
from gridpatrol.layers.plan_base import check_current, record_write
from gridpatrol.layers.plan_params import PlanParams
from gridpatrol.layers.store import Store
from sqlalchemy import Connection, func, insert, select

# Finest first: grids nest in the finest administrative level that is loaded.
AREA_LEVELS = ("community", "street", "district", "county")
Progress = Callable[[str], None]


def planning_areas(store: Store, conn: Connection | None = None) -> gpd.GeoDataFrame:
    """The areas grids nest in: finest loaded level (community, street, district, county),
    each intersected with the union of the OSM import coverage polygons. EPSG:4326; columns
    code, name, level, geometry. Areas outside the coverage are dropped.
    """
    areas = store.read_layer("areas", conn=conn)
    areas = areas[areas["level"].isin(AREA_LEVELS)]
    if len(areas) == 0:
        raise NotFoundError("no administrative areas are loaded",
                            hint="import district or community boundaries first: gridpatrol import-areas FILE --crs gcj02")
    level = next(lv for lv in AREA_LEVELS if (areas["level"] == lv).any())
    areas = areas[areas["level"] == level]
    imports = store.read_layer("imports", conn=conn)
    cover = imports.geometry[imports["kind"].eq("osm") & imports.geometry.notna() & ~imports.geometry.is_empty]
    if len(cover) == 0:
        cover = imports.geometry[imports.geometry.notna() & ~imports.geometry.is_empty]
    if len(cover) == 0:
        raise NotFoundError("no OSM import is loaded, so there are no streets or buildings to draw grids from",
                            hint="gridpatrol import-osm EXTRACT first")
    coverage = shapely.union_all(shapely.make_valid(cover.to_numpy()))
    geoms = shapely.intersection(shapely.make_valid(areas.geometry.to_numpy()), coverage)
    out = gpd.GeoDataFrame({"code": areas["code"].astype(str).to_numpy(), "name": areas["name"].to_numpy(),
                            "level": level}, geometry=geoms, crs="EPSG:4326")
    out = out[~out.geometry.is_empty & (shapely.area(out.geometry.to_numpy()) > 0)]
    # keep polygonal parts only (an intersection can add slivers of lines/points)
    out["geometry"] = [_polygonal(g) for g in out.geometry]
    return out.reset_index(drop=True)


def area_label(area: pd.Series) -> str:
    """How messages name a planning area: code and name."""
    name = area.get("name")
    return f"{area['code']} {name}" if isinstance(name, str) and name else str(area["code"])


def _polygonal(g):  # noqa: ANN001, ANN202
    parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def list_plans(store: Store) -> pd.DataFrame:
    """All plans, newest last: id, created_at, method, parent_plan_id, name, grids, key metrics."""
    t = GridPlan.__table__
    g = Grid.__table__
    with store.engine.connect() as c:
        rows = c.execute(select(t).order_by(t.c.id)).mappings().all()
        counts = dict(c.execute(select(g.c.plan_id, func.count()).group_by(g.c.plan_id)).all())
    out = []
    for r in rows:
        m = json.loads(r["metrics_json"] or "{}")
        out.append({"plan": r["id"], "created_at": str(r["created_at"])[:19], "method": r["method"],
                    "parent": r["parent_plan_id"], "grids": counts.get(r["id"], 0),
                    "share_in_band": m.get("share_in_band"), "note": r["note"]})
    return pd.DataFrame(out)


def latest_plan_id(store: Store, conn: Connection | None = None) -> int:
    """Id of the newest plan; NotFoundError when there is none."""
    t = GridPlan.__table__
    with store.engine.connect() if conn is None else _nullctx(conn) as c:
        pid = c.execute(select(func.max(t.c.id))).scalar()
    if pid is None:
        raise NotFoundError("there is no grid plan yet", hint="gridpatrol draw-grids (or import-grids FILE)")
    return int(pid)


class _nullctx:
    def __init__(self, conn: Connection):
        self.conn = conn

    def __enter__(self) -> Connection:
        return self.conn

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        return None


def plan_row(store: Store, plan_id: int | None = None, conn: Connection | None = None) -> dict:
    """The grid_plans row of ``plan_id`` (default: the newest plan) as a dict."""
    pid = latest_plan_id(store, conn) if plan_id is None else int(plan_id)
    t = GridPlan.__table__
    with store.engine.connect() if conn is None else _nullctx(conn) as c:
        row = c.execute(select(t).where(t.c.id == pid)).mappings().first()
    if row is None:
        raise NotFoundError(f"grid plan {pid} does not exist", hint="list the plans with: gridpatrol plans")
    return dict(row)


def read_grids(store: Store, plan_id: int | None = None, conn: Connection | None = None) -> gpd.GeoDataFrame:
    """Grids of a plan (default: newest) in EPSG:4326, ordered by code."""
    pid = plan_row(store, plan_id, conn)["id"]
    g = store.read_layer("grids", where=Grid.__table__.c.plan_id == pid, conn=conn)
    return g.sort_values("code").reset_index(drop=True)


def read_blocks(store: Store, plan_id: int | None = None, conn: Connection | None = None) -> gpd.GeoDataFrame:
    """Blocks of a plan (default: newest) in EPSG:4326, ordered by block_id."""
    pid = plan_row(store, plan_id, conn)["id"]
    b = store.read_layer("blocks", where=Block.__table__.c.plan_id == pid, conn=conn)
    return b.sort_values("block_id").reset_index(drop=True)


def read_within(store: Store, layer: str, geom, conn: Connection | None = None) -> gpd.GeoDataFrame:
    """Rows of ``layer`` whose bbox meets the bbox of ``geom`` (EPSG:4326)."""
    return store.read_layer(layer, bbox=shapely.bounds(geom).tolist(), conn=conn)


def real_buildings(buildings: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Mapped footprints only: landuse-based household estimates are areas, not buildings."""
    if "estimate_method" in buildings.columns:
        return buildings[buildings["estimate_method"].astype(str) != "landuse"]
    return buildings


def metric_crs_of(geom):  # noqa: ANN001, ANN202
    """The local metric CRS at ``geom``'s centroid."""
    c = shapely.centroid(geom)
    return local_metric_crs(c.x, c.y)


def grids_from_blocks(blocks: gpd.GeoDataFrame, metric_crs, locked: dict[str, bool] | None = None,
                       extra: pd.DataFrame | None = None) -> gpd.GeoDataFrame:
    """Dissolve blocks (grid_code, area_code) into grid rows with their workload metrics."""
    locked = locked or {}
    rows, geoms = [], []
    for code, grp in blocks.groupby("grid_code", sort=True):
        geom = shapely.union_all(grp.geometry.to_numpy())
        geoms.append(as_multi(geom))
        rows.append({"code": str(code), "parent_code": str(grp["area_code"].iloc[0]),
                     "households": float(grp["households"].sum()),
                     "buildings": int(grp["buildings"].sum()) if "buildings" in grp else 0,
                     "street_m": float(grp["street_m"].sum()), "n_blocks": len(grp),
                     "locked": bool(locked.get(str(code), False)),
                     **({"population": float(grp["population"].sum(min_count=1))} if "population" in grp else {})})
    out = gpd.GeoDataFrame(rows, geometry=geoms, crs="EPSG:4326")
    return shape_metrics(out, metric_crs)


def shape_metrics(grids: gpd.GeoDataFrame, metric_crs) -> gpd.GeoDataFrame:
    """``grids`` with area, perimeter and Polsby–Popper compactness (metres, in ``metric_crs``)."""
    m = grids.geometry.to_crs(metric_crs)
    area = m.area.to_numpy()
    perim = m.length.to_numpy()
    grids = grids.copy()
    grids["area_m2"] = area
    # Polsby–Popper: 4πA/P², 1 for a circle.
    grids["polsby_popper"] = np.where(perim > 0, 4 * math.pi * area / np.maximum(perim, 1e-9) ** 2, 0.0)
    return grids


def as_multi(geom):  # noqa: ANN001, ANN202
    """``geom``'s polygonal part as a MultiPolygon."""
    geom = _polygonal(geom)
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])
    return geom


def grid_workload(frame: pd.DataFrame, params: PlanParams) -> np.ndarray:
    """The workload the plan balances, per row of ``frame`` (grids or blocks): its households, its
    population, or the weighted sum of its measures (``PlanParams.workload_weights``)."""
    return workload(frame, params.workload_weights())


def grid_measures(grids: pd.DataFrame, params: PlanParams) -> pd.DataFrame:
    """Per grid: code, parent_code, every measure (households, population, street_km, area_km2,
    buildings), the workload, the band it is judged against and whether it lies in it."""
    _, low, high = params.workload_band()
    w = grid_workload(grids, params)
    out = pd.concat([grids[["code", "parent_code"]].reset_index(drop=True),
                     measures_frame(grids).reset_index(drop=True)], axis=1)
    out["workload"] = w
    out["in_band"] = (w >= low - 1e-9) & (w <= high + 1e-9)
    if "exempt" in grids:
        out["exempt"] = grids["exempt"].fillna(False).astype(bool).to_numpy()
    return out


def plan_grid_measures(store: Store, plan_id: int | None = None) -> pd.DataFrame:
    """``grid_measures`` of a stored plan (default: the newest), by code."""
    row = plan_row(store, plan_id)
    return grid_measures(read_grids(store, row["id"]), PlanParams.from_json(row["params_json"]))


def measure_records(table: pd.DataFrame) -> list[dict]:
    """``grid_measures`` rows as JSON-ready dicts (numbers rounded: counts 1 decimal, km and km² 3)."""
    out = []
    for r in table.to_dict("records"):
        rec = {}
        for k, v in r.items():
            if hasattr(v, "item"):
                v = v.item()
            if isinstance(v, float):
                v = None if v != v else round(v, 3 if k in ("street_km", "area_km2") else 1)
            rec[k] = v
        out.append(rec)
    return out


def plan_caps(grids: pd.DataFrame, params: PlanParams) -> list[tuple[np.ndarray, float]]:
    """(value per grid, cap) for each of the plan's hard caps: street_m and area_m2."""
    return [(pd.to_numeric(grids[col], errors="coerce").fillna(0.0).to_numpy(dtype=float), float(cap))
            for col, cap in (("street_m", params.max_street_m), ("area_m2", params.max_area_m2))
            if cap is not None and col in grids]


def mark_exempt(grids: gpd.GeoDataFrame, params: PlanParams, meter=None) -> gpd.GeoDataFrame:  # noqa: ANN001
    """Grids outside the band that no regrouping of blocks can fix are exempt (and reported):
    a single indivisible block, or the only grid of an area whose workload is all below the
    band (grids may not cross area boundaries), or one whose every merge breaks a hard cap. The
    band is the plan's workload band. With ``--max-route-min`` and a ``meter``
    (route_cap.RouteMeter) the patrol is one of the caps, and ``route_min`` / ``route_lower_min``
    hold each grid's patrol (minutes, from the default start)."""
    grids = grids.copy()
    hh = grid_workload(grids, params)
    _, low, high = params.workload_band()
    out_band = (hh < low) | (hh > high)
    # A grid below the band that touches no other grid of its area (the only grid of a small
    # area, or a detached piece of one, e.g. an empty corner cut off by the extract's edge)
    # cannot grow: merging with a grid it does not touch would break contiguity.
    geoms = grids.geometry.values
    parents = grids["parent_code"].to_numpy()
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = (left != right) & (parents[left] == parents[right])
    shared = shapely.length(shapely.intersection(geoms[left[keep]], geoms[right[keep]]))
    has_neighbour = np.zeros(len(grids), bool)
    has_neighbour[left[keep][shared > 0]] = True
    isolated_small = ~has_neighbour & (hh < low)
    # below the band, and no merge with a touching grid can lift it without breaking a hard cap
    forced = np.zeros(len(grids), dtype=bool)
    caps = plan_caps(grids, params)
    pair_share = None
    if getattr(params, "max_route_min", None) and meter is not None:
        from gridpatrol.layers.grids.route_cap import route_inputs

        route = route_inputs(meter, grids.reset_index(drop=True), params.max_route_min)
        grids["route_min"], grids["route_lower_min"] = route["route_minutes"], route["route_lower"]
        below = hh < low

        def pair_share(i: int, j: int) -> float:
            return route["pair_route_share"](i, j) if below[i] or below[j] else 0.0
    if caps or pair_share is not None:
        pairs = np.column_stack([left[keep][shared > 0], right[keep][shared > 0]])
        blocked, share = merge_blocked(pairs, hh, caps, high, pair_share)
        forced = blocked & ~np.isnan(share) & (hh < low)
    grids["exempt"] = out_band & ((grids["n_blocks"].to_numpy() == 1) | isolated_small | forced)
    return grids


def plan_metrics(grids: gpd.GeoDataFrame, params: PlanParams, adjacency: nx.Graph | None = None,
                 grid_of_block: dict[int, str] | None = None) -> dict:
    """Per-plan metrics: worst deviation from target (non-exempt), share in band, mean
    Polsby–Popper and the share of internal grid boundary length lying on streets or barriers
    (from the block adjacency's ``length_m``/``line_m``)."""
    hh = grid_workload(grids, params)
    target, low, high = params.workload_band()
    exempt = grids["exempt"].to_numpy(dtype=bool) if "exempt" in grids else np.zeros(len(grids), bool)
    in_band = (hh >= low) & (hh <= high)
    dev = np.abs(hh - target) / max(target, 1e-9)
    m = {
        "grids": int(len(grids)),
        "households": float(grids["households"].to_numpy(dtype=float).sum()),
        "target_households": params.target_households,
        "band": [params.min_households, params.max_households],
        "exempt_grids": int(exempt.sum()),
        "share_in_band": float(in_band.mean()) if len(grids) else 1.0,
        "share_in_band_non_exempt": float(in_band[~exempt].mean()) if (~exempt).any() else 1.0,
        "worst_deviation": float(dev[~exempt].max()) if (~exempt).any() else 0.0,
        "mean_polsby_popper": float(grids["polsby_popper"].mean()) if len(grids) else 0.0,
        "empty_grids": int((grids["households"].to_numpy(dtype=float) <= 0).sum()),
    }
    if not params.on_households:
        m["balance"] = params.balance
        m["weights"] = params.workload_weights()
        m["workload_per_household"] = params.band_scale()
        m["workload"] = float(hh.sum())
        m["workload_band"] = [target, low, high]
    if adjacency is not None and grid_of_block is not None:
        total = on_line = 0.0
        for u, v, d in adjacency.edges(data=True):
            if grid_of_block.get(int(u)) != grid_of_block.get(int(v)):
                total += float(d.get("length_m", 0.0))
                on_line += float(d.get("line_m", 0.0))
        m["internal_boundary_m"] = total
        m["boundary_on_street_share"] = on_line / total if total > 0 else 1.0
    return m


def locked_grids(store: Store) -> gpd.GeoDataFrame:
    """Locked grids of the newest plan (empty when there is no plan)."""
    try:
        grids = read_grids(store)
    except NotFoundError:
        return gpd.GeoDataFrame({"code": [], "parent_code": []}, geometry=[], crs="EPSG:4326")
    return grids[grids["locked"].fillna(False).astype(bool)].reset_index(drop=True)


def codes_around_locked(parts: gpd.GeoDataFrame, locked_codes: dict[int, str], parent: str,
                         fmt: CodeFormat, metric) -> list[str]:
    """Codes for ``parts``: locked labels keep their code; the others are numbered west→east,
    north→south into the sequence numbers the locked grids leave free."""
    free_parts = parts[~parts["_part"].isin(list(locked_codes))]
    order = assign_codes(free_parts, fmt=fmt, metric_crs=metric) if len(free_parts) else pd.Series(dtype=object)
    taken = {int(fmt.parse(c)["seq"]) for c in locked_codes.values()}
    free_seq = (s for s in range(1, 10**6) if s not in taken)
    # assign_codes numbered the free parts 1..n in spatial order; map rank → next free number.
    rank = order.map(lambda c: int(fmt.parse(c)["seq"])).sort_values()
    new_code = {int(free_parts.loc[i, "_part"]): fmt.format(parent, next(free_seq)) for i in rank.index}
    return [locked_codes.get(int(p), new_code.get(int(p))) for p in parts["_part"]]


def draw_grids(store: Store, params: PlanParams | None = None, *, progress: Progress | None = None,
               created_by: str | None = None, name: str | None = None) -> int:
    """Draw a new plan for every planning area (see planning_areas); returns the new plan id.

    Blocks come from ``gis.blocks.build_blocks`` (streets, barriers, area outline), grids from
    ``gis.partition.partition_blocks`` on the block adjacency; codes follow
    ``params.code_format`` numbered west→east, north→south within each area. Grids locked in
    the newest plan are kept (same blocks by representative point, same code, still locked);
    the rest is redrawn around them. Earlier plans are kept. Nothing is written unless every
    area was drawn. The areas' proven least numbers of grids of 0 households are read from the store
    and those solved here kept there after the plan (layers.empty_bounds).
    """
    from gridpatrol.layers.grids.sanity import data_checks, refuse_sparse, summary_of

    params = (params or PlanParams()).checked()
    say = progress or (lambda _m: None)
    areas = planning_areas(store)
    say("checking data coverage")
    checks = data_checks(store, areas)
    if not params.allow_sparse:
        refuse_sparse(checks)
    all_blocks, all_grids = [], []
    graphs: list[nx.Graph] = []
    next_block = 1
    locked_all = locked_grids(store)
    built = []  # (area, metric CRS, blocks, roads, barriers) of every area with blocks
    for _, area in areas.iterrows():
        one = area_blocks(store, area, params, next_block, say)
        if one is not None:
            built.append(one)
            next_block = int(one[2]["block_id"].max()) + 1
    params = with_workload_scale(params, [b for _, _, b, _, _ in built])
    rural: dict[str, dict] = {}
    for one in built:
        if params.mode == "rural":  # whole settlements under area and travel limits (docs/rural.md)
            from gridpatrol.layers.grids.rural_draw import partition_area_rural

            blocks, grids, adj, rural[str(one[0]["code"])] = partition_area_rural(store, *one, params, locked_all, say)
        else:
            meter = None
            if params.max_route_min is not None:
                from gridpatrol.layers.grids.route_cap import RouteMeter

                meter = RouteMeter.around(store, one[0].geometry)
            blocks, grids, adj = partition_area(*one, params, locked_all, say, meter, bounds=StoredBounds(store))
        all_blocks.append(blocks)
        all_grids.append(grids)
        graphs.append(adj)
    if not all_grids:
        raise InputError("no blocks could be built in any planning area",
                         hint="are streets imported inside the areas? check gridpatrol info")
    bounds = [g.attrs["empty_grids_lower_bound"] for g in all_grids if "empty_grids_lower_bound" in g.attrs]
    solved = {d: v for g in all_grids for d, v in g.attrs.get("empty_bounds_solved", {}).items()}
    blocks = pd.concat(all_blocks, ignore_index=True)
    grids = pd.concat(all_grids, ignore_index=True)
    adj = nx.union_all(graphs) if len(graphs) > 1 else graphs[0]
    metrics = plan_metrics(grids, params, adj, dict(zip(blocks["block_id"].astype(int), blocks["grid_code"])))
    metrics["areas"] = areas["code"].tolist()
    if bounds:  # drawn with caps: the proven least number of grids of 0 households (gis.partition.empty_bound)
        metrics["empty_grids_lower_bound"] = int(sum(bounds))
    metrics["data_coverage"] = summary_of(checks)
    metrics["data_warnings"] = [w for c in checks for w in c["warnings"]]
    if rural:
        metrics["rural"] = rural
    say("writing the plan")
    with store.begin() as conn:
        pid = insert_plan(conn, method="draw", parent=None, params=params, metrics=metrics,
                           created_by=created_by, name=name, note=f"drawn for {len(areas)} areas")
        insert_rows(store, conn, pid, grids, blocks)
    save_bounds(store, solved)  # after the plan: a failed draw writes nothing, a failed save loses nothing
    return pid


AreaBlocks = tuple[pd.Series, Any, gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]


def area_blocks(store: Store, area: pd.Series, params: PlanParams, next_block: int,
                say: Progress) -> AreaBlocks | None:
    """(area, metric CRS, blocks, roads, barriers) of one planning area (a row of planning_areas), block
    ids from ``next_block``; None when no block could be built. Nothing is written."""
    from gridpatrol.gis.blocks import build_blocks

    say(f"area {area['code']}: reading streets and buildings")
    geom = area.geometry
    metric = metric_crs_of(geom)
    roads = read_within(store, "roads", geom)
    barriers = read_within(store, "barriers", geom)
    buildings = read_within(store, "buildings", geom)
    say(f"area {area['code']}: building blocks")
    if params.mode == "rural":  # blocks that never cut a settlement (layers/grids/rural_draw.py)
        from gridpatrol.layers.grids.rural_draw import rural_blocks

        blocks = rural_blocks(geom, roads, barriers, buildings, metric, params, area_label(area))
    else:
        # Blocks of at most half the target leave the partition room to balance every grid.
        blocks = build_blocks(geom, roads, barriers, buildings, metric_crs=metric,
                              max_block_households=max(params.target_households / 6.0, 1.0),
                              area_name=area_label(area))
    if len(blocks) == 0:
        return None
    groups = blocks_joined_by_buildings(blocks, buildings, metric_crs=metric)
    if groups.max() + 1 < len(blocks):
        say(f"area {area['code']}: joining {len(blocks) - groups.max() - 1} blocks split by streets through buildings")
        blocks = _merge_block_groups(blocks, groups, metric)
    blocks["population"] = block_population(blocks, buildings, metric)
    blocks["block_id"] = blocks["block_id"].astype(int) + next_block - 1
    return area, metric, blocks, roads, barriers


def partition_area(area: pd.Series, metric, blocks: gpd.GeoDataFrame, roads: gpd.GeoDataFrame,  # noqa: ANN001
                   barriers: gpd.GeoDataFrame, params: PlanParams, locked_all: gpd.GeoDataFrame,
                   say: Progress, meter=None, *, bounds: Mapping | None = None,  # noqa: ANN001
                   ) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, nx.Graph]:
    """Blocks (with grid_code), grids and block adjacency of one area's blocks (see area_blocks), cut by
    ``params`` (its workload scale set); the grids of ``locked_all`` inside the area are kept.
    ``meter`` (route_cap.RouteMeter on the streets around the area) is needed for ``max_route_min``.
    ``bounds``: proven least numbers of grids of 0 households by digest (layers.empty_bounds.StoredBounds):
    not solved again; those solved are in ``grids.attrs["empty_bounds_solved"]`` (for save_bounds)."""
    from gridpatrol.gis.blocks import block_adjacency
    from gridpatrol.gis.partition import (
        absorb_empty,
        enforce_caps,
        enforce_route,
        merge_small,
        partition_blocks,
        resplit_empty,
    )
    from gridpatrol.gis.partition.caps import empty_grids
    from gridpatrol.gis.partition.empty import fill_along_chains, fill_empty
    from gridpatrol.gis.partition.empty_bound import plan_empty_bound, recut_empty
    from gridpatrol.gis.partition.grow import grow_from_homes
    from gridpatrol.layers.grids.route_cap import M_PER_MIN, ROUTE_PER_STREET, RouteMeter

    fmt = CodeFormat(params.code_format)
    target, low, high = params.workload_band()
    say(f"area {area['code']}: adjacency of {len(blocks)} blocks")
    adj = block_adjacency(blocks, roads, barriers, metric_crs=metric)
    say(f"area {area['code']}: partitioning")
    kw = {}
    max_route = getattr(params, "max_route_min", None)
    street_cap = params.max_street_m
    if max_route is not None:
        # while cutting, the street length stands in for the patrol (route ≈ 2 × streets)
        est = max_route * M_PER_MIN / ROUTE_PER_STREET
        street_cap = est if street_cap is None else min(street_cap, est)
        meter = meter if meter is not None else RouteMeter(roads)
    if street_cap is not None:
        kw["max_street_m"] = street_cap
    if params.max_area_m2 is not None:
        kw["max_area_m2"] = params.max_area_m2
    locked = locked_all[locked_all["parent_code"].astype(str) == str(area["code"])]
    if len(locked):
        # A block belongs to a locked grid when its representative point lies in it.
        x, y = representative_xy(blocks.geometry)
        kw["locked"] = assign_xy(x, y, locked.geometry)
    # the partition balances the column "households": the plan's workload stands in for it
    loads = blocks if params.on_households else blocks.assign(households=grid_workload(blocks, params))
    empty_bound, solved = None, {}
    labels = np.asarray(partition_blocks(
        loads, adj, target_households=target, min_households=low,
        max_households=high, seed=params.seed, **kw))
    if street_cap is not None or params.max_area_m2 is not None:
        # the caps are hard: a grid over one is split until it meets it or is a single block (the
        # patrol's street estimate only sets the grid count above: the exact patrol decides splits)
        hard = {"max_street_m": params.max_street_m, "max_area_m2": params.max_area_m2}
        labels = enforce_caps(loads, adj, labels, seed=params.seed, locked=kw.get("locked"), **hard)
        accept = None
        if max_route is not None:
            geoms = blocks.geometry.to_crs(4326).to_numpy() if blocks.crs and not blocks.crs.equals(4326) \
                else blocks.geometry.to_numpy()

            def route_of(idx: np.ndarray) -> float:
                return meter.of_blocks(geoms, idx)[0]

            def accept(idx: np.ndarray) -> bool:
                return route_of(idx) <= max_route * (1 + 1e-9)

            say(f"area {area['code']}: patrols of the grids (--max-route-min {max_route:g})")
            labels = enforce_route(loads, adj, labels, minutes_of=route_of, max_minutes=max_route,
                                   seed=params.seed, locked=kw.get("locked"))
        # the split leaves grids of streets or land without households: join them where the caps allow
        # (the real street cap, not the estimate: the exact patrol decides through ``accept``)
        labels = merge_small(loads, adj, labels, low=low, high=high, locked=kw.get("locked"), accept=accept, **hard)
        # grids of 0 households that no whole merge can join: their blocks go one by one to the grids around
        labels = absorb_empty(loads, adj, labels, blocks["households"].to_numpy(dtype=float), high=high,
                              locked=kw.get("locked"), accept=accept, **hard)
        # and those left: re-cut with a touching grid that has households into two that both have some
        labels = resplit_empty(loads, adj, labels, blocks["households"].to_numpy(dtype=float), high=high,
                               locked=kw.get("locked"), accept=accept, seed=params.seed, **hard)
        # and the rest: the grids around each re-cut exactly (CP-SAT) so that none is left empty where the
        # caps allow it. With the patrol cap the re-cut's grids keep at most the streets of the longest grid
        # the exact patrol allowed so far (and never over 75 M m: a patrol walks at least its blocks' streets);
        # ``accept`` checks the exact patrol of every changed grid
        fill_street = params.max_street_m
        if max_route is not None:
            longest = float(np.bincount(labels, weights=loads["street_m"].to_numpy(dtype=float)).max())
            fill_street = min(x for x in (fill_street, max_route * M_PER_MIN, max(longest, street_cap))
                              if x is not None)
        labels = fill_empty(loads, adj, labels, blocks["households"].to_numpy(dtype=float), low=low, high=high,
                            locked=kw.get("locked"), accept=accept, seed=params.seed,
                            max_street_m=fill_street, max_area_m2=params.max_area_m2)
        # the proven least number of grids of 0 households any plan within the caps has (empty_bound); above
        # it, the household-free blocks are placed anew around the grids' household blocks (CP-SAT) when that
        # model is small enough to solve in bounded time
        bound_caps = [(col, cap) for col, cap in (
            ("street_m", min([c for c in (params.max_street_m, None if max_route is None else max_route * M_PER_MIN)
                              if c is not None], default=None)), ("area_m2", params.max_area_m2)) if cap is not None]
        hh_block = blocks["households"].to_numpy(dtype=float)
        # (0 without a proof when the plan has no grid of 0 households already)
        n_empty = len(empty_grids(labels, hh_block))
        empty_bound, _, solved = plan_empty_bound(blocks.to_crs(metric), np.zeros(len(blocks)), bound_caps,
                                                  seed=params.seed, none_empty=() if n_empty else (0.0,), known=bounds)
        if n_empty > empty_bound:
            labels = recut_empty(loads, adj, labels, hh_block, high=high, locked=kw.get("locked"), accept=accept,
                                 seed=params.seed, max_street_m=fill_street, max_area_m2=params.max_area_m2,
                                 target=empty_bound)
        # above the bound still: an empty grid takes homes along the cheapest chains of blocks to them, the
        # grids the chain crosses re-cut exactly, household blocks free to move (fill_along_chains)
        if len(empty_grids(labels, hh_block)) > empty_bound:
            labels = fill_along_chains(loads, adj, labels, hh_block, low=low, high=high, locked=kw.get("locked"),
                                       accept=accept, seed=params.seed, max_street_m=fill_street,
                                       max_area_m2=params.max_area_m2, target=empty_bound)
        # above the bound still: the plan built anew from the homes, each household block a root the blocks
        # without households hang on (CP-SAT), kept only with fewer grids of 0 households (grow_from_homes)
        if len(empty_grids(labels, hh_block)) > empty_bound:
            labels = grow_from_homes(loads, adj, labels, hh_block, low=low, high=high, locked=kw.get("locked"),
                                     accept=accept, seed=params.seed, max_street_m=fill_street,
                                     max_area_m2=params.max_area_m2)
        # the re-cuts may leave grids below the band that a whole merge now lifts within the caps
        labels = merge_small(loads, adj, labels, low=low, high=high, locked=kw.get("locked"), accept=accept, **hard)
    blocks = blocks.copy()
    blocks["area_code"] = str(area["code"])
    blocks["_part"] = labels
    parts = blocks.dissolve(by="_part", as_index=False)[["_part", "geometry"]]
    parts["parent_code"] = str(area["code"])
    locked_codes = {}
    if len(locked):
        locked_codes = {int(lab): str(locked["code"].iloc[int(lab)])
                        for lab in set(kw["locked"].tolist()) if lab >= 0}
    parts["code"] = codes_around_locked(parts, locked_codes, str(area["code"]), fmt, metric)
    code_of = dict(zip(parts["_part"], parts["code"]))
    blocks["grid_code"] = [code_of[p] for p in labels]
    grids = mark_exempt(grids_from_blocks(blocks, metric, {c: True for c in locked_codes.values()}), params, meter)
    if empty_bound is not None:
        grids.attrs["empty_grids_lower_bound"] = empty_bound
        grids.attrs["empty_bounds_solved"] = {d: (str(area["code"]), b) for d, (_, b) in solved.items()}
    return blocks.drop(columns=["_part"]), grids, adj


def with_workload_scale(params: PlanParams, blocks: list[gpd.GeoDataFrame]) -> PlanParams:
    """``params`` with ``workload_per_household`` set: given, or the blocks' total workload /
    total households (1 when the plan balances households alone)."""
    if params.on_households or params.workload_per_household:
        return params
    hh = sum(float(b["households"].sum()) for b in blocks)
    load = sum(float(grid_workload(b, params).sum()) for b in blocks)
    if hh <= 0 or load <= 0:
        raise InputError(f"cannot scale the household band to the workload: the areas hold {hh:g} households "
                         f"and {load:g} workload units", hint="give --workload-per-household, or --balance households")
    return params.model_copy(update={"workload_per_household": load / hh})


def _merge_block_groups(blocks: gpd.GeoDataFrame, groups: np.ndarray, metric_crs) -> gpd.GeoDataFrame:
    """One block per group (union of geometry, sums of workload); ids renumbered 1..k."""
    b = blocks.copy()
    b["_g"] = groups
    sums = [c for c in ("households", "buildings", "street_m", "population") if c in b.columns]
    agg = b.groupby("_g", sort=True)[sums].sum()
    geoms = [_polygonal(shapely.union_all(grp.geometry.to_numpy())) for _, grp in b.groupby("_g", sort=True)]
    out = gpd.GeoDataFrame(agg.reset_index(drop=True), geometry=geoms, crs=blocks.crs)
    m = out.geometry.to_crs(metric_crs)
    out["area_m2"] = m.area.to_numpy()
    out["block_id"] = np.arange(1, len(out) + 1)
    return out


def insert_plan(conn: Connection, *, method: str, parent: int | None, params: PlanParams, metrics: dict,
                 created_by: str | None, name: str | None = None, note: str | None = None) -> int:
    """Insert a grid_plans row and return its id."""
    check_current(conn)  # an edit on a stale version (the page's ?base=) is refused here, in its transaction
    res = conn.execute(insert(GridPlan.__table__).values(
        name=name, created_at=utcnow(), created_by=created_by, method=method, parent_plan_id=parent,
        params_json=params.to_json(), metrics_json=json.dumps(metrics, ensure_ascii=False),
        note=note))
    pid = int(res.inserted_primary_key[0])
    record_write(conn, {"plan_id": pid})  # a job running this write records its result in it
    return pid


def insert_rows(store: Store, conn: Connection, pid: int, grids: gpd.GeoDataFrame,
                 blocks: gpd.GeoDataFrame | None) -> None:
    """Write a plan's grids and blocks rows under plan id ``pid``."""
    g = grids.copy()
    g["plan_id"] = pid
    g["geometry"] = [as_multi(x) for x in g.geometry]
    store.insert_gdf(conn, "grids", g)
    if blocks is not None and len(blocks):
        b = blocks.copy()
        b["plan_id"] = pid
        b["geometry"] = [as_multi(x) for x in b.geometry]
        store.insert_gdf(conn, "blocks", b)


def check_grids(store: Store, plan_id: int | None = None, *, least_empty: bool = True) -> tuple[CheckResult, int]:
    """Validate a plan (default: newest) against its planning areas, buildings and band (``least_empty``:
    with the proven least number of grids of 0 households, which can take half a minute).

    Returns (CheckResult, plan id). Households per grid are the stored ones (from blocks,
    including landuse-based estimates); buildings are the mapped footprints.
    """
    row = plan_row(store, plan_id)
    params = PlanParams.from_json(row["params_json"])
    grids = read_grids(store, row["id"])
    blocks = read_blocks(store, row["id"])
    areas = planning_areas(store)
    res = check_frames(store, grids, blocks, areas, params, least_empty=least_empty)
    res.grids = grid_measures(grids, params)
    add_data_checks(store, res, areas[areas["code"].astype(str).isin(set(grids["parent_code"].astype(str)))])
    return res, int(row["id"])


def add_data_checks(store: Store, res: CheckResult, areas: gpd.GeoDataFrame) -> None:
    """Add the areas' data_coverage / implausible_density warnings to ``res`` (problems and summary)."""
    from gridpatrol.layers.grids.sanity import data_checks, summary_of

    checks = data_checks(store, areas)
    rows = [{"kind": w["kind"], "severity": SEVERITY[w["kind"]], "grid_code": None, "detail": w["detail"],
             "area_m2": c["area_km2"] * 1e6, "households": None, "deviation_pct": None, "geometry": c["point"]}
            for c in checks for w in c["warnings"]]
    if rows:
        extra = gpd.GeoDataFrame(rows, columns=PROBLEM_COLUMNS, geometry="geometry", crs="EPSG:4326")
        res.problems = pd.concat([res.problems.to_crs("EPSG:4326"), extra], ignore_index=True)
        counts = res.summary.setdefault("problems_by_kind", {})
        for r in rows:
            counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    res.summary["data_coverage"] = summary_of(checks)


def check_frames(store: Store, grids: gpd.GeoDataFrame, blocks: gpd.GeoDataFrame | None,
                 areas: gpd.GeoDataFrame, params: PlanParams, buildings: gpd.GeoDataFrame | None = None, *,
                 least_empty: bool = True) -> CheckResult:
    """Check grids (and their blocks) against the plan's rules: the CheckResult of gis.grid_check
    (``least_empty``: with the proven least number of grids of 0 households, see gis.grid_check.check_plan;
    an area's bound kept in the store by draw-grids is read, not solved again: layers.empty_bounds)."""
    if len(grids) == 0:
        raise NotFoundError("the plan has no grids")
    if buildings is None:
        buildings = real_buildings(read_within(store, "buildings", shapely.box(*grids.total_bounds)))
    # Only the planning areas this plan's grids belong to (a plan may cover part of the store).
    used = set(grids["parent_code"].astype(str))
    areas = areas[areas["code"].astype(str).isin(used)]
    metric = metric_crs_of(shapely.box(*grids.total_bounds))
    # the plan is judged by the workload it was drawn for: its band scaled to it
    target, low, high = params.workload_band()
    load = None if params.on_households else grid_workload(grids, params)
    if getattr(params, "mode", "urban") == "rural":
        from gridpatrol.layers.grids.rural_draw import add_rural_checks

        return add_rural_checks(store, grids, blocks, areas, buildings, params, metric)
    route = {}
    if getattr(params, "max_route_min", None):
        from gridpatrol.layers.grids.route_cap import RouteMeter, route_inputs

        route = route_inputs(RouteMeter.around(store, shapely.box(*grids.total_bounds)), grids.reset_index(drop=True),
                             params.max_route_min)
    res = check_plan(grids, areas, buildings,
                     blocks=blocks if blocks is not None and len(blocks) else None,
                     min_households=low, max_households=high,
                     code_format=params.code_format, metric_crs=metric, recount_households=False,
                     target_households=target, workload=load, workload_unit=params.workload_unit(),
                     max_street_m=params.max_street_m, max_area_m2=params.max_area_m2, least_empty=least_empty,
                     known_bounds=StoredBounds(store) if least_empty else None, bound_seed=params.seed, **route)
    if not params.on_households:
        res.summary["balance"] = params.balance
        res.summary["weights"] = params.workload_weights()
        res.summary["workload_band"] = [target, low, high]
    return res


def buildings_with_grid_code(store: Store, plan_id: int | None = None) -> gpd.GeoDataFrame:
    """All buildings (EPSG:4326) with ``grid_code`` of the plan (default: newest) by
    representative point; None where no grid contains one. For ``export buildings``."""
    buildings = store.read_layer("buildings")
    try:
        grids = read_grids(store, plan_id)
    except NotFoundError:
        if plan_id is not None:
            raise
        buildings["grid_code"] = None
        return buildings
    buildings["grid_code"] = assign_buildings(buildings, grids)
    return buildings


def export_frame(store: Store, layer: str, plan_id: int | None = None) -> gpd.GeoDataFrame:
    """What ``export grids|blocks|buildings`` writes: the plan's (default newest) grids or
    blocks, or all buildings with that plan's ``grid_code``. Without any plan: the raw layer."""
    if layer == "buildings":
        return buildings_with_grid_code(store, plan_id)
    pid = export_plan_id(store, plan_id)
    if pid is None:
        return store.read_layer(layer)
    return read_grids(store, pid) if layer == "grids" else read_blocks(store, pid)


def export_plan_id(store: Store, plan_id: int | None = None) -> int | None:
    """The plan an export of grids or blocks writes: ``plan_id`` (NotFoundError if there is no
    such plan), by default the newest; None when no plan exists yet."""
    try:
        return int(plan_row(store, plan_id)["id"])
    except NotFoundError:
        if plan_id is not None:
            raise
        return None


def diff_plans(store: Store, plan_a: int, plan_b: int) -> tuple[pd.DataFrame, dict]:
    """Buildings whose grid differs between plans A and B.

    Returns (changes, summary): changes has building id, osm_type, osm_id, name, households,
    grid_a, grid_b; summary has buildings and households changed and per-grid household
    deltas of grids that exist in both plans.
    """
    ga, gb = read_grids(store, plan_a), read_grids(store, plan_b)
    buildings = store.read_layer("buildings")
    a = assign_buildings(buildings, ga)
    b = assign_buildings(buildings, gb)
    changed = a.fillna("") != b.fillna("")
    cols = [c for c in ("id", "osm_type", "osm_id", "name", "households") if c in buildings.columns]
    out = pd.DataFrame(buildings.loc[changed, cols]).reset_index(drop=True)
    out["grid_a"] = a[changed].to_numpy()
    out["grid_b"] = b[changed].to_numpy()
    # Where each changed building is, for the map (a point inside it, WGS-84).
    inside = buildings.loc[changed].geometry.representative_point()
    out["lon"], out["lat"] = inside.x.to_numpy(), inside.y.to_numpy()
    summary = {
        "plan_a": int(plan_a), "plan_b": int(plan_b),
        "buildings": int(len(buildings)),
        "buildings_changed": int(changed.sum()),
        "households_changed": float(buildings.loc[changed, "households"].sum()) if len(buildings) else 0.0,
        "grids_only_in_a": sorted(set(ga["code"]) - set(gb["code"])),
        "grids_only_in_b": sorted(set(gb["code"]) - set(ga["code"])),
    }
    return out, summary


STATION_TOLERANCE_M = 200.0
