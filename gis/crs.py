"""Coordinate systems: WGS-84 ⇄ GCJ-02 ⇄ BD-09 conversions and the choice of a local metric CRS."""
from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import pyproj
import shapely
from gridpatrol.gis.errors import InputError
from numpy.typing import ArrayLike, NDArray

# Krasovsky 1940 ellipsoid, as used by the published GCJ-02 obfuscation.
_A = 6378245.0
_EE = 0.00669342162296594323
# BD-09 constants (Baidu's published transform on top of GCJ-02).
_X_PI = math.pi * 3000.0 / 180.0

Pair = tuple[NDArray[np.float64], NDArray[np.float64]]


_CELL_DEG = 0.5  # cells of the lookup grid over the outline's bounds


@functools.cache
def _mainland_grid() -> tuple[shapely.MultiPolygon, tuple[float, float], NDArray[np.int8]]:
    """The prepared outline, its grid origin, and per cell: 1 inside, 0 outside, -1 on the edge."""
    from gridpatrol.gis.china_outline import MAINLAND_CHINA

    outline = shapely.MultiPolygon([shapely.Polygon(ring) for ring in MAINLAND_CHINA])
    shapely.prepare(outline)
    minx, miny, maxx, maxy = shapely.bounds(outline)
    nx, ny = int(math.ceil((maxx - minx) / _CELL_DEG)), int(math.ceil((maxy - miny) / _CELL_DEG))
    ix, iy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    x0, y0 = minx + ix.ravel() * _CELL_DEG, miny + iy.ravel() * _CELL_DEG
    cells = shapely.box(x0, y0, x0 + _CELL_DEG, y0 + _CELL_DEG)
    state = np.where(shapely.contains(outline, cells), 1, np.where(shapely.intersects(outline, cells), -1, 0))
    return outline, (minx, miny), state.astype(np.int8).reshape(nx, ny)


