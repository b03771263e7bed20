"""Grid names a worker can find (#15): a rural draw of 金牛区 on the real Chengdu extract names no grid by a landuse
word (OSM has a residential area there named just 住宅区) or a numbered settlement (居民点3), names the grids
without a named settlement after the named streets nearest their centre, and never gives two grids of the district
the same name."""
from __future__ import annotations

import collections
import re

import pytest
import shapely
from gridpatrol.gis.grid_names import chinese_number, unique_names

from tests.conftest import data_path

# Landuse and kind words a mapper may put in ``name`` (written out here, not taken from the product's list).
GENERIC = {"住宅区", "居住区", "住宅小区", "小区", "residential", "商业区", "公园", "测试类"}
NUMBERED = re.compile(r"^居民点\d+$")
METRIC = 32648


@pytest.fixture(scope="module")
def jinniu(tmp_path_factory):  # noqa: ANN001, ANN201
    """(store, grids) of a rural plan of 金牛区 (510106, GCJ-02 outline) over chengdu.osm, grids of at most 0.3 km²."""
    from gridpatrol.gis.osm import OsmOptions
    from gridpatrol.layers.grids import draw_grids, read_grids
    from gridpatrol.layers.importing import import_area_files, import_osm, prepare_osm
    from gridpatrol.layers.plan_params import PlanParams
    from gridpatrol.layers.store import open_store

    store = open_store(str(tmp_path_factory.mktemp("names") / "jinniu.gpkg"))
    import_osm(store, prepare_osm(data_path("chengdu", "chengdu.osm"), options=OsmOptions()))
    import_area_files(store, [data_path("chengdu", "510106.geojson")], crs="gcj02", name="金牛区")
    pid = draw_grids(store, PlanParams(mode="rural", max_area_m2=300_000, max_travel_min=10, allow_sparse=True))
    yield store, read_grids(store, pid)
    store.dispose()


def _parts(name: str) -> list[str]:
    """The places a name lists: 石桥镇、王家村 / 红星路、一环路一带 (a suffix （二） taken off)."""
    name = re.sub(r"（[一二三四五六七八九十]+）$", "", name).removesuffix("一带")
    return [p.strip() for p in re.split(r"[、]|等 \d+ 个居民点", name) if p.strip()]


def test_no_grid_is_named_by_a_landuse_word(jinniu) -> None:  # noqa: ANN001
    store, grids = jinniu
    assert len(grids) > 50
    places = store.read_layer("place_areas")
    assert "住宅区" in set(places["name"]), "the extract's generic residential name is there to be passed over"
    assert grids["name"].notna().all(), grids.loc[grids["name"].isna(), "code"].tolist()
    bad = [n for n in grids["name"] if any(p in GENERIC or NUMBERED.match(p) for p in _parts(n))]
    assert not bad, bad
    # the grid holding the 住宅区 area is named after streets instead, and specific compound names are kept
    spot = places.loc[places["name"] == "住宅区"].geometry.representative_point().iloc[0]
    (holder,) = grids.loc[grids.geometry.contains(spot), "name"]
    assert holder.endswith("一带") or re.search(r"一带（.+）$", holder), holder
    assert {"龙湖·北城天街", "金府世家"} <= set(grids["name"])


def test_street_names_are_streets_near_the_grid(jinniu) -> None:  # noqa: ANN001
    """Every street a grid is named after is a named road within 300 m of the grid (checked here with shapely)."""
    store, grids = jinniu
    roads = store.read_layer("roads").to_crs(METRIC)
    gm = grids.to_crs(METRIC)
    by_street = [(g, n) for g, n in zip(gm.geometry, gm["name"]) if re.search(r"一带(（.+）)?$", n)]
    assert len(by_street) > 20
    for geom, name in by_street:
        for street in _parts(name):
            near = roads[(roads["name"] == street) | (roads.get("name_zh") == street)]
            assert len(near) and shapely.distance(geom, near.geometry.union_all()) <= 300.0, (name, street)


def test_names_are_unique_in_the_district(jinniu) -> None:  # noqa: ANN001
    _, grids = jinniu
    counts = collections.Counter(zip(grids["parent_code"], grids["name"]))
    assert not {k: v for k, v in counts.items() if v > 1}
    # nearby grids share their nearest streets: told apart by a numbered suffix
    assert any(re.search(r"（[一二三]）$", n) for n in grids["name"]), "the draw has grids named after the same streets"


def test_unique_names_keep_the_unchanged_grids_names() -> None:
    names = ["红星路一带", "红星路一带", "红星路一带", "王家村", "王家村", None, None]
    parents = ["a", "a", "a", "a", "b", "a", "a"]
    assert unique_names(names, parents) == ["红星路一带（一）", "红星路一带（二）", "红星路一带（三）",
                                            "王家村", "王家村", None, None]
    # an edit renames the reshaped grids only: the grid left as it was keeps its name
    got = unique_names(["X", "X", "X（二）"], ["a", "a", "a"], fixed=[True, False, True])
    assert got == ["X", "X（三）", "X（二）"]
    assert [chinese_number(n) for n in (1, 10, 12, 20, 99, 100)] == ["一", "十", "十二", "二十", "九十九", "100"]


def test_rural_edit_renames_a_reshaped_grid_uniquely(jinniu) -> None:  # noqa: ANN001
    """Splitting a grid named after streets: the halves are named again, the other grids keep their names, and
    where a planner already gave another grid of the district the name a half gets, the half is told apart."""
    from gridpatrol.gis.errors import GridPatrolError
    from gridpatrol.layers.grids import assign_workers, read_blocks, read_grids, split_grid

    store, grids = jinniu
    pid = int(grids["plan_id"].iloc[0])
    blocks = read_blocks(store, pid)["grid_code"].value_counts()
    by_street = set(grids.loc[grids["name"].str.contains("一带"), "code"])
    res = code = None
    for code in [c for c in blocks.index if c in by_street][:10]:  # most blocks first; a split may be refused
        try:
            res = split_grid(store, str(code), 2, plan_id=pid, force=True)
            break
        except GridPatrolError:
            continue
    assert res is not None, "no grid of the plan could be split"
    after = read_grids(store, res.plan_id)
    assert after["name"].notna().all()
    assert not [k for k, v in collections.Counter(zip(after["parent_code"], after["name"])).items() if v > 1]
    kept = after[~after["code"].isin(res.changed_codes)].set_index("code")["name"]
    assert (kept == grids.set_index("code")["name"].reindex(kept.index)).all(), "untouched grids keep their names"
    half = after[after["code"].isin(res.changed_codes) & (after["code"] != code)].iloc[0]
    # a planner names another grid as the split will name that half; the same split from that plan
    other = str(kept.index[0])
    named = assign_workers(store, {}, names={other: half["name"]}, plan_id=pid)
    again = read_grids(store, split_grid(store, str(code), 2, plan_id=named.plan_id, force=True).plan_id)
    by_code = again.set_index("code")["name"]
    assert by_code[other] == half["name"], "the planner's name stays"
    assert by_code[half["code"]] == half["name"] + "（二）", by_code[half["code"]]
    assert not [k for k, v in collections.Counter(zip(again["parent_code"], again["name"])).items() if v > 1]
