"""Routing beyond first-available (DESIGN.md section 9): WEIGHTED, LEAST_OUTSTANDING and
LATENCY groups, and per-provider caps on calls in flight; the pure policy against
brute-force oracles, then through a registry."""

from __future__ import annotations

import collections
import itertools
import math
import random
from collections.abc import Callable

import pytest
import trio
import trio.testing
from hypothesis import given, settings, strategies as st

from ciris_actors import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    NoServiceAvailable,
    Priority,
    Registry,
    SelectionStrategy,
    SpilloverChanged,
    open_registry,
)
from ciris_actors.selection import (
    LATENCY_DECAY,
    Member,
    Plan,
    explain_plan,
    group_loads,
    plan_insert,
    schedule,
    select,
    select_spilling,
)

from .helpers import Plain

WEIGHTED = SelectionStrategy.WEIGHTED
LEAST = SelectionStrategy.LEAST_OUTSTANDING
LATENCY = SelectionStrategy.LATENCY


def member(
    name: str,
    seq: int,
    strategy: SelectionStrategy = WEIGHTED,
    *,
    weight: float = 1.0,
    capabilities: frozenset[str] = frozenset(),
    max_in_flight: int | None = None,
) -> Member:
    m = Member(
        name=name,
        instance=name,
        priority=Priority.NORMAL,
        priority_group=0,
        strategy=strategy,
        capabilities=capabilities,
        seq=seq,
        breaker=CircuitBreaker(name, CircuitBreakerConfig(failure_threshold=1)),
        weight=weight,
        max_in_flight=max_in_flight,
    )
    m.refresh()
    return m


def plan_of(members: list[Member]) -> Plan[Member]:
    plan: Plan[Member] = []
    for m in members:
        plan_insert(plan, m)
    return plan


def clock() -> float:
    return 0.0


# -- WEIGHTED: the schedule ---------------------------------------------------------------


