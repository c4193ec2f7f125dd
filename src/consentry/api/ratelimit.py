"""Rate limits with GetResponse's numbers and headers (SPEC §1.3).

Per account: N calls per frame (30,000 per 600 s), M per second (80), K at once (10).
Counters live in this process (:class:`LocalWindows`), or in Redis when
``CONSENTRY_REDIS_URL`` is set so that every node shares them (the ``limits`` library does
the Redis window arithmetic). If Redis is unreachable the limiter falls back to per-process
counters and logs a warning: a limit that is briefly per node is better than an outage.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from typing import NamedTuple

from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter

log = logging.getLogger("consentry.ratelimit")


class Decision(NamedTuple):
    """One call's verdict (a named tuple: made on every API call)."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int
    reason: str = ""

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.remaining)),
            "X-RateLimit-Reset": f"{self.reset_seconds} seconds",
        }

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """:meth:`headers` as ASGI header pairs, to append to a response's ``raw_headers``
        (cheaper than three ``MutableHeaders`` assignments, each a scan of the list)."""
        return [
            (b"x-ratelimit-limit", b"%d" % self.limit),
            (b"x-ratelimit-remaining", b"%d" % max(0, self.remaining)),
            (b"x-ratelimit-reset", b"%d seconds" % self.reset_seconds),
        ]


_tuple_new = tuple.__new__


def _seconds_left(left: float, period: int) -> int:
    """Whole seconds until a window of ``period`` seconds resets, never more than the period:
    ``(now + 600) - now`` is 600.0000000000146 for some ``now``, which ``ceil`` made a
    "601 seconds" header (a flaky test caught it)."""
    return min(period, max(0, math.ceil(left)))


class LocalWindows:
    """Fixed-window counters of this process, with the semantics of ``limits``' fixed
    window (a key's window opens at its first hit and lasts the item's period; every hit
    counts, refused ones too).

    Every bearer call hits two windows and every token request one or two, so this is on
    the hot path: ``limits``' MemoryStorage (async calls, key strings built per call, a
    lock, two storage calls per hit) cost ~18 % of a bearer GET; this is one dict lookup.
    Expired windows are swept when the table has doubled since the last sweep, so memory
    stays bounded by the windows that are still open."""

    __slots__ = ("_windows", "_sweep_at", "_pairs", "_pairs_sweep_at")

    def __init__(self) -> None:
        self._windows: dict[tuple[str, int, int], list[float]] = {}
        self._sweep_at = 1024
        # pair()'s windows: [second's end, its count, frame's end, its count] per key and items.
        self._pairs: dict[tuple[str, int, int, int, int], list[float]] = {}
        self._pairs_sweep_at = 1024

    def hit(self, item: RateLimitItem, key: str, cost: int = 1) -> tuple[bool, int, int]:
        """(allowed, remaining, seconds until the window resets) after counting ``cost``."""
        now = time.monotonic()
        amount = item.amount
        wkey = (key, amount, item.get_expiry())
        window = self._windows.get(wkey)
        if window is None or window[0] <= now:
            if len(self._windows) >= self._sweep_at:
                self._sweep(now)
            window = [now + wkey[2], 0.0]
            self._windows[wkey] = window
        window[1] += cost
        used = int(window[1])
        return used <= amount, max(0, amount - used), _seconds_left(window[0] - now, wkey[2])

    def pair(
        self, key: str, second: RateLimitItem, frame: RateLimitItem
    ) -> tuple[bool, int, bool, int, int]:
        """Two windows of one key in one lookup, as ``hit(second, "s:" + key)`` followed by
        ``hit(frame, "f:" + key, 1 if the first allowed else 0)`` (each window still opens at
        its own first hit and lasts its own period): (second allowed, its seconds to reset,
        frame allowed, frame remaining, frame seconds to reset). Every bearer call makes
        this pair of hits; one entry and no key strings halve what two ``hit`` calls cost."""
        now = time.monotonic()
        s_amount, s_period = second.amount, second.get_expiry()
        f_amount, f_period = frame.amount, frame.get_expiry()
        pkey = (key, s_amount, s_period, f_amount, f_period)
        w = self._pairs.get(pkey)
        if w is None:
            if len(self._pairs) >= self._pairs_sweep_at:
                self._sweep_pairs(now)
            w = [now + s_period, 0.0, now + f_period, 0.0]
            self._pairs[pkey] = w
        else:
            if w[0] <= now:
                w[0], w[1] = now + s_period, 0.0
            if w[2] <= now:
                w[2], w[3] = now + f_period, 0.0
        w[1] += 1
        ok_s = int(w[1]) <= s_amount
        if ok_s:
            w[3] += 1
        f_used = int(w[3])
        # Both windows end after now (an ended one was just reopened), so each reset is
        # ceil(time left) >= 1, capped at the period as in _seconds_left; the second's is
        # only ever shown when it refused.
        reset_f = math.ceil(w[2] - now)
        return (
            ok_s,
            0 if ok_s else min(s_period, math.ceil(w[0] - now)),
            f_used <= f_amount,
            max(0, f_amount - f_used),
            f_period if reset_f > f_period else reset_f,
        )

    def _sweep_pairs(self, now: float) -> None:
        for k in [k for k, w in self._pairs.items() if w[0] <= now and w[2] <= now]:
            del self._pairs[k]
        self._pairs_sweep_at = max(1024, 2 * len(self._pairs))

    def test(self, item: RateLimitItem, key: str) -> bool:
        """Whether one more hit would still be allowed, without counting it."""
        window = self._windows.get((key, item.amount, item.get_expiry()))
        if window is None or window[0] <= time.monotonic():
            return True
        return window[1] < item.amount

    def _sweep(self, now: float) -> None:
        for k in [k for k, w in self._windows.items() if w[0] <= now]:
            del self._windows[k]
        self._sweep_at = max(1024, 2 * len(self._windows))

    def __len__(self) -> int:
        return len(self._windows) + len(self._pairs)


