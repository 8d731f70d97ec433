"""Guard: the standalone breaker around calls, as a decorator of sync and async functions
and as a sync and async context manager, under trio, asyncio and threads.

Every clock is a fake one (or trio's virtual clock): nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import threading
from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import Any, Literal, NoReturn

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.strategies import SearchStrategy

from ciris_actors import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerError,
    CircuitState,
    Guard,
)
from ciris_actors.outcomes import ErrorClass, ErrorKind

from .test_breaker_properties import ModelBreaker, configs, error_classes, expected, observed
from .test_breaker_threads import Crowded, Yielding, at_once

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Failed(Exception):
    """An error from a guarded call; its error class, if given, is what the test
    classifier says about it."""

    def __init__(self, error_class: ErrorClass | None = None) -> None:
        super().__init__("provider failed")
        self.error_class = error_class


class Interrupt(BaseException):
    """A BaseException that is not an Exception, like a cancellation."""


class Baffling(Exception):
    """An error the test classifier of the model comparison raises on."""


def classifier(error: BaseException) -> ErrorClass | None:
    return error.error_class if isinstance(error, Failed) else None


def breaker_in(state: CircuitState, clock: FakeClock, **config: Any) -> CircuitBreaker:
    """A breaker in *state*, with *config* over small defaults: OPEN since 0 until 10
    (the clock left where it is), or HALF_OPEN at 10 (the clock moved there)."""
    values: dict[str, Any] = {
        "failure_threshold": 3,
        "recovery_timeout": 10.0,
        "success_threshold": 2,
        "half_open_max_calls": 1,
    }
    values.update(config)
    thread_safe = bool(values.pop("thread_safe", False))
    breaker = CircuitBreaker("svc", CircuitBreakerConfig(**values), thread_safe=thread_safe)
    if state is CLOSED:
        return breaker
    breaker.force_open(0.0, 10.0)
    if state is HALF_OPEN:
        clock.now = 10.0
        assert breaker.advance(clock.now)
    return breaker


# -- running a body through each mode ---------------------------------------------------

Mode = Literal[
    "decorator",
    "with",
    "trio decorator",
    "trio async with",
    "asyncio decorator",
    "asyncio async with",
]
MODES: tuple[Mode, ...] = (
    "decorator",
    "with",
    "trio decorator",
    "trio async with",
    "asyncio decorator",
    "asyncio async with",
)


def run_in(mode: Mode, guard: Guard, body: Callable[[], object]) -> object:
    """Run *body* through *guard* as *mode* says, returning what it returns."""
    if mode == "decorator":
        return guard(body)()
    if mode == "with":
        with guard:
            return body()

    async def call_body() -> object:
        return body()

    async def decorated() -> object:
        return await guard(call_body)()

    async def block() -> object:
        async with guard:
            return body()

    main = decorated if mode.endswith("decorator") else block
    return trio.run(main) if mode.startswith("trio") else asyncio.run(main())


# -- each mode --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_call_that_returns_is_a_success(mode: Mode) -> None:
    clock = FakeClock(5.0)
    breaker = breaker_in(CLOSED, clock)
    breaker.record_failure(1.0)
    assert run_in(mode, Guard(breaker, clock), lambda: "answer") == "answer"
    assert breaker.total_successes == 1
    assert breaker.failure_count == 0  # the success reset the consecutive count
    assert breaker.get_stats()["state"] == "closed"


@pytest.mark.parametrize("mode", MODES)
def test_a_call_that_raises_is_a_failure_and_the_error_propagates(mode: Mode) -> None:
    clock = FakeClock()
    breaker = breaker_in(CLOSED, clock, failure_threshold=2)
    guard = Guard(breaker, clock)
    errors = [Failed(), Failed()]
    for error in errors:

        def fail(error: Failed = error) -> NoReturn:
            raise error

        with pytest.raises(Failed) as excinfo:
            run_in(mode, guard, fail)
        assert excinfo.value is error
    assert breaker.state is OPEN
    assert breaker.total_failures == 2
    assert breaker.next_attempt_time == 10.0


@pytest.mark.parametrize("mode", MODES)
def test_a_refused_call_raises_circuit_breaker_error_and_never_runs(mode: Mode) -> None:
    clock = FakeClock()
    breaker = breaker_in(OPEN, clock)
    clock.now = 4.0
    ran: list[bool] = []
    with pytest.raises(CircuitBreakerError) as excinfo:
        run_in(mode, Guard(breaker, clock), lambda: ran.append(True))
    assert not ran
    error = excinfo.value
    assert (error.name, error.state, error.next_attempt_time) == ("svc", OPEN, 10.0)
    assert str(error) == (
        "circuit breaker 'svc' is open, service unavailable; next admission at t=10.000"
    )
    assert breaker.total_rejections == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_full_half_open_quota_refuses_with_no_next_attempt_time(mode: Mode) -> None:
    clock = FakeClock()
    breaker = breaker_in(HALF_OPEN, clock)
    assert breaker.acquire(clock.now)  # the only permit
    with pytest.raises(CircuitBreakerError) as excinfo:
        run_in(mode, Guard(breaker, clock), lambda: None)
    assert (excinfo.value.state, excinfo.value.next_attempt_time) == (HALF_OPEN, None)
    assert breaker.probes_in_flight == 1


@pytest.mark.parametrize("mode", MODES)
def test_the_first_call_after_the_deadline_is_a_probe_that_closes_the_breaker(
    mode: Mode,
) -> None:
    clock = FakeClock()
    breaker = breaker_in(OPEN, clock, success_threshold=1)
    clock.now = 10.0
    inside: list[tuple[CircuitState, int]] = []
    run_in(
        mode,
        Guard(breaker, clock),
        lambda: inside.append((breaker.state, breaker.probes_in_flight)),
    )
    assert inside == [(HALF_OPEN, 1)]  # admitted by acquire, as a probe
    assert breaker.state is CLOSED


@pytest.mark.parametrize("mode", MODES)
def test_outcomes_are_recorded_at_the_clock_reading_when_the_call_ends(mode: Mode) -> None:
    clock = FakeClock()
    breaker = breaker_in(CLOSED, clock, failure_threshold=1)

    def slow_failure() -> NoReturn:
        clock.now = 7.5
        raise Failed

    with pytest.raises(Failed):
        run_in(mode, Guard(breaker, clock), slow_failure)
    assert breaker.last_failure_time == 7.5
    assert breaker.next_attempt_time == 17.5


# -- error classes ----------------------------------------------------------------------

#: What each class leaves a breaker in HALF_OPEN (success_threshold 2) as at 10.0:
#: state, success count, probes in flight, next attempt time, disabled reason.
AFTER_A_HALF_OPEN_PROBE = {
    ErrorKind.FAILURE: (OPEN, 0, 0, 20.0, None),
    ErrorKind.IGNORE: (HALF_OPEN, 0, 0, None, None),
    ErrorKind.SUCCESS: (HALF_OPEN, 1, 0, None, None),
    ErrorKind.RATE_LIMITED: (OPEN, 0, 0, 40.0, None),
    ErrorKind.DISABLE: (OPEN, 0, 0, None, "revoked key"),
    ErrorKind.REROUTE: (HALF_OPEN, 0, 0, None, None),
}
#: The same from CLOSED (failure_threshold 3): state, failure count, total successes,
#: total failures, next attempt time.
AFTER_A_CLOSED_CALL = {
    ErrorKind.FAILURE: (CLOSED, 1, 0, 1, None),
    ErrorKind.IGNORE: (CLOSED, 0, 0, 0, None),
    ErrorKind.SUCCESS: (CLOSED, 0, 1, 0, None),
    ErrorKind.RATE_LIMITED: (OPEN, 0, 0, 1, 40.0),
    ErrorKind.DISABLE: (OPEN, 0, 0, 1, None),
    ErrorKind.REROUTE: (CLOSED, 0, 0, 0, None),
}
ONE_OF_EACH = {
    ErrorKind.FAILURE: ErrorClass.failure(),
    ErrorKind.IGNORE: ErrorClass.ignore(),
    ErrorKind.SUCCESS: ErrorClass.success(),
    ErrorKind.RATE_LIMITED: ErrorClass.rate_limited(30.0),
    ErrorKind.DISABLE: ErrorClass.disable("revoked key"),
    ErrorKind.REROUTE: ErrorClass.reroute(require=("long_context",)),
}


@pytest.mark.parametrize("kind", list(ErrorKind))
@pytest.mark.parametrize("mode", MODES)
def test_a_half_open_probe_is_recorded_as_its_error_class_says(mode: Mode, kind: ErrorKind) -> None:
    clock = FakeClock()
    breaker = breaker_in(HALF_OPEN, clock)
    error = Failed(ONE_OF_EACH[kind])

    def fail() -> NoReturn:
        raise error

    with pytest.raises(Failed) as excinfo:
        run_in(mode, Guard(breaker, clock, classify=classifier), fail)
    assert excinfo.value is error
    assert (
        breaker.state,
        breaker.success_count,
        breaker.probes_in_flight,
        breaker.next_attempt_time,
        breaker.disabled,
    ) == AFTER_A_HALF_OPEN_PROBE[kind]


@pytest.mark.parametrize("kind", list(ErrorKind))
@pytest.mark.parametrize("mode", MODES)
def test_a_closed_call_is_recorded_as_its_error_class_says(mode: Mode, kind: ErrorKind) -> None:
    clock = FakeClock(10.0)
    breaker = breaker_in(CLOSED, clock)

    def fail() -> NoReturn:
        raise Failed(ONE_OF_EACH[kind])

    with pytest.raises(Failed):
        run_in(mode, Guard(breaker, clock, classify=classifier), fail)
    assert (
        breaker.state,
        breaker.failure_count,
        breaker.total_successes,
        breaker.total_failures,
        breaker.next_attempt_time,
    ) == AFTER_A_CLOSED_CALL[kind]


@pytest.mark.parametrize("mode", MODES)
def test_a_classifier_that_raises_makes_the_error_a_failure_with_a_note(mode: Mode) -> None:
    clock = FakeClock()
    breaker = breaker_in(HALF_OPEN, clock)

    def broken(error: BaseException) -> ErrorClass | None:
        raise KeyError("oops")

    def fail() -> NoReturn:
        raise Failed(ErrorClass.ignore())

    with pytest.raises(Failed) as excinfo:
        run_in(mode, Guard(breaker, clock, classify=broken), fail)
    assert breaker.state is OPEN  # the probe failed
    notes = getattr(excinfo.value, "__notes__", [])
    assert any("classifier" in note and "KeyError" in note for note in notes)


def test_without_a_classifier_every_error_is_a_failure() -> None:
    clock = FakeClock()
    breaker = breaker_in(CLOSED, clock)

    @Guard(breaker, clock)
    def fail() -> NoReturn:
        raise Failed(ErrorClass.ignore())

    with pytest.raises(Failed):
        fail()
    assert breaker.failure_count == 1


# -- fallback ---------------------------------------------------------------------------


def test_a_refused_call_returns_the_fallback_called_with_its_arguments() -> None:
    clock = FakeClock()
    breaker = breaker_in(OPEN, clock)
    clock.now = 3.0
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def fallback(*args: Any, **kwargs: Any) -> str:
        calls.append((args, kwargs))
        return "cached"

    ran: list[int] = []

    @Guard(breaker, clock, fallback=fallback)
    def fetch(key: int, *, fresh: bool = False) -> str:
        ran.append(key)
        return "live"

    assert fetch(7, fresh=True) == "cached"
    assert calls == [((7,), {"fresh": True})]
    assert not ran
    assert breaker.total_rejections == 1
    clock.now = 10.0
    assert fetch(8) == "live"  # admitted again: no fallback
    assert calls == [((7,), {"fresh": True})]


def test_an_async_function_awaits_an_async_fallback_and_returns_a_sync_ones_value() -> None:
    clock = FakeClock()
    breaker = breaker_in(OPEN, clock)

    async def async_fallback(key: int) -> str:
        await trio.lowlevel.checkpoint()
        return f"async cached {key}"

    def sync_fallback(key: int) -> str:
        return f"sync cached {key}"

    async def fetch(key: int) -> str:
        raise AssertionError("refused calls never run")

    async def main() -> list[str]:
        first = Guard(breaker, clock, fallback=async_fallback)(fetch)
        second = Guard(breaker, clock, fallback=sync_fallback)(fetch)
        return [await first(1), await second(2)]

    assert trio.run(main) == ["async cached 1", "sync cached 2"]


@pytest.mark.parametrize("mode", ["with", "trio async with", "asyncio async with"])
def test_a_context_manager_raises_even_when_a_fallback_is_given(mode: Mode) -> None:
    clock = FakeClock()
    breaker = breaker_in(OPEN, clock)
    with pytest.raises(CircuitBreakerError):
        run_in(mode, Guard(breaker, clock, fallback=lambda: "unused"), lambda: None)


def test_an_error_from_the_fallback_propagates_and_records_nothing_more() -> None:
    clock = FakeClock()
    breaker = breaker_in(OPEN, clock)

    def fallback() -> NoReturn:
        raise LookupError("no cache either")

    guarded = Guard(breaker, clock, fallback=fallback)(lambda: None)
    with pytest.raises(LookupError):
        guarded()
    assert (breaker.total_rejections, breaker.total_failures) == (1, 0)


# -- cancellation and other BaseExceptions ------------------------------------------------


@pytest.mark.parametrize("state", [CLOSED, HALF_OPEN])
@pytest.mark.parametrize("mode", MODES)
def test_a_base_exception_records_nothing_and_returns_the_permit(
    mode: Mode, state: CircuitState
) -> None:
    clock = FakeClock()
    breaker = breaker_in(state, clock)
    before = breaker.get_stats(clock.now)
    inside: list[int] = []

    def interrupted() -> NoReturn:
        inside.append(breaker.probes_in_flight)
        raise Interrupt

    with pytest.raises(Interrupt):
        run_in(mode, Guard(breaker, clock), interrupted)
    assert inside == [1 if state is HALF_OPEN else 0]
    assert breaker.get_stats(clock.now) == before  # permit back, nothing counted


async def test_a_call_cancelled_from_outside_in_trio_records_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker("svc", CircuitBreakerConfig(recovery_timeout=10.0))
    breaker.force_open(trio.current_time())
    await trio.sleep(10.0)
    guard = Guard(breaker, trio.current_time)

    @guard
    async def hang() -> None:
        await trio.sleep_forever()

    with trio.move_on_after(1.0) as scope:
        await hang()
    assert scope.cancelled_caught
    assert (breaker.state, breaker.probes_in_flight) == (HALF_OPEN, 0)
    with trio.move_on_after(1.0) as scope:
        async with guard:
            assert breaker.probes_in_flight == 1
            await trio.sleep_forever()
    assert scope.cancelled_caught
    stats = breaker.get_stats()
    assert (stats["state"], stats["probes_in_flight"]) == ("half_open", 0)
    assert (stats["total_successes"], stats["total_failures"]) == (0, 0)


async def test_a_timeout_inside_the_call_is_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker("svc", CircuitBreakerConfig(failure_threshold=1))

    @Guard(breaker, trio.current_time)
    async def slow() -> None:
        with trio.fail_after(5.0):
            await trio.sleep_forever()

    with pytest.raises(trio.TooSlowError):
        await slow()
    assert breaker.state is OPEN
    assert breaker.last_failure_time == 5.0


def test_a_task_cancelled_in_asyncio_records_nothing_and_returns_the_permit() -> None:
    clock = FakeClock()
    breaker = breaker_in(HALF_OPEN, clock)
    guard = Guard(breaker, clock)

    @guard
    async def hang(started: asyncio.Event) -> None:
        started.set()
        await asyncio.Event().wait()

    async def in_block(started: asyncio.Event) -> None:
        async with guard:
            started.set()
            await asyncio.Event().wait()

    async def main() -> None:
        for body in (hang, in_block):
            started = asyncio.Event()
            task = asyncio.create_task(body(started))
            await started.wait()
            assert breaker.probes_in_flight == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert breaker.probes_in_flight == 0

    asyncio.run(main())
    assert (breaker.state, breaker.total_successes, breaker.total_failures) == (HALF_OPEN, 0, 0)


def test_a_generator_closed_inside_a_block_returns_its_permit() -> None:
    clock = FakeClock()
    breaker = breaker_in(HALF_OPEN, clock)
    guard = Guard(breaker, clock)

    def stream() -> Generator[int, None, None]:
        with guard:
            yield 1
            yield 2

    items = stream()
    assert next(items) == 1
    assert breaker.probes_in_flight == 1
    items.close()  # GeneratorExit through the block
    assert (breaker.probes_in_flight, breaker.total_successes, breaker.total_failures) == (0, 0, 0)


# -- generations ------------------------------------------------------------------------


def reopen_and_take_the_next_probe(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """What another caller does while a probe runs: the probe period ends in a failure,
    the open period passes, and the next probe takes the only permit."""
    breaker.record_failure(clock.now)
    clock.now += 10.0
    assert breaker.acquire(clock.now)
    assert breaker.probes_in_flight == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_late_outcome_never_returns_a_permit_of_a_later_period(mode: Mode) -> None:
    clock = FakeClock()
    breaker = breaker_in(HALF_OPEN, clock, success_threshold=3)
    run_in(mode, Guard(breaker, clock), lambda: reopen_and_take_the_next_probe(breaker, clock))
    assert breaker.state is HALF_OPEN
    assert breaker.probes_in_flight == 1  # the other caller's permit is still out
    assert breaker.success_count == 1  # the late success still counts


@pytest.mark.parametrize("mode", MODES)
def test_a_call_admitted_in_closed_counts_its_success_in_the_state_it_ends_in(
    mode: Mode,
) -> None:
    clock = FakeClock()
    breaker = breaker_in(CLOSED, clock, success_threshold=3)

    def meanwhile() -> None:  # other calls open the breaker, and a probe is admitted
        breaker.force_open(clock.now, 5.0)
        clock.now += 5.0
        assert breaker.acquire(clock.now)

    run_in(mode, Guard(breaker, clock), meanwhile)
    assert (breaker.state, breaker.success_count, breaker.probes_in_flight) == (HALF_OPEN, 1, 1)


@pytest.mark.parametrize("mode", MODES)
def test_a_late_ignored_error_returns_no_permit_of_a_later_period(mode: Mode) -> None:
    clock = FakeClock()
    breaker = breaker_in(HALF_OPEN, clock)

    def late() -> NoReturn:
        reopen_and_take_the_next_probe(breaker, clock)
        raise Failed(ErrorClass.ignore())

    with pytest.raises(Failed):
        run_in(mode, Guard(breaker, clock, classify=classifier), late)
    assert breaker.probes_in_flight == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_late_cancellation_returns_no_permit_of_a_later_period(mode: Mode) -> None:
    clock = FakeClock()
    breaker = breaker_in(HALF_OPEN, clock)

    def late() -> NoReturn:
        reopen_and_take_the_next_probe(breaker, clock)
        raise Interrupt

    with pytest.raises(Interrupt):
        run_in(mode, Guard(breaker, clock), late)
    assert breaker.probes_in_flight == 1


# -- nested and concurrent blocks -----------------------------------------------------


def test_nested_blocks_each_hold_and_return_their_own_permit() -> None:
    clock = FakeClock()
    breaker = breaker_in(HALF_OPEN, clock, success_threshold=3, half_open_max_calls=2)
    guard = Guard(breaker, clock)
    with guard:
        assert breaker.probes_in_flight == 1
        with guard:
            assert breaker.probes_in_flight == 2
            with pytest.raises(CircuitBreakerError), guard:
                pass  # the quota is full
        assert (breaker.probes_in_flight, breaker.success_count) == (1, 1)
    assert (breaker.probes_in_flight, breaker.success_count) == (0, 2)
    with guard:  # the stack is empty again: this block's own permit comes back
        pass
    assert breaker.state is CLOSED


@pytest.mark.parametrize("mode", ["with", "trio async with", "asyncio async with"])
def test_an_outer_block_ends_with_its_own_generation_not_an_inner_ones(mode: Mode) -> None:
    """The inner block took the next period's permit and returned it; then another
    caller took that permit. The outer block's late exit must not return it."""
    clock = FakeClock()
    breaker = breaker_in(HALF_OPEN, clock, success_threshold=3)
    guard = Guard(breaker, clock)

    def inside() -> None:
        breaker.record_failure(clock.now)  # the outer probe's period ends
        clock.now += 10.0
        with guard:  # the next period's probe
            assert breaker.probes_in_flight == 1
        assert breaker.acquire(clock.now)  # another caller's probe

    run_in(mode, guard, inside)
    assert (breaker.probes_in_flight, breaker.success_count) == (1, 2)


