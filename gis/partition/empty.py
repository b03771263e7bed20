"""No grid of 0 households where the caps allow one: exact re-cuts (CP-SAT) and the proof when they do not."""
from __future__ import annotations

import heapq
from collections.abc import Callable

import geopandas as gpd
import networkx as nx
import numpy as np
import scipy.sparse as sp
from gridpatrol.gis.partition.band import TOLERANCE
from gridpatrol.gis.partition.caps import empty_grids, empty_step_inputs, row_edges
from gridpatrol.gis.partition.exact import contiguity_flows, solve_repeatably

FILL_SCALE = 100  # CP-SAT wants integers: cap values and workload in hundredths
FILL_MAX_BLOCKS = 120  # blocks of one neighbourhood solved at once
FILL_RINGS = 1  # rings of touching grids around an empty grid in its neighbourhood
FILL_WORK = 1.0  # CP-SAT deterministic time per neighbourhood
FILL_REACH = 4  # hops (through the neighbourhood) a block may move from its grid
FILL_SOLVES_PER_EMPTY = 2  # neighbourhoods solved, per empty grid at the start
# objective weights: an empty grid outweighs any shortfall below the band, which outweighs moves
EMPTY_WEIGHT = 10**9
SHORT_WEIGHT = 10
CHAIN_MAX_BLOCKS = 160  # blocks of the grids one chain crosses, solved at once
CHAIN_TRIES = 3  # chains per empty grid and round: to the nearest homes of this many grids
CHAIN_WORK = 2.0  # CP-SAT deterministic time per chain
CHAIN_RETRIES = 3  # solves of one chain, each below the grids ``accept`` refused in the one before
CHAIN_STEP = 0.07  # that far below (锦江区: refused grids 5–46 % over the patrol cap; 7 %: about a block)


def household_reach(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, households: np.ndarray,
                    values: list[np.ndarray]) -> list[np.ndarray]:
    """Per value (e.g. each block's ``street_m``), per block: the least total of that value over any
    connected set of blocks holding the block and a block with households (inf where none is
    connected to it).

    Exact for one value: such a set holds a path from the block to a household block, and the
    path alone is such a set, so the least total is the node-weighted shortest path (Dijkstra).
    A grid holding the block and households has at least this much: over a cap, the block can
    only be in a grid of 0 households.
    """
    from scipy.sparse.csgraph import dijkstra

    n = len(blocks)
    hh = np.asarray(households, dtype=float)
    e = row_edges(blocks, adjacency)
    src = np.flatnonzero(hh > TOLERANCE)
    out = []
    for v in values:
        v = np.asarray(v, dtype=float)
        if not len(src):
            out.append(np.full(n, np.inf))
            continue
        # node weights on the arcs into each node (tiny floor: zero-cost arcs vanish in a sparse matrix);
        # node n is a source joined to every household block
        rows = np.r_[e[:, 0], e[:, 1], np.full(len(src), n)]
        cols = np.r_[e[:, 1], e[:, 0], src]
        floor = 1e-12 * max(float(v.max(initial=0.0)), 1.0)
        m = sp.csr_matrix((np.maximum(v[cols], 0.0) + floor, (rows, cols)), shape=(n + 1, n + 1))
        d = dijkstra(m, indices=n)[:n]
        out.append(np.where(np.isfinite(d), np.maximum(d - floor * n, 0.0), np.inf))
    return out


