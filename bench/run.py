"""``python -m bench``: consentry vs the hello-world ceiling vs node-oidc-provider, with wrk.

See docs/performance.md for what each scenario does and how pools are minted.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench import procs, profile, report, writer
from bench.report import Cell
from bench.targets import (
    Consentry,
    NodeOidcProvider,
    Target,
    ensure_node,
    node_hello,
    starlette_hello,
)
from bench.wrk import (
    WrkResult,
    ensure_wrk,
    finished,
    read_captured,
    run_wrk,
    unsent,
    write_pool,
)

ROOT = Path(__file__).resolve().parent.parent
TOKEN_EXPECT = '"access_token"'
REFRESH_CAPTURE = '"refresh_token"%s*:%s*"([^"]+)"'


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.pinning = procs.Pinning(not args.no_pin and args.workers <= 1)
        self.threads: int = args.threads or (1 if self.pinning.enabled else 2)
        self.duration: float = args.duration
        self.cells: dict[str, dict[str, Cell]] = {}
        self.notes: list[str] = []
        self.profiles: list[str] = []
        self.spare_codes: dict[str, tuple[list[str], float]] = {}

    # --- helpers ----------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def cell(self, scenario: str, target: str) -> Cell:
        return self.cells.setdefault(scenario, {}).setdefault(target, Cell())

    def wrk(
        self,
        url: str,
        script: str,
        env: dict[str, str],
        duration: float,
        until: Callable[[], bool] | None = None,
    ) -> WrkResult:
        # minting runs wait longer for a slow response: a timeout there only shrinks a pool
        return run_wrk(
            url,
            script,
            env,
            duration=duration,
            connections=self.args.connections,
            threads=self.threads,
            pinning=self.pinning,
            until=until,
            timeout_s=30 if until is not None else self.args.timeout,
        )

    def measure(
        self,
        pid: int | None,
        scenario: str,
        url: str,
        script: str,
        env: dict[str, str],
        *,
        warmup: bool = True,
        profile_it: bool = False,
        cell: Cell | None = None,
    ) -> WrkResult:
        """One timed wrk run; also the server's CPU time during it (``pid``'s utime+stime)
        and, given the ``cell`` of a consentry scenario (``profile_it``), what its SQLite
        writer did (``bench.writer``: a note on the cell if commits were slow)."""
        if warmup and self.args.warmup > 0:
            self.wrk(url, script, env, self.args.warmup)
        prof = None
        if self.args.profile and profile_it:
            prof = profile.start(pid, self.work / f"{scenario}.raw", self.duration, self.pinning)
        before = writer.scrape(url) if profile_it and cell is not None else None
        cpu0 = procs.cpu_seconds(pid)
        r = self.wrk(url, script, env, self.duration)
        cpu1 = procs.cpu_seconds(pid)
        if cpu0 is not None and cpu1 is not None:
            r.server_cpu_s = cpu1 - cpu0
        after = writer.scrape(url) if before is not None else None
        if cell is not None and before is not None and after is not None:
            cell.writer = writer.during(before, after, r.seconds)
            line = writer.note(cell.writer) if cell.writer else None
            if line:
                cell.notes.append(line)
        if prof is not None:
            summary = profile.finish(prof, self.out_dir / f"profile-{scenario}")
            if summary:
                self.profiles.append(summary)
        self.log(
            f"  {scenario:<20} {r.rate:>9,.0f} req/s  p50 {r.p50_ms:6.2f} ms  "
            f"p99 {r.p99_ms:7.2f} ms  errors {r.errors}"
            + (
                f"  server CPU {r.cpu_ms_per_req:.3f} ms/req, {100 * (r.cpu_util or 0):.0f}% busy"
                if r.cpu_ms_per_req
                else ""
            )
            + (f" (pool ran out: {r.exhausted} requests)" if r.exhausted else "")
        )
        return r

    @property
    def out_dir(self) -> Path:
        return Path(self.args.output)

    # --- pools --------------------------------------------------------------------------------
    def pool_size(self, rate: float) -> int:
        if self.args.pool_size:
            return int(self.args.pool_size)
        n = math.ceil(self.args.pool_factor * max(rate, 50.0) * self.duration)
        return max(n, self.args.connections * 4)

    def mint_codes(self, t: Target, n: int, cell: Cell) -> list[str]:
        """``n`` fresh codes from the authorization endpoint (one GET each, wrk-driven)."""
        prefix = self.work / f"{t.name}-codes-{time.monotonic_ns()}"
        env = {
            "BENCH_PATH": t.authorize_path,
            "BENCH_COOKIE": t.cookie,
            "BENCH_CAPTURE": "[?&]code=([^&]+)",
            "BENCH_CAPTURE_FROM": "location",
            "BENCH_ACCEPT_REDIRECT": "1",
            "BENCH_OUT": str(prefix),
            "BENCH_TARGET": str(math.ceil(n / self.threads)),
        }
        started = time.monotonic()
        r = self.wrk(
            t.url + "/",
            "authorize.lua",
            env,
            self.mint_bound(n),
            until=lambda: finished(prefix, self.threads),
        )
        codes = read_captured(prefix, self.threads)
        failed = r.non2xx + r.unexpected + r.socket_errors
        self.log(
            f"  minted {len(codes):,} codes via the authorization endpoint in "
            f"{time.monotonic() - started:.1f} s ({failed} failed responses)"
        )
        if failed:
            cell.notes.append(
                f"minting codes: {failed:,} of {r.requests:,} authorization requests failed "
                f"(non-2xx/3xx or socket errors; --keep keeps {t.log.name if t.log else 'the log'})"
            )
        return codes

    def mint_refresh_tokens(self, t: Target, n: int, cell: Cell) -> list[str]:
        """``n`` refresh tokens, each from its own code exchange at the token endpoint."""
        codes, minted_at = self.spare_codes.pop(t.name, ([], 0.0))
        if time.monotonic() - minted_at > 300:  # codes live 10 minutes; do not cut it close
            codes = []
        # a few more than asked: responses in flight when a thread finishes are lost
        n += self.args.connections + self.threads
        codes = codes[:n]
        if codes:
            self.log(f"  reusing {len(codes):,} codes the code exchange scenario did not send")
        if len(codes) < n:
            codes += self.mint_codes(t, n - len(codes), cell)
        if len(codes) < self.threads:
            raise RuntimeError(f"could not mint codes ({len(codes)})")
        pool = self.work / f"{t.name}-rt-codes-{time.monotonic_ns()}"
        write_pool(codes, pool, self.threads)
        prefix = self.work / f"{t.name}-rts-{time.monotonic_ns()}"
        env = {
            "BENCH_PATH": t.token_path,
            "BENCH_AUTH": t.auth,
            "BENCH_POOL": str(pool),
            "BENCH_BODY_PREFIX": "grant_type=authorization_code&code=",
            "BENCH_BODY_SUFFIX": t.exchange_suffix,
            "BENCH_EXPECT": TOKEN_EXPECT,
            "BENCH_CAPTURE": REFRESH_CAPTURE,
            "BENCH_OUT": str(prefix),
        }
        started = time.monotonic()
        r = self.wrk(
            t.url + "/",
            "pool.lua",
            env,
            self.mint_bound(len(codes)),
            until=lambda: finished(prefix, self.threads),
        )
        tokens = read_captured(prefix, self.threads)
        failed = r.non2xx + r.unexpected + r.socket_errors
        self.log(
            f"  exchanged codes for {len(tokens):,} refresh tokens in "
            f"{time.monotonic() - started:.1f} s ({failed} failed responses)"
        )
        if failed:
            cell.notes.append(f"minting refresh tokens: {failed:,} code exchanges failed")
        return tokens

    def mint_bound(self, n: int) -> float:
        """Upper bound for a minting run: it normally ends as soon as the pool is full."""
        return min(900.0, 30.0 + n / 50.0)

    # --- scenarios ----------------------------------------------------------------------------
    def static_env(self, t: Target, scenario: str) -> dict[str, str]:
        if scenario == "client_credentials":
            return {
                "BENCH_METHOD": "POST",
                "BENCH_PATH": t.token_path,
                "BENCH_AUTH": t.auth,
                "BENCH_BODY": "grant_type=client_credentials",
                "BENCH_EXPECT": TOKEN_EXPECT,
            }
        if scenario == "introspection":
            return {
                "BENCH_METHOD": "POST",
                "BENCH_PATH": t.introspect_path,
                "BENCH_AUTH": t.auth,
                "BENCH_BODY": "token=" + quote(t.access_token, safe=""),
                "BENCH_EXPECT": '"active"%s*:%s*true',
            }
        if scenario == "bearer_get":
            return {
                "BENCH_METHOD": "GET",
                "BENCH_PATH": t.bearer_path,
                "BENCH_AUTH": "Bearer " + t.access_token,
                "BENCH_EXPECT": '"fromFieldId"',
            }
        raise ValueError(scenario)

    def run_ceilings(self) -> None:
        self.log("ceiling: Starlette hello-world (uvicorn, uvloop, httptools, 1 process)")
        url, proc = starlette_hello(self.work, self.pinning)
        try:
            env = {"BENCH_PATH": "/", "BENCH_EXPECT": "Hello"}
            self.cell("ceiling", "consentry").result = self.measure(
                proc.pid, "ceiling", url + "/", "static.lua", env
            )
        finally:
            procs.stop(proc)
        if self.args.skip_node:
            return
        cell = self.cell("ceiling", "node-oidc-provider")
        try:
            self.log("ceiling: node http hello-world")
            url, proc = node_hello(self.work, self.pinning)
        except Exception as exc:  # noqa: BLE001 - reported as n/a
            cell.na = f"node hello-world did not start: {exc}"
            return
        try:
            cell.result = self.measure(
                proc.pid, "ceiling-node", url + "/", "static.lua", {"BENCH_PATH": "/"}
            )
        finally:
            procs.stop(proc)

    def run_target(self, t: Target) -> None:
        self.log(f"{t.name}: starting")
        try:
            t.start()
            t.setup()
        except Exception as exc:  # noqa: BLE001 - every row becomes n/a with the reason
            reason = f"{t.name} did not start or set up: {exc}"
            self.log(reason)
            for key, _label in report.SCENARIOS[1:]:
                self.cell(key, t.name).na = reason
            t.stop()
            return
        try:
            self._scenarios(t)
        finally:
            t.stop()

    def _scenarios(self, t: Target) -> None:
        selected = set(self.args.scenarios)
        cc_rate = 0.0
        for scenario in ("client_credentials", "introspection", "bearer_get"):
            if scenario not in selected:
                continue
            cell = self.cell(scenario, t.name)
            try:
                cell.result = self.measure(
                    t.pid,
                    scenario,
                    t.url + "/",
                    "static.lua",
                    self.static_env(t, scenario),
                    profile_it=t.name == "consentry",
                    cell=cell,
                )
            except Exception as exc:  # noqa: BLE001
                cell.na = f"failed: {exc}"
                self.log(f"  {scenario}: {cell.na}")
                continue
            if scenario == "client_credentials":
                cc_rate = cell.result.rate

        exchange_rate = 0.0
        if "authorization_code" in selected:
            cell = self.cell("authorization_code", t.name)
            try:
                n = self.pool_size(cc_rate or self.args.assume_rate)
                minted_at = time.monotonic()
                codes = self.mint_codes(t, n, cell)
                cell.result = self.run_pool(t, "authorization_code", codes, "code", cell, n)
                exchange_rate = cell.result.rate
                spare = unsent(codes, self.threads, cell.result.sent)
                self.spare_codes[t.name] = (spare, minted_at)
            except Exception as exc:  # noqa: BLE001
                cell.na = f"failed: {exc}"
                self.log(f"  authorization_code: {cell.na}")
        if "refresh_token" in selected:
            cell = self.cell("refresh_token", t.name)
            try:
                n = self.pool_size(exchange_rate or cc_rate or self.args.assume_rate)
                tokens = self.mint_refresh_tokens(t, n, cell)
                cell.result = self.run_pool(t, "refresh_token", tokens, "refresh_token", cell, n)
            except Exception as exc:  # noqa: BLE001
                cell.na = f"failed: {exc}"
                self.log(f"  refresh_token: {cell.na}")

    def run_pool(
        self, t: Target, grant: str, values: list[str], param: str, cell: Cell, planned: int
    ) -> WrkResult:
        if len(values) < self.threads:
            raise RuntimeError(f"could not mint a pool ({len(values)} values)")
        if len(values) < planned:
            cell.notes.append(f"minted {len(values):,} of the {planned:,} values planned")
        pool = self.work / f"{t.name}-{grant}-pool-{time.monotonic_ns()}"
        write_pool(values, pool, self.threads)
        env = {
            "BENCH_PATH": t.token_path,
            "BENCH_AUTH": t.auth,
            "BENCH_POOL": str(pool),
            "BENCH_BODY_PREFIX": f"grant_type={grant}&{param}=",
            "BENCH_BODY_SUFFIX": t.exchange_suffix if grant == "authorization_code" else "",
            "BENCH_EXPECT": TOKEN_EXPECT,
        }
        cell.pool = len(values)
        r = self.measure(
            t.pid,
            grant,
            t.url + "/",
            "pool.lua",
            env,
            warmup=False,
            profile_it=t.name == "consentry",
            cell=cell,
        )
        if r.exhausted:
            cell.notes.append(
                f"the pool of {len(values):,} single-use values ran out; the {r.exhausted:,} "
                "requests sent after that are counted as errors (raise --pool-factor)"
            )
        return r


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark consentry against a Starlette hello-world ceiling and "
        "node-oidc-provider, with wrk on loopback.",
    )
    p.add_argument("--quick", action="store_true", help="a few seconds per scenario (CI)")
    p.add_argument("--duration", type=float, help="seconds per scenario (default 15, quick 3)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument(
        "--timeout",
        type=int,
        default=5,
        help="wrk's request timeout in seconds; a slower response is an error (default 5)",
    )
    p.add_argument("--threads", type=int, help="wrk threads (default 1 when pinned, else 2)")
    p.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--skip-node", action="store_true", help="do not run node-oidc-provider")
    p.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="consentry serve --workers N (N > 1 implies --no-pin: the workers need the cores)",
    )
    p.add_argument(
        "--scenarios",
        default="client_credentials,authorization_code,refresh_token,introspection,bearer_get",
        help="comma-separated subset of the consentry/node scenarios",
    )
    p.add_argument(
        "--pool-factor",
        type=float,
        help="single-use pool = factor × estimated req/s × duration (default 2, quick 2.5); the "
        "estimate is this run's client_credentials rate (codes) or code exchange rate (refresh)",
    )
    p.add_argument("--pool-size", type=int, help="fixed pool size instead of the estimate")
    p.add_argument(
        "--assume-rate",
        type=float,
        default=6000.0,
        help="req/s estimate when client_credentials was not run (default 6000: a code "
        "exchange pool sized from 2000 ran out within 10 s on the 2026-11 AMD VM)",
    )
    p.add_argument(
        "--warmup",
        type=float,
        help="seconds of warm-up before each repeatable scenario (default 2, quick 0)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy record consentry during each scenario; top functions written "
        "to the output folder",
    )
    p.add_argument(
        "--output",
        default=str(ROOT / "bench" / "results"),
        help="folder for latest.md / latest.json (default bench/results)",
    )
    p.add_argument(
        "--update-docs",
        action="store_true",
        help="also put the table into docs/performance.md (between its markers)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, db)")
    args = p.parse_args(argv)
    if args.duration is None:
        args.duration = 3.0 if args.quick else 15.0
    if args.pool_factor is None:
        args.pool_factor = 2.5 if args.quick else 2.0
    if args.warmup is None:
        args.warmup = 0.0 if args.quick else 2.0
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    known = {k for k, _ in report.SCENARIOS}
    unknown = set(args.scenarios) - known
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


def node_version(skip: bool) -> str | None:
    if skip:
        return None
    try:
        node = ensure_node()
        return subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except Exception:  # noqa: BLE001
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    made: list[Consentry] = []

    def cleanup() -> None:
        for consentry in made:
            consentry.drop_database()

    return procs.run_main(
        "consentry-bench-", args.keep, lambda work: _main(args, work, made), cleanup
    )


def _main(args: argparse.Namespace, work: Path, made: list[Consentry]) -> int:
    ensure_wrk()
    bench = Bench(args, work)
    started = time.monotonic()
    settings: dict[str, Any] = {
        "quick": args.quick,
        "duration": args.duration,
        "connections": args.connections,
        "threads": bench.threads,
        "database": args.database,
        "workers": args.workers,
        "skip_node": args.skip_node,
        "pinning": bench.pinning.describe(),
        "pool_factor": args.pool_factor,
        "scenarios": args.scenarios,
        "load_before": report.loadavg(),
    }
    bench.log(
        f"{args.duration:g} s per scenario, {args.connections} connections, "
        f"{bench.threads} wrk thread(s), {bench.pinning.describe()}, work dir {work}"
    )
    nv = node_version(args.skip_node)
    bench.run_ceilings()
    consentry = Consentry(work, bench.pinning, args.database, workers=args.workers)
    made.append(consentry)
    bench.run_target(consentry)
    consentry.drop_database()
    if not args.skip_node:
        bench.run_target(NodeOidcProvider(work, bench.pinning))
    settings["load_after"] = report.loadavg()
    settings["wall_seconds"] = round(time.monotonic() - started, 1)

    ceiling_cell = bench.cell("ceiling", "consentry")
    ceiling = ceiling_cell.result.rate if ceiling_cell.result else 0.0
    ok = True
    for key in args.scenarios:
        cell = bench.cells.get(key, {}).get("consentry")
        if cell is None or cell.result is None or cell.result.errors:
            ok = False
    notes = list(bench.notes)
    notes.append(f"wall time of the whole run: {settings['wall_seconds']} s")
    if bench.profiles:
        notes.append(f"py-spy profiles in {args.output}/profile-*.txt")
    machine = report.machine_info(nv)
    text = report.render(bench.cells, ceiling, settings, machine, notes)
    data = report.as_json(bench.cells, ceiling, settings, machine, notes, ok)
    report.write(Path(args.output), text, data)
    print()
    print(text)
    for summary in bench.profiles:
        print(summary)
    if args.update_docs:
        if report.update_docs(ROOT / "docs" / "performance.md", text):
            print("docs/performance.md updated")
        else:
            print("docs/performance.md has no bench markers; not updated")
    if not ok:
        print("FAILED: a consentry scenario had errors or did not run", file=sys.stderr)
        return 1
    return 0
