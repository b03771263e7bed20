"""Shortest paths on a StreetNetwork (directed for driving), as node lists and edge traversals."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gridpatrol.gis.errors import GridPatrolError
from gridpatrol.gis.routing.network import Traversal
from gridpatrol.gis.streets import StreetNetwork
from scipy.sparse.csgraph import dijkstra


def path_nodes(pred_row: np.ndarray, src: int, dst: int) -> list[int]:
    """Nodes of the shortest path from ``src`` to ``dst`` along a Dijkstra predecessor row."""
    nodes = [dst]
    while nodes[-1] != src:
        p = int(pred_row[nodes[-1]])
        if p < 0:
            raise GridPatrolError(f"no street path from node {src} to node {dst}")
        nodes.append(p)
    return nodes[::-1]


class Router:
    """Shortest paths on one StreetNetwork (directed for driving), turned into edge traversals."""

    def __init__(self, net: StreetNetwork, directed: bool):
        """Router over ``net``; ``directed`` keeps one-way streets one way."""
        self.net = net
        self.directed = directed
        self.graph, self._arc_edge = net.csgraph_arcs(directed)
        n = net.n_nodes
        # Arcs are stored sorted by (tail, head): a pair's key finds its (shortest) edge by bisection.
        self._keys = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.graph.indptr)) * n + self.graph.indices

    def dijkstra(self, sources: Sequence[int], *, reverse: bool = False, min_only: bool = False,
                 limit: float = np.inf) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """scipy's Dijkstra from ``sources`` (to them with ``reverse``): distances (m) and predecessors."""
        g = self.graph.T.tocsr() if reverse else self.graph
        return dijkstra(g, directed=True, indices=np.asarray(sources, dtype=np.int64), return_predecessors=True,
                        min_only=min_only, limit=limit)

    def traversals(self, nodes: list[int]) -> list[Traversal]:
        """The passes (not required) along a node path, over the shortest street between each pair."""
        if len(nodes) < 2:
            return []
        nd = np.asarray(nodes, dtype=np.int64)
        a, b = nd[:-1], nd[1:]
        e = self._arc_edge[np.searchsorted(self._keys, a * self.net.n_nodes + b)]
        fwd = (self.net.edge_u[e] == a) & (self.net.edge_v[e] == b)
        return [Traversal(x, f, False) for x, f in zip(e.tolist(), fwd.tolist())]
