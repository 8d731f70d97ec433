"""The selection policy (``selection.py``): plans kept in order as members come and go
(pure), round-robin cursors (through a registry), and spans written for people."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings, strategies as st

from ciris_actors import (
    ActorStatus,
    CircuitBreaker,
    CircuitBreakerConfig,
    Priority,
    Registry,
    SelectionStrategy,
)
from ciris_actors.selection import (
    Candidate,
    Member,
    Plan,
    explain_plan,
    format_span,
    plan_insert,
    plan_remove,
    select,
)

from .helpers import Plain

#: ("insert", group, priority, strategy) or ("remove", which of the members present).
plan_operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("insert"),
            st.integers(0, 3),
            st.sampled_from(list(Priority)),
            st.sampled_from(list(SelectionStrategy)),
        ),
        st.tuples(st.just("remove"), st.integers(0, 30)),
    ),
    max_size=40,
)


@settings(max_examples=200)
@given(operations=plan_operations)
def test_plan_insert_and_remove_keep_groups_ascending_and_members_in_priority_then_registration(
    operations: list[tuple[object, ...]],
) -> None:
    """After any inserts and removes, a plan holds exactly the members present: groups
    ascending and never empty, each group's members sorted by (priority, registration)
    with their keys beside them, and the group's strategy that of its first member."""
    plan: Plan[Member] = []
    present: list[Member] = []
    for seq, operation in enumerate(operations):
        if operation[0] == "insert":
            _, group, priority, strategy = operation
            assert isinstance(group, int)
            assert isinstance(priority, Priority)
            assert isinstance(strategy, SelectionStrategy)
            member = Member(
                name=f"m{seq}",
                instance=object(),
                priority=priority,
                priority_group=group,
                strategy=strategy,
                capabilities=frozenset(),
                seq=seq,
                breaker=CircuitBreaker(f"m{seq}"),
            )
            plan_insert(plan, member)
            present.append(member)
        elif present:
            index = operation[1]
            assert isinstance(index, int)
            member = present.pop(index % len(present))
            plan_remove(plan, member)
        numbers = [group.number for group in plan]
        assert numbers == sorted(set(numbers))
        for group in plan:
            expected = sorted(
                (m for m in present if m.priority_group == group.number),
                key=lambda m: (int(m.priority), m.seq),
            )
            assert group.members == expected
            assert group.keys == [m.sort_key for m in expected]
            assert group.strategy is expected[0].strategy
        assert {m.name for g in plan for m in g.members} == {m.name for m in present}


async def test_round_robin_survives_unregister_of_the_last_chosen(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    """The seed kept an integer index that pointed past the end after an unregister."""
    names = [registry.register("H", "llm", Plain(x), strategy="round_robin", name=x) for x in "abc"]
    for _ in range(3):
        registry.get_service_nowait("H", "llm")  # the cursor now stands on "c"
    registry.unregister(names[2])
    assert [registry.get_service_nowait("H", "llm").label for _ in range(3)] == ["a", "b", "a"]
    registry.unregister(names[0])
    registry.unregister(names[1])
    assert registry.get_service_nowait("H", "llm") is None
    registry.register("H", "llm", Plain("d"), strategy="round_robin")
    assert registry.get_service_nowait("H", "llm").label == "d"


async def test_round_robin_state_is_per_service_type_even_for_a_shared_class(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    """The seed keyed rotation state by provider class, so two service types served by
    the same class shared (and overran) one index."""
    for x in "ab":
        registry.register("H", "llm", Plain(f"llm-{x}"), strategy="round_robin")
    for x in "xyz":
        registry.register("H", "memory", Plain(f"mem-{x}"), strategy="round_robin")
    llm, memory = [], []
    for _ in range(6):
        llm.append(registry.get_service_nowait("H", "llm").label)
        memory.append(registry.get_service_nowait("H", "memory").label)
    assert llm == ["llm-a", "llm-b"] * 3
    assert memory == ["mem-x", "mem-y", "mem-z"] * 2


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.42, "0.4 s"),
        (9.96, "10.0 s"),
        (52.4, "52 s"),
        (119.4, "119 s"),
        (120.0, "2 min"),
        (840.0, "14 min"),
        (3000.0, "50 min"),
        (7199.0, "120 min"),
        (7200.0, "2.0 h"),
        (12_600.0, "3.5 h"),
        (36_000.0, "10.0 h"),
        (172_656.0, "48.0 h"),  # 47.96 h
        (172_799.0, "48.0 h"),
        (172_800.0, "2 days"),
        (993_600.0, "12 days"),  # 11.5 days, rounded half to even
    ],
)
def test_spans_are_written_for_people(seconds: float, words: str) -> None:
    assert format_span(seconds) == words


