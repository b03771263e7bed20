"""Exact fewest-U-turn order of a route's passes: a CP-SAT search over the Euler circuits they make."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gridpatrol.gis.routing.network import UTURN_DEG, Traversal, turn_cost, turn_dev
from ortools.sat.python import cp_model

EXACT_WORK = 2.0  # CP-SAT deterministic seconds per route by default (same answer on any load)


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
                  hint: list[Traversal] | None = None, work: float = EXACT_WORK) -> ExactOrder:
    """The order of the passes ``items`` (a closed walk from ``start`` over each exactly once, walking
    either way along it when ``is_in`` is None) with the fewest U-turns, then the fewest turns.

    ``node``, ``lb``, ``is_in``: item ends as circuit.pass_ends gives them (node, heading leaving the node
    along the end in degrees, driving: whether the walk arrives by it). One U-turn at the start is
    not made: the route begins and ends there. ``hint``: an order of the same passes to start from;
    when the search finds none with fewer U-turns, ``hint`` is the order returned.
    ``work``: CP-SAT deterministic time limit (seconds) of each of the two searches.

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
    # Arcs k1 → k2: arrive by copy k1's end at a node, leave by copy k2's end there (other item).
    by_node: dict[int, list[int]] = {}
    for c in range(k):
        by_node.setdefault(int(node[dep[c]]), []).append(c)
    tails, heads = [], []
    for c in range(k):
        for d in by_node.get(int(node[arr[c]]), []):
            if item[d] != item[c]:
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

    arc_of = {(t, h): (v, u) for t, h, v, u in zip(tails, heads, x, is_u)}
    hinted = None
    if hint is not None:
        hinted = _hint(model, hint, items, arr, dep, is_in, arc_of, skip if is_in is None else None)

    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.max_deterministic_time = work
    model.Minimize(uturns)
    status = solver.Solve(model)
    lower = int(np.ceil(solver.BestObjectiveBound() - 1e-6)) if status != cp_model.MODEL_INVALID else 0
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
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
    status2 = solver.Solve(model)
    if status2 in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        chosen = [solver.Value(v) for v in x]
    circuit = _walk(items, tails, heads, chosen, arr, dep, item, lb, node, start)
    return ExactOrder(circuit, best_u, best_u if optimal else max(lower, 0), optimal)


def _hint(model: cp_model.CpModel, order: list[Traversal], items: list[Traversal], arr: np.ndarray, dep: np.ndarray,
          is_in: np.ndarray | None, arc_of: dict, skip: list | None) -> int:
    """Hint the circuit of ``order`` (the same passes as ``items``): its transitions, closed at the
    start. Returns the U-turns ``order`` makes."""
    pool: dict[tuple[int, bool], list[int]] = {}
    for i, t in enumerate(items):
        pool.setdefault((t.edge, t.forward if is_in is not None else True), []).append(i)
    seq = []
    for t in order:
        key = (t.edge, t.forward if is_in is not None else True)
        i = pool[key].pop()
        if is_in is not None:
            seq.append(i)
        else:  # copy 2i walks item i forwards, 2i + 1 backwards
            seq.append(2 * i + (0 if t.forward else 1))
    on = set(zip(seq, seq[1:] + seq[:1]))
    for (t, h), (v, _u) in arc_of.items():
        model.AddHint(v, (t, h) in on)
    if skip is not None:
        walked = set(seq)
        for c in range(len(skip)):
            model.AddHint(skip[c], c not in walked)
    # The order turns at every transition but the one from its last pass back to its first.
    return sum(arc_of[a][1] for a in on) - arc_of[(seq[-1], seq[0])][1]


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
