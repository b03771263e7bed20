"""A planner drives the workbench (/planner) in headless Chromium, network cut off, on both stores: searches a
grid, selects blocks with real mouse clicks, reads the preview totals, moves them, undoes, splits, merges,
locks and reads a refused edit's Chinese message; a stale edit is refused and the page reloads. Other roles
see a 403 page and get 403 from every edit endpoint. Screenshots (1366×768, 390×844) go to $GRIDPATROL_SHOTS
(default: the test's tmp dir).
"""
from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
import shapely
from shapely.geometry import shape

from tests.api.live_server import PASSWORD, login, served_drawn_store
from tests.e2e.chromium import open_tab, require_chromium

EDITS = [("POST", "/grids/preview-move", {"items": [1]}), ("POST", "/grids/move-blocks", {"to": "x", "items": [1]}),
         ("POST", "/grids/x/split", {"parts": 2}), ("POST", "/grids/merge", {"codes": ["x", "y"]}),
         ("POST", "/grids/rebalance", {"codes": ["x", "y"]}), ("POST", "/grids/lock", {"codes": ["x"]}),
         ("POST", "/grids/x/worker", {"worker": "张三"}), ("POST", "/grids/x/name", {"name": "第3网格"}),
         ("POST", "/grids/undo", None), ("POST", "/grids/redo", None),
         ("GET", "/grids/versions", None), ("GET", "/maps/data/blocks", None)]


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def site(request, tmp_path_factory):  # noqa: ANN001, ANN201
    require_chromium()
    with served_drawn_store(request, tmp_path_factory, "planner") as (_db, base, tmp):
        yield {"base": base, "store": request.param, "shots": Path(os.environ.get("GRIDPATROL_SHOTS", tmp))}


def open_page(browser, base: str, user: str, viewport=(1366, 768)):  # noqa: ANN001, ANN201
    """A logged-in tab whose requests to anything but the server are aborted and recorded."""
    ctx, page, outside, errors = open_tab(browser, base, user, viewport)
    page.errors = errors  # type: ignore[attr-defined]
    return ctx, page, outside


def version(page) -> int:  # noqa: ANN001
    return int(page.locator("#gp-version").get_attribute("data-plan"))


def wait_version(page, v: int) -> None:  # noqa: ANN001
    page.wait_for_function(f"() => document.getElementById('gp-map').dataset.state === 'loaded' && "
                           f"Number(document.getElementById('gp-version').dataset.plan) === {v}", timeout=120_000)


def movable_block(base: str, largest_first: bool = False) -> tuple[int, dict, shapely.Point]:
    """A block whose move into its best neighbour keeps every rule (the one of fewest households, or
    of most with ``largest_first``), that preview, and a point inside the block."""
    h = login(base, "pia")
    blocks = httpx.get(base + "/maps/data/blocks", headers=h, timeout=60).json()["features"]
    for f in sorted(blocks, key=lambda f: f["properties"]["households"] or 0, reverse=largest_first):
        bid = f["properties"]["block_id"]
        r = httpx.post(base + "/grids/preview-move", headers=h, json={"items": [bid]}, timeout=60)
        if r.status_code == 200 and r.json()["ok"] and not r.json()["refusals"] and f["properties"]["households"]:
            return bid, r.json(), shape(f["geometry"]).representative_point()
    pytest.fail("no block can be moved without breaking a rule")


def click_lonlat(page, lon: float, lat: float, *, zoom: int = 18, shift: bool = False) -> None:  # noqa: ANN001
    page.evaluate(f"void window.gpMap.setView([{lat}, {lon}], {zoom}, {{animate: false}})")
    page.wait_for_timeout(300)
    pt = page.evaluate(f"(() => {{ const p = window.gpMap.latLngToContainerPoint([{lat}, {lon}]); return [p.x, p.y]; }})()")
    box = page.locator("#gp-map").bounding_box()
    if shift:
        page.keyboard.down("Shift")
    page.mouse.click(box["x"] + pt[0], box["y"] + pt[1])
    if shift:
        page.keyboard.up("Shift")


