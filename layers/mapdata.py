"""What the map pages draw, read from the store: grids with workload colours, streets, buildings, incidents, routes."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from gridpatrol.gis.errors import GridPatrolError, InputError, NotFoundError
from gridpatrol.gis.gridcodes import CodeFormat
from gridpatrol.layers import grids as gl
from gridpatrol.layers.models import Grid, GridPlan, Incident, Route
from gridpatrol.layers.store import Store
from sqlalchemy import and_, func, select

MAJOR_HIGHWAYS = frozenset({"motorway", "trunk", "primary", "secondary"})
MAX_INCIDENT_POINTS = 20_000
# Grids coloured by households: blue under the band, yellow inside, red over it.
WORKLOAD_COLOURS = ("#2c7bb6", "#ffffbf", "#d7191c")


def landing_summary(store: Store) -> dict[str, Any]:
    """The newest plan id, its number of grids, and whether any route is stored (``has_routes``)."""
    with store.engine.connect() as c:
        plan = c.execute(select(func.max(GridPlan.id))).scalar()
        n_grids = c.execute(select(func.count()).select_from(Grid).where(Grid.plan_id == plan)).scalar() if plan else 0
        has_routes = c.execute(select(Route.id).limit(1)).first() is not None
    return {"plan_id": plan, "grids": int(n_grids or 0), "has_routes": has_routes}


def landing_routes(store: Store, route_where: Any = None, limit: int = 50) -> tuple[list[dict[str, Any]], int]:
    """The grids with stored routes the caller may see (code, grid name, routes, shifts, km, minutes),
    first ``limit`` by code, and how many such grids there are in all."""
    per_grid = (select(Route.grid_code, func.count().label("routes"), func.max(Route.shift).label("shifts"),
                       func.sum(Route.length_m).label("length_m"), func.sum(Route.duration_s).label("duration_s"))
                .group_by(Route.grid_code))
    if route_where is not None:
        per_grid = per_grid.where(route_where)
    sub = per_grid.subquery()
    with store.engine.connect() as c:
        total = int(c.execute(select(func.count()).select_from(sub)).scalar() or 0)
        plan = c.execute(select(func.max(GridPlan.id))).scalar()
        rows = c.execute(
            select(sub, Grid.name)
            .join(Grid, and_(Grid.code == sub.c.grid_code, Grid.plan_id == plan), isouter=True)
            .order_by(sub.c.grid_code).limit(limit)).all()
    return [{"code": r.grid_code, "name": r.name, "routes": int(r.routes), "shifts": int(r.shifts or 1),
             "km": float(r.length_m or 0) / 1000, "minutes": float(r.duration_s or 0) / 60} for r in rows], total


def shows_synthetic(store: Store, wheres: dict[str, Any]) -> bool:
    """Whether any row the caller may see of the layers in ``wheres`` (layer → row filter, None for
    every row) is synthetic (generated demo cameras or incidents)."""
    from gridpatrol.layers.models import Camera

    tables = {"incidents": Incident.__table__, "cameras": Camera.__table__}
    with store.engine.connect() as c:
        for layer, where in wheres.items():
            t = tables[layer]
            stmt = select(t.c.id).where(t.c.synthetic.is_(True)).limit(1)
            if where is not None:
                stmt = stmt.where(where)
            if c.execute(stmt).first() is not None:
                return True
    return False


def workload_colormap(params: gl.PlanParams):  # noqa: ANN201
    """The branca colormap of workload per grid for a plan's band (households unless balanced otherwise)."""
    _, low, high = params.workload_band()
    return workload_colormap_from(max(low * 0.5, 0), high * 1.2)


def workload_colormap_from(vmin: float, vmax: float):  # noqa: ANN201
    """The branca colormap of households per grid between ``vmin`` and ``vmax`` (a plan's window)."""
    from branca.colormap import LinearColormap

    return LinearColormap(list(WORKLOAD_COLOURS), vmin=vmin, vmax=vmax, caption="households per grid")


