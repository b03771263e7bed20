"""The OSM reader against independent counts of the files, clipped extracts and broken inputs."""
from __future__ import annotations

import bz2
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import osmium
import pytest
import shapely
from gridpatrol.gis import osm
from gridpatrol.gis.crs import to_wgs84_geometry
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.vector import read_vector

from tests.conftest import data_path
from tests.synth_rural import village_areas_osm


def _xml_census(path):
    """Count street ways, closed building ways and barrier ways with ElementTree (not pyosmium)."""
    counts = Counter()
    highway_values = Counter()
    for _ev, el in ET.iterparse(path):
        if el.tag == "way":
            tags = {t.get("k"): t.get("v") for t in el.findall("tag")}
            refs = [n.get("ref") for n in el.findall("nd")]
            if "highway" in tags:
                highway_values[tags["highway"]] += 1
                counts["highway_ways"] += 1
                if tags["highway"] not in osm.NOT_STREETS and tags.get("area") != "yes":
                    counts["street_ways"] += 1
            if (tags.get("building", "no") != "no" and tags.get("building:part", "no") == "no"
                    and len(refs) >= 4 and refs[0] == refs[-1]):
                counts["building_ways"] += 1
            ww, rw, br = tags.get("waterway"), tags.get("railway"), tags.get("barrier")
            if (ww in osm.WATERWAY_LINES and tags.get("tunnel") not in ("yes", "culvert")) or (
                rw in osm.RAILWAYS and tags.get("tunnel") != "yes") or br in osm.WALLS:
                counts["barrier_lines"] += 1
            el.clear()
        elif el.tag == "relation":
            tags = {t.get("k"): t.get("v") for t in el.findall("tag")}
            if tags.get("type") == "multipolygon" and tags.get("building", "no") != "no":
                counts["building_relations"] += 1
            el.clear()
    return counts, highway_values


def _way_lengths_m(path, way_ids: set[int]) -> dict[int, float]:
    """Geodesic length (WGS-84, metres) of each way in ``way_ids`` whose nodes are all in the file."""
    import pyproj

    geod = pyproj.Geod(ellps="WGS84")
    nodes: dict[str, tuple[float, float]] = {}
    out: dict[int, float] = {}
    for _ev, el in ET.iterparse(path):
        if el.tag == "node":
            nodes[el.get("id")] = (float(el.get("lon")), float(el.get("lat")))
        elif el.tag == "way":
            wid = int(el.get("id"))
            refs = [n.get("ref") for n in el.findall("nd")]
            if wid in way_ids and all(r in nodes for r in refs):
                lon, lat = zip(*(nodes[r] for r in refs))
                out[wid] = geod.line_length(lon, lat)
            el.clear()
    return out


def test_chengdu_counts_match_an_independent_census():
    path = data_path("chengdu", "chengdu.osm")
    census, values = _xml_census(path)
    assert census["highway_ways"] == 2278  # as documented with the data
    data = osm.read_osm(path)
    assert data.counts["street_ways"] == census["street_ways"]
    # every building outline is either a building or merged into its duplicate (parts are neither)
    assert (data.counts["buildings"] + data.counts["duplicate_buildings_merged"]
            == census["building_ways"] + census["building_relations"])
    lines = data.barriers[data.barriers["kind"] != "water"]
    assert len(lines) == census["barrier_lines"]
    # Each street segment starts and ends at a real OSM node and has a positive length.
    assert (data.roads["length_m"] > 0).all()
    assert data.roads.groupby("osm_id")["seq"].nunique().sum() == len(data.roads)
    # Segments of a way add up to the way's geodesic length computed here from the file's nodes
    # (no piece lost or doubled), for every way whose nodes are all in the extract:
    total_by_way = data.roads.groupby("osm_id")["length_m"].sum()
    want = _way_lengths_m(path, set(total_by_way.index))
    assert len(want) > 0.9 * len(total_by_way)
    got = total_by_way.reindex(list(want)).to_numpy()
    ref = np.array(list(want.values()))
    # UTM's scale factor in Chengdu changes lengths by well under 0.1 %
    np.testing.assert_allclose(got, ref, rtol=1e-3)
    # Chinese names arrive intact.
    assert data.roads["name_zh"].dropna().str.contains("路|街|巷").mean() > 0.5


