"""A registered provider as the actor shell holds it: what routing reads (the pure
:class:`~ciris_actors.selection.Member`), plus its lifecycle state, its actors' cancel
scope and mailbox, its outstanding probe permits, and its counters.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from ..restart import RestartTracker
from ..selection import Member
from .messages import BreakerMessage, Mailbox

__all__ = ["ProviderCounters", "ProviderRecord"]


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


@attrs.define(slots=True, eq=False, kw_only=True)
class ProviderRecord(Member):
    """A registered provider: what routing reads (:class:`Member`) plus what the
    supervisor and the provider's actors own."""

    handler: str
    service_type: str
    metadata: dict[str, Any]
    mock: bool
    restart: RestartTracker
    #: Cancelling it stops the provider's actors (unregister, registry exit). Shielded, so
    #: a cancellation of the registry's block reaches providers only through
    #: ``stop_all``, one at a time in reverse registration order.
    cancel_scope: trio.CancelScope = attrs.field(factory=lambda: trio.CancelScope(shield=True))
    #: Set when the provider actor has finished, its provider closed.
    done: trio.Event = attrs.field(factory=trio.Event)
    mailbox: Mailbox = attrs.field(factory=Mailbox)
    #: Probe permits handed out by ``get_service``, oldest first: (deadline, breaker
    #: generation). A list, not a deque: it is almost always empty, and small.
    permits: list[tuple[float, int]] = attrs.field(factory=list)
    last_error: str | None = None
    #: What went wrong closing the provider last (its ``aclose`` raised or overran
    #: ``close_timeout``), for :class:`ProviderClosed`.
    close_error: str | None = None
    health_reason: str = "not checked yet"
    #: Incremented at every (re)start, so a health check that began in an earlier life
    #: of the provider cannot vouch for this one.
    incarnation: int = 0
    counters: ProviderCounters = attrs.field(factory=ProviderCounters)

    @property
    def routing_scope(self) -> str:
        """The scope of its plan: the handler, or ``"*"`` for a global provider."""
        return self.handler

    def tell(self, message: BreakerMessage) -> None:
        """Post *message* to the breaker actor without waiting (see ``messages``)."""
        self.mailbox.post(message)
