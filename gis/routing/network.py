"""Routes as passes over a StreetNetwork: traversals, turns, pieces and the route line."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gridpatrol.gis.streets import StreetNetwork
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from shapely.geometry import LineString

TURN_DEG = 30.0  # a change of heading beyond this is a turn
UTURN_DEG = 150.0  # … and beyond this a U-turn
TURN_COST_U = 2  # in the turn cost (turns + 2 × U-turns), a U-turn counts as two turns
WALK_SPEED_MPS = 1.25  # 4.5 km/h, a patrol pace with looking around
DRIVE_SPEED_MPS = 6.9  # 25 km/h, a patrol car in town


@dataclass
class Traversal:
    """One pass along street edge ``edge`` (index in the StreetNetwork), forwards or backwards."""

    edge: int
    forward: bool
    required: bool  # the first pass over a street of the grid (otherwise deadhead/repeat)


def turn_angle(b_in: float, b_out: float) -> float:
    """Signed heading change in degrees (−180, 180]: positive is a right turn."""
    d = (b_out - b_in + 180.0) % 360.0 - 180.0
    return 180.0 if d == -180.0 else d


def turn_dev(lb_a: np.ndarray | float, lb_b: np.ndarray | float) -> np.ndarray | float:
    """Heading change (0–180°) arriving along end a (``lb_a``: heading leaving the node that way)
    and leaving along end b. Symmetric in a and b."""
    return np.abs((np.asarray(lb_b) - lb_a) % 360.0 - 180.0)


def turn_cost(dev: np.ndarray) -> np.ndarray:
    """Whole turns of a heading change (as count_turns counts them: 0 straight, 1 turn, 2 U-turn)."""
    return np.where(dev < TURN_DEG, 0, np.where(dev < UTURN_DEG, 1, TURN_COST_U))


def _heading_changes(net: StreetNetwork, traversals: list[Traversal]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(edges, forward flags, heading change in degrees 0–180 between each traversal and the next)
    of a sequence of at least two traversals."""
    out_b, in_b = net.bearings()
    e = np.array([t.edge for t in traversals])
    f = np.array([t.forward for t in traversals])
    dep = np.where(f, out_b[e], (in_b[e] + 180) % 360)
    arr = np.where(f, in_b[e], (out_b[e] + 180) % 360)
    return e, f, np.abs((dep[1:] - arr[:-1] + 180) % 360 - 180)


def count_turns(net: StreetNetwork, traversals: list[Traversal]) -> tuple[int, int]:
    """(turns, U-turns) along a sequence of traversals (heading changes over 30° / 150°)."""
    if len(traversals) < 2:
        return 0, 0
    _e, _f, d = _heading_changes(net, traversals)
    # Turning on the spot at a dead end on a self-loop or zero-length edge is not a turn.
    return int(np.sum((d >= TURN_DEG) & (d < UTURN_DEG))), int(np.sum(d >= UTURN_DEG))


def uturn_nodes(net: StreetNetwork, traversals: list[Traversal]) -> np.ndarray:
    """The node of each U-turn (heading change of 150° or more) along a sequence of traversals."""
    if len(traversals) < 2:
        return np.zeros(0, dtype=np.int64)
    e, f, d = _heading_changes(net, traversals)
    at = np.where(f[:-1], net.edge_v[e[:-1]], net.edge_u[e[:-1]])
    return at[d >= UTURN_DEG]


def dead_ends(net: StreetNetwork) -> np.ndarray:
    """Whether each node is a dead end: one street of the network ends there and none passes on."""
    deg = np.bincount(np.concatenate([net.edge_u, net.edge_v]), minlength=net.n_nodes)
    return deg == 1


def route_line(net: StreetNetwork, traversals: list[Traversal]) -> LineString:
    """The route as one LineString in the network's metric CRS."""
    if not traversals:
        return LineString()
    e = np.fromiter((t.edge for t in traversals), dtype=np.int64, count=len(traversals))
    f = np.fromiter((t.forward for t in traversals), dtype=bool, count=len(traversals))
    xy = net.path_coords(e, f)
    keep = np.ones(len(xy), dtype=bool)
    keep[1:] = np.any(np.abs(np.diff(xy, axis=0)) > 1e-9, axis=1)
    xy = xy[keep]
    if len(xy) < 2:
        xy = np.vstack([xy, xy])
    return LineString(xy)


def components(n_nodes: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Label of each node's piece of the graph of edges (u, v); −1 for nodes on no edge."""
    labels = np.full(n_nodes, -1, dtype=np.int64)
    if len(u) == 0:
        return labels
    if len(u) <= 64:
        # A few edges: union–find in plain Python beats building a sparse matrix.
        parent: dict[int, int] = {}

        def find(a: int) -> int:
            root = a
            while parent.get(root, root) != root:
                root = parent[root]
            while a != root:
                parent[a], a = root, parent.get(a, a)
            return root

        ul, vl = u.tolist(), v.tolist()
        for a, b in zip(ul, vl):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[ra] = rb
        nodes = set(ul) | set(vl)
        roots = {a: find(a) for a in nodes}
        idx = np.fromiter(roots.keys(), dtype=np.int64, count=len(roots))
        labels[idx] = np.fromiter(roots.values(), dtype=np.int64, count=len(roots))
        return labels
    nodes, inv = np.unique(np.concatenate([u, v]), return_inverse=True)
    m, k = len(u), len(nodes)
    g = sparse.csr_matrix((np.ones(m), (inv[:m], inv[m:])), shape=(k, k))
    labels[nodes] = connected_components(g, directed=False)[1]
    return labels


def odd_nodes(n_nodes: int, ends: np.ndarray) -> np.ndarray:
    """Nodes (of ``n_nodes``) that occur an odd number of times in ``ends``."""
    deg = np.bincount(ends.ravel(), minlength=n_nodes)
    return np.flatnonzero(deg % 2 == 1)