@given(st.lists(st.integers(1, 20), min_size=1, max_size=8))
def test_a_schedule_gives_each_member_its_integer_weight_in_turns(weights: list[int]) -> None:
    turns = schedule([float(w) for w in weights])
    common = math.gcd(*weights)
    assert collections.Counter(turns) == {i: w // common for i, w in enumerate(weights)}


def test_a_schedule_keeps_decimal_proportions_exactly_and_spreads_the_turns() -> None:
    assert schedule([0.7, 0.3]) == [0, 1, 0, 0, 0, 1, 0, 0, 1, 0]
    assert schedule([2.0, 2.0, 2.0]) == [0, 1, 2]


def test_a_schedule_of_weights_without_a_small_common_measure_is_rounded_to_the_cycle() -> None:
    turns = schedule([math.pi, 1.0])
    counts = collections.Counter(turns)
    assert len(turns) <= 1000
    assert counts[0] / counts[1] == pytest.approx(math.pi, rel=0.01)
    assert collections.Counter(schedule([1e-9, 1.0]))[0] >= 1  # a tiny weight still gets a turn


def test_a_schedule_of_thirds_is_three_turns() -> None:
    """1/3 and 2/3 are rationals with a small denominator: one turn and two, not 333
    and 667."""
    assert schedule([1 / 3, 2 / 3]) == [1, 0, 1]


def test_a_schedule_rounds_to_a_thousand_turns_each_member_at_least_one() -> None:
    """Weights without a common measure of denominator up to 1000 are rounded to
    MAX_CYCLE turns in all, in proportion to the weights; a weight too small for a turn
    of its own still gets one."""
    assert collections.Counter(schedule([1e-9, 2.0])) == {0: 1, 1: 1000}
    assert collections.Counter(schedule([1 / 1001, 2 / 1001])) == {0: 333, 1: 667}


def test_a_schedule_of_exactly_a_thousand_turns_is_not_rounded() -> None:
    """Weights are read as the nearest fraction of denominator up to 1000 (0.0006 as
    1/1000, 0.998 as 499/500); a cycle that reaches MAX_CYCLE turns without passing it
    keeps those shares (rounding the weights themselves would give 0.998 999 turns)."""
    assert collections.Counter(schedule([0.0006, 0.0006, 0.998])) == {0: 1, 1: 1, 2: 998}


def test_a_large_group_has_eight_turns_per_member_before_it_rounds() -> None:
    """Past 125 members the cycle may have 8 turns per member: 200 members keep exact
    shares up to 1600 turns, and are rounded to 1600 turns beyond."""
    exact = collections.Counter(schedule([1.0] * 199 + [1000.0]))
    assert exact == {**dict.fromkeys(range(199), 1), 199: 1000}
    rounded = collections.Counter(schedule([1.0] * 199 + [1500.0]))
    assert rounded == {**dict.fromkeys(range(199), 1), 199: round(1500 / 1699 * 1600)}


# -- WEIGHTED: through select -------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    weights=st.lists(st.integers(1, 6), min_size=2, max_size=6),
    down=st.lists(st.booleans(), min_size=6, max_size=6),
    cycles=st.integers(1, 4),
    warmup=st.integers(0, 30),
)
def test_weighted_shares_are_exact_over_whole_cycles_whatever_members_are_skipped(
    weights: list[int], down: list[bool], cycles: int, warmup: int
) -> None:
    """With some members unavailable (held open), any run of k cycles of the available
    weights' sum gives each available member exactly k times its share, and never an
    unavailable member: the oracle is the integer weights themselves."""
    members = [member(f"m{i}", i, weight=float(w)) for i, w in enumerate(weights)]
    plan = plan_of(members)
    for m, is_down in zip(members, down, strict=False):
        if is_down:
            m.breaker.force_open(0.0, 1e9)
            m.refresh()
    up = [m for m in members if m.ready]
    for _ in range(warmup):  # start anywhere in the schedule
        select(plan, frozenset(), clock)
    if not up:
        assert select(plan, frozenset(), clock) is None
        return
    common = math.gcd(*weights)
    shares = {m.name: int(m.weight) // common for m in up}
    picks = collections.Counter(
        chosen.name
        for chosen in (
            select(plan, frozenset(), clock) for _ in range(cycles * sum(shares.values()))
        )
        if chosen is not None
    )
    assert picks == {name: cycles * share for name, share in shares.items()}


def test_weighted_honours_required_capabilities_and_exclusions() -> None:
    a = member("a", 0, weight=3.0)
    b = member("b", 1, weight=1.0, capabilities=frozenset({"vision"}))
    plan = plan_of([a, b])
    assert {select(plan, frozenset({"vision"}), clock) for _ in range(8)} == {b}
    assert {select(plan, frozenset(), clock, exclude=[a]) for _ in range(8)} == {b}


# -- two choices --------------------------------------------------------------------------


class Recorded:
    """A source of random bits whose draws the test can replay."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.draws: list[int] = []

    def __call__(self, bits: int) -> int:
        value = self.rng.getrandbits(bits)
        self.draws.append(value)
        return value


@settings(max_examples=200, deadline=None)
@given(
    loads=st.lists(st.integers(0, 5), min_size=2, max_size=8),
    seed=st.integers(0, 2**32),
    strategy=st.sampled_from([LEAST, LATENCY]),
    latencies=st.lists(st.none() | st.floats(0.001, 10.0), min_size=8, max_size=8),
)
def test_two_choices_never_picks_the_worse_of_its_two_candidates(
    loads: list[int],
    seed: int,
    strategy: SelectionStrategy,
    latencies: list[float | None],
) -> None:
    """Oracle: the two indexes the draw names; the member chosen is one of them and its
    load (in flight, or latency x (in flight + 1), unmeasured = 0) is not
    above the other's."""
    members = [member(f"m{i}", i, strategy) for i in range(len(loads))]
    for m, load, latency in zip(members, loads, latencies, strict=False):
        m.in_flight = load
        m.latency = latency
    plan = plan_of(members)
    draws = Recorded(seed)
    chosen = select(plan, frozenset(), clock, random=draws)
    assert chosen is not None
    n = len(members)
    assert len(draws.draws) == 1  # one draw names both: remainder, then quotient
    first = draws.draws[0] % n
    second = (draws.draws[0] // n) % (n - 1)
    second += second >= first
    pair = [plan[0].members[first], plan[0].members[second]]

    def cost(m: Member) -> float:
        if strategy is LATENCY:
            return (m.latency or 0.0) * (m.in_flight + 1)
        return float(m.in_flight)

    assert chosen in pair
    assert cost(chosen) <= min(cost(m) for m in pair)


def scripted(*draws: int) -> Callable[[int], int]:
    """A source of random bits giving *draws* in turn (and failing the test past them)."""
    given = iter(draws)
    return lambda bits: next(given)


def picks(first: int, second: int, count: int) -> int:
    """The draw that makes a two-choice group of *count* pick member *first*, then the
    *second* of the others (counted before the first is skipped over)."""
    return first + count * second


def spill(share: float) -> int:
    """The 53-bit draw a spillover resolve reads as *share* in [0, 1)."""
    return int(share * (1 << 53))


def test_two_choices_gives_a_tie_to_the_first_picked() -> None:
    a, b = member("a", 0, LEAST), member("b", 1, LEAST)
    plan = plan_of([a, b])
    # The second pick is counted among the others: 0 is a, or b when a was first.
    assert select(plan, frozenset(), clock, random=scripted(picks(1, 0, 2))) is b
    assert select(plan, frozenset(), clock, random=scripted(picks(0, 0, 2))) is a


def test_when_neither_pick_is_available_the_next_two_available_members_are_compared() -> None:
    """The picks are m1 and m2, both held open: the walk goes on from m1, in group
    order, to the first two available members (m3 and m4) and takes the less loaded."""
    members = [member(f"m{i}", i, LEAST) for i in range(5)]
    for m, load in zip(members, [0, 0, 0, 2, 1], strict=True):
        m.in_flight = load
    for m in members[1:3]:
        m.breaker.force_open(0.0, 100.0)
        m.refresh()
    plan = plan_of(members)
    # first 1; second 1 of the others, moved past first: 2.
    assert select(plan, frozenset(), clock, random=scripted(picks(1, 1, 5))) is members[4]


@pytest.mark.parametrize(("in_flight", "winner"), [(1, "fast"), (3, "slow")])
def test_latency_weighs_each_latency_by_the_calls_in_flight_with_this_one(
    in_flight: int, winner: str
) -> None:
    """fast: 1 s x (in flight + 1); slow, idle: 3 s x 1. With one call in flight fast
    costs 2 and wins; with three it costs 4 and slow wins."""
    fast, slow = member("fast", 0, LATENCY), member("slow", 1, LATENCY)
    fast.latency, fast.in_flight = 1.0, in_flight
    slow.latency = 3.0
    plan = plan_of([fast, slow])
    rng = random.Random(0)
    picks = {select(plan, frozenset(), clock, random=rng.getrandbits) for _ in range(10)}
    assert {m.name for m in picks if m is not None} == {winner}
    assert None not in picks


@pytest.mark.parametrize("strategy", [LEAST, LATENCY])
def test_two_choices_honours_required_capabilities_and_exclusions(
    strategy: SelectionStrategy,
) -> None:
    a = member("a", 0, strategy)
    b = member("b", 1, strategy, capabilities=frozenset({"vision"}))
    plan = plan_of([a, b])
    rng = random.Random(0)
    assert {
        select(plan, frozenset({"vision"}), clock, random=rng.getrandbits) for _ in range(20)
    } == {b}
    assert {select(plan, frozenset(), clock, [a], rng.getrandbits) for _ in range(20)} == {b}
    assert select(plan, frozenset(), clock, [a, b], rng.getrandbits) is None


@pytest.mark.parametrize("strategy", [WEIGHTED, LEAST, LATENCY])
def test_a_member_whose_open_time_is_over_is_admitted_as_a_half_open_probe(
    strategy: SelectionStrategy,
) -> None:
    """As in FALLBACK and ROUND_ROBIN groups: the breaker is asked at the time the clock
    gives, and admits a probe."""
    a = member("a", 0, strategy)
    a.breaker.force_open(0.0, 1.0)
    a.refresh()
    plan = plan_of([a])
    assert select(plan, frozenset(), lambda: 0.5, random=random.Random(0).getrandbits) is None
    assert select(plan, frozenset(), lambda: 5.0, random=random.Random(0).getrandbits) is a
    assert (a.breaker.state, a.breaker.probes_in_flight) == (CircuitState.HALF_OPEN, 1)


@settings(max_examples=200, deadline=None)
@given(
    strategy=st.sampled_from(list(SelectionStrategy)),
    states=st.lists(
        st.sampled_from(["ok", "open", "half_open_full", "unroutable", "capped", "lacks"]),
        min_size=1,
        max_size=7,
    ),
    seed=st.integers(0, 1000),
)
def test_no_strategy_returns_an_unavailable_or_incapable_member(
    strategy: SelectionStrategy, states: list[str], seed: int
) -> None:
    """Oracle: a brute-force availability check per member. Whatever the strategy, a
    resolve returns an available member when there is one, else None."""
    members = []
    for i, state in enumerate(states):
        m = member(
            f"m{i}",
            i,
            strategy,
            capabilities=frozenset() if state == "lacks" else frozenset({"x"}),
            max_in_flight=1 if state == "capped" else None,
        )
        if state == "open":
            m.breaker.force_open(0.0, 100.0)
        elif state == "half_open_full":
            m.breaker = CircuitBreaker(m.name, CircuitBreakerConfig(half_open_max_calls=1))
            m.breaker.force_open(-10.0, 1.0)
            assert m.breaker.acquire(0.0)  # HALF_OPEN, its one permit out
        elif state == "unroutable":
            m.healthy = False
            m.has_health_check = True
        elif state == "capped":
            m.started()
        m.refresh()
        members.append(m)
    plan = plan_of(members)
    usable = {m.name for m, state in zip(members, states, strict=True) if state == "ok"}
    rng = random.Random(seed)
    for _ in range(10):
        chosen = select(plan, frozenset({"x"}), clock, random=rng.getrandbits)
        if usable:
            assert chosen is not None
            assert chosen.name in usable
        else:
            assert chosen is None


# -- latency ------------------------------------------------------------------------------


def test_a_latency_peak_is_taken_at_once_and_forgotten_over_the_decay_time() -> None:
    m = member("m", 0, LATENCY)
    m.observe_latency(0.0, 0.1)
    m.observe_latency(1.0, 2.0)
    assert m.latency == 2.0  # a peak, at once
    m.observe_latency(1.0 + LATENCY_DECAY, 0.1)
    assert m.latency == pytest.approx(2.0 * math.exp(-1) + 0.1 * (1 - math.exp(-1)))


def test_a_lower_latency_observed_at_the_same_instant_as_the_peak_does_not_lower_it() -> None:
    """The decay is over time passed: none has passed (or the time given is earlier),
    so the peak stands."""
    m = member("m", 0, LATENCY)
    m.observe_latency(5.0, 2.0)
    m.observe_latency(5.0, 0.1)
    assert m.latency == 2.0
    m.observe_latency(4.0, 0.1)
    assert m.latency == 2.0


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.floats(0.0, 30.0), st.none() | st.floats(0.001, 10.0)),
        min_size=1,
        max_size=12,
    )
)
def test_a_latency_at_or_above_the_average_is_taken_exactly_and_a_lower_one_pulls_it_down(
    steps: list[tuple[float, float | None]],
) -> None:
    """Each step waits, then observes a latency (``None``: the average itself again).
    One at or above the average replaces it exactly; one below moves it down towards
    the observation, never past it."""
    m = member("m", 0, LATENCY)
    now = 0.0
    for wait, seconds in steps:
        now += wait
        before = m.latency
        observed = seconds
        if observed is None:
            observed = 1.0 if before is None else before
        m.observe_latency(now, observed)
        assert m.latency is not None
        if before is None or observed >= before:
            assert m.latency == observed
        else:  # between the two, to within rounding
            assert observed * (1 - 1e-12) <= m.latency <= before * (1 + 1e-12)
        assert m.latency_at == now


