"""The control plane's cost to the resolve: ``get_service_nowait`` on a registry with
metrics and one SSE client attached, beside identical registries nothing observes (one
of a never-observed copy of the package); then the scrape rows at some provider counts.
"""

from __future__ import annotations

import pathlib
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import trio
import trio.testing
from _harness import (
    NO_N,
    Config,
    Results,
    Row,
    Spec,
    Target,
    load_package_copy,
    measure,
    perf_ns,
    progress,
)
from cases_resolve import nowait_sample, register_many
from cases_scrape import scrape_rows, scrape_stall_row

import ciris_actors
from ciris_actors import Registry, open_registry
from ciris_actors._stats import SAMPLE_SIZE

#: The bearer token of the benchmark's own control plane (loopback only, never exposed).
CONTROL_TOKEN = "bench-token"
CONTROL_LABEL = "metrics + 1 SSE subscriber"
BARE_LABEL = "nothing attached"
AA_LABEL = "nothing attached, 2nd registry (A/A check)"
PRISTINE_LABEL = "nothing attached, class never observed (package copy)"
AFTER_SCRAPE_LABEL = f"{CONTROL_LABEL}, right after a scrape ({SAMPLE_SIZE} timed, then counted)"


#: The name a never-observed copy of this package is imported under (see bench_control.py).
PRISTINE_ALIAS = "ciris_actors_pristine_copy"


class _AfterScrapeSample:
    """Hits on an observed registry right after a scrape.

    Before each batch is timed, arm the next ``SAMPLE_SIZE`` resolves to be timed, as a
    scrape does; the batch then runs those timed resolves and counted ones after them. A
    batch shorter than ``SAMPLE_SIZE`` is followed (untimed) by the rest of the armed
    resolves, so no timed resolve is left over for another case.
    """

    def __init__(self, registry: Registry, handler: str, st: str) -> None:
        self._registry = registry
        self._handler = handler
        self._st = st
        #: Batches run, each with ``SAMPLE_SIZE`` resolves armed.
        self.batches = 0

    async def sample(self, batch: int) -> int:
        """Arm the timing, then time a batch of hits (a sample function).

        Args:
            batch: The number of calls.

        Returns:
            Their elapsed ns.
        """
        registry, handler, st = self._registry, self._handler, self._st
        stats = registry._sup.resolve_stats
        arm_timing(registry)
        self.batches += 1
        t0 = perf_ns()
        for _ in range(batch):
            registry.get_service_nowait(handler, st, None)
        took = perf_ns() - t0
        while stats.armed > 0:
            registry.get_service_nowait(handler, st, None)
        return took


@dataclass
class _SeenEvents:
    """What the benchmark's SSE client has received, by event type."""

    counts: dict[str, int] = field(default_factory=dict)
    #: ``reached`` is set once this many ResolveMiss events have arrived.
    want_misses: int = 1 << 62
    reached: trio.Event = field(default_factory=trio.Event)

    def expect_misses(self, count: int) -> None:
        """Set ``reached`` once *count* ResolveMiss events have arrived.

        Args:
            count: How many.
        """
        self.want_misses = count
        self._check()

    def _check(self) -> None:
        if self.counts.get("ResolveMiss", 0) >= self.want_misses:
            self.reached.set()

    async def read(self, lines: Any) -> None:
        """Consume an SSE stream's lines, counting the events by type.

        Args:
            lines: The stream's lines (an async iterator of str).
        """
        async for line in lines:
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
                self.counts[kind] = self.counts.get(kind, 0) + 1
                self._check()


def arm_timing(registry: Any) -> None:
    """Arm the next resolves to be timed, as each scrape does.

    Args:
        registry: A registry of this package or of an older copy of it.
    """
    if hasattr(registry, "_arm_timing"):  # packages before the observation surface
        registry._arm_timing()
    else:
        registry._observation.arm(SAMPLE_SIZE)


def resolve_kind(registry: Any) -> str:
    """The name of the resolve the registry runs.

    Read through the attribute, not ``vars()``: materialising an instance's ``__dict__``
    slows every later attribute read on it (CPython 3.11), which would itself be measured.

    Args:
        registry: A registry of this package or of a copy of it.

    Returns:
        ``_resolve`` (the plain walk), ``_resolve_counted`` (counting) or
        ``_resolve_timed`` (counting and timed), by the names older packages gave their
        methods.
    """
    resolve = registry._resolve
    if hasattr(resolve, "__func__"):  # older packages: methods shadowed while observed
        return str(resolve.__func__.__name__)
    sup = registry._sup
    if resolve is sup.resolve:
        return "_resolve"
    return "_resolve_counted" if resolve is sup.counting_resolve else "_resolve_timed"


