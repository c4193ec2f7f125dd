"""The authorization endpoint's protocol rules (RFC 6749 §4.1.1-4.1.2, RFC 7636, RFC 9207).

This module decides; it renders nothing. :mod:`consentry.web.authorize` turns its answers
into pages (login, consent, error) and redirects.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from dataclasses import asdict, dataclass
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from sqlalchemy.engine import Connection

from consentry.crypto import new_token
from consentry.oauth.errors import ApiError
from consentry.oauth.issue import ACCESS_KIND, CODE_KIND
from consentry.oauth.scopes import parse_scope
from consentry.runtime import Runtime
from consentry.store import hot
from consentry.store import tokens as store
from consentry.store.clients import Client

# RFC 7636 §4.2: S256 challenges are 43 base64url characters; §4.1 allows 43-128.
CHALLENGE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
MAX_STATE = 2048


class PageError(Exception):
    """Shown to the user as an error page, never redirected (RFC 6749 §4.1.2.1)."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title = title
        self.message = message


@dataclass
class RedirectError(Exception):
    """Sent back to the client's redirect URI (RFC 6749 §4.1.2.1)."""

    redirect_uri: str
    error: str
    description: str
    state: str | None
    fragment: bool = False


@dataclass(frozen=True)
class AuthRequest:
    """A validated authorization request, kept server-side while the user logs in/consents."""

    client_id: str
    response_type: str
    redirect_uri: str
    redirect_uri_sent: bool
    scope: str | None
    state: str | None
    code_challenge: str | None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> AuthRequest:
        return cls(**json.loads(raw))

    def query(self) -> str:
        """The original query string, rebuilt from validated server-side values."""
        q: dict[str, str] = {"response_type": self.response_type, "client_id": self.client_id}
        if self.redirect_uri_sent:
            q["redirect_uri"] = self.redirect_uri
        if self.scope is not None:
            q["scope"] = self.scope
        if self.state is not None:
            q["state"] = self.state
        if self.code_challenge is not None:
            q["code_challenge"] = self.code_challenge
            q["code_challenge_method"] = "S256"
        return urlencode(q, quote_via=quote)


def is_loopback_http(uri: str) -> bool:
    try:
        parts = urlsplit(uri)  # raises on a malformed IPv6 host such as "http://[::1/cb"
    except ValueError:
        return False
    if parts.scheme != "http" or parts.hostname is None:
        return False
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def redirect_matches(registered: str, sent: str) -> bool:
    """Exact string match (RFC 9700 §4.1.3); for loopback IP redirects any port (RFC 8252 §7.3)."""
    if registered == sent:
        return True
    if is_loopback_http(registered) and is_loopback_http(sent):
        r, s = urlsplit(registered), urlsplit(sent)
        try:
            s.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            return False
        return (r.hostname, r.path, r.query, r.fragment) == (
            s.hostname,
            s.path,
            s.query,
            s.fragment,
        ) and "@" not in s.netloc
    return False


def with_params(uri: str, params: dict[str, str], fragment: bool = False) -> str:
    """Add parameters to a redirect URI, keeping its own query (RFC 6749 §3.1.2)."""
    parts = urlsplit(uri)
    extra = urlencode(params, quote_via=quote)
    if fragment:
        return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, extra))
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def error_redirect(rt: Runtime, err: RedirectError) -> str:
    params = {"error": err.error, "error_description": err.description}
    if err.state is not None:
        params["state"] = err.state
    params["iss"] = rt.settings.issuer  # RFC 9207 §2
    return with_params(err.redirect_uri, params, err.fragment)


