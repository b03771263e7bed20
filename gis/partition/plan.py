"""Plan grids for a set of blocks: balanced, contiguous, deterministic for a seed."""
from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.partition.band import (
    TOLERANCE,
    Band,
    check_band,
    choose_grid_count,
    window_violation,
)
from gridpatrol.gis.partition.exact import EXACT_LARGE, EXACT_SMALL, exact_fix
from gridpatrol.gis.partition.graph import (
    LARGE_GRAPH_BLOCKS,
    BlockGraph,
    block_caps,
    block_graph,
    block_households,
    block_xy,
    components,
    subgraph,
)
from gridpatrol.gis.partition.labelling import Labelling
from gridpatrol.gis.partition.local_search import LocalSearch
from gridpatrol.gis.partition.metis_start import metis_partition, reattach_pieces
from gridpatrol.gis.partition.repair import WindowRepair

RETRIES = 4  # further METIS starts when an attempt leaves grids outside the window
LARGE_GRAPH_RETRIES = 2  # the same on components of LARGE_GRAPH_BLOCKS or more
ATTEMPT_SEED_STRIDE = 7919  # attempt i starts METIS from seed + i × this
POLISH_ROUNDS = 2  # rounds of boundary shortening after the repair
LARGE_GRAPH_POLISH_ROUNDS = 1


def partition_blocks(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, *, target_households: float = 300,
                     min_households: float = 300, max_households: float = 500,
                     max_street_m: float | None = None, max_area_m2: float | None = None, seed: int = 0,
                     locked: np.ndarray | None = None, cut_weight: float = 0.05) -> np.ndarray:
    """Grid label (0..G-1) for every block row: contiguous grids balanced on households.

    Run it once per parent area (community, else district) with that area's blocks so grids
    nest. Every grid is aimed into the window (target ±10 % within the band, 300–330 for the
    defaults); a block above the window (or alone over a cap) is a grid of its own, and a piece
    of the graph whose total no grid count fits cannot reach it (see ``forced_deviation``).
    Cut costs come from the adjacency's ``weight`` (else ``length_m``); `cut_weight` is what a
    unit of cut cost weighs against balance. Deterministic for a given `seed`.

    `locked`: optional int array per block, ``-1`` for free blocks, otherwise the label of a locked
    grid; locked blocks keep their label, new grids get labels above the largest locked one.
    Caps `max_street_m` (metres) and `max_area_m2` use the blocks' ``street_m``/``area_m2`` columns;
    they set the grid count and are penalised in the search, but the household band wins.
    """
    band = check_band(target_households, min_households, max_households)
    n = len(blocks)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    h = block_households(blocks)
    graph = block_graph(blocks, adjacency)
    caps = block_caps(blocks, max_street_m, max_area_m2)
    labels = np.full(n, -1, dtype=np.int64)
    frozen = np.zeros(n, dtype=bool)
    if locked is not None:
        locked = np.asarray(locked, dtype=np.int64)
        if locked.shape != (n,):
            raise InputError(f"locked has {locked.shape} entries for {n} blocks", hint="one label (or -1) per block")
        frozen = locked >= 0
        labels[frozen] = locked[frozen]
    next_label = int(labels.max()) + 1 if frozen.any() else 0
    # a block above the window makes any grid holding it deviate anyway: it is a grid of its own
    exempt = ~frozen & (h > band.window[1])
    for v, cap in caps:
        exempt |= ~frozen & (v > cap)
    for i in np.flatnonzero(exempt):
        labels[i] = next_label
        next_label += 1
    xy = block_xy(blocks)
    free = ~frozen & ~exempt
    comp = components(graph, free[graph.src] & free[graph.dst])
    comps: dict[int, list[int]] = {}
    for i in np.flatnonzero(free).tolist():
        comps.setdefault(int(comp[i]), []).append(i)
    for members_list in sorted(comps.values(), key=lambda ms: ms[0]):
        members = np.asarray(members_list, dtype=np.int64)
        sub_caps = [(v[members], cap) for v, cap in caps]
        parts = _solve_component(subgraph(graph, members), h[members], band, sub_caps, seed, cut_weight,
                                 None if xy is None else xy[members])
        labels[members] = next_label + parts
        next_label += int(parts.max()) + 1
    return compact_labels(labels, frozen)


