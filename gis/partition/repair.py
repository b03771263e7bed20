"""Repair towards the window: re-split pairs, chains and neighbourhoods of grids until all fit."""
from __future__ import annotations

import numpy as np
from gridpatrol.gis.partition.band import TOLERANCE
from gridpatrol.gis.partition.exact import ExactLimits, exact_fix
from gridpatrol.gis.partition.labelling import Labelling, path_to
from gridpatrol.gis.partition.resplit import Splitter

CHAIN_DEPTHS = (2, 3, 5, 8, 12)  # longest grid paths tried, round by round
ROUNDS_PER_DEPTH = 3  # passes over the grids outside the window at one chain depth
PATHS_PER_FIX = 6  # grid paths tried to fix one grid
PATH_SLACK_CAP = 15.0  # households: more room inside the windows than this ranks no higher
MAX_PATH_GRIDS_SEEN = 80  # grids a path search visits at most
REDRAW_CYCLES = 6  # rounds of neighbourhood redraws while they still help
REDRAW_SIZES = (3, 4, 6, 8, 5, 7, 9, 12)  # grids in a redrawn neighbourhood, in the order tried
REDRAW_BUDGET = 60  # tree rounds for a redraw of up to 8 grids
LARGE_REDRAW_BUDGET = 150  # tree rounds for a redraw of 9 grids or more
LARGE_REDRAW_SIZE = 9  # from this many grids a redraw gets LARGE_REDRAW_BUDGET
LAST_CHAIN_DEPTH = 8  # chain depth tried after each round of redraws


