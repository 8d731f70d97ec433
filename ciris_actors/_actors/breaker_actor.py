"""The breaker actor: owns the time-driven side of one provider's circuit breaker.

It sleeps until the earliest of: the OPEN deadline (then moves the breaker to HALF_OPEN
and the transition is published), the earliest deadline of a ``get_service`` probe
permit (an unreturned permit counts as a failure), and the next health check (run with
``timeout_duration`` as its deadline). Its mailbox only ever says "look again".
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import trio

from .._types import ActorStatus
from .messages import BreakerMessage
from .record import OUTCOMES

if TYPE_CHECKING:
    from .record import ProviderRecord
    from .supervisor import RegistrySupervisor

__all__ = ["breaker_actor"]

#: Where a call's deadline is counted in ``ProviderCounters.outcomes``.
_TIMEOUT = OUTCOMES.index("timeout")


async def breaker_actor(sup: RegistrySupervisor, record: ProviderRecord) -> None:
    """Run *record*'s breaker loop until its scope is cancelled or a STOP message arrives.

    The breaker actor of an instance's first registration (its lifecycle's *lead*) also
    runs the instance's health checks, each as a task of the registry's nursery.
    """
    try:
        with record.cancel_scope:
            await _loop(sup, record)
    finally:
        sup.registration_closed(record)


async def _loop(sup: RegistrySupervisor, record: ProviderRecord) -> None:
    breaker = record.breaker
    life = record.lifecycle
    interval = sup.health_check_interval
    next_check = math.inf
    check: trio.CancelScope | None = None  # the running health check's
    check_again = False  # CHECK_NOW arrived while a check was running
    try:
        while True:
            deadline = next_check
            reopen = breaker.next_attempt_time  # None while disabled: no deadline
            if reopen is not None:
                deadline = min(deadline, reopen)
            if record.permits:
                # Not just the oldest: update_circuit_breaker can shorten timeout_duration.
                deadline = min(deadline, min(permit.deadline for permit in record.permits))
            messages = BreakerMessage.NONE
            if deadline == math.inf:
                # Nothing timed to wait for (the common, idle case): no cancel scope needed.
                messages = await record.mailbox.receive()
            else:
                with trio.move_on_at(deadline):
                    messages = await record.mailbox.receive()
            if messages & BreakerMessage.STOP:
                return
            now = trio.current_time()
            if messages & BreakerMessage.CHECKED:
                check = None
                next_check = (
                    now if check_again else math.inf if interval is None else now + interval
                )
                check_again = False
            if messages & BreakerMessage.CHECK_NOW:
                next_check = now
            breaker.advance(now)
            expired = [permit for permit in record.permits if permit.deadline <= now]
            for permit in expired:
                if permit in record.permits:  # a failure below clears the rest
                    record.permits.remove(permit)
                    if permit.generation == breaker.generation:
                        # A probe permit not returned within timeout_duration is a failure
                        # (and the ticket that held it, if any, has been settled by it:
                        # its call is counted as timed out, as a lease's would be, since
                        # a later settle of the ticket records nothing).
                        permit.expired = True
                        breaker.record_failure(now, permit.generation)
                        if permit.owned:
                            record.counters.outcomes[_TIMEOUT] += 1
            if now >= next_check:
                next_check = math.inf
                if check is not None:
                    check_again = True
                elif (
                    life.has_health_check
                    and life.lead is record
                    and life.status is ActorStatus.RUNNING
                ):
                    # In a task of its own, so that however long the check takes, the
                    # timers above fire on time. It ends with this actor: the finally
                    # below cancels it.
                    check = trio.CancelScope()
                    sup.nursery.start_soon(_check, sup, record, check)
    finally:
        if check is not None:
            check.cancel()


async def _check(sup: RegistrySupervisor, record: ProviderRecord, scope: trio.CancelScope) -> None:
    """Run one health check of *record*'s instance under *scope*, then tell its breaker
    actor it is done."""
    try:
        with scope:
            await sup.check_health(record)
    finally:
        record.tell(BreakerMessage.CHECKED)
