"""Patrol reports from the store: a worker's grids, shift routes and tracks over a date range, assessed."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import shapely
from gridpatrol.gis.assessment import CalendarShift, GridInput, TrackInput, assess, judge_schedule
from gridpatrol.gis.errors import InputError, NotFoundError
from gridpatrol.gis.routing.calendar import planned_on
from gridpatrol.gis.streets import street_network
from gridpatrol.gis.tracks import WORK_HOURS, format_work_hours, outside_hours
from gridpatrol.layers.models import Route
from gridpatrol.layers.store import Store
from gridpatrol.layers.tracks import read_tracks
from sqlalchemy import and_

PAD_DEG = 0.01  # streets this far around the grids (~1 km) take part in matching
MAX_DAYS = 92


def local_window(date_from: date, date_to: date, tz: str) -> tuple[datetime, datetime]:
    """[start of ``date_from``, end of ``date_to``) in zone ``tz``, as UTC instants."""
    if date_to < date_from:
        raise InputError(f"--to {date_to} is before --from {date_from}", where="to")
    if (date_to - date_from).days >= MAX_DAYS:
        raise InputError(f"{(date_to - date_from).days + 1} days: a report covers at most {MAX_DAYS}", where="to")
    z = ZoneInfo(tz)
    start = datetime.combine(date_from, time(0), z).astimezone(UTC)
    end = datetime.combine(date_to + timedelta(days=1), time(0), z).astimezone(UTC)
    return start, end


def _local(ts: float, tz: str) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).isoformat(timespec="seconds")


def _calendar_shifts(routes: Any, kept: set[int], tz: str, cycle_start: date | None) -> list[CalendarShift]:
    """The kept shift routes that are on a patrol calendar (``stats.cycle``): day 1 is ``cycle_start``,
    else the local date the routes were planned (the phone page's rule, gis.routing.calendar)."""
    out = []
    for _, r in routes.iterrows():
        cyc = json.loads(r["stats_json"] or "{}").get("cycle") or {}
        if int(r["id"]) not in kept or not cyc.get("days") or not cyc.get("day"):
            continue
        if cycle_start is None and r.get("created_at") is None:
            continue
        day1 = cycle_start or planned_on(pd.Timestamp(r["created_at"]), tz)
        out.append(CalendarShift(str(r["grid_code"]), int(r["shift"] or 1), int(r["id"]), int(cyc["day"]),
                                 int(cyc["days"]), day1))
    return out


def _judge_grids(rep: dict[str, Any], schedule: list[dict[str, Any]], cal: list[CalendarShift]) -> None:
    """Grids on a calendar count shifts per due day (done / missed / pending); others per shift as before."""
    by_route: dict[int, list[dict[str, Any]]] = {}
    for row in schedule:
        by_route.setdefault(row["route_id"], []).append(row)
    on_calendar = {c.route_id: c for c in cal}
    for g in rep["grids"]:
        g["shifts_pending"] = 0
        if not any(s["route_id"] in on_calendar for s in g["shifts"]):
            continue
        for s in g["shifts"]:
            c, rows = on_calendar.get(s["route_id"]), by_route.get(s["route_id"], [])
            s["cycle_day"], s["cycle_days"] = (c.cycle_day, c.cycle_days) if c else (None, None)
            for status in ("done", "missed", "pending"):
                s[f"days_{status}"] = [r["date"] for r in rows if r["status"] == status]
        for status in ("done", "missed", "pending"):
            g[f"shifts_{status}"] = sum(len(s.get(f"days_{status}", [])) for s in g["shifts"])


def patrol_report(store: Store, worker: str, date_from: date, date_to: date, *, tz: str = "Asia/Shanghai",
                  sigma_m: float = 15.0, cycle_start: date | None = None,
                  hours: tuple[time, time] = WORK_HOURS, today: date | None = None) -> dict[str, Any]:
    """The assessment of ``worker``'s grids (newest plan) over the local dates ``date_from``…``date_to``.

    ``{"worker", "from", "to", "tz", "grids": [{"code", "covered_share", …, "shifts": […]}], "tracks": […],
    "schedule": […]}``. Shifts on a patrol calendar are judged per day they are due (day 1:
    ``cycle_start``, else the day they were planned; ``today`` and later: pending). Tracks are
    flagged ``outside_hours`` against the working ``hours`` given here (local time), whatever the
    hours were when they were stored. NotFoundError when the worker has no grid.
    """
    from gridpatrol.layers.grids import read_grids

    start, end = local_window(date_from, date_to, tz)
    grids = read_grids(store)
    mine = grids[grids["worker"] == worker]
    if not len(mine):
        raise NotFoundError(f"worker {worker!r} has no grid in the newest plan",
                            hint="assign a grid first: gridpatrol assign-worker")
    minx, miny, maxx, maxy = mine.total_bounds
    roads = store.read_layer("roads", bbox=(minx - PAD_DEG, miny - PAD_DEG, maxx + PAD_DEG, maxy + PAD_DEG))
    if not len(roads):
        raise InputError("no streets in the store around the worker's grids", hint="import the OSM extract first")
    net = street_network(roads, mode="walk")
    tf = net.transformer()

    def to_m(geom):
        return shapely.transform(geom, lambda xy: np.column_stack(tf.transform(xy[:, 0], xy[:, 1])))

    t = Route.__table__
    routes = store.read_layer("routes", where=and_(t.c.grid_code.in_(list(mine["code"])), t.c.kind == "coverage",
                                                   t.c.mode == "walk"))
    ginputs = []
    for _, g in mine.iterrows():
        shifts: dict[int, tuple[int, Any]] = {}
        for _, r in routes[routes["grid_code"] == g["code"]].sort_values(["worker_index", "shift", "id"]).iterrows():
            k = int(r["shift"]) if r["shift"] == r["shift"] and r["shift"] is not None else 1
            k += 100 * int(r["worker_index"] or 0)
            shifts.setdefault(k, (int(r["id"]), to_m(r.geometry)))
        name = g.get("name")
        ginputs.append(GridInput(str(g["code"]), to_m(g.geometry), name if isinstance(name, str) else None, shifts))
    tinputs, meta = [], {}
    for tr in read_tracks(store, worker=worker, start=start, end=end):
        x, y = tf.transform(tr["lon"], tr["lat"])
        flags = [f for f in tr["flags"] if f.get("kind") != "outside_hours"]
        late = outside_hours(np.sort(tr["t"]), tz=tz, hours=hours)
        tinputs.append(TrackInput(int(tr["id"]), np.asarray(x), np.asarray(y), tr["t"], flags + ([late] if late else [])))
        meta[int(tr["id"])] = {"start": _local(float(tr["t"].min()), tz), "end": _local(float(tr["t"].max()), tz),
                               "points": int(tr["n_points"]), "device": tr["device"], "source": tr["source"],
                               "route_id": tr["route_id"]}
    rep = assess(net, ginputs, tinputs, sigma_m=sigma_m)
    for row in rep["tracks"]:
        row.update(meta[row["id"]])
    today = today or datetime.now(ZoneInfo(tz)).date()
    cal = _calendar_shifts(routes, {rid for g in ginputs for rid, _ in g.shifts.values()}, tz, cycle_start)
    done_by = {s["route_id"]: s["tracks"] for g in rep["grids"] for s in g["shifts"]}
    track_day = {r["id"]: date.fromisoformat(r["start"][:10]) for r in rep["tracks"]}
    schedule = judge_schedule(cal, done_by, track_day, date_from, date_to, today)
    _judge_grids(rep, schedule, cal)
    tot_req = sum(g["required_m"] for g in rep["grids"])
    tot_cov = sum(g["covered_m"] for g in rep["grids"])
    rep.update(worker=worker, tz=tz, generated_at=datetime.now(ZoneInfo(tz)).isoformat(timespec="seconds"),
               schedule=schedule, today=today.isoformat(), work_hours=format_work_hours(hours),
               cycle_start=cycle_start.isoformat() if cycle_start else None,
               covered_share=round(tot_cov / tot_req, 4) if tot_req else 0.0,
               **{"from": date_from.isoformat(), "to": date_to.isoformat()})
    return rep
