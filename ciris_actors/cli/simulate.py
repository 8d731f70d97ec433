"""``ciris-actors simulate``: run a scenario on virtual time, print its summary (a table
per providers and faults, rich on a terminal, plain text otherwise), and write the JSON
report and the timeline picture when asked."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import attrs

from .._types import CircuitState
from ..simulation import Report, Scenario, ScenarioError, run_scenario
from ..simulation.engines import Engine, check_engine
from ..simulation.plot import picture_format
from ..simulation.report import FaultStats, FleetStats
from ._extras import available
from ._render import WIDTH, Table, clock, count, fit_table, number, pct, secs, span, wrap
from ._scenarios import list_scenarios, resolve_scenario
from ._usage import UsageError

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["PROG", "SimulateArgs", "run"]

PROG = "ciris-actors simulate"

#: Availability this far (as a share) below the best possible still counts as good.
GAP_TOLERANCE = 0.001
#: Faults the verdict names one by one; the rest are counted.
MAX_FAULT_CLAUSES = 3
FAULT_WORDS = {
    "outage": "outage",
    "errors": "error burst",
    "latency": "slowdown",
    "crash": "crash loop",
    "flap": "flapping health",
    "slow_start": "slow start",
    "rate_limit": "rate limit",
    "bad_credentials": "revoked key",
    "context_overflow": "context overflow",
}
MODE_WORDS = {
    "call": "each through registry.call (failing over on errors)",
    "lease": "each through registry.lease (one provider, no failover)",
}
PROVIDER_LEGEND = (
    "first tries: requests whose first attempt went to it; opens: times its circuit"
    " breaker tripped; FAILED: it crashed too often and was given up on.",
)
OUTCOME_LEGEND = (
    "Each attempt by how the registry counted it. Wasted (it could not serve): failed,"
    " timeout (its deadline passed), limited (rate limited, HTTP 429), disabled (HTTP"
    " 401), rerouted (needed a provider with more capabilities). Not wasted: served, and"
    " ignored (the request's own fault).",
)
FAULT_LEGEND = (
    "noticed: until its breaker opened, a health check failed or it crashed;"
    " traffic moved: until requests it would have taken went to another provider first;"
    " back in routing: until, after the fault, it could be chosen again (breaker no longer"
    " open, health passing); failed over: calls that tried more than one provider.",
)
FLEET_LEGEND = (
    "dead: attempts sent to a provider while a fault made every call to it fail, with"
    " the store, then alone; opens: its breakers' opens (fleet verdicts included), with"
    " the store, then alone; sent / recv: verdicts it reported to the store / applied"
    " from other nodes; store lost: when it lost the store and got it back.",
)
NEXT_STEPS = (
    "Next: --plot timeline.png draws this run; --list shows the other scenarios;"
    " ciris-actors demo shows a failover request by request; docs/simulation.md"
    " explains every number.",
)
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
      engine: the simulation engine (``events`` or ``tasks``).
      list_only: list the bundled scenarios instead of running one.
      no_classes: count every provider error as a plain failure (``classify =
        "none"``).
    """

    scenario: str | None = None
    seed: int | None = None
    json: str | None = None
    plot: str | None = None
    engine: Engine = "events"
    list_only: bool = False
    no_classes: bool = False


def _check_writable(option: str, target: str | None) -> None:
    """Fail before a long run rather than after it when an output cannot be written:
    a missing folder, a path that is a folder, or (for ``--plot``) an unknown format."""
    if target is None or target == "-":
        return
    path = Path(target)
    if path.is_dir():
        raise UsageError(PROG, f"{option} {target}: is a directory; name a file in it")
    if not path.parent.is_dir():
        raise UsageError(PROG, f"{option} {target}: no such directory {str(path.parent)!r}")
    if option == "--plot":
        try:
            picture_format(path)
        except ValueError as exc:
            raise UsageError(PROG, f"{option} {exc}") from None


@attrs.frozen
class _Summary:
    """What the summary says, as lines, each with a style for a terminal (plain text
    ignores the styles). Every line fits :data:`WIDTH` columns."""

    lines: tuple[tuple[str, str], ...]
    ok: bool


def _served_clause(report: Report) -> str:
    requests = report.requests
    if requests.sent and requests.succeeded == requests.sent:
        return f"every request was served ({number(requests.sent)})"
    lost = [
        (requests.failed, "failed"),
        (requests.rejected, "found no provider"),
        (requests.shed, "were dropped at the concurrency limit"),
    ]
    detail = ", ".join(f"{number(n)} {what}" for n, what in lost if n)
    return (
        f"{number(requests.succeeded)} of {number(requests.sent)} requests were served"
        f" ({pct(report.availability, 2)}; {detail})"
    )


