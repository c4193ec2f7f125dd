"""Several `consentry serve` nodes on one PostgreSQL behave as one server (SPEC §4).

These tests use the PostgreSQL (and Redis) running on 127.0.0.1 over real connections.
Under CI an unreachable service is a failure, elsewhere a skip.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    Server,
    drop_pg_database,
    fresh_pg_database,
    require_service,
    start_server,
    stop_server,
)

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_ping() -> None:
    with socket.create_connection(("127.0.0.1", 6379), timeout=2) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(16).startswith(b"+PONG")


class Cluster:
    def __init__(self, nodes: list[Server]) -> None:
        self.nodes = nodes

    def __getitem__(self, i: int) -> Server:
        return self.nodes[i]


def _cluster(tmp: Path, n: int, env: dict[str, str]) -> Iterator[Cluster]:
    url = fresh_pg_database()
    shared = {"CONSENTRY_SECRET_KEY": "cluster-" + secrets.token_hex(16), **env}
    nodes: list[Server] = []
    try:
        # Started together: their migrations race and must queue on the advisory lock.
        results: list[Any] = [None] * n

        def boot(i: int) -> None:
            try:
                results[i] = start_server(tmp / f"node{i}", shared, database_url=url)
            except Exception as exc:  # reported below
                results[i] = exc

        for i in range(n):
            (tmp / f"node{i}").mkdir()
        threads = [threading.Thread(target=boot, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in results:
            if isinstance(r, Server):
                nodes.append(r)
        for r in results:
            if isinstance(r, Exception):
                raise r
        yield Cluster(nodes)
    finally:
        for node in nodes:
            stop_server(node)
        drop_pg_database(url)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three nodes, refresh grace 0 (every reuse is a replay)."""
    yield from _cluster(tmp_path_factory.mktemp("cluster"), 3, {"CONSENTRY_REFRESH_GRACE": "0"})


@pytest.fixture(scope="module")
def graceful_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three nodes, default grace window, rate limits shared through Redis."""
    require_service("Redis", _redis_ping)
    yield from _cluster(
        tmp_path_factory.mktemp("gcluster"),
        3,
        {
            "CONSENTRY_REDIS_URL": REDIS_URL,
            "CONSENTRY_RATE_LIMIT_PER_FRAME": "30",
            "CONSENTRY_RATE_LIMIT_PER_SECOND": "1000",
        },
    )


Request = tuple[str, dict[str, str], tuple[str, str]]


async def _race(requests: list[Request]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60) as http:
        return list(
            await asyncio.gather(*(http.post(url, data=d, auth=a) for url, d, a in requests))
        )


def test_code_issued_by_one_node_is_redeemed_at_another(cluster: Cluster) -> None:
    a, b = cluster[0], cluster[1]
    client = a.client
    code = a.code_for(client)
    r = b.token(client, grant_type="authorization_code", code=code)
    assert r.status_code == 200, r.text
    assert cluster[2].api("GET", "/v3/accounts", r.json()["access_token"]).status_code == 200


def test_revocation_at_one_node_is_honoured_by_another_on_the_next_request(
    cluster: Cluster,
) -> None:
    a, c = cluster[0], cluster[2]
    tokens = a.tokens()
    assert c.api("GET", "/v3/from-fields", tokens["access_token"]).status_code == 200
    r = httpx.post(
        f"{a.url}/v3/token/revoke", auth=a.client.auth, data={"token": tokens["refresh_token"]}
    )
    assert r.status_code == 200
    after = c.api("GET", "/v3/from-fields", tokens["access_token"])
    assert after.status_code == 401
    assert after.json()["code"] == 1014


def test_fifty_concurrent_exchanges_of_one_code_over_three_nodes_one_wins(
    cluster: Cluster,
) -> None:
    client = cluster[0].client
    code = cluster[0].code_for(client)
    reqs = [
        (f"{cluster[i % 3].url}/v3/token", {"grant_type": "authorization_code", "code": code},
         client.auth)
        for i in range(50)
    ]
    results = asyncio.run(_race(reqs))
    statuses = [r.status_code for r in results]
    assert statuses.count(200) == 1, statuses
    assert all(s == 400 for s in statuses if s != 200), statuses
    assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code == 400)


def test_fifty_concurrent_refreshes_of_one_token_over_three_nodes_one_wins(
    cluster: Cluster,
) -> None:
    client = cluster[0].client
    refresh = cluster[0].tokens()["refresh_token"]
    reqs = [
        (f"{cluster[i % 3].url}/v3/token",
         {"grant_type": "refresh_token", "refresh_token": refresh}, client.auth)
        for i in range(50)
    ]
    results = asyncio.run(_race(reqs))
    statuses = [r.status_code for r in results]
    assert statuses.count(200) == 1, statuses
    assert all(s == 400 for s in statuses if s != 200), statuses


def test_retries_inside_the_grace_window_all_get_the_same_pair_on_every_node(
    graceful_cluster: Cluster,
) -> None:
    nodes = graceful_cluster
    client = nodes[0].client
    refresh = nodes[0].tokens()["refresh_token"]
    reqs = [
        (f"{nodes[i % 3].url}/v3/token",
         {"grant_type": "refresh_token", "refresh_token": refresh}, client.auth)
        for i in range(30)
    ]
    results = asyncio.run(_race(reqs))
    assert [r.status_code for r in results] == [200] * 30, [r.text for r in results][:3]
    pairs = {(r.json()["access_token"], r.json()["refresh_token"]) for r in results}
    assert len(pairs) == 1


def test_a_login_session_made_on_one_node_works_on_another(cluster: Cluster) -> None:
    a, b = cluster[0], cluster[1]
    email = a.new_user()
    with a.browser() as browser:
        a.login(browser, email)
        cookie = browser.cookies.get("consentry_session")
    assert cookie
    with httpx.Client(base_url=b.url, cookies={"consentry_session": cookie}) as other:
        query = {"response_type": "code", "client_id": a.client.client_id, "state": "s"}
        page = other.get("/oauth2_authorize.html", params=query)
        assert page.status_code == 200
        assert 'name="decision"' in page.text  # the consent page, not the login page
        assert email in page.text


def test_a_rate_limit_of_n_shared_by_three_nodes_admits_n_not_3n(
    graceful_cluster: Cluster,
) -> None:
    nodes = graceful_cluster
    token = nodes[0].tokens()["access_token"]
    statuses = [nodes[i % 3].api("GET", "/v3/accounts", token).status_code for i in range(60)]
    assert statuses.count(200) == 30, statuses
    assert statuses.count(429) == 30
    last = nodes[1].api("GET", "/v3/accounts", token)
    assert last.status_code == 429
    body = last.json()
    assert body["code"] == 1015 and body["context"]["currentLimit"] == 30
    assert int(last.headers["Retry-After"]) > 0


def test_redis_down_falls_back_to_per_process_limits_without_errors(
    tmp_path: Path,
) -> None:
    node = start_server(tmp_path, {"CONSENTRY_REDIS_URL": "redis://127.0.0.1:1/0",
                                   "CONSENTRY_LOG_LEVEL": "info"})
    try:
        token = node.tokens()["access_token"]
        r = node.api("GET", "/v3/from-fields", token)
        assert r.status_code == 200, r.text
        assert r.headers["X-RateLimit-Limit"] == "30000"
        assert "per-process limits" in node.log_path.read_text()
    finally:
        stop_server(node)


class TcpProxy:
    """A loopback TCP relay to PostgreSQL that the test can cut and restore: an outage
    of the database as the node sees it, without touching the shared server."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            w.close()
            return
        self._conns.update({w, uw})
        await asyncio.gather(self._pipe(r, uw), self._pipe(ur, w))

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._conns):
            w.close()
        self._conns.clear()
        await self._server.wait_closed()

    def start(self) -> None:
        self._call(self._start())

    def cut(self) -> None:
        self._call(self._stop())

    def close(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)


