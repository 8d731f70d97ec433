"""What a registry's fleet actor and a fleet store say to each other.

A store keeps *verdicts* about providers, never per-call counters: an open-until
deadline (with its kind, reason and the node that made it), a disabled flag, a
half-open probe claim, and the votes of an ordinary open waiting for a quorum. Every
update is atomic on the store and made on the store's clock; deadlines are only ever
extended; every key expires by itself. A store pushes each change to every node and
answers a full read, so a lost push costs at most one read interval of staleness.

:class:`FleetLink` is the protocol: :class:`~ciris_actors.fleet.MemoryFleet` nodes
and :class:`~ciris_actors.fleet.RedisFleet` implement it, and the two are checked
against one test suite.
"""

from __future__ import annotations

import enum
import math
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

import attrs

from .._validators import attrs_check, count, seconds

__all__ = [
    "Claim",
    "FleetLink",
    "FleetSettings",
    "FleetUnavailable",
    "Report",
    "Snapshot",
    "Verdict",
    "VerdictKind",
]


class FleetUnavailable(Exception):
    """The fleet store could not be reached, or did not answer in time.

    The fleet actor catches it (and any other error from a store): a registry's
    callers never see it. It is public for people writing a store of their own.
    """


class VerdictKind(enum.Enum):
    """What a report or a verdict says about a provider."""

    #: An ordinary open (consecutive failures, failure rate): a vote, fleet-wide once
    #: ``quorum`` distinct nodes opened within ``quorum_window``.
    FAILURE = "failure"
    #: A 429 and its Retry-After: fleet-wide at once.
    RATE_LIMITED = "rate_limited"
    #: Out of service (a revoked key): fleet-wide at once, until a reset.
    DISABLED = "disabled"
    #: A manual force-open: fleet-wide at once.
    FORCED = "forced"
    #: The fleet's one half-open probe failed: re-opened everywhere at once, with the
    #: prober's back-off.
    PROBE_FAILED = "probe_failed"
    #: The fleet's probe succeeded: closed everywhere (only if no newer verdict came).
    CLOSED = "closed"
    #: A manual reset: closed everywhere, a disable included.
    RESET = "reset"

    @property
    def opens(self) -> bool:
        """Whether a verdict of this kind holds the provider open."""
        return self not in _CLOSING


_CLOSING = frozenset({VerdictKind.CLOSED, VerdictKind.RESET})
#: Kinds that apply fleet-wide at once, without waiting for a quorum.
IMMEDIATE = frozenset(
    {VerdictKind.RATE_LIMITED, VerdictKind.DISABLED, VerdictKind.FORCED, VerdictKind.PROBE_FAILED}
)


def _kind(value: object) -> VerdictKind:
    if not isinstance(value, VerdictKind):
        raise TypeError(f"kind: expected a VerdictKind, got {type(value).__name__}")
    return value


def _provider(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name}: expected a non-empty string, got {value!r}")


@attrs.frozen
class Report:
    """What a node tells the store it decided about a provider.

    Attributes:
      provider: the provider's registered name (fleets match providers by name).
      kind: what happened.
      duration: for an opening kind, seconds from the store's now the provider should stay
        open (``math.inf`` for :attr:`VerdictKind.DISABLED`); 0 for a closing kind.
      reason: why, for people (shown in events and the control plane).
      epoch: for :attr:`VerdictKind.CLOSED` and :attr:`VerdictKind.PROBE_FAILED`, the
        epoch of the verdict the probe was for: a close about another verdict is ignored,
        and a failed probe of one counts as an ordinary open. For
        :attr:`VerdictKind.RESET`, the newest epoch its node had seen for the provider: a
        reset does not undo another node's verdict its node had not seen. 0 otherwise.
    """

    provider: str = attrs.field(validator=_provider)
    kind: VerdictKind = attrs.field(converter=_kind)
    duration: float = attrs.field(default=0.0)
    reason: str = ""
    epoch: int = 0

    def __attrs_post_init__(self) -> None:
        if self.kind is VerdictKind.DISABLED:
            if self.duration != math.inf:
                raise ValueError("duration: a disable has no end (use math.inf)")
        elif self.kind.opens:
            seconds(self.duration, "duration")
        elif self.duration != 0.0:
            raise ValueError(f"duration: a {self.kind.value} report has none (got {self.duration})")


