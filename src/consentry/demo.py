"""``consentry demo``: the provider, MyTemplateMaker and a demo login, on embedded SQLite.

Everything lives in one folder (``--dir``, default ``./consentry-demo``): the database and
its key, ``demo.json`` (0600: the demo passwords and the application's secret, which the
database keeps only as hashes), MyTemplateMaker's token file and both servers' logs.
Running the command again reuses the same accounts and application.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from sqlalchemy import update

import consentry
from consentry.config import Settings
from consentry.crypto import new_secret

DEMO_EMAIL = "demo@example.com"
DEMO_NAME = "Demo User"
DEVELOPER_EMAIL = "developer@example.com"
DEVELOPER_NAME = "Demo Developer"
APP_NAME = "MyTemplateMaker"
APP_DESCRIPTION = (
    "Builds e-mail templates with your sender addresses. "
    "(The example application of consentry's client toolkit.)"
)
STATE_FILE = "demo.json"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Short-lived access tokens, so that the demo shows the toolkit refreshing them.
DEMO_ACCESS_TOKEN_TTL = "120"  # noqa: S105 - a lifetime, not a password


class DemoError(Exception):
    """Something the person running the demo must fix; the message says what."""


@dataclass
class DemoState:
    """Secrets of the demo, kept in ``demo.json`` (mode 0600) inside the demo folder."""

    user_password: str
    developer_password: str
    client_id: str
    client_secret: str

    @classmethod
    def load_or_new(cls, path: Path) -> DemoState:
        try:
            data = json.loads(path.read_text())
            return cls(
                user_password=str(data["user_password"]),
                developer_password=str(data["developer_password"]),
                client_id=str(data["client_id"]),
                client_secret=str(data["client_secret"]),
            )
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return cls(
                user_password=_readable_password(),
                developer_password=_readable_password(),
                client_id="",
                client_secret=new_secret(),
            )

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.__dict__, f, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


def _readable_password() -> str:
    return "demo-" + secrets.token_urlsafe(9)


def examples_dir() -> Path:
    """The ``examples`` folder of the source tree consentry runs from."""
    return Path(consentry.__file__).resolve().parents[2] / "examples"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def provider_env(folder: Path, port: int) -> dict[str, str]:
    """The provider's environment: the person's CONSENTRY_* settings, but our database/port."""
    env = dict(os.environ)
    for name in ("CONSENTRY_APP_URL", "CONSENTRY_API_URL", "CONSENTRY_ISSUER"):
        env.pop(name, None)  # they would point the demo somewhere else
    env.update(
        {
            "CONSENTRY_DATABASE_URL": f"sqlite:///{folder / 'consentry.db'}",
            "CONSENTRY_HOST": "127.0.0.1",
            "CONSENTRY_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.setdefault("CONSENTRY_ACCESS_TOKEN_TTL", DEMO_ACCESS_TOKEN_TTL)
    env.setdefault("CONSENTRY_LOG_LEVEL", "info")
    # The demo database has no key unless we give it the one beside the file.
    env.pop("CONSENTRY_SECRET_KEY", None)
    return env


# --- accounts and application ---------------------------------------------------------------


async def _ensure_user(conn: Any, email: str, name: str, password: str) -> int:
    from consentry.store.models import users
    from consentry.store.users import create_user, user_by_email
    from consentry.web.passwords import hash_password

    row = await user_by_email(conn, email)
    if row is None:
        return await create_user(
            conn, email=email, password_hash=hash_password(password), name=name
        )
    # The password is (re)set from demo.json, so the printed login always works.
    await conn.execute(
        update(users).where(users.c.id == row["id"]).values(password_hash=hash_password(password))
    )
    return int(row["id"])


async def _ensure_app(
    conn: Any, settings: Settings, state: DemoState, redirect_uri: str, owner_id: int
) -> None:
    from consentry.crypto import Keyring
    from consentry.oauth.client_auth import SECRET_KIND
    from consentry.store.clients import (
        client_by_client_id,
        create_client,
        new_client_id,
        set_secret_hash,
    )
    from consentry.store.models import clients

    secret_hash = Keyring(settings.secret_key).hash(state.client_secret, SECRET_KIND)
    found = await client_by_client_id(conn, state.client_id) if state.client_id else None
    if found is None:
        state.client_id = new_client_id()
        await create_client(
            conn,
            owner_id=owner_id,
            name=APP_NAME,
            description=APP_DESCRIPTION,
            redirect_uris=[redirect_uri],
            secret_hash=secret_hash,
            client_id=state.client_id,
        )
        return
    await set_secret_hash(conn, found.id, secret_hash)
    if list(found.redirect_uris) != [redirect_uri]:  # --app-port changed since the last run
        await conn.execute(
            update(clients)
            .where(clients.c.id == found.id)
            .values(redirect_uris=json.dumps([redirect_uri]))
        )


async def _prepare_database(settings: Settings, state: DemoState, redirect_uri: str) -> None:
    from consentry.store.db import Database

    db = Database(settings)
    try:
        async with db.write() as conn:
            await _ensure_user(conn, DEMO_EMAIL, DEMO_NAME, state.user_password)
            dev_id = await _ensure_user(
                conn, DEVELOPER_EMAIL, DEVELOPER_NAME, state.developer_password
            )
            await _ensure_app(conn, settings, state, redirect_uri, dev_id)
    finally:
        await db.dispose()


def prepare(folder: Path, port: int, app_port: int) -> DemoState:
    """Create (or reuse) the database, the demo accounts and MyTemplateMaker's registration."""
    from consentry.store.migrate import upgrade

    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# created by `consentry demo`\n*\n")
    settings = Settings.from_env(provider_env(folder, port))
    upgrade(settings)
    state_path = folder / STATE_FILE
    state = DemoState.load_or_new(state_path)
    redirect_uri = f"http://127.0.0.1:{app_port}/gr_callback"
    asyncio.run(_prepare_database(settings, state, redirect_uri))
    state.save(state_path)
    return state


