"""GPS tracks: read GPX, GeoJSON and phone chunks into time-stamped WGS-84 fixes, and flag suspicious ones."""
from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from gridpatrol.gis.crs import gcj02_to_wgs84
from gridpatrol.gis.errors import InputError

MAX_POINTS = 50_000  # fixes in one track (a day at one fix a second is 86 400: split it)
MAX_CHUNK_POINTS = 5_000  # fixes in one uploaded chunk
# Flags: a walker is not faster than this over a minute (running for a bus is 3–4 m/s).
MAX_WALK_MPS = 3.0
JUMP_M, JUMP_MPS = 200.0, 15.0  # one step this long at this speed is a jump, not a walk
DUPLICATE_ROUND_DEG = 1e-5  # ~1 m: coordinates rounded so for the fingerprint of a copied track
WORK_HOURS_TEXT = "07:00-21:00"  # local time; fixes outside count against the track
WORK_HOURS = (time(7, 0), time(21, 0))
_HOURS = re.compile(r"\s*(\d{1,2}):(\d{2})\s*[-–~～]\s*(\d{1,2}):(\d{2})\s*")


def parse_work_hours(text: str | None, *, where: str = "--hours") -> tuple[time, time]:
    """Working hours ``"HH:MM-HH:MM"`` (local time, start before end, both within one day) as two
    times; ``None`` gives the default 07:00–21:00. InputError (in Chinese) naming the value otherwise."""
    if text is None:
        return WORK_HOURS
    m = _HOURS.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise InputError(f"工作时间 {str(text)[:40]!r} 格式不对，应为 时:分-时:分 (working hours must be HH:MM-HH:MM)",
                         where=where, hint="例如 07:00-21:00")
    h0, m0, h1, m1 = (int(v) for v in m.groups())
    if not (h0 <= 23 and h1 <= 23 and m0 <= 59 and m1 <= 59):
        raise InputError(f"工作时间 {text.strip()!r} 中有不存在的时刻，时为 0–23，分为 0–59 (no such time of day)",
                         where=where, hint="例如 07:00-21:00")
    start, end = time(h0, m0), time(h1, m1)
    if start >= end:
        raise InputError(f"工作时间 {text.strip()!r} 的开始须早于结束（不支持跨午夜）(start must be before end)",
                         where=where, hint="例如 07:00-21:00")
    return start, end


def format_work_hours(hours: tuple[time, time]) -> str:
    """``(07:00, 21:00)`` → ``"07:00-21:00"``."""
    return f"{hours[0]:%H:%M}-{hours[1]:%H:%M}"


@dataclass
class Track:
    """Fixes of one track: WGS-84 lon/lat, UTC epoch seconds (sorted), accuracy in metres (NaN unknown)."""

    lon: np.ndarray
    lat: np.ndarray
    t: np.ndarray
    acc: np.ndarray
    device: str | None = None
    name: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.t)

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(float(self.t[0]), UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(float(self.t[-1]), UTC)


def parse_time(value: Any, where: str) -> float:
    """An RFC 3339 time with an offset (``Z`` or ``+08:00``) as UTC epoch seconds; InputError otherwise."""
    if not isinstance(value, str) or not value:
        raise InputError("time missing or not text", where=where, hint="RFC 3339 with offset, e.g. 2026-12-01T08:30:00+08:00")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InputError(f"{value[:40]!r} is not an RFC 3339 time", where=where,
                         hint="e.g. 2026-12-01T08:30:00+08:00") from None
    if dt.tzinfo is None:
        raise InputError(f"{value[:40]!r} has no UTC offset", where=where, hint="add Z or +08:00")
    return dt.timestamp()


def _finish(lon: list, lat: list, t: list, acc: list, *, crs: str, where: str, device: str | None = None,
            name: str | None = None) -> Track:
    if len(t) > MAX_POINTS:
        raise InputError(f"{len(t)} fixes, more than {MAX_POINTS} in one track", where=where, hint="split the file by day")
    lon_a, lat_a = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    t_a, acc_a = np.asarray(t, dtype=float), np.asarray(acc, dtype=float)
    bad = ~(np.isfinite(lon_a) & np.isfinite(lat_a) & (np.abs(lon_a) <= 180) & (np.abs(lat_a) <= 90))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"point {i}: {lon_a[i]}, {lat_a[i]} is not a longitude, latitude", where=where)
    if crs == "gcj02":
        lon_a, lat_a = (np.asarray(a, dtype=float) for a in gcj02_to_wgs84(lon_a, lat_a))
    elif crs != "wgs84":
        raise InputError(f"unknown CRS {crs!r}", where=where, hint="wgs84 or gcj02")
    order = np.argsort(t_a, kind="stable")
    return Track(lon_a[order], lat_a[order], t_a[order], acc_a[order], device=device, name=name)


