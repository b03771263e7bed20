"""Patrol assessment: what matched tracks covered of each grid's streets and shifts, time in grid, stops."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import shapely
from gridpatrol.gis.mapmatch import HmmMatcher, MatchResult, planned_moves, planned_passes
from gridpatrol.gis.routing.area import required_mask
from gridpatrol.gis.routing.calendar import cycle_day
from gridpatrol.gis.streets import StreetNetwork
from shapely.geometry.base import BaseGeometry

SHIFT_DONE_SHARE = 0.8  # a patrol that walks this share of a shift's streets did the shift
STOP_RADIUS_M, STOP_MIN_S = 25.0, 180.0  # staying within this radius this long is a stop
GAP_S = 120.0  # fixes further apart in time than this: the time between does not count as in the grid
IN_GRID_M = 20.0  # a fix this close to the grid (GPS noise) counts as in it


@dataclass
class GridInput:
    """A grid to assess: code, polygon (metric CRS of the network), shift routes (metric lines, by shift number)."""

    code: str
    polygon_m: BaseGeometry
    name: str | None = None
    shifts: dict[int, tuple[int, BaseGeometry]] = field(default_factory=dict)  # shift → (route id, line)


@dataclass
class TrackInput:
    """A stored track in the network's metric CRS, with its flags (a flagged track is listed, not counted)."""

    id: int
    x: np.ndarray
    y: np.ndarray
    t: np.ndarray
    flags: list[dict[str, Any]]


