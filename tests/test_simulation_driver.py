"""The events engine's driver: its own events in time order, interleaved with trio's
timers, on the run's MockClock; same-instant order as docs/simulation.md states it."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from ciris_actors.simulation.driver import EventDriver


def driver() -> EventDriver:
    return EventDriver(trio.lowlevel.current_clock())


async def test_events_run_in_time_order_each_at_its_own_clock_reading(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = driver()
    start = trio.current_time()
    seen: list[tuple[float, float, float]] = []
    times = [start + t for t in (3.7, 0.1, 2.0, 1e-9, 1234.5678, 2.0000000001)]
    for at in times:
        events.schedule(at, lambda at: seen.append((at, trio.current_time(), events.now)), at)
    await events.run()
    assert [at for at, _, _ in seen] == sorted(times)
    # The clock reads exactly the event's time, and the driver's own reading agrees.
    assert all(at == clock == own for at, clock, own in seen)
    assert len(events) == 0


async def test_same_instant_events_run_in_the_order_they_were_scheduled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = driver()
    at = trio.current_time() + 5.0
    order: list[str] = []
    for label in "abcde":
        events.schedule(at, order.append, label)
    await events.run()
    assert order == list("abcde")


async def test_at_one_instant_a_lower_rank_runs_first_whenever_it_was_scheduled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = driver()
    at = trio.current_time() + 5.0
    order: list[str] = []
    events.schedule(at, order.append, "arrival", rank=1)
    events.schedule(at, order.append, "answer", rank=0)
    events.schedule(at - 1.0, lambda _: events.schedule(at, order.append, "late answer"))
    await events.run()
    assert order == ["answer", "late answer", "arrival"]


async def test_an_event_a_rounding_error_before_a_trio_timer_still_runs_first_at_its_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Offsets from the current time can round two different instants to the same
    offset; the driver's event must still run first, at exactly its own time."""
    # From this clock reading, the offsets to these two adjacent instants are equal.
    now = float.fromhex("0x1.3f5c28f5c28f6p+2")
    earlier = float.fromhex("0x1.dba77ffffffffp+4")
    later = float.fromhex("0x1.dba78p+4")
    assert earlier < later
    assert earlier - now == later - now
    autojump_clock.jump(now - trio.current_time())
    assert trio.current_time() == now
    events = driver()
    order: list[tuple[str, float]] = []

    async def timer() -> None:
        await trio.sleep_until(later)
        order.append(("trio", trio.current_time()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(timer)
        await trio.testing.wait_all_tasks_blocked()
        events.schedule(earlier, lambda _: order.append(("driver", trio.current_time())))
        await events.run()
    assert order[0] == ("driver", earlier)
    assert order[1][0] == "trio"


async def test_events_scheduled_by_an_event_are_handled_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = driver()
    start = trio.current_time()
    seen: list[float] = []

    def step(n: int) -> None:
        seen.append(trio.current_time() - start)
        if n:
            events.schedule(trio.current_time() + 0.5, step, n - 1)

    events.schedule(start + 1.0, step, 3)
    await events.run()
    assert seen == [1.0, 1.5, 2.0, 2.5]


async def test_trio_timers_run_between_events_and_first_at_the_same_instant(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = driver()
    start = trio.current_time()
    order: list[tuple[str, float]] = []

    async def timer(at: float) -> None:
        await trio.sleep_until(start + at)
        order.append(("trio", trio.current_time() - start))

    def own(at: float) -> None:
        order.append(("driver", trio.current_time() - start))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(timer, 1.5)
        nursery.start_soon(timer, 2.0)
        await trio.testing.wait_all_tasks_blocked()
        for at in (1.0, 2.0, 3.0):
            events.schedule(start + at, own, at)
        await events.run()
    assert order == [
        ("driver", 1.0),
        ("trio", 1.5),
        ("trio", 2.0),  # a timer due at the same instant as an event goes first
        ("driver", 2.0),
        ("driver", 3.0),
    ]


async def test_a_task_an_event_wakes_runs_before_the_next_event_at_that_instant(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = driver()
    at = trio.current_time() + 1.0
    order: list[str] = []
    wake = trio.Event()

    async def waiter() -> None:
        await wake.wait()
        order.append("woken task")

    def first(_: object) -> None:
        order.append("first event")
        wake.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        events.schedule(at, first)
        events.schedule(at, order.append, "second event")
        await events.run()
    assert order == ["first event", "woken task", "second event"]


async def test_run_returns_after_the_last_event_leaving_later_timers_to_trio(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = driver()
    start = trio.current_time()
    fired = trio.Event()

    async def later() -> None:
        await trio.sleep_until(start + 100.0)
        fired.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(later)
        events.schedule(start + 10.0, lambda _: None)
        await events.run()
        assert trio.current_time() == start + 10.0
        assert not fired.is_set()
        await fired.wait()  # trio's own autojump takes over again


async def test_a_long_stretch_of_events_still_lets_a_cancellation_in(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = driver()
    start = trio.current_time()
    handled: list[int] = []
    with trio.CancelScope() as scope:

        def step(n: int) -> None:
            handled.append(n)
            if n == 10:
                scope.cancel()

        for n in range(20_000):
            events.schedule(start + n * 0.001, step, n)
        await events.run()
    assert scope.cancelled_caught
    assert 10 < len(handled) < 10 + 2048  # stopped within one stretch of the cancel
    assert len(events) == 20_000 - len(handled)


async def test_an_empty_driver_returns_at_once(autojump_clock: trio.testing.MockClock) -> None:
    events = driver()
    start = trio.current_time()
    await events.run()
    assert trio.current_time() == start
    assert events.next_time == math.inf


async def test_the_driver_refuses_a_clock_it_cannot_move() -> None:
    with pytest.raises(RuntimeError, match="MockClock with rate 0"):
        EventDriver(trio.lowlevel.current_clock())  # trio's real clock
    with pytest.raises(RuntimeError, match="MockClock with rate 0"):
        EventDriver(trio.testing.MockClock(rate=1.0))
