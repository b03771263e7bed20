"""Rural plans (``draw-grids --mode rural``): one area's blocks grouped into grids of whole
settlements (gis.partition.rural), and the rural checks of a stored plan."""
from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from gridpatrol.gis.assign import assign_xy, representative_xy
from gridpatrol.gis.grid_check import SEVERITY
from gridpatrol.gis.grid_names import grid_name, unique_names
from gridpatrol.gis.gridcodes import CodeFormat, assign_codes
from gridpatrol.gis.partition.rural import (
    Settlements,
    Travel,
    block_units,
    describe_settlements,
    draw_rural,
    find_settlements,
    settlement_names,
)
from gridpatrol.layers.plan_params import PlanParams


def area_settlements(buildings: gpd.GeoDataFrame, area_geom, metric, gap_m: float,  # noqa: ANN001
                     places: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame] | None = None
                     ) -> tuple[np.ndarray, Settlements, np.ndarray]:
    """(metric footprints, settlements, inside-mask over ``buildings``) of the buildings whose
    representative point lies in ``area_geom`` (EPSG:4326). Landuse estimates (residential land
    without mapped buildings) count as members too: they are where people live. ``places``: the
    (place nodes, place areas) of ``read_places`` that name the settlements."""
    if len(buildings) == 0:
        return np.zeros(0, dtype=object), find_settlements(np.zeros(0, dtype=object), np.zeros(0), gap_m), \
            np.zeros(0, dtype=bool)
    x, y = representative_xy(buildings.geometry)
    inside = assign_xy(x, y, [area_geom]) == 0
    b = buildings[inside]
    fp = b.geometry.to_crs(metric).to_numpy()
    hh = pd.to_numeric(b["households"], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    nodes, areas = places if places is not None else (None, None)
    pl = nodes.to_crs(metric) if nodes is not None and len(nodes) else None
    pa = areas.to_crs(metric) if areas is not None and len(areas) else None
    return fp, find_settlements(fp, hh, gap_m, pl, pa), inside


def read_places(store, geom) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:  # noqa: ANN001
    """The named place nodes (OSM place=village, hamlet, …) and place areas (villages mapped as
    polygons, named residential land) around ``geom`` (EPSG:4326)."""
    from gridpatrol.layers.grids.core import read_within

    return read_within(store, "places", geom), read_within(store, "place_areas", geom)


LAND_CELL_M = 500.0  # land away from settlements is cut on a lattice of at most this (m)


def rural_blocks(area_geom, roads: gpd.GeoDataFrame, barriers: gpd.GeoDataFrame,  # noqa: ANN001
                 buildings: gpd.GeoDataFrame, metric, params: PlanParams, area_name: str) -> gpd.GeoDataFrame:  # noqa: ANN001
    """Blocks of a rural area (as gis.blocks.build_blocks: EPSG:4326, same columns): the faces of
    streets, barriers and the area outline, cut further along each settlement's *core* (its
    footprints grown by half the settlement gap, so no two cores meet and no core cuts a building)
    and, away from settlements, on a lattice of land cells (``LAND_CELL_M``, or half the side of
    ``--max-area-m2`` when smaller) so the land between villages can go to either side. Blocks are
    never split by households: a settlement is never cut."""
    from gridpatrol.gis.blocks import build_blocks

    fp, st, _ = area_settlements(buildings, area_geom, metric, params.settlement_gap_m)
    am = gpd.GeoSeries([area_geom], crs=4326).to_crs(metric).iloc[0]
    cores = shapely.union_all(shapely.buffer(st.hulls, params.settlement_gap_m * 0.45)) if len(st) else None
    cell = LAND_CELL_M if not params.max_area_m2 else min(LAND_CELL_M, max(50.0, params.max_area_m2 ** 0.5 / 2))
    minx, miny, maxx, maxy = am.bounds
    lat = [shapely.LineString([(x, miny - 1), (x, maxy + 1)]) for x in np.arange(minx + cell, maxx, cell)] + \
          [shapely.LineString([(minx - 1, y), (maxx + 1, y)]) for y in np.arange(miny + cell, maxy, cell)]
    land = shapely.MultiLineString(lat) if lat else shapely.MultiLineString()
    lines = []
    if cores is not None and not cores.is_empty:
        land = shapely.difference(land, cores)
        lines.append(shapely.boundary(cores))
    lines.append(land)
    parts = [g for x in lines for g in shapely.get_parts(x) if not g.is_empty]
    extra = gpd.GeoDataFrame({"kind": ["settlement_cut"] * len(parts)}, geometry=gpd.GeoSeries(parts, crs=metric))
    extra = extra.to_crs(4326)
    cut_lines = pd.concat([barriers, extra], ignore_index=True) if len(barriers) else extra
    inf = float("inf")
    return build_blocks(area_geom, roads, gpd.GeoDataFrame(cut_lines, geometry="geometry", crs=4326), buildings,
                        metric_crs=metric, max_block_households=inf, max_block_area_m2=inf,
                        max_landuse_block_households=inf, area_name=area_name)


def settlement_units_of_blocks(store, blocks: gpd.GeoDataFrame, area_geom, params: PlanParams,  # noqa: ANN001
                               metric) -> np.ndarray:  # noqa: ANN001
    """Unit of each row of ``blocks`` (EPSG:4326, blocks of one area ``area_geom``): blocks holding
    buildings of one settlement of the area share a unit (as the drawing groups them), so edits
    that move whole units never cut a village; blocks without buildings are units of their own."""
    return SettlementBlocks.of(store, blocks, area_geom, params, metric).unit_of_block


class SettlementBlocks:
    """The settlements of one area's blocks, for edits that steer by the rural limits: the unit of
    each block (see settlement_units_of_blocks), the settlements each block holds, and their travel
    over the streets of ``roads_geom`` (as check_rural measures it, without a search limit so that
    "by how much" is known)."""

    def __init__(self, unit_of_block: np.ndarray, settlements_of_block: list[list[int]], st: Settlements,
                 travel: Travel | None, metric) -> None:  # noqa: ANN001
        self.unit_of_block = unit_of_block
        self.settlements_of_block = settlements_of_block
        self.st = st
        self.travel = travel
        self.metric = metric

    @classmethod
    def of(cls, store, blocks: gpd.GeoDataFrame, area_geom, params: PlanParams, metric,  # noqa: ANN001
           roads_geom=None) -> SettlementBlocks:  # noqa: ANN001
        """``blocks``: EPSG:4326 blocks of the area ``area_geom``; travel only with ``roads_geom``
        (the region whose streets count) and a travel limit in ``params``."""
        from gridpatrol.layers.grids.core import read_within

        buildings = read_within(store, "buildings", area_geom)
        fp, st, _ = area_settlements(buildings, area_geom, metric, params.settlement_gap_m)
        bg = blocks.to_crs(metric).geometry.to_numpy()
        of_block: list[list[int]] = [[] for _ in range(len(bg))]
        if len(fp) == 0:
            return cls(np.arange(len(blocks)), of_block, st, None, metric)
        rp = shapely.get_coordinates(shapely.point_on_surface(fp))
        block_of_building = assign_xy(rp[:, 0], rp[:, 1], bg)
        unit_of_block, _ = block_units(len(bg), block_of_building, st.of_building)
        for b, s in sorted(set(zip(block_of_building.tolist(), st.of_building.tolist()))):
            if b >= 0:
                of_block[b].append(int(s))
        travel = None
        if roads_geom is not None and params.max_travel_min:
            roads = read_within(store, "roads", roads_geom)
            travel = _travel(roads, params, metric, st.hulls, limited=False)
        return cls(unit_of_block, of_block, st, travel, metric)

    def station_node(self, lon, lat) -> int:  # noqa: ANN001
        """The street node nearest a stored station (EPSG:4326), as check_rural finds it; -1 for none."""
        if self.travel is None or self.travel.net is None or not self.travel.net.n_nodes or lon is None \
                or lat is None or pd.isna(lon) or pd.isna(lat):
            return -1
        p = gpd.GeoSeries([shapely.Point(float(lon), float(lat))], crs=4326).to_crs(self.metric).iloc[0]
        xy = self.travel.net.node_xy
        return int(np.argmin(np.hypot(xy[:, 0] - p.x, xy[:, 1] - p.y)))

    def worst_travel_s(self, settlements, node: int = -1) -> float:  # noqa: ANN001
        """Seconds to the farthest of ``settlements`` from street node ``node`` (a grid's station), or
        from the best hub among them when there is none (as check_rural); 0 without settlements."""
        ss = sorted(set(settlements))
        if not ss or self.travel is None:
            return 0.0
        if node >= 0:
            return float(self.travel.to_settlements(node, ss).max())
        return float(self.travel.best_hub(ss, self.st.households)[1])


def street_names_frame(roads: gpd.GeoDataFrame, metric) -> gpd.GeoDataFrame:  # noqa: ANN001
    """``roads`` (EPSG:4326) as (name, geometry) in ``metric``, the Chinese name first (``name_zh``, else ``name``)."""
    if not len(roads) or "name" not in roads:
        return gpd.GeoDataFrame({"name": []}, geometry=gpd.GeoSeries([], crs=metric))
    name = roads["name_zh"].where(roads["name_zh"].notna() & (roads["name_zh"].astype(str).str.strip() != ""),
                                  roads["name"]) if "name_zh" in roads else roads["name"]
    return gpd.GeoDataFrame({"name": name.to_numpy()}, geometry=roads.geometry.to_crs(metric).to_numpy(), crs=metric)


def rural_grid_names(grids: gpd.GeoDataFrame, settlements: list[list[int]], st: Settlements,
                     roads: gpd.GeoDataFrame, metric) -> list[str | None]:  # noqa: ANN001
    """Names of ``grids`` (EPSG:4326, one area's, with ``parent_code``) holding ``settlements`` each: their named
    settlements, else the named streets nearest their centre, else the code; unique in the area."""
    streets = street_names_frame(roads, metric)
    geoms = grids.geometry.to_crs(metric).to_numpy()
    names = [grid_name(settlement_names(st, ss), g, streets, total=len(ss)) or str(code)
             for ss, g, code in zip(settlements, geoms, grids["code"])]
    return unique_names(names, grids["parent_code"].astype(str).tolist())


def _travel(roads: gpd.GeoDataFrame, params: PlanParams, metric, hulls: np.ndarray,  # noqa: ANN001
            limited: bool = True) -> Travel:
    from gridpatrol.gis.streets import street_network

    net = street_network(roads, mode=params.travel_mode, crs=metric) if len(roads) else None
    limit = params.max_travel_min * 60.0 if params.max_travel_min and limited else None
    return Travel(net, params.travel_mode, hulls, limit)


def partition_area_rural(store, area: pd.Series, metric, blocks: gpd.GeoDataFrame,  # noqa: ANN001
                         roads: gpd.GeoDataFrame, barriers: gpd.GeoDataFrame, params: PlanParams,
                         locked_all: gpd.GeoDataFrame, say) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, nx.Graph, dict]:  # noqa: ANN001
    """As layers.grids.core.partition_area, for ``--mode rural``; also a summary of the area
    (settlements, grids over a limit and why)."""
    from gridpatrol.gis.blocks import block_adjacency
    from gridpatrol.layers.grids.core import codes_around_locked, grids_from_blocks, read_within

    code = str(area["code"])
    locked = locked_all[locked_all["parent_code"].astype(str) == code].reset_index(drop=True) \
        if len(locked_all) else locked_all
    # A block belongs to a locked grid when its representative point lies in it (as in urban draws):
    # those blocks keep their grid, code, name and station; the rest is drawn around them.
    lock_of = assign_xy(*representative_xy(blocks.geometry), locked.geometry) if len(locked) \
        else np.full(len(blocks), -1, dtype=np.int64)
    free = lock_of < 0
    say(f"area {code}: settlements")
    buildings = read_within(store, "buildings", area.geometry)
    fp, st, _ = area_settlements(buildings, area.geometry, metric, params.settlement_gap_m,
                                 read_places(store, area.geometry))
    bm = blocks.to_crs(metric)
    bgeoms = bm.geometry.to_numpy()
    if len(fp):
        rp = shapely.get_coordinates(shapely.point_on_surface(fp))
        block_of_building = assign_xy(rp[:, 0], rp[:, 1], bgeoms)
    else:
        block_of_building = np.zeros(0, dtype=np.int64)
    # the drawing sees the free blocks only (buildings in locked grids lie in no block of it)
    free_row = np.cumsum(free) - 1
    block_of_free = np.where((block_of_building >= 0) & free[np.maximum(block_of_building, 0)],
                             free_row[np.maximum(block_of_building, 0)], -1)
    say(f"area {code}: {len(st)} settlements; adjacency of {len(blocks)} blocks")
    adj = block_adjacency(blocks, roads, barriers, metric_crs=metric)
    row_of = {int(b): i for i, b in enumerate(blocks["block_id"].to_numpy())}
    pairs = [(free_row[row_of[int(u)]], free_row[row_of[int(v)]]) for u, v in adj.edges()
             if free[row_of[int(u)]] and free[row_of[int(v)]]]
    travel = _travel(roads, params, metric, st.hulls)
    say(f"area {code}: grouping settlements")
    target, low, high = params.workload_band()
    cxy = shapely.get_coordinates(shapely.point_on_surface(bgeoms))
    area_m2 = shapely.area(bgeoms)
    hh = pd.to_numeric(blocks["households"], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    if free.any():
        free_labels, rgrids = draw_rural(area_m2[free], hh[free], cxy[free], pairs, block_of_free, st, travel,
                                         max_area_m2=params.max_area_m2,
                                         max_travel_s=params.max_travel_min * 60.0 if params.max_travel_min else None,
                                         max_households=high, min_households=low)
    else:
        free_labels, rgrids = np.zeros(0, dtype=np.int64), []
    labels = np.where(free, 0, len(rgrids) + lock_of)
    labels[free] = free_labels
    blocks = blocks.copy()
    blocks["area_code"] = code
    blocks["_part"] = labels
    parts = blocks.dissolve(by="_part", as_index=False)[["_part", "geometry"]]
    parts["parent_code"] = code
    # locked grids keep their code; the others are numbered west→east, north→south as urban grids are
    locked_codes = {len(rgrids) + int(k): str(locked["code"].iloc[int(k)]) for k in set(lock_of.tolist()) if k >= 0}
    if locked_codes:
        parts["code"] = codes_around_locked(parts, locked_codes, code, CodeFormat(params.code_format), metric)
    else:
        parts["code"] = assign_codes(parts, fmt=CodeFormat(params.code_format), metric_crs=metric).to_numpy()
    code_of = dict(zip(parts["_part"], parts["code"]))
    blocks["grid_code"] = [code_of[p] for p in labels]
    grids = grids_from_blocks(blocks, metric, {c: True for c in locked_codes.values()})
    by_code = {code_of[i]: g for i, g in enumerate(rgrids)}
    to_wgs = gpd.GeoSeries([shapely.Point(travel.net.node_xy[travel.access[g.hub]]) if g.hub >= 0
                            and travel.access[g.hub] >= 0 else shapely.Point() for g in rgrids], crs=metric).to_crs(4326)
    station = {code_of[i]: ((None, None) if p.is_empty else (float(p.x), float(p.y))) for i, p in enumerate(to_wgs)}
    is_locked = grids["code"].isin(set(locked_codes.values()))
    drawn = grids[~is_locked]
    name = dict(zip(drawn["code"], rural_grid_names(drawn, [by_code[c].settlements for c in drawn["code"]], st, roads,
                                                       metric)))
    exempt = {c: g.exempt_reason is not None for c, g in by_code.items()}
    kept = locked.set_index(locked["code"].astype(str))
    for c in locked_codes.values():  # a locked grid as it was: its name, station and exemption
        row = kept.loc[c]
        name[c] = row.get("name")
        station[c] = tuple(None if v is None or pd.isna(v) else float(v)
                           for v in (row.get("station_lon"), row.get("station_lat")))
        exempt[c] = bool(row.get("exempt")) if row.get("exempt") is not None and not pd.isna(row.get("exempt")) else False
    grids["name"] = unique_names([name[c] for c in grids["code"]], grids["parent_code"].astype(str).tolist(),
                                 fixed=is_locked.tolist())  # a locked grid keeps its name; a drawn one gives way
    grids["station_lon"] = [station[c][0] for c in grids["code"]]
    grids["station_lat"] = [station[c][1] for c in grids["code"]]
    grids["exempt"] = [exempt[c] for c in grids["code"]]
    summary = {
        "settlements": len(st),
        "grids": len(grids),
        "locked": sorted(locked_codes.values()),
        "exempt": {c: g.exempt_reason for c, g in by_code.items() if g.exempt_reason},
        "travel_min": {c: (None if not np.isfinite(g.travel_s) else round(g.travel_s / 60, 1))
                       for c, g in by_code.items() if g.settlements},
        "land_only_grids": int(sum(not g.settlements for g in rgrids)),
    }
    return blocks.drop(columns=["_part"]), grids, adj, summary


_SPLIT_INTO = " 个网格："
_SPLIT_OUTSIDE = "，部分不在任何网格"


def split_settlement_grids(detail: str) -> frozenset[str]:
    """The grid codes a ``settlement_split`` problem's detail names (with "" for the part in no
    grid): an edit that keeps a settlement within the grids it already straddled adds no split."""
    tail = detail.split(_SPLIT_INTO, 1)[1] if _SPLIT_INTO in detail else ""
    codes = {c.strip() for c in tail.removesuffix(_SPLIT_OUTSIDE).split(",") if c.strip()}
    return frozenset(codes | ({""} if detail.endswith(_SPLIT_OUTSIDE) else set()))


def check_rural(store, grids: gpd.GeoDataFrame, blocks: gpd.GeoDataFrame | None, areas: gpd.GeoDataFrame,  # noqa: ANN001
                params: PlanParams, metric) -> tuple[list[dict], dict]:  # noqa: ANN001
    """Rural problems of a plan: settlements split across grids, grids over the area or travel
    limit (exempt when one indivisible unit of settlements is over it alone), settlements the area
    boundary cuts, households outside the band (a warning: households are balanced second).
    Returns (rows in grid_check.PROBLEM_COLUMNS, EPSG:4326 points; summary)."""
    from gridpatrol.layers.grids.core import read_within

    rows: list[dict] = []
    _, low, high = params.workload_band()
    area_cap = params.max_area_m2
    travel_cap = params.max_travel_min * 60.0 if params.max_travel_min else None
    gm = grids.to_crs(metric).reset_index(drop=True)
    codes = gm["code"].astype(str).to_numpy()
    ggeoms = gm.geometry.to_numpy()
    box = shapely.box(*grids.total_bounds)
    buildings = read_within(store, "buildings", box)
    roads = read_within(store, "roads", box)
    streets = street_names_frame(roads, metric)

    def add(kind: str, code: str | None, detail: str, geom_metric, hh: float | None = None) -> None:  # noqa: ANN001
        pt = gpd.GeoSeries([geom_metric], crs=metric).to_crs(4326).iloc[0]
        rows.append({"kind": kind, "severity": SEVERITY[kind], "grid_code": code, "detail": detail,
                     "area_m2": None, "households": hh, "deviation_pct": None, "geometry": pt})

    n_split = n_settlements = 0
    worst_travel: dict[str, float] = {}
    grid_names: dict[str, str | None] = {}  # as drawn grids are named (not yet made unique in their area)
    bmet = blocks.to_crs(metric) if blocks is not None and len(blocks) else None
    for _, area in areas.iterrows():
        sel = gm["parent_code"].astype(str).to_numpy() == str(area["code"])
        if not sel.any():
            continue
        idx = np.flatnonzero(sel)
        fp, st, inside = area_settlements(buildings, area.geometry, metric, params.settlement_gap_m,
                                          read_places(store, area.geometry))
        n_settlements += len(st)
        if len(fp) == 0:
            grid_names.update({codes[g]: grid_name([], ggeoms[g], streets) or codes[g] for g in idx})
            continue
        rp = shapely.get_coordinates(shapely.point_on_surface(fp))
        g_of = assign_xy(rp[:, 0], rp[:, 1], ggeoms[idx])
        grid_of_b = np.where(g_of >= 0, idx[np.maximum(g_of, 0)], -1)
        # settlements the area boundary cuts: buildings of it within gap of a building outside the area
        outside = buildings[~inside]
        if len(outside):
            ofp = outside.geometry.to_crs(metric).to_numpy()
            tree = shapely.STRtree(ofp)
            near = tree.query(st.hulls, predicate="dwithin", distance=float(params.settlement_gap_m))
            for s in sorted(set(near[0].tolist())):
                add("settlement_on_area_boundary", None, f"居民点 {st.names[s]} 跨越区域 {area['code']} 的边界："
                    f"网格不跨区域，边界外的部分属于相邻区域的网格", shapely.point_on_surface(st.hulls[s]))
        grids_of_s: dict[int, set[int]] = {}
        for s, gi in zip(st.of_building, grid_of_b):
            grids_of_s.setdefault(int(s), set()).add(int(gi))
        for s, gs in sorted(grids_of_s.items()):
            named = sorted(codes[g] for g in gs if g >= 0)
            if len(gs) > 1:
                n_split += 1
                add("settlement_split", None, f"居民点 {st.names[s]}（{st.buildings[s]} 栋建筑）被分到 "
                    f"{len(gs)}{_SPLIT_INTO}{', '.join(named)}" + (_SPLIT_OUTSIDE if -1 in gs else ""),
                    shapely.point_on_surface(st.hulls[s]))
        settlements_of_grid: dict[int, list[int]] = {}
        for s, gs in grids_of_s.items():
            for g in gs:
                if g >= 0:
                    settlements_of_grid.setdefault(g, []).append(s)
        # units: settlements sharing a block with one another are one (they cannot be apart)
        unit_of_s = np.arange(len(st))
        unit_area = {}
        if bmet is not None:
            bsel = bmet[bmet["grid_code"].astype(str).isin(set(codes[idx]))]
            bg = bsel.geometry.to_numpy()
            block_of = assign_xy(rp[:, 0], rp[:, 1], bg)
            unit_of_block, unit_of_s = block_units(len(bg), block_of, st.of_building)
            ba = shapely.area(bg)
            for u in set(unit_of_s.tolist()):
                unit_area[u] = float(ba[unit_of_block == u].sum())
        travel = _travel(roads, params, metric, st.hulls) if travel_cap is not None else None
        for g in idx:
            ss = settlements_of_grid.get(int(g), [])
            units = {int(unit_of_s[s]) for s in ss}
            a = float(shapely.area(ggeoms[g]))
            names = describe_settlements(st, ss) if ss else "无居民点"
            grid_names[codes[g]] = grid_name(settlement_names(st, ss), ggeoms[g], streets, total=len(ss)) or codes[g]
            if area_cap is not None and a > area_cap * (1 + 1e-9):
                lone = len(units) == 1 and unit_area.get(next(iter(units)), 0.0) > area_cap
                if lone:
                    add("rural_limit_exempt", codes[g], f"网格 {codes[g]} 面积 {a:,.0f} m²，超过上限 {area_cap:,.0f} m²"
                        f"（豁免：{names}的街区本身就有 {unit_area[next(iter(units))]:,.0f} m²，不可分割）",
                        shapely.point_on_surface(ggeoms[g]))
                elif not units and bmet is not None and (bmet["grid_code"].astype(str) == codes[g]).sum() == 1:
                    add("rural_limit_exempt", codes[g], f"网格 {codes[g]} 是一个无居民点的街区，面积 {a:,.0f} m²，"
                        f"超过上限 {area_cap:,.0f} m²（豁免：单个街区不可分割）", shapely.point_on_surface(ggeoms[g]))
                else:
                    add("over_area_limit", codes[g], f"网格 {codes[g]} 面积 {a:,.0f} m²，超过上限 {area_cap:,.0f} m²"
                        f"（--max-area-m2，超出 {a - area_cap:,.0f} m²）", shapely.point_on_surface(ggeoms[g]))
            if travel is not None and ss:
                lon, lat = gm.loc[g, "station_lon"] if "station_lon" in gm else None, \
                    gm.loc[g, "station_lat"] if "station_lat" in gm else None
                if lon is None or lat is None or pd.isna(lon) or pd.isna(lat):
                    hub, t = travel.best_hub(ss, st.households)
                    where = "（网格没有驻点，按最佳居民点计）"
                else:
                    p = gpd.GeoSeries([shapely.Point(float(lon), float(lat))], crs=4326).to_crs(metric).iloc[0]
                    node = -1
                    if travel.net is not None and travel.net.n_nodes:
                        node = int(np.argmin(np.hypot(travel.net.node_xy[:, 0] - p.x, travel.net.node_xy[:, 1] - p.y)))
                    t = float(travel.to_settlements(node, ss).max())
                    where = "从驻点"
                worst_travel[codes[g]] = round(t / 60, 1) if np.isfinite(t) else None
                one, group = "单独一个居民点", "是不可分开的一组居民点（同处一组街区）"
                if t > travel_cap * (1 + 1e-9):
                    tt = "无法经道路到达" if not np.isfinite(t) else f"需 {t / 60:.1f} 分钟"
                    if len(units) == 1:
                        add("rural_limit_exempt", codes[g], f"网格 {codes[g]} {where}到最远的居民点{tt}，超过上限 "
                            f"{travel_cap / 60:g} 分钟（豁免：{names}{one if len(ss) == 1 else group}，网格不能再小）",
                            shapely.point_on_surface(ggeoms[g]))
                    else:
                        add("over_travel_limit", codes[g], f"网格 {codes[g]} {where}到最远的居民点{tt}，超过上限 "
                            f"{travel_cap / 60:g} 分钟（--max-travel-min"
                            + (f"，超出 {(t - travel_cap) / 60:.1f} 分钟）" if np.isfinite(t) else "）"),
                            shapely.point_on_surface(ggeoms[g]))
            hh = float(pd.to_numeric(pd.Series([gm.loc[g, "households"]]), errors="coerce").fillna(0).iloc[0])
            if hh < low - 1e-9 or hh > high + 1e-9:
                add("rural_households_off_band", codes[g], f"网格 {codes[g]}（{names}）有 {hh:.0f} 户，不在 "
                    f"{low:g}–{high:g} 户之间（农村网格以完整居民点和面积、路程上限为先，户数其次）",
                    shapely.point_on_surface(ggeoms[g]), hh=hh)
    summary = {"mode": "rural", "settlements": n_settlements, "settlements_split": n_split,
               "max_area_m2": area_cap, "max_travel_min": params.max_travel_min, "travel_mode": params.travel_mode,
               "travel_min": worst_travel, "grid_names": grid_names}
    return rows, summary


def add_rural_checks(store, grids: gpd.GeoDataFrame, blocks: gpd.GeoDataFrame | None,  # noqa: ANN001
                     areas: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame, params: PlanParams, metric):  # noqa: ANN001, ANN201
    """check_frames for a rural plan: the geometric rules of every plan (coverage, overlaps,
    nesting, contiguity, buildings, codes) with households as a secondary balance (no band error),
    and the rural rules of ``check_rural``. Returns the CheckResult."""
    from gridpatrol.gis.grid_check import PROBLEM_COLUMNS, check_plan

    res = check_plan(grids, areas, buildings, blocks=blocks if blocks is not None and len(blocks) else None,
                     min_households=0.0, max_households=1e15, code_format=params.code_format,
                     metric_crs=metric, recount_households=False)
    rows, summary = check_rural(store, grids, blocks, areas, params, metric)
    if rows:
        extra = gpd.GeoDataFrame(rows, columns=PROBLEM_COLUMNS, geometry="geometry", crs="EPSG:4326")
        res.problems = pd.concat([res.problems.to_crs("EPSG:4326"), extra], ignore_index=True)
    p = res.problems
    res.summary["problems_by_kind"] = {k: int(v) for k, v in p["kind"].value_counts().to_dict().items()} if len(p) else {}
    res.summary["errors"] = int((p["severity"] == "error").sum()) if len(p) else 0
    res.summary["valid"] = res.summary["errors"] == 0
    _, low, high = params.workload_band()
    hh = pd.to_numeric(grids["households"], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    res.summary["share_in_band"] = float(((hh >= low) & (hh <= high)).mean()) if len(hh) else 1.0
    res.summary["rural"] = summary
    return res
