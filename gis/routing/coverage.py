"""Street-coverage patrol routes per grid: exact walking postman, one-way-aware driving, k workers."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from gridpatrol.gis.errors import GridPatrolError, InputError
from gridpatrol.gis.routing.area import GridArea, grid_area
from gridpatrol.gis.routing.circuit import TURN_COST_U, euler_circuit
from gridpatrol.gis.routing.network import Traversal, components, odd_nodes
from gridpatrol.gis.routing.postman import (
    connectors,
    drive_postman_mip,
    item_groups,
    tjoin,
)
from gridpatrol.gis.routing.route import CoverageRoute, make_route
from gridpatrol.gis.routing.router import Router
from gridpatrol.gis.routing.rural_postman import mixed_rural_postman, rural_postman
from gridpatrol.gis.routing.shifts import cut_into_shifts, edge_speed_mps, route_seconds
from gridpatrol.gis.routing.split import longest_route_bound, split_route
from gridpatrol.gis.streets import MODES, StreetNetwork, nearest_node
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from shapely.geometry.base import BaseGeometry

BALANCE_TARGET = 1.10  # k routes: the longest within 10 % of their mean
RPP_TIME_S = 10.0  # walking grids with street islands: seconds for the exact rural-postman MIP
JOIN_ROUNDS = 50  # street pieces are joined in at most this many rounds


@dataclass
class CoveragePlan:
    """The result of plan_coverage: one or more closed routes and the report on the whole grid."""

    network: StreetNetwork
    mode: str
    routes: list[CoverageRoute]
    required_edges: np.ndarray  # edge indices of the grid's streets
    required_m: float
    length_m: float
    lower_bound_m: float
    gap: float
    exact: bool
    start_node: int
    start_snap_m: float
    islands: list[dict[str, Any]]
    unreachable_edges: np.ndarray
    warnings: list[str]
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Task:
    """What the postman steps work on: the grid's reachable streets and the start."""

    net: StreetNetwork
    router: Router
    mode: str
    start_node: int
    reach: np.ndarray  # nodes in the start's (strongly) connected part
    req_idx: np.ndarray  # the grid's streets reachable from the start
    required_m: float
    piece_of_edge: np.ndarray  # piece of the grid's streets (among themselves) of each of req_idx
    start_on_streets: bool
    deadline: float  # perf_counter time by which the solvers stop
    time_limit_s: float
    name: str

    @property
    def directed(self) -> bool:
        """Driving: one-way streets keep their direction."""
        return self.router.directed

    @property
    def one_piece(self) -> bool:
        """The grid's streets are connected among themselves."""
        return len(np.unique(self.piece_of_edge)) == 1


@dataclass
class _Solution:
    """The passes of one closed walk over the grid's streets and what is proven about it."""

    items: list[Traversal]
    bound_m: float  # lower bound on the deadhead metres
    exact: bool
    rounds: int  # rounds of joining street pieces
    conns: list[list[int]]  # node paths joining pieces
    solver: dict[str, Any]


