"""Shared fixtures: a real ``consentry serve`` subprocess and helpers that act like a browser.

Every test talks HTTP to a running server on loopback, as a user or an attacker would.
``server`` is one server for the whole session (default settings); ``make_server`` starts
extra servers with their own settings (short lifetimes, grace 0, ...).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

CONSENTRY = [sys.executable, "-m", "consentry.cli"]
PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
REQUEST_ID = re.compile(r'name="request_id" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uri: str
    owner: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.client_id, self.client_secret)


@dataclass
class Server:
    url: str
    env: dict[str, str]
    db_path: Path | None  # the SQLite file, or None on PostgreSQL
    proc: subprocess.Popen[bytes]
    log_path: Path
    owns_database: bool = False
    _dev: str | None = None
    _clients: dict[str, Client] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return self.env["CONSENTRY_DATABASE_URL"]

    def dump_bytes(self) -> bytes:
        """Everything the database holds, as an attacker with a dump would see it."""
        if self.db_path is not None:
            data = b""
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.db_path) + suffix)
                if p.exists():
                    data += p.read_bytes()
            return data
        return pg_dump(self.database_url)

    # --- set-up helpers ------------------------------------------------------------------
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CONSENTRY, *args], env=self.env, capture_output=True, text=True, check=check
        )

    def new_user(self, name: str = "Test User", *, max_domain: str | None = None) -> str:
        email = f"u{secrets.token_hex(6)}@example.com"
        args = ["users", "create", "--email", email, "--password", PASSWORD, "--name", name]
        if max_domain:
            args += ["--max-domain", max_domain]
        self.cli(*args)
        return email

    def new_client(
        self,
        redirect_uris: tuple[str, ...] = ("https://mytemplatemaker.example.com/gr_callback",),
        *,
        owner: str | None = None,
        resource_server: bool = False,
        allow_implicit: bool = False,
        name: str = "MyTemplateMaker",
    ) -> Client:
        owner = owner or self.developer
        args = ["clients", "create", "--owner", owner, "--name", name, "--json"]
        for uri in redirect_uris:
            args += ["--redirect-uri", uri]
        if resource_server:
            args.append("--resource-server")
        if allow_implicit:
            args.append("--allow-implicit")
        out = json.loads(self.cli(*args).stdout)
        return Client(out["client_id"], out["client_secret"], redirect_uris[0], owner)

    @property
    def developer(self) -> str:
        if self._dev is None:
            self._dev = self.new_user("Dev Eloper")
        return self._dev

    @property
    def client(self) -> Client:
        """A shared application with one redirect URI."""
        if "default" not in self._clients:
            self._clients["default"] = self.new_client()
        return self._clients["default"]

    # --- acting as a browser ---------------------------------------------------------------
    def browser(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)

    def login(self, browser: httpx.Client, email: str) -> None:
        page = browser.get("/login")
        csrf = CSRF.search(page.text)
        assert csrf, page.text
        r = browser.post(
            "/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf.group(1)}
        )
        assert r.status_code == 303, r.text

    def authorize(
        self,
        client: Client,
        email: str,
        *,
        decision: str = "allow",
        browser: httpx.Client | None = None,
        **params: str,
    ) -> httpx.Response:
        """Open the authorize URL, log in if asked, answer the consent page.

        Returns the final redirect response (to the client's redirect URI)."""
        b = browser or self.browser()
        query = {"response_type": "code", "client_id": client.client_id, "state": "xyz"}
        query.update(params)
        r = b.get("/oauth2_authorize.html", params=query)
        if r.status_code in (302, 303):
            return r
        assert r.status_code == 200, r.text
        if 'action="/login"' in r.text:
            csrf = CSRF.search(r.text)
            assert csrf
            r = b.post(
                "/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf.group(1)}
            )
            assert r.status_code == 303, r.text
            r = b.get(r.headers["location"])
            if r.status_code in (302, 303):
                return r
        csrf, rid = CSRF.search(r.text), REQUEST_ID.search(r.text)
        assert csrf and rid, r.text
        return b.post(
            "/oauth2_authorize.html",
            data={"csrf_token": csrf.group(1), "request_id": rid.group(1), "decision": decision},
        )

    def code_for(self, client: Client, email: str | None = None, **params: str) -> str:
        r = self.authorize(client, email or self.new_user(), **params)
        assert r.status_code in (302, 303), r.text
        q = redirect_params(r)
        assert "code" in q, q
        return q["code"]

    def token(self, client: Client, **form: str) -> httpx.Response:
        return httpx.post(f"{self.url}/v3/token", auth=client.auth, data=form, timeout=30)

    def tokens(self, client: Client | None = None, email: str | None = None) -> dict[str, Any]:
        """A fresh token pair through the whole code flow."""
        client = client or self.client
        code = self.code_for(client, email)
        r = self.token(client, grant_type="authorization_code", code=code)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def api(self, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kw)


def redirect_params(r: httpx.Response) -> dict[str, str]:
    loc = r.headers["location"]
    parts = urlsplit(loc)
    q = parse_qs(parts.query or parts.fragment, keep_blank_values=True)
    return {k: v[0] for k, v in q.items()}


# --- databases -------------------------------------------------------------------------------
# CONSENTRY_TEST_DATABASE=postgresql runs every server on a fresh PostgreSQL database
# (127.0.0.1:5432, user postgres) instead of a fresh SQLite file.
TEST_DATABASE = os.environ.get("CONSENTRY_TEST_DATABASE", "sqlite")
PG_ADMIN_DSN = os.environ.get("CONSENTRY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_admin(sql: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def require_service(name: str, check: Any) -> None:
    """Fail (under CI) or skip (on a laptop) when a service the test needs is down."""
    try:
        check()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is unreachable and CI is set: {exc}")
        pytest.skip(f"{name} is unreachable: {exc}")


def fresh_pg_database() -> str:
    """A new, empty PostgreSQL database; returns its SQLAlchemy URL."""
    name = f"consentry_t_{secrets.token_hex(6)}"
    require_service("PostgreSQL", lambda: _pg_admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base}/{name}"


def pg_dump(url: str) -> bytes:
    import asyncio

    import asyncpg

    async def run() -> bytes:
        conn = await asyncpg.connect(url, timeout=10)
        out = b""
        try:
            tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            for t in tables:
                rows = await conn.fetch(f'SELECT * FROM "{t["tablename"]}"')
                out += repr([tuple(r) for r in rows]).encode()
        finally:
            await conn.close()
        return out

    return asyncio.run(run())


def start_server(
    tmp: Path, extra_env: dict[str, str] | None = None, database_url: str | None = None
) -> Server:
    port = free_port()
    db_path: Path | None = None
    owns = False
    if database_url is None:
        if TEST_DATABASE == "postgresql":
            database_url = fresh_pg_database()
            owns = True
        else:
            db_path = tmp / "consentry.db"
            database_url = f"sqlite:///{db_path}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    env.update(
        {
            "CONSENTRY_DATABASE_URL": database_url,
            "CONSENTRY_PORT": str(port),
            "CONSENTRY_HOST": "127.0.0.1",
            "CONSENTRY_LOG_LEVEL": "warning",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if db_path is None:  # a server database: the key cannot live beside a file
        env["CONSENTRY_SECRET_KEY"] = "test-secret-" + secrets.token_hex(16)
        # Dozens of servers share one PostgreSQL (max_connections 100): each keeps one idle
        # connection and may burst to ten, waiting for a free one rather than failing.
        env.update(
            {
                "CONSENTRY_DB_POOL_SIZE": "1",
                "CONSENTRY_DB_MAX_OVERFLOW": "9",
                "CONSENTRY_DB_POOL_TIMEOUT": "30",
            }
        )
    env.update(extra_env or {})
    log_path = tmp / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - kept open for the server's lifetime
    proc = subprocess.Popen([*CONSENTRY, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"consentry serve exited: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"consentry serve did not start: {log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    return Server(
        url=url, env=env, db_path=db_path, proc=proc, log_path=log_path, owns_database=owns
    )


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
    if server.owns_database:
        drop_pg_database(server.database_url)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("server"))
    yield s
    stop_server(s)


@pytest.fixture(scope="session")
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    started: list[Server] = []

    def make(**env: str) -> Server:
        s = start_server(
            tmp_path_factory.mktemp("server"), {f"CONSENTRY_{k.upper()}": v for k, v in env.items()}
        )
        started.append(s)
        return s

    yield make
    for s in started:
        stop_server(s)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL, once SQLite (a file) and once PostgreSQL (a fresh database); a test
    module may define its own ``db_url`` instead."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite3'}"
        return
    url = fresh_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)
