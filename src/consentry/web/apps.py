"""Developer pages: "Add new application" and its details."""

from __future__ import annotations

from urllib.parse import urlsplit

from consentry.oauth.authorize import is_loopback_http


def redirect_uri_problem(uri: str) -> str | None:
    """Why a redirect URL cannot be registered, or None (RFC 6749 §3.1.2, RFC 8252 §7.3)."""
    if len(uri) > 2000:
        return "is longer than 2000 characters"
    if any(c.isspace() for c in uri) or not uri.isprintable():
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "is not a valid URL"
    if "#" in uri:
        return "must not contain a fragment (RFC 6749 §3.1.2)"
    if "*" in uri:
        return "must not contain wildcards"
    if not parts.hostname:
        return "must be an absolute URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not contain user credentials"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and is_loopback_http(uri):
        return None
    if parts.scheme == "http" and parts.hostname == "localhost":
        return "use http://127.0.0.1 or http://[::1] instead of localhost (RFC 8252 §8.3)"
    return "must use https (http only for 127.0.0.1 or [::1])"
