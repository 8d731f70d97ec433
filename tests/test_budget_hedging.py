"""Retry budgets and hedged calls (DESIGN.md section 9): the pure budget against a
brute-force oracle, then both through a registry on virtual time."""

from __future__ import annotations

import contextlib
import math

import pytest
import trio
import trio.testing
from hypothesis import given, settings, strategies as st

from ciris_actors import (
    CircuitBreakerConfig,
    ErrorClass,
    HedgeStarted,
    NoServiceAvailable,
    RetryBudget,
    RetryBudgetExhausted,
    RetryRefused,
    open_registry,
)
from ciris_actors.budget import BUDGET_BUCKETS, RetryBudgetState

from .helpers import Plain

NEVER_OPEN = CircuitBreakerConfig(failure_threshold=10**6, timeout_duration=30.0)

# -- the budget, pure ---------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    ratio=st.sampled_from([0.0, 0.2, 0.5, 1.0]),
    per_second=st.sampled_from([0.0, 0.1, 1.0, 3.0]),
    window=st.sampled_from([1.0, 10.0]),
    events=st.lists(st.tuples(st.floats(0.0, 3.0), st.booleans()), min_size=1, max_size=120),
)
def test_a_retry_budget_is_never_exceeded(
    ratio: float, per_second: float, window: float, events: list[tuple[float, bool]]
) -> None:
    """Oracle: every first attempt and granted retry with its bucket; a retry is
    granted exactly when, counting the last ten buckets, retries + 1 <= ratio x first
    attempts + min_per_second x window."""
    state = RetryBudgetState(RetryBudget(ratio=ratio, min_per_second=per_second, window=window))
    width = window / BUDGET_BUCKETS
    now = 0.0
    log: list[tuple[int, bool]] = []  # (bucket, is_retry)
    for delay, is_retry in events:
        now += delay
        bucket = math.floor(now / width)
        live = [(b, r) for b, r in log if b > bucket - BUDGET_BUCKETS]
        firsts = sum(1 for _, r in live if not r)
        retries = sum(1 for _, r in live if r)
        if is_retry:
            granted = state.try_retry(now)
            assert granted == (retries + 1 <= ratio * firsts + per_second * window)
            if granted:
                log.append((bucket, True))
                assert state.spent(now) <= state.allowed(now)  # at the instant it is spent
        else:
            state.first_attempt(now)
            log.append((bucket, False))


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("ratio", -0.1, ValueError),
        ("ratio", math.nan, ValueError),
        ("ratio", "0.2", TypeError),
        ("min_per_second", math.inf, ValueError),
        ("window", 0, ValueError),
    ],
)
def test_a_bad_budget_is_refused_naming_the_field(
    field: str, value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=rf"^{field}:"):
        RetryBudget(**{field: value})  # type: ignore[arg-type]


def test_the_budget_defaults_are_envoys() -> None:
    assert RetryBudget() == RetryBudget(ratio=0.2, min_per_second=3.0, window=10.0)


# -- the budget in a registry -------------------------------------------------------------


async def failing(instance: Plain) -> str:
    raise RuntimeError(f"{instance.label} is down")


async def test_a_spent_budget_ends_a_call_with_an_attempt_that_says_so(
    autojump_clock: trio.testing.MockClock,
) -> None:
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, window=10.0)  # one retry per 10 s
    async with open_registry(
        health_check_interval=None, default_breaker=NEVER_OPEN, retry_budget=budget
    ) as registry:
        for name in ("a", "b", "c"):
            registry.register("H", "llm", Plain(name), name=name)
        with pytest.raises(NoServiceAvailable) as first:
            await registry.call("H", "llm", failing)
        # The first call spent the one retry on b; c was refused.
        assert [(a.name, a.outcome) for a in first.value.attempts] == [
            ("a", "failure"),
            ("b", "failure"),
            ("c", "budget"),
        ]
        assert isinstance(first.value.attempts[-1].error, RetryBudgetExhausted)
        assert "c: not tried: retry budget spent" in str(first.value)
        assert registry.view("c").outcomes["failure"] == 0  # never reached
        async with registry.events(types=[RetryRefused]) as events:
            with pytest.raises(NoServiceAvailable):
                await registry.call("H", "llm", failing)
            refused = await events.receive()
        assert isinstance(refused, RetryRefused)
        assert (refused.name, refused.handler) == ("b", "H")
        assert registry.routing_stats()["retries_refused"] == 2
        await trio.sleep(10.0)  # the window has passed: a retry again
        with pytest.raises(NoServiceAvailable) as later:
            await registry.call("H", "llm", failing)
        assert [a.outcome for a in later.value.attempts] == ["failure", "failure", "budget"]


