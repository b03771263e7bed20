"""Duplicate footprints merged at OSM import (≥ 90 % overlap), building:part outlines not buildings (issue 15)."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
import shapely.affinity
from gridpatrol.gis import osm
from gridpatrol.gis.footprints import merge_duplicate_footprints

from tests.conftest import data_path

UTM48 = 32648
X0, Y0 = 400_000.0, 3_390_000.0


def _frame(rows):  # noqa: ANN001, ANN202
    """Buildings in UTM 48N from (osm_id, polygon, households, flats tagged, method) rows."""
    return gpd.GeoDataFrame({
        "osm_id": [r[0] for r in rows], "households": [r[2] for r in rows],
        "households_estimated": [not r[3] for r in rows], "levels_estimated": [True] * len(rows),
        "estimate_method": [r[4] for r in rows],
    }, geometry=[r[1] for r in rows], crs=UTM48).to_crs(4326)


def test_exact_and_near_duplicates_merge_and_the_tagged_one_stays():
    a = shapely.box(X0, Y0, X0 + 20, Y0 + 10)
    near = shapely.affinity.rotate(shapely.affinity.translate(a, 0.3, 0.2), 1.0)  # ≈ 95 % shared
    b = shapely.box(X0 + 40, Y0, X0 + 60, Y0 + 10)
    b85 = shapely.affinity.translate(b, 3.0, 0.0)  # 85 % shared: two buildings, not one
    c = shapely.box(X0 + 80, Y0, X0 + 100, Y0 + 10)
    part = shapely.box(X0 + 80, Y0, X0 + 88, Y0 + 10)  # 100 % of the smaller inside the larger
    landuse = shapely.box(X0 - 5, Y0 - 5, X0 + 200, Y0 + 50)  # an area estimate, never merged
    frame = _frame([(1, a, 12.0, False, "footprint"), (2, a, 12.0, False, "footprint"),
                    (3, near, 20.0, True, "footprint"), (4, b, 8.0, False, "footprint"),
                    (5, b85, 8.0, False, "footprint"), (6, c, 9.0, False, "footprint"),
                    (7, part, 4.0, False, "footprint"), (8, landuse, 50.0, False, "landuse")])
    kept, merged = merge_duplicate_footprints(frame, UTM48)
    # 1, 2 and 3 are one building (the one with tagged flats stays with its own households);
    # 6 and 7 too (the larger stays); 4 and 5 overlap by only 85 %
    assert merged == 3
    assert kept["osm_id"].tolist() == [3, 4, 5, 6, 8]
    assert kept.set_index("osm_id").loc[3, "households"] == 20.0
    assert kept["households"].sum() == 20 + 8 + 8 + 9 + 50


def test_threshold_is_the_share_of_the_smaller_footprint():
    a = shapely.box(X0, Y0, X0 + 10, Y0 + 10)
    for shift, same in ((0.9, True), (1.1, False)):  # 91 % and 89 % of the area shared
        frame = _frame([(1, a, 1.0, False, "footprint"),
                        (2, shapely.affinity.translate(a, shift, 0), 1.0, False, "footprint")])
        assert (merge_duplicate_footprints(frame, UTM48)[1] == 1) is same


OSM_WITH_DUPLICATES = """<?xml version='1.0' encoding='UTF-8'?><osm version="0.6">
<bounds minlat="30.0" minlon="104.0" maxlat="30.01" maxlon="104.01"/>
<node id="1" lat="30.0010" lon="104.0010"/><node id="2" lat="30.0010" lon="104.0012"/>
<node id="3" lat="30.0012" lon="104.0012"/><node id="4" lat="30.0012" lon="104.0010"/>
<node id="11" lat="30.0010" lon="104.0010"/><node id="12" lat="30.0010" lon="104.0012"/>
<node id="13" lat="30.0012" lon="104.0012"/><node id="14" lat="30.0012" lon="104.0010"/>
<node id="21" lat="30.0010" lon="104.0010"/><node id="22" lat="30.0010" lon="104.0011"/>
<node id="23" lat="30.0012" lon="104.0011"/><node id="24" lat="30.0012" lon="104.0010"/>
<node id="31" lat="30.0050" lon="104.0050"/><node id="32" lat="30.0050" lon="104.0052"/>
<node id="33" lat="30.0052" lon="104.0052"/><node id="34" lat="30.0052" lon="104.0050"/>
<way id="100"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="4"/><nd ref="1"/>
  <tag k="building" v="apartments"/><tag k="building:levels" v="6"/></way>
<way id="101"><nd ref="11"/><nd ref="12"/><nd ref="13"/><nd ref="14"/><nd ref="11"/>
  <tag k="building" v="apartments"/></way>
<way id="102"><nd ref="21"/><nd ref="22"/><nd ref="23"/><nd ref="24"/><nd ref="21"/>
  <tag k="building:part" v="yes"/><tag k="building" v="yes"/><tag k="building:levels" v="30"/></way>
<way id="103"><nd ref="31"/><nd ref="32"/><nd ref="33"/><nd ref="34"/><nd ref="31"/>
  <tag k="building" v="apartments"/><tag k="building:levels" v="6"/></way>
</osm>"""


def test_osm_import_counts_one_building_per_outline(tmp_path):
    src = tmp_path / "dup.osm"
    src.write_text(OSM_WITH_DUPLICATES, encoding="utf-8")
    data = osm.read_osm(src)
    # way 101 traces way 100 again (merged: the tagged one stays); way 102 is a part, not a building
    assert sorted(data.buildings["osm_id"]) == [100, 103]
    assert data.counts["buildings"] == 2
    assert data.counts["duplicate_buildings_merged"] == 1
    assert data.counts["building_parts_skipped"] == 1
    hh = data.buildings.set_index("osm_id")["households"]
    assert hh.loc[100] == hh.loc[103] > 0  # the same outline and levels: the same estimate, once


def test_real_extracts_hold_duplicates_and_parts_that_are_merged_or_skipped():
    data = osm.read_osm(data_path("nanjing", "xuanwu.osm"))
    assert data.counts["duplicate_buildings_merged"] > 0 and data.counts["building_parts_skipped"] > 0
    fp = data.buildings[data.buildings["estimate_method"] == "footprint"].to_crs(data.metric_crs)
    g = fp.geometry.to_numpy()
    a, b = shapely.STRtree(g).query(g, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    shared = shapely.area(shapely.intersection(g[a], g[b], grid_size=0.001))
    smaller = np.minimum(shapely.area(g[a]), shapely.area(g[b]))
    assert not (shared >= 0.9 * smaller).any(), "no two imported buildings are still one outline twice"
