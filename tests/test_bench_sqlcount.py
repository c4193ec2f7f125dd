"""``python -m bench.sqlcount`` counts the statements each operation sends, on both databases:
the counts docs/performance.md ("Database work per operation") states, so that a change that
adds a round trip — or a path the counter stops seeing — fails here.

PostgreSQL here is the machine's server (127.0.0.1:5432); without ``CI`` an unreachable
server skips the PostgreSQL case, with ``CI`` set it fails it (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.sqlcount import measure
from tests.conftest import drop_pg_database, fresh_pg_database

# (statements, of them writes) per request.
SQLITE = {
    "client_credentials": (2, 1),
    "authorization_code": (5, 4),
    "refresh_token": (5, 4),
    "introspection": (1, 0),
    "bearer_get": (2, 0),
    "revocation": (3, 2),
}
POSTGRESQL = {
    "client_credentials": (2, 1),
    "authorization_code": (2, 1),
    "refresh_token": (2, 1),
    "introspection": (1, 0),
    "bearer_get": (1, 0),
    "revocation": (3, 2),
}
# Round trips on PostgreSQL: the statements, plus BEGIN and COMMIT of the one transaction
# (revocation of a refresh token: grant then tokens, in one transaction).
POSTGRESQL_ROUND_TRIPS = {
    "client_credentials": 2,
    "authorization_code": 2,
    "refresh_token": 2,
    "introspection": 1,
    "bearer_get": 1,
    "revocation": 5,
}


def test_statements_per_operation_on_sqlite(tmp_path: Path) -> None:
    data = asyncio.run(measure(f"sqlite:///{tmp_path / 'count.sqlite3'}", 1))
    assert {op: (d["statements"], d["writes"]) for op, d in data.items()} == SQLITE


def test_statements_and_round_trips_per_operation_on_postgresql() -> None:
    url = fresh_pg_database()
    try:
        data = asyncio.run(measure(url, 1))
    finally:
        drop_pg_database(url)
    assert {op: (d["statements"], d["writes"]) for op, d in data.items()} == POSTGRESQL
    trips = {op: d["statements"] + 2 * d["transactions"] + d["pings"] for op, d in data.items()}
    assert trips == POSTGRESQL_ROUND_TRIPS
