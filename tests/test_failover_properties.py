"""Property-based tests of selection: the registry against a brute-force oracle, on
provider sets staged into real states through the public API."""

from __future__ import annotations

import collections
from typing import Any

import attrs
import trio
from hypothesis import given, settings, strategies as st

from ciris_actors import ActorStatus, Priority, ProviderView, Registry, SelectionStrategy
from ciris_actors.testing.strategies import (
    STAGING_TIMEOUT,
    ProviderSpec,
    StagedProvider,
    breaker_configs,
    provider_sets,
    provider_specs,
    stage,
    staging_registry,
)

from .conftest import run_on_virtual_time

CAPABILITIES = ("chat", "structured_output", "vision")

#: Breakers with small probe quotas, so that half-open permits visibly run out.
configs = breaker_configs(max_threshold=3, timeout_duration=STAGING_TIMEOUT)

#: Commands interleaved with resolves: ("unregister", i), ("priority", i, Priority) or
#: ("group", i, group).
commands = st.one_of(
    st.tuples(st.just("resolve")),
    st.tuples(st.just("unregister"), st.integers(0, 20)),
    st.tuples(st.just("priority"), st.integers(0, 20), st.sampled_from(list(Priority))),
    st.tuples(st.just("group"), st.integers(0, 20), st.integers(0, 2)),
)


def admits(view: ProviderView, now: float) -> bool:
    """Whether the breaker admits a call now, from its state (semantics, 1.5 item 4)."""
    stats = view.breaker
    if stats["state"] == "closed":
        return True
    if stats["state"] == "open":
        return bool(now >= stats["next_attempt_time"])
    return bool(stats["probes_in_flight"] < view.breaker_config.half_open_max_calls)


def available(view: ProviderView, required: frozenset[str], now: float) -> bool:
    """Availability written from the contract, field by field (not the view's own
    ``routable`` or ``available``)."""
    health_ok = view.health is True or (view.health is None and not view.has_health_check)
    return (
        required <= view.capabilities
        and view.actor_status is ActorStatus.RUNNING
        and health_ok
        and admits(view, now)
    )


def oracle(
    registry: Registry, required: frozenset[str], fallback: bool
) -> tuple[SelectionStrategy, list[ProviderView]] | None:
    """Brute force: the first group, in scope/group order, with an available provider;
    returns its strategy and its available providers in priority/registration order."""
    now = trio.current_time()
    views = [v for v in registry.snapshot() if not v.mock and v.service_type == "llm"]
    for scope in ["H", "*"] if fallback else ["H"]:
        in_scope = [v for v in views if v.handler == scope]
        for group in sorted({v.priority_group for v in in_scope}):
            members = sorted(
                (v for v in in_scope if v.priority_group == group),
                key=lambda v: (int(v.priority), v.registration),
            )
            candidates = [v for v in members if available(v, required, now)]
            if candidates:
                return members[0].strategy, candidates
    return None


@settings(max_examples=150, deadline=None)
@given(
    specs=provider_sets(max_size=10, capabilities=CAPABILITIES),
    config=configs,
    required=st.frozensets(st.sampled_from(CAPABILITIES)),
    fallback=st.booleans(),
    steps=st.lists(commands, min_size=1, max_size=15),
    observed=st.booleans(),
)
def test_get_service_matches_the_oracle_and_never_returns_an_unavailable_provider(
    specs: list[ProviderSpec],
    config: Any,
    required: frozenset[str],
    fallback: bool,
    steps: list[tuple[Any, ...]],
    observed: bool,
) -> None:
    """For random provider sets staged in every breaker, actor and health state, with
    interleaved unregister/priority changes, observed or not: FALLBACK groups return
    exactly the oracle's first available provider, ROUND_ROBIN groups one of the
    oracle's group's available providers, handler-specific always before global, and
    None exactly when the oracle finds nothing. Never raises. While a resolve observer
    is attached every hit (on the provider chosen) and miss is counted; without one
    nothing is counted."""

    async def scenario() -> None:
        async with staging_registry(default_breaker=config) as registry:
            await stage(registry, specs)
            observer = registry.observe() if observed else None
            hits = misses = 0
            picks: collections.Counter[str] = collections.Counter()
            for step in steps:
                live = [v.name for v in sorted(registry.snapshot(), key=lambda v: v.registration)]
                if step[0] == "unregister" and live:
                    registry.unregister(live[step[1] % len(live)])
                elif step[0] == "priority" and live:
                    registry.update_priority(live[step[1] % len(live)], priority=step[2])
                elif step[0] == "group" and live:
                    registry.update_priority(live[step[1] % len(live)], priority_group=step[2])
                expected = oracle(registry, required, fallback)
                chosen = registry.get_service_nowait("H", "llm", required, fallback)
                hits += chosen is not None
                misses += chosen is None
                if expected is None:
                    assert chosen is None
                    continue
                assert isinstance(chosen, StagedProvider)
                picks[chosen.name] += 1
                strategy, candidates = expected
                names = [v.name for v in candidates]
                if strategy is SelectionStrategy.FALLBACK:
                    assert chosen.name == names[0]
                else:
                    assert chosen.name in names
            with registry.observe() as counts:
                assert sum(counts.hits.values()) == (hits if observed else 0)
                assert sum(counts.misses.values()) == (misses if observed else 0)
                for view in registry.snapshot():
                    assert view.selections == (picks[view.name] if observed else 0)
            if observer is not None:
                observer.detach()

    run_on_virtual_time(scenario)


#: Round-robin members that no resolve may choose, in every unavailable state: breaker
#: open or out of probe permits, actor not running, health failed or not known yet.
unavailable_members = st.one_of(
    provider_specs(handlers=["H"], capabilities=(), breaker_states=["open", "half_open_full"]),
    provider_specs(
        handlers=["H"], capabilities=(), actor_states=["starting", "restarting", "failed"]
    ),
    provider_specs(handlers=["H"], capabilities=(), health_states=["unhealthy"]),
    provider_specs(handlers=["H"], capabilities=(), health_states=["unknown"]).filter(
        lambda spec: spec.has_health_check
    ),
)


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 8),
    unavailable=st.dictionaries(st.integers(0, 7), unavailable_members),
    k=st.integers(1, 5),
)
def test_round_robin_picks_each_available_provider_within_one_of_its_fair_share(
    size: int, unavailable: dict[int, ProviderSpec], k: int
) -> None:
    """Over k*n resolves of a ROUND_ROBIN group of n providers (some unavailable, in any
    unavailable state), every available provider is picked within one of its fair
    share, and no unavailable one ever is."""
    member = ProviderSpec(handler="H", strategy=SelectionStrategy.ROUND_ROBIN)
    specs = [
        attrs.evolve(
            unavailable.get(i, member),
            priority=Priority.NORMAL,
            priority_group=0,
            strategy=SelectionStrategy.ROUND_ROBIN,
        )
        for i in range(size)
    ]

    async def scenario() -> None:
        async with staging_registry() as registry:
            names = await stage(registry, specs)
            picks = collections.Counter(
                getattr(registry.get_service_nowait("H", "llm"), "name", None)
                for _ in range(k * size)
            )
            up = [name for i, name in enumerate(names) if i not in unavailable]
            if not up:
                assert picks == {None: k * size}
                return
            assert set(picks) <= set(up)
            fair = k * size / len(up)
            for name in up:
                assert abs(picks[name] - fair) <= 1

    run_on_virtual_time(scenario)
