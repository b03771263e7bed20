"""Backups of a store and their restore: SQLite's online backup (GeoPackage), pg_dump/pg_restore (PostGIS)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gridpatrol.gis.errors import ConflictError, InputError, StoreError
from gridpatrol.layers import migrations
from gridpatrol.layers.job_queue import drop_queue_sql
from gridpatrol.layers.models import Base, LoginThrottle, SchemaVersion
from gridpatrol.layers.store import Store, gpkg_path, open_store, resolve_url
from sqlalchemy import Connection, create_engine, func, inspect, select, text

# Tables whose rows make a store "not empty" (a restore over it needs --force).
_KEPT = [t.name for t in Base.metadata.sorted_tables
         if t.name not in (SchemaVersion.__tablename__, LoginThrottle.__tablename__)]


@dataclass(frozen=True)
class BackupInfo:
    """A backup file: which kind of store it holds and at which schema version."""

    path: Path
    kind: str  # "geopackage" | "postgresql"
    schema_version: int
    size_bytes: int


def _rows(conn: Connection) -> int:
    have = set(inspect(conn).get_table_names())
    return sum(int(conn.execute(select(func.count()).select_from(text(name))).scalar_one())
               for name in _KEPT if name in have)


def _check_version(version: int, path: Path) -> None:
    if version == 0:
        raise InputError(f"{path} is not a gridpatrol backup (no schema version in it)")
    if version > migrations.CURRENT_VERSION:
        raise StoreError(f"the backup {path} has schema version {version}, newer than this gridpatrol "
                         f"({migrations.CURRENT_VERSION}): nothing was restored", hint="restore it with a newer gridpatrol")


def backup(store: Store, path: Path) -> BackupInfo:
    """Write a consistent snapshot of ``store`` to ``path`` while the store may be in use.

    GeoPackage: SQLite's online backup API (the copy is itself a GeoPackage). PostGIS: ``pg_dump
    -Fc`` of the store's schema (one snapshot). The file is written beside ``path`` and renamed."""
    path = Path(path)
    part = path.with_name(path.name + ".part")
    with store.engine.connect() as c:
        version = migrations.current_version(c)
    if store.is_gpkg:
        src_path = gpkg_path(store.url)
        if src_path is not None and path.exists() and path.resolve() == src_path.resolve():
            raise InputError(f"the backup file {path} is the store itself", hint="give another file name")
        import pysqlite3.dbapi2 as sqlite

        raw = store.engine.raw_connection()
        try:
            part.unlink(missing_ok=True)
            dst = sqlite.connect(str(part))
            try:
                raw.driver_connection.backup(dst)  # all pages in one step: a single read transaction
            finally:
                dst.close()
        finally:
            raw.close()
    else:
        schema = _pg_schema(store)
        _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--schema={schema}",
              f"--file={part}", f"--dbname={_dsn(store.engine.url)}"], store.engine.url, "pg_dump")
    os.replace(part, path)
    return BackupInfo(path, store.dialect, version, path.stat().st_size)


def restore(url: str | None, path: Path, *, force: bool = False) -> BackupInfo:
    """Replace the store at ``url`` with the backup ``path``, then upgrade it to this version.

    Refused (nothing changed): a backup of a newer schema than this gridpatrol knows, a store of a
    newer schema, or a store that holds data unless ``force``. All or nothing: a failed restore
    leaves the store as it was."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"backup file {path} does not exist")
    url = resolve_url(url)
    target = gpkg_path(url)
    if target is not None:
        info = _restore_gpkg(target, path, force)
    else:
        info = _restore_pg(url, path, force)
    open_store(url).dispose()  # migrate an older backup to the current schema
    return info


def _refuse_target(conn: Connection, where: str, force: bool) -> None:
    have = migrations.current_version(conn)
    if have > migrations.CURRENT_VERSION:
        raise StoreError(f"the store {where} has schema version {have}, newer than this gridpatrol "
                         f"({migrations.CURRENT_VERSION}): nothing was restored", hint="upgrade gridpatrol")
    rows = _rows(conn)
    if rows and not force:
        raise ConflictError(f"the store {where} is not empty ({rows} rows): nothing was restored",
                            hint="restore into a new store, or pass --force to replace everything in it")


def _sqlite_version(path: Path) -> int:
    import pysqlite3.dbapi2 as sqlite

    with open(path, "rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise InputError(f"{path} is not a GeoPackage backup (not an SQLite file)",
                             hint="a PostGIS backup restores into a PostGIS store (--db postgresql://…)")
    con = sqlite.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'gp_schema_version'").fetchone():
            return 0
        return int(con.execute("SELECT coalesce(max(version), 0) FROM gp_schema_version").fetchone()[0])
    finally:
        con.close()


def _restore_gpkg(target: Path, path: Path, force: bool) -> BackupInfo:
    import pysqlite3.dbapi2 as sqlite

    version = _sqlite_version(path)
    _check_version(version, path)
    if target.exists() and target.resolve() == path.resolve():
        raise InputError(f"the backup file {path} is the store itself", hint="give the backup file, not the store")
    if target.exists() and target.stat().st_size > 0:
        eng = create_engine(f"sqlite:///{target}")
        try:
            with eng.connect() as conn:
                _refuse_target(conn, str(target), force)
        finally:
            eng.dispose()
    src = sqlite.connect(f"file:{path}?mode=ro", uri=True)
    dst = sqlite.connect(str(target), timeout=30)
    try:
        src.backup(dst)  # replaces the target's pages in one write transaction: all or nothing
    finally:
        dst.close()
        src.close()
    return BackupInfo(path, "geopackage", version, path.stat().st_size)


# ------------------------------------------------------------------------------------ PostGIS

def _dsn(url) -> str:  # noqa: ANN001
    """A libpq URI for the command-line tools, without the password (passed as PGPASSWORD)."""
    return url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)


def _run(cmd: list[str], url, what: str, **kw) -> subprocess.CompletedProcess:  # noqa: ANN001, ANN003
    if shutil.which(cmd[0]) is None:
        raise StoreError(f"{cmd[0]} is not installed", hint="install the PostgreSQL client tools (postgresql-client)")
    env = {**os.environ, **({"PGPASSWORD": url.password} if url.password else {})}
    res = subprocess.run(cmd, env=env, capture_output=True, **kw)
    if res.returncode != 0:
        err = res.stderr.decode("utf-8", "replace") if isinstance(res.stderr, bytes) else str(res.stderr)
        first = next((ln for ln in err.splitlines() if ln.strip()), "no message")
        raise StoreError(f"{what} failed: {first.strip()}", hint="nothing was changed in the store")
    return res


def _pg_schema(store: Store) -> str:
    """The store's schema: the first schema of the search path, which must exist."""
    with store.engine.connect() as c:
        current = c.execute(text("SELECT current_schema()")).scalar_one()
        first = c.execute(text("SELECT current_schemas(false)")).scalar_one()
    return current or (first[0] if first else "public")


