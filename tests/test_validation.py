"""Bad input gets a clear error naming what was wrong, and changes nothing."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from ciris_actors import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    DuplicateProviderError,
    Priority,
    Registry,
    RegistryError,
    RestartPolicy,
    SelectionStrategy,
    UnknownProviderError,
    open_registry,
)

from .helpers import Plain

#: An int no float can hold.
HUGE = 10**400


def snapshot(registry: Registry) -> dict[str, Any]:
    return {
        "info": registry.get_provider_info(),
        "explain": registry.explain("H", "llm").as_dict(),
        "health": registry.health_status(),
    }


async def populated(registry: Registry) -> Registry:
    registry.register("H", "llm", Plain(), Priority.HIGH, name="primary")
    registry.register("H", "llm", Plain(), Priority.LOW, ["chat"], name="secondary")
    registry.register_service("llm", Plain(), name="global", strategy="round_robin")
    await trio.testing.wait_all_tasks_blocked()
    return registry


BAD_CALLS: list[tuple[str, type[Exception], str, Callable[[Registry], object]]] = [
    (
        "unknown priority",
        ValueError,
        "priority",
        lambda r: r.register("H", "llm", Plain(), priority="URGENT"),
    ),
    (
        "unknown priority value",
        ValueError,
        "priority",
        lambda r: r.register("H", "llm", Plain(), priority=7),
    ),
    (
        "unknown strategy",
        ValueError,
        "strategy",
        lambda r: r.register("H", "llm", Plain(), strategy="random"),
    ),
    (
        "negative group",
        ValueError,
        "priority_group",
        lambda r: r.register("H", "llm", Plain(), priority_group=-1),
    ),
    ("None provider", TypeError, "provider", lambda r: r.register("H", "llm", None)),
    (
        "capabilities as a string",
        TypeError,
        "capabilities",
        lambda r: r.register("H", "llm", Plain(), capabilities="chat"),
    ),
    (
        "capability not a string",
        TypeError,
        "capabilities",
        lambda r: r.register("H", "llm", Plain(), capabilities=["chat", 3]),  # type: ignore[list-item]
    ),
    (
        "duplicate name",
        DuplicateProviderError,
        "primary",
        lambda r: r.register("H", "llm", Plain(), name="primary"),
    ),
    ("empty handler", ValueError, "handler", lambda r: r.register("", "llm", Plain())),
    (
        "bad breaker config",
        TypeError,
        "circuit_breaker_config",
        lambda r: r.register("H", "llm", Plain(), circuit_breaker_config={"failure_threshold": 1}),  # type: ignore[arg-type]
    ),
    (
        "unknown name to unregister",
        UnknownProviderError,
        "nobody",
        lambda r: r.unregister("nobody"),
    ),
    (
        "unknown name to update_priority",
        UnknownProviderError,
        "nobody",
        lambda r: r.update_priority("nobody", priority="HIGH"),
    ),
    (
        "bad priority to update_priority",
        ValueError,
        "priority",
        lambda r: r.update_priority("secondary", priority="CRITICAL!", priority_group=2),
    ),
    (
        "bad group to update_priority",
        ValueError,
        "priority_group",
        lambda r: r.update_priority("secondary", priority="CRITICAL", priority_group=-4),
    ),
    (
        "bad strategy to update_priority",
        ValueError,
        "strategy",
        lambda r: r.update_priority("primary", priority_group=3, strategy="lottery"),
    ),
    (
        "unknown name to force_open",
        UnknownProviderError,
        "nobody",
        lambda r: r.force_open("nobody"),
    ),
    (
        "NaN duration to force_open",
        ValueError,
        "duration",
        lambda r: r.force_open("primary", math.nan),
    ),
    (
        "negative duration to force_open",
        ValueError,
        "duration",
        lambda r: r.force_open("primary", -1.0),
    ),
    (
        "force-open duration too large for a float",
        ValueError,
        "duration",
        lambda r: r.force_open("primary", HUGE),
    ),
    (
        "unknown name to reset",
        UnknownProviderError,
        "nobody",
        lambda r: r.reset_circuit_breaker("nobody"),
    ),
    (
        "unknown name to report_success",
        UnknownProviderError,
        "nobody",
        lambda r: r.report_success("nobody"),
    ),
    (
        "unknown name to report_failure",
        UnknownProviderError,
        "nobody",
        lambda r: r.report_failure("nobody"),
    ),
    (
        "required capabilities as a string",
        TypeError,
        "required_capabilities",
        lambda r: r.get_service_nowait("H", "llm", "chat"),
    ),
]


@pytest.mark.parametrize(
    ("what", "error", "named", "bad_call"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS]
)
async def test_bad_input_raises_a_named_error_and_changes_nothing(
    autojump_clock: trio.testing.MockClock,
    registry: Registry,
    what: str,
    error: type[Exception],
    named: str,
    bad_call: Callable[[Registry], object],
) -> None:
    await populated(registry)
    before = snapshot(registry)
    with pytest.raises(error, match=named):
        bad_call(registry)
    assert snapshot(registry) == before


async def test_unknown_provider_error_is_a_lookup_error_and_a_registry_error(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    with pytest.raises(LookupError):
        registry.unregister("nobody")
    with pytest.raises(RegistryError):
        registry.unregister("nobody")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"success_threshold": -1}, "success_threshold"),
        ({"recovery_timeout": 0}, "recovery_timeout"),
        ({"recovery_timeout": math.nan}, "recovery_timeout"),
        ({"timeout_duration": -3.0}, "timeout_duration"),
        ({"timeout_duration": math.inf}, "timeout_duration"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
        ({"recovery_backoff": 0.5}, "recovery_backoff"),
        ({"max_recovery_timeout": 1.0}, "max_recovery_timeout"),
        # An int too large for a float is a ValueError like any other bad value, not an
        # OverflowError escaping from the comparison.
        ({"recovery_timeout": HUGE}, "recovery_timeout"),
        ({"timeout_duration": HUGE}, "timeout_duration"),
        ({"recovery_backoff": HUGE}, "recovery_backoff"),
        ({"max_recovery_timeout": HUGE}, "max_recovery_timeout"),
    ],
)
def test_breaker_config_refuses_bad_values_naming_the_field(
    kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        CircuitBreakerConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_restarts": -1}, "max_restarts"),
        ({"within": 0}, "within"),
        ({"within": math.nan}, "within"),
        ({"initial": -0.1}, "initial"),
        ({"initial": 5.0, "maximum": 1.0}, "maximum"),
        ({"jitter": 1.5}, "jitter"),
        ({"within": HUGE}, "within"),
        ({"initial": HUGE}, "initial"),
        ({"maximum": HUGE}, "maximum"),
        ({"jitter": HUGE}, "jitter"),
    ],
)
def test_restart_policy_refuses_bad_values_naming_the_field(
    kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        RestartPolicy(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"health_check_interval": 0}, ValueError, "health_check_interval"),
        ({"health_check_interval": math.nan}, ValueError, "health_check_interval"),
        ({"close_timeout": -1}, ValueError, "close_timeout"),
        ({"close_timeout": HUGE}, ValueError, "close_timeout"),
        ({"health_check_interval": HUGE}, ValueError, "health_check_interval"),
        ({"required_services": "llm"}, TypeError, "required_services"),
        ({"restart_policy": {"max_restarts": 1}}, TypeError, "restart_policy"),
        ({"default_breaker": 3}, TypeError, "default_breaker"),
    ],
)
async def test_open_registry_refuses_bad_arguments_before_starting(
    kwargs: dict[str, Any], error: type[Exception], field: str
) -> None:
    with pytest.raises(error, match=field):
        async with open_registry(**kwargs):
            pass  # pragma: no cover


def test_names_are_accepted_case_insensitively() -> None:
    from ciris_actors._types import coerce_priority, coerce_strategy

    assert coerce_priority("high") is Priority.HIGH
    assert coerce_priority(" Critical ") is Priority.CRITICAL
    assert coerce_strategy("ROUND_ROBIN") is SelectionStrategy.ROUND_ROBIN
    assert coerce_strategy("round_robin") is SelectionStrategy.ROUND_ROBIN
    assert coerce_strategy("Fallback") is SelectionStrategy.FALLBACK


async def test_every_method_refuses_a_closed_registry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry() as registry:
        name = registry.register("H", "llm", Plain())
    assert registry.closed
    calls: list[Callable[[], object]] = [
        lambda: registry.register("H", "llm", Plain()),
        lambda: registry.register_service("llm", Plain()),
        lambda: registry.unregister(name),
        lambda: registry.update_priority(name, priority="LOW"),
        lambda: registry.get_service_nowait("H", "llm"),
        lambda: registry.report_success(name),
        lambda: registry.report_failure(name),
        lambda: registry.get_provider_info(),
        lambda: registry.health_status(),
        lambda: registry.explain("H", "llm"),
        lambda: registry.reset_circuit_breakers(),
        lambda: registry.reset_circuit_breaker(name),
        lambda: registry.force_open(name),
    ]
    for call in calls:
        with pytest.raises(RegistryError, match="closed"):
            call()
    with pytest.raises(RegistryError, match="closed"):
        await registry.get_service("H", "llm")
    with pytest.raises(RegistryError, match="closed"):
        await registry.wait_ready(1.0)
    with pytest.raises(RegistryError, match="closed"):
        await registry.health_check_all()
    with pytest.raises(RegistryError, match="closed"):
        async with registry.lease("H", "llm"):
            pass  # pragma: no cover
    with pytest.raises(RegistryError, match="closed"):
        async with registry.events():
            pass  # pragma: no cover


async def test_a_lease_timeout_too_large_for_a_float_is_a_value_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry() as registry:
        await populated(registry)
        before = snapshot(registry)
        with pytest.raises(ValueError, match="timeout"):
            async with registry.lease("H", "llm", timeout=HUGE):
                pass  # pragma: no cover
        assert snapshot(registry) == before


async def test_wait_ready_with_a_timeout_too_large_for_a_float_waits_forever(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # As math.inf does (the documented "no limit"): it waits, and returns when ready.
    async with open_registry(required_services=["llm"]) as registry:
        with trio.move_on_after(1000.0) as waited:
            await registry.wait_ready(HUGE)
        assert waited.cancelled_caught
        registry.register("H", "llm", Plain())
        assert await registry.wait_ready(HUGE) is True


def test_a_standalone_breaker_refuses_a_force_open_too_large_for_a_float() -> None:
    breaker = CircuitBreaker("b")
    with pytest.raises(ValueError, match="duration"):
        breaker.force_open(0.0, HUGE)
    assert breaker.state is CircuitState.CLOSED


async def test_call_with_a_bad_fn_raises_type_error_and_changes_no_breaker(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    names = [registry.register("H", "llm", Plain()) for _ in range(3)]

    def not_async(instance: object) -> str:
        return "oops"

    with pytest.raises(TypeError, match="fn"):
        await registry.call("H", "llm", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="awaitable"):
        await registry.call("H", "llm", not_async)  # type: ignore[arg-type]
    stats = registry.get_provider_info()["circuit_breaker_stats"]
    for name in names:
        assert (stats[name]["state"], stats[name]["total_failures"]) == ("closed", 0)


async def test_a_frozenset_of_non_strings_is_refused_like_a_list(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    with pytest.raises(TypeError, match="required_capabilities"):
        registry.get_service_nowait("H", "llm", frozenset({1}))  # type: ignore[arg-type]
