"""A generated SYNTHETIC province: districts that are synthetic cities (gis/synth_city.py) on a grid in metres,
written into a store as if imported (areas, streets, barriers, buildings, an OSM import record). The data of the
province benchmark (scripts/bench/province.py) and of the province tests."""
from __future__ import annotations

import json
import math

import geopandas as gpd
import shapely
from gridpatrol.gis.synth_city import ORIGIN, city_size_m, synth_city
from gridpatrol.layers.models import utcnow

__all__ = ["GAP_M", "district_codes", "district_origins", "load_province", "province_layers"]

# Ids of district i's OSM objects and street nodes are offset by i × this (no two districts share one).
_ID_STRIDE = 10**9
GAP_M = 200.0  # metres of open country between neighbouring districts (they do not touch)


def district_codes(n: int) -> list[str]:
    """The six-digit codes of the generated districts: 519901, 519902, …"""
    return [f"5199{i + 1:02d}" for i in range(n)]


def district_origins(n_districts: int, blocks_each: int, *, seed: int = 1) -> list[tuple[float, float]]:
    """South-west corners (metres, UTM 48N) of the districts: a square of columns and rows as wide and tall as
    the largest district plus ``GAP_M``, filled row by row from the default city's corner."""
    side = math.ceil(math.sqrt(n_districts))
    sizes = [city_size_m(blocks_each, seed + i) for i in range(n_districts)]
    step_x = max(w for w, _ in sizes) + GAP_M
    step_y = max(h for _, h in sizes) + GAP_M
    return [(ORIGIN[0] + (i % side) * step_x, ORIGIN[1] + (i // side) * step_y) for i in range(n_districts)]


def province_layers(n_districts: int, blocks_each: int, *, seed: int = 1, **city_kw) -> dict[str, gpd.GeoDataFrame]:  # noqa: ANN003
    """The layers (EPSG:4326) of a generated province: ``areas``, ``roads``, ``barriers``, ``buildings``.

    District i is the city of seed ``seed + i`` with its south-west corner at ``district_origins(…)[i]``: moved
    in metres, not in degrees, so each district is exactly the shape of its city wherever it lies and the
    districts keep ``GAP_M`` apart. Ids (OSM ids, street nodes) are offset per district. Deterministic by seed.
    ``city_kw`` go to ``synth_city`` (e.g. lumpy households: footprints="mixed", per_cell=9, tower_share=0.08;
    not ``block_m``, which would change the districts' sizes)."""
    codes = district_codes(n_districts)
    rows: dict[str, list[gpd.GeoDataFrame]] = {"areas": [], "roads": [], "barriers": [], "buildings": []}
    origins = district_origins(n_districts, blocks_each, seed=seed)
    for i, (code, origin) in enumerate(zip(codes, origins)):
        city = synth_city(blocks_each, seed + i, origin=origin, **city_kw)
        off = (i + 1) * _ID_STRIDE
        roads = city.roads.copy()
        roads[["osm_id", "u", "v"]] = roads[["osm_id", "u", "v"]].astype("int64") + off
        barriers = city.barriers.copy()
        barriers["osm_id"] = barriers["osm_id"].astype("int64") + off
        buildings = city.buildings.copy()
        buildings["osm_id"] = buildings["osm_id"].astype("int64") + off
        rows["roads"].append(roads)
        rows["barriers"].append(barriers)
        rows["buildings"].append(buildings)
        metric = gpd.GeoSeries([city.area], crs=4326).to_crs(city.metric_crs)
        rows["areas"].append(gpd.GeoDataFrame(
            {"code": [code], "name": [f"合成区{i + 1}"], "level": ["district"], "source": ["synthetic"],
             "area_m2": [float(metric.area.iloc[0])]},
            geometry=[shapely.MultiPolygon([city.area])], crs=4326))
    return {k: gpd.GeoDataFrame(gpd.pd.concat(v, ignore_index=True), crs=4326) for k, v in rows.items()}


def load_province(store, n_districts: int, blocks_each: int, *, seed: int = 1, **city_kw) -> list[str]:  # noqa: ANN001, ANN003
    """Write the generated province ``province_layers(n_districts, blocks_each, seed=seed)`` into ``store`` as if
    imported (its districts 合成区1, 合成区2, … the planning areas, an OSM import record); returns the district
    codes. One transaction. ``city_kw`` as for :func:`province_layers`."""
    layers = province_layers(n_districts, blocks_each, seed=seed, **city_kw)
    cover = shapely.union_all(layers["areas"].geometry.to_numpy())
    now = utcnow()
    record = gpd.GeoDataFrame(
        [{"kind": "osm", "source_path": f"synthetic province ({n_districts} x {blocks_each} blocks, seed {seed})",
          "source_sha256": "-", "source_bytes": 0, "options_json": "{}",
          "counts_json": json.dumps({"districts": n_districts}), "dropped_json": "{}",
          "started_at": now, "finished_at": now}],
        geometry=[shapely.MultiPolygon(list(shapely.get_parts(cover)))], crs=4326)
    with store.begin() as conn:
        for layer in ("roads", "barriers", "buildings", "areas"):
            store.insert_gdf(conn, layer, layers[layer])
        store.insert_gdf(conn, "imports", record)
    return [str(c) for c in layers["areas"]["code"]]
