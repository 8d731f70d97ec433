"""Outcomes of calls to providers: :func:`settle` (the one synchronous function that
records what a call to a provider came to), the lease that runs one call under its
breaker's deadline, and :func:`call_with_failover`, ``Registry.call``'s loop.
"""

from __future__ import annotations

import enum
import inspect
import math
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Literal, TypeVar

import trio

from ._actors.record import OUTCOMES, Permit, ProviderRecord
from ._actors.supervisor import RegistrySupervisor, Resolve
from ._errors import Attempt, NoServiceAvailable, RegistryError, RetryBudgetExhausted
from .outcomes import ErrorClass, ErrorKind

__all__ = [
    "Lease",
    "Outcome",
    "Ticket",
    "call_with_failover",
    "outcome_word",
    "settle",
    "settle_error",
    "settle_ticket",
]

T = TypeVar("T")


class Outcome(enum.Enum):
    """What one call to a provider came to, for its breaker."""

    #: The provider served the call.
    SUCCESS = "success"
    #: The provider failed the call (an error, or the call's deadline).
    FAILURE = "failure"
    #: No outcome: the call never reached the provider, or was cancelled from outside.
    NONE = "none"


#: Indexes into ``ProviderCounters.outcomes`` (see ``OUTCOMES``).
_SUCCESS, _FAILURE, _TIMEOUT, _CANCELLED = (
    OUTCOMES.index(word) for word in ("success", "failure", "timeout", "cancelled")
)
#: The outcome each error class counts as.
_CLASS_OUTCOME: dict[ErrorKind, int] = {
    ErrorKind.FAILURE: OUTCOMES.index("failure"),
    ErrorKind.SUCCESS: OUTCOMES.index("success"),
    ErrorKind.IGNORE: OUTCOMES.index("ignored"),
    ErrorKind.RATE_LIMITED: OUTCOMES.index("rate_limited"),
    ErrorKind.DISABLE: OUTCOMES.index("disabled"),
    ErrorKind.REROUTE: OUTCOMES.index("rerouted"),
}
#: Classes of error after which ``call`` stops and raises the error itself: the
#: provider did its job (``success``) or the request is at fault (``ignore``).
_FINAL = frozenset({ErrorKind.SUCCESS, ErrorKind.IGNORE})


def settle(
    record: ProviderRecord,
    generation: int,
    outcome: Outcome,
    now: float,
    *,
    timed_out: bool = False,
) -> None:
    """Record *outcome* of a call to *record* admitted at breaker *generation*.

    The one place an outcome without an error class is recorded: leases, ``call``,
    ``report_success`` / ``report_failure`` and the simulator's event engine all come
    here (and to :func:`settle_error` for a classified error), so they cannot drift
    apart. A half-open permit taken at *generation* is returned whatever the outcome.
    Counted per provider (a failure that was the call's own deadline as ``timeout``).
    Synchronous: it never awaits.
    """
    breaker = record.breaker
    if outcome is Outcome.SUCCESS:
        breaker.record_success(now, generation)
        record.counters.outcomes[_SUCCESS] += 1
    elif outcome is Outcome.FAILURE:
        breaker.record_failure(now, generation)
        record.counters.outcomes[_TIMEOUT if timed_out else _FAILURE] += 1
    else:
        breaker.release(generation)


def settle_error(
    sup: RegistrySupervisor,
    record: ProviderRecord,
    generation: int,
    error_class: ErrorClass,
    now: float,
) -> None:
    """Record a call to *record* that raised an error of *error_class*, as the class
    says (see :class:`~ciris_actors.outcomes.ErrorClass`), and publish what a rate limit
    or a disable did. Synchronous."""
    breaker = record.breaker
    kind = error_class.kind
    was_disabled = breaker.disabled
    breaker.record_error(now, error_class, generation)
    record.counters.outcomes[_CLASS_OUTCOME[kind]] += 1
    if kind is ErrorKind.RATE_LIMITED or kind is ErrorKind.DISABLE:
        sup.error_recorded(record, error_class, was_disabled, now)


def outcome_word(error_class: ErrorClass) -> str:
    """The outcome an error of *error_class* counts as (``"rate_limited"``, ...)."""
    return OUTCOMES[_CLASS_OUTCOME[error_class.kind]]


