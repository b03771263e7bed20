"""Reproducible SYNTHETIC city (irregular streets, a river, buildings with households): the data of the tests and
the benchmarks (also the districts of a generated province: layers/synth_province.py).

Command line: ``python -m gridpatrol.gis.synth_city --blocks 3000 --out city.gpkg``."""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
import shapely.affinity
from pyproj import CRS

__all__ = ["METRIC_CRS", "ORIGIN", "SynthCity", "city_size_m", "synth_city"]

# UTM 48N around central Chengdu: the generated city sits where the real data does
METRIC_CRS = CRS.from_epsg(32648)
ORIGIN = (400_000.0, 3_390_000.0)  # the south-west corner of the default city, metres in METRIC_CRS


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


def _lattice(rng: np.random.Generator, n_blocks: int, block_m: float) -> tuple[int, int, np.ndarray, np.ndarray]:
    """The lattice's cell counts and line offsets (metres from the south-west corner): the first draws of `rng`."""
    # dropped segments merge cells: ask for ~11 % more cells to end up near n_blocks blocks
    cells = n_blocks * 1.11
    side = max(int(round(math.sqrt(cells))), 2)
    nx_, ny_ = side, max(int(round(cells / side)), 2)
    return nx_, ny_, _spacings(rng, nx_, block_m), _spacings(rng, ny_, block_m)


def city_size_m(n_blocks: int = 10_000, seed: int = 0, *, block_m: float = 90.0) -> tuple[float, float]:
    """Width and height in metres of the city ``synth_city(n_blocks, seed, block_m=block_m)`` generates
    (whatever its origin), without generating it."""
    _, _, xs, ys = _lattice(np.random.default_rng(seed), n_blocks, block_m)
    return float(xs[-1]), float(ys[-1])


