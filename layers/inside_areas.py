"""Points far outside the county's imported areas: a wrong CRS or a wrong file, refused before any write."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.layers.store import Store
from sqlalchemy import Connection

# How far outside the imported areas a point may lie (m): cameras on a boundary road, an incident
# reported just across the county line.
AREA_MARGIN_M = 5000.0
AREA_LEVELS = ("county", "district", "street", "community")


def outside_areas(store: Store, lon: np.ndarray, lat: np.ndarray, *, conn: Connection | None = None,
                  margin_m: float = AREA_MARGIN_M) -> np.ndarray:
    """Mask of WGS-84 points more than ``margin_m`` from every imported area (county, district,
    street, community); all False when the store has no such areas yet."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    out = np.zeros(len(lon), dtype=bool)
    if not len(lon):
        return out
    t = store.table("areas")
    areas = store.read_layer("areas", where=t.c.level.in_(AREA_LEVELS), conn=conn)
    areas = areas[areas.geometry.notna() & ~areas.geometry.is_empty]
    if not len(areas):
        return out
    c = shapely.union_all(areas.geometry.values).centroid
    metric = local_metric_crs(c.x, c.y)
    zone = shapely.union_all(areas.to_crs(metric).geometry.values).buffer(margin_m, quad_segs=4)
    ok = np.isfinite(lon) & np.isfinite(lat)
    pts = gpd.GeoSeries(shapely.points(lon[ok], lat[ok]), crs="EPSG:4326").to_crs(metric).values
    shapely.prepare(zone)
    out[ok] = ~shapely.contains_xy(zone, shapely.get_x(pts), shapely.get_y(pts))
    return out


def outside_message(n_far: int, n_all: int) -> str:
    """The cause shown for rows outside the areas."""
    return (f"lies more than {AREA_MARGIN_M / 1000:g} km outside the county's imported areas"
            + (" (as every row does: is --crs right, or is this another county's file?)" if n_far == n_all
               else ": check its coordinates and --crs"))
