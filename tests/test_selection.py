"""The selection policy (``selection.py``): plans kept in order as members come and go
(pure), round-robin cursors (through a registry), and spans written for people."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import given, settings, strategies as st

from ciris_actors import CircuitBreaker, Priority, Registry, SelectionStrategy
from ciris_actors.selection import Member, Plan, format_span, plan_insert, plan_remove

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
    [(0.42, "0.4 s"), (9.96, "10.0 s"), (52.4, "52 s"), (840.0, "14 min"), (12_600.0, "3.5 h")],
)
def test_spans_are_written_for_people(seconds: float, words: str) -> None:
    assert format_span(seconds) == words
