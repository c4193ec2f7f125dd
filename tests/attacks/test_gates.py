"""Deployment mistakes the server refuses to start with (RFC 9700 §2, §4.14.2; RFC 6749 §4.1.2).

TLS itself is the operator's job (a reverse proxy); consentry refuses to announce an http
issuer on a public host, where codes, tokens and passwords would travel in clear text.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONSENTRY = [sys.executable, "-m", "consentry.cli", "serve"]


def serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTRY_")}
    base.update({"CONSENTRY_DATABASE_URL": f"sqlite:///{tmp_path}/gate.db",
                 "CONSENTRY_PORT": "9", "CONSENTRY_LOG_LEVEL": "warning"})
    base.update({f"CONSENTRY_{k.upper()}": v for k, v in env.items()})
    return subprocess.run(CONSENTRY, env=base, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("env", "gate"),
    [
        ({"app_url": "http://auth.example.com"}, "http_issuer"),
        ({"issuer": "http://auth.example.com", "app_url": "https://auth.example.com"},
         "http_issuer"),
        ({"app_url": "https://auth.example.com", "api_url": "http://api.example.com"},
         "http_issuer"),
        ({"code_ttl": "3600"}, "code_ttl"),
        ({"refresh_grace": "600"}, "refresh_grace"),
    ],
    ids=["http_issuer", "http_issuer_only", "http_api_url", "code_ttl", "refresh_grace"],
)
def test_serve_refuses_insecure_settings(tmp_path: Path, env: dict[str, str], gate: str) -> None:
    done = serve(tmp_path, **env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"CONSENTRY_ALLOW_INSECURE={gate}" in done.stderr
