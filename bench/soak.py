"""Soak test: mixed OAuth traffic against a consentry server this script starts itself.

    .venv/bin/python bench/soak.py                 # 5 minutes, 8 workers, SQLite
    .venv/bin/python bench/soak.py --minutes 2 --workers 6 --json soak.json

Workers run a weighted mix of what real clients do — full code flows (authorize, consent,
token exchange; half with PKCE), refreshes, API calls (account, from-fields list, create
and delete), introspections and revocations — for a fixed time. The script records every
unexpected answer or exception, the latency percentiles of each kind of request, and the
resident memory (VmRSS) of the server process over time, then prints a summary. Not part
of CI: it is a bounded endurance run whose result is kept in docs/soak.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

PASSWORD = "soak password 123"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
REQUEST_ID = re.compile(r'name="request_id" value="([^"]+)"')
SCOPES = [None, "account.read", "account.read from-fields.read from-fields.write"]

# Weighted mix of operations (relative frequencies).
MIX = {
    "code_flow": 10,
    "refresh": 15,
    "api_accounts": 30,
    "api_from_fields": 20,
    "api_create_delete": 5,
    "introspect": 8,
    "revoke": 5,
    "login": 1,  # an argon2 verification: expensive on purpose
}


# --- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Provider:
    url: str
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    log_path: Path

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "consentry.cli", *args],
            env=self.env, capture_output=True, text=True, check=True,
        )
        return done.stdout


def start_provider(workdir: Path, database_url: str | None, extra: dict[str, str]) -> Provider:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    env.update(
        {
            "CONSENTRY_DATABASE_URL": database_url or f"sqlite:///{workdir}/soak.db",
            "CONSENTRY_HOST": "127.0.0.1",
            "CONSENTRY_PORT": str(port),
            "CONSENTRY_LOG_LEVEL": "warning",
            # Generous limits: the soak measures the server, not its throttles.
            "CONSENTRY_RATE_LIMIT_PER_SECOND": "100000",
            "CONSENTRY_RATE_LIMIT_PER_FRAME": "100000000",
            "CONSENTRY_RATE_LIMIT_CONCURRENT": "1000",
            "CONSENTRY_TOKEN_RATE_LIMIT_PER_SECOND": "0",
        }
    )
    if database_url and not database_url.startswith("sqlite"):
        env.setdefault("CONSENTRY_SECRET_KEY", secrets.token_hex(32))
    env.update(extra)
    log_path = workdir / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - kept open for the server's lifetime
    proc = subprocess.Popen(
        [sys.executable, "-m", "consentry.cli", "serve"], env=env, stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"consentry serve exited: {log_path.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("consentry serve did not start")
        time.sleep(0.1)
    return Provider(url, proc, env, log_path)


# --- actors ----------------------------------------------------------------------------------


@dataclass
class App:
    client_id: str
    secret: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.client_id, self.secret)


@dataclass
class User:
    email: str
    browser: httpx.Client
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Pair:
    app: App
    access: str
    refresh: str
    scope: str | None


class Unexpected(Exception):
    """An answer the scenario did not expect."""


def expect(r: httpx.Response, *statuses: int) -> httpx.Response:
    if r.status_code not in statuses:
        raise Unexpected(f"{r.request.method} {r.request.url.path} -> {r.status_code}")
    return r


def signup(url: str, name: str) -> User:
    b = httpx.Client(base_url=url, timeout=60)
    page = expect(b.get("/signup"), 200)
    csrf = CSRF.search(page.text)
    assert csrf
    email = f"soak-{secrets.token_hex(6)}@example.com"
    expect(b.post("/signup", data={"email": email, "password": PASSWORD, "name": name,
                                   "csrf_token": csrf.group(1)}), 303)
    return User(email, b)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


class Soak:
    def __init__(self, provider: Provider, users: list[User], apps: list[App]) -> None:
        self.p = provider
        self.users = users
        self.apps = apps
        self.pairs: list[Pair] = []
        self.pairs_lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.stats_lock = threading.Lock()

    # -- bookkeeping --
    def timed(self, name: str, send: Callable[[], httpx.Response]) -> httpx.Response:
        started = time.perf_counter()
        try:
            return send()
        finally:
            elapsed = time.perf_counter() - started
            with self.stats_lock:
                self.latency[name].append(elapsed)

    def take_pair(self) -> Pair | None:
        with self.pairs_lock:
            if not self.pairs:
                return None
            return self.pairs.pop(random.randrange(len(self.pairs)))

    def give_pair(self, pair: Pair) -> None:
        with self.pairs_lock:
            self.pairs.append(pair)
            if len(self.pairs) > 400:  # keep the pool bounded; old pairs are just dropped
                self.pairs.pop(0)

    def peek_pair(self) -> Pair | None:
        with self.pairs_lock:
            return random.choice(self.pairs) if self.pairs else None

    # -- operations --
    def code_flow(self, http: httpx.Client) -> None:
        user = random.choice(self.users)
        app = random.choice(self.apps)
        scope = random.choice(SCOPES)
        params = {"response_type": "code", "client_id": app.client_id,
                  "state": secrets.token_urlsafe(16)}
        if scope:
            params["scope"] = scope
        verifier = None
        if random.random() < 0.5:
            verifier, challenge = pkce()
            params.update(code_challenge=challenge, code_challenge_method="S256")
        with user.lock:  # one browser, one flow at a time (its session and pending request)
            r = self.timed("authorize", lambda: user.browser.get("/oauth2_authorize.html",
                                                                 params=params))
            if r.status_code == 200:
                csrf, rid = CSRF.search(r.text), REQUEST_ID.search(r.text)
                if not (csrf and rid):
                    raise Unexpected("consent page without its form")
                form = {"csrf_token": csrf.group(1), "request_id": rid.group(1),
                        "decision": "allow"}
                r = self.timed("consent", lambda: user.browser.post("/oauth2_authorize.html",
                                                                    data=form))
        expect(r, 302, 303)
        query = parse_qs(urlsplit(r.headers["location"]).query)
        if "code" not in query:
            raise Unexpected(f"no code in redirect: {sorted(query)}")
        body = {"grant_type": "authorization_code", "code": query["code"][0]}
        if verifier:
            body["code_verifier"] = verifier
        t = expect(self.timed("token_code", lambda: http.post("/v3/token", auth=app.auth,
                                                              data=body)), 200).json()
        self.give_pair(Pair(app, t["access_token"], t["refresh_token"], t["scope"]))

    def refresh(self, http: httpx.Client) -> None:
        pair = self.take_pair()
        if pair is None:
            return self.code_flow(http)
        form = {"grant_type": "refresh_token", "refresh_token": pair.refresh}
        if pair.scope is None and random.random() < 0.2:
            form["scope"] = "account.read"  # sometimes narrow
        t = expect(self.timed("token_refresh", lambda: http.post("/v3/token", auth=pair.app.auth,
                                                                 data=form)), 200).json()
        self.give_pair(Pair(pair.app, t["access_token"], t["refresh_token"], t["scope"]))
        return None

    def _bearer(self, pair: Pair) -> dict[str, str]:
        return {"Authorization": f"Bearer {pair.access}"}

    def api_accounts(self, http: httpx.Client) -> None:
        pair = self.peek_pair()
        if pair is None:
            return self.code_flow(http)
        r = self.timed("api_accounts", lambda: http.get("/v3/accounts",
                                                         headers=self._bearer(pair)))
        # 401: the pair was revoked or rotated away meanwhile by another worker.
        expect(r, 200, 401)
        return None

    def api_from_fields(self, http: httpx.Client) -> None:
        pair = self.peek_pair()
        if pair is None:
            return self.code_flow(http)
        r = self.timed("api_from_fields", lambda: http.get(
            "/v3/from-fields", headers=self._bearer(pair), params={"perPage": "10"}))
        expect(r, 200, 401, 403)
        return None

    def api_create_delete(self, http: httpx.Client) -> None:
        pair = self.peek_pair()
        if pair is None or pair.scope == "account.read":
            return self.code_flow(http)
        body = {"email": f"from-{secrets.token_hex(5)}@example.com", "name": "Soak sender"}
        r = self.timed("api_create", lambda: http.post("/v3/from-fields", json=body,
                                                       headers=self._bearer(pair)))
        expect(r, 201, 401)
        if r.status_code == 201:
            ident = r.json()["fromFieldId"]
            d = self.timed("api_delete", lambda: http.delete(f"/v3/from-fields/{ident}",
                                                             headers=self._bearer(pair)))
            expect(d, 204, 401)
        return None

    def introspect(self, http: httpx.Client) -> None:
        pair = self.peek_pair()
        if pair is None:
            return self.code_flow(http)
        r = self.timed("introspect", lambda: http.post(
            "/v3/token/introspect", auth=pair.app.auth, data={"token": pair.access}))
        expect(r, 200)
        return None

    def revoke(self, http: httpx.Client) -> None:
        pair = self.take_pair()
        if pair is None:
            return self.code_flow(http)
        token = pair.refresh if random.random() < 0.5 else pair.access
        r = self.timed("revoke", lambda: http.post("/v3/token/revoke", auth=pair.app.auth,
                                                   data={"token": token}))
        expect(r, 200)
        return None

    def login(self, http: httpx.Client) -> None:
        b = httpx.Client(base_url=self.p.url, timeout=60)
        try:
            page = expect(b.get("/login"), 200)
            csrf = CSRF.search(page.text)
            assert csrf
            user = random.choice(self.users)
            r = self.timed("login", lambda: b.post("/login", data={
                "email": user.email, "password": PASSWORD, "csrf_token": csrf.group(1)}))
            expect(r, 303)
        finally:
            b.close()

    # -- the run --
    def worker(self, until: float, seed: int) -> None:
        rng = random.Random(seed)
        names = list(MIX)
        weights = [MIX[n] for n in names]
        with httpx.Client(base_url=self.p.url, timeout=60) as http:
            while time.monotonic() < until:
                op = rng.choices(names, weights)[0]
                try:
                    getattr(self, op)(http)
                    with self.stats_lock:
                        self.counts[op] += 1
                except Unexpected as exc:
                    with self.stats_lock:
                        self.errors[f"{op}: {exc}"] += 1
                except httpx.HTTPError as exc:
                    with self.stats_lock:
                        self.errors[f"{op}: {type(exc).__name__}"] += 1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--minutes", type=float, default=5.0, help="duration (default 5)")
    ap.add_argument("--workers", type=int, default=8, help="concurrent workers (default 8)")
    ap.add_argument("--users", type=int, default=6)
    ap.add_argument("--apps", type=int, default=3)
    ap.add_argument("--database-url", help="default: a fresh SQLite file in a temp folder")
    ap.add_argument("--sample-seconds", type=float, default=10.0, help="RSS sampling period")
    ap.add_argument("--json", help="also write the result as JSON to this file")
    args = ap.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="consentry-soak-"))
    provider = start_provider(workdir, args.database_url, {})
    try:
        dev = signup(provider.url, "Soak Developer")
        apps = []
        for i in range(args.apps):
            out = json.loads(provider.cli(
                "clients", "create", "--owner", dev.email, "--name", f"Soak App {i}",
                "--redirect-uri", "https://soak.example.com/callback", "--json"))
            apps.append(App(out["client_id"], out["client_secret"]))
        users = [signup(provider.url, f"Soak User {i}") for i in range(args.users)]
        soak = Soak(provider, users, apps)

        rss: list[tuple[float, int]] = [(0.0, provider.rss_kib())]
        started = time.monotonic()
        until = started + args.minutes * 60
        threads = [threading.Thread(target=soak.worker, args=(until, i), daemon=True)
                   for i in range(args.workers)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(min(args.sample_seconds, max(0.1, until - time.monotonic() + 0.5)))
            rss.append((time.monotonic() - started, provider.rss_kib()))
        elapsed = time.monotonic() - started
        rss.append((elapsed, provider.rss_kib()))
        server_alive = provider.proc.poll() is None
    finally:
        provider.proc.terminate()
        try:
            provider.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            provider.proc.kill()

    total_ops = sum(soak.counts.values())
    total_errors = sum(soak.errors.values())
    requests = sum(len(v) for v in soak.latency.values())
    # Memory growth after warm-up: from the first sample past 20 % of the run to the end.
    warm = next((kib for t, kib in rss if t >= elapsed * 0.2), rss[0][1])
    result: dict[str, Any] = {
        "minutes": round(elapsed / 60, 2),
        "workers": args.workers,
        "database": "sqlite" if not args.database_url else args.database_url.split(":")[0],
        "operations": dict(soak.counts),
        "operations_total": total_ops,
        "timed_requests": requests,
        "requests_per_second": round(requests / elapsed, 1),
        "errors_total": total_errors,
        "errors": dict(soak.errors.most_common(20)),
        "server_alive_at_end": server_alive,
        "rss_kib": {"start": rss[0][1], "after_warmup": warm, "end": rss[-1][1],
                    "max": max(k for _, k in rss)},
        "rss_growth_after_warmup_kib": rss[-1][1] - warm,
        "rss_samples": rss,
        "latency_ms": {
            name: {
                "n": len(v),
                "p50": round(percentile(v, 50) * 1000, 1),
                "p95": round(percentile(v, 95) * 1000, 1),
                "p99": round(percentile(v, 99) * 1000, 1),
                "max": round(max(v) * 1000, 1),
                "mean": round(statistics.fmean(v) * 1000, 1),
            }
            for name, v in sorted(soak.latency.items())
        },
    }
    print(f"soak: {result['minutes']} min, {args.workers} workers, {result['database']}")
    print(f"operations: {total_ops} ({requests} timed requests, "
          f"{result['requests_per_second']}/s); errors: {total_errors}")
    for name, count in soak.errors.most_common(10):
        print(f"  error x{count}: {name}")
    r = result["rss_kib"]
    print(f"server RSS (MiB): start {r['start'] / 1024:.1f}, after warm-up "
          f"{r['after_warmup'] / 1024:.1f}, end {r['end'] / 1024:.1f}, max {r['max'] / 1024:.1f}")
    print(f"{'request':<16}{'n':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, s in result["latency_ms"].items():
        print(f"{name:<16}{s['n']:>8}{s['p50']:>9}{s['p95']:>9}{s['p99']:>9}{s['max']:>9}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if total_errors == 0 and server_alive else 1


if __name__ == "__main__":
    raise SystemExit(main())
