"""Exact minimum-cost perfect matching on integer costs (Edmonds' primal–dual blossom algorithm), with its dual.

How it works: docs/routing.md, "Matching". ``pi[v]`` is vertex v's dual plus the duals ``z`` of
all blossoms holding v.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

_BIG = np.int64(1) << 62
_HALF = np.int64(1) << 61


@dataclass
class BlossomResult:
    """``mate[v]`` is v's partner; ``dual`` the dual objective (units of ``C``); blossoms as vertex sets with z."""

    mate: np.ndarray
    primal: int
    dual: int
    blossoms: list[np.ndarray]
    z: np.ndarray
    pi: np.ndarray
    iterations: int


def _initial_duals(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feasible, even duals and a matching of tight pairs, from the assignment relaxation."""
    n = len(C)
    c = C // 4
    cf = c.astype(float)
    np.fill_diagonal(cf, 1e18)
    _, sigma = linear_sum_assignment(cf)
    # Difference constraints u_i - u_a <= c[i, sigma(a)] - c[a, sigma(a)] (arc a -> i): Bellman-Ford.
    own = c[np.arange(n), sigma]
    W = c[:, sigma].T - own[:, None]
    np.fill_diagonal(W, 0)
    u = np.zeros(n, dtype=np.int64)
    for _ in range(n + 1):
        nu = np.minimum(u, (u[:, None] + W).min(axis=0))
        if np.array_equal(nu, u):
            break
        u = nu
    else:  # pragma: no cover - the assignment is optimal, so there is no negative cycle
        return _simple_duals(C)
    inv = np.empty(n, dtype=np.int64)
    inv[sigma] = np.arange(n)
    v = c[inv, np.arange(n)] - u[inv]
    pi = 2 * (u + v)
    mate = np.full(n, -1, dtype=np.int64)
    two = np.flatnonzero((sigma[sigma] == np.arange(n)) & (sigma != np.arange(n)))
    mate[two] = sigma[two]
    _greedy_tight(C, pi, mate)
    return pi, mate


def _simple_duals(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feasible, even duals (half the least cost of each point) and a greedy matching of tight pairs."""
    pi = (C.min(axis=1) // 2).astype(np.int64)  # C is a multiple of 4: pi stays even
    mate = np.full(len(C), -1, dtype=np.int64)
    _greedy_tight(C, pi, mate)
    return pi, mate


def _greedy_tight(C: np.ndarray, pi: np.ndarray, mate: np.ndarray) -> None:
    """Match still-exposed points along tight pairs, greedily."""
    free = np.flatnonzero(mate < 0)
    if len(free) < 2:
        return
    tight = (C[np.ix_(free, free)] - pi[free][:, None] - pi[free][None, :]) == 0
    np.fill_diagonal(tight, False)
    for a in range(len(free)):
        v = free[a]
        if mate[v] >= 0:
            continue
        for b in np.flatnonzero(tight[a]).tolist():
            w = free[b]
            if mate[w] < 0:
                mate[v], mate[w] = w, v
                break


class _Forest:
    """The state of the primal–dual search: matching, duals, blossoms and the alternating trees.

    Blossom ids: 0..n-1 are the vertices, n..2n-1 non-trivial blossoms (reused when expanded).
    """

    def __init__(self, C: np.ndarray, pi: np.ndarray, mate: np.ndarray):
        """Every vertex its own blossom, unlabelled, with duals ``pi`` and the partial matching ``mate``."""
        n = len(C)
        nb = 2 * n
        self.C, self.pi, self.mate, self.n = C, pi, mate, n
        self.inb = np.arange(n)  # outermost blossom of each vertex
        self.parent = [-1] * nb
        self.childs: list[list[int] | None] = [None] * nb
        self.edges: list[list[tuple[int, int]] | None] = [None] * nb
        self.base = list(range(n)) + [-1] * n
        self.leaves: list[np.ndarray | None] = [np.array([v]) for v in range(n)] + [None] * n
        self.z = np.zeros(nb, dtype=np.int64)
        self.label = [0] * nb  # 0 free, 1 outer (S), 2 inner (T); only for outermost blossoms
        self.labfrom: list[tuple[int, int] | None] = [None] * nb  # (vertex outside, vertex inside)
        self.free_ids = list(range(nb - 1, n - 1, -1))
        self.outer_nt: set[int] = set()  # outermost non-trivial blossoms
        self.is_s = np.zeros(n, dtype=bool)
        self.sign = np.zeros(n, dtype=np.int64)  # +1 outer, -1 inner, 0 free: how a dual step moves pi
        # key[w]: least C[s, w] - pi[s] over outer vertices s in another outermost blossom (src[w] = s);
        # kept up to date as outer vertices appear, so each step is O(n) instead of O(n^2).
        self.key = np.full(n, _BIG, dtype=np.int64)
        self.src = np.full(n, -1, dtype=np.int64)
        self.pending: list[np.ndarray] = []
        self.tree = np.full(n, -1, dtype=np.int64)  # alternating tree (its root's first vertex) of labelled vertices
        self.cols = np.arange(n)

    # -- keys: the least reduced cost from an outer vertex -------------------------------------

    def add_sources(self) -> None:
        """Fold the outer vertices labelled since the last call into the keys."""
        if not self.pending:
            return
        N = np.concatenate(self.pending)
        self.pending.clear()
        inb, key = self.inb, self.key
        M = self.C[N] - self.pi[N][:, None]
        M[inb[N][:, None] == inb[None, :]] = _BIG
        a = M.argmin(axis=0)
        val = M[a, self.cols]
        better = val < key
        key[better] = val[better]
        self.src[better] = N[a[better]]

    def recompute(self, b: int) -> None:
        """Keys of the vertices of blossom b, from every outer vertex outside it."""
        lv = self.leaves[b]
        out = np.flatnonzero(self.is_s & (self.inb != b))
        if len(out) == 0:
            self.key[lv] = _BIG
            self.src[lv] = -1
            return
        M = self.C[np.ix_(out, lv)] - self.pi[out][:, None]
        a = M.argmin(axis=0)
        self.key[lv] = M[a, np.arange(len(lv))]
        self.src[lv] = out[a]

    # -- labels and trees ----------------------------------------------------------------------

    def set_label(self, b: int, lab: int, frm: tuple[int, int] | None) -> None:
        """Label outermost blossom b free (0), outer (1) or inner (2), reached along ``frm``."""
        self.label[b] = lab
        self.labfrom[b] = frm
        lv, is_s, tree = self.leaves[b], self.is_s, self.tree
        if lab == 1:
            new = lv[~is_s[lv]]
            if len(new):
                self.pending.append(new)
        is_s[lv] = lab == 1
        self.sign[lv] = 1 if lab == 1 else (-1 if lab == 2 else 0)
        if lab == 0:
            tree[lv] = -1
        elif frm is not None:
            tree[lv] = tree[frm[0]]
        else:  # a root, or a blossom shrunk at the root (keeps the root's tree id)
            tree[lv] = tree[lv[0]] if tree[lv[0]] >= 0 else lv[0]

    def plant(self) -> None:
        """Start one alternating tree at every exposed vertex."""
        for b in set(self.inb[np.flatnonzero(self.mate < 0)].tolist()):
            self.set_label(b, 1, None)
        self.add_sources()

    def trace(self, b: int) -> list[int]:
        """Outermost blossoms from b up to its tree's root."""
        path = [b]
        while self.labfrom[b] is not None:
            b = int(self.inb[self.labfrom[b][0]])
            path.append(b)
        return path

    def child_of(self, b: int, v: int) -> int:
        """The child of blossom b that holds vertex v."""
        t = v
        while self.parent[t] != b:
            t = self.parent[t]
        return t

    # -- augmenting ----------------------------------------------------------------------------

    def aug_blossom(self, b: int, v: int) -> None:
        """Rotate the matching inside blossom b so that vertex v becomes its base."""
        n, mate = self.n, self.mate
        t = self.child_of(b, v)
        if t >= n:
            self.aug_blossom(t, v)
        ch, ed = self.childs[b], self.edges[b]
        k = len(ch)
        i = ch.index(t)
        if i:
            js = range(i - 2, -1, -2) if i % 2 == 0 else range(i + 1, k, 2)
            for j in js:
                x, y = ed[j]
                cx, cy = ch[j], ch[(j + 1) % k]
                if cx >= n:
                    self.aug_blossom(cx, x)
                if cy >= n:
                    self.aug_blossom(cy, y)
                mate[x], mate[y] = y, x
            self.childs[b] = ch[i:] + ch[:i]
            self.edges[b] = ed[i:] + ed[:i]
        self.base[b] = v

    def augment(self, v: int, w: int) -> None:
        """Flip the matching along the path from root to root through the pair v–w."""
        n, mate, inb, labfrom = self.n, self.mate, self.inb, self.labfrom
        for s, j in ((v, w), (w, v)):
            while True:
                bs = int(inb[s])
                if bs >= n:
                    self.aug_blossom(bs, s)
                mate[s] = j
                if labfrom[bs] is None:
                    break
                t = labfrom[bs][0]
                bt = int(inb[t])
                s2, t2 = labfrom[bt]
                if bt >= n:
                    self.aug_blossom(bt, t2)
                mate[t2] = s2
                s, j = s2, t2

    def dissolve(self, x: int, y: int) -> None:
        """Augment along x–y, then free the two trees it joined (and their blossoms with z = 0)."""
        n, inb, key, src, is_s = self.n, self.inb, self.key, self.src, self.is_s
        tx, ty = int(self.tree[x]), int(self.tree[y])
        gone = np.flatnonzero((self.tree == tx) | (self.tree == ty))
        gone_s = is_s[gone]
        self.augment(x, y)
        for b in set(inb[gone].tolist()):
            self.set_label(b, 0, None)
        for b in set(inb[gone].tolist()):
            if b >= n and self.z[b] == 0 and self.childs[b] is not None and self.parent[b] == -1:
                self.expand_free(b)
        bad = np.zeros(n, dtype=bool)
        bad[gone] = True  # their own keys may exclude vertices that are no longer in their blossom
        dead = np.zeros(n, dtype=bool)
        dead[gone[gone_s]] = True
        bad |= (src >= 0) & dead[np.maximum(src, 0)]
        idx = np.flatnonzero(bad)
        key[idx] = _BIG
        src[idx] = -1
        out = np.flatnonzero(is_s)
        if len(idx) and len(out):
            M = self.C[np.ix_(out, idx)] - self.pi[out][:, None]
            M[inb[out][:, None] == inb[idx][None, :]] = _BIG
            a = M.argmin(axis=0)
            val = M[a, np.arange(len(idx))]
            key[idx] = val
            src[idx] = np.where(val < _HALF, out[a], -1)

    # -- blossoms ------------------------------------------------------------------------------

    def grow(self, x: int, y: int) -> None:
        """Outer vertex x reaches free vertex y: y's blossom becomes inner, its mate's outer."""
        bf = int(self.inb[y])
        self.set_label(bf, 2, (x, y))
        bb = self.base[bf]
        m = int(self.mate[bb])
        self.set_label(int(self.inb[m]), 1, (bb, m))

    def shrink_cycle(self, x: int, y: int) -> None:
        """Outer vertices x and y of one tree are joined: shrink the odd cycle through them."""
        path_x, path_y = self.trace(int(self.inb[x])), self.trace(int(self.inb[y]))
        on_x = {b: i for i, b in enumerate(path_x)}
        iy = next(i for i, b in enumerate(path_y) if b in on_x)
        lca = path_y[iy]
        self.shrink(lca, path_x[: on_x[lca]], path_y[:iy], x, y)

    def shrink(self, lca: int, pv: list[int], pw: list[int], v: int, w: int) -> None:
        """Make a new outer blossom of ``lca`` and the tree paths ``pv``, ``pw`` joined by v–w."""
        labfrom = self.labfrom
        ch = [lca]
        ed: list[tuple[int, int]] = []
        for c in reversed(pv):
            p, q = labfrom[c]
            ed.append((p, q))
            ch.append(c)
        ed.append((v, w))
        for c in pw:
            ch.append(c)
            p, q = labfrom[c]
            ed.append((q, p))
        b = self.free_ids.pop()
        for c in ch:
            self.parent[c] = b
            self.outer_nt.discard(c)
        self.childs[b], self.edges[b] = ch, ed
        self.base[b] = self.base[lca]
        self.leaves[b] = np.concatenate([self.leaves[c] for c in ch])
        self.inb[self.leaves[b]] = b
        self.z[b] = 0
        self.outer_nt.add(b)
        self.set_label(b, 1, labfrom[lca])
        self.recompute(b)

    def release(self, b: int) -> None:
        """Return blossom id b to the free list."""
        self.childs[b] = self.edges[b] = self.leaves[b] = None
        self.label[b], self.labfrom[b], self.base[b], self.parent[b], self.z[b] = 0, None, -1, -1, 0
        self.outer_nt.discard(b)
        self.free_ids.append(b)

    def expand_inner(self, b: int) -> None:
        """Expand an inner (T) blossom whose dual reached 0, relabelling the even path through it."""
        n = self.n
        p, q = self.labfrom[b]
        entry = self.child_of(b, q)
        ch, ed = self.childs[b], self.edges[b]
        k = len(ch)
        for c in ch:
            self.parent[c] = -1
            self.inb[self.leaves[c]] = c
            if c >= n:
                self.outer_nt.add(c)
            self.set_label(c, 0, None)
        j = ch.index(entry)
        step = -1 if j % 2 == 0 else 1
        self.set_label(entry, 2, (p, q))
        idx, m = j, 0
        while idx != 0:
            nxt = (idx + step) % k
            m += 1
            if step == 1:
                frm, to = ed[idx]
            else:
                to, frm = ed[nxt]
            self.set_label(ch[nxt], 1 if m % 2 else 2, (frm, to))
            idx = nxt
        self.release(b)

    def expand_free(self, b: int) -> None:
        """Expand a free blossom (and its children with z = 0) into its children."""
        for c in self.childs[b]:
            self.parent[c] = -1
            self.inb[self.leaves[c]] = c
            if c >= self.n:
                self.outer_nt.add(c)
                if self.z[c] == 0:
                    self.expand_free(c)
        self.release(b)

    # -- one primal–dual step ------------------------------------------------------------------

    def next_move(self) -> tuple[np.int64, tuple[str, int, int]]:
        """The least dual change that makes a move possible, and that move: grow, edge or expand."""
        key, sign, z, label = self.key, self.sign, self.z, self.label
        best = _BIG
        act = None
        # Keys without a source stay near _BIG, so their slack is never the least.
        slack = key - self.pi
        a = int(np.argmin(np.where(sign == 0, slack, _BIG)))
        if sign[a] == 0 and key[a] < _HALF:
            best, act = slack[a], ("grow", int(self.src[a]), a)
        a = int(np.argmin(np.where(sign == 1, slack, _BIG)))
        if sign[a] == 1 and key[a] < _HALF and slack[a] // 2 < best:
            best, act = slack[a] // 2, ("edge", int(self.src[a]), a)
        for b in self.outer_nt:
            if label[b] == 2 and z[b] < best:
                best, act = z[b], ("expand", b, -1)
        if act is None:
            raise RuntimeError("blossom algorithm found no move")
        return best, act

    def dual_step(self, delta: np.int64) -> None:
        """Move the duals by ``delta``: up on outer vertices and blossoms, down on inner ones."""
        if not delta:
            return
        self.pi += delta * self.sign
        self.key -= delta  # keys near _BIG stay far above _HALF
        z, label = self.z, self.label
        for b in self.outer_nt:
            if label[b] == 1:
                z[b] += delta
            elif label[b] == 2:
                z[b] -= delta

    def move(self, act: tuple[str, int, int]) -> None:
        """Make the move: grow a tree, expand an inner blossom, augment, or shrink a cycle."""
        kind, x, y = act
        if kind == "grow":
            self.grow(x, y)
        elif kind == "expand":
            self.expand_inner(x)
        elif self.tree[x] != self.tree[y]:
            self.dissolve(x, y)
        else:
            self.shrink_cycle(x, y)
        self.add_sources()

    def result(self, iterations: int) -> BlossomResult:
        """The matching, its cost, the dual objective and the blossoms with their z."""
        n, C = self.n, self.C
        alive = [b for b in range(n, 2 * n) if self.childs[b] is not None]
        blossoms = [self.leaves[b] for b in alive]
        zb = self.z[alive].copy()
        dual = int(self.pi.sum() - sum(int(zz) * (len(lv) - 1) for zz, lv in zip(zb, blossoms)))
        iu = np.flatnonzero(self.mate > np.arange(n))
        primal = int(C[iu, self.mate[iu]].sum())
        return BlossomResult(self.mate, primal, dual, blossoms, zb, self.pi, iterations)


def blossom_matching(C: np.ndarray, *, max_iterations: int | None = None) -> BlossomResult:
    """Minimum-cost perfect matching for the symmetric integer cost matrix ``C`` (n × n, n even).

    ``C`` must be int64, a multiple of 4 off the diagonal (keeps every dual integral), with
    anything on the diagonal. Raises RuntimeError if the iteration guard trips (a bug).
    """
    n = len(C)
    if n % 2:
        raise ValueError("a perfect matching needs an even number of points")
    C = np.array(C, dtype=np.int64)
    np.fill_diagonal(C, _BIG)
    forest = _Forest(C, *_initial_duals(C))
    limit = max_iterations or 50 * n * n + 1000
    iterations = 0
    old_limit = sys.getrecursionlimit()
    if old_limit < 4 * n + 100:
        sys.setrecursionlimit(4 * n + 100)  # blossoms nest up to n deep
    try:
        # One forest of alternating trees, one per exposed vertex; an augmentation dissolves the
        # two trees it joins and leaves the others growing.
        forest.plant()
        while np.any(forest.mate < 0):
            iterations += 1
            if iterations > limit:
                raise RuntimeError("blossom algorithm did not converge")
            delta, act = forest.next_move()
            forest.dual_step(delta)
            forest.move(act)
    finally:
        sys.setrecursionlimit(old_limit)
    return forest.result(iterations)


def check_certificate(C: np.ndarray, res: BlossomResult) -> bool:
    """True when ``res.mate`` is a perfect matching and its duals prove it optimal for ``C``.

    Checked from the duals alone: every reduced cost ≥ 0, every z ≥ 0, primal = dual.
    """
    n = len(C)
    mate = res.mate
    if n == 0:
        return True
    if np.any(mate < 0) or np.any(mate[mate] != np.arange(n)) or np.any(mate == np.arange(n)):
        return False
    if np.any(res.z < 0):
        return False
    Cf = np.array(C, dtype=float)
    # y_v = pi_v - sum of z over blossoms holding v; sep(v, w) = a_v + a_w - 2 (M^T Z M)_vw.
    a = np.zeros(n)
    M = np.zeros((len(res.blossoms), n))
    for i, lv in enumerate(res.blossoms):
        M[i, lv] = 1.0
    zf = res.z.astype(float)
    if len(res.blossoms):
        a = M.T @ zf
    y = res.pi.astype(float) - a
    rc = Cf - y[:, None] - y[None, :] - a[:, None] - a[None, :]
    if len(res.blossoms):
        rc += 2.0 * (M.T * zf) @ M
    np.fill_diagonal(rc, 0.0)
    if rc.min() < -0.5:  # integers: anything below 0 is at most -1
        return False
    iu = np.flatnonzero(mate > np.arange(n))
    primal = int(np.asarray(C, dtype=np.int64)[iu, mate[iu]].sum())
    dual = float(y.sum() + zf.sum())
    return primal == res.primal and abs(primal - dual) < 0.5