def synth_city(n_blocks: int = 10_000, seed: int = 0, *, block_m: float = 90.0,
               drop_share: float = 0.08, footprints: str = "box", per_cell: int = 4,
               overlap_share: float = 0.0, tower_share: float = 0.0,
               origin: tuple[float, float] = ORIGIN) -> SynthCity:
    """Generate a city of about `n_blocks` street blocks, deterministically from `seed`.

    Streets are a jittered lattice with irregular spacing (mean `block_m` metres) where every
    8th line is primary, every 4th secondary, the rest residential; `drop_share` of the residential
    segments are left out, which merges blocks and leaves dead ends. A meandering river crosses the
    city west→east (its streets cross it on bridges). Each lattice cell gets 0–4 rectangular
    buildings whose households follow a density that peaks in the centre, and parks without any.
    Returns layers in EPSG:4326 with the columns of ``gis.osm.read_osm``.

    Messier data for robustness tests and benchmarks (the defaults reproduce the plain city):
    `footprints` "mixed" turns the boxes into rotated boxes, L shapes, terraces of units sharing
    walls and tiny sheds touching their building; `per_cell` up to 9 packs buildings denser
    (a 3×3 layout); `overlap_share` of the buildings get a second, overlapping footprint with its
    own households, as duplicated imports and ``building:part`` outlines give in real OSM: an
    exact copy, a near copy (shifted 0.3 m, turned 1°) or a part inside the building;
    `tower_share` of the buildings become 24–33-level towers, so households come in lumps.

    `origin` is the city's south-west corner in metres of ``METRIC_CRS`` (UTM 48N, around Chengdu): another
    origin gives the same city moved by exactly that many metres (a generated province's districts).
    """
    if footprints not in ("box", "mixed"):
        raise ValueError(f"footprints must be 'box' or 'mixed', not {footprints!r}")
    if not 1 <= per_cell <= 9 or not 0.0 <= overlap_share <= 1.0 or not 0.0 <= tower_share <= 1.0:
        raise ValueError("per_cell must be 1..9, overlap_share and tower_share 0..1")
    rng = np.random.default_rng(seed)
    messy = np.random.default_rng([seed, 1])  # a second stream: the defaults stay the same city
    nx_, ny_, xs, ys = _lattice(rng, n_blocks, block_m)
    x0, y0 = float(origin[0]), float(origin[1])
    gx, gy = np.meshgrid(xs, ys)  # (ny+1, nx+1) nodes
    jitter = 0.18 * block_m
    gx = gx + rng.uniform(-jitter, jitter, gx.shape)
    gy = gy + rng.uniform(-jitter, jitter, gy.shape)
    # keep the outline straight so the area is a simple rectangle-ish polygon
    gx[:, 0], gx[:, -1] = xs[0], xs[-1]
    gy[0, :], gy[-1, :] = ys[0], ys[-1]
    gx += x0
    gy += y0

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
    }, geometry=gpd.GeoSeries(geoms, crs=METRIC_CRS))

    width = xs[-1]
    height = ys[-1]
    t = np.linspace(0, 1, max(200, nx_ * 4))
    river_y = (y0 + height * (0.45 + 0.12 * np.sin(2 * math.pi * (1.3 * t + rng.random()))
                                      + 0.05 * np.sin(2 * math.pi * (4.1 * t + rng.random()))))
    river = shapely.linestrings(np.column_stack([x0 + t * width, river_y]))
    barriers = gpd.GeoDataFrame({"osm_type": ["way"], "osm_id": [900_000_001], "kind": ["river"],
                                 "subkind": [""], "name": ["府河 (synthetic)"]},
                                geometry=gpd.GeoSeries([river], crs=METRIC_CRS))

    # buildings: up to 4 per cell, placed in the cell's inner quarter so they stay off the streets
    ci, cj = np.meshgrid(np.arange(nx_), np.arange(ny_))
    ci, cj = ci.ravel(), cj.ravel()
    corners = np.stack([node(ci, cj), node(ci + 1, cj), node(ci + 1, cj + 1), node(ci, cj + 1)], axis=1)
    centre = corners.mean(axis=1)
    cx, cy = (centre[:, 0] - x0) / width - 0.5, (centre[:, 1] - y0) / height - 0.5
    density = np.exp(-(cx ** 2 + cy ** 2) / 0.18)
    park = rng.random(len(ci)) < 0.12
    count = np.where(park, 0, rng.integers(0, 5, len(ci)))
    if per_cell != 4:
        count = np.where(park, 0, messy.integers(0, per_cell + 1, len(ci)))
    cell = np.repeat(np.arange(len(ci)), count)
    sub = np.concatenate([np.arange(c) for c in count]) if len(cell) else np.zeros(0, int)
    if per_cell <= 4:
        qx = np.where(sub % 2 == 0, -0.5, 0.5)
        qy = np.where(sub // 2 == 0, -0.5, 0.5)
        size_max = 0.16
    else:  # a 3×3 layout of smaller buildings
        qx = (sub % 3 - 1) * 0.75
        qy = (sub // 3 - 1) * 0.75
        size_max = 0.11
    low = 10.0 if per_cell <= 4 else 6.0
    bw = rng.uniform(low, size_max * block_m, len(cell))
    bh = rng.uniform(low, size_max * block_m, len(cell))
    bx = centre[cell, 0] + qx * 0.22 * block_m
    by = centre[cell, 1] + qy * 0.22 * block_m
    boxes = shapely.box(bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2)
    if footprints == "mixed":
        boxes, cell = _mixed_shapes(messy, boxes, cell)
    clear = ~shapely.intersects(boxes, shapely.buffer(river, 8.0))
    boxes, cell = boxes[clear], cell[clear]
    if overlap_share > 0:
        extra, which = _overlapping(messy, boxes, overlap_share)
        boxes, cell = np.r_[boxes, extra], np.r_[cell, cell[which]]
    levels = np.maximum(1, np.round(2 + 16 * density[cell] * rng.random(len(cell)))).astype(int)
    if tower_share > 0:
        tower = messy.random(len(cell)) < tower_share
        levels[tower] = messy.integers(24, 34, int(tower.sum()))
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
    }, geometry=gpd.GeoSeries(shapely.multipolygons(boxes[:, None].tolist()) if n_b else [], crs=METRIC_CRS))
    area_m = shapely.box(x0, y0, x0 + width, y0 + height)
    area = gpd.GeoSeries([area_m], crs=METRIC_CRS).to_crs(4326).iloc[0]
    return SynthCity(area=area, roads=roads.to_crs(4326), barriers=barriers.to_crs(4326),
                     buildings=buildings.to_crs(4326), metric_crs=METRIC_CRS, seed=seed)


