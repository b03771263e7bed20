"""Cut lines that split an oversized street block: straight cuts between buildings, or territories of building clusters."""
from __future__ import annotations

import math

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely.errors import GEOSException
from shapely.geometry.base import BaseGeometry

__all__ = ["NODE_GRID_M", "face_cuts", "mass_points", "split_lines", "territory_lines"]

NODE_GRID_M = 0.0001  # precision grid of block noding in the metric CRS: 0.1 mm, below any mapped feature
_CUT_GRID_M = 0.001  # 1 mm: the precision grid of the overlays made while cutting


def face_cuts(face: BaseGeometry, k: int, mass_pts: np.ndarray, mass_w: np.ndarray, obstacles: np.ndarray, *,
              piece_loads, max_households: float, by_area: bool) -> tuple[list[BaseGeometry], bool]:
    """Cut lines splitting `face` (metric CRS) into about `k` parts, and whether cutting failed.

    Straight cuts first (``split_lines``); pieces they leave above `max_households` (counted by
    ``piece_loads(pieces)``) are split between building clusters (``territory_lines``). Where GEOS
    fails on this face's geometry, the face keeps the cuts made so far (or none): one block stays
    whole instead of the whole area failing.
    """
    try:
        cuts = split_lines(face, k, mass_pts, mass_w, obstacles)
    except GEOSException:
        return [], True
    if by_area or len(obstacles) < 2:
        return cuts, False
    try:
        pieces = shapely.get_parts(shapely.polygonize(shapely.get_parts(shapely.union_all(
            [shapely.boundary(face), *cuts], grid_size=NODE_GRID_M))))
        loads = piece_loads(pieces)
    except GEOSException:
        return cuts, True
    failed = False
    for piece, hh in zip(pieces, loads):
        if hh > max_households:
            inside = obstacles[shapely.intersects(obstacles, piece)]
            try:
                cuts = cuts + territory_lines(piece, inside)
            except GEOSException:
                failed = True  # this piece stays whole
    return cuts, failed


