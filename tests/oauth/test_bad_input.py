"""Malformed, oversized, duplicated or hostile input: a clear 4xx, never a 500 (SPEC §5)."""

from __future__ import annotations

import base64
import json
import re
import string
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oauth_support import GR_MEMBERS, assert_gr_error, assert_oauth_error

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def raw_token(
    server: Any, body: bytes, headers: dict[str, str] | None = None, auth: Any = None
) -> Any:
    return httpx.post(
        f"{server.url}/v3/token",
        content=body,
        headers=FORM | (headers or {}),
        auth=auth,
        timeout=30,
    )


def test_body_over_64_kib_is_413_with_the_error_body(server: Any) -> None:
    body = b"grant_type=client_credentials&pad=" + b"a" * 70_000
    r = raw_token(server, body, auth=server.client.auth)
    assert r.status_code == 413
    got = assert_gr_error(r, 413)
    assert got["error"] == "invalid_request"
    assert "65536" in got["message"]


def test_chunked_body_over_the_limit_is_413(server: Any) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"grant_type=client_credentials&pad="
        for _ in range(20):
            yield b"a" * 8192

    r = httpx.post(
        f"{server.url}/v3/token", content=chunks(), headers=FORM, auth=server.client.auth
    )
    assert r.status_code == 413
    assert_gr_error(r, 413)


def test_body_just_under_the_limit_is_read(server: Any) -> None:
    head = b"grant_type=client_credentials&pad="
    r = raw_token(server, head + b"a" * (65536 - len(head)), auth=server.client.auth)
    assert r.status_code == 200, r.text


def test_oversized_api_body_is_413(server: Any) -> None:
    token = server.token(server.client, grant_type="client_credentials").json()["access_token"]
    r = server.api(
        "POST",
        "/v3/from-fields",
        token,
        content=json.dumps({"email": "a@example.com", "name": "x" * 70_000}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert_gr_error(r, 413, 1000)


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=client_credentials&grant_type=client_credentials",
        b"grant_type=client_credentials&scope=account.read&scope=account.read",
        b"grant_type=authorization_code&code=a&code=b",
    ],
)
def test_duplicate_parameter_is_invalid_request(server: Any, body: bytes) -> None:
    body_ = assert_oauth_error(
        raw_token(server, body, auth=server.client.auth), 400, "invalid_request"
    )
    assert "more than once" in body_["error_description"]


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=client_credentials&x=%zz",
        b"grant_type=client_credentials&x=%",
        b"grant_type=client_credentials&x=%4",
        b"grant_type=client_credentials&x=%ff",
        b"grant_type=client_credentials&x=%c3%28",
        b"grant_type=client_credentials&x=\xff\xfe",
        b"grant_type=client_credentials&x=%00",
        b"grant_type=client%5Fcredentials%zz",
    ],
)
def test_bad_encoding_is_invalid_request(server: Any, body: bytes) -> None:
    assert_oauth_error(raw_token(server, body, auth=server.client.auth), 400, "invalid_request")


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("application/json", b'{"grant_type": "client_credentials"}'),
        ("text/plain", b"grant_type=client_credentials"),
        ("multipart/form-data; boundary=x", b"--x--"),
    ],
)
def test_non_form_body_is_invalid_request(server: Any, ctype: str, body: bytes) -> None:
    r = httpx.post(
        f"{server.url}/v3/token",
        content=body,
        headers={"Content-Type": ctype},
        auth=server.client.auth,
    )
    assert_oauth_error(r, 400, "invalid_request")


