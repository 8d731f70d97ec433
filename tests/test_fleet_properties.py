"""Property-based tests of fleet state: random work across several registries sharing one
MemoryFleet, on virtual time, checked against the store after every step."""

from __future__ import annotations

import contextlib
from typing import Any

import trio
import trio.testing
from hypothesis import given, note, settings, strategies as st

from ciris_actors import CircuitState, Outcome, Registry
from ciris_actors.fleet import MemoryFleet, VerdictKind

from .conftest import run_on_virtual_time
from .fleet_harness import KeyRevoked, MemoryHarness, RateLimited, node

NODES = ("a", "b", "c")
PROVIDERS = ("primary", "backup")

steps = st.one_of(
    st.tuples(st.just("fail"), st.sampled_from(NODES), st.sampled_from(PROVIDERS)),
    st.tuples(
        st.just("rate_limited"),
        st.sampled_from(NODES),
        st.sampled_from(PROVIDERS),
        st.floats(0.1, 30.0),
    ),
    st.tuples(st.just("disable"), st.sampled_from(NODES), st.sampled_from(PROVIDERS)),
    st.tuples(st.just("reset"), st.sampled_from(NODES), st.sampled_from(PROVIDERS)),
    st.tuples(
        st.just("force_open"),
        st.sampled_from(NODES),
        st.sampled_from(PROVIDERS),
        st.floats(0.1, 30.0),
    ),
    st.tuples(st.just("serve"), st.sampled_from(NODES), st.booleans()),
    st.tuples(st.just("wait"), st.floats(0.0, 8.0)),
    st.tuples(st.just("partition"), st.sampled_from(NODES)),
    st.tuples(st.just("heal"), st.sampled_from(NODES)),
)


def _state(registry: Registry, name: str) -> CircuitState:
    return CircuitState(next(v for v in registry.snapshot() if v.name == name).breaker["state"])


def _act(registries: dict[str, Registry], hub: MemoryFleet, step: tuple[Any, ...]) -> None:
    kind = step[0]
    if kind == "partition":
        hub.partition(step[1])
    elif kind == "heal":
        hub.heal(step[1])
    elif kind != "wait":
        registry = registries[step[1]]
        if kind == "fail":
            for _ in range(2):
                registry.report_failure(step[2])
        elif kind == "rate_limited":
            registry.report_failure(step[2], error=RateLimited(step[3]))
        elif kind == "disable":
            registry.report_failure(step[2], error=KeyRevoked())
        elif kind == "reset":
            registry.reset_circuit_breaker(step[2])
        elif kind == "force_open":
            registry.force_open(step[2], step[3])
        else:  # serve one request, as a prober would
            with contextlib.suppress(Exception):
                ticket = registry.admit("agent", "llm")
                if ticket is not None:
                    registry.settle(ticket, Outcome.SUCCESS if step[2] else Outcome.FAILURE)


def _connected(registry: Registry, hub: MemoryFleet, name: str) -> bool:
    fleet = registry.fleet_status()
    assert fleet is not None
    return not hub.is_cut(name) and fleet.reachable and not fleet.pending


def _check_closed(registries: dict[str, Registry], hub: MemoryFleet, provider: str) -> None:
    """With a quorum of one, every open is reported and becomes a verdict: a connected
    node with nothing waiting holds no provider open that the store holds no verdict
    about (closed, reset, or never opened)."""
    for name, registry in registries.items():
        if _connected(registry, hub, name):
            assert _state(registry, provider) is not CircuitState.OPEN, (name, provider)


@settings(max_examples=200, deadline=None)
@given(st.lists(steps, max_size=25), st.sampled_from([1, 2]))
def test_every_connected_node_holds_open_what_the_store_holds_open_and_nothing_it_closed(
    script: list[tuple[Any, ...]], quorum: int
) -> None:
    """Convergence: once the fleet is quiet, a node that reaches the store keeps every
    provider OPEN whose store verdict has not reached its deadline (disables for ever);
    with a quorum of one, it holds none open that the store does not; and epochs only
    grow."""

    async def scenario() -> None:
        harness = MemoryHarness(MemoryFleet(quorum=quorum))
        hub = harness.hub
        assert hub is not None
        observer = hub.node("observer")
        async with (
            node(harness, "a", quorum=quorum) as a,
            node(harness, "b", quorum=quorum) as b,
            node(harness, "c", quorum=quorum) as c,
        ):
            registries = {"a": a, "b": b, "c": c}
            epochs: dict[str, int] = {}
            for step in script:
                note(f"t={trio.current_time():.3f} {step}")
                _act(registries, hub, step)
                if step[0] == "wait":
                    await trio.sleep(step[1])
                await trio.testing.wait_all_tasks_blocked()
                snapshot = await observer.read()
                if quorum == 1:
                    held = {v.provider for v in snapshot.verdicts if v.opens}
                    for provider in PROVIDERS:
                        if provider not in held:
                            _check_closed(registries, hub, provider)
                for verdict in snapshot.verdicts:
                    assert verdict.epoch >= epochs.get(verdict.provider, 0)
                    epochs[verdict.provider] = verdict.epoch
                    if not verdict.opens:
                        continue
                    if verdict.until <= snapshot.now:
                        continue  # the probe's turn: a node may be half-open
                    for name, registry in registries.items():
                        if not _connected(registry, hub, name):
                            continue
                        assert _state(registry, verdict.provider) is CircuitState.OPEN, (
                            name,
                            verdict,
                            snapshot.now,
                            registry.view(verdict.provider).breaker,
                        )
                        if verdict.kind is VerdictKind.DISABLED:
                            view = next(
                                v for v in registry.snapshot() if v.name == verdict.provider
                            )
                            assert view.disabled is not None

    run_on_virtual_time(scenario)
