"""Buildings with their households: by bounding box or id (GeoJSON); household register import."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from gridpatrol.api.auth import require_permission
from gridpatrol.api.deps import RowId, StoreDep, UserDep
from gridpatrol.api.ogc import parse_bbox, query_items
from gridpatrol.api.routes._imports import CONTENT_TYPES, EncodingQuery, read_upload, run_import
from gridpatrol.gis.errors import NotFoundError
from gridpatrol.layers.register_files import SUFFIXES as REGISTER_SUFFIXES
from gridpatrol.layers.registers import import_households

router = APIRouter(prefix="/buildings", tags=["buildings"])


@router.get("", summary="Buildings in a bounding box (GeoJSON)")
def list_buildings(
    store: StoreDep, principal: UserDep,
    bbox: Annotated[str, Query(max_length=400, description="minlon,minlat,maxlon,maxlat (WGS-84)")],
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**53)] = 0,
) -> dict[str, Any]:
    feats, n = query_items(store, principal, "buildings", bbox=parse_bbox(bbox), limit=limit, offset=offset)
    return {"type": "FeatureCollection", "features": feats, "numberMatched": n, "numberReturned": len(feats)}


REGISTER_TYPES = {**CONTENT_TYPES, "application/zip": ".zip",
                  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
                  "application/vnd.ms-excel": ".xls"}
REGISTER_CRS = r"^(wgs84|gcj02|bd09|cgcs2000|cgcs2000-gk3-(cm)?\d{2,3}|WGS84|GCJ02|BD09|CGCS2000|EPSG:\d{4,6})$"
REGISTER_BODY = {"requestBody": {
    "required": True,
    "description": "The register as the CLI reads it: a multipart upload (field `file`; .xlsx .xls .csv .geojson "
                   ".gpkg or a zipped Shapefile .zip), or the raw body by Content-Type (xlsx, zip, CSV, GeoJSON).",
    "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                                   "properties": {"file": {"type": "string", "format": "binary"}}}},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": {"type": "string", "format": "binary"}},
                "application/zip": {"schema": {"type": "string", "format": "binary"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/geo+json": {"schema": {"type": "object"}}}}}


@router.post("/import-households", status_code=201, summary="Import a household register (planner, admin), all or nothing",
             openapi_extra=REGISTER_BODY, responses={422: {"description": "bad rows, listed; nothing imported"},
                                                     413: {"description": "body over max_body_bytes"}})
async def import_household_register(
    request: Request, store: StoreDep, principal: UserDep,
    crs: Annotated[str | None, Query(pattern=REGISTER_CRS, description="wgs84, gcj02, bd09, cgcs2000, cgcs2000-gk3-35, "
                                     "cgcs2000-gk3-cm105 or EPSG:n (default: the file's own, else wgs84)")] = None,
    sheet: Annotated[str | None, Query(max_length=100, description="Excel sheet (default: the first with a header row)")] = None,
    map_: Annotated[str | None, Query(alias="map", max_length=2000, description="ours=theirs,… e.g. households=住户")] = None,
    mode: Annotated[str | None, Query(pattern="^(replace|add)$", description="with register data already stored: replace or add")] = None,
    tolerance_m: Annotated[float, Query(ge=0, le=500, description="join a point to the nearest building within this (m)")] = 30.0,
    encoding: EncodingQuery = None,
) -> JSONResponse:
    """The same checks and messages as ``gridpatrol import-households`` (docs/registers.md). Any bad
    row refuses the file with 422, each bad row named with the row number the clerk sees; nothing
    is stored. The counts say how many buildings each household source covers; ``dropped.unmatched``
    lists the rows that are in no building."""
    require_permission(principal, "edit_grids", "import household registers")
    upload = await read_upload(request, suffixes=REGISTER_SUFFIXES, content_types=REGISTER_TYPES)
    opts = {"crs": crs, "sheet": sheet, "map": map_, "mode": mode, "tolerance_m": tolerance_m, "encoding": encoding}
    return await run_import(request, "households", upload, lambda path: import_households(
        store, path, crs=crs, sheet=sheet, mapping=map_, mode=mode, tolerance_m=tolerance_m, encoding=encoding), opts)


@router.get("/{building_id}", summary="One building")
def get_building(building_id: RowId, store: StoreDep, principal: UserDep) -> dict[str, Any]:
    feats, _ = query_items(store, principal, "buildings", equals={"id": str(building_id)}, limit=1)
    if not feats:
        raise NotFoundError(f"no building with id {building_id}")
    return feats[0]
