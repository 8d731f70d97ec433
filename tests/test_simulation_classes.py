"""Error classes in the simulator: the class fault kinds (``rate_limit``,
``bad_credentials``, ``context_overflow``) refuse calls with HTTP-shaped errors that the
registry classifies as it would a real client's; the scenario's ``classify`` option, its
``context_overflow`` capabilities and the workload's ``long_share``; both engines carrying
a request on as ``call`` does after each class; the oracle; and the report's wasted
attempts and outcomes by class.

The bundled scenarios that show each kind, run with classes and with every error a plain
failure, are in simulations/README.md; the tests here pin what their comparison shows.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from ciris_actors import ErrorClass, ProviderDisabled, open_registry
from ciris_actors.outcomes import ErrorKind, classify, classify_http, http_classifier
from ciris_actors.simulation import (
    BadCredentialsFault,
    ContextOverflowFault,
    ErrorsFault,
    Latency,
    OutageFault,
    ProviderSpec,
    RateLimitFault,
    Report,
    Scenario,
    ScenarioError,
    SimulatedError,
    SimulatedProvider,
    bundled_scenarios,
    load_scenario,
    parse_scenario,
    run_scenario,
)
from ciris_actors.simulation.engines import ENGINES
from ciris_actors.simulation.report import AttemptOutcomes
from ciris_actors.simulation.traffic import is_long, scenario_classifier

#: The classifier a scenario's registry gets by default (``classify = "http"``).
SIMULATOR_HTTP = http_classifier(context_overflow=("long_context",))


# -- the errors the class faults raise, and what a classifier makes of them -----------------


def test_a_rate_limit_is_a_429_whose_retry_after_the_classifier_reads() -> None:
    error = RateLimitFault("a", at=0.0, duration=1.0, retry_after=20.0).refusal(long=False)
    assert isinstance(error, SimulatedError)
    assert error.status_code == 429
    assert error.headers == {"retry-after": "20"}
    assert error.response is not None
    assert (error.response.status_code, dict(error.response.headers)) == (429, error.headers)
    assert classify(error, classify_http) == ErrorClass.rate_limited(20.0)
    fraction = RateLimitFault("a", 0.0, 1.0, retry_after=2.5).refusal(long=True)
    assert fraction is not None
    assert fraction.headers == {"retry-after": "2.5"}
    assert classify(fraction, SIMULATOR_HTTP) == ErrorClass.rate_limited(2.5)


def test_a_revoked_key_is_a_401_the_classifier_disables() -> None:
    error = BadCredentialsFault("a", at=0.0, duration=1.0).refusal(long=False)
    assert error is not None
    assert error.status_code == 401
    verdict = classify(error, SIMULATOR_HTTP)
    assert verdict == ErrorClass.disable("HTTP 401: invalid API key (simulated revoked key)")


def test_a_context_overflow_refuses_only_long_requests_with_a_400_rerouted_or_ignored() -> None:
    fault = ContextOverflowFault("a", at=0.0, duration=1.0)
    assert fault.refusal(long=False) is None
    error = fault.refusal(long=True)
    assert error is not None
    assert error.status_code == 400
    assert error.code == "context_length_exceeded"
    assert classify(error, SIMULATOR_HTTP) == ErrorClass.reroute(["long_context"])
    # Without context_overflow capabilities the classifier calls it the request's fault.
    assert classify(error, classify_http) == ErrorClass.ignore()
    # Every error counted as a plain failure: no classifier.
    assert classify(error, None) == ErrorClass.failure()


def test_each_refusal_is_a_new_error() -> None:
    """A raised error gathers a traceback and notes: never raise one object twice."""
    fault = RateLimitFault("a", at=0.0, duration=1.0)
    assert fault.refusal(long=False) is not fault.refusal(long=False)


@pytest.mark.parametrize(
    "classifier", [SIMULATOR_HTTP, classify_http, None], ids=["http", "http-ignore", "none"]
)
def test_a_failure_with_no_http_answer_is_a_failure_to_every_simulator_classifier(
    classifier: Any,
) -> None:
    """The events engine settles such a failure without asking a classifier: that must
    be what the registry would have made of it."""
    plain = SimulatedError("a: simulated failure")
    assert plain.status_code is None
    assert plain.response is None
    assert classify(plain, classifier).kind is ErrorKind.FAILURE


def provider(*faults: Any, error_rate: float = 0.0) -> SimulatedProvider:
    spec = ProviderSpec("a", latency=Latency(median=0.5, p99=0.5), error_rate=error_rate)
    return SimulatedProvider(spec, faults, seed=1)


def status(answer: tuple[float, SimulatedError | None]) -> int | str | None:
    error = answer[1]
    if error is None:
        return None
    return error.status_code or str(error)


def test_a_provider_answers_by_precedence_down_then_401_then_429_then_overflow() -> None:
    """A server that is down answers nothing; one that is up checks the key, then the
    quota, then the request; its own error rate comes last."""
    p = provider(
        OutageFault("a", at=10.0, duration=10.0),
        BadCredentialsFault("a", at=15.0, duration=20.0),
        RateLimitFault("a", at=5.0, duration=40.0),
        ContextOverflowFault("a", at=0.0, duration=60.0),
        ErrorsFault("a", at=0.0, duration=70.0, error_rate=1.0),
    )
    assert status(p.answer("r", at=12.0, long=True)) == "a: simulated failure"
    assert status(p.answer("r", at=25.0, long=True)) == 401
    assert status(p.answer("r", at=40.0, long=True)) == 429
    assert status(p.answer("r", at=50.0, long=True)) == 400
    assert status(p.answer("r", at=50.0, long=False)) == "a: simulated failure"  # errors
    assert status(p.answer("r", at=80.0, long=True)) is None  # every fault over
    assert p.refusal(25.0, long=True) is not None
    assert p.refusal(80.0, long=True) is None


def test_a_refused_call_takes_its_latency_and_keeps_the_random_stream_in_step() -> None:
    """Whatever the answer, a latency is drawn: a refusal moves the provider's stream on
    as an answer would, so both engines draw the same latencies."""
    spec = ProviderSpec("a", latency=Latency(median=0.5, p99=2.0))
    refused = SimulatedProvider(spec, [RateLimitFault("a", at=0.0, duration=10.0)], seed=3)
    served = SimulatedProvider(spec, [], seed=3)
    for t in (1.0, 2.0, 11.0):
        assert refused.answer(t, at=t)[0] == served.answer(t, at=t)[0]
    assert refused.decide(1.0, at=1.0)[1] is True


# -- the scenario format ----------------------------------------------------------------------


def scenario_data(**changes: Any) -> dict[str, Any]:
    """A primary and a long-context fallback; *changes* are merged into the top level,
    ``registry`` and ``workload`` tables merged into theirs."""
    data: dict[str, Any] = {
        "name": "classes",
        "seed": 4,
        "registry": {
            "health_check_interval": 10.0,
            "breaker": {
                "failure_threshold": 3,
                "recovery_timeout": 5.0,
                "success_threshold": 1,
                "timeout_duration": 5.0,
            },
        },
        "providers": [
            {"name": "primary", "priority": "CRITICAL", "latency": 0.4, "health_check": False},
            {"name": "other", "priority": "HIGH", "latency": 0.6, "health_check": False},
            {
                "name": "long",
                "group": 1,
                "capabilities": ["long_context"],
                "latency": 1.0,
                "health_check": False,
            },
        ],
        "workload": {"duration": 200.0, "rate": 5.0},
        "faults": [],
    }
    for key, value in changes.items():
        if key in ("registry", "workload"):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def test_the_new_fields_default_to_http_classes_and_no_long_requests() -> None:
    scenario = parse_scenario(
        scenario_data(
            faults=[{"kind": "rate_limit", "provider": "primary", "at": 1, "duration": 2}]
        )
    )
    assert scenario.classify == "http"
    assert scenario.context_overflow == ("long_context",)
    assert scenario.workload.long_share == 0.0
    assert scenario.faults == (RateLimitFault("primary", 1.0, 2.0, retry_after=30.0),)
    parsed = parse_scenario(
        scenario_data(
            registry={"classify": "none", "context_overflow": []},
            workload={"long_share": 0.25},
            faults=[
                {"kind": "rate_limit", "provider": "primary", "at": 1, "duration": 2,
                 "retry_after": 0},
                {"kind": "bad_credentials", "provider": "other", "at": 3, "duration": 4},
                {"kind": "context_overflow", "provider": "primary", "at": 5, "duration": 6},
            ],
        )
    )  # fmt: skip
    assert parsed.classify == "none"
    assert parsed.context_overflow == ()
    assert parsed.workload.long_share == 0.25
    assert parsed.faults == (
        RateLimitFault("primary", 1.0, 2.0, retry_after=0.0),
        BadCredentialsFault("other", 3.0, 4.0),
        ContextOverflowFault("primary", 5.0, 6.0),
    )
    assert scenario_classifier(parsed) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"registry": {"classify": "xml"}},
         "registry.classify: unknown value 'xml' (expected one of http, none)"),
        ({"registry": {"classify": 1}}, "registry.classify: expected a non-empty string, got 1"),
        ({"registry": {"clasify": "none"}},
         "registry.clasify: unknown field (did you mean 'classify'?)"),
        ({"registry": {"context_overflow": "long_context"}},
         "registry.context_overflow: expected a list of strings, got 'long_context'"),
        ({"registry": {"context_overflow": ["long_context", 3]}},
         "registry.context_overflow: expected a list of strings, got ['long_context', 3]"),
        ({"workload": {"long_share": 1.5}}, "workload.long_share: must be <= 1, got 1.5"),
        ({"workload": {"long_share": -0.1}}, "workload.long_share: must be >= 0, got -0.1"),
        ({"workload": {"long_share": True}}, "workload.long_share: expected a number, got True"),
        ({"workload": {"long_share": float("nan")}},
         "workload.long_share: must be finite, got nan"),
        ({"faults": [{"kind": "rate_limit", "provider": "primary", "at": 1, "duration": 2,
                      "retry_after": -1}]},
         "faults[0].retry_after: must be >= 0, got -1"),
        ({"faults": [{"kind": "rate_limit", "provider": "primary", "at": 1, "duration": 2,
                      "retry_after": "soon"}]},
         "faults[0].retry_after: expected a number, got 'soon'"),
        ({"faults": [{"kind": "bad_credentials", "provider": "primay", "at": 1,
                      "duration": 2}]},
         "faults[0].provider: unknown provider 'primay' (known: primary, other, long)"),
        ({"faults": [{"kind": "context_overflow", "provider": "primary", "at": 1,
                      "duration": 0}]},
         "faults[0].duration: must be > 0, got 0"),
        ({"faults": [{"kind": "rate-limit", "provider": "primary", "at": 1, "duration": 1}]},
         "faults[0].kind: unknown value 'rate-limit' (expected one of outage, errors, latency,"
         " crash, flap, slow_start, rate_limit, bad_credentials, context_overflow)"),
    ],
)  # fmt: skip
def test_a_bad_value_of_a_new_field_is_one_message_naming_it(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(scenario_data(**changes))
    assert str(caught.value) == message


# -- the registry classifies a simulated provider's errors ------------------------------------


async def test_the_registry_keeps_a_rate_limited_provider_out_until_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fixed = Latency(median=0.5, p99=0.5)
    primary = SimulatedProvider(
        ProviderSpec("primary", latency=fixed),
        [RateLimitFault("primary", at=0.0, duration=100.0, retry_after=20.0)],
        seed=1,
    )
    backup = SimulatedProvider(ProviderSpec("backup", latency=fixed), [], seed=1)

    async def ask(p: SimulatedProvider) -> str:
        return await p.handle()

    async with open_registry(health_check_interval=None, classify=SIMULATOR_HTTP) as registry:
        registry.register("*", "llm", primary, "CRITICAL", name="primary")
        registry.register("*", "llm", backup, "HIGH", name="backup")
        assert await registry.wait_ready(10.0, ["llm"])
        start = primary.origin = backup.origin = trio.current_time()
        assert await registry.call("*", "llm", ask) == "backup"
        refused = start + 0.5  # the 429 came after the call's latency
        assert registry.view("primary").breaker["next_attempt_time"] == refused + 20.0
        assert registry.view("primary").outcomes["rate_limited"] == 1
        await trio.sleep_until(refused + 19.9)
        assert await registry.call("*", "llm", ask) == "backup"  # still waiting
        await trio.sleep_until(start + 101.0)  # the limit is over, and so is the wait
        assert await registry.call("*", "llm", ask) == "primary"
        assert registry.view("primary").outcomes["failure"] == 0


async def test_the_registry_disables_a_provider_whose_key_was_revoked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    primary = SimulatedProvider(
        ProviderSpec("primary", latency=Latency(median=0.5, p99=0.5)),
        [BadCredentialsFault("primary", at=0.0, duration=100.0)],
        seed=1,
    )
    backup = SimulatedProvider(ProviderSpec("backup"), [], seed=1)

    async def ask(p: SimulatedProvider) -> str:
        return await p.handle()

    async with open_registry(health_check_interval=None, classify=SIMULATOR_HTTP) as registry:
        registry.register("*", "llm", primary, "CRITICAL", name="primary")
        registry.register("*", "llm", backup, "HIGH", name="backup")
        assert await registry.wait_ready(10.0, ["llm"])
        primary.origin = backup.origin = trio.current_time()
        async with registry.events(types=[ProviderDisabled]) as events:
            assert await registry.call("*", "llm", ask) == "backup"
            event = await events.receive()
        assert isinstance(event, ProviderDisabled)
        assert event.name == "primary"
        reason = "HTTP 401: invalid API key (simulated revoked key)"
        assert registry.view("primary").disabled == reason
        await trio.sleep(500.0)  # long after the fault: disabled until someone resets it
        assert await registry.call("*", "llm", ask) == "backup"
        registry.reset_circuit_breaker("primary")
        assert await registry.call("*", "llm", ask) == "primary"


async def test_an_overflow_sends_a_long_request_on_only_to_long_context_providers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    overflow = ContextOverflowFault("short", at=0.0, duration=100.0)
    short = SimulatedProvider(ProviderSpec("short"), [overflow], seed=1)
    other = SimulatedProvider(ProviderSpec("other"), [], seed=1)
    long = SimulatedProvider(ProviderSpec("long", capabilities=("long_context",)), [], seed=1)
    tried: list[str] = []

    async def ask(p: SimulatedProvider, is_long: bool) -> str:
        tried.append(p.name)
        return await p.handle(long=is_long)

    async with open_registry(health_check_interval=None, classify=SIMULATOR_HTTP) as registry:
        registry.register("*", "llm", short, "CRITICAL", name="short")
        registry.register("*", "llm", other, "HIGH", name="other")
        registry.register("*", "llm", long, "LOW", capabilities=["long_context"], name="long")
        assert await registry.wait_ready(10.0, ["llm"])
        short.origin = other.origin = long.origin = trio.current_time()
        assert await registry.call("*", "llm", ask, True) == "long"
        assert tried == ["short", "long"]  # "other" lacks long_context: never tried
        assert await registry.call("*", "llm", ask, False) == "short"
        counts = registry.view("short").outcomes
        assert (counts["rerouted"], counts["success"], counts["failure"]) == (1, 1, 0)


# -- runs: both engines, with classes and without ---------------------------------------------


def run_both(data: dict[str, Any], seed: int | None = None) -> Report:
    """Run the scenario on both engines; they must agree byte for byte."""
    scenario = parse_scenario(data)
    reports = [run_scenario(scenario, seed=seed, engine=engine) for engine in ENGINES]
    assert reports[0].to_json() == reports[1].to_json()
    assert reports[0].ok
    return reports[0]


OVERFLOW_ON_PRIMARY = [{"kind": "context_overflow", "provider": "primary", "at": 0.0,
                        "duration": 1000.0}]  # fmt: skip


def test_a_reroute_goes_on_past_providers_without_the_capability_on_either_engine() -> None:
    """Every request is long and overflows the primary: with classes it is rerouted to
    the long-context provider and never reaches ``other``, and the primary's breaker never
    opens; every error a failure, it fails over to ``other`` in order, and overflows
    count toward the primary's breaker."""
    data = scenario_data(workload={"long_share": 1.0}, faults=OVERFLOW_ON_PRIMARY)
    classes = run_both(data)
    sent = classes.requests.sent
    assert classes.requests.succeeded == sent
    assert classes.provider("primary").outcomes == AttemptOutcomes(rerouted=sent)
    assert classes.provider("other").outcomes == AttemptOutcomes()
    assert classes.provider("long").served == sent
    assert classes.provider("primary").breaker_opens == 0
    assert classes.attempts.wasted == sent

    plain = run_both(scenario_data(registry={"classify": "none"}, **_without(data, "registry")))
    assert plain.classify == "none"
    assert plain.provider("other").served == plain.requests.succeeded == sent
    assert plain.provider("long").served == 0
    assert plain.provider("primary").outcomes.rerouted == 0
    assert plain.provider("primary").breaker_opens > 0


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


