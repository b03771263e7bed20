"""Cameras: GB/T 28181 device codes, exact field-of-view tests, radius/k-nearest/corridor queries, bulk linking, coverage."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from gridpatrol.gis.errors import InputError
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

# ---------------------------------------------------------------------------------------------
# Defaults for cameras whose spreadsheet leaves the optics empty (documented in the README).
# A fixed bullet camera with a 4–6 mm lens sees about 60° and identifies people to about 50 m;
# dome/PTZ cameras turn, so they cover the full circle, and their zoom reaches about 100 m.
# A fixed camera without a direction cannot be given a sector: it is treated as seeing the full
# circle (and reported with ``direction_known = False``) rather than silently dropped.
DEFAULT_FOV_DEG = 60.0
DEFAULT_RANGE_M = {"fixed": 50.0, "dome": 100.0, "ptz": 100.0}
FULL_CIRCLE_TYPES = ("dome", "ptz")
CAMERA_TYPES = ("fixed", "dome", "ptz")
CAMERA_STATUSES = ("online", "offline", "fault")
PROJECTS = ("skynet", "sharp_eyes", "other")

# WGS-84 ellipsoid, for the exact local east/north frame (ECEF → ENU).
WGS84_A = 6378137.0  # semi-major axis, m
_A = WGS84_A
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)
# The smallest meridional radius of curvature (at the equator) bounds metres → degrees of latitude.
M_MIN = _A * (1 - _E2)

# ---------------------------------------------------------------------------------------------
# GB/T 28181-2016 Appendix D: 20-digit codes = 8-digit administrative code (province, city,
# county, grassroots unit) + 2-digit industry + 3-digit type + 1-digit network + 6-digit serial.
_PROVINCES = {
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82",
}
CAMERA_TYPE_CODES = {"131": "camera", "132": "network camera (IPC)"}
_TYPE_NAMES = {
    "111": "DVR", "112": "video server", "113": "encoder", "114": "decoder", "115": "video matrix",
    "116": "audio matrix", "117": "alarm controller", "118": "NVR", "133": "display",
    "134": "alarm input", "135": "alarm output", "136": "voice input", "137": "voice output",
    "138": "mobile transmission device", "139": "other peripheral", "200": "central SIP server",
    "201": "web server", "202": "media distribution server", "203": "proxy server",
    "204": "security server", "205": "alarm server", "206": "database server", "207": "GIS server",
    "208": "management server", "209": "access gateway", "210": "media storage server",
    "211": "signalling security gateway", "215": "business group", "216": "virtual organisation",
}
NETWORK_CODES = {
    "0": "video surveillance private network", "1": "video surveillance private network",
    "2": "video surveillance private network", "3": "video surveillance private network",
    "4": "video surveillance private network", "5": "public security network (公安信息网)",
    "6": "government network (政务网)", "7": "internet", "8": "social resource access network",
}
INDUSTRY_CODES = {
    "00": "public order, roads (社会治安路面接入)", "01": "public order, communities (社会治安社区接入)",
    "02": "public order, internal", "03": "public order, other", "04": "traffic, roads",
    "05": "traffic, checkpoints (卡口)", "06": "traffic, internal", "07": "traffic, other",
    "08": "city management", "09": "health and environment", "10": "customs and inspection",
    "11": "education",
}
MAX_SEARCH_M = 50_000.0
_FOREIGN_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*:[^\s]+$")


@dataclass(frozen=True)
class DeviceCode:
    """The parts of a GB/T 28181 device code."""

    admin: str
    industry: str
    type: str
    network: str
    serial: str

    @property
    def county(self) -> str:
        """The 6-digit county-level administrative code (e.g. 510104 锦江区)."""
        return self.admin[:6]


def device_code_problems(code: object, *, require_camera: bool = True) -> list[str]:
    """What is wrong with a GB/T 28181 device code (empty list when valid).

    Each problem names the part that is wrong (administrative code, industry, type, network,
    serial). With ``require_camera`` the type code must be 131 (camera) or 132 (IPC).
    """
    if code is None or (isinstance(code, float) and np.isnan(code)):
        return ["device code is missing"]
    s = str(code).strip()
    if not s:
        return ["device code is missing"]
    if not s.isdigit() or not s.isascii():
        bad = sorted({ch for ch in s if not (ch.isascii() and ch.isdigit())})
        return [f"device code {s!r} contains non-digits {''.join(bad)!r}; GB/T 28181 codes are 20 digits"]
    if len(s) != 20:
        return [f"device code {s!r} has {len(s)} digits; GB/T 28181 codes have 20 (8 admin + 2 industry + "
                "3 type + 1 network + 6 serial)"]
    problems = []
    admin, industry, typ, net = s[:8], s[8:10], s[10:13], s[13]
    if admin[:2] not in _PROVINCES:
        problems.append(f"administrative code {admin}: province {admin[:2]} does not exist")
    elif admin[2:4] == "00" and admin[4:6] != "00":
        problems.append(f"administrative code {admin}: county {admin[4:6]} given without a city")
    if industry not in INDUSTRY_CODES and not (12 <= int(industry) <= 99):
        problems.append(f"industry code {industry} is not assigned")
    if require_camera and typ not in CAMERA_TYPE_CODES:
        what = _TYPE_NAMES.get(typ, "not a device type")
        problems.append(f"type code {typ} ({what}) is not a camera; cameras use 131 or 132")
    elif not require_camera and not (111 <= int(typ) <= 499):
        problems.append(f"type code {typ} is not a device, platform or user type (111–499)")
    if net not in NETWORK_CODES:
        problems.append(f"network code {net} is reserved (0–8 are assigned)")
    return problems


def parse_device_code(code: str) -> DeviceCode:
    """Split a valid GB/T 28181 code into its parts; InputError naming the wrong part otherwise."""
    problems = device_code_problems(code, require_camera=False)
    if problems:
        raise InputError("; ".join(problems), hint="GB/T 28181 device codes: 20 digits")
    s = str(code).strip()
    return DeviceCode(s[:8], s[8:10], s[10:13], s[13], s[14:])


def make_device_code(admin: str, industry: str, type_code: str, network: str, serial: int) -> str:
    """A GB/T 28181 code from its parts (``admin`` 6 or 8 digits; a 6-digit county gets ``00``)."""
    admin = admin + "00" if len(admin) == 6 else admin
    code = f"{admin}{industry}{type_code}{network}{int(serial):06d}"
    problems = device_code_problems(code, require_camera=False)
    if problems:
        raise InputError("; ".join(problems))
    return code


def validate_camera_codes(codes: pd.Series) -> pd.Series:
    """Per-row problems of a column of camera codes ("" when fine), index kept.

    20-digit codes must be valid GB/T 28181 camera codes. Codes of foreign registries are
    accepted when namespaced as ``scheme:id`` (``osm:123``, ``baltimore:277``); bare numbers of
    another length are refused because they look like mistyped GB/T codes.
    """
    out = []
    for c in codes.to_numpy(dtype=object):
        if isinstance(c, str) and _FOREIGN_CODE.match(c.strip()):
            out.append("")
        else:
            out.append("; ".join(device_code_problems(c)))
    return pd.Series(out, index=codes.index, dtype=object)


# ---------------------------------------------------------------------------------------------
# Exact local geometry.
#
# Distances and bearings are computed in the east/north/up frame of each camera, from ECEF
# coordinates on the WGS-84 ellipsoid. The bearing atan2(east, north) is the normal-section
# azimuth; up to 2 km it differs from the geodesic azimuth by less than 1e-5° (measured: 2e-6°,
# 0.07 mm sideways at 2 km) and the horizontal distance from the geodesic length by less than 1 mm
# (measured: 0.03 mm). tests/gis/test_cameras.py checks both bounds against pyproj.Geod.


def ecef(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.float64]:
    """WGS-84 lon/lat (degrees, height 0) → ECEF x, y, z in metres, shape (n, 3)."""
    lam = np.radians(np.asarray(lon, dtype=float))
    phi = np.radians(np.asarray(lat, dtype=float))
    sphi, cphi = np.sin(phi), np.cos(phi)
    n = _A / np.sqrt(1 - _E2 * sphi * sphi)
    return np.column_stack([n * cphi * np.cos(lam), n * cphi * np.sin(lam), n * (1 - _E2) * sphi])


def _enu(cam_xyz: NDArray, cam_lon: NDArray, cam_lat: NDArray, pt_xyz: NDArray) -> tuple[NDArray, NDArray]:
    """East and north offsets (m) of points from cameras, row by row (or broadcast)."""
    lam = np.radians(cam_lon)
    phi = np.radians(cam_lat)
    sl, cl, sp, cp = np.sin(lam), np.cos(lam), np.sin(phi), np.cos(phi)
    d = pt_xyz - cam_xyz
    east = -sl * d[..., 0] + cl * d[..., 1]
    north = -sp * cl * d[..., 0] - sp * sl * d[..., 1] + cp * d[..., 2]
    return east, north


def distance_bearing(
    cam_lon: ArrayLike, cam_lat: ArrayLike, pt_lon: ArrayLike, pt_lat: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Horizontal distance (m) and bearing (degrees clockwise from true north, 0–360) from
    cameras to points (WGS-84 degrees, broadcast), in each camera's local east/north frame."""
    arrays = [np.asarray(a, dtype=float) for a in (cam_lon, cam_lat, pt_lon, pt_lat)]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))  # np.broadcast_arrays costs 30 µs more
    cam_lon, cam_lat, pt_lon, pt_lat = (a if a.shape == shape else np.broadcast_to(a, shape) for a in arrays)
    # ecef() and _enu() fused, operation for operation (the same floats), without stacking the
    # coordinates or taking the camera's sines twice: a map click calls this for a handful of rows.
    lam, phi = np.radians(cam_lon.ravel()), np.radians(cam_lat.ravel())
    sl, cl, sp, cp = np.sin(lam), np.cos(lam), np.sin(phi), np.cos(phi)
    n = _A / np.sqrt(1 - _E2 * sp * sp)
    plam, pphi = np.radians(pt_lon.ravel()), np.radians(pt_lat.ravel())
    psp, pcp = np.sin(pphi), np.cos(pphi)
    pn = _A / np.sqrt(1 - _E2 * psp * psp)
    dx = pn * pcp * np.cos(plam) - n * cp * cl
    dy = pn * pcp * np.sin(plam) - n * cp * sl
    dz = pn * (1 - _E2) * psp - n * (1 - _E2) * sp
    east = -sl * dx + cl * dy
    north = -sp * cl * dx - sp * sl * dy + cp * dz
    dist = np.hypot(east, north).reshape(shape)
    bearing = (np.degrees(np.arctan2(east, north)) % 360.0).reshape(shape)
    return dist, bearing


