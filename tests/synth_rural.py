"""A generated rural county (村) for the rural-grid tests and measurements: two townships side by
side, villages of very different sizes (a market town of ~700 households down to a 3-house hamlet),
two hamlets no road reaches, sparse roads (one county road, dead-end branches, a few lanes), and one
village the township border runs through. Written into a store as if imported.

Command line (from the repository root): ``python -m tests.synth_rural --out county.gpkg``."""
from __future__ import annotations

import argparse
import json
import math

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

__all__ = ["RURAL_AREAS", "UNNAMED", "VILLAGES", "load_rural_county", "village_areas_osm"]

_METRIC_CRS = CRS.from_epsg(32648)
_ORIGIN = (380_000.0, 3_370_000.0)
WIDTH, HEIGHT = 8_000.0, 5_000.0
BORDER_X = 4_000.0  # the township border; 河口村 sits on it
RURAL_AREAS = {"519990001": "甲乡", "519990002": "乙镇"}

# name, centre x, y (m from the origin), radius (m), houses, on a road
VILLAGES = [
    ("石桥镇", 2000, 2500, 430, 460, True),   # market town: lanes inside, ~700 households
    ("王家村", 6000, 3600, 200, 120, True),
    ("李家湾", 1000, 4100, 160, 70, True),
    ("张家坝", 5200, 1200, 180, 90, True),
    ("河口村", BORDER_X, 3100, 210, 110, True),  # the border runs through it
    ("上坪", 3000, 4400, 50, 12, True),
    ("下坪", 3300, 700, 40, 8, True),
    ("新屋", 7200, 900, 60, 15, True),
    ("松林", 7500, 4500, 45, 10, True),
    ("孤山", 400, 450, 25, 4, False),        # no road reaches these two
    ("岩脚", 6800, 4850, 20, 3, False),
]
UNNAMED = "岩脚"  # no place node: its settlement is numbered (居民点N)


