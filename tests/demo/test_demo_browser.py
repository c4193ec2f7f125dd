"""A newcomer's first minute: ``consentry demo``, then MyTemplateMaker clicked in Chromium.

Uses Debian's /usr/bin/chromium through Playwright (never ``playwright install``).
Screenshots of every page go to tests/e2e/screenshots/demo/ (git-ignored).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from demo_support import Demo, start_demo

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[1] / "e2e" / "screenshots" / "demo"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    d = start_demo(tmp_path / "consentry-demo")
    yield d
    if d.proc.poll() is None:
        d.stop(signal.SIGTERM)


@pytest.fixture
def page(demo: Demo) -> Iterator[Any]:
    provider_url = demo.provider_url
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1100, "height": 800})
        errors: list[str] = []
        pg = context.new_page()
        pg.on("console", lambda m: errors.append(f"{m.text} {m.location.get('url')}")
              if m.type == "error" else None)  # fmt: skip
        pg.set_default_timeout(20_000)
        yield pg
        context.close()
        browser.close()
        # No console error (e.g. a CSP violation); the provider's pages have no favicon.
        assert not [e for e in errors if not e.endswith(f"{provider_url}/favicon.ico")], errors


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_connect_add_disconnect_in_chromium(demo: Demo, page: Any) -> None:
    assert demo.email == "demo@example.com" and demo.password
    assert demo.app_url in demo.text and demo.provider_url in demo.text

    page.goto(demo.app_url + "/")
    shot(page, "01-home")
    page.get_by_role("link", name="Connect your GetResponse account").click()

    page.wait_for_url(f"{demo.provider_url}/**")  # the provider's login page
    assert "MyTemplateMaker" in page.content()
    page.fill("input[name=email]", demo.email)
    page.fill("input[name=password]", demo.password)
    shot(page, "02-login")
    page.click("form[action='/login'] button[type=submit]")

    page.wait_for_selector("button[name=decision][value=allow]")  # the consent page
    assert "MyTemplateMaker" in page.content()
    shot(page, "03-consent")
    page.click("button[name=decision][value=allow]")

    page.wait_for_url(f"{demo.app_url}/")  # back in MyTemplateMaker, connected
    table = page.locator("#from-fields")
    assert "demo@example.com" in table.inner_text()
    assert "Your account is connected." in page.content()
    shot(page, "04-dashboard")

    page.fill("#add-from-field input[name=name]", "Newsletter team")
    page.fill("#add-from-field input[name=email]", "news@example.com")
    page.click("#add-from-field button[type=submit]")
    page.wait_for_url(f"{demo.app_url}/")
    assert "news@example.com" in table.inner_text()
    assert "Newsletter team" in table.inner_text()
    shot(page, "05-added")

    page.click("#disconnect")
    page.wait_for_url(f"{demo.app_url}/")
    assert page.get_by_role("link", name="Connect your GetResponse account").is_visible()
    assert "Disconnected" in page.content()
    shot(page, "06-disconnected")

    # Ctrl-C stops both servers cleanly.
    assert demo.stop(signal.SIGINT) == 0
    assert "stopped." in demo.text
    for url in (demo.provider_url, demo.app_url):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", timeout=2)
