"""The servers under test: consentry and node-oidc-provider, behind one small interface.

Each target knows how to start itself, set up an account, a confidential client and a
logged-in browser session through its real pages and endpoints, and describe the requests of
each scenario (paths, Authorization headers, form bodies).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx

from bench import procs

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = Path(__file__).resolve().parent / "node"
REDIRECT_URI = "https://client.example/cb"
PASSWORD = "bench password 123"  # noqa: S105 - a throwaway account on a throwaway database
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
REQUEST_ID = re.compile(r'name="request_id" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def basic(client_id: str, secret: str) -> str:
    # RFC 6749 §2.3.1: form-urlencode each part, then Basic
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _code_from(location: str) -> str:
    q = parse_qs(urlsplit(location).query)
    if "code" not in q:
        raise RuntimeError(f"no code in redirect: {location}")
    return q["code"][0]


@dataclass
class Target:
    """What the harness needs from a server under test."""

    name: str
    work: Path
    pinning: procs.Pinning
    url: str = ""
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    auth: str = ""  # Authorization header of the confidential client
    cookie: str = ""  # Cookie header of a logged-in browser session that already consented
    access_token: str = ""
    # filled in by subclasses
    token_path: str = "/v3/token"
    introspect_path: str = "/v3/token/introspect"
    bearer_path: str = "/v3/from-fields"
    authorize_path: str = ""  # full path + query that yields a code for ``cookie``
    exchange_suffix: str = ""  # appended to the code exchange form body
    notes: list[str] = field(default_factory=list)

    def start(self) -> None:
        raise NotImplementedError

    def setup(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def token(self, **form: str) -> dict[str, Any]:
        r = httpx.post(
            self.url + self.token_path,
            headers={"Authorization": self.auth},
            data=form,
            timeout=30,
        )
        if r.status_code != 200:
            raise RuntimeError(f"{self.name} token endpoint: {r.status_code} {r.text[:500]}")
        return dict(r.json())


class Consentry(Target):
    def __init__(
        self, work: Path, pinning: procs.Pinning, database: str, workers: int = 1
    ) -> None:
        super().__init__(name="consentry", work=work, pinning=pinning)
        self.database = database
        self.workers = workers
        self.pg_db: str | None = None
        self.env: dict[str, str] = {}

    # --- database -------------------------------------------------------------------------
    def _database_url(self) -> str:
        if self.database == "sqlite":
            return f"sqlite:///{self.work / 'consentry.db'}"
        self.pg_db = f"consentry_bench_{secrets.token_hex(4)}"
        asyncio.run(_pg(f"CREATE DATABASE {self.pg_db}"))
        return f"postgresql://postgres@127.0.0.1/{self.pg_db}"

    def drop_database(self) -> None:
        if self.pg_db:
            try:
                asyncio.run(_pg(f"DROP DATABASE IF EXISTS {self.pg_db} WITH (FORCE)"))
            except Exception as exc:  # noqa: BLE001 - best effort at exit
                print(f"could not drop database {self.pg_db}: {exc}")
            self.pg_db = None

    # --- process --------------------------------------------------------------------------
    def start(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        if self.env:  # a restart (bench.growth) keeps the database and the secret key
            self.env["CONSENTRY_PORT"] = str(port)
            self._spawn()
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
        env.update(
            {
                "CONSENTRY_DATABASE_URL": self._database_url(),
                "CONSENTRY_SECRET_KEY": secrets.token_hex(32),
                "CONSENTRY_HOST": "127.0.0.1",
                "CONSENTRY_PORT": str(port),
                "CONSENTRY_LOG_LEVEL": "warning",
                # generous limits, so that rate limiting does not hide throughput
                "CONSENTRY_RATE_LIMIT_PER_SECOND": "1000000",
                "CONSENTRY_RATE_LIMIT_PER_FRAME": "1000000000",
                "CONSENTRY_RATE_LIMIT_CONCURRENT": "100000",
                "CONSENTRY_TOKEN_RATE_LIMIT_PER_SECOND": "0",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env = env
        self._spawn()

    def _spawn(self) -> None:
        self.log = self.work / "consentry.log"
        serve = [procs.python(), "-m", "consentry.cli", "serve"]
        if self.workers > 1:
            serve += ["--workers", str(self.workers)]
        argv = self.pinning.server(serve)
        self.proc = procs.spawn(argv, env=self.env, cwd=ROOT, log=self.log)
        procs.wait_http(self.url + "/healthz", self.proc, self.log)

    def cli(self, *args: str) -> str:
        r = procs.run([procs.python(), "-m", "consentry.cli", *args], env=self.env, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"consentry {' '.join(args[:2])} failed: {r.stderr[-2000:]}")
        return r.stdout

    # --- accounts, client, browser session -----------------------------------------------
    def setup(self) -> None:
        dev = f"dev-{secrets.token_hex(4)}@example.com"
        user = f"user-{secrets.token_hex(4)}@example.com"
        self.cli("users", "create", "--email", dev, "--password", PASSWORD, "--name", "Dev")
        self.cli("users", "create", "--email", user, "--password", PASSWORD, "--name", "User")
        out = json.loads(
            self.cli(
                "clients",
                "create",
                "--owner",
                dev,
                "--name",
                "Bench",
                "--redirect-uri",
                REDIRECT_URI,
                "--json",
            )
        )
        self.auth = basic(out["client_id"], out["client_secret"])
        self.authorize_path = "/oauth2_authorize.html?" + urlencode(
            {"response_type": "code", "client_id": out["client_id"], "state": "bench"}
        )
        with httpx.Client(base_url=self.url, follow_redirects=False, timeout=30) as b:
            r = b.get(self.authorize_path)
            if r.status_code != 200 or 'action="/login"' not in r.text:
                raise RuntimeError(f"expected the login page: {r.status_code} {r.text[:300]}")
            csrf = CSRF.search(r.text)
            assert csrf, "no csrf_token on the login page"
            r = b.post(
                "/login", data={"email": user, "password": PASSWORD, "csrf_token": csrf.group(1)}
            )
            if r.status_code != 303:
                raise RuntimeError(f"login failed: {r.status_code} {r.text[:300]}")
            r = b.get(r.headers["location"])
            csrf, rid = CSRF.search(r.text), REQUEST_ID.search(r.text)
            if r.status_code != 200 or not (csrf and rid):
                raise RuntimeError(f"expected the consent page: {r.status_code} {r.text[:300]}")
            r = b.post(
                "/oauth2_authorize.html",
                data={"csrf_token": csrf.group(1), "request_id": rid.group(1), "decision": "allow"},
            )
            if r.status_code not in (302, 303):
                raise RuntimeError(f"consent failed: {r.status_code} {r.text[:300]}")
            first = _code_from(r.headers["location"])
            # remembered consent: the next authorization is one GET straight to the client
            r = b.get(self.authorize_path)
            if r.status_code not in (302, 303):
                raise RuntimeError(f"consent was not remembered: {r.status_code} {r.text[:300]}")
            _code_from(r.headers["location"])
            self.cookie = "; ".join(f"{c.name}={c.value}" for c in b.cookies.jar)
        self.access_token = self.token(grant_type="authorization_code", code=first)["access_token"]


class NodeOidcProvider(Target):
    def __init__(self, work: Path, pinning: procs.Pinning) -> None:
        super().__init__(
            name="node-oidc-provider",
            work=work,
            pinning=pinning,
            token_path="/token",
            introspect_path="/token/introspection",
            bearer_path="/v3/from-fields",
        )
        self.client_id = "bench-client"
        self.client_secret = secrets.token_hex(20)
        self.node = ""

    def start(self) -> None:
        self.node = ensure_node()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = self.work / "node-oidc-provider.log"
        env = dict(os.environ)
        argv = self.pinning.server(
            [self.node, "server.js", str(port), self.client_id, self.client_secret, REDIRECT_URI]
        )
        self.proc = procs.spawn(argv, env=env, cwd=NODE_DIR, log=self.log)
        procs.wait_http(self.url + "/healthz", self.proc, self.log)

    def setup(self) -> None:
        self.auth = basic(self.client_id, self.client_secret)
        self.authorize_path = "/auth?" + urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "state": "bench",
                "scope": "api",
                "redirect_uri": REDIRECT_URI,
            }
        )
        self.exchange_suffix = "&redirect_uri=" + quote(REDIRECT_URI, safe="")
        with httpx.Client(base_url=self.url, follow_redirects=False, timeout=30) as b:
            first = ""
            for _ in range(2):  # first: login + grant via /interaction; then: one GET
                r = b.get(self.authorize_path)
                for _hop in range(10):
                    loc = r.headers.get("location", "")
                    if r.status_code not in (302, 303) or loc.startswith(REDIRECT_URI):
                        break
                    r = b.get(loc)
                loc = r.headers.get("location", "")
                if not loc.startswith(REDIRECT_URI):
                    raise RuntimeError(f"node authorize: {r.status_code} {loc} {r.text[:300]}")
                first = first or _code_from(loc)
            self.cookie = "; ".join(f"{c.name}={c.value}" for c in b.cookies.jar)
        self.access_token = self.token(
            grant_type="authorization_code", code=first, redirect_uri=REDIRECT_URI
        )["access_token"]


def ensure_node() -> str:
    """A node binary new enough for oidc-provider 9, installing bench/node's packages first.

    ``npm install`` in bench/node brings oidc-provider and the npm ``node`` package (a
    Node 22 binary in node_modules/.bin/node); the machine's node is the fallback."""
    local = NODE_DIR / "node_modules" / ".bin" / "node"
    if not (NODE_DIR / "node_modules" / "oidc-provider").exists() or not local.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed")
        print("npm install in bench/node ...", flush=True)
        r = procs.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            timeout=600,
        )
        if r.returncode != 0:
            raise RuntimeError(f"npm install failed: {r.stderr[-1500:]}")
    if local.exists():
        return str(local)
    system = shutil.which("node")
    if system is None:
        raise RuntimeError("no node binary")
    return system


def node_hello(work: Path, pinning: procs.Pinning) -> tuple[str, subprocess.Popen[bytes]]:
    node = ensure_node()
    port = free_port()
    log = work / "node-hello.log"
    proc = procs.spawn(pinning.server([node, "hello.js", str(port)]), cwd=NODE_DIR, log=log)
    url = f"http://127.0.0.1:{port}"
    procs.wait_http(url + "/", proc, log)
    return url, proc


def starlette_hello(work: Path, pinning: procs.Pinning) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    log = work / "ceiling.log"
    proc = procs.spawn(
        pinning.server([procs.python(), "-m", "bench.ceiling", str(port)]), cwd=ROOT, log=log
    )
    url = f"http://127.0.0.1:{port}"
    procs.wait_http(url + "/healthz", proc, log)
    return url, proc


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
