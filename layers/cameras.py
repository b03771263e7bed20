"""Camera registry in the store: import (CSV/GeoJSON/GPKG, GCJ-02/BD-09), index-using lookups, bulk linking, coverage."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely
from gridpatrol.gis.cameras import (
    CAMERA_STATUSES,
    CAMERA_TYPES,
    DEFAULT_RANGE_M,
    CameraIndex,
    degree_box,
    distance_bearing,
    optics_arrays,
    sector_contains,
    validate_camera_codes,
)
from gridpatrol.gis.crs import (
    bd09_to_wgs84,
    check_lonlat,
    gcj02_to_wgs84,
    in_mainland_china,
    local_metric_crs,
    normalize_crs_name,
)
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.plausible import implausible, refuse_geocentric
from gridpatrol.layers.csvtext import encoding_note, read_csv
from gridpatrol.layers.import_records import (
    bad_rows_error,
    delete_by_keys,
    load_json_table,
    record_import,
    text_cells,
)
from gridpatrol.layers.importing import ImportResult, file_sha256
from gridpatrol.layers.inside_areas import outside_areas, outside_message
from gridpatrol.layers.models import SRID, Camera, utcnow
from gridpatrol.layers.names import name_problem
from gridpatrol.layers.store import Store
from sqlalchemy import Connection, func, select

Progress = Callable[[str], None]

# Columns of a camera file (README: "Camera files"). Required: code, name, project, lon, lat.
CAMERA_COLUMNS = ("code", "name", "project", "lon", "lat", "direction_deg", "fov_deg", "range_m",
                  "height_m", "type", "status", "secrecy_level", "owner_unit")
REQUIRED_CAMERA_COLUMNS = ("code", "name", "project", "lon", "lat")
# Header names seen in Chinese spreadsheets and common English variants, mapped to ours.
SYNONYMS = {
    "设备编码": "code", "设备编号": "code", "国标编码": "code", "device_code": "code", "id": "code",
    "名称": "name", "设备名称": "name", "点位名称": "name", "项目": "project", "所属项目": "project",
    "经度": "lon", "longitude": "lon", "lng": "lon", "x": "lon", "纬度": "lat", "latitude": "lat", "y": "lat",
    "方向": "direction_deg", "朝向": "direction_deg", "azimuth_deg": "direction_deg", "direction": "direction_deg",
    "视场角": "fov_deg", "fov": "fov_deg", "可视距离": "range_m", "range": "range_m", "安装高度": "height_m",
    "height": "height_m", "类型": "type", "摄像机类型": "type", "camera_type": "type", "状态": "status",
    "密级": "secrecy_level", "权属单位": "owner_unit", "建设单位": "owner_unit", "owner": "owner_unit",
    # Traditional characters (Big5 spreadsheets from Hong Kong, Macao and Taiwan suppliers).
    "設備編碼": "code", "設備編號": "code", "國標編碼": "code", "名稱": "name", "設備名稱": "name",
    "點位名稱": "name", "項目": "project", "所屬項目": "project", "經度": "lon", "緯度": "lat",
    "視場角": "fov_deg", "可視距離": "range_m", "安裝高度": "height_m", "類型": "type", "攝像機類型": "type",
    "狀態": "status", "密級": "secrecy_level", "權屬單位": "owner_unit", "建設單位": "owner_unit",
}
PROJECT_VALUES = {"skynet": "skynet", "天网": "skynet", "sharp_eyes": "sharp_eyes", "sharp eyes": "sharp_eyes",
                  "sharpeyes": "sharp_eyes", "雪亮": "sharp_eyes", "雪亮工程": "sharp_eyes", "天网工程": "skynet",
                  "other": "other", "其他": "other", "": "other", "天網": "skynet", "天網工程": "skynet"}
TYPE_VALUES = {"fixed": "fixed", "bullet": "fixed", "box": "fixed", "枪机": "fixed", "固定": "fixed",
               "dome": "dome", "球机": "dome", "半球": "dome", "ptz": "ptz", "云台": "ptz", "": "fixed",
               "槍機": "fixed", "球機": "dome", "雲台": "ptz"}
STATUS_VALUES = {"online": "online", "在线": "online", "offline": "offline", "离线": "offline",
                 "fault": "fault", "故障": "fault", "": "online",
                 "在線": "online", "離線": "offline"}
# The GCJ-02 check needs this many points and road segments to say anything.
GCJ_MIN_POINTS = 5
GCJ_MIN_ROADS = 20
MAX_RANGE_M = 2000.0
# Number columns that must hold whole numbers (levels, not measurements).
WHOLE_NUMBER_COLUMNS = frozenset({"secrecy_level"})


@dataclass
class RowProblem:
    """A bad input row: 1-based data row number, file line (CSV) and what is wrong."""

    row: int
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f" (line {self.line})" if self.line else "")
        return f"{where}: {self.message}"


def parse_mapping(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"code=ID,lon=Longitude"`` (ours=theirs) → dict; InputError on a malformed item."""
    if spec is None or spec == "":
        return {}
    if isinstance(spec, Mapping):
        return {str(k).strip(): str(v).strip() for k, v in spec.items()}
    out = {}
    for item in str(spec).split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise InputError(f"--map item {item!r} is not ours=theirs", hint="e.g. --map code=ID,lon=Longitude,lat=Latitude")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def read_records(path: str | Path, *, crs: str | None = "wgs84", encoding: str | None = None,
                 known: tuple[str, ...] = CAMERA_COLUMNS) -> tuple[pd.DataFrame, int]:
    """Read a CSV, JSON (array of records), GeoJSON or GPKG as a flat table of strings/numbers.

    CSV text is decoded as ``encoding`` (default UTF-8, else GB18030; ``known`` column names tell
    a mis-guessed encoding, see layers.csvtext). Features with geometry get ``lon``/``lat`` columns (converted to WGS-84 degrees if the file
    declares a projected CRS; GCJ-02/BD-09 are converted later, with the tabular data). Returns
    the table and the file line of its first data row (CSV: 2; others: None → 0).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return read_csv(path, encoding=encoding, known=(*known, *SYNONYMS)), 2
    if suffix == ".json":
        kind, doc = load_json_table(path.read_bytes(), str(path))
        if kind == "records":
            return pd.DataFrame.from_records(doc), 0
        # else GeoJSON with a .json suffix: read it as a vector file below
    try:
        gdf = pyogrio.read_dataframe(path)
    except Exception as exc:  # pyogrio raises several error types for unreadable files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot read as CSV, JSON, GeoJSON or GeoPackage: {first}") from None
    df = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    geoms = gdf.geometry
    if gdf.crs is not None and not gdf.crs.is_geographic:
        geoms = geoms.to_crs(SRID)
    pts = geoms.values
    ok = ~(shapely.is_missing(pts) | shapely.is_empty(pts))
    cent = np.where(ok, pts, None)
    # Points stay points; other shapes (a camera drawn as a tiny polygon) use their centroid.
    cent = shapely.centroid(cent)
    df["lon"] = np.where(ok, shapely.get_x(cent), np.nan)
    df["lat"] = np.where(ok, shapely.get_y(cent), np.nan)
    return df, 0


def apply_mapping(df: pd.DataFrame, mapping: Mapping[str, str], wanted: tuple[str, ...], path: Path) -> pd.DataFrame:
    """Rename the file's columns to ours: explicit ``mapping`` first, then known synonyms."""
    out = pd.DataFrame(index=df.index)
    lower = {str(c).strip().lower(): c for c in df.columns}
    for ours, theirs in mapping.items():
        if ours not in wanted:
            raise InputError(f"--map names unknown column {ours!r}", hint="known: " + ", ".join(wanted))
        if theirs not in df.columns:
            src = lower.get(theirs.lower())
            if src is None:
                raise InputError(f"{path}: --map {ours}={theirs}: the file has no column {theirs!r}",
                                 hint="columns: " + ", ".join(map(str, df.columns[:30])))
            theirs = src
        out[ours] = df[theirs]
    for col in df.columns:
        key = str(col).strip()
        name = key.lower() if key.lower() in wanted else SYNONYMS.get(key.lower(), SYNONYMS.get(key))
        if name in wanted and name not in out.columns and name not in mapping:
            out[name] = df[col]
    return out