@settings(max_examples=200, deadline=None)
@given(
    cap=st.none() | st.integers(1, 3),
    routable=st.booleans(),
    closed=st.booleans(),
    steps=st.lists(st.booleans(), max_size=12),
)
def test_ready_stays_what_refresh_would_compute_as_calls_start_and_finish(
    cap: int | None, routable: bool, closed: bool, steps: list[bool]
) -> None:
    """``ready`` (routable, CLOSED and below its cap) is kept up to date by started and
    finished without a refresh, so the walk can trust it."""
    m = member("m", 0, SelectionStrategy.FALLBACK, max_in_flight=cap)
    if not routable:
        m.has_health_check, m.healthy = True, False
    if not closed:
        m.breaker.force_open(0.0, 100.0)
    m.refresh()
    for start in steps:
        if start:
            m.started()
        elif m.in_flight:
            m.finished(1.0, None)
        expected = routable and closed and not (cap is not None and m.in_flight >= cap)
        assert m.ready is expected
    assert m.latency is None  # nothing finished with a latency to learn


# -- explain ------------------------------------------------------------------------------


def rows_of(plan: Plan[Member]) -> list[tuple[str, str, str]]:
    rows, _ = explain_plan("H", plan, frozenset(), 100.0)
    return [(r.name, r.verdict, r.reason) for r in rows]


