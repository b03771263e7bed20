"""Hot spots of a grid from the incidents layer (recent incidents, clustered, weighted by recency)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import geopandas as gpd
from gridpatrol.gis.hotspots import hot_spots
from gridpatrol.layers.models import Incident
from gridpatrol.layers.store import Store
from sqlalchemy import and_


def grid_hot_spots(
    store: Store,
    code: str,
    *,
    plan_id: int | None = None,
    days: float = 90.0,
    at: datetime | None = None,
    radius_m: float = 50.0,
    min_incidents: int = 2,
    half_life_days: float | None = 30.0,
    top: int | None = None,
    where: Any = None,
) -> gpd.GeoDataFrame:
    """Hot spots (see :func:`gis.hotspots.hot_spots`) of the incidents inside grid ``code`` of
    the newest plan (or ``plan_id``) that occurred in the ``days`` before ``at`` (default now).
    Duplicates (incidents marked as a duplicate of another) are not counted twice. ``where``
    (a row filter on incidents: what the caller may see) limits the incidents counted.
    Raises NotFoundError for an unknown grid."""
    from gridpatrol.layers.routes import grid_targets

    target = grid_targets(store, [code], plan_id)[0]
    end = at or datetime.now(timezone.utc)
    start = end - timedelta(days=days)
    t = Incident.__table__
    if store.is_gpkg:  # GeoPackage keeps naive UTC text
        start, end = (v.astimezone(timezone.utc).replace(tzinfo=None) for v in (start, end))
    conds = [t.c.occurred_at >= start, t.c.occurred_at <= end, t.c.duplicate_of.is_(None)]
    if where is not None:
        conds.append(where)
    inc = store.read_layer("incidents", bbox=list(target.polygon.bounds), where=and_(*conds))
    inc = inc[inc.intersects(target.polygon)] if len(inc) else inc
    return hot_spots(inc, radius_m=radius_m, min_incidents=min_incidents, half_life_days=half_life_days,
                     at=at, top=top)
