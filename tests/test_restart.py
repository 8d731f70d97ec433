"""The pure restart policy (``restart.py``): its defaults and validation, back-off with
jitter, and the intensity window, without a registry."""

from __future__ import annotations

import math
import random

import attrs
import pytest

from ciris_actors import RestartPolicy
from ciris_actors.restart import RestartTracker

# -- configuration ----------------------------------------------------------------------


def test_restart_policy_defaults_are_the_documented_ones() -> None:
    """docs/semantics.md, section 3, promises these."""
    assert attrs.asdict(RestartPolicy()) == {
        "max_restarts": 3,
        "within": 5.0,
        "initial": 0.1,
        "maximum": 30.0,
        "jitter": 0.1,
        "escalate": False,
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 2.0, "maximum": 2.0},  # a constant back-off
        {"initial": 0, "maximum": 0},  # no back-off at all
        {"jitter": 1.0},
        {"jitter": 0},
        {"max_restarts": 0},  # the first crash is final
        {"within": 1, "initial": 1, "maximum": 10},  # ints for durations
        {"escalate": True},
    ],
)
def test_restart_policy_accepts_the_edges_of_every_rule(kwargs: dict[str, object]) -> None:
    policy = RestartPolicy(**kwargs)  # type: ignore[arg-type]
    for field, value in kwargs.items():
        assert getattr(policy, field) == value


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("max_restarts", True, TypeError),
        ("max_restarts", 2.5, TypeError),
        ("max_restarts", "3", TypeError),
        ("max_restarts", None, TypeError),
        ("max_restarts", -1, ValueError),
        ("within", "5", TypeError),
        ("within", False, TypeError),
        ("within", 0, ValueError),
        ("within", -1.0, ValueError),
        ("within", math.nan, ValueError),
        ("within", math.inf, ValueError),
        ("initial", "0.1", TypeError),
        ("initial", -0.1, ValueError),
        ("initial", math.nan, ValueError),
        ("initial", math.inf, ValueError),
        ("maximum", "30", TypeError),
        ("maximum", 0.05, ValueError),  # below the default initial of 0.1
        ("maximum", -1.0, ValueError),
        ("maximum", math.nan, ValueError),
        ("maximum", math.inf, ValueError),
        ("jitter", "0.1", TypeError),
        ("jitter", True, TypeError),
        ("jitter", -0.1, ValueError),
        ("jitter", 1.01, ValueError),
        ("jitter", math.nan, ValueError),
        ("jitter", math.inf, ValueError),
        ("escalate", "yes", TypeError),
        ("escalate", 1, TypeError),
    ],
)
def test_restart_policy_rejects_an_invalid_value_naming_the_field(
    field: str, value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=rf"^{field}:"):
        RestartPolicy(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_restarts", True, "max_restarts: expected an integer, got bool"),
        ("within", "5", "within: expected a number, got str"),
        ("maximum", None, "maximum: expected a number, got NoneType"),
        ("jitter", [0.1], "jitter: expected a number, got list"),
        ("escalate", "yes", "escalate: expected a bool, got str"),
    ],
)
def test_restart_policy_type_errors_say_what_was_given(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(TypeError) as caught:
        RestartPolicy(**{field: value})  # type: ignore[arg-type]
    assert str(caught.value) == message


# -- back-off ---------------------------------------------------------------------------


def test_backoff_doubles_per_restart_in_the_window_up_to_the_maximum() -> None:
    policy = RestartPolicy(initial=0.5, maximum=5.0, jitter=0.0)
    rng = random.Random(0)
    assert [policy.delay(n, rng) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_keeps_doubling_below_a_large_maximum() -> None:
    """The formula holds for as long as a float can say it: a large cap is reached by
    doubling, not by a ceiling of the implementation's own."""
    policy = RestartPolicy(initial=1.0, maximum=1e300, jitter=0.0)
    rng = random.Random(0)
    assert policy.delay(101, rng) == 2.0**100
    assert policy.delay(5000, rng) == 1e300


def test_restart_backoff_never_overflows_however_many_restarts() -> None:
    policy = RestartPolicy(max_restarts=100_000, within=86_400, initial=0.01, maximum=1.0)
    assert policy.delay(5000, random.Random(0)) <= 1.0
    assert policy.delay(5000, random.Random(0)) >= 0.9


def test_jittered_delays_stay_within_the_jitter_band_and_spread_across_it() -> None:
    """Every delay lies in ``[base·(1 - jitter), base·(1 + jitter)]``, and a few hundred
    of them reach into both ends of that band: jitter spreads restarts out, on both
    sides of the un-jittered delay."""
    policy = RestartPolicy(initial=1.0, maximum=100.0, jitter=0.5)
    base = 4.0  # the third restart: 1.0 * 2**2
    rng = random.Random(7)
    delays = [policy.delay(3, rng) for _ in range(400)]
    assert all(base * 0.5 <= d <= base * 1.5 for d in delays)
    assert min(delays) < base * 0.6
    assert max(delays) > base * 1.4


def test_jitter_never_takes_a_delay_below_zero_or_above_the_maximum() -> None:
    policy = RestartPolicy(initial=4.0, maximum=5.0, jitter=1.0)
    rng = random.Random(3)
    delays = [policy.delay(n, rng) for n in (1, 2, 3) for _ in range(200)]
    assert all(0.0 <= d <= 5.0 for d in delays)
    assert max(delays) == 5.0  # 8 and 16, jittered, are still above the cap at times


def test_the_same_seed_gives_the_same_delays() -> None:
    policy = RestartPolicy(jitter=0.3)
    first = [policy.delay(n, random.Random(42)) for n in range(1, 5)]
    assert [policy.delay(n, random.Random(42)) for n in range(1, 5)] == first


# -- intensity --------------------------------------------------------------------------


def test_tracker_grants_max_restarts_within_the_window_then_gives_up() -> None:
    tracker = RestartTracker(RestartPolicy(max_restarts=2, within=10.0, jitter=0.0))
    rng = random.Random(0)
    assert tracker.on_crash(0.0, rng) == 0.1
    assert tracker.on_crash(1.0, rng) == 0.2
    assert tracker.on_crash(2.0, rng) is None
    assert tracker.restarts == 2


def test_a_restart_exactly_within_seconds_old_has_left_the_window() -> None:
    policy = RestartPolicy(max_restarts=1, within=5.0, jitter=0.0)
    rng = random.Random(0)
    inside = RestartTracker(policy)
    assert inside.on_crash(0.0, rng) == 0.1
    assert inside.on_crash(math.nextafter(5.0, 0.0), rng) is None
    left = RestartTracker(policy)
    assert left.on_crash(0.0, rng) == 0.1
    assert left.on_crash(5.0, rng) == 0.1
    assert left.restarts == 2


def test_max_restarts_zero_makes_the_first_crash_final() -> None:
    tracker = RestartTracker(RestartPolicy(max_restarts=0))
    assert tracker.on_crash(0.0, random.Random(0)) is None
    assert tracker.restarts == 0
