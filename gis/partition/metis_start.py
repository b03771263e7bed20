"""The starting cut: METIS k-way partition, then every detached piece of a grid reattached."""
from __future__ import annotations

import numpy as np
import pymetis
from gridpatrol.gis.partition.graph import (
    LARGE_GRAPH_BLOCKS,
    BlockGraph,
    same_grid_components,
)

HOUSEHOLD_SCALE = 100  # METIS wants integer weights: households in hundredths
CUT_COST_SCALE = 10  # and cut costs in tenths
METIS_IMBALANCE = 20  # METIS ufactor: parts may be 2.0 % over the mean weight
REATTACH_ROUNDS = 50  # rounds of handing detached pieces to a neighbour


def metis_partition(graph: BlockGraph, households: np.ndarray, k: int, seed: int) -> np.ndarray:
    """METIS k-way partition (labels 0..k-1) of a connected graph, balanced on households."""
    xadj = [0]
    adjncy: list[int] = []
    ew: list[int] = []
    for b in range(graph.n):
        adjncy.extend(graph.neighbours[b])
        ew.extend(max(1, int(round(c * CUT_COST_SCALE))) for c in graph.neighbour_costs[b])
        xadj.append(len(adjncy))
    vw = (np.round(households * HOUSEHOLD_SCALE).astype(np.int64) + 1).tolist()
    if hasattr(pymetis, "CSRAdjacency"):  # pymetis >= 2025.2; the xadj/adjncy keywords are deprecated
        csr = {"adjacency": pymetis.CSRAdjacency(xadj, adjncy)}
    else:
        csr = {"xadj": xadj, "adjncy": adjncy}
    # two tries at the cut pay off on small graphs; on large ones the repair does that work
    ncuts = 2 if graph.n < LARGE_GRAPH_BLOCKS else 1
    opts = pymetis.Options(seed=int(seed), ufactor=METIS_IMBALANCE, contig=1, ncuts=ncuts)
    try:
        _, parts = pymetis.part_graph(k, **csr, vweights=vw, eweights=ew, options=opts)
    except Exception:  # METIS refuses contig on some graphs; contiguity is repaired afterwards anyway
        opts = pymetis.Options(seed=int(seed), ufactor=METIS_IMBALANCE, ncuts=ncuts)
        _, parts = pymetis.part_graph(k, **csr, vweights=vw, eweights=ew, options=opts)
    return np.asarray(parts, dtype=np.int64)


def reattach_pieces(graph: BlockGraph, labels: np.ndarray, households: np.ndarray, frozen: np.ndarray) -> np.ndarray:
    """Give every detached piece of a grid to the neighbouring grid it shares most boundary with.

    Changes `labels` in place and returns it; a piece with no neighbour stays where it is.
    """
    for _ in range(REATTACH_ROUNDS):
        comp = same_grid_components(graph, labels)
        # the main piece of each grid: most households, then most blocks, then lowest component id
        hh_c = np.bincount(comp, weights=households, minlength=comp.max() + 1)
        n_c = np.bincount(comp, minlength=comp.max() + 1)
        comp_label = np.zeros(comp.max() + 1, dtype=np.int64)
        comp_label[comp] = labels
        order = np.lexsort((np.arange(len(hh_c)), -n_c, -hh_c, comp_label))
        main = np.zeros(len(hh_c), dtype=bool)
        first = np.r_[True, comp_label[order][1:] != comp_label[order][:-1]]
        main[order[first]] = True
        stray = ~main[comp] & ~frozen
        if not stray.any():
            return labels
        # boundary weight from each stray component to each foreign grid
        s_mask = stray[graph.src] & (labels[graph.src] != labels[graph.dst])
        if not s_mask.any():
            break  # an island with no neighbour at all: it stays its own grid
        c_src = comp[graph.src[s_mask]]
        tgt = labels[graph.dst[s_mask]]
        wts = graph.cost[s_mask]
        key = c_src * (labels.max() + 1) + tgt
        uk, inv = np.unique(key, return_inverse=True)
        tot = np.bincount(inv, weights=wts)
        cc, tl = uk // (labels.max() + 1), uk % (labels.max() + 1)
        best = {}
        for c, t, _ in sorted(zip(cc.tolist(), tl.tolist(), tot.tolist()), key=lambda r: (r[0], -r[2], r[1])):
            best.setdefault(c, t)
        changed = False
        for i in np.flatnonzero(stray):
            t = best.get(int(comp[i]))
            if t is not None:
                labels[i] = t
                changed = True
        if not changed:
            break
    return labels
