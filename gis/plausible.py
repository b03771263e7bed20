"""Plausibility of coordinates for their declared CRS: catch a wrong --crs before anything is stored."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from gridpatrol.gis.crs import (
    CHINESE_SYSTEMS,
    bd09_to_wgs84,
    gcj02_to_wgs84,
    in_mainland_china,
    local_metric_crs,
    normalize_crs_name,
)
from gridpatrol.gis.errors import InputError
from numpy.typing import ArrayLike, NDArray

# Ground features (cameras, incidents, grids) are never this close to the poles or to 0°, 0°
# (Null Island, in the Gulf of Guinea): points there come from a wrong CRS, not from the field.
MAX_ABS_LAT = 85.0
NULL_ISLAND_DEG = 1.0
# How far outside a projected CRS's published area of use a point may lie (degrees): UTM and
# Gauss–Krüger zones are used a little beyond their edges.
AREA_OF_USE_MARGIN_DEG = 3.0


def _crs_label(crs: str) -> str:
    c = pyproj.CRS.from_user_input(crs)
    auth = c.to_authority()
    return f"{auth[0]}:{auth[1]}" if auth else c.name


def refuse_geocentric(crs: str | None) -> None:
    """InputError when ``crs`` is geocentric (X, Y, Z from the earth's centre): never a map CRS."""
    name = normalize_crs_name(crs)
    if name is None or name in CHINESE_SYSTEMS:
        return
    c = pyproj.CRS.from_user_input(name)
    if c.is_geocentric:
        raise InputError(f"{_crs_label(name)} is geocentric (X, Y, Z in metres from the earth's centre), "
                         "not a map coordinate system",
                         hint="for longitude/latitude pass --crs wgs84 (or gcj02/bd09 for Chinese web maps); "
                              "for projected metres the EPSG code of the projection")


def implausible(raw_x: ArrayLike, raw_y: ArrayLike, lon: ArrayLike, lat: ArrayLike,
                crs: str | None) -> tuple[NDArray[np.bool_], str | None]:
    """Which points cannot be right for the declared ``crs``, and the likely cause (or None).

    ``raw_x, raw_y`` are the numbers as given, ``lon, lat`` the same points converted to WGS-84
    degrees. A point is implausible when it converts to no valid longitude/latitude, lands near
    the poles or at Null Island, lies far outside the projected CRS's area of use, or when
    projected metres were declared but the numbers look like degrees.
    """
    raw_x, raw_y = np.asarray(raw_x, dtype=float), np.asarray(raw_y, dtype=float)
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    name = normalize_crs_name(crs) or "wgs84"
    label = name if name in CHINESE_SYSTEMS else _crs_label(name)
    with np.errstate(invalid="ignore"):
        invalid = ~(np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90))
        polar = ~invalid & (np.abs(lat) > MAX_ABS_LAT)
        null_island = ~invalid & (np.abs(lon) < NULL_ISLAND_DEG) & (np.abs(lat) < NULL_ISLAND_DEG)
        bad = invalid | polar | null_island
        if name in CHINESE_SYSTEMS or pyproj.CRS.from_user_input(name).is_geographic:
            return bad, (f"as {label} they land near the poles or at 0°, 0° (Null Island): are longitude and "
                         "latitude swapped, or are the numbers in another CRS? pass --crs EPSG:<code>"
                         if bad.any() else None)
        c = pyproj.CRS.from_user_input(name)
        unit = c.axis_info[0].unit_name if c.axis_info else "units"
        degrees = np.isfinite(raw_x) & np.isfinite(raw_y) & (np.abs(raw_x) <= 180) & (np.abs(raw_y) <= 90)
        outside = np.zeros(len(lon), dtype=bool)
        aou = c.area_of_use
        if aou is not None:
            w, s, e, n = aou.bounds
            m = AREA_OF_USE_MARGIN_DEG
            lon_ok = (lon >= w - m) & (lon <= e + m) if w <= e else (lon >= w - m) | (lon <= e + m)
            outside = ~invalid & ~(lon_ok & (lat >= s - m) & (lat <= n + m))
    bad = bad | degrees | outside
    if not bad.any():
        return bad, None
    if degrees[bad].mean() > 0.5:
        cause = (f"these look like longitude/latitude degrees but you declared {label} ({unit}s); "
                 "pass --crs wgs84 (or gcj02/bd09 for Chinese web-map coordinates)")
    elif outside[bad].mean() > 0.5 and aou is not None:
        w, s, e, n = aou.bounds
        cause = (f"as {label} they lie outside the area that CRS is for (longitude {w:g}…{e:g}, latitude "
                 f"{s:g}…{n:g}): check the --crs value")
    else:
        cause = f"as {label} they land near the poles, at 0°, 0° (Null Island) or nowhere: check the --crs value"
    return bad, cause


# A web-map shift is named when, read as another of wgs84/gcj02/bd09, at least SHIFT_MIN_POINTS of
# the points that lie among the data come within SHIFT_NEAR_M of a street, river or railway at
# least twice as often as read as declared, and 20 points in a hundred more often.
SHIFT_NEAR_M = 10.0
SHIFT_MIN_POINTS = 20
SHIFT_MIN_GAIN = 0.2


def likely_web_map_crs(lon: ArrayLike, lat: ArrayLike, declared: str | None,
                       lines: gpd.GeoSeries, region=None) -> tuple[str, float, float] | None:
    """The Chinese system (wgs84, gcj02, bd09) the raw ``lon, lat`` more probably are than ``declared``.

    ``lines`` (EPSG:4326): the imported streets, rivers and railways that outlines and points follow;
    ``region`` (EPSG:4326 polygon, default the lines' extent): where they are complete. Only points
    that lie in it, read as declared, are compared.
    Returns (system, share of points within SHIFT_NEAR_M of a line as declared, share as that
    system), or None when the declared reading fits as well or there is too little to compare.
    """
    name = normalize_crs_name(declared) or "wgs84"
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    if name not in CHINESE_SYSTEMS or lines is None or len(lines) == 0:
        return None
    ok = np.isfinite(lon) & np.isfinite(lat)
    lon, lat = lon[ok], lat[ok]
    if len(lon) < SHIFT_MIN_POINTS or not in_mainland_china(lon, lat).mean() > 0.5:
        return None
    hyp = {"wgs84": (lon, lat), "gcj02": gcj02_to_wgs84(lon, lat), "bd09": bd09_to_wgs84(lon, lat)}
    # Only points among the data, read as declared, say anything.
    dx, dy = hyp[name]
    among = shapely.contains_xy(region if region is not None else shapely.box(*lines.total_bounds), dx, dy)
    if among.sum() < SHIFT_MIN_POINTS:
        return None
    metric = local_metric_crs(float(np.median(dx[among])), float(np.median(dy[among])))
    tree = shapely.STRtree(lines.to_crs(metric).values)

    def near(x: NDArray, y: NDArray) -> float:
        pts = gpd.GeoSeries(shapely.points(np.asarray(x)[among], np.asarray(y)[among]), crs="EPSG:4326")
        _, d = tree.query_nearest(pts.to_crs(metric).values, return_distance=True, all_matches=False)
        return float((d <= SHIFT_NEAR_M).mean())

    scores = {k: near(*v) for k, v in hyp.items()}
    as_declared = scores.pop(name)
    best = max(scores, key=scores.get)
    if scores[best] >= 2 * as_declared and scores[best] - as_declared >= SHIFT_MIN_GAIN:
        return best, as_declared, scores[best]
    return None
