"""How many grids of 0 households the caps force (#15): a proven lower bound for every plan within the caps
(CP-SAT on a relaxation), and an exact re-cut of the household-free blocks around fixed household cores.

Both models place the *household-free* blocks (no households; a block alone over a cap is left out: it is
a grid of its own in every plan, one of 0 households) either in a grid anchored on household blocks or in
a grid of 0 households rooted on its lowest-numbered block; every grid is contiguous (a flow from its root,
``exact.contiguity_flows``) and within every cap. They differ in the anchors:

- the bound (:func:`empty_grids_lower_bound`): every household block touching a household-free block is
  an anchor of its own, holding nothing but itself and household-free blocks. Any plan within the caps
  maps onto this relaxation: in a grid with households, each connected piece of its household-free blocks
  touches one of the grid's household blocks (a path inside the grid from the piece to a household block
  leaves the piece at one), so hand each piece to one such block; that block and its pieces are connected
  and hold at most the grid's streets and area. The grids of 0 households stay as they are. So the least
  number of grids of 0 households in the relaxation, and CP-SAT's proven bound on it, is a lower bound for
  every plan (block values are rounded down and caps up, so no plan is cut off by rounding).
  The relaxation is exact, not only a bound (the band left aside: merges fix it later and never add a
  grid of 0 households): the caps are sums of non-negative per-block values, so each anchor with its
  blocks, within the caps, is a grid of a real plan (the other household blocks grids of their own). Its
  least count is the least over all plans within the caps. Too large to minimise on big areas (锦江区:
  ~28,000 placement variables), it is asked there the one question the capacity argument leaves open
  when it gives 0: can no grid be empty (:func:`none_empty_possible`, contiguity by parent pointers and
  depths, which CP-SAT decides far faster than the flows)?
- the re-cut (:func:`recut_empty`): the household blocks stay in their grids (one anchor per grid, all its
  household blocks fixed), the household-free blocks are placed anew: a real plan, checked before use.
"""
from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import geopandas as gpd
import networkx as nx
import numpy as np
from gridpatrol.gis.partition.band import TOLERANCE
from gridpatrol.gis.partition.caps import empty_step_inputs
from gridpatrol.gis.partition.exact import contiguity_flows, solve_repeatably

BOUND_SCALE = 100  # CP-SAT wants integers: cap values in hundredths
BOUND_WORK = 5.0  # CP-SAT deterministic time for the bound, per planning area
RECUT_WORK = 10.0  # and for the re-cut
BOUND_MAX_VARS = 4_000  # a larger model is not built (on 锦江区 it has ~28,000 and CP-SAT finds nothing in
# minutes): the bound is then the capacity argument and the question below
NONE_MAX_PAIRS = 15_000  # household-free block × portal pairs above which "can no grid be empty?" is not asked
# (锦江区 with --max-route-min 60 has 16,584 and stays unknown after 60 deterministic s: ~60 s of wall per ask)
NONE_WORK = 20.0  # CP-SAT deterministic time for that question (锦江区, 13,297 pairs: proven impossible in 15.4)
NONE_SEED = 1  # and its seed, whatever the plan's: the answer is one of the data, draw and check must agree
# (锦江区's proof took 57.5, 15.4, 42.0 and 22.2 deterministic seconds with seeds 0, 1, 2, 3)
EMPTY_WEIGHT = 10**6  # re-cut objective: an empty grid outweighs any number of blocks moved
BOUND_MODEL_VERSION = 1  # the bound's models (_build, none_empty_possible, capacity_bound, their rounding):
# bump it with any change that can change a bound. Bounds kept in a store are keyed on it (area_bound_digest)


@dataclass(frozen=True)
class EmptyBound:
    """``lower``: every plan within the caps has at least this many grids of 0 households (proven);
    ``relaxed``: the fewest the relaxation's best solution has (None when none was found or the model was
    not solved; equal to ``lower`` when CP-SAT proved it optimal); ``method``: "cp-sat" (the relaxation
    was solved) or "capacity" (only :func:`capacity_bound`: the model was too large)."""

    lower: int
    relaxed: int | None
    method: str


