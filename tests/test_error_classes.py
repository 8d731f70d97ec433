"""Error classes through the registry: lease, call, report_failure, settle and health
checks record what an error means (DESIGN.md section 5), and call fails over, stops,
reroutes or waits accordingly."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings, strategies as st

from ciris_actors import (
    CircuitBreakerConfig,
    CircuitState,
    ErrorClass,
    NoServiceAvailable,
    Outcome,
    ProviderDisabled,
    Registry,
    SelectionStrategy,
    open_registry,
)

from .conftest import FAST_BREAKER


class Plain:
    """A provider with nothing to start or check: routable as soon as it is registered."""

    def __init__(self, name: str) -> None:
        self.name = name


class Refused(Exception):
    """An error whose class the test's classifier decides by its ``kind``."""

    def __init__(self, kind: str, *, retry_after: float | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after


def by_kind(error: BaseException) -> ErrorClass | None:
    if not isinstance(error, Refused):
        return None
    if error.kind == "ignore":
        return ErrorClass.ignore()
    if error.kind == "success":
        return ErrorClass.success()
    if error.kind == "rate_limited":
        return ErrorClass.rate_limited(error.retry_after)
    if error.kind == "disable":
        return ErrorClass.disable("key revoked")
    if error.kind == "reroute":
        return ErrorClass.reroute(require=("long_context",))
    return ErrorClass.failure()


def raising(kind: str, **kwargs: float) -> Callable[[object], Awaitable[object]]:
    async def fn(instance: object) -> object:
        raise Refused(kind, **kwargs)

    return fn


async def answer(instance: Plain) -> str:
    return instance.name


def outcomes(registry: Registry, name: str) -> dict[str, int]:
    return {k: v for k, v in registry.view(name).outcomes.items() if v}


@pytest.fixture
async def classified() -> object:
    async with open_registry(
        required_services=("llm",),
        health_check_interval=None,
        default_breaker=FAST_BREAKER,
        classify=by_kind,
    ) as registry:
        yield registry


# -- lease --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "state", "counted"),
    [
        ("failure", CircuitState.CLOSED, {"failure": 1}),
        ("ignore", CircuitState.CLOSED, {"ignored": 1}),
        ("success", CircuitState.CLOSED, {"success": 1}),
        ("rate_limited", CircuitState.OPEN, {"rate_limited": 1}),
        ("disable", CircuitState.OPEN, {"disabled": 1}),
        ("reroute", CircuitState.CLOSED, {"rerouted": 1}),
    ],
)
async def test_a_lease_records_an_error_as_its_class_says_and_reraises_it(
    autojump_clock: trio.testing.MockClock,
    classified: Registry,
    kind: str,
    state: CircuitState,
    counted: dict[str, int],
) -> None:
    name = classified.register("H", "llm", Plain("a"))
    with pytest.raises(Refused):
        async with classified.lease("H", "llm"):
            raise Refused(kind)
    view = classified.view(name)
    assert view.breaker["state"] == state.value
    assert outcomes(classified, name) == counted
    assert view.breaker["failure_count"] == (1 if kind == "failure" else 0)


