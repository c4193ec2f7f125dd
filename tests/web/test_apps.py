"""Developer pages: add an application, its one-time secret, logo, redirect URLs, delete."""

from __future__ import annotations

import io
import os
import re
from typing import Any

import httpx
import pytest
from pagetools import (
    REDIRECT,
    SECRET,
    WebClient,
    create_app,
    csrf_for,
    developer_with_app,
    login,
    png,
    post_new_app,
    signup,
)
from PIL import Image

from consentry.web.apps import redirect_uri_problem


def app_ids(browser: httpx.Client) -> list[str]:
    page = browser.get("/apps")
    assert page.status_code == 200
    return re.findall(r'href="/apps/([0-9a-f]{32})"', page.text)


# --- add new application -----------------------------------------------------------------------


def test_new_app_shows_client_id_and_secret_once_with_copy_buttons(server: Any) -> None:
    b = server.browser()
    email = signup(b)
    client, page = create_app(b, email, name="Once Only", description="Shows its secret once.")
    assert client.client_id in page.text
    assert "only time the secret is shown" in page.text
    assert 'data-copy="client-secret"' in page.text and 'data-copy="client-id"' in page.text
    assert '<script src="/static/copy.js"' in page.text
    again = b.get(f"/apps/{client.client_id}")
    assert again.status_code == 200
    assert client.client_secret not in again.text and not SECRET.search(again.text)
    assert client.client_id in again.text
    assert client.client_id in app_ids(b)
    # The secret works at the token endpoint.
    r = server.token(client, grant_type="client_credentials")
    assert r.status_code == 200, r.text


def test_carried_secret_is_useless_to_another_session(server: Any) -> None:
    b = server.browser()
    email = signup(b)
    r = post_new_app(b)
    assert r.status_code == 303
    carried = b.cookies.get("consentry_new_secret")
    assert carried and len(carried) < 200
    other = server.browser()
    assert login(other, email).status_code == 303  # same account, another session
    other.cookies.set("consentry_new_secret", carried)
    page = other.get(r.headers["location"])
    assert page.status_code == 200 and not SECRET.search(page.text)
    assert SECRET.search(b.get(r.headers["location"]).text), "the creating session sees it"


def test_new_app_page_needs_login(server: Any) -> None:
    r = httpx.get(server.url + "/apps/new")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    r = httpx.get(server.url + "/apps")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_new_app_form_is_multipart_with_labelled_fields(server: Any) -> None:
    b = server.browser()
    signup(b)
    page = b.get("/apps/new")
    assert 'enctype="multipart/form-data"' in page.text
    for name in ("name", "description", "logo", "redirect_uris"):
        assert f'<label for="{name}"' in page.text
        assert f'id="{name}" name="{name}"' in page.text


# --- logo --------------------------------------------------------------------------------------


