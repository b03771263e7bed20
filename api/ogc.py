"""OGC API – Features (Part 1: Core, GeoJSON) over every layer the user may read, paged for QGIS."""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from datetime import date, datetime, timezone
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from gridpatrol.api.auth import (
    PUBLIC_LAYERS,
    hidden_fields,
    layer_filter,
    visible_layers,
)
from gridpatrol.api.deps import RowId, SettingsDep, StoreDep, UserDep, fast_path_user, pg_pool
from gridpatrol.gis.errors import InputError, NotFoundError
from gridpatrol.layers import features
from gridpatrol.layers.store import Store
from sqlalchemy import Table
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

router = APIRouter(prefix="/ogc", tags=["OGC API – Features"])

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    # Not conf/oas30: FastAPI describes the service in OpenAPI 3.1, which that class does not cover.
    # Part 2 (CRS by reference), with CRS84 as the one CRS offered: clients that speak Part 2
    # (GDAL's OAPIF driver, QGIS) then send crs=…CRS84 and get it confirmed in Content-Crs.
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
]
GEOJSON = "application/geo+json"
JSON_SCHEMA = "application/schema+json"
SCHEMA_REL = "http://www.opengis.net/def/rel/ogc/1.0/schema"  # OGC API – Features Part 5
_GEOMETRY_FORMAT = {"POINT": "geometry-point", "LINESTRING": "geometry-linestring", "POLYGON": "geometry-polygon",
                    "MULTIPOINT": "geometry-multipoint", "MULTILINESTRING": "geometry-multilinestring",
                    "MULTIPOLYGON": "geometry-multipolygon"}
TITLES = {
    "areas": "Administrative areas", "roads": "Street segments", "buildings": "Buildings with households",
    "barriers": "Rivers, railways and walls", "places": "Villages and hamlets (村, place nodes)",
    "place_areas": "Villages and hamlets mapped as areas (村)", "blocks": "Street blocks of grid plans", "grids": "Grids (网格) of all plans",
    "routes": "Patrol routes", "incidents": "Incidents (事件)", "cameras": "Cameras (天网/雪亮)", "imports": "Imports",
}
# Query parameters of the items request that are not property filters.
RESERVED = {"bbox", "limit", "offset", "datetime", "f", "bbox-crs", "crs", "cursor"}


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _json(body: Any, media: str = "application/json", headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, media_type=media, headers=headers)


def _check_crs(crs: str | None) -> None:
    """Only CRS84 (longitude, latitude on WGS-84) is served; EPSG:4326 by URI would mean
    latitude first, so it is refused rather than silently answered in the wrong axis order."""
    if crs is not None and crs.strip("<>") not in (CRS84, "CRS84"):
        raise InputError(f"crs {crs!r} is not supported", hint=f"features are served in {CRS84} only")


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """(min_lon, min_lat, max_lon, max_lat) from ``"minx,miny,maxx,maxy"``; InputError (400) otherwise.

    Six numbers (with heights) are accepted and the heights ignored. A bbox across the
    antimeridian (min_lon > max_lon) is refused with a hint to split it: no layer of a county
    crosses it, and the stores' index filters expect min ≤ max.
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (4, 6):
        raise InputError(f"bbox must be 4 numbers minlon,minlat,maxlon,maxlat; got {len(parts)} values: {text[:100]!r}")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"bbox must be 4 numbers minlon,minlat,maxlon,maxlat; got {text[:100]!r}") from None
    if not all(math.isfinite(n) for n in nums):
        raise InputError(f"bbox values must be finite numbers; got {text[:100]!r}")
    minx, miny, maxx, maxy = (nums[0], nums[1], nums[3], nums[4]) if len(nums) == 6 else nums
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90):
        raise InputError(
            f"bbox {text[:100]!r} is outside longitude −180…180 / latitude −90…90",
            hint="give WGS-84 longitude/latitude (CRS84), not projected coordinates",
        )
    if miny > maxy:
        raise InputError(f"bbox {text[:100]!r} is inverted: min latitude {miny} > max latitude {maxy}",
                         hint="order is minlon,minlat,maxlon,maxlat")
    if minx > maxx:
        raise InputError(
            f"bbox {text[:100]!r} has min longitude {minx} > max longitude {maxx} (inverted, or across the antimeridian)",
            hint="order is minlon,minlat,maxlon,maxlat; split a box across ±180° into two requests",
        )
    return minx, miny, maxx, maxy


def _parse_instant(text: str, where: str) -> datetime | None:
    if text in ("..", ""):
        return None
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{where} {text[:60]!r} is not an RFC 3339 date-time (e.g. 2018-05-01T00:00:00Z)") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def parse_datetime(text: str) -> tuple[datetime | None, datetime | None]:
    """(start, end) of an OGC ``datetime`` parameter: an instant, ``a/b``, ``../b`` or ``a/..``."""
    if "/" in text:
        a, _, b = text.partition("/")
        start, end = _parse_instant(a, "datetime start"), _parse_instant(b, "datetime end")
        if start and end and start > end:
            raise InputError(f"datetime interval {text[:100]!r} ends before it starts")
        return start, end
    t = _parse_instant(text, "datetime")
    if t is None:
        raise InputError("datetime '..' alone is not an interval; use a/.., ../b or a/b")
    return t, t


def _cursor_mac(key: str, layer: str, params: dict[str, str], payload: str) -> str:
    text = "\n".join([layer, payload, *(f"{k}={v}" for k, v in sorted(params.items()))])
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()[:16]


def make_cursor(key: str, layer: str, params: dict[str, str], last_id: int, matched: int | None) -> str:
    """The opaque ``cursor`` of a next link: the last id of the page and the number matched on the
    first page, signed together with the layer and the request's filters."""
    payload = f"{int(last_id)}.{'' if matched is None else int(matched)}"
    return f"{payload}.{_cursor_mac(key, layer, params, payload)}"


