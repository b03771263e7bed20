"""The real ``gridpatrol`` command on hostile and mistaken input: a wrong --crs, points outside the
county, malformed polygons, impossible dates and numbers, a Big5 CSV. Each exits non-zero with a
message that names the cause and what to do, without a traceback, and changes nothing (both stores)."""
from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from tests.cached_stores import jinjiang_inputs, jinjiang_with_users
from tests.conftest import data_path
from tests.e2e.test_cli_import import run, snapshot
from tests.store_cache import fill_from_cache

CODES = ["51010400001310000001", "51010400001310000002"]
# Two points in 锦江区 (WGS-84) and two in Baltimore.
CHENGDU = [(104.0805, 30.6565), (104.0830, 30.6480)]
BALTIMORE = [(-76.61, 39.29), (-76.62, 39.30)]
SQUARE = [[104.08, 30.65], [104.085, 30.65], [104.085, 30.655], [104.08, 30.65]]


def _cameras_csv(path: Path, points: list[tuple[float, float]]) -> Path:
    rows = [f"{c},camera {i},skynet,{x},{y}" for i, (c, (x, y)) in enumerate(zip(CODES, points))]
    path.write_text("code,name,project,lon,lat\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _incidents_csv(path: Path, points: list[tuple[float, float]], when: str = "2024-05-01T10:00+08:00") -> Path:
    rows = [f"{when},治安,{x},{y}" for x, y in points]
    path.write_text("occurred_at,category,lon,lat\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _polygon_file(path: Path, coords: list, code: str = "510199") -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"code": code},
        "geometry": {"type": "Polygon", "coordinates": [coords]}}]}), encoding="utf-8")
    return path


def _inputs(tmp: Path) -> list[tuple[list[str], list[str]]]:
    """(command line, words its error must contain)."""
    big5 = tmp / "big5.csv"
    big5.write_bytes(("設備編碼,名稱,項目,經度,緯度\n" + f"{CODES[0]},春熙路東口,天網,104.0805,30.6565\n").encode("big5"))
    (tmp / "deep.json").write_text("[" * 1000 + "]" * 1000)
    (tmp / "nan.osm").write_text('<?xml version="1.0"?><osm version="0.6"><node id="1" lat="nan" lon="104.06" '
                                 'version="1"/></osm>')
    gpd.GeoDataFrame({"code": ["510199"]}, geometry=[shapely.Polygon([(x, y, 500.0) for x, y in SQUARE])],
                     crs=4326).to_file(tmp / "3d.gpkg")
    lonlat = _cameras_csv(tmp / "cams.csv", CHENGDU)
    return [
        # Medium 7: a wrong CRS, on every import path.
        (["import-cameras", str(lonlat), "--crs", "EPSG:3857"], ["look like longitude/latitude degrees", "EPSG:3857",
                                                                 "row 1", "row 2", "--crs wgs84"]),
        (["import-cameras", str(lonlat), "--crs", "EPSG:32648"], ["look like longitude/latitude degrees", "EPSG:32648"]),
        (["import-cameras", str(lonlat), "--crs", "EPSG:4978"], ["geocentric"]),
        (["import-incidents", str(_incidents_csv(tmp / "inc.csv", CHENGDU)), "--crs", "EPSG:3857"],
         ["look like longitude/latitude degrees", "row 1"]),
        (["import-areas", str(data_path("chengdu", "510105.geojson")), "--crs", "EPSG:3857"],
         ["look like longitude/latitude degrees", "feature(s) 0"]),
        (["import-grids", str(_polygon_file(tmp / "grid.geojson", SQUARE)), "--crs", "EPSG:32648"],
         ["look like longitude/latitude degrees"]),
        # ... and right numbers in the wrong place: outside the county's imported areas.
        (["import-cameras", str(_cameras_csv(tmp / "far.csv", BALTIMORE))], ["outside the county's imported areas",
                                                                            "row 1", "row 2"]),
        (["import-incidents", str(_incidents_csv(tmp / "farinc.csv", BALTIMORE))], ["outside the county's imported areas"]),
        (["add-incident", "--lon", "-76.61", "--lat", "39.29", "--category", "治安"], ["outside the county's imported areas"]),
        # Low 10: malformed polygons.
        (["import-areas", str(_polygon_file(tmp / "am.geojson", [[179.9, 30], [-179.9, 30], [-179.9, 31], [179.9, 30]]))],
         ["antimeridian"]),
        (["import-grids", str(_polygon_file(tmp / "amg.geojson", [[179.9, 30], [-179.9, 30], [-179.9, 31], [179.9, 30]]))],
         ["antimeridian"]),
        (["import-areas", str(_polygon_file(tmp / "open.geojson", SQUARE[:-1]))], ["ring is not closed"]),
        (["import-areas", str(tmp / "3d.gpkg")], ["heights", "2D"]),
        # Low 8 and 13: impossible times, numbers and files.
        (["import-incidents", str(_incidents_csv(tmp / "e20.csv", CHENGDU[:1], "1e20"))], ["not a date/time", "row 1"]),
        (["import-incidents", str(_incidents_csv(tmp / "y1.csv", CHENGDU[:1], "0001-01-01"))], ["not a date/time"]),
        (["import-incidents", str(_incidents_csv(tmp / "y9999.csv", CHENGDU[:1], "9999-01-01"))], ["not a date/time"]),
        (["import-incidents", str(_incidents_csv(tmp / "y1985.csv", CHENGDU[:1], "1985-06-01"))], ["before 1990-01-01"]),
        (["add-incident", "--lon", "104.0805", "--lat", "30.6565", "--category", "治安", "--at", "2999-01-01T00:00"],
         ["outside 1990-01-01"]),
        (["import-osm", str(tmp / "nan.osm")], ["cannot read OSM data", "nan"]),
        (["import-cameras", str(tmp / "deep.json")], ["nested too deeply"]),
        # Low 14.
        (["cameras-at", "nan", "30"], ["not a finite longitude/latitude"]),
        (["lookup", "--", "-500", "30"], ["not a longitude/latitude"]),
        (["import-cameras", str(big5)], ["not UTF-8", "GB18030", "--encoding big5"]),
    ]


@pytest.fixture
def county(store_url):  # noqa: ANN001, ANN201
    """Chengdu's streets and 锦江区 as the district (what `gridpatrol import-osm chengdu.osm` and
    `import-areas 510104.geojson --crs gcj02` make; and users, unused here): a copy of the cached store."""
    fill_from_cache(store_url, "jobs-jinjiang", jinjiang_with_users, jinjiang_inputs())
    return store_url


def test_bad_input_fails_cleanly_and_changes_nothing(county, tmp_path):  # noqa: ANN001
    before = snapshot(county)
    for args, words in _inputs(tmp_path):
        p = run(county, *args, check=False)
        err = p.stderr.strip()
        assert p.returncode != 0, (args, p.stdout[-500:])
        assert "Traceback" not in err, err
        for w in words:
            assert w in err, (args, w, err)
        assert snapshot(county) == before, f"store changed by {args}"
    # Out-of-range ids are usage errors (exit 2) before any SQL.
    for args in (["advance-incident", str(2**63), "assigned"], ["incident-events", str(2**63)]):
        p = run(county, *args, check=False)
        assert p.returncode == 2 and "Traceback" not in p.stderr and "2147483647" in p.stderr, p.stderr
    # The right options make the same files import.
    run(county, "import-cameras", str(tmp_path / "big5.csv"), "--encoding", "big5")
    run(county, "import-cameras", str(tmp_path / "cams.csv"), "--crs", "wgs84")
    assert snapshot(county) != before
