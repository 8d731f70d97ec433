"""Example tests of the pure circuit breaker: configuration, the three states, back-off,
forcing and resetting, read-only inspection, stats, transition callbacks and generations.

Time is an argument everywhere, so every test states its clock explicitly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import attrs
import pytest

from ciris_actors import CircuitBreaker, CircuitBreakerConfig, CircuitBreakerError, CircuitState
from ciris_actors.outcomes import ErrorClass

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN

Transition = tuple[CircuitBreaker, CircuitState, CircuitState, str, float]


def make(**config: float | int | None) -> CircuitBreaker:
    return CircuitBreaker("svc", CircuitBreakerConfig(**config))  # type: ignore[arg-type]


# -- configuration ----------------------------------------------------------------------


def test_config_defaults_are_the_documented_ones() -> None:
    """docs/semantics.md, section 2.1, promises these."""
    config = CircuitBreakerConfig()
    assert attrs.asdict(config) == {
        "failure_threshold": 5,
        "recovery_timeout": 60.0,
        "success_threshold": 3,
        "timeout_duration": 30.0,
        "half_open_max_calls": 3,
        "recovery_backoff": 1.0,
        "max_recovery_timeout": None,
        "failure_rate_threshold": None,
        "minimum_calls": 10,
        "window": 60.0,
    }
    assert CircuitBreaker("svc").config == config


def test_config_half_open_max_calls_defaults_to_success_threshold() -> None:
    assert CircuitBreakerConfig().half_open_max_calls == CircuitBreakerConfig().success_threshold
    assert CircuitBreakerConfig(success_threshold=4).half_open_max_calls == 4
    assert CircuitBreakerConfig(success_threshold=4, half_open_max_calls=1).half_open_max_calls == 1


def test_config_accepts_ints_for_durations_and_a_cap_equal_to_the_timeout() -> None:
    config = CircuitBreakerConfig(recovery_timeout=10, max_recovery_timeout=10, timeout_duration=1)
    assert config.recovery_timeout == 10
    assert config.max_recovery_timeout == 10


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("failure_threshold", 0, ValueError),
        ("failure_threshold", -1, ValueError),
        ("failure_threshold", 1.5, TypeError),
        ("failure_threshold", "3", TypeError),
        ("failure_threshold", True, TypeError),
        ("success_threshold", 0, ValueError),
        ("success_threshold", None, TypeError),
        ("half_open_max_calls", 0, ValueError),
        ("half_open_max_calls", 2.0, TypeError),
        ("recovery_timeout", 0, ValueError),
        ("recovery_timeout", -5.0, ValueError),
        ("recovery_timeout", math.nan, ValueError),
        ("recovery_timeout", math.inf, ValueError),
        ("recovery_timeout", "60", TypeError),
        ("recovery_timeout", False, TypeError),
        ("timeout_duration", 0.0, ValueError),
        ("timeout_duration", math.nan, ValueError),
        ("timeout_duration", -math.inf, ValueError),
        ("timeout_duration", None, TypeError),
        ("recovery_backoff", 0.99, ValueError),
        ("recovery_backoff", 0, ValueError),
        ("recovery_backoff", math.nan, ValueError),
        ("recovery_backoff", math.inf, ValueError),
        ("recovery_backoff", "2", TypeError),
        ("max_recovery_timeout", 59.0, ValueError),
        ("max_recovery_timeout", 0, ValueError),
        ("max_recovery_timeout", math.nan, ValueError),
        ("max_recovery_timeout", math.inf, ValueError),
        ("max_recovery_timeout", "120", TypeError),
        ("failure_rate_threshold", 0.0, ValueError),
        ("failure_rate_threshold", -0.5, ValueError),
        ("failure_rate_threshold", 1.01, ValueError),
        ("failure_rate_threshold", math.nan, ValueError),
        ("failure_rate_threshold", math.inf, ValueError),
        ("failure_rate_threshold", "0.5", TypeError),
        ("failure_rate_threshold", True, TypeError),
        ("minimum_calls", 0, ValueError),
        ("minimum_calls", 2.0, TypeError),
        ("window", 0, ValueError),
        ("window", math.nan, ValueError),
        ("window", math.inf, ValueError),
        ("window", "60", TypeError),
    ],
)
def test_config_rejects_an_invalid_value_naming_the_field(
    field: str, value: object, error: type[Exception]
) -> None:
    # recovery_timeout is 60 by default, so a cap of 59 is below it.
    with pytest.raises(error, match=rf"^{field}:"):
        CircuitBreakerConfig(**{field: value})  # type: ignore[arg-type]


def test_breaker_rejects_a_config_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match=r"^config: expected a CircuitBreakerConfig, got dict$"):
        CircuitBreaker("svc", {"failure_threshold": 3})  # type: ignore[arg-type]


# -- configure --------------------------------------------------------------------------


def test_configure_adopts_the_new_recovery_timeout_for_the_next_open_period() -> None:
    breaker = make(failure_threshold=1, recovery_timeout=10.0)
    breaker.configure(CircuitBreakerConfig(failure_threshold=1, recovery_timeout=3.0), now=1.0)
    breaker.record_failure(2.0)
    assert breaker.next_attempt_time == 5.0
    assert breaker.get_stats()["current_recovery_timeout"] == 3.0


def test_configure_resets_the_backed_off_open_duration_but_not_an_open_deadline() -> None:
    breaker = make(failure_threshold=1, recovery_timeout=10.0, recovery_backoff=2.0)
    breaker.record_failure(0.0)
    assert breaker.acquire(10.0)
    breaker.record_failure(10.0)  # re-opened, backed off to 20 s
    assert breaker.next_attempt_time == 30.0
    breaker.configure(CircuitBreakerConfig(failure_threshold=1, recovery_timeout=4.0), now=11.0)
    assert breaker.state is OPEN
    assert breaker.next_attempt_time == 30.0  # the deadline already set stands
    assert breaker.get_stats()["current_recovery_timeout"] == 4.0
    assert breaker.acquire(30.0)
    breaker.record_failure(30.0)  # the new config's back-off: 1.0, so 4 s
    assert breaker.next_attempt_time == 34.0


def test_configure_carries_counts_over_to_the_new_thresholds() -> None:
    breaker = make(failure_threshold=5)
    for t in (1.0, 2.0, 3.0):
        breaker.record_failure(t)
    breaker.configure(CircuitBreakerConfig(failure_threshold=4))
    assert breaker.failure_count == 3
    breaker.record_failure(4.0)
    assert breaker.state is OPEN
    assert breaker.config.failure_threshold == 4


def test_configure_with_the_wrong_type_raises_and_changes_nothing() -> None:
    breaker = make(failure_threshold=1, recovery_timeout=10.0)
    config = breaker.config
    with pytest.raises(TypeError, match=r"^config: expected a CircuitBreakerConfig, got dict$"):
        breaker.configure({"recovery_timeout": 1.0}, now=1.0)  # type: ignore[arg-type]
    assert breaker.config is config
    breaker.record_failure(2.0)
    assert breaker.next_attempt_time == 12.0


# -- CLOSED -----------------------------------------------------------------------------


def test_closed_opens_exactly_at_the_threshold_th_consecutive_failure() -> None:
    breaker = make(failure_threshold=3, recovery_timeout=5.0)
    breaker.record_failure(1.0)
    breaker.record_failure(2.0)
    assert breaker.state is CLOSED
    assert breaker.failure_count == 2
    assert breaker.acquire(2.5)

    breaker.record_failure(3.0)
    assert breaker.state is OPEN
    assert breaker.next_attempt_time == 8.0
    assert breaker.failure_count == 0


def test_a_success_resets_the_consecutive_failure_count() -> None:
    breaker = make(failure_threshold=3)
    breaker.record_failure(1.0)
    breaker.record_failure(2.0)
    breaker.record_success(3.0)
    assert breaker.failure_count == 0
    breaker.record_failure(4.0)
    breaker.record_failure(5.0)
    assert breaker.state is CLOSED

    breaker.record_failure(6.0)
    assert breaker.state is OPEN


def test_closed_admits_without_taking_a_permit() -> None:
    breaker = make()
    assert all(breaker.acquire(float(t)) for t in range(10))
    assert breaker.probes_in_flight == 0
    assert breaker.total_rejections == 0


# -- OPEN -------------------------------------------------------------------------------


def test_open_refuses_before_its_deadline_and_admits_a_probe_at_it() -> None:
    breaker = make(failure_threshold=1, recovery_timeout=5.0)
    breaker.record_failure(10.0)

    assert not breaker.acquire(10.0)
    assert not breaker.acquire(math.nextafter(15.0, 0.0))
    assert breaker.state is OPEN
    assert breaker.total_rejections == 2

    assert breaker.acquire(15.0)
    assert breaker.state is HALF_OPEN
    assert breaker.probes_in_flight == 1
    assert breaker.total_rejections == 2


def test_advance_moves_open_to_half_open_only_from_its_deadline() -> None:
    breaker = make(failure_threshold=1, recovery_timeout=5.0)
    breaker.record_failure(0.0)
    assert not breaker.advance(4.0)
    assert breaker.state is OPEN
    assert breaker.advance(5.0)
    assert breaker.state is HALF_OPEN
    assert breaker.probes_in_flight == 0
    assert not breaker.advance(6.0)
    assert breaker.state is HALF_OPEN


def test_a_failure_while_open_does_not_move_the_deadline() -> None:
    breaker = make(failure_threshold=1, recovery_timeout=5.0)
    breaker.record_failure(0.0)
    generation = breaker.generation
    breaker.record_failure(3.0)
    assert breaker.state is OPEN
    assert breaker.next_attempt_time == 5.0
    assert breaker.generation == generation
    assert breaker.total_failures == 2
    assert breaker.last_failure_time == 3.0


def test_a_late_success_while_open_changes_nothing_but_the_total() -> None:
    breaker = make(failure_threshold=1, recovery_timeout=5.0)
    assert breaker.acquire(0.0)
    admitted_in = breaker.generation
    breaker.record_failure(1.0)
    generation = breaker.generation

    breaker.record_success(2.0, generation=admitted_in)
    breaker.record_success(2.5)
    assert breaker.state is OPEN
    assert breaker.next_attempt_time == 6.0
    assert breaker.generation == generation
    assert breaker.total_successes == 2
    assert not breaker.acquire(3.0)


def test_check_and_raise_while_open_carries_name_state_and_next_attempt_time() -> None:
    breaker = CircuitBreaker(
        "llm-primary", CircuitBreakerConfig(failure_threshold=1, recovery_timeout=5.0)
    )
    breaker.check_and_raise(0.0)
    breaker.record_failure(1.0)

    with pytest.raises(CircuitBreakerError, match="llm-primary") as excinfo:
        breaker.check_and_raise(2.0)
    assert excinfo.value.name == "llm-primary"
    assert excinfo.value.state is OPEN
    assert excinfo.value.next_attempt_time == 6.0

    breaker.check_and_raise(6.0)  # the deadline has passed: a call would be admitted


def test_check_and_raise_with_the_half_open_quota_used_reports_no_next_attempt_time() -> None:
    breaker = make(failure_threshold=1, recovery_timeout=5.0, half_open_max_calls=1)
    breaker.record_failure(0.0)
    assert breaker.acquire(5.0)
    with pytest.raises(CircuitBreakerError) as excinfo:
        breaker.check_and_raise(5.0)
    assert excinfo.value.state is HALF_OPEN
    assert excinfo.value.next_attempt_time is None


# -- HALF_OPEN --------------------------------------------------------------------------


def test_half_open_hands_out_at_most_its_quota_of_probe_permits() -> None:
    breaker = make(failure_threshold=1, recovery_timeout=1.0, half_open_max_calls=2)
    breaker.record_failure(0.0)
    assert breaker.acquire(1.0)
    assert breaker.acquire(1.0)
    assert not breaker.acquire(1.0)
    assert not breaker.is_available(1.0)
    assert breaker.probes_in_flight == 2
    assert breaker.total_rejections == 1

    breaker.release(breaker.generation)
    assert breaker.probes_in_flight == 1
    assert breaker.acquire(1.5)
    assert not breaker.acquire(1.5)
    assert breaker.total_rejections == 2


def test_half_open_closes_after_success_threshold_successes() -> None:
    breaker = make(failure_threshold=1, recovery_timeout=1.0, success_threshold=3)
    breaker.record_failure(0.0)
    for t in (1.0, 1.1):
        assert breaker.acquire(t)
        breaker.record_success(t, generation=breaker.generation)
        assert breaker.state is HALF_OPEN
    assert breaker.success_count == 2
    assert breaker.probes_in_flight == 0

    assert breaker.acquire(1.2)
    breaker.record_success(1.2, generation=breaker.generation)
    assert breaker.state is CLOSED
    assert breaker.success_count == 0
    assert breaker.probes_in_flight == 0


def test_a_half_open_failure_reopens_with_a_backed_off_capped_duration() -> None:
    breaker = make(
        failure_threshold=1,
        success_threshold=1,
        recovery_timeout=10.0,
        recovery_backoff=2.0,
        max_recovery_timeout=35.0,
    )
    breaker.record_failure(0.0)
    assert breaker.next_attempt_time == 10.0

    expected_deadlines = [(10.0, 30.0), (30.0, 65.0), (65.0, 100.0)]  # 20, then 40 capped at 35
    for probe_at, deadline in expected_deadlines:
        assert breaker.acquire(probe_at)
        breaker.record_failure(probe_at, generation=breaker.generation)
        assert breaker.state is OPEN
        assert breaker.next_attempt_time == deadline
        assert breaker.probes_in_flight == 0
    assert breaker.get_stats()["current_recovery_timeout"] == 35.0

    # Closing restores the configured duration.
    assert breaker.acquire(100.0)
    breaker.record_success(100.0, generation=breaker.generation)
    assert breaker.state is CLOSED
    breaker.record_failure(200.0)
    assert breaker.next_attempt_time == 210.0


def test_back_off_without_a_cap_keeps_growing() -> None:
    breaker = make(failure_threshold=1, recovery_timeout=1.0, recovery_backoff=3.0)
    breaker.record_failure(0.0)
    for duration in (3.0, 9.0, 27.0):
        now = breaker.next_attempt_time
        assert now is not None
        assert breaker.acquire(now)
        breaker.record_failure(now)
        assert breaker.next_attempt_time == now + duration


# -- force_open and reset ---------------------------------------------------------------


def test_force_open_with_a_duration_holds_open_until_then_then_goes_half_open() -> None:
    breaker = make(recovery_timeout=5.0)
    breaker.force_open(10.0, duration=100.0)
    assert breaker.state is OPEN
    assert breaker.forced
    assert breaker.next_attempt_time == 110.0
    assert not breaker.acquire(109.0)
    assert breaker.acquire(110.0)
    assert breaker.state is HALF_OPEN
    assert not breaker.forced


def test_force_open_without_a_duration_holds_open_for_the_recovery_timeout() -> None:
    breaker = make(failure_threshold=1, recovery_timeout=5.0)
    breaker.force_open(2.0)
    assert breaker.state is OPEN
    assert breaker.forced
    assert breaker.next_attempt_time == 7.0
    assert not breaker.acquire(6.9)
    assert breaker.acquire(7.0)


def test_force_open_without_a_duration_ignores_the_backed_off_open_duration() -> None:
    """The contract: without a duration, the breaker's own recovery_timeout."""
    breaker = make(failure_threshold=1, recovery_timeout=5.0, recovery_backoff=2.0)
    breaker.record_failure(0.0)
    assert breaker.acquire(5.0)
    breaker.record_failure(5.0)  # re-opened, backed off to 10 s
    assert breaker.next_attempt_time == 15.0
    breaker.force_open(7.0)
    assert breaker.next_attempt_time == 12.0