def plan_coverage(
    roads: gpd.GeoDataFrame | StreetNetwork,
    polygon: BaseGeometry,
    *,
    mode: str = "walk",
    start: tuple[float, float] | None = None,
    workers: int = 1,
    time_limit_s: float = 60.0,
    max_start_m: float = 1000.0,
    buffer_m: float = 1500.0,
    incidents: gpd.GeoSeries | None = None,
    name: str = "grid",
    max_minutes: float | None = None,
    speed_kmh: float | None = None,
) -> CoveragePlan:
    """Plan closed routes that cover every street of ``polygon`` (EPSG:4326) from a start point.

    ``roads`` is the roads layer (EPSG:4326) with the streets around the polygon, or a
    StreetNetwork of ``mode`` built once for a whole city (faster for many grids); streets meeting
    the polygon's box grown by ``buffer_m`` may be used. ``start`` is (lon, lat), snapped to the
    nearest street node (at most ``max_start_m`` away); by default the street node nearest the
    polygon's centre. Walking routes are exact; driving keeps to one-way streets within
    ``time_limit_s`` with a certified lower bound. ``workers`` > 1 splits the route into that many
    closed routes from the start. Streets not reachable from the start are left out and reported
    in ``islands``. ``incidents`` (points, EPSG:4326) weight streets for the hot-spot share in
    ``stats``. ``max_minutes``: a route that takes longer is cut into shifts of at most that many
    minutes (``stats["shifts"]``); times at ``speed_kmh``, by default walking 4.5 km/h and
    driving by road class (gis.routing.shifts). Raises InputError for an area without streets, a start too far away or bad options.
    """
    t0 = time.perf_counter()
    _check_options(roads, mode, workers, polygon, name, max_minutes)
    area = grid_area(roads, polygon, mode, buffer_m=buffer_m,
                     walk_box_ok=mode == "walk" and start is None and workers == 1)
    warnings = _street_warnings(area, mode, name)
    router = Router(area.net, mode == "drive")
    start_node, snap, comp = _start(area, router, start, max_start_m, name)
    task, unreachable = _task(area, router, mode, start_node, comp, t0, time_limit_s, name)
    islands = _islands(task, unreachable, warnings)
    sol = _solve(task)
    lower = task.required_m + sol.bound_m
    whole, turn_bound = _circuit(task, sol, lower)
    routes, bound_k = _share_out(task, whole, workers, lower)
    shift_report = None
    if max_minutes is not None or speed_kmh is not None:
        edge_s = task.net.edge_length_m / edge_speed_mps(task.net, mode, speed_kmh)
        whole.duration_s = route_seconds(whole, edge_s)
        if max_minutes is not None:
            routes, shift_report = cut_into_shifts(task.net, router, whole, task.req_idx, max_minutes * 60.0, edge_s, name)
    stats = _stats(task, sol, whole, turn_bound, unreachable, t0)
    if shift_report is not None:
        stats["shifts"] = shift_report
    if workers > 1:
        _worker_stats(stats, warnings, routes, workers, bound_k, len(task.req_idx))
    if incidents is not None and len(incidents):
        stats.update(_hot_spots(task.net, area.required, unreachable, incidents, area.crs))
    return CoveragePlan(
        network=task.net, mode=mode, routes=routes, required_edges=task.req_idx, required_m=task.required_m,
        length_m=whole.length_m, lower_bound_m=whole.lower_bound_m, gap=whole.gap, exact=sol.exact,
        start_node=start_node, start_snap_m=snap, islands=islands, unreachable_edges=unreachable,
        warnings=warnings, stats=stats,
    )


def _check_options(roads: gpd.GeoDataFrame | StreetNetwork, mode: str, workers: int, polygon: BaseGeometry,
                   name: str, max_minutes: float | None = None) -> None:
    """Raise InputError for an unknown mode, fewer than one worker, an empty polygon or a network of another mode."""
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}", where=name, hint="use walk or drive")
    if workers < 1:
        raise InputError(f"workers must be at least 1, not {workers}", where=name)
    if max_minutes is not None and (workers > 1 or not max_minutes > 0):
        raise InputError(f"--max-minutes must be positive and used with one worker (got {max_minutes}, {workers} workers)",
                         where=name, hint="cut a grid into shifts of one worker, or into workers, not both")
    if polygon is None or polygon.is_empty or polygon.area == 0:
        raise InputError("the area to cover is empty", where=name, hint="pass a polygon with area")
    if isinstance(roads, StreetNetwork) and roads.mode != mode:
        raise InputError(f"the street network was built for {roads.mode}, not {mode}", where=name)


def _street_warnings(area: GridArea, mode: str, name: str) -> list[str]:
    """The warning for a grid covered along its edge; InputError for a grid with no street at all."""
    warnings: list[str] = []
    net, req = area.net, area.required
    if area.along_edge:
        warnings.append(f"no {'walkable' if mode == 'walk' else 'drivable'} street lies inside the area: "
                        f"the route covers the {int(req.sum())} street segment(s) along its edge "
                        f"({net.edge_length_m[req].sum():.0f} m)")
    if not req.any():
        raise InputError(f"no {'walkable' if mode == 'walk' else 'drivable'} streets inside the area or along its edge",
                         where=name, hint="check the grid polygon and that the roads layer was imported for this area")
    return warnings


