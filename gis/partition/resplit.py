"""Re-splits of the blocks of a few grids into connected parts with households in given ranges."""
from __future__ import annotations

import heapq
import math
import random

import numpy as np
from gridpatrol.gis.partition.band import TOLERANCE
from gridpatrol.gis.partition.labelling import Labelling

TREES_PER_PAIR = 6  # random spanning trees cut per pair re-split
CUTS_PER_TREE = 3  # best edge cuts kept per tree
TREE_CUT_REACH = 4  # a tree cut at most this many typical blocks off the range is nudged into it
NUDGE_STEPS = 8  # single-block moves a nudge may make
EMPTY_HOPS = 4  # a nudge moves a household block with up to this many - 1 empty blocks before it
NUDGE_CHOICES = 6  # chunks a nudge tries per step, best first
SWEEP_TILTS = (0.0, 0.5, -0.5)  # sweep directions off the line between two grids' centres (radians)
PREFIXES_PER_ORDER = 4  # growth-order prefixes tried per order, nearest the aim first
ORDERS_WHEN_TREES_FEW = 4  # growth orders are tried when tree cuts gave fewer candidates than this
TREES_PER_LEVEL = 4  # tree rounds per level of a recursive split
RECURSIVE_TREES = 2  # trees per round in a recursive split
RECURSIVE_CUTS = 2  # cuts per tree in a recursive split


