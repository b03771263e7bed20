"""Cameras with every optics oddity a register may hold, for the map-click lookup tests."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyproj
import shapely

GEOD = pyproj.Geod(ellps="WGS84")


def odd_cameras(rng: np.random.Generator, lon0: float, lat0: float, *, n: int, spread_m: float,
                code: str, name: str, types: list[str]) -> gpd.GeoDataFrame:
    """n cameras within spread_m of (lon0, lat0): no azimuth, no range, no fov, fov ≥ 360, camera
    types spelled loosely (from types), status missing or in capitals, secrecy levels 0–3.
    Codes are f"{code}{i:03d}", names f"{name}{i}"."""
    lon, lat, _ = GEOD.fwd(np.full(n, lon0), np.full(n, lat0), rng.uniform(0, 360, n), rng.uniform(0, spread_m, n))
    az = rng.uniform(-400, 800, n)
    az[::17] = np.nan
    reach = rng.uniform(20, 150, n)
    reach[::13] = np.nan
    fov = rng.uniform(20, 120, n)
    fov[::19] = np.nan
    fov[::23] = 360.0
    return gpd.GeoDataFrame({
        "code": [f"{code}{i:03d}" for i in range(n)], "name": [f"{name}{i}" for i in range(n)], "project": "other",
        "azimuth_deg": az, "fov_deg": fov, "range_m": reach, "camera_type": rng.choice(types, n),
        "status": rng.choice(["online", "Offline", " fault", "ONLINE"], n), "secrecy_level": np.arange(n) % 4,
        "synthetic": True}, geometry=shapely.points(lon, lat), crs=4326)
