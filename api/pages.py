"""HTML pages: landing page, login, and the map pages (grid plan, route, incidents) from local assets."""
from __future__ import annotations

import html
import json
from typing import Annotated, Any

import folium
import numpy as np
import shapely
from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from branca.element import MacroElement
from folium.plugins import FastMarkerCluster
from jinja2 import Template
from sqlalchemy import and_, func, select

from api.auth import AuthError, can, issue_token, layer_filter, require_permission
from api.config import Settings
from api.deps import COOKIE, MAX_ID, SettingsDep, StoreDep, client_address, current_user, get_settings, get_store
from api.static_assets import render_offline
from gis.crs import wgs84_to_gcj02
from gis.errors import GridPatrolError, InputError, NotFoundError
from layers import users
from layers.models import Grid, GridPlan, Incident, Route
from layers.store import Store
from layers.users import Principal

router = APIRouter(include_in_schema=False)
OSM_ATTRIBUTION = "Map data © OpenStreetMap contributors (ODbL)"
STYLE = """<style>
body{font-family:"Noto Sans CJK SC","WenQuanYi Zen Hei",sans-serif;margin:2em auto;max-width:52em;padding:0 1em;color:#222}
a{color:#0b5394}h1{font-size:1.6em}li{margin:.3em 0}.muted{color:#777;font-size:.9em}
form input{font-size:1em;margin:.2em 0;padding:.3em}table{border-collapse:collapse}td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left}
</style>"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!DOCTYPE html><html lang="zh"><head><meta charset="utf-8"><title>{html.escape(title)}</title>{STYLE}</head>'
        f"<body>{body}</body></html>",
        status_code=status,
    )


def _who(request: Request) -> Principal | None:
    """The page user, or None when there is no valid login and anonymous reading is off."""
    try:
        return current_user(request)
    except AuthError:
        return None


def _deny(request: Request, exc: GridPatrolError) -> HTMLResponse:
    nxt = html.escape(str(request.url.path) + ("?" + request.url.query if request.url.query else ""), quote=True)
    return _page(
        "gridpatrol", f"<h1>{exc.http_status}</h1><p>{html.escape(str(exc))}</p>"
        f'<p><a href="/login?next={nxt}">log in</a> · <a href="/">home</a></p>', exc.http_status,
    )


# ---------------------------------------------------------------- landing and login
@router.get("/", response_class=HTMLResponse)
def landing(request: Request, store: StoreDep) -> HTMLResponse:
    """Links to the maps, the API docs, OGC API and a sample route sheet."""
    user = _who(request)
    with store.engine.connect() as c:
        plan = c.execute(select(func.max(GridPlan.id))).scalar()
        n_grids = c.execute(select(func.count()).select_from(Grid).where(Grid.plan_id == plan)).scalar() if plan else 0
        route = c.execute(select(Route.grid_code, Route.mode).order_by(Route.id).limit(1)).first()
    who = ("anonymous (public layers only)" if user is None or user.is_anonymous
           else f"{html.escape(user.name)} ({html.escape(user.role)})")
    items = [f'<li><a href="/maps/grids">Grid plan map 网格图</a> <span class="muted">plan {plan or "—"}, {n_grids} grids</span></li>']
    if user is not None and can(user, "read_incidents"):
        items.append('<li><a href="/maps/incidents">Incident map 事件地图</a> <span class="muted">click anywhere: grid, worker, cameras in view, nearby incidents</span></li>')
    if route is not None and user is not None and can(user, "read_routes"):
        code = html.escape(route[0], quote=True)
        items.append(f'<li><a href="/maps/routes/{code}">Patrol route map 巡查路线</a> of grid {code}</li>')
        items.append(f'<li><a href="/routes/{code}/sheet.pdf">Sample route sheet (PDF) 路线单</a> · '
                     f'<a href="/routes/{code}/route.gpx">GPX</a></li>')
    elif route is not None:
        items.append('<li class="muted">Route maps and route sheets: log in as planner, dispatcher, worker or admin</li>')
    items += [
        '<li><a href="/docs">API documentation (OpenAPI) 接口文档</a></li>',
        '<li><a href="/ogc">OGC API – Features</a> <span class="muted">(QGIS: Layer ▸ Add Layer ▸ WFS / OGC API – Features, URL <code>'
        f'{html.escape(str(request.base_url))}ogc</code>)</span></li>',
        '<li><a href="/readyz">Readiness</a></li>',
    ]
    login = ('<a href="/logout">log out</a>' if user is not None and not user.is_anonymous else '<a href="/login">log in</a>')
    return _page("gridpatrol", f"<h1>gridpatrol 网格化服务管理</h1><p>Signed in as {who} · {login}</p>"
                 f"<ul>{''.join(items)}</ul><p class='muted'>{OSM_ATTRIBUTION}. Cameras and incidents of the Chinese "
                 "demo areas are synthetic.</p>")


@router.get("/login", response_class=HTMLResponse)
def login_form(next: str = "/") -> HTMLResponse:  # noqa: A002
    nxt = html.escape(next if next.startswith("/") and not next.startswith("//") else "/", quote=True)
    return _page("log in", f'<h1>Log in 登录</h1><form method="post" action="/login"><input type="hidden" name="next" value="{nxt}">'
                 '<p><input name="username" placeholder="user name" autocomplete="username" required></p>'
                 '<p><input name="password" type="password" placeholder="password" autocomplete="current-password" required></p>'
                 '<p><input type="submit" value="log in"></p></form>')


@router.post("/login")
def login_submit(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=500)] = "/",  # noqa: A002
):  # noqa: ANN201
    store, settings = get_store(request), get_settings(request)
    request.state.audit_detail = {"username": username, "via": "page"}
    principal = users.login(store, username, password, address=client_address(request), limits=settings.login_limits)
    if principal is None:
        return _page("log in", '<h1>Log in</h1><p>Wrong user name or password. <a href="/login">Try again</a></p>', 401)
    request.state.principal = principal
    token, ttl = issue_token(settings, principal)
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(COOKIE, token, max_age=ttl, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return resp


@router.get("/logout")
def logout() -> RedirectResponse:
    resp = RedirectResponse("/", status_code=303)
    resp.delete_cookie(COOKIE)
    return resp


# ---------------------------------------------------------------- map helpers
def _display(settings: Settings):  # noqa: ANN202
    """Coordinates transform for display: GCJ-02 when the configured tiles are GCJ-02."""
    return "gcj02" if settings.tile_url and settings.tile_crs == "gcj02" else None


def _shift_coords(obj: Any, fn) -> Any:  # noqa: ANN001
    if isinstance(obj, list) and obj and isinstance(obj[0], (int, float)):
        x, y = fn(np.array([obj[0]]), np.array([obj[1]]))
        return [float(x[0]), float(y[0]), *obj[2:]]
    if isinstance(obj, list):
        return [_shift_coords(o, fn) for o in obj]
    return obj


def _shift_geojson(data: Any, fn) -> Any:  # noqa: ANN001
    if isinstance(data, dict):
        return {k: (_shift_coords(v, fn) if k == "coordinates" else _shift_geojson(v, fn)) for k, v in data.items()}
    if isinstance(data, list):
        return [_shift_geojson(v, fn) for v in data]
    return data


def display_latlon(points: list, settings: Settings) -> list:
    """``[lat, lon, …]`` rows (WGS-84) → the map's display datum (GCJ-02 on GCJ-02 tiles); extra items kept."""
    if _display(settings) != "gcj02" or not points:
        return [list(p) for p in points]
    lat = np.array([p[0] for p in points], float)
    lon = np.array([p[1] for p in points], float)
    x, y = wgs84_to_gcj02(lon, lat)
    return [[float(b), float(a), *p[2:]] for a, b, p in zip(x, y, points)]


