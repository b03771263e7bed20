"""Reproducible synthetic city (irregular streets, a river, buildings with households) for tests and benchmarks."""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

__all__ = ["SynthCity", "synth_city"]

# UTM 48N around central Chengdu: the generated city sits where the real data does
_METRIC_CRS = CRS.from_epsg(32648)
_ORIGIN = (400_000.0, 3_390_000.0)


@dataclass
class SynthCity:
    """A generated city: area (EPSG:4326 polygon) and layers in the columns of gis.osm.read_osm."""

    area: shapely.Polygon
    roads: gpd.GeoDataFrame
    barriers: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    metric_crs: CRS
    seed: int


def _spacings(rng: np.random.Generator, n: int, mean_m: float) -> np.ndarray:
    return np.r_[0.0, np.cumsum(rng.uniform(0.6 * mean_m, 1.4 * mean_m, n))]


def synth_city(n_blocks: int = 10_000, seed: int = 0, *, block_m: float = 90.0,
               drop_share: float = 0.08) -> SynthCity:
    """Generate a city of about `n_blocks` street blocks, deterministically from `seed`.

    Streets are a jittered lattice with irregular spacing (mean `block_m` metres) where every
    8th line is primary, every 4th secondary, the rest residential; `drop_share` of the residential
    segments are left out, which merges blocks and leaves dead ends. A meandering river crosses the
    city west→east (its streets cross it on bridges). Each lattice cell gets 0–4 rectangular
    buildings whose households follow a density that peaks in the centre, and parks without any.
    Returns layers in EPSG:4326 with the columns of ``gis.osm.read_osm``.
    """
    rng = np.random.default_rng(seed)
    # dropped segments merge cells: ask for ~11 % more cells to end up near n_blocks blocks
    cells = n_blocks * 1.11
    side = max(int(round(math.sqrt(cells))), 2)
    nx_, ny_ = side, max(int(round(cells / side)), 2)
    xs = _spacings(rng, nx_, block_m)
    ys = _spacings(rng, ny_, block_m)
    gx, gy = np.meshgrid(xs, ys)  # (ny+1, nx+1) nodes
    jitter = 0.18 * block_m
    gx = gx + rng.uniform(-jitter, jitter, gx.shape)
    gy = gy + rng.uniform(-jitter, jitter, gy.shape)
    # keep the outline straight so the area is a simple rectangle-ish polygon
    gx[:, 0], gx[:, -1] = xs[0], xs[-1]
    gy[0, :], gy[-1, :] = ys[0], ys[-1]
    gx += _ORIGIN[0]
    gy += _ORIGIN[1]

    def node(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return np.column_stack([gx[j, i], gy[j, i]])

    # horizontal segments (i,j)-(i+1,j) and vertical (i,j)-(i,j+1)
    hi, hj = np.meshgrid(np.arange(nx_), np.arange(ny_ + 1))
    vi, vj = np.meshgrid(np.arange(nx_ + 1), np.arange(ny_))
    hi, hj, vi, vj = hi.ravel(), hj.ravel(), vi.ravel(), vj.ravel()
    seg_a = np.vstack([node(hi, hj), node(vi, vj)])
    seg_b = np.vstack([node(hi + 1, hj), node(vi, vj + 1)])
    line_no = np.r_[hj, vi]
    outline = np.r_[(hj == 0) | (hj == ny_), (vi == 0) | (vi == nx_)]
    highway = np.where(line_no % 8 == 0, "primary", np.where(line_no % 4 == 0, "secondary", "residential"))
    highway = np.where(outline, "secondary", highway).astype(object)
    service = (highway == "residential") & (rng.random(len(highway)) < 0.1)
    highway[service] = "service"
    keep = ~((highway == "residential") & (rng.random(len(highway)) < drop_share))
    seg_a, seg_b, highway = seg_a[keep], seg_b[keep], highway[keep]
    geoms = shapely.linestrings(np.stack([seg_a, seg_b], axis=1))
    n_roads = len(geoms)
    names = np.array([f"{h[:3].title()} St {k}" for k, h in enumerate(highway)], dtype=object)
    roads = gpd.GeoDataFrame({
        "osm_id": np.arange(1, n_roads + 1, dtype=np.int64), "seq": np.zeros(n_roads, dtype=np.int64),
        "u": np.arange(n_roads, dtype=np.int64) * 2, "v": np.arange(n_roads, dtype=np.int64) * 2 + 1,
        "name": names, "name_zh": names, "name_en": names, "highway": highway,
        "oneway": np.zeros(n_roads, dtype=bool), "length_m": shapely.length(geoms),
    }, geometry=gpd.GeoSeries(geoms, crs=_METRIC_CRS))

    width = xs[-1]
    height = ys[-1]
    t = np.linspace(0, 1, max(200, nx_ * 4))
    river_y = (_ORIGIN[1] + height * (0.45 + 0.12 * np.sin(2 * math.pi * (1.3 * t + rng.random()))
                                      + 0.05 * np.sin(2 * math.pi * (4.1 * t + rng.random()))))
    river = shapely.linestrings(np.column_stack([_ORIGIN[0] + t * width, river_y]))
    barriers = gpd.GeoDataFrame({"osm_type": ["way"], "osm_id": [900_000_001], "kind": ["river"],
                                 "subkind": [""], "name": ["府河 (synthetic)"]},
                                geometry=gpd.GeoSeries([river], crs=_METRIC_CRS))

    # buildings: up to 4 per cell, placed in the cell's inner quarter so they stay off the streets
    ci, cj = np.meshgrid(np.arange(nx_), np.arange(ny_))
    ci, cj = ci.ravel(), cj.ravel()
    corners = np.stack([node(ci, cj), node(ci + 1, cj), node(ci + 1, cj + 1), node(ci, cj + 1)], axis=1)
    centre = corners.mean(axis=1)
    cx, cy = (centre[:, 0] - _ORIGIN[0]) / width - 0.5, (centre[:, 1] - _ORIGIN[1]) / height - 0.5
    density = np.exp(-(cx ** 2 + cy ** 2) / 0.18)
    park = rng.random(len(ci)) < 0.12
    count = np.where(park, 0, rng.integers(0, 5, len(ci)))
    cell = np.repeat(np.arange(len(ci)), count)
    sub = np.concatenate([np.arange(c) for c in count]) if len(cell) else np.zeros(0, int)
    qx = np.where(sub % 2 == 0, -0.5, 0.5)
    qy = np.where(sub // 2 == 0, -0.5, 0.5)
    bw = rng.uniform(10, 0.16 * block_m, len(cell))
    bh = rng.uniform(10, 0.16 * block_m, len(cell))
    bx = centre[cell, 0] + qx * 0.22 * block_m
    by = centre[cell, 1] + qy * 0.22 * block_m
    boxes = shapely.box(bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2)
    clear = ~shapely.intersects(boxes, shapely.buffer(river, 8.0))
    boxes, cell = boxes[clear], cell[clear]
    levels = np.maximum(1, np.round(2 + 16 * density[cell] * rng.random(len(cell)))).astype(int)
    footprint = shapely.area(boxes)
    households = np.round(footprint * levels / 90.0 * 0.8)
    n_b = len(boxes)
    buildings = gpd.GeoDataFrame({
        "osm_type": np.full(n_b, "way"), "osm_id": np.arange(1, n_b + 1, dtype=np.int64) + 10_000_000,
        "building": np.full(n_b, "residential"), "name": np.full(n_b, None, dtype=object),
        "levels": levels.astype(float), "levels_estimated": np.zeros(n_b, dtype=bool),
        "footprint_m2": footprint, "households": households,
        "households_estimated": np.ones(n_b, dtype=bool), "estimate_method": np.full(n_b, "footprint"),
        "population": households * 2.6,
    }, geometry=gpd.GeoSeries(shapely.multipolygons(boxes[:, None].tolist()) if n_b else [], crs=_METRIC_CRS))
    area_m = shapely.box(_ORIGIN[0], _ORIGIN[1], _ORIGIN[0] + width, _ORIGIN[1] + height)
    area = gpd.GeoSeries([area_m], crs=_METRIC_CRS).to_crs(4326).iloc[0]
    return SynthCity(area=area, roads=roads.to_crs(4326), barriers=barriers.to_crs(4326),
                     buildings=buildings.to_crs(4326), metric_crs=_METRIC_CRS, seed=seed)


def main() -> None:
    """Command line: generate a city and write its layers to a GeoPackage."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--blocks", type=int, default=10_000, help="about how many street blocks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="GeoPackage to write (layers area, roads, barriers, buildings)")
    args = ap.parse_args()
    city = synth_city(args.blocks, args.seed)
    gpd.GeoDataFrame(geometry=[city.area], crs=4326).to_file(args.out, layer="area")
    city.roads.to_file(args.out, layer="roads")
    city.barriers.to_file(args.out, layer="barriers")
    city.buildings.to_file(args.out, layer="buildings")
    print(f"{args.out}: {len(city.roads)} road segments, {len(city.buildings)} buildings, "
          f"{city.buildings['households'].sum():.0f} households")


if __name__ == "__main__":
    main()
