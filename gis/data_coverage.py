"""Data sanity before drawing: how much of an area its streets and buildings cover, and plausible densities."""
from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

# Side of the cells an area is cut into to measure coverage (m): about one city block with its
# streets, so a cell of a built-up area always meets a street or a building, while a corner
# without imported data leaves whole cells empty.
CELL_M = 250.0
# Below WARN_SHARE of an area covered, check-grids and draw-grids warn; below REFUSE_SHARE
# draw-grids refuses unless allow_sparse.
WARN_SHARE = 0.80
REFUSE_SHARE = 0.20
# Households per km² of the covered part of an area beyond which the counts cannot be real:
# the densest Chinese urban cores house about 20,000 households per km² (60,000 people).
MAX_HOUSEHOLDS_PER_KM2 = 40_000.0


@dataclass
class Coverage:
    """Share of an area with data in its cells, the data's extent and the area's density."""

    share: float
    area_km2: float
    covered_km2: float
    cells: int
    data_extent: tuple[float, float, float, float] | None  # lon/lat of the streets and buildings met
    households: float = 0.0
    built_m2: float = 0.0

    @property
    def households_per_km2(self) -> float:
        """Households per km² of the covered part (0 when nothing is covered)."""
        return self.households / self.covered_km2 if self.covered_km2 > 0 else 0.0


def data_coverage(area, roads: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame, metric_crs, *,
                  cell_m: float = CELL_M, households: float = 0.0) -> Coverage:
    """Coverage of ``area`` (EPSG:4326 polygon) by ``roads`` and ``buildings`` (EPSG:4326).

    The area is cut into square cells of ``cell_m`` metres in ``metric_crs``; ``share`` is the part
    of the area lying in cells that any street or building touches (each cell weighted by its
    overlap with the area).
    """
    a = gpd.GeoSeries([area], crs="EPSG:4326").to_crs(metric_crs).values[0]
    total = float(a.area)
    data = [g for g in (roads, buildings) if g is not None and len(g)]
    geoms = np.concatenate([gpd.GeoSeries(g.geometry, crs="EPSG:4326").to_crs(metric_crs).values for g in data]) \
        if data else np.array([], dtype=object)
    minx, miny, maxx, maxy = a.bounds
    xs = np.arange(minx, maxx, cell_m)
    ys = np.arange(miny, maxy, cell_m)
    gx, gy = np.meshgrid(xs, ys)
    cells = shapely.box(gx.ravel(), gy.ravel(), gx.ravel() + cell_m, gy.ravel() + cell_m)
    shapely.prepare(a)
    cells = cells[shapely.intersects(a, cells)]
    inside = shapely.area(shapely.intersection(cells, a))
    has = np.zeros(len(cells), dtype=bool)
    extent = None
    if len(geoms):
        ci, gi = shapely.STRtree(geoms).query(cells, predicate="intersects")
        has[np.unique(ci)] = True
        met = geoms[np.unique(gi)]
        if len(met):
            ext = gpd.GeoSeries([shapely.box(*shapely.total_bounds(met))], crs=metric_crs).to_crs("EPSG:4326")
            extent = tuple(float(v) for v in ext.total_bounds)
    built = 0.0
    if buildings is not None and len(buildings):
        bm = gpd.GeoSeries(buildings.geometry, crs="EPSG:4326").to_crs(metric_crs).values
        built = float(shapely.area(shapely.intersection(bm, a)).sum())
    covered = float(inside[has].sum())
    return Coverage(share=covered / total if total > 0 else 0.0, area_km2=total / 1e6, covered_km2=covered / 1e6,
                    cells=len(cells), data_extent=extent, households=float(households), built_m2=built)


def extent_text(extent: tuple[float, float, float, float] | None) -> str:
    """An extent as 'lon, lat – lon, lat' (or 'no data')."""
    if extent is None:
        return "no streets or buildings at all"
    return f"{extent[0]:.4f}, {extent[1]:.4f} – {extent[2]:.4f}, {extent[3]:.4f}"


def coverage_warning(name: str, cov: Coverage) -> str | None:
    """The data_coverage message for an area covered below WARN_SHARE, else None."""
    if cov.share >= WARN_SHARE:
        return None
    return (f"area {name}: only {100 * cov.share:.0f} % of its {cov.area_km2:.1f} km² has imported streets or "
            f"buildings in its {CELL_M:.0f} m cells (data extent {extent_text(cov.data_extent)}); grids drawn there "
            "will be large and nearly empty: import an extract that covers the whole area")


def density_warning(name: str, cov: Coverage) -> str | None:
    """The implausible_density message when the area's households per km² cannot be real, else None."""
    d = cov.households_per_km2
    if d > MAX_HOUSEHOLDS_PER_KM2:
        return (f"area {name}: {cov.households:.0f} households on {cov.covered_km2:.2f} km² with data is "
                f"{d:,.0f} households per km², far above any real city (about {MAX_HOUSEHOLDS_PER_KM2:,.0f} at most): "
                "household counts in persons or a wrong --m2-per-household, or an area outline in a wrong CRS or "
                "unit that makes it too small")
    return None
