"""Edits of an existing plan: split one grid into parts, rebalance a set of grids."""
from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.partition.band import TOLERANCE, Band, band_excess, check_band
from gridpatrol.gis.partition.graph import (
    block_graph,
    block_households,
    grid_piece_counts,
)
from gridpatrol.gis.partition.labelling import Labelling
from gridpatrol.gis.partition.local_search import LocalSearch
from gridpatrol.gis.partition.metis_start import metis_partition, reattach_pieces
from gridpatrol.gis.partition.plan import compact_labels

SPLIT_CUT_WEIGHT = 0.01  # what a unit of cut cost weighs against balance when splitting a grid
EMPTY_PART_WEIGHT = 1e-6  # households added per block so a grid of empty blocks still has a size


def split_grid(blocks_of_grid: gpd.GeoDataFrame, adjacency: nx.Graph, parts: int, *, seed: int = 0) -> np.ndarray:
    """Split one grid's blocks into `parts` contiguous parts of about equal households.

    `adjacency` may be the whole plan's graph (nodes = block_id); edges to other blocks are
    ignored. Returns a part index 0..parts-1 per row of `blocks_of_grid`. Raises InputError when
    the grid has fewer blocks than parts or its blocks are not connected.
    """
    n = len(blocks_of_grid)
    if parts < 1 or parts > n:
        raise InputError(f"cannot split a grid of {n} blocks into {parts} parts",
                         hint="parts must be between 1 and the number of blocks")
    h = block_households(blocks_of_grid)
    graph = block_graph(blocks_of_grid, adjacency)
    if parts == 1:
        return np.zeros(n, dtype=np.int64)
    if grid_piece_counts(graph, np.zeros(n, dtype=np.int64))[0] != 1:
        raise InputError("the grid's blocks are not connected", hint="check the grid with check-grids first")
    mean = float(h.sum()) / parts
    band = Band(mean, 0.0, float("inf"))
    frozen = np.zeros(n, dtype=bool)
    labels = reattach_pieces(graph, metis_partition(graph, h, parts, seed), h, frozen)
    search = LocalSearch(Labelling(graph, h, labels, band, frozen), {p: mean for p in range(parts)},
                         cut_weight=SPLIT_CUT_WEIGHT)
    # Only the parts METIS filled: an empty one is carved out below.
    search.run(sorted(set(labels.tolist())))
    labels = reattach_pieces(graph, search.state.labels, h, frozen)
    # a part METIS left empty: carve a leaf block off the largest part so exactly `parts` exist
    for p in range(parts):
        if not (labels == p).any():
            big = int(np.argmax(np.bincount(labels, weights=h + EMPTY_PART_WEIGHT, minlength=parts)))
            state = Labelling(graph, h, labels, band, frozen)
            for b in sorted(state.members[big], key=lambda i: h[i]):
                if state.stays_connected(b, big):
                    labels[b] = p
                    break
    return compact_labels(labels, frozen) if len(set(labels.tolist())) == parts else labels


def rebalance(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, assignment: np.ndarray, grid_ids, *,
              target_households: float = 300, min_households: float = 300, max_households: float = 500,
              locked_grids=(), accept=None, prefer=None) -> np.ndarray:  # noqa: ANN001
    """Move as few households as possible between the grids `grid_ids` to bring them into the window
    (target ±10 %, within the band): first into the band with as few households moved as
    possible, then into the window by moves that keep every grid in the band.

    Only blocks of those grids move, only between grids in the set that touch, and every grid
    stays contiguous and non-empty; stops when all are in the window or no move helps. Returns a
    new assignment (same labels as `assignment`).

    ``accept(b, s, d, labels)`` (optional): False leaves the move of row ``b`` from grid ``s`` to
    ``d`` out (a limit it would break); ``prefer(b, s, d, labels)`` (optional): 0 for a move to take
    before the others of its kind (e.g. one that does not lengthen the worst travel), else 1.
    ``labels``: the assignment as it is before the move (not to be changed).
    """
    band = check_band(target_households, min_households, max_households)
    assignment = np.asarray(assignment).copy()
    grid_set = {int(x) for x in grid_ids} - {int(x) for x in locked_grids}
    present = set(assignment.tolist())
    missing = grid_set - present
    if missing:
        raise InputError(f"grids {sorted(missing)} are not in the assignment")
    h = block_households(blocks)
    graph = block_graph(blocks, adjacency)
    frozen = ~np.isin(assignment, list(grid_set))
    state = Labelling(graph, h, assignment, band, frozen)
    search = LocalSearch(state, {lab: 0.0 for lab in present}, cut_weight=0.0)
    window_low, window_high = band.window

    def band_only(x: float) -> float:
        return band_excess(band, x)

    def window_only(x: float) -> float:
        return max(window_low - x, 0.0) + max(x - window_high, 0.0)

    # first into the band with the fewest households moved, then into the window without leaving the band
    for excess, keep_band in ((band_only, False), (window_only, True)):
        _moves_towards(state, search, grid_set, h, excess, keep_band, band, 10 * len(blocks) + 10, accept, prefer)
    return state.labels


def _moves_towards(state: Labelling, search: LocalSearch, grid_set: set[int], h: np.ndarray, excess, keep_band: bool,
                   band: Band, rounds: int, accept=None, prefer=None) -> None:  # noqa: ANN001
    """Greedy block moves among ``grid_set`` that lower the summed ``excess`` (households → float):
    for the grid with the largest excess, the move that ends it with the fewest households, else
    the one reducing it most. ``keep_band``: no move takes a grid out of the band."""
    grid_hh = state.grid_households
    for _ in range(rounds):
        outside = sorted((lab for lab in grid_set if excess(grid_hh[lab]) > TOLERANCE),
                         key=lambda lab: (-excess(grid_hh[lab]), lab))
        if not outside:
            return
        done = False
        for lab in outside:
            best = None
            for b, s, d in search.candidates(lab):
                if s not in grid_set or d not in grid_set:
                    continue
                hb = h[b]
                if keep_band and (band_excess(band, grid_hh[s] - hb) > TOLERANCE
                                  or band_excess(band, grid_hh[d] + hb) > TOLERANCE):
                    continue
                before = excess(grid_hh[s]) + excess(grid_hh[d])
                after = excess(grid_hh[s] - hb) + excess(grid_hh[d] + hb)
                if after >= before - TOLERANCE:
                    continue
                key = (0 if after <= TOLERANCE else 1, 0, hb if after <= TOLERANCE else after, hb, b)
                if best is not None and key[0] > best[0][0]:
                    continue
                if accept is not None and not accept(b, s, d, state.labels):
                    continue
                if prefer is not None:
                    key = (key[0], int(prefer(b, s, d, state.labels)), *key[2:])
                if best is None or key < best[0]:
                    if state.stays_connected(b, s):
                        best = (key, b, s, d)
            if best is not None:
                _, b, s, d = best
                state.move(b, s, d)
                done = True
                break
        if not done:
            return
