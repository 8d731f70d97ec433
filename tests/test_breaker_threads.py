"""The standalone breaker shared between threads (``thread_safe=True``)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings, strategies as st

from ciris_actors import CircuitBreaker, CircuitBreakerConfig, CircuitState
from ciris_actors.outcomes import ErrorClass


@pytest.fixture(autouse=True)
def switch_threads_often() -> Iterator[None]:
    """Make the interpreter switch threads as often as it can, so races show."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


class Yielding(float):
    """A clock reading whose comparisons let another thread run first: the breaker
    compares the time inside its check-then-act steps, so an unlocked breaker would be
    caught between the check and the act every time, not once in a thousand runs."""

    def _yield(self) -> None:
        time.sleep(0)

    def __lt__(self, other: object) -> bool:
        self._yield()
        return float(self) < other  # type: ignore[operator]

    def __ge__(self, other: object) -> bool:
        self._yield()
        return float(self) >= other  # type: ignore[operator]


def at_once(count: int, work: Callable[[], None]) -> None:
    """Run *work* in *count* threads released together."""
    barrier = threading.Barrier(count)

    def worker() -> None:
        barrier.wait()
        work()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@settings(max_examples=40, deadline=None)
@given(quota=st.integers(1, 4), threads=st.integers(2, 8))
def test_threads_never_take_more_probe_permits_than_the_quota_and_half_open_once(
    quota: int, threads: int
) -> None:
    transitions: list[tuple[CircuitState, CircuitState]] = []
    breaker = CircuitBreaker(
        "shared",
        CircuitBreakerConfig(
            failure_threshold=1,
            recovery_timeout=1.0,
            success_threshold=quota,
            half_open_max_calls=quota,
        ),
        on_transition=lambda _b, old, new, _r, _t: transitions.append((old, new)),
        thread_safe=True,
    )
    for trial in range(10):
        opened = 2.0 * trial
        breaker.record_failure(opened)  # CLOSED or HALF_OPEN -> OPEN until opened + 1
        transitions.clear()
        admitted: list[bool] = []
        later = Yielding(opened + 1.5)
        at_once(threads, lambda: admitted.append(breaker.acquire(later)))  # noqa: B023
        assert admitted.count(True) == min(quota, threads)
        assert breaker.probes_in_flight == min(quota, threads)
        assert transitions == [(CircuitState.OPEN, CircuitState.HALF_OPEN)]


def test_threads_recording_outcomes_lose_no_count() -> None:
    breaker = CircuitBreaker(
        "shared", CircuitBreakerConfig(failure_threshold=10**9), thread_safe=True
    )

    def record() -> None:
        for _ in range(2000):
            breaker.record_failure(0.0)

    at_once(8, record)
    assert breaker.failure_count == breaker.total_failures == 16000


class Crowded(float):
    """A clock reading that notes how many threads are inside the breaker's failure-rate
    arithmetic at once, and lets another thread run while it is there."""

    inside = 0
    most = 0
    guard = threading.Lock()

    def __truediv__(self, other: object) -> float:
        cls = Crowded
        with cls.guard:
            cls.inside += 1
            cls.most = max(cls.most, cls.inside)
        time.sleep(0)
        with cls.guard:
            cls.inside -= 1
        return float(self) / other  # type: ignore[operator]


def test_threads_recording_classified_outcomes_take_turns_in_the_rate_window() -> None:
    config = CircuitBreakerConfig(
        failure_threshold=10**9, failure_rate_threshold=1.0, minimum_calls=10**9, window=1e6
    )
    breaker = CircuitBreaker("shared", config, thread_safe=True)
    now = Crowded(0.0)

    def record() -> None:
        for i in range(200):
            breaker.record_error(now, ErrorClass.failure() if i % 2 else ErrorClass.success())
            breaker.record_error(now, ErrorClass.ignore())

    Crowded.most = 0
    at_once(8, record)
    assert Crowded.most == 1  # one thread at a time in the window's check-then-act
    assert breaker.failure_rate(0.0) == (800, 1600)


def test_only_a_breaker_asked_to_be_thread_safe_takes_a_lock() -> None:
    plain = CircuitBreaker("plain")
    shared = CircuitBreaker("shared", thread_safe=True)
    assert isinstance(shared, CircuitBreaker)
    assert type(plain) is CircuitBreaker  # the registry's breakers: no locking cost
    assert type(shared) is not CircuitBreaker
    assert shared.thread_safe
    assert not plain.thread_safe
    with pytest.raises(TypeError, match=r"^thread_safe: expected a bool, got int$"):
        CircuitBreaker("x", thread_safe=1)  # type: ignore[arg-type]
