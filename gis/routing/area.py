"""The streets a grid's route covers, and the part of a city network its route may use."""
from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.gis.routing.network import components
from gridpatrol.gis.streets import StreetNetwork, street_network
from shapely.geometry.base import BaseGeometry


@dataclass
class GridArea:
    """A grid's street network (its streets and those around it) in a local metric CRS."""

    net: StreetNetwork
    required: np.ndarray  # mask over net's edges: the grid's streets
    along_edge: bool  # the grid has no street of its own: ``required`` are those along its edge
    crs: pyproj.CRS
    to_metric: pyproj.Transformer  # EPSG:4326 → crs
    polygon_m: BaseGeometry


def grid_area(roads: gpd.GeoDataFrame | StreetNetwork, polygon: BaseGeometry, mode: str, *, buffer_m: float,
              walk_box_ok: bool) -> GridArea:
    """The streets a route over ``polygon`` (EPSG:4326) may use: those meeting its box grown by ``buffer_m``.

    ``roads`` is the roads layer (EPSG:4326) or a StreetNetwork of ``mode`` built for a whole city.
    ``walk_box_ok``: a walking route from the default start with one worker, which needs less.
    """
    if isinstance(roads, StreetNetwork):
        to_m = roads.transformer()
        poly_m = shapely.transform(polygon, lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1])))
        city = roads
        # The grid's streets lie within the box around it: find them with the city's spatial
        # index (built once) instead of building one for every grid.
        req_city, along_edge = grid_streets(city, poly_m)
        box = _around(poly_m, buffer_m).bounds
        if walk_box_ok and req_city.any():
            box = _walk_box(city, np.flatnonzero(req_city), box)
        near = np.sort(np.asarray(city.tree().query(shapely.box(*box)) if city.n_edges else [], dtype=np.int64))
        return GridArea(city.subset(near), req_city[near], along_edge, roads.crs, to_m, poly_m)
    c = polygon.centroid
    crs = local_metric_crs(c.x, c.y)
    to_m = pyproj.Transformer.from_crs(4326, crs, always_xy=True)
    poly_m = shapely.transform(polygon, lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1])))
    if len(roads):
        # The layer's spatial index (kept by geopandas between calls) narrows the streets to
        # a padded box in degrees first; only those are projected and tested exactly.
        pad_y = 1.5 * buffer_m / 110_540.0
        pad_x = 1.5 * buffer_m / (111_320.0 * max(np.cos(np.radians(min(abs(c.y), 89.0))), 0.01))
        minx, miny, maxx, maxy = polygon.bounds
        idx = roads.sindex.query(shapely.box(minx - pad_x, miny - pad_y, maxx + pad_x, maxy + pad_y))
        roads = roads.iloc[np.sort(idx)]
        geoms_m = roads.geometry.to_crs(crs).to_numpy()
        roads = roads[shapely.intersects(geoms_m, _around(poly_m, buffer_m))]
    net = street_network(roads, mode=mode, crs=crs)
    req, along_edge = grid_streets(net, poly_m)
    return GridArea(net, req, along_edge, crs, to_m, poly_m)


def _near_edges(net: StreetNetwork, polygon_m: BaseGeometry, tol_m: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Edges within ``tol_m`` of the polygon: (indices, lengths, length within ``tol_m``, wholly
    within). Edges wholly within need no intersection (the costly part): only those crossing."""
    area = shapely.buffer(polygon_m, tol_m)
    shapely.prepare(area)
    cand = net.tree().query(area, predicate="intersects") if net.n_edges else np.zeros(0, dtype=np.int64)
    geoms = net.edge_geom[cand]
    total = shapely.length(geoms)
    whole = shapely.contains_properly(area, geoms)
    inside = total.copy()
    if not whole.all():
        inside[~whole] = shapely.length(shapely.intersection(geoms[~whole], area))
    return cand, total, inside, whole


def required_mask(net: StreetNetwork, polygon_m: BaseGeometry, *, tol_m: float = 2.0, min_share: float = 0.5) -> np.ndarray:
    """Edges that count as streets of the polygon (metric CRS of ``net``).

    An edge belongs when at least ``min_share`` of its length lies within ``tol_m`` of the
    polygon, so streets that form the grid boundary belong to it too.
    """
    return grid_streets(net, polygon_m, tol_m=tol_m, min_share=min_share, along_edge_m=None)[0]


def grid_streets(net: StreetNetwork, polygon_m: BaseGeometry, *, tol_m: float = 2.0, min_share: float = 0.5,
                 along_edge_m: float | None = 10.0) -> tuple[np.ndarray, bool]:
    """(mask of the polygon's streets, whether they are only those along its edge).

    The polygon's streets are as :func:`required_mask`; a polygon with none gets instead the
    streets running along it for at least ``along_edge_m``.
    """
    mask = np.zeros(net.n_edges, dtype=bool)
    cand, total, inside, whole = _near_edges(net, polygon_m, tol_m)
    mask[cand] = whole | (inside >= min_share * np.maximum(total, 1e-9))
    if mask.any() or along_edge_m is None:
        return mask, False
    mask[cand] = inside >= along_edge_m
    return mask, bool(mask.any())


def _walk_box(city: StreetNetwork, req: np.ndarray, box: tuple[float, float, float, float]
              ) -> tuple[float, float, float, float]:
    """The part of ``box`` (metres) a walking grid whose streets ``req`` are one piece can need
    (docs/routing.md, step "area"); otherwise ``box`` itself."""
    u, v = city.edge_u[req], city.edge_v[req]
    labels = components(city.n_nodes, u, v)
    if np.any(labels[u] != labels[u[0]]):
        return box
    L = float(city.edge_length_m[req].sum()) + 1e-6 * len(req)
    # The Dijkstra limit of tjoin, then room for projected vs. geodesic lengths.
    m = (L * (1 + 1e-9) + 1e-3) / 2 * 1.01 + 5.0
    xy = city.node_xy[np.concatenate([u, v])]
    (x0, y0), (x1, y1) = xy.min(axis=0) - m, xy.max(axis=0) + m
    return (max(x0, box[0]), max(y0, box[1]), min(x1, box[2]), min(y1, box[3]))


def _around(poly_m: BaseGeometry, buffer_m: float) -> BaseGeometry:
    """The streets a route may use: those meeting the polygon's bounding box grown by ``buffer_m``."""
    minx, miny, maxx, maxy = poly_m.bounds
    return shapely.box(minx - buffer_m, miny - buffer_m, maxx + buffer_m, maxy + buffer_m)
