"""Workload and shape metrics of grids and of whole grid plans."""
from __future__ import annotations

import math

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely
from pyproj import CRS

from gis.errors import InputError

__all__ = ["grid_table", "plan_metrics"]


def grid_table(blocks: gpd.GeoDataFrame, assignment: np.ndarray, *, metric_crs: CRS | str | int | None = None,
               target_households: float = 300, min_households: float = 300,
               max_households: float = 500) -> gpd.GeoDataFrame:
    """One row per grid label of `assignment` (aligned with `blocks` rows), geometry in EPSG:4326.

    Columns: ``grid`` (label), ``blocks``, ``households``, ``buildings``, ``street_m`` (sums of
    the block columns that exist), ``area_m2`` and ``perimeter_m`` (of the union, in
    `metric_crs`, default the blocks' UTM zone), ``polsby_popper`` (4π·area/perimeter², 1 for a
    disc), ``pieces`` (polygons in the union: 1 for a contiguous grid), ``exempt`` (a single block
    whose households alone exceed `max_households`), ``in_band`` and ``deviation_pct``
    (|households − target| / target · 100).
    """
    assignment = np.asarray(assignment)
    if assignment.shape != (len(blocks),):
        raise InputError(f"assignment has {assignment.shape} entries for {len(blocks)} blocks")
    if metric_crs is None:
        metric_crs = blocks.attrs.get("metric_crs") or blocks.estimate_utm_crs()
    metric_crs = CRS.from_user_input(metric_crs)
    geoms = blocks.to_crs(metric_crs).geometry.to_numpy()
    order = np.argsort(assignment, kind="stable")
    labels, starts = np.unique(assignment[order], return_index=True)
    ends = np.r_[starts[1:], len(order)]
    unions = np.empty(len(labels), dtype=object)
    for k, (a, b) in enumerate(zip(starts, ends)):
        part = geoms[order[a:b]]
        # blocks share their vertices exactly, so the cheap coverage union is exact
        unions[k] = part[0] if len(part) == 1 else shapely.coverage_union_all(part)
    area = shapely.area(unions)
    perim = shapely.length(shapely.boundary(unions))
    sums = {}
    for col in ("households", "buildings", "street_m"):
        if col in blocks:
            sums[col] = np.bincount(np.searchsorted(labels, assignment),
                                    weights=blocks[col].to_numpy(dtype=float), minlength=len(labels))
    n_blocks = np.diff(np.r_[starts, len(order)])
    hh = sums.get("households", np.zeros(len(labels)))
    out = gpd.GeoDataFrame({
        "grid": labels,
        "blocks": n_blocks,
        "households": hh,
        "buildings": sums.get("buildings", np.zeros(len(labels))).astype(np.int64),
        "street_m": sums.get("street_m", np.zeros(len(labels))),
        "area_m2": area,
        "perimeter_m": perim,
        "polsby_popper": np.divide(4 * math.pi * area, perim ** 2, out=np.zeros_like(area), where=perim > 0),
        "pieces": shapely.get_num_geometries(unions),
        "exempt": (n_blocks == 1) & (hh > max_households),
        "in_band": (hh >= min_households - 1e-9) & (hh <= max_households + 1e-9),
        "deviation_pct": np.abs(hh - target_households) / target_households * 100,
    }, geometry=gpd.GeoSeries(unions, crs=metric_crs)).to_crs(4326)
    return out


def plan_metrics(grids: gpd.GeoDataFrame, adjacency: nx.Graph, blocks: gpd.GeoDataFrame,
                 assignment: np.ndarray) -> dict[str, float]:
    """Whole-plan figures from ``grid_table`` output and the block adjacency.

    ``grids``, ``exempt_grids``, ``worst_deviation_pct`` (among non-exempt grids),
    ``share_in_band`` (of non-exempt grids), ``mean_polsby_popper``, ``contiguous_share``
    (grids whose union is one polygon), and ``boundary_on_street_share``: of the shared block
    edges that separate two different grids, the length share lying on a street or barrier
    (``line_m / length_m`` summed over the adjacency edges).
    """
    assignment = np.asarray(assignment)
    ne = grids[~grids["exempt"]]
    ids = blocks["block_id"].to_numpy()
    lab = dict(zip(ids.tolist(), assignment.tolist()))
    total = on_line = 0.0
    for u, v, d in adjacency.edges(data=True):
        lu, lv = lab.get(u), lab.get(v)
        if lu is None or lv is None or lu == lv:
            continue
        total += d.get("length_m", 0.0)
        on_line += d.get("line_m", 0.0)
    return {
        "grids": int(len(grids)),
        "exempt_grids": int(grids["exempt"].sum()),
        "worst_deviation_pct": float(ne["deviation_pct"].max()) if len(ne) else 0.0,
        "share_in_band": float(ne["in_band"].mean()) if len(ne) else 1.0,
        "mean_polsby_popper": float(grids["polsby_popper"].mean()) if len(grids) else 0.0,
        "contiguous_share": float((grids["pieces"] == 1).mean()) if len(grids) else 1.0,
        "boundary_on_street_share": on_line / total if total > 0 else 1.0,
    }

