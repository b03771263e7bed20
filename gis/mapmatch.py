"""Map matching: a hidden-Markov (Viterbi) matcher of GPS fixes onto a StreetNetwork, and the street length walked."""
from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import shapely
from gridpatrol.gis.routing.router import Router, path_nodes
from gridpatrol.gis.streets import StreetNetwork
from scipy import sparse
from scipy.sparse.csgraph import dijkstra
from shapely.geometry.base import BaseGeometry

WALK_MAX_MPS = 2.5  # how far a walker can get between two fixes bounds the route searched
NEG = -1e18
PLAN_LOG_ODDS = 0.5  # prior log-odds of a step between two edges the plan walks one after the other
TWIN_LOG_ODDS = 3.0  # prior log-odds that a repeated pass beside an unwalked twin street was on the twin
SPUR_SIGMAS = 1.5  # an in-and-out of a side street shallower than this many σ of its fixes is noise
KEEP_AFTER_S = 20.0  # a fix this long after the last one used is used even if close to it (one averaging window)


@dataclass
class MatchResult:
    """What a track walked: per edge the intervals (metres from the edge's start) and per fix the match."""

    n_edges: int
    intervals: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    fix_edge: np.ndarray | None = None  # edge of each fix used (−1: dropped as an outlier or too close)
    fix_offset: np.ndarray | None = None
    pieces: int = 0  # runs of fixes matched as one walk (a gap or an impossible step starts a new one)
    fixes_used: int = 0
    sigma_m: float = 0.0  # the fixes' noise the match assumed (estimated from the track unless told)

    def add(self, e: int, a: float, b: float) -> None:
        """Record that edge ``e`` was walked between offsets ``a`` and ``b`` (metres, any order)."""
        lo, hi = (a, b) if a <= b else (b, a)
        if hi - lo > 1e-9:
            self.intervals.setdefault(int(e), []).append((lo, hi))

    def merged(self) -> dict[int, list[tuple[float, float]]]:
        """Per edge, the walked intervals merged where they overlap (sorted)."""
        out: dict[int, list[tuple[float, float]]] = {}
        for e, iv in self.intervals.items():
            iv = sorted(iv)
            runs = [list(iv[0])]
            for lo, hi in iv[1:]:
                if lo > runs[-1][1]:
                    runs.append([lo, hi])
                else:
                    runs[-1][1] = max(runs[-1][1], hi)
            out[e] = [(a, b) for a, b in runs]
        return out

    def covered_m(self, net: StreetNetwork) -> np.ndarray:
        """Metres walked on each edge of ``net`` (the union of its intervals, scaled to ``edge_length_m``)."""
        out = np.zeros(net.n_edges)
        geom_len = shapely.length(net.edge_geom)
        for e, runs in self.merged().items():
            total = sum(b - a for a, b in runs)
            out[e] = min(total, geom_len[e]) * (net.edge_length_m[e] / geom_len[e] if geom_len[e] > 0 else 0.0)
        # A street mapped twice (two ways over the same line) is walked once: each copy gets the
        # best of its group, or the required length would count the unmatched twin as missed.
        groups = duplicate_groups(net)
        if len(groups):
            best = np.zeros(groups.max() + 1)
            np.maximum.at(best, groups, out)
            out = np.maximum(out, best[groups])
        return out

    def walked_lines(self, net: StreetNetwork) -> list[shapely.LineString]:
        """The walked parts of edges as metric LineStrings (for maps and checks)."""
        from shapely.ops import substring

        out = []
        for e, runs in self.merged().items():
            for lo, hi in runs:
                out.append(substring(net.edge_geom[e], lo, hi))
        return out


def duplicate_groups(net: StreetNetwork) -> np.ndarray:
    """A group label per edge: edges over the same line (ends within 0.5 m, lengths within 1 m) share one."""
    xy, start = net.coords()
    a, b = np.round(xy[start[:-1]] * 2), np.round(xy[start[1:] - 1] * 2)
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    lo, hi = np.where(swap[:, None], b, a), np.where(swap[:, None], a, b)
    key = np.column_stack([lo, hi, np.round(shapely.length(net.edge_geom))])
    return np.unique(key, axis=0, return_inverse=True)[1].ravel()


