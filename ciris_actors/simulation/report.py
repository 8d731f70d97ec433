"""What a simulation run reports, as frozen classes: totals, per provider, per fault, the
timeline, the registry's events and the invariants. JSON is made only here, at the edge
(:meth:`Report.as_dict`, :meth:`Report.to_json`): sorted keys, floats rounded to
microseconds, so the same run gives the same text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import attrs

from .._types import CircuitState
from .faults import FaultKind
from .invariants import Violation

__all__ = [
    "WASTED",
    "ActorFailure",
    "AttemptOutcomes",
    "Attempts",
    "BreakerChange",
    "Bucket",
    "FaultPhases",
    "FaultStats",
    "FleetFaultStats",
    "FleetNodeStats",
    "FleetProviderStats",
    "FleetStats",
    "Invariants",
    "Percentiles",
    "Phase",
    "ProviderStats",
    "ProviderWindows",
    "Report",
    "RequestTotals",
    "Restart",
    "RoutingStats",
    "Timeline",
    "Window",
]


@attrs.frozen
class Percentiles:
    """Latency percentiles (nearest rank) over a set of requests, in seconds.

    Attributes:
      p50: the median, ``None`` when there were no requests (as for the others).
      p95: the 95th percentile.
      p99: the 99th percentile.
      count: how many latencies they are taken over.
    """

    p50: float | None
    p95: float | None
    p99: float | None
    count: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"p50": self.p50, "p95": self.p95, "p99": self.p99, "count": self.count}


@attrs.frozen
class RequestTotals:
    """Every request of the run by how it ended.

    Attributes:
      sent: every arrival, shed ones included.
      succeeded: answered by a provider.
      failed: every attempt failed (``call``), or the one provider did (``lease``).
      rejected: nothing was available, so no attempt was made.
      shed: refused at arrival by the concurrency limit.
      accounted: whether the four outcomes add up to ``sent``.
    """

    sent: int
    succeeded: int
    failed: int
    rejected: int
    shed: int
    accounted: bool

    @property
    def unserved(self) -> int:
        """Requests that failed, were rejected or were shed."""
        return self.failed + self.rejected + self.shed

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "sent": self.sent,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "rejected": self.rejected,
            "shed": self.shed,
            "accounted": self.accounted,
        }


#: The outcomes of an attempt on a provider that could not serve it: the provider's
#: failure, its rate limit, its disabling error, an error that sent the request to other
#: providers (a reroute), and the call's deadline.
WASTED = ("failure", "rate_limited", "disabled", "rerouted", "timeout")


@attrs.frozen
class AttemptOutcomes:
    """Calls to one provider by outcome, as the registry counted them
    (``ProviderView.outcomes``): what each error's class made it, or the call's deadline.

    Attributes:
      success: served (or an error classified as a success).
      failure: failed (an error classified as a failure, or with no class).
      ignored: the request's fault (classified ``ignore``).
      rate_limited: refused for its rate (classified ``rate_limited``).
      disabled: refused for its credentials or configuration (classified ``disable``).
      rerouted: the request needed more capabilities (classified ``reroute``).
      timeout: the call's deadline passed.
      cancelled: cancelled from outside (never, in a simulation).
    """

    success: int = 0
    failure: int = 0
    ignored: int = 0
    rate_limited: int = 0
    disabled: int = 0
    rerouted: int = 0
    timeout: int = 0
    cancelled: int = 0

    @classmethod
    def of(cls, counts: Mapping[str, int]) -> AttemptOutcomes:
        """The counts of *counts* (``ProviderView.outcomes``; a missing key is 0).

        Raises:
          TypeError: *counts* has a key that is no outcome.
        """
        return cls(**counts)

    @property
    def wasted(self) -> int:
        """Calls to a provider that could not serve them: those of the outcomes in
        :data:`WASTED`."""
        return self.failure + self.rate_limited + self.disabled + self.rerouted + self.timeout

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data: every outcome, zeros included."""
        return attrs.asdict(self)


