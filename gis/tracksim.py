"""Simulated patrol walks (for tests and benchmarks): fixes along a metric line with GPS noise, sparse fixes and gaps."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString
from shapely.ops import substring


@dataclass
class SimWalk:
    """Noisy fixes (metric x, y; t seconds) of a walk and the line truly walked (metric)."""

    x: np.ndarray
    y: np.ndarray
    t: np.ndarray
    truth: LineString
    true_xy: np.ndarray


def simulate_walk(line: LineString, *, sigma_m: float, every_s: float, speed_mps: float = 1.25,
                  share: float = 1.0, gaps: int = 0, gap_s: float = 90.0, t0: float = 0.0,
                  seed: int = 0) -> SimWalk:
    """Walk the first ``share`` of ``line`` at ``speed_mps`` with a fix every ``every_s`` seconds
    (jittered ±20 %), Gaussian noise ``sigma_m`` per axis, and ``gaps`` stretches of ``gap_s`` without fixes."""
    rng = np.random.default_rng(seed)
    walk_len = line.length * share
    duration = walk_len / speed_mps
    steps = np.maximum(rng.uniform(0.8, 1.2, int(duration / every_s) + 2) * every_s, 0.5)
    t = np.concatenate([[0.0], np.cumsum(steps)])
    t = t[t <= duration]
    if t[-1] < duration:
        t = np.append(t, duration)
    keep = np.ones(len(t), dtype=bool)
    if gaps and duration > 4 * gap_s:
        for start in rng.uniform(0.1, 0.9, gaps) * duration:
            keep &= ~((t > start) & (t < start + gap_s))
    t = t[keep]
    pts = shapely.line_interpolate_point(line, t * speed_mps)
    xy = shapely.get_coordinates(pts)
    noisy = xy + rng.normal(0.0, sigma_m, xy.shape)
    return SimWalk(noisy[:, 0], noisy[:, 1], t + t0, substring(line, 0.0, walk_len), xy)


def precision_recall(reported: list[LineString], truth: LineString, streets: np.ndarray, *,
                     tol_m: float = 3.0) -> tuple[float, float, float, float]:
    """(precision, recall, reported m, true m) of walked street length: reported pieces within ``tol_m``
    of the true walk, and the streets (metric lines) the true walk ran along that the pieces cover."""
    rep = shapely.union_all(reported) if reported else LineString()
    rep_m = float(rep.length)
    tb = truth.buffer(tol_m)
    true_parts = shapely.intersection(streets, tb)
    true_parts = true_parts[shapely.length(true_parts) > 0]
    true_street = shapely.union_all(true_parts) if len(true_parts) else LineString()
    true_m = float(true_street.length)
    precision = float(rep.intersection(tb).length) / rep_m if rep_m else 1.0
    recall = float(true_street.intersection(rep.buffer(tol_m)).length) / true_m if true_m else 1.0
    return precision, recall, rep_m, true_m
