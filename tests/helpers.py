"""Helpers the test modules share: test doubles that are too small for
``ciris_actors.testing``, instruments that watch trio, and readings of a registry that
several test modules compare."""

from __future__ import annotations

import gc
from collections.abc import Callable, Collection
from typing import Any

import trio

from ciris_actors import CircuitBreakerConfig, EventSubscription, Registry
from ciris_actors.selection import Member, Plan, select

#: One failure opens it, and it stays open for ten minutes: breaker states that hold
#: still while a test watches them.
SLOW_RECOVERY = CircuitBreakerConfig(
    failure_threshold=1, recovery_timeout=600.0, success_threshold=1, timeout_duration=60.0
)


class Plain:
    """A provider with no lifecycle hooks: routable the moment it is registered."""

    def __init__(self, label: str = "plain") -> None:
        self.label = label

    def __repr__(self) -> str:
        return self.label


class TaskCounter(trio.abc.Instrument):
    """The tasks alive while installed (spawned after it was added, not yet exited)."""

    def __init__(self) -> None:
        self.live: set[trio.lowlevel.Task] = set()

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.live.add(task)

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.live.discard(task)


def event_subscriptions() -> int:
    """How many :class:`EventSubscription` objects are alive, after a garbage collection.

    The registry keeps every open subscription (and nothing else does once its block has
    ended), so this counts the subscriptions left open. It asks the garbage collector
    because the public surface does not say how many subscribers a registry has.
    """
    gc.collect()
    return sum(isinstance(thing, EventSubscription) for thing in gc.get_objects())


def snapshot(registry: Registry) -> dict[str, Any]:
    """Everything get_provider_info() says, minus the one figure that moves with time."""
    info = registry.get_provider_info()
    for stats in info["circuit_breaker_stats"].values():
        del stats["time_in_open"]
    return info


def first_member_whatever_its_state(
    plan: Plan[Member],
    required: frozenset[str],
    now: Callable[[], float],
    exclude: Collection[Member] = (),
    random: Callable[[int], int] = lambda bits: 0,
) -> Member | None:
    """Broken: the first capable, untried member of the first group, whatever its actor,
    health or breaker state, admitted without asking the breaker; the real router only
    when no such member is left."""
    for member in plan[0].members if plan else ():
        if member not in exclude and required <= member.capabilities:
            return member
    return select(plan, required, now, exclude, random)
