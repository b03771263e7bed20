"""The household estimate (README): footprint × levels / 100 m², ``building:flats`` wins, low-rise and
default levels, land use 150 households/ha; on a hand-made OSM file whose answers are worked out here."""
from __future__ import annotations

from pathlib import Path

import pyproj
import pytest
from gridpatrol.gis.osm import OsmOptions, read_osm

LON0, LAT0 = 104.06, 30.66  # Chengdu
# A local transverse Mercator at the site: shapes are drawn in metres, the file gets lon/lat.
_TO_LONLAT = pyproj.Transformer.from_crs(f"+proj=tmerc +lon_0={LON0} +lat_0={LAT0} +k=1 +ellps=WGS84",
                                         "EPSG:4326", always_xy=True)

# id: (tags, outline in metres east/north of the site, expected households worked out by hand)
SHAPES: dict[int, tuple[dict[str, str], list[tuple[float, float]], float]] = {
    # L-shape: 40 × 12 plus 12 × 20 on top of its west end = 480 + 240 = 720 m²; 10 levels
    # → 720 × 10 / 100 = 72
    1: ({"building": "apartments", "building:levels": "10"},
        [(0, 0), (40, 0), (40, 12), (12, 12), (12, 32), (0, 32)], 72.0),
    # 30 × 15 = 450 m² × 18 levels would be 81, but 36 flats are mapped: 36
    2: ({"building": "residential", "building:levels": "18", "building:flats": "36"},
        [(100, 0), (130, 0), (130, 15), (100, 15)], 36.0),
    # neither levels nor flats: a 6-storey walk-up; triangle of base 30 and height 20 = 300 m²
    # → 300 × 6 / 100 = 18
    3: ({"building": "apartments"}, [(200, 0), (230, 0), (215, 20)], 18.0),
    # a house without levels: 2 levels; 10 × 12 = 120 m² → 2.4
    4: ({"building": "house"}, [(300, 0), (310, 0), (310, 12), (300, 12)], 2.4),
    # not a dwelling: a shop of 20 × 20 with 5 levels → 0
    5: ({"building": "commercial", "building:levels": "5"}, [(400, 0), (420, 0), (420, 20), (400, 20)], 0.0),
    # building=yes inside residential land use (id 8) counts as a dwelling: 16 × 25 = 400 m², 3 levels → 12
    6: ({"building": "yes", "building:levels": "3"}, [(10, 210), (26, 210), (26, 235), (10, 235)], 12.0),
    # building=yes outside residential land use: not a dwelling → 0
    7: ({"building": "yes", "building:levels": "3"}, [(500, 0), (516, 0), (516, 25), (500, 25)], 0.0),
}
# Land use with a building in it (8) gets no estimate of its own; land use without one (9):
# 200 m × 150 m = 3 ha × 150 per ha = 450.
LANDUSE = {8: [(0, 200), (100, 200), (100, 300), (0, 300)], 9: [(300, 200), (500, 200), (500, 350), (300, 350)]}
LANDUSE_HH = 450.0


def _write_osm(path: Path, ways: dict[int, tuple[dict[str, str], list[tuple[float, float]]]]) -> Path:
    """An OSM XML file of closed ways (id: tags, outline in metres east/north of the site)."""
    nodes, out, nid = [], [], 0
    for wid, (tags, outline) in ways.items():
        refs = []
        for x, y in outline:
            nid += 1
            lon, lat = _TO_LONLAT.transform(x, y)
            nodes.append(f'  <node id="{nid}" version="1" lat="{lat:.9f}" lon="{lon:.9f}"/>')
            refs.append(nid)
        closed = [*refs, refs[0]] if tags.get("highway") is None else refs
        out.append(f'  <way id="{wid}" version="1">' + "".join(f'<nd ref="{r}"/>' for r in closed)
                   + "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items()) + "</way>")
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6" generator="test">\n'
                    + "\n".join(nodes + out) + "\n</osm>\n", encoding="utf-8")
    return path


def _osm_file(path: Path) -> Path:
    return _write_osm(path, {**{k: (v[0], v[1]) for k, v in SHAPES.items()},
                             **{k: ({"landuse": "residential"}, v) for k, v in LANDUSE.items()}})