def split_lines(face: BaseGeometry, k: int, mass_pts: np.ndarray, mass_w: np.ndarray,
                 obstacles: np.ndarray, depth: int = 0) -> list[BaseGeometry]:
    """Cut segments that split `face` into k parts of about equal mass, never through an obstacle.

    Recursive bisection with straight cuts across the face's long axis (and tilted variants),
    placed at the mass quantile or, where a building is in the way, in the nearest gap between
    buildings. Returns the cut segments (clipped to the face).
    """
    if k <= 1 or depth > 12 or face.is_empty:
        return []
    rect = shapely.minimum_rotated_rectangle(face)
    rc = shapely.get_coordinates(rect)[:4]
    e1, e2 = rc[1] - rc[0], rc[2] - rc[1]
    long_axis = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
    base = math.atan2(long_axis[1], long_axis[0])
    share = (k // 2) / k
    c = np.asarray(face.centroid.coords[0])
    diag = math.hypot(face.bounds[2] - face.bounds[0], face.bounds[3] - face.bounds[1]) + 10
    obs_bounds = shapely.get_coordinates(obstacles, return_index=True) if len(obstacles) else None
    best = None
    for tilt in np.radians([0.0, 30.0, -30.0, 60.0, -60.0, 90.0]):
        u = np.array([math.cos(base + tilt), math.sin(base + tilt)])
        proj = (mass_pts - c) @ u if len(mass_pts) else np.zeros(0)
        if mass_w.sum() <= 0:
            continue
        order = np.argsort(proj, kind="stable")
        cw = np.cumsum(mass_w[order])
        goal = share * cw[-1]
        t_star = proj[order][min(np.searchsorted(cw, goal), len(order) - 1)]
        # forbidden offsets: the projection interval of each building (a line hits it iff t is inside)
        if obs_bounds is not None:
            coords, idx = obs_bounds
            p = (coords - c) @ u
            lo = np.full(len(obstacles), np.inf)
            hi = np.full(len(obstacles), -np.inf)
            np.minimum.at(lo, idx, p)
            np.maximum.at(hi, idx, p)
            lo, hi = lo - 0.5, hi + 0.5  # keep half a metre off walls
        else:
            lo = hi = np.zeros(0)
        candidates = [t_star]
        blocked = (lo < t_star) & (hi > t_star)
        if blocked.any():
            # walk out of the overlapping run of building intervals on both sides
            for direction in (-1, 1):
                t = t_star
                for _ in range(len(lo) + 1):
                    hit = (lo < t) & (hi > t)
                    if not hit.any():
                        break
                    t = (lo[hit].min() - 1e-3) if direction < 0 else (hi[hit].max() + 1e-3)
                candidates.append(t)
            candidates = candidates[1:]
        for t in candidates:
            if len(lo) and ((lo < t) & (hi > t)).any():
                continue
            left_w = mass_w[proj < t].sum()
            err = abs(left_w - goal) / max(cw[-1], 1e-9)
            p0 = c + t * u
            v = np.array([-u[1], u[0]])
            line = shapely.linestrings([p0 - diag * v, p0 + diag * v])
            seg = shapely.intersection(line, face)
            if seg.is_empty or left_w <= 0 or left_w >= cw[-1]:
                continue
            key = (round(err, 3), seg.length)
            if best is None or key < best[0]:
                best = (key, t, u, seg)
    if best is None or best[0][0] > 0.35:
        return []  # no building-free cut near a fair split: leave the block whole
    _, t, u, seg = best
    seg = _overshoot(seg, 0.05)
    v = np.array([-u[1], u[0]])
    p0 = c + t * u
    half_lo = shapely.polygons([p0 - 2 * diag * v, p0 + 2 * diag * v,
                                p0 + 2 * diag * v - 2 * diag * u, p0 - 2 * diag * v - 2 * diag * u])
    side = (mass_pts - c) @ u < t if len(mass_pts) else np.zeros(0, bool)
    out = [seg]
    k1 = k // 2
    for piece_k, poly, sel in ((k1, shapely.intersection(face, half_lo), side),
                               (k - k1, shapely.difference(face, half_lo), ~side)):
        if piece_k > 1:
            obs = obstacles[shapely.intersects(obstacles, poly)] if len(obstacles) else obstacles
            out += split_lines(poly, piece_k, mass_pts[sel], mass_w[sel], obs, depth + 1)
    return out


def territory_lines(piece: BaseGeometry, buildings: np.ndarray, spacing_m: float = 1.0) -> list[BaseGeometry]:
    """Cut lines giving every cluster of touching buildings in `piece` its own territory.

    A cluster is a set of overlapping buildings; buildings that merely touch are parted along
    their shared wall. A territory is the part of the piece nearer to that cluster than to any
    other (Voronoi cells of points along the building outlines, joined per cluster), plus the
    cluster itself and minus the other clusters, so a territory boundary may run along a wall but
    never through a building. Returns the boundaries between territories inside the piece (none when the piece
    holds fewer than two clusters).
    """
    if len(buildings) < 2:
        return []
    # on a 1 mm grid every overlay below is snap-rounded, which GEOS cannot fail on the way the
    # floating-point overlay of nearly coincident Voronoi edges can ("unable to assign free hole")
    buildings = _polygons(shapely.set_precision(shapely.make_valid(buildings), _CUT_GRID_M))
    if len(buildings) < 2:
        return []
    # clusters: buildings that overlap belong together (touching ones may be parted along the wall)
    tree = shapely.STRtree(buildings)
    a, b = tree.query(buildings, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    over = shapely.area(shapely.intersection(buildings[a], buildings[b], grid_size=_CUT_GRID_M)) > 0.01
    a, b = a[over], b[over]
    n_clusters, cluster = connected_components(
        coo_matrix((np.ones(len(a)), (a, b)), shape=(len(buildings), len(buildings))), directed=False)
    if n_clusters < 2:
        return []
    ids = np.arange(n_clusters)
    order = np.argsort(cluster, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(cluster))]
    members = [buildings[order[bounds[c]:bounds[c + 1]]] for c in range(len(ids))]
    clusters = np.array([m[0] if len(m) == 1 else shapely.union_all(m, grid_size=_CUT_GRID_M)
                         for m in members], dtype=object)
    outlines = shapely.segmentize(shapely.boundary(clusters), spacing_m)
    xy, which = shapely.get_coordinates(outlines, return_index=True)
    xy, first = np.unique(np.round(xy, 3), axis=0, return_index=True)
    which = which[first]
    if len(xy) < 3:
        return []
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=piece, ordered=True))
    if len(cells) != len(xy):
        return []
    # GEOS's Voronoi cells can come out self-intersecting where circumcentres nearly coincide,
    # and every overlay of such a cell fails ("unable to assign free hole to a shell"). Rounded
    # point by point (so shared edges stay shared) and repaired where still invalid, the cells
    # tile the plane, and each cluster's share is a coverage union: no overlay, nothing to fail.
    cells = shapely.set_precision(cells, _CUT_GRID_M, mode="pointwise")
    bad = ~shapely.is_valid(cells)
    if bad.any():
        cells[bad] = _polygons(shapely.make_valid(cells[bad]), keep_empty=True)
    all_clusters = shapely.union_all(clusters, grid_size=_CUT_GRID_M)
    piece = shapely.set_precision(piece, _CUT_GRID_M)
    lines = []
    for c in range(len(ids)):
        terr = _coverage_union(cells[which == c])
        others = shapely.difference(all_clusters, clusters[c], grid_size=_CUT_GRID_M)
        terr = shapely.union(terr, clusters[c], grid_size=_CUT_GRID_M)
        terr = shapely.difference(terr, others, grid_size=_CUT_GRID_M)
        terr = shapely.intersection(terr, piece, grid_size=_CUT_GRID_M)
        if not terr.is_empty:
            lines.append(shapely.boundary(terr))
    if not lines:
        return []
    # the piece's own outline is already a line; what is left must reach it again, so each
    # remaining part is lengthened across the 1 cm gap (overhangs are dangles polygonize drops)
    inner = shapely.difference(shapely.union_all(lines, grid_size=_CUT_GRID_M),
                               shapely.buffer(shapely.boundary(piece), 0.01), grid_size=_CUT_GRID_M)
    inner = shapely.line_merge(inner)
    return [_extend_ends(g, 0.02) for g in shapely.get_parts(inner) if g.length > 0]