def _best_clause(report: Report) -> str:
    gap = report.availability_gap
    if gap is None or report.requests.succeeded == report.requests.sent:
        return ""
    if gap <= 0:
        return ", as many as any router could have"
    if gap <= GAP_TOLERANCE:
        return f", within {gap * 100:.3f} points of the best any router could do"
    return (
        f", {gap * 100:.2f} points fewer than a router that knew every failure in advance"
        f" ({pct(report.oracle_availability, 2)})"
    )


def _fault_clause(fault: FaultStats, report: Report) -> str:
    provider = report.provider(fault.provider)
    name = fault.provider
    kind = FAULT_WORDS.get(fault.kind.value, fault.kind.value)
    if fault.at >= report.duration:
        return f"{name}'s {kind} came after the run ended"
    if fault.kind.value == "crash" and provider.failed:
        return f"the crash-looping {name} went FAILED after {count(provider.restarts, 'restart')}"
    if fault.time_to_detect is None:
        rerouted = provider.outcomes.rerouted
        if fault.kind.value == "context_overflow" and rerouted:
            return (
                f"{name}'s {kind} left it in routing and rerouted {count(rerouted, 'long request')}"
            )
        return f"{name}'s {kind} went unnoticed (no breaker opened, no health check failed)"
    clause = f"{name}'s {kind} was noticed {_after(fault.time_to_detect)}"
    others = [p for p, served in fault.served_during if p != name and served]
    if others and _busiest_before(fault, report) == name:
        clause += f" and its traffic moved to {others[0]}"
    return clause


def _after(seconds: float) -> str:
    return "at once" if seconds < 0.001 else f"in {secs(seconds)}"


def _busiest_before(fault: FaultStats, report: Report) -> str | None:
    """The provider that served most in the window before *fault* (from the timeline)."""
    timeline = report.timeline
    start = max(0.0, fault.at - fault.duration)
    totals = [0] * len(timeline.providers)
    for bucket in timeline.buckets:
        if start <= bucket.start < fault.at:
            totals = [a + b for a, b in zip(totals, bucket.served, strict=True)]
    if not any(totals):
        return None
    return timeline.providers[max(range(len(totals)), key=totals.__getitem__)]


def _available_again(fault: FaultStats, report: Report) -> float | None:
    """Seconds from the end of *fault* until its provider could be chosen again (actor
    running, health not failed, breaker not open), from the report's windows and
    breaker transitions; ``None`` if not within the run."""
    name = fault.provider
    windows = [*report.down_windows_of(name), *report.unhealthy_windows_of(name)]
    changes = [c for c in report.breaker_transitions if c.provider == name]
    t = fault.end
    moved = True
    while moved:
        moved = False
        for window in windows:
            if window.start <= t < window.end:
                t, moved = window.end, True
        state = CircuitState.CLOSED
        for change in changes:
            if change.time <= t:
                state = change.new
        if state is CircuitState.OPEN:
            later = [c.time for c in changes if c.time > t]
            t, moved = (later[0] if later else math.inf), True
        if math.isinf(t) or t > report.duration:
            return None
    return t - fault.end


def _verdict(report: Report) -> tuple[bool, str]:
    """Whether the run was good, and one sentence saying what happened."""
    gap = report.availability_gap
    good = report.ok and (gap is None or gap <= GAP_TOLERANCE)
    clauses = [_served_clause(report) + _best_clause(report)]
    faults = [f for f in report.faults if f.at < report.duration]
    clauses += [_fault_clause(fault, report) for fault in faults[:MAX_FAULT_CLAUSES]]
    if len(faults) > MAX_FAULT_CLAUSES:
        clauses.append(f"and {count(len(faults) - MAX_FAULT_CLAUSES, 'more fault')} below")
    broken = report.invariants.violation_count
    clauses.append(
        "every routing rule held"
        if not broken
        else f"{count(broken, 'routing rule')} broken (listed below)"
    )
    lead = "Good run: " if good else "Needs a look: "
    return good, lead + "; ".join(clauses) + "."


def _back_after(fault: FaultStats, report: Report) -> str:
    if report.provider(fault.provider).failed:
        return "never back (FAILED)"
    ready = _available_again(fault, report)
    recover = fault.time_to_recover
    if ready is None:
        return "not back before the run ended"
    back = f"back in routing {_after(ready).replace('in ', '', 1)} after it ended"
    if ready < 0.001:
        back = "back in routing as it ended"
    if recover is None:
        return back + " (no request needed it again)"
    if recover - ready > 60:
        # A standby serves again only when traffic needs it: say so, or a long gap
        # looks like a slow recovery.
        return back + f" (first needed again {secs(recover)} after it ended)"
    return back + f", serving {secs(recover)} after it ended"