def plan_frame(store: Store, plan_id: int | None = None) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Grids of a plan (default newest) with ``fill`` colour and short ``label``, and the plan's band.

    Numbers are rounded for display (households 0, m and m² 0, compactness 3 decimals). The label
    is the sequence number of the code (the full code would hide small grids).
    """
    row = gl.plan_row(store, plan_id)
    params = gl.PlanParams.from_json(row["params_json"])
    grids = gl.read_grids(store, row["id"])
    cmap = workload_colormap(params)
    g = grids[["code", "parent_code", "name", "worker", "households", "buildings", "street_m", "area_m2",
               "polsby_popper", "exempt", "locked", "geometry"]].copy()
    # the plan is shown against the workload it was drawn for (households, persons or a weighted sum)
    load = gl.grid_workload(grids, params)
    g["population"] = grids["population"].astype(float).round(0) if "population" in grids else np.nan
    g["workload"] = np.round(load, 1)
    for col, nd in (("area_m2", 0), ("street_m", 0), ("households", 0), ("polsby_popper", 3)):
        g[col] = g[col].astype(float).round(nd)
    g["fill"] = [cmap(min(max(float(h), cmap.vmin), cmap.vmax)) if h == h else "#cccccc" for h in load]
    fmt = CodeFormat(params.code_format)
    labels = []
    for code in g["code"].astype(str):
        try:
            labels.append(f"{int(fmt.parse(code)['seq']):0{fmt.seq_width or 1}d}")
        except InputError:
            labels.append(code)
    g["label"] = labels
    stops = [cmap(v) for v in np.linspace(cmap.vmin, cmap.vmax, 5)]
    band = {"plan_id": int(row["id"]), "min_households": params.min_households,
            "max_households": params.max_households, "target_households": params.target_households, "vmin": cmap.vmin, "vmax": cmap.vmax, "stops": stops}
    target, low, high = params.workload_band()
    band.update({"balance": params.balance, "workload_unit": params.workload_unit(), "weights": params.workload_weights(),
                 "target_workload": target, "min_workload": low, "max_workload": high})
    return g, band


def plan_problems(store: Store, plan_id: int | None = None) -> gpd.GeoDataFrame | None:
    """check-grids problems of a plan as WGS-84 features (kind, severity, message, grid code), None if unknown."""
    try:
        check, _pid = gl.check_grids(store, plan_id, least_empty=False)  # the problems only: no proof to wait for
    except GridPatrolError:
        return None
    p = check.problems
    if p is None or not len(p):
        return None
    p = p.to_crs(4326) if p.crs is not None else p
    p = p[[c for c in p.columns if c in ("kind", "severity", "message", "grid_code", "code")] + ["geometry"]]
    return p[~p.geometry.is_empty & p.geometry.notna()]


def map_extent(store: Store, plan_id: int | None = None, incidents_where: Any = False) -> tuple[float, float, float, float]:
    """(min_lon, min_lat, max_lon, max_lat) of a plan's grids, else of the streets, else of the
    incidents ``incidents_where`` lets the caller see (False: none, None: all)."""
    with store.engine.connect() as c:
        plan = plan_id or c.execute(select(func.max(GridPlan.id))).scalar()
    if plan:
        g = gl.read_grids(store, plan)
        if len(g):
            return tuple(float(v) for v in g.total_bounds)  # type: ignore[return-value]
    ext = store.extent("roads")
    if ext is None and incidents_where is not False:
        ext = store.extent("incidents", where=incidents_where)
    if ext is None:
        raise NotFoundError("the store has no streets, grids or incidents to map", hint="import data first")
    return ext


def basemap_frames(store: Store, bbox: tuple[float, float, float, float]) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Our own streets (name, highway, major) and mapped buildings (name, households) in ``bbox``, WGS-84, 1e-6° precision."""
    roads = store.read_layer("roads", bbox=bbox)
    buildings = gl.real_buildings(store.read_layer("buildings", bbox=bbox))
    r = roads[["name", "highway", "geometry"]].copy() if len(roads) else gpd.GeoDataFrame(
        {"name": [], "highway": []}, geometry=[], crs=4326)
    r["major"] = r["highway"].isin(MAJOR_HIGHWAYS)
    b = buildings[["name", "households", "geometry"]].copy() if len(buildings) else gpd.GeoDataFrame(
        {"name": [], "households": []}, geometry=[], crs=4326)
    for df in (r, b):
        if len(df):
            df["geometry"] = shapely.set_precision(df.geometry.values, 1e-6)
    return r, b


