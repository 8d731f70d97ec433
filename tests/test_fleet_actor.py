"""The fleet actor against stores that misbehave: it is another process, and nothing it
sends or fails to send may reach a caller of the registry or stop the node."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import trio
import trio.testing

from ciris_actors import CircuitState, open_registry
from ciris_actors.events import FleetDegraded
from ciris_actors.fleet import (
    Claim,
    FleetSettings,
    MemoryFleet,
    MemoryFleetNode,
    Report,
    Snapshot,
    Verdict,
    VerdictKind,
)

from .fleet_harness import BREAKER, Provider, state, status, until
from .helpers import TaskCounter


class Faulty:
    """A link that passes through to a memory node, but for what a test changes."""

    def __init__(self, inner: MemoryFleetNode) -> None:
        self.inner = inner
        self.extra_pushes: list[object] = []
        self.read_error: Callable[[], BaseException] | None = None
        self.report_hangs = False
        self.reports: list[Report] = []

    @property
    def node_id(self) -> str:
        return self.inner.node_id

    @property
    def settings(self) -> FleetSettings:
        return self.inner.settings

    def store_time(self) -> float:
        return self.inner.store_time()

    async def report(self, report: Report) -> Verdict | None:
        self.reports.append(report)
        if self.report_hangs:
            await trio.sleep_forever()
        return await self.inner.report(report)

    async def claim_probe(self, provider: str, epoch: int, ttl: float) -> Claim:
        return await self.inner.claim_probe(provider, epoch, ttl)

    async def read(self) -> Snapshot:
        if self.read_error is not None:
            raise self.read_error()
        return await self.inner.read()

    def subscribe(self) -> AbstractAsyncContextManager[AsyncIterator[Verdict]]:
        return self._subscribe()

    @asynccontextmanager
    async def _subscribe(self) -> AsyncIterator[AsyncIterator[Verdict]]:
        async with self.inner.subscribe() as pushes:
            yield self._with_extra(pushes)

    async def _with_extra(self, pushes: AsyncIterator[Verdict]) -> AsyncIterator[Verdict]:
        for extra in self.extra_pushes:
            yield extra  # type: ignore[misc]
        async for verdict in pushes:
            yield verdict

    async def aclose(self) -> None:
        await self.inner.aclose()


def _verdict(**changes: object) -> Verdict:
    fields: dict[str, object] = {
        "provider": "primary",
        "epoch": 10**15,
        "kind": VerdictKind.RATE_LIMITED,
        "until": 100.0,
        "reason": "429",
        "node": "evil",
        "at": 0.0,
    }
    fields.update(changes)
    return Verdict(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        _verdict(until=math.nan),
        _verdict(at=math.nan),
        _verdict(until=math.inf),  # only a disable has no end
        _verdict(kind=VerdictKind.DISABLED, until=5.0),
        _verdict(epoch=1.5),
        _verdict(kind="rate_limited"),
        "not a verdict",
    ],
    ids=[
        "nan-until",
        "nan-at",
        "endless-rate-limit",
        "disable-with-end",
        "float-epoch",
        "str-kind",
        "str",
    ],
)
async def test_a_malformed_pushed_verdict_is_ignored_and_the_next_one_applies(
    autojump_clock: trio.testing.MockClock, bad: object
) -> None:
    hub = MemoryFleet()
    link = Faulty(hub.node("a"))
    link.extra_pushes = [bad, _verdict(epoch=10**15 + 1, until=50.0)]
    async with open_registry(fleet=link, health_check_interval=None, default_breaker=BREAKER) as a:
        a.register("agent", "llm", Provider(), name="primary")
        await until(
            a,
            lambda: state(a, "primary") is CircuitState.OPEN and status(a).reachable,
            what="the good verdict",
        )
        assert status(a).outages == 0
        assert status(a).malformed == 1


@pytest.mark.parametrize(
    "error",
    [
        lambda: RuntimeError("boom"),
        lambda: ExceptionGroup("several", [OSError("reset"), ValueError("bad reply")]),
        lambda: ConnectionRefusedError(),
    ],
    ids=["runtime", "group", "refused"],
)
async def test_a_store_error_of_any_kind_degrades_the_node_and_never_reaches_a_caller(
    autojump_clock: trio.testing.MockClock, error: Callable[[], BaseException]
) -> None:
    hub = MemoryFleet()
    link = Faulty(hub.node("a"))
    link.read_error = error
    async with (
        open_registry(fleet=link, health_check_interval=None, default_breaker=BREAKER) as a,
        a.events(types=[FleetDegraded]) as events,
    ):
        a.register("agent", "llm", Provider(), name="primary")
        assert await a.wait_ready(1.0, ["llm"])
        degraded = await events.receive()
        assert isinstance(degraded, FleetDegraded)
        assert degraded.error  # one line naming what went wrong
        assert a.get_service_nowait("agent", "llm") is not None
        # It keeps retrying with back-off, and finds the store once it answers.
        link.read_error = None
        await until(a, lambda: status(a).reachable, what="restored")


async def test_a_report_that_hangs_is_cut_at_the_timeout_and_kept_for_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = MemoryFleet(timeout=0.25)
    link = Faulty(hub.node("a"))
    async with open_registry(fleet=link, health_check_interval=None, default_breaker=BREAKER) as a:
        a.register("agent", "llm", Provider(), name="primary")
        assert await a.wait_ready(1.0, ["llm"])
        link.report_hangs = True
        a.force_open("primary", 60.0)
        await until(a, lambda: not status(a).reachable, what="degraded by the hung report")
        assert status(a).pending == 1
        link.report_hangs = False
        await until(a, lambda: status(a).pending == 0, what="the report sent after all")
        async with open_registry(fleet=hub.node("b"), health_check_interval=None) as b:
            b.register("agent", "llm", Provider(), name="primary")
            assert await b.wait_ready(1.0, ["llm"])
            assert state(b, "primary") is CircuitState.OPEN
    assert [r.kind for r in link.reports].count(VerdictKind.FORCED) >= 2


async def test_leaving_the_registry_while_the_store_hangs_leaves_no_task_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = MemoryFleet(timeout=0.25)
    link = Faulty(hub.node("a"))
    counter = TaskCounter()
    trio.lowlevel.add_instrument(counter)
    try:
        start = trio.current_time()
        with trio.move_on_after(1.0):
            async with open_registry(fleet=link, health_check_interval=None) as a:
                a.register("agent", "llm", Provider(), name="primary")
                link.report_hangs = True
                a.force_open("primary", 60.0)
                await trio.sleep_forever()
        await trio.testing.wait_all_tasks_blocked()
        assert counter.live == set()
        # Cancelled at 1 s; the exit waits at most one timeout for the last report.
        assert trio.current_time() - start <= 1.0 + 2 * 0.25 + 0.01
    finally:
        trio.lowlevel.remove_instrument(counter)


async def test_a_wrong_fleet_argument_is_refused_before_anything_starts() -> None:
    with pytest.raises(TypeError, match="fleet: expected a fleet link"):
        async with open_registry(fleet=object()):  # type: ignore[arg-type]
            pass


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"quorum": 0}, ValueError, "quorum"),
        ({"quorum": 1.5}, TypeError, "quorum"),
        ({"quorum_window": math.nan}, ValueError, "quorum_window"),
        ({"timeout": -1}, ValueError, "timeout"),
        ({"sync_interval": math.inf}, ValueError, "sync_interval"),
        ({"latency": -0.1}, ValueError, "latency"),
    ],
)
def test_memory_fleet_refuses_bad_settings_naming_the_field(
    kwargs: dict[str, object], error: type[Exception], field: str
) -> None:
    with pytest.raises(error, match=field):
        MemoryFleet(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"provider": "", "kind": VerdictKind.FAILURE, "duration": 1.0}, "provider"),
        ({"provider": "p", "kind": "failure", "duration": 1.0}, "kind"),
        ({"provider": "p", "kind": VerdictKind.FAILURE, "duration": math.nan}, "duration"),
        ({"provider": "p", "kind": VerdictKind.FAILURE, "duration": math.inf}, "duration"),
        ({"provider": "p", "kind": VerdictKind.DISABLED, "duration": 5.0}, "duration"),
        ({"provider": "p", "kind": VerdictKind.RESET, "duration": 5.0}, "duration"),
    ],
)
def test_a_report_refuses_bad_fields_naming_them(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises((TypeError, ValueError), match=field):
        Report(**kwargs)  # type: ignore[arg-type]


async def test_the_queue_of_a_node_without_its_store_stays_bounded_and_ends_in_the_last_word(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = MemoryFleet()
    async with (
        open_registry(fleet=hub.node("a"), health_check_interval=None) as a,
        open_registry(fleet=hub.node("b"), health_check_interval=None) as b,
    ):
        for registry in (a, b):
            registry.register("agent", "llm", Provider(), name="primary")
            assert await registry.wait_ready(1.0, ["llm"])
        hub.partition("a")
        await until(a, lambda: not status(a).reachable, what="a degraded")
        for _ in range(500):
            a.force_open("primary", 60.0)
            a.reset_circuit_breaker("primary")
        a.force_open("primary", 60.0)
        assert status(a).pending <= 2  # one reset and one force-open, not a thousand
        hub.heal("a")
        await until(b, lambda: state(b, "primary") is CircuitState.OPEN, what="the last word")
        assert status(a).pending == 0


async def test_what_a_node_keeps_about_names_ends_with_their_registrations(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Internals on purpose: nothing public shows this memory, and a long-running process
    # registering providers under ever new names must not grow with them.
    hub = MemoryFleet()
    async with open_registry(fleet=hub.node("a"), health_check_interval=None) as a:
        fleet = a._sup.fleet
        assert fleet is not None
        for i in range(40):
            name = f"p{i}"
            a.register("agent", "llm", Provider(), name=name)
            a.force_open(name, 5.0)
            if i % 2:
                a.reset_circuit_breaker(name)
            await until(a, lambda: status(a).pending == 0, what="sent")
            a.unregister(name)
        await trio.sleep(1000.0)  # every verdict long gone from the store
        tables = (fleet.known, fleet.applied_at, fleet.timers, fleet.probing, fleet.mine)
        assert [len(table) for table in tables] == [0, 0, 0, 0, 0]
        assert (await hub.node("observer").read()).verdicts == ()
        assert hub._providers == {}
