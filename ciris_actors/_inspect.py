"""Inspection: what the registry would do and how its providers stand, for people and
the edges. The live selection walk (:class:`SelectionExplanation`, and the reasons in
:class:`NoServiceAvailable`), ``get_provider_info`` and ``health_status``, all built from
provider views (:mod:`._views`) or the pure plan walk; nothing here changes anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from ._actors.record import ProviderRecord
from ._errors import Attempt, NoServiceAvailable, Skip
from ._types import GLOBAL, ActorStatus
from ._views import ProviderView
from .selection import Candidate, Member, Plan, explain_plan, group_loads

__all__ = [
    "SelectionExplanation",
    "explain",
    "health_status",
    "no_service",
    "provider_info",
]


@attrs.frozen
class SelectionExplanation:
    """The live selection walk of one request, from :meth:`Registry.explain`.

    Attributes:
      handler: the handler asked about.
      service_type: the service type asked about.
      required_capabilities: the capabilities asked for.
      candidates: every candidate in walk order with its verdict and reason.
      chosen: the name of the provider a resolve would return now, or ``None`` (also
        when a LEAST_OUTSTANDING or LATENCY group's two random picks will decide: its
        available members are then ``"candidate"``).
      spillover: with proportional spillover, ``(scope, group, share)`` of each group:
        the share of resolves its draw sends there now; empty without spillover.
    """

    handler: str
    service_type: str
    required_capabilities: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    chosen: str | None
    spillover: tuple[tuple[str, int, float], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "handler": self.handler,
            "service_type": self.service_type,
            "required_capabilities": list(self.required_capabilities),
            "chosen": self.chosen,
            "spillover": [
                {"scope": scope, "group": group, "share": share}
                for scope, group, share in self.spillover
            ],
            "candidates": [
                {
                    "scope": c.scope,
                    "group": c.group,
                    "strategy": c.strategy.value,
                    "name": c.name,
                    "priority": c.priority.name,
                    "verdict": c.verdict,
                    "reason": c.reason,
                    "open_until": c.open_until,
                }
                for c in self.candidates
            ],
        }

    def __str__(self) -> str:
        """The walk as text for people, group by group: each candidate with its
        priority and verdict, and for one skipped or chosen, why. Lines stay short
        (candidates not reached say only that)."""
        head = f"selection for handler {self.handler!r}, service type {self.service_type!r}"
        if self.required_capabilities:
            head += f"\nrequiring {list(self.required_capabilities)}"
        if not self.candidates:
            return head + "\nno provider registered"
        lines = [head]
        width = max(len(c.name) for c in self.candidates)
        group: tuple[str, int] | None = None
        for c in self.candidates:
            if (c.scope, c.group) != group:
                group = (c.scope, c.group)
                scope = "global providers" if c.scope == GLOBAL else f"handler {c.scope!r}"
                lines.append(f"{scope}, group {c.group} ({c.strategy.value}):")
            verdict = c.verdict if c.verdict == "not reached" else f"{c.verdict}: {c.reason}"
            lines.append(f"  {c.name.ljust(width)}  {c.priority.name:<8}  {verdict}")
        lines.append(f"chosen: {self.chosen or 'none'}")
        if self.spillover:
            shares = ", ".join(
                f"{'global ' if scope == GLOBAL else ''}group {group} {share:.0%}"
                for scope, group, share in self.spillover
            )
            lines.append(f"spillover: resolves go to {shares}")
        return "\n".join(lines)


def walk(
    plans: dict[tuple[str, str], Plan[ProviderRecord]],
    handler: str,
    service_type: str,
    required: frozenset[str],
    fallback_to_global: bool,
    exclude: Iterable[Member],
    now: float,
) -> list[Candidate]:
    """Every candidate of a resolve in walk order, with its verdict and reason."""
    excluded = tuple(exclude)
    rows: list[Candidate] = []
    chosen = False
    scopes = [handler]
    if fallback_to_global and handler != GLOBAL:
        scopes.append(GLOBAL)
    for scope in scopes:
        plan = plans.get((scope, service_type))
        if plan is not None:
            more, chosen = explain_plan(scope, plan, required, now, chosen, excluded)
            rows += more
    return rows


def explain(
    plans: dict[tuple[str, str], Plan[ProviderRecord]],
    handler: str,
    service_type: str,
    required: frozenset[str],
    fallback_to_global: bool,
    now: float,
    overprovisioning_factor: float | None = None,
) -> SelectionExplanation:
    """The live selection walk for a request (``Registry.explain``), with the group
    loads of proportional spillover when a factor is given."""
    rows = walk(plans, handler, service_type, required, fallback_to_global, (), now)
    chosen = next((c.name for c in rows if c.verdict == "chosen"), None)
    spillover: list[tuple[str, int, float]] = []
    if overprovisioning_factor is not None:
        scopes = [handler] + ([GLOBAL] if fallback_to_global and handler != GLOBAL else [])
        for scope in scopes:
            plan = plans.get((scope, service_type))
            if plan is not None:
                loads = group_loads(plan, required, lambda: now, (), overprovisioning_factor)
                spillover += [
                    (scope, group.number, share) for group, share in zip(plan, loads, strict=True)
                ]
    return SelectionExplanation(
        handler=handler,
        service_type=service_type,
        required_capabilities=tuple(sorted(required)),
        candidates=tuple(rows),
        chosen=chosen,
        spillover=tuple(spillover),
    )


def no_service(
    plans: dict[tuple[str, str], Plan[ProviderRecord]],
    handler: str,
    service_type: str,
    required: frozenset[str],
    tried: Iterable[Member],
    attempts: Sequence[Attempt],
    now: float,
) -> NoServiceAvailable:
    """The error for a request nothing could serve: every attempt, and every candidate
    skipped with its reason (the walk's, excluding what was tried)."""
    rows = walk(plans, handler, service_type, required, True, tried, now)
    tried_names = {a.name for a in attempts}
    skipped = [
        Skip(c.name, c.reason) for c in rows if c.verdict == "skipped" and c.name not in tried_names
    ]
    reopen = min(
        (c.open_until for c in rows if c.open_until is not None and c.name not in tried_names),
        default=None,
    )
    retry_after = None if reopen is None else max(0.0, reopen - now)
    return NoServiceAvailable(
        handler, service_type, required, skipped, tuple(attempts), retry_after
    )


def provider_info(
    views: Iterable[ProviderView], handler: str | None, service_type: str | None
) -> dict[str, Any]:
    """``get_provider_info``'s JSON shape from the views, in selection order.

    *handler* filters the ``"handlers"`` section only: global providers serve every
    handler and are always listed.
    """
    info: dict[str, Any] = {"handlers": {}, "global_services": {}, "circuit_breaker_stats": {}}
    for view in views:
        if service_type is not None and view.service_type != service_type:
            continue
        if view.handler == GLOBAL:
            bucket = info["global_services"]
        elif handler is None or view.handler == handler:
            bucket = info["handlers"].setdefault(view.handler, {})
        else:
            continue
        bucket.setdefault(view.service_type, []).append(view.as_dict())
        info["circuit_breaker_stats"][view.name] = dict(view.breaker)
    return info


def health_status(
    views: Iterable[ProviderView], required_services: Sequence[str]
) -> dict[str, Any]:
    """``health_status``'s JSON summary from the views.

    ``overall_health`` is ``"critical"`` when a required service type (every registered
    type, if none is required) has no available provider, ``"degraded"`` when any
    provider is unhealthy, failed, restarting or its breaker is not closed, else
    ``"healthy"``. Mock providers are left out.
    """
    types: dict[str, dict[str, Any]] = {}
    degraded = False
    for view in views:
        if view.mock:
            continue
        detail = types.setdefault(
            view.service_type,
            {
                "total": 0,
                "healthy": 0,
                "unhealthy": 0,
                "unknown": 0,
                "available": 0,
                "providers": {},
            },
        )
        health = view.health_word
        detail["total"] += 1
        detail[health] += 1
        detail["available"] += view.available
        state = view.breaker["state"]
        detail["providers"][view.name] = {
            "health": health,
            "actor_status": view.actor_status.value,
            "circuit_state": state,
            "available": view.available,
            "reason": view.health_reason,
        }
        if health == "unhealthy" or state != "closed":
            degraded = True
        if view.actor_status in (ActorStatus.FAILED, ActorStatus.RESTARTING):
            degraded = True
    watched = required_services or tuple(types)
    critical = any(types.get(t, {}).get("available", 0) == 0 for t in watched)
    overall = "critical" if critical else "degraded" if degraded else "healthy"
    return {
        "overall_health": overall,
        "total_services": sum(d["total"] for d in types.values()),
        "healthy_services": sum(d["healthy"] for d in types.values()),
        "unhealthy_services": sum(d["unhealthy"] for d in types.values()),
        "unknown_services": sum(d["unknown"] for d in types.values()),
        "required_services": list(required_services),
        "service_types": types,
    }
