"""The household band a grid must meet, and how many grids a piece of the plan gets."""
from __future__ import annotations

import math
from dataclasses import dataclass

from gridpatrol.gis.errors import InputError

TOLERANCE = 1e-9  # households (and fractions of them) closer than this are equal
# the window violation counts one household outside the hard band as much as this many
# households inside the band but outside the window
BAND_OVER_WINDOW = 1000.0
# a grid over a street or area cap counts (share over the cap × target) × this in the violation
CAP_VIOLATION_WEIGHT = 10.0
# grid counts set by a cap leave this share of the cap free: a mean right at the cap puts half
# the grids over it
CAP_HEADROOM = 0.85


@dataclass(frozen=True)
class Band:
    """Household balance rule: target, hard band [low, high], and the window the repair aims for.

    The window is the band narrowed to ±10 % of the target (300–330 for the defaults).
    """

    target: float = 300.0
    low: float = 300.0
    high: float = 500.0

    @property
    def window(self) -> tuple[float, float]:
        lo = max(self.low, 0.9 * self.target)
        hi = min(self.high, 1.1 * self.target)
        return (lo, hi) if lo <= hi else (self.low, self.high)


def check_band(target: float, low: float, high: float) -> Band:
    """The Band of these parameters; InputError when they cannot be met."""
    if not (0 <= low <= high) or target <= 0:
        raise InputError(f"household band {low}–{high} with target {target} is not usable",
                         hint="need 0 <= min_households <= max_households and target_households > 0")
    return Band(float(target), float(low), float(high))


def band_excess(band: Band, households: float) -> float:
    """Households outside the hard band [low, high] (0 inside it)."""
    return max(band.low - households, 0.0) + max(households - band.high, 0.0)


def window_violation(band: Band, households: float, cap_excess: list[float] | None = None) -> float:
    """How far a grid of `households` is from the window: band excess weighs BAND_OVER_WINDOW times.

    `cap_excess`: per cap, the grid's total divided by the cap (over 1 adds to the violation).
    """
    window_low, window_high = band.window
    v = (BAND_OVER_WINDOW * (max(band.low - households, 0.0) + max(households - band.high, 0.0))
         + max(window_low - households, 0.0) + max(households - window_high, 0.0))
    for share in cap_excess or ():
        v += CAP_VIOLATION_WEIGHT * max(share - 1.0, 0.0) * band.target
    return v


def band_grid_counts(total_hh: float, band: Band, n_blocks: int) -> range:
    """Grid counts k (1..n_blocks) whose mean total/k lies in the band (empty when none does)."""
    if total_hh <= 0:
        return range(1, 2) if band.low <= 0 else range(0)
    kmin = max(1, math.ceil(total_hh / band.high - TOLERANCE)) if band.high < float("inf") else 1
    kmax = min(n_blocks, math.floor(total_hh / band.low + TOLERANCE)) if band.low > 0 else n_blocks
    return range(kmin, kmax + 1)


def nearest_grid_count(total_hh: float, band: Band, n_blocks: int) -> int:
    """The k (mean in the band if any k allows it, else any 1..n_blocks) with mean nearest the target."""
    ks = band_grid_counts(total_hh, band, n_blocks)
    if not len(ks):
        ks = range(1, max(n_blocks, 1) + 1)
    t = band.target
    # |T/k − t| is convex in k: the best k is next to T/t, clamped to the allowed range
    near = {min(max(f(total_hh / t), ks.start), ks.stop - 1) for f in (math.floor, math.ceil)}
    return min(near, key=lambda k: (abs(total_hh / k - t), k))


def band_forced_deviation(total_hh: float, n_blocks: int, band: Band) -> float:
    """``forced_deviation`` for a Band: the least worst |households − target| / target of any split."""
    k = nearest_grid_count(total_hh, band, n_blocks)
    return abs(total_hh / k - band.target) / band.target


def forced_deviation(total_hh: float, n_blocks: int, *, target_households: float = 300,
                     min_households: float = 300, max_households: float = 500) -> float:
    """Lower bound on the worst |households − target| / target of any split of an isolated piece.

    A fraction (0.1 = 10 %) for a connected piece holding `total_hh` households in `n_blocks`
    blocks that no grid may leave.
    """
    band = check_band(target_households, min_households, max_households)
    return band_forced_deviation(float(total_hh), max(int(n_blocks), 1), band)


def choose_grid_count(total_hh: float, band: Band, n_blocks: int, cap_totals: list[tuple[float, float]]) -> int:
    """Number of grids for a component: mean in the middle of the window if possible, else least off.

    `cap_totals`: (component total, cap) per street/area cap; enough grids to keep the mean
    under CAP_HEADROOM of each cap.
    """
    if n_blocks <= 1:
        return 1
    k_caps = max([1] + [math.ceil(t / (CAP_HEADROOM * cap) - TOLERANCE) for t, cap in cap_totals])
    window_low, window_high = band.window
    kw_min = max(1, math.ceil(total_hh / window_high - TOLERANCE)) if window_high > 0 else 1
    kw_max = math.floor(total_hh / window_low + TOLERANCE) if window_low > 0 else n_blocks
    if total_hh <= 0:
        k = 1
    elif kw_min <= kw_max:
        k = min(max(round(total_hh / ((window_low + window_high) / 2)), kw_min), kw_max)
    else:
        k = nearest_grid_count(total_hh, band, n_blocks)
    return int(min(max(k, k_caps), n_blocks))
