"""The error catalogue: GetResponse's codes beside the RFC 6749 / 6750 error codes.

Every error consentry answers with is a :class:`ApiError` value built here, rendered by
:func:`error_body`. GetResponse members (``httpStatus``, ``code``, ``codeDescription``,
``message``, ``moreInfo``, ``context``, ``uuid``) are always present; token-endpoint errors
add RFC 6749 §5.2's ``error`` and ``error_description`` so that standard OAuth libraries
raise their usual exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# GetResponse's catalogue (apidocs "Errors"): code -> (HTTP status, codeDescription).
INTERNAL = 1
VALIDATION = 1000
CONFLICT = 1008
NOT_FOUND = 1013
AUTHENTICATION = 1014
QUOTA = 1015
BAD_HEADERS = 1021

CATALOGUE: dict[int, tuple[int, str]] = {
    INTERNAL: (500, "Internal error"),
    VALIDATION: (400, "General error of validation process"),
    CONFLICT: (409, "Resource with this unique property already exists"),
    NOT_FOUND: (404, "Requested resource not found"),
    AUTHENTICATION: (401, "Problem during authentication process, check headers!"),
    QUOTA: (429, "The throttling limit has been reached"),
    BAD_HEADERS: (400, "Request headers are invalid"),
}

# RFC 6749 §5.2 error code -> (HTTP status, GetResponse code).
OAUTH_ERRORS: dict[str, tuple[int, int]] = {
    "invalid_request": (400, VALIDATION),
    "invalid_client": (401, AUTHENTICATION),  # RFC 6749 §5.2: 401 + WWW-Authenticate
    "invalid_grant": (400, VALIDATION),
    "unauthorized_client": (400, VALIDATION),
    "unsupported_grant_type": (400, VALIDATION),
    "invalid_scope": (400, VALIDATION),
    "unsupported_token_type": (400, VALIDATION),  # RFC 7009 §2.2.1
    # RFC 6749 §4.1.2.1's "try again later"; also what a rate-limited token request gets.
    "temporarily_unavailable": (429, QUOTA),
}


@dataclass
class ApiError(Exception):
    """An error answer. ``code`` is GetResponse's; ``error`` the RFC 6749 code, if any."""

    code: int
    message: str
    context: dict[str, Any] = field(default_factory=dict)
    http_status: int = 0
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.http_status:
            self.http_status = CATALOGUE[self.code][0]
        Exception.__init__(self, self.message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def oauth_error(error: str, description: str, **context: Any) -> ApiError:
    """An RFC 6749 §5.2 token-endpoint error (also used by RFC 7009 / 7662 endpoints)."""
    status, code = OAUTH_ERRORS[error]
    headers = {"WWW-Authenticate": 'Basic realm="consentry"'} if error == "invalid_client" else {}
    return ApiError(code, description, dict(context), status, error, headers)


def throttled(description: str, retry_after: int, limit: int) -> ApiError:
    """429 with GetResponse's 1015 body and ``Retry-After`` (token, revoke, introspect)."""
    err = oauth_error(
        "temporarily_unavailable",
        description,
        currentLimit=limit,
        timeToReset=f"{retry_after} seconds",
    )
    err.headers["Retry-After"] = str(retry_after)
    return err


def validation(message: str, **context: Any) -> ApiError:
    return ApiError(VALIDATION, message, dict(context))


def not_found(message: str = "Resource not found", **context: Any) -> ApiError:
    return ApiError(NOT_FOUND, message, dict(context))


def conflict(message: str, **context: Any) -> ApiError:
    return ApiError(CONFLICT, message, dict(context))


def invalid_token(message: str, sent_token: str | None, **context: Any) -> ApiError:
    """RFC 6750 §3.1 ``invalid_token`` with GetResponse's 1014 body."""
    ctx: dict[str, Any] = {"sentToken": sent_token} if sent_token is not None else {}
    ctx.update(context)
    desc = message.replace("\\", "").replace('"', "'")
    return ApiError(
        AUTHENTICATION,
        message,
        ctx,
        headers={
            "WWW-Authenticate": f'Bearer realm="consentry", error="invalid_token", '
            f'error_description="{desc}"'
        },
    )


def missing_token() -> ApiError:
    # RFC 6750 §3.1: a request without credentials gets no error code in the challenge.
    return ApiError(
        AUTHENTICATION,
        "Unable to find access token in the request, use the Authorization header",
        {"sentToken": None},
        headers={"WWW-Authenticate": 'Bearer realm="consentry"'},
    )


def error_body(err: ApiError, request_id: str, docs_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if err.error is not None:
        body["error"] = err.error
        body["error_description"] = err.message
    body.update(
        httpStatus=err.http_status,
        code=err.code,
        codeDescription=CATALOGUE[err.code][1],
        message=err.message,
        moreInfo=f"{docs_url}/errors/{err.code}",
        context=err.context,
        uuid=request_id,
    )
    return body
