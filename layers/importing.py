"""Import OSM extracts and area boundaries into a store, atomically and without duplicates."""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from gridpatrol.gis.crs import (
    CHINESE_SYSTEMS,
    from_wgs84_geometry,
    local_metric_crs,
    normalize_crs_name,
)
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.osm import OsmData, OsmOptions, read_osm
from gridpatrol.gis.plausible import SHIFT_NEAR_M, likely_web_map_crs
from gridpatrol.gis.vector import as_multipolygon, checked_polygons, read_vector
from gridpatrol.layers.import_records import chunks, delete_by_keys
from gridpatrol.layers.models import (
    Area,
    Barrier,
    Building,
    Camera,
    Place,
    PlaceArea,
    Road,
    utcnow,
)
from gridpatrol.layers.plan_base import record_write
from gridpatrol.layers.store import Store
from sqlalchemy import Connection, Table, and_, delete

Progress = Callable[[str], None]
ADMIN_LEVELS = {"2": "country", "4": "province", "5": "city", "6": "district", "7": "district",
                "8": "street", "9": "community", "10": "community"}
LEVELS = ("county", "district", "street", "community")


@dataclass
class ImportResult:
    """What an import did: counts per layer and what it dropped (and why)."""

    source: str
    sha256: str
    counts: dict[str, Any]
    dropped: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_boundary(path: str | Path, crs: str | None) -> shapely.MultiPolygon:
    """The union of the polygons in a boundary file, in WGS-84 (converted from ``crs``)."""
    gdf = read_vector(path, crs=crs)
    geom = as_multipolygon(shapely.union_all(checked_polygons(gdf.geometry, path, "boundaries")))
    if geom is None or geom.is_empty:
        raise InputError(f"{path} has no polygon to use as a boundary")
    return geom


@dataclass
class PreparedOsm:
    """An extract read and checked, ready to be written (nothing in a store touched yet)."""

    path: Path
    data: OsmData
    sha256: str
    options: dict[str, Any]
    started_at: Any


def prepare_osm(
    path: str | Path,
    *,
    boundary: str | Path | None = None,
    boundary_crs: str | None = None,
    options: OsmOptions | None = None,
    progress: Progress | None = None,
) -> PreparedOsm:
    """Read and check an OSM extract (and its boundary file) without touching any store."""
    path = Path(path)
    started = utcnow()
    poly = load_boundary(boundary, boundary_crs) if boundary is not None else None
    data = read_osm(path, boundary=poly, options=options, progress=progress)
    opts = {"boundary": str(boundary) if boundary else None, "boundary_crs": boundary_crs,
            **(options or OsmOptions()).__dict__}
    return PreparedOsm(path=path, data=data, sha256=file_sha256(path), options=opts, started_at=started)


