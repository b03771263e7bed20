"""Read vector files (GeoJSON, GeoPackage, Shapefile, CSV points) into WGS-84 with CRS checks."""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from gridpatrol.gis.crs import looks_like_lonlat, normalize_crs_name, to_wgs84_geometry
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.plausible import implausible, refuse_geocentric

WGS84 = "EPSG:4326"


def read_vector(path: str | Path, *, crs: str | None = None, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read ``path`` and return its features in EPSG:4326.

    ``crs`` says what the coordinates are when the file does not (or says it wrongly):
    ``wgs84``, ``gcj02``, ``bd09`` or any ``EPSG:n``. A file whose coordinates cannot be
    longitude/latitude and that declares no CRS is refused with a hint to pass ``--crs``;
    empty and unreadable files are refused with the file name.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty")
    source = normalize_crs_name(crs)
    try:
        gdf = pyogrio.read_dataframe(path, layer=layer)
    except Exception as exc:  # pyogrio raises DataSourceError/DataLayerError/… for broken files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "closed linestring" in first:
            raise InputError(f"{path}: {UNCLOSED_RING}", hint="repeat the first position at the end of the ring") from None
        raise InputError(f"{path}: cannot read as a vector file: {first}") from None
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf:
        raise InputError(f"{path} has no geometry column")
    gdf = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)].copy()
    if len(gdf) == 0:
        raise InputError(f"{path} has no features with a geometry", hint="is the layer empty?")
    bounds = tuple(float(v) for v in gdf.total_bounds)
    declared = gdf.crs
    # GDAL reports EPSG:4326 for every GeoJSON without a "crs" member, so a declared 4326 whose
    # numbers are not degrees is really "no CRS".
    if source is None:
        if declared is not None and not declared.is_geographic:
            return _plausible(path, gdf, gdf.to_crs(WGS84), declared.to_string())
        if not looks_like_lonlat(bounds):
            raise InputError(
                f"{path}: coordinates up to ({bounds[2]:.0f}, {bounds[3]:.0f}) are not longitude/latitude"
                " and the file declares no usable CRS",
                hint="pass --crs EPSG:<code> with the file's coordinate system, e.g. --crs EPSG:2248",
            )
        return gdf.set_crs(WGS84, allow_override=True)
    if source in ("wgs84", "gcj02", "bd09"):
        if not looks_like_lonlat(bounds):
            raise InputError(
                f"{path}: --crs {source} given but coordinates up to ({bounds[2]:.0f}, {bounds[3]:.0f})"
                " are not longitude/latitude",
                hint="pass the projected CRS instead, e.g. --crs EPSG:2248",
            )
        gdf = gdf.set_crs(WGS84, allow_override=True)
        if source != "wgs84":
            gdf["geometry"] = to_wgs84_geometry(gdf.geometry.values, source)
        return gdf
    refuse_geocentric(source)
    out = gdf.set_crs(source, allow_override=True).to_crs(WGS84)
    if not looks_like_lonlat(tuple(float(v) for v in out.total_bounds)):
        raise InputError(f"{path}: coordinates do not fit {crs}", hint="check the --crs value")
    return _plausible(path, gdf, out, source)


def _plausible(path: Path, raw: gpd.GeoDataFrame, out: gpd.GeoDataFrame, crs: str) -> gpd.GeoDataFrame:
    """``out`` (``raw`` converted from ``crs``) if every vertex lands where ``crs`` can put it;
    InputError naming the first features that do not (see gis.plausible)."""
    xy = shapely.get_coordinates(raw.geometry.values)
    ll, index = shapely.get_coordinates(out.geometry.values, return_index=True)
    bad, cause = implausible(xy[:, 0], xy[:, 1], ll[:, 0], ll[:, 1], crs)
    if bad.any():
        feats = sorted(set(index[bad].tolist()))
        shown = ", ".join(map(str, feats[:10])) + (" …" if len(feats) > 10 else "")
        raise InputError(f"{path}: feature(s) {shown} land at ({ll[bad][0, 0]:.4f}, {ll[bad][0, 1]:.4f}): {cause}")
    return out