def in_mainland_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """True where (lon, lat) (degrees) lies in mainland China, where GCJ-02 applies.

    The outline (gis/china_outline.py, a few hundred vertices, coastal waters included) leaves
    out Hong Kong and Macau, which do not use GCJ-02, Taiwan and every neighbouring country.
    A grid of 0.5° cells answers points far from the edge; the others go to the polygon.
    """
    lon_b, lat_b = np.broadcast_arrays(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    shape = lon_b.shape
    lon_b, lat_b = lon_b.ravel(), lat_b.ravel()  # 0-d (scalar) input too: boolean masks need 1-d
    outline, (minx, miny), state = _mainland_grid()
    with np.errstate(invalid="ignore"):
        ix = np.floor((lon_b - minx) / _CELL_DEG)
        iy = np.floor((lat_b - miny) / _CELL_DEG)
    ok = (ix >= 0) & (ix < state.shape[0]) & (iy >= 0) & (iy < state.shape[1])
    cell = np.zeros(lon_b.shape, dtype=np.int8)
    cell[ok] = state[ix[ok].astype(np.intp), iy[ok].astype(np.intp)]
    out = cell == 1
    edge = cell == -1
    out[edge] = shapely.contains_xy(outline, lon_b[edge], lat_b[edge])
    return out.reshape(shape)


def _delta(lon: NDArray, lat: NDArray) -> Pair:
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    dlat += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    dlon += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    return dlon, dlat


def _invert(forward: Callable[[ArrayLike, ArrayLike], Pair], tlon: NDArray, tlat: NDArray,
            lon: NDArray, lat: NDArray, tol_deg: float, max_iter: int) -> Pair:
    """Solve forward(lon, lat) = (tlon, tlat) by fixed-point iteration from the first guess."""
    for _ in range(max_iter):
        flon, flat = forward(lon, lat)
        elon, elat = flon - tlon, flat - tlat
        lon, lat = lon - elon, lat - elat
        if np.all(np.abs(elon) < tol_deg) and np.all(np.abs(elat) < tol_deg):
            break
    return lon, lat


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """WGS-84 → GCJ-02 (degrees, vectorised); points outside mainland China are returned as is."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    dlon, dlat = _delta(lon, lat)
    inside = in_mainland_china(lon, lat)
    return np.where(inside, lon + dlon, lon), np.where(inside, lat + dlat, lat)


def _shifted(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """The GCJ-02 shift applied everywhere (the inverse iterates it, then keeps outside points)."""
    dlon, dlat = _delta(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike, *, tol_deg: float = 1e-9, max_iter: int = 30) -> Pair:
    """GCJ-02 → WGS-84 by fixed-point iteration of the forward transform (error ≪ 0.5 m); points
    outside mainland China (``in_mainland_china`` of the GCJ-02 point) are returned as is."""
    glon = np.asarray(lon, dtype=float)
    glat = np.asarray(lat, dtype=float)
    wlon, wlat = _invert(_shifted, glon, glat, glon.copy(), glat.copy(), tol_deg, max_iter)
    inside = in_mainland_china(glon, glat)
    return np.where(inside, wlon, glon), np.where(inside, wlat, glat)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """GCJ-02 → BD-09 (Baidu), vectorised."""
    x = np.asarray(lon, dtype=float)
    y = np.asarray(lat, dtype=float)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike, *, tol_deg: float = 1e-10, max_iter: int = 20) -> Pair:
    """BD-09 → GCJ-02: the closed-form inverse, refined by iteration so round trips are exact."""
    blon = np.asarray(lon, dtype=float)
    blat = np.asarray(lat, dtype=float)
    x = blon - 0.0065
    y = blat - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return _invert(gcj02_to_bd09, blon, blat, z * np.cos(theta), z * np.sin(theta), tol_deg, max_iter)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """WGS-84 → BD-09, vectorised (through GCJ-02)."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """BD-09 → WGS-84, vectorised (through GCJ-02)."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


_TO_WGS84: dict[str, Callable[[ArrayLike, ArrayLike], Pair]] = {
    "gcj02": gcj02_to_wgs84,
    "bd09": bd09_to_wgs84,
}
_FROM_WGS84: dict[str, Callable[[ArrayLike, ArrayLike], Pair]] = {
    "gcj02": wgs84_to_gcj02,
    "bd09": wgs84_to_bd09,
}
CHINESE_SYSTEMS = ("wgs84", "gcj02", "bd09")


def normalize_crs_name(name: str | None) -> str | None:
    """``wgs84``/``gcj02``/``bd09``, or an ``EPSG:n``/WKT string unchanged; None stays None."""
    if name is None:
        return None
    key = name.strip().lower().replace("-", "").replace("_", "")
    aliases = {"wgs84": "wgs84", "epsg:4326": "wgs84", "4326": "wgs84", "gcj02": "gcj02",
               "gcj": "gcj02", "mars": "gcj02", "bd09": "bd09", "bd09ll": "bd09", "baidu": "bd09"}
    if key in aliases:
        return aliases[key]
    problem = _conversion_problem(name)
    if problem is not None:
        raise InputError(problem[0], hint=problem[1])
    return name


@functools.lru_cache(maxsize=256)
def _conversion_problem(name: str) -> tuple[str, str] | None:
    """(message, hint) when PROJ does not know ``name`` or cannot convert it to WGS-84, else None; cached per
    name: building the transformation takes ~40 ms, and one import names its system several times."""
    try:
        parsed = pyproj.CRS.from_user_input(name)
    except pyproj.exceptions.CRSError:
        return f"unknown coordinate system {name!r}", "use wgs84, gcj02, bd09 or EPSG:<code>"
    try:  # PROJ knows systems it cannot convert (e.g. EPSG:2218, a Greenland zone of a datum without a shift)
        pyproj.Transformer.from_crs(parsed, 4326, always_xy=True)
    except pyproj.exceptions.ProjError:
        return (f"coordinate system {name!r} ({parsed.name}) has no known conversion to WGS-84",
                "use wgs84, gcj02, bd09 or the EPSG code of a system with a datum shift to WGS-84 (e.g. EPSG:4490)")
    return None


def _transform_geoms(geoms, fn: Callable[[ArrayLike, ArrayLike], Pair]):  # noqa: ANN001
    def apply(coords: NDArray) -> NDArray:
        x, y = fn(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, apply)


def to_wgs84_geometry(geoms, source: str):  # noqa: ANN001
    """Geometries in ``source`` (``gcj02`` or ``bd09``) converted to WGS-84 (array or scalar)."""
    return _transform_geoms(geoms, _TO_WGS84[source])


def from_wgs84_geometry(geoms, target: str):  # noqa: ANN001
    """WGS-84 geometries converted to ``target`` (``gcj02`` or ``bd09``), for Chinese map apps."""
    return _transform_geoms(geoms, _FROM_WGS84[target])


def local_metric_crs(lon: float, lat: float) -> pyproj.CRS:
    """The UTM zone CRS (WGS-84 datum, metres) containing (lon, lat): the area's metric CRS."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    epsg = (32600 if lat >= 0 else 32700) + zone
    return pyproj.CRS.from_epsg(epsg)


def looks_like_lonlat(bounds: tuple[float, float, float, float]) -> bool:
    """True when (minx, miny, maxx, maxy) can be longitude/latitude degrees."""
    minx, miny, maxx, maxy = bounds
    return -180.0 <= minx <= maxx <= 180.0 and -90.0 <= miny <= maxy <= 90.0


def check_lonlat(lon: float, lat: float, what: str = "point") -> tuple[float, float]:
    """(lon, lat) as floats in degrees; InputError unless both are finite and in range."""
    try:
        x, y = float(lon), float(lat)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{what} ({lon!r}, {lat!r}) is not a pair of numbers") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InputError(f"{what} ({lon}, {lat}) is not a finite longitude/latitude")
    if not (-180.0 <= x <= 180.0 and -90.0 <= y <= 90.0):
        raise InputError(f"{what} ({lon}, {lat}) is not a longitude/latitude",
                         hint="longitude −180…180 then latitude −90…90, in degrees (WGS-84)")
    return x, y
