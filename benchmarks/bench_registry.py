"""Micro-benchmarks of the ciris_actors registry hot paths.

Run from the repository root (needs the ``bench`` extra for the comparison rows)::

    python benchmarks/bench_registry.py            # full run (under 2 minutes on 2 cores)
    python benchmarks/bench_registry.py --quick    # smoke run, fewer samples and providers
    python benchmarks/bench_registry.py --json out.json   # also write the raw numbers

Everything runs in one process (except one registration run, see below) and prints one
table (p50 and p99 per case) followed by a targets section (HIT / MISSED). The header
names the git commit measured, whether the working tree is clean (a dirty tree is
reported, never refused) and whether every package module the run imported is as
committed, plus a hash of those modules. Method:

* Every latency case is timed with ``time.perf_counter_ns`` around a batch of calls (100
  to 1000, sized so that one batch lasts about half a millisecond); the per-call time of
  a sample is the batch time divided by the batch size. p50 and p99 are taken over many
  such samples, so p99 describes slow *batches* (a preemption, an interrupt), not the
  tail of single calls.
* Cases that are compared with each other (a resolve and the bare checkpoint, a failover
  resolve and its no-failover baseline, our breaker and the other libraries) are measured
  in interleaved rounds: each round takes one sample of every case of the group.
* The garbage collector is disabled (``gc.disable()``) while a batch is timed and enabled
  again between batches; it is also disabled during the registration loops.
* The cost of the ``for _ in range(n)`` loop is included in every row and not subtracted;
  it is printed as its own row.
* The registry is the real one: ``open_registry(health_check_interval=None)`` inside
  ``trio.run``, with plain objects (no ``start``/``is_healthy``, so routable at once)
  registered, and ``trio.testing.wait_all_tasks_blocked()`` awaited before any timing so
  that every provider's actors have started.
* Registration and memory use two kinds of provider: plain objects (no lifecycle, so one
  actor task each: the provider actor runs the breaker loop itself), and full-lifecycle
  providers (``async def start``, ``run`` (sleeps forever), ``aclose`` and ``is_healthy``,
  so two actor tasks each: provider actor and breaker actor, plus the provider's own
  ``run``). Each ``register()`` call of 10,000 is timed on its own (p50/p99 over the
  calls): plain providers in two layouts, 100 (handler, service_type) keys of 100
  providers and one key of 10,000; lifecycle providers in 100 keys of 100. "Actors
  started" is when ``wait_all_tasks_blocked()`` returns afterwards; for lifecycle
  providers every one has then been started and health-checked, which is checked.
* Memory per provider is the growth of memory traced by ``tracemalloc`` (after
  ``gc.collect()``) across registering the providers and waiting until their actors are
  blocked, divided by the number of providers; the provider objects themselves are
  created before the baseline and not counted. The RSS growth of an untraced run in a
  fresh process is shown beside it, as a cross-check: for plain providers it is the
  first thing this process does, for lifecycle providers it runs in a child process of
  the same interpreter (so freed memory from earlier cases cannot hide growth). The
  number of tasks per provider is counted in trio's task tree after each traced run.
  The memory target is judged on the worse of the two kinds.
* Breakers: each library's minimal guarded no-op call, synchronous API, beside
  ``if cb.acquire(now): cb.record_success(now)``; the async APIs are measured under
  asyncio as extra rows. A library that cannot be imported gets a row saying so.
* Control plane (needs the ``control`` extra and ``httpx``): per provider count,
  identical registries with the same plain FALLBACK providers. The third gets a live
  ``serve_control_api(registry, port=0, token=...)`` (so a ``RegistryCollector`` is
  attached: the registry's ``_resolve`` is shadowed by the counting resolve; attaching,
  and then each scrape, arms the next 64 resolves to be timed) and one real SSE client,
  an ``httpx.AsyncClient`` streaming ``GET /v1/runtime/events`` over loopback, read up
  to its ``: subscribed`` line (so its ``registry.events()`` subscription exists).
  Checked before timing: the observed registry counts (``ResolveStats.observers > 0``
  and ``_resolve`` shadowed by an instance attribute) and its bus has a subscriber, and
  the bare registries have none of that (they run the class's plain ``_resolve``);
  checked after: resolves were counted, exactly the resolves armed by the collector
  attaching (and by the "after a scrape" case) were timed, none was left armed, and the
  client received a full subscription buffer (1000) of the ResolveMiss events the rounds
  published. The 64 resolves armed when the collector attaches are spent before the
  rounds (the sanity checks and the batch-size calibration), and nothing scrapes during
  the rounds (the SSE client does not; the scrape rows run after them), so the observed
  hit and miss rows measure the counting resolve, untimed. A fourth registry, "class
  never observed", is of a copy of this package imported under another name: once any
  registry of a class has been observed, the others of that class in the process may
  resolve slower (``bench_control.py`` measures it), so it stands for a process with no
  control plane. ``get_service_nowait`` hits (first available) on the bare registry, the
  observed one, the second bare one (an A/A check of the noise between two identical
  registries) and the never-observed class's, and misses (a service type with no
  provider) on the bare and the observed one, are measured in interleaved rounds; the
  cases compared share one batch size. One more case in the same rounds, "after a
  scrape", is a hit on the observed registry with 64 timed resolves armed
  (``Registry._arm_timing()``, what each scrape does to the resolve path, called before
  the batch is timed) at the start of each batch: 64 timed resolves then counted ones,
  in the hits' batch size; it shows what the timing costs and has no target. The target
  is judged against both the never-observed class's registry and the bare one. The timed
  loops never yield to trio, so the server and the client do not run during a batch: the
  overhead measured is what the attached observers cost the resolve itself. A miss with
  a subscriber publishes a ResolveMiss into the subscriber's buffer (1000 events; when
  full, the oldest is dropped).
* A ``/metrics`` scrape is measured in three parts, interleaved one of each per round
  (gc left on, as in a server): the collect step, ``list(app.state.metrics.collect())``,
  which the endpoint runs on the event loop; formatting those collected families
  (``generate_latest`` on a snapshot), which the endpoint runs in a worker thread; and
  the whole ``generate_latest(app.state.metrics)``. Then the loop's longest pause during
  a real ``GET /metrics``: a task of the benchmark's trio run (which also runs the
  server) yields in a loop and records the longest gap between two of its steps while a
  client in a separate process (so its own work is not in the loop) fetches
  ``/metrics``; one request per sample.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import trio
import trio.testing
from _harness import (
    FULL,
    NO_N,
    QUICK,
    Config,
    Results,
    Row,
    SampleFn,
    Spec,
    Target,
    describe_source,
    environment,
    finish_environment,
    fmt_time,
    format_table,
    load_average_line,
    load_package_copy,
    measure,
    package_version,
    percentile,
    perf_ns,
    progress,
    render_targets,
    sync_sample,
    write_json,
)

import ciris_actors
from ciris_actors import CircuitBreaker, Registry, open_registry
from ciris_actors._stats import SAMPLE_SIZE

CAPS_OFFERED = ("structured_output", "function_calling")
CAPS_REQUIRED_LIST = ["structured_output"]
CAPS_REQUIRED_SET = frozenset(CAPS_REQUIRED_LIST)


class Provider:
    """A plain provider: no lifecycle, no health check, so routable at once."""


class LifecycleProvider:
    """A provider with the full lifecycle: two actor tasks (provider actor and breaker
    actor) plus its own ``run``; routable once started and health-checked."""

    __slots__ = ("checked", "started")

    def __init__(self) -> None:
        # Slots preset, so that setting them later allocates nothing.
        self.started = False
        self.checked = False

    async def start(self) -> None:
        self.started = True

    async def run(self) -> None:
        await trio.sleep_forever()

    async def aclose(self) -> None:
        return None

    async def is_healthy(self) -> bool:
        self.checked = True
        return True


def _noop() -> None:
    return None


async def _anoop() -> None:
    return None


# -- registry cases -----------------------------------------------------------------------


def nowait_sample(registry: Registry, handler: str, st: str, caps: Any) -> SampleFn:
    def body(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            registry.get_service_nowait(handler, st, caps)
        return perf_ns() - t0

    return sync_sample(body)


def get_service_sample(registry: Registry, handler: str, st: str, caps: Any) -> SampleFn:
    async def sample(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            await registry.get_service(handler, st, caps)
        return perf_ns() - t0

    return sample


def lease_sample(registry: Registry, handler: str, st: str) -> SampleFn:
    async def sample(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            async with registry.lease(handler, st):
                pass
        return perf_ns() - t0

    return sample


async def checkpoint_sample(batch: int) -> int:
    checkpoint = trio.lowlevel.checkpoint
    t0 = perf_ns()
    for _ in range(batch):
        await checkpoint()
    return perf_ns() - t0


def empty_loop_body(batch: int) -> int:
    t0 = perf_ns()
    for _ in range(batch):
        pass
    return perf_ns() - t0


def register_many(
    registry: Registry, handler: str, count: int, **kwargs: Any
) -> tuple[list[Provider], list[str]]:
    providers = [Provider() for _ in range(count)]
    names = [registry.register(handler, "llm", p, **kwargs) for p in providers]
    return providers, names


VARIANTS = {
    # key: (label, handler, caps passed on resolve)
    "fallback": ("FALLBACK, first available", "h_fallback", None),
    "rr": ("ROUND_ROBIN, one group", "h_rr", None),
    "caps_list": ("caps required (list)", "h_caps", CAPS_REQUIRED_LIST),
    "caps_set": ("caps required (frozenset)", "h_caps", CAPS_REQUIRED_SET),
}


async def bench_providers(n: int, cfg: Config, results: Results) -> None:
    """Sections 1, 2 and 4 for one provider count *n*."""
    async with open_registry(health_check_interval=None) as registry:
        fallback, _ = register_many(registry, "h_fallback", n)
        rr, _ = register_many(registry, "h_rr", n, strategy="round_robin")
        caps, _ = register_many(registry, "h_caps", n, capabilities=CAPS_OFFERED)
        failover, failover_names = register_many(registry, "h_failover", n)
        await trio.testing.wait_all_tasks_blocked()

        # Sanity: every resolve returns what the case claims to measure.
        assert registry.get_service_nowait("h_fallback", "llm") is fallback[0]
        assert registry.get_service_nowait("h_caps", "llm", CAPS_REQUIRED_LIST) is caps[0]
        assert registry.get_service_nowait("h_failover", "llm") is failover[0]
        first = registry.get_service_nowait("h_rr", "llm")
        second = registry.get_service_nowait("h_rr", "llm")
        assert first in rr
        assert second in rr
        assert n == 1 or first is not second

        specs: list[Spec] = []
        for key, (label, handler, req) in VARIANTS.items():
            specs.append(
                Spec(
                    f"nowait/{key}/{n}",
                    "get_service_nowait",
                    label,
                    n,
                    "trio",
                    nowait_sample(registry, handler, "llm", req),
                )
            )
        for key, (label, handler, req) in VARIANTS.items():
            specs.append(
                Spec(
                    f"get_service/{key}/{n}",
                    "get_service",
                    label,
                    n,
                    "trio",
                    get_service_sample(registry, handler, "llm", req),
                )
            )
        specs.append(
            Spec(
                f"lease/fallback/{n}",
                "lease round",
                "FALLBACK, `async with lease(): pass`",
                n,
                "trio",
                lease_sample(registry, "h_fallback", "llm"),
            )
        )
        specs.append(
            Spec(
                f"checkpoint/{n}",
                "trio.lowlevel.checkpoint()",
                f"yardstick, beside {n} provider(s)",
                n,
                "trio",
                checkpoint_sample,
            )
        )
        if n == cfg.provider_counts[0]:
            specs.append(
                Spec(
                    "empty_loop",
                    "empty `for _ in range(N)` step",
                    "included in every row",
                    NO_N,
                    "sync",
                    sync_sample(empty_loop_body),
                )
            )
        progress(f"{n} provider(s): {len(specs)} cases")
        await measure(specs, cfg, results)
        checkpoint = results.p50(f"checkpoint/{n}")
        for key in VARIANTS:
            row = results.by_key[f"get_service/{key}/{n}"]
            ratio = results.p50(row.key) / checkpoint
            row.note = f"{ratio:.2f}x checkpoint"
            row.extra["ratio_to_checkpoint"] = ratio
        lease = results.by_key[f"lease/fallback/{n}"]
        lease.note = f"{results.p50(lease.key) / checkpoint:.2f}x checkpoint"

        # Failover past k OPEN providers, interleaved with a k = 0 baseline.
        opened = 0
        for k in cfg.open_counts:
            if k >= n:
                continue
            for name in failover_names[opened:k]:
                registry.force_open(name, duration=1e9)
            opened = k
            await trio.testing.wait_all_tasks_blocked()
            assert registry.get_service_nowait("h_failover", "llm") is failover[k]
            group = [
                Spec(
                    f"_base_nowait/{n}/{k}",
                    "baseline",
                    "",
                    n,
                    "trio",
                    nowait_sample(registry, "h_fallback", "llm", None),
                ),
                Spec(
                    f"failover_nowait/{n}/{k}",
                    "get_service_nowait",
                    f"failover past {k} OPEN",
                    n,
                    "trio",
                    nowait_sample(registry, "h_failover", "llm", None),
                ),
                Spec(
                    f"_base_get_service/{n}/{k}",
                    "baseline",
                    "",
                    n,
                    "trio",
                    get_service_sample(registry, "h_fallback", "llm", None),
                ),
                Spec(
                    f"failover_get_service/{n}/{k}",
                    "get_service",
                    f"failover past {k} OPEN",
                    n,
                    "trio",
                    get_service_sample(registry, "h_failover", "llm", None),
                ),
            ]
            progress(f"{n} provider(s): failover past {k} OPEN")
            await measure(group, cfg, results)
            for api in ("nowait", "get_service"):
                base = results.by_key.pop(f"_base_{api}/{n}/{k}")
                results.rows.remove(base)
                row = results.by_key[f"failover_{api}/{n}/{k}"]
                assert base.p50_ns is not None
                assert row.p50_ns is not None
                per_skip = (row.p50_ns - base.p50_ns) / k
                row.note = (
                    f"{per_skip / 1000:+.3f} us per skipped provider"
                    f" (k=0 baseline {base.p50_ns / 1000:.3f} us)"
                )
                row.extra.update(
                    k=k,
                    baseline_p50_ns=base.p50_ns,
                    baseline_p99_ns=base.p99_ns,
                    baseline_samples_ns=base.samples_ns,
                    per_skip_ns=per_skip,
                )


# -- control plane overhead ---------------------------------------------------------------

#: The bearer token of the benchmark's own control plane (loopback only, never exposed).
CONTROL_TOKEN = "bench-token"
CONTROL_LABEL = "metrics + 1 SSE subscriber"
BARE_LABEL = "nothing attached"
AA_LABEL = "nothing attached, 2nd registry (A/A check)"
PRISTINE_LABEL = "nothing attached, class never observed (package copy)"
AFTER_SCRAPE_LABEL = f"{CONTROL_LABEL}, right after a scrape ({SAMPLE_SIZE} timed, then counted)"


class _AfterScrapeSample:
    """Hits on an observed registry right after a scrape: before each batch is timed,
    arm the next ``SAMPLE_SIZE`` resolves to be timed, as a scrape does; the batch then
    runs those timed resolves and counted ones after them. A batch shorter than
    ``SAMPLE_SIZE`` is followed (untimed) by the rest of the armed resolves, so no timed
    resolve is left over for another case."""

    def __init__(self, registry: Registry, handler: str, st: str) -> None:
        self._registry = registry
        self._handler = handler
        self._st = st
        #: Batches run, each with ``SAMPLE_SIZE`` resolves armed.
        self.batches = 0

    async def sample(self, batch: int) -> int:
        registry, handler, st = self._registry, self._handler, self._st
        stats = registry._sup.resolve_stats
        registry._arm_timing()
        self.batches += 1
        t0 = perf_ns()
        for _ in range(batch):
            registry.get_service_nowait(handler, st, None)
        took = perf_ns() - t0
        while stats.armed > 0:
            registry.get_service_nowait(handler, st, None)
        return took


def control_missing_row(error: Exception) -> Row:
    return Row(
        key="control/missing",
        case="control: get_service_nowait hit",
        variant="not importable",
        n=NO_N,
        runtime="-",
        cells=("-", "-"),
        note=f"{type(error).__name__}: {error} (pip install 'ciris-actors[control]' httpx)",
    )


@dataclass
class _SeenEvents:
    """What the benchmark's SSE client has received, by event type."""

    counts: dict[str, int] = field(default_factory=dict)
    #: ``reached`` is set once this many ResolveMiss events have arrived.
    want_misses: int = 1 << 62
    reached: trio.Event = field(default_factory=trio.Event)

    def expect_misses(self, count: int) -> None:
        self.want_misses = count
        self._check()

    def _check(self) -> None:
        if self.counts.get("ResolveMiss", 0) >= self.want_misses:
            self.reached.set()

    async def read(self, lines: Any) -> None:
        """Consume an SSE stream's lines, counting the events by type."""
        async for line in lines:
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
                self.counts[kind] = self.counts.get(kind, 0) + 1
                self._check()


