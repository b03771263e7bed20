"""Headless Chromium for the page tests: the network cut off but for the loopback server, and tabs that
log in and record every request that tried to leave."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from tests.api.live_server import PASSWORD
from tests.conftest import missing_dependency

try:
    import playwright.sync_api as pw
except ImportError:
    missing_dependency("python package playwright is needed for browser tests", module=True)

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
        # Cut the network: every host name but loopback fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def require_chromium() -> None:
    """Skip (fail in CI) when Chromium is not installed."""
    if not Path(CHROMIUM).exists():
        missing_dependency(f"{CHROMIUM} is not installed")


@contextmanager
def launch_chromium() -> Iterator[pw.Browser]:
    """A headless Chromium for the module's tests."""
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def log_in(page, base: str, user: str) -> None:  # noqa: ANN001
    """Log ``user`` in through the login form and wait for the page it leads to."""
    page.goto(base + "/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_load_state("load")


def open_tab(browser, base: str, user: str | None = None, viewport: tuple[int, int] = (1280, 900),  # noqa: ANN001, ANN201
             init_script: str | None = None):
    """(context, page, outside, errors): a fresh context (own cookies) whose requests to anything but
    the server are aborted and listed in ``outside``, page errors in ``errors``; logged in as ``user``."""
    ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    outside: list[str] = []

    def guard(route) -> None:  # noqa: ANN001
        if route.request.url.startswith("data:") or urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    ctx.route("**/*", guard)
    if init_script:
        ctx.add_init_script(init_script)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    if user:
        log_in(page, base, user)
    return ctx, page, outside, errors


def click_map_at(page, lon: float, lat: float) -> str:  # noqa: ANN001
    """Zoom the map (window.gpMap) to lon/lat, click there like a dispatcher, and return the lookup panel's text."""
    page.evaluate(f"void window.gpMap.setView([{lat}, {lon}], 19, {{animate: false}})")
    page.wait_for_timeout(500)
    pt = page.evaluate(f"(() => {{ const p = window.gpMap.latLngToContainerPoint([{lat}, {lon}]); return [p.x, p.y]; }})()")
    box = page.locator("#gp-map").bounding_box()
    page.mouse.click(box["x"] + pt[0], box["y"] + pt[1])
    page.wait_for_selector("#gp-panel[data-state=loaded]", timeout=30_000)
    return page.inner_text("#gp-panel")


@contextmanager
def phone_session(base: str, user: str, lat: float, lon: float, *, wait_ms: int = 120_000) -> Iterator[dict]:
    """A Pixel 5 in Shanghai's time zone (zh-CN) at ``lat``/``lon``, ``user`` logged in on the phone page
    (/m/ → login form → back to /m/, map loaded). Yields {"ctx", "page", "outside": requests that left the
    loopback server, "errors": page errors}."""
    with pw.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        ctx = b.new_context(**p.devices["Pixel 5"], locale="zh-CN", timezone_id="Asia/Shanghai",
                            geolocation={"latitude": lat, "longitude": lon, "accuracy": 8}, permissions=["geolocation"])
        outside: list[str] = []
        ctx.on("request", lambda r: outside.append(r.url) if urlsplit(r.url).hostname not in ("127.0.0.1", None)
               and not r.url.startswith("data:") else None)
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/m/")  # not logged in: to the login form, and back to /m/
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#gp-map[data-state=loaded]", timeout=wait_ms)
        try:
            yield {"ctx": ctx, "page": page, "outside": outside, "errors": errors}
        finally:
            b.close()
