"""Data sanity of the planning areas before and after drawing: coverage by streets and buildings, densities."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from gridpatrol.gis.assign import assign_xy, representative_xy
from gridpatrol.gis.data_coverage import (
    REFUSE_SHARE,
    coverage_warning,
    data_coverage,
    density_warning,
    extent_text,
)
from gridpatrol.gis.errors import InputError
from gridpatrol.layers.grids.core import (
    area_label,
    metric_crs_of,
    read_within,
    real_buildings,
)
from gridpatrol.layers.store import Store


def data_checks(store: Store, areas: gpd.GeoDataFrame) -> list[dict]:
    """One row per planning area: code, label, share, km², data extent, households per km² and the
    warnings (``data_coverage``, ``implausible_density``) that apply, each as kind/detail."""
    out = []
    for _, area in areas.iterrows():
        geom = area.geometry
        roads = read_within(store, "roads", geom)
        buildings = read_within(store, "buildings", geom)
        hh = 0.0
        if len(buildings):
            x, y = representative_xy(buildings.geometry)
            inside = assign_xy(x, y, np.array([geom], dtype=object)) >= 0
            hh = float(pd.to_numeric(buildings["households"], errors="coerce").fillna(0.0).to_numpy()[inside].sum())
        cov = data_coverage(geom, roads, real_buildings(buildings), metric_crs_of(geom), households=hh)
        label = area_label(area)
        warnings = [{"kind": k, "detail": m} for k, m in
                    (("data_coverage", coverage_warning(label, cov)), ("implausible_density", density_warning(label, cov)))
                    if m]
        out.append({"area": str(area["code"]), "label": label, "share": cov.share, "area_km2": cov.area_km2,
                    "covered_km2": cov.covered_km2, "data_extent": cov.data_extent,
                    "households_per_km2": cov.households_per_km2, "warnings": warnings,
                    "point": shapely.point_on_surface(geom)})
    return out


def refuse_sparse(checks: list[dict]) -> None:
    """InputError naming every area covered below REFUSE_SHARE (draw-grids without allow_sparse)."""
    sparse = [c for c in checks if c["share"] < REFUSE_SHARE]
    if not sparse:
        return
    raise InputError(
        "数据覆盖不足，未绘制网格 / too little data to draw grids: " + "; ".join(
            f"area {c['label']}: {100 * c['share']:.0f} % of {c['area_km2']:.1f} km² has streets or buildings "
            f"(data extent {extent_text(c['data_extent'])})" for c in sparse),
        hint=f"below {100 * REFUSE_SHARE:.0f} % the grids would be drawn on empty land: import an extract that "
             "covers the area, or pass --allow-sparse (API: allow_sparse) to draw anyway")


def summary_of(checks: list[dict]) -> dict:
    """Per-area coverage for plan metrics and check summaries (JSON-ready)."""
    return {c["area"]: {"share": round(c["share"], 4), "area_km2": round(c["area_km2"], 3),
                        "households_per_km2": round(c["households_per_km2"], 1),
                        "data_extent": list(c["data_extent"]) if c["data_extent"] else None}
            for c in checks}
