"""Reports from the worker's phone page (POST /m/reports) on both stores: one incident per client key (also when
two requests race), in the worker's own grid only (the server decides the grid), the phone's time within bounds,
photos size-limited and shown only to those who may see the incident, and only workers may report here."""
from __future__ import annotations

import base64
import io
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.api.api_seed import GRID_CODES


def _box(client) -> tuple[float, float, float, float]:
    return client.app.state.store.extent("roads")


def _in_grid(client, k: int) -> tuple[float, float]:
    """The middle of seeded grid ``k`` (0 lower left, 1 lower right: wu's; 2 li's; 3 zhang's)."""
    x0, y0, x1, y1 = _box(client)
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    cx = (x0 + mx) / 2 if k in (0, 2) else (mx + x1) / 2
    cy = (y0 + my) / 2 if k in (0, 1) else (my + y1) / 2
    return cx, cy


def _jpeg(size: tuple[int, int] = (64, 48), noise: int = 0) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8) if noise else np.full((size[1], size[0], 3), 120, np.uint8)
    out = io.BytesIO()
    Image.fromarray(arr).save(out, "JPEG", quality=100 if noise else 80)
    return out.getvalue()


def _body(client, k: int = 0, **extra):
    lon, lat = _in_grid(client, k)
    return {"key": uuid.uuid4().hex, "category": "环境卫生", "text": "垃圾堆放 " + uuid.uuid4().hex[:6], "lon": lon,
            "lat": lat, **extra}


def _count(client, tokens, text: str) -> int:
    feats = client.get("/incidents?limit=10000", headers=tokens["ada"]).json()["features"]
    return sum(1 for f in feats if f["properties"]["description"] == text)


def test_a_report_is_one_reported_incident_in_the_workers_grid_whatever_the_repeats(client, tokens):
    when = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    body = _body(client, 1, reported_at=when.astimezone(timezone(timedelta(hours=8))).isoformat())
    r = client.post("/m/reports", json=body, headers=tokens["wu"])
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["created"] and first["grid_code"] == GRID_CODES[1] and first["state"] == "reported"
    # the same key again (a resend after a lost answer), even with another text: the same incident, 200
    again = client.post("/m/reports", json={**body, "text": "changed"}, headers=tokens["wu"])
    assert again.status_code == 200 and again.json()["id"] == first["id"] and not again.json()["created"]
    assert _count(client, tokens, body["text"]) == 1 and _count(client, tokens, "changed") == 0
    # the dispatcher sees it in the closed loop: reported, wu's grid, at the phone's time
    got = client.get(f"/incidents/{first['id']}", headers=tokens["dan"]).json()["properties"]
    assert got["state"] == "reported" and got["grid_code"] == GRID_CODES[1] and got["reporter"] == "wu"
    assert datetime.fromisoformat(got["occurred_at"]) == when
    assert [e["to_state"] for e in got["events"]] == ["reported"]
    # another worker's key space is their own: zhang's own report with this key is a new one (in zhang's grid)
    z = client.post("/auth/token", data={"username": "zhang", "password": "test-password-123"})
    if z.status_code == 200:
        hz = {"Authorization": "Bearer " + z.json()["access_token"]}
        rz = client.post("/m/reports", json={**_body(client, 3), "key": body["key"]}, headers=hz)
        assert rz.status_code == 201 and rz.json()["id"] != first["id"], rz.text


def test_racing_resends_of_one_key_make_one_incident(client, tokens):
    from gridpatrol.layers import reports

    store = client.app.state.store
    lon, lat = _in_grid(client, 0)
    key, text = uuid.uuid4().hex, "并发 " + uuid.uuid4().hex[:6]
    barrier, out, errors = threading.Barrier(4), [], []

    def go() -> None:
        barrier.wait()
        try:
            out.append(reports.submit_report(store, reporter="wu", key=key, lon=lon, lat=lat, category="治安",
                                             text=text, reported_at=None, photos=[]))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len({o.incident_id for o in out}) == 1 and sum(o.created for o in out) == 1
    assert _count(client, tokens, text) == 1


@pytest.mark.parametrize("k, words", [(2, "网格 " + GRID_CODES[2]), (3, "网格 " + GRID_CODES[3]), (None, "任何网格之外")])
def test_a_position_outside_the_workers_grids_is_refused_in_chinese(client, tokens, k, words):
    body = _body(client, k or 0)
    if k is None:  # east of every grid, still in Chengdu
        body["lon"] = _box(client)[2] + 0.01
    r = client.post("/m/reports", json=body, headers=tokens["wu"])
    assert r.status_code == 403, r.text
    assert words in r.json()["detail"] and "不在您负责的网格内" in r.json()["detail"]
    assert GRID_CODES[0] in r.json()["detail"] and GRID_CODES[1] in r.json()["detail"]  # the hint names wu's grids
    assert _count(client, tokens, body["text"]) == 0


