"""The sans-IO core shared by :class:`Client` and :class:`AsyncClient`.

Every protocol step is written once, here, as a generator ("flow") that yields
*effects* -- send this request, sleep this long, load/save/delete tokens, run
this sub-flow while holding the key's lock -- and receives their results. The
sync and async drivers only perform effects; they hold no protocol logic.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import math
import re
import secrets
import threading
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit

import httpx

from ._errors import (
    AccessDenied,
    APIError,
    AuthorizationError,
    RateLimited,
    ReauthorizationRequired,
    StateMismatch,
)
from ._models import APIResponse, AuthorizationRequest, TokenSet
from ._provider import Provider
from ._stores import TokenStore

_log = logging.getLogger("consentry.client")

T = TypeVar("T")
LockT = TypeVar("LockT")

QueryParams = Mapping[str, str | int | float | bool]
CallbackParams = Mapping[str, str] | str
KeptRequest = AuthorizationRequest | Mapping[str, Any] | None


# --- effects -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``request``; the driver answers with the ``httpx.Response``."""

    request: httpx.Request


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Load:
    """Read the tokens stored under ``key``; answered with ``TokenSet | None``."""

    key: str


@dataclass(frozen=True, slots=True)
class Save:
    """Store ``tokens`` under ``key``."""

    key: str
    tokens: TokenSet


@dataclass(frozen=True, slots=True)
class Delete:
    """Forget the tokens stored under ``key``."""

    key: str


@dataclass(frozen=True, slots=True)
class Exclusive:
    """Run ``flow`` while holding the lock of ``key``; answered with the flow's result."""

    key: str
    flow: Generator[Effect, Any, Any]


Effect = Send | Sleep | Load | Save | Delete | Exclusive
Flow = Generator[Effect, Any, T]


# --- pure helpers --------------------------------------------------------------------------

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SECRET_NAMES = ("token", "secret", "password")
_REDACTED = "<redacted>"


def basic_auth(client_id: str, client_secret: str) -> str:
    """Return the ``Authorization`` value for HTTP Basic client authentication."""
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic's base64.
    pair = f"{quote_plus(client_id, safe='')}:{quote_plus(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def s256(verifier: str) -> str:
    """PKCE S256 challenge of ``verifier`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def parse_seconds(value: object) -> float | None:
    """Read a wait time such as ``432``, ``"432"`` or ``"432 seconds"``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return max(float(value), 0.0) if math.isfinite(value) else None
    if isinstance(value, str):
        match = _NUMBER.search(value)
        if match:
            return float(match.group())
    return None


def rate_limit_wait(response: httpx.Response, now: float) -> float:
    """How long a 429 response asks to wait before retrying, in seconds."""
    retry_after = response.headers.get("Retry-After")
    if retry_after is not None:
        # RFC 9110 §10.2.3: delay-seconds or an HTTP-date.
        try:
            seconds = float(retry_after)
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds):
            return max(seconds, 0.0)
        try:
            return max(parsedate_to_datetime(retry_after).timestamp() - now, 0.0)
        except (TypeError, ValueError):
            pass
    reset = parse_seconds(response.headers.get("X-RateLimit-Reset"))
    if reset is not None:
        return reset
    context = _json_object(response).get("context")
    if isinstance(context, dict):
        to_reset = parse_seconds(context.get("timeToReset"))
        if to_reset is not None:
            return to_reset
    return 1.0


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _scrub(text: object, secret_values: tuple[str, ...]) -> str | None:
    if not isinstance(text, str):
        return None
    for value in secret_values:
        if value:
            text = text.replace(value, _REDACTED)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _REDACTED
            if isinstance(k, str) and any(s in k.lower() for s in _SECRET_NAMES)
            else _redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _context(value: Any) -> dict[str, Any]:
    # Real GetResponse sends an empty context as [] rather than {}.
    if isinstance(value, dict):
        return dict(_redact(value))
    if isinstance(value, list) and value:
        return {"items": _redact(value)}
    return {}


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def parse_error(
    response: httpx.Response,
    secret_values: tuple[str, ...] = (),
    *,
    cls: type[APIError] = APIError,
    **extra: Any,
) -> APIError:
    """Build an :class:`APIError` from an RFC 6749 §5.2 body, a GetResponse body, or both."""
    body = _json_object(response)
    error = body.get("error")
    return cls(
        http_status=_int_or_none(body.get("httpStatus")) or response.status_code,
        code=_int_or_none(body.get("code")),
        code_description=_scrub(body.get("codeDescription"), secret_values),
        message=_scrub(body.get("message"), secret_values),
        more_info=_scrub(body.get("moreInfo"), secret_values),
        context=_context(body.get("context")),
        uuid=body.get("uuid") if isinstance(body.get("uuid"), str) else None,
        error=error if isinstance(error, str) else None,
        error_description=_scrub(body.get("error_description"), secret_values),
        **extra,
    )


