"""Incidents: create, list (bbox/time/category/state), read with events, advance through the closed loop."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from gridpatrol.api.auth import require_permission
from gridpatrol.api.deps import RowId, StoreDep, UserDep
from gridpatrol.api.ogc import parse_bbox, parse_datetime, query_items
from gridpatrol.api.routes._imports import IMPORT_ROUTE, EncodingQuery, FileCrsQuery, read_upload, run_import
from gridpatrol.gis.errors import InputError, NotFoundError
from gridpatrol.gis.incidents import STATES
from gridpatrol.layers import incidents as inc
from pydantic import BaseModel, Field

router = APIRouter(prefix="/incidents", tags=["incidents"])


class IncidentIn(BaseModel):
    lon: float = Field(ge=-180, le=180, description="longitude (in `crs`)")
    lat: float = Field(ge=-90, le=90, description="latitude (in `crs`)")
    category: str = Field(min_length=1, max_length=64, description="e.g. 矛盾纠纷, 治安, 消防安全, 环境卫生")
    description: str | None = Field(default=None, max_length=4000)
    occurred_at: datetime | None = Field(default=None, description="RFC 3339; default now")
    source: str | None = Field(default=None, max_length=200)
    reporter: str | None = Field(default=None, max_length=200)
    crs: str = Field(default="wgs84", pattern="^(wgs84|gcj02|bd09)$")


class AdvanceIn(BaseModel):
    to: str = Field(min_length=1, max_length=32, description="next state: " + ", ".join(f"{k} ({v})" for k, v in STATES.items()))
    note: str | None = Field(default=None, max_length=4000)
    expected_version: int | None = Field(default=None, ge=1, le=2**31 - 1, description="refuse if the incident changed since")


def _visible_incident(store, principal, incident_id: int) -> dict[str, Any]:  # noqa: ANN001
    feats, _ = query_items(store, principal, "incidents", equals={"id": str(incident_id)}, limit=1)
    if not feats:
        raise NotFoundError(f"incident {incident_id} does not exist (or is not yours to see)")
    return feats[0]


@router.post("", status_code=201, summary="Report an incident (发现)")
def create(body: IncidentIn, request: Request, store: StoreDep, principal: UserDep) -> dict[str, Any]:
    """Registers the incident with its grid and worker attached; flags a possible duplicate."""
    require_permission(principal, "create_incident", "report incidents")
    out = inc.create_incident(
        store, lon=body.lon, lat=body.lat, category=body.category, occurred_at=body.occurred_at,
        description=body.description, source=body.source, reporter=body.reporter or principal.name,
        actor=principal.name, crs=body.crs,
    )
    request.state.audit_detail = {"incident_id": out["id"], "category": body.category}
    return {k: (v.isoformat() if isinstance(v, datetime) else (v.item() if hasattr(v, "item") else v)) for k, v in out.items()}


@router.post("/import", summary="Import incidents (dispatcher, admin), all or nothing", **IMPORT_ROUTE)
async def import_incident_file(
    request: Request, store: StoreDep, principal: UserDep,
    crs: FileCrsQuery = "wgs84",
    map_: Annotated[str | None, Query(alias="map", max_length=2000, description="column mapping ours=theirs,… e.g. occurred_at=CrimeDate,lon=Longitude")] = None,
    state: Annotated[str, Query(min_length=1, max_length=32, description="state of rows without one (closed for history)")] = "reported",
    tz: Annotated[str, Query(min_length=1, max_length=64, description="time zone of times without one, e.g. Asia/Shanghai")] = "UTC",
    encoding: EncodingQuery = None,
) -> JSONResponse:
    """The same validation and messages as ``gridpatrol import-incidents``: CSV, a JSON array of
    records or GeoJSON; grids and workers attached, duplicates flagged. A row with a bad time,
    category, state or coordinates refuses the whole file with 422 (rows named; nothing stored);
    records without any coordinates are skipped and listed, as on the command line."""
    require_permission(principal, "import_incidents", "import incidents")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"unknown time zone {tz!r}", hint="e.g. Asia/Shanghai, UTC, America/New_York") from None
    default_state = inc.normalize_state(state)
    upload = await read_upload(request)
    opts = {"crs": crs, "encoding": encoding, "map": map_, "state": default_state, "tz": tz}
    return await run_import(request, "incidents", upload, lambda path: inc.import_incidents(
        store, path, crs=crs, mapping=map_, state=default_state, tz=tz, actor=principal.name,
        source=f"upload by {principal.name}", encoding=encoding), opts)


@router.get("", summary="Incidents by bbox, time, category and state (GeoJSON)")
def list_incidents(
    store: StoreDep, principal: UserDep,
    bbox: Annotated[str | None, Query(max_length=400)] = None,
    datetime_: Annotated[str | None, Query(alias="datetime", max_length=100, description="instant or a/b, ../b, a/..")] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(max_length=32)] = None,
    grid_code: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**53)] = 0,
) -> dict[str, Any]:
    require_permission(principal, "read_incidents", "see incidents")
    equals = {k: v for k, v in (("category", category), ("grid_code", grid_code)) if v is not None}
    if state is not None:
        equals["state"] = inc.normalize_state(state)
    feats, n = query_items(store, principal, "incidents", bbox=parse_bbox(bbox) if bbox else None,
                           time_range=parse_datetime(datetime_) if datetime_ else None,
                           equals=equals, limit=limit, offset=offset)
    return {"type": "FeatureCollection", "features": feats, "numberMatched": n, "numberReturned": len(feats)}


@router.get("/overdue", summary="Open incidents past their stage deadline")
def overdue(store: StoreDep, principal: UserDep) -> list[dict[str, Any]]:
    require_permission(principal, "read_incidents", "see incidents")
    df = inc.overdue_incidents(store)
    if principal.role == "worker":
        visible = {f["id"] for f in query_items(store, principal, "incidents", limit=10_000)[0]}
        df = df[df["id"].isin(visible)]
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else (v.item() if hasattr(v, "item") else v)) for k, v in r.items()}
            for r in df.to_dict("records")]


@router.get("/{incident_id}", summary="One incident with its events")
def get_incident(incident_id: RowId, store: StoreDep, principal: UserDep) -> dict[str, Any]:
    require_permission(principal, "read_incidents", "see incidents")
    feat = _visible_incident(store, principal, incident_id)
    feat["properties"]["events"] = _events(store, incident_id)
    return feat


def _events(store, incident_id: int) -> list[dict[str, Any]]:  # noqa: ANN001
    df = inc.incident_events(store, incident_id)
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else (v.item() if hasattr(v, "item") else v)) for k, v in r.items()}
            for r in df.to_dict("records")]


@router.get("/{incident_id}/events", summary="Events of an incident, in order")
def events(incident_id: RowId, store: StoreDep, principal: UserDep) -> list[dict[str, Any]]:
    require_permission(principal, "read_incidents", "see incidents")
    _visible_incident(store, principal, incident_id)
    return _events(store, incident_id)


@router.post("/{incident_id}/advance", summary="Move an incident to its next state")
def advance(incident_id: RowId, body: AdvanceIn, request: Request, store: StoreDep, principal: UserDep) -> dict[str, Any]:
    """Illegal transitions are refused (409) with the legal ones named; two racing moves: one wins,
    the other gets 409. Workers may move only incidents of their own grids."""
    require_permission(principal, "advance_incident", "move incidents")
    _visible_incident(store, principal, incident_id)
    request.state.audit_detail = {"incident_id": incident_id, "to": body.to}
    return inc.advance_incident(store, incident_id, body.to, actor=principal.name, note=body.note,
                                expected_version=body.expected_version)
