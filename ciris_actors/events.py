"""Typed registry events and the bus that fans them out to subscribers.

Publishing is synchronous and never blocks: each subscriber has a bounded buffer that
drops its oldest events when full and tells the subscriber how many it lost
(:class:`EventsDropped`), so a slow subscriber can never slow the registry.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import attrs
import trio

from ._types import CircuitState

__all__ = [
    "ActorCrashed",
    "ActorFailed",
    "ActorRestarted",
    "BreakerTransition",
    "EventSubscription",
    "EventsDropped",
    "FleetDegraded",
    "FleetRestored",
    "FleetVerdict",
    "HealthChanged",
    "HedgeStarted",
    "ProviderClosed",
    "ProviderDisabled",
    "ProviderRegistered",
    "ProviderUnregistered",
    "RegistryEvent",
    "ResolveMiss",
    "RetryRefused",
    "SpilloverChanged",
]


@attrs.frozen
class RegistryEvent:
    """Base of every event: the provider's ``name`` (``None`` for events about no single
    provider) and the registry ``time`` (``trio.current_time()``) it happened at."""

    name: str | None
    time: float


@attrs.frozen
class ProviderRegistered(RegistryEvent):
    """A provider was registered."""

    handler: str
    service_type: str


@attrs.frozen
class ProviderUnregistered(RegistryEvent):
    """A provider was unregistered."""

    handler: str
    service_type: str


@attrs.frozen
class ProviderClosed(RegistryEvent):
    """A registration's actors have finished (after ``unregister``, or as the registry
    closes). If it was the last registration of its instance, the instance is closed:
    ``instance_closed`` is true and ``error`` says whether its ``aclose`` (or
    ``__aexit__``) raised or overran ``close_timeout``. If another registration of the
    same instance remains, the instance lives on (``instance_closed`` false). Not
    published when the name has been registered again meanwhile."""

    error: str | None
    instance_closed: bool


@attrs.frozen
class BreakerTransition(RegistryEvent):
    """A provider's circuit breaker changed state."""

    old: CircuitState
    new: CircuitState
    reason: str


@attrs.frozen
class HealthChanged(RegistryEvent):
    """A provider's health-check result changed."""

    healthy: bool
    reason: str


@attrs.frozen
class ProviderDisabled(RegistryEvent):
    """A provider left routing for an error classified ``disable`` (a revoked key, say):
    its breaker stays OPEN with no deadline until ``reset_circuit_breaker``,
    ``update_circuit_breaker`` or a new registration."""

    reason: str


@attrs.frozen
class FleetDegraded(RegistryEvent):
    """This node lost its fleet store: it goes on alone (its local breakers decide) and
    retries with back-off. ``name`` is ``None``; ``node`` is this node's id and
    ``error`` what went wrong."""

    node: str
    error: str


@attrs.frozen
class FleetRestored(RegistryEvent):
    """This node reached its fleet store again after ``outage`` seconds, re-published
    its verdicts and re-read the others'. ``name`` is ``None``."""

    node: str
    outage: float


@attrs.frozen
class FleetVerdict(RegistryEvent):
    """A verdict about provider ``name`` from the fleet was applied here: ``kind`` (a
    :class:`~ciris_actors.fleet.VerdictKind` value) made by node ``node``; ``lag`` is the
    seconds it took to arrive when it was pushed (``None`` for one read from the store)."""

    node: str
    kind: str
    reason: str
    lag: float | None


@attrs.frozen
class SpilloverChanged(RegistryEvent):
    """With proportional spillover (``open_registry(overprovisioning_factor=...)``), the
    share of resolves each group of one scope and service type takes changed
    (``name`` is ``None``). ``loads`` is ``((group, share), ...)``, shares summing to 1
    (or all 0 when nothing is available)."""

    scope: str
    service_type: str
    loads: tuple[tuple[int, float], ...]


@attrs.frozen
class RetryRefused(RegistryEvent):
    """The registry's retry budget refused a ``call``'s failover attempt on provider
    ``name``: the call ended without trying it."""

    handler: str
    service_type: str


@attrs.frozen
class HedgeStarted(RegistryEvent):
    """A hedged ``call`` (``hedge_after=``) waited long enough for its first attempt and
    started a second, on provider ``name``."""

    handler: str
    service_type: str


@attrs.frozen
class ActorCrashed(RegistryEvent):
    """A provider's ``start``/``run`` raised."""

    error: str


@attrs.frozen
class ActorRestarted(RegistryEvent):
    """A provider's actor was restarted after a crash, after waiting ``delay`` seconds."""

    restarts: int
    delay: float


@attrs.frozen
class ActorFailed(RegistryEvent):
    """A provider exceeded its restart intensity and is routed around from now on."""

    restarts: int
    error: str


@attrs.frozen
class ResolveMiss(RegistryEvent):
    """A resolve found no available provider."""

    handler: str
    service_type: str
    required_capabilities: tuple[str, ...]


@attrs.frozen
class EventsDropped(RegistryEvent):
    """This subscriber was too slow and lost its ``count`` oldest events."""

    count: int