def _number(df: pd.DataFrame, col: str) -> tuple[pd.Series, pd.Series]:
    """Numbers of ``col`` (NaN when blank) and a mask of cells that are not numbers at all."""
    if col not in df:
        nan = pd.Series(np.nan, index=df.index)
        return nan, pd.Series(False, index=df.index)
    raw = text_cells(df[col])
    num = pd.to_numeric(raw.where(raw != "", None), errors="coerce")
    return num, (raw != "") & num.isna()


def convert_crs(lon: np.ndarray, lat: np.ndarray, crs: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes/latitudes in ``crs`` (wgs84, gcj02, bd09 or EPSG:n) → WGS-84 degrees."""
    name = normalize_crs_name(crs) or "wgs84"
    if name == "wgs84":
        return lon, lat
    if name == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if name == "bd09":
        return bd09_to_wgs84(lon, lat)
    pts = gpd.GeoSeries(shapely.points(lon, lat), crs=name).to_crs(SRID)
    return shapely.get_x(pts.values), shapely.get_y(pts.values)


def check_coordinates(df: pd.DataFrame, line0: int, problems: list[RowProblem], crs: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Parse lon/lat; append a problem for each row without usable coordinates."""
    lon, lon_bad = _number(df, "lon")
    lat, lat_bad = _number(df, "lat")
    name = normalize_crs_name(crs) or "wgs84"
    refuse_geocentric(name)
    # CGCS2000 (EPSG:4490) and other geographic CRSs are degrees too: check their range as well.
    geographic = name in ("wgs84", "gcj02", "bd09") or pyproj.CRS.from_user_input(name).is_geographic
    for i, row in enumerate(df.index):
        n = i + 1
        line = line0 + i if line0 else None
        if lon_bad.iloc[i] or lat_bad.iloc[i]:
            problems.append(RowProblem(n, line, f"coordinates ({df['lon'].iloc[i]!r}, {df['lat'].iloc[i]!r}) are not numbers"))
        elif np.isnan(lon.iloc[i]) or np.isnan(lat.iloc[i]):
            problems.append(RowProblem(n, line, "missing coordinates (lon/lat)"))
        elif geographic and not (-180 <= lon.iloc[i] <= 180 and -90 <= lat.iloc[i] <= 90):
            problems.append(RowProblem(n, line, f"coordinates ({lon.iloc[i]}, {lat.iloc[i]}) are not longitude/latitude"
                                                " (lon/lat swapped, or a projected CRS? pass --crs EPSG:n)"))
    x, y = lon.to_numpy(float), lat.to_numpy(float)
    _check_plausible(x, y, line0, problems, name)
    return x, y


def _check_plausible(x: np.ndarray, y: np.ndarray, line0: int, problems: list[RowProblem], crs: str) -> None:
    """Append a problem for each row that lands where its declared CRS cannot put it (a wrong --crs)."""
    seen = {p.row for p in problems}
    idx = np.array([i for i in range(len(x)) if i + 1 not in seen], dtype=int)
    if not len(idx):
        return
    with np.errstate(all="ignore"):
        wlon, wlat = convert_crs(x[idx], y[idx], crs)
    bad, cause = implausible(x[idx], y[idx], wlon, wlat, crs)
    for i, lo, la in zip(idx[bad], np.asarray(wlon)[bad], np.asarray(wlat)[bad]):
        problems.append(RowProblem(int(i) + 1, line0 + int(i) if line0 else None,
                                   f"coordinates ({x[i]:g}, {y[i]:g}) land at ({lo:.4f}, {la:.4f}): {cause}"))


def gcj_shift_warning(store: Store, lon: np.ndarray, lat: np.ndarray, declared: str | None, *, conn: Connection | None = None) -> str | None:
    """A warning when points given as ``declared`` fit the streets in the store much better after
    a GCJ-02 (or BD-09) → WGS-84 conversion: the ~500 m shift of Chinese web-map coordinates.
    ``lon, lat`` are the file's raw numbers.

    Compares the median distance (m) of the points to their nearest road before and after the
    conversion; None when they fit as declared or there is too little to compare with.
    """
    name = normalize_crs_name(declared) or "wgs84"
    ok = np.isfinite(lon) & np.isfinite(lat)
    lon, lat = lon[ok], lat[ok]
    if name not in ("wgs84", "gcj02", "bd09") or len(lon) < GCJ_MIN_POINTS or not in_mainland_china(lon, lat).mean() > 0.5:
        return None
    bbox = (lon.min() - 0.01, lat.min() - 0.01, lon.max() + 0.01, lat.max() + 0.01)
    roads = store.read_layer("roads", bbox=bbox, conn=conn)
    if len(roads) < GCJ_MIN_ROADS:
        return None
    metric = local_metric_crs(float(np.median(lon)), float(np.median(lat)))
    tree_geoms = roads.to_crs(metric).geometry.values
    tree = shapely.STRtree(tree_geoms)

    def median_m(x: np.ndarray, y: np.ndarray) -> float:
        pts = gpd.GeoSeries(shapely.points(x, y), crs=SRID).to_crs(metric).values
        _, d = tree.query_nearest(pts, return_distance=True, all_matches=False)
        return float(np.median(d))

    # What the file's numbers mean in WGS-84 under each hypothesis of what they really are.
    hyp = {"wgs84": (lon, lat), "gcj02": gcj02_to_wgs84(lon, lat), "bd09": bd09_to_wgs84(lon, lat)}
    scores = {k: median_m(*v) for k, v in hyp.items()}
    as_declared = scores.pop(name)
    best = min(scores, key=scores.get)
    if scores[best] < 0.5 * as_declared and as_declared - scores[best] > 10.0:
        return (f"the points lie a median {as_declared:.0f} m from the nearest street as {name}, but "
                f"{scores[best]:.0f} m if they were {best}: the file is probably in {best} "
                f"(Chinese web maps shift coordinates by about 500 m); re-import with --crs {best}")
    return None


def prepare_cameras(
    path: str | Path, *, crs: str | None = "wgs84", mapping: str | Mapping[str, str] | None = None,
    code_prefix: str | None = None, project: str | None = None, encoding: str | None = None,
) -> tuple[gpd.GeoDataFrame, list[RowProblem]]:
    """Read and validate a camera file without touching any store.

    Returns the good cameras (GeoDataFrame in EPSG:4326, columns as the ``cameras`` table,
    ``_row`` = 1-based data row) and the problems of the bad rows.
    """
    path = Path(path)
    raw, line0 = read_records(path, crs=crs, encoding=encoding)
    df = apply_mapping(raw, parse_mapping(mapping), CAMERA_COLUMNS, path)
    # --project stands in for a missing project column (e.g. a list that is all Skynet)
    missing = [c for c in REQUIRED_CAMERA_COLUMNS if c not in df.columns and not (c == "project" and project)]
    if missing:
        raise InputError(f"{path}: required column(s) {', '.join(missing)} missing{encoding_note(raw)}",
                         hint="columns: code,name,project,lon,lat[,direction_deg,fov_deg,range_m,height_m,type,"
                              "status,secrecy_level,owner_unit]; rename with --map code=ID,lon=Longitude,…; "
                              "--project skynet|sharp_eyes|other stands in for a missing project column")
    problems: list[RowProblem] = []
    lon, lat = check_coordinates(df, line0, problems, crs)
    code = text_cells(df["code"])
    if code_prefix:
        code = code.where(code == "", code_prefix + code)
    code_problems = validate_camera_codes(code)
    first_row: dict[str, int] = {}
    nums = {c: _number(df, c) for c in ("direction_deg", "fov_deg", "range_m", "height_m", "secrecy_level")}
    limits = {"direction_deg": (0, 360), "fov_deg": (0.1, 360), "range_m": (0.1, MAX_RANGE_M),
              "height_m": (0, 500), "secrecy_level": (0, 9)}
    proj = text_cells(df["project"]) if "project" in df else pd.Series("", index=df.index)
    if project:
        proj = proj.where(proj != "", project)
    ctype = text_cells(df["type"]).str.lower() if "type" in df else pd.Series("", index=df.index)
    status = text_cells(df["status"]).str.lower() if "status" in df else pd.Series("", index=df.index)
    names = text_cells(df["name"]) if "name" in df else pd.Series("", index=df.index)
    for i in range(len(df)):
        n, line = i + 1, (line0 + i if line0 else None)
        if names.iloc[i] and (bad_name := name_problem(names.iloc[i], "camera")) is not None:
            problems.append(RowProblem(n, line, bad_name))
        if code_problems.iloc[i]:
            problems.append(RowProblem(n, line, code_problems.iloc[i]))
        elif code.iloc[i] in first_row:
            problems.append(RowProblem(n, line, f"device code {code.iloc[i]} repeats row {first_row[code.iloc[i]]}"))
        else:
            first_row[code.iloc[i]] = n
        for col, (num, bad) in nums.items():
            lo, hi = limits[col]
            if bad.iloc[i]:
                problems.append(RowProblem(n, line, f"{col} {df[col].iloc[i]!r} is not a number"))
            elif not np.isnan(num.iloc[i]) and not lo <= num.iloc[i] <= hi:
                problems.append(RowProblem(n, line, f"{col} {num.iloc[i]:g} is outside {lo:g}–{hi:g}"))
            elif col in WHOLE_NUMBER_COLUMNS and not np.isnan(num.iloc[i]) and num.iloc[i] != round(num.iloc[i]):
                # Never rounded: 0.5 stored as 0 would show the camera to every dispatcher.
                problems.append(RowProblem(n, line, f"{col} {df[col].iloc[i]!r} is not a whole number "
                                                    f"{lo:g}–{hi:g} (密级 must be an integer level)"))
        if proj.iloc[i].lower() not in PROJECT_VALUES:
            problems.append(RowProblem(n, line, f"project {proj.iloc[i]!r} is not skynet/天网, sharp_eyes/雪亮 or other"))
        if ctype.iloc[i] not in TYPE_VALUES:
            problems.append(RowProblem(n, line, f"type {ctype.iloc[i]!r} is not {', '.join(CAMERA_TYPES)}"))
        if status.iloc[i] not in STATUS_VALUES:
            problems.append(RowProblem(n, line, f"status {status.iloc[i]!r} is not {', '.join(CAMERA_STATUSES)}"))
    bad_rows = {p.row for p in problems}
    good = np.array([i + 1 not in bad_rows for i in range(len(df))], dtype=bool)
    wlon, wlat = convert_crs(lon[good], lat[good], crs)
    out = gpd.GeoDataFrame({
        "_row": np.arange(1, len(df) + 1)[good],
        "_raw_lon": lon[good], "_raw_lat": lat[good],
        "code": code[good].to_numpy(),
        "name": (text_cells(df["name"])[good].replace("", None).to_numpy() if "name" in df else None),
        "project": proj[good].str.lower().map(PROJECT_VALUES).to_numpy(),
        "azimuth_deg": nums["direction_deg"][0][good].to_numpy(),
        "fov_deg": nums["fov_deg"][0][good].to_numpy(),
        "range_m": nums["range_m"][0][good].to_numpy(),
        "height_m": nums["height_m"][0][good].to_numpy(),
        "camera_type": ctype[good].map(TYPE_VALUES).to_numpy(),
        "status": status[good].map(STATUS_VALUES).to_numpy(),
        "secrecy_level": nums["secrecy_level"][0][good].fillna(0).astype(int).to_numpy(),
        "owner_unit": (text_cells(df["owner_unit"])[good].replace("", None).to_numpy() if "owner_unit" in df else None),
    }, geometry=shapely.points(wlon, wlat), crs=f"EPSG:{SRID}")
    problems.sort(key=lambda p: p.row)
    return out, problems


def _drop_outside_areas(store: Store, cams: gpd.GeoDataFrame, problems: list[RowProblem]) -> gpd.GeoDataFrame:
    """``cams`` without the rows far outside the county's areas, each added to ``problems``."""
    x, y = shapely.get_x(cams.geometry.values), shapely.get_y(cams.geometry.values)
    far = outside_areas(store, x, y)
    if not far.any():
        return cams
    why = outside_message(int(far.sum()), len(cams))
    for r, lo, la in zip(cams["_row"].to_numpy()[far], x[far], y[far]):
        problems.append(RowProblem(int(r), None, f"coordinates ({lo:.5f}, {la:.5f}) {why}"))
    problems.sort(key=lambda p: p.row)
    return cams[~far]


def write_cameras(store: Store, conn: Connection, cams: gpd.GeoDataFrame) -> int:
    """Insert cameras, replacing rows with the same code (a re-import updates, never duplicates)."""
    delete_by_keys(conn, Camera.__table__, ["code"], [(c,) for c in cams["code"]])
    return store.insert_gdf(conn, "cameras", cams.drop(columns=[c for c in cams.columns if c.startswith("_")]))


def import_cameras(
    store: Store, path: str | Path, *, crs: str | None = "wgs84", mapping: str | Mapping[str, str] | None = None,
    code_prefix: str | None = None, project: str | None = None, skip_bad: bool = False,
    progress: Progress | None = None, encoding: str | None = None,
) -> ImportResult:
    """Import a camera list (CSV, GeoJSON, GPKG) into ``cameras`` in one transaction.

    Everything is validated first: bad rows (missing coordinates, malformed GB/T 28181 codes,
    repeated codes, values out of range) raise one InputError listing them with row numbers and
    nothing is written — unless ``skip_bad``, when the good rows are imported and the bad ones
    reported in ``dropped["bad_rows"]``. ``crs`` is what the coordinates are (wgs84, gcj02, bd09,
    EPSG:n); a file declared wgs84 that fits the stored streets far better as GCJ-02 (or the
    reverse) gets a warning in ``warnings``.
    """
    path = Path(path)
    say = progress or (lambda _m: None)
    started = utcnow()
    say(f"reading {path.name}")
    cams, problems = prepare_cameras(path, crs=crs, mapping=mapping, code_prefix=code_prefix, project=project,
                                     encoding=encoding)
    cams = _drop_outside_areas(store, cams, problems)
    if problems and not skip_bad:
        raise bad_rows_error(path, problems, "camera")
    if len(cams) == 0:
        raise InputError(f"{path}: no camera rows to import", hint="is the file empty or every row bad?")
    cams["source"] = f"file:{path.name}"
    warnings = []
    raw_lon, raw_lat = cams["_raw_lon"].to_numpy(float), cams["_raw_lat"].to_numpy(float)
    sha = file_sha256(path)
    with store.begin() as conn:
        warn = gcj_shift_warning(store, raw_lon, raw_lat, crs, conn=conn)
        if warn:
            warnings.append(warn)
        say(f"writing {len(cams)} cameras")
        existing = conn.execute(select(func.count()).select_from(Camera.__table__).where(
            Camera.__table__.c.code.in_(list(cams["code"][:30000])))).scalar_one()
        n = write_cameras(store, conn, cams)
        counts = {"cameras": n, "replaced": int(existing), "bad_rows": len({p.row for p in problems})}
        dropped = {"bad_rows": [str(p) for p in problems]}
        record_import(store, conn, "cameras", path, sha, started, counts, dropped,
                       {"crs": crs, "map": parse_mapping(mapping), "code_prefix": code_prefix, "warnings": warnings},
                       cams.geometry)
    return ImportResult(source=str(path), sha256=sha, counts=counts, dropped=dropped, warnings=warnings)


# ---------------------------------------------------------------------------------------------
# Queries.

_CAM_COLS = ("id", "code", "name", "project", "azimuth_deg", "fov_deg", "range_m", "height_m",
             "camera_type", "status", "secrecy_level", "owner_unit", "synthetic")


def max_range_m(conn: Connection) -> float:
    """The longest field-of-view range among stored cameras (defaults included), in metres."""
    t = Camera.__table__
    has_null = select(t.c.id).where(t.c.range_m.is_(None)).limit(1).exists()
    longest, any_null = conn.execute(select(func.max(t.c.range_m), has_null)).one()
    vals = [float(longest)] if longest is not None else []
    if any_null or not vals:
        vals.append(max(DEFAULT_RANGE_M.values()))
    return max(vals)


def candidate_statement(store: Store, lon: float, lat: float, radius_m: float):  # noqa: ANN201
    """The SELECT of stored cameras possibly within ``radius_m`` of (lon, lat), through the
    spatial index (GeoPackage R-tree subquery; PostGIS ``&&`` plus ST_DWithin on geography)."""
    t = Camera.__table__
    stmt = select(*[t.c[c] for c in _CAM_COLS], func.ST_X(t.c.geom).label("lon"), func.ST_Y(t.c.geom).label("lat"))
    cond = store.bbox_filter(t, degree_box(lon, lat, radius_m))
    if not store.is_gpkg:
        pt = func.ST_SetSRID(func.ST_MakePoint(lon, lat), SRID)
        # The spheroid distance may differ from ours by micrometres: keep 1 m of slack, the exact
        # test follows in Python.
        cond = cond & func.ST_DWithin(func.geography(t.c.geom), func.geography(pt), radius_m + 1.0)
    return stmt.where(cond)


def candidate_cameras(store: Store, conn: Connection, lon: float, lat: float, radius_m: float) -> list[tuple]:
    """Rows (``_CAM_COLS`` + lon, lat) of :func:`candidate_statement`."""
    return conn.execute(candidate_statement(store, lon, lat, radius_m)).all()


def evaluate_cameras(rows: list[tuple], lon: float, lat: float, *, radius_m: float | None = None,
                     in_view_only: bool = False) -> list[dict[str, Any]]:
    """Distance, bearing and the exact in-view test of candidate rows (``candidate_cameras``) to a
    point, filtered (radius, or each camera's range when None; in view) and ranked: in view
    first, online first, nearest first. Plain numpy: this is the map-click path."""
    if not rows:
        return []
    cols = list(zip(*rows))
    rec = dict(zip(list(_CAM_COLS) + ["lon", "lat"], cols))
    opt = optics_arrays(rec["camera_type"], rec["azimuth_deg"], rec["fov_deg"], rec["range_m"], rec["status"])
    clon = np.asarray(rec["lon"], float)
    clat = np.asarray(rec["lat"], float)
    dist, bearing = distance_bearing(clon, clat, lon, lat)
    seen = sector_contains(dist, bearing, opt["azimuth_deg"], opt["fov_deg"], opt["range_m"], opt["full_circle"])
    keep = dist <= (opt["range_m"] if radius_m is None else radius_m)
    if in_view_only:
        keep &= seen
    idx = np.flatnonzero(keep)
    idx = idx[np.lexsort((dist[idx], ~opt["online"][idx], ~seen[idx]))]
    out = []
    for i in idx:
        d = {c: rec[c][i] for c in _CAM_COLS}
        d.update(camera_type=opt["camera_type"][i], status=opt["status"][i], lon=float(clon[i]), lat=float(clat[i]),
                 azimuth_deg=float(opt["azimuth_deg"][i]), fov_deg=float(opt["fov_deg"][i]),
                 range_m=float(opt["range_m"][i]), full_circle=bool(opt["full_circle"][i]),
                 direction_known=bool(opt["direction_known"][i]), distance_m=float(dist[i]),
                 bearing_deg=float(bearing[i]), in_view=bool(seen[i]), online=bool(opt["online"][i]))
        out.append(d)
    return out


def cameras_near(store: Store, conn: Connection, lon: float, lat: float, *, radius_m: float | None = None,
                 in_view_only: bool = False) -> list[dict[str, Any]]:
    """:func:`cameras_at` as a list of dicts on an open connection (the API/lookup path)."""
    reach = max_range_m(conn)
    search = reach if radius_m is None else (max(radius_m, reach) if in_view_only else radius_m)
    return evaluate_cameras(candidate_cameras(store, conn, lon, lat, search), lon, lat, radius_m=radius_m,
                            in_view_only=in_view_only)


def cameras_at(
    store: Store, lon: float, lat: float, *, radius_m: float | None = None, in_view_only: bool = False,
    conn: Connection | None = None,
) -> pd.DataFrame:
    """Cameras around (lon, lat) (WGS-84), ranked: in view first, online first, nearest first.

    ``radius_m``: cameras within this distance (m); None → every camera whose range reaches the
    point. ``in_view_only``: only those whose field of view contains the point. Offline and
    faulty cameras are kept and flagged (``online`` False).
    """
    lon, lat = check_lonlat(lon, lat)
    cols = list(_CAM_COLS) + ["lon", "lat", "full_circle", "direction_known", "distance_m", "bearing_deg",
                              "in_view", "online"]
    if conn is not None:
        rows = cameras_near(store, conn, lon, lat, radius_m=radius_m, in_view_only=in_view_only)
    else:
        with store.engine.connect() as c:
            rows = cameras_near(store, c, lon, lat, radius_m=radius_m, in_view_only=in_view_only)
    return pd.DataFrame(rows, columns=cols)


def camera_index(store: Store, *, bbox: tuple[float, float, float, float] | None = None) -> CameraIndex:
    """An in-memory :class:`CameraIndex` of the stored cameras (optionally only within ``bbox``)."""
    cams = store.read_layer("cameras", bbox=bbox)
    return CameraIndex(cams)


def link_incidents(store: Store, *, radius_m: float | None = None, in_view_only: bool = False) -> pd.DataFrame:
    """Every (incident, camera) pair within ``radius_m`` (None: within the camera's range).

    Candidates come from one spatial-index join in the store (GeoPackage: the cameras' R-tree
    joined per incident; PostGIS: ``&&`` on an expanded box plus ST_DWithin on geography); the
    exact distance and in-view test follow in numpy. Columns: incident_id, camera_code,
    distance_m, bearing_deg, in_view, online, sorted by incident then rank.
    """
    from sqlalchemy import text

    cols = ["incident_id", "camera_code", "distance_m", "bearing_deg", "in_view", "online"]
    ext = store.extent("incidents")
    if ext is None or store.extent("cameras") is None:
        return pd.DataFrame({c: [] for c in cols})
    with store.engine.connect() as conn:
        search = max_range_m(conn) if radius_m is None else float(radius_m)
        lat_edge = max(abs(ext[1]), abs(ext[3]))
        x0, y0, x1, y1 = degree_box(0.0, lat_edge if ext[3] >= 0 else -lat_edge, search)
        dlon, dlat = (x1 - x0) / 2, (y1 - y0) / 2
        pick = ("i.id, ST_X(i.geom), ST_Y(i.geom), c.code, c.azimuth_deg, c.fov_deg, c.range_m, "
                "c.camera_type, c.status, ST_X(c.geom), ST_Y(c.geom)")
        if store.is_gpkg:
            sql = text(
                f"SELECT {pick} FROM incidents i JOIN rtree_cameras_geom r "
                "ON r.minx <= ST_X(i.geom) + :dlon AND r.maxx >= ST_X(i.geom) - :dlon "
                "AND r.miny <= ST_Y(i.geom) + :dlat AND r.maxy >= ST_Y(i.geom) - :dlat "
                "JOIN cameras c ON c.id = r.id")
        else:
            sql = text(
                f"SELECT {pick} FROM incidents i JOIN cameras c "
                "ON c.geom && ST_Expand(i.geom, :dlon, :dlat) "
                "AND ST_DWithin(geography(c.geom), geography(i.geom), :r)")
        rows = conn.execute(sql, {"dlon": dlon, "dlat": dlat, "r": search + 1.0}).all()
    if not rows:
        return pd.DataFrame({c: [] for c in cols})
    c = list(zip(*rows))
    opt = optics_arrays(c[7], c[4], c[5], c[6], c[8])
    dist, bearing = distance_bearing(np.asarray(c[9], float), np.asarray(c[10], float),
                                     np.asarray(c[1], float), np.asarray(c[2], float))
    seen = sector_contains(dist, bearing, opt["azimuth_deg"], opt["fov_deg"], opt["range_m"], opt["full_circle"])
    keep = dist <= (opt["range_m"] if radius_m is None else float(radius_m))
    if in_view_only:
        keep &= seen
    inc_id = np.asarray(c[0], dtype=np.int64)
    idx = np.flatnonzero(keep)
    idx = idx[np.lexsort((dist[idx], ~opt["online"][idx], ~seen[idx], inc_id[idx]))]
    return pd.DataFrame({
        "incident_id": inc_id[idx], "camera_code": np.asarray(c[3], dtype=object)[idx],
        "distance_m": dist[idx].round(2), "bearing_deg": bearing[idx].round(2),
        "in_view": seen[idx], "online": opt["online"][idx],
    })


def newest_plan_id(conn: Connection) -> int | None:
    """The id of the newest grid plan, None when there is none."""
    from gridpatrol.layers.models import GridPlan

    v = conn.execute(select(func.max(GridPlan.__table__.c.id))).scalar()
    return int(v) if v is not None else None


def camera_coverage(store: Store, *, plan_id: int | None = None, step_m: float = 5.0,
                    online_only: bool = False) -> pd.DataFrame:
    """Per grid of ``plan_id`` (default: the newest plan): street length (m), length seen by at
    least one camera (m) and the share, lowest share first."""
    from gridpatrol.layers.models import Grid

    with store.engine.connect() as c:
        pid = plan_id if plan_id is not None else newest_plan_id(c)
    if pid is None:
        raise InputError("there are no grids yet", hint="draw or import a grid plan first")
    grids = store.read_layer("grids", where=Grid.__table__.c.plan_id == pid)
    if len(grids) == 0:
        raise InputError(f"grid plan {pid} has no grids")
    bbox = tuple(grids.total_bounds)
    roads = store.read_layer("roads", bbox=bbox)
    with store.engine.connect() as c:
        reach = max_range_m(c)
    lon0, lat0, lon1, lat1 = bbox
    b0 = degree_box(lon0, lat0, reach)
    b1 = degree_box(lon1, lat1, reach)
    idx = camera_index(store, bbox=(b0[0], b0[1], b1[2], b1[3]))
    cov = idx.coverage(roads, grids, step_m=step_m, online_only=online_only)
    names = grids.set_index("code")[["name", "worker"]]
    cov = cov.join(names, on="code")
    cov["cameras"] = 0
    if len(idx):
        inside = gpd.sjoin(idx.cameras[["geometry"]], grids[["code", "geometry"]], predicate="within")
        counts = inside["code"].value_counts()
        cov["cameras"] = cov["code"].map(counts).fillna(0).astype(int)
    return cov.sort_values(["share", "street_m"], ascending=[True, False]).reset_index(drop=True)
