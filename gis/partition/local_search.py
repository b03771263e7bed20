"""Local search over grid labels: boundary moves and ejection chains towards balanced grids."""
from __future__ import annotations

from gridpatrol.gis.partition.band import TOLERANCE
from gridpatrol.gis.partition.labelling import Labelling, path_to

BAND_PENALTY = 100.0  # a household outside the band costs 100× one inside it but off the mean
WINDOW_PENALTY = 10.0  # a household outside the window (inside the band) costs 10× one off the mean
BALANCED_SHARE = 0.02  # a grid within this share of the target from its mean needs no more moves
CHAIN_DEPTH = 8  # grids on an ejection chain towards the mean
BAND_CHAIN_DEPTH = 12  # grids on an ejection chain that only brings a grid into the band
BAND_CHAIN_GOALS = 40  # paths tried by such a chain, nearest first
DESCENT_ROUNDS = 200  # rounds of best single moves at most
MOVE_GAIN = 1e-6  # a chain is kept when the cost on its path falls by more than this


class LocalSearch:
    """Moves boundary blocks between neighbouring grids of a Labelling to lower the cost.

    Every grid has its own mean (`mean`, households) that balance is measured against; a move
    also pays `cut_weight` per unit of cut cost it adds.
    """

    def __init__(self, state: Labelling, mean: dict[int, float], *, cut_weight: float):
        self.state = state
        self.mean = mean
        self.cut_weight = cut_weight
        self.tolerance = BALANCED_SHARE * state.band.target
        self._band, self._window, self._caps = state.band, state.window, state.caps  # read by every cost

    def cost(self, lab: int, hh: float, cap_totals: list[float] | None = None) -> float:
        """Cost of grid `lab` holding `hh` households (and these cap totals; default its own)."""
        band = self._band
        window_low, window_high = self._window
        off_band = max(band.low - hh, 0.0) + max(hh - band.high, 0.0)
        off_window = max(window_low - hh, 0.0) + max(hh - window_high, 0.0)
        c = BAND_PENALTY * off_band * off_band + WINDOW_PENALTY * off_window * off_window + (hh - self.mean[lab]) ** 2
        for k, (_, cap) in enumerate(self._caps):
            x = cap_totals[k] if cap_totals is not None else self.state.cap_totals[k][lab]
            over = max(x / cap - 1.0, 0.0) * band.target
            c += BAND_PENALTY * over * over
        return c

    def delta(self, b: int, src: int, dst: int) -> float:
        """Change of the cost when block `b` moves from grid `src` to grid `dst`."""
        state = self.state
        hb = state.households[b]
        grid_hh = state.grid_households
        caps_src = [state.cap_totals[k][src] - v[b] for k, (v, _) in enumerate(state.caps)]
        caps_dst = [state.cap_totals[k][dst] + v[b] for k, (v, _) in enumerate(state.caps)]
        d_balance = (self.cost(src, grid_hh[src] - hb, caps_src) + self.cost(dst, grid_hh[dst] + hb, caps_dst)
                     - self.cost(src, grid_hh[src]) - self.cost(dst, grid_hh[dst]))
        w_src = w_dst = 0.0
        labels = state.labels
        for j, c in zip(state.graph.neighbours[b], state.graph.neighbour_costs[b]):
            if labels[j] == src:
                w_src += c
            elif labels[j] == dst:
                w_dst += c
        return d_balance + self.cut_weight * (w_src - w_dst)

    def candidates(self, lab: int) -> list[tuple[int, int, int]]:
        """Moves (block, from, to) touching grid `lab`: its boundary blocks out, neighbours' in."""
        state = self.state
        out = []
        labels, frozen, nb = state.labels, state.frozen, state.graph.neighbours
        for b in state.members[lab]:
            if frozen[b]:
                continue
            for j in nb[b]:
                other = labels[j]
                if other != lab and not frozen[j]:
                    out.append((b, lab, int(other)))
                    out.append((j, int(other), lab))
        return list(dict.fromkeys(out))

    def _off_mean(self, lab: int) -> bool:
        state = self.state
        return not state.in_window(lab) or abs(state.grid_households[lab] - self.mean[lab]) > 2 * self.tolerance

    def run(self, grids: list[int], *, polish_rounds: int = 2, chain_rounds: int = 6) -> None:
        """Single moves until none improves, ejection chains for what is left, then compactness rounds."""
        state = self.state
        self._descend(set(grids))
        for _ in range(chain_rounds):
            todo = [lab for lab in grids if state.members.get(lab) and self._off_mean(lab)]
            if not todo:
                break
            changed = set()
            for lab in sorted(todo, key=lambda x: (-self.cost(x, state.grid_households[x]), x)):
                if self._off_mean(lab) and self._chain(lab):
                    changed.add(lab)
            if not changed:
                break
            self._descend(changed)
        for _ in range(chain_rounds):  # last resort for grids still outside the hard band
            out = [lab for lab in grids if state.members.get(lab) and state.band_excess(lab) > TOLERANCE]
            fixed = [lab for lab in sorted(out, key=lambda x: (-state.band_excess(x), x))
                     if state.band_excess(lab) > TOLERANCE
                     and self._chain(lab, max_depth=BAND_CHAIN_DEPTH, band_only=True)]
            if not fixed:
                break
        self.polish(grids, polish_rounds)

    def _descend(self, dirty: set[int]) -> None:
        """Best single moves of the grids in `dirty` (and the grids they touch) until none helps."""
        state = self.state
        for _ in range(DESCENT_ROUNDS):
            if not dirty:
                break
            order = sorted(dirty, key=lambda lab: (-self.cost(lab, state.grid_households[lab]), lab))
            dirty = set()
            for lab in order:
                if lab not in state.members or not state.members[lab]:
                    continue
                if state.in_window(lab) and abs(state.grid_households[lab] - self.mean[lab]) < self.tolerance:
                    continue
                self._best_move(lab, dirty)

    def polish(self, grids: list[int], rounds: int) -> None:
        """Rounds of best moves over `grids` that keep every grid in the window that is in it."""
        state = self.state
        for _ in range(rounds):
            moved = False
            for lab in sorted(set(grids)):
                if lab in state.members and state.members[lab]:
                    moved |= self._best_move(lab, None, keep_in_window=True)
            if not moved:
                break

    def _best_move(self, lab: int, dirty: set[int] | None, keep_in_window: bool = False) -> bool:
        state = self.state
        cands = self.candidates(lab)
        if not cands:
            return False
        scored = sorted((self.delta(b, s, d), b, s, d) for b, s, d in cands)
        grid_hh = state.grid_households
        for gain, b, s, d in scored:
            if gain >= -TOLERANCE:
                return False
            if keep_in_window:
                hb = state.households[b]
                window_low, window_high = state.window
                ok_s = window_low <= grid_hh[s] - hb <= window_high or not state.in_window(s)
                ok_d = window_low <= grid_hh[d] + hb <= window_high or not state.in_window(d)
                if not (ok_s and ok_d):
                    continue
            if not state.stays_connected(b, s):
                continue
            state.move(b, s, d)
            if dirty is not None:
                dirty.update((s, d))
                dirty.update(int(state.labels[j]) for j in state.graph.neighbours[b])
            return True
        return False

    # -- ejection chains --------------------------------------------------------------------
    def _chain(self, start: int, max_depth: int = CHAIN_DEPTH, band_only: bool = False) -> bool:
        """Ejection chain: shift households along a path of grids from a surplus to a deficit.

        Kept only when the summed cost of the grids on the path falls. With `band_only` the aim
        is just to bring `start` into the hard band, every other grid on the path staying in it;
        then up to BAND_CHAIN_GOALS paths (nearest first) are tried.
        """
        state = self.state
        grid_hh, band = state.grid_households, state.band
        need = self.mean[start] - grid_hh[start]  # > 0: start must receive
        if band_only:
            need = (band.low - grid_hh[start]) if grid_hh[start] < band.low else (band.high - grid_hh[start])
            if abs(need) < TOLERANCE:
                return False

        def is_goal(other: int) -> bool:
            if band_only:  # any grid may end the chain: the path stops where the slack suffices
                return True
            slack = grid_hh[other] - self.mean[other]
            return (need > 0 and slack > self.tolerance) or (need < 0 and slack < -self.tolerance)

        parent: dict[int, int | None] = {start: None}
        goals: list[int] = []
        wanted = BAND_CHAIN_GOALS if band_only else 1
        for _, lab, other in state.grids_breadth_first(start, max_depth):
            parent[other] = lab
            if is_goal(other):
                goals.append(other)
                if len(goals) >= wanted:
                    break
        # each path runs start ... goal
        return any(self._try_path(path_to(parent, goal), need, band_only) for goal in goals)

    def _try_path(self, path: list[int], need: float, band_only: bool) -> bool:
        """Pass blocks along `path` (towards path[0] when need > 0); undo unless it pays."""
        state = self.state
        grid_hh, band = state.grid_households, state.band

        def score(p: int) -> float:
            return state.band_excess(p) if band_only else self.cost(p, grid_hh[p])

        goal = path[-1]
        before = sum(score(p) for p in path)
        done: list[tuple[int, int, int]] = []
        amount = abs(need) if band_only else min(abs(need), abs(grid_hh[goal] - self.mean[goal]))
        for i in range(1, len(path)):
            src, dst = (path[i], path[i - 1]) if need > 0 else (path[i - 1], path[i])
            b = self._pick_band(src, dst, amount, need > 0) if band_only else self._pick(src, dst, amount)
            if b is None:
                break
            state.move(b, src, dst)
            done.append((b, src, dst))
            if band_only:
                # what the grid just drained (pull) or filled (push) now lacks or holds too much
                amount = (band.low - grid_hh[src]) if need > 0 else (grid_hh[dst] - band.high)
                if amount <= TOLERANCE:
                    break
            else:
                amount = state.households[b] if amount > 0 else amount
        after = sum(score(p) for p in path)
        if done and after < before - MOVE_GAIN and (
                not band_only or all(state.band_excess(p) <= TOLERANCE for p in path[1:])):
            return True
        for b, src, dst in reversed(done):
            state.move(b, dst, src)
        return False

    def _pick(self, src: int, dst: int, amount: float) -> int | None:
        """The movable boundary block of `src` touching `dst` whose households best match `amount`."""
        state = self.state
        h, nb = state.households, state.graph.neighbours
        best = None
        members_dst = state.members[dst]
        for b in state.members[src]:
            if state.frozen[b] or not any(j in members_dst for j in nb[b]):
                continue
            key = (abs(h[b] - amount) + (amount - h[b] if h[b] < amount else 0.0), b)
            if best is None or key < best[0]:
                if state.stays_connected(b, src):
                    best = (key, b)
        return None if best is None else best[1]

    def _pick_band(self, src: int, dst: int, amount: float, pull: bool) -> int | None:
        """Block of `src` touching `dst` of at least `amount` households, preferring one after
        which the grid that gives (pull) or takes (push) stays in the band, then the smallest."""
        state = self.state
        h, nb, grid_hh, band = state.households, state.graph.neighbours, state.grid_households, state.band
        best = None
        members_dst = state.members[dst]
        for b in state.members[src]:
            hb = h[b]
            if state.frozen[b] or not any(j in members_dst for j in nb[b]):
                continue
            stays = (grid_hh[src] - hb >= band.low) if pull else (grid_hh[dst] + hb <= band.high)
            if not pull and grid_hh[src] - hb < band.low:
                continue  # pushing must not drop the giver below the band
            key = (0 if hb >= amount and stays else 1 if hb >= amount else 2,
                   hb if hb >= amount else -hb, b)
            if best is None or key < best[0]:
                if state.stays_connected(b, src):
                    best = (key, b)
        return None if best is None else best[1]
