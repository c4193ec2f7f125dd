"""``consentry demo`` without a browser: re-running reuses the demo data; clear start errors.

(The browser test starts the real command; here its preparation runs in-process.)"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

from demo_support import free_port

from consentry.config import Settings
from consentry.crypto import Keyring
from consentry.demo import DEMO_EMAIL, DEVELOPER_EMAIL, DemoState, prepare, provider_env
from consentry.oauth.client_auth import SECRET_KIND
from consentry.web.passwords import verify_password


async def _stored(folder: Path, state: DemoState) -> tuple[str, str, tuple[str, ...]]:
    """The demo user's password hash, the app's secret hash and its redirect URIs."""
    from consentry.store.clients import client_by_client_id
    from consentry.store.db import Database
    from consentry.store.users import user_by_email

    db = Database(Settings.from_env(provider_env(folder, 8000)))
    try:
        async with db.read() as conn:
            user = await user_by_email(conn, DEMO_EMAIL)
            app = await client_by_client_id(conn, state.client_id)
    finally:
        await db.dispose()
    assert user is not None and app is not None
    assert app.owner_email == DEVELOPER_EMAIL and app.name == "MyTemplateMaker"
    return str(user["password_hash"]), app.secret_hash, app.redirect_uris


async def test_demo_data_is_created_once_and_reused(tmp_path: Path) -> None:
    folder = tmp_path / "consentry-demo"
    first = await asyncio.to_thread(prepare, folder, 8000, 8001)
    assert stat.S_IMODE(os.stat(folder / "demo.json").st_mode) == 0o600
    assert (folder / ".gitignore").read_text().strip().endswith("*")  # never committed
    password_hash, secret_hash, uris = await _stored(folder, first)
    assert verify_password(password_hash, first.user_password)
    keys = Keyring(Settings.from_env(provider_env(folder, 8000)).secret_key)
    assert keys.hash(first.client_secret, SECRET_KIND) == secret_hash
    assert uris == ("http://127.0.0.1:8001/gr_callback",)

    # Again, with another MyTemplateMaker port: same accounts, same app, same secrets.
    second = await asyncio.to_thread(prepare, folder, 9000, 9001)
    assert second == first
    assert json.loads((folder / "demo.json").read_text())["client_id"] == first.client_id
    password_hash, secret_hash, uris = await _stored(folder, second)
    assert verify_password(password_hash, first.user_password)
    assert keys.hash(first.client_secret, SECRET_KIND) == secret_hash
    assert uris == ("http://127.0.0.1:9001/gr_callback",)  # follows --app-port


def test_demo_refuses_a_busy_port_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "consentry.cli", "demo", "--dir", str(tmp_path / "d"),
             "--port", str(port), "--app-port", str(free_port())],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert r.returncode == 1
    assert f"port {port} is in use" in r.stderr and "--port" in r.stderr