def test_segments_split_at_shared_nodes_only():
    data = osm.read_osm(data_path("nanjing", "xuanwu.osm"))
    r = data.roads
    ends = Counter(list(r["u"]) + list(r["v"]))
    # Every interior vertex of a segment is used by no other segment's end.
    interior = set()
    for g in r.geometry:
        interior.update(g.coords[1:-1])
    end_points = {c for g in r.geometry for c in (g.coords[0], g.coords[-1])}
    assert not (interior & end_points) or len(interior & end_points) < 0.01 * len(end_points)
    assert len(ends) > 0


def test_oneway_minus_one_is_reversed(tmp_path):
    src = tmp_path / "ow.osm"
    src.write_text(
        """<?xml version='1.0' encoding='UTF-8'?><osm version="0.6">
<bounds minlat="30.0" minlon="104.0" maxlat="30.01" maxlon="104.01"/>
<node id="1" lat="30.001" lon="104.001"/><node id="2" lat="30.002" lon="104.002"/>
<node id="3" lat="30.003" lon="104.003"/>
<way id="10"><nd ref="1"/><nd ref="2"/><tag k="highway" v="residential"/><tag k="oneway" v="-1"/><tag k="name" v="反向路"/></way>
<way id="11"><nd ref="2"/><nd ref="3"/><tag k="highway" v="residential"/><tag k="junction" v="roundabout"/></way>
</osm>""", encoding="utf-8")
    r = osm.read_osm(src).roads.set_index("osm_id")
    assert bool(r.loc[10, "oneway"]) and (r.loc[10, "u"], r.loc[10, "v"]) == (2, 1)
    assert r.loc[10].geometry.coords[0] == (104.002, 30.002)
    assert bool(r.loc[11, "oneway"])
    assert r.loc[10, "name_zh"] == "反向路"


def _clip(src, dst, bbox):
    """A 'simple' clip as extract tools make it: nodes outside dropped, ways keep all refs."""
    minx, miny, maxx, maxy = bbox
    with osmium.SimpleWriter(str(dst)) as w:
        for o in osmium.FileProcessor(str(src)):
            if o.is_node():
                if minx <= o.location.lon <= maxx and miny <= o.location.lat <= maxy:
                    w.add_node(o)
            else:
                w.add(o) if hasattr(w, "add") else (w.add_way(o) if o.is_way() else w.add_relation(o))


def test_clipped_extract_imports_what_is_complete(tmp_path):
    src = data_path("chengdu", "chengdu.osm")
    dst = tmp_path / "clipped.osm.pbf"
    _clip(src, dst, (104.06, 30.66, 104.09, 30.69))
    data = osm.read_osm(dst)
    assert len(data.dropped["ways_cut_by_extract_edge"]) > 50
    assert len(data.roads) > 500
    box = shapely.box(104.06, 30.66, 104.09, 30.69).buffer(1e-9)
    assert shapely.within(data.roads.geometry.values, box).all()
    assert shapely.within(data.buildings.geometry.values, box).all()


def test_bz2_reads_like_plain_xml(tmp_path):
    src = data_path("nanjing", "xuanwu.osm")
    dst = tmp_path / "xuanwu.osm.bz2"
    dst.write_bytes(bz2.compress(src.read_bytes()))
    assert osm.read_osm(dst).counts == osm.read_osm(src).counts


def test_boundary_clip_and_miss():
    src = data_path("chengdu", "chengdu.osm")
    jinjiang = read_vector(data_path("chengdu", "510104.geojson"), crs="gcj02").geometry.union_all()
    data = osm.read_osm(src, boundary=jinjiang)
    assert 0 < len(data.roads) < 5070
    assert shapely.within(data.roads.geometry.values, jinjiang.buffer(1e-7)).all()
    nanjing = read_vector(data_path("nanjing", "320102.geojson"), crs="gcj02").geometry.union_all()
    with pytest.raises(InputError, match="does not intersect"):
        osm.read_osm(src, boundary=nanjing)


