"""``ciris-actors simulate``: run a scenario on virtual time, print its summary (a table
per providers and faults, rich on a terminal, plain text otherwise), and write the JSON
report and the timeline picture when asked."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import attrs

from ..simulation import Report, Scenario, ScenarioError, run_scenario
from ._extras import available
from ._render import Table, clock, num, pct, plain_table, secs, span
from ._scenarios import list_scenarios, resolve_scenario
from ._usage import UsageError

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["PROG", "SimulateArgs", "run"]

PROG = "ciris-actors simulate"
_RICH_HINT = "(install ciris-actors[sim] for a progress bar and tables)"
_PLOT_HINT = "--plot needs matplotlib: pip install 'ciris-actors[plot]'"


@attrs.frozen
class SimulateArgs:
    """What ``simulate`` was asked for.

    Attributes:
      scenario: a scenario file or bundled scenario name; ``None`` for the default.
      seed: overrides the scenario's seed.
      json: where to write the JSON report (``-``: stdout), if anywhere.
      plot: where to write the timeline PNG, if anywhere.
      list_only: list the bundled scenarios instead of running one.
    """

    scenario: str | None = None
    seed: int | None = None
    json: str | None = None
    plot: str | None = None
    list_only: bool = False


def _check_writable(option: str, target: str | None) -> None:
    """Fail before a long run rather than after it when an output folder is missing."""
    if target is None or target == "-":
        return
    folder = Path(target).parent
    if not folder.is_dir():
        raise UsageError(PROG, f"{option} {target}: no such directory {str(folder)!r}")


@attrs.frozen
class _Summary:
    """What the summary says, independent of how it is drawn (rich or plain text)."""

    heading: str
    description: str
    overview: tuple[tuple[str, str], ...]
    tables: tuple[Table, ...]
    notes: tuple[str, ...]
    invariants: str
    violations: tuple[str, ...]
    ok: bool


def _summarize(report: Report, scenario: Scenario) -> _Summary:
    requests = report.requests
    latency = report.latency
    workload = scenario.workload
    heading = (
        f"{report.scenario}: seed {report.seed}, {span(report.duration)} of traffic"
        f" at {workload.rate:g} requests/s, mode {report.mode}"
    )
    gap = report.availability_gap
    overview = (
        (
            "requests",
            f"{requests.sent} sent: {requests.succeeded} succeeded,"
            f" {requests.failed} failed, {requests.rejected} rejected,"
            f" {requests.shed} shed",
        ),
        (
            "availability",
            f"{pct(report.availability, 3)} (oracle {pct(report.oracle_availability, 3)},"
            f" gap {'-' if gap is None else f'{gap * 100:.3f}'} points)",
        ),
        (
            "latency",
            f"p50 {secs(latency.p50)}, p95 {secs(latency.p95)},"
            f" p99 {secs(latency.p99)} (succeeded requests)",
        ),
    )
    providers = Table(
        "Providers",
        (
            "provider",
            "group",
            "served",
            "share",
            "first attempts",
            "breaker opens",
            "restarts",
            "FAILED",
        ),
        tuple(
            (
                p.name,
                str(p.group),
                str(p.served),
                pct(p.share, 1),
                str(p.first_attempts),
                str(p.breaker_opens),
                str(p.restarts),
                "yes" if p.failed else "no",
            )
            for p in report.providers
        ),
    )
    tables = [providers]
    notes: list[str] = []
    if report.faults:
        rows = []
        unreached = []
        for fault in report.faults:
            phases = fault.phases
            if fault.at >= report.duration:
                unreached.append(f"#{fault.index}")
            rows.append(
                (
                    str(fault.index),
                    fault.kind.value,
                    fault.provider,
                    f"{num(fault.at)}-{num(fault.end)} s",
                    secs(fault.time_to_detect),
                    secs(fault.time_to_failover),
                    secs(fault.time_to_recover),
                    pct(phases.before.availability),
                    pct(phases.during.availability),
                    pct(phases.after.availability),
                )
            )
        tables.append(
            Table(
                "Faults",
                (
                    "#",
                    "kind",
                    "provider",
                    "window",
                    "detect",
                    "failover",
                    "recover",
                    "before",
                    "during",
                    "after",
                ),
                tuple(rows),
                text_columns=4,
                note=(
                    "detect/failover: seconds after the fault began; recover: after it ended;"
                    " before/during/after: availability"
                ),
            )
        )
        if unreached:
            several = len(unreached) > 1
            notes.append(
                f"Fault{'s' * several} {', '.join(unreached)} start{'s' * (not several)} after"
                f" the run ends ({num(report.duration)} s) and had no effect."
            )
    invariants = report.invariants
    count = invariants.violation_count
    if count:
        verdict = f"Invariants: {count} violation{'s' * (count != 1)} in {invariants.checks}"
        verdict += " routing checks."
    else:
        verdict = f"Invariants: all held ({invariants.checks} routing checks)."
    violations = [f"t={v.time:.3f} s  {v.rule}: {v.detail}" for v in invariants.violations]
    if count > len(violations):
        violations.append(f"... and {count - len(violations)} more (see --json)")
    return _Summary(
        heading=heading,
        description=scenario.description,
        overview=overview,
        tables=tuple(tables),
        notes=tuple(notes),
        invariants=verdict,
        violations=tuple(violations),
        ok=report.ok,
    )


def _print_plain(summary: _Summary, out: TextIO) -> None:
    lines = [summary.heading]
    if summary.description:
        lines.append(summary.description)
    lines.append("")
    width = max(len(label) for label, _ in summary.overview)
    lines += [f"  {label.ljust(width)}  {value}" for label, value in summary.overview]
    for table in summary.tables:
        lines += ["", *plain_table(table)]
    lines += ["", *summary.notes] if summary.notes else []
    lines += ["", summary.invariants, *(f"  {v}" for v in summary.violations)]
    print("\n".join(lines), file=out)


def _print_rich(summary: _Summary, console: Console) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console.print(Text(summary.heading, style="bold"))
    if summary.description:
        console.print(Text(summary.description, style="dim"))
    console.print()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in summary.overview:
        grid.add_row(label, value)
    console.print(grid)
    for spec in summary.tables:
        table = Table(
            title=spec.title,
            title_justify="left",
            title_style="bold",
            caption=spec.note or None,
            caption_justify="left",
            caption_style="dim",
            box=box.SIMPLE_HEAD,
        )
        for i, column in enumerate(spec.columns):
            table.add_column(column, justify="left" if i < spec.text_columns else "right")
        for row in spec.rows:
            table.add_row(
                *(Text(cell, style="bold red") if cell == "yes" else cell for cell in row)
            )
        console.print()
        console.print(table)
    for note in summary.notes:
        console.print(Text(note, style="yellow"))
    console.print()
    console.print(Text(summary.invariants, style="bold green" if summary.ok else "bold red"))
    for violation in summary.violations:
        console.print(Text(f"  {violation}", style="red"))


def _run_with_bar(scenario: Scenario, seed: int | None, console: Console) -> Report:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    total = scenario.workload.duration
    with Progress(
        TextColumn("[bold]simulating"),
        BarColumn(),
        TextColumn("{task.fields[simulated]} of virtual time"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("simulate", total=total, simulated=f"0:00 / {clock(total)}")

        def advance(done: float, total: float) -> None:
            bar.update(task, completed=done, simulated=f"{clock(done)} / {clock(total)}")

        return run_scenario(scenario, seed=seed, progress=advance)


def run(args: SimulateArgs) -> int:
    """Run ``simulate`` as *args* say.

    Returns:
      The exit status: 0 when every invariant held, 1 when one was violated.

    Raises:
      UsageError: bad input (an unknown scenario, a missing extra or output folder).
    """
    if args.list_only:
        list_scenarios(PROG, sys.stdout)
        return 0
    if args.plot is not None and not available("matplotlib"):
        raise UsageError(PROG, _PLOT_HINT)
    _check_writable("--json", args.json)
    _check_writable("--plot", args.plot)
    try:
        scenario = resolve_scenario(args.scenario)
    except ScenarioError as exc:
        raise UsageError(PROG, str(exc)) from None

    # With --json -, stdout carries the JSON; everything for people goes to stderr.
    out = sys.stderr if args.json == "-" else sys.stdout
    terminal = sys.stdout.isatty() and out.isatty()
    console = None
    if terminal and available("rich"):
        from rich.console import Console

        console = Console(file=out, highlight=False)
    elif terminal:
        print(_RICH_HINT, file=out)
        print(f"Simulating {span(scenario.workload.duration)} of traffic...", file=out, flush=True)

    started = time.monotonic()
    if console is not None:
        report = _run_with_bar(scenario, args.seed, console)
        console.print(
            f"[dim]Simulated {span(scenario.workload.duration)} of traffic in"
            f" {time.monotonic() - started:.1f} s.[/dim]\n"
        )
    else:
        report = run_scenario(scenario, seed=args.seed)

    summary = _summarize(report, scenario)
    if console is not None:
        _print_rich(summary, console)
    else:
        _print_plain(summary, out)
    written = []
    try:
        if args.json == "-":
            sys.stdout.write(report.to_json())
        elif args.json is not None:
            Path(args.json).write_text(report.to_json(), encoding="utf-8")
            written.append(f"Report written to {args.json}")
        if args.plot is not None:
            from ..simulation.plot import write_timeline

            write_timeline(report, args.plot)
            written.append(f"Timeline written to {args.plot}")
    except OSError as exc:
        raise UsageError(PROG, f"cannot write: {exc}") from None
    if written:
        print("\n" + "\n".join(written), file=out)
    return 0 if report.ok else 1