def _houses(rng: np.random.Generator, cx: float, cy: float, r: float, n: int, lanes) -> list:  # noqa: ANN001
    out: list = []
    pts: list[tuple[float, float]] = []
    tries = 0
    while len(out) < n and tries < n * 400:
        tries += 1
        a, d = rng.uniform(0, 2 * math.pi), r * math.sqrt(rng.uniform(0, 1))
        x, y = cx + d * math.cos(a), cy + d * math.sin(a)
        if any((x - px) ** 2 + (y - py) ** 2 < 20.0 ** 2 for px, py in pts):
            continue
        w, h = rng.uniform(8, 14), rng.uniform(8, 12)
        box = shapely.box(x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        if lanes is not None and shapely.distance(box, lanes) < 5.0:
            continue
        pts.append((x, y))
        out.append(box)
    return out


def rural_county(seed: int = 0, village_areas: bool = False) -> dict:
    """The county's layers (EPSG:4326, columns of gis.osm.read_osm) and areas. ``village_areas``:
    the villages over 100 m across are mapped as areas (place=village/town polygons, 河口村 as named
    landuse=residential) with no place node, as many mappers do; hamlets keep their nodes."""
    rng = np.random.default_rng(seed)
    nodes: dict[tuple[float, float], int] = {}

    def nid(x: float, y: float) -> int:
        key = (round(x, 3), round(y, 3))
        if key not in nodes:
            nodes[key] = len(nodes) + 1
        return nodes[key]

    segs: list[tuple[tuple[float, float], tuple[float, float], str, str]] = []

    def road(points: list[tuple[float, float]], highway: str, name: str) -> None:
        for a, b in zip(points[:-1], points[1:]):
            segs.append((a, b, highway, name))

    # the county road west→east, a little wavy, with a node every 500 m
    xs = np.arange(0, WIDTH + 1, 500.0)
    main = [(float(x), 2500.0 + 60 * math.sin(x / 900.0)) for x in xs]
    road(main, "secondary", "县道X101")
    main_y = {x: y for x, y in main}
    # dead-end branches from the county road to the villages on a road
    for name, cx, cy, r, _n, on_road in VILLAGES:
        if not on_road or name == "石桥镇":
            continue
        bx = float(round(cx / 500.0) * 500.0)
        road([(bx, main_y[bx]), (bx, float(cy))] + ([(float(cx), float(cy))] if bx != cx else []),
             "unclassified" if r > 100 else "track", f"{name}路")
    # a north road linking 李家湾, 上坪 and 河口村's branch (a loop in the west)
    road([(1000.0, 4100.0), (3000.0, 4400.0), (4000.0, 3100.0)], "unclassified", "北环路")
    # the market town's lanes: a 3×3 lattice of 200 m around its centre, on the county road
    lanes = []
    for k in (-200.0, 0.0, 200.0):
        road([(1800.0 + 200.0 * i, 2500.0 + k) for i in range(-1, 2)] , "residential", f"镇东西街{int(k)}")
        road([(2000.0 + k, 2300.0 + 200.0 * j) for j in range(-1, 2)], "residential", f"镇南北街{int(k)}")
    for a, b, hw, _ in segs:
        if hw == "residential":
            lanes.append(shapely.LineString([a, b]))
    # join the lanes to the county road at the town centre
    road([(2000.0, 2500.0), (2000.0, float(main_y[2000.0]))], "residential", "镇中路")
    lane_geom = shapely.union_all(lanes)

    geoms = [shapely.LineString([a, b]) for a, b, _, _ in segs]
    n_r = len(segs)
    roads = gpd.GeoDataFrame({
        "osm_id": np.arange(1, n_r + 1, dtype=np.int64), "seq": np.zeros(n_r, dtype=np.int64),
        "u": np.array([nid(*a) for a, _, _, _ in segs], dtype=np.int64),
        "v": np.array([nid(*b) for _, b, _, _ in segs], dtype=np.int64),
        "name": [s[3] for s in segs], "name_zh": [s[3] for s in segs], "name_en": [None] * n_r,
        "highway": [s[2] for s in segs], "oneway": np.zeros(n_r, dtype=bool),
        "length_m": shapely.length(np.array(geoms)),
    }, geometry=gpd.GeoSeries(geoms, crs=_METRIC_CRS))
    roads["geometry"] = shapely.transform(roads.geometry.to_numpy(), lambda xy: xy + np.array(_ORIGIN))

    boxes, hh = [], []
    for name, cx, cy, r, n, _ in VILLAGES:
        got = _houses(rng, cx, cy, r, n, lane_geom if name == "石桥镇" else None)
        boxes += got
        hh += (rng.integers(1, 3, len(got)) if r > 100 else np.ones(len(got), int)).tolist()
    boxes = shapely.transform(np.array(boxes), lambda xy: xy + np.array(_ORIGIN))
    n_b = len(boxes)
    fp = shapely.area(boxes)
    buildings = gpd.GeoDataFrame({
        "osm_type": np.full(n_b, "way"), "osm_id": np.arange(1, n_b + 1, dtype=np.int64) + 50_000_000,
        "building": np.full(n_b, "house"), "name": np.full(n_b, None, dtype=object),
        "levels": np.full(n_b, 2.0), "levels_estimated": np.ones(n_b, dtype=bool), "footprint_m2": fp,
        "households": np.array(hh, dtype=float), "households_estimated": np.ones(n_b, dtype=bool),
        "estimate_method": np.full(n_b, "footprint"), "population": np.array(hh, dtype=float) * 3.1,
    }, geometry=gpd.GeoSeries(shapely.multipolygons(boxes[:, None].tolist()), crs=_METRIC_CRS))
    ox, oy = _ORIGIN
    west = shapely.box(ox, oy, ox + BORDER_X, oy + HEIGHT)
    east = shapely.box(ox + BORDER_X, oy, ox + WIDTH, oy + HEIGHT)
    areas = gpd.GeoDataFrame({"code": list(RURAL_AREAS), "name": list(RURAL_AREAS.values()),
                              "level": ["street", "street"], "source": ["synthetic"] * 2,
                              "area_m2": [west.area, east.area]},
                             geometry=gpd.GeoSeries([shapely.MultiPolygon([west]), shapely.MultiPolygon([east])],
                                                    crs=_METRIC_CRS))
    barriers = gpd.GeoDataFrame({"osm_type": [], "osm_id": [], "kind": [], "subkind": [], "name": []},
                                geometry=gpd.GeoSeries([], crs=_METRIC_CRS))
    # place nodes as mappers set them: at the village centre, a hamlet's a little off it; 岩脚 has none
    named = [v for v in VILLAGES if v[0] != UNNAMED and not (village_areas and v[3] > 100)]
    as_areas = [v for v in VILLAGES if village_areas and v[3] > 100]
    place_areas = gpd.GeoDataFrame({
        "osm_type": ["way"] * len(as_areas), "osm_id": np.arange(1, len(as_areas) + 1, dtype=np.int64) + 80_000_000,
        "name": [v[0] for v in as_areas],
        "place": ["landuse=residential" if v[0] == "河口村" else "town" if v[3] > 400 else "village" for v in as_areas]},
        geometry=gpd.GeoSeries([shapely.MultiPolygon([shapely.Point(ox + v[1], oy + v[2]).buffer(v[3] + 30)])
                                for v in as_areas], crs=_METRIC_CRS))
    places = gpd.GeoDataFrame({"osm_id": np.arange(1, len(named) + 1, dtype=np.int64) + 70_000_000,
                               "name": [v[0] for v in named], "place": [
        "town" if v[3] > 400 else "village" if v[3] > 100 else "hamlet" for v in named]},
        geometry=gpd.GeoSeries(shapely.points([(ox + v[1] + 30, oy + v[2] + 20) for v in named]), crs=_METRIC_CRS))
    return {k: v.to_crs(4326) for k, v in
            {"roads": roads, "buildings": buildings, "areas": areas, "barriers": barriers, "places": places,
             "place_areas": place_areas}.items()}


def load_rural_county(store, seed: int = 0, village_areas: bool = False) -> dict:  # noqa: ANN001
    """Write the county into ``store`` (one transaction) as if imported; returns its layers."""
    from gridpatrol.layers.models import utcnow

    c = rural_county(seed, village_areas)
    now = utcnow()
    record = gpd.GeoDataFrame(
        [{"kind": "osm", "source_path": f"synthetic rural county (seed {seed})", "source_sha256": "-",
          "source_bytes": 0, "options_json": "{}", "counts_json": json.dumps({"villages": len(VILLAGES)}),
          "dropped_json": "{}", "started_at": now, "finished_at": now}],
        geometry=[shapely.MultiPolygon(list(shapely.get_parts(shapely.union_all(c["areas"].geometry.to_numpy()))))],
        crs=4326)
    with store.begin() as conn:
        for layer in ("roads", "buildings", "areas", "places", "place_areas"):
            if len(c[layer]):
                store.insert_gdf(conn, layer, c[layer])
        store.insert_gdf(conn, "imports", record)
    return c


def village_areas_osm(path):  # noqa: ANN001, ANN201
    """Write a small OSM extract of five closed ways: a place=village (王家村, name:zh), a named
    landuse=residential (李家湾), an unnamed residential, a named farmland and an unnamed hamlet
    area; only the first two name villages. Returns ``path``."""
    def ring(wid: int, x0: float, y0: float, tags: str, first: int) -> str:
        pts = [(x0, y0), (x0 + 0.002, y0), (x0 + 0.002, y0 + 0.002), (x0, y0 + 0.002)]
        nodes = "".join(f'<node id="{first + i}" lat="{y}" lon="{x}"/>' for i, (x, y) in enumerate(pts))
        refs = "".join(f'<nd ref="{first + i}"/>' for i in range(4)) + f'<nd ref="{first}"/>'
        return nodes + f'<way id="{wid}">{refs}{tags}</way>'

    body = "".join([
        ring(1, 104.001, 30.001, '<tag k="place" v="village"/><tag k="name" v="Wangjia"/>'
             '<tag k="name:zh" v="王家村"/>', 100),
        ring(2, 104.004, 30.001, '<tag k="landuse" v="residential"/><tag k="name" v="李家湾"/>', 200),
        ring(3, 104.007, 30.001, '<tag k="landuse" v="residential"/>', 300),
        ring(4, 104.001, 30.005, '<tag k="landuse" v="farmland"/><tag k="name" v="大田"/>', 400),
        ring(5, 104.004, 30.005, '<tag k="place" v="hamlet"/>', 500),
    ])
    path.write_text("<?xml version='1.0' encoding='UTF-8'?><osm version=\"0.6\">"
                    '<bounds minlat="30.0" minlon="104.0" maxlat="30.01" maxlon="104.01"/>' + body + "</osm>",
                    encoding="utf-8")
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, help="GeoPackage store to create")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--village-areas", action="store_true", help="map the villages as areas, not nodes")
    args = ap.parse_args()
    from gridpatrol.layers.store import open_store

    load_rural_county(open_store(args.out, create=True), args.seed, args.village_areas)
    print(f"wrote the rural county to {args.out}")
