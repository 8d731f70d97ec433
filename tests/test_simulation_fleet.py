"""Fleet scenarios in the simulator: the ``[fleet]`` section and its errors, the bundled
fleet scenarios' stories (the store cuts the attempts sent to a dead provider to a
quarter; quorum 2 keeps one node's local problem from poisoning the others; the store
going down loses no request and every node reports it), and runs that depend on the
seed alone."""

from __future__ import annotations

import functools
from typing import Any

import attrs
import pytest

from ciris_actors.simulation import (
    Report,
    ScenarioError,
    bundled_scenarios,
    load_scenario,
    parse_scenario,
    run_scenario,
)
from ciris_actors.simulation.engines import ENGINES
from ciris_actors.simulation.model import FleetFault, Scenario


def bundled(name: str) -> Scenario:
    return load_scenario(bundled_scenarios()[name])


@functools.cache
def bundled_report(name: str) -> Report:
    """The report of a bundled scenario on its own seed (run once for the module)."""
    return run_scenario(bundled(name))


def small(**fleet: Any) -> dict[str, Any]:
    """A short two-provider fleet scenario, as TOML data."""
    return {
        "name": "small-fleet",
        "seed": 3,
        "registry": {
            "health_check_interval": 15.0,
            "breaker": {"failure_threshold": 3, "recovery_timeout": 10.0, "timeout_duration": 5.0},
        },
        "providers": [
            {"name": "primary", "priority": "CRITICAL", "latency": 0.3, "health_check": False},
            {"name": "secondary", "priority": "HIGH", "latency": 0.5},
        ],
        "workload": {"duration": 120.0, "rate": 8.0},
        "faults": [{"kind": "outage", "provider": "primary", "at": 20.3, "duration": 80.0}],
        "fleet": {"nodes": 3, **fleet},
    }


# -- the model ---------------------------------------------------------------------------


def test_a_fleet_section_gives_named_nodes_and_the_store_settings() -> None:
    scenario = parse_scenario(
        small(
            quorum=2,
            quorum_window=30.0,
            latency=0.002,
            faults=[{"kind": "partition", "nodes": ["node-2"], "at": 5, "duration": 10}],
        )
    )
    fleet = scenario.fleet
    assert fleet is not None
    assert fleet.names == ("node-1", "node-2", "node-3")
    assert (fleet.quorum, fleet.quorum_window, fleet.latency) == (2, 30.0, 0.002)
    assert fleet.faults == (FleetFault("partition", 5.0, 10.0, ("node-2",)),)


def test_a_scenario_without_a_fleet_section_has_none() -> None:
    data = small()
    del data["fleet"]
    assert parse_scenario(data).fleet is None


