"""The whole story in a real browser, as the people involved live it.

A developer signs up and registers an application with a logo; a user signs up, is sent
to the authorize URL by the application, logs in, allows; the application exchanges the
code; the user revokes the application under Connected applications; its token stops
working. A screenshot of every page is saved under tests/e2e/screenshots/.
"""

from __future__ import annotations

import io
import secrets
import socket
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from PIL import Image, ImageDraw

PASSWORD = "correct horse battery"
STATE = "st/ate+1=2&é"  # must come back byte for byte
PHONE = {"width": 390, "height": 844}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def logo_png() -> bytes:
    img = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((16, 16, 496, 496), radius=96, fill=(255, 122, 0, 255))
    draw.rectangle((136, 150, 376, 210), fill=(255, 255, 255, 255))
    draw.rectangle((226, 150, 286, 380), fill=(255, 255, 255, 255))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


class Shots:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.n = 0

    def __call__(self, page: Any, name: str) -> None:
        self.n += 1
        page.screenshot(path=str(self.folder / f"{self.n:02d}-{name}.png"), full_page=True)


def watch(page: Any, problems: list[str]) -> None:
    """Collect console errors (a CSP violation shows up there) and failed page loads."""
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))


def test_developer_registers_user_allows_then_revokes(
    server: Any, chromium: Any, screenshots: Path, tmp_path: Path
) -> None:
    shot = Shots(screenshots)
    problems: list[str] = []
    port = free_port()
    redirect_uri = f"http://127.0.0.1:{port}/cb"
    dev_email = f"dev{secrets.token_hex(4)}@example.com"
    user_email = f"user{secrets.token_hex(4)}@example.com"

    # --- the developer -----------------------------------------------------------------------
    dev_ctx = chromium.new_context(base_url=server.url, viewport={"width": 1200, "height": 800})
    dev_ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    dev = dev_ctx.new_page()
    watch(dev, problems)
    dev.goto("/")
    shot(dev, "home-anonymous")
    dev.get_by_role("link", name="Sign up").first.click()
    dev.get_by_label("Name").fill("Dana Developer")
    dev.get_by_label("Email").fill(dev_email)
    dev.get_by_label("Password").fill(PASSWORD)
    shot(dev, "signup")
    dev.get_by_role("button", name="Sign up").click()
    dev.wait_for_url(server.url + "/")
    shot(dev, "home-logged-in")
    dev.get_by_role("link", name="My applications").first.click()
    shot(dev, "apps-empty")
    dev.get_by_role("link", name="Add new application").first.click()
    dev.wait_for_url("**/apps/new")
    dev.get_by_label("Name").fill("MyTemplateMaker")
    dev.get_by_label("Description").fill(
        "Designs e-mail templates and fills in your sender address for you."
    )
    logo = tmp_path / "logo.png"
    logo.write_bytes(logo_png())
    dev.get_by_label("Logo").set_input_files(str(logo))
    # First a mistake: plain http to a public host is refused with a clear message.
    dev.get_by_label("Redirect URLs").fill("http://mytemplatemaker.example.com/cb")
    dev.get_by_role("button", name="Register application").click()
    assert "must use https" in dev.content()
    shot(dev, "app-new-error")
    dev.get_by_label("Logo").set_input_files(str(logo))  # files are never kept by a browser
    dev.get_by_label("Redirect URLs").fill(redirect_uri)
    shot(dev, "app-new-filled")
    dev.get_by_role("button", name="Register application").click()
    dev.wait_for_url("**/apps/*")
    client_id = dev.locator("#client-id").inner_text().strip()
    secret = dev.locator("#client-secret").inner_text().strip()
    assert len(client_id) == 32 and len(secret) == 64
    copy = dev.locator('button[data-copy="client-secret"]')
    assert copy.is_visible(), "copy.js ran (CSP allows the external script)"
    copy.click()
    assert dev.evaluate("navigator.clipboard.readText()") == secret
    shot(dev, "app-created-secret-once")
    dev.reload()
    assert dev.locator("#client-secret").count() == 0, "the secret is shown only once"
    assert dev.locator(f'img[src="/apps/{client_id}/logo"]').evaluate("i => i.naturalWidth") > 0
    dev.locator("summary", has_text="Delete this application").click()
    shot(dev, "app-details")
    dev.get_by_role("link", name="My applications").first.click()
    shot(dev, "apps-list")

    # --- the user --------------------------------------------------------------------------------
    user_ctx = chromium.new_context(base_url=server.url, viewport={"width": 1200, "height": 800})
    user = user_ctx.new_page()
    watch(user, problems)
    landed: list[str] = []

    def callback(route: Any) -> None:
        landed.append(route.request.url)
        route.fulfill(status=200, content_type="text/plain", body="MyTemplateMaker callback")

    user.route(f"http://127.0.0.1:{port}/**", callback)
    user.goto("/signup")
    user.get_by_label("Name").fill("Uma User")
    user.get_by_label("Email").fill(user_email)
    user.get_by_label("Password").fill(PASSWORD)
    user.get_by_role("button", name="Sign up").click()
    user.wait_for_url(server.url + "/")
    user.get_by_role("button", name="Log out").click()
    user.wait_for_url("**/login")

    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": STATE,
            "scope": "account.read from-fields.read",
        }
    )
    user.goto(f"/oauth2_authorize.html?{query}")
    assert "to continue to" in user.content() and "MyTemplateMaker" in user.content()
    shot(user, "login-for-app")
    user.get_by_label("Email").fill(user_email)
    user.get_by_label("Password").fill("not the password")
    user.get_by_role("button", name="Log in").click()
    assert "Wrong email or password." in user.content()
    shot(user, "login-error")
    user.get_by_label("Password").fill(PASSWORD)
    user.get_by_role("button", name="Log in").click()
    user.get_by_role("button", name="Allow").wait_for()
    page_text = user.locator("main").inner_text()
    for expected in (
        "MyTemplateMaker",
        "Dana Developer",
        "Designs e-mail templates",
        "Read your account details",
        "127.0.0.1",
    ):
        assert expected in page_text, expected
    assert user.locator("img.logo").evaluate("i => i.naturalWidth") > 0
    shot(user, "consent")
    user.get_by_role("button", name="Allow").click()
    user.wait_for_url(f"http://127.0.0.1:{port}/cb?**")
    assert len(landed) == 1
    params = parse_qs(urlsplit(landed[0]).query)
    assert params["state"] == [STATE]
    assert params["iss"] == [server.url]
    code = params["code"][0]

    # --- the application exchanges the code ------------------------------------------------------
    tok = httpx.post(
        f"{server.url}/v3/token",
        auth=(client_id, secret),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
    )
    assert tok.status_code == 200, tok.text
    access = tok.json()["access_token"]
    me = httpx.get(f"{server.url}/v3/accounts", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 200 and me.json()["email"] == user_email

    # --- the user revokes it ---------------------------------------------------------------------
    user.goto("/connected-apps")
    assert "MyTemplateMaker" in user.content()
    user.locator("details.access summary").click()
    shot(user, "connected-apps")
    user.get_by_role("button", name="Revoke access of MyTemplateMaker").click()
    user.wait_for_url("**/connected-apps?revoked=1")
    assert "MyTemplateMaker" not in user.locator("main").inner_text()
    shot(user, "connected-apps-revoked")
    gone = httpx.get(f"{server.url}/v3/from-fields", headers={"Authorization": f"Bearer {access}"})
    assert gone.status_code == 401 and gone.json()["code"] == 1014

    user.goto("/apps/" + "0" * 32)
    shot(user, "not-found")

    # --- the same pages on a phone ---------------------------------------------------------------
    phone_ctx = chromium.new_context(base_url=server.url, viewport=PHONE, is_mobile=True)
    phone = phone_ctx.new_page()
    watch(phone, problems)
    phone.goto("/login")
    phone.get_by_label("Email").fill(dev_email)
    phone.get_by_label("Password").fill(PASSWORD)
    shot(phone, "phone-login")
    phone.get_by_role("button", name="Log in").click()
    phone.wait_for_url(server.url + "/")
    shot(phone, "phone-home")
    phone.goto(f"/apps/{client_id}")
    phone.locator("summary", has_text="Generate a new client secret").click()
    phone.get_by_role("button", name="Generate new secret").click()
    phone.wait_for_url(f"**/apps/{client_id}")
    new_secret = phone.locator("#client-secret").inner_text().strip()
    assert len(new_secret) == 64 and new_secret != secret
    shot(phone, "phone-app-new-secret")
    old = httpx.post(
        f"{server.url}/v3/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials"},
    )
    assert old.status_code == 401 and old.json()["error"] == "invalid_client"
    phone.goto("/apps")
    shot(phone, "phone-apps-list")
    phone.goto("/apps/new")
    shot(phone, "phone-app-new")
    phone.goto(f"/oauth2_authorize.html?{query}")
    shot(phone, "phone-consent")

    # Keyboard: focus is visible on the first link after Tab.
    phone.goto("/")
    phone.keyboard.press("Tab")
    outline = phone.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"

    for ctx in (dev_ctx, user_ctx, phone_ctx):
        ctx.close()
    # 404 pages are expected to be logged by the browser as a failed resource load.
    unexpected = [p for p in problems if "404" not in p and "Failed to load resource" not in p]
    assert not unexpected, unexpected


def test_throttled_login_page(make_server: Any, chromium: Any, screenshots: Path) -> None:
    s = make_server(login_limit_per_account="1")
    ctx = chromium.new_context(base_url=s.url, viewport={"width": 1200, "height": 800})
    page = ctx.new_page()
    page.goto("/login")
    for _ in range(2):
        page.get_by_label("Email").fill("someone@example.com")
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Log in").click()
    assert "Too many failed attempts" in page.content()
    page.screenshot(path=str(screenshots / "99-login-throttled.png"), full_page=True)
    page.get_by_role("link", name="Back to log in").click()
    page.get_by_label("Email").wait_for()
    ctx.close()
