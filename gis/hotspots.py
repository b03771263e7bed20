"""Hot spots: clusters of recent incidents, weighted by recency, for patrols to visit first."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.gis.errors import InputError
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

COLUMNS = ["name", "name_en", "incidents", "importance", "radius_m", "categories", "first_at", "last_at", "synthetic"]


def hot_spots(
    incidents: gpd.GeoDataFrame,
    *,
    radius_m: float = 50.0,
    min_incidents: int = 2,
    half_life_days: float | None = 30.0,
    at: datetime | None = None,
    top: int | None = None,
) -> gpd.GeoDataFrame:
    """Cluster incident points into hot spots, most important first.

    ``incidents``: points in EPSG:4326 with an optional ``occurred_at`` (tz-aware or UTC) and
    ``category``. Two incidents within ``radius_m`` metres join one hot spot (single linkage,
    so a chain of incidents along a street is one spot). A spot needs ``min_incidents``; its
    ``importance`` is the sum over its incidents of 0.5^(age / ``half_life_days``) (each counts
    1 when ``half_life_days`` is None), age measured back from ``at`` (default now). Returns
    points (EPSG:4326, the mean position of the spot's incidents) with ``name`` (Chinese) and
    ``name_en``, ``incidents``, ``importance``, ``radius_m`` (furthest incident from the point),
    ``categories`` (most frequent first), ``first_at``/``last_at``, ``synthetic`` (any of its
    incidents is synthetic); at most ``top`` rows.
    """
    if radius_m <= 0 or min_incidents < 1:
        raise InputError("hot spots need radius_m > 0 and min_incidents ≥ 1")
    if incidents.crs is None or incidents.crs.to_epsg() != 4326:
        raise InputError(f"incidents must be EPSG:4326, not {incidents.crs}")
    pts = incidents[incidents.geometry.notna() & ~incidents.geometry.is_empty]
    if not len(pts):
        return gpd.GeoDataFrame({c: [] for c in COLUMNS}, geometry=[], crs=4326)
    ll = shapely.get_coordinates(shapely.centroid(pts.geometry.to_numpy()))
    c = ll.mean(axis=0)
    crs = local_metric_crs(float(c[0]), float(c[1]))
    x, y = pyproj.Transformer.from_crs(4326, crs, always_xy=True).transform(ll[:, 0], ll[:, 1])
    xy = np.column_stack([x, y])
    geoms = shapely.points(xy)
    i, j = shapely.STRtree(geoms).query(geoms, predicate="dwithin", distance=radius_m)
    n = len(geoms)
    _, label = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)

    when = pd.to_datetime(pts["occurred_at"], utc=True) if "occurred_at" in pts.columns else None
    if half_life_days is None or when is None:
        weight = np.ones(n)
    else:
        now = pd.Timestamp(at or datetime.now(timezone.utc))
        now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
        age_days = ((now - when).dt.total_seconds().to_numpy() / 86400.0).clip(min=0)
        weight = 0.5 ** (age_days / half_life_days)
    cats = pts["category"].astype(str).to_numpy() if "category" in pts.columns else np.full(n, "")
    synthetic = (pts["synthetic"].fillna(False).astype(bool).to_numpy() if "synthetic" in pts.columns
                 else np.zeros(n, bool))

    rows = []
    for lab in np.unique(label):
        members = np.flatnonzero(label == lab)
        if len(members) < min_incidents:
            continue
        centre = xy[members].mean(axis=0)
        rows.append({
            "x": centre[0], "y": centre[1],
            "incidents": len(members),
            "importance": float(weight[members].sum()),
            "radius_m": round(float(np.hypot(*(xy[members] - centre).T).max()), 1),
            "categories": ",".join(k for k, _ in Counter(cats[members]).most_common() if k),
            "first_at": when.iloc[members].min() if when is not None else None,
            "last_at": when.iloc[members].max() if when is not None else None,
            "synthetic": bool(synthetic[members].any()),
        })
    if not rows:
        return gpd.GeoDataFrame({c: [] for c in COLUMNS}, geometry=[], crs=4326)
    df = pd.DataFrame(rows).sort_values(["importance", "incidents", "x", "y"], ascending=[False, False, True, True])
    if top is not None:
        df = df.head(top)
    df = df.reset_index(drop=True)
    first_cat = df["categories"].str.split(",").str[0]
    df["name"] = [f"热点{k + 1}（{m}起{'，' + cat if cat else ''}）"
                  for k, (m, cat) in enumerate(zip(df["incidents"], first_cat))]
    df["name_en"] = [f"hot spot {k + 1} ({m} incidents{', ' + cat if cat else ''})"
                     for k, (m, cat) in enumerate(zip(df["incidents"], first_cat))]
    lon, lat = pyproj.Transformer.from_crs(crs, 4326, always_xy=True).transform(df["x"].to_numpy(), df["y"].to_numpy())
    return gpd.GeoDataFrame(df[COLUMNS], geometry=gpd.points_from_xy(lon, lat), crs=4326)
