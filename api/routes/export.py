"""Download a whole layer as GeoJSON or GeoPackage, filtered to what the user may see."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.auth import layer_filter, visible_frame
from api.deps import StoreDep, UserDep
from layers.export import export_layer

router = APIRouter(prefix="/export", tags=["export"])
MEDIA = {"geojson": "application/geo+json", "gpkg": "application/geopackage+sqlite3"}


@router.get("/{layer}", summary="Export a layer (GeoJSON or GeoPackage)")
def export(
    layer: str, store: StoreDep, principal: UserDep,
    format: Annotated[str, Query(pattern="^(geojson|gpkg)$")] = "geojson",  # noqa: A002
) -> Response:
    """The layer in WGS-84: the rows and fields the user may see (the file's extent, counts and
    metadata are computed from those alone)."""
    table = store.table(layer)
    where = layer_filter(principal, layer, table)
    gdf = visible_frame(principal, layer, store.read_layer(layer, where=where))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{layer}.{format}"
        export_layer(store, layer, path, gdf=gdf)
        data = path.read_bytes()
    return Response(data, media_type=MEDIA[format],
                    headers={"Content-Disposition": f'attachment; filename="{layer}.{format}"'})