@attrs.frozen
class Verdict:
    """The store's current word on a provider, as made by one report.

    Attributes:
      provider: the provider's name.
      epoch: increases with every change of this provider's verdict, on every store,
        also across the store's restarts (it is taken from the store's clock), so a node
        applies a verdict only if it is newer than the last it saw.
      kind: the kind of the report that made it; a closing kind means "no verdict".
      until: the store-clock time the provider stays open until (``math.inf``:
        disabled; 0.0 for a closing kind).
      reason: why.
      node: the node whose report made it.
      at: the store-clock time it was made (for the propagation lag).
    """

    provider: str
    epoch: int
    kind: VerdictKind
    until: float
    reason: str
    node: str
    at: float

    @property
    def opens(self) -> bool:
        """Whether the verdict holds the provider open."""
        return self.kind.opens


@attrs.frozen
class Snapshot:
    """A full read of the store.

    Attributes:
      now: the store's clock when it was read.
      verdicts: the latest verdict about each provider whose key has not expired:
        those that hold a provider open (past their deadline too, until the probe's
        result), and closes (for ``VERDICT_LINGER`` seconds, so a node that missed one
        applies it).
    """

    now: float
    verdicts: tuple[Verdict, ...]


@attrs.frozen
class Claim:
    """The answer to a half-open probe claim.

    Attributes:
      won: whether this node holds the claim (and probes for the whole fleet).
      holder: the node holding it (``None`` when nobody does: the verdict changed or
        expired meanwhile, and a push or a read brings the news).
      remaining: seconds the holder's claim has left (0.0 when nobody holds it).
    """

    won: bool
    holder: str | None
    remaining: float


@attrs.frozen
class FleetSettings:
    """How a node's fleet actor talks to its store.

    Attributes:
      quorum: distinct nodes whose ordinary opens within *quorum_window* make the open
        fleet-wide (1: any node's open).
      quorum_window: seconds a node's open counts toward the quorum.
      timeout: seconds each store operation may take before the store counts as
        unreachable (tight: a resolve never waits on it, but verdicts wait behind it).
      sync_interval: seconds between full reads, the backstop for a lost push; also how
        soon a silent store is found unreachable.
      retry_backoff: first wait before retrying an unreachable store; doubled after each
        failed retry up to *max_backoff*.
      max_backoff: the longest wait between retries.
    """

    quorum: int = attrs.field(default=1, validator=attrs_check(count))
    quorum_window: float = attrs.field(default=60.0, validator=attrs_check(seconds))
    timeout: float = attrs.field(default=0.25, validator=attrs_check(seconds))
    sync_interval: float = attrs.field(default=0.5, validator=attrs_check(seconds))
    retry_backoff: float = attrs.field(default=0.1, validator=attrs_check(seconds))
    max_backoff: float = attrs.field(default=2.0, validator=attrs_check(seconds))


@runtime_checkable
class FleetLink(Protocol):
    """One node's link to a fleet store: what ``open_registry(fleet=...)`` takes.

    Every method may raise :class:`FleetUnavailable` (or any other error: the fleet
    actor treats them alike) and must be safe to cancel at every await; the fleet actor
    runs each under :attr:`FleetSettings.timeout`.
    """

    @property
    def node_id(self) -> str:
        """This node's id, unique in the fleet."""

    @property
    def settings(self) -> FleetSettings:
        """Quorum, timeouts and intervals."""

    def store_time(self) -> float:
        """This node's best estimate of the store's clock now (no I/O)."""

    async def report(self, report: Report) -> Verdict | None:
        """Apply *report* atomically on the store and push the change to every node.

        Returns:
          The verdict in force for the provider afterwards (unchanged if the report did
          not extend it), or ``None`` when none holds it open (a vote below quorum, or a
          close).
        """

    async def claim_probe(self, provider: str, epoch: int, ttl: float) -> Claim:
        """Claim the fleet's one half-open probe of *provider* for *ttl* seconds, if its
        verdict is still *epoch* and its deadline has passed."""

    async def read(self) -> Snapshot:
        """Every verdict whose key has not expired, closes included, with the store's
        clock."""

    def subscribe(self) -> AbstractAsyncContextManager[AsyncIterator[Verdict]]:
        """Pushed verdict changes (open and closing kinds), from when the block is
        entered; the iterator raises when the link breaks."""

    async def aclose(self) -> None:
        """Release connections (the registry calls it when it closes)."""
