"""Buildings with their households: by bounding box or id (GeoJSON)."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from gridpatrol.api.deps import RowId, StoreDep, UserDep
from gridpatrol.api.ogc import parse_bbox, query_items
from gridpatrol.gis.errors import NotFoundError

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


@router.get("/{building_id}", summary="One building")
def get_building(building_id: RowId, store: StoreDep, principal: UserDep) -> dict[str, Any]:
    feats, _ = query_items(store, principal, "buildings", equals={"id": str(building_id)}, limit=1)
    if not feats:
        raise NotFoundError(f"no building with id {building_id}")
    return feats[0]
