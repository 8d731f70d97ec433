"""The breaker actor: it moves OPEN to HALF_OPEN and expires probe permits on time,
whatever a health check does."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from ciris_actors import (
    BreakerTransition,
    CircuitBreakerConfig,
    CircuitState,
    Registry,
    open_registry,
)
from ciris_actors.testing import FakeProvider

from .helpers import Plain

#: A breaker that never half-opens by itself during a test, with a long call deadline.
SLOW_CHECKS = CircuitBreakerConfig(
    failure_threshold=1, recovery_timeout=600.0, success_threshold=1, timeout_duration=30.0
)


class SignalsChecks(FakeProvider):
    """A FakeProvider that says when each health check begins."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.check_began = trio.Event()

    async def is_healthy(self) -> bool:
        self.check_began.set()
        self.check_began = trio.Event()
        return await super().is_healthy()


async def next_transition(events: trio.abc.ReceiveChannel[object]) -> BreakerTransition:
    async for event in events:
        if isinstance(event, BreakerTransition):
            return event
    raise AssertionError("the registry closed first")


async def test_the_open_timer_fires_on_time_while_a_health_check_hangs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    provider = SignalsChecks("slow")
    async with open_registry(
        required_services=["llm"], health_check_interval=10.0, default_breaker=SLOW_CHECKS
    ) as registry:
        name = registry.register("H", "llm", provider, name="slow")
        assert await registry.wait_ready(5.0)
        provider.health_latency = math.inf  # the next check hangs for its whole deadline
        async with registry.events(types=[BreakerTransition]) as events:
            await provider.check_began.wait()  # the hanging check has begun
            start = trio.current_time()
            registry.force_open(name, duration=1.0)
            opened = await next_transition(events)
            assert opened.new is CircuitState.OPEN
            half_open = await next_transition(events)
            assert half_open.new is CircuitState.HALF_OPEN
            assert half_open.time - start == pytest.approx(1.0)

            # A probe permit nobody returns expires after timeout_duration, however long
            # the health check started meanwhile takes.
            taken = trio.current_time()
            assert registry.get_service_nowait("H", "llm") is provider
            expired = await next_transition(events)
            assert (expired.old, expired.new) == (CircuitState.HALF_OPEN, CircuitState.OPEN)
            assert expired.time - taken == pytest.approx(SLOW_CHECKS.timeout_duration)
            assert expired.reason == "probe failed"


async def test_a_first_check_asked_for_while_an_old_check_runs_runs_right_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The provider restarts while its previous life's check is still running: that check
    # cannot vouch for the new life, so a fresh one must follow it, or (with no periodic
    # checks) the provider would never become routable again.
    provider = FakeProvider("p", health_latency=20.0)
    async with open_registry(
        required_services=["llm"], health_check_interval=None, default_breaker=SLOW_CHECKS
    ) as registry:
        registry.register("H", "llm", provider, name="p")
        await trio.sleep(5.0)
        assert provider.health_checks == 1  # still running
        provider.crash()
        assert await registry.wait_ready(100.0)
        assert provider.starts == 2
        assert provider.health_checks == 2
        assert trio.current_time() == pytest.approx(40.0, abs=0.5)  # 20 s, then 20 s more


async def test_a_permit_with_a_shorter_deadline_expires_on_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = CircuitBreakerConfig(
        recovery_timeout=1.0, success_threshold=3, half_open_max_calls=2, timeout_duration=30.0
    )
    async with open_registry(default_breaker=config) as registry:
        name = registry.register("H", "llm", Plain())
        registry.force_open(name, 1.0)
        await trio.sleep(1.0)
        assert registry.get_service_nowait("H", "llm") is not None  # due in 30 s
        shorter = CircuitBreakerConfig(
            recovery_timeout=1.0, success_threshold=3, half_open_max_calls=2, timeout_duration=2.0
        )
        registry.update_circuit_breaker(name, shorter)
        assert registry.get_service_nowait("H", "llm") is not None  # due in 2 s
        await trio.sleep(2.5)
        stats = registry.get_provider_info()["circuit_breaker_stats"][name]
        assert stats["state"] == "open"


async def test_breaker_actor_moves_open_to_half_open_at_the_deadline(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    name = registry.register("H", "llm", Plain("a"))
    # The actor is already idle when the hot path opens the breaker: it must be told.
    await trio.testing.wait_all_tasks_blocked()
    async with registry.events() as events:
        registry.report_failure(name)
        registry.report_failure(name)
        opened = await events.receive()
        half_open = await events.receive()
    assert isinstance(opened, BreakerTransition)
    assert isinstance(half_open, BreakerTransition)
    assert (opened.old, opened.new) == (CircuitState.CLOSED, CircuitState.OPEN)
    assert (half_open.old, half_open.new) == (CircuitState.OPEN, CircuitState.HALF_OPEN)
    assert half_open.time - opened.time == pytest.approx(10.0)


async def test_unreturned_half_open_permit_counts_as_a_failure(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    provider = Plain("a")
    name = registry.register("H", "llm", provider)
    registry.force_open(name, duration=1.0)
    await trio.sleep(1.0)
    assert registry.get_service_nowait("H", "llm") is provider  # takes the only permit
    stats = registry.get_provider_info()["circuit_breaker_stats"][name]
    assert stats["state"] == "half_open"
    assert stats["probes_in_flight"] == 1
    await trio.sleep(5.5)  # timeout_duration (5 s) passes without a report
    stats = registry.get_provider_info()["circuit_breaker_stats"][name]
    assert stats["state"] == "open"
    assert stats["total_failures"] == 1