def test_explain_lists_a_weighted_group_in_the_order_of_its_next_turns() -> None:
    """Weights 2, 1, 1 take turns a, b, c, a: explain starts at the next turn and names
    each member once, without taking a turn itself."""
    a, b, c = member("a", 0, weight=2.0), member("b", 1), member("c", 2)
    plan = plan_of([a, b, c])
    not_reached = "an earlier candidate was chosen"
    for _ in range(2):
        assert rows_of(plan) == [
            ("a", "chosen", "next weighted turn (weight 2)"),
            ("b", "not reached", not_reached),
            ("c", "not reached", not_reached),
        ]
    assert select(plan, frozenset(), clock) is a
    assert rows_of(plan) == [
        ("b", "chosen", "next weighted turn (weight 1)"),
        ("c", "not reached", not_reached),
        ("a", "not reached", not_reached),
    ]
    b.breaker.force_open(0.0, 1000.0)
    b.refresh()
    assert rows_of(plan) == [
        ("b", "skipped", "circuit open for another 15 min"),
        ("c", "chosen", "next weighted turn (weight 1)"),
        ("a", "not reached", not_reached),
    ]
    assert select(plan, frozenset(), clock) is c


def test_explain_shows_every_available_two_choice_member_as_a_candidate_with_its_load() -> None:
    """Which one a resolve takes is decided by two random picks, so explain chooses none
    of them: each available one is a candidate, and the groups after are not reached."""
    plan: Plan[Member] = []
    idle = member("idle", 0, LEAST)
    busy = member("busy", 1, LEAST)
    busy.in_flight = 2
    down = member("down", 2, LEAST)
    down.breaker.force_open(0.0, 1000.0)
    down.refresh()
    later = member("later", 3, SelectionStrategy.FALLBACK)
    later.priority_group = 1
    for m in (idle, busy, down, later):
        plan_insert(plan, m)
    rows, chosen = explain_plan("H", plan, frozenset(), 100.0)
    fewer = "one of two random picks, the one with fewer in flight wins"
    assert [(r.name, r.verdict, r.reason) for r in rows] == [
        ("idle", "candidate", f"{fewer} (0 in flight)"),
        ("busy", "candidate", f"{fewer} (2 in flight)"),
        ("down", "skipped", "circuit open for another 15 min"),
        ("later", "not reached", "an earlier candidate was chosen"),
    ]
    assert chosen is True


