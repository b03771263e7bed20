"""Assign buildings (or any points) to grids by representative point, in bulk and incrementally."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from gridpatrol.gis.errors import InputError


def _as_array(geoms) -> np.ndarray:
    if isinstance(geoms, (gpd.GeoSeries, gpd.GeoDataFrame)):
        return np.asarray(geoms.geometry.values if isinstance(geoms, gpd.GeoDataFrame) else geoms.values)
    return np.asarray(geoms, dtype=object)


def _bucket_candidates(x: np.ndarray, y: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(point, polygon) pairs whose polygon bounding box contains the point.

    A uniform bucket grid over the polygons' extent (cell = median bbox side) replaces a tree
    query: it needs no point geometries and runs as a handful of numpy passes.
    """
    ok = np.isfinite(bounds).all(axis=1)
    poly_ids = np.flatnonzero(ok)
    b = bounds[ok]
    if len(b) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    x0, y0 = b[:, 0].min(), b[:, 1].min()
    x1, y1 = b[:, 2].max(), b[:, 3].max()
    side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    extent = max(x1 - x0, y1 - y0, 1e-9)
    # A quarter of the typical polygon size keeps candidates per point near the bbox-exact count
    # (measured: 2.7 vs 7.1 million pairs at a full side for 1 M points on 3,000 grids).
    cell = max(float(np.median(side)) / 4.0, extent / 2048.0)
    while True:
        ncol = int((x1 - x0) // cell) + 1
        nrow = int((y1 - y0) // cell) + 1
        cx0 = ((b[:, 0] - x0) // cell).astype(np.int64)
        cx1 = ((b[:, 2] - x0) // cell).astype(np.int64)
        cy0 = ((b[:, 1] - y0) // cell).astype(np.int64)
        cy1 = ((b[:, 3] - y0) // cell).astype(np.int64)
        w = cx1 - cx0 + 1
        per = w * (cy1 - cy0 + 1)
        # A few huge polygons over many cells: coarsen rather than exhaust memory.
        if per.sum() <= 20_000_000 + 4 * len(b):
            break
        cell *= 2.0
    owner = np.repeat(np.arange(len(b)), per)
    k = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    cells = (cy0[owner] + k // w[owner]) * ncol + cx0[owner] + k % w[owner]
    order = np.argsort(cells, kind="stable")
    cells, owner = cells[order], owner[order]
    starts = np.searchsorted(cells, np.arange(ncol * nrow + 1))
    inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    pts = np.flatnonzero(inside)
    pc = ((y[pts] - y0) // cell).astype(np.int64) * ncol + ((x[pts] - x0) // cell).astype(np.int64)
    # Visiting points cell by cell keeps each polygon's prepared index hot in the cache.
    by_cell = np.argsort(pc, kind="stable")
    pts, pc = pts[by_cell], pc[by_cell]
    cnt = starts[pc + 1] - starts[pc]
    pi = np.repeat(pts, cnt)
    off = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    gi = owner[np.repeat(starts[pc], cnt) + off]
    bb = b[gi]
    xi, yi = x[pi], y[pi]
    hit = (xi >= bb[:, 0]) & (xi <= bb[:, 2]) & (yi >= bb[:, 1]) & (yi <= bb[:, 3])
    return pi[hit], poly_ids[gi[hit]]


def assign_xy(x: np.ndarray, y: np.ndarray, polygons) -> np.ndarray:
    """Index of the polygon containing each point (x, y), -1 where none does.

    Any CRS, as long as points and polygons share it. A point on a shared boundary goes to the
    polygon with the lowest index (points strictly inside are unambiguous when the polygons do
    not overlap). Vectorised: bounding-box candidates for all points come from a uniform bucket
    index in numpy (no point geometries are created), then prepared point-in-polygon tests
    (shapely.contains_xy, then intersects_xy for boundary points) run on the candidates only.
    """
    polys = _as_array(polygons)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise InputError(f"x and y differ in length ({len(x)} vs {len(y)})")
    out = np.full(len(x), -1, dtype=np.int64)
    if len(x) == 0 or len(polys) == 0:
        return out
    usable = ~(shapely.is_missing(polys) | shapely.is_empty(polys))
    bounds = shapely.bounds(polys)
    bounds[~usable] = np.nan
    shapely.prepare(polys[usable])
    pi, gi = _bucket_candidates(x, y, bounds)
    if len(pi) == 0:
        return out
    inside = shapely.contains_xy(polys[gi], x[pi], y[pi])
    _first_by_point(out, pi[inside], gi[inside])
    rest = out[pi] < 0
    if rest.any():
        # Points exactly on a boundary: closed-polygon test for the still unassigned points.
        pr, gr = pi[rest], gi[rest]
        on = shapely.intersects_xy(polys[gr], x[pr], y[pr])
        _first_by_point(out, pr[on], gr[on])
    return out


def _first_by_point(out: np.ndarray, pi: np.ndarray, gi: np.ndarray) -> None:
    """Write into ``out[p]`` the first polygon of each run of pairs of point ``p``.

    Pairs come grouped by point with polygon indexes ascending (see _bucket_candidates), so the
    first of each run is the lowest polygon index.
    """
    if len(pi) == 0:
        return
    first = np.empty(len(pi), dtype=bool)
    first[0] = True
    np.not_equal(pi[1:], pi[:-1], out=first[1:])
    out[pi[first]] = gi[first]


def representative_xy(geoms) -> tuple[np.ndarray, np.ndarray]:
    """x and y of each geometry's representative point (a point guaranteed inside it), same CRS."""
    arr = _as_array(geoms)
    bad = shapely.is_missing(arr) | shapely.is_empty(arr)
    if bad.any():
        raise InputError(f"{int(bad.sum())} geometries are missing or empty (first at row "
                         f"{int(np.flatnonzero(bad)[0])}); cannot assign them",
                         hint="drop or repair those features first")
    xy = shapely.get_coordinates(shapely.point_on_surface(arr))
    return xy[:, 0], xy[:, 1]


def assign_buildings(buildings: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, *,
                     code_col: str = "code") -> pd.Series:
    """Grid code of each building (by representative point); None where no grid contains it.

    Both frames must share a CRS (EPSG:4326 in the store). Returns a Series aligned with
    ``buildings.index``.
    """
    _same_crs(buildings, grids)
    out = pd.Series(None, index=buildings.index, dtype=object, name="grid_code")
    if len(buildings) == 0 or len(grids) == 0:
        return out
    x, y = representative_xy(buildings.geometry)
    idx = assign_xy(x, y, grids.geometry)
    codes = grids[code_col].to_numpy(dtype=object)
    hit = idx >= 0
    out.iloc[np.flatnonzero(hit)] = codes[idx[hit]]
    return out


def reassign_buildings(buildings: gpd.GeoDataFrame, current: pd.Series,
                       grids: gpd.GeoDataFrame, changed_codes, *, code_col: str = "code") -> pd.Series:
    """Incremental assignment after an edit that changed only the grids in ``changed_codes``.

    ``current`` is the previous grid code per building (aligned with ``buildings``). Only the
    buildings currently in a changed grid (or unassigned) are re-tested, and only against the
    changed grids' new geometries; codes of all other buildings are kept. Valid when the edit
    does not change the union of the changed grids (split, merge, move, rebalance); codes that
    the edit removed may appear in ``changed_codes`` without being in ``grids``.
    """
    _same_crs(buildings, grids)
    changed = {str(c) for c in changed_codes}
    cur = current.reindex(buildings.index).astype(object)
    todo = (cur.isna() | cur.astype(str).isin(changed)).to_numpy()
    out = cur.copy().rename("grid_code")
    if not todo.any():
        return out
    sub = grids[grids[code_col].astype(str).isin(changed)]
    out.iloc[np.flatnonzero(todo)] = assign_buildings(buildings[todo], sub, code_col=code_col).to_numpy()
    return out


def crossing_buildings(buildings: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, *,
                       code_col: str = "code", min_area_m2: float = 1.0,
                       metric_crs=None) -> pd.DataFrame:
    """Buildings cut by a grid boundary: more than ``min_area_m2`` of the footprint in ≥2 grids.

    Areas are measured in ``metric_crs`` (default: the UTM zone of the data when it is
    geographic). Returns a DataFrame: building (position in ``buildings``), grid_codes (list),
    parts (number of grids), footprint_m2, outside_m2 (the footprint outside the grid holding
    most of it).
    """
    _same_crs(buildings, grids)
    cols = ["building", "grid_codes", "parts", "footprint_m2", "outside_m2"]
    if len(buildings) == 0 or len(grids) == 0:
        return pd.DataFrame(columns=cols)
    crs = metric_crs
    if crs is None and buildings.crs is not None and buildings.crs.is_geographic:
        crs = buildings.estimate_utm_crs()
    b = np.asarray(buildings.geometry.to_crs(crs).values if crs is not None else buildings.geometry.values)
    g = np.asarray(grids.geometry.to_crs(crs).values if crs is not None else grids.geometry.values)
    bi, gi = shapely.STRtree(g).query(b, predicate="intersects")
    # Only buildings touching ≥2 grids can be cut; skip the overlay for all others.
    keep = np.bincount(bi, minlength=len(b))[bi] >= 2
    bi, gi = bi[keep], gi[keep]
    if len(bi) == 0:
        return pd.DataFrame(columns=cols)
    part_m2 = shapely.area(shapely.intersection(b[bi], g[gi]))
    sig = part_m2 > min_area_m2
    df = pd.DataFrame({"b": bi[sig], "g": gi[sig], "a": part_m2[sig]})
    codes = grids[code_col].to_numpy(dtype=object)
    rows = []
    for b_i, grp in df.groupby("b", sort=True):
        if len(grp) < 2:
            continue
        fp = float(shapely.area(b[b_i]))
        rows.append((int(b_i), [codes[j] for j in grp["g"]], len(grp), fp, fp - float(grp["a"].max())))
    return pd.DataFrame(rows, columns=cols)


def _same_crs(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> None:
    if a.crs is not None and b.crs is not None and not a.crs.equals(b.crs):
        raise InputError(f"buildings are in {a.crs.to_string()} but grids in {b.crs.to_string()}",
                         hint="reproject one of them first (the store uses EPSG:4326)")


def blocks_joined_by_buildings(blocks: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame, *,
                               min_area_m2: float = 1.0, metric_crs=None) -> np.ndarray:
    """Group label per block: blocks that share a building (more than ``min_area_m2`` of its
    footprint on each side) get the same label, transitively.

    Streets mapped through buildings (arcades, footways under a podium) would otherwise put a
    grid boundary through the building; grouping such blocks before partitioning keeps every
    building whole. Labels are 0..k-1 in order of first block. Landuse-based estimates
    (``estimate_method == "landuse"``) are areas, not buildings, and are ignored.
    """
    n = len(blocks)
    if "estimate_method" in buildings.columns:
        buildings = buildings[buildings["estimate_method"].astype(str) != "landuse"]
    labels = np.arange(n)
    if n == 0 or len(buildings) == 0:
        return labels
    cut = crossing_buildings(buildings, blocks.assign(code=np.arange(n)), min_area_m2=min_area_m2,
                             metric_crs=metric_crs)
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    for parts in cut["grid_codes"]:
        parts = [int(p) for p in parts]
        graph.add_edges_from(zip(parts[:-1], parts[1:]))
    for k, comp in enumerate(sorted(nx.connected_components(graph), key=min)):
        labels[list(comp)] = k
    return labels