def test_a_provider_fault_may_strike_only_some_nodes() -> None:
    data = small()
    data["faults"][0]["nodes"] = ["node-3"]
    fault = parse_scenario(data).faults[0]
    assert fault.nodes == ("node-3",)
    assert fault.strikes("node-3")
    assert not fault.strikes("node-1")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fleet": {}}, r"^fleet\.nodes: required$"),
        ({"fleet": {"nodes": 0}}, r"^fleet\.nodes: must be >= 1, got 0$"),
        ({"fleet": {"nodes": 2.5}}, r"^fleet\.nodes: expected an integer, got 2\.5$"),
        ({"fleet": {"nodes": 3, "quorum": 4}}, r"^fleet\.quorum: must be <= nodes \(3\), got 4$"),
        ({"fleet": {"nodes": 3, "quorum": 0}}, r"^fleet\.quorum: must be >= 1, got 0$"),
        (
            {"fleet": {"nodes": 3, "quorum_window": 0}},
            r"^fleet\.quorum_window: must be > 0, got 0$",
        ),
        ({"fleet": {"nodes": 3, "latency": -1}}, r"^fleet\.latency: must be >= 0, got -1$"),
        (
            {"fleet": {"nodes": 3, "qorum": 2}},
            r"^fleet\.qorum: unknown field \(did you mean 'quorum'\?\)$",
        ),
        (
            {"fleet": {"nodes": 3, "faults": [{"kind": "split", "at": 1, "duration": 1}]}},
            r"^fleet\.faults\[0\]\.kind: unknown value 'split' \(expected one of partition,"
            r" store_down\)$",
        ),
        (
            {"fleet": {"nodes": 3, "faults": [{"kind": "partition", "at": 1, "duration": 1}]}},
            r"^fleet\.faults\[0\]\.nodes: required \(the nodes the partition cuts off\)$",
        ),
        (
            {
                "fleet": {
                    "nodes": 3,
                    "faults": [{"kind": "partition", "nodes": ["node-4"], "at": 1, "duration": 1}],
                }
            },
            r"^fleet\.faults\[0\]\.nodes: unknown node 'node-4' \(known: node-1 to node-3\)$",
        ),
        (
            {
                "fleet": {
                    "nodes": 3,
                    "faults": [{"kind": "store_down", "nodes": ["node-1"], "at": 1, "duration": 1}],
                }
            },
            r"^fleet\.faults\[0\]\.nodes: the whole store goes down; leave nodes out$",
        ),
        (
            {"fleet": {"nodes": 3, "faults": [{"kind": "store_down", "at": 1}]}},
            r"^fleet\.faults\[0\]\.duration: required$",
        ),
    ],
)
def test_a_bad_fleet_section_is_refused_naming_the_field(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario({**small(), **change})


def test_nodes_on_a_provider_fault_need_a_fleet_and_known_nodes() -> None:
    data = small()
    data["faults"][0]["nodes"] = ["node-9"]
    with pytest.raises(ScenarioError, match=r"^faults\[0\]\.nodes: unknown node 'node-9'"):
        parse_scenario(data)
    del data["fleet"]
    data["faults"][0]["nodes"] = ["node-1"]
    with pytest.raises(ScenarioError, match=r"^faults\[0\]\.nodes: needs a \[fleet\] section$"):
        parse_scenario(data)


def test_a_store_fault_among_the_provider_faults_says_where_it_belongs() -> None:
    data = small()
    data["faults"].append({"kind": "store_down", "provider": "primary", "at": 1, "duration": 1})
    with pytest.raises(
        ScenarioError, match=r"^faults\[1\]\.kind: 'store_down' is a fault of the fleet store"
    ):
        parse_scenario(data)


# -- runs ----------------------------------------------------------------------------------


def test_fleet_outage_meets_the_target_a_quarter_of_the_dead_attempts_alone() -> None:
    report = bundled_report("fleet-outage")
    fleet = report.fleet
    assert fleet is not None
    assert fleet.nodes == 8
    assert report.ok
    assert fleet.alone_ok
    primary = fleet.provider("primary")
    assert primary.alone_dead_attempts > 0
    assert primary.dead_attempts * 4 <= primary.alone_dead_attempts  # issue 13's target
    assert fleet.ratio is not None
    assert fleet.ratio <= 0.25
    # Every node shared the work: each sent fewer doomed attempts than it did alone.
    for node in fleet.per_node:
        assert node.dead_attempts < node.alone_dead_attempts
    # The same requests, to the same nodes, and nothing lost either way.
    assert sum(n.requests for n in fleet.per_node) == report.requests.sent
    assert report.requests.accounted


def test_with_quorum_2_a_node_that_cannot_reach_the_primary_never_poisons_the_others() -> None:
    scenario = bundled("fleet-partition")
    assert scenario.fleet is not None
    assert scenario.fleet.quorum == 2
    report = bundled_report("fleet-partition")
    fleet = report.fleet
    assert fleet is not None
    assert report.ok
    sick = fleet.node("node-2")
    assert sick.breaker_opens > 0
    assert sick.served_by("secondary") > sick.requests / 4  # its own traffic moved
    for node in fleet.per_node:
        if node.node != "node-2":
            assert node.breaker_opens == 0
            assert node.served_by("primary") > 0.99 * node.requests


def test_with_quorum_1_the_same_node_would_poison_the_fleet() -> None:
    scenario = bundled("fleet-partition")
    assert scenario.fleet is not None
    scenario = attrs.evolve(scenario, fleet=attrs.evolve(scenario.fleet, quorum=1))
    fleet = run_scenario(scenario).fleet
    assert fleet is not None
    healthy = [node for node in fleet.per_node if node.node != "node-2"]
    assert all(node.breaker_opens > 0 for node in healthy)
    assert all(node.served_by("secondary") > node.requests / 4 for node in healthy)


def test_a_partitioned_node_goes_on_alone_and_rejoins() -> None:
    fleet = bundled_report("fleet-partition").fleet
    assert fleet is not None
    cut = fleet.node("node-3")
    (fault,) = fleet.faults
    assert fault.nodes == ("node-3",)
    assert len(cut.degraded) == 1
    assert len(cut.restored) == 1
    assert fault.at <= cut.degraded[0] < fault.at + 1.0
    end = fault.at + fault.duration
    assert end <= cut.restored[0] <= end + 3.0  # within the retry back-off
    assert all(not n.degraded for n in fleet.per_node if n.node != "node-3")


def test_store_down_every_node_degraded_then_restored_and_no_request_lost() -> None:
    scenario = bundled("fleet-store-down")
    report = bundled_report("fleet-store-down")
    fleet = report.fleet
    assert fleet is not None
    assert scenario.fleet is not None
    (down,) = scenario.fleet.faults
    assert down.kind == "store_down"
    assert report.ok  # every invariant held, every request accounted for
    assert report.requests.accounted
    assert report.requests.succeeded + report.requests.failed == report.requests.sent
    assert report.availability == fleet.alone_availability
    for node in fleet.per_node:
        assert len(node.degraded) == 1
        assert len(node.restored) == 1
        assert down.at <= node.degraded[0] < down.at + 1.0
        assert down.end <= node.restored[0] <= down.end + 3.0


def test_small_fleet_store_down_loses_nothing() -> None:
    data = small(faults=[{"kind": "store_down", "at": 30.0, "duration": 20.0}])
    report = run_scenario(parse_scenario(data))
    fleet = report.fleet
    assert fleet is not None
    assert report.ok
    for node in fleet.per_node:
        assert node.degraded == (30.0,)
        assert len(node.restored) == 1
        assert 50.0 <= node.restored[0] <= 53.0


@pytest.mark.parametrize("engine", ENGINES)
def test_a_fleet_run_depends_on_the_seed_alone(engine: str) -> None:
    scenario = parse_scenario(small(faults=[{"kind": "store_down", "at": 50.0, "duration": 10.0}]))
    first = run_scenario(scenario, seed=5, engine=engine)  # type: ignore[arg-type]
    again = run_scenario(scenario, seed=5, engine=engine)  # type: ignore[arg-type]
    other = run_scenario(scenario, seed=6, engine=engine)  # type: ignore[arg-type]
    assert first.to_json() == again.to_json()
    assert first.to_json() != other.to_json()
    assert '"fleet"' in first.to_json()


def test_both_engines_carry_a_fleet() -> None:
    scenario = parse_scenario(small())
    events = run_scenario(scenario, engine="events")
    tasks = run_scenario(scenario, engine="tasks")
    for report in (events, tasks):
        assert report.ok
        assert report.fleet is not None
        assert report.fleet.ratio is not None
        assert report.fleet.ratio < 1


def test_a_scenario_without_a_fleet_keeps_its_report_shape() -> None:
    data = small()
    del data["fleet"]
    report = run_scenario(parse_scenario(data))
    assert report.fleet is None
    assert "fleet" not in report.as_dict()