def _dump_info(path: Path, url) -> tuple[str, int]:  # noqa: ANN001
    """(schema, schema version) of a pg_dump custom-format backup, read without a database."""
    with open(path, "rb") as fh:
        if fh.read(5) != b"PGDMP":
            raise InputError(f"{path} is not a PostGIS backup (not a pg_dump custom-format file)",
                             hint="a GeoPackage backup restores into a .gpkg store")
    res = _run(["pg_restore", "--data-only", "--table=gp_schema_version", "--file=-", str(path)], url, "pg_restore")
    sql = res.stdout.decode("utf-8", "replace")
    m = re.search(r'^COPY (?:"?([^".\s]+)"?)\.gp_schema_version \([^)]*\) FROM stdin;\n(.*?)^\\\.$', sql, re.M | re.S)
    if m is None:
        return "", 0
    versions = [int(line.split("\t", 1)[0]) for line in m.group(2).splitlines() if line.strip()]
    return m.group(1), max(versions, default=0)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _restore_pg(url: str, path: Path, force: bool) -> BackupInfo:
    eng = create_engine(url)
    try:
        schema, version = _dump_info(path, eng.url)
        _check_version(version, path)
        with eng.connect() as conn:
            target = conn.execute(text("SELECT current_schema()")).scalar_one()
            wanted = conn.execute(text("SHOW search_path")).scalar_one().split(",")[0].strip().strip('"')
            if target is None or (wanted not in ("$user", target)):
                raise StoreError(f"schema {wanted!r} of the store does not exist: nothing was restored",
                                 hint=f"create it first: CREATE SCHEMA {wanted}")
            _refuse_target(conn, f"schema {target}", force)
            taken = schema != target and conn.execute(
                text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first()
        if taken:
            raise ConflictError(f"the backup is of schema {schema!r}, which exists in this database beside the "
                                f"store's schema {target!r}: nothing was restored",
                                hint=f"restore with --db pointing at schema {schema}, or into another database")
        _pg_replace(eng.url, path, schema, target)
    finally:
        eng.dispose()
    return BackupInfo(path, "postgresql", version, path.stat().st_size)


def _pg_replace(url, path: Path, schema: str, target: str) -> None:  # noqa: ANN001
    """In one transaction: drop gridpatrol's objects in ``target``, restore the dump (without its
    CREATE SCHEMA) into it (renamed to ``schema`` meanwhile if the names differ)."""
    toc = _run(["pg_restore", "--list", str(path)], url, "pg_restore").stdout.decode("utf-8", "replace")
    keep = [ln for ln in toc.splitlines() if not re.match(r"^\d+;\s*\d+\s+\d+\s+SCHEMA\s", ln)]
    drops = [f"DROP TABLE IF EXISTS {_ident(target)}.{_ident(t.name)} CASCADE;"
             for t in reversed(Base.metadata.sorted_tables)]
    drops.append(f"DROP FUNCTION IF EXISTS {_ident(target)}.gp_audit_append_only() CASCADE;")
    drops.append(drop_queue_sql(target))  # the job queue's own tables, functions and types (schema 10)
    before, after = "\n".join(drops), ""
    if schema != target:
        before += f"\nALTER SCHEMA {_ident(target)} RENAME TO {_ident(schema)};"
        after = f"\nALTER SCHEMA {_ident(schema)} RENAME TO {_ident(target)};"
    with tempfile.TemporaryDirectory() as tmp:
        lst = Path(tmp) / "toc.list"
        lst.write_text("\n".join(keep) + "\n", encoding="utf-8")
        sql = _run(["pg_restore", "--no-owner", "--no-privileges", f"--use-list={lst}", "--file=-", str(path)],
                   url, "pg_restore").stdout
        script = Path(tmp) / "restore.sql"
        script.write_bytes(before.encode() + b"\n" + sql + after.encode() + b"\n")
        _run(["psql", "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--single-transaction",
              f"--file={script}", f"--dbname={_dsn(url)}"], url, "restore (psql)")