def test_explain_says_a_latency_candidate_s_latency_or_that_it_is_not_measured() -> None:
    fast, new = member("fast", 0, LATENCY), member("new", 1, LATENCY)
    fast.latency, fast.in_flight = 0.123456, 1
    faster = "one of two random picks, the faster wins"
    assert rows_of(plan_of([fast, new])) == [
        ("fast", "candidate", f"{faster} (latency 0.123 s, 1 in flight)"),
        ("new", "candidate", f"{faster} (latency not measured yet, 0 in flight)"),
    ]


def test_explain_of_a_two_choice_group_with_nothing_available_goes_on_to_the_next() -> None:
    plan: Plan[Member] = []
    lacking = member("lacking", 0, LEAST)
    fallback = member("fallback", 1, SelectionStrategy.FALLBACK, capabilities=frozenset({"x"}))
    fallback.priority_group = 1
    for m in (lacking, fallback):
        plan_insert(plan, m)
    rows, chosen = explain_plan("H", plan, frozenset({"x"}), 100.0)
    assert [(r.name, r.verdict) for r in rows] == [("lacking", "skipped"), ("fallback", "chosen")]
    assert chosen is True
    rows, chosen = explain_plan("H", plan[:1], frozenset({"x"}), 100.0)
    assert chosen is False


# -- through a registry -------------------------------------------------------------------