def _rotate(geoms: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """Each geometry turned by its angle (degrees) about its centroid."""
    c = shapely.get_coordinates(shapely.centroid(geoms))
    out = np.empty(len(geoms), dtype=object)
    for i, (g, a) in enumerate(zip(geoms, deg)):
        xy = shapely.get_coordinates(g) - c[i]
        t = math.radians(float(a))
        rot = xy @ np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]]) + c[i]
        out[i] = shapely.set_coordinates(shapely.Polygon(g.exterior), rot) if g.geom_type == "Polygon" else g
    return out


def _mixed_shapes(rng: np.random.Generator, boxes: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes made rotated, L-shaped, split into terraces sharing walls, or given a touching shed."""
    kind = rng.integers(0, 5, len(boxes))  # 0 box, 1 rotated, 2 L, 3 terrace, 4 shed
    out, owner = [], []
    b = shapely.bounds(boxes)
    for i, g in enumerate(boxes):
        x0, y0, x1, y1 = b[i]
        w, h = x1 - x0, y1 - y0
        if kind[i] == 1:
            # turned by up to 25°, shrunk so that it stays inside the box it came from
            a = float(rng.uniform(-25, 25))
            s = 1.0 / (abs(math.cos(math.radians(a))) + abs(math.sin(math.radians(a))))
            small = shapely.affinity.scale(g, s, s)
            parts = [_rotate(np.array([small]), np.array([a]))[0]]
        elif kind[i] == 2:
            parts = [shapely.difference(g, shapely.box(x0 + w * 0.55, y0 + h * 0.5, x1 + 1, y1 + 1))]
        elif kind[i] == 3:
            n = int(rng.integers(2, 5))
            xs = np.linspace(x0, x1, n + 1)
            parts = [shapely.box(xs[k], y0, xs[k + 1], y1) for k in range(n)]
        elif kind[i] == 4:
            # a 1.5–3 m shed against the east wall, sharing it
            s = float(rng.uniform(1.5, 3.0))
            parts = [g, shapely.box(x1, y0 + h / 2 - s / 2, x1 + s, y0 + h / 2 + s / 2)]
        else:
            parts = [g]
        out += parts
        owner += [cell[i]] * len(parts)
    return np.array(out, dtype=object), np.asarray(owner, dtype=np.int64)


def _overlapping(rng: np.random.Generator, boxes: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Second footprints for `share` of the buildings: exact copies, near copies and parts inside."""
    which = np.flatnonzero(rng.random(len(boxes)) < share)
    kind = rng.integers(0, 3, len(which))
    extra = np.empty(len(which), dtype=object)
    for k, (i, t) in enumerate(zip(which, kind)):
        g = boxes[i]
        if t == 0:
            extra[k] = g
        elif t == 1:
            extra[k] = _rotate(np.array([shapely.affinity.translate(g, 0.3, 0.2)]), np.array([1.0]))[0]
        else:
            x0, y0, x1, y1 = g.bounds
            f = float(rng.uniform(0.35, 0.7))
            extra[k] = shapely.box(x0, y0, x0 + (x1 - x0) * f, y1)
    return extra, which


def main() -> None:
    """Command line: generate a city and write its layers to a GeoPackage."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--blocks", type=int, default=10_000, help="about how many street blocks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--footprints", choices=("box", "mixed"), default="box")
    ap.add_argument("--per-cell", type=int, default=4, help="at most this many buildings per street cell (1–9)")
    ap.add_argument("--overlap-share", type=float, default=0.0,
                    help="share of buildings given a second, overlapping footprint (duplicates, parts)")
    ap.add_argument("--tower-share", type=float, default=0.0, help="share of buildings made 24–33-level towers")
    ap.add_argument("--out", required=True, help="GeoPackage to write (layers area, roads, barriers, buildings)")
    args = ap.parse_args()
    city = synth_city(args.blocks, args.seed, footprints=args.footprints, per_cell=args.per_cell,
                      overlap_share=args.overlap_share, tower_share=args.tower_share)
    gpd.GeoDataFrame(geometry=[city.area], crs=4326).to_file(args.out, layer="area")
    city.roads.to_file(args.out, layer="roads")
    city.barriers.to_file(args.out, layer="barriers")
    city.buildings.to_file(args.out, layer="buildings")
    print(f"{args.out}: {len(city.roads)} road segments, {len(city.buildings)} buildings, "
          f"{city.buildings['households'].sum():.0f} households")


if __name__ == "__main__":
    main()
