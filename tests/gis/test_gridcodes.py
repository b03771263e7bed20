"""Grid codes: default 15-digit layout, west→east/north→south numbering, custom formats, validation."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.gridcodes import (
    DEFAULT_CODE_FORMAT,
    CodeFormat,
    assign_codes,
    split_admin_code,
    validate_codes,
    west_east_north_south_order,
)

from tests.conftest import data_path


def _district(code: str = "320102") -> gpd.GeoDataFrame:
    from gridpatrol.gis.vector import read_vector

    return read_vector(data_path("nanjing", f"{code}.geojson"), crs="gcj02")


def _square_grids(rows: int, cols: int, *, x0: float = 118.80, y0: float = 32.07, d: float = 0.004,
                  parent: str = "320102") -> gpd.GeoDataFrame:
    """rows × cols squares, labelled (row from north, col from west) for checking the order."""
    recs, geoms = [], []
    for r in range(rows):
        for c in range(cols):
            top = y0 - r * d
            geoms.append(shapely.box(x0 + c * d, top - d, x0 + (c + 1) * d, top))
            recs.append({"row": r, "col": c, "parent_code": parent})
    # Shuffle so that input order cannot produce the expected numbering by accident.
    gdf = gpd.GeoDataFrame(recs, geometry=geoms, crs="EPSG:4326")
    return gdf.sample(frac=1.0, random_state=3)


def test_default_code_is_15_digits_county_street_community_sequence():
    fmt = CodeFormat()
    assert fmt.template == DEFAULT_CODE_FORMAT
    assert fmt.format("510104", 7) == "510104000000007"
    assert fmt.format("510104021", 12) == "510104021000012"
    assert fmt.format("510104021003", 1) == "510104021003001"
    assert fmt.parse("510104021003001") == {"county": "510104", "street": "021",
                                            "community": "003", "seq": 1}
    assert fmt.parent_of("510104021000012") == "510104021"
    assert fmt.parent_of("510104000000012") == "510104"


def test_sequence_runs_west_to_east_then_north_to_south():
    grids = _square_grids(3, 4)
    codes = assign_codes(grids)
    seq = codes.str[-3:].astype(int)
    expected = grids["row"] * 4 + grids["col"] + 1
    assert (seq == expected).all(), pd.DataFrame({"seq": seq, "expected": expected})
    assert codes.str[:12].eq("320102000000").all()


def test_sequence_is_per_parent_and_rows_tolerate_ragged_edges():
    a = _square_grids(2, 2, parent="320102001")
    b = _square_grids(2, 3, x0=118.9, parent="320102002")
    # Shift one grid of the first row 30 % of a cell south: still in the first row band.
    g = pd.concat([a, b], ignore_index=True)
    first = g.index[(g["parent_code"] == "320102001") & (g["row"] == 0) & (g["col"] == 1)][0]
    g.loc[first, "geometry"] = shapely.affinity.translate(g.loc[first, "geometry"], yoff=-0.0012)
    codes = assign_codes(g)
    for parent, cols in (("320102001", 2), ("320102002", 3)):
        sub = g["parent_code"] == parent
        seq = codes[sub].str[-3:].astype(int)
        assert sorted(seq) == list(range(1, len(seq) + 1))
        assert (seq == g.loc[sub, "row"] * cols + g.loc[sub, "col"] + 1).all()
        assert codes[sub].str.startswith(parent).all()


def test_order_function_on_real_district_is_a_permutation_sorted_by_rows():
    district = _district()
    metric = district.to_crs(district.estimate_utm_crs())
    rng = np.random.default_rng(0)
    minx, miny, maxx, maxy = metric.total_bounds
    xy = np.column_stack([rng.uniform(minx, maxx, 500), rng.uniform(miny, maxy, 500)])
    band = 400.0
    order = west_east_north_south_order(xy, band)
    assert sorted(order) == list(range(500))
    rows = np.floor((xy[:, 1].max() - xy[order, 1]) / band)
    assert (np.diff(rows) >= 0).all()
    same_row = np.diff(rows) == 0
    assert (np.diff(xy[order, 0])[same_row] >= 0).all()


def test_custom_format_round_trip_and_width_limit():
    fmt = CodeFormat("{county}-{street}{community}-{seq:04d}")
    code = fmt.format("320102", 42)
    assert code == "320102-000000-0042"
    assert fmt.parse(code)["seq"] == 42
    assert fmt.regex.fullmatch("320102-000000-42") is None
    with pytest.raises(InputError, match="does not fit"):
        CodeFormat().format("320102", 1000)
    with pytest.raises(InputError, match="unusable"):
        CodeFormat("{county}{grid}")


@pytest.mark.parametrize("bad", ["51010", "5101041", "abc123", "5101040210031"])
def test_admin_code_must_be_6_9_or_12_digits(bad):
    with pytest.raises(InputError, match="6-, 9- or 12-digit"):
        split_admin_code(bad)


def test_validate_codes_reports_duplicates_malformed_and_wrong_parent():
    codes = pd.Series(["320102000000001", "320102000000001", "32010200000001", "320103000000002",
                       "320102000000003"], index=[10, 11, 12, 13, 14])
    parents = pd.Series(["320102"] * 5, index=codes.index)
    problems = validate_codes(codes, parent_codes=parents)
    kinds = problems.groupby("index")["kind"].apply(set).to_dict()
    assert kinds == {10: {"duplicate_code"}, 11: {"duplicate_code"}, 12: {"malformed_code"},
                     13: {"code_parent_mismatch"}}
    assert validate_codes(assign_codes(_square_grids(2, 2))).empty