def test_short_requests_are_never_refused_by_an_overflow() -> None:
    report = run_both(scenario_data(faults=OVERFLOW_ON_PRIMARY))  # long_share 0
    assert report.provider("primary").served == report.requests.succeeded
    assert report.provider("primary").outcomes.rerouted == 0


def test_an_overflow_the_classifier_calls_the_requests_fault_ends_it_failed_not_wasted() -> None:
    """With no context_overflow capabilities an overflow is ``ignore``d: the request ends
    failed after that one attempt (``call`` re-raises at once), the breaker counts
    nothing, and the attempt is not wasted: the provider did what it should."""
    data = scenario_data(
        registry={"context_overflow": []}, workload={"long_share": 0.5}, faults=OVERFLOW_ON_PRIMARY
    )
    report = run_both(data)
    primary = report.provider("primary").outcomes
    long_requests = sum(is_long(report.seed, slot, 0.5) for slot in range(report.requests.sent))
    assert primary.ignored == report.requests.failed == long_requests > 0
    assert report.provider("primary").breaker_opens == 0
    assert report.provider("other").served == report.provider("long").served == 0
    assert report.attempts.wasted == 0
    assert report.attempts.made == report.requests.sent
    # The oracle would have sent them to a provider that does not overflow.
    assert report.oracle_availability == 1.0
    assert report.availability_gap == pytest.approx(long_requests / report.requests.sent)


