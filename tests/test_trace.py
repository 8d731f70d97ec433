"""OpenTelemetry spans of ``lease`` and ``call`` (``_trace``, DESIGN.md section 6): the
span tree, every attribute and outcome, skip events, the empty context background
actors start in, and the registry without an SDK or without the API at all."""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings, strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode

from ciris_actors import (
    CircuitBreakerConfig,
    ErrorClass,
    NoServiceAvailable,
    Registry,
    _trace,
    open_registry,
)

from .conftest import FAST_BREAKER, run_on_virtual_time

# -- the spans a test collects --------------------------------------------------------------


@attrs.define
class Traces:
    """An SDK tracer provider used by the registry for one test, its in-memory exporter,
    and a tracer for the test's own spans."""

    exporter: InMemorySpanExporter
    tracer: trace.Tracer

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """The finished spans (named *name*), in the order they ended."""
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]

    def one(self, name: str) -> ReadableSpan:
        (span,) = self.spans(name)
        return span

    def children(self, parent: ReadableSpan, name: str | None = None) -> list[ReadableSpan]:
        """The finished spans whose parent is *parent*, by attempt number if they have one."""
        found = [s for s in self.spans(name) if s.parent is not None and s.parent == parent.context]
        return sorted(found, key=lambda s: attr(s, "ciris.attempt", 0))


def new_traces(sampler: Any = None) -> tuple[Traces, TracerProvider]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider() if sampler is None else TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Traces(exporter, provider.get_tracer("tests")), provider


@pytest.fixture
def traces(monkeypatch: pytest.MonkeyPatch) -> Traces:
    """Spans the registry makes in this test, through a provider of the test's own: the
    global provider can be set once per process, so the tests never set it."""
    collected, provider = new_traces()
    monkeypatch.setattr(_trace, "tracer_provider_override", provider)
    return collected


def attr(span: ReadableSpan, key: str, default: Any = None) -> Any:
    attributes: Mapping[str, Any] = span.attributes or {}
    return attributes.get(key, default)


