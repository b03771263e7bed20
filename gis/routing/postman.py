"""Chinese postman steps: the T-join of odd ends, the driving MIP, and joining pieces of a route."""
from __future__ import annotations

import numpy as np
from gridpatrol.gis.errors import GridPatrolError
from gridpatrol.gis.routing.matching import MatchingResult, min_weight_perfect_matching
from gridpatrol.gis.routing.network import Traversal, components
from gridpatrol.gis.routing.router import Router, path_nodes
from gridpatrol.gis.streets import StreetNetwork
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse.csgraph import dijkstra, minimum_spanning_tree


def tjoin(router: Router, T: np.ndarray, *, limit: float = np.inf) -> tuple[list[list[int]], MatchingResult]:
    """Minimum T-join of nodes T as shortest paths (node lists), exact by perfect matching, and the matching.

    ``limit`` (m): a length no pair of an optimal matching exceeds (e.g. the cost of any T-join);
    shortest paths are searched no farther, which speeds it up and changes nothing.
    """
    if len(T) == 0:
        return [], MatchingResult([], 0.0, 0.0, True, "empty", 0)
    bounded = np.isfinite(limit)
    if bounded:
        limit = limit * (1 + 1e-9) + 1e-3
    dist, pred = router.dijkstra(T, limit=limit)
    D = dist[:, T]
    off = ~np.eye(len(T), dtype=bool)
    if bounded:
        D = np.where(np.isfinite(D), D, 2.0 * limit + 1.0)
    if not np.all(np.isfinite(D[off])):
        raise GridPatrolError("odd street ends fall into parts that are not connected")
    res = min_weight_perfect_matching(D)
    if bounded and any(not np.isfinite(dist[i, T[j]]) for i, j in res.pairs):  # pragma: no cover - see above
        return tjoin(router, T)
    paths = [path_nodes(pred[i], int(T[i]), int(T[j])) for i, j in res.pairs]
    return paths, res


def drive_postman_mip(net: StreetNetwork, req_edges: np.ndarray, extra_arcs: list[list[int]],
                      nodes_ok: np.ndarray, time_limit_s: float) -> tuple[list[Traversal], float, float, str]:
    """Mixed Chinese postman as a MIP (HiGHS): orient two-way streets, add deadhead arc copies.

    ``extra_arcs``: node paths travelled in any case; arcs only between ``nodes_ok``. Returns
    (traversals, deadhead metres, certified lower bound of it, status "optimal" or "time_limit").
    """
    n = net.n_nodes
    two = req_edges[~net.edge_oneway[req_edges]]
    one = req_edges[net.edge_oneway[req_edges]]
    b = np.zeros(n)
    np.add.at(b, net.edge_u[one], 1.0)  # out − in of the fixed one-way passes
    np.add.at(b, net.edge_v[one], -1.0)
    np.add.at(b, net.edge_u[two], -1.0)  # y = 0 (v → u) baseline: out at v, in at u
    np.add.at(b, net.edge_v[two], 1.0)
    for p in extra_arcs:  # connector passes that are fixed
        for a, c in zip(p[:-1], p[1:]):
            b[a] += 1
            b[c] -= 1
    tail, head, length, eidx = net.arcs(True)
    ok = nodes_ok[tail] & nodes_ok[head] & (tail != head)
    tail, head, length, eidx = tail[ok], head[ok], length[ok], eidx[ok]
    n_y, n_x = len(two), len(tail)
    rows = np.concatenate([net.edge_u[two], net.edge_v[two], tail, head])
    cols = np.concatenate([np.arange(n_y), np.arange(n_y), n_y + np.arange(n_x), n_y + np.arange(n_x)])
    # y = 1 moves one unit of out-flow from v to u: +2 at u, −2 at v relative to the baseline.
    vals = np.concatenate([np.full(n_y, 2.0), np.full(n_y, -2.0), np.ones(n_x), -np.ones(n_x)])
    A = sparse.csr_matrix((vals, (rows, cols)), shape=(n, n_y + n_x))
    used_rows = np.flatnonzero((np.asarray(np.abs(A).sum(axis=1)).ravel() > 0) | (b != 0))
    A = A[used_rows]
    rhs = -b[used_rows]
    c = np.concatenate([np.zeros(n_y), length])
    lb = np.zeros(n_y + n_x)
    ub = np.concatenate([np.ones(n_y), np.full(n_x, np.inf)])
    res = milp(c, constraints=LinearConstraint(A, rhs, rhs), integrality=np.ones(n_y + n_x),
               bounds=Bounds(lb, ub), options={"time_limit": time_limit_s, "mip_rel_gap": 1e-6, "disp": False})
    bound_of = float(getattr(res, "mip_dual_bound", None) or 0.0) if res.x is None else None
    if res.x is None:
        # No solution in time: fix every two-way street forwards; balancing the rest is a
        # min-cost flow (totally unimodular), so the LP gives an integral, feasible answer fast.
        res = milp(c, constraints=LinearConstraint(A, rhs, rhs), integrality=np.zeros(n_y + n_x),
                   bounds=Bounds(np.concatenate([np.ones(n_y), np.zeros(n_x)]), ub), options={"disp": False})
        if res.x is None:
            raise GridPatrolError(f"the driving route optimisation found no solution ({res.message})",
                                  hint="check that the grid's streets can be driven in and out of")
        res.mip_dual_bound = bound_of
        res.status = 1
    sol = np.round(res.x).astype(int)
    trav = [Traversal(int(e), True, True) for e in one]
    trav += [Traversal(int(e), bool(sol[i] == 1), True) for i, e in enumerate(two)]
    for k in np.flatnonzero(sol[n_y:] > 0):
        e = int(eidx[k])
        fwd = bool(net.edge_u[e] == tail[k] and net.edge_v[e] == head[k])
        trav += [Traversal(e, fwd, False)] * int(sol[n_y + k])
    if bound_of is not None:
        bound = bound_of  # the MIP's bound before the fallback, not the fallback's cost
    else:
        bound = float(getattr(res, "mip_dual_bound", None) or res.fun)
    status = "optimal" if res.status == 0 else "time_limit"
    return trav, float(res.fun), min(bound, float(res.fun)), status