def test_a_rate_limit_opens_the_breaker_for_retry_after_and_probes_find_it_again() -> None:
    limit = {"kind": "rate_limit", "provider": "primary", "at": 50.3, "duration": 60.0,
             "retry_after": 25.0}  # fmt: skip
    report = run_both(scenario_data(faults=[limit]))
    opens = [c for c in report.breaker_transitions if c.provider == "primary"]
    assert [c.new.value for c in opens][:3] == ["open", "half_open", "open"]
    assert opens[0].reason == "rate limited for 25 s"
    # Calls in flight when it opened meet the limit too, and push its deadline on (it is
    # only ever extended): by less than a call's 0.4 s.
    assert 25.0 <= opens[1].time - opens[0].time <= 25.4
    assert report.provider("primary").outcomes.rate_limited > 0
    assert report.provider("primary").outcomes.failure == 0
    plain = run_both(scenario_data(registry={"classify": "none"}, faults=[limit]))
    assert plain.provider("primary").outcomes.rate_limited == 0
    first = next(c for c in plain.breaker_transitions if c.provider == "primary")
    assert first.reason == "3 consecutive failures"


def test_a_revoked_key_disables_the_provider_until_the_operator_resets_it_at_the_end() -> None:
    revoked = {"kind": "bad_credentials", "provider": "primary", "at": 50.3, "duration": 60.0}
    report = run_both(scenario_data(faults=[revoked]))
    changes = [c for c in report.breaker_transitions if c.provider == "primary"]
    assert [(c.new.value, c.reason) for c in changes] == [
        ("open", "disabled: HTTP 401: invalid API key (simulated revoked key)"),
        ("closed", "reset"),
    ]
    assert changes[1].time == pytest.approx(110.3)  # the fault's end
    assert report.provider("primary").outcomes.disabled > 0
    fault = report.faults[0]
    assert fault.time_to_detect is not None
    assert fault.time_to_recover is not None
    assert fault.time_to_recover < 1.0  # serving again at once after the reset


