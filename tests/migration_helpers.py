"""Upgrading an older store: make a store look as an older version left it, then open it again."""
from __future__ import annotations

from collections.abc import Callable

from gridpatrol.layers import migrations
from gridpatrol.layers.store import Store, open_store
from sqlalchemy import Connection, inspect, text


def reopen_as_upgraded(store: Store, store_url: str, version: int, downgrade: Callable[[Connection], None]) -> Store:
    """Run ``downgrade`` (undoing the steps after ``version``) and drop the later version rows in one
    transaction, close ``store``, and open ``store_url`` again: the upgraded store (the caller disposes it)."""
    with store.begin() as c:
        downgrade(c)
        c.execute(text("DELETE FROM gp_schema_version WHERE version > :v"), {"v": version})
        assert migrations.current_version(c) == version
    store.dispose()
    upgraded = open_store(store_url)
    with upgraded.engine.connect() as c:
        assert migrations.current_version(c) == migrations.CURRENT_VERSION
    return upgraded


def column_names(store: Store, table: str) -> set[str]:
    """The columns ``table`` has in ``store`` now."""
    with store.engine.connect() as c:
        return {col["name"] for col in inspect(c).get_columns(table)}
