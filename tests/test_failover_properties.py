"""Property-based tests of selection: the registry against a brute-force oracle."""

from __future__ import annotations

import collections
from typing import Any

import trio
import trio.testing
from hypothesis import given, settings, strategies as st

from ciris_actors import (
    ActorStatus,
    CircuitBreakerConfig,
    Registry,
    SelectionStrategy,
    open_registry,
)
from ciris_actors._actors.record import ProviderRecord
from ciris_actors.control import RegistryCollector

from .conftest import run_on_virtual_time
from .strategies import ProviderSpec, capability_sets, commands, provider_specs

# One probe permit, so "half_open_full" is reachable and permits visibly run out.
CONFIG = CircuitBreakerConfig(
    failure_threshold=1, recovery_timeout=100.0, success_threshold=1, half_open_max_calls=1
)


class Instance:
    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"Instance({self.index})"


def apply_state(registry: Registry, name: str, spec: ProviderSpec) -> None:
    """Put a registered provider into the spec's breaker, actor and health state."""
    sup = registry._sup
    record: ProviderRecord = sup.providers[name]
    now = trio.current_time()
    breaker = record.breaker
    if spec.breaker == "open":
        breaker.force_open(now, 1000.0)
    elif spec.breaker in ("half_open", "half_open_full"):
        breaker.force_open(now - 2.0, 1.0)
        breaker.advance(now)
        if spec.breaker == "half_open_full":
            assert breaker.acquire(now)
    record.has_health_check = spec.has_health_check
    # A (re)starting provider has had no health check yet.
    starting = spec.status in (ActorStatus.STARTING, ActorStatus.RESTARTING)
    record.healthy = None if starting else spec.healthy
    record.status = spec.status
    record.refresh()


def available(record: ProviderRecord, required: frozenset[str], now: float) -> bool:
    """Availability written from the contract, field by field."""
    health_ok = record.healthy is True or (record.healthy is None and not record.has_health_check)
    return (
        required <= record.capabilities
        and record.status is ActorStatus.RUNNING
        and health_ok
        and record.breaker.is_available(now)
    )


def oracle(
    registry: Registry, required: frozenset[str], fallback: bool
) -> tuple[SelectionStrategy, list[ProviderRecord]] | None:
    """Brute force: the first group, in scope/group order, with an available provider;
    returns its strategy and its available providers in priority/registration order."""
    now = trio.current_time()
    records = [r for r in registry._sup.providers.values() if not r.mock]
    for scope in ["H", "*"] if fallback else ["H"]:
        in_scope = [r for r in records if r.handler == scope]
        for group in sorted({r.priority_group for r in in_scope}):
            members = sorted(
                (r for r in in_scope if r.priority_group == group),
                key=lambda r: (int(r.priority), r.seq),
            )
            candidates = [r for r in members if available(r, required, now)]
            if candidates:
                return members[0].strategy, candidates
    return None


@settings(max_examples=150, deadline=None)
@given(
    specs=st.lists(provider_specs, max_size=10),
    required=capability_sets,
    fallback=st.booleans(),
    steps=st.lists(commands, min_size=1, max_size=15),
    observed=st.booleans(),
)
def test_get_service_matches_the_oracle_and_never_returns_an_unavailable_provider(
    specs: list[ProviderSpec],
    required: frozenset[str],
    fallback: bool,
    steps: list[tuple[Any, ...]],
    observed: bool,
) -> None:
    """For random provider sets, states and interleaved unregister/priority changes, with
    or without a metrics collector attached (which swaps in the counting resolve):
    FALLBACK groups return exactly the oracle's first available provider, ROUND_ROBIN
    groups one of the oracle's group's available providers, handler-specific always
    before global, and None exactly when the oracle finds nothing. Never raises. An
    attached collector counts every hit and miss; without one nothing is counted."""

    async def scenario() -> None:
        async with open_registry(default_breaker=CONFIG, health_check_interval=None) as registry:
            if observed:
                RegistryCollector(registry)
            hits = misses = 0
            names = []
            for index, spec in enumerate(specs):
                name = registry.register(
                    spec.scope,
                    "llm",
                    Instance(index),
                    spec.priority,
                    capabilities=spec.capabilities,
                    priority_group=spec.group,
                    strategy=spec.strategy,
                )
                names.append(name)
                apply_state(registry, name, spec)
            for step in steps:
                live = list(registry._sup.providers)
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
                strategy, candidates = expected
                instances = [r.instance for r in candidates]
                if strategy is SelectionStrategy.FALLBACK:
                    assert chosen is instances[0]
                else:
                    assert chosen in instances
            with registry.observe() as counts:
                assert sum(counts.hits.values()) == (hits if observed else 0)
                assert sum(counts.misses.values()) == (misses if observed else 0)

    run_on_virtual_time(scenario)


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 8),
    unavailable=st.sets(st.integers(0, 7)),
    k=st.integers(1, 5),
)
def test_round_robin_picks_each_available_provider_within_one_of_its_fair_share(
    size: int, unavailable: set[int], k: int
) -> None:
    """Over k*n resolves of a ROUND_ROBIN group of n providers (some unavailable), every
    available provider is picked within one of its fair share, and no unavailable one
    ever is."""

    async def scenario() -> None:
        async with open_registry(default_breaker=CONFIG, health_check_interval=None) as registry:
            instances = [Instance(i) for i in range(size)]
            for i, instance in enumerate(instances):
                name = registry.register("H", "llm", instance, strategy="round_robin")
                if i in unavailable:
                    registry.force_open(name, 1000.0)
            picks = collections.Counter(
                registry.get_service_nowait("H", "llm") for _ in range(k * size)
            )
            up = [x for i, x in enumerate(instances) if i not in unavailable]
            if not up:
                assert picks == {None: k * size}
                return
            assert set(picks) <= set(up)
            fair = k * size / len(up)
            for instance in up:
                assert abs(picks[instance] - fair) <= 1

    run_on_virtual_time(scenario)