def to_display(m: folium.Map, settings: Settings) -> folium.Map:
    """Add the optional tile layer; with GCJ-02 tiles, shift every layer of ``m`` to GCJ-02 so they line up.

    Shifted: GeoJSON layers, markers and lines, the clustered markers' data, the map's centre and
    its fitted bounds (so the first view shows the same place). Clicks on such a map give GCJ-02
    coordinates: the incident map's lookup sends ``crs=gcj02`` and gets GCJ-02 positions back.
    """
    if not settings.tile_url:
        return m
    if _display(settings) == "gcj02":
        def latlon(obj: Any) -> bool:
            return isinstance(obj, (list, tuple)) and len(obj) >= 2 and all(isinstance(v, (int, float)) for v in obj[:2])

        def walk(el) -> None:  # noqa: ANN001
            if isinstance(el, folium.GeoJson) and isinstance(el.data, dict):
                el.data = _shift_geojson(el.data, wgs84_to_gcj02)
            loc = getattr(el, "location", None)
            if latlon(loc) and len(loc) == 2:
                el.location = display_latlon([loc], settings)[0]
            locs = getattr(el, "locations", None)
            if isinstance(locs, list) and locs and latlon(locs[0]):
                el.locations = display_latlon(locs, settings)
            if isinstance(el, folium.map.FitBounds) and all(latlon(b) for b in el.bounds):
                el.bounds = display_latlon(el.bounds, settings)
            if isinstance(el, FastMarkerCluster) and isinstance(el.data, list) and el.data and latlon(el.data[0]):
                el.data = display_latlon(el.data, settings)  # rows [lat, lon, tooltip]
            for child in el._children.values():
                walk(child)

        walk(m)
    # Tiles always draw below vector layers (Leaflet's tile pane), whatever the order added.
    folium.TileLayer(tiles=settings.tile_url, attr=settings.tile_attribution or "basemap", name="basemap",
                     overlay=False, control=True).add_to(m)
    return m


