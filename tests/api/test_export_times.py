"""Exports write times in the county's zone with the offset, never bare UTC (#16): an incident that occurred at a
known instant comes out of ``GET /export/incidents`` and ``gridpatrol export`` in every format as the county's wall
clock (``…+08:00``, Asia/Urumqi ``…+06:00`` where the county is configured so), to the microsecond, and reads back
as the same instant, also as GDAL (QGIS) reads the .gpkg and .geojson; on both stores."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from xml.etree import ElementTree as ET

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely

from tests.gdal_check import gdal_silent

# 12:34:56.123456 in Beijing on 7 December 2026 is 04:34:56.123456 UTC; in Urumqi (UTC+6) it is 10:34:56.123456.
# PostGIS keeps the microseconds; the GeoPackage store keeps milliseconds (its DATETIME), so there it is .123000.
WHEN = datetime(2026, 12, 7, 4, 34, 56, 123456, tzinfo=timezone.utc)
MARK = "导出时间核对"
LOCAL_TEXT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+08:00$")
FORMATS = ("geojson", "gpkg", "csv", "shp.zip", "kml")
TIME_COLUMNS = ("occurred_at", "state_since")


@pytest.fixture(scope="module")
def stored(app) -> datetime:  # noqa: ANN001
    """WHEN as the module's store keeps it."""
    return WHEN.replace(microsecond=123000) if app.state.store.is_gpkg else WHEN


@pytest.fixture(scope="module")
def shanghai(stored) -> str:  # noqa: ANN001
    return stored.isoformat().replace("T04:", "T12:").replace("+00:00", "+08:00")


@pytest.fixture(scope="module")
def urumqi(stored) -> str:  # noqa: ANN001
    return stored.isoformat().replace("T04:", "T10:").replace("+00:00", "+06:00")


@pytest.fixture(scope="module")
def incident(app, stored) -> int:  # noqa: ANN001
    """The id of an incident that occurred (and entered its state) at WHEN, in the first seeded grid."""
    store = app.state.store
    minx, miny, maxx, maxy = store.extent("roads")
    with store.begin() as conn:
        store.insert_gdf(conn, "incidents", gpd.GeoDataFrame(
            {"occurred_at": [WHEN], "category": "治安", "description": MARK, "state": "reported", "state_since": [WHEN],
             "version": 1, "grid_code": "5101040010", "worker": "wu", "synthetic": True},
            geometry=[shapely.Point((minx + maxx) / 2 - 0.001, (miny + maxy) / 2 - 0.001)], crs=4326))
    found = store.read_layer("incidents")
    assert found.loc[found["description"] == MARK, "occurred_at"].iloc[0] == pd.Timestamp(stored)
    return int(found.loc[found["description"] == MARK, "id"].iloc[0])