def fill_empty(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, labels: np.ndarray, households: np.ndarray, *,
               low: float, high: float, max_street_m: float | None = None, max_area_m2: float | None = None,
               locked: np.ndarray | None = None, accept: Callable[[np.ndarray], bool] | None = None,
               seed: int = 0) -> np.ndarray:
    """``labels`` with grids of 0 ``households`` (per block) removed where the caps allow: the
    grids around each one (up to FILL_RINGS rings, FILL_MAX_BLOCKS blocks) are re-cut exactly.

    CP-SAT gives every block of the neighbourhood one of its grids (or none of a grid that
    disappears); each grid is contiguous (a flow from one root block), within every cap and at
    most ``high`` (workload: ``households`` column of ``blocks``), and rooted on a block with
    households unless it stays empty. It minimises the empty grids first, then the workload
    below ``low``, then the blocks moved. A grid left with 0 households is one the
    neighbourhood cannot place; grids holding a block :func:`household_reach` puts over a cap
    (no plan can give them households) are not tried. ``accept``
    (block indices of a grid → bool, e.g. the patrol cap) must agree with every changed grid,
    else the neighbourhood stays as it was. Grids of ``locked`` labels are left alone.
    """
    caps, labels, keep, hh, load, edges, nbrs = empty_step_inputs(blocks, adjacency, labels, households, locked,
                                                                  max_street_m, max_area_m2)
    if len(labels) == 0:
        return labels
    single_over, hopeless = _out_of_reach(blocks, adjacency, hh, caps)
    tried: set[frozenset] = set()
    budget = None
    while True:
        h_grid = np.bincount(labels, weights=hh, minlength=int(labels.max()) + 1)
        todo = [g for g in sorted(set(labels.tolist())) if h_grid[g] <= TOLERANCE and g not in keep
                and not hopeless[labels == g].any()]
        area = None
        for g in todo:
            a = _neighbourhood(g, labels, nbrs, keep, single_over)
            if frozenset(a) not in tried:
                area = a
                break
        if budget is None:
            budget = FILL_SOLVES_PER_EMPTY * len(todo)
        if area is None or budget <= 0:
            return labels
        budget -= 1
        tried.add(frozenset(area))
        new = _solve_fill(labels, area, nbrs, hh, load, caps, low, high, seed)
        if new is not None and not _refused(labels, new, accept):
            labels = new


def fill_along_chains(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, labels: np.ndarray, households: np.ndarray, *,
                      low: float, high: float, max_street_m: float | None = None, max_area_m2: float | None = None,
                      locked: np.ndarray | None = None, accept: Callable[[np.ndarray], bool] | None = None,
                      seed: int = 0, target: int = 0) -> np.ndarray:
    """``labels`` with grids of 0 ``households`` given homes along chains of grids, while more than
    ``target`` (e.g. the proven lower bound) are left: for an empty grid E, the cheapest chains of touching
    blocks from E to a block with households (cost: each block's share of every cap), one per grid with
    households they end in (the CHAIN_TRIES cheapest); the grids such a chain crosses are re-cut exactly
    as in :func:`fill_empty` (same model, same objective), except that any block may go to any of those
    grids: E may take a household block deep inside a grid that holds them, and the grids between give
    way. Kept when it has fewer grids of 0 households and ``accept`` agrees with every changed grid; where
    it refuses one, the last solution of the same search with fewer grids of 0 households that ``accept``
    agrees with is kept, and without one the chain is solved again (up to CHAIN_RETRIES times) with every
    grid below the refused ones on the cap they use most (:func:`_below_refused`). Rounds over the empty
    grids repeat while one of them gains homes."""
    caps, labels, keep, hh, load, _, nbrs = empty_step_inputs(blocks, adjacency, labels, households, locked,
                                                              max_street_m, max_area_m2)
    if len(labels) == 0 or not caps:
        return labels
    single_over, hopeless = _out_of_reach(blocks, adjacency, hh, caps)
    cost = sum(np.maximum(v, 0.0) / cap for v, cap in caps) + 1e-6  # a hop costs a little: shortest of equals
    tried: set[tuple] = set()
    while True:
        empty = empty_grids(labels, hh)
        if len(empty) <= target:
            return labels
        # locked grids, blocks alone over a cap and grids above the band's top (one block of many homes)
        # stay as they are
        over_high = np.flatnonzero(np.bincount(labels, weights=load) > high * (1 + TOLERANCE)).tolist()
        passable = ~single_over & ~np.isin(labels, sorted(keep | set(over_high)))
        progress = False
        for g in empty:
            if g in keep or hopeless[labels == g].any():
                continue
            for area in _chain_areas(g, labels, nbrs, hh, cost, passable):
                rows = np.flatnonzero(np.isin(labels, area))
                key = (tuple(rows.tolist()), labels[rows].tobytes())
                if len(rows) > CHAIN_MAX_BLOCKS or key in tried:
                    continue
                tried.add(key)
                area_caps = caps
                for _ in range(CHAIN_RETRIES):
                    new = _solve_fill(labels, area, nbrs, hh, load, area_caps, low, high, seed, far=frozenset(area),
                                      work=CHAIN_WORK, accept=accept)
                    refused = [] if new is None else _refused(labels, new, accept)
                    if new is None or not refused:
                        break
                    area_caps = _below_refused(area_caps, refused)
                if new is not None and not refused:
                    labels, progress = new, True
                    break
        if not progress:
            return labels