def attrs_of(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def skips(span: ReadableSpan) -> list[tuple[str, str, int]]:
    return [
        (attr_of(e, "ciris.provider"), attr_of(e, "ciris.skip.reason"), attr_of(e, "ciris.attempt"))
        for e in span.events
        if e.name == "ciris.skip"
    ]


def attr_of(event: Any, key: str) -> Any:
    attributes: Mapping[str, Any] = event.attributes or {}
    return attributes[key]


def exception_events(span: ReadableSpan) -> list[str]:
    return [attr_of(e, "exception.type") for e in span.events if e.name == "exception"]


# -- providers and classes ------------------------------------------------------------------


class Plain:
    """A provider with nothing to start or check."""

    def __init__(self, name: str) -> None:
        self.name = name


class Refused(Exception):
    """An error whose class :func:`by_kind` decides by its message."""


def by_kind(error: BaseException) -> ErrorClass | None:
    if not isinstance(error, Refused):
        return None
    return {
        "ignore": ErrorClass.ignore(),
        "success": ErrorClass.success(),
        "rate_limited": ErrorClass.rate_limited(30.0),
        "disable": ErrorClass.disable("key revoked"),
        "reroute": ErrorClass.reroute(require=("long_context",)),
    }.get(str(error), ErrorClass.failure())


def refuse_on(*refusing: str, kind: str = "failure") -> Callable[[Plain], Awaitable[str]]:
    async def fn(instance: Plain) -> str:
        if instance.name in refusing:
            raise Refused(kind)
        return instance.name

    return fn


@pytest.fixture
async def classified() -> Any:
    async with open_registry(
        health_check_interval=None, default_breaker=FAST_BREAKER, classify=by_kind
    ) as registry:
        yield registry


# -- the tree and its attributes ------------------------------------------------------------


async def test_a_call_is_one_span_with_a_child_span_per_attempt_under_the_callers_span(
    autojump_clock: trio.testing.MockClock, classified: Registry, traces: Traces
) -> None:
    classified.register("H", "llm", Plain("a"), name="a")
    classified.register("H", "llm", Plain("b"), name="b")
    classified.register("*", "llm", Plain("c"), name="c", priority_group=2)
    seen: list[int] = []

    async def fn(instance: Plain) -> str:
        seen.append(trace.get_current_span().get_span_context().span_id)
        if instance.name != "c":
            raise Refused("failure")
        return instance.name

    with traces.tracer.start_as_current_span("request") as request:
        assert await classified.call("H", "llm", fn) == "c"

    call = traces.one("ciris.call")
    assert call.parent == request.get_span_context()
    attempts = traces.children(call)
    assert [s.name for s in attempts] == ["ciris.attempt"] * 3
    assert len(traces.spans()) == 4 + 1  # the call, three attempts, the request
    common = {"ciris.handler": "H", "ciris.service_type": "llm"}
    assert [attrs_of(s) for s in attempts] == [
        {
            **common,
            "ciris.provider": "a",
            "ciris.priority_group": 0,
            "ciris.attempt": 1,
            "ciris.outcome": "failure",
            "error.type": "tests.test_trace.Refused",
        },
        {
            **common,
            "ciris.provider": "b",
            "ciris.priority_group": 0,
            "ciris.attempt": 2,
            "ciris.outcome": "failure",
            "error.type": "tests.test_trace.Refused",
        },
        {
            **common,
            "ciris.provider": "c",
            "ciris.priority_group": 2,
            "ciris.attempt": 3,
            "ciris.outcome": "success",
        },
    ]
    # The call span says how its last attempt went.
    assert attrs_of(call) == {
        **common,
        "ciris.provider": "c",
        "ciris.priority_group": 2,
        "ciris.attempt": 3,
        "ciris.outcome": "success",
    }
    assert call.status.status_code is StatusCode.UNSET
    assert [s.status.status_code for s in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert [exception_events(s) for s in attempts] == [
        ["tests.test_trace.Refused"],
        ["tests.test_trace.Refused"],
        [],
    ]
    # fn ran with its attempt's span current: the provider's own spans nest under it.
    assert seen == [s.context.span_id for s in attempts]


async def test_a_lease_is_one_span_with_one_attempt_span_current_in_its_block(
    autojump_clock: trio.testing.MockClock, classified: Registry, traces: Traces
) -> None:
    classified.register("H", "llm", Plain("a"), name="a", priority_group=1)
    async with classified.lease("H", "llm"):
        with traces.tracer.start_as_current_span("inside"):
            pass
    lease = traces.one("ciris.lease")
    assert lease.parent is None
    (attempt,) = traces.children(lease)
    assert attempt.name == "ciris.attempt"
    assert traces.children(attempt) == [traces.one("inside")]
    expected = {
        "ciris.handler": "H",
        "ciris.service_type": "llm",
        "ciris.provider": "a",
        "ciris.priority_group": 1,
        "ciris.attempt": 1,
        "ciris.outcome": "success",
    }
    assert attrs_of(attempt) == expected
    assert attrs_of(lease) == expected


# -- outcomes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "outcome", "status"),
    [
        ("failure", "failure", StatusCode.ERROR),
        ("rate_limited", "rate_limited", StatusCode.ERROR),
        ("disable", "disabled", StatusCode.ERROR),
        ("ignore", "ignored", StatusCode.UNSET),
        ("reroute", "rerouted", StatusCode.UNSET),
        ("success", "success", StatusCode.UNSET),
    ],
)
async def test_an_attempt_span_says_what_its_error_counted_as(
    autojump_clock: trio.testing.MockClock,
    classified: Registry,
    traces: Traces,
    kind: str,
    outcome: str,
    status: StatusCode,
) -> None:
    """The provider's fault sets the ERROR status; an error that was not (the request's,
    one needing another provider, one that counts as a success) names the error and
    leaves the status unset, as a 4xx does on an HTTP server span. The lease span has
    the ERROR status either way: the error reached its caller."""
    classified.register("H", "llm", Plain("a"), name="a")
    with pytest.raises(Refused):
        async with classified.lease("H", "llm"):
            raise Refused(kind)
    lease = traces.one("ciris.lease")
    (attempt,) = traces.children(lease)
    assert attr(attempt, "ciris.outcome") == outcome
    assert attr(attempt, "error.type") == "tests.test_trace.Refused"
    assert attempt.status.status_code is status
    assert exception_events(attempt) == ["tests.test_trace.Refused"]
    assert attr(lease, "ciris.outcome") == outcome
    assert attr(lease, "error.type") == "tests.test_trace.Refused"
    assert lease.status.status_code is StatusCode.ERROR
    assert exception_events(lease) == []  # recorded once, on the attempt


async def test_a_timeout_is_an_attempt_ended_by_trios_too_slow_error(
    autojump_clock: trio.testing.MockClock, classified: Registry, traces: Traces
) -> None:
    classified.register("H", "llm", Plain("a"), name="a")
    with pytest.raises(trio.TooSlowError):
        async with classified.lease("H", "llm", timeout=1.0):
            await trio.sleep(math.inf)
    lease = traces.one("ciris.lease")
    (attempt,) = traces.children(lease)
    for span in (attempt, lease):
        assert attr(span, "ciris.outcome") == "timeout"
        assert attr(span, "error.type") == "trio.TooSlowError"
        assert span.status.status_code is StatusCode.ERROR
    assert exception_events(attempt) == ["trio.TooSlowError"]


async def test_a_cancelled_attempt_is_recorded_as_cancelled_and_not_as_an_error(
    autojump_clock: trio.testing.MockClock, classified: Registry, traces: Traces
) -> None:
    classified.register("H", "llm", Plain("a"), name="a")

    async def hang(instance: Plain) -> None:
        await trio.sleep(math.inf)

    with trio.move_on_after(1.0):
        async with classified.lease("H", "llm"):
            await trio.sleep(math.inf)
    with trio.move_on_after(1.0):
        await classified.call("H", "llm", hang)
    for name in ("ciris.lease", "ciris.call"):
        outer = traces.one(name)
        (attempt,) = traces.children(outer)
        for span in (attempt, outer):
            assert attr(span, "ciris.outcome") == "cancelled", name
            assert attr(span, "error.type") is None
            assert span.status.status_code is StatusCode.UNSET
            assert exception_events(span) == []
    assert classified.view("a").outcomes["cancelled"] == 2


async def test_a_hedged_call_has_both_attempts_under_its_span_and_the_loser_cancelled(
    autojump_clock: trio.testing.MockClock, classified: Registry, traces: Traces
) -> None:
    classified.register("H", "llm", Plain("slow"), name="slow", priority="HIGH")
    classified.register("H", "llm", Plain("fast"), name="fast", priority="LOW")
    delays = {"slow": 10.0, "fast": 1.0}

    async def answer(instance: Plain) -> str:
        await trio.sleep(delays[instance.name])
        return instance.name

    assert await classified.call("H", "llm", answer, hedge_after=0.5) == "fast"
    call = traces.one("ciris.call")
    attempts = traces.children(call, "ciris.attempt")
    assert [(attr(a, "ciris.provider"), attr(a, "ciris.outcome")) for a in attempts] == [
        ("slow", "cancelled"),
        ("fast", "success"),
    ]
    assert attr(call, "ciris.outcome") == "success"


async def test_a_call_cancelled_while_it_waits_is_cancelled_whatever_its_attempts_were(
    autojump_clock: trio.testing.MockClock, classified: Registry, traces: Traces
) -> None:
    classified.register("H", "llm", Plain("a"), name="a")
    with trio.move_on_after(100.0):
        await classified.call("H", "llm", refuse_on("a"), wait=math.inf)
    call = traces.one("ciris.call")
    assert [attr(s, "ciris.outcome") for s in traces.children(call)] == ["failure"]
    assert attr(call, "ciris.outcome") == "cancelled"


@pytest.mark.parametrize(("kind", "outcome"), [("ignore", "ignored"), ("success", "success")])
async def test_a_call_that_stops_at_an_ignored_or_successful_error_ends_with_that_outcome(
    autojump_clock: trio.testing.MockClock,
    classified: Registry,
    traces: Traces,
    kind: str,
    outcome: str,
) -> None:
    classified.register("H", "llm", Plain("a"), name="a")
    classified.register("H", "llm", Plain("b"), name="b")
    with pytest.raises(Refused):
        await classified.call("H", "llm", refuse_on("a", kind=kind))
    call = traces.one("ciris.call")
    assert [attr(s, "ciris.outcome") for s in traces.children(call)] == [outcome]
    assert attr(call, "ciris.outcome") == outcome
    assert attr(call, "error.type") == "tests.test_trace.Refused"
    assert call.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize(
    ("kind", "outcome"), [("rate_limited", "rate_limited"), ("disable", "disabled")]
)
async def test_a_call_fails_over_from_a_rate_limit_or_a_disable_in_a_new_attempt_span(
    autojump_clock: trio.testing.MockClock,
    classified: Registry,
    traces: Traces,
    kind: str,
    outcome: str,
) -> None:
    classified.register("H", "llm", Plain("a"), name="a")
    classified.register("H", "llm", Plain("b"), name="b")
    assert await classified.call("H", "llm", refuse_on("a", kind=kind)) == "b"
    call = traces.one("ciris.call")
    attempts = traces.children(call)
    assert [(attr(s, "ciris.provider"), attr(s, "ciris.outcome")) for s in attempts] == [
        ("a", outcome),
        ("b", "success"),
    ]
    assert attr(call, "ciris.outcome") == "success"


async def test_a_rerouted_call_skips_providers_without_the_capability_as_events(
    autojump_clock: trio.testing.MockClock, classified: Registry, traces: Traces
) -> None:
    classified.register("H", "llm", Plain("short"), name="short", priority="HIGH")
    classified.register("H", "llm", Plain("other"), name="other", priority="NORMAL")
    classified.register(
        "H", "llm", Plain("long"), name="long", priority="LOW", capabilities=["long_context"]
    )
    assert await classified.call("H", "llm", refuse_on("short", kind="reroute")) == "long"
    call = traces.one("ciris.call")
    attempts = traces.children(call)
    assert [(attr(s, "ciris.provider"), attr(s, "ciris.outcome")) for s in attempts] == [
        ("short", "rerouted"),
        ("long", "success"),
    ]
    # "short" was tried in this call: its own attempt says so, not a skip event.
    assert skips(call) == [("other", "lacks capabilities ['long_context']", 2)]


# -- skips ----------------------------------------------------------------------------------


async def test_skip_events_name_the_candidates_passed_over_before_the_chosen_one(
    autojump_clock: trio.testing.MockClock, classified: Registry, traces: Traces
) -> None:
    classified.register("H", "llm", Plain("opened"), name="opened")
    classified.register("H", "llm", Plain("weak"), name="weak")
    classified.register("H", "llm", Plain("good"), name="good", capabilities=["x"])
    classified.register("H", "llm", Plain("later"), name="later", capabilities=["x"])
    classified.force_open("opened")
    assert await classified.call("H", "llm", refuse_on(), required_capabilities=["x"]) == "good"
    call = traces.one("ciris.call")
    assert skips(call) == [
        ("opened", "lacks capabilities ['x']", 1),
        ("weak", "lacks capabilities ['x']", 1),
    ]
    assert await classified.call("H", "llm", refuse_on()) == "weak"
    second = traces.spans("ciris.call")[1]
    ((name, reason, attempt),) = skips(second)  # "good" and "later" came after "weak"
    assert (name, attempt) == ("opened", 1)
    assert reason.startswith("circuit open")


async def test_a_call_nothing_could_serve_ends_with_the_skips_of_its_last_resolve(
    autojump_clock: trio.testing.MockClock, classified: Registry, traces: Traces
) -> None:
    classified.register("H", "llm", Plain("a"), name="a")
    classified.register("H", "llm", Plain("b"), name="b")
    classified.force_open("b")
    with pytest.raises(NoServiceAvailable) as excinfo:
        await classified.call("H", "llm", refuse_on("a"))
    call = traces.one("ciris.call")
    ((name, reason),) = [(skip.name, skip.reason) for skip in excinfo.value.skipped]
    assert name == "b"
    assert reason.startswith("circuit open")
    # The first resolve chose "a" first in line; the one after its failure found nothing.
    assert skips(call) == [("b", reason, 2)]
    assert attr(call, "ciris.outcome") == "failure"  # the last attempt's
    assert attr(call, "error.type") == "ciris_actors.NoServiceAvailable"
    assert call.status.status_code is StatusCode.ERROR
    assert exception_events(call) == ["ciris_actors.NoServiceAvailable"]


async def test_a_lease_with_nothing_available_is_a_failure_with_no_attempt(
    autojump_clock: trio.testing.MockClock, classified: Registry, traces: Traces
) -> None:
    classified.register("H", "llm", Plain("a"), name="a")
    classified.force_open("a")
    with pytest.raises(NoServiceAvailable):
        async with classified.lease("H", "llm"):
            pass  # pragma: no cover
    lease = traces.one("ciris.lease")
    assert traces.children(lease) == []
    assert attrs_of(lease) == {
        "ciris.handler": "H",
        "ciris.service_type": "llm",
        "ciris.outcome": "failure",
        "error.type": "ciris_actors.NoServiceAvailable",
    }
    ((name, reason, attempt),) = skips(lease)
    assert (name, attempt) == ("a", 1)
    assert reason.startswith("circuit open")


async def test_an_fn_that_returns_no_awaitable_leaves_its_attempt_without_an_outcome(
    autojump_clock: trio.testing.MockClock, classified: Registry, traces: Traces
) -> None:
    classified.register("H", "llm", Plain("a"), name="a")
    with pytest.raises(TypeError):
        await classified.call("H", "llm", lambda instance: 42)  # type: ignore[arg-type, return-value]
    call = traces.one("ciris.call")
    (attempt,) = traces.children(call)
    assert attr(attempt, "ciris.outcome") is None  # it never reached the provider
    assert attr(call, "ciris.outcome") == "failure"
    assert attr(call, "error.type") == "TypeError"


async def test_skip_reasons_are_not_built_when_the_span_does_not_record(
    autojump_clock: trio.testing.MockClock,
    classified: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collected, provider = new_traces(ALWAYS_OFF)
    monkeypatch.setattr(_trace, "tracer_provider_override", provider)

    def no_walk(*args: object) -> None:
        raise AssertionError("the explain walk ran for a span that does not record")

    monkeypatch.setattr(_trace, "walk", no_walk)
    classified.register("H", "llm", Plain("a"), name="a")
    classified.register("H", "llm", Plain("b"), name="b")
    classified.force_open("a")
    assert await classified.call("H", "llm", refuse_on()) == "b"
    with pytest.raises(NoServiceAvailable):
        await classified.call("H", "llm", refuse_on("b"))
    async with classified.lease("H", "llm"):
        pass
    assert collected.spans() == []


# -- background actors ----------------------------------------------------------------------


class Traced:
    """A provider whose start() and health checks make spans of their own."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    async def start(self) -> None:
        with self.tracer.start_as_current_span("start"):
            await trio.lowlevel.checkpoint()

    async def is_healthy(self) -> bool:
        with self.tracer.start_as_current_span("health"):
            await trio.lowlevel.checkpoint()
        return True


async def test_background_actors_start_their_spans_in_traces_of_their_own(
    autojump_clock: trio.testing.MockClock, traces: Traces
) -> None:
    """A provider registered under a span: its actor's start() and health checks (the
    first and the periodic ones) are root spans, not children of whatever span was
    current when the registry opened or the provider was registered."""
    with traces.tracer.start_as_current_span("outer") as outer:
        async with open_registry(health_check_interval=5.0) as registry:
            registry.register("H", "llm", Traced(traces.tracer), name="t")
            registry.register("H", "llm", Traced(traces.tracer), name="u")
            assert await registry.wait_ready(service_types=["llm"])
            await trio.sleep(12.0)  # two more rounds of health checks
            background = traces.spans("start") + traces.spans("health")
            assert len(traces.spans("start")) == 2
            assert len(traces.spans("health")) >= 6
            for span in background:
                assert span.parent is None, span.name
                assert span.context.trace_id != outer.get_span_context().trace_id
            # A health check the caller runs is the caller's: under its span.
            with traces.tracer.start_as_current_span("check all") as check_all:
                await registry.health_check_all()
            asked = [s for s in traces.spans("health") if s.parent == check_all.get_span_context()]
            assert len(asked) == 2


# -- without an SDK, without the API --------------------------------------------------------


async def test_without_an_sdk_no_span_is_made(
    autojump_clock: trio.testing.MockClock,
    classified: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert trace.get_tracer_provider() is not None
    assert _trace.tracer_provider_override is None
    assert _trace.tracer() is None, "a test set a global tracer provider"

    def no_span(*args: object) -> None:
        raise AssertionError("a span was made without an SDK")

    monkeypatch.setattr(_trace, "CallTrace", no_span)
    classified.register("H", "llm", Plain("a"), name="a")
    classified.register("H", "llm", Plain("b"), name="b")
    assert await classified.call("H", "llm", refuse_on("a")) == "b"
    async with classified.lease("H", "llm") as instance:
        assert instance.name == "a"


async def test_with_the_api_not_importable_everything_works_untraced(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    traces: Traces,
) -> None:
    monkeypatch.setattr(_trace, "installed", False)

    def unreachable(*args: object) -> None:
        raise AssertionError("tracing code ran without the API")

    for name in ("tracer", "actor_context", "call", "lease"):
        monkeypatch.setattr(_trace, name, unreachable)
    async with open_registry(health_check_interval=1.0, classify=by_kind) as registry:
        registry.register("H", "llm", Traced(traces.tracer), name="t")
        registry.register("H", "llm", Plain("a"), name="a", priority_group=1)
        assert await registry.wait_ready(service_types=["llm"])
        assert await registry.call("H", "llm", refuse_on("t")) == "a"
        with pytest.raises(Refused):
            async with registry.lease("H", "llm"):
                raise Refused("ignore")
    assert traces.spans("ciris.call") == traces.spans("ciris.lease") == []


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_package_imports_and_calls_when_opentelemetry_cannot_be_imported() -> None:
    out = run_python(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if not installed
        import trio
        import ciris_actors
        from ciris_actors import _trace, open_registry

        class P:
            def __init__(self, ok):
                self.ok = ok
            async def is_healthy(self):
                return True

        async def fn(p):
            if not p.ok:
                raise ValueError("no")
            return "served"

        async def main():
            async with open_registry(health_check_interval=1.0) as registry:
                registry.register("H", "llm", P(False))
                registry.register("H", "llm", P(True))
                assert await registry.wait_ready(service_types=["llm"])
                print(await registry.call("H", "llm", fn))
                async with registry.lease("H", "llm"):
                    pass
                await trio.sleep(2.5)

        trio.run(main)
        print(_trace.installed, "opentelemetry" in sys.modules and sys.modules["opentelemetry"])
        """
    )
    assert out.split() == ["served", "False", "None"]