def test_households_of_hand_made_buildings_and_land_use(tmp_path):
    data = read_osm(_osm_file(tmp_path / "site.osm"))
    b = data.buildings
    footprint = b[b["estimate_method"] == "footprint"].set_index("osm_id")
    assert sorted(footprint.index) == sorted(SHAPES)
    for wid, (_tags, _outline, want) in SHAPES.items():
        # UTM's scale at the site changes areas by well under 0.2 %; the answer is rounded to 0.1
        assert footprint.loc[wid, "households"] == pytest.approx(want, rel=2e-3, abs=0.05), wid
    assert footprint.loc[1, "footprint_m2"] == pytest.approx(720.0, rel=2e-3)
    assert footprint.loc[2, "households_estimated"] == False  # noqa: E712  (mapped flats)
    assert footprint.loc[1, "households_estimated"] == True  # noqa: E712
    landuse = b[b["estimate_method"] == "landuse"]
    assert landuse["osm_id"].tolist() == [9]
    assert landuse["households"].iloc[0] == pytest.approx(LANDUSE_HH, rel=2e-3)
    assert landuse["footprint_m2"].iloc[0] == pytest.approx(30_000.0, rel=2e-3)
    assert b["households"].sum() == pytest.approx(sum(v[2] for v in SHAPES.values()) + LANDUSE_HH, rel=2e-3)


def _rect(x0: float, y0: float, w: float, h: float) -> list[tuple[float, float]]:
    return [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)]


def test_the_layer_says_which_households_and_levels_were_mapped_and_which_estimated(tmp_path):
    """A planner filters on these: mapped flats are ``osm_tag`` and not estimated, every other
    figure is an estimate; levels say whether they came from ``building:levels``; population is
    households × 2.62 (the census' persons per household); the land-use entry says what it is."""
    data = read_osm(_osm_file(tmp_path / "site.osm"))
    b = data.buildings
    fp = b[b["estimate_method"] == "footprint"].set_index("osm_id")
    assert fp.loc[2, "household_source"] == "osm_tag"
    assert not fp.loc[2, "households_estimated"]
    for wid in (1, 3, 4, 5, 6, 7):
        assert fp.loc[wid, "household_source"] == "estimate", wid
        assert fp.loc[wid, "households_estimated"], wid
    # building:levels tagged on 1, 2, 5, 6, 7; 3 (apartments) and 4 (house) get 6 and 2
    want_levels = {1: 10.0, 2: 18.0, 3: 6.0, 4: 2.0, 5: 5.0, 6: 3.0, 7: 3.0}
    assert fp["levels"].to_dict() == want_levels
    assert {w for w in fp.index if fp.loc[w, "levels_estimated"]} == {3, 4}
    # Without flats the rule holds exactly on the footprint the layer reports (rounded to 0.1).
    for wid in (1, 3, 4, 6):
        assert fp.loc[wid, "households"] == pytest.approx(
            fp.loc[wid, "footprint_m2"] * want_levels[wid] / 100.0, abs=0.051), wid
    assert b["population"].tolist() == pytest.approx((b["households"] * 2.62).tolist())
    lu = b[b["estimate_method"] == "landuse"].iloc[0]
    assert (lu["osm_type"], lu["building"], lu["household_source"]) == ("landuse_way", "landuse=residential", "estimate")
    assert lu["households_estimated"] and lu["levels_estimated"] and lu["levels"] != lu["levels"]  # NaN
    assert set(b.geometry.geom_type) == {"MultiPolygon"}
    total = sum(v[2] for v in SHAPES.values()) + LANDUSE_HH
    assert data.counts["buildings"] == 7 and data.counts["landuse_estimates"] == 1
    assert data.counts["households"] == pytest.approx(total, rel=2e-3)


def test_houses_have_two_levels_and_a_levels_tag_beats_every_default(tmp_path):
    """docs/commands.md: levels from ``building:levels``, else 6 (2 for houses)."""
    ways = {
        # 10 × 10 = 100 m²: a house, detached or semi-detached house without levels has 2 → 2.0
        11: ({"building": "house"}, _rect(0, 0, 10, 10)),
        12: ({"building": "detached"}, _rect(50, 0, 10, 10)),
        13: ({"building": "semidetached_house"}, _rect(100, 0, 10, 10)),
        # a house tagged with 3 levels: 100 × 3 / 100 = 3.0
        14: ({"building": "house", "building:levels": "3"}, _rect(150, 0, 10, 10)),
        # a dormitory (residential, not low-rise) without levels: 6 → 20 × 20 = 400 × 6 / 100 = 24
        15: ({"building": "dormitory"}, _rect(200, 0, 20, 20)),
        # a levels tag that is no number counts as untagged: 6 levels → 400 × 6 / 100 = 24
        16: ({"building": "apartments", "building:levels": "unknown"}, _rect(250, 0, 20, 20)),
        # building=yes inside residential land use without levels: 6 → 400 × 6 / 100 = 24
        17: ({"building": "yes"}, _rect(310, 10, 20, 20)),
        18: ({"landuse": "residential"}, _rect(300, 0, 100, 100)),
    }
    want = {11: (2.0, 2.0), 12: (2.0, 2.0), 13: (2.0, 2.0), 14: (3.0, 3.0), 15: (6.0, 24.0), 16: (6.0, 24.0),
            17: (6.0, 24.0)}
    b = read_osm(_write_osm(tmp_path / "houses.osm", ways)).buildings.set_index("osm_id")
    assert sorted(b.index) == sorted(want)  # the land use holds a building: no estimate of its own
    for wid, (levels, hh) in want.items():
        assert b.loc[wid, "levels"] == levels, wid
        assert b.loc[wid, "households"] == pytest.approx(hh, rel=2e-3, abs=0.05), wid
    assert bool(b.loc[14, "levels_estimated"]) is False and bool(b.loc[16, "levels_estimated"]) is True