def _controls_last(m: folium.Map) -> None:
    """Move layer controls after every layer: a control lists the layers that exist when its
    script runs, so layers added after it (problems, basemap) would break the page."""
    for key in [k for k, v in m._children.items() if isinstance(v, folium.LayerControl)]:
        m._children[key] = m._children.pop(key)


def _html(m: folium.Map, settings: Settings) -> HTMLResponse:
    to_display(m, settings)
    _controls_last(m)
    return HTMLResponse(render_offline(m, base_url="/static/vendor"))


def _basemap(store: Store, bbox: tuple[float, float, float, float]) -> folium.Map:
    """A map without tiles showing our own streets and buildings in ``bbox`` (the default basemap)."""
    minx, miny, maxx, maxy = bbox
    # max_zoom: marker clusters need it, and without tiles nothing else sets it.
    m = folium.Map(location=[(miny + maxy) / 2, (minx + maxx) / 2], tiles=None, control_scale=True, prefer_canvas=True,
                   maxZoom=20)
    roads = store.read_layer("roads", bbox=bbox)
    buildings = store.read_layer("buildings", bbox=bbox)
    buildings = buildings[buildings["osm_type"] != "landuse"] if len(buildings) else buildings
    if len(roads):
        r = roads[["name", "highway", "geometry"]].copy()
        r["geometry"] = shapely.set_precision(r.geometry.values, 1e-6)
        major = {"motorway", "trunk", "primary", "secondary"}
        folium.GeoJson(r, name="streets 街道", style_function=lambda f: {
            "color": "#8c8c8c", "weight": 3 if f["properties"]["highway"] in major else 1.2},
            tooltip=folium.GeoJsonTooltip(["name"], labels=False)).add_to(m)
    if len(buildings):
        b = buildings[["name", "households", "geometry"]].copy()
        b["geometry"] = shapely.set_precision(b.geometry.values, 1e-6)
        folium.GeoJson(b, name="buildings 建筑", style_function=lambda f: {
            "color": "#777", "weight": 0.5, "fillColor": "#bbb", "fillOpacity": 0.6}).add_to(m)
    m.fit_bounds([[miny, minx], [maxy, maxx]])
    return m


def _attribution(m: folium.Map, extra: str = "") -> None:
    m.get_root().html.add_child(folium.Element(
        '<div id="gp-attribution" style="position:fixed;bottom:4px;left:4px;z-index:9999;background:white;'
        f'padding:2px 6px;font-size:11px">{html.escape(OSM_ATTRIBUTION)}{html.escape(extra)}</div>'))


