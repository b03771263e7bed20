"""Read an OSM extract (.osm, .osm.bz2, .osm.pbf) into street, building, barrier and camera layers."""
from __future__ import annotations

import hashlib
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import shapely
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.footprints import merge_duplicate_footprints
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

WGS84 = "EPSG:4326"

# Highway values that are streets a worker can walk or drive along. Left out: things that are
# not (yet) streets (proposed, construction, abandoned, razed), areas and stops mapped with a
# highway tag (platform, bus_stop, rest_area, services, elevator) and race tracks.
NOT_STREETS = frozenset(
    {"proposed", "construction", "abandoned", "disused", "razed", "platform", "bus_stop",
     "rest_area", "services", "elevator", "raceway", "emergency_bay", "no", "planned"}
)
# Households live in these building types; building=yes counts as residential only inside
# landuse=residential (most Chinese OSM buildings are tagged just "yes").
RESIDENTIAL_BUILDINGS = frozenset(
    {"residential", "apartments", "house", "detached", "semidetached_house", "terrace",
     "dormitory", "bungalow", "farm", "static_caravan", "cabin", "hut"}
)
LOW_RISE = {"house": 2.0, "detached": 2.0, "semidetached_house": 2.0, "terrace": 3.0,
            "bungalow": 1.0, "farm": 2.0, "hut": 1.0, "cabin": 1.0, "static_caravan": 1.0}
WATERWAY_LINES = frozenset({"river", "canal", "stream", "drain", "ditch"})
RAILWAYS = frozenset({"rail", "light_rail", "narrow_gauge", "tram", "monorail", "preserved"})
WALLS = frozenset({"wall", "city_wall"})


@dataclass
class OsmOptions:
    """How households are estimated (documented defaults; every value is configurable).

    - ``m2_per_household``: gross floor area per household. China's 2020 census: 36.5 m² of
      urban housing per person × 2.62 persons per household ≈ 96 m²; rounded to 100.
    - ``default_levels``: levels of a residential building without ``building:levels``
      (the common 6-storey walk-up of Chinese compounds); low-rise types use ``LOW_RISE``.
    - ``landuse_households_per_ha``: for ``landuse=residential`` without mapped buildings.
    - ``persons_per_household``: for the population estimate.
    """

    m2_per_household: float = 100.0
    default_levels: float = 6.0
    landuse_households_per_ha: float = 150.0
    persons_per_household: float = 2.62


@dataclass
class OsmData:
    """The layers read from one extract, all GeoDataFrames in EPSG:4326."""

    roads: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    barriers: gpd.GeoDataFrame
    cameras: gpd.GeoDataFrame
    admin: gpd.GeoDataFrame
    admin_lines: gpd.GeoDataFrame
    bounds: Polygon
    bounds_declared: bool
    counts: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, Any] = field(default_factory=dict)
    places: gpd.GeoDataFrame | None = None  # named place=* nodes (osm_id, place, name): rural settlement names
    # named place=* areas and named landuse=residential (osm_type, osm_id, place, name): rural names
    place_areas: gpd.GeoDataFrame | None = None

    @property
    def metric_crs(self):  # noqa: ANN201
        """The local metric CRS (UTM zone) of the extract."""
        c = self.bounds.centroid
        return local_metric_crs(c.x, c.y)


def is_street(tags: Any) -> bool:
    """True for OSM tags of a street segment (see ``NOT_STREETS``); area highways excluded."""
    hw = tags.get("highway")
    return bool(hw) and hw not in NOT_STREETS and tags.get("area") != "yes"


def barrier_kind(tags: Any) -> tuple[str, str] | None:
    """(kind, subkind) of a barrier line (river, canal, railway, wall …), or None."""
    ww = tags.get("waterway")
    if ww in WATERWAY_LINES and tags.get("tunnel") not in ("yes", "culvert"):
        return ("river" if ww == "river" else ww), ww
    rw = tags.get("railway")
    if rw in RAILWAYS and tags.get("tunnel") != "yes":
        return "railway", rw
    br = tags.get("barrier")
    if br in WALLS:
        return "wall", br
    return None


