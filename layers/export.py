"""Export a layer of the store: GeoJSON, GeoPackage, zipped Shapefile, CSV with WKT, KML/KMZ."""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from gridpatrol.gis.errors import InputError
from gridpatrol.layers import export_formats
from gridpatrol.layers.store import Store
from gridpatrol.layers.time_zones import DEFAULT_ZONE, check_zone

FORMATS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".zip": "Shapefile", ".csv": "CSV",
           ".kml": "KML", ".kmz": "KMZ"}
CRS_CHOICES = ("wgs84", "gcj02")


def export_format(path: Path) -> str:
    """The export format named by ``path``'s extension (``.shp.zip`` and ``.zip`` are zipped Shapefiles)."""
    driver = FORMATS.get(path.suffix.lower())
    if driver is None:
        raise InputError(f"cannot export to {path.name}",
                         hint="use a .geojson, .gpkg, .shp.zip, .csv, .kml or .kmz file name")
    return driver


def with_grid_and_worker(store: Store, gdf: gpd.GeoDataFrame, *, workers: bool = True) -> gpd.GeoDataFrame:
    """``gdf`` with ``grid_code`` (the current plan's grid holding each feature's representative
    point, unless it has one) and ``worker`` of that grid when ``workers`` (the caller may see them)."""
    if "code" in gdf.columns and "worker" in gdf.columns or not len(gdf):
        return gdf
    from gridpatrol.layers.grids import export_frame

    grids = export_frame(store, "grids")
    if not len(grids) or "code" not in grids.columns:
        return gdf
    out = gdf.copy()
    if "grid_code" not in out.columns:
        pts = gpd.GeoDataFrame(geometry=out.geometry.representative_point(), crs=out.crs)
        hit = gpd.sjoin(pts, grids[["code", "geometry"]], how="left", predicate="within")
        out["grid_code"] = hit.groupby(level=0)["code"].first().reindex(out.index).to_numpy()
    if workers and "worker" not in out.columns:
        out["worker"] = out["grid_code"].map(dict(zip(grids["code"], grids["worker"])))
    return out


def export_layer(store: Store, layer: str, path: str | Path, gdf: gpd.GeoDataFrame | None = None, *,
                 encoding: str = "utf-8", crs: str = "wgs84", workers: bool = True, plan_id: int | None = None,
                 tz: str = DEFAULT_ZONE) -> int:
    """Write ``layer`` (or the given frame of it) to ``path``; the format follows the extension.

    ``encoding`` (utf-8 or gbk) applies to Shapefiles; ``crs`` (wgs84 or gcj02) to KML/KMZ,
    whose placemarks carry the grid code and, when ``workers``, the grid's worker. Writes to a
    temporary file first and renames it, so a failed export leaves no half file. Returns the
    number of features written. Grids and blocks are those of plan ``plan_id`` (default: the
    newest), buildings carry that plan's ``grid_code``; routes are that plan's when it is given.
    Times are written in the county's zone ``tz`` with the offset (``2026-12-07T12:34:56.123456+08:00``): as text
    to the microsecond in every format (a GeoPackage DATETIME would have to be UTC).
    """
    path = Path(path)
    driver = export_format(path)
    check_zone(tz, where="--tz")
    if crs not in CRS_CHOICES:
        raise InputError(f"unknown crs {crs!r}", hint="use wgs84 or gcj02")
    if crs != "wgs84" and driver not in ("KML", "KMZ"):
        raise InputError(f"--crs {crs} applies to KML/KMZ only", hint="other formats are written in WGS-84")
    if gdf is None and layer in ("grids", "blocks", "buildings"):
        # Grid plans are versioned: grids/blocks mean the newest plan's, and buildings carry
        # that plan's grid_code (layers.grids.export_frame).
        from gridpatrol.layers.grids import export_frame

        gdf = export_frame(store, layer, plan_id)
    if gdf is None and plan_id is not None:
        table = store.table(layer)
        if "plan_id" not in table.c:
            raise InputError(f"layer {layer!r} has no grid plan", hint="--plan applies to grids, blocks, buildings, routes")
        gdf = store.read_layer(layer, where=table.c.plan_id == int(plan_id))
    if gdf is None:
        gdf = store.read_layer(layer)
    gdf = gdf.reset_index(drop=True)
    # GDAL's CSV driver makes a folder of a name not ending in .csv.
    tmp = path.with_name(path.name + (".part.csv" if driver == "CSV" else ".part"))
    tmp.unlink(missing_ok=True)
    if path.parent and not path.parent.exists():
        raise InputError(f"folder {path.parent} does not exist")
    try:
        if driver == "Shapefile":
            export_formats.write_shapefile_zip(gdf, layer, tmp, encoding=encoding, tz=tz)
        elif driver == "CSV":
            export_formats.write_csv_wkt(gdf, tmp, tz=tz)
        elif driver == "GeoJSON":
            export_formats.write_geojson(gdf, tmp, tz=tz)
        elif driver in ("KML", "KMZ"):
            export_formats.write_kml(with_grid_and_worker(store, gdf, workers=workers), layer, tmp,
                                     gcj02=crs == "gcj02", kmz=driver == "KMZ", tz=tz)
        else:
            export_formats.write_geopackage(gdf, layer, tmp, tz=tz)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(gdf)