def _times(fmt: str, data: bytes, tmp_path, incident: int) -> tuple[dict[str, str], list[str]]:  # noqa: ANN001
    """({column: time text} of the incident, every time text of the file) as the file holds them."""
    path = tmp_path / f"incidents.{fmt}"
    path.write_bytes(data)
    rows: list[dict] = []
    if fmt == "geojson":
        rows = [f["properties"] for f in json.loads(data)["features"]]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    elif fmt == "gpkg":
        con = sqlite3.connect(path)
        try:
            cur = con.execute("SELECT id, occurred_at, state_since FROM incidents")
            rows = [dict(zip(("id", *TIME_COLUMNS), r)) for r in cur.fetchall()]
        finally:
            con.close()
    elif fmt == "shp.zip":
        zf = zipfile.ZipFile(io.BytesIO(data))
        names = dict(csv.reader(io.StringIO(zf.read("field_names.csv").decode("utf-8"))))
        with gdal_silent():
            got = pyogrio.read_dataframe(f"/vsizip/{path}/incidents.shp")
        rows = [{c: r[names[c]] for c in ("id", *TIME_COLUMNS)} for _, r in got.iterrows()]
    elif fmt == "kml":
        ns = {"k": "http://www.opengis.net/kml/2.2"}
        for pm in ET.fromstring(data).iter("{http://www.opengis.net/kml/2.2}Placemark"):
            rows.append({d.get("name"): d.findtext("k:value", namespaces=ns) for d in pm.iter(f"{{{ns['k']}}}Data")})
    mine = [r for r in rows if int(r["id"]) == incident]
    assert len(mine) == 1, fmt
    return {c: mine[0][c] for c in TIME_COLUMNS}, [r[c] for r in rows for c in TIME_COLUMNS if r[c] not in (None, "")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_api_exports_times_in_the_county_zone(client, tokens, incident, stored, shanghai, tmp_path, fmt) -> None:  # noqa: ANN001
    """Every format: the incident's times are Beijing wall-clock text with +08:00, to the microsecond, and read
    back as the instant stored; no time in the file is UTC text."""
    r = client.get(f"/export/incidents?format={fmt}", headers=tokens["dan"])
    assert r.status_code == 200, r.text
    mine, every = _times(fmt, r.content, tmp_path, incident)
    assert mine == {"occurred_at": shanghai, "state_since": shanghai}, (fmt, mine)
    assert all(datetime.fromisoformat(v) == stored for v in mine.values())
    assert len(every) > 100 and all(LOCAL_TEXT.match(v) for v in every), (fmt, [v for v in every
                                                                              if not LOCAL_TEXT.match(v)][:3])


@pytest.mark.parametrize("fmt", ["geojson", "gpkg"])
def test_gdal_reads_the_exported_times_as_the_same_instant(client, tokens, incident, stored, shanghai, tmp_path,
                                                            fmt) -> None:  # noqa: ANN001
    """As QGIS reads the files (GDAL, here through pyogrio), without a GDAL message: the GeoJSON time is a
    date/time of offset +08:00 (GDAL keeps milliseconds), the GeoPackage one the text itself, the exact instant."""
    path = tmp_path / f"incidents.{fmt}"
    path.write_bytes(client.get(f"/export/incidents?format={fmt}", headers=tokens["dan"]).content)
    with gdal_silent():
        got = pyogrio.read_dataframe(path)
    got = got[got["id"] == incident]
    value = got["occurred_at"].iloc[0]
    if fmt == "geojson":
        assert isinstance(value, pd.Timestamp) and value.utcoffset().total_seconds() == 8 * 3600, value
        assert value == pd.Timestamp(stored).floor("ms")
        assert (value.hour, value.minute) == (12, 34)
    else:
        assert value == shanghai and pd.Timestamp(value) == pd.Timestamp(stored)


def _cli(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The CLI on store ``url`` with ``env`` as the only zone settings (none inherited from the test's environment)."""
    base = {k: v for k, v in os.environ.items() if k not in ("GRIDPATROL_TIMEZONE", "GRIDPATROL_CONFIG")}
    return subprocess.run([sys.executable, "-m", "gridpatrol.scripts.cli", "--db", url, *args], capture_output=True,
                          text=True, timeout=300, env={**base, **(env or {})})


def test_cli_exports_in_the_configured_zone(app, loaded_store_url, incident, stored, shanghai, urumqi,
                                            tmp_path) -> None:  # noqa: ANN001
    """``gridpatrol export``: Beijing time by default; a county configured with Asia/Urumqi (the config file's
    ``timezone``, or GRIDPATROL_TIMEZONE) gets +06:00; ``--tz`` names the zone; an unknown zone is refused, no file."""
    out = tmp_path / "default.geojson"
    env: dict[str, str] = {}
    r = _cli(loaded_store_url, "export", "incidents", str(out), env=env)
    assert r.returncode == 0, r.stderr
    assert _times("geojson", out.read_bytes(), tmp_path, incident)[0]["occurred_at"] == shanghai
    cfg = tmp_path / "county.toml"
    cfg.write_text('timezone = "Asia/Urumqi"\n', encoding="utf-8")
    out = tmp_path / "urumqi.csv"
    r = _cli(loaded_store_url, "export", "incidents", str(out), env={**env, "GRIDPATROL_CONFIG": str(cfg)})
    assert r.returncode == 0, r.stderr
    mine, every = _times("csv", out.read_bytes(), tmp_path, incident)
    assert mine == {"occurred_at": urumqi, "state_since": urumqi}
    assert datetime.fromisoformat(mine["occurred_at"]) == stored and all(v.endswith("+06:00") for v in every)
    out = tmp_path / "env.gpkg"
    r = _cli(loaded_store_url, "export", "incidents", str(out), env={**env, "GRIDPATROL_TIMEZONE": "Asia/Urumqi"})
    assert r.returncode == 0, r.stderr
    assert _times("gpkg", out.read_bytes(), tmp_path, incident)[0]["occurred_at"] == urumqi
    out = tmp_path / "tz.kml"
    r = _cli(loaded_store_url, "export", "incidents", str(out), "--tz", "Asia/Urumqi", env=env)
    assert r.returncode == 0, r.stderr
    assert _times("kml", out.read_bytes(), tmp_path, incident)[0]["occurred_at"] == urumqi
    bad = _cli(loaded_store_url, "export", "incidents", str(tmp_path / "bad.geojson"), "--tz", "Asia/Nowhere", env=env)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "Asia/Nowhere" in bad.stdout + bad.stderr
    assert not (tmp_path / "bad.geojson").exists()


def test_api_of_a_county_in_another_zone(loaded_store_url, app, incident, urumqi, tmp_path) -> None:  # noqa: ANN001
    """A service configured with timezone = Asia/Urumqi exports +06:00 times (the same instant)."""
    from fastapi.testclient import TestClient
    from gridpatrol.api.app import create_app
    from gridpatrol.api.config import load_settings

    from tests.api.api_seed import PASSWORD
    from tests.api.login import bearer

    other = create_app(loaded_store_url, settings=load_settings(log_level="WARNING", timezone="Asia/Urumqi"))
    try:
        with TestClient(other, raise_server_exceptions=False) as c:
            head = bearer(c, "dan", PASSWORD)
            for fmt in ("geojson", "shp.zip"):
                r = c.get(f"/export/incidents?format={fmt}", headers=head)
                assert r.status_code == 200, r.text
                mine, every = _times(fmt, r.content, tmp_path, incident)
                assert mine["occurred_at"] == urumqi and all(v.endswith("+06:00") for v in every), fmt
    finally:
        other.state.store.dispose()


def test_qgis_project_copy_has_county_times(app, incident, urumqi, tmp_path) -> None:  # noqa: ANN001
    """``export-qgis``'s GeoPackage copy holds the same local text, read by GDAL without a message."""
    from gridpatrol.layers.qgis_project import export_qgis

    _, gpkg, _ = export_qgis(app.state.store, tmp_path, tz="Asia/Urumqi")
    with gdal_silent():
        got = pyogrio.read_dataframe(gpkg, layer="incidents")
    assert got.loc[got["id"] == incident, "occurred_at"].iloc[0] == urumqi


def test_cli_patrol_report_in_the_configured_zone(loaded_store_url, tmp_path) -> None:  # noqa: ANN001
    """``gridpatrol patrol-report`` (its XLSX/PDF 考核表 name the zone and show local times) reads the county's
    zone as ``export`` does: Asia/Urumqi from the config file without --tz; an unknown --tz is refused."""
    cfg = tmp_path / "county.toml"
    cfg.write_text('timezone = "Asia/Urumqi"\n', encoding="utf-8")
    env = {"GRIDPATROL_CONFIG": str(cfg)}
    r = _cli(loaded_store_url, "patrol-report", "--worker", "wu", "--from", "2026-12-01", "--to", "2026-12-07",
             "--json", env=env)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["tz"] == "Asia/Urumqi" and rep["generated_at"].endswith("+06:00"), (rep["tz"], rep["generated_at"])
    bad = _cli(loaded_store_url, "patrol-report", "--worker", "wu", "--from", "2026-12-01", "--to", "2026-12-07",
               "--json", "--tz", "Asia/Nowhere", env=env)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "Asia/Nowhere" in bad.stdout + bad.stderr
