"""Balanced, contiguous grids from street blocks: METIS partition plus local-search repair."""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import geopandas as gpd
import networkx as nx
import numpy as np
import pymetis
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gis.errors import InputError

__all__ = ["Band", "partition_blocks", "rebalance", "split_grid", "grid_components"]

_HH_SCALE = 100  # METIS wants integer weights: households in hundredths
_BAND_PENALTY = 100.0  # a household outside the band costs 100× one inside it but off the mean
_WINDOW_PENALTY = 10.0


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


def _choose_k(total_hh: float, band: Band, n_blocks: int, extra_totals: list[tuple[float, float]]) -> int:
    """Number of grids for a component: mean in the band's window if possible, else least outside."""
    if n_blocks <= 1:
        return 1
    # 15 % headroom: with the mean right at a cap, half the grids would end up over it
    k_caps = max([1] + [math.ceil(t / (0.85 * cap) - 1e-9) for t, cap in extra_totals])
    if total_hh <= band.high:
        k = 1
    else:
        kmin = math.ceil(total_hh / band.high)
        kmax = max(math.floor(total_hh / band.low), 1) if band.low > 0 else kmin
        # aim above the window centre: room below the mean keeps grids off the hard lower limit
        centre = band.window[0] + 0.6 * (band.window[1] - band.window[0])
        if kmin <= kmax:
            k = min(max(round(total_hh / centre), kmin), kmax)
        else:  # no k puts the mean inside the band: take the one missing it least
            def miss(kk: int) -> float:
                m = total_hh / kk
                return max(band.low - m, 0) + max(m - band.high, 0)
            k = min((kmax, kmin), key=lambda kk: (miss(kk), kk)) if kmax >= 1 else kmin
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
    opts = pymetis.Options(seed=int(seed), ufactor=20, contig=1, ncuts=2)
    try:
        _, parts = pymetis.part_graph(k, **graph, vweights=vw, eweights=ew, options=opts)
    except Exception:  # METIS refuses contig on some graphs; contiguity is repaired afterwards anyway
        opts = pymetis.Options(seed=int(seed), ufactor=20, ncuts=2)
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
    Steps: blocks whose households alone exceed `max_households` (or whose street_m/area_m2 alone
    exceed a cap) become single-block, exempt grids; every connected piece of the remaining graph
    gets k grids (mean inside the band, aiming at target ±10 %), partitioned by METIS with cut
    costs from the adjacency's ``weight`` (cheap along big streets and barriers); then detached
    pieces are reattached and a local search moves boundary blocks to bring grids into the band,
    then towards their mean, penalising boundary cost by `cut_weight` per unit. Deterministic for
    a given `seed`.

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
    exempt = ~frozen & (h > band.high)
    for v, cap in extra:
        exempt |= ~frozen & (v > cap)
    for i in np.flatnonzero(exempt):
        labels[i] = next_label
        next_label += 1
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
        parts = _solve_component(sub, h[members], band, sub_extra, seed, cut_weight)
        labels[members] = next_label + parts
        next_label += int(parts.max()) + 1
    return _compact_labels(labels, frozen)


def _subgraph(g: _Graph, members: np.ndarray) -> _Graph:
    """The induced subgraph on `members`, renumbered 0..len(members)-1."""
    local = np.full(g.n, -1, dtype=np.int64)
    local[members] = np.arange(len(members))
    keep = (local[g.src] >= 0) & (local[g.dst] >= 0)
    return _from_arrays(len(members), local[g.src[keep]], local[g.dst[keep]], g.w[keep])


def _plan_score(hh: np.ndarray, band: Band) -> tuple[float, float]:
    """(share of grids outside the band, worst deviation from target) of one component's grids."""
    out = ((hh < band.low - 1e-9) | (hh > band.high + 1e-9)).mean()
    return float(out), float(np.abs(hh - band.target).max())


def _solve_component(g: _Graph, h: np.ndarray, band: Band, extra: list[tuple[np.ndarray, float]],
                     seed: int, cut_weight: float, accept_out_share: float = 0.0005) -> np.ndarray:
    """Labels 0..k-1 for one connected component of free blocks.

    Starts with the k whose mean is the centre of the band's window. Lumpy real data (compounds
    of hundreds of households between empty blocks) can make that window unreachable; then it
    retries with fewer, larger grids (mean further inside the band) and keeps the plan with the
    fewest grids outside the band, then the smallest worst deviation. A plan with at most
    `accept_out_share` of its grids outside the band (2 in 4,000) is not retried: on large cities
    a retry costs seconds and makes every grid larger, for one or two grids a few households off.
    """
    total = float(h.sum())
    k0 = _choose_k(total, band, g.n, [(float(v.sum()), cap) for v, cap in extra])
    if k0 == 1:
        return np.zeros(g.n, dtype=np.int64)
    kmin = max(1, math.ceil(total / band.high)) if band.high < float("inf") else 1
    kmin = max(kmin, max([1] + [math.ceil(float(v.sum()) / (0.85 * cap) - 1e-9) for v, cap in extra]))
    tries = [k0]
    for f in (0.93, 0.86, 0.79):
        k = max(kmin, int(round(k0 * f)))
        if k < tries[-1]:
            tries.append(k)
    frozen = np.zeros(g.n, dtype=bool)
    best = None
    for k in tries:
        labels = _metis(g, np.arange(g.n), h, k, seed)
        labels = _fix_contiguity(g, labels, h, frozen)
        search = _Search(g, h, labels, band, {p: total / k for p in range(k)}, frozen,
                         cut_weight=cut_weight, extra=extra)
        search.run(sorted(set(labels.tolist())))
        labels = _fix_contiguity(g, search.labels, h, frozen)
        labels = _compact_labels(labels, frozen)
        score = _plan_score(np.bincount(labels, weights=h), band)
        if best is None or score < best[0]:
            best = (score, labels)
        if score[0] <= accept_out_share:
            break
    return best[1]


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
