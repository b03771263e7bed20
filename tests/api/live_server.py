"""Helpers for end-to-end tests: build a store with the real CLI and run the real server (uvicorn)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import missing_dependency

ROOT = Path(__file__).resolve().parents[2]
from tests.conftest import DATA  # noqa: E402  (GRIDPATROL_DATA or ../shared/data)

# The installed entry point (tests/e2e/test_cli_skeleton.py shows ``python -m gridpatrol.scripts.cli`` is the same).
CLI = [str(Path(sys.executable).parent / "gridpatrol")]
PASSWORD = "e2e-password-123"
# A fixed, random-looking key: the server refuses weak ones (one repeated letter, placeholders).
E2E_SECRET_KEY = "e2e-Vq7rT2mXo9LpZ4cNw8KsYb3Hd6Fj1Ga5"
USERS = {"admin": "ada", "planner": "pia", "dispatcher": "dan", "worker": "wu", "viewer": "vic"}


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reserve_port() -> socket.socket:
    """A socket holding a free loopback port for a server that binds it later; close it once the
    server answers.

    It is bound with SO_REUSEADDR and never listens: the kernel gives the port to no other
    ``bind(port 0)`` (another pytest-xdist worker's server), yet our server, which sets
    SO_REUSEADDR too (uvicorn does), can bind and listen on it."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


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


def stop_process(proc: subprocess.Popen, *, wait_s: float = 60) -> None:
    """Stop a server or worker process as an operator would: SIGTERM (a worker finishes the job in hand),
    then SIGKILL if it has not ended within ``wait_s`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running_server(db: str, *, workers: int = 1, env: dict[str, str] | None = None) -> Iterator[str]:
    """``gridpatrol serve`` on a free loopback port; yields the base URL once /readyz answers 200."""
    hold = reserve_port()
    port = hold.getsockname()[1]
    log = Path(tempfile.gettempdir()) / f"gp-e2e-server-{port}.log"
    fh = open(log, "w", encoding="utf-8")
    proc = subprocess.Popen(
        [*CLI, "--db", db, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
        env={**os.environ, "GRIDPATROL_SECRET_KEY": E2E_SECRET_KEY, **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready after 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        hold.close()  # the server listens on the port now
        yield base
    finally:
        hold.close()
        stop_process(proc, wait_s=15)
        fh.close()
        if not os.environ.get("GRIDPATROL_KEEP_LOGS"):
            log.unlink(missing_ok=True)


def login(base: str, name: str) -> dict[str, str]:
    """Authorization header of user ``name`` (OAuth2 password flow over HTTP)."""
    r = httpx.post(base + "/auth/token", data={"username": name, "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["access_token"]}