def resolve_kind(registry: Any) -> str:
    """The name of the resolve the registry runs: ``_resolve`` (the class's plain one), or
    the counting one that shadows it while observed. Read through the attribute, not
    ``vars()``: materialising an instance's ``__dict__`` slows every later attribute
    read on it (CPython 3.11), which would itself be measured."""
    return str(registry._resolve.__func__.__name__)


def resolve_counts(registry: Any) -> tuple[int, int, int]:
    """Hits counted on the registry's members (``Member.selected``), misses and timed
    resolves: what only an observed registry counts."""
    stats = registry._sup.resolve_stats
    hits = sum(
        member.selected
        for plan in registry._plans.values()
        for group in plan
        for member in group.members
    )
    return hits, sum(stats.misses.values()), stats.timed_count


def _paired_ratio(num: Row, den: Row) -> float:
    """The median over rounds of (this round's sample of *num*) / (that of *den*)."""
    return statistics.median(a / b for a, b in zip(num.samples_ns, den.samples_ns, strict=True))


#: The name a never-observed copy of this package is imported under (see bench_control).
PRISTINE_ALIAS = "ciris_actors_pristine_copy"


async def bench_control(cfg: Config, results: Results) -> None:
    """The hot path with the control plane attached, beside the same without; and scrapes."""
    try:
        import httpx
        from prometheus_client import generate_latest

        from ciris_actors.control import serve_control_api
    except ImportError as exc:
        results.add(control_missing_row(exc))
        return
    with tempfile.TemporaryDirectory() as scratch:
        # Once a registry of a class has been observed, the other registries of that class
        # in the process may resolve slower (see bench_control.py), so "nothing attached"
        # in a process with no control plane is a registry of a class nothing observes:
        # one of a copy of this package.
        pristine = load_package_copy(
            pathlib.Path(ciris_actors.__file__).parent, PRISTINE_ALIAS, pathlib.Path(scratch)
        )
        for n in cfg.control_counts:
            await bench_control_n(
                n, cfg, results, httpx, generate_latest, serve_control_api, pristine
            )


