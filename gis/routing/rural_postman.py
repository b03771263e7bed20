"""Rural postman (streets of a grid joined through outside streets) as integer programs with connectivity cuts."""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from gridpatrol.gis.routing.network import Traversal
from gridpatrol.gis.routing.router import Router
from gridpatrol.gis.streets import StreetNetwork
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse.csgraph import connected_components, dijkstra, shortest_path


def _prune_links(L: np.ndarray) -> np.ndarray:
    """Links (``L[i, j]`` finite) with the ones a postman model never needs set to inf.

    A link i → j is not needed when a path over other links through another terminal is no
    longer (docs/routing.md, "Rural postman").
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

    def __init__(self, net: StreetNetwork, router: "Router", req_idx: np.ndarray, start: int):
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


def mixed_rural_postman(net: StreetNetwork, router: "Router", req_idx: np.ndarray, start: int, time_limit_s: float,
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


def rural_postman(net: StreetNetwork, router: "Router", req_idx: np.ndarray, start: int, time_limit_s: float,
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