def is_water_area(tags: Any) -> bool:
    """True for water surfaces (natural=water, waterway=riverbank, landuse=reservoir/basin)."""
    return (
        tags.get("natural") == "water"
        or tags.get("waterway") == "riverbank"
        or tags.get("landuse") in ("reservoir", "basin")
    )


def is_building(tags: Any) -> bool:
    """True for building footprints (``building=*`` except ``no``; a ``building:part`` is not one)."""
    b = tags.get("building")
    return bool(b) and b != "no" and not is_building_part(tags)


def is_building_part(tags: Any) -> bool:
    """True for a part of a building (``building:part=*`` except ``no``): its outline lies inside one."""
    p = tags.get("building:part")
    return bool(p) and p != "no"


def _oneway(tags: Any) -> tuple[bool, bool]:
    """(oneway, reversed) from oneway/junction/highway tags."""
    ow = (tags.get("oneway") or "").lower()
    if ow in ("-1", "reverse"):
        return True, True
    if ow in ("yes", "true", "1"):
        return True, False
    if ow in ("no", "false", "0", "reversible", "alternating"):
        return False, False
    if tags.get("junction") in ("roundabout", "circular") or tags.get("highway") in ("motorway",):
        return True, False
    return False, False


_CJK = re.compile(r"[\u4e00-\u9fff]")
_NUM = re.compile(r"[-+]?\d+(?:\.\d+)?")


