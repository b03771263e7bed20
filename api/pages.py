"""HTML pages: landing page, login/logout, and the map pages (grid plan, route, incidents), from Jinja2 templates.

The pages hold no data: their scripts (api/static/js) fetch it from /maps/data/*, /lookup (same
origin), filtered by the caller's role. Every value is escaped where it is rendered: by Jinja2's
autoescape here, by textContent in the scripts.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import numpy as np
from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from gridpatrol.api import deps
from gridpatrol.api.auth import (
    AuthError,
    can,
    issue_token,
    layer_filter,
    require_permission,
)
from gridpatrol.api.deps import (
    COOKIE,
    MAX_ID,
    SettingsDep,
    StoreDep,
    client_address,
    current_user,
    get_settings,
    get_store,
)
from gridpatrol.api.display import display_crs, display_lonlat
from gridpatrol.api.errors import http_status
from gridpatrol.api.i18n import HTML_LANG, page_lang, remember_lang, translator
from gridpatrol.gis.cameras import camera_defaults
from gridpatrol.gis.errors import GridPatrolError, InputError
from gridpatrol.layers import mapdata, users
from gridpatrol.layers.logins import LoginLocked
from gridpatrol.layers.models import Camera, Incident, Route
from gridpatrol.layers.users import Principal
from jinja2 import Environment, FileSystemLoader, select_autoescape

router = APIRouter(include_in_schema=False)
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
                        autoescape=select_autoescape(["html"], default=True), trim_blocks=True, lstrip_blocks=True)


def _who(request: Request) -> Principal | None:
    """The page user, or None when there is no valid login and anonymous reading is off."""
    try:
        return current_user(request)
    except AuthError:
        return None


def _here(request: Request) -> str:
    return request.url.path + ("?" + request.url.query if request.url.query else "")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered (autoescaped) in the page language, with the user and a language switch."""
    lang = page_lang(request)
    other = "en" if lang == "zh" else "zh"
    query = {k: v for k, v in request.query_params.items() if k != "lang"} | {"lang": other}
    context.setdefault("user", _who(request))
    body = TEMPLATES.get_template(template).render(
        lang=lang, html_lang=HTML_LANG[lang], t=translator(lang), here=_here(request),
        switch_url=request.url.path + "?" + urlencode(query), title=context.pop("title", "gridpatrol"), **context)
    resp = HTMLResponse(body, status_code=status)
    remember_lang(request, resp)
    return resp


def _deny(request: Request, exc: GridPatrolError) -> HTMLResponse:
    status = http_status(exc)
    return render(request, "message.html", status, code=status, message=str(exc))


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


# ---------------------------------------------------------------- landing and login
@router.get("/", response_class=HTMLResponse)
def landing(request: Request, store: StoreDep) -> HTMLResponse:
    """Links to the maps, the API docs, OGC API and the patrol routes the caller may see."""
    user = _who(request)
    can_routes = user is not None and can(user, "read_routes")
    where = layer_filter(user, "routes", Route.__table__) if can_routes else None
    summary = mapdata.landing_summary(store)  # has_routes: to say "log in" to those who cannot read them
    my_routes, n_routes = mapdata.landing_routes(store, where) if can_routes else ([], 0)
    return render(request, "landing.html", user=user, summary=summary, my_routes=my_routes, n_routes=n_routes,
                  can_routes=can_routes, synthetic_note=mapdata.shows_synthetic(store, _synthetic_layers(user)),
                  can_incidents=user is not None and can(user, "read_incidents"), base_url=str(request.base_url))


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:  # noqa: A002
    return render(request, "login.html", title="登录 log in", next=_safe_next(next))


@router.post("/login")
def login_submit(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=500)] = "/",  # noqa: A002
):  # noqa: ANN201
    store, settings = get_store(request), get_settings(request)
    request.state.audit_detail = {"username": username, "via": "page"}
    try:
        principal = users.login(store, username, password, address=client_address(request),
                                limits=settings.login_limits)
    except LoginLocked as exc:  # a page, not the API's JSON: the person at the form reads it
        resp = render(request, "login.html", 429, title="登录 log in", next=_safe_next(next), user=None,
                      locked_s=exc.retry_after_s)
        resp.headers["Retry-After"] = str(exc.retry_after_s)
        return resp
    if principal is None:
        return render(request, "login.html", 401, title="登录 log in", next=_safe_next(next), failed=True, user=None)
    request.state.principal = principal
    token, ttl = issue_token(settings, principal)
    resp = RedirectResponse(_safe_next(next), status_code=303)
    resp.set_cookie(COOKIE, token, max_age=ttl, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                    path="/")
    return resp


def _clear_cookie(request: Request, resp: HTMLResponse | RedirectResponse) -> None:
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")


@router.post("/logout")
def logout(request: Request) -> RedirectResponse:
    """Log out: the cookie's user has every token revoked (on every device) and the cookie is cleared."""
    token = request.cookies.get(COOKIE)
    if token:
        try:
            principal = current_user(request, token=token)
        except AuthError:
            principal = None
        if principal is not None and not principal.is_anonymous:
            store = get_store(request)
            users.revoke_tokens(store, principal.name, actor=principal.name)
            deps.forget_user(store, principal.name)
    resp = RedirectResponse("/", status_code=303)
    _clear_cookie(request, resp)
    return resp


