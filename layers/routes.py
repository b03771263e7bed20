"""Patrol routes in the store: plan coverage/visit routes for grids or polygons, read them back, print them."""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from gridpatrol.gis.errors import GridPatrolError, InputError, NotFoundError
from gridpatrol.gis.routesheet import (
    SheetRoute,
    route_map,
    write_geojson,
    write_gpx,
    write_route_sheet,
)
from gridpatrol.gis.routing.calendar import patrol_calendar
from gridpatrol.gis.routing.coverage import CoveragePlan, plan_coverage
from gridpatrol.gis.routing.directions import route_steps, steps_json
from gridpatrol.gis.routing.route import CoverageRoute
from gridpatrol.gis.routing.visit import VisitPlan, plan_visit
from gridpatrol.gis.streets import StreetNetwork, street_network
from gridpatrol.layers.models import Grid, Route
from gridpatrol.layers.plan_base import record_write
from gridpatrol.layers.store import Store
from shapely.geometry.base import BaseGeometry
from sqlalchemy import and_, delete

NEIGHBOURHOOD_DEG = 0.015  # ~1.5 km of streets around a grid for shortcuts outside it
ISLAND_NOTES = 5  # unreachable street islands listed one by one on a sheet


@dataclass
class Target:
    """An area to plan a route for: a grid of the newest plan or a polygon the user gave (EPSG:4326)."""

    code: str
    polygon: BaseGeometry
    plan_id: int | None = None
    station: tuple[float, float] | None = None
    worker: str | None = None


@dataclass
class PlanOutcome:
    """What planning did per target: the stored summary, or the error that made it skip the target."""

    code: str
    ok: bool
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _expand(bounds: Sequence[float], pad: float = NEIGHBOURHOOD_DEG) -> tuple[float, float, float, float]:
    minx, miny, maxx, maxy = bounds
    return (minx - pad, miny - pad, maxx + pad, maxy + pad)


def grid_targets(store: Store, codes: Sequence[str] | None = None, plan_id: int | None = None) -> list[Target]:
    """Grids of the newest plan (or ``plan_id``) as targets, all or those with ``codes``.

    Raises NotFoundError naming unknown codes.
    """
    from gridpatrol.layers.grids import read_grids

    grids = read_grids(store, plan_id)
    if codes:
        missing = sorted(set(codes) - set(grids["code"]))
        if missing:
            raise NotFoundError(f"grid(s) {', '.join(missing)} not in plan {int(grids['plan_id'].iloc[0]) if len(grids) else plan_id}",
                                hint="list grids with `gridpatrol export grids FILE` or check the code")
        grids = grids[grids["code"].isin(codes)]
    out = []
    for _, g in grids.iterrows():
        station = None
        if pd.notna(g.get("station_lon")) and pd.notna(g.get("station_lat")):
            station = (float(g["station_lon"]), float(g["station_lat"]))
        out.append(Target(g["code"], g.geometry, int(g["plan_id"]), station, g.get("worker")))
    return out


