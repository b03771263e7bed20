"""GET /export/{layer} writes the formats for other GIS tools over what the caller may see."""
from __future__ import annotations

import io
import zipfile

import pyogrio


def test_export_formats_over_the_api(client, tokens, tmp_path):  # noqa: ANN001
    r = client.get("/export/incidents?format=shp.zip&encoding=gbk", headers=tokens["dan"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert zf.read("incidents.cpg").decode().strip() == "GBK" and "field_names.csv" in zf.namelist()
    (tmp_path / "i.zip").write_bytes(r.content)
    assert len(pyogrio.read_dataframe(f"/vsizip/{tmp_path / 'i.zip'}/incidents.shp")) == 400
    csv = client.get("/export/grids?format=csv", headers=tokens["vic"])
    assert csv.status_code == 200 and csv.content.startswith(b"\xef\xbb\xbfWKT,") and b"worker" not in csv.content
    # Viewers may not see grid workers: the KML names the grid, not the worker.
    kml = client.get("/export/cameras?format=kml", headers=tokens["ada"]).text
    assert "网格员: " in kml
    viewer = client.get("/export/grids?format=kmz&crs=gcj02", headers=tokens["vic"])
    doc = zipfile.ZipFile(io.BytesIO(viewer.content)).read("doc.kml").decode("utf-8")
    assert "网格: 5101040010" in doc and "网格员" not in doc and ">wu<" not in doc and "GCJ-02" in doc
    assert client.get("/export/cameras?format=kml", headers=tokens["vic"]).status_code == 403
