"""A generated lumpy street network (test and benchmark data: tests/gis/test_uturns.py, scripts/bench/uturns.py): an irregular
lattice with missing pieces, cul-de-sacs, short jogs, diagonals and one-way streets, cut into tiles.

Unlike Chengdu's blocks: blocks from 40 to 260 m, many dead ends (spurs of 15–140 m, some of them
branching), streets that meet at a slant, and one street in six one-way (either direction).
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

_METRIC_CRS = CRS.from_epsg(32648)  # UTM 48N: where the real data is
_ORIGIN = (402_000.0, 3_392_000.0)


def lumpy_streets(seed: int = 3, side: int = 16, tiles: int = 3, oneway_share: float = 1 / 6
                  ) -> tuple[gpd.GeoDataFrame, list[tuple[str, shapely.Polygon]]]:
    """Roads (EPSG:4326, the columns of gis.osm.read_osm's roads) of a lumpy ``side`` × ``side``
    lattice, and ``tiles`` × ``tiles`` square grids over it as [(code, polygon EPSG:4326)].
    ``oneway_share``: the share of the streets (but secondary ones) that are one-way."""
    rng = np.random.default_rng(seed)
    xs = np.r_[0.0, np.cumsum(rng.choice([40.0, 70.0, 110.0, 180.0, 260.0], side - 1))]
    ys = np.r_[0.0, np.cumsum(rng.choice([45.0, 60.0, 120.0, 200.0], side - 1))]
    gx, gy = np.meshgrid(xs, ys)
    gx = gx + rng.normal(0, 6, gx.shape) + _ORIGIN[0]
    gy = gy + rng.normal(0, 6, gy.shape) + _ORIGIN[1]
    segs: list[tuple[tuple[float, float], tuple[float, float], str]] = []

    def p(i: int, j: int) -> tuple[float, float]:
        return float(gx[j, i]), float(gy[j, i])

    for j in range(side):
        for i in range(side):
            outline = i in (0, side - 1) or j in (0, side - 1)
            if i + 1 < side and (outline or rng.random() > 0.18):
                segs.append((p(i, j), p(i + 1, j), "residential" if j % 5 else "secondary"))
            if j + 1 < side and (outline or rng.random() > 0.18):
                segs.append((p(i, j), p(i, j + 1), "residential" if i % 5 else "secondary"))
            if i + 1 < side and j + 1 < side and rng.random() < 0.06:  # a diagonal cut-through
                segs.append((p(i, j), p(i + 1, j + 1), "service"))
            if rng.random() < 0.35:  # a cul-de-sac, sometimes with a branch or a bend
                a = p(i, j)
                ang = rng.uniform(0, 2 * np.pi)
                ln = rng.uniform(15, 140)
                b = (a[0] + ln * np.sin(ang), a[1] + ln * np.cos(ang))
                segs.append((a, b, "service"))
                if rng.random() < 0.4:
                    ang2 = ang + rng.choice([-1, 1]) * rng.uniform(0.3, 1.8)
                    ln2 = rng.uniform(15, 80)
                    segs.append((b, (b[0] + ln2 * np.sin(ang2), b[1] + ln2 * np.cos(ang2)), "service"))
    a = np.array([s[0] for s in segs])
    b = np.array([s[1] for s in segs])
    geoms = shapely.linestrings(np.stack([a, b], axis=1))
    # Streets cross only at their ends (nodes by coordinates to the centimetre).
    keys = np.round(np.vstack([a, b]), 2)
    _, node = np.unique(keys, axis=0, return_inverse=True)
    n = len(segs)
    highway = np.array([s[2] for s in segs], dtype=object)
    oneway = (highway != "secondary") & (rng.random(n) < oneway_share)
    flip = oneway & (rng.random(n) < 0.5)
    geoms[flip] = shapely.reverse(geoms[flip])
    u, v = node.ravel()[:n].astype(np.int64) + 1, node.ravel()[n:].astype(np.int64) + 1
    u[flip], v[flip] = v[flip].copy(), u[flip].copy()
    names = np.array([f"乱{k % 37}街" if h != "service" else "" for k, h in enumerate(highway)], dtype=object)
    roads = gpd.GeoDataFrame({
        "osm_id": np.arange(1, n + 1, dtype=np.int64), "seq": np.zeros(n, dtype=np.int64), "u": u, "v": v,
        "name": names, "name_zh": names, "name_en": names, "highway": highway, "oneway": oneway,
        "length_m": shapely.length(geoms),
    }, geometry=gpd.GeoSeries(geoms, crs=_METRIC_CRS)).to_crs(4326)
    x0, y0, x1, y1 = float(gx.min()), float(gy.min()), float(gx.max()), float(gy.max())
    tx, ty = np.linspace(x0 - 1, x1 + 1, tiles + 1), np.linspace(y0 - 1, y1 + 1, tiles + 1)
    boxes = [shapely.box(tx[c], ty[r], tx[c + 1], ty[r + 1]) for r in range(tiles) for c in range(tiles)]
    polys = gpd.GeoSeries(boxes, crs=_METRIC_CRS).to_crs(4326)
    return roads, [(f"LUMPY{k:02d}", g) for k, g in enumerate(polys)]
