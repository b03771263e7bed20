"""gis.workload: the --weights text, the weighted sum of measures and the per-grid measures (#15)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.workload import measures_frame, parse_weights, weights_text, workload


def test_weights_text_round_trip_in_any_separator():
    w = parse_weights("street_km = 20， households=1;area_km2:0.5")
    assert w == {"street_km": 20.0, "households": 1.0, "area_km2": 0.5}
    assert weights_text(w) == "households=1,street_km=20,area_km2=0.5"
    assert parse_weights(weights_text(w)) == w and parse_weights({"population": 2}) == {"population": 2.0}
    assert parse_weights("") is None and parse_weights(None) is None


@pytest.mark.parametrize(("text", "words"), [
    ("households", "not measure=weight"), ("lanes=1", "unknown measure 'lanes'"),
    ("households=1,households=2", "given twice"), ("households=x", "not a number"),
    ("households=nan", "finite numbers"), ("households=0,street_km=0", "every weight is 0"),
])
def test_bad_weights_name_the_item(text, words):
    with pytest.raises(InputError, match=words):
        parse_weights(text)


def test_workload_sums_weighted_measures_in_their_units():
    grids = pd.DataFrame({"households": [300.0, 100.0], "population": [786.0, np.nan], "street_m": [500.0, 12_000.0],
                          "area_m2": [2e5, 1.5e6], "buildings": [12, 3]})
    np.testing.assert_allclose(workload(grids, {"households": 1, "street_km": 20}), [310.0, 340.0])
    np.testing.assert_allclose(workload(grids, {"population": 1, "area_km2": 100}), [806.0, 150.0])
    m = measures_frame(grids)
    assert list(m.columns) == ["households", "population", "street_km", "area_km2", "buildings"]
    assert np.isnan(m.loc[1, "population"]) and m.loc[1, "street_km"] == 12.0  # unknown stays unknown
    with pytest.raises(InputError, match="no population per grid"):
        workload(grids.drop(columns=["population"]), {"population": 1})
