"""Schema version 16 (GeoPackage and PostGIS): a store made before it gets the table of proven least numbers
of grids of 0 households (layers.empty_bounds), and bounds kept in it are read back by their digest; a store
that cannot keep them changes no result."""
from __future__ import annotations

from gridpatrol.gis.partition.empty_bound import EmptyBound
from gridpatrol.layers.empty_bounds import StoredBounds, save_bounds
from gridpatrol.layers.store import open_store
from sqlalchemy import inspect, text

from tests.migration_helpers import reopen_as_upgraded


def test_an_older_store_gets_the_empty_bounds_table(store_url):  # noqa: ANN001
    store = open_store(store_url)

    def to_v15(c) -> None:  # noqa: ANN001
        c.execute(text("DROP TABLE empty_bounds"))

    store = reopen_as_upgraded(store, store_url, 15, to_v15)
    try:
        with store.engine.connect() as c:
            assert "empty_bounds" in inspect(c).get_table_names()
        kept = StoredBounds(store)
        assert kept.get("a" * 64) is None and len(kept) == 0
        solved = {"a" * 64: ("510104", EmptyBound(1, None, "cp-sat")),
                  "b" * 64: ("510105", EmptyBound(0, 0, "capacity"))}
        assert save_bounds(store, solved) == 2
        assert save_bounds(store, solved) == 0  # kept once: the same digest is the same bound
        assert kept["a" * 64] == EmptyBound(1, None, "cp-sat") and kept["b" * 64] == EmptyBound(0, 0, "capacity")
        assert sorted(kept) == ["a" * 64, "b" * 64]
    finally:
        store.dispose()


def test_a_store_that_cannot_keep_bounds_changes_no_result(store, caplog):  # noqa: ANN001
    """Without the table (a write or read that fails), saving writes nothing and says so, and reading
    finds nothing: the bound is solved, as before it was kept."""
    with store.begin() as c:
        c.execute(text("DROP TABLE empty_bounds"))
    assert save_bounds(store, {"c" * 64: ("510104", EmptyBound(2, 2, "cp-sat"))}) == 0
    assert "not kept" in caplog.text
    assert StoredBounds(store).get("c" * 64) is None