def test_force_open_of_an_open_breaker_moves_its_deadline_without_a_transition() -> None:
    breaker = make(failure_threshold=1, recovery_timeout=5.0)
    breaker.record_failure(0.0)
    generation = breaker.generation
    assert not breaker.forced
    breaker.force_open(1.0, duration=2.0)
    assert breaker.next_attempt_time == 3.0
    assert breaker.forced
    assert breaker.generation == generation
    assert breaker.acquire(3.0)


def test_force_open_of_a_half_open_breaker_voids_its_probes_without_backing_off() -> None:
    breaker = make(failure_threshold=1, recovery_timeout=5.0, recovery_backoff=2.0)
    breaker.record_failure(0.0)
    assert breaker.acquire(5.0)
    breaker.force_open(6.0, duration=1.0)
    assert breaker.state is OPEN
    assert breaker.probes_in_flight == 0
    assert breaker.get_stats()["current_recovery_timeout"] == 5.0
    assert breaker.acquire(7.0)
    breaker.record_failure(7.0, generation=breaker.generation)
    assert breaker.next_attempt_time == 17.0  # one back-off step: 5 -> 10


@pytest.mark.parametrize(
    ("duration", "error"),
    [
        (0, ValueError),
        (-1.0, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (True, TypeError),
        ("5", TypeError),
    ],
)
def test_force_open_rejects_an_invalid_duration(duration: object, error: type[Exception]) -> None:
    breaker = make()
    with pytest.raises(error, match=r"^duration:"):
        breaker.force_open(0.0, duration=duration)  # type: ignore[arg-type]
    assert breaker.state is CLOSED


def test_reset_fully_undoes_force_open() -> None:
    """Regression: the original registry's force_open was never undone by reset."""
    breaker = make(failure_threshold=2, recovery_timeout=5.0)
    breaker.force_open(0.0, duration=1000.0)
    breaker.reset(1.0)

    assert breaker.state is CLOSED
    assert not breaker.forced
    assert breaker.next_attempt_time is None
    assert breaker.is_available(2.0)
    assert breaker.acquire(2.0)
    assert not breaker.get_stats(2.0)["forced_open"]
    # A fresh CLOSED breaker: it takes the full threshold again to open, for the
    # configured duration.
    breaker.record_failure(3.0)
    assert breaker.state is CLOSED
    breaker.record_failure(3.0)
    assert breaker.next_attempt_time == 8.0


def test_reset_clears_counts_back_off_and_probes_but_keeps_lifetime_totals() -> None:
    breaker = make(
        failure_threshold=1, success_threshold=2, recovery_timeout=1.0, recovery_backoff=4.0
    )
    breaker.record_failure(0.0)
    assert breaker.acquire(1.0)
    breaker.record_failure(1.0)  # backs off to 4
    assert breaker.acquire(5.0)
    assert breaker.acquire(5.0)
    breaker.record_success(5.0, generation=breaker.generation)
    assert (breaker.success_count, breaker.probes_in_flight) == (1, 1)
    before = breaker.get_stats()

    breaker.reset(6.0)
    stats = breaker.get_stats()
    assert stats["state"] == "closed"
    assert (stats["failure_count"], stats["success_count"], stats["probes_in_flight"]) == (0, 0, 0)
    assert stats["current_recovery_timeout"] == 1.0
    for total in ("total_successes", "total_failures", "total_rejections"):
        assert stats[total] == before[total]
    assert stats["transitions"] == before["transitions"] + 1

    breaker.record_failure(7.0)
    assert breaker.next_attempt_time == 8.0


@pytest.mark.parametrize(
    ("step", "last_time"),
    [
        (lambda b: b.record_failure(7.0), 7.0),  # a failure while OPEN
        (lambda b: b.record_success(7.0), 7.0),  # a late success while OPEN
        (lambda b: b.force_open(7.0, duration=1.0), 7.0),  # moves an OPEN deadline
        (lambda b: b.configure(b.config, now=7.0), 7.0),
        (lambda b: b.configure(b.config), 2.0),  # no time given: the last one stands
        (lambda b: b.acquire(12.0), 12.0),  # OPEN -> HALF_OPEN
        (lambda b: b.record_rate_limited(7.0, retry_after=1.0), 7.0),  # keeps the deadline
        (lambda b: b.disable(7.0, "revoked key"), 7.0),  # OPEN, now for good
    ],
    ids=[
        "failure",
        "late-success",
        "force-open",
        "configure",
        "configure-no-time",
        "acquire",
        "rate-limit",
        "disable",
    ],
)
def test_reset_without_a_time_stamps_its_transition_with_the_last_time_given(
    step: Callable[[CircuitBreaker], object], last_time: float
) -> None:
    seen: list[Transition] = []
    breaker = CircuitBreaker(
        "svc",
        CircuitBreakerConfig(failure_threshold=1, recovery_timeout=10.0),
        on_transition=lambda *args: seen.append(args),
    )
    breaker.record_failure(2.0)
    step(breaker)
    breaker.reset()
    _, _, new, reason, now = seen[-1]
    assert (new, reason, now) == (CLOSED, "reset", last_time)


def test_reset_of_a_closed_breaker_clears_its_failures_without_a_transition() -> None:
    breaker = make(failure_threshold=3)
    breaker.record_failure(0.0)
    breaker.record_failure(0.0)
    breaker.reset(1.0)
    assert breaker.failure_count == 0
    assert breaker.generation == 0
    breaker.record_failure(2.0)
    breaker.record_failure(2.0)
    assert breaker.state is CLOSED


# -- reading ----------------------------------------------------------------------------


def test_reading_an_open_breaker_after_its_deadline_does_not_flip_it_to_half_open() -> None:
    """Regression: listing providers flipped OPEN to HALF_OPEN in the original registry."""
    seen: list[Transition] = []
    breaker = CircuitBreaker(
        "svc",
        CircuitBreakerConfig(failure_threshold=1, recovery_timeout=5.0),
        on_transition=lambda *args: seen.append(args),
    )
    breaker.record_failure(0.0)
    generation = breaker.generation
    del seen[:]

    late = 500.0
    assert breaker.is_available(late)
    breaker.check_and_raise(late)
    stats = breaker.get_stats(late)
    assert stats["state"] == "open"
    assert breaker.state is OPEN
    assert breaker.next_attempt_time == 5.0
    assert breaker.generation == generation
    assert seen == []
    assert breaker.get_stats(late) == stats


def test_get_stats_is_json_serialisable_with_the_state_as_its_value_string() -> None:
    breaker = CircuitBreaker("svc", CircuitBreakerConfig(failure_threshold=1))
    for state, step in (
        ("closed", lambda: None),
        ("open", lambda: breaker.record_failure(1.0)),
        ("half_open", lambda: breaker.advance(1000.0)),
    ):
        step()
        decoded = json.loads(json.dumps(breaker.get_stats(1000.0)))
        assert decoded["state"] == state
        assert decoded["name"] == "svc"


def test_get_stats_has_exactly_the_documented_keys() -> None:
    """docs/semantics.md, section 2.7: dashboards and the control plane read these."""
    assert set(make().get_stats(0.0)) == {
        "name",
        "state",
        "failure_count",
        "success_count",
        "probes_in_flight",
        "total_successes",
        "total_failures",
        "total_rejections",
        "transitions",
        "last_failure_time",
        "opened_at",
        "next_attempt_time",
        "current_recovery_timeout",
        "forced_open",
        "time_in_open",
        "disabled",
    }


def test_get_stats_reports_the_last_failure_time() -> None:
    breaker = make(failure_threshold=3)
    assert breaker.get_stats()["last_failure_time"] is None
    breaker.record_failure(4.0)
    breaker.record_success(5.0)
    assert breaker.get_stats()["last_failure_time"] == 4.0


def test_get_stats_accounts_time_in_open() -> None:
    breaker = make(failure_threshold=1, recovery_timeout=5.0)
    assert breaker.get_stats(3.0)["time_in_open"] == 0.0
    breaker.record_failure(10.0)
    assert breaker.get_stats(13.0)["time_in_open"] == 3.0
    assert breaker.get_stats()["time_in_open"] == 0.0  # no clock: closed periods only
    assert breaker.get_stats(13.0)["opened_at"] == 10.0

    assert breaker.acquire(15.0)
    assert breaker.get_stats(40.0)["time_in_open"] == 5.0  # HALF_OPEN does not count
    assert breaker.get_stats(40.0)["opened_at"] is None
    breaker.record_failure(16.0, generation=breaker.generation)
    assert breaker.get_stats(18.0)["time_in_open"] == 7.0
    breaker.reset(20.0)
    assert breaker.get_stats(100.0)["time_in_open"] == 9.0


# -- transitions and generations --------------------------------------------------------


def test_on_transition_receives_every_transition_with_its_time() -> None:
    seen: list[Transition] = []
    breaker = CircuitBreaker(
        "svc",
        CircuitBreakerConfig(failure_threshold=1, success_threshold=1, recovery_timeout=2.0),
        on_transition=lambda *args: seen.append(args),
    )
    breaker.record_failure(1.0)  # CLOSED -> OPEN
    breaker.acquire(3.0)  # OPEN -> HALF_OPEN
    breaker.record_failure(3.5)  # HALF_OPEN -> OPEN
    breaker.advance(5.5)  # OPEN -> HALF_OPEN
    breaker.acquire(5.5)
    breaker.record_success(6.0)  # HALF_OPEN -> CLOSED
    breaker.force_open(7.0)  # CLOSED -> OPEN
    breaker.reset(8.0)  # OPEN -> CLOSED

    assert [(old, new, now) for _, old, new, _, now in seen] == [
        (CLOSED, OPEN, 1.0),
        (OPEN, HALF_OPEN, 3.0),
        (HALF_OPEN, OPEN, 3.5),
        (OPEN, HALF_OPEN, 5.5),
        (HALF_OPEN, CLOSED, 6.0),
        (CLOSED, OPEN, 7.0),
        (OPEN, CLOSED, 8.0),
    ]
    assert all(who is breaker for who, *_ in seen)
    assert [reason for *_, reason, _ in seen] == [
        "1 consecutive failures",
        "recovery timeout elapsed",
        "probe failed",
        "recovery timeout elapsed",
        "1 successful probes",
        "forced open",
        "reset",
    ]
    assert breaker.generation == breaker.transitions == len(seen)


def test_an_outcome_from_a_stale_generation_does_not_return_a_probe_permit() -> None:
    breaker = make(
        failure_threshold=1, success_threshold=2, half_open_max_calls=1, recovery_timeout=1.0
    )
    assert breaker.acquire(0.0)
    admitted_closed = breaker.generation
    breaker.record_failure(0.0)
    assert breaker.acquire(1.0)
    probe = breaker.generation

    breaker.release(admitted_closed)
    assert breaker.probes_in_flight == 1
    # A late success still counts as a half-open success, but holds no permit.
    breaker.record_success(1.5, generation=admitted_closed)
    assert breaker.success_count == 1
    assert breaker.probes_in_flight == 1
    assert not breaker.acquire(1.5)

    breaker.record_success(2.0, generation=probe)
    assert breaker.state is CLOSED


def test_a_permit_from_an_earlier_half_open_period_is_void_in_the_next() -> None:
    breaker = make(failure_threshold=1, half_open_max_calls=2, recovery_timeout=1.0)
    breaker.record_failure(0.0)
    assert breaker.acquire(1.0)
    assert breaker.acquire(1.0)
    first_period = breaker.generation
    breaker.record_failure(1.0, generation=first_period)  # re-opens: both permits void
    assert breaker.acquire(2.0)
    assert breaker.generation != first_period

    breaker.release(first_period)
    assert breaker.probes_in_flight == 1
    breaker.release(breaker.generation)
    assert breaker.probes_in_flight == 0


def test_release_without_a_generation_returns_a_permit() -> None:
    breaker = make(failure_threshold=1, half_open_max_calls=1, recovery_timeout=1.0)
    breaker.record_failure(0.0)
    assert breaker.acquire(1.0)
    breaker.release()
    assert breaker.probes_in_flight == 0
    assert breaker.acquire(1.0)
    assert breaker.state is HALF_OPEN


# -- failure rate -----------------------------------------------------------------------


def test_a_failure_rate_opens_a_closed_breaker_once_minimum_calls_are_in_the_window() -> None:
    breaker = make(failure_threshold=100, failure_rate_threshold=0.5, minimum_calls=4, window=10.0)
    for t, failed in enumerate([True, False, True]):
        (breaker.record_failure if failed else breaker.record_success)(float(t))
    assert breaker.failure_rate(3.0) == (2, 3)
    assert breaker.state is CLOSED  # 2 of 3: too few calls to judge
    breaker.record_success(3.0)
    # 2 of 4 = 0.5: judged at every outcome once there are enough (as resilience4j does),
    # so the success that makes the fourth call opens the breaker.
    assert breaker.state is OPEN
    assert breaker.next_attempt_time == 3.0 + 60.0


def test_a_failure_share_below_the_threshold_keeps_the_breaker_closed() -> None:
    breaker = make(failure_threshold=100, failure_rate_threshold=0.5, minimum_calls=4, window=10.0)
    for t, failed in enumerate([True, False, False, False, True, False, False]):
        (breaker.record_failure if failed else breaker.record_success)(float(t))
    assert breaker.failure_rate(6.0) == (2, 7)
    assert breaker.state is CLOSED


def test_the_failure_rate_reason_names_the_share_and_the_window() -> None:
    reasons: list[str] = []
    breaker = CircuitBreaker(
        "svc",
        CircuitBreakerConfig(failure_rate_threshold=0.5, minimum_calls=2, window=30.0),
        on_transition=lambda _b, _o, _n, reason, _t: reasons.append(reason),
    )
    breaker.record_success(0.0)
    breaker.record_failure(1.0)
    assert reasons == ["failure rate 1/2 over the last 30 s"]


def test_outcomes_leave_the_failure_rate_window_after_it_passes() -> None:
    """Ten buckets of window / 10: an outcome stops counting once its bucket is ten
    buckets old, between 0.9 and 1.0 window after it was recorded."""
    breaker = make(failure_threshold=100, failure_rate_threshold=0.5, minimum_calls=3, window=10.0)
    breaker.record_failure(0.5)  # bucket 0
    breaker.record_failure(5.0)  # bucket 5
    assert breaker.failure_rate(9.99) == (2, 2)
    assert breaker.failure_rate(10.0) == (1, 1)  # bucket 10: bucket 0 has left
    breaker.record_success(10.0)
    assert breaker.failure_rate(10.0) == (1, 2)
    breaker.record_failure(14.9)  # 2 of 3 in the window: opens
    assert breaker.state is OPEN


def test_a_bucket_reused_after_a_full_turn_of_the_window_starts_empty() -> None:
    """The window's ten buckets are reused in turn: bucket 10 takes bucket 0's place,
    and what bucket 0 held no longer counts, even when bucket 10 follows bucket 9
    directly."""
    breaker = make(failure_threshold=100, failure_rate_threshold=0.5, minimum_calls=3, window=10.0)
    breaker.record_failure(0.5)  # bucket 0
    breaker.record_success(9.5)  # bucket 9: both in the window
    assert breaker.failure_rate(9.5) == (1, 2)
    breaker.record_success(10.5)  # bucket 10: bucket 0 has left
    assert breaker.failure_rate(10.5) == (0, 2)
    assert breaker.state is CLOSED


def test_an_outcome_recorded_a_whole_window_in_the_past_is_not_counted() -> None:
    """Time given out of order: an outcome ten or more buckets older than the newest
    one recorded is outside the window and changes nothing; a younger one counts."""
    breaker = make(failure_threshold=100, failure_rate_threshold=0.5, minimum_calls=2, window=10.0)
    breaker.record_success(10.5)  # bucket 10
    breaker.record_failure(0.5)  # bucket 0: ten buckets before, out of the window
    assert breaker.failure_rate(10.5) == (0, 1)
    assert breaker.state is CLOSED
    breaker.record_failure(1.5)  # bucket 1: still in the window, and the rate opens it
    assert breaker.state is OPEN


def test_the_failure_rate_read_when_time_goes_backwards_counts_the_window_recorded() -> None:
    """Read at a time before the newest outcome, the window is the one that ends at the
    newest outcome's bucket: nothing is dropped, nothing counted twice."""
    breaker = make(failure_threshold=100, failure_rate_threshold=0.9, minimum_calls=5, window=10.0)
    breaker.record_failure(0.5)  # bucket 0
    breaker.record_success(9.5)  # bucket 9
    assert breaker.failure_rate(9.5) == (1, 2)
    assert breaker.failure_rate(3.0) == (1, 2)
    assert breaker.failure_rate(-50.0) == (1, 2)
    assert breaker.failure_rate(19.5) == (0, 0)  # later: the window has moved on


def test_a_long_quiet_gap_empties_the_failure_rate_window() -> None:
    breaker = make(failure_threshold=100, failure_rate_threshold=0.5, minimum_calls=2, window=10.0)
    breaker.record_failure(1.0)
    breaker.record_success(1000.0)
    assert breaker.failure_rate(1000.0) == (0, 1)
    assert breaker.state is CLOSED


def test_the_failure_rate_is_none_without_a_threshold_or_outside_closed() -> None:
    assert make().failure_rate(0.0) is None
    breaker = make(failure_rate_threshold=0.5)
    assert breaker.failure_rate(0.0) == (0, 0)
    breaker.force_open(0.0)
    assert breaker.failure_rate(0.0) is None


def test_reconfiguring_the_window_starts_an_empty_one() -> None:
    breaker = make(failure_threshold=100, failure_rate_threshold=0.5, minimum_calls=2)
    breaker.record_failure(0.0)
    breaker.configure(CircuitBreakerConfig(failure_threshold=100, failure_rate_threshold=0.9))
    assert breaker.failure_rate(0.0) == (0, 0)
    breaker.record_failure(1.0)
    assert breaker.state is CLOSED  # the earlier failure did not carry over
    breaker.configure(CircuitBreakerConfig(failure_threshold=99, failure_rate_threshold=0.9))
    assert breaker.failure_rate(1.0) == (1, 1)  # same window and threshold: kept


# -- rate limits and disabling ----------------------------------------------------------


def test_a_rate_limit_opens_at_once_until_retry_after() -> None:
    breaker = make(failure_threshold=5)
    breaker.record_rate_limited(10.0, retry_after=7.5)
    assert breaker.state is OPEN
    assert breaker.next_attempt_time == 17.5
    assert breaker.total_failures == 1
    assert breaker.last_failure_time == 10.0


def test_a_rate_limit_says_for_how_long_in_its_transition_reason() -> None:
    reasons: list[str] = []
    breaker = CircuitBreaker(
        "svc", on_transition=lambda _b, _o, _n, reason, _t: reasons.append(reason)
    )
    breaker.record_rate_limited(10.0, retry_after=7.5)
    breaker.reset(11.0)
    breaker.record_rate_limited(12.0)
    assert reasons == ["rate limited for 7.5 s", "reset", "rate limited for 60 s"]


def test_a_rate_limit_without_retry_after_opens_for_the_current_open_duration() -> None:
    breaker = make(recovery_timeout=20.0)
    breaker.record_rate_limited(1.0)
    assert breaker.next_attempt_time == 21.0


def test_a_shorter_second_rate_limit_keeps_the_longer_deadline() -> None:
    breaker = make()
    breaker.record_rate_limited(0.0, retry_after=30.0)
    breaker.record_rate_limited(1.0, retry_after=5.0)
    assert breaker.next_attempt_time == 30.0
    breaker.record_rate_limited(2.0, retry_after=40.0)
    assert breaker.next_attempt_time == 42.0
    assert breaker.transitions == 1  # extending an open period is not a transition


def test_a_rate_limit_on_a_probe_reopens_and_voids_the_permits() -> None:
    breaker = make(recovery_timeout=1.0, success_threshold=2)
    breaker.force_open(0.0)
    assert breaker.acquire(1.0)
    generation = breaker.generation
    breaker.record_rate_limited(1.0, generation, retry_after=9.0)
    assert breaker.state is OPEN
    assert breaker.next_attempt_time == 10.0
    assert breaker.probes_in_flight == 0


@pytest.mark.parametrize(
    ("retry_after", "error"),
    [(-1.0, ValueError), (math.nan, ValueError), (math.inf, ValueError), ("5", TypeError)],
)
def test_an_invalid_retry_after_raises_and_records_nothing(
    retry_after: object, error: type[Exception]
) -> None:
    breaker = make()
    with pytest.raises(error, match=r"^retry_after:"):
        breaker.record_rate_limited(0.0, retry_after=retry_after)  # type: ignore[arg-type]
    assert breaker.state is CLOSED
    assert breaker.total_failures == 0


def test_disable_holds_open_without_a_deadline_until_reset() -> None:
    reasons: list[str] = []
    breaker = CircuitBreaker(
        "svc", on_transition=lambda _b, _o, _n, reason, _t: reasons.append(reason)
    )
    breaker.disable(1.0, "401 Unauthorized")
    assert breaker.state is OPEN
    assert breaker.disabled == "401 Unauthorized"
    assert breaker.next_attempt_time is None
    assert not breaker.acquire(1e12)
    assert not breaker.advance(1e12)
    breaker.force_open(2.0, 1.0)  # does not shorten "for good"
    breaker.record_rate_limited(3.0, retry_after=1.0)
    assert not breaker.is_available(1e12)
    with pytest.raises(CircuitBreakerError) as excinfo:
        breaker.check_and_raise(5.0)
    assert excinfo.value.next_attempt_time is None
    assert breaker.get_stats(5.0)["disabled"] == "401 Unauthorized"
    json.dumps(breaker.get_stats(5.0), allow_nan=False)  # no infinite deadline leaks out
    breaker.reset(6.0)
    assert breaker.disabled is None
    assert breaker.acquire(6.0)
    assert reasons == ["disabled: 401 Unauthorized", "reset"]


def test_check_and_raise_on_a_disabled_breaker_says_why_it_is_disabled() -> None:
    breaker = make()
    breaker.disable(1.0, "401 Unauthorized")
    with pytest.raises(CircuitBreakerError) as excinfo:
        breaker.check_and_raise(2.0)
    error = excinfo.value
    assert (error.name, error.state, error.next_attempt_time, error.disabled) == (
        "svc",
        OPEN,
        None,
        "401 Unauthorized",
    )
    assert str(error) == (
        "circuit breaker 'svc' is open, service unavailable; disabled: 401 Unauthorized"
    )


def test_disabling_an_open_breaker_keeps_the_first_reason_and_drops_the_deadline() -> None:
    breaker = make(failure_threshold=1)
    breaker.record_failure(0.0)
    breaker.disable(1.0, "revoked key")
    breaker.disable(2.0, "another reason")
    assert breaker.disabled == "revoked key"
    assert breaker.next_attempt_time is None
    assert breaker.transitions == 1
    assert breaker.total_failures == 3


def test_a_new_configuration_re_enables_a_disabled_breaker() -> None:
    reasons: list[str] = []
    breaker = CircuitBreaker(
        "svc", on_transition=lambda _b, _o, _n, reason, _t: reasons.append(reason)
    )
    breaker.disable(1.0, "revoked key")
    breaker.configure(CircuitBreakerConfig(failure_threshold=2), now=4.0)
    assert breaker.state is CLOSED
    assert breaker.disabled is None
    assert reasons[-1] == "re-enabled by a new configuration"


@pytest.mark.parametrize(
    ("reason", "error", "message"),
    [
        ("", ValueError, r"^reason: must say why \(got an empty string\)$"),
        ("  ", ValueError, r"^reason: must say why"),
        (None, TypeError, r"^reason: expected a string, got NoneType$"),
        (401, TypeError, r"^reason: expected a string, got int$"),
    ],
)
def test_disable_needs_a_reason_and_changes_nothing_without_one(
    reason: object, error: type[Exception], message: str
) -> None:
    breaker = make()
    with pytest.raises(error, match=message):
        breaker.disable(0.0, reason)  # type: ignore[arg-type]
    assert breaker.state is CLOSED
    assert breaker.total_failures == 0


@pytest.mark.parametrize(
    ("error_class", "state", "failures", "successes"),
    [
        (ErrorClass.failure(), OPEN, 1, 0),
        (ErrorClass.success(), CLOSED, 0, 1),
        (ErrorClass.ignore(), CLOSED, 0, 0),
        (ErrorClass.reroute(require=("long_context",)), CLOSED, 0, 0),
        (ErrorClass.rate_limited(3.0), OPEN, 1, 0),
        (ErrorClass.disable("revoked"), OPEN, 1, 0),
    ],
)
def test_record_error_records_each_class_as_documented(
    error_class: ErrorClass, state: CircuitState, failures: int, successes: int
) -> None:
    breaker = make(failure_threshold=1)
    breaker.record_error(0.0, error_class)
    assert (breaker.state, breaker.total_failures, breaker.total_successes) == (
        state,
        failures,
        successes,
    )


@pytest.mark.parametrize(
    "error_class",
    [ErrorClass.ignore(), ErrorClass.reroute(require=("long_context",))],
    ids=["ignore", "reroute"],
)
def test_ignore_and_reroute_return_a_probe_permit_only_for_the_generation_that_holds_it(
    error_class: ErrorClass,
) -> None:
    """Nothing is recorded, and the permit goes back only if the call held one in this
    HALF_OPEN period: a late call from an earlier period returns none."""
    breaker = make(failure_threshold=1, half_open_max_calls=1, recovery_timeout=1.0)
    admitted_closed = breaker.generation
    breaker.record_failure(0.0)
    assert breaker.acquire(1.0)
    probe = breaker.generation
    breaker.record_error(1.5, error_class, generation=admitted_closed)
    assert breaker.probes_in_flight == 1
    assert not breaker.acquire(1.5)
    breaker.record_error(2.0, error_class, generation=probe)
    assert (breaker.probes_in_flight, breaker.success_count) == (0, 0)
    assert breaker.acquire(2.0)


def test_record_error_returns_a_probe_permit_only_for_the_generation_that_holds_it() -> None:
    """A success classified from an error passes its generation on, as record_success
    does: a late one from an earlier period counts but returns no permit."""
    breaker = make(
        failure_threshold=1, success_threshold=3, half_open_max_calls=1, recovery_timeout=1.0
    )
    admitted_closed = breaker.generation
    breaker.record_failure(0.0)
    assert breaker.acquire(1.0)
    probe = breaker.generation
    breaker.record_error(1.5, ErrorClass.success(), generation=admitted_closed)
    assert (breaker.success_count, breaker.probes_in_flight) == (1, 1)
    assert not breaker.acquire(1.5)
    breaker.record_error(2.0, ErrorClass.success(), generation=probe)
    assert (breaker.success_count, breaker.probes_in_flight) == (2, 0)
    assert breaker.acquire(2.0)


# -- verdicts from elsewhere (a fleet's): hold_open and probe ----------------------------


def test_hold_open_opens_a_closed_breaker_for_the_span_without_counting_a_failure() -> None:
    transitions: list[tuple[CircuitState, str]] = []
    breaker = CircuitBreaker(
        "p",
        CircuitBreakerConfig(),
        on_transition=lambda b, old, new, reason, now: transitions.append((new, reason)),
    )
    assert breaker.hold_open(5.0, 7.0, "fleet: failure from node b") is True
    assert breaker.state is CircuitState.OPEN
    assert breaker.next_attempt_time == 12.0
    assert breaker.total_failures == 0
    assert transitions == [(CircuitState.OPEN, "fleet: failure from node b")]
    assert not breaker.acquire(11.9)
    assert breaker.acquire(12.0)  # then it half-opens as after any open period


def test_hold_open_only_ever_extends_an_open_deadline() -> None:
    breaker = make(recovery_timeout=30.0)
    breaker.hold_open(0.0, 10.0, "first")
    assert breaker.hold_open(1.0, 9.0, "the same deadline") is False
    assert breaker.hold_open(1.0, 5.0, "shorter") is False
    assert breaker.next_attempt_time == 10.0
    assert breaker.hold_open(1.0, 20.0, "longer") is True
    assert breaker.next_attempt_time == 21.0
    assert breaker.transitions == 1  # extending is not a transition


def test_hold_open_with_disabled_takes_the_breaker_out_of_service_until_reset() -> None:
    breaker = make(recovery_timeout=30.0)
    assert breaker.hold_open(0.0, 1.0, "fleet: disabled", disabled="key revoked") is True
    assert breaker.disabled == "key revoked"
    assert breaker.next_attempt_time is None
    assert not breaker.acquire(1e9)
    assert breaker.total_failures == 0
    # Nothing outlasts a disable, and nothing shortens it.
    assert breaker.hold_open(1.0, 5.0, "later") is False
    assert breaker.probe(2.0, "fleet probe") is False
    breaker.reset(3.0)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.disabled is None


def test_hold_open_rejects_a_bad_span_and_changes_nothing() -> None:
    breaker = make(recovery_timeout=30.0)
    for bad in (math.nan, -1.0, 0.0, math.inf):
        with pytest.raises(ValueError, match=r"^span: "):
            breaker.hold_open(0.0, bad, "x")
    assert breaker.state is CircuitState.CLOSED
    assert breaker.transitions == 0


def test_probe_moves_only_an_open_breaker_to_half_open_before_its_deadline() -> None:
    reasons: list[str] = []
    breaker = CircuitBreaker(
        "p",
        CircuitBreakerConfig(recovery_timeout=30.0),
        on_transition=lambda b, old, new, reason, now: reasons.append(reason),
    )
    assert breaker.probe(0.0, "fleet probe") is False  # CLOSED: nothing to probe
    breaker.hold_open(0.0, 100.0, "held")
    assert breaker.probe(1.0, "fleet probe") is True
    assert reasons == ["held", "fleet probe"]
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.probe(1.0, "again") is False
    assert breaker.acquire(1.0)  # the probe permit


def test_hold_open_keeps_its_time_for_a_later_reset_without_one() -> None:
    times: list[float] = []
    breaker = CircuitBreaker(
        "p",
        CircuitBreakerConfig(),
        on_transition=lambda b, old, new, reason, now: times.append(now),
    )
    breaker.hold_open(5.0, 10.0, "held")
    breaker.hold_open(7.0, 20.0, "held longer")  # no transition: only the time is kept
    breaker.reset()
    assert times == [5.0, 7.0]


def test_reset_takes_the_reason_its_transition_reports() -> None:
    reasons: list[str] = []
    breaker = CircuitBreaker(
        "p",
        CircuitBreakerConfig(),
        on_transition=lambda b, old, new, reason, now: reasons.append(reason),
    )
    breaker.force_open(0.0)
    breaker.reset(1.0, "fleet: closed by node b")
    assert reasons == ["forced open", "fleet: closed by node b"]
