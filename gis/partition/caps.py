"""Street and area caps as hard limits: a grid over a cap is split until every part meets it or is one block."""
from __future__ import annotations

import math
from collections.abc import Callable

import geopandas as gpd
import networkx as nx
import numpy as np
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.partition.band import CAP_HEADROOM, TOLERANCE
from gridpatrol.gis.partition.edits import split_grid
from gridpatrol.gis.partition.graph import block_caps, block_households

CAP_ROUNDS = 6  # split rounds: a part still over a cap after a split is split again


def cap_shares(blocks: gpd.GeoDataFrame, labels: np.ndarray, max_street_m: float | None,
               max_area_m2: float | None) -> dict[int, float]:
    """Per grid label: its largest total / cap over the caps given (over 1: the grid breaks a cap)."""
    caps = block_caps(blocks, max_street_m, max_area_m2)
    out: dict[int, float] = {}
    for lab in np.unique(labels).tolist():
        m = labels == lab
        out[int(lab)] = max((float(v[m].sum()) / cap for v, cap in caps), default=0.0)
    return out


def locked_labels(locked: np.ndarray | None) -> set[int]:
    """The labels of locked grids (``locked``: per block, -1 free) that no cap step may change."""
    return set() if locked is None else set(np.asarray(locked)[np.asarray(locked) >= 0].tolist())


def row_edges(blocks: gpd.GeoDataFrame, adjacency: nx.Graph) -> np.ndarray:
    """The edges of ``adjacency`` between rows of ``blocks`` as (k, 2) row indices, in the graph's edge order
    (edges to blocks outside ``blocks`` left out)."""
    pos = {int(b): i for i, b in enumerate(blocks["block_id"].tolist())}
    return np.array([(pos[int(u)], pos[int(v)]) for u, v in adjacency.edges() if int(u) in pos and int(v) in pos],
                    dtype=np.int64).reshape(-1, 2)


def enforce_caps(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, labels: np.ndarray, *,
                 max_street_m: float | None = None, max_area_m2: float | None = None, seed: int = 0,
                 locked: np.ndarray | None = None) -> np.ndarray:
    """``labels`` with every grid over ``max_street_m`` (blocks' ``street_m``) or ``max_area_m2``
    (``area_m2``) split into contiguous parts until each meets the caps or is a single block.

    A grid over a cap by share s gets ceil(s / CAP_HEADROOM) parts (at least 2) of equal load,
    the load of a block being its share of each cap plus its share of the grid's workload
    (``households`` column) scaled to the same total, so parts meet the caps and none is left
    without workload where the grid had some. New parts get labels above the largest one; grids
    of ``locked`` labels (per block, -1 free) are left alone. Deterministic for a ``seed``.
    """
    caps = block_caps(blocks, max_street_m, max_area_m2)
    if not caps:
        return np.asarray(labels, dtype=np.int64).copy()
    h = block_households(blocks)

    def load_of(idx: np.ndarray) -> np.ndarray:
        cap_load = sum(v[idx] / cap for v, cap in caps)
        total, hh = float(cap_load.sum()), h[idx]
        return cap_load + (hh / hh.sum() * total if hh.sum() > 0 else 0.0)

    return _split_while_over(blocks, adjacency, labels, locked, seed,
                             lambda idx: max(float(v[idx].sum()) / cap for v, cap in caps), load_of)