def test_form_content_type_with_charset_is_accepted(server: Any) -> None:
    r = raw_token(
        server,
        b"grant_type=client_credentials",
        {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
        auth=server.client.auth,
    )
    assert r.status_code == 200, r.text


def test_empty_body_is_invalid_request(server: Any) -> None:
    r = httpx.post(f"{server.url}/v3/token", auth=server.client.auth)
    assert_oauth_error(r, 400, "invalid_request")


@pytest.mark.parametrize(
    "query",
    ["client_id=%zz", "client_id=%ff", "state=%ff&client_id=x", "client_id=a%00b", "%"],
)
def test_authorize_with_bad_encoding_is_an_error_page(server: Any, query: str) -> None:
    r = httpx.get(f"{server.url}/oauth2_authorize.html?{query}")
    assert r.status_code == 400 and "location" not in r.headers


def test_authorize_with_bad_encoding_in_state_never_redirects(server: Any) -> None:
    cid = server.client.client_id
    r = httpx.get(
        f"{server.url}/oauth2_authorize.html?response_type=code&client_id={cid}&state=%ff"
    )
    assert r.status_code == 400 and "location" not in r.headers


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_methods_on_oauth_endpoints_are_json_errors(server: Any, method: str) -> None:
    for path in ("/v3/token", "/v3/token/revoke", "/v3/token/introspect"):
        r = httpx.request(method, f"{server.url}{path}")
        assert r.status_code == 405
        assert GR_MEMBERS <= set(r.json())


def test_unknown_api_path_is_a_json_404(server: Any) -> None:
    r = httpx.get(f"{server.url}/v3/nothing-here")
    assert_gr_error(r, 404, 1013)


# --- fuzzing ----------------------------------------------------------------------------------

NAMES = [
    "grant_type", "code", "refresh_token", "redirect_uri", "code_verifier", "scope",
    "client_id", "client_secret", "token", "token_type_hint", "state",
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(
        ["authorization_code", "refresh_token", "client_credentials", "password", "", "0" * 40]
    ),
    st.text(max_size=40),
)


def _encoded(text: str) -> str:
    return quote(text, safe="")


@st.composite
def form_bodies(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    pairs = draw(
        st.lists(
            st.tuples(st.one_of(st.sampled_from(NAMES), st.text(max_size=8)), VALUES), max_size=6
        )
    )
    parts = [f"{_encoded(k)}={_encoded(v)}" for k, v in pairs]
    noise = draw(st.sampled_from(["", "&", "&&", "=", "%", "%zz", "+", "a=%ff", "=x"]))
    return "&".join(parts + [noise]).encode()


HEADER_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + string.punctuation + " ", max_size=60
).map(str.strip)


@st.composite
def auth_headers(draw: st.DrawFn, client: Any) -> dict[str, str]:
    kind = draw(st.sampled_from(["none", "good", "random", "basic-random", "basic-parts"]))
    if kind == "none":
        return {}
    if kind == "good":
        raw = f"{client.client_id}:{client.client_secret}".encode()
    elif kind == "random":
        value = draw(HEADER_TEXT)
        return {"Authorization": value} if value else {}
    elif kind == "basic-random":
        raw = draw(st.binary(max_size=60))
    else:
        raw = (draw(st.text(max_size=20)) + ":" + draw(st.text(max_size=20))).encode(
            "utf-8", "surrogatepass"
        )
    return {"Authorization": ("Basic " + base64.b64encode(raw).decode()).strip()}


CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=utf-8",
            "application/json",
            "",
            "text/plain",
        ]
    ),
    HEADER_TEXT,
)