def _num(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    m = _NUM.search(value.replace(",", "."))
    return float(m.group()) if m else None


def _direction(value: str | None) -> float | None:
    """``camera:direction`` in degrees from north: numbers or cardinal letters (N, NE, …)."""
    if not isinstance(value, str) or not value:
        return None
    card = {"N": 0, "NNE": 22.5, "NE": 45, "ENE": 67.5, "E": 90, "ESE": 112.5, "SE": 135,
            "SSE": 157.5, "S": 180, "SSW": 202.5, "SW": 225, "WSW": 247.5, "W": 270,
            "WNW": 292.5, "NW": 315, "NNW": 337.5}
    v = value.strip().upper()
    if v in card:
        return float(card[v])
    n = _num(v)
    return None if n is None else n % 360.0


def _names(tags: Any) -> tuple[str | None, str | None, str | None]:
    name = tags.get("name")
    zh = tags.get("name:zh") or tags.get("name:zh-Hans") or tags.get("name:zh-CN")
    if zh is None and name and _CJK.search(name):
        zh = name
    return name, zh, tags.get("name:en")


# place=* values that name a settlement (rural grids name theirs after the nearest one)
PLACE_KINDS = frozenset({"town", "village", "hamlet", "isolated_dwelling", "neighbourhood", "locality"})


class _Collector:
    """One pass over the file: keeps what each layer needs, counts what it drops."""

    def __init__(self) -> None:
        self.highways: list[tuple[int, dict, list[int], list[tuple[float, float] | None]]] = []
        self.barrier_ways: list[tuple[int, tuple[str, str], str | None, list]] = []
        self.admin_ways: list[tuple[int, dict, list]] = []
        self.cameras: list[dict] = []
        self.places: list[dict] = []
        self.place_areas: list[dict] = []
        self.buildings: list[dict] = []
        self.water: list[dict] = []
        self.residential: list[dict] = []
        self.admin_areas: list[dict] = []
        self.admin_member_ways: set[int] = set()
        self.node_bbox = [math.inf, math.inf, -math.inf, -math.inf]
        self.dropped: dict[str, list[int]] = defaultdict(list)
        self.building_parts = 0  # building:part outlines seen (not buildings: they lie inside one)

    def node(self, n) -> None:  # noqa: ANN001
        loc = n.location
        if loc.valid():
            b = self.node_bbox
            b[0] = min(b[0], loc.lon)
            b[1] = min(b[1], loc.lat)
            b[2] = max(b[2], loc.lon)
            b[3] = max(b[3], loc.lat)
        if n.tags.get("place") in PLACE_KINDS and loc.valid():
            name, zh, _ = _names(n.tags)
            if zh or name:
                self.places.append({"osm_id": n.id, "place": n.tags.get("place"), "name": zh or name,
                                    "geometry": Point(loc.lon, loc.lat)})
        if n.tags.get("man_made") == "surveillance" and loc.valid():
            t = n.tags
            name, _, _ = _names(t)
            ctype = (t.get("camera:type") or "").lower()
            self.cameras.append({
                "osm_id": n.id,
                "code": f"osm:{n.id}",
                "name": name,
                "azimuth_deg": _direction(t.get("camera:direction") or t.get("direction")),
                "fov_deg": 360.0 if ctype in ("dome", "panning") else None,
                "camera_type": {"dome": "dome", "panning": "ptz"}.get(ctype, "fixed"),
                "height_m": _num(t.get("height")),
                "surveillance": t.get("surveillance"),
                "surveillance_type": t.get("surveillance:type"),
                "geometry": Point(loc.lon, loc.lat),
            })

    def way(self, w) -> None:  # noqa: ANN001
        tags = w.tags
        refs = [nd.ref for nd in w.nodes]
        locs = [(nd.location.lon, nd.location.lat) if nd.location.valid() else None for nd in w.nodes]
        if is_street(tags):
            self.highways.append((w.id, dict(tags), refs, locs))
        kind = barrier_kind(tags)
        if kind is not None:
            self.barrier_ways.append((w.id, kind, tags.get("name"), locs))
        if tags.get("boundary") == "administrative" or w.id in self.admin_member_ways:
            self.admin_ways.append((w.id, dict(tags), locs))

    def area(self, a, wkb: Callable[[Any], str]) -> None:  # noqa: ANN001
        tags = a.tags
        want_building = is_building(tags)
        if is_building_part(tags):
            self.building_parts += 1
        want_water = is_water_area(tags)
        want_res = tags.get("landuse") == "residential"
        want_admin = tags.get("boundary") == "administrative" and not a.from_way()
        want_place = tags.get("place") in PLACE_KINDS
        if not (want_building or want_water or want_res or want_admin or want_place):
            return
        try:
            geom = shapely.from_wkb(bytes.fromhex(wkb(a)))
        except RuntimeError:
            # Incomplete rings: a clipped extract. Count it; it is reported, not imported.
            self.dropped["incomplete_areas"].append(a.orig_id())
            return
        osm_type = "way" if a.from_way() else "relation"
        name, zh, _ = _names(tags)
        rec = {"osm_type": osm_type, "osm_id": a.orig_id(), "name": name, "geometry": geom}
        if (want_place or want_res) and (zh or name):
            # a village mapped as an area names the settlements inside it (rural grids)
            self.place_areas.append(dict(rec, name=zh or name, geometry=shapely.MultiPolygon(
                [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon"]),
                place=tags["place"] if want_place else "landuse=residential"))
        if want_building:
            rec_b = dict(rec, building=tags.get("building"), levels_tag=tags.get("building:levels"),
                         flats=tags.get("building:flats"))
            self.buildings.append(rec_b)
        if want_water:
            self.water.append(dict(rec, subkind=tags.get("water") or tags.get("natural") or tags.get("landuse")))
        if want_res:
            self.residential.append(rec)
        if want_admin:
            self.admin_areas.append(dict(rec, admin_level=tags.get("admin_level"),
                                         code=tags.get("ref") or tags.get("gb:code")))


def _runs(refs: list[int], locs: list) -> list[tuple[list[int], list[tuple[float, float]]]]:
    """Consecutive runs of at least two nodes with known locations."""
    out, cur_r, cur_l = [], [], []
    for r, l in zip(refs, locs):
        if l is None:
            if len(cur_r) >= 2:
                out.append((cur_r, cur_l))
            cur_r, cur_l = [], []
        else:
            cur_r.append(r)
            cur_l.append(l)
    if len(cur_r) >= 2:
        out.append((cur_r, cur_l))
    return out


def _read(path: Path, collector: _Collector) -> None:
    factory = osmium.geom.WKBFactory()
    # Admin relations' member ways are boundary lines even when untagged; find them first is
    # not possible in one pass, so a tiny pre-pass over relations collects their member ids.
    for rel in osmium.FileProcessor(str(path), osmium.osm.RELATION):
        if rel.tags.get("boundary") == "administrative":
            for m in rel.members:
                if m.type == "w":
                    collector.admin_member_ways.add(m.ref)
    fp = osmium.FileProcessor(str(path)).with_locations().with_areas()
    for obj in fp:
        t = obj.type_str()
        if t == "n":
            collector.node(obj)
        elif t == "w":
            collector.way(obj)
        elif t == "a":
            collector.area(obj, factory.create_multipolygon)


def _header_bounds(path: Path) -> Polygon | None:
    reader = osmium.io.Reader(str(path), osmium.osm.osm_entity_bits.NOTHING)
    try:
        b = reader.header().box()
    finally:
        reader.close()
    if not b.valid():
        return None
    return box(b.bottom_left.lon, b.bottom_left.lat, b.top_right.lon, b.top_right.lat)


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise InputError(f"file not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not an OSM file")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path} is empty", hint="download the extract again")
    name = path.name.lower()
    if not (name.endswith(".osm") or name.endswith(".osm.bz2") or name.endswith(".osm.pbf")
            or name.endswith(".pbf") or name.endswith(".osm.gz")):
        raise InputError(f"{path}: unknown OSM file type", hint="use .osm, .osm.bz2 or .osm.pbf")
    with open(path, "rb") as fh:
        head = fh.read(512)
    if name.endswith(".osm"):
        text_head = head.decode("utf-8", "replace").lower()
        if "<html" in text_head or "<!doctype html" in text_head:
            raise InputError(
                f"{path} is an HTML page, not OSM XML",
                hint="the download probably failed or returned an error page; fetch the extract again",
            )
        if "<osm" not in text_head and "<?xml" not in text_head:
            raise InputError(f"{path} is not OSM XML (no <osm> element at the start)")


def read_osm(
    path: str | Path,
    *,
    boundary: Polygon | MultiPolygon | None = None,
    options: OsmOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> OsmData:
    """Read an OSM extract into layers (EPSG:4326), clipped to ``boundary`` if given.

    Streets are split into segments at every node shared with another street (``u``/``v`` are
    OSM node ids), one-way ways tagged ``-1`` are reversed; ways cut by the extract's edge keep
    their complete runs (reported in ``dropped``); buildings get households estimated from
    footprint × levels (see ``OsmOptions``). Raises InputError with the file name for broken,
    empty or non-OSM files and for a boundary that misses the extract.
    """
    path = Path(path)
    opts = options or OsmOptions()
    _check_readable(path)
    col = _Collector()
    say = progress or (lambda _msg: None)
    say("reading")
    try:
        _read(path, col)
    except (RuntimeError, osmium.InvalidLocationError) as exc:  # the latter: a node at lat="nan" and the like
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot read OSM data: {msg}",
                         hint="the file is truncated, edited by hand or not an OSM file; fetch it again") from None
    if not col.highways and not col.buildings and math.isinf(col.node_bbox[0]):
        raise InputError(f"{path} contains no OSM nodes", hint="is the extract empty or cut to nothing?")

    declared = _header_bounds(path)
    bounds = declared if declared is not None else box(*col.node_bbox)
    if boundary is not None:
        boundary = shapely.make_valid(boundary)
        if not boundary.intersects(bounds):
            bb = ", ".join(f"{v:.4f}" for v in boundary.bounds)
            eb = ", ".join(f"{v:.4f}" for v in bounds.bounds)
            raise InputError(
                f"the boundary ({bb}) does not intersect the extract {path.name} ({eb})",
                hint="wrong file or wrong --boundary-crs?",
            )
    metric = local_metric_crs(bounds.centroid.x, bounds.centroid.y)
    say("building layers")
    roads = _roads(col, metric)
    barriers = _barriers(col)
    residential = gpd.GeoDataFrame(col.residential or None, geometry=[r["geometry"] for r in col.residential] if col.residential else [], crs=WGS84)
    buildings = _buildings(col, residential, metric, opts)
    buildings, merged = merge_duplicate_footprints(buildings, metric)
    cameras = gpd.GeoDataFrame(col.cameras, geometry="geometry", crs=WGS84) if col.cameras else _empty(
        ["osm_id", "code", "name", "azimuth_deg", "fov_deg", "camera_type", "height_m"])
    admin = gpd.GeoDataFrame(col.admin_areas, geometry="geometry", crs=WGS84) if col.admin_areas else _empty(
        ["osm_type", "osm_id", "name", "admin_level", "code"])
    admin_lines = _admin_lines(col)
    places = gpd.GeoDataFrame(col.places, geometry="geometry", crs=WGS84) if col.places else _empty(
        ["osm_id", "place", "name"])
    place_areas = gpd.GeoDataFrame(col.place_areas, geometry="geometry", crs=WGS84) if col.place_areas else _empty(
        ["osm_type", "osm_id", "place", "name"])

    if boundary is not None:
        say("clipping to the boundary")
        roads = _clip_roads(roads, boundary, metric)
        barriers = _clip_lines(barriers, boundary)
        admin_lines = _clip_lines(admin_lines, boundary)
        if len(places):
            places = places[shapely.contains_xy(boundary, places.geometry.x.to_numpy(), places.geometry.y.to_numpy())]
        if len(place_areas):
            place_areas = place_areas[place_areas.intersects(boundary)]
        inside = shapely.contains_xy(boundary, *_rep_xy(buildings)) if len(buildings) else np.zeros(0, bool)
        buildings = buildings[inside].copy()
        cameras = cameras[cameras.within(boundary)].copy() if len(cameras) else cameras
        area = boundary.intersection(bounds)
    else:
        area = bounds

    dropped = {
        "ways_cut_by_extract_edge": sorted(set(col.dropped["truncated_ways"])),
        "ways_without_any_complete_segment": sorted(set(col.dropped["empty_ways"])),
        "incomplete_areas": sorted(set(col.dropped["incomplete_areas"])),
    }
    counts = {
        "street_ways": int(roads["osm_id"].nunique()) if len(roads) else 0,
        "road_segments": len(roads),
        "buildings": int((buildings["estimate_method"] == "footprint").sum()) if len(buildings) else 0,
        "landuse_estimates": int((buildings["estimate_method"] == "landuse").sum()) if len(buildings) else 0,
        "barriers": len(barriers),
        "cameras": len(cameras),
        "admin_areas": len(admin),
        "households": float(buildings["households"].sum()) if len(buildings) else 0.0,
        # the same building mapped twice (≥ 90 % overlap) counts once; parts are not buildings
        "duplicate_buildings_merged": merged,
        "building_parts_skipped": col.building_parts,
    }
    if not isinstance(area, (Polygon, MultiPolygon)):
        # A boundary meeting the extract along an edge also yields lines: keep the polygons.
        area = shapely.MultiPolygon([g for g in shapely.get_parts(area) if isinstance(g, Polygon)]) or bounds
    return OsmData(
        roads=roads, buildings=buildings, barriers=barriers, cameras=cameras, admin=admin,
        admin_lines=admin_lines, bounds=area, bounds_declared=declared is not None, counts=counts,
        dropped=dropped, places=places, place_areas=place_areas,
    )


def _empty(columns: list[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=WGS84)


def _rep_xy(gdf: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    pts = shapely.point_on_surface(gdf.geometry.values)
    return shapely.get_x(pts), shapely.get_y(pts)


def _roads(col: _Collector, metric) -> gpd.GeoDataFrame:  # noqa: ANN001
    # A node splits streets where it is used by more than one street way, or twice by one.
    use = Counter()
    for _wid, _tags, refs, locs in col.highways:
        for r, l in zip(refs, locs):
            if l is not None:
                use[r] += 1
    recs = []
    for wid, tags, refs, locs in col.highways:
        runs = _runs(refs, locs)
        if len(runs) != 1 or len(runs[0][0]) != len(refs):
            col.dropped["truncated_ways"].append(wid)
        if not runs:
            col.dropped["empty_ways"].append(wid)
            continue
        oneway, rev = _oneway(tags)
        name, zh, en = _names(tags)
        seq = 0
        for rrefs, rlocs in runs:
            if rev:
                rrefs, rlocs = rrefs[::-1], rlocs[::-1]
            start = 0
            for i in range(1, len(rrefs)):
                if i == len(rrefs) - 1 or use[rrefs[i]] > 1:
                    coords = rlocs[start : i + 1]
                    if len(set(coords)) >= 2:
                        recs.append((wid, seq, rrefs[start], rrefs[i], name, zh, en,
                                     tags.get("highway"), oneway, tags.get("access"), tags.get("foot"),
                                     tags.get("motor_vehicle"), coords))
                        seq += 1
                    start = i
    # access/foot/motor_vehicle: who may use the way (gis.streets leaves out what a mode may not).
    cols = ["osm_id", "seq", "u", "v", "name", "name_zh", "name_en", "highway", "oneway", "access", "foot",
            "motor_vehicle"]
    if not recs:
        g = _empty(cols + ["length_m"])
        return g
    df = pd.DataFrame([r[:-1] for r in recs], columns=cols)
    gdf = gpd.GeoDataFrame(df, geometry=[LineString(r[-1]) for r in recs], crs=WGS84)
    gdf["length_m"] = gdf.to_crs(metric).length.to_numpy()
    return gdf


def _barriers(col: _Collector) -> gpd.GeoDataFrame:
    recs = []
    for wid, (kind, sub), name, locs in col.barrier_ways:
        pieces = [l for _r, l in _runs([0] * len(locs), locs)]
        if not pieces:
            continue
        if len(pieces) != 1 or len(pieces[0]) != len(locs):
            col.dropped["truncated_ways"].append(wid)
        geom = LineString(pieces[0]) if len(pieces) == 1 else shapely.MultiLineString(pieces)
        recs.append({"osm_type": "way", "osm_id": wid, "kind": kind, "subkind": sub, "name": name, "geometry": geom})
    for w in col.water:
        recs.append({"osm_type": w["osm_type"] + "_area", "osm_id": w["osm_id"], "kind": "water",
                     "subkind": w["subkind"], "name": w["name"], "geometry": w["geometry"]})
    if not recs:
        return _empty(["osm_type", "osm_id", "kind", "subkind", "name"])
    return gpd.GeoDataFrame(recs, geometry="geometry", crs=WGS84)


def _admin_lines(col: _Collector) -> gpd.GeoDataFrame:
    recs = []
    for wid, tags, locs in col.admin_ways:
        pieces = [l for _r, l in _runs([0] * len(locs), locs)]
        if not pieces:
            continue
        geom = LineString(pieces[0]) if len(pieces) == 1 else shapely.MultiLineString(pieces)
        recs.append({"osm_id": wid, "admin_level": tags.get("admin_level"), "name": tags.get("name"), "geometry": geom})
    if not recs:
        return _empty(["osm_id", "admin_level", "name"])
    return gpd.GeoDataFrame(recs, geometry="geometry", crs=WGS84)


def _buildings(col: _Collector, residential: gpd.GeoDataFrame, metric, opts: OsmOptions) -> gpd.GeoDataFrame:  # noqa: ANN001
    cols = ["osm_type", "osm_id", "building", "name", "levels", "levels_estimated", "footprint_m2",
            "households", "households_estimated", "estimate_method", "population", "household_source"]
    b = (gpd.GeoDataFrame(col.buildings, geometry="geometry", crs=WGS84) if col.buildings
         else _empty(["osm_type", "osm_id", "name", "building", "levels_tag", "flats"]))
    if len(b):
        b = b.drop_duplicates(["osm_type", "osm_id"])
        b["footprint_m2"] = b.to_crs(metric).area.to_numpy()
        levels_tag = b["levels_tag"].map(_num).astype(float)
        low = b["building"].map(LOW_RISE).astype(float)
        b["levels_estimated"] = levels_tag.isna()
        b["levels"] = levels_tag.fillna(low).fillna(opts.default_levels).astype(float)
        rx, ry = _rep_xy(b)
        in_res = np.zeros(len(b), bool)
        if len(residential):
            tree = shapely.STRtree(residential.geometry.values)
            idx = tree.query(shapely.points(rx, ry), predicate="within")
            in_res[np.unique(idx[0])] = True
        is_res = b["building"].isin(RESIDENTIAL_BUILDINGS).to_numpy() | (
            (b["building"] == "yes").to_numpy() & in_res)
        flats = b["flats"].map(_num).astype(float)
        est = (b["footprint_m2"] * b["levels"] / opts.m2_per_household).to_numpy(dtype=float)
        hh = np.where(flats.notna().to_numpy(), flats.to_numpy(), est)
        b["households"] = np.where(is_res, np.round(hh, 1), 0.0)
        b["households_estimated"] = flats.isna().to_numpy()
        b["estimate_method"] = "footprint"
        b["household_source"] = np.where(flats.notna().to_numpy(), "osm_tag", "estimate")
        b["population"] = b["households"] * opts.persons_per_household
        b["geometry"] = [g if isinstance(g, MultiPolygon) else MultiPolygon([g]) for g in b.geometry]
        b = b[cols + ["geometry"]]
    else:
        b = _empty(cols)
    # Residential land use without a single mapped building: one estimated entry for the area.
    if len(residential):
        r = residential.copy()
        if len(b):
            bx, by = _rep_xy(b)
            tree = shapely.STRtree(r.geometry.values)
            hit = tree.query(shapely.points(bx, by), predicate="within")
            has_b = np.zeros(len(r), bool)
            has_b[np.unique(hit[1])] = True
            r = r[~has_b]
        if len(r):
            r = r.drop_duplicates(["osm_type", "osm_id"])
            area_m2 = r.to_crs(metric).area.to_numpy()
            est = pd.DataFrame({
                "osm_type": "landuse_" + r["osm_type"].astype(str),
                "osm_id": r["osm_id"].to_numpy(),
                "building": "landuse=residential",
                "name": r["name"].to_numpy(),
                "levels": np.nan,
                "levels_estimated": True,
                "footprint_m2": area_m2,
                "households": np.round(area_m2 / 10_000.0 * opts.landuse_households_per_ha, 1),
                "households_estimated": True,
                "estimate_method": "landuse",
                "household_source": "estimate",
            })
            est["population"] = est["households"] * opts.persons_per_household
            geoms = [g if isinstance(g, MultiPolygon) else MultiPolygon([g]) for g in r.geometry]
            est = gpd.GeoDataFrame(est, geometry=geoms, crs=WGS84)
            b = pd.concat([b, est], ignore_index=True) if len(b) else est
    return gpd.GeoDataFrame(b, geometry="geometry", crs=WGS84).reset_index(drop=True)


def _clip_lines(gdf: gpd.GeoDataFrame, boundary) -> gpd.GeoDataFrame:  # noqa: ANN001
    if not len(gdf):
        return gdf
    out = gdf.copy()
    out["geometry"] = shapely.intersection(out.geometry.values, boundary)
    out = out[~out.geometry.is_empty]
    return out.reset_index(drop=True)


def cut_node_id(lon: float, lat: float) -> int:
    """A stable negative node id for a street end made by clipping at (lon, lat).

    Derived from the position (not a counter) so that re-importing gives the same ids.
    """
    digest = hashlib.blake2b(f"{lon:.7f},{lat:.7f}".encode(), digest_size=7).digest()
    return -int.from_bytes(digest, "big") - 1


def _clip_roads(roads: gpd.GeoDataFrame, boundary, metric) -> gpd.GeoDataFrame:  # noqa: ANN001
    """Keep road segments inside ``boundary``; cut the crossing ones at the boundary.

    A cut end gets a new negative node id (it joins no other street).
    """
    if not len(roads):
        return roads
    within = shapely.within(roads.geometry.values, boundary)
    keep = roads[within]
    crossing = roads[~within & shapely.intersects(roads.geometry.values, boundary)]
    recs = []
    for row in crossing.itertuples(index=False):
        clipped = shapely.line_merge(shapely.intersection(row.geometry, boundary))
        lines = [g for g in shapely.get_parts(clipped) if g.geom_type == "LineString" and g.length > 0]
        start, end = row.geometry.coords[0], row.geometry.coords[-1]
        for k, line in enumerate(lines):
            d = row._asdict()
            c0, c1 = line.coords[0], line.coords[-1]
            d["u"] = row.u if c0 == start else cut_node_id(*c0)
            d["v"] = row.v if c1 == end else cut_node_id(*c1)
            d["seq"] = -(row.seq * 1000 + k + 1)  # cut pieces: negative, never an original seq
            d["geometry"] = line
            recs.append(d)
    if recs:
        cut = gpd.GeoDataFrame(recs, geometry="geometry", crs=WGS84)
        cut["length_m"] = cut.to_crs(metric).length.to_numpy()
        keep = pd.concat([keep, cut], ignore_index=True)
    return gpd.GeoDataFrame(keep, geometry="geometry", crs=WGS84).reset_index(drop=True)