def planned_passes(net: StreetNetwork, lines: Iterable[BaseGeometry], *, tol_m: float = 0.5) -> np.ndarray:
    """Per edge, how many times a planned route walks it (metric lines in the network's CRS): the most over
    ``lines`` (alternative plans and shifts are not added up), the route's length along the edge over its length."""
    out = np.zeros(net.n_edges)
    glen = shapely.length(net.edge_geom)
    for line in lines:
        if line is None or line.is_empty or line.length <= 0:
            continue
        pts = shapely.line_interpolate_point(line, np.arange(0.5, line.length, 1.0))  # one point per metre
        _, ei = net.tree().query(pts, predicate="dwithin", distance=tol_m)
        n = np.bincount(ei, minlength=net.n_edges) / np.maximum(glen, 1.0)
        out = np.maximum(out, np.round(n))
    return out.astype(np.int64)


def planned_moves(net: StreetNetwork, lines: Iterable[BaseGeometry], *, within: int = 2,
                  tol_m: float = 0.5) -> sparse.csr_matrix:
    """Which edges a planned route walks one after the other (metric lines in the network's CRS): a symmetric
    boolean matrix, true for two edges at most ``within`` traversals apart on one of ``lines``, and for each
    planned edge with itself (walking on, turning back)."""
    rows, cols = [], []
    for line in lines:
        if line is None or line.is_empty or line.length <= 0:
            continue
        pts = shapely.line_interpolate_point(line, np.arange(0.5, line.length, 1.0))
        pi, ei = net.tree().query(pts, predicate="dwithin", distance=tol_m)
        one = np.bincount(pi, minlength=len(pts)) == 1  # points at a junction touch several edges: not used
        seq = ei[one[pi]]
        seq = seq[np.r_[True, seq[1:] != seq[:-1]]]
        for k in range(within + 1):
            rows.append(seq[:len(seq) - k])
            cols.append(seq[k:])
    if not rows:
        return sparse.csr_matrix((net.n_edges, net.n_edges), dtype=bool)
    r, c = np.concatenate(rows), np.concatenate(cols)
    m = sparse.coo_matrix((np.ones(2 * len(r), dtype=bool), (np.r_[r, c], np.r_[c, r])),
                          shape=(net.n_edges, net.n_edges)).tocsr()
    m.sum_duplicates()
    return m.astype(bool)


def walking_speed(x: np.ndarray, y: np.ndarray, t: np.ndarray, *, window_s: float = 60.0) -> float | None:
    """The track's speed while it moves (m/s): the length through its positions averaged over ``window_s`` (so
    the noise adds few metres) over the time between the first and last window; None with under three windows."""
    if len(t) < 3:
        return None
    b = np.floor((t - t[0]) / window_s).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    if len(starts) < 3:
        return None
    n = np.diff(np.r_[starts, len(t)])
    mx, my, mt = (np.add.reduceat(a, starts) / n for a in (x, y, t))
    span = float(mt[-1] - mt[0])
    return float(np.hypot(np.diff(mx), np.diff(my)).sum()) / span if span > 0 else None


def scatter_sigma(x: np.ndarray, y: np.ndarray) -> float | None:
    """The fixes' noise (σ per axis, metres) from their scatter alone, or None with fewer than 10 fixes.

    A walker's steps change slowly from one fix to the next, white noise does not: the second difference
    x[i+1] − 2x[i] + x[i−1] is noise with variance 6σ² per axis, plus the change of step at corners,
    stops and gaps, which the median (MAD) ignores as long as they are under half the fixes.
    """
    if len(x) < 10:
        return None
    d2 = np.concatenate([np.diff(x, 2), np.diff(y, 2)])
    return float(1.4826 * np.median(np.abs(d2 - np.median(d2))) / np.sqrt(6.0))


