"""`consentry serve` refuses insecure settings at start (RFC 9700), with documented overrides."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CONSENTRY, start_server, stop_server


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    full["CONSENTRY_DATABASE_URL"] = f"sqlite:///{tmp_path / 'gates.db'}"
    full.update({f"CONSENTRY_{k.upper()}": v for k, v in env.items()})
    return subprocess.run(
        [*CONSENTRY, "serve", "--port", "1"], env=full, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("env", "gate"),
    [
        ({"app_url": "http://auth.example.com"}, "http_issuer"),
        ({"issuer": "http://auth.example.com"}, "http_issuer"),
        ({"code_ttl": "601"}, "code_ttl"),
        ({"refresh_grace": "61"}, "refresh_grace"),
    ],
)
def test_insecure_setting_is_refused_with_its_override_named(
    tmp_path: Path, env: dict[str, str], gate: str
) -> None:
    r = _serve(tmp_path, **env)
    assert r.returncode == 2
    assert "refusing to start" in r.stderr
    assert f"CONSENTRY_ALLOW_INSECURE={gate}" in r.stderr


def test_server_database_without_a_shared_secret_key_is_refused(tmp_path: Path) -> None:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    full["CONSENTRY_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:5432/test"
    r = subprocess.run([*CONSENTRY, "serve"], env=full, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "CONSENTRY_SECRET_KEY must be set" in r.stderr


def test_an_allowed_insecure_setting_starts_with_a_warning(tmp_path: Path) -> None:
    server = start_server(
        tmp_path,
        {"CONSENTRY_CODE_TTL": "900", "CONSENTRY_ALLOW_INSECURE": "code_ttl",
         "CONSENTRY_LOG_LEVEL": "info"},
    )
    try:
        assert "insecure setting allowed" in server.log_path.read_text()
    finally:
        stop_server(server)


def test_enabling_the_implicit_grant_is_warned_about_at_start(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"CONSENTRY_LOG_LEVEL": "info"})
    server.new_client(allow_implicit=True)
    server.proc.terminate()
    server.proc.wait(timeout=30)
    again_dir = tmp_path / "again"
    again_dir.mkdir()
    again = start_server(
        again_dir,
        {"CONSENTRY_LOG_LEVEL": "info", "CONSENTRY_SECRET_KEY": server.env.get(
            "CONSENTRY_SECRET_KEY", "k")},
        database_url=server.database_url,
    )
    again.owns_database = server.owns_database
    try:
        assert "implicit grant enabled" in again.log_path.read_text()
    finally:
        stop_server(again)
