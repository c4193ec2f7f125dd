"""The server's lane and the fast path of GET /v3/from-fields answer exactly as the ASGI way.

``RequestContext.lane`` is what ``consentry serve`` calls for the API's fixed paths; for
``GET /v3/from-fields`` it first tries ``resources.list_from_fields_fast``. Here one app on a
SQLite file is driven both ways — through its ASGI interface (Starlette's Request, the guard
and the endpoint) and through the lane — and the answers are compared byte for byte (the
request id aside; each call counts against the rate limit once, whichever way it went)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.appdata import Seeded, new_code, seed
from consentry.api.resources import list_from_fields_fast
from consentry.app import ConsentryApp, create_app
from consentry.config import Settings
from consentry.oauth.issue import ACCESS_KIND
from consentry.store.migrate import upgrade

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class Both:
    """One app, one event loop; requests through ASGI or through the lane."""

    def __init__(self, tmp: Path, env: dict[str, str] | None = None) -> None:
        settings = Settings.from_env(
            env or {},
            database_url=f"sqlite+aiosqlite:///{tmp}/fast.db",
            secret_key=secrets.token_hex(32),
            purge_interval=0,
        ).resolved()
        upgrade(settings)
        self.app: ConsentryApp = create_app(settings)
        self.rt = self.app.state.rt
        self.loop = asyncio.new_event_loop()
        self.seeded: Seeded = self.run(seed(self.rt))
        basic = f"{self.seeded.client_id}:{self.seeded.secret}".encode()
        self.basic = (b"authorization", b"Basic " + base64.b64encode(basic))

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def scope(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]], query: bytes = b""
    ) -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": [(b"host", b"x"), *headers],
            "client": ("127.0.0.1", 5555),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }

    def asgi(self, scope: dict[str, Any], body: bytes = b"") -> Answer:
        messages: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        self.run(self.app(scope, receive, send))
        return (
            messages[0]["status"],
            list(messages[0]["headers"]),
            b"".join(m.get("body", b"") for m in messages[1:]),
        )

    def lane(self, scope: dict[str, Any], body: bytes = b"") -> Answer:
        got: list[Answer] = []

        def reply(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
            got.append((status, headers, body))
            return status

        async def call() -> None:
            route = self.app.lane_route(scope["method"], scope["path"])
            assert route is not None
            task = self.app.lane(route, scope, body, reply)
            if task is not None:
                await task

        self.run(call())
        (answer,) = got
        return answer

    def token(self, scope: str | None = None) -> str:
        code = self.run(new_code(self.rt, self.seeded, scope))
        form = [self.basic, (b"content-type", b"application/x-www-form-urlencoded")]
        status, _, body = self.asgi(
            self.scope("POST", "/v3/token", form),
            b"grant_type=authorization_code&code=" + code.encode(),
        )
        assert status == 200, body
        return str(json.loads(body)["access_token"])

    def close(self) -> None:
        self.run(self.rt.db.dispose())
        self.loop.close()


@pytest.fixture()
def both(tmp_path: Path) -> Iterator[Both]:
    b = Both(tmp_path)
    yield b
    b.close()


def _without_id(answer: Answer) -> tuple[int, list[tuple[bytes, bytes]], bytes, int]:
    """The answer without its request id (header and error body), with the rate-limit
    remainder blanked and returned on its own (it goes down by one from call to call), and
    the reset blanked (it counts down in whole seconds); both headers stay in place."""
    status, headers, body = answer
    (rid,) = [v for n, v in headers if n == b"x-request-id"]
    body = body.replace(rid, b"<uuid>")  # error bodies carry it too
    # The remainder goes down call by call; the reset counts whole seconds down.
    varying = (b"x-request-id", b"x-ratelimit-remaining", b"x-ratelimit-reset")
    rest = [(n, v if n not in varying else b"") for n, v in headers if n != b"x-request-id"]
    remaining = [int(v) for n, v in headers if n == b"x-ratelimit-remaining"]
    return status, rest, body, (remaining[0] if remaining else -1)


def _same(both: Both, scope: dict[str, Any], body: bytes = b"") -> Answer:
    """The lane's answer, checked equal to the ASGI one (the ASGI call goes second)."""
    import copy

    by_lane = both.lane(copy.deepcopy(scope), body)
    by_asgi = both.asgi(copy.deepcopy(scope), body)
    s1, h1, b1, left1 = _without_id(by_lane)
    s2, h2, b2, left2 = _without_id(by_asgi)
    assert (s1, h1, b1) == (s2, h2, b2)
    if left1 >= 0:
        assert left2 == left1 - 1  # each way counted the call once
    return by_lane