def _start(area: GridArea, router: Router, start: tuple[float, float] | None, max_start_m: float, name: str
           ) -> tuple[int, float, np.ndarray]:
    """(start node, metres snapped, strongly connected part of every node)."""
    net, req = area.net, area.required
    # Parts of the network (strongly connected when driving; a walking graph holds both
    # directions of every street, so there its strong parts are its parts).
    _, comp = connected_components(router.graph, directed=True, connection="strong")
    if start is not None:
        sx, sy = area.to_metric.transform(*start)
        start_node, snap = nearest_node(net, sx, sy)
        if snap > max_start_m:
            raise InputError(
                f"start point {start[0]:.6f},{start[1]:.6f} is {snap / 1000:.1f} km from the nearest street of the area",
                where=name, hint=f"give a start (station) within {max_start_m:.0f} m of the grid's streets, as LON,LAT in WGS-84")
        return start_node, snap, comp
    # Default start: in the part of the street network holding most of the grid's streets
    # (else a detached courtyard lane near the centre would leave the rest unreachable).
    req_e = np.flatnonzero(req)
    same = comp[net.edge_u[req_e]] == comp[net.edge_v[req_e]]
    weight = np.bincount(comp[net.edge_u[req_e[same]]], weights=net.edge_length_m[req_e[same]], minlength=comp.max() + 1)
    best = int(np.argmax(weight))
    main = req_e[same & (comp[net.edge_u[req_e]] == best)]
    if len(main) == 0:  # no grid street lies inside one strongly connected part (driving)
        main = req_e
    rp = area.polygon_m.representative_point()
    ends = np.unique(np.concatenate([net.edge_u[main], net.edge_v[main]]))
    start_node, _ = nearest_node(net, rp.x, rp.y, ends)
    return start_node, 0.0, comp


def _task(area: GridArea, router: Router, mode: str, start_node: int, comp: np.ndarray, t0: float,
          time_limit_s: float, name: str) -> tuple[_Task, np.ndarray]:
    """The postman task of the grid's streets reachable from the start (both ways when driving), and
    the edges left out."""
    net = area.net
    reach = comp == comp[start_node]
    req_idx = np.flatnonzero(area.required)
    ok_edge = reach[net.edge_u[req_idx]] & reach[net.edge_v[req_idx]]
    unreachable = req_idx[~ok_edge]
    req_idx = req_idx[ok_edge]
    if len(req_idx) == 0:
        raise InputError("none of the area's streets can be reached from the start point",
                         where=name, hint="move the start onto a street connected to the grid")
    piece_of_edge = components(net.n_nodes, net.edge_u[req_idx], net.edge_v[req_idx])[net.edge_u[req_idx]]
    on_streets = bool(np.any(net.edge_u[req_idx] == start_node) or np.any(net.edge_v[req_idx] == start_node))
    task = _Task(net, router, mode, start_node, reach, req_idx, float(net.edge_length_m[req_idx].sum()),
                 piece_of_edge, on_streets, t0 + time_limit_s, time_limit_s, name)
    return task, unreachable


def _islands(task: _Task, unreachable: np.ndarray, warnings: list[str]) -> list[dict[str, Any]]:
    """Pieces of the grid's streets other than the main one: covered via outside streets, or unreachable."""
    net, req_idx = task.net, task.req_idx
    islands: list[dict[str, Any]] = []
    comp_of_edge = task.piece_of_edge
    comps = np.unique(comp_of_edge)
    if len(comps) > 1:
        main = int(np.argmax([net.edge_length_m[req_idx[comp_of_edge == k]].sum() for k in comps]))
        for i, k in enumerate(comps):
            if i != main:
                e = req_idx[comp_of_edge == k]
                islands.append({"status": "covered via outside streets", "edges": len(e),
                                "length_m": float(net.edge_length_m[e].sum()),
                                "at": _lonlat(net, int(net.edge_u[e[0]]))})
    if len(unreachable):
        ul = components(net.n_nodes, net.edge_u[unreachable], net.edge_v[unreachable])[net.edge_u[unreachable]]
        reach_nodes = np.flatnonzero(task.reach)
        tree = cKDTree(net.node_xy[reach_nodes])
        for k in np.unique(ul):
            e = unreachable[ul == k]
            ends = np.unique(np.concatenate([net.edge_u[e], net.edge_v[e]]))
            gap, near = tree.query(net.node_xy[ends])
            j = int(np.argmin(gap))
            islands.append({"status": "unreachable", "edges": len(e), "length_m": float(net.edge_length_m[e].sum()),
                            "at": _lonlat(net, int(ends[j])),
                            # Where a connector would join it to the streets the route can reach.
                            "gap_m": float(gap[j]), "nearest_reachable_at": _lonlat(net, int(reach_nodes[near[j]])),
                            "node_osm": [int(x) for x in net.node_osm[ends][:200]]})
        warnings.append(f"{len(unreachable)} street segment(s), {net.edge_length_m[unreachable].sum():.0f} m, "
                        "cannot be reached from the start and are left out")
    return islands