def test_without_class_faults_classifying_changes_nothing_but_the_field() -> None:
    scenario = load_scenario(bundled_scenarios()["primary-outage"])
    classes = json.loads(run_scenario(scenario).to_json())
    plain = json.loads(run_scenario(attrs.evolve(scenario, classify="none")).to_json())
    assert (classes.pop("classify"), plain.pop("classify")) == ("http", "none")
    assert classes == plain


def test_the_oracle_knows_what_each_class_fault_refuses() -> None:
    """One provider, lease mode: a perfect router serves nothing it refuses."""
    base = scenario_data(workload={"mode": "lease", "duration": 100.0, "long_share": 0.5})
    base["providers"] = base["providers"][:1]
    for kind in ("rate_limit", "bad_credentials"):
        fault = {"kind": kind, "provider": "primary", "at": 30.0, "duration": 40.0}
        report = run_both({**base, "faults": [fault]})
        assert report.oracle_availability == pytest.approx(0.6, abs=0.07), kind
    overflow = {"kind": "context_overflow", "provider": "primary", "at": 0.0, "duration": 100.0}
    report = run_both({**base, "faults": [overflow]})
    assert report.oracle_availability == pytest.approx(0.5, abs=0.07)
    assert report.availability == report.oracle_availability  # a long one cannot be saved


