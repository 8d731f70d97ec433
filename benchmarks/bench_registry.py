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

This script composes the groups of cases, prints the table and judges the targets; the
measuring itself is ``_harness.py``'s. Each group is a module of its own, whose entry
function's docstring gives the group's method:

* ``cases_memory.py``: registration and memory per provider (``bench_registration``,
  run first so that its RSS figure is the first thing this process does, and
  ``bench_lifecycle_registration``, run last in a child process of this script, started
  with the hidden option ``--registration-probe``);
* ``cases_resolve.py``: ``get_service_nowait``, ``get_service``, the lease round and
  failover, per provider count (``bench_providers``);
* ``cases_breakers.py``: our breaker and ``Guard`` against the four libraries, under trio
  and asyncio;
* ``cases_control.py`` and ``cases_scrape.py``: the control plane's cost to the resolve,
  and what a ``/metrics`` scrape costs (needs the ``control`` extra and ``httpx``);
* ``cases_otel.py``: what OpenTelemetry costs ``registry.call``, without the API, with
  the API and no SDK, and with the SDK recording (needs opentelemetry-api and -sdk; also
  run on its own by ``bench_otel.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
from collections.abc import Sequence

import trio
from _harness import (
    FULL,
    NO_N,
    QUICK,
    Config,
    Results,
    Row,
    Target,
    describe_source,
    environment,
    finish_environment,
    fmt_time,
    format_table,
    load_average_line,
    perf_ns,
    render_targets,
    write_json,
)
from cases_breakers import bench_breakers_asyncio, bench_breakers_trio, breaker_targets
from cases_control import bench_control_plane, control_targets
from cases_memory import (
    PROVIDER_KINDS,
    bench_lifecycle_registration,
    bench_registration,
    memory_targets,
    registration_run,
)
from cases_otel import bench_otel, otel_targets
from cases_resolve import VARIANTS, bench_providers, resolve_targets
from cases_routing import bench_strategies, routing_targets

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
    "otel: registry.call",
)


def ordered_rows(results: Results) -> list[Row]:
    """The rows in the table's order: by section, variant, provider count, then k.

    Args:
        results: The run's rows.

    Returns:
        The rows, sorted.
    """

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
    """The table of every row, in :func:`ordered_rows`'s order.

    Args:
        results: The run's rows.

    Returns:
        The table's lines, joined.
    """
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
    """Judge every target, in the order printed.

    Args:
        results: The run's rows.
        cfg: The run's settings.

    Returns:
        The judged targets of each group of cases.
    """
    return [
        *resolve_targets(results, cfg),
        *routing_targets(results, cfg),
        *breaker_targets(results),
        *memory_targets(results, cfg),
        *control_targets(results),
        *otel_targets(results),
    ]


# -- main ---------------------------------------------------------------------------------


async def trio_main(cfg: Config, results: Results) -> None:
    """The groups of cases that run under trio, in order.

    Args:
        cfg: The run's settings.
        results: Where the rows go.
    """
    # Registration first, in a fresh process, so the RSS growth is not hidden by memory
    # freed by earlier cases.
    await bench_registration(cfg, results)
    for n in cfg.provider_counts:
        await bench_providers(n, cfg, results)
    for n in cfg.provider_counts:
        await bench_strategies(n, cfg, results)
    await bench_breakers_trio(cfg, results)
    await bench_control_plane(cfg, results)
    await bench_otel(cfg, results)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table and the targets, and write the JSON file.

    Args:
        argv: The command line's arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit status.
    """
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