async def bench_control_n(
    n: int,
    cfg: Config,
    results: Results,
    httpx: Any,
    generate_latest: Callable[[Any], bytes],
    serve_control_api: Any,
    pristine_package: ModuleType,
) -> None:
    """One provider count: three identical registries, ``n`` plain FALLBACK providers each;
    the third gets a live control plane and one SSE client; and a fourth of a copy of the
    package that nothing observes. Interleaved rounds of a hit and a miss on each."""
    handler, st, absent = "h_fallback", "llm", "absent"
    async with (
        open_registry(health_check_interval=None) as bare,
        open_registry(health_check_interval=None) as bare2,
        open_registry(health_check_interval=None) as observed,
        pristine_package.open_registry(health_check_interval=None) as pristine,
    ):
        firsts = []
        for registry in (bare, bare2, observed, pristine):
            providers, _ = register_many(registry, handler, n)
            firsts.append(providers[0])
        await trio.testing.wait_all_tasks_blocked()
        async with serve_control_api(
            observed, port=0, token=CONTROL_TOKEN, graceful_timeout=1.0
        ) as server:
            headers = {"Authorization": f"Bearer {CONTROL_TOKEN}"}
            async with (
                # No read timeout: the stream may be quiet for longer than its keep-alive
                # interval while the scrapes below are timed.
                httpx.AsyncClient(
                    base_url=server.url, headers=headers, timeout=httpx.Timeout(10, read=None)
                ) as client,
                client.stream("GET", "/v1/runtime/events") as response,
            ):
                if response.status_code != 200:
                    raise RuntimeError(f"event stream: HTTP {response.status_code}")
                lines = response.aiter_lines()
                first_line = await anext(lines)
                if not first_line.startswith(": subscribed"):
                    raise RuntimeError(f"event stream: unexpected first line {first_line!r}")
                seen = _SeenEvents()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(seen.read, lines)
                    await _control_rounds(
                        n,
                        cfg,
                        results,
                        (bare, bare2, observed, pristine),
                        firsts,
                        (handler, st, absent),
                    )
                    group = results.by_key[f"control/nowait/observed/{n}"]
                    # The SSE client really receives the misses published during the
                    # rounds: a full buffer of them (the stream's subscription holds 1000).
                    published = observed._sup.resolve_stats.misses[absent]
                    seen.expect_misses(min(published, 1000))
                    with trio.fail_after(30):
                        await seen.reached.wait()
                    group.extra["misses_published"] = published
                    group.extra["sse_events_seen_by_client"] = dict(seen.counts)
                    if n in cfg.scrape_counts:
                        scrape_rows(n, cfg, results, server.app, generate_latest)
                        await scrape_stall_row(n, cfg, results, server.url)
                    nursery.cancel_scope.cancel()


