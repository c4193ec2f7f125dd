"""Database work per operation, counted from the SQL itself: ``python -m bench.sqlcount``.

Runs consentry's ASGI app in process (httpx ASGITransport) on a fresh SQLite file or
PostgreSQL database, performs each benchmark operation a few times and records every
statement the database received during it:

* SQLite: sqlite3's trace callback on every connection (so transaction control — BEGIN,
  SAVEPOINT, COMMIT — is seen too, and statements the hot path runs straight on pysqlite);
* PostgreSQL: asyncpg's query logger on the hot path's own connections (``store/pghot.py``)
  and SQLAlchemy's ``before_cursor_execute`` for the other statements, its ``begin`` /
  ``commit`` / ``rollback`` events for transactions (asyncpg sends BEGIN and COMMIT as
  round trips of their own; reads and single-statement writes run in autocommit and send
  neither), and pool checkouts (a round trip each only if the engine has
  ``pool_pre_ping``; consentry's checkout check is local, see ``store/db.py``).

Round trips on PostgreSQL = statements + 2 x transactions (+ checkouts with pre-ping), in the
steady state: asyncpg prepares each statement once per pooled connection, and that first
PREPARE (one more round trip) is not counted.

Prints a Markdown table; numbers are per request (the median over the repetitions).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from bench.appdata import fresh_app, seed
from bench.appdata import new_code as make_code

OPS = (
    "client_credentials",
    "authorization_code",
    "refresh_token",
    "introspection",
    "bearer_get",
    "revocation",
)
LABELS = {
    "client_credentials": "client_credentials token",
    "authorization_code": "authorization_code exchange",
    "refresh_token": "refresh with rotation",
    "introspection": "introspection",
    "bearer_get": "bearer-protected GET /v3/from-fields",
    "revocation": "revocation (refresh token)",
}
# A write: the statement, or one of its CTEs (PostgreSQL's data-modifying WITH), changes rows.
WRITE = re.compile(r"\b(INSERT\s+INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM)\b", re.I)
CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA)\b", re.I)


class Recorder:
    def __init__(self) -> None:
        self.statements: list[str] = []
        self.control: list[str] = []
        self.transactions = 0
        self.checkouts = 0

    def sql(self, text: str) -> None:
        (self.control if CONTROL.match(text) else self.statements).append(text)

    def reset(self) -> None:
        self.statements, self.control = [], []
        self.transactions = self.checkouts = 0


async def measure(database_url: str, reps: int) -> dict[str, dict[str, float]]:
    app = fresh_app(database_url, log_level="warning")
    rt = app.state.rt
    db = rt.db
    rec = Recorder()
    pre_ping = bool(getattr(db.engine.sync_engine.pool, "_pre_ping", False))

    if db.is_sqlite:
        assert db._sync_engine is not None

        @event.listens_for(db._sync_engine, "connect")
        def _trace(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.set_trace_callback(rec.sql)

        @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
        def _legacy(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
            rec.sql(statement)  # the async (aiosqlite) path, off the hot path
    else:

        @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
        def _stmt(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
            rec.sql(statement)

        @event.listens_for(db.engine.sync_engine, "begin")
        def _begin(conn: Any) -> None:
            # an AUTOCOMMIT connection (the reads) sends no BEGIN
            if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                rec.transactions += 1

        @event.listens_for(db.engine.sync_engine.pool, "checkout")
        def _checkout(*a: Any) -> None:
            rec.checkouts += 1

        # The hot path's statements (raw asyncpg connections, store/pghot.py) pass no
        # SQLAlchemy event: asyncpg's query logger sees them. They run in autocommit on a
        # connection kept open, so no BEGIN/COMMIT and no pre-ping to count.
        assert db._hot is not None
        db._hot.add_query_logger(lambda record: rec.sql(record.query))

    seeded = await seed(rt)
    client_id, secret = seeded.client_id, seeded.secret

    async def new_code() -> str:
        return await make_code(rt, seeded)

    results: dict[str, dict[str, list[int]]] = {op: {} for op in OPS}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        auth = (client_id, secret)

        async def token(**form: str) -> dict[str, Any]:
            r = await http.post("/v3/token", auth=auth, data=form)
            assert r.status_code == 200, r.text
            return dict(r.json())

        for _ in range(reps):
            pair = await token(grant_type="authorization_code", code=await new_code())
            code = await new_code()
            second = await token(grant_type="authorization_code", code=await new_code())
            runs = _requests(http, auth, code, pair, second)
            for op in OPS:
                await asyncio.sleep(0.01)  # let the writer thread settle
                rec.reset()
                r = await runs[op]()
                assert r.status_code == 200, (op, r.text)
                # asyncpg calls its query loggers with loop.call_soon: let them run.
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                counts = results[op]
                stmts = rec.statements
                writes = sum(1 for s in stmts if WRITE.search(s))
                for key, value in (
                    ("statements", len(stmts)),
                    ("writes", writes),
                    ("control", len(rec.control)),
                    ("transactions", rec.transactions),
                    ("checkouts", rec.checkouts),
                    ("pings", rec.checkouts if pre_ping else 0),
                ):
                    counts.setdefault(key, []).append(value)
    await db.dispose()
    return {
        op: {k: statistics.median(v) for k, v in counts.items()} for op, counts in results.items()
    }


def _requests(
    http: httpx.AsyncClient,
    auth: tuple[str, str],
    code: str,
    pair: dict[str, Any],
    second: dict[str, Any],
) -> dict[str, Any]:
    return {
                "client_credentials": lambda: http.post(
            "/v3/token", auth=auth, data={"grant_type": "client_credentials"}),
        "authorization_code": lambda: http.post(
            "/v3/token", auth=auth,
            data={"grant_type": "authorization_code", "code": code}),
        "refresh_token": lambda: http.post(
            "/v3/token", auth=auth,
            data={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}),
        "introspection": lambda: http.post(
            "/v3/token/introspect", auth=auth, data={"token": second["access_token"]}),
        "bearer_get": lambda: http.get(
            "/v3/from-fields",
            headers={"Authorization": f"Bearer {second['access_token']}"}),
        "revocation": lambda: http.post(
            "/v3/token/revoke", auth=auth, data={"token": second["refresh_token"]}),
    }


def table(database: str, data: dict[str, dict[str, float]]) -> str:
    if database == "sqlite":
        head = (
            "| operation | SQL statements | of them writes | transaction control "
            "(BEGIN/SAVEPOINT/COMMIT, shared by a batch) |\n|---|---|---|---|\n"
        )
        rows = [
            f"| {LABELS[op]} | {d['statements']:g} | {d['writes']:g} | {d['control']:g} |"
            for op, d in data.items()
        ]
    else:
        head = (
            "| operation | SQL statements | of them writes | transactions (BEGIN+COMMIT) | "
            "pool checkouts | of them pre-pinged | round trips |\n"
            "|---|---|---|---|---|---|---|\n"
        )
        rows = [
            f"| {LABELS[op]} | {d['statements']:g} | {d['writes']:g} | {d['transactions']:g} | "
            f"{d['checkouts']:g} | {d['pings']:g} | "
            f"{d['statements'] + 2 * d['transactions'] + d['pings']:g} |"
            for op, d in data.items()
        ]
    return head + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sqlcount", description=__doc__)
    p.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    if args.database == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'count.sqlite3'}"
            data = asyncio.run(measure(url, args.reps))
    else:
        from bench.targets import _pg

        name = f"consentry_sqlcount_{secrets.token_hex(4)}"
        asyncio.run(_pg(f"CREATE DATABASE {name}"))
        try:
            data = asyncio.run(measure(f"postgresql://postgres@127.0.0.1/{name}", args.reps))
        finally:
            asyncio.run(_pg(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    print(table(args.database, data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
