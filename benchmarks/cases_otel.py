"""What OpenTelemetry costs ``registry.call``: without the API, with the API and no SDK
(the default for a library's users), and with the SDK recording every span into its
in-memory exporter (and with an SDK that samples nothing), for a call served at the
first attempt and one that fails over once.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from typing import Any

import trio
import trio.testing
from _harness import (
    NO_N,
    Config,
    Results,
    SampleFn,
    Spec,
    Target,
    fmt_time,
    measure,
    perf_ns,
    progress,
)

from ciris_actors import CircuitBreakerConfig, Registry, _trace, open_registry

#: The modes, in the order each round samples them: key -> label.
MODES = {
    "absent": "API not importable",
    "api": "API, no SDK",
    "sdk_off": "SDK, sampler ALWAYS_OFF",
    "sdk": "SDK + SimpleSpanProcessor + in-memory exporter",
}
#: Attempts per call: key -> (handler, label).
SHAPES = {
    1: ("h_one", "served at the 1st attempt"),
    2: ("h_two", "1 failure, served at the 2nd attempt"),
}
#: The order of the cases of each shape in the rounds without an SDK: a lead-in, whose
#: samples are dropped (the case after another shape's starts slower), then A B B A.
LIGHT_ORDER = (("absent", "lead"), ("absent", "A"), ("api", "A"), ("api", "B"), ("absent", "B"))
#: Calls made untimed after each switch of mode, before a batch is timed.
SETTLE_CALLS = 3
#: A breaker the failing provider never opens, so every call fails over the same way.
NEVER_OPENS = CircuitBreakerConfig(failure_threshold=2**31)


class Bad:
    """A provider whose calls fail."""


class Good:
    """A provider whose calls succeed."""


async def serve(instance: object) -> None:
    """``call``'s fn: fails on a :class:`Bad` provider."""
    if isinstance(instance, Bad):
        raise RuntimeError("refused")


