"""The standalone breaker shared between threads (``thread_safe=True``)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings, strategies as st

from ciris_actors import CircuitBreaker, CircuitBreakerConfig, CircuitState


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