def _solve_component(graph: BlockGraph, h: np.ndarray, band: Band, caps: list[tuple[np.ndarray, float]],
                     seed: int, cut_weight: float, xy: np.ndarray | None) -> np.ndarray:
    """Labels 0..k-1 for one connected component of free blocks: the best of a few attempts."""
    total = float(h.sum())
    k = choose_grid_count(total, band, graph.n, [(float(v.sum()), cap) for v, cap in caps])
    if k == 1:
        return np.zeros(graph.n, dtype=np.int64)
    window_low, window_high = band.window
    retries = RETRIES
    if not (k * window_low - TOLERANCE <= total <= k * window_high + TOLERANCE):
        retries = 0  # the window cannot hold every grid here anyway
    elif graph.n >= LARGE_GRAPH_BLOCKS:
        retries = min(retries, LARGE_GRAPH_RETRIES)  # a whole new attempt costs seconds there
    best = None
    for attempt in range(retries + 1):
        labels, violation = _attempt(graph, h, band, caps, seed + ATTEMPT_SEED_STRIDE * attempt, cut_weight, xy, k)
        if best is None or violation < best[0] - TOLERANCE:
            best = (violation, labels)
        if violation <= TOLERANCE:
            break
    if best[0] > TOLERANCE and retries:
        # every attempt left grids outside: larger exact re-splits around them, on the best plan
        labels, violation = _exact_repair(graph, h, band, caps, seed, cut_weight, best[1].copy(), k)
        if violation < best[0] - TOLERANCE:
            best = (violation, labels)
    return best[1]


def _summed_violation(band: Band, labels: np.ndarray, h: np.ndarray) -> float:
    return float(sum(window_violation(band, x) for x in np.bincount(labels, weights=h)))


def _exact_repair(graph: BlockGraph, h: np.ndarray, band: Band, caps: list[tuple[np.ndarray, float]], seed: int,
                  cut_weight: float, labels: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Large exact re-splits around the grids still outside the window, then boundary
    smoothing that keeps grids in it: (labels, summed window violation)."""
    frozen = np.zeros(graph.n, dtype=bool)
    mean = {p: float(h.sum()) / k for p in set(labels.tolist())}
    state = Labelling(graph, h, labels, band, frozen, caps)
    for lab in sorted(state.members, key=lambda x: (-state.window_violation(x), x)):
        if state.window_violation(lab) > TOLERANCE:
            exact_fix(state, lab, EXACT_LARGE, seed)
    search = LocalSearch(Labelling(graph, h, state.labels, band, frozen, caps), mean, cut_weight=cut_weight)
    search.polish(sorted(search.state.members), 1)
    out = compact_labels(search.state.labels, frozen)
    return out, _summed_violation(band, out, h)


def _attempt(graph: BlockGraph, h: np.ndarray, band: Band, caps: list[tuple[np.ndarray, float]], seed: int,
             cut_weight: float, xy: np.ndarray | None, k: int) -> tuple[np.ndarray, float]:
    """One METIS cut and repair of a component into k grids: (labels, summed window violation)."""
    frozen = np.zeros(graph.n, dtype=bool)
    labels = metis_partition(graph, h, k, seed)
    labels = reattach_pieces(graph, labels, h, frozen)
    mean = {p: float(h.sum()) / k for p in range(k)}
    search = LocalSearch(Labelling(graph, h, labels, band, frozen, caps), mean, cut_weight=cut_weight)
    search.run(sorted(set(labels.tolist())), chain_rounds=0, polish_rounds=0)
    labels = reattach_pieces(graph, search.state.labels, h, frozen)
    state = Labelling(graph, h, labels, band, frozen, caps)
    WindowRepair(state, xy, seed).run(sorted(state.members), exact=EXACT_SMALL)
    # shorter boundaries, along bigger streets, where that keeps every grid settled in the window
    search = LocalSearch(Labelling(graph, h, state.labels, band, frozen, caps), mean, cut_weight=cut_weight)
    rounds = POLISH_ROUNDS if graph.n < LARGE_GRAPH_BLOCKS else LARGE_GRAPH_POLISH_ROUNDS
    search.polish(sorted(search.state.members), rounds)
    out = compact_labels(search.state.labels, frozen)
    return out, _summed_violation(band, out, h)


def compact_labels(labels: np.ndarray, frozen: np.ndarray) -> np.ndarray:
    """Renumber the non-locked grids 0.. in order of their first block, after the locked labels."""
    out = labels.copy()
    keep = set(labels[frozen].tolist())
    nxt = max(keep) + 1 if keep else 0
    seen: dict[int, int] = {}
    for i, lab in enumerate(labels.tolist()):
        if lab in keep:
            continue
        if lab not in seen:
            seen[lab] = nxt
            nxt += 1
        out[i] = seen[lab]
    return out
