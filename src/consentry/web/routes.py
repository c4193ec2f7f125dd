"""URL map of the pages (SPEC §1)."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from consentry.web import accounts, apps, authorize, connected
from consentry.web.pages import ASSET_HEADERS, WithHeaders

STATIC = Path(__file__).with_name("static")

routes = [
    Route("/", accounts.home, methods=["GET"]),
    Route("/oauth2_authorize.html", authorize.authorize_get, methods=["GET"]),
    Route("/oauth2_authorize.html", authorize.authorize_post, methods=["POST"]),
    Route("/login", accounts.login_get, methods=["GET"]),
    Route("/login", accounts.login_post, methods=["POST"]),
    Route("/signup", accounts.signup_get, methods=["GET"]),
    Route("/signup", accounts.signup_post, methods=["POST"]),
    Route("/logout", accounts.logout_post, methods=["POST"]),
    Route("/apps", apps.apps_list, methods=["GET"]),
    Route("/apps/new", apps.app_new_get, methods=["GET"]),
    Route("/apps/new", apps.app_new_post, methods=["POST"]),
    Route("/apps/{client_id}", apps.app_detail, methods=["GET"]),
    Route("/apps/{client_id}/secret", apps.app_secret_post, methods=["POST"]),
    Route("/apps/{client_id}/delete", apps.app_delete_post, methods=["POST"]),
    Route("/apps/{client_id}/logo", apps.app_logo, methods=["GET"]),
    Route("/connected-apps", connected.connected_get, methods=["GET"]),
    Route("/connected-apps/{client_id}/revoke", connected.revoke_post, methods=["POST"]),
    Mount(
        "/static",
        app=WithHeaders(
            StaticFiles(directory=STATIC), {**ASSET_HEADERS, "Cache-Control": "no-cache"}
        ),
        name="static",
    ),
]
