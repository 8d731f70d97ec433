"""Prometheus metrics of a live registry, read at scrape time through its public surface.

One declarative table (:data:`METRICS`: name, type, help, labels, and how to read the
samples from a :class:`Scrape`) defines every metric; the collector, the list of names
and the table in ``docs/control-plane.md`` are all built from it. Nothing here runs on
the resolve path: the collector holds a :class:`ResolveObserver` and reads provider
views (``Registry.snapshot``) and the fleet link's status (``Registry.fleet_status``)
only when scraped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import attrs
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .._stats import SAMPLE_SIZE
from .._types import ActorStatus, CircuitState
from .._views import ProviderView
from ..fleet import LAG_BUCKETS, FleetStatus
from ..registry import Registry

__all__ = ["METRICS", "METRIC_NAMES", "MetricSpec", "RegistryCollector", "Scrape", "metric_table"]

#: The labels of every per-provider series.
PROVIDER_LABELS = ("provider", "handler", "service_type")

#: One sample: its label values and its value.
Sample = tuple[tuple[str, ...], float]
#: One histogram series: its label values, its cumulative bucket counts by upper bound
#: (``"+Inf"`` last), and the sum of what it observed.
Buckets = tuple[tuple[str, ...], list[tuple[str, float]], float]


@attrs.frozen
class Scrape:
    """What one scrape reads: every provider as it is now, and the resolve counts.

    Attributes:
      views: every registered provider (``Registry.snapshot()``).
      hits: resolves that chose a provider, per service type.
      misses: resolves that found nothing, per service type.
      timing: the sampled resolve durations.
      routing: ``Registry.routing_stats()``.
      fleet: ``Registry.fleet_status()``: the fleet link, ``None`` without a fleet.
    """

    views: tuple[ProviderView, ...]
    hits: dict[str, int]
    misses: dict[str, int]
    timing: tuple[tuple[float, ...], tuple[int, ...], float]
    routing: dict[str, Any] = attrs.field(
        factory=lambda: {"spilled": {}, "retries_refused": 0, "hedges_started": 0, "hedges_won": 0}
    )
    fleet: FleetStatus | None = None


@attrs.frozen
class MetricSpec:
    """One metric: its name (without ``_total``), type, help, labels, and its samples.

    Attributes:
      name: the family's name.
      kind: ``"gauge"``, ``"counter"`` or ``"histogram"``.
      help: what it measures (also its line in the docs' table).
      labels: its label names, in order.
      samples: reads a gauge's or a counter's samples from a scrape.
      buckets: reads a histogram's series from a scrape.
      fleet: exposed only by a registry with a fleet attached
        (``open_registry(fleet=...)``); absent otherwise.
    """

    name: str
    kind: Literal["gauge", "counter", "histogram"]
    help: str
    labels: tuple[str, ...]
    samples: Callable[[Scrape], Iterable[Sample]] | None = None
    buckets: Callable[[Scrape], Iterable[Buckets]] | None = None
    fleet: bool = False


def _ids(view: ProviderView) -> tuple[str, str, str]:
    return (view.name, view.handler, view.service_type)


def _per_provider(value: Callable[[ProviderView], float]) -> Callable[[Scrape], Iterator[Sample]]:
    def samples(scrape: Scrape) -> Iterator[Sample]:
        for view in scrape.views:
            yield _ids(view), value(view)

    return samples


def _one_hot(
    options: Iterable[str], current: Callable[[ProviderView], str]
) -> Callable[[Scrape], Iterator[Sample]]:
    choices = tuple(options)

    def samples(scrape: Scrape) -> Iterator[Sample]:
        for view in scrape.views:
            now = current(view)
            for option in choices:
                yield (*_ids(view), option), float(now == option)

    return samples


def _types_of(scrape: Scrape) -> list[str]:
    return sorted({view.service_type for view in scrape.views})


def _providers(scrape: Scrape) -> Iterator[Sample]:
    per_status = Counter((v.service_type, v.actor_status.value) for v in scrape.views)
    for service_type in _types_of(scrape):
        for status in ActorStatus:
            yield (service_type, status.value), per_status[(service_type, status.value)]


def _available_per_type(scrape: Scrape) -> Iterator[Sample]:
    available = Counter(v.service_type for v in scrape.views if v.available and not v.mock)
    for service_type in _types_of(scrape):
        yield (service_type,), available[service_type]


def _transitions(scrape: Scrape) -> Iterator[Sample]:
    for view in scrape.views:
        for (old, new), count in sorted(view.transitions.items()):
            yield (*_ids(view), old, new), count


def _calls(scrape: Scrape) -> Iterator[Sample]:
    for view in scrape.views:
        stats = view.breaker
        yield (*_ids(view), "success"), stats["total_successes"]
        yield (*_ids(view), "failure"), stats["total_failures"]
        yield (*_ids(view), "rejected"), stats["total_rejections"]


def _outcomes(scrape: Scrape) -> Iterator[Sample]:
    for view in scrape.views:
        for outcome, count in view.outcomes.items():
            yield (*_ids(view), outcome), count


def _health_checks(scrape: Scrape) -> Iterator[Sample]:
    for view in scrape.views:
        if view.has_health_check:
            yield (*_ids(view), "pass"), view.health_checks_passed
            yield (*_ids(view), "fail"), view.health_checks_failed


def _spilled(scrape: Scrape) -> Iterator[Sample]:
    for service_type, count in scrape.routing["spilled"].items():
        yield (service_type,), count


def _refused(scrape: Scrape) -> Iterator[Sample]:
    yield (), scrape.routing["retries_refused"]


def _hedges(scrape: Scrape) -> Iterator[Sample]:
    yield ("started",), scrape.routing["hedges_started"]
    yield ("won",), scrape.routing["hedges_won"]


def _resolves(scrape: Scrape) -> Iterator[Sample]:
    for service_type in sorted(set(scrape.hits) | set(scrape.misses)):
        yield (service_type, "hit"), scrape.hits.get(service_type, 0)
        yield (service_type, "miss"), scrape.misses.get(service_type, 0)


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _resolve_timing(scrape: Scrape) -> Iterator[Buckets]:
    bounds, counts, total = scrape.timing
    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip([*(_bound(b) for b in bounds), "+Inf"], counts, strict=True):
        cumulative += count
        buckets.append((bound, cumulative))
    yield (), buckets, total


def _per_node(value: Callable[[FleetStatus], float]) -> Callable[[Scrape], Iterator[Sample]]:
    def samples(scrape: Scrape) -> Iterator[Sample]:
        if scrape.fleet is not None:
            yield (scrape.fleet.node,), value(scrape.fleet)

    return samples


def _fleet_lag(scrape: Scrape) -> Iterator[Buckets]:
    status = scrape.fleet
    if status is not None:
        # FleetStatus counts are cumulative already, one per LAG_BUCKETS bound (+Inf last).
        buckets = [
            (_bound(b), float(c)) for b, c in zip(LAG_BUCKETS, status.lag_buckets, strict=True)
        ]
        yield (status.node,), buckets, status.lag_sum


#: Every metric the collector exposes, in the order it yields them.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "ciris_providers",
        "gauge",
        "Providers per service type and actor status (starting, running, restarting, failed,"
        " stopped).",
        ("service_type", "status"),
        _providers,
    ),
    MetricSpec(
        "ciris_providers_available",
        "gauge",
        "Providers (not mocks) a resolve could choose now, per service type.",
        ("service_type",),
        _available_per_type,
    ),
    MetricSpec(
        "ciris_provider_available",
        "gauge",
        "1 if a resolve could choose the provider now (routable, and its breaker admits).",
        PROVIDER_LABELS,
        _per_provider(lambda v: float(v.available)),
    ),
    MetricSpec(
        "ciris_provider_health",
        "gauge",
        "1 for the provider's current health (healthy, unhealthy, unknown).",
        (*PROVIDER_LABELS, "health"),
        _one_hot(("healthy", "unhealthy", "unknown"), lambda v: v.health_word),
    ),
    MetricSpec(
        "ciris_provider_restarts",
        "counter",
        "Restarts granted to the provider's actor after crashes.",
        PROVIDER_LABELS,
        _per_provider(lambda v: v.restarts),
    ),
    MetricSpec(
        "ciris_provider_selections",
        "counter",
        "Resolves that chose the provider (counted while observed).",
        PROVIDER_LABELS,
        _per_provider(lambda v: v.selections),
    ),
    MetricSpec(
        "ciris_breaker_state",
        "gauge",
        "1 for the provider's current breaker state (closed, open, half_open).",
        (*PROVIDER_LABELS, "state"),
        _one_hot((s.value for s in CircuitState), lambda v: str(v.breaker["state"])),
    ),
    MetricSpec(
        "ciris_breaker_failure_count",
        "gauge",
        "Consecutive failures the breaker counts now.",
        PROVIDER_LABELS,
        _per_provider(lambda v: v.breaker["failure_count"]),
    ),
    MetricSpec(
        "ciris_breaker_success_count",
        "gauge",
        "Consecutive half-open successes the breaker counts now.",
        PROVIDER_LABELS,
        _per_provider(lambda v: v.breaker["success_count"]),
    ),
    MetricSpec(
        "ciris_breaker_transitions",
        "counter",
        "Breaker state transitions.",
        (*PROVIDER_LABELS, "from_state", "to_state"),
        _transitions,
    ),
    MetricSpec(
        "ciris_breaker_calls",
        "counter",
        "Outcomes the breaker recorded (success, failure) and admissions it refused (rejected).",
        (*PROVIDER_LABELS, "outcome"),
        _calls,
    ),
    MetricSpec(
        "ciris_provider_outcomes",
        "counter",
        "Calls to the provider by outcome: success, failure, ignored, rate_limited, disabled,"
        " rerouted (by the error's class), timeout, cancelled.",
        (*PROVIDER_LABELS, "outcome"),
        _outcomes,
    ),
    MetricSpec(
        "ciris_provider_disabled",
        "gauge",
        "1 while the provider is disabled (an error classified disable; until reset).",
        PROVIDER_LABELS,
        _per_provider(lambda v: float(v.disabled is not None)),
    ),
    MetricSpec(
        "ciris_health_checks",
        "counter",
        "Health-check results (pass, fail); only providers with is_healthy.",
        (*PROVIDER_LABELS, "result"),
        _health_checks,
    ),
    MetricSpec(
        "ciris_resolves",
        "counter",
        "Resolves that chose a provider (hit) or found none (miss), counted while observed.",
        ("service_type", "outcome"),
        _resolves,
    ),
    MetricSpec(
        "ciris_resolves_spilled",
        "counter",
        "Resolves proportional spillover sent past a plan's first group.",
        ("service_type",),
        _spilled,
    ),
    MetricSpec(
        "ciris_retries_refused",
        "counter",
        "Failover attempts of call the retry budget refused.",
        (),
        _refused,
    ),
    MetricSpec(
        "ciris_hedges",
        "counter",
        "Second attempts of hedged calls: started, and won (answered first).",
        ("result",),
        _hedges,
    ),
    MetricSpec(
        "ciris_resolve_duration_seconds",
        "histogram",
        f"Time to choose a provider, sampled: the {SAMPLE_SIZE} resolves after each scrape"
        " are timed.",
        (),
        buckets=_resolve_timing,
    ),
    MetricSpec(
        "ciris_fleet_degraded",
        "gauge",
        "1 while this node cannot reach its fleet store (it decides alone), else 0.",
        ("node",),
        _per_node(lambda s: float(not s.reachable)),
        fleet=True,
    ),
    MetricSpec(
        "ciris_fleet_propagation_lag_seconds",
        "histogram",
        "Seconds from a verdict made on another node to its arrival here, on the store's"
        " clock (pushed verdicts; a periodic read counts none).",
        ("node",),
        buckets=_fleet_lag,
        fleet=True,
    ),
    MetricSpec(
        "ciris_fleet_verdicts_sent",
        "counter",
        "Reports this node made to the fleet store.",
        ("node",),
        _per_node(lambda s: s.verdicts_sent),
        fleet=True,
    ),
    MetricSpec(
        "ciris_fleet_verdicts_received",
        "counter",
        "Verdicts from other nodes applied to this node's breakers.",
        ("node",),
        _per_node(lambda s: s.verdicts_received),
        fleet=True,
    ),
    MetricSpec(
        "ciris_fleet_outages",
        "counter",
        "Times this node lost its fleet store.",
        ("node",),
        _per_node(lambda s: s.outages),
        fleet=True,
    ),
    MetricSpec(
        "ciris_fleet_malformed_verdicts",
        "counter",
        "Verdicts from the fleet store that could not be applied (a NaN deadline, an"
        " unknown kind) and were skipped.",
        ("node",),
        _per_node(lambda s: s.malformed),
        fleet=True,
    ),
    MetricSpec(
        "ciris_fleet_pending_reports",
        "gauge",
        "Reports waiting to be sent to the fleet store (they pile up while it is lost).",
        ("node",),
        _per_node(lambda s: s.pending),
        fleet=True,
    ),
)

#: Every metric family's name and type (the docs list them); the ``ciris_fleet_*`` ones
#: (:attr:`MetricSpec.fleet`) only while a fleet is attached.
METRIC_NAMES: dict[str, str] = {spec.name: spec.kind for spec in METRICS}


def metric_table() -> str:
    """The Markdown table of :data:`METRICS` that ``docs/control-plane.md`` shows.

    The three per-provider labels are written ``provider`` for short; a metric only a
    registry with a fleet exposes says so.
    """
    lines = ["| Metric | Type | Labels | Meaning |", "|---|---|---|---|"]
    for spec in METRICS:
        name = spec.name + ("_total" if spec.kind == "counter" else "")
        labels = list(spec.labels)
        if tuple(labels[:3]) == PROVIDER_LABELS:
            labels[:3] = ["provider"]
        shown = ", ".join(label if label == "provider" else f"`{label}`" for label in labels)
        meaning = spec.help + (" Only with a fleet." if spec.fleet else "")
        lines.append(f"| `{name}` | {spec.kind} | {shown} | {meaning} |")
    return "\n".join(lines)


class RegistryCollector(Collector):
    """A prometheus-client collector of one registry's state and counters.

    Register it in your own ``CollectorRegistry`` (never the global one, which a process
    shares with everything else). While it is open it holds a :class:`ResolveObserver`,
    so the registry counts resolve outcomes (``ciris_resolves_total``,
    ``ciris_provider_selections_total``), and each scrape arms the next 64 resolves to
    be timed (``ciris_resolve_duration_seconds``); :meth:`close` detaches it.

    Args:
      registry: the registry to describe.
    """

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._observer = registry.observe()

    def close(self) -> None:
        """Stop counting and timing resolves for this collector (idempotent); scrapes
        still work, and the counters keep their values."""
        self._observer.detach()

    def describe(self) -> list[Metric]:
        """Nothing: the families depend on what is registered at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Read the registry now and yield every metric family."""
        registry = self._registry
        if registry.closed:
            return
        observer = self._observer
        if observer.attached:
            observer.arm_timing(SAMPLE_SIZE)
        timing = observer.timing
        scrape = Scrape(
            views=registry.snapshot(),
            hits=dict(observer.hits),
            misses=dict(observer.misses),
            timing=(timing.bounds, timing.counts, timing.total),
            routing=registry.routing_stats(),
            fleet=registry.fleet_status(),
        )
        for spec in METRICS:
            if spec.fleet and scrape.fleet is None:
                continue
            yield _family(spec, scrape)


def _family(spec: MetricSpec, scrape: Scrape) -> Metric:
    if spec.kind == "histogram":
        family = HistogramMetricFamily(spec.name, spec.help, labels=list(spec.labels))
        assert spec.buckets is not None
        for labels, buckets, total in spec.buckets(scrape):
            family.add_metric(list(labels), buckets, sum_value=total)
        return family
    kind = GaugeMetricFamily if spec.kind == "gauge" else CounterMetricFamily
    metric = kind(spec.name, spec.help, labels=list(spec.labels))
    assert spec.samples is not None
    for labels, value in spec.samples(scrape):
        metric.add_metric(list(labels), value)
    return metric
