"""export-qgis: the project parses, every layer source resolves to a GeoPackage layer GDAL reads
silently, and the styles name the right attributes and colours; both stores."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pyogrio
import pytest
from gridpatrol.layers import mapdata
from gridpatrol.layers.store import open_store
from typer.testing import CliRunner

from tests.gdal_check import gdal_silent


@pytest.fixture(scope="module")
def project(loaded_store_url, tmp_path_factory):  # noqa: ANN001, ANN201
    out = tmp_path_factory.mktemp("qgis")
    r = CliRunner().invoke(__import__("gridpatrol.scripts.cli", fromlist=["app"]).app,
                           ["--db", loaded_store_url, "export-qgis", str(out)])
    assert r.exit_code == 0, r.output
    return out, ET.parse(out / "gridpatrol.qgs").getroot()


def _layers(root):  # noqa: ANN001, ANN202
    return {ml.findtext("layername"): ml for ml in root.iter("maplayer")}


def test_every_source_resolves_and_gdal_reads_it_silently(project, loaded_store_url):  # noqa: ANN001
    out, root = project
    layers = _layers(root)
    assert {"roads", "buildings", "grids", "routes", "incidents"} <= set(layers)  # the seed has no areas
    assert "cameras" not in layers, "secret cameras went into a file for planners"
    tree = {e.get("name"): e.get("source") for e in root.iter("layer-tree-layer")}
    assert set(tree) == set(layers)
    have = {name for name, _ in pyogrio.list_layers(out / "gridpatrol.gpkg")}
    with gdal_silent():
        for name, ml in layers.items():
            source = ml.findtext("datasource")
            assert source == tree[name]
            path, _, layer = source.partition("|layername=")
            assert (out / path).resolve() == (out / "gridpatrol.gpkg").resolve() and layer in have
            assert ml.find("srs/spatialrefsys/authid").text == "EPSG:4326"
            gdf = pyogrio.read_dataframe(out / path, layer=layer)
            assert gdf.crs.to_epsg() == 4326 and len(gdf) > 0
    # The copy holds what the store holds: the newest plan's grids, every road.
    store = open_store(loaded_store_url)
    try:
        grids, band = mapdata.plan_frame(store)
        n_roads = store.count("roads")
    finally:
        store.dispose()
    got = pyogrio.read_dataframe(out / "gridpatrol.gpkg", layer="grids")
    assert sorted(got["code"]) == sorted(grids["code"])
    assert len(pyogrio.read_dataframe(out / "gridpatrol.gpkg", layer="roads", read_geometry=False)) == n_roads
    assert root.find("projectCrs/spatialrefsys/authid").text == "EPSG:4326"


def test_styles_name_the_right_attributes(project, loaded_store_url):  # noqa: ANN001
    """Grids: graduated by households over the plan's window with the web map's colours, labelled
    by code; streets labelled by name and wider when major; routes carry arrow markers."""
    out, root = project
    layers = _layers(root)
    fields = {name: set(pyogrio.read_info(out / "gridpatrol.gpkg", layer=name)["fields"]) for name in layers}
    for name, ml in layers.items():
        lab = ml.find("labeling/settings/text-style")
        if lab is not None:
            assert lab.get("fieldName") in fields[name], (name, lab.get("fieldName"))
        r = ml.find("renderer-v2")
        if r.get("attr"):
            assert r.get("attr") in fields[name]
    g = layers["grids"]
    assert g.find("labeling/settings/text-style").get("fieldName") == "code"
    r = g.find("renderer-v2")
    assert r.get("type") == "graduatedSymbol" and r.get("attr") == "households"
    store = open_store(loaded_store_url)
    try:
        grids, band = mapdata.plan_frame(store)
    finally:
        store.dispose()
    ranges = r.findall("ranges/range")
    lows, highs = [float(x.get("lower")) for x in ranges], [float(x.get("upper")) for x in ranges]
    assert lows[1:] == highs[:-1], "the classes leave gaps"
    hh = grids["households"].astype(float)
    assert lows[0] <= hh.min() and highs[-1] >= hh.max(), "a grid falls outside every class"
    # Each grid's class colour is the web map's colour of a value in the same class: the ramp is
    # the same (blue under the window, yellow in it, red over it).
    cmap = mapdata.workload_colormap_from(band["vmin"], band["vmax"])
    colours = {x.get("name"): x.find("layer/Option/Option[@name='color']").get("value") for x in r.findall("symbols/symbol")}
    for h in hh:
        k = next(i for i, (lo, hi) in enumerate(zip(lows, highs)) if lo <= h <= hi)
        got = np.array([int(v) for v in colours[ranges[k].get("symbol")].split(",")[:3]])
        lo, hi = max(lows[k], cmap.vmin), min(highs[k], cmap.vmax)
        ends = [np.array([int(cmap(v)[i:i + 2], 16) for i in (1, 3, 5)]) for v in (min(lo, hi), max(lo, hi))]
        assert all(np.minimum(*ends)[j] - 1 <= got[j] <= np.maximum(*ends)[j] + 1 for j in range(3)), (h, got, ends)
    roads = layers["roads"]
    assert roads.find("labeling/settings/text-style").get("fieldName") == "name"
    rules = roads.findall("renderer-v2/rules/rule")
    assert any('"highway" IN' in x.get("filter") and "'primary'" in x.get("filter") for x in rules)
    route = layers["routes"].find("renderer-v2/symbols/symbol")
    arrows = route.findall(".//layer[@class='MarkerLine']//layer[@class='SimpleMarker']/Option/Option[@name='name']")
    assert [a.get("value") for a in arrows] == ["filled_arrowhead"]
    assert route.find(".//layer[@class='MarkerLine']/Option/Option[@name='rotate']").get("value") == "1"
