"""Shifts: a grid's coverage route cut into closed routes from the station of at most M minutes each."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.routing.network import WALK_SPEED_MPS
from gridpatrol.gis.routing.route import CoverageRoute
from gridpatrol.gis.routing.router import Router
from gridpatrol.gis.routing.split import split_route
from gridpatrol.gis.streets import StreetNetwork

# Patrol-car pace by road class (km/h): slow enough to look, as fast as such a street allows.
DRIVE_KMH = {"trunk": 35.0, "primary": 30.0, "secondary": 30.0, "tertiary": 25.0, "unclassified": 20.0,
             "residential": 20.0, "living_street": 10.0, "service": 10.0, "track": 10.0}
DRIVE_DEFAULT_KMH = 20.0
MAX_SHIFTS = 200


def edge_speed_mps(net: StreetNetwork, mode: str, speed_kmh: float | None = None) -> np.ndarray:
    """Speed (m/s) on every edge of ``net``: ``speed_kmh`` if given, else walking 4.5 km/h and
    driving by road class (DRIVE_KMH). Raises InputError for a speed that is not positive."""
    if speed_kmh is not None:
        if not speed_kmh > 0:
            raise InputError(f"--speed-kmh must be positive, not {speed_kmh}")
        return np.full(net.n_edges, speed_kmh / 3.6)
    if mode == "walk":
        return np.full(net.n_edges, WALK_SPEED_MPS)
    hw = np.array([str(h).removesuffix("_link") for h in net.edge_highway], dtype=object)
    return np.array([DRIVE_KMH.get(h, DRIVE_DEFAULT_KMH) / 3.6 for h in hw])


def route_seconds(route: CoverageRoute, edge_s: np.ndarray) -> float:
    """Seconds to follow ``route`` with ``edge_s`` seconds per pass of each edge."""
    return float(sum(edge_s[t.edge] for t in route.traversals))


def cut_into_shifts(net: StreetNetwork, router: Router, whole: CoverageRoute, required: np.ndarray,
                    max_s: float, edge_s: np.ndarray, name: str = "grid", reorder: bool = True
                    ) -> tuple[list[CoverageRoute], dict[str, Any]]:
    """``whole`` cut into the fewest closed routes from its start found, each of at most ``max_s``
    seconds (``edge_s``: seconds per pass of each edge), together covering ``required``.

    Each shift's passes are ordered for the fewest U-turns (``reorder``, as ``split_route``).
    Returns the shifts (``shift`` = 1…n, ``duration_s`` set) and a report: their times and a
    lower bound on the number of shifts, the larger of ceil(optimal coverage time / M) and 1, with
    the round trip to the farthest street. Raises InputError when one street alone needs more.
    """
    req = np.asarray(required, dtype=np.int64)
    out_ = router.dijkstra([whole.start_node])
    back_ = router.dijkstra([whole.start_node], reverse=True)
    # Round trip (seconds) to each required street: the fastest way there, along it, back.
    # The Dijkstra distances are metres; the time per metre on the way is at most 1 / slowest speed.
    per_m = edge_s / np.maximum(net.edge_length_m, 1e-9)
    fast = float(np.min(per_m[net.edge_length_m > 0])) if np.any(net.edge_length_m > 0) else 0.0
    d_out, d_back = out_[0][0], back_[0][0]
    u, v = net.edge_u[req], net.edge_v[req]
    fwd = d_out[u] + d_back[v]
    rev = np.where(net.edge_oneway[req] & router.directed, np.inf, d_out[v] + d_back[u])
    trip_s = np.minimum(fwd, rev) * fast + edge_s[req]
    far = int(np.argmax(trip_s)) if len(req) else 0
    # Optimal coverage time: no shorter than the required streets at their speeds, nor than the
    # proven lower bound on the length at the fastest pace.
    lb_time = max(float(edge_s[req].sum()), whole.lower_bound_m * fast)
    total = route_seconds(whole, edge_s)
    report: dict[str, Any] = {
        "max_s": max_s, "whole_s": total, "optimal_lower_bound_s": lb_time,
        "farthest_round_trip_s": float(trip_s[far]) if len(req) else 0.0,
        "lower_bound_shifts": max(1, math.ceil(lb_time / max_s - 1e-9)),
    }
    if len(req) and trip_s[far] > max_s * (1 + 1e-9):
        raise InputError(
            f"a street of the grid alone needs a {trip_s[far] / 60:.0f}-minute round trip from the start, over the "
            f"{max_s / 60:.0f}-minute limit", where=name,
            hint=f"raise --max-minutes to at least {math.ceil(trip_s[far] / 60)} or move the station nearer")
    if total <= max_s:
        shifts = [whole]
    else:
        shifts = []
        req_set = set(req.tolist())
        for k in range(max(2, report["lower_bound_shifts"]), MAX_SHIFTS + 1):
            shifts = split_route(net, router, whole, k, req_set, out_, back_, reorder)
            if len(shifts) < k:  # no more required passes to share out
                k = MAX_SHIFTS
            if max(route_seconds(r, edge_s) for r in shifts) <= max_s:
                break
            if k >= MAX_SHIFTS:
                raise InputError(f"no cut into {len(shifts)} shifts keeps each within {max_s / 60:.0f} minutes",
                                 where=name, hint="raise --max-minutes")
    for i, r in enumerate(shifts):
        r.shift = i + 1
        r.worker_index = 0
        r.duration_s = route_seconds(r, edge_s)
    report["shifts"] = len(shifts)
    report["shift_s"] = [r.duration_s for r in shifts]
    return shifts, report
