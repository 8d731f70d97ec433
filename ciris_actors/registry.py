"""The public handle: :func:`open_registry` and :class:`Registry`, a facade.

It checks arguments and delegates: the routing table, the resolve walk, permits and the
actors are the supervisor's (``_actors``); outcomes and ``call``'s loop are
``_lease``'s; views are ``_views``'; inspection is ``_inspect``'s; resolve observation
is ``_observe``'s; OpenTelemetry spans are ``_trace``'s. Resolves run synchronously on
the routing table and never wait on a mailbox or a health check; every mutation checks
every argument before changing anything.
"""

from __future__ import annotations

import functools
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio

from . import _inspect, _trace
from ._actors.messages import BreakerMessage
from ._actors.record import ProviderRecord
from ._actors.supervisor import RegistrySupervisor, Resolve
from ._errors import (
    Attempt,
    DuplicateProviderError,
    NoServiceAvailable,
    RegistryError,
    RetryBudgetExhausted,
)
from ._lease import (
    Lease,
    Outcome,
    Ticket,
    call_with_failover,
    settle,
    settle_error,
    settle_ticket,
)
from ._nursery import unwrap_single_exception
from ._observe import Observation, ResolveObserver
from ._types import (
    GLOBAL,
    CircuitState,
    Priority,
    SelectionStrategy,
    check_duration,
    coerce_capabilities,
    coerce_group,
    coerce_priority,
    coerce_strategy,
)
from ._validators import count, seconds
from ._views import ProviderView, view_of
from .breaker import CircuitBreaker, CircuitBreakerConfig
from .budget import RetryBudget
from .events import EventSubscription, RegistryEvent
from .fleet import FleetLink, FleetStatus
from .outcomes import Classifier
from .restart import RestartPolicy
from .selection import available

__all__ = ["Registry", "open_registry"]

T = TypeVar("T")
_CLOSED = CircuitState.CLOSED
_NO_CAPS: frozenset[str] = frozenset()
#: ``admit``'s default *exclude*: nothing to look up.
_NOTHING: tuple[str, ...] = ()


class _Keep:
    """The default of an argument whose ``None`` means something: leave it as it is."""

    def __repr__(self) -> str:
        return "<unchanged>"


_KEEP = _Keep()


