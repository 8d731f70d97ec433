"""Retry budgets: a cap on failover attempts across a registry, so that when everything
is slow or failing, retries cannot multiply the load (a retry storm).

Pure: time is an argument; imports neither trio nor the actors.
"""

from __future__ import annotations

import math

import attrs

from ._validators import attrs_check, seconds

__all__ = ["BUDGET_BUCKETS", "RetryBudget", "RetryBudgetState"]

#: Buckets a budget's window is kept in: its memory is fixed, whatever the traffic.
BUDGET_BUCKETS = 10


#: A finite number >= 0 (a ratio, a rate).
_share = attrs_check(seconds, inclusive=True)


@attrs.frozen
class RetryBudget:
    """How many failover attempts a registry allows (``open_registry(retry_budget=...)``).

    Over the last *window* seconds, retries (attempts of a ``call`` after its first) may
    number at most ``ratio`` times the first attempts plus ``min_per_second`` times the
    window. A retry beyond that is refused: the ``call`` ends with ``NoServiceAvailable``
    whose last attempt says so. As Envoy and Finagle do, with their defaults.

    Attributes:
      ratio: retries allowed per first attempt (0.2: one in five calls may retry).
      min_per_second: retries allowed per second however few calls there are, so that a
        quiet registry can still fail over.
      window: seconds the counts look back over (kept in ten buckets: a count leaves
        between 0.9 and 1.0 window later).

    Raises:
      TypeError, ValueError: a value of the wrong type, negative, NaN or infinite (a
        window must also be > 0); the message names the field.
    """

    ratio: float = attrs.field(default=0.2, validator=_share)
    min_per_second: float = attrs.field(default=3.0, validator=_share)
    window: float = attrs.field(default=10.0, validator=attrs_check(seconds))


class RetryBudgetState:
    """A :class:`RetryBudget` at work: first attempts and retries counted in fixed
    buckets of ``window / 10`` seconds."""

    __slots__ = ("_counts", "_last", "budget", "refused")

    def __init__(self, budget: RetryBudget) -> None:
        self.budget = budget
        #: First attempts and retries of each bucket, interleaved.
        self._counts = [0] * (2 * BUDGET_BUCKETS)
        #: The number of the newest bucket.
        self._last: int | None = None
        #: Retries refused so far.
        self.refused = 0

    def _bucket(self, now: float) -> int:
        bucket = math.floor(now / (self.budget.window / BUDGET_BUCKETS))
        last = self._last
        counts = self._counts
        if last is None or bucket - last >= BUDGET_BUCKETS:
            counts[:] = [0] * len(counts)
        elif bucket > last:
            for stale in range(last + 1, bucket + 1):
                slot = 2 * (stale % BUDGET_BUCKETS)
                counts[slot] = counts[slot + 1] = 0
        if last is None or bucket > last:
            self._last = bucket
            return bucket
        return max(bucket, last - BUDGET_BUCKETS + 1)  # time went back: the oldest kept

    def first_attempt(self, now: float) -> None:
        """Count a call's first attempt at *now*."""
        self._counts[2 * (self._bucket(now) % BUDGET_BUCKETS)] += 1

    def allowed(self, now: float) -> float:
        """Retries the window allows in all at *now* (some may be spent)."""
        self._bucket(now)
        budget = self.budget
        firsts = sum(self._counts[0::2])
        return budget.ratio * firsts + budget.min_per_second * budget.window

    def spent(self, now: float) -> int:
        """Retries counted in the window at *now*."""
        self._bucket(now)
        return sum(self._counts[1::2])

    def try_retry(self, now: float) -> bool:
        """Spend one retry at *now* if the budget has one; count a refusal if not."""
        bucket = self._bucket(now)
        if self.spent(now) + 1 > self.allowed(now):
            self.refused += 1
            return False
        self._counts[2 * (bucket % BUDGET_BUCKETS) + 1] += 1
        return True
