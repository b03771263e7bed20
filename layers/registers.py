"""Import household registers (一标三实 / 实有人口) as the household source of buildings, all or nothing."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from gridpatrol.gis.crs import CHINESE_SYSTEMS, bd09_to_wgs84, gcj02_to_wgs84, local_metric_crs, to_wgs84_geometry
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.osm import OsmOptions
from gridpatrol.gis.plausible import implausible, refuse_geocentric
from gridpatrol.gis.registers import (
    DEFAULT_TOLERANCE_M,
    address_key,
    join_points,
    orient_xy,
    point_footprints,
    register_crs,
)
from gridpatrol.layers.cameras import GCJ_MIN_POINTS, RowProblem, gcj_shift_warning, parse_mapping
from gridpatrol.layers.import_records import bad_rows_error, record_import
from gridpatrol.layers.importing import ImportResult, file_sha256
from gridpatrol.layers.inside_areas import outside_areas, outside_message
from gridpatrol.layers.models import SRID, Building, utcnow
from gridpatrol.layers.register_files import read_register
from gridpatrol.layers.store import Store
from sqlalchemy import Connection, bindparam, case, delete, func, select, update

Progress = Callable[[str], None]
MODES = ("replace", "add")
REGISTER_OSM_TYPE = "register"  # buildings rows made for register points in no mapped building
HEADER_ZH = {"households": "户数", "population": "人口", "levels": "层数"}


@dataclass
class PreparedRegister:
    """A register read and checked: good rows (WGS-84 geometry, ``_row``), problems and notes."""

    rows: gpd.GeoDataFrame
    problems: list[RowProblem]
    crs: str
    row_word: str
    warnings: list[str] = field(default_factory=list)
    households_from_population: int = 0


def _numbers(df: pd.DataFrame, col: str, rows: np.ndarray, word: str, problems: list[RowProblem]) -> np.ndarray:
    """The numbers of ``col`` (NaN when blank); a problem for each non-number or negative cell."""
    if col not in df:
        return np.full(len(df), np.nan)
    raw = df[col].astype(str).str.strip().str.replace(",", "", regex=False)
    num = pd.to_numeric(raw.where(raw != "", None), errors="coerce").to_numpy(float)
    label = f"{col} ({HEADER_ZH.get(col, col)})"
    for i in np.flatnonzero((raw != "").to_numpy() & np.isnan(num)):
        problems.append(RowProblem(int(rows[i]), None, f"{label} {df[col].iloc[i]!r} is not a number"))
    for i in np.flatnonzero(num < 0):
        problems.append(RowProblem(int(rows[i]), None, f"{label} {num[i]:g} is negative"))
    return np.where(num >= 0, num, np.nan)


def _to_wgs84(geoms: np.ndarray, crs: str) -> np.ndarray:
    if crs == "wgs84":
        return geoms
    if crs in CHINESE_SYSTEMS:
        return to_wgs84_geometry(geoms, crs)
    return gpd.GeoSeries(geoms, crs=crs).to_crs(SRID).to_numpy()


def prepare_register(
    path: str | Path, *, crs: str | None = None, sheet: str | None = None,
    mapping: str | Mapping[str, str] | None = None, encoding: str | None = None,
    persons_per_household: float = OsmOptions().persons_per_household,
) -> PreparedRegister:
    """Read and check a register without touching any store.

    Rows without coordinates, with counts that are not numbers (or negative), with neither
    households nor population, or repeating an earlier row's address are problems, each with the
    row number the clerk sees. ``crs`` (see gis.registers.register_crs) overrides the file's own;
    a row with population only gets households = population / ``persons_per_household``.
    """
    path = Path(path)
    table = read_register(path, sheet=sheet, mapping=parse_mapping(mapping), encoding=encoding)
    df, rows, word = table.df, table.rows, table.row_word
    problems: list[RowProblem] = []
    name = register_crs(crs) if crs is not None else (register_crs(table.file_crs) if table.file_crs else "wgs84")
    refuse_geocentric(name)
    if table.geoms is None and not {"lon", "lat"} <= set(df.columns):
        raise InputError(f"{path}: no coordinate columns (经度/纬度 or X/Y) found",
                         hint="columns read: " + ", ".join(df.columns) + "; name them with --map lon=…,lat=…")
    if "households" not in df and "population" not in df:
        raise InputError(f"{path}: neither a households (户数) nor a population (人口/实有人口) column found",
                         hint="columns read: " + ", ".join(df.columns) + "; name one with --map households=…")
    hh = _numbers(df, "households", rows, word, problems)
    pop = _numbers(df, "population", rows, word, problems)
    levels = _numbers(df, "levels", rows, word, problems)
    bad_count = {p.row for p in problems}
    for i in np.flatnonzero(np.isnan(hh) & np.isnan(pop)):
        if int(rows[i]) not in bad_count:
            problems.append(RowProblem(int(rows[i]), None, "no households (户数) or population (人口)"))
    warnings: list[str] = []
    n = len(df)
    if table.geoms is not None:
        geoms = np.asarray(table.geoms, dtype=object)
        missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        for i in np.flatnonzero(missing):
            problems.append(RowProblem(int(rows[i]), None, "no geometry (coordinates)"))
        probe = shapely.point_on_surface(np.where(missing, None, geoms))
        raw_x, raw_y = shapely.get_x(probe), shapely.get_y(probe)
    else:
        xs = pd.to_numeric(df["lon"].astype(str).str.strip().replace("", None), errors="coerce").to_numpy(float)
        ys = pd.to_numeric(df["lat"].astype(str).str.strip().replace("", None), errors="coerce").to_numpy(float)
        for i in range(n):
            if np.isnan(xs[i]) or np.isnan(ys[i]):
                given = df["lon"].iloc[i].strip() or df["lat"].iloc[i].strip()
                what = (f"coordinates ({df['lon'].iloc[i]!r}, {df['lat'].iloc[i]!r}) are not numbers" if given
                        else "no coordinates (经度/纬度)")
                problems.append(RowProblem(int(rows[i]), None, what))
        raw_x, raw_y, swapped = orient_xy(xs, ys, name)
        if swapped:
            warnings.append(f"the coordinate columns hold (northing, easting) in {name}: read as X = north, "
                            "Y = east, as Chinese surveys write them")
        geoms = shapely.points(raw_x, raw_y)
    with np.errstate(all="ignore"):
        wgs = _to_wgs84(np.where(np.isfinite(raw_x) & np.isfinite(raw_y), geoms, None), name)
    probe_w = shapely.point_on_surface(wgs)
    lon, lat = shapely.get_x(probe_w), shapely.get_y(probe_w)
    located = np.isfinite(raw_x) & np.isfinite(raw_y)
    bad, cause = implausible(raw_x[located], raw_y[located], lon[located], lat[located], name)
    for i in np.flatnonzero(located)[bad]:
        problems.append(RowProblem(int(rows[i]), None, f"coordinates ({raw_x[i]:g}, {raw_y[i]:g}) land at "
                                                       f"({lon[i]:.4f}, {lat[i]:.4f}): {cause}"))
    addr = df["address"].astype(str).str.strip() if "address" in df else pd.Series("", index=df.index)
    first: dict[str, int] = {}
    for i, a in enumerate(addr):
        key = address_key(a)
        if not key:
            continue
        if key in first:
            problems.append(RowProblem(int(rows[i]), None, f"address {a!r} repeats row {first[key]}"))
        else:
            first[key] = int(rows[i])
    bad_rows = {p.row for p in problems}
    good = np.array([int(r) not in bad_rows for r in rows], dtype=bool)
    from_pop = good & np.isnan(hh) & ~np.isnan(pop)
    households = np.where(np.isnan(hh), pop / persons_per_household, hh)
    out = gpd.GeoDataFrame({
        "_row": rows[good], "_raw_lon": raw_x[good], "_raw_lat": raw_y[good],
        "address": addr[good].to_numpy(),
        "households": households[good], "population": pop[good],
        "building_code": (df["building_code"][good].to_numpy() if "building_code" in df else ""),
        "use": (df["use"][good].to_numpy() if "use" in df else ""),
        "levels": levels[good],
    }, geometry=list(wgs[good]), crs=f"EPSG:{SRID}")
    problems.sort(key=lambda p: p.row)
    return PreparedRegister(rows=out, problems=problems, crs=name, row_word=word, warnings=warnings,
                            households_from_population=int(from_pop.sum()))


def _drop_outside(store: Store, conn: Connection, prep: PreparedRegister) -> None:
    """Move rows far outside the county's imported areas to the problems."""
    r = prep.rows
    if not len(r):
        return
    pts = shapely.point_on_surface(r.geometry.to_numpy())
    x, y = shapely.get_x(pts), shapely.get_y(pts)
    far = outside_areas(store, x, y, conn=conn)
    if not far.any():
        return
    why = outside_message(int(far.sum()), len(r))
    for row, lo, la in zip(r["_row"].to_numpy()[far], x[far], y[far]):
        prep.problems.append(RowProblem(int(row), None, f"coordinates ({lo:.5f}, {la:.5f}) {why}"))
    prep.problems.sort(key=lambda p: p.row)
    prep.rows = r[~far]


