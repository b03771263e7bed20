"""Euler circuit over a route's passes with few U-turns and turns, and lower bounds on both."""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

import numpy as np
from gridpatrol.gis.errors import GridPatrolError
from gridpatrol.gis.routing.circuit_exact import EXACT_WORK, fewest_uturns
from gridpatrol.gis.routing.matching import (
    ENUMERATE_UP_TO,
    all_pairings,
    min_weight_perfect_matching,
)
from gridpatrol.gis.routing.network import TURN_COST_U, UTURN_DEG, Traversal, turn_cost, turn_dev
from gridpatrol.gis.streets import StreetNetwork
from scipy.cluster.hierarchy import DisjointSet
from scipy.optimize import linear_sum_assignment

UTURN_WEIGHT = 10_000.0  # ordering a route, one U-turn outweighs the turns of any node (at most one per end)


@dataclass
class TurnBounds:
    """Lower bounds for any closed walk from the start over the same passes."""

    turn_cost: int  # turns + 2 × U-turns
    uturns: int


def _order_cost(dev: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """What ordering a route minimises: fewer U-turns first, then fewer whole turns, then the
    straighter (the tie-break stays below one turn over hundreds of transitions)."""
    return np.where(dev >= UTURN_DEG, UTURN_WEIGHT, 0.0) + whole + dev * 1e-5


def _pair_ends(lb: np.ndarray, ends: np.ndarray, is_in: np.ndarray | None, at_start: bool
               ) -> tuple[list[tuple[int, int]], int, int]:
    """Best transitions at one node with many ends (the nodes _pair_nodes does not enumerate):
    (arrival end, departure end) pairs of least order cost, and lower bounds on the turn cost and
    on the U-turns of any pairing there (less the costliest transition at the start, where the
    route begins and ends instead of turning)."""
    if is_in is None:  # walking: any two ends may pair, either way round
        a = b = ends
    else:
        a, b = ends[is_in], ends[~is_in]
    dev = turn_dev(lb[a][:, None], lb[b][None, :])
    whole = turn_cost(dev)
    C = _order_cost(dev, whole)
    if is_in is None:
        n = len(ends)
        res = min_weight_perfect_matching(np.where(np.eye(n, dtype=bool), 0.0, C))
        pairs = [(int(ends[i]), int(ends[j])) for i, j in res.pairs]
        # U-turns weigh UTURN_WEIGHT each; the turns and the tie-break of a node stay far below it.
        u_bound = int(np.floor(res.lower_bound / UTURN_WEIGHT + 0.25))
        turns = min_weight_perfect_matching(np.where(np.eye(n, dtype=bool), 0.0, whole + dev * 1e-5))
        bound = int(np.ceil(turns.lower_bound - n * 1e-3)) - (TURN_COST_U if at_start else 0)
        return pairs, max(bound, 0), max(u_bound - at_start, 0)
    ri, ci = linear_sum_assignment(C)
    pairs = [(int(a[i]), int(b[j])) for i, j in zip(ri, ci)]
    u_bound = int((dev[ri, ci] >= UTURN_DEG).sum())
    wi, wj = linear_sum_assignment(whole)
    lsa = int(whole[wi, wj].sum())
    if at_start and len(a) <= 4:
        bound = min(int(whole[np.arange(len(a)), list(p)].sum() - whole[np.arange(len(a)), list(p)].max())
                    for p in itertools.permutations(range(len(a))))
    else:
        bound = max(lsa - (TURN_COST_U if at_start else 0), 0)
    return pairs, bound, max(u_bound - at_start, 0)


def pass_ends(net: StreetNetwork, items: list[Traversal], directed: bool, out_b: np.ndarray, in_b: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The items' ends: node of each (end 2i of item i lies at its edge's u, end 2i+1 at v), the
    heading leaving the node that way, and (driving) whether the walk arrives by it."""
    m = len(items)
    e = np.fromiter((it.edge for it in items), dtype=np.int64, count=m)
    node = np.empty(2 * m, dtype=np.int64)
    node[0::2], node[1::2] = net.edge_u[e], net.edge_v[e]
    lb = np.empty(2 * m)
    lb[0::2], lb[1::2] = out_b[e], (in_b[e] + 180.0) % 360.0
    is_in = None
    if directed:  # the walk arrives by an item's head end and leaves by its tail end
        f = np.fromiter((it.forward for it in items), dtype=bool, count=m)
        is_in = np.empty(2 * m, dtype=bool)
        is_in[0::2], is_in[1::2] = ~f, f
    return node, lb, is_in


def _pair_nodes(node: np.ndarray, lb: np.ndarray, is_in: np.ndarray | None, start: int
                ) -> tuple[np.ndarray, TurnBounds]:
    """At every node, the pairing of the ends there (``partner``) of least order cost, and the
    sums over the nodes of the least turn cost and the fewest U-turns any pairing makes there."""
    directed = is_in is not None
    order = np.argsort(node, kind="stable")
    cuts = np.flatnonzero(np.diff(node[order])) + 1
    starts = np.concatenate([[0], cuts])
    sizes = np.diff(np.concatenate([starts, [len(node)]]))
    partner = np.full(len(node), -1, dtype=np.int64)
    bound = u_bound = 0
    for size in np.unique(sizes).tolist():
        first = starts[sizes == size]
        if size <= (2 if directed else ENUMERATE_UP_TO):
            # Every pairing of every such node at once (one for two ends, 3 for four, ...).
            E = order[first[:, None] + np.arange(size)]  # nodes × ends
            P = all_pairings(size)  # pairings × pairs × 2
            ea, eb = E[:, P[:, :, 0]], E[:, P[:, :, 1]]  # nodes × pairings × pairs
            dev = turn_dev(lb[ea], lb[eb])
            whole = turn_cost(dev)
            best = np.argmin(_order_cost(dev, whole).sum(axis=2), axis=1)
            rows = np.arange(len(E))
            pa, pb = ea[rows, best].ravel(), eb[rows, best].ravel()
            partner[pa], partner[pb] = pb, pa
            total = whole.sum(axis=2)
            u = (dev >= UTURN_DEG).sum(axis=2)
            begin = node[E[:, 0]] == start
            # At the start the route begins and ends instead of making its dearest transition.
            total[begin] -= whole[begin].max(axis=2)
            u[begin] -= u[begin] > 0
            bound += int(total.min(axis=1).sum())
            u_bound += int(u.min(axis=1).sum())
            continue
        for s0 in first.tolist():
            ends = order[s0:s0 + size]
            pairs, b, ub = _pair_ends(lb, ends, None if is_in is None else is_in[ends], int(node[ends[0]]) == start)
            bound += b
            u_bound += ub
            for x, y in pairs:
                partner[x], partner[y] = y, x
    if np.any(partner < 0):
        raise GridPatrolError("route passes do not pair up at every node (internal error: please report)")
    return partner, TurnBounds(bound, u_bound)


def turn_bounds(net: StreetNetwork, traversals: list[Traversal], start: int, directed: bool) -> TurnBounds:
    """Lower bounds on the turn cost and on the U-turns of any closed walk from ``start`` over the
    passes ``traversals`` (walking, ``directed`` False: each either way). At every node the walk
    pairs each arrival with a departure; a node where every pairing turns round (a dead end, or a
    street walked there and back) forces a U-turn, except at the start, where the walk ends."""
    if not traversals:
        return TurnBounds(0, 0)
    out_b, in_b = net.bearings()
    return _pair_nodes(*pass_ends(net, traversals, directed, out_b, in_b), start)[1]


def euler_circuit(net: StreetNetwork, items: list[Traversal], start: int, directed: bool,
                  out_b: np.ndarray, in_b: np.ndarray, exact_work: float = EXACT_WORK
                  ) -> tuple[list[Traversal], TurnBounds]:
    """A closed walk from ``start`` over every item, with few U-turns and turns; and lower bounds
    on the turn cost (turns + 2 × U-turns) and the U-turns of any closed walk over the same items.

    ``out_b``, ``in_b``: the network's bearings. Walking (``directed`` False) items may be walked
    either way; driving items keep their direction. When the order found node by node turns round
    more often than the node bound, an exact search (``circuit_exact.fewest_uturns``, at most
    ``exact_work`` deterministic seconds; 0: none) looks for an order with fewer and raises the
    bound to what it proves. How: docs/routing.md, step "circuit".
    """
    m = len(items)
    if m == 0:
        return [], TurnBounds(0, 0)
    node, lb, is_in = pass_ends(net, items, directed, out_b, in_b)
    partner, bounds = _pair_nodes(node, lb, is_in, start)
    _join_trails(partner, node, lb, is_in)
    if _count_uturns(partner, lb, node, start) > bounds.uturns:
        _fewer_uturns(partner, node, lb, is_in, start)
    circuit = _circuit_of(partner, items, node, lb, is_in, start)
    made = _count_uturns(partner, lb, node, start)
    if made > bounds.uturns and exact_work > 0:
        exact = fewest_uturns(items, node, lb, is_in, start, hint=circuit, work=exact_work)
        bounds.uturns = max(bounds.uturns, min(exact.lower_bound, made))
        if exact.circuit is not None and exact.uturns < made:
            circuit = exact.circuit
    return circuit, bounds


def _circuit_of(partner: np.ndarray, items: list[Traversal], node: np.ndarray, lb: np.ndarray,
                is_in: np.ndarray | None, start: int) -> list[Traversal]:
    """The closed walk of the pairing ``partner`` as passes from the start."""
    m = len(items)
    # Begin at the start, breaking its dearest transition (the route starts and ends there).
    here = np.flatnonzero(node == start)
    if len(here) == 0:
        raise GridPatrolError("route pieces are not connected (internal error: please report)")
    cand = here if is_in is None else here[~is_in[here]]
    dep = int(cand[np.argmax(turn_dev(lb[partner[cand]], lb[cand]))])
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
    return circuit


def _count_uturns(partner: np.ndarray, lb: np.ndarray, node: np.ndarray, start: int) -> int:
    """U-turns the pairing ``partner`` makes (one at the start is where the route begins and ends)."""
    u = turn_dev(lb, lb[partner]) >= UTURN_DEG  # each transition counted from both its ends
    return max(int(u.sum()) // 2 - bool(u[node == start].any()), 0)


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
        dev = turn_dev(lb[a], lb[b])
        return float(_order_cost(dev, turn_cost(dev)))

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


def _trail_of(pl: list[int]) -> list[int]:
    """The closed trail (0, 1, …) of every item end under the pairing ``pl``."""
    tid = [-1] * len(pl)
    k = 0
    for s in range(len(pl)):
        if tid[s] >= 0:
            continue
        e = s
        while tid[e] < 0:
            tid[e] = tid[e ^ 1] = k
            e = pl[e ^ 1]
        k += 1
    return tid


def _fewer_uturns(partner: np.ndarray, node: np.ndarray, lb: np.ndarray, is_in: np.ndarray | None,
                  start: int) -> None:
    """Take out U-turns the joining of trails left (in place, keeping one closed trail).

    Re-pair a U-turn transition with another at its node crosswise; when that splits the circuit
    in two, join the two again by the cheapest crosswise re-pairing at a node both pass; keep the
    pair of changes when together they lower the order cost (one U-turn at the start is free: the
    route begins and ends there instead). Each kept change lowers it, so this ends.
    """
    pl = partner.tolist()
    nodes = node.tolist()

    def cost(a: int, b: int) -> float:
        dev = turn_dev(lb[a], lb[b])
        return float(_order_cost(dev, turn_cost(dev)))

    def is_u(a: int, b: int) -> bool:
        return bool(turn_dev(lb[a], lb[b]) >= UTURN_DEG)

    def change(x: int, old: tuple, new: tuple, su: int) -> tuple[float, int]:
        """Order cost added by re-pairing ``old`` as ``new`` at node x; U-turns at the start after it."""
        d = sum(cost(*p) for p in new) - sum(cost(*p) for p in old)
        if x != start:
            return d, su
        su2 = su - sum(is_u(*p) for p in old) + sum(is_u(*p) for p in new)
        return d - UTURN_WEIGHT * ((su2 >= 1) - (su >= 1)), su2

    def options(t: tuple[int, int], u: tuple[int, int]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        (a, b), (c, d) = t, u
        return [((a, d), (c, b))] if is_in is not None else [((a, d), (c, b)), ((a, c), (b, d))]

    def transitions() -> dict[int, list[tuple[int, int]]]:
        by_node: dict[int, list[tuple[int, int]]] = {}
        for a in range(len(pl)):
            if is_in is None and a < pl[a] or is_in is not None and is_in[a]:
                by_node.setdefault(nodes[a], []).append((a, pl[a]))
        return by_node

    def pair(new: tuple[tuple[int, int], ...]) -> None:
        for p, q in new:
            pl[p], pl[q] = q, p

    def attempt(by_node: dict[int, list[tuple[int, int]]], su: int) -> bool:
        for x, ts in by_node.items():
            for t in ts:
                if not is_u(*t) or x == start and su <= 1:
                    continue  # (a single U-turn at the start is never made)
                for u in ts:
                    for new in options(t, u) if u != t else []:
                        d1, su1 = change(x, (t, u), new, su)
                        if d1 >= -0.5:  # not a U-turn fewer
                            continue
                        pair(new)
                        tid = _trail_of(pl)
                        if max(tid) == 0:
                            return True
                        best = None
                        for y, vs in transitions().items():
                            one = [v for v in vs if tid[v[0]] == 0]
                            for v in one:
                                for w in (w for w in vs if tid[w[0]] == 1):
                                    for new2 in options(v, w):
                                        d2, _ = change(y, (v, w), new2, su1)
                                        if best is None or d2 < best[0]:
                                            best = (d2, new2)
                        if best is not None and d1 + best[0] < -1e-9:
                            pair(best[1])
                            return True
                        pair((t, u))  # undo
        return False

    for _ in range(len(pl)):
        by_node = transitions()
        su = sum(is_u(*t) for t in by_node.get(start, []))
        if not attempt(by_node, su):
            break
    partner[:] = pl
