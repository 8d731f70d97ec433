"""Regression tests for the original registry's known defects.

Each test fails on a naive port of the seed design (see docs/semantics.md, "Deviations").
"""

from __future__ import annotations

import collections

import pytest
import trio
import trio.testing

from ciris_actors import (
    BreakerTransition,
    CircuitBreakerConfig,
    DuplicateProviderError,
    Registry,
    open_registry,
)
from ciris_actors.testing import FakeProvider

from .helpers import Plain


async def test_concurrent_round_robin_resolves_spread_over_the_pool(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The seed awaited is_healthy between reading and advancing the round-robin index,
    so concurrent resolves all read the same index and picked the same provider."""
    pool = [FakeProvider(f"p{i}", health_latency=1.0) for i in range(3)]
    picks: list[str] = []
    async with open_registry() as registry:
        for provider in pool:
            registry.register("H", "llm", provider, strategy="round_robin")
        assert await registry.wait_ready(5.0, ["llm"])

        async def resolve() -> None:
            provider = await registry.get_service("H", "llm")
            picks.append(provider.name)

        async with trio.open_nursery() as nursery:
            for _ in range(30):
                nursery.start_soon(resolve)
    assert collections.Counter(picks) == {"p0": 10, "p1": 10, "p2": 10}


async def test_round_robin_survives_unregister_of_the_last_chosen(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    """The seed kept an integer index that pointed past the end after an unregister."""
    names = [registry.register("H", "llm", Plain(x), strategy="round_robin", name=x) for x in "abc"]
    for _ in range(3):
        registry.get_service_nowait("H", "llm")  # the cursor now stands on "c"
    registry.unregister(names[2])
    assert [registry.get_service_nowait("H", "llm").label for _ in range(3)] == ["a", "b", "a"]
    registry.unregister(names[0])
    registry.unregister(names[1])
    assert registry.get_service_nowait("H", "llm") is None
    registry.register("H", "llm", Plain("d"), strategy="round_robin")
    assert registry.get_service_nowait("H", "llm").label == "d"


async def test_round_robin_state_is_per_service_type_even_for_a_shared_class(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    """The seed keyed rotation state by provider class, so two service types served by
    the same class shared (and overran) one index."""
    for x in "ab":
        registry.register("H", "llm", Plain(f"llm-{x}"), strategy="round_robin")
    for x in "xyz":
        registry.register("H", "memory", Plain(f"mem-{x}"), strategy="round_robin")
    llm, memory = [], []
    for _ in range(6):
        llm.append(registry.get_service_nowait("H", "llm").label)
        memory.append(registry.get_service_nowait("H", "memory").label)
    assert llm == ["llm-a", "llm-b"] * 3
    assert memory == ["mem-x", "mem-y", "mem-z"] * 2


async def test_a_lookup_is_not_counted_as_a_breaker_success(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    """The seed recorded a success on every resolve, resetting the consecutive-failure
    count, so a provider failing every real call never opened."""
    name = registry.register("H", "llm", Plain("a"))  # failure_threshold=2
    registry.report_failure(name)
    for _ in range(5):
        assert await registry.get_service("H", "llm") is not None
    registry.report_failure(name)
    assert await registry.get_service("H", "llm") is None
    stats = registry.get_provider_info()["circuit_breaker_stats"][name]
    assert (stats["state"], stats["total_successes"]) == ("open", 0)


async def test_half_open_admits_no_more_than_its_probe_quota(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The seed's HALF_OPEN admitted every request, so a recovering provider took the
    full load at once."""
    config = CircuitBreakerConfig(recovery_timeout=5.0, success_threshold=3, half_open_max_calls=2)
    async with open_registry(default_breaker=config) as registry:
        name = registry.register("H", "llm", Plain("a"))
        registry.force_open(name)
        await trio.sleep(5.0)
        handed_out = [registry.get_service_nowait("H", "llm") for _ in range(10)]
        assert sum(p is not None for p in handed_out) == 2
        registry.report_success(name)
        assert registry.get_service_nowait("H", "llm") is not None
        assert registry.get_service_nowait("H", "llm") is None


async def test_listing_providers_does_not_flip_open_to_half_open(
    mock_clock: trio.testing.MockClock,
) -> None:
    """The seed's is_available() moved OPEN to HALF_OPEN when read, so a dashboard
    polling get_provider_info changed the breakers it displayed."""
    async with open_registry() as registry:
        name = registry.register("H", "llm", Plain("a"))
        async with registry.events() as events:
            registry.force_open(name, duration=10.0)
            assert isinstance(await events.receive(), BreakerTransition)
            await trio.testing.wait_all_tasks_blocked()
            mock_clock.jump(11.0)
            # Before any task runs again: reading must change nothing.
            for _ in range(3):
                info = registry.get_provider_info()
                registry.health_status()
                registry.explain("H", "llm")
            assert info["circuit_breaker_stats"][name]["state"] == "open"
            # The breaker actor owns the transition, and publishes it.
            half_open = await events.receive()
        assert isinstance(half_open, BreakerTransition)
        assert half_open.new.value == "half_open"


async def test_a_hanging_is_healthy_never_hangs_get_service(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The seed awaited is_healthy inside get_service."""
    provider = FakeProvider("a")
    async with open_registry(health_check_interval=1.0) as registry:
        registry.register("H", "llm", provider)
        assert await registry.wait_ready(5.0, ["llm"])
        provider.health_latency = float("inf")
        await trio.sleep(1.5)  # a health check is now hanging
        before = trio.current_time()
        assert await registry.get_service("H", "llm") is provider
        assert trio.current_time() == before


async def test_reset_undoes_force_open(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    """The seed's force-open flag survived reset_circuit_breakers()."""
    provider = Plain("a")
    name = registry.register("H", "llm", provider)
    registry.force_open(name, duration=1000.0)
    assert registry.get_service_nowait("H", "llm") is None
    registry.reset_circuit_breakers()
    assert registry.get_service_nowait("H", "llm") is provider
    stats = registry.get_provider_info()["circuit_breaker_stats"][name]
    assert (stats["state"], stats["forced_open"]) == ("closed", False)


async def test_duplicate_names_do_not_shadow_each_others_breakers(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    """The seed named providers by class and kept breakers in a dict by name, so two
    providers of one class shared (or overwrote) one breaker."""
    a, b = Plain("a"), Plain("b")
    name_a = registry.register("H", "llm", a, "HIGH")
    name_b = registry.register("H", "llm", b, "LOW")
    assert name_a != name_b
    with pytest.raises(DuplicateProviderError):
        registry.register("H", "llm", Plain("c"), name=name_a)
    registry.report_failure(name_a)
    registry.report_failure(name_a)
    stats = registry.get_provider_info()["circuit_breaker_stats"]
    assert (stats[name_a]["state"], stats[name_b]["state"]) == ("open", "closed")
    assert registry.get_service_nowait("H", "llm") is b


async def test_a_provider_without_is_healthy_is_unknown_not_healthy(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    """The seed counted every provider without is_healthy as healthy."""
    registry.register("H", "llm", Plain("a"))
    status = registry.health_status()
    assert (status["healthy_services"], status["unknown_services"]) == (0, 1)
    info = registry.get_provider_info()["handlers"]["H"]["llm"][0]
    assert info["health"] == "unknown"
    assert "H.llm." not in str(await registry.health_check_all())
