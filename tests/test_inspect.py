"""Inspection (``_inspect.py``): get_provider_info, health_status, explain and
health_check_all, and that reading the registry never changes it."""

from __future__ import annotations

import json

import trio
import trio.testing

from ciris_actors import (
    BreakerTransition,
    Priority,
    Registry,
    open_registry,
)
from ciris_actors.testing import FakeProvider

from .helpers import Plain


async def test_provider_info_is_json_ready_and_complete(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    registry.register(
        "H", "llm", FakeProvider("a"), "HIGH", ["chat"], metadata={"model": "gpt-4"}, name="a"
    )
    registry.register_service("llm", Plain(), priority_group=1, name="g")
    registry.register("Other", "memory", Plain(), name="m")
    await trio.testing.wait_all_tasks_blocked()
    info = registry.get_provider_info()
    json.dumps(info)
    (a,) = info["handlers"]["H"]["llm"]
    assert a["priority"] == "HIGH"
    assert a["capabilities"] == ["chat"]
    assert a["metadata"] == {"model": "gpt-4"}
    assert (a["health"], a["actor_status"], a["circuit_breaker_state"]) == (
        "healthy",
        "running",
        "closed",
    )
    assert info["global_services"]["llm"][0]["name"] == "g"
    assert set(info["circuit_breaker_stats"]) == {"a", "g", "m"}
    assert info["circuit_breaker_stats"]["a"]["state"] == "closed"
    filtered = registry.get_provider_info(handler="H", service_type="llm")
    assert set(filtered["handlers"]) == {"H"}
    assert set(filtered["circuit_breaker_stats"]) == {"a", "g"}


async def test_health_status_overall_and_unknown(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    sick = FakeProvider("sick", healthy=False)
    registry.register("H", "llm", FakeProvider("ok"), name="ok")
    registry.register("H", "llm", sick, name="sick")
    registry.register("H", "llm", Plain(), name="plain")
    await trio.testing.wait_all_tasks_blocked()
    status = registry.health_status()
    json.dumps(status)
    assert status["overall_health"] == "degraded"
    assert (status["total_services"], status["healthy_services"]) == (3, 1)
    assert (status["unhealthy_services"], status["unknown_services"]) == (1, 1)
    assert status["service_types"]["llm"]["providers"]["plain"]["health"] == "unknown"
    registry.force_open("ok")
    registry.force_open("plain")
    assert registry.health_status()["overall_health"] == "critical"


async def test_health_status_is_healthy_when_all_is_well(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    registry.register("H", "llm", FakeProvider("ok"))
    await registry.wait_ready(5.0)
    assert registry.health_status()["overall_health"] == "healthy"


async def test_explain_names_every_candidate_with_its_reason(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    registry.register("H", "llm", Plain(), Priority.CRITICAL, ["structured_output"], name="opened")
    registry.register("H", "llm", Plain(), Priority.HIGH, ["chat"], name="incapable")
    registry.register("H", "llm", Plain(), Priority.LOW, ["structured_output"], name="winner")
    registry.register_service("llm", Plain(), name="global-pool")
    registry.force_open("opened")
    explanation = registry.explain("H", "llm", ["structured_output"])
    assert explanation.chosen == "winner"
    verdicts = {c.name: (c.verdict, c.reason) for c in explanation.candidates}
    assert verdicts["opened"][0] == "skipped"
    # In words, not as a reading of trio's clock; the deadline itself is kept beside it.
    assert verdicts["opened"][1] == "circuit open for another 10 s"  # FAST_BREAKER's
    opened = next(c for c in explanation.candidates if c.name == "opened")
    assert opened.open_until == trio.current_time() + 10.0
    assert explanation.as_dict()["candidates"][0]["open_until"] == opened.open_until
    assert verdicts["incapable"] == ("skipped", "lacks capabilities ['structured_output']")
    assert verdicts["winner"] == ("chosen", "first available")
    assert verdicts["global-pool"][0] == "not reached"
    table = str(explanation)
    for name in ("opened", "incapable", "winner", "global-pool"):
        assert name in table
    json.dumps(explanation.as_dict())
    # Explaining changes nothing: the resolve still picks the same provider.
    assert registry.explain("H", "llm", ["structured_output"]).chosen == "winner"


async def test_health_check_all_keys_results_and_timeouts(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    registry.register("H", "llm", FakeProvider("ok"), name="ok")
    registry.register_service("llm", FakeProvider("bad", healthy=False), name="bad")
    registry.register("H", "llm", FakeProvider("hang", health_latency=float("inf")), name="hang")
    registry.register("H", "llm", Plain(), name="plain")
    start = trio.current_time()
    results = await registry.health_check_all()
    assert results == {"*.llm.bad": False, "H.llm.hang": False, "H.llm.ok": True}
    assert trio.current_time() - start <= 5.0 + 1e-6  # concurrent, each under 5 s


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
