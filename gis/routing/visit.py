"""Key-point visiting routes (schools, markets, hazards, key households) with OR-Tools, with a bound."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.routing.network import (
    DRIVE_SPEED_MPS,
    WALK_SPEED_MPS,
    Traversal,
    route_line,
)
from gridpatrol.gis.routing.router import Router, path_nodes
from gridpatrol.gis.streets import street_network
from ortools.constraint_solver import pywrapcp, routing_enums_pb2
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from shapely.geometry import LineString

PENALTY_PER_IMPORTANCE = 10_000_000  # dropping a point costs more than any detour (in metres)


@dataclass
class VisitPlan:
    """Order of visits (indices into the points), the route and its figures (metres, seconds)."""

    order: list[int]
    dropped: list[int]
    closed: bool
    length_m: float
    duration_s: float
    lower_bound_m: float
    gap: float
    geometry: LineString  # WGS-84
    traversals: list[Traversal] = field(default_factory=list)
    network: Any = None
    snap_m: list[float] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def best_selection(D: np.ndarray, prize: np.ndarray, budget_s: float, dwell_s: float, speed_mps: float,
                   closed: bool) -> tuple[list[int], float, float]:
    """Exact prize-collecting choice for few sites: the visit sequence (site indices, starting at
    site 0, ending there when ``closed``) that collects the most ``prize`` within ``budget_s``
    seconds (travel ``D``/``speed_mps`` plus ``dwell_s`` per site other than 0), ties broken by
    length. Returns (sequence, prize collected, length in metres). Dynamic programming over
    subsets (Held–Karp), so only for up to 13 sites."""
    n = len(D)
    m = n - 1
    if m > 12:
        raise ValueError("best_selection is exact and exponential: at most 13 sites")
    full = 1 << m
    f = np.full((full, m), np.inf)  # shortest path from site 0 through subset S, ending at j
    arg = np.full((full, m), -1, dtype=np.int64)
    for j in range(m):
        f[1 << j, j] = D[0, j + 1]
    bits = np.array([[(S >> j) & 1 for j in range(m)] for S in range(full)], dtype=bool) if m else np.zeros((1, 0), bool)
    for S in range(1, full):
        members = np.flatnonzero(bits[S])
        if len(members) < 2:
            continue
        for j in members:
            prev = S & ~(1 << j)
            cand = f[prev, members] + D[members + 1, j + 1]
            cand[members == j] = np.inf
            k = int(np.argmin(cand))
            f[S, j], arg[S, j] = cand[k], members[k]
    best: tuple[float, float, int, int] = (prize[0], 0.0, 0, -1)  # (prize, -length, subset, last)
    for S in range(1, full):
        members = np.flatnonzero(bits[S])
        ends = f[S, members] + (D[members + 1, 0] if closed else 0.0)
        k = int(np.argmin(ends))
        length = float(ends[k])
        if length / speed_mps + dwell_s * len(members) > budget_s + 1e-9:
            continue
        gain = float(prize[0] + prize[members + 1].sum())
        if (gain, -length) > (best[0], best[1]):
            best = (gain, -length, S, int(members[k]))
    gain, neg_len, S, j = best
    seq: list[int] = []
    while j >= 0:
        seq.append(j + 1)
        S, j = S & ~(1 << j), int(arg[S, j])
    seq = [0, *reversed(seq)]
    if closed:
        seq.append(0)
    return seq, gain, -neg_len


def held_karp_bound(D: np.ndarray, iterations: int = 300) -> float:
    """Held–Karp 1-tree lower bound (subgradient) on the shortest closed tour through all of D.

    ``D`` is a symmetric n × n distance matrix (metres). For n ≤ 3 the tour is returned exactly.
    """
    n = len(D)
    if n <= 1:
        return 0.0
    if n == 2:
        return float(2 * D[0, 1])
    if n == 3:
        return float(D[0, 1] + D[1, 2] + D[2, 0])
    pi = np.zeros(n)
    best = 0.0
    step = float(np.mean(D[np.triu_indices(n, 1)])) * 0.01 + 1e-9
    for it in range(iterations):
        C = D + pi[:, None] + pi[None, :]
        sub = C[1:, 1:].copy()
        # scipy reads 0 as "no edge": shift everything positive, then take the shift back out.
        shift = -sub.min() + 1.0
        mst = minimum_spanning_tree(np.triu(sub + shift, 1))
        coo = mst.tocoo()
        cost = float(mst.sum() - shift * (n - 2))
        deg = np.zeros(n)
        np.add.at(deg, coo.row + 1, 1)
        np.add.at(deg, coo.col + 1, 1)
        two = np.argsort(C[0, 1:])[:2] + 1
        cost += float(C[0, two].sum())
        deg[0] = 2
        deg[two] += 1
        bound = cost - 2 * pi.sum()
        best = max(best, bound)
        g = deg - 2
        if not g.any():
            break
        pi += step * g
        step *= 0.98
    return best


def exact_tour_length(D: np.ndarray, *, closed: bool = True) -> float:
    """Exact shortest tour from node 0 through all nodes of D (Bellman–Held–Karp DP), n ≤ 14.

    ``D`` may be asymmetric (one-way streets). ``closed=False`` ends anywhere.
    """
    n = len(D)
    if n <= 1:
        return 0.0
    m = n - 1
    full = 1 << m
    dp = np.full((full, m), np.inf)
    dp[1 << np.arange(m), np.arange(m)] = D[0, 1:]
    for mask in range(1, full):
        row = dp[mask]
        if not np.isfinite(row).any():
            continue
        # Extend the best path of this subset (ends outside it are inf) by each node k not in it.
        best = (row[:, None] + D[1:, 1:]).min(axis=0)
        for k in range(m):
            if not mask & (1 << k):
                nm = mask | (1 << k)
                dp[nm, k] = min(dp[nm, k], best[k])
    last = dp[full - 1]
    return float(np.min(last + D[1:, 0])) if closed else float(np.min(last))


def plan_visit(
    points: gpd.GeoDataFrame,
    *,
    roads: gpd.GeoDataFrame | None = None,
    mode: str = "walk",
    start: tuple[float, float] | None = None,
    closed: bool = True,
    budget_s: float | None = None,
    dwell_s: float = 0.0,
    time_limit_s: float = 10.0,
    max_snap_m: float = 500.0,
) -> VisitPlan:
    """Shortest route visiting ``points`` (EPSG:4326; optional column ``importance``, default 1).

    Distances follow the streets of ``roads`` (one-way respected when driving), else straight
    lines. The route starts at ``start`` (lon, lat; default: the first point) and returns there
    when ``closed``. With ``budget_s`` (travel + ``dwell_s`` per point) points that do not fit
    are dropped, least important first (prize-collecting). Reports a Held–Karp lower bound on
    the length through the visited points and the gap. Raises InputError for no points, points
    far from every street, or a budget too small for any point.
    """
    t0 = time.perf_counter()
    if points is None or len(points) == 0:
        raise InputError("the points file has no points to visit", hint="give at least one point (GeoJSON/CSV with lon, lat)")
    if points.crs is None or points.crs.to_epsg() != 4326:
        raise InputError(f"points must be EPSG:4326, not {points.crs}")
    geoms = points.geometry.to_numpy()
    if not np.all(shapely.get_type_id(geoms) == 0):
        geoms = shapely.centroid(geoms)
    xy_ll = shapely.get_coordinates(geoms)
    imp = points["importance"].fillna(1).to_numpy(float) if "importance" in points.columns else np.ones(len(points))
    if np.any(imp < 0):
        raise InputError("importance must not be negative", where="points")
    c = xy_ll.mean(axis=0)
    crs = local_metric_crs(float(c[0]), float(c[1]))
    to_m = pyproj.Transformer.from_crs(4326, crs, always_xy=True)
    px, py = to_m.transform(xy_ll[:, 0], xy_ll[:, 1])
    pts_m = np.column_stack([px, py])
    if start is not None:
        sx, sy = to_m.transform(*start)
        sites = np.vstack([[sx, sy], pts_m])
        offset = 1
    else:
        sites = pts_m
        offset = 0
    n = len(sites)
    speed = WALK_SPEED_MPS if mode == "walk" else DRIVE_SPEED_MPS
    net = router = None
    snap: list[float] = []
    if roads is not None and len(roads):
        net = street_network(roads, mode=mode, crs=crs)
        if net.n_nodes == 0:
            raise InputError("no streets to route on near the points")
        # Snap every site to its nearest node of the main street network (not to a detached
        # courtyard path from which nothing else can be reached).
        _, labels = connected_components(net.csgraph(False), directed=False)
        main = np.flatnonzero(labels == np.bincount(labels).argmax())
        d2 = ((sites[:, None, :] - net.node_xy[None, main, :]) ** 2).sum(axis=2)
        node = main[d2.argmin(axis=1)]
        snap = np.sqrt(d2.min(axis=1)).tolist()
        far = [i for i, s in enumerate(snap) if s > max_snap_m]
        if far:
            i = far[0]
            what = "start" if (offset and i == 0) else f"point {i - offset + 1} ({points.index[i - offset]})"
            raise InputError(f"{what} is {snap[i]:.0f} m from the nearest street", where="points",
                             hint=f"move it within {max_snap_m:.0f} m of a street or check its coordinates (WGS-84 lon, lat)")
        router = Router(net, mode == "drive")
        dist, pred = router.dijkstra(node.tolist())
        D = dist[:, node]
        if not np.all(np.isfinite(D)):
            i, j = np.argwhere(~np.isfinite(D))[0]
            raise InputError(f"site {j} cannot be reached from site {i} along the streets", where="points")
    else:
        D = np.hypot(sites[:, None, 0] - sites[None, :, 0], sites[:, None, 1] - sites[None, :, 1])
        node = pred = None
    depot = 0
    # Open routes end anywhere: a dummy end node at zero distance from every site.
    size = n if closed else n + 1
    M = np.zeros((size, size))
    M[:n, :n] = D
    Mi = np.round(M).astype(np.int64)
    manager = pywrapcp.RoutingIndexManager(size, 1, [depot], [depot if closed else n])
    routing = pywrapcp.RoutingModel(manager)

    def dist_cb(a: int, b: int) -> int:
        return int(Mi[manager.IndexToNode(a), manager.IndexToNode(b)])

    cb = routing.RegisterTransitCallback(dist_cb)
    routing.SetArcCostEvaluatorOfAllVehicles(cb)
    if budget_s is not None:
        if budget_s <= 0:
            raise InputError(f"the time budget must be positive, not {budget_s}")
        dwell = np.full(size, dwell_s)
        dwell[depot] = 0
        if not closed:
            dwell[n] = 0

        def time_cb(a: int, b: int) -> int:
            i, j = manager.IndexToNode(a), manager.IndexToNode(b)
            return int(round(M[i, j] / speed + dwell[i]))

        tcb = routing.RegisterTransitCallback(time_cb)
        routing.AddDimension(tcb, 0, int(budget_s), True, "time")
        for k in range(n):
            if k == depot:
                continue
            w = imp[k - offset] if k >= offset else 1.0
            routing.AddDisjunction([manager.NodeToIndex(k)], int(max(w, 1e-3) * PENALTY_PER_IMPORTANCE))
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    params.time_limit.FromMilliseconds(int(time_limit_s * 1000))
    if n <= 3:
        params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.AUTOMATIC
    sol = routing.SolveWithParameters(params)
    if sol is None:
        raise InputError("no route fits", hint="raise --budget-min or give fewer points")
    seq = []
    idx = routing.Start(0)
    while not routing.IsEnd(idx):
        seq.append(manager.IndexToNode(idx))
        idx = sol.Value(routing.NextVar(idx))
    if closed:
        seq.append(depot)
    selection = "heuristic (OR-Tools)"
    if budget_s is not None and n <= 13:
        # Few points: choose exactly which fit (the local search can keep a cheap point and drop a
        # more important one); replace OR-Tools' answer when the exact one collects more.
        prize = np.array([imp[k - offset] if k >= offset else 0.0 for k in range(n)])
        prize[depot] = 0.0
        exact_seq, exact_gain, exact_len = best_selection(D, prize, budget_s, dwell_s, speed, closed)
        got = float(prize[sorted(set(seq))].sum())
        got_len = float(sum(D[a, b] for a, b in zip(seq[:-1], seq[1:])))
        if (exact_gain, -exact_len) > (got + 1e-9, -got_len + 1e-6):
            seq = exact_seq
        selection = "exact (DP over subsets)"
    visited_sites = sorted(set(seq))
    order = [s - offset for s in seq if s >= offset]
    if closed and order and offset == 0:
        order = order[:-1] if len(order) > 1 and order[-1] == order[0] else order
    dropped = sorted(set(range(len(points))) - set(order))
    if budget_s is not None and not order:
        raise InputError(f"no point fits in the time budget of {budget_s / 60:.0f} min", hint="raise --budget-min")
    length = float(sum(D[a, b] for a, b in zip(seq[:-1], seq[1:])))
    # Lower bound on the tour through the visited sites (symmetrised: min of both directions).
    sub = np.array(visited_sites)
    Ds = np.minimum(D[np.ix_(sub, sub)], D[np.ix_(sub, sub)].T)
    if not closed:
        Ds = np.pad(Ds, ((0, 1), (0, 1)))
    if len(sub) <= 13:
        # Small enough to solve exactly (directed distances): the bound is the optimum.
        Dsub = D[np.ix_(sub, sub)]
        lower = min(exact_tour_length(Dsub, closed=closed), length)
        bound_method = "exact DP"
    else:
        lower = min(held_karp_bound(Ds), length)
        bound_method = "Held-Karp 1-tree"
    trav: list[Traversal] = []
    if net is not None:
        for a, b in zip(seq[:-1], seq[1:]):
            trav += router.traversals(path_nodes(pred[a], int(node[a]), int(node[b])))
        line_m = route_line(net, trav)
    else:
        line_m = LineString(sites[seq]) if len(seq) > 1 else LineString([sites[0], sites[0]])
    back = pyproj.Transformer.from_crs(crs, 4326, always_xy=True)
    geometry = shapely.transform(line_m, lambda xy: np.column_stack(back.transform(xy[:, 0], xy[:, 1])))
    duration = length / speed + dwell_s * len(order)
    return VisitPlan(
        order=order, dropped=dropped, closed=closed, length_m=length, duration_s=duration,
        lower_bound_m=lower, gap=(length - lower) / lower if lower > 0 else 0.0, geometry=geometry,
        traversals=trav, network=net, snap_m=snap,
        stats={"points": len(points), "visited": len(order), "dropped": len(dropped),
               "importance_visited": float(imp[order].sum()) if order else 0.0,
               "importance_total": float(imp.sum()), "bound": bound_method, "runtime_s": time.perf_counter() - t0,
               **({"selection": selection} if budget_s is not None else {})},
    )
