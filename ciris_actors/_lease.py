"""Outcomes of calls to providers: :func:`settle` (the one synchronous function that
records what a call to a provider came to), the lease that runs one call under its
breaker's deadline, and :func:`call_with_failover`, ``Registry.call``'s loop.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Literal, TypeVar

import trio

from ._actors.record import Permit, ProviderRecord
from ._actors.supervisor import Resolve
from ._errors import Attempt, NoServiceAvailable, RegistryError

__all__ = ["Lease", "Outcome", "Ticket", "call_with_failover", "settle", "settle_ticket"]

T = TypeVar("T")


class Outcome(enum.Enum):
    """What one call to a provider came to, for its breaker."""

    #: The provider served the call.
    SUCCESS = "success"
    #: The provider failed the call (an error, or the call's deadline).
    FAILURE = "failure"
    #: No outcome: the call never reached the provider, or was cancelled from outside.
    NONE = "none"


def settle(record: ProviderRecord, generation: int, outcome: Outcome, now: float) -> None:
    """Record *outcome* of a call to *record* admitted at breaker *generation*.

    The one place an outcome is recorded: leases, ``call``, ``report_success`` /
    ``report_failure`` and the simulator's event engine all come here, so they cannot
    drift apart. A half-open permit taken at *generation* is returned whatever the
    outcome. Synchronous: it never awaits.
    """
    breaker = record.breaker
    if outcome is Outcome.SUCCESS:
        breaker.record_success(now, generation)
    elif outcome is Outcome.FAILURE:
        breaker.record_failure(now, generation)
    else:
        breaker.release(generation)


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

    __slots__ = ("_generation", "_owner", "_permit", "_record", "_settled", "deadline")

    def __init__(
        self, owner: object, record: ProviderRecord, deadline: float, permit: Permit | None
    ) -> None:
        self._owner = owner
        self._record = record
        self._generation = record.breaker.generation
        self._permit = permit
        self._settled = False
        self.deadline = deadline

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


def settle_ticket(owner: object, ticket: Ticket, outcome: Outcome, now: float) -> None:
    """Record *outcome* for *ticket* (``Registry.settle`` of the registry *owner*).

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
    if now >= ticket.deadline:
        # The call overran its time: a failure, whatever the caller says, as a lease's
        # deadline would have counted it.
        outcome = Outcome.FAILURE
    if permit is not None:
        if permit.expired:
            return  # the breaker actor settled it as a failure at its deadline
        if permit in record.permits:
            record.permits.remove(permit)
    settle(record, ticket._generation, outcome, now)


def outcome_of(error: BaseException | None, timed_out: bool) -> Outcome:
    """The outcome of a call that ended with *error* (``None``: normally), its own
    deadline having fired or not."""
    if timed_out:
        return Outcome.FAILURE
    if error is None:
        return Outcome.SUCCESS
    if isinstance(error, Exception):
        return Outcome.FAILURE
    # Cancelled from outside, KeyboardInterrupt, or a group of such: not the provider's.
    return Outcome.NONE


class Lease:
    """One admitted call: runs under the breaker's deadline and settles its outcome.

    Written as a class rather than a generator-based context manager because it is on
    the ``lease``/``call`` path and must tell the deadline it set apart from a
    cancellation from outside.
    """

    __slots__ = ("_abandoned", "_generation", "_limit", "_record", "_scope")

    def __init__(self, record: ProviderRecord, timeout: float | None) -> None:
        self._record = record
        self._generation = record.breaker.generation
        self._limit = record.breaker.config.timeout_duration if timeout is None else timeout
        self._scope: trio.CancelScope | None = None
        self._abandoned = False

    @property
    def instance(self) -> Any:
        """The leased provider instance."""
        return self._record.instance

    def abandon(self) -> None:
        """End with no outcome whatever happens: the call never reached the provider."""
        self._abandoned = True

    def __enter__(self) -> Lease:
        self._scope = trio.CancelScope(deadline=trio.current_time() + self._limit)
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

    def _settle(self, exc: BaseException | None, timed_out: bool) -> None:
        outcome = Outcome.NONE if self._abandoned else outcome_of(exc, timed_out)
        settle(self._record, self._generation, outcome, trio.current_time())

    def _too_slow(self) -> trio.TooSlowError:
        return trio.TooSlowError(
            f"call to provider {self._record.name!r} exceeded {self._limit:g}s"
        )


class _NotAwaitable(Exception):
    """``call``'s *fn* returned something that cannot be awaited."""


async def call_with_failover(
    resolve: Resolve,
    no_service: Callable[[list[ProviderRecord], list[Attempt]], NoServiceAvailable],
    handler: str,
    service_type: str,
    required: frozenset[str],
    fn: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    max_attempts: int | None,
) -> T:
    """``Registry.call``'s loop: lease, try, and on failure move to the next available
    provider, never the same one twice.

    Raises:
      NoServiceAvailable: from *no_service*, chained from the last error.
      TypeError: *fn* returned something that cannot be awaited (no outcome recorded).
    """
    tried: list[ProviderRecord] = []
    attempts: list[Attempt] = []
    last: Exception | None = None
    while max_attempts is None or len(attempts) < max_attempts:
        record = resolve(handler, service_type, required, True, tried)
        if record is None:
            break
        tried.append(record)
        try:
            with Lease(record, None) as lease:
                awaitable = fn(lease.instance, *args)
                if not inspect.isawaitable(awaitable):
                    lease.abandon()
                    raise _NotAwaitable(
                        f"fn: must return an awaitable, returned {type(awaitable).__name__}"
                    )
                return await awaitable
        except _NotAwaitable as exc:
            raise TypeError(str(exc)) from None
        except Exception as exc:
            attempts.append(Attempt(record.name, exc))
            last = exc
    raise no_service(tried, attempts) from last