# -- plan maintenance errors ------------------------------------------------------------


def member(
    name: str,
    priority: Priority = Priority.NORMAL,
    group: int = 0,
    strategy: SelectionStrategy = SelectionStrategy.FALLBACK,
    seq: int = 0,
    **fields: Any,
) -> Member:
    """A routable member with a CLOSED breaker, unless *fields* say otherwise."""
    made = Member(
        name=name,
        instance=object(),
        priority=priority,
        priority_group=group,
        strategy=strategy,
        capabilities=frozenset(fields.pop("capabilities", ())),
        seq=seq,
        breaker=fields.pop("breaker", None) or CircuitBreaker(name),
        **fields,
    )
    made.refresh()
    return made


def layout(plan: Plan[Member]) -> list[tuple[int, list[str], list[tuple[int, int]]]]:
    return [(g.number, [m.name for m in g.members], list(g.keys)) for g in plan]


def test_plan_remove_of_a_stranger_with_a_members_key_raises_and_removes_nobody() -> None:
    """The member is found by identity at its key: another object with the same group,
    priority and seq is not it, and must not be taken out in its place."""
    plan: Plan[Member] = []
    for seq, name in enumerate("abc"):
        plan_insert(plan, member(name, seq=seq))
    before = layout(plan)
    with pytest.raises(ValueError, match="'b'"):
        plan_remove(plan, member("b", seq=1))
    assert layout(plan) == before


@pytest.mark.parametrize(
    "stranger",
    [
        member("late", seq=99),  # its key sorts after every member of its group
        member("early", Priority.CRITICAL, seq=99),  # before every member
        member("elsewhere", group=5, seq=1),  # a group the plan does not have
    ],
    ids=["past-the-end", "before-the-start", "absent-group"],
)
def test_plan_remove_of_a_member_not_in_the_plan_raises_value_error_naming_it(
    stranger: Member,
) -> None:
    plan: Plan[Member] = []
    for seq, name in enumerate("abc"):
        plan_insert(plan, member(name, seq=seq))
    plan_insert(plan, member("g2", group=2, seq=3))
    before = layout(plan)
    with pytest.raises(ValueError, match=f"member '{stranger.name}' is not in this plan"):
        plan_remove(plan, stranger)
    assert layout(plan) == before


def test_plan_remove_of_the_last_member_drops_its_group() -> None:
    plan: Plan[Member] = []
    only = member("only", group=1)
    plan_insert(plan, only)
    plan_insert(plan, member("other", group=2, seq=1))
    plan_remove(plan, only)
    assert layout(plan) == [(2, ["other"], [(int(Priority.NORMAL), 1)])]
    with pytest.raises(ValueError, match="'only'"):
        plan_remove(plan, only)


class _Unsortable(Member):
    """A member whose sort key cannot be computed (a bug in a subclass, say)."""

    @property
    def sort_key(self) -> tuple[int, int]:
        raise RuntimeError("no key")


@pytest.mark.parametrize("group", [0, 1], ids=["existing-group", "new-group"])
def test_a_failing_plan_insert_leaves_the_plan_as_it_was(group: int) -> None:
    """What can fail is done before the plan changes: no empty group is left behind."""
    plan: Plan[Member] = []
    plan_insert(plan, member("a"))
    before = layout(plan)
    broken = _Unsortable(
        name="broken",
        instance=object(),
        priority=Priority.NORMAL,
        priority_group=group,
        strategy=SelectionStrategy.FALLBACK,
        capabilities=frozenset(),
        seq=1,
        breaker=CircuitBreaker("broken"),
    )
    with pytest.raises(RuntimeError, match="no key"):
        plan_insert(plan, broken)
    assert layout(plan) == before


# -- select -----------------------------------------------------------------------------


def no_clock() -> float:
    raise AssertionError("the clock was read, though every breaker is CLOSED")