@attrs.frozen
class Attempts:
    """The calls the run's requests made to providers.

    Attributes:
      made: every attempt that reached a provider.
      wasted: attempts on providers that could not serve: those that ended in a failure,
        a rate limit, a disable, a reroute or the call's deadline (:data:`WASTED`),
        over every provider. Not wasted: those served, and those whose error was the
        request's own (``ignored``).
      wasted_per_request: ``wasted`` over every request sent (``None``: none was sent).
    """

    made: int
    wasted: int
    wasted_per_request: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "made": self.made,
            "wasted": self.wasted,
            "wasted_per_request": self.wasted_per_request,
        }


@attrs.frozen
class RoutingStats:
    """What the registry's opt-in routing features did (``Registry.routing_stats()`` at
    the end of the traffic).

    Attributes:
      spilled: resolves proportional spillover sent past a plan's first group, per
        service type, as ``(service type, count)`` pairs sorted by service type.
      retries_refused: failover attempts the retry budget refused.
      hedges_started: second attempts of hedged calls.
      hedges_won: hedges that answered first.
    """

    spilled: tuple[tuple[str, int], ...] = ()
    retries_refused: int = 0
    hedges_started: int = 0
    hedges_won: int = 0

    @classmethod
    def of(cls, stats: Mapping[str, Any]) -> RoutingStats:
        """The figures of *stats* (``Registry.routing_stats()``)."""
        return cls(
            spilled=tuple(sorted(stats["spilled"].items())),
            retries_refused=stats["retries_refused"],
            hedges_started=stats["hedges_started"],
            hedges_won=stats["hedges_won"],
        )

    @property
    def any(self) -> bool:
        """Whether any figure is not zero."""
        return bool(
            any(n for _, n in self.spilled)
            or self.retries_refused
            or self.hedges_started
            or self.hedges_won
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "spilled": dict(self.spilled),
            "retries_refused": self.retries_refused,
            "hedges_started": self.hedges_started,
            "hedges_won": self.hedges_won,
        }


