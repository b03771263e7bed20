"""The household estimate (README): footprint × levels / 100 m², ``building:flats`` wins, low-rise and
default levels, land use 150 households/ha; on a hand-made OSM file whose answers are worked out here."""
from __future__ import annotations

from pathlib import Path

import pyproj
import pytest
from gridpatrol.gis.osm import read_osm

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


def _osm_file(path: Path) -> Path:
    nodes, ways, nid = [], [], 0
    for wid, outline in [*((k, v[1]) for k, v in SHAPES.items()), *LANDUSE.items()]:
        refs = []
        for x, y in outline:
            nid += 1
            lon, lat = _TO_LONLAT.transform(x, y)
            nodes.append(f'  <node id="{nid}" version="1" lat="{lat:.9f}" lon="{lon:.9f}"/>')
            refs.append(nid)
        tags = SHAPES[wid][0] if wid in SHAPES else {"landuse": "residential"}
        ways.append(f'  <way id="{wid}" version="1">' + "".join(f'<nd ref="{r}"/>' for r in [*refs, refs[0]])
                    + "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items()) + "</way>")
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6" generator="test">\n'
                    + "\n".join(nodes + ways) + "\n</osm>\n", encoding="utf-8")
    return path


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
