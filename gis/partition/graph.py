"""Block adjacency as arrays and neighbour lists, and the per-block values the partition reads."""
from __future__ import annotations

import math
from dataclasses import dataclass

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely
from gridpatrol.gis.errors import InputError
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

MIN_CUT_COST = 1e-3  # an edge's cut cost is at least this, so every cut costs something
# a component of this many blocks gets the cheaper treatment: one METIS cut, fewer attempts
LARGE_GRAPH_BLOCKS = 20_000


@dataclass
class BlockGraph:
    """Block adjacency over positions 0..n-1: directed edge arrays (both directions) and sorted
    neighbour lists with the cut cost of each edge."""

    n: int
    neighbours: list[list[int]]
    neighbour_costs: list[list[float]]
    src: np.ndarray
    dst: np.ndarray
    cost: np.ndarray


def block_graph(blocks: gpd.GeoDataFrame, adjacency: nx.Graph) -> BlockGraph:
    """The adjacency among the rows of `blocks` (edges to other blocks are left out)."""
    if "block_id" not in blocks:
        raise InputError("the blocks have no block_id column", hint="build them with gis.blocks.build_blocks")
    ids = blocks["block_id"].to_numpy()
    pos = {int(b): i for i, b in enumerate(ids)}
    if len(pos) != len(ids):
        raise InputError("block_id values are not unique", hint="block ids must be unique within a plan")
    src, dst, cost = [], [], []
    for u, v, data in adjacency.edges(data=True):
        i, j = pos.get(int(u)), pos.get(int(v))
        if i is None or j is None or i == j:
            continue  # an edge to a block outside this set (e.g. the whole plan's graph)
        c = float(data.get("weight", data.get("length_m", 1.0)))
        src += [i, j]
        dst += [j, i]
        cost += [c, c]
    return graph_from_arrays(len(ids), np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64),
                             np.maximum(np.asarray(cost, dtype=float), MIN_CUT_COST))


def graph_from_arrays(n: int, src: np.ndarray, dst: np.ndarray, cost: np.ndarray) -> BlockGraph:
    """BlockGraph from directed edge arrays (both directions present)."""
    order = np.lexsort((dst, src))
    src, dst, cost = src[order], dst[order], cost[order]
    neighbours: list[list[int]] = [[] for _ in range(n)]
    costs: list[list[float]] = [[] for _ in range(n)]
    for s, d, c in zip(src.tolist(), dst.tolist(), cost.tolist()):
        neighbours[s].append(d)
        costs[s].append(c)
    return BlockGraph(n, neighbours, costs, src, dst, cost)


def subgraph(graph: BlockGraph, members: np.ndarray) -> BlockGraph:
    """The induced subgraph on `members`, renumbered 0..len(members)-1."""
    local = np.full(graph.n, -1, dtype=np.int64)
    local[members] = np.arange(len(members))
    keep = (local[graph.src] >= 0) & (local[graph.dst] >= 0)
    return graph_from_arrays(len(members), local[graph.src[keep]], local[graph.dst[keep]], graph.cost[keep])


def components(graph: BlockGraph, keep_edge: np.ndarray) -> np.ndarray:
    """Connected component id per block of the graph with only the edges where `keep_edge` holds."""
    m = coo_matrix((np.ones(keep_edge.sum()), (graph.src[keep_edge], graph.dst[keep_edge])),
                   shape=(graph.n, graph.n))
    return connected_components(m, directed=False)[1]


def same_grid_components(graph: BlockGraph, labels: np.ndarray) -> np.ndarray:
    """Connected component id per block of the graph keeping only edges inside one grid."""
    return components(graph, labels[graph.src] == labels[graph.dst])


def grid_piece_counts(graph: BlockGraph, labels: np.ndarray) -> np.ndarray:
    """Number of connected pieces of every grid label (index = label); absent labels count 0."""
    comp = same_grid_components(graph, labels)
    pieces = np.zeros(labels.max() + 1 if len(labels) else 0, dtype=np.int64)
    uniq = np.unique(np.column_stack([labels, comp]), axis=0)
    np.add.at(pieces, uniq[:, 0], 1)
    return pieces


def grid_components(labels: np.ndarray, blocks: gpd.GeoDataFrame, adjacency: nx.Graph) -> np.ndarray:
    """Number of connected pieces of every grid label (index = label) in the block adjacency graph.

    A contiguous plan has all ones; labels that do not occur count 0.
    """
    return grid_piece_counts(block_graph(blocks, adjacency), np.asarray(labels))


def block_households(blocks: gpd.GeoDataFrame) -> np.ndarray:
    """The blocks' households as floats; InputError when missing, NaN or negative."""
    if "households" not in blocks:
        raise InputError("the blocks have no households column", hint="build them with gis.blocks.build_blocks")
    h = blocks["households"].to_numpy(dtype=float)
    if np.isnan(h).any() or (h < 0).any():
        bad = blocks["block_id"].to_numpy()[np.isnan(h) | (h < 0)][0]
        raise InputError(f"block {bad} has households {h[np.isnan(h) | (h < 0)][0]}", hint="households must be >= 0")
    return h


def block_caps(blocks: gpd.GeoDataFrame, max_street_m: float | None, max_area_m2: float | None
               ) -> list[tuple[np.ndarray, float]]:
    """(per-block values, cap) for each cap given: street_m (metres) and area_m2."""
    out = []
    for col, cap in (("street_m", max_street_m), ("area_m2", max_area_m2)):
        if cap is None:
            continue
        if cap <= 0:
            raise InputError(f"max {col} must be positive, got {cap}")
        if col not in blocks:
            raise InputError(f"a cap on {col} was given but the blocks have no {col} column")
        out.append((blocks[col].to_numpy(dtype=float), float(cap)))
    return out


def block_xy(blocks: gpd.GeoDataFrame) -> np.ndarray | None:
    """Block centroids as planar x, y (longitude scaled by cos(latitude)): for sweep directions only."""
    geoms = blocks.geometry.to_numpy()
    if not len(geoms):
        return None
    c = shapely.get_coordinates(shapely.centroid(geoms))
    if len(c) != len(geoms):
        return None
    if blocks.crs is not None and blocks.crs.is_geographic:
        c = c * np.array([math.cos(math.radians(float(np.mean(c[:, 1])))), 1.0])
    return c
