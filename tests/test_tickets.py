"""Registry.admit() and Registry.settle(): a lease's entry and exit as two synchronous
calls, for callers that run the call themselves (the simulator's events engine)."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from ciris_actors import (
    CircuitBreakerConfig,
    CircuitState,
    Outcome,
    Registry,
    RegistryError,
    Ticket,
    open_registry,
)

from .helpers import Plain

ONE_PROBE = CircuitBreakerConfig(
    failure_threshold=1,
    recovery_timeout=10.0,
    success_threshold=1,
    timeout_duration=5.0,
    half_open_max_calls=1,
)


def breaker(registry: Registry, name: str) -> dict[str, object]:
    return dict(registry.view(name).breaker)


def counted(registry: Registry, name: str) -> dict[str, int]:
    """The provider's calls by outcome, those that happened."""
    return {outcome: n for outcome, n in registry.view(name).outcomes.items() if n}


async def half_open(registry: Registry, name: str) -> None:
    """Trip *name*'s breaker and wait until it lets a probe through."""
    registry.force_open(name, duration=1.0)
    await trio.sleep(1.0)
    await trio.testing.wait_all_tasks_blocked()
    assert registry.view(name).available


async def test_admit_chooses_as_a_lease_would_and_settle_records_the_outcome(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry(default_breaker=ONE_PROBE) as registry:
        first = registry.register("*", "llm", Plain("first"), name="first")
        registry.register("*", "llm", Plain("second"), name="second", priority_group=1)
        ticket = registry.admit("*", "llm")
        assert isinstance(ticket, Ticket)
        assert ticket.name == first
        assert ticket.instance.label == "first"
        assert ticket.deadline == trio.current_time() + ONE_PROBE.timeout_duration
        registry.settle(ticket, Outcome.SUCCESS)
        assert ticket.settled
        assert breaker(registry, first)["total_successes"] == 1

        failing = registry.admit("*", "llm")
        assert failing is not None
        registry.settle(failing, "failure")  # the value's string works too
        assert breaker(registry, first)["state"] == CircuitState.OPEN.value
        after = registry.admit("*", "llm")
        assert after is not None
        assert after.name == "second"  # the open breaker is skipped, as a lease skips it


async def test_exclude_skips_providers_already_tried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry() as registry:
        registry.register("*", "llm", Plain(), name="a")
        registry.register("*", "llm", Plain(), name="b", priority_group=1)
        ticket = registry.admit("*", "llm", exclude=["a", "gone-since"])
        assert ticket is not None
        assert ticket.name == "b"
        assert registry.admit("*", "llm", exclude=("a", "b")) is None


async def test_admit_returns_none_when_nothing_is_available(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry() as registry:
        registry.register("*", "llm", Plain(), name="a", capabilities=["chat"])
        assert registry.admit("*", "embedding") is None
        assert registry.admit("*", "llm", ["vision"]) is None
        assert registry.admit("*", "llm", ["chat"]) is not None


async def test_a_half_open_ticket_holds_the_probe_until_settled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry(default_breaker=ONE_PROBE) as registry:
        name = registry.register("*", "llm", Plain(), name="a")
        await half_open(registry, name)
        probe = registry.admit("*", "llm")
        assert probe is not None
        assert breaker(registry, name)["probes_in_flight"] == 1
        assert registry.admit("*", "llm") is None  # the quota of one is taken
        registry.settle(probe, Outcome.NONE)  # never reached the provider
        assert breaker(registry, name)["probes_in_flight"] == 0
        assert breaker(registry, name)["state"] == CircuitState.HALF_OPEN.value
        second = registry.admit("*", "llm")
        assert second is not None
        registry.settle(second, Outcome.SUCCESS)
        assert breaker(registry, name)["state"] == CircuitState.CLOSED.value


async def test_an_unsettled_half_open_ticket_fails_at_its_deadline_and_a_late_settle_is_ignored(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry(default_breaker=ONE_PROBE) as registry:
        name = registry.register("*", "llm", Plain(), name="a")
        await half_open(registry, name)
        probe = registry.admit("*", "llm", timeout=2.0)
        assert probe is not None
        assert probe.deadline == trio.current_time() + 2.0
        await trio.sleep(2.0)
        await trio.testing.wait_all_tasks_blocked()
        # Counted as a failure at the deadline, as a lease's deadline would count it,
        # and as a call that timed out.
        assert breaker(registry, name)["state"] == CircuitState.OPEN.value
        assert breaker(registry, name)["probes_in_flight"] == 0
        assert counted(registry, name) == {"timeout": 1}
        failures = breaker(registry, name)["total_failures"]
        registry.settle(probe, Outcome.SUCCESS)  # too late: records nothing
        assert breaker(registry, name)["state"] == CircuitState.OPEN.value
        assert breaker(registry, name)["total_failures"] == failures
        assert breaker(registry, name)["total_successes"] == 0
        assert counted(registry, name) == {"timeout": 1}


async def test_an_unsettled_closed_ticket_records_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry(default_breaker=ONE_PROBE) as registry:
        name = registry.register("*", "llm", Plain(), name="a")
        assert registry.admit("*", "llm") is not None
        await trio.sleep(60.0)
        stats = breaker(registry, name)
        assert (stats["total_failures"], stats["total_successes"]) == (0, 0)
        assert stats["state"] == CircuitState.CLOSED.value


async def test_a_probe_settled_in_time_is_not_expired_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry(default_breaker=ONE_PROBE) as registry:
        name = registry.register("*", "llm", Plain(), name="a")
        await half_open(registry, name)
        probe = registry.admit("*", "llm")
        assert probe is not None
        registry.settle(probe, Outcome.SUCCESS)
        await trio.sleep(ONE_PROBE.timeout_duration * 2)
        assert breaker(registry, name)["state"] == CircuitState.CLOSED.value
        assert breaker(registry, name)["total_failures"] == 0


async def test_settle_refuses_a_second_settle_a_foreign_ticket_and_bad_outcomes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry() as registry, open_registry() as other:
        name = registry.register("*", "llm", Plain(), name="a")
        other.register("*", "llm", Plain(), name="a")
        ticket = registry.admit("*", "llm")
        foreign = other.admit("*", "llm")
        assert ticket is not None
        assert foreign is not None
        with pytest.raises(ValueError, match="another registry"):
            registry.settle(foreign, Outcome.SUCCESS)
        with pytest.raises(ValueError, match="outcome: unknown outcome 'maybe'"):
            registry.settle(ticket, "maybe")
        with pytest.raises(TypeError, match="outcome: expected an Outcome"):
            registry.settle(ticket, 1)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="ticket: expected a Ticket"):
            registry.settle(name, Outcome.SUCCESS)  # type: ignore[arg-type]
        assert not ticket.settled  # none of the refusals changed anything
        assert breaker(registry, name)["total_successes"] == 0
        registry.settle(ticket, Outcome.SUCCESS)
        with pytest.raises(RegistryError, match="settled already"):
            registry.settle(ticket, Outcome.FAILURE)
        assert breaker(registry, name)["total_successes"] == 1
        assert breaker(registry, name)["total_failures"] == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"exclude": "a"}, TypeError, "exclude: .*a single name"),
        ({"exclude": 5}, TypeError, "exclude: expected an iterable of provider names"),
        ({"timeout": -1.0}, ValueError, "timeout"),
        ({"timeout": math.nan}, ValueError, "timeout"),
        ({"timeout": "5"}, TypeError, "timeout"),
        ({"required_capabilities": "chat"}, TypeError, "required_capabilities"),
    ],
)
async def test_admit_refuses_bad_input_and_admits_nothing(
    autojump_clock: trio.testing.MockClock,
    kwargs: dict[str, object],
    error: type[Exception],
    match: str,
) -> None:
    async with open_registry(default_breaker=ONE_PROBE) as registry:
        name = registry.register("*", "llm", Plain(), name="a")
        await half_open(registry, name)
        with pytest.raises(error, match=match):
            registry.admit("*", "llm", **kwargs)  # type: ignore[arg-type]
        assert breaker(registry, name)["probes_in_flight"] == 0  # no permit was taken


