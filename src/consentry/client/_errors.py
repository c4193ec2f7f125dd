"""Exceptions raised by the client toolkit.

Every error is a :class:`ClientError`. No message, repr or attribute of these
exceptions carries a token or a client secret: the provider's ``context`` is
scrubbed of anything that looks like a token before it is stored here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import AuthorizationRequest


class ClientError(Exception):
    """Base class of every error raised by :mod:`consentry.client`."""


class AuthorizationError(ClientError):
    """The authorization response (the callback) is an error or cannot be trusted.

    ``error``, ``error_description`` and ``error_uri`` are the RFC 6749 §4.1.2.1
    members the provider put in the redirect, or a toolkit code such as
    ``state_mismatch`` or ``invalid_issuer``.

    Example::

        try:
            client.handle_callback(request.query_params, kept, key=user_id)
        except AccessDenied:
            flash("You chose not to connect your account.")
        except AuthorizationError as exc:
            flash(f"Connection failed: {exc.error}")
    """

    def __init__(
        self,
        error: str,
        error_description: str | None = None,
        error_uri: str | None = None,
    ) -> None:
        self.error = error
        self.error_description = error_description
        self.error_uri = error_uri
        text = f"{error}: {error_description}" if error_description else error
        super().__init__(text)


class AccessDenied(AuthorizationError):
    """The user pressed "Deny" on the consent page (``error=access_denied``)."""


class StateMismatch(AuthorizationError):
    """The callback's ``state`` is missing or differs from the one sent (RFC 6749 §10.12).

    Treat it as a possible CSRF attempt: do not retry with the same parameters.
    """

    def __init__(self) -> None:
        super().__init__("state_mismatch", "the callback state does not match the one sent")


class APIError(ClientError):
    """The provider answered an API or token request with an error.

    Carries GetResponse's error members (``http_status``, ``code``,
    ``code_description``, ``message``, ``more_info``, ``context``, ``uuid``) and,
    when the token endpoint sent them, the RFC 6749 §5.2 members ``error`` and
    ``error_description``. ``context`` is always a dict: GetResponse's empty
    ``[]`` becomes ``{}``, a non-empty list is kept under ``"items"``, and values
    whose name mentions a token or secret (``sentToken``) are redacted.

    Example::

        try:
            client.get("/from-fields/XYZ", key=user_id)
        except APIError as exc:
            if exc.code == 1013:  # resource not found
                ...
    """

    def __init__(
        self,
        *,
        http_status: int,
        code: int | None = None,
        code_description: str | None = None,
        message: str | None = None,
        more_info: str | None = None,
        context: dict[str, Any] | None = None,
        uuid: str | None = None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> None:
        self.http_status = http_status
        self.code = code
        self.code_description = code_description
        self.message = message
        self.more_info = more_info
        self.context: dict[str, Any] = context if context is not None else {}
        self.uuid = uuid
        self.error = error
        self.error_description = error_description
        super().__init__(self._text())

    def _text(self) -> str:
        parts = [f"HTTP {self.http_status}"]
        if self.code is not None:
            parts.append(f"code {self.code}")
        if self.error:
            parts.append(self.error)
        head = ", ".join(parts)
        detail = self.message or self.error_description or self.code_description
        return f"{head}: {detail}" if detail else head


class RateLimited(APIError):
    """The provider's rate limit (HTTP 429, code 1015) lasts longer than the client may wait.

    ``retry_after`` is the number of seconds the provider asked to wait.
    """

    def __init__(self, *, retry_after: float, **members: Any) -> None:
        self.retry_after = retry_after
        super().__init__(**members)

    def _text(self) -> str:
        return f"{super()._text()} (retry after {self.retry_after:g} s)"


class ReauthorizationRequired(ClientError):
    """The stored grant cannot be used any more; send the user through authorization again.

    Raised when no tokens are stored for the key, when there is no refresh token,
    or when the provider rejects the refresh token (expired, revoked, rotated).
    ``authorization`` is a fresh :class:`AuthorizationRequest`: keep it in the
    session and redirect the user to ``url``.

    Example::

        try:
            accounts = client.get("/accounts", key=user_id).data
        except ReauthorizationRequired as exc:
            session["oauth"] = exc.authorization.to_dict()
            return RedirectResponse(exc.url, status_code=303)
    """

    def __init__(self, reason: str, authorization: AuthorizationRequest) -> None:
        self.reason = reason
        self.authorization = authorization
        super().__init__(f"re-authorization required: {reason}")

    @property
    def url(self) -> str:
        """The authorize URL to redirect the user to."""
        return self.authorization.url
