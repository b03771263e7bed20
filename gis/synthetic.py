"""Reproducible SYNTHETIC demo data: Skynet/Sharp Eyes cameras from the street graph and a year of incidents through the closed loop."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from gridpatrol.gis.cameras import make_device_code
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.incidents import TRANSITIONS

MAJOR = ("motorway", "trunk", "primary", "secondary", "tertiary")
MINOR = ("residential", "unclassified", "living_street", "service", "tertiary", "secondary")
SYNTHETIC_TAG = "合成"  # appended to every name: these are not real cameras or incidents
GEOD = pyproj.Geod(ellps="WGS84")

# Shares of incident categories in a county governance centre's year (illustrative).
CATEGORY_WEIGHTS = {
    "矛盾纠纷": 0.20, "治安": 0.14, "消防安全": 0.07, "环境卫生": 0.22, "道路交通": 0.12,
    "市政设施": 0.14, "食品药品": 0.03, "安全生产": 0.05, "其他": 0.03,
}
DESCRIPTIONS = {
    "矛盾纠纷": ["邻里噪音纠纷", "物业费纠纷", "楼上漏水引发纠纷", "停车位纠纷", "家庭矛盾调解"],
    "治安": ["电动车被盗", "可疑人员徘徊", "酒后滋事", "入室盗窃报警", "打架斗殴"],
    "消防安全": ["楼道堆放杂物", "电动车楼道充电", "消防通道被占用", "灭火器过期"],
    "环境卫生": ["垃圾未及时清运", "占道经营", "乱贴小广告", "污水外溢", "绿化带杂物"],
    "道路交通": ["机动车乱停放", "信号灯故障", "路口拥堵", "共享单车堆积"],
    "市政设施": ["路灯不亮", "井盖缺失", "人行道破损", "护栏损坏", "下水道堵塞"],
    "食品药品": ["无证摊贩", "过期食品销售"],
    "安全生产": ["工地未围挡", "违规动火作业", "燃气泄漏隐患"],
    "其他": ["流浪动物", "群众咨询"],
}
SOURCES = {"网格员巡查": 0.45, "12345热线": 0.25, "群众上报": 0.2, "视频巡查": 0.1}
# Mean hours spent in each state on the way through the loop (below the default deadlines, with
# a long exponential tail, so a realistic few are overdue).
MEAN_STAGE_H = {"reported": 1.0, "handled": 10.0, "escalated": 2.0, "assigned": 40.0, "completed": 12.0,
                "feedback": 30.0, "revisited": 8.0}


def _bearing(lon1, lat1, lon2, lat2) -> np.ndarray:  # noqa: ANN001
    az, _, _ = GEOD.inv(lon1, lat1, lon2, lat2)
    return np.asarray(az) % 360.0


def _street_label(names: list[str]) -> str:
    named = [n for n in dict.fromkeys(names) if n]
    if len(named) >= 2:
        return f"{named[0]}与{named[1]}交叉口"
    if named:
        return f"{named[0]}路口"
    return "无名路口"


def skynet_cameras(roads: gpd.GeoDataFrame, county_code: str, rng: np.random.Generator, *,
                   share: float = 0.7) -> gpd.GeoDataFrame:
    """Skynet (天网) cameras at intersections of major streets (trunk/primary/secondary/tertiary):
    nodes where at least three major segment ends meet. Each gets 1–3 cameras looking down the
    streets that leave it (fixed, 45–90°, 60–120 m) or a dome (full circle, 100–150 m)."""
    r = roads[roads["highway"].isin(MAJOR)].to_crs(4326)
    if len(r) == 0:
        return _empty()
    coords = [np.asarray(g.coords) for g in r.geometry.values]
    name_col = r["name_zh"].where(r["name_zh"].notna(), r["name"]) if "name_zh" in r else r["name"]
    ends = pd.DataFrame({
        "node": np.concatenate([r["u"].to_numpy(), r["v"].to_numpy()]),
        "lon": [c[0, 0] for c in coords] + [c[-1, 0] for c in coords],
        "lat": [c[0, 1] for c in coords] + [c[-1, 1] for c in coords],
        "lon2": [c[1, 0] for c in coords] + [c[-2, 0] for c in coords],
        "lat2": [c[1, 1] for c in coords] + [c[-2, 1] for c in coords],
        "name": list(name_col.fillna("")) * 2,
    })
    ends["bearing"] = _bearing(ends["lon"].to_numpy(), ends["lat"].to_numpy(), ends["lon2"].to_numpy(), ends["lat2"].to_numpy())
    deg = ends.groupby("node").size()
    junctions = np.sort(deg[deg >= 3].index.to_numpy())
    junctions = junctions[rng.random(len(junctions)) < share]
    rows = []
    for node in junctions:
        legs = ends[ends["node"] == node]
        lon, lat = float(legs["lon"].iloc[0]), float(legs["lat"].iloc[0])
        label = _street_label(list(legs["name"]))
        if rng.random() < 0.25:
            rows.append(dict(lon=lon, lat=lat, azimuth_deg=None, fov_deg=360.0, range_m=float(rng.uniform(100, 150)),
                             camera_type="dome", name=f"{label}球机"))
            continue
        k = int(rng.integers(1, min(3, len(legs)) + 1))
        for b in rng.choice(legs["bearing"].to_numpy(), size=k, replace=False):
            # mounted a few metres back from the junction, looking down the street
            back = (b + 180.0) % 360.0
            x, y, _ = GEOD.fwd(lon, lat, back, float(rng.uniform(3, 8)))
            rows.append(dict(lon=float(x), lat=float(y), azimuth_deg=float(b), fov_deg=float(rng.uniform(45, 90)),
                             range_m=float(rng.uniform(60, 120)), camera_type="fixed", name=f"{label}枪机"))
    df = pd.DataFrame(rows)
    if len(df) == 0:
        return _empty()
    df["project"] = "skynet"
    df["code"] = [make_device_code(county_code, "00", "132", "0", i + 1) for i in range(len(df))]
    return _finish(df, rng, owner="公安分局")


def community_polygons(buildings: gpd.GeoDataFrame, *, residential: gpd.GeoDataFrame | None = None,
                       gap_m: float = 15.0, min_buildings: int = 3) -> gpd.GeoDataFrame:
    """Communities (小区) as polygons: residential landuse areas, plus clusters of at least
    ``min_buildings`` buildings whose footprints are within ``gap_m`` of each other."""
    parts = []
    if len(buildings):
        b = buildings.to_crs(4326)
        c = b.geometry.union_all().centroid
        metric = local_metric_crs(c.x, c.y)
        mb = b.to_crs(metric)
        landuse = mb[mb.get("estimate_method", pd.Series("", index=mb.index)) == "landuse"]
        blds = mb.drop(landuse.index)
        if len(blds):
            grown = shapely.buffer(blds.geometry.values, gap_m / 2)
            clusters = shapely.get_parts(shapely.union_all(grown))
            cnt = np.bincount(shapely.STRtree(clusters).query(shapely.centroid(blds.geometry.values), predicate="within")[1],
                              minlength=len(clusters))
            keep = clusters[cnt >= min_buildings]
            parts.append(gpd.GeoSeries(shapely.buffer(keep, -gap_m / 2 + 1.0), crs=metric))
        if len(landuse):
            parts.append(landuse.geometry)
        if residential is not None and len(residential):
            parts.append(residential.to_crs(metric).geometry)
    if not parts:
        return gpd.GeoDataFrame(geometry=[], crs=4326)
    geoms = pd.concat(parts, ignore_index=True)
    geoms = geoms[~geoms.is_empty & (geoms.area > 1500)]
    return gpd.GeoDataFrame(geometry=geoms.to_crs(4326).values, crs=4326)


def sharp_eyes_cameras(roads: gpd.GeoDataFrame, communities: gpd.GeoDataFrame, county_code: str,
                       rng: np.random.Generator, *, max_gap_m: float = 60.0) -> gpd.GeoDataFrame:
    """Sharp Eyes (雪亮) cameras at community entrances: where a community's edge comes closest
    to a nearby minor street (one or two entrances per community), looking out through the gate."""
    if len(communities) == 0 or len(roads) == 0:
        return _empty()
    c = communities.geometry.union_all().centroid
    metric = local_metric_crs(c.x, c.y)
    comm = communities.to_crs(metric).reset_index(drop=True)
    streets = roads[roads["highway"].isin(MINOR)].to_crs(metric).reset_index(drop=True)
    if len(streets) == 0:
        return _empty()
    tree = shapely.STRtree(streets.geometry.values)
    rows = []
    for i, poly in enumerate(comm.geometry.values):
        near = tree.query(poly, predicate="dwithin", distance=max_gap_m)
        if len(near) == 0:
            continue
        d = shapely.distance(poly, streets.geometry.values[near])
        order = near[np.argsort(d, kind="stable")]
        k = 2 if (len(order) > 1 and rng.random() < 0.5) else 1
        centre = poly.centroid
        for j in order[:k]:
            line = shapely.shortest_line(poly.boundary, streets.geometry.values[j])
            gate = shapely.Point(line.coords[0])
            az = float(np.degrees(np.arctan2(gate.x - centre.x, gate.y - centre.y)) % 360.0)
            rows.append(dict(x=gate.x, y=gate.y, azimuth_deg=az, fov_deg=float(rng.uniform(60, 100)),
                             range_m=float(rng.uniform(30, 60)), camera_type="fixed",
                             street=streets["name"].iloc[j] if "name" in streets else None, comm=i))
    if not rows:
        return _empty()
    df = pd.DataFrame(rows)
    # the metric CRS is a conformal map: azimuths there differ from true north by the meridian
    # convergence, so compute the looking direction on the ellipsoid instead
    ll = gpd.GeoSeries(shapely.points(df["x"], df["y"]), crs=metric).to_crs(4326)
    cen = gpd.GeoSeries(comm.geometry.centroid.values[df["comm"].to_numpy()], crs=metric).to_crs(4326)
    df["lon"], df["lat"] = ll.x.to_numpy(), ll.y.to_numpy()
    df["azimuth_deg"] = _bearing(cen.x.to_numpy(), cen.y.to_numpy(), df["lon"].to_numpy(), df["lat"].to_numpy())
    df["name"] = [f"{s or '小区'}旁小区出入口" for s in df["street"]]
    df["project"] = "sharp_eyes"
    df["code"] = [make_device_code(county_code, "01", "132", "6", 500001 + i) for i in range(len(df))]
    return _finish(df.drop(columns=["x", "y", "street", "comm"]), rng, owner="街道综治中心")


def _empty() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(columns=["code", "name", "project", "azimuth_deg", "fov_deg", "range_m", "camera_type",
                                     "status", "geometry"], geometry="geometry", crs=4326)


def _finish(df: pd.DataFrame, rng: np.random.Generator, owner: str) -> gpd.GeoDataFrame:
    df["status"] = rng.choice(["online", "offline", "fault"], size=len(df), p=[0.92, 0.05, 0.03])
    df["height_m"] = np.round(rng.uniform(4, 8, len(df)), 1)
    df["owner_unit"] = owner
    df["name"] = df["name"] + f"（{SYNTHETIC_TAG}）"
    df["synthetic"] = True
    df["source"] = "synthetic"
    return gpd.GeoDataFrame(df.drop(columns=["lon", "lat"]), geometry=shapely.points(df["lon"], df["lat"]), crs=4326)


def synthetic_cameras(roads: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame, county_code: str, seed: int,
                      residential: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Skynet and Sharp Eyes cameras for the streets and buildings given (EPSG:4326), all marked
    synthetic, with valid GB/T 28181 codes under ``county_code``; the same seed gives the same set."""
    if not (len(county_code) == 6 and county_code.isdigit()):
        raise InputError(f"county code {county_code!r} must be 6 digits (GB/T 2260), e.g. 510104")
    rng = np.random.default_rng(seed)
    sky = skynet_cameras(roads, county_code, rng)
    comm = community_polygons(buildings, residential=residential)
    eyes = sharp_eyes_cameras(roads, comm, county_code, rng)
    return gpd.GeoDataFrame(pd.concat([sky, eyes], ignore_index=True), geometry="geometry", crs=4326)


