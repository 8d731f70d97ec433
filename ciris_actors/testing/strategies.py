"""Hypothesis strategies for property tests of code that uses ciris_actors: breaker
configurations, sets of providers a test stages into real states (:func:`stage`), and
fault schedules for simulation runs. Needs hypothesis: the ``strategies`` extra.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

try:
    from hypothesis import strategies as st
except ImportError as error:  # pragma: no cover - the tests install hypothesis
    raise ImportError(
        "ciris_actors.testing.strategies needs hypothesis: pip install 'ciris-actors[strategies]'"
    ) from error

from .._types import Priority, SelectionStrategy
from ..breaker import CircuitBreakerConfig
from ..simulation.faults import Fault, FaultKind, FaultSetting, fault_class, fault_settings
from ._staging import (
    ACTOR_STATES as ACTOR_STATES,
    BREAKER_STATES as BREAKER_STATES,
    HEALTH_STATES as HEALTH_STATES,
    STAGE_HOLD as STAGE_HOLD,
    STAGING_BREAKER as STAGING_BREAKER,
    STAGING_RESTART_POLICY as STAGING_RESTART_POLICY,
    STAGING_TIMEOUT as STAGING_TIMEOUT,
    ActorState as ActorState,
    BreakerState as BreakerState,
    HealthState as HealthState,
    ProviderSpec as ProviderSpec,
    StagedProvider as StagedProvider,
    StagingError as StagingError,
    stage as stage,
    staging_registry as staging_registry,
)

__all__ = [
    "ACTOR_STATES",
    "BREAKER_STATES",
    "CAPABILITIES",
    "HEALTH_STATES",
    "STAGE_HOLD",
    "STAGING_BREAKER",
    "STAGING_RESTART_POLICY",
    "STAGING_TIMEOUT",
    "ActorState",
    "BreakerState",
    "HealthState",
    "ProviderSpec",
    "StagedProvider",
    "StagingError",
    "breaker_configs",
    "fault_schedules",
    "provider_sets",
    "provider_specs",
    "stage",
    "staging_registry",
]

#: The capabilities :func:`provider_specs` draws from unless told otherwise.
CAPABILITIES = ("chat", "structured_output", "vision")


def breaker_configs(
    *,
    max_threshold: int = 5,
    min_seconds: float = 0.01,
    max_seconds: float = 600.0,
    max_backoff: float = 4.0,
    timeout_duration: float | None = None,
) -> st.SearchStrategy[CircuitBreakerConfig]:
    """Valid :class:`~ciris_actors.CircuitBreakerConfig` objects, every field drawn.

    ``half_open_max_calls`` is left to its default (``success_threshold``) or drawn;
    ``max_recovery_timeout`` is ``None`` or between ``recovery_timeout`` and
    *max_seconds*.

    Args:
      max_threshold: the largest ``failure_threshold``, ``success_threshold`` and
        ``half_open_max_calls`` (the smallest is 1).
      min_seconds: the shortest ``recovery_timeout`` and ``timeout_duration``.
      max_seconds: the longest ``recovery_timeout``, ``timeout_duration`` and cap.
      max_backoff: the largest ``recovery_backoff`` (the smallest is 1.0).
      timeout_duration: a fixed ``timeout_duration`` instead of a drawn one (e.g.
        :data:`STAGING_TIMEOUT` for a registry to :func:`stage` in).

    Raises:
      ValueError: bounds that allow no valid configuration.
    """
    if max_threshold < 1:
        raise ValueError(f"max_threshold: must be >= 1, got {max_threshold!r}")
    if not (0 < min_seconds <= max_seconds < math.inf):
        raise ValueError(
            f"min_seconds, max_seconds: need 0 < min_seconds <= max_seconds < inf,"
            f" got {min_seconds!r}, {max_seconds!r}"
        )
    if not (1.0 <= max_backoff < math.inf):
        raise ValueError(f"max_backoff: must be >= 1.0 and finite, got {max_backoff!r}")
    seconds = st.floats(min_seconds, max_seconds, allow_nan=False, allow_infinity=False)
    counts = st.integers(1, max_threshold)
    timeouts = seconds if timeout_duration is None else st.just(timeout_duration)

    @st.composite
    def configs(draw: st.DrawFn) -> CircuitBreakerConfig:
        recovery = draw(seconds)
        fields: dict[str, Any] = {
            "failure_threshold": draw(counts),
            "recovery_timeout": recovery,
            "success_threshold": draw(counts),
            "timeout_duration": draw(timeouts),
            "recovery_backoff": draw(st.just(1.0) | st.floats(1.0, max_backoff)),
            "max_recovery_timeout": draw(st.none() | st.floats(recovery, max_seconds)),
        }
        quota = draw(st.none() | counts)
        if quota is not None:
            fields["half_open_max_calls"] = quota
        return CircuitBreakerConfig(**fields)

    return configs()


# -- provider sets ---------------------------------------------------------------------------

#: The order in which a spec's state is drawn, and how often each value comes up
#: (first: what a shrunk example falls back to). Running providers and closed breakers
#: are favoured so that most sets have something a resolve can find.
_STATE_WEIGHTS: tuple[tuple[str, Mapping[Any, int]], ...] = (
    ("actor", {"running": 4, "starting": 1, "restarting": 1, "failed": 1}),
    ("has_health_check", {False: 1, True: 1}),
    ("health", {"healthy": 2, "unhealthy": 1, "unknown": 1}),
    ("supervised", {True: 1, False: 1}),
    ("breaker", {"closed": 2, "open": 1, "half_open": 1, "half_open_full": 1}),
)


def _possible_states(
    breaker_states: Iterable[BreakerState],
    actor_states: Iterable[ActorState],
    health_states: Iterable[HealthState],
) -> list[dict[str, Any]]:
    allowed: dict[str, set[Any]] = {
        "breaker": set(breaker_states),
        "actor": set(actor_states),
        "health": set(health_states),
    }
    for field, values in allowed.items():
        known = dict(_STATE_WEIGHTS)[field]
        unknown = values - set(known)
        if unknown:
            raise ValueError(f"{field}_states: unknown {sorted(unknown)!r}")
    states = []
    for actor in ACTOR_STATES:
        for has_check in (False, True):
            for health in HEALTH_STATES:
                for supervised in (True, False):
                    for breaker in BREAKER_STATES:
                        state: dict[str, Any] = {
                            "actor": actor,
                            "has_health_check": has_check,
                            "health": health,
                            "supervised": supervised,
                            "breaker": breaker,
                        }
                        if not all(state[f] in values for f, values in allowed.items()):
                            continue
                        try:
                            ProviderSpec(**state)
                        except ValueError:
                            continue  # the registry cannot be in it
                        states.append(state)
    if not states:
        raise ValueError("no state the registry can be in has those breaker, actor and health")
    return states


def provider_specs(
    *,
    handlers: Sequence[str] = ("H", "*"),
    service_types: Sequence[str] = ("llm",),
    capabilities: Sequence[str] = CAPABILITIES,
    groups: int = 3,
    breaker_states: Iterable[BreakerState] = BREAKER_STATES,
    actor_states: Iterable[ActorState] = ACTOR_STATES,
    health_states: Iterable[HealthState] = HEALTH_STATES,
) -> st.SearchStrategy[ProviderSpec]:
    """One :class:`ProviderSpec` in a state the registry can really be in.

    Every combination of breaker, actor and health state, ``is_healthy`` or not, plain
    or supervised, that the registry can be in comes up (running providers, passing
    health checks and closed breakers more often than the rest).

    Args:
      handlers: the handlers drawn from (``"*"``: global).
      service_types: the service types drawn from.
      capabilities: the capabilities a provider offers a subset of.
      groups: priority groups are drawn from ``0`` to ``groups - 1``.
      breaker_states: only these breaker states.
      actor_states: only these actor states.
      health_states: only these healths.

    Raises:
      ValueError: the restrictions leave no possible state, or name an unknown one.
    """
    if not handlers or not service_types:
        raise ValueError("handlers, service_types: need at least one each")
    if groups < 1:
        raise ValueError(f"groups: must be >= 1, got {groups!r}")
    states = _possible_states(breaker_states, actor_states, health_states)

    @st.composite
    def specs(draw: st.DrawFn) -> ProviderSpec:
        remaining = states
        chosen: dict[str, Any] = {}
        for field, weights in _STATE_WEIGHTS:
            present = {state[field] for state in remaining}
            weighted = [v for v, weight in weights.items() if v in present for _ in range(weight)]
            chosen[field] = value = draw(st.sampled_from(weighted))
            remaining = [state for state in remaining if state[field] == value]
        return ProviderSpec(
            handler=draw(st.sampled_from(handlers)),
            service_type=draw(st.sampled_from(service_types)),
            priority=draw(st.sampled_from(list(Priority))),
            priority_group=draw(st.integers(0, groups - 1)),
            strategy=draw(st.sampled_from(list(SelectionStrategy))),
            capabilities=draw(st.frozensets(st.sampled_from(capabilities)))
            if capabilities
            else frozenset(),
            **chosen,
        )

    return specs()


def provider_sets(
    *,
    min_size: int = 0,
    max_size: int = 10,
    handlers: Sequence[str] = ("H", "*"),
    service_types: Sequence[str] = ("llm",),
    capabilities: Sequence[str] = CAPABILITIES,
    groups: int = 3,
    breaker_states: Iterable[BreakerState] = BREAKER_STATES,
    actor_states: Iterable[ActorState] = ACTOR_STATES,
    health_states: Iterable[HealthState] = HEALTH_STATES,
) -> st.SearchStrategy[list[ProviderSpec]]:
    """Lists of :class:`ProviderSpec` (see :func:`provider_specs`) to :func:`stage` in a
    registry: the providers are registered in list order.

    Args:
      min_size: the fewest providers.
      max_size: the most providers.
      handlers: as for :func:`provider_specs`.
      service_types: as for :func:`provider_specs`.
      capabilities: as for :func:`provider_specs`.
      groups: as for :func:`provider_specs`.
      breaker_states: as for :func:`provider_specs`.
      actor_states: as for :func:`provider_specs`.
      health_states: as for :func:`provider_specs`.
    """
    one = provider_specs(
        handlers=handlers,
        service_types=service_types,
        capabilities=capabilities,
        groups=groups,
        breaker_states=breaker_states,
        actor_states=actor_states,
        health_states=health_states,
    )
    return st.lists(one, min_size=min_size, max_size=max_size)


# -- fault schedules ---------------------------------------------------------------------------

#: Sensible ranges (low, high) for the settings of the fault kinds; ``None`` as high:
#: the fault's own duration. A setting not listed goes from its minimum to its maximum
#: (or the fault's duration).
_SETTING_RANGES: dict[str, tuple[float, float | None]] = {
    "error_rate": (0.0, 1.0),
    "added_latency": (0.0, 60.0),
    "interval": (1.0, None),
    "period": (1.0, None),
    "start_delay": (0.0, 60.0),
    "retry_after": (0.0, 120.0),
}


def _setting_values(rule: FaultSetting, length: float) -> st.SearchStrategy[float]:
    low, high = _SETTING_RANGES.get(rule.name, (rule.minimum, rule.maximum))
    if high is None:
        high = length
    low = max(low, rule.minimum)
    if rule.maximum is not None:
        high = min(high, rule.maximum)
    high = max(high, low)
    values = [st.just(rule.default)]
    if not rule.exclusive:
        values.append(st.just(rule.minimum))  # 0 often means "off" or "once"
    exclude = rule.exclusive and low <= rule.minimum
    if high > low or not exclude:
        values.append(st.floats(low, high, exclude_min=exclude))
    return st.one_of(values)


def fault_schedules(
    provider_names: Sequence[str],
    duration: float,
    *,
    kinds: Iterable[FaultKind | str] | None = None,
    min_faults: int = 0,
    max_faults: int = 4,
) -> st.SearchStrategy[list[Fault]]:
    """Lists of faults (:mod:`ciris_actors.simulation.faults`) on *provider_names*
    within a run of *duration* seconds, with valid settings, for the ``faults`` of a
    :class:`~ciris_actors.simulation.Scenario`.

    Each fault starts at or after 0, ends by *duration*, and lasts at least a second
    (or the whole run, if it is shorter). Its settings are its kind's default, its
    minimum (0 often means "off" or "once"), or a value in a sensible range: error
    rates 0 to 1, latencies and start delays up to a minute, crash intervals and flap
    periods from a second to the fault's length, a rate limit's Retry-After up to two
    minutes.

    Args:
      provider_names: the providers faults strike.
      duration: the run's length, in seconds (> 0).
      kinds: only these kinds (a :class:`FaultKind` or its value); default: every kind.
      min_faults: the fewest faults.
      max_faults: the most faults.

    Raises:
      ValueError: no provider names, a duration that is not finite and > 0, or an
        unknown kind.
    """
    names = list(provider_names)
    if not names:
        raise ValueError("provider_names: need at least one")
    if not (0 < duration < math.inf):
        raise ValueError(f"duration: must be finite and > 0, got {duration!r}")
    chosen = list(FaultKind) if kinds is None else [FaultKind(kind) for kind in kinds]
    if not chosen:
        raise ValueError("kinds: need at least one (None: every kind)")
    shortest = min(1.0, duration)

    @st.composite
    def faults(draw: st.DrawFn) -> Fault:
        kind = draw(st.sampled_from(chosen))
        at = draw(st.floats(0.0, duration - shortest))
        length = draw(st.floats(shortest, max(shortest, duration - at)))
        settings = {
            rule.name: draw(_setting_values(rule, length))
            for rule in fault_settings(fault_class(kind))
        }
        return Fault.of(kind, draw(st.sampled_from(names)), at=at, duration=length, **settings)

    return st.lists(faults(), min_size=min_faults, max_size=max_faults)
