"""Registration and memory: 10,000 ``register()`` calls timed one by one, and the memory
each provider costs with its actor tasks (tracemalloc, and RSS in a fresh process), for
plain and full-lifecycle providers.
"""

from __future__ import annotations

import gc
import json
import os
import pathlib
import subprocess
import sys
import tracemalloc
from typing import Any

import trio
import trio.testing
from _harness import Config, Results, Row, Target, percentile, perf_ns, progress
from cases_resolve import Provider

from ciris_actors import open_registry

#: The script the untraced lifecycle run starts in a child process (its
#: ``--registration-probe`` option runs :func:`registration_run`).
PROBE_SCRIPT = pathlib.Path(__file__).resolve().with_name("bench_registry.py")


class LifecycleProvider:
    """A provider with the full lifecycle, routable once started and health-checked.

    It gets two actor tasks (provider actor and breaker actor) plus its own ``run``.
    """

    __slots__ = ("checked", "started")

    def __init__(self) -> None:
        # Slots preset, so that setting them later allocates nothing.
        self.started = False
        self.checked = False

    async def start(self) -> None:
        """Record that the registry started it."""
        self.started = True

    async def run(self) -> None:
        """Run until cancelled, as a long-lived provider does."""
        await trio.sleep_forever()

    async def aclose(self) -> None:
        """Nothing to close."""
        return None

    async def is_healthy(self) -> bool:
        """Record that the registry checked it; always healthy.

        Returns:
            True.
        """
        self.checked = True
        return True


PROVIDER_KINDS: dict[str, type[Provider] | type[LifecycleProvider]] = {
    "plain": Provider,
    "lifecycle": LifecycleProvider,
}


def rss_bytes() -> int | None:
    """Resident set size now.

    Returns:
        The RSS in bytes (Linux only; ``None`` elsewhere).
    """
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def count_tasks() -> int:
    """The number of tasks in this ``trio.run`` now.

    Returns:
        The count, the root task included.
    """

    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(
            walk(child) for nursery in task.child_nurseries for child in nursery.child_tasks
        )

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return walk(root)


async def registration_run(
    total: int, per_key: int, *, trace: bool, kind: str = "plain"
) -> dict[str, Any]:
    """Register *total* providers of *kind*, *per_key* per key, in a fresh registry.

    Args:
        total: How many providers.
        per_key: How many per (handler, service_type) key.
        trace: Measure memory with tracemalloc (and time nothing per call), else time
            each ``register()`` call and measure the RSS growth.
        kind: ``plain`` or ``lifecycle`` (see :data:`PROVIDER_KINDS`).

    Returns:
        Timings (per ``register()`` call, the whole loop, until every actor is blocked)
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
    """Run an untraced :func:`registration_run` (timings, RSS) in a fresh process.

    It is the first thing a child process of the same interpreter does, so that no
    memory freed earlier hides growth.

    Args:
        total: How many providers.
        per_key: How many per (handler, service_type) key.
        kind: ``plain`` or ``lifecycle``.

    Returns:
        What :func:`registration_run` returned in the child.
    """
    command = [
        sys.executable,
        str(PROBE_SCRIPT),
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
    """Add the memory rows of one kind of provider: tracemalloc, and RSS where known.

    Args:
        results: Where the rows go.
        kind: ``plain`` or ``lifecycle``.
        traced: The traced run of that kind.
        timed: The untraced run of that kind (its RSS growth).
    """
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
    """Add the row of an untraced run's ``register()`` calls.

    Args:
        results: Where the row goes.
        key: The row's key.
        label: The row's variant.
        run: The untraced run.
    """
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
    """Measure registration and memory, but the lifecycle providers' untraced run.

    That run (timings, RSS) is :func:`bench_lifecycle_registration`'s, in a child process.

    Two kinds of provider: plain objects (no lifecycle, so one actor task each: the
    provider actor runs the breaker loop itself), and full-lifecycle providers
    (:class:`LifecycleProvider`: two actor tasks each, plus the provider's own ``run``).
    Each ``register()`` call of ``cfg.memory_providers`` is timed on its own (p50/p99
    over the calls): plain providers in two layouts, keys of ``cfg.per_key`` providers
    and one key of all; lifecycle providers in keys of ``cfg.per_key``. "Actors started"
    is when ``wait_all_tasks_blocked()`` returns afterwards; for lifecycle providers every
    one has then been started and health-checked, which is checked.

    Memory per provider is the growth of memory traced by ``tracemalloc`` (after
    ``gc.collect()``) across registering the providers and waiting until their actors
    are blocked, divided by the number of providers; the provider objects themselves are
    created before the baseline and not counted. The RSS growth of an untraced run in a
    fresh process is shown beside it, as a cross-check: for plain providers it is the
    first thing this process does (so this must run first), for lifecycle providers it
    runs in a child process. The number of tasks per provider is counted in trio's task
    tree after each run.

    Args:
        cfg: The run's settings.
        results: Where the rows go; the runs' figures go to ``results.extra``.
    """
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
    """Measure the lifecycle providers' untraced run, in a fresh child process.

    So its RSS growth is not hidden by memory this process freed. Adds their memory and
    register rows; runs after :func:`bench_registration` (whose traced run it reuses).

    Args:
        cfg: The run's settings.
        results: Where the rows go.
    """
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


def memory_targets(results: Results, cfg: Config) -> list[Target]:
    """Judge the memory target (on the worse kind) and the registration targets.

    Args:
        results: The run's rows.
        cfg: The run's settings.

    Returns:
        The judged targets, in the order printed.
    """
    targets: list[Target] = []
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
    return targets
