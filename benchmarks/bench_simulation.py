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
import datetime
import io
import os
import platform
import pstats
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio
import trio.testing

import ciris_actors
from ciris_actors.simulation import Scenario, default_scenario, parse_scenario, run_scenario
from ciris_actors.simulation.providers import sample_latency

#: The default scenario must run an hour in at most this many wall seconds.
TARGET_WALL_SECONDS = 10.0
PROVIDER_COUNTS = (1, 10, 100)
RATE = 50.0


@attrs.frozen
class Result:
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
        return self.simulated / self.wall

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.wall


def shortened(scenario: Scenario, duration: float) -> Scenario:
    """*scenario* cut to its first *duration* seconds (faults starting later dropped)."""
    return attrs.evolve(
        scenario,
        workload=attrs.evolve(scenario.workload, duration=duration),
        faults=tuple(f for f in scenario.faults if f.at < duration),
    )


def pool_scenario(count: int, duration: float) -> Scenario:
    """*count* providers in a few groups, 50 requests/s, one outage of the top provider."""
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
    """Best (lowest wall time) of *repeat* runs of *scenario*."""
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
    """Best of *repeat* runs of the least trio work the engine's design does per request,
    with no registry: *scenario*'s arrivals (Poisson, same rate and duration), each one
    task that sleeps a latency under a cancel scope, on an autojumping ``MockClock``."""
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
    print(f"  .. {message}", file=sys.stderr, flush=True)


def git(*args: str) -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def header() -> list[str]:
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = [line[3:] for line in git("status", "--porcelain").splitlines() if line.strip()]
    package_dirty = [p for p in dirty if p.startswith("ciris_actors/")]
    tree = "clean" if not dirty else f"NOT clean ({len(dirty)} paths)"
    lines = [
        f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M:%S} UTC",
        f"machine: {os.cpu_count()} x {cpu_model()}, {platform.system()} {platform.release()}"
        f" {platform.machine()}",
        f"python {platform.python_version()}, trio {trio.__version__},"
        f" attrs {attrs.__version__}, ciris_actors {ciris_actors.__version__}",
        f"commit: {commit}; working tree {tree}",
    ]
    if package_dirty:
        lines.append("package files differing from the commit: " + ", ".join(package_dirty))
    return lines


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "unknown"


def table(results: Sequence[Result]) -> str:
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
    widths = [max(len(name), *(len(row[i]) for row in rows)) for i, (name, _) in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                f"{cell:{align}{width}}"
                for cell, (_, align), width in zip(cells, columns, widths, strict=True)
            )
            + " |"
        )

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":" if a == ">" else "-" * (w + 2))
            for (_, a), w in zip(columns, widths, strict=True)
        )
        + "|"
    )
    return "\n".join([line([name for name, _ in columns]), rule, *(line(row) for row in rows)])


def profile(scenario: Scenario) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    run_scenario(scenario)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats(pstats.SortKey.TIME).print_stats(15)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
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