def _fault_card(fault: FaultStats, report: Report) -> list[str]:
    kind = FAULT_WORDS.get(fault.kind.value, fault.kind.value)
    where = f" (at {', '.join(fault.nodes)})" if fault.nodes else ""
    head = (
        f"{fault.index:>3}  {kind} on {fault.provider}{where}, {clock(fault.at)}-{clock(fault.end)}"
    )
    if fault.at >= report.duration:
        return [head, "     after the run ended: no effect"]
    rerouted = report.provider(fault.provider).outcomes.rerouted
    if fault.time_to_detect is not None:
        found = f"noticed {_after(fault.time_to_detect)}"
    elif fault.kind.value == "context_overflow" and rerouted:
        found = f"never taken out of routing ({count(rerouted, 'attempt')} rerouted)"
    else:
        found = "never noticed"
    parts = [found]
    if fault.time_to_failover is not None:
        parts.append(f"traffic moved in {secs(fault.time_to_failover)}")
    parts.append(_back_after(fault, report))
    during = fault.phases.during
    before = fault.phases.before
    while_on = [f"{pct(during.availability, 2)} served"]
    if during.failed_over:
        while_on.append(f"{number(during.failed_over)} calls failed over")
    if before.latency.p99 is not None and during.latency.p99 is not None:
        while_on.append(f"p99 {secs(before.latency.p99)} -> {secs(during.latency.p99)}")
    return [
        head,
        *_wrap(", ".join(parts), indent="     "),
        *_wrap("while it lasted: " + ", ".join(while_on), indent="     "),
    ]


def _wrap(text: str, indent: str = "", width: int = 0) -> list[str]:
    return wrap(text, indent, width or WIDTH)


def _routing_shown(scenario: Scenario) -> bool:
    """Whether the summary shows attempts per request: when the scenario hedges calls or
    budgets retries (what they change is how many attempts a request makes)."""
    return scenario.retry_budget is not None or scenario.workload.hedge_after is not None


def _routing_clause(report: Report) -> str:
    """What spillover, the retry budget and hedging did, in words ('' when nothing)."""
    routing = report.routing
    parts = [f"{number(n)} {kind} resolves spilled over" for kind, n in routing.spilled if n]
    if routing.retries_refused:
        parts.append(f"{number(routing.retries_refused)} retries refused by the budget")
    if routing.hedges_started:
        parts.append(
            f"{number(routing.hedges_started)} hedges started,"
            f" {number(routing.hedges_won)} answered first"
        )
    return "; ".join(parts)


