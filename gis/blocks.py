"""Atomic street blocks of an area (polygonized streets, barriers and boundary) and their adjacency."""
from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from gridpatrol.gis.block_cuts import NODE_GRID_M, face_cuts, mass_points
from gridpatrol.gis.errors import InputError
from pyproj import CRS
from shapely.errors import GEOSException
from shapely.geometry.base import BaseGeometry

__all__ = [
    "LINE_RANK",
    "build_blocks",
    "block_adjacency",
    "block_loads",
    "cut_cost",
]

# How strongly a line separates the two sides, for "prefer grid boundaries along bigger streets and
# barriers". Rivers, railways and trunk roads are what planners draw grids along first.
LINE_RANK: dict[str, float] = {
    "motorway": 6, "trunk": 6, "primary": 5, "secondary": 4, "tertiary": 3,
    "motorway_link": 3, "trunk_link": 3, "primary_link": 3, "secondary_link": 3, "tertiary_link": 2,
    "unclassified": 2, "residential": 2, "living_street": 1.5, "service": 1, "pedestrian": 1,
    "road": 1.5, "track": 1, "busway": 2, "footway": 0.5, "path": 0.5, "cycleway": 0.5,
    "steps": 0.5, "bridleway": 0.5, "corridor": 0.5,
    # barriers
    "river": 6, "railway": 6, "canal": 5, "water": 6, "stream": 3, "wall": 3, "drain": 2,
    # not a mapped line: the area outline or a cut made here to split an oversized block
    "area": 0, "split": 0, "": 0,
}
_STREET_RANK_MIN = 0.5  # every highway counts as a street for street_m
_GRID_M = NODE_GRID_M
_MATCH_M = 0.2  # a noded edge "lies on" a source line when its midpoint is this close


