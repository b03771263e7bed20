"""Grids of 0 households undone by building the plan anew from the homes: every household block roots its
own grid, and the blocks without households are hung on the roots near them (CP-SAT) so that as few of
them as possible are left to grids of their own; the household grids are then joined back where the caps
allow (merge_small). See docs/partition.md, "Grids grown from the homes"."""
from __future__ import annotations

import heapq
from collections.abc import Callable

import geopandas as gpd
import networkx as nx
import numpy as np
from gridpatrol.gis.partition.band import TOLERANCE
from gridpatrol.gis.partition.caps import empty_grids, empty_step_inputs, merge_blocked, merge_small
from gridpatrol.gis.partition.exact import solve_repeatably

GROW_SCALE = 10**6  # CP-SAT wants integers: shares of each cap in millionths (rounded; the result is checked)
GROW_HOMES = 16  # household blocks a block without households may hang on: the nearest this many
GROW_ROOTS = 8  # blocks without households that may root the grid of 0 households it is in: the nearest
GROW_MAX_BLOCKS = 600  # blocks (outside locked grids) above which the model is not built
GROW_WORK = 10.0  # CP-SAT deterministic time (per solve)
GROW_EASY = 0.8  # share of each cap above which a grown grid's use counts against it (with ``accept``)
GROW_EASY_WORK = 0.5  # that search's deterministic time, per unit of GROW_WORK
GROW_ROUNDS = 3  # solves: the first, then each hanging anew the blocks refused grids gave up
LIFT_MAX_BLOCKS = 14  # blocks of two grids cut anew in two by trying every cut


def _paths(root: int, nbrs: list[list[int]], free: np.ndarray, share: np.ndarray) -> dict[int, int]:
    """Shortest paths from ``root`` through the ``free`` blocks (node weight: the summed shares of the
    caps, plus 1), kept only where the path's blocks with the root fit in every cap: block → distance."""
    weight = share.sum(axis=0) + 1
    dist, tot, done = {root: 0}, {root: share[:, root].copy()}, set()
    queue = [(0, root)]
    while queue:
        d, u = heapq.heappop(queue)
        if u in done:
            continue
        done.add(u)
        for w in nbrs[u]:
            if not free[w] or w in done:
                continue
            t = tot[u] + share[:, w]
            if np.all(t <= GROW_SCALE) and (w not in dist or d + weight[w] < dist[w]):
                dist[w], tot[w] = d + int(weight[w]), t
                heapq.heappush(queue, (dist[w], w))
    return dist


def _within(model, x: dict, on_root: dict[int, list[int]], share: np.ndarray, free: np.ndarray) -> None:  # noqa: ANN001
    """Constraints of ``model``: the blocks on each root (``x[b, r]`` true) with the root weigh at most
    GROW_SCALE in ``share`` (per block), or as much as a root without households alone."""
    for r, bs in on_root.items():
        own = 0 if free[r] else int(share[r])
        room = max(GROW_SCALE, int(share[r])) if free[r] else max(GROW_SCALE - own, 0)
        model.add(sum(int(share[b]) * x[b, r] for b in bs) <= room)


def _roomier(model, x: dict, solver, empty_roots: list, on_root: dict[int, list[int]], share: np.ndarray,  # noqa: ANN001
             free: np.ndarray, seed: int, work: float) -> dict:
    """The values of ``x`` in a solution of ``model`` with as many grids of 0 households (``empty_roots``)
    as ``solver``'s at most and the least use of each cap (rows of ``share``) above GROW_EASY of it, summed
    over the roots (``solver``'s values when none is found in time): ``accept`` (the exact patrol) refuses
    fewer grids with room below the caps. Solved on a copy: ``model`` is not changed."""
    second = model.clone()
    second.clear_objective()
    found_empty = sum(solver.value(v) for v in empty_roots)
    second.add(sum(second.get_bool_var_from_proto_index(v.index) for v in empty_roots) <= found_empty)
    over = []
    for r, bs in on_root.items():
        for c in range(len(share)):
            e = second.new_int_var(0, GROW_SCALE, f"e{r}_{c}")
            own = 0 if free[r] else int(share[c, r])
            second.add(e >= sum(int(share[c, b]) * second.get_bool_var_from_proto_index(x[b, r].index) for b in bs)
                       + own - int(GROW_EASY * GROW_SCALE))
            over.append(e)
    second.minimize(sum(over))
    for v in x.values():
        second.add_hint(second.get_bool_var_from_proto_index(v.index), solver.boolean_value(v))
    better, found = solve_repeatably(second, seed, work * GROW_EASY_WORK)
    return {k: bool(better.boolean_value(second.get_bool_var_from_proto_index(v.index))) if found
            else bool(solver.boolean_value(v)) for k, v in x.items()}


