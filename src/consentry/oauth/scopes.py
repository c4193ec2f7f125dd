"""Scopes. GetResponse issues tokens with ``scope: null``, meaning the whole account;
consentry does the same when none is asked for, and also offers narrower scopes."""

from __future__ import annotations

from consentry.oauth.errors import AUTHENTICATION, ApiError, oauth_error

SCOPES: dict[str, str] = {
    "account.read": "Read your account details (name, email, company, time zone)",
    "from-fields.read": "See your sender addresses (from-fields)",
    "from-fields.write": "Add, remove and choose the default sender address",
}
FULL_ACCESS_DESCRIPTION = "Full access to your account: every scope below"
SCOPE_CHARS = frozenset(
    "!#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~"
)


def parse_scope(raw: str | None, error: str = "invalid_scope") -> str | None:
    """Normalised scope string (sorted, space-separated), or None for full access.

    RFC 6749 §3.3: a space-delimited list of case-sensitive tokens.
    """
    if raw is None:
        return None
    tokens = [i for i in raw.split(" ") if i]
    if not tokens:
        return None
    for t in tokens:
        if not set(t) <= SCOPE_CHARS:
            raise oauth_error(error, "scope contains characters RFC 6749 §3.3 does not allow")
        if t not in SCOPES:
            raise oauth_error(error, f"unknown scope {t[:64]!r}", supported=sorted(SCOPES))
    return " ".join(sorted(set(tokens)))


def covers(granted: str | None, wanted: str | None) -> bool:
    """Whether ``granted`` includes everything in ``wanted`` (None = whole account)."""
    if granted is None:
        return True
    if wanted is None:
        return False
    return set(wanted.split()) <= set(granted.split())


def narrow(granted: str | None, requested: str | None) -> str | None:
    """RFC 6749 §6: a refresh may ask for less, never more, than was granted."""
    if requested is None:
        return granted
    if not covers(granted, requested):
        raise oauth_error("invalid_scope", "the requested scope exceeds what was granted")
    return requested


def require(token_scope: str | None, needed: str) -> ApiError | None:
    if token_scope is None or needed in token_scope.split():
        return None
    return ApiError(
        AUTHENTICATION,
        f"The access token does not grant the scope {needed!r}",
        {"requiredScope": needed},
        http_status=403,
        headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'},
    )


def describe(scope: str | None) -> list[str]:
    if scope is None:
        return [FULL_ACCESS_DESCRIPTION] + list(SCOPES.values())
    return [SCOPES[s] for s in scope.split()]
