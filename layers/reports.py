"""Incident reports from the phone page: one incident per client key, inside the worker's grids, with photos."""
from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gridpatrol.gis.errors import InputError, NotFoundError, PermissionDenied
from gridpatrol.gis.incidents import utc
from gridpatrol.layers import incidents as inc
from gridpatrol.layers.models import Incident, IncidentPhoto, IncidentReport
from gridpatrol.layers.store import Store
from gridpatrol.layers.visibility import current_grid_codes
from sqlalchemy import Connection, and_, select
from sqlalchemy.exc import IntegrityError

MAX_PHOTOS = 4
MAX_PHOTO_BYTES = 800_000  # per photo as sent; the page sends ~1280 px JPEGs of 100–400 kB
MAX_PHOTO_SIDE = 4096
MAX_AGE = timedelta(days=7)  # a report queued offline longer than this is refused, not back-dated
FUTURE_SLACK = timedelta(minutes=10)  # phone clocks run a little ahead; later than this is refused


class PhotoTooLarge(InputError):
    """A photo over MAX_PHOTO_BYTES (HTTP 413)."""


@dataclass(frozen=True)
class ReportOutcome:
    """The incident a report made (or made before, for a repeated key)."""

    incident_id: int
    grid_code: str | None
    created: bool
    photos: int


def check_report_time(reported_at: datetime | None, now: datetime | None = None) -> datetime:
    """The phone's time of the report in UTC (now when None); InputError outside [now − 7 days, now + 10 min]."""
    now = utc(now)
    try:
        when = utc(reported_at) if reported_at is not None else now
    except (OverflowError, ValueError):  # year 9999 with a negative offset, and the like
        raise InputError(f"上报时间 {reported_at} 无法识别 (reported_at is not a usable time)") from None
    if when > now + FUTURE_SLACK:
        raise InputError(f"上报时间 {when.isoformat(timespec='seconds')} 晚于服务器时间，请校准手机时间 "
                         f"(reported_at is in the future)")
    if when < now - MAX_AGE:
        raise InputError(f"上报时间 {when.isoformat(timespec='seconds')} 早于 7 天前，请改用事件录入 "
                         f"(reported_at is more than 7 days old)")
    return min(when, now)


