"""The per-principal token bucket, on an injected clock (no sleeps)."""

import pytest

from shared.ratelimit import RateLimiter, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_full_bucket_admits_the_burst_then_refuses_with_the_wait(clock: Clock) -> None:
    limiter = RateLimiter(10, 50, clock=clock)
    assert limiter.acquire("a", 30) == 0.0
    assert limiter.acquire("a", 20) == 0.0
    assert limiter.level("a") == 0.0
    wait = limiter.acquire("a", 5)
    assert wait == pytest.approx(0.5)  # 5 records at 10/s
    assert limiter.level("a") == 0.0  # a refused request takes nothing
    clock.now += 0.49
    assert limiter.acquire("a", 5) == pytest.approx(0.01)
    clock.now += 0.01
    assert limiter.acquire("a", 5) == 0.0


def test_refill_is_capped_at_the_burst(clock: Clock) -> None:
    limiter = RateLimiter(10, 50, clock=clock)
    limiter.acquire("a", 50)
    clock.now += 3600
    assert limiter.level("a") == 50
    assert limiter.acquire("a", 50) == 0.0
    assert limiter.acquire("a", 1) == pytest.approx(0.1)


def test_principals_have_buckets_of_their_own(clock: Clock) -> None:
    limiter = RateLimiter(1, 10, clock=clock)
    assert limiter.acquire("brand-backend", 10) == 0.0
    assert limiter.acquire("brand-backend", 1) > 0
    assert limiter.acquire("importer", 10) == 0.0


def test_a_request_larger_than_the_burst_passes_only_on_a_full_bucket_and_leaves_debt(clock: Clock) -> None:
    limiter = RateLimiter(100, 200, clock=clock)
    assert limiter.acquire("a", 1) == 0.0
    # Not full (199): wait until the bucket is full again, not for the 1000 records (which would never fit).
    assert limiter.acquire("a", 1000) == pytest.approx(0.01)
    clock.now += 0.01
    assert limiter.acquire("a", 1000) == 0.0
    assert limiter.level("a") == pytest.approx(-800)
    # The debt is paid back at the rate before anything else gets through: the long-run rate holds.
    assert limiter.acquire("a", 1) == pytest.approx(8.01)
    clock.now += 8.01
    assert limiter.acquire("a", 1) == 0.0


def test_the_clock_going_backwards_never_adds_units(clock: Clock) -> None:
    limiter = RateLimiter(10, 10, clock=clock)
    limiter.acquire("a", 10)
    clock.now -= 100
    assert limiter.level("a") == 0
    clock.now += 100.5
    assert limiter.level("a") == pytest.approx(5)


def test_zero_cost_is_free_and_bad_parameters_are_refused(clock: Clock) -> None:
    limiter = RateLimiter(1, 1, clock=clock)
    limiter.acquire("a", 1)
    assert limiter.acquire("a", 0) == 0.0
    with pytest.raises(ValueError):
        RateLimiter(0, 10)
    with pytest.raises(ValueError):
        RateLimiter(10, 0)


@pytest.mark.parametrize(("wait", "header"), [(0.001, "1"), (0.5, "1"), (1.0, "1"), (1.01, "2"), (7.99, "8"),
                                              (8.0000000001, "8")])
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(wait: float, header: str) -> None:
    assert retry_after(wait) == header