def test_database_outage_gives_clean_503s_and_the_pool_recovers(tmp_path: Path) -> None:
    url = fresh_pg_database()
    proxy = TcpProxy(5432)
    proxy.start()
    proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    node = start_server(tmp_path, {"CONSENTRY_DB_POOL_TIMEOUT": "2"}, database_url=proxied)
    try:
        client = node.client
        codes = [node.code_for(client) for _ in range(3)]
        tokens = node.tokens()
        proxy.cut()
        # During the outage: clean 503s with the GetResponse body (code 1), never a 500.
        for code in codes:
            r = node.token(client, grant_type="authorization_code", code=code)
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["code"] == 1 and body["httpStatus"] == 503 and body["uuid"]
        r = node.api("GET", "/v3/from-fields", tokens["access_token"])
        assert r.status_code == 503 and r.json()["code"] == 1
        assert httpx.get(f"{node.url}/readyz").status_code == 503
        proxy.start()  # the database is back on the same port
        # The pool recovers by itself, and nothing was spent without its tokens issued.
        for code in codes:
            r = node.token(client, grant_type="authorization_code", code=code)
            assert r.status_code == 200, r.text
        assert node.api("GET", "/v3/from-fields", tokens["access_token"]).status_code == 200
        assert httpx.get(f"{node.url}/readyz").status_code == 200
    finally:
        stop_server(node)
        proxy.close()
        drop_pg_database(url)


def test_sigterm_finishes_in_flight_requests_and_exits_zero(tmp_path: Path) -> None:
    node = start_server(tmp_path)
    client = node.client
    port = int(node.url.rsplit(":", 1)[1])
    body = b"grant_type=client_credentials"
    auth = base64.b64encode(f"{client.client_id}:{client.client_secret}".encode()).decode()
    head = (
        f"POST /v3/token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        # A request surely in flight: its head and half its body are in; the server waits.
        sock.sendall(head + body[:10])
        time.sleep(1.0)
        node.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        # New connections are refused once shutdown began ...
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        # ... while the request in flight is finished and answered.
        sock.sendall(body[10:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b'"access_token"' in answer
    assert node.proc.wait(timeout=30) == 0
    stop_server(node)


def test_an_account_created_through_one_node_logs_in_on_every_node(cluster: Cluster) -> None:
    email = cluster[0].new_user()
    for node in cluster.nodes:
        with node.browser() as b:
            node.login(b, email)
            assert b.cookies.get("consentry_session")
