"""The real ``gridpatrol`` command: imports, info, export, and broken inputs that change nothing."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pyogrio
import pytest
from sqlalchemy import create_engine, text

from tests.cached_stores import chengdu_osm_inputs, chengdu_osm_only
from tests.conftest import data_path
from tests.gdal_check import read_every_table
from tests.store_cache import fill_from_cache

GRIDPATROL = str(Path(sys.executable).with_name("gridpatrol"))


def run(db: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([GRIDPATROL, "--db", db, *args], capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"gridpatrol {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
    return p


def snapshot(db: str) -> object:
    """Byte-for-byte for a GeoPackage file; for PostGIS, every row of every table of the store's
    schema (an MD5 over the rows as text, geometries included, and a count per table)."""
    if db.startswith("gpkg:///"):
        return hashlib.sha256(Path(db[len("gpkg:///"):]).read_bytes()).hexdigest()
    eng = create_engine(db)
    try:
        with eng.connect() as c:
            tables = [r[0] for r in c.execute(text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND table_type = 'BASE TABLE' ORDER BY table_name"))]
            return {t: tuple(c.execute(text(
                f"SELECT count(*), md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) FROM \"{t}\" r"
            )).one()) for t in tables}
    finally:
        eng.dispose()


@pytest.fixture
def loaded(store_url):
    run(store_url, "import-osm", str(data_path("chengdu", "chengdu.osm")))
    return store_url


@pytest.fixture
def loaded_copy(store_url):  # noqa: ANN001, ANN201
    """What ``loaded`` holds (Chengdu imported, no areas), copied from the cached store instead of
    imported through the CLI again (test_import_info_export does that)."""
    fill_from_cache(store_url, "chengdu-osm", chengdu_osm_only, chengdu_osm_inputs())
    return store_url


def test_import_info_export(loaded, tmp_path):
    info = json.loads(run(loaded, "info", "--json").stdout)
    rows = {r["layer"]: r["rows"] for r in info["layers"]}
    assert rows["roads"] == 5070 and rows["buildings"] > 900
    out = tmp_path / "roads.geojson"
    run(loaded, "export", "roads", str(out))
    assert len(pyogrio.read_dataframe(out)) == 5070
    districts = [str(data_path("chengdu", f"{c}.geojson")) for c in ("510104", "510105", "510106", "510107", "510108")]
    run(loaded, "import-areas", *districts, "--crs", "gcj02", "--level", "district")
    info = json.loads(run(loaded, "info", "--json").stdout)
    assert {r["layer"]: r["rows"] for r in info["layers"]}["areas"] == 5
    # GDAL (QGIS) reads every table of the store and of an exported GeoPackage without a warning.
    gpkg = tmp_path / "imports.gpkg"
    run(loaded, "export", "imports", str(gpkg))
    paths = [gpkg] + ([Path(loaded[len("gpkg:///"):])] if loaded.startswith("gpkg:///") else [])
    for path in paths:
        tables = read_every_table(path)
        assert len(tables["imports"]) >= 2, (path, list(tables))


def _broken_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    pbf = data_path("baltimore", "baltimore.osm.pbf").read_bytes()
    (tmp / "cut.osm.pbf").write_bytes(pbf[: len(pbf) // 3])
    (tmp / "page.osm").write_text("<!DOCTYPE html><html><head><title>Error</title></head></html>")
    (tmp / "empty.osm").write_bytes(b"")
    (tmp / "510199.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {},
        "geometry": {"type": "LineString", "coordinates": [[104.05, 30.66], [104.06, 30.67]]}}]}))
    district = str(data_path("chengdu", "510104.geojson"))
    return [
        # Several files are all or nothing: a good district file first, then a bad one.
        (["import-areas", district, str(tmp / "510199.geojson"), "--crs", "gcj02"], "is not a polygon"),
        (["import-areas", district, str(data_path("chengdu", "510105.geojson")), "--crs", "gcj02",
          "--code", "510104"], "also given by"),
        (["import-osm", str(tmp / "cut.osm.pbf")], "cut.osm.pbf"),
        (["import-osm", str(tmp / "page.osm")], "HTML"),
        (["import-osm", str(tmp / "empty.osm")], "empty"),
        (["import-areas", str(data_path("baltimore", "neighborhoods.geojson"))], "--crs"),
        (["import-osm", str(data_path("chengdu", "chengdu.osm")), "--boundary",
          str(data_path("nanjing", "320102.geojson")), "--boundary-crs", "gcj02"], "does not intersect"),
        (["export", "nosuchlayer", str(tmp / "x.geojson")], "unknown layer"),
        (["export", "roads", str(tmp / "x.shp")], ".shp.zip"),
    ]


def test_broken_inputs_fail_cleanly_and_change_nothing(loaded_copy, tmp_path):
    before = snapshot(loaded_copy)
    for args, message in _broken_inputs(tmp_path):
        p = run(loaded_copy, *args, check=False)
        assert p.returncode != 0, args
        err = p.stderr.strip()
        assert message in err, (args, err)
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
        assert snapshot(loaded_copy) == before, f"store changed by {args}"


def test_broken_input_does_not_create_a_store(tmp_path):
    db = f"gpkg:///{tmp_path / 'new.gpkg'}"
    (tmp_path / "empty.osm").write_bytes(b"")
    p = run(db, "import-osm", str(tmp_path / "empty.osm"), check=False)
    assert p.returncode == 2
    assert not (tmp_path / "new.gpkg").exists()


def test_boundary_clips_the_import(store_url):
    run(store_url, "import-osm", str(data_path("chengdu", "chengdu.osm")), "--boundary",
        str(data_path("chengdu", "510104.geojson")), "--boundary-crs", "gcj02")
    info = json.loads(run(store_url, "info", "--json").stdout)
    rows = {r["layer"]: r["rows"] for r in info["layers"]}
    assert 0 < rows["roads"] < 5070


def test_help_on_every_command():
    """The installed entry point answers ``gridpatrol --help`` (a real process); every command its
    panel lists, and only those, answers ``<command> --help``. The per-command helps run in this
    process through typer's CliRunner on the same app: a process each spent 4–7 s importing the
    same modules, once per command (47)."""
    import click
    from gridpatrol.scripts.cli import app
    from typer.main import get_command
    from typer.testing import CliRunner

    p = subprocess.run([GRIDPATROL, "--help"], capture_output=True, text=True)
    assert p.returncode == 0
    panel = p.stdout.split("Commands")[1]
    commands = [line.split()[1] for line in panel.splitlines()
                if line.startswith("│ ") and line[2] != " " and len(line.split()) > 2]
    assert {"import-osm", "import-areas", "export", "info"} <= set(commands)
    group = get_command(app)
    assert sorted(commands) == sorted(group.list_commands(click.Context(group))), "the help panel and the app's commands differ"
    runner = CliRunner()
    for cmd in commands:
        q = runner.invoke(app, [cmd, "--help"])
        assert q.exit_code == 0 and "Usage" in q.stdout, (cmd, q.exception, q.output[-500:])


def test_import_summary_reads_like_a_count(tmp_path):
    """The summary's households (a sum of per-building estimates) reads 94394.3, not 94394.29999999999,
    and is the store's own total."""
    db = f"gpkg:///{tmp_path / 's.gpkg'}"
    out = run(db, "import-osm", str(data_path("chengdu", "chengdu.osm"))).stdout
    cell = next(line.split("│")[2].strip() for line in out.splitlines() if "│ households " in line)
    assert len(cell.replace(".", "")) <= 12, cell
    stored = pyogrio.read_dataframe(tmp_path / "s.gpkg", layer="buildings", read_geometry=False)["households"].sum()
    assert float(cell) == pytest.approx(stored, abs=0.05)
