"""Shared fixtures: the real data folder and a fresh store per test on both GeoPackage and PostGIS."""
from __future__ import annotations

import fcntl
import getpass
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyogrio  # noqa: F401  (before mod_spatialite: see layers/store.py)
import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GRIDPATROL_DATA", ROOT.parent / "shared" / "data"))
# PostGIS for tests: a database of its own, so tests never touch a user's data.
# The local socket (peer or trust auth as the current user), which scripts/run.sh sets up on a
# fresh machine; override with GRIDPATROL_TEST_PG (a server URL without the database name).
PG_SERVER = os.environ.get(
    "GRIDPATROL_TEST_PG",
    f"postgresql+psycopg://{getpass.getuser()}@/?host=/var/run/postgresql&port={os.environ.get('PGPORT', '5432')}",
)
PG_DB = os.environ.get("GRIDPATROL_TEST_PG_DB", "gridpatrol_test")

# Hypothesis keeps a cache and an example database in `.hypothesis/` under the working directory,
# so a run wrote into the checkout (or wherever it was started) and replayed examples an earlier
# run had saved there. Its cache goes to the system temp folder instead (read lazily, so setting it
# here, before any test runs, is in time), and no example database: a run depends on its seed
# only. `--hypothesis-profile` and HYPOTHESIS_STORAGE_DIRECTORY still override.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "gridpatrol-test-hypothesis"))
hypothesis_settings.register_profile("gridpatrol", database=None)
hypothesis_settings.load_profile("gridpatrol")


def pg_url_for(database: str, schema: str | None = None) -> str:
    """The URL of ``database`` on the test server, optionally with ``schema`` first on the search path."""
    base, _, query = PG_SERVER.partition("?")
    url = base.rstrip("/") + "/" + database + ("?" + query if query else "")
    if schema:
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema},public"
    return url


PG_ADMIN_URL = pg_url_for("postgres")
PG_URL = pg_url_for(PG_DB)


def pytest_collection_modifyitems(session, config, items) -> None:  # noqa: ANN001
    """Run tests/e2e first, keeping the order otherwise: its files hold few tests of minutes each
    (the demo, the CLI drawing grids, the server with schemathesis), and a parallel run
    (scripts/run.sh test: pytest-xdist, whole files per worker, --no-loadscope-reorder) that
    started them last would end with one worker busy on them and the other idle."""
    items.sort(key=lambda item: 0 if item.nodeid.startswith("tests/e2e/") else 1)


def missing_dependency(reason: str, *, module: bool = False) -> None:
    """Skip for a missing data file, program or package; in CI (``CI`` set) fail instead, so a
    broken set-up cannot pass as a green run that tested nothing."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a missing dependency is a failure, not a skip)", pytrace=False)
    pytest.skip(reason, allow_module_level=module)


def data_path(*parts: str) -> Path:
    """A file of ../shared/data; the test is skipped (in CI: fails) with a clear message if it is missing."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        missing_dependency(f"real data file {p} is missing (expected ../shared/data next to the repository)")
    return p


def poll_until(condition, timeout_s: float, interval_s: float = 0.1) -> bool:  # noqa: ANN001
    """Call ``condition()`` until it is true (returns True) or ``timeout_s`` seconds have passed
    (returns False): wait for a state instead of sleeping for the longest time it may take."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


@contextmanager
def machine_lock(name: str):
    """An exclusive lock shared by every process on this machine (pytest-xdist workers, parallel
    runs from other clones): a flock on ``<system temp>/gridpatrol-test-<name>.lock``."""
    path = Path(tempfile.gettempdir()) / f"gridpatrol-test-{name}.lock"
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def pg_database() -> str:
    """Create the PostGIS test database once (with the postgis extension) and return its URL.

    Each pytest-xdist worker runs this session fixture; a machine-wide lock keyed by the database
    name keeps two of them from racing on CREATE DATABASE / CREATE EXTENSION."""
    with machine_lock(f"pg-{PG_DB}"):
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as c:
                exists = text("SELECT 1 FROM pg_database WHERE datname = :d")
                if not c.execute(exists, {"d": PG_DB}).first():
                    try:
                        c.execute(text(f'CREATE DATABASE "{PG_DB}"'))
                    except Exception:  # created meanwhile by a run that does not take the lock
                        if not c.execute(exists, {"d": PG_DB}).first():
                            raise
        except Exception as exc:  # a test run without PostgreSQL is a broken setup, not a skip
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}; run scripts/run.sh test")
        finally:
            admin.dispose()
        eng = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with eng.connect() as c:
            c.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        eng.dispose()
    return PG_URL


@pytest.fixture
def pg_url(pg_database: str):
    """A URL to a fresh, empty PostGIS schema (dropped after the test)."""
    schema = "t_" + uuid.uuid4().hex[:12]
    eng = create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    yield pg_url_for(PG_DB, schema)
    with eng.connect() as c:
        c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    eng.dispose()


@pytest.fixture
def gpkg_url(tmp_path: Path) -> str:
    """A URL to a new GeoPackage file in the test's temporary folder."""
    return f"gpkg:///{tmp_path / 'store.gpkg'}"


@pytest.fixture(params=["gpkg", "postgis"])
def store_url(request) -> str:
    """The URL of a fresh empty store, once per store kind."""
    if request.param == "gpkg":
        return request.getfixturevalue("gpkg_url")
    return request.getfixturevalue("pg_url")


@contextmanager
def module_store_url(request, tmp_path_factory) -> Iterator[str]:  # noqa: ANN001
    """A URL to a new store of kind ``request.param`` for a module-scoped fixture: a GeoPackage in
    a temporary folder, or a PostGIS schema of its own that is dropped afterwards."""
    if request.param == "gpkg":
        yield f"gpkg:///{tmp_path_factory.mktemp('store') / 'store.gpkg'}"
        return
    pg = request.getfixturevalue("pg_database")
    schema = "t_" + uuid.uuid4().hex[:12]
    eng = create_engine(pg, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as c:
            c.execute(text(f"CREATE SCHEMA {schema}"))
        yield pg_url_for(PG_DB, schema)
    finally:
        with eng.connect() as c:
            c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        eng.dispose()


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def module_store(request, tmp_path_factory):  # noqa: ANN001, ANN201
    """A store shared by the tests of one module, once per store kind (PostGIS: a schema of its own,
    dropped afterwards). For expensive set-ups that tests only read, or add to without any test
    depending on what another one added."""
    from gridpatrol.layers.store import open_store

    with module_store_url(request, tmp_path_factory) as url:
        s = open_store(url)
        yield s
        s.dispose()


@pytest.fixture
def store(store_url: str):
    """A fresh empty store (GeoPackage and PostGIS: every test using it runs on both)."""
    from gridpatrol.layers.store import open_store

    s = open_store(store_url)
    yield s
    s.dispose()