async def _control_rounds(
    n: int,
    cfg: Config,
    results: Results,
    registries: tuple[Registry, Registry, Registry, Any],
    firsts: list[Any],
    names: tuple[str, str, str],
) -> None:
    bare, bare2, observed, pristine = registries
    if type(pristine) is Registry or type(pristine).__name__ != "Registry":
        raise RuntimeError("the pristine registry is not of a copy of the package")
    handler, st, absent = names
    # Sanity: what each case claims to measure.
    for registry, first in zip(registries, firsts, strict=True):
        assert registry.get_service_nowait(handler, st) is first
        assert registry.get_service_nowait(handler, absent) is None
    stats = observed._sup.resolve_stats
    if not (stats.observers > 0 and observed._sup.bus.has_subscribers):
        raise RuntimeError("control plane not attached: no resolve counting or no subscriber")
    # Observed, the counting resolve shadows the class's plain one (an instance attribute);
    # a registry nobody observes runs the plain one.
    if resolve_kind(observed) == "_resolve":
        raise RuntimeError("control plane attached, but the registry's resolve is not counting")
    for registry in (bare, bare2, pristine):
        if registry._sup.resolve_stats.observers or registry._sup.bus.has_subscribers:
            raise RuntimeError("a bare registry has an observer")
        if resolve_kind(registry) != "_resolve":
            raise RuntimeError("a bare registry's resolve is shadowed")
    timed_before = stats.timed_count
    # Still armed from the collector attaching (less the sanity resolves above): spent in
    # the first calibration batch of the observed registry, before any timed round.
    armed_before = stats.armed
    after_scrape = _AfterScrapeSample(observed, handler, st)
    hit = "FALLBACK, first available"
    miss = "miss (no provider of the type)"
    specs = [
        Spec(
            f"control/nowait/bare/{n}",
            "control: get_service_nowait hit",
            f"{hit}; {BARE_LABEL}",
            n,
            "trio",
            nowait_sample(bare, handler, st, None),
        ),
        Spec(
            f"control/nowait/observed/{n}",
            "control: get_service_nowait hit",
            f"{hit}; {CONTROL_LABEL}",
            n,
            "trio",
            nowait_sample(observed, handler, st, None),
        ),
        Spec(
            f"control/nowait/bare2/{n}",
            "control: get_service_nowait hit",
            f"{hit}; {AA_LABEL}",
            n,
            "trio",
            nowait_sample(bare2, handler, st, None),
        ),
        Spec(
            f"control/nowait/pristine/{n}",
            "control: get_service_nowait hit",
            f"{hit}; {PRISTINE_LABEL}",
            n,
            "trio",
            nowait_sample(pristine, handler, st, None),
        ),
        Spec(
            f"control/miss/bare/{n}",
            "control: get_service_nowait miss",
            f"{miss}; {BARE_LABEL}",
            n,
            "trio",
            nowait_sample(bare, handler, absent, None),
        ),
        Spec(
            f"control/miss/observed/{n}",
            "control: get_service_nowait miss",
            f"{miss}; {CONTROL_LABEL}",
            n,
            "trio",
            nowait_sample(observed, handler, absent, None),
        ),
        Spec(
            f"control/nowait/after_scrape/{n}",
            "control: get_service_nowait hit",
            f"{hit}; {AFTER_SCRAPE_LABEL}",
            n,
            "trio",
            after_scrape.sample,
        ),
    ]
    progress(f"{n} provider(s): control plane attached vs not, {len(specs)} cases")
    await measure(specs, cfg, results, batch_groups=[spec.key.split("/")[1] for spec in specs])
    timed = stats.timed_count - timed_before
    # Exactly what was armed: what the collector's attaching left, and 64 per batch of
    # the after-scrape case. Anything more would mean a scrape ran during the rounds.
    expected = armed_before + SAMPLE_SIZE * after_scrape.batches
    if timed != expected or stats.armed != 0:
        raise RuntimeError(
            f"timed {timed} resolves, expected {expected}; {stats.armed} still armed"
        )
    if resolve_kind(observed) != "_resolve_counted":
        raise RuntimeError(f"the observed registry runs {resolve_kind(observed)} after the rounds")
    for registry in (bare, bare2, pristine):
        if resolve_counts(registry) != (0, 0, 0) or resolve_kind(registry) != "_resolve":
            raise RuntimeError("a bare registry counted or timed resolves")
    by_key = results.by_key
    by_key[f"control/nowait/observed/{n}"].extra.update(
        resolves_timed_in_group=timed,
        armed_by_attaching_spent_before_rounds=armed_before,
    )
    for kind in ("nowait", "miss"):
        base = by_key[f"control/{kind}/bare/{n}"]
        row = by_key[f"control/{kind}/observed/{n}"]
        assert base.p50_ns is not None
        assert row.p50_ns is not None
        ratio = row.p50_ns / base.p50_ns
        paired = _paired_ratio(row, base)
        row.note = f"{ratio:.2f}x {BARE_LABEL} (median of per-round ratios {paired:.2f}x)"
        row.extra.update(
            ratio_to_bare=ratio,
            paired_ratio_to_bare=paired,
            timing=f"the {SAMPLE_SIZE} resolves after each scrape (none in this case's batches)",
            observers=stats.observers,
            subscribers=1,
            server="serve_control_api on loopback, one httpx client on /v1/runtime/events",
        )
    # Right after a scrape: against the observed registry's counted hits in the same
    # rounds (same batch), and what that makes one timed resolve cost on top.
    scraped = by_key[f"control/nowait/after_scrape/{n}"]
    counted = by_key[f"control/nowait/observed/{n}"]
    assert scraped.p50_ns is not None
    assert counted.p50_ns is not None
    if scraped.batch != counted.batch:
        raise RuntimeError("the after-scrape case has another batch size than the hits")
    timed_share = min(SAMPLE_SIZE, scraped.batch) / scraped.batch
    per_timed = (scraped.p50_ns - counted.p50_ns) / timed_share
    scraped.note = (
        f"{scraped.p50_ns / counted.p50_ns:.2f}x {CONTROL_LABEL} (counted only);"
        f" {min(SAMPLE_SIZE, scraped.batch)} of {scraped.batch} calls timed,"
        f" about +{per_timed:.0f} ns per timed resolve"
    )
    scraped.extra.update(
        ratio_to_observed=scraped.p50_ns / counted.p50_ns,
        paired_ratio_to_observed=_paired_ratio(scraped, counted),
        timed_per_batch=min(SAMPLE_SIZE, scraped.batch),
        extra_ns_per_timed_resolve=per_timed,
        no_target=True,
    )
    aa = by_key[f"control/nowait/bare2/{n}"]
    base = by_key[f"control/nowait/bare/{n}"]
    assert aa.p50_ns is not None
    assert base.p50_ns is not None
    aa_ratio = aa.p50_ns / base.p50_ns
    aa.note = f"{aa_ratio:.2f}x {BARE_LABEL} (noise between two identical registries)"
    aa.extra["ratio_to_bare"] = aa_ratio
    aa.extra["paired_ratio_to_bare"] = _paired_ratio(aa, base)
    # Against a registry whose class nothing observes: "without" in a process with no
    # control plane.
    clean_row = by_key[f"control/nowait/pristine/{n}"]
    observed_row = by_key[f"control/nowait/observed/{n}"]
    assert clean_row.p50_ns is not None
    assert observed_row.p50_ns is not None
    ratio = observed_row.p50_ns / clean_row.p50_ns
    paired = _paired_ratio(observed_row, clean_row)
    observed_row.extra.update(ratio_to_pristine=ratio, paired_ratio_to_pristine=paired)
    observed_row.note += f"; {ratio:.2f}x class never observed (per-round {paired:.2f}x)"
    bare_ratio = base.p50_ns / clean_row.p50_ns
    clean_row.extra["bare_ratio_to_pristine"] = bare_ratio
    clean_row.extra["paired_bare_ratio_to_pristine"] = _paired_ratio(base, clean_row)
    clean_row.note = f"{BARE_LABEL} is {bare_ratio:.2f}x this (same class as the observed one)"


@dataclass(frozen=True)
class _Snapshot:
    """Metric families already collected, as the ``/metrics`` endpoint hands them to its
    worker thread (an object with ``collect()``, which is all ``generate_latest`` reads)."""

    families: list[Any]

    def collect(self) -> Any:
        return iter(self.families)


SCRAPE_PARTS = (
    # key, variant
    ("collect", "collect: list(app.state.metrics.collect()) (on the event loop)"),
    ("format", "format: generate_latest(collected families) (in a worker thread)"),
    ("whole", "whole: generate_latest(app.state.metrics)"),
)


class _GcWatch:
    """Record the garbage collector's passes (in any thread) while installed: for each
    window (from :meth:`window` to the next), their total and longest duration."""

    def __init__(self) -> None:
        self._started = 0
        self.total = 0
        self.longest = 0

    def window(self) -> tuple[int, int]:
        """The (total, longest) ns of gc passes since the last call; start a new window."""
        seen = (self.total, self.longest)
        self.total = self.longest = 0
        return seen

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = perf_ns()
        else:
            took = perf_ns() - self._started
            self.total += took
            self.longest = max(self.longest, took)

    def __enter__(self) -> _GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def _gc_note(longest: Sequence[float]) -> str:
    """How many samples had a gc pass, and the longest."""
    hit = [x for x in longest if x > 0]
    if not hit:
        return "no gc pass"
    return f"gc ran in {len(hit)} of {len(longest)}, longest pass {fmt_time(max(hit))}"


