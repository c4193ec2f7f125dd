"""URL map of the pages (SPEC §1)."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from consentry.web import accounts, authorize

STATIC = Path(__file__).with_name("static")

routes = [
    Route("/oauth2_authorize.html", authorize.authorize_get, methods=["GET"]),
    Route("/oauth2_authorize.html", authorize.authorize_post, methods=["POST"]),
    Route("/login", accounts.login_get, methods=["GET"]),
    Route("/login", accounts.login_post, methods=["POST"]),
    Route("/signup", accounts.signup_get, methods=["GET"]),
    Route("/signup", accounts.signup_post, methods=["POST"]),
    Route("/logout", accounts.logout_post, methods=["POST"]),
    Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
]
