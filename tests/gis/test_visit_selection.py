"""Which key points fit a time budget: the exact choice against brute force, and on real streets."""
from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pytest
from gridpatrol.gis.osm import read_osm
from gridpatrol.gis.routing.visit import best_selection, plan_visit

from tests.conftest import data_path


@pytest.mark.parametrize("closed", [True, False])
def test_best_selection_matches_brute_force(closed):
    rng = np.random.default_rng(7 if closed else 8)
    for _ in range(60):
        n = int(rng.integers(1, 9))
        xy = rng.uniform(0, 2000, (n, 2))
        D = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) * rng.uniform(1, 1.3, (n, n))
        prize = rng.uniform(0, 3, n)
        prize[0] = 0
        budget, dwell, speed = float(rng.uniform(100, 3000)), float(rng.uniform(0, 200)), 1.2
        seq, gain, length = best_selection(D, prize, budget, dwell, speed, closed)
        best = (0.0, 0.0)
        for r in range(1, n):
            for sub in itertools.combinations(range(1, n), r):
                shortest = min(sum(D[a, b] for a, b in zip((0, *p), (*p, 0) if closed else p))
                               for p in itertools.permutations(sub))
                if shortest / speed + dwell * r <= budget + 1e-9:
                    best = max(best, (float(prize[list(sub)].sum()), -shortest))
        assert gain == pytest.approx(best[0], abs=1e-9) and length == pytest.approx(-best[1], abs=1e-6)
        assert seq[0] == 0 and closed == (len(seq) > 1 and seq[-1] == 0)
        assert sum(D[a, b] for a, b in zip(seq[:-1], seq[1:])) == pytest.approx(length)


def test_budget_keeps_the_most_important_points_on_real_streets():
    data = read_osm(data_path("nanjing", "xuanwu.osm"))
    pts = data.buildings.to_crs(4326).representative_point().iloc[:10].reset_index(drop=True)
    imp = np.linspace(5, 0.5, 10)
    points = gpd.GeoDataFrame({"importance": imp}, geometry=pts.to_numpy(), crs=4326)
    full = plan_visit(points, roads=data.roads, time_limit_s=1)
    plan = plan_visit(points, roads=data.roads, budget_s=full.duration_s * 0.5, time_limit_s=1)
    assert plan.stats["selection"] == "exact (DP over subsets)"
    assert 0 < len(plan.order) < 10 and plan.duration_s <= full.duration_s * 0.5 + 1
    assert sorted(plan.order + plan.dropped) == list(range(10))
    assert plan.stats["importance_visited"] == pytest.approx(imp[plan.order].sum())
