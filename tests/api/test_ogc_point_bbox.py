"""bbox pages of point layers (cameras, incidents; on PostGIS from the covering point index,
models.POINT_XY_LAYERS) hold exactly the points a brute-force intersection with the box finds,
the box's edges included, for every role, counted exactly and walked by cursor, on both stores."""
from __future__ import annotations

import pytest
import shapely

from tests.api.test_ogc import page_all, read_layer

# Cameras each role sees (their secrecy levels) and incidents (a worker: those of their grids).
CAMERA_LEVEL = {"ada": 3, "dan": 0, "dora": 2}
WU_GRIDS = ["51010400101", "51010400102"]


def _edge_box(gdf) -> tuple[float, float, float, float]:  # noqa: ANN001
    """A box about the middle two thirds of the layer whose four edges pass exactly through points of it."""
    xs, ys = gdf.geometry.x.sort_values().to_numpy(), gdf.geometry.y.sort_values().to_numpy()
    n = len(gdf)
    return float(xs[n // 6]), float(ys[n // 6]), float(xs[5 * n // 6]), float(ys[5 * n // 6])


@pytest.mark.parametrize("layer,user", [("cameras", "ada"), ("cameras", "dan"), ("cameras", "dora"),
                                        ("incidents", "ada"), ("incidents", "dan"), ("incidents", "wu")])
def test_point_bbox_pages_are_the_brute_force_intersection(client, tokens, loaded_store_url, layer, user):  # noqa: ANN001
    gdf = read_layer(loaded_store_url, layer)
    box = _edge_box(gdf)
    inside = shapely.intersects(gdf.geometry.values, shapely.box(*box))
    if layer == "cameras":
        inside &= (gdf["secrecy_level"] <= CAMERA_LEVEL[user]).to_numpy()
    elif user == "wu":
        inside &= gdf["grid_code"].isin(WU_GRIDS).to_numpy()
    want = set(gdf.index[inside].tolist())
    edges = {i for i, p in zip(gdf.index, gdf.geometry) if inside[gdf.index.get_loc(i)]
             and (p.x in (box[0], box[2]) or p.y in (box[1], box[3]))}
    assert len(want) > 10 and edges, "the box should hold points, some on its edges"
    q = ",".join(repr(v) for v in box)
    feats, pages = page_all(client, f"/ogc/collections/{layer}/items?bbox={q}&limit=13", tokens[user])
    assert [f["id"] for f in feats] == sorted(want)
    assert {p["numberMatched"] for p in pages} == {len(want)}
