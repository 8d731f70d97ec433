"""The simulation engine: determinism, what each fault kind does to the report, the
invariant checker against a broken router, ``simulate()`` on a test's clock, and
scenario validation.

Every fault test runs the same two-provider scenario with and without the fault, so the
difference in the report is the fault's doing. Latencies are uniform and well under the
breaker deadline, so without a fault nothing fails and every number that moves is
explained by the fault.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import ciris_actors.selection
from ciris_actors.selection import Member, Plan, select
from ciris_actors.simulation import (
    Report,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
    run_scenario,
    simulate,
)

from .helpers import first_member_whatever_its_state

#: Health checks every 10 s; breaker: 3 failures open it for 20 s, 5 s call deadline.
HEALTH_INTERVAL = 10.0
TIMEOUT = 5.0
#: Faults start off the health-check beat, so detection is not a lucky coincidence.
FAULT_AT = 203.0
FAULT_DURATION = 200.0
FAULT_END = FAULT_AT + FAULT_DURATION


def scenario(
    *faults: dict[str, Any],
    mode: str = "call",
    duration: float = 600.0,
    rate: float = 5.0,
    seed: int = 3,
    workload: dict[str, Any] | None = None,
) -> Scenario:
    """A primary (CRITICAL) and a secondary (HIGH) in one FALLBACK group, under *faults*."""
    return parse_scenario(
        {
            "name": "two-providers",
            "seed": seed,
            "registry": {
                "health_check_interval": HEALTH_INTERVAL,
                "breaker": {
                    "failure_threshold": 3,
                    "recovery_timeout": 20.0,
                    "success_threshold": 1,
                    "timeout_duration": TIMEOUT,
                },
                "restart_policy": {"max_restarts": 3, "within": 60.0, "initial": 1.0},
            },
            "providers": [
                {
                    "name": "primary",
                    "priority": "CRITICAL",
                    "capabilities": ["chat"],
                    "latency": {"distribution": "uniform", "low": 0.2, "high": 1.0},
                },
                {
                    "name": "secondary",
                    "priority": "HIGH",
                    "capabilities": ["chat"],
                    "latency": {"distribution": "uniform", "low": 0.5, "high": 1.5},
                },
            ],
            "workload": {"duration": duration, "rate": rate, "mode": mode, **(workload or {})},
            "faults": list(faults),
        }
    )


def fault(kind: str, **fields: Any) -> dict[str, Any]:
    """A fault on the primary, by default from FAULT_AT for FAULT_DURATION seconds."""
    defaults = {"kind": kind, "provider": "primary", "at": FAULT_AT, "duration": FAULT_DURATION}
    return defaults | fields


def assert_accounted(report: Report) -> None:
    requests = report.as_dict()["requests"]
    outcomes = ("succeeded", "failed", "rejected", "shed")
    assert requests["sent"] == sum(requests[outcome] for outcome in outcomes), requests
    assert requests["sent"] > 0
    assert requests["accounted"] is True


def run(s: Scenario, seed: int | None = None) -> Report:
    """Run *s* and check that every request it sent is accounted for."""
    report = run_scenario(s, seed=seed)
    assert_accounted(report)
    return report


def provider(report: Report, name: str) -> dict[str, Any]:
    result: dict[str, Any] = report.as_dict()["providers"][name]
    return result


def fault_report(report: Report, index: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = report.as_dict()["faults"][index]
    return result


def served_per_bucket(report: Report, name: str, start: float, end: float) -> list[int]:
    """Requests *name* served, per timeline bucket lying wholly inside [start, end)."""
    timeline = report.as_dict()["timeline"]
    width = timeline["bucket_seconds"]
    return [
        bucket["served"][name]
        for bucket in timeline["buckets"]
        if bucket["start"] >= start and bucket["start"] + width <= end
    ]


def failed_attempts(report: Report, name: str) -> int:
    """Calls to *name* that failed. Valid when every call to *name* is a request's first
    attempt: for the primary (it ranks first), and for any provider in lease mode."""
    stats = provider(report, name)
    return int(stats["first_attempts"] - stats["served"])


def test_baseline_is_all_served_by_the_primary() -> None:
    """The reference every fault test compares against: no fault, no failure."""
    report = run(scenario())
    data = report.as_dict()
    assert report.ok
    assert data["requests"]["failed"] == data["requests"]["rejected"] == 0
    assert provider(report, "primary")["served"] == data["requests"]["sent"]
    assert provider(report, "secondary")["served"] == 0
    assert data["availability"] == data["oracle_availability"] == 1.0


# -- determinism --------------------------------------------------------------------------


def test_same_scenario_and_seed_give_byte_identical_json() -> None:
    s = scenario(fault("outage"), fault("errors", at=450.0, duration=60.0, error_rate=0.5))
    first = run(s).to_json()
    assert run(s).to_json() == first
    assert run(s, seed=s.seed).to_json() == first
    assert json.loads(first)["seed"] == s.seed


def test_a_different_seed_gives_a_different_run() -> None:
    s = scenario(fault("outage"), fault("errors", at=450.0, duration=60.0, error_rate=0.5))
    first = json.loads(run(s).to_json())
    other = json.loads(run(s, seed=s.seed + 1).to_json())
    assert other["seed"] == s.seed + 1
    # Not just the seed field: the arrivals and latencies differ.
    assert other["requests"] != first["requests"] or other["latency"] != first["latency"]


# -- one test per fault kind ------------------------------------------------------------


def test_outage_is_detected_fast_and_traffic_fails_over() -> None:
    base = run(scenario())
    report = run(scenario(fault("outage")))
    data = report.as_dict()
    outage = fault_report(report)
    assert report.ok
    assert provider(report, "primary")["served"] < provider(base, "primary")["served"]
    assert provider(report, "primary")["breaker_opens"] >= 1
    # Detected (breaker or health check) within one health-check interval, and the first
    # request routed elsewhere soon after.
    assert outage["time_to_detect"] is not None
    assert outage["time_to_detect"] < HEALTH_INTERVAL
    assert outage["time_to_failover"] is not None
    assert outage["time_to_failover"] < HEALTH_INTERVAL
    # Once detected, the secondary carries the window; the primary gets it back after.
    assert all(n == 0 for n in served_per_bucket(report, "primary", FAULT_AT + 10, FAULT_END))
    assert provider(report, "secondary")["served"] >= 0.9 * outage["phases"]["during"]["requests"]
    assert outage["time_to_recover"] is not None
    assert outage["time_to_recover"] < 2 * HEALTH_INTERVAL
    # The secondary was up throughout: failover in call mode loses nothing.
    assert data["requests"]["failed"] == 0
    assert data["availability"] == data["oracle_availability"] == 1.0


def test_errors_fault_fails_that_providers_calls_and_call_fails_over_but_lease_does_not() -> None:
    base = run(scenario())
    call = run(scenario(fault("errors", error_rate=0.1)))
    lease = run(scenario(fault("errors", error_rate=0.1), mode="lease"))
    during = fault_report(call)["phases"]["during"]["requests"]
    assert failed_attempts(base, "primary") == 0
    # About error_rate of the primary's calls inside the window fail.
    failures = failed_attempts(call, "primary")
    assert 0.05 * during < failures < 0.15 * during
    # call: each failure is retried on the secondary, so no request fails.
    assert call.as_dict()["requests"]["failed"] == 0
    assert provider(call, "secondary")["served"] >= failures
    # lease: one provider per request, no retry, so each failed call is a failed request.
    lease_failed = lease.as_dict()["requests"]["failed"]
    assert lease_failed > 0
    assert lease_failed == sum(failed_attempts(lease, name) for name in ("primary", "secondary"))
    assert lease.as_dict()["availability"] < call.as_dict()["availability"]
    assert call.ok
    assert lease.ok


def test_high_error_rate_opens_the_breaker_and_moves_traffic() -> None:
    report = run(scenario(fault("errors", error_rate=0.9)))
    errors = fault_report(report)
    assert report.ok
    assert provider(report, "primary")["breaker_opens"] >= 1
    opens = [
        t
        for t in report.as_dict()["breaker_transitions"]
        if t["provider"] == "primary" and t["new"] == "open"
    ]
    assert all(FAULT_AT <= t["time"] < FAULT_END for t in opens)
    assert errors["time_to_detect"] is not None
    assert errors["time_to_detect"] < HEALTH_INTERVAL  # three failures at 5 requests/s
    # Health checks still pass under an errors fault, so only the breaker moves traffic.
    assert provider(report, "secondary")["served"] > 0.5 * errors["phases"]["during"]["requests"]
    assert report.as_dict()["requests"]["failed"] == 0


def test_latency_beyond_the_deadline_is_a_hang_that_opens_the_breaker() -> None:
    report = run(scenario(fault("latency", added_latency=30.0)))
    hang = fault_report(report)
    phases = hang["phases"]
    assert report.ok
    assert phases["before"]["latency"]["p99"] < TIMEOUT
    # Requests caught by the hang wait out the deadline before failing over.
    assert phases["during"]["latency"]["p99"] > TIMEOUT
    assert phases["after"]["latency"]["p99"] < TIMEOUT
    assert provider(report, "primary")["breaker_opens"] >= 1
    assert hang["time_to_detect"] is not None
    assert TIMEOUT <= hang["time_to_detect"] < TIMEOUT + HEALTH_INTERVAL
    assert provider(report, "secondary")["served"] > 0.8 * phases["during"]["requests"]
    assert hang["time_to_recover"] is not None


def test_crash_within_the_restart_intensity_is_restarted_each_time() -> None:
    # Crashes at 203, 273 and 343: never more than 3 in 60 s.
    report = run(scenario(fault("crash", interval=70.0)))
    data = report.as_dict()
    assert report.ok
    assert [r["provider"] for r in data["restarts"]] == ["primary"] * 3
    assert provider(report, "primary")["restarts"] == 3
    assert data["actor_failures"] == []
    windows = data["down_windows"]["primary"]
    assert [start for start, _ in windows] == pytest.approx([203.0, 273.0, 343.0])
    assert all(end - start < 2.0 for start, end in windows)  # back-off 1 s +- jitter
    assert fault_report(report)["time_to_recover"] is not None
    assert data["requests"]["failed"] == 0


def test_crash_loop_beyond_the_restart_intensity_fails_the_actor_for_good() -> None:
    report = run(scenario(fault("crash", interval=2.0)))
    data = report.as_dict()
    assert report.ok
    assert provider(report, "primary")["restarts"] == 3  # max_restarts
    assert provider(report, "primary")["failed"] is True
    [failure] = data["actor_failures"]
    assert failure["provider"] == "primary"
    assert FAULT_AT < failure["time"] < FAULT_AT + 60.0
    # Never served again, even after the fault ended; the secondary takes over.
    assert sum(served_per_bucket(report, "primary", failure["time"], 600.0)) == 0
    assert fault_report(report)["time_to_recover"] is None
    assert all(n > 0 for n in served_per_bucket(report, "secondary", failure["time"], 600.0))
    assert data["requests"]["failed"] == 0


def test_flap_takes_the_provider_in_and_out_of_routing() -> None:
    call = run(scenario(fault("flap", period=25.0)))
    lease = run(scenario(fault("flap", period=25.0), mode="lease"))
    flap = fault_report(call)
    assert call.ok
    assert lease.ok
    assert flap["time_to_detect"] is not None
    assert flap["time_to_detect"] < HEALTH_INTERVAL
    # Failing halves [203, 228), [253, 278), [303, 328), [353, 378): each one removes the
    # primary from routing (breaker and health check) and each passing half brings it back.
    primary_opens = [
        t["time"]
        for t in call.as_dict()["breaker_transitions"]
        if t["provider"] == "primary" and t["new"] == "open"
    ]
    # Each failing half starts 7 s before a health check: the breaker sees it first.
    assert len(primary_opens) == 4
    assert all(FAULT_AT <= t < FAULT_END for t in primary_opens)
    buckets = served_per_bucket(call, "primary", 200.0, 410.0)
    stops = sum(1 for a, b in itertools.pairwise(buckets) if a > 0 and b == 0)
    assert stops == 4
    # Failover makes call mode as good as the oracle; lease mode loses the requests sent
    # to the primary before each failing half was detected.
    assert call.as_dict()["availability"] == call.as_dict()["oracle_availability"] == 1.0
    assert lease.as_dict()["oracle_availability"] == 1.0
    assert lease.as_dict()["availability_gap"] > 0
    assert lease.as_dict()["requests"]["failed"] == failed_attempts(lease, "primary")


def test_slow_start_lengthens_the_down_window_after_a_crash() -> None:
    crash = fault("crash", at=303.0, duration=1.0)  # one crash, at 303
    slow = fault("slow_start", at=250.0, duration=150.0, start_delay=30.0)
    quick = run(scenario(crash))
    slowed = run(scenario(crash, slow))
    [(start, end)] = quick.as_dict()["down_windows"]["primary"]
    [(slow_start, slow_end)] = slowed.as_dict()["down_windows"]["primary"]
    assert start == slow_start == pytest.approx(303.0)
    assert end - start < 2.0  # the restart back-off only
    assert slow_end - slow_start > 30.0  # back-off plus the 30 s start
    # The primary serves nothing while it starts, and recovery takes the start delay longer.
    assert sum(served_per_bucket(slowed, "primary", 310.0, 330.0)) == 0
    assert sum(served_per_bucket(quick, "primary", 310.0, 330.0)) > 0
    quick_recover = fault_report(quick)["time_to_recover"]
    slow_recover = fault_report(slowed)["time_to_recover"]
    assert quick_recover is not None
    assert slow_recover is not None
    assert slow_recover > quick_recover + 25.0
    assert quick.ok
    assert slowed.ok


def test_every_outcome_is_counted_once() -> None:
    """Shed (over the concurrency limit), rejected (nobody has the capability) and failed
    (lease on a failing provider) requests all show up, and add up to what was sent."""
    report = run(
        scenario(
            fault("errors", error_rate=0.5),
            mode="lease",
            workload={
                "concurrency": 2,
                "mix": [
                    {"required_capabilities": ["chat"], "weight": 3.0},
                    {"required_capabilities": ["vision"], "weight": 1.0},
                ],
            },
        )
    )
    requests = report.as_dict()["requests"]
    assert all(requests[outcome] > 0 for outcome in ("succeeded", "failed", "rejected", "shed"))
    assert report.ok


# -- the invariant checker against a broken router ---------------------------------------

Router = Callable[
    [Plan[Member], frozenset[str], Callable[[], float], Collection[Member]], Member | None
]


def last_ready_member_first(
    plan: Plan[Member],
    required: frozenset[str],
    now: Callable[[], float],
    exclude: Collection[Member] = (),
    random: Callable[[int], int] = lambda bits: 0,
) -> Member | None:
    """Broken: priority inverted inside each group (only ready members, so every other
    rule holds); the real router when none is ready."""
    for group in plan:
        for member in reversed(group.members):
            if member.ready and member not in exclude and required <= member.capabilities:
                return member
    return select(plan, required, now, exclude, random)


@pytest.mark.parametrize(
    ("router", "expected_rules"),
    [
        (first_member_whatever_its_state, {"open-breaker", "unroutable"}),
        (last_ready_member_first, {"tier"}),
    ],
)
def test_invariant_checker_catches_a_broken_router(
    monkeypatch: pytest.MonkeyPatch, router: Router, expected_rules: set[str]
) -> None:
    s = scenario(fault("outage"))
    assert run(s).violations == []
    monkeypatch.setattr(ciris_actors.selection, "select", router)
    report = run(s)
    rules = {v["rule"] for v in report.violations}
    assert rules == expected_rules
    assert report.as_dict()["invariants"]["violation_count"] >= len(report.violations) > 0
    assert not report.ok


# -- simulate() inside an existing trio run ------------------------------------------------


async def test_simulate_runs_on_the_tests_mock_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    report = await simulate(scenario(fault("outage"), duration=300.0), seed=11)
    assert_accounted(report)
    assert report.ok
    assert report.as_dict()["seed"] == 11
    assert fault_report(report)["time_to_detect"] is not None
    assert trio.current_time() - start >= 300.0  # it ran on this test's virtual clock


def test_simulate_refuses_a_run_without_a_mock_clock() -> None:
    with pytest.raises(RuntimeError, match="MockClock"):
        trio.run(simulate, scenario(duration=1.0))


# -- scenario validation ------------------------------------------------------------------

PROVIDER = '[[providers]]\nname = "a"\n'


def fault_toml(**fields: str) -> str:
    values = {"kind": '"outage"', "provider": '"a"', "at": "1.0", "duration": "2.0"} | fields
    return "[[faults]]\n" + "".join(f"{key} = {value}\n" for key, value in values.items())


@pytest.mark.parametrize(
    ("text", "field"),
    [
        pytest.param('name = "x"\n[[providers]\nname = "a"\n', "line 2", id="bad-toml"),
        pytest.param(PROVIDER + fault_toml(provider='"b"'), "faults[0].provider", id="provider"),
        pytest.param(PROVIDER + fault_toml(duration="-2.0"), "faults[0].duration", id="negative"),
        pytest.param(
            PROVIDER + "[workload]\nduration = -5.0\n", "workload.duration", id="negative-workload"
        ),
        pytest.param(PROVIDER + fault_toml(kind='"meteor"'), "faults[0].kind", id="kind"),
        pytest.param('colour = "red"\n' + PROVIDER, "colour", id="top-level-field"),
        pytest.param(PROVIDER + 'colour = "red"\n', "providers[0].colour", id="provider-field"),
        pytest.param(PROVIDER + PROVIDER, "providers[1].name", id="duplicate"),
        pytest.param(
            PROVIDER + '[[workload.mix]]\nservice_type = "vision"\n',
            "workload.mix[0].service_type",
            id="mix-service-type",
        ),
        pytest.param(PROVIDER + "error_rate = 1.5\n", "providers[0].error_rate", id="error-rate"),
        pytest.param(
            PROVIDER + fault_toml(kind='"errors"', error_rate="2.0"),
            "faults[0].error_rate",
            id="fault-error-rate",
        ),
    ],
)
def test_invalid_scenario_file_gets_one_message_naming_file_and_field(
    tmp_path: Path, text: str, field: str
) -> None:
    path = tmp_path / "broken-scenario.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert "broken-scenario.toml" in message
    assert field in message
    assert "\n" not in message


def test_valid_scenario_file_loads_with_its_faults(tmp_path: Path) -> None:
    path = tmp_path / "fine.toml"
    path.write_text(PROVIDER + fault_toml(), encoding="utf-8")
    loaded = load_scenario(path)
    assert loaded.name == "fine"
    assert [(f.provider, f.at, f.end) for f in loaded.faults] == [("a", 1.0, 3.0)]
