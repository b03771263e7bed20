"""Street and area caps as hard limits: a grid over a cap is split until every part meets it or is one block."""
from __future__ import annotations

import math

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
    labels = np.asarray(labels, dtype=np.int64).copy()
    if not caps or len(labels) == 0:
        return labels
    keep = set() if locked is None else set(np.asarray(locked)[np.asarray(locked) >= 0].tolist())
    h = block_households(blocks)
    nxt = int(labels.max()) + 1
    for _ in range(CAP_ROUNDS):
        over = []
        for lab in np.unique(labels).tolist():
            idx = np.flatnonzero(labels == lab)
            share = max(float(v[idx].sum()) / cap for v, cap in caps)
            if share > 1 + TOLERANCE and len(idx) > 1 and int(lab) not in keep:
                over.append((idx, share))
        if not over:
            break
        for idx, share in over:
            k = int(min(len(idx), max(2, math.ceil(share / CAP_HEADROOM - TOLERANCE))))
            cap_load = sum(v[idx] / cap for v, cap in caps)
            total = float(cap_load.sum())
            hh = h[idx]
            load = cap_load + (hh / hh.sum() * total if hh.sum() > 0 else 0.0)
            try:
                parts = split_grid(blocks.iloc[idx].assign(households=load), adjacency, k, seed=seed)
            except InputError:
                continue  # its blocks are not connected: check-grids reports the grid
            for p in sorted(set(parts.tolist()) - {0}):
                labels[idx[parts == p]] = nxt
                nxt += 1
    return labels


def merge_small(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, labels: np.ndarray, *, low: float, high: float,
                max_street_m: float | None = None, max_area_m2: float | None = None,
                locked: np.ndarray | None = None) -> np.ndarray:
    """``labels`` with grids below ``low`` (workload: ``households`` column) merged into a touching
    grid where the merge keeps every cap and the workload at most ``high``: the smallest grid
    first, into the neighbour giving the smallest merged workload. Undoes the empty and tiny
    grids a cap split leaves where streets or area carry no households."""
    caps = block_caps(blocks, max_street_m, max_area_m2)
    labels = np.asarray(labels, dtype=np.int64).copy()
    if len(labels) == 0:
        return labels
    keep = set() if locked is None else set(np.asarray(locked)[np.asarray(locked) >= 0].tolist())
    h = block_households(blocks)
    pos = {int(b): i for i, b in enumerate(blocks["block_id"].tolist())}
    edges = np.array([(pos[int(u)], pos[int(v)]) for u, v in adjacency.edges() if int(u) in pos and int(v) in pos],
                     dtype=np.int64).reshape(-1, 2)
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
                if best is None or w[g] + w[o] < best[0]:
                    best = (w[g] + w[o], g, o)
            if best is not None:
                break
        if best is None:
            return labels
        labels[labels == best[1]] = best[2]


def merge_blocked(touching: np.ndarray, load: np.ndarray, capped: list[tuple[np.ndarray, float]],
                  high: float) -> tuple[np.ndarray, np.ndarray]:
    """Per grid: whether merging it into any touching grid breaks a cap or the band's upper end
    ``high``, and the least cap share over 1 such a merge would reach (NaN: no cap breaks it).

    ``touching``: (m, 2) pairs of grids of one area sharing a boundary; ``capped``: (value per
    grid, cap) per cap. A grid below the band that no such merge can absorb is forced there by
    the caps: this is the reason and bound check-grids reports.
    """
    n = len(load)
    load = np.asarray(load, dtype=float)
    blocked = np.ones(n, dtype=bool)
    share = np.full(n, np.inf)
    for i, j in np.asarray(touching, dtype=np.int64).reshape(-1, 2).tolist():
        s = max((float(v[i] + v[j]) / cap for v, cap in capped), default=0.0)
        ok = s <= 1 + TOLERANCE and load[i] + load[j] <= high + TOLERANCE
        for x in (i, j):
            if ok:
                blocked[x] = False
            elif s > 1 + TOLERANCE:
                share[x] = min(share[x], s)
    share[~np.isfinite(share)] = np.nan
    return blocked, share