def assert_api_answer(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text
    if 400 <= r.status_code < 500:
        body = r.json()
        assert GR_MEMBERS <= set(body), body
        assert body["httpStatus"] == r.status_code
        assert body["uuid"] == r.headers["x-request-id"]


@pytest.fixture(scope="module")
def http(server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30, follow_redirects=False) as c:
        yield c


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_token_requests_never_fail_with_5xx(
    server: Any, http: httpx.Client, data: st.DataObject
) -> None:
    body = data.draw(form_bodies())
    headers = data.draw(auth_headers(server.client))
    ctype = data.draw(CONTENT_TYPES)
    if ctype:
        headers["Content-Type"] = ctype
    if data.draw(st.booleans()):
        headers["X-Domain"] = data.draw(HEADER_TEXT) or "x"
    path = data.draw(st.sampled_from(["/v3/token", "/v3/token/revoke", "/v3/token/introspect"]))
    r = http.post(path, content=body, headers=headers)
    assert_api_answer(r)
    if r.status_code >= 400 and path == "/v3/token":
        assert r.json()["error"] in {
            "invalid_request",
            "invalid_client",
            "invalid_grant",
            "unsupported_grant_type",
            "invalid_scope",
            "unauthorized_client",
        }


AUTHORIZE_NAMES = [
    "response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
    "code_challenge_method", "resume", "nonce",
]  # fmt: skip
AUTHORIZE_VALUES = st.one_of(
    st.sampled_from(
        [
            "code",
            "token",
            "S256",
            "plain",
            "account.read",
            "https://mytemplatemaker.example.com/gr_callback",
            "https://evil.example.com/",
            "http://127.0.0.1:1/cb",
            "http://127.0.0.1/cb",
            "http://[::1/cb",
            "http://[::1]:5/cb",
            "a" * 43,
        ]
    ),
    st.text(max_size=30),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_authorize_requests_never_fail_and_never_open_redirect(
    server: Any, loopback_client: Any, http: httpx.Client, data: st.DataObject
) -> None:
    pairs = data.draw(
        st.lists(
            st.tuples(
                st.one_of(st.sampled_from(AUTHORIZE_NAMES), st.text(max_size=6)), AUTHORIZE_VALUES
            ),
            max_size=8,
        )
    )
    client = data.draw(st.sampled_from([None, server.client, loopback_client]))
    if client is not None:
        pairs.append(("client_id", client.client_id))
    query = "&".join(f"{_encoded(k)}={_encoded(v)}" for k, v in pairs)
    query += data.draw(st.sampled_from(["", "&", "%", "%zz", "&state=%ff", "&=", "+"]))
    r = http.get(f"/oauth2_authorize.html?{query}")
    assert r.status_code < 500, r.text
    if r.status_code in (301, 302, 303, 307, 308):
        # Only ever back to a registered redirect URI, never where the request says.
        loc = r.headers["location"]
        assert client is not None
        if client is server.client:
            assert re.match(r"https://mytemplatemaker\.example\.com/gr_callback[?#]", loc), loc
        else:
            assert re.match(r"http://127\.0\.0\.1(:\d*)?/cb[?#]", loc), loc
    else:
        assert r.status_code in (200, 400), r.status_code


@pytest.fixture(scope="module")
def fuzz_token(server: Any) -> str:
    from oauth_support import signup

    email = signup(server)
    return str(server.tokens(server.client, email)["access_token"])


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_api_requests_never_fail_with_5xx(
    server: Any, http: httpx.Client, fuzz_token: str, data: st.DataObject
) -> None:
    names = ["page", "perPage", "query[email]", "query[name]", "query[isDefault]",
             "sort[createdOn]", "fields", "access_token"]  # fmt: skip
    params = data.draw(
        st.lists(
            st.tuples(
                st.one_of(st.sampled_from(names), st.text(max_size=8)),
                st.one_of(
                    st.sampled_from(["1", "\u00b2", "\u0663", "9" * 5000, "a\x00"]),
                    st.text(max_size=20),
                ),
            ),
            max_size=5,
        )
    )
    path = data.draw(
        st.sampled_from(["/v3/from-fields", "/v3/accounts", "/v3/from-fields/"])
    ) + data.draw(st.sampled_from(["", "abc", "%ff", "x" * 40, "../accounts"]))
    auth = data.draw(
        st.sampled_from([f"Bearer {fuzz_token}", "Bearer", "Bearer x", "Basic abc", "", fuzz_token])
    )
    headers = {"Authorization": auth} if auth else {}
    method = data.draw(st.sampled_from(["GET", "POST", "DELETE"]))
    content = data.draw(
        st.one_of(
            st.binary(max_size=100),
            st.sampled_from(
                [
                    b'{"email":"a@b.co","name":"n"}',
                    b"[" * 5000,
                    b'{"email":"a@b.co","name":"\\ud800"}',
                ]
            ),
        )
    )
    ctype = data.draw(st.sampled_from(["application/json", "text/plain", ""]))
    if ctype:
        headers["Content-Type"] = ctype
    r = http.request(method, path, params=params, headers=headers, content=content)
    assert_api_answer(r)