def sector_contains(
    distance_m: ArrayLike, bearing_deg: ArrayLike, azimuth_deg: ArrayLike, fov_deg: ArrayLike,
    range_m: ArrayLike, full_circle: ArrayLike,
) -> NDArray[np.bool_]:
    """The exact in-view test: within range, and (full circle or) bearing within ±fov/2 of the
    azimuth. Boundaries count as inside; a point at the camera itself is in view."""
    d = np.asarray(distance_m, dtype=float)
    off = np.abs((np.asarray(bearing_deg, dtype=float) - np.asarray(azimuth_deg, dtype=float) + 180.0) % 360.0 - 180.0)
    fov = np.asarray(fov_deg, dtype=float)
    in_sector = np.asarray(full_circle, dtype=bool) | (fov >= 360.0) | (off <= fov / 2.0) | (d == 0.0)
    return (d <= np.asarray(range_m, dtype=float)) & in_sector


def optics_arrays(camera_type: ArrayLike, azimuth_deg: ArrayLike, fov_deg: ArrayLike, range_m: ArrayLike,
                  status: ArrayLike) -> dict[str, NDArray]:
    """The defaults above applied to raw columns (numpy, no pandas: the map-click path uses it).

    Returns arrays ``camera_type, azimuth_deg, fov_deg, range_m, full_circle, direction_known,
    status, online``.
    """
    ctype = np.array([_TYPE_ALIASES.get(str(t).strip().lower(), "fixed") if t is not None else "fixed"
                      for t in np.asarray(camera_type, dtype=object)], dtype=object)
    az = _floats(azimuth_deg)
    fov = _floats(fov_deg)
    rng = _floats(range_m)
    dome = np.fromiter((t in FULL_CIRCLE_TYPES for t in ctype), dtype=bool, count=len(ctype))  # np.isin: 20 µs more
    with np.errstate(invalid="ignore"):
        full = dome | np.isnan(az) | (fov >= 360)
    default_range = np.where(dome, DEFAULT_RANGE_M["dome"], DEFAULT_RANGE_M["fixed"])
    st = np.array([str(v).strip().lower() if v is not None and v == v else "online"
                   for v in np.asarray(status, dtype=object)], dtype=object)
    return {
        "camera_type": ctype,
        "azimuth_deg": _no_nan(az) % 360.0,
        "fov_deg": np.where(full, 360.0, np.where(np.isnan(fov), DEFAULT_FOV_DEG, fov)),
        "range_m": np.where(np.isnan(rng), default_range, rng),
        "full_circle": full,
        "direction_known": ~np.isnan(az) & ~dome,
        "status": st,
        "online": st == "online",
    }


