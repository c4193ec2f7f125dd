"""Reading page forms: size-capped, strictly decoded, with the CSRF check in one place."""

from __future__ import annotations

from starlette.requests import Request

from consentry.http import read_body
from consentry.oauth.params import ParamError, Params, parse_urlencoded
from consentry.runtime import Runtime


class FormError(Exception):
    """The form could not be read; shown to the person as a 400 page."""


async def read_form(rt: Runtime, request: Request) -> Params:
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = await read_body(request, rt.settings.max_body_bytes)
    if ctype != "application/x-www-form-urlencoded":
        raise FormError("This form must be sent as application/x-www-form-urlencoded.")
    try:
        params = parse_urlencoded(body)
    except ParamError as exc:
        raise FormError(f"The form could not be read: {exc}.") from None
    if params.duplicates:
        raise FormError("A form field was sent more than once.")
    return params
