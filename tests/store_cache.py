"""Expensive test stores built once and cached on disk by content hash; each module gets a copy.

A cached store is keyed by a SHA-256 over the input data files, the source of gis/ and layers/,
the module that builds it and this module, and the versions of the libraries that shape the
result; any change to one of them builds it anew. GeoPackage: a file under
``<system temp>/gridpatrol-test-cache``, copied for each module. PostGIS: a schema ``cache_*`` in
the test database, whose rows are copied into each module's fresh schema (the tables themselves
are made by ``open_store``, i.e. by the product's migrations). Builds take a machine-wide lock,
so two pytest-xdist workers (or two clones) never build the same store at once.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.conftest import PG_DB, ROOT, machine_lock, module_store_url, pg_url_for

CACHE_DIR = Path(os.environ.get("GRIDPATROL_TEST_CACHE", Path(tempfile.gettempdir()) / "gridpatrol-test-cache"))
# Cached stores nobody used for this long are removed (other code versions leave theirs behind).
STALE_S = 3 * 24 * 3600
_LIBS = ("shapely", "geopandas", "pyproj", "numpy", "networkx", "scipy", "sqlalchemy", "geoalchemy2", "pyogrio")
_key_memo: dict[tuple, str] = {}


def _hash_file(h, path: Path) -> None:  # noqa: ANN001
    h.update(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name).encode())
    h.update(b"\0" + path.read_bytes() + b"\0")


def content_key(name: str, build: Callable, inputs: Iterable[Path]) -> str:
    """The cache key (hex SHA-256) of store ``name`` made by ``build`` from the files ``inputs``."""
    memo = (name, build, tuple(inputs))
    if memo in _key_memo:
        return _key_memo[memo]
    h = hashlib.sha256(name.encode() + b"\0")
    code = sorted({*ROOT.joinpath("gis").rglob("*.py"), *ROOT.joinpath("layers").rglob("*.py"),
                   Path(inspect.getfile(build)).resolve(), Path(__file__).resolve()})
    for path in [*code, *memo[2]]:
        _hash_file(h, Path(path))
    for lib in _LIBS:
        try:
            h.update(f"{lib}={importlib.metadata.version(lib)}\0".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{lib}=-\0".encode())
    import shapely

    h.update(f"geos={shapely.geos_version_string}".encode())
    _key_memo[memo] = key = h.hexdigest()
    return key


def _prune(now: float) -> None:
    """Remove cached GeoPackages not used for STALE_S seconds (call with the prune lock held)."""
    for f in CACHE_DIR.glob("*.gpkg"):
        try:
            if now - f.stat().st_atime > STALE_S:
                f.unlink()
        except FileNotFoundError:
            pass


def cached_gpkg(name: str, build: Callable, inputs: Iterable[Path]) -> Path:
    """The cached GeoPackage of ``name`` (built now by ``build(store)`` if missing); never open it
    in place: copy it (``copy_into``)."""
    from gridpatrol.layers.store import open_store

    inputs = tuple(inputs)
    key = content_key(name, build, inputs)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    final = CACHE_DIR / f"{name}-{key[:16]}.gpkg"
    with machine_lock(f"cache-{name}-{key[:16]}"):
        if not final.exists():
            part = CACHE_DIR / f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
            try:
                store = open_store(f"gpkg:///{part}")
                try:
                    build(store)
                finally:
                    store.dispose()
                os.replace(part, final)  # atomic: a reader sees the whole file or none
            finally:
                part.unlink(missing_ok=True)
    os.utime(final)  # used now: not stale
    with machine_lock("cache-prune"):
        _prune(time.time())
    return final


def _pg_exec(pg_database: str, *sql: str) -> list:
    eng = create_engine(pg_database, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as c:
            return [c.execute(text(s)).all() if s.lstrip().upper().startswith("SELECT") else c.execute(text(s))
                    for s in sql]
    finally:
        eng.dispose()


def cached_pg_schema(pg_database: str, name: str, build: Callable, inputs: Iterable[Path]) -> str:
    """The name of the PostGIS schema holding the cached store ``name`` (built now if missing)."""
    from gridpatrol.layers.store import open_store

    inputs = tuple(inputs)
    key = content_key(name, build, inputs)
    schema = f"cache_{name.replace('-', '_')}_{key[:16]}"
    with machine_lock(f"cache-pg-{PG_DB}-{schema}"):
        (found,) = _pg_exec(pg_database, f"SELECT 1 FROM pg_namespace WHERE nspname = '{schema}'")
        if not found:
            part = f"cachebuild_{uuid.uuid4().hex[:12]}"
            _pg_exec(pg_database, f"CREATE SCHEMA {part}")
            try:
                store = open_store(pg_url_for(PG_DB, part))
                try:
                    build(store)
                finally:
                    store.dispose()
                _pg_exec(pg_database, f"ALTER SCHEMA {part} RENAME TO {schema}")
            finally:
                _pg_exec(pg_database, f"DROP SCHEMA IF EXISTS {part} CASCADE")
    _pg_exec(pg_database, f"COMMENT ON SCHEMA {schema} IS 'used {int(time.time())}'")
    with machine_lock(f"cache-pg-{PG_DB}-prune"):
        rows = _pg_exec(pg_database, "SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace "
                                     "WHERE nspname LIKE 'cache\\_%'")[0]
        for other, comment in rows:
            used = int(comment.split()[-1]) if comment and comment.startswith("used ") else 0
            if other != schema and time.time() - used > STALE_S:
                with machine_lock(f"cache-pg-{PG_DB}-{other}"):
                    _pg_exec(pg_database, f"DROP SCHEMA IF EXISTS {other} CASCADE")
    return schema


def copy_pg_schema(pg_database: str, source: str, target: str) -> None:
    """Copy every row of the store in schema ``source`` into the store just created (empty) in
    schema ``target``: same tables, made by the same migrations; sequences follow the ids."""
    from gridpatrol.layers.models import SchemaVersion

    eng = create_engine(pg_database)
    try:
        with eng.begin() as c:
            tables = [r[0] for r in c.execute(text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = :s "
                "AND table_type = 'BASE TABLE' ORDER BY table_name"), {"s": source})]
            have = {r[0] for r in c.execute(text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = :s "
                "AND table_type = 'BASE TABLE'"), {"s": target})}
            assert set(tables) == have, f"cached store {source} and new store {target} differ in tables"
            # Foreign keys and the audit log's triggers are not checked for rows copied verbatim.
            c.execute(text("SET LOCAL session_replication_role = replica"))
            for t in tables:
                if t == SchemaVersion.__tablename__:  # written by open_store, by the same code as the cached one
                    continue
                if t.startswith("procrastinate_"):  # the job queue (its own types per schema): not data
                    continue
                cols = ", ".join(f'"{r[0]}"' for r in c.execute(text(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = :s "
                    "AND table_name = :t AND is_generated = 'NEVER' ORDER BY ordinal_position"),
                    {"s": source, "t": t}))
                c.execute(text(f'INSERT INTO {target}."{t}" ({cols}) OVERRIDING SYSTEM VALUE '
                               f'SELECT {cols} FROM {source}."{t}"'))
                for (col,) in c.execute(text(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = :t "
                        "AND pg_get_serial_sequence(quote_ident(:s) || '.' || quote_ident(:t), column_name) IS NOT NULL"),
                        {"s": target, "t": t}):
                    c.execute(text(
                        f"SELECT setval(pg_get_serial_sequence('{target}.\"{t}\"', '{col}'), "
                        f'COALESCE((SELECT max("{col}") FROM {target}."{t}"), 0) + 1, false)'))
    finally:
        eng.dispose()


@contextmanager
def cached_module_store_url(request, tmp_path_factory, name: str, build: Callable,  # noqa: ANN001
                            inputs: Iterable[Path]) -> Iterator[str]:
    """For a module-scoped fixture with ``params=["gpkg", "postgis"]``: the URL of a store of the
    module's own holding what ``build(store)`` makes from ``inputs``, built once (cached, see the
    module docstring) and copied: a GeoPackage file copy, or rows copied into a fresh schema."""
    with module_store_url(request, tmp_path_factory) as url:
        fill_from_cache(url, name, build, inputs)
        yield url


def fill_from_cache(url: str, name: str, build: Callable, inputs: Iterable[Path]) -> None:
    """Fill the new, still unopened store at ``url`` (a GeoPackage path not yet written, or an
    empty PostGIS schema) with a copy of the cached store ``name`` (built now if missing)."""
    from gridpatrol.layers.store import open_store

    from tests.conftest import PG_URL

    inputs = tuple(inputs)
    if url.startswith("gpkg:///"):
        shutil.copyfile(cached_gpkg(name, build, inputs), url.removeprefix("gpkg:///"))
        return
    source = cached_pg_schema(PG_URL, name, build, inputs)
    open_store(url).dispose()  # the tables, by the product's migrations
    target = url.rsplit("search_path%3D", 1)[1].split(",", 1)[0]
    with machine_lock(f"cache-pg-{PG_DB}-{source}"):  # not dropped as stale meanwhile
        copy_pg_schema(PG_URL, source, target)


def open_filled(url: str, name: str, build: Callable, inputs: Iterable[Path]) -> Iterator:
    """Yields the store at ``url`` open, filled by fill_from_cache; disposes it after. For a
    fixture: ``yield from open_filled(store_url, ...)``."""
    from gridpatrol.layers.store import open_store

    fill_from_cache(url, name, build, inputs)
    store = open_store(url)
    yield store
    store.dispose()
