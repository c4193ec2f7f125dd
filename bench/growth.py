"""``python -m bench.growth``: cost with growth — the same requests against ever bigger tables.

For each size N: a fresh database with the main harness's set-up (a developer, a user, a
confidential client and a real access token, all through ``consentry`` and its real
endpoints), then N live access tokens, N live refresh tokens and N grants (one grant per
refresh token, with its access token) bulk-seeded with ``INSERT ... SELECT`` of generated
values, plus 20 % more of each already expired; then ``consentry serve`` pinned as in the main
harness, the wrk scenarios of ``bench.run`` (client_credentials, introspection, bearer GET and
optionally the code exchange), and finally ``consentry purge`` while wrk keeps the token
endpoint busy. See docs/performance.md, "Cost with growth".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import procs, report
from bench.report import Cell
from bench.run import Bench
from bench.run import parse_args as bench_args
from bench.targets import Consentry
from bench.wrk import WrkResult, ensure_wrk, run_wrk
from consentry.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS_START = "<!-- growth:latest:start -->"
DOCS_END = "<!-- growth:latest:end -->"
FULL_SIZES = [10_000, 1_000_000, 5_000_000]
QUICK_SIZES = [1_000, 20_000]
SCENARIOS = {
    "client_credentials": "client_credentials token",
    "authorization_code": "authorization_code exchange",
    "introspection": "introspection",
    "bearer_get": "bearer-protected GET",
}
EXPIRED_FRACTION = 0.2  # expired rows seeded on top of the live ones, for the purge
BATCH = 1_000_000  # grants per seeding transaction (each with its access and refresh token)
DAY = 86_400


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- seeding -----------------------------------------------------------------------------------


class Seeder:
    """Bulk ``INSERT ... SELECT`` of generated rows on a connection of its own.

    SQLite: the settings that make bulk loading fast are set on this connection only
    (``journal_mode=OFF``, ``synchronous=OFF``, a 4 GiB page cache); the journal mode, the
    one setting stored in the file, is put back to WAL and the file is fsynced before the
    server starts again (otherwise the server's first checkpoint would pay for flushing the
    whole seeded file). PostgreSQL: ``synchronous_commit=off`` for this session, then a
    CHECKPOINT. No index is added or dropped.
    """

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite")
        self.url = url
        self._con: sqlite3.Connection | None = None
        self._pg: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        if self.sqlite:
            self.path = Path(url.split(":///", 1)[1])
            self._con = sqlite3.connect(self.path, isolation_level=None)
            mode = self.scalar("PRAGMA journal_mode=OFF")
            if mode != "off":
                raise RuntimeError(f"could not leave WAL for seeding (journal_mode={mode})")
            self.exec("PRAGMA synchronous=OFF")
            # the whole database fits: each page is read once and written once per batch
            self.exec("PRAGMA cache_size=-4194304")
            self.exec("PRAGMA temp_store=MEMORY")
        else:
            import asyncpg

            self._loop = asyncio.new_event_loop()
            self._pg = self._loop.run_until_complete(asyncpg.connect(url))
            self.exec("SET synchronous_commit = off")

    # statements -------------------------------------------------------------------------------
    def exec(self, sql: str) -> None:
        if self._con is not None:
            self._con.execute(sql)
        else:
            assert self._loop is not None
            self._loop.run_until_complete(self._pg.execute(sql))

    def scalar(self, sql: str) -> Any:
        if self._con is not None:
            row = self._con.execute(sql).fetchone()
            return row[0] if row else None
        assert self._loop is not None
        return self._loop.run_until_complete(self._pg.fetchval(sql))

    def close(self) -> None:
        if self._con is not None:
            mode = self.scalar("PRAGMA journal_mode=WAL")  # the server's setting, again
            self._con.close()
            self._con = None
            if mode != "wal":
                raise RuntimeError(f"could not restore WAL (journal_mode={mode})")
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if self._pg is not None:
            assert self._loop is not None
            with contextlib.suppress(Exception):  # needs superuser; the harness connects as one
                self._loop.run_until_complete(self._pg.execute("CHECKPOINT"))
            self._loop.run_until_complete(self._pg.close())
            self._loop.close()
            self._pg = None

    # generated values -------------------------------------------------------------------------
    def series(self, n: int) -> str:
        """A FROM-able relation with column ``i`` = 0 .. n-1."""
        if self.sqlite:
            return (
                f"(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s "
                f"WHERE i + 1 < {n}) SELECT i FROM s)"
            )
        return f"generate_series(0, {n - 1}) AS s(i)"

    def rnd(self, n: int) -> str:
        """A uniformly random integer in [0, n)."""
        if self.sqlite:
            return f"((random() & 9223372036854775807) % {n})"
        return f"floor(random() * {n})::bigint"

    def hex(self, nbytes: int) -> str:
        """2 × nbytes random hex characters (a stored HMAC-SHA256 hash when nbytes = 32)."""
        if self.sqlite:
            return f"lower(hex(randomblob({nbytes})))"
        uuid = "replace(gen_random_uuid()::text, '-', '')"  # 32 hex characters (122 random bits)
        if nbytes % 16:
            raise ValueError(nbytes)
        return " || ".join([uuid] * (nbytes // 16))

    def begin(self) -> None:
        self.exec("BEGIN")

    def commit(self) -> None:
        self.exec("COMMIT")


@dataclass
class Seeded:
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # of this process: the seeding itself on SQLite, not on PostgreSQL
    users: int = 0
    clients: int = 0
    grants: int = 0
    now: int = 0


def seed(url: str, size: int) -> Seeded:
    """N live grants, each with a live access token and a live refresh token, plus
    ``EXPIRED_FRACTION`` × N older grants whose two tokens have expired."""
    started = time.monotonic()
    cpu0 = time.process_time()  # the SQLite work runs in this process
    now = int(time.time())
    s = Seeder(url)
    try:
        users0 = int(s.scalar("SELECT count(*) FROM users"))
        clients0 = int(s.scalar("SELECT count(*) FROM clients"))
        if (
            s.scalar("SELECT max(id) FROM users") != users0
            or s.scalar("SELECT max(id) FROM clients") != clients0
        ):
            raise RuntimeError("expected users and clients numbered 1..n on a fresh database")
        # other accounts and applications, so that the tokens spread over many (user, client)
        n_users = max(10, size // 20)
        n_clients = max(10, min(1000, size // 1000))
        s.begin()
        s.exec(
            "INSERT INTO users (account_id, email, password_hash, name, created_at) "
            f"SELECT {s.hex(16)}, 'seed-' || i || '@example.com', '!', 'Seed', {now} "
            f"FROM {s.series(n_users)}"
        )
        s.exec(
            "INSERT INTO clients (client_id, secret_hash, owner_id, name, redirect_uris, "
            "created_at) "
            f"SELECT {s.hex(16)}, {s.hex(32)}, 1, 'Seed ' || i, "
            f"'[\"https://client.example/cb\"]', {now} FROM {s.series(n_clients)}"
        )
        s.commit()
        users = users0 + n_users
        clients = clients0 + n_clients
        expired = round(size * EXPIRED_FRACTION)
        # older grants first (lower ids), as they would be in a real database
        for kind, total in (("expired", expired), ("live", size)):
            done = 0
            while done < total:
                n = min(BATCH, total - done)
                _seed_batch(s, kind, n, now, users, clients)
                done += n
            log(
                f"  seeded {total:,} {kind} grants with their tokens "
                f"({time.monotonic() - started:.0f} s so far)"
            )
        if not s.sqlite:  # what autovacuum would soon do; consentry never ANALYZEs SQLite
            s.exec("ANALYZE grants, access_tokens, refresh_tokens")
    finally:
        s.close()
    return Seeded(
        seconds=time.monotonic() - started,
        cpu_seconds=time.process_time() - cpu0,
        users=n_users,
        clients=n_clients,
        grants=size + expired,
        now=now,
    )


def _seed_batch(s: Seeder, kind: str, n: int, now: int, users: int, clients: int) -> None:
    if kind == "live":
        created = f"{now} - {s.rnd(29 * DAY)}"
        at_exp = f"{now} + 1800 + {s.rnd(1800)}"  # access tokens live an hour
        rt_exp = f"{now} + 3600 + {s.rnd(29 * DAY)}"  # refresh tokens 30 days
    else:
        created = f"{now} - {31 * DAY} - {s.rnd(30 * DAY)}"
        at_exp = f"{now} - 1 - {s.rnd(30 * DAY)}"
        rt_exp = f"{now} - 1 - {s.rnd(DAY)}"
    s.begin()
    lo = int(s.scalar("SELECT coalesce(max(id), 0) FROM grants"))
    s.exec(
        "INSERT INTO grants (user_id, client_pk, scope, created_at) "
        f"SELECT 1 + {s.rnd(users)}, 1 + {s.rnd(clients)}, NULL, {created} FROM {s.series(n)}"
    )
    rows = f"FROM grants WHERE id > {lo} AND id <= {lo + n}"
    s.exec(
        "INSERT INTO access_tokens (token_hash, client_pk, user_id, grant_id, scope, expires_at) "
        f"SELECT {s.hex(32)}, client_pk, user_id, id, NULL, {at_exp} {rows}"
    )
    s.exec(
        "INSERT INTO refresh_tokens (token_hash, grant_id, client_pk, user_id, scope, expires_at) "
        f"SELECT {s.hex(32)}, id, client_pk, user_id, NULL, {rt_exp} {rows}"
    )
    s.commit()


# --- looking at the database -------------------------------------------------------------------


def counts(url: str, now: int) -> dict[str, int]:
    """Rows of the token tables, and how many are live (``expires_at`` after ``now``)."""
    out: dict[str, int] = {}
    queries = {
        "access_tokens": "SELECT count(*) FROM access_tokens",
        "refresh_tokens": "SELECT count(*) FROM refresh_tokens",
        "grants": "SELECT count(*) FROM grants",
        "access_tokens_live": f"SELECT count(*) FROM access_tokens WHERE expires_at > {now}",
        "refresh_tokens_live": f"SELECT count(*) FROM refresh_tokens WHERE expires_at > {now}",
    }
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.split(":///", 1)[1], isolation_level=None)
        try:
            con.execute("BEGIN")  # one snapshot for every count
            for k, q in queries.items():
                out[k] = int(con.execute(q).fetchone()[0])
            con.execute("COMMIT")
        finally:
            con.close()
        return out

    async def pg() -> None:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                for k, q in queries.items():
                    out[k] = int(await conn.fetchval(q))
        finally:
            await conn.close()

    asyncio.run(pg())
    return out


def database_bytes(url: str) -> int:
    if url.startswith("sqlite"):
        path = Path(url.split(":///", 1)[1])
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())

    async def pg() -> int:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        finally:
            await conn.close()

    return asyncio.run(pg())


def hash_index_depth(url: str, table: str) -> int | None:
    """Levels of the B-tree of ``table``'s unique index on ``token_hash`` (SQLite only):
    pages from the root to a leaf, read from the file along the right-most pointers."""
    if not url.startswith("sqlite"):
        return None
    path = Path(url.split(":///", 1)[1])
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file holds every page
        root = None
        for _seq, name, unique, *_ in con.execute(f"PRAGMA index_list({table})"):
            cols = [r[2] for r in con.execute(f"PRAGMA index_info('{name}')")]
            if unique and cols == ["token_hash"]:
                root = con.execute(
                    "SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)
                ).fetchone()[0]
        page_size = int(con.execute("PRAGMA page_size").fetchone()[0])
    finally:
        con.close()
    if not root:
        return None
    depth, page = 1, int(root)
    with open(path, "rb") as f:
        while depth < 20:
            f.seek((page - 1) * page_size)
            data = f.read(page_size)
            off = 100 if page == 1 else 0
            kind = data[off]
            if kind in (10, 13):  # leaf page (index, table)
                return depth
            if kind not in (2, 5):  # not an interior page either: give up
                return None
            page = int.from_bytes(data[off + 8 : off + 12], "big")  # right-most child
            depth += 1
    return None


# --- one size ------------------------------------------------------------------------------------


@dataclass
class SizeResult:
    size: int
    seeded: Seeded | None = None
    rows: dict[str, int] = field(default_factory=dict)
    db_bytes: int = 0
    depth: dict[str, int | None] = field(default_factory=dict)
    cells: dict[str, Cell] = field(default_factory=dict)
    purge: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        if self.error or not self.cells or not self.purge.get("ok"):
            return False
        return all(c.result is not None and not c.result.errors for c in self.cells.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "seeding_seconds": round(self.seeded.seconds, 1) if self.seeded else None,
            "seeding_cpu_seconds": round(self.seeded.cpu_seconds, 1) if self.seeded else None,
            "seeded": None
            if self.seeded is None
            else {
                "users": self.seeded.users,
                "clients": self.seeded.clients,
                "grants": self.seeded.grants,
            },
            "rows": self.rows,
            "database_bytes": self.db_bytes,
            "token_hash_index_depth": self.depth,
            "scenarios": {k: c.as_json(0.0) for k, c in self.cells.items()},
            "purge": self.purge,
            "error": self.error,
            "ok": self.ok,
        }


class Growth:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        # the main harness's options, so that its Bench runs the scenarios exactly as it does
        argv = [
            "--duration",
            str(args.duration),
            "--warmup",
            str(args.warmup),
            "--connections",
            str(args.connections),
            "--database",
            args.database,
            "--skip-node",
            "--scenarios",
            ",".join(args.scenarios),
            "--output",
            str(args.output),
        ]
        if args.no_pin:
            argv.append("--no-pin")
        self.bench_args = bench_args(argv)
        self.pinning = procs.Pinning(not args.no_pin)

    def run_size(self, size: int) -> SizeResult:
        res = SizeResult(size)
        work = self.work / f"size-{size}"
        work.mkdir()
        t = Consentry(work, self.pinning, self.args.database)
        try:
            log(f"N = {size:,}: fresh database, accounts, client, browser session, token")
            t.start()
            t.setup()
            t.stop()
            url = t.env["CONSENTRY_DATABASE_URL"]
            # measurements without a background purge in the middle (it would start after
            # 30-90 minutes by default); the purge is run on purpose at the end
            t.env["CONSENTRY_PURGE_INTERVAL"] = "0"
            res.seeded = seed(url, size)
            log(f"  seeding took {res.seeded.seconds:.1f} s")
            res.rows = counts(url, int(time.time()))
            res.depth = {
                tbl: hash_index_depth(url, tbl) for tbl in ("access_tokens", "refresh_tokens")
            }
            res.db_bytes = database_bytes(url)
            t.start()
            log(
                f"  rows: {res.rows}; database {res.db_bytes / 2**20:,.0f} MiB; "
                f"token_hash index depth {res.depth}"
            )
            bench = Bench(self.bench_args, work)
            bench._scenarios(t)
            res.cells = {k: bench.cell(k, t.name) for k in self.args.scenarios}
            _check_alive(t)
            res.purge = self.purge(t, url)
            _check_alive(t)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            res.error = f"{type(exc).__name__}: {exc}"
            log(f"  N = {size:,} failed: {res.error}")
            traceback.print_exc()
            if t.proc is not None and t.proc.poll() is not None:
                log(f"  the server exited with {t.proc.returncode}")
            if t.log is not None and t.log.exists():
                log(f"  end of the server's log:\n{t.log.read_text(errors='replace')[-3000:]}")
        finally:
            t.stop()
            t.drop_database()
            if not self.args.keep:
                shutil.rmtree(work, ignore_errors=True)
        return res

    def purge(self, t: Consentry, url: str) -> dict[str, Any]:
        """``consentry purge`` with its default batch (the server's periodic purge uses the
        same) while wrk keeps client_credentials requests coming, for at most
        ``--purge-limit`` seconds; if it is not done by then, it is stopped (its open batch
        rolls back) and ``consentry purge --batch <--purge-rest-batch>`` finishes the job
        without load. Both run pinned to the server's CPU, as the in-process purge would."""
        now = int(time.time())  # "live" = expires after this, for every count below
        before = counts(url, now)
        result: dict[str, Any] = {
            "now": now,
            "before": before,
            "database_bytes_before": database_bytes(url),
        }
        log(
            f"  consentry purge (batch {self.args.purge_batch}) with client_credentials load, "
            f"at most {self.args.purge_limit:g} s"
        )
        first = self._purge_cli(t, self.args.purge_batch, self.args.purge_limit, load=True)
        mid = counts(url, now)
        first["removed"] = _removed(before, mid)
        result["first"] = first
        log(f"  {_phase_log(first)}")
        if not first["completed"] and first["exit"] is None:
            log(f"  finishing: consentry purge --batch {self.args.purge_rest_batch}, no load")
            rest = self._purge_cli(t, self.args.purge_rest_batch, 3600.0, load=False)
            after = counts(url, now)
            rest["removed"] = _removed(mid, after)
            result["rest"] = rest
            log(f"  {_phase_log(rest)}")
        else:
            after = counts(url, now)
            result["rest"] = None
        active = _introspect(t)
        result.update(
            after=after,
            removed=_removed(before, after),
            database_bytes_after=database_bytes(url),
            benchmark_token_still_active=active,
        )
        live_kept = (
            after["access_tokens_live"] >= before["access_tokens_live"]
            and after["refresh_tokens_live"] >= before["refresh_tokens_live"]
        )
        no_expired = (
            after["access_tokens"] == after["access_tokens_live"]
            and after["refresh_tokens"] == after["refresh_tokens_live"]
        )
        last = result["rest"] or first
        result["ok"] = bool(last["completed"] and live_kept and no_expired and active)
        log(
            f"  after the purge: {after}; live rows kept: {live_kept}; expired left: "
            f"{not no_expired}; benchmark token active: {active}"
        )
        return result

    def _purge_cli(self, t: Consentry, batch: int, limit: float, *, load: bool) -> dict[str, Any]:
        """One ``consentry purge --batch N`` run, stopped after ``limit`` seconds."""
        argv = self.pinning.server(
            [procs.python(), "-m", "consentry.cli", "purge", "--batch", str(batch)]
        )
        out = t.work / f"purge-{batch}.out"
        started = time.monotonic()
        deadline = started + limit
        with open(out, "w") as f:
            proc = procs.spawn(argv, env=t.env, cwd=ROOT, stdout=f, stderr=f)

            def over() -> bool:
                return proc.poll() is not None or time.monotonic() > deadline

            wrk = self._load_until(t, over) if load else None
            while not over():
                time.sleep(0.2)
            seconds = time.monotonic() - started
            completed = proc.poll() is not None
            procs.stop(proc)  # when the limit passed: SIGTERM, the open batch rolls back
        text = out.read_text(errors="replace")
        exit_code = proc.returncode if completed else None
        phase: dict[str, Any] = {
            "batch": batch,
            "seconds": round(seconds, 2),
            "completed": completed and exit_code == 0,
            "exit": exit_code,
            "load": None,
        }
        if completed and exit_code != 0:
            log(f"  consentry purge failed ({exit_code}): {text[-2000:]}")
        if wrk is not None:
            phase["load"] = {
                "req_per_s": round(wrk.rate, 1),
                "p50_ms": round(wrk.p50_ms, 2),
                "p99_ms": round(wrk.p99_ms, 2),
                "max_ms": round(wrk.max_ms, 2),
                "errors": wrk.errors,
                "requests": wrk.requests,
            }
        return phase

    def _load_until(self, t: Consentry, until: Callable[[], bool]) -> WrkResult | None:
        env = Bench(self.bench_args, t.work).static_env(t, "client_credentials")
        try:
            return run_wrk(
                t.url + "/",
                "static.lua",
                env,
                duration=3600,
                connections=self.args.connections,
                threads=1 if self.pinning.enabled else 2,
                pinning=self.pinning,
                until=until,
                timeout_s=self.bench_args.timeout,
            )
        except Exception as exc:  # noqa: BLE001 - the purge result matters more
            log(f"  load during the purge failed: {exc}")
            return None


