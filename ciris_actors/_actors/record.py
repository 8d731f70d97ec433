"""What the actor shell holds about providers: a registration (:class:`ProviderRecord`,
what routing reads plus its breaker actor's scope, mailbox, permits and counters) and the
life of a provider instance (:class:`Lifecycle`), which every registration of that same
instance shares.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from .._types import ActorStatus
from ..outcomes import Classifier
from ..restart import RestartTracker
from ..selection import Member
from .messages import BreakerMessage, Mailbox

__all__ = ["OUTCOMES", "Lifecycle", "Permit", "ProviderCounters", "ProviderRecord"]

#: What a call to a provider can come to, as counted per provider (the index of each in
#: ``ProviderCounters.outcomes``) and named in traces: an error class's outcome, a call's
#: own deadline (``timeout``) or a cancellation from outside (``cancelled``).
OUTCOMES = (
    "success",
    "failure",
    "ignored",
    "rate_limited",
    "disabled",
    "rerouted",
    "timeout",
    "cancelled",
)


@attrs.define(slots=True, eq=False)
class Permit:
    """A half-open probe permit handed out without a lease to return it (by
    ``get_service``, or with a :class:`~ciris_actors.Ticket`), which the breaker actor
    expires as a failure if it is not returned by *deadline*."""

    deadline: float
    #: The breaker generation it was taken in.
    generation: int
    #: Taken by ``Registry.admit`` (its ticket returns it), not ``get_service`` (returned
    #: by the oldest-first ``report_*``).
    owned: bool = False
    #: Set when the breaker actor expired it; a settle that comes later records nothing.
    expired: bool = False


@attrs.define(slots=True, eq=False)
class ProviderCounters:
    """Every cumulative count kept about one provider, in one place. Read through
    :meth:`Registry.snapshot` (the breaker's own totals are in its stats)."""

    #: Resolves that chose this provider, counted while a resolve observer is attached.
    selections: int = 0
    #: Breaker transitions so far, by (old state, new state) value.
    transitions: dict[tuple[str, str], int] = attrs.field(factory=dict)
    #: Health-check results recorded so far.
    health_passed: int = 0
    health_failed: int = 0
    #: Calls by outcome, indexed as :data:`OUTCOMES` (a list: the cheapest to bump).
    outcomes: list[int] = attrs.field(factory=lambda: [0] * len(OUTCOMES))


@attrs.define(slots=True, eq=False, kw_only=True)
class ProviderRecord(Member):
    """One registration of a provider: what routing reads (:class:`Member`, whose
    ``status`` and ``healthy`` mirror its :class:`Lifecycle`'s) plus what the supervisor
    and its breaker actor own."""

    handler: str
    service_type: str
    metadata: dict[str, Any]
    mock: bool
    #: The life of its instance, shared with every other registration of it.
    lifecycle: Lifecycle
    #: Cancelling it stops the registration's breaker actor (unregister, registry exit).
    #: Shielded, so a cancellation of the registry's block reaches it only through
    #: ``stop_all``, one at a time in reverse registration order.
    cancel_scope: trio.CancelScope = attrs.field(factory=lambda: trio.CancelScope(shield=True))
    mailbox: Mailbox = attrs.field(factory=Mailbox)
    #: Probe permits handed out without a lease, oldest first. A list, not a deque: it is
    #: almost always empty, and small.
    permits: list[Permit] = attrs.field(factory=list)
    counters: ProviderCounters = attrs.field(factory=ProviderCounters)
    #: The provider's own error classifier, asked before the registry's.
    classify: Classifier | None = None

    @property
    def routing_scope(self) -> str:
        """The scope of its plan: the handler, or ``"*"`` for a global provider."""
        return self.handler

    def tell(self, message: BreakerMessage) -> None:
        """Post *message* to the breaker actor without waiting (see ``messages``)."""
        self.mailbox.post(message)


@attrs.define(slots=True, eq=False, kw_only=True)
class Lifecycle:
    """The life of one provider instance: started once, health-checked once and closed
    once, however many registrations point at it (each keeps its own breaker).

    The provider actor (for an instance with something to start, run or close) writes
    it; the breaker actor of its first registration (the *lead*) runs its health checks.
    The supervisor copies ``status`` and ``healthy`` onto every registration, which is
    what routing reads.
    """

    instance: Any
    #: Whether it has something to start, run or close (and so a provider actor).
    supervised: bool
    has_health_check: bool
    restart: RestartTracker
    status: ActorStatus
    #: Its registrations, in registration order; the first runs the health checks.
    records: list[ProviderRecord] = attrs.field(factory=list)
    #: Result of the last health check; ``None`` before the first one.
    healthy: bool | None = None
    health_reason: str = "not checked yet"
    #: Incremented at every (re)start, so a health check that began in an earlier life
    #: of the provider cannot vouch for this one.
    incarnation: int = 0
    last_error: str | None = None
    #: What went wrong closing the provider last (its ``aclose`` raised or overran
    #: ``close_timeout``), for :class:`ProviderClosed`.
    close_error: str | None = None
    #: Cancelling it stops the provider actor, which closes the instance. Shielded, as a
    #: registration's scope is. Only an instance with a provider actor has one.
    cancel_scope: trio.CancelScope | None = None
    #: Set when the provider actor has finished and the instance is closed (only an
    #: instance with a provider actor has one: memory per provider counts).
    done: trio.Event | None = None
    #: The registration whose going ended the instance's life (for ProviderClosed).
    closing_name: str = ""

    @property
    def lead(self) -> ProviderRecord | None:
        """The registration whose breaker actor runs the health checks."""
        return self.records[0] if self.records else None

    @property
    def name(self) -> str:
        """A name for messages: its first registration's."""
        return self.records[0].name if self.records else "(unregistered)"