def scrape_rows(
    n: int, cfg: Config, results: Results, app: Any, generate_latest: Callable[[Any], bytes]
) -> None:
    """Time a scrape's collect step, the formatting of what it collected, and the whole
    ``generate_latest``; one of each per round, gc left on (as in a server)."""
    metrics = app.state.metrics
    body = generate_latest(metrics)
    if b"ciris_resolve_duration_seconds_bucket" not in body:
        raise RuntimeError("the scrape has no resolve-duration histogram")
    if generate_latest(_Snapshot(list(metrics.collect()))) != generate_latest(metrics):
        raise RuntimeError("formatting the collected families differs from a whole scrape")
    samples: dict[str, list[float]] = {key: [] for key, _ in SCRAPE_PARTS}
    gc_longest: dict[str, list[float]] = {key: [] for key, _ in SCRAPE_PARTS}
    with _GcWatch() as watch:
        for round_ in range(cfg.scrape_warmup + cfg.scrape_samples):
            watch.window()
            t0 = perf_ns()
            families = list(metrics.collect())
            t1 = perf_ns()
            gc_collect = watch.window()
            generate_latest(_Snapshot(families))
            t2 = perf_ns()
            gc_format = watch.window()
            generate_latest(metrics)
            t3 = perf_ns()
            gc_whole = watch.window()
            if round_ >= cfg.scrape_warmup:
                samples["collect"].append(float(t1 - t0))
                samples["format"].append(float(t2 - t1))
                samples["whole"].append(float(t3 - t2))
                for key, seen in (
                    ("collect", gc_collect),
                    ("format", gc_format),
                    ("whole", gc_whole),
                ):
                    gc_longest[key].append(float(seen[1]))
    lines = body.count(b"\n")
    whole_p50 = percentile(samples["whole"], 50)
    for key, variant in SCRAPE_PARTS:
        values = samples[key]
        p50 = percentile(values, 50)
        note = f"{cfg.scrape_samples} scrapes"
        if key == "whole":
            note += f"; {len(body) / 1024:.1f} KiB, {lines} lines"
        else:
            note += f"; {p50 / whole_p50:.0%} of the whole"
        note += f"; {_gc_note(gc_longest[key])}"
        results.add(
            Row(
                key=f"control/scrape/{key}/{n}",
                case="control: /metrics scrape",
                variant=variant,
                n=n,
                runtime="trio",
                p50_ns=p50,
                p99_ns=percentile(values, 99),
                batch=1,
                samples_ns=values,
                note=note,
                extra={
                    "bytes": len(body),
                    "lines": lines,
                    "families": len(families),
                    "gc_longest_pass_ns": gc_longest[key],
                },
            )
        )


#: The scrape client of :func:`scrape_stall_row`: one GET per line read from stdin.
_SCRAPE_CLIENT = """
import sys, urllib.request
url, token = sys.argv[1], sys.argv[2]
for _ in sys.stdin:
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(request, timeout=120) as response:
        size = len(response.read())
    print(response.status, size, flush=True)
"""


class _Ticker:
    """A task that only yields, recording the longest gap between two of its steps: how
    long the trio run (its scheduler) was kept from a ready task."""

    def __init__(self) -> None:
        self.longest = 0

    async def run(self) -> None:
        checkpoint = trio.lowlevel.checkpoint
        last = perf_ns()
        while True:
            await checkpoint()
            now = perf_ns()
            if now - last > self.longest:
                self.longest = now - last
            last = now


