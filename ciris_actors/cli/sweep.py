"""``ciris-actors sweep``: run a scenario over many seeds, on every core (or a Dask
cluster), and say how the results are spread and which seeds did worst, each with the
command that replays it."""

from __future__ import annotations

import multiprocessing
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TextIO

import attrs

from ..simulation import ScenarioError
from ..simulation.engines import Engine, check_engine
from ..simulation.sweep import (
    SeedOutcome,
    Spread,
    SweepResult,
    cluster,
    parse_seeds,
    sweep,
)
from ._extras import available
from ._render import WIDTH, Table, command, count, fit_table, number, pct, secs, wrap
from ._scenarios import resolve_scenario
from ._usage import UsageError

__all__ = ["PROG", "SweepArgs", "run"]

PROG = "ciris-actors sweep"

_CLUSTER_HINT = "--scheduler needs dask.distributed: pip install 'ciris-actors[cluster]'"
#: Seconds to wait for a Dask scheduler to answer.
_CONNECT_TIMEOUT = 10


@attrs.frozen
class SweepArgs:
    """What ``sweep`` was asked for.

    Attributes:
      scenario: a scenario file or bundled scenario name; ``None`` for the default.
      seeds: the seeds, as written (``1-1000``).
      jobs: worker processes (default: the CPU count).
      engine: the simulation engine.
      json: where to write the whole result as JSON (``-``: stdout), if anywhere.
      scheduler: a Dask scheduler address to run on instead of local processes.
      no_classes: count every provider error as a plain failure (``classify =
        "none"``).
    """

    scenario: str | None
    seeds: str
    jobs: int | None = None
    engine: Engine = "events"
    json: str | None = None
    scheduler: str | None = None
    no_classes: bool = False


def replay_command(args: SweepArgs, seed: int) -> str:
    """The ``ciris-actors simulate`` command that replays *seed* of this sweep."""
    return shlex.join(_replay_words(args, seed))


def _replay_words(args: SweepArgs, seed: int) -> list[str]:
    words = ["ciris-actors", "simulate"]
    if args.scenario is not None:
        words.append(args.scenario)
    words += ["--seed", str(seed)]
    if args.engine != "events":
        words += ["--engine", args.engine]
    if args.no_classes:
        words.append("--no-classes")
    return words


def run(args: SweepArgs) -> int:
    """Run ``sweep`` as *args* say.

    Returns:
      The exit status: 0 when every seed held every routing rule and accounted for every
      request, 1 otherwise.

    Raises:
      UsageError: bad input (seeds, scenario, jobs, scheduler, output path).
    """
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        raise UsageError(PROG, f"--seeds: {exc}") from None
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(PROG, f"--jobs: must be >= 1, got {args.jobs}")
    if args.jobs is not None and args.scheduler is not None:
        raise UsageError(PROG, "--jobs and --scheduler: the cluster's workers set the jobs")
    if args.json not in (None, "-"):
        target = Path(args.json)
        if target.is_dir() or not target.parent.is_dir():
            raise UsageError(PROG, f"--json {args.json}: not a file in an existing folder")
    try:
        scenario = resolve_scenario(args.scenario)
    except ScenarioError as exc:
        raise UsageError(PROG, str(exc)) from None
    if args.no_classes:
        scenario = attrs.evolve(scenario, classify="none")
    try:
        check_engine(args.engine, scenario)
    except ScenarioError as exc:
        raise UsageError(PROG, str(exc)) from None

    out = sys.stderr if args.json == "-" else sys.stdout
    with _executor(args) as (executor, where):
        started = time.monotonic()
        with _progress(out, len(seeds)) as progress:
            result = sweep(
                scenario,
                seeds,
                engine=args.engine,
                executor=executor,
                jobs=args.jobs,
                progress=progress,
            )
        elapsed = time.monotonic() - started
    lines = [
        *wrap(
            f"Swept {scenario.name} over {count(len(seeds), 'seed')} ({args.seeds}) on {where}"
            f" in {secs(elapsed)} ({len(seeds) / elapsed:.2f} seeds a second)."
        ),
        "",
        *summarize(result, args),
    ]
    print("\n".join(lines), file=out)
    if args.json is not None:
        text = result.to_json()
        try:
            if args.json == "-":
                sys.stdout.write(text)
            else:
                Path(args.json).write_text(text, encoding="utf-8")
                print(f"\nResult written to {args.json}", file=out)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise UsageError(PROG, f"cannot write: {exc}") from None
    return 0 if result.ok else 1


