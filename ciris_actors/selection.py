"""The pure selection policy: ordering, strategies and capability matching.

Registrations change rarely and resolves happen all the time, so the order of every
(scope, service type) is kept sorted as registrations change (:func:`plan_insert`,
:func:`plan_remove`: a bisect and a list insertion, never a full re-sort) and a resolve
(:func:`select`) walks it without sorting, grouping or allocating.
Imports neither trio nor the actors.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection
from typing import Any, Generic, TypeVar

import attrs

from ._types import ActorStatus, CircuitState, Priority, SelectionStrategy
from .breaker import CircuitBreaker

__all__ = [
    "Candidate",
    "Cursor",
    "Group",
    "Member",
    "Plan",
    "explain_plan",
    "format_span",
    "plan_insert",
    "plan_remove",
    "select",
]

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_ROUND_ROBIN = SelectionStrategy.ROUND_ROBIN


@attrs.define(slots=True, eq=False)
class Member:
    """One registered provider as the selection policy sees it.

    ``routable`` (from ``status``, ``healthy`` and ``has_health_check``) and ``ready``
    (routable with a CLOSED breaker) are derived by :meth:`refresh`, which must run after
    any of those or the breaker's state changes. They are stored because the resolve loop
    reads them for every candidate, and ``ready`` spares it a visit to the breaker in the
    common case.
    """

    name: str
    instance: Any
    priority: Priority
    priority_group: int
    strategy: SelectionStrategy
    capabilities: frozenset[str]
    seq: int
    breaker: CircuitBreaker
    has_health_check: bool = False
    status: ActorStatus = ActorStatus.RUNNING
    #: Result of the last health check; ``None`` before the first one.
    healthy: bool | None = None
    routable: bool = False
    ready: bool = False

    @property
    def sort_key(self) -> tuple[int, int]:
        """Priority, then registration order."""
        return (int(self.priority), self.seq)

    def refresh(self) -> bool:
        """Recompute :attr:`routable`; return whether it changed."""
        routable = self.status is ActorStatus.RUNNING and (
            self.healthy is True or (self.healthy is None and not self.has_health_check)
        )
        changed = routable != self.routable
        self.routable = routable
        self.ready = routable and self.breaker.state is _CLOSED
        return changed

    def unroutable_reason(self) -> str | None:
        """Why the actor or health state keeps this member out of routing, if it does."""
        if self.status is not ActorStatus.RUNNING:
            return f"actor {self.status.value}"
        if self.healthy is False:
            return "last health check failed"
        if self.healthy is None and self.has_health_check:
            return "first health check pending"
        return None


@attrs.define(slots=True)
class Cursor:
    """Round-robin position of one (scope, service type, group): the sort key of the
    member chosen last. The key, not just an index, so it stays valid whatever is
    unregistered or re-prioritised; the index is only a hint that saves a bisect while
    nothing has moved."""

    last: tuple[int, int] | None = None
    index: int = 0


#: The kind of member a plan holds: :class:`Member` itself, or a subclass carrying more
#: (the registry's provider records), which every function here hands back as it is.
M = TypeVar("M", bound=Member)


@attrs.define(slots=True, eq=False)
class Group(Generic[M]):
    """One priority group of a plan, its members in selection order.

    Mutated in place by :func:`plan_insert` / :func:`plan_remove`; that is safe because
    every mutation and every resolve runs synchronously (nothing else runs in between).
    """

    number: int
    #: The group's round-robin position; it goes when the group empties, so a plan's
    #: memory is that of its members and nothing else.
    cursor: Cursor = attrs.field(factory=lambda: Cursor())
    members: list[M] = attrs.field(factory=list)
    keys: list[tuple[int, int]] = attrs.field(factory=list)
    #: That of the group's first member.
    strategy: SelectionStrategy = SelectionStrategy.FALLBACK


#: The order of one (scope, service type): its groups, ascending by number.
Plan = list[Group[M]]


def plan_insert(plan: Plan[M], member: M) -> None:
    """Insert *member* into *plan* at its place: group ascending, then priority, then
    registration order.

    Everything that can fail (reading the member's sort key, comparing it with the keys
    already there) happens before the plan changes, so a raise leaves *plan* as it was.

    Args:
      plan: the plan to change in place.
      member: the member to insert (its group, priority and seq decide its place).
    """
    number = member.priority_group
    key = member.sort_key
    index = bisect.bisect_left([g.number for g in plan], number)
    if index == len(plan) or plan[index].number != number:
        group = Group[M](number=number, members=[member], keys=[key], strategy=member.strategy)
        plan.insert(index, group)
        return
    group = plan[index]
    position = bisect.bisect_left(group.keys, key)
    group.keys.insert(position, key)
    group.members.insert(position, member)
    group.strategy = group.members[0].strategy


def plan_remove(plan: Plan[M], member: M) -> None:
    """Remove *member* from *plan*, found by its current group, priority and seq.

    Raises:
      ValueError: *member* is not in *plan* where its fields say it is (*plan* is left
        as it was: no other member is ever taken out in its place).
    """
    key = member.sort_key
    index = bisect.bisect_left([g.number for g in plan], member.priority_group)
    if index < len(plan) and plan[index].number == member.priority_group:
        group = plan[index]
        position = bisect.bisect_left(group.keys, key)
        if position < len(group.members) and group.members[position] is member:
            del group.keys[position]
            del group.members[position]
            if group.members:
                group.strategy = group.members[0].strategy
            else:
                del plan[index]
            return
    raise ValueError(f"member {member.name!r} is not in this plan")


def select(
    plan: Plan[M],
    required: frozenset[str],
    now: Callable[[], float],
    exclude: Collection[Member] = (),
) -> M | None:
    """Return the first available member of *plan*, admitting it through its breaker.

    A member is available when it is routable, has every *required* capability, is not in
    *exclude*, and its breaker admits a call (which, in HALF_OPEN, takes a probe permit).
    ROUND_ROBIN groups start after the member they chose last and move their cursor to
    the one chosen. The walk is synchronous, so concurrent resolves never see a
    half-advanced cursor.

    Args:
      plan: kept by :func:`plan_insert` and :func:`plan_remove`.
      required: capabilities every candidate must have.
      now: returns the current time; called only when a breaker is not CLOSED.
      exclude: members not to choose (for failover inside one call).
    """
    # The clock is read at most once per resolve, and only if a breaker is not CLOSED:
    # reading trio's clock costs about as much as the rest of a skip. The candidate check
    # is written out in both loops below on purpose: a helper call per candidate would
    # cost more than the check itself.
    at: float | None = None
    for group in plan:
        members = group.members
        if group.strategy is _ROUND_ROBIN:
            count = len(members)
            keys = group.keys
            cursor = group.cursor
            last = cursor.last
            if last is None:
                start = 0
            elif cursor.index < count and keys[cursor.index] == last:
                start = cursor.index + 1  # nothing moved since the last pick
            else:
                start = bisect.bisect_right(keys, last)
            for step in range(count):
                index = (start + step) % count
                member = members[index]
                if not member.routable:
                    continue
                if required and not required <= member.capabilities:
                    continue
                if exclude and member in exclude:
                    continue
                if not member.ready:
                    if at is None:
                        at = now()
                    if not member.breaker.acquire(at):
                        continue
                cursor.last = keys[index]
                cursor.index = index
                return member
            continue
        for member in members:
            if not member.routable:
                continue
            if required and not required <= member.capabilities:
                continue
            if exclude and member in exclude:
                continue
            if member.ready:
                return member
            if at is None:
                at = now()
            if member.breaker.acquire(at):
                return member
    return None


@attrs.frozen
class Candidate:
    """One row of a selection walk: a member and what the walk made of it."""

    scope: str
    group: int
    strategy: SelectionStrategy
    name: str
    priority: Priority
    #: ``"chosen"``, ``"skipped"`` or ``"not reached"``.
    verdict: str
    reason: str
    #: When its breaker, OPEN, admits again (registry clock), if that is why it was
    #: skipped; the reason says it in words ("open for another 52 s").
    open_until: float | None = None


def skip_reason(
    member: Member, required: frozenset[str], now: float, exclude: Collection[Member] = ()
) -> str | None:
    """Return why *member* is not available at *now*, or ``None`` if it is."""
    missing = required - member.capabilities
    if missing:
        return f"lacks capabilities {sorted(missing)}"
    if member in exclude:
        return "already tried in this call"
    reason = member.unroutable_reason()
    if reason is not None:
        return reason
    breaker = member.breaker
    if not breaker.is_available(now):
        if breaker.state is CircuitState.HALF_OPEN:
            return "circuit half-open, probe quota in use"
        until = breaker.next_attempt_time
        if until is None:
            return f"disabled: {breaker.disabled}"
        return f"circuit open for another {format_span(until - now)}"
    return None


def format_span(seconds: float) -> str:
    """A span of time for people: ``0.4 s``, ``52 s``, ``14 min``, ``3.5 h``, ``12 days``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.0f} days"