def camera_defaults() -> dict[str, Any]:
    """The optics defaults above as plain JSON values, for pages that draw sectors the way
    :func:`optics_arrays` fills them in (type aliases, full-circle types, fov and ranges)."""
    return {"fov_deg": DEFAULT_FOV_DEG, "range_m": dict(DEFAULT_RANGE_M), "full_circle_types": list(FULL_CIRCLE_TYPES),
            "type_aliases": dict(_TYPE_ALIASES)}


@dataclass(frozen=True)
class InView:
    """Candidates that see a point, ranked online first, then nearest, then by code: ``index``
    (positions into the candidates) and, aligned with it, ``distance_m``, ``bearing_deg``
    (camera → point, degrees from true north), ``online`` and ``status`` (normalised)."""

    index: NDArray[np.int64]
    distance_m: NDArray[np.float64]
    bearing_deg: NDArray[np.float64]
    online: NDArray[np.bool_]
    status: NDArray[np.object_]


def cameras_in_view(lon: float, lat: float, candidates: Mapping[str, Sequence[Any]]) -> InView:
    """The exact in-view test of stored camera rows for one point (WGS-84 degrees).

    ``candidates``: columns ``lon, lat, camera_type, azimuth_deg, fov_deg, range_m, status``
    and ``code`` (ties), as stored (None or NaN where the spreadsheet left the optics empty:
    the defaults above apply). The database only has to find them (any superset of the cameras
    within their range); this decides, in each camera's local east/north frame."""
    n = len(candidates["lon"])
    if n == 0:
        e = np.empty(0)
        return InView(np.empty(0, np.int64), e, e, np.empty(0, bool), np.empty(0, object))
    opt = optics_arrays(candidates["camera_type"], candidates["azimuth_deg"], candidates["fov_deg"],
                        candidates["range_m"], candidates["status"])
    dist, bearing = distance_bearing(candidates["lon"], candidates["lat"], lon, lat)
    seen = sector_contains(dist, bearing, opt["azimuth_deg"], opt["fov_deg"], opt["range_m"], opt["full_circle"])
    idx = np.flatnonzero(seen)
    code = np.asarray(candidates["code"], dtype=object)[idx]
    # Codes are text: sort them as Python does (the stable sort by the keys that follow keeps it).
    idx = idx[sorted(range(len(idx)), key=code.__getitem__)] if len(idx) > 1 else idx
    idx = idx[np.lexsort((dist[idx], ~opt["online"][idx]))]
    return InView(idx.astype(np.int64), dist[idx], bearing[idx], opt["online"][idx], opt["status"][idx])