class RateLimiter:
    """Fixed windows per key; one instance per process."""

    def __init__(
        self,
        *,
        per_frame: int,
        frame_seconds: int,
        per_second: int,
        concurrent: int,
        redis_url: str = "",
    ) -> None:
        self.frame_item: RateLimitItem = parse(f"{per_frame}/{frame_seconds} seconds")
        self.second_item: RateLimitItem = RateLimitItemPerSecond(per_second)
        self.concurrent = concurrent
        self._memory = LocalWindows()
        self._shared: FixedWindowRateLimiter | None = None
        self._storage: Storage | None = None
        if redis_url:
            url = redis_url
            if url.startswith("redis://") or url.startswith("rediss://"):
                url = "async+" + url
            # redis-py (a dependency already) rather than coredis; short timeouts so a
            # Redis outage degrades to per-process limits quickly instead of hanging calls.
            self._storage = RedisStorage(
                url,
                implementation="redispy",
                key_prefix="consentry",
                socket_timeout=0.5,
                socket_connect_timeout=0.5,
            )
            self._shared = FixedWindowRateLimiter(self._storage)
        self._in_flight: dict[str, int] = defaultdict(int)
        self._warned_at = 0.0

    def _degraded(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 30:
            self._warned_at = now
            log.warning("rate-limit store unreachable, using per-process limits: %s", exc)

    async def _hit(self, item: RateLimitItem, key: str, cost: int = 1) -> tuple[bool, int, int]:
        """(allowed, remaining, reset_seconds) for one hit, surviving a Redis outage."""
        shared = self._shared
        if shared is None:
            return self._memory.hit(item, key, cost)
        try:
            ok = await shared.hit(item, key, cost=cost)
            stats = await shared.get_window_stats(item, key)
        except Exception as exc:  # Redis down or unreachable: degrade, never fail the call
            self._degraded(exc)
            return self._memory.hit(item, key, cost)
        reset = _seconds_left(stats.reset_time - time.time(), item.get_expiry())
        return ok, stats.remaining, reset

    async def check(self, key: str) -> Decision:
        """Count one call for ``key`` against the frame and the per-second limits."""
        if self._shared is None:
            return self.check_local(key)
        ok_s, _rem_s, reset_s = await self._hit(self.second_item, "s:" + key)
        ok_f, rem_f, reset_f = await self._hit(self.frame_item, "f:" + key, cost=1 if ok_s else 0)
        return self._decide(ok_s, reset_s, ok_f, rem_f, reset_f)

    @property
    def local(self) -> bool:
        """Whether the counters are this process's (no Redis): ``check_local`` applies."""
        return self._shared is None

    def check_local(self, key: str) -> Decision:
        """:meth:`check` on this process's counters, without waiting (only when ``local``)."""
        frame = self.frame_item
        ok_s, reset_s, ok_f, rem_f, reset_f = self._memory.pair(key, self.second_item, frame)
        if ok_s and ok_f:  # the common case, without _decide's call and NamedTuple.__new__
            return _tuple_new(Decision, (True, frame.amount, rem_f, reset_f, 0, ""))
        return self._decide(ok_s, reset_s, ok_f, rem_f, reset_f)

    def _decide(self, ok_s: bool, reset_s: int, ok_f: bool, rem_f: int, reset_f: int) -> Decision:
        limit = self.frame_item.amount
        if not ok_f:
            return Decision(False, limit, 0, reset_f, max(1, reset_f), "frame")
        if not ok_s:
            return Decision(False, limit, rem_f, reset_f, max(1, reset_s), "second")
        return Decision(True, limit, rem_f, reset_f, 0)

    def acquire(self, key: str) -> bool:
        """Take one of the account's concurrent slots (per process)."""
        if self._in_flight[key] >= self.concurrent:
            return False
        self._in_flight[key] += 1
        return True

    def release(self, key: str) -> None:
        n = self._in_flight[key] - 1
        if n <= 0:
            self._in_flight.pop(key, None)
        else:
            self._in_flight[key] = n

    async def hit_counter(self, item: RateLimitItem, key: str) -> tuple[bool, int]:
        """A generic counter (login throttling): (allowed, seconds until reset)."""
        ok, _remaining, reset = await self._hit(item, key)
        return ok, reset

    async def test_counter(self, item: RateLimitItem, key: str) -> bool:
        """Whether ``key`` is still under ``item`` without counting a hit."""
        shared = self._shared
        if shared is None:
            return self._memory.test(item, key)
        try:
            return await shared.test(item, key)
        except Exception as exc:
            self._degraded(exc)
            return self._memory.test(item, key)

    async def close(self) -> None:
        await asyncio.sleep(0)
