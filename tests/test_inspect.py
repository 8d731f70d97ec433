"""Inspection (``_inspect.py``): get_provider_info, health_status, explain and
health_check_all, and that reading the registry never changes it."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from ciris_actors import (
    ActorFailed,
    BreakerTransition,
    CircuitBreakerConfig,
    NoServiceAvailable,
    Priority,
    Registry,
    RestartPolicy,
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


class HealthOnly:
    """A provider with a health check and nothing to start."""

    async def is_healthy(self) -> bool:
        await trio.lowlevel.checkpoint()
        return True


async def test_explain_names_the_actor_and_health_states_that_keep_providers_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """FAILED, unhealthy, starting and first-check-pending providers are skipped with
    their reason, and the provider a resolve would return is the one called chosen."""
    policy = RestartPolicy(max_restarts=0, jitter=0.0)
    async with open_registry(restart_policy=policy) as registry:
        async with registry.events() as events:
            registry.register("H", "llm", FakeProvider("failed", crash_on_start=1), "CRITICAL")
            registry.register("H", "llm", FakeProvider("sick", healthy=False), "HIGH", name="sick")
            registry.register("H", "llm", FakeProvider("ok"), "LOW", name="ok")
            while not isinstance(await events.receive(), ActorFailed):
                pass
        await registry.wait_ready(5.0)
        checked = await registry.health_check_all()  # sick's check is done, whatever ran first
        assert (checked["H.llm.ok"], checked["H.llm.sick"]) == (True, False)
        registry.register("H", "llm", FakeProvider("new"), "CRITICAL", name="starting")
        registry.register("H", "llm", HealthOnly(), "CRITICAL", name="pending")
        explanation = registry.explain("H", "llm")
        assert [(c.name, c.verdict, c.reason) for c in explanation.candidates] == [
            ("FakeProvider_0", "skipped", "actor failed"),
            ("starting", "skipped", "actor starting"),
            ("pending", "skipped", "first health check pending"),
            ("sick", "skipped", "last health check failed"),
            ("ok", "chosen", "first available"),
        ]
        assert explanation.chosen == "ok"
        assert registry.get_service_nowait("H", "llm").name == "ok"


async def test_explain_says_when_a_half_open_probe_quota_is_in_use(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    config = CircuitBreakerConfig(success_threshold=1, recovery_timeout=10.0)
    registry.register("H", "llm", Plain("a"), circuit_breaker_config=config, name="a")
    registry.force_open("a", duration=1.0)
    await trio.sleep(1.0)
    assert registry.get_service_nowait("H", "llm").label == "a"  # takes the one permit
    explanation = registry.explain("H", "llm")
    assert [(c.verdict, c.reason) for c in explanation.candidates] == [
        ("skipped", "circuit half-open, probe quota in use")
    ]
    assert explanation.chosen is None


async def test_explain_shows_the_round_robin_order_a_resolve_will_take(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    for x in "abc":
        registry.register("H", "llm", Plain(x), strategy="round_robin", name=x)
    assert [registry.get_service_nowait("H", "llm").label for _ in range(2)] == ["a", "b"]
    explanation = registry.explain("H", "llm")
    assert [(c.name, c.verdict, c.reason) for c in explanation.candidates] == [
        ("c", "chosen", "next in rotation"),
        ("a", "not reached", "an earlier candidate was chosen"),
        ("b", "not reached", "an earlier candidate was chosen"),
    ]
    assert registry.get_service_nowait("H", "llm").label == "c"


async def test_no_service_available_from_call_lists_each_attempt_once_and_every_skip(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    """A provider the call tried is listed with its error, not again as skipped."""
    registry.register("H", "llm", FakeProvider("a", failing=True), "HIGH", name="a")
    registry.register("H", "llm", FakeProvider("sick", healthy=False), name="sick")
    registry.register_service("llm", FakeProvider("b", failing=True), name="b")
    await registry.wait_ready(5.0)

    async def ask(provider: FakeProvider) -> str:
        return await provider.handle("x")

    with pytest.raises(NoServiceAvailable) as caught:
        await registry.call("H", "llm", ask)
    error = caught.value
    assert [a.name for a in error.attempts] == ["a", "b"]
    assert [(s.name, s.reason) for s in error.skipped] == [("sick", "last health check failed")]
    assert str(error).endswith(
        "; candidates: a: failed (RuntimeError: a: request failed);"
        " b: failed (RuntimeError: b: request failed); sick: last health check failed"
    )