def test_planner_redraws_on_the_map(browser, site):  # noqa: ANN001
    base = site["base"]
    ctx, page, outside = open_page(browser, base, "pia")
    page.goto(base + "/planner")
    page.wait_for_selector("#gp-map[data-state=loaded]", timeout=120_000)
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "网格规划工作台" in page.inner_text("body") and "每个网格的户数" in page.inner_text(".gp-legend")
    v0 = version(page)
    # Street names as labels from zoom 16, none overlapping.
    page.evaluate("void window.gpMap.setZoom(17, {animate: false})")
    page.wait_for_timeout(500)
    rects = page.evaluate("() => Array.from(document.querySelectorAll('.gp-street-label')).map(e => "
                          "{ const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })")
    assert len(rects) >= 5
    page.screenshot(path=str(site["shots"] / f"planner_{site['store']}_streets.png"))

    # Search a grid by code; the list narrows to it, a click zooms there.
    codes = page.locator("#gp-grid-list li").evaluate_all("els => els.map(e => e.dataset.code)")
    assert len(codes) >= 5
    page.fill("#gp-search", codes[3][-3:])
    assert page.locator("#gp-grid-list li").evaluate_all("els => els.map(e => e.dataset.code)") == [codes[3]]
    page.locator("#gp-grid-list li").first.click()
    assert page.locator("#gp-grid-list li.gp-current").count() == 1
    page.fill("#gp-search", "")

    # Select a block with a real click: the preview shows what the two grids would become.
    bid, pre, pt = movable_block(base)
    click_lonlat(page, pt.x, pt.y)
    page.wait_for_selector("#gp-preview[data-state=ok]", timeout=60_000)
    assert "已选 1 个街区" in page.inner_text("#gp-selection")
    for g in pre["grids"]:
        row = page.locator(f"#gp-preview tr[data-code='{g['code']}'] .gp-hh").inner_text()
        assert row == f"{g['before']['households']:.0f} → {g['after']['households']:.0f}", row
    assert "可以移动" in page.inner_text("#gp-preview")
    page.screenshot(path=str(site["shots"] / f"planner_{site['store']}_preview.png"))
    page.click("#gp-commit")
    wait_version(page, v0 + 1)
    assert "已保存为版本" in page.inner_text("#gp-msg")
    blocks = httpx.get(base + "/maps/data/blocks", headers=login(base, "pia"), timeout=60).json()["features"]
    assert next(f for f in blocks if f["properties"]["block_id"] == bid)["properties"]["grid_code"] == pre["to"]

    # Undo: a new version where the block is back.
    page.click("#gp-undo")
    wait_version(page, v0 + 2)
    blocks = httpx.get(base + "/maps/data/blocks", headers=login(base, "pia"), timeout=60).json()["features"]
    src = next(g["code"] for g in pre["grids"] if g["role"] == "source")
    assert next(f for f in blocks if f["properties"]["block_id"] == bid)["properties"]["grid_code"] == src

    # Split the biggest grid in two, then merge the two parts again.
    page.click(".gp-tabs button[data-tab=grids]")
    page.select_option("#gp-sort", "street_m")
    blocks = httpx.get(base + "/maps/data/blocks", headers=login(base, "pia"), timeout=60).json()["features"]
    counts: dict[str, int] = {}
    for f in blocks:
        counts[f["properties"]["grid_code"]] = counts.get(f["properties"]["grid_code"], 0) + 1
    big = max(counts, key=counts.get)  # the grid of most blocks
    n_before = page.locator("#gp-grid-list li").count()
    page.locator(f"#gp-grid-list li[data-code='{big}']").click()
    page.fill("#gp-parts", "2")
    page.check("#gp-force-grids")  # halves of a ~320-household grid fall below the 300–500 band
    page.click("#gp-split")
    wait_version(page, v0 + 3)
    assert page.locator("#gp-grid-list li").count() == n_before + 1
    new = set(page.locator("#gp-grid-list li").evaluate_all("els => els.map(e => e.dataset.code)")) - set(codes)
    assert len(new) == 1
    for c in (big, *new):
        page.locator(f"#gp-grid-list li[data-code='{c}'] input[type=checkbox]").check()
    page.click("#gp-merge")
    wait_version(page, v0 + 4)
    assert page.locator("#gp-grid-list li").count() == n_before

    # Lock a grid; splitting it is refused with the reason in Chinese, and nothing changes.
    page.locator(f"#gp-grid-list li[data-code='{big}']").click()
    page.click("#gp-lock")
    wait_version(page, v0 + 5)
    assert "锁定" in page.locator(f"#gp-grid-list li[data-code='{big}']").inner_text()
    page.locator(f"#gp-grid-list li[data-code='{big}']").click()
    page.click("#gp-split")
    page.wait_for_selector("#gp-msg[data-state=error]")
    assert f"网格 {big} 已锁定" in page.inner_text("#gp-msg")
    assert version(page) == v0 + 5
    page.screenshot(path=str(site["shots"] / f"planner_{site['store']}_refused.png"))

    # Someone else saves an edit: this page's next edit is refused as stale and the page reloads.
    other = next(c for c in codes if c != big)
    r = httpx.post(base + "/grids/lock", headers=login(base, "ada"), json={"codes": [other]}, timeout=60)
    assert r.status_code == 200, r.text
    page.locator(f"#gp-grid-list li[data-code='{big}']").click()
    page.click("#gp-unlock")
    page.wait_for_function("() => document.getElementById('gp-msg').textContent.includes('方案已被他人修改')")
    wait_version(page, v0 + 6)
    assert httpx.get(base + "/grids/versions", headers=login(base, "pia"), timeout=60).json()[0]["plan_id"] == v0 + 6

    # Versions timeline and a diff of two versions.
    page.click(".gp-tabs button[data-tab=versions]")
    page.wait_for_selector("#gp-versions li[data-plan]")
    assert page.locator("#gp-versions li").count() == v0 + 6
    page.locator(f"#gp-versions li[data-plan='{v0}'] button").click()
    page.wait_for_selector("#gp-versions .gp-diff")
    assert "变动建筑" in page.inner_text("#gp-versions .gp-diff")
    page.screenshot(path=str(site["shots"] / f"planner_{site['store']}_versions.png"))
    assert page.errors == [] and outside == []
    ctx.close()

    # Phone viewport: the page still loads and shows the map and the list.
    ctx, page, outside = open_page(browser, base, "pia", viewport=(390, 844))
    page.goto(base + "/planner")
    page.wait_for_selector("#gp-map[data-state=loaded]", timeout=120_000)
    assert page.locator("#gp-grid-list li").count() >= 5
    page.screenshot(path=str(site["shots"] / f"planner_{site['store']}_phone.png"))
    assert page.errors == [] and outside == []
    ctx.close()