def otel_importable() -> bool:
    """Whether the API and the SDK can be imported here."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("opentelemetry", "opentelemetry.sdk")
    )


def call_sample(
    registry: Registry, handler: str, enter: Callable[[], None], leave: Callable[[], None]
) -> SampleFn:
    """A batch of ``await registry.call(handler, "llm", serve)``, in a mode.

    Args:
        registry: The registry called.
        handler: The handler (which key, so how many attempts).
        enter: Puts the mode in place before the batch is timed.
        leave: Takes it away after.

    Returns:
        The sample function.
    """

    async def sample(batch: int) -> int:
        enter()
        try:
            # A process runs in one mode; the first calls after a switch of mode pay for
            # the switch (about 0.3 us each, measured), so they are not timed.
            for _ in range(SETTLE_CALLS):
                await registry.call(handler, "llm", serve)
            t0 = perf_ns()
            for _ in range(batch):
                await registry.call(handler, "llm", serve)
            return perf_ns() - t0
        finally:
            leave()

    return sample


async def bench_otel(cfg: Config, results: Results) -> None:
    """Measure ``registry.call`` in each OpenTelemetry mode, 1 and 2 attempts a call.

    One registry (``open_registry(health_check_interval=None)``), two keys: one with a
    plain provider that serves (1 attempt a call), one whose first provider (group 0)
    always fails, with a breaker that never opens, before a second (group 1) that serves
    (2 attempts a call, the first recording a failure with its exception). The mode is
    put in place before each batch and taken away after, outside the timing:

    * ``absent``: ``_trace.installed`` set to False. The facade chooses the untraced
      path on that flag alone, so a call runs the same code as in a process where
      ``import opentelemetry`` fails.
    * ``api``: the API imported, no tracer provider set (the process never sets one):
      ``_trace.tracer()`` finds none and no span is made.
    * ``sdk_off``: an SDK ``TracerProvider(sampler=ALWAYS_OFF)``: spans are made but do
      not record (and skip reasons are not built).
    * ``sdk``: an SDK ``TracerProvider`` with a ``SimpleSpanProcessor`` exporting every
      span to an ``InMemorySpanExporter`` (cleared before each batch).

    After the switch, ``SETTLE_CALLS`` calls are made untimed: a process runs in one
    mode, and the first calls after a switch are slower (in a test of its own, the
    case right after a switch from ``absent`` to ``api`` took about 0.3 us more per
    call than the same case one position later, which matched ``absent`` within 0.2 us).

    The SDK providers are handed to the registry through ``_trace.tracer_provider_override``
    (the global provider can be set only once per process). Checked before timing: no
    global provider is set, and one call of each shape exports the spans it should.

    Two groups of interleaved rounds. Batches are sized as the harness does (about
    ``cfg.sample_target_ns``) but with no minimum call count, so a batch lasts about
    0.5 ms even when it holds one call: a call takes 17 to 500 us, and on a busy machine
    a batch of 100 of them is often cut by the scheduler.

    1. ``absent`` against ``api``, the comparison with a target: each measured twice
       (copies A and B) in the order absent A, api A, api B, absent B, for each shape, so
       that neither always goes first, with five times ``cfg.samples`` rounds and one
       batch size for all (the smallest calibrated). Each shape's four cases follow a
       lead-in case (``absent`` again) whose samples are dropped: the first case after
       the other shape's ran about 6 % slower than the same case later in the round.
       No SDK case runs in these rounds: a case that follows one starts with colder
       caches, which on a first run made ``absent`` (always right after an SDK case)
       look slower than ``api``. The ratio is the mean p50 of api A and B over the mean
       p50 of absent A and B; absent B over absent A is the A/A noise.
    2. ``absent``, ``sdk_off`` and ``sdk`` for each shape: the SDK's cost against its own
       interleaved baseline, each case with its own batch size (column ``batch``). The
       cost of a failed attempt's span (its exception recorded with its stack trace, as
       ``record_exception`` does) is the SDK's extra cost of the 2-attempt call over that
       of the 1-attempt call: ((sdk, 2) - (absent, 2)) - ((sdk, 1) - (absent, 1)).

    Args:
        cfg: The run's settings.
        results: Where the rows go.
    """
    if not otel_importable():
        progress("OpenTelemetry: the API or the SDK is not installed; skipped")
        return
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    assert _trace.installed
    assert _trace.tracer_provider_override is None
    assert _trace.tracer() is None, "a global tracer provider is set: 'api' would not be"
    exporter = InMemorySpanExporter()
    recording = TracerProvider()
    recording.add_span_processor(SimpleSpanProcessor(exporter))
    dropping = TracerProvider(sampler=ALWAYS_OFF)

    def nothing() -> None:
        pass

    def without_api() -> None:
        _trace.installed = False

    def with_api() -> None:
        _trace.installed = True

    # Each switch of provider is taken in (``_trace.tracer()``) before the timing: an
    # application does it once, not at the first call of every batch.
    def use(provider: Any) -> Callable[[], None]:
        def enter() -> None:
            exporter.clear()
            _trace.tracer_provider_override = provider
            _trace.tracer()

        return enter

    def no_provider() -> None:
        _trace.tracer_provider_override = None
        _trace.tracer()

    modes: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
        "absent": (without_api, with_api),
        "api": (nothing, nothing),
        "sdk_off": (use(dropping), no_provider),
        "sdk": (use(recording), no_provider),
    }

    # Batches of about the harness's target length, however few calls that is: a batch
    # of 100 calls (2 to 50 ms) is often cut by the scheduler on a busy machine, which
    # p50 does not filter out when most batches are.
    short = dataclasses.replace(cfg, min_batch=1)
    # The comparison with a target takes five times as many (short) samples.
    light_cfg = dataclasses.replace(short, samples=5 * cfg.samples)
    async with open_registry(health_check_interval=None) as registry:
        registry.register("h_one", "llm", Good())
        registry.register("h_two", "llm", Bad(), circuit_breaker_config=NEVER_OPENS)
        registry.register("h_two", "llm", Good(), priority_group=1)
        await trio.testing.wait_all_tasks_blocked()

        # Sanity: each shape makes the attempts, and the spans, its rows claim.
        for attempts, (handler, _) in SHAPES.items():
            use(recording)()
            await registry.call(handler, "llm", serve)
            no_provider()
            names = sorted(span.name for span in exporter.get_finished_spans())
            assert names == ["ciris.attempt"] * attempts + ["ciris.call"], names
        exporter.clear()

        # Without the API against the API without an SDK: the one comparison with a
        # target, a few percent, so measured in rounds of their own (a case that
        # follows an SDK case starts with colder caches) and twice each, in the order
        # A B B A per shape, so that neither mode always goes first.
        light = [
            Spec(
                f"otel/call/{mode}/{attempts}/{copy}",
                "otel: registry.call",
                f"{MODES[mode]} ({copy}); {shape}",
                NO_N,
                "trio",
                call_sample(registry, handler, *modes[mode]),
            )
            for attempts, (handler, shape) in SHAPES.items()
            for mode, copy in LIGHT_ORDER
        ]
        progress(f"OpenTelemetry: without the API and without an SDK, {len(light)} cases")
        await measure(light, light_cfg, results, batch_groups=["light"] * len(light))
        for attempts in SHAPES:  # the lead-ins' samples are not figures
            results.rows.remove(results.by_key.pop(f"otel/call/absent/{attempts}/lead"))
        # The SDK's cost, in rounds of their own with their own baseline.
        heavy = [
            Spec(
                f"otel/call/{mode}/{attempts}",
                "otel: registry.call",
                f"{MODES[mode]}; {shape}",
                NO_N,
                "trio",
                call_sample(registry, handler, *modes[mode]),
            )
            for attempts, (handler, shape) in SHAPES.items()
            for mode in ("absent", "sdk_off", "sdk")
        ]
        progress(f"OpenTelemetry: with the SDK, {len(heavy)} cases")
        await measure(heavy, short, results)
        assert _trace.installed
        assert _trace.tracer_provider_override is None

    for attempts in SHAPES:
        # API without an SDK: the mean of its two copies over the mean of absent's.
        copies = {
            mode: [results.p50(f"otel/call/{mode}/{attempts}/{copy}") for copy in "AB"]
            for mode in ("absent", "api")
        }
        absent = sum(copies["absent"]) / 2
        api = sum(copies["api"]) / 2
        aa = copies["absent"][1] / copies["absent"][0]
        for mode in ("absent", "api"):
            for copy in "AB":
                row = results.by_key[f"otel/call/{mode}/{attempts}/{copy}"]
                row.extra.update(attempts=attempts, mode=mode, copy=copy)
        row = results.by_key[f"otel/call/api/{attempts}/B"]
        row.extra.update(ratio_to_absent=api / absent, extra_ns=api - absent)
        row.note = f"A and B: {api / absent:.3f}x absent A and B ({(api - absent) / 1000:+.3f} us)"
        results.by_key[f"otel/call/absent/{attempts}/B"].note = f"A/A: {aa:.3f}x absent A"
        results.extra[f"otel_api_ratio_{attempts}"] = api / absent
        results.extra[f"otel_api_extra_ns_{attempts}"] = api - absent
        results.extra[f"otel_absent_aa_{attempts}"] = aa
        # The SDK against its own interleaved baseline.
        base = results.p50(f"otel/call/absent/{attempts}")
        for mode in ("sdk_off", "sdk"):
            row = results.by_key[f"otel/call/{mode}/{attempts}"]
            extra = results.p50(row.key) - base
            row.extra.update(ratio_to_absent=results.p50(row.key) / base, extra_ns=extra)
            row.note = f"{results.p50(row.key) / base:.2f}x absent ({extra / 1000:+.3f} us)"
    per_attempt = (
        results.by_key["otel/call/sdk/2"].extra["extra_ns"]
        - (results.by_key["otel/call/sdk/1"].extra["extra_ns"])
    )
    results.extra["otel_attempt_span_ns"] = per_attempt
    results.by_key[
        "otel/call/sdk/2"
    ].note += f"; {per_attempt / 1000:.3f} us per failed attempt's span"


def otel_targets(results: Results) -> list[Target]:
    """Judge ``call`` with the API and no SDK <= 1.03x without the API (1 attempt).

    Args:
        results: The run's rows.

    Returns:
        The judged target (N/A when the group did not run), and the SDK's cost per
        call and per attempt span as figures with no target.
    """
    name = "registry.call, OpenTelemetry API without SDK <= 1.03x without the API"
    if "otel_api_ratio_1" not in results.extra:
        return [Target(name, "opentelemetry-api or -sdk not installed", None)]
    extra = results.extra
    sdk = results.by_key["otel/call/sdk/1"]
    per_attempt = extra["otel_attempt_span_ns"]
    return [
        Target(
            name,
            f"1 attempt: {extra['otel_api_ratio_1']:.3f}x ({extra['otel_api_extra_ns_1']:+.0f} ns,"
            f" A/A {extra['otel_absent_aa_1']:.3f}x); 2 attempts:"
            f" {extra['otel_api_ratio_2']:.3f}x ({extra['otel_api_extra_ns_2']:+.0f} ns,"
            f" A/A {extra['otel_absent_aa_2']:.3f}x)",
            extra["otel_api_ratio_1"] <= 1.03,
        ),
        Target(
            "registry.call with the SDK recording (no target: the figures)",
            f"1 attempt: {fmt_time(sdk.p50_ns)} = {sdk.extra['ratio_to_absent']:.2f}x;"
            f" {per_attempt / 1000:.1f} us per failed attempt's span (its exception recorded)",
            None,
        ),
    ]