def test_a_block_around_a_failed_inner_block_ends_as_a_late_success() -> None:
    clock = FakeClock()
    breaker = breaker_in(HALF_OPEN, clock, half_open_max_calls=2)
    guard = Guard(breaker, clock)
    with guard:
        with pytest.raises(Failed), guard:
            raise Failed
        assert breaker.state is OPEN  # the inner probe failed
    assert (breaker.state, breaker.total_successes, breaker.probes_in_flight) == (OPEN, 1, 0)


def test_a_closed_block_inside_a_probe_block_leaves_the_next_probe_its_permit() -> None:
    clock = FakeClock()
    breaker = breaker_in(HALF_OPEN, clock, success_threshold=1, failure_threshold=1)
    guard = Guard(breaker, clock)
    with guard:  # a probe, with a permit: its generation is pushed
        breaker.record_success(clock.now, breaker.generation)  # closes the breaker
        with guard:  # admitted in CLOSED: pushes nothing
            pass  # and its exit pops the (now stale) probe's generation
        with pytest.raises(Failed), guard:
            raise Failed  # opens the breaker again
        clock.now += 10.0
        with guard:  # the next probe
            assert breaker.probes_in_flight == 1
            clock.now += 1.0
        assert breaker.state is CLOSED
    assert (breaker.state, breaker.probes_in_flight) == (CLOSED, 0)


