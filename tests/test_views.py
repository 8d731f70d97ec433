"""Registry.snapshot(), Registry.view() and ProviderView: the frozen views the edges
read, and the routing version."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing

from ciris_actors import (
    ActorStatus,
    CircuitBreakerConfig,
    Priority,
    ProviderView,
    Registry,
    SelectionStrategy,
    UnknownProviderError,
    open_registry,
)
from ciris_actors.testing import FakeProvider

from .helpers import Plain


async def test_snapshot_lists_providers_in_selection_order_and_filters_like_a_resolve(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    registry.register_service("llm", Plain("g"), name="global")
    registry.register("H", "llm", Plain("low"), Priority.LOW, name="h-low")
    registry.register("H", "llm", Plain("high"), Priority.HIGH, name="h-high")
    registry.register("H", "llm", Plain("g1"), priority_group=1, name="h-group1")
    registry.register("H", "memory", Plain("m"), name="h-memory")
    registry.register("Other", "llm", Plain("o"), name="other")
    names = [v.name for v in registry.snapshot()]
    assert names == ["h-high", "h-low", "h-group1", "other", "global", "h-memory"]
    assert [v.name for v in registry.snapshot("H", "llm")] == [
        "h-high",
        "h-low",
        "h-group1",
        "global",
    ]
    assert [v.name for v in registry.snapshot(service_type="memory")] == ["h-memory"]
    assert registry.snapshot("nobody", "memory") == ()


async def test_a_view_says_what_the_registry_knows_and_cannot_be_changed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=30.0)
    async with open_registry(required_services=["llm"], health_check_interval=None) as registry:
        provider = FakeProvider("a")
        registry.register(
            "H",
            "llm",
            provider,
            "HIGH",
            ["chat"],
            config,
            {"model": "m1"},
            2,
            "round_robin",
            name="a",
        )
        assert await registry.wait_ready(5.0)
        registry.report_failure("a")  # opens it (threshold 1)
        view = registry.view("a")
        assert view == registry.snapshot()[0]
        assert (view.name, view.handler, view.service_type) == ("a", "H", "llm")
        assert (view.priority, view.priority_group) == (Priority.HIGH, 2)
        assert view.strategy is SelectionStrategy.ROUND_ROBIN
        assert view.capabilities == {"chat"}
        assert view.metadata == {"model": "m1"}
        assert view.has_health_check
        assert view.health is True
        assert view.actor_status is ActorStatus.RUNNING
        assert view.routable
        assert not view.available  # its breaker is open
        assert view.breaker["state"] == "open"
        assert view.breaker_config is config
        assert view.transitions == {("closed", "open"): 1}
        assert view.health_checks_passed == 1
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            view.name = "b"  # type: ignore[misc]
        with pytest.raises(TypeError):
            view.metadata["model"] = "m2"  # type: ignore[index]
        assert registry.view("a").metadata == {"model": "m1"}
        # as_dict() is exactly the provider as get_provider_info lists it.
        listed = registry.get_provider_info()["handlers"]["H"]["llm"][0]
        assert view.as_dict() | {"available": listed["available"]} == listed
        with pytest.raises(UnknownProviderError):
            registry.view("nobody")


async def test_health_word_calls_a_failed_provider_unhealthy_whatever_its_last_check(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    registry.register("H", "llm", Plain("p"), name="p")
    view = registry.view("p")
    assert view.health is None
    assert view.health_word == "unknown"
    assert attrs.evolve(view, health=True).health_word == "healthy"
    assert attrs.evolve(view, health=False).health_word == "unhealthy"
    failed = attrs.evolve(view, health=True, actor_status=ActorStatus.FAILED)
    assert failed.health_word == "unhealthy"
    assert isinstance(view, ProviderView)


async def test_routing_version_changes_with_the_routing_table_only(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    before = registry.routing_version
    name = registry.register("H", "llm", Plain("p"))
    registered = registry.routing_version
    assert registered != before
    registry.force_open(name)
    registry.get_service_nowait("H", "llm")
    assert registry.routing_version == registered  # state and resolves: no change
    registry.update_priority(name, priority="LOW")
    moved = registry.routing_version
    assert moved != registered
    registry.unregister(name)
    assert registry.routing_version != moved


async def test_state_version_moves_with_everything_a_resolve_reads_but_the_clock(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    """A reader caching what it derives from views against ``state_version`` (the
    simulator's invariant checker) sees every change of state; ordinary calls that change
    no state leave it alone, so the cache holds."""
    provider = FakeProvider("p")
    name = registry.register("H", "llm", provider)
    await registry.wait_ready(5.0)
    changes: list[str] = []
    last = registry.state_version

    def moved(what: str) -> None:
        nonlocal last
        assert registry.state_version != last, f"{what} did not move state_version"
        changes.append(what)
        last = registry.state_version

    def still(what: str) -> None:
        assert registry.state_version == last, f"{what} moved state_version"

    registry.report_success(name)
    registry.report_failure(name)  # one of the two failures FAST_BREAKER needs
    registry.get_service_nowait("H", "llm")
    await registry.health_check_all()  # passes, as the last one did
    await trio.sleep(1.0)
    still("calls, and a health check, that changed no state")
    registry.report_failure(name)
    moved("the breaker opening")
    await trio.sleep(10.0)
    await trio.testing.wait_all_tasks_blocked()
    moved("the breaker going half-open on its timer")
    registry.reset_circuit_breaker(name)
    moved("a reset")
    registry.force_open(name, duration=100.0)
    moved("force_open")
    registry.force_open(name, duration=200.0)
    moved("force_open of an open breaker (a later deadline)")
    registry.update_circuit_breaker(name, CircuitBreakerConfig(half_open_max_calls=3))
    moved("a new breaker configuration")
    registry.reset_circuit_breaker(name)
    last = registry.state_version
    provider.healthy = False
    await registry.health_check_all()
    moved("a failed health check")
    provider.crash()
    await trio.testing.wait_all_tasks_blocked()
    moved("a crash")
    registry.update_priority(name, priority="LOW")
    moved("a move")
    registry.unregister(name)
    moved("an unregistration")
    assert len(changes) == 10
