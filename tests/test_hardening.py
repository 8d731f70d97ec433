"""Regression tests for defects found in review: each failed before its fix."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from ciris_actors import (
    ActorCrashed,
    CircuitBreakerConfig,
    Registry,
    RegistryError,
    RegistryEvent,
    RestartPolicy,
    open_registry,
)
from ciris_actors.testing import check_provider

from .helpers import Plain


def test_restart_backoff_never_overflows_however_many_restarts() -> None:
    policy = RestartPolicy(max_restarts=100_000, within=86_400, initial=0.01, maximum=1.0)
    assert policy.delay(5000, random.Random(0)) <= 1.0
    assert policy.delay(5000, random.Random(0)) >= 0.9


async def test_a_crashed_provider_is_not_handed_out_while_it_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    closing = trio.Event()

    class SlowToClose:
        async def run(self) -> None:
            await trio.sleep(1.0)
            raise RuntimeError("crash")

        async def aclose(self) -> None:
            closing.set()
            await trio.sleep(2.0)

    provider = SlowToClose()
    policy = RestartPolicy(initial=1.0, jitter=0.0)
    async with open_registry(restart_policy=policy) as registry, registry.events() as events:
        registry.register("H", "llm", provider)
        assert registry.get_service_nowait("H", "llm") is provider
        await closing.wait()
        assert registry.get_service_nowait("H", "llm") is None
        while not isinstance(event := await events.receive(), ActorCrashed):
            pass
        assert event.time == pytest.approx(trio.current_time())  # before the close ends


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


async def test_leaving_the_events_block_wakes_a_blocked_reader(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    outcome: list[str] = []

    async with trio.open_nursery() as nursery, registry.events() as events:

        async def read() -> None:
            try:
                await events.receive()
            except trio.ClosedResourceError:
                outcome.append("closed")

        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
    assert outcome == ["closed"]


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


async def test_the_body_exception_keeps_its_own_context(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def body() -> None:
        async with open_registry():
            try:
                raise KeyError("first")
            except KeyError:
                raise ValueError("second") from None

    with pytest.raises(ValueError, match="second") as caught:
        await body()
    assert isinstance(caught.value.__context__, KeyError)
    assert caught.value.__suppress_context__


async def test_an_unregistered_providers_late_crash_is_not_reported_under_its_name(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class ShieldedStart:
        async def start(self) -> None:
            with trio.CancelScope(shield=True):
                await trio.sleep(1.0)
            raise RuntimeError("late crash")

    seen: list[RegistryEvent] = []
    async with open_registry() as registry, registry.events() as events:
        registry.register("H", "llm", ShieldedStart(), name="p")
        await trio.sleep(0.5)
        registry.unregister("p")
        replacement = Plain()
        registry.register("H", "llm", replacement, name="p")
        await trio.sleep(2.0)
        with trio.move_on_after(0):
            while True:
                seen.append(await events.receive())
        assert registry.get_service_nowait("H", "llm") is replacement
    assert not [e for e in seen if isinstance(e, ActorCrashed)]


async def test_call_with_a_bad_fn_raises_type_error_and_changes_no_breaker(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    names = [registry.register("H", "llm", Plain()) for _ in range(3)]

    def not_async(instance: object) -> str:
        return "oops"

    with pytest.raises(TypeError, match="fn"):
        await registry.call("H", "llm", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="awaitable"):
        await registry.call("H", "llm", not_async)  # type: ignore[arg-type]
    stats = registry.get_provider_info()["circuit_breaker_stats"]
    for name in names:
        assert (stats[name]["state"], stats[name]["total_failures"]) == ("closed", 0)


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


async def test_check_provider_reports_closing_problems_and_checks_health_after_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class HangingClose:
        async def aclose(self) -> None:
            with trio.CancelScope(shield=True):
                await trio.sleep(10.0)

    class RaisingClose:
        async def aclose(self) -> None:
            await trio.lowlevel.checkpoint()
            raise OSError("socket already gone")

    class NeedsStart:
        def __init__(self) -> None:
            self.client: object | None = None

        async def start(self) -> None:
            await trio.lowlevel.checkpoint()
            self.client = object()

        async def is_healthy(self) -> bool:
            await trio.lowlevel.checkpoint()
            return self.client is not None

    assert any("not closed within 1s" in p for p in await check_provider(HangingClose(), timeout=1))
    assert any("socket already gone" in p for p in await check_provider(RaisingClose()))
    assert await check_provider(NeedsStart()) == []


async def test_required_services_keep_their_order(autojump_clock: trio.testing.MockClock) -> None:
    order = ["memory", "llm", "audit", "communication", "llm"]
    async with open_registry(required_services=iter(order)) as registry:
        assert registry.health_status()["required_services"] == [
            "memory",
            "llm",
            "audit",
            "communication",
        ]


async def test_a_frozenset_of_non_strings_is_refused_like_a_list(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    with pytest.raises(TypeError, match="required_capabilities"):
        registry.get_service_nowait("H", "llm", frozenset({1}))  # type: ignore[arg-type]
