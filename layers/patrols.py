"""Patrol reports from the store: a worker's grids, shift routes and tracks over a date range, assessed."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from gridpatrol.gis.assessment import GridInput, TrackInput, assess
from gridpatrol.gis.errors import InputError, NotFoundError
from gridpatrol.gis.streets import street_network
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


def patrol_report(store: Store, worker: str, date_from: date, date_to: date, *, tz: str = "Asia/Shanghai",
                  sigma_m: float = 15.0) -> dict[str, Any]:
    """The assessment of ``worker``'s grids (newest plan) over the local dates ``date_from``…``date_to``.

    ``{"worker", "from", "to", "tz", "grids": [{"code", "covered_share", …, "shifts": […]}], "tracks": […]}``;
    NotFoundError when the worker has no grid.
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
        tinputs.append(TrackInput(int(tr["id"]), np.asarray(x), np.asarray(y), tr["t"], tr["flags"]))
        meta[int(tr["id"])] = {"start": _local(float(tr["t"].min()), tz), "end": _local(float(tr["t"].max()), tz),
                               "points": int(tr["n_points"]), "device": tr["device"], "source": tr["source"],
                               "route_id": tr["route_id"]}
    rep = assess(net, ginputs, tinputs, sigma_m=sigma_m)
    for row in rep["tracks"]:
        row.update(meta[row["id"]])
    tot_req = sum(g["required_m"] for g in rep["grids"])
    tot_cov = sum(g["covered_m"] for g in rep["grids"])
    rep.update(worker=worker, tz=tz, generated_at=datetime.now(ZoneInfo(tz)).isoformat(timespec="seconds"),
               covered_share=round(tot_cov / tot_req, 4) if tot_req else 0.0,
               **{"from": date_from.isoformat(), "to": date_to.isoformat()})
    return rep