class Splitter:
    """Cuts the blocks of grids of a Labelling into connected parts; random but seeded.

    `xy`: block centres (planar) for straight sweeps, or None.
    """

    def __init__(self, state: Labelling, xy: np.ndarray | None, seed: int):
        self.state = state
        self.xy = xy
        self.rng = np.random.default_rng(seed)
        self.random = random.Random(seed)
        # a typical household-holding block: how far off a tree cut may be and still be nudged
        h = state.households
        held = h[h > 0]
        self.grain = float(np.median(held)) if len(held) else 1.0

    def _tidy(self, part_a: set[int], part_b: set[int]) -> tuple[set[int] | None, set[int] | None]:
        """Both sides of a two-way split made connected by handing detached pockets across.

        A side keeps its piece with most households (then most blocks); (None, None) when a
        side ends empty or still falls apart.
        """
        state = self.state
        h = state.households
        for _ in range(2):
            changed = False
            for side in (0, 1):
                cur = part_b if side == 0 else part_a
                pieces = state.pieces(cur)
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
        if not part_a or not part_b or not state.connected(part_a) or not state.connected(part_b):
            return None, None
        return part_a, part_b

    def _orders(self, a: int, b: int, union: set[int]) -> list[tuple[list[int], bool]]:
        """Candidate growth orders over `union`: (order, grows_a). Prefixes of BFS orders are connected."""
        state = self.state
        nb = state.graph.neighbours
        out: list[tuple[list[int], bool]] = []
        for grow, other in ((a, b), (b, a)):
            src = state.members[other]
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
            own = sorted(state.members[grow], key=lambda x: (-dist.get(x, 0), x))
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
            ca = self.xy[list(state.members[a])].mean(axis=0)
            cb = self.xy[list(state.members[b])].mean(axis=0)
            d = cb - ca
            base = math.atan2(d[1], d[0]) if np.hypot(*d) > 0 else 0.0
            xy = self.xy[pts]
            for tilt in SWEEP_TILTS:
                u = np.array([math.cos(base + tilt), math.sin(base + tilt)])
                proj = xy @ u
                order = [pts[i] for i in np.argsort(proj, kind="stable")]
                out.append((order, True))  # sweeping from A's side: prefixes are A'
        return out

    def _nudge(self, part_a: set[int], part_b: set[int], lo: float, hi: float) -> set[int] | None:
        """Move single boundary blocks across a two-way split until part_a's households are in
        [lo, hi], keeping both sides connected; None when that does not work out."""
        state = self.state
        h, nb = state.households, state.graph.neighbours
        part_a, part_b = set(part_a), set(part_b)
        sa = float(h[list(part_a)].sum())
        mid = (lo + hi) / 2
        for _ in range(NUDGE_STEPS):
            if lo - TOLERANCE <= sa <= hi + TOLERANCE:
                return part_a
            take = sa < lo
            donor, recv = (part_b, part_a) if take else (part_a, part_b)
            # chunks: a household-holding block of the donor reached from the receiver through
            # empty blocks, moved together with them (empty blocks often line a boundary)
            prev: dict[int, int] = {}
            frontier = [x for x in donor if any(y in recv for y in nb[x])]
            for x in frontier:
                prev[x] = -1
            cands = []
            for _depth in range(EMPTY_HOPS):
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
            for _, x in cands[:NUDGE_CHOICES]:
                chunk = {x}
                y = prev[x]
                while y != -1:
                    chunk.add(y)
                    y = prev[y]
                rest = donor - chunk
                if not rest:
                    continue
                pieces = state.pieces(rest)
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
        return part_a if lo - TOLERANCE <= sa <= hi + TOLERANCE else None

    def _tree_splits(self, union: set[int], total: float, lo: float, hi: float, aim: float,
                    trees: int = TREES_PER_PAIR, per_tree: int = CUTS_PER_TREE) -> list[set[int]]:
        """Splits of `union` into two connected parts, the first with households in [lo, hi].

        Cuts one edge of each of `trees` random spanning trees (as in ReCom).
        """
        state = self.state
        nb, h, rnd = state.graph.neighbours, state.households, self.random
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
            subtree_hh = {v: h[v] for v in order}
            for v in reversed(order[1:]):
                subtree_hh[parent[v]] += subtree_hh[v]

            def off(x: float) -> float:
                return max(lo - x, 0.0) + max(x - hi, 0.0)

            found = []
            for v in order[1:]:
                sv = subtree_hh[v]
                found.append((off(sv), abs(sv - aim), v, True))
                found.append((off(total - sv), abs(total - sv - aim), v, False))
            found.sort()
            found = [f for f in found[:per_tree] if f[0] <= TREE_CUT_REACH * self.grain]
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

    def resplit(self, a: int, b: int, lo: float, hi: float, aim: float, rest_touch: int | None = None) -> bool:
        """Regroup the blocks of grids a and b so that a's households lie in [lo, hi]; True if done.

        Of the candidate cuts the one with the lowest cut cost plus |households − aim| wins.
        `rest_touch`: b's new part must still touch that grid (the next one on a chain).
        """
        state = self.state
        union = state.members[a] | state.members[b]
        if len(union) < 2:
            return False
        total = state.grid_households[a] + state.grid_households[b]
        h, nb, nb_cost = state.households, state.graph.neighbours, state.graph.neighbour_costs
        best = None
        tried: set[frozenset] = set()
        cands = self._tree_splits(union, total, lo, hi, aim)
        orders = self._orders(a, b, union) if len(cands) < ORDERS_WHEN_TREES_FEW else []

        def consider(part_a: set[int], part_b: set[int], sa: float) -> None:
            """Keep (part_a, part_b) if it touches what it must and has the lowest cut + miss."""
            nonlocal best
            if rest_touch is not None and not state.touches(part_b, rest_touch):
                return
            cut = 0.0
            for x in part_a:
                for y, c in zip(nb[x], nb_cost[x]):
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
            ok = np.flatnonzero((a_sum >= lo - TOLERANCE) & (a_sum <= hi + TOLERANCE))
            if not len(ok):
                continue
            pick = ok[np.argsort(np.abs(a_sum[ok] - aim), kind="stable")[:PREFIXES_PER_ORDER]].tolist()
            if len(ok) > PREFIXES_PER_ORDER:
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
                if lo - TOLERANCE <= sa <= hi + TOLERANCE:
                    consider(part_a, part_b, sa)
        if best is None:
            return False
        _, part_a, part_b = best
        state.assign(part_a, a)
        state.assign(part_b, b)
        return True

    def split_into(self, union: set[int], m: int, budget: list[int]) -> list[set[int]] | None:
        """`union` cut into m connected parts each inside the window (recursive tree bisection).

        `budget`: [tree rounds left], shared by the recursion.
        """
        window_low, window_high = self.state.window
        total = float(self.state.households[list(union)].sum())
        if m == 1:
            return [union] if window_low - TOLERANCE <= total <= window_high + TOLERANCE else None
        m1 = m // 2
        m2 = m - m1
        lo, hi = max(m1 * window_low, total - m2 * window_high), min(m1 * window_high, total - m2 * window_low)
        if lo > hi + TOLERANCE:
            return None
        aim = total * m1 / m
        for _ in range(TREES_PER_LEVEL):  # a few per level: a hopeless branch must not eat the budget
            if budget[0] <= 0:
                break
            budget[0] -= 1
            for part in self._tree_splits(union, total, lo, hi, aim, trees=RECURSIVE_TREES, per_tree=RECURSIVE_CUTS):
                left = self.split_into(part, m1, budget)
                if left is None:
                    continue
                right = self.split_into(union - part, m2, budget)
                if right is not None:
                    return left + right
                if budget[0] <= 0:
                    break
        return None
