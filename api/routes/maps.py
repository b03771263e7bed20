"""JSON/GeoJSON the map pages draw (same origin), filtered by the caller's role and in the map's display datum."""
from __future__ import annotations

import json
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from gridpatrol.api.auth import can, layer_filter, require_permission, visible_frame
from gridpatrol.api.deps import MAX_ID, SettingsDep, StoreDep, UserDep
from gridpatrol.api.display import display_geojson, display_lonlat
from gridpatrol.layers import mapdata
from gridpatrol.layers.models import Camera, Incident, Route

router = APIRouter(prefix="/maps/data", tags=["map pages"])
PlanQ = Annotated[int | None, Query(ge=1, le=MAX_ID, description="plan id (default: newest)")]


def _geojson(df) -> dict[str, Any]:  # noqa: ANN001
    return json.loads(df.to_json(na="null", drop_id=True)) if len(df) else {"type": "FeatureCollection", "features": []}


@router.get("/grids", summary="A plan's grids with workload colours and labels, its band, and its check problems")
async def grids(store: StoreDep, settings: SettingsDep, principal: UserDep, plan_id: PlanQ = None) -> dict[str, Any]:
    """Grids (code, name, households, …, ``fill`` colour, ``label``; ``worker`` only for roles that
    may see workers), label points inside each grid, the band and colour stops of the legend, and
    ``problems`` of check-grids."""
    g, band = await run_in_threadpool(mapdata.plan_frame, store, plan_id)
    g = visible_frame(principal, "grids", g)
    problems = await run_in_threadpool(mapdata.plan_problems, store, band["plan_id"])
    labels = g[["code", "label"]].set_geometry(g.geometry.representative_point())
    return {"band": band, "grids": display_geojson(_geojson(g), settings),
            "labels": display_geojson(_geojson(labels), settings),
            "problems": display_geojson(_geojson(problems) if problems is not None else _geojson(g.iloc[:0]), settings)}


@router.get("/basemap", summary="Our own streets and buildings around a plan's grids (the offline basemap)")
async def basemap(store: StoreDep, settings: SettingsDep, principal: UserDep, plan_id: PlanQ = None) -> dict[str, Any]:
    """Streets (name, highway, major), buildings (name, households) and villages (name, place: areas
    and nodes) within the plan's extent, and that extent."""
    where = layer_filter(principal, "incidents", Incident.__table__) if can(principal, "read_incidents") else False
    ext = await run_in_threadpool(mapdata.map_extent, store, plan_id, where)
    roads, buildings = await run_in_threadpool(mapdata.basemap_frames, store, ext)
    places = await run_in_threadpool(mapdata.place_frame, store, ext)
    (x0, x1), (y0, y1) = display_lonlat(np.array([ext[0], ext[2]]), np.array([ext[1], ext[3]]), settings)
    return {"bounds": [[float(y0), float(x0)], [float(y1), float(x1)]],
            "streets": display_geojson(_geojson(roads), settings),
            "buildings": display_geojson(_geojson(buildings), settings),
            "places": display_geojson(_geojson(places), settings)}


@router.get("/incidents", summary="Incidents for the incident map (clustered there), newest first")
async def incidents(
    store: StoreDep, settings: SettingsDep, principal: UserDep,
    days: Annotated[float | None, Query(gt=0, le=3650, description="only the newest N days")] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Rows ``[id, category, state, occurred_at (UTC, ISO 8601), lon, lat]`` the caller may see, display datum."""
    require_permission(principal, "read_incidents", "see the incident map")
    where = layer_filter(principal, "incidents", Incident.__table__)
    pts = await run_in_threadpool(lambda: mapdata.incident_points(store, where, days=days, category=category))
    for p in pts:
        p["occurred_at"] = p["occurred_at"].isoformat()
    return _point_rows(pts, ["id", "category", "state", "occurred_at"], settings)


@router.get("/cameras", summary="Cameras for the incident map (before any click), up to the caller's secrecy level")
async def cameras(store: StoreDep, settings: SettingsDep, principal: UserDep) -> dict[str, Any]:
    """Rows ``[code, name, project, camera_type, status, lon, lat]`` the caller may see, display datum."""
    require_permission(principal, "read_cameras", "see cameras on the map")
    where = layer_filter(principal, "cameras", Camera.__table__)
    pts = await run_in_threadpool(mapdata.camera_points, store, where)
    return _point_rows(pts, ["code", "name", "project", "camera_type", "status"], settings)


def _point_rows(pts: list[dict[str, Any]], columns: list[str], settings: Any) -> dict[str, Any]:
    """``{"columns", "rows"}`` of ``pts``: the ``columns`` then lon, lat in the display datum (1e-7°)."""
    lon, lat = display_lonlat(np.array([p["lon"] for p in pts]), np.array([p["lat"] for p in pts]), settings)
    rows = [[p[k] for k in columns] + [round(float(x), 7), round(float(y), 7)] for p, x, y in zip(pts, lon, lat)]
    return {"columns": [*columns, "lon", "lat"], "rows": rows}


@router.get("/routes/{code}", summary="A grid's stored patrol route with its grid and directions")
async def route(
    code: str, store: StoreDep, settings: SettingsDep, principal: UserDep,
    mode: Annotated[str | None, Query(pattern="^(walk|drive)$")] = None,
    worker: Annotated[int, Query(ge=0, le=100, description="worker index, 0 for the first")] = 0,
) -> dict[str, Any]:
    """The route line and numbered steps (gis.routesheet.route_geojson), the grid polygon and totals."""
    import shapely
    from gridpatrol.gis.routesheet import route_geojson

    require_permission(principal, "read_routes", "see patrol routes")
    where = layer_filter(principal, "routes", Route.__table__)
    sr = await run_in_threadpool(lambda: mapdata.visible_route(store, code, where, mode=mode, worker_index=worker))
    grid = ({"type": "Feature", "properties": {"code": sr.grid_code}, "geometry": shapely.geometry.mapping(sr.grid)}
            if sr.grid is not None else None)
    body = {"route": route_geojson(sr), "grid": grid}
    return display_geojson(json.loads(json.dumps(body, default=float)), settings)
