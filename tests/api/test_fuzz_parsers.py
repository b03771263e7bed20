"""Property-based fuzzing of every parser of user input: each returns a valid value or raises our
InputError, never anything else (bbox, datetimes, coordinates, CRS names, GeoJSON geometries,
incident times, CSV text, the lookup's numbers and the map page's click=)."""
from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
import shapely
from gridpatrol.api.geojson import parse_geometry
from gridpatrol.api.ogc import parse_bbox, parse_datetime
from gridpatrol.gis.crs import check_lonlat, normalize_crs_name
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.incidents import EARLIEST_INCIDENT, check_incident_time
from gridpatrol.gis.plausible import implausible, refuse_geocentric
from gridpatrol.layers.csvtext import read_csv
from gridpatrol.layers.incidents import parse_times
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Text made of what the parsers split on and read, plus the digits float() takes but we refuse.
NUMBERISH = st.text(alphabet=st.sampled_from(list("0123456789.,-+eE/:TZ _nainfNAIN") + ["１", "٣", "\u00a0", "…"]),
                    max_size=40)
NUMBER_TEXT = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), NUMBERISH,
                        st.integers(-10**30, 10**30).map(str))


def _ours(fn, *args, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
    """fn's value, or None when it raised InputError with a message; anything else fails the test."""
    try:
        return fn(*args, **kw)
    except InputError as exc:
        assert str(exc).strip()
        return None


@FUZZ
@given(st.one_of(NUMBERISH, st.lists(NUMBER_TEXT, min_size=0, max_size=7).map(",".join), st.text(max_size=60)))
def test_bbox(text):  # noqa: ANN001
    out = _ours(parse_bbox, text)
    if out is not None:
        minx, miny, maxx, maxy = out
        assert all(math.isfinite(v) for v in out)
        assert -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90


DATE_TEXT = st.one_of(
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())).map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.isoformat()), NUMBERISH, st.text(max_size=40))


@FUZZ
@given(st.one_of(DATE_TEXT, st.tuples(DATE_TEXT, DATE_TEXT).map("/".join)))
def test_ogc_datetime(text):  # noqa: ANN001
    out = _ours(parse_datetime, text)
    if out is not None:
        start, end = out
        assert start is None or start.tzinfo is not None
        assert start is None or end is None or start <= end


@FUZZ
@given(st.one_of(st.floats(), st.integers(-10**20, 10**20), NUMBER_TEXT, st.none()),
       st.one_of(st.floats(), st.integers(-10**20, 10**20), NUMBER_TEXT, st.none()))
def test_lonlat(lon, lat):  # noqa: ANN001
    out = _ours(check_lonlat, lon, lat)
    if out is not None:
        assert -180 <= out[0] <= 180 and -90 <= out[1] <= 90


CRS_TEXT = st.one_of(
    st.integers(-5, 10**6).map(lambda n: f"EPSG:{n}"), st.integers(0, 40000).map(str),
    st.sampled_from(["wgs84", "WGS-84", "gcj02", "GCJ_02", "bd09ll", "mars", "baidu", "EPSG:3857", "EPSG:4978",
                     "EPSG:32648", "+proj=longlat", "+proj=utm +zone=48", "urn:ogc:def:crs:EPSG::4326", "CRS84"]),
    st.text(max_size=30))


@FUZZ
@given(CRS_TEXT, st.lists(st.floats(-1e8, 1e8), min_size=2, max_size=2))
def test_crs_names_and_plausibility(name, xy):  # noqa: ANN001
    norm = _ours(normalize_crs_name, name)
    if norm is None:
        return
    try:
        refuse_geocentric(norm)
    except InputError:
        return
    x, y = np.array([xy[0]]), np.array([xy[1]])
    from gridpatrol.layers.cameras import convert_crs

    with np.errstate(all="ignore"):
        try:
            lon, lat = convert_crs(x, y, norm)
        except InputError:
            return
    bad, cause = implausible(x, y, lon, lat, norm)
    assert bad.dtype == bool and len(bad) == 1
    assert (cause is None) == (not bad.any())
    if not bad[0]:
        assert -180 <= lon[0] <= 180 and -85 <= lat[0] <= 85


JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(), st.text(max_size=5))
JSON = st.recursive(JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=4)),
                    max_leaves=40)
