"""Map click: which grid and worker, which cameras see the point, what happened nearby — per role."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import and_, func, select

from api.auth import can, layer_filter
from api.deps import SettingsDep, StoreDep, UserDep
from gis.crs import gcj02_to_wgs84, wgs84_to_gcj02
from layers.incidents import lookup as store_lookup
from layers.models import Camera, Incident
from layers.store import Store
from layers.users import Principal

router = APIRouter(tags=["lookup"])


def role_lookup(store: Store, principal: Principal, lon: float, lat: float, at: datetime | None,
                radius_m: float, days: float) -> dict[str, Any]:
    """``layers.incidents.lookup`` cut down to what ``principal`` may see.

    Cameras: only for roles that read cameras, and only up to the user's secrecy level (admins:
    all); each with its position and field of view so maps can draw the sector. Incidents: only
    for roles that read incidents (workers: their own grids). Worker names: not for viewers.
    """
    res = store_lookup(store, lon, lat, at, radius_m=radius_m, days=days)
    out: dict[str, Any] = {"lon": res["lon"], "lat": res["lat"], "at": res["at"], "grid": res["grid"]}
    if out["grid"] is not None and not can(principal, "read_workers"):
        out["grid"] = {k: v for k, v in out["grid"].items() if k != "worker"}
    with store.engine.connect() as conn:
        if can(principal, "read_incidents") and res["incidents"]:
            t = Incident.__table__
            ids = [i["id"] for i in res["incidents"]]
            where = layer_filter(principal, "incidents", t)
            cond = t.c.id.in_(ids) if where is None else and_(t.c.id.in_(ids), where)
            visible = set(conn.execute(select(t.c.id).where(cond)).scalars())
            out["incidents"] = [i for i in res["incidents"] if i["id"] in visible]
        elif can(principal, "read_incidents"):
            out["incidents"] = []
        if can(principal, "read_cameras"):
            cams = res["cameras"]
            extra = {}
            if cams:
                t = Camera.__table__
                where = layer_filter(principal, "cameras", t)
                cond = t.c.code.in_([c["code"] for c in cams])
                if where is not None:
                    cond = and_(cond, where)
                for r in conn.execute(select(t.c.code, t.c.secrecy_level, t.c.azimuth_deg, t.c.fov_deg, t.c.range_m,
                                             t.c.camera_type, func.ST_X(t.c.geom), func.ST_Y(t.c.geom)).where(cond)):
                    extra[r[0]] = {"secrecy_level": r[1], "azimuth_deg": r[2], "fov_deg": r[3], "range_m": r[4],
                                   "camera_type": r[5], "lon": r[6], "lat": r[7]}
            out["cameras"] = [{**c, **extra[c["code"]]} for c in cams if c["code"] in extra]
    return out


@router.get("/lookup", summary="Map click: grid, worker, cameras in view, nearby incidents")
async def lookup(
    store: StoreDep, settings: SettingsDep, principal: UserDep,
    lon: Annotated[float, Query(ge=-180, le=180, description="longitude, WGS-84")],
    lat: Annotated[float, Query(ge=-90, le=90, description="latitude, WGS-84")],
    at: Annotated[datetime | None, Query(description="time of interest (default now), RFC 3339")] = None,
    radius_m: Annotated[float | None, Query(gt=0, le=5000, description="incident search radius, m")] = None,
    days: Annotated[float | None, Query(gt=0, le=3650, description="incidents of this many days before `at`")] = None,
    crs: Annotated[str, Query(pattern="^(wgs84|gcj02)$", description="datum of lon/lat in and out")] = "wgs84",
) -> dict[str, Any]:
    """What a dispatcher needs at a click. Sections the user's role may not see are left out
    (not emptied): viewers get the grid only; cameras need the dispatcher or admin role.
    With ``crs=gcj02`` (maps on GCJ-02 tiles) the click and the camera positions are GCJ-02."""
    if crs == "gcj02":
        x, y = gcj02_to_wgs84(np.array([lon]), np.array([lat]))
        lon, lat = float(x[0]), float(y[0])
    out = await run_in_threadpool(
        role_lookup, store, principal, lon, lat, at,
        radius_m or settings.lookup_radius_m, days or float(settings.lookup_incident_days),
    )
    if crs == "gcj02":
        for item in [out, *out.get("cameras", [])]:
            x, y = wgs84_to_gcj02(np.array([item["lon"]]), np.array([item["lat"]]))
            item["lon"], item["lat"] = float(x[0]), float(y[0])
    return out