def _polygons(geoms: np.ndarray, keep_empty: bool = False) -> np.ndarray:
    """The polygonal parts of `geoms` (make_valid and snapping can leave lines or nothing).

    Geometries with no polygonal part are dropped, or kept as empty polygons with `keep_empty`.
    """
    geoms = np.asarray(geoms, dtype=object)
    out = np.empty(len(geoms), dtype=object)
    for i, g in enumerate(geoms):
        if g.geom_type in ("Polygon", "MultiPolygon"):
            out[i] = g
        else:
            parts = shapely.get_parts(g)
            parts = shapely.get_parts(parts[np.isin(shapely.get_type_id(parts), (3, 6))])
            polys = list(parts)
            out[i] = (polys[0] if len(polys) == 1 else shapely.multipolygons(polys)) if polys else shapely.Polygon()
    return out if keep_empty else out[~shapely.is_empty(out)]


def _coverage_union(cells: np.ndarray) -> BaseGeometry:
    """Union of grid-snapped tiles: the coverage union where it comes out valid, else the overlay."""
    cells = cells[~shapely.is_empty(cells)]
    if len(cells) <= 1:
        return cells[0] if len(cells) else shapely.Polygon()
    try:
        merged = shapely.coverage_union_all(cells)
        if shapely.is_valid(merged):
            return merged
    except GEOSException:
        pass  # a repaired cell no longer matches its neighbours edge for edge: overlay instead
    return shapely.union_all(cells, grid_size=_CUT_GRID_M)


