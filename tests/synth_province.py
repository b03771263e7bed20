"""A generated province: districts that are synthetic cities (tests/synth_city.py) side by side, written
into a store as if imported (areas, streets, barriers, buildings, an OSM import record). Test data, also
used by the province benchmark (scripts/bench/province.py)."""
from __future__ import annotations

import json
import math

import geopandas as gpd
import numpy as np
import shapely

from tests.synth_city import synth_city

__all__ = ["district_codes", "load_province"]

# Ids of district i's OSM objects and street nodes are offset by i × this (no two districts share one).
_ID_STRIDE = 10**9


def district_codes(n: int) -> list[str]:
    """The six-digit codes of the generated districts: 519901, 519902, …"""
    return [f"5199{i + 1:02d}" for i in range(n)]


def _shift(gdf: gpd.GeoDataFrame, dx: float, dy: float) -> gpd.GeoDataFrame:
    out = gdf.copy()
    out["geometry"] = shapely.transform(out.geometry.to_numpy(), lambda xy: xy + np.array([dx, dy]))
    return out


def load_province(store, n_districts: int, blocks_each: int, *, seed: int = 1, **city_kw) -> list[str]:  # noqa: ANN001, ANN003
    """Write ``n_districts`` generated cities of about ``blocks_each`` blocks each into ``store`` (in a
    square of districts that do not touch), each a district named 合成区N; returns their codes. One transaction.
    ``city_kw`` go to ``synth_city`` (e.g. the lumpy city: footprints="mixed", per_cell=9, tower_share=0.08)."""
    from gridpatrol.layers.models import utcnow

    side = math.ceil(math.sqrt(n_districts))
    codes = district_codes(n_districts)
    rows: dict[str, list[gpd.GeoDataFrame]] = {"roads": [], "barriers": [], "buildings": [], "areas": []}
    cover = []
    cities = [synth_city(blocks_each, seed + i, **city_kw) for i in range(n_districts)]
    # One step for all (the largest city's size and a margin): no two districts overlap.
    bounds = np.array([c.area.bounds for c in cities])
    step_x = float((bounds[:, 2] - bounds[:, 0]).max()) * 1.1
    step_y = float((bounds[:, 3] - bounds[:, 1]).max()) * 1.1
    for i, (code, city) in enumerate(zip(codes, cities)):
        minx, miny = bounds[i, 0], bounds[i, 1]
        dx, dy = (i % side) * step_x + bounds[0, 0] - minx, (i // side) * step_y + bounds[0, 1] - miny
        off = (i + 1) * _ID_STRIDE
        roads = _shift(city.roads, dx, dy)
        roads[["osm_id", "u", "v"]] = roads[["osm_id", "u", "v"]].astype("int64") + off
        barriers = _shift(city.barriers, dx, dy)
        barriers["osm_id"] = barriers["osm_id"].astype("int64") + off
        buildings = _shift(city.buildings, dx, dy)
        buildings["osm_id"] = buildings["osm_id"].astype("int64") + off
        area = shapely.transform(city.area, lambda xy: xy + np.array([dx, dy]))
        cover.append(area)
        rows["roads"].append(roads)
        rows["barriers"].append(barriers)
        rows["buildings"].append(buildings)
        metric = gpd.GeoSeries([area], crs=4326).to_crs(city.metric_crs)
        rows["areas"].append(gpd.GeoDataFrame(
            {"code": [code], "name": [f"合成区{i + 1}"], "level": ["district"], "source": ["synthetic"],
             "area_m2": [float(metric.area.iloc[0])]},
            geometry=[shapely.MultiPolygon([area])], crs=4326))
    now = utcnow()
    record = gpd.GeoDataFrame(
        [{"kind": "osm", "source_path": f"synthetic province ({n_districts} x {blocks_each} blocks, seed {seed})",
          "source_sha256": "-", "source_bytes": 0, "options_json": "{}",
          "counts_json": json.dumps({"districts": n_districts}), "dropped_json": "{}",
          "started_at": now, "finished_at": now}],
        geometry=[shapely.MultiPolygon(list(shapely.get_parts(shapely.union_all(cover))))], crs=4326)
    with store.begin() as conn:
        for layer, frames in rows.items():
            store.insert_gdf(conn, layer, gpd.GeoDataFrame(gpd.pd.concat(frames, ignore_index=True), crs=4326))
        store.insert_gdf(conn, "imports", record)
    return codes