UNCLOSED_RING = "a polygon ring is not closed (its last position must repeat its first)"


def check_rings_closed(gtype: str, coords: object, where: str) -> None:
    """InputError when a GeoJSON Polygon/MultiPolygon's raw ``coords`` has a ring that is not closed
    (readers would close it silently, moving the shape the user drew)."""
    polys = [coords] if gtype == "Polygon" else coords if gtype == "MultiPolygon" else []
    for poly in polys if isinstance(polys, list) else []:
        for ring in poly if isinstance(poly, list) else []:
            if not (isinstance(ring, list) and len(ring) >= 2 and isinstance(ring[0], list)
                    and isinstance(ring[-1], list)):
                continue  # not a ring of positions: the reader refuses it with its own message
            if ring[0][:2] != ring[-1][:2]:
                raise InputError(f"{where}: {UNCLOSED_RING}", hint="repeat the first position at the end of the ring")


def check_polygon(geom, where: str) -> None:  # noqa: ANN001
    """InputError when a polygonal ``geom`` (WGS-84) cannot be stored as drawn: heights (Z), or a
    ring crossing the antimeridian (it would become a polygon around the globe)."""
    if geom is None or geom.is_empty:
        return
    if shapely.has_z(geom):
        raise InputError(f"{where}: the polygon has heights (3D coordinates); polygons are stored in 2D",
                         hint="drop the Z values first, e.g. ogr2ogr -dim XY out.geojson in.geojson")
    for part in shapely.get_parts(geom):
        minx, _, maxx, _ = part.bounds
        if maxx - minx > 180.0:
            raise InputError(f"{where}: the polygon spans {maxx - minx:.1f}° of longitude: it crosses the "
                             "antimeridian (180°) and would be stored as a shape around the globe",
                             hint="split it at 180° into two polygons, or check the longitudes")


def checked_polygons(geoms, path: object, what: str) -> list:  # noqa: ANN001
    """Valid MultiPolygons for the features of a file of ``what`` (areas, grids); InputError naming
    the first feature that is not a polygon, has heights or crosses the antimeridian."""
    out = []
    for i, g in enumerate(geoms):
        check_polygon(g, f"{path}: feature {i}")
        m = as_multipolygon(g)
        if m is None:
            raise InputError(f"{path}: feature {i} is not a polygon", hint=f"{what} must be polygons")
        out.append(m)
    return out


def as_multipolygon(geom):  # noqa: ANN001, ANN201
    """A valid MultiPolygon from any polygonal geometry (lines and points dropped)."""
    geom = shapely.make_valid(geom)
    polys = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon"]
    for g in shapely.get_parts(geom):
        if g.geom_type == "MultiPolygon":
            polys.extend(g.geoms)
        elif g.geom_type == "GeometryCollection":
            polys.extend(p for p in g.geoms if p.geom_type == "Polygon")
    return shapely.MultiPolygon(polys) if polys else None


def cut_into_cells(geom, n: int) -> list[tuple[int, int, object]]:  # noqa: ANN001
    """``geom`` cut by an n × n grid of equal rectangles over its bounds (any CRS).

    Returns (column, row, piece) for every piece with a positive area, columns west→east and
    rows south→north: how a district is cut into pieces before grids exist.
    """
    minx, miny, maxx, maxy = geom.bounds
    xs, ys = np.linspace(minx, maxx, n + 1), np.linspace(miny, maxy, n + 1)
    out = []
    for i in range(n):
        for j in range(n):
            piece = shapely.intersection(geom, shapely.box(xs[i], ys[j], xs[i + 1], ys[j + 1]))
            if not piece.is_empty and piece.area > 0:
                out.append((i, j, piece))
    return out
