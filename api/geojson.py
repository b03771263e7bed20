"""Parse GeoJSON request bodies into GeoDataFrames, with messages that name the bad feature."""
from __future__ import annotations

import math
from typing import Any

import geopandas as gpd
import shapely
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.vector import check_polygon, check_rings_closed
from shapely.geometry import shape

GEOMETRY_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}


def _check_coords(coords: Any, where: str, depth: int = 0) -> None:
    if depth > 6:
        raise InputError(f"{where}: coordinates are nested too deeply")
    if isinstance(coords, (list, tuple)) and coords and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in coords):
        if len(coords) < 2:
            raise InputError(f"{where}: a position needs longitude and latitude, got {coords!r}")
        lon, lat = coords[0], coords[1]
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise InputError(f"{where}: coordinates must be finite numbers")
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise InputError(
                f"{where}: position {lon}, {lat} is not WGS-84 longitude/latitude",
                hint="send EPSG:4326 coordinates in the order longitude, latitude",
            )
        return
    if not isinstance(coords, (list, tuple)):
        raise InputError(f"{where}: coordinates must be arrays of numbers, got {type(coords).__name__}")
    for c in coords:
        _check_coords(c, where, depth + 1)


def parse_geometry(obj: Any, where: str = "geometry", allowed: set[str] | None = None) -> shapely.Geometry:
    """A valid shapely geometry from a GeoJSON geometry object (WGS-84); InputError otherwise."""
    if not isinstance(obj, dict):
        raise InputError(f"{where} must be a GeoJSON geometry object, got {type(obj).__name__}")
    gtype = obj.get("type")
    if gtype not in GEOMETRY_TYPES:
        raise InputError(f"{where}: unsupported geometry type {gtype!r}", hint="use " + ", ".join(sorted(GEOMETRY_TYPES)))
    if allowed is not None and gtype not in allowed:
        raise InputError(f"{where}: expected {' or '.join(sorted(allowed))}, got {gtype}")
    if "coordinates" not in obj:
        raise InputError(f"{where}: missing 'coordinates'")
    _check_coords(obj["coordinates"], where)
    check_rings_closed(gtype, obj["coordinates"], where)
    try:
        geom = shape(obj)
    except (ValueError, TypeError, IndexError, AttributeError, shapely.errors.GEOSException) as exc:
        raise InputError(f"{where}: malformed {gtype}: {exc}") from None
    if geom.is_empty:
        raise InputError(f"{where}: empty {gtype}")
    if gtype in ("Polygon", "MultiPolygon"):
        check_polygon(geom, where)
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        raise InputError(f"{where}: invalid {gtype}: {reason}", hint="fix self-intersections (e.g. QGIS 'Fix geometries')")
    return geom


def parse_features(body: Any, *, max_features: int = 50_000, allowed: set[str] | None = None) -> gpd.GeoDataFrame:
    """A GeoDataFrame (EPSG:4326) from a GeoJSON Feature or FeatureCollection body."""
    if not isinstance(body, dict):
        raise InputError(f"request body must be a GeoJSON object, got {type(body).__name__}")
    if body.get("type") == "Feature":
        feats = [body]
    elif body.get("type") == "FeatureCollection":
        feats = body.get("features")
        if not isinstance(feats, list):
            raise InputError("FeatureCollection needs a 'features' array")
    else:
        raise InputError(f"request body must be a GeoJSON Feature or FeatureCollection, got type {body.get('type')!r}")
    if not feats:
        raise InputError("FeatureCollection has no features")
    if len(feats) > max_features:
        raise InputError(f"{len(feats)} features is over the limit of {max_features} per request", hint="send them in batches")
    crs = body.get("crs")
    if crs is not None:
        name = str((crs.get("properties") or {}).get("name", "")) if isinstance(crs, dict) else str(crs)
        if not any(tag in name for tag in ("4326", "CRS84")):
            raise InputError(f"GeoJSON declares CRS {name!r}; only WGS-84 (EPSG:4326 / CRS84) is accepted",
                             hint="reproject first, e.g. ogr2ogr -t_srs EPSG:4326")
    props, geoms = [], []
    for i, f in enumerate(feats):
        where = f"feature {i}" + (f" (id {f.get('id')!r})" if isinstance(f, dict) and f.get("id") is not None else "")
        if not isinstance(f, dict) or f.get("type") != "Feature":
            raise InputError(f"{where}: not a GeoJSON Feature")
        p = f.get("properties") or {}
        if not isinstance(p, dict):
            raise InputError(f"{where}: 'properties' must be an object")
        props.append(p)
        geoms.append(parse_geometry(f.get("geometry"), where, allowed))
    return gpd.GeoDataFrame(props, geometry=geoms, crs="EPSG:4326")