def read_polygon_file(path: str | Path, code: str | None = None) -> list[Target]:
    """Polygons of a GeoJSON/GeoPackage/Shapefile (reprojected to EPSG:4326) as targets.

    The code comes from a ``code`` column if there is one, else ``<file stem>-<n>``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", where=str(path))
    try:
        gdf = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises many kinds for unreadable files
        raise InputError(f"cannot read polygons: {exc}", where=str(path), hint="give a GeoJSON or GeoPackage of polygons") from exc
    gdf = gdf[gdf.geometry.notna() & gdf.geom_type.isin(["Polygon", "MultiPolygon"])]
    if not len(gdf):
        raise InputError("no polygons in the file", where=str(path), hint="the area to cover must be a (multi)polygon")
    if gdf.crs is None:
        raise InputError("the file declares no coordinate system", where=str(path), hint="save it with a CRS (WGS-84)")
    gdf = gdf.to_crs(4326)
    out = []
    for i, (_, row) in enumerate(gdf.iterrows()):
        c = code or (str(row["code"]) if "code" in gdf.columns and pd.notna(row["code"]) else f"{path.stem}-{i + 1}")
        if code and len(gdf) > 1:
            c = f"{code}-{i + 1}"
        out.append(Target(c, row.geometry))
    return out


def _roads_near(store: Store, geom: BaseGeometry, code: str) -> gpd.GeoDataFrame:
    roads = store.read_layer("roads", bbox=_expand(geom.bounds))
    if not len(roads):
        raise InputError("no streets in the store in or around this area", where=code,
                         hint="import the OSM extract that covers it first (gridpatrol import-osm FILE)")
    return roads


def _shared_network(store: Store, targets: Sequence[Target], mode: str) -> StreetNetwork | None:
    """One street network for many nearby targets (read and projected once), or None."""
    if len(targets) < 2:
        return None
    minx, miny, maxx, maxy = np.array([t.polygon.bounds for t in targets]).T
    bounds = (minx.min(), miny.min(), maxx.max(), maxy.max())
    if max(bounds[2] - bounds[0], bounds[3] - bounds[1]) > 0.5:  # one metric CRS must fit them all
        return None
    roads = store.read_layer("roads", bbox=_expand(bounds))
    return street_network(roads, mode=mode) if len(roads) else None


def _to_wgs84(net_crs: pyproj.CRS, geom: BaseGeometry) -> BaseGeometry:
    tf = pyproj.Transformer.from_crs(net_crs, 4326, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(tf.transform(xy[:, 0], xy[:, 1])))


def _steps_both(plan: CoveragePlan, route: CoverageRoute) -> list[dict[str, Any]]:
    """The route's steps, computed once, each with its Chinese ``text`` and English ``text_en``."""
    return steps_json(route_steps(plan.network, route.traversals, mode=plan.mode))


def _explain_islands(store: Store, islands: list[dict[str, Any]], mode: str) -> None:
    """Add to each unreachable street island why it is cut off and what would fix it (``why``/``fix``
    in Chinese, ``why_en``/``fix_en``): a way closed to the mode by its tags, or no way at all."""
    from gridpatrol.gis.streets import NOT_DRIVABLE, NOT_WALKABLE, allowed

    walk = mode == "walk"
    for isl in islands:
        nodes = set(isl.pop("node_osm", []))
        if isl.get("status") != "unreachable":
            continue
        (lon, lat), (gx, gy), gap = isl["at"], isl.get("nearest_reachable_at", isl["at"]), isl.get("gap_m", 0.0)
        pad = 0.002 + gap / 90_000
        roads = store.read_layer("roads", bbox=(lon - pad, lat - pad, lon + pad, lat + pad))
        touch = roads[roads["u"].isin(nodes) | roads["v"].isin(nodes)] if len(roads) else roads
        closed = touch[~allowed(touch, mode) | touch["highway"].isin(NOT_WALKABLE if walk else NOT_DRIVABLE)] \
            if len(touch) else touch
        if len(closed):
            r = closed.iloc[0]
            tags = ", ".join(f"{k}={r[k]}" for k in ("access", "foot" if walk else "motor_vehicle")
                             if isinstance(r.get(k), str)) or f"highway={r['highway']}"
            opener = "foot=yes" if walk else "motor_vehicle=yes"
            isl["why"] = f"只经 OSM 道路 {int(r['osm_id'])}（{tags}）与其他街道相连，该路不许{'步行' if walk else '车辆'}通过"
            isl["why_en"] = f"joined to the other streets only by OSM way {int(r['osm_id'])} ({tags}), closed to this mode"
            isl["fix"] = f"如该处（门岗、道闸）实际可通行，在 OSM 道路 {int(r['osm_id'])} 上标注 {opener} 后重新导入"
            isl["fix_en"] = f"if the gate can be passed, tag OSM way {int(r['osm_id'])} with {opener} and import again"
        elif not walk and gap < 1.0:
            isl["why"] = "单行道只进不出（或只出不进），车辆无法往返"
            isl["why_en"] = "one-way streets lead in but not out (or out but not in)"
            isl["fix"] = f"核实 {lon:.5f},{lat:.5f} 附近道路的单行（oneway）标注，或改为步行巡查"
            isl["fix_en"] = f"check the oneway tags near {lon:.5f},{lat:.5f}, or patrol it on foot"
        else:
            isl["why"] = f"数据中没有{'可步行' if walk else '可通车'}的道路与之相连（最近的可达街道在 {gap:.0f} 米外）"
            isl["why_en"] = f"no {'walkable' if walk else 'drivable'} way joins it in the data (the nearest reachable street is {gap:.0f} m away)"
            isl["fix"] = (f"在 OSM 中补绘连接道路（约 {gap:.0f} 米：{lon:.5f},{lat:.5f} 至 {gx:.5f},{gy:.5f}），"
                          "或核实是否为封闭院落，然后重新导入")
            isl["fix_en"] = (f"draw the missing connector in OSM (about {gap:.0f} m from {lon:.5f},{lat:.5f} to "
                             f"{gx:.5f},{gy:.5f}) or confirm it is a closed compound, then import again")