def building_fit_warning(store: Store, conn: Connection, lon: np.ndarray, lat: np.ndarray,
                         declared: str) -> str | None:
    """A warning when address points given as ``declared`` (wgs84/gcj02/bd09) fall in mapped
    buildings far more often under another of the three: the same ~500 m shift that
    layers.cameras.gcj_shift_warning finds with streets, measured where addresses are, in buildings."""
    ok = np.isfinite(lon) & np.isfinite(lat)
    lon, lat = lon[ok], lat[ok]
    if declared not in CHINESE_SYSTEMS or len(lon) < GCJ_MIN_POINTS:
        return None
    t = Building.__table__
    pad = 0.01
    b = store.read_layer("buildings", bbox=(lon.min() - pad, lat.min() - pad, lon.max() + pad, lat.max() + pad),
                         where=(t.c.estimate_method != "landuse") & (t.c.osm_type != REGISTER_OSM_TYPE), conn=conn)
    if len(b) < GCJ_MIN_POINTS:
        return None
    tree = shapely.STRtree(b.geometry.to_numpy())
    hyp = {"wgs84": (lon, lat), "gcj02": gcj02_to_wgs84(lon, lat), "bd09": bd09_to_wgs84(lon, lat)}
    share = {k: len(np.unique(tree.query(shapely.points(*v), predicate="within")[0])) / len(lon)
             for k, v in hyp.items()}
    as_declared = share.pop(declared)
    best = max(share, key=share.get)
    if share[best] >= 0.5 and share[best] > 2 * as_declared:
        return (f"{as_declared:.0%} of the points lie in a mapped building as {declared}, but {share[best]:.0%} "
                f"if they were {best}: the file is probably in {best} (Chinese web maps shift coordinates "
                f"by about 500 m); re-import with --crs {best}")
    return None