def _solve(task: _Task) -> _Solution:
    """The closed walk over the grid's streets: the fast driving model, else the postman with the
    pieces joined, then the exact rural postman where pieces had to be joined; and its bounds."""
    fast = None
    if task.directed:
        # Driving: the mixed postman on the terminal link graph (balance + connectivity cuts) is
        # small and usually proven optimal in seconds; the whole-network MIP is the fallback.
        fast = mixed_rural_postman(task.net, task.router, task.req_idx, task.start_node, task.time_limit_s / 2, np.inf)
    if fast is not None and fast["items"] is not None:
        sol = _Solution(fast["items"], fast["bound"], True, 0, [], {"mip_status": "optimal", "model": "terminal links"})
    else:
        sol = _joined(task)
        if fast is not None:
            sol.bound_m = max(sol.bound_m, fast["bound"])  # valid even though it ran out of time
        if sol.rounds or (task.directed and not sol.exact):
            _rural_postman(task, sol)
        else:
            sol.exact = sol.exact and sol.rounds == 0
    if task.directed:
        _undirected_bound(task, sol)
    sol.solver["join_rounds"] = sol.rounds
    return sol


def _eulerize(task: _Task, conns: list[list[int]]) -> tuple[list[Traversal], float, bool, dict[str, Any]]:
    """Required passes + connector passes, made Eulerian at least cost (exact for fixed conns):
    (passes, deadhead bound, proven, solver report)."""
    net, router, req_idx = task.net, task.router, task.req_idx
    fixed = [Traversal(int(e), True, True) for e in req_idx]
    for p in conns:
        fixed += router.traversals(p)
    if not task.directed:
        fe = np.fromiter((t.edge for t in fixed), dtype=np.int64, count=len(fixed))
        T = odd_nodes(net.n_nodes, np.concatenate([net.edge_u[fe], net.edge_v[fe]]))
        # With the grid's streets in one piece they hold a T-join no longer than they are,
        # so no pair of the optimal matching is farther apart than required_m.
        # (Dijkstra's arcs are at least 1 µm long: allow for that.)
        limit = task.required_m + 1e-6 * len(req_idx) if task.one_piece and not conns else np.inf
        paths, m = tjoin(router, T, limit=limit)
        extra = [t for p in paths for t in router.traversals(p)]
        return fixed + extra, m.lower_bound, m.exact, {"matching": m.method, "odd_nodes": int(len(T)),
                                                       "matching_iterations": m.iterations}
    # Half of what is left: islands still need time for the rural-postman step.
    left = max(1.0, (task.deadline - time.perf_counter()) / 2)
    trav, _obj, bound, status = drive_postman_mip(net, req_idx, conns, task.reach, left)
    return trav + fixed[len(req_idx):], bound, status == "optimal", {"mip_status": status}


