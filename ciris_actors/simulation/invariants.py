"""Invariant checks run at every routing decision of a simulation.

Written from the rules in docs/semantics.md, independently of ``selection.select``: the
order of candidates is recomputed from the provider records, so a broken router (a test
injects one) is caught rather than agreed with.
"""

from __future__ import annotations

from collections.abc import Collection

import attrs
import trio

from .._actors.supervisor import GLOBAL, ProviderRecord
from .._types import CircuitState, SelectionStrategy
from ..registry import Registry
from ..selection import ActorStatus

__all__ = ["InvariantChecker", "Violation"]


@attrs.frozen
class Violation:
    """One broken invariant: when, which rule, and what happened."""

    time: float
    rule: str
    detail: str


@attrs.define
class InvariantChecker:
    """Checks each routing decision against the rules; collects violations.

    Rules: ``open-breaker`` (routed to a provider whose breaker is OPEN),
    ``capability`` (lacking a required capability), ``unroutable`` (actor not running or
    health failed), ``tier`` (a higher-tier provider of a FALLBACK group, or of an earlier
    group or scope, was available and untried), ``probe-quota`` (more half-open probes
    out than ``half_open_max_calls``), ``lost`` (a request not accounted for).
    """

    registry: Registry
    origin: float = 0.0
    violations: list[Violation] = attrs.field(factory=list)
    checks: int = 0
    #: (handler, service type) -> (routing-table version, candidates in walk order with
    #: the strategy of their group), rebuilt only when registrations change.
    _orders: dict[tuple[str, str], tuple[int, list[tuple[ProviderRecord, SelectionStrategy]]]] = (
        attrs.field(factory=dict)
    )

    def record(self, rule: str, detail: str) -> None:
        """Add a violation at the current time."""
        self.violations.append(Violation(trio.current_time() - self.origin, rule, detail))

    def on_route(
        self,
        name: str,
        handler: str,
        service_type: str,
        required: frozenset[str],
        tried: Collection[str],
    ) -> None:
        """Check that routing this request to provider *name* now broke no rule.

        Called synchronously at the start of the provider's call, before any other task
        has run since the resolve chose it.
        """
        self.checks += 1
        providers = self.registry._sup.providers
        chosen = providers.get(name)
        if chosen is None:
            self.record("unroutable", f"routed to {name!r}, which is not registered")
            return
        now = trio.current_time()
        breaker = chosen.breaker
        if breaker.state is CircuitState.OPEN:
            self.record("open-breaker", f"routed to {name!r} while its breaker was open")
        if not required <= chosen.capabilities:
            missing = sorted(required - chosen.capabilities)
            self.record("capability", f"routed to {name!r}, which lacks {missing}")
        if not _routable(chosen):
            self.record(
                "unroutable",
                f"routed to {name!r} while its actor was {chosen.status.value}"
                f" and health {chosen.healthy}",
            )
        if breaker.probes_in_flight > breaker.config.half_open_max_calls:
            self.record(
                "probe-quota",
                f"{name!r} has {breaker.probes_in_flight} probes out"
                f" (quota {breaker.config.half_open_max_calls})",
            )
        for better in self._higher_tiers(chosen, handler, service_type):
            if (
                better.name not in tried
                and required <= better.capabilities
                and _routable(better)
                and better.breaker.is_available(now)
            ):
                self.record(
                    "tier",
                    f"routed to {name!r} while {better.name!r} ranked higher and was available",
                )
                break

    def _higher_tiers(
        self, chosen: ProviderRecord, handler: str, service_type: str
    ) -> list[ProviderRecord]:
        """Providers a resolve must prefer over *chosen*: every one in an earlier scope or
        group, and earlier ones of its own group when that group is FALLBACK."""
        better: list[ProviderRecord] = []
        for record, strategy in self._walk_order(handler, service_type):
            if record is chosen:
                break
            same_group = (
                record.handler == chosen.handler and record.priority_group == chosen.priority_group
            )
            if not same_group or strategy is SelectionStrategy.FALLBACK:
                better.append(record)
        return better

    def _walk_order(
        self, handler: str, service_type: str
    ) -> list[tuple[ProviderRecord, SelectionStrategy]]:
        """Every candidate of (handler, service type) in walk order, with its group's
        strategy: computed here from the records, not taken from the router's plans."""
        supervisor = self.registry._sup
        cached = self._orders.get((handler, service_type))
        if cached is not None and cached[0] == supervisor.version:
            return cached[1]
        records = [
            r
            for r in supervisor.providers.values()
            if r.service_type == service_type and not r.mock
        ]
        order: list[tuple[ProviderRecord, SelectionStrategy]] = []
        for scope in [handler, GLOBAL] if handler != GLOBAL else [GLOBAL]:
            in_scope = sorted(
                (r for r in records if r.handler == scope),
                key=lambda r: (r.priority_group, int(r.priority), r.seq),
            )
            first_of_group: dict[int, ProviderRecord] = {}
            for record in in_scope:
                first_of_group.setdefault(record.priority_group, record)
            order += [(r, first_of_group[r.priority_group].strategy) for r in in_scope]
        self._orders[(handler, service_type)] = (supervisor.version, order)
        return order


def _routable(record: ProviderRecord) -> bool:
    healthy = record.healthy is True or (record.healthy is None and not record.has_health_check)
    return record.status is ActorStatus.RUNNING and healthy