def read_gpx(data: bytes | str, *, crs: str = "wgs84", where: str = "GPX") -> Track:
    """Every track point of a GPX file (all tracks and segments, by time) as one Track.

    Points need a time; GPX times without a zone are UTC (the GPX standard). ``crs``: wgs84 or gcj02.
    """
    import gpxpy
    import gpxpy.gpx

    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    try:
        gpx = gpxpy.parse(io.StringIO(text))
    except (gpxpy.gpx.GPXException, ValueError) as exc:
        raise InputError(f"not a readable GPX file: {str(exc)[:200]}", where=where) from None
    lon, lat, t, acc = [], [], [], []
    name = None
    for ti, trk in enumerate(gpx.tracks):
        name = name or trk.name
        for si, seg in enumerate(trk.segments):
            for pi, p in enumerate(seg.points):
                if p.time is None:
                    raise InputError("track point without a time", where=f"{where} track {ti + 1} segment {si + 1} point {pi + 1}",
                                     hint="a patrol track needs the time of every fix")
                tt = p.time if p.time.tzinfo else p.time.replace(tzinfo=UTC)
                lon.append(p.longitude)
                lat.append(p.latitude)
                t.append(tt.timestamp())
                acc.append(p.horizontal_dilution * 5.0 if p.horizontal_dilution else np.nan)
    if len(t) < 2:
        raise InputError(f"{len(t)} timed track point(s): a track needs at least 2", where=where,
                         hint="export the recorded track (trk), not a route or waypoints")
    return _finish(lon, lat, t, acc, crs=crs, where=where, name=name)


def read_geojson(data: bytes | str | dict, *, crs: str = "wgs84", where: str = "GeoJSON") -> Track:
    """A track from GeoJSON: Point features with a ``time`` (or ``t``) property, or a LineString feature
    with ``times`` (or ``coordTimes``) aligned with its coordinates. Times are RFC 3339 with offset."""
    if not isinstance(data, dict):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"not JSON: {exc}", where=where) from None
    if not isinstance(data, dict):
        raise InputError("not a GeoJSON object", where=where)
    feats = data.get("features") if data.get("type") == "FeatureCollection" else [data]
    if not isinstance(feats, list):
        raise InputError("features is not a list", where=where)
    lon, lat, t, acc = [], [], [], []
    for fi, f in enumerate(feats):
        w = f"{where} feature {fi}"
        if not isinstance(f, dict) or not isinstance(f.get("geometry"), dict):
            raise InputError("not a feature with a geometry", where=w)
        g, props = f["geometry"], f.get("properties") or {}
        coords = g.get("coordinates")
        if g.get("type") == "Point":
            coords, times = [coords], [props.get("time", props.get("t"))]
            accs = [props.get("acc", props.get("accuracy"))]
        elif g.get("type") == "LineString":
            times = props.get("times", props.get("coordTimes"))
            accs = props.get("acc") or [None] * (len(coords) if isinstance(coords, list) else 0)
            if not isinstance(times, list) or not isinstance(coords, list) or len(times) != len(coords):
                raise InputError("a LineString track needs properties.times, one per coordinate", where=w)
        else:
            raise InputError(f"geometry type {g.get('type')!r}: expected Point or LineString", where=w)
        for i, (c, tv, a) in enumerate(zip(coords, times, accs)):
            if not isinstance(c, list) or len(c) < 2 or not all(isinstance(v, (int, float)) for v in c[:2]):
                raise InputError("coordinate is not [lon, lat]", where=f"{w} point {i}")
            lon.append(float(c[0]))
            lat.append(float(c[1]))
            t.append(parse_time(tv, f"{w} point {i}"))
            acc.append(float(a) if isinstance(a, (int, float)) else np.nan)
    if len(t) < 2:
        raise InputError(f"{len(t)} timed point(s): a track needs at least 2", where=where)
    return _finish(lon, lat, t, acc, crs=crs, where=where)