def points_within(lon: float, lat: float, pt_lon: ArrayLike, pt_lat: ArrayLike,
                  radius_m: float) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Positions and distances (m) of the points within ``radius_m`` of (lon, lat) (WGS-84), in
    input order; the distance of the in-view test, in each point's local east/north frame."""
    if len(pt_lon) == 0:
        return np.empty(0, np.int64), np.empty(0)
    dist, _ = distance_bearing(pt_lon, pt_lat, lon, lat)
    idx = np.flatnonzero(dist <= radius_m)
    return idx.astype(np.int64), dist[idx]


def _no_nan(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """np.nan_to_num(values, nan=0.0) in two cheap calls when every other value is finite."""
    out = np.where(np.isnan(values), 0.0, values)
    return out if np.isfinite(out).all() else np.nan_to_num(out)


def _floats(values: ArrayLike) -> NDArray[np.float64]:
    try:
        return np.asarray(values, dtype=float)  # None → NaN
    except (TypeError, ValueError):
        return np.asarray(pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce"), dtype=float)


_TYPE_ALIASES = {"fixed": "fixed", "bullet": "fixed", "box": "fixed", "": "fixed", "nan": "fixed", "none": "fixed",
                 "dome": "dome", "speed_dome": "dome", "panorama": "dome", "ptz": "ptz"}


def normalize_cameras(cameras: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Cameras with the optics filled in: camera_type, azimuth_deg, fov_deg, range_m, status,
    online, full_circle and direction_known (defaults above); geometry in EPSG:4326."""
    if cameras.crs is not None and not cameras.crs.equals("EPSG:4326"):
        cameras = cameras.to_crs(4326)
    out = cameras.copy()
    n = len(out)

    def col(name: str, default: object) -> NDArray:
        return out[name].to_numpy(dtype=object) if name in out.columns else np.full(n, default, dtype=object)

    opt = optics_arrays(col("camera_type", "fixed"), col("azimuth_deg", None), col("fov_deg", None),
                        col("range_m", None), col("status", "online"))
    for k, v in opt.items():
        out[k] = v
    return out


def _as_lonlat(x: ArrayLike, y: ArrayLike | None = None) -> tuple[NDArray, NDArray]:
    if y is None:
        geoms = np.asarray(x)
        return shapely.get_x(geoms).astype(float), shapely.get_y(geoms).astype(float)
    return np.atleast_1d(np.asarray(x, dtype=float)), np.atleast_1d(np.asarray(y, dtype=float))


def _rank(df: pd.DataFrame) -> pd.DataFrame:
    # Dispatchers want the cameras that see the spot first, working ones before broken ones.
    return df.sort_values(["in_view", "online", "distance_m"], ascending=[False, False, True], kind="stable")


class CameraIndex:
    """Cameras (WGS-84) in a KD-tree, for exact radius, k-nearest, in-view, corridor and
    bulk queries. Results are DataFrames with the camera's row position ``cam`` (into
    ``self.cameras``), ``code``, ``distance_m``, ``bearing_deg`` (camera → point), ``in_view``
    and ``online``."""

    def __init__(self, cameras: gpd.GeoDataFrame):
        cams = normalize_cameras(cameras)
        if len(cams) and (cams.geometry.is_empty.any() or cams.geometry.isna().any()):
            raise InputError("cameras without a position cannot be indexed", hint="drop or fix them first")
        self.cameras = cams.reset_index(drop=True)
        self.lon, self.lat = _as_lonlat(self.cameras.geometry.values) if len(cams) else (np.empty(0), np.empty(0))
        self.xyz = ecef(self.lon, self.lat)
        self.azimuth = self.cameras["azimuth_deg"].to_numpy(float)
        self.fov = self.cameras["fov_deg"].to_numpy(float)
        self.range = self.cameras["range_m"].to_numpy(float)
        self.full = self.cameras["full_circle"].to_numpy(bool)
        self.online = self.cameras["online"].to_numpy(bool)
        self.code = self.cameras["code"].to_numpy(object) if "code" in self.cameras else np.arange(len(cams)).astype(object)
        self.max_range_m = float(self.range.max()) if len(cams) else 0.0
        # The KD-tree lives in a plane x = a·cos(φmax)·Δλ, y = Mmin·φ whose metric is nowhere
        # longer than the ellipsoid's (φmax bounds |lat| of every camera plus 0.5° ≈ 55 km, so
        # for searches up to 50 km). Plane distances are then never longer than true ones: a
        # ball of the search radius holds every true neighbour, and the exact ENU test decides.
        # A 2-D tree answers about 3× faster than one on 3-D ECEF points.
        self._lat_max = min(89.0, float(np.abs(self.lat).max()) + 0.5) if len(cams) else 0.0
        self._kx = np.radians(1.0) * _A * np.cos(np.radians(self._lat_max))
        self._ky = np.radians(1.0) * M_MIN
        self._lon0 = float(np.median(self.lon)) if len(cams) else 0.0
        self.tree = cKDTree(self._plane(self.lon, self.lat)) if len(cams) else None

    def __len__(self) -> int:
        return len(self.cameras)

    def _plane(self, lon: NDArray, lat: NDArray) -> NDArray:
        dlon = (np.asarray(lon, float) - self._lon0 + 180.0) % 360.0 - 180.0
        return np.column_stack([dlon * self._kx, np.asarray(lat, float) * self._ky])

    def _ball(self, lon: NDArray, lat: NDArray, radius_m: float) -> list:
        if radius_m > MAX_SEARCH_M:
            raise InputError(f"search radius {radius_m:g} m is above {MAX_SEARCH_M:g} m", hint="use a smaller radius")
        # + 1 mm: the ENU distance may exceed the geodesic by less than that
        return self.tree.query_ball_point(self._plane(lon, lat), radius_m + 1e-3)

    def _pairs(self, pt_idx: NDArray, cam_idx: NDArray, p_xyz: NDArray, p_lon: NDArray, p_lat: NDArray) -> pd.DataFrame:
        east, north = _enu(self.xyz[cam_idx], self.lon[cam_idx], self.lat[cam_idx], p_xyz[pt_idx])
        dist = np.hypot(east, north)
        bearing = np.degrees(np.arctan2(east, north)) % 360.0
        in_view = sector_contains(dist, bearing, self.azimuth[cam_idx], self.fov[cam_idx],
                                  self.range[cam_idx], self.full[cam_idx])
        return pd.DataFrame({
            "point": pt_idx, "cam": cam_idx, "code": self.code[cam_idx], "distance_m": dist,
            "bearing_deg": bearing, "in_view": in_view, "online": self.online[cam_idx],
        })

    def link(self, x: ArrayLike, y: ArrayLike | None = None, *, radius_m: float | None = None,
             in_view_only: bool = False) -> pd.DataFrame:
        """All (point, camera) pairs with distance ≤ ``radius_m`` (default: each camera's own
        range, i.e. the cameras that can see the point), for many points at once.

        ``x, y``: lon/lat arrays (WGS-84) or ``x`` an array of shapely Points. One row per pair,
        sorted by point then rank; ``point`` is the position of the point in the input.
        """
        p_lon, p_lat = _as_lonlat(x, y)
        cols = ["point", "cam", "code", "distance_m", "bearing_deg", "in_view", "online"]
        if self.tree is None or len(p_lon) == 0:
            return pd.DataFrame({c: pd.Series(dtype=float if c.endswith(("_m", "_deg")) else object) for c in cols})
        p_xyz = ecef(p_lon, p_lat)
        r = self.max_range_m if radius_m is None else float(radius_m)
        if r > MAX_SEARCH_M:
            raise InputError(f"search radius {r:g} m is above {MAX_SEARCH_M:g} m", hint="use a smaller radius")
        plane = self._plane(p_lon, p_lat)
        # Querying neighbouring points one after another keeps the tree in cache (~30 % faster).
        order = np.lexsort((plane[:, 0] // 2000.0, plane[:, 1] // 2000.0))
        hits = self.tree.query_ball_point(plane[order], r + 1e-3)
        counts = np.fromiter(map(len, hits), dtype=np.int64, count=len(hits))
        cam = np.concatenate(hits).astype(np.int64) if counts.sum() else np.empty(0, np.int64)
        pt = np.repeat(order.astype(np.int64), counts)
        east, north = _enu(self.xyz[cam], self.lon[cam], self.lat[cam], p_xyz[pt])
        dist = np.hypot(east, north)
        bearing = np.degrees(np.arctan2(east, north)) % 360.0
        in_view = sector_contains(dist, bearing, self.azimuth[cam], self.fov[cam], self.range[cam], self.full[cam])
        keep = dist <= (r if radius_m is not None else self.range[cam])
        if in_view_only:
            keep &= in_view
        pt, cam, dist, bearing, in_view = pt[keep], cam[keep], dist[keep], bearing[keep], in_view[keep]
        online = self.online[cam]
        order = np.lexsort((dist, ~online, ~in_view, pt))
        pt, cam = pt[order], cam[order]
        return pd.DataFrame({
            "point": pt, "cam": cam, "code": self.code[cam], "distance_m": dist[order],
            "bearing_deg": bearing[order], "in_view": in_view[order], "online": online[order],
        })

    def within(self, lon: float, lat: float, radius_m: float) -> pd.DataFrame:
        """Cameras within ``radius_m`` of (lon, lat), ranked (in view, online, nearest first)."""
        if self.tree is None:
            return self.link([], [], radius_m=radius_m)
        p_xyz = ecef([lon], [lat])
        idx = np.asarray(self._ball(np.array([lon]), np.array([lat]), radius_m)[0], dtype=np.int64)
        pairs = self._pairs(np.zeros(len(idx), dtype=np.int64), idx, p_xyz, np.array([lon]), np.array([lat]))
        return _rank(pairs[pairs["distance_m"].to_numpy() <= radius_m]).reset_index(drop=True)

    def in_view(self, lon: float, lat: float) -> pd.DataFrame:
        """Cameras whose field of view contains (lon, lat) (offline ones included, flagged)."""
        if self.tree is None:
            return self.link([], [])
        pairs = self.within(lon, lat, self.max_range_m)
        return pairs[pairs["in_view"].to_numpy()].reset_index(drop=True)

    def nearest(self, lon: float, lat: float, k: int = 5) -> pd.DataFrame:
        """The ``k`` cameras nearest to (lon, lat), nearest first."""
        if self.tree is None or k <= 0:
            return self.link([], [])
        p_xyz = ecef([lon], [lat])
        # Plane order is not true order: take a few plane neighbours, their k-th exact distance
        # bounds the answer, and every camera within that bound is re-ranked exactly.
        kk = min(len(self), 2 * k + 8)
        _, idx = self.tree.query(self._plane(np.array([lon]), np.array([lat]))[0], k=kk)
        idx = np.atleast_1d(idx).astype(np.int64)
        first = self._pairs(np.zeros(len(idx), dtype=np.int64), idx, p_xyz, np.array([lon]), np.array([lat]))
        bound = float(np.sort(first["distance_m"].to_numpy())[min(k, len(first)) - 1])
        idx = np.asarray(self._ball(np.array([lon]), np.array([lat]), bound)[0], dtype=np.int64)
        pairs = self._pairs(np.zeros(len(idx), dtype=np.int64), idx, p_xyz, np.array([lon]), np.array([lat]))
        return pairs.sort_values("distance_m", kind="stable").head(k).reset_index(drop=True)

    def nearest_many(self, x: ArrayLike, y: ArrayLike | None = None, k: int = 1) -> pd.DataFrame:
        """The ``k`` nearest cameras of each of many points (lon/lat arrays or Points): rows
        ``point, cam, code, distance_m, bearing_deg, in_view, online``, nearest first per point."""
        p_lon, p_lat = _as_lonlat(x, y)
        if self.tree is None or len(p_lon) == 0 or k <= 0:
            return self.link([], [])
        p_xyz = ecef(p_lon, p_lat)
        plane = self._plane(p_lon, p_lat)
        kk = min(len(self), 2 * k + 8)
        _, idx = self.tree.query(plane, k=kk)
        idx = idx.reshape(len(p_lon), kk).astype(np.int64)
        pt = np.repeat(np.arange(len(p_lon), dtype=np.int64), kk)
        first = self._pairs(pt, idx.ravel(), p_xyz, p_lon, p_lat)
        # the k-th exact distance among the plane neighbours bounds each point's answer
        d = np.sort(first["distance_m"].to_numpy().reshape(len(p_lon), kk), axis=1)[:, min(k, kk) - 1]
        hits = self.tree.query_ball_point(plane, d + 1e-3)
        counts = np.fromiter(map(len, hits), dtype=np.int64, count=len(hits))
        cam = np.concatenate(hits).astype(np.int64)
        pairs = self._pairs(np.repeat(np.arange(len(p_lon), dtype=np.int64), counts), cam, p_xyz, p_lon, p_lat)
        pairs = pairs.sort_values(["point", "distance_m"], kind="stable")
        return pairs.groupby("point", sort=False).head(k).reset_index(drop=True)

    def along(self, path: shapely.LineString, corridor_m: float) -> pd.DataFrame:
        """Cameras within ``corridor_m`` of ``path`` (WGS-84 LineString), ordered along it.

        Columns add ``along_m`` (position of the nearest path point from the start) and
        ``offset_m`` (distance to the path); ``distance_m``/``in_view`` refer to that nearest
        path point. Distances are measured in an azimuthal equidistant projection centred on
        the path (scale error below 1e-6 within 20 km).
        """
        if self.tree is None or path is None or path.is_empty:
            return self.link([], [])
        c = path.centroid
        aeqd = pyproj.CRS.from_proj4(f"+proj=aeqd +lat_0={c.y} +lon_0={c.x} +datum=WGS84 +units=m")
        fwd = pyproj.Transformer.from_crs(4326, aeqd, always_xy=True)
        inv = pyproj.Transformer.from_crs(aeqd, 4326, always_xy=True)
        mpath = shapely.transform(path, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1])))
        step = max(corridor_m, 5.0)
        samples = shapely.segmentize(mpath, step)
        sxy = shapely.get_coordinates(samples)
        s_lon, s_lat = inv.transform(sxy[:, 0], sxy[:, 1])
        # Any point of a segment is within step/2 of a sample: this ball radius is a superset.
        cand = self._ball(np.asarray(s_lon), np.asarray(s_lat), corridor_m + step / 2 + 1.0)
        idx = np.unique(np.concatenate([np.asarray(c_, dtype=np.int64) for c_ in cand])) if len(cand) else np.empty(0, np.int64)
        cx, cy = fwd.transform(self.lon[idx], self.lat[idx])
        pts = shapely.points(cx, cy)
        offset = shapely.distance(pts, mpath)
        keep = offset <= corridor_m
        idx, pts, offset = idx[keep], pts[keep], offset[keep]
        along = shapely.line_locate_point(mpath, pts)
        near = shapely.line_interpolate_point(mpath, along)
        n_lon, n_lat = inv.transform(shapely.get_x(near), shapely.get_y(near))
        pairs = self._pairs(np.arange(len(idx)), idx, ecef(n_lon, n_lat), np.asarray(n_lon), np.asarray(n_lat))
        pairs["along_m"] = along
        pairs["offset_m"] = offset
        pairs["point"] = 0
        return pairs.sort_values(["along_m", "offset_m"], kind="stable").reset_index(drop=True)

    def coverage(self, roads: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, *, step_m: float = 5.0,
                 grid_key: str = "code", online_only: bool = False) -> pd.DataFrame:
        """Share of each grid's street length seen by at least one camera.

        Streets (WGS-84 lines) are cut into pieces of at most ``step_m``; a piece counts as seen
        when its midpoint is in view of a camera (so the answer is exact up to ``step_m`` at each
        edge of a field of view) and belongs to the grid containing its midpoint. Returns
        ``grid_key, street_m, seen_m, share`` (share 0–1; 0 for a grid without streets).
        """
        if len(grids) == 0:
            return pd.DataFrame(columns=[grid_key, "street_m", "seen_m", "share"])
        lines = roads.to_crs(4326).geometry
        c = shapely.union_all(grids.to_crs(4326).geometry.values).centroid
        aeqd = pyproj.CRS.from_proj4(f"+proj=aeqd +lat_0={c.y} +lon_0={c.x} +datum=WGS84 +units=m")
        mlines = gpd.GeoSeries(lines.values, crs=4326).to_crs(aeqd).explode(index_parts=False)
        mlines = mlines[mlines.geom_type == "LineString"]
        dense = shapely.segmentize(mlines.values, step_m)
        coords, owner = shapely.get_coordinates(dense, return_index=True)
        same = owner[1:] == owner[:-1]
        a, b = coords[:-1][same], coords[1:][same]
        seg_m = np.hypot(*(b - a).T)
        mid = (a + b) / 2
        mid_ll = gpd.GeoSeries(shapely.points(mid), crs=aeqd).to_crs(4326)
        gg = grids.to_crs(4326).reset_index(drop=True)
        which = shapely.STRtree(gg.geometry.values).query(mid_ll.values, predicate="intersects")
        # A midpoint on a shared edge belongs to the first grid only, so lengths are not doubled.
        first = pd.DataFrame({"p": which[0], "g": which[1]}).drop_duplicates("p")
        seen = np.zeros(len(mid), dtype=bool)
        if len(self) and len(first):
            lon, lat = shapely.get_x(mid_ll.values), shapely.get_y(mid_ll.values)
            sel = first["p"].to_numpy()
            pairs = self.link(lon[sel], lat[sel], in_view_only=True)
            if online_only:
                pairs = pairs[pairs["online"].to_numpy()]
            seen[sel[np.unique(pairs["point"].to_numpy().astype(np.int64))]] = True
        p, g = first["p"].to_numpy(), first["g"].to_numpy()
        street = np.bincount(g, weights=seg_m[p], minlength=len(gg))
        seen_m = np.bincount(g, weights=seg_m[p] * seen[p], minlength=len(gg))
        share = np.divide(seen_m, street, out=np.zeros_like(street), where=street > 0)
        return pd.DataFrame({grid_key: gg[grid_key].to_numpy(), "street_m": street, "seen_m": seen_m, "share": share})


def degree_box(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    """A lon/lat box that surely contains every point within ``radius_m`` of (lon, lat)."""
    dlat = np.degrees(radius_m / M_MIN) * 1.001 + 1e-9
    cos_edge = np.cos(np.radians(min(abs(lat) + dlat, 89.9)))
    # Parallels' radius N·cosφ ≥ a·cosφ; the 1.001 covers the chord/arc and rounding slack.
    dlon = np.degrees(radius_m / (_A * cos_edge)) * 1.001 + 1e-9
    return lon - dlon, lat - dlat, lon + dlon, lat + dlat
