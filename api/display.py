"""What the map pages show in the browser's datum: GCJ-02 when the configured tiles are GCJ-02, else WGS-84."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import numpy as np
from gridpatrol.api.config import Settings
from gridpatrol.gis.crs import wgs84_to_gcj02


def display_crs(settings: Settings) -> str | None:
    """``"gcj02"`` when the configured basemap tiles are GCJ-02 (our layers are shifted to match), else None."""
    return "gcj02" if settings.tile_url and settings.tile_crs == "gcj02" else None


def _shift_coords(obj: Any) -> Any:
    if isinstance(obj, list) and obj and isinstance(obj[0], (int, float)):
        x, y = wgs84_to_gcj02(np.array([obj[0]], float), np.array([obj[1]], float))
        return [float(x[0]), float(y[0]), *obj[2:]]
    if isinstance(obj, list):
        return [_shift_coords(o) for o in obj]
    return obj


def _shift(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: (_shift_coords(v) if k == "coordinates" else _shift(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [_shift(v) for v in data]
    return data


def display_geojson(data: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """GeoJSON (WGS-84) → the map's display datum: every coordinate shifted to GCJ-02 on GCJ-02 tiles."""
    return _shift(data) if display_crs(settings) == "gcj02" else data


def display_lonlat(lon: np.ndarray, lat: np.ndarray, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """Arrays of WGS-84 lon, lat → the map's display datum."""
    if display_crs(settings) == "gcj02" and len(lon):
        return wgs84_to_gcj02(np.asarray(lon, float), np.asarray(lat, float))
    return np.asarray(lon, float), np.asarray(lat, float)


def tile_origin(settings: Settings) -> str | None:
    """``scheme://host[:port]`` of the configured tile URL (for the pages' img-src), None without tiles."""
    if not settings.tile_url:
        return None
    parts = urlsplit(settings.tile_url.replace("{s}", "tile-subdomain"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    # Leaflet's {s} subdomains (a., b., c.) are allowed as a wildcard: https://*.tiles.example
    return f"{parts.scheme}://{parts.netloc.replace('tile-subdomain', '*')}"