async def test_without_a_classifier_every_error_is_a_failure(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    name = registry.register("H", "llm", Plain("a"))
    with pytest.raises(Refused):
        async with registry.lease("H", "llm"):
            raise Refused("ignore")
    assert outcomes(registry, name) == {"failure": 1}


async def test_timeouts_and_cancellations_are_counted_apart(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    name = registry.register("H", "llm", Plain("a"))
    with pytest.raises(trio.TooSlowError):
        async with registry.lease("H", "llm"):
            await trio.sleep(math.inf)
    with trio.move_on_after(1.0):
        async with registry.lease("H", "llm"):
            await trio.sleep(math.inf)
    async with registry.lease("H", "llm"):
        pass
    assert outcomes(registry, name) == {"timeout": 1, "cancelled": 1, "success": 1}
    assert registry.view(name).breaker["total_failures"] == 1


async def test_the_providers_classifier_is_asked_before_the_registrys(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    def mine(error: BaseException) -> ErrorClass | None:
        return ErrorClass.ignore() if str(error) == "failure" else None

    name = classified.register("H", "llm", Plain("a"), classify=mine)
    for kind in ("failure", "rate_limited"):
        with pytest.raises(Refused):
            async with classified.lease("H", "llm"):
                raise Refused(kind)
    # Its own said "ignore" to the first; it had no opinion on the second.
    assert outcomes(classified, name) == {"ignored": 1, "rate_limited": 1}


async def test_a_classifier_that_raises_counts_the_error_as_a_failure_with_a_note(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    def broken(error: BaseException) -> ErrorClass | None:
        raise ZeroDivisionError("oops")

    name = registry.register("H", "llm", Plain("a"), classify=broken)
    with pytest.raises(Refused) as excinfo:
        async with registry.lease("H", "llm"):
            raise Refused("ignore")
    assert outcomes(registry, name) == {"failure": 1}
    assert any("ZeroDivisionError" in note for note in excinfo.value.__notes__)


@pytest.mark.parametrize("bad", ["ignore", 3])
async def test_a_classifier_that_is_not_callable_is_refused_before_anything_is_registered(
    autojump_clock: trio.testing.MockClock, registry: Registry, bad: object
) -> None:
    with pytest.raises(TypeError, match=r"^classify: expected a callable"):
        registry.register("H", "llm", Plain("a"), classify=bad)  # type: ignore[arg-type]
    assert registry.snapshot() == ()
    with pytest.raises(TypeError, match=r"^classify: expected a callable"):
        async with open_registry(classify=bad):  # type: ignore[arg-type]
            pass  # pragma: no cover


# -- call ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ignore", "success"])
async def test_call_raises_an_ignored_or_successful_error_at_once_without_failing_over(
    autojump_clock: trio.testing.MockClock, classified: Registry, kind: str
) -> None:
    first = classified.register("H", "llm", Plain("a"))
    second = classified.register("H", "llm", Plain("b"))
    with pytest.raises(Refused):
        await classified.call("H", "llm", raising(kind))
    assert outcomes(classified, first) == {"ignored" if kind == "ignore" else "success": 1}
    assert outcomes(classified, second) == {}


@pytest.mark.parametrize("kind", ["failure", "rate_limited", "disable"])
async def test_call_fails_over_from_a_failure_a_rate_limit_or_a_disable(
    autojump_clock: trio.testing.MockClock, classified: Registry, kind: str
) -> None:
    calls: list[str] = []

    async def first_refuses(instance: Plain) -> str:
        calls.append(instance.name)
        if instance.name == "a":
            raise Refused(kind)
        return instance.name

    classified.register("H", "llm", Plain("a"), name="a")
    classified.register("H", "llm", Plain("b"), name="b")
    assert await classified.call("H", "llm", first_refuses) == "b"
    assert calls == ["a", "b"]


async def test_a_rate_limit_keeps_the_provider_out_until_retry_after_then_it_is_back(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    classified.register("H", "llm", Plain("a"), name="a")
    classified.register("H", "llm", Plain("b"), name="b")
    start = trio.current_time()
    with pytest.raises(Refused):
        async with classified.lease("H", "llm"):
            raise Refused("rate_limited", retry_after=42.0)
    assert classified.view("a").breaker["next_attempt_time"] == start + 42.0
    assert await classified.call("H", "llm", answer) == "b"
    await trio.sleep(42.0)
    assert await classified.call("H", "llm", answer) == "a"


async def test_a_second_shorter_rate_limit_does_not_shorten_the_first(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    name = classified.register("H", "llm", Plain("a"))
    start = trio.current_time()
    classified.report_failure(name, Refused("rate_limited", retry_after=60.0))
    classified.report_failure(name, Refused("rate_limited", retry_after=1.0))
    assert classified.view(name).breaker["next_attempt_time"] == start + 60.0


async def test_a_disabled_provider_leaves_routing_until_its_breaker_is_reset(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    classified.register("H", "llm", Plain("a"), name="a")
    classified.register("H", "llm", Plain("b"), name="b")
    async with classified.events(types=[ProviderDisabled]) as events:
        assert await classified.call("H", "llm", _refuse_on("a", "disable")) == "b"
        event = await events.receive()
    assert isinstance(event, ProviderDisabled)
    assert (event.name, event.reason) == ("a", "key revoked")
    view = classified.view("a")
    assert view.disabled == "key revoked"
    assert view.as_dict()["disabled"] == "key revoked"
    assert view.breaker["next_attempt_time"] is None
    await trio.sleep(10_000.0)  # far past any recovery timeout
    assert await classified.call("H", "llm", answer) == "b"
    assert classified.explain("H", "llm").candidates[0].reason == "disabled: key revoked"
    classified.reset_circuit_breaker("a")
    assert classified.view("a").disabled is None
    assert await classified.call("H", "llm", answer) == "a"


async def test_a_new_breaker_configuration_re_enables_a_disabled_provider(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    name = classified.register("H", "llm", Plain("a"))
    classified.report_failure(name, Refused("disable"))
    assert classified.get_service_nowait("H", "llm") is None
    classified.update_circuit_breaker(name, CircuitBreakerConfig(failure_threshold=3))
    assert classified.get_service_nowait("H", "llm") is not None


async def test_a_disabled_breaker_does_not_spin_its_actor(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    """Disabled means OPEN with no deadline: the breaker actor must sleep, not wake at
    a deadline of 0 over and over (virtual time would then never move)."""
    name = classified.register("H", "llm", Plain("a"))
    classified.report_failure(name, Refused("disable"))
    before = trio.current_time()
    await trio.sleep(5.0)
    assert trio.current_time() == before + 5.0


def _refuse_on(refusing: str, kind: str) -> Callable[[Plain], Awaitable[str]]:
    async def fn(instance: Plain) -> str:
        if instance.name == refusing:
            raise Refused(kind)
        return instance.name

    return fn


async def test_a_reroute_goes_on_only_with_providers_that_have_the_capability(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    tried: list[str] = []

    async def overflow_unless_long(instance: Plain) -> str:
        tried.append(instance.name)
        if instance.name != "long":
            raise Refused("reroute")
        return instance.name

    classified.register("H", "llm", Plain("short"), name="short", priority="HIGH")
    classified.register("H", "llm", Plain("other"), name="other", priority="NORMAL")
    classified.register(
        "H", "llm", Plain("long"), name="long", priority="LOW", capabilities=["long_context"]
    )
    assert await classified.call("H", "llm", overflow_unless_long) == "long"
    assert tried == ["short", "long"]  # "other" lacks long_context: never tried
    assert outcomes(classified, "short") == {"rerouted": 1}
    assert classified.view("short").breaker["failure_count"] == 0


async def test_a_reroute_nothing_can_serve_ends_the_call_with_the_attempt_named(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    classified.register("H", "llm", Plain("a"), name="a")
    classified.register("H", "llm", Plain("b"), name="b")
    with pytest.raises(NoServiceAvailable) as excinfo:
        await classified.call("H", "llm", raising("reroute"))
    error = excinfo.value
    assert [(a.name, a.outcome) for a in error.attempts] == [("a", "rerouted")]
    assert error.required_capabilities == frozenset({"long_context"})
    assert "a: needs more capabilities" in str(error)
    assert isinstance(error.__cause__, Refused)


async def test_a_timed_out_attempt_is_named_as_such(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    async def hang(instance: Plain) -> None:
        await trio.sleep(math.inf)

    registry.register("H", "llm", Plain("a"), name="a")
    with pytest.raises(NoServiceAvailable) as excinfo:
        await registry.call("H", "llm", hang)
    assert [(a.name, a.outcome) for a in excinfo.value.attempts] == [("a", "timeout")]
    assert "a: timed out" in str(excinfo.value)


# -- retry_after and wait -----------------------------------------------------------------


async def test_no_service_says_when_the_earliest_skipped_provider_admits_again(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    a = classified.register("H", "llm", Plain("a"))
    b = classified.register("H", "llm", Plain("b"))
    classified.report_failure(a, Refused("rate_limited", retry_after=30.0))
    classified.report_failure(b, Refused("rate_limited", retry_after=12.5))
    with pytest.raises(NoServiceAvailable) as excinfo:
        await classified.call("H", "llm", answer)
    assert excinfo.value.retry_after == 12.5
    assert "the earliest admits again in 12.5 s" in str(excinfo.value)


async def test_retry_after_is_none_when_nothing_will_admit_by_itself(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    name = classified.register("H", "llm", Plain("a"))
    classified.report_failure(name, Refused("disable"))
    with pytest.raises(NoServiceAvailable) as excinfo:
        await classified.call("H", "llm", answer)
    assert excinfo.value.retry_after is None


async def test_call_waits_for_the_earliest_admission_and_is_served_at_that_instant(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    name = classified.register("H", "llm", Plain("a"))
    start = trio.current_time()
    classified.report_failure(name, Refused("rate_limited", retry_after=7.0))
    served_at: list[float] = []

    async def note(instance: Plain) -> str:
        served_at.append(trio.current_time())
        return instance.name

    assert await classified.call("H", "llm", note, wait=10.0) == "a"
    assert served_at == [start + 7.0]


async def test_call_gives_up_when_wait_passes_first(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    name = classified.register("H", "llm", Plain("a"))
    start = trio.current_time()
    classified.report_failure(name, Refused("rate_limited", retry_after=60.0))
    with pytest.raises(NoServiceAvailable) as excinfo:
        await classified.call("H", "llm", answer, wait=5.0)
    assert trio.current_time() == start + 5.0
    assert excinfo.value.retry_after == 55.0


async def test_call_waiting_wakes_when_a_provider_is_registered(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    name = classified.register("H", "llm", Plain("a"))
    classified.report_failure(name, Refused("disable"))
    result: list[str] = []
    async with trio.open_nursery() as nursery:

        async def wait_for_one() -> None:
            result.append(await classified.call("H", "llm", answer, wait=math.inf))

        nursery.start_soon(wait_for_one)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        classified.register("H", "llm", Plain("b"))
    assert result == ["b"]
    assert trio.current_time() == start


async def test_call_waiting_wakes_when_a_breaker_is_reset(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    name = classified.register("H", "llm", Plain("a"))
    classified.report_failure(name, Refused("disable"))
    result: list[str] = []
    async with trio.open_nursery() as nursery:

        async def wait_for_one() -> None:
            result.append(await classified.call("H", "llm", answer, wait=math.inf))

        nursery.start_soon(wait_for_one)
        await trio.testing.wait_all_tasks_blocked()
        classified.reset_circuit_breaker(name)
    assert result == ["a"]


async def test_a_waiting_call_is_cancellable_and_records_nothing(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    name = classified.register("H", "llm", Plain("a"))
    classified.report_failure(name, Refused("rate_limited", retry_after=100.0))
    before = dict(classified.view(name).outcomes)
    with trio.move_on_after(3.0) as scope:
        await classified.call("H", "llm", answer, wait=50.0)
    assert scope.cancelled_caught
    assert dict(classified.view(name).outcomes) == before


@pytest.mark.parametrize(
    ("wait", "error"), [(-1.0, ValueError), (math.nan, ValueError), ("5", TypeError)]
)
async def test_a_bad_wait_is_refused(
    autojump_clock: trio.testing.MockClock, registry: Registry, wait: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=r"^wait:"):
        await registry.call("H", "llm", answer, wait=wait)  # type: ignore[arg-type]


# -- report_failure, settle and health checks --------------------------------------------


async def test_report_failure_classifies_the_error_it_is_given(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    name = classified.register("H", "llm", Plain("a"))
    classified.report_failure(name, Refused("ignore"))
    classified.report_failure(name)
    assert outcomes(classified, name) == {"ignored": 1, "failure": 1}
    with pytest.raises(TypeError, match=r"^error: expected an exception, got str$"):
        classified.report_failure(name, "boom")  # type: ignore[arg-type]
    assert outcomes(classified, name) == {"ignored": 1, "failure": 1}


async def test_settle_classifies_a_failures_error(
    autojump_clock: trio.testing.MockClock, classified: Registry
) -> None:
    name = classified.register("H", "llm", Plain("a"))
    ticket = classified.admit("H", "llm")
    assert ticket is not None
    with pytest.raises(ValueError, match=r"^error: given with outcome 'success'"):
        classified.settle(ticket, Outcome.SUCCESS, error=Refused("ignore"))
    assert not ticket.settled
    classified.settle(ticket, Outcome.FAILURE, error=Refused("rate_limited", retry_after=3.0))
    assert outcomes(classified, name) == {"rate_limited": 1}


async def test_a_ticket_settled_after_its_deadline_counts_as_a_timeout(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    name = registry.register("H", "llm", Plain("a"))
    ticket = registry.admit("H", "llm", timeout=1.0)
    assert ticket is not None
    await trio.sleep(2.0)
    registry.settle(ticket, Outcome.SUCCESS)
    assert outcomes(registry, name) == {"timeout": 1}


class RaisingHealth(Plain):
    def __init__(self, name: str, kind: str) -> None:
        super().__init__(name)
        self.kind = kind

    async def is_healthy(self) -> bool:
        raise Refused(self.kind)


@pytest.mark.parametrize(
    ("kind", "health", "disabled"),
    [("failure", False, None), ("disable", None, "key revoked"), ("ignore", None, None)],
)
async def test_a_health_check_that_raises_is_classified(
    autojump_clock: trio.testing.MockClock,
    classified: Registry,
    kind: str,
    health: bool | None,
    disabled: str | None,
) -> None:
    name = classified.register("H", "llm", RaisingHealth("a", kind))
    await trio.testing.wait_all_tasks_blocked()
    view = classified.view(name)
    assert view.health is health
    assert view.disabled == disabled


# -- get_services -------------------------------------------------------------------------


async def test_get_services_lists_every_available_provider_in_selection_order(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    providers = {n: Plain(n) for n in ("g", "low", "high", "open", "rr1", "rr2")}
    registry.register("*", "llm", providers["g"])
    registry.register("H", "llm", providers["low"], priority="LOW")
    registry.register("H", "llm", providers["high"], priority="HIGH")
    opened = registry.register("H", "llm", providers["open"], priority="CRITICAL")
    registry.force_open(opened)
    for n in ("rr1", "rr2"):
        registry.register(
            "H", "llm", providers[n], priority_group=1, strategy=SelectionStrategy.ROUND_ROBIN
        )
    names = [p.name for p in registry.get_services("H", "llm")]
    assert names == ["high", "low", "rr1", "rr2", "g"]
    assert [p.name for p in registry.get_services("*", "llm")] == ["g"]
    assert registry.get_services("H", "llm", ["nothing-has-this"]) == []


async def test_get_services_follows_the_round_robin_cursor_and_admits_nothing(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    for n in ("a", "b", "c"):
        registry.register("H", "llm", Plain(n), strategy="round_robin", name=n)
    assert registry.get_service_nowait("H", "llm").name == "a"
    assert [p.name for p in registry.get_services("H", "llm")] == ["b", "c", "a"]
    assert registry.get_service_nowait("H", "llm").name == "b"  # the cursor did not move
    half = registry.register(
        "X",
        "llm",
        Plain("h"),
        circuit_breaker_config=CircuitBreakerConfig(
            failure_threshold=1, recovery_timeout=1.0, success_threshold=1
        ),
    )
    registry.report_failure(half)
    await trio.sleep(1.0)
    assert [p.name for p in registry.get_services("X", "llm")] == ["h"]
    assert [p.name for p in registry.get_services("X", "llm")] == ["h"]  # no permit taken
    assert registry.view(half).breaker["probes_in_flight"] == 0


# -- the property -------------------------------------------------------------------------


def _scripted(
    script: dict[str, list[str]], long_ones: set[str], tried: list[str]
) -> Callable[[Plain], Awaitable[str]]:
    """A call's *fn*: each provider raises the next error kind of its script (its last
    one for ever after), or answers for ``"ok"``. It notes every provider tried in
    *tried*, and a broken promise there too, as ``"twice"`` or ``"lacks"`` (an assertion
    here would be an error of the call, classified and failed over like any other)."""
    needs_long = False

    async def fn(instance: Plain) -> str:
        nonlocal needs_long
        if instance.name in tried:
            tried.append("twice")
        if needs_long and instance.name not in long_ones:
            tried.append("lacks")
        tried.append(instance.name)
        kinds = script[instance.name]
        kind = kinds.pop(0) if len(kinds) > 1 else kinds[0]
        if kind == "ok":
            return instance.name
        if kind == "reroute":
            needs_long = True
        raise Refused(kind)

    return fn


KINDS = ("failure", "ignore", "success", "rate_limited", "disable", "reroute", "ok")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.lists(
        st.tuples(st.booleans(), st.lists(st.sampled_from(KINDS), min_size=1, max_size=4)),
        min_size=1,
        max_size=6,
    ),
    calls=st.integers(1, 4),
)
def test_call_never_tries_a_provider_twice_nor_one_without_a_reroutes_capabilities(
    plan: list[tuple[bool, list[str]]], calls: int
) -> None:
    """Whatever classes the providers' errors have, one call tries each provider at most
    once, tries none without the capabilities a reroute asked for, stops at an ignored
    or successful error, and ends served, raising that error, or with NoServiceAvailable
    listing exactly the attempts it made."""

    async def main() -> None:
        async with open_registry(
            health_check_interval=None, default_breaker=FAST_BREAKER, classify=by_kind
        ) as registry:
            script: dict[str, list[str]] = {}
            for i, (long_context, kinds) in enumerate(plan):
                name = f"p{i}"
                script[name] = list(kinds)
                registry.register(
                    "H",
                    "llm",
                    Plain(name),
                    name=name,
                    capabilities=["long_context"] if long_context else [],
                )
            long_ones = {f"p{i}" for i, (lc, _) in enumerate(plan) if lc}
            for _ in range(calls):
                tried: list[str] = []
                fn = _scripted(script, long_ones, tried)
                outcome: object
                try:
                    outcome = await registry.call("H", "llm", fn)
                except (Refused, NoServiceAvailable) as error:
                    outcome = error
                assert "twice" not in tried
                assert "lacks" not in tried
                if isinstance(outcome, Refused):
                    assert outcome.kind in ("ignore", "success")
                elif isinstance(outcome, NoServiceAvailable):
                    assert [a.name for a in outcome.attempts] == tried
                    # An ignored or successful error would have ended the call at once.
                    assert all(
                        getattr(a.error, "kind", None) not in ("ignore", "success")
                        for a in outcome.attempts
                    )
                else:
                    assert outcome == tried[-1]
                await trio.sleep(100.0)  # past every recovery and retry_after used here

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
