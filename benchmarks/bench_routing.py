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
    environment,
    finish_environment,
    print_run,
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
    print_run("routing benchmark", env, cfg, results, args.quick)
    print(render_targets(routing_targets(results, cfg), args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
