"""Exact re-splits (CP-SAT) of the grids around a grid the random cuts leave outside the window."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from gridpatrol.gis.partition.band import TOLERANCE
from gridpatrol.gis.partition.labelling import Labelling

EXACT_SCALE = 1000  # CP-SAT wants integers: households and cap values in thousandths
FIT_MARGIN = 1e-6  # a neighbourhood's total must fit its windows by more than this to be tried
FAR_FROM_BORDER = 10**6  # hop distance of a block no other grid can reach


@dataclass(frozen=True)
class ExactLimits:
    """How large the neighbourhoods re-split exactly may grow.

    `max_grids`/`max_blocks`: neighbourhood size; `reach`: hops a block may move from its grid;
    `work`: CP-SAT's deterministic time limit per neighbourhood; `tries`: neighbourhoods solved.
    """

    max_grids: int
    max_blocks: int
    work: float
    tries: int
    reach: int = 4


# small and cheap in every attempt; larger once on the best attempt when all left grids outside
EXACT_SMALL = ExactLimits(max_grids=8, max_blocks=300, work=0.5, tries=1)
EXACT_LARGE = ExactLimits(max_grids=16, max_blocks=600, work=2.0, tries=3)


def exact_fix(state: Labelling, start: int, limits: ExactLimits, seed: int) -> bool:
    """Bring grid `start` into the window by regrouping the blocks of the grids around it exactly.

    The neighbourhood grows from `start` one touching grid at a time; each time its total fits
    as many windows, CP-SAT re-splits it (within `limits`). True when `start` ends in the window.
    """
    window_low, window_high = state.window
    grid_hh = state.grid_households
    if window_low - TOLERANCE <= grid_hh[start] <= window_high + TOLERANCE:
        return False  # only over a street or area cap: the households are fine
    tries = limits.tries
    area = [start]
    total = grid_hh[start]
    n_blocks = len(state.members[start])
    first = sorted(state.neighbours(start))  # start's own neighbours first: it trades with them
    around = set(first)
    next_try = None
    while around and len(area) < limits.max_grids and tries > 0:
        m = len(area) + 1
        if first:
            pick = first.pop(0)
        else:
            pick = max(sorted(around), key=lambda y: min(total + grid_hh[y] - m * window_low,
                                                         m * window_high - total - grid_hh[y]))
        if n_blocks + len(state.members[pick]) > limits.max_blocks:
            break
        area.append(pick)
        total += grid_hh[pick]
        n_blocks += len(state.members[pick])
        around |= state.neighbours(pick)
        around -= set(area)
        if first or not (m * window_low + FIT_MARGIN < total < m * window_high - FIT_MARGIN):
            continue  # these grids cannot all fit: take another one
        if next_try is not None and m < next_try:
            continue
        tries -= 1
        if _solve(state, area, limits.reach, limits.work, seed):
            return True
        next_try = m + 2
    return False


def _solve(state: Labelling, area: list[int], reach: int, work: float, seed: int) -> bool:
    """Re-split the grids `area` with CP-SAT, fewest blocks moved; keep it if every grid fits."""
    from ortools.sat.python import cp_model

    window_low, window_high = state.window
    h, nb = state.households, state.graph.neighbours
    blocks = sorted(set().union(*(state.members[x] for x in area)))
    bset = set(blocks)
    home = {b: int(state.labels[b]) for b in blocks}
    # root of each grid: its block farthest from the other grids (it never moves)
    dist_out: dict[int, int] = {}
    frontier = [b for b in blocks if any(j in bset and home[j] != home[b] for j in nb[b])]
    for b in frontier:
        dist_out[b] = 0
    while frontier:
        nxt = []
        for x in frontier:
            for y in nb[x]:
                if y in bset and y not in dist_out and home[y] == home[x]:
                    dist_out[y] = dist_out[x] + 1
                    nxt.append(y)
        frontier = nxt
    root = {lab: max(sorted(state.members[lab]), key=lambda b: (dist_out.get(b, FAR_FROM_BORDER), h[b]))
            for lab in area}
    # which grids may take each block: those within `reach` hops (inside the neighbourhood)
    cand: dict[int, list[int]] = {b: [home[b]] for b in blocks}
    for lab in area:
        seen = {b: 0 for b in state.members[lab]}
        frontier = list(state.members[lab])
        for d in range(1, reach + 1):
            nxt = []
            for x in frontier:
                for y in nb[x]:
                    if y in bset and y not in seen:
                        seen[y] = d
                        nxt.append(y)
            frontier = nxt
        for b in seen:
            if home[b] != lab and b not in root.values():
                cand[b].append(lab)
    model = cp_model.CpModel()
    x = {(b, lab): model.new_bool_var("") for b in blocks for lab in cand[b]}
    for b in blocks:
        model.add_exactly_one(x[b, lab] for lab in cand[b])
    for lab, r in root.items():
        model.add(x[r, lab] == 1)
    scaled_hh = np.round(h * EXACT_SCALE).astype(np.int64)
    for lab in area:
        mem = [b for b in blocks if (b, lab) in x]
        slack = (len(mem) + 1) // 2  # rounding of households to 1/EXACT_SCALE
        expr = sum(int(scaled_hh[b]) * x[b, lab] for b in mem)
        model.add(expr >= math.ceil(window_low * EXACT_SCALE) + slack)
        model.add(expr <= math.floor(window_high * EXACT_SCALE) - slack)
        for k, (v, cap) in enumerate(state.caps):
            if state.cap_totals[k][lab] <= cap:
                model.add(sum(int(round(v[b] * EXACT_SCALE)) * x[b, lab] for b in mem)
                          <= int(cap * EXACT_SCALE) - slack)
        # connected: a flow from the root reaches every block of the grid
        flows_in, flows_out = contiguity_flows(model, x, lab, mem, nb)
        for b in mem:
            if b != root[lab]:
                model.add(sum(flows_in[b]) - sum(flows_out[b]) == x[b, lab])
    model.minimize(sum(1 - x[b, home[b]] for b in blocks))
    for b in blocks:
        for lab in cand[b]:
            model.add_hint(x[b, lab], lab == home[b])
    solver, found = solve_repeatably(model, seed, work)
    if not found:
        return False
    before = sum(state.window_violation(lab) for lab in area)
    snap = state.snapshot(area)
    for lab in area:
        state.assign([b for b in blocks if (b, lab) in x and solver.value(x[b, lab])], lab)
    ok = all(state.window_violation(lab) <= TOLERANCE and state.connected(state.members[lab]) for lab in area)
    if ok and sum(state.window_violation(lab) for lab in area) < before - TOLERANCE:
        return True
    state.restore(snap)
    return False


def contiguity_flows(model, x: dict, lab: int, mem: list[int], nbrs) -> tuple[dict, dict]:  # noqa: ANN001
    """Flow variables (0…len(mem)) on the arcs between blocks that may both be in grid ``lab``, each
    zero unless both ends are in it: (flows into each block of ``mem``, flows out of it). The caller
    sets each block's balance (a root's source, one unit kept per member), which makes the grid connected."""
    cap = len(mem)
    f_in: dict[int, list] = {b: [] for b in mem}
    f_out: dict[int, list] = {b: [] for b in mem}
    for u in mem:
        for v in nbrs[u]:
            if (v, lab) in x:
                f = model.new_int_var(0, cap, "")
                model.add(f <= cap * x[u, lab])
                model.add(f <= cap * x[v, lab])
                f_out[u].append(f)
                f_in[v].append(f)
    return f_in, f_out


def solve_repeatably(model, seed: int, work: float, on_solution=None):  # noqa: ANN001, ANN201
    """Solve ``model`` with one worker, ``seed`` and a deterministic time limit ``work``, so the same
    model gives the same answer on a loaded machine: (solver, whether a solution was found).
    ``on_solution`` (a ``CpSolverSolutionCallback``) sees every improving solution; it must not stop the
    search, so the answer stays the same."""
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = seed % 2**31
    solver.parameters.max_deterministic_time = float(work)
    status = solver.solve(model, on_solution)
    return solver, status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