def _uturn_figures(routes: Sequence[CoverageRoute]) -> dict[str, Any]:
    """U-turns of ``routes`` together: all, at dead ends, elsewhere, per km, and their lower bound
    (the fewest any order of the same passes makes: a dead end forces one)."""
    n = sum(r.n_uturns for r in routes)
    dead = sum(r.n_uturns_dead_end for r in routes)
    km = sum(r.length_m for r in routes) / 1000
    return {"uturns": n, "uturns_dead_end": dead, "uturns_other": n - dead,
            "uturns_per_km": n / km if km > 0 else 0.0, "uturn_bound": sum(r.uturn_bound for r in routes)}


def _route_rows(t: Target, plan: CoveragePlan, synthetic: bool) -> gpd.GeoDataFrame:
    rows = []
    for r in plan.routes:
        stats = dict(plan.stats)
        stats.update({
            # Shifts are one worker's: the routes of several workers are something else.
            "worker_index": r.worker_index, "workers": 1 if "shifts" in plan.stats else len(plan.routes),
            "gap": r.gap if len(plan.routes) == 1 else None,
            "plan_gap": plan.gap, "exact": plan.exact, "turns": r.n_turns, **_uturn_figures([r]),
            "islands": plan.islands, "warnings": plan.warnings, "start_snap_m": plan.start_snap_m,
            "grid_required_m": plan.required_m, "synthetic": synthetic, "worker": t.worker,
            "shifts": len(plan.routes) if "shifts" in plan.stats else 1, "shift_plan": plan.stats.get("shifts"),
            # The covered area itself, so a sheet can draw it even for a polygon that is no grid.
            "area_wkt": shapely.to_wkt(t.polygon, rounding_precision=7),
        })
        rows.append({
            "plan_id": t.plan_id, "grid_code": t.code, "kind": "coverage", "mode": plan.mode,
            "worker_index": r.worker_index, "shift": r.shift, "length_m": r.length_m, "required_m": r.required_m,
            "lower_bound_m": r.lower_bound_m if len(plan.routes) == 1 else plan.lower_bound_m,
            "duration_s": r.duration_s,
            "directions_json": json.dumps(_steps_both(plan, r), ensure_ascii=False),
            "stats_json": json.dumps(stats, ensure_ascii=False, default=float),
            "geometry": _to_wgs84(plan.network.crs, r.geometry),
        })
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)


def _replace_routes(store: Store, rows: list[gpd.GeoDataFrame]) -> int:
    """Replace the stored routes of the same (grid, kind, mode) with ``rows``, in one transaction."""
    t = Route.__table__
    n = 0
    with store.begin() as conn:
        for gdf in rows:
            if not len(gdf):
                continue
            first = gdf.iloc[0]
            conn.execute(delete(t).where(and_(t.c.grid_code == first["grid_code"], t.c.kind == first["kind"],
                                              t.c.mode == first["mode"])))
            n += store.insert_gdf(conn, "routes", gdf)
        record_write(conn, {"routes": n})  # a job running this write records its result in it
    return n