def _ball(sources: list[int], allowed: np.ndarray, base: list[float], caps: list[tuple[np.ndarray, float]],
          nbrs: list[list[int]]) -> list[int]:
    """Blocks b (``allowed``) joined to ``sources`` by a chain of allowed blocks whose values, plus ``base``,
    stay within every cap (node-weighted Dijkstra per cap; sources themselves not listed)."""
    out = None
    for (v, cap), b0 in zip(caps, base):
        limit = cap * (1 + TOLERANCE)
        dist = {s: b0 for s in sources}
        heap = [(b0, s) for s in sources]
        heapq.heapify(heap)
        done: set[int] = set()
        while heap:
            d, u = heapq.heappop(heap)
            if u in done:
                continue
            done.add(u)
            for w in nbrs[u]:
                if not allowed[w] or w in done:
                    continue
                nd = d + float(v[w])
                if nd <= limit and nd < dist.get(w, math.inf):
                    dist[w] = nd
                    heapq.heappush(heap, (nd, w))
        got = done - set(sources)
        out = got if out is None else out & got
    return sorted(out or ())


def _scaled(val: float, exact: bool) -> int:
    """A block value in BOUND_SCALE units: rounded up for a real plan (``exact``), down for a relaxation."""
    return math.ceil(val * BOUND_SCALE - 1e-9) if exact else math.floor(val * BOUND_SCALE + 1e-9)


def _limit(cap: float, exact: bool) -> int:
    """A cap in BOUND_SCALE units: rounded down for a real plan (``exact``), up for a relaxation."""
    return math.floor(cap * BOUND_SCALE + 1e-9) if exact else math.ceil(cap * BOUND_SCALE * (1 + TOLERANCE))


def _build(n: int, hh: np.ndarray, caps: list[tuple[np.ndarray, float]], nbrs: list[list[int]],
           free: np.ndarray, anchors: list[tuple[list[int], int]], exact: bool, extra: dict | None = None,
           roots: list[int] | None = None):
    """The model (see the module docstring): (model, x, empties (root → used var), anchor candidates,
    root candidates), or None when it has more than BOUND_MAX_VARS placement variables. ``free``: the
    blocks to place; ``anchors``: (fixed blocks, root) per grid with households. ``exact``: block values
    rounded up and caps down (a real plan), else the other way (a relaxation). ``extra``: per anchor index,
    (values, limit) of one more bound (the band's upper end in the re-cut). ``roots``: the only blocks a grid
    of 0 households may be rooted on (any of their free blocks joins them); default every free block, each
    grid rooted on its lowest-numbered block."""
    from ortools.sat.python import cp_model

    free_rows = np.flatnonzero(free).tolist()
    a_cand = []
    size = 0  # placement variables so far: give up as soon as they are too many
    for fixed, _ in anchors:
        base = [float(v[fixed].sum()) for v, _ in caps]
        a_cand.append(_ball(fixed, free, base, caps, nbrs))
        size += len(a_cand[-1])
        if size > BOUND_MAX_VARS:
            return None
    r_cand = {}
    for r in (free_rows if roots is None else roots):
        allowed = free.copy()
        if roots is None:
            allowed[:r] = False
        r_cand[r] = _ball([r], allowed, [float(v[r]) for v, _ in caps], caps, nbrs)
        size += len(r_cand[r]) + 1
        if size > BOUND_MAX_VARS:
            return None
    model = cp_model.CpModel()
    x: dict = {}
    options: dict[int, list] = {b: [] for b in free_rows}
    for i, ((fixed, _), cand) in enumerate(zip(anchors, a_cand)):
        for b in fixed:
            x[b, ("a", i)] = 1
        for b in cand:
            x[b, ("a", i)] = model.new_bool_var("")
            options[b].append(x[b, ("a", i)])
    empties = {}
    for r in r_cand:
        used = model.new_bool_var("")
        x[r, ("e", r)] = used
        options[r].append(used)
        empties[r] = used
        for b in r_cand[r]:
            x[b, ("e", r)] = model.new_bool_var("")
            model.add_implication(x[b, ("e", r)], used)
            options[b].append(x[b, ("e", r)])
    for b in free_rows:
        if not options[b]:
            return None  # a block no grid can take: not a model of any plan
        model.add_exactly_one(options[b])
    groups = [(("a", i), list(fixed) + cand, root) for i, ((fixed, root), cand) in enumerate(zip(anchors, a_cand))]
    groups += [(("e", r), [r] + r_cand[r], r) for r in r_cand]
    for lab, mem, root in groups:
        if len(mem) == 1:
            continue
        for v, cap in caps:
            total = sum(_scaled(float(v[b]), exact) * x[b, lab] for b in mem)
            fixed_total = sum(_scaled(float(v[b]), exact) for b in mem if isinstance(x[b, lab], int))
            model.add(total <= max(_limit(cap, exact), fixed_total))
        if extra is not None and lab[0] == "a" and lab[1] in extra:
            w, lim = extra[lab[1]]
            total = sum(_scaled(float(w[b]), exact) * x[b, lab] for b in mem)
            fixed_total = sum(_scaled(float(w[b]), exact) for b in mem if isinstance(x[b, lab], int))
            model.add(total <= max(_limit(lim, exact), fixed_total))
        f_in, f_out = contiguity_flows(model, x, lab, mem, nbrs)
        for b in mem:
            if b != root:
                model.add(sum(f_in[b]) - sum(f_out[b]) == x[b, lab])
    return model, x, empties, a_cand, r_cand


