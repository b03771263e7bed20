"""The route optimality certificate: the odd-node matching behind every postman route's lower
bound is accepted only when its duals prove it optimal. A certificate altered in any one part
(the matching, a vertex dual, a blossom dual, the reported cost) is refused."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from gridpatrol.gis.routing.blossom import blossom_matching, check_certificate
from gridpatrol.gis.routing.matching import min_weight_perfect_matching


def _with_blossoms():
    """Euclidean points whose optimal matching needs blossoms (odd sets with z > 0)."""
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = 2 * int(rng.integers(6, 16))
        P = rng.random((n, 2)) * 1000
        D = np.hypot(P[:, None, 0] - P[None, :, 0], P[:, None, 1] - P[None, :, 1])
        C = np.rint(D * 10).astype(np.int64) * 4
        res = blossom_matching(C)
        if len(res.blossoms) and np.any(res.z > 0):
            return C, res
    raise AssertionError("no instance with blossoms found")


def test_an_altered_certificate_is_refused():
    C, res = _with_blossoms()
    n = len(C)
    assert check_certificate(C, res)

    def refused(change) -> bool:
        bad = copy.deepcopy(res)
        change(bad)
        return not check_certificate(C, bad)

    a, c = 0, int(res.mate[0])
    d = next(v for v in range(n) if v not in (a, c))

    def self_matched(r):
        # a and c left alone, and the numbers made to add up: only "perfect matching" fails
        r.mate = r.mate.copy()
        r.mate[[a, c]] = [a, c]
        r.primal -= int(C[a, c])
        r.pi = r.pi.copy()
        r.pi[a] -= int(C[a, c])

    def one_sided(r):
        r.mate = r.mate.copy()
        r.mate[a] = d  # a says d, d still says its own partner

    def unmatched(r):
        r.mate = r.mate.copy()
        r.mate[a] = -1

    def negative_z(r):
        r.z = r.z.copy()
        r.z[int(np.argmax(r.z))] = -4

    def raised_pi(r):
        # the same dual objective, but a's matched pair (tight) now costs less than its duals
        r.pi = r.pi.copy()
        r.pi[a] += 4
        r.pi[d] -= 4

    def raised_z(r):
        r.z = r.z.copy()
        r.z[int(np.argmax(r.z))] += 4

    def lower_pi(r):
        r.pi = r.pi.copy()
        r.pi[a] -= 4  # still feasible, but the bound no longer meets the matching's cost

    def cost_misreported(r):
        r.primal -= 4

    for change in (self_matched, one_sided, unmatched, negative_z, raised_pi, raised_z, lower_pi, cost_misreported):
        assert refused(change), change.__name__


def test_the_certified_bound_is_the_optimum_and_never_above_it():
    """Pairs at 1, 2, 3… metres on a line: the optimum pairs neighbours, 2-by-2 (worked out: n/2
    pairs of 1 m for points 0,1 | 2,3 | …); the bound equals it to 0.1 µm per point."""
    for n in (2, 4, 10, 20):
        x = np.arange(n, dtype=float)
        D = np.abs(x[:, None] - x[None, :])
        res = min_weight_perfect_matching(D)
        assert res.weight == pytest.approx(n / 2)
        assert sorted(tuple(sorted(p)) for p in res.pairs) == [(i, i + 1) for i in range(0, n, 2)]
        assert res.exact and res.weight - n * 1e-7 <= res.lower_bound <= res.weight
        assert res.method == {2: "pair", 4: "enumeration", 10: "blossom", 20: "blossom"}[n]


def test_no_odd_street_ends_need_no_matching():
    """Every street end even (an Euler graph already): nothing to match, nothing to add, bound 0."""
    res = min_weight_perfect_matching(np.zeros((0, 0)))
    assert (res.pairs, res.weight, res.lower_bound, res.exact) == ([], 0.0, 0.0, True)
    with pytest.raises(ValueError, match="even number"):
        min_weight_perfect_matching(np.zeros((3, 3)))
