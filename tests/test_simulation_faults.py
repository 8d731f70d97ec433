"""The fault kinds, one class each: how a scenario names and configures it, and what it
does to a :class:`SimulatedProvider` (read from the provider's state at an instant, no
run needed). The runs under each kind are in test_simulation.py."""

from __future__ import annotations

from typing import Any

import pytest

from ciris_actors.simulation import (
    CrashFault,
    ErrorsFault,
    Fault,
    FaultKind,
    FlapFault,
    LatencyFault,
    OutageFault,
    ProviderSpec,
    ScenarioError,
    SimulatedProvider,
    SlowStartFault,
    parse_scenario,
)
from ciris_actors.simulation.faults import fault_class, fault_classes, fault_settings

#: The provider's own behaviour when no fault is active.
SPEC = ProviderSpec("a", error_rate=0.1, start_delay=2.0)


def parsed(**fields: Any) -> Fault:
    """The one fault of a scenario whose fault table is *fields* (on provider ``a``)."""
    table = {"provider": "a", "at": 10.0, "duration": 20.0} | fields
    [fault] = parse_scenario({"providers": [{"name": "a"}], "faults": [table]}).faults
    return fault


def provider(*faults: Fault) -> SimulatedProvider:
    return SimulatedProvider(SPEC, faults, seed=1)


def assert_no_effect_outside(p: SimulatedProvider, times: tuple[float, ...] = (9.99, 30.0)) -> None:
    """Before and after its window a fault leaves the provider as its spec says."""
    for t in times:
        assert not p.down(t)
        assert p.added_latency(t) == 0.0
        assert p.error_rate(t) == SPEC.error_rate
        assert p.start_delay(t) == SPEC.start_delay


# -- one test per kind ------------------------------------------------------------------------


def test_outage_takes_the_provider_down_for_its_window() -> None:
    fault = parsed(kind="outage")
    assert fault == OutageFault("a", at=10.0, duration=20.0)
    p = provider(fault)
    assert p.down(10.0)
    assert p.down(29.99)
    assert p.error_rate(15.0) == SPEC.error_rate  # down, not erring: calls fail anyway
    assert_no_effect_outside(p)


def test_errors_adds_its_error_rate_to_the_providers() -> None:
    assert parsed(kind="errors") == ErrorsFault("a", 10.0, 20.0, error_rate=1.0)  # the default
    fault = parsed(kind="errors", error_rate=0.5)
    assert fault == ErrorsFault("a", at=10.0, duration=20.0, error_rate=0.5)
    p = provider(fault)
    assert p.error_rate(15.0) == pytest.approx(1 - 0.9 * 0.5)
    assert not p.down(15.0)  # health checks pass
    assert_no_effect_outside(p)


def test_latency_adds_its_seconds_to_calls_and_checks() -> None:
    fault = parsed(kind="latency", added_latency=30.0)
    assert fault == LatencyFault("a", at=10.0, duration=20.0, added_latency=30.0)
    p = provider(fault)
    assert p.added_latency(10.0) == 30.0
    assert not p.down(15.0)
    assert_no_effect_outside(p)


def test_crash_raises_at_its_start_then_every_interval_until_its_end() -> None:
    fault = parsed(kind="crash", interval=6.0)
    assert fault == CrashFault("a", at=10.0, duration=20.0, interval=6.0)
    p = provider(fault)
    assert [p.next_crash(t) for t in (0.0, 10.0, 15.9, 16.0, 27.0, 28.0, 40.0)] == [
        10.0,
        16.0,
        16.0,
        22.0,
        28.0,
        None,  # 34 is past the end
        None,
    ]
    once = provider(parsed(kind="crash"))  # interval 0: once, at `at`
    assert [once.next_crash(t) for t in (9.0, 10.0)] == [10.0, None]
    assert_no_effect_outside(p, (15.0,))  # calls and checks are untouched


def test_flap_is_down_in_the_first_half_of_each_period() -> None:
    fault = parsed(kind="flap", period=5.0)
    assert fault == FlapFault("a", at=10.0, duration=20.0, period=5.0)
    p = provider(fault)
    assert [p.down(t) for t in (10.0, 14.9, 15.0, 19.9, 20.0, 25.0, 29.9)] == [
        True,
        True,
        False,
        False,
        True,
        False,
        False,
    ]
    assert_no_effect_outside(p)


