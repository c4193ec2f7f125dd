"""Denial of service by large or many requests, and hostile input that would crash a
handler (RFC 6819 §4.4.1.11, §5.1.4.2; SPEC §5: a clear 4xx, never a 500)."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest

from tests.attacks.support import Client, Server, csrf_of, signup, token_pair

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
LIMIT = 65536  # CONSENTRY_MAX_BODY_BYTES default


@pytest.fixture(scope="module")
def api_token(server: Server, victim_app: Client) -> str:
    _email, b = signup(server)
    return str(token_pair(server, victim_app, b)["access_token"])


def test_oversized_bodies_are_refused_with_413(server: Server, victim_app: Client,
                                               api_token: str) -> None:
    big = b"a=" + b"x" * (LIMIT + 10)

    def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 4096  # no Content-Length: the cap must hold while streaming

    _email, b = signup(server)
    csrf = csrf_of(b)
    bearer = {"Authorization": f"Bearer {api_token}"}
    for path, headers in (
        ("/v3/token", FORM),
        ("/v3/token/revoke", FORM),
        ("/v3/token/introspect", FORM),
        ("/v3/from-fields", {**bearer, "Content-Type": "application/json"}),
        ("/login", FORM),
        ("/signup", FORM),
        ("/logout", FORM),
        ("/oauth2_authorize.html", FORM),
    ):
        for body in (big + b"&csrf_token=" + csrf.encode(), chunks()):
            r = b.post(path, content=body, headers=headers, auth=victim_app.auth
                       if path.startswith("/v3/token") else None)
            assert r.status_code == 413, (path, r.status_code)
            assert "Traceback" not in r.text


def test_many_parameters_get_a_quick_clear_answer(server: Server, victim_app: Client) -> None:
    junk = "&".join(f"p{i}=v" for i in range(7000))  # ~50 KiB: under the body limit
    started = time.monotonic()
    answers = {
        "junk": (junk, 400, "invalid_request"),  # no grant_type among them
        "duplicates": ("&".join(["grant_type=client_credentials"] * 2000), 400,
                       "invalid_request"),
        "junk and a grant": ("grant_type=client_credentials&" + junk, 200, None),  # ignored
        "over the limit": ("&".join(f"p{i}=v" for i in range(40000)), 413, "invalid_request"),
    }
    for name, (body, status, error) in answers.items():
        r = httpx.post(f"{server.url}/v3/token", auth=victim_app.auth, content=body,
                       headers=FORM, timeout=30)
        assert r.status_code == status, (name, r.status_code, r.text[:300])
        if error:
            assert r.json()["error"] == error, name
    query = "&".join(f"scope{i}=x" for i in range(1500))
    r = httpx.get(f"{server.url}/oauth2_authorize.html?client_id={victim_app.client_id}&"
                  f"{query}&{query}", timeout=30)
    assert r.status_code in (302, 400)  # duplicates: an error redirect to the client
    assert time.monotonic() - started < 20


def raw_request(server: Server, head: bytes, chunk: int = 1 << 16) -> bytes:
    """Send a request head byte for byte; return the status line (b'' if cut off)."""
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        try:
            for i in range(0, len(head), chunk):
                s.sendall(head[i : i + chunk])
        except OSError:
            pass  # the server may hang up before everything was sent: that is the point
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
    return data.split(b"\r\n", 1)[0]


def raw_answer(server: Server, request: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """Send ``request`` as is; the status line, headers and body of the answer (read until
    the server hangs up)."""
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(b":", 1) for ln in lines)}
    return status, headers, body


MALFORMED = {
    "content-length not a number": b"GET /v3/accounts HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: epQAte&8\r\n\r\n",
    "two content-lengths": b"POST /v3/token HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
    b"Content-Length: 30\r\n\r\nabc",
    "bad chunk size": b"POST /v3/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"\r\nzz\r\nabc\r\n0\r\n\r\n",
    "control byte in a header": b"GET /v3/accounts HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "no HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
    "space in the header name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_unparseable_requests_get_the_documented_error_body(server: Server, name: str) -> None:
    """Bytes the HTTP parser refuses never reach a route; the 400 still carries the error
    body every other error has (SPEC 1.4: code 1021, and RFC 6749's members), not uvicorn's
    plain text, and its uuid is in the server log."""
    status, headers, body = raw_answer(server, MALFORMED[name])
    assert status.startswith(b"HTTP/1.1 400 "), (name, status, body[:200])
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"connection"] == b"close"
    assert (headers[b"cache-control"], headers[b"pragma"]) == (b"no-store", b"no-cache")
    assert int(headers[b"content-length"]) == len(body)
    err = json.loads(body)
    assert err["httpStatus"] == 400 and err["code"] == 1021, err
    assert err["error"] == "invalid_request"
    assert err["codeDescription"] and err["message"] and err["moreInfo"].endswith("/errors/1021")
    assert err["context"] == {}
    assert len(err["uuid"]) == 32
    deadline = time.monotonic() + 5
    while err["uuid"] not in server.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert err["uuid"] in server.log_path.read_text()
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_an_oversized_head_gets_431_with_the_error_body(server: Server) -> None:
    # A head still unfinished after 66,000 bytes: the server has read all of it when it
    # refuses, so its answer is not lost to a reset.
    status, headers, body = raw_answer(
        server, b"GET /v3/accounts HTTP/1.1\r\nHost: x\r\nX-Big: ".ljust(66_000, b"a")
    )
    assert status.startswith(b"HTTP/1.1 431 "), status
    assert headers[b"content-type"] == b"application/json"
    err = json.loads(body)
    assert (err["httpStatus"], err["code"], err["error"]) == (431, 1021, "invalid_request")
    assert "65536" in err["message"]


def test_oversized_request_heads_are_refused(server: Server) -> None:
    """A request head of megabytes would be held in memory while it arrives."""
    heads = {
        "one huge header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
        + b"a" * 4_000_000 + b"\r\n\r\n",
        "many headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: a\r\n" % i for i in range(100_000)) + b"\r\n",
        "huge URL": b"GET /healthz?" + b"a" * 2_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        "huge cookie": b"GET /login HTTP/1.1\r\nHost: x\r\nCookie: consentry_session="
        + b"a" * 1_000_000 + b"\r\n\r\n",
    }
    for name, head in heads.items():
        status = raw_request(server, head)
        # 431 (or 400), or the connection is cut while the attacker is still sending.
        assert status == b"" or status.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")), (
            name, status)
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    # A normal large-ish head (cookies, long URLs of real clients) still works.
    ok = httpx.get(f"{server.url}/healthz", headers={"X-Fine": "a" * 8000})
    assert ok.status_code == 200


def hostile_requests(client_id: str, token: str) -> list[tuple[str, str, dict[str, Any]]]:
    bearer = {"Authorization": f"Bearer {token}"}
    json_h = {**bearer, "Content-Type": "application/json"}
    deep = "[" * 30000 + "]" * 30000
    deep_obj = '{"email":' * 6000 + "1" + "}" * 6000
    return [
        # NUL and friends where strings reach the database.
        ("GET", "/v3/from-fields/%00", {"headers": bearer}),
        ("GET", "/v3/from-fields/a%00b/default", {"headers": bearer}),
        ("POST", "/v3/from-fields/%00/default", {"headers": bearer}),
        ("DELETE", "/v3/from-fields/%00", {"headers": bearer}),
        ("GET", "/v3/from-fields?query%5Bemail%5D=%00", {"headers": bearer}),
        ("GET", "/v3/from-fields?query%5Bname%5D=a%00", {"headers": bearer}),
        ("GET", "/v3/from-fields?query%5Bemail%5D=%FF%FE", {"headers": bearer}),
        ("POST", "/v3/from-fields", {"headers": json_h,
                                     "content": '{"email":"a\\u0000@b.example","name":"x"}'}),
        ("POST", "/v3/from-fields", {"headers": json_h,
                                     "content": '{"email":"a@b.example","name":"\\u0000"}'}),
        ("POST", "/v3/from-fields", {"headers": json_h,
                                     "content": '{"email":"a@b.example","name":"\\ud800"}'}),
        ("POST", "/v3/token", {"headers": {**FORM, "Authorization": "Basic JTAwOng="},
                               "content": "grant_type=client_credentials"}),  # id "%00"
        ("POST", "/v3/token/revoke", {"headers": {**FORM, "Authorization": "Basic JTAwOng="},
                                      "content": "token=x"}),
        ("POST", "/v3/token", {"headers": FORM, "content": "grant_type=client_credentials"
                               "&client_id=%00&client_secret=x"}),
        ("POST", "/v3/token", {"headers": FORM, "content": "grant_type=client_credentials"
                               "&client_id=a%ED%A0%80&client_secret=x"}),
        ("GET", f"/oauth2_authorize.html?client_id={client_id}%00", {}),
        ("GET", "/apps/%00", {}),
        ("GET", "/apps/%00/logo", {}),
        # Parsers pushed to their limits.
        ("POST", "/v3/from-fields", {"headers": json_h, "content": deep}),
        ("POST", "/v3/from-fields", {"headers": json_h, "content": deep_obj}),
        ("POST", "/v3/from-fields", {"headers": json_h, "content": b"\xff\xfe{"}),
        ("POST", "/v3/from-fields", {"headers": json_h, "content": "[1,2]"}),
        ("POST", "/v3/from-fields", {"headers": json_h, "content": '{"email": 1e999999}'}),
        ("POST", "/v3/from-fields", {"headers": json_h, "content": '{"email": NaN}'}),
        ("POST", "/v3/from-fields", {"headers": json_h,
                                     "content": json.dumps({"email": ["a"], "name": {}})}),
        ("POST", "/v3/from-fields", {"headers": {**bearer, "Content-Type": "text/plain"},
                                     "content": "{}"}),
        ("GET", "/v3/from-fields?page=99999999999999999999999", {"headers": bearer}),
        ("GET", "/v3/from-fields?perPage=%C2%B2", {"headers": bearer}),  # a "digit" ²
        ("GET", "/v3/from-fields?page=%D9%A3", {"headers": bearer}),  # Arabic-Indic 3
        ("GET", "/v3/from-fields?fields=" + ",".join(["email"] * 5000), {"headers": bearer}),
        ("GET", "/v3/from-fields?sort%5BcreatedOn%5D=%C3%9F", {"headers": bearer}),
        ("GET", "/v3/accounts", {"headers": {"Authorization": "Bearer " + "a" * 600}}),
        ("GET", "/v3/accounts", {"headers": {"Authorization": "Bearer éé".encode()}}),
        ("GET", "/v3/accounts", {"headers": {"Authorization": "Basic !!!"}}),
        ("GET", "/v3/accounts", {"headers": {**bearer, "X-Domain": ("é" * 300).encode()}}),
        ("POST", "/v3/token", {"headers": {**FORM, "Authorization": "Basic " + "A" * 5000},
                               "content": "grant_type=client_credentials"}),
        ("POST", "/v3/token", {"headers": FORM, "content": "grant_type=%ZZ"}),
        ("POST", "/v3/token", {"headers": FORM, "content": b"grant_type=\xff"}),
        ("POST", "/v3/token", {"headers": {"Content-Type": "application/json"},
                               "content": '{"grant_type": "client_credentials"}'}),
        ("GET", "/oauth2_authorize.html?%ZZ", {}),
        ("GET", "/oauth2_authorize.html?client_id=" + "a" * 5000, {}),
        ("GET", "/oauth2_authorize.html?resume=1", {}),
        ("POST", "/login", {"headers": {"Content-Type": "multipart/form-data; boundary=x"},
                            "content": "--x\r\n"}),
        ("POST", "/login", {"headers": FORM, "content": b"email=\xff&password=%00"}),
        ("GET", "/static/../../../etc/passwd", {}),
        ("GET", "/static/%2e%2e/%2e%2e/app.py", {}),
    ]


def test_hostile_input_never_gets_a_500(
    server: Server, victim_app: Client, api_token: str
) -> None:
    failures = []
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for method, path, kw in hostile_requests(victim_app.client_id, api_token):
            try:
                r = c.request(method, path, **kw)
            except httpx.HTTPError as exc:
                failures.append((method, path[:60], type(exc).__name__))
                continue
            if r.status_code >= 500 or "Traceback" in r.text or "root:" in r.text:
                failures.append((method, path[:60], r.status_code))
    # The same paths as a logged-in user: the pages look the application up by its id.
    _email, b = signup(server)
    csrf = csrf_of(b)
    for method, path in (("GET", "/apps/%00"), ("GET", "/apps/a%00b/logo"),
                         ("POST", "/apps/%00/secret"), ("POST", "/apps/%00/delete"),
                         ("POST", "/connected-apps/%00/revoke"),
                         ("GET", "/oauth2_authorize.html?response_type=code&client_id=%00")):
        data = {"csrf_token": csrf} if method == "POST" else None
        r = b.request(method, path, data=data)
        if r.status_code >= 500 or "Traceback" in r.text:
            failures.append((method, path, r.status_code))
    assert failures == [], failures