def stops(x: np.ndarray, y: np.ndarray, t: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Stops as (x, y, start t, duration s): runs staying within STOP_RADIUS_M of their first fix for STOP_MIN_S."""
    out = []
    i, n = 0, len(t)
    while i < n:
        j = i
        while j + 1 < n and np.hypot(x[j + 1] - x[i], y[j + 1] - y[i]) <= STOP_RADIUS_M:
            j += 1
        if t[j] - t[i] >= STOP_MIN_S:
            out.append((float(x[i:j + 1].mean()), float(y[i:j + 1].mean()), float(t[i]), float(t[j] - t[i])))
            i = j + 1
        else:
            i += 1
    return out


def smoothed_length(x: np.ndarray, y: np.ndarray, t: np.ndarray, window_s: float = 20.0) -> float:
    """Length (m) of the track through its positions averaged over ``window_s`` (noise does not add metres)."""
    if len(t) < 2:
        return 0.0
    b = np.floor((t - t[0]) / window_s).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    n = np.diff(np.r_[starts, len(t)])
    mx, my = np.add.reduceat(x, starts) / n, np.add.reduceat(y, starts) / n
    return float(np.hypot(np.diff(mx), np.diff(my)).sum())


def time_inside(x: np.ndarray, y: np.ndarray, t: np.ndarray, polygon_m: BaseGeometry) -> float:
    """Seconds between consecutive fixes (at most GAP_S apart) that are both in the grid (grown by IN_GRID_M)."""
    if len(t) < 2:
        return 0.0
    area = polygon_m.buffer(IN_GRID_M)
    shapely.prepare(area)
    inside = shapely.contains_xy(area, x, y)
    dt = np.diff(t)
    return float(dt[inside[1:] & inside[:-1] & (dt <= GAP_S)].sum())


def shift_edges(net: StreetNetwork, required: np.ndarray, line_m: BaseGeometry, tol_m: float = 3.0) -> np.ndarray:
    """The grid's streets (mask ``required``) a shift's route runs along: half their length within ``tol_m`` of it."""
    idx = np.flatnonzero(required)
    if not len(idx):
        return idx
    area = line_m.buffer(tol_m)
    shapely.prepare(area)
    g = net.edge_geom[idx]
    share = shapely.length(shapely.intersection(g, area)) / np.maximum(shapely.length(g), 1e-9)
    return idx[share >= 0.5]


def assess(net: StreetNetwork, grids: list[GridInput], tracks: list[TrackInput], *,
           sigma_m: float = 15.0) -> dict[str, Any]:
    """Per grid: required street length, covered share, distance, time in grid, stops, shifts done/missed;
    per track: its numbers and flags. Flagged tracks are not counted. Lengths in metres, times in seconds."""
    plan = [line for g in grids for _, line in g.shifts.values()]
    matcher = HmmMatcher(net, sigma_m=sigma_m, planned=planned_passes(net, plan) if plan else None,
                         plan_moves=planned_moves(net, plan) if plan else None)
    counted = [tr for tr in tracks if not tr.flags]
    walked: dict[int, np.ndarray] = {}
    union = MatchResult(net.n_edges)
    track_rows = []
    for tr in tracks:
        row: dict[str, Any] = {"id": tr.id, "counted": not tr.flags, "flags": tr.flags,
                               "distance_m": round(smoothed_length(tr.x, tr.y, tr.t), 1),
                               "duration_s": round(float(tr.t[-1] - tr.t[0]), 1) if len(tr.t) else 0.0}
        if not tr.flags:
            m: MatchResult = matcher.match(tr.x, tr.y, tr.t)
            walked[tr.id] = m.covered_m(net)
            for e, iv in m.intervals.items():
                union.intervals.setdefault(e, []).extend(iv)
            row["matched_pieces"] = m.pieces
        track_rows.append(row)
    all_walked = union.covered_m(net)  # intervals of every counted track together: two halves make a whole
    grid_rows = []
    for g in grids:
        req = required_mask(net, g.polygon_m)
        req_m = float(net.edge_length_m[req].sum())
        cov_m = float(np.minimum(all_walked[req], net.edge_length_m[req]).sum())
        dist = tin = 0.0
        n_stops = 0
        area = g.polygon_m.buffer(IN_GRID_M)
        for tr in counted:
            tin += time_inside(tr.x, tr.y, tr.t, g.polygon_m)
            inside = shapely.contains_xy(area, tr.x, tr.y)
            if inside.sum() >= 2:
                dist += smoothed_length(tr.x[inside], tr.y[inside], tr.t[inside])
            n_stops += sum(1 for sx, sy, _, _ in stops(tr.x, tr.y, tr.t) if shapely.contains_xy(area, sx, sy))
        shift_rows = []
        for shift, (route_id, line) in sorted(g.shifts.items()):
            edges = shift_edges(net, req, line)
            s_req = float(net.edge_length_m[edges].sum())
            patrols = []
            for tid, w in walked.items():
                share = float(np.minimum(w[edges], net.edge_length_m[edges]).sum()) / s_req if s_req else 0.0
                if share >= SHIFT_DONE_SHARE:
                    patrols.append(tid)
            best = max((float(np.minimum(w[edges], net.edge_length_m[edges]).sum()) / s_req
                        for w in walked.values()), default=0.0) if s_req else 0.0
            shift_rows.append({"shift": shift, "route_id": route_id, "required_m": round(s_req, 1),
                               "best_share": round(best, 4), "done": len(patrols), "tracks": patrols})
        grid_rows.append({
            "code": g.code, "name": g.name, "required_m": round(req_m, 1), "covered_m": round(cov_m, 1),
            "covered_share": round(cov_m / req_m, 4) if req_m else 0.0,
            "distance_m": round(dist, 1), "time_in_grid_s": round(tin, 1), "stops": n_stops,
            "shifts": shift_rows, "shifts_done": sum(s["done"] for s in shift_rows),
            "shifts_missed": sum(1 for s in shift_rows if not s["done"]),
        })
    return {"grids": grid_rows, "tracks": track_rows, "tracks_counted": len(counted),
            "tracks_flagged": len(tracks) - len(counted)}


@dataclass
class CalendarShift:
    """A shift route on a patrol calendar: due on day ``cycle_day`` of every ``cycle_days``, day 1 being ``day1``."""

    grid_code: str
    shift: int
    route_id: int
    cycle_day: int
    cycle_days: int
    day1: date


def judge_schedule(shifts: list[CalendarShift], done_by: dict[int, list[int]], track_day: dict[int, date],
                   date_from: date, date_to: date, today: date) -> list[dict[str, Any]]:
    """The 排班 of ``date_from``…``date_to``: one row per shift and day it is due, with its status.

    ``done_by``: route id → the counted tracks that walked the shift (≥ SHIFT_DONE_SHARE of its
    streets); ``track_day``: track id → its local date. A due shift is ``done`` when one of those
    tracks was walked on that date, ``pending`` on ``today`` or later, else ``missed`` (walking it
    on another day does not make up a day: that walk is listed under ``walked_on``)."""
    rows = []
    day = date_from
    while day <= date_to:
        for s in shifts:
            if cycle_day(s.day1, day, s.cycle_days) != s.cycle_day:
                continue
            tracks = [t for t in done_by.get(s.route_id, []) if track_day.get(t) == day]
            status = "done" if tracks else "pending" if day >= today else "missed"
            rows.append({"date": day.isoformat(), "cycle_day": s.cycle_day, "cycle_days": s.cycle_days,
                         "grid_code": s.grid_code, "shift": s.shift, "route_id": s.route_id, "status": status,
                         "tracks": tracks, "walked_on": sorted({track_day[t].isoformat() for t in done_by.get(s.route_id, [])
                                                               if t in track_day and track_day[t] != day})})
        day += timedelta(days=1)
    return rows