def _peel(root: int, hung: list[int], dist: dict[int, int], homes: np.ndarray,
          accept: Callable[[np.ndarray], bool], fixed: set[int]) -> list[int]:
    """The blocks ``hung`` on ``root`` (and not ``fixed`` there) to take off, farthest from it first
    (``dist``: so the rest stays closed towards it, contiguous), until ``accept`` agrees with the rest."""
    stay = [b for b in hung if b in fixed or b == root]
    order = sorted((b for b in hung if b not in stay), key=lambda b: (dist[b], b))
    own = [root] if homes[root] else []
    while order and not accept(np.asarray(sorted(own + stay + order), dtype=np.int64)):
        order.pop()
    return sorted(set(hung) - set(stay) - set(order))


def _accepted(root: int, hung: list[int], homes: np.ndarray, old_sets: set[frozenset],
              accept: Callable[[np.ndarray], bool] | None) -> bool:
    """Whether ``accept`` agrees with the grid of the blocks ``hung`` on ``root`` (with the root when it is a
    household block), or the grid is one of ``old_sets`` (unchanged: not asked)."""
    idx = sorted(set(hung) | ({root} if homes[root] else set()))
    return accept is None or frozenset(idx) in old_sets or accept(np.asarray(idx, dtype=np.int64))


def unforced_below(labels: np.ndarray, edges: np.ndarray, caps: list[tuple[np.ndarray, float]], load: np.ndarray,
                   low: float, high: float, accept: Callable[[np.ndarray], bool] | None = None) -> set[int]:
    """Grids (labels) of more than one block below ``low`` (workload ``load`` per block) that touch a grid
    and are not kept there by a cap (merge_blocked) or by ``accept`` refusing the merged grid (block
    indices → bool, as check-grids judges the patrol of a merge): the band problems check-grids reports
    as errors."""
    n = int(labels.max()) + 1
    w = np.bincount(labels, weights=load, minlength=n)
    size = np.bincount(labels, minlength=n)
    pairs = np.unique(np.sort(labels[edges], axis=1), axis=0) if len(edges) else np.zeros((0, 2), np.int64)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    grid_caps = [(np.bincount(labels, weights=v, minlength=n), c) for v, c in caps]
    pair_share = None
    if accept is not None:
        def pair_share(i: int, j: int) -> float:  # over 1 where the merged grid is refused
            if w[i] >= low - TOLERANCE and w[j] >= low - TOLERANCE:
                return 0.0
            return 0.0 if accept(np.flatnonzero((labels == i) | (labels == j))) else 2.0
    blocked, share = merge_blocked(pairs, w, grid_caps, high, pair_share)
    touching = np.zeros(n, dtype=bool)
    touching[pairs.ravel()] = True
    forced = blocked & ~np.isnan(share)
    return {g for g in set(labels.tolist()) if w[g] < low - TOLERANCE and size[g] > 1 and touching[g] and not forced[g]}