def read_cursor(key: str, layer: str, params: dict[str, str], text: str) -> tuple[int, int | None]:
    """(last id, number matched) of a cursor :func:`make_cursor` wrote for this layer and these
    filters; InputError (400) for anything else."""
    last, _, rest = text.partition(".")
    matched, _, mac = rest.partition(".")
    if not (last.isdigit() and (matched == "" or matched.isdigit()) and len(last) < 20 and len(matched) < 20
            and hmac.compare_digest(mac, _cursor_mac(key, layer, params, f"{last}.{matched}"))):
        raise InputError(f"cursor {text[:60]!r} is not one this server wrote for this request",
                         hint="follow the next link as given, or page with offset")
    return int(last), (int(matched) if matched else None)


def _layer_table(store: Store, principal, layer: str) -> Table:  # noqa: ANN001
    table = store.table(layer)  # NotFoundError for unknown names
    layer_filter(principal, layer, table)  # PermissionDenied when hidden from this role
    return table


def _view(store: Store, principal, layer: str) -> dict[str, Any]:  # noqa: ANN001
    """What ``principal`` may see of ``layer``: its row filter and hidden fields (403 if none of it)."""
    table = store.table(layer)  # NotFoundError for unknown names
    return {"role_where": layer_filter(principal, layer, table), "hidden": hidden_fields(principal, layer)}


def _collection(request: Request, store: Store, principal, layer: str) -> dict[str, Any]:  # noqa: ANN001
    """The collection document; its extent covers only the rows ``principal`` may see."""
    base = _base(request)
    ext = store.extent(layer, where=layer_filter(principal, layer, store.table(layer)))
    out: dict[str, Any] = {
        "id": layer,
        "title": TITLES.get(layer, layer),
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
        "links": [
            {"href": f"{base}/ogc/collections/{layer}", "rel": "self", "type": "application/json", "title": layer},
            {"href": f"{base}/ogc/collections/{layer}/items", "rel": "items", "type": GEOJSON, "title": f"{layer} items"},
            # The property types, so that clients (GDAL's OAPIF driver, which QGIS uses) do not
            # guess them from the first page (a households column read as integer loses 67.5).
            {"href": f"{base}/ogc/collections/{layer}/schema", "rel": "describedby", "type": JSON_SCHEMA,
             "title": f"{layer} feature schema"},
            {"href": f"{base}/ogc/collections/{layer}/schema", "rel": SCHEMA_REL, "type": JSON_SCHEMA,
             "title": f"{layer} feature schema"},
            # The same types as a GML application schema: GDAL (3.12) reads 64-bit integers (OSM
            # ids, node ids) as such only from xs:long, never from JSON Schema.
            {"href": f"{base}/ogc/collections/{layer}/schema.xsd", "rel": "describedby", "type": "application/xml",
             "title": f"{layer} feature schema (XML Schema)"},
        ],
    }
    if ext is not None:
        out["extent"] = {"spatial": {"bbox": [list(ext)], "crs": CRS84}}
    return out


