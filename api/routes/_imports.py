"""File imports over HTTP (cameras, incidents): read the upload, run the CLI's import function on it,
and report its problems with the CLI's messages (plus a per-row list); shared by the two routers."""
from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from gridpatrol.api.errors import error_body
from gridpatrol.gis.errors import GridPatrolError, InputError
from gridpatrol.layers.import_records import load_json_table
from gridpatrol.layers.importing import ImportResult

# File kinds the import commands read, by suffix; and what a raw body's Content-Type means.
SUFFIXES = (".csv", ".txt", ".tsv", ".json", ".geojson", ".gpkg")
CONTENT_TYPES = {"text/csv": ".csv", "application/csv": ".csv", "text/plain": ".csv",
                 "application/geo+json": ".json", "application/json": ".json",
                 "application/geopackage+sqlite3": ".gpkg"}
CRS_PATTERN = r"^(wgs84|gcj02|bd09|WGS84|GCJ02|BD09|EPSG:\d{4,6})$"
# Query parameters the import routes share, defined once.
FileCrsQuery = Annotated[str, Query(pattern=CRS_PATTERN, description="coordinates of the file: wgs84, gcj02, bd09 or EPSG:n")]
EncodingQuery = Annotated[str | None, Query(max_length=32, pattern=r"^[A-Za-z0-9_\-]+$",
                                            description="text encoding of a CSV (default UTF-8, else GB18030), e.g. big5")]
# "  row 3 (line 4): direction_deg 'abc' is not a number" — a problem line of layers.import_records.bad_rows_error
_ROW = re.compile(r"^\s+row (\d+)(?: \(line (\d+)\))?: (.+)$")
_FIELDS = ("code", "name", "project", "direction_deg", "fov_deg", "range_m", "height_m", "type", "status",
           "secrecy_level", "owner_unit", "category", "state", "occurred_at")

OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "description": "The file as the CLI reads it: a multipart upload (field `file`, its name's suffix "
                       "says the kind: .csv .json .geojson .gpkg), or the raw body: a GeoJSON FeatureCollection "
                       "or JSON array of records (application/json, application/geo+json) or CSV (text/csv).",
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                               "properties": {"file": {"type": "string", "format": "binary"}}}},
            "application/geo+json": {"schema": {"type": "object"}},
            "application/json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}},
            "text/csv": {"schema": {"type": "string"}},
        },
    },
}
# What every all-or-nothing file import route declares (``@router.post("/import", summary=…, **IMPORT_ROUTE)``).
IMPORT_ROUTE: dict[str, Any] = {
    "status_code": 201, "openapi_extra": OPENAPI_BODY,
    "responses": {422: {"description": "bad rows, listed; nothing imported"},
                  413: {"description": "body over max_body_bytes"}},
}


@dataclass
class Upload:
    """The bytes of an uploaded file, the suffix that says its kind, and how messages name it."""

    data: bytes
    suffix: str
    filename: str  # for the temporary file the import function reads
    label: str
    features: bool  # rows are GeoJSON features (row n = feature n, counting from 1)


def _safe_name(name: str) -> str:
    base = Path(name.replace("\\", "/")).name
    base = re.sub(r"[^\w.\-]+", "_", base)[:100].lstrip(".")
    return base or "upload"


