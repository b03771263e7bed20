"""Patrol routes: plan (planners, admins), list, read (GeoJSON with directions), route sheet PDF, GPX."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from gridpatrol.api.auth import layer_filter, require_permission
from gridpatrol.api.deps import SettingsDep, StoreDep, UserDep
from gridpatrol.api.i18n import LANG_HELP, file_lang
from gridpatrol.api.ogc import query_items
from gridpatrol.gis.errors import NotFoundError
from gridpatrol.layers import routes as rl
from gridpatrol.layers.models import Route
from gridpatrol.layers.plan_params import RoutesParams
from gridpatrol.layers.store import Store
from gridpatrol.layers.users import Principal

router = APIRouter(prefix="/routes", tags=["routes"])


PlanIn = RoutesParams  # the plan-routes job takes the same body (layers/plan_params.py)


def _visible_routes(store: Store, principal: Principal, code: str, mode: str | None):  # noqa: ANN202
    """The stored routes of ``code`` the user may see; NotFoundError otherwise (no hint of others')."""
    require_permission(principal, "read_routes", "see patrol routes")
    routes = rl.read_routes(store, code, mode=mode)
    where = layer_filter(principal, "routes", Route.__table__)
    if where is not None:
        keep = {f["id"] for f in query_items(store, principal, "routes", equals={"grid_code": code}, limit=1000)[0]}
        routes = routes[routes["id"].isin(keep)]
        if not len(routes):
            raise NotFoundError(f"no stored route for {code} that you may see")
    return routes


@router.post("/plan", status_code=201, summary="Plan street-coverage routes for grids and store them")
async def plan(body: PlanIn, request: Request, store: StoreDep, principal: UserDep) -> list[dict[str, Any]]:
    require_permission(principal, "plan_routes", "plan routes")
    targets = rl.grid_targets(store, body.grids, body.plan_id)
    out = await run_in_threadpool(lambda: rl.plan_routes(
        store, targets, mode=body.mode, workers=body.workers, start=body.start, time_limit_s=body.time_limit_s,
        skip_failures=True))
    request.state.audit_detail = {"grids": [o.code for o in out][:100], "mode": body.mode}
    return [json.loads(json.dumps({"code": o.code, "ok": o.ok, "error": o.error, "summary": o.summary}, default=str))
            for o in out]


@router.get("", summary="Stored routes (summary, no geometry)")
def list_routes(store: StoreDep, principal: UserDep,
                limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                offset: Annotated[int, Query(ge=0, le=2**53)] = 0) -> list[dict[str, Any]]:
    require_permission(principal, "read_routes", "see patrol routes")
    feats, _ = query_items(store, principal, "routes", limit=limit, offset=offset)
    keep = ("id", "grid_code", "kind", "mode", "worker_index", "length_m", "required_m", "lower_bound_m", "duration_s", "created_at")
    return [{k: f["id"] if k == "id" else f["properties"].get(k) for k in keep} for f in feats]


@router.get("/{code}", summary="A grid's route(s) as GeoJSON with turn-by-turn directions")
def get_route(code: str, store: StoreDep, principal: UserDep,
              mode: Annotated[str | None, Query(pattern="^(walk|drive)$")] = None) -> dict[str, Any]:
    routes = _visible_routes(store, principal, code, mode)
    body = json.loads(routes.to_json(na="null", drop_id=True, default=str))
    for f in body["features"]:
        p = f["properties"]
        p["directions"] = json.loads(p.pop("directions_json") or "[]")
        p["stats"] = json.loads(p.pop("stats_json") or "{}")
    return body


def _row(store: Store, principal: Principal, code: str, mode: str | None, worker: int):  # noqa: ANN202
    routes = _visible_routes(store, principal, code, mode)
    sel = routes[routes["worker_index"] == worker - 1]
    if not len(sel):
        raise NotFoundError(f"route {code} has no worker {worker}", hint=f"it has {routes['worker_index'].nunique()} route(s)")
    return sel


@router.get("/{code}/sheet.pdf", summary="A4 route sheet (PDF)")
async def sheet(code: str, request: Request, store: StoreDep, settings: SettingsDep, principal: UserDep,
                mode: Annotated[str | None, Query(pattern="^(walk|drive)$")] = None,
                worker: Annotated[int, Query(ge=1, le=100)] = 1,
                lang: Annotated[str | None, Query(pattern="^(zh|en)$", description=LANG_HELP)] = None) -> Response:
    _row(store, principal, code, mode, worker)
    lang = file_lang(request)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sheet.pdf"
        await run_in_threadpool(lambda: rl.print_route(store, code, out, mode=mode, worker_index=worker - 1, lang=lang,
                                                        timezone=settings.timezone))
        data = out.read_bytes()
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="route-{code}.pdf"'})


@router.get("/{code}/route.gpx", summary="GPX track (WGS-84, or GCJ-02 for Chinese phone map apps)")
async def gpx(code: str, request: Request, store: StoreDep, principal: UserDep,
              mode: Annotated[str | None, Query(pattern="^(walk|drive)$")] = None,
              worker: Annotated[int, Query(ge=1, le=100)] = 1,
              crs: Annotated[str, Query(pattern="^(wgs84|gcj02)$")] = "wgs84",
              lang: Annotated[str | None, Query(pattern="^(zh|en)$", description=LANG_HELP)] = None) -> Response:
    from gridpatrol.gis.routesheet import write_gpx

    sel = _row(store, principal, code, mode, worker)
    lang = file_lang(request)
    sr = rl.sheet_route(store, sel.iloc[0], lang=lang)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "route.gpx"
        write_gpx(out, sr, crs=crs, lang=lang)
        data = out.read_bytes()
    return Response(data, media_type="application/gpx+xml",
                    headers={"Content-Disposition": f'attachment; filename="route-{code}.gpx"'})


