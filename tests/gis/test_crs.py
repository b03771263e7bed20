"""GCJ-02 / BD-09 conversions: round trips, the China boundary, and the metric CRS choice."""
import numpy as np
import pytest
import shapely
from gridpatrol.gis import crs


def _metres(lon1, lat1, lon2, lat2):
    # Equirectangular distance: plenty for sub-metre differences.
    k = np.pi / 180 * 6371000.0
    return np.hypot((lon2 - lon1) * k * np.cos(np.radians(lat1)), (lat2 - lat1) * k)


@pytest.fixture(scope="module")
def china_points():
    """Random points in mainland China at least 2 km (0.02°) inside its edge: near the edge a GCJ-02
    point cannot tell whether it was shifted in or left as it was outside."""
    from gridpatrol.gis.china_outline import MAINLAND_CHINA

    inner = shapely.buffer(shapely.MultiPolygon([shapely.Polygon(r) for r in MAINLAND_CHINA]), -0.02)
    rng = np.random.default_rng(7)
    lon, lat = rng.uniform(73.7, 134.7, 400_000), rng.uniform(18.2, 53.5, 400_000)
    keep = shapely.contains_xy(inner, lon, lat)
    assert keep.sum() > 100_000
    return lon[keep], lat[keep]


def test_gcj02_round_trip_under_half_a_metre(china_points):
    lon, lat = china_points
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    shift = _metres(lon, lat, glon, glat)
    # The obfuscation really moves points by hundreds of metres…
    assert np.median(shift) > 100
    wlon, wlat = crs.gcj02_to_wgs84(glon, glat)
    # …and the iterative inverse undoes it to well under the 0.5 m the planners need.
    assert _metres(lon, lat, wlon, wlat).max() < 0.5


def test_bd09_round_trip(china_points):
    lon, lat = china_points
    blon, blat = crs.wgs84_to_bd09(lon, lat)
    wlon, wlat = crs.bd09_to_wgs84(blon, blat)
    assert _metres(lon, lat, wlon, wlat).max() < 0.5
    # BD-09 adds roughly another 0.0065°/0.006° on top of GCJ-02.
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    assert np.median(_metres(glon, glat, blon, blat)) > 500


# Cities around the border of mainland China (WGS-84 city centres). GCJ-02 applies in the mainland
# only: Hong Kong and Macau use WGS-84 maps, as do Taiwan and the neighbours.
UNTOUCHED = {"Seoul": (126.9780, 37.5665), "Taipei": (121.5654, 25.0330), "Hanoi": (105.8342, 21.0278),
             "Ulaanbaatar": (106.9057, 47.8864), "Almaty": (76.8512, 43.2220), "Bangkok": (100.5018, 13.7563),
             "Vladivostok": (131.8855, 43.1155), "Hong Kong": (114.1694, 22.3193), "Macau": (113.5439, 22.1987),
             "Baltimore": (-76.6, 39.3), "Tokyo": (139.7, 35.7), "Paris": (2.35, 48.85)}
SHIFTED = {"Kunming": (102.8329, 24.8801), "Urumqi": (87.6168, 43.8256), "Harbin": (126.5349, 45.8038),
           "Lhasa": (91.1409, 29.6456), "Xiamen": (118.0894, 24.4798), "Shenzhen": (114.0579, 22.5431),
           "Zhuhai": (113.5767, 22.2707), "Dandong": (124.3830, 40.1290)}


@pytest.mark.parametrize("city", sorted(UNTOUCHED))
def test_points_outside_mainland_china_are_untouched(city):
    lon, lat = (np.array([v]) for v in UNTOUCHED[city])
    assert not crs.in_mainland_china(lon, lat)[0]
    for fn in (crs.wgs84_to_gcj02, crs.gcj02_to_wgs84, crs.wgs84_to_bd09):
        x, y = fn(lon, lat)
        if fn is crs.wgs84_to_bd09:  # BD-09 is GCJ-02 plus Baidu's own offset, applied everywhere
            x, y = crs.bd09_to_gcj02(x, y)
            assert _metres(lon, lat, x, y)[0] < 0.01, city
            continue
        np.testing.assert_array_equal((x, y), (lon, lat), err_msg=city)


@pytest.mark.parametrize("city", sorted(SHIFTED))
def test_points_in_mainland_china_near_its_border_are_shifted(city):
    lon, lat = (np.array([v]) for v in SHIFTED[city])
    assert crs.in_mainland_china(lon, lat)[0]
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    assert 100 < _metres(lon, lat, glon, glat)[0] < 800, city
    wlon, wlat = crs.gcj02_to_wgs84(glon, glat)
    assert _metres(lon, lat, wlon, wlat)[0] < 0.5, city