def _joined(task: _Task) -> _Solution:
    """The postman without connectivity (its bound holds for the true problem), its pieces joined
    along a minimum spanning tree of shortest paths (Frederickson) and solved again until one
    closed walk remains, or the first solution with each joining path walked there and back
    when that is shorter."""
    net, router, start = task.net, task.router, task.start_node
    items, bound, exact, solver = _eulerize(task, [])
    first_items = items
    conns: list[list[int]] = []
    if task.one_piece and task.start_on_streets:
        # The grid's streets are one piece and the start is on them: so is the route.
        pieces = [np.zeros(0, dtype=np.int64)]
    else:
        pieces = item_groups(net, items, start)
    first_pieces = pieces
    rounds = 0
    while len(pieces) > 1 and rounds < JOIN_ROUNDS:
        rounds += 1
        more, _ = connectors(router, pieces)
        conns += more
        items, _b, _ok, solver = _eulerize(task, conns)
        pieces = item_groups(net, items, start)
    if len(pieces) > 1:
        raise GridPatrolError("could not join the grid's street pieces into one route", where=task.name)
    if rounds:
        more, _ = connectors(router, first_pieces)
        alt = list(first_items)
        for p in more:
            alt += router.traversals(p) * (1 if task.directed else 2)
        if sum(net.edge_length_m[t.edge] for t in alt) < sum(net.edge_length_m[t.edge] for t in items):
            items, conns = alt, more
    return _Solution(items, bound, exact, rounds, conns, solver)


def _rural_postman(task: _Task, sol: _Solution) -> None:
    """Solve the rural postman exactly (parity/balance + connectivity cuts) as time allows: its
    bound holds even when it stops early; its route replaces ``sol``'s when shorter."""
    net, router = task.net, task.router
    best_m = float(sum(net.edge_length_m[t.edge] for t in sol.items)) - task.required_m
    if task.directed:
        left = max(1.0, task.deadline - time.perf_counter())
        rpp = mixed_rural_postman(net, router, task.req_idx, task.start_node, left, best_m)
    else:
        rpp = rural_postman(net, router, task.req_idx, task.start_node, min(task.time_limit_s, RPP_TIME_S), best_m)
    sol.solver["rpp"] = rpp["status"]
    sol.bound_m = max(sol.bound_m, rpp["bound"])
    # Optimal: either its route, or (when no shorter) the route at hand already was optimal.
    sol.exact = (sol.exact and sol.rounds == 0) or rpp["status"] == "optimal"
    if rpp["items"] is not None:
        sol.items, sol.conns = rpp["items"], []


def _undirected_bound(task: _Task, sol: _Solution) -> None:
    """Raise a driving bound to the walking one: ignoring one-way streets relaxes the problem."""
    net, req_idx = task.net, task.req_idx
    ends = np.concatenate([net.edge_u[req_idx], net.edge_v[req_idx]])
    _, m_und = tjoin(Router(net, False), odd_nodes(net.n_nodes, ends))
    sol.solver["undirected_bound_m"] = task.required_m + m_und.lower_bound
    sol.solver["mip_bound_m"] = task.required_m + sol.bound_m
    sol.bound_m = max(sol.bound_m, m_und.lower_bound)


def _circuit(task: _Task, sol: _Solution, lower: float) -> tuple[CoverageRoute, int]:
    """The one closed route in few U-turns and turns, and the lower bound on its turn cost."""
    net = task.net
    out_b, in_b = net.bearings()
    circuit, bounds = euler_circuit(net, sol.items, task.start_node, task.directed, out_b, in_b)
    whole = make_route(net, task.mode, task.start_node, circuit, set(task.req_idx.tolist()), lower,
                       uturn_bound=bounds.uturns)
    if sol.exact:
        # Proven optimal: the bound and the length are the same number up to rounding.
        whole.lower_bound_m = min(whole.lower_bound_m, whole.length_m)
    return whole, bounds.turn_cost


def _share_out(task: _Task, whole: CoverageRoute, workers: int, lower: float
               ) -> tuple[list[CoverageRoute], tuple[float, float]]:
    """The routes of ``workers`` workers, and (bound on the longest, round trip to the farthest street)."""
    if workers == 1:
        return [whole], (0.0, 0.0)
    # Shortest ways from the start and back to it: the split closes its pieces along them,
    # and they give the bound on its longest route.
    out_ = task.router.dijkstra([task.start_node])
    back_ = task.router.dijkstra([task.start_node], reverse=True)
    routes = split_route(task.net, task.router, whole, workers, set(task.req_idx.tolist()), out_, back_)
    bound = longest_route_bound(task.net, task.directed, task.req_idx, lower, workers, out_[0][0], back_[0][0])
    return routes, bound


