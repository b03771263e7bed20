"""Household registers (实有人口/房屋登记表): header recognition, CGCS2000 names and the join of address points to buildings."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np
import pyproj
import shapely
from gridpatrol.gis.crs import CHINESE_SYSTEMS, normalize_crs_name
from gridpatrol.gis.errors import InputError
from numpy.typing import NDArray

# Our columns of a register, in the order the docs list them.
REGISTER_COLUMNS = ("address", "lon", "lat", "households", "population", "building_code", "use", "levels")
# Header names of county spreadsheets (一标三实, 房屋普查, 网格台账) and English variants, mapped to ours.
# Keys are compared after NFKC (full-width → half-width), lower case and without spaces.
HEADER_SYNONYMS = {
    "地址": "address", "标准地址": "address", "详细地址": "address", "房屋地址": "address", "门牌地址": "address",
    "address": "address", "addr": "address",
    "经度": "lon", "x": "lon", "lon": "lon", "lng": "lon", "longitude": "lon", "x坐标": "lon", "横坐标": "lon",
    "纬度": "lat", "y": "lat", "lat": "lat", "latitude": "lat", "y坐标": "lat", "纵坐标": "lat",
    "户数": "households", "住户数": "households", "实有户数": "households", "households": "households",
    "人口": "population", "实有人口": "population", "人口数": "population", "常住人口": "population",
    "population": "population",
    "楼栋编码": "building_code", "建筑物编码": "building_code", "楼栋编号": "building_code",
    "房屋编码": "building_code", "building_code": "building_code",
    "房屋用途": "use", "用途": "use", "use": "use",
    "层数": "levels", "楼层数": "levels", "地上层数": "levels", "levels": "levels",
}
# A header row names at least this many known columns (a title row names none, a data row none).
MIN_HEADER_NAMES = 2
HEADER_SEARCH_ROWS = 30
DEFAULT_TOLERANCE_M = 30.0

# CGCS2000 3-degree Gauss–Krüger: zones 25–45 with the zone number in front of the easting
# (EPSG:4513–4533), and the same zones without it, named by central meridian 75°E–135°E
# (EPSG:4534–4554).
GK3_PREFIX_EPSG0, GK3_FIRST_ZONE, GK3_LAST_ZONE = 4513, 25, 45
GK3_PLAIN_EPSG0 = 4534
_GK_NAME = re.compile(r"^cgcs2000[-_ ]?gk3[-_ ]?(cm)?(\d{2,3})$")


def header_key(cell: object) -> str:
    """A header cell as compared with HEADER_SYNONYMS: NFKC, no spaces, lower case."""
    text = unicodedata.normalize("NFKC", str(cell if cell is not None else ""))
    return re.sub(r"\s+", "", text).lower()


def find_header_row(rows: Sequence[Sequence[object]], extra: Sequence[str] = ()) -> int:
    """Index of the header row among ``rows`` (a sheet's rows as read): the first row of the first
    ``HEADER_SEARCH_ROWS`` naming at least two known columns (``extra``: names from ``--map``).

    Offices put a merged title row ("锦江区XX社区实有人口登记表") and blank rows above the header,
    so row 1 cannot be assumed. InputError when no row qualifies.
    """
    known = set(HEADER_SYNONYMS) | {header_key(e) for e in extra}
    for i, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        names = {header_key(c) for c in row} & known
        if len(names) >= MIN_HEADER_NAMES:
            return i
    raise InputError(f"no header row in the first {HEADER_SEARCH_ROWS} rows names two known columns",
                     hint="expected e.g. 标准地址, 经度, 纬度, 户数, 实有人口; name yours with --map "
                          "address=…,lon=…,lat=…,households=…")


def column_names(header: Sequence[object], mapping: dict[str, str]) -> dict[int, str]:
    """Position → our column name for a header row; ``mapping`` (ours=theirs) first, then synonyms.

    InputError when ``mapping`` names a column we do not know or one the header does not have.
    """
    keys = [header_key(c) for c in header]
    out: dict[int, str] = {}
    for ours, theirs in mapping.items():
        if ours not in REGISTER_COLUMNS:
            raise InputError(f"--map names unknown column {ours!r}", hint="known: " + ", ".join(REGISTER_COLUMNS))
        try:
            out[keys.index(header_key(theirs))] = ours
        except ValueError:
            raise InputError(f"--map {ours}={theirs}: the header has no column {theirs!r}",
                             hint="header: " + ", ".join(str(c) for c in header if str(c).strip())) from None
    for pos, key in enumerate(keys):
        name = HEADER_SYNONYMS.get(key)
        if name and pos not in out and name not in out.values():
            out[pos] = name
    return out


def address_key(address: object) -> str:
    """An address as compared for duplicates: NFKC (全角 → 半角), no spaces, lower case."""
    return header_key(address)


def register_crs(name: str | None) -> str:
    """``wgs84``/``gcj02``/``bd09``, or an ``EPSG:n`` string for CGCS2000 names and EPSG codes.

    ``cgcs2000`` is EPSG:4490 (geographic; equal to WGS-84 within a metre or so, far below what a
    register's coordinates resolve); ``cgcs2000-gk3-35`` is 3-degree Gauss–Krüger zone 35 with the
    zone prefix in the easting (EPSG:4523); ``cgcs2000-gk3-cm105`` the same zone without it (EPSG:4544).
    """
    if name is None:
        return "wgs84"
    key = name.strip().lower()
    if key in ("cgcs2000", "cgcs", "epsg:4490", "4490"):
        return "EPSG:4490"
    m = _GK_NAME.match(key)
    if m:
        if m.group(1):  # by central meridian: no zone prefix
            cm = int(m.group(2))
            if cm % 3 or not 75 <= cm <= 135:
                raise InputError(f"{name!r}: a 3-degree central meridian is a multiple of 3 from 75 to 135")
            return f"EPSG:{GK3_PLAIN_EPSG0 + (cm - 75) // 3}"
        zone = int(m.group(2))
        if not GK3_FIRST_ZONE <= zone <= GK3_LAST_ZONE:
            raise InputError(f"{name!r}: CGCS2000 3-degree zones are {GK3_FIRST_ZONE}–{GK3_LAST_ZONE} "
                             "(Chengdu: 35, Beijing: 39, Shanghai: 40)")
        return f"EPSG:{GK3_PREFIX_EPSG0 + zone - GK3_FIRST_ZONE}"
    out = normalize_crs_name(name)
    if out not in CHINESE_SYSTEMS:
        crs = pyproj.CRS.from_user_input(out)
        auth = crs.to_authority()
        return f"{auth[0]}:{auth[1]}" if auth else out
    return out


def orient_xy(x: NDArray, y: NDArray, crs: str) -> tuple[NDArray, NDArray, bool]:
    """(easting, northing) of projected coordinates given as (x, y), and whether they were swapped.

    Chinese surveying names the northing X and the easting Y; a register with X/Y columns in a
    Gauss–Krüger CRS may have either order. The order whose median lands in the CRS's area of use
    wins; the given order when both or neither do. Geographic CRSs are returned as given.
    """
    if crs in CHINESE_SYSTEMS:
        return x, y, False
    c = pyproj.CRS.from_user_input(crs)
    ok = np.isfinite(x) & np.isfinite(y)
    if c.is_geographic or c.area_of_use is None or not ok.any():
        return x, y, False
    to_ll = pyproj.Transformer.from_crs(c, 4326, always_xy=True)
    w, s, e, n = c.area_of_use.bounds
    mx, my = float(np.median(x[ok])), float(np.median(y[ok]))

    def inside(a: float, b: float) -> bool:
        lon, lat = to_ll.transform(a, b)
        return bool(np.isfinite(lon) and w - 1 <= lon <= e + 1 and s - 1 <= lat <= n + 1)

    if not inside(mx, my) and inside(my, mx):
        return y, x, True
    return x, y, False


def join_points(points_m: NDArray, footprints_m: NDArray, tolerance_m: float = DEFAULT_TOLERANCE_M,
                ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """For each point (metric CRS): the index of the footprint containing it, else of the nearest
    one within ``tolerance_m``, else -1; and the distance (0 inside, NaN for -1), in metres.

    A point inside several overlapping footprints goes to the smallest (the inner building).
    """
    n = len(points_m)
    idx = np.full(n, -1, dtype=np.int64)
    dist = np.full(n, np.nan)
    if n == 0 or len(footprints_m) == 0:
        return idx, dist
    tree = shapely.STRtree(footprints_m)
    pi, fi = tree.query(points_m, predicate="within")
    if len(pi):
        order = np.lexsort((shapely.area(footprints_m[fi]), pi))
        pi, fi = pi[order], fi[order]
        first = np.r_[True, pi[1:] != pi[:-1]]
        idx[pi[first]] = fi[first]
        dist[pi[first]] = 0.0
    rest = np.flatnonzero(idx < 0)
    if len(rest) and tolerance_m > 0:
        qi, qf = tree.query_nearest(points_m[rest], max_distance=tolerance_m, return_distance=False,
                                    all_matches=False)
        d = shapely.distance(points_m[rest][qi], footprints_m[qf])
        idx[rest[qi]] = qf
        dist[rest[qi]] = d
    return idx, dist


def point_footprints(points_m: NDArray, half_side_m: float = 0.5) -> NDArray:
    """Tiny square footprints (metric CRS) standing for register points that are in no building:
    they count in their block as a building would, and no grid line can cut them."""
    x, y = shapely.get_x(points_m), shapely.get_y(points_m)
    return shapely.box(x - half_side_m, y - half_side_m, x + half_side_m, y + half_side_m)