async def read_upload(request: Request, *, suffixes: tuple[str, ...] = SUFFIXES,
                      content_types: dict[str, str] = CONTENT_TYPES) -> Upload:
    """The file of an import request: a multipart ``file`` field, or the raw body by Content-Type.

    ``suffixes``/``content_types``: the file kinds the import reads (default: cameras/incidents).

    InputError (422) for an empty body, an unknown file kind or JSON that is neither a GeoJSON
    FeatureCollection nor an array of records. Oversized bodies never get here (413, BodyLimit).
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=10)
        f = form.get("file")
        if f is None or isinstance(f, str):
            raise InputError("the multipart upload has no file field named 'file'",
                             hint="e.g. curl -F file=@cameras.csv …")
        name = _safe_name(f.filename or "upload")
        data = await f.read()
        suffix = Path(name).suffix.lower()
        if suffix not in suffixes:
            raise InputError(f"upload {name!r}: unknown file kind {suffix or '(no suffix)'}",
                             hint="name the file " + ", ".join(suffixes))
        label = f"upload {name}"
    elif ctype in content_types:
        data = await request.body()
        suffix = content_types[ctype]
        name = "body" + suffix
        label = "request body"
    else:
        raise InputError(f"cannot import a body of Content-Type {ctype or '(none)'!r}",
                         hint="send multipart/form-data with a file, application/json (GeoJSON or records) or text/csv")
    if not data.strip():
        raise InputError(f"{label} is empty")
    features = False
    if suffix in (".json", ".geojson"):
        features = load_json_table(data, label)[0] == "features"
    return Upload(data=data, suffix=suffix, filename=name, label=label, features=features)


def _relabel(exc: GridPatrolError, path: str, label: str) -> GridPatrolError:
    """The same error with the temporary file's path replaced by what the user sent."""
    hint = exc.hint
    if hint and "--skip-bad" in hint:  # the CLI's way out; an import over the API is all or nothing
        hint = "fix the rows and send the whole file again; nothing is imported while any row is bad"
    return type(exc)(exc.message.replace(path, label), where=(exc.where or "").replace(path, label) or None, hint=hint)


def problem_list(message: str, features: bool) -> list[dict[str, Any]]:
    """The rows listed in an import error message, one dict each (row, line or feature, field, problem)."""
    out = []
    for line in message.splitlines():
        m = _ROW.match(line)
        if not m:
            continue
        row, text = int(m.group(1)), m.group(3)
        item: dict[str, Any] = {"row": row}
        if m.group(2):
            item["line"] = int(m.group(2))
        if features:
            item["feature_index"] = row - 1  # 0-based index into "features"
        low = text.lower()
        if "coordinates" in low:
            item["field"] = "lon/lat"
        elif low.startswith(("device code", "code")):
            item["field"] = "code"
        elif low.startswith("time") or "occurred_at" in low:
            item["field"] = "occurred_at"
        else:
            item["field"] = next((f for f in _FIELDS if re.search(rf"\b{f}\b", low)), None)
        item["problem"] = text
        out.append(item)
    return out


async def run_import(request: Request, kind: str, upload: Upload, fn: Callable[[Path], ImportResult],
                     options: dict[str, Any]) -> JSONResponse:
    """Run ``fn`` (a layers import on a path) on ``upload``; 201 with counts, or 422 naming the bad rows.

    The import functions write everything in one transaction after validating every row, so a
    refused upload stores nothing. The audit entry (who and when come from the middleware) gets
    what was imported, from where, the SHA-256 and the counts or the number of bad rows.
    """
    sha = hashlib.sha256(upload.data).hexdigest()
    detail: dict[str, Any] = {"kind": kind, "source": upload.label, "bytes": len(upload.data), "sha256": sha,
                              "options": {k: v for k, v in options.items() if v is not None}}
    request.state.audit_detail = detail

    def work() -> ImportResult:
        with tempfile.TemporaryDirectory(prefix="gridpatrol-upload-") as tmp:
            path = Path(tmp) / upload.filename
            path.write_bytes(upload.data)
            try:
                return fn(path)
            except GridPatrolError as exc:
                raise _relabel(exc, str(path), upload.label) from None

    try:
        res = await run_in_threadpool(work)
    except InputError as exc:
        problems = problem_list(exc.message, upload.features)
        detail.update(outcome="refused", bad_rows=len({p["row"] for p in problems}), error=str(exc)[:500])
        return JSONResponse(error_body(422, str(exc), "InputError", problems=problems), 422)
    detail.update(outcome="imported", counts=res.counts)
    return JSONResponse({"kind": kind, "source": upload.label, "sha256": sha, "counts": res.counts,
                         "warnings": res.warnings, "dropped": res.dropped}, 201)
