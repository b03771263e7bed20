"""Grid plans in the store: draw, check, diff, redraw (split/merge/move/lock/rebalance), import, map."""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, func, insert, select

from gis.assign import assign_buildings, assign_xy, blocks_joined_by_buildings, representative_xy
from gis.crs import local_metric_crs
from gis.errors import ConflictError, GridPatrolError, InputError, NotFoundError
from gis.grid_check import CheckResult, check_plan
from gis.gridcodes import DEFAULT_CODE_FORMAT, CodeFormat, assign_codes
from layers.grid_moves import move_refusals
from layers.models import Block, Grid, GridPlan, utcnow
from layers.plan_base import check_current
from layers.store import Store
from layers.names import clean_name

# Finest first: grids nest in the finest administrative level that is loaded.
AREA_LEVELS = ("community", "street", "district", "county")
Progress = Callable[[str], None]


@dataclass
class PlanParams:
    """How a plan is drawn and checked: household target and band, caps, seed, code format."""

    target_households: float = 300.0
    min_households: float = 300.0
    max_households: float = 500.0
    seed: int = 0
    max_street_m: float | None = None
    max_area_m2: float | None = None
    code_format: str = DEFAULT_CODE_FORMAT

    def validate(self) -> PlanParams:
        """Raise InputError for an impossible band; returns self."""
        if not (0 <= self.min_households <= self.target_households <= self.max_households):
            raise InputError(
                f"household band {self.min_households:g}–{self.max_households:g} does not contain the "
                f"target {self.target_households:g}",
                hint="use --min-households ≤ --target-households ≤ --max-households",
            )
        for name in ("max_street_m", "max_area_m2"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise InputError(f"--{name.replace('_', '-')} must be positive, got {v}")
        CodeFormat(self.code_format)
        return self

    @classmethod
    def from_json(cls, text: str | None) -> PlanParams:
        """Params stored in grid_plans.params_json (unknown keys ignored)."""
        raw = json.loads(text or "{}")
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class EditResult:
    """Outcome of a redraw operation: the new plan version and what changed."""

    plan_id: int
    parent_plan_id: int
    changed_codes: list[str]
    removed_codes: list[str] = field(default_factory=list)
    message: str = ""


# --------------------------------------------------------------------------------------------
# reading


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


def _read_in(store: Store, layer: str, geom, conn: Connection | None = None) -> gpd.GeoDataFrame:
    """Rows of ``layer`` whose bbox meets the bbox of ``geom`` (EPSG:4326)."""
    return store.read_layer(layer, bbox=shapely.bounds(geom).tolist(), conn=conn)


def real_buildings(buildings: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Mapped footprints only: landuse-based household estimates are areas, not buildings."""
    if "estimate_method" in buildings.columns:
        return buildings[buildings["estimate_method"].astype(str) != "landuse"]
    return buildings


def _metric_crs_of(geom):  # noqa: ANN001, ANN202
    c = shapely.centroid(geom)
    return local_metric_crs(c.x, c.y)


# --------------------------------------------------------------------------------------------
# metrics


def _grids_from_blocks(blocks: gpd.GeoDataFrame, metric_crs, locked: dict[str, bool] | None = None,
                       extra: pd.DataFrame | None = None) -> gpd.GeoDataFrame:
    """Dissolve blocks (grid_code, area_code) into grid rows with their workload metrics."""
    locked = locked or {}
    rows, geoms = [], []
    for code, grp in blocks.groupby("grid_code", sort=True):
        geom = shapely.union_all(grp.geometry.to_numpy())
        geoms.append(_as_multi(geom))
        rows.append({"code": str(code), "parent_code": str(grp["area_code"].iloc[0]),
                     "households": float(grp["households"].sum()),
                     "buildings": int(grp["buildings"].sum()) if "buildings" in grp else 0,
                     "street_m": float(grp["street_m"].sum()), "n_blocks": len(grp),
                     "locked": bool(locked.get(str(code), False))})
    out = gpd.GeoDataFrame(rows, geometry=geoms, crs="EPSG:4326")
    return _shape_metrics(out, metric_crs)


def _shape_metrics(grids: gpd.GeoDataFrame, metric_crs) -> gpd.GeoDataFrame:
    m = grids.geometry.to_crs(metric_crs)
    area = m.area.to_numpy()
    perim = m.length.to_numpy()
    grids = grids.copy()
    grids["area_m2"] = area
    # Polsby–Popper: 4πA/P², 1 for a circle.
    grids["polsby_popper"] = np.where(perim > 0, 4 * math.pi * area / np.maximum(perim, 1e-9) ** 2, 0.0)
    return grids


def _as_multi(geom):  # noqa: ANN001, ANN202
    geom = _polygonal(geom)
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])
    return geom


def _mark_exempt(grids: gpd.GeoDataFrame, params: PlanParams) -> gpd.GeoDataFrame:
    """Grids outside the band that no regrouping of blocks can fix are exempt (and reported):
    a single indivisible block, or the only grid of an area whose households are all below the
    band (grids may not cross area boundaries)."""
    grids = grids.copy()
    hh = grids["households"].to_numpy()
    out_band = (hh < params.min_households) | (hh > params.max_households)
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
    isolated_small = ~has_neighbour & (hh < params.min_households)
    grids["exempt"] = out_band & ((grids["n_blocks"].to_numpy() == 1) | isolated_small)
    return grids


def plan_metrics(grids: gpd.GeoDataFrame, params: PlanParams, adjacency: nx.Graph | None = None,
                 grid_of_block: dict[int, str] | None = None) -> dict:
    """Per-plan metrics: worst deviation from target (non-exempt), share in band, mean
    Polsby–Popper and the share of internal grid boundary length lying on streets or barriers
    (from the block adjacency's ``length_m``/``line_m``)."""
    hh = grids["households"].to_numpy(dtype=float)
    exempt = grids["exempt"].to_numpy(dtype=bool) if "exempt" in grids else np.zeros(len(grids), bool)
    in_band = (hh >= params.min_households) & (hh <= params.max_households)
    dev = np.abs(hh - params.target_households) / max(params.target_households, 1e-9)
    m = {
        "grids": int(len(grids)),
        "households": float(hh.sum()),
        "target_households": params.target_households,
        "band": [params.min_households, params.max_households],
        "exempt_grids": int(exempt.sum()),
        "share_in_band": float(in_band.mean()) if len(grids) else 1.0,
        "share_in_band_non_exempt": float(in_band[~exempt].mean()) if (~exempt).any() else 1.0,
        "worst_deviation": float(dev[~exempt].max()) if (~exempt).any() else 0.0,
        "mean_polsby_popper": float(grids["polsby_popper"].mean()) if len(grids) else 0.0,
    }
    if adjacency is not None and grid_of_block is not None:
        total = on_line = 0.0
        for u, v, d in adjacency.edges(data=True):
            if grid_of_block.get(int(u)) != grid_of_block.get(int(v)):
                total += float(d.get("length_m", 0.0))
                on_line += float(d.get("line_m", 0.0))
        m["internal_boundary_m"] = total
        m["boundary_on_street_share"] = on_line / total if total > 0 else 1.0
    return m


# --------------------------------------------------------------------------------------------
# drawing


def _locked_grids(store: Store) -> gpd.GeoDataFrame:
    """Locked grids of the newest plan (empty when there is no plan)."""
    try:
        grids = read_grids(store)
    except NotFoundError:
        return gpd.GeoDataFrame({"code": [], "parent_code": []}, geometry=[], crs="EPSG:4326")
    return grids[grids["locked"].fillna(False).astype(bool)].reset_index(drop=True)


def _codes_around_locked(parts: gpd.GeoDataFrame, locked_codes: dict[int, str], parent: str,
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
    area was drawn.
    """
    from gis.blocks import block_adjacency, build_blocks
    from gis.partition import partition_blocks

    params = (params or PlanParams()).validate()
    say = progress or (lambda _m: None)
    areas = planning_areas(store)
    all_blocks, all_grids = [], []
    graphs: list[nx.Graph] = []
    next_block = 1
    fmt = CodeFormat(params.code_format)
    locked_all = _locked_grids(store)
    for _, area in areas.iterrows():
        say(f"area {area['code']}: reading streets and buildings")
        geom = area.geometry
        metric = _metric_crs_of(geom)
        roads = _read_in(store, "roads", geom)
        barriers = _read_in(store, "barriers", geom)
        buildings = _read_in(store, "buildings", geom)
        say(f"area {area['code']}: building blocks")
        # Blocks of at most half the target leave the partition room to balance every grid.
        blocks = build_blocks(geom, roads, barriers, buildings, metric_crs=metric,
                              max_block_households=max(params.target_households / 6.0, 1.0))
        if len(blocks) == 0:
            continue
        groups = blocks_joined_by_buildings(blocks, buildings, metric_crs=metric)
        if groups.max() + 1 < len(blocks):
            say(f"area {area['code']}: joining {len(blocks) - groups.max() - 1} blocks split by streets through buildings")
            blocks = _merge_block_groups(blocks, groups, metric)
        blocks["block_id"] = blocks["block_id"].astype(int) + next_block - 1
        next_block = int(blocks["block_id"].max()) + 1
        say(f"area {area['code']}: adjacency of {len(blocks)} blocks")
        adj = block_adjacency(blocks, roads, barriers, metric_crs=metric)
        say(f"area {area['code']}: partitioning")
        kw = {}
        if params.max_street_m is not None:
            kw["max_street_m"] = params.max_street_m
        if params.max_area_m2 is not None:
            kw["max_area_m2"] = params.max_area_m2
        locked = locked_all[locked_all["parent_code"].astype(str) == str(area["code"])]
        if len(locked):
            # A block belongs to a locked grid when its representative point lies in it.
            x, y = representative_xy(blocks.geometry)
            kw["locked"] = assign_xy(x, y, locked.geometry)
        labels = np.asarray(partition_blocks(
            blocks, adj, target_households=params.target_households, min_households=params.min_households,
            max_households=params.max_households, seed=params.seed, **kw))
        blocks["area_code"] = str(area["code"])
        blocks["_part"] = labels
        parts = blocks.dissolve(by="_part", as_index=False)[["_part", "geometry"]]
        parts["parent_code"] = str(area["code"])
        locked_codes = {}
        if len(locked):
            locked_codes = {int(lab): str(locked["code"].iloc[int(lab)])
                            for lab in set(kw["locked"].tolist()) if lab >= 0}
        parts["code"] = _codes_around_locked(parts, locked_codes, str(area["code"]), fmt, metric)
        code_of = dict(zip(parts["_part"], parts["code"]))
        blocks["grid_code"] = [code_of[p] for p in labels]
        grids = _mark_exempt(_grids_from_blocks(blocks, metric, {c: True for c in locked_codes.values()}), params)
        all_blocks.append(blocks.drop(columns=["_part"]))
        all_grids.append(grids)
        graphs.append(adj)
    if not all_grids:
        raise InputError("no blocks could be built in any planning area",
                         hint="are streets imported inside the areas? check gridpatrol info")
    blocks = pd.concat(all_blocks, ignore_index=True)
    grids = pd.concat(all_grids, ignore_index=True)
    adj = nx.union_all(graphs) if len(graphs) > 1 else graphs[0]
    metrics = plan_metrics(grids, params, adj, dict(zip(blocks["block_id"].astype(int), blocks["grid_code"])))
    metrics["areas"] = areas["code"].tolist()
    say("writing the plan")
    with store.begin() as conn:
        pid = _insert_plan(conn, method="draw", parent=None, params=params, metrics=metrics,
                           created_by=created_by, name=name, note=f"drawn for {len(areas)} areas")
        _insert_rows(store, conn, pid, grids, blocks)
    return pid


def _merge_block_groups(blocks: gpd.GeoDataFrame, groups: np.ndarray, metric_crs) -> gpd.GeoDataFrame:
    """One block per group (union of geometry, sums of workload); ids renumbered 1..k."""
    b = blocks.copy()
    b["_g"] = groups
    sums = [c for c in ("households", "buildings", "street_m") if c in b.columns]
    agg = b.groupby("_g", sort=True)[sums].sum()
    geoms = [_polygonal(shapely.union_all(grp.geometry.to_numpy())) for _, grp in b.groupby("_g", sort=True)]
    out = gpd.GeoDataFrame(agg.reset_index(drop=True), geometry=geoms, crs=blocks.crs)
    m = out.geometry.to_crs(metric_crs)
    out["area_m2"] = m.area.to_numpy()
    out["block_id"] = np.arange(1, len(out) + 1)
    return out


def _insert_plan(conn: Connection, *, method: str, parent: int | None, params: PlanParams, metrics: dict,
                 created_by: str | None, name: str | None = None, note: str | None = None) -> int:
    check_current(conn)  # an edit on a stale version (the page's ?base=) is refused here, in its transaction
    res = conn.execute(insert(GridPlan.__table__).values(
        name=name, created_at=utcnow(), created_by=created_by, method=method, parent_plan_id=parent,
        params_json=json.dumps(asdict(params)), metrics_json=json.dumps(metrics, ensure_ascii=False),
        note=note))
    return int(res.inserted_primary_key[0])


def _insert_rows(store: Store, conn: Connection, pid: int, grids: gpd.GeoDataFrame,
                 blocks: gpd.GeoDataFrame | None) -> None:
    g = grids.copy()
    g["plan_id"] = pid
    g["geometry"] = [_as_multi(x) for x in g.geometry]
    store.insert_gdf(conn, "grids", g)
    if blocks is not None and len(blocks):
        b = blocks.copy()
        b["plan_id"] = pid
        b["geometry"] = [_as_multi(x) for x in b.geometry]
        store.insert_gdf(conn, "blocks", b)


# --------------------------------------------------------------------------------------------
# checking


def check_grids(store: Store, plan_id: int | None = None) -> tuple[CheckResult, int]:
    """Validate a plan (default: newest) against its planning areas, buildings and band.

    Returns (CheckResult, plan id). Households per grid are the stored ones (from blocks,
    including landuse-based estimates); buildings are the mapped footprints.
    """
    row = plan_row(store, plan_id)
    params = PlanParams.from_json(row["params_json"])
    grids = read_grids(store, row["id"])
    blocks = read_blocks(store, row["id"])
    areas = planning_areas(store)
    return _check(store, grids, blocks, areas, params), int(row["id"])


def _check(store: Store, grids: gpd.GeoDataFrame, blocks: gpd.GeoDataFrame | None,
           areas: gpd.GeoDataFrame, params: PlanParams, buildings: gpd.GeoDataFrame | None = None) -> CheckResult:
    if len(grids) == 0:
        raise NotFoundError("the plan has no grids")
    if buildings is None:
        buildings = real_buildings(_read_in(store, "buildings", shapely.box(*grids.total_bounds)))
    # Only the planning areas this plan's grids belong to (a plan may cover part of the store).
    used = set(grids["parent_code"].astype(str))
    areas = areas[areas["code"].astype(str).isin(used)]
    metric = _metric_crs_of(shapely.box(*grids.total_bounds))
    return check_plan(grids, areas, buildings,
                      blocks=blocks if blocks is not None and len(blocks) else None,
                      min_households=params.min_households, max_households=params.max_households,
                      code_format=params.code_format, metric_crs=metric, recount_households=False,
                      target_households=params.target_households)


# --------------------------------------------------------------------------------------------
# diff and assignment


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
    try:
        pid = plan_row(store, plan_id)["id"]
    except NotFoundError:
        if plan_id is not None:
            raise
        return store.read_layer(layer)
    return read_grids(store, pid) if layer == "grids" else read_blocks(store, pid)


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
    summary = {
        "plan_a": int(plan_a), "plan_b": int(plan_b),
        "buildings": int(len(buildings)),
        "buildings_changed": int(changed.sum()),
        "households_changed": float(buildings.loc[changed, "households"].sum()) if len(buildings) else 0.0,
        "grids_only_in_a": sorted(set(ga["code"]) - set(gb["code"])),
        "grids_only_in_b": sorted(set(gb["code"]) - set(ga["code"])),
    }
    return out, summary


# --------------------------------------------------------------------------------------------
# redraw operations


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
    metric = _metric_crs_of(shapely.box(*grids.total_bounds))
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
    from gis.blocks import block_adjacency

    geom = shapely.box(*blocks.total_bounds)
    roads = _read_in(ctx.store, "roads", geom)
    barriers = _read_in(ctx.store, "barriers", geom)
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
    rebuilt = _mark_exempt(_grids_from_blocks(new, ctx.metric, lock_map), ctx.params) if len(new) else None
    if rebuilt is not None:
        rebuilt = _carry_assignments(ctx, rebuilt)
    cols = ["code", "parent_code", "name", "households", "buildings", "street_m", "area_m2",
            "polsby_popper", "exempt", "locked", "worker", "station_lon", "station_lat", "geometry"]
    keep["n_blocks"] = keep["code"].map(blocks["grid_code"].value_counts()).fillna(0).astype(int)
    parts = [keep] + ([rebuilt] if rebuilt is not None else [])
    grids = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs="EPSG:4326")
    for c in cols:
        if c not in grids.columns:
            grids[c] = None
    grids = grids.sort_values("code").reset_index(drop=True)
    # Validate: the edit may not add any error the previous version did not have.
    before = _check(store, ctx.grids, ctx.blocks, ctx.areas, ctx.params)
    after = _check(store, grids, blocks, ctx.areas, ctx.params)
    new_errors = _new_errors(before, after, set(changed), force)
    if new_errors:
        raise ConflictError("编辑被拒绝，会破坏方案的规则 / edit refused, it would break the plan: " + "; ".join(new_errors[:5])
                            + (f" (and {len(new_errors) - 5} more)" if len(new_errors) > 5 else ""),
                            hint="nothing was changed" + ("" if force else "; --force accepts grids outside the household band"))
    try:
        adj = _block_graph(ctx, blocks)
        gob = dict(zip(blocks["block_id"].astype(int), blocks["grid_code"]))
    except GridPatrolError:  # metrics only: a failed adjacency must not block a valid edit
        adj, gob = None, None
    metrics = plan_metrics(grids, ctx.params, adj, gob)
    with store.begin() as conn:
        pid = _insert_plan(conn, method="edit", parent=int(ctx.row["id"]), params=ctx.params, metrics=metrics,
                           created_by=created_by, note=note)
        _insert_rows(store, conn, pid, grids[cols], blocks)
    return EditResult(plan_id=pid, parent_plan_id=int(ctx.row["id"]), changed_codes=sorted(changed),
                      removed_codes=sorted(removed), message=note)


STATION_TOLERANCE_M = 200.0


def _carry_assignments(ctx: _Ctx, rebuilt: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Keep the worker and station of every grid an edit reshapes but does not rename.

    A station that the new shape no longer contains (within ``STATION_TOLERANCE_M``) is
    dropped rather than left outside its grid.
    """
    old = ctx.grids.set_index(ctx.grids["code"].astype(str))
    rebuilt = rebuilt.copy()
    for col in ("worker", "station_lon", "station_lat"):
        rebuilt[col] = rebuilt["code"].map(old[col]) if col in old else None
    has = rebuilt["station_lon"].notna() & rebuilt["station_lat"].notna()
    if has.any():
        pts = gpd.GeoSeries(shapely.points(rebuilt.loc[has, "station_lon"].astype(float),
                                           rebuilt.loc[has, "station_lat"].astype(float)),
                            index=rebuilt.index[has], crs="EPSG:4326").to_crs(ctx.metric)
        shapes = rebuilt.loc[has].geometry.to_crs(ctx.metric)
        gone = pts.distance(shapes, align=True) > STATION_TOLERANCE_M
        rebuilt.loc[gone[gone].index, ["station_lon", "station_lat"]] = None
    return rebuilt



def assign_workers(store: Store, workers: dict[str, str | None], *,
                   stations: dict[str, tuple[float, float]] | None = None, plan_id: int | None = None,
                   created_by: str | None = None) -> EditResult:
    """Set the responsible grid worker (网格员) and optionally the station of grids (new version).

    ``workers`` maps grid codes to worker names (None clears); ``stations`` maps codes to a
    (lon, lat) in WGS-84 that must lie in the grid or within ``STATION_TOLERANCE_M`` of it (the
    start of its patrol routes). Unknown codes are refused with nothing written. The worker name
    is what the service matches against a worker's user name.
    """
    stations = stations or {}
    codes = sorted(set(workers) | set(stations))
    if not codes:
        raise InputError("no grid given", hint="give CODE WORKER, or a file with code,worker columns")
    ctx = _context(store, plan_id, need_blocks=False)
    sel = _require_grids(ctx, codes, unlocked=False)
    grids = ctx.grids.copy()
    idx = dict(zip(grids.loc[sel.index, "code"].astype(str), sel.index))
    for code, name in workers.items():
        name = None if name is None or not str(name).strip() else clean_name(name, "worker", where=f"grid {code}")
        grids.loc[idx[code], "worker"] = name
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
    note = "workers: " + ", ".join(f"{c}={workers.get(c) or '—'}" for c in codes[:10]) + (" …" if len(codes) > 10 else "")
    metrics = json.loads(ctx.row["metrics_json"] or "{}")
    with store.begin() as conn:
        pid = _insert_plan(conn, method="edit", parent=int(ctx.row["id"]), params=ctx.params, metrics=metrics,
                           created_by=created_by, note=note)
        cols = [c for c in grids.columns if c not in ("id", "plan_id")]
        _insert_rows(store, conn, pid, grids[cols], ctx.blocks.drop(columns=["id", "plan_id"]) if len(ctx.blocks) else None)
    return EditResult(plan_id=pid, parent_plan_id=int(ctx.row["id"]), changed_codes=codes, message=note)


def _new_errors(before: CheckResult, after: CheckResult, changed: set[str], force: bool) -> list[str]:
    def keys(res: CheckResult) -> set[tuple[str, str]]:
        p = res.problems
        p = p[p["severity"] == "error"]
        return {(k, str(c)) for k, c in zip(p["kind"], p["grid_code"])}

    band = {"households_out_of_band"}
    old = keys(before)
    msgs = []
    p = after.problems
    for _, r in p[p["severity"] == "error"].iterrows():
        key = (r["kind"], str(r["grid_code"]))
        if r["kind"] in band and force:
            continue
        if key in old and r["kind"] not in ("gap", "overlap"):
            continue
        if r["kind"] in ("gap", "overlap") and after.summary[f"{r['kind']}_m2"] <= before.summary[f"{r['kind']}_m2"] + 1.0:
            continue
        msgs.append(r["detail"])
    return msgs


def split_grid(store: Store, code: str, parts: int, *, plan_id: int | None = None, force: bool = False,
               created_by: str | None = None) -> EditResult:
    """Split grid ``code`` into ``parts`` contiguous grids of balanced households (new version).

    The part holding most of the old grid's households keeps its code; the other parts take
    the next free sequence numbers of the parent. Refused (nothing written) when the grid is
    locked, has fewer blocks than ``parts``, or a part would leave the household band (unless
    ``force``).
    """
    from gis.partition import split_grid as split_blocks

    if parts < 2:
        raise InputError(f"--parts must be at least 2, got {parts}")
    ctx = _context(store, plan_id)
    _require_grids(ctx, [code])
    blocks = ctx.blocks.copy()
    sel = blocks["grid_code"] == code
    if sel.sum() < parts:
        raise ConflictError(f"grid {code} has {int(sel.sum())} blocks and cannot be split into {parts} parts",
                            hint="split into fewer parts")
    sub = blocks[sel].reset_index(drop=True)
    adj = _block_graph(ctx, sub)
    labels = np.asarray(split_blocks(sub, adj, parts, seed=ctx.params.seed))
    if len(set(labels.tolist())) != parts:
        raise ConflictError(f"grid {code} could not be split into {parts} contiguous parts")
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
        pid = _insert_plan(conn, method="edit", parent=int(ctx.row["id"]), params=ctx.params, metrics=metrics,
                           created_by=created_by, note=f"{word} {', '.join(map(str, codes))}")
        cols = [c for c in grids.columns if c not in ("id", "plan_id")]
        _insert_rows(store, conn, pid, grids[cols], ctx.blocks.drop(columns=["id", "plan_id"]) if len(ctx.blocks) else None)
    return EditResult(plan_id=pid, parent_plan_id=int(ctx.row["id"]), changed_codes=sorted(map(str, codes)),
                      message=f"{word} {', '.join(map(str, codes))}")


def plan_from_blocks(store: Store, blocks: gpd.GeoDataFrame, params: PlanParams, *, note: str,
                     created_by: str | None = None) -> int:
    """Store a plan made elsewhere of ready blocks (block_id, area_code, grid_code, households,
    buildings, street_m, area_m2; EPSG:4326): grids are their dissolve, with metrics. Returns its id."""
    metric = _metric_crs_of(shapely.box(*blocks.total_bounds))
    grids = _mark_exempt(_grids_from_blocks(blocks, metric), params.validate())
    with store.begin() as conn:
        pid = _insert_plan(conn, method="draw", parent=None, params=params, metrics=plan_metrics(grids, params),
                           created_by=created_by, note=note)
        _insert_rows(store, conn, pid, grids, blocks)
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
        pid = _insert_plan(conn, method="edit", parent=parent, params=PlanParams.from_json(src["params_json"]),
                           metrics=metrics, created_by=created_by, note=note)
        _insert_rows(store, conn, pid, grids.drop(columns=["id", "plan_id"]),
                     blocks.drop(columns=["id", "plan_id"]) if len(blocks) else None)
    before = set(read_grids(store, parent)["code"].astype(str))
    after = set(grids["code"].astype(str))
    return EditResult(plan_id=pid, parent_plan_id=parent, changed_codes=sorted(after),
                      removed_codes=sorted(before - after), message=note)


def rebalance_grids(store: Store, codes: Sequence[str], *, plan_id: int | None = None, force: bool = False,
                    created_by: str | None = None) -> EditResult:
    """Rebalance households among neighbouring grids of one area with few block moves.

    Grid codes and the set of grids stay; only boundary blocks move (``gis.partition.rebalance``).
    Refused when a grid is locked, the grids are in different areas or not connected.
    """
    from gis.partition import rebalance

    ctx, codes = _neighbour_group(store, plan_id, codes, "rebalance")
    blocks = ctx.blocks.copy()
    mask = blocks["grid_code"].isin(codes)
    sub = blocks[mask].reset_index(drop=True)
    adj = _block_graph(ctx, sub)
    index_of = {c: i for i, c in enumerate(codes)}
    start = np.array([index_of[c] for c in sub["grid_code"]])
    labels = np.asarray(rebalance(sub, adj, start, list(range(len(codes))),
                                  target_households=ctx.params.target_households,
                                  min_households=ctx.params.min_households,
                                  max_households=ctx.params.max_households))
    blocks.loc[mask, "grid_code"] = [codes[int(lab)] for lab in labels]
    moved = int((labels != start).sum())
    return _commit_edit(store, ctx, blocks, codes, force=force, created_by=created_by,
                        note=f"rebalanced {', '.join(codes)} ({moved} blocks moved)")


# --------------------------------------------------------------------------------------------
# import


def _blocks_of_imported(store: Store, grids: gpd.GeoDataFrame, areas: gpd.GeoDataFrame, params: PlanParams,
                        metric) -> gpd.GeoDataFrame:
    """Street blocks of each planning area cut along the imported grid boundaries too, each given
    the grid holding its representative point: an imported plan can then be split, merged,
    moved and rebalanced like a drawn one. Parts of an area no imported grid covers get no
    block (check-grids reports them as gaps)."""
    from gis.blocks import build_blocks

    out, next_id = [], 1
    for _, area in areas.iterrows():
        inside = grids[grids["parent_code"].astype(str) == str(area["code"])]
        if not len(inside):
            continue
        geom = area.geometry
        roads = _read_in(store, "roads", geom)
        barriers = _read_in(store, "barriers", geom)
        buildings = _read_in(store, "buildings", geom)
        edges = inside.boundary.explode(index_parts=False)
        cuts = gpd.GeoDataFrame({"kind": ["grid_boundary"] * len(edges)}, geometry=edges.to_numpy(), crs="EPSG:4326")
        lines = pd.concat([barriers, cuts], ignore_index=True) if len(barriers) else cuts
        try:
            b = build_blocks(geom, roads, lines, buildings, metric_crs=metric,
                             max_block_households=max(params.target_households / 6.0, 1.0))
        except InputError:
            continue
        b = b[b["area_m2"] > 0.01]  # a degenerate face adds nothing and touches nothing
        if not len(b):
            continue
        x, y = representative_xy(b.geometry)
        idx = assign_xy(x, y, inside.geometry)
        lost = np.flatnonzero(idx < 0)
        if len(lost):
            # Slivers between imported grids (their edges rarely meet exactly): to the grid
            # overlapping them most, so that the grids rebuilt from blocks leave no gap.
            bi, gi = shapely.STRtree(inside.geometry.to_numpy()).query(b.geometry.to_numpy()[lost], predicate="intersects")
            if len(bi):
                share = shapely.area(shapely.intersection(b.geometry.to_numpy()[lost][bi], inside.geometry.to_numpy()[gi]))
                best = pd.DataFrame({"b": bi, "g": gi, "s": share}).query("s > 0").sort_values("s").groupby("b").tail(1)
                idx[lost[best["b"].to_numpy()]] = best["g"].to_numpy()
        b = b[idx >= 0].copy()
        b["grid_code"] = inside["code"].astype(str).to_numpy()[idx[idx >= 0]]
        b["area_code"] = str(area["code"])
        b["block_id"] = np.arange(next_id, next_id + len(b))
        next_id += len(b)
        out.append(b)
    if not out:
        return gpd.GeoDataFrame({"block_id": [], "grid_code": [], "area_code": []}, geometry=[], crs="EPSG:4326")
    return gpd.GeoDataFrame(pd.concat(out, ignore_index=True), geometry="geometry", crs="EPSG:4326")


def import_grids(store: Store, path: str | Path, *, crs: str | None = None, code_field: str | None = None,
                 parent_field: str | None = None, params: PlanParams | None = None,
                 created_by: str | None = None) -> int:
    """Import a grid layer made elsewhere (GeoJSON, GPKG, Shapefile) as a new plan.

    Codes come from ``code_field`` (default a field named ``code`` when present, else they are
    assigned); the parent area from ``parent_field`` or, by default, the planning area holding
    most of each grid. Workload metrics are computed from the store's buildings and roads.
    Nothing is written when the file is unusable.
    """
    from gis.vector import as_multipolygon, read_vector

    params = (params or PlanParams()).validate()
    path = Path(path)
    gdf = read_vector(path, crs=crs)
    if code_field is None and "code" in gdf.columns:
        code_field = "code"
    for f in (code_field, parent_field):
        if f is not None and f not in gdf.columns:
            raise InputError(f"{path}: no field {f!r}", hint="fields: " + ", ".join(map(str, gdf.columns.drop(gdf.geometry.name))))
    geoms = [as_multipolygon(g) for g in gdf.geometry]
    bad = [i for i, g in enumerate(geoms) if g is None]
    if bad:
        raise InputError(f"{path}: feature {bad[0]} is not a polygon", hint="grids must be polygons")
    grids = gpd.GeoDataFrame({"name": None}, geometry=geoms, crs="EPSG:4326", index=range(len(geoms)))
    areas = planning_areas(store)
    metric = _metric_crs_of(shapely.box(*grids.total_bounds))
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
    blocks = _blocks_of_imported(store, grids, areas, params, metric)
    before_m = grids.to_crs(metric).geometry
    for code, grp in blocks.groupby("grid_code"):
        grids.loc[grids["code"] == code, "geometry"] = _as_multi(shapely.union_all(grp.geometry.to_numpy()))
    moved_m2 = float(before_m.symmetric_difference(grids.to_crs(metric).geometry, align=False).area.sum())
    buildings = store.read_layer("buildings", bbox=grids.total_bounds.tolist())
    assigned = assign_buildings(buildings, grids)
    real = (buildings["estimate_method"].astype(str) != "landuse") if len(buildings) else pd.Series(dtype=bool)
    hh = buildings["households"].groupby(assigned).sum() if len(buildings) else pd.Series(dtype=float)
    nb = real.groupby(assigned).sum() if len(buildings) else pd.Series(dtype=float)
    grids["households"] = grids["code"].map(hh).fillna(0.0).to_numpy()
    grids["buildings"] = grids["code"].map(nb).fillna(0).astype(int).to_numpy()
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
    grids = _shape_metrics(grids, metric)
    grids["exempt"] = False
    grids["locked"] = False
    metrics = plan_metrics(grids, params)
    metrics["source"] = str(path.resolve())
    metrics["blocks"] = len(blocks)
    metrics["boundary_adjusted_m2"] = moved_m2
    from layers.importing import file_sha256

    with store.begin() as conn:
        pid = _insert_plan(conn, method="import", parent=None, params=params, metrics=metrics,
                           created_by=created_by, note=f"imported from {path.name}")
        _insert_rows(store, conn, pid, grids.drop(columns=["n_blocks"]), blocks)
        store.insert_gdf(conn, "imports", gpd.GeoDataFrame([{
            "kind": "grids", "source_path": str(path.resolve()), "source_sha256": file_sha256(path),
            "source_bytes": path.stat().st_size, "options_json": json.dumps({"crs": crs, "code_field": code_field}),
            "counts_json": json.dumps({"grids": len(grids), "plan_id": pid}), "dropped_json": "{}",
            "started_at": utcnow(), "finished_at": utcnow()}], geometry=[None], crs="EPSG:4326"))
    return pid


# --------------------------------------------------------------------------------------------
# map


def plan_map(store: Store, plan_id: int | None = None):  # noqa: ANN201
    """A folium map of a plan: grids coloured by households (relative to the band), codes as
    labels, buildings and streets; no tile layer (works offline), OSM attribution included.

    Every text from the store (codes, names, street and building names) is HTML-escaped before
    folium sees it: folium puts tooltip and label values into the page as raw HTML.
    """
    import html

    import folium

    from layers.mapdata import basemap_frames, plan_frame

    g, band = plan_frame(store, plan_id)
    minx, miny, maxx, maxy = g.total_bounds.tolist()
    roads, buildings = basemap_frames(store, (minx, miny, maxx, maxy))
    attribution = "Map data © OpenStreetMap contributors (ODbL)"
    m = folium.Map(location=[(miny + maxy) / 2, (minx + maxx) / 2], tiles=None, control_scale=True,
                   prefer_canvas=True)

    def escaped(df: gpd.GeoDataFrame, cols: list[str]) -> gpd.GeoDataFrame:
        out = df[[*cols, "geometry"]].copy()
        for col in cols:
            if not (pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col])):
                out[col] = [None if v is None or v != v else html.escape(str(v)) for v in out[col]]
        return out

    shown = ["code", "name", "households", "buildings", "street_m", "area_m2", "polsby_popper", "exempt", "locked"]
    folium.GeoJson(
        escaped(g, [*shown, "fill"]), name="grids",
        style_function=lambda f: {"fillColor": f["properties"]["fill"], "color": "#333333", "weight": 2,
                                  "fillOpacity": 0.45},
        tooltip=folium.GeoJsonTooltip(shown),
    ).add_to(m)
    if len(roads):
        folium.GeoJson(escaped(roads, ["name", "highway"]), name="streets",
                       style_function=lambda f: {"color": "#666666", "weight": 1}).add_to(m)
    if len(buildings):
        folium.GeoJson(escaped(buildings, ["name", "households"]), name="buildings",
                       style_function=lambda f: {"color": "#555555", "weight": 0.5, "fillColor": "#999999",
                                                 "fillOpacity": 0.6}).add_to(m)
    labels = folium.FeatureGroup(name="grid codes")
    for code, short, p in zip(g["code"].astype(str), g["label"], g.geometry.representative_point()):
        code, short = html.escape(code), html.escape(str(short))
        folium.Marker([p.y, p.x], icon=folium.DivIcon(
            html=f'<div title="{code}" style="font-size:10px;font-weight:bold;white-space:nowrap">{short}</div>'),
            tooltip=code).add_to(labels)
    labels.add_to(m)
    # A static legend: branca's colormap legend would pull d3 from a CDN.
    stops = ", ".join(f"{c} {int(100 * i / 4)}%" for i, c in enumerate(band["stops"]))
    m.get_root().html.add_child(folium.Element(
        '<div style="position:fixed;top:10px;left:50px;z-index:9999;background:white;padding:4px 8px;'
        'font-size:11px;border:1px solid #999">households per grid '
        f'(band {band["min_households"]:g}–{band["max_households"]:g})<div style="width:200px;height:10px;'
        f'background:linear-gradient(to right, {stops})"></div>'
        f'<span>{band["vmin"]:g}</span><span style="float:right">{band["vmax"]:g}</span></div>'))
    m.get_root().html.add_child(folium.Element(
        f'<div style="position:fixed;bottom:4px;left:120px;z-index:9999;background:white;padding:2px 6px;'
        f'font-size:11px">{attribution} · plan {band["plan_id"]}</div>'))
    folium.LayerControl().add_to(m)
    m.fit_bounds([[miny, minx], [maxy, maxx]])
    return m
