"""import-areas names the Chinese web-map system an outline is probably in when it was imported
without --crs (or with a wrong one): real Chengdu district boundaries against the real streets, both stores."""
from __future__ import annotations

import geopandas as gpd
import pytest
from gridpatrol.gis.crs import from_wgs84_geometry, to_wgs84_geometry, wgs84_to_gcj02
from gridpatrol.layers.importing import import_areas

from tests.cached_stores import chengdu_osm_inputs, chengdu_osm_only
from tests.conftest import data_path
from tests.e2e.test_cli_grids import run
from tests.store_cache import open_filled


def _write(tmp_path, name: str, geom) -> str:
    path = tmp_path / name
    path.write_text(gpd.GeoSeries([geom], crs="EPSG:4326").to_json(), encoding="utf-8")
    return str(path)


@pytest.fixture
def loaded(store_url, tmp_path):
    """Chengdu's streets imported (a copy of the cached store), a folder, and 锦江区's true WGS-84 outline."""
    raw = gpd.read_file(data_path("chengdu", "510104.geojson")).geometry.values[0]
    wgs = to_wgs84_geometry(raw, "gcj02")  # the district where it really is
    for store in open_filled(store_url, "chengdu-osm", chengdu_osm_only, chengdu_osm_inputs()):  # disposed after
        yield store, tmp_path, wgs


def test_a_gcj02_outline_imported_as_wgs84_is_named(loaded):
    store, tmp_path, wgs = loaded
    # The real boundary, shifted to GCJ-02 here (as web maps give it), imported without --crs.
    shifted = _write(tmp_path, "510104.geojson", from_wgs84_geometry(wgs, "gcj02"))
    res = import_areas(store, shifted)
    assert len(res.warnings) == 1
    w = res.warnings[0]
    assert "510104.geojson" in w and "probably in gcj02" in w and "--crs gcj02" in w
    # the same numbers declared as what they are: no warning
    assert import_areas(store, shifted, crs="gcj02").warnings == []


def test_a_true_wgs84_outline_is_not_warned_about_and_bd09_is_named(loaded):
    store, tmp_path, wgs = loaded
    assert import_areas(store, _write(tmp_path, "510104.geojson", wgs)).warnings == []
    bd = import_areas(store, _write(tmp_path, "510104.geojson", from_wgs84_geometry(wgs, "bd09")))
    assert len(bd.warnings) == 1 and "probably in bd09" in bd.warnings[0]
    # an outline shifted the other way (not a web-map shift) is not called GCJ-02
    lon, lat = wgs.centroid.x, wgs.centroid.y
    glon, glat = wgs84_to_gcj02(lon, lat)
    from shapely import affinity

    away = affinity.translate(wgs, xoff=-(float(glon) - lon), yoff=-(float(glat) - lat))
    assert import_areas(store, _write(tmp_path, "510104.geojson", away)).warnings == []


def test_the_cli_prints_the_warning(store_url, tmp_path):
    run(store_url, "import-osm", str(data_path("chengdu", "chengdu.osm")))
    out = run(store_url, "import-areas", str(data_path("chengdu", "510104.geojson")))
    assert "probably in gcj02" in " ".join(out.stderr.split()) and "--crs gcj02" in out.stderr
    out = run(store_url, "import-areas", str(data_path("chengdu", "510104.geojson")), "--crs", "gcj02")
    assert "warning" not in out.stderr
