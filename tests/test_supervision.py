"""Provider lifecycles, restarts under the policy, FAILED, escalation, and shutdown."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings, strategies as st

from ciris_actors import (
    ActorCrashed,
    ActorFailed,
    ActorRestarted,
    ProviderClosed,
    RegistryError,
    RegistryEvent,
    RestartPolicy,
    open_registry,
)
from ciris_actors.testing import FakeProvider

from .conftest import run_on_virtual_time
from .helpers import Plain, TaskCounter


class CrashingProvider:
    """``run()`` raises after each duration in *schedule*, then runs forever."""

    def __init__(self, schedule: list[float]) -> None:
        self.schedule = list(schedule)
        self.starts = 0
        self.closes = 0

    async def start(self) -> None:
        self.starts += 1
        await trio.lowlevel.checkpoint()

    async def run(self) -> None:
        if not self.schedule:
            await trio.sleep_forever()
        await trio.sleep(self.schedule.pop(0))
        raise RuntimeError("crash")

    async def aclose(self) -> None:
        self.closes += 1
        await trio.lowlevel.checkpoint()


class Recorder:
    """A provider that logs its close into a shared list."""

    def __init__(self, label: str, log: list[str]) -> None:
        self.label = label
        self.log = log

    async def aclose(self) -> None:
        self.log.append(self.label)
        await trio.lowlevel.checkpoint()


async def collect(events: Any, into: list[RegistryEvent]) -> None:
    async for event in events:
        into.append(event)


async def test_crashed_provider_is_restarted_and_routable_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    provider = FakeProvider("flaky")
    policy = RestartPolicy(max_restarts=3, within=60.0, initial=1.0, jitter=0.0)
    async with open_registry(restart_policy=policy, health_check_interval=None) as registry:
        name = registry.register("H", "llm", provider)
        assert await registry.wait_ready(5.0, ["llm"])
        async with registry.events() as events:
            provider.crash()
            crashed = await events.receive()
            assert isinstance(crashed, ActorCrashed)
            assert "crashed" in crashed.error
            assert registry.get_service_nowait("H", "llm") is None  # restarting
            while not isinstance(restarted := await events.receive(), ActorRestarted):
                pass
            assert isinstance(restarted, ActorRestarted)
            assert (restarted.restarts, restarted.delay) == (1, 1.0)
        assert await registry.wait_ready(5.0, ["llm"])
        assert registry.get_service_nowait("H", "llm") is provider
        assert provider.starts == 2
        assert provider.closes == 1  # the crashed incarnation was closed
        info = registry.get_provider_info()["handlers"]["H"]["llm"][0]
        assert (info["name"], info["restarts"], info["actor_status"]) == (name, 1, "running")


async def test_crash_loop_beyond_intensity_becomes_failed_and_is_routed_around(
    autojump_clock: trio.testing.MockClock,
) -> None:
    broken = FakeProvider("broken", crash_on_start=100)
    backup = FakeProvider("backup")
    policy = RestartPolicy(max_restarts=2, within=10.0, initial=0.5, jitter=0.0)
    async with open_registry(restart_policy=policy) as registry:
        registry.register("H", "llm", broken, name="broken")
        registry.register("H", "llm", backup, name="backup", priority="LOW")
        async with registry.events() as events:
            while not isinstance(event := await events.receive(), ActorFailed):
                pass
        assert event.name == "broken"
        assert event.restarts == 2
        assert broken.starts == 3
        assert registry.get_service_nowait("H", "llm") is backup
        info = registry.get_provider_info()["handlers"]["H"]["llm"][0]
        assert (info["actor_status"], info["health"]) == ("failed", "unhealthy")
        assert registry.health_status()["overall_health"] == "degraded"


async def test_escalation_makes_the_registry_raise(autojump_clock: trio.testing.MockClock) -> None:
    policy = RestartPolicy(max_restarts=0, escalate=True)

    async def body() -> None:
        async with open_registry(restart_policy=policy) as registry:
            registry.register("H", "llm", FakeProvider("broken", crash_on_start=1))
            await trio.sleep_forever()

    with pytest.raises(RegistryError, match="exceeded its restart intensity") as caught:
        await body()
    assert isinstance(caught.value.__cause__, RuntimeError)


async def test_exit_closes_providers_in_reverse_registration_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with open_registry() as registry:
        for label in ("first", "second", "third"):
            registry.register("H", "llm", Recorder(label, log))
        await trio.testing.wait_all_tasks_blocked()
    assert log == ["third", "second", "first"]


async def test_a_hanging_aclose_is_abandoned_after_close_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Stuck:
        async def aclose(self) -> None:
            await trio.sleep_forever()

    start = trio.current_time()
    async with open_registry(close_timeout=2.0) as registry:
        registry.register("H", "llm", Stuck())
        registry.register("H", "llm", Stuck())
    assert trio.current_time() - start == pytest.approx(4.0)


async def test_exit_under_outside_cancellation_still_closes_everything(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    with trio.move_on_after(1.0):
        async with open_registry() as registry:
            registry.register("H", "llm", Recorder("a", log))
            registry.register("H", "llm", Recorder("b", log))
            await trio.sleep_forever()
    assert log == ["b", "a"]


async def test_body_exception_comes_out_unwrapped(autojump_clock: trio.testing.MockClock) -> None:
    async def body() -> None:
        async with open_registry() as registry:
            registry.register("H", "llm", FakeProvider("a"))
            raise KeyError("from the body")

    with pytest.raises(KeyError) as caught:
        await body()
    assert caught.value.args == ("from the body",)


async def test_unregister_closes_the_provider_in_the_background(
    autojump_clock: trio.testing.MockClock,
) -> None:
    provider = FakeProvider("a")
    async with open_registry() as registry:
        name = registry.register("H", "llm", provider)
        await registry.wait_ready(5.0, ["llm"])
        assert provider.running
        registry.unregister(name)
        await trio.testing.wait_all_tasks_blocked()
        assert (provider.closes, provider.running) == (1, False)


async def test_async_context_manager_provider_is_entered_and_exited(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Session:
        entered = exited = 0

        async def __aenter__(self) -> Session:
            self.entered += 1
            await trio.lowlevel.checkpoint()
            return self

        async def __aexit__(self, *exc: object) -> None:
            self.exited += 1
            await trio.lowlevel.checkpoint()

    session = Session()
    async with open_registry() as registry:
        registry.register("H", "llm", session)
        assert registry.get_service_nowait("H", "llm") is None  # not entered yet
        assert await registry.wait_ready(5.0, ["llm"])
        assert registry.get_service_nowait("H", "llm") is session
        assert (session.entered, session.exited) == (1, 0)
    assert (session.entered, session.exited) == (1, 1)


@attrs.frozen
class Expected:
    restarts: list[float]
    failed_at: float | None


def restart_model(schedule: list[float], policy: RestartPolicy, registered_at: float) -> Expected:
    """OTP intensity written from its definition: a crash at c is refused when at least
    max_restarts restarts were granted in (c - within, c]."""
    granted: list[float] = []
    start = registered_at
    for duration in schedule:
        crash = start + duration
        recent = [r for r in granted if r > crash - policy.within]
        if len(recent) >= policy.max_restarts:
            return Expected(granted, crash)
        granted.append(crash)
        start = crash + min(policy.maximum, policy.initial * 2 ** (len(recent)))
    return Expected(granted, None)


@settings(max_examples=60, deadline=None)
@given(
    schedule=st.lists(st.integers(0, 40).map(lambda tenths: tenths / 10), max_size=8),
    max_restarts=st.integers(0, 4),
    within=st.integers(1, 30).map(float),
    initial=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
)
def test_crash_schedules_get_exactly_the_restarts_and_failures_the_policy_allows(
    schedule: list[float], max_restarts: int, within: float, initial: float
) -> None:
    """Random crash schedules: the restarts granted and the FAILED transition are exactly
    the restart model's, and no task outlives open_registry."""
    policy = RestartPolicy(
        max_restarts=max_restarts, within=within, initial=initial, maximum=4.0, jitter=0.0
    )
    seen: list[RegistryEvent] = []
    counter = TaskCounter()
    registered_at = 0.0

    async def scenario() -> None:
        nonlocal registered_at
        trio.lowlevel.add_instrument(counter)
        async with (
            open_registry(restart_policy=policy, health_check_interval=None) as registry,
            registry.events(max_buffer=1000) as events,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(collect, events, seen)
            registered_at = trio.current_time()
            registry.register("H", "svc", CrashingProvider(schedule), name="p")
            await trio.sleep(sum(schedule) + 10 * policy.maximum + 1)
            nursery.cancel_scope.cancel()
        trio.lowlevel.remove_instrument(counter)
        assert not counter.live - {trio.lowlevel.current_task()}

    run_on_virtual_time(scenario)
    expected = restart_model(schedule, policy, registered_at)
    crashes = [e.time for e in seen if isinstance(e, ActorCrashed)]
    restarted = [e for e in seen if isinstance(e, ActorRestarted)]
    failed = [e for e in seen if isinstance(e, ActorFailed)]
    assert crashes[: len(expected.restarts)] == pytest.approx(expected.restarts)
    assert len(restarted) == len(expected.restarts)
    if expected.failed_at is None:
        assert failed == []
        assert len(crashes) == len(schedule)
    else:
        assert len(failed) == 1
        assert failed[0].time == pytest.approx(expected.failed_at)
        assert len(crashes) == len(expected.restarts) + 1


class Interrupting:
    """A provider whose *hook* raises *error* (the others behave)."""

    def __init__(self, hook: str, error: BaseException) -> None:
        self.hook = hook
        self.error = error

    async def _maybe_raise(self, hook: str) -> None:
        await trio.lowlevel.checkpoint()
        if hook == self.hook:
            raise self.error

    async def start(self) -> None:
        await self._maybe_raise("start")

    async def run(self) -> None:
        await self._maybe_raise("run")
        await trio.sleep_forever()

    async def is_healthy(self) -> bool:
        await self._maybe_raise("is_healthy")
        return True

    async def aclose(self) -> None:
        await self._maybe_raise("aclose")


@pytest.mark.parametrize("hook", ["start", "run", "is_healthy", "aclose"])
@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3)], ids=["ki", "exit"])
async def test_keyboard_interrupt_and_system_exit_from_a_provider_come_out_bare(
    autojump_clock: trio.testing.MockClock, hook: str, error: BaseException
) -> None:
    # Bare, as trio raises them, so sys.exit(3) in start() ends the process with status 3
    # rather than a group's traceback and status 1; and the registry stops everything.
    async def run_registry() -> None:
        async with open_registry() as registry:
            registry.register("H", "llm", Interrupting(hook, error))
            await trio.sleep(1.0)  # aclose runs at exit, after this
            assert hook == "aclose", "the registry should have been stopped by now"

    counter = TaskCounter()
    trio.lowlevel.add_instrument(counter)
    with pytest.raises(type(error)) as caught:
        await run_registry()
    trio.lowlevel.remove_instrument(counter)
    assert caught.value is error
    assert counter.live == set()


