"""The per-process fixed-window counters behind the rate limits (no Redis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from limits import RateLimitItemPerSecond, parse

from consentry.api import ratelimit
from consentry.api.ratelimit import LocalWindows


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(ratelimit.time, "monotonic", c)
    return c


def test_window_counts_refused_hits_and_reopens_after_its_period(clock: Clock) -> None:
    w = LocalWindows()
    item = parse("3/10 seconds")
    assert [w.hit(item, "k")[0] for _ in range(5)] == [True, True, True, False, False]
    assert w.hit(item, "k") == (False, 0, 10)
    assert not w.test(item, "k")
    clock.now += 9.5
    assert w.hit(item, "k") == (False, 0, 1)  # same window: it opened at the first hit
    clock.now += 0.5
    assert w.test(item, "k")
    assert w.hit(item, "k") == (True, 2, 10)  # a new window


def test_a_new_window_never_reports_more_seconds_than_its_period(clock: Clock) -> None:
    # (now + 600) - now == 600.0000000000146 here: ceil() alone said 601.
    clock.now = 130479.58581193296
    assert LocalWindows().hit(parse("5/600 seconds"), "k") == (True, 4, 600)


def test_keys_and_items_are_separate(clock: Clock) -> None:
    w = LocalWindows()
    one = RateLimitItemPerSecond(1)
    two = RateLimitItemPerSecond(2)
    assert w.hit(one, "a")[0] and not w.hit(one, "a")[0]
    assert w.hit(one, "b")[0]
    assert w.hit(two, "a")[0] and w.hit(two, "a")[0] and not w.hit(two, "a")[0]


def test_zero_cost_hit_reports_without_counting(clock: Clock) -> None:
    w = LocalWindows()
    item = parse("2/60 seconds")
    w.hit(item, "k")
    assert w.hit(item, "k", cost=0) == (True, 1, 60)
    assert w.hit(item, "k") == (True, 0, 60)


def test_expired_windows_are_swept_so_memory_stays_bounded(clock: Clock) -> None:
    w = LocalWindows()
    item = RateLimitItemPerSecond(5)
    for i in range(5000):
        w.hit(item, f"key-{i}")
        clock.now += 0.01  # each key's window is long over 100 keys later
    assert len(w) < 2100
    clock.now += 2
    w.hit(item, "last")
    assert len(w) <= 2100


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.floats(min_value=0, max_value=1.5)),
        max_size=60,
    ),
    per_second=st.integers(min_value=1, max_value=4),
    per_frame=st.integers(min_value=1, max_value=12),
    frame_seconds=st.integers(min_value=2, max_value=5),
)
def test_a_pair_is_the_two_hits_it_stands_for(
    steps: list[tuple[str, float]], per_second: int, per_frame: int, frame_seconds: int
) -> None:
    """``pair`` (the bearer calls' second and frame windows in one entry) answers exactly what
    ``hit(second, "s:" + key)`` then ``hit(frame, "f:" + key, 1 if allowed else 0)`` do, call
    after call, whatever the keys and the time between calls."""
    now = [1000.0]
    real = ratelimit.time.monotonic
    ratelimit.time.monotonic = lambda: now[0]  # type: ignore[assignment]
    try:
        second = RateLimitItemPerSecond(per_second)
        frame = parse(f"{per_frame}/{frame_seconds} seconds")
        paired, two = LocalWindows(), LocalWindows()
        for key, wait in steps:
            now[0] += wait
            ok_s, _rem, reset_s = two.hit(second, "s:" + key)
            ok_f, rem_f, reset_f = two.hit(frame, "f:" + key, 1 if ok_s else 0)
            got = paired.pair(key, second, frame)
            assert got == (ok_s, 0 if ok_s else reset_s, ok_f, rem_f, reset_f)
    finally:
        ratelimit.time.monotonic = real  # type: ignore[method-assign]


def test_pairs_are_swept_so_memory_stays_bounded(clock: Clock) -> None:
    w = LocalWindows()
    second, frame = RateLimitItemPerSecond(5), parse("10/2 seconds")
    for i in range(5000):
        w.pair(f"key-{i}", second, frame)
        clock.now += 0.01  # each key's windows are over 200 keys later
    assert len(w) < 2100
