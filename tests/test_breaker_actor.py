"""The breaker actor: its timers fire on time, whatever a health check does."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from ciris_actors import BreakerTransition, CircuitBreakerConfig, CircuitState, open_registry
from ciris_actors.testing import FakeProvider

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