def resolve_counts(registry: Any) -> tuple[int, int, int]:
    """What only an observed registry counts.

    Args:
        registry: A registry of this package or of a copy of it.

    Returns:
        Hits counted on the registry's providers, misses, and timed resolves.
    """
    sup = registry._sup
    stats = sup.resolve_stats
    hits = sum(
        member.selected if hasattr(member, "selected") else member.counters.selections
        for plan in sup.plans.values()
        for group in plan
        for member in group.members
    )
    return hits, sum(stats.misses.values()), stats.timed_count


def _paired_ratio(num: Row, den: Row) -> float:
    """The median over rounds of (this round's sample of *num*) / (that of *den*)."""
    return statistics.median(a / b for a, b in zip(num.samples_ns, den.samples_ns, strict=True))


def control_missing_row(error: Exception) -> Row:
    """The row that stands for the control-plane cases when they cannot run.

    Args:
        error: Why the control plane cannot be imported.

    Returns:
        The row.
    """
    return Row(
        key="control/missing",
        case="control: get_service_nowait hit",
        variant="not importable",
        n=NO_N,
        runtime="-",
        cells=("-", "-"),
        note=f"{type(error).__name__}: {error} (pip install 'ciris-actors[control]' httpx)",
    )


async def bench_control_plane(cfg: Config, results: Results) -> None:
    """Measure the hot path with the control plane attached, beside the same without.

    Needs the ``control`` extra and ``httpx`` (else one row says what is missing). Per
    provider count, identical registries with the same plain FALLBACK providers. The
    third gets a live ``serve_control_api(registry, port=0, token=...)`` (so a
    ``RegistryCollector`` is attached: the registry's ``_resolve`` is shadowed by the
    counting resolve; attaching, and then each scrape, arms the next 64 resolves to be
    timed) and one real SSE client, an ``httpx.AsyncClient`` streaming
    ``GET /v1/runtime/events`` over loopback, read up to its ``: subscribed`` line (so its
    ``registry.events()`` subscription exists).

    Checked before timing: the observed registry counts (``ResolveStats.observers > 0``
    and ``_resolve`` shadowed by an instance attribute) and its bus has a subscriber, and
    the bare registries have none of that (they run the class's plain ``_resolve``);
    checked after: resolves were counted, exactly the resolves armed by the collector
    attaching (and by the "after a scrape" case) were timed, none was left armed, and the
    client received a full subscription buffer (1000) of the ResolveMiss events the
    rounds published. The 64 resolves armed when the collector attaches are spent before
    the rounds (the sanity checks and the batch-size calibration), and nothing scrapes
    during the rounds (the SSE client does not; the scrape rows run after them), so the
    observed hit and miss rows measure the counting resolve, untimed.

    A fourth registry, "class never observed", is of a copy of this package imported
    under another name: once any registry of a class has been observed, the others of
    that class in the process may resolve slower (``bench_control.py`` measures it), so
    it stands for a process with no control plane. ``get_service_nowait`` hits (first
    available) on the bare registry, the observed one, the second bare one (an A/A check
    of the noise between two identical registries) and the never-observed class's, and
    misses (a service type with no provider) on the bare and the observed one, are
    measured in interleaved rounds; the cases compared share one batch size. One more
    case in the same rounds, "after a scrape", is a hit on the observed registry with 64
    timed resolves armed (``Registry._arm_timing()``, what each scrape does to the
    resolve path, called before the batch is timed) at the start of each batch: 64 timed
    resolves then counted ones, in the hits' batch size; it shows what the timing costs
    and has no target. The target is judged against both the never-observed class's
    registry and the bare one. The timed loops never yield to trio, so the server and the
    client do not run during a batch: the overhead measured is what the attached
    observers cost the resolve itself. A miss with a subscriber publishes a ResolveMiss
    into the subscriber's buffer (1000 events; when full, the oldest is dropped).

    At the provider counts of ``cfg.scrape_counts``, the scrape rows follow the rounds
    (:mod:`cases_scrape`), against the same live control plane.

    Args:
        cfg: The run's settings.
        results: Where the rows go.
    """
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
            await _control_plane_n(
                n, cfg, results, httpx, generate_latest, serve_control_api, pristine
            )


async def _control_plane_n(
    n: int,
    cfg: Config,
    results: Results,
    httpx: Any,
    generate_latest: Callable[[Any], bytes],
    serve_control_api: Any,
    pristine_package: ModuleType,
) -> None:
    """One provider count of :func:`bench_control_plane`.

    Three identical registries, ``n`` plain FALLBACK providers each; the third gets a live
    control plane and one SSE client; and a fourth of a copy of the package that nothing
    observes. Interleaved rounds of a hit and a miss on each.
    """
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
                        await scrape_stall_row(n, cfg, results, server.url, CONTROL_TOKEN)
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


def control_targets(results: Results) -> list[Target]:
    """Judge ``get_service_nowait`` with the control plane attached <= 1.2x without.

    Judged on the worst provider count measured: against a registry of a class nothing
    observes (no control plane in the process), and against a bare registry of the same
    process.

    Args:
        results: The run's rows.

    Returns:
        The two judged targets, or one that could not be judged.
    """
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
