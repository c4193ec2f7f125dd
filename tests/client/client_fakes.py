"""Test helpers for the client toolkit: a fake provider behind ``httpx.MockTransport``.

The fake imitates what cannot be reproduced with a local consentry server:
real GetResponse's error format (no RFC 6749 members, ``context: []``), its
habit of returning the same refresh token, 403 with code 1014, "N seconds"
rate-limit resets, and the MAX hosts with their ``X-Domain`` header. It also
counts requests, which the single-flight tests need.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import secrets
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import httpx

try:
    import consentry.client  # noqa: F401
except ModuleNotFoundError:  # the package is not installed into the venv (yet)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from consentry.client import (  # noqa: E402
    AsyncClient,
    Client,
    MemoryTokenStore,
    Provider,
    TokenSet,
    TokenStore,
)

# Characters that RFC 6749 §2.3.1 wants form-urlencoded before Basic's base64.
CLIENT_ID = "my app:1"
CLIENT_SECRET = "s3cr+t/ü=%"
REDIRECT_URI = "https://mytemplatemaker.example.com/gr_callback"
KEY = "user-42"

DESCRIPTIONS = {
    1000: "Validation error",
    1013: "Resource not found",
    1014: "Problem during authentication process, check headers!",
    1015: "Quota reached",
}


def s256(verifier: str) -> str:
    """Independent PKCE S256 (RFC 7636 §4.2) for checking the client's."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class FakeProvider:
    """A token endpoint, revocation endpoint and /v3 API answering like GetResponse or consentry.

    style="consentry": errors carry RFC 6749 §5.2 members and GetResponse's.
    style="getresponse": errors carry only GetResponse's, empty context is ``[]``.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        style: str = "consentry",
        rotate: bool = True,
        omit_refresh_token: bool = False,
        auth_status: int = 401,
        bad_refresh_status: int = 400,
        refresh_delay: float = 0.0,
        expires_in: int = 3600,
    ) -> None:
        self.provider = provider
        self.style = style
        self.rotate = rotate
        self.omit_refresh_token = omit_refresh_token
        self.auth_status = auth_status
        self.bad_refresh_status = bad_refresh_status
        self.refresh_delay = refresh_delay
        self.expires_in = expires_in
        self.requests: list[httpx.Request] = []
        self.access: set[str] = set()
        self.refresh: set[str] = set()
        self.codes: dict[str, dict[str, str | None]] = {}
        self.revoked: list[dict[str, str]] = []
        self.api_queue: list[httpx.Response | Exception] = []
        self.token_queue: list[httpx.Response] = []
        self._lock = threading.Lock()

    # setting up ----------------------------------------------------------------------------

    def issue(self, refresh_token: str | None = None) -> tuple[str, str]:
        """Create a live access token and refresh token."""
        access, refresh = secrets.token_hex(20), refresh_token or secrets.token_hex(20)
        self.access.add(access)
        self.refresh.add(refresh)
        return access, refresh

    def seed(
        self, store: TokenStore, key: str = KEY, *, expires_at: float | None = None
    ) -> TokenSet:
        """Put a live grant into ``store`` (``expires_at`` defaults to an hour from now)."""
        access, refresh = self.issue()
        tokens = TokenSet(
            access_token=access,
            expires_in=3600,
            expires_at=time.time() + 3600 if expires_at is None else expires_at,
            refresh_token=refresh,
        )
        store.save(key, tokens)
        return tokens

    def issue_code(self, redirect_uri: str | None = None, challenge: str | None = None) -> str:
        code = secrets.token_hex(20)
        self.codes[code] = {"redirect_uri": redirect_uri, "challenge": challenge}
        return code

    def expire_access_tokens(self) -> None:
        self.access.clear()

    # inspecting ----------------------------------------------------------------------------

    def token_forms(self, grant_type: str | None = None) -> list[dict[str, str]]:
        forms = [_form(r) for r in self.requests if str(r.url) == self.provider.token_url]
        return [f for f in forms if grant_type is None or f.get("grant_type") == grant_type]

    def api_requests(self) -> list[httpx.Request]:
        special = {self.provider.token_url, self.provider.revoke_url}
        return [r for r in self.requests if str(r.url.copy_with(query=None)) not in special]

    # answering -----------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.refresh_delay and _form(request).get("grant_type") == "refresh_token":
            time.sleep(self.refresh_delay)
        return self.respond(request)

    async def ahandle(self, request: httpx.Request) -> httpx.Response:
        if self.refresh_delay and _form(request).get("grant_type") == "refresh_token":
            await asyncio.sleep(self.refresh_delay)
        return self.respond(request)

    def respond(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            url = str(request.url.copy_with(query=None))
            if self.provider.x_domain and request.headers.get("X-Domain") != self.provider.x_domain:
                return self.error(401, 1014, "X-Domain header missing or wrong", "invalid_client")
            if url == self.provider.token_url:
                if self.token_queue:
                    return self.token_queue.pop(0)
                return self._token(request)
            if url == self.provider.revoke_url:
                return self._revoke(request)
            if self.api_queue:
                item = self.api_queue.pop(0)
                if isinstance(item, Exception):
                    raise item
                return item
            return self._api(request)

    def error(
        self,
        status: int,
        code: int,
        message: str,
        rfc_error: str | None = None,
        context: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "httpStatus": status,
            "code": code,
            "codeDescription": DESCRIPTIONS.get(code, "Error"),
            "message": message,
            "moreInfo": f"https://apidocs.getresponse.com/en/v3/errors/{code}",
            "context": context or ([] if self.style == "getresponse" else {}),
            "uuid": str(uuid.uuid4()),
        }
        if self.style == "consentry" and rfc_error:
            body["error"] = rfc_error
            body["error_description"] = message
        return httpx.Response(status, json=body, headers=headers)

    def _client_ok(self, request: httpx.Request) -> bool:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Basic":
            return False
        user, _, password = base64.b64decode(value).decode().partition(":")
        return (unquote_plus(user), unquote_plus(password)) == (CLIENT_ID, CLIENT_SECRET)

    def _token(self, request: httpx.Request) -> httpx.Response:
        if not self._client_ok(request):
            return self.error(401, 1014, "Client authentication failed", "invalid_client")
        form = _form(request)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            bound = self.codes.pop(form.get("code", ""), None)
            if bound is None:
                return self.error(400, 1000, "Invalid authorization code", "invalid_grant")
            redirect_uri, challenge = bound["redirect_uri"], bound["challenge"]
            if redirect_uri is not None and form.get("redirect_uri") != redirect_uri:
                return self.error(400, 1000, "redirect_uri mismatch", "invalid_grant")
            if challenge is not None and s256(form.get("code_verifier", "")) != challenge:
                return self.error(400, 1000, "code_verifier mismatch", "invalid_grant")
            access, refresh = self.issue()
        elif grant == "refresh_token":
            old = form.get("refresh_token", "")
            if old not in self.refresh:
                return self.error(
                    self.bad_refresh_status, 1014, "Invalid refresh token", "invalid_grant"
                )
            if self.rotate:
                self.refresh.discard(old)
                access, refresh = self.issue()
            else:  # real GetResponse may hand the same refresh token back
                access, refresh = self.issue(refresh_token=old)
        else:
            return self.error(400, 1000, "Unsupported grant type", "unsupported_grant_type")
        body: dict[str, Any] = {
            "access_token": access,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
            "scope": None,
            "refresh_token": refresh,
        }
        if self.omit_refresh_token:
            del body["refresh_token"]
        return httpx.Response(200, json=body, headers={"Cache-Control": "no-store"})

    def _revoke(self, request: httpx.Request) -> httpx.Response:
        if not self._client_ok(request):
            return self.error(401, 1014, "Client authentication failed", "invalid_client")
        form = _form(request)
        self.revoked.append(form)
        self.refresh.discard(form.get("token", ""))
        self.access.discard(form.get("token", ""))
        return httpx.Response(200)

    def _api(self, request: httpx.Request) -> httpx.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.access:
            return self.error(
                self.auth_status,
                1014,
                "The access token provided is expired",
                context={"sentToken": token},
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        path = request.url.path
        headers = {
            "X-RateLimit-Limit": "30000",
            "X-RateLimit-Remaining": "29999",
            "X-RateLimit-Reset": "432 seconds",
        }
        if path.endswith("/accounts"):
            return httpx.Response(
                200, json={"accountId": "VfEy1", "email": "jo@example.com"}, headers=headers
            )
        if path.endswith("/missing"):
            return self.error(404, 1013, "Resource not found")
        payload = {
            "method": request.method,
            "path": path,
            "query": dict(request.url.params),
            "body": request.content.decode() or None,
        }
        headers |= {"TotalCount": "1", "TotalPages": "1", "CurrentPage": "1"}
        return httpx.Response(200, json=payload, headers=headers)


def _form(request: httpx.Request) -> dict[str, str]:
    if request.method != "POST" or "form-urlencoded" not in request.headers.get("Content-Type", ""):
        return {}
    return dict(parse_qsl(request.content.decode()))


class Harness:
    """Drives a ``Client`` or an ``AsyncClient`` with the same plain calls.

    A test written once against the harness checks both twins: coroutines are
    run to completion with ``asyncio.run``.
    """

    def __init__(
        self, kind: str, fake: FakeProvider, store: TokenStore | None = None, **options: Any
    ) -> None:
        self.kind = kind
        self.fake = fake
        self.store: TokenStore = store if store is not None else MemoryTokenStore()
        self.sleeps: list[float] = []
        self.client: Client | AsyncClient
        options.setdefault("redirect_uri", REDIRECT_URI)
        if kind == "sync":
            self.client = Client(
                fake.provider,
                CLIENT_ID,
                CLIENT_SECRET,
                store=self.store,
                http_client=httpx.Client(transport=httpx.MockTransport(fake.handle)),
                sleep=self.sleeps.append,
                **options,
            )
        else:

            async def sleep(seconds: float) -> None:
                self.sleeps.append(seconds)

            self.client = AsyncClient(
                fake.provider,
                CLIENT_ID,
                CLIENT_SECRET,
                store=self.store,
                http_client=httpx.AsyncClient(transport=httpx.MockTransport(fake.ahandle)),
                sleep=sleep,
                **options,
            )

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            return asyncio.run(result) if inspect.iscoroutine(result) else result

        return call