def _chain_areas(g: int, labels: np.ndarray, nbrs: list[list[int]], hh: np.ndarray, cost: np.ndarray,
                 passable: np.ndarray) -> list[list[int]]:
    """The grids crossed by the cheapest chain of ``passable`` touching blocks (node costs ``cost``) from
    grid g to a block with households, per grid with households such a chain ends in, cheapest first
    (at most CHAIN_TRIES); each list starts with g and follows the chain."""
    dist = {b: 0.0 for b in np.flatnonzero(labels == g).tolist()}
    prev: dict[int, int] = {}
    heap = [(0.0, b) for b in sorted(dist)]
    done: set[int] = set()
    ends: dict[int, int] = {}  # grid with households → its nearest household block
    while heap and len(ends) < CHAIN_TRIES:
        d, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        if hh[u] > TOLERANCE:
            ends.setdefault(int(labels[u]), u)
            continue  # a chain ends at the first home it meets
        for w in nbrs[u]:
            nd = d + float(cost[w])
            if passable[w] and w not in done and nd < dist.get(w, np.inf):
                dist[w], prev[w] = nd, u
                heapq.heappush(heap, (nd, w))
    out = []
    for end in ends.values():
        area, b = [], end
        while True:
            if int(labels[b]) not in area:
                area.append(int(labels[b]))
            if b not in prev:
                break
            b = prev[b]
        area.reverse()
        out.append(area)
    return out