def read_chunk_points(points: Any, *, where: str = "points") -> Track:
    """The ``points`` of a phone chunk (``[{"lon", "lat", "t", "acc"}, …]``, WGS-84) as a Track (unsorted kept sorted)."""
    if not isinstance(points, list) or not points:
        raise InputError("no points", where=where, hint="a chunk carries at least one fix")
    if len(points) > MAX_CHUNK_POINTS:
        raise InputError(f"{len(points)} points, more than {MAX_CHUNK_POINTS} in one chunk", where=where,
                         hint="send smaller chunks")
    lon, lat, t, acc = [], [], [], []
    for i, p in enumerate(points):
        w = f"{where}[{i}]"
        if not isinstance(p, dict):
            raise InputError("not an object", where=w)
        for k in ("lon", "lat"):
            if not isinstance(p.get(k), (int, float)) or isinstance(p.get(k), bool):
                raise InputError("missing or not a number", where=f"{w}.{k}")
        a = p.get("acc")
        if a is not None and (not isinstance(a, (int, float)) or isinstance(a, bool) or not 0 <= a < 1e5):
            raise InputError("must be metres (≥ 0) or null", where=f"{w}.acc")
        lon.append(float(p["lon"]))
        lat.append(float(p["lat"]))
        t.append(parse_time(p.get("t"), f"{w}.t"))
        acc.append(np.nan if a is None else float(a))
    return _finish(lon, lat, t, acc, crs="wgs84", where=where)


def step_metrics(x: np.ndarray, y: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(length m, duration s) of each step between consecutive metric fixes."""
    d = np.hypot(np.diff(x), np.diff(y))
    return d, np.diff(t)


def fingerprint(track: Track) -> str:
    """A hash of the track's shape (coordinates rounded to ~1 m, times relative to its start): a copy of
    an earlier track, even shifted to another day, has the same fingerprint."""
    q = np.round(np.column_stack([track.lon, track.lat]) / DUPLICATE_ROUND_DEG).astype(np.int64)
    rel = np.round(track.t - track.t[0]).astype(np.int64)
    return hashlib.sha256(q.tobytes() + rel.tobytes()).hexdigest()


def suspicious(track: Track, x: np.ndarray, y: np.ndarray, *, tz: str = "Asia/Shanghai",
               hours: tuple[time, time] = WORK_HOURS) -> list[dict[str, Any]]:
    """Reasons to doubt a track (metric x, y of its fixes): impossible speeds, jumps, fixes outside working hours.

    Each flag is ``{"kind", "detail", …numbers}``; a copy of an earlier track is found by the store
    (same :func:`fingerprint`).
    """
    flags: list[dict[str, Any]] = []
    d, dt = step_metrics(x, y, track.t)
    if len(d):
        jumps = np.flatnonzero((d > JUMP_M) & (d > JUMP_MPS * np.maximum(dt, 1e-3)))
        if len(jumps):
            flags.append({"kind": "jump", "count": len(jumps), "max_m": round(float(d[jumps].max()), 1),
                          "detail": f"{len(jumps)} jump(s) of up to {d[jumps].max():.0f} m between fixes"})
        # Speed as the straight displacement over windows of at least a minute: GPS noise adds path
        # length step by step, but barely moves the ends of a minute's walk.
        ok = np.ones(len(x), dtype=bool)
        ok[jumps + 1] = False
        xs, ys, ts = x[ok], y[ok], track.t[ok]
        j = np.searchsorted(ts, ts + 60.0)
        i = np.flatnonzero(j < len(ts))
        if len(i):
            speed = np.hypot(xs[j[i]] - xs[i], ys[j[i]] - ys[i]) / np.maximum(ts[j[i]] - ts[i], 1e-3)
            fast = speed > MAX_WALK_MPS
            if fast.any():
                flags.append({"kind": "speed", "max_mps": round(float(speed.max()), 2),
                              "share": round(float(fast.mean()), 3),
                              "detail": f"faster than walking ({speed.max() * 3.6:.0f} km/h over a minute)"})
    late = outside_hours(track.t, tz=tz, hours=hours)
    if late:
        flags.append(late)
    return flags


def outside_hours(t: np.ndarray, *, tz: str = "Asia/Shanghai", hours: tuple[time, time] = WORK_HOURS
                  ) -> dict[str, Any] | None:
    """The ``outside_hours`` flag of a track with fix times ``t`` (UTC epoch seconds, sorted) when any
    of its fixes (up to 500 of them, evenly picked) lies outside ``hours`` in zone ``tz``; else None."""
    if not len(t):
        return None
    z = ZoneInfo(tz)
    local = [datetime.fromtimestamp(float(v), z).time() for v in (t[0], t[-1])]
    times = [datetime.fromtimestamp(float(v), z).time() for v in t[:: max(1, len(t) // 500)]]
    outside = np.array([not (hours[0] <= v <= hours[1]) for v in times])
    if not outside.any():
        return None
    return {"kind": "outside_hours", "share": round(float(outside.mean()), 3), "hours": format_work_hours(hours),
            "detail": f"recorded {local[0]:%H:%M}–{local[1]:%H:%M} ({tz}), outside working hours "
                      f"{hours[0]:%H:%M}–{hours[1]:%H:%M}"}
