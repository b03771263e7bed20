"""Block building survives GEOS topology failures and tiles many generated cities exactly (issue 15)."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
import shapely.affinity
from gridpatrol.gis import block_cuts
from gridpatrol.gis.block_cuts import territory_lines
from gridpatrol.gis.blocks import build_blocks
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.synth_city import synth_city
from shapely.errors import GEOSException

# (blocks, seed, footprints, per_cell, overlap_share, max_block_households): small limits force
# the straight cuts and the territories between building clusters on every city
CITIES = [
    (80, 5, "box", 4, 0.0, 20),
    (60, 1, "mixed", 9, 0.0, 15),
    (60, 2, "mixed", 4, 0.0, 15),
    (100, 3, "box", 9, 0.0, 10),
    (100, 4, "mixed", 9, 0.3, 15),
    (60, 6, "mixed", 6, 0.5, 12),
]


def _metric(city, gdf):  # noqa: ANN001, ANN202
    return gdf.to_crs(city.metric_crs).geometry.to_numpy()


def _check_invariants(city, blocks) -> None:  # noqa: ANN001
    """Blocks tile the area, every building lies in exactly one block, and no cut goes through one."""
    geoms = _metric(city, blocks)
    area_m = gpd.GeoSeries([city.area], crs=4326).to_crs(city.metric_crs).iloc[0]
    assert shapely.is_valid(geoms).all() and (shapely.get_type_id(geoms) == 3).all()
    # union = area within 1 m² per km² (full overlay union, not the coverage shortcut)
    sym = shapely.symmetric_difference(shapely.union_all(geoms), area_m).area
    assert sym < area_m.area / 1e6, f"blocks differ from the area by {sym:.2f} m²"
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = a < b
    overlap = shapely.area(shapely.intersection(geoms[a[keep]], geoms[b[keep]])).sum()
    assert overlap < 0.01, f"blocks overlap by {overlap:.4f} m²"
    fp = _metric(city, city.buildings)
    # every building's representative point in exactly one block, households conserved
    pi, _ = shapely.STRtree(geoms).query(shapely.point_on_surface(fp), predicate="intersects")
    per_point = np.bincount(pi, minlength=len(fp))
    assert (per_point == 1).all(), f"{(per_point != 1).sum()} buildings are in no block or in two"
    assert abs(blocks["households"].sum() - city.buildings["households"].sum()) < 1e-6
    # no building cut, except by a mapped street or the river through it (the generator may put one there)
    lines = np.r_[_metric(city, city.roads), _metric(city, city.barriers)]
    crossed = np.zeros(len(fp), bool)
    crossed[np.unique(shapely.STRtree(lines).query(fp, predicate="intersects")[0])] = True
    bi, gi = shapely.STRtree(geoms).query(fp, predicate="intersects")
    real = shapely.area(shapely.intersection(fp[bi], geoms[gi])) > 0.01
    per_building = np.bincount(bi[real], minlength=len(fp))
    cut = (per_building != 1) & ~crossed
    assert not cut.any(), f"{cut.sum()} buildings cut by a split, e.g. {fp[np.flatnonzero(cut)[0]].wkt[:120]}"


@pytest.mark.parametrize(("n", "seed", "footprints", "per_cell", "overlap", "limit"), CITIES)
def test_blocks_tile_generated_cities(n, seed, footprints, per_cell, overlap, limit):
    city = synth_city(n, seed, footprints=footprints, per_cell=per_cell, overlap_share=overlap)
    blocks = build_blocks(city.area, city.roads, city.barriers, city.buildings, metric_crs=city.metric_crs,
                          max_block_households=limit)
    assert blocks["split"].sum() > 20, "the limit must force splits, or the test guards nothing"
    assert blocks.attrs["uncut_faces"] == 0
    _check_invariants(city, blocks)


def _degenerate_voronoi_case():  # noqa: ANN202
    """Rotated buildings whose Voronoi diagram has a self-intersecting cell (a GEOS failure before)."""
    rng = np.random.default_rng(291)
    x0, y0 = 400000 + rng.uniform(0, 1e4), 3390000 + rng.uniform(0, 1e4)
    w_ = rng.uniform(60, 250)
    piece = shapely.box(x0, y0, x0 + w_, y0 + w_ * rng.uniform(0.5, 1.5))
    k = int(rng.integers(5, 60))
    cx, cy = rng.uniform(x0 + 8, x0 + w_ - 8, k), rng.uniform(y0 + 8, y0 + w_ * 0.5 - 8, k)
    w, h = rng.uniform(3, 20, k), rng.uniform(3, 20, k)
    boxes = shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    turned = np.array([shapely.affinity.rotate(g, a) for g, a in zip(boxes, rng.uniform(0, 90, k))], dtype=object)
    return piece, turned[shapely.within(turned, piece)]


def test_territories_survive_a_degenerate_voronoi_cell():
    piece, buildings = _degenerate_voronoi_case()
    lines = territory_lines(piece, buildings)
    assert len(lines) > 5
    # the lines part the clusters: none runs through a building's inside
    inner = shapely.buffer(buildings, -0.01)
    assert not shapely.intersects(shapely.union_all(lines), inner[~shapely.is_empty(inner)]).any()
    # and they split the piece into several territories
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(shapely.union_all(
        [shapely.boundary(piece), *lines], grid_size=0.0001))))
    assert len(faces) > 5


def test_a_face_that_fails_stays_whole_and_the_rest_is_split(monkeypatch):
    city = synth_city(60, 2, footprints="mixed")

    def fails(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
        raise GEOSException("TopologyException: unable to assign free hole to a shell")

    monkeypatch.setattr(block_cuts, "territory_lines", fails)
    blocks = build_blocks(city.area, city.roads, city.barriers, city.buildings, metric_crs=city.metric_crs,
                          max_block_households=15)
    assert blocks.attrs["uncut_faces"] > 0
    assert blocks["split"].sum() > 20  # the straight cuts elsewhere still happened
    _check_invariants(city, blocks)


def test_a_geos_error_reaches_the_user_as_an_input_error_naming_the_area(monkeypatch):
    city = synth_city(30, 1)

    def fails(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
        raise GEOSException("TopologyException: unable to assign free hole to a shell at 1 2")

    monkeypatch.setattr(shapely, "polygonize", fails)
    with pytest.raises(InputError) as err:
        build_blocks(city.area, city.roads, city.barriers, city.buildings, metric_crs=city.metric_crs,
                     area_name="510104 锦江区")
    text = str(err.value)
    assert "510104 锦江区" in text and "区块构建失败" in text and "Fix Geometries" in text
    with pytest.raises(InputError, match=r"area \(10\d\.\d{5}, 30\.\d{5}\)"):
        build_blocks(city.area, city.roads, city.barriers, city.buildings, metric_crs=city.metric_crs)
