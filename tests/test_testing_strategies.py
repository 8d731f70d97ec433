"""ciris_actors.testing.strategies: generated breaker configurations and fault schedules
are valid, generated provider sets hold only states the registry can be in, and
``stage`` really puts a registry in every one of them, for as long as it says."""

from __future__ import annotations

import contextlib
import itertools
import math
import subprocess
import sys
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import find, given, settings

from ciris_actors import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    DuplicateProviderError,
    Registry,
    RestartPolicy,
    open_registry,
)
from ciris_actors.simulation import Fault, FaultKind, parse_scenario
from ciris_actors.simulation.faults import fault_settings
from ciris_actors.testing import StagedProvider as ExportedStagedProvider, stage as exported_stage
from ciris_actors.testing.strategies import (
    ACTOR_STATES,
    BREAKER_STATES,
    HEALTH_STATES,
    STAGE_HOLD,
    STAGING_TIMEOUT,
    ProviderSpec,
    StagedProvider,
    StagingError,
    breaker_configs,
    fault_schedules,
    provider_sets,
    provider_specs,
    stage,
    staging_registry,
)

from .conftest import run_on_virtual_time


def state_of(spec: ProviderSpec) -> tuple[str, str, str, bool, bool]:
    return (spec.breaker, spec.actor, spec.health, spec.has_health_check, spec.supervised)


def possible_specs() -> list[ProviderSpec]:
    """One spec per state the registry can be in (the spec refuses the others)."""
    specs = []
    for breaker, actor, health, check, supervised in itertools.product(
        BREAKER_STATES, ACTOR_STATES, HEALTH_STATES, (False, True), (False, True)
    ):
        with contextlib.suppress(ValueError):  # a state the registry cannot be in
            specs.append(
                ProviderSpec(
                    breaker=breaker,
                    actor=actor,
                    health=health,
                    has_health_check=check,
                    supervised=supervised,
                )
            )
    return specs


def assert_in_state(registry: Registry, name: str, spec: ProviderSpec) -> None:
    """What the views say of *name*, field by field, against what *spec* asks for."""
    view = registry.view(name)
    stats = view.breaker
    assert view.actor_status.value == spec.actor, name
    assert view.health is {"healthy": True, "unhealthy": False, "unknown": None}[spec.health]
    assert view.has_health_check is spec.has_health_check, name
    if spec.breaker == "half_open_full":
        assert stats["state"] == "half_open", name
        assert stats["probes_in_flight"] == view.breaker_config.half_open_max_calls, name
    else:
        assert stats["state"] == spec.breaker, name
        assert stats["probes_in_flight"] == 0, name
    assert view.routable is spec.routable, name
    assert view.available is spec.available, name
    assert view.capabilities == spec.capabilities | {f"staged:{name.split('-')[1]}"}
    assert (view.handler, view.service_type) == (spec.handler, spec.service_type)
    assert (view.priority, view.priority_group, view.strategy) == (
        spec.priority,
        spec.priority_group,
        spec.strategy,
    )


