"""WGS-84 → GCJ-02 against the published formula, transcribed here independently of gis.crs (plain
``math``, one point at a time, as the widespread open implementations write it: wandergis
coordtransform, eviltransform), and against literal reference pairs those implementations print."""
from __future__ import annotations

import math

import numpy as np
import pytest
from gridpatrol.gis import crs

# Krasovsky 1940 ellipsoid, as in every published transcription of the GCJ-02 offset.
A = 6378245.0
EE = 0.00669342162296594323

# Cities across mainland China (WGS-84 lon, lat): west and east of 105° E (the formula's origin),
# north and south of 35° N, from Kashgar to Harbin, Mohe to Sanya.
CITIES = {
    "北京天安门": (116.397428, 39.90923),
    "上海人民广场": (121.4737, 31.2304),
    "成都天府广场": (104.0657, 30.6574),
    "广州": (113.2644, 23.1291),
    "乌鲁木齐": (87.6168, 43.8256),
    "喀什": (75.9897, 39.4704),
    "拉萨": (91.1409, 29.6456),
    "哈尔滨": (126.6425, 45.7566),
    "漠河": (122.5361, 52.9720),
    "三亚": (109.5119, 18.2528),
    "昆明": (102.8329, 24.8801),
    "兰州": (103.8343, 36.0611),
    "西宁": (101.7782, 36.6171),
    "武汉": (114.3054, 30.5931),
    "重庆": (106.5516, 29.5630),
    "兰州以北 105°E": (105.0, 37.5),  # on the meridian where the formula's sqrt(|x|) term vanishes
}


def _transform_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def reference_wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """The published WGS-84 → GCJ-02 formula for one point in mainland China (degrees)."""
    dlat = _transform_lat(lon - 105.0, lat - 35.0)
    dlon = _transform_lon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * math.pi
    magic = math.sin(radlat)
    magic = 1 - EE * magic * magic
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((A * (1 - EE)) / (magic * sqrtmagic) * math.pi)
    dlon = (dlon * 180.0) / (A / sqrtmagic * math.cos(radlat) * math.pi)
    return lon + dlon, lat + dlat


def _mainland_sample() -> list[tuple[float, float]]:
    """The cities, plus 400 points on a 0.5° lattice over mainland China (a spread of x, y for
    every term of the formula; the product's outline only picks which lattice points count)."""
    lon, lat = np.meshgrid(np.arange(74.25, 135.0, 0.5), np.arange(18.25, 53.5, 0.5))
    lon, lat = lon.ravel(), lat.ravel()
    keep = crs.in_mainland_china(lon, lat)
    idx = np.random.default_rng(17).choice(np.flatnonzero(keep), 400, replace=False)
    return list(CITIES.values()) + [(float(lon[i]), float(lat[i])) for i in sorted(idx)]


def test_literal_reference_pairs():
    """coordtransform's README pair (Beijing, 116.404 E 39.915 N), printed by coordtransform,
    eviltransform and their ports alike; and the BD-09 value of the same point."""
    assert reference_wgs84_to_gcj02(116.404, 39.915) == pytest.approx((116.41024449916938, 39.91640428150164), abs=1e-12)
    glon, glat = crs.wgs84_to_gcj02([116.404], [39.915])
    assert (float(glon[0]), float(glat[0])) == pytest.approx((116.41024449916938, 39.91640428150164), abs=1e-9)
    blon, blat = crs.wgs84_to_bd09([116.404], [39.915])
    assert (float(blon[0]), float(blat[0])) == pytest.approx((116.41662724378733, 39.922699552216216), abs=1e-9)


@pytest.mark.parametrize("name", sorted(CITIES))
def test_cities_agree_with_the_published_formula(name):
    lon, lat = CITIES[name]
    got = crs.wgs84_to_gcj02([lon], [lat])
    assert (float(got[0][0]), float(got[1][0])) == pytest.approx(reference_wgs84_to_gcj02(lon, lat), abs=1e-9)
    # The offset itself is a few hundred metres at most: a sanity check of the transcription.
    dlon, dlat = (g - w for g, w in zip(reference_wgs84_to_gcj02(lon, lat), (lon, lat)))
    assert 0 < math.hypot(dlon * 111e3 * math.cos(math.radians(lat)), dlat * 111e3) < 1000


def test_arrays_across_mainland_china_agree_with_the_published_formula():
    pts = _mainland_sample()
    lon = np.array([p[0] for p in pts])
    lat = np.array([p[1] for p in pts])
    got_lon, got_lat = crs.wgs84_to_gcj02(lon, lat)
    want = np.array([reference_wgs84_to_gcj02(x, y) for x, y in pts])
    worst = np.abs(np.column_stack([got_lon, got_lat]) - want).max(axis=0)
    assert (worst <= 1e-9).all(), f"largest difference (lon, lat): {worst} degrees"
