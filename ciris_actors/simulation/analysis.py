"""The request log of a simulation run, and the :class:`Report` computed from it, the
registry's events and the fault schedule once the run is over: the oracle, the per-fault
times and phases, the timeline, the down and unhealthy windows.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ..events import (
    ActorCrashed,
    ActorFailed,
    ActorRestarted,
    BreakerTransition,
    HealthChanged,
    RegistryEvent,
)
from .faults import Fault
from .invariants import Violation
from .model import Scenario
from .providers import SimulatedProvider
from .report import (
    ActorFailure,
    AttemptOutcomes,
    Attempts,
    BreakerChange,
    Bucket,
    FaultPhases,
    FaultStats,
    Invariants,
    Percentiles,
    Phase,
    ProviderStats,
    ProviderWindows,
    Report,
    RequestTotals,
    Restart,
    RoutingStats,
    Timeline,
    Window,
)
from .traffic import is_long

__all__ = ["OUTCOMES", "TIMELINE_BUCKETS", "RequestLog", "build_report", "percentiles"]

#: Every request ends as exactly one of these.
OUTCOMES = ("succeeded", "failed", "rejected", "shed")
#: Buckets of the traffic-share timeline.
TIMELINE_BUCKETS = 60
#: Violations a report lists at most (before ``lost``); it counts them all.
_LISTED_VIOLATIONS = 100


@attrs.define
class RequestLog:
    """One row per request, in arrival order (columns as parallel lists, for speed)."""

    arrival: list[float] = attrs.field(factory=list)
    mix: list[int] = attrs.field(factory=list)
    outcome: list[str] = attrs.field(factory=list)
    latency: list[float] = attrs.field(factory=list)
    served: list[str | None] = attrs.field(factory=list)
    first: list[str | None] = attrs.field(factory=list)
    attempts: list[int] = attrs.field(factory=list)

    def add(self, arrival: float, mix: int) -> int:
        """Log an arrival; return its slot."""
        self.arrival.append(arrival)
        self.mix.append(mix)
        self.outcome.append("")
        self.latency.append(0.0)
        self.served.append(None)
        self.first.append(None)
        self.attempts.append(0)
        return len(self.arrival) - 1

    def finish(
        self, slot: int, outcome: str, latency: float, served: str | None, tried: Sequence[str]
    ) -> None:
        """Record how request *slot* ended."""
        self.outcome[slot] = outcome
        self.latency[slot] = latency
        self.served[slot] = served
        self.first[slot] = tried[0] if tried else None
        self.attempts[slot] = len(tried)

    def count(self, outcome: str) -> int:
        """How many requests ended as *outcome*."""
        return self.outcome.count(outcome)


def percentiles(values: Sequence[float]) -> Percentiles:
    """p50, p95 and p99 (nearest rank) of *values*, and their count; ``None`` when there
    are none."""
    if not values:
        return Percentiles(None, None, None, 0)
    ordered = sorted(values)
    n = len(ordered)

    def rank(q: float) -> float:
        return ordered[max(0, min(n - 1, math.ceil(q * n) - 1))]

    return Percentiles(rank(0.50), rank(0.95), rank(0.99), n)


def build_report(
    *,
    scenario: Scenario,
    seed: int,
    log: RequestLog,
    events: Sequence[RegistryEvent],
    origin: float,
    providers: Mapping[str, SimulatedProvider],
    violations: Sequence[Violation],
    checks: int,
    dropped_events: int,
    outcomes: Mapping[str, Mapping[str, int]] | None = None,
    routing: Mapping[str, Any] | None = None,
    nodes: Sequence[tuple[Sequence[RegistryEvent], Mapping[str, SimulatedProvider]]] | None = None,
) -> Report:
    """Compute the report of a finished run.

    Args:
      scenario: what was run.
      seed: the seed it ran with.
      log: every request and how it ended.
      events: the registry's breaker, health, crash, restart and failure events, in order.
      origin: the trio time of scenario t = 0.
      providers: the simulated providers by name.
      violations: what the invariant checker found.
      checks: how many routing decisions it checked.
      dropped_events: registry events lost to a full buffer.
      outcomes: per provider, its calls by outcome as the registry counted them
        (``ProviderView.outcomes``) at the end of the traffic; none: all zero.
      routing: ``Registry.routing_stats()`` at the end of the traffic; none: all zero.
      nodes: in a fleet run, each node's events and providers, in order (request *i*
        went through node ``i % len(nodes)``): the oracle judges each request by its
        node's providers. *events* are then every node's, merged in time order, and
        *providers* the first node's.
    """
    duration = scenario.workload.duration
    counted = {name: AttemptOutcomes.of((outcomes or {}).get(name, {})) for name in providers}
    sent = len(log.arrival)
    counts = {outcome: log.count(outcome) for outcome in OUTCOMES}
    accounted = sum(counts.values()) == sent
    succeeded = counts["succeeded"]
    oracle = _oracle_successes(
        scenario, seed, log, nodes if nodes is not None else [(events, providers)], origin
    )
    availability = succeeded / sent if sent else None
    oracle_availability = oracle / sent if sent else None
    down = _restart_windows(events, origin, providers, duration)
    listed = tuple(violations[:_LISTED_VIOLATIONS])
    count = len(violations)
    if not accounted:
        count += 1
        lost = sent - sum(counts.values())
        listed = (*listed, Violation(duration, "lost", f"{lost} lost"))
    return Report(
        scenario=scenario.name,
        seed=seed,
        duration=duration,
        mode=scenario.workload.mode,
        requests=RequestTotals(
            sent=sent,
            succeeded=succeeded,
            failed=counts["failed"],
            rejected=counts["rejected"],
            shed=counts["shed"],
            accounted=accounted,
        ),
        availability=availability,
        oracle_availability=oracle_availability,
        availability_gap=(
            None
            if availability is None or oracle_availability is None
            else oracle_availability - availability
        ),
        latency=percentiles(
            [lat for lat, out in zip(log.latency, log.outcome, strict=True) if out == "succeeded"]
        ),
        providers=_per_provider(scenario, log, events, counted),
        faults=tuple(
            _fault_report(f, i, scenario, log, events, origin)
            for i, f in enumerate(scenario.faults)
        ),
        timeline=_timeline(scenario, log),
        breaker_transitions=tuple(
            BreakerChange(e.time - origin, e.name, e.old, e.new, e.reason)
            for e in events
            if isinstance(e, BreakerTransition) and e.name is not None
        ),
        restarts=tuple(
            Restart(e.time - origin, e.name, e.restarts, e.delay)
            for e in events
            if isinstance(e, ActorRestarted) and e.name is not None
        ),
        actor_failures=tuple(
            ActorFailure(e.time - origin, e.name, e.error)
            for e in events
            if isinstance(e, ActorFailed) and e.name is not None
        ),
        down_windows=_by_provider(down),
        unhealthy_windows=_by_provider(_unhealthy_windows(events, origin, duration)),
        invariants=Invariants(checks=checks, violation_count=count, violations=listed),
        events_dropped=dropped_events,
        classify=scenario.classify,
        attempts=_attempts(log, counted.values(), sent),
        routing=RoutingStats() if routing is None else RoutingStats.of(routing),
    )


def _attempts(log: RequestLog, counted: Iterable[AttemptOutcomes], sent: int) -> Attempts:
    wasted = sum(each.wasted for each in counted)
    return Attempts(
        made=sum(log.attempts), wasted=wasted, wasted_per_request=wasted / sent if sent else None
    )


def _by_provider(windows: Mapping[str, list[tuple[float, float]]]) -> tuple[ProviderWindows, ...]:
    """The providers that have windows, by name."""
    return tuple(
        ProviderWindows(name, tuple(Window(start, end) for start, end in spans))
        for name, spans in sorted(windows.items())
        if spans
    )


def _per_provider(
    scenario: Scenario,
    log: RequestLog,
    events: Sequence[RegistryEvent],
    outcomes: Mapping[str, AttemptOutcomes],
) -> tuple[ProviderStats, ...]:
    names = [spec.name for spec in scenario.providers]
    served = {name: sum(1 for s in log.served if s == name) for name in names}
    total = sum(served.values())
    return tuple(
        ProviderStats(
            name=spec.name,
            group=spec.group,
            priority=spec.priority,
            served=served[spec.name],
            first_attempts=sum(1 for f in log.first if f == spec.name),
            breaker_opens=sum(
                1
                for e in events
                if isinstance(e, BreakerTransition)
                and e.name == spec.name
                and e.new.value == "open"
            ),
            restarts=sum(
                1 for e in events if isinstance(e, ActorRestarted) and e.name == spec.name
            ),
            failed=any(isinstance(e, ActorFailed) and e.name == spec.name for e in events),
            share=served[spec.name] / total if total else 0.0,
            outcomes=outcomes.get(spec.name, AttemptOutcomes()),
        )
        for spec in scenario.providers
    )


def _eligible(scenario: Scenario, mix_index: int) -> list[str]:
    mix = scenario.workload.mix[mix_index]
    required = set(mix.required_capabilities)
    return [
        p.name
        for p in scenario.providers
        if p.service_type == mix.service_type
        and p.handler in (mix.handler, "*")
        and required <= set(p.capabilities)
    ]


def _restart_windows(
    events: Sequence[RegistryEvent],
    origin: float,
    providers: Mapping[str, SimulatedProvider],
    duration: float,
) -> dict[str, list[tuple[float, float]]]:
    """Per provider, the [start, end) windows in which its actor was down (from a crash
    until it was started again, or until the end of the run once FAILED)."""
    windows: dict[str, list[tuple[float, float]]] = {name: [] for name in providers}
    open_since: dict[str, float] = {}
    for event in events:
        name = event.name
        if name is None or name not in providers:
            continue
        t = event.time - origin
        if isinstance(event, ActorCrashed):
            open_since.setdefault(name, t)
        elif isinstance(event, ActorRestarted) and name in open_since:
            delay = providers[name].start_delay(t)
            windows[name].append((open_since.pop(name), t + delay))
        elif isinstance(event, ActorFailed) and name in open_since:
            windows[name].append((open_since.pop(name), math.inf))
    for name, since in open_since.items():
        windows[name].append((since, duration))
    return windows


def _unhealthy_windows(
    events: Sequence[RegistryEvent], origin: float, duration: float
) -> dict[str, list[tuple[float, float]]]:
    """Per provider, the [start, end) windows between a failed health check and the next
    passing one (how outages and flaps are usually detected)."""
    windows: dict[str, list[tuple[float, float]]] = {}
    since: dict[str, float] = {}
    for event in events:
        if not isinstance(event, HealthChanged) or event.name is None:
            continue
        t = event.time - origin
        if not event.healthy:
            since.setdefault(event.name, t)
        elif event.name in since:
            windows.setdefault(event.name, []).append((since.pop(event.name), t))
    for name, start in since.items():
        windows.setdefault(name, []).append((start, duration))
    return windows


def _oracle_successes(
    scenario: Scenario,
    seed: int,
    log: RequestLog,
    nodes: Sequence[tuple[Sequence[RegistryEvent], Mapping[str, SimulatedProvider]]],
    origin: float,
) -> int:
    """How many requests a router with perfect knowledge of every provider's state (and
    of which calls would fail) would have served: a request succeeds when at least one
    eligible provider is up, refuses it with no class fault (a rate limit, a revoked key,
    an overflow of a long request), answers within its timeout (judged on its median
    latency), and would not fail this very request (the same per-request draw the
    provider uses). In a fleet, each request is judged by its node's providers."""
    duration = scenario.workload.duration
    downs = [_restart_windows(events, origin, providers, duration) for events, providers in nodes]
    count = len(nodes)
    share = scenario.workload.long_share
    refusals = any(fault.refusal_rank is not None for fault in scenario.faults)
    eligible = [_eligible(scenario, i) for i in range(len(scenario.workload.mix))]
    timeouts = {
        p.name: (p.breaker or scenario.default_breaker).timeout_duration for p in scenario.providers
    }
    medians = {p.name: p.latency.median for p in scenario.providers}
    served = 0
    for request, (t, mix_index) in enumerate(zip(log.arrival, log.mix, strict=True)):
        node = request % count if count > 1 else 0
        providers = nodes[node][1]
        down = downs[node]
        for name in eligible[mix_index]:
            provider = providers[name]
            is_down, extra, rate = provider.conditions(t)
            windows = down[name]
            if is_down or (windows and any(a <= t < b for a, b in windows)):
                continue
            if medians[name] + extra > timeouts[name]:
                continue
            if rate > 0 and provider.draw(request) < rate:
                continue
            if refusals and provider.refusal(t, is_long(seed, request, share)) is not None:
                continue
            served += 1
            break
    return served