def summarize(result: SweepResult, args: SweepArgs) -> list[str]:
    """What the sweep came to, as lines of at most :data:`WIDTH` columns: the verdict,
    the spread of each measure, and the worst seeds with their replay commands."""
    broken = result.broken
    total = len(result.outcomes)
    if broken:
        seeds = ", ".join(str(o.seed) for o in broken[:10]) + (", ..." if len(broken) > 10 else "")
        lines = wrap(
            f"Needs a look: {number(len(broken))} of {count(total, 'seed')} broke a routing"
            f" rule or lost a request (seeds {seeds}). Replay one with the command under it"
            " below."
        )
    else:
        lines = wrap(
            f"Good sweep: all {count(total, 'seed')} held every routing rule and accounted"
            " for every request."
        )
    spreads = result.spreads()
    rows = [
        _row("served", spreads["availability"], pct),
        _row("below best router", spreads["oracle_gap"], _points),
        _row("p99 latency", spreads["p99_latency"], secs),
        _row("fault noticed in", spreads["detection"], secs),
        _row("traffic moved in", spreads["failover"], secs),
        _row("rules broken", spreads["violations"], lambda v: "-" if v is None else f"{v:.0f}"),
    ]
    missed = spreads["detection"].missing
    note = "Per seed; fault times per fault of every seed" + (
        f" ({count(missed, 'fault')} never noticed)." if missed else "."
    )
    table = Table(
        title="Across seeds",
        columns=("", "min", "p50", "p90", "p99", "max"),
        rows=tuple(rows),
        note=note,
    )
    lines += ["", *fit_table(table)]
    lines += ["", "Worst seeds (replay each with the command under it):"]
    for outcome in result.worst():
        lines += wrap(_why(outcome), indent="    ", first=f"  seed {outcome.seed}: ")
        lines += command(_replay_words(args, outcome.seed), indent="    ")
    return [line.rstrip() for line in lines]


def _row(label: str, spread: Spread, show: Callable[[float | None], str]) -> tuple[str, ...]:
    return (
        label,
        show(spread.low),
        show(spread.p50),
        show(spread.p90),
        show(spread.p99),
        show(spread.high),
    )


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.3f} pt"


def _why(outcome: SeedOutcome) -> str:
    parts = []
    if outcome.violations:
        parts.append(f"{count(outcome.violations, 'rule violation')} ({', '.join(outcome.rules)})")
    if outcome.lost:
        parts.append(f"{count(outcome.lost, 'request')} lost")
    parts.append(f"{pct(outcome.availability)} served")
    if outcome.oracle_gap:
        parts.append(f"{outcome.oracle_gap * 100:.3f} points below the best router")
    return "; ".join(parts)


@contextmanager
def _executor(args: SweepArgs) -> Iterator[tuple[Executor | None, str]]:
    """Where the seeds run: ``(None, ...)`` for sweep's own process pool, or a Dask
    cluster's executor; and words saying where, for the summary."""
    if args.scheduler is None:
        jobs = args.jobs or os.cpu_count() or 1
        try:
            yield None, count(jobs, "process", "processes")
        except KeyboardInterrupt:
            # Workers ignore Ctrl-C; stop the seeds they are running rather than wait.
            for child in multiprocessing.active_children():
                child.terminate()
            raise
        return
    address = args.scheduler
    with ExitStack() as stack:
        # Only connecting is bad input; what the sweep itself raises is not.
        try:
            executor, workers = stack.enter_context(cluster(address, timeout=_CONNECT_TIMEOUT))
        except ImportError:
            raise UsageError(PROG, _CLUSTER_HINT) from None
        except (ValueError, ConnectionError) as exc:
            raise UsageError(PROG, f"--scheduler: {exc}") from None
        try:
            yield executor, f"the Dask cluster at {address} ({count(workers, 'worker')})"
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").split(".")[0]
            if missing != "ciris_actors" and "'ciris_actors" not in str(exc):
                raise
            raise UsageError(
                PROG,
                f"the workers of the Dask cluster at {address} cannot import ciris_actors:"
                " install ciris-actors (this version) on every worker",
            ) from None


@contextmanager
def _progress(out: TextIO, total: int) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on a terminal with rich installed; nothing otherwise."""
    if not (out.isatty() and available("rich")):
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]sweeping"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("seeds"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(file=out, width=WIDTH),
        transient=True,
    ) as bar:
        task = bar.add_task("sweep", total=total)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done)

        yield advance