@router.get("", summary="Landing page")
def landing(request: Request) -> JSONResponse:
    base = _base(request)
    return _json({
        "title": "gridpatrol OGC API – Features",
        "description": "Every gridpatrol layer you may read, as GeoJSON features in WGS-84 (CRS84).",
        "links": [
            {"href": f"{base}/ogc", "rel": "self", "type": "application/json", "title": "this document"},
            {"href": f"{base}/openapi.json", "rel": "service-desc", "type": "application/vnd.oai.openapi+json;version=3.0", "title": "API definition"},
            {"href": f"{base}/docs", "rel": "service-doc", "type": "text/html", "title": "API documentation"},
            {"href": f"{base}/ogc/conformance", "rel": "conformance", "type": "application/json", "title": "conformance classes"},
            {"href": f"{base}/ogc/collections", "rel": "data", "type": "application/json", "title": "collections"},
        ],
    })


@router.get("/conformance", summary="Conformance classes")
def conformance() -> JSONResponse:
    return _json({"conformsTo": CONFORMANCE})


@router.get("/collections", summary="Collections (the layers you may read)")
def collections(request: Request, store: StoreDep, principal: UserDep) -> JSONResponse:
    base = _base(request)
    layers = [name for name in visible_layers(principal)]
    return _json({
        "links": [{"href": f"{base}/ogc/collections", "rel": "self", "type": "application/json"}],
        "collections": [_collection(request, store, principal, name) for name in layers],
    })


@router.get("/collections/{layer}", summary="One collection")
def collection(layer: str, request: Request, store: StoreDep, principal: UserDep) -> JSONResponse:
    _layer_table(store, principal, layer)
    return _json(_collection(request, store, principal, layer))


def feature_schema(store: Store, principal, layer: str, base: str) -> dict[str, Any]:  # noqa: ANN001
    """The JSON Schema of a feature of ``layer`` (OGC API – Features Part 5 style): GeoJSON Feature
    with the layer's columns as typed properties."""
    table = _layer_table(store, principal, layer)
    props = features.properties_schema(table, hidden_fields(principal, layer))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base}/ogc/collections/{layer}/schema",
        "title": TITLES.get(layer, layer),
        "type": "object",
        "required": ["type", "geometry", "properties"],
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": {"type": "integer", "format": "int64", "x-ogc-role": "id"},
            "geometry": {"format": _GEOMETRY_FORMAT.get(features.geometry_type(table) or "", "geometry-any"),
                         "x-ogc-role": "primary-geometry"},
            "properties": {"type": "object", "properties": props},
        },
    }


@router.get("/collections/{layer}/schema", summary="Feature schema of a collection (JSON Schema)")
def schema(layer: str, request: Request, store: StoreDep, principal: UserDep) -> JSONResponse:
    """The types of the collection's properties, so that GIS clients read 67.5 households as a
    number rather than guess an integer from the first page."""
    return _json(feature_schema(store, principal, layer, _base(request)), JSON_SCHEMA)


@router.get("/collections/{layer}/schema.xsd", summary="Feature schema of a collection (XML Schema, GML 3.2)")
def schema_xsd(layer: str, store: StoreDep, principal: UserDep) -> Response:
    """The property types as XML Schema, which GDAL's OAPIF driver prefers (64-bit ids as xs:long)."""
    table = _layer_table(store, principal, layer)
    return Response(features.properties_xsd(table, layer, hidden_fields(principal, layer)),
                    media_type="application/xml")


def query_items(store: Store, principal, layer: str, **query: Any) -> tuple[list[dict[str, Any]], int]:  # noqa: ANN001
    """GeoJSON features of ``layer`` that ``principal`` may see and the number matched (see
    :func:`layers.features.query_items` for ``bbox``, ``time_range``, ``equals``, ``limit``, ``offset``)."""
    return features.query_items(store, layer, **_view(store, principal, layer), **query)