class Registry:
    """The handle applications use: register providers, resolve, lease, call, inspect.

    Obtained from :func:`open_registry`; valid until that block exits. Every synchronous
    method has taken effect when it returns.
    """

    def __init__(
        self,
        supervisor: RegistrySupervisor | None = None,
        *,
        required_services: tuple[str, ...] = (),
        default_breaker: CircuitBreakerConfig | None = None,
        allow_mock_services: bool = False,
    ) -> None:
        if not isinstance(supervisor, RegistrySupervisor):
            raise TypeError(
                "a Registry is not made directly: use `async with open_registry() as"
                " registry:` inside `trio.run`"
            )
        if default_breaker is None:
            default_breaker = CircuitBreakerConfig()
        self._sup = supervisor
        self._required_services = required_services
        self._default_breaker = default_breaker
        self._allow_mock = allow_mock_services
        self._closed = False
        self._caps_cache: dict[object, frozenset[str]] = {}
        #: The resolve every path calls: the supervisor's walk, or an observer's wrapper
        #: of it while a :class:`ResolveObserver` is attached (see ``_observe``).
        self._resolve: Resolve = supervisor.resolve
        self._observation = Observation(
            supervisor.resolve, supervisor.counting_resolve, supervisor.resolve_stats, self._use
        )

    def _use(self, resolve: Resolve) -> None:
        self._resolve = resolve

    # -- registration -------------------------------------------------------------------

    def register(
        self,
        handler: str,
        service_type: str,
        provider: object,
        priority: Priority | str | int = Priority.NORMAL,
        capabilities: Iterable[str] | None = None,
        circuit_breaker_config: CircuitBreakerConfig | None = None,
        metadata: Mapping[str, Any] | None = None,
        priority_group: int = 0,
        strategy: SelectionStrategy | str = SelectionStrategy.FALLBACK,
        name: str | None = None,
        *,
        mock: bool = False,
        classify: Classifier | None = None,
        weight: float = 1.0,
        max_in_flight: int | None = None,
    ) -> str:
        """Register *provider* for *handler* (``"*"``: every handler) and start its actor.

        A provider without ``start()`` (or ``__aenter__``) and without ``is_healthy()`` is
        routable at once; otherwise once started and its first health check has passed.

        Args:
          handler: the handler name, or ``"*"`` for a global provider.
          service_type: e.g. ``"llm"``.
          provider: the instance handed out by resolves.
          priority: a :class:`Priority` or its name.
          capabilities: the capabilities it offers (an iterable of strings).
          circuit_breaker_config: its breaker's configuration (default: the registry's).
          metadata: JSON-ready data shown by :meth:`get_provider_info`.
          priority_group: its group (>= 0; lower groups are tried first).
          strategy: the group's strategy if this provider comes first in the group.
          name: a stable unique name; generated when ``None``.
          mock: only ever handed out by :meth:`get_service_with_fallback`.
          classify: what an error from this provider means (see
            :class:`~ciris_actors.outcomes.ErrorClass`), asked before the registry's.
          weight: its share in a WEIGHTED group (a finite number > 0, relative to the
            other members' weights).
          max_in_flight: leases and calls it may have in flight at once (an int >= 1;
            ``None``: no cap); at its cap it is skipped as "at capacity".

        Returns:
          The provider's unique name.

        Raises:
          TypeError: a ``None`` provider, capabilities given as a bare string, or an
            argument of the wrong type.
          ValueError: an unknown priority or strategy name, a negative group, an empty name.
          DuplicateProviderError: *name* is already registered.
          RegistryError: the registry is closed.
        """
        self._check_open()
        if provider is None:
            raise TypeError("provider: must not be None")
        _check_name("handler", handler)
        _check_name("service_type", service_type)
        prio = coerce_priority(priority)
        group = coerce_group(priority_group)
        strat = coerce_strategy(strategy)
        caps = coerce_capabilities(capabilities)
        config = self._default_breaker if circuit_breaker_config is None else circuit_breaker_config
        if not isinstance(config, CircuitBreakerConfig):
            raise TypeError(
                "circuit_breaker_config: expected a CircuitBreakerConfig,"
                f" got {type(config).__name__}"
            )
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"metadata: expected a mapping, got {type(metadata).__name__}")
        _check_classifier(classify)
        share = _weight(weight)
        cap = _cap(max_in_flight)
        if name is not None:
            _check_name("name", name)
            if name in self._sup.providers:
                raise DuplicateProviderError(f"a provider named {name!r} is already registered")
        seq = self._sup.next_seq()
        if name is None:
            name = f"{type(provider).__name__}_{seq}"
            while name in self._sup.providers:
                name = f"{name}_"
        life = self._sup.lifecycle_for(provider)
        record = ProviderRecord(
            name=name,
            instance=provider,
            priority=prio,
            priority_group=group,
            strategy=strat,
            capabilities=caps,
            seq=seq,
            breaker=CircuitBreaker(name, config, on_transition=self._sup.on_breaker_transition),
            has_health_check=life.has_health_check,
            status=life.status,
            handler=handler,
            service_type=service_type,
            metadata=dict(metadata or {}),
            mock=bool(mock),
            lifecycle=life,
            classify=classify,
            weight=share,
            max_in_flight=cap,
        )
        self._sup.add(record)
        return name

    def register_service(
        self,
        service_type: str,
        provider: object,
        priority: Priority | str | int = Priority.NORMAL,
        capabilities: Iterable[str] | None = None,
        circuit_breaker_config: CircuitBreakerConfig | None = None,
        metadata: Mapping[str, Any] | None = None,
        priority_group: int = 0,
        strategy: SelectionStrategy | str = SelectionStrategy.FALLBACK,
        name: str | None = None,
        *,
        mock: bool = False,
    ) -> str:
        """Register a global provider (handler ``"*"``); see :meth:`register`."""
        return self.register(
            GLOBAL,
            service_type,
            provider,
            priority=priority,
            capabilities=capabilities,
            circuit_breaker_config=circuit_breaker_config,
            metadata=metadata,
            priority_group=priority_group,
            strategy=strategy,
            name=name,
            mock=mock,
        )

    register_global = register_service

    def unregister(self, name: str) -> None:
        """Remove provider *name* from routing now and stop its actors.

        Its ``aclose`` runs in the background under ``close_timeout``.

        Raises:
          UnknownProviderError: no provider has that name.
        """
        self._check_open()
        self._sup.remove(name)

    def update_priority(
        self,
        name: str,
        *,
        priority: Priority | str | int | None = None,
        priority_group: int | None = None,
        strategy: SelectionStrategy | str | None = None,
        weight: float | None = None,
        max_in_flight: int | _Keep | None = _KEEP,
    ) -> None:
        """Change where provider *name* stands, its weight or its cap; effective for the
        next resolve. Arguments left out keep their values.

        Args:
          name: the provider's name.
          priority: its new priority.
          priority_group: its new group.
          strategy: its new strategy (the group's, if it comes first in it).
          weight: its new share in a WEIGHTED group.
          max_in_flight: its new cap on leases and calls in flight (``None``: no cap).

        Raises:
          UnknownProviderError: no provider has that name.
          ValueError, TypeError: a bad value (nothing is changed).
        """
        self._check_open()
        record = self._sup.get(name)
        prio = record.priority if priority is None else coerce_priority(priority)
        group = record.priority_group if priority_group is None else coerce_group(priority_group)
        strat = record.strategy if strategy is None else coerce_strategy(strategy)
        share = record.weight if weight is None else _weight(weight)
        cap = record.max_in_flight if isinstance(max_in_flight, _Keep) else _cap(max_in_flight)
        record.weight = share
        record.max_in_flight = cap
        record.refresh()  # a new cap may make it ready, or not
        self._sup.move(record, prio, group, strat)

    # -- resolving ------------------------------------------------------------------------

    def get_service_nowait(
        self,
        handler: str,
        service_type: str,
        required_capabilities: Iterable[str] | None = None,
        fallback_to_global: bool = True,
    ) -> Any:
        """Return the best available provider instance now, or ``None``.

        The same as :meth:`get_service` without the checkpoint, for hot loops. In
        HALF_OPEN this takes a probe permit: report the outcome with
        :meth:`report_success` / :meth:`report_failure` within ``timeout_duration``.
        """
        if self._closed:
            raise RegistryError("the registry is closed")
        if required_capabilities is None:
            required = _NO_CAPS
        else:
            required = self._required(required_capabilities)
        record = self._resolve(handler, service_type, required, fallback_to_global, ())
        if record is None:
            return None
        if record.breaker.state is not _CLOSED:
            self._sup.take_permit(record)
        return record.instance

    async def get_service(
        self,
        handler: str,
        service_type: str,
        required_capabilities: Iterable[str] | None = None,
        fallback_to_global: bool = True,
    ) -> Any:
        """Return the best available provider instance, or ``None``.

        Order: handler-specific providers, then global ones (unless
        *fallback_to_global* is false); inside each, groups ascending; inside a group,
        priority then registration order, FALLBACK or ROUND_ROBIN. Never awaits a health
        check or a mailbox: one checkpoint, then a synchronous walk.
        """
        await trio.lowlevel.checkpoint()
        return self.get_service_nowait(
            handler, service_type, required_capabilities, fallback_to_global
        )

    def _required(self, capabilities: Iterable[str]) -> frozenset[str]:
        """Validate and convert a capability list, remembering recent conversions: hot
        loops pass the same few lists over and over, and validation costs more than the
        resolve itself."""
        kind = type(capabilities)
        if kind is list or kind is tuple or kind is frozenset:
            key = capabilities if kind is frozenset else tuple(capabilities)
            try:
                cached = self._caps_cache.get(key)
            except TypeError:  # an unhashable item: let validation name it
                cached = None
            if cached is None:
                cached = coerce_capabilities(key, "required_capabilities")
                if len(self._caps_cache) >= 256:
                    self._caps_cache.clear()
                self._caps_cache[key] = cached
            return cached
        return coerce_capabilities(capabilities, "required_capabilities")

    def get_services(
        self,
        handler: str,
        service_type: str,
        required_capabilities: Iterable[str] | None = None,
    ) -> list[Any]:
        """Every available provider instance for the request, in selection order
        (handler-specific before global), without admitting any: for broadcasting to all
        of them. Nothing is recorded; report outcomes with :meth:`report_success` /
        :meth:`report_failure` if wanted.

        Raises:
          TypeError: a bad capability list.
          RegistryError: the registry is closed.
        """
        self._check_open()
        required = coerce_capabilities(required_capabilities, "required_capabilities")
        plans = self._sup.plans
        now = self._sup.now()
        found: list[Any] = []
        for scope in (handler, GLOBAL) if handler != GLOBAL else (GLOBAL,):
            plan = plans.get((scope, service_type))
            if plan is not None:
                found += [record.instance for record in available(plan, required, now)]
        return found

    @asynccontextmanager
    async def lease(
        self,
        handler: str,
        service_type: str,
        required_capabilities: Iterable[str] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the public contract's name
    ) -> AsyncIterator[Any]:
        """Lease the best available provider for the duration of the block.

        Takes a half-open probe permit when needed and runs the block under the breaker's
        ``timeout_duration`` (or *timeout*). A normal exit records a success; an exception
        or the deadline records a failure (the deadline raises ``trio.TooSlowError``); a
        cancellation from outside records neither and returns the permit. Traced as a
        ``ciris.lease`` span when OpenTelemetry has a tracer provider (docs/tracing.md).

        Raises:
          NoServiceAvailable: nothing is available (its message names every candidate).
        """
        self._check_open()
        limit = check_duration(timeout, "timeout", allow_none=True)
        required = coerce_capabilities(required_capabilities, "required_capabilities")
        await trio.lowlevel.checkpoint()
        self._check_open()
        if _trace.installed:
            tracer = _trace.tracer()
            if tracer is not None:

                def no_service() -> NoServiceAvailable:
                    return self._no_service(handler, service_type, required, [], [])

                with _trace.lease(
                    tracer,
                    self._sup,
                    self._resolve,
                    no_service,
                    handler,
                    service_type,
                    required,
                    limit,
                ) as instance:
                    yield instance
                return
        record = self._resolve(handler, service_type, required, True, ())
        if record is None:
            raise self._no_service(handler, service_type, required, [], [])
        with Lease(self._sup, record, limit) as lease:
            yield lease.instance

    async def call(
        self,
        handler: str,
        service_type: str,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        required_capabilities: Iterable[str] | None = None,
        max_attempts: int | None = None,
        wait: float | None = None,
        hedge_after: float | None = None,
    ) -> T:
        """Return ``await fn(instance, *args)``, failing over on failure.

        Each attempt runs through a lease (breaker deadline, outcome recorded). What an
        error means is its class (see :class:`~ciris_actors.outcomes.ErrorClass`): a
        failure, a rate limit or a disable moves on to the next available provider; a
        reroute moves on to providers that also have the capabilities it requires; an
        ignored error or one classified as a success is raised at once. No provider is
        tried twice in one call. Traced as a ``ciris.call`` span with a ``ciris.attempt``
        span per attempt when OpenTelemetry has a tracer provider (docs/tracing.md).

        Args:
          handler: the handler asking.
          service_type: the service type wanted.
          fn: called as ``fn(instance, *args)``; must return an awaitable.
          args: passed to *fn* after the instance.
          required_capabilities: capabilities the provider must have.
          max_attempts: providers to try at most (``None``: every available one).
          wait: when nothing is available, wait up to this many seconds in all for a
            provider to admit again (woken by the earliest breaker deadline, or when
            routing or a breaker's state changes) instead of failing at once.
          hedge_after: after this many seconds without an answer, start a second attempt
            on the next available provider; the first answer wins and the other attempt
            is cancelled (recorded as neither success nor failure). Never more than two
            in flight, never one provider twice. ``None``: no hedging.

        Raises:
          NoServiceAvailable: every available provider failed (or none was available, or
            *max_attempts* ran out, or *wait* passed). It lists every attempt; its
            ``__cause__`` is the last error; its ``retry_after`` says when the earliest
            skipped provider admits again.
          ValueError: *max_attempts* is below 1, or *wait* is negative or NaN.
          TypeError: *max_attempts* is not an int; *fn* is not callable or does not
            return an awaitable (no outcome is recorded: that is the caller's bug, not
            the provider's).
        """
        self._check_open()
        if not callable(fn):
            raise TypeError(f"fn: expected an async callable, got {type(fn).__name__}")
        if max_attempts is not None:
            count(max_attempts, "max_attempts")
        limit = None if wait is None else seconds(wait, "wait", inclusive=True, infinite=True)
        hedge = None if hedge_after is None else seconds(hedge_after, "hedge_after")
        required = coerce_capabilities(required_capabilities, "required_capabilities")
        await trio.lowlevel.checkpoint()
        self._check_open()

        def no_service(
            needed: frozenset[str], tried: list[ProviderRecord], attempts: list[Attempt]
        ) -> NoServiceAvailable:
            return self._no_service(handler, service_type, needed, tried, attempts)

        run: Callable[..., Awaitable[T]] = call_with_failover
        if _trace.installed:
            tracer = _trace.tracer()
            if tracer is not None:
                run = functools.partial(_trace.call, tracer)
        return await run(
            self._sup,
            self._resolve,
            no_service,
            handler,
            service_type,
            required,
            fn,
            args,
            max_attempts,
            limit,
            hedge,
        )

    def _no_service(
        self,
        handler: str,
        service_type: str,
        required: frozenset[str],
        tried: list[ProviderRecord],
        attempts: list[Attempt],
    ) -> NoServiceAvailable:
        return _inspect.no_service(
            self._sup.plans, handler, service_type, required, tried, attempts, trio.current_time()
        )

    async def get_service_with_fallback(self, handler: str, service_type: str) -> Any:
        """Like :meth:`get_service`, then, in degraded mode, a mock provider.

        Providers registered with ``mock=True`` are handed out only here, and only when
        the registry was opened with ``allow_mock_services=True``.
        """
        service = await self.get_service(handler, service_type)
        if service is not None or not self._allow_mock:
            return service
        sup = self._sup
        record = sup.mock_resolve(handler, service_type, _NO_CAPS, True, ())
        if record is None:
            return None
        if record.breaker.state is not _CLOSED:
            sup.take_permit(record)
        return record.instance

    def admit(
        self,
        handler: str,
        service_type: str,
        required_capabilities: Iterable[str] | None = None,
        *,
        exclude: Iterable[str] = _NOTHING,
        fallback_to_global: bool = True,
        timeout: float | None = None,
        retry: bool | None = None,
    ) -> Ticket | None:
        """Choose a provider for a call and admit it, without waiting: what ``lease`` does
        on entry, for callers that run the call themselves (an event loop, a simulator).

        Report how the call went with :meth:`settle`, once, before the ticket's
        ``deadline``: settled at or after it, the call counts as a failure (it overran,
        as a lease's deadline would count it). A ticket admitted in HALF_OPEN holds a
        probe permit: unsettled at its deadline, the registry counts the call as a
        failure then, and a later settle records nothing. A ticket admitted in CLOSED
        that is never settled records nothing.

        Args:
          handler: the handler asking (``"*"``: global providers only).
          service_type: the service type wanted.
          required_capabilities: capabilities the provider must have.
          exclude: names of providers not to choose (those already tried); names no
            longer registered are ignored.
          fallback_to_global: try global providers after the handler's own.
          timeout: seconds the call may take (default: the breaker's
            ``timeout_duration``); sets the ticket's ``deadline``.
          retry: for a caller that fails over as ``call`` does, under the registry's
            retry budget (``open_registry(retry_budget=)``): ``False``, the admission is
            a call's first attempt, and the budget counts it; ``True``, it is a retry,
            which the budget may refuse. ``None`` (the default), or a registry without
            a budget: the budget is not consulted.

        Returns:
          A :class:`Ticket`, or ``None`` when no provider is available.

        Raises:
          RetryBudgetExhausted: *retry* is ``True`` and the budget refused it: as in
            ``call``, the provider chosen is released untouched (nothing is admitted),
            ``RetryRefused`` is published and ``routing_stats()`` counts it.
          RegistryError: the registry is closed.
          TypeError, ValueError: a bad capability list, *exclude*, *timeout* or *retry*
            (nothing is admitted).
        """
        self._check_open()
        required = (
            _NO_CAPS if required_capabilities is None else self._required(required_capabilities)
        )
        limit = None if timeout is None else check_duration(timeout, "timeout")
        tried = () if exclude is _NOTHING else self._excluded(exclude)
        if retry is not None and not isinstance(retry, bool):
            raise TypeError(f"retry: expected True, False or None, got {type(retry).__name__}")
        record = self._resolve(handler, service_type, required, fallback_to_global, tried)
        if record is None:
            return None
        budget = self._sup.retry_budget
        if retry is not None and budget is not None:
            if not retry:
                budget.first_attempt(self._sup.now())
            elif not budget.try_retry(self._sup.now()):
                # As ``call`` does: the provider goes back untouched (its permit too).
                record.breaker.release(record.breaker.generation)
                self._sup.retry_refused(record, handler, service_type)
                raise RetryBudgetExhausted(f"the retry budget refused a retry on {record.name!r}")
        limit = record.breaker.config.timeout_duration if limit is None else limit
        permit = None
        if record.breaker.state is not _CLOSED:
            permit = self._sup.take_permit(record, owned=True, timeout=limit)
        now = self._sup.now()
        return Ticket(self._sup, record, now, now + limit, permit)

    def _excluded(self, exclude: Iterable[str]) -> list[ProviderRecord]:
        """The registered providers among *exclude* (names no longer registered are
        ignored: they cannot be chosen anyway)."""
        providers = self._sup.providers
        try:
            if isinstance(exclude, str):
                raise TypeError
            return [providers[name] for name in exclude if name in providers]
        except TypeError:
            raise TypeError(
                "exclude: expected an iterable of provider names,"
                f" got {type(exclude).__name__}"
                + (" (a single name: put it in a list)" if isinstance(exclude, str) else "")
            ) from None

    def settle(
        self, ticket: Ticket, outcome: Outcome | str, *, error: BaseException | None = None
    ) -> None:
        """Record how the call of *ticket* (from :meth:`admit`) went.

        Args:
          ticket: the ticket, settled once.
          outcome: ``Outcome.SUCCESS``, ``Outcome.FAILURE`` (an error), or
            ``Outcome.NONE`` (it never reached the provider, or was cancelled); or the
            value's string. At or after the ticket's deadline, a failure is recorded
            whatever the outcome.
          error: for a failure, the error the call raised: recorded as its class says
            (the provider's classifier, then the registry's).

        Raises:
          RegistryError: the ticket was settled already, or the registry is closed.
          TypeError: *ticket* is not a :class:`Ticket`, *outcome* not an outcome, or
            *error* not an exception.
          ValueError: *outcome* is no outcome's value, another registry admitted
            *ticket*, or an *error* came with an outcome that is not a failure.
        """
        self._check_open()
        if not isinstance(ticket, Ticket):
            raise TypeError(f"ticket: expected a Ticket, got {type(ticket).__name__}")
        result = _outcome(outcome)
        _check_error(error, result)
        settle_ticket(self._sup, ticket, result, self._sup.now(), error)

    # -- outcomes -------------------------------------------------------------------------

    def report_success(self, name: str) -> None:
        """Record that a call to provider *name* (from ``get_service``) succeeded.

        Returns the oldest outstanding half-open probe permit, if any.

        Raises:
          UnknownProviderError: no provider has that name.
        """
        self._report(name, Outcome.SUCCESS)

    def report_failure(self, name: str, error: BaseException | None = None) -> None:
        """Record that a call to provider *name* (from ``get_service``) failed.

        Returns the oldest outstanding half-open probe permit, if any.

        Args:
          name: the provider's name.
          error: the error the call raised: recorded as its class says (the provider's
            classifier, then the registry's); without it, a plain failure.

        Raises:
          UnknownProviderError: no provider has that name.
          TypeError: *error* is not an exception (nothing is recorded).
        """
        if error is None:
            self._report(name, Outcome.FAILURE)
            return
        _check_error(error, Outcome.FAILURE)
        self._check_open()
        sup = self._sup
        record = sup.get(name)
        error_class = sup.classify_error(record, error)
        settle_error(sup, record, sup.return_permit(record), error_class, sup.now())

    def _report(self, name: str, outcome: Outcome) -> None:
        self._check_open()
        record = self._sup.get(name)
        settle(record, self._sup.return_permit(record), outcome, self._sup.now())

    # -- readiness and health -------------------------------------------------------------

    async def wait_ready(
        self,
        timeout: float = 30.0,  # noqa: ASYNC109 - the public contract's name
        service_types: Iterable[str] | None = None,
    ) -> bool:
        """Wait until every required service type has a routable provider.

        Args:
          timeout: seconds to wait at most (``math.inf``, or an int too large for a float:
            no limit).
          service_types: the types to wait for (default: the registry's
            ``required_services``).

        Returns:
          ``True`` once ready, ``False`` if *timeout* passed first. Event-driven: it wakes
          when routability changes, never polls.

        Raises:
          RegistryError: the registry is closed, or closes while this waits.
        """
        self._check_open()
        limit = seconds(timeout, "timeout", infinite=True)
        types = (
            self._required_services
            if service_types is None
            else _ordered_names(service_types, "service_types")
        )
        with trio.move_on_after(limit):
            fleet = self._sup.fleet
            if fleet is not None:
                await fleet.synced.wait()  # what the fleet holds, before routing
                self._check_open()
            while not self._ready(types):
                await self._sup.wait_change()
                self._check_open()
            await trio.lowlevel.checkpoint()
            return True
        return False

    def _ready(self, service_types: Iterable[str]) -> bool:
        routable = {
            r.service_type for r in self._sup.providers.values() if r.routable and not r.mock
        }
        return all(t in routable for t in service_types)

    async def health_check_all(self) -> dict[str, bool]:
        """Run every provider's ``is_healthy`` concurrently, each under its
        ``timeout_duration``; a timeout or an exception counts as unhealthy.

        An instance registered several times is checked once; its result is listed
        under each registration.

        Returns:
          ``{"handler.service_type.name": healthy}`` (handler ``"*"`` for global
          providers); providers without ``is_healthy`` are omitted.
        """
        self._check_open()
        # One check per instance, however many registrations point at it.
        leads = {
            id(r.lifecycle): r for r in reversed(list(self._sup.records())) if r.has_health_check
        }
        results: dict[str, bool] = {}

        async def check(lead: ProviderRecord) -> None:
            records = list(lead.lifecycle.records)
            healthy = await self._sup.check_health(lead)
            for record in records:
                results[f"{record.handler}.{record.service_type}.{record.name}"] = healthy

        async with trio.open_nursery() as nursery:
            for lead in leads.values():
                nursery.start_soon(check, lead)
        return {k: results[k] for k in sorted(results)}

    # -- inspection ---------------------------------------------------------------------

    def snapshot(
        self, handler: str | None = None, service_type: str | None = None
    ) -> tuple[ProviderView, ...]:
        """Frozen views of the registered providers, as they are now.

        Args:
          handler: only the providers a resolve for this handler considers: its own,
            then the global ones. ``None``: every provider.
          service_type: only providers of this type.

        Returns:
          The views in selection order: by service type; handler-specific providers (by
          handler) before global ones; mock providers last; then group, priority and
          registration order.
        """
        self._check_open()
        now = trio.current_time()
        return tuple(
            view_of(record, now)
            for record in self._sup.ordered()
            if (service_type is None or record.service_type == service_type)
            and (handler is None or record.handler in (handler, GLOBAL))
        )

    def view(self, name: str) -> ProviderView:
        """The frozen view of provider *name* now.

        Raises:
          UnknownProviderError: no provider has that name.
        """
        self._check_open()
        return view_of(self._sup.get(name), self._sup.now())

    @property
    def routing_version(self) -> int:
        """A number that changes whenever the routing table does (a provider registered,
        unregistered or moved), so what is derived from it can be cached."""
        return self._sup.version

    def routing_stats(self) -> dict[str, Any]:
        """What the opt-in routing features have done so far (JSON-ready):
        ``spilled`` (resolves proportional spillover sent past the first group, per
        service type), ``retries_refused`` (failover attempts the retry budget refused),
        ``hedges_started`` and ``hedges_won`` (second attempts of hedged calls, and those
        that answered first).

        Raises:
          RegistryError: the registry is closed.
        """
        self._check_open()
        sup = self._sup
        budget = sup.retry_budget
        return {
            "spilled": dict(sorted(sup.spilled.items())),
            "retries_refused": 0 if budget is None else budget.refused,
            "hedges_started": sup.hedges_started,
            "hedges_won": sup.hedges_won,
        }

    @property
    def state_version(self) -> int:
        """A number that changes whenever anything a resolve reads about a provider may
        have changed, except the passing of time and half-open probe counts: the routing
        table, a breaker's state, deadline or configuration, a health verdict, an actor's
        status.

        A reader can cache what it derives from views against it, re-reading a provider
        whose breaker is HALF_OPEN (its probes in flight change without it) and judging an
        OPEN breaker's availability from its ``next_attempt_time`` (the simulator's
        invariant checker does both).
        """
        return self._sup.state_version

    def observe(self) -> ResolveObserver:
        """Attach a :class:`ResolveObserver`: count (and, when armed, time) resolves
        until it is detached. While none is attached, resolves pay nothing for it.

        Raises:
          RegistryError: the registry is closed.
        """
        self._check_open()
        return ResolveObserver(self._observation, self._sup.providers.values)

    def get_provider_info(
        self, handler: str | None = None, service_type: str | None = None
    ) -> dict[str, Any]:
        """Describe the registered providers (JSON-ready).

        Args:
          handler: only this handler's providers under ``"handlers"``; global providers
            are always listed.
          service_type: only providers of this type.

        Returns:
          ``{"handlers": {handler: {service_type: [provider, ...]}}, "global_services":
          {service_type: [provider, ...]}, "circuit_breaker_stats": {name: stats}}``,
          each list in selection order.
        """
        return _inspect.provider_info(self.snapshot(), handler, service_type)

    def health_status(self) -> dict[str, Any]:
        """Summarise health (JSON-ready).

        ``overall_health`` is ``"critical"`` when a required service type (every
        registered type, if none is required) has no available provider, ``"degraded"``
        when any provider is unhealthy, failed, restarting or its breaker is not closed,
        else ``"healthy"``. A provider never checked (or without ``is_healthy``) counts
        as unknown, not healthy.
        """
        return _inspect.health_status(self.snapshot(), self._required_services)

    def explain(
        self,
        handler: str,
        service_type: str,
        required_capabilities: Iterable[str] | None = None,
        fallback_to_global: bool = True,
    ) -> _inspect.SelectionExplanation:
        """Walk the live selection for a request without admitting anything.

        Every candidate in order with the reason it would be chosen or skipped; ``str()``
        of the result is a readable table.
        """
        self._check_open()
        required = coerce_capabilities(required_capabilities, "required_capabilities")
        return _inspect.explain(
            self._sup.plans,
            handler,
            service_type,
            required,
            fallback_to_global,
            trio.current_time(),
            self._sup.overprovisioning_factor,
        )

    # -- control --------------------------------------------------------------------------

    def reset_circuit_breakers(self, service_type: str | None = None) -> int:
        """Reset every breaker (or those of *service_type*) to a fresh CLOSED state.

        Returns:
          How many breakers were reset.
        """
        self._check_open()
        count = 0
        for record in self._sup.records():
            if service_type is None or record.service_type == service_type:
                self._reset(record)
                count += 1
        return count

    def reset_circuit_breaker(self, name: str) -> None:
        """Reset provider *name*'s breaker (also undoes :meth:`force_open`).

        Raises:
          UnknownProviderError: no provider has that name.
        """
        self._check_open()
        self._reset(self._sup.get(name))

    def _reset(self, record: ProviderRecord) -> None:
        record.permits.clear()
        record.breaker.reset(trio.current_time())
        self._sup.state_version += 1
        record.tell(BreakerMessage.RESET)
        if self._sup.fleet is not None:
            self._sup.fleet.reset(record)

    def force_open(self, name: str, duration: float | None = None) -> None:
        """Hold provider *name*'s breaker OPEN for *duration* seconds (default: its
        ``recovery_timeout``); :meth:`reset_circuit_breaker` undoes it.

        Raises:
          UnknownProviderError: no provider has that name.
          ValueError: *duration* is not a finite number > 0.
        """
        self._check_open()
        record = self._sup.get(name)
        check_duration(duration, "duration", allow_none=True)
        now = trio.current_time()
        record.breaker.force_open(now, duration)
        self._sup.state_version += 1
        record.tell(BreakerMessage.FORCE_OPEN)
        if self._sup.fleet is not None:
            self._sup.fleet.forced(record, now)

    def update_circuit_breaker(self, name: str, config: CircuitBreakerConfig) -> None:
        """Replace provider *name*'s breaker configuration; its actor re-arms its timers.

        Raises:
          UnknownProviderError: no provider has that name.
          TypeError: *config* is not a :class:`CircuitBreakerConfig`.
        """
        self._check_open()
        record = self._sup.get(name)
        record.breaker.configure(config, trio.current_time())
        self._sup.state_version += 1
        record.tell(BreakerMessage.CONFIG_CHANGED)

    def fleet_status(self) -> FleetStatus | None:
        """This registry's fleet link as last seen: node id, whether the store is
        reachable, the last full read, the propagation lag, verdicts sent and received.
        ``None`` without a fleet."""
        self._check_open()
        fleet = self._sup.fleet
        return None if fleet is None else fleet.status()

    @asynccontextmanager
    async def events(
        self, max_buffer: int = 1000, types: Iterable[type[RegistryEvent]] | None = None
    ) -> AsyncIterator[EventSubscription]:
        """Subscribe to the registry's events for the duration of the block.

        Args:
          max_buffer: events held for this subscriber; past it the oldest are dropped and
            the subscriber receives an :class:`EventsDropped` saying how many.
          types: deliver only events of these classes (or their subclasses); ``None``:
            every event. The filter applies before buffering, so events filtered out
            never take a wanted event's place in the buffer. :class:`EventsDropped` is
            always delivered.

        Yields:
          A receive channel of :class:`RegistryEvent`; iterate it with ``async for``.
        """
        self._check_open()
        with self._sup.bus.subscribe(max_buffer, types) as subscription:
            await trio.lowlevel.checkpoint()
            yield subscription

    # -- internals ------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the registry's block has exited."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise RegistryError("the registry is closed")

    def _close(self) -> None:
        self._closed = True
        self._observation.close()


