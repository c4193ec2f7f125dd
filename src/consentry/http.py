"""Small HTTP helpers shared by the protocol, API and page layers."""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from consentry.oauth.errors import ApiError, error_body


class BodyTooLarge(Exception):
    """The request body is over the configured limit (answered with 413)."""


# Where the server's fast lane leaves a request's body, read in full before the endpoint
# runs (its Content-Length framed it), so that read_body need not step the ASGI stream.
WHOLE_BODY = "consentry.whole_body"


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes without reading past it."""
    whole = request.scope.pop(WHOLE_BODY, None)
    if whole is not None:
        if len(whole) > limit:
            raise BodyTooLarge
        return whole  # type: ignore[no-any-return]
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge
        except ValueError:
            raise BodyTooLarge from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


# A whole response as the server's fast lane writes it: status, header pairs, body.
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


# One encoder for every response. json.dumps with any non-default option builds a new
# JSONEncoder per call, and JSONEncoder.encode a new C encoder per call (together a fifth of
# a bearer GET's own work); without circular-reference markers the C encoder keeps no state
# between calls, so one is made here and reused.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encode_basestring: Any = getattr(json.encoder, "c_encode_basestring", None)
_C_ENCODE: Any = (
    None
    if _c_make_encoder is None or _c_encode_basestring is None
    else _c_make_encoder(
        None, _ENCODER.default, _c_encode_basestring, None, ":", ",", False, False, True
    )
)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON (``json.dumps(obj, separators=(",", ":"), ensure_ascii=False)``)."""
    if _C_ENCODE is None:
        return _ENCODER.encode(obj).encode()
    return "".join(_C_ENCODE(obj, 0)).encode()


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        # The common answers (200; no headers, or the token endpoint's NO_STORE) on every
        # request: Starlette's header list, built by json_headers without its scan for
        # Content-Length / Content-Type.
        if self.status_code == 200 and (headers is None or headers is NO_STORE):
            self.raw_headers = json_headers(len(self.body), headers)
            return
        super().init_headers(headers)


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_NO_STORE_RAW = tuple((k.lower().encode(), v.encode()) for k, v in NO_STORE.items())


def json_headers(length: int, headers: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
    """The header pairs Starlette's ``JSONResponse`` writes for a ``length``-byte body with
    status 200 and ``headers`` that name neither Content-Length nor Content-Type: those
    headers, the length, the type, in that order (tests/test_http_dumps.py compares)."""
    if headers is NO_STORE:
        raw = list(_NO_STORE_RAW)  # its two constant pairs, encoded once
    elif headers:
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    else:
        raw = []
    raw += ((b"content-length", str(length).encode()), (b"content-type", b"application/json"))
    return raw


def error_response(err: ApiError, request: Request) -> Response:
    rt = request.app.state.rt
    rid = request.scope.get("state", {}).get("request_id", "")
    headers = dict(err.headers)
    if err.error is not None:
        headers.update(NO_STORE)
    return JSON(error_body(err, rid, rt.settings.docs_url), err.http_status, headers=headers)


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def client_host(request: Request) -> str:
    client = request.scope.get("client")
    return str(client[0]) if client else "unknown"