def lift_below(labels: np.ndarray, edges: np.ndarray, nbrs: list[list[int]], caps: list[tuple[np.ndarray, float]],
               load: np.ndarray, hh: np.ndarray, low: float, high: float, frozen: np.ndarray,
               accept: Callable[[np.ndarray], bool] | None = None) -> np.ndarray:
    """``labels`` with blocks moved one at a time from a touching grid into a grid unforced_below names,
    each move kept when it leaves fewer such grids or as many short of ``low`` by less in all, no more grids of 0 households, the giver contiguous
    and the taker within every cap and ``high`` and ``accept`` (block indices → bool) agreeing with both
    changed grids; blocks ``frozen`` (locked grids) do not move."""
    labels = labels.copy()
    graph = _graph(len(labels), edges)

    def short(lab: np.ndarray, grids: set[int]) -> tuple[int, float]:
        w = np.bincount(lab, weights=load)
        return len(grids), round(float(sum(low - w[g] for g in grids)), 6)

    bad = unforced_below(labels, edges, caps, load, low, high, accept)
    while bad:
        for trial in _lift_trials(labels, sorted(bad), graph, nbrs, caps, load, hh, low, high, frozen):
            now = unforced_below(trial, edges, caps, load, low, high, accept)
            if short(trial, now) < short(labels, bad) and len(empty_grids(trial, hh)) <= len(empty_grids(labels, hh)) \
                    and _changed_accepted(labels, trial, accept):
                labels, bad = trial, now
                break
        else:
            break
    return labels


def _changed_accepted(labels: np.ndarray, trial: np.ndarray, accept: Callable[[np.ndarray], bool] | None) -> bool:
    """Whether ``accept`` agrees with every grid of ``trial`` whose blocks differ from ``labels``."""
    if accept is None:
        return True
    moved = trial != labels
    changed = sorted(set(labels[moved].tolist()) | set(trial[moved].tolist()))
    return all(accept(np.flatnonzero(trial == g)) for g in changed if (trial == g).any())


def _lift_trials(labels: np.ndarray, bad: list[int], graph: nx.Graph, nbrs: list[list[int]],
                 caps: list[tuple[np.ndarray, float]], load: np.ndarray, hh: np.ndarray, low: float, high: float,
                 frozen: np.ndarray):
    """The plans lift_below tries for the grids ``bad``, in turn: first every single block of a touching
    grid moved into one of them (the giver stays contiguous, the taker within every cap and ``high``),
    then each of them and a touching grid (together few blocks) cut anew in two, both within the band."""
    for g in bad:
        inside = np.flatnonzero(labels == g)
        for b in sorted({y for x in inside.tolist() for y in nbrs[x] if labels[y] != g and not frozen[y]}):
            rest = np.flatnonzero(labels == labels[b])
            rest = rest[rest != b]
            if not len(rest) or not nx.is_connected(graph.subgraph(rest.tolist())):
                continue
            taker = np.append(inside, b)
            if load[taker].sum() > high + TOLERANCE or any(v[taker].sum() > c * (1 + TOLERANCE) for v, c in caps):
                continue
            trial = labels.copy()
            trial[b] = g
            yield trial
    for g in bad:
        for o in sorted({int(labels[y]) for x in np.flatnonzero(labels == g).tolist() for y in nbrs[x]} - {g}):
            union = np.flatnonzero((labels == g) | (labels == o))
            if len(union) > LIFT_MAX_BLOCKS or frozen[union].any():
                continue
            trial = _cut_pair(labels, union, g, o, graph, caps, load, hh, low, high)
            if trial is not None:
                yield trial


def _graph(n: int, edges: np.ndarray) -> nx.Graph:
    """The blocks 0…n−1 joined by ``edges`` (row-index pairs)."""
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edges.tolist())
    return graph


def _cut_pair(labels: np.ndarray, union: np.ndarray, g: int, o: int, graph: nx.Graph,
              caps: list[tuple[np.ndarray, float]], load: np.ndarray, hh: np.ndarray, low: float,
              high: float) -> np.ndarray | None:
    """``labels`` with the blocks ``union`` cut into two contiguous grids g and o, both with households,
    within every cap and the band [low, high], the first such cut (all cuts tried), or None."""
    m = len(union)
    for mask in range(1, 2 ** (m - 1)):
        side = np.array([(mask >> i) & 1 for i in range(m)], dtype=bool)
        for part in (union[side], union[~side]):
            w = load[part].sum()
            if w < low - TOLERANCE or w > high + TOLERANCE or hh[part].sum() <= TOLERANCE:
                break
            if any(v[part].sum() > c * (1 + TOLERANCE) for v, c in caps):
                break
            if not nx.is_connected(graph.subgraph(part.tolist())):
                break
        else:
            trial = labels.copy()
            trial[union[side]] = g
            trial[union[~side]] = o
            return trial
    return None