class Ticket:
    """One admission of :meth:`Registry.admit`: the provider chosen for a call, and what
    :meth:`Registry.settle` needs to record how the call went.

    A ticket is settled once. Settled at or after its :attr:`deadline`, it records a
    failure (the call overran), whatever the outcome given. One that holds a half-open
    probe permit and is not settled by its deadline is settled as a failure then, by the
    registry; a later :meth:`Registry.settle` of it records nothing.

    Attributes:
      name: the provider's name.
      instance: the provider instance to call.
      deadline: when the call's time is up (registry clock: admission plus the
        breaker's ``timeout_duration``, or the timeout asked for).
    """

    __slots__ = (
        "_admitted",
        "_generation",
        "_owner",
        "_permit",
        "_record",
        "_settled",
        "deadline",
    )

    def __init__(
        self,
        owner: object,
        record: ProviderRecord,
        admitted: float,
        deadline: float,
        permit: Permit | None,
    ) -> None:
        self._owner = owner
        self._record = record
        self._generation = record.breaker.generation
        self._permit = permit
        self._settled = False
        self._admitted = admitted
        self.deadline = deadline
        record.started()  # in flight until settled

    @property
    def name(self) -> str:
        """The provider's name."""
        return self._record.name

    @property
    def instance(self) -> Any:
        """The provider instance."""
        return self._record.instance

    @property
    def settled(self) -> bool:
        """Whether its outcome has been recorded."""
        return self._settled

    def __repr__(self) -> str:
        return f"<Ticket for {self.name!r}, due {self.deadline:g}>"


def settle_ticket(
    owner: RegistrySupervisor,
    ticket: Ticket,
    outcome: Outcome,
    now: float,
    error: BaseException | None = None,
) -> None:
    """Record *outcome* for *ticket* (``Registry.settle`` of the registry *owner*); a
    failure with its *error* is recorded as the error's class says.

    Raises:
      ValueError: another registry admitted the ticket.
      RegistryError: the ticket was settled already.
    """
    if ticket._owner is not owner:
        raise ValueError(f"ticket: {ticket!r} was admitted by another registry")
    if ticket._settled:
        raise RegistryError(f"{ticket!r} is settled already")
    ticket._settled = True
    record = ticket._record
    permit = ticket._permit
    record.finished(now, None if outcome is Outcome.NONE else now - ticket._admitted)
    if permit is not None:
        if permit.expired:
            return  # the breaker actor settled it as a failure at its deadline
        if permit in record.permits:
            record.permits.remove(permit)
    if now >= ticket.deadline:
        # The call overran its time: a failure, whatever the caller says, as a lease's
        # deadline would have counted it.
        settle(record, ticket._generation, Outcome.FAILURE, now, timed_out=True)
    elif error is not None:
        error_class = owner.classify_error(record, error)
        settle_error(owner, record, ticket._generation, error_class, now)
    else:
        settle(record, ticket._generation, outcome, now)


class Lease:
    """One admitted call: runs under the breaker's deadline and settles its outcome.

    Written as a class rather than a generator-based context manager because it is on
    the ``lease``/``call`` path and must tell the deadline it set apart from a
    cancellation from outside.

    Attributes:
      error_class: what the error the block raised was classified as; ``None`` after a
        normal exit, a timeout or a cancellation.
    """

    __slots__ = (
        "_abandoned",
        "_generation",
        "_limit",
        "_record",
        "_scope",
        "_started",
        "_sup",
        "error_class",
    )

    def __init__(
        self, sup: RegistrySupervisor, record: ProviderRecord, timeout: float | None
    ) -> None:
        self._sup = sup
        self._record = record
        self._generation = record.breaker.generation
        self._limit = record.breaker.config.timeout_duration if timeout is None else timeout
        self._scope: trio.CancelScope | None = None
        self._abandoned = False
        self._started = 0.0
        self.error_class: ErrorClass | None = None
        record.started()  # in flight until settled (its admission was just now)

    @property
    def instance(self) -> Any:
        """The leased provider instance."""
        return self._record.instance

    def abandon(self) -> None:
        """End with no outcome whatever happens: the call never reached the provider."""
        self._abandoned = True

    def __enter__(self) -> Lease:
        self._started = start = trio.current_time()
        self._scope = trio.CancelScope(deadline=start + self._limit)
        self._scope.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        scope = self._scope
        assert scope is not None
        try:
            scope.__exit__(exc_type, exc, tb)
        except BaseException as remaining:
            # The scope took its own Cancelled out of a group (the deadline fired while a
            # task in the body failed) and raised the rest: settle all the same.
            self._settle(remaining, scope.cancelled_caught)
            if scope.cancelled_caught and isinstance(remaining, Exception):
                raise self._too_slow() from remaining
            raise
        self._settle(exc, scope.cancelled_caught)
        if scope.cancelled_caught:
            raise self._too_slow() from exc
        return False

    def _settle(self, exc: BaseException | None, timed_out: bool) -> int | None:
        """Record how the block ended; return the outcome counted (an index into
        ``OUTCOMES``, for a trace), or ``None`` when nothing was (abandoned)."""
        record = self._record
        now = trio.current_time()
        reached = not self._abandoned and (exc is None or isinstance(exc, Exception) or timed_out)
        record.finished(now, now - self._started if reached else None)
        if self._abandoned:
            record.breaker.release(self._generation)
            return None
        if timed_out:
            settle(record, self._generation, Outcome.FAILURE, now, timed_out=True)
            return _TIMEOUT
        if exc is None:
            settle(record, self._generation, Outcome.SUCCESS, now)
            return _SUCCESS
        if isinstance(exc, Exception):
            error_class = self._sup.classify_error(record, exc)
            self.error_class = error_class
            settle_error(self._sup, record, self._generation, error_class, now)
            return _CLASS_OUTCOME[error_class.kind]
        # Cancelled from outside, KeyboardInterrupt, or a group of such: not the
        # provider's doing. The permit goes back; the call counts as cancelled.
        record.breaker.release(self._generation)
        record.counters.outcomes[_CANCELLED] += 1
        return _CANCELLED

    def _too_slow(self) -> trio.TooSlowError:
        return trio.TooSlowError(
            f"call to provider {self._record.name!r} exceeded {self._limit:g}s"
        )