def _stats(task: _Task, sol: _Solution, whole: CoverageRoute, turn_bound: int, unreachable: np.ndarray,
           t0: float) -> dict[str, Any]:
    """The figures of the whole route reported in ``CoveragePlan.stats``."""
    net, router, required_m = task.net, task.router, task.required_m
    conn_m = float(sum(router.graph[x, y] for p in sol.conns for x, y in zip(p[:-1], p[1:])))
    return {
        "segments_required": int(len(task.req_idx)),
        "segments_unreachable": int(len(unreachable)),
        "unreachable_m": float(net.edge_length_m[unreachable].sum()) if len(unreachable) else 0.0,
        "connector_m": conn_m,
        "deadhead_m": whole.length_m - required_m,
        "deadhead_share": (whole.length_m - required_m) / whole.length_m if whole.length_m else 0.0,
        "turns": whole.n_turns,
        # U-turns: at dead ends (unavoidable), elsewhere, and the fewest any order of the passes makes.
        "uturns": whole.n_uturns,
        "uturns_dead_end": whole.n_uturns_dead_end,
        "uturns_other": whole.n_uturns - whole.n_uturns_dead_end,
        "uturns_per_km": whole.uturns_per_km,
        "uturn_bound": whole.uturn_bound,
        "turns_per_km": whole.n_turns / (whole.length_m / 1000) if whole.length_m else 0.0,
        # Turns + 2 × U-turns, and a lower bound on it for any order of the same passes.
        "turn_cost": whole.n_turns + TURN_COST_U * whole.n_uturns,
        "turn_cost_bound": turn_bound,
        "solver": sol.solver,
        "status": "optimal" if sol.exact else ("bounded" if sol.rounds == 0 else "joined islands"),
        "runtime_s": time.perf_counter() - t0,
    }


def _worker_stats(stats: dict[str, Any], warnings: list[str], routes: list[CoverageRoute], workers: int,
                  bound_k: tuple[float, float], n_required: int) -> None:
    """Add the k-worker figures to ``stats``, and warnings where the split falls short."""
    lengths = [r.length_m for r in routes]
    stats["worker_lengths_m"] = lengths
    stats["balance"] = max(lengths) / (sum(lengths) / len(lengths))
    bound, far = bound_k
    stats["longest_lower_bound_m"] = bound
    if len(routes) < workers:
        warnings.append(f"{len(routes)} route(s), not {workers}: the grid has only {n_required} street "
                        "segment(s) to share out")
    if stats["balance"] > BALANCE_TARGET:
        why = (f"; its farthest street alone needs a {far:.0f} m round trip from the start, so no split "
               "makes the longest route shorter" if max(lengths) <= far * (1 + 1e-6) + 1e-3 else "")
        warnings.append(f"the {len(routes)} routes are not within {BALANCE_TARGET - 1:.0%} of their mean: longest "
                        f"{max(lengths):.0f} m, mean {np.mean(lengths):.0f} m{why}")


def _lonlat(net: StreetNetwork, node: int) -> tuple[float, float]:
    back = net.transformer(inverse=True)
    x, y = back.transform(net.node_xy[node, 0], net.node_xy[node, 1])
    return (round(float(x), 6), round(float(y), 6))


def _hot_spots(net: StreetNetwork, req: np.ndarray, unreachable: np.ndarray, incidents: gpd.GeoSeries,
               crs: pyproj.CRS, radius_m: float = 50.0) -> dict[str, Any]:
    """Incident-weighted street length covered: weight 1 + incidents within ``radius_m`` of a street."""
    pts = incidents.to_crs(crs).to_numpy()
    req_idx = np.flatnonzero(req)
    tree = shapely.STRtree(net.edge_geom[req_idx])
    pi, ei = tree.query_nearest(pts, max_distance=radius_m, all_matches=False)
    hits = np.bincount(ei, minlength=len(req_idx)).astype(float)
    weight = (1.0 + hits) * net.edge_length_m[req_idx]
    covered = ~np.isin(req_idx, unreachable)
    total = float(weight.sum())
    return {
        "incidents_near_streets": int(len(pi)),
        "hot_weighted_m": total,
        "hot_covered_share": float(weight[covered].sum() / total) if total else 1.0,
    }