def round_robin(*names: str) -> tuple[Plan[Member], list[Member]]:
    plan: Plan[Member] = []
    members = [
        member(name, strategy=SelectionStrategy.ROUND_ROBIN, seq=seq)
        for seq, name in enumerate(names)
    ]
    for each in members:
        plan_insert(plan, each)
    return plan, members


def test_failover_inside_a_round_robin_group_reaches_its_other_members() -> None:
    """A member already tried by this call is passed over, and the walk goes on to the
    rest of the group, wherever the rotation started."""
    plan, (a, b, c) = round_robin("a", "b", "c")
    assert select(plan, frozenset(), no_clock, exclude=[a]) is b  # the rotation starts at a
    assert select(plan, frozenset(), no_clock, exclude=[c]) is a  # it starts at c, after b
    assert select(plan, frozenset(), no_clock, exclude=[a, b, c]) is None


def test_a_member_that_is_not_ready_is_admitted_through_its_breaker_reading_the_clock_once() -> (
    None
):
    """Only a breaker that is not CLOSED is visited, and the clock is read at most once
    per resolve however many are."""
    opened = member("opened", Priority.HIGH, seq=0, breaker=CircuitBreaker("opened"))
    opened.breaker.force_open(0.0, duration=100.0)
    half = member("half", seq=1, breaker=CircuitBreaker("half"))
    half.breaker.force_open(0.0, duration=10.0)
    plan: Plan[Member] = []
    for each in (opened, half, member("closed", Priority.LOW, seq=2)):
        each.refresh()
        plan_insert(plan, each)
    reads: list[float] = []

    def clock() -> float:
        reads.append(50.0)
        return 50.0

    assert select(plan, frozenset(), clock) is half
    assert reads == [50.0]
    assert half.breaker.probes_in_flight == 1


def test_refresh_marks_a_routable_member_with_a_closed_breaker_ready() -> None:
    """``ready`` lets the walk return a member without visiting its breaker."""
    each = member("a")
    assert each.routable
    assert each.ready is True
    each.breaker.force_open(0.0)
    each.refresh()
    assert (each.routable, each.ready) == (True, False)
    plan: Plan[Member] = []
    plan_insert(plan, member("b"))
    assert select(plan, frozenset(), no_clock) is plan[0].members[0]


async def test_round_robin_continues_after_an_unregister_in_front_of_the_cursor(
    autojump_clock: trio.testing.MockClock, registry: Registry
) -> None:
    """The cursor's index hint is stale once a member before it goes: the rotation
    still continues after the member chosen last."""
    for x in "abcd":
        registry.register("H", "llm", Plain(x), strategy="round_robin", name=x)
    assert [registry.get_service_nowait("H", "llm").label for _ in range(2)] == ["a", "b"]
    registry.unregister("a")
    assert [registry.get_service_nowait("H", "llm").label for _ in range(4)] == [
        "c",
        "d",
        "b",
        "c",
    ]


# -- explain_plan and skip reasons ------------------------------------------------------


def explain_one(each: Member, **options: Any) -> Candidate:
    plan: Plan[Member] = []
    plan_insert(plan, each)
    (row,), _ = explain_plan("H", plan, frozenset(options.pop("required", ())), 100.0, **options)
    return row


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"status": ActorStatus.STARTING}, "actor starting"),
        ({"status": ActorStatus.RESTARTING}, "actor restarting"),
        ({"status": ActorStatus.FAILED}, "actor failed"),
        ({"status": ActorStatus.STOPPED}, "actor stopped"),
        ({"healthy": False, "has_health_check": True}, "last health check failed"),
        ({"healthy": None, "has_health_check": True}, "first health check pending"),
    ],
)
def test_explain_skips_a_member_its_actor_or_health_keeps_out_saying_why(
    fields: dict[str, Any], reason: str
) -> None:
    row = explain_one(member("a", **fields))
    assert (row.verdict, row.reason, row.open_until) == ("skipped", reason, None)


@pytest.mark.parametrize(
    "fields",
    [
        {"healthy": True, "has_health_check": True},
        {"healthy": None, "has_health_check": False},
    ],
    ids=["passed-its-check", "no-health-check"],
)
def test_explain_chooses_a_running_member_whose_health_allows_it(fields: dict[str, Any]) -> None:
    row = explain_one(member("a", **fields))
    assert (row.verdict, row.reason) == ("chosen", "first available")