async def validate(
    rt: Runtime, query: dict[str, list[str]], host: str | None
) -> tuple[AuthRequest, Client]:
    """Check an authorization request; raise PageError or RedirectError."""

    def one(name: str) -> str | None:
        values = query.get(name)
        if not values or values[0] == "":
            return None
        return values[0]

    # 1. Client and redirect URI first: until both are trusted, errors are pages.
    for name in ("client_id", "redirect_uri"):
        if len(query.get(name, [])) > 1:
            raise PageError("Invalid request", f"The parameter {name} was sent more than once.")
    client_id = one("client_id")
    if client_id is None:
        raise PageError("Invalid request", "The request has no client_id.")
    client = None
    if len(client_id) <= 128:
        client = await rt.db.run_read(hot.client_by_client_id, client_id)
    if client is None:
        raise PageError("Unknown application", "No application is registered with this client_id.")
    sent_redirect = one("redirect_uri")
    if sent_redirect is not None:
        if not any(redirect_matches(r, sent_redirect) for r in client.redirect_uris):
            raise PageError(
                "Invalid redirect URI",
                "The redirect_uri does not match any URL registered for this application.",
            )
        redirect_uri = sent_redirect
    elif len(client.redirect_uris) == 1:
        redirect_uri = client.redirect_uris[0]
    else:
        raise PageError(
            "Invalid request",
            "This application has several redirect URLs; the request must name one.",
        )
    # GetResponse MAX: a MAX application is authorized on its account's own domain.
    host_name = (host or "").split(":")[0].lower()
    if client.owner_max_domain is not None and host_name != client.owner_max_domain:
        raise PageError(
            "Wrong address",
            "This application belongs to a GetResponse MAX account; authorize it on "
            f"https://{client.owner_max_domain}/oauth2_authorize.html.",
        )

    # 2. From here on, errors go back to the client (RFC 6749 §4.1.2.1).
    state = one("state")
    response_type = one("response_type")
    implicit = response_type == "token"

    def fail(error: str, description: str) -> RedirectError:
        return RedirectError(redirect_uri, error, description, state, fragment=implicit)

    if state is not None and len(state) > MAX_STATE:
        raise fail("invalid_request", f"state is longer than {MAX_STATE} characters")
    dups = [k for k, v in query.items() if len(v) > 1]
    if dups:
        raise fail("invalid_request", f"parameter sent more than once: {', '.join(sorted(dups))}")
    if response_type is None:
        raise fail("invalid_request", "missing parameter: response_type")
    if response_type not in ("code", "token"):
        raise fail("unsupported_response_type", "response_type must be code")
    if implicit and not client.allow_implicit:
        # SPEC §1.5 / RFC 9700 §2.1.2: the implicit grant is off unless enabled per app.
        raise fail("unauthorized_client", "the implicit grant is not enabled for this application")
    try:
        scope = parse_scope(one("scope"))
    except ApiError as exc:
        raise fail("invalid_scope", exc.message) from None
    challenge = one("code_challenge")
    method = one("code_challenge_method")
    if method is not None and method != "S256":
        raise fail("invalid_request", "code_challenge_method must be S256 (plain is not allowed)")
    if challenge is not None:
        if method is None:
            # RFC 7636 §4.3 would default to plain, which RFC 9700 §2.1.1 rules out.
            raise fail("invalid_request", "code_challenge_method=S256 is required")
        if not CHALLENGE.fullmatch(challenge):
            raise fail("invalid_request", "code_challenge is malformed")
        if implicit:
            raise fail("invalid_request", "PKCE applies to response_type=code only")
    elif method is not None:
        raise fail("invalid_request", "code_challenge_method sent without code_challenge")
    request = AuthRequest(
        client_id=client.client_id,
        response_type=response_type,
        redirect_uri=redirect_uri,
        redirect_uri_sent=sent_redirect is not None,
        scope=scope,
        state=state,
        code_challenge=challenge,
    )
    return request, client


async def save_pending(rt: Runtime, req: AuthRequest, client: Client, user_id: int | None) -> str:
    """Keep the request server-side; the returned id is what forms carry."""
    request_id = new_token()
    async with rt.db.write() as conn:
        await store.create_auth_request(
            conn,
            request_hash=rt.keys.hash(request_id, "auth_request"),
            client_pk=client.id,
            user_id=user_id,
            params=req.to_json(),
            now=int(time.time()),
            ttl=max(rt.settings.code_ttl, 600),
        )
    return request_id


async def approve(
    rt: Runtime, req: AuthRequest, client: Client, user_id: int, remember: bool = True
) -> str:
    """Issue the code (or, for an enabled implicit client, the token); the redirect URL.

    ``remember=False`` when the consent is already on record for exactly this access (the
    remembered-consent path): nothing to write for it again."""
    now = int(time.time())
    if req.response_type == "token":
        value, stored = rt.keys.mint(ACCESS_KIND)
    else:
        value = new_token()
        stored = rt.keys.hash(value, CODE_KIND)
    # One write job: on SQLite it joins the group commit of the token endpoint's writes
    # instead of taking the async write lock and an fsync of its own.
    await rt.db.run_write(
        _approve_rows,
        req,
        client.id,
        user_id,
        stored,
        now,
        rt.settings.access_token_ttl,
        rt.settings.code_ttl,
        remember,
    )
    if req.response_type == "token":
        # SPEC §1.5: #access_token=...&token_type=bearer&expires_in=...&state=...
        frag = {
            "access_token": value,
            "token_type": "bearer",
            "expires_in": str(rt.settings.access_token_ttl),
        }
        if req.state is not None:
            frag["state"] = req.state
        return with_params(req.redirect_uri, frag, fragment=True)
    params = {"code": value}
    if req.state is not None:
        params["state"] = req.state  # RFC 6749 §4.1.2: exactly as received
    params["iss"] = rt.settings.issuer  # RFC 9207 §2
    return with_params(req.redirect_uri, params)


def _approve_rows(
    conn: Connection,
    req: AuthRequest,
    client_pk: int,
    user_id: int,
    value_hash: str,
    now: int,
    access_ttl: int,
    code_ttl: int,
    remember: bool,
) -> None:
    """Remember the consent, create the grant and its code (or implicit access token)."""
    if remember:
        store.upsert_consent(conn, user_id, client_pk, req.scope, now)
    grant_id = store.insert_grant(
        conn, user_id=user_id, client_pk=client_pk, scope=req.scope, now=now
    )
    if req.response_type == "token":
        hot.insert_access_token(
            conn,
            token_hash=value_hash,
            client_pk=client_pk,
            user_id=user_id,
            grant_id=grant_id,
            scope=req.scope,
            expires_at=now + access_ttl,
        )
    else:
        store.add_code(
            conn,
            code_hash=value_hash,
            grant_id=grant_id,
            client_pk=client_pk,
            user_id=user_id,
            redirect_uri=req.redirect_uri,
            redirect_uri_sent=req.redirect_uri_sent,
            scope=req.scope,
            code_challenge=req.code_challenge,
            expires_at=now + code_ttl,
        )


def deny_redirect(rt: Runtime, req: AuthRequest) -> str:
    return error_redirect(
        rt,
        RedirectError(
            req.redirect_uri,
            "access_denied",
            "The user denied the request",
            req.state,
            fragment=req.response_type == "token",
        ),
    )
