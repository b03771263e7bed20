"""Export a layer of the store to GeoJSON or GeoPackage (WGS-84, every attribute)."""
from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import pyogrio

from gis.errors import InputError
from layers.store import Store

FORMATS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG"}


def export_layer(store: Store, layer: str, path: str | Path, gdf: gpd.GeoDataFrame | None = None) -> int:
    """Write ``layer`` (or the given frame of it) to ``path``; the format follows the extension.

    Writes to a temporary file first and renames it, so a failed export leaves no half file.
    Returns the number of features written.
    """
    path = Path(path)
    driver = FORMATS.get(path.suffix.lower())
    if driver is None:
        raise InputError(f"cannot export to {path.name}", hint="use a .geojson or .gpkg file name")
    if gdf is None and layer in ("grids", "blocks", "buildings"):
        # Grid plans are versioned: grids/blocks mean the newest plan's, and buildings carry
        # that plan's grid_code (layers.grids.export_frame).
        from layers.grids import export_frame

        gdf = export_frame(store, layer)
    if gdf is None:
        gdf = store.read_layer(layer)
    gdf = gdf.reset_index(drop=True)
    tmp = path.with_name(path.name + ".part")
    tmp.unlink(missing_ok=True)
    if path.parent and not path.parent.exists():
        raise InputError(f"folder {path.parent} does not exist")
    kwargs = {"layer": layer} if driver == "GPKG" else {}
    with warnings.catch_warnings():
        # The temporary ".part" name is not a .gpkg name; the renamed file is.
        warnings.simplefilter("ignore", RuntimeWarning)
        pyogrio.write_dataframe(gdf, tmp, driver=driver, **kwargs)
    tmp.replace(path)
    return len(gdf)
