"""The README's first quick-start command: `gridpatrol demo` builds the Chengdu demo and serves it."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.api.live_server import reserve_port
from tests.conftest import data_path
from tests.gdal_check import read_every_table

GRIDPATROL = str(Path(sys.executable).with_name("gridpatrol"))


def test_demo_builds_and_serves_chengdu(tmp_path):
    data = data_path("chengdu", "chengdu.osm").parent
    # The demo binds its port only after minutes of building: hold it meanwhile, so that no server
    # of a test running in parallel (pytest-xdist) is handed the same port.
    hold = reserve_port()
    port = hold.getsockname()[1]
    out = tmp_path / "demo"
    log = tmp_path / "demo.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([GRIDPATROL, "--lang", "en", "demo", "--data", str(data), "--out", str(out), "--port", str(port),
                                 "--incidents", "500"], stdout=fh, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 900
        while "serving at" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.time() < deadline, "demo did not start serving in 15 minutes"
            time.sleep(1)
        text = log.read_text()
        assert "check: valid" in text, text
        assert "one-time password" in text
        base = f"http://127.0.0.1:{port}"
        for _ in range(30):
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        hold.close()
        landing = httpx.get(base + "/", timeout=10).text
        assert "/maps/grids" in landing and "/docs" in landing and "OpenStreetMap" in landing
        grids = httpx.get(f"{base}/ogc/collections/grids/items?limit=1", timeout=30).json()
        assert grids["numberMatched"] > 150
        # Cameras are sensitive: the anonymous visitor of the demo does not see them.
        assert httpx.get(f"{base}/ogc/collections/cameras/items", timeout=30).status_code in (401, 403)
    finally:
        hold.close()
        proc.terminate()
        proc.wait(timeout=30)
    store = out / "chengdu-demo.gpkg"
    # GDAL (QGIS) reads every table the demo wrote without a warning (times as ISO 8601 text).
    tables = read_every_table(store)
    assert len(tables["routes"]) > 150 and len(tables["grid_plans"]) >= 1
    sheets = list(out.glob("route-*.pdf"))
    assert sheets
    sheet_text = subprocess.run(["pdftotext", str(sheets[0]), "-"], capture_output=True, text=True).stdout
    assert "巡查路线" in sheet_text and "OpenStreetMap" in sheet_text
    html = (out / "grids.html").read_text()
    assert "cdn." not in html and "OpenStreetMap" in html