def plan_routes(
    store: Store,
    targets: Sequence[Target],
    *,
    mode: str = "walk",
    workers: int = 1,
    start: tuple[float, float] | None = None,
    time_limit_s: float = 60.0,
    skip_failures: bool = False,
    progress: Callable[[str], None] | None = None,
    max_minutes: float | None = None,
    speed_kmh: float | None = None,
    cycle_days: int | None = None,
) -> list[PlanOutcome]:
    """Plan coverage routes for ``targets`` and store them (replacing older routes of the same grid/mode).

    ``start`` (lon, lat) overrides each grid's station. ``max_minutes`` cuts a grid whose
    coverage takes longer into shifts (one row each, ``shift`` = 1…n) at ``speed_kmh``. All routes are computed before anything
    is written; with ``skip_failures`` a target that fails (no streets, …) is reported and left
    out, otherwise its GridPatrolError is raised and nothing is stored. ``cycle_days`` lays each
    worker's shifts planned here out as a patrol calendar over that many days (``stats.cycle``).
    """
    if not targets:
        raise InputError("nothing to plan", hint="give --grid CODE, --all or --polygon FILE")
    if cycle_days is not None:
        patrol_calendar([], cycle_days)  # a bad cycle is refused before any work
    say = progress or (lambda _m: None)
    outcomes: list[PlanOutcome] = []
    rows: list[gpd.GeoDataFrame] = []
    shared = _shared_network(store, targets, mode)
    # Many targets: the incidents of all of them are read once (one query instead of one per grid).
    all_incidents = None
    if shared is not None:
        b = np.array([t.polygon.bounds for t in targets])
        all_incidents = store.read_layer("incidents", bbox=(b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()))
    for i, t in enumerate(targets):
        say(f"{t.code} ({i + 1}/{len(targets)})")
        try:
            roads = shared if shared is not None else _roads_near(store, t.polygon, t.code)
            pool = all_incidents if all_incidents is not None else store.read_layer("incidents", bbox=t.polygon.bounds)
            inc = pool.iloc[np.sort(pool.sindex.query(t.polygon, predicate="intersects"))] if len(pool) else pool
            synthetic = bool(len(inc) and inc["synthetic"].fillna(False).astype(bool).any())
            plan = plan_coverage(roads, t.polygon, mode=mode, start=start or t.station, workers=workers,
                                 time_limit_s=time_limit_s, incidents=inc.geometry if len(inc) else None, name=t.code,
                                 max_minutes=max_minutes, speed_kmh=speed_kmh)
        except GridPatrolError as exc:
            if not skip_failures:
                raise
            outcomes.append(PlanOutcome(t.code, False, error=str(exc)))
            continue
        _explain_islands(store, plan.islands, mode)
        gdf = _route_rows(t, plan, synthetic)
        rows.append(gdf)
        outcomes.append(PlanOutcome(t.code, True, {
            "grid": t.code, "mode": mode, "routes": len(plan.routes), "length_m": plan.length_m,
            "required_m": plan.required_m, "lower_bound_m": plan.lower_bound_m, "gap": plan.gap,
            "exact": plan.exact, "turns_per_km": plan.stats["turns_per_km"], **_uturn_figures(plan.routes),
            "deadhead_share": plan.stats["deadhead_share"], "islands": len(plan.islands),
            "unreachable_m": plan.stats["unreachable_m"], "warnings": plan.warnings,
            "balance": plan.stats.get("balance"), "hot_covered_share": plan.stats.get("hot_covered_share"),
            "runtime_s": plan.stats["runtime_s"], "duration_s": plan.routes[0].duration_s if len(plan.routes) == 1 else None,
            "shifts": plan.stats.get("shifts"),
            "island_fixes": [i for i in plan.islands if i.get("status") == "unreachable"],
        }))
    if cycle_days is not None:
        _lay_out_calendars(targets, rows, outcomes, cycle_days)
    _replace_routes(store, rows)
    return outcomes


