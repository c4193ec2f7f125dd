"""What an attacker (and the victim they target) needs: fresh accounts, PKCE, codes, tokens.

Accounts are made through the signup page (it logs the browser in), which is much faster
than a CLI process per user.
"""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import CSRF, PASSWORD, REQUEST_ID, Client, Server, redirect_params

__all__ = [
    "PASSWORD",
    "Client",
    "Server",
    "redirect_params",
    "signup",
    "csrf_of",
    "pkce_pair",
    "authorize",
    "consent",
    "code_for",
    "exchange",
    "token_pair",
    "refresh",
    "paired_timings",
    "timing_leak",
    "sign_test",
    "from_address",
]


def from_address(server: Server, host: str, **kw: Any) -> httpx.Client:
    """An HTTP client whose connections come from another loopback address (127.0.0.0/8),
    so the server sees a different client address: the attacker is not the victim."""
    transport = httpx.HTTPTransport(local_address=host)
    return httpx.Client(base_url=server.url, transport=transport, timeout=30, **kw)


def signup(server: Server, name: str = "Test User") -> tuple[str, httpx.Client]:
    """A new account and a browser logged in as it."""
    email = f"u{secrets.token_hex(6)}@example.com"
    b = server.browser()
    csrf = csrf_of(b, "/signup")
    r = b.post("/signup", data={"email": email, "password": PASSWORD, "name": name,
                                "csrf_token": csrf})
    assert r.status_code == 303, r.text
    return email, b


def csrf_of(browser: httpx.Client, path: str = "/") -> str:
    page = browser.get(path)
    found = CSRF.search(page.text)
    assert found, f"no csrf_token on {path}: {page.status_code}"
    return found.group(1)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(browser: httpx.Client, client: Client, **params: str) -> httpx.Response:
    """Open the authorization URL in this (logged-in) browser: the consent page or a redirect."""
    query = {"response_type": "code", "client_id": client.client_id, "state": "s"}
    query.update(params)
    return browser.get("/oauth2_authorize.html", params=query)


def consent(browser: httpx.Client, page: httpx.Response, decision: str = "allow") -> httpx.Response:
    csrf, rid = CSRF.search(page.text), REQUEST_ID.search(page.text)
    assert csrf and rid, page.text[:2000]
    return browser.post(
        "/oauth2_authorize.html",
        data={"csrf_token": csrf.group(1), "request_id": rid.group(1), "decision": decision},
    )


def code_for(browser: httpx.Client, client: Client, **params: str) -> str:
    """A code for the browser's user: consent is given when asked."""
    r = authorize(browser, client, **params)
    if r.status_code == 200:
        r = consent(browser, r)
    assert r.status_code in (302, 303), r.text[:2000]
    q = redirect_params(r)
    assert "code" in q, q
    return q["code"]


def exchange(server: Server, client: Client, code: str, **form: str) -> httpx.Response:
    return server.token(client, grant_type="authorization_code", code=code, **form)


def token_pair(
    server: Server, client: Client, browser: httpx.Client, **params: str
) -> dict[str, Any]:
    r = exchange(server, client, code_for(browser, client, **params))
    assert r.status_code == 200, r.text
    return dict(r.json())


def refresh(server: Server, client: Client, refresh_token: str, **form: str) -> httpx.Response:
    return server.token(client, grant_type="refresh_token", refresh_token=refresh_token, **form)


# --- timing ----------------------------------------------------------------------------------


def paired_timings(
    a: Callable[[], object], b: Callable[[], object], pairs: int
) -> list[tuple[float, float]]:
    """Run a and b back to back ``pairs`` times, alternating which goes first, so load drift
    on a busy machine hits both equally. Returns (time_a, time_b) per pair."""
    out: list[tuple[float, float]] = []
    for i in range(pairs):
        order = (a, b) if i % 2 == 0 else (b, a)
        times: dict[int, float] = {}
        for f in order:
            t0 = time.perf_counter()
            f()
            times[id(f)] = time.perf_counter() - t0
        out.append((times[id(a)], times[id(b)]))
    return out


def sign_test(diffs: list[float]) -> float:
    """Two-sided exact sign test: how likely this many same-signed differences are by chance."""
    pos, neg = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    n, k = pos + neg, max(pos, neg)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n
    return min(1.0, 2 * tail)


def timing_leak(samples: list[tuple[float, float]]) -> tuple[bool, str]:
    """Whether a and b differ in a way an attacker could use, and a summary.

    A leak is a paired difference that is (1) consistent in sign beyond chance (sign test,
    p < 0.005), (2) large against the noise (over 2 median absolute deviations of the
    differences) and (3) not negligible against the request's own cost (over 10 % of its
    median). All three are needed, so load spikes on a busy machine do not make the test
    flaky, while a real leak (a skipped password hash, a slow hash for known clients only)
    meets all three."""
    diffs = [x - y for x, y in samples]
    med = statistics.median(diffs)
    mad = statistics.median(abs(d - med) for d in diffs)
    p = sign_test(diffs)
    cost = statistics.median([t for pair in samples for t in pair])
    leak = p < 0.005 and abs(med) > 2 * mad and abs(med) > 0.10 * cost
    summary = (
        f"median a={statistics.median(x for x, _ in samples) * 1000:.1f} ms, "
        f"median b={statistics.median(y for _, y in samples) * 1000:.1f} ms, "
        f"median diff={med * 1000:.2f} ms, MAD={mad * 1000:.2f} ms, sign test p={p:.2g}"
    )
    return leak, summary
