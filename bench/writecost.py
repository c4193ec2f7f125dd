"""What a refresh's statements cost SQLite, one by one: ``python -m bench.writecost DB``.

DB is a consentry SQLite file holding refresh tokens — the one ``python -m bench --keep``
leaves in its work folder after the refresh scenario is the intended input. The file is
copied first (with its ``-wal``); only the copy is written. On the copy this runs what the
token endpoint runs for a refresh with rotation, straight on pysqlite with the hot path's own
compiled statements (``store/hot.py``) and the server's pragmas:

* the read of the client and the token (``client_and_refresh_token``'s statement) for
  random tokens, with no commit between reads and with another connection committing
  before each read (which drops the reader's page cache), then the same with a cache large
  enough for the whole file (what the read costs once every page is in memory);
* the write job of ``refresh_token._rotate`` on SQLite — the spend, the grant touch, the
  access and refresh token inserts — in batches of ``--batch`` jobs, each batch one
  ``BEGIN IMMEDIATE`` ... ``COMMIT``, as the group-commit writer runs them.

It prints the CPU time of this thread (``time.thread_time``) per statement and the WAL
frames (pages) one batch writes. No server, no HTTP: these are the database's share of a
refresh, to compare with the server's CPU per request from ``python -m bench``.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy.dialects import sqlite as sqlite_dialect

from consentry.store import hot

PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA foreign_keys=ON", "PRAGMA synchronous=FULL")
FRAME = 24 + 4096  # a WAL frame: header + one page (the default page size)


def _compiled(prepared: hot.Prepared) -> tuple[str, tuple[str, ...]]:
    c = prepared.stmt.compile(dialect=sqlite_dialect.dialect())
    return c.string, tuple(c.positiontup or ())


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn


def _reads(path: Path, n: int) -> list[tuple[str, float]]:
    reader, other = _connect(path), _connect(path)
    sql, order = _compiled(hot._CLIENT_AND_REFRESH)
    rows = reader.execute(
        "SELECT r.token_hash, c.client_id FROM refresh_tokens r"
        " JOIN clients c ON c.id = r.client_pk ORDER BY random() LIMIT ?",
        (n,),
    ).fetchall()
    if not rows:
        raise SystemExit("no refresh tokens in this database")

    def one(token_hash: str, client_id: str) -> float:
        values = {"p_hash": token_hash, "p_client_id": client_id}
        started = time.thread_time()
        reader.execute("BEGIN")
        got = reader.execute(sql, [values[k] for k in order]).fetchall()
        reader.execute("COMMIT")
        spent = time.thread_time() - started
        assert got and got[0][-1] == token_hash, "the read did not find the token"
        return spent

    def commit_elsewhere() -> None:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE grants SET last_used_at = last_used_at"
                      " WHERE id = (SELECT min(id) FROM grants)")
        other.execute("COMMIT")

    out = []
    for label, commit in (("no commit between reads", False),
                          ("a commit before each read", True)):
        total = 0.0
        for token_hash, client_id in random.sample(rows, len(rows)):
            if commit:
                commit_elsewhere()
            total += one(token_hash, client_id)
        out.append((f"read, {label}", total / len(rows)))
    reader.execute(f"PRAGMA cache_size=-{path.stat().st_size // 1024 * 2 + 65536}")
    for token_hash, client_id in rows:  # warm every page the reads need
        one(token_hash, client_id)
    total = sum(one(h, c) for h, c in rows)
    out.append(("read, every page already cached", total / len(rows)))
    reader.close()
    other.close()
    return out


def _writes(
    path: Path, n: int, batch: int, order: str
) -> tuple[list[tuple[str, float]], float]:
    conn = _connect(path)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    now = int(time.time())
    tokens = conn.execute(
        "SELECT id, token_hash, client_pk, user_id, grant_id, scope FROM refresh_tokens"
        " WHERE spent_at IS NULL AND expires_at > ? ORDER BY "
        + ("random()" if order == "random" else "id")
        + " LIMIT ?",
        (now, n - n % batch),
    ).fetchall()
    if len(tokens) < batch:
        raise SystemExit("too few unspent refresh tokens in this database")
    spend = "spend (UPDATE refresh_tokens ... RETURNING)"
    touch = "grant touch (UPDATE grants ... RETURNING)"
    access, refresh = "access token INSERT", "refresh token INSERT"
    statements = {
        spend: _compiled(hot._SPEND_REFRESH),
        touch: _compiled(hot._TOUCH_GRANT),
        access: _compiled(hot._INSERT_ACCESS),
        refresh: _compiled(hot._INSERT_REFRESH),
    }
    cost = dict.fromkeys([*statements, "BEGIN IMMEDIATE", "COMMIT"], 0.0)

    def run(name: str, values: dict[str, Any]) -> list[Any]:
        sql, order = statements[name]
        started = time.thread_time()
        got = conn.execute(sql, [values[k] for k in order]).fetchall()
        cost[name] += time.thread_time() - started
        return got

    jobs = 0
    for i in range(0, len(tokens) - batch + 1, batch):
        started = time.thread_time()
        conn.execute("BEGIN IMMEDIATE")
        cost["BEGIN IMMEDIATE"] += time.thread_time() - started
        for token_id, token_hash, client_pk, user_id, grant_id, scope in tokens[i : i + batch]:
            spent = run(spend, {
                "p_spent": token_id, "p_hash": token_hash, "p_client": client_pk, "p_now": now,
                "p_blob": os.urandom(150), "p_successor": secrets.token_hex(32)})
            assert spent, "the spend found no row"
            run(touch, {"p_id": grant_id, "p_now": now})
            for name in (access, refresh):
                run(name, {
                    "p_token_hash": secrets.token_hex(32), "p_client_pk": client_pk,
                    "p_user_id": user_id, "p_grant_id": grant_id, "p_scope": scope,
                    "p_expires_at": now + 3600})
            jobs += 1
        started = time.thread_time()
        conn.execute("COMMIT")
        cost["COMMIT"] += time.thread_time() - started
    frames = Path(str(path) + "-wal").stat().st_size / FRAME / (jobs / batch)
    conn.close()
    return [(name, total / jobs) for name, total in cost.items()], frames


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.writecost", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("database", type=Path, help="a consentry SQLite file (copied; never written)")
    p.add_argument("--reads", type=int, default=3000, help="random tokens read (default 3000)")
    p.add_argument("--jobs", type=int, default=3000, help="refresh write jobs (default 3000)")
    p.add_argument("--batch", type=int, default=12, help="jobs per COMMIT (default 12)")
    p.add_argument(
        "--order",
        choices=("random", "issued"),
        default="random",
        help="which tokens the jobs spend: random ones (as clients refresh), or in the order"
        " they were issued (as the benchmark's pool spends them: neighbours share pages)",
    )
    args = p.parse_args(argv)
    if not args.database.is_file():
        raise SystemExit(f"no such file: {args.database}")
    with tempfile.TemporaryDirectory(prefix="consentry-writecost-") as tmp:
        copy = Path(tmp) / "copy.db"
        shutil.copyfile(args.database, copy)
        wal = Path(str(args.database) + "-wal")
        if wal.exists():
            shutil.copyfile(wal, Path(str(copy) + "-wal"))
        size = copy.stat().st_size
        print(f"{args.database} ({size / 1e6:.1f} MB), copied to {copy}")
        for label, seconds in _reads(copy, args.reads):
            print(f"  {label:45s} {seconds * 1e6:7.1f} µs CPU")
        costs, frames = _writes(copy, args.jobs, args.batch, args.order)
        print(f"  write job, {args.batch} per COMMIT, tokens in {args.order} order"
              " (µs CPU per job):")
        for label, seconds in costs:
            print(f"    {label:43s} {seconds * 1e6:7.1f}")
        print(f"    {'all':43s} {sum(s for _, s in costs) * 1e6:7.1f}")
        print(f"  WAL frames (pages) written per COMMIT: {frames:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