def _window(log: RequestLog, start: float, end: float) -> range:
    """The slots of the requests that arrived in ``[start, end)`` (arrivals are logged
    in time order)."""
    return range(bisect.bisect_left(log.arrival, start), bisect.bisect_left(log.arrival, end))


def _phase(log: RequestLog, start: float, end: float) -> Phase:
    rows = list(_window(log, start, end))
    ok = [log.latency[i] for i in rows if log.outcome[i] == "succeeded"]
    return Phase(
        start=start,
        end=end,
        requests=len(rows),
        availability=(len(ok) / len(rows)) if rows else None,
        latency=percentiles(ok),
        failed_over=sum(1 for i in rows if log.attempts[i] > 1),
    )


def _fault_report(
    fault: Fault,
    index: int,
    scenario: Scenario,
    log: RequestLog,
    events: Sequence[RegistryEvent],
    origin: float,
) -> FaultStats:
    duration = scenario.workload.duration
    name = fault.provider
    detect: float | None = None
    for event in events:
        t = event.time - origin
        if event.name != name or t < fault.at:
            continue
        if t >= fault.end:
            break  # not detected while it lasted
        if (
            (isinstance(event, BreakerTransition) and event.new.value == "open")
            or (isinstance(event, HealthChanged) and not event.healthy)
            or isinstance(event, ActorCrashed | ActorFailed)
        ):
            detect = t - fault.at
            break
    failover: float | None = None
    was_first_choice = any(
        log.first[i] == name for i in _window(log, max(0.0, fault.at - fault.duration), fault.at)
    )
    if detect is not None and was_first_choice:
        for i in _window(log, fault.at + detect, duration):
            if name in _eligible(scenario, log.mix[i]) and log.first[i] not in (None, name):
                failover = log.arrival[i] - fault.at
                break
    recover: float | None = None
    for i in _window(log, fault.end, duration):
        if log.served[i] == name:
            recover = log.arrival[i] + log.latency[i] - fault.end
            break
    span = fault.duration
    served = Counter(
        log.served[i]
        for i in _window(log, fault.at, min(duration, fault.end))
        if log.served[i] is not None
    )
    busiest = sorted(served.items(), key=lambda item: (-item[1], str(item[0])))
    return FaultStats(
        index=index,
        kind=fault.kind,
        provider=name,
        at=fault.at,
        duration=fault.duration,
        time_to_detect=detect,
        time_to_failover=failover,
        time_to_recover=recover,
        phases=FaultPhases(
            before=_phase(log, max(0.0, fault.at - span), fault.at),
            during=_phase(log, fault.at, min(duration, fault.end)),
            after=_phase(log, fault.end, min(duration, fault.end + span)),
        ),
        in_use_before=was_first_choice,
        served_during=tuple((str(name), count) for name, count in busiest),
        nodes=fault.nodes,
    )


def _timeline(scenario: Scenario, log: RequestLog) -> Timeline:
    duration = scenario.workload.duration
    width = duration / TIMELINE_BUCKETS
    names = tuple(p.name for p in scenario.providers)
    column = {name: i for i, name in enumerate(names)}
    served = [[0] * len(names) for _ in range(TIMELINE_BUCKETS)]
    unserved = [dict.fromkeys(("failed", "rejected", "shed"), 0) for _ in range(TIMELINE_BUCKETS)]
    for t, outcome, name in zip(log.arrival, log.outcome, log.served, strict=True):
        index = min(TIMELINE_BUCKETS - 1, int(t // width))
        if outcome == "succeeded" and name is not None:
            served[index][column[name]] += 1
        elif outcome in unserved[index]:
            unserved[index][outcome] += 1
    buckets = tuple(
        Bucket(
            start=i * width,
            served=tuple(served[i]),
            failed=unserved[i]["failed"],
            rejected=unserved[i]["rejected"],
            shed=unserved[i]["shed"],
        )
        for i in range(TIMELINE_BUCKETS)
    )
    return Timeline(bucket_seconds=width, providers=names, buckets=buckets)
