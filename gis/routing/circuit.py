"""Euler circuit over a route's passes with few turns, and a lower bound on its turns."""
from __future__ import annotations

import heapq
import itertools

import numpy as np
from gridpatrol.gis.errors import GridPatrolError
from gridpatrol.gis.routing.matching import (
    ENUMERATE_UP_TO,
    all_pairings,
    min_weight_perfect_matching,
)
from gridpatrol.gis.routing.network import TURN_DEG, UTURN_DEG, Traversal
from gridpatrol.gis.streets import StreetNetwork
from scipy.cluster.hierarchy import DisjointSet
from scipy.optimize import linear_sum_assignment

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
    """Best transitions at one node with many ends (the nodes euler_circuit does not enumerate):
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


def euler_circuit(net: StreetNetwork, items: list[Traversal], start: int, directed: bool,
                  out_b: np.ndarray, in_b: np.ndarray) -> tuple[list[Traversal], int]:
    """A closed walk from ``start`` over every item, with few turns; and a lower bound on the
    turn cost (turns + 2 × U-turns) of any closed walk over the same items.

    ``out_b``, ``in_b``: the network's bearings. Walking (``directed`` False) items may be walked
    either way; driving items keep their direction. How: docs/routing.md, step "circuit".
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
            P = all_pairings(size)  # pairings × pairs × 2
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

    Cheapest crosswise re-pairing of two trails first (lazy Kruskal: a candidate is dropped when
    its transitions changed or its trails were joined meanwhile).
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
