"""Duplicate building footprints (the same building imported twice, or traced twice) merged into one."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely.errors import GEOSException

__all__ = ["DUPLICATE_OVERLAP", "merge_duplicate_footprints"]

DUPLICATE_OVERLAP = 0.9  # share of the smaller footprint two outlines must share to be one building
_GRID_M = 0.001


def _overlap_area(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection areas (m²) of pairs, on a 1 mm grid; a pair GEOS cannot intersect counts 0."""
    try:
        return shapely.area(shapely.intersection(a, b, grid_size=_GRID_M))
    except GEOSException:
        out = np.zeros(len(a))
        for i, (x, y) in enumerate(zip(a, b)):
            try:
                out[i] = shapely.intersection(x, y, grid_size=_GRID_M).area
            except GEOSException:
                out[i] = 0.0  # leave the pair apart: merging is the riskier mistake
        return out


def merge_duplicate_footprints(buildings: gpd.GeoDataFrame, metric_crs: CRS | str | int, *,
                               min_overlap: float = DUPLICATE_OVERLAP) -> tuple[gpd.GeoDataFrame, int]:
    """`buildings` with exact and near duplicates merged, and how many rows were merged away.

    Two footprints are duplicates when their intersection covers at least `min_overlap` of the
    smaller one (areas in `metric_crs`, metres); duplicates are merged transitively. Of each group
    the row with the most tagged data stays (tagged flats, then tagged levels, then the larger
    footprint, then the lowest ``osm_id``), with its own households: the same building counted
    twice is one building. Rows with ``estimate_method == "landuse"`` are areas, not footprints,
    and are kept as they are. Row order is kept.
    """
    n = len(buildings)
    if n < 2:
        return buildings, 0
    is_fp = (buildings["estimate_method"].astype(str).to_numpy() != "landuse"
             if "estimate_method" in buildings else np.ones(n, bool))
    idx = np.flatnonzero(is_fp)
    geoms = shapely.make_valid(buildings.geometry.iloc[idx].to_crs(metric_crs).to_numpy())
    area = shapely.area(geoms)
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    smaller = np.minimum(area[a], area[b])
    dup = smaller > 0
    dup[dup] = _overlap_area(geoms[a[dup]], geoms[b[dup]]) >= min_overlap * smaller[dup] - 1e-9
    a, b = a[dup], b[dup]
    if not len(a):
        return buildings, 0
    _, group = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(len(idx), len(idx))),
                                    directed=False)
    sub = buildings.iloc[idx]
    flats = (~sub["households_estimated"].astype(bool)).to_numpy() if "households_estimated" in sub else np.zeros(len(idx), bool)
    levels = (~sub["levels_estimated"].astype(bool)).to_numpy() if "levels_estimated" in sub else np.zeros(len(idx), bool)
    osm_id = sub["osm_id"].to_numpy() if "osm_id" in sub else np.arange(len(idx))
    # per group, the best row first: lexsort sorts by the last key first
    order = np.lexsort((osm_id, -area, ~levels, ~flats, group))
    first = np.r_[True, group[order][1:] != group[order][:-1]]
    kept = np.zeros(n, bool)
    kept[~is_fp] = True
    kept[idx[order[first]]] = True
    return buildings[kept], int(n - kept.sum())
