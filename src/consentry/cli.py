"""The ``consentry`` command (SPEC §2)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

from consentry.config import ConfigError, Settings


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(host=getattr(args, "host", None), port=getattr(args, "port", None))


def _setup_logging(level: str) -> None:
    from consentry.logs import setup

    setup(level)


async def _implicit_clients(settings: Settings) -> int:
    from sqlalchemy import func, select

    from consentry.store.db import Database
    from consentry.store.models import clients

    db = Database(settings)
    try:
        async with db.read() as conn:
            q = select(func.count()).select_from(clients).where(clients.c.allow_implicit)
            return int((await conn.execute(q)).scalar_one())
    finally:
        await db.dispose()


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_serve(args: argparse.Namespace) -> int:
    from consentry.gates import InsecureSettings, check
    from consentry.store.migrate import upgrade

    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    settings = _settings(args)
    _setup_logging(settings.log_level)
    upgrade(settings)
    try:
        check(settings, settings.allowed_insecure, asyncio.run(_implicit_clients(settings)))
    except InsecureSettings as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.workers > 1:
        return _serve_workers(settings, args.workers)
    _serve_one(settings)
    return 0


def _serve_one(settings: Settings, sock: socket.socket | None = None) -> None:
    """One process: the app on uvicorn, on ``sock`` (shared by workers) or its own."""
    import uvicorn

    from consentry.app import create_app
    from consentry.serving import http_options

    app = create_app(settings)
    logging.getLogger("consentry").info(
        json.dumps({"event": "start", "app_url": settings.app_url, "api_url": settings.api_url,
                    "pid": os.getpid()})
    )
    # uvicorn finishes in-flight requests on SIGTERM/SIGINT, then re-raises the signal
    # to the handler that was installed before it: make that a clean exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="auto",
        **http_options(),  # a bounded request head (431 above 64 KiB)
        access_log=False,
        log_level=settings.log_level,
        log_config=None,  # keep the JSON handler set up above
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=30,
    )
    uvicorn.Server(config).run(sockets=[sock] if sock is not None else None)


def _serve_workers(settings: Settings, workers: int) -> int:
    """``--workers N``: N processes accept on one listening socket (each its own event loop,
    app, database pool — or SQLite writer — and rate-limit counters; share limits with
    CONSENTRY_REDIS_URL). SIGTERM/SIGINT to this process are passed on; each worker finishes
    its in-flight requests, and this process exits 0 once all have. If a worker dies, the
    others are stopped and the exit status is 1."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker: everything (loop, engine, threads) is created after fork
            code = 1
            try:
                _serve_one(settings, sock)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
            finally:
                os._exit(code)
        children.append(pid)
    sock.close()
    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    status = 0
    alive = set(children)
    while alive:
        try:
            pid, raw = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        alive.discard(pid)
        code = os.waitstatus_to_exitcode(raw)
        if code != 0 and not stopping:
            logging.getLogger("consentry").error(
                json.dumps({"event": "worker_died", "pid": pid, "exit": code})
            )
            status = 1
            _stop(signal.SIGTERM, None)
    return status


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from consentry.store.migrate import upgrade

    upgrade(_settings(args))
    print("database is up to date")
    return 0


async def _create_user(settings: Settings, args: argparse.Namespace) -> int:
    from consentry.store.db import Database
    from consentry.store.users import DuplicateError, create_user
    from consentry.web.passwords import hash_password, password_problem

    problem = password_problem(args.password)
    if problem:
        print(f"error: password: {problem}", file=sys.stderr)
        return 2
    db = Database(settings)
    try:
        async with db.write() as conn:
            await create_user(
                conn,
                email=args.email,
                password_hash=hash_password(args.password),
                name=args.name or "",
                max_domain=args.max_domain,
            )
    except DuplicateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
    print(f"created account {args.email.strip().lower()}")
    return 0


def cmd_users_create(args: argparse.Namespace) -> int:
    from consentry.store.migrate import upgrade

    settings = _settings(args)
    upgrade(settings)
    return asyncio.run(_create_user(settings, args))


