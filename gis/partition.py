"""Balanced, contiguous grids from street blocks: METIS partition plus local-search repair."""
from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass

import geopandas as gpd
import networkx as nx
import numpy as np
import pymetis
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gis.errors import InputError

__all__ = ["Band", "forced_deviation", "partition_blocks", "rebalance", "split_grid", "grid_components"]

_HH_SCALE = 100  # METIS wants integer weights: households in hundredths
_BAND_PENALTY = 100.0  # a household outside the band costs 100× one inside it but off the mean
_WINDOW_PENALTY = 10.0
# Exact neighbourhood re-splits (``_Window.exact``): small and cheap in every attempt, larger
# once on the best attempt when all of them left grids outside the window. `work` is CP-SAT's
# deterministic time limit per neighbourhood.
_EXACT_SMALL = {"max_grids": 8, "max_blocks": 300, "work": 0.5, "tries": 1}
_EXACT_LARGE = {"max_grids": 16, "max_blocks": 600, "work": 2.0, "tries": 3}


@dataclass(frozen=True)
class Band:
    """Household balance rule: target, hard band [min, max], and the window the repair aims for.

    The window is the band narrowed to ±10 % of the target (300–330 for the defaults 300 /
    300–500): "worst deviation ≤ 10 % of target" and "in band" both hold inside it.
    """

    target: float = 300.0
    low: float = 300.0
    high: float = 500.0

    @property
    def window(self) -> tuple[float, float]:
        lo = max(self.low, 0.9 * self.target)
        hi = min(self.high, 1.1 * self.target)
        return (lo, hi) if lo <= hi else (self.low, self.high)


@dataclass
class _Graph:
    """Block adjacency in positional form (0..n-1) with cut costs, for the Python-level search."""

    n: int
    nb: list[list[int]]
    nbw: list[list[float]]
    src: np.ndarray
    dst: np.ndarray
    w: np.ndarray


def _graph(blocks: gpd.GeoDataFrame, adjacency: nx.Graph) -> _Graph:
    if "block_id" not in blocks:
        raise InputError("the blocks have no block_id column", hint="build them with gis.blocks.build_blocks")
    ids = blocks["block_id"].to_numpy()
    pos = {int(b): i for i, b in enumerate(ids)}
    if len(pos) != len(ids):
        raise InputError("block_id values are not unique", hint="block ids must be unique within a plan")
    src, dst, w = [], [], []
    for u, v, data in adjacency.edges(data=True):
        i, j = pos.get(int(u)), pos.get(int(v))
        if i is None or j is None or i == j:
            continue  # an edge to a block outside this set (e.g. the whole plan's graph)
        cost = float(data.get("weight", data.get("length_m", 1.0)))
        src += [i, j]
        dst += [j, i]
        w += [cost, cost]
    return _from_arrays(len(ids), np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64),
                        np.maximum(np.asarray(w, dtype=float), 1e-3))


