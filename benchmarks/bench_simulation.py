"""How fast the simulator runs: both engines, from the command line and in-process, by
provider count, and seed sweeps on one and two worker processes.

Run from the repository root::

    python benchmarks/bench_simulation.py             # full run (a few minutes on 2 cores)
    python benchmarks/bench_simulation.py --quick     # smoke run: short windows
    python benchmarks/bench_simulation.py --profile   # also: top 15 cProfile entries

Cases (wall time with ``time.perf_counter``; CPU time with ``time.process_time`` for a
case in this process, or the children's ``getrusage`` for a case in a child process):

* ``cli events`` / ``cli tasks``: ``python -m ciris_actors.cli simulate`` (the default
  scenario: one simulated hour at 50 requests/s, six providers, five faults) as a child
  process, from process start to exit, output discarded. Target: ``cli events`` at least
  1,000 times faster than real time (at most 3.6 s wall).
* ``default events`` / ``default tasks``: ``run_scenario(default_scenario(), engine=...)``
  in this process, one after the other. Target: the events engine at least 8 times faster
  than the tasks engine.
* ``N providers`` for N = 1, 10 and 100, on each engine: N providers of one service type
  in a few priority groups (the first FALLBACK, the others ROUND_ROBIN), 50 requests/s for
  ten simulated minutes, one outage of the top provider for the middle third. The table's
  "requests / CPU s" column is the figure the issue asks for.
* ``trio floor``: no registry and no simulated provider, only arrivals like the default
  scenario's, each one trio task sleeping a latency inside a cancel scope on the same
  autojumping clock: the least trio work a design with a task per request does (the
  tasks engine's floor; the events engine is below it).
* ``sweep 1 job`` / ``sweep 2 jobs``: ``sweep(primary-outage, seeds 1-24, jobs=N)`` on a
  process pool. Target: 2 jobs at least 1.8 times the seeds per second of 1 job.

Runs are deterministic (same scenario and seed, same report), so repeating one only
measures noise; ``--repeat`` takes the best of several (the table shows every run's wall
time). Every report is checked to be ``ok``. The garbage collector stays on.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
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
from ciris_actors.simulation import (
    Scenario,
    bundled_scenarios,
    default_scenario,
    load_scenario,
    parse_scenario,
    run_scenario,
)
from ciris_actors.simulation.engines import ENGINES, Engine
from ciris_actors.simulation.providers import sample_latency
from ciris_actors.simulation.sweep import sweep

#: The default scenario from the command line: at least this many times real time.
TARGET_CLI_SPEEDUP = 1000.0
#: The events engine against the tasks engine on the default scenario.
TARGET_ENGINE_RATIO = 8.0
#: Seeds per second of a 2-job sweep against a 1-job sweep.
TARGET_SWEEP_SCALING = 1.8
PROVIDER_COUNTS = (1, 10, 100)
RATE = 50.0
SWEEP_SCENARIO = "primary-outage"
SWEEP_SEEDS = range(1, 25)
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
    #: Seeds run, for a sweep.
    seeds: int = 0

    @property
    def speedup(self) -> float:
        """Simulated seconds per wall second."""
        return self.simulated / self.wall

    @property
    def requests_per_cpu_second(self) -> float:
        """Simulated requests per CPU second."""
        return self.requests / self.cpu if self.cpu else 0.0

    @property
    def seeds_per_second(self) -> float:
        """Seeds per wall second (sweeps)."""
        return self.seeds / self.wall


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


def best_of(case: str, repeat: int, once: Callable[[], Result]) -> Result:
    """Run *once* *repeat* times.

    Args:
        case: The case's name (for the progress lines).
        repeat: How many runs.
        once: One timed run.

    Returns:
        The best run (lowest wall time), with every run's wall time.
    """
    runs = []
    for attempt in range(repeat):
        progress(f"{case}: run {attempt + 1} of {repeat}")
        runs.append(once())
    best = min(runs, key=lambda r: r.wall)
    return attrs.evolve(best, walls=tuple(r.wall for r in runs))


def measure(case: str, scenario: Scenario, engine: Engine, repeat: int) -> Result:
    """Run a scenario in this process on *engine*, *repeat* times.

    Raises:
        SystemExit: A run's report is not ok.
    """

    def once() -> Result:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        report = run_scenario(scenario, engine=engine)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if not report.ok:
            raise SystemExit(f"{case}: the report is not ok: {report.violations[:3]}")
        return Result(
            case,
            str(len(scenario.providers)),
            scenario.workload.duration,
            report.requests.sent,
            wall,
            cpu,
        )

    return best_of(case, repeat, once)


def measure_cli(engine: Engine, repeat: int, quick: bool) -> Result:
    """Run ``ciris-actors simulate`` (the default scenario) as a child process.

    With *quick*, the bundled primary-outage scenario instead (a smoke run).

    Raises:
        SystemExit: The command failed.
    """
    case = f"cli {engine}"
    scenario_args = [SWEEP_SCENARIO] if quick else []
    scenario = load_scenario(bundled_scenarios()[SWEEP_SCENARIO]) if quick else default_scenario()
    command = [sys.executable, "-m", "ciris_actors.cli", "simulate", *scenario_args]
    command += ["--engine", engine]

    def once() -> Result:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall0 = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, check=False)
        wall = time.perf_counter() - wall0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{case}: {' '.join(command)} exited {done.returncode}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return Result(case, str(len(scenario.providers)), scenario.workload.duration, 0, wall, cpu)

    return best_of(case, repeat, once)


def measure_sweep(jobs: int, repeat: int, seeds: Sequence[int]) -> Result:
    """Sweep the bundled primary-outage scenario over *seeds* on *jobs* processes.

    Raises:
        SystemExit: A seed broke a rule.
    """
    case = f"sweep {jobs} job{'s' if jobs > 1 else ''}"
    scenario = load_scenario(bundled_scenarios()[SWEEP_SCENARIO])

    def once() -> Result:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall0 = time.perf_counter()
        result = sweep(scenario, seeds, jobs=jobs)
        wall = time.perf_counter() - wall0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if not result.ok:
            raise SystemExit(f"{case}: seeds {[o.seed for o in result.broken]} broke a rule")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        requests = sum(o.sent for o in result.outcomes)
        simulated = scenario.workload.duration * len(seeds)
        providers = str(len(scenario.providers))
        return Result(case, providers, simulated, requests, wall, cpu, seeds=len(seeds))

    return best_of(case, repeat, once)


def measure_floor(scenario: Scenario, repeat: int) -> Result:
    """Run the least trio work a task-per-request design does, *repeat* times.

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

    def once() -> Result:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        trio.run(arrivals, clock=trio.testing.MockClock(autojump_threshold=0))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        return Result("trio floor", "-", workload.duration, counts[-1], wall, cpu)

    return best_of("trio floor", repeat, once)


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
        ("requests / CPU s", ">"),
        ("seeds / s", ">"),
        ("wall s of each run", ">"),
    )
    rows = [
        (
            r.case,
            r.providers,
            f"{r.simulated:,.0f}",
            f"{r.requests:,}" if r.requests else "-",
            f"{r.wall:.2f}",
            f"{r.cpu:.2f}",
            f"{r.speedup:,.0f}",
            f"{r.requests_per_cpu_second:,.0f}" if r.requests else "-",
            f"{r.seeds_per_second:.2f}" if r.seeds else "-",
            ", ".join(f"{w:.2f}" for w in r.walls),
        )
        for r in results
    ]
    right = [i for i, (_, align) in enumerate(columns) if align == ">"]
    return format_table([name for name, _ in columns], rows, right, markdown=True)