def test_slow_start_sets_how_long_a_start_takes() -> None:
    assert parsed(kind="slow_start") == SlowStartFault("a", 10.0, 20.0, start_delay=30.0)
    fault = parsed(kind="slow_start", start_delay=45.0)
    assert fault == SlowStartFault("a", at=10.0, duration=20.0, start_delay=45.0)
    p = provider(fault)
    assert p.start_delay(10.0) == 45.0
    assert not p.down(10.0)
    assert_no_effect_outside(p)


# -- the kinds together -----------------------------------------------------------------------


def test_every_kind_has_one_registered_class() -> None:
    classes = list(fault_classes())
    assert [cls.kind for cls in classes] == list(FaultKind)
    for cls in classes:
        assert fault_class(cls.kind) is cls
        assert issubclass(cls, Fault)


def test_faults_of_one_kind_do_not_add_up_the_first_started_rules() -> None:
    p = provider(
        LatencyFault("a", at=12.0, duration=10.0, added_latency=5.0),
        LatencyFault("a", at=10.0, duration=5.0, added_latency=1.0),
    )
    assert p.added_latency(13.0) == 1.0  # both active: the one from t=10
    assert p.added_latency(16.0) == 5.0
    both = provider(
        ErrorsFault("a", at=10.0, duration=10.0, error_rate=0.5),
        LatencyFault("a", at=10.0, duration=10.0, added_latency=2.0),
    )
    assert both.added_latency(12.0) == 2.0  # different kinds do act together
    assert both.error_rate(12.0) == pytest.approx(0.55)
    assert both.active(FaultKind.ERRORS, 12.0) == ErrorsFault(
        "a", at=10.0, duration=10.0, error_rate=0.5
    )
    assert both.active(FaultKind.FLAP, 12.0) is None


def test_a_fault_table_may_carry_other_kinds_settings() -> None:
    """As before there was a class per kind: checked, then ignored."""
    assert parsed(kind="outage", period=5.0, error_rate=0.5) == OutageFault("a", 10.0, 20.0)
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.period: must be > 0, got 0"):
        parsed(kind="outage", period=0)
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.colour: unknown field"):
        parsed(kind="outage", colour="red")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "faults[0].kind: required"),
        ({"kind": "meteor"}, "faults[0].kind: unknown value 'meteor' (expected one of outage,"
         " errors, latency, crash, flap, slow_start, rate_limit, bad_credentials,"
         " context_overflow)"),
        ({"kind": "errors", "error_rate": 1.5}, "faults[0].error_rate: must be <= 1, got 1.5"),
        ({"kind": "latency", "added_latency": -1}, "faults[0].added_latency: must be >= 0,"
         " got -1"),
        ({"kind": "crash", "interval": "x"}, "faults[0].interval: expected a number, got 'x'"),
        ({"kind": "flap", "period": 0.0}, "faults[0].period: must be > 0, got 0.0"),
        ({"kind": "slow_start", "start_delay": -2.0}, "faults[0].start_delay: must be >= 0,"
         " got -2.0"),
        ({"kind": "outage", "duration": 0}, "faults[0].duration: must be > 0, got 0"),
    ],
)  # fmt: skip
def test_fault_settings_are_checked_with_the_messages_of_the_format(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScenarioError) as caught:
        parsed(**fields)
    assert str(caught.value) == message


def test_settings_are_declared_on_the_classes() -> None:
    settings = {cls.kind.value: [s.name for s in fault_settings(cls)] for cls in fault_classes()}
    assert settings == {
        "outage": [],
        "errors": ["error_rate"],
        "latency": ["added_latency"],
        "crash": ["interval"],
        "flap": ["period"],
        "slow_start": ["start_delay"],
        "rate_limit": ["retry_after"],
        "bad_credentials": [],
        "context_overflow": [],
    }


def test_fault_of_builds_a_kind_by_name_as_the_one_class_did() -> None:
    assert Fault.of(FaultKind.ERRORS, "a", at=1.0, duration=2.0, error_rate=0.5) == ErrorsFault(
        "a", 1.0, 2.0, error_rate=0.5
    )
    flap = Fault.of("flap", "a", at=1.0, duration=2.0, period=3.0, error_rate=0.5)
    assert flap == FlapFault("a", 1.0, 2.0, period=3.0)
    assert flap.kind is FaultKind.FLAP
    assert flap.end == 3.0
    with pytest.raises(TypeError, match="'colour' is not a setting"):
        Fault.of("flap", "a", at=1.0, duration=2.0, colour=1.0)
    with pytest.raises(ValueError, match="meteor"):
        Fault.of("meteor", "a", at=1.0, duration=2.0)
    with pytest.raises(TypeError, match="Fault is the base"):
        Fault("a", 1.0, 2.0)