def _split_while_over(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, labels: np.ndarray, locked: np.ndarray | None,
                      seed: int, share_of: Callable[[np.ndarray], float],
                      load_of: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``labels`` with every grid whose ``share_of(block indices)`` (its measure over the cap) is over 1 cut
    into ceil(share / CAP_HEADROOM) contiguous parts (at least 2) of equal ``load_of(block indices)``, for
    CAP_ROUNDS rounds; single blocks and grids of ``locked`` labels (per block, -1 free) are left alone. New
    parts get labels above the largest one. The loop of :func:`enforce_caps` and :func:`enforce_route`."""
    labels = np.asarray(labels, dtype=np.int64).copy()
    if len(labels) == 0:
        return labels
    keep = locked_labels(locked)
    nxt = int(labels.max()) + 1
    for _ in range(CAP_ROUNDS):
        over = []
        for lab in np.unique(labels).tolist():
            idx = np.flatnonzero(labels == lab)
            if len(idx) < 2 or int(lab) in keep:
                continue
            share = share_of(idx)
            if share > 1 + TOLERANCE:
                over.append((idx, share))
        if not over:
            break
        for idx, share in over:
            k = int(min(len(idx), max(2, math.ceil(share / CAP_HEADROOM - TOLERANCE))))
            try:
                parts = split_grid(blocks.iloc[idx].assign(households=load_of(idx)), adjacency, k, seed=seed)
            except InputError:
                continue  # its blocks are not connected: check-grids reports the grid
            for p in sorted(set(parts.tolist()) - {0}):
                labels[idx[parts == p]] = nxt
                nxt += 1
    return labels


def enforce_route(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, labels: np.ndarray, *,
                  minutes_of: Callable[[np.ndarray], float], max_minutes: float, seed: int = 0,
                  locked: np.ndarray | None = None) -> np.ndarray:
    """``labels`` with every grid whose patrol (``minutes_of(block indices)``) takes over
    ``max_minutes`` split into contiguous parts until each takes at most that or is one block.

    A grid of m minutes gets ceil(m / (CAP_HEADROOM × max_minutes)) parts (at least 2) of equal
    load: a block's share of the grid's streets (``street_m``) plus its share of the workload,
    as ``enforce_caps`` cuts; a part still over is split again (CAP_ROUNDS rounds).
    """
    h = block_households(blocks)
    street = blocks["street_m"].to_numpy(dtype=float) if "street_m" in blocks else np.ones(len(blocks))

    def load_of(idx: np.ndarray) -> np.ndarray:
        s, hh = street[idx], h[idx]
        load = s / s.sum() if s.sum() > 0 else np.full(len(idx), 1.0 / len(idx))
        return load + (hh / hh.sum() if hh.sum() > 0 else 0.0)

    return _split_while_over(blocks, adjacency, labels, locked, seed,
                             lambda idx: float(minutes_of(idx)) / max_minutes, load_of)


def merge_small(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, labels: np.ndarray, *, low: float, high: float,
                max_street_m: float | None = None, max_area_m2: float | None = None,
                locked: np.ndarray | None = None, accept: Callable[[np.ndarray], bool] | None = None) -> np.ndarray:
    """``labels`` with grids below ``low`` (workload: ``households`` column) merged into a touching
    grid where the merge keeps every cap and the workload at most ``high``: the smallest grid
    first, into the neighbour giving the smallest merged workload. Undoes the empty and tiny
    grids a cap split leaves where streets or area carry no households. ``accept`` (block
    indices of the merged grid → bool) can refuse a merge the caps allow (e.g. a patrol too long)."""
    caps = block_caps(blocks, max_street_m, max_area_m2)
    labels = np.asarray(labels, dtype=np.int64).copy()
    if len(labels) == 0:
        return labels
    keep = locked_labels(locked)
    h = block_households(blocks)
    edges = row_edges(blocks, adjacency)
    while True:
        n = int(labels.max()) + 1
        w = np.bincount(labels, weights=h, minlength=n)
        vals = [np.bincount(labels, weights=v, minlength=n) for v, _ in caps]
        a, b = labels[edges[:, 0]], labels[edges[:, 1]]
        pairs = {(int(x), int(y)) for x, y in zip(a, b) if x != y}
        best = None
        for g in sorted({int(x) for x in labels.tolist()}, key=lambda x: (w[x], x)):
            if w[g] >= low - TOLERANCE or g in keep:
                continue
            for o in sorted({y for x, y in pairs if x == g} | {x for x, y in pairs if y == g}):
                if o in keep or w[g] + w[o] > high + TOLERANCE:
                    continue
                if any(vv[g] + vv[o] > cap * (1 + TOLERANCE) for vv, (_, cap) in zip(vals, caps)):
                    continue
                if best is not None and w[g] + w[o] >= best[0]:
                    continue
                if accept is not None and not accept(np.flatnonzero((labels == g) | (labels == o))):
                    continue
                if best is None or w[g] + w[o] < best[0]:
                    best = (w[g] + w[o], g, o)
            if best is not None:
                break
        if best is None:
            return labels
        labels[labels == best[1]] = best[2]


def merge_blocked(touching: np.ndarray, load: np.ndarray, capped: list[tuple[np.ndarray, float]],
                  high: float, pair_share: Callable[[int, int], float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per grid: whether merging it into any touching grid breaks a cap or the band's upper end
    ``high``, and the least cap share over 1 such a merge would reach (NaN: no cap breaks it).

    ``touching``: (m, 2) pairs of grids of one area sharing a boundary; ``capped``: (value per
    grid, cap) per cap. A grid below the band that no such merge can absorb is forced there by
    the caps: this is the reason and bound check-grids reports. ``pair_share`` (i, j) → a cap
    share of the merged grid that is no sum (the patrol's minutes / --max-route-min); asked only
    for merges the other caps and the band allow.
    """
    n = len(load)
    load = np.asarray(load, dtype=float)
    blocked = np.ones(n, dtype=bool)
    share = np.full(n, np.inf)
    for i, j in np.asarray(touching, dtype=np.int64).reshape(-1, 2).tolist():
        s = max((float(v[i] + v[j]) / cap for v, cap in capped), default=0.0)
        fits = load[i] + load[j] <= high + TOLERANCE
        if pair_share is not None and fits and s <= 1 + TOLERANCE:
            s = max(s, float(pair_share(i, j)))
        ok = s <= 1 + TOLERANCE and fits
        for x in (i, j):
            if ok:
                blocked[x] = False
            elif s > 1 + TOLERANCE:
                share[x] = min(share[x], s)
    share[~np.isfinite(share)] = np.nan
    return blocked, share


def empty_step_inputs(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, labels: np.ndarray, households: np.ndarray,
                      locked: np.ndarray | None, max_street_m: float | None, max_area_m2: float | None) -> tuple:
    """What the empty-grid steps (absorb_empty, resplit_empty, empty.fill_empty) start from: (caps of
    block_caps, a copy of ``labels`` as int64, the locked labels, households per block, workload per
    block (``households`` column), adjacency as row-index edges and as neighbour rows per row)."""
    edges = row_edges(blocks, adjacency)
    nbrs: list[list[int]] = [[] for _ in range(len(blocks))]
    for i, j in edges.tolist():
        nbrs[i].append(j)
        nbrs[j].append(i)
    return (block_caps(blocks, max_street_m, max_area_m2), np.asarray(labels, dtype=np.int64).copy(),
            locked_labels(locked), np.asarray(households, dtype=float), block_households(blocks), edges, nbrs)


def empty_grids(labels: np.ndarray, hh: np.ndarray, among: np.ndarray | None = None) -> list[int]:
    """The grids (labels, ascending) whose blocks hold 0 households ``hh``; ``among``: only the grids of
    these blocks (a boolean mask)."""
    if len(labels) == 0:
        return []
    h_grid = np.bincount(labels, weights=hh, minlength=int(labels.max()) + 1)
    return [g for g in sorted(set((labels if among is None else labels[among]).tolist())) if h_grid[g] <= TOLERANCE]


def absorb_empty(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, labels: np.ndarray, households: np.ndarray, *,
                 high: float, max_street_m: float | None = None, max_area_m2: float | None = None,
                 locked: np.ndarray | None = None, accept: Callable[[np.ndarray], bool] | None = None) -> np.ndarray:
    """``labels`` with grids of 0 ``households`` (per block) dissolved block by block into the
    grids around them, where every grid that takes blocks stays within the caps and at most
    ``high`` (workload: the ``households`` column of ``blocks``) and ``accept`` (block indices of
    a grid → bool) agrees with each grid that grew. A grid whose blocks cannot all go is left
    as it was (moving part of it would not remove it). Grids that hold households come first as
    takers; the emptiest grid is dissolved first. Undoes the 0-household grids cap splits leave
    on streets and land without buildings that merge_small cannot join whole."""
    caps, labels, keep, hh, load, edges, nbrs = empty_step_inputs(blocks, adjacency, labels, households, locked,
                                                                  max_street_m, max_area_m2)
    if len(labels) == 0:
        return labels
    tried: set[int] = set()
    while True:
        n = int(labels.max()) + 1
        h_grid = np.bincount(labels, weights=hh, minlength=n)
        empty = [g for g in sorted(set(labels.tolist())) if h_grid[g] <= TOLERANCE and g not in keep and g not in tried]
        if not empty:
            return labels
        g = empty[0]
        tried.add(g)
        trial = labels.copy()
        w = np.bincount(trial, weights=load, minlength=n)
        vals = [np.bincount(trial, weights=v, minlength=n) for v, _ in caps]
        left = set(np.flatnonzero(trial == g).tolist())
        grown: set[int] = set()
        progress = True
        while left and progress:
            progress = False
            for b in sorted(left):
                takers = {int(trial[x]) for x in nbrs[b]} - {g} - keep
                # grids with households first, then the least loaded
                for o in sorted(takers, key=lambda x: (h_grid[x] <= TOLERANCE, w[x], x)):
                    if w[o] + load[b] > high + TOLERANCE:
                        continue
                    if any(vv[o] + v[b] > cap * (1 + TOLERANCE) for vv, (v, cap) in zip(vals, caps)):
                        continue
                    rest = left - {b}
                    if len(rest) > 1:
                        sub = nx.Graph()
                        sub.add_nodes_from(rest)
                        sub.add_edges_from((x, y) for x in rest for y in nbrs[x] if y in rest)
                        if not nx.is_connected(sub):
                            continue
                    trial[b] = o
                    w[o] += load[b]
                    for vv, (v, _) in zip(vals, caps):
                        vv[o] += v[b]
                    left.discard(b)
                    grown.add(o)
                    progress = True
                    break
        if left:
            continue
        if accept is not None and not all(accept(np.flatnonzero(trial == o)) for o in sorted(grown)):
            continue
        labels = trial


def resplit_empty(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, labels: np.ndarray, households: np.ndarray, *,
                  high: float, max_street_m: float | None = None, max_area_m2: float | None = None,
                  locked: np.ndarray | None = None, accept: Callable[[np.ndarray], bool] | None = None,
                  seed: int = 0) -> np.ndarray:
    """``labels`` with each grid of 0 ``households`` re-cut together with a touching grid that has
    some into two contiguous grids that both hold households, within the caps and ``high`` and
    ``accept``ed (block indices → bool). The cut balances each block's share of the caps plus
    w × its share of the households (w = 1, 2, 4: the first that gives both parts households).
    What no neighbour allows stays: check-grids exempts it with the reason."""
    caps, labels, keep, hh, load, edges, _ = empty_step_inputs(blocks, adjacency, labels, households, locked,
                                                               max_street_m, max_area_m2)
    if len(labels) == 0:
        return labels
    n = int(labels.max()) + 1
    h_grid = np.bincount(labels, weights=hh, minlength=n)
    for g in sorted(set(labels.tolist())):
        if h_grid[g] > TOLERANCE or g in keep:
            continue
        a, b = labels[edges[:, 0]], labels[edges[:, 1]]
        others = sorted({int(y) for x, y in zip(a, b) if x == g and y != g} |
                        {int(x) for x, y in zip(a, b) if y == g and x != g})
        done = False
        for o in sorted(others, key=lambda x: (-h_grid[x], x)):
            if o in keep or h_grid[o] <= TOLERANCE:
                continue
            idx = np.flatnonzero((labels == g) | (labels == o))
            cap_load = sum((v[idx] / cap for v, cap in caps), np.zeros(len(idx)))
            cap_load = cap_load / cap_load.sum() if cap_load.sum() > 0 else np.full(len(idx), 1.0 / len(idx))
            for wt in (1.0, 2.0, 4.0):
                try:
                    parts = split_grid(blocks.iloc[idx].assign(households=cap_load + wt * hh[idx] / hh[idx].sum()),
                                       adjacency, 2, seed=seed)
                except InputError:
                    break
                ok = True
                for p in (0, 1):
                    m = idx[parts == p]
                    if hh[m].sum() <= TOLERANCE or load[m].sum() > high + TOLERANCE:
                        ok = False
                    elif any(float(v[m].sum()) > cap * (1 + TOLERANCE) for v, cap in caps):
                        ok = False
                    elif accept is not None and not accept(m):
                        ok = False
                    if not ok:
                        break
                if ok:
                    labels[idx[parts == 0]] = g
                    labels[idx[parts == 1]] = o
                    h_grid[g], h_grid[o] = hh[idx[parts == 0]].sum(), hh[idx[parts == 1]].sum()
                    done = True
                    break
            if done:
                break
    return labels