def _loop_path(rng: np.random.Generator) -> list[tuple[str, str]]:
    """A plausible route through the loop as (to_state, note) steps after 'reported'."""
    u = rng.random()
    if u < 0.04:
        return [("closed", "重复上报，合并处理")]
    steps: list[tuple[str, str]] = []
    if u < 0.55:
        steps += [("handled", "网格员现场处置"), ("completed", "处置完毕")]
    else:
        steps += [("escalated", "超出网格处置能力，上报综治中心"), ("assigned", "交办职能部门")]
        if rng.random() < 0.06:
            steps += [("escalated", "部门退回：非本部门职责"), ("assigned", "重新交办")]
        steps += [("completed", "部门办结")]
    steps += [("feedback", "已向群众反馈"), ("revisited", "电话回访")]
    if rng.random() < 0.04:
        steps += [("assigned", "回访不满意，重新交办"), ("completed", "再次办结"), ("feedback", "已反馈"),
                  ("revisited", "再次回访")]
    steps += [("closed", "结案")]
    return steps


def synthetic_incidents(roads: gpd.GeoDataFrame, n: int, seed: int, *, year: int | None = None,
                        now: datetime | None = None) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """``n`` incidents near the streets given, marked synthetic, each moved through the closed
    loop up to ``now``. With ``year``: over that calendar year (Asia/Shanghai), ``now``
    defaulting to its end; without: over the 365 days before ``now`` (default: today 00:00 UTC,
    so runs on the same day agree). Returns the incidents (state, state_since, version = number
    of events) and their events (``incident`` = row)."""
    if len(roads) == 0:
        raise InputError("no streets to place synthetic incidents on", hint="import an OSM extract first")
    rng = np.random.default_rng(seed + 1_000_003)
    r = roads.to_crs(4326).reset_index(drop=True)
    c = r.geometry.union_all().centroid
    metric = local_metric_crs(c.x, c.y)
    mr = r.to_crs(metric).geometry.values
    length = shapely.length(mr)
    seg = rng.choice(len(mr), size=n, p=length / length.sum())
    pos = shapely.line_interpolate_point(mr[seg], rng.random(n), normalized=True)
    off = rng.normal(0, 12, size=(n, 2))
    pts = shapely.points(shapely.get_x(pos) + off[:, 0], shapely.get_y(pos) + off[:, 1])
    ll = gpd.GeoSeries(pts, crs=metric).to_crs(4326)
    cats = list(CATEGORY_WEIGHTS)
    cat = rng.choice(cats, size=n, p=np.array(list(CATEGORY_WEIGHTS.values())) / sum(CATEGORY_WEIGHTS.values()))
    if year is not None:
        start = datetime(year, 1, 1, tzinfo=timezone.utc) - timedelta(hours=8)  # local midnight, Asia/Shanghai
        now = now or start + timedelta(days=365)
    else:
        today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        now = now or today
        start = now - timedelta(days=365)
    hours = np.arange(24)
    diurnal = np.exp(-0.5 * ((hours - 14.5) / 4.5) ** 2) + 0.05
    hour = rng.choice(hours, size=n, p=diurnal / diurnal.sum())
    day = rng.integers(0, 365, size=n)
    minute = rng.integers(0, 60, size=n)
    occurred = [start + timedelta(days=int(d), hours=int(h), minutes=int(m)) for d, h, m in zip(day, hour, minute)]
    # incidents are reported before "now"; the loop runs on until then
    occurred = [min(t, now - timedelta(minutes=1)) for t in occurred]
    sources = rng.choice(list(SOURCES), size=n, p=list(SOURCES.values()))
    inc_rows, ev_rows = [], []
    for i in range(n):
        t = occurred[i]
        state = "reported"
        events = [dict(incident=i, seq=1, from_state=None, to_state="reported", note="发现", at=t)]
        for to, note in _loop_path(rng):
            assert to in TRANSITIONS[state]
            t_next = t + timedelta(hours=float(rng.exponential(MEAN_STAGE_H[state])))
            if t_next > now:
                break
            events.append(dict(incident=i, seq=len(events) + 1, from_state=state, to_state=to, note=note, at=t_next))
            state, t = to, t_next
        ev_rows += events
        desc = rng.choice(DESCRIPTIONS[cat[i]])
        inc_rows.append(dict(occurred_at=occurred[i], category=cat[i], description=f"{desc}（{SYNTHETIC_TAG}）",
                             source=sources[i], reporter=None, state=state, state_since=t, version=len(events),
                             synthetic=True, external_id=f"synthetic:{seed}:{i}"))
    incidents = gpd.GeoDataFrame(inc_rows, geometry=ll.values, crs=4326)
    return incidents, pd.DataFrame(ev_rows)