def cut_cost(length_m: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Cost (metres-equivalent) of a grid boundary along a shared block edge of `length_m` metres.

    A boundary on a big street or barrier (high rank) is cheap, one across no mapped line is dear,
    so minimising the cut both keeps grids compact (short boundaries) and puts their edges on streets.
    """
    factor = 4.0 / (1.0 + np.asarray(rank, dtype=float)) ** 2
    return np.asarray(length_m, dtype=float) * factor


@dataclass
class _Lines:
    """Source lines in the metric CRS with their class and rank (roads first, then barriers)."""

    geoms: np.ndarray
    kind: np.ndarray
    rank: np.ndarray
    is_street: np.ndarray


def _as_area(area: BaseGeometry) -> BaseGeometry:
    if area is None or not isinstance(area, BaseGeometry) or area.is_empty:
        raise InputError("the planning area is empty or not a geometry",
                         hint="pass a shapely Polygon/MultiPolygon in EPSG:4326")
    if area.geom_type not in ("Polygon", "MultiPolygon"):
        raise InputError(f"the planning area is a {area.geom_type}, not a polygon",
                         hint="pass the district/community outline as a Polygon or MultiPolygon")
    if not area.is_valid:
        area = shapely.make_valid(area)
        area = shapely.union_all([g for g in shapely.get_parts(area)
                                  if g.geom_type in ("Polygon", "MultiPolygon")])
    minx, miny, maxx, maxy = area.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise InputError(f"the planning area bounds {area.bounds} are not longitude/latitude",
                         hint="reproject the area to EPSG:4326 first")
    return area


def _to_metric(gdf: gpd.GeoDataFrame | None, metric_crs: CRS, name: str) -> gpd.GeoDataFrame:
    if gdf is None or len(gdf) == 0:
        return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=metric_crs))
    if gdf.crs is None:
        raise InputError(f"the {name} layer has no CRS", hint="read it with gis.osm.read_osm (EPSG:4326)")
    out = gdf[~gdf.geometry.isna() & ~gdf.geometry.is_empty]
    return out.to_crs(metric_crs)


def _source_lines(roads_m: gpd.GeoDataFrame, barriers_m: gpd.GeoDataFrame) -> _Lines:
    geoms, kinds, streets = [], [], []
    if len(roads_m):
        hw = roads_m["highway"].astype(str).to_numpy() if "highway" in roads_m else np.full(len(roads_m), "road")
        geoms.append(roads_m.geometry.to_numpy())
        kinds.append(hw)
        streets.append(np.ones(len(roads_m), dtype=bool))
    if len(barriers_m):
        kind = barriers_m["kind"].astype(str).to_numpy() if "kind" in barriers_m else np.full(len(barriers_m), "wall")
        g = barriers_m.geometry.to_numpy()
        # water areas and riverbanks separate by their outline
        poly = np.isin(shapely.get_type_id(g), (3, 6))
        g = np.where(poly, shapely.boundary(g), g)
        geoms.append(g)
        kinds.append(kind)
        streets.append(np.zeros(len(barriers_m), dtype=bool))
    if not geoms:
        return _Lines(np.array([], dtype=object), np.array([], dtype=object), np.zeros(0), np.zeros(0, bool))
    kind = np.concatenate(kinds).astype(object)
    rank = np.array([LINE_RANK.get(k, 1.0) for k in kind], dtype=float)
    return _Lines(np.concatenate(geoms), kind, rank, np.concatenate(streets))


def _classify_edges(edges: np.ndarray, lines: _Lines) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class (kind, rank, is_street) of each noded edge: the highest-ranked source line at its midpoint."""
    n = len(edges)
    kind = np.full(n, "", dtype=object)
    rank = np.zeros(n)
    street = np.zeros(n, dtype=bool)
    if n == 0 or len(lines.geoms) == 0:
        return kind, rank, street
    mid = shapely.line_interpolate_point(edges, 0.5, normalized=True)
    tree = shapely.STRtree(lines.geoms)
    ei, li = tree.query(mid, predicate="dwithin", distance=_MATCH_M)
    if len(ei):
        r = lines.rank[li]
        order = np.lexsort((-r, ei))  # per edge, the highest rank first
        ei, li = ei[order], li[order]
        first = np.r_[True, ei[1:] != ei[:-1]]
        kind[ei[first]] = lines.kind[li[first]]
        rank[ei[first]] = lines.rank[li[first]]
        # an edge counts as street if any street runs there (a road on a wall still is a street)
        st = lines.is_street[li]
        street[np.unique(ei[st])] = True
    return kind, rank, street


def _edge_sides(edges: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face index left and right of each edge's midpoint (-1 outside every face)."""
    n = len(edges)
    length = shapely.length(edges)
    half = length / 2
    step = np.minimum(0.05, length / 4)
    p0 = shapely.get_coordinates(shapely.line_interpolate_point(edges, half - step))
    p1 = shapely.get_coordinates(shapely.line_interpolate_point(edges, half + step))
    pm = shapely.get_coordinates(shapely.line_interpolate_point(edges, half))
    d = p1 - p0
    norm = np.hypot(d[:, 0], d[:, 1])
    norm[norm == 0] = 1.0
    normal = np.column_stack([-d[:, 1], d[:, 0]]) / norm[:, None]
    off = np.minimum(0.03, np.maximum(length / 4, 0.003))[:, None]
    tree = shapely.STRtree(faces)
    sides = []
    for sign in (1.0, -1.0):
        pts = shapely.points(pm + sign * off * normal)
        pi, fi = tree.query(pts, predicate="intersects")
        side = np.full(n, -1, dtype=np.int64)
        # reversed so that the smallest face index wins where a point touches two faces
        side[pi[::-1]] = fi[::-1]
        sides.append(side)
    return sides[0], sides[1]


def _noded_faces(lines: np.ndarray, area_m: BaseGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Node the lines with the area outline on the precision grid; return (faces inside area, edges)."""
    outline = shapely.boundary(area_m)
    # clip in full float precision: rounding here and again when noding can unhook T-junctions
    clipped = shapely.intersection(lines, area_m) if len(lines) else np.array([])
    clipped = clipped[~shapely.is_empty(clipped)] if len(clipped) else clipped
    parts = shapely.get_parts(np.concatenate([np.asarray(clipped, dtype=object), [outline]]))
    parts = parts[np.isin(shapely.get_type_id(parts), (1, 2))]
    noded = shapely.union_all(parts, grid_size=_GRID_M)
    edges = shapely.get_parts(noded)
    edges = edges[shapely.length(edges) > 0]
    faces = shapely.get_parts(shapely.polygonize(edges))
    # polygonize also closes the area's holes and any ring outside it: keep faces inside the area
    inside = shapely.intersects(area_m, shapely.point_on_surface(faces))
    return faces[inside], edges


def _merge_slivers(faces: np.ndarray, edges: np.ndarray, left: np.ndarray, right: np.ndarray,
                   min_area_m2: float, min_width_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge faces too small or too thin to be a block into their longest-shared neighbour.

    Dual carriageways and near-parallel ways make long thin faces; they are workload-free strips
    that would otherwise become grids of their own. Returns (merged faces, old→new index map).
    """
    area = shapely.area(faces)
    perim = shapely.length(shapely.boundary(faces))
    width = 2 * area / np.maximum(perim, 1e-9)
    small = (area < min_area_m2) | (width < min_width_m)
    n = len(faces)
    parent = np.arange(n)
    if small.any():
        both = (left >= 0) & (right >= 0) & (left != right)
        a, b = left[both], right[both]
        ln = shapely.length(edges[both])
        shared = pd.DataFrame({"a": np.r_[a, b], "b": np.r_[b, a], "len": np.r_[ln, ln]})
        shared = shared.groupby(["a", "b"], sort=True)["len"].sum().reset_index()
        shared = shared[small[shared["a"].to_numpy()]]
        # prefer a real (non-sliver) neighbour, then the longest shared edge, then the lowest index
        shared["nb_small"] = small[shared["b"].to_numpy()]
        shared = shared.sort_values(["a", "nb_small", "len", "b"], ascending=[True, True, False, True])
        best = shared.drop_duplicates("a")

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for a_, b_ in zip(best["a"].to_numpy(), best["b"].to_numpy()):
            ra, rb = find(int(a_)), find(int(b_))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        parent = np.array([find(i) for i in range(n)])
    roots, new_index = np.unique(parent, return_inverse=True)
    if len(roots) == n:
        return faces, new_index
    merged = np.empty(len(roots), dtype=object)
    order = np.argsort(new_index, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(new_index))]
    for g in range(len(roots)):
        members = faces[order[bounds[g]:bounds[g + 1]]]
        merged[g] = members[0] if len(members) == 1 else shapely.coverage_union_all(members)
    return merged, new_index


def _household_points(buildings_m: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split buildings into footprint ones (rep point, households) and landuse estimates (polygon, households)."""
    if len(buildings_m) == 0:
        empty = np.array([], dtype=object)
        return empty, np.zeros(0), empty, np.zeros(0)
    hh = pd.to_numeric(buildings_m.get("households", pd.Series(0.0, index=buildings_m.index)),
                       errors="coerce").fillna(0.0).to_numpy(dtype=float)
    if (hh < 0).any():
        bad = buildings_m.index[hh < 0][0]
        raise InputError(f"building row {bad} has negative households ({hh[hh < 0][0]})",
                         hint="fix the building layer; households must be >= 0")
    method = (buildings_m["estimate_method"].astype(str).to_numpy()
              if "estimate_method" in buildings_m else np.full(len(buildings_m), "footprint"))
    landuse = method == "landuse"
    geoms = buildings_m.geometry.to_numpy()
    return (shapely.point_on_surface(geoms[~landuse]), hh[~landuse], geoms[landuse], hh[landuse])


def _face_loads(faces: np.ndarray, fp_pts: np.ndarray, fp_hh: np.ndarray,
                lu_geoms: np.ndarray, lu_hh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Households and building count per face: footprints by representative point, landuse by area share."""
    n = len(faces)
    households = np.zeros(n)
    count = np.zeros(n, dtype=np.int64)
    if n == 0:
        return households, count
    tree = shapely.STRtree(faces)
    if len(fp_pts):
        pi, fi = tree.query(fp_pts, predicate="intersects")
        first = np.r_[True, pi[1:] != pi[:-1]] if len(pi) else np.zeros(0, bool)
        pi, fi = pi[first], fi[first]  # a point on a shared edge counts once (lowest face index)
        np.add.at(households, fi, fp_hh[pi])
        np.add.at(count, fi, 1)
    if len(lu_geoms):
        li, fi = tree.query(lu_geoms, predicate="intersects")
        part = shapely.area(shapely.intersection(lu_geoms[li], faces[fi]))
        # share of the whole polygon: the part outside the area belongs to the neighbouring area
        total = shapely.area(lu_geoms)[li]
        share = np.divide(part, total, out=np.zeros_like(part), where=total > 0)
        np.add.at(households, fi, lu_hh[li] * share)
    return households, count


def block_loads(blocks_m: np.ndarray, buildings_m: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Households and footprint-building count of block polygons counted as build_blocks counts
    them; blocks and buildings in one metric CRS."""
    fp_pts, fp_hh, lu_geoms, lu_hh = _household_points(buildings_m)
    return _face_loads(np.asarray(blocks_m, dtype=object), fp_pts, fp_hh, lu_geoms, lu_hh)


def build_blocks(area: BaseGeometry, roads: gpd.GeoDataFrame, barriers: gpd.GeoDataFrame,
                 buildings: gpd.GeoDataFrame, *, metric_crs: CRS | str | int,
                 max_block_households: float = 50.0, max_block_area_m2: float = 250_000.0,
                 min_block_area_m2: float = 100.0, min_block_width_m: float = 4.0,
                 max_landuse_block_households: float | None = None,
                 area_name: str | None = None) -> gpd.GeoDataFrame:
    """Atomic blocks of `area`: faces of the noded streets, barriers and area outline.

    Parameters
    ----------
    area : Polygon or MultiPolygon in EPSG:4326, the planning area.
    roads, barriers, buildings : GeoDataFrames in the columns of ``gis.osm.read_osm`` (EPSG:4326).
    metric_crs : CRS in metres used for all computation (e.g. ``gis.crs.local_metric_crs``).
    max_block_households : blocks with more households are split (between buildings, never
        through one) into ``ceil(households / max)`` parts. About a sixth of the grid target
        (the default 50 for 300) leaves the partition fine enough pieces to balance lumpy compounds.
        A face whose households do not fit a block is split between building clusters (see
        ``territory_lines``) where straight cuts cannot avoid the buildings.
    max_landuse_block_households : the same limit for households estimated from landuse areas
        (spread evenly over the area, so they can be cut anywhere); default 0.3 ×
        `max_block_households` (15 for 50: a twentieth of the target 300, half the width of the
        ±10 % window). Pieces that fine let the partition land every grid inside the window
        where whole compounds are estimated from landuse, at little cost: such faces are cut by
        straight lines.
    max_block_area_m2 : blocks larger than this are split as well (by area).
    min_block_area_m2, min_block_width_m : faces smaller or thinner (2·area/perimeter, metres) are
        merged into the neighbour they share the longest edge with (dual-carriageway medians).
    area_name : how errors name the area (default: its extent in longitude/latitude).

    Returns
    -------
    GeoDataFrame in EPSG:4326, one row per block, sorted north→south then west→east, with
    ``block_id`` (1..n), ``households`` (footprint buildings by representative point; landuse
    estimates shared by area), ``buildings`` (footprint buildings by representative point),
    ``street_m`` (metres of street inside the block plus half of every street on its boundary;
    streets on the area outline count half, the other half belongs to the neighbouring area),
    ``area_m2``, ``perimeter_m`` and ``split`` (True where the block came from cutting an
    oversized face). Geometry is computed on a 0.1 mm grid in `metric_crs`, so neighbouring
    blocks share their vertices exactly and their union is the area. A face on whose geometry
    GEOS fails while it is being split stays whole (counted in ``attrs["uncut_faces"]``); any
    other GEOS failure is raised as an InputError naming the area.
    """
    try:
        return _build_blocks(area, roads, barriers, buildings, metric_crs, max_block_households,
                             max_block_area_m2, min_block_area_m2, min_block_width_m, max_landuse_block_households)
    except GEOSException as exc:
        where = area_name or _extent_label(area)
        raise InputError(f"区块构建失败：几何运算出错（{exc}）/ building street blocks failed on a geometry error",
                         where=f"area {where}",
                         hint="the streets, barriers or building footprints there are probably broken, "
                              "self-intersecting or nearly coincident outlines: repair them in QGIS with "
                              "Vector › Geometry Tools › Fix Geometries and import them again") from exc


def _extent_label(area: object) -> str:
    """The area's extent in longitude/latitude, for messages."""
    try:
        minx, miny, maxx, maxy = area.bounds  # type: ignore[attr-defined]
        return f"({minx:.5f}, {miny:.5f}) – ({maxx:.5f}, {maxy:.5f})"
    except Exception:  # noqa: BLE001  # a message must not fail on a broken area
        return "(unknown extent)"


def _build_blocks(area: BaseGeometry, roads: gpd.GeoDataFrame, barriers: gpd.GeoDataFrame,
                  buildings: gpd.GeoDataFrame, metric_crs: CRS | str | int, max_block_households: float,
                  max_block_area_m2: float, min_block_area_m2: float, min_block_width_m: float,
                  max_landuse_block_households: float | None) -> gpd.GeoDataFrame:
    """The body of ``build_blocks`` (parameters as there)."""
    area = _as_area(area)
    try:
        metric_crs = CRS.from_user_input(metric_crs)
    except Exception as exc:  # pyproj raises its own CRSError
        raise InputError(f"metric_crs {metric_crs!r} is not a CRS: {exc}") from exc
    if not metric_crs.is_projected:
        raise InputError(f"metric_crs {metric_crs.name} is not projected (metres)",
                         hint="use gis.crs.local_metric_crs(lon, lat)")
    area_m = gpd.GeoSeries([area], crs=4326).to_crs(metric_crs).iloc[0]
    area_m = shapely.set_precision(area_m, _GRID_M)
    if area_m.is_empty or area_m.area <= 0:
        raise InputError("the planning area has no extent after projection")
    roads_m = _to_metric(roads, metric_crs, "roads")
    barriers_m = _to_metric(barriers, metric_crs, "barriers")
    buildings_m = _to_metric(buildings, metric_crs, "buildings")
    lines = _source_lines(roads_m, barriers_m)
    fp_pts, fp_hh, lu_geoms, lu_hh = _household_points(buildings_m)
    fp_geoms = buildings_m.geometry.to_numpy()
    if "estimate_method" in buildings_m:
        fp_geoms = fp_geoms[buildings_m["estimate_method"].astype(str).to_numpy() != "landuse"]

    faces, edges = _noded_faces(lines.geoms, area_m)
    left, right = _edge_sides(edges, faces)
    faces, remap = _merge_slivers(faces, edges, left, right, min_block_area_m2, min_block_width_m)
    left = np.where(left >= 0, remap[left], -1)
    right = np.where(right >= 0, remap[right], -1)
    households, _ = _face_loads(faces, fp_pts, fp_hh, lu_geoms, lu_hh)
    no_pts, no_lu = np.array([], dtype=object), np.zeros(0)
    fp_load, _ = _face_loads(faces, fp_pts, fp_hh, no_pts, no_lu)
    lu_load = np.maximum(households - fp_load, 0.0)
    max_lu = 0.3 * max_block_households if max_landuse_block_households is None else max_landuse_block_households
    k_hh = np.ceil(fp_load / max(max_block_households, 1e-9) + lu_load / max(max_lu, 1e-9) - 1e-9)
    face_area = shapely.area(faces)
    k_parts = np.maximum(k_hh, np.ceil(face_area / max(max_block_area_m2, 1e-9))).astype(int)
    cuts: list[BaseGeometry] = []
    uncut = 0  # faces left (partly) uncut where GEOS failed on their geometry
    if (k_parts > 1).any():
        fp_tree = shapely.STRtree(fp_geoms) if len(fp_geoms) else None
        lu_tree = shapely.STRtree(lu_geoms) if len(lu_geoms) else None
        pt_tree = shapely.STRtree(fp_pts) if len(fp_pts) else None
        for fi in np.flatnonzero(k_parts > 1):
            face = faces[fi]
            obs = fp_geoms[fp_tree.query(face, predicate="intersects")] if fp_tree else np.array([], dtype=object)
            lu_idx = lu_tree.query(face, predicate="intersects") if lu_tree else np.zeros(0, int)
            by_area = k_hh[fi] <= 1
            in_face = np.sort(pt_tree.query(face, predicate="intersects")) if pt_tree else np.zeros(0, int)
            pts, w = mass_points(face, fp_pts[in_face], fp_hh[in_face], lu_geoms[lu_idx], lu_hh[lu_idx], by_area)
            face_lines, failed = face_cuts(
                face, int(k_parts[fi]), pts, w, obs, by_area=by_area, max_households=max_block_households,
                piece_loads=lambda pieces, sel=in_face: _face_loads(pieces, fp_pts[sel], fp_hh[sel], no_pts, no_lu)[0])
            cuts += face_lines
            uncut += failed
    split_flag = np.zeros(len(faces), dtype=bool)
    if cuts:
        cut_arr = np.array(cuts, dtype=object)
        faces, edges = _noded_faces(np.concatenate([lines.geoms, cut_arr]), area_m)
        left, right = _edge_sides(edges, faces)
        faces, remap = _merge_slivers(faces, edges, left, right, min_block_area_m2, min_block_width_m)
        left = np.where(left >= 0, remap[left], -1)
        right = np.where(right >= 0, remap[right], -1)
        # blocks with a cut edge on their boundary came from splitting an oversized face
        mid = shapely.line_interpolate_point(edges, 0.5, normalized=True)
        on_cut = np.zeros(len(edges), dtype=bool)
        on_cut[shapely.STRtree(cut_arr).query(mid, predicate="dwithin", distance=_MATCH_M)[0]] = True
        on_cut &= left != right
        sides = np.r_[left[on_cut], right[on_cut]]
        split_flag = np.zeros(len(faces), dtype=bool)
        split_flag[sides[sides >= 0]] = True
    households, nbuild = _face_loads(faces, fp_pts, fp_hh, lu_geoms, lu_hh)

    # street length: each side of a noded edge gets half of it (an interior dead end has the same
    # face on both sides, so it counts in full)
    kind, rank, street = _classify_edges(edges, lines)
    elen = shapely.length(edges)
    street_m = np.zeros(len(faces))
    for side in (left, right):
        ok = street & (side >= 0)
        np.add.at(street_m, side[ok], elen[ok] / 2)

    rep = shapely.get_coordinates(shapely.point_on_surface(faces))
    order = np.lexsort((np.round(rep[:, 0], 1), -np.round(rep[:, 1], 1)))
    faces = faces[order]
    out = gpd.GeoDataFrame({
        "block_id": np.arange(1, len(faces) + 1, dtype=np.int64),
        "households": households[order],
        "buildings": nbuild[order],
        "street_m": street_m[order],
        "area_m2": shapely.area(faces),
        "perimeter_m": shapely.length(shapely.boundary(faces)),
        "split": split_flag[order],
    }, geometry=gpd.GeoSeries(faces, crs=metric_crs)).to_crs(4326)
    out.attrs["metric_crs"] = metric_crs.to_wkt()
    out.attrs["uncut_faces"] = int(uncut)
    return out


def block_adjacency(blocks: gpd.GeoDataFrame, roads: gpd.GeoDataFrame | None = None,
                    barriers: gpd.GeoDataFrame | None = None, *,
                    metric_crs: CRS | str | int | None = None) -> nx.Graph:
    """Rook adjacency of blocks (sharing a boundary of positive length) as a networkx Graph.

    Nodes are the blocks' ``block_id`` values, with attribute ``households`` (when the column
    exists). Each edge carries ``length_m`` (shared boundary, metres in `metric_crs`; default the
    blocks' UTM zone), ``kind`` (class of the highest-ranked road or barrier the shared boundary
    lies on: a highway value, a barrier kind, or "" when it lies on no given line), ``rank``
    (``LINE_RANK`` of that kind), ``line_m`` (metres of the shared boundary lying on a road or
    barrier) and ``weight`` (``cut_cost``: the cost of putting a grid boundary there).
    """
    if "block_id" not in blocks:
        raise InputError("the blocks have no block_id column", hint="build them with gis.blocks.build_blocks")
    if blocks["block_id"].duplicated().any():
        dup = blocks["block_id"][blocks["block_id"].duplicated()].iloc[0]
        raise InputError(f"block_id {dup} occurs more than once", hint="block ids must be unique")
    if metric_crs is None:
        metric_crs = blocks.attrs.get("metric_crs") or blocks.estimate_utm_crs()
    metric_crs = CRS.from_user_input(metric_crs)
    geoms = blocks.to_crs(metric_crs).geometry.to_numpy()
    ids = blocks["block_id"].to_numpy()
    graph = nx.Graph()
    hh = blocks["households"].to_numpy(dtype=float) if "households" in blocks else None
    for i, b in enumerate(ids):
        graph.add_node(int(b), **({"households": float(hh[i])} if hh is not None else {}))
    if len(geoms) < 2:
        return graph
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    bnd = shapely.boundary(geoms)
    shared = shapely.intersection(bnd[a], bnd[b])
    mixed = np.flatnonzero(shapely.get_type_id(shared) == 7)
    for i in mixed:  # lines plus corner points: keep the lines
        parts = shapely.get_parts(shared[i])
        shared[i] = shapely.multilinestrings(parts[np.isin(shapely.get_type_id(parts), (1, 5))])
    shared = shapely.line_merge(shared)
    length = shapely.length(shared)
    pos = length > 0.01
    a, b, shared, length = a[pos], b[pos], shared[pos], length[pos]
    r_m = _to_metric(roads, metric_crs, "roads") if roads is not None else None
    b_m = _to_metric(barriers, metric_crs, "barriers") if barriers is not None else None
    lines = _source_lines(r_m if r_m is not None else gpd.GeoDataFrame(geometry=[], crs=metric_crs),
                          b_m if b_m is not None else gpd.GeoDataFrame(geometry=[], crs=metric_crs))
    kind, rank, _ = _classify_edges(shared, lines)
    on_line = np.array([k not in ("", "area", "split") for k in kind])
    weight = cut_cost(length, rank)
    for i in range(len(a)):
        graph.add_edge(int(ids[a[i]]), int(ids[b[i]]), length_m=float(length[i]), kind=str(kind[i]),
                       rank=float(rank[i]), line_m=float(length[i]) if on_line[i] else 0.0,
                       weight=float(weight[i]))
    return graph
