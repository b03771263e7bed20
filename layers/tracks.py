"""GPS tracks in the store: phone chunks (idempotent per track and chunk number), GPX/GeoJSON imports, reading back."""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

import numpy as np
import pyproj
import shapely
from gridpatrol.gis.crs import local_metric_crs
from gridpatrol.gis.errors import ConflictError, InputError, NotFoundError
from gridpatrol.gis.tracks import (
    MAX_POINTS,
    WORK_HOURS,
    Track,
    fingerprint,
    read_chunk_points,
    suspicious,
)
from gridpatrol.layers.models import MAX_ID, TrackChunk
from gridpatrol.layers.models import Track as TrackRow
from gridpatrol.layers.store import Store
from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

SOURCES = ("gpx", "phone", "api")
MAX_CHUNKS = 2_000


@dataclass
class ChunkOutcome:
    """What storing a chunk did: the track's row id, whether the chunk was new, the track's fix count."""

    track_id: int
    created: bool
    n_points: int
    flags: list[dict[str, Any]]


def _to_metric(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    crs = local_metric_crs(float(np.mean(lon)), float(np.mean(lat)))
    x, y = pyproj.Transformer.from_crs(4326, crs, always_xy=True).transform(lon, lat)
    return np.asarray(x), np.asarray(y)


def _points_of(conn: Connection, track_id: int) -> Track:
    rows = conn.execute(select(TrackChunk.points_json).where(TrackChunk.track_id == track_id)
                        .order_by(TrackChunk.seq)).scalars().all()
    pts = [p for r in rows for p in json.loads(r)]
    lon = np.array([p[0] for p in pts], dtype=float)
    lat = np.array([p[1] for p in pts], dtype=float)
    t = np.array([p[2] for p in pts], dtype=float)
    acc = np.array([np.nan if p[3] is None else p[3] for p in pts], dtype=float)
    return Track(lon, lat, t, acc)


def _refresh(conn: Connection, track_id: int, hours: tuple[time, time]) -> tuple[int, list[dict[str, Any]]]:
    """Rebuild a track's line, times, fingerprint and flags (working ``hours``) from its chunks (in chunk order)."""
    tr = _points_of(conn, track_id)
    n = len(tr)
    if n > MAX_POINTS:
        raise InputError(f"the track would have {n} fixes, more than {MAX_POINTS}", where="points",
                         hint="start a new track id")
    flags: list[dict[str, Any]] = []
    geom = None
    fp = None
    if n >= 2:
        x, y = _to_metric(tr.lon, tr.lat)
        flags = suspicious(tr, x, y, hours=hours)
        back = np.flatnonzero(np.diff(tr.t) < 0)
        if len(back):
            flags.append({"kind": "time_order", "count": len(back),
                          "detail": f"{len(back)} fix(es) earlier than the one before (chunks out of time order)"})
        fp = fingerprint(tr)
        twin = conn.execute(select(func.min(TrackRow.id)).where(and_(TrackRow.fingerprint == fp, TrackRow.id != track_id))
                            ).scalar()
        if twin is not None and twin < track_id:
            flags.append({"kind": "duplicate", "of": int(twin), "detail": f"the same fixes as track {twin}"})
        geom = "SRID=4326;" + shapely.to_wkt(shapely.linestrings(np.column_stack([tr.lon, tr.lat])), rounding_precision=-1)
    conn.execute(update(TrackRow).where(TrackRow.id == track_id).values(
        n_points=n, times_json=json.dumps(tr.t.tolist()),
        acc_json=json.dumps([None if np.isnan(a) else float(a) for a in tr.acc]),
        start_at=datetime.fromtimestamp(float(tr.t.min()), UTC) if n else None,
        end_at=datetime.fromtimestamp(float(tr.t.max()), UTC) if n else None,
        fingerprint=fp, flags_json=json.dumps(flags, ensure_ascii=False), geom=geom))
    return n, flags


def _chunk_json(tr: Track) -> str:
    return json.dumps([[float(a), float(b), float(c), None if np.isnan(d) else float(d)]
                       for a, b, c, d in zip(tr.lon, tr.lat, tr.t, tr.acc)])


def add_chunk(store: Store, *, worker: str, client_id: str, seq: int, points: Any, device: str | None = None,
              route_id: int | None = None, source: str = "phone",
              hours: tuple[time, time] = WORK_HOURS) -> ChunkOutcome:
    """Store chunk ``seq`` of track ``client_id`` for ``worker``; a repeated chunk changes nothing.
    ``hours``: the local working hours its fixes are flagged against (``outside_hours``).

    The same (track, seq) with other points is a ConflictError, as is a track id of another worker.
    """
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < MAX_CHUNKS:
        raise InputError(f"seq must be an integer 0…{MAX_CHUNKS - 1}", where="seq")
    if route_id is not None and (not isinstance(route_id, int) or isinstance(route_id, bool) or not 1 <= route_id <= MAX_ID):
        raise InputError("route_id must be a positive integer or null", where="route_id")
    tr = read_chunk_points(points)
    body = _chunk_json(tr)
    digest = hashlib.sha256(body.encode()).hexdigest()
    return _store_chunk(store, worker=worker, client_id=client_id, seq=seq, body=body, digest=digest,
                        device=device, route_id=route_id, source=source, hours=hours)


def _store_chunk(store: Store, *, worker: str, client_id: str, seq: int, body: str, digest: str, device: str | None,
                 route_id: int | None, source: str, hours: tuple[time, time]) -> ChunkOutcome:
    if source not in SOURCES:
        raise InputError(f"unknown source {source!r}", hint=", ".join(SOURCES))
    for attempt in range(2):
        try:
            with store.begin() as conn:
                row = conn.execute(select(TrackRow.id, TrackRow.worker).where(TrackRow.client_id == client_id)).first()
                if row is None:
                    tid = conn.execute(insert(TrackRow).values(
                        client_id=client_id, worker=worker, device=device, source=source, route_id=route_id,
                        n_points=0, times_json="[]", acc_json="[]", flags_json="[]").returning(TrackRow.id)).scalar_one()
                else:
                    tid = int(row.id)
                    if row.worker != worker:
                        raise ConflictError(f"track {client_id} belongs to another worker", where="track_id",
                                            hint="make a new track id for a new track")
                    have = conn.execute(select(TrackChunk.sha256).where(
                        and_(TrackChunk.track_id == tid, TrackChunk.seq == seq))).scalar()
                    if have is not None:
                        if have != digest:
                            raise ConflictError(f"chunk {seq} of track {client_id} was sent before with other points",
                                                where="seq", hint="send each chunk number once, with the same points")
                        n, flags = conn.execute(select(TrackRow.n_points, TrackRow.flags_json).where(TrackRow.id == tid)).one()
                        return ChunkOutcome(tid, False, int(n), json.loads(flags))
                conn.execute(insert(TrackChunk).values(track_id=tid, seq=seq, points_json=body, sha256=digest))
                n, flags = _refresh(conn, tid, hours)
                return ChunkOutcome(tid, True, n, flags)
        except IntegrityError:
            if attempt:  # two uploads raced for the same new track or chunk: the second one re-reads
                raise ConflictError(f"chunk {seq} of track {client_id} is being stored by another request",
                                    hint="send it again") from None
    raise AssertionError("unreachable")


def save_track(store: Store, track: Track, *, worker: str, source: str, device: str | None = None,
               route_id: int | None = None, raw: bytes | None = None,
               hours: tuple[time, time] = WORK_HOURS) -> ChunkOutcome:
    """Store a whole track (GPX/GeoJSON import) as chunk 0, flagged against the working ``hours``;
    the same file again changes nothing."""
    body = _chunk_json(track)
    digest = hashlib.sha256(body.encode()).hexdigest()
    client_id = f"{source}:{hashlib.sha256(raw).hexdigest()[:32]}" if raw is not None else str(uuid.uuid4())
    return _store_chunk(store, worker=worker, client_id=client_id, seq=0, body=body, digest=digest, device=device,
                        route_id=route_id, source=source, hours=hours)


def read_tracks(store: Store, *, worker: str | None = None, start: datetime | None = None,
                end: datetime | None = None, ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Stored tracks (with fixes: ``lon``, ``lat``, ``t`` arrays) of ``worker`` overlapping [start, end), oldest first."""
    t = TrackRow.__table__
    cond = [t.c.n_points >= 2]
    if worker is not None:
        cond.append(t.c.worker == worker)
    if start is not None:
        cond.append(t.c.end_at >= start)
    if end is not None:
        cond.append(t.c.start_at < end)
    if ids is not None:
        cond.append(t.c.id.in_(ids))
    cols = [c for c in t.columns if c.name != "geom"]
    with store.engine.connect() as conn:
        rows = conn.execute(select(*cols, func.ST_AsBinary(t.c.geom).label("wkb")).where(and_(*cond))
                            .order_by(t.c.start_at, t.c.id)).mappings().all()
    out = []
    for r in rows:
        d = {k: v for k, v in r.items() if k not in ("wkb", "times_json", "acc_json", "flags_json")}
        xy = shapely.get_coordinates(shapely.from_wkb(bytes(r["wkb"])))
        d.update(lon=xy[:, 0], lat=xy[:, 1], t=np.array(json.loads(r["times_json"]), dtype=float),
                 flags=json.loads(r["flags_json"]))
        out.append(d)
    return out


def track_summary(store: Store, track_id: int) -> dict[str, Any]:
    """One track without its fixes (id, worker, device, source, times, points, flags); NotFoundError if absent."""
    rows = read_tracks(store, ids=[track_id])
    if not rows:
        raise NotFoundError(f"no track {track_id}")
    r = rows[0]
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items() if k not in ("lon", "lat", "t")}
