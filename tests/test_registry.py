"""Registration, ordering and strategies of the Registry, on virtual time."""

from __future__ import annotations

import asyncio
import collections
import gc
import math
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from ciris_actors import (
    CircuitBreakerConfig,
    DuplicateProviderError,
    Priority,
    ProviderRegistered,
    Registry,
    RegistryError,
    RestartPolicy,
    SelectionStrategy,
    open_registry,
)
from ciris_actors._actors import supervisor as supervisor_module
from ciris_actors.selection import plan_insert
from ciris_actors.testing import FakeProvider

from .helpers import Plain, snapshot


async def test_plain_provider_is_routable_as_soon_as_register_returns(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    provider = Plain("a")
    name = registry.register("H", "llm", provider)
    assert registry.get_service_nowait("H", "llm") is provider
    assert name.startswith("Plain_")


async def test_explicit_name_is_kept_and_generated_names_are_unique(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    assert registry.register("H", "llm", Plain("a"), name="openai") == "openai"
    generated = {registry.register("H", "llm", Plain(str(i))) for i in range(5)}
    assert len(generated) == 5
    assert "openai" not in generated


async def test_handler_specific_before_global_unless_fallback_disabled(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    specific, glob = Plain("specific"), Plain("global")
    registry.register_service("llm", glob, priority=Priority.CRITICAL)
    registry.register("H", "llm", specific, priority=Priority.LOW, priority_group=3)
    assert await registry.get_service("H", "llm") is specific
    # Another handler only sees the global provider.
    assert await registry.get_service("Other", "llm") is glob
    assert await registry.get_service("Other", "llm", fallback_to_global=False) is None
    registry.force_open(registry.get_provider_info()["handlers"]["H"]["llm"][0]["name"])
    assert await registry.get_service("H", "llm") is glob
    assert await registry.get_service("H", "llm", fallback_to_global=False) is None


async def test_groups_ascending_then_priority_then_registration_order(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    names = {}
    for label, prio, group in [
        ("g1-critical", Priority.CRITICAL, 1),
        ("g0-low", Priority.LOW, 0),
        ("g0-high-first", Priority.HIGH, 0),
        ("g0-high-second", Priority.HIGH, 0),
    ]:
        names[label] = registry.register("H", "llm", Plain(label), prio, priority_group=group)
    order = []
    for _ in range(4):
        chosen = registry.get_service_nowait("H", "llm")
        assert chosen is not None
        order.append(chosen.label)
        registry.force_open(names[chosen.label])
    assert order == ["g0-high-first", "g0-high-second", "g0-low", "g1-critical"]
    assert registry.get_service_nowait("H", "llm") is None


async def test_capabilities_are_a_subset_match(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    basic, rich = Plain("basic"), Plain("rich")
    registry.register("H", "llm", basic, Priority.CRITICAL, capabilities=["chat"])
    registry.register("H", "llm", rich, Priority.LOW, capabilities=["chat", "structured_output"])
    assert await registry.get_service("H", "llm", ["chat"]) is basic
    assert await registry.get_service("H", "llm", ["structured_output"]) is rich
    assert await registry.get_service("H", "llm", frozenset({"chat", "structured_output"})) is rich
    assert await registry.get_service("H", "llm", ["vision"]) is None


async def test_round_robin_rotates_and_a_skipped_provider_does_not_skew_it(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    names = [
        registry.register("H", "llm", Plain(label), strategy="round_robin", name=label)
        for label in ("a", "b", "c")
    ]
    picks = [registry.get_service_nowait("H", "llm").label for _ in range(6)]
    assert picks == ["a", "b", "c", "a", "b", "c"]
    registry.force_open(names[1])
    picks = [registry.get_service_nowait("H", "llm").label for _ in range(4)]
    assert picks == ["a", "c", "a", "c"]
    registry.reset_circuit_breaker(names[1])
    picks = [registry.get_service_nowait("H", "llm").label for _ in range(3)]
    assert picks == ["a", "b", "c"]


async def test_group_strategy_is_that_of_its_first_provider(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    registry.register("H", "llm", Plain("first"), Priority.HIGH, strategy="fallback")
    registry.register("H", "llm", Plain("second"), Priority.LOW, strategy="round_robin")
    picks = {registry.get_service_nowait("H", "llm").label for _ in range(4)}
    assert picks == {"first"}


async def test_unregister_and_update_priority_take_effect_for_the_next_resolve(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    a, b = Plain("a"), Plain("b")
    name_a = registry.register("H", "llm", a, Priority.HIGH)
    name_b = registry.register("H", "llm", b, Priority.LOW)
    assert registry.get_service_nowait("H", "llm") is a
    registry.update_priority(name_b, priority="CRITICAL")
    assert registry.get_service_nowait("H", "llm") is b
    registry.update_priority(name_b, priority_group=1)
    assert registry.get_service_nowait("H", "llm") is a
    registry.unregister(name_a)
    assert registry.get_service_nowait("H", "llm") is b
    registry.unregister(name_b)
    assert registry.get_service_nowait("H", "llm") is None


async def test_update_priority_can_switch_a_group_to_round_robin(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    first = registry.register("H", "llm", Plain("a"))
    registry.register("H", "llm", Plain("b"))
    assert {registry.get_service_nowait("H", "llm").label for _ in range(4)} == {"a"}
    registry.update_priority(first, strategy=SelectionStrategy.ROUND_ROBIN)
    assert [registry.get_service_nowait("H", "llm").label for _ in range(4)] == [
        "a",
        "b",
        "a",
        "b",
    ]


async def test_started_provider_is_routable_only_after_start_and_first_health_check(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    slow = FakeProvider("slow", start_delay=3.0)
    registry.register("H", "llm", slow)
    assert registry.get_service_nowait("H", "llm") is None
    assert await registry.wait_ready(timeout=10.0)
    assert trio.current_time() >= 3.0
    assert slow.starts == 1
    assert slow.health_checks == 1
    assert registry.get_service_nowait("H", "llm") is slow


async def test_provider_failing_its_first_health_check_is_never_handed_out(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    sick = FakeProvider("sick", healthy=False)
    registry.register("H", "llm", sick)
    for _ in range(5):
        await trio.testing.wait_all_tasks_blocked()
        assert registry.get_service_nowait("H", "llm") is None
    assert sick.health_checks == 1
    assert not await registry.wait_ready(timeout=1.0)


async def test_wait_ready_wakes_on_readiness_not_on_a_poll(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    provider = FakeProvider("late", start_delay=7.0)
    start = trio.current_time()

    async def register_later() -> None:
        await trio.sleep(2.0)
        registry.register_service("llm", provider)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(register_later)
        assert await registry.wait_ready(timeout=20.0)
        # Ready exactly when the provider's start finished: 2 s + 7 s of virtual time.
        assert trio.current_time() - start == pytest.approx(9.0)


async def test_periodic_health_check_removes_and_restores_a_provider(
    autojump_clock: trio.testing.MockClock,
) -> None:
    primary, backup = FakeProvider("primary"), FakeProvider("backup")
    async with open_registry(health_check_interval=5.0) as registry:
        registry.register("H", "llm", primary, Priority.HIGH)
        registry.register("H", "llm", backup, Priority.LOW)
        assert await registry.wait_ready(5.0, ["llm"])
        await trio.sleep(0.1)
        assert registry.get_service_nowait("H", "llm") is primary
        primary.healthy = False
        await trio.sleep(5.0)
        assert registry.get_service_nowait("H", "llm") is backup
        primary.healthy = True
        await trio.sleep(5.0)
        assert registry.get_service_nowait("H", "llm") is primary


async def test_hanging_health_check_times_out_and_never_blocks_a_resolve(
    autojump_clock: trio.testing.MockClock,
) -> None:
    primary, backup = FakeProvider("primary"), FakeProvider("backup")
    async with open_registry(health_check_interval=5.0) as registry:
        registry.register("H", "llm", primary, Priority.HIGH)
        registry.register("H", "llm", backup, Priority.LOW)
        assert await registry.wait_ready(5.0, ["llm"])
        primary.health_latency = float("inf")
        start = trio.current_time()
        await trio.sleep(5.5)  # the next check starts and hangs
        # Resolving does not wait for the hanging check.
        with trio.testing.assert_no_checkpoints():
            assert registry.get_service_nowait("H", "llm") is primary
        await trio.sleep(40.0)  # past timeout_duration (30 s default): the check failed
        assert registry.get_service_nowait("H", "llm") is backup
        info = registry.get_provider_info()["handlers"]["H"]["llm"][0]
        assert info["health"] == "unhealthy"
        assert "timed out" in info["health_reason"]
        assert trio.current_time() - start < 50.0


async def test_reported_success_returns_the_permit_and_closes(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    name = registry.register("H", "llm", Plain("a"))
    registry.force_open(name, duration=1.0)
    await trio.sleep(1.0)
    assert registry.get_service_nowait("H", "llm") is not None
    registry.report_success(name)  # success_threshold=1 in FAST_BREAKER
    stats = registry.get_provider_info()["circuit_breaker_stats"][name]
    assert (stats["state"], stats["probes_in_flight"]) == ("closed", 0)
    await trio.sleep(10.0)  # the expired permit deadline must not count against it
    assert registry.get_provider_info()["circuit_breaker_stats"][name]["state"] == "closed"


async def test_mock_providers_only_come_from_get_service_with_fallback(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mock = Plain("mock")
    async with open_registry(allow_mock_services=True) as registry:
        registry.register_service("llm", mock, Priority.FALLBACK, mock=True)
        assert await registry.get_service("H", "llm") is None
        assert await registry.get_service_with_fallback("H", "llm") is mock
        real = Plain("real")
        registry.register_service("llm", real)
        assert await registry.get_service_with_fallback("H", "llm") is real
    async with open_registry(allow_mock_services=False) as registry:
        registry.register_service("llm", mock, mock=True)
        assert await registry.get_service_with_fallback("H", "llm") is None


async def test_force_open_without_duration_lasts_recovery_timeout_even_after_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = CircuitBreakerConfig(
        failure_threshold=1, recovery_timeout=2.0, success_threshold=1, recovery_backoff=4.0
    )
    async with open_registry(default_breaker=config) as registry:
        name = registry.register("H", "llm", Plain("a"))
        registry.report_failure(name)  # open for 2 s
        await trio.sleep(2.0)
        assert registry.get_service_nowait("H", "llm") is not None  # half-open probe
        registry.report_failure(name)  # re-opens, backed off to 8 s
        registry.force_open(name)
        stats = registry.get_provider_info()["circuit_breaker_stats"][name]
        assert stats["next_attempt_time"] - trio.current_time() == pytest.approx(2.0)


async def test_a_report_without_a_get_service_permit_does_not_free_a_lease_permit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = CircuitBreakerConfig(success_threshold=2, half_open_max_calls=1)
    async with open_registry(default_breaker=config) as registry:
        name = registry.register("H", "llm", Plain("a"))
        registry.force_open(name, duration=1.0)
        await trio.sleep(1.0)
        async with registry.lease("H", "llm"):
            registry.report_success(name)  # about some other call: holds no permit
            stats = registry.get_provider_info()["circuit_breaker_stats"][name]
            assert stats["probes_in_flight"] == 1
            assert registry.get_service_nowait("H", "llm") is None  # quota still full


async def test_a_health_check_from_before_a_restart_does_not_vouch_for_the_new_life(
    autojump_clock: trio.testing.MockClock,
) -> None:
    provider = FakeProvider("a", health_latency=5.0)
    policy = RestartPolicy(initial=1.0, jitter=0.0)
    async with open_registry(restart_policy=policy, health_check_interval=None) as registry:
        registry.register("H", "llm", provider)
        await trio.sleep(1.0)  # start returned; the first (5 s) health check is running
        provider.crash()
        await trio.sleep(2.0)  # restarted at t=1+1; a fresh check started
        await trio.sleep(2.5)  # t=5.5: the old check has returned True, the new one not
        assert registry.get_service_nowait("H", "llm") is None
        assert await registry.wait_ready(10.0, ["llm"])  # once the new check passes


async def test_health_check_all_during_start_does_not_make_a_provider_routable(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    provider = FakeProvider("a", start_delay=3.0)
    registry.register("H", "llm", provider)
    await trio.sleep(1.0)
    assert await registry.health_check_all() == {
        f"H.llm.{registry.explain('H', 'llm').candidates[0].name}": True
    }
    provider.healthy = False
    await trio.sleep(3.0)  # start returns; its own first check fails
    assert registry.get_service_nowait("H", "llm") is None


async def test_wait_ready_accepts_an_infinite_timeout(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    registry.register("H", "llm", Plain("a"))
    assert await registry.wait_ready(math.inf)


async def test_memory_returns_to_baseline_when_round_robin_providers_go(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Each cycle uses a routing key never seen before (a fresh handler name), as a
    # runtime that registers per-session handlers does; what the registry keeps for a
    # key (its plan, its round-robin position) must go with the key's last provider.
    async with open_registry(health_check_interval=None) as registry:

        async def cycles(first: int, count: int) -> None:
            for i in range(first, first + count):
                handler = f"session-{i}"
                name = registry.register(handler, "llm", Plain(handler), strategy="round_robin")
                assert registry.get_service_nowait(handler, "llm") is not None
                registry.unregister(name)
                await trio.testing.wait_all_tasks_blocked()  # its actor has finished

        await cycles(0, 200)  # warm up: caches and free lists reach their size
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            await cycles(200, 3000)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert grown < 64 * 1024, f"{grown} bytes kept after 3000 providers came and went"


def test_open_registry_under_asyncio_says_it_needs_trio() -> None:
    async def main() -> None:
        async with open_registry():
            pass  # pragma: no cover

    with pytest.raises(RuntimeError, match=r"runs on trio: use `async with open_registry\(\)`"):
        asyncio.run(main())


def test_a_registry_made_directly_says_how_to_get_one() -> None:
    with pytest.raises(TypeError, match="use `async with open_registry"):
        Registry()


async def test_a_permit_from_an_earlier_half_open_period_is_not_returned_by_a_report(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = CircuitBreakerConfig(
        recovery_timeout=1.0, success_threshold=2, half_open_max_calls=1, timeout_duration=30.0
    )
    async with open_registry(default_breaker=config) as registry:
        name = registry.register("H", "llm", Plain())
        registry.force_open(name, 1.0)
        await trio.sleep(1.0)
        assert registry.get_service_nowait("H", "llm") is not None  # A's permit
        registry.force_open(name, 1.0)  # A's period ends without A reporting
        await trio.sleep(1.0)
        assert registry.get_service_nowait("H", "llm") is not None  # B's permit
        registry.report_success(name)  # B's report returns B's permit
        assert registry.get_service_nowait("H", "llm") is not None  # so C may probe
        stats = registry.get_provider_info()["circuit_breaker_stats"][name]
        assert (stats["state"], stats["success_count"]) == ("half_open", 1)


async def test_wait_ready_raises_when_the_registry_closes_under_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outcome: list[BaseException] = []
    async with trio.open_nursery() as nursery, open_registry(["llm"]) as registry:

        async def wait() -> None:
            try:
                await registry.wait_ready(timeout=3600.0)
            except RegistryError as error:
                outcome.append(error)

        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
    assert len(outcome) == 1
    assert "closed" in str(outcome[0])


async def test_required_services_keep_their_order(autojump_clock: trio.testing.MockClock) -> None:
    order = ["memory", "llm", "audit", "communication", "llm"]
    async with open_registry(required_services=iter(order)) as registry:
        assert registry.health_status()["required_services"] == [
            "memory",
            "llm",
            "audit",
            "communication",
        ]


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


def _broken_plan_operation(plan: object, member: object) -> None:
    raise RuntimeError("plan operation failed")


async def test_a_register_whose_plan_insert_fails_raises_and_changes_nothing(
    autojump_clock: trio.testing.MockClock, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error reaches the caller, and no half-registered provider is left (one the
    registry's exit would wait for forever)."""
    registry.register("H", "llm", Plain("a"), name="a")
    before = snapshot(registry)
    async with registry.events() as events:
        monkeypatch.setattr(supervisor_module, "plan_insert", _broken_plan_operation)
        for provider in (Plain("x"), FakeProvider("x")):
            with pytest.raises(RuntimeError, match="plan operation failed"):
                registry.register("H", "llm", provider, name="x")
            with pytest.raises(RuntimeError, match="plan operation failed"):
                registry.register("Other", "memory", provider, name="x")
        assert snapshot(registry) == before
        monkeypatch.undo()
        registry.register("H", "llm", FakeProvider("x"), name="x")  # the name is free
        first = await events.receive()
    assert (type(first), first.name) == (ProviderRegistered, "x")
    assert registry.get_service_nowait("H", "llm").label == "a"


async def test_an_unregister_whose_plan_remove_fails_raises_and_changes_nothing(
    autojump_clock: trio.testing.MockClock, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider stays registered, routed to and running, as before the call."""
    provider = FakeProvider("a")
    registry.register("H", "llm", provider, name="a")
    await registry.wait_ready(5.0)
    before = snapshot(registry)
    async with registry.events() as events:
        monkeypatch.setattr(supervisor_module, "plan_remove", _broken_plan_operation)
        with pytest.raises(RuntimeError, match="plan operation failed"):
            registry.unregister("a")
        assert snapshot(registry) == before
        monkeypatch.undo()
        registry.register("H", "llm", Plain("b"), name="b")
        first = await events.receive()
    assert (type(first), first.name) == (ProviderRegistered, "b")
    assert registry.get_service_nowait("H", "llm") is provider
    await trio.testing.wait_all_tasks_blocked()
    assert provider.closes == 0
    registry.unregister("a")  # and it still can be
    assert registry.get_service_nowait("H", "llm").label == "b"


async def test_an_update_priority_whose_new_place_fails_raises_and_keeps_the_old_place(
    autojump_clock: trio.testing.MockClock, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register("H", "llm", Plain("a"), Priority.HIGH, name="a")
    registry.register("H", "llm", Plain("b"), Priority.LOW, name="b")
    before = snapshot(registry)
    monkeypatch.setattr(supervisor_module, "plan_insert", _fails_once(plan_insert))
    with pytest.raises(RuntimeError, match="plan operation failed"):
        registry.update_priority("b", priority="CRITICAL", priority_group=2)
    assert snapshot(registry) == before
    assert registry.get_service_nowait("H", "llm").label == "a"


def _fails_once(operation: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    calls = 0

    def flaky(plan: Any, member: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            _broken_plan_operation(plan, member)
        operation(plan, member)

    return flaky