def test_concurrent_trio_tasks_keep_their_own_blocks() -> None:
    """Task A's probe goes stale while task B holds the next probe's permit; A's exit must
    not return B's permit (as it would if the blocks shared one stack)."""
    clock = FakeClock()
    breaker = breaker_in(HALF_OPEN, clock, success_threshold=3)
    guard = Guard(breaker, clock)

    async def main() -> None:
        a_inside, b_inside, a_done = trio.Event(), trio.Event(), trio.Event()

        async def a() -> None:
            async with guard:
                a_inside.set()
                await b_inside.wait()
            a_done.set()

        async def b() -> None:
            await a_inside.wait()
            breaker.record_failure(clock.now)  # A's probe period ends
            clock.now += 10.0
            async with guard:
                b_inside.set()
                await a_done.wait()
                assert breaker.probes_in_flight == 1
            assert breaker.probes_in_flight == 0

        async with trio.open_nursery() as nursery:
            nursery.start_soon(a)
            nursery.start_soon(b)

    trio.run(main)
    assert (breaker.state, breaker.success_count) == (HALF_OPEN, 2)


def test_concurrent_asyncio_tasks_keep_their_own_blocks() -> None:
    clock = FakeClock()
    breaker = breaker_in(HALF_OPEN, clock, success_threshold=3)
    guard = Guard(breaker, clock)

    async def main() -> None:
        a_inside, b_inside, a_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def a() -> None:
            async with guard:
                a_inside.set()
                await b_inside.wait()
            a_done.set()

        async def b() -> None:
            await a_inside.wait()
            breaker.record_failure(clock.now)
            clock.now += 10.0
            async with guard:
                b_inside.set()
                await a_done.wait()
                assert breaker.probes_in_flight == 1
            assert breaker.probes_in_flight == 0

        await asyncio.gather(a(), b())

    asyncio.run(main())
    assert (breaker.state, breaker.success_count) == (HALF_OPEN, 2)


