"""Writers for other GIS tools: zipped Shapefile (ArcGIS), CSV with WKT (Excel), KML/KMZ (phone map apps)."""
from __future__ import annotations

import csv
import io
import re
import warnings
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely
from gridpatrol.gis.crs import wgs84_to_gcj02
from gridpatrol.gis.errors import InputError
from gridpatrol.layers.time_zones import DEFAULT_ZONE

# DBF field names hold at most 10 characters.
DBF_NAME_LEN = 10
FIELD_MAP_NAME = "field_names.csv"
ENCODINGS = {"utf-8": "UTF-8", "utf8": "UTF-8", "gbk": "GBK"}
_FAMILY = {"Point": "point", "MultiPoint": "point", "LineString": "line", "MultiLineString": "line",
           "Polygon": "polygon", "MultiPolygon": "polygon"}


def dbf_field_names(columns: list[str]) -> dict[str, str]:
    """Column → Shapefile field name: cut to 10 characters, collisions (case-insensitive, as DBF
    compares them) resolved by replacing the end with ``_1``, ``_2``, …, in column order."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for col in columns:
        name = re.sub(r"[^0-9A-Za-z_]", "_", col)[:DBF_NAME_LEN] or "field"
        n = 0
        while name.lower() in taken:
            n += 1
            suffix = f"_{n}"
            name = re.sub(r"[^0-9A-Za-z_]", "_", col)[: DBF_NAME_LEN - len(suffix)] + suffix
        taken.add(name.lower())
        out[col] = name
    return out


def _is_time(s: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(s) or (s.dtype == object and s.map(
        lambda v: hasattr(v, "isoformat")).any())


def local_time_text(value: object, tz: str = DEFAULT_ZONE) -> str | None:
    """One instant as ISO 8601 text in zone ``tz`` with its offset, to the microsecond
    (``2026-12-07T12:34:56.123456+08:00``); None for a missing value. Naive counts as UTC."""
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    t = pd.Timestamp(value)
    t = t.tz_localize("UTC") if t.tzinfo is None else t
    return t.tz_convert(tz).isoformat(timespec="microseconds")


def times_as_text(gdf: pd.DataFrame, tz: str = DEFAULT_ZONE) -> pd.DataFrame:
    """``gdf`` with every date/time column as ISO 8601 text in the county's zone ``tz`` with the offset, to the
    microsecond (:func:`local_time_text`). DBF and CSV have no time type with a zone, a Shapefile Date would lose the
    time, and a GeoPackage DATETIME is UTC by the standard (GDAL warns about any other offset)."""
    gdf = gdf.copy()
    geom = gdf.geometry.name if isinstance(gdf, gpd.GeoDataFrame) else None
    for col in gdf.columns:
        if col != geom and _is_time(gdf[col]):
            t = pd.to_datetime(gdf[col], utc=True)
            gdf[col] = pd.Series([local_time_text(v, tz) for v in t], index=gdf.index, dtype=object)
    return gdf


def write_geopackage(gdf: gpd.GeoDataFrame, layer: str, path: Path, *, tz: str = DEFAULT_ZONE) -> None:
    """``gdf`` as the GeoPackage layer ``layer`` at ``path``, times as text in zone ``tz`` (:func:`times_as_text`)."""
    with warnings.catch_warnings():
        # The temporary ".part" name of an export is not a .gpkg name; the renamed file is.
        warnings.simplefilter("ignore", RuntimeWarning)
        pyogrio.write_dataframe(times_as_text(gdf, tz), path, layer=layer, driver="GPKG")


def write_shapefile_zip(gdf: gpd.GeoDataFrame, layer: str, path: Path, *, encoding: str = "utf-8",
                        tz: str = DEFAULT_ZONE) -> None:
    """``gdf`` as a zipped Shapefile at ``path``: .shp/.shx/.dbf, .prj (WGS-84), .cpg naming the
    encoding (UTF-8 or GBK) and ``field_names.csv`` (column, shapefile_field); times as text in zone ``tz``.
    A layer of mixed
    geometry kinds (barriers) becomes one Shapefile per kind (``LAYER_point``, ``_line``, ``_polygon``)."""
    enc = ENCODINGS.get(encoding.lower())
    if enc is None:
        raise InputError(f"unknown encoding {encoding!r}", hint="use utf-8 or gbk")
    names = dbf_field_names([c for c in gdf.columns if c != gdf.geometry.name])
    out = times_as_text(gdf, tz).rename(columns=names)
    families = out.geometry.geom_type.map(_FAMILY).fillna("polygon")
    parts = {layer: out} if families.nunique() <= 1 else {
        f"{layer}_{fam}": out[families == fam] for fam in sorted(families.unique())}
    tmpdir = path.with_name(path.name + ".d")
    tmpdir.mkdir(exist_ok=True)
    try:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for stem, part in parts.items():
                shp = tmpdir / f"{stem}.shp"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    pyogrio.write_dataframe(part.reset_index(drop=True), shp, driver="ESRI Shapefile", encoding=enc)
                for f in sorted(tmpdir.glob(f"{stem}.*")):
                    zf.write(f, f.name)
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["column", "shapefile_field"])
            w.writerows(names.items())
            zf.writestr(FIELD_MAP_NAME, buf.getvalue().encode("utf-8"))
    finally:
        for f in tmpdir.iterdir():
            f.unlink()
        tmpdir.rmdir()


def write_geojson(gdf: gpd.GeoDataFrame, path: Path, *, tz: str = DEFAULT_ZONE) -> None:
    """``gdf`` as GeoJSON that reads back exactly: times as ISO 8601 text in zone ``tz`` with the offset, to the
    microsecond
    (GDAL's GeoJSON writer keeps milliseconds of a DateTime field) and coordinates with 17
    decimals (GDAL's default, 15 significant digits, turns 30.692561849999997 into 30.69256185)."""
    pyogrio.write_dataframe(times_as_text(gdf, tz), path, driver="GeoJSON", layer_options={"COORDINATE_PRECISION": 17})


# A text cell that Excel (or LibreOffice) would read as a formula when the CSV is opened: =, +, -, @, and a tab or
# carriage return in front of them (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def excel_text(value: object) -> object:
    """``value`` with a leading apostrophe if it is text a spreadsheet would run as a formula (a camera or grid
    name such as ``=HYPERLINK(...)``); Excel shows the text without the apostrophe. Other values unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def write_csv_wkt(gdf: gpd.GeoDataFrame, path: Path, *, tz: str = DEFAULT_ZONE) -> None:
    """``gdf`` as CSV for Excel: UTF-8 with a byte-order mark, the geometry as WKT in the first
    column ``WKT`` (WGS-84 longitude/latitude, full precision), times as ISO 8601 text in zone ``tz`` with the offset;
    text that Excel would
    run as a formula gets a leading apostrophe (:func:`excel_text`)."""
    plain = times_as_text(gdf.drop(columns=[gdf.geometry.name]), tz)
    for col in plain.columns:
        if plain[col].dtype == object or pd.api.types.is_string_dtype(plain[col]):
            plain[col] = plain[col].map(excel_text, na_action="ignore")
    plain.insert(0, "WKT", shapely.to_wkt(gdf.geometry.values, rounding_precision=-1))
    plain.to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\r\n")


def _to_gcj02(geoms: gpd.GeoSeries) -> gpd.GeoSeries:
    def shift(coords):  # noqa: ANN001, ANN202
        lon, lat = wgs84_to_gcj02(coords[:, 0], coords[:, 1])
        return shapely.get_coordinates(shapely.points(lon, lat))

    return gpd.GeoSeries(shapely.transform(geoms.values, shift), index=geoms.index)


def kml_document(gdf: gpd.GeoDataFrame, layer: str, *, gcj02: bool = False, tz: str = DEFAULT_ZONE) -> str:
    """``gdf`` as a KML document: one placemark per row named by its grid code (or name, or id),
    its description listing 网格 (grid code) and 网格员 (worker) where the frame has them, and
    every column as ExtendedData (times as text in zone ``tz`` with the offset). Coordinates in WGS-84, or GCJ-02
    (Chinese web/phone maps)."""
    geoms = _to_gcj02(gdf.geometry) if gcj02 else gdf.geometry
    plain = times_as_text(gdf.drop(columns=[gdf.geometry.name]), tz)
    rows = []
    for (idx, rec), geom in zip(plain.iterrows(), geoms.values):
        title = next((str(rec[c]) for c in ("code", "grid_code", "name") if c in rec and pd.notna(rec[c])), str(idx))
        desc = []
        for col, label in (("grid_code", "网格"), ("code", "网格") if layer == "grids" else (None, None),
                           ("worker", "网格员")):
            if col in rec and pd.notna(rec[col]):
                desc.append(f"{label}: {rec[col]}")
        # KML readers take Data named "name"/"description" for the placemark's own: renamed.
        data = "".join(f'<Data name="{escape(_KML_DATA_NAMES.get(c, c))}"><value>{escape("" if pd.isna(v) else str(v))}'
                       "</value></Data>" for c, v in rec.items())
        rows.append(f"<Placemark><name>{escape(title)}</name><description>{escape('; '.join(desc))}</description>"
                    f"<ExtendedData>{data}</ExtendedData>{_kml_geometry(geom)}</Placemark>")
    crs_note = "GCJ-02" if gcj02 else "WGS-84"
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
            f"<name>{escape(layer)}</name><description>coordinates: {crs_note}</description>"
            + "".join(rows) + "</Document></kml>\n")


_KML_DATA_NAMES = {"name": "feature_name", "description": "feature_description"}


def _coords(geom) -> str:  # noqa: ANN001
    return " ".join(f"{float(x)!r},{float(y)!r}" for x, y in shapely.get_coordinates(geom))


def _kml_geometry(geom) -> str:  # noqa: ANN001
    if geom is None or geom.is_empty:
        return ""
    kind = geom.geom_type
    if kind == "Point":
        return f"<Point><coordinates>{_coords(geom)}</coordinates></Point>"
    if kind == "LineString":
        return f"<LineString><coordinates>{_coords(geom)}</coordinates></LineString>"
    if kind == "Polygon":
        inner = "".join(f"<innerBoundaryIs><LinearRing><coordinates>{_coords(r)}</coordinates></LinearRing></innerBoundaryIs>"
                        for r in geom.interiors)
        return (f"<Polygon><outerBoundaryIs><LinearRing><coordinates>{_coords(geom.exterior)}</coordinates>"
                f"</LinearRing></outerBoundaryIs>{inner}</Polygon>")
    return "<MultiGeometry>" + "".join(_kml_geometry(g) for g in geom.geoms) + "</MultiGeometry>"


def write_kml(gdf: gpd.GeoDataFrame, layer: str, path: Path, *, gcj02: bool = False, kmz: bool = False,
              tz: str = DEFAULT_ZONE) -> None:
    """``gdf`` as KML (``kmz``: zipped as ``doc.kml``) at ``path``; see :func:`kml_document`."""
    doc = kml_document(gdf, layer, gcj02=gcj02, tz=tz).encode("utf-8")
    if kmz:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("doc.kml", doc)
    else:
        path.write_bytes(doc)