def _extend_ends(line: BaseGeometry, by_m: float) -> BaseGeometry:
    """`line` with its first and last segment lengthened by `by_m` metres."""
    xy = shapely.get_coordinates(line)
    if len(xy) < 2:
        return line
    for end, nxt in ((0, 1), (-1, -2)):
        d = xy[end] - xy[nxt]
        norm = math.hypot(d[0], d[1])
        if norm > 0:
            xy[end] = xy[end] + d / norm * by_m
    return shapely.linestrings(xy)


def _overshoot(seg: BaseGeometry, by_m: float) -> BaseGeometry:
    """Each straight part of `seg` lengthened by `by_m` at both ends.

    A cut that merely ends on its parent cut or on the block edge can fail to be noded there
    once everything is snapped to the precision grid; crossing it by a few centimetres makes the
    junction a proper intersection. The overhangs are dangles, which polygonize drops.
    """
    parts = []
    for part in shapely.get_parts(seg):
        xy = shapely.get_coordinates(part)
        a, b = xy[0], xy[-1]
        d = b - a
        norm = math.hypot(d[0], d[1])
        if norm == 0:
            continue
        d = d / norm * by_m
        parts.append(shapely.linestrings([a - d, b + d]))
    return shapely.multilinestrings(parts) if len(parts) > 1 else (parts[0] if parts else seg)


def mass_points(face: BaseGeometry, fp_pts: np.ndarray, fp_hh: np.ndarray, lu_geoms: np.ndarray,
                 lu_hh: np.ndarray, by_area: bool) -> tuple[np.ndarray, np.ndarray]:
    """Weighted points standing for the face's load: households (landuse spread on a lattice) or area."""
    pts_list, w_list = [], []
    if len(fp_pts) and not by_area:
        inside = shapely.intersects(face, fp_pts)
        pts_list.append(shapely.get_coordinates(fp_pts[inside]))
        w_list.append(fp_hh[inside])
    if not by_area and not (np.asarray(lu_hh) > 0).any():
        # footprints only: the lattice would be thousands of point-in-polygon tests for nothing
        return (np.vstack(pts_list), np.concatenate(w_list)) if pts_list else (np.zeros((0, 2)), np.zeros(0))
    minx, miny, maxx, maxy = face.bounds
    # about 3,000 lattice points in the face, and never more than 20,000 in its bounding box
    spacing = max(math.sqrt(face.area / 3000.0), math.sqrt((maxx - minx) * (maxy - miny) / 20_000.0), 1.0)
    xs = np.arange(minx + spacing / 2, maxx, spacing)
    ys = np.arange(miny + spacing / 2, maxy, spacing)
    gx, gy = np.meshgrid(xs, ys)
    gx, gy = gx.ravel(), gy.ravel()
    shapely.prepare(face)
    keep = shapely.contains_xy(face, gx, gy)
    gx, gy = gx[keep], gy[keep]
    if by_area:
        return np.column_stack([gx, gy]), np.full(len(gx), spacing * spacing)
    for g, h in zip(lu_geoms, lu_hh):
        sel = shapely.intersects_xy(g, gx, gy)
        if sel.any() and h > 0:
            # the landuse polygon's households spread evenly over its area inside this face
            share = shapely.area(shapely.intersection(g, face)) / max(shapely.area(g), 1e-9)
            pts_list.append(np.column_stack([gx[sel], gy[sel]]))
            w_list.append(np.full(int(sel.sum()), h * share / sel.sum()))
    if not pts_list:
        return np.zeros((0, 2)), np.zeros(0)
    return np.vstack(pts_list), np.concatenate(w_list)