# --- processes ------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child (Linux): get SIGTERM if the demo process dies without cleaning up."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _spawn(
    name: str, argv: list[str], env: dict[str, str], log: Path, url: str, cwd: Path | None = None
) -> Child:
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only the demo, which stops the children
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    return Child(name, proc, log, url)


def _wait_ready(children: list[Child], deadline: float) -> None:
    pending = list(children)
    with httpx.Client(timeout=1.0) as http:
        while pending:
            for child in list(pending):
                if child.proc.poll() is not None:
                    raise DemoError(
                        f"{child.name} stopped at start (exit {child.proc.returncode}); "
                        f"its log {child.log}:\n{child.tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{child.url}/healthz").status_code == 200:
                        pending.remove(child)
            if pending and time.monotonic() > deadline:
                names = ", ".join(c.name for c in pending)
                raise DemoError(f"{names} did not answer within {START_TIMEOUT:.0f} s")
            if pending:
                time.sleep(0.1)


def _stop(children: list[Child]) -> None:
    for child in children:
        if child.proc.poll() is None:
            child.proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children:
        try:
            child.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()


class _Stop(Exception):
    """Raised in the main thread by the SIGTERM handler."""


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, handler)
    # Ctrl-C stops the demo even when started from a shell that ignores SIGINT (`... &`).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def _ignore_signals() -> None:
    """While stopping: a second Ctrl-C must not leave the children running."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _banner(state: DemoState, provider_url: str, app_url: str, folder: Path) -> str:
    ttl = os.environ.get("CONSENTRY_ACCESS_TOKEN_TTL") or DEMO_ACCESS_TOKEN_TTL
    return "\n".join(
        [
            "",
            "consentry demo is running. Press Ctrl-C to stop it.",
            "",
            f"  MyTemplateMaker  {app_url}/   <- open this and click "
            '"Connect your GetResponse account"',
            f"  consentry        {provider_url}/",
            "",
            f"  demo login       {DEMO_EMAIL} / {state.user_password}",
            f"  developer login  {DEVELOPER_EMAIL} / {state.developer_password}"
            "   (sees the application under /apps)",
            "",
            f"  files            {folder} (database, demo.json, provider.log, mytemplatemaker.log)",
            f"  access tokens last {ttl} s here, so you can watch MyTemplateMaker refresh them.",
            "",
        ]
    )


def run_demo(args: argparse.Namespace) -> int:
    """Run ``consentry demo``; returns the exit status (0 after Ctrl-C or SIGTERM)."""
    port, app_port = int(args.port), int(args.app_port)
    folder = Path(args.dir or "consentry-demo").expanduser().resolve()
    examples = examples_dir()
    if not (examples / "mytemplatemaker" / "app.py").is_file():
        print(
            f"error: MyTemplateMaker is not at {examples / 'mytemplatemaker'}. `consentry demo` "
            "runs from a source checkout of consentry (git clone, then ./consentry demo).",
            file=sys.stderr,
        )
        return 1
    if port == app_port:
        print("error: --port and --app-port must differ", file=sys.stderr)
        return 2
    for flag, p in (("--port", port), ("--app-port", app_port)):
        if not _port_free(p):
            print(f"error: port {p} is in use; choose another with {flag}", file=sys.stderr)
            return 1

    print(f"preparing the demo in {folder} ...", flush=True)
    state = prepare(folder, port, app_port)
    provider_url = f"http://127.0.0.1:{port}"
    app_url = f"http://127.0.0.1:{app_port}"

    app_env = {k: v for k, v in os.environ.items() if not k.startswith("MYTEMPLATEMAKER_")}
    app_env.update(
        {
            "MYTEMPLATEMAKER_PROVIDER": "consentry",
            "MYTEMPLATEMAKER_CONSENTRY_URL": provider_url,
            "MYTEMPLATEMAKER_CLIENT_ID": state.client_id,
            "MYTEMPLATEMAKER_CLIENT_SECRET": state.client_secret,
            "MYTEMPLATEMAKER_REDIRECT_URI": f"{app_url}/gr_callback",
            "MYTEMPLATEMAKER_TOKEN_FILE": str(folder / "mytemplatemaker-tokens.json"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    children: list[Child] = []
    with _sigterm_stops():
        try:
            children.append(
                _spawn(
                    "consentry",
                    [sys.executable, "-m", "consentry.cli", "serve"],
                    provider_env(folder, port),
                    folder / "provider.log",
                    provider_url,
                )
            )
            children.append(
                _spawn(
                    "MyTemplateMaker",
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "--app-dir",
                        str(examples),
                        "--factory",
                        "mytemplatemaker.app:create_app",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(app_port),
                        "--no-server-header",
                    ],
                    app_env,
                    folder / "mytemplatemaker.log",
                    app_url,
                )
            )
            _wait_ready(children, time.monotonic() + START_TIMEOUT)
            print(_banner(state, provider_url, app_url, folder), flush=True)
            while True:
                for child in children:
                    if child.proc.poll() is not None:
                        raise DemoError(
                            f"{child.name} stopped unexpectedly (exit {child.proc.returncode}); "
                            f"its log {child.log}:\n{child.tail()}"
                        )
                time.sleep(0.5)
        except (KeyboardInterrupt, _Stop):
            _ignore_signals()
            print("\nstopping ...", flush=True)
            _stop(children)
            print("stopped.", flush=True)
            return 0
        except DemoError as exc:
            _ignore_signals()
            _stop(children)
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except BaseException:
            _stop(children)
            raise