# -- the report: wasted attempts and outcomes by class ----------------------------------------


def test_wasted_attempts_are_those_on_providers_that_could_not_serve() -> None:
    faults = [
        {"kind": "rate_limit", "provider": "primary", "at": 20.3, "duration": 20.0},
        {"kind": "errors", "provider": "primary", "at": 60.3, "duration": 20.0,
         "error_rate": 0.5},
        {"kind": "latency", "provider": "primary", "at": 90.3, "duration": 20.0,
         "added_latency": 10.0},
        {"kind": "bad_credentials", "provider": "primary", "at": 120.3, "duration": 20.0},
    ]  # fmt: skip
    data = scenario_data(workload={"long_share": 0.3}, faults=[*faults, *OVERFLOW_ON_PRIMARY])
    report = run_both(data)
    counted = [p.outcomes for p in report.providers]
    total = AttemptOutcomes(
        *(sum(column) for column in zip(*map(attrs.astuple, counted), strict=True))
    )
    assert all((total.rate_limited, total.disabled, total.rerouted, total.timeout))
    assert report.attempts.wasted == (
        total.failure + total.rate_limited + total.disabled + total.rerouted + total.timeout
    )
    assert report.attempts.made == total.success + total.ignored + report.attempts.wasted
    assert report.attempts.wasted_per_request == report.attempts.wasted / report.requests.sent
    data_json = json.loads(report.to_json())
    assert data_json["attempts"]["wasted"] == report.attempts.wasted
    assert data_json["providers"]["primary"]["outcomes"] == attrs.asdict(
        report.provider("primary").outcomes
    )


