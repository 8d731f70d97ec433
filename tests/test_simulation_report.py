"""The simulation report: its typed fields, and its JSON, whose shape is pinned here so
that a change to the report's classes that renames, drops, adds or retypes a field fails
a test rather than a user's script that reads the JSON."""

from __future__ import annotations

import json
import re
from typing import Any

import attrs
import pytest

import ciris_actors.selection
from ciris_actors.simulation import (
    FaultKind,
    Report,
    Scenario,
    Violation,
    parse_scenario,
    run_scenario,
)

from .helpers import first_member_whatever_its_state

#: A two-minute run that fills every list of the report: an outage (breaker opens,
#: failing health checks), a crash loop that makes the secondary FAILED (restarts, an
#: actor failure, a down window that never ends), and one fault of every other kind
#: (the class faults too: long requests, and a spare with long_context to reroute to).
SCENARIO: dict[str, Any] = {
    "name": "every-field",
    "seed": 7,
    "registry": {
        "health_check_interval": 5.0,
        "breaker": {
            "failure_threshold": 2,
            "recovery_timeout": 10.0,
            "success_threshold": 1,
            "timeout_duration": 2.0,
        },
        "restart_policy": {"max_restarts": 2, "within": 30.0, "initial": 0.5},
    },
    "providers": [
        {"name": "primary", "priority": "CRITICAL", "capabilities": ["chat"], "latency": 0.2},
        {"name": "secondary", "priority": "HIGH", "capabilities": ["chat"], "latency": 0.3},
        {"name": "spare", "group": 1, "capabilities": ["chat", "long_context"],
         "latency": 0.4},
    ],
    "workload": {"duration": 120.0, "rate": 5.0, "long_share": 0.3},
    "faults": [
        {"kind": "outage", "provider": "primary", "at": 12.3, "duration": 20.0},
        {"kind": "crash", "provider": "secondary", "at": 41.7, "duration": 10.0, "interval": 1.0},
        {"kind": "errors", "provider": "primary", "at": 61.1, "duration": 5.0, "error_rate": 0.5},
        {"kind": "latency", "provider": "primary", "at": 71.9, "duration": 5.0,
         "added_latency": 5.0},
        {"kind": "flap", "provider": "spare", "at": 80.4, "duration": 20.0, "period": 5.0},
        {"kind": "slow_start", "provider": "spare", "at": 100.2, "duration": 5.0},
        {"kind": "rate_limit", "provider": "primary", "at": 50.3, "duration": 4.0,
         "retry_after": 3.0},
        {"kind": "bad_credentials", "provider": "primary", "at": 108.1, "duration": 4.0},
        {"kind": "context_overflow", "provider": "primary", "at": 88.3, "duration": 10.0},
    ],
}  # fmt: skip

# -- the pinned shape ----------------------------------------------------------------------
# A leaf is a type name ("int", "float", "str", "bool"; "float?" may also be null). A dict
# with the single key "*" maps any key (a provider name) to its value's shape. A list of
# one shape is a JSON array whose every item has that shape.

PERCENTILES = {"p50": "float?", "p95": "float?", "p99": "float?", "count": "int"}
PHASE = {
    "start": "float",
    "end": "float",
    "requests": "int",
    "availability": "float?",
    "latency": PERCENTILES,
    "failed_over": "int",
}
WINDOWS = {"*": [["float?"]]}
SHAPE: dict[str, Any] = {
    "scenario": "str",
    "seed": "int",
    "duration": "float",
    "mode": "str",
    "requests": {
        "sent": "int",
        "succeeded": "int",
        "failed": "int",
        "rejected": "int",
        "shed": "int",
        "accounted": "bool",
    },
    "availability": "float?",
    "oracle_availability": "float?",
    "availability_gap": "float?",
    "latency": PERCENTILES,
    "providers": {
        "*": {
            "group": "int",
            "priority": "str",
            "served": "int",
            "first_attempts": "int",
            "breaker_opens": "int",
            "restarts": "int",
            "failed": "bool",
            "share": "float",
            "outcomes": {
                "success": "int", "failure": "int", "ignored": "int", "rate_limited": "int",
                "disabled": "int", "rerouted": "int", "timeout": "int", "cancelled": "int",
            },
        }
    },
    "faults": [
        {
            "index": "int",
            "kind": "str",
            "provider": "str",
            "at": "float",
            "duration": "float",
            "time_to_detect": "float?",
            "time_to_failover": "float?",
            "time_to_recover": "float?",
            "phases": {"before": PHASE, "during": PHASE, "after": PHASE},
            "in_use_before": "bool",
            "served_during": {"*": "int"},
        }
    ],
    "timeline": {
        "bucket_seconds": "float",
        "buckets": [
            {"start": "float", "served": {"*": "int"}, "failed": "int", "rejected": "int",
             "shed": "int"}
        ],
    },
    "breaker_transitions": [
        {"time": "float", "provider": "str", "old": "str", "new": "str", "reason": "str"}
    ],
    "restarts": [{"time": "float", "provider": "str", "restarts": "int", "delay": "float"}],
    "actor_failures": [{"time": "float", "provider": "str", "error": "str"}],
    "down_windows": WINDOWS,
    "unhealthy_windows": WINDOWS,
    "invariants": {
        "checks": "int",
        "violation_count": "int",
        "violations": [{"time": "float", "rule": "str", "detail": "str"}],
    },
    "events_dropped": "int",
    "classify": "str",
    "attempts": {"made": "int", "wasted": "int", "wasted_per_request": "float?"},
    "routing": {"spilled": {"*": "int"}, "retries_refused": "int", "hedges_started": "int",
                "hedges_won": "int"},
}  # fmt: skip

_LEAVES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (float,),
    "str": (str,),
    "bool": (bool,),
}


