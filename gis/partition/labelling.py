"""Grid labels of blocks with their members and totals kept current as blocks move."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from gridpatrol.gis.partition.band import Band, band_excess, window_violation
from gridpatrol.gis.partition.graph import BlockGraph


class Labelling:
    """Which grid every block is in, each grid's blocks, households and cap totals.

    `labels` is changed in place. Blocks in `frozen` are never moved by the searches.
    `caps`: (per-block values, cap) for the street/area caps.
    """

    def __init__(self, graph: BlockGraph, households: np.ndarray, labels: np.ndarray, band: Band,
                 frozen: np.ndarray, caps: list[tuple[np.ndarray, float]] | None = None):
        self.graph, self.households, self.labels, self.band, self.frozen = graph, households, labels, band, frozen
        self.window = band.window
        self.caps = caps or []
        self.members: dict[int, set[int]] = {}
        for i, lab in enumerate(labels.tolist()):
            self.members.setdefault(lab, set()).add(i)
        self.grid_households = {lab: float(households[list(m)].sum()) for lab, m in self.members.items()}
        self.cap_totals = [{lab: float(v[list(m)].sum()) for lab, m in self.members.items()} for v, _ in self.caps]

    # -- measures ---------------------------------------------------------------------------
    def in_window(self, lab: int) -> bool:
        """Grid `lab` has households inside the window and is under every cap."""
        hh = self.grid_households[lab]
        window_low, window_high = self.window
        if not (window_low <= hh <= window_high):
            return False
        return all(self.cap_totals[k][lab] <= cap for k, (_, cap) in enumerate(self.caps))

    def band_excess(self, lab: int) -> float:
        """Households of grid `lab` outside the hard band."""
        return band_excess(self.band, self.grid_households[lab])

    def window_violation(self, lab: int) -> float:
        """``band.window_violation`` of grid `lab`, caps included."""
        shares = [self.cap_totals[k][lab] / cap for k, (_, cap) in enumerate(self.caps)] if self.caps else None
        return window_violation(self.band, self.grid_households[lab], shares)

    # -- changes ----------------------------------------------------------------------------
    def move(self, b: int, src: int, dst: int) -> None:
        """Block `b` leaves grid `src` for grid `dst`."""
        self.members[src].discard(b)
        self.members[dst].add(b)
        self.grid_households[src] -= self.households[b]
        self.grid_households[dst] += self.households[b]
        for k, (v, _) in enumerate(self.caps):
            self.cap_totals[k][src] -= v[b]
            self.cap_totals[k][dst] += v[b]
        self.labels[b] = dst

    def assign(self, blocks, lab: int) -> None:
        """Every block of `blocks` joins grid `lab`."""
        for b in blocks:
            old = int(self.labels[b])
            if old != lab:
                self.move(b, old, lab)

    def snapshot(self, labs) -> dict[int, set[int]]:
        """The blocks of the grids `labs`, for ``restore``."""
        return {lab: set(self.members[lab]) for lab in labs}

    def restore(self, snap: dict[int, set[int]]) -> None:
        """Put the blocks of a ``snapshot`` back into their grids."""
        for lab, mem in snap.items():
            self.assign(mem, lab)

    # -- adjacency and connectivity ---------------------------------------------------------
    def neighbours(self, lab: int) -> set[int]:
        """Grids touching grid `lab` through blocks that may move."""
        labels, frozen = self.labels, self.frozen
        out = set()
        for b in self.members[lab]:
            for j in self.graph.neighbours[b]:
                if labels[j] != lab and not frozen[j]:
                    out.add(int(labels[j]))
        return out

    def grids_breadth_first(self, start: int, max_depth: int) -> Iterator[tuple[int, int, int]]:
        """(depth, parent grid, grid) for each grid reached from grid `start` over neighbouring grids,
        at most `max_depth` steps away, nearest first (neighbours in ascending order)."""
        seen = {start}
        frontier = [start]
        for depth in range(1, max_depth + 1):
            nxt = []
            for lab in frontier:
                for other in sorted(self.neighbours(lab)):
                    if other not in seen:
                        seen.add(other)
                        nxt.append(other)
                        yield depth, lab, other
            if not nxt:
                return
            frontier = nxt

    def touches(self, part: set[int], lab: int) -> bool:
        """Some block of `part` borders a block of grid `lab`."""
        labels, nb = self.labels, self.graph.neighbours
        return any(labels[j] == lab for b in part for j in nb[b])

    def _reach(self, start: int, part: set[int], seen: set[int]) -> set[int]:
        """The blocks of `part` reached from `start` inside it, skipping (and adding to) `seen`."""
        nb = self.graph.neighbours
        reached = {start}
        seen.add(start)
        todo = [start]
        while todo:
            x = todo.pop()
            for y in nb[x]:
                if y in part and y not in seen:
                    seen.add(y)
                    reached.add(y)
                    todo.append(y)
        return reached

    def pieces(self, part: set[int]) -> list[set[int]]:
        """The connected pieces of the block set `part`."""
        out: list[set[int]] = []
        seen: set[int] = set()
        for start in part:
            if start not in seen:
                out.append(self._reach(start, part, seen))
        return out

    def connected(self, part: set[int]) -> bool:
        """`part` is non-empty and connected."""
        return bool(part) and len(self._reach(next(iter(part)), part, set())) == len(part)

    def stays_connected(self, b: int, lab: int) -> bool:
        """Grid `lab` stays non-empty and connected without block `b`."""
        mem = self.members[lab]
        if len(mem) <= 1:
            return False
        inside = [j for j in self.graph.neighbours[b] if j in mem]
        if len(inside) == 1:
            return True
        if not inside:
            return False
        seen = {b}
        self._reach(inside[0], mem, seen)
        return len(seen) == len(mem)


def path_to(parent: dict[int, int | None], goal: int) -> list[int]:
    """The grids from the root of a breadth-first `parent` map (root: None) to `goal`."""
    path = [goal]
    while parent[path[-1]] is not None:
        path.append(parent[path[-1]])
    return path[::-1]