@pytest.mark.usefixtures("switch_threads_often")
def test_concurrent_threads_keep_their_own_blocks() -> None:
    clock = FakeClock()
    breaker = breaker_in(HALF_OPEN, clock, success_threshold=3, thread_safe=True)
    guard = Guard(breaker, clock)
    a_inside, b_inside, a_done = threading.Event(), threading.Event(), threading.Event()
    seen: list[int] = []

    def a() -> None:
        with guard:
            a_inside.set()
            assert b_inside.wait(timeout=60)
        a_done.set()

    thread = threading.Thread(target=a)
    thread.start()
    assert a_inside.wait(timeout=60)
    breaker.record_failure(clock.now)
    clock.now += 10.0
    with guard:
        b_inside.set()
        assert a_done.wait(timeout=60)
        seen.append(breaker.probes_in_flight)
    thread.join()
    assert seen == [1]
    assert (breaker.state, breaker.probes_in_flight, breaker.success_count) == (HALF_OPEN, 0, 2)


# -- threads ----------------------------------------------------------------------------


@pytest.fixture
def switch_threads_often() -> Iterator[None]:
    """Make the interpreter switch threads as often as it can, so races show."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@pytest.mark.usefixtures("switch_threads_often")
@settings(max_examples=30, deadline=None)
@given(quota=st.integers(1, 4), threads=st.integers(2, 8), as_block=st.booleans())
def test_threads_through_a_guard_never_get_more_than_the_half_open_quota_admitted(
    quota: int, threads: int, as_block: bool
) -> None:
    """However many threads call at once, at most ``half_open_max_calls`` of them run
    the guarded call; those probes then close the breaker, once."""
    transitions: list[tuple[CircuitState, CircuitState]] = []
    breaker = CircuitBreaker(
        "shared",
        CircuitBreakerConfig(
            failure_threshold=1,
            recovery_timeout=1.0,
            success_threshold=quota,
            half_open_max_calls=quota,
        ),
        on_transition=lambda _b, old, new, _r, _t: transitions.append((old, new)),
        thread_safe=True,
    )
    breaker.record_failure(0.0)
    transitions.clear()
    guard = Guard(breaker, lambda: Yielding(1.5))
    lock = threading.Lock()
    decided = 0
    everyone_decided = threading.Event()
    inside = most_inside = refused = 0

    def one_decided() -> None:
        nonlocal decided
        with lock:
            decided += 1
            if decided == threads:
                everyone_decided.set()

    def probe() -> None:
        nonlocal inside, most_inside
        with lock:
            inside += 1
            most_inside = max(most_inside, inside)
        one_decided()
        # Hold the permit until every thread has been admitted or refused.
        assert everyone_decided.wait(timeout=60)
        with lock:
            inside -= 1

    guarded = guard(probe)

    def call() -> None:
        nonlocal refused
        try:
            if as_block:
                with guard:
                    probe()
            else:
                guarded()
        except CircuitBreakerError:
            with lock:
                refused += 1
            one_decided()

    at_once(threads, call)
    assert most_inside == min(quota, threads)
    assert refused == threads - min(quota, threads)
    assert breaker.probes_in_flight == 0
    if threads >= quota:
        assert transitions == [(OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert breaker.total_successes == min(quota, threads)


@pytest.mark.usefixtures("switch_threads_often")
def test_threads_through_a_guard_take_turns_in_the_breaker() -> None:
    """Guarded calls and blocks in eight threads record every outcome, one thread at a
    time inside the breaker (the clock's readings let another thread run while they are
    divided up into the failure-rate window)."""
    config = CircuitBreakerConfig(
        failure_threshold=10**9, failure_rate_threshold=1.0, minimum_calls=10**9, window=1e6
    )
    breaker = CircuitBreaker("shared", config, thread_safe=True)
    guard = Guard(breaker, lambda: Crowded(0.0))

    @guard
    def succeed() -> None:
        pass

    @guard
    def fail() -> NoReturn:
        raise Failed

    def work() -> None:
        for i in range(100):
            if i % 2:
                succeed()
            else:
                with pytest.raises(Failed):
                    fail()
            with guard:
                pass

    Crowded.most = 0
    at_once(8, work)
    assert Crowded.most == 1
    assert (breaker.total_successes, breaker.total_failures) == (8 * 150, 8 * 50)
    assert breaker.failure_rate(0.0) == (8 * 50, 8 * 200)


# -- the decorator ----------------------------------------------------------------------


def test_the_wrapper_looks_like_the_function() -> None:
    guard = Guard(CircuitBreaker("svc"), FakeClock())

    def pay(order: int, amount: float = 1.0, *, note: str = "") -> str:
        """Pay an order."""
        return f"{order}:{amount}:{note}"

    async def fetch(url: str) -> str:
        """Fetch a page."""
        return url

    for fn in (pay, fetch):
        wrapped = guard(fn)
        assert wrapped.__name__ == fn.__name__
        assert wrapped.__doc__ == fn.__doc__
        assert wrapped.__wrapped__ is fn  # type: ignore[attr-defined]
        assert inspect.signature(wrapped) == inspect.signature(fn)
        assert inspect.iscoroutinefunction(wrapped) == inspect.iscoroutinefunction(fn)
    assert guard(pay)(3, note="x") == "3:1.0:x"


def test_the_wrapper_passes_on_every_kind_of_parameter_as_the_function_takes_it() -> None:
    guard = Guard(CircuitBreaker("svc"), FakeClock())
    marker: list[int] = []

    def every(
        a: int, b: int = 2, /, c: int = 3, *args: int, d: int, e: int = 5, **kw: int
    ) -> tuple[Any, ...]:
        return a, b, c, args, d, e, kw

    def mutable(seen: list[int] = marker) -> list[int]:
        return seen

    wrapped = guard(every)
    for args, kwargs in [
        ((1,), {"d": 4}),
        ((1, 20, 30, 40, 50), {"d": 4, "e": 6, "z": 9}),
        ((1,), {"c": 7, "d": 4, "b": 8}),  # b is positional-only: it lands in **kw
    ]:
        assert wrapped(*args, **kwargs) == every(*args, **kwargs)
    for bad_args, bad_kwargs in [((), {"d": 4}), ((1,), {}), ((1, 2, 3), {"c": 3, "d": 4})]:
        with pytest.raises(TypeError):
            every(*bad_args, **bad_kwargs)
        with pytest.raises(TypeError):
            wrapped(*bad_args, **bad_kwargs)
    assert guard(mutable)() is marker  # a default is the function's own object


def test_callables_other_than_plain_functions_are_guarded_too() -> None:
    breaker = CircuitBreaker("svc")
    guard = Guard(breaker, FakeClock())

    class Adder:
        def __call__(self, a: int, b: int) -> int:
            return a + b

    def clash(_guard_fn: int, Exception: int = 1) -> int:
        return _guard_fn + Exception

    assert guard(Adder())(1, 2) == 3
    assert guard(functools.partial(pow, 2))(10) == 1024
    assert guard(len)([1, 2]) == 2
    assert guard(clash)(1, Exception=2) == 3
    assert breaker.total_successes == 4


def test_decorated_methods_bind_like_the_methods() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("svc")
    guard = Guard(breaker, clock)

    class Client:
        def __init__(self, base: str) -> None:
            self.base = base

        @guard
        def get(self, path: str) -> str:
            return self.base + path

        @guard
        async def aget(self, path: str) -> str:
            return self.base + path

        @classmethod
        @guard
        def make(cls, base: str) -> Client:
            return cls(base)

    client = Client.make("https://x")
    assert client.get("/a") == "https://x/a"
    assert trio.run(client.aget, "/b") == "https://x/b"
    assert breaker.total_successes == 3


def test_async_callables_are_recognised() -> None:
    breaker = CircuitBreaker("svc")
    guard = Guard(breaker, FakeClock())

    class Handler:
        async def __call__(self, value: int) -> int:
            return value * 2

    async def add(a: int, b: int) -> int:
        return a + b

    for fn, args in ((Handler(), (21,)), (functools.partial(add, 40), (2,))):
        wrapped = guard(fn)
        assert inspect.iscoroutinefunction(wrapped)
        assert trio.run(wrapped, *args) == 42


def test_a_breaker_subclass_that_overrides_acquire_is_asked_every_time() -> None:
    calls: list[str] = []

    class CountingAdmissions(CircuitBreaker):
        def acquire(self, now: float) -> bool:
            calls.append("acquire")
            return super().acquire(now)

    guard = Guard(CountingAdmissions("svc"), FakeClock())
    guard(lambda: None)()
    with guard:
        pass
    trio.run(guard(trio.lowlevel.checkpoint))
    assert calls == ["acquire"] * 3


def test_a_breaker_subclass_that_overrides_record_success_is_told_every_time() -> None:
    calls: list[str] = []

    class CountingSuccesses(CircuitBreaker):
        def record_success(self, now: float, generation: int | None = None) -> None:
            calls.append("record_success")
            super().record_success(now, generation)

    breaker = CountingSuccesses("svc")
    guard = Guard(breaker, FakeClock())
    guard(lambda: None)()
    with guard:
        pass
    trio.run(guard(trio.lowlevel.checkpoint))
    assert calls == ["record_success"] * 3
    assert breaker.total_successes == 3


# -- arguments --------------------------------------------------------------------------


def test_bad_arguments_raise_type_errors_naming_them() -> None:
    breaker = CircuitBreaker("svc")
    with pytest.raises(TypeError, match=r"^breaker: expected a CircuitBreaker, got str$"):
        Guard("svc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^clock: expected a callable, got float$"):
        Guard(breaker, 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^clock: expected a callable, got NoneType$"):
        Guard(breaker, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^classify: expected a callable or None, got str$"):
        Guard(breaker, classify="failure")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^fallback: expected a callable or None, got int$"):
        Guard(breaker, fallback=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^fn: expected a callable, got int$"):
        Guard(breaker)(3)  # type: ignore[arg-type]
    assert Guard(breaker, FakeClock(), classifier).classify is classifier  # as DESIGN.md has it
    with pytest.raises(TypeError):  # fallback is keyword-only
        Guard(breaker, FakeClock(), classifier, lambda: None)  # type: ignore[call-arg]


def test_the_default_clock_is_the_monotonic_one() -> None:
    import time

    guard = Guard(CircuitBreaker("svc"))
    assert guard.clock is time.monotonic
    assert (guard.classify, guard.fallback) == (None, None)
    assert repr(guard).startswith("Guard(breaker=CircuitBreaker(name='svc'")


# -- against the reference model ------------------------------------------------------

SyncMode = Literal["decorator", "with"]
AsyncMode = Literal["async decorator", "async with"]
CallMode = SyncMode | AsyncMode
Ending = Literal["return", "unclassified", "classifier raises", "interrupt"] | ErrorClass


@attrs.frozen
class GuardedCall:
    """One call through the guard: the clock moves by *wait* (or to the OPEN deadline)
    first, the call makes the *inner* guarded calls, the clock moves by *duration*, and
    the call ends as *ending* says."""

    mode: CallMode
    wait: float
    to_deadline: bool
    inner: tuple[GuardedCall, ...]
    duration: float
    ending: Ending


SYNC_OF: dict[CallMode, SyncMode] = {
    "decorator": "decorator",
    "with": "with",
    "async decorator": "decorator",
    "async with": "with",
}
RESULT = object()
FALLBACK = object()

endings: SearchStrategy[Ending] = st.one_of(
    st.just("return"),
    st.just("return"),
    error_classes,
    st.sampled_from(["unclassified", "classifier raises", "interrupt"]),
)
delays = st.one_of(st.just(0.0), st.integers(0, 12).map(float), st.floats(0.0, 40.0))
modes: SearchStrategy[CallMode] = st.sampled_from(
    ["decorator", "with", "async decorator", "async with"]
)


def guarded_calls(inner: SearchStrategy[tuple[GuardedCall, ...]]) -> SearchStrategy[GuardedCall]:
    return st.builds(
        GuardedCall,
        mode=modes,
        wait=delays,
        to_deadline=st.booleans(),
        inner=inner,
        duration=st.one_of(st.just(0.0), delays),
        ending=endings,
    )


leaf_calls = guarded_calls(st.just(()))
#: Runs of one call, so that breakers open and close; some calls make calls inside.
call_lists = st.lists(
    st.tuples(
        st.one_of(leaf_calls, guarded_calls(st.lists(leaf_calls, max_size=3).map(tuple))),
        st.integers(1, 5),
    ),
    min_size=1,
    max_size=25,
).map(lambda runs: [call for call, times in runs for _ in range(times)])


def every_field(breaker: CircuitBreaker) -> dict[str, object]:
    return {
        field: getattr(breaker, field)
        for field in attrs.fields_dict(CircuitBreaker)
        if field not in ("on_transition", "_lock")
    }


class Driver:
    """Runs guarded calls and, in step, the same calls on the reference model and on a
    twin breaker driven through its plain methods; compares all three after each."""

    def __init__(
        self,
        config: CircuitBreakerConfig,
        *,
        thread_safe: bool,
        fallback: bool,
        checkpoint: Callable[[], Awaitable[None]],
    ) -> None:
        self.clock = FakeClock()
        self.breaker = CircuitBreaker("svc", config, thread_safe=thread_safe)
        self.twin = CircuitBreaker("svc", config, thread_safe=thread_safe)
        self.model = ModelBreaker(config)
        self.fallback_calls: list[tuple[Any, ...]] = []
        self.guard = Guard(
            self.breaker,
            self.clock,
            classify=self.classify,
            fallback=self.fall_back if fallback else None,
        )
        self.checkpoint = checkpoint
        self.sync_call = self.guard(self.work)
        self.async_call = self.guard(self.async_work)

    @staticmethod
    def classify(error: BaseException) -> ErrorClass | None:
        if isinstance(error, Baffling):
            raise RuntimeError("a classifier bug")
        return classifier(error)

    def fall_back(self, *args: Any) -> object:
        self.fallback_calls.append(args)
        return FALLBACK

    # -- one call, in three steps -----------------------------------------------------------

    def admit(self, call: GuardedCall) -> int | None:
        """Move the clock, then admit the call on the model and the twin: the generation
        its outcome carries, or ``None`` when they refuse it."""
        self.clock.now += call.wait
        deadline = self.model.next_attempt_time
        if call.to_deadline and deadline is not None:
            self.clock.now = max(self.clock.now, deadline)
        admitted = self.model.acquire(self.clock.now)
        assert self.twin.acquire(self.clock.now) == admitted
        if not admitted:
            return None
        assert self.twin.generation == self.model.generation
        return self.model.generation

    def end(self, call: GuardedCall) -> object:
        """The end of the call's body, after its inner calls."""
        self.clock.now += call.duration
        if call.ending == "return":
            return RESULT
        if call.ending == "interrupt":
            raise Interrupt
        if call.ending == "classifier raises":
            raise Baffling
        raise Failed(call.ending if isinstance(call.ending, ErrorClass) else None)

    def settle(
        self,
        call: GuardedCall,
        mode: CallMode,
        generation: int | None,
        result: object,
        error: BaseException | None,
    ) -> None:
        """Check what the call gave, record the outcome on the model and the twin, and
        compare the three."""
        now = self.clock.now
        if generation is None:
            if self.guard.fallback is not None and mode.endswith("decorator"):
                assert (result, error) == (FALLBACK, None)
                assert self.fallback_calls.pop() == (call,)
            else:
                assert isinstance(error, CircuitBreakerError), error
                assert (error.state, error.next_attempt_time) == (
                    self.model.state,
                    self.model.next_attempt_time,
                )
        elif call.ending == "return":
            assert (result, error) == (RESULT, None)
            self.model.record_success(now, generation)
            self.twin.record_success(now, generation)
        elif call.ending == "interrupt":
            assert isinstance(error, Interrupt), error
            self.model.release(generation)
            self.twin.release(generation)
        else:
            assert isinstance(error, Failed | Baffling), error
            error_class = (
                call.ending if isinstance(call.ending, ErrorClass) else ErrorClass.failure()
            )
            if call.ending == "classifier raises":
                assert "a classifier bug" in "".join(getattr(error, "__notes__", []))
            self.model.record_error(now, error_class, generation)
            self.twin.record_error(now, error_class, generation)
        assert observed(self.breaker, now) == expected(self.model, now), call
        assert every_field(self.breaker) == every_field(self.twin), call

    # -- the bodies and the modes ------------------------------------------------------------

    def work(self, call: GuardedCall) -> object:
        for inner in call.inner:
            self.run(inner)
        return self.end(call)

    async def async_work(self, call: GuardedCall) -> object:
        await self.checkpoint()
        for inner in call.inner:
            await self.run_async(inner)
        return self.end(call)

    def run(self, call: GuardedCall) -> None:
        """Make *call* synchronously (an async mode is made as its sync twin)."""
        mode = SYNC_OF[call.mode]
        generation = self.admit(call)
        result: object = None
        error: BaseException | None = None
        try:
            if mode == "decorator":
                result = self.sync_call(call)
            else:
                with self.guard:
                    result = self.work(call)
        except (CircuitBreakerError, Failed, Baffling, Interrupt) as caught:
            error = caught
        self.settle(call, mode, generation, result, error)

    async def run_async(self, call: GuardedCall) -> None:
        if call.mode in ("decorator", "with"):
            self.run(call)
            return
        generation = self.admit(call)
        result: object = None
        error: BaseException | None = None
        try:
            if call.mode == "async decorator":
                result = await self.async_call(call)
            else:
                async with self.guard:
                    result = await self.async_work(call)
        except (CircuitBreakerError, Failed, Baffling, Interrupt) as caught:
            error = caught
        self.settle(call, call.mode, generation, result, error)