@router.get("/collections/{layer}/items", summary="Features of a collection (GeoJSON, paged)")
async def items(
    layer: str,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    principal: UserDep,
    bbox: Annotated[str | None, Query(max_length=400, description="minlon,minlat,maxlon,maxlat (CRS84)")] = None,
    limit: Annotated[int | None, Query(ge=1, description="page size; values above the server maximum are capped")] = None,
    offset: Annotated[int, Query(ge=0, le=2**53)] = 0,
    datetime_: Annotated[str | None, Query(alias="datetime", max_length=100)] = None,
    f: Annotated[str | None, Query(pattern="^(json|geojson)$")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", max_length=200)] = None,
    crs: Annotated[str | None, Query(max_length=200, description=f"output CRS; only {CRS84}")] = None,
    cursor: Annotated[str | None, Query(max_length=80, description="where the next page starts (from a next link)")] = None,
) -> Response:
    """Features of ``layer`` as a GeoJSON FeatureCollection with ``numberMatched``,
    ``numberReturned`` and ``next``/``prev`` links. Other query parameters filter properties by
    equality (e.g. ``state=reported``, ``plan_id=3``)."""
    return await items_response(request, store, settings, principal, layer, bbox=bbox, limit=limit, offset=offset,
                                datetime_=datetime_, bbox_crs=bbox_crs, crs=crs, cursor=cursor)


async def items_response(request: HTTPConnection, store: Store, settings: Any, principal: Any, layer: str, *,  # noqa: ANN401
                         bbox: str | None = None, limit: int | None = None, offset: int = 0,
                         datetime_: str | None = None, bbox_crs: str | None = None, crs: str | None = None,
                         cursor: str | None = None) -> Response:
    """The items page of :func:`items` from its validated parameters: the route and the fast path
    (:class:`ItemsFastPath`) answer with this one function."""
    if bbox_crs is not None and bbox_crs not in (CRS84, "CRS84", "EPSG:4326"):
        raise InputError(f"bbox-crs {bbox_crs!r} is not supported", hint=f"use {CRS84}")
    _check_crs(crs)
    # The OGC standard: a limit above the maximum is not an error; the maximum is used instead.
    page = min(limit or settings.ogc_default_limit, settings.ogc_max_limit)
    box = parse_bbox(bbox) if bbox is not None else None
    trange = parse_datetime(datetime_) if datetime_ is not None else None
    equals = {k: v for k, v in request.query_params.items() if k not in RESERVED}
    for k, v in equals.items():
        if len(v) > 200:
            raise InputError(f"query parameter {k!r} is longer than 200 characters")
    # Filters the cursor is bound to: every parameter but the paging ones.
    params = {k: v for k, v in request.query_params.items() if k not in ("limit", "offset", "cursor")}
    after = matched = None
    if cursor is not None:
        after, matched = read_cursor(settings.secret_key, layer, params, cursor)
    query = {**_view(store, principal, layer), "bbox": box, "time_range": trange, "equals": equals, "limit": page,
             "offset": offset, "after": after, "count": cursor is None}
    pool = pg_pool(request.app)
    if pool is not None:
        # PostGIS: one prepared statement on the event loop's pool (no worker thread, one round trip).
        sql, values = features.page_statement(store, layer, **query)
        feats, counted, returned, last = features.page_result(await pool.fetchone(sql, values), page)
    else:
        feats, counted, returned, last = await run_in_threadpool(lambda: features.items_page(store, layer, **query))
    if cursor is None:
        matched = counted
    base = f"{_base(request)}/ogc/collections/{layer}/items"

    # The filters first, then the paging parameters: encoded once for every link.
    filters = urlencode(params)

    def link(rel: str, off: int, cur: str | None = None) -> dict[str, str]:
        paging = urlencode({"limit": page, "offset": off, **({"cursor": cur} if cur else {})})
        return {"href": f"{base}?{filters}&{paging}" if filters else f"{base}?{paging}", "rel": rel, "type": GEOJSON}

    links = [link("self", offset, cursor)]
    if last is not None:
        # Keyset paging: the next page starts after this page's last id (no rows skipped, no
        # count); the offset says where it is and serves clients that page by offset.
        links.append(link("next", offset + page, make_cursor(settings.secret_key, layer, params, last, matched)))
    if offset > 0:
        links.append(link("prev", max(0, offset - page)))
    links.append({"href": f"{_base(request)}/ogc/collections/{layer}", "rel": "collection", "type": "application/json"})
    head = json.dumps({
        "type": "FeatureCollection",
        # Optional in OGC API – Features: left out when more than EXACT_COUNT_MAX rows match.
        **({} if matched is None else {"numberMatched": matched}),
        "numberReturned": returned,
        "timeStamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "links": links,
    }, ensure_ascii=False)
    # The features array goes in as it is (JSON text), not parsed and encoded again.
    return Response(f'{head[:-1]}, "features": {feats}}}'.encode("utf-8"), media_type=GEOJSON,
                    headers={"Content-Crs": f"<{CRS84}>"})


@router.get("/collections/{layer}/items/{feature_id}", summary="One feature")
def item(layer: str, feature_id: RowId, request: Request, store: StoreDep, principal: UserDep,
         crs: Annotated[str | None, Query(max_length=200, description=f"output CRS; only {CRS84}")] = None) -> JSONResponse:
    _check_crs(crs)
    feature = features.get_item(store, layer, feature_id, **_view(store, principal, layer))
    if feature is None:
        raise NotFoundError(f"no feature {feature_id} in {layer!r}")
    return _json({
        **feature,
        "links": [{"href": f"{_base(request)}/ogc/collections/{layer}/items/{feature_id}", "rel": "self", "type": GEOJSON},
                  {"href": f"{_base(request)}/ogc/collections/{layer}", "rel": "collection", "type": "application/json"}],
    }, GEOJSON)


# ---------------------------------------------------------------------------------------------
# The hot path of GIS clients. A page of items costs FastAPI's routing, dependency solving and
# parameter validation about as much CPU as our Python part of the answer. This ASGI layer answers
# the plain page request (GET /ogc/collections/{layer}/items with only bbox, limit, offset and
# cursor, each at most once, in the canonical form FastAPI reads the same way; a token this
# process has already verified; PostGIS) itself, with the same user resolution
# (api.deps.fast_path_user) and the same answer (items_response) as the route. Anything else —
# other or repeated parameters, odd numbers, an unknown or unverified token, GeoPackage, any error
# — goes on to the route unchanged, which validates, authenticates and reports.

_ITEMS_PATH = re.compile(r"/ogc/collections/([^/]+)/items")
# ASCII digits without sign, blanks or leading zeros: what pydantic reads as the same integer.
_POSITIVE = re.compile(r"[1-9][0-9]{0,8}")
_NATURAL = re.compile(r"0|[1-9][0-9]{0,15}")
# The route's limits (Query(max_length=…) above).
_FAST_TEXT = {"bbox": 400, "cursor": 80}


def fast_items_args(query: bytes) -> dict[str, Any] | None:
    """bbox, limit, offset, cursor of a plain items query string as the route receives them, or
    None if the route should see it."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key in out:
            return None
        if key == "limit" and _POSITIVE.fullmatch(value):
            out[key] = int(value)
        elif key == "offset" and _NATURAL.fullmatch(value) and int(value) <= 2**53:
            out[key] = int(value)
        elif key in _FAST_TEXT and len(value) <= _FAST_TEXT[key]:
            out[key] = value
        else:
            return None
    return out


class ItemsFastPath:
    """ASGI layer in front of the app: answers plain item pages on PostGIS (see above)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            match = _ITEMS_PATH.fullmatch(scope["path"])
            if match is not None:
                response = await self._answer(scope, match.group(1))
                if response is not None:
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, layer: str) -> Response | None:
        args = fast_items_args(scope.get("query_string", b""))
        principal = fast_path_user(scope, args)
        if principal is None:
            return None
        store, settings = scope["app"].state.store, scope["app"].state.settings
        try:
            response = await items_response(HTTPConnection(scope), store, settings, principal, layer, **args)
        except Exception:  # noqa: BLE001  nothing sent yet: the route answers (and reports) instead
            return None
        scope.setdefault("state", {})["principal"] = principal  # for the access log
        return response

__all__ = ["router", "ItemsFastPath", "parse_bbox", "parse_datetime", "query_items", "PUBLIC_LAYERS"]