@router.get("/logout")
def logout_get(request: Request) -> RedirectResponse:
    """Old links: clears the cookie here; revoking the token needs the page's log-out button (POST)."""
    resp = RedirectResponse("/", status_code=303)
    _clear_cookie(request, resp)
    return resp


def _synthetic_layers(user: Principal | None) -> dict[str, Any]:
    """The layers with possibly synthetic rows ``user`` may read, with their row filters."""
    if user is None:
        return {}
    return {layer: layer_filter(user, layer, table) for layer, table, perm in (
        ("incidents", Incident.__table__, "read_incidents"), ("cameras", Camera.__table__, "read_cameras"))
        if can(user, perm)}


# ---------------------------------------------------------------- map pages
def _map_page(request: Request, settings, page: str, title: str, *, synthetic_note: bool = False,  # noqa: ANN001
              **config: Any) -> HTMLResponse:
    lang = page_lang(request)
    cfg = {"page": page, "lang": lang, "timezone": settings.timezone, "crs": display_crs(settings),
           "tile-url": settings.tile_url or None, **{k.replace("_", "-"): v for k, v in config.items()}}
    return render(request, "map.html", title=title, page=page, config=cfg,
                  tile_attribution=settings.tile_attribution if settings.tile_url else None,
                  synthetic_note=synthetic_note)


@router.get("/maps/grids", response_class=HTMLResponse)
def grid_map(request: Request, settings: SettingsDep,
             plan_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> HTMLResponse:
    """The grid plan: grids coloured by workload, codes, buildings, streets; validation problems."""
    if _who(request) is None:
        return _deny(request, AuthError("请先登录 log in first"))
    return _map_page(request, settings, "grids", translator(page_lang(request))("grid_map"), plan=plan_id)


@router.get("/maps/routes/{code}", response_class=HTMLResponse)
async def route_map(request: Request, code: str, store: StoreDep, settings: SettingsDep,
                    mode: Annotated[str | None, Query(pattern="^(walk|drive)$")] = None,
                    worker: Annotated[int, Query(ge=0, le=100)] = 0) -> HTMLResponse:
    """A grid's patrol route with its directions."""
    user = _who(request)
    try:
        if user is None:
            raise AuthError("请先登录 log in first")
        require_permission(user, "read_routes", "see patrol routes")
        where = layer_filter(user, "routes", Route.__table__)
        await run_in_threadpool(lambda: mapdata.visible_route(store, code, where, mode=mode, worker_index=worker))
    except GridPatrolError as exc:
        return _deny(request, exc)
    return _map_page(request, settings, "routes", translator(page_lang(request))("route_map") + " " + code,
                     code=code, mode=mode, worker=worker)


def _parse_click(click: str | None) -> tuple[float, float] | None:
    """``"lon,lat"`` (WGS-84) → (lon, lat); InputError (422) when it is not a point on Earth."""
    if click is None or not click.strip():
        return None
    try:
        lon, lat = (float(v) for v in click.split(","))
    except ValueError:
        raise InputError(f"click={click!r} is not lon,lat", hint="e.g. ?click=104.0665,30.6598 (WGS-84)") from None
    if not (np.isfinite(lon) and np.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise InputError(f"click={click!r} is not a WGS-84 longitude,latitude", hint="e.g. ?click=104.0665,30.6598")
    return lon, lat


@router.get("/maps/incidents", response_class=HTMLResponse)
def incident_map(
    request: Request, settings: SettingsDep,
    days: Annotated[float | None, Query(gt=0, le=3650, description="only the newest N days")] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    click: Annotated[str | None, Query(max_length=80, description="lon,lat (WGS-84) to look up on load")] = None,
) -> HTMLResponse:
    """Incidents (clustered) over grids, streets and buildings; click → lookup panel with camera sectors."""
    user = _who(request)
    try:
        if user is None:
            raise AuthError("请先登录 log in first")
        require_permission(user, "read_incidents", "see the incident map")
        point = _parse_click(click)
    except GridPatrolError as exc:
        return _deny(request, exc)
    initial = None
    if point is not None:
        x, y = display_lonlat(np.array([point[0]]), np.array([point[1]]), settings)
        initial = f"{float(y[0]):.8f},{float(x[0]):.8f}"
    store = get_store(request)
    return _map_page(request, settings, "incidents", translator(page_lang(request))("incident_map"),
                     synthetic_note=mapdata.shows_synthetic(store, _synthetic_layers(user)),
                     days=days, category=category, click=initial,
                     can_cams="1" if can(user, "read_cameras") else "0",
                     camera_defaults=json.dumps(camera_defaults(), separators=(",", ":")))


@router.get("/planner", response_class=HTMLResponse)
def planner_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    """网格规划工作台: the plan on our own map, the grid list, block moves with a live preview, every redraw edit."""
    user = _who(request)
    try:
        if user is None:
            raise AuthError("请先登录 log in first")
        require_permission(user, "edit_grids", "use the planner's workbench (网格规划工作台)")
    except GridPatrolError as exc:
        return _deny(request, exc)
    lang = page_lang(request)
    cfg = {"page": "planner", "lang": lang, "timezone": settings.timezone, "crs": display_crs(settings),
           "tile-url": settings.tile_url or None}
    return render(request, "planner.html", title=translator(lang)("planner"), config=cfg,
                  tile_attribution=settings.tile_attribution if settings.tile_url else None)