async def asyncio_checkpoint() -> None:
    await asyncio.sleep(0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config=configs(),
    calls=call_lists,
    thread_safe=st.booleans(),
    fallback=st.booleans(),
)
@pytest.mark.parametrize("loop", ["trio", "asyncio"])
def test_guarded_calls_leave_the_breaker_where_the_reference_model_says(
    loop: str,
    config: CircuitBreakerConfig,
    calls: list[GuardedCall],
    thread_safe: bool,
    fallback: bool,
) -> None:
    """Sync and async decorated functions and ``with`` / ``async with`` blocks, nested,
    ending in every error class, a classifier bug or a cancellation-like BaseException,
    with the clock moving before and during each call: after every call the breaker is
    where the reference model says a caller of acquire / record_error / release with the
    admission's generation leaves it, field for field the same as a twin breaker driven
    that way, and a refused call raised (or fell back) as the model says."""
    checkpoint = trio.lowlevel.checkpoint if loop == "trio" else asyncio_checkpoint
    driver = Driver(config, thread_safe=thread_safe, fallback=fallback, checkpoint=checkpoint)

    async def main() -> None:
        for call in calls:
            await driver.run_async(call)

    if loop == "trio":
        trio.run(main)
    else:
        asyncio.run(main())


def test_a_disabled_breaker_refuses_with_its_reason() -> None:
    breaker = CircuitBreaker("svc")
    breaker.disable(0.0, "revoked key")
    guard = Guard(breaker, clock=lambda: 1.0)
    with pytest.raises(CircuitBreakerError, match="disabled: revoked key") as excinfo, guard:
        pass  # pragma: no cover
    assert excinfo.value.disabled == "revoked key"
