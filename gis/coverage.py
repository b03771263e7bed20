"""Street-coverage patrol routes per grid: exact walking postman, one-way-aware driving, k workers."""
from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from scipy import sparse
from scipy.cluster.hierarchy import DisjointSet
from scipy.optimize import Bounds, LinearConstraint, linear_sum_assignment, milp
from scipy.sparse.csgraph import connected_components, dijkstra, minimum_spanning_tree, shortest_path
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry

from gis._blossom import blossom_matching, check_certificate
from gis.crs import local_metric_crs
from gis.errors import GridPatrolError, InputError
from gis.streets import MODES, StreetNetwork, nearest_node, street_network

# ---------------------------------------------------------------------------------------------
# Minimum-weight perfect matching (the T-join of odd street ends)
# ---------------------------------------------------------------------------------------------
# Exact minimum-weight perfect matching on a metric (shortest-path) distance matrix, with a
# bound certified by the dual solution of Edmonds' blossom algorithm (gis._blossom).

@dataclass
class MatchingResult:
    """Pairs (i, j) of a perfect matching, its weight and a lower bound on the optimum."""

    pairs: list[tuple[int, int]]
    weight: float
    lower_bound: float
    exact: bool
    method: str
    iterations: int


MATCH_SCALE = 1e7  # blossom costs in units of 0.1 µm (integers: exact dual arithmetic)
ENUMERATE_UP_TO = 8  # up to this many points every perfect matching is tried (105 for 8)
_PAIRINGS: dict[int, np.ndarray] = {}