def place_frame(store: Store, bbox: tuple[float, float, float, float]) -> gpd.GeoDataFrame:
    """Villages and hamlets in ``bbox`` (name, place; WGS-84, 1e-6°): the place areas, then the
    place nodes, as rural grids are named after them."""
    parts = [store.read_layer(layer, bbox=bbox) for layer in ("place_areas", "places")]
    parts = [p[["name", "place", "geometry"]] for p in parts if len(p)]
    if not parts:
        return gpd.GeoDataFrame({"name": [], "place": []}, geometry=[], crs=4326)
    out = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs=4326)
    out["geometry"] = shapely.set_precision(out.geometry.values, 1e-6)
    return out


def incident_points(store: Store, where: Any = None, *, days: float | None = None,
                    category: str | None = None) -> list[dict[str, Any]]:
    """Incidents the caller may see (``where``: their row filter), newest first, at most 20,000.

    ``days``: only those within N days of the newest one shown; ``category``: only that category.
    Each is {id, category, state, occurred_at (aware UTC datetime), lon, lat} in WGS-84.
    """
    from gridpatrol.gis.incidents import utc

    t = Incident.__table__
    conds = [c for c in (where, t.c.category == category if category else None) if c is not None]
    stmt = select(t.c.id, t.c.category, t.c.state, t.c.occurred_at, func.ST_X(t.c.geom), func.ST_Y(t.c.geom))
    if conds:
        stmt = stmt.where(and_(*conds))
    with store.engine.connect() as c:
        rows = c.execute(stmt.order_by(t.c.occurred_at.desc()).limit(MAX_INCIDENT_POINTS)).all()
    out = [{"id": int(r[0]), "category": r[1], "state": r[2], "occurred_at": utc(r[3]),
            "lon": float(r[4]), "lat": float(r[5])} for r in rows]
    if days is not None and out:
        newest = max(o["occurred_at"] for o in out)
        out = [o for o in out if o["occurred_at"] >= newest - timedelta(days=days)]
    return out


MAX_CAMERA_POINTS = 20_000


def camera_points(store: Store, where: Any = None) -> list[dict[str, Any]]:
    """Cameras the caller may see (``where``: their row filter), at most 20,000 by id: code, name,
    project, type, status, lon, lat (WGS-84) — the incident map's camera layer before any click."""
    from gridpatrol.layers.models import Camera

    t = Camera.__table__
    stmt = select(t.c.code, t.c.name, t.c.project, t.c.camera_type, t.c.status, func.ST_X(t.c.geom), func.ST_Y(t.c.geom))
    if where is not None:
        stmt = stmt.where(where)
    with store.engine.connect() as c:
        rows = c.execute(stmt.order_by(t.c.id).limit(MAX_CAMERA_POINTS)).all()
    return [{"code": r[0], "name": r[1], "project": r[2], "camera_type": r[3], "status": r[4],
             "lon": float(r[5]), "lat": float(r[6])} for r in rows]


def visible_route(store: Store, code: str, where: Any = None, *, mode: str | None = None, worker_index: int = 0):  # noqa: ANN201
    """The SheetRoute of grid ``code``'s stored route (worker ``worker_index``) if ``where`` lets the caller see it."""
    from gridpatrol.layers import routes as rl

    routes = rl.read_routes(store, code, mode=mode)
    if where is not None:
        with store.engine.connect() as c:
            keep = set(c.execute(select(Route.id).where(and_(Route.grid_code == code, where))).scalars())
        routes = routes[routes["id"].isin(keep)]
    routes = routes[routes["worker_index"] == worker_index]
    if not len(routes):
        raise NotFoundError(f"no route of grid {code!r} (worker {worker_index + 1}) that you may see")
    return rl.sheet_route(store, routes.iloc[0])
