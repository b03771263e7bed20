"""An exported plan imports back as the same grids (by building), each in one piece, and splits
into single-piece grids; on both stores, on the Chengdu spots where slivers once broke it."""
from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from gridpatrol.gis.assign import assign_buildings
from gridpatrol.gis.slivers import absorb_detached
from gridpatrol.layers import grids as plans
from gridpatrol.layers.importing import import_areas, import_osm

from tests.conftest import data_path

# Grids 510106000000042 and 510108000000053 of the seed-3 drawing (band 150–900, target 400) of
# Chengdu's five districts and the grids they share a boundary with, exported with `gridpatrol
# export grids`: the re-import split both into 2 parts (m² 1466948 + 4 and 27534 + 4385).
EXCERPT = Path(__file__).with_name("data") / "chengdu_seed3_grids_excerpt.geojson"
PARAMS = plans.PlanParams(target_households=400, min_households=150, max_households=900, seed=3)


def _load(store, tmp_path: Path) -> gpd.GeoDataFrame:  # noqa: ANN001
    """The Chengdu extract, and as districts the union of the excerpt's grids of each; returns them."""
    import_osm(store, data_path("chengdu", "chengdu.osm"))
    exported = gpd.read_file(EXCERPT).to_crs("EPSG:4326")
    for code, grp in exported.groupby("parent_code"):
        path = tmp_path / f"{code}.geojson"
        gpd.GeoDataFrame({"code": [code], "name": [code]}, geometry=[shapely.union_all(grp.geometry.to_numpy())],
                         crs="EPSG:4326").to_file(path, driver="GeoJSON")
        import_areas(store, path, code_field="code", name_field="name")
    return exported


def _parts(grids: gpd.GeoDataFrame) -> dict[str, int]:
    return dict(zip(grids["code"], shapely.get_num_geometries(grids.geometry.to_numpy())))


def test_reimported_plan_keeps_its_grids_in_one_piece_and_splits_into_one_piece_grids(store, tmp_path):
    exported = _load(store, tmp_path)
    pid = plans.import_grids(store, EXCERPT, params=PARAMS)

    res, _ = plans.check_grids(store, pid)
    errors = res.problems[res.problems["severity"] == "error"]
    structural = errors[~errors["kind"].str.startswith("households")]
    assert structural.empty, structural["detail"].tolist()
    grids = plans.read_grids(store, pid)
    assert set(grids["code"]) == set(exported["code"])
    assert set(_parts(grids).values()) == {1}
    # Same membership as exported: every building of the planning areas is in the grid whose
    # exported polygon holds its representative point.
    buildings = store.read_layer("buildings")
    was = assign_buildings(buildings, exported)
    now = assign_buildings(buildings, grids)
    inside = was.notna()
    assert inside.sum() > 50
    assert (was[inside] == now[inside]).all(), buildings.loc[inside & (was != now), ["osm_id"]].head()
    # …and the same workload: households and buildings as exported (counted from blocks both times; landuse
    # estimates are shared by area, so an edge moved by a millimetre moves a millionth of one).
    same = exported.set_index("code").loc[grids["code"]]
    assert np.allclose(grids["households"], same["households"], atol=0.01), (grids["households"], same["households"])
    assert (grids["buildings"].to_numpy() == same["buildings"].to_numpy()).all()
    # Blocks are single polygons, and each grid is the union of its blocks.
    blocks = plans.read_blocks(store, pid)
    assert (shapely.get_num_geometries(blocks.geometry.to_numpy()) == 1).all()
    assert set(blocks["grid_code"]) == set(grids["code"])
    # What import moved is stored with the plan: detached slivers (none is left over here) and
    # the area by which the grids' edges moved onto block edges.
    metrics = json.loads(plans.plan_row(store, pid)["metrics_json"])
    assert all(s["area_m2"] < 100 for s in metrics["slivers_absorbed"])
    metric = grids.estimate_utm_crs()
    assert metrics["boundary_adjusted_m2"] < 1e-3 * float(grids.to_crs(metric).area.sum())

    # The rule for what is left detached, on these blocks: give a block on the edge of grid A to a
    # grid it does not touch; as a sliver it goes back to the grid it shares the longest boundary
    # with, and is reported; above the sliver size it stays where it was put.
    bm = blocks.to_crs(metric)
    geoms, codes = bm.geometry.to_numpy(), sorted(set(bm["grid_code"]))
    labels = np.array([codes.index(c) for c in bm["grid_code"]])
    gm = grids.set_index("code").to_crs(metric).geometry
    i = int(np.argmin([g.area if shapely.length(shapely.intersection(g.boundary, gm.drop(c).union_all().boundary)) > 5
                       else np.inf for g, c in zip(geoms, bm["grid_code"])]))
    far = next(k for k, c in enumerate(codes) if gm[c].distance(geoms[i]) > 50)
    others = np.arange(len(geoms)) != i
    shared = {k: shapely.length(shapely.intersection(geoms[i].boundary,
                                                     shapely.union_all(geoms[others & (labels == k)]).boundary))
              for k in range(len(codes)) if k != far}
    broken = labels.copy()
    broken[i] = far
    fixed, moved = absorb_detached(geoms, broken, sliver_m2=geoms[i].area + 1)
    assert fixed[i] == max(shared, key=shared.get) and (np.delete(fixed, i) == np.delete(labels, i)).all()
    assert [(m.from_label, m.to_label) for m in moved] == [(far, fixed[i])]
    kept, none = absorb_detached(geoms, broken, sliver_m2=geoms[i].area - 1)
    assert (kept == broken).all() and not none

    # Splitting the two grids that came back in parts gives single-piece grids and a valid plan.
    for code in ("510106000000042", "510108000000053"):
        done = plans.split_grid(store, code, 2, force=True)
        after = plans.read_grids(store, done.plan_id)
        assert all(_parts(after)[c] == 1 for c in done.changed_codes), _parts(after)
    res, _ = plans.check_grids(store)
    errors = res.problems[res.problems["severity"] == "error"]
    assert errors[~errors["kind"].str.startswith("households")].empty
    assert np.isclose(after["households"].sum(), grids["households"].sum())
