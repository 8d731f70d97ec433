"""Hypothesis strategies shared by the property-based tests."""

from __future__ import annotations

import attrs
from hypothesis import strategies as st

from ciris_actors import ActorStatus, Priority, SelectionStrategy

CAPABILITIES = ("chat", "structured_output", "vision")
BREAKER_STATES = ("closed", "open", "half_open", "half_open_full")


@attrs.define
class ProviderSpec:
    """One provider of a generated set, and the state it is put in."""

    scope: str  # "H" or "*"
    group: int
    priority: Priority
    strategy: SelectionStrategy
    capabilities: frozenset[str]
    breaker: str  # one of BREAKER_STATES
    status: ActorStatus
    healthy: bool | None
    has_health_check: bool


capability_sets = st.frozensets(st.sampled_from(CAPABILITIES))

provider_specs = st.builds(
    ProviderSpec,
    scope=st.sampled_from(["H", "*"]),
    group=st.integers(0, 2),
    priority=st.sampled_from(list(Priority)),
    strategy=st.sampled_from(list(SelectionStrategy)),
    capabilities=capability_sets,
    breaker=st.sampled_from(BREAKER_STATES),
    status=st.sampled_from(
        [ActorStatus.RUNNING] * 4
        + [ActorStatus.STARTING, ActorStatus.RESTARTING, ActorStatus.FAILED]
    ),
    healthy=st.sampled_from([True, True, False, None]),
    has_health_check=st.booleans(),
)

#: Commands interleaved with resolves: ("unregister", i) or ("priority", i, Priority).
commands = st.one_of(
    st.tuples(st.just("resolve")),
    st.tuples(st.just("unregister"), st.integers(0, 20)),
    st.tuples(st.just("priority"), st.integers(0, 20), st.sampled_from(list(Priority))),
    st.tuples(st.just("group"), st.integers(0, 20), st.integers(0, 2)),
)