def _from_arrays(n: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> _Graph:
    """_Graph from directed edge arrays (both directions present), neighbours sorted."""
    order = np.lexsort((dst, src))
    src, dst, w = src[order], dst[order], w[order]
    nb: list[list[int]] = [[] for _ in range(n)]
    nbw: list[list[float]] = [[] for _ in range(n)]
    for s_, d_, c_ in zip(src.tolist(), dst.tolist(), w.tolist()):
        nb[s_].append(d_)
        nbw[s_].append(c_)
    return _Graph(n, nb, nbw, src, dst, w)


def _same_label_components(g: _Graph, labels: np.ndarray) -> np.ndarray:
    """Connected component id per block of the graph keeping only edges inside one grid."""
    same = labels[g.src] == labels[g.dst]
    m = coo_matrix((np.ones(same.sum()), (g.src[same], g.dst[same])), shape=(g.n, g.n))
    return connected_components(m, directed=False)[1]


def _households(blocks: gpd.GeoDataFrame) -> np.ndarray:
    if "households" not in blocks:
        raise InputError("the blocks have no households column", hint="build them with gis.blocks.build_blocks")
    h = blocks["households"].to_numpy(dtype=float)
    if np.isnan(h).any() or (h < 0).any():
        bad = blocks["block_id"].to_numpy()[np.isnan(h) | (h < 0)][0]
        raise InputError(f"block {bad} has households {h[np.isnan(h) | (h < 0)][0]}", hint="households must be >= 0")
    return h


def grid_components(labels: np.ndarray, blocks: gpd.GeoDataFrame, adjacency: nx.Graph) -> np.ndarray:
    """Number of connected pieces of every grid label (index = label) in the block adjacency graph.

    A contiguous plan has all ones; labels that do not occur count 0.
    """
    return _pieces(_graph(blocks, adjacency), np.asarray(labels))


def _pieces(g: _Graph, labels: np.ndarray) -> np.ndarray:
    comp = _same_label_components(g, labels)
    pieces = np.zeros(labels.max() + 1 if len(labels) else 0, dtype=np.int64)
    uniq = np.unique(np.column_stack([labels, comp]), axis=0)
    np.add.at(pieces, uniq[:, 0], 1)
    return pieces


class _Search:
    """Local search over grid labels: moves boundary blocks between neighbouring grids.

    Blocks in `frozen` never move and frozen grids never change. Every grid has its own mean
    (total households of its component / number of grids there) that balance is measured against.
    """

    def __init__(self, g: _Graph, h: np.ndarray, labels: np.ndarray, band: Band, grid_mean: dict[int, float],
                 frozen: np.ndarray, *, cut_weight: float, extra: list[tuple[np.ndarray, float]] | None = None):
        self.g, self.h, self.band = g, h, band
        self.labels = labels
        self.frozen = frozen
        self.cut_weight = cut_weight
        self.mean = grid_mean
        self.members: dict[int, set[int]] = {}
        for i, lab in enumerate(labels.tolist()):
            self.members.setdefault(lab, set()).add(i)
        self.gh = {lab: float(h[list(m)].sum()) for lab, m in self.members.items()}
        # caps (street_m, area_m2) as (per-block values, cap): a grid over a cap is penalised too
        self.extra = extra or []
        self.gx = [{lab: float(v[list(m)].sum()) for lab, m in self.members.items()} for v, _ in self.extra]
        self.win = band.window

    def cost(self, lab: int, hh: float, xs: list[float] | None = None) -> float:
        lo, hi = self.band.low, self.band.high
        wlo, whi = self.win
        viol = max(lo - hh, 0.0) + max(hh - hi, 0.0)
        wviol = max(wlo - hh, 0.0) + max(hh - whi, 0.0)
        c = _BAND_PENALTY * viol * viol + _WINDOW_PENALTY * wviol * wviol + (hh - self.mean[lab]) ** 2
        for k, (_, cap) in enumerate(self.extra):
            x = xs[k] if xs is not None else self.gx[k][lab]
            over = max(x / cap - 1.0, 0.0) * self.band.target
            c += _BAND_PENALTY * over * over
        return c

    def settled(self, lab: int) -> bool:
        hh = self.gh[lab]
        wlo, whi = self.win
        if not (wlo <= hh <= whi):
            return False
        return all(self.gx[k][lab] <= cap for k, (_, cap) in enumerate(self.extra))

    def _stays_connected(self, b: int, lab: int) -> bool:
        mem = self.members[lab]
        if len(mem) <= 1:
            return False
        inside = [j for j in self.g.nb[b] if j in mem]
        if len(inside) == 1:
            return True
        if not inside:
            return False
        seen = {b, inside[0]}
        todo = deque([inside[0]])
        target = len(mem)
        while todo:
            x = todo.popleft()
            for y in self.g.nb[x]:
                if y not in seen and y in mem:
                    seen.add(y)
                    todo.append(y)
        return len(seen) == target

    def delta(self, b: int, src: int, dst: int) -> float:
        hb = self.h[b]
        xs_s = [self.gx[k][src] - v[b] for k, (v, _) in enumerate(self.extra)]
        xs_d = [self.gx[k][dst] + v[b] for k, (v, _) in enumerate(self.extra)]
        d_bal = (self.cost(src, self.gh[src] - hb, xs_s) + self.cost(dst, self.gh[dst] + hb, xs_d)
                 - self.cost(src, self.gh[src]) - self.cost(dst, self.gh[dst]))
        w_src = w_dst = 0.0
        lab = self.labels
        for j, c in zip(self.g.nb[b], self.g.nbw[b]):
            if lab[j] == src:
                w_src += c
            elif lab[j] == dst:
                w_dst += c
        return d_bal + self.cut_weight * (w_src - w_dst)

    def move(self, b: int, src: int, dst: int) -> None:
        self.members[src].discard(b)
        self.members[dst].add(b)
        self.gh[src] -= self.h[b]
        self.gh[dst] += self.h[b]
        for k, (v, _) in enumerate(self.extra):
            self.gx[k][src] -= v[b]
            self.gx[k][dst] += v[b]
        self.labels[b] = dst

    def candidates(self, lab: int) -> list[tuple[int, int, int]]:
        """Moves touching grid `lab`: its boundary blocks out, and neighbours' boundary blocks in."""
        out = []
        labels, frozen = self.labels, self.frozen
        for b in self.members[lab]:
            if frozen[b]:
                continue
            for j in self.g.nb[b]:
                other = labels[j]
                if other != lab and not frozen[j]:
                    out.append((b, lab, int(other)))
                    out.append((j, int(other), lab))
        return list(dict.fromkeys(out))

    def run(self, grids: list[int], *, max_rounds: int = 200, polish_rounds: int = 2, chain_rounds: int = 6) -> None:
        """Single moves until none improves, ejection chains for what is left, then compactness rounds."""
        self._descend(set(grids), max_rounds)
        tol = 0.02 * self.band.target
        for _ in range(chain_rounds):
            todo = [lab for lab in grids if self.members.get(lab)
                    and (not self.settled(lab) or abs(self.gh[lab] - self.mean[lab]) > 2 * tol)]
            if not todo:
                break
            changed = set()
            for lab in sorted(todo, key=lambda x: (-self.cost(x, self.gh[x]), x)):
                if (not self.settled(lab) or abs(self.gh[lab] - self.mean[lab]) > 2 * tol) and self.chain(lab):
                    changed.add(lab)
            if not changed:
                break
            self._descend(changed, max_rounds)
        for _ in range(chain_rounds):  # last resort for grids still outside the hard band
            out = [lab for lab in grids if self.members.get(lab) and self.viol(lab) > 1e-9]
            fixed = [lab for lab in sorted(out, key=lambda x: (-self.viol(x), x))
                     if self.viol(lab) > 1e-9 and self.chain(lab, max_depth=12, band_only=True)]
            if not fixed:
                break
        self._polish(grids, polish_rounds)

    def _descend(self, dirty: set[int], max_rounds: int) -> None:
        for _ in range(max_rounds):
            if not dirty:
                break
            order = sorted(dirty, key=lambda lab: (-self.cost(lab, self.gh[lab]), lab))
            dirty = set()
            for lab in order:
                if lab not in self.members or not self.members[lab]:
                    continue
                if self.settled(lab) and abs(self.gh[lab] - self.mean[lab]) < 0.02 * self.band.target:
                    continue
                self._best_move(lab, dirty)

    def _polish(self, grids: list[int], polish_rounds: int) -> None:
        for _ in range(polish_rounds):
            moved = False
            for lab in sorted(set(grids)):
                if lab in self.members and self.members[lab]:
                    moved |= self._best_move(lab, None, keep_settled=True)
            if not moved:
                break

    def neighbours(self, lab: int) -> set[int]:
        labels, frozen = self.labels, self.frozen
        out = set()
        for b in self.members[lab]:
            for j in self.g.nb[b]:
                if labels[j] != lab and not frozen[j]:
                    out.add(int(labels[j]))
        return out

    def _pick(self, src: int, dst: int, amount: float) -> int | None:
        """The movable boundary block of `src` touching `dst` whose households best match `amount`."""
        best = None
        mem_d = self.members[dst]
        for b in self.members[src]:
            if self.frozen[b] or not any(j in mem_d for j in self.g.nb[b]):
                continue
            key = (abs(self.h[b] - amount) + (amount - self.h[b] if self.h[b] < amount else 0.0), b)
            if best is None or key < best[0]:
                if self._stays_connected(b, src):
                    best = (key, b)
        return None if best is None else best[1]

    def viol(self, lab: int) -> float:
        hh = self.gh[lab]
        return max(self.band.low - hh, 0.0) + max(hh - self.band.high, 0.0)

    def _pick_band(self, src: int, dst: int, amount: float, pull: bool) -> int | None:
        """Block of `src` touching `dst` of at least `amount` households, preferring one after
        which the grid that gives (pull) or takes (push) stays in the band, then the smallest."""
        best = None
        mem_d = self.members[dst]
        for b in self.members[src]:
            hb = self.h[b]
            if self.frozen[b] or not any(j in mem_d for j in self.g.nb[b]):
                continue
            stays = (self.gh[src] - hb >= self.band.low) if pull else (self.gh[dst] + hb <= self.band.high)
            if not pull and self.gh[src] - hb < self.band.low:
                continue  # pushing must not drop the giver below the band
            key = (0 if hb >= amount and stays else 1 if hb >= amount else 2,
                   hb if hb >= amount else -hb, b)
            if best is None or key < best[0]:
                if self._stays_connected(b, src):
                    best = (key, b)
        return None if best is None else best[1]

    def chain(self, g0: int, max_depth: int = 8, band_only: bool = False, max_goals: int = 40) -> bool:
        """Ejection chain: shift households along a path of grids from a surplus to a deficit.

        A grid off its mean whose direct neighbours cannot give or take without going off
        theirs is fixed through a path: each grid on it passes on about what it received.
        Kept only when the summed cost of the grids on the path falls. With `band_only` the
        aim is just to bring g0 into the hard band with every other grid on the path staying
        in it; then up to `max_goals` paths (nearest first) are tried.
        """
        need = self.mean[g0] - self.gh[g0]  # > 0: g0 must receive
        tol = 0.02 * self.band.target
        if band_only:
            need = (self.band.low - self.gh[g0]) if self.gh[g0] < self.band.low else (self.band.high - self.gh[g0])
            if abs(need) < 1e-9:
                return False

        def is_goal(other: int) -> bool:
            if band_only:  # any grid may end the chain: the path stops where the slack suffices
                return True
            slack = self.gh[other] - self.mean[other]
            return (need > 0 and slack > tol) or (need < 0 and slack < -tol)

        parent = {g0: None}
        frontier = [g0]
        goals: list[int] = []
        wanted = max_goals if band_only else 1
        for _ in range(max_depth):
            nxt = []
            for lab in frontier:
                for other in sorted(self.neighbours(lab)):
                    if other in parent:
                        continue
                    parent[other] = lab
                    nxt.append(other)
                    if is_goal(other):
                        goals.append(other)
                        if len(goals) >= wanted:
                            break
                if len(goals) >= wanted:
                    break
            if len(goals) >= wanted or not nxt:
                break
            frontier = nxt
        for goal in goals:
            path = [goal]
            while parent[path[-1]] is not None:
                path.append(parent[path[-1]])
            path.reverse()  # g0 ... goal
            if self._try_path(path, need, band_only):
                return True
        return False

    def _try_path(self, path: list[int], need: float, band_only: bool) -> bool:
        """Pass blocks along `path` (towards path[0] when need > 0); undo unless it pays."""
        def score(p: int) -> float:
            return self.viol(p) if band_only else self.cost(p, self.gh[p])

        goal = path[-1]
        before = sum(score(p) for p in path)
        done: list[tuple[int, int, int]] = []
        amount = abs(need) if band_only else min(abs(need), abs(self.gh[goal] - self.mean[goal]))
        for i in range(1, len(path)):
            src, dst = (path[i], path[i - 1]) if need > 0 else (path[i - 1], path[i])
            b = self._pick_band(src, dst, amount, need > 0) if band_only else self._pick(src, dst, amount)
            if b is None:
                break
            self.move(b, src, dst)
            done.append((b, src, dst))
            if band_only:
                # what the grid just drained (pull) or filled (push) now lacks or holds too much
                amount = (self.band.low - self.gh[src]) if need > 0 else (self.gh[dst] - self.band.high)
                if amount <= 1e-9:
                    break
            else:
                amount = self.h[b] if amount > 0 else amount
        after = sum(score(p) for p in path)
        if done and after < before - 1e-6 and (not band_only or all(self.viol(p) <= 1e-9 for p in path[1:])):
            return True
        for b, src, dst in reversed(done):
            self.move(b, dst, src)
        return False

    def _best_move(self, lab: int, dirty: set[int] | None, keep_settled: bool = False) -> bool:
        cands = self.candidates(lab)
        if not cands:
            return False
        scored = sorted((self.delta(b, s, d), b, s, d) for b, s, d in cands)
        for dl, b, s, d in scored:
            if dl >= -1e-9:
                return False
            if keep_settled:
                hb = self.h[b]
                wlo, whi = self.win
                ok_s = wlo <= self.gh[s] - hb <= whi or not self.settled(s)
                ok_d = wlo <= self.gh[d] + hb <= whi or not self.settled(d)
                if not (ok_s and ok_d):
                    continue
            if not self._stays_connected(b, s):
                continue
            self.move(b, s, d)
            if dirty is not None:
                dirty.update((s, d))
                dirty.update(int(self.labels[j]) for j in self.g.nb[b])
            return True
        return False


class _Window:
    """Repair towards the window: re-split pairs of neighbouring grids, and chains of them.

    Every grid should end with households inside ``band.window`` (target ±10 % within the band).
    The operator is an exact re-split of two touching grids A, B: their blocks are regrouped
    into two connected parts whose sums fall in a wanted range, choosing among candidate cuts
    (breadth-first balls grown from blocks far from the other grid, and straight sweeps) the one
    with the lowest boundary cost. A grid whose pair sums cannot both fit passes households
    along a path of grids (each re-split in turn) to a grid with the opposite slack. A change is
    kept only when the summed violation of the grids it touches falls.
    """

    def __init__(self, g: _Graph, h: np.ndarray, labels: np.ndarray, band: Band, frozen: np.ndarray,
                 xy: np.ndarray | None, mid: dict[int, float], extra: list[tuple[np.ndarray, float]] | None = None,
                 seed: int = 0):
        self.g, self.h, self.band, self.labels, self.frozen, self.xy = g, h, band, labels, frozen, xy
        self.win = band.window
        self.mid = mid
        self.extra = extra or []
        self.seed = int(seed)
        self.rng = np.random.default_rng(seed)
        self._rnd = random.Random(seed)
        # a typical household-holding block: how far off a tree cut may be and still be nudged
        pos = h[h > 0]
        self.grain = float(np.median(pos)) if len(pos) else 1.0
        self.members: dict[int, set[int]] = {}
        for i, lab in enumerate(labels.tolist()):
            if not frozen[i]:
                self.members.setdefault(lab, set()).add(i)
        self.gh = {lab: float(h[list(m)].sum()) for lab, m in self.members.items()}
        self.gx = [{lab: float(v[list(m)].sum()) for lab, m in self.members.items()} for v, _ in self.extra]

    # -- violation ------------------------------------------------------------------------
    def viol_of(self, hh: float, xs: list[float] | None = None) -> float:
        lo, hi = self.band.low, self.band.high
        wlo, whi = self.win
        v = 1000.0 * (max(lo - hh, 0.0) + max(hh - hi, 0.0)) + max(wlo - hh, 0.0) + max(hh - whi, 0.0)
        for k, (_, cap) in enumerate(self.extra):
            if xs is not None:
                v += 10.0 * max(xs[k] / cap - 1.0, 0.0) * self.band.target
        return v

    def viol(self, lab: int) -> float:
        return self.viol_of(self.gh[lab], [d[lab] for d in self.gx] if self.extra else None)

    def neighbours(self, lab: int) -> set[int]:
        labels, frozen, nb = self.labels, self.frozen, self.g.nb
        out = set()
        for b in self.members[lab]:
            for j in nb[b]:
                if not frozen[j]:
                    out.add(int(labels[j]))
        out.discard(lab)
        return out

    def _assign(self, blocks, lab: int) -> None:
        for b in blocks:
            old = int(self.labels[b])
            if old == lab:
                continue
            self.members[old].discard(b)
            self.members[lab].add(b)
            self.gh[old] -= self.h[b]
            self.gh[lab] += self.h[b]
            for k, (v, _) in enumerate(self.extra):
                self.gx[k][old] -= v[b]
                self.gx[k][lab] += v[b]
            self.labels[b] = lab

    # -- connectivity -----------------------------------------------------------------------
    def _connected(self, part: set[int]) -> bool:
        if not part:
            return False
        start = next(iter(part))
        seen = {start}
        todo = [start]
        nb = self.g.nb
        while todo:
            x = todo.pop()
            for y in nb[x]:
                if y in part and y not in seen:
                    seen.add(y)
                    todo.append(y)
        return len(seen) == len(part)

    def _pieces_of(self, part: set[int]) -> list[set[int]]:
        out, seen, nb = [], set(), self.g.nb
        for s0 in part:
            if s0 in seen:
                continue
            comp = {s0}
            seen.add(s0)
            todo = [s0]
            while todo:
                x = todo.pop()
                for y in nb[x]:
                    if y in part and y not in seen:
                        seen.add(y)
                        comp.add(y)
                        todo.append(y)
            out.append(comp)
        return out

    def _tidy(self, part_a: set[int], part_b: set[int]) -> tuple[set[int] | None, set[int] | None]:
        """Make both sides of a two-way split connected by handing detached pockets across.

        The main piece of a side is the one with most households (then most blocks); the other
        pieces border only the other side (the union is connected), so handing them over keeps
        that side connected. None when a side ends empty or still falls apart.
        """
        h = self.h
        for _ in range(2):
            changed = False
            for side in (0, 1):
                cur = part_b if side == 0 else part_a
                pieces = self._pieces_of(cur)
                if len(pieces) <= 1:
                    continue
                pieces.sort(key=lambda c: (-float(h[list(c)].sum()), -len(c), min(c)))
                moved = set().union(*pieces[1:])
                if side == 0:
                    part_b = pieces[0]
                    part_a = part_a | moved
                else:
                    part_a = pieces[0]
                    part_b = part_b | moved
                changed = True
            if not changed:
                break
        if not part_a or not part_b or not self._connected(part_a) or not self._connected(part_b):
            return None, None
        return part_a, part_b

    def _touches(self, part: set[int], lab: int) -> bool:
        labels, nb = self.labels, self.g.nb
        return any(labels[j] == lab for b in part for j in nb[b])

    # -- pair re-split ----------------------------------------------------------------------
    def _orders(self, a: int, b: int, union: set[int]) -> list[tuple[list[int], bool]]:
        """Candidate growth orders over `union`: (order, grows_a). Prefixes of BFS orders are connected."""
        nb, w = self.g.nb, None
        out: list[tuple[list[int], bool]] = []
        for grow, other in ((a, b), (b, a)):
            src = self.members[other]
            # distance (hops inside the union) from the other grid: seeds far from it
            dist = {x: 0 for x in src}
            frontier = list(src)
            while frontier:
                nxt = []
                for x in frontier:
                    for y in nb[x]:
                        if y in union and y not in dist:
                            dist[y] = dist[x] + 1
                            nxt.append(y)
                frontier = nxt
            own = sorted(self.members[grow], key=lambda x: (-dist.get(x, 0), x))
            seeds = own[:2]
            if len(own) > 2:
                seeds.append(own[int(self.rng.integers(2, len(own)))])
            for s in seeds:
                order = [s]
                seen = {s}
                i = 0
                while i < len(order):
                    x = order[i]
                    i += 1
                    for y in nb[x]:
                        if y in union and y not in seen:
                            seen.add(y)
                            order.append(y)
                out.append((order, grow == a))
        if self.xy is not None:
            pts = list(union)
            ca = self.xy[list(self.members[a])].mean(axis=0)
            cb = self.xy[list(self.members[b])].mean(axis=0)
            d = cb - ca
            base = math.atan2(d[1], d[0]) if np.hypot(*d) > 0 else 0.0
            xy = self.xy[pts]
            for tilt in (0.0, 0.5, -0.5):
                u = np.array([math.cos(base + tilt), math.sin(base + tilt)])
                proj = xy @ u
                order = [pts[i] for i in np.argsort(proj, kind="stable")]
                out.append((order, True))  # sweeping from A's side: prefixes are A'
        return out

    def _nudge(self, part_a: set[int], part_b: set[int], lo: float, hi: float, steps: int = 8) -> set[int] | None:
        """Move single boundary blocks across a two-way split until part_a's households are in
        [lo, hi], keeping both sides connected; None when that does not work out."""
        h, nb = self.h, self.g.nb
        part_a, part_b = set(part_a), set(part_b)
        sa = float(h[list(part_a)].sum())
        mid = (lo + hi) / 2
        for _ in range(steps):
            if lo - 1e-9 <= sa <= hi + 1e-9:
                return part_a
            take = sa < lo
            donor, recv = (part_b, part_a) if take else (part_a, part_b)
            # chunks: a household-holding block of the donor reached from the receiver through
            # at most three empty blocks, moved together with them (empty blocks often line
            # a boundary: parks, yards, the strips between carriageways)
            prev: dict[int, int] = {}
            frontier = [x for x in donor if any(y in recv for y in nb[x])]
            for x in frontier:
                prev[x] = -1
            cands = []
            for _depth in range(4):
                nxt = []
                for x in frontier:
                    if h[x] > 0:
                        new = sa + h[x] if take else sa - h[x]
                        if abs(new - mid) < abs(sa - mid):
                            cands.append((abs(new - mid), x))
                        continue
                    for y in nb[x]:
                        if y in donor and y not in prev:
                            prev[y] = x
                            nxt.append(y)
                frontier = nxt
            cands.sort()
            for _, x in cands[:6]:
                chunk = {x}
                y = prev[x]
                while y != -1:
                    chunk.add(y)
                    y = prev[y]
                rest = donor - chunk
                if not rest:
                    continue
                pieces = self._pieces_of(rest)
                if len(pieces) > 1:
                    # pockets cut off from the donor go along with the chunk
                    pieces.sort(key=lambda c: (-float(h[list(c)].sum()), -len(c), min(c)))
                    chunk = chunk.union(*pieces[1:])
                moved = float(h[list(chunk)].sum())
                new = sa + moved if take else sa - moved
                if abs(new - mid) < abs(sa - mid):
                    donor -= chunk
                    recv |= chunk
                    sa = new
                    break
            else:
                return None
        return part_a if lo - 1e-9 <= sa <= hi + 1e-9 else None

    def _tree_splits(self, union: set[int], total: float, lo: float, hi: float, aim: float,
                     trees: int = 6, per_tree: int = 3) -> list[set[int]]:
        """Splits of `union` into two connected parts, the first with households in [lo, hi].

        Cutting one edge of a spanning tree always leaves two connected parts (a subtree and the
        rest); random spanning trees (Prim with random keys) give varied cuts, as in ReCom.
        """
        nb, h, rnd = self.g.nb, self.h, self._rnd
        nodes = sorted(union)
        out: list[set[int]] = []
        for _ in range(trees):
            root = nodes[rnd.randrange(len(nodes))]
            parent = {root: -1}
            order = [root]
            heap = [(rnd.random(), root, y) for y in nb[root] if y in union]
            heapq.heapify(heap)
            while heap and len(order) < len(nodes):
                _, u, v = heapq.heappop(heap)
                if v in parent:
                    continue
                parent[v] = u
                order.append(v)
                for y in nb[v]:
                    if y in union and y not in parent:
                        heapq.heappush(heap, (rnd.random(), v, y))
            if len(order) < len(nodes):
                return out  # not connected: no tree
            sub = {v: h[v] for v in order}
            for v in reversed(order[1:]):
                sub[parent[v]] += sub[v]
            def off(x: float) -> float:
                return max(lo - x, 0.0) + max(x - hi, 0.0)

            found = []
            for v in order[1:]:
                sv = sub[v]
                found.append((off(sv), abs(sv - aim), v, True))
                found.append((off(total - sv), abs(total - sv - aim), v, False))
            found.sort()
            found = [f for f in found[:per_tree] if f[0] <= 4 * self.grain]
            if not found:
                continue
            children: dict[int, list[int]] = {}
            for v in order[1:]:
                children.setdefault(parent[v], []).append(v)
            for miss, _, v, is_a in found:
                desc = {v}
                todo = [v]
                while todo:
                    x = todo.pop()
                    for c in children.get(x, ()):
                        desc.add(c)
                        todo.append(c)
                part = desc if is_a else union - desc
                if miss > 0:
                    part = self._nudge(part, union - part, lo, hi)
                if part is not None:
                    out.append(part)
            if len(out) >= 2 * per_tree:
                break
        return out

    def resplit(self, a: int, b: int, lo: float, hi: float, aim: float, rest_touch: int | None = None,
                keep_touch: int | None = None) -> bool:
        """Regroup the blocks of grids a and b so that a's households lie in [lo, hi]; True if done.

        `rest_touch`: b's new part must still touch that grid (the next one on a chain);
        `keep_touch`: a's new part must still touch that grid (the previous one).
        """
        union = self.members[a] | self.members[b]
        if len(union) < 2:
            return False
        total = self.gh[a] + self.gh[b]
        h, nb, nbw = self.h, self.g.nb, self.g.nbw
        best = None
        tried: set[frozenset] = set()
        cands = self._tree_splits(union, total, lo, hi, aim)
        orders = self._orders(a, b, union) if len(cands) < 4 else []

        def consider(part_a: set[int], part_b: set[int], sa: float) -> None:
            """Keep (part_a, part_b) if it touches what it must and has the lowest cut + miss."""
            nonlocal best
            if rest_touch is not None and not self._touches(part_b, rest_touch):
                return
            if keep_touch is not None and not self._touches(part_a, keep_touch):
                return
            cut = 0.0
            for x in part_a:
                for y, c in zip(nb[x], nbw[x]):
                    if y in part_b:
                        cut += c
            score = cut + abs(sa - aim)
            if best is None or score < best[0]:
                best = (score, part_a, part_b)

        for part_a in cands:
            consider(part_a, union - part_a, float(h[list(part_a)].sum()))
        for order, grows_a in orders:
            cs = np.cumsum(h[order])
            # prefix sizes m (1..n-1) whose A-side sum is in range, or a little short of it
            # (detached pockets of the other side are handed over below and add to it)
            a_sum = cs[:-1] if grows_a else total - cs[:-1]
            ok = np.flatnonzero((a_sum >= lo - 1e-9) & (a_sum <= hi + 1e-9))
            if not len(ok):
                continue
            pick = ok[np.argsort(np.abs(a_sum[ok] - aim), kind="stable")[:4]].tolist()
            if len(ok) > 4:
                pick += [int(ok[0]), int(ok[-1]), int(ok[len(ok) // 2])]
            for m in dict.fromkeys(pick):
                prefix = set(order[:m + 1])
                key = frozenset(prefix)
                if key in tried:
                    continue
                tried.add(key)
                part_a = prefix if grows_a else union - prefix
                part_a, part_b = self._tidy(part_a, union - part_a)
                if part_a is None:
                    continue
                sa = float(h[list(part_a)].sum())
                if lo - 1e-9 <= sa <= hi + 1e-9:
                    consider(part_a, part_b, sa)
        if best is None:
            return False
        _, part_a, part_b = best
        self._assign(part_a, a)
        self._assign(part_b, b)
        return True

    def _snapshot(self, labs) -> dict[int, set[int]]:
        return {lab: set(self.members[lab]) for lab in labs}

    def _restore(self, snap: dict[int, set[int]]) -> None:
        for lab, mem in snap.items():
            self._assign(mem, lab)

    # -- chains ---------------------------------------------------------------------------
    def _paths(self, g0: int, max_depth: int, max_goals: int, max_visit: int = 80) -> list[list[int]]:
        """Grid paths from g0 whose summed households fit as many windows as grids on them.

        Breadth-first over neighbouring grids (up to `max_depth` grids on a path and `max_visit`
        grids seen); the paths with the most slack inside their windows (capped at a tenth of the
        window width... well, 15 households or the window width/2) come first, then the shortest.
        """
        wlo, whi = self.win
        cap = min(15.0, (whi - wlo) / 2)
        parent = {g0: None}
        acc = {g0: self.gh[g0]}
        depth = {g0: 1}
        frontier = [g0]
        found: list[tuple[float, int, int]] = []
        while frontier and len(parent) < max_visit:
            nxt = []
            for lab in frontier:
                for other in sorted(self.neighbours(lab)):
                    if other in parent:
                        continue
                    parent[other] = lab
                    acc[other] = acc[lab] + self.gh[other]
                    depth[other] = depth[lab] + 1
                    L = depth[other]
                    slack = min(acc[other] - L * wlo, L * whi - acc[other])
                    if slack >= -1e-9:
                        found.append((-min(slack, cap), L, other))
                    if depth[other] < max_depth:
                        nxt.append(other)
            frontier = nxt
        found.sort()
        goals = []
        for _, _, other in found[:max_goals]:
            path = [other]
            while parent[path[-1]] is not None:
                path.append(parent[path[-1]])
            goals.append(path[::-1])
        return goals

    def _run_path(self, path: list[int]) -> bool:
        wlo, whi = self.win
        before = sum(self.viol(p) for p in path)
        snap = self._snapshot(path)
        ok = True
        for i in range(len(path) - 1):
            a, b = path[i], path[i + 1]
            rest = sum(self.gh[p] for p in path[i:])
            n_rest = len(path) - i
            # a's share must leave the rest of the path a sum that still fits its windows
            lo = max(wlo, rest - (n_rest - 1) * whi)
            hi = min(whi, rest - (n_rest - 1) * wlo)
            if lo > hi + 1e-9:
                ok = False
                break
            aim = min(max(rest / n_rest, lo), hi)
            nxt = path[i + 2] if i + 2 < len(path) else None
            if not self.resplit(a, b, lo, hi, aim, rest_touch=nxt):
                ok = False
                break
        after = sum(self.viol(p) for p in path)
        if ok and after < before - 1e-9:
            return True
        self._restore(snap)
        return False

    def fix(self, lab: int, max_depth: int) -> bool:
        """Bring grid `lab` into the window through a pair re-split or a chain; True if improved."""
        if self.viol(lab) <= 1e-9:
            return False
        for path in self._paths(lab, max_depth, 6):
            if self._run_path(path):
                return True
        return False

    def _rsplit(self, union: set[int], m: int, budget: list[int]) -> list[set[int]] | None:
        """`union` cut into m connected parts each inside the window (recursive tree bisection)."""
        wlo, whi = self.win
        total = float(self.h[list(union)].sum())
        if m == 1:
            return [union] if wlo - 1e-9 <= total <= whi + 1e-9 else None
        m1 = m // 2
        m2 = m - m1
        lo, hi = max(m1 * wlo, total - m2 * whi), min(m1 * whi, total - m2 * wlo)
        if lo > hi + 1e-9:
            return None
        aim = total * m1 / m
        for _ in range(4):  # a few trees per level: a hopeless branch must not eat the budget
            if budget[0] <= 0:
                break
            budget[0] -= 1
            for part in self._tree_splits(union, total, lo, hi, aim, trees=2, per_tree=2):
                left = self._rsplit(part, m1, budget)
                if left is None:
                    continue
                right = self._rsplit(union - part, m2, budget)
                if right is not None:
                    return left + right
                if budget[0] <= 0:
                    break
        return None

    def redraw(self, g0: int, size: int, budget: int = 60) -> bool:
        """Redraw g0 and `size` - 1 grids around it so that all are in the window.

        The neighbourhood grows one touching grid at a time, each time taking the grid that
        leaves the summed households most room inside the windows of the grids taken.
        """
        wlo, whi = self.win
        area = [g0]
        total = self.gh[g0]
        around: set[int] = set(self.neighbours(g0))
        while len(area) < size and around:
            m = len(area) + 1
            pick = max(sorted(around), key=lambda x: min(total + self.gh[x] - m * wlo, m * whi - total - self.gh[x]))
            area.append(pick)
            total += self.gh[pick]
            around |= self.neighbours(pick)
            around -= set(area)
        m = len(area)
        total = sum(self.gh[x] for x in area)
        if m < 2 or not (m * wlo <= total <= m * whi):
            return False
        union = set().union(*(self.members[x] for x in area))
        parts = self._rsplit(union, m, [budget])
        if parts is None:
            return False
        before = sum(self.viol(x) for x in area)
        snap = self._snapshot(area)
        # give each part the label of the grid it overlaps most, so unchanged grids keep theirs
        free = list(area)
        for part in sorted(parts, key=lambda p_: -len(p_)):
            lab = max(free, key=lambda x: (len(snap[x] & part), -x))
            free.remove(lab)
            self._assign(part, lab)
        if sum(self.viol(x) for x in area) < before - 1e-9:
            return True
        self._restore(snap)
        return False

    def run(self, grids: list[int], rounds: tuple[int, ...] = (2, 3, 5, 8, 12),
            exact: dict | None = None) -> None:
        """Chains of growing depth, redrawing the neighbourhoods of grids still outside, and
        (with `exact`: keyword arguments of ``exact``) exact re-splits of what is left."""
        def bad() -> list[int]:
            return sorted((lab for lab in grids if self.members.get(lab) and self.viol(lab) > 1e-9),
                          key=lambda x: (-self.viol(x), x))

        for depth in rounds:
            for _ in range(3):
                todo = bad()
                if not todo:
                    return
                fixed = sum(1 for lab in todo if self.viol(lab) > 1e-9 and self.fix(lab, depth))
                if not fixed:
                    break
        for _cycle in range(6):
            before = sum(self.viol(x) for x in bad())
            for size in (3, 4, 6, 8, 5, 7, 9, 12):
                todo = bad()
                if not todo:
                    return
                for lab in todo:
                    if self.viol(lab) > 1e-9:
                        self.redraw(lab, size, budget=60 if size < 9 else 150)
            for lab in bad():
                if self.viol(lab) > 1e-9:
                    self.fix(lab, 8)
            if sum(self.viol(x) for x in bad()) >= before - 1e-9:
                break
        if exact is None:
            return
        for lab in bad():  # what random cuts could not fix: solve the neighbourhood exactly
            if self.members.get(lab) and self.viol(lab) > 1e-9:
                self.exact(lab, **exact)

    # -- exact neighbourhood re-split -------------------------------------------------------
    def exact(self, g0: int, max_grids: int = 12, max_blocks: int = 450, reach: int = 4,
              work: float = 1.0, tries: int = 2) -> bool:
        """Bring g0 into the window by regrouping the blocks of the grids around it exactly.

        Lumpy blocks (a few holding 90–160 households) leave random cuts little to find: the fix
        may need g0 to hand a big block over and take two small ones back, with the neighbour
        passing the surplus on. The neighbourhood grows from g0 one touching grid at a time (the
        one leaving the summed households most room inside the windows, as in ``redraw``);
        once the sum fits as many windows, it is re-split by CP-SAT (``_solve_exact``), and if
        that fails, again after two more grids, up to `tries` times, `max_grids` grids and
        `max_blocks` blocks. True when g0 ends in the window.
        """
        wlo, whi = self.win
        if wlo - 1e-9 <= self.gh[g0] <= whi + 1e-9:
            return False  # only over a street or area cap: the households are fine
        area = [g0]
        total = self.gh[g0]
        nblk = len(self.members[g0])
        first = sorted(self.neighbours(g0))  # g0's own neighbours first: it trades with them
        around = set(first)
        next_try = None
        while around and len(area) < max_grids and tries > 0:
            m = len(area) + 1
            if first:
                pick = first.pop(0)
            else:
                pick = max(sorted(around), key=lambda y: min(total + self.gh[y] - m * wlo,
                                                             m * whi - total - self.gh[y]))
            if nblk + len(self.members[pick]) > max_blocks:
                break
            area.append(pick)
            total += self.gh[pick]
            nblk += len(self.members[pick])
            around |= self.neighbours(pick)
            around -= set(area)
            if first or not (m * wlo + 1e-6 < total < m * whi - 1e-6):
                continue  # these grids cannot all fit: take another one
            if next_try is not None and m < next_try:
                continue
            tries -= 1
            if self._solve_exact(area, reach, work):
                return True
            next_try = m + 2
        return False

    def _solve_exact(self, area: list[int], reach: int, work: float) -> bool:
        from ortools.sat.python import cp_model

        wlo, whi = self.win
        h, nb = self.h, self.g.nb
        blocks = sorted(set().union(*(self.members[x] for x in area)))
        bset = set(blocks)
        home = {b: int(self.labels[b]) for b in blocks}
        # root of each grid: its block farthest from the other grids (it never moves)
        dist_out: dict[int, int] = {}
        frontier = [b for b in blocks if any(j in bset and home[j] != home[b] for j in nb[b])]
        for b in frontier:
            dist_out[b] = 0
        while frontier:
            nxt = []
            for x in frontier:
                for y in nb[x]:
                    if y in bset and y not in dist_out and home[y] == home[x]:
                        dist_out[y] = dist_out[x] + 1
                        nxt.append(y)
            frontier = nxt
        root = {lab: max(sorted(self.members[lab]), key=lambda b: (dist_out.get(b, 10**6), h[b]))
                for lab in area}
        # which grids may take each block: those within `reach` hops (inside the neighbourhood)
        cand: dict[int, list[int]] = {b: [home[b]] for b in blocks}
        for lab in area:
            seen = {b: 0 for b in self.members[lab]}
            frontier = list(self.members[lab])
            for d in range(1, reach + 1):
                nxt = []
                for x in frontier:
                    for y in nb[x]:
                        if y in bset and y not in seen:
                            seen[y] = d
                            nxt.append(y)
                frontier = nxt
            for b in seen:
                if home[b] != lab and b not in root.values():
                    cand[b].append(lab)
        model = cp_model.CpModel()
        x = {(b, lab): model.new_bool_var("") for b in blocks for lab in cand[b]}
        for b in blocks:
            model.add_exactly_one(x[b, lab] for lab in cand[b])
        for lab, r in root.items():
            model.add(x[r, lab] == 1)
        scale = 1000
        hi_ = np.round(h * scale).astype(np.int64)
        for lab in area:
            mem = [b for b in blocks if (b, lab) in x]
            slack = (len(mem) + 1) // 2  # rounding of households to 1/1000
            expr = sum(int(hi_[b]) * x[b, lab] for b in mem)
            model.add(expr >= math.ceil(wlo * scale) + slack)
            model.add(expr <= math.floor(whi * scale) - slack)
            for k, (v, cap) in enumerate(self.extra):
                if self.gx[k][lab] <= cap:
                    model.add(sum(int(round(v[b] * scale)) * x[b, lab] for b in mem) <= int(cap * scale) - slack)
            # connected: a flow from the root reaches every block of the grid
            cap_f = len(mem)
            flows_in: dict[int, list] = {b: [] for b in mem}
            flows_out: dict[int, list] = {b: [] for b in mem}
            for u in mem:
                for v in nb[u]:
                    if (v, lab) in x:
                        f = model.new_int_var(0, cap_f, "")
                        model.add(f <= cap_f * x[u, lab])
                        model.add(f <= cap_f * x[v, lab])
                        flows_out[u].append(f)
                        flows_in[v].append(f)
            for b in mem:
                if b != root[lab]:
                    model.add(sum(flows_in[b]) - sum(flows_out[b]) == x[b, lab])
        model.minimize(sum(1 - x[b, home[b]] for b in blocks))
        for b in blocks:
            for lab in cand[b]:
                model.add_hint(x[b, lab], lab == home[b])
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = 1
        solver.parameters.random_seed = self.seed % 2**31
        solver.parameters.max_deterministic_time = float(work)
        status = solver.solve(model)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return False
        before = sum(self.viol(lab) for lab in area)
        snap = self._snapshot(area)
        for lab in area:
            self._assign([b for b in blocks if (b, lab) in x and solver.value(x[b, lab])], lab)
        ok = all(self.viol(lab) <= 1e-9 and self._connected(self.members[lab]) for lab in area)
        if ok and sum(self.viol(lab) for lab in area) < before - 1e-9:
            return True
        self._restore(snap)
        return False


def _fix_contiguity(g: _Graph, labels: np.ndarray, h: np.ndarray, frozen: np.ndarray) -> np.ndarray:
    """Give every detached piece of a grid to the neighbouring grid it shares most boundary with."""
    for _ in range(50):
        comp = _same_label_components(g, labels)
        # the main piece of each grid: most households, then most blocks, then lowest component id
        hh_c = np.bincount(comp, weights=h, minlength=comp.max() + 1)
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
        s_mask = stray[g.src] & (labels[g.src] != labels[g.dst])
        if not s_mask.any():
            break  # an island with no neighbour at all: it stays its own grid
        c_src = comp[g.src[s_mask]]
        tgt = labels[g.dst[s_mask]]
        wts = g.w[s_mask]
        key = c_src * (labels.max() + 1) + tgt
        uk, inv = np.unique(key, return_inverse=True)
        tot = np.bincount(inv, weights=wts)
        cc, tl = uk // (labels.max() + 1), uk % (labels.max() + 1)
        best = {}
        for c, t, wsum in sorted(zip(cc.tolist(), tl.tolist(), tot.tolist()), key=lambda r: (r[0], -r[2], r[1])):
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


def _band_ks(total_hh: float, band: Band, n_blocks: int) -> range:
    """Grid counts k (1..n_blocks) whose mean total/k lies in the band (empty when none does)."""
    if total_hh <= 0:
        return range(1, 2) if band.low <= 0 else range(0)
    kmin = max(1, math.ceil(total_hh / band.high - 1e-9)) if band.high < float("inf") else 1
    kmax = min(n_blocks, math.floor(total_hh / band.low + 1e-9)) if band.low > 0 else n_blocks
    return range(kmin, kmax + 1)


def forced_deviation(total_hh: float, n_blocks: int, *, target_households: float = 300,
                     min_households: float = 300, max_households: float = 500) -> float:
    """Lower bound on the worst |households − target| / target of any split of an isolated piece.

    A connected piece of a planning area (that no grid may leave) holding `total_hh` households
    in `n_blocks` blocks is cut into k grids; the worst grid deviates at least as much as the
    mean total/k does. The bound is the smallest such mean deviation over the k whose mean lies
    in the band (over all k = 1..n_blocks when none does). A fraction: 0.1 = 10 %.
    """
    band = _check_band(target_households, min_households, max_households)
    return _forced(float(total_hh), max(int(n_blocks), 1), band)


def _best_k(total_hh: float, band: Band, n_blocks: int) -> int:
    """The k (mean in the band if any k allows it, else any 1..n_blocks) with mean nearest the target."""
    ks = _band_ks(total_hh, band, n_blocks)
    if not len(ks):
        ks = range(1, max(n_blocks, 1) + 1)
    t = band.target
    # |T/k − t| is convex in k: the best k is next to T/t, clamped to the allowed range
    near = {min(max(f(total_hh / t), ks.start), ks.stop - 1) for f in (math.floor, math.ceil)}
    return min(near, key=lambda k: (abs(total_hh / k - t), k))


def _forced(total_hh: float, n_blocks: int, band: Band) -> float:
    k = _best_k(total_hh, band, n_blocks)
    return abs(total_hh / k - band.target) / band.target


def _choose_k(total_hh: float, band: Band, n_blocks: int, extra_totals: list[tuple[float, float]]) -> int:
    """Number of grids for a component: mean in the middle of the window if possible, else least off.

    The window is target ±10 % inside the band (300–330 for the defaults); aiming at its middle
    leaves lumpy blocks room on both sides. When no k puts the mean in the window, the k of
    ``_forced`` (mean in the band, nearest the target) is taken.
    """
    if n_blocks <= 1:
        return 1
    # 15 % headroom: with the mean right at a cap, half the grids would end up over it
    k_caps = max([1] + [math.ceil(t / (0.85 * cap) - 1e-9) for t, cap in extra_totals])
    wlo, whi = band.window
    kw_min = max(1, math.ceil(total_hh / whi - 1e-9)) if whi > 0 else 1
    kw_max = math.floor(total_hh / wlo + 1e-9) if wlo > 0 else n_blocks
    if total_hh <= 0:
        k = 1
    elif kw_min <= kw_max:
        k = min(max(round(total_hh / ((wlo + whi) / 2)), kw_min), kw_max)
    else:
        k = _best_k(total_hh, band, n_blocks)
    return int(min(max(k, k_caps), n_blocks))


def _metis(g: _Graph, members: np.ndarray, h: np.ndarray, k: int, seed: int) -> np.ndarray:
    """METIS k-way partition of the induced subgraph on `members` (a connected component)."""
    local = {int(b): i for i, b in enumerate(members)}
    xadj = [0]
    adjncy: list[int] = []
    ew: list[int] = []
    for b in members.tolist():
        for j, c in zip(g.nb[b], g.nbw[b]):
            li = local.get(j)
            if li is not None:
                adjncy.append(li)
                ew.append(max(1, int(round(c * 10))))
        xadj.append(len(adjncy))
    vw = (np.round(h[members] * _HH_SCALE).astype(np.int64) + 1).tolist()
    if hasattr(pymetis, "CSRAdjacency"):  # pymetis >= 2025.2; the xadj/adjncy keywords are deprecated
        graph = {"adjacency": pymetis.CSRAdjacency(xadj, adjncy)}
    else:
        graph = {"xadj": xadj, "adjncy": adjncy}
    # two tries at the cut pay off on small graphs; on large ones the repair does that work
    ncuts = 2 if len(members) < 20_000 else 1
    opts = pymetis.Options(seed=int(seed), ufactor=20, contig=1, ncuts=ncuts)
    try:
        _, parts = pymetis.part_graph(k, **graph, vweights=vw, eweights=ew, options=opts)
    except Exception:  # METIS refuses contig on some graphs; contiguity is repaired afterwards anyway
        opts = pymetis.Options(seed=int(seed), ufactor=20, ncuts=ncuts)
        _, parts = pymetis.part_graph(k, **graph, vweights=vw, eweights=ew, options=opts)
    return np.asarray(parts, dtype=np.int64)


def _extras(blocks: gpd.GeoDataFrame, max_street_m: float | None, max_area_m2: float | None
            ) -> list[tuple[np.ndarray, float]]:
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


def _check_band(target: float, low: float, high: float) -> Band:
    if not (0 <= low <= high) or target <= 0:
        raise InputError(f"household band {low}–{high} with target {target} is not usable",
                         hint="need 0 <= min_households <= max_households and target_households > 0")
    return Band(float(target), float(low), float(high))


def partition_blocks(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, *, target_households: float = 300,
                     min_households: float = 300, max_households: float = 500,
                     max_street_m: float | None = None, max_area_m2: float | None = None, seed: int = 0,
                     locked: np.ndarray | None = None, cut_weight: float = 0.05) -> np.ndarray:
    """Grid label (0..G-1) for every block row: contiguous grids balanced on households.

    Run it once per parent area (community, else district) with that area's blocks so grids nest.
    The aim is every grid inside the window: target ±10 % within the band (300–330 for the
    defaults). Steps: blocks whose households alone exceed the window (or whose street_m/area_m2
    alone exceed a cap) become single-block grids (exempt: no grid holding them can be in the
    window); every connected piece of the remaining graph gets k grids (mean in the middle of
    the window when some k allows it), partitioned by METIS with cut costs from the adjacency's
    ``weight`` (cheap along big streets and barriers); detached pieces are reattached, boundary
    moves balance, pairs, chains and neighbourhoods of grids are re-split (random spanning-tree
    cuts, then exactly with CP-SAT around the grids those leave outside) until every grid is in
    the window, and boundary moves that keep grids in the window
    shorten boundaries (`cut_weight` per unit of cut cost). A piece whose total no k puts in
    the window cannot reach it (see ``forced_deviation``). Deterministic for a given `seed`.

    `locked`: optional int array per block, ``-1`` for free blocks, otherwise the label of a locked
    grid; locked blocks keep their label, new grids get labels above the largest locked one.
    Caps `max_street_m` (metres) and `max_area_m2` use the blocks' ``street_m``/``area_m2`` columns;
    they set the grid count and are penalised in the search, but the household band wins.
    """
    band = _check_band(target_households, min_households, max_households)
    n = len(blocks)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    h = _households(blocks)
    g = _graph(blocks, adjacency)
    extra = _extras(blocks, max_street_m, max_area_m2)
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
    for v, cap in extra:
        exempt |= ~frozen & (v > cap)
    for i in np.flatnonzero(exempt):
        labels[i] = next_label
        next_label += 1
    xy = _block_xy(blocks)
    free = ~frozen & ~exempt
    mask = free[g.src] & free[g.dst]
    m = coo_matrix((np.ones(mask.sum()), (g.src[mask], g.dst[mask])), shape=(n, n))
    _, comp = connected_components(m, directed=False)
    free_idx = np.flatnonzero(free)
    comps: dict[int, list[int]] = {}
    for i in free_idx.tolist():
        comps.setdefault(int(comp[i]), []).append(i)
    for members_list in sorted(comps.values(), key=lambda ms: ms[0]):
        members = np.asarray(members_list, dtype=np.int64)
        sub = _subgraph(g, members)
        sub_extra = [(v[members], cap) for v, cap in extra]
        parts = _solve_component(sub, h[members], band, sub_extra, seed, cut_weight,
                                 None if xy is None else xy[members])
        labels[members] = next_label + parts
        next_label += int(parts.max()) + 1
    return _compact_labels(labels, frozen)


def _block_xy(blocks: gpd.GeoDataFrame) -> np.ndarray | None:
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


def _subgraph(g: _Graph, members: np.ndarray) -> _Graph:
    """The induced subgraph on `members`, renumbered 0..len(members)-1."""
    local = np.full(g.n, -1, dtype=np.int64)
    local[members] = np.arange(len(members))
    keep = (local[g.src] >= 0) & (local[g.dst] >= 0)
    return _from_arrays(len(members), local[g.src[keep]], local[g.dst[keep]], g.w[keep])


def _solve_component(g: _Graph, h: np.ndarray, band: Band, extra: list[tuple[np.ndarray, float]],
                     seed: int, cut_weight: float, xy: np.ndarray | None = None, retries: int = 4) -> np.ndarray:
    """Labels 0..k-1 for one connected component of free blocks.

    k puts the mean in the middle of the band's window (``_choose_k``); METIS cuts the
    component, detached pieces are reattached, boundary moves balance towards the mean,
    ``_Window`` re-splits pairs, chains and neighbourhoods of grids until every grid is in the
    window or nothing improves, and two rounds of boundary moves that keep every settled grid
    in the window shorten the boundaries (one round on components over 20,000 blocks). Grids
    the random cuts leave outside get small exact re-splits of their neighbourhood
    (``_Window.exact``). When grids are still left outside the window (lumpy blocks in an
    unlucky first cut), up to `retries` more attempts start from other METIS seeds, and if
    all fail, larger exact re-splits run on the best one (``_repair``); the plan with the least
    summed violation is kept (deterministic for a given `seed`).
    """
    total = float(h.sum())
    k = _choose_k(total, band, g.n, [(float(v.sum()), cap) for v, cap in extra])
    if k == 1:
        return np.zeros(g.n, dtype=np.int64)
    wlo, whi = band.window
    if not (k * wlo - 1e-9 <= total <= k * whi + 1e-9):
        retries = 0  # the window cannot hold every grid here anyway
    elif g.n >= 20_000:
        retries = min(retries, 2)  # a whole new attempt costs seconds there
    best = None
    for attempt in range(retries + 1):
        labels, viol = _attempt(g, h, band, extra, seed + 7919 * attempt, cut_weight, xy, k)
        if best is None or viol < best[0] - 1e-9:
            best = (viol, labels)
        if viol <= 1e-9:
            break
    if best[0] > 1e-9 and retries:
        # every attempt left grids outside: larger exact re-splits around them, on the best plan
        labels, viol = _repair(g, h, band, extra, seed, cut_weight, best[1].copy(), k)
        if viol < best[0] - 1e-9:
            best = (viol, labels)
    return best[1]


def _repair(g: _Graph, h: np.ndarray, band: Band, extra: list[tuple[np.ndarray, float]], seed: int,
            cut_weight: float, labels: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Exact re-splits of larger neighbourhoods around the grids still outside the window,
    then boundary smoothing that keeps settled grids in it: (labels, summed window violation)."""
    total = float(h.sum())
    frozen = np.zeros(g.n, dtype=bool)
    mean = {p: total / k for p in set(labels.tolist())}
    win = _Window(g, h, labels, band, frozen, None, mean, extra, seed)
    for lab in sorted(win.members, key=lambda x: (-win.viol(x), x)):
        if win.viol(lab) > 1e-9:
            win.exact(lab, **_EXACT_LARGE)
    search = _Search(g, h, win.labels, band, mean, frozen, cut_weight=cut_weight, extra=extra)
    search._polish(sorted(search.members), 1)
    out = _compact_labels(search.labels, frozen)
    gh = np.bincount(out, weights=h)
    return out, float(sum(_Window.viol_of(win, x) for x in gh))


def _attempt(g: _Graph, h: np.ndarray, band: Band, extra: list[tuple[np.ndarray, float]], seed: int,
             cut_weight: float, xy: np.ndarray | None, k: int) -> tuple[np.ndarray, float]:
    """One METIS cut and repair of a component into k grids: (labels, summed window violation)."""
    total = float(h.sum())
    frozen = np.zeros(g.n, dtype=bool)
    labels = _metis(g, np.arange(g.n), h, k, seed)
    labels = _fix_contiguity(g, labels, h, frozen)
    mean = {p: total / k for p in range(k)}
    search = _Search(g, h, labels, band, mean, frozen, cut_weight=cut_weight, extra=extra)
    search.run(sorted(set(labels.tolist())), chain_rounds=0, polish_rounds=0)
    labels = _fix_contiguity(g, search.labels, h, frozen)
    win = _Window(g, h, labels, band, frozen, xy, mean, extra, seed)
    win.run(sorted(win.members), exact=_EXACT_SMALL)
    # shorter boundaries, along bigger streets, where that keeps every grid settled in the window
    search = _Search(g, h, win.labels, band, mean, frozen, cut_weight=cut_weight, extra=extra)
    search._polish(sorted(search.members), 2 if g.n < 20_000 else 1)
    out = _compact_labels(search.labels, frozen)
    gh = np.bincount(out, weights=h)
    viol = float(sum(_Window.viol_of(win, x) for x in gh))
    return out, viol


def _compact_labels(labels: np.ndarray, frozen: np.ndarray) -> np.ndarray:
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
    h = _households(blocks_of_grid)
    g = _graph(blocks_of_grid, adjacency)
    if parts == 1:
        return np.zeros(n, dtype=np.int64)
    if _pieces(g, np.zeros(n, dtype=np.int64))[0] != 1:
        raise InputError("the grid's blocks are not connected", hint="check the grid with check-grids first")
    total = float(h.sum())
    mean = total / parts
    band = Band(mean, 0.0, float("inf"))
    labels = _metis(g, np.arange(n), h, parts, seed)
    frozen = np.zeros(n, dtype=bool)
    labels = _fix_contiguity(g, labels, h, frozen)
    search = _Search(g, h, labels, band, {p: mean for p in range(parts)}, frozen, cut_weight=0.01)
    # Only the parts METIS filled: an empty one is carved out below.
    search.run(sorted(set(labels.tolist())))
    labels = _fix_contiguity(g, search.labels, h, frozen)
    # a part METIS left empty: carve a leaf block off the largest part so exactly `parts` exist
    for p in range(parts):
        if not (labels == p).any():
            big = int(np.argmax(np.bincount(labels, weights=h + 1e-6, minlength=parts)))
            srch = _Search(g, h, labels, band, {q: mean for q in range(parts)}, frozen, cut_weight=0.0)
            for b in sorted(srch.members[big], key=lambda i: h[i]):
                if srch._stays_connected(b, big):
                    labels[b] = p
                    break
    return _compact_labels(labels, frozen) if len(set(labels.tolist())) == parts else labels


def rebalance(blocks: gpd.GeoDataFrame, adjacency: nx.Graph, assignment: np.ndarray, grid_ids, *,
              target_households: float = 300, min_households: float = 300, max_households: float = 500,
              locked_grids=()) -> np.ndarray:
    """Move as few households as possible between the grids `grid_ids` to bring them into the band.

    Only blocks of those grids move, only between grids in the set that touch, and every grid
    stays contiguous and non-empty. Greedy: while a grid is outside the band, take the move that
    ends its violation with the fewest households (else the one that reduces it most); stops when
    all are in the band or no move helps. Returns a new assignment (same labels as `assignment`).
    """
    band = _check_band(target_households, min_households, max_households)
    assignment = np.asarray(assignment).copy()
    grid_set = {int(x) for x in grid_ids} - {int(x) for x in locked_grids}
    present = set(assignment.tolist())
    missing = grid_set - present
    if missing:
        raise InputError(f"grids {sorted(missing)} are not in the assignment")
    h = _households(blocks)
    g = _graph(blocks, adjacency)
    frozen = ~np.isin(assignment, list(grid_set))
    search = _Search(g, h, assignment, band, {lab: 0.0 for lab in present}, frozen, cut_weight=0.0)

    def viol(x: float) -> float:
        return max(band.low - x, 0.0) + max(x - band.high, 0.0)

    for _ in range(10 * len(blocks) + 10):
        bad = sorted((lab for lab in grid_set if viol(search.gh[lab]) > 1e-9),
                     key=lambda lab: (-viol(search.gh[lab]), lab))
        if not bad:
            break
        done = False
        for lab in bad:
            best = None
            for b, s, d in search.candidates(lab):
                if s not in grid_set or d not in grid_set:
                    continue
                hb = h[b]
                before = viol(search.gh[s]) + viol(search.gh[d])
                after = viol(search.gh[s] - hb) + viol(search.gh[d] + hb)
                if after >= before - 1e-9:
                    continue
                key = (0 if after <= 1e-9 else 1, hb if after <= 1e-9 else after, hb, b)
                if best is None or key < best[0]:
                    if search._stays_connected(b, s):
                        best = (key, b, s, d)
            if best is not None:
                _, b, s, d = best
                search.move(b, s, d)
                done = True
                break
        if not done:
            break
    return search.labels
