"""The k-worker split of a closed route into closed routes from the same start."""
from __future__ import annotations

from typing import Any

import numpy as np
from gridpatrol.gis.routing.circuit import euler_circuit
from gridpatrol.gis.routing.network import Traversal
from gridpatrol.gis.routing.route import CoverageRoute, make_route
from gridpatrol.gis.routing.router import Router, path_nodes
from gridpatrol.gis.streets import StreetNetwork

SPLIT_LOOP_ORDERS = 16  # k routes: the circuit's loops through the start are tried in up to this many orders


def split_route(net: StreetNetwork, router: Router, whole: CoverageRoute, k: int, required: set[int],
                out_: tuple[np.ndarray, np.ndarray], back_: tuple[np.ndarray, np.ndarray],
                reorder: bool = True) -> list[CoverageRoute]:
    """The closed route ``whole`` cut into k closed routes from its start, the longest as short as found.

    ``out_`` / ``back_``: Dijkstra (distances, predecessors) from the start / to it. Fewer than k
    routes come back only when the grid has fewer than k required passes. Each route's passes are
    put in order again for the fewest U-turns (``reorder``; same passes, same length). How:
    docs/routing.md, step "share out".
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
    out_b, in_b = net.bearings()
    for w, (i, j) in enumerate(best):
        go = router.traversals(path_nodes(p_out[0], start, nodes[i]))
        # p_back holds predecessors on the reversed graph: following it from nodes[j] leads to start.
        back_nodes = path_nodes(p_back[0], start, nodes[j])[::-1]
        back = router.traversals(back_nodes)
        part = go + trav[i:j] + back
        if not reorder:
            routes.append(make_route(net, whole.mode, start, part, required, 0.0, w))
            continue
        # The piece of the whole circuit, closed by the ways there and back, is a closed walk of its
        # own: ordered alone, its passes can turn round less (the ways there and back join it anywhere).
        circuit, bounds = euler_circuit(net, part, start, router.directed, out_b, in_b)
        routes.append(make_route(net, whole.mode, start, circuit, required, 0.0, w, uturn_bound=bounds.uturns))
    return routes


def longest_route_bound(net: StreetNetwork, directed: bool, req_idx: np.ndarray, lower: float, k: int,
                        d_out: np.ndarray, d_back: np.ndarray) -> tuple[float, float]:
    """(lower bound on the longest of k closed routes from the start covering ``req_idx``, the
    round trip to the farthest required street), metres.

    ``lower``: bound on one route over all; ``d_out`` / ``d_back``: shortest distances from the
    start / to it.
    """
    u, v, ln = net.edge_u[req_idx], net.edge_v[req_idx], net.edge_length_m[req_idx]
    fwd = d_out[u] + ln + d_back[v]
    rev = np.where(net.edge_oneway[req_idx] & directed, np.inf, d_out[v] + ln + d_back[u])
    far = float(np.max(np.minimum(fwd, rev))) if len(req_idx) else 0.0
    return max(far, lower / k), far