@pytest.mark.parametrize("name,content,message", [
    ("empty.osm", b"", "is empty"),
    ("page.osm", b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "HTML page"),
    ("junk.osm.pbf", b"\x00\x01garbage" * 100, "cannot read OSM data"),
    ("notes.txt", b"hello", "unknown OSM file type"),
])
def test_broken_files_give_one_clear_error(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        osm.read_osm(p)
    assert name in str(err.value) and "\n" not in str(err.value)


def test_truncated_pbf(tmp_path):
    src = data_path("baltimore", "baltimore.osm.pbf").read_bytes()
    p = tmp_path / "cut.osm.pbf"
    p.write_bytes(src[: len(src) // 2])
    with pytest.raises(InputError, match="cut.osm.pbf"):
        osm.read_osm(p)


def test_gcj02_districts_land_on_the_osm_admin_ways():
    """After GCJ-02 → WGS-84 the cnmaps boundaries lie within metres of OSM's admin ways."""
    data = osm.read_osm(data_path("chengdu", "chengdu.osm"))
    lines = data.admin_lines.to_crs(data.metric_crs)
    assert len(lines) >= 6
    raw_d, conv_d = [], []
    for code in ("510104", "510105", "510106", "510107", "510108"):
        raw = read_vector(data_path("chengdu", f"{code}.geojson"), crs="wgs84")
        conv = raw.copy()
        conv["geometry"] = to_wgs84_geometry(raw.geometry.values, "gcj02")
        for frame, out in ((raw, raw_d), (conv, conv_d)):
            ring = frame.to_crs(data.metric_crs).boundary.union_all()
            # Sample the OSM admin ways every 20 m near this district's outline.
            for line in lines.geometry:
                pts = [line.interpolate(d) for d in np.arange(0, line.length, 20.0)]
                d = shapely.distance(ring, pts)
                out.extend(d[d < 1000])
    assert np.median(raw_d) > 100  # raw GCJ-02: far off
    assert np.median(conv_d) < 30  # converted: on the OSM ways


def test_surveillance_nodes_become_cameras(tmp_path):
    src = tmp_path / "cams.osm"
    src.write_text(
        """<?xml version='1.0' encoding='UTF-8'?><osm version="0.6">
<bounds minlat="30.0" minlon="104.0" maxlat="30.01" maxlon="104.01"/>
<node id="5" lat="30.005" lon="104.005"><tag k="man_made" v="surveillance"/>
 <tag k="surveillance:type" v="camera"/><tag k="camera:type" v="dome"/><tag k="height" v="6 m"/>
 <tag k="name" v="春熙路口球机"/></node>
<node id="6" lat="30.006" lon="104.006"><tag k="man_made" v="surveillance"/>
 <tag k="camera:direction" v="NE"/><tag k="camera:type" v="fixed"/></node>
<node id="7" lat="30.007" lon="104.007"><tag k="amenity" v="bench"/></node>
</osm>""", encoding="utf-8")
    cams = osm.read_osm(src).cameras.set_index("osm_id")
    assert sorted(cams.index) == [5, 6]
    assert cams.loc[5, "camera_type"] == "dome" and cams.loc[5, "fov_deg"] == 360.0
    assert cams.loc[5, "height_m"] == 6.0 and cams.loc[5, "name"] == "春熙路口球机"
    assert cams.loc[6, "azimuth_deg"] == 45.0 and cams.loc[6, "code"] == "osm:6"


def test_villages_mapped_as_areas_are_kept_for_rural_names(tmp_path):
    """place=village/hamlet polygons and named landuse=residential are kept (place_areas, #15);
    unnamed ones and other landuse are not."""
    src = village_areas_osm(tmp_path / "villages.osm")
    pa = osm.read_osm(src).place_areas.set_index("osm_id")
    assert sorted(pa.index) == [1, 2]
    assert pa.loc[1, "name"] == "王家村" and pa.loc[1, "place"] == "village"  # name:zh first
    assert pa.loc[2, "name"] == "李家湾" and pa.loc[2, "place"] == "landuse=residential"
    assert pa.loc[1, "geometry"].geom_type == "MultiPolygon" and pa.loc[1, "osm_type"] == "way"