async def test_without_a_budget_every_provider_is_tried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry(health_check_interval=None, default_breaker=NEVER_OPEN) as registry:
        for name in ("a", "b", "c"):
            registry.register("H", "llm", Plain(name), name=name)
        for _ in range(5):
            with pytest.raises(NoServiceAvailable) as error:
                await registry.call("H", "llm", failing)
            assert [a.outcome for a in error.value.attempts] == ["failure"] * 3
        assert registry.routing_stats()["retries_refused"] == 0


async def test_admit_consults_the_budget_as_call_does_when_asked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``admit(retry=False)`` counts a first attempt, ``retry=True`` spends a retry or is
    refused (the provider released untouched, the refusal published and counted);
    ``retry=None`` leaves the budget alone."""
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, window=10.0)  # one retry per 10 s
    async with open_registry(
        health_check_interval=None, default_breaker=NEVER_OPEN, retry_budget=budget
    ) as registry:
        for name in ("a", "b", "c"):
            registry.register("H", "llm", Plain(name), name=name)
        first = registry.admit("H", "llm", retry=False)
        assert first is not None
        registry.settle(first, "failure")
        second = registry.admit("H", "llm", exclude=["a"], retry=True)
        assert second is not None
        assert second.name == "b"
        registry.settle(second, "failure")
        async with registry.events(types=[RetryRefused]) as events:
            with pytest.raises(RetryBudgetExhausted, match="refused a retry on 'c'"):
                registry.admit("H", "llm", exclude=["a", "b"], retry=True)
            refused = await events.receive()
        assert isinstance(refused, RetryRefused)
        assert refused.name == "c"
        assert registry.view("c").in_flight == 0  # released untouched
        assert registry.routing_stats()["retries_refused"] == 1
        # Not consulted: admitted, and nothing more refused.
        unbudgeted = registry.admit("H", "llm", exclude=["a", "b"])
        assert unbudgeted is not None
        registry.settle(unbudgeted, "success")
        assert registry.routing_stats()["retries_refused"] == 1
        with pytest.raises(TypeError, match=r"^retry: expected True, False or None, got str"):
            registry.admit("H", "llm", retry="yes")  # type: ignore[arg-type]


async def test_admit_with_retry_and_no_budget_admits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry(health_check_interval=None) as registry:
        registry.register("H", "llm", Plain("a"), name="a")
        for _ in range(5):
            ticket = registry.admit("H", "llm", retry=True)
            assert ticket is not None
            registry.settle(ticket, "failure")
        assert registry.routing_stats()["retries_refused"] == 0


async def test_a_bad_retry_budget_argument_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with pytest.raises(TypeError, match=r"^retry_budget: expected a RetryBudget, got float"):
        async with open_registry(retry_budget=0.2):  # type: ignore[arg-type]
            pass  # pragma: no cover


# -- hedging ------------------------------------------------------------------------------


def answering(latency: dict[str, float], log: list[tuple[str, float]]):  # type: ignore[no-untyped-def]
    async def fn(instance: Plain) -> str:
        log.append((instance.label, trio.current_time()))
        await trio.sleep(latency[instance.label])
        return instance.label

    return fn


async def test_a_hedge_starts_after_hedge_after_and_the_first_answer_wins(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry(health_check_interval=None, default_breaker=NEVER_OPEN) as registry:
        registry.register("H", "llm", Plain("slow"), name="slow", priority="HIGH")
        registry.register("H", "llm", Plain("fast"), name="fast", priority="LOW")
        log: list[tuple[str, float]] = []
        start = trio.current_time()
        async with registry.events(types=[HedgeStarted]) as events:
            answer = await registry.call(
                "H", "llm", answering({"slow": 10.0, "fast": 1.0}, log), hedge_after=0.5
            )
            hedge = await events.receive()
        assert answer == "fast"
        assert trio.current_time() == start + 1.5
        assert log == [("slow", start), ("fast", start + 0.5)]
        assert hedge.name == "fast"
        # The loser was cancelled: no success, no failure, counted as cancelled.
        slow = registry.view("slow")
        assert (slow.breaker["total_successes"], slow.breaker["total_failures"]) == (0, 0)
        assert slow.outcomes["cancelled"] == 1
        assert slow.in_flight == 0
        assert registry.routing_stats()["hedges_started"] == 1
        assert registry.routing_stats()["hedges_won"] == 1


async def test_no_hedge_when_the_first_answers_in_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry(health_check_interval=None, default_breaker=NEVER_OPEN) as registry:
        registry.register("H", "llm", Plain("a"), name="a", priority="HIGH")
        registry.register("H", "llm", Plain("b"), name="b", priority="LOW")
        log: list[tuple[str, float]] = []
        assert (
            await registry.call("H", "llm", answering({"a": 0.4, "b": 0.1}, log), hedge_after=0.5)
            == "a"
        )
        assert [name for name, _ in log] == ["a"]
        assert registry.routing_stats()["hedges_started"] == 0


async def test_a_hedged_call_fails_over_at_once_when_an_attempt_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry(health_check_interval=None, default_breaker=NEVER_OPEN) as registry:
        registry.register("H", "llm", Plain("a"), name="a", priority="HIGH")
        registry.register("H", "llm", Plain("b"), name="b", priority="LOW")
        start = trio.current_time()

        async def a_fails(instance: Plain) -> str:
            if instance.label == "a":
                await trio.sleep(0.1)
                raise RuntimeError("down")
            return instance.label

        assert await registry.call("H", "llm", a_fails, hedge_after=5.0) == "b"
        assert trio.current_time() == start + 0.1
        assert registry.routing_stats()["hedges_started"] == 0


@settings(max_examples=40, deadline=None)
@given(
    plan=st.lists(st.tuples(st.floats(0.0, 3.0), st.booleans()), min_size=1, max_size=5),
    hedge_after=st.floats(0.1, 2.0),
)
def test_hedging_keeps_two_in_flight_at_most_no_repeats_and_a_loser_changes_no_breaker(
    plan: list[tuple[float, bool]], hedge_after: float
) -> None:
    """Providers with random latencies that answer or fail: at no instant are more than
    two attempts in flight, no provider is tried twice, and each breaker records exactly
    the attempts that finished on their own (a cancelled loser records nothing)."""

    async def main() -> None:
        async with open_registry(
            health_check_interval=None, default_breaker=NEVER_OPEN
        ) as registry:
            for i in range(len(plan)):
                registry.register("H", "llm", Plain(f"p{i}"), name=f"p{i}", priority_group=i)
            flight = 0
            most = 0
            tried: list[str] = []
            finished: dict[str, str] = {}

            async def fn(instance: Plain) -> str:
                nonlocal flight, most
                name = instance.label
                tried.append(name)
                flight += 1
                most = max(most, flight)
                try:
                    latency, ok = plan[int(name[1:])]
                    await trio.sleep(latency)
                    finished[name] = "success" if ok else "failure"
                    if not ok:
                        raise RuntimeError(name)
                    return name
                finally:
                    flight -= 1

            with contextlib.suppress(NoServiceAvailable):
                await registry.call("H", "llm", fn, hedge_after=hedge_after)
            assert most <= 2
            assert len(tried) == len(set(tried))
            for i in range(len(plan)):
                view = registry.view(f"p{i}")
                stats = view.breaker
                outcome = finished.get(f"p{i}")
                assert stats["total_successes"] == (outcome == "success")
                assert stats["total_failures"] == (outcome == "failure")
                assert view.in_flight == 0

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (math.nan, ValueError), ("1", TypeError)]
)
async def test_a_bad_hedge_after_is_refused(
    autojump_clock: trio.testing.MockClock, value: object, error: type[Exception]
) -> None:
    async with open_registry(health_check_interval=None) as registry:
        with pytest.raises(error, match=r"^hedge_after:"):
            await registry.call("H", "llm", failing, hedge_after=value)  # type: ignore[arg-type]


async def test_a_hedged_call_raises_an_ignored_error_itself_and_cancels_the_other(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class BadRequest(Exception):
        pass

    async with open_registry(
        health_check_interval=None,
        default_breaker=NEVER_OPEN,
        classify=lambda e: ErrorClass.ignore() if isinstance(e, BadRequest) else None,
    ) as registry:
        registry.register("H", "llm", Plain("slow"), name="slow", priority="HIGH")
        registry.register("H", "llm", Plain("bad"), name="bad", priority="LOW")

        async def fn(instance: Plain) -> str:
            if instance.label == "bad":
                raise BadRequest("the request is malformed")
            await trio.sleep(10.0)
            return instance.label

        with pytest.raises(BadRequest):  # not an exception group
            await registry.call("H", "llm", fn, hedge_after=1.0)
        assert registry.view("slow").outcomes["cancelled"] == 1
        assert registry.view("bad").outcomes["ignored"] == 1