def _ordered_names(value: object, field: str) -> tuple[str, ...]:
    """Validate an iterable of names (as capabilities are) and keep its order, once each."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        coerce_capabilities(value, field)  # raises, naming the field
        raise AssertionError("unreachable")  # pragma: no cover
    items: tuple[str, ...] = tuple(value)
    coerce_capabilities(items, field)
    return tuple(dict.fromkeys(items))


def _weight(value: object) -> float:
    return seconds(value, "weight")  # a finite number > 0, as a duration is


def _cap(value: object) -> int | None:
    return None if value is None else count(value, "max_in_flight")


def _check_classifier(classify: object, field: str = "classify") -> None:
    if classify is not None and not callable(classify):
        raise TypeError(
            f"{field}: expected a callable taking an exception, got {type(classify).__name__}"
        )


def _check_error(error: object, outcome: Outcome) -> None:
    if error is None:
        return
    if not isinstance(error, BaseException):
        raise TypeError(f"error: expected an exception, got {type(error).__name__}")
    if outcome is not Outcome.FAILURE:
        raise ValueError(f"error: given with outcome {outcome.value!r}; only a failure has one")


def _outcome(value: object) -> Outcome:
    if isinstance(value, Outcome):
        return value
    if isinstance(value, str):
        try:
            return Outcome(value.strip().lower())
        except ValueError:
            pass
        known = ", ".join(o.value for o in Outcome)
        raise ValueError(f"outcome: unknown outcome {value!r} (expected one of {known})")
    raise TypeError(f"outcome: expected an Outcome or its value, got {type(value).__name__}")


def _check_trio() -> None:
    """Raise a clear error when not inside a trio run (under asyncio, say)."""
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        raise RuntimeError(
            "ciris_actors runs on trio: use `async with open_registry()` inside `trio.run`"
            " (no trio run is active in this thread; asyncio is not supported)"
        ) from None


def _check_name(field: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{field}: expected a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{field}: must not be empty")


@asynccontextmanager
async def open_registry(
    required_services: Iterable[str] = (),
    health_check_interval: float | None = 10.0,
    restart_policy: RestartPolicy | None = None,
    default_breaker: CircuitBreakerConfig | None = None,
    *,
    allow_mock_services: bool = False,
    close_timeout: float = 5.0,
    seed: int | None = None,
    classify: Classifier | None = None,
    overprovisioning_factor: float | None = None,
    retry_budget: RetryBudget | None = None,
    fleet: FleetLink | None = None,
) -> AsyncIterator[Registry]:
    """Open a registry whose provider actors live in this block.

    Leaving the block stops every provider in reverse registration order, each
    ``aclose`` under *close_timeout*, and leaves no task behind.

    Args:
      required_services: service types :meth:`Registry.wait_ready` waits for.
      health_check_interval: seconds between health checks (``None``: only the first
        check after each start).
      restart_policy: how crashed providers are restarted (default :class:`RestartPolicy`).
      default_breaker: breaker configuration for providers registered without one.
      allow_mock_services: let :meth:`Registry.get_service_with_fallback` hand out mocks.
      close_timeout: deadline for each provider's ``aclose`` at exit or unregister.
      seed: seed of the restart back-off jitter and of the random picks of
        LEAST_OUTSTANDING and LATENCY groups, for reproducible runs.
      overprovisioning_factor: proportional spillover between groups (Envoy uses
        1.4): a group whose available share of members times this falls below 1 sends
        that missing share of resolves to the next group. ``None`` (the default): groups
        are all-or-nothing, as in the seed.
      retry_budget: a :class:`RetryBudget` capping ``call``'s failover attempts across
        the registry (``None``: no cap, as in the seed).
      classify: what an error from a provider means (see
        :class:`~ciris_actors.outcomes.ErrorClass`), asked after the provider's own
        classifier; ``None`` from both means a failure.
      fleet: share verdicts about providers with registries in other processes
        (:class:`~ciris_actors.fleet.RedisFleet`, or a node of a
        :class:`~ciris_actors.fleet.MemoryFleet`); providers are matched by name.
        ``None`` (the default): this registry decides alone. See ``docs/fleet.md``.

    Raises:
      RuntimeError: not called inside a trio run (ciris_actors runs on trio only).
      ValueError, TypeError: a bad argument (before anything starts).
      RegistryError: a provider exceeded its restart intensity under
        ``RestartPolicy(escalate=True)``.
    """
    _check_trio()
    required = _ordered_names(required_services, "required_services")
    interval = check_duration(health_check_interval, "health_check_interval", allow_none=True)
    policy = RestartPolicy() if restart_policy is None else restart_policy
    if not isinstance(policy, RestartPolicy):
        raise TypeError(f"restart_policy: expected a RestartPolicy, got {type(policy).__name__}")
    breaker = CircuitBreakerConfig() if default_breaker is None else default_breaker
    if not isinstance(breaker, CircuitBreakerConfig):
        raise TypeError(
            f"default_breaker: expected a CircuitBreakerConfig, got {type(breaker).__name__}"
        )
    close = seconds(close_timeout, "close_timeout")
    _check_classifier(classify)
    if retry_budget is not None and not isinstance(retry_budget, RetryBudget):
        raise TypeError(f"retry_budget: expected a RetryBudget, got {type(retry_budget).__name__}")
    if fleet is not None and not isinstance(fleet, FleetLink):
        raise TypeError(
            "fleet: expected a fleet link (a RedisFleet, or MemoryFleet.node(...)), "
            f"got {type(fleet).__name__}"
        )
    factor = (
        None
        if overprovisioning_factor is None
        else seconds(
            overprovisioning_factor, "overprovisioning_factor", minimum=1.0, inclusive=True
        )
    )

    supervisor: RegistrySupervisor | None = None
    try:
        # Actors never raise into this nursery, so a group from it holds the block's own
        # exception (or Cancelled): it is given back unwrapped.
        with unwrap_single_exception():
            async with trio.open_nursery() as nursery:
                supervisor = RegistrySupervisor(
                    nursery,
                    restart_policy=policy,
                    health_check_interval=interval,
                    close_timeout=close,
                    rng=random.Random(seed),
                    classify=classify,
                    routing_rng=random.Random(None if seed is None else f"{seed}/routing"),
                    overprovisioning_factor=factor,
                    retry_budget=retry_budget,
                    actor_context=_trace.actor_context if _trace.installed else None,
                )
                if fleet is not None:
                    supervisor.start_fleet(fleet)
                registry = Registry(
                    supervisor,
                    required_services=required,
                    default_breaker=breaker,
                    allow_mock_services=allow_mock_services,
                )
                try:
                    yield registry
                finally:
                    registry._close()
                    await supervisor.stop_all()
    except BaseException:
        # A provider's KeyboardInterrupt or SystemExit wins over whatever the block
        # raised when it was cancelled because of it.
        if supervisor is not None and isinstance(
            supervisor.escalation, (KeyboardInterrupt, SystemExit)
        ):
            raise supervisor.escalation from None
        raise
    if supervisor is not None and supervisor.escalation is not None:
        raise supervisor.escalation
