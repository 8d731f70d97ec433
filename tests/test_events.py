"""Registry events (``events.py``): what each event says and when it is published, the
bus's buffers, type filters and dropping, and how a subscription ends."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ciris_actors import (
    BreakerTransition,
    EventsDropped,
    ProviderClosed,
    ProviderRegistered,
    ProviderUnregistered,
    Registry,
    ResolveMiss,
    open_registry,
)
from ciris_actors.testing import FakeProvider

from .helpers import SLOW_RECOVERY as BREAKER, Plain


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


class Closing:
    """A provider whose aclose does what it is told."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour

    async def aclose(self) -> None:
        if self.behaviour == "raise":
            await trio.lowlevel.checkpoint()
            raise OSError("connection already gone")
        if self.behaviour == "hang":
            await trio.sleep_forever()
        await trio.lowlevel.checkpoint()


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        ("clean", None),
        ("raise", "aclose raised OSError: connection already gone"),
        ("hang", "aclose did not return within 2s"),
    ],
)
async def test_provider_closed_says_how_the_close_went(
    autojump_clock: trio.testing.MockClock, behaviour: str, error: str | None
) -> None:
    async with (
        open_registry(close_timeout=2.0) as registry,
        registry.events(types=[ProviderClosed]) as events,
    ):
        registry.register("H", "llm", Closing(behaviour), name="p")
        await trio.testing.wait_all_tasks_blocked()
        registry.unregister("p")
        closed = await events.receive()
        assert isinstance(closed, ProviderClosed)
        assert (closed.name, closed.error, closed.instance_closed) == ("p", error, True)


async def test_provider_closed_is_not_published_once_the_name_is_taken_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry(close_timeout=2.0) as registry:
        registry.register("H", "llm", Closing("hang"), name="p")
        await trio.testing.wait_all_tasks_blocked()
        async with registry.events(types=[ProviderClosed]) as events:
            registry.unregister("p")
            registry.register("H", "llm", Plain("new"), name="p")  # before the old one closed
            await trio.sleep(5.0)  # the old close has been cut off by now
            registry.unregister("p")
            closed = await events.receive()
            assert isinstance(closed, ProviderClosed)
            assert closed.error is None  # the new one's, which closed cleanly
            with trio.move_on_after(5.0) as nothing_more:
                await events.receive()
            assert nothing_more.cancelled_caught


async def test_a_subscriber_filtering_events_keeps_every_one_it_asked_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 2,000 failed resolves publish 2,000 ResolveMiss events: a subscriber that asked only
    # for BreakerTransition must not see them take the place of its transitions.
    async with open_registry(health_check_interval=None, default_breaker=BREAKER) as registry:
        name = registry.register("H", "llm", FakeProvider("a"), name="a")
        async with registry.events(max_buffer=10, types=[BreakerTransition]) as events:
            for _ in range(5):
                registry.force_open(name)
                for _ in range(400):
                    assert registry.get_service_nowait("H", "llm") is None
                registry.reset_circuit_breaker(name)
            received: list[object] = []
            while len(received) < 10:
                received.append(await events.receive())
            assert all(isinstance(e, BreakerTransition) for e in received)
            assert not any(isinstance(e, (EventsDropped, ResolveMiss)) for e in received)
