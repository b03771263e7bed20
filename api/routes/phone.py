"""The grid worker's phone page (/m/, a PWA): the page, its service worker and manifest, its data, incident reports and photos."""
from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from gridpatrol.api.auth import AuthError, require_permission
from gridpatrol.api.deps import RowId, SettingsDep, StoreDep, UserDep, current_user
from gridpatrol.api.display import display_crs, display_geojson, display_lonlat
from gridpatrol.api.errors import http_status
from gridpatrol.api.i18n import page_lang
from gridpatrol.api.ogc import query_items
from gridpatrol.api.pages import render
from gridpatrol.gis.errors import (
    GridPatrolError,
    InputError,
    NotFoundError,
    PermissionDenied,
)
from gridpatrol.gis.incidents import CATEGORIES
from gridpatrol.layers import mapdata, phone_data, reports
from gridpatrol.layers.users import Principal
from pydantic import BaseModel, Field

router = APIRouter(prefix="/m", tags=["phone page"])
SW_FILE = Path(__file__).resolve().parents[1] / "static" / "js" / "sw.js"
# Base64 grows a photo by 4/3; a little room for the data: prefix.
MAX_PHOTO_TEXT = reports.MAX_PHOTO_BYTES * 4 // 3 + 100


class ReportIn(BaseModel):
    key: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$",
                     description="client-generated idempotency key (a UUID): the same key twice makes one incident")
    category: str = Field(min_length=1, max_length=64, description="e.g. " + ", ".join(CATEGORIES[:4]))
    text: str | None = Field(default=None, max_length=4000)
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    crs: str = Field(default="wgs84", pattern="^(wgs84|gcj02)$", description="datum of lon/lat (the page's map)")
    reported_at: datetime | None = Field(default=None, description="the phone's time of the report, RFC 3339 with offset")
    photos: list[str] = Field(
        default_factory=list, max_length=reports.MAX_PHOTOS,
        description="JPEG/PNG/WebP as base64 or data: URLs, each at most 800 kB")


def _worker(principal: Principal) -> None:
    if principal.is_anonymous:  # 401, not 403: the phone keeps its queued reports until the worker logs in again
        raise AuthError("请先登录 log in first", hint="/login?next=/m/")
    if principal.role != "worker":
        raise PermissionDenied("只有网格员可以从手机页上报和查看巡查班次 (the phone page is for grid workers; "
                               "dispatchers report with POST /incidents)")


