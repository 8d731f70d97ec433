"""How fast the simulation engine runs: simulated time and requests per wall second.

Run from the repository root::

    python benchmarks/bench_simulation.py             # full run (a few minutes on 2 cores)
    python benchmarks/bench_simulation.py --quick     # smoke run: short windows
    python benchmarks/bench_simulation.py --profile   # also: top 15 cProfile entries

Cases, each one ``run_scenario`` call in this process, timed with ``time.perf_counter``
(wall) and ``time.process_time`` (CPU of this process, which a busy machine inflates
less):

* ``default``: :func:`default_scenario` as shipped (one simulated hour, 50 requests/s,
  six providers in three groups, five faults). Target: at most 10 s wall, i.e. at least
  360 times faster than real time.
* ``N providers`` for N = 1, 10 and 100: built here, N providers of one service type in a
  few priority groups (the first FALLBACK, the others ROUND_ROBIN), 50 requests/s for ten
  simulated minutes, one outage of the top provider for the middle third.
* ``trio floor``: no registry and no simulated provider, only arrivals like the default
  scenario's (Poisson, same rate and duration), each one trio task sleeping a latency
  drawn from its first provider's distribution inside a cancel scope (the lease's
  deadline), on the same autojumping clock: the least trio work a design with a task, a
  sleep and a deadline per request does. The gap between it and ``default`` is what the
  registry and the engine add.

A run is deterministic (same scenario and seed, same report), so repeating it only
measures noise; ``--repeat`` takes the best of several (the table shows every run's wall
time). The garbage collector stays on: the engine's allocations are part of its cost.
``--quick`` shortens every window (the default scenario to its first six minutes) and is
for checking the script, not for numbers. ``--profile`` runs the default scenario (the
quick one with ``--quick``) once more under cProfile, after the timed runs, and prints the
15 entries with the most own time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio
import trio.testing
from _harness import (
    cpu_model,
    format_load,
    format_table,
    git_or_empty,
    load_average,
    utc_timestamp,
)

import ciris_actors
from ciris_actors.simulation import Scenario, default_scenario, parse_scenario, run_scenario
from ciris_actors.simulation.providers import sample_latency

#: The default scenario must run an hour in at most this many wall seconds.
TARGET_WALL_SECONDS = 10.0
PROVIDER_COUNTS = (1, 10, 100)
RATE = 50.0
#: The repository the measured package is in.
REPO_ROOT = Path(__file__).resolve().parent.parent


@attrs.frozen
class Result:
    """One case's figures: what was simulated, and how long it took."""

    case: str
    providers: str
    simulated: float
    requests: int
    wall: float
    cpu: float
    #: Wall seconds of every run of the case (``wall`` is the lowest).
    walls: tuple[float, ...] = ()

    @property
    def speedup(self) -> float:
        """Simulated seconds per wall second."""
        return self.simulated / self.wall

    @property
    def requests_per_second(self) -> float:
        """Simulated requests per wall second."""
        return self.requests / self.wall


def shortened(scenario: Scenario, duration: float) -> Scenario:
    """Cut a scenario to its first *duration* seconds.

    Args:
        scenario: The scenario.
        duration: The simulated seconds to keep.

    Returns:
        The shorter scenario (faults starting later dropped).
    """
    return attrs.evolve(
        scenario,
        workload=attrs.evolve(scenario.workload, duration=duration),
        faults=tuple(f for f in scenario.faults if f.at < duration),
    )


