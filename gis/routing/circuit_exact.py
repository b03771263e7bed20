"""Exact fewest-U-turn order of a route's passes: a CP-SAT search over the Euler circuits they make."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from gridpatrol.gis.routing.matching import ENUMERATE_UP_TO, all_pairings, min_weight_perfect_matching
from gridpatrol.gis.routing.network import UTURN_DEG, Traversal, turn_cost, turn_dev
from ortools.sat.python import cp_model
from scipy.cluster.hierarchy import DisjointSet
from scipy.optimize import linear_sum_assignment

EXACT_WORK = 2.0  # CP-SAT deterministic seconds per route by default (same answer on any load)
TURNS_SHARE = 0.25  # of that, for the fewest turns once the fewest U-turns are found


@dataclass
class ExactOrder:
    """The result of the search over every order of a route's passes."""

    circuit: list[Traversal] | None  # an order with ``uturns`` U-turns (None: none found in the limit)
    uturns: int | None  # U-turns of ``circuit``
    lower_bound: int  # no order of the same passes makes fewer U-turns (proven)
    optimal: bool  # circuit is proven to make the fewest


def _copies(node: np.ndarray, is_in: np.ndarray | None, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ways to walk each item: (item, end arrived by, end left by). Driving one per item, walking
    two (either way along the street). Ends as in circuit.pass_ends: 2i at the edge's u, 2i + 1 at v."""
    items = np.arange(m)
    if is_in is None:
        item = np.repeat(items, 2)
        arr = np.empty(2 * m, dtype=np.int64)
        arr[0::2], arr[1::2] = 2 * items + 1, 2 * items  # forwards (arrive at v), backwards (arrive at u)
        return item, arr, arr ^ 1
    arr = np.where(is_in[0::2], 2 * items, 2 * items + 1)
    return items, arr, arr ^ 1


def fewest_uturns(items: list[Traversal], node: np.ndarray, lb: np.ndarray, is_in: np.ndarray | None, start: int,
                  hint: list[Traversal] | None = None, work: float = EXACT_WORK, prune: bool = True) -> ExactOrder:
    """The order of the passes ``items`` (a closed walk from ``start`` over each exactly once, walking
    either way along it when ``is_in`` is None) with the fewest U-turns, then the fewest turns.

    ``node``, ``lb``, ``is_in``: item ends as circuit.pass_ends gives them (node, heading leaving the node
    along the end in degrees, driving: whether the walk arrives by it). One U-turn at the start is
    not made: the route begins and ends there. ``hint``: an order of the same passes to start from;
    when the search finds none with fewer U-turns, ``hint`` is the order returned.
    ``work``: CP-SAT deterministic time limit (seconds) of the search for the fewest U-turns; the
    search for the fewest turns with them gets ``TURNS_SHARE`` of it.
    ``prune`` (default): first the connectivity bound (``connectivity_bound``); when ``hint`` makes
    no more U-turns than it, ``hint`` is proven the fewest without a search. Else the search
    leaves out every transition that alone costs more U-turns beyond its node's fewest than
    ``hint`` makes beyond the node bound (no order with as few as ``hint`` makes it; ``hint``
    stays in, as the search's starting point) and is told the bound. False: the whole search, as
    an independent check (the bench's certificate).

    How: every way of walking an item is a node of a circuit constraint (walking, exactly one of
    the two ways is on the circuit, the other skipped); an arc joins two of them where one arrives
    at the node the other leaves from, and is a U-turn when the heading changes by 150° or more.
    The circuit constraint makes the transitions one closed walk (CP-SAT's linear relaxation adds
    the subtour cuts). First the fewest U-turns, then, with that many, the fewest turns.
    """
    m = len(items)
    if m <= 1:
        return ExactOrder(list(items), 0, 0, True)
    item, arr, dep = _copies(node, is_in, m)
    k = len(item)
    hinted = _uturns_of(hint, items, node, lb, is_in, start) if hint is not None else None
    lower0, keep = 0, None
    if prune:
        costs = pairing_costs(node, lb, is_in, start)
        lower0 = connectivity_bound(node, costs)
        if hinted is not None and hinted <= lower0:
            return ExactOrder(list(hint), hinted, hinted, True)
        if hinted is not None:  # an order with no more U-turns than hint (hint too) pays at most this at a node
            keep = (costs.extra, hinted - costs.node_sum)
    # Arcs k1 → k2: arrive by copy k1's end at a node, leave by copy k2's end there (other item).
    by_node: dict[int, list[int]] = {}
    for c in range(k):
        by_node.setdefault(int(node[dep[c]]), []).append(c)
    tails, heads = [], []
    for c in range(k):
        for d in by_node.get(int(node[arr[c]]), []):
            if item[d] != item[c] and (keep is None or keep[0][int(arr[c]), int(dep[d])] <= keep[1]):
                tails.append(c)
                heads.append(d)
    tails_a, heads_a = np.asarray(tails), np.asarray(heads)
    dev = turn_dev(lb[arr[tails_a]], lb[dep[heads_a]])
    is_u = (dev >= UTURN_DEG).astype(int).tolist()
    whole = turn_cost(dev).astype(int).tolist()
    at_start = (node[arr[tails_a]] == start).tolist()

    model = cp_model.CpModel()
    x = [model.NewBoolVar("") for _ in tails]
    arcs = list(zip(tails, heads, x))
    if is_in is None:
        skip = [model.NewBoolVar("") for _ in range(k)]
        arcs += [(c, c, skip[c]) for c in range(k)]
        for i in range(m):
            model.AddExactlyOne(skip[2 * i], skip[2 * i + 1])
        model.Add(skip[1] == 1)  # a walk and the same walk backwards turn alike: item 0 forwards
    model.AddCircuit(arcs)
    # The route begins and ends at the start: one U-turn there (if any) is not made.
    free = model.NewBoolVar("")
    model.Add(free <= sum(v for v, s, u in zip(x, at_start, is_u) if s and u))
    uturns = sum(v for v, u in zip(x, is_u) if u) - free
    if prune:
        model.Add(uturns >= lower0)
    if hint is not None:
        arc_of = {(t, h): v for t, h, v in zip(tails, heads, x)}
        _hint(model, hint, items, arr, dep, is_in, arc_of, skip if is_in is None else None)

    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.max_deterministic_time = work
    model.Minimize(uturns)
    status = solver.Solve(model)
    lower = int(np.ceil(solver.BestObjectiveBound() - 1e-6)) if status != cp_model.MODEL_INVALID else 0
    lower = max(lower, lower0)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        if hint is not None:
            return ExactOrder(list(hint), hinted, min(lower, hinted), lower >= hinted)
        return ExactOrder(None, None, max(lower, 0), False)
    best_u = int(round(solver.ObjectiveValue()))
    optimal = status == cp_model.OPTIMAL
    if hinted is not None and best_u >= hinted:  # no fewer than the order given: keep it
        return ExactOrder(list(hint), hinted, hinted if optimal else max(lower, 0), optimal)
    chosen = [solver.Value(v) for v in x]
    # With that many U-turns, the fewest turns (from the order just found).
    model.ClearHints()
    for v, val in zip(x, chosen):
        model.AddHint(v, val)
    if is_in is None:
        for c in range(k):
            model.AddHint(skip[c], solver.Value(skip[c]))
    model.AddHint(free, solver.Value(free))
    model.Add(uturns <= best_u)
    model.Minimize(sum(v * w for v, w in zip(x, whole) if w))
    solver.parameters.max_deterministic_time = work * TURNS_SHARE  # turns: no part of the proof
    status2 = solver.Solve(model)
    if status2 in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        chosen = [solver.Value(v) for v in x]
    circuit = _walk(items, tails, heads, chosen, arr, dep, item, lb, node, start)
    return ExactOrder(circuit, best_u, best_u if optimal else max(lower, 0), optimal)


def _positions(order: list[Traversal], items: list[Traversal], is_in: np.ndarray | None) -> list[int]:
    """The copy (circuit node) of each pass of ``order`` (the same passes as ``items``): driving the
    item, walking copy 2i for item i forwards, 2i + 1 backwards."""
    pool: dict[tuple[int, bool], list[int]] = {}
    for i, t in enumerate(items):
        pool.setdefault((t.edge, t.forward if is_in is not None else True), []).append(i)
    seq = []
    for t in order:
        i = pool[(t.edge, t.forward if is_in is not None else True)].pop()
        seq.append(i if is_in is not None else 2 * i + (0 if t.forward else 1))
    return seq


def _uturns_of(order: list[Traversal], items: list[Traversal], node: np.ndarray, lb: np.ndarray,
               is_in: np.ndarray | None, start: int) -> int:
    """U-turns ``order`` makes between its passes (not from its last back to its first: the route
    begins and ends at the start)."""
    item, arr, dep = _copies(node, is_in, len(items))
    seq = np.asarray(_positions(order, items, is_in))
    return int((turn_dev(lb[arr[seq[:-1]]], lb[dep[seq[1:]]]) >= UTURN_DEG).sum())


def _hint(model: cp_model.CpModel, order: list[Traversal], items: list[Traversal], arr: np.ndarray, dep: np.ndarray,
          is_in: np.ndarray | None, arc_of: dict, skip: list | None) -> None:
    """Hint the circuit of ``order`` (the same passes as ``items``): its transitions, closed at the start."""
    seq = _positions(order, items, is_in)
    on = set(zip(seq, seq[1:] + seq[:1]))
    for (t, h), v in arc_of.items():
        model.AddHint(v, (t, h) in on)
    if skip is not None:
        walked = set(seq)
        for c in range(len(skip)):
            model.AddHint(skip[c], c not in walked)


def _walk(items: list[Traversal], tails: list[int], heads: list[int], chosen: list[int], arr: np.ndarray,
          dep: np.ndarray, item: np.ndarray, lb: np.ndarray, node: np.ndarray, start: int) -> list[Traversal]:
    """The passes in the order of the chosen arcs, beginning at the start where the circuit's
    dearest transition there is (the route begins and ends there instead of making it)."""
    nxt = {t: h for t, h, c in zip(tails, heads, chosen) if c}
    there = [(float(turn_dev(lb[arr[t]], lb[dep[h]])), t, h) for t, h in nxt.items() if node[arr[t]] == start]
    _dev, last, first = max(there)
    out, c = [], first
    while True:
        i = int(item[c])
        # Departing by end 2i (the edge's u) is walking the edge forwards.
        out.append(Traversal(items[i].edge, int(dep[c]) % 2 == 0, items[i].required))
        if c == last:
            break
        c = nxt[c]
    return out


@dataclass
class PairingCosts:
    """What each transition costs at its node, in U-turns, against the node's fewest.

    ``node_sum``: the sum over the nodes of the fewest U-turns any pairing of the ends there makes
    (the node bound; at the start one U-turn is not made). ``extra[(a, b)]``: how many more than
    that fewest any pairing at the node of ends a and b that pairs a (arrival) with b (departure)
    makes, at least (walking both (a, b) and (b, a)).
    """

    node_sum: int
    extra: dict[tuple[int, int], int]


def pairing_costs(node: np.ndarray, lb: np.ndarray, is_in: np.ndarray | None, start: int) -> PairingCosts:
    """Every node's fewest U-turns, and the U-turns each transition there forces beyond them.

    At a node of few ends every pairing is tried (walking up to ENUMERATE_UP_TO ends, driving up to
    5 arrivals); at a larger one, the fewest of the pairings holding a given transition are the
    transition plus an optimal assignment (driving) or matching (walking) of the other ends. A
    pairing that pairs an item's two ends with each other (a loop street) is let in: that only
    lowers the figures, so they stay lower bounds.
    """
    order = np.argsort(node, kind="stable")
    cuts = np.flatnonzero(np.diff(node[order])) + 1
    total, extra = 0, {}
    for ends in np.split(order, cuts):
        at_start = int(node[ends[0]]) == start

        def f(u: np.ndarray) -> np.ndarray:  # at the start the route begins and ends instead of one U-turn
            return np.maximum(u - 1, 0) if at_start else u

        if is_in is not None:
            a, b = ends[is_in[ends]], ends[~is_in[ends]]
            U = (turn_dev(lb[a][:, None], lb[b][None, :]) >= UTURN_DEG).astype(np.int64)
            best = _fewest_with(U, directed=True)
            low = f(best.min())
            total += int(low)
            for i, j in itertools.product(range(len(a)), range(len(b))):
                extra[int(a[i]), int(b[j])] = int(f(best[i, j]) - low)
        else:
            U = (turn_dev(lb[ends][:, None], lb[ends][None, :]) >= UTURN_DEG).astype(np.int64)
            best = _fewest_with(U, directed=False)
            low = f(best[~np.eye(len(ends), dtype=bool)].min())
            total += int(low)
            for i, j in itertools.permutations(range(len(ends)), 2):
                extra[int(ends[i]), int(ends[j])] = int(f(best[i, j]) - low)
    return PairingCosts(total, extra)


def _fewest_with(U: np.ndarray, directed: bool) -> np.ndarray:
    """best[i, j]: the fewest U-turns (a lower bound where a matching certifies it) of the pairings
    of a node's ends holding transition (i, j); ``U``: U-turn (1) or not (0) of each transition.
    Driving rows are arrivals, columns departures; walking any two ends pair."""
    n = len(U)
    best = np.full((n, n), np.iinfo(np.int64).max // 4, dtype=np.int64)
    if directed and n <= 5:
        perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64).reshape(-1, n)
        cost = U[np.arange(n), perms].sum(axis=1)
        np.minimum.at(best, (np.tile(np.arange(n), len(perms)), perms.ravel()), np.repeat(cost, n))
        return best
    if not directed and n <= ENUMERATE_UP_TO:
        P = all_pairings(n)
        cost = U[P[:, :, 0], P[:, :, 1]].sum(axis=1)
        k = P.shape[1]
        rows, cols = P[:, :, 0].ravel(), P[:, :, 1].ravel()
        vals = np.repeat(cost, k)
        np.minimum.at(best, (rows, cols), vals)
        np.minimum.at(best, (cols, rows), vals)
        return best
    for i, j in itertools.product(range(n), range(n)):
        if directed:
            rest = np.delete(np.delete(U, i, axis=0), j, axis=1)
            ri, ci = linear_sum_assignment(rest)
            best[i, j] = U[i, j] + int(rest[ri, ci].sum())
        elif i < j:
            keep = np.delete(np.arange(n), [i, j])
            res = min_weight_perfect_matching(U[np.ix_(keep, keep)].astype(float))
            best[i, j] = best[j, i] = U[i, j] + int(np.ceil(res.lower_bound - 1e-6))
    return best


def connectivity_bound(node: np.ndarray, costs: PairingCosts) -> int:
    """A lower bound on the U-turns of any closed walk over every item: the node bound raised by
    what joining the items into one circuit forces.

    The transitions costing nothing beyond their node's fewest (``costs.extra`` 0) join the items
    into pieces; when they leave more than one, joining them takes transitions that cost more:
    (1) at least the least ``extra`` with which the items join into one piece (bottleneck of a
    minimum spanning tree over the items); (2) at every node where such a transition is made, the
    pieces meeting there join into at most one, for at least the node's least such ``extra``, so
    a fractional cover of the pieces but one by nodes, cheapest per piece first, is paid too.
    """
    m = len(node) // 2
    links = sorted((r, a >> 1, b >> 1) for (a, b), r in costs.extra.items() if a >> 1 != b >> 1)
    zero = DisjointSet(range(m))  # the pieces of the free transitions
    for r, i, j in links:
        if r == 0:
            zero.merge(i, j)
    if zero.n_subsets == 1:
        return costs.node_sum
    pieces, k = DisjointSet(range(m)), 0
    for r, i, j in links:  # (1) Kruskal: the dearest link of a minimum spanning tree
        if pieces.merge(i, j) and pieces.n_subsets == 1:
            k = r
            break
    if pieces.n_subsets > 1:  # (the passes make no closed walk: nothing to add)
        return costs.node_sum
    # (2) pieces of the free transitions at each node, and the least extra joining two there.
    piece = {i: zero[i] for i in range(m)}
    at: dict[int, set] = {}
    least: dict[int, int] = {}
    for (a, b), r in costs.extra.items():
        v = int(node[a])
        at.setdefault(v, set()).update((piece[a >> 1], piece[b >> 1]))
        if r > 0 and piece[a >> 1] != piece[b >> 1]:
            least[v] = min(least.get(v, r), r)
    need = zero.n_subsets - 1
    paid = 0.0
    for v in sorted(least, key=lambda v: least[v] / (len(at[v]) - 1)):
        if need <= 0:
            break
        take = min(need, len(at[v]) - 1)
        paid += least[v] * take / (len(at[v]) - 1)
        need -= take
    return costs.node_sum + max(k, int(np.ceil(paid - 1e-9)))
