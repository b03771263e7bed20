"""Helpers for end-to-end tests: build a store with the real CLI and run the real server (uvicorn)."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from gridpatrol.scripts import serving
from gridpatrol.scripts.serving import free_port, reserve_port, stop_process  # noqa: F401  (the tests import them from here)

from tests.conftest import missing_dependency

ROOT = Path(__file__).resolve().parents[2]
from tests.conftest import DATA  # noqa: E402  (GRIDPATROL_DATA or ../shared/data)

# The installed entry point (tests/e2e/test_cli_skeleton.py shows ``python -m gridpatrol.scripts.cli`` is the same).
CLI = [str(Path(sys.executable).parent / "gridpatrol")]
PASSWORD = "e2e-password-123"
# A fixed, random-looking key: the server refuses weak ones (one repeated letter, placeholders).
E2E_SECRET_KEY = "e2e-Vq7rT2mXo9LpZ4cNw8KsYb3Hd6Fj1Ga5"
USERS = {"admin": "ada", "planner": "pia", "dispatcher": "dan", "worker": "wu", "viewer": "vic"}


def cli(db: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``gridpatrol --db DB ARGS…``; fail the test with its output if it exits non-zero."""
    res = subprocess.run([*CLI, "--db", db, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                         env=dict(os.environ))
    if res.returncode != 0:
        pytest.fail(f"gridpatrol {' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return res


def build_store(db: str, tmp: Path) -> None:
    """Chengdu streets/buildings, 锦江区 (GCJ-02 → WGS-84), synthetic cameras/incidents, one user per role."""
    osm = DATA / "chengdu" / "chengdu.osm"
    district = DATA / "chengdu" / "510104.geojson"
    for p in (osm, district):
        if not p.exists():
            missing_dependency(f"real data file {p} is missing (expected ../shared/data next to the repository)")
    cli(db, "import-osm", str(osm))
    cli(db, "import-areas", str(district), "--crs", "gcj02", "--name", "锦江区")
    cli(db, "synth-demo-data", "--seed", "3", "--incidents", "600")
    pw = tmp / "pw.txt"
    pw.write_text(PASSWORD + "\n", encoding="utf-8")
    for role, name in USERS.items():
        cli(db, "create-user", name, "--role", role, "--password-file", str(pw))


def pg_schema_url(pg_database: str) -> tuple[str, str]:
    """A new schema on the test database: (the store URL that uses it, its name)."""
    from gridpatrol.layers.pg_schemas import new_schema

    return new_schema(pg_database, "e2e_")


def drop_schema(pg_database: str, schema: str) -> None:
    from gridpatrol.layers.pg_schemas import drop_schema as drop

    drop(pg_database, schema)


@contextmanager
def store_url_for(request: pytest.FixtureRequest, tmp: Path, name: str) -> Iterator[str]:
    """URL of a new store for a fixture parametrized ``gpkg``/``postgis``: ``tmp/name.gpkg``, or a
    fresh PostGIS schema of ``pg_database`` dropped afterwards."""
    if request.param == "gpkg":
        yield f"gpkg:///{tmp / name}.gpkg"
        return
    pg = request.getfixturevalue("pg_database")
    db, schema = pg_schema_url(pg)
    try:
        yield db
    finally:
        drop_schema(pg, schema)


def built_gpkg_store(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[str, Path]:
    """(store URL, tmp dir): a GeoPackage store made by ``build_store`` in a new tmp dir ``name``."""
    tmp = tmp_path_factory.mktemp(name)
    db = f"gpkg:///{tmp / name}.gpkg"
    build_store(db, tmp)
    return db, tmp


@contextmanager
def served_built_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                       name: str) -> Iterator[tuple[str, str, Path]]:
    """(store URL, server URL, tmp dir): a store made by ``build_store`` for the fixture's
    ``gpkg``/``postgis`` param, served by uvicorn until the block ends."""
    tmp = tmp_path_factory.mktemp(name)
    with store_url_for(request, tmp, name) as db:
        build_store(db, tmp)
        with running_server(db) as base:
            yield db, base, tmp


@contextmanager
def served_drawn_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                       name: str) -> Iterator[tuple[str, str, Path]]:
    """As :func:`served_built_store`, with the grids drawn (seed 1) by the planner, as the planner pages start."""
    with served_built_store(request, tmp_path_factory, name) as (db, base, tmp):
        r = httpx.post(base + "/grids/draw", headers=login(base, USERS["planner"]), json={"seed": 1}, timeout=600)
        assert r.status_code == 201, r.text
        yield db, base, tmp


@contextmanager
def queue_worker(db: str) -> Iterator[subprocess.Popen | None]:
    """A ``gridpatrol worker`` for the jobs of a PostGIS store while the block runs, stopped after it; None for a
    GeoPackage store, whose server runs its jobs in a thread of its own."""
    if db.startswith("gpkg:") or db.endswith(".gpkg"):
        yield None
        return
    worker = subprocess.Popen([*CLI, "--db", db, "worker", "--heartbeat", "1"], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**os.environ, "GRIDPATROL_SECRET_KEY": E2E_SECRET_KEY})
    try:
        yield worker
    finally:
        stop_process(worker)


@contextmanager
def running_server(db: str, *, workers: int = 1, env: dict[str, str] | None = None) -> Iterator[str]:
    """``gridpatrol serve`` (the installed entry point, the e2e secret key) on a free loopback port;
    yields the base URL once /readyz answers 200, fails the test if it does not."""
    try:
        with serving.running_server(db, workers=workers, env={"GRIDPATROL_SECRET_KEY": E2E_SECRET_KEY, **(env or {})},
                                    cli=CLI, cwd=ROOT) as base:
            yield base
    except serving.ServerError as e:
        pytest.fail(str(e))


def login(base: str, name: str) -> dict[str, str]:
    """Authorization header of user ``name`` (OAuth2 password flow over HTTP)."""
    r = httpx.post(base + "/auth/token", data={"username": name, "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["access_token"]}