async def scrape_stall_row(n: int, cfg: Config, results: Results, url: str) -> None:
    """The longest pause of the trio run (server included) during one real ``GET /metrics``,
    from a client in another process; one request per sample."""
    ticker = _Ticker()
    command = [sys.executable, "-c", _SCRAPE_CLIENT, f"{url}/metrics", CONTROL_TOKEN]
    pauses: list[float] = []
    walls: list[float] = []
    sizes: set[int] = set()
    process = await trio.lowlevel.open_process(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    gc_longest: list[float] = []
    try:
        with _GcWatch() as watch:
            async with trio.open_nursery() as nursery:
                assert process.stdin is not None
                assert process.stdout is not None
                nursery.start_soon(ticker.run)
                pending = b""
                for round_ in range(cfg.scrape_warmup + cfg.scrape_samples):
                    ticker.longest = 0
                    watch.window()
                    t0 = perf_ns()
                    await process.stdin.send_all(b"get\n")
                    while b"\n" not in pending:
                        chunk = await process.stdout.receive_some()
                        if not chunk:
                            raise RuntimeError("the scrape client exited")
                        pending += chunk
                    wall = perf_ns() - t0
                    gc_seen = watch.window()
                    line, pending = pending.split(b"\n", 1)
                    status, size = line.split()
                    if status != b"200":
                        raise RuntimeError(f"GET /metrics: HTTP {status.decode()}")
                    if round_ >= cfg.scrape_warmup:
                        pauses.append(float(ticker.longest))
                        gc_longest.append(float(gc_seen[1]))
                        walls.append(float(wall))
                        sizes.add(int(size))
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    await stream.aclose()
            if process.poll() is None:  # the client exits at the end of its input
                with trio.move_on_after(5):
                    await process.wait()
            if process.poll() is None:
                process.kill()
                await process.wait()
    results.add(
        Row(
            key=f"control/scrape/stall/{n}",
            case="control: /metrics scrape",
            variant="longest event-loop pause during one real GET /metrics",
            n=n,
            runtime="trio",
            p50_ns=percentile(pauses, 50),
            p99_ns=percentile(pauses, 99),
            batch=1,
            samples_ns=pauses,
            note=(
                f"{cfg.scrape_samples} requests; request p50 {fmt_time(percentile(walls, 50))}"
                f" (client in another process; a busy task in the loop); {_gc_note(gc_longest)}"
            ),
            extra={
                "request_wall_ns": walls,
                "gc_longest_pass_ns": gc_longest,
                "bytes": sorted(sizes),
                "switch_interval_s": sys.getswitchinterval(),
            },
        )
    )


# -- registration and memory --------------------------------------------------------------


def rss_bytes() -> int | None:
    """Resident set size now (Linux only; ``None`` elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def count_tasks() -> int:
    """The number of tasks in this ``trio.run`` now (the root task included)."""

    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(
            walk(child) for nursery in task.child_nurseries for child in nursery.child_tasks
        )

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return walk(root)


PROVIDER_KINDS: dict[str, type[Provider] | type[LifecycleProvider]] = {
    "plain": Provider,
    "lifecycle": LifecycleProvider,
}


async def registration_run(
    total: int, per_key: int, *, trace: bool, kind: str = "plain"
) -> dict[str, Any]:
    """Register *total* providers of *kind*, *per_key* per (handler, service_type), in a
    fresh registry.

    Returns timings (per ``register()`` call, the whole loop, until every actor is blocked)
    and memory growth (tracemalloc when *trace*, else RSS), and the tasks per provider.
    """
    keys = max(1, total // per_key)
    handlers = [f"h{i % keys}" for i in range(total)]
    factory = PROVIDER_KINDS[kind]
    providers = [factory() for _ in range(total)]
    per_call = [0] * total
    out: dict[str, Any] = {"kind": kind, "providers": total, "per_key": per_key, "keys": keys}
    async with open_registry(health_check_interval=None) as registry:
        await trio.testing.wait_all_tasks_blocked()
        tasks_before = count_tasks()
        gc.collect()
        if trace:
            tracemalloc.start()
            traced_before = tracemalloc.get_traced_memory()[0]
        rss_before = rss_bytes()
        gc.disable()
        try:
            t0 = perf_ns()
            if trace:
                for i in range(total):
                    registry.register(handlers[i], "llm", providers[i])
            else:
                for i in range(total):
                    c0 = perf_ns()
                    registry.register(handlers[i], "llm", providers[i])
                    per_call[i] = perf_ns() - c0
            t1 = perf_ns()
            await trio.testing.wait_all_tasks_blocked()
            t2 = perf_ns()
        finally:
            gc.enable()
        gc.collect()
        if trace:
            traced_after = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            out["traced_bytes"] = traced_after - traced_before
        else:
            rss_after = rss_bytes()
            if rss_before is not None and rss_after is not None:
                out["rss_bytes"] = rss_after - rss_before
            out["register_ns"] = t1 - t0
            out["started_ns"] = t2 - t0
            out["per_call_ns"] = per_call
        out["tasks_per_provider"] = (count_tasks() - tasks_before) / total
        # Sanity: every provider is routable; lifecycle ones were started and checked.
        if isinstance(providers[0], LifecycleProvider):
            lifecycle = [p for p in providers if isinstance(p, LifecycleProvider)]
            assert all(p.started and p.checked for p in lifecycle)
        for i in range(keys):
            assert registry.get_service_nowait(handlers[i], "llm") is providers[i]
        c0 = perf_ns()
    out["close_ns"] = perf_ns() - c0
    return out


def registration_in_child(total: int, per_key: int, kind: str) -> dict[str, Any]:
    """Run an untraced :func:`registration_run` (timings, RSS) as the first thing a fresh
    process of the same interpreter does, so that no memory freed earlier hides growth."""
    command = [
        sys.executable,
        str(pathlib.Path(__file__).resolve()),
        "--registration-probe",
        kind,
        "--providers",
        str(total),
        "--per-key",
        str(per_key),
    ]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _kib(nbytes: float) -> str:
    return f"{nbytes / 1024:.2f} KiB"


def _tasks(run: dict[str, Any]) -> str:
    return f"{run['tasks_per_provider']:.2f} tasks/provider"


KIND_LABEL = {"plain": "plain provider", "lifecycle": "full lifecycle"}


def add_memory_rows(
    results: Results, kind: str, traced: dict[str, Any], timed: dict[str, Any]
) -> None:
    total, keys, spread = traced["providers"], traced["keys"], traced["per_key"]
    label = KIND_LABEL[kind]
    per_provider = traced["traced_bytes"] / total
    results.add(
        Row(
            key=f"memory/{kind}/tracemalloc",
            case="memory per provider + actors",
            variant=f"{label}, tracemalloc, {keys} keys x {spread}",
            n=total,
            runtime="trio",
            cells=(_kib(per_provider), "-"),
            note=(
                f"single run; {traced['traced_bytes'] / 2**20:.1f} MiB in total; {_tasks(traced)}"
            ),
            extra={"bytes_per_provider": per_provider, **traced},
        )
    )
    if "rss_bytes" in timed:
        rss_per = timed["rss_bytes"] / total
        where = "first in this process" if kind == "plain" else "first in a child process"
        results.add(
            Row(
                key=f"memory/{kind}/rss",
                case="memory per provider + actors",
                variant=f"{label}, RSS growth, {keys} keys x {spread}",
                n=total,
                runtime="trio",
                cells=(_kib(rss_per), "-"),
                note=f"single run, {where}; {timed['rss_bytes'] / 2**20:.1f} MiB in total",
                extra={"bytes_per_provider": rss_per},
            )
        )


def add_register_row(results: Results, key: str, label: str, run: dict[str, Any]) -> None:
    calls = run["per_call_ns"]
    total = run["providers"]
    results.add(
        Row(
            key=key,
            case="register() one call",
            variant=label,
            n=total,
            runtime="trio",
            p50_ns=percentile(calls, 50),
            p99_ns=percentile(calls, 99),
            batch=1,
            note=(
                f"{total} in {run['register_ns'] / 1e9:.3f} s;"
                f" actors started at {run['started_ns'] / 1e9:.3f} s"
            ),
            extra={
                "register_ns": run["register_ns"],
                "started_ns": run["started_ns"],
                "close_ns": run["close_ns"],
                "per_call_ns": calls,
            },
        )
    )


async def bench_registration(cfg: Config, results: Results) -> None:
    """Registration and memory, except the lifecycle providers' untraced run (timings,
    RSS), which :func:`bench_lifecycle_registration` makes in a child process."""
    total = cfg.memory_providers
    spread = cfg.per_key
    keys = max(1, total // spread)

    progress(f"registering {total} plain providers over {keys} keys (timing, RSS)")
    timed = await registration_run(total, spread, trace=False)
    progress(f"registering {total} plain providers over {keys} keys (tracemalloc)")
    traced = await registration_run(total, spread, trace=True)
    progress(f"registering {total} plain providers into one key (timing)")
    one_key = await registration_run(total, total, trace=False)
    progress(f"registering {total} lifecycle providers over {keys} keys (tracemalloc)")
    lifecycle_traced = await registration_run(total, spread, trace=True, kind="lifecycle")
    results.extra["registration"] = {
        name: {k: v for k, v in run.items() if k != "per_call_ns"}
        for name, run in (
            ("spread_timed", timed),
            ("spread_traced", traced),
            ("one_key", one_key),
            ("lifecycle_spread_traced", lifecycle_traced),
        )
    }
    add_memory_rows(results, "plain", traced, timed)
    add_register_row(results, "register/spread", f"plain, {keys} keys x {spread}", timed)
    add_register_row(results, "register/one_key", f"plain, one key x {total}", one_key)


def bench_lifecycle_registration(cfg: Config, results: Results) -> None:
    """The lifecycle providers' untraced run, in a fresh child process (so its RSS growth
    is not hidden by memory this process freed), and their memory and register rows."""
    total = cfg.memory_providers
    spread = cfg.per_key
    keys = max(1, total // spread)
    progress(f"registering {total} lifecycle providers over {keys} keys (timing, RSS; child)")
    timed = registration_in_child(total, spread, "lifecycle")
    registration = results.extra["registration"]
    registration["lifecycle_spread_timed_child"] = {
        k: v for k, v in timed.items() if k != "per_call_ns"
    }
    add_memory_rows(results, "lifecycle", registration["lifecycle_spread_traced"], timed)
    add_register_row(
        results,
        "register/lifecycle",
        f"full lifecycle, {keys} keys x {spread} (child process)",
        timed,
    )


# -- section 3: breakers ------------------------------------------------------------------


def ours_sync_specs() -> list[Spec]:
    cb = CircuitBreaker("bench")
    now = time.monotonic()

    def minimal(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            if cb.acquire(now):
                cb.record_success(now)
        return perf_ns() - t0

    cb2 = CircuitBreaker("bench2")
    monotonic = time.monotonic

    def with_call(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            if cb2.acquire(monotonic()):
                _noop()
                cb2.record_success(monotonic())
        return perf_ns() - t0

    version = package_version("ciris-actors")
    return [
        Spec(
            "breaker/ours",
            f"breaker: ciris_actors {version}",
            "if cb.acquire(now): cb.record_success(now)",
            NO_N,
            "sync",
            sync_sample(minimal),
        ),
        Spec(
            "breaker/ours_call",
            f"breaker: ciris_actors {version}",
            "same + 2 monotonic() reads + noop() call",
            NO_N,
            "sync",
            sync_sample(with_call),
        ),
    ]


def library_sync_specs() -> tuple[list[Spec], list[Row]]:
    """The four libraries' synchronous guarded no-op calls; rows for missing ones."""
    specs: list[Spec] = []
    missing: list[Row] = []

    def absent(dist: str, error: Exception) -> None:
        missing.append(
            Row(
                key=f"breaker/{dist}/missing",
                case=f"breaker: {dist}",
                variant="not importable",
                n=NO_N,
                runtime="-",
                cells=("-", "-"),
                note=f"{type(error).__name__}: {error} (pip install 'ciris-actors[bench]')",
            )
        )

    try:
        import pybreaker

        pb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)

        def pybreaker_body(batch: int) -> int:
            t0 = perf_ns()
            for _ in range(batch):
                pb.call(_noop)
            return perf_ns() - t0

        specs.append(
            Spec(
                "breaker/pybreaker",
                f"breaker: pybreaker {package_version('pybreaker')}",
                "cb.call(noop)",
                NO_N,
                "sync",
                sync_sample(pybreaker_body),
            )
        )
    except ImportError as exc:
        absent("pybreaker", exc)

    try:
        import purgatory

        factory = purgatory.SyncCircuitBreakerFactory(default_threshold=5, default_ttl=60)
        factory.initialize()
        brk = factory.get_breaker("bench")

        def purgatory_body(batch: int) -> int:
            t0 = perf_ns()
            for _ in range(batch):
                with brk:
                    _noop()
            return perf_ns() - t0

        specs.append(
            Spec(
                "breaker/purgatory",
                f"breaker: purgatory {package_version('purgatory')}",
                "with brk: noop()  (brk fetched once)",
                NO_N,
                "sync",
                sync_sample(purgatory_body),
            )
        )
    except ImportError as exc:
        absent("purgatory", exc)

    try:
        import aiobreaker

        ab = aiobreaker.CircuitBreaker(fail_max=5)

        def aiobreaker_body(batch: int) -> int:
            t0 = perf_ns()
            for _ in range(batch):
                ab.call(_noop)
            return perf_ns() - t0

        specs.append(
            Spec(
                "breaker/aiobreaker",
                f"breaker: aiobreaker {package_version('aiobreaker')}",
                "cb.call(noop)",
                NO_N,
                "sync",
                sync_sample(aiobreaker_body),
            )
        )
    except ImportError as exc:
        absent("aiobreaker", exc)

    try:
        import circuitbreaker

        guarded = circuitbreaker.circuit(failure_threshold=5, recovery_timeout=60)(_noop)

        def circuitbreaker_body(batch: int) -> int:
            t0 = perf_ns()
            for _ in range(batch):
                guarded()
            return perf_ns() - t0

        specs.append(
            Spec(
                "breaker/circuitbreaker",
                f"breaker: circuitbreaker {package_version('circuitbreaker')}",
                "@circuit-decorated noop()",
                NO_N,
                "sync",
                sync_sample(circuitbreaker_body),
            )
        )
    except ImportError as exc:
        absent("circuitbreaker", exc)

    return specs, missing