def test_planner_names_a_grid_and_shows_a_versions_diff_on_the_map(browser, site):  # noqa: ANN001
    """A grid gets a name from the page (a name with < > is refused in Chinese, nothing saved); a block
    moved elsewhere shows up as a ring on the map when two versions are compared, one per changed building."""
    base = site["base"]
    ctx, page, outside = open_page(browser, base, "pia")
    page.goto(base + "/planner")
    page.wait_for_selector("#gp-map[data-state=loaded]", timeout=120_000)
    v0 = version(page)
    code = page.locator("#gp-grid-list li").first.get_attribute("data-code")
    page.locator(f"#gp-grid-list li[data-code='{code}']").click()
    page.fill("#gp-grid-name", "第3网格<img src=x>")
    page.click("#gp-rename")
    page.wait_for_selector("#gp-msg[data-state=error]")
    assert "网格名称 grid name 不能包含 < 或 >" in page.inner_text("#gp-msg") and version(page) == v0
    page.locator(f"#gp-grid-list li[data-code='{code}']").click()
    page.fill("#gp-grid-name", "锦官驿社区第3网格")
    page.click("#gp-rename")
    wait_version(page, v0 + 1)
    assert "锦官驿社区第3网格" in page.locator(f"#gp-grid-list li[data-code='{code}']").inner_text()
    grids = httpx.get(base + "/grids", headers=login(base, "pia"), timeout=60).json()["features"]
    assert next(f for f in grids if f["properties"]["code"] == code)["properties"]["name"] == "锦官驿社区第3网格"

    # Another planner moves a block: its buildings are the diff between the two versions, ring by ring.
    bid, pre, _pt = movable_block(base, largest_first=True)
    r = httpx.post(base + "/grids/move-blocks", headers=login(base, "ada"), json={"to": pre["to"], "items": [bid]},
                   timeout=120)
    assert r.status_code == 200, r.text
    want = httpx.get(base + f"/grids/diff?a={v0 + 1}&b={v0 + 2}", headers=login(base, "pia"), timeout=120).json()
    assert want["summary"]["buildings_changed"] > 0
    page.reload()
    page.wait_for_selector("#gp-map[data-state=loaded]", timeout=120_000)
    page.click(".gp-tabs button[data-tab=versions]")
    page.locator(f"#gp-versions li[data-plan='{v0 + 1}'] button").click()
    page.wait_for_selector("#gp-versions .gp-diff")
    page.wait_for_selector("path.gp-diff-mark")
    assert page.locator("path.gp-diff-mark").count() == want["summary"]["buildings_changed"]
    # The rings sit on the changed buildings: every ring's centre is one of the diff's points.
    centres = page.evaluate("() => { const out = []; window.gpMap.eachLayer(l => { if (l.options && l.options.className === "
                            "'gp-diff-mark') { const c = l.getLatLng(); out.push([c.lng, c.lat]); } }); return out; }")
    got = sorted((round(x, 6), round(y, 6)) for x, y in centres)
    assert got == sorted((round(c["lon"], 6), round(c["lat"], 6)) for c in want["changes"])
    page.screenshot(path=str(site["shots"] / f"planner_{site['store']}_diff_map.png"))
    assert page.errors == [] and outside == []
    ctx.close()