def test_the_common_call_takes_the_fast_path_and_answers_as_asgi(both: Both) -> None:
    token = both.token()
    scope = both.scope("GET", "/v3/from-fields", [(b"authorization", f"Bearer {token}".encode())])
    fast = list_from_fields_fast(both.rt, dict(scope))
    assert fast is not None and fast[0] == 200  # the fast path answers it
    status, headers, body = _same(both, scope)
    assert status == 200
    items = json.loads(body)
    assert isinstance(items, list)
    assert dict(headers)[b"content-type"] == b"application/json"
    assert int(dict(headers)[b"content-length"]) == len(body)


def test_two_from_fields_page_and_totals_match(both: Both) -> None:
    token = both.token()
    auth = [(b"authorization", f"Bearer {token}".encode())]
    for name in ("One", "Two"):
        r = both.asgi(
            both.scope("POST", "/v3/from-fields", [*auth, (b"content-type", b"application/json")]),
            json.dumps({"email": f"{name.lower()}@example.com", "name": name}).encode(),
        )
        assert r[0] in (200, 201), r
    status, headers, body = _same(both, both.scope("GET", "/v3/from-fields", auth))
    assert status == 200 and len(json.loads(body)) >= 2
    assert dict(headers)[b"totalcount"] == str(len(json.loads(body))).encode()


@pytest.mark.parametrize(
    "case",
    ["query", "x-domain", "unknown", "malformed", "no-header", "two-headers", "scope", "revoked"],
)
def test_every_other_call_is_left_to_the_ordinary_way(both: Both, case: str) -> None:
    token = both.token("account.read" if case == "scope" else None)
    auth = (b"authorization", f"Bearer {token}".encode())
    headers: list[tuple[bytes, bytes]] = [auth]
    query = b""
    if case == "query":
        query = b"perPage=1"
    elif case == "x-domain":
        headers.append((b"x-domain", b"example.com"))
    elif case == "unknown":
        headers = [(b"authorization", b"Bearer " + secrets.token_urlsafe(32).encode())]
    elif case == "malformed":
        headers = [(b"authorization", b"Bearer a b")]
    elif case == "no-header":
        headers = []
    elif case == "two-headers":
        headers = [auth, auth]
    elif case == "revoked":
        form = [both.basic, (b"content-type", b"application/x-www-form-urlencoded")]
        r = both.asgi(both.scope("POST", "/v3/token/revoke", form), f"token={token}".encode())
        assert r[0] == 200, r
    scope = both.scope("GET", "/v3/from-fields", headers, query)
    assert list_from_fields_fast(both.rt, dict(scope)) is None
    status, _, _ = _same(both, scope)
    expected = {"query": 200, "two-headers": 200, "scope": 403}.get(case, 401)
    assert status == expected


def test_rate_limit_refusal_is_the_same_both_ways(tmp_path: Path) -> None:
    b = Both(tmp_path, {"CONSENTRY_RATE_LIMIT_PER_FRAME": "3"})
    try:
        token = b.token()
        scope = b.scope("GET", "/v3/from-fields", [(b"authorization", f"Bearer {token}".encode())])
        assert _same(b, scope)[0] == 200  # calls 1 and 2
        status, headers, body = b.lane(dict(scope, headers=list(scope["headers"])))  # call 3
        assert status == 200
        by_lane = b.lane(dict(scope, headers=list(scope["headers"])))  # call 4: over
        by_asgi = b.asgi(dict(scope, headers=list(scope["headers"])))  # call 5: over
        assert by_lane[0] == by_asgi[0] == 429
        l1, l2 = _without_id(by_lane), _without_id(by_asgi)
        strip = lambda a: [(n, v) for n, v in a[1] if n != b"content-length"]  # noqa: E731
        assert strip(l1) == strip(l2)
        assert json.loads(by_lane[2])["code"] == json.loads(by_asgi[2])["code"]
    finally:
        b.close()