def bound_inputs(hh: np.ndarray, caps: list[tuple[np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(household-free blocks to place, blocks of 0 households alone over a cap): the second are grids of
    0 households in every plan."""
    single_over = np.zeros(len(hh), dtype=bool)
    for v, cap in caps:
        single_over |= np.asarray(v, dtype=float) > cap * (1 + TOLERANCE)
    empty = np.asarray(hh, dtype=float) <= TOLERANCE
    return empty & ~single_over, empty & single_over


def empty_grids_lower_bound(hh: np.ndarray, caps: list[tuple[np.ndarray, float]], nbrs: list[list[int]], *,
                            seed: int = 0, work: float = BOUND_WORK) -> EmptyBound:
    """The least number of grids of 0 households any plan of these blocks (one planning area) within the
    caps must have: ``hh`` households per block, ``caps`` (values per block, cap), ``nbrs`` neighbour
    rows per row (the contiguity a plan is judged on). Blocks of 0 households alone over a cap count one
    each; then the larger of the capacity argument (:func:`capacity_bound`) and, when the model has at
    most BOUND_MAX_VARS placement variables, CP-SAT's proven bound on the relaxation of the module
    docstring (deterministic time ``work``); on a larger model with a capacity bound of 0, 1 when
    :func:`none_empty_possible` proves that every plan has a grid of 0 households."""
    hh = np.asarray(hh, dtype=float)
    if len(hh) == 0:
        return EmptyBound(0, 0, "capacity")
    free, singles = bound_inputs(hh, caps)
    const = int(singles.sum())
    cheap = capacity_bound(hh, caps, nbrs, free)
    if not caps or not free.any():
        return EmptyBound(const + cheap, None, "capacity")
    portals = sorted({w for b in np.flatnonzero(free).tolist() for w in nbrs[b] if hh[w] > TOLERANCE})
    built = _build(len(hh), hh, caps, nbrs, free, [([h], h) for h in portals], exact=False)
    if built is None:
        if cheap == 0 and none_empty_possible(hh, caps, nbrs) is False:
            return EmptyBound(const + 1, None, "cp-sat")
        return EmptyBound(const + cheap, None, "capacity")
    model, _, empties, _, _ = built
    model.minimize(sum(empties.values()))
    for used in empties.values():  # every household-free block a grid of its own: a solution to start from
        model.add_hint(used, True)
    solver, found = solve_repeatably(model, seed, work)
    lower = max(cheap, math.ceil(solver.best_objective_bound - 1e-6))
    relaxed = int(round(solver.objective_value)) + const if found else None
    return EmptyBound(const + lower, relaxed, "cp-sat")


def none_empty_possible(hh: np.ndarray, caps: list[tuple[np.ndarray, float]], nbrs: list[list[int]], *,
                        seed: int = NONE_SEED, work: float = NONE_WORK) -> bool | None:
    """Whether a plan within the caps can have no grid of 0 households besides the blocks of 0 households
    alone over a cap (:func:`bound_inputs`): True (CP-SAT found one), False (CP-SAT proved there is none) or
    None (not known in deterministic time ``work``, or over NONE_MAX_PAIRS pairs: not asked).

    The exact rooted model with no grid of 0 households (module docstring: every plan maps onto it, and
    each of its solutions is a plan): each household-free block b hangs on one portal h whose ball holds it
    (``x[b, h]``), each portal's blocks within every cap (block values rounded down, caps up: no plan is
    cut off); contiguity by parent pointers: b picks one touching block as its parent (``z[b, p]``), its
    own portal or a household-free block on the same portal of smaller depth, so following parents from
    any block ends at its portal."""
    from ortools.sat.python import cp_model

    free, _ = bound_inputs(hh, caps)
    rows = np.flatnonzero(free).tolist()
    if not rows:
        return True
    home = np.asarray(hh, dtype=float) > TOLERANCE
    portals = sorted({w for b in rows for w in nbrs[b] if home[w]})
    cand: dict[int, list[int]] = {b: [] for b in rows}
    for h in portals:
        for b in _ball([h], free, [float(v[h]) for v, _ in caps], caps, nbrs):
            cand[b].append(h)
    if sum(len(c) for c in cand.values()) > NONE_MAX_PAIRS:
        return None
    if not all(cand.values()):
        return False  # a block no portal reaches within the caps
    model = cp_model.CpModel()
    x = {(b, h): model.new_bool_var("") for b in rows for h in cand[b]}
    depth = {b: model.new_int_var(1, len(rows), "") for b in rows}
    for b in rows:
        model.add_exactly_one(x[b, h] for h in cand[b])
        parents = []
        for p in nbrs[b]:
            if (b, p) in x:  # a portal of b: b is one step from it
                z = model.new_bool_var("")
                model.add_implication(z, x[b, p])
                parents.append(z)
            elif free[p]:
                z = model.new_bool_var("")
                model.add(depth[p] < depth[b]).only_enforce_if(z)
                for h in cand[b]:  # the parent hangs on b's portal
                    model.add_bool_or([z.Not(), x[b, h].Not()] + ([x[p, h]] if (p, h) in x else []))
                parents.append(z)
        model.add_exactly_one(parents)
    for h in portals:
        mine = [b for b in rows if (b, h) in x]
        for v, cap in caps:
            room = _limit(cap, False) - _scaled(float(v[h]), False)
            model.add(sum(_scaled(float(v[b]), False) * x[b, h] for b in mine) <= max(room, 0))
    solver, found = solve_repeatably(model, seed, work)
    if found:
        return True
    return False if solver.response_proto.status == cp_model.INFEASIBLE else None


def _free_regions(free: np.ndarray, nbrs: list[list[int]]) -> list[list[int]]:
    """Connected pieces of the ``free`` blocks (household-free regions)."""
    seen = np.zeros(len(free), dtype=bool)
    out = []
    for s in np.flatnonzero(free).tolist():
        if seen[s]:
            continue
        seen[s] = True
        piece, stack = [s], [s]
        while stack:
            u = stack.pop()
            for w in nbrs[u]:
                if free[w] and not seen[w]:
                    seen[w] = True
                    piece.append(w)
                    stack.append(w)
        out.append(sorted(piece))
    return out


def capacity_bound(hh: np.ndarray, caps: list[tuple[np.ndarray, float]], nbrs: list[list[int]],
                   free: np.ndarray) -> int:
    """A lower bound on the grids of 0 households among the ``free`` blocks (household-free, none alone over
    a cap), summed over the household-free regions R (connected pieces of free blocks).

    A grid of 0 households lies inside one region. A grid G with households takes blocks of R only through
    its household blocks touching R (portals; a path inside G from a block of R to a household block enters
    it from R), and only blocks of R joined to such a portal h by a chain within every cap (h's ball). So
    per cap (values v, cap c) it takes at most min(c − v(h), v(ball h)) summed over its portals h (c minus
    its household blocks' values is at most that, a grid with a portal over the cap is that block alone),
    and all grids together at most v(union of the balls). What is left of v(R) is in grids of 0 households,
    each within c: at least ceil(left / c) of them; the bound of R is the largest over the caps (at least
    one when no household block touches R)."""
    hh = np.asarray(hh, dtype=float)
    total = 0
    for region in _free_regions(free, nbrs):
        allowed = np.zeros(len(hh), dtype=bool)
        allowed[region] = True
        portals = sorted({w for b in region for w in nbrs[b] if hh[w] > TOLERANCE})
        balls = {h: _ball([h], allowed, [float(v[h]) for v, _ in caps], caps, nbrs) for h in portals}
        reached = sorted(set().union(*balls.values())) if balls else []
        best = 0 if portals else 1
        for v, cap in caps:
            take = sum(min(max(0.0, cap - float(v[h])), float(v[balls[h]].sum())) for h in portals)
            left = float(v[region].sum()) - min(take, float(v[reached].sum()))
            if left > cap * TOLERANCE:
                best = max(best, math.ceil(left / cap - 1e-9))
        total += best
    return total


def recut_empty(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, labels: np.ndarray, households: np.ndarray, *,
                high: float, max_street_m: float | None = None, max_area_m2: float | None = None,
                locked: np.ndarray | None = None, accept: Callable[[np.ndarray], bool] | None = None,
                seed: int = 0, work: float = RECUT_WORK, target: int | None = None) -> np.ndarray:
    """``labels`` with the household-free blocks placed anew around the grids' household blocks (fixed in
    their grids) so that as few grids as possible hold 0 households (CP-SAT, deterministic time ``work``),
    every grid contiguous, within every cap and at most ``high`` (workload: ``households`` column of
    ``blocks``), fewest blocks moved. Kept only when it has fewer grids of 0 households and ``accept``
    (block indices → bool, e.g. the patrol cap) agrees with every changed grid; locked grids are left
    alone. ``target``: stop early once a plan has that many (e.g. the proven lower bound)."""
    caps, labels, keep, hh, load, _, nbrs = empty_step_inputs(blocks, adjacency, labels, households, locked,
                                                              max_street_m, max_area_m2)
    n = len(labels)
    if n == 0 or not caps:
        return labels
    in_keep = np.isin(labels, sorted(keep)) if keep else np.zeros(n, dtype=bool)
    free, singles = bound_inputs(hh, caps)
    free &= ~in_keep
    h_grid = np.bincount(labels, weights=hh)
    empty_before = int(sum(1 for g in set(labels.tolist()) if h_grid[g] <= TOLERANCE))
    if not free.any() or empty_before == 0:
        return labels
    anchors, anchor_label, extra = [], [], {}
    for g in sorted(set(labels[~in_keep].tolist())):
        fixed = [b for b in np.flatnonzero(labels == g).tolist() if hh[b] > TOLERANCE]
        if not fixed:
            continue
        anchors.append((fixed, fixed[0]))
        anchor_label.append(g)
        extra[len(anchors) - 1] = (load, high)
    # grids of 0 households only where one is now (its lowest block): the household-free blocks are
    # placed anew among the grids as they are, which keeps the model small on large areas
    roots = sorted(int(np.flatnonzero((labels == g) & free)[0]) for g in set(labels[free].tolist())
                   if h_grid[g] <= TOLERANCE)
    built = _build(n, hh, caps, nbrs, free, anchors, exact=True, extra=extra, roots=roots)
    if built is None:
        return labels  # too large to solve in a reasonable time
    model, x, empties, _, _ = built
    # the plan as it is, as a hint and the reference for the moves
    now: dict[int, tuple] = {}
    pos = {g: i for i, g in enumerate(anchor_label)}
    for g in sorted(set(labels[free].tolist())):
        rows = np.flatnonzero((labels == g) & free).tolist()
        lab = ("a", pos[g]) if g in pos else ("e", rows[0])
        for b in rows:
            now[b] = lab
    stay = [x[b, lab] for b, lab in now.items() if (b, lab) in x and not isinstance(x[b, lab], int)]
    model.minimize(EMPTY_WEIGHT * sum(empties.values()) - sum(stay))
    for b, lab in now.items():
        if (b, lab) in x and not isinstance(x[b, lab], int):
            model.add_hint(x[b, lab], True)
    if target is not None and not keep:
        model.add(sum(empties.values()) >= max(0, target - int(singles[~in_keep].sum())))
    solver, found = solve_repeatably(model, seed, work)
    if not found:
        return labels
    out = labels.copy()
    nxt = int(labels.max()) + 1
    new_label: dict[int, int] = {}
    for (b, lab), var in x.items():
        if isinstance(var, int) or not solver.value(var):
            continue
        if lab[0] == "a":
            out[b] = anchor_label[lab[1]]
        else:
            if lab[1] not in new_label:
                new_label[lab[1]] = nxt
                nxt += 1
            out[b] = new_label[lab[1]]
    h_new = np.bincount(out, weights=hh)
    if sum(1 for g in set(out.tolist()) if h_new[g] <= TOLERANCE) >= empty_before:
        return labels
    changed = sorted({int(g) for g in out[out != labels].tolist()} | {int(g) for g in labels[out != labels].tolist()})
    for g in changed:
        idx = np.flatnonzero(out == g)
        if not len(idx):
            continue
        if len(idx) > 1 and any(float(v[idx].sum()) > cap * (1 + TOLERANCE) for v, cap in caps):
            return labels
        if accept is not None and not accept(idx):
            return labels
    return out


def area_bound_digest(hh: np.ndarray, caps: list[tuple[str, np.ndarray, float]], pairs: np.ndarray, *,
                      seed: int, work: float) -> str:
    """SHA-256 (hex) of everything :func:`empty_grids_lower_bound` reads for one planning area, in the order
    it reads it: households per block row, each cap (column name, cap, values per row), the touching row
    pairs (in their order: it orders the models' variables), the seed and work, BOUND_MODEL_VERSION, the
    models' limits and the CP-SAT (ortools) version. Equal digests, equal bounds: the bound depends on the
    blocks, their contiguity and the caps, not on how a plan groups the blocks into grids."""
    from importlib.metadata import version

    h = hashlib.sha256()

    def put(*parts: object) -> None:
        for p in parts:
            if isinstance(p, np.ndarray):
                h.update(f"{p.dtype.str}{p.shape}".encode() + np.ascontiguousarray(p).tobytes())
            else:
                h.update(repr(p).encode())
            h.update(b"\0")

    put("empty_bound", BOUND_MODEL_VERSION, version("ortools"), BOUND_SCALE, TOLERANCE, BOUND_MAX_VARS,
        NONE_MAX_PAIRS, NONE_WORK, NONE_SEED, int(seed), float(work))
    put(np.asarray(hh, dtype="<f8"), len(caps))
    for col, v, cap in caps:
        put(str(col), float(cap), np.asarray(v, dtype="<f8"))
    put(np.asarray(pairs, dtype="<i8").reshape(-1, 2))
    return h.hexdigest()


def plan_empty_bound(blocks: gpd.GeoDataFrame, area_of_block: np.ndarray, caps: list[tuple[str, float]], *,
                     seed: int = 0, work: float = BOUND_WORK, none_empty: Collection = (),
                     known: Mapping[str, EmptyBound] | None = None) -> tuple[int, bool, dict]:
    """(the proven least number of grids of 0 households over the planning areas, whether every area's
    bound came from CP-SAT, the areas' bounds solved here: digest → (area, EmptyBound)) for blocks (metric
    CRS, ``households`` and the caps' columns) with their area per row; contiguity is a shared boundary
    (``empty.touching_blocks``), as check-grids judges it. Areas in ``none_empty`` have a plan without a
    grid of 0 households: their least number is 0, known without a proof (which can take half a minute).
    ``known``: bounds already proven, by :func:`area_bound_digest` of their inputs (e.g. kept in the store
    by draw-grids): an area whose digest is there is not solved again."""
    from gridpatrol.gis.partition.empty import touching_blocks

    area_of_block = np.asarray(area_of_block)
    total, exact, solved = 0, True, {}
    for a in sorted(set(area_of_block.tolist()) - set(none_empty), key=str):
        sub = blocks[area_of_block == a].reset_index(drop=True)
        pairs = touching_blocks(sub.geometry.to_numpy())
        hh = sub["households"].to_numpy(dtype=float)
        vals = [(sub[col].to_numpy(dtype=float), float(cap)) for col, cap in caps]
        digest = area_bound_digest(hh, [(col, v, cap) for (col, _), (v, cap) in zip(caps, vals)], pairs,
                                   seed=seed, work=work)
        b = known.get(digest) if known is not None else None
        if b is None:
            nbrs: list[list[int]] = [[] for _ in range(len(sub))]
            for i, j in pairs.tolist():
                nbrs[i].append(j)
                nbrs[j].append(i)
            b = empty_grids_lower_bound(hh, vals, nbrs, seed=seed, work=work)
            solved[digest] = (a, b)
        total += b.lower
        exact &= b.method == "cp-sat"
    return total, exact, solved