POSITION = st.lists(st.floats(-200, 200), min_size=2, max_size=3)
RING = st.lists(POSITION, min_size=0, max_size=6)
GEOMETRY = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["Polygon", "MultiPolygon", "Point", "LineString", "Circle"]),
                           "coordinates": st.one_of(JSON, RING, st.lists(RING, max_size=3),
                                                    st.lists(st.lists(RING, max_size=2), max_size=2))}),
    JSON)


@FUZZ
@given(GEOMETRY)
def test_geojson_geometry(obj):  # noqa: ANN001
    geom = _ours(parse_geometry, obj, "feature 0")
    if geom is not None:
        assert geom.is_valid and not geom.is_empty
        if geom.geom_type in ("Polygon", "MultiPolygon"):
            assert not shapely.has_z(geom)
            minx, _, maxx, _ = geom.bounds
            assert maxx - minx <= 180


@FUZZ
@given(st.lists(st.one_of(DATE_TEXT, NUMBER_TEXT, st.floats().map(str)), min_size=1, max_size=5),
       st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York"]))
def test_incident_times(cells, tz):  # noqa: ANN001
    times, bad = parse_times(pd.DataFrame({"occurred_at": cells}), tz)
    assert len(times) == len(cells) and bad.dtype == bool
    assert str(times.dtype) == "datetime64[ns, UTC]"
    # A cell is either a time or flagged bad (or blank), never silently lost.
    blank = pd.Series([str(c).strip() == "" for c in cells])
    assert (times.notna() | bad.to_numpy() | blank.to_numpy()).all()


@FUZZ
@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(timezone.utc)))
def test_incident_time_window(ts):  # noqa: ANN001
    out = _ours(check_incident_time, ts)
    if out is not None:
        assert EARLIEST_INCIDENT <= out and out.year < 9999


@FUZZ
@given(st.binary(max_size=200), st.sampled_from([None, "utf-8", "gb18030", "big5", "latin-1", "nosuch"]))
def test_csv_text(tmp_path_factory, data, encoding):  # noqa: ANN001
    path = tmp_path_factory.mktemp("csv") / "x.csv"
    path.write_bytes(b"code,name,lon,lat\n" + data)
    df = _ours(read_csv, path, encoding=encoding, known=("code", "name", "lon", "lat"))
    if df is not None:
        assert df.attrs["encoding"]


# ---- over HTTP: the lookup's fast path and route, and the map page's click= ---------------------

@pytest.fixture(scope="module")
def dan(client, tokens):  # noqa: ANN001, ANN201
    """A dispatcher token this process has verified (so the fast path may answer on PostGIS)."""
    assert client.get("/lookup?lon=104.06&lat=30.66", headers=tokens["dan"]).status_code == 200
    return tokens["dan"]


@FUZZ
@given(NUMBER_TEXT)
def test_lookup_fast_path_and_route_agree(client, dan, value):  # noqa: ANN001
    fast = client.get("/lookup", params={"lon": value, "lat": "30.66"}, headers=dan)
    # An extra parameter sends the same click to the documented route (the fast path declines it).
    route = client.get("/lookup", params={"lon": value, "lat": "30.66", "route": "1"}, headers=dan)
    assert fast.status_code == route.status_code, (value, fast.status_code, route.status_code)
    assert fast.status_code in (200, 422), (value, fast.text[:200])
    if fast.status_code == 200:
        assert fast.json()["lon"] == route.json()["lon"]


@pytest.mark.parametrize("digits", ["１０４.０６", "١٠٤.٠٦", "۱۰۴.۰۶", "104.0６"])
def test_lookup_refuses_non_ascii_digits_on_both_paths(client, dan, digits):  # noqa: ANN001
    for extra in ({}, {"route": "1"}):
        r = client.get("/lookup", params={"lon": digits, "lat": "30.66", **extra}, headers=dan)
        assert r.status_code == 422, (digits, extra, r.status_code, r.text[:200])
        assert "lon" in r.json()["detail"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(NUMBERISH, st.text(max_size=30), st.tuples(NUMBER_TEXT, NUMBER_TEXT).map(",".join)))
def test_map_click_parameter(client, dan, click):  # noqa: ANN001
    r = client.get("/maps/incidents", params={"click": click, "days": "1"}, headers=dan)
    assert r.status_code < 500, (click, r.status_code, r.text[:300])