def _lay_out_calendars(targets: Sequence[Target], rows: list[gpd.GeoDataFrame], outcomes: list[PlanOutcome],
                       cycle_days: int) -> None:
    """Each worker's shifts (a grid without a worker: its own) over ``cycle_days`` days: the day goes
    into every route's ``stats.cycle`` and the worker's calendar into the outcomes' summaries."""
    worker_of = {t.code: (t.worker or f"grid {t.code}") for t in targets}
    by_worker: dict[str, list[tuple[tuple[int, int], float]]] = {}
    for g, gdf in enumerate(rows):
        for i, r in enumerate(gdf.itertuples()):
            by_worker.setdefault(worker_of[r.grid_code], []).append(((g, i), float(r.duration_s)))
    summaries = {o.code: o.summary for o in outcomes if o.ok}
    for worker, items in by_worker.items():
        cal = patrol_calendar(items, cycle_days)
        days = [[f"{rows[g].iloc[i]['grid_code']}#{int(rows[g].iloc[i]['shift'] or 1)}" for g, i in ks] for ks in cal.days]
        table = {"worker": worker, "cycle_days": cycle_days, "days": days, "day_s": cal.day_s,
                 "max_day_s": cal.max_day_s, "lower_bound_s": cal.lower_bound_s, "optimal": cal.optimal}
        for (g, i), day in cal.day_of.items():
            stats = json.loads(rows[g].iloc[i]["stats_json"])
            stats["cycle"] = {"days": cycle_days, "day": day, "worker": worker, "day_s": cal.day_s[day - 1]}
            rows[g].iat[i, rows[g].columns.get_loc("stats_json")] = json.dumps(stats, ensure_ascii=False, default=float)
            summaries[rows[g].iloc[i]["grid_code"]]["calendar"] = table