def parse_token_response(
    response: httpx.Response,
    now: float,
    previous: TokenSet | None = None,
    secret_values: tuple[str, ...] = (),
) -> TokenSet:
    """Read a token endpoint response (RFC 6749 §5.1), or raise its error (§5.2).

    When refreshing, ``previous`` supplies the refresh token and scope if the
    response leaves them out (RFC 6749 §6: the server *may* issue a new one).
    """
    if response.status_code != 200:
        raise parse_error(response, secret_values)
    data = _json_object(response)
    access_token = data.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise APIError(http_status=response.status_code, message="no access_token in response")
    token_type = data.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        # RFC 6749 §7.1: a client must not use a token type it does not understand.
        raise APIError(http_status=response.status_code, message="unsupported token_type")
    expires_in = _int_or_none(data.get("expires_in"))
    refresh_token = data.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        refresh_token = previous.refresh_token if previous else None
    scope = data.get("scope") if "scope" in data else (previous.scope if previous else None)
    if isinstance(scope, list):
        scope = " ".join(str(s) for s in scope)
    return TokenSet(
        access_token=access_token,
        token_type=token_type,
        expires_in=expires_in,
        expires_at=None if expires_in is None else now + expires_in,
        refresh_token=refresh_token,
        scope=scope if isinstance(scope, str) else None,
    )


def is_auth_failure(response: httpx.Response) -> bool:
    """An API answer that a fresh access token may cure: 401, or 403 with code 1014."""
    if response.status_code == 401:  # RFC 6750 §3.1 invalid_token
        return True
    # Real GetResponse sometimes reports an expired token as 403 with code 1014.
    return response.status_code == 403 and _int_or_none(_json_object(response).get("code")) == 1014


def needs_reauthorization(error: APIError) -> bool:
    """Tell whether a failed refresh means the grant is gone (not a config or server fault)."""
    if error.error is not None:
        return error.error == "invalid_grant"  # RFC 6749 §5.2
    # Real GetResponse answers an expired or unknown refresh token in its own format.
    return error.http_status in (400, 401)


def parse_callback(params: CallbackParams) -> dict[str, str]:
    """Read callback parameters from a mapping, a query string, or the whole callback URL."""
    if not isinstance(params, str):
        return {str(k): str(v) for k, v in params.items()}
    query = params.split("#", 1)[0]
    if "?" in query or "://" in query:
        query = urlsplit(query).query
    values: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in values:
            # RFC 6749 §3.1: parameters must not be included more than once.
            raise AuthorizationError("invalid_request", f"duplicate parameter {name!r}")
        values[name] = value
    return values


def _with_query(url: str, params: list[tuple[str, str]]) -> str:
    separator = "&" if urlsplit(url).query else "?"
    return url + separator + urlencode(params)


class _Secret:
    """Holds a credential; its repr never shows it (tracebacks with locals, debuggers)."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<redacted>"


# --- the shared client core ----------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on refreshing and rate-limit waiting."""

    refresh_skew: float = 30.0
    max_rate_limit_wait: float = 30.0
    max_rate_limit_retries: int = 3