async def library_async_specs() -> tuple[list[Spec], list[Row]]:
    """Async guarded no-op calls, measured under asyncio (what these APIs are built for),
    with ours in the same loop for comparison. Informational: the target uses the sync rows.
    """
    specs: list[Spec] = []
    missing: list[Row] = []
    cb = CircuitBreaker("bench-async")
    now = time.monotonic()

    async def ours(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            if cb.acquire(now):
                await _anoop()
                cb.record_success(now)
        return perf_ns() - t0

    specs.append(
        Spec(
            "breaker/ours_async",
            f"breaker: ciris_actors {package_version('ciris-actors')}",
            "acquire; await anoop(); record_success",
            NO_N,
            "asyncio",
            ours,
        )
    )

    def absent(dist: str, error: Exception) -> None:
        missing.append(
            Row(
                key=f"breaker/{dist}/async-missing",
                case=f"breaker: {dist} (async)",
                variant="not importable",
                n=NO_N,
                runtime="-",
                cells=("-", "-"),
                note=f"{type(error).__name__}: {error}",
            )
        )

    try:
        import aiobreaker

        ab = aiobreaker.CircuitBreaker(fail_max=5)

        async def aiobreaker_fn(batch: int) -> int:
            t0 = perf_ns()
            for _ in range(batch):
                await ab.call_async(_anoop)
            return perf_ns() - t0

        specs.append(
            Spec(
                "breaker/aiobreaker_async",
                f"breaker: aiobreaker {package_version('aiobreaker')}",
                "await cb.call_async(anoop)",
                NO_N,
                "asyncio",
                aiobreaker_fn,
            )
        )
    except ImportError as exc:
        absent("aiobreaker", exc)

    try:
        import purgatory

        factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=60)
        await factory.initialize()
        brk = await factory.get_breaker("bench")

        async def purgatory_fn(batch: int) -> int:
            t0 = perf_ns()
            for _ in range(batch):
                async with brk:
                    await _anoop()
            return perf_ns() - t0

        specs.append(
            Spec(
                "breaker/purgatory_async",
                f"breaker: purgatory {package_version('purgatory')}",
                "async with brk: await anoop()",
                NO_N,
                "asyncio",
                purgatory_fn,
            )
        )
    except ImportError as exc:
        absent("purgatory", exc)

    try:
        import circuitbreaker

        guarded = circuitbreaker.circuit(failure_threshold=5, recovery_timeout=60)(_anoop)

        async def circuitbreaker_fn(batch: int) -> int:
            t0 = perf_ns()
            for _ in range(batch):
                await guarded()
            return perf_ns() - t0

        specs.append(
            Spec(
                "breaker/circuitbreaker_async",
                f"breaker: circuitbreaker {package_version('circuitbreaker')}",
                "await @circuit-decorated anoop()",
                NO_N,
                "asyncio",
                circuitbreaker_fn,
            )
        )
    except ImportError as exc:
        absent("circuitbreaker", exc)

    return specs, missing


async def bench_breakers_trio(cfg: Config, results: Results) -> None:
    specs, missing = library_sync_specs()
    progress(f"breakers (sync): {2 + len(specs)} cases")
    await measure([*ours_sync_specs(), *specs], cfg, results)
    for row in missing:
        results.add(row)


async def bench_breakers_asyncio(cfg: Config, results: Results) -> None:
    specs, missing = await library_async_specs()
    progress(f"breakers (asyncio): {len(specs)} cases")
    await measure(specs, cfg, results)
    for row in missing:
        results.add(row)


# -- report -------------------------------------------------------------------------------


SECTION_ORDER = (
    "get_service_nowait",
    "get_service",
    "lease round",
    "trio.lowlevel.checkpoint()",
    "empty `for _ in range(N)` step",
    "breaker",
    "memory per provider + actors",
    "register() one call",
    "control: get_service_nowait hit",
    "control: get_service_nowait miss",
    "control: /metrics scrape",
)


def ordered_rows(results: Results) -> list[Row]:
    def section(row: Row) -> int:
        for index, prefix in enumerate(SECTION_ORDER):
            if row.case.startswith(prefix) and (
                prefix != "get_service" or row.case == "get_service"
            ):
                return index
        return len(SECTION_ORDER)

    def failover_k(row: Row) -> int:
        k = row.extra.get("k", 0)
        return int(k)

    variant_rank = {label: i for i, (label, _, _) in enumerate(VARIANTS.values())}
    return sorted(
        results.rows,
        key=lambda r: (
            section(r),
            0 if r.case.startswith("breaker") else variant_rank.get(r.variant, 99),
            r.n,
            failover_k(r),
        ),
    )


def render_table(results: Results) -> str:
    header = ("case", "variant", "n", "runtime", "p50", "p99", "batch", "note")
    lines: list[tuple[str, ...]] = []
    for row in ordered_rows(results):
        if row.cells is not None:
            p50, p99 = row.cells
        else:
            p50, p99 = fmt_time(row.p50_ns), fmt_time(row.p99_ns)
        lines.append(
            (
                row.case,
                row.variant,
                "-" if row.n == NO_N else str(row.n),
                row.runtime,
                p50,
                p99,
                str(row.batch) if row.batch else "-",
                row.note,
            )
        )
    return format_table(header, lines, right={2, 4, 5, 6})


