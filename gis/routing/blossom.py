"""Exact minimum-weight perfect matching on a dense cost matrix: Edmonds' primal–dual blossom algorithm.

Costs are rounded to integers (0.1 µm when given in metres) so that every dual update is exact
integer arithmetic: no tolerances, no cycling. The result carries its dual solution, and
``check_certificate`` verifies it independently (dual feasible on every pair, primal = dual).

Notation: ``pi[v]`` is vertex v's dual plus the duals ``z`` of all blossoms holding v, so the
reduced cost of a pair in different outer blossoms is ``C[v, w] - pi[v] - pi[w]``.
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
    """Feasible, even duals and a matching of tight pairs, from the assignment relaxation.

    The optimal assignment (scipy) on C/4 pairs most points already (its 2-cycles); its duals
    u, v (from shortest paths over the assignment's reduced costs) give pi = 2 (u + v), feasible
    for the matching and tight on every 2-cycle. Odd cycles leave a few points for the blossom
    stages.
    """
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
    pi, mate = _initial_duals(C)
    nb = 2 * n
    inb = np.arange(n)  # outermost blossom of each vertex
    parent = [-1] * nb
    childs: list[list[int] | None] = [None] * nb
    edges: list[list[tuple[int, int]] | None] = [None] * nb
    base = list(range(n)) + [-1] * n
    leaves: list[np.ndarray | None] = [np.array([v]) for v in range(n)] + [None] * n
    z = np.zeros(nb, dtype=np.int64)
    label = [0] * nb  # 0 free, 1 outer (S), 2 inner (T); only for outermost blossoms
    labfrom: list[tuple[int, int] | None] = [None] * nb  # (vertex outside, vertex inside)
    free_ids = list(range(nb - 1, n - 1, -1))
    outer_nt: set[int] = set()  # outermost non-trivial blossoms
    is_s = np.zeros(n, dtype=bool)
    is_t = np.zeros(n, dtype=bool)
    sign = np.zeros(n, dtype=np.int64)  # +1 outer, -1 inner, 0 free: how a dual step moves pi
    # key[w]: least C[s, w] - pi[s] over outer vertices s in another outermost blossom (src[w] = s);
    # kept up to date as outer vertices appear, so each step is O(n) instead of O(n^2).
    key = np.full(n, _BIG, dtype=np.int64)
    src = np.full(n, -1, dtype=np.int64)
    pending: list[np.ndarray] = []
    tree = np.full(n, -1, dtype=np.int64)  # alternating tree (its root's first vertex) of labelled vertices
    cols = np.arange(n)

    def add_sources(N: np.ndarray) -> None:
        M = C[N] - pi[N][:, None]
        M[inb[N][:, None] == inb[None, :]] = _BIG
        a = M.argmin(axis=0)
        val = M[a, cols]
        better = val < key
        key[better] = val[better]
        src[better] = N[a[better]]

    def recompute(b: int) -> None:
        lv = leaves[b]
        out = np.flatnonzero(is_s & (inb != b))
        if len(out) == 0:
            key[lv] = _BIG
            src[lv] = -1
            return
        M = C[np.ix_(out, lv)] - pi[out][:, None]
        a = M.argmin(axis=0)
        key[lv] = M[a, np.arange(len(lv))]
        src[lv] = out[a]

    limit = max_iterations or 50 * n * n + 1000
    iterations = 0
    old_limit = sys.getrecursionlimit()
    if old_limit < 4 * n + 100:
        sys.setrecursionlimit(4 * n + 100)

    def set_label(b: int, lab: int, frm: tuple[int, int] | None) -> None:
        label[b] = lab
        labfrom[b] = frm
        lv = leaves[b]
        if lab == 1:
            new = lv[~is_s[lv]]
            if len(new):
                pending.append(new)
        is_s[lv] = lab == 1
        is_t[lv] = lab == 2
        sign[lv] = 1 if lab == 1 else (-1 if lab == 2 else 0)
        if lab == 0:
            tree[lv] = -1
        elif frm is not None:
            tree[lv] = tree[frm[0]]
        else:  # a root, or a blossom shrunk at the root (keeps the root's tree id)
            tree[lv] = tree[lv[0]] if tree[lv[0]] >= 0 else lv[0]

    def trace(b: int) -> list[int]:
        path = [b]
        while labfrom[b] is not None:
            b = int(inb[labfrom[b][0]])
            path.append(b)
        return path

    def child_of(b: int, v: int) -> int:
        t = v
        while parent[t] != b:
            t = parent[t]
        return t

    def aug_blossom(b: int, v: int) -> None:
        """Rotate the matching inside blossom b so that vertex v becomes its base."""
        t = child_of(b, v)
        if t >= n:
            aug_blossom(t, v)
        ch, ed = childs[b], edges[b]
        k = len(ch)
        i = ch.index(t)
        if i:
            js = range(i - 2, -1, -2) if i % 2 == 0 else range(i + 1, k, 2)
            for j in js:
                x, y = ed[j]
                cx, cy = ch[j], ch[(j + 1) % k]
                if cx >= n:
                    aug_blossom(cx, x)
                if cy >= n:
                    aug_blossom(cy, y)
                mate[x], mate[y] = y, x
            childs[b] = ch[i:] + ch[:i]
            edges[b] = ed[i:] + ed[:i]
        base[b] = v

    def augment(v: int, w: int) -> None:
        for s, j in ((v, w), (w, v)):
            while True:
                bs = int(inb[s])
                if bs >= n:
                    aug_blossom(bs, s)
                mate[s] = j
                if labfrom[bs] is None:
                    break
                t = labfrom[bs][0]
                bt = int(inb[t])
                s2, t2 = labfrom[bt]
                if bt >= n:
                    aug_blossom(bt, t2)
                mate[t2] = s2
                s, j = s2, t2

    def shrink(lca: int, pv: list[int], pw: list[int], v: int, w: int) -> None:
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
        b = free_ids.pop()
        for c in ch:
            parent[c] = b
            outer_nt.discard(c)
        childs[b], edges[b] = ch, ed
        base[b] = base[lca]
        leaves[b] = np.concatenate([leaves[c] for c in ch])
        inb[leaves[b]] = b
        z[b] = 0
        outer_nt.add(b)
        set_label(b, 1, labfrom[lca])
        recompute(b)

    def release(b: int) -> None:
        childs[b] = edges[b] = leaves[b] = None
        label[b], labfrom[b], base[b], parent[b], z[b] = 0, None, -1, -1, 0
        outer_nt.discard(b)
        free_ids.append(b)

    def expand_inner(b: int) -> None:
        """Expand an inner (T) blossom whose dual reached 0, relabelling the even path through it."""
        p, q = labfrom[b]
        entry = child_of(b, q)
        ch, ed = childs[b], edges[b]
        k = len(ch)
        for c in ch:
            parent[c] = -1
            inb[leaves[c]] = c
            if c >= n:
                outer_nt.add(c)
            set_label(c, 0, None)
        j = ch.index(entry)
        step = -1 if j % 2 == 0 else 1
        set_label(entry, 2, (p, q))
        idx, m = j, 0
        while idx != 0:
            nxt = (idx + step) % k
            m += 1
            if step == 1:
                frm, to = ed[idx]
            else:
                to, frm = ed[nxt]
            set_label(ch[nxt], 1 if m % 2 else 2, (frm, to))
            idx = nxt
        release(b)

    def expand_free(b: int) -> None:
        for c in childs[b]:
            parent[c] = -1
            inb[leaves[c]] = c
            if c >= n:
                outer_nt.add(c)
                if z[c] == 0:
                    expand_free(c)
        release(b)

    def dissolve(tx: int, ty: int, x: int, y: int) -> None:
        """Augment along x–y, then free the two trees it joined (and their blossoms with z = 0)."""
        gone = np.flatnonzero((tree == tx) | (tree == ty))
        gone_s = is_s[gone]
        augment(x, y)
        for b in set(inb[gone].tolist()):
            set_label(b, 0, None)
        for b in set(inb[gone].tolist()):
            if b >= n and z[b] == 0 and childs[b] is not None and parent[b] == -1:
                expand_free(b)
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
            M = C[np.ix_(out, idx)] - pi[out][:, None]
            M[inb[out][:, None] == inb[idx][None, :]] = _BIG
            a = M.argmin(axis=0)
            val = M[a, np.arange(len(idx))]
            key[idx] = val
            src[idx] = np.where(val < _HALF, out[a], -1)

    try:
        # One forest of alternating trees, one per exposed vertex; an augmentation dissolves the
        # two trees it joins and leaves the others growing.
        exposed = np.flatnonzero(mate < 0)
        for b in set(inb[exposed].tolist()):
            set_label(b, 1, None)
        if pending:
            add_sources(np.concatenate(pending))
            pending.clear()
        while len(exposed):
            iterations += 1
            if iterations > limit:
                raise RuntimeError("blossom algorithm did not converge")
            best = _BIG
            act = None
            # Keys without a source stay near _BIG, so their slack is never the least.
            slack = key - pi
            a = int(np.argmin(np.where(sign == 0, slack, _BIG)))
            if sign[a] == 0 and key[a] < _HALF:
                best, act = slack[a], ("grow", int(src[a]), a)
            a = int(np.argmin(np.where(sign == 1, slack, _BIG)))
            if sign[a] == 1 and key[a] < _HALF and slack[a] // 2 < best:
                best, act = slack[a] // 2, ("edge", int(src[a]), a)
            for b in outer_nt:
                if label[b] == 2 and z[b] < best:
                    best, act = z[b], ("expand", b, -1)
            if act is None:
                raise RuntimeError("blossom algorithm found no move")
            if best:
                pi += best * sign
                key -= best  # keys near _BIG stay far above _HALF
                for b in outer_nt:
                    if label[b] == 1:
                        z[b] += best
                    elif label[b] == 2:
                        z[b] -= best
            kind, x, y = act
            if kind == "grow":
                bf = int(inb[y])
                set_label(bf, 2, (x, y))
                bb = base[bf]
                m = int(mate[bb])
                set_label(int(inb[m]), 1, (bb, m))
            elif kind == "expand":
                expand_inner(x)
            else:
                if tree[x] != tree[y]:
                    dissolve(int(tree[x]), int(tree[y]), x, y)
                    exposed = np.flatnonzero(mate < 0)
                    continue
                path_x, path_y = trace(int(inb[x])), trace(int(inb[y]))
                on_x = {b: i for i, b in enumerate(path_x)}
                iy = next(i for i, b in enumerate(path_y) if b in on_x)
                lca = path_y[iy]
                shrink(lca, path_x[: on_x[lca]], path_y[:iy], x, y)
            if pending:
                add_sources(np.concatenate(pending))
                pending.clear()
    finally:
        sys.setrecursionlimit(old_limit)
    alive = [b for b in range(n, nb) if childs[b] is not None]
    blossoms = [leaves[b] for b in alive]
    zb = z[alive].copy()
    dual = int(pi.sum() - sum(int(zz) * (len(lv) - 1) for zz, lv in zip(zb, blossoms)))
    iu = np.flatnonzero(mate > np.arange(n))
    primal = int(C[iu, mate[iu]].sum())
    return BlossomResult(mate, primal, dual, blossoms, zb, pi, iterations)


def check_certificate(C: np.ndarray, res: BlossomResult) -> bool:
    """True when ``res.mate`` is a perfect matching and the duals prove it optimal for ``C``.

    Independent of how the result was found: every pair's reduced cost
    ``C[v,w] - y_v - y_w - sum(z_B for blossoms B separating v and w)`` is ≥ 0, every z ≥ 0,
    and the matching's cost equals the dual objective.
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
