"""Administrative areas: list, read, and import (replace by level and code) from GeoJSON."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from gridpatrol.api.auth import require_permission
from gridpatrol.api.deps import StoreDep, UserDep
from gridpatrol.api.geojson import parse_features
from gridpatrol.api.ogc import query_items
from gridpatrol.gis.errors import InputError, NotFoundError
from gridpatrol.layers.importing import LEVELS, import_areas

router = APIRouter(prefix="/areas", tags=["areas"])


@router.get("", summary="Areas (GeoJSON)")
def list_areas(
    store: StoreDep, principal: UserDep,
    level: Annotated[str | None, Query(description="county | district | street | community | extract")] = None,
) -> dict[str, Any]:
    if level is not None and level not in (*LEVELS, "extract"):
        raise InputError(f"unknown area level {level!r}", hint="use one of " + ", ".join(LEVELS))
    feats, n = query_items(store, principal, "areas", equals={"level": level} if level else {}, limit=10_000)
    return {"type": "FeatureCollection", "features": feats, "numberMatched": n}


@router.get("/{code}", summary="One area by code")
def get_area(code: str, store: StoreDep, principal: UserDep) -> dict[str, Any]:
    feats, _ = query_items(store, principal, "areas", equals={"code": code}, limit=10)
    if not feats:
        raise NotFoundError(f"no area with code {code!r}", hint="GET /areas lists them")
    return feats[0]


@router.post("", status_code=201, summary="Import areas from GeoJSON (admin, planner)")
def post_areas(
    request: Request,
    store: StoreDep,
    principal: UserDep,
    body: Annotated[dict[str, Any], Body(description="GeoJSON Feature or FeatureCollection of (Multi)Polygons")],
    level: Annotated[str, Query(description="county | district | street | community")] = "district",
    code_field: Annotated[str, Query(max_length=64, description="property holding the area code")] = "code",
    name_field: Annotated[str | None, Query(max_length=64)] = None,
    crs: Annotated[str, Query(pattern="^(wgs84|gcj02|bd09)$", description="datum of the coordinates")] = "wgs84",
) -> dict[str, Any]:
    """Replace (by level and code) the areas in the body; GCJ-02/BD-09 input is converted to WGS-84."""
    require_permission(principal, "edit_grids", "import areas")
    gdf = parse_features(body, allowed={"Polygon", "MultiPolygon"})
    if code_field not in gdf.columns:
        raise InputError(f"features have no property {code_field!r}", hint="pass code_field=<property with the area code>")
    if name_field is not None and name_field not in gdf.columns:
        raise InputError(f"features have no property {name_field!r}")
    request.state.audit_detail = {"areas": gdf[code_field].astype(str).tolist()[:100], "level": level}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "areas.geojson"
        path.write_text(gdf.to_json(), encoding="utf-8")
        res = import_areas(store, path, crs=None if crs == "wgs84" else crs, level=level,
                           code_field=code_field, name_field=name_field)
    return {"imported": res.counts, "codes": gdf[code_field].astype(str).tolist(),
            "warnings": [w.replace(path.name, "the uploaded areas", 1) for w in res.warnings]}
