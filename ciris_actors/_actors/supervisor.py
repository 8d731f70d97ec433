"""The registry supervisor: owns the routing table, the event bus, the restart policy and
the nursery every provider actor runs in.

Every method here that changes routing is synchronous, so it takes effect before it
returns and is atomic with respect to resolves (nothing else runs between two awaits in
trio). The actors are told afterwards, through their mailboxes.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import random
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from typing import Protocol, TypeVar

import trio

from .. import selection
from .._errors import UnknownProviderError
from .._lifecycle import has_lifecycle, lifecycle_method, needs_supervision
from .._stats import ResolveStats
from .._types import GLOBAL, ActorStatus, CircuitState, Priority, SelectionStrategy
from ..breaker import NO_PERMIT, CircuitBreaker
from ..budget import RetryBudget, RetryBudgetState
from ..events import (
    BreakerTransition,
    EventBus,
    HealthChanged,
    HedgeStarted,
    ProviderClosed,
    ProviderDisabled,
    ProviderRegistered,
    ProviderUnregistered,
    RegistryEvent,
    ResolveMiss,
    RetryRefused,
    SpilloverChanged,
)
from ..fleet._protocol import FleetLink
from ..outcomes import Classifier, ErrorClass, ErrorKind, classify
from ..restart import RestartPolicy, RestartTracker
from ..selection import Member, Plan, plan_insert, plan_remove
from .breaker_actor import breaker_actor
from .fleet_actor import FleetActor
from .messages import BreakerMessage
from .provider_actor import provider_actor
from .record import Lifecycle, Permit, ProviderRecord

__all__ = ["RegistrySupervisor", "Resolve"]

_Arg = TypeVar("_Arg")


class Resolve(Protocol):
    """The shape of a resolve: the supervisor's walk, or an observer's wrapper of it."""

    def __call__(
        self,
        handler: str,
        service_type: str,
        required: frozenset[str],
        fallback_to_global: bool,
        exclude: Collection[Member],
        /,
    ) -> ProviderRecord | None: ...


def walker(
    plans: Mapping[tuple[str, str], Plan[ProviderRecord]],
    missed: Callable[[str, str, frozenset[str]], None],
    now: Callable[[], float],
    *,
    counting: bool,
    random: Callable[[int], int],
    spillover: float | None = None,
    spilled: Callable[[str, str, list[float], int], None] | None = None,
) -> Resolve:
    """The resolve walk over *plans*: the handler's plan for the service type, then
    (if allowed, and the handler is not itself global) the global plan; the first member
    :func:`~ciris_actors.selection.select` admits, or ``None`` after telling *missed*.
    *now* reads the clock (when a breaker that is not CLOSED needs it). *counting*
    makes it count each hit on the provider chosen. *random* (``getrandbits``) draws the
    two random picks of LEAST_OUTSTANDING and LATENCY groups. With a *spillover* factor each plan is
    walked with proportional spillover, and *spilled* hears of every such resolve (the
    scope, the service type, the group loads, and the group the draw picked).

    The one walk every resolve takes (``get_service``, ``lease``, ``call``, the
    simulator). It is a closure, not a method, so a resolve costs one Python call, and
    the counting is a constant of the closure rather than an attribute read per
    resolve: a registry nobody observes pays nothing for it.
    """
    select = selection.select  # read once: a test may put a broken router in its place
    if spillover is not None:
        assert spilled is not None
        return _spilling_walker(plans, missed, now, counting, random, spillover, spilled)

    def walk(
        handler: str,
        service_type: str,
        required: frozenset[str],
        fallback_to_global: bool,
        exclude: Collection[Member],
        /,
    ) -> ProviderRecord | None:
        plan = plans.get((handler, service_type))
        # Two-choice groups draw from their own Group.draw (set by _place to *random*):
        # one argument fewer on every resolve.
        member = None if plan is None else select(plan, required, now, exclude)
        if member is None and fallback_to_global and handler != GLOBAL:
            plan = plans.get((GLOBAL, service_type))
            if plan is not None:
                member = select(plan, required, now, exclude)
        if member is None:
            missed(handler, service_type, required)
            return None
        if counting:
            member.counters.selections += 1
        return member

    return walk


def _spilling_walker(
    plans: Mapping[tuple[str, str], Plan[ProviderRecord]],
    missed: Callable[[str, str, frozenset[str]], None],
    now: Callable[[], float],
    counting: bool,
    random: Callable[[int], int],
    factor: float,
    spilled: Callable[[str, str, list[float], int], None],
) -> Resolve:
    """:func:`walker`'s walk with proportional spillover in each plan."""

    def walk(
        handler: str,
        service_type: str,
        required: frozenset[str],
        fallback_to_global: bool,
        exclude: Collection[Member],
        /,
    ) -> ProviderRecord | None:
        member = None
        scopes = (handler, GLOBAL) if fallback_to_global and handler != GLOBAL else (handler,)
        for scope in scopes:
            plan = plans.get((scope, service_type))
            if plan is not None:
                member, picked, loads = selection.select_spilling(
                    plan, required, now, exclude, random, factor
                )
                spilled(scope, service_type, loads, picked)
                if member is not None:
                    break
        if member is None:
            missed(handler, service_type, required)
            return None
        if counting:
            member.counters.selections += 1
        return member

    return walk