def item_groups(net: StreetNetwork, items: list[Traversal], start: int) -> list[np.ndarray]:
    """Node sets of the connected pieces formed by ``items`` (the start alone is a piece too)."""
    e = np.array([t.edge for t in items], dtype=np.int64)
    u, v = net.edge_u[e], net.edge_v[e]
    labels = components(net.n_nodes, u, v)
    touched = np.zeros(net.n_nodes, dtype=bool)
    touched[u] = True
    touched[v] = True
    touched[start] = True
    idx = np.flatnonzero(touched)
    return [idx[labels[idx] == k] for k in np.unique(labels[idx])]


def connectors(router: Router, groups: list[np.ndarray]) -> tuple[list[list[int]], float]:
    """Frederickson's step: shortest paths joining node groups along a minimum spanning tree.

    Returns the connecting paths (node lists, each to be travelled once; driving adds the way
    back as well) and their total length (m).
    """
    c = len(groups)
    if c <= 1:
        return [], 0.0
    Dc = np.full((c, c), np.inf)
    link: dict[tuple[int, int], tuple[int, int]] = {}
    preds = {}
    for a, nodes in enumerate(groups):
        dist, pred, src = dijkstra(router.graph, directed=True, indices=list(nodes), return_predecessors=True, min_only=True)
        preds[a] = (pred, src)
        for b, other in enumerate(groups):
            if a != b:
                k = int(other[np.argmin(dist[other])])
                if np.isfinite(dist[k]):
                    d = float(dist[k])
                    if router.directed:
                        # Going there is not enough: the route must come back too.
                        back = dijkstra(router.graph, directed=True, indices=list(other), min_only=True)
                        d += float(back[int(src[k])])
                    Dc[a, b] = d
                    link[(a, b)] = (int(src[k]), k)
    sym = np.minimum(Dc, Dc.T)
    mst = minimum_spanning_tree(sparse.csr_matrix(np.where(np.isfinite(sym), sym + 1e-9, 0)))
    paths, total = [], 0.0
    for a, b in zip(*mst.nonzero()):
        a, b = (int(a), int(b)) if Dc[a, b] <= Dc[b, a] else (int(b), int(a))
        s, t = link[(a, b)]
        pred, _ = preds[a]
        p = path_nodes(pred, s, t)
        paths.append(p)
        if router.directed:
            dist, predb = router.dijkstra([t])
            paths.append(path_nodes(predb[0], t, s))
    for p in paths:
        total += sum(float(router.graph[x, y]) for x, y in zip(p[:-1], p[1:]))
    return paths, total