def available(plan: Plan[M], required: frozenset[str], now: float) -> list[M]:
    """Every available member of *plan* at *now*, in the order :func:`select` would try
    them (round-robin groups from their cursor), without admitting any or moving cursors.
    """
    found: list[M] = []
    for group in plan:
        members = group.members
        count = len(members)
        start = 0
        if group.strategy is _ROUND_ROBIN and group.cursor.last is not None:
            start = bisect.bisect_right(group.keys, group.cursor.last)
        for step in range(count):
            member = members[(start + step) % count]
            if (
                member.routable
                and required <= member.capabilities
                and member.breaker.is_available(now)
            ):
                found.append(member)
    return found


def explain_plan(
    scope: str,
    plan: Plan[M],
    required: frozenset[str],
    now: float,
    chosen: bool = False,
    exclude: Collection[Member] = (),
) -> tuple[list[Candidate], bool]:
    """Walk *plan* as :func:`select` would, without admitting anything or moving cursors.

    Args:
      scope: the handler name, or ``"*"`` for global providers (shown in each row).
      plan: the plan to walk.
      required: required capabilities.
      now: the current time.
      chosen: whether an earlier scope already chose; every row is then "not reached".
      exclude: members not to choose.

    Returns:
      The rows in walk order (round-robin groups from their cursor), and whether a member
      was chosen by this or an earlier scope.
    """
    rows: list[Candidate] = []
    for group in plan:
        members = group.members
        order = range(len(members))
        if group.strategy is _ROUND_ROBIN and group.cursor.last is not None:
            start = bisect.bisect_right(group.keys, group.cursor.last)
            order = range(start, start + len(members))
        for index in order:
            member = members[index % len(members)]
            open_until = None
            if chosen:
                verdict, reason = "not reached", "an earlier candidate was chosen"
            else:
                why = skip_reason(member, required, now, exclude)
                if why is None:
                    chosen = True
                    verdict = "chosen"
                    reason = (
                        "next in rotation" if group.strategy is _ROUND_ROBIN else "first available"
                    )
                else:
                    verdict, reason = "skipped", why
                    if member.breaker.state is _OPEN and why.startswith("circuit open"):
                        open_until = member.breaker.next_attempt_time
            rows.append(
                Candidate(
                    scope=scope,
                    group=group.number,
                    strategy=group.strategy,
                    name=member.name,
                    priority=member.priority,
                    verdict=verdict,
                    reason=reason,
                    open_until=open_until,
                )
            )
    return rows, chosen