def check_shape(value: Any, shape: Any, where: str, seen: set[str]) -> None:
    """Assert that JSON *value* has *shape*; add to *seen* every list path that had items."""
    if isinstance(shape, str):
        if shape.endswith("?") and value is None:
            return
        kinds = _LEAVES[shape.rstrip("?")]
        # bool is an int to isinstance, and an int is not a float in JSON: be exact.
        assert type(value) in kinds, f"{where}: expected {shape}, got {value!r}"
        return
    if isinstance(shape, list):
        assert isinstance(value, list), f"{where}: expected an array, got {value!r}"
        if value:
            seen.add(where)
        for i, item in enumerate(value):
            check_shape(item, shape[0], f"{where}[{i}]", seen)
        return
    assert isinstance(value, dict), f"{where}: expected an object, got {value!r}"
    if set(shape) == {"*"}:
        for item in value.values():
            check_shape(item, shape["*"], f"{where}.*", seen)
        return
    assert sorted(value) == sorted(shape), f"{where}: keys {sorted(value)} != {sorted(shape)}"
    for key, item in value.items():
        check_shape(item, shape[key], f"{where}.{key}" if where else key, seen)


def list_paths(shape: Any, where: str = "") -> set[str]:
    """Every path of *shape* that is a list (what a report must fill to be checked)."""
    if isinstance(shape, list):
        return {where} | list_paths(shape[0], f"{where}[i]")
    if isinstance(shape, dict):
        paths: set[str] = set()
        for key, item in shape.items():
            paths |= list_paths(item, f"{where}.{key}" if where else key)
        return paths
    return set()


def normalized(path: str) -> str:
    """``faults[3].phases`` -> ``faults[i].phases``."""
    return re.sub(r"\[\d+\]", "[i]", path)


def scenario() -> Scenario:
    return parse_scenario(SCENARIO)


@pytest.fixture(scope="module")
def report() -> Report:
    return run_scenario(scenario())


def test_the_json_report_has_the_pinned_shape(
    report: Report, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ciris_actors.selection, "select", first_member_whatever_its_state)
    broken = run_scenario(scenario())
    seen: set[str] = set()
    for each in (report, broken):
        check_shape(json.loads(each.to_json()), SHAPE, "", seen)
    # Every array of the shape was checked against at least one item.
    assert {normalized(path) for path in seen} == list_paths(SHAPE)
    assert broken.violations, "the broken router should have broken a rule"


def test_as_dict_is_the_json_data_before_rounding(report: Report) -> None:
    """as_dict() is what to_json() writes, before floats are rounded: a FAILED provider's
    last down window ends at infinity there, and at null in the JSON."""
    data = report.as_dict()
    text = report.to_json()
    assert set(data) == set(SHAPE)
    assert data["down_windows"]["secondary"][-1][1] == float("inf")
    assert json.loads(text)["down_windows"]["secondary"][-1][1] is None
    assert json.loads(text)["seed"] == data["seed"] == 7
    assert list(data["providers"]) == ["primary", "secondary", "spare"]  # scenario order
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_fault_entries_follow_the_scenario(report: Report) -> None:
    faults = report.as_dict()["faults"]
    kinds = [f["kind"] for f in faults]
    assert kinds == [
        "outage",
        "crash",
        "errors",
        "latency",
        "flap",
        "slow_start",
        "rate_limit",
        "bad_credentials",
        "context_overflow",
    ]
    assert [f["index"] for f in faults] == list(range(9))
    assert report.ok


def test_typed_fields_are_what_the_json_says(report: Report) -> None:
    data = report.as_dict()
    assert report.requests.sent == data["requests"]["sent"] > 0
    assert report.requests.unserved == sum(
        data["requests"][k] for k in ("failed", "rejected", "shed")
    )
    assert report.availability == data["availability"]
    assert report.latency.p99 == data["latency"]["p99"]
    secondary = report.provider("secondary")
    assert secondary.failed is data["providers"]["secondary"]["failed"] is True
    assert [p.name for p in report.providers] == list(data["providers"])
    crash = report.faults[1]
    assert crash.kind is FaultKind.CRASH
    assert crash.end == crash.at + crash.duration
    assert crash.phases.during.requests == data["faults"][1]["phases"]["during"]["requests"]
    buckets = data["timeline"]["buckets"]
    assert report.timeline.served("primary") == [b["served"]["primary"] for b in buckets]
    assert [b.total for b in report.timeline.buckets] == [
        sum(b["served"].values()) + b["failed"] + b["rejected"] + b["shed"] for b in buckets
    ]
    assert [t.new.value for t in report.breaker_transitions] == [
        t["new"] for t in data["breaker_transitions"]
    ]
    assert report.restarts[0].provider == "secondary"
    assert report.actor_failures[0].provider == "secondary"
    assert report.down_windows_of("secondary")[-1].end == float("inf")
    assert report.down_windows_of("primary") == ()
    assert [w.start for w in report.unhealthy_windows_of("primary")] == [
        start for start, _ in data["unhealthy_windows"]["primary"]
    ]
    with pytest.raises(KeyError):
        report.provider("nobody")


def test_violations_are_typed_and_also_json_ready(report: Report) -> None:
    """Report.violations keeps its JSON-ready form; invariants.violations is typed."""
    violation = Violation(42.0, "open-breaker", "routed to primary while OPEN")
    broken = attrs.evolve(
        report,
        invariants=attrs.evolve(report.invariants, violation_count=1, violations=(violation,)),
    )
    assert report.ok
    assert report.violations == []
    assert not broken.ok
    assert broken.violations == [
        {"time": 42.0, "rule": "open-breaker", "detail": "routed to primary while OPEN"}
    ]
    assert json.loads(broken.to_json())["invariants"]["violations"] == broken.violations