def _decode(photo: str, k: int) -> bytes:
    text = photo.split(",", 1)[1] if photo.startswith("data:") else photo
    if len(text) > MAX_PHOTO_TEXT:
        raise reports.PhotoTooLarge(f"第 {k} 张照片超过 {reports.MAX_PHOTO_BYTES / 1e6:.1f} MB 上限 "
                                    f"(photo {k} is over the size limit)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"第 {k} 张照片不是 base64 数据 (photo {k} is not base64)") from None


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def phone_page(request: Request, settings: SettingsDep) -> Response:
    """The worker's page: today's shifts, the route with the GPS position and next instruction, reports, track."""
    try:
        user = current_user(request)
    except AuthError:
        user = None
    if user is None or user.is_anonymous:
        return RedirectResponse("/login?next=/m/", status_code=303)
    lang = page_lang(request)
    try:
        _worker(user)
    except GridPatrolError as exc:
        status = http_status(exc)
        return render(request, "message.html", status, code=status, message=str(exc))
    cfg = {"page": "phone", "lang": lang, "timezone": settings.timezone, "crs": display_crs(settings),
           "tile-url": settings.tile_url or None, "user": user.name}
    return render(request, "phone.html", title="网格员 · " + user.name, config=cfg, categories=CATEGORIES,
                  tile_attribution=settings.tile_attribution if settings.tile_url else None)


@router.get("/sw.js", include_in_schema=False)
def service_worker() -> Response:
    """The service worker (scope /m/): a file of our own origin, so it runs under the page CSP."""
    return Response(SW_FILE.read_bytes(), media_type="text/javascript",
                    headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/m/"})


@router.get("/manifest.webmanifest", include_in_schema=False)
def manifest(request: Request) -> Response:
    """The web app manifest (install to the home screen)."""
    zh = page_lang(request) == "zh"
    body = {"name": "网格员巡查" if zh else "Grid worker", "short_name": "网格员" if zh else "Patrol",
            "start_url": "/m/", "scope": "/m/", "display": "standalone", "lang": "zh-CN" if zh else "en",
            "background_color": "#ffffff", "theme_color": "#1f6feb", "icons": []}
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/manifest+json")


@router.get("/data", summary="The worker's grids, today's shifts with directions, and the streets around (display datum)")
async def data(request: Request, store: StoreDep, settings: SettingsDep, principal: UserDep) -> dict[str, Any]:
    """For the worker's own grids of the current plan only. ``today`` is the date in the county's zone."""
    _worker(principal)
    require_permission(principal, "read_routes", "see patrol routes")
    lang = page_lang(request)
    grids = await run_in_threadpool(phone_data.worker_grids, store, principal.name)
    shifts = await run_in_threadpool(lambda: phone_data.shift_rows(store, principal.name, lang,
                                                                    timezone=settings.timezone))
    body: dict[str, Any] = {"user": principal.name, "timezone": settings.timezone,
                            "today": datetime.now(ZoneInfo(settings.timezone)).date().isoformat(),
                            "generated_at": datetime.now(ZoneInfo(settings.timezone)).isoformat(timespec="seconds"),
                            "categories": list(CATEGORIES), "crs": display_crs(settings) or "wgs84"}
    if len(grids):
        x0, y0, x1, y1 = (float(v) for v in grids.total_bounds)
        pad = 0.002
        roads, _b = await run_in_threadpool(mapdata.basemap_frames, store, (x0 - pad, y0 - pad, x1 + pad, y1 + pad))
        (bx0, bx1), (by0, by1) = display_lonlat(np.array([x0, x1]), np.array([y0, y1]), settings)
        body["bounds"] = [[float(by0), float(bx0)], [float(by1), float(bx1)]]
        body["grids"] = display_geojson(json.loads(grids.to_json(na="null", drop_id=True)), settings)
        body["streets"] = display_geojson(json.loads(roads[["name", "major", "geometry"]].to_json(na="null", drop_id=True))
                                          if len(roads) else {"type": "FeatureCollection", "features": []}, settings)
    else:
        body["bounds"], body["grids"] = None, {"type": "FeatureCollection", "features": []}
        body["streets"] = {"type": "FeatureCollection", "features": []}
    for s in shifts:
        lon, lat = display_lonlat(np.array([p[0] for p in s["line"]]), np.array([p[1] for p in s["line"]]), settings)
        s["line"] = [[round(float(y), 7), round(float(x), 7), p[2]] for x, y, p in zip(lon, lat, s["line"])]
        if s["steps"]:
            lon, lat = display_lonlat(np.array([p["lon"] for p in s["steps"]]), np.array([p["lat"] for p in s["steps"]]),
                                      settings)
            for p, x, y in zip(s["steps"], lon, lat):
                p["lat"], p["lon"] = round(float(y), 7), round(float(x), 7)
    body["shifts"] = shifts  # line: [lat, lon, metres along], steps: lat/lon in the display datum
    return body


@router.post("/reports", status_code=201, summary="Report an incident from the phone (发现/上报), once per key",
             responses={200: {"description": "this key was reported before: the same incident"},
                        403: {"description": "the position is outside the worker's grids"},
                        413: {"description": "a photo over 800 kB"}})
async def report(body: ReportIn, request: Request, store: StoreDep, principal: UserDep) -> JSONResponse:
    """The incident enters the closed loop as ``reported`` in the grid at the position (decided here),
    which must be one of the worker's grids; ``reported_at`` (the phone's time, for reports queued
    offline) must lie within the last 7 days and not in the future."""
    _worker(principal)
    require_permission(principal, "create_incident", "report incidents")
    photos = [_decode(p, k + 1) for k, p in enumerate(body.photos)]
    out = await run_in_threadpool(lambda: reports.submit_report(
        store, reporter=principal.name, key=body.key, lon=body.lon, lat=body.lat, category=body.category,
        text=body.text, reported_at=body.reported_at, photos=photos, crs=body.crs))
    request.state.audit_detail = {"incident_id": out.incident_id, "key": body.key, "created": out.created}
    return JSONResponse({"id": out.incident_id, "grid_code": out.grid_code, "state": "reported", "created": out.created,
                         "photos": out.photos, "key": body.key}, status_code=201 if out.created else 200)


def _visible(store, principal: Principal, incident_id: int) -> None:
    require_permission(principal, "read_incidents", "see incidents")
    feats, _ = query_items(store, principal, "incidents", equals={"id": str(incident_id)}, limit=1)
    if not feats:
        raise NotFoundError(f"incident {incident_id} does not exist (or is not yours to see)")


@router.get("/incidents/{incident_id}/photos", summary="The photos of an incident you may see")
def photos_of(incident_id: RowId, store: StoreDep, principal: UserDep) -> list[dict[str, Any]]:
    _visible(store, principal, incident_id)
    return [{**p, "url": f"/m/photos/{p['id']}"} for p in reports.photo_list(store, incident_id)]


@router.get("/photos/{photo_id}", summary="One photo (JPEG), if you may see its incident")
def photo(photo_id: RowId, store: StoreDep, principal: UserDep) -> Response:
    try:
        incident_id, mime, data = reports.photo_data(store, photo_id)
        _visible(store, principal, incident_id)
    except PermissionDenied:
        raise NotFoundError(f"photo {photo_id} does not exist (or is not yours to see)") from None
    return Response(data, media_type=mime, headers={"Cache-Control": "private, max-age=86400",
                                                    "Content-Disposition": f'inline; filename="photo-{photo_id}.jpg"'})