def test_lane_runs_a_waiting_endpoint_in_a_task(both: Both) -> None:
    """client_credentials waits for the writer thread's commit: the lane finishes it in a
    task, with the same answer as the ASGI way."""
    form = [both.basic, (b"content-type", b"application/x-www-form-urlencoded")]
    scope = both.scope("POST", "/v3/token", form)
    by_lane = both.lane(
        dict(scope, headers=list(form) + [(b"host", b"x")]), b"grant_type=client_credentials"
    )
    status, headers, body = by_lane
    assert status == 200 and b"access_token" in body
    by_asgi = both.asgi(
        dict(scope, headers=list(form) + [(b"host", b"x")]), b"grant_type=client_credentials"
    )
    assert by_asgi[0] == 200
    names = lambda a: [n for n, _ in a[1]]  # noqa: E731
    assert names(by_lane) == names(by_asgi)
    assert set(json.loads(by_lane[2])) == set(json.loads(by_asgi[2]))


def test_lane_counts_requests_in_the_metrics(both: Both) -> None:
    token = both.token()
    scope = both.scope("GET", "/v3/from-fields", [(b"authorization", f"Bearer {token}".encode())])
    for _ in range(3):
        assert both.lane(dict(scope, headers=list(scope["headers"])))[0] == 200
    metrics = both.asgi(both.scope("GET", "/metrics", []))[2].decode()
    line = next(
        ln
        for ln in metrics.splitlines()
        if ln.startswith("consentry_http_requests_total{")
        and 'route="/v3/from-fields"' in ln
        and 'status="200"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 3


def test_lane_under_load_from_loop_callbacks(tmp_path: Path) -> None:
    """Forty from-field creations (the async engine, behind its write lock) and forty account
    reads at once, started from loop callbacks as the server's protocol starts them: every
    one answered, none with a 500 (a first CI run of the lane had GET /v3/accounts fail under
    fifty threads: the async pool's wait needs a task; see tests/test_lane.py)."""
    both = Both(
        tmp_path,
        {"CONSENTRY_RATE_LIMIT_CONCURRENT": "1000", "CONSENTRY_RATE_LIMIT_PER_SECOND": "1000"},
    )
    token = both.token()
    auth = (b"authorization", f"Bearer {token}".encode())
    statuses: list[int] = []

    def reply(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
        statuses.append(status)
        return status

    async def run() -> None:
        loop = asyncio.get_running_loop()
        tasks: list[Any] = []

        def start(i: int) -> None:
            if i % 2:
                scope = both.scope("GET", "/v3/accounts", [auth])
                body = b""
            else:
                scope = both.scope(
                    "POST", "/v3/from-fields", [auth, (b"content-type", b"application/json")]
                )
                body = json.dumps({"email": f"f{i}@example.com", "name": f"F {i}"}).encode()
            scope["app"] = both.app
            route = both.app.lane_route(scope["method"], scope["path"])
            assert route is not None
            task = both.app.lane(route, scope, body, reply)
            if task is not None:
                tasks.append(task)

        for i in range(80):
            loop.call_soon(start, i)
        await asyncio.sleep(0)
        while len(statuses) < 80:
            await asyncio.gather(*tasks)
            await asyncio.sleep(0.01)

    try:
        both.run(run())
    finally:
        both.close()
    assert sorted(set(statuses)) in ([200], [200, 201], [201]), statuses


def _fill(both: Both, scope: dict[str, Any]) -> None:
    """Two fast-path calls: the second answered from the kept read (nothing committed)."""
    for _ in range(2):
        got = list_from_fields_fast(both.rt, dict(scope))
        assert got is not None and got[0] == 200


def test_a_revocation_is_seen_by_the_next_call_though_the_read_was_kept(both: Both) -> None:
    token = both.token()
    scope = both.scope("GET", "/v3/from-fields", [(b"authorization", f"Bearer {token}".encode())])
    _fill(both, scope)
    form = [both.basic, (b"content-type", b"application/x-www-form-urlencoded")]
    r = both.asgi(both.scope("POST", "/v3/token/revoke", form), f"token={token}".encode())
    assert r[0] == 200, r
    assert list_from_fields_fast(both.rt, dict(scope)) is None
    assert both.lane(dict(scope))[0] == 401


def test_a_deletion_by_another_process_is_seen_by_the_next_call(both: Both) -> None:
    """The kept read is checked against SQLite's data_version, which any connection's
    commit moves, in whatever process."""
    token = both.token()
    scope = both.scope("GET", "/v3/from-fields", [(b"authorization", f"Bearer {token}".encode())])
    _fill(both, scope)
    path = both.rt.settings.database_url.split(":///", 1)[1]
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('DELETE FROM access_tokens'); c.commit()"
    )
    subprocess.run([sys.executable, "-c", code, path], check=True, timeout=60)
    assert list_from_fields_fast(both.rt, dict(scope)) is None
    status, _, body = both.lane(dict(scope))
    assert status == 401 and b"invalid" in body


def test_a_new_from_field_shows_on_the_next_call(both: Both) -> None:
    token = both.token()
    auth = [(b"authorization", f"Bearer {token}".encode())]
    scope = both.scope("GET", "/v3/from-fields", auth)
    _fill(both, scope)
    before = json.loads(both.lane(dict(scope))[2])
    r = both.asgi(
        both.scope("POST", "/v3/from-fields", [*auth, (b"content-type", b"application/json")]),
        json.dumps({"email": "new@example.com", "name": "New"}).encode(),
    )
    assert r[0] in (200, 201), r
    status, headers, body = _same(both, scope)
    assert status == 200
    assert len(json.loads(body)) == len(before) + 1
    assert "new@example.com" in {i["email"] for i in json.loads(body)}


def test_a_token_that_expired_since_its_read_was_kept_is_refused(
    both: Both, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = both.token()
    scope = both.scope("GET", "/v3/from-fields", [(b"authorization", f"Bearer {token}".encode())])
    _fill(both, scope)
    later = time.time() + 10 * 365 * 86400
    monkeypatch.setattr(time, "time", lambda: later)
    assert list_from_fields_fast(both.rt, dict(scope)) is None
    status, _, body = both.lane(dict(scope))
    assert status == 401 and b"expired" in body


def test_a_page_longer_than_the_kept_bound_goes_the_ordinary_way(
    both: Both, monkeypatch: pytest.MonkeyPatch
) -> None:
    from consentry.api import resources

    monkeypatch.setattr(resources, "_KEPT_BODY_MAX", 10)
    token = both.token()
    scope = both.scope("GET", "/v3/from-fields", [(b"authorization", f"Bearer {token}".encode())])
    assert list_from_fields_fast(both.rt, dict(scope)) is None
    assert not both.rt.db._unchanged  # nothing kept
    status, _, body = _same(both, scope)
    assert status == 200 and len(body) > 10


def test_kept_reads_are_per_token_and_hold_no_token(both: Both) -> None:
    """A kept read answers only the token it was read for (a token without the scope is never
    answered from another token's kept read), and what indexes the kept reads is neither the
    token nor its stored hash (Keyring.fingerprint: a MAC under this process's own key)."""
    reader = both.token()
    writer_only = both.token("from-fields.write")
    ok = both.scope("GET", "/v3/from-fields", [(b"authorization", f"Bearer {reader}".encode())])
    _fill(both, ok)
    other = both.scope(
        "GET", "/v3/from-fields", [(b"authorization", f"Bearer {writer_only}".encode())]
    )
    assert list_from_fields_fast(both.rt, dict(other)) is None
    assert both.lane(dict(other))[0] == 403
    keys = [part for key in both.rt.db._unchanged for part in key]
    stored = both.rt.keys.token_hash(reader, ACCESS_KIND)
    assert both.rt.keys.fingerprint(reader) in keys
    assert not any(k in (reader, stored, reader.encode(), stored.encode()) for k in keys)