def test_the_phones_time_must_be_recent_and_not_ahead(client, tokens):
    now = datetime.now(UTC)
    odd = client.post("/m/reports", json=_body(client, reported_at="9999-12-31T23:59:59-14:00"), headers=tokens["wu"])
    assert odd.status_code == 422 and "上报时间" in odd.json()["detail"], odd.text
    for when, status in ((now - timedelta(days=8), 422), (now + timedelta(hours=1), 422),
                         (now - timedelta(days=6), 201), (now + timedelta(minutes=2), 201)):
        body = _body(client, reported_at=when.isoformat())
        r = client.post("/m/reports", json=body, headers=tokens["wu"])
        assert r.status_code == status, (when, r.text)
        if status == 422:
            assert "上报时间" in r.json()["detail"] and _count(client, tokens, body["text"]) == 0
        else:  # never stored ahead of the server's clock
            got = client.get(f"/incidents/{r.json()['id']}", headers=tokens["dan"]).json()["properties"]
            assert datetime.fromisoformat(got["occurred_at"]) <= datetime.now(UTC)


def test_photos_are_size_limited_cleaned_and_shown_only_to_who_may_see_the_incident(client, tokens):
    from gridpatrol.layers.reports import MAX_PHOTO_BYTES

    big = _jpeg((800, 560), noise=1)
    assert MAX_PHOTO_BYTES < len(big) < 2 * MAX_PHOTO_BYTES, len(big)
    body = _body(client, photos=[base64.b64encode(big).decode()])
    r = client.post("/m/reports", json=body, headers=tokens["wu"])
    assert r.status_code == 413 and "照片" in r.json()["detail"], r.text[:300]
    assert _count(client, tokens, body["text"]) == 0
    from gridpatrol.layers import (
        reports,  # the store's own check, for callers other than this endpoint
    )

    with pytest.raises(reports.PhotoTooLarge, match="照片"):
        reports.submit_report(client.app.state.store, reporter="wu", key=uuid.uuid4().hex, lon=body["lon"],
                              lat=body["lat"], category="治安", text=body["text"], reported_at=None, photos=[big])
    assert _count(client, tokens, body["text"]) == 0
    bad = _body(client, photos=[base64.b64encode(b"<svg onload=alert(1)>" * 10).decode()])
    r = client.post("/m/reports", json=bad, headers=tokens["wu"])
    assert r.status_code == 422 and "无法读取" in r.json()["detail"] and _count(client, tokens, bad["text"]) == 0
    small = _jpeg()
    ok = _body(client, photos=["data:image/jpeg;base64," + base64.b64encode(small).decode(),
                               base64.b64encode(small).decode()])
    r = client.post("/m/reports", json=ok, headers=tokens["wu"])
    assert r.status_code == 201 and r.json()["photos"] == 2, r.text
    iid = r.json()["id"]
    listed = client.get(f"/m/incidents/{iid}/photos", headers=tokens["dan"]).json()
    assert [p["seq"] for p in listed] == [1, 2] and listed[0]["width"] == 64
    url = listed[0]["url"]
    for user, status in (("wu", 200), ("dan", 200), ("ada", 200), ("vic", 404), ("pia", 404), ("anonymous", 404)):
        got = client.get(url, headers=tokens[user])
        assert got.status_code == status, (user, got.status_code)
        if status == 200:
            assert got.headers["content-type"] == "image/jpeg" and got.content[:3] == b"\xff\xd8\xff"
    z = client.post("/auth/token", data={"username": "zhang", "password": "test-password-123"})
    if z.status_code == 200:  # another worker: not their grid, not their photo
        assert client.get(url, headers={"Authorization": "Bearer " + z.json()["access_token"]}).status_code == 404


@pytest.mark.parametrize("user, status", [("dan", 403), ("pia", 403), ("vic", 403), ("ada", 403), ("anonymous", 401)])
def test_only_workers_report_from_the_phone_page(client, tokens, user, status):
    body = _body(client)
    assert client.post("/m/reports", json=body, headers=tokens[user]).status_code == status
    assert client.get("/m/data", headers=tokens[user]).status_code == status
    assert _count(client, tokens, body["text"]) == 0


def test_the_workers_data_holds_their_grids_and_shifts_only(client, tokens):
    d = client.get("/m/data", headers=tokens["wu"]).json()
    assert sorted(f["properties"]["code"] for f in d["grids"]["features"]) == GRID_CODES[:2]
    assert {s["grid_code"] for s in d["shifts"]} == set(GRID_CODES[:2]) and len(d["shifts"]) == 4
    for s in d["shifts"]:  # metres along each line grow from 0 to about its length
        ms = [p[2] for p in s["line"]]
        assert ms[0] == 0 and ms == sorted(ms) and ms[-1] > 100
    assert d["timezone"] == "Asia/Shanghai" and len(d["today"]) == 10