def register_buildings(store: Store, conn: Connection | None = None) -> int:
    """How many buildings take their households from a register now."""
    t = Building.__table__
    stmt = select(func.count()).select_from(t).where(t.c.household_source == "register")
    if conn is not None:
        return int(conn.execute(stmt).scalar_one())
    with store.begin() as c:
        return int(c.execute(stmt).scalar_one())


def source_counts(conn: Connection) -> dict[str, int]:
    """Buildings (landuse estimates left out) per household source."""
    t = Building.__table__
    stmt = (select(t.c.household_source, func.count()).where(t.c.estimate_method != "landuse")
            .group_by(t.c.household_source))
    out = {"register": 0, "osm_tag": 0, "estimate": 0}
    for src, n in conn.execute(stmt):
        out[str(src or "estimate")] = out.get(str(src or "estimate"), 0) + int(n)
    return out


def _forget_register(conn: Connection) -> None:
    """Put back what OSM said for every building a register supplied; drop register-only points."""
    t = Building.__table__
    conn.execute(delete(t).where(t.c.osm_type == REGISTER_OSM_TYPE))
    conn.execute(update(t).where(t.c.household_source == "register").values(
        households=func.coalesce(t.c.households_osm, t.c.households),
        population=t.c.population_osm,
        household_source=case((t.c.households_estimated, "estimate"), else_="osm_tag"),
        households_osm=None, population_osm=None))


def _join(store: Store, conn: Connection, rows: gpd.GeoDataFrame, tolerance_m: float,
          ) -> tuple[np.ndarray, np.ndarray, gpd.GeoDataFrame, Any]:
    """Building id per register row (-1: none), distance (m), the candidate buildings, metric CRS."""
    geoms = rows.geometry.to_numpy()
    pts = shapely.point_on_surface(geoms)
    x, y = shapely.get_x(pts), shapely.get_y(pts)
    metric = local_metric_crs(float(np.median(x)), float(np.median(y)))
    pad = tolerance_m / 90_000.0 + 1e-4  # degrees: a little more than tolerance_m at any latitude here
    t = Building.__table__
    cand = store.read_layer("buildings", bbox=(x.min() - pad, y.min() - pad, x.max() + pad, y.max() + pad),
                            where=(t.c.estimate_method != "landuse") & (t.c.osm_type != REGISTER_OSM_TYPE), conn=conn)
    fp_m = cand.to_crs(metric).geometry.to_numpy() if len(cand) else np.array([], dtype=object)
    pts_m = gpd.GeoSeries(pts, crs=SRID).to_crs(metric).to_numpy()
    idx, dist = join_points(pts_m, fp_m, tolerance_m)
    ids = np.where(idx >= 0, cand["id"].to_numpy()[np.maximum(idx, 0)] if len(cand) else -1, -1)
    return ids.astype(np.int64), dist, cand, metric


