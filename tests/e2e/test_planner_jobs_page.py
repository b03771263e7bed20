"""The planner's long operations run as jobs with a progress bar (headless Chromium, network cut off): redrawing
every grid and rebalancing grids queue a job (POST /jobs) and the bar, fed by GET /jobs/{id}, moves forward,
reaches the end with the Chinese "已完成" and the page loads the new version; a refused rebalance shows the
job's failure. GeoPackage: the server's own worker thread; PostGIS: a `gridpatrol worker` beside the server.
"""
from __future__ import annotations

import httpx
import pytest
import shapely
from shapely.geometry import shape

from tests.api.live_server import login, queue_worker, served_drawn_store
from tests.e2e.chromium import open_tab, require_chromium

# Records every state the progress bar shows (state, value, max, text), as the planner sees it.
WATCH_BAR = """
window.gpBar = [];
document.addEventListener('DOMContentLoaded', function () {
  var box = document.getElementById('gp-job');
  if (!box) { return; }
  function note() {
    var bar = document.getElementById('gp-job-bar'), text = document.getElementById('gp-job-text');
    window.gpBar.push([box.dataset.state, Number(bar.value), Number(bar.max), text.textContent, box.hidden]);
  }
  new MutationObserver(note).observe(box, {attributes: true, childList: true, subtree: true, characterData: true});
});
"""


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def site(request, tmp_path_factory):  # noqa: ANN001, ANN201
    require_chromium()
    with served_drawn_store(request, tmp_path_factory, "planner-jobs") as (db, base, _tmp):
        with queue_worker(db):  # the queue's workers are separate processes on PostGIS
            yield {"base": base, "store": request.param}


def _wait_loaded(page, plan: int | None = None) -> None:  # noqa: ANN001
    cond = "document.getElementById('gp-map').dataset.state === 'loaded'"
    if plan is not None:
        cond += f" && Number(document.getElementById('gp-version').dataset.plan) === {plan}"
    page.wait_for_function(f"() => {cond}", timeout=300_000)


def _check_bar(records: list) -> None:
    """The bar showed, moved only forward while the job ran, and ended full with 已完成."""
    shown = [r for r in records if not r[4]]
    assert shown, records
    running = [r for r in shown if r[0] in ("queued", "running")]
    values = [r[1] for r in running]
    assert values == sorted(values), records  # never back
    assert any(r[0] == "running" and "步" in r[3] for r in shown), records  # a step shown while it ran
    last = shown[-1]
    assert last[0] == "done" and last[1] == last[2] >= 1 and "已完成" in last[3], records


def _open_planner(browser, base: str, path: str) -> tuple:  # noqa: ANN001
    """(context, page, outside, errors, version shown): planner pia on ``path`` with the bar watched, map loaded."""
    ctx, page, outside, errors = open_tab(browser, base, "pia", init_script=WATCH_BAR)
    page.goto(base + path)
    _wait_loaded(page)
    return ctx, page, outside, errors, int(page.locator("#gp-version").get_attribute("data-plan"))


def test_redraw_and_rebalance_show_a_progress_bar_to_done(browser, site):  # noqa: ANN001
    base = site["base"]
    ctx, page, outside, errors, v0 = _open_planner(browser, base, "/planner")
    assert page.locator("#gp-job").is_hidden()

    page.click("#gp-draw-all")
    page.wait_for_selector("#gp-job:not([hidden])")
    page.wait_for_selector("#gp-job[data-state=done]", timeout=600_000)
    _wait_loaded(page, v0 + 1)
    assert "已生成新方案" in page.inner_text("#gp-msg")
    _check_bar(page.evaluate("window.gpBar"))
    job_id = int(page.locator("#gp-job").get_attribute("data-job"))
    job = httpx.get(f"{base}/jobs/{job_id}", headers=login(base, "pia"), timeout=60).json()
    assert job["kind"] == "draw-grids" and job["created_by"] == "pia" and job["result"]["plan_id"] == v0 + 1
    assert page.locator("#gp-job-cancel").is_hidden()

    # Rebalance two neighbouring grids: a job on the version the page shows.
    grids = httpx.get(f"{base}/grids", params={"plan_id": v0 + 1}, headers=login(base, "pia"), timeout=60).json()
    feats = [(f["properties"]["code"], shape(f["geometry"])) for f in grids["features"]]
    pair = next((a, b) for i, (a, ga) in enumerate(feats) for b, gb in feats[i + 1:]
                if shapely.intersection(ga.boundary, gb.boundary).length > 0)
    page.evaluate("window.gpBar.length = 0")
    for c in pair:
        page.locator(f"#gp-grid-list li[data-code='{c}'] input[type=checkbox]").check()
    page.check("#gp-force-grids")
    page.evaluate("document.getElementById('gp-msg').dataset.state = 'idle'")
    page.click("#gp-rebalance")
    page.wait_for_function("() => { const b = document.getElementById('gp-job'); return (b.dataset.job "
                           "&& (b.dataset.state === 'done' || b.dataset.state === 'failed')) "
                           "|| document.getElementById('gp-msg').dataset.state === 'error'; }", timeout=600_000)
    assert page.locator("#gp-job").get_attribute("data-job"), page.inner_text("#gp-msg")  # queued, not refused
    records = page.evaluate("window.gpBar")
    if page.locator("#gp-job").get_attribute("data-state") == "failed":  # a refusal, shown in Chinese
        assert "失败" in page.inner_text("#gp-job-text") and page.locator("#gp-msg[data-state=error]").count() == 1
    else:
        job_id = int(page.locator("#gp-job").get_attribute("data-job"))
        job = httpx.get(f"{base}/jobs/{job_id}", headers=login(base, "pia"), timeout=60).json()
        assert job["kind"] == "rebalance" and job["params"]["plan_id"] == v0 + 1  # the version the page showed
        page.wait_for_selector("#gp-msg[data-state=ok]", timeout=120_000)
        _wait_loaded(page, job["result"]["plan_id"])  # a new version, or the same when nothing moved
        last = [r for r in records if not r[4]][-1]
        assert last[0] == "done" and last[1] == last[2] and "重新平衡网格：已完成" in last[3]
        assert f"版本 {job['result']['plan_id']}" in page.inner_text("#gp-msg")
    assert errors == [] and outside == []
    ctx.close()


def test_a_job_page_text_is_english_on_request(browser, site):  # noqa: ANN001
    base = site["base"]
    ctx, page, outside, errors, v = _open_planner(browser, base, "/planner?lang=en")
    page.click("#gp-draw-all")
    page.wait_for_selector("#gp-job[data-state=done]", timeout=600_000)
    _wait_loaded(page, v + 1)
    assert "Redrawing the grids: done" in page.inner_text("#gp-job-text")
    assert errors == [] and outside == []
    ctx.close()