def png_with_text_chunk() -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<script>alert(1)</script>")
    out = io.BytesIO()
    Image.new("RGBA", (600, 300), (200, 10, 10, 128)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def test_logo_is_reencoded_shrunk_and_served_with_nosniff(server: Any) -> None:
    b = server.browser()
    email = signup(b)
    client, page = create_app(b, email, logo=("logo.png", png_with_text_chunk(), "image/png"))
    assert f'src="/apps/{client.client_id}/logo"' in page.text
    r = httpx.get(f"{server.url}/apps/{client.client_id}/logo")  # public: the consent page uses it
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-content-type-options"] == "nosniff"
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "PNG"
    assert max(img.size) <= 256 and img.size == (256, 128)
    assert b"<script>" not in r.content and "Comment" not in img.info


def test_jpeg_logo_is_accepted_and_served_as_png(server: Any) -> None:
    b = server.browser()
    email = signup(b)
    out = io.BytesIO()
    Image.new("RGB", (80, 80), (10, 150, 10)).save(out, "JPEG")
    client, _ = create_app(b, email, logo=("logo.jpg", out.getvalue(), "image/jpeg"))
    r = httpx.get(f"{server.url}/apps/{client.client_id}/logo")
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG")


def noise_png() -> bytes:
    """A real PNG just over 512 KiB (noise does not compress), under the 640 KiB body cap."""
    out = io.BytesIO()
    Image.frombytes("RGB", (420, 420), os.urandom(420 * 420 * 3)).save(out, "PNG")
    assert 512 * 1024 < out.tell() < 600 * 1024
    return out.getvalue()


@pytest.mark.parametrize(
    ("logo", "message"),
    [
        (("notes.txt", b"just some text, not an image", "text/plain"), "must be a PNG or JPEG"),
        (("fake.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 2000, "image/png"), "could not be read"),
        (("truncated.png", png()[:60], "image/png"), "could not be read"),
        (
            ("anim.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "image/gif"),
            "must be a PNG or JPEG",
        ),
        (
            ("page.png", b"<html><script>alert(1)</script></html>", "image/png"),
            "must be a PNG or JPEG",
        ),
        (("big.png", noise_png(), "image/png"), "larger than 512 KiB"),
    ],
    ids=["text", "fake-png-header", "truncated", "gif", "html-as-png", "over-512KiB"],
)
def test_bad_logo_is_a_form_error_and_no_app_is_created(
    server: Any, logo: tuple[str, bytes, str], message: str
) -> None:
    b = server.browser()
    signup(b)
    r = post_new_app(b, name="Bad Logo App", logo=logo)
    assert r.status_code == 400, r.text[:500]
    assert message in r.text
    assert 'id="logo-errors"' in r.text
    assert 'value="Bad Logo App"' in r.text, "the typed values are kept"
    assert app_ids(b) == []


def test_upload_over_the_body_cap_is_a_clear_413_not_a_crash(server: Any) -> None:
    b = server.browser()
    signup(b)
    r = post_new_app(
        b, logo=("huge.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (2 * 1024 * 1024), "image/png")
    )
    assert r.status_code == 413
    assert "at most 512 KiB" in r.text
    assert app_ids(b) == []


# --- redirect URLs -----------------------------------------------------------------------------


BAD_REDIRECTS = {
    "http://example.com/cb": "must use https",
    "https://example.com/cb#section": "fragment",
    "https://*.example.com/cb": "wildcard",
    "https://example.com/*": "wildcard",
    "http://localhost:8080/cb": "instead of localhost",
    "https://user:pw@example.com/cb": "credentials",
    "/relative/path": "absolute URL",
    "javascript:alert(1)": "absolute URL",
    "ftp://example.com/cb": "must use https",
    "https://example.com:99999/cb": "not a valid URL",
}


@pytest.mark.parametrize("uri", list(BAD_REDIRECTS))
def test_redirect_url_rules(uri: str) -> None:
    problem = redirect_uri_problem(uri)
    assert problem is not None and BAD_REDIRECTS[uri] in problem


@pytest.mark.parametrize(
    "uri",
    [
        "https://example.com/cb",
        "https://example.com/cb?x=1",
        "http://127.0.0.1:8080/cb",
        "http://[::1]/cb",
    ],
)
def test_good_redirect_urls(uri: str) -> None:
    assert redirect_uri_problem(uri) is None


def test_bad_redirect_urls_are_form_errors(server: Any) -> None:
    b = server.browser()
    signup(b)
    for uri, message in BAD_REDIRECTS.items():
        r = post_new_app(b, redirect_uris=f"{REDIRECT}\n{uri}")
        assert r.status_code == 400, uri
        assert 'id="redirect_uris-errors"' in r.text and message in r.text, uri
    r = post_new_app(b, redirect_uris="  \n ")
    assert r.status_code == 400 and "at least one redirect URL" in r.text
    assert app_ids(b) == []


def test_several_redirect_urls_one_per_line(server: Any) -> None:
    b = server.browser()
    email = signup(b)
    uris = "https://a.example.com/cb\r\n\r\nhttp://127.0.0.1:5000/cb\nhttps://a.example.com/cb\n"
    client, page = create_app(b, email, redirect_uris=uris)
    assert "<code>https://a.example.com/cb</code>" in page.text
    assert "<code>http://127.0.0.1:5000/cb</code>" in page.text
    assert page.text.count("<code>https://a.example.com/cb</code>") == 1, "duplicates dropped"
    # The authorize endpoint accepts both, and only them.
    r = httpx.get(
        server.url + "/oauth2_authorize.html",
        params={
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": "https://b.example.com/cb",
        },
    )
    assert r.status_code == 400


# --- ownership ---------------------------------------------------------------------------------


def test_other_users_cannot_see_or_change_my_app(server: Any) -> None:
    _dev, client = developer_with_app(server)
    intruder = server.browser()
    signup(intruder, "Mallory")
    r = intruder.get(f"/apps/{client.client_id}")
    assert r.status_code == 404
    assert client.client_id not in r.text
    unknown = intruder.get("/apps/" + "0" * 32)
    assert unknown.status_code == 404 and unknown.text.count(
        "Application not found"
    ) == r.text.count("Application not found")
    token = csrf_for(intruder, "/apps")
    for action in ("secret", "delete"):
        r = intruder.post(f"/apps/{client.client_id}/{action}", data={"csrf_token": token})
        assert r.status_code == 404, action
    assert client.client_id not in app_ids(intruder)
    # Still there, with the same secret.
    assert server.token(client, grant_type="client_credentials").status_code == 200


@pytest.mark.parametrize("action", ["secret", "delete"])
@pytest.mark.parametrize("sent", [None, "f" * 64])
def test_app_actions_without_a_valid_csrf_token_are_refused(
    server: Any, action: str, sent: str | None
) -> None:
    dev, client = developer_with_app(server)
    data = {} if sent is None else {"csrf_token": sent}
    r = dev.post(f"/apps/{client.client_id}/{action}", data=data)
    assert r.status_code == 403
    assert server.token(client, grant_type="client_credentials").status_code == 200


def test_new_app_without_a_valid_csrf_token_is_refused(server: Any) -> None:
    b = server.browser()
    signup(b)
    assert post_new_app(b, csrf="").status_code == 403
    assert post_new_app(b, csrf="a" * 64).status_code == 403
    assert app_ids(b) == []


# --- new secret, delete ------------------------------------------------------------------------


def test_new_secret_is_shown_once_and_the_old_one_fails_at_once(server: Any) -> None:
    dev, client = developer_with_app(server)
    assert server.token(client, grant_type="client_credentials").status_code == 200
    r = dev.post(f"/apps/{client.client_id}/secret", data={"csrf_token": csrf_for(dev, "/apps")})
    assert r.status_code == 303 and r.headers["location"] == f"/apps/{client.client_id}"
    page = dev.get(r.headers["location"])
    m = SECRET.search(page.text)
    assert m and m.group(1) != client.client_secret
    old = server.token(client, grant_type="client_credentials")
    assert old.status_code == 401 and old.json()["error"] == "invalid_client"
    new = WebClient(client.client_id, m.group(1), client.redirect_uri, client.owner)
    assert server.token(new, grant_type="client_credentials").status_code == 200
    assert not SECRET.search(dev.get(f"/apps/{client.client_id}").text)


def test_deleting_an_app_ends_its_tokens_at_once(server: Any) -> None:
    dev, client = developer_with_app(server)
    tokens = server.tokens(client)
    assert server.api("GET", "/v3/from-fields", tokens["access_token"]).status_code == 200
    r = dev.post(f"/apps/{client.client_id}/delete", data={"csrf_token": csrf_for(dev, "/apps")})
    assert r.status_code == 303 and r.headers["location"] == "/apps?deleted=1"
    assert "was deleted" in dev.get(r.headers["location"]).text
    api = server.api("GET", "/v3/from-fields", tokens["access_token"])
    assert api.status_code == 401 and api.json()["code"] == 1014
    refresh = server.token(
        client, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert refresh.status_code == 401
    assert dev.get(f"/apps/{client.client_id}").status_code == 404
    assert httpx.get(f"{server.url}/apps/{client.client_id}/logo").status_code == 404


def test_app_without_logo_has_no_logo_url(server: Any) -> None:
    _dev, client = developer_with_app(server)
    r = httpx.get(f"{server.url}/apps/{client.client_id}/logo")
    assert r.status_code == 404 and r.headers["x-content-type-options"] == "nosniff"