def test_sys_exit_in_a_providers_start_sets_the_process_status() -> None:
    script = textwrap.dedent(
        """
        import sys, trio
        from ciris_actors import open_registry

        class Quitter:
            async def start(self):
                sys.exit(3)

        async def main():
            async with open_registry() as registry:
                registry.register("H", "llm", Quitter())
                await trio.sleep_forever()

        trio.run(main)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr


async def test_one_instance_registered_under_several_keys_has_one_lifecycle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # CIRIS registers one object for several service types: it is started once, checked
    # once per interval, closed once; each registration keeps its own breaker.
    provider = FakeProvider("shared")
    async with open_registry(
        required_services=["llm", "memory"], health_check_interval=10.0
    ) as registry:
        registry.register("H", "llm", provider, name="as-llm")
        registry.register_service("memory", provider, name="as-memory")
        assert await registry.wait_ready(5.0)
        assert provider.starts == 1
        checks = provider.health_checks
        await trio.sleep(35.0)
        assert provider.health_checks - checks == 3  # one per interval, not one per key
        registry.force_open("as-llm")
        assert registry.view("as-llm").breaker["state"] == "open"
        assert registry.view("as-memory").breaker["state"] == "closed"

        provider.crash()  # one crash takes both registrations out, one restart brings both
        await trio.testing.wait_all_tasks_blocked()
        assert registry.get_service_nowait("H", "memory") is None
        assert await registry.wait_ready(5.0)
        assert provider.starts == 2
        assert provider.closes == 1  # the crashed incarnation was closed once
        assert registry.view("as-memory").restarts == registry.view("as-llm").restarts == 1

        async with registry.events(types=[ProviderClosed]) as events:
            registry.unregister("as-llm")
            first = await events.receive()
            assert isinstance(first, ProviderClosed)
            assert (first.name, first.instance_closed) == ("as-llm", False)
            assert provider.closes == 1  # still in use under "as-memory"
            assert registry.get_service_nowait("H", "memory") is provider
            registry.unregister("as-memory")
            last = await events.receive()
            assert isinstance(last, ProviderClosed)
            assert (last.name, last.instance_closed) == ("as-memory", True)
            assert provider.closes == 2


async def test_the_next_registration_takes_over_the_health_checks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    provider = FakeProvider("shared")
    async with open_registry(required_services=["memory"], health_check_interval=10.0) as registry:
        registry.register("H", "llm", provider, name="first")
        registry.register_service("memory", provider, name="second")
        assert await registry.wait_ready(5.0)
        registry.unregister("first")
        checks = provider.health_checks
        provider.healthy = False
        await trio.sleep(25.0)
        assert provider.health_checks > checks
        assert registry.view("second").health is False
        assert registry.get_service_nowait("H", "memory") is None


async def test_health_check_all_checks_a_shared_instance_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    provider = FakeProvider("shared")
    async with open_registry(required_services=["llm"], health_check_interval=None) as registry:
        registry.register("H", "llm", provider, name="a")
        registry.register_service("memory", provider, name="b")
        assert await registry.wait_ready(5.0)
        before = provider.health_checks
        assert await registry.health_check_all() == {"*.memory.b": True, "H.llm.a": True}
        assert provider.health_checks == before + 1


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