def test_a_global_tracer_provider_set_after_the_first_call_is_used_from_then_on() -> None:
    """Set in a child process: the global provider can be set once per process."""
    out = run_python(
        """
        import trio
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from ciris_actors import open_registry

        class P: ...

        async def fn(p):
            return 1

        async def main():
            async with open_registry(health_check_interval=None) as registry:
                registry.register("H", "llm", P())
                await registry.call("H", "llm", fn)
                exporter = InMemorySpanExporter()
                provider = TracerProvider()
                provider.add_span_processor(SimpleSpanProcessor(exporter))
                trace.set_tracer_provider(provider)
                await registry.call("H", "llm", fn)
                print(sorted(s.name for s in exporter.get_finished_spans()))

        trio.run(main)
        """
    )
    assert out.strip() == "['ciris.attempt', 'ciris.call']"


# -- under concurrency ----------------------------------------------------------------------

PROVIDERS = ("p0", "p1", "p2", "p3")


@attrs.define
class Seen:
    """One run of fn: the request it served, the provider, the span current in it."""

    request: int
    provider: str
    span_id: int


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plans=st.lists(
        st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=4, max_size=4),
        min_size=1,
        max_size=16,
    ),
    round_robin=st.booleans(),
)
def test_concurrent_calls_each_have_exactly_their_own_attempt_spans(
    plans: list[list[tuple[int, bool]]], round_robin: bool
) -> None:
    """Many calls at once, failing over at different moments: each ``ciris.call`` span
    is the child of its own request's span, its children are exactly the attempts that
    call made (numbered 1..n, one provider each, never twice), fn ran with its own
    attempt's span current, and no span is parented across calls."""
    collected, provider = new_traces()
    seen: list[Seen] = []

    async def fn(instance: Plain, request: int) -> str:
        seen.append(
            Seen(request, instance.name, trace.get_current_span().get_span_context().span_id)
        )
        delay, fails = plans[request][PROVIDERS.index(instance.name)]
        await trio.sleep(delay)
        if fails:
            raise Refused("failure")
        return instance.name

    async def scenario() -> None:
        breaker = CircuitBreakerConfig(
            failure_threshold=3, recovery_timeout=2.0, success_threshold=1, timeout_duration=10
        )
        async with open_registry(health_check_interval=None, default_breaker=breaker) as registry:
            for name in PROVIDERS:
                registry.register(
                    "H",
                    "llm",
                    Plain(name),
                    name=name,
                    strategy="round_robin" if round_robin else "fallback",
                )

            async def request(index: int) -> None:
                with collected.tracer.start_as_current_span("request", attributes={"req": index}):
                    await trio.sleep(index % 3)
                    with contextlib.suppress(NoServiceAvailable):
                        await registry.call("H", "llm", fn, index)

            async with trio.open_nursery() as nursery:
                for index in range(len(plans)):
                    nursery.start_soon(request, index)

    _trace.tracer_provider_override = provider
    try:
        run_on_virtual_time(scenario)
    finally:
        _trace.tracer_provider_override = None

    requests = {attr(s, "req"): s for s in collected.spans("request")}
    assert sorted(requests) == list(range(len(plans)))
    calls = collected.spans("ciris.call")
    assert len(calls) == len(plans)
    attempts_total = 0
    for index, request_span in requests.items():
        (call,) = collected.children(request_span, "ciris.call")
        assert call.context.trace_id == request_span.context.trace_id
        attempts = collected.children(call)
        ran = [s for s in seen if s.request == index]
        assert [attr(s, "ciris.attempt") for s in attempts] == list(range(1, len(ran) + 1))
        assert [attr(s, "ciris.provider") for s in attempts] == [s.provider for s in ran]
        assert len({s.provider for s in ran}) == len(ran)
        assert [s.context.span_id for s in attempts] == [s.span_id for s in ran]
        assert all(s.name == "ciris.attempt" for s in attempts)
        assert all(s.context.trace_id == call.context.trace_id for s in attempts)
        if attempts:
            assert attr(call, "ciris.outcome") == attr(attempts[-1], "ciris.outcome")
            assert attr(call, "ciris.attempt") == len(attempts)
        attempts_total += len(attempts)
    assert len(collected.spans("ciris.attempt")) == attempts_total == len(seen)
