"""Map click: which grid and worker, which cameras see the point, what happened nearby — per role."""
from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from gridpatrol.api.auth import lookup_view
from gridpatrol.api.deps import PgPool, UserDep, fast_path_user, pg_pool
from gridpatrol.gis.crs import gcj02_to_wgs84, wgs84_to_gcj02
from gridpatrol.gis.incidents import utc
from gridpatrol.layers.incidents import LookupView, lookup_document, lookup_json, lookup_statement
from starlette.types import ASGIApp, Receive, Scope, Send

router = APIRouter(tags=["lookup"])


def _to_gcj02(body: bytes) -> bytes:
    """The answer with the click and the camera positions in GCJ-02 (maps on GCJ-02 tiles)."""
    out = json.loads(body)
    for item in [out, *out.get("cameras", [])]:
        x, y = wgs84_to_gcj02(np.array([item["lon"]]), np.array([item["lat"]]))
        item["lon"], item["lat"] = float(x[0]), float(y[0])
    return json.dumps(out, ensure_ascii=False).encode("utf-8")


async def _pooled_answer(pool: PgPool, lon: float, lat: float, when: datetime, radius_m: float, days: float,
                         view: LookupView) -> bytes:
    """The click on PostGIS: one statement on the async pool finds the candidates, then
    layers.incidents.lookup_document tests and ranks them (the route and the fast path)."""
    sql, params = lookup_statement(lon, lat, when, radius_m=radius_m, days=days, view=view)
    return lookup_document(lon, lat, when, await pool.fetchone(sql, params), view, radius_m=radius_m)


@router.get("/lookup", summary="Map click: grid, worker, cameras in view, nearby incidents",
            response_class=Response, responses={200: {"content": {"application/json": {}}}})
async def lookup(
    request: Request, principal: UserDep,
    lon: Annotated[float, Query(ge=-180, le=180, description="longitude, WGS-84")],
    lat: Annotated[float, Query(ge=-90, le=90, description="latitude, WGS-84")],
    at: Annotated[datetime | None, Query(description="time of interest (default now), RFC 3339")] = None,
    radius_m: Annotated[float | None, Query(gt=0, le=5000, description="incident search radius, m")] = None,
    days: Annotated[float | None, Query(gt=0, le=3650, description="incidents of this many days before `at`")] = None,
    crs: Annotated[str, Query(pattern="^(wgs84|gcj02)$", description="datum of lon/lat in and out")] = "wgs84",
) -> Response:
    """What a dispatcher needs at a click: ``grid`` (code, name, worker), ``incidents`` within
    ``radius_m`` in the ``days`` before ``at``, nearest first, and ``cameras`` whose field of
    view contains the point (online first, then nearest), each with its position and optics.

    Sections the user's role may not see are left out (not emptied): viewers get the grid
    without the worker; incidents need the dispatcher, worker or admin role (workers: their own
    grids); cameras need the dispatcher or admin role, up to the user's secrecy level.
    With ``crs=gcj02`` (maps on GCJ-02 tiles) the click and the camera positions are GCJ-02.

    On PostGIS one prepared statement on the event loop finds the candidates (with the role
    filters) and gis.cameras tests them; on GeoPackage the index queries run in a thread."""
    if crs == "gcj02":
        x, y = gcj02_to_wgs84(np.array([lon]), np.array([lat]))
        lon, lat = float(x[0]), float(y[0])
    store, settings = request.app.state.store, request.app.state.settings
    view = lookup_view(principal)
    when = utc(at)
    radius = radius_m or settings.lookup_radius_m
    span = days or float(settings.lookup_incident_days)
    pool = pg_pool(request.app)
    if pool is not None:
        body = await _pooled_answer(pool, lon, lat, when, radius, span, view)
    else:
        body = await run_in_threadpool(lookup_json, store, lon, lat, when, radius_m=radius, days=span, view=view)
    if crs == "gcj02":
        body = _to_gcj02(body)
    return Response(body, media_type="application/json")


# ---------------------------------------------------------------------------------------------
# The hot path. A dispatcher's map click is the busiest request; FastAPI's routing, dependency
# solving and parameter validation cost more CPU than the statement that answers it. This ASGI
# layer answers the plain, well-formed click (GET /lookup with numbers for lon, lat and
# optionally radius_m, days, crs; a token this process has already verified; PostGIS) itself,
# with the same view, statement and document as the route above. Anything else — other or
# repeated parameters, values out of range, an unknown or unverified token, GeoPackage, any
# error — goes on to the route unchanged, which validates, authenticates and reports.

# ASCII digits only: ``\d`` and float() also take full-width and Arabic-Indic digits, which the
# route (pydantic) refuses; the fast path must never answer what the route would refuse.
_NUMBER = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_LIMITS = {"lon": (-180.0, 180.0, True), "lat": (-90.0, 90.0, True), "radius_m": (0.0, 5000.0, False),
           "days": (0.0, 3650.0, False)}


def _fast_args(query: bytes) -> dict[str, Any] | None:
    """lon, lat, radius_m, days, crs of a plain map-click query string, or None if the route
    should see it (FastAPI gives the same values for these; it also validates the rest)."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key in out or not (key in _LIMITS or key == "crs"):
            return None
        if key == "crs":
            if value not in ("wgs84", "gcj02"):
                return None
            out[key] = value
            continue
        if not _NUMBER.fullmatch(value):
            return None
        x = float(value)
        lo, hi, closed = _LIMITS[key]
        if not (lo <= x <= hi if closed else lo < x <= hi):
            return None
        out[key] = x
    return out if "lon" in out and "lat" in out else None


class LookupFastPath:
    """ASGI layer in front of the app: answers plain map clicks on PostGIS (see above)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == "/lookup":
            body = await self._answer(scope)
            if body is not None:
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope) -> bytes | None:
        args = _fast_args(scope.get("query_string", b""))
        principal = fast_path_user(scope, args)
        if principal is None:
            return None
        app = scope["app"]
        settings = app.state.settings
        try:
            lon, lat = args["lon"], args["lat"]
            if args.get("crs") == "gcj02":
                x, y = gcj02_to_wgs84(np.array([lon]), np.array([lat]))
                lon, lat = float(x[0]), float(y[0])
            view = lookup_view(principal)
            when = utc(None)
            body = await _pooled_answer(pg_pool(app), lon, lat, when, args.get("radius_m") or settings.lookup_radius_m,
                                        args.get("days") or float(settings.lookup_incident_days), view)
            if args.get("crs") == "gcj02":
                body = _to_gcj02(body)
        except Exception:  # noqa: BLE001  nothing sent yet: the route answers (and reports) instead
            return None
        scope.setdefault("state", {})["principal"] = principal  # for the access log
        return body

