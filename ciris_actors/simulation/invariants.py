"""Invariant checks run at every routing decision of a simulation.

Written from the rules in docs/semantics.md, independently of ``selection.select``: the
order of candidates is recomputed from the provider records, so a broken router (a test
injects one) is caught rather than agreed with.
"""

from __future__ import annotations

from collections.abc import Collection

import attrs
import trio

from .._errors import UnknownProviderError
from .._types import GLOBAL, ActorStatus, CircuitState, SelectionStrategy
from .._views import ProviderView
from ..registry import Registry

__all__ = ["InvariantChecker", "Violation"]

_CLOSED = CircuitState.CLOSED.value
_OPEN = CircuitState.OPEN.value
_HALF_OPEN = CircuitState.HALF_OPEN.value


@attrs.frozen
class Violation:
    """One broken invariant: when, which rule, and what happened."""

    time: float
    rule: str
    detail: str


@attrs.frozen
class _Candidate:
    """One provider in walk order, as the checker computed it from the views."""

    name: str
    handler: str
    priority_group: int
    #: The strategy of its group (that of the group's first member).
    strategy: SelectionStrategy


@attrs.define
class InvariantChecker:
    """Checks each routing decision against the rules; collects violations.

    Rules: ``open-breaker`` (routed to a provider whose breaker is OPEN),
    ``capability`` (lacking a required capability), ``unroutable`` (actor not running or
    health failed), ``tier`` (a higher-tier provider of a FALLBACK group, or of an earlier
    group or scope, was available and untried; a provider at its ``max_in_flight`` is not
    available, and with proportional spillover an earlier group of the same scope does
    not count), ``probe-quota`` (more half-open probes
    out than ``half_open_max_calls``), ``lost`` (a request not accounted for).

    It reads the registry only through its public views (``Registry.view``,
    ``Registry.snapshot``), cached against ``Registry.state_version``.
    """

    registry: Registry
    origin: float = 0.0
    #: Whether the registry spills resolves over between groups
    #: (``open_registry(overprovisioning_factor=)``): a resolve may then take a later
    #: group of a scope while an earlier one has an available member.
    spillover: bool = False
    violations: list[Violation] = attrs.field(factory=list)
    checks: int = 0
    #: (handler, service type) -> (routing version, candidates in walk order), rebuilt
    #: only when registrations change.
    _orders: dict[tuple[str, str], tuple[int, list[_Candidate]]] = attrs.field(factory=dict)
    #: (handler, service type, chosen) -> (routing version, names ranked above it).
    _betters: dict[tuple[str, str, str], tuple[int, list[str]]] = attrs.field(factory=dict)
    #: Views by name, with whether each is routable, valid while the registry's state
    #: version is ``_views_version``.
    _views: dict[str, tuple[ProviderView, bool]] = attrs.field(factory=dict)
    _views_version: int = -1

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
        entry = self._view(name)
        if entry is None:
            self.record("unroutable", f"routed to {name!r}, which is not registered")
            return
        chosen, routable = entry
        stats = chosen.breaker
        if stats["state"] == _OPEN:
            self.record("open-breaker", f"routed to {name!r} while its breaker was open")
        if required and not required <= chosen.capabilities:
            missing = sorted(required - chosen.capabilities)
            self.record("capability", f"routed to {name!r}, which lacks {missing}")
        if not routable:
            self.record(
                "unroutable",
                f"routed to {name!r} while its actor was {chosen.actor_status.value}"
                f" and health {chosen.health}",
            )
        quota = chosen.breaker_config.half_open_max_calls
        if stats["probes_in_flight"] > quota:
            self.record(
                "probe-quota",
                f"{name!r} has {stats['probes_in_flight']} probes out (quota {quota})",
            )
        for better in self._higher_tiers(chosen, handler, service_type):
            if better in tried:
                continue
            other = self._view(better)
            if (
                other is not None
                and required <= other[0].capabilities
                and other[1]
                and _available(other[0], trio.current_time())
                and not self._at_capacity(other[0])
            ):
                self.record(
                    "tier",
                    f"routed to {name!r} while {better!r} ranked higher and was available",
                )
                break

    def _at_capacity(self, view: ProviderView) -> bool:
        """Whether the provider of *view* is at its ``max_in_flight`` now (read afresh:
        its in-flight count moves without the state version)."""
        if view.max_in_flight is None:
            return False
        return self.registry.view(view.name).in_flight >= view.max_in_flight

    def _view(self, name: str) -> tuple[ProviderView, bool] | None:
        """Provider *name*'s view and whether it is routable (``None``: not registered),
        read again only when the registry's ``state_version`` has moved or its breaker is
        HALF_OPEN (whose probe count changes without moving it)."""
        version = self.registry.state_version
        if version != self._views_version:
            self._views.clear()
            self._views_version = version
        entry = self._views.get(name)
        if entry is None or entry[0].breaker["state"] == _HALF_OPEN:
            try:
                view = self.registry.view(name)
            except UnknownProviderError:
                return None
            entry = self._views[name] = (view, _routable(view))
        return entry

    def _higher_tiers(self, chosen: ProviderView, handler: str, service_type: str) -> list[str]:
        """The names of the providers a resolve must prefer over *chosen*: every one in an
        earlier scope or group, and earlier ones of its own group when that group is
        FALLBACK (worked out once per routing table)."""
        version = self.registry.routing_version
        key = (handler, service_type, chosen.name)
        cached = self._betters.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        better: list[str] = []
        for candidate in self._walk_order(handler, service_type):
            if candidate.name == chosen.name:
                break
            same_scope = candidate.handler == chosen.handler
            same_group = same_scope and candidate.priority_group == chosen.priority_group
            if same_scope and not same_group and self.spillover:
                continue
            if not same_group or candidate.strategy is SelectionStrategy.FALLBACK:
                better.append(candidate.name)
        self._betters[key] = (version, better)
        return better

    def _walk_order(self, handler: str, service_type: str) -> list[_Candidate]:
        """Every candidate of (handler, service type) in walk order, with its group's
        strategy: computed here from the views, not taken from the router's plans."""
        version = self.registry.routing_version
        cached = self._orders.get((handler, service_type))
        if cached is not None and cached[0] == version:
            return cached[1]
        views = [v for v in self.registry.snapshot(service_type=service_type) if not v.mock]
        order: list[_Candidate] = []
        for scope in [handler, GLOBAL] if handler != GLOBAL else [GLOBAL]:
            in_scope = sorted(
                (v for v in views if v.handler == scope),
                key=lambda v: (v.priority_group, int(v.priority), v.registration),
            )
            first_of_group: dict[int, ProviderView] = {}
            for view in in_scope:
                first_of_group.setdefault(view.priority_group, view)
            order += [
                _Candidate(
                    v.name, v.handler, v.priority_group, first_of_group[v.priority_group].strategy
                )
                for v in in_scope
            ]
        self._orders[(handler, service_type)] = (version, order)
        return order


def _available(view: ProviderView, now: float) -> bool:
    """Whether a resolve at *now* could take the (routable) provider of *view*, as far
    as its breaker goes: the rules, not the view's ``available`` (a cached view's is as
    of when it was taken)."""
    state = view.breaker["state"]
    if state == _CLOSED:
        return True
    if state == _OPEN:
        due = view.breaker["next_attempt_time"]
        return due is not None and now >= due
    return int(view.breaker["probes_in_flight"]) < view.breaker_config.half_open_max_calls


def _routable(view: ProviderView) -> bool:
    healthy = view.health is True or (view.health is None and not view.has_health_check)
    return view.actor_status is ActorStatus.RUNNING and healthy