async def test_a_70_30_weighted_split_holds_through_get_service(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    registry.register("H", "llm", Plain("a"), strategy="weighted", weight=7, name="a")
    registry.register("H", "llm", Plain("b"), strategy="weighted", weight=3, name="b")
    picks = collections.Counter(registry.get_service_nowait("H", "llm").label for _ in range(1000))
    assert picks == {"a": 700, "b": 300}
    registry.update_priority("b", weight=7)
    picks = collections.Counter(registry.get_service_nowait("H", "llm").label for _ in range(1000))
    assert picks == {"a": 500, "b": 500}


async def test_least_outstanding_routes_around_a_provider_with_calls_in_flight(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry(health_check_interval=None, seed=7) as registry:
        registry.register("H", "llm", Plain("busy"), strategy=LEAST, name="busy")
        registry.register("H", "llm", Plain("idle"), strategy=LEAST, name="idle")
        async with registry.lease("H", "llm") as first:
            other = "idle" if first.label == "busy" else "busy"
            # With two members, both are always the two picks: the idle one wins.
            for _ in range(20):
                async with registry.lease("H", "llm") as leased:
                    assert leased.label == other


async def test_latency_routes_to_the_faster_provider_once_both_are_measured(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry(health_check_interval=None, seed=3) as registry:
        registry.register("H", "llm", Plain("slow"), strategy=LATENCY, name="slow")
        registry.register("H", "llm", Plain("fast"), strategy=LATENCY, name="fast")
        delays = {"slow": 2.0, "fast": 0.1}
        seen = []

        async def answer(instance: Plain) -> str:
            await trio.sleep(delays[instance.label])
            return instance.label

        for _ in range(12):
            seen.append(await registry.call("H", "llm", answer))
        assert set(seen[:2]) == {"slow", "fast"}  # each unmeasured one gets its chance
        assert seen[2:] == ["fast"] * 10


async def test_the_same_seed_gives_the_same_two_choice_picks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def picks(seed: int) -> list[str]:
        async with open_registry(health_check_interval=None, seed=seed) as registry:
            for i in range(5):
                registry.register("H", "llm", Plain(f"p{i}"), strategy=LEAST, name=f"p{i}")
            out = []
            leases = []
            for _ in range(8):  # leases held, so loads differ and picks matter
                ticket = registry.admit("H", "llm")
                assert ticket is not None
                leases.append(ticket)
                out.append(ticket.name)
            for ticket in leases:
                registry.settle(ticket, "success")
            return out

    assert await picks(11) == await picks(11)
    assert {tuple(await picks(seed)) for seed in range(6)} != {tuple(await picks(11))}


# -- caps ---------------------------------------------------------------------------------


async def test_a_provider_at_its_cap_is_skipped_as_at_capacity_until_a_call_ends(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    registry.register("H", "llm", Plain("a"), max_in_flight=1, name="a")
    async with registry.lease("H", "llm"):
        assert registry.get_service_nowait("H", "llm") is None
        [candidate] = registry.explain("H", "llm").candidates
        assert candidate.reason == "at capacity (1 in flight)"
        with pytest.raises(NoServiceAvailable, match=r"a: at capacity \(1 in flight\)"):
            async with registry.lease("H", "llm"):
                pass  # pragma: no cover
    assert registry.get_service_nowait("H", "llm") is not None
    assert registry.view("a").breaker["total_failures"] == 0


async def test_a_cap_spills_calls_to_the_next_provider_and_can_be_lifted(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    registry.register("H", "llm", Plain("a"), max_in_flight=2, name="a", priority="HIGH")
    registry.register("H", "llm", Plain("b"), name="b", priority="LOW")
    tickets = [registry.admit("H", "llm") for _ in range(3)]
    assert [t.name for t in tickets if t is not None] == ["a", "a", "b"]
    registry.update_priority("a", max_in_flight=None)
    assert registry.get_service_nowait("H", "llm").label == "a"
    registry.update_priority("a", max_in_flight=2)
    assert registry.get_service_nowait("H", "llm").label == "b"
    for ticket in tickets:
        assert ticket is not None
        registry.settle(ticket, "success")
    assert registry.get_service_nowait("H", "llm").label == "a"


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("weight", 0, ValueError),
        ("weight", -1.0, ValueError),
        ("weight", math.nan, ValueError),
        ("weight", math.inf, ValueError),
        ("weight", "2", TypeError),
        ("max_in_flight", 0, ValueError),
        ("max_in_flight", 1.5, TypeError),
        ("max_in_flight", True, TypeError),
    ],
)
async def test_a_bad_weight_or_cap_is_refused_naming_it_and_changes_nothing(
    autojump_clock: trio.testing.MockClock,
    registry: Registry,
    field: str,
    value: object,
    error: type[Exception],
) -> None:
    with pytest.raises(error, match=rf"^{field}:"):
        registry.register("H", "llm", Plain("a"), **{field: value})  # type: ignore[arg-type]
    assert registry.snapshot() == ()
    registry.register("H", "llm", Plain("a"), name="a")
    with pytest.raises(error, match=rf"^{field}:"):
        registry.update_priority("a", **{field: value})  # type: ignore[arg-type]
    assert registry.view("a").as_dict()["priority"] == "NORMAL"


def test_every_strategy_is_accepted_by_its_lower_case_name() -> None:
    names = [s.value for s in SelectionStrategy]
    assert names == ["fallback", "round_robin", "weighted", "least_outstanding", "latency"]
    assert len(set(itertools.chain(names))) == 5


# -- proportional spillover ---------------------------------------------------------------


def _fixed(value: float) -> Callable[[int], int]:
    """A source of random bits that always draws *value* (in [0, 1)) for 53 bits."""
    return lambda bits: int(value * (1 << bits))


def envoy_loads(availability: list[tuple[int, int]], factor: float) -> list[float]:
    """Envoy's priority load, written out from its documentation: health = min(1,
    factor x up / total); healths scaled up when they sum below 1; each level takes its
    (scaled) health or what is left, whichever is less."""
    health = [min(1.0, factor * up / total) for up, total in availability]
    normal = min(1.0, sum(health))
    if normal == 0:
        return [0.0] * len(health)
    out, left = [], 1.0
    for h in health:
        out.append(min(h / normal, left))
        left -= out[-1]
    return out


@settings(max_examples=200, deadline=None)
@given(
    groups=st.lists(
        st.integers(1, 5).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
        min_size=1,
        max_size=4,
    ),
    factor=st.sampled_from([1.0, 1.4, 2.0]) | st.floats(1.0, 5.0),
)
def test_spillover_shares_follow_the_overprovisioning_formula(
    groups: list[tuple[int, int]], factor: float
) -> None:
    """Group loads equal the formula, and a grid of N evenly spaced draws sends each
    group its share of them, to within one draw."""
    members, plan = [], []
    seq = itertools.count()
    for number, (up, total) in enumerate(groups):
        for i in range(total):
            m = member(f"g{number}m{i}", next(seq), SelectionStrategy.FALLBACK)
            m.priority_group = number
            if i >= up:
                m.breaker.force_open(0.0, 1e9)
            m.refresh()
            members.append(m)
    plan = plan_of(members)
    loads = group_loads(plan, frozenset(), clock, (), factor)
    expected = envoy_loads(groups, factor)
    assert loads == pytest.approx(expected)
    draws = 400
    served: collections.Counter[int] = collections.Counter()
    for k in range(draws):
        chosen, _, _ = select_spilling(
            plan, frozenset(), clock, (), _fixed((k + 0.5) / draws), factor
        )
        if chosen is not None:
            served[chosen.priority_group] += 1
    for number, share in enumerate(expected):
        assert abs(served[number] - share * draws) <= 1


#: How a member of a spillover plan stands: available, held open, OPEN with its open
#: time over (admitted as a probe), lacking the capability asked for, or excluded.
MEMBER_STATES = ["ok", "open", "expired", "lacks", "excluded"]


def spill_plan(
    groups: list[tuple[SelectionStrategy, list[str]]],
) -> tuple[Plan[Member], list[Member]]:
    members, excluded = [], []
    seq = itertools.count()
    for number, (strategy, states) in enumerate(groups):
        for i, state in enumerate(states):
            m = member(
                f"g{number}m{i}",
                next(seq),
                strategy,
                capabilities=frozenset() if state == "lacks" else frozenset({"x"}),
            )
            m.priority_group = number
            if state == "open":
                m.breaker.force_open(0.0, 1e9)
            elif state == "expired":
                m.breaker.force_open(0.0, 1.0)
            elif state == "excluded":
                excluded.append(m)
            m.refresh()
            members.append(m)
    return plan_of(members), excluded


@settings(max_examples=300, deadline=None)
@given(
    groups=st.lists(
        st.tuples(
            st.sampled_from(list(SelectionStrategy)),
            st.lists(st.sampled_from(MEMBER_STATES), min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=3,
    ),
    draw=st.floats(0.0, 1.0, exclude_max=True),
    factor=st.sampled_from([1.0, 1.4]),
    seed=st.integers(0, 1000),
)
def test_spillover_serves_the_drawn_group_with_an_available_member_and_says_which(
    groups: list[tuple[SelectionStrategy, list[str]]], draw: float, factor: float, seed: int
) -> None:
    """Oracle: the formula's loads from a brute-force count of the members that are
    available (capable, not excluded, admitting at the clock's time). A draw landing in
    group k > 0 is served from group k and reported as k; any other draw is the usual
    walk (the first group with an available member) and reported as 0. Whatever is
    returned is available, and the same draws give the same member."""
    up = [sum(state in ("ok", "expired") for state in states) for _, states in groups]
    expected = envoy_loads(
        [(n, len(states)) for n, (_, states) in zip(up, groups, strict=True)], factor
    )
    # The registry reads a 53-bit integer draw; the oracle judges that same number (a float
    # share on a group's boundary can fall either side of it once truncated).
    share = spill(draw) / (1 << 53)
    drawn = next((k for k, end in enumerate(itertools.accumulate(expected)) if share < end), None)
    results = []
    for _ in range(2):  # two identical plans, two identical sources: the same pick
        plan, excluded = spill_plan(groups)
        rng = random.Random(seed)
        first_draw = [spill(draw)]

        def source(bits: int, first_draw: list[int] = first_draw, rng: random.Random = rng) -> int:
            return first_draw.pop() if first_draw else rng.getrandbits(bits)

        chosen, picked, loads = select_spilling(
            plan, frozenset({"x"}), lambda: 5.0, excluded, source, factor
        )
        assert loads == pytest.approx(expected)
        if not any(up):
            assert (chosen, picked) == (None, 0)
            return
        assert chosen is not None
        assert chosen not in excluded
        assert "x" in chosen.capabilities
        assert chosen.breaker.state is not CircuitState.OPEN
        serving = drawn if drawn else next(k for k, n in enumerate(up) if n)
        assert (chosen.priority_group, picked) == (serving, drawn or 0)
        results.append(chosen.name)
    assert results[0] == results[1]


def test_a_draw_on_a_boundary_goes_to_the_later_group_and_an_empty_group_is_never_drawn() -> None:
    """The draw is uniform on [0, 1): each group takes the half-open interval [start,
    end) of its load, so a group with no load takes no draw, not even 0."""
    plan, _ = spill_plan(
        [(SelectionStrategy.FALLBACK, ["ok", "open"]), (SelectionStrategy.FALLBACK, ["ok"])]
    )
    for draw, group in [(0.0, 0), (0.4999, 0), (0.5, 1), (0.9999, 1)]:
        chosen, picked, loads = select_spilling(
            plan, frozenset({"x"}), clock, (), _fixed(draw), 1.0
        )
        assert loads == [0.5, 0.5]
        assert chosen is not None
        assert (chosen.priority_group, picked) == (group, group)
    plan, _ = spill_plan(
        [(SelectionStrategy.FALLBACK, ["open"]), (SelectionStrategy.FALLBACK, ["ok"])]
    )
    chosen, picked, loads = select_spilling(plan, frozenset({"x"}), clock, (), _fixed(0.0), 1.0)
    assert loads == [0.0, 1.0]
    assert chosen is not None
    assert (chosen.name, picked) == ("g1m0", 1)


def test_spillover_walks_the_whole_plan_when_the_drawn_group_has_nothing_after_all() -> None:
    """Only a clock that goes back can do it: g1m0's open time is over when the loads
    are computed (t=5), not when the drawn group 1 is tried (t=0.5). Then the usual
    walk serves the request from group 0, and says so: not group 2."""
    plan, _ = spill_plan(
        [
            (SelectionStrategy.FALLBACK, ["ok", "open"]),
            (SelectionStrategy.FALLBACK, ["expired"]),
            (SelectionStrategy.FALLBACK, ["ok"]),
        ]
    )
    time = [5.0]

    def draw(bits: int) -> int:
        time[0] = 0.5
        return spill(0.75)

    chosen, picked, loads = select_spilling(plan, frozenset({"x"}), lambda: time[0], (), draw, 1.0)
    assert loads == [0.5, 0.5, 0.0]
    assert chosen is not None
    assert (chosen.name, picked) == ("g0m0", 0)


def test_spillover_takes_every_draw_from_the_random_source_it_is_given() -> None:
    """The spill draw, then the two picks of the drawn two-choice group: a seeded source
    reproduces the pick, so the registry's seed does."""
    plan, _ = spill_plan([(SelectionStrategy.FALLBACK, ["ok", "open"]), (LEAST, ["ok"] * 6)])
    loads = [5, 5, 2, 1, 5, 5]
    for m, load in zip(plan[1].members, loads, strict=True):
        m.in_flight = load
    # 0.9: group 1; first 3, second 2 of the others: g1m3 beats g1m2.
    source = scripted(spill(0.9), picks(3, 2, 6))
    chosen, picked, _ = select_spilling(plan, frozenset({"x"}), clock, (), source, 1.0)
    assert chosen is not None
    assert (chosen.name, picked) == ("g1m3", 1)
    with pytest.raises(StopIteration):
        source(30)  # both draws taken, from this source
    plan, _ = spill_plan([(LEAST, ["ok"] * 6)])
    for m, load in zip(plan[0].members, loads, strict=True):
        m.in_flight = load
    source = scripted(spill(0.1), picks(3, 2, 6))
    chosen, picked, _ = select_spilling(plan, frozenset({"x"}), clock, (), source, 1.0)
    assert chosen is not None
    assert (chosen.name, picked) == ("g0m3", 0)
    with pytest.raises(StopIteration):
        source(30)


async def test_spillover_sends_the_missing_share_to_the_next_group_and_says_so(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry(
        health_check_interval=None, seed=5, overprovisioning_factor=1.4
    ) as registry:
        for i in range(4):
            registry.register("H", "llm", Plain(f"a{i}"), name=f"a{i}")
        registry.register("H", "llm", Plain("b"), name="b", priority_group=1)
        assert {registry.get_service_nowait("H", "llm").label for _ in range(50)} == {"a0"}
        async with registry.events(types=[SpilloverChanged]) as events:
            registry.force_open("a0", 1000.0)
            registry.force_open("a1", 1000.0)
            picks = collections.Counter(
                registry.get_service_nowait("H", "llm").label for _ in range(2000)
            )
            event = await events.receive()
        assert isinstance(event, SpilloverChanged)
        assert [group for group, _ in event.loads] == [0, 1]
        assert [share for _, share in event.loads] == pytest.approx([0.7, 0.3])
        assert abs(picks["b"] / 2000 - 0.3) < 0.03  # seeded draws: 30 % spilled, give or take
        explanation = registry.explain("H", "llm")
        assert [(scope, group) for scope, group, _ in explanation.spillover] == [("H", 0), ("H", 1)]
        assert [share for _, _, share in explanation.spillover] == pytest.approx([0.7, 0.3])
        assert "spillover: resolves go to group 0 70%, group 1 30%" in str(explanation)


async def test_without_a_factor_groups_stay_all_or_nothing(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    for i in range(4):
        registry.register("H", "llm", Plain(f"a{i}"), name=f"a{i}")
    registry.register("H", "llm", Plain("b"), name="b", priority_group=1)
    registry.force_open("a0", 1000.0)
    registry.force_open("a1", 1000.0)
    assert {registry.get_service_nowait("H", "llm").label for _ in range(100)} == {"a2"}
    assert registry.explain("H", "llm").spillover == ()


@pytest.mark.parametrize(
    ("factor", "error"), [(0.9, ValueError), (math.nan, ValueError), ("1.4", TypeError)]
)
async def test_a_bad_overprovisioning_factor_is_refused(
    autojump_clock: trio.testing.MockClock, factor: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=r"^overprovisioning_factor:"):
        async with open_registry(overprovisioning_factor=factor):  # type: ignore[arg-type]
            pass  # pragma: no cover


async def test_get_services_lists_a_weighted_group_by_its_next_turns(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    registry.register("H", "llm", Plain("a"), strategy="weighted", weight=1, name="a")
    registry.register("H", "llm", Plain("b"), strategy="weighted", weight=1, name="b")
    assert registry.get_service_nowait("H", "llm").label == "a"
    assert [p.label for p in registry.get_services("H", "llm")] == ["b", "a"]
    assert registry.get_service_nowait("H", "llm").label == "b"  # nothing was admitted
