"""Download a whole layer as GeoJSON or GeoPackage, filtered to what the user may see."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from gridpatrol.api.auth import hidden_fields, layer_filter, visible_frame
from gridpatrol.api.deps import MAX_ID, SettingsDep, StoreDep, UserDep
from gridpatrol.gis.errors import InputError
from gridpatrol.layers.export import export_layer
from gridpatrol.layers.grids import export_plan_id
from sqlalchemy import and_

router = APIRouter(prefix="/export", tags=["export"])
MEDIA = {"geojson": "application/geo+json", "gpkg": "application/geopackage+sqlite3", "shp.zip": "application/zip",
         "csv": "text/csv; charset=utf-8", "kml": "application/vnd.google-earth.kml+xml",
         "kmz": "application/vnd.google-earth.kmz"}


@router.get("/{layer}", summary="Export a layer (GeoJSON, GeoPackage, zipped Shapefile, CSV with WKT, KML/KMZ)")
def export(
    layer: str, store: StoreDep, principal: UserDep, settings: SettingsDep,
    format: Annotated[str, Query(pattern="^(geojson|gpkg|shp\\.zip|csv|kml|kmz)$")] = "geojson",  # noqa: A002
    encoding: Annotated[str, Query(pattern="^(utf-8|gbk)$", description="Shapefile text encoding")] = "utf-8",
    crs: Annotated[str, Query(pattern="^(wgs84|gcj02)$", description="KML/KMZ coordinates")] = "wgs84",
    plan: Annotated[int | None, Query(ge=1, le=MAX_ID, description="grids/blocks: this plan (default: the newest); "
                                                                     "routes: only this plan's")] = None,
    plan_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="the same as plan (older links)")] = None,
) -> Response:
    """The layer: the rows and fields the user may see (the file's extent, counts and metadata
    are computed from those alone; KML placemarks name a grid's worker only to who may see it).
    Grids and blocks are one plan's, as ``gridpatrol export`` writes them: the newest by default. Times are in the
    county's zone (setting ``timezone``) with the offset, to the microsecond."""
    if plan is not None and plan_id is not None and plan != plan_id:
        raise InputError(f"plan={plan} and plan_id={plan_id} disagree", hint="give one of them")
    plan_id = plan if plan is not None else plan_id
    table = store.table(layer)
    where = layer_filter(principal, layer, table)
    if layer in ("grids", "blocks"):
        plan_id = export_plan_id(store, plan_id)  # 404 for a plan that does not exist
    if plan_id is not None and "plan_id" in table.c:
        where = table.c.plan_id == plan_id if where is None else and_(where, table.c.plan_id == plan_id)
    gdf = visible_frame(principal, layer, store.read_layer(layer, where=where))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{layer}.{format}"
        export_layer(store, layer, path, gdf=gdf, encoding=encoding, crs=crs if format in ("kml", "kmz") else "wgs84",
                     workers="worker" not in hidden_fields(principal, "grids"), tz=settings.timezone)
        data = path.read_bytes()
    return Response(data, media_type=MEDIA[format],
                    headers={"Content-Disposition": f'attachment; filename="{layer}{"_" + str(plan_id) if plan_id else ""}.{format}"'})