def _out_of_reach(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, hh: np.ndarray,
                  caps: list[tuple[np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(blocks alone over a cap, blocks in a grid of 0 households in every plan): the first are grids of
    their own (exempt), never part of a re-cut; the second are those and the blocks farther from every
    home than a cap allows (:func:`household_reach`): not worth a re-cut."""
    single_over = np.zeros(len(hh), dtype=bool)
    for v, cap in caps:
        single_over |= v > cap * (1 + TOLERANCE)
    hopeless = single_over.copy()
    for r, (_, cap) in zip(household_reach(blocks, adjacency, hh, [v for v, _ in caps]), caps):
        hopeless |= r > cap * (1 + TOLERANCE)
    return single_over, hopeless


def _refused(labels: np.ndarray, new: np.ndarray, accept: Callable[[np.ndarray], bool] | None) -> list[np.ndarray]:
    """The grids ``new`` changed (block indices) that ``accept`` (block indices of a grid → bool) refuses."""
    if accept is None:
        return []
    changed = sorted({int(x) for x in new[new != labels].tolist()} | {int(x) for x in labels[new != labels].tolist()})
    grids = [np.flatnonzero(new == x) for x in changed]
    return [idx for idx in grids if len(idx) and not accept(idx)]


def _below_refused(caps: list[tuple[np.ndarray, float]], refused: list[np.ndarray]) -> list[tuple[np.ndarray, float]]:
    """``caps`` lowered just below each refused grid's total on the cap it uses most: ``accept`` (the exact
    patrol) is no sum of block values, so the next re-cut keeps every grid below the grids it refused."""
    out = list(caps)
    for idx in refused:
        i = max(range(len(out)), key=lambda k: float(out[k][0][idx].sum()) / out[k][1])
        out[i] = (out[i][0], min(out[i][1], float(out[i][0][idx].sum()) * (1 - CHAIN_STEP)))
    return out


def _neighbourhood(g: int, labels: np.ndarray, nbrs: list[list[int]], keep: set[int],
                   single_over: np.ndarray) -> list[int]:
    """Grid g and rings of touching grids around it, while the blocks stay within FILL_MAX_BLOCKS."""
    area = [g]
    size = int((labels == g).sum())
    ring = [g]
    for _ in range(FILL_RINGS):
        nxt = set()
        for x in ring:
            for b in np.flatnonzero(labels == x).tolist():
                nxt |= {int(labels[y]) for y in nbrs[b]}
        nxt -= set(area) | keep
        nxt = {x for x in nxt if not single_over[labels == x].any()}
        added = []
        for x in sorted(nxt, key=lambda y: (int((labels == y).sum()), y)):
            k = int((labels == x).sum())
            if size + k > FILL_MAX_BLOCKS:
                continue
            area.append(x)
            added.append(x)
            size += k
        if not added:
            break
        ring = added
    return area


def _solve_fill(labels: np.ndarray, area: list[int], nbrs: list[list[int]], hh: np.ndarray, load: np.ndarray,
                caps: list[tuple[np.ndarray, float]], low: float, high: float, seed: int,
                far: frozenset[int] = frozenset(), work: float = FILL_WORK,
                accept: Callable[[np.ndarray], bool] | None = None) -> np.ndarray | None:
    """The CP-SAT re-cut of the grids ``area`` (see fill_empty): new labels, or None when it
    finds no plan with fewer empty grids. A block may move to a grid within FILL_REACH hops of the
    grid's blocks, or to any grid of ``far``; deterministic time ``work``. With ``accept``, every
    solution the search passes with fewer empty grids is checked: where ``accept`` refuses a grid of the
    last one, the last one it agreed with is returned (the search is the same; a solve saved)."""
    from ortools.sat.python import cp_model

    blocks = np.flatnonzero(np.isin(labels, area)).tolist()
    bset = set(blocks)
    home = {b: int(labels[b]) for b in blocks}
    empty_before = sum(1 for lab in area if hh[labels == lab].sum() <= TOLERANCE)
    # which grids may take each block: those within FILL_REACH hops of the grid's blocks
    cand: dict[int, set[int]] = {b: {home[b]} for b in blocks}
    for lab in area:
        seen = {b for b in blocks if home[b] == lab}
        frontier = list(seen)
        for _ in range(len(blocks) if lab in far else FILL_REACH):
            nxt = []
            for x in frontier:
                for y in nbrs[x]:
                    if y in bset and y not in seen:
                        seen.add(y)
                        nxt.append(y)
            frontier = nxt
        for b in seen:
            cand[b].add(lab)
    model = cp_model.CpModel()
    x = {(b, lab): model.new_bool_var("") for b in blocks for lab in sorted(cand[b])}
    for b in blocks:
        model.add_exactly_one(x[b, lab] for lab in sorted(cand[b]))
    scaled_load = np.round(load * FILL_SCALE).astype(np.int64)
    empties, shorts = [], []
    for lab in area:
        mem = [b for b in blocks if (b, lab) in x]
        n = len(mem)
        # roots: a block with households, or the grid's own first block (it may stay empty)
        own = [b for b in mem if home[b] == lab]
        roots = [b for b in mem if hh[b] > TOLERANCE] or own[:1]
        if own and own[0] not in roots:
            roots.append(own[0])
        r = {b: model.new_bool_var("") for b in roots}
        used = model.new_bool_var("")
        model.add(sum(r.values()) == used)
        for b in mem:
            model.add_implication(x[b, lab], used)
        for b in roots:
            model.add_implication(r[b], x[b, lab])
        # contiguous: a flow from the chosen root brings one unit to every block of the grid
        f_in, f_out = contiguity_flows(model, x, lab, mem, nbrs)
        for b in mem:
            s = 0
            if b in r:
                s = model.new_int_var(0, n, "")
                model.add(s <= n * r[b])
            model.add(sum(f_in[b]) - sum(f_out[b]) + s == x[b, lab])
        for v, cap in caps:
            model.add(sum(int(round(v[b] * FILL_SCALE)) * x[b, lab] for b in mem) <= int(cap * FILL_SCALE))
        total = sum(int(scaled_load[b]) * x[b, lab] for b in mem)
        model.add(total <= int(high * FILL_SCALE))
        with_hh = [x[b, lab] for b in mem if hh[b] > TOLERANCE]
        empty = model.new_bool_var("")
        if with_hh:
            # used and no block with households → empty
            model.add_bool_or([empty, used.Not()] + with_hh)
        else:
            model.add(empty == used)
        empties.append(empty)
        short = model.new_int_var(0, int(low * FILL_SCALE), "")
        model.add(short >= int(low * FILL_SCALE) * used - total)
        shorts.append(short)
    model.minimize(EMPTY_WEIGHT * sum(empties) + SHORT_WEIGHT * sum(shorts)
                   + FILL_SCALE * sum(1 - x[b, home[b]] for b in blocks))
    for b in blocks:
        for lab in sorted(cand[b]):
            model.add_hint(x[b, lab], lab == home[b])

    def plan(value: Callable) -> np.ndarray | None:  # the labels of a solution with fewer empty grids, or None
        if sum(int(value(e)) for e in empties) >= empty_before:
            return None
        out = labels.copy()
        for b in blocks:
            out[b] = next(lab for lab in sorted(cand[b]) if value(x[b, lab]))
        return out

    seen = None
    if accept is not None:
        class Seen(cp_model.CpSolverSolutionCallback):
            """The last (best) solution with fewer empty grids whose changed grids ``accept`` agrees with."""
            kept = None

            def on_solution_callback(self) -> None:
                new = plan(self.value)
                if new is not None and not _refused(labels, new, accept):
                    self.kept = new
        seen = Seen()
    solver, found = solve_repeatably(model, seed, work, on_solution=seen)
    if not found:
        return None
    out = plan(solver.value)
    if out is not None and seen is not None and seen.kept is not None and _refused(labels, out, accept):
        return seen.kept
    return out


def touching_blocks(geoms: np.ndarray, min_shared_m: float = 0.01) -> np.ndarray:
    """(k, 2) row pairs of ``geoms`` (polygons in a metric CRS) sharing a boundary longer than
    ``min_shared_m``: the adjacency a grid's contiguity is checked on (one polygon)."""
    import shapely

    geoms = np.asarray(geoms)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    shared = shapely.length(shapely.intersection(shapely.boundary(geoms[left]), shapely.boundary(geoms[right])))
    ok = shared > min_shared_m
    return np.column_stack([left[ok], right[ok]]).astype(np.int64).reshape(-1, 2)


def empty_grid_proofs(blocks: gpd.GeoDataFrame, grid_of_block: np.ndarray, caps: list[tuple[str, float]],
                      ) -> dict[int, tuple[int, str, float, float]]:
    """Per grid of 0 households (``grid_of_block``: grid index per block row) that no plan within
    the caps can give households: (block row, cap column, least total, cap).

    ``blocks``: metric CRS, ``households`` and the caps' columns (``street_m``, ``area_m2``);
    ``caps``: (column, cap). The block's least total (:func:`household_reach` on the blocks that
    share a boundary) is over the cap: every grid holding it and households breaks the cap."""
    hh = blocks["households"].to_numpy(dtype=float)
    grid_of_block = np.asarray(grid_of_block, dtype=np.int64)
    ok = grid_of_block >= 0
    if not len(blocks) or not caps or not ok.any():
        return {}
    h_grid = np.bincount(grid_of_block[ok], weights=hh[ok])
    empty = [g for g in np.flatnonzero(h_grid <= TOLERANCE).tolist()]
    if not empty:
        return {}
    pairs = touching_blocks(blocks.geometry.to_numpy())
    adj = nx.Graph()
    ids = np.arange(len(blocks))
    adj.add_nodes_from(ids.tolist())
    adj.add_edges_from(pairs.tolist())
    rows = blocks.assign(block_id=ids)
    reach = household_reach(rows, adj, hh, [blocks[col].to_numpy(dtype=float) for col, _ in caps])
    out = {}
    for g in empty:
        best = None
        for b in np.flatnonzero(grid_of_block == g).tolist():
            for (col, cap), r in zip(caps, reach):
                share = r[b] / cap
                if share > 1 + TOLERANCE and (best is None or share > best[0]):
                    best = (share, b, col, float(r[b]), float(cap))
        if best is not None:
            out[g] = best[1:]
    return out