def test_arrays_mixing_inside_and_outside_points_keep_their_shape():
    lon = np.array([[UNTOUCHED["Seoul"][0], SHIFTED["Harbin"][0]], [np.nan, 200.0]])
    lat = np.array([[UNTOUCHED["Seoul"][1], SHIFTED["Harbin"][1]], [30.0, 30.0]])
    inside = crs.in_mainland_china(lon, lat)
    assert inside.shape == (2, 2) and inside.tolist() == [[False, True], [False, False]]
    x, _ = crs.wgs84_to_gcj02(lon, lat)
    assert x[0, 0] == lon[0, 0] and x[0, 1] != lon[0, 1] and x[1, 1] == 200.0


def test_geometry_conversion_moves_every_vertex():
    poly = shapely.box(104.05, 30.65, 104.06, 30.66)
    back = crs.to_wgs84_geometry(crs.from_wgs84_geometry(poly, "gcj02"), "gcj02")
    assert shapely.hausdorff_distance(poly, back) < 1e-7  # degrees: about 1 cm


def test_local_metric_crs_is_the_utm_zone():
    assert crs.local_metric_crs(104.07, 30.67).to_epsg() == 32648  # Chengdu: UTM 48N
    assert crs.local_metric_crs(118.8, 32.05).to_epsg() == 32650  # Nanjing: UTM 50N
    assert crs.local_metric_crs(-76.6, 39.3).to_epsg() == 32618  # Baltimore: UTM 18N


def test_unknown_crs_name_is_a_clear_error():
    from gridpatrol.gis.errors import InputError

    with pytest.raises(InputError, match="unknown coordinate system"):
        crs.normalize_crs_name("mars-grid-7")
    assert crs.normalize_crs_name("GCJ-02") == "gcj02"
    assert crs.normalize_crs_name("EPSG:2248") == "EPSG:2248"
    # PROJ knows these but cannot convert them to WGS-84: a clear error, not pyproj's "Input is not a
    # transformation" from deep inside an import (found by tests/api/test_fuzz_parsers.py)
    for code in ("EPSG:2218", "EPSG:22300", "EPSG:2299"):
        with pytest.raises(InputError, match="no known conversion to WGS-84"):
            crs.normalize_crs_name(code)


# What `--crs` / `crs=` accept (docs/crs.md, "Names of the coordinate systems"): case, hyphens and
# underscores do not matter; EPSG:4326 is WGS-84; Baidu's and the common nicknames are accepted.
SPELLINGS = {
    "wgs84": "wgs84", "WGS84": "wgs84", "WGS-84": "wgs84", "wgs_84": "wgs84", " wgs84 ": "wgs84",
    "EPSG:4326": "wgs84", "epsg:4326": "wgs84", "4326": "wgs84",
    "gcj02": "gcj02", "GCJ-02": "gcj02", "gcj_02": "gcj02", "gcj": "gcj02", "Mars": "gcj02",
    "bd09": "bd09", "BD-09": "bd09", "bd09ll": "bd09", "BD09LL": "bd09", "baidu": "bd09",
}


@pytest.mark.parametrize("name", sorted(SPELLINGS))
def test_every_documented_spelling_of_the_chinese_systems_is_understood(name):
    assert crs.normalize_crs_name(name) == SPELLINGS[name]


def test_other_crs_names_pass_through_and_none_stays_none():
    assert crs.normalize_crs_name(None) is None
    assert crs.normalize_crs_name("EPSG:4490") == "EPSG:4490"  # CGCS2000: pyproj's business, unchanged


@pytest.mark.parametrize(("lon", "lat", "epsg"), [
    (101.78, 36.62, 32647),  # Xining: less than a degree west of the 102° E zone edge
    (102.0, 30.0, 32648),    # on the edge: the zone to the east
    (-0.1, 51.5, 32630),     # London, just west of Greenwich
    (151.2, -33.87, 32756),  # Sydney: southern hemisphere
    (32.58, 0.35, 32636),    # Kampala, a third of a degree north of the equator
    (-78.5, -0.22, 32717),   # Quito, just south of it
    (9.0, 0.0, 32632),       # on the equator: the northern zone, as UTM has it
    (-179.9, 10.0, 32601),   # the first zone
    (179.9, 10.0, 32660),    # the last
])
def test_the_metric_crs_is_the_utm_zone_and_hemisphere_of_the_point(lon, lat, epsg):
    assert crs.local_metric_crs(lon, lat).to_epsg() == epsg