async def _create_client(settings: Settings, args: argparse.Namespace) -> int:
    from consentry.crypto import Keyring, new_secret
    from consentry.oauth.client_auth import SECRET_KIND
    from consentry.store.clients import create_client, new_client_id
    from consentry.store.db import Database
    from consentry.store.users import user_by_email
    from consentry.web.apps import redirect_uri_problem

    for uri in args.redirect_uri:
        problem = redirect_uri_problem(uri)
        if problem:
            print(f"error: --redirect-uri {uri!r}: {problem}", file=sys.stderr)
            return 2
    db = Database(settings)
    keys = Keyring(settings.secret_key)
    secret = new_secret()
    client_id = new_client_id()
    try:
        async with db.write() as conn:
            owner = await user_by_email(conn, args.owner)
            if owner is None:
                print(f"error: no account with email {args.owner!r}", file=sys.stderr)
                return 1
            await create_client(
                conn,
                owner_id=int(owner["id"]),
                name=args.name,
                description=args.description or "",
                redirect_uris=list(dict.fromkeys(args.redirect_uri)),
                secret_hash=keys.hash(secret, SECRET_KIND),
                client_id=client_id,
                is_resource_server=args.resource_server,
                allow_implicit=args.allow_implicit,
            )
    finally:
        await db.dispose()
    if args.json:
        print(json.dumps({"client_id": client_id, "client_secret": secret}))
    else:
        print(f"client_id:     {client_id}")
        print(f"client_secret: {secret}")
        print("Keep the secret now: it is stored only as a hash and cannot be shown again.")
    return 0


def cmd_clients_create(args: argparse.Namespace) -> int:
    from consentry.store.migrate import upgrade

    settings = _settings(args)
    upgrade(settings)
    return asyncio.run(_create_client(settings, args))


async def _purge(settings: Settings, batch: int) -> int:
    from consentry.store.db import Database
    from consentry.store.tokens import purge_all

    db = Database(settings)
    try:
        return await purge_all(db, batch)
    finally:
        await db.dispose()


def cmd_purge(args: argparse.Namespace) -> int:
    settings = _settings(args)
    batch = args.batch if args.batch is not None else settings.purge_batch
    if batch < 1:
        print("error: --batch must be at least 1", file=sys.stderr)
        return 2
    total = asyncio.run(_purge(settings, batch))
    print(f"purged {total} expired rows")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from consentry.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="consentry", description="Self-hostable OAuth 2.0 Authorization Code server"
    )
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the provider (creates/migrates the database)")
    serve.add_argument("--host", help="address to bind (CONSENTRY_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (CONSENTRY_PORT, default 8000)")
    serve.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port (default 1)"
    )
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="provider + MyTemplateMaker + demo user, on SQLite")
    demo.add_argument("--port", type=int, default=8000, help="provider port (default 8000)")
    demo.add_argument("--app-port", type=int, default=8001, help="MyTemplateMaker port")
    demo.add_argument("--dir", help="folder for the demo database (default ./consentry-demo)")
    demo.set_defaults(func=cmd_demo)

    users = sub.add_parser("users", help="manage accounts").add_subparsers(
        dest="users_command", required=True
    )
    uc = users.add_parser("create", help="create an account")
    uc.add_argument("--email", required=True)
    uc.add_argument("--password", required=True)
    uc.add_argument("--name", default="")
    uc.add_argument("--max-domain", help="make it a GetResponse MAX account on this domain")
    uc.set_defaults(func=cmd_users_create)

    clients = sub.add_parser("clients", help="manage applications").add_subparsers(
        dest="clients_command", required=True
    )
    cc = clients.add_parser("create", help="register an application")
    cc.add_argument("--owner", required=True, help="email of the developer's account")
    cc.add_argument("--name", required=True)
    cc.add_argument("--description", default="")
    cc.add_argument("--redirect-uri", action="append", required=True, dest="redirect_uri")
    cc.add_argument("--resource-server", action="store_true", help="may introspect any token")
    cc.add_argument("--allow-implicit", action="store_true", help=argparse.SUPPRESS)
    cc.add_argument("--json", action="store_true", help="print {client_id, client_secret}")
    cc.set_defaults(func=cmd_clients_create)

    db = sub.add_parser("db", help="database").add_subparsers(dest="db_command", required=True)
    up = db.add_parser("upgrade", help="apply migrations")
    up.set_defaults(func=cmd_db_upgrade)

    purge = sub.add_parser("purge", help="delete expired codes, tokens and sessions")
    purge.add_argument(
        "--batch", type=int, default=None, help="rows per transaction (CONSENTRY_PURGE_BATCH)"
    )
    purge.set_defaults(func=cmd_purge)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