def clean_photo(data: bytes, k: int) -> tuple[bytes, int, int]:
    """Photo ``k`` (1-based) decoded and re-encoded as JPEG (no EXIF, no script): bytes, width, height."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoTooLarge(f"第 {k} 张照片 {len(data) / 1e6:.1f} MB，超过 {MAX_PHOTO_BYTES / 1e6:.1f} MB 上限 "
                            f"(photo {k} is over the size limit)")
    try:
        img = Image.open(io.BytesIO(data))
        if img.format not in ("JPEG", "PNG", "WEBP"):
            raise InputError(f"第 {k} 张照片不是 JPEG/PNG/WebP 图片 (photo {k}: {img.format} not accepted)")
        if max(img.size) > MAX_PHOTO_SIDE:
            raise InputError(f"第 {k} 张照片 {img.size[0]}×{img.size[1]} 像素过大 (photo {k}: over {MAX_PHOTO_SIDE} px)")
        img.load()
        out = io.BytesIO()
        img.convert("RGB").save(out, "JPEG", quality=85)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise InputError(f"第 {k} 张照片无法读取 (photo {k} is not a readable image)") from None
    return out.getvalue(), img.size[0], img.size[1]


def _existing(conn: Connection, reporter: str, key: str) -> tuple[int, str | None] | None:
    r, i = IncidentReport.__table__, Incident.__table__
    row = conn.execute(select(r.c.incident_id, i.c.grid_code).join(i, i.c.id == r.c.incident_id)
                       .where(and_(r.c.reporter == reporter, r.c.client_key == key))).first()
    return (int(row[0]), row[1]) if row else None


def submit_report(
    store: Store, *, reporter: str, key: str, lon: float, lat: float, category: str, text: str | None,
    reported_at: datetime | None, photos: list[bytes], crs: str = "wgs84", now: datetime | None = None,
) -> ReportOutcome:
    """Register the worker's report as an incident ``reported`` (发现) in the grid at (lon, lat).

    The same ``key`` from the same reporter gives the incident made the first time (created False),
    whatever the rest of the body says. A position outside the reporter's grids of the current
    plan is refused (PermissionDenied, in Chinese); photos over the limit raise PhotoTooLarge.
    """
    with store.engine.connect() as c:
        seen = _existing(c, reporter, key)
    if seen:
        return ReportOutcome(seen[0], seen[1], False, _photo_count(store, seen[0]))
    when = check_report_time(reported_at, now)
    if len(photos) > MAX_PHOTOS:
        raise InputError(f"最多 {MAX_PHOTOS} 张照片 (at most {MAX_PHOTOS} photos)")
    cleaned = [clean_photo(p, k + 1) for k, p in enumerate(photos)]

    def check(conn: Connection, grid_code: str | None) -> None:
        own = set(conn.execute(current_grid_codes(reporter)).scalars())
        if grid_code is None or grid_code not in own:
            where = f"网格 {grid_code}" if grid_code else "任何网格之外"
            raise PermissionDenied(f"该位置在{where}，不在您负责的网格内，无法上报；请在地图上把位置移到您的网格内 "
                                   f"(the position is outside your grids)",
                                   hint="您的网格 your grids: " + ("、".join(sorted(own)) or "无 none"))

    def also(conn: Connection, incident_id: int) -> None:
        conn.execute(IncidentReport.__table__.insert().values(reporter=reporter, client_key=key,
                                                             incident_id=incident_id))
        for k, (data, w, h) in enumerate(cleaned):
            conn.execute(IncidentPhoto.__table__.insert().values(incident_id=incident_id, seq=k + 1, mime="image/jpeg",
                                                                width=w, height=h, data=data))

    try:
        out = inc.create_incident(store, lon=lon, lat=lat, category=category, occurred_at=when, description=text,
                                  source="phone", reporter=reporter, actor=reporter, crs=crs, check=check, also=also)
    except IntegrityError:  # the same key raced in from a second request: that one made the incident
        with store.engine.connect() as c:
            seen = _existing(c, reporter, key)
        if not seen:
            raise
        return ReportOutcome(seen[0], seen[1], False, _photo_count(store, seen[0]))
    return ReportOutcome(int(out["id"]), out["grid_code"], True, len(cleaned))


def _photo_count(store: Store, incident_id: int) -> int:
    p = IncidentPhoto.__table__
    with store.engine.connect() as c:
        return len(c.execute(select(p.c.id).where(p.c.incident_id == incident_id)).all())


def photo_list(store: Store, incident_id: int) -> list[dict[str, Any]]:
    """The photos of an incident (id, seq, width, height), in order; the caller checks who may see it."""
    p = IncidentPhoto.__table__
    with store.engine.connect() as c:
        rows = c.execute(select(p.c.id, p.c.seq, p.c.width, p.c.height).where(p.c.incident_id == incident_id)
                         .order_by(p.c.seq)).all()
    return [{"id": int(r[0]), "seq": int(r[1]), "width": int(r[2]), "height": int(r[3])} for r in rows]


def photo_data(store: Store, photo_id: int) -> tuple[int, str, bytes]:
    """(incident id, mime type, bytes) of a photo; NotFoundError when there is none."""
    p = IncidentPhoto.__table__
    with store.engine.connect() as c:
        row = c.execute(select(p.c.incident_id, p.c.mime, p.c.data).where(p.c.id == photo_id)).first()
    if row is None:
        raise NotFoundError(f"photo {photo_id} does not exist (or is not yours to see)")
    return int(row[0]), row[1], bytes(row[2])

