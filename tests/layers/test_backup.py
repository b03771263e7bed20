"""`gridpatrol backup` / `restore` on both stores: a round trip gives back every table value by value,
restore is refused onto a store with data (unless --force) and for a newer schema, and a backup taken
while another process writes is consistent."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone

import pytest
from geoalchemy2 import Geometry
from gridpatrol.gis.errors import ConflictError, StoreError
from gridpatrol.layers import audit, migrations, users
from gridpatrol.layers.backup import backup, restore
from gridpatrol.layers.importing import import_osm
from gridpatrol.layers.models import Base, SchemaVersion
from gridpatrol.layers.store import open_store
from sqlalchemy import create_engine, func, insert, select, text

from tests.api.live_server import CLI, ROOT, drop_schema, pg_schema_url
from tests.conftest import data_path, module_store_url

ENV = dict(os.environ)


def _value(v):  # noqa: ANN001, ANN202
    if isinstance(v, datetime):
        return (v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v.astimezone(timezone.utc)).isoformat()
    if isinstance(v, memoryview):
        return bytes(v)
    return v


def snapshot(store) -> dict[str, list[tuple]]:  # noqa: ANN001
    """Every row of every table (geometries as WKB), in primary-key order."""
    out = {}
    with store.engine.connect() as c:
        for table in Base.metadata.sorted_tables:
            cols = [func.ST_AsBinary(col) if isinstance(col.type, Geometry) else col for col in table.columns]
            rows = c.execute(select(*cols).order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(_value(v) for v in r) for r in rows]
    return out


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def source(request, tmp_path_factory):  # noqa: ANN001, ANN201
    """Real streets and buildings (Nanjing 玄武区), users and audit entries."""
    with module_store_url(request, tmp_path_factory) as url:
        s = open_store(url)
        import_osm(s, data_path("nanjing", "xuanwu.osm"))
        ada = users.create_user(s, "ada", "admin", "ada-password-1")
        users.create_user(s, "网格员小王", "worker", "wang-password-1", actor=ada)
        users.record_audit(s, ada, "POST /incidents", "/incidents", {"text": "发现 井盖缺失"})
        yield s
        s.dispose()


def test_round_trip_gives_back_every_table_value_by_value(source, tmp_path, request):  # noqa: ANN001
    before = snapshot(source)
    assert len(before["roads"]) > 500 and len(before["buildings"]) > 500 and len(before["users"]) == 2
    f = tmp_path / ("store.gpkg" if source.is_gpkg else "store.dump")
    res = subprocess.run([*CLI, "--db", source.url, "--lang", "en", "backup", str(f)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env=ENV)
    # rich may wrap a long line (a long temporary path): compare with the line breaks taken out
    assert res.returncode == 0 and f"schema version {migrations.CURRENT_VERSION}" in " ".join(res.stdout.split()), res.stderr
    # Damage the store: the restore must give back exactly what the backup holds.
    with source.begin() as c:
        c.execute(text("DELETE FROM buildings WHERE id % 2 = 0"))
        c.execute(text("UPDATE roads SET name = 'x'"))
    users.create_user(source, "mallory", "admin", "mallory-password-1")
    with pytest.raises(ConflictError, match="not empty"):
        restore(source.url, f)
    assert "mallory" in {u["name"] for u in users.list_users(source)}  # refused: nothing changed
    res = subprocess.run([*CLI, "--db", source.url, "restore", str(f)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env=ENV)
    assert res.returncode == 4 and "--force" in res.stderr and "Traceback" not in res.stderr
    restore(source.url, f, force=True)
    assert snapshot(source) == before
    assert audit.verify(source).entries == len(before["audit_log"])
    if source.is_gpkg:  # into a new file as well
        other = open_store(f"gpkg:///{tmp_path / 'copy.gpkg'}")
        other.dispose()
        restore(other.url, f)
        other = open_store(other.url)
        assert snapshot(other) == before
        other.dispose()
    else:  # a second store in the same database cannot take the schema's name while it exists
        url, schema = pg_schema_url(request.getfixturevalue("pg_database"))
        try:
            with pytest.raises(ConflictError, match="exists in this database"):
                restore(url, f)
        finally:
            drop_schema(request.getfixturevalue("pg_database"), schema)


def test_a_backup_of_a_newer_schema_is_refused(store, tmp_path):  # noqa: ANN001
    users.create_user(store, "ada", "admin", "ada-password-1")
    with store.begin() as c:
        c.execute(insert(SchemaVersion).values(version=99, description="from the future"))
    f = tmp_path / "future.bak"
    backup(store, f)
    with store.begin() as c:
        c.execute(text("DELETE FROM gp_schema_version WHERE version = 99"))
    target = open_store(f"gpkg:///{tmp_path / 't.gpkg'}") if store.is_gpkg else store
    try:
        kept = users.list_users(target)
        with pytest.raises(StoreError, match="backup .* has schema version 99, newer than this gridpatrol"):
            restore(target.url, f, force=True)
        with target.engine.connect() as c:  # refused before anything was written
            assert migrations.current_version(c) == migrations.CURRENT_VERSION
        assert users.list_users(target) == kept
    finally:
        if target is not store:
            target.dispose()


WRITER = textwrap.dedent("""
    import os, sys
    from gridpatrol.layers import users
    from gridpatrol.layers.store import open_store
    s = open_store(sys.argv[1])
    i = 0
    while not os.path.exists(sys.argv[2]):
        users.create_user(s, f"w{i}", "viewer", "writer-password-1")
        i += 1
    s.dispose()
""")


def test_a_backup_taken_while_another_process_writes_is_consistent(store, store_url, tmp_path, request):  # noqa: ANN001
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, store_url, str(stop)], cwd=ROOT, env=ENV,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(users.list_users(store)) < 8 and time.monotonic() < deadline:
            time.sleep(0.2)
        f = tmp_path / "live.bak"
        backup(store, f)
    finally:
        stop.touch()
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    written = len(users.list_users(store))
    pg = None if store.is_gpkg else request.getfixturevalue("pg_database")
    if store.is_gpkg:
        url = f"gpkg:///{f}"
    else:  # the store is lost: restore into a new schema of the same database
        with store.engine.connect() as c:
            lost = c.execute(text("SELECT current_schema()")).scalar_one()
        store.dispose()
        drop_schema(pg, lost)
        url, schema = pg_schema_url(pg)
        restore(url, f)
    copy = open_store(url)
    try:
        names = {u["name"] for u in users.list_users(copy)}
        created = {e["target"] for e in users.read_audit(copy, limit=100000) if e["action"] == "create-user"}
        assert 8 <= len(names) <= written
        assert created == {f"user:{n}" for n in names}  # each user with its audit entry, none half-written
        assert audit.verify(copy).entries == len(names)
    finally:
        copy.dispose()
        if pg:
            drop_schema(pg, schema)
            eng = create_engine(pg, isolation_level="AUTOCOMMIT")
            with eng.connect() as c:  # for the fixture, which drops it
                c.execute(text(f"CREATE SCHEMA {lost}"))
            eng.dispose()
