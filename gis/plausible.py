"""Plausibility of coordinates for their declared CRS: catch a wrong --crs before anything is stored."""
from __future__ import annotations

import numpy as np
import pyproj
from gridpatrol.gis.crs import CHINESE_SYSTEMS, normalize_crs_name
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
