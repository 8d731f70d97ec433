"""Resolve observation: the public handle (:class:`ResolveObserver`) through which a
metrics collector (or a user) counts and times resolves, and the switch that puts the
counting resolve in front of the one resolve walk only while someone observes.

A registry nobody observes resolves through the supervisor's walk directly and pays
nothing for observation; attaching the first observer puts a counting resolve (the walk,
then one increment) in its place, and detaching the last one takes it out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from types import TracebackType

import attrs

from ._actors.record import ProviderRecord
from ._actors.supervisor import Resolve
from ._errors import RegistryError
from ._stats import RESOLVE_BUCKETS, SAMPLE_SIZE, ResolveStats
from .selection import Member

__all__ = ["Observation", "ResolveObserver", "ResolveTiming"]


@attrs.frozen
class ResolveTiming:
    """The sampled resolve durations: a histogram over :attr:`bounds` (seconds).

    Attributes:
      bounds: the upper bounds of the buckets; a last bucket holds everything above.
      counts: resolves per bucket (not cumulative), one more than there are bounds.
      total: the sum of every timed duration, in seconds.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float

    @property
    def count(self) -> int:
        """How many resolves were timed."""
        return sum(self.counts)


class Observation:
    """The registry's observation switch: which resolve the facade calls (the walk, the
    counting walk, or the counting walk timed), the counts every observer shares, and
    how many observers are attached.

    Args:
      walk: the resolve walk (the supervisor's), called directly while nobody observes.
      counting: the same walk, counting hits and misses into *stats*.
      stats: the counts, kept across observers coming and going.
      install: puts a resolve in the facade's hands.
    """

    def __init__(
        self,
        walk: Resolve,
        counting: Resolve,
        stats: ResolveStats,
        install: Callable[[Resolve], None],
    ) -> None:
        self._walk = walk
        self._counting = counting
        self.stats = stats
        self._install = install
        self._closed = False

    def attach(self) -> None:
        """One more observer: count from now on, and time the next resolves."""
        self.stats.observers += 1
        if not self._closed:
            self._install(self._counting)
        self.arm(SAMPLE_SIZE)

    def detach(self) -> None:
        """One observer fewer; the plain walk returns when none is left."""
        if self.stats.observers == 0:
            return
        self.stats.observers -= 1
        if self.stats.observers == 0:
            self._install(self._walk)

    def arm(self, count: int) -> None:
        """Time the next *count* resolves (while anyone observes).

        Timing is armed in batches rather than tested for on every resolve: a test on the
        observed resolve path would cost every resolve more than the counting does.
        """
        if self.stats.observers and not self._closed:
            self.stats.armed = count
            self._install(self._timed)

    def close(self) -> None:
        """The registry closed: resolve nothing more through observers."""
        self._closed = True
        self._install(self._walk)

    def _timed(
        self,
        handler: str,
        service_type: str,
        required: frozenset[str],
        fallback_to_global: bool,
        exclude: Collection[Member],
        /,
    ) -> ProviderRecord | None:
        stats = self.stats
        stats.armed -= 1
        if stats.armed <= 0:
            self._install(self._counting)
        start = time.perf_counter()
        try:
            return self._counting(handler, service_type, required, fallback_to_global, exclude)
        finally:
            stats.observe(time.perf_counter() - start)


class ResolveObserver:
    """A handle that counts a registry's resolves while it is attached, from
    :meth:`Registry.observe`.

    While at least one observer is attached, every resolve is counted: a hit on the
    provider it chose (:attr:`ProviderView.selections`, and :attr:`hits` per service
    type), a miss per service type (:attr:`misses`); and the next resolves after
    :meth:`arm_timing` are timed (:attr:`timing`). Counts are shared by every observer of
    the registry and start when the first one attaches. While none is attached a
    resolve pays nothing for any of this.

    Use it as a context manager, or call :meth:`detach` when done (idempotent).
    """

    def __init__(self, observation: Observation, providers: Callable[[], Collection[Member]]):
        self._observation = observation
        self._providers = providers
        self._attached = True
        observation.attach()

    @property
    def attached(self) -> bool:
        """Whether this observer still counts."""
        return self._attached

    def detach(self) -> None:
        """Stop counting for this observer (idempotent). Counts keep their values."""
        if self._attached:
            self._attached = False
            self._observation.detach()

    def __enter__(self) -> ResolveObserver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.detach()

    def arm_timing(self, count: int = SAMPLE_SIZE) -> None:
        """Time the next *count* resolves into :attr:`timing`.

        Raises:
          RegistryError: this observer is detached.
        """
        if not self._attached:
            raise RegistryError("this resolve observer is detached")
        self._observation.arm(count)

    @property
    def hits(self) -> Mapping[str, int]:
        """Resolves that chose a provider, per service type (mock providers aside),
        including providers since unregistered."""
        totals = dict(self._observation.stats.retired_hits)
        for member in self._providers():
            assert isinstance(member, ProviderRecord)
            if not member.mock:
                totals[member.service_type] = (
                    totals.get(member.service_type, 0) + member.counters.selections
                )
        return totals

    @property
    def misses(self) -> Mapping[str, int]:
        """Resolves that found nothing, per service type."""
        return dict(self._observation.stats.misses)

    @property
    def timing(self) -> ResolveTiming:
        """The timed resolves so far."""
        stats = self._observation.stats
        return ResolveTiming(RESOLVE_BUCKETS, tuple(stats.bucket_counts), stats.timed_sum)
