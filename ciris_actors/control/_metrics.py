"""Prometheus metrics of a live registry, read at scrape time.

Nothing here runs on the resolve path: the registry keeps plain counters (on each
provider, and in its resolve statistics) and this collector turns them into metric
families only when scraped. While a collector is attached the registry counts resolve
outcomes, and times the resolves right after each scrape; a registry nobody observes pays
nothing for metrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import trio
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .._actors.supervisor import ProviderRecord
from .._stats import RESOLVE_BUCKETS, SAMPLE_SIZE
from .._types import CircuitState
from ..registry import Registry, _health_word
from ..selection import ActorStatus

__all__ = ["METRIC_NAMES", "RegistryCollector"]

_PROVIDER = ["provider", "handler", "service_type"]

#: Every metric family the collector exposes, with its type (the docs list them).
METRIC_NAMES: dict[str, str] = {
    "ciris_providers": "gauge",
    "ciris_providers_available": "gauge",
    "ciris_provider_available": "gauge",
    "ciris_provider_health": "gauge",
    "ciris_provider_restarts": "counter",
    "ciris_provider_selections": "counter",
    "ciris_breaker_state": "gauge",
    "ciris_breaker_failure_count": "gauge",
    "ciris_breaker_success_count": "gauge",
    "ciris_breaker_transitions": "counter",
    "ciris_breaker_calls": "counter",
    "ciris_health_checks": "counter",
    "ciris_resolves": "counter",
    "ciris_resolve_duration_seconds": "histogram",
}


class RegistryCollector(Collector):
    """A prometheus-client collector of one registry's state and counters.

    Register it in your own ``CollectorRegistry`` (never the global one, which a process
    shares with everything else). While it is open the registry counts resolve outcomes
    (``ciris_resolves_total``, ``ciris_provider_selections_total``), and each scrape
    arms the next 64 resolves to be timed (``ciris_resolve_duration_seconds``);
    :meth:`close` stops both.

    Args:
      registry: the registry to describe.
    """

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._stats = registry._sup.resolve_stats
        registry._observe()
        self._open = True

    def close(self) -> None:
        """Stop counting and timing resolves for this collector (idempotent); scrapes
        still work, and the counters keep their values."""
        if self._open:
            self._open = False
            self._registry._unobserve()

    def describe(self) -> list[Metric]:
        """Nothing: the families depend on what is registered at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Read the registry now and yield every metric family."""
        registry = self._registry
        if registry.closed:
            return
        registry._arm_timing()
        sup = registry._sup
        now = trio.current_time()
        records = sorted(sup.providers.values(), key=lambda r: r.name)

        providers = GaugeMetricFamily(
            "ciris_providers",
            "Registered providers by service type and actor status.",
            labels=["service_type", "status"],
        )
        available_per_type = GaugeMetricFamily(
            "ciris_providers_available",
            "Providers (not mocks) a resolve could choose now, by service type.",
            labels=["service_type"],
        )
        available = GaugeMetricFamily(
            "ciris_provider_available",
            "1 if a resolve could choose this provider now (routable, breaker admits).",
            labels=_PROVIDER,
        )
        health = GaugeMetricFamily(
            "ciris_provider_health",
            "The provider's health (healthy, unhealthy or unknown): 1 for the current one.",
            labels=[*_PROVIDER, "health"],
        )
        restarts = CounterMetricFamily(
            "ciris_provider_restarts",
            "Restarts granted to the provider's actor after crashes.",
            labels=_PROVIDER,
        )
        selections = CounterMetricFamily(
            "ciris_provider_selections",
            "Resolves that chose this provider.",
            labels=_PROVIDER,
        )
        state = GaugeMetricFamily(
            "ciris_breaker_state",
            "The provider's circuit-breaker state: 1 for the current one.",
            labels=[*_PROVIDER, "state"],
        )
        failures = GaugeMetricFamily(
            "ciris_breaker_failure_count",
            "Consecutive failures the breaker counts now (failure_count).",
            labels=_PROVIDER,
        )
        successes = GaugeMetricFamily(
            "ciris_breaker_success_count",
            "Consecutive half-open successes the breaker counts now (success_count).",
            labels=_PROVIDER,
        )
        transitions = CounterMetricFamily(
            "ciris_breaker_transitions",
            "Circuit-breaker state transitions.",
            labels=[*_PROVIDER, "from_state", "to_state"],
        )
        calls = CounterMetricFamily(
            "ciris_breaker_calls",
            "Call outcomes the breaker recorded (success, failure) or refused (rejected).",
            labels=[*_PROVIDER, "outcome"],
        )
        checks = CounterMetricFamily(
            "ciris_health_checks",
            "Health-check results recorded for the provider.",
            labels=[*_PROVIDER, "result"],
        )

        per_status: Counter[tuple[str, str]] = Counter()
        per_type_available: Counter[str] = Counter()
        hits: Counter[str] = Counter(sup.resolve_stats.retired_hits)
        types: set[str] = set()
        for record in records:
            labels = [record.name, record.handler, record.service_type]
            breaker = record.breaker
            is_available = record.routable and breaker.is_available(now)
            types.add(record.service_type)
            per_status[(record.service_type, record.status.value)] += 1
            if not record.mock:
                per_type_available[record.service_type] += is_available
                hits[record.service_type] += record.selected
            available.add_metric(labels, float(is_available))
            word = _health_word(record)
            for option in ("healthy", "unhealthy", "unknown"):
                health.add_metric([*labels, option], float(word == option))
            restarts.add_metric(labels, record.restart.restarts)
            selections.add_metric(labels, record.selected)
            for circuit in CircuitState:
                state.add_metric([*labels, circuit.value], float(breaker.state is circuit))
            failures.add_metric(labels, breaker.failure_count)
            successes.add_metric(labels, breaker.success_count)
            for (old, new), count in sorted(record.transitions.items()):
                transitions.add_metric([*labels, old, new], count)
            calls.add_metric([*labels, "success"], breaker.total_successes)
            calls.add_metric([*labels, "failure"], breaker.total_failures)
            calls.add_metric([*labels, "rejected"], breaker.total_rejections)
            _add_checks(checks, labels, record)

        for service_type in sorted(types):
            for status in ActorStatus:
                providers.add_metric(
                    [service_type, status.value], per_status[(service_type, status.value)]
                )
            available_per_type.add_metric([service_type], per_type_available[service_type])

        resolves = CounterMetricFamily(
            "ciris_resolves",
            "Resolves by service type and outcome (hit: a provider was chosen).",
            labels=["service_type", "outcome"],
        )
        misses = sup.resolve_stats.misses
        for service_type in sorted(set(hits) | set(misses)):
            resolves.add_metric([service_type, "hit"], hits[service_type])
            resolves.add_metric([service_type, "miss"], misses.get(service_type, 0))

        yield from (providers, available_per_type, available, health, restarts, selections)
        yield from (state, failures, successes, transitions, calls, checks, resolves)
        yield self._durations()

    def _durations(self) -> Metric:
        stats = self._stats
        family = HistogramMetricFamily(
            "ciris_resolve_duration_seconds",
            f"Time to choose a provider, sampled: the {SAMPLE_SIZE} resolves after each"
            " scrape are timed.",
        )
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip(
            [*(repr(b) for b in RESOLVE_BUCKETS), "+Inf"], stats.bucket_counts, strict=True
        ):
            cumulative += count
            buckets.append((bound, cumulative))
        family.add_metric([], buckets, sum_value=stats.timed_sum)
        return family


def _add_checks(family: CounterMetricFamily, labels: list[str], record: ProviderRecord) -> None:
    if record.has_health_check:
        family.add_metric([*labels, "pass"], record.health_passed)
        family.add_metric([*labels, "fail"], record.health_failed)
