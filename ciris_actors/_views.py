"""The public, frozen view of one provider (:class:`ProviderView`), from
:meth:`Registry.snapshot` and :meth:`Registry.view`: everything the edges (control
plane, metrics, simulator, CLI, users' tests) read about a provider, and its JSON shape.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

import attrs

from ._actors.record import OUTCOMES, ProviderRecord
from ._types import ActorStatus, Priority, SelectionStrategy
from .breaker import CircuitBreakerConfig

__all__ = ["ProviderView", "view_of"]


@attrs.frozen(kw_only=True)
class ProviderView:
    """One provider as it was when the view was taken.

    Attributes:
      name: its unique name.
      registration: its registration number: registration order breaks ties of
        priority inside a group.
      handler: the handler it serves (``"*"``: every handler).
      service_type: the service type it provides.
      priority: its priority inside its group.
      priority_group: its group (lower groups are tried first).
      strategy: the strategy it asked for its group (the group follows its first member).
      capabilities: the capabilities it offers.
      metadata: what it was registered with (read-only).
      mock: only ever handed out by ``get_service_with_fallback``.
      has_health_check: whether it has an async ``is_healthy``.
      health: the last health check's result; ``None`` when unknown (never checked since
        its last start, or no ``is_healthy``).
      health_reason: why, in words.
      actor_status: its actor's lifecycle status.
      routable: its actor and health let a resolve consider it.
      available: routable, and its breaker would admit a call now.
      restarts: restarts granted after crashes, over its life.
      last_error: the last crash or close error, if any.
      breaker: its breaker's statistics (``CircuitBreaker.get_stats``), read-only.
      breaker_config: its breaker's configuration.
      selections: resolves that chose it while a resolve observer was attached.
      transitions: breaker transitions so far, by (old state, new state) value.
      health_checks_passed: health-check results recorded as passed.
      health_checks_failed: health-check results recorded as failed.
      outcomes: calls by outcome: ``success``, ``failure``, ``ignored``,
        ``rate_limited``, ``disabled``, ``rerouted`` (by the error's class), ``timeout``
        (the call's own deadline) and ``cancelled`` (from outside), each present.
      disabled: why the provider is disabled (out of routing until its breaker is reset
        or reconfigured, or it is registered again), or ``None``.
      weight: its share in a WEIGHTED group.
      max_in_flight: its cap on leases and calls in flight (``None``: none).
      in_flight: leases, calls and tickets admitted to it and not finished.
      latency: the peak-sensitive moving average of its call latency in seconds
        (``None``: not measured yet).
    """

    name: str
    registration: int
    handler: str
    service_type: str
    priority: Priority
    priority_group: int
    strategy: SelectionStrategy
    capabilities: frozenset[str]
    metadata: Mapping[str, Any]
    mock: bool
    has_health_check: bool
    health: bool | None
    health_reason: str
    actor_status: ActorStatus
    routable: bool
    available: bool
    restarts: int
    last_error: str | None
    breaker: Mapping[str, Any]
    breaker_config: CircuitBreakerConfig
    selections: int
    transitions: Mapping[tuple[str, str], int]
    health_checks_passed: int
    health_checks_failed: int
    outcomes: Mapping[str, int]
    disabled: str | None
    weight: float
    max_in_flight: int | None
    in_flight: int
    latency: float | None

    @property
    def health_word(self) -> str:
        """``"healthy"``, ``"unhealthy"`` or ``"unknown"``; a FAILED actor is unhealthy
        whatever its last check said."""
        if self.actor_status is ActorStatus.FAILED or self.health is False:
            return "unhealthy"
        return "healthy" if self.health else "unknown"

    def as_dict(self) -> dict[str, Any]:
        """The provider as :meth:`Registry.get_provider_info` lists it (JSON-ready)."""
        return {
            "name": self.name,
            "handler": self.handler,
            "service_type": self.service_type,
            "priority": self.priority.name,
            "priority_group": self.priority_group,
            "strategy": self.strategy.value,
            "capabilities": sorted(self.capabilities),
            "metadata": dict(self.metadata),
            "mock": self.mock,
            "circuit_breaker_state": self.breaker["state"],
            "failure_count": self.breaker["failure_count"],
            "success_count": self.breaker["success_count"],
            "health": self.health_word,
            "health_reason": self.health_reason,
            "actor_status": self.actor_status.value,
            "routable": self.routable,
            "available": self.available,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "disabled": self.disabled,
            "outcomes": dict(self.outcomes),
            "weight": self.weight,
            "max_in_flight": self.max_in_flight,
            "in_flight": self.in_flight,
            "latency": self.latency,
        }


def view_of(record: ProviderRecord, now: float) -> ProviderView:
    """The view of *record* at *now* (a registry-internal constructor)."""
    breaker = record.breaker
    counters = record.counters
    life = record.lifecycle
    return ProviderView(
        name=record.name,
        registration=record.seq,
        handler=record.handler,
        service_type=record.service_type,
        priority=record.priority,
        priority_group=record.priority_group,
        strategy=record.strategy,
        capabilities=record.capabilities,
        metadata=types.MappingProxyType(record.metadata),
        mock=record.mock,
        has_health_check=record.has_health_check,
        health=record.healthy,
        health_reason=life.health_reason,
        actor_status=record.status,
        routable=record.routable,
        available=record.routable and breaker.is_available(now),
        restarts=life.restart.restarts,
        last_error=life.last_error,
        breaker=types.MappingProxyType(breaker.get_stats(now)),
        breaker_config=breaker.config,
        selections=counters.selections,
        transitions=types.MappingProxyType(dict(counters.transitions)),
        health_checks_passed=counters.health_passed,
        health_checks_failed=counters.health_failed,
        outcomes=types.MappingProxyType(dict(zip(OUTCOMES, counters.outcomes, strict=True))),
        disabled=breaker.disabled,
        weight=record.weight,
        max_in_flight=record.max_in_flight,
        in_flight=record.in_flight,
        latency=record.latency,
    )
