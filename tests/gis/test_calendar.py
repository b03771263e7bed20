"""The patrol calendar: every shift once, and the busiest day as light as the brute-force optimum."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.routing.calendar import patrol_calendar


def _brute_force_busiest_day(seconds: list[int], days: int) -> int:
    """The lightest busiest day over every assignment of shifts to days (D^n of them)."""
    best = sum(seconds)
    for assign in itertools.product(range(days), repeat=len(seconds)):
        load = [0] * days
        for s, d in zip(seconds, assign):
            load[d] += s
        best = min(best, max(load))
    return best


@pytest.mark.parametrize("seed", range(40))
def test_the_busiest_day_is_the_brute_force_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, days = int(rng.integers(1, 9)), int(rng.integers(1, 5))
    # Lumpy times, as real shifts are: a few long ones and many short ones, whole seconds.
    seconds = [int(x) for x in rng.choice([rng.integers(600, 1800), rng.integers(3600, 6000)], size=n)]
    cal = patrol_calendar([(f"s{i}", s) for i, s in enumerate(seconds)], days)
    placed = sorted(k for ks in cal.days for k in ks)
    assert placed == sorted(f"s{i}" for i in range(n))  # each shift once
    assert len(cal.days) == days and cal.day_of == {k: d + 1 for d, ks in enumerate(cal.days) for k in ks}
    assert cal.day_s == [sum(seconds[int(k[1:])] for k in ks) for ks in cal.days]
    best = _brute_force_busiest_day(seconds, days)
    assert cal.optimal and cal.max_day_s == best, (seconds, days, cal)
    assert cal.lower_bound_s <= best


def test_lpt_is_not_enough_and_the_solver_finds_the_optimum() -> None:
    """3,3,2,2,2 over two days: longest-first gives 7, the optimum is 6 (3+3 | 2+2+2)."""
    cal = patrol_calendar([(i, s) for i, s in enumerate([3000, 3000, 2000, 2000, 2000])], 2)
    assert cal.optimal and cal.max_day_s == 6000 and sorted(cal.day_s) == [6000, 6000]


@pytest.mark.parametrize("days", [0, -1, 32, 2.5])
def test_a_bad_cycle_is_refused(days) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match="--cycle-days"):
        patrol_calendar([("a", 60.0)], days)


def test_bad_shift_times_are_refused() -> None:
    with pytest.raises(InputError, match="finite"):
        patrol_calendar([("a", float("nan"))], 2)
    with pytest.raises(InputError, match="own key"):
        patrol_calendar([("a", 1.0), ("a", 2.0)], 2)
