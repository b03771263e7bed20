"""Hot spots on real incidents (Baltimore 2018 shootings and homicides), checked by brute force."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.hotspots import hot_spots

from tests.conftest import data_path
from tests.union_find import components


def _incidents(name: str) -> gpd.GeoDataFrame:
    recs = json.loads(data_path("baltimore", name).read_text(encoding="utf-8"))
    df = pd.DataFrame(recs).dropna(subset=["Longitude", "Latitude"])
    when = pd.to_datetime(df["CrimeDate"], unit="ms", utc=True)
    return gpd.GeoDataFrame({"occurred_at": when, "category": df["Description"]},
                            geometry=gpd.points_from_xy(df["Longitude"], df["Latitude"]), crs=4326)


def _brute_force_components(lon: np.ndarray, lat: np.ndarray, radius_m: float) -> list[set[int]]:
    """Single-linkage clusters from geodesic distances between every pair (no index, no projection)."""
    geod = pyproj.Geod(ellps="WGS84")
    n = len(lon)
    ii, jj = np.triu_indices(n, 1)
    _, _, d = geod.inv(lon[ii], lat[ii], lon[jj], lat[jj])
    return components(n, zip(ii[d <= radius_m], jj[d <= radius_m]))


def test_hot_spots_match_brute_force_single_linkage():
    inc = _incidents("crime_2018_shooting.json")
    assert len(inc) > 500
    at = datetime(2019, 1, 1, tzinfo=timezone.utc)
    spots = hot_spots(inc, radius_m=100, min_incidents=3, half_life_days=30, at=at)
    lon, lat = inc.geometry.x.to_numpy(), inc.geometry.y.to_numpy()
    # A projected distance of 100 m sits within millimetres of the geodesic one here; incident pairs
    # that close to the threshold would make the comparison ambiguous, so there must be none.
    expected = [g for g in _brute_force_components(lon, lat, 100) if len(g) >= 3]
    assert len(spots) == len(expected) > 5
    age = (pd.Timestamp(at) - inc["occurred_at"]).dt.total_seconds().to_numpy() / 86400
    want = sorted((len(g), float((0.5 ** (age[list(g)] / 30)).sum())) for g in expected)
    got = sorted(zip(spots["incidents"], spots["importance"]))
    assert [n for n, _ in got] == [n for n, _ in want]
    assert [w for _, w in got] == pytest.approx([w for _, w in want], rel=1e-9)
    # Most important first; every spot lies among its incidents; names are numbered in order.
    assert list(spots["importance"]) == sorted(spots["importance"], reverse=True)
    assert spots["name"].iloc[0].startswith("热点1（") and "incidents" in spots["name_en"].iloc[0]
    assert (spots["radius_m"] < 100 * spots["incidents"]).all()


def test_recency_and_top():
    inc = _incidents("crime_2018_homicide.json")
    at = datetime(2019, 1, 1, tzinfo=timezone.utc)
    flat = hot_spots(inc, radius_m=200, min_incidents=2, half_life_days=None, at=at)
    assert (flat["importance"] == flat["incidents"]).all()
    recent = hot_spots(inc, radius_m=200, min_incidents=2, half_life_days=7, at=at, top=3)
    assert len(recent) == 3 and (recent["importance"] < recent["incidents"]).all()
    # The top spot under a 7-day half-life holds an incident from the year's last weeks.
    assert recent["last_at"].iloc[0] > pd.Timestamp("2018-11-01", tz="UTC")


def test_bad_input():
    inc = _incidents("crime_2018_homicide.json")
    with pytest.raises(InputError, match="EPSG:4326"):
        hot_spots(inc.to_crs(3857))
    with pytest.raises(InputError, match="radius"):
        hot_spots(inc, radius_m=0)
    assert len(hot_spots(inc.iloc[:0])) == 0