# -- the bundled scenarios: what the classes change --------------------------------------------


def bundled(name: str) -> Scenario:
    return load_scenario(bundled_scenarios()[name])


@pytest.mark.parametrize("name", ["rate-limited-primary", "revoked-key"])
def test_classes_waste_fewer_attempts_on_a_rate_limit_and_a_revoked_key(name: str) -> None:
    scenario = bundled(name)
    classes = run_scenario(scenario)
    plain = run_scenario(attrs.evolve(scenario, classify="none"))
    assert classes.ok
    assert plain.ok
    assert classes.attempts.wasted < plain.attempts.wasted * 0.6
    assert classes.provider("primary").breaker_opens < plain.provider("primary").breaker_opens
    assert plain.provider("primary").outcomes.failure > classes.provider("primary").outcomes.failure


def test_classes_keep_an_overflowing_pool_in_routing_for_its_short_requests() -> None:
    scenario = bundled("context-overflow")
    classes = run_scenario(scenario)
    plain = run_scenario(attrs.evolve(scenario, classify="none"))
    for name in ("fast-a", "fast-b"):
        assert classes.provider(name).breaker_opens == 0
        assert plain.provider(name).breaker_opens > 0
    # Only long requests reach the long-context provider with classes.
    assert classes.provider("long").served < plain.provider("long").served
    assert classes.availability == classes.oracle_availability
    assert plain.availability is not None
    assert classes.availability is not None
    assert plain.availability < classes.availability
    assert classes.latency.p50 is not None
    assert plain.latency.p50 is not None
    assert classes.latency.p50 < plain.latency.p50