def grow_from_homes(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, labels: np.ndarray, households: np.ndarray, *,
                    low: float, high: float, max_street_m: float | None = None, max_area_m2: float | None = None,
                    locked: np.ndarray | None = None, accept: Callable[[np.ndarray], bool] | None = None,
                    seed: int = 0, work: float = GROW_WORK) -> np.ndarray:
    """``labels`` built anew outside the locked grids: each block with ``households`` roots a grid, each
    block without hangs on one of the GROW_HOMES nearest of them or on one of the GROW_ROOTS nearest blocks
    without households (a grid of 0 households), every grid within every cap and the workload ``high``
    (``households`` column of ``blocks``) and closed towards its root along shortest paths (so contiguous),
    fewest grids of 0 households (CP-SAT); then merge_small joins grids below ``low``. With ``accept`` (block
    indices → bool, e.g. the exact patrol) the grown grids keep room below the caps where that costs no grid
    of 0 households (_roomier), a grown grid it refuses gives up its blocks farthest from the root until it
    agrees, and the model is solved again with the grids it agreed with fixed and those blocks hung anew
    (GROW_ROUNDS solves in all; blocks still given up are grids of their own). Kept only when it has fewer
    grids of 0 households and every grid that changed is contiguous, within the caps and ``accept`` agrees
    with it; else ``labels`` as they were."""
    caps, labels, keep, hh, load, edges, nbrs = empty_step_inputs(blocks, adjacency, labels, households, locked,
                                                                  max_street_m, max_area_m2)
    n = len(labels)
    if n == 0 or not caps:
        return labels
    in_keep = np.isin(labels, sorted(keep)) if keep else np.zeros(n, dtype=bool)
    empty_before = len(empty_grids(labels, hh, ~in_keep))
    homes = ~in_keep & (hh > TOLERANCE)
    free = ~in_keep & (hh <= TOLERANCE)
    if not empty_before or not homes.any() or int((~in_keep).sum()) > GROW_MAX_BLOCKS:
        return labels
    from ortools.sat.python import cp_model

    values = [v for v, _ in caps] + [load]
    limits = [c for _, c in caps] + [high]
    share = np.round(np.array([v / c for v, c in zip(values, limits)]) * GROW_SCALE).astype(np.int64)
    share = np.maximum(share, 0)
    portals = [b for b in np.flatnonzero(homes).tolist() if any(free[x] for x in nbrs[b])]
    roots_free = np.flatnonzero(free).tolist()
    dist = {r: _paths(r, nbrs, free, share) for r in portals + roots_free}
    cand = {b: sorted((r for r in portals if b in dist[r]), key=lambda r: (dist[r][b], r))[:GROW_HOMES]
            + sorted((r for r in roots_free if b in dist[r]), key=lambda r: (dist[r][b], r))[:GROW_ROOTS]
            for b in roots_free}
    model = cp_model.CpModel()
    x = {(b, r): model.new_bool_var(f"x{b}_{r}") for b in roots_free for r in cand[b]}
    for b in roots_free:
        model.add_exactly_one(x[b, r] for r in cand[b])
        for r in cand[b]:
            if r == b or (homes[r] and r in nbrs[b]):
                continue
            # a neighbour nearer the root on the same root: the grid is contiguous
            nearer = [x[p, r] for p in nbrs[b] if (p, r) in x and dist[r][p] < dist[r][b]]
            if nearer:
                model.add_bool_or(nearer).only_enforce_if(x[b, r])
            else:
                model.add(x[b, r] == 0)
    on_root: dict[int, list[int]] = {}
    for b, r in x:
        on_root.setdefault(r, []).append(b)
    empty_roots = []
    for r, bs in on_root.items():
        if free[r]:
            for b in bs:
                if b != r:
                    model.add_implication(x[b, r], x[r, r])
            empty_roots.append(x[r, r])
    for c in range(len(values)):
        _within(model, x, on_root, share[c], free)
    model.minimize(sum(empty_roots))
    # the portals root grids of their own; the other household blocks stay together as in their grid
    # (each piece of it that still touches within the grid)
    inner = homes.copy()
    inner[portals] = False
    pieces = nx.Graph()
    pieces.add_nodes_from(np.flatnonzero(inner).tolist())
    pieces.add_edges_from((i, j) for i, j in edges.tolist() if inner[i] and inner[j] and labels[i] == labels[j])
    old_sets = {frozenset(np.flatnonzero(labels == g).tolist()) for g in set(labels.tolist())}
    base = int(labels.max()) + 1
    graph = _graph(n, edges)
    # ``accept`` (the exact patrol) is no sum of block values. A grown grid it refuses gives up its blocks
    # farthest from its root until it agrees (_peel); the grids it agrees with stay as they are and the
    # blocks given up are hung anew (never on the root they left), up to GROW_ROUNDS solves
    plan, fixed = None, set()
    for k in range(GROW_ROUNDS):
        solver, found = solve_repeatably(model, seed, work)
        if not found or sum(solver.value(v) for v in empty_roots) >= empty_before:
            break
        chosen = {key: bool(solver.boolean_value(v)) for key, v in x.items()}
        if k == 0 and accept is not None:
            chosen = _roomier(model, x, solver, empty_roots, on_root, share[:len(caps)], free, seed, work)
        on: dict[int, list[int]] = {}
        for (b, r), v in chosen.items():
            if v:
                on.setdefault(r, []).append(b)
        refused = [(r, bs) for r, bs in sorted(on.items()) if not _accepted(r, bs, homes, old_sets, accept)]
        plan = on, [(r, _peel(r, bs, dist[r], homes, accept, fixed)) for r, bs in refused]
        if not refused or k == GROW_ROUNDS - 1:
            break
        out = {b for _, given in plan[1] for b in given}
        for r, bs in on.items():
            for b in bs:
                if b not in fixed:
                    model.add(x[b, r] == (0 if b in out else 1))
                    if b not in out:
                        fixed.add(b)
    if plan is None:
        return labels
    on, peeled = plan
    new = labels.copy()
    for part in nx.connected_components(pieces):
        for b in part:
            new[b] = base + n + min(part)
    for b in portals:
        new[b] = base + b
    for r, bs in on.items():
        new[bs] = base + r
    # what ``accept`` still refuses after the last solve keeps only what it agrees with; the blocks given up
    # are grids of 0 households of their own (each piece of one grid's that touches: within the caps as that
    # grid), joined below where the caps allow
    for _, given in peeled:
        for part in nx.connected_components(graph.subgraph(given)):
            new[sorted(part)] = base + 2 * n + min(part)
    _, new = np.unique(new, return_inverse=True)
    new = np.asarray(merge_small(blocks, adjacency, new, low=low, high=high, max_street_m=max_street_m,
                                 max_area_m2=max_area_m2, locked=locked, accept=accept), dtype=np.int64)
    new = lift_below(new, edges, nbrs, caps, load, hh, low, high, in_keep, accept)
    if len(empty_grids(new, hh, ~in_keep)) >= empty_before:
        return labels
    # no grid below the band that a merge within the caps could lift (check-grids: an error)
    if len(unforced_below(new, edges, caps, load, low, high, accept)) > \
            len(unforced_below(labels, edges, caps, load, low, high, accept)):
        return labels
    for g in sorted(set(new.tolist())):
        idx = np.flatnonzero(new == g)
        if frozenset(idx.tolist()) in old_sets:
            continue
        if len(idx) > 1:
            if not nx.is_connected(graph.subgraph(idx.tolist())):
                return labels
            # over a cap only as a block alone over it with blocks that add nothing to it
            if any(v[idx].sum() > c * (1 + TOLERANCE) and int((v[idx] > 0).sum()) > 1
                   for v, c in zip(values, limits)):
                return labels
        if accept is not None and not accept(idx):
            return labels
    return new