def profile(scenario: Scenario) -> str:
    """Run a scenario once on the events engine under cProfile.

    Args:
        scenario: The scenario.

    Returns:
        The 15 entries with the most own time.
    """
    profiler = cProfile.Profile()
    profiler.enable()
    run_scenario(scenario, engine="events")
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats(pstats.SortKey.TIME).print_stats(15)
    return out.getvalue()


def verdicts(results: dict[str, Result], quick: bool) -> list[str]:
    """The targets, each with what was measured and HIT or MISSED.

    Args:
        results: The results by case.
        quick: Whether this was a ``--quick`` run (no verdicts then).

    Returns:
        One line per target.
    """
    cli = results["cli events"]
    ratio = results["default tasks"].wall / results["default events"].wall
    scaling = results["sweep 2 jobs"].seeds_per_second / results["sweep 1 job"].seeds_per_second
    checks = [
        (
            f"default scenario from the CLI >= {TARGET_CLI_SPEEDUP:,.0f}x real time",
            cli.speedup >= TARGET_CLI_SPEEDUP,
            f"{cli.wall:.2f} s wall, {cli.speedup:,.0f}x",
        ),
        (
            f"events engine >= {TARGET_ENGINE_RATIO:g}x faster than tasks (default, same run)",
            ratio >= TARGET_ENGINE_RATIO,
            f"{ratio:.1f}x",
        ),
        (
            f"sweep: 2 jobs >= {TARGET_SWEEP_SCALING:g}x the seeds/s of 1 job",
            scaling >= TARGET_SWEEP_SCALING,
            f"{scaling:.2f}x",
        ),
    ]
    return [
        f"target: {what}: "
        + ("not judged (--quick)" if quick else "HIT" if hit else "MISSED")
        + f" ({measured})"
        for what, hit, measured in checks
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run every case, print the header, the table and the targets.

    Args:
        argv: The command line's arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short windows (smoke run)")
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs per case")
    parser.add_argument("--profile", action="store_true", help="print the top 15 by own time")
    args = parser.parse_args(argv)
    default = default_scenario()
    if args.quick:
        default = shortened(default, 360.0)
    pool_duration = 60.0 if args.quick else 600.0
    seeds = list(SWEEP_SEEDS)[: 4 if args.quick else None]
    head = header()  # before the runs: the tree the numbers belong to
    load_before = load()
    started = time.perf_counter()
    results: list[Result] = []
    for engine in ENGINES:
        results.append(measure_cli(engine, args.repeat, args.quick))
    for engine in ENGINES:
        results.append(measure(f"default {engine}", default, engine, args.repeat))
    for count in PROVIDER_COUNTS:
        scenario = pool_scenario(count, pool_duration)
        for engine in ENGINES:
            results.append(measure(f"{count} providers {engine}", scenario, engine, args.repeat))
    results.append(measure_floor(default, args.repeat))
    for jobs in (1, 2):
        results.append(measure_sweep(jobs, args.repeat, seeds))
    elapsed = time.perf_counter() - started
    print("\n".join(head))
    print(f"load average (1/5/15 min): before {load_before}, after {load()}")
    print(f"command: python benchmarks/bench_simulation.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"timed runs took {elapsed:.0f} s{' (--quick: not for numbers)' if args.quick else ''}")
    print()
    print(table(results))
    print()
    print("\n".join(verdicts({r.case: r for r in results}, args.quick)))
    if args.profile:
        progress("profiling the default scenario on the events engine")
        print()
        print(profile(default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