class Core:
    """Builds every request and interprets every response; performs no I/O."""

    def __init__(
        self,
        provider: Provider,
        client_id: str,
        client_secret: str,
        *,
        redirect_uri: str | None,
        scope: str | None,
        policy: RetryPolicy,
        clock: Callable[[], float],
    ) -> None:
        self.provider = provider
        self.client_id = client_id
        self._authorization = _Secret(basic_auth(client_id, client_secret))
        self.redirect_uri = redirect_uri
        self.scope = scope
        self.policy = policy
        self.clock = clock

    # authorization request ------------------------------------------------------------------

    def start(
        self, *, scope: str | None = None, redirect_uri: str | None = None
    ) -> AuthorizationRequest:
        """Build the authorize URL and the object to keep (RFC 6749 §4.1.1)."""
        redirect = redirect_uri if redirect_uri is not None else self.redirect_uri
        wanted = scope if scope is not None else self.scope
        # RFC 6749 §10.12 / RFC 9700 §4.7: an unguessable state binds the callback to this user.
        state = secrets.token_urlsafe(32)
        params = [("response_type", "code"), ("client_id", self.client_id)]
        if redirect:
            params.append(("redirect_uri", redirect))
        if wanted:
            params.append(("scope", wanted))
        params.append(("state", state))
        verifier = None
        if self.provider.pkce:
            verifier = secrets.token_urlsafe(64)  # RFC 7636 §4.1: 43-128 unreserved characters
            params += [("code_challenge", s256(verifier)), ("code_challenge_method", "S256")]
        return AuthorizationRequest(
            url=_with_query(self.provider.authorize_url, params),
            state=state,
            redirect_uri=redirect or None,
            code_verifier=verifier,
            scope=wanted or None,
        )

    def verify_callback(
        self, params: CallbackParams, kept: KeptRequest
    ) -> tuple[str, AuthorizationRequest]:
        """Check the authorization response and return its code (RFC 6749 §4.1.2)."""
        if kept is None:  # no pending request in this session: nothing to bind the callback to
            raise StateMismatch()
        request = (
            kept if isinstance(kept, AuthorizationRequest) else AuthorizationRequest.from_dict(kept)
        )
        values = parse_callback(params)
        received = values.get("state")
        # RFC 6749 §10.12: compare state in constant time before trusting anything else.
        if received is None or not hmac.compare_digest(
            received.encode("utf-8"), request.state.encode("utf-8")
        ):
            raise StateMismatch()
        issuer = values.get("iss")
        expected = self.provider.issuer
        # RFC 9207 §2.4: reject a response whose issuer is not the server we sent the user to.
        if (
            issuer is not None
            and expected is not None
            and issuer.rstrip("/") != expected.rstrip("/")
        ):
            raise AuthorizationError("invalid_issuer", "the callback comes from another issuer")
        error = values.get("error")
        if error:
            description, uri = values.get("error_description"), values.get("error_uri")
            if error == "access_denied":  # RFC 6749 §4.1.2.1
                raise AccessDenied(error, description, uri)
            raise AuthorizationError(error, description, uri)
        code = values.get("code")
        if not code:
            raise AuthorizationError("invalid_request", "the callback carries no code")
        return code, request

    # requests ---------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.provider.x_domain:
            headers["X-Domain"] = self.provider.x_domain  # GetResponse MAX
        return headers

    def _token_request(self, url: str, form: dict[str, str]) -> httpx.Request:
        headers = self._headers()
        headers["Authorization"] = self._authorization.value  # RFC 6749 §2.3.1
        return httpx.Request("POST", url, data=form, headers=headers)

    def api_url(self, path: str) -> str:
        """Resolve ``path`` against the API base; refuse absolute URLs on other origins."""
        base = self.provider.api_url.rstrip("/")
        if "://" in path:
            if not (path == base or path.startswith(base + "/")):
                # RFC 6750 §5.3: never send a bearer token anywhere but its resource server.
                raise ValueError("absolute URL outside the provider's API")
            return path
        return f"{base}/{path.lstrip('/')}"

    def _api_request(
        self,
        tokens: TokenSet,
        method: str,
        url: str,
        params: QueryParams | None,
        json: Any,
        headers: Mapping[str, str] | None,
    ) -> httpx.Request:
        merged = {
            k: v
            for k, v in (headers or {}).items()
            if k.lower() not in ("authorization", "x-domain")
        }
        merged.update(self._headers())
        merged["Authorization"] = f"Bearer {tokens.access_token}"  # RFC 6750 §2.1
        return httpx.Request(method, url, params=params, json=json, headers=merged)

    def _reauthorization(self, reason: str, scope: str | None = None) -> ReauthorizationRequired:
        return ReauthorizationRequired(reason, self.start(scope=scope))

    # flows ------------------------------------------------------------------------------

    def _send(self, build: Callable[[], httpx.Request]) -> Flow[httpx.Response]:
        """Send, waiting out 429 answers (GetResponse code 1015) within the policy's bounds."""
        waited = 0
        while True:
            response: httpx.Response = yield Send(build())
            if response.status_code != 429:
                return response
            wait = rate_limit_wait(response, self.clock())
            if (
                waited >= self.policy.max_rate_limit_retries
                or wait > self.policy.max_rate_limit_wait
            ):
                raise parse_error(response, cls=RateLimited, retry_after=wait)
            waited += 1
            _log.info("rate limited by %s; retrying in %.1f s", self.provider.name, wait)
            yield Sleep(wait)

    def callback_flow(self, key: str, params: CallbackParams, kept: KeptRequest) -> Flow[TokenSet]:
        """Verify the callback, exchange the code (RFC 6749 §4.1.3) and store the tokens."""
        code, request = self.verify_callback(params, kept)
        form = {"grant_type": "authorization_code", "code": code}
        if request.redirect_uri is not None:
            form["redirect_uri"] = request.redirect_uri  # RFC 6749 §4.1.3: iff it was sent
        if request.code_verifier is not None:
            form["code_verifier"] = request.code_verifier  # RFC 7636 §4.5
        response = yield from self._send(lambda: self._token_request(self.provider.token_url, form))
        tokens = parse_token_response(response, self.clock(), secret_values=(code,))
        yield Save(key, tokens)
        _log.info("connected key %r to %s", key, self.provider.name)
        return tokens

    def refresh_flow(self, key: str, stale: TokenSet | None) -> Flow[TokenSet]:
        """Refresh the grant stored under ``key`` (RFC 6749 §6). Run it under the key's lock.

        ``stale`` is the token set the caller found unusable; if the store already
        holds a different, fresh one, another caller has refreshed and it is
        returned without a request (single-flight). ``None`` forces a refresh.
        """
        current: TokenSet | None = yield Load(key)
        if current is None:
            raise self._reauthorization("no tokens stored")
        if (
            stale is not None
            and current.access_token != stale.access_token
            and not current.expires_within(self.policy.refresh_skew, self.clock())
        ):
            return current
        if current.refresh_token is None:
            raise self._reauthorization("no refresh token", current.scope)
        form = {"grant_type": "refresh_token", "refresh_token": current.refresh_token}
        response = yield from self._send(lambda: self._token_request(self.provider.token_url, form))
        try:
            fresh = parse_token_response(
                response, self.clock(), previous=current, secret_values=(current.refresh_token,)
            )
        except APIError as exc:
            if needs_reauthorization(exc):
                raise self._reauthorization(
                    "the refresh token was rejected", current.scope
                ) from exc
            raise
        # Saved before anyone uses the new access token: a crash from here on keeps the
        # only valid refresh token, and a failing store stops the new token being used.
        yield Save(key, fresh)
        _log.info("refreshed tokens of key %r at %s", key, self.provider.name)
        return fresh

    def api_flow(
        self,
        key: str,
        method: str,
        path: str,
        *,
        params: QueryParams | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Flow[APIResponse]:
        """Call the API with the key's bearer token, refreshing before expiry and once on 401."""
        url = self.api_url(path)
        tokens: TokenSet | None = yield Load(key)
        if tokens is None:
            raise self._reauthorization("no tokens stored")
        if tokens.expires_within(self.policy.refresh_skew, self.clock()):
            tokens = yield Exclusive(key, self.refresh_flow(key, tokens))
        retried = False
        while True:
            current: TokenSet = tokens
            response = yield from self._send(
                functools.partial(self._api_request, current, method, url, params, json, headers)
            )
            if is_auth_failure(response) and not retried:
                retried = True
                tokens = yield Exclusive(key, self.refresh_flow(key, current))
                continue
            if response.is_success:
                return APIResponse(response.status_code, response.headers, _body(response))
            raise parse_error(response, (current.access_token,))

    def force_refresh_flow(self, key: str) -> Flow[TokenSet]:
        """Refresh now, whatever the access token's expiry, under the key's lock."""
        tokens: TokenSet = yield Exclusive(key, self.refresh_flow(key, None))
        return tokens

    def disconnect_flow(self, key: str) -> Flow[None]:
        """Revoke the grant and forget the tokens, under the key's lock (no refresh races it)."""
        yield Exclusive(key, self._disconnect(key))

    def _disconnect(self, key: str) -> Flow[None]:
        tokens: TokenSet | None = yield Load(key)
        if tokens is None:
            return None
        revoke_url = self.provider.revoke_url
        if revoke_url is not None:
            # Revoking the refresh token ends the whole grant (RFC 7009 §2.1).
            if tokens.refresh_token is not None:
                form = {"token": tokens.refresh_token, "token_type_hint": "refresh_token"}
            else:
                form = {"token": tokens.access_token, "token_type_hint": "access_token"}
            response = yield from self._send(lambda: self._token_request(revoke_url, form))
            if response.status_code != 200:  # RFC 7009 §2.2: 200 even for unknown tokens
                raise parse_error(response, (form["token"],))
        yield Delete(key)
        _log.info("disconnected key %r from %s", key, self.provider.name)
        return None


def _body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


# --- pieces the two drivers share ----------------------------------------------------------


class KeyLocks(Generic[LockT]):
    """One lock per token key, created on demand and dropped when nobody holds or waits."""

    def __init__(self, factory: Callable[[], LockT]) -> None:
        self._factory = factory
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[LockT, int]] = {}

    def checkout(self, key: str) -> LockT:
        """Return the key's lock and count one more user of it."""
        with self._guard:
            lock, users = self._locks.get(key) or (self._factory(), 0)
            self._locks[key] = (lock, users + 1)
            return lock

    def checkin(self, key: str) -> None:
        """Count one user less; forget the lock when it was the last."""
        with self._guard:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class BaseClient:
    """What :class:`Client` and :class:`AsyncClient` share: configuration and ``start()``."""

    def __init__(
        self,
        provider: Provider,
        client_id: str,
        client_secret: str,
        *,
        redirect_uri: str | None,
        scope: str | None,
        store: TokenStore,
        refresh_skew: float,
        max_rate_limit_wait: float,
        max_rate_limit_retries: int,
        clock: Callable[[], float],
    ) -> None:
        self._core = Core(
            provider,
            client_id,
            client_secret,
            redirect_uri=redirect_uri,
            scope=scope,
            policy=RetryPolicy(refresh_skew, max_rate_limit_wait, max_rate_limit_retries),
            clock=clock,
        )
        self._store = store

    @property
    def provider(self) -> Provider:
        """The provider this client talks to."""
        return self._core.provider

    @property
    def store(self) -> TokenStore:
        """The token store."""
        return self._store

    def start(
        self, *, scope: str | None = None, redirect_uri: str | None = None
    ) -> AuthorizationRequest:
        """Begin authorization: a fresh state (and PKCE verifier) and the URL to redirect to.

        Keep the returned object (``to_dict()`` it into the session) until the callback.

        Example::

            auth = client.start()
            session["oauth"] = auth.to_dict()
            redirect(auth.url)
        """
        return self._core.start(scope=scope, redirect_uri=redirect_uri)

    def __repr__(self) -> str:
        core = self._core
        return (
            f"{type(self).__name__}(provider={core.provider.name!r}, client_id={core.client_id!r}, "
            f"redirect_uri={core.redirect_uri!r})"
        )
