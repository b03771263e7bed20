"""Cameras (dispatchers and admins only; secrecy levels respected): by bbox, by point, one."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from gridpatrol.api.auth import require_permission, visible_frame
from gridpatrol.api.deps import StoreDep, UserDep
from gridpatrol.api.ogc import parse_bbox, query_items
from gridpatrol.api.routes._imports import IMPORT_ROUTE, EncodingQuery, FileCrsQuery, read_upload, run_import
from gridpatrol.gis.errors import NotFoundError
from gridpatrol.layers.cameras import cameras_at, import_cameras

router = APIRouter(prefix="/cameras", tags=["cameras"])


@router.get("", summary="Cameras in a bounding box (GeoJSON)")
def list_cameras(
    store: StoreDep, principal: UserDep,
    bbox: Annotated[str | None, Query(max_length=400, description="minlon,minlat,maxlon,maxlat")] = None,
    project: Annotated[str | None, Query(pattern="^(skynet|sharp_eyes|other)$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**53)] = 0,
) -> dict[str, Any]:
    require_permission(principal, "read_cameras", "see cameras")
    feats, n = query_items(store, principal, "cameras", bbox=parse_bbox(bbox) if bbox else None,
                           equals={"project": project} if project else {}, limit=limit, offset=offset)
    return {"type": "FeatureCollection", "features": feats, "numberMatched": n, "numberReturned": len(feats)}


@router.get("/at", summary="Cameras around a point, ranked (in view first)")
def cameras_at_point(
    store: StoreDep, principal: UserDep,
    lon: Annotated[float, Query(ge=-180, le=180)], lat: Annotated[float, Query(ge=-90, le=90)],
    radius_m: Annotated[float | None, Query(gt=0, le=5000)] = None,
    in_view: bool = False,
) -> list[dict[str, Any]]:
    """Each with ``code``, ``distance_m``, ``in_view`` (exact field-of-view test) and ``online``."""
    require_permission(principal, "read_cameras", "see cameras")
    df = cameras_at(store, lon, lat, radius_m=radius_m, in_view_only=in_view)
    if len(df) and principal.role != "admin":
        df = df[df["secrecy_level"].notna() & (df["secrecy_level"] <= principal.max_secrecy_level)]
    df = visible_frame(principal, "cameras", df)
    keep = ["id", "code", "name", "project", "lon", "lat", "azimuth_deg", "fov_deg", "range_m", "camera_type",
            "status", "secrecy_level", "distance_m", "bearing_deg", "in_view", "online"]
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in df[[c for c in keep if c in df]].to_dict("records")]


@router.post("/import", summary="Import a camera list (admin), all or nothing", **IMPORT_ROUTE)
async def import_camera_file(
    request: Request, store: StoreDep, principal: UserDep,
    crs: FileCrsQuery = "wgs84",
    map_: Annotated[str | None, Query(alias="map", max_length=2000, description="column mapping ours=theirs,… e.g. code=ID,lon=Longitude")] = None,
    code_prefix: Annotated[str | None, Query(max_length=64, description="prefix for non-GB/T codes, e.g. baltimore:")] = None,
    project: Annotated[str | None, Query(max_length=32, description="project of rows without one: skynet, sharp_eyes, other")] = None,
    encoding: EncodingQuery = None,
) -> JSONResponse:
    """The same validation and messages as ``gridpatrol import-cameras`` (see the README's camera
    columns). Any bad row refuses the whole file with 422, each bad row named (row, CSV line or
    GeoJSON feature, field); nothing is stored. Re-importing a code updates the camera. A file
    declared WGS-84 that fits the streets far better as GCJ-02/BD-09 is imported with a warning."""
    require_permission(principal, "edit_cameras", "import cameras")
    upload = await read_upload(request)
    opts = {"crs": crs, "encoding": encoding, "map": map_, "code_prefix": code_prefix, "project": project}
    return await run_import(request, "cameras", upload, lambda path: import_cameras(
        store, path, crs=crs, mapping=map_, code_prefix=code_prefix, project=project, encoding=encoding), opts)


@router.get("/{code}", summary="One camera by device code")
def get_camera(code: str, store: StoreDep, principal: UserDep) -> dict[str, Any]:
    require_permission(principal, "read_cameras", "see cameras")
    feats, _ = query_items(store, principal, "cameras", equals={"code": code}, limit=1)
    if not feats:
        raise NotFoundError(f"no camera {code!r} (or not visible at your secrecy level)")
    return feats[0]