async def test_admit_and_settle_refuse_a_closed_registry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry() as registry:
        registry.register("*", "llm", Plain(), name="a")
        ticket = registry.admit("*", "llm")
        assert ticket is not None
    with pytest.raises(RegistryError, match="closed"):
        registry.admit("*", "llm")
    with pytest.raises(RegistryError, match="closed"):
        registry.settle(ticket, Outcome.SUCCESS)


async def test_report_success_never_returns_a_ticket_s_probe(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A ``report_*`` about a ``get_service`` call returns only get_service's permits: a
    ticket's probe stays held until the ticket is settled."""
    two_probes = CircuitBreakerConfig(
        failure_threshold=1,
        recovery_timeout=10.0,
        timeout_duration=5.0,
        half_open_max_calls=2,
        success_threshold=3,
    )
    async with open_registry(default_breaker=two_probes) as registry:
        name = registry.register("*", "llm", Plain(), name="a")
        await half_open(registry, name)
        ticket = registry.admit("*", "llm")
        assert ticket is not None
        registry.report_success(name)  # about some other call: no get_service permit out
        assert breaker(registry, name)["probes_in_flight"] == 1  # the ticket's, still held
        registry.settle(ticket, Outcome.SUCCESS)
        assert breaker(registry, name)["probes_in_flight"] == 0
        assert breaker(registry, name)["success_count"] == 2


async def test_a_settle_at_or_after_the_deadline_is_a_failure_whatever_it_says(
    mock_clock: trio.testing.MockClock,
) -> None:
    """Deterministic at the deadline: the ticket's settle and the breaker actor's expiry
    agree (a lease's deadline fires at that instant too), whichever runs first."""
    async with open_registry(default_breaker=ONE_PROBE) as registry:
        name = registry.register("*", "llm", Plain(), name="a")
        registry.force_open(name, duration=1.0)
        mock_clock.jump(1.0)
        await trio.testing.wait_all_tasks_blocked()
        probe = registry.admit("*", "llm", timeout=2.0)
        assert probe is not None
        mock_clock.jump(2.0)  # exactly the deadline; the breaker actor has not run yet
        registry.settle(probe, Outcome.SUCCESS)
        assert breaker(registry, name)["state"] == CircuitState.OPEN.value
        assert breaker(registry, name)["total_successes"] == 0
        await trio.testing.wait_all_tasks_blocked()  # the actor wakes: nothing to expire
        assert breaker(registry, name)["total_failures"] == 1
        assert counted(registry, name) == {"timeout": 1}  # once, whichever ran first

        registry.reset_circuit_breaker(name)
        late = registry.admit("*", "llm", timeout=1.0)  # CLOSED: no permit
        assert late is not None
        mock_clock.jump(5.0)
        registry.settle(late, Outcome.SUCCESS)
        assert breaker(registry, name)["total_failures"] == 2
        assert breaker(registry, name)["total_successes"] == 0