@attrs.frozen
class ProviderStats:
    """What one provider did during the run.

    Attributes:
      name: the provider.
      group: its priority group.
      priority: its priority's name (``CRITICAL``, ...).
      served: requests it answered.
      first_attempts: requests whose first attempt went to it.
      breaker_opens: transitions of its breaker to OPEN.
      restarts: restarts of its actor.
      failed: whether its actor became FAILED.
      share: ``served`` over every served request (0 when none was served).
      outcomes: the calls to it by outcome, as the registry counted them.
    """

    name: str
    group: int
    priority: str
    served: int
    first_attempts: int
    breaker_opens: int
    restarts: int
    failed: bool
    share: float
    outcomes: AttemptOutcomes = AttemptOutcomes()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data (the name is the key it is filed under)."""
        return {
            "group": self.group,
            "priority": self.priority,
            "served": self.served,
            "first_attempts": self.first_attempts,
            "breaker_opens": self.breaker_opens,
            "restarts": self.restarts,
            "failed": self.failed,
            "share": self.share,
            "outcomes": self.outcomes.as_dict(),
        }


@attrs.frozen
class Phase:
    """The traffic of a window around a fault.

    Attributes:
      start: where the window starts, in scenario seconds.
      end: where it ends.
      requests: arrivals in it.
      availability: the share of them that succeeded (``None`` without arrivals).
      latency: the percentiles of those that succeeded.
      failed_over: arrivals whose call tried more than one provider.
    """

    start: float
    end: float
    requests: int
    availability: float | None
    latency: Percentiles
    failed_over: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "start": self.start,
            "end": self.end,
            "requests": self.requests,
            "availability": self.availability,
            "latency": self.latency.as_dict(),
            "failed_over": self.failed_over,
        }


@attrs.frozen
class FaultPhases:
    """The windows before, during and after a fault, each as long as the fault."""

    before: Phase
    during: Phase
    after: Phase

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "before": self.before.as_dict(),
            "during": self.during.as_dict(),
            "after": self.after.as_dict(),
        }


@attrs.frozen
class FaultStats:
    """How the registry coped with one fault of the scenario.

    Attributes:
      index: its position in the scenario's faults, from 0.
      kind: what it did.
      provider: the provider it struck.
      at: when it started.
      duration: how long it lasted.
      time_to_detect: from ``at`` to the first sign of trouble on the provider while it
        lasted (breaker open, failed health check, crash), if any.
      time_to_failover: from ``at`` to the first request the provider could have served
        that went elsewhere first, once detected, if any.
      time_to_recover: from its end to the first answer by the provider to a request
        that arrived after the end, if any.
      phases: the traffic before, during and after it.
      in_use_before: whether the provider took first attempts before the fault (a
        standby that did not is brought back only when traffic needs it, so its
        ``time_to_recover`` measures that need, not the provider).
      served_during: the requests each provider answered while the fault lasted,
        busiest first (ties by name).
      nodes: in a fleet scenario, the nodes it struck (empty: every node).
    """

    index: int
    kind: FaultKind
    provider: str
    at: float
    duration: float
    time_to_detect: float | None
    time_to_failover: float | None
    time_to_recover: float | None
    phases: FaultPhases
    in_use_before: bool
    served_during: tuple[tuple[str, int], ...]
    nodes: tuple[str, ...] = ()

    @property
    def end(self) -> float:
        """When the fault stopped."""
        return self.at + self.duration

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "index": self.index,
            "kind": self.kind.value,
            "provider": self.provider,
            "at": self.at,
            "duration": self.duration,
            "time_to_detect": self.time_to_detect,
            "time_to_failover": self.time_to_failover,
            "time_to_recover": self.time_to_recover,
            "phases": self.phases.as_dict(),
            "in_use_before": self.in_use_before,
            "served_during": dict(self.served_during),
            # Only a fault limited to some nodes of a fleet has the key.
            **({"nodes": list(self.nodes)} if self.nodes else {}),
        }


@attrs.frozen
class Bucket:
    """The requests that arrived in one slice of the run.

    Attributes:
      start: where the slice starts, in scenario seconds.
      served: requests each provider answered, in the order of :attr:`Timeline.providers`.
      failed: requests that failed.
      rejected: requests rejected.
      shed: requests shed.
    """

    start: float
    served: tuple[int, ...]
    failed: int
    rejected: int
    shed: int

    @property
    def unserved(self) -> int:
        """Requests that failed, were rejected or were shed."""
        return self.failed + self.rejected + self.shed

    @property
    def total(self) -> int:
        """Every request of the slice."""
        return sum(self.served) + self.failed + self.rejected + self.shed


@attrs.frozen
class Timeline:
    """The run cut into equal slices, by arrival time.

    Attributes:
      bucket_seconds: the length of a slice.
      providers: the providers, in the scenario's order (that of :attr:`Bucket.served`).
      buckets: the slices, in time order.
    """

    bucket_seconds: float
    providers: tuple[str, ...]
    buckets: tuple[Bucket, ...]

    def served(self, provider: str) -> list[int]:
        """Requests *provider* answered, slice by slice.

        Raises:
          ValueError: *provider* is not one of the run's.
        """
        index = self.providers.index(provider)
        return [bucket.served[index] for bucket in self.buckets]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "bucket_seconds": self.bucket_seconds,
            "buckets": [
                {
                    "start": bucket.start,
                    "served": dict(zip(self.providers, bucket.served, strict=True)),
                    "failed": bucket.failed,
                    "rejected": bucket.rejected,
                    "shed": bucket.shed,
                }
                for bucket in self.buckets
            ],
        }


@attrs.frozen
class BreakerChange:
    """A provider's breaker changed state (a ``BreakerTransition`` event).

    Attributes:
      time: when, in scenario seconds.
      provider: whose breaker.
      old: the state it left.
      new: the state it entered.
      reason: why (semantics.md, section 2.2).
    """

    time: float
    provider: str
    old: CircuitState
    new: CircuitState
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "time": self.time,
            "provider": self.provider,
            "old": self.old.value,
            "new": self.new.value,
            "reason": self.reason,
        }


@attrs.frozen
class Restart:
    """A provider's actor was restarted (an ``ActorRestarted`` event).

    Attributes:
      time: when, after the back-off, in scenario seconds.
      provider: whose actor.
      restarts: its restarts so far.
      delay: the back-off it waited.
    """

    time: float
    provider: str
    restarts: int
    delay: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "time": self.time,
            "provider": self.provider,
            "restarts": self.restarts,
            "delay": self.delay,
        }


@attrs.frozen
class ActorFailure:
    """A provider's actor became FAILED (an ``ActorFailed`` event).

    Attributes:
      time: when, in scenario seconds.
      provider: whose actor.
      error: the last crash's error.
    """

    time: float
    provider: str
    error: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"time": self.time, "provider": self.provider, "error": self.error}


@attrs.frozen
class Window:
    """A span of scenario time, ``[start, end)``; ``end`` may be infinite."""

    start: float
    end: float


@attrs.frozen
class ProviderWindows:
    """One provider's windows of some condition (down, unhealthy), in time order."""

    provider: str
    windows: tuple[Window, ...]