def import_osm(
    store: Store,
    path: str | Path | PreparedOsm,
    *,
    boundary: str | Path | None = None,
    boundary_crs: str | None = None,
    options: OsmOptions | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import an OSM extract into ``store`` (streets, buildings, barriers, admin areas, cameras).

    Everything is read and checked before the store is touched (pass a ``PreparedOsm`` to do
    that step first), then written in one transaction; rows of the same OSM objects are
    replaced, so importing a file twice leaves one copy. Returns the counts and what was
    dropped (ways cut by the extract edge, incomplete areas).
    """
    say = progress or (lambda _m: None)
    prep = path if isinstance(path, PreparedOsm) else prepare_osm(
        path, boundary=boundary, boundary_crs=boundary_crs, options=options, progress=say)
    data = prep.data
    say("writing to the store")
    with store.begin() as conn:
        _write_osm(store, conn, data)
        counts = dict(data.counts)
        rec = gpd.GeoDataFrame(
            [{
                "kind": "osm",
                "source_path": str(prep.path.resolve()),
                "source_sha256": prep.sha256,
                "source_bytes": prep.path.stat().st_size,
                "options_json": json.dumps(prep.options, ensure_ascii=False),
                "counts_json": json.dumps(counts, ensure_ascii=False),
                "dropped_json": json.dumps({k: len(v) for k, v in data.dropped.items()}),
                "started_at": prep.started_at,
                "finished_at": utcnow(),
            }],
            geometry=[as_multipolygon(data.bounds)],
            crs="EPSG:4326",
        )
        store.insert_gdf(conn, "imports", rec)
        record_write(conn, {"import": "osm"})  # a job running this import ends in this same transaction
    return ImportResult(source=str(prep.path), sha256=prep.sha256, counts=counts, dropped=data.dropped)


def _write_osm(store: Store, conn: Connection, data: OsmData) -> None:
    roads = Road.__table__
    delete_by_keys(conn, roads, ["osm_id"], [(int(i),) for i in data.roads["osm_id"].unique()])
    store.insert_gdf(conn, "roads", data.roads)

    b = Building.__table__
    keys = list(zip(data.buildings["osm_type"], data.buildings["osm_id"].astype(int)))
    _delete_keys_by_type(conn, b, keys)
    store.insert_gdf(conn, "buildings", data.buildings)

    bar = Barrier.__table__
    keys = list(zip(data.barriers["osm_type"], data.barriers["osm_id"].astype(int)))
    _delete_keys_by_type(conn, bar, keys)
    store.insert_gdf(conn, "barriers", data.barriers)

    if data.places is not None and len(data.places):
        delete_by_keys(conn, Place.__table__, ["osm_id"], [(int(i),) for i in data.places["osm_id"]])
        store.insert_gdf(conn, "places", data.places)
    if data.place_areas is not None and len(data.place_areas):
        pa = data.place_areas
        _delete_keys_by_type(conn, PlaceArea.__table__, list(zip(pa["osm_type"], pa["osm_id"].astype(int))))
        store.insert_gdf(conn, "place_areas", pa)

    if len(data.cameras):
        cams = data.cameras.copy()
        cams["source"] = "osm"
        cams["project"] = "other"
        cams["status"] = "online"
        delete_by_keys(conn, Camera.__table__, ["code"], [(c,) for c in cams["code"]])
        store.insert_gdf(conn, "cameras", cams)

    if len(data.admin):
        adm = data.admin.copy()
        adm["level"] = adm["admin_level"].map(ADMIN_LEVELS).fillna("other")
        adm["code"] = adm["code"].where(adm["code"].notna(), "osm:r" + adm["osm_id"].astype(str))
        adm["source"] = "osm"
        adm["geometry"] = [as_multipolygon(g) for g in adm.geometry]
        _upsert_areas(store, conn, adm)


def _delete_keys_by_type(conn: Connection, table: Table, keys: list[tuple[str, int]]) -> None:
    by_type: dict[str, list[tuple]] = {}
    for t, i in keys:
        by_type.setdefault(t, []).append((i,))
    for t, ids in by_type.items():
        for part in chunks(ids):
            conn.execute(delete(table).where(and_(table.c.osm_type == t, table.c.osm_id.in_([p[0] for p in part]))))


def _upsert_areas(store: Store, conn: Connection, areas: gpd.GeoDataFrame) -> None:
    t = Area.__table__
    for level, code in zip(areas["level"], areas["code"]):
        conn.execute(delete(t).where(and_(t.c.level == level, t.c.code == code)))
    c = areas.geometry.union_all().centroid
    areas = areas.copy()
    areas["area_m2"] = areas.to_crs(local_metric_crs(c.x, c.y)).area.to_numpy()
    store.insert_gdf(conn, "areas", areas)


_CODE_RE = re.compile(r"^\d{6}(\d{3}){0,2}$")


def read_areas(
    path: str | Path,
    *,
    crs: str | None = None,
    level: str = "district",
    code_field: str | None = None,
    name_field: str | None = None,
    code: str | None = None,
    name: str | None = None,
    parent_code: str | None = None,
) -> gpd.GeoDataFrame:
    """Read and check one file of administrative areas, converting from ``crs`` (e.g. gcj02).

    Returns the rows to store (WGS-84; code, name, level, parent_code, source). The code comes
    from ``code_field``, else ``code``, else a file name that is an administrative code
    (``510104.geojson``). Raises InputError naming the file and feature for anything wrong.
    """
    path = Path(path)
    if level not in LEVELS:
        raise InputError(f"unknown area level {level!r}", hint="use one of " + ", ".join(LEVELS))
    gdf = read_vector(path, crs=crs)
    if code_field is not None and code_field not in gdf.columns:
        raise InputError(f"{path}: no field {code_field!r}", hint="fields: " + ", ".join(map(str, gdf.columns.drop(gdf.geometry.name))))
    if name_field is not None and name_field not in gdf.columns:
        raise InputError(f"{path}: no field {name_field!r}")
    if code_field is not None:
        codes = gdf[code_field].astype(str).tolist()
    else:
        base = code or path.name.split(".")[0]
        if len(gdf) > 1 and code is None:
            codes = [f"{base}-{i + 1}" for i in range(len(gdf))] if not _CODE_RE.match(base) else None
            if codes is None:
                # One code for several features: they are parts of one area.
                gdf = gpd.GeoDataFrame({"geometry": [shapely.union_all(gdf.geometry.values)]}, crs=gdf.crs)
                codes = [base]
        else:
            codes = [base] * len(gdf)
    if len(set(codes)) != len(codes):
        raise InputError(f"{path}: duplicate area codes in {code_field or 'the file'}")
    geoms = checked_polygons(gdf.geometry, path, "areas")
    names = gdf[name_field].astype(str).tolist() if name_field else [name] * len(gdf)
    return gpd.GeoDataFrame(
        {"code": codes, "name": names, "level": level, "parent_code": parent_code,
         "source": str(path.resolve())},
        geometry=geoms, crs="EPSG:4326",
    )


def import_area_files(
    store: Store,
    paths: Iterable[str | Path],
    *,
    crs: str | None = None,
    level: str = "district",
    **fields: str | None,
) -> list[ImportResult]:
    """Import several area files all or nothing: every file is read and checked first, then all
    are written in one transaction. ``fields``: ``code_field``, ``name_field``, ``code``,
    ``name``, ``parent_code`` as for :func:`read_areas`. Two files giving the same
    (level, code) are refused, since the second would silently replace the first."""
    started = utcnow()
    prepared = [(Path(p), read_areas(p, crs=crs, level=level, **fields)) for p in paths]
    seen: dict[str, Path] = {}
    for path, areas in prepared:
        for c in areas["code"]:
            if c in seen and seen[c] != path:
                raise InputError(f"{path}: area code {c!r} is also given by {seen[c]}",
                                 hint="give each file its own --code or use --code-field")
            seen[c] = path
    warnings = {path: outline_shift_warning(store, areas, crs, path) for path, areas in prepared}
    results = []
    with store.begin() as conn:
        for path, areas in prepared:
            sha = file_sha256(path)
            _upsert_areas(store, conn, areas)
            store.insert_gdf(conn, "imports", gpd.GeoDataFrame([{
                "kind": "areas", "source_path": str(path.resolve()), "source_sha256": sha,
                "source_bytes": path.stat().st_size,
                "options_json": json.dumps({"crs": crs, "level": level}),
                "counts_json": json.dumps({"areas": len(areas)}),
                "dropped_json": "{}", "started_at": started, "finished_at": utcnow(),
            }], geometry=[None], crs="EPSG:4326"))
            results.append(ImportResult(source=str(path), sha256=sha, counts={"areas": len(areas)},
                                        warnings=[warnings[path]] if warnings[path] else []))
    return results


# The part of an OSM extract within this of its edge is left out of the GCJ-02 check: streets cut by
# the edge are missing there, and a shifted outline may leave the extract.
SHIFT_MARGIN_M = 600.0


def outline_shift_warning(store: Store, areas: gpd.GeoDataFrame, crs: str | None, path: Path) -> str | None:
    """A warning when the outlines of ``areas`` (read from ``path`` as ``crs``) fit the imported
    streets, rivers and railways much better as GCJ-02 or BD-09: see gis.plausible.likely_web_map_crs."""
    name = normalize_crs_name(crs) or "wgs84"
    if name not in CHINESE_SYSTEMS or not len(areas):
        return None
    geoms = areas.geometry.to_numpy()
    raw = geoms if name == "wgs84" else from_wgs84_geometry(geoms, name)
    xy = shapely.get_coordinates(shapely.segmentize(shapely.boundary(raw), 0.0002))  # a point every ~20 m
    minx, miny, maxx, maxy = areas.total_bounds
    bbox = (minx - 0.01, miny - 0.01, maxx + 0.01, maxy + 0.01)
    lines = [g.geometry for g in (store.read_layer("roads", bbox=bbox), store.read_layer("barriers", bbox=bbox)) if len(g)]
    if not lines:
        return None
    lines = gpd.GeoSeries(pd.concat(lines, ignore_index=True), crs="EPSG:4326")
    poly = lines.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    lines = gpd.GeoSeries(np.where(poly, shapely.boundary(lines.to_numpy()), lines.to_numpy()), crs="EPSG:4326")
    imports = store.read_layer("imports")
    cover = imports.geometry[imports["kind"].eq("osm") & imports.geometry.notna()]
    if not len(cover):
        return None
    # Where the extracts hold every street, less a margin of more than a web-map shift.
    region = gpd.GeoSeries([shapely.union_all(shapely.make_valid(cover.to_numpy()))], crs="EPSG:4326")
    metric = region.estimate_utm_crs()
    region = region.to_crs(metric).buffer(-SHIFT_MARGIN_M).to_crs("EPSG:4326").iloc[0]
    hit = likely_web_map_crs(xy[:, 0], xy[:, 1], name, lines, region=region)
    if hit is None:
        return None
    best, as_declared, as_best = hit
    return (f"{path.name}: its outline follows the imported streets, rivers and railways much better read as {best} "
            f"({100 * as_declared:.0f} % of its points within {SHIFT_NEAR_M:.0f} m of one as {name}, "
            f"{100 * as_best:.0f} % as {best}): it is probably in {best} (Chinese web maps shift coordinates by a few "
            f"hundred metres); re-import it with --crs {best}")


def import_areas(store: Store, path: str | Path, *, crs: str | None = None, level: str = "district",
                 **fields: str | None) -> ImportResult:
    """Import administrative areas from one vector file (``fields`` as for :func:`read_areas`);
    areas are replaced by (level, code)."""
    return import_area_files(store, [path], crs=crs, level=level, **fields)[0]


def layer_summary(store: Store) -> pd.DataFrame:
    """Rows and extent of every layer of ``store``."""
    from gridpatrol.layers.models import LAYERS

    rows = []
    for name in LAYERS:
        n = store.count(name)
        ext = store.extent(name) if n else None
        rows.append({"layer": name, "rows": n,
                     "extent": "" if ext is None else "{:.5f}, {:.5f}, {:.5f}, {:.5f}".format(*ext)})
    return pd.DataFrame(rows)
