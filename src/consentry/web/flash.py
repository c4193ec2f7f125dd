"""Showing a new client secret exactly once, across the redirect that follows the POST.

The server keeps only the secret's hash, so the plaintext travels to the next page in a
short-lived cookie: encrypted (AES-GCM) under a key derived from ``SECRET_KEY`` and bound
to the session id and the client id, HttpOnly, SameSite=Strict, scoped to that app's
path, and deleted by the page that shows it. A reload or Back finds nothing to show.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.requests import Request
from starlette.responses import Response

from consentry.runtime import Runtime
from consentry.web.session import Session

COOKIE = "consentry_new_secret"
MAX_AGE = 300


def _aead(rt: Runtime) -> AESGCM:
    key = hmac.new(rt.settings.secret_key.encode(), b"consentry/flash/v1", hashlib.sha256)
    return AESGCM(key.digest())


def _aad(session: Session, client_id: str) -> bytes:
    return b"secret\0" + client_id.encode() + b"\0" + session.raw_id.encode()


def _path(client_id: str) -> str:
    return f"/apps/{client_id}"


def set_secret(
    rt: Runtime, response: Response, session: Session, client_id: str, secret: str
) -> None:
    nonce = os.urandom(12)
    blob = nonce + _aead(rt).encrypt(nonce, secret.encode(), _aad(session, client_id))
    response.set_cookie(
        COOKIE,
        base64.urlsafe_b64encode(blob).decode().rstrip("="),
        max_age=MAX_AGE,
        path=_path(client_id),
        httponly=True,
        samesite="strict",
        secure=rt.settings.secure_cookies,
    )


def read_secret(rt: Runtime, request: Request, session: Session, client_id: str) -> str | None:
    """The secret carried for this session and app, if any (then call :func:`clear_secret`)."""
    raw = request.cookies.get(COOKIE)
    if raw is None or len(raw) > 512:
        return None
    try:
        blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        plain = _aead(rt).decrypt(blob[:12], blob[12:], _aad(session, client_id))
    except (binascii.Error, ValueError, InvalidTag):
        return None
    return plain.decode()


def clear_secret(rt: Runtime, request: Request, response: Response, client_id: str) -> None:
    if COOKIE in request.cookies:
        response.delete_cookie(
            COOKIE,
            path=_path(client_id),
            httponly=True,
            samesite="strict",
            secure=rt.settings.secure_cookies,
        )
