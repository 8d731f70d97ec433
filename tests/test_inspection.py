"""get_provider_info, health_status, explain, health_check_all, events, exports."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

import ciris_actors
from ciris_actors import (
    BreakerTransition,
    EventsDropped,
    Priority,
    ProviderClosed,
    ProviderRegistered,
    ProviderUnregistered,
    Registry,
    ResolveMiss,
    open_registry,
)
from ciris_actors.selection import format_span
from ciris_actors.testing import FakeProvider, check_provider

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


async def test_events_carry_name_and_time_and_slow_subscribers_lose_oldest(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    async with registry.events(max_buffer=3) as events:
        name = registry.register("H", "llm", Plain())
        registry.unregister(name)
        for _ in range(3):
            registry.get_service_nowait("H", "llm")  # three misses
        dropped = await events.receive()
        assert isinstance(dropped, EventsDropped)
        assert dropped.count == 2
        remaining = [await events.receive() for _ in range(3)]
        assert all(isinstance(e, ResolveMiss) for e in remaining)
    async with registry.events() as events:
        name = registry.register("H", "llm", Plain())
        registry.report_failure(name)
        registry.report_failure(name)
        registry.unregister(name)
        received = [await events.receive() for _ in range(3)]
    assert isinstance(received[0], ProviderRegistered)
    assert isinstance(received[1], BreakerTransition)
    assert isinstance(received[2], ProviderUnregistered)
    assert {e.name for e in received} == {name}


async def test_event_stream_ends_when_the_registry_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen = []
    async with trio.open_nursery() as nursery, open_registry() as registry:

        async def listen() -> None:
            async with registry.events() as events:
                async for event in events:
                    seen.append(event)

        nursery.start_soon(listen)
        await trio.testing.wait_all_tasks_blocked()
        registry.register("H", "llm", Plain())
    # The provider's closing at exit is the last thing a subscriber hears.
    assert [type(e) for e in seen] == [ProviderRegistered, ProviderClosed]


async def test_conformance_check_passes_a_good_provider_and_names_problems(
    autojump_clock: trio.testing.MockClock,
) -> None:
    assert await check_provider(FakeProvider("good")) == []

    class Sloppy:
        def is_healthy(self) -> bool:
            return True

        async def start(self) -> None:
            await trio.sleep_forever()

    problems = await check_provider(Sloppy(), timeout=1.0)
    assert any("is_healthy() is not a coroutine function" in p for p in problems)
    assert any("not routable within 1s" in p for p in problems)


def test_all_is_exactly_the_public_surface() -> None:
    public = {
        name
        for name in dir(ciris_actors)
        if not name.startswith("_") and not isinstance(getattr(ciris_actors, name), type(json))
    }
    assert set(ciris_actors.__all__) == public
    assert len(ciris_actors.__all__) == len(set(ciris_actors.__all__))
    for name in ciris_actors.__all__:
        obj = getattr(ciris_actors, name)
        assert obj.__module__ == "ciris_actors", name
    contract = {
        "Priority", "SelectionStrategy", "CircuitState", "CircuitBreakerConfig", "RestartPolicy",
        "RegistryError", "CircuitBreakerError", "NoServiceAvailable", "DuplicateProviderError",
        "UnknownProviderError", "HealthCheckProtocol", "CircuitBreaker", "open_registry",
        "Registry",
    }  # fmt: skip
    assert contract <= set(ciris_actors.__all__)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0.42, "0.4 s"), (9.96, "10.0 s"), (52.4, "52 s"), (840.0, "14 min"), (12_600.0, "3.5 h")],
)
def test_spans_are_written_for_people(seconds: float, words: str) -> None:
    assert format_span(seconds) == words
