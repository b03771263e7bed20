"""What the worker's phone page needs, read from the store: their grids, the shifts of their routes with steps placed along the line."""
from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.ops
from gridpatrol.gis.routing.calendar import cycle_day, planned_on
from gridpatrol.layers.models import Grid, Route
from gridpatrol.layers.store import Store
from gridpatrol.layers.visibility import current_grid_codes, worker_rows


def worker_grids(store: Store, worker: str) -> gpd.GeoDataFrame:
    """The worker's grids of the current plan: code, name, geometry (WGS-84), by code."""
    with store.engine.connect() as c:
        codes = list(c.execute(current_grid_codes(worker)).scalars())
    if not codes:
        return gpd.GeoDataFrame({"code": [], "name": []}, geometry=[], crs=4326)
    g = store.read_layer("grids", where=Grid.__table__.c.code.in_(codes))
    g = g.sort_values("plan_id").drop_duplicates("code", keep="last").sort_values("code")
    return g[["code", "name", "geometry"]].reset_index(drop=True)


def _along(line_m: shapely.LineString, points_m: list[shapely.Point], legs: list[float]) -> list[float]:
    """Distance along ``line_m`` of each step point, never going back: each is searched from the
    previous one on (a route passes some streets twice), within a window of the legs between."""
    out, prev, total = [], 0.0, line_m.length
    for k, p in enumerate(points_m):
        ahead = max(legs[k - 1] if k else 0.0, 0.0) * 2 + 60.0
        end = min(total, prev + ahead)
        piece = shapely.ops.substring(line_m, prev, end) if end > prev else None
        if piece is None or piece.is_empty or piece.length == 0:
            at = prev
        else:
            at = prev + piece.project(p)
        out.append(float(at))
        prev = at
    return out


def shift_rows(store: Store, worker: str, lang: str = "zh", *, today: date | None = None,
               timezone: str = "Asia/Shanghai") -> list[dict[str, Any]]:
    """Every stored coverage route (shift 1…n) of the worker's grids, ordered by grid, mode and shift.

    Each: id, grid_code, mode, shift, shifts, length_m, duration_s, ``line`` [[lon, lat, m], …]
    (m: metres along the route), ``steps`` [{text, street, action, distance_m, lon, lat, at_m}],
    and the patrol calendar: ``cycle_day``/``cycle_days`` (None without one) and ``today`` (the
    shift is due on ``today``, a date in ``timezone``; always true without a calendar).
    """
    tz = ZoneInfo(timezone)
    today = today or datetime.now(tz).date()
    t = Route.__table__
    routes = store.read_layer("routes", where=worker_rows(t, worker))
    if not len(routes):
        return []
    routes = routes.sort_values(["grid_code", "mode", "worker_index", "shift"], na_position="first")
    utm = routes.estimate_utm_crs()
    metric = routes.to_crs(utm)
    out = []
    for (_, row), line_m in zip(routes.iterrows(), metric.geometry):
        stats = json.loads(row["stats_json"] or "{}")
        steps = json.loads(row["directions_json"] or "[]")
        coords = np.asarray(row.geometry.coords)[:, :2]
        cm = np.asarray(line_m.coords)[:, :2]
        m = np.r_[0.0, np.cumsum(np.hypot(*np.diff(cm, axis=0).T))]
        pts = gpd.GeoSeries(shapely.points([s["lon"] for s in steps], [s["lat"] for s in steps]), crs=4326).to_crs(utm)
        at = _along(line_m, list(pts), [float(s.get("distance_m") or 0) for s in steps])
        en = lang == "en"
        cycle = stats.get("cycle") or {}
        due = True
        if cycle.get("days") and row.get("created_at") is not None:
            day1 = planned_on(pd.Timestamp(row["created_at"]), timezone)
            due = int(cycle["day"]) == cycle_day(day1, today, int(cycle["days"]))
        out.append({
            "cycle_day": cycle.get("day"), "cycle_days": cycle.get("days"), "today": due,
            "id": int(row["id"]), "grid_code": row["grid_code"], "mode": row["mode"],
            "worker_index": int(row["worker_index"]), "shift": int(row["shift"] or 1),
            "shifts": int(stats.get("shifts") or 1), "length_m": float(row["length_m"]),
            "duration_s": float(row["duration_s"]),
            "line": [[round(float(x), 7), round(float(y), 7), round(float(d), 1)] for (x, y), d in zip(coords, m)],
            "steps": [{"text": (s.get("text_en") or s["text"]) if en else s["text"],
                       "street": (s.get("street_en") or s.get("street")) if en else s.get("street"),
                       "action": s.get("action"), "distance_m": float(s.get("distance_m") or 0),
                       "lon": float(s["lon"]), "lat": float(s["lat"]), "at_m": round(a * float(m[-1]) / line_m.length, 1)
                       if line_m.length else 0.0} for s, a in zip(steps, at)],
        })
    return out

