"""A closed coverage route and its figures (length, required length, time, turns, U-turns)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gridpatrol.gis.routing.circuit import turn_bounds
from gridpatrol.gis.routing.network import (
    DRIVE_SPEED_MPS,
    WALK_SPEED_MPS,
    Traversal,
    count_turns,
    dead_ends,
    route_line,
    uturn_nodes,
)
from gridpatrol.gis.streets import StreetNetwork
from shapely.geometry import LineString


@dataclass
class CoverageRoute:
    """A closed route from the start node: ordered traversals plus its figures (metres, seconds)."""

    mode: str
    start_node: int
    traversals: list[Traversal]
    length_m: float
    required_m: float
    lower_bound_m: float
    duration_s: float
    n_turns: int
    n_uturns: int
    geometry: LineString  # metric CRS of the network
    worker_index: int = 0
    shift: int = 1  # 1…n when the grid's coverage is cut into shifts
    n_uturns_dead_end: int = 0  # of n_uturns, those at a dead end of the network
    uturn_bound: int = 0  # fewest U-turns of any closed walk from the start over the same passes

    @property
    def uturns_per_km(self) -> float:
        return self.n_uturns / (self.length_m / 1000) if self.length_m > 0 else 0.0

    @property
    def deadhead_m(self) -> float:
        """Metres not on a first pass over a required street."""
        return self.length_m - self.required_m

    @property
    def gap(self) -> float:
        """(length − lower bound) / lower bound; 0 means proven optimal."""
        return (self.length_m - self.lower_bound_m) / self.lower_bound_m if self.lower_bound_m > 0 else 0.0


def _mark_required(net: StreetNetwork, traversals: list[Traversal], required: set[int]) -> list[Traversal]:
    """Flag the first pass over each required edge (the rest of the length is deadhead)."""
    seen: set[int] = set()
    out = []
    for t in traversals:
        first = t.edge in required and t.edge not in seen
        if first:
            seen.add(t.edge)
        out.append(Traversal(t.edge, t.forward, first))
    return out


def make_route(net: StreetNetwork, mode: str, start: int, trav: list[Traversal], required: set[int],
               lower_bound_m: float, worker: int = 0, uturn_bound: int | None = None) -> CoverageRoute:
    """The route of passes ``trav`` from ``start`` with its figures; the first pass over each ``required`` edge is required.

    ``uturn_bound``: the fewest U-turns over the same passes when known (else computed here)."""
    trav = _mark_required(net, trav, required)
    e = np.fromiter((t.edge for t in trav), dtype=np.int64, count=len(trav))
    r = np.fromiter((t.required for t in trav), dtype=bool, count=len(trav))
    length = float(net.edge_length_m[e].sum())
    req = float(net.edge_length_m[e[r]].sum())
    turns, uturns = count_turns(net, trav)
    speed = WALK_SPEED_MPS if mode == "walk" else DRIVE_SPEED_MPS
    at_dead_end = int(dead_ends(net)[uturn_nodes(net, trav)].sum())
    if uturn_bound is None:
        uturn_bound = turn_bounds(net, trav, start, mode == "drive").uturns
    return CoverageRoute(mode, start, trav, length, req, lower_bound_m, length / speed, turns, uturns,
                         route_line(net, trav), worker, n_uturns_dead_end=at_dead_end, uturn_bound=uturn_bound)