class _NotAwaitable(Exception):
    """``call``'s *fn* returned something that cannot be awaited."""


class _Call:
    """One ``Registry.call``: what it has tried, what came of it, and what it requires
    now (a reroute adds to that)."""

    __slots__ = (
        "args",
        "attempts",
        "fn",
        "give_up",
        "handler",
        "last",
        "make_lease",
        "max_attempts",
        "no_service",
        "required",
        "resolve",
        "service_type",
        "sup",
        "tried",
    )

    def __init__(
        self,
        sup: RegistrySupervisor,
        resolve: Resolve,
        no_service: Callable[
            [frozenset[str], list[ProviderRecord], list[Attempt]], NoServiceAvailable
        ],
        handler: str,
        service_type: str,
        required: frozenset[str],
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        max_attempts: int | None,
        wait: float | None,
        make_lease: Callable[[RegistrySupervisor, ProviderRecord, float | None], Lease] = Lease,
    ) -> None:
        self.sup = sup
        self.make_lease = make_lease
        self.resolve = resolve
        self.no_service = no_service
        self.handler = handler
        self.service_type = service_type
        self.required = required
        self.fn = fn
        self.args = args
        self.max_attempts = max_attempts
        self.tried: list[ProviderRecord] = []
        self.attempts: list[Attempt] = []
        self.last: Exception | None = None
        self.give_up = None if wait is None else trio.current_time() + wait

    def more(self) -> bool:
        """Whether *max_attempts* allows another attempt."""
        return self.max_attempts is None or len(self.tried) < self.max_attempts

    async def next(self, *, waiting: bool) -> ProviderRecord | None:
        """The next provider to try, admitted, or ``None``: none is available (after
        waiting, if the call waits and *waiting* allows it), or the retry budget refused
        the attempt (then the last attempt says so)."""
        while True:
            record = self.resolve(self.handler, self.service_type, self.required, True, self.tried)
            if record is None:
                if self.give_up is None or not waiting:
                    return None
                error = self.no_service(self.required, self.tried, self.attempts)
                now = trio.current_time()
                if now >= self.give_up:
                    return None
                wake = self.give_up
                if error.retry_after is not None:
                    wake = min(wake, now + error.retry_after)
                with trio.move_on_at(wake):
                    await self.sup.wait_change()
                continue
            budget = self.sup.retry_budget
            if budget is not None:
                now = trio.current_time()
                if not self.tried:
                    budget.first_attempt(now)
                elif not budget.try_retry(now):
                    # Never reached the provider: its admission (and permit) goes back.
                    record.breaker.release(record.breaker.generation)
                    self.sup.retry_refused(record, self.handler, self.service_type)
                    refused = RetryBudgetExhausted(
                        f"the retry budget refused a retry on {record.name!r}"
                    )
                    self.attempts.append(Attempt(record.name, refused, "budget"))
                    return None
            self.tried.append(record)
            return record

    async def attempt(self, record: ProviderRecord) -> tuple[bool, Any]:
        """Run *fn* on *record* through a lease: ``(True, result)``, or ``(False,
        error)`` for an error to fail over from (recorded as an attempt). An error
        classified ``ignore`` or ``success`` propagates."""
        lease = self.make_lease(self.sup, record, None)
        try:
            with lease:
                awaitable = self.fn(lease.instance, *self.args)
                if not inspect.isawaitable(awaitable):
                    lease.abandon()
                    raise _NotAwaitable(
                        f"fn: must return an awaitable, returned {type(awaitable).__name__}"
                    )
                return True, await awaitable
        except _NotAwaitable as exc:
            raise TypeError(str(exc)) from None
        except Exception as exc:
            error_class = lease.error_class
            if error_class is None:  # the call's own deadline
                self.attempts.append(Attempt(record.name, exc, "timeout"))
            else:
                if error_class.kind in _FINAL:
                    raise
                self.attempts.append(Attempt(record.name, exc, outcome_word(error_class)))
                if error_class.kind is ErrorKind.REROUTE:
                    self.required = self.required | error_class.require
            self.last = exc
            return False, exc

    def failed(self) -> NoServiceAvailable:
        """The error the call ends with when nothing served it."""
        return self.no_service(self.required, self.tried, self.attempts)


