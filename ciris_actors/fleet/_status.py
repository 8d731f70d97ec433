"""What a registry shows of its fleet link (``Registry.fleet_status()``)."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["LAG_BUCKETS", "FleetStatus"]

#: Upper bounds, in seconds, of the propagation-lag histogram's buckets (the last is
#: ``+Inf``).
LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, float("inf"))


@attrs.frozen
class FleetStatus:
    """A registry's fleet link, as last seen.

    Attributes:
      node: this node's id.
      reachable: whether the store answered the last operation.
      degraded_since: registry time the store was lost (``None`` while reachable).
      last_sync: registry time of the last full read of the store (``None``: never).
      lag: seconds the last pushed verdict took to arrive (``None``: none yet).
      quorum: distinct nodes an ordinary open needs to apply fleet-wide.
      quorum_window: seconds a node's open counts toward the quorum.
      verdicts_sent: reports this node made to the store.
      verdicts_received: verdicts from other nodes applied here.
      pending: reports waiting to be sent (while the store is unreachable).
      outages: times the store was lost.
      malformed: verdicts from the store that could not be applied (a NaN deadline, an
        unknown kind) and were skipped.
      lag_buckets: cumulative counts of pushed verdicts by lag, one per
        :data:`LAG_BUCKETS` bound.
      lag_sum: the sum of those lags, in seconds.
    """

    node: str
    reachable: bool
    degraded_since: float | None
    last_sync: float | None
    lag: float | None
    quorum: int
    quorum_window: float
    verdicts_sent: int
    verdicts_received: int
    pending: int
    outages: int
    malformed: int
    lag_buckets: tuple[int, ...]
    lag_sum: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape the control plane returns (the histogram left out)."""
        return {
            "node": self.node,
            "reachable": self.reachable,
            "degraded": not self.reachable,
            "degraded_since": self.degraded_since,
            "last_sync": self.last_sync,
            "lag": self.lag,
            "quorum": self.quorum,
            "quorum_window": self.quorum_window,
            "verdicts_sent": self.verdicts_sent,
            "verdicts_received": self.verdicts_received,
            "pending": self.pending,
            "outages": self.outages,
            "malformed": self.malformed,
        }