def _all_pairings(n: int) -> np.ndarray:
    """Every perfect matching of 0..n-1 (n even) as an array (matchings × n/2 × 2), cached."""
    if n not in _PAIRINGS:
        def gen(rest: list[int]) -> list[list[tuple[int, int]]]:
            if not rest:
                return [[]]
            a, out = rest[0], []
            for k in range(1, len(rest)):
                for tail in gen(rest[1:k] + rest[k + 1:]):
                    out.append([(a, rest[k]), *tail])
            return out
        _PAIRINGS[n] = np.array(gen(list(range(n))), dtype=np.int64).reshape(-1, n // 2, 2)
    return _PAIRINGS[n]


def min_weight_perfect_matching(D: np.ndarray) -> MatchingResult:
    """Minimum-weight perfect matching of the n points (n even) with pairwise costs ``D`` (n × n, metres).

    Edmonds' blossom algorithm (gis._blossom) on costs rounded to 0.1 µm; its dual solution is
    checked independently (feasible on every pair, equal to the matching's cost), so the
    returned lower bound is certified. ``exact`` when matching and bound agree (to 1e-6 relative). ``D``
    must be symmetric and finite off the diagonal.
    """
    n = len(D)
    if n == 0:
        return MatchingResult([], 0.0, 0.0, True, "empty", 0)
    if n % 2:
        raise ValueError("a perfect matching needs an even number of points")
    if n == 2:
        w = float(D[0, 1])
        return MatchingResult([(0, 1)], w, w, True, "pair", 0)
    D = np.asarray(D, dtype=float)
    if n <= ENUMERATE_UP_TO:
        # Few points: every perfect matching (3 of 4 points, 15 of 6, 105 of 8) is tried: exact.
        P = _all_pairings(n)
        cost = D[P[:, :, 0], P[:, :, 1]].sum(axis=1)
        k = int(np.argmin(cost))
        w = float(cost[k])
        return MatchingResult([(int(i), int(j)) for i, j in P[k]], w, w, True, "enumeration", 0)
    off = ~np.eye(n, dtype=bool)
    # Integer costs keep the dual arithmetic exact: 0.1 µm, coarser only where that would overflow.
    scale = min(MATCH_SCALE, 2.0**62 / (4 * n * max(float(np.max(D[off])), 1e-9)))
    C = np.rint(np.where(off, D, 0.0) * scale).astype(np.int64) * 4
    try:
        res = blossom_matching(C)
    except RuntimeError as exc:
        raise GridPatrolError(f"the matching of {n} odd street ends did not finish (internal error: please report)") from exc
    if not check_certificate(C, res):
        raise GridPatrolError(f"the matching of {n} odd street ends is not proven optimal (internal error: please report)")
    iu = np.flatnonzero(res.mate > np.arange(n))
    pairs = [(int(i), int(res.mate[i])) for i in iu]
    weight = float(D[iu, res.mate[iu]].sum())
    # The dual bounds the rounded problem; rounding moves each pair by at most half a unit.
    lower = res.dual / (4 * scale) - n * 0.5 / scale
    return MatchingResult(pairs, weight, min(lower, weight), weight <= lower * (1 + 1e-6) + 1e-6, "blossom",
                          res.iterations)


# ---------------------------------------------------------------------------------------------
# Coverage routes
# ---------------------------------------------------------------------------------------------

TURN_DEG = 30.0  # a change of heading beyond this is a turn
UTURN_DEG = 150.0  # … and beyond this a U-turn
BALANCE_TARGET = 1.10  # k routes: the longest within 10 % of their mean
SPLIT_LOOP_ORDERS = 16  # k routes: the circuit's loops through the start are tried in up to this many orders
RPP_TIME_S = 10.0  # walking grids with street islands: seconds for the exact rural-postman MIP
WALK_SPEED_MPS = 1.25  # 4.5 km/h, a patrol pace with looking around
DRIVE_SPEED_MPS = 6.9  # 25 km/h, a patrol car in town


@dataclass
class Traversal:
    """One pass along street edge ``edge`` (index in the StreetNetwork), forwards or backwards."""

    edge: int
    forward: bool
    required: bool  # the first pass over a street of the grid (otherwise deadhead/repeat)


@dataclass
class CoverageRoute:
    """A closed route from the start node: ordered traversals plus its figures (metres, seconds)."""

    mode: str
    start_node: int
    traversals: list[Traversal]
    length_m: float
    required_m: float
    lower_bound_m: float
    duration_s: float
    n_turns: int
    n_uturns: int
    geometry: LineString  # metric CRS of the network
    worker_index: int = 0

    @property
    def deadhead_m(self) -> float:
        return self.length_m - self.required_m

    @property
    def gap(self) -> float:
        """(length − lower bound) / lower bound; 0 means proven optimal."""
        return (self.length_m - self.lower_bound_m) / self.lower_bound_m if self.lower_bound_m > 0 else 0.0


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


def _near_edges(net: StreetNetwork, polygon_m: BaseGeometry, tol_m: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Edges within ``tol_m`` of the polygon: (indices, lengths, length within ``tol_m``, wholly
    within). Edges wholly within need no intersection (the costly part): only those crossing."""
    area = shapely.buffer(polygon_m, tol_m)
    shapely.prepare(area)
    cand = net.tree().query(area, predicate="intersects") if net.n_edges else np.zeros(0, dtype=np.int64)
    geoms = net.edge_geom[cand]
    total = shapely.length(geoms)
    whole = shapely.contains_properly(area, geoms)
    inside = total.copy()
    if not whole.all():
        inside[~whole] = shapely.length(shapely.intersection(geoms[~whole], area))
    return cand, total, inside, whole


def required_mask(net: StreetNetwork, polygon_m: BaseGeometry, *, tol_m: float = 2.0, min_share: float = 0.5) -> np.ndarray:
    """Edges that count as streets of the polygon (metric CRS of ``net``).

    An edge belongs when at least ``min_share`` of its length lies within ``tol_m`` of the
    polygon, so streets that form the grid boundary belong to it too.
    """
    return grid_streets(net, polygon_m, tol_m=tol_m, min_share=min_share, along_edge_m=None)[0]


def grid_streets(net: StreetNetwork, polygon_m: BaseGeometry, *, tol_m: float = 2.0, min_share: float = 0.5,
                 along_edge_m: float | None = 10.0) -> tuple[np.ndarray, bool]:
    """(mask of the polygon's streets, whether they are only those along its edge).

    The polygon's streets are those with at least ``min_share`` of their length within ``tol_m``
    of it (:func:`required_mask`). A grid with none (a compound cut between building clusters,
    its inner paths not mapped) gets instead the streets running along it for at least
    ``along_edge_m``, whatever share of their length that is: the streets its worker patrols.
    """
    mask = np.zeros(net.n_edges, dtype=bool)
    cand, total, inside, whole = _near_edges(net, polygon_m, tol_m)
    mask[cand] = whole | (inside >= min_share * np.maximum(total, 1e-9))
    if mask.any() or along_edge_m is None:
        return mask, False
    mask[cand] = inside >= along_edge_m
    return mask, bool(mask.any())


def _bearings(net: StreetNetwork) -> tuple[np.ndarray, np.ndarray]:
    """Heading (deg, 0 = north, clockwise) leaving u and arriving at v of every edge."""
    return net.bearings()


def turn_angle(b_in: float, b_out: float) -> float:
    """Signed heading change in degrees (−180, 180]: positive is a right turn."""
    d = (b_out - b_in + 180.0) % 360.0 - 180.0
    return 180.0 if d == -180.0 else d


def _path_nodes(pred_row: np.ndarray, src: int, dst: int) -> list[int]:
    nodes = [dst]
    while nodes[-1] != src:
        p = int(pred_row[nodes[-1]])
        if p < 0:
            raise GridPatrolError(f"no street path from node {src} to node {dst}")
        nodes.append(p)
    return nodes[::-1]


class _Router:
    """Shortest paths on one StreetNetwork (directed for driving), turned into edge traversals."""

    def __init__(self, net: StreetNetwork, directed: bool):
        self.net = net
        self.directed = directed
        self.graph, self._arc_edge = net._csgraph_arcs(directed)
        n = net.n_nodes
        # Arcs are stored sorted by (tail, head): a pair's key finds its (shortest) edge by bisection.
        self._keys = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.graph.indptr)) * n + self.graph.indices

    def dijkstra(self, sources: Sequence[int], *, reverse: bool = False, min_only: bool = False,
                 limit: float = np.inf):
        g = self.graph.T.tocsr() if reverse else self.graph
        return dijkstra(g, directed=True, indices=np.asarray(sources, dtype=np.int64), return_predecessors=True,
                        min_only=min_only, limit=limit)

    def traversals(self, nodes: list[int]) -> list[Traversal]:
        if len(nodes) < 2:
            return []
        nd = np.asarray(nodes, dtype=np.int64)
        a, b = nd[:-1], nd[1:]
        e = self._arc_edge[np.searchsorted(self._keys, a * self.net.n_nodes + b)]
        fwd = (self.net.edge_u[e] == a) & (self.net.edge_v[e] == b)
        return [Traversal(x, f, False) for x, f in zip(e.tolist(), fwd.tolist())]


def _odd_nodes(n_nodes: int, ends: np.ndarray) -> np.ndarray:
    deg = np.bincount(ends.ravel(), minlength=n_nodes)
    return np.flatnonzero(deg % 2 == 1)


def _tjoin(router: _Router, T: np.ndarray, *, limit: float = np.inf) -> tuple[list[list[int]], MatchingResult]:
    """Minimum T-join of nodes T as shortest paths (node lists), exact by perfect matching.

    ``limit`` (m): a length no pair of an optimal matching exceeds (e.g. the cost of any T-join).
    Dijkstra stops there; pairs farther apart get a cost above ``2 × limit``, which no optimal
    matching pays, so the optimum and its certified bound are those of the true distances.
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
        return _tjoin(router, T)
    paths = [_path_nodes(pred[i], int(T[i]), int(T[j])) for i, j in res.pairs]
    return paths, res


def _components(n_nodes: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Label of each node's piece of the graph of edges (u, v); −1 for nodes on no edge."""
    labels = np.full(n_nodes, -1, dtype=np.int64)
    if len(u) == 0:
        return labels
    if len(u) <= 64:
        # A few edges: union–find in plain Python beats building a sparse matrix.
        parent: dict[int, int] = {}

        def find(a: int) -> int:
            root = a
            while parent.get(root, root) != root:
                root = parent[root]
            while a != root:
                parent[a], a = root, parent.get(a, a)
            return root

        ul, vl = u.tolist(), v.tolist()
        for a, b in zip(ul, vl):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[ra] = rb
        nodes = set(ul) | set(vl)
        roots = {a: find(a) for a in nodes}
        idx = np.fromiter(roots.keys(), dtype=np.int64, count=len(roots))
        labels[idx] = np.fromiter(roots.values(), dtype=np.int64, count=len(roots))
        return labels
    nodes, inv = np.unique(np.concatenate([u, v]), return_inverse=True)
    m, k = len(u), len(nodes)
    g = sparse.csr_matrix((np.ones(m), (inv[:m], inv[m:])), shape=(k, k))
    labels[nodes] = connected_components(g, directed=False)[1]
    return labels


def _prune_links(L: np.ndarray) -> np.ndarray:
    """Links (``L[i, j]`` finite) with the ones a postman model never needs set to inf.

    A link i → j is not needed when a path over other links through some terminal k ≠ i, j is
    no longer: passes over it can go that way at no extra cost, keeping every terminal
    balanced (k is entered and left once more), every degree's parity, and the pieces joined.
    (The other path cannot use link i → j itself: it would then be longer, lengths being
    positive.) Checked from each terminal's own links: min over its links i → k of
    L[i, k] + D[k, j], D the shortest distances over all links.
    """
    k = len(L)
    fin = np.isfinite(L)
    if k < 3 or not fin.any():
        return L
    D = shortest_path(sparse.csr_matrix(np.where(fin, L, 0.0)), method="D", directed=True)
    out = L.copy()
    for i in range(k):
        nb = np.flatnonzero(fin[i])
        if len(nb) < 2:
            continue
        alt = L[i, nb][:, None] + D[np.ix_(nb, nb)]
        np.fill_diagonal(alt, np.inf)  # k = j: the link itself
        drop = alt.min(axis=0) <= L[i, nb] * (1 + 1e-12)
        out[i, nb[drop]] = np.inf
    return out


class _TerminalLinks:
    """Shortest paths between street-end terminals that pass no other terminal ("links").

    Any deadhead walk between terminals splits into such links, so a postman model over the
    terminals and links loses nothing, and there are few links. ``L[i, j]`` is the length (m)
    of the link from terminal i to j (inf: none), directed when the router is.
    """

    def __init__(self, net: StreetNetwork, router: "_Router", req_idx: np.ndarray, start: int):
        n = net.n_nodes
        self.n = n
        self.VR = np.unique(np.concatenate([net.edge_u[req_idx], net.edge_v[req_idx], [start]]))
        self.k = len(self.VR)
        self.rank = np.full(n, -1)
        self.rank[self.VR] = np.arange(self.k)
        # Split every terminal into itself (paths leave from it) and an in-copy n + rank (paths
        # end there), so one Dijkstra per terminal finds exactly the links.
        g = router.graph.tocoo()
        head = np.where(self.rank[g.col] >= 0, n + self.rank[g.col], g.col)
        split = sparse.csr_matrix((g.data, (g.row, head)), shape=(n + self.k, n + self.k))
        self.dist, self.pred = dijkstra(split, directed=True, indices=self.VR, return_predecessors=True)
        L = self.dist[:, n:].copy()
        np.fill_diagonal(L, np.inf)
        self.L = _prune_links(L)

    def path(self, i: int, j: int) -> list[int]:
        """Node indices of the link from terminal i to terminal j."""
        nodes = [self.n + j]
        while nodes[-1] != self.VR[i]:
            nodes.append(int(self.pred[i, nodes[-1]]))
        return [int(self.VR[i])] + nodes[::-1][1:-1] + [int(self.VR[j])]


def _solve_with_cuts(c: np.ndarray, eq: LinearConstraint, ub: np.ndarray, x_at: int, li: np.ndarray,
                     lj: np.ndarray, k: int, ru: np.ndarray, rv: np.ndarray, *, directed: bool,
                     t_end: float) -> tuple[np.ndarray | None, float, float, str]:
    """Integer program (HiGHS) over link passes x = vars[x_at:], adding connectivity cuts until
    the terminals, joined by required streets (ru–rv) and used links (li–lj), form one piece.

    Every piece S must be left: x(δ(S)) ≥ 2 undirected (entered and left), x(δ⁺(S)) ≥ 1
    directed (balance brings it back). Returns (solution or None, its cost, lower bound, status).
    """
    n_var = len(c)
    cuts: list[np.ndarray] = []

    def pieces(x: np.ndarray) -> np.ndarray:
        use = x > 0
        g = sparse.coo_matrix((np.ones(len(ru) + int(use.sum())), (np.concatenate([ru, li[use]]),
                               np.concatenate([rv, lj[use]]))), shape=(k, k))
        return connected_components(g, directed=False)[1]

    def add_cuts(labels: np.ndarray) -> None:
        for lab in np.unique(labels):
            inside = labels == lab
            row = np.zeros(n_var)
            row[x_at:] = (inside[li] & ~inside[lj]) if directed else (inside[li] != inside[lj])
            cuts.append(row)

    # Every piece of the grid's streets (and the start) must be connected to the others.
    labels = pieces(np.zeros(len(li)))
    if len(np.unique(labels)) > 1:
        add_cuts(labels)
    bound = 0.0
    for _ in range(100):
        left = t_end - time.perf_counter()
        if left <= 0.2:
            return None, np.inf, bound, "time_limit"
        cons = [eq]
        if cuts:
            cons.append(LinearConstraint(sparse.csr_matrix(np.array(cuts)), 1.0 if directed else 2.0, np.inf))
        res = milp(c, constraints=cons, integrality=np.ones(n_var), bounds=Bounds(np.zeros(n_var), ub),
                   options={"time_limit": left, "mip_rel_gap": 1e-7, "disp": False})
        if res.x is None:
            return None, np.inf, bound, "time_limit"
        b = getattr(res, "mip_dual_bound", None)
        bound = max(bound, min(float(res.fun if b is None else b), float(res.fun)))
        if res.status != 0:
            return None, np.inf, bound, "time_limit"
        sol = np.round(res.x).astype(int)
        labels = pieces(sol[x_at:])
        if len(np.unique(labels)) == 1:
            return sol, float(res.fun), bound, "optimal"
        add_cuts(labels)
    return None, np.inf, bound, "cut_limit"


def _mixed_rpp_mip(net: StreetNetwork, router: "_Router", req_idx: np.ndarray, start: int, time_limit_s: float,
                   incumbent_m: float) -> dict[str, Any]:
    """Mixed rural postman (one-way streets) by cutting planes on the terminal link graph.

    Binary y orients each required two-way street, integer x_l counts passes over directed
    links; every terminal is balanced (in = out) and connected (see _solve_with_cuts). Returns
    traversals (None when not shorter than ``incumbent_m``), deadhead bound (m) and status.
    """
    t_end = time.perf_counter() + time_limit_s
    tl = _TerminalLinks(net, router, req_idx, start)
    k, rank = tl.k, tl.rank
    li, lj = np.nonzero(np.isfinite(tl.L))
    m = len(li)
    two = req_idx[~net.edge_oneway[req_idx]]
    one = req_idx[net.edge_oneway[req_idx]]
    ny = len(two)
    b = np.zeros(k)
    np.add.at(b, rank[net.edge_u[one]], 1.0)
    np.add.at(b, rank[net.edge_v[one]], -1.0)
    np.add.at(b, rank[net.edge_u[two]], -1.0)  # y = 0: travelled v → u
    np.add.at(b, rank[net.edge_v[two]], 1.0)
    A = sparse.csr_matrix(
        (np.concatenate([np.full(ny, 2.0), np.full(ny, -2.0), np.ones(m), -np.ones(m)]),
         (np.concatenate([rank[net.edge_u[two]], rank[net.edge_v[two]], li, lj]),
          np.concatenate([np.arange(ny), np.arange(ny), ny + np.arange(m), ny + np.arange(m)]))),
        shape=(k, ny + m))
    # Passes per link are bounded (HiGHS is much slower on unbounded integers): the extra passes
    # of an optimal route split into paths from surplus to deficit terminals, at most one per
    # unit of imbalance (≤ one per required street), and cycles each needed to join two pieces
    # (else dropping it is shorter: at most k − 1); each crosses a link at most once.
    x_max = float(len(req_idx) + k)
    sol, cost, bound, status = _solve_with_cuts(
        np.concatenate([np.zeros(ny), tl.L[li, lj]]), LinearConstraint(A, -b, -b),
        np.concatenate([np.ones(ny), np.full(m, x_max)]), ny, li, lj, k,
        rank[net.edge_u[req_idx]], rank[net.edge_v[req_idx]], directed=True, t_end=t_end)
    if sol is None or cost >= incumbent_m - 1e-6:
        return {"items": None, "bound": bound, "status": status}
    items = [Traversal(int(e), True, True) for e in one]
    items += [Traversal(int(e), bool(sol[i] == 1), True) for i, e in enumerate(two)]
    for l in np.flatnonzero(sol[ny:] > 0):
        items += router.traversals(tl.path(int(li[l]), int(lj[l]))) * int(sol[ny + l])
    return {"items": items, "bound": bound, "status": status}


def _rpp_mip(net: StreetNetwork, router: "_Router", req_idx: np.ndarray, start: int, time_limit_s: float,
             incumbent_m: float) -> dict[str, Any]:
    """Undirected rural postman by cutting planes on the terminal link graph (see _TerminalLinks).

    Integer x_l ∈ {0, 1, 2} passes per link, z_v makes every terminal's degree even, and the
    terminals must form one piece (see _solve_with_cuts). Returns the traversals (None when not
    shorter than ``incumbent_m`` deadhead metres), the deadhead lower bound (m) and the status.
    """
    t_end = time.perf_counter() + time_limit_s
    tl = _TerminalLinks(net, router, req_idx, start)
    k, rank = tl.k, tl.rank
    L = np.minimum(tl.L, tl.L.T)
    li, lj = np.nonzero(np.triu(np.isfinite(L), 1))
    m = len(li)
    deg = np.bincount(rank[np.concatenate([net.edge_u[req_idx], net.edge_v[req_idx]])], minlength=k)
    A = sparse.csr_matrix(
        (np.concatenate([np.ones(2 * m), -2.0 * np.ones(k)]),
         (np.concatenate([li, lj, np.arange(k)]), np.concatenate([np.arange(m), np.arange(m), m + np.arange(k)]))),
        shape=(k, m + k))
    parity = -(deg % 2).astype(float)
    # Variables: the z_v first, then the link passes (the cut rows address vars[x_at:]).
    perm_c = np.concatenate([np.zeros(k), L[li, lj]])
    A = sparse.hstack([A[:, m:], A[:, :m]]).tocsr()
    # z_v = (passes at v + parity) / 2 ≤ links at v + 1 (bounded integers solve much faster).
    z_max = np.bincount(np.concatenate([li, lj]), minlength=k) + 1.0
    sol, cost, bound, status = _solve_with_cuts(
        perm_c, LinearConstraint(A, parity, parity), np.concatenate([z_max, np.full(m, 2.0)]),
        k, li, lj, k, rank[net.edge_u[req_idx]], rank[net.edge_v[req_idx]], directed=False, t_end=t_end)
    if sol is None or cost >= incumbent_m - 1e-6:
        return {"items": None, "bound": bound, "status": status}
    x = sol[k:]
    items = [Traversal(int(e), True, True) for e in req_idx]
    for l in np.flatnonzero(x > 0):
        i, j = int(li[l]), int(lj[l])
        if not np.isfinite(tl.L[i, j]):
            i, j = j, i
        items += router.traversals(tl.path(i, j)) * int(x[l])
    return {"items": items, "bound": bound, "status": status}


def _item_groups(net: StreetNetwork, items: list[Traversal], start: int) -> list[np.ndarray]:
    """Node sets of the connected pieces formed by ``items`` (the start alone is a piece too)."""
    e = np.array([t.edge for t in items], dtype=np.int64)
    u, v = net.edge_u[e], net.edge_v[e]
    labels = _components(net.n_nodes, u, v)
    touched = np.zeros(net.n_nodes, dtype=bool)
    touched[u] = True
    touched[v] = True
    touched[start] = True
    idx = np.flatnonzero(touched)
    return [idx[labels[idx] == k] for k in np.unique(labels[idx])]


def _connectors(router: _Router, groups: list[np.ndarray]) -> tuple[list[list[int]], float]:
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
        p = _path_nodes(pred, s, t)
        paths.append(p)
        if router.directed:
            dist, predb = router.dijkstra([t])
            paths.append(_path_nodes(predb[0], t, s))
    for p in paths:
        total += sum(float(router.graph[x, y]) for x, y in zip(p[:-1], p[1:]))
    return paths, total


TURN_COST_U = 2  # ordering a route, a U-turn weighs as much as two turns


def _turn_dev(lb_a: np.ndarray | float, lb_b: np.ndarray | float) -> np.ndarray | float:
    """Heading change (0–180°) arriving along end a (``lb_a``: heading leaving the node that way)
    and leaving along end b. Symmetric in a and b."""
    return np.abs((np.asarray(lb_b) - lb_a) % 360.0 - 180.0)


def _turn_cost(dev: np.ndarray) -> np.ndarray:
    """Whole turns of a heading change (as count_turns counts them: 0 straight, 1 turn, 2 U-turn)."""
    return np.where(dev < TURN_DEG, 0, np.where(dev < UTURN_DEG, 1, TURN_COST_U))


def _order_cost(dev: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """What ordering a route minimises: fewer whole turns first, then the straighter (the
    tie-break stays below one turn over hundreds of transitions)."""
    return whole + dev * 1e-5


def _pair_ends(lb: np.ndarray, ends: np.ndarray, is_in: np.ndarray | None, at_start: bool
               ) -> tuple[list[tuple[int, int]], int]:
    """Best transitions at one node with many ends (the nodes _euler_circuit does not enumerate):
    (arrival end, departure end) pairs of least turn cost, and a lower bound on the turn cost of
    any pairing there (less the costliest transition at the start, where the route begins and
    ends instead of turning)."""
    if is_in is None:  # walking: any two ends may pair, either way round
        a = b = ends
    else:
        a, b = ends[is_in], ends[~is_in]
    dev = _turn_dev(lb[a][:, None], lb[b][None, :])
    whole = _turn_cost(dev)
    C = _order_cost(dev, whole)
    if is_in is None:
        n = len(ends)
        res = min_weight_perfect_matching(np.where(np.eye(n, dtype=bool), 0.0, C))
        pairs = [(int(ends[i]), int(ends[j])) for i, j in res.pairs]
        bound = int(np.ceil(res.lower_bound - n * 1e-3)) - (TURN_COST_U if at_start else 0)
        return pairs, max(bound, 0)
    ri, ci = linear_sum_assignment(C)
    pairs = [(int(a[i]), int(b[j])) for i, j in zip(ri, ci)]
    lsa = int(whole[ri, ci].sum())
    if at_start and len(a) <= 4:
        bound = min(int(whole[np.arange(len(a)), list(p)].sum() - whole[np.arange(len(a)), list(p)].max())
                    for p in itertools.permutations(range(len(a))))
    else:
        bound = max(lsa - (TURN_COST_U if at_start else 0), 0)
    return pairs, bound


def _euler_circuit(net: StreetNetwork, items: list[Traversal], start: int, directed: bool,
                   out_b: np.ndarray, in_b: np.ndarray) -> tuple[list[Traversal], int]:
    """A closed walk from ``start`` over every item, with few turns; and a lower bound on the
    turn cost (turns + 2 × U-turns) of any closed walk over the same items.

    Each node pairs the ways the walk arrives with the ways it leaves (a transition system) at
    least turn cost: exactly, by enumeration or the blossom matching walking, by assignment
    driving. The sum of those node optima (less the dearest transition at the start) bounds any
    circuit. The pairings make closed trails; while there is more than one, two trails meeting
    at a node are joined by re-pairing their transitions there, cheapest re-pairing first
    (Kruskal over the trails). Undirected items may be walked either way; driving items keep
    their direction.
    """
    m = len(items)
    if m == 0:
        return [], 0
    e = np.fromiter((it.edge for it in items), dtype=np.int64, count=m)
    f = np.fromiter((it.forward for it in items), dtype=bool, count=m)
    # End 2i of item i lies at its edge's u, end 2i+1 at v; lb: heading leaving the node that way.
    node = np.empty(2 * m, dtype=np.int64)
    node[0::2], node[1::2] = net.edge_u[e], net.edge_v[e]
    lb = np.empty(2 * m)
    lb[0::2], lb[1::2] = out_b[e], (in_b[e] + 180.0) % 360.0
    is_in = None
    if directed:  # the walk arrives by an item's head end and leaves by its tail end
        is_in = np.empty(2 * m, dtype=bool)
        is_in[0::2], is_in[1::2] = ~f, f
    order = np.argsort(node, kind="stable")
    cuts = np.flatnonzero(np.diff(node[order])) + 1
    starts = np.concatenate([[0], cuts])
    sizes = np.diff(np.concatenate([starts, [2 * m]]))
    partner = np.full(2 * m, -1, dtype=np.int64)
    bound = 0
    for size in np.unique(sizes).tolist():
        first = starts[sizes == size]
        if size <= (2 if directed else ENUMERATE_UP_TO):
            # Every pairing of every such node at once (one for two ends, 3 for four, ...).
            E = order[first[:, None] + np.arange(size)]  # nodes × ends
            P = _all_pairings(size)  # pairings × pairs × 2
            ea, eb = E[:, P[:, :, 0]], E[:, P[:, :, 1]]  # nodes × pairings × pairs
            dev = _turn_dev(lb[ea], lb[eb])
            whole = _turn_cost(dev)
            best = np.argmin(_order_cost(dev, whole).sum(axis=2), axis=1)
            rows = np.arange(len(E))
            pa, pb = ea[rows, best].ravel(), eb[rows, best].ravel()
            partner[pa], partner[pb] = pb, pa
            total = whole.sum(axis=2)
            begin = node[E[:, 0]] == start
            # At the start the route begins and ends instead of making its dearest transition.
            total[begin] -= whole[begin].max(axis=2)
            bound += int(total.min(axis=1).sum())
            continue
        for s0 in first.tolist():
            ends = order[s0:s0 + size]
            pairs, b = _pair_ends(lb, ends, None if is_in is None else is_in[ends], int(node[ends[0]]) == start)
            bound += b
            for x, y in pairs:
                partner[x], partner[y] = y, x
    if np.any(partner < 0):
        raise GridPatrolError("route passes do not pair up at every node (internal error: please report)")
    _join_trails(partner, node, lb, is_in)
    # Begin at the start, breaking its dearest transition (the route starts and ends there).
    here = np.flatnonzero(node == start)
    if len(here) == 0:
        raise GridPatrolError("route pieces are not connected (internal error: please report)")
    cand = here if is_in is None else here[~is_in[here]]
    dep = int(cand[np.argmax(_turn_dev(lb[partner[cand]], lb[cand]))])
    last = int(partner[dep])
    circuit: list[Traversal] = []
    pl = partner.tolist()
    while True:
        i = dep >> 1
        circuit.append(Traversal(items[i].edge, dep % 2 == 0, items[i].required))
        arrive = dep ^ 1
        if arrive == last or len(circuit) > m:
            break
        dep = pl[arrive]
    if len(circuit) != m:
        raise GridPatrolError("route pieces are not connected (internal error: please report)")
    return circuit, bound


def _join_trails(partner: np.ndarray, node: np.ndarray, lb: np.ndarray, is_in: np.ndarray | None) -> None:
    """Re-pair transitions (in place) until the pairing ``partner`` of item ends is one closed trail.

    Two trails meeting at a node become one when a transition of each is re-paired crosswise;
    the cheapest such re-pairing that joins two different trails goes first (lazy Kruskal: a
    candidate is dropped when its transitions changed or its trails were joined meanwhile).
    """
    trails = DisjointSet(range(len(partner) // 2))  # items, joined into the trails they make
    pl = partner.tolist()
    for a in range(len(pl)):
        trails.merge(a >> 1, pl[a] >> 1)
    if trails.n_subsets <= 1:
        return

    def cost(a: int, b: int) -> float:
        dev = _turn_dev(lb[a], lb[b])
        return float(_order_cost(dev, _turn_cost(dev)))

    # Transitions at each node where more than one trail passes: (arrival, departure) ends.
    by_node: dict[int, list[tuple[int, int]]] = {}
    for a in range(len(pl)):
        if is_in is None and a < pl[a] or is_in is not None and is_in[a]:
            by_node.setdefault(int(node[a]), []).append((a, pl[a]))
    heap: list[tuple[float, int, int, tuple[int, int], tuple[int, int], tuple[tuple[int, int], ...]]] = []
    tick = 0

    def offers(x: int, t: tuple[int, int], others: list[tuple[int, int]]) -> None:
        nonlocal tick
        a, b = t
        for u in others:
            if u == t or trails.connected(a >> 1, u[0] >> 1):
                continue
            c, d = u
            old = cost(a, b) + cost(c, d)
            options = [((a, d), (c, b))] if is_in is not None else [((a, d), (c, b)), ((a, c), (b, d))]
            for new in options:
                tick += 1
                heapq.heappush(heap, (cost(*new[0]) + cost(*new[1]) - old, tick, x, t, u, new))

    alive = {x: set(ts) for x, ts in by_node.items() if len(ts) > 1}
    for x, ts in alive.items():
        lst = sorted(ts)
        for k, t in enumerate(lst):
            offers(x, t, lst[k + 1:])
    while trails.n_subsets > 1 and heap:
        _, _, x, t, u, new = heapq.heappop(heap)
        if t not in alive[x] or u not in alive[x]:
            continue
        if not trails.merge(t[0] >> 1, u[0] >> 1):
            continue
        alive[x] -= {t, u}
        for p, q in new:
            pl[p], pl[q] = q, p
        for nt in new:
            alive[x].add(nt)
            offers(x, nt, sorted(alive[x]))
    if trails.n_subsets > 1:
        raise GridPatrolError("route pieces are not connected (internal error: please report)")
    partner[:] = pl


def count_turns(net: StreetNetwork, traversals: list[Traversal]) -> tuple[int, int]:
    """(turns, U-turns) along a sequence of traversals (heading changes over 30° / 150°)."""
    if len(traversals) < 2:
        return 0, 0
    out_b, in_b = _bearings(net)
    e = np.array([t.edge for t in traversals])
    f = np.array([t.forward for t in traversals])
    dep = np.where(f, out_b[e], (in_b[e] + 180) % 360)
    arr = np.where(f, in_b[e], (out_b[e] + 180) % 360)
    d = np.abs((dep[1:] - arr[:-1] + 180) % 360 - 180)
    # Turning on the spot at a dead end on a self-loop or zero-length edge is not a turn.
    return int(np.sum((d >= TURN_DEG) & (d < UTURN_DEG))), int(np.sum(d >= UTURN_DEG))


def route_line(net: StreetNetwork, traversals: list[Traversal]) -> LineString:
    """The route as one LineString in the network's metric CRS."""
    if not traversals:
        return LineString()
    e = np.fromiter((t.edge for t in traversals), dtype=np.int64, count=len(traversals))
    f = np.fromiter((t.forward for t in traversals), dtype=bool, count=len(traversals))
    xy = net.path_coords(e, f)
    keep = np.ones(len(xy), dtype=bool)
    keep[1:] = np.any(np.abs(np.diff(xy, axis=0)) > 1e-9, axis=1)
    xy = xy[keep]
    if len(xy) < 2:
        xy = np.vstack([xy, xy])
    return LineString(xy)


def _mark_required(net: StreetNetwork, traversals: list[Traversal], required: set[int]) -> list[Traversal]:
    """Flag the first pass over each required edge (the rest of the length is deadhead)."""
    seen: set[int] = set()
    out = []
    for t in traversals:
        first = t.edge in required and t.edge not in seen
        if first:
            seen.add(t.edge)
        out.append(Traversal(t.edge, t.forward, first))
    return out


def _make_route(net: StreetNetwork, mode: str, start: int, trav: list[Traversal], required: set[int],
                lower_bound_m: float, worker: int = 0) -> CoverageRoute:
    trav = _mark_required(net, trav, required)
    e = np.fromiter((t.edge for t in trav), dtype=np.int64, count=len(trav))
    r = np.fromiter((t.required for t in trav), dtype=bool, count=len(trav))
    length = float(net.edge_length_m[e].sum())
    req = float(net.edge_length_m[e[r]].sum())
    turns, uturns = count_turns(net, trav)
    speed = WALK_SPEED_MPS if mode == "walk" else DRIVE_SPEED_MPS
    return CoverageRoute(mode, start, trav, length, req, lower_bound_m, length / speed, turns, uturns,
                         route_line(net, trav), worker)


def _solve_drive_mip(net: StreetNetwork, req_edges: np.ndarray, extra_arcs: list[list[int]],
                     nodes_ok: np.ndarray, time_limit_s: float) -> tuple[list[Traversal], float, float, str]:
    """Mixed Chinese postman as a MIP (HiGHS): orient two-way streets, add deadhead arc copies.

    Every required two-way street is travelled once in a chosen direction (binary y), one-way
    streets forwards; integer x_a extra copies of any allowed arc make every node balanced
    (in = out). Returns (traversals, deadhead objective, certified lower bound of it, status).
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
) -> CoveragePlan:
    """Plan closed routes that cover every street of ``polygon`` (EPSG:4326) from a start point.

    ``roads`` (EPSG:4326, columns as the roads layer) should include the streets around the
    polygon: streets outside (those meeting its bounding box grown by ``buffer_m``) are used where
    that is shorter. It can also
    be a StreetNetwork of ``mode`` built once for a whole city (gis.streets.street_network),
    which saves projecting the streets again for every grid. ``start`` is
    (lon, lat), snapped to the nearest street node (at most ``max_start_m`` away); by default the
    street node nearest the polygon's centre. Walking routes are exact (lower bound = length);
    driving respects one-way streets and is solved as a MIP within ``time_limit_s`` with a
    certified lower bound. ``workers`` > 1 splits the circuit into that many closed routes from
    the start. Street pieces not reachable from the start are reported in ``islands`` and left
    out. ``incidents`` (points, EPSG:4326) weight streets for the hot-spot share in ``stats``.
    Raises InputError for an area without streets, a start too far away or bad options.
    """
    t0 = time.perf_counter()
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}", where=name, hint="use walk or drive")
    if workers < 1:
        raise InputError(f"workers must be at least 1, not {workers}", where=name)
    if polygon is None or polygon.is_empty or polygon.area == 0:
        raise InputError("the area to cover is empty", where=name, hint="pass a polygon with area")
    if isinstance(roads, StreetNetwork):
        if roads.mode != mode:
            raise InputError(f"the street network was built for {roads.mode}, not {mode}", where=name)
        crs = roads.crs
        to_m = roads.transformer()
        poly_m = shapely.transform(polygon, lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1])))
        city = roads
        # The grid's streets lie within the box around it: find them with the city's spatial
        # index (built once) instead of building one for every grid.
        req_city, along_edge = grid_streets(city, poly_m)
        box = _around(poly_m, buffer_m).bounds
        if mode == "walk" and start is None and workers == 1 and req_city.any():
            box = _walk_box(city, np.flatnonzero(req_city), box)
        near = np.sort(np.asarray(city.tree().query(shapely.box(*box)) if city.n_edges else [], dtype=np.int64))
        net = city.subset(near)
        req = req_city[near]
    else:
        c = polygon.centroid
        crs = local_metric_crs(c.x, c.y)
        to_m = pyproj.Transformer.from_crs(4326, crs, always_xy=True)
        poly_m = shapely.transform(polygon, lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1])))
        if len(roads):
            # The layer's spatial index (kept by geopandas between calls) narrows the streets to
            # a padded box in degrees first; only those are projected and tested exactly.
            pad_y = 1.5 * buffer_m / 110_540.0
            pad_x = 1.5 * buffer_m / (111_320.0 * max(np.cos(np.radians(min(abs(c.y), 89.0))), 0.01))
            minx, miny, maxx, maxy = polygon.bounds
            idx = roads.sindex.query(shapely.box(minx - pad_x, miny - pad_y, maxx + pad_x, maxy + pad_y))
            roads = roads.iloc[np.sort(idx)]
            geoms_m = roads.geometry.to_crs(crs).to_numpy()
            roads = roads[shapely.intersects(geoms_m, _around(poly_m, buffer_m))]
        net = street_network(roads, mode=mode, crs=crs)
        req, along_edge = grid_streets(net, poly_m)
    warnings: list[str] = []
    if along_edge:
        warnings.append(f"no {'walkable' if mode == 'walk' else 'drivable'} street lies inside the area: "
                        f"the route covers the {int(req.sum())} street segment(s) along its edge "
                        f"({net.edge_length_m[req].sum():.0f} m)")
    if not req.any():
        raise InputError(f"no {'walkable' if mode == 'walk' else 'drivable'} streets inside the area or along its edge",
                         where=name, hint="check the grid polygon and that the roads layer was imported for this area")
    directed = mode == "drive"
    router = _Router(net, directed)

    # Parts of the network (strongly connected when driving): the default start lies in the one
    # holding most of the grid's streets, and a street is reachable when it is in the start's part
    # (from the start and back again when driving).
    # (A walking graph holds both directions of every street: its strong parts are its parts.)
    _, comp = connected_components(router.graph, directed=True, connection="strong")
    # Start: snap to the nearest street node.
    if start is not None:
        sx, sy = to_m.transform(*start)
        start_node, snap = nearest_node(net, sx, sy)
        if snap > max_start_m:
            raise InputError(
                f"start point {start[0]:.6f},{start[1]:.6f} is {snap / 1000:.1f} km from the nearest street of the area",
                where=name, hint=f"give a start (station) within {max_start_m:.0f} m of the grid's streets, as LON,LAT in WGS-84")
    else:
        # Default start: in the part of the street network holding most of the grid's streets
        # (else a detached courtyard lane near the centre would leave the rest unreachable).
        req_e = np.flatnonzero(req)
        same = comp[net.edge_u[req_e]] == comp[net.edge_v[req_e]]
        weight = np.bincount(comp[net.edge_u[req_e[same]]], weights=net.edge_length_m[req_e[same]], minlength=comp.max() + 1)
        best = int(np.argmax(weight))
        main = req_e[same & (comp[net.edge_u[req_e]] == best)]
        if len(main) == 0:  # no grid street lies inside one strongly connected part (driving)
            main = req_e
        rp = poly_m.representative_point()
        ends = np.unique(np.concatenate([net.edge_u[main], net.edge_v[main]]))
        start_node, snap = nearest_node(net, rp.x, rp.y, ends)
        snap = 0.0

    # Reachability from the start (both ways when driving).
    reach = comp == comp[start_node]
    req_idx = np.flatnonzero(req)
    ok_edge = reach[net.edge_u[req_idx]] & reach[net.edge_v[req_idx]]
    unreachable = req_idx[~ok_edge]
    req_idx = req_idx[ok_edge]
    if len(req_idx) == 0:
        raise InputError("none of the area's streets can be reached from the start point",
                         where=name, hint="move the start onto a street connected to the grid")
    required_set = set(req_idx.tolist())
    required_m = float(net.edge_length_m[req_idx].sum())

    # Pieces of the grid's street network (connected inside the grid), plus the start itself.
    labels = _components(net.n_nodes, net.edge_u[req_idx], net.edge_v[req_idx])
    comp_of_edge = labels[net.edge_u[req_idx]]
    comps = np.unique(comp_of_edge)
    start_on_streets = bool(np.any(net.edge_u[req_idx] == start_node) or np.any(net.edge_v[req_idx] == start_node))
    islands: list[dict[str, Any]] = []
    if len(comps) > 1:
        main = int(np.argmax([net.edge_length_m[req_idx[comp_of_edge == k]].sum() for k in comps]))
        for i, k in enumerate(comps):
            if i != main:
                e = req_idx[comp_of_edge == k]
                islands.append({"status": "covered via outside streets", "edges": len(e),
                                "length_m": float(net.edge_length_m[e].sum()),
                                "at": _lonlat(net, int(net.edge_u[e[0]]))})
    if len(unreachable):
        ul = _components(net.n_nodes, net.edge_u[unreachable], net.edge_v[unreachable])[net.edge_u[unreachable]]
        for k in np.unique(ul):
            e = unreachable[ul == k]
            islands.append({"status": "unreachable", "edges": len(e), "length_m": float(net.edge_length_m[e].sum()),
                            "at": _lonlat(net, int(net.edge_u[e[0]]))})
        warnings.append(f"{len(unreachable)} street segment(s), {net.edge_length_m[unreachable].sum():.0f} m, "
                        "cannot be reached from the start and are left out")

    def augment(conns: list[list[int]]) -> tuple[list[Traversal], float, bool, dict[str, Any]]:
        """Required passes + connector passes, made Eulerian at least cost (exact for fixed conns)."""
        fixed = [Traversal(int(e), True, True) for e in req_idx]
        for p in conns:
            fixed += router.traversals(p)
        if not directed:
            fe = np.fromiter((t.edge for t in fixed), dtype=np.int64, count=len(fixed))
            T = _odd_nodes(net.n_nodes, np.concatenate([net.edge_u[fe], net.edge_v[fe]]))
            # With the grid's streets in one piece they hold a T-join no longer than they are,
            # so no pair of the optimal matching is farther apart than required_m.
            # (Dijkstra's arcs are at least 1 µm long: allow for that.)
            limit = required_m + 1e-6 * len(req_idx) if len(comps) == 1 and not conns else np.inf
            paths, m = _tjoin(router, T, limit=limit)
            extra = [t for p in paths for t in router.traversals(p)]
            return fixed + extra, m.lower_bound, m.exact, {"matching": m.method, "odd_nodes": int(len(T)),
                                                           "matching_iterations": m.iterations}
        # Half of what is left: islands still need time for the rural-postman step.
        left = max(1.0, (t0 + time_limit_s - time.perf_counter()) / 2)
        trav, _obj, bound, status = _solve_drive_mip(net, req_idx, conns, reach, left)
        return trav + fixed[len(req_idx):], bound, status == "optimal", {"mip_status": status}

    rpp_optimal = False
    fast = None
    if directed:
        # Driving: the mixed postman on the terminal link graph (balance + connectivity cuts) is
        # small and usually proven optimal in seconds; the whole-network MIP is the fallback.
        fast = _mixed_rpp_mip(net, router, req_idx, start_node, time_limit_s / 2, np.inf)
    if fast is not None and fast["items"] is not None:
        items, bound0, solved_exactly, rounds, conns = fast["items"], fast["bound"], True, 0, []
        solver = {"mip_status": "optimal", "model": "terminal links"}
    else:
        # Solve without connectivity first: its bound is a lower bound of the true problem. Where
        # the result falls apart into pieces (street islands of the grid joined only by outside
        # streets), join the pieces along a minimum spanning tree of shortest paths (Frederickson)
        # and solve again, until one closed route remains.
        items, bound0, solved_exactly, solver = augment([])
        first_items = items
        conns: list[list[int]] = []
        if len(comps) == 1 and start_on_streets:
            # The grid's streets are one piece and the start is on them: so is the route.
            pieces = [np.zeros(0, dtype=np.int64)]
        else:
            pieces = _item_groups(net, items, start_node)
        first_pieces = pieces
        rounds = 0
        while len(pieces) > 1 and rounds < 50:
            rounds += 1
            more, _ = _connectors(router, pieces)
            conns += more
            items, _b, _ok, solver = augment(conns)
            pieces = _item_groups(net, items, start_node)
        if len(pieces) > 1:
            raise GridPatrolError("could not join the grid's street pieces into one route", where=name)
        if rounds:
            # Alternative: keep the first solution and walk each joining path there and back.
            more, _ = _connectors(router, first_pieces)
            alt = list(first_items)
            for p in more:
                alt += router.traversals(p) * (1 if directed else 2)
            if sum(net.edge_length_m[t.edge] for t in alt) < sum(net.edge_length_m[t.edge] for t in items):
                items, conns = alt, more
        if fast is not None:
            bound0 = max(bound0, fast["bound"])  # valid even though it ran out of time
        if rounds or (directed and not solved_exactly):
            # Islands (or a driving MIP that ran out of time): solve the rural postman exactly
            # (parity/balance + connectivity cuts) when time allows; its bound is valid even when
            # it stops early, and beats the one without cuts.
            best_m = float(sum(net.edge_length_m[t.edge] for t in items)) - required_m
            if directed:
                left = max(1.0, time_limit_s - (time.perf_counter() - t0))
                rpp = _mixed_rpp_mip(net, router, req_idx, start_node, left, best_m)
            else:
                rpp = _rpp_mip(net, router, req_idx, start_node, min(time_limit_s, RPP_TIME_S), best_m)
            solver["rpp"] = rpp["status"]
            bound0 = max(bound0, rpp["bound"])
            # Optimal: either its route, or (when no shorter) the joined route already was optimal.
            rpp_optimal = rpp["status"] == "optimal"
            if rpp["items"] is not None:
                items, conns = rpp["items"], []
    conn_m = float(sum(router.graph[x, y] for p in conns for x, y in zip(p[:-1], p[1:])))
    if directed:
        # Ignoring one-way streets for deadheading relaxes the problem: another valid bound.
        _, m_und = _tjoin(_Router(net, False), _odd_nodes(net.n_nodes, np.concatenate([net.edge_u[req_idx], net.edge_v[req_idx]])))
        solver["undirected_bound_m"] = required_m + m_und.lower_bound
        solver["mip_bound_m"] = required_m + bound0
        bound0 = max(bound0, m_und.lower_bound)
    lower = required_m + bound0
    exact = (solved_exactly and rounds == 0) or rpp_optimal
    status = "optimal" if exact else ("bounded" if rounds == 0 else "joined islands")
    solver["join_rounds"] = rounds
    out_b, in_b = _bearings(net)
    circuit, turn_bound = _euler_circuit(net, items, start_node, directed, out_b, in_b)
    whole = _make_route(net, mode, start_node, circuit, required_set, lower)
    if exact:
        # Proven optimal: the bound and the length are the same number up to rounding.
        whole.lower_bound_m = min(whole.lower_bound_m, whole.length_m)
    if workers > 1:
        # Shortest ways from the start and back to it: the split closes its pieces along them,
        # and they give the bound on its longest route.
        out_, back_ = router.dijkstra([start_node]), router.dijkstra([start_node], reverse=True)
        routes = _split(net, router, whole, workers, required_set, out_, back_)
    else:
        routes = [whole]
    stats: dict[str, Any] = {
        "segments_required": int(len(req_idx)),
        "segments_unreachable": int(len(unreachable)),
        "unreachable_m": float(net.edge_length_m[unreachable].sum()) if len(unreachable) else 0.0,
        "connector_m": conn_m,
        "deadhead_m": whole.length_m - required_m,
        "deadhead_share": (whole.length_m - required_m) / whole.length_m if whole.length_m else 0.0,
        "turns": whole.n_turns,
        "uturns": whole.n_uturns,
        "turns_per_km": whole.n_turns / (whole.length_m / 1000) if whole.length_m else 0.0,
        # Turns + 2 × U-turns, and a lower bound on it for any order of the same passes.
        "turn_cost": whole.n_turns + TURN_COST_U * whole.n_uturns,
        "turn_cost_bound": turn_bound,
        "solver": solver,
        "status": status,
        "runtime_s": time.perf_counter() - t0,
    }
    if workers > 1:
        lengths = [r.length_m for r in routes]
        stats["worker_lengths_m"] = lengths
        stats["balance"] = max(lengths) / (sum(lengths) / len(lengths))
        bound_k, far = _longest_bound(net, router.directed, req_idx, lower, workers, out_[0][0], back_[0][0])
        stats["longest_lower_bound_m"] = bound_k
        if len(routes) < workers:
            warnings.append(f"{len(routes)} route(s), not {workers}: the grid has only {len(req_idx)} street "
                            "segment(s) to share out")
        if stats["balance"] > BALANCE_TARGET:
            why = (f"; its farthest street alone needs a {far:.0f} m round trip from the start, so no split "
                   "makes the longest route shorter" if max(lengths) <= far * (1 + 1e-6) + 1e-3 else "")
            warnings.append(f"the {len(routes)} routes are not within {BALANCE_TARGET - 1:.0%} of their mean: longest "
                            f"{max(lengths):.0f} m, mean {np.mean(lengths):.0f} m{why}")
    if incidents is not None and len(incidents):
        stats.update(_hot_spots(net, req, unreachable, incidents, crs))
    return CoveragePlan(
        network=net, mode=mode, routes=routes, required_edges=req_idx, required_m=required_m,
        length_m=whole.length_m, lower_bound_m=whole.lower_bound_m, gap=whole.gap, exact=exact,
        start_node=start_node, start_snap_m=snap, islands=islands, unreachable_edges=unreachable,
        warnings=warnings, stats=stats,
    )


def _walk_box(city: StreetNetwork, req: np.ndarray, box: tuple[float, float, float, float]
              ) -> tuple[float, float, float, float]:
    """The part of ``box`` (metres) a walking grid whose streets ``req`` are one piece can need.

    Such a grid's streets reach one another inside it, so every street is reachable and the
    default start lies on them; and no pair of odd ends of the optimal matching is farther apart
    than the streets are long (L, see _tjoin). A path no longer than L between two street ends
    stays within L/2 of one of them, so the streets meeting the box around the ends grown by
    L/2 give the same route as all streets in ``box``. Otherwise ``box`` itself.
    """
    u, v = city.edge_u[req], city.edge_v[req]
    labels = _components(city.n_nodes, u, v)
    if np.any(labels[u] != labels[u[0]]):
        return box
    L = float(city.edge_length_m[req].sum()) + 1e-6 * len(req)
    # The Dijkstra limit of _tjoin, then room for projected vs. geodesic lengths.
    m = (L * (1 + 1e-9) + 1e-3) / 2 * 1.01 + 5.0
    xy = city.node_xy[np.concatenate([u, v])]
    (x0, y0), (x1, y1) = xy.min(axis=0) - m, xy.max(axis=0) + m
    return (max(x0, box[0]), max(y0, box[1]), min(x1, box[2]), min(y1, box[3]))


def _around(poly_m: BaseGeometry, buffer_m: float) -> BaseGeometry:
    """The streets a route may use: those meeting the polygon's bounding box grown by ``buffer_m``."""
    minx, miny, maxx, maxy = poly_m.bounds
    return shapely.box(minx - buffer_m, miny - buffer_m, maxx + buffer_m, maxy + buffer_m)


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


def _split(net: StreetNetwork, router: _Router, whole: CoverageRoute, k: int, required: set[int],
           out_: tuple[np.ndarray, np.ndarray], back_: tuple[np.ndarray, np.ndarray]) -> list[CoverageRoute]:
    """Frederickson's k-split: cut the circuit into pieces, each closed at the start by shortest paths.

    Cut points are chosen by bisection on the longest route (min-max), on the circuit with its
    loops through the start in every rotation and, when walking, each walked the other way round,
    whichever gives the shorter longest route. Should fewer than k pieces already reach that (a second route would not shorten the
    longest one), the longest piece that holds two required passes is cut again where the
    larger of its two halves is least: each half is no longer than the piece (the rest of a
    closed walk leads back to the start at least as far as the shortest path), so the longest
    route stays as it is and every worker gets a share. Pieces with no required pass are dropped.
    Fewer than k routes come back only when the grid has fewer than k required passes to share out.
    """
    start = whole.start_node
    (d_out, p_out), (d_back, p_back) = out_, back_  # Dijkstra from the start, and to it

    def plan(trav: list[Traversal]) -> tuple[float, float, list[tuple[int, int]], Any]:
        nodes = [start]
        for t in trav:
            nodes.append(int(net.edge_v[t.edge]) if t.forward else int(net.edge_u[t.edge]))
        pos = np.concatenate([[0.0], np.cumsum([net.edge_length_m[t.edge] for t in trav])])
        to_n, from_n = d_out[0][nodes], d_back[0][nodes]
        m = len(trav)
        # Required passes before each position: a piece (i, j) holds one when need[j] > need[i].
        need = np.concatenate([[0], np.cumsum([t.required for t in trav])])

        def cost(i: int, j: int) -> float:
            return float(to_n[i] + pos[j] - pos[i] + from_n[j])

        def pieces(limit: float) -> list[tuple[int, int]] | None:
            cuts, i = [], 0
            while i < m:
                c = to_n[i] + pos[i + 1:] - pos[i] + from_n[i + 1:]
                ok = np.flatnonzero(c <= limit)
                if len(ok) == 0:
                    return None
                j = i + 1 + int(ok[-1])
                cuts.append((i, j))
                i = j
            return cuts

        lo, hi = pos[-1] / k, pos[-1] + 2 * float(np.max(to_n + from_n))
        best = pieces(hi)
        for _ in range(60):
            mid = (lo + hi) / 2
            cuts = pieces(mid)
            if cuts is not None and len(cuts) <= k:
                best, hi = cuts, mid
            else:
                lo = mid
        assert best is not None
        # A piece with no required pass (only a way between streets) is no one's work: dropped.
        best = [(i, j) for i, j in best if need[j] > need[i]]
        while len(best) < k:
            # Cut the longest piece that holds two required passes where its larger half is least.
            options = []
            for n_, (i, j) in enumerate(best):
                cand = [c for c in range(i + 1, j) if need[c] > need[i] and need[j] > need[c]]
                if cand:
                    c = min(cand, key=lambda c: max(cost(i, c), cost(c, j)))  # noqa: B023
                    options.append((cost(i, j), n_, c))
            if not options:
                break
            _, n_, c = max(options)
            i, j = best[n_]
            best[n_:n_ + 1] = [(i, c), (c, j)]
        costs = [cost(i, j) for i, j in best]
        return max(costs), float(np.mean(costs)), best, nodes

    trav = whole.traversals
    # The circuit is closed loops from the start one after the other: in any order (here every
    # rotation) they make the same passes, and a cut between two loops costs no way back.
    ends = [0] + [p + 1 for p, t in enumerate(trav[:-1])
                  if (int(net.edge_v[t.edge]) if t.forward else int(net.edge_u[t.edge])) == start] + [len(trav)]
    loops = [trav[a:b] for a, b in zip(ends[:-1], ends[1:])][:SPLIT_LOOP_ORDERS]
    loops[-1:] = [trav[ends[len(loops) - 1]:]]
    tries = [[t for lp in loops[r:] + loops[:r] for t in lp] for r in range(len(loops))]
    if not router.directed:
        tries += [[Traversal(t.edge, not t.forward, t.required) for t in reversed(c)] for c in tries]
    # Fewest missing routes first, then the shortest longest route (to the metre), then the
    # longest nearest to the mean.
    runs = [(plan(t), t) for t in tries]
    (_, _, best, nodes), trav = min(runs, key=lambda r: (-len(r[0][2]), round(r[0][0]), r[0][0] / r[0][1]))
    routes = []
    for w, (i, j) in enumerate(best):
        go = router.traversals(_path_nodes(p_out[0], start, nodes[i]))
        # p_back holds predecessors on the reversed graph: following it from nodes[j] leads to start.
        back_nodes = _path_nodes(p_back[0], start, nodes[j])[::-1]
        back = router.traversals(back_nodes)
        part = go + trav[i:j] + back
        routes.append(_make_route(net, whole.mode, start, part, required, 0.0, w))
    return routes


def _longest_bound(net: StreetNetwork, directed: bool, req_idx: np.ndarray, lower: float, k: int,
                   d_out: np.ndarray, d_back: np.ndarray) -> tuple[float, float]:
    """(lower bound on the longest of k closed routes from the start covering ``req_idx``, the
    round trip to the farthest required street); ``d_out`` / ``d_back``: shortest distances from
    the start / to it. The k routes together are one closed walk covering every street, so the
    longest is at least ``lower`` / k; and the route that covers the farthest street is at least
    the shortest way there, along it and back."""
    u, v, ln = net.edge_u[req_idx], net.edge_v[req_idx], net.edge_length_m[req_idx]
    fwd = d_out[u] + ln + d_back[v]
    rev = np.where(net.edge_oneway[req_idx] & directed, np.inf, d_out[v] + ln + d_back[u])
    far = float(np.max(np.minimum(fwd, rev))) if len(req_idx) else 0.0
    return max(far, lower / k), far