async def call_with_failover(
    sup: RegistrySupervisor,
    resolve: Resolve,
    no_service: Callable[[frozenset[str], list[ProviderRecord], list[Attempt]], NoServiceAvailable],
    handler: str,
    service_type: str,
    required: frozenset[str],
    fn: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    max_attempts: int | None,
    wait: float | None,
    hedge_after: float | None = None,
    make_lease: Callable[[RegistrySupervisor, ProviderRecord, float | None], Lease] = Lease,
) -> T:
    """``Registry.call``'s loop: lease, try, and on failure move to the next available
    provider, never the same one twice.

    An error classified ``ignore`` or ``success`` is raised at once; ``reroute`` adds
    its capabilities to what the rest of the call requires. With *wait*, when nothing is
    available it waits (at most *wait* seconds in all) for the earliest breaker to admit
    again or for routing or a breaker to change, then looks again. The registry's retry
    budget, if it has one, may refuse an attempt after the first. With *hedge_after*,
    see :func:`_hedged`. *make_lease* makes each attempt's lease (a traced call's leases
    open a span per attempt: ``_trace``).

    Raises:
      NoServiceAvailable: from *no_service*, chained from the last error.
      TypeError: *fn* returned something that cannot be awaited (no outcome recorded).
    """
    call = _Call(
        sup,
        resolve,
        no_service,
        handler,
        service_type,
        required,
        fn,
        args,
        max_attempts,
        wait,
        make_lease,
    )
    if hedge_after is not None:
        result: T = await _hedged(call, hedge_after)
        return result
    while call.more():
        record = await call.next(waiting=True)
        if record is None:
            break
        served, value = await call.attempt(record)
        if served:
            return value  # type: ignore[no-any-return]
    raise call.failed() from call.last


async def _hedged(call: _Call, hedge_after: float) -> Any:
    """A hedged call: when the one attempt in flight has gone *hedge_after* seconds
    without an answer, a second starts on the next available provider; the first answer
    wins and the other attempt is cancelled (a cancellation: its breaker records
    nothing, its permit goes back). A failed attempt is replaced at once, as in an
    unhedged call. Never more than two attempts in flight, never one provider twice."""
    sup = call.sup
    # (provider, served, result): served True or False as ``_Call.attempt`` says, or
    # None for an error the call raises as it is (handed over rather than raised in the
    # attempt's task, where the nursery would wrap it in an exception group).
    send, receive = trio.open_memory_channel[tuple[ProviderRecord, bool | None, Any]](math.inf)
    hedge: ProviderRecord | None = None  # the attempt the hedge timer started
    ended: tuple[bool | None, Any] | None = None  # what ended the call early
    async with send, receive, trio.open_nursery() as nursery:

        async def run(record: ProviderRecord) -> None:
            try:
                served, value = await call.attempt(record)
            except Exception as error:
                send.send_nowait((record, None, error))
            else:
                send.send_nowait((record, served, value))

        async def launch(*, waiting: bool) -> ProviderRecord | None:
            record = await call.next(waiting=waiting) if call.more() else None
            if record is not None:
                nursery.start_soon(run, record)
            return record

        running = 0 if await launch(waiting=True) is None else 1
        due = trio.current_time() + hedge_after
        while running:
            with trio.move_on_at(due if running == 1 else math.inf) as timer:
                record, served, value = await receive.receive()
            if timer.cancelled_caught:
                hedge = await launch(waiting=False)
                if hedge is not None:
                    running += 1
                    sup.hedge_started(hedge, call.handler, call.service_type)
                due = math.inf  # one hedge per attempt in flight
                continue
            running -= 1
            if served is not False:
                # An answer, or an error to raise: the other attempt, if any, is cancelled
                # (recorded as such); the nursery is left before either is handed back,
                # as an error raised inside it would come out wrapped in a group.
                if served and record is hedge:
                    sup.hedges_won += 1
                ended = (served, value)
                nursery.cancel_scope.cancel()
                break
            if await launch(waiting=running == 0) is not None:
                running += 1
                due = trio.current_time() + hedge_after if running == 1 else math.inf
    if ended is not None:
        if ended[0]:
            return ended[1]
        raise ended[1]
    raise call.failed() from call.last