class WindowRepair:
    """Re-splits grids of a Labelling so that their households fall in the window.

    A change is kept only when the summed window violation of the grids it touches falls.
    `xy`: block centres for sweep cuts (or None); `seed` makes the random cuts repeatable.
    """

    def __init__(self, state: Labelling, xy: np.ndarray | None, seed: int = 0):
        self.state = state
        self.seed = int(seed)
        self.splitter = Splitter(state, xy, seed)

    def _paths(self, start: int, max_depth: int, max_goals: int) -> list[list[int]]:
        """Grid paths from `start` whose summed households fit as many windows as grids on them.

        Breadth-first over neighbouring grids; the paths with the most slack inside their
        windows (up to PATH_SLACK_CAP) come first, then the shortest.
        """
        state = self.state
        grid_hh = state.grid_households
        window_low, window_high = state.window
        cap = min(PATH_SLACK_CAP, (window_high - window_low) / 2)
        parent: dict[int, int | None] = {start: None}
        acc = {start: grid_hh[start]}
        found: list[tuple[float, int, int]] = []
        level = 0
        # grids on a path of at most max_depth grids (the start's neighbours always), a level at a time
        # while fewer than MAX_PATH_GRIDS_SEEN have been seen
        for steps, lab, other in state.grids_breadth_first(start, max(1, max_depth - 1)):
            if steps > level:
                if len(parent) >= MAX_PATH_GRIDS_SEEN:
                    break
                level = steps
            parent[other] = lab
            acc[other] = acc[lab] + grid_hh[other]
            length = steps + 1
            slack = min(acc[other] - length * window_low, length * window_high - acc[other])
            if slack >= -TOLERANCE:
                found.append((-min(slack, cap), length, other))
        found.sort()
        return [path_to(parent, other) for _, _, other in found[:max_goals]]

    def _run_path(self, path: list[int]) -> bool:
        """Re-split each pair along `path` so every grid but the last gets a fitting share."""
        state = self.state
        grid_hh = state.grid_households
        window_low, window_high = state.window
        before = sum(state.window_violation(p) for p in path)
        snap = state.snapshot(path)
        ok = True
        for i in range(len(path) - 1):
            a, b = path[i], path[i + 1]
            rest = sum(grid_hh[p] for p in path[i:])
            n_rest = len(path) - i
            # a's share must leave the rest of the path a sum that still fits its windows
            lo = max(window_low, rest - (n_rest - 1) * window_high)
            hi = min(window_high, rest - (n_rest - 1) * window_low)
            if lo > hi + TOLERANCE:
                ok = False
                break
            aim = min(max(rest / n_rest, lo), hi)
            nxt = path[i + 2] if i + 2 < len(path) else None
            if not self.splitter.resplit(a, b, lo, hi, aim, rest_touch=nxt):
                ok = False
                break
        after = sum(state.window_violation(p) for p in path)
        if ok and after < before - TOLERANCE:
            return True
        state.restore(snap)
        return False

    def fix(self, lab: int, max_depth: int) -> bool:
        """Bring grid `lab` into the window through a pair re-split or a chain; True if improved."""
        if self.state.window_violation(lab) <= TOLERANCE:
            return False
        for path in self._paths(lab, max_depth, PATHS_PER_FIX):
            if self._run_path(path):
                return True
        return False

    def redraw(self, start: int, size: int, budget: int = REDRAW_BUDGET) -> bool:
        """Redraw grid `start` and `size` - 1 grids around it so that all are in the window.

        The neighbourhood grows one touching grid at a time, each time taking the grid that
        leaves the summed households most room inside the windows of the grids taken.
        """
        state = self.state
        grid_hh = state.grid_households
        window_low, window_high = state.window
        area = [start]
        total = grid_hh[start]
        around: set[int] = set(state.neighbours(start))
        while len(area) < size and around:
            m = len(area) + 1
            pick = max(sorted(around), key=lambda x: min(total + grid_hh[x] - m * window_low,
                                                         m * window_high - total - grid_hh[x]))
            area.append(pick)
            total += grid_hh[pick]
            around |= state.neighbours(pick)
            around -= set(area)
        m = len(area)
        total = sum(grid_hh[x] for x in area)
        if m < 2 or not (m * window_low <= total <= m * window_high):
            return False
        union = set().union(*(state.members[x] for x in area))
        parts = self.splitter.split_into(union, m, [budget])
        if parts is None:
            return False
        before = sum(state.window_violation(x) for x in area)
        snap = state.snapshot(area)
        # give each part the label of the grid it overlaps most, so unchanged grids keep theirs
        free = list(area)
        for part in sorted(parts, key=lambda p_: -len(p_)):
            lab = max(free, key=lambda x: (len(snap[x] & part), -x))
            free.remove(lab)
            state.assign(part, lab)
        if sum(state.window_violation(x) for x in area) < before - TOLERANCE:
            return True
        state.restore(snap)
        return False

    def run(self, grids: list[int], exact: ExactLimits) -> None:
        """Chains of growing depth, redraws of neighbourhoods of the grids still outside, then
        exact re-splits (within `exact`) of what is left."""
        state = self.state

        def outside() -> list[int]:
            return sorted((lab for lab in grids if state.members.get(lab) and state.window_violation(lab) > TOLERANCE),
                          key=lambda x: (-state.window_violation(x), x))

        for depth in CHAIN_DEPTHS:
            for _ in range(ROUNDS_PER_DEPTH):
                todo = outside()
                if not todo:
                    return
                fixed = sum(1 for lab in todo if state.window_violation(lab) > TOLERANCE and self.fix(lab, depth))
                if not fixed:
                    break
        for _cycle in range(REDRAW_CYCLES):
            before = sum(state.window_violation(x) for x in outside())
            for size in REDRAW_SIZES:
                todo = outside()
                if not todo:
                    return
                for lab in todo:
                    if state.window_violation(lab) > TOLERANCE:
                        budget = REDRAW_BUDGET if size < LARGE_REDRAW_SIZE else LARGE_REDRAW_BUDGET
                        self.redraw(lab, size, budget=budget)
            for lab in outside():
                if state.window_violation(lab) > TOLERANCE:
                    self.fix(lab, LAST_CHAIN_DEPTH)
            if sum(state.window_violation(x) for x in outside()) >= before - TOLERANCE:
                break
        for lab in outside():  # what random cuts could not fix: solve the neighbourhood exactly
            if state.members.get(lab) and state.window_violation(lab) > TOLERANCE:
                exact_fix(state, lab, exact, self.seed)