class EventSubscription(trio.abc.ReceiveChannel[RegistryEvent]):
    """A receive channel of registry events, from :meth:`Registry.events`.

    Holds at most ``max_buffer`` events; when full, the oldest is dropped and the next
    :meth:`receive` first returns an :class:`EventsDropped` saying how many were lost.
    """

    def __init__(self, bus: EventBus, max_buffer: int) -> None:
        self._bus = bus
        self._buffer: collections.deque[RegistryEvent] = collections.deque()
        self._max = max_buffer
        self._dropped = 0
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False

    def _push(self, event: RegistryEvent) -> None:
        if len(self._buffer) >= self._max:
            self._buffer.popleft()
            self._dropped += 1
        self._buffer.append(event)
        self._lot.unpark_all()

    def _close(self) -> None:
        """Stop delivering, drop what is buffered, and wake a blocked reader."""
        self._closed = True
        if self._bus is not None:
            self._bus.unsubscribe(self)
        self._buffer.clear()
        self._lot.unpark_all()

    def _finish(self) -> None:
        self._bus = None  # type: ignore[assignment]
        self._lot.unpark_all()

    async def receive(self) -> RegistryEvent:
        """Return the next event, waiting for one if none is buffered.

        Raises:
          trio.EndOfChannel: the registry has closed and every buffered event was read.
          trio.ClosedResourceError: this subscription was closed.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            if self._closed:
                raise trio.ClosedResourceError("this event subscription is closed")
            if self._dropped:
                count, self._dropped = self._dropped, 0
                await trio.lowlevel.cancel_shielded_checkpoint()
                return EventsDropped(name=None, time=trio.current_time(), count=count)
            if self._buffer:
                event = self._buffer.popleft()
                await trio.lowlevel.cancel_shielded_checkpoint()
                return event
            if self._bus is None:
                raise trio.EndOfChannel
            await self._lot.park()

    async def aclose(self) -> None:
        """Stop receiving; buffered events are discarded."""
        if not self._closed:
            self._close()
        await trio.lowlevel.checkpoint()


class EventBus:
    """Fans events out to subscribers; owned by the registry supervisor.

    Each subscriber may ask for some event types only. The filter is applied before
    anything is buffered, so unwanted events never push wanted ones out of a
    subscriber's buffer, and publishing an event costs nothing for a subscriber that
    filtered its type out: subscribers are indexed by the event type they want.
    """

    def __init__(self) -> None:
        self._subscribers: dict[EventSubscription, tuple[type[RegistryEvent], ...] | None] = {}
        #: Event class -> the subscribers that want it; filled as types are published and
        #: emptied whenever a subscriber comes or goes.
        self._routes: dict[type[RegistryEvent], tuple[EventSubscription, ...]] = {}

    @property
    def has_subscribers(self) -> bool:
        """Whether anyone is listening at all."""
        return bool(self._subscribers)

    def wants(self, kind: type[RegistryEvent]) -> bool:
        """Whether any subscriber would receive an event of class *kind* (lets callers
        skip building events nobody reads)."""
        return bool(self._route(kind))

    def _route(self, kind: type[RegistryEvent]) -> tuple[EventSubscription, ...]:
        route = self._routes.get(kind)
        if route is None:
            route = tuple(
                subscriber
                for subscriber, types in self._subscribers.items()
                if types is None or issubclass(kind, types)
            )
            self._routes[kind] = route
        return route

    def publish(self, event: RegistryEvent) -> None:
        """Deliver *event* to every subscriber that wants its type, without blocking."""
        for subscriber in self._route(type(event)):
            subscriber._push(event)

    @contextmanager
    def subscribe(
        self, max_buffer: int, types: Iterable[type[RegistryEvent]] | None = None
    ) -> Iterator[EventSubscription]:
        """Open a subscription for the duration of the ``with`` block.

        Args:
          max_buffer: events held for the subscriber before the oldest are dropped.
          types: the event classes (and their subclasses) to deliver; ``None``: all.
            :class:`EventsDropped` is always delivered.

        Raises:
          ValueError: *max_buffer* is not an int >= 1, or *types* is empty.
          TypeError: *types* holds something that is not an event class.
        """
        if isinstance(max_buffer, bool) or not isinstance(max_buffer, int) or max_buffer < 1:
            raise ValueError(f"max_buffer: must be an int >= 1, got {max_buffer!r}")
        wanted = None if types is None else _event_classes(types)
        subscription = EventSubscription(self, max_buffer)
        self._subscribers[subscription] = wanted
        self._routes.clear()
        try:
            yield subscription
        finally:
            subscription._close()

    def unsubscribe(self, subscription: EventSubscription) -> None:
        """Stop delivering to *subscription* (idempotent)."""
        if self._subscribers.pop(subscription, False) is not False:
            self._routes.clear()

    def close(self) -> None:
        """End every subscription: receivers get what is buffered, then EndOfChannel."""
        for subscriber in self._subscribers:
            subscriber._finish()
        self._subscribers.clear()
        self._routes.clear()


def _event_classes(types: object) -> tuple[type[RegistryEvent], ...]:
    if isinstance(types, type) or not isinstance(types, Iterable):
        raise TypeError(f"types: expected an iterable of event classes, got {types!r}")
    classes = tuple(types)
    for kind in classes:
        if not (isinstance(kind, type) and issubclass(kind, RegistryEvent)):
            raise TypeError(f"types: {kind!r} is not a RegistryEvent class")
    if not classes:
        raise ValueError("types: must name at least one event class (None: all of them)")
    return classes