def pool_scenario(count: int, duration: float) -> Scenario:
    """A pool of providers in a few groups, 50 requests/s, one outage of the top provider.

    Args:
        count: How many providers.
        duration: The simulated seconds.

    Returns:
        The scenario.
    """
    groups = min(4, max(1, count // 3))
    providers = [
        {
            "name": f"p{i}",
            "group": i * groups // count,
            "strategy": "fallback" if i * groups // count == 0 else "round_robin",
            "latency": {"distribution": "lognormal", "median": 0.5, "p99": 2.0},
            "error_rate": 0.001,
        }
        for i in range(count)
    ]
    return parse_scenario(
        {
            "name": f"pool-{count}",
            "seed": 1,
            "registry": {
                "health_check_interval": 10.0,
                "breaker": {
                    "failure_threshold": 5,
                    "recovery_timeout": 30.0,
                    "success_threshold": 2,
                    "timeout_duration": 10.0,
                },
            },
            "providers": providers,
            "workload": {"duration": duration, "rate": RATE},
            "faults": [
                {"kind": "outage", "provider": "p0", "at": duration / 3, "duration": duration / 3}
            ],
        }
    )


def measure(case: str, scenario: Scenario, repeat: int) -> Result:
    """Run a scenario *repeat* times.

    Args:
        case: The case's name.
        scenario: The scenario.
        repeat: How many runs.

    Returns:
        The best run (lowest wall time), with every run's wall time.

    Raises:
        SystemExit: A run's report is not ok.
    """
    best: Result | None = None
    walls: list[float] = []
    for attempt in range(repeat):
        progress(f"{case}: run {attempt + 1} of {repeat}")
        wall0, cpu0 = time.perf_counter(), time.process_time()
        report = run_scenario(scenario)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if not report.ok:
            raise SystemExit(f"{case}: the report is not ok: {report.violations[:3]}")
        sent = report.requests.sent
        walls.append(wall)
        result = Result(
            case, str(len(scenario.providers)), scenario.workload.duration, sent, wall, cpu
        )
        if best is None or result.wall < best.wall:
            best = result
    assert best is not None
    return attrs.evolve(best, walls=tuple(walls))


def measure_floor(scenario: Scenario, repeat: int) -> Result:
    """Run the least trio work the engine's design does per request, *repeat* times.

    No registry: *scenario*'s arrivals (Poisson, same rate and duration), each one task
    that sleeps a latency under a cancel scope, on an autojumping ``MockClock``.

    Args:
        scenario: The scenario whose arrivals and first provider's latency are used.
        repeat: How many runs.

    Returns:
        The best run (lowest wall time), with every run's wall time.
    """
    workload = scenario.workload
    latency = scenario.providers[0].latency
    counts: list[int] = []

    async def arrivals() -> None:
        rng = random.Random(scenario.seed)

        async def request(delay: float) -> None:
            with trio.move_on_after(10.0):  # the lease's deadline
                await trio.sleep(delay)  # the provider's latency

        async with trio.open_nursery() as nursery:
            t = rng.expovariate(workload.rate)
            sent = 0
            while t < workload.duration:
                await trio.sleep_until(t)
                nursery.start_soon(request, sample_latency(latency, rng))
                sent += 1
                t += rng.expovariate(workload.rate)
        counts.append(sent)

    best: Result | None = None
    walls: list[float] = []
    for attempt in range(repeat):
        progress(f"trio floor: run {attempt + 1} of {repeat}")
        wall0, cpu0 = time.perf_counter(), time.process_time()
        trio.run(arrivals, clock=trio.testing.MockClock(autojump_threshold=0))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        walls.append(wall)
        result = Result("trio floor", "-", workload.duration, counts[-1], wall, cpu)
        if best is None or result.wall < best.wall:
            best = result
    assert best is not None
    return attrs.evolve(best, walls=tuple(walls))


def progress(message: str) -> None:
    """Tell on stderr what the run is doing now.

    Args:
        message: What it does.
    """
    print(f"  .. {message}", file=sys.stderr, flush=True)


def header() -> list[str]:
    """The header: date, machine, versions and the commit measured.

    Returns:
        Its lines.
    """
    commit = git_or_empty(REPO_ROOT, "rev-parse", "--short", "HEAD") or "unknown"
    status = git_or_empty(REPO_ROOT, "status", "--porcelain")
    dirty = [line[3:] for line in status.splitlines() if line.strip()]
    package_dirty = [p for p in dirty if p.startswith("ciris_actors/")]
    tree = "clean" if not dirty else f"NOT clean ({len(dirty)} paths)"
    lines = [
        f"date: {utc_timestamp()} UTC",
        f"machine: {os.cpu_count()} x {cpu_model()}, {platform.system()} {platform.release()}"
        f" {platform.machine()}",
        f"python {platform.python_version()}, trio {trio.__version__},"
        f" attrs {attrs.__version__}, ciris_actors {ciris_actors.__version__}",
        f"commit: {commit}; working tree {tree}",
    ]
    if package_dirty:
        lines.append("package files differing from the commit: " + ", ".join(package_dirty))
    return lines


def load() -> str:
    """The load average now, as printed in the header.

    Returns:
        The 1, 5 and 15-minute averages, or ``unknown``.
    """
    return format_load(load_average())


def table(results: Sequence[Result]) -> str:
    """The results as a Markdown table.

    Args:
        results: One per case.

    Returns:
        The table's lines, joined.
    """
    columns = (
        ("case", "<"),
        ("providers", ">"),
        ("simulated s", ">"),
        ("requests", ">"),
        ("wall s", ">"),
        ("CPU s", ">"),
        ("x real time", ">"),
        ("requests / wall s", ">"),
        ("wall s of each run", ">"),
    )
    rows = [
        (
            r.case,
            r.providers,
            f"{r.simulated:,.0f}",
            f"{r.requests:,}",
            f"{r.wall:.2f}",
            f"{r.cpu:.2f}",
            f"{r.speedup:,.0f}",
            f"{r.requests_per_second:,.0f}",
            ", ".join(f"{w:.2f}" for w in r.walls),
        )
        for r in results
    ]
    right = [i for i, (_, align) in enumerate(columns) if align == ">"]
    return format_table([name for name, _ in columns], rows, right, markdown=True)


def profile(scenario: Scenario) -> str:
    """Run a scenario once under cProfile.

    Args:
        scenario: The scenario.

    Returns:
        The 15 entries with the most own time.
    """
    profiler = cProfile.Profile()
    profiler.enable()
    run_scenario(scenario)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats(pstats.SortKey.TIME).print_stats(15)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    """Run every case, print the header, the table and the target.

    Args:
        argv: The command line's arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short windows (smoke run)")
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs per case")
    parser.add_argument("--profile", action="store_true", help="print the top 15 by own time")
    args = parser.parse_args(argv)
    default = default_scenario()
    if args.quick:
        default = shortened(default, 360.0)
    pool_duration = 60.0 if args.quick else 600.0
    head = header()  # before the runs: the tree the numbers belong to
    load_before = load()
    started = time.perf_counter()
    results = [measure("default", default, args.repeat)]
    for count in PROVIDER_COUNTS:
        results.append(
            measure(f"{count} providers", pool_scenario(count, pool_duration), args.repeat)
        )
    results.append(measure_floor(default, args.repeat))
    elapsed = time.perf_counter() - started
    print("\n".join(head))
    print(f"load average (1/5/15 min): before {load_before}, after {load()}")
    print(f"command: python benchmarks/bench_simulation.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"timed runs took {elapsed:.0f} s{' (--quick: not for numbers)' if args.quick else ''}")
    print()
    print(table(results))
    print()
    default_result = results[0]
    if args.quick:
        print("target: not judged on a --quick run")
    else:
        verdict = "HIT" if default_result.wall <= TARGET_WALL_SECONDS else "MISSED"
        print(
            f"target: default scenario in <= {TARGET_WALL_SECONDS:g} s wall"
            f" (>= {3600 / TARGET_WALL_SECONDS:,.0f}x real time): {verdict}"
            f" ({default_result.wall:.1f} s, {default_result.speedup:,.0f}x)"
        )
    if args.profile:
        progress("profiling the default scenario")
        print()
        print(profile(default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