@pytest.mark.parametrize("user", ["dan", "wu", "vic"])
def test_other_roles_see_no_workbench(browser, site, user):  # noqa: ANN001
    base = site["base"]
    ctx, page, _ = open_page(browser, base, user)
    resp = page.goto(base + "/planner")
    assert resp.status == 403
    assert page.locator("#gp-commit, #gp-split, #gp-undo").count() == 0
    ctx.close()
    h = login(base, user)
    for method, path, body in EDITS:
        r = httpx.request(method, base + path, headers=h, json=body, timeout=60)
        assert r.status_code == 403, (user, path, r.status_code, r.text)


def test_page_cookie_writes_need_the_page_header(site):  # noqa: ANN001
    """The login cookie writes only with our pages' header and origin: a forged cross-site form cannot edit."""
    base = site["base"]
    with httpx.Client(base_url=base, timeout=60) as c:
        c.post("/login", data={"username": "pia", "password": PASSWORD, "next": "/"})
        before = c.get("/grids/versions").json()[0]["plan_id"]
        # Without the header, or from another origin, the cookie is not read: the caller is anonymous (401/403).
        assert c.post("/grids/undo", headers={"Origin": base}).status_code in (401, 403)  # a form: no header
        assert c.post("/grids/undo", headers={"X-GridPatrol-Page": "1", "Origin": "http://evil.example"}).status_code in (401, 403)
        assert c.get("/grids/versions").json()[0]["plan_id"] == before
        r = c.post("/grids/preview-move", json={"items": [1]}, headers={"X-GridPatrol-Page": "1", "Origin": base})
        assert r.status_code in (200, 409), r.text
