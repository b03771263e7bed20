"""``--max-route-min``: a grid's patrol must take at most M minutes on foot.

A grid's patrol is the walking coverage route ``plan-routes`` plans for it (every street of the
grid, closed, from its station or by default from the street node nearest its centre, at
4.5 km/h: ``gis.routing.coverage.plan_coverage``). While a plan is cut, the street length of a
grid stands in for it (``ROUTE_PER_STREET``: the route is at least the grid's streets and, on the
Chengdu grids, at most about twice their length); the exact route of every grid is computed at
the end and decides: a grid over M is split again, a merge that would put one over M is not
made, and what M still forces is exempt with the route's certified lower bound.
"""
from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import shapely
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.routing.coverage import plan_coverage
from gridpatrol.gis.streets import street_network
from shapely.geometry.base import BaseGeometry

WALK_KMH = 4.5  # plan-routes' walking speed (gis.routing.shifts.edge_speed_mps)
M_PER_MIN = WALK_KMH * 1000.0 / 60.0  # 75 m of route per minute
ROUTE_PER_STREET = 2.0  # estimate while cutting: route ≈ this × the grid's street_m
AROUND_DEG = 0.015  # streets read around an area for routes leaving it (as plan-routes reads them)


class RouteMeter:
    """Walking coverage routes of polygons (EPSG:4326) on one street network, cached by key."""

    def __init__(self, roads: gpd.GeoDataFrame):
        self.net = street_network(roads, mode="walk") if len(roads) else None
        self._memo: dict[object, tuple[float, float]] = {}
        self.routes = 0  # routes planned (not from the cache)

    @classmethod
    def around(cls, store, geom: BaseGeometry) -> RouteMeter:  # noqa: ANN001
        """A meter on the store's streets in ``geom``'s box grown by ~1.5 km."""
        minx, miny, maxx, maxy = geom.bounds
        roads = store.read_layer("roads", bbox=(minx - AROUND_DEG, miny - AROUND_DEG, maxx + AROUND_DEG,
                                                maxy + AROUND_DEG))
        return cls(roads)

    def minutes(self, polygon: BaseGeometry, start: tuple[float, float] | None = None,
                key: object = None) -> tuple[float, float]:
        """(minutes, lower bound in minutes) of the patrol of ``polygon``; (0, 0) when it has no
        street a route can be planned on (plan-routes refuses such a grid: there is no patrol)."""
        k = (key, start) if key is not None else None
        if k is not None and k in self._memo:
            return self._memo[k]
        out = (0.0, 0.0)
        if self.net is not None and self.net.n_edges:
            try:
                plan = plan_coverage(self.net, polygon, mode="walk", start=start, time_limit_s=10.0)
                out = (plan.length_m / M_PER_MIN, plan.lower_bound_m / M_PER_MIN)
            except InputError:
                pass
            self.routes += 1
        if k is not None:
            self._memo[k] = out
        return out

    def of_blocks(self, geoms: np.ndarray, idx: np.ndarray) -> tuple[float, float]:
        """The patrol of the union of the blocks ``geoms[idx]`` (EPSG:4326), cached by the block set."""
        idx = np.sort(np.asarray(idx, dtype=np.int64))
        key = idx.tobytes()
        if key in self._memo:
            return self._memo[key]
        return self.minutes(shapely.union_all(geoms[idx]), key=key)

    def of_grids(self, geoms: Sequence[BaseGeometry], stations: Sequence[tuple[float, float] | None] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(minutes, lower bound minutes) per grid geometry, each from its station (None: default start)."""
        stations = stations if stations is not None else [None] * len(geoms)
        got = [self.minutes(g, s) for g, s in zip(geoms, stations)]
        return (np.array([m for m, _ in got], dtype=float).reshape(-1),
                np.array([lb for _, lb in got], dtype=float).reshape(-1))


def route_inputs(meter: RouteMeter, grids: gpd.GeoDataFrame, max_route_min: float) -> dict:
    """What ``gis.grid_check.check_plan`` needs to judge ``--max-route-min``: each grid's patrol
    (minutes and lower bound, from its station when it has one) and the patrol share of the grid
    a merge of two touching grids would make (asked lazily, only for merges the other rules allow)."""
    geoms = grids.geometry.to_numpy()
    stations: list[tuple[float, float] | None] = []
    for lon, lat in zip(grids.get("station_lon", [None] * len(grids)), grids.get("station_lat", [None] * len(grids))):
        ok = lon is not None and lat is not None and lon == lon and lat == lat
        stations.append((float(lon), float(lat)) if ok else None)
    minutes, lower = meter.of_grids(geoms, stations)
    codes = grids["code"].astype(str).to_numpy()

    def pair_share(i: int, j: int) -> float:
        a, b = sorted((codes[i], codes[j]))
        m, _ = meter.minutes(shapely.union_all([geoms[i], geoms[j]]), key=("merge", a, b))
        return m / max_route_min

    return {"route_minutes": minutes, "route_lower": lower, "max_route_min": float(max_route_min),
            "pair_route_share": pair_share}
