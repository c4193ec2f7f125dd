"""Small value objects: the kept authorization request, the token set, an API response."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

_REDACTED = "<redacted>"
_BEARER = "Bearer"


def _opt_str(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{name} must be a string or null")


def _opt_number(data: Mapping[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number or null")
    return float(value)


@dataclass(frozen=True, repr=False)
class AuthorizationRequest:
    """What the app must keep between the redirect to the provider and the callback.

    Made by ``Client.start()``; store ``to_dict()`` in the user's session and give
    it back (or the dict itself) to ``Client.handle_callback()``. ``url`` is where
    to redirect the user. The repr hides ``state`` and ``code_verifier``.

    Example::

        auth = client.start()
        session["oauth"] = auth.to_dict()
        return RedirectResponse(auth.url, status_code=303)
    """

    url: str
    state: str
    redirect_uri: str | None = None
    code_verifier: str | None = None
    scope: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """Return a JSON-serialisable dict for a session."""
        return {
            "url": self.url,
            "state": self.state,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.code_verifier,
            "scope": self.scope,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthorizationRequest:
        """Rebuild the object from ``to_dict()``'s output; raise ``ValueError`` if malformed."""
        url, state = data.get("url"), data.get("state")
        if not isinstance(url, str) or not isinstance(state, str) or not state:
            raise ValueError("an authorization request needs a url and a state")
        return cls(
            url=url,
            state=state,
            redirect_uri=_opt_str(data, "redirect_uri"),
            code_verifier=_opt_str(data, "code_verifier"),
            scope=_opt_str(data, "scope"),
        )

    def __repr__(self) -> str:
        return (
            f"AuthorizationRequest(redirect_uri={self.redirect_uri!r}, scope={self.scope!r}, "
            f"pkce={self.code_verifier is not None})"
        )


@dataclass(frozen=True, repr=False)
class TokenSet:
    """The tokens of one grant, as the token endpoint returned them (RFC 6749 §5.1).

    ``expires_at`` is a UNIX time computed with the local clock when the response
    arrived (``None`` if the provider sent no ``expires_in``). The repr never
    shows the tokens.

    Example::

        tokens = client.handle_callback(params, kept, key=user_id)
        tokens.scope, tokens.expires_at
    """

    access_token: str
    token_type: str = _BEARER
    expires_in: int | None = None
    expires_at: float | None = None
    refresh_token: str | None = None
    scope: str | None = None

    def expires_within(self, seconds: float, now: float) -> bool:
        """Tell whether the access token expires within ``seconds`` of ``now``.

        The margin is capped at half the token's lifetime, so that a provider
        issuing very short-lived tokens does not force a refresh on every call.
        """
        if self.expires_at is None:
            return False
        margin = seconds
        if self.expires_in is not None:
            margin = min(margin, self.expires_in / 2)
        return now + margin >= self.expires_at

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (contains the tokens: keep it secret)."""
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "expires_at": self.expires_at,
            "refresh_token": self.refresh_token,
            "scope": self.scope,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenSet:
        """Rebuild a token set from ``to_dict()``'s output; raise ``ValueError`` if malformed."""
        access_token = data.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise ValueError("a token set needs an access_token")
        expires_in = _opt_number(data, "expires_in")
        return cls(
            access_token=access_token,
            token_type=_opt_str(data, "token_type") or _BEARER,
            expires_in=None if expires_in is None else int(expires_in),
            expires_at=_opt_number(data, "expires_at"),
            refresh_token=_opt_str(data, "refresh_token"),
            scope=_opt_str(data, "scope"),
        )

    def __repr__(self) -> str:
        refresh = None if self.refresh_token is None else _REDACTED
        return (
            f"TokenSet(access_token={_REDACTED!r}, token_type={self.token_type!r}, "
            f"expires_at={self.expires_at!r}, refresh_token={refresh!r}, scope={self.scope!r})"
        )


@dataclass(frozen=True)
class APIResponse:
    """A successful API response: status, headers and the parsed JSON body.

    ``data`` is the decoded JSON (``None`` for an empty body, the text for a
    non-JSON body). GetResponse's paging headers are in ``headers``
    (``TotalCount``, ``TotalPages``, ``CurrentPage``), as are the rate-limit ones.

    Example::

        page = client.get("/from-fields", key=user_id, params={"perPage": 10})
        for field in page.data: ...
        int(page.headers["TotalPages"])
    """

    status_code: int
    headers: httpx.Headers
    data: Any