# -- ProviderSpec ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"health": "healthy"}, "without is_healthy"),
        ({"health": "unhealthy"}, "without is_healthy"),
        ({"actor": "starting", "health": "healthy", "has_health_check": True}, "while starting"),
        ({"actor": "failed", "health": "unhealthy", "has_health_check": True}, "while failed"),
        ({"actor": "restarting", "supervised": False}, "plain provider"),
        ({"actor": "failed", "breaker": "half_open_full"}, "half_open_full"),
        ({"breaker": "half_open_full", "health": "unknown", "has_health_check": True}, "half_open"),
        ({"breaker": "shut"}, "breaker: expected one of"),
    ],
)
def test_a_spec_refuses_a_state_the_registry_cannot_be_in(
    fields: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        ProviderSpec(**fields)


def test_there_are_46_possible_states_and_the_default_spec_is_an_available_one() -> None:
    assert len(possible_specs()) == 46
    assert ProviderSpec().available
    assert ProviderSpec(capabilities=["chat"]).capabilities == frozenset({"chat"})
    with pytest.raises(TypeError, match="bare string"):
        ProviderSpec(capabilities="chat")


def test_provider_specs_reach_every_possible_state() -> None:
    """Each of the 46 states comes up (found by hypothesis, within its default budget)."""
    for wanted in possible_specs():

        def in_state(spec: ProviderSpec, wanted: ProviderSpec = wanted) -> bool:
            return state_of(spec) == state_of(wanted)

        assert state_of(find(provider_specs(), in_state)) == state_of(wanted)


@settings(max_examples=200, deadline=None)
@given(
    specs=provider_sets(
        max_size=5, handlers=["X"], service_types=["a", "b"], capabilities=["c"], groups=2
    )
)
def test_provider_sets_hold_only_possible_states_and_the_fields_asked_for(
    specs: list[ProviderSpec],
) -> None:
    """Every generated spec is in a possible state, with fields from the choices given."""
    possible = {state_of(spec) for spec in possible_specs()}
    assert len(specs) <= 5
    for spec in specs:
        assert state_of(spec) in possible
        assert spec.handler == "X"
        assert spec.service_type in ("a", "b")
        assert spec.capabilities <= {"c"}
        assert spec.priority_group in (0, 1)


@settings(max_examples=50, deadline=None)
@given(spec=provider_specs(actor_states=["failed", "starting"], breaker_states=["open"]))
def test_restricted_specs_keep_to_the_states_allowed(spec: ProviderSpec) -> None:
    assert spec.actor in ("failed", "starting")
    assert spec.breaker == "open"


def test_restrictions_that_leave_no_possible_state_are_refused() -> None:
    with pytest.raises(ValueError, match="no state"):
        provider_specs(actor_states=["failed"], health_states=["healthy"])
    with pytest.raises(ValueError, match="unknown"):
        provider_specs(breaker_states=["shut"])  # type: ignore[list-item]


# -- stage -----------------------------------------------------------------------------------


async def test_every_possible_state_is_staged_and_lasts_stage_hold(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Every state, on both handlers at once, is reached; nothing changes for
    STAGE_HOLD seconds; then open breakers go half-open and restarting providers
    start again, as the staging settings say."""
    specs = [
        attrs.evolve(spec, handler=handler) for spec in possible_specs() for handler in ("H", "*")
    ]
    async with staging_registry() as registry:
        names = await stage(registry, specs)
        assert names == [f"staged-{i}" for i in range(len(specs))]
        for name, spec in zip(names, specs, strict=True):
            assert_in_state(registry, name, spec)
        await trio.sleep(STAGE_HOLD - 1.0)
        for name, spec in zip(names, specs, strict=True):
            assert_in_state(registry, name, spec)
        await trio.sleep(2.0)
        for name, spec in zip(names, specs, strict=True):
            view = registry.view(name)
            if spec.breaker == "open":
                assert view.breaker["state"] == "half_open", name
            if spec.actor == "restarting":
                assert view.actor_status.value in ("starting", "running"), name


async def test_staged_providers_are_what_resolves_hand_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    specs = [
        ProviderSpec(handler="H", breaker="open"),
        ProviderSpec(handler="H", actor="failed"),
        ProviderSpec(handler="H", has_health_check=True, health="healthy", supervised=False),
    ]
    async with staging_registry() as registry:
        names = await stage(registry, specs, prefix="mine")
        assert names == ["mine-0", "mine-1", "mine-2"]
        chosen = registry.get_service_nowait("H", "llm")
        assert isinstance(chosen, StagedProvider)
        assert (chosen.name, chosen.index, chosen.spec) == ("mine-2", 2, specs[2])
        assert registry.get_service_nowait("H", "llm", ["mine:0"]) is None  # open
        # A second staging on the same registry takes another prefix.
        assert await stage(registry, specs[:1], prefix="more") == ["more-0"]
    assert ExportedStagedProvider is StagedProvider
    assert exported_stage is stage


@settings(max_examples=30, deadline=None)
@given(specs=provider_sets(max_size=8), config=breaker_configs(timeout_duration=STAGING_TIMEOUT))
def test_generated_provider_sets_are_staged_as_generated(
    specs: list[ProviderSpec], config: CircuitBreakerConfig
) -> None:
    """Whatever the set and the breaker configuration, every provider reaches its state."""

    async def scenario() -> None:
        async with staging_registry(default_breaker=config) as registry:
            names = await stage(registry, specs)
            for name, spec in zip(names, specs, strict=True):
                assert_in_state(registry, name, spec)

    run_on_virtual_time(scenario)


async def test_stage_works_on_a_clock_that_does_not_autojump_and_leaves_it_so(
    mock_clock: trio.testing.MockClock,
) -> None:
    async with staging_registry() as registry:
        await stage(registry, [ProviderSpec(actor="failed"), ProviderSpec(breaker="half_open")])
        assert mock_clock.autojump_threshold == math.inf
        assert trio.current_time() >= STAGE_HOLD


def test_stage_needs_the_virtual_clock() -> None:
    async def main() -> None:
        async with open_registry() as registry:
            await stage(registry, [ProviderSpec()])

    with pytest.raises(StagingError, match="virtual clock"):
        trio.run(main)


async def test_stage_says_when_the_registry_settings_cannot_hold_a_state(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pending = ProviderSpec(has_health_check=True, health="unknown")
    async with open_registry() as registry:
        with pytest.raises(StagingError, match=r"staged-0: timeout_duration 30s is too short"):
            await stage(registry, [pending])
    short = CircuitBreakerConfig(timeout_duration=60.0)
    with pytest.raises(ValueError, match="timeout_duration must be >="):
        async with staging_registry(default_breaker=short):
            pass


async def test_stage_says_which_provider_missed_its_state_and_how_it_stands(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = CircuitBreakerConfig(timeout_duration=STAGING_TIMEOUT)
    final = RestartPolicy(max_restarts=0)
    async with open_registry(restart_policy=final, default_breaker=config) as registry:
        with pytest.raises(StagingError, match=r"staged-0 should be restarting.*it is failed"):
            await stage(registry, [ProviderSpec(actor="restarting")])
    patient = RestartPolicy(max_restarts=10, within=1e6, initial=1000.0, maximum=1000.0)
    async with open_registry(restart_policy=patient, default_breaker=config) as registry:
        with pytest.raises(StagingError, match=r"waited \d+s for staged-1 to .*fail"):
            await stage(registry, [ProviderSpec(), ProviderSpec(actor="failed")])


async def test_stage_refuses_a_name_already_taken(autojump_clock: trio.testing.MockClock) -> None:
    async with staging_registry() as registry:
        registry.register("*", "llm", object(), name="staged-0")
        with pytest.raises(DuplicateProviderError, match="staged-0"):
            await stage(registry, [ProviderSpec()])


# -- breaker_configs -------------------------------------------------------------------------


@settings(max_examples=200)
@given(config=breaker_configs(max_threshold=4, min_seconds=0.5, max_seconds=90.0, max_backoff=3.0))
def test_breaker_configs_are_valid_within_their_bounds_and_open_at_their_threshold(
    config: CircuitBreakerConfig,
) -> None:
    assert CircuitBreakerConfig(**attrs.asdict(config)) == config
    for count in (config.failure_threshold, config.success_threshold, config.half_open_max_calls):
        assert 1 <= count <= 4
    assert 0.5 <= config.recovery_timeout <= 90.0
    assert 0.5 <= config.timeout_duration <= 90.0
    assert 1.0 <= config.recovery_backoff <= 3.0
    cap = config.max_recovery_timeout
    assert cap is None or config.recovery_timeout <= cap <= 90.0
    breaker = CircuitBreaker("b", config)
    for _ in range(config.failure_threshold):
        assert breaker.state is CircuitState.CLOSED
        breaker.record_failure(0.0)
    assert breaker.state is CircuitState.OPEN


def test_breaker_configs_vary_every_optional_field() -> None:
    configs = breaker_configs()
    find(configs, lambda c: c.half_open_max_calls != c.success_threshold)
    find(configs, lambda c: c.max_recovery_timeout is not None)
    find(configs, lambda c: c.max_recovery_timeout is None)
    find(configs, lambda c: c.recovery_backoff > 1.0)
    fixed = find(breaker_configs(timeout_duration=STAGING_TIMEOUT), lambda c: True)
    assert fixed.timeout_duration == STAGING_TIMEOUT
    with pytest.raises(ValueError, match="max_threshold"):
        breaker_configs(max_threshold=0)
    with pytest.raises(ValueError, match="min_seconds"):
        breaker_configs(min_seconds=2.0, max_seconds=1.0)


# -- fault_schedules -------------------------------------------------------------------------


def as_table(fault: Fault) -> dict[str, Any]:
    """A fault as a scenario file writes it."""
    table: dict[str, Any] = {
        "kind": fault.kind.value,
        "provider": fault.provider,
        "at": fault.at,
        "duration": fault.duration,
    }
    for rule in fault_settings(type(fault)):
        table[rule.name] = getattr(fault, rule.name)
    return table


@settings(max_examples=200, deadline=None)
@given(
    faults=fault_schedules(["a", "b"], 120.0, max_faults=6),
)
def test_fault_schedules_are_what_a_scenario_file_accepts_within_the_run(
    faults: list[Fault],
) -> None:
    """Every generated fault strikes a named provider inside the run, and a scenario file
    holding it parses back to the same fault (so its settings are valid)."""
    assert len(faults) <= 6
    for fault in faults:
        assert fault.provider in ("a", "b")
        assert fault.at >= 0.0
        assert fault.duration >= 1.0
        assert fault.end <= 120.0 * (1 + 1e-12)
    scenario = parse_scenario(
        {
            "providers": [{"name": "a"}, {"name": "b"}],
            "faults": [as_table(fault) for fault in faults],
        }
    )
    assert list(scenario.faults) == faults


def test_fault_schedules_cover_every_kind_and_keep_to_the_kinds_asked_for() -> None:
    for kind in FaultKind:

        def has_kind(faults: list[Fault], kind: FaultKind = kind) -> bool:
            return any(fault.kind is kind for fault in faults)

        assert has_kind(find(fault_schedules(["p"], 60.0), has_kind))
    only = find(
        fault_schedules(["p"], 60.0, kinds=["crash", FaultKind.FLAP], min_faults=3),
        lambda faults: True,
    )
    assert {fault.kind for fault in only} <= {FaultKind.CRASH, FaultKind.FLAP}
    with pytest.raises(ValueError, match="provider_names"):
        fault_schedules([], 60.0)
    with pytest.raises(ValueError, match="duration"):
        fault_schedules(["p"], math.inf)


def test_without_hypothesis_the_strategies_say_which_extra_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['hypothesis'] = None\n"
        "from ciris_actors.testing import ProviderSpec, stage\n"
        "try:\n"
        "    import ciris_actors.testing.strategies\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'ciris-actors[strategies]'" in result.stdout
