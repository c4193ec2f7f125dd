"""The ``consentry`` command (SPEC §2): what scripts and operators rely on."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

CONSENTRY = [sys.executable, "-m", "consentry.cli"]


def fresh_env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    env["CONSENTRY_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CONSENTRY, *args], env=env, capture_output=True, text=True, timeout=120)


def test_users_create_then_duplicate_fails_with_a_message(server: Any) -> None:
    email = f"cli{secrets.token_hex(4)}@example.com"
    first = server.cli("users", "create", "--email", email, "--password", "long enough pw")
    assert first.returncode == 0 and email in first.stdout
    again = server.cli(
        "users", "create", "--email", email.upper(), "--password", "long enough pw", check=False
    )
    assert again.returncode != 0
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr


def test_users_create_refuses_a_short_password(server: Any) -> None:
    r = server.cli(
        "users", "create", "--email", "short@example.com", "--password", "x", check=False
    )
    assert r.returncode != 0 and "password" in r.stderr and "Traceback" not in r.stderr


def test_clients_create_json_is_usable_at_once_by_the_running_server(server: Any) -> None:
    r = server.cli(
        "clients", "create", "--owner", server.developer, "--name", "CLI App",
        "--redirect-uri", "https://cli.example.com/cb",
        "--redirect-uri", "http://127.0.0.1/cb", "--json",
    )  # fmt: skip
    out = json.loads(r.stdout)
    assert set(out) == {"client_id", "client_secret"}
    assert out["client_id"] and len(out["client_secret"]) >= 43
    tok = httpx.post(
        f"{server.url}/v3/token",
        auth=(out["client_id"], out["client_secret"]),
        data={"grant_type": "client_credentials"},
    )
    assert tok.status_code == 200, tok.text
    me = server.api("GET", "/v3/accounts", tok.json()["access_token"])
    assert me.json()["email"] == server.developer


def test_clients_create_without_json_shows_the_secret_once(server: Any) -> None:
    r = server.cli(
        "clients", "create", "--owner", server.developer, "--name", "Text App",
        "--redirect-uri", "https://text.example.com/cb",
    )  # fmt: skip
    assert "client_id:" in r.stdout and "client_secret:" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--redirect-uri", "http://example.com/cb"], "https"),
        (["--redirect-uri", "https://example.com/cb#frag"], "fragment"),
        (["--redirect-uri", "https://*.example.com/cb"], "wildcard"),
    ],
)
def test_clients_create_refuses_bad_redirect_uris(
    server: Any, args: list[str], message: str
) -> None:
    r = server.cli(
        "clients", "create", "--owner", server.developer, "--name", "Bad", *args, check=False
    )
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr


def test_clients_create_for_an_unknown_owner_fails(server: Any) -> None:
    r = server.cli(
        "clients", "create", "--owner", "nobody@example.com", "--name", "X",
        "--redirect-uri", "https://x.example.com/cb", check=False,
    )  # fmt: skip
    assert r.returncode != 0 and "nobody@example.com" in r.stderr


def test_purge_runs_and_keeps_live_tokens(server: Any) -> None:
    token = server.token(server.client, grant_type="client_credentials").json()["access_token"]
    r = server.cli("purge")
    assert r.returncode == 0
    assert r.stdout.startswith("purged ") and "expired rows" in r.stdout
    assert server.api("GET", "/v3/accounts", token).status_code == 200


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    env = fresh_env(tmp_path)
    for _ in range(2):
        r = run(env, "db", "upgrade")
        assert r.returncode == 0, r.stderr
        assert "up to date" in r.stdout
    assert (tmp_path / "cli.db").exists()
    r = run(env, "users", "create", "--email", "a@example.com", "--password", "long enough pw")
    assert r.returncode == 0, r.stderr


def test_db_upgrade_on_a_running_servers_database(server: Any) -> None:
    r = server.cli("db", "upgrade")
    assert r.returncode == 0 and "up to date" in r.stdout
    assert httpx.get(f"{server.url}/readyz").json()["database"] == "ok"


def test_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    env = fresh_env(tmp_path) | {"CONSENTRY_ACCESS_TOKEN_TTL": "an hour"}
    r = run(env, "db", "upgrade")
    assert r.returncode == 2
    assert "CONSENTRY_ACCESS_TOKEN_TTL" in r.stderr and "Traceback" not in r.stderr


def test_serve_with_workers_answers_from_each_and_stops_cleanly(tmp_path: Path) -> None:
    import re
    import signal
    import time

    from tests.conftest import free_port

    env = fresh_env(tmp_path) | {"CONSENTRY_LOG_LEVEL": "info"}
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*CONSENTRY, "serve", "--port", str(port), "--workers", "2"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        # both workers are up and logged their start; requests are served (by either)
        while len(set(re.findall(r'"event": "start".*?"pid": (\d+)', log.read_text()))) < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        for _ in range(20):
            with httpx.Client() as http:  # a new connection each time
                assert http.get(f"{url}/healthz").json() == {"status": "ok"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)


def test_serve_refuses_zero_workers(tmp_path: Path) -> None:
    r = run(fresh_env(tmp_path), "serve", "--workers", "0")
    assert r.returncode == 2 and "--workers" in r.stderr
