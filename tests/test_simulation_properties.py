"""Property-based test of the simulation engine: random providers, traffic and faults,
run through the real registry, never lose a request and never break a routing rule."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings, strategies as st

from ciris_actors.simulation import Report, Scenario, parse_scenario, simulate
from ciris_actors.simulation._trio_private import seed_scheduler
from ciris_actors.simulation.engines import ENGINES, Engine
from ciris_actors.testing.strategies import breaker_configs, fault_schedules

from .conftest import run_on_virtual_time

SERVICE_TYPES = ("llm", "embedding")
#: Weighted towards requests someone can serve, so most of them reach the router.
CAPABILITY_SETS: tuple[list[str], ...] = (
    ["chat", "vision"],
    ["chat", "vision"],
    ["chat"],
    ["vision"],
    ["chat", "long_context"],
    [],
)
REQUIRED_SETS: tuple[list[str], ...] = ([], [], ["chat"], ["vision"], ["chat", "vision"])
#: Breakers within the bounds a few minutes of traffic exercise.
breakers = breaker_configs(max_threshold=3, min_seconds=1.0, max_seconds=60.0, max_backoff=2.0)


@st.composite
def latencies(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["fixed", "uniform", "exponential", "lognormal"]))
    median = draw(st.floats(0.0, 3.0))
    if kind == "uniform":
        low = draw(st.floats(0.0, 2.0))
        return {"distribution": kind, "low": low, "high": low + draw(st.floats(0.0, 4.0))}
    if kind == "lognormal":
        median = max(median, 0.01)
        return {"distribution": kind, "median": median, "p99": median * draw(st.floats(1.0, 6.0))}
    return {"distribution": kind, "median": median}


@st.composite
def providers(draw: st.DrawFn, index: int) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": f"p{index}",
        "service_type": draw(st.sampled_from(SERVICE_TYPES)),
        "handler": draw(st.sampled_from(["*", "H"])),
        "group": draw(st.integers(0, 2)),
        "priority": draw(st.sampled_from(["CRITICAL", "HIGH", "NORMAL", "LOW", "FALLBACK"])),
        "strategy": draw(st.sampled_from(["fallback", "round_robin"])),
        "capabilities": draw(st.sampled_from(CAPABILITY_SETS)),
        "latency": draw(latencies()),
        "error_rate": draw(st.sampled_from([0.0, 0.0, 0.0, 0.01, 0.2, 1.0])),
        "health_check": draw(st.booleans()),
        "start_delay": draw(st.sampled_from([0.0, 0.0, 2.0])),
    }
    return spec


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A random scenario: its providers and traffic as a scenario file gives them, its
    breakers and fault schedule from the public strategies."""
    count = draw(st.integers(1, 5))
    specs = [draw(providers(i)) for i in range(count)]
    names = [spec["name"] for spec in specs]
    served_types = sorted({spec["service_type"] for spec in specs})
    duration = draw(st.floats(60.0, 300.0))
    mix = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "handler": st.sampled_from(["*", "H"]),
                    "service_type": st.sampled_from(served_types),
                    "required_capabilities": st.sampled_from(REQUIRED_SETS),
                    "weight": st.floats(0.1, 5.0),
                }
            ),
            min_size=1,
            max_size=3,
        )
    )
    data = {
        "name": "random",
        "seed": draw(st.integers(0, 2**16)),
        "registry": {
            "health_check_interval": draw(st.sampled_from([None, 2.0, 10.0, 30.0])),
            # Errors classified (a reroute to long_context, or an overflow ignored) or not.
            "classify": draw(st.sampled_from(["http", "none"])),
            "context_overflow": draw(st.sampled_from([["long_context"], []])),
            "restart_policy": {
                "max_restarts": draw(st.integers(0, 3)),
                "within": draw(st.floats(1.0, 60.0)),
                "initial": draw(st.floats(0.0, 2.0)),
            },
        },
        "providers": specs,
        "workload": {
            "duration": duration,
            "rate": draw(st.floats(1.0, 10.0)),
            "arrival": draw(st.sampled_from(["poisson", "uniform"])),
            "concurrency": draw(st.sampled_from([3, 1000])),
            "mode": draw(st.sampled_from(["call", "lease"])),
            "mix": mix,
            "long_share": draw(st.sampled_from([0.0, 0.3, 1.0])),
        },
    }
    scenario = parse_scenario(data)
    return attrs.evolve(
        scenario,
        default_breaker=draw(breakers),
        providers=tuple(
            attrs.evolve(spec, breaker=draw(st.none() | breakers)) for spec in scenario.providers
        ),
        faults=tuple(draw(fault_schedules(names, duration, max_faults=4))),
    )


def run(scenario: Scenario, engine: Engine) -> Report:
    """Run the scenario inside the test's own trio run (under the deadlock watchdog),
    scheduler seeded as ``run_scenario`` does, so a failing example replays exactly."""
    seed_scheduler(scenario.seed)
    reports: list[Report] = []

    async def main() -> None:
        reports.append(await simulate(scenario, engine=engine))

    run_on_virtual_time(main)
    return reports[0]


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=40, deadline=None)
@given(scenario=scenarios())
def test_random_scenarios_never_lose_a_request_and_never_violate_an_invariant(
    engine: Engine, scenario: Scenario
) -> None:
    """Whatever the providers, traffic and faults, on either engine: every request sent
    ends as exactly one of succeeded, failed, rejected or shed, no routing decision
    breaks a rule (open breaker, capability, unroutable, tier, probe quota), and the
    registry counts every attempt once, as served, wasted or ignored."""
    report = run(scenario, engine)
    result = report.as_dict()
    requests = result["requests"]
    outcomes = ("succeeded", "failed", "rejected", "shed")
    assert requests["sent"] == sum(requests[outcome] for outcome in outcomes), requests
    assert requests["accounted"] is True
    assert result["invariants"]["violation_count"] == 0, report.violations
    assert report.violations == []
    assert report.ok
    counted = [p.outcomes for p in report.providers]
    assert report.attempts.made == sum(o.success + o.wasted + o.ignored for o in counted)
    assert report.attempts.wasted == sum(o.wasted for o in counted)
    assert not any(o.cancelled for o in counted)