def _candidates(net: StreetNetwork, x: np.ndarray, y: np.ndarray, radius_m: float, k: int
                ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per fix: (edges, offsets along them, distances) of the ``k`` nearest edges within ``radius_m``."""
    pts = shapely.points(x, y)
    pi, ei = net.tree().query(pts, predicate="dwithin", distance=radius_m)
    geoms = net.edge_geom[ei]
    dist = shapely.distance(pts[pi], geoms)
    off = shapely.line_locate_point(geoms, pts[pi])
    order = np.lexsort((dist, pi))
    pi, ei, dist, off = pi[order], ei[order], dist[order], off[order]
    starts = np.searchsorted(pi, np.arange(len(x) + 1))
    out = []
    for i in range(len(x)):
        s, e = starts[i], min(starts[i + 1], starts[i] + k)
        out.append((ei[s:e], off[s:e], dist[s:e]))
    return out


class HmmMatcher:
    """Viterbi over candidate street positions per fix (Newson & Krumm 2009) on one StreetNetwork.

    Emission: Gaussian in the fix's distance to the street (``sigma_m``); transition: exponential in
    the difference between the route distance on the network and the straight distance (``beta_m``).
    Walking is undirected. Fixes closer than ``min_step_m`` to the last one used are skipped (noise,
    not movement) unless ``keep_after_s`` or more have passed since it (a sparse fix is news: the
    walker may have turned a corner since); a step no route can explain starts a new piece instead of failing.

    ``sigma_m`` is a prior: the track's own noise is estimated from a first match and the fixes' scatter
    (``estimated_sigma``) and, when it differs by more than 15 %, the track is matched again with it
    (``estimate_sigma``). ``debias``: the straight distance between two fixes is corrected for their noise
    before it is compared with the route (see ``_step_logp``).
    Two corrections for what fixes cannot tell apart (tuned on simulated walks, docs/patrols.md):
    ``twins`` — a street matched for two separate passes while its parallel twin within the noise
    (a footway beside its road) got none has one pass moved to the twin unless the fixes argue
    against it by more than ``TWIN_LOG_ODDS``; ``spurs`` — an in-and-out of a side street shallower
    than ``SPUR_SIGMAS`` σ is the scatter of fixes at a corner and is not credited.
    ``temporal``: a route between two fixes longer than a walker gets in the time between them is unlikely
    (see ``_step_logp``).
    ``planned``: per edge how often the planned routes walk it (``planned_passes``), the prior for what the fixes
    cannot settle: passes the plan itself puts on a street (out and back on a footway beside its road) are not
    moved to its twin.
    """

    def __init__(self, net: StreetNetwork, *, sigma_m: float = 15.0, beta_m: float | None = None,
                 radius_m: float | None = None, max_candidates: int = 8, min_step_m: float | None = None,
                 window_s: float = 20.0, keep_after_s: float = KEEP_AFTER_S,
                 estimate_sigma: bool = True, twins: bool = True, spurs: bool = True, debias: bool = True,
                 planned: np.ndarray | None = None, plan_moves: sparse.spmatrix | None = None, temporal: bool = True):
        self.net = net
        self.temporal = bool(temporal)
        self.planned = np.asarray(planned, dtype=np.int64) if planned is not None else np.zeros(net.n_edges, np.int64)
        self.plan_moves = sparse.csr_matrix(plan_moves, dtype=bool) if plan_moves is not None else None
        self._beta_m, self._radius_m = beta_m, radius_m
        self._set_sigma(sigma_m)
        self.estimate_sigma = bool(estimate_sigma)
        self.twins = bool(twins)
        self.spurs = bool(spurs)
        self.debias = bool(debias)
        self.k = max_candidates
        self.min_step = float(min_step_m) if min_step_m is not None else None
        self.window = float(window_s)
        self.keep_after = float(keep_after_s)
        self.graph = net.csgraph(False)
        self.router = Router(net, directed=False)
        self.glen = shapely.length(net.edge_geom)

    def _set_sigma(self, sigma_m: float) -> None:
        self.sigma = float(sigma_m)
        self.beta = float(self._beta_m if self._beta_m is not None else max(sigma_m, 5.0))
        self.radius = float(self._radius_m if self._radius_m is not None else max(3.5 * sigma_m, 40.0))

    def _aggregate(self, x: np.ndarray, y: np.ndarray, t: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Dense fixes averaged over windows of ``window_s``: (x, y, t, sigma per fix, the fix each came from)."""
        if self.window <= 0 or len(t) < 2:
            return x, y, t, np.full(len(t), self.sigma), np.arange(len(t))
        b = np.floor((t - t[0]) / self.window).astype(np.int64)
        starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
        n = np.diff(np.r_[starts, len(t)])
        mean = lambda a: np.add.reduceat(a, starts) / n
        sig = np.maximum(self.sigma / np.sqrt(n), min(self.sigma, 5.0))
        return mean(x), mean(y), mean(t), sig, starts

    def _thin(self, x: np.ndarray, y: np.ndarray, t: np.ndarray, min_step: float) -> np.ndarray:
        keep = [0]
        lx, ly, lt = x[0], y[0], t[0]
        for i in range(1, len(x)):
            if np.hypot(x[i] - lx, y[i] - ly) >= min_step or t[i] - lt >= self.keep_after or i == len(x) - 1:
                keep.append(i)
                lx, ly, lt = x[i], y[i], t[i]
        return np.asarray(keep, dtype=np.int64)

    def _transitions(self, ca: tuple, cb: tuple, gc: float, limit: float) -> tuple[np.ndarray, np.ndarray]:
        """(route distance, how: 0 same edge, 1 + 2·exit_end + entry_end) for every candidate pair."""
        net = self.net
        ea, oa, _ = ca
        eb, ob, _ = cb
        ends_a = np.stack([net.edge_u[ea], net.edge_v[ea]], axis=1)  # (na, 2)
        ends_b = np.stack([net.edge_u[eb], net.edge_v[eb]], axis=1)
        src, inv = np.unique(ends_a.ravel(), return_inverse=True)
        D = dijkstra(self.graph, directed=False, indices=src, limit=limit)  # (ns, n_nodes)
        inv = inv.reshape(-1, 2)
        la, lb = self.glen[ea], self.glen[eb]
        to_end_a = np.stack([oa, la - oa], axis=1)  # distance from the position to u, to v
        from_end_b = np.stack([ob, lb - ob], axis=1)
        best = np.full((len(ea), len(eb)), np.inf)
        how = np.zeros((len(ea), len(eb)), dtype=np.int8)
        for xa in range(2):
            for xb in range(2):
                d = to_end_a[:, xa, None] + D[inv[:, xa]][:, ends_b[:, xb]] + from_end_b[None, :, xb]
                better = d < best
                best = np.where(better, d, best)
                how = np.where(better, 1 + 2 * xa + xb, how)
        same = ea[:, None] == eb[None, :]
        direct = np.abs(oa[:, None] - ob[None, :])
        use = same & (direct <= best)
        best = np.where(use, direct, best)
        how = np.where(use, 0, how)
        return best, how

    def _step_logp(self, ca: tuple, cb: tuple, i0: int, i1: int, x: np.ndarray, y: np.ndarray, t: np.ndarray,
                   sig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Transition log-probability between the candidates of fixes ``i0`` and ``i1`` (−∞ as ``NEG``: no
        route within reach), and how each pair connects (see ``_transitions``).

        Newson & Krumm: exponential in |route − straight| / β. The straight distance between two noisy fixes
        overstates the step walked: E[straight²] = step² + 2 (σ₀² + σ₁²) for noise σ per axis. Where fixes are
        sparse and noisy (a 37 m step at σ 30 m) the raw distance made detours into side streets look like
        the better fit, so the step is compared with its noise-corrected estimate √max(0, straight² − 2(σ₀² + σ₁²)).

        ``temporal`` (the time between the fixes, as ST-Matching does): that comparison rewards a route that follows
        the fixes, so one fix thrown 100 m off (3σ at σ 30 m) was explained as a walk 90 m down a side street and
        back in 30 s. A route longer than ``WALK_MAX_MPS`` × the time costs 0.5 (excess / √(σ₀² + σ₁²))²: the
        positions compared are the fixes' projections, each off along the street by about its σ.
        """
        gc = float(np.hypot(x[i1] - x[i0], y[i1] - y[i0]))
        dt = max(float(t[i1] - t[i0]), 1.0)
        route, how = self._transitions(ca, cb, gc, self._limit(gc, dt))
        step = gc
        if self.debias:
            step = float(np.sqrt(max(gc * gc - 2.0 * (sig[i0] ** 2 + sig[i1] ** 2), 0.0)))
        logp = -np.abs(route - step) / self.beta
        if self.temporal:
            # The route between the two positions cannot be much longer than a walker gets in the time; the
            # positions are the fixes' projections, each off along the street by about its σ.
            over = np.maximum(route - WALK_MAX_MPS * dt, 0.0)
            logp = logp - 0.5 * over * over / (sig[i0] ** 2 + sig[i1] ** 2)
        if self.plan_moves is not None:
            logp = logp + PLAN_LOG_ODDS * self.plan_moves[ca[0]][:, cb[0]].toarray()
        return np.where(np.isfinite(route), logp, NEG), how

    def _limit(self, gc: float, dt: float) -> float:
        return max(gc, WALK_MAX_MPS * dt) * 1.5 + 2 * self.radius + 50.0

    def _viterbi(self, cands: list, emis: list, idx: np.ndarray, x: np.ndarray, y: np.ndarray, t: np.ndarray,
                 sig: np.ndarray) -> tuple[np.ndarray, list, list, list]:
        """Most likely candidate per fix: (choice, back pointers, way each pair connects, transition log-odds)."""
        score = emis[0].copy()
        back: list[np.ndarray | None] = [None]
        hows: list[np.ndarray | None] = [None]
        routes: list[np.ndarray | None] = [None]
        for s in range(1, len(idx)):
            trans, how = self._step_logp(cands[s - 1], cands[s], idx[s - 1], idx[s], x, y, t, sig)
            tot = score[:, None] + trans
            bp = np.argmax(tot, axis=0)
            new = tot[bp, np.arange(tot.shape[1])]
            if np.all(new <= NEG / 2):
                back.append(None)  # no route explains this step: a new piece starts here
                hows.append(None)
                routes.append(None)
                score = emis[s].copy()
            else:
                back.append(bp)
                hows.append(how)
                routes.append(trans)
                score = new + emis[s]
        # Backtrack piece by piece.
        choice = np.zeros(len(idx), dtype=np.int64)
        choice[-1] = int(np.argmax(score))
        for s in range(len(idx) - 1, 0, -1):
            if back[s] is None:
                # The previous piece ends at s-1: its best end was not kept; take the best emission
                # there (its own Viterbi end would need the score kept per piece: rescore below).
                choice[s - 1] = -1
            else:
                choice[s - 1] = back[s][choice[s]]
        self._fix_piece_ends(choice, back, emis, cands, idx, x, y, t, sig)
        return choice, back, hows, routes

    def estimated_sigma(self, x: np.ndarray, y: np.ndarray, t: np.ndarray) -> float | None:
        """The fixes' noise (σ per axis, metres) from the track itself, or None with too few fixes.

        Matched once with the prior σ; the distances of the fixes used from their matched streets are the
        across-street part of the noise, |N(0, σ)| for a fix on the right street, so σ ≈ 1.4826 × their
        median (a window's mean counts with √n). Where streets are dense and fixes sparse, noisy fixes are
        matched to whichever street is nearest and this understates σ (19 m for a true 30 m): the larger of
        it and ``scatter_sigma`` is taken (each can only understate: the scatter where the noise is
        correlated from one fix to the next). Clamped to 5–60 m.
        """
        n_all = len(t)
        x0, y0 = x, y
        x, y, t, sig, src = self._aggregate(x, y, t)
        n = np.diff(np.r_[src, n_all])  # fixes averaged into each window
        cands_all = _candidates(self.net, x, y, self.radius, self.k)
        idx = np.flatnonzero([len(c[0]) > 0 for c in cands_all])
        if len(idx) < 10:
            return None
        idx = idx[self._thin(x[idx], y[idx], t[idx], 2.0 * float(np.median(sig[idx])))]
        if len(idx) < 10:
            return None
        cands = [cands_all[i] for i in idx]
        emis = [-0.5 * (c[2] / sig[i]) ** 2 for c, i in zip(cands, idx)]
        choice, _, _, _ = self._viterbi(cands, emis, idx, x, y, t, sig)
        d = np.array([c[2][k] for c, k in zip(cands, choice)])
        est = max(1.4826 * float(np.median(d * np.sqrt(n[idx]))), scatter_sigma(x0, y0) or 0.0)
        return float(np.clip(est, 5.0, 60.0))

    def match(self, x: np.ndarray, y: np.ndarray, t: np.ndarray) -> MatchResult:
        """Match fixes (metric x, y in the network's CRS; t in seconds) and return what was walked."""
        n = len(x)
        res = MatchResult(self.net.n_edges, fix_edge=np.full(n, -1, dtype=np.int64), fix_offset=np.full(n, np.nan))
        if n == 0 or self.net.n_edges == 0:
            return res
        x0, y0, t0 = np.asarray(x, float), np.asarray(y, float), np.asarray(t, float)
        if self.estimate_sigma:
            est = self.estimated_sigma(x0, y0, t0)
            if est is not None and abs(est - self.sigma) > 0.15 * self.sigma:
                other = copy.copy(self)
                other._set_sigma(est)
                other.estimate_sigma = False
                res = other.match(x0, y0, t0)
                res.sigma_m = est
                return res
        res.sigma_m = self.sigma
        x, y, t, sig, src = self._aggregate(x0, y0, t0)
        cands_all = _candidates(self.net, x, y, self.radius, self.k)
        has = np.array([len(c[0]) > 0 for c in cands_all])
        idx = np.flatnonzero(has)
        if not len(idx):
            return res
        step = self.min_step if self.min_step is not None else 2.0 * float(np.median(sig[idx]))
        idx = idx[self._thin(x[idx], y[idx], t[idx], step)]
        cands = [cands_all[i] for i in idx]
        emis = [-0.5 * (c[2] / sig[i]) ** 2 for c, i in zip(cands, idx)]
        choice, back, hows, trans = self._viterbi(cands, emis, idx, x, y, t, sig)
        if self.twins:
            self._repeat_passes_to_twins(cands, choice, back, trans, emis, hows)
        res.pieces = 1 + sum(1 for b in back[1:] if b is None)
        res.fixes_used = len(idx)
        for s, i in enumerate(idx):
            e, o, _ = cands[s]
            res.fix_edge[src[i]], res.fix_offset[src[i]] = e[choice[s]], o[choice[s]]
        self._walk_all(res, cands, choice, back, hows, idx, x, y, t, sig[idx])
        if self.twins and self.planned.any():
            self._planned_twins_walked(res, cands, choice, back, t[idx], walking_speed(x0, y0, t0))
        return res

    def twin_edges(self) -> dict[int, list[int]]:
        """Per edge, the other streets along the same way within the noise: each end and every point within
        max(2σ, 15) m (Hausdorff) and of similar length (a footway beside its road, two carriageways)."""
        key = round(max(2.0 * self.sigma, 15.0), 1)
        cache = self.net.__dict__.setdefault("_mapmatch_twins", {})  # per network (one per assessment)
        if key not in cache:
            net = self.net
            g = net.edge_geom
            a, b = net.tree().query(g, predicate="dwithin", distance=key)
            groups = duplicate_groups(net)
            ok = (a != b) & (groups[a] != groups[b])
            a, b = a[ok], b[ok]
            la, lb = self.glen[a], self.glen[b]
            ok = (np.minimum(la, lb) >= 0.7 * np.maximum(la, lb)) & (np.minimum(la, lb) > 10.0)
            a, b = a[ok], b[ok]
            ok = shapely.hausdorff_distance(g[a], g[b]) <= key
            out: dict[int, list[int]] = {}
            for e, f in zip(a[ok].tolist(), b[ok].tolist()):
                out.setdefault(e, []).append(f)
            cache[key] = out
        return cache[key]

    def _repeat_passes_to_twins(self, cands: list, choice: np.ndarray, back: list, trans: list, emis: list,
                                hows: list) -> None:
        """Passes along a street and its twin (a parallel way within the noise) that the fixes cannot tell apart,
        settled by the prior. Each pair is settled once; a move is made unless the fixes and the way in and out
        argue against it by more than ``TWIN_LOG_ODDS``.

        - A street matched for two separate passes while its twin got no pass (a single fix on it is the scatter
          at a corner, not a pass, and is not moved either): a patrol walks both, so the pass that fits the twin
          best is moved there —
          unless the plan itself walks the street as often as it was matched (``planned``: out and back on it;
          a run of fixes that enters and leaves the street by the same end is two passes)."""
        twins = self.twin_edges()
        if not twins:
            return
        m = len(choice)
        edge = np.array([int(cands[s][0][choice[s]]) for s in range(m)])
        changed = True
        moved: set[int] = set()  # edges a pass was moved to or from: each pair is settled once
        while changed:
            changed = False
            runs: dict[int, list[tuple[int, int]]] = {}
            s = 0
            while s < m:
                r = s
                while r + 1 < m and edge[r + 1] == edge[s] and back[r + 1] is not None:
                    r += 1
                runs.setdefault(int(edge[s]), []).append((s, r))
                s = r + 1
            # A twin touched by a single fix (the scatter at a corner) has not had a pass along it.
            used = {e for e, rr in runs.items() if any(r1 > r0 for r0, r1 in rr)} | moved
            best = None
            for a_e, rr in runs.items():
                if len(rr) < 2 or a_e not in twins or a_e in moved:
                    continue
                if self.planned[a_e] >= 2 and self.planned[a_e] >= sum(self._passes(a_e, r0, r1, choice, back, hows)
                                                                       for r0, r1 in rr if r1 > r0):
                    continue
                for b_e in twins[a_e]:
                    if b_e in used:
                        continue
                    for s0, s1 in rr:
                        if s1 == s0:
                            continue  # a single fix is no pass (the scatter at a corner): not moved either
                        got = self._pass_delta(cands, choice, back, trans, emis, s0, s1, b_e)
                        if got is not None and (best is None or got[0] > best[0]):
                            best = (got[0], a_e, b_e, s0, got[1])
                if best is not None:
                    break
            if best is not None:
                _, from_e, to_e, s0, jb = best
                choice[s0:s0 + len(jb)] = jb
                edge[s0:s0 + len(jb)] = to_e
                moved |= {from_e, to_e}
                changed = True

    def _planned_twins_walked(self, res: MatchResult, cands: list, choice: np.ndarray, back: list, t: np.ndarray,
                              speed: float | None) -> None:
        """A twin pair the plan walks both of, matched all on one: when the time spent along the pair, at the track's
        own speed (m/s, ``walking_speed``), comes to the passes the plan puts on both (less half a pass), the twin
        without a pass is credited too."""
        if not speed:
            return
        twins = self.twin_edges()
        edge = np.array([int(cands[s][0][choice[s]]) for s in range(len(choice))])
        covered = {e: sum(b - a for a, b in iv) for e, iv in res.merged().items()}
        for a_e, bs in twins.items():
            for b_e in bs:
                if a_e > b_e or not (self.planned[a_e] and self.planned[b_e]):
                    continue
                la, lb = self.glen[a_e], self.glen[b_e]
                ca, cb = covered.get(a_e, 0.0) / la, covered.get(b_e, 0.0) / lb
                if (ca > 0.2) == (cb > 0.2):
                    continue
                on = np.isin(edge, (a_e, b_e))
                spent = sum(float(t[s] - t[s - 1]) for s in range(1, len(t)) if back[s] is not None and on[s] and on[s - 1])
                if spent * speed / (0.5 * (la + lb)) + 0.5 >= self.planned[a_e] + self.planned[b_e]:
                    e, length = (b_e, lb) if ca > 0.2 else (a_e, la)
                    res.add(e, 0.0, length)

    def _passes(self, e: int, s0: int, s1: int, choice: np.ndarray, back: list, hows: list) -> int:
        """Passes along edge ``e`` of the run of fixes ``s0``…``s1`` on it: 2 when the way in and the way out are at
        the same end (out and back), else 1."""
        if s0 == 0 or s1 + 1 >= len(choice) or back[s0] is None or back[s1 + 1] is None:
            return 1
        h_in, h_out = int(hows[s0][choice[s0 - 1], choice[s0]]), int(hows[s1 + 1][choice[s1], choice[s1 + 1]])
        if not h_in or not h_out:
            return 1
        return 2 if (h_in - 1) % 2 == (h_out - 1) // 2 else 1

    def _pass_delta(self, cands: list, choice: np.ndarray, back: list, trans: list, emis: list, s0: int, s1: int,
                    to_e: int) -> tuple[float, list[int]] | None:
        """Log-odds of the fixes ``s0``…``s1`` (and the way in and out) on edge ``to_e`` rather than where they are
        matched, and their candidates there; None when a fix has no candidate on it or the odds are under
        −``TWIN_LOG_ODDS``."""
        m = len(choice)
        jb = []
        for q in range(s0, s1 + 1):
            hit = np.flatnonzero(cands[q][0] == to_e)
            if not len(hit):
                return None
            jb.append(int(hit[0]))
        delta = sum(emis[q][jb[q - s0]] - emis[q][choice[q]] for q in range(s0, s1 + 1))
        for q in range(s0 + 1, s1 + 1):
            delta += trans[q][jb[q - s0 - 1], jb[q - s0]] - trans[q][choice[q - 1], choice[q]]
        if s0 > 0 and back[s0] is not None:
            delta += trans[s0][choice[s0 - 1], jb[0]] - trans[s0][choice[s0 - 1], choice[s0]]
        if s1 + 1 < m and back[s1 + 1] is not None:
            delta += trans[s1 + 1][jb[-1], choice[s1 + 1]] - trans[s1 + 1][choice[s1], choice[s1 + 1]]
        return (float(delta), jb) if delta > -TWIN_LOG_ODDS else None

    def _walk_all(self, res: MatchResult, cands: list, choice: np.ndarray, back: list, hows: list,
                  idx: np.ndarray, x: np.ndarray, y: np.ndarray, t: np.ndarray, sig: np.ndarray) -> None:
        skip = self._noise_spurs(cands, choice, back, hows, sig) if self.spurs else {}
        for s in range(1, len(idx)):
            if back[s] is None:
                continue
            self._walk(res, cands[s - 1], choice[s - 1], cands[s], choice[s], int(hows[s][choice[s - 1], choice[s]]),
                       float(np.hypot(x[idx[s]] - x[idx[s - 1]], y[idx[s]] - y[idx[s - 1]])),
                       max(float(t[idx[s]] - t[idx[s - 1]]), 1.0), skip.get(s, -1))

    def _noise_spurs(self, cands: list, choice: np.ndarray, back: list, hows: list, sig: np.ndarray) -> dict[int, int]:
        """Steps (by index) and the edge not to credit on them: fixes matched a few metres into a side street
        and straight back out of the same end. A walker at a corner has fixes that scatter into the side
        streets by about σ; such an in-and-out shallower than ``SPUR_SIGMAS`` σ is noise, not a walk (dead
        ends excepted: their end is reached only by walking in)."""
        net = self.net
        deg = self._degree()
        m = len(choice)
        edge = np.array([int(cands[s][0][choice[s]]) for s in range(m)])
        off = np.array([float(cands[s][1][choice[s]]) for s in range(m)])
        out: dict[int, int] = {}
        s = 1
        while s < m:
            r = s
            while r + 1 < m and edge[r + 1] == edge[s] and back[r + 1] is not None:
                r += 1
            e = int(edge[s])
            if back[s] is not None and r + 1 < m and back[r + 1] is not None and edge[s - 1] != e:
                h_in = int(hows[s][choice[s - 1], choice[s]])
                h_out = int(hows[r + 1][choice[r], choice[r + 1]])
                if h_in and h_out:
                    end_in, end_out = (h_in - 1) % 2, (h_out - 1) // 2
                    if end_in == end_out and deg[net.edge_u[e]] > 1 and deg[net.edge_v[e]] > 1:
                        depth = np.max(self.glen[e] - off[s:r + 1] if end_in else off[s:r + 1])
                        if depth < SPUR_SIGMAS * float(np.max(sig[s:r + 1])):
                            for q in range(s, r + 2):
                                out[q] = e
            s = r + 1
        return out

    def _degree(self) -> np.ndarray:
        if "_deg" not in self.__dict__:
            self._deg = np.bincount(np.r_[self.net.edge_u, self.net.edge_v])
        return self._deg

    def _fix_piece_ends(self, choice: np.ndarray, back: list, emis: list, cands: list, idx: np.ndarray,
                        x: np.ndarray, y: np.ndarray, t: np.ndarray, sig: np.ndarray) -> None:
        """Viterbi again within each piece that ended before a break (its end was left open)."""
        s = len(choice) - 1
        while s > 0:
            if back[s] is not None:
                s -= 1
                continue
            end = s - 1  # the last fix of the previous piece
            start = end
            while start > 0 and back[start] is not None:
                start -= 1
            score = emis[start].copy()
            bps = {}
            for r in range(start + 1, end + 1):
                trans, _ = self._step_logp(cands[r - 1], cands[r], idx[r - 1], idx[r], x, y, t, sig)
                tot = score[:, None] + trans
                bps[r] = np.argmax(tot, axis=0)
                score = tot[bps[r], np.arange(tot.shape[1])] + emis[r]
            choice[end] = int(np.argmax(score))
            for r in range(end, start, -1):
                choice[r - 1] = bps[r][choice[r]]
            s = start

    def _walk(self, res: MatchResult, ca: tuple, a: int, cb: tuple, b: int, how: int, gc: float, dt: float,
              skip: int = -1) -> None:
        """Record the route from candidate ``a`` of one fix to ``b`` of the next as walked intervals (edge ``skip``
        not: a noise spur)."""
        if skip >= 0:
            res = _Skip(res, skip)
        net = self.net
        ea, oa = int(ca[0][a]), float(ca[1][a])
        eb, ob = int(cb[0][b]), float(cb[1][b])
        if how == 0:
            res.add(ea, oa, ob)
            return
        xa, xb = (how - 1) // 2, (how - 1) % 2
        na = int(net.edge_v[ea] if xa else net.edge_u[ea])
        nb = int(net.edge_v[eb] if xb else net.edge_u[eb])
        res.add(ea, oa, self.glen[ea] if xa else 0.0)
        res.add(eb, 0.0 if xb == 0 else self.glen[eb], ob)
        if na == nb:
            return
        _, pred = dijkstra(self.graph, directed=False, indices=na, limit=self._limit(gc, dt), return_predecessors=True)
        for tr in self.router.traversals(path_nodes(pred, na, nb)):
            res.add(tr.edge, 0.0, self.glen[tr.edge])


class _Skip:
    """A MatchResult that ignores one edge (for a step into and out of a noise spur)."""

    def __init__(self, res: MatchResult, edge: int):
        self.res, self.edge = res, edge

    def add(self, e: int, a: float, b: float) -> None:
        if int(e) != self.edge:
            self.res.add(e, a, b)


def nearest_snap(net: StreetNetwork, x: np.ndarray, y: np.ndarray, *, radius_m: float = 50.0) -> MatchResult:
    """Baseline: each fix snapped to its nearest street; consecutive fixes on one edge walk between them."""
    res = MatchResult(net.n_edges, fix_edge=np.full(len(x), -1, dtype=np.int64), fix_offset=np.full(len(x), np.nan))
    cands = _candidates(net, x, y, radius_m, 1)
    prev = None
    for i, (e, o, _) in enumerate(cands):
        if not len(e):
            prev = None
            continue
        res.fix_edge[i], res.fix_offset[i] = e[0], o[0]
        if prev is not None and prev[0] == e[0]:
            res.add(int(e[0]), prev[1], float(o[0]))
        prev = (int(e[0]), float(o[0]))
    res.fixes_used = int((res.fix_edge >= 0).sum())
    return res
