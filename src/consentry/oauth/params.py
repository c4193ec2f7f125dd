"""Strict parsing of ``application/x-www-form-urlencoded`` bodies and query strings.

RFC 6749 §3.1 / §3.2: parameters sent without a value are treated as omitted, and request
and response parameters must not be included more than once. Bad percent-encoding and
bytes that are not UTF-8 are rejected rather than silently repaired.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from consentry.oauth.errors import ApiError, oauth_error

_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")


class ParamError(ValueError):
    """The raw parameters could not be read; ``str()`` says why (safe to show)."""


class Params:
    """Decoded parameters; every name occurs at most once unless collected as a list."""

    __slots__ = ("_values", "duplicates")

    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values
        self.duplicates = sorted(k for k, v in values.items() if len(v) > 1)

    def get(self, name: str) -> str | None:
        """The single value of ``name``, None when absent or empty (RFC 6749 §3.1)."""
        v = self._values.get(name)
        if not v or v[0] == "":
            return None
        return v[0]

    def get_raw(self, name: str) -> str | None:
        """Like :meth:`get` but an empty value is returned as ''."""
        v = self._values.get(name)
        return v[0] if v else None

    def all(self, name: str) -> list[str]:
        return list(self._values.get(name, []))

    def names(self) -> list[str]:
        return list(self._values)

    def as_dict(self) -> dict[str, str]:
        return {k: v[0] for k, v in self._values.items() if v}


def parse_urlencoded(raw: bytes) -> Params:
    """Decode ``a=1&b=2``; raise :class:`ParamError` on bad encoding."""
    values: dict[str, list[str]] = {}
    if not raw:
        return Params(values)
    if _BAD_PERCENT.search(raw):
        raise ParamError("invalid percent-encoding")
    for part in raw.split(b"&"):
        if not part:
            continue
        name_b, sep, value_b = part.partition(b"=")
        try:
            name = unquote_to_bytes(name_b.replace(b"+", b" ")).decode("utf-8")
            value = unquote_to_bytes(value_b.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise ParamError("parameters must be UTF-8") from None
        if "\x00" in name or "\x00" in value:
            raise ParamError("parameters must not contain NUL characters")
        values.setdefault(name, []).append(value)
    return Params(values)


def reject_duplicates(params: Params, names: tuple[str, ...] | None = None) -> None:
    """RFC 6749 §3.1: a parameter sent twice is an ``invalid_request``."""
    dups = [d for d in params.duplicates if names is None or d in names]
    if dups:
        raise oauth_error(
            "invalid_request", f"parameter sent more than once: {', '.join(dups)}", duplicates=dups
        )


def form_error(exc: ParamError) -> ApiError:
    return oauth_error("invalid_request", f"malformed request body: {exc}")