def _write(store: Store, conn: Connection, rows: gpd.GeoDataFrame, ids: np.ndarray, cand: gpd.GeoDataFrame,
           metric: Any, mode: str, pph: float) -> int:
    """Apply register households to the matched buildings and insert the unmatched rows; returns
    how many buildings were updated."""
    t = Building.__table__
    matched = rows[ids >= 0].assign(_bid=ids[ids >= 0])
    agg = matched.groupby("_bid").agg(hh=("households", "sum"), pop=("population", lambda s: s.sum(min_count=1)))
    cur = cand.set_index("id").loc[agg.index]
    is_reg = (cur["household_source"].astype(str) == "register").to_numpy() & (mode == "add")
    hh = agg["hh"].to_numpy() + np.where(is_reg, cur["households"].to_numpy(float), 0.0)
    pop_new = agg["pop"].to_numpy(float)
    pop_old = cur["population"].to_numpy(float)
    pop = np.where(np.isnan(pop_new), hh * pph, pop_new + np.where(is_reg, np.nan_to_num(pop_old), 0.0))
    keep_osm = ~(cur["household_source"].astype(str) == "register").to_numpy()
    params = [{"b_id": int(b), "hh": float(h), "pop": float(p), "hh_osm": float(ho),
               "pop_osm": None if pd.isna(po) else float(po), "k": bool(k)}
              for b, h, p, ho, po, k in zip(agg.index, hh, pop, cur["households"], pop_old, keep_osm)]
    stmt = update(t).where(t.c.id == bindparam("b_id")).values(
        households=bindparam("hh"), population=bindparam("pop"), household_source="register")
    # The first register to supply a building keeps what OSM said, for --replace to put back.
    first = [p for p in params if p["k"]]
    if first:
        conn.execute(stmt.values(households_osm=bindparam("hh_osm"), population_osm=bindparam("pop_osm")), first)
    again = [p for p in params if not p["k"]]
    if again:
        conn.execute(stmt, again)
    alone = rows[ids < 0]
    if len(alone):
        start = conn.execute(select(func.coalesce(func.max(t.c.osm_id), 0)).where(
            t.c.osm_type == REGISTER_OSM_TYPE)).scalar_one()
        geoms_m = gpd.GeoSeries(alone.geometry.to_numpy(), crs=SRID).to_crs(metric).to_numpy()
        polygon = np.isin(shapely.get_type_id(geoms_m), (3, 6))
        fp_m = np.where(polygon, geoms_m, point_footprints(shapely.point_on_surface(geoms_m)))
        fp = gpd.GeoSeries(fp_m, crs=metric).to_crs(SRID).to_numpy()
        hh_a = alone["households"].to_numpy(float)
        pop_a = alone["population"].to_numpy(float)
        new = gpd.GeoDataFrame({
            "osm_type": REGISTER_OSM_TYPE, "osm_id": np.arange(start + 1, start + 1 + len(alone)),
            "building": [u or "register" for u in alone["use"].astype(str)],
            "name": alone["address"].replace("", None).to_numpy(),
            "levels": alone["levels"].to_numpy(float), "levels_estimated": False,
            "footprint_m2": np.where(polygon, shapely.area(geoms_m), 0.0),
            "households": hh_a, "households_estimated": False, "estimate_method": "register",
            "population": np.where(np.isnan(pop_a), hh_a * pph, pop_a), "household_source": "register",
        }, geometry=[shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g for g in fp], crs=f"EPSG:{SRID}")
        store.insert_gdf(conn, "buildings", new)
    return len(params)


def _unmatched_lines(rows: gpd.GeoDataFrame, word: str, tolerance_m: float) -> list[str]:
    out = []
    for r, a, h, g in zip(rows["_row"], rows["address"], rows["households"], rows.geometry):
        p = g.representative_point()
        out.append(f"{word} {int(r)}: {a or '(no address)'} ({h:g} households) at ({p.x:.5f}, {p.y:.5f}): "
                   f"in no building and none within {tolerance_m:g} m; counted as a register point in its block")
    return out


