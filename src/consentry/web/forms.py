"""Reading page forms: size-capped, strictly decoded, with the CSRF check in one place."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from consentry.http import read_body
from consentry.oauth.params import ParamError, Params, parse_urlencoded
from consentry.runtime import Runtime


class FormError(Exception):
    """The form could not be read; shown to the person as a 400 page."""


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_form(rt: Runtime, request: Request) -> Params:
    ctype = content_type(request)
    body = await read_body(request, rt.settings.max_body_bytes)
    if not body:
        return Params({})  # nothing sent: the CSRF check answers it
    if ctype != "application/x-www-form-urlencoded":
        raise FormError("This form must be sent as application/x-www-form-urlencoded.")
    try:
        params = parse_urlencoded(body)
    except ParamError as exc:
        raise FormError(f"The form could not be read: {exc}.") from None
    if params.duplicates:
        raise FormError("A form field was sent more than once.")
    return params


async def read_multipart(
    request: Request, *, limit: int, max_files: int = 1, max_fields: int = 20
) -> FormData:
    """A ``multipart/form-data`` body (file uploads), read whole under ``limit`` bytes first.

    Reading the bytes before parsing means no upload, chunked or not, can spool more than
    ``limit`` bytes anywhere; :class:`consentry.http.BodyTooLarge` is raised past it.
    """
    if content_type(request) != "multipart/form-data":
        raise FormError("This form must be sent as multipart/form-data.")
    body = await read_body(request, limit)

    async def replay() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(
        request.headers,
        replay(),
        max_files=max_files,
        max_fields=max_fields,
        max_part_size=64 * 1024,
    )
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise FormError(f"The form could not be read: {exc.message}") from None


def text_field(form: FormData, name: str) -> str:
    """A text field's value ('' when absent); a file sent under a text name is ignored."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


async def file_field(form: FormData, name: str) -> bytes | None:
    """An uploaded file's bytes, or None when no file was chosen."""
    value = form.get(name)
    if not isinstance(value, UploadFile):
        return None
    data = await value.read()
    if not data and not value.filename:
        return None
    return data
