"""Cumulative counters the registry keeps for observers (the control plane's metrics).

Everything here is plain integers and floats updated synchronously while a metrics
collector observes the registry, so keeping them costs an observed resolve an attribute
increment; they are read only when someone asks (a metrics scrape), never pushed anywhere.
"""

from __future__ import annotations

import bisect

__all__ = ["RESOLVE_BUCKETS", "SAMPLE_SIZE", "ResolveStats"]

#: While observed, the resolves timed after each scrape (and when a collector attaches).
SAMPLE_SIZE = 64

#: Upper bounds (seconds) of the resolve-duration histogram's buckets. A resolve on a
#: warm plan takes well under a microsecond; a long walk over thousands of unavailable
#: providers takes tens of microseconds.
RESOLVE_BUCKETS: tuple[float, ...] = (
    1e-6,
    2.5e-6,
    5e-6,
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    1e-3,
)


class ResolveStats:
    """Resolve outcomes per service type, and a sampled histogram of resolve durations.

    Kept only while a metrics collector observes the registry (``Registry._observe``):
    a registry nobody observes pays nothing for them. Hits are counted on the chosen
    provider itself (``Member.selected``) while it is registered, and folded into
    :attr:`retired_hits` when it is unregistered, so the per-type totals never go
    backwards. Misses are counted here.

    Timing: each scrape (and each collector attaching) arms the next
    :data:`SAMPLE_SIZE` resolves to be timed with ``time.perf_counter``. Timing every
    resolve would cost more than the resolve itself, and so would testing on every
    resolve whether to time it.
    """

    __slots__ = (
        "armed",
        "bucket_counts",
        "misses",
        "observers",
        "retired_hits",
        "timed_sum",
    )

    def __init__(self) -> None:
        self.misses: dict[str, int] = {}
        self.retired_hits: dict[str, int] = {}
        #: How many metrics collectors are attached.
        self.observers = 0
        #: Timed resolves still to come.
        self.armed = 0
        #: Per bucket of :data:`RESOLVE_BUCKETS`, plus one for +Inf (not cumulative).
        self.bucket_counts = [0] * (len(RESOLVE_BUCKETS) + 1)
        self.timed_sum = 0.0

    @property
    def timed_count(self) -> int:
        """How many resolves were timed."""
        return sum(self.bucket_counts)

    def count_miss(self, service_type: str) -> None:
        """Count a resolve of *service_type* that found nothing."""
        self.misses[service_type] = self.misses.get(service_type, 0) + 1

    def retire(self, service_type: str, hits: int) -> None:
        """Keep the hits of a provider being unregistered in its type's total."""
        if hits:
            self.retired_hits[service_type] = self.retired_hits.get(service_type, 0) + hits

    def observe(self, seconds: float) -> None:
        """Record one timed resolve."""
        self.bucket_counts[bisect.bisect_left(RESOLVE_BUCKETS, seconds)] += 1
        self.timed_sum += seconds