def import_households(
    store: Store, path: str | Path, *, crs: str | None = None, sheet: str | None = None,
    mapping: str | Mapping[str, str] | None = None, mode: str | None = None, skip_bad: bool = False,
    tolerance_m: float = DEFAULT_TOLERANCE_M, encoding: str | None = None,
    persons_per_household: float = OsmOptions().persons_per_household, progress: Progress | None = None,
) -> ImportResult:
    """Import a household register: buildings take households/population from it (household_source
    = register); points in no building within ``tolerance_m`` become register points of their own.

    All or nothing: any bad row (see :func:`prepare_register`; also rows more than 5 km outside the
    imported areas) refuses the file with every bad row listed, unless ``skip_bad``. A store that
    already has register data needs ``mode``: "replace" (earlier register data is undone first) or
    "add". Counts: rows, buildings matched (inside / nearest, with distances), register points,
    buildings per source; ``dropped`` lists bad and unmatched rows.
    """
    path = Path(path)
    say = progress or (lambda _m: None)
    if mode is not None and mode not in MODES:
        raise InputError(f"mode {mode!r} is not replace or add")
    if not tolerance_m >= 0:
        raise InputError(f"tolerance {tolerance_m!r} m must be a number ≥ 0")
    started = utcnow()
    say(f"reading {path.name}")
    prep = prepare_register(path, crs=crs, sheet=sheet, mapping=mapping, encoding=encoding,
                            persons_per_household=persons_per_household)
    sha = file_sha256(path)
    with store.begin() as conn:
        _drop_outside(store, conn, prep)
        problems, rows = prep.problems, prep.rows
        if problems and not skip_bad:
            raise bad_rows_error(path, problems, "register")
        if not len(rows):
            raise InputError(f"{path}: no register rows to import", hint="is the file empty or every row bad?")
        earlier = register_buildings(store, conn)
        if earlier and mode is None:
            raise InputError(f"the store already has register households for {earlier} buildings",
                             hint="pass --replace to replace them with this file, or --add to add this file to them")
        warnings = list(prep.warnings)
        if prep.crs in CHINESE_SYSTEMS:
            warn = gcj_shift_warning(store, rows["_raw_lon"].to_numpy(float), rows["_raw_lat"].to_numpy(float),
                                     prep.crs, conn=conn)
            warn = warn or building_fit_warning(store, conn, rows["_raw_lon"].to_numpy(float),
                                                rows["_raw_lat"].to_numpy(float), prep.crs)
            if warn:
                warnings.append(warn)
        if mode == "replace":
            _forget_register(conn)
        say(f"joining {len(rows)} rows to buildings")
        ids, dist, cand, metric = _join(store, conn, rows, tolerance_m)
        say("writing households")
        updated = _write(store, conn, rows, ids, cand, metric, mode or "replace", persons_per_household)
        near = (ids >= 0) & (dist > 0)
        counts: dict[str, Any] = {
            "rows": len(rows), "bad_rows": len({p.row for p in problems}),
            "households": round(float(rows["households"].sum()), 3),
            "population": round(float(np.nansum(rows["population"].to_numpy(float))), 3),
            "households_from_population": prep.households_from_population,
            "rows_in_building": int(((ids >= 0) & (dist == 0)).sum()),
            "rows_nearest_building": int(near.sum()),
            "nearest_max_m": round(float(dist[near].max()), 1) if near.any() else 0.0,
            "nearest_median_m": round(float(np.median(dist[near])), 1) if near.any() else 0.0,
            "rows_in_no_building": int((ids < 0).sum()),
            "buildings_updated": updated,
            "buildings_by_source": source_counts(conn),
        }
        unmatched = _unmatched_lines(rows[ids < 0], prep.row_word, tolerance_m)
        dropped = {"bad_rows": [str(p) for p in problems], "unmatched": unmatched}
        record_import(store, conn, "households", path, sha, started, counts, dropped,
                      {"crs": prep.crs, "sheet": sheet, "map": parse_mapping(mapping), "mode": mode,
                       "tolerance_m": tolerance_m, "warnings": warnings}, rows.geometry)
    return ImportResult(source=str(path), sha256=sha, counts=counts, dropped=dropped, warnings=warnings)