#: What a health check that raised says about the provider's health, by the error's
#: class: ``None`` is no verdict. A rate limit or a disable is recorded on the breakers
#: instead, which hold the provider out of routing for as long as it should be (a
#: verdict would outlast a short Retry-After, or a reset after a key is fixed).
_HEALTH_VERDICT: dict[ErrorKind, bool | None] = {
    ErrorKind.FAILURE: False,
    ErrorKind.SUCCESS: True,
    ErrorKind.IGNORE: None,
    ErrorKind.REROUTE: None,
    ErrorKind.RATE_LIMITED: None,
    ErrorKind.DISABLE: None,
}
#: Classes a health check's error also records on the breakers: the provider is
#: throttled, or its credentials are refused, whatever its answer to a health check.
_BREAKER_KINDS = frozenset({ErrorKind.RATE_LIMITED, ErrorKind.DISABLE})


_FAILURE = ErrorClass.failure()


def _ignore_miss(handler: str, service_type: str, required: frozenset[str]) -> None:
    pass


class RegistrySupervisor:
    """Owner of routing state, events and the provider actors' nursery."""

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        restart_policy: RestartPolicy,
        health_check_interval: float | None,
        close_timeout: float,
        rng: random.Random,
        classify: Classifier | None = None,
        routing_rng: random.Random | None = None,
        overprovisioning_factor: float | None = None,
        retry_budget: RetryBudget | None = None,
        actor_context: Callable[[], contextvars.Context] | None = None,
    ) -> None:
        self.nursery = nursery
        #: Makes the context each actor starts in, or ``None``: the context of whoever
        #: registered the provider, as trio copies it. The facade gives one that leaves
        #: out the caller's OpenTelemetry span (``_trace.actor_context``), so background
        #: work never joins whatever trace registered it.
        self.actor_context = actor_context
        #: The registry's error classifier, asked after a provider's own.
        self.classify = classify
        self.restart_policy = restart_policy
        self.health_check_interval = health_check_interval
        self.close_timeout = close_timeout
        self.rng = rng
        self.bus = EventBus()
        #: The run's clock, read directly: the same reading as ``trio.current_time()``
        #: (a run's clock never changes) for two fewer calls on the hot paths.
        self.now: Callable[[], float] = trio.lowlevel.current_clock().current_time
        self.providers: dict[str, ProviderRecord] = {}
        #: id(instance) -> the life every registration of that instance shares.
        self.lifecycles: dict[int, Lifecycle] = {}
        #: Breaker actors running (shutdown waits for them), and the event set when the
        #: last one finishes.
        self.breaker_actors = 0
        self._breakers_done = trio.Event()
        #: (scope, service type) -> plan; read directly by the resolve hot path.
        self.plans: dict[tuple[str, str], Plan[ProviderRecord]] = {}
        self.mock_plans: dict[tuple[str, str], Plan[ProviderRecord]] = {}
        self._seq = itertools.count()
        self._changed = trio.Event()
        #: What ``open_registry`` raises when its block is over: a provider that exceeded
        #: its intensity under ``escalate=True``, or a KeyboardInterrupt / SystemExit a
        #: provider raised (first come, first kept).
        self.escalation: BaseException | None = None
        #: Incremented whenever the routing table changes (register, unregister, move),
        #: so observers can cache what they derive from it.
        self.version = 0
        #: Incremented whenever anything a resolve reads about a provider may have
        #: changed, but the clock and half-open probe counts: the routing table, breaker
        #: states and configurations, health results, actor statuses.
        self.state_version = 0
        #: Resolve outcomes and sampled durations (read by metrics observers).
        self.resolve_stats = ResolveStats()
        #: The resolve walk over this routing table (synchronous: it admits through the
        #: breakers, moves round-robin cursors and reports misses), and the same walk
        #: counting hits and misses, for while a resolve observer is attached.
        #: The two random picks of LEAST_OUTSTANDING and LATENCY groups (its own generator,
        #: so that routing draws never shift the restart jitter's).
        draw = (random.Random() if routing_rng is None else routing_rng).getrandbits
        self.draw = draw
        #: Proportional spillover: the factor, resolves spilled per service type, and
        #: the last group loads of each (scope, service type).
        self.overprovisioning_factor = overprovisioning_factor
        self.spilled: dict[str, int] = {}
        #: The registry's retry budget at work (``None``: no budget), and hedged calls'
        #: second attempts started and won.
        self.retry_budget = None if retry_budget is None else RetryBudgetState(retry_budget)
        self.hedges_started = 0
        self.hedges_won = 0
        self.group_loads: dict[tuple[str, str], tuple[float, ...]] = {}
        #: The fleet actor, when the registry shares verdicts with a fleet.
        self.fleet: FleetActor | None = None
        walk = functools.partial(
            walker,
            self.plans,
            now=self.now,
            random=draw,
            spillover=overprovisioning_factor,
            spilled=self.note_spill,
        )
        self.resolve = walk(missed=self.missed, counting=False)
        self.counting_resolve = walk(missed=self.missed_counted, counting=True)
        #: The walk over mock providers (``get_service_with_fallback``).
        self.mock_resolve = walker(
            self.mock_plans, _ignore_miss, self.now, counting=False, random=draw
        )

    # -- routing table --------------------------------------------------------------------

    def next_seq(self) -> int:
        """Registration order of the next provider."""
        return next(self._seq)

    def lifecycle_for(self, instance: object) -> Lifecycle:
        """The life of *instance*: the one its other registrations share, or a new one."""
        life = self.lifecycles.get(id(instance))
        if life is None:
            supervised = needs_supervision(instance)
            life = Lifecycle(
                instance=instance,
                supervised=supervised,
                has_health_check=lifecycle_method(instance, "is_healthy") is not None,
                restart=RestartTracker(self.restart_policy),
                status=ActorStatus.STARTING if has_lifecycle(instance) else ActorStatus.RUNNING,
            )
            if supervised:
                life.cancel_scope = trio.CancelScope(shield=True)
                life.done = trio.Event()
        return life

    def add(self, record: ProviderRecord) -> None:
        """Insert *record* into its plan, publish, and start its actors (and its
        instance's, if this is the instance's first registration).

        The plan is changed first: if that raises, nothing else has changed, so the
        caller gets the error and the registry is as it was (no half-registered provider
        for the shutdown to wait on).
        """
        life = record.lifecycle
        record.status = life.status
        record.healthy = life.healthy
        record.refresh()
        self._place(record)
        first = not life.records
        life.records.append(record)
        self.lifecycles[id(life.instance)] = life
        self.providers[record.name] = record
        self.version += 1
        self.state_version += 1
        self.publish(
            ProviderRegistered(
                name=record.name,
                time=trio.current_time(),
                handler=record.handler,
                service_type=record.service_type,
            )
        )
        self.signal_change()
        self.breaker_actors += 1
        self._start_actor(breaker_actor, record, f"ciris_actors.breaker:{record.name}")
        if first and life.supervised:
            self._start_actor(provider_actor, life, f"ciris_actors.provider:{record.name}")
        elif first and life.has_health_check:
            record.tell(BreakerMessage.CHECK_NOW)  # nothing to start: check at once
        if self.fleet is not None:
            self.fleet.registered(record, self.now())

    def start_fleet(self, link: FleetLink) -> None:
        """Start the fleet actor for *link* (once, as the registry opens)."""
        fleet = self.fleet = FleetActor(self, link)

        def start() -> None:
            self.nursery.start_soon(fleet.run, name=f"ciris_actors.fleet:{link.node_id}")

        if self.actor_context is None:
            start()
        else:
            self.actor_context().run(start)

    def _start_actor(
        self,
        actor: Callable[[RegistrySupervisor, _Arg], Awaitable[None]],
        arg: _Arg,
        name: str,
    ) -> None:
        """Start *actor* in the registry's nursery, in :attr:`actor_context` if set (the
        task copies the context it is started from; the health checks a breaker actor
        starts copy the actor's own)."""

        def start() -> None:
            self.nursery.start_soon(actor, self, arg, name=name)

        if self.actor_context is None:
            start()
        else:
            self.actor_context().run(start)

    def remove(self, name: str) -> ProviderRecord:
        """Take *name* out of routing at once and stop its actors in the background (and
        its instance's, if this was the instance's last registration).

        The plan is changed first: if that raises, the provider is still registered
        and running, as before the call.
        """
        record = self.get(name)
        self._unplace(record)
        del self.providers[name]
        if not record.mock:
            self.resolve_stats.retire(record.service_type, record.counters.selections)
        self.version += 1
        self.state_version += 1
        self._detach(record)
        if self.fleet is not None:
            self.fleet.unregistered(name)
        self.publish(
            ProviderUnregistered(
                name=name,
                time=trio.current_time(),
                handler=record.handler,
                service_type=record.service_type,
            )
        )
        self.signal_change()
        return record

    def _detach(self, record: ProviderRecord) -> None:
        """Stop *record*'s breaker actor and take it off its instance's life, ending
        that life if it was the last registration."""
        record.routable = record.ready = False
        record.tell(BreakerMessage.STOP)
        record.cancel_scope.cancel()
        life = record.lifecycle
        was_lead = life.lead is record
        life.records.remove(record)
        if not life.records:
            del self.lifecycles[id(life.instance)]
            life.closing_name = record.name
            if life.cancel_scope is not None:
                life.cancel_scope.cancel()
        elif was_lead and life.has_health_check and life.status is ActorStatus.RUNNING:
            # The new lead runs the health checks from now on, starting with one now.
            lead = life.lead
            assert lead is not None
            lead.tell(BreakerMessage.CHECK_NOW)

    def get(self, name: str) -> ProviderRecord:
        """Return the record named *name*.

        Raises:
          UnknownProviderError: no provider has that name.
        """
        try:
            return self.providers[name]
        except (KeyError, TypeError):
            raise UnknownProviderError(f"no provider named {name!r} is registered") from None

    def move(
        self,
        record: ProviderRecord,
        priority: Priority,
        priority_group: int,
        strategy: SelectionStrategy,
    ) -> None:
        """Give *record* a new place in its plan (``update_priority``); if that raises,
        *record* keeps its old place."""
        old = record.priority, record.priority_group, record.strategy
        self._unplace(record)
        record.priority, record.priority_group, record.strategy = priority, priority_group, strategy
        try:
            self._place(record)
        except BaseException:
            record.priority, record.priority_group, record.strategy = old
            self._place(record)
            raise
        self.version += 1
        self.state_version += 1

    def _plans_of(self, record: ProviderRecord) -> dict[tuple[str, str], Plan[ProviderRecord]]:
        return self.mock_plans if record.mock else self.plans

    def _place(self, record: ProviderRecord) -> None:
        plans = self._plans_of(record)
        key = (record.routing_scope, record.service_type)
        plan = plans.get(key, [])
        plan_insert(plan, record)
        for group in plan:
            group.draw = self.draw
        plans[key] = plan  # a new plan is stored only once it holds the record

    def _unplace(self, record: ProviderRecord) -> None:
        plans = self._plans_of(record)
        key = (record.routing_scope, record.service_type)
        plan = plans[key]
        plan_remove(plan, record)
        if not plan:
            del plans[key]

    def records(self) -> Iterator[ProviderRecord]:
        """Every provider, in registration order."""
        return iter(list(self.providers.values()))

    def ordered(self) -> list[ProviderRecord]:
        """Every provider in selection order: by service type; handler-specific ones
        (by handler) before global ones; mocks last; then group, priority, registration."""
        return sorted(
            self.providers.values(),
            key=lambda r: (
                r.service_type,
                r.handler == GLOBAL,
                r.handler,
                r.mock,
                r.priority_group,
                r.sort_key,
            ),
        )

    # -- resolving -----------------------------------------------------------------------

    def note_spill(self, scope: str, service_type: str, loads: list[float], picked: int) -> None:
        """A resolve with spillover drew group number *picked* of the plan of (*scope*,
        *service_type*): count it if that was not the first group, and publish
        :class:`SpilloverChanged` when the group loads changed."""
        if picked:
            self.spilled[service_type] = self.spilled.get(service_type, 0) + 1
        key = (scope, service_type)
        shares = tuple(loads)
        if self.group_loads.get(key) != shares:
            self.group_loads[key] = shares
            if self.bus.wants(SpilloverChanged):
                plan = self.plans.get(key, [])
                self.publish(
                    SpilloverChanged(
                        name=None,
                        time=self.now(),
                        scope=scope,
                        service_type=service_type,
                        loads=tuple(
                            (group.number, share)
                            for group, share in zip(plan, shares, strict=False)
                        ),
                    )
                )

    def retry_refused(self, record: ProviderRecord, handler: str, service_type: str) -> None:
        """The retry budget refused an attempt on *record*: publish :class:`RetryRefused`."""
        if self.bus.wants(RetryRefused):
            self.publish(
                RetryRefused(
                    name=record.name, time=self.now(), handler=handler, service_type=service_type
                )
            )

    def hedge_started(self, record: ProviderRecord, handler: str, service_type: str) -> None:
        """A hedged call started its second attempt, on *record*: count it and publish
        :class:`HedgeStarted`."""
        self.hedges_started += 1
        if self.bus.wants(HedgeStarted):
            self.publish(
                HedgeStarted(
                    name=record.name, time=self.now(), handler=handler, service_type=service_type
                )
            )

    def missed_counted(self, handler: str, service_type: str, required: frozenset[str]) -> None:
        """:meth:`missed`, counting the miss for resolve observers."""
        self.resolve_stats.count_miss(service_type)
        self.missed(handler, service_type, required)

    def missed(self, handler: str, service_type: str, required: frozenset[str]) -> None:
        """A resolve found nothing: publish a :class:`ResolveMiss` if anyone wants one."""
        if self.bus.wants(ResolveMiss):
            self.publish(
                ResolveMiss(
                    name=None,
                    time=trio.current_time(),
                    handler=handler,
                    service_type=service_type,
                    required_capabilities=tuple(sorted(required)),
                )
            )

    # -- state changes the actors and the registry report ----------------------------------

    def is_current(self, record: ProviderRecord) -> bool:
        """Whether *record* is still registered (its name may since have been reused)."""
        return self.providers.get(record.name) is record

    def publish(self, event: RegistryEvent) -> None:
        """Deliver *event* to every subscriber (never blocks)."""
        self.bus.publish(event)

    def signal_change(self) -> None:
        """Wake everyone waiting for routability to change (``wait_ready``)."""
        self._changed.set()
        self._changed = trio.Event()

    async def wait_change(self) -> None:
        """Wait until the next :meth:`signal_change`."""
        await self._changed.wait()

    def current(self, life: Lifecycle) -> list[ProviderRecord]:
        """The registrations of *life* still registered (events are published for these)."""
        return list(life.records)

    def set_status(self, life: Lifecycle, status: ActorStatus) -> None:
        """Record an instance's lifecycle status, on every registration of it, and what
        it means for routing."""
        life.status = status
        self.state_version += 1
        if status is ActorStatus.STARTING or status is ActorStatus.RESTARTING:
            # A (re)started provider must pass a fresh first health check.
            life.incarnation += 1
            life.healthy = None
            life.health_reason = "not checked yet"
        changed = False
        for record in life.records:
            record.status = status
            record.healthy = life.healthy
            changed |= record.refresh()
        if changed:
            self.signal_change()

    def set_health(self, life: Lifecycle, healthy: bool, reason: str) -> None:
        """Record a health-check result of an instance, on every registration of it,
        publishing a change."""
        old = life.healthy
        life.healthy = healthy
        life.health_reason = reason
        if old != healthy:
            self.state_version += 1
        changed = False
        for record in life.records:
            record.healthy = healthy
            if healthy:
                record.counters.health_passed += 1
            else:
                record.counters.health_failed += 1
            if old != healthy:
                self.publish(
                    HealthChanged(
                        name=record.name, time=trio.current_time(), healthy=healthy, reason=reason
                    )
                )
            changed |= record.refresh()
        if changed:
            self.signal_change()

    def classify_error(self, record: ProviderRecord, error: BaseException) -> ErrorClass:
        """What *error* from *record*'s provider means: its own classifier first, then
        the registry's; a failure when neither has an opinion."""
        own = record.classify
        if own is None and self.classify is None:
            return _FAILURE  # no classifier: skip the walk (every failed call comes here)
        return classify(error, own, self.classify)

    def error_recorded(
        self, record: ProviderRecord, error_class: ErrorClass, was_disabled: str | None, now: float
    ) -> None:
        """Publish what a ``rate_limited`` or ``disable`` outcome just did to *record*'s
        breaker beyond a transition (which its callback publishes): a moved deadline, or
        a provider leaving routing (:class:`ProviderDisabled`)."""
        self.state_version += 1
        record.tell(BreakerMessage.OPENED)  # look at the (possibly moved) deadline again
        if self.fleet is not None:
            self.fleet.error_recorded(record, error_class, now)
        reason = record.breaker.disabled
        if (
            error_class.kind is ErrorKind.DISABLE
            and was_disabled is None
            and reason is not None
            and self.is_current(record)
        ):
            self.publish(ProviderDisabled(name=record.name, time=now, reason=reason))

    def on_breaker_transition(
        self,
        breaker: CircuitBreaker,
        old: CircuitState,
        new: CircuitState,
        reason: str,
        now: float,
    ) -> None:
        """Publish a breaker's transition and refresh what routing derives from it (the
        breaker's ``on_transition`` callback)."""
        self.state_version += 1
        record = self.providers.get(breaker.name)
        if record is not None and record.breaker is breaker:
            record.refresh()
            transitions = record.counters.transitions
            key = (old.value, new.value)
            transitions[key] = transitions.get(key, 0) + 1
            # Every permit belongs to the state period that just ended: void them all, so
            # a report can only ever return a permit of the current period.
            record.permits.clear()
            if new is CircuitState.OPEN:
                # Outcomes are recorded synchronously, outside the actor: tell it to arm
                # the OPEN -> HALF_OPEN timer.
                record.tell(BreakerMessage.OPENED)
            self.publish(
                BreakerTransition(name=breaker.name, time=now, old=old, new=new, reason=reason)
            )
            if self.fleet is not None:
                self.fleet.transition(record, old, new, reason, now)
            # ``call(wait=...)`` waits for a provider to become available: wake it.
            self.signal_change()

    def take_permit(
        self, record: ProviderRecord, *, owned: bool = False, timeout: float | None = None
    ) -> Permit:
        """Remember a probe permit handed out without a lease, to expire it on time.

        Args:
          record: the provider it was taken from.
          owned: taken by ``admit`` (its ticket returns it), not by ``get_service``.
          timeout: seconds until it expires (default: the breaker's
            ``timeout_duration``).
        """
        breaker = record.breaker
        limit = breaker.config.timeout_duration if timeout is None else timeout
        permit = Permit(self.now() + limit, breaker.generation, owned)
        record.permits.append(permit)
        record.tell(BreakerMessage.PERMIT_TAKEN)
        return permit

    def return_permit(self, record: ProviderRecord) -> int:
        """Pop the oldest outstanding ``get_service`` permit and return its generation,
        or :data:`NO_PERMIT` when none is outstanding (a permit a lease or a ticket holds
        must not be returned by a report about another call)."""
        for index, permit in enumerate(record.permits):
            if not permit.owned:
                del record.permits[index]
                return permit.generation
        return NO_PERMIT

    # -- health checks -----------------------------------------------------------------

    async def check_health(self, record: ProviderRecord) -> bool:
        """Run the ``is_healthy`` of *record*'s instance under *record*'s
        ``timeout_duration`` and return it; the result holds for every registration of
        the instance.

        The result is recorded only if the provider was running when the check began and
        has not restarted since: a check that overlapped ``start()`` or an earlier
        incarnation says nothing about the provider as it is now.
        """
        life = record.lifecycle
        incarnation = life.incarnation
        counts = life.status is ActorStatus.RUNNING
        timeout = record.breaker.config.timeout_duration
        healthy: bool | None = False
        reason = f"health check timed out after {timeout:g}s"
        error_class: ErrorClass | None = None
        with trio.move_on_after(timeout):
            try:
                healthy = bool(await record.instance.is_healthy())
            except Exception as exc:
                error_class = self.classify_error(record, exc)
                reason = f"health check raised {type(exc).__name__}: {exc}"
                healthy = _HEALTH_VERDICT[error_class.kind]
            except (KeyboardInterrupt, SystemExit) as exc:
                # Not a health verdict: the process is being asked to stop.
                self.escalate(exc)
                return False
            else:
                reason = "health check passed" if healthy else "health check returned False"
        if counts and life.incarnation == incarnation and life.records:
            if error_class is not None and error_class.kind in _BREAKER_KINDS:
                now = self.now()
                for each in list(life.records):
                    was_disabled = each.breaker.disabled
                    each.breaker.record_error(now, error_class)
                    self.error_recorded(each, error_class, was_disabled, now)
            if healthy is not None:
                self.set_health(life, healthy, reason)
        return bool(healthy)

    def registration_closed(self, record: ProviderRecord) -> None:
        """*record*'s breaker actor has finished: publish :class:`ProviderClosed` for it,
        unless its instance has a provider actor still to close it (that actor publishes
        it then) or its name has been registered again since."""
        self.breaker_actors -= 1
        if not self.breaker_actors:
            self._breakers_done.set()
            self._breakers_done = trio.Event()
        life = record.lifecycle
        last = life.closing_name == record.name and not life.records
        if life.supervised and last:
            return
        self._publish_closed(record.name, None, instance_closed=last)

    def lifecycle_closed(self, life: Lifecycle) -> None:
        """*life*'s provider actor has finished and closed its instance."""
        if life.closing_name:
            self._publish_closed(life.closing_name, life.close_error, instance_closed=True)

    def _publish_closed(self, name: str, error: str | None, *, instance_closed: bool) -> None:
        if name not in self.providers:  # else the name is taken again: ambiguous
            self.publish(
                ProviderClosed(
                    name=name,
                    time=trio.current_time(),
                    error=error,
                    instance_closed=instance_closed,
                )
            )

    def escalate(self, error: BaseException) -> None:
        """Make the registry raise *error*: cancel everything; ``open_registry`` raises it
        bare once everything has stopped."""
        if self.escalation is None:
            self.escalation = error
        self.nursery.cancel_scope.cancel()

    # -- shutdown ------------------------------------------------------------------------

    async def stop_all(self) -> None:
        """Stop every provider in reverse registration order, each under its deadline.

        Runs shielded: leaving the registry must close providers even when the block is
        being cancelled. Each provider's ``aclose`` runs under its own deadline
        (``close_timeout``) inside its actor, so a slow ``aclose`` is cut short; only one
        that ignores cancellation altogether can hold up the exit.
        """
        with trio.CancelScope(shield=True):
            if self.fleet is not None:
                # First, while its reports can still be judged against the breakers
                # they are about: a 429 seen just before the exit reaches the fleet.
                await self.fleet.aclose()
            for record in reversed(list(self.providers.values())):
                del self.providers[record.name]
                life = record.lifecycle
                self._detach(record)
                if not life.records and life.done is not None:
                    await life.done.wait()  # its instance closed
            while self.breaker_actors:  # the rest have been told to stop
                await self._breakers_done.wait()
            self.providers.clear()
            self.plans.clear()
            self.mock_plans.clear()
            self.bus.close()
            self.signal_change()  # wake wait_ready() callers, who will find it closed
