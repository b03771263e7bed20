"""Settlements and rural grouping (gis/partition/rural.py, #15) on small hand-made cases."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from gridpatrol.gis.partition.rural import Travel, draw_rural, find_settlements, settlement_labels


def _house(x: float, y: float, w: float = 10.0) -> shapely.Polygon:
    return shapely.box(x, y, x + w, y + w)


def test_gap_is_measured_between_footprints_not_centres() -> None:
    # two 10 m houses whose walls are 95 m apart: one settlement at 100 m; 105 m apart: two
    near = np.array([_house(0, 0), _house(105, 0)])
    far = np.array([_house(0, 0), _house(115, 0)])
    assert len(set(settlement_labels(near, 100).tolist())) == 1
    assert len(set(settlement_labels(far, 100).tolist())) == 2
    # a 400 m row of long farmhouses, 60 m apart wall to wall, centres 120 m apart: one village
    row = np.array([shapely.box(120 * i, 0, 120 * i + 60, 10) for i in range(5)])
    assert len(set(settlement_labels(row, 100).tolist())) == 1
    # chained by single linkage: a—b 90 m, b—c 90 m, a—c 190 m
    chain = np.array([_house(0, 0), _house(100, 0), _house(200, 0)])
    assert len(set(settlement_labels(chain, 100).tolist())) == 1


def test_names_from_place_nodes_nearest_within_the_gap() -> None:
    fps = np.array([_house(0, 0), _house(20, 0), _house(1000, 0), _house(3000, 0)])
    places = gpd.GeoDataFrame({"name": ["张家村北", "张家村", "远处", None, " 李家湾 "]},
                              geometry=[shapely.Point(15, 70), shapely.Point(15, 5), shapely.Point(500, 0),
                                        shapely.Point(1005, 5), shapely.Point(1050, 5)])
    st = find_settlements(fps, np.array([1, 2, 1, 1.0]), 100, places)
    assert len(st) == 3
    assert st.names[0] == "张家村"            # the place node inside, not the one 60 m off
    assert st.names[1] == "李家湾"            # an unnamed node is skipped; the name is trimmed
    assert st.names[2] == "居民点3"           # nothing within the gap: numbered
    assert st.households.tolist() == [3, 1, 1]


def test_without_streets_every_settlement_is_a_grid_and_land_is_packed_under_the_limit() -> None:
    """No street at all: no two settlements can share a grid under a travel limit, and the land
    (ten 1 km² blocks in a row, settlements in the first and last) is split under 3 km²."""
    n = 10
    area = np.full(n, 1_000_000.0)
    xy = np.column_stack([np.arange(n) * 1000.0 + 500, np.full(n, 500.0)])
    pairs = [(i, i + 1) for i in range(n - 1)]
    fps = np.array([_house(100, 100), _house(9100, 100)])
    st = find_settlements(fps, np.array([40.0, 60.0]), 100)
    hh = np.zeros(n)
    hh[0], hh[9] = 40, 60
    travel = Travel(None, "drive", st.hulls, 600)
    labels, grids = draw_rural(area, hh, xy, pairs, np.array([0, 9]), st, travel, max_area_m2=3_000_000,
                               max_travel_s=600, max_households=500, min_households=300)
    assert labels[0] != labels[9]
    assert len(grids) == 4 and all(g.area_m2 <= 3_000_000 for g in grids)
    assert sorted(len(g.settlements) for g in grids) == [0, 0, 1, 1]
    # each grid is a run of touching blocks
    for g in set(labels.tolist()):
        idx = np.flatnonzero(labels == g)
        assert idx.max() - idx.min() + 1 == len(idx)


def test_place_nodes_are_read_from_the_real_extract() -> None:
    """chengdu.osm's named place nodes (two hamlets among them) come out of read_osm with their
    Chinese names; place=suburb (a district's name) and unnamed nodes do not."""
    from gridpatrol.gis.osm import read_osm

    from tests.conftest import data_path

    d = read_osm(data_path("chengdu", "chengdu.osm"))
    p = d.places
    assert {"osm_id", "place", "name"} <= set(p.columns) and len(p) == 36
    hamlets = p[p["place"] == "hamlet"].set_index("osm_id")["name"].to_dict()
    assert hamlets == {3333358471: "云景豪庭", 3333413382: "小二肠烧面"}
    assert "suburb" not in set(p["place"]) and p["name"].notna().all()


def test_names_from_village_areas_before_the_nearest_node() -> None:
    """A settlement inside a village mapped as an area takes its name (point in polygon), even when
    another place node is nearer; a place=* area wins over named residential land holding as many
    buildings; the nearest node names a settlement in no area (#15)."""
    fps = np.array([_house(0, 0), _house(30, 0), _house(60, 0),     # 王家村, its node mapped 40 m off
                    _house(1000, 0), _house(1030, 0),                # in both a village and a residential area
                    _house(3000, 0)])                                # no area: the node names it
    areas = gpd.GeoDataFrame({"name": ["王家村", "幸福小区", "石桥村"],
                              "place": ["village", "landuse=residential", "village"]},
                             geometry=[shapely.box(-50, -50, 120, 60), shapely.box(990, -10, 1050, 20),
                                       shapely.box(900, -100, 1200, 100)])
    places = gpd.GeoDataFrame({"name": ["上坪", "下坪"]},
                              geometry=[shapely.Point(35, 50), shapely.Point(3005, 30)])
    st = find_settlements(fps, np.ones(6), 100, places, areas)
    assert st.names == ["王家村", "石桥村", "下坪"]
    # without areas the nodes alone name them (the first by the nearer node)
    assert find_settlements(fps, np.ones(6), 100, places).names == ["上坪", "居民点2", "下坪"]


def test_generic_names_name_no_settlement() -> None:
    """Residential land named just 住宅区 (as one area of chengdu.osm is) or a place node named "residential" does not
    name the settlement in it: the next source does (a node with a name of its own), else it is numbered (#15)."""
    fps = np.array([_house(0, 0), _house(30, 0), _house(1000, 0), _house(3000, 0)])
    areas = gpd.GeoDataFrame({"name": ["住宅区", "Residential", "锦绣东方"],
                              "place": ["landuse=residential"] * 3},
                             geometry=[shapely.box(-50, -50, 120, 60), shapely.box(990, -10, 1050, 20),
                                       shapely.box(2990, -10, 3050, 20)])
    places = gpd.GeoDataFrame({"name": ["上坪", "residential"]},
                              geometry=[shapely.Point(35, 50), shapely.Point(1005, 30)])
    st = find_settlements(fps, np.ones(4), 100, places, areas)
    assert st.names == ["上坪", "居民点2", "锦绣东方"]
