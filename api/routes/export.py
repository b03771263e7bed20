"""Download a whole layer as GeoJSON or GeoPackage, filtered to what the user may see."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy import and_

from api.auth import layer_filter, visible_frame
from api.deps import MAX_ID, StoreDep, UserDep
from layers.export import export_layer

router = APIRouter(prefix="/export", tags=["export"])
MEDIA = {"geojson": "application/geo+json", "gpkg": "application/geopackage+sqlite3"}


@router.get("/{layer}", summary="Export a layer (GeoJSON or GeoPackage)")
def export(
    layer: str, store: StoreDep, principal: UserDep,
    format: Annotated[str, Query(pattern="^(geojson|gpkg)$")] = "geojson",  # noqa: A002
    plan_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="grids/blocks: only this plan version")] = None,
) -> Response:
    """The layer in WGS-84: the rows and fields the user may see (the file's extent, counts and
    metadata are computed from those alone)."""
    table = store.table(layer)
    where = layer_filter(principal, layer, table)
    if plan_id is not None and "plan_id" in table.c:
        where = table.c.plan_id == plan_id if where is None else and_(where, table.c.plan_id == plan_id)
    gdf = visible_frame(principal, layer, store.read_layer(layer, where=where))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{layer}.{format}"
        export_layer(store, layer, path, gdf=gdf)
        data = path.read_bytes()
    return Response(data, media_type=MEDIA[format],
                    headers={"Content-Disposition": f'attachment; filename="{layer}{"_" + str(plan_id) if plan_id else ""}.{format}"'})
