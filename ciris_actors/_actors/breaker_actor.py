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

from .._types import CircuitState
from ..selection import ActorStatus
from .messages import BreakerMessage

if TYPE_CHECKING:
    from .supervisor import ProviderRecord, RegistrySupervisor

__all__ = ["breaker_actor"]


async def breaker_actor(sup: RegistrySupervisor, record: ProviderRecord) -> None:
    """Run until the provider's scope is cancelled or a STOP message arrives."""
    breaker = record.breaker
    interval = sup.health_check_interval
    next_check = math.inf
    while True:
        deadline = next_check
        if breaker.state is CircuitState.OPEN:
            deadline = min(deadline, breaker.next_attempt_time or 0.0)
        if record.permits:
            # Not just the oldest: update_circuit_breaker can shorten timeout_duration.
            deadline = min(deadline, min(due for due, _ in record.permits))
        messages = BreakerMessage.NONE
        if deadline == math.inf:
            # Nothing timed to wait for (the common, idle case): no cancel scope needed.
            messages = await record.mailbox.receive()
        else:
            with trio.move_on_at(deadline):
                messages = await record.mailbox.receive()
        if messages & BreakerMessage.STOP:
            return
        if messages & BreakerMessage.CHECK_NOW:
            next_check = trio.current_time()
        now = trio.current_time()
        breaker.advance(now)
        expired = [permit for permit in record.permits if permit[0] <= now]
        for permit in expired:
            if permit in record.permits:  # a failure below clears the rest
                record.permits.remove(permit)
                if permit[1] == breaker.generation:
                    # A probe permit not returned within timeout_duration is a failure.
                    breaker.record_failure(now, permit[1])
        if now >= next_check:
            if record.has_health_check and record.status is ActorStatus.RUNNING:
                await sup.check_health(record)
                next_check = math.inf if interval is None else trio.current_time() + interval
            else:
                next_check = math.inf
