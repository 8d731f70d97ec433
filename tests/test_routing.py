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