def test_every_factor_of_the_estimate_is_an_option(tmp_path):
    """The county's own figures: 50 m² per household, 4 default levels, 200 per ha of land use,
    3 persons per household. Worked out on the same site as above."""
    opts = OsmOptions(m2_per_household=50.0, default_levels=4.0, landuse_households_per_ha=200.0,
                      persons_per_household=3.0)
    b = read_osm(_osm_file(tmp_path / "site.osm"), options=opts).buildings
    fp = b[b["estimate_method"] == "footprint"].set_index("osm_id")
    # 1: 720 × 10 / 50 = 144; 2: 36 flats whatever the factors; 3: 300 × 4 / 50 = 24 (default levels 4);
    # 4: a house keeps its 2 levels: 120 × 2 / 50 = 4.8; 5, 7: not dwellings; 6: 400 × 3 / 50 = 24
    want = {1: 144.0, 2: 36.0, 3: 24.0, 4: 4.8, 5: 0.0, 6: 24.0, 7: 0.0}
    for wid, hh in want.items():
        assert fp.loc[wid, "households"] == pytest.approx(hh, rel=2e-3, abs=0.05), wid
    lu = b[b["estimate_method"] == "landuse"]
    assert lu["households"].iloc[0] == pytest.approx(3 * 200.0, rel=2e-3)  # 3 ha × 200
    assert b["population"].tolist() == pytest.approx((b["households"] * 3.0).tolist())


def test_land_use_households_follow_its_area_exactly(tmp_path):
    """150 households per hectare of the area the layer reports, to 0.1 household, on 30 ha
    (600 m × 500 m → 4,500) where a per-mille error would show."""
    b = read_osm(_write_osm(tmp_path / "estate.osm", {21: ({"landuse": "residential"}, _rect(0, 0, 600, 500))})).buildings
    assert len(b) == 1 and b["estimate_method"].iloc[0] == "landuse"
    assert b["footprint_m2"].iloc[0] == pytest.approx(300_000.0, rel=2e-3)
    assert b["households"].iloc[0] == pytest.approx(4_500.0, rel=2e-3)
    assert b["households"].iloc[0] == pytest.approx(b["footprint_m2"].iloc[0] / 10_000.0 * 150.0, abs=0.051)


def test_an_extract_without_dwellings_has_no_households(tmp_path):
    """A street, a shop and a school, no residential land use: nothing to count, and the count
    says 0 households, not an error."""
    ways = {31: ({"highway": "residential"}, [(0, -20), (300, -20)]),
            32: ({"building": "retail", "building:levels": "2"}, _rect(0, 0, 30, 30)),
            33: ({"building": "school"}, _rect(100, 0, 40, 30)),
            34: ({"landuse": "commercial"}, _rect(0, 0, 200, 50))}
    data = read_osm(_write_osm(tmp_path / "shops.osm", ways))
    assert data.counts["households"] == 0.0
    assert data.counts["buildings"] == 2 and data.counts["landuse_estimates"] == 0
    assert data.buildings["households"].tolist() == [0.0, 0.0]
    only_street = read_osm(_write_osm(tmp_path / "street.osm", {31: ways[31]}))
    assert len(only_street.buildings) == 0
    assert only_street.counts["households"] == 0.0 and only_street.counts["buildings"] == 0


def test_building_yes_counts_only_inside_the_residential_area_not_its_bounding_box(tmp_path):
    """An L-shaped compound: a building=yes in its notch (inside the outline's bounding box, outside
    the outline) is no dwelling; one inside the outline is (20 × 20 × 6 levels / 100 = 24)."""
    ways = {41: ({"landuse": "residential"}, [(0, 0), (200, 0), (200, 80), (80, 80), (80, 200), (0, 200)]),
            42: ({"building": "yes"}, _rect(140, 140, 20, 20)),  # in the notch
            43: ({"building": "yes"}, _rect(20, 20, 20, 20))}
    b = read_osm(_write_osm(tmp_path / "notch.osm", ways)).buildings.set_index("osm_id")
    assert b.loc[42, "households"] == 0.0
    assert b.loc[43, "households"] == pytest.approx(24.0, rel=2e-3)