def _removed(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Expired rows that went between two ``counts`` (taken with the same ``now``)."""
    return {
        "access_tokens": (before["access_tokens"] - before["access_tokens_live"])
        - (after["access_tokens"] - after["access_tokens_live"]),
        "refresh_tokens": (before["refresh_tokens"] - before["refresh_tokens_live"])
        - (after["refresh_tokens"] - after["refresh_tokens_live"]),
        "grants": before["grants"] - after["grants"],
    }


def _phase_log(p: dict[str, Any]) -> str:
    r = p["removed"]
    text = (
        f"purge --batch {p['batch']}: {'done' if p['completed'] else 'stopped'} after "
        f"{p['seconds']:.1f} s, removed {r['access_tokens']:,} access tokens, "
        f"{r['refresh_tokens']:,} refresh tokens, {r['grants']:,} grants"
    )
    if p["load"]:
        x = p["load"]
        text += (
            f"; token endpoint meanwhile {x['req_per_s']:,.0f} req/s, p99 {x['p99_ms']:.1f} ms, "
            f"max {x['max_ms']:.1f} ms, errors {x['errors']}"
        )
    return text


def _check_alive(t: Consentry) -> None:
    if t.proc is None or t.proc.poll() is not None:
        code = None if t.proc is None else t.proc.returncode
        raise RuntimeError(f"the server is not running any more (exit status {code})")


def _introspect(t: Consentry) -> bool:
    """Whether the harness's own (live) access token is still active after the purge."""
    r = httpx.post(
        t.url + t.introspect_path,
        headers={"Authorization": t.auth},
        data={"token": t.access_token},
        timeout=30,
    )
    return r.status_code == 200 and r.json().get("active") is True


# --- output --------------------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n >= 2**20 else f"{n / 2**10:,.0f} KiB"


def render(results: list[SizeResult], settings: dict[str, Any], machine: dict[str, Any]) -> str:
    out = [
        f"consentry cost with growth — {machine['date']}"
        + (" (quick)" if settings["quick"] else ""),
        "",
        "| live tokens (N) | access_tokens rows | refresh_tokens rows | grants | database "
        "| token_hash index depth | seeding s (CPU s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.seeded is None or not r.rows:
            out.append(f"| {r.size:,} | – | – | – | – | – | – |")
            continue
        d, rows = r.depth, r.rows
        depth = "–"
        if d.get("access_tokens") is not None:
            depth = f"{d.get('access_tokens')} / {d.get('refresh_tokens')}"
        out.append(
            f"| {r.size:,} | {rows['access_tokens']:,} ({rows['access_tokens_live']:,} live) "
            f"| {rows['refresh_tokens']:,} ({rows['refresh_tokens_live']:,} live) "
            f"| {rows['grants']:,} | {_mib(r.db_bytes)} | {depth} "
            f"| {r.seeded.seconds:.0f} ({r.seeded.cpu_seconds:.0f}) |"
        )
    out += [
        "",
        "| live tokens (N) | scenario | req/s | p50 ms | p99 ms | errors | CPU ms/req |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.error and not r.cells:
            err = " ".join(r.error.split()).replace("|", "/")
            out.append(f"| {r.size:,} | failed: {err} | | | | | |")
            continue
        for key, cell in r.cells.items():
            label = SCENARIOS[key]
            if cell.result is None:
                na = " ".join((cell.na or "not run").split()).replace("|", "/")
                out.append(f"| {r.size:,} | {label} | n/a ({na}) | | | | |")
                continue
            x = cell.result
            cpu = f"{x.cpu_ms_per_req:.3f}" if x.cpu_ms_per_req is not None else "?"
            out.append(
                f"| {r.size:,} | {label} | {x.rate:,.0f} | {x.p50_ms:.2f} | {x.p99_ms:.2f} "
                f"| {x.errors} | {cpu} |"
            )
    out += [
        "",
        "| live tokens (N) | expired rows removed (access / refresh / grants) "
        "| purge, default batch, under load: s | rows/s | token endpoint meanwhile: req/s, "
        "p99 ms, max ms, errors | rest of the purge, big batch, no load: s "
        "| rows after (access / refresh / grants) | live kept, none expired | database after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        p = r.purge
        if not p:
            out.append(f"| {r.size:,} | – | – | – | – | – | – | – | – |")
            continue
        rm, a, first, rest = p["removed"], p["after"], p["first"], p["rest"]
        n_first = sum(first["removed"].values())
        state = "" if first["completed"] else " (stopped)"
        load = first["load"]
        during = (
            f"{load['req_per_s']:,.0f}, {load['p99_ms']:.1f}, {load['max_ms']:.1f}, "
            f"{load['errors']}"
            if load
            else "–"
        )
        rest_s = (
            f"{rest['seconds']:.1f} (batch {rest['batch']:,}, {sum(rest['removed'].values()):,} "
            "rows)"
            if rest
            else "not needed"
        )
        out.append(
            f"| {r.size:,} | {rm['access_tokens']:,} / {rm['refresh_tokens']:,} / "
            f"{rm['grants']:,} | {first['seconds']:.1f}{state} (batch {first['batch']:,}) "
            f"| {n_first / first['seconds'] if first['seconds'] else 0:,.0f} | {during} "
            f"| {rest_s} | {a['access_tokens']:,} / {a['refresh_tokens']:,} / {a['grants']:,} "
            f"| {'yes' if p['ok'] else 'NO'} | {_mib(p['database_bytes_after'])} |"
        )
    out += [
        "",
        "N live access tokens + N live refresh tokens + N grants, plus 20 % more of each "
        'already expired, seeded in bulk; rows counted after seeding ("live": expires_at in '
        "the future). req/s counts successful responses; errors = non-2xx + wrong body + "
        "socket errors; CPU ms/req = the server process's CPU time per successful request. "
        "The purge is `consentry purge` pinned to the server's CPU: first with the default "
        "batch while wrk sends client_credentials requests (stopped after "
        f"{settings['purge_limit']:g} s if not done; its open batch rolls back), then, if "
        'needed, with a big batch and no load; "live kept, none expired": no live row went, '
        "no expired row is left, and the harness's access token still introspects as active. "
        "Database size includes the WAL file.",
        "",
        f"- machine: {machine['nproc']} × {machine['cpu']}, Linux {machine['kernel']}, "
        f"Python {machine['python']}, {machine['wrk']}",
        f"- commit: {machine['commit'] or '?'}; database: {settings['database']}; "
        f"{settings['connections']} connections, {settings['duration']:g} s per scenario "
        f"(+ {settings['warmup']:g} s warm-up); {settings['pinning']}",
        f"- load average before/after: {settings['load_before']} / {settings['load_after']}",
        f"- wall time of the whole run: {settings['wall_seconds']} s",
    ]
    notes = [
        f"- N = {r.size:,}, {SCENARIOS[k]}: {n}"
        for r in results
        for k, c in r.cells.items()
        for n in c.notes
    ]
    if notes:
        out += ["", "Notes:", *notes]
    return "\n".join(out) + "\n"


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.growth",
        description="Token endpoint, introspection and bearer GET with N live tokens in the "
        "database (seeded in bulk), then the purge.",
    )
    p.add_argument("--sizes", help="comma-separated N (default 10000,1000000,5000000)")
    p.add_argument("--duration", type=float, help="seconds per scenario (default 10, quick 1)")
    p.add_argument("--warmup", type=float, help="warm-up seconds (default 2, quick 0)")
    p.add_argument("--quick", action="store_true", help="sizes 1000,20000, short runs (smoke)")
    p.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument(
        "--scenarios",
        help="comma-separated subset of: "
        + ", ".join(SCENARIOS)
        + " (default all; quick: all but authorization_code)",
    )
    p.add_argument(
        "--purge-batch",
        type=int,
        default=Settings.purge_batch,
        help=f"batch of the purge run under load (default {Settings.purge_batch}, the "
        "server's default, CONSENTRY_PURGE_BATCH)",
    )
    p.add_argument(
        "--purge-limit",
        type=float,
        help="seconds before that purge is stopped (default 120, quick 60)",
    )
    p.add_argument(
        "--purge-rest-batch",
        type=int,
        default=100_000,
        help="batch of the purge that finishes, without load, what the first left (default 100000)",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    p.add_argument("--output", default=str(ROOT / "bench" / "results"))
    p.add_argument("--update-docs", action="store_true", help="rewrite the docs table")
    p.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = p.parse_args(argv)
    if args.sizes:
        args.sizes = [int(x.replace("_", "")) for x in args.sizes.split(",") if x.strip()]
    else:
        args.sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.duration is None:
        args.duration = 1.0 if args.quick else 10.0
    if args.warmup is None:
        args.warmup = 0.0 if args.quick else 2.0
    if args.purge_limit is None:
        args.purge_limit = 60.0 if args.quick else 120.0
    if args.scenarios:
        args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    elif args.quick:
        args.scenarios = ["client_credentials", "introspection", "bearer_get"]
    else:
        args.scenarios = list(SCENARIOS)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    # in the order the main harness runs them
    args.scenarios = [s for s in SCENARIOS if s in args.scenarios]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return procs.run_main("consentry-growth-", args.keep, lambda work: _main(args, work))


def _main(args: argparse.Namespace, work: Path) -> int:
    ensure_wrk()
    g = Growth(args, work)
    started = time.monotonic()
    settings: dict[str, Any] = {
        "quick": args.quick,
        "sizes": args.sizes,
        "duration": args.duration,
        "warmup": args.warmup,
        "connections": args.connections,
        "database": args.database,
        "scenarios": args.scenarios,
        "pinning": g.pinning.describe(),
        "purge_batch": args.purge_batch,
        "purge_limit": args.purge_limit,
        "purge_rest_batch": args.purge_rest_batch,
        "load_before": report.loadavg(),
    }
    log(
        f"sizes {args.sizes}, {args.duration:g} s per scenario, {g.pinning.describe()}, "
        f"work dir {work}"
    )
    results = [g.run_size(n) for n in args.sizes]
    settings["load_after"] = report.loadavg()
    settings["wall_seconds"] = round(time.monotonic() - started, 1)
    machine = report.machine_info(None)
    text = render(results, settings, machine)
    ok = all(r.ok for r in results)
    data = {
        "machine": machine,
        "settings": settings,
        "sizes": [r.as_json() for r in results],
        "ok": ok,
        "argv": sys.argv,
    }
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "growth.md").write_text(text)
    (out_dir / "growth.json").write_text(json.dumps(data, indent=2) + "\n")
    print()
    print(text)
    if args.update_docs:
        if report.update_docs(ROOT / "docs" / "performance.md", text, DOCS_START, DOCS_END):
            print("docs/performance.md updated")
        else:
            print("docs/performance.md has no growth markers; not updated")
    if not ok:
        print(
            "FAILED: a size had errors, failed, or the purge did not keep the live rows",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
