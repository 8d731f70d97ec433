"""The resolve per routing strategy, alone (the same cases run in ``bench_registry.py``).

Run from the repository root::

    python benchmarks/bench_routing.py            # full run
    python benchmarks/bench_routing.py --quick    # smoke run

Method: ``cases_routing.bench_strategies`` (its docstring), timed by ``_harness.py`` as
in ``bench_registry.py``: batches of calls, gc disabled while timing, the five
strategies of one provider count interleaved in every round.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import trio
from _harness import (
    FULL,
    QUICK,
    Config,
    Results,
    describe_source,
    environment,
    finish_environment,
    fmt_time,
    format_table,
    load_average_line,
    render_targets,
)
from cases_routing import bench_strategies, routing_targets


async def run(cfg: Config, results: Results) -> None:
    for n in cfg.provider_counts:
        await bench_strategies(n, cfg, results)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the cases and print the table and the targets.

    Args:
        argv: The command line's arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    env = environment()
    results = Results()
    trio.run(run, cfg, results)
    finish_environment(env)
    print(
        f"ciris_actors {env['ciris_actors']} routing benchmark"
        f"{' (--quick)' if args.quick else ''}, {env['date_utc']} UTC:"
        f" Python {env['python']}, trio {env['trio']}, {env['cpu_count']} CPUs,"
        f" {env['platform']}"
    )
    print(f"package measured: {describe_source(env['package_source'])}")
    load_line = load_average_line(env)
    if load_line is not None:
        print(load_line)
    print(f"{cfg.samples} samples per case after {cfg.warmup} warm-up rounds, interleaved")
    print()
    rows = [
        (
            row.case,
            row.variant,
            str(row.n),
            fmt_time(row.p50_ns),
            fmt_time(row.p99_ns),
            str(row.batch),
        )
        for row in results.rows
    ]
    print(
        format_table(("case", "strategy", "providers", "p50", "p99", "batch"), rows, {2, 3, 4, 5})
    )
    print()
    print(render_targets(routing_targets(results, cfg), args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
