"""GCJ-02 / BD-09 conversions: round trips, the China boundary, and the metric CRS choice."""
import numpy as np
import pytest
import shapely

from gis import crs


def _metres(lon1, lat1, lon2, lat2):
    # Equirectangular distance: plenty for sub-metre differences.
    k = np.pi / 180 * 6371000.0
    return np.hypot((lon2 - lon1) * k * np.cos(np.radians(lat1)), (lat2 - lat1) * k)


@pytest.fixture(scope="module")
def china_points():
    rng = np.random.default_rng(7)
    return rng.uniform(73.7, 134.7, 200_000), rng.uniform(18.2, 53.5, 200_000)


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


def test_points_outside_china_are_untouched():
    lon = np.array([-76.6, 139.7, 2.35, 100.5])  # Baltimore, Tokyo, Paris, Bangkok
    lat = np.array([39.3, 35.7, 48.85, 13.75])
    for fn in (crs.wgs84_to_gcj02, crs.gcj02_to_wgs84):
        x, y = fn(lon, lat)
        np.testing.assert_array_equal(x[:3], lon[:3])
        np.testing.assert_array_equal(y[:3], lat[:3])


def test_geometry_conversion_moves_every_vertex():
    poly = shapely.box(104.05, 30.65, 104.06, 30.66)
    back = crs.to_wgs84_geometry(crs.from_wgs84_geometry(poly, "gcj02"), "gcj02")
    assert shapely.hausdorff_distance(poly, back) < 1e-7  # degrees: about 1 cm


def test_local_metric_crs_is_the_utm_zone():
    assert crs.local_metric_crs(104.07, 30.67).to_epsg() == 32648  # Chengdu: UTM 48N
    assert crs.local_metric_crs(118.8, 32.05).to_epsg() == 32650  # Nanjing: UTM 50N
    assert crs.local_metric_crs(-76.6, 39.3).to_epsg() == 32618  # Baltimore: UTM 18N


def test_unknown_crs_name_is_a_clear_error():
    from gis.errors import InputError

    with pytest.raises(InputError, match="unknown coordinate system"):
        crs.normalize_crs_name("mars-grid-7")
    assert crs.normalize_crs_name("GCJ-02") == "gcj02"
    assert crs.normalize_crs_name("EPSG:2248") == "EPSG:2248"