def test_explain_says_a_member_already_tried_in_this_call_was_skipped() -> None:
    tried = member("a")
    row = explain_one(tried, exclude=[tried])
    assert (row.verdict, row.reason) == ("skipped", "already tried in this call")


def test_explain_says_how_long_an_open_circuit_stays_open_and_until_when() -> None:
    each = member("a")
    each.breaker.force_open(50.0, duration=51.5)  # open until 101.5; explained at 100
    row = explain_one(each)
    assert (row.verdict, row.reason, row.open_until) == (
        "skipped",
        "circuit open for another 1.5 s",
        101.5,
    )


def test_explain_says_a_half_open_circuit_has_its_probe_quota_in_use() -> None:
    breaker = CircuitBreaker("a", CircuitBreakerConfig(half_open_max_calls=1))
    breaker.force_open(0.0, duration=1.0)
    assert breaker.acquire(1.0)  # the one permit is out
    row = explain_one(member("a", breaker=breaker))
    assert (row.verdict, row.reason, row.open_until) == (
        "skipped",
        "circuit half-open, probe quota in use",
        None,
    )


def test_explain_gives_the_first_reason_in_the_documented_order() -> None:
    """Capabilities, then this call's tries, then the actor, then health, then the
    breaker (docs/semantics.md, section 1.8)."""
    breaker = CircuitBreaker("a")
    breaker.force_open(0.0, duration=1000.0)
    fields: dict[str, Any] = {
        "status": ActorStatus.FAILED,
        "healthy": False,
        "has_health_check": True,
        "breaker": breaker,
    }
    each = member("a", **fields)
    assert explain_one(each, required={"x"}, exclude=[each]).reason == "lacks capabilities ['x']"
    assert explain_one(each, exclude=[each]).reason == "already tried in this call"
    assert explain_one(each).reason == "actor failed"
    each.status = ActorStatus.RUNNING
    assert explain_one(each).reason == "last health check failed"
    each.healthy = True
    assert explain_one(each).reason.startswith("circuit open for another")
    # An open breaker is not why a member lacking a capability was skipped.
    assert explain_one(each, required={"x"}).open_until is None


def test_explain_plan_rows_say_scope_group_strategy_and_who_was_not_reached() -> None:
    plan: Plan[Member] = []
    plan_insert(plan, member("first", Priority.HIGH, group=3, seq=0))
    plan_insert(plan, member("second", Priority.LOW, group=3, seq=1))
    rows, chosen = explain_plan("H", plan, frozenset(), 0.0)
    assert chosen
    assert [(r.scope, r.group, r.strategy, r.name, r.priority) for r in rows] == [
        ("H", 3, SelectionStrategy.FALLBACK, "first", Priority.HIGH),
        ("H", 3, SelectionStrategy.FALLBACK, "second", Priority.LOW),
    ]
    assert [(r.verdict, r.reason, r.open_until) for r in rows] == [
        ("chosen", "first available", None),
        ("not reached", "an earlier candidate was chosen", None),
    ]
    # An earlier scope already chose: nothing here is reached.
    rows, chosen = explain_plan("*", plan, frozenset(), 0.0, chosen=True)
    assert chosen
    assert [r.verdict for r in rows] == ["not reached", "not reached"]
    # Nothing available: nothing chosen.
    rows, chosen = explain_plan("*", plan, frozenset({"x"}), 0.0)
    assert not chosen
    assert [r.verdict for r in rows] == ["skipped", "skipped"]


def test_explain_walks_a_round_robin_group_from_its_cursor_without_moving_it() -> None:
    plan, (a, b, c) = round_robin("a", "b", "c")
    rows, _ = explain_plan("H", plan, frozenset(), 0.0)
    assert [r.name for r in rows] == ["a", "b", "c"]  # no cursor yet: the first member
    assert select(plan, frozenset(), no_clock) is a
    assert select(plan, frozenset(), no_clock) is b
    for _ in range(2):
        rows, _ = explain_plan("H", plan, frozenset(), 0.0)
        assert [(r.name, r.verdict) for r in rows] == [
            ("c", "chosen"),
            ("a", "not reached"),
            ("b", "not reached"),
        ]
        assert rows[0].reason == "next in rotation"
        assert rows[0].strategy is SelectionStrategy.ROUND_ROBIN
    assert select(plan, frozenset(), no_clock) is c