def read_points_file(path: str | Path, crs: str | None = None) -> gpd.GeoDataFrame:
    """Key points from GeoJSON/GeoPackage (any CRS) or CSV with lon/lat columns, as EPSG:4326.

    ``crs`` (wgs84, gcj02, bd09 or EPSG:n; default WGS-84) is what the numbers of a CSV or of a
    file that declares no CRS are; their raw numbers are kept in ``attrs["raw_lonlat"]`` (for the
    GCJ-02 check). Raises InputError for a missing, unreadable or empty file, naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("points file not found", where=str(path))
    if path.stat().st_size == 0:
        raise InputError("the points file is empty", where=str(path), hint="give at least one point")
    try:
        if path.suffix.lower() == ".csv":
            df = pd.read_csv(path)
            cols = {c.lower(): c for c in df.columns}
            lon = cols.get("lon") or cols.get("longitude") or cols.get("x")
            lat = cols.get("lat") or cols.get("latitude") or cols.get("y")
            if not lon or not lat:
                raise InputError("CSV needs lon and lat columns", where=str(path), hint="columns lon,lat (WGS-84)")
            gdf = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df[lon], df[lat]), crs=4326)
        else:
            gdf = gpd.read_file(path)
    except GridPatrolError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read points: {exc}", where=str(path)) from exc
    if not len(gdf):
        raise InputError("the points file has no points", where=str(path), hint="give at least one point")
    if gdf.crs is None or path.suffix.lower() == ".csv":
        from gridpatrol.layers.cameras import convert_crs

        x, y = gdf.geometry.x.to_numpy(), gdf.geometry.y.to_numpy()
        with np.errstate(all="ignore"):
            lon, lat = convert_crs(x, y, crs)
        gdf = gdf.set_geometry(gpd.points_from_xy(lon, lat), crs=4326)
        gdf.attrs["raw_lonlat"] = (x, y)
        return gdf
    return gdf.to_crs(4326)


def plan_visit_route(
    store: Store,
    points_path: str | Path | gpd.GeoDataFrame,
    *,
    code: str = "visit",
    mode: str = "walk",
    start: tuple[float, float] | None = None,
    closed: bool = True,
    budget_min: float | None = None,
    dwell_min: float = 0.0,
    time_limit_s: float = 10.0,
) -> tuple[VisitPlan, gpd.GeoDataFrame]:
    """Plan a key-point route through the points in ``points_path`` (a file, or points in
    EPSG:4326 with optional ``name`` and ``importance``) and store it (kind "visit")."""
    pts = points_path if isinstance(points_path, gpd.GeoDataFrame) else read_points_file(points_path)
    area = shapely.box(*pts.total_bounds)
    roads = store.read_layer("roads", bbox=_expand(area.bounds))
    plan = plan_visit(pts, roads=roads if len(roads) else None, mode=mode, start=start, closed=closed,
                      budget_s=None if budget_min is None else budget_min * 60, dwell_s=dwell_min * 60,
                      time_limit_s=time_limit_s)
    name_col = "name" if "name" in pts.columns else None
    steps = []
    for k, i in enumerate(plan.order):
        p = pts.geometry.iloc[i]
        label = str(pts[name_col].iloc[i]) if name_col else f"#{i + 1}"
        steps.append({"index": k + 1, "action": "visit", "street": None, "distance_m": 0.0, "heading_deg": 0.0,
                      "lon": p.x, "lat": p.y, "first_traversal": 0, "text": f"到达 {label}", "text_en": f"Visit {label}"})
    stats = {"order": plan.order, "dropped": plan.dropped, "gap": plan.gap, "closed": closed, **plan.stats,
             "synthetic": bool("synthetic" in pts.columns and pts["synthetic"].fillna(False).astype(bool).any())}
    row = gpd.GeoDataFrame([{
        "plan_id": None, "grid_code": code, "kind": "visit", "mode": mode, "worker_index": 0,
        "length_m": plan.length_m, "required_m": 0.0, "lower_bound_m": plan.lower_bound_m,
        "duration_s": plan.duration_s, "directions_json": json.dumps(steps, ensure_ascii=False),
        "stats_json": json.dumps(stats, ensure_ascii=False, default=float), "geometry": plan.geometry,
    }], geometry="geometry", crs=4326)
    _replace_routes(store, [row])
    return plan, pts


def read_routes(store: Store, code: str, *, mode: str | None = None, kind: str | None = None) -> gpd.GeoDataFrame:
    """Stored routes of grid ``code`` (newest first per worker); NotFoundError when there are none."""
    t = Route.__table__
    cond = [t.c.grid_code == code]
    if mode:
        cond.append(t.c.mode == mode)
    if kind:
        cond.append(t.c.kind == kind)
    routes = store.read_layer("routes", where=and_(*cond))
    if not len(routes):
        raise NotFoundError(f"no stored route for {code}" + (f" ({mode})" if mode else ""),
                            hint=f"plan it first: gridpatrol plan-routes --grid {code}")
    return routes.sort_values(["kind", "mode", "worker_index", "shift"], na_position="first")


def sheet_route(store: Store, row: pd.Series, *, lang: str = "zh") -> SheetRoute:
    """A SheetRoute (what the printers need) from a stored routes row, with its grid if stored."""
    stats = json.loads(row["stats_json"] or "{}")
    steps = json.loads(row["directions_json"] or "[]")
    if lang == "en":
        steps = [{**s, "text": s.get("text_en", s["text"]), "street": s.get("street_en", s.get("street"))} for s in steps]
    grid_geom, worker = None, stats.get("worker")
    g = store.read_layer("grids", where=Grid.__table__.c.code == row["grid_code"])
    if len(g):
        g = g.sort_values("plan_id").iloc[-1]
        grid_geom = g.geometry
        worker = worker or g.get("worker")
    elif stats.get("area_wkt"):
        grid_geom = shapely.from_wkt(stats["area_wkt"])
    notes = []
    unreachable = [i for i in stats.get("islands", []) if i.get("status") == "unreachable"]
    if unreachable:
        m = sum(i["length_m"] for i in unreachable)
        notes.append(f"未覆盖（无法到达）: {len(unreachable)} 处, {m:.0f} 米" if lang == "zh"
                     else f"Not covered (unreachable): {len(unreachable)} piece(s), {m:.0f} m")
        for k, isl in enumerate(unreachable[:ISLAND_NOTES]):
            lon, lat = isl["at"]
            why = isl.get("why" if lang == "zh" else "why_en")
            notes.append((f"  {k + 1}. {lon:.5f},{lat:.5f} 附近 {isl['length_m']:.0f} 米" if lang == "zh"
                          else f"  {k + 1}. near {lon:.5f},{lat:.5f}, {isl['length_m']:.0f} m") + (f"：{why}" if why and lang == "zh"
                                                                                                   else f": {why}" if why else ""))
        if len(unreachable) > ISLAND_NOTES:
            notes.append(f"  …另有 {len(unreachable) - ISLAND_NOTES} 处" if lang == "zh"
                         else f"  … and {len(unreachable) - ISLAND_NOTES} more")
    n_shifts = int(stats.get("shifts") or 1)
    if n_shifts > 1:
        shift = int(row.get("shift") or 1)
        notes.append(f"第 {shift} 班（共 {n_shifts} 班），约 {float(row['duration_s']) / 60:.0f} 分钟"
                     if lang == "zh" else f"shift {shift} of {n_shifts}, about {float(row['duration_s']) / 60:.0f} min")
    cycle = stats.get("cycle")
    if cycle:
        notes.append(f"巡查排班：{cycle['days']} 天一轮的第 {cycle['day']} 天（当天共约 {cycle['day_s'] / 60:.0f} 分钟）"
                     if lang == "zh" else
                     f"patrol calendar: day {cycle['day']} of a {cycle['days']}-day cycle (about {cycle['day_s'] / 60:.0f} min that day)")
    if stats.get("workers", 1) > 1:
        notes.append(f"{stats['workers']} 条路线之第 {int(row['worker_index']) + 1} 条" if lang == "zh"
                     else f"route {int(row['worker_index']) + 1} of {stats['workers']}")
    return SheetRoute(
        grid_code=row["grid_code"], mode=row["mode"], line=row.geometry, steps=steps, length_m=float(row["length_m"]),
        duration_s=float(row["duration_s"]), required_m=float(row["required_m"] or 0),
        lower_bound_m=float(row["lower_bound_m"] or 0) if stats.get("workers", 1) == 1 and n_shifts == 1 else None,
        grid=grid_geom, worker=worker if isinstance(worker, str) else None, worker_index=int(row["worker_index"]),
        synthetic=bool(stats.get("synthetic")), notes=notes,
        uturns=int(stats["uturns"]) if "uturns" in stats else None,
        uturns_dead_end=int(stats["uturns_dead_end"]) if "uturns_dead_end" in stats else None,
        shift=int(row.get("shift") or 1) if n_shifts > 1 else 0, shifts=n_shifts if n_shifts > 1 else 0,
    )


def print_route(
    store: Store,
    code: str,
    out: str | Path,
    *,
    mode: str | None = None,
    worker_index: int = 0,
    lang: str = "zh",
    gpx: str | Path | None = None,
    gpx_crs: str = "wgs84",
    geojson: str | Path | None = None,
    shift: int | None = None,
    timezone: str = "Asia/Shanghai",
) -> SheetRoute:
    """Write the A4 route sheet (and optionally GPX/GeoJSON) of the stored route of grid ``code``.

    A route cut into shifts is printed one shift per page (GPX: one track per shift), or only
    shift ``shift`` (1…n); the SheetRoute of the first shift printed is returned.
    """
    routes = read_routes(store, code, mode=mode)
    sel = routes[routes["worker_index"] == worker_index]
    if not len(sel):
        raise NotFoundError(f"route {code} has no worker {worker_index + 1}",
                            hint=f"it has {routes['worker_index'].nunique()} route(s)")
    if "shift" in sel.columns:
        sel = sel[sel["kind"] == sel["kind"].iloc[0]]
        sel = sel[sel["mode"] == sel["mode"].iloc[0]]
        if shift is not None:
            n = len(sel)
            sel = sel[sel["shift"].fillna(1).astype(int) == shift]
            if not len(sel):
                raise NotFoundError(f"route {code} has no shift {shift}", hint=f"it has {n} shift(s): 1…{n}")
    else:
        sel = sel.iloc[:1]
    srs = [sheet_route(store, row, lang=lang) for _, row in sel.iterrows()]
    bounds = shapely.union_all(list(sel.geometry)).bounds
    streets = store.read_layer("roads", bbox=_expand(bounds, 0.003))
    write_route_sheet(out, srs, streets=streets, lang=lang, timezone=timezone)
    if gpx:
        write_gpx(gpx, srs, crs=gpx_crs, lang=lang)
    if geojson:
        write_geojson(geojson, srs)
    return srs[0]


def route_folium_map(store: Store, code: str, *, mode: str | None = None, worker_index: int = 0):  # noqa: ANN201
    """A folium map (no tiles) of the stored route of ``code``; save it with api.static_assets.save_offline."""
    routes = read_routes(store, code, mode=mode)
    row = routes[routes["worker_index"] == worker_index].iloc[0]
    sr = sheet_route(store, row)
    streets = store.read_layer("roads", bbox=_expand(row.geometry.bounds, 0.003))
    return route_map(sr, streets=streets)