@attrs.frozen
class Invariants:
    """The invariant checks of the run.

    Attributes:
      checks: routing decisions checked.
      violation_count: rules broken (``lost`` included when requests went missing).
      violations: the first hundred, then ``lost`` if it was broken.
    """

    checks: int
    violation_count: int
    violations: tuple[Violation, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "checks": self.checks,
            "violation_count": self.violation_count,
            "violations": [_violation(v) for v in self.violations],
        }


@attrs.frozen
class FleetFaultStats:
    """A fault of the fleet store, as scheduled.

    Attributes:
      kind: ``partition`` or ``store_down``.
      at: when it started, in scenario seconds.
      duration: how long it lasted.
      nodes: the nodes a partition cut off.
    """

    kind: str
    at: float
    duration: float
    nodes: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "kind": self.kind,
            "at": self.at,
            "duration": self.duration,
            "nodes": list(self.nodes),
        }


@attrs.frozen
class FleetNodeStats:
    """One node of a fleet: its share of the traffic, with the store and alone.

    Attributes:
      node: its id (``node-1``, ...).
      requests: the requests sent through it.
      succeeded: those served, with the store.
      attempts: the attempts they made, with the store.
      dead_attempts: attempts it sent to a provider while a fault made every call to
        that provider fail, with the store.
      breaker_opens: its breakers' transitions to OPEN (those a fleet verdict made
        included), with the store.
      verdicts_sent: reports it made to the store.
      verdicts_received: other nodes' verdicts it applied.
      degraded: when it lost the store (``FleetDegraded``), in scenario seconds.
      restored: when it reached the store again (``FleetRestored``).
      alone_succeeded: its requests served when it ran alone.
      alone_dead_attempts: its attempts to a dead provider when it ran alone.
      alone_breaker_opens: its breakers' opens when it ran alone.
      served: the requests each provider served through it, with the store, as
        ``(provider, count)`` pairs in the scenario's order.
    """

    node: str
    requests: int
    succeeded: int
    attempts: int
    dead_attempts: int
    breaker_opens: int
    verdicts_sent: int
    verdicts_received: int
    degraded: tuple[float, ...]
    restored: tuple[float, ...]
    alone_succeeded: int
    alone_dead_attempts: int
    alone_breaker_opens: int
    served: tuple[tuple[str, int], ...] = ()

    def served_by(self, provider: str) -> int:
        """The requests *provider* served through this node, with the store."""
        return dict(self.served).get(provider, 0)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data (the node is the key it is filed under)."""
        return {
            "requests": self.requests,
            "succeeded": self.succeeded,
            "served": dict(self.served),
            "attempts": self.attempts,
            "dead_attempts": self.dead_attempts,
            "breaker_opens": self.breaker_opens,
            "verdicts_sent": self.verdicts_sent,
            "verdicts_received": self.verdicts_received,
            "degraded": list(self.degraded),
            "restored": list(self.restored),
            "alone": {
                "succeeded": self.alone_succeeded,
                "dead_attempts": self.alone_dead_attempts,
                "breaker_opens": self.alone_breaker_opens,
            },
        }


@attrs.frozen
class FleetProviderStats:
    """The attempts the fleet sent to one provider while it was dead.

    Attributes:
      name: the provider.
      dead_attempts: over every node, with the store.
      alone_dead_attempts: over every node, each alone.
    """

    name: str
    dead_attempts: int
    alone_dead_attempts: int


@attrs.frozen
class FleetStats:
    """A fleet scenario's run with its nodes sharing the store, against the same run with
    every node alone (the same requests to the same nodes, the same faults).

    An attempt is *dead* when it starts while a fault makes every call to its provider
    fail, on that node: an outage, the failing half of a flap, an ``errors`` fault at
    rate 1, a rate limit, a revoked key, or added latency beyond the call's deadline.

    Attributes:
      nodes: how many nodes.
      quorum: the store's quorum for ordinary opens.
      quorum_window: the quorum's window, in seconds.
      latency: seconds every store operation took.
      faults: the store's faults.
      dead_attempts: attempts to a dead provider over every node, with the store.
      alone_dead_attempts: the same, every node alone.
      attempts: every attempt, with the store.
      alone_attempts: every attempt, every node alone.
      availability: requests served over sent, with the store.
      alone_availability: the same, every node alone.
      alone_ok: whether every invariant held, and every request was accounted for, in
        the run alone too.
      per_node: each node, in order.
      per_provider: each provider, in the scenario's order.
    """

    nodes: int
    quorum: int
    quorum_window: float
    latency: float
    faults: tuple[FleetFaultStats, ...]
    dead_attempts: int
    alone_dead_attempts: int
    attempts: int
    alone_attempts: int
    availability: float | None
    alone_availability: float | None
    alone_ok: bool
    per_node: tuple[FleetNodeStats, ...]
    per_provider: tuple[FleetProviderStats, ...]

    @property
    def ratio(self) -> float | None:
        """``dead_attempts / alone_dead_attempts`` (``None`` when alone made none)."""
        if not self.alone_dead_attempts:
            return None
        return self.dead_attempts / self.alone_dead_attempts

    def node(self, node: str) -> FleetNodeStats:
        """The statistics of *node*.

        Raises:
          KeyError: the fleet has no such node.
        """
        for stats in self.per_node:
            if stats.node == node:
                return stats
        raise KeyError(node)

    def provider(self, name: str) -> FleetProviderStats:
        """The dead attempts sent to provider *name*.

        Raises:
          KeyError: no provider of the run has that name.
        """
        for stats in self.per_provider:
            if stats.name == name:
                return stats
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "nodes": self.nodes,
            "quorum": self.quorum,
            "quorum_window": self.quorum_window,
            "latency": self.latency,
            "faults": [fault.as_dict() for fault in self.faults],
            "dead_attempts": self.dead_attempts,
            "attempts": self.attempts,
            "availability": self.availability,
            "alone": {
                "dead_attempts": self.alone_dead_attempts,
                "attempts": self.alone_attempts,
                "availability": self.alone_availability,
                "ok": self.alone_ok,
            },
            "ratio": self.ratio,
            "per_node": {n.node: n.as_dict() for n in self.per_node},
            "per_provider": {
                p.name: {
                    "dead_attempts": p.dead_attempts,
                    "alone_dead_attempts": p.alone_dead_attempts,
                }
                for p in self.per_provider
            },
        }


@attrs.frozen
class Report:
    """The result of one simulation run; :meth:`as_dict` / :meth:`to_json` for JSON.

    docs/simulation.md, section 4, says what each field means.

    Attributes:
      scenario: the scenario's name.
      seed: the seed the run used.
      duration: the workload's duration, in seconds.
      mode: ``call`` or ``lease``.
      requests: every request by outcome.
      availability: succeeded over sent (``None`` when nothing was sent).
      oracle_availability: what a router with perfect knowledge would have achieved.
      availability_gap: ``oracle_availability - availability``.
      latency: percentiles of the succeeded requests.
      providers: per provider, in the scenario's order.
      faults: per fault, in the scenario's order.
      timeline: the traffic over time.
      breaker_transitions: every breaker state change, in time order.
      restarts: every restart.
      actor_failures: every provider that became FAILED.
      down_windows: per provider ever down (crashed until started again), by name.
      unhealthy_windows: per provider whose health checks ever failed, by name.
      invariants: the routing checks and what they found.
      events_dropped: registry events lost to a full buffer.
      classify: how the registry classified errors: ``http`` or ``none`` (every error a
        failure).
      attempts: the calls made to providers, and those wasted on providers that could
        not serve.
      routing: what spillover, the retry budget and hedging did (all zero when off).
      fleet: a fleet scenario's nodes, with the store and alone (``None``: no fleet).
    """

    scenario: str
    seed: int
    duration: float
    mode: str
    requests: RequestTotals
    availability: float | None
    oracle_availability: float | None
    availability_gap: float | None
    latency: Percentiles
    providers: tuple[ProviderStats, ...]
    faults: tuple[FaultStats, ...]
    timeline: Timeline
    breaker_transitions: tuple[BreakerChange, ...]
    restarts: tuple[Restart, ...]
    actor_failures: tuple[ActorFailure, ...]
    down_windows: tuple[ProviderWindows, ...]
    unhealthy_windows: tuple[ProviderWindows, ...]
    invariants: Invariants
    events_dropped: int
    classify: str
    attempts: Attempts
    routing: RoutingStats = RoutingStats()
    fleet: FleetStats | None = None

    @property
    def violations(self) -> list[dict[str, Any]]:
        """Invariant violations found during the run, as JSON-ready data (empty when all
        held); ``invariants.violations`` has them as :class:`Violation`."""
        return [_violation(v) for v in self.invariants.violations]

    @property
    def ok(self) -> bool:
        """Whether every invariant held and every request was accounted for."""
        return not self.invariants.violation_count and self.requests.accounted

    def provider(self, name: str) -> ProviderStats:
        """The statistics of provider *name*.

        Raises:
          KeyError: no provider of the run has that name.
        """
        for stats in self.providers:
            if stats.name == name:
                return stats
        raise KeyError(name)

    def down_windows_of(self, provider: str) -> tuple[Window, ...]:
        """The windows in which *provider*'s actor was down (none if never)."""
        return _windows_of(self.down_windows, provider)

    def unhealthy_windows_of(self, provider: str) -> tuple[Window, ...]:
        """The windows in which *provider*'s health checks failed (none if never)."""
        return _windows_of(self.unhealthy_windows, provider)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (floats as computed: :meth:`to_json` rounds them,
        and writes an infinite window end as ``null``)."""
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "duration": self.duration,
            "mode": self.mode,
            "requests": self.requests.as_dict(),
            "availability": self.availability,
            "oracle_availability": self.oracle_availability,
            "availability_gap": self.availability_gap,
            "latency": self.latency.as_dict(),
            "providers": {p.name: p.as_dict() for p in self.providers},
            "faults": [f.as_dict() for f in self.faults],
            "timeline": self.timeline.as_dict(),
            "breaker_transitions": [t.as_dict() for t in self.breaker_transitions],
            "restarts": [r.as_dict() for r in self.restarts],
            "actor_failures": [f.as_dict() for f in self.actor_failures],
            "down_windows": _windows(self.down_windows),
            "unhealthy_windows": _windows(self.unhealthy_windows),
            "invariants": self.invariants.as_dict(),
            "events_dropped": self.events_dropped,
            "classify": self.classify,
            "attempts": self.attempts.as_dict(),
            "routing": self.routing.as_dict(),
            # Only a fleet scenario has the key, so other reports keep their shape.
            **({} if self.fleet is None else {"fleet": self.fleet.as_dict()}),
        }

    def to_json(self) -> str:
        """The report as deterministic JSON text."""
        return dumps(self.as_dict())


def dumps(data: Mapping[str, Any]) -> str:
    """JSON-ready *data* as deterministic JSON text: keys sorted, floats rounded to six
    decimals, infinities and NaN as ``null``."""
    return json.dumps(_rounded(data), indent=2, sort_keys=True) + "\n"


def _violation(violation: Violation) -> dict[str, Any]:
    return {"time": violation.time, "rule": violation.rule, "detail": violation.detail}


def _windows_of(entries: tuple[ProviderWindows, ...], provider: str) -> tuple[Window, ...]:
    for entry in entries:
        if entry.provider == provider:
            return entry.windows
    return ()


def _windows(entries: tuple[ProviderWindows, ...]) -> dict[str, list[list[float]]]:
    return {e.provider: [[w.start, w.end] for w in e.windows] for e in entries}


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value
