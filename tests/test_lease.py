"""lease() and call(): deadlines, outcome recording, failover."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ciris_actors import (
    CircuitBreakerConfig,
    NoServiceAvailable,
    Priority,
    Registry,
    open_registry,
)
from ciris_actors.testing import FakeProvider


def stats(registry: Registry, name: str) -> dict[str, object]:
    result: dict[str, object] = registry.get_provider_info()["circuit_breaker_stats"][name]
    return result


async def serve(provider: FakeProvider, request: object) -> str:
    return await provider.handle(request)


async def test_lease_records_success_on_normal_exit(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    provider = FakeProvider("a")
    name = registry.register("H", "llm", provider)
    await registry.wait_ready(5.0)
    async with registry.lease("H", "llm") as leased:
        assert leased is provider
    assert stats(registry, name)["total_successes"] == 1


async def test_lease_records_failure_on_exception_and_reraises(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    name = registry.register("H", "llm", FakeProvider("a"))
    await registry.wait_ready(5.0)
    with pytest.raises(KeyError):
        async with registry.lease("H", "llm"):
            raise KeyError("boom")
    assert stats(registry, name)["total_failures"] == 1
    assert stats(registry, name)["failure_count"] == 1


async def test_lease_deadline_raises_too_slow_and_records_failure(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    provider = FakeProvider("a", latency=float("inf"))
    name = registry.register("H", "llm", provider)
    await registry.wait_ready(5.0)
    start = trio.current_time()
    with pytest.raises(trio.TooSlowError):
        async with registry.lease("H", "llm") as leased:
            await leased.handle()
    assert trio.current_time() - start == pytest.approx(5.0)  # FAST_BREAKER.timeout_duration
    assert stats(registry, name)["total_failures"] == 1
    with pytest.raises(trio.TooSlowError):
        async with registry.lease("H", "llm", timeout=1.5) as leased:
            await leased.handle()
    assert stats(registry, name)["total_failures"] == 2


async def test_outside_cancellation_records_nothing_and_returns_the_permit(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    provider = FakeProvider("a", latency=float("inf"))
    name = registry.register("H", "llm", provider)
    await registry.wait_ready(5.0)
    registry.force_open(name, duration=1.0)
    await trio.sleep(1.0)
    with trio.move_on_after(0.5):
        async with registry.lease("H", "llm") as leased:
            assert stats(registry, name)["probes_in_flight"] == 1
            await leased.handle()
    after = stats(registry, name)
    assert after["state"] == "half_open"
    assert after["probes_in_flight"] == 0
    assert (after["total_failures"], after["total_successes"]) == (0, 0)


async def test_lease_without_a_provider_raises_naming_the_candidates(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    name = registry.register("H", "llm", FakeProvider("a"), capabilities=["chat"])
    await registry.wait_ready(5.0)
    with pytest.raises(NoServiceAvailable) as caught:
        async with registry.lease("H", "llm", ["vision"]):
            pass  # pragma: no cover
    assert name in str(caught.value)
    assert "lacks capabilities ['vision']" in str(caught.value)
    assert caught.value.required_capabilities == frozenset({"vision"})


async def test_call_fails_over_and_returns_the_first_success(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    bad = FakeProvider("bad", failing=True)
    good = FakeProvider("good")
    registry.register("H", "llm", bad, Priority.HIGH, name="bad")
    registry.register("H", "llm", good, Priority.LOW, name="good")
    await registry.wait_ready(5.0)
    assert await registry.call("H", "llm", serve, "hi") == "good:hi"
    assert (bad.calls, good.calls) == (1, 1)
    assert stats(registry, "bad")["total_failures"] == 1
    assert stats(registry, "good")["total_successes"] == 1


async def test_call_never_tries_a_provider_twice_and_lists_every_attempt(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    providers = [FakeProvider(f"p{i}", failing=True) for i in range(3)]
    for i, provider in enumerate(providers):
        registry.register("H", "llm", provider, strategy="round_robin", name=f"p{i}")
    await registry.wait_ready(5.0)
    with pytest.raises(NoServiceAvailable) as caught:
        await registry.call("H", "llm", serve, "x")
    assert [p.calls for p in providers] == [1, 1, 1]
    error = caught.value
    assert [a.name for a in error.attempts] == ["p0", "p1", "p2"]
    assert isinstance(error.__cause__, RuntimeError)
    assert "p2: request failed" in str(error.__cause__)
    for i in range(3):
        assert f"p{i}: failed (RuntimeError" in str(error)


async def test_call_respects_max_attempts(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    providers = [FakeProvider(f"p{i}", failing=True) for i in range(3)]
    for provider in providers:
        registry.register("H", "llm", provider)
    await registry.wait_ready(5.0)
    with pytest.raises(NoServiceAvailable) as caught:
        await registry.call("H", "llm", serve, "x", max_attempts=2)
    assert len(caught.value.attempts) == 2
    assert sum(p.calls for p in providers) == 2
    with pytest.raises(ValueError, match="max_attempts"):
        await registry.call("H", "llm", serve, max_attempts=0)


async def test_call_times_out_a_hanging_provider_and_fails_over(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    hanging = FakeProvider("hanging", latency=float("inf"))
    backup = FakeProvider("backup")
    registry.register("H", "llm", hanging, Priority.HIGH, name="hanging")
    registry.register("H", "llm", backup, Priority.LOW)
    await registry.wait_ready(5.0)
    start = trio.current_time()
    assert await registry.call("H", "llm", serve, 1) == "backup:1"
    assert trio.current_time() - start == pytest.approx(5.0)
    assert stats(registry, "hanging")["total_failures"] == 1


async def test_call_with_nothing_registered_raises_no_service(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    with pytest.raises(NoServiceAvailable, match="no provider is registered"):
        await registry.call("H", "memory", serve)


async def test_a_lease_ending_in_a_group_with_its_own_deadline_records_and_returns_its_permit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The body's helper task fails while being cancelled by the lease's deadline: the
    # body ends with a group holding the deadline's Cancelled and a real error. The
    # outcome must still be recorded (a failure: the call timed out) and the half-open
    # permit returned, or the provider stays half-open with its quota in use for good.
    config = CircuitBreakerConfig(
        failure_threshold=1,
        recovery_timeout=10.0,
        success_threshold=1,
        half_open_max_calls=1,
        timeout_duration=5.0,
    )
    async with open_registry(health_check_interval=None, default_breaker=config) as registry:
        name = registry.register("H", "llm", FakeProvider("a"), name="a")
        registry.force_open(name, 1.0)
        await trio.sleep(2.0)  # the OPEN timer has moved it to HALF_OPEN

        async def cleanup_fails_when_cancelled() -> None:
            try:
                await trio.sleep_forever()
            finally:
                raise RuntimeError("cleanup failed")

        async def leased_call() -> None:
            async with registry.lease("H", "llm"), trio.open_nursery() as nursery:
                assert stats(registry, name)["probes_in_flight"] == 1
                nursery.start_soon(cleanup_fails_when_cancelled)
                await trio.sleep_forever()

        with pytest.raises(trio.TooSlowError) as caught:
            await leased_call()
        cause = caught.value.__cause__  # the helper's error is kept, not lost
        assert isinstance(cause, ExceptionGroup)
        assert cause.subgroup(RuntimeError) is not None
        after = stats(registry, name)
        assert after["total_failures"] == 1
        assert after["probes_in_flight"] == 0
        assert after["state"] == "open"  # a failed probe re-opens the breaker