def _summarize(report: Report, scenario: Scenario) -> _Summary:
    requests = report.requests
    latency = report.latency
    workload = scenario.workload
    lines: list[tuple[str, str]] = []

    def add(text: str = "", style: str = "") -> None:
        lines.append((text, style))

    def paragraph(text: str, style: str = "", indent: str = "") -> None:
        for line in _wrap(text, indent=indent):
            add(line, style)

    mode = MODE_WORDS.get(report.mode, report.mode)
    paragraph(
        f"{report.scenario} (seed {report.seed}): {span(report.duration)} of traffic at"
        f" {workload.rate:g} requests/s, {mode}, {count(len(report.faults), 'fault')}.",
        "bold",
    )
    if scenario.description:
        paragraph(scenario.description, "dim")
    classes = _classes_sentence(report, scenario)
    if classes:
        paragraph(classes, "dim")
    add()
    good, verdict = _verdict(report)
    paragraph(verdict, "bold green" if good else "bold red")
    add()
    served = (
        f"{number(requests.succeeded)} of {number(requests.sent)} requests"
        f" ({pct(report.availability, 3)})"
    )
    best = f"{pct(report.oracle_availability, 3)} (if a router knew every failure in advance)"
    speed = (
        f"p50 {secs(latency.p50)}, p95 {secs(latency.p95)}, p99 {secs(latency.p99)}"
        " (of served requests)"
    )
    attempts = report.attempts
    per_request = attempts.wasted_per_request
    wasted = (
        f"{number(attempts.wasted)} on providers that could not serve"
        f" ({0.0 if per_request is None else per_request:.4f} per request)"
    )
    rows = [
        ("served", served),
        ("best possible", best),
        ("latency", speed),
        ("wasted tries", wasted),
    ]
    if _routing_shown(scenario):
        made = attempts.made / requests.sent if requests.sent else 0.0
        rows.append(("attempts", f"{number(attempts.made)} ({made:.4f} per request)"))
    routing = _routing_clause(report)
    if routing:
        rows.append(("routing", routing))
    for label, value in rows:
        for i, line in enumerate(_wrap(value, width=WIDTH - 17)):
            add(f"  {label if i == 0 else '':<13}  {line}")
    add()
    providers = Table(
        "Providers",
        ("provider", "group", "served", "share", "first tries", "opens", "restarts", "FAILED"),
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
    table_lines = fit_table(providers, WIDTH)
    add(table_lines[0], "bold")
    for line in table_lines[1:]:
        add(line, "bold red" if line.rstrip().endswith(" yes") else "")
    for line in PROVIDER_LEGEND:
        paragraph(line, "dim", indent="  ")
    if _classes_shown(report, scenario):
        add()
        outcomes = Table(
            "Attempts by outcome",
            (
                "provider",
                "served",
                "failed",
                "timeout",
                "limited",
                "disabled",
                "rerouted",
                "ignored",
            ),
            tuple(
                (
                    p.name,
                    *(
                        str(n)
                        for n in (
                            p.outcomes.success,
                            p.outcomes.failure,
                            p.outcomes.timeout,
                            p.outcomes.rate_limited,
                            p.outcomes.disabled,
                            p.outcomes.rerouted,
                            p.outcomes.ignored,
                        )
                    ),
                )
                for p in report.providers
            ),
        )
        table_lines = fit_table(outcomes, WIDTH)
        add(table_lines[0], "bold")
        for line in table_lines[1:]:
            add(line)
        for line in OUTCOME_LEGEND:
            paragraph(line, "dim", indent="  ")
    if report.fleet is not None:
        add()
        lines.extend(_fleet_lines(report.fleet))
        for line in FLEET_LEGEND:
            paragraph(line, "dim", indent="  ")
    if report.faults:
        add()
        add("Faults", "bold")
        for fault in report.faults:
            for line in _fault_card(fault, report):
                add(line)
        for line in FAULT_LEGEND:
            paragraph(line, "dim", indent="  ")
    add()
    invariants = report.invariants
    broken = invariants.violation_count
    if broken:
        paragraph(
            f"Routing rules: {count(broken, 'violation')} in {number(invariants.checks)}"
            " routing decisions checked.",
            "bold red",
        )
        for v in invariants.violations:
            paragraph(f"t={v.time:.3f} s  {v.rule}: {v.detail}", "red", indent="  ")
        if broken > len(invariants.violations):
            add(f"  ... and {broken - len(invariants.violations)} more (see --json)", "red")
    else:
        paragraph(
            f"Routing rules: all held in {number(invariants.checks)} routing decisions checked"
            " (never an open breaker, a missing capability, a provider down or a better one"
            " passed over).",
            "green",
        )
    add()
    for line in NEXT_STEPS:
        paragraph(line, "dim")
    return _Summary(lines=tuple(lines), ok=report.ok)


def _ratio(fleet: FleetStats) -> str:
    ratio = fleet.ratio
    return "" if ratio is None else f" ({ratio:.2f}x)"


def _store_faults(fleet: FleetStats) -> str:
    parts = []
    for fault in fleet.faults:
        when = f"{clock(fault.at)}-{clock(fault.at + fault.duration)}"
        if fault.kind == "store_down":
            parts.append(f"store down {when}")
        else:
            parts.append(f"{', '.join(fault.nodes)} cut off {when}")
    return "; ".join(parts)


def _fleet_lines(fleet: FleetStats) -> list[tuple[str, str]]:
    """The fleet section: the comparison with every node alone, and a table per node."""
    lines: list[tuple[str, str]] = []
    quorum = f"quorum {fleet.quorum}"
    if fleet.quorum > 1:
        quorum += f" within {secs(fleet.quorum_window)}"
    head = (
        f"Fleet: {fleet.nodes} nodes sharing one store ({quorum}), against the same run"
        " with every node alone"
    )
    lines += [(line, "bold") for line in _wrap(head)]
    rows = [
        (
            "dead tries",
            f"attempts to a dead provider: {number(fleet.dead_attempts)} with the fleet,"
            f" {number(fleet.alone_dead_attempts)} alone{_ratio(fleet)}",
        ),
        (
            "served",
            f"{pct(fleet.availability, 3)} with the fleet, {pct(fleet.alone_availability, 3)}"
            " alone",
        ),
        (
            "attempts",
            f"{number(fleet.attempts)} with the fleet, {number(fleet.alone_attempts)} alone",
        ),
    ]
    store = _store_faults(fleet)
    if store:
        rows.append(("store faults", store))
    for label, value in rows:
        for i, line in enumerate(_wrap(value, width=WIDTH - 17)):
            lines.append((f"  {label if i == 0 else '':<13}  {line}", ""))
    lines.append(("", ""))
    table = Table(
        "Nodes (with the store, then alone)",
        (
            "node",
            "requests",
            "served",
            "dead",
            "alone",
            "opens",
            "alone",
            "sent",
            "recv",
            "store lost",
        ),
        tuple(
            (
                n.node,
                str(n.requests),
                str(n.succeeded),
                str(n.dead_attempts),
                str(n.alone_dead_attempts),
                str(n.breaker_opens),
                str(n.alone_breaker_opens),
                str(n.verdicts_sent),
                str(n.verdicts_received),
                ", ".join(
                    f"{clock(lost)}-{clock(back) if back is not None else '?'}"
                    for lost, back in _outages(n.degraded, n.restored)
                )
                or "-",
            )
            for n in fleet.per_node
        ),
    )
    table_lines = fit_table(table, WIDTH)
    lines.append((table_lines[0], "bold"))
    lines += [(line, "") for line in table_lines[1:]]
    return lines


def _outages(
    degraded: tuple[float, ...], restored: tuple[float, ...]
) -> list[tuple[float, float | None]]:
    """Each time a node lost the store, paired with when it got it back (if it did)."""
    pairs: list[tuple[float, float | None]] = []
    for lost in degraded:
        back = next((t for t in restored if t >= lost), None)
        pairs.append((lost, back))
    return pairs


def _has_class_faults(scenario: Scenario) -> bool:
    return any(fault.refusal_rank is not None for fault in scenario.faults)


def _classes_shown(report: Report, scenario: Scenario) -> bool:
    """Whether error classes played a part: a class fault was scheduled, or an error was
    counted as something other than a failure (then the summary says how errors were
    classified, and shows the attempts by outcome)."""
    return _has_class_faults(scenario) or any(
        p.outcomes.rate_limited or p.outcomes.disabled or p.outcomes.rerouted or p.outcomes.ignored
        for p in report.providers
    )


def _classes_sentence(report: Report, scenario: Scenario) -> str:
    """How errors were counted, when it matters (see :func:`_classes_shown`), or when
    every error was a plain failure."""
    if report.classify == "none":
        return "Every error counted as a plain failure (no error classes)."
    if not _classes_shown(report, scenario):
        return ""
    overflow = scenario.context_overflow
    where = (
        f"reroutes to providers with {', '.join(overflow)}"
        if overflow
        else "is the request's fault"
    )
    return (
        "Errors counted by HTTP class: a 429 rate-limits, a 401 disables, a context"
        f" overflow {where}."
    )


def _print_plain(summary: _Summary, out: TextIO) -> None:
    print("\n".join(line.rstrip() for line, _ in summary.lines), file=out)


def _print_rich(summary: _Summary, console: Console) -> None:
    from rich.text import Text

    for line, style in summary.lines:
        console.print(Text(line.rstrip(), style=style or ""), soft_wrap=True)


def _run_with_bar(scenario: Scenario, seed: int | None, engine: Engine, console: Console) -> Report:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    total = scenario.workload.duration
    with Progress(
        TextColumn("[bold]simulating"),
        BarColumn(),
        TextColumn("{task.fields[simulated]} of virtual time"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        # Redrawn by the run's own progress calls (about a hundred), not by a thread
        # waking ten times a second to compete with the simulation for the interpreter.
        auto_refresh=False,
    ) as bar:
        task = bar.add_task("simulate", total=total, simulated=f"0:00 / {clock(total)}")

        def advance(done: float, total: float) -> None:
            bar.update(task, completed=done, simulated=f"{clock(done)} / {clock(total)}")
            bar.refresh()

        return run_scenario(scenario, seed=seed, progress=advance, engine=engine)


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
    if args.no_classes:
        scenario = attrs.evolve(scenario, classify="none")
    try:
        check_engine(args.engine, scenario)
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
        report = _run_with_bar(scenario, args.seed, args.engine, console)
        console.print(
            f"[dim]Simulated {span(scenario.workload.duration)} of traffic in"
            f" {time.monotonic() - started:.1f} s.[/dim]\n"
        )
    else:
        report = run_scenario(scenario, seed=args.seed, engine=args.engine)

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
    except BrokenPipeError:
        raise  # the reader of stdout left: main() ends quietly
    except OSError as exc:
        raise UsageError(PROG, f"cannot write: {exc}") from None
    if written:
        print("\n" + "\n".join(written), file=out)
    return 0 if report.ok else 1
