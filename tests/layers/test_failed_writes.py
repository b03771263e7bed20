"""A write that fails half-way leaves every row of every table as it was, on both stores: the
failure (not the store) is simulated by refusing the second INSERT a command sends, after its
first table has been written."""
from __future__ import annotations

import csv
from contextlib import contextmanager

import pytest
from gridpatrol.layers import grids as plans
from gridpatrol.layers.cameras import import_cameras
from gridpatrol.layers.importing import import_osm, prepare_osm
from gridpatrol.layers.incidents import import_incidents
from gridpatrol.layers.models import Base
from sqlalchemy import event, func, inspect, select

from tests.cached_stores import jinjiang_inputs, jinjiang_named_seed1
from tests.conftest import data_path
from tests.store_cache import fill_from_cache


class InjectedFailure(RuntimeError):
    """The simulated failure (a full disk, a lost connection) in the middle of a write."""


@contextmanager
def second_insert_fails(store):  # noqa: ANN001, ANN201
    """Let the first INSERT through, then fail the next one; yields the counter of INSERTs seen."""
    seen = {"inserts": 0}

    def before(conn, cursor, statement, params, context, executemany):  # noqa: ANN001, ARG001
        if statement.lstrip().upper().startswith("INSERT"):
            seen["inserts"] += 1
            if seen["inserts"] >= 2:
                raise InjectedFailure("simulated failure after the first table was written")

    event.listen(store.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", before)


def snapshot(store) -> dict[str, list[tuple]]:  # noqa: ANN001
    """Every row of every table of the store (geometry as WKB), ordered by primary key."""
    present = set(inspect(store.engine).get_table_names())
    out = {}
    with store.engine.connect() as c:
        for t in Base.metadata.sorted_tables:
            if t.name not in present:
                continue
            cols = [func.ST_AsBinary(col).label(col.name) if col.name == "geom" else col for col in t.columns]
            order = list(t.primary_key.columns) or list(t.columns)
            rows = c.execute(select(*cols).order_by(*order)).all()
            out[t.name] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]
    return out


@pytest.fixture(scope="module")
def prepared():  # noqa: ANN201
    return prepare_osm(data_path("chengdu", "chengdu.osm"))


@pytest.fixture
def loaded(store_url, tmp_path):  # noqa: ANN001, ANN201
    """A store holding Chengdu's streets, 锦江区, a drawn plan (a copy of the cached store,
    tests/cached_stores.py), cameras and incidents."""
    from gridpatrol.layers.store import open_store

    fill_from_cache(store_url, "jinjiang-named-seed1", jinjiang_named_seed1, jinjiang_inputs())
    store = open_store(store_url)
    import_cameras(store, _cameras_csv(tmp_path / "cams0.csv", 1))
    import_incidents(store, _incidents_csv(tmp_path / "inc0.csv", 0))
    yield store
    store.dispose()


def _cameras_csv(path, first: int):  # noqa: ANN001, ANN202
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["code", "name", "project", "lon", "lat", "direction_deg", "fov_deg"])
        for i in range(3):
            w.writerow([f"510104000013200{first + i:05d}", f"摄像机{first + i}", "天网", 104.08 + 0.001 * i, 30.65, 90, 60])
    return path


def _incidents_csv(path, first: int):  # noqa: ANN001, ANN202
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["occurred_at", "category", "description", "lon", "lat", "external_id"])
        for i in range(4):
            w.writerow([f"2025-03-0{i + 1}T10:00:00", "治安", f"测试事件 {first + i}", 104.08 + 0.002 * i, 30.652, f"x{first + i}"])
    return path


def _grids_file(store, path):  # noqa: ANN001, ANN202
    plans.export_frame(store, "grids").to_file(path, driver="GeoJSON")
    return path


WRITES = {
    "import-osm": lambda s, prepared, tmp: import_osm(s, prepared),
    "import-cameras": lambda s, prepared, tmp: import_cameras(s, _cameras_csv(tmp / "cams.csv", 100)),
    "import-incidents": lambda s, prepared, tmp: import_incidents(s, _incidents_csv(tmp / "inc.csv", 100)),
    "import-grids": lambda s, prepared, tmp: plans.import_grids(s, _grids_file(s, tmp / "grids.geojson")),
    "draw-grids": lambda s, prepared, tmp: plans.draw_grids(s, plans.PlanParams(seed=2)),
}


@pytest.mark.parametrize("what", sorted(WRITES))
def test_a_write_failing_after_its_first_table_changes_no_row(loaded, prepared, tmp_path, what):
    before = snapshot(loaded)
    with second_insert_fails(loaded) as seen, pytest.raises(Exception) as err:
        WRITES[what](loaded, prepared, tmp_path)
    assert "simulated failure" in str(err.value), err.value
    assert seen["inserts"] >= 2, f"{what}: failed before its first write"
    after = snapshot(loaded)
    assert after.keys() == before.keys()
    for name in before:
        assert after[name] == before[name], f"{what}: table {name} changed by a failed write"
    # The same write without the failure does change rows: the comparison can see a change.
    WRITES[what](loaded, prepared, tmp_path)
    assert snapshot(loaded) != before