# ---------------------------------------------------------------- map pages
@router.get("/maps/grids", response_class=HTMLResponse)
async def grid_map(request: Request, store: StoreDep, settings: SettingsDep,
                   plan_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> HTMLResponse:
    """The grid plan: grids coloured by workload, codes, buildings, streets; validation problems."""
    from layers import grids as grid_layer

    if _who(request) is None:
        return _deny(request, AuthError("log in first"))

    def build() -> folium.Map:
        m = grid_layer.plan_map(store, plan_id)
        try:
            check, _pid = grid_layer.check_grids(store, plan_id)
            problems = check.problems
            if problems is not None and len(problems):
                p = problems.to_crs(4326) if problems.crs is not None else problems
                p = p[[c for c in p.columns if c in ("kind", "severity", "message", "grid_code", "code")] + ["geometry"]]
                p = p[~p.geometry.is_empty & p.geometry.notna()]
                # Problems are highlighted in magenta, with their message on hover.
                folium.GeoJson(p, name="problems 问题", marker=folium.CircleMarker(radius=9), style_function=lambda f: {
                    "color": "#ff00ff", "weight": 4, "fillColor": "#ff00ff", "fillOpacity": 0.5},
                    tooltip=folium.GeoJsonTooltip([c for c in p.columns if c != "geometry"]) if len(p.columns) > 1 else None,
                ).add_to(m)
        except GridPatrolError:
            pass
        return m

    try:
        m = await run_in_threadpool(build)
    except GridPatrolError as exc:
        return _deny(request, exc)
    return _html(m, settings)


@router.get("/maps/routes/{code}", response_class=HTMLResponse)
async def route_map(request: Request, code: str, store: StoreDep, settings: SettingsDep,
                    mode: Annotated[str | None, Query(pattern="^(walk|drive)$")] = None,
                    worker: Annotated[int, Query(ge=0, le=100)] = 0) -> HTMLResponse:
    """A grid's patrol route with its directions."""
    from layers import routes as route_layer

    user = _who(request)
    try:
        if user is None:
            raise AuthError("log in first")
        require_permission(user, "read_routes", "see patrol routes")
        where = layer_filter(user, "routes", Route.__table__)
        if where is not None:
            with store.engine.connect() as c:
                if c.execute(select(Route.id).where(and_(Route.grid_code == code, where)).limit(1)).first() is None:
                    raise NotFoundError(f"no route of grid {code!r} that you may see")
        m = await run_in_threadpool(route_layer.route_folium_map, store, code, mode=mode, worker_index=worker)
    except GridPatrolError as exc:
        return _deny(request, exc)
    return _html(m, settings)


LOOKUP_JS = r"""
(function () {
  var map = %(map)s;
  var crs = %(crs)s;
  var canCams = %(can_cams)s;
  // ?click=lon,lat (WGS-84), converted by the server to the map's display datum: [lat, lon] or null.
  var initial = %(initial)s;
  var panel = document.getElementById('gp-panel');
  var sectors = L.layerGroup().addTo(map);
  // SVG (not the map's canvas) so the sectors are DOM elements tests and styles can find.
  var svg = L.svg({padding: 0.5});
  var pin = null;
  function el(tag, text, cls) { var e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
  function sector(c) {
    var full = (c.fov_deg || 0) >= 360 || c.camera_type === 'dome' || c.camera_type === 'ptz';
    var r = c.range_m || (full ? 100 : 50), fov = c.fov_deg || 60, az = c.azimuth_deg || 0;
    var a0 = full ? 0 : az - fov / 2, a1 = full ? 360 : az + fov / 2, pts = full ? [] : [[c.lat, c.lon]];
    for (var i = 0; i <= 32; i++) {
      var a = (a0 + (a1 - a0) * i / 32) * Math.PI / 180;
      pts.push([c.lat + r * Math.cos(a) / 110574, c.lon + r * Math.sin(a) / (111320 * Math.cos(c.lat * Math.PI / 180))]);
    }
    return L.polygon(pts, {color: c.in_view ? '#d7301f' : '#888', weight: 1, fillOpacity: 0.25, className: 'gp-sector', renderer: svg});
  }
  function show(lat, lon) {
    panel.dataset.state = 'loading';
    panel.replaceChildren(el('b', '查询中… looking up'));
    var url = '/lookup?lon=' + lon + '&lat=' + lat + (crs ? '&crs=' + crs : '');
    fetch(url, {credentials: 'same-origin'}).then(function (r) { return r.json().then(function (b) { return [r.status, b]; }); })
      .then(function (res) {
        var st = res[0], b = res[1];
        sectors.clearLayers();
        if (pin) { map.removeLayer(pin); }
        pin = L.circleMarker([lat, lon], {radius: 7, color: '#000', fillColor: '#ffeb3b', fillOpacity: 1}).addTo(map);
        panel.replaceChildren();
        if (st !== 200) { panel.appendChild(el('div', b.detail || ('error ' + st), 'gp-error')); panel.dataset.state = 'error'; return; }
        panel.appendChild(el('h3', '位置 ' + (crs === 'gcj02' ? 'GCJ-02 ' : '') + lon.toFixed(6) + ', ' + lat.toFixed(6)));
        var g = el('div', null, 'gp-grid');
        g.appendChild(el('b', '网格 Grid: '));
        g.appendChild(el('span', b.grid ? b.grid.code + (b.grid.name ? ' ' + b.grid.name : '') : '（不在任何网格内 outside every grid）', 'gp-grid-code'));
        if (b.grid && b.grid.worker !== undefined) { g.appendChild(el('div', '网格员 Worker: ' + (b.grid.worker || '—'), 'gp-worker')); }
        panel.appendChild(g);
        if (b.cameras !== undefined) {
          panel.appendChild(el('h4', '可见摄像机 Cameras in view: ' + b.cameras.length));
          var ul = el('ul', null, 'gp-cameras');
          b.cameras.forEach(function (c) {
            ul.appendChild(el('li', c.code + ' ' + (c.name || '') + ' · ' + c.distance_m + ' m' + (c.online ? '' : ' · 离线 offline'), 'gp-camera'));
            sector(c).addTo(sectors);
            L.circleMarker([c.lat, c.lon], {radius: 4, color: '#d7301f', fillOpacity: 1, renderer: svg}).addTo(sectors);
          });
          panel.appendChild(ul);
        }
        if (b.incidents !== undefined) {
          panel.appendChild(el('h4', '附近事件 Nearby incidents: ' + b.incidents.length));
          var ol = el('ul', null, 'gp-incidents');
          b.incidents.slice(0, 30).forEach(function (i) {
            ol.appendChild(el('li', '#' + i.id + ' ' + i.category + ' · ' + (i.state_zh || i.state) + ' · ' + i.distance_m + ' m · ' + i.occurred_at.slice(0, 10), 'gp-incident'));
          });
          panel.appendChild(ol);
        }
        panel.dataset.state = 'loaded';
      }).catch(function (err) { panel.replaceChildren(el('div', String(err), 'gp-error')); panel.dataset.state = 'error'; });
  }
  map.on('click', function (e) { show(e.latlng.lat, e.latlng.lng); });
  if (initial) { map.whenReady(function () { show(initial[0], initial[1]); }); }
})();
"""

PANEL_HTML = (
    '<div id="gp-panel" data-state="idle" style="position:fixed;top:10px;right:10px;z-index:9999;width:330px;'
    'max-height:85vh;overflow:auto;background:white;padding:8px 12px;border-radius:6px;box-shadow:0 1px 6px #0006;'
    'font:13px/1.4 \'Noto Sans CJK SC\',\'WenQuanYi Zen Hei\',sans-serif">点击地图查询 Click the map: grid, worker, '
    'cameras in view, nearby incidents</div>'
)


def _parse_click(click: str | None) -> tuple[float, float] | None:
    """``"lon,lat"`` (WGS-84) → (lon, lat); InputError (422) when it is not a point on Earth."""
    if click is None or not click.strip():
        return None
    parts = click.split(",")
    try:
        lon, lat = (float(v) for v in parts)
    except ValueError:
        raise InputError(f"click={click!r} is not lon,lat", hint="e.g. ?click=104.0665,30.6598 (WGS-84)") from None
    if not (np.isfinite(lon) and np.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise InputError(f"click={click!r} is not a WGS-84 longitude,latitude", hint="e.g. ?click=104.0665,30.6598")
    return lon, lat


def _incident_map(store: Store, settings: Settings, user: Principal, days: float | None, category: str | None,
                  click: tuple[float, float] | None = None) -> folium.Map:
    t = Incident.__table__
    with store.engine.connect() as c:
        plan = c.execute(select(func.max(GridPlan.id))).scalar()
    grids = store.read_layer("grids", where=Grid.__table__.c.plan_id == plan) if plan else None
    ext = (tuple(grids.total_bounds) if grids is not None and len(grids) else store.extent("roads")) or (
        store.extent("incidents"))
    if ext is None:
        raise NotFoundError("the store has no streets, grids or incidents to map", hint="import data first")
    m = _basemap(store, ext)
    if grids is not None and len(grids):
        g = grids[["code", "worker", "households", "geometry"]].copy()
        if not can(user, "read_workers"):
            g = g.drop(columns="worker")
        folium.GeoJson(g, name="grids 网格", style_function=lambda f: {
            "color": "#1f4e9c", "weight": 2, "fill": False},
            tooltip=folium.GeoJsonTooltip([c for c in ("code", "worker", "households") if c in g.columns])).add_to(m)
    conds = []
    where = layer_filter(user, "incidents", t)
    if where is not None:
        conds.append(where)
    if category:
        conds.append(t.c.category == category)
    stmt = select(t.c.id, t.c.category, t.c.state, t.c.occurred_at, func.ST_X(t.c.geom), func.ST_Y(t.c.geom))
    if conds:
        stmt = stmt.where(and_(*conds))
    with store.engine.connect() as c:
        rows = c.execute(stmt.order_by(t.c.occurred_at.desc()).limit(20_000)).all()
    if days is not None and rows:
        from gis.incidents import utc

        newest = max(utc(r[3]) for r in rows)
        from datetime import timedelta

        rows = [r for r in rows if utc(r[3]) >= newest - timedelta(days=days)]
    data = [[float(r[5]), float(r[4]), html.escape(f"#{r[0]} {r[1]} · {r[2]} · {str(r[3])[:10]}")] for r in rows]
    if data:
        callback = (
            "function (row) { var m = L.circleMarker(new L.LatLng(row[0], row[1]), {radius: 6, color: '#b30000',"
            " weight: 1, fillColor: '#fc4e2a', fillOpacity: 0.8}); m.bindTooltip(row[2]); return m; }"
        )
        FastMarkerCluster(data, callback=callback, name=f"incidents 事件 ({len(data)})").add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)
    m.get_root().html.add_child(folium.Element(PANEL_HTML))
    _attribution(m, " · cameras and incidents of the Chinese demo areas are synthetic")
    _script(LOOKUP_JS % {"map": m.get_name(), "crs": json.dumps(_display(settings)),
                         "can_cams": json.dumps(can(user, "read_cameras")),
                         "initial": json.dumps(display_latlon([[click[1], click[0]]], settings)[0] if click else None)}).add_to(m)
    return m


def _script(js: str) -> MacroElement:
    """A map child whose script runs after the map exists (the figure's own script runs before)."""
    el = MacroElement()
    el._template = Template("{% macro script(this, kwargs) %}" + js.replace("{%", "{ %") + "{% endmacro %}")
    return el


@router.get("/maps/incidents", response_class=HTMLResponse)
async def incident_map(
    request: Request, store: StoreDep, settings: SettingsDep,
    days: Annotated[float | None, Query(gt=0, le=3650, description="only the newest N days")] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    click: Annotated[str | None, Query(max_length=80, description="lon,lat (WGS-84) to look up on load")] = None,
) -> HTMLResponse:
    """Incidents (clustered) over grids, streets and buildings; click → lookup panel with camera sectors."""
    user = _who(request)
    try:
        if user is None:
            raise AuthError("log in first")
        require_permission(user, "read_incidents", "see the incident map")
        point = _parse_click(click)
        m = await run_in_threadpool(_incident_map, store, settings, user, days, category, point)
    except GridPatrolError as exc:
        return _deny(request, exc)
    return _html(m, settings)
