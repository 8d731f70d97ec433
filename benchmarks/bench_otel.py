"""What OpenTelemetry costs ``registry.call`` (the ``otel`` extra): the OpenTelemetry
group of ``bench_registry.py`` on its own.

Run from the repository root, with opentelemetry-api and opentelemetry-sdk installed
(the ``test`` extra has both)::

    python benchmarks/bench_otel.py            # full run (about half a minute)
    python benchmarks/bench_otel.py --quick    # smoke run
    python benchmarks/bench_otel.py --json out.json

The method is in ``cases_otel.bench_otel``'s docstring; the header, the table and the
targets are laid out as in ``bench_registry.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import trio
from _harness import (
    FULL,
    QUICK,
    Results,
    describe_source,
    environment,
    finish_environment,
    load_average_line,
    perf_ns,
    render_targets,
    write_json,
)
from bench_registry import ordered_rows, render_table
from cases_otel import bench_otel, otel_targets


def main(argv: Sequence[str] | None = None) -> int:
    """Run the group, print the table and the targets, and write the JSON file.

    Args:
        argv: The command line's arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit status: 1 when OpenTelemetry is not installed.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--json", metavar="FILE", help="also write the raw numbers to FILE")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    env = environment()
    results = Results()
    started = perf_ns()
    trio.run(bench_otel, cfg, results)
    elapsed = (perf_ns() - started) / 1e9
    finish_environment(env)
    if not results.rows:
        print("opentelemetry-api and opentelemetry-sdk are needed", file=sys.stderr)
        return 1
    print(
        f"ciris_actors {env['ciris_actors']} OpenTelemetry benchmark"
        f"{' (--quick)' if args.quick else ''}, {env['date_utc']} UTC:"
        f" Python {env['python']}, trio {env['trio']}, {env['cpu_count']} CPUs,"
        f" {env['platform']}"
    )
    print(f"package measured: {describe_source(env['package_source'])}")
    load_line = load_average_line(env)
    if load_line is not None:
        print(load_line)
    print(
        f"{5 * cfg.samples} samples per case without an SDK, {cfg.samples} with one, after"
        f" {cfg.warmup} warm-up rounds; each sample times a batch of `batch` calls (about 0.5 ms;"
        f" per-call = batch time / batch); gc disabled while timing; cases interleaved in two"
        f" groups (see cases_otel.py); run took {elapsed:.0f} s"
    )
    print()
    print(render_table(results))
    print()
    targets = otel_targets(results)
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