def evaluate_targets(results: Results, cfg: Config) -> list[Target]:
    targets: list[Target] = []
    n_small, n_large = cfg.provider_counts[0], cfg.provider_counts[-1]
    p1 = results.p50(f"nowait/fallback/{n_small}")
    targets.append(
        Target(
            f"get_service_nowait, first available, {n_small} provider: p50 <= 2 us",
            f"p50 {fmt_time(p1)}",
            p1 <= 2000,
        )
    )
    pn = results.p50(f"nowait/fallback/{n_large}")
    targets.append(
        Target(
            f"get_service_nowait at {n_large} providers <= 1.5x the {n_small}-provider p50",
            f"p50 {fmt_time(pn)} = {pn / p1:.2f}x",
            pn <= 1.5 * p1,
        )
    )

    skips = [
        (row.n, int(row.extra["k"]), float(row.extra["per_skip_ns"]))
        for row in results.rows
        if row.key.startswith("failover_nowait/")
    ]
    if skips:
        n, k, best = max(skips, key=lambda s: (s[1], s[0]))
        spread = ", ".join(f"n={sn} k={sk}: {sv / 1000:.3f}" for sn, sk, sv in sorted(skips))
        targets.append(
            Target(
                f"skipping an OPEN provider costs <= 0.3 us (judged at n={n}, k={k})",
                f"{best / 1000:.3f} us per skip (all estimates, us: {spread})",
                best <= 300,
            )
        )

    ratio1 = results.by_key[f"get_service/fallback/{n_small}"].extra["ratio_to_checkpoint"]
    targets.append(
        Target(
            f"get_service <= 1.3x one bare trio checkpoint (FALLBACK, {n_small} provider)",
            f"{ratio1:.2f}x",
            ratio1 <= 1.3,
        )
    )
    worst = max(
        (
            (row.extra["ratio_to_checkpoint"], row)
            for row in results.rows
            if row.case == "get_service" and "ratio_to_checkpoint" in row.extra
        ),
        key=lambda item: item[0],
    )
    targets.append(
        Target(
            "get_service <= 1.3x checkpoint, worst of every variant and n (no OPEN providers)",
            f"{worst[0]:.2f}x ({worst[1].variant}, n={worst[1].n})",
            worst[0] <= 1.3,
        )
    )

    ours = results.p50("breaker/ours")
    targets.append(
        Target("breaker admission + record <= 1 us", f"p50 {fmt_time(ours)}", ours <= 1000)
    )
    library_keys = {
        "breaker/pybreaker",
        "breaker/purgatory",
        "breaker/aiobreaker",
        "breaker/circuitbreaker",
    }
    libs = [
        (row.p50_ns, row.case)
        for row in results.rows
        if row.key in library_keys and row.p50_ns is not None
    ]
    if libs:
        fastest, name = min(libs)
        ours_call = results.p50("breaker/ours_call")
        targets.append(
            Target(
                "breaker >= 2x faster than the fastest of the four libraries (sync)",
                f"fastest {name.removeprefix('breaker: ')} p50 {fmt_time(fastest)}:"
                f" {fastest / ours:.1f}x (with clock reads + noop call:"
                f" {fastest / ours_call:.1f}x)",
                fastest >= 2 * ours,
            )
        )
    else:
        targets.append(
            Target("breaker >= 2x faster than the fastest library", "no library importable", None)
        )

    memory: list[tuple[float, str]] = []
    parts = []
    for kind in ("plain", "lifecycle"):
        traced = results.by_key[f"memory/{kind}/tracemalloc"]
        per = float(traced.extra["bytes_per_provider"])
        memory.append((per, KIND_LABEL[kind]))
        rss = results.by_key.get(f"memory/{kind}/rss")
        rss_text = f", RSS {_kib(rss.extra['bytes_per_provider'])}" if rss else ""
        parts.append(
            f"{KIND_LABEL[kind]} ({traced.extra['tasks_per_provider']:.2f} tasks):"
            f" tracemalloc {_kib(per)}{rss_text}"
        )
    worst_mem, worst_kind = max(memory)
    targets.append(
        Target(
            f"<= 10 KiB per provider with its actors ({cfg.memory_providers} providers;"
            " judged on the worse kind)",
            f"worse: {worst_kind} {_kib(worst_mem)} ({'; '.join(parts)})",
            worst_mem <= 10 * 1024,
        )
    )
    for key, label in (
        ("register/spread", f"plain, {cfg.memory_providers // cfg.per_key} keys x {cfg.per_key}"),
        ("register/one_key", "plain, one (handler, service_type)"),
        (
            "register/lifecycle",
            f"full lifecycle, {cfg.memory_providers // cfg.per_key} keys x {cfg.per_key}",
        ),
    ):
        extra = results.by_key[key].extra
        reg_s = extra["register_ns"] / 1e9
        started_s = extra["started_ns"] / 1e9
        targets.append(
            Target(
                f"{cfg.memory_providers} registrations in <= 1 s ({label})",
                f"{reg_s:.3f} s (actors started at {started_s:.3f} s)",
                reg_s <= 1.0,
            )
        )
    targets.extend(control_targets(results))
    return targets


def control_targets(results: Results) -> list[Target]:
    """get_service_nowait with the control plane attached <= 1.2x without, judged on the
    worst provider count measured: against a registry of a class nothing observes (no
    control plane in the process), and against a bare registry of the same process."""
    name = f"get_service_nowait with {CONTROL_LABEL} <= 1.2x without (FALLBACK, first; worst n)"
    rows = [
        row
        for row in results.rows
        if row.key.startswith("control/nowait/observed/") and "ratio_to_bare" in row.extra
    ]
    if not rows:
        return [Target(name, "control plane not importable", None)]
    aa = [results.by_key[f"control/nowait/bare2/{row.n}"].extra["ratio_to_bare"] for row in rows]
    targets = []
    for key, against in (
        ("ratio_to_pristine", "vs a registry of a class never observed"),
        ("ratio_to_bare", "vs a bare registry in the same process"),
    ):
        worst = max(rows, key=lambda row: row.extra[key])
        spread = ", ".join(f"n={row.n}: {row.extra[key]:.2f}x" for row in rows)
        targets.append(
            Target(
                f"{name}, {against}",
                f"{worst.extra[key]:.2f}x at n={worst.n} (all: {spread};"
                f" A/A check {min(aa):.2f}x to {max(aa):.2f}x)",
                worst.extra[key] <= 1.2,
            )
        )
    return targets


# -- main ---------------------------------------------------------------------------------


async def trio_main(cfg: Config, results: Results) -> None:
    # Registration first, in a fresh process, so the RSS growth is not hidden by memory
    # freed by earlier cases.
    await bench_registration(cfg, results)
    for n in cfg.provider_counts:
        await bench_providers(n, cfg, results)
    await bench_breakers_trio(cfg, results)
    await bench_control(cfg, results)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--json", metavar="FILE", help="also write the raw numbers to FILE")
    # Internal: the child process of bench_lifecycle_registration.
    parser.add_argument(
        "--registration-probe", choices=sorted(PROVIDER_KINDS), help=argparse.SUPPRESS
    )
    parser.add_argument("--providers", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--per-key", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.registration_probe:
        probe = functools.partial(
            registration_run,
            args.providers,
            args.per_key,
            trace=False,
            kind=args.registration_probe,
        )
        print(json.dumps(trio.run(probe)))
        return 0
    cfg = QUICK if args.quick else FULL
    env = environment()
    results = Results()
    started = perf_ns()
    trio.run(trio_main, cfg, results)
    asyncio.run(bench_breakers_asyncio(cfg, results))
    bench_lifecycle_registration(cfg, results)
    elapsed = (perf_ns() - started) / 1e9
    finish_environment(env)

    print(
        f"ciris_actors {env['ciris_actors']} registry benchmark"
        f"{' (--quick)' if args.quick else ''}, {env['date_utc']} UTC:"
        f" Python {env['python']}, trio {env['trio']}, {env['cpu_count']} CPUs,"
        f" {env['platform']}"
    )
    print(f"package measured: {describe_source(env['package_source'])}")
    load_line = load_average_line(env)
    if load_line is not None:
        print(load_line)
    print(
        f"{cfg.samples} samples per case after {cfg.warmup} warm-up rounds; each sample times a"
        f" batch of `batch` calls (per-call = batch time / batch); gc disabled while timing;"
        f" compared cases interleaved; run took {elapsed:.0f} s"
    )
    print()
    print(render_table(results))
    print()
    targets = evaluate_targets(results, cfg)
    print(render_targets(targets, args.quick))

    if args.json:
        payload = {
            "environment": env,
            "config": cfg.__dict__,
            "elapsed_s": elapsed,
            "rows": [row.as_json() for row in ordered_rows(results)],
            "extra": results.extra,
            "targets": [t.__dict__ for t in targets],
        }
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
