"""The pure selection policy: ordering, strategies and capability matching.

Registrations change rarely and resolves happen all the time, so the order of every
(scope, service type) is kept sorted as registrations change (:func:`plan_insert`,
:func:`plan_remove`: a bisect and a list insertion, never a full re-sort) and a resolve
(:func:`select`) walks it without sorting, grouping or allocating.
Imports neither trio nor the actors.
"""

from __future__ import annotations

import bisect
import math
import random as _random
from collections.abc import Callable, Collection, Sequence
from fractions import Fraction
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
    "available",
    "explain_plan",
    "format_span",
    "group_loads",
    "plan_insert",
    "plan_remove",
    "schedule",
    "select",
    "select_spilling",
]

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_FALLBACK = SelectionStrategy.FALLBACK
_ROUND_ROBIN = SelectionStrategy.ROUND_ROBIN
_WEIGHTED = SelectionStrategy.WEIGHTED
_LATENCY = SelectionStrategy.LATENCY

#: Seconds over which an old latency observation loses most of its weight (1/e), as
#: Finagle's peak EWMA uses by default.
LATENCY_DECAY = 10.0


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
    #: Its share in a WEIGHTED group (relative to the others' weights).
    weight: float = 1.0
    #: Leases and calls it may have in flight at once (``None``: no cap).
    max_in_flight: int | None = None
    #: Leases, calls and tickets admitted and not finished yet.
    in_flight: int = 0
    #: Peak-sensitive moving average of its observed call latency, in seconds
    #: (``None``: not measured yet), and when it was last updated.
    latency: float | None = None
    latency_at: float = 0.0

    @property
    def sort_key(self) -> tuple[int, int]:
        """Priority, then registration order."""
        return (int(self.priority), self.seq)

    @property
    def at_capacity(self) -> bool:
        """Whether it has ``max_in_flight`` calls in flight."""
        cap = self.max_in_flight
        return cap is not None and self.in_flight >= cap

    def refresh(self) -> bool:
        """Recompute :attr:`routable`; return whether it changed."""
        routable = self.status is ActorStatus.RUNNING and (
            self.healthy is True or (self.healthy is None and not self.has_health_check)
        )
        changed = routable != self.routable
        self.routable = routable
        self.ready = routable and self.breaker.state is _CLOSED and not self.at_capacity
        return changed

    def started(self) -> None:
        """A lease, call or ticket was admitted to it."""
        self.in_flight += 1
        cap = self.max_in_flight
        if cap is not None and self.in_flight >= cap:
            self.ready = False

    def finished(self, now: float, seconds: float | None) -> None:
        """A lease, call or ticket admitted to it ended at *now*, having taken *seconds*
        (``None``: it never reached the provider or was cancelled: no latency to learn)."""
        self.in_flight -= 1
        if self.max_in_flight is not None:
            self.ready = self.routable and self.breaker.state is _CLOSED and not self.at_capacity
        if seconds is not None:
            self.observe_latency(now, seconds)

    def observe_latency(self, now: float, seconds: float) -> None:
        """Fold one observed latency into :attr:`latency`: a new peak is taken at once;
        below it, the average decays towards the observations over
        :data:`LATENCY_DECAY` seconds."""
        old = self.latency
        if old is None or seconds >= old:
            self.latency = seconds
        else:
            keep = math.exp(-max(0.0, now - self.latency_at) / LATENCY_DECAY)
            self.latency = old * keep + seconds * (1.0 - keep)
        self.latency_at = now

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
    #: A WEIGHTED group's turns, as indexes into ``members`` (``None``: to be built at
    #: the next resolve, after the members or their weights changed), and the next turn.
    turns: list[int] | None = None
    turn: int = 0
    #: Random bits for a two-choice group's picks (``getrandbits``); the registry gives
    #: every group its seeded generator's.
    draw: Callable[[int], int] = _random.getrandbits


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
    group.turns = None


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
            group.turns = None
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
    random: Callable[[int], int] | None = None,
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
      random: ``getrandbits``: random bits for LEAST_OUTSTANDING and LATENCY groups'
        two random picks; ``None``: each group's own (:attr:`Group.draw`, which the
        registry sets to its seeded generator's).
    """
    # The clock is read at most once per resolve, and only if a breaker is not CLOSED:
    # reading trio's clock costs about as much as the rest of a skip. The candidate check
    # is written out in both loops below on purpose: a helper call per candidate would
    # cost more than the check itself.
    at: float | None = None
    for group in plan:
        members = group.members
        strategy = group.strategy
        if strategy is _FALLBACK:
            for member in members:
                if not member.routable:
                    continue
                if required and not required <= member.capabilities:
                    continue
                if exclude and member in exclude:
                    continue
                if member.ready:
                    return member
                if member.at_capacity:
                    continue
                if at is None:
                    at = now()
                if member.breaker.acquire(at):
                    return member
            continue
        if strategy is _ROUND_ROBIN:
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
                    if member.at_capacity:
                        continue
                    if at is None:
                        at = now()
                    if not member.breaker.acquire(at):
                        continue
                cursor.last = keys[index]
                cursor.index = index
                return member
            continue
        # WEIGHTED, LEAST_OUTSTANDING or LATENCY: the common case of each written out
        # here, as in the loops above: the member (or the two) that the turn (or the
        # draw) names is ready, capable, untried.
        if strategy is _WEIGHTED:
            turns = group.turns
            if turns is not None:
                turn = group.turn
                member = members[turns[turn]]
                if (
                    member.ready
                    and (not required or required <= member.capabilities)
                    and (not exclude or member not in exclude)
                ):
                    turn += 1
                    group.turn = 0 if turn == len(turns) else turn
                    return member
            chosen = _weighted(group, required, now, exclude)
        else:
            count = len(members)
            if count == 1:
                only = members[0]
                if (
                    only.ready
                    and (not required or required <= only.capabilities)
                    and (not exclude or only not in exclude)
                ):
                    return only
            # One draw of 30 bits (a one-digit int: the cheapest arithmetic) names both:
            # its remainder by the group's size the first, its quotient the other, of
            # the rest (a bias below 0.1 % up to a thousand members).
            draw = (group.draw if random is None else random)(30)
            first = draw % count
            second = None
            if count > 1:
                second = (draw // count) % (count - 1)
                if second >= first:
                    second += 1
                a = members[first]
                b = members[second]
                if (
                    a.ready
                    and b.ready
                    and not exclude
                    and (
                        not required or (required <= a.capabilities and required <= b.capabilities)
                    )
                ):
                    if strategy is _LATENCY:
                        worse = (b.latency or 0.0) * (b.in_flight + 1) < (a.latency or 0.0) * (
                            a.in_flight + 1
                        )
                    else:
                        worse = b.in_flight < a.in_flight
                    return b if worse else a
            chosen = _two_choices(group, required, now, exclude, first, second)
        if chosen is not None:
            return chosen
        continue
    return None


def _admits(
    member: Member,
    required: frozenset[str],
    exclude: Collection[Member],
    now: Callable[[], float],
) -> bool:
    """Whether *member* could be chosen now, without admitting it (the clock is read
    only for a member whose breaker is not CLOSED)."""
    if not member.routable:
        return False
    if required and not required <= member.capabilities:
        return False
    if exclude and member in exclude:
        return False
    return member.ready or (not member.at_capacity and member.breaker.is_available(now()))


def _weighted(
    group: Group[M], required: frozenset[str], now: Callable[[], float], exclude: Collection[Member]
) -> M | None:
    """The member of the next turn of *group*'s weighted schedule that is available,
    admitted; the schedule's position moves past it. A turn whose member is not
    available is passed over, so over whole cycles the available members share the
    resolves in proportion to their weights, whatever the others do."""
    turns = group.turns
    if turns is None:
        turns = group.turns = schedule([m.weight for m in group.members])
    members = group.members
    count = len(turns)
    start = group.turn % count
    for step in range(count):
        index = (start + step) % count
        member = members[turns[index]]
        if _admits(member, required, exclude, now) and (
            member.ready or member.breaker.acquire(now())
        ):
            group.turn = (index + 1) % count
            return member
    group.turn = start
    return None


def _load(member: Member, strategy: SelectionStrategy) -> float:
    """What a two-choice group compares (lower is better): calls in flight, or for
    LATENCY the average latency times the calls it would then have in flight (0 for a
    member not measured yet, so that it gets its chance)."""
    if strategy is _LATENCY:
        return (member.latency or 0.0) * (member.in_flight + 1)
    return float(member.in_flight)


def _two_choices(
    group: Group[M],
    required: frozenset[str],
    now: Callable[[], float],
    exclude: Collection[Member],
    first: int,
    second: int | None,
) -> M | None:
    """Power of two choices between members number *first* and *second* (drawn at
    random; ``None`` in a group of one): the available one with the lower load
    (:func:`_load`; a tie goes to *first*), admitted. When neither is available, the
    first two available members from *first* on are compared instead (one, if only one
    is)."""
    members = group.members
    count = len(members)
    strategy = group.strategy
    picks: list[M] = []
    if second is not None:
        for index in (first, second):
            if _admits(members[index], required, exclude, now):
                picks.append(members[index])
    if not picks:
        for step in range(count):
            member = members[(first + step) % count]
            if _admits(member, required, exclude, now):
                picks.append(member)
                if len(picks) == 2:
                    break
    if not picks:
        return None
    best = picks[0]
    if len(picks) == 2 and _load(picks[1], strategy) < _load(best, strategy):
        best = picks[1]
    if best.ready or best.breaker.acquire(now()):
        return best
    return None  # pragma: no cover - _admits said the breaker admits at this instant


def group_loads(
    plan: Plan[M],
    required: frozenset[str],
    now: Callable[[], float],
    exclude: Collection[Member],
    factor: float,
) -> list[float]:
    """The share of resolves each group of *plan* takes under proportional spillover
    (Envoy's priority load, with *factor* its overprovisioning factor).

    A group's *health* is its available share of members times *factor*, capped at 1;
    the healths are scaled up when they sum to less than 1; each group in order takes
    its health, or what the groups before it left, whichever is less. So with factor
    1.4, a group with 72 % of its members available still takes every resolve, and one
    with half of them takes 70 % and spills 30 % to the next. All zeros when nothing is
    available. Reads every member (spillover is opt-in for that reason).
    """
    healths = []
    for group in plan:
        members = group.members
        up = sum(1 for m in members if _admits(m, required, exclude, now))
        healths.append(min(1.0, factor * up / len(members)))
    total = min(1.0, math.fsum(healths))
    loads = []
    left = 1.0
    for health in healths:
        share = 0.0 if total == 0 else min(health / total, left)
        loads.append(share)
        left -= share
    return loads


def select_spilling(
    plan: Plan[M],
    required: frozenset[str],
    now: Callable[[], float],
    exclude: Collection[Member],
    random: Callable[[int], int],
    factor: float,
) -> tuple[M | None, int, list[float]]:
    """:func:`select` with proportional spillover: a draw against :func:`group_loads`
    picks the group to try first; if it has nothing after all, the usual walk.

    Returns:
      The member admitted (or ``None``), the number in *plan* of the group the draw
      picked (0 when it picked the first, or none), and the loads.
    """
    loads = group_loads(plan, required, now, exclude, factor)
    draw = random(53) / (1 << 53)  # uniform in [0, 1)
    reached = 0.0
    for index, load in enumerate(loads):
        reached += load
        if draw < reached:
            if index:
                chosen = select(plan[index : index + 1], required, now, exclude, random)
                if chosen is not None:
                    return chosen, index, loads
            break
    return select(plan, required, now, exclude, random), 0, loads


def schedule(weights: Sequence[float]) -> list[int]:
    """The turns of one cycle of a WEIGHTED group whose members have *weights*: indexes
    into the weights, each index as many times as its integer share, every member's
    turns evenly spaced over the cycle (member *i*'s *k*-th turn falls at
    ``(k + 1/2) / share_i`` of the cycle; ties go to the lower index).

    Integer shares keep the weights' proportions exactly when they are rationals with
    small denominators (``0.7`` and ``0.3`` are 7 and 3); otherwise, or when the cycle
    would pass :data:`MAX_CYCLE` turns (or 8 per member, if more), they are rounded to
    that many turns in all, each member at least one.
    """
    fractions = [Fraction(w).limit_denominator(1000) for w in weights]
    scale = math.lcm(*(f.denominator for f in fractions))
    shares = [int(f * scale) for f in fractions]
    common = math.gcd(*shares)
    cap = max(MAX_CYCLE, 8 * len(shares))
    if common:
        shares = [share // common for share in shares]
    if not common or min(shares) == 0 or sum(shares) > cap:
        total = math.fsum(weights)
        shares = [max(1, round(w / total * cap)) for w in weights]
        common = math.gcd(*shares)
        shares = [share // common for share in shares]
    slots = sorted(
        ((k + 0.5) / share, index) for index, share in enumerate(shares) for k in range(share)
    )
    return [index for _, index in slots]


#: The most turns one cycle of a WEIGHTED schedule has (more for a large group: 8 per
#: member).
MAX_CYCLE = 1000


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
    if member.at_capacity:
        return f"at capacity ({member.in_flight} in flight)"
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
    them (round-robin groups from their cursor, weighted ones by their next turns; the
    two-choice groups in priority order), without admitting any or moving cursors.
    """
    found: list[M] = []
    for group in plan:
        members = group.members
        count = len(members)
        order: Sequence[int] = range(count)
        if group.strategy is _ROUND_ROBIN and group.cursor.last is not None:
            start = bisect.bisect_right(group.keys, group.cursor.last)
            order = range(start, start + count)
        elif group.strategy is _WEIGHTED:
            order = _turn_order(group)
        for index in order:
            member = members[index % count]
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
        order: Sequence[int] = range(len(members))
        if group.strategy is _ROUND_ROBIN and group.cursor.last is not None:
            start = bisect.bisect_right(group.keys, group.cursor.last)
            order = range(start, start + len(members))
        elif group.strategy is _WEIGHTED:
            order = _turn_order(group)
        two_choices = group.strategy in _TWO_CHOICES
        picked = False  # a two-choice group had an available member
        for index in order:
            member = members[index % len(members)]
            open_until = None
            if chosen:
                verdict, reason = "not reached", "an earlier candidate was chosen"
            else:
                why = skip_reason(member, required, now, exclude)
                if why is None and two_choices:
                    # Which one a resolve takes is decided by two random picks.
                    picked = True
                    verdict, reason = "candidate", _load_words(member, group.strategy)
                elif why is None:
                    chosen = True
                    verdict = "chosen"
                    reason = _CHOSEN_WORDS.get(group.strategy, "first available")
                    if group.strategy is _WEIGHTED:
                        reason += f" (weight {member.weight:g})"
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
        chosen = chosen or picked
    return rows, chosen


#: Why the member a walk chose was chosen, by its group's strategy.
_CHOSEN_WORDS = {_ROUND_ROBIN: "next in rotation", _WEIGHTED: "next weighted turn"}
_TWO_CHOICES = frozenset({SelectionStrategy.LEAST_OUTSTANDING, _LATENCY})


def _load_words(member: Member, strategy: SelectionStrategy) -> str:
    """A two-choice candidate's load, in words."""
    flight = f"{member.in_flight} in flight"
    if strategy is not _LATENCY:
        return f"one of two random picks, the one with fewer in flight wins ({flight})"
    latency = "not measured yet" if member.latency is None else f"{member.latency:.3g} s"
    return f"one of two random picks, the faster wins (latency {latency}, {flight})"


def _turn_order(group: Group[M]) -> list[int]:
    """A WEIGHTED group's members in the order of their next turns (each once)."""
    turns = group.turns
    if turns is None:
        turns = schedule([m.weight for m in group.members])  # not stored: explain is read-only
    count = len(turns)
    seen: dict[int, None] = {}
    for step in range(count):
        seen.setdefault(turns[(group.turn + step) % count])
    return list(seen)
