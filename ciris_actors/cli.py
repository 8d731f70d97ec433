"""The ``ciris-actors`` command.

``ciris-actors simulate`` runs a fault-injection scenario (an hour of the seed's LLM
set-up by default) on trio's virtual clock and prints a summary; ``--json`` and
``--plot`` write the full report and a timeline picture. ``ciris-actors serve`` runs a
scenario live, on the real clock, behind the HTTP control plane, and prints what happens
until Ctrl-C. ``ciris-actors demo`` fails the primary of the seed set-up and prints which
provider each request went to.
"""

from __future__ import annotations

import argparse
import importlib.util
import secrets
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

import attrs
import trio
import trio.testing

from . import (
    ActorCrashed,
    ActorFailed,
    ActorRestarted,
    BreakerTransition,
    CircuitBreakerConfig,
    EventsDropped,
    HealthChanged,
    NoServiceAvailable,
    Registry,
    RegistryError,
    open_registry,
)
from ._nursery import unwrap_single_exception
from .simulation import (
    Report,
    Scenario,
    ScenarioError,
    bundled_scenarios,
    default_scenario,
    load_scenario,
    run_scenario,
)
from .simulation.live import CycleNotice, FaultNotice, LiveRun, Notice, Traffic, run_live
from .testing import FakeProvider, register_seed_llm_setup

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["main"]


async def _log_transitions(registry: Registry, start: float) -> None:
    async with registry.events() as events:
        async for event in events:
            if isinstance(event, BreakerTransition):
                print(
                    f"  t={event.time - start:5.1f}s  breaker {event.name}:"
                    f" {event.old.value} -> {event.new.value} ({event.reason})"
                )


async def _ask(provider: FakeProvider, request: int, tried: list[str]) -> str:
    tried.append(provider.name)
    return await provider.handle(request)


async def _demo(requests: int, fail_at: int, both_at: int, recover_at: int) -> None:
    breaker = CircuitBreakerConfig(
        failure_threshold=3, recovery_timeout=10.0, success_threshold=2, timeout_duration=5.0
    )
    async with open_registry(required_services=["llm"], default_breaker=breaker) as registry:
        providers = register_seed_llm_setup(registry, capabilities=["structured_output"])
        openai, anthropic = providers["openai"], providers["anthropic"]
        if not await registry.wait_ready(timeout=5.0):
            raise SystemExit("providers did not become ready")
        start = trio.current_time()

        def say(text: str) -> None:
            print(f"  t={trio.current_time() - start:5.1f}s  {text}")

        print("Seed set-up: group 0 openai > anthropic (fallback), group 1 local1/local2")
        print("(round robin), group 2 mock. One request a second, on virtual time.\n")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_log_transitions, registry, start)
            for i in range(requests):
                if i == fail_at:
                    openai.failing = True
                    say("** openai goes down **")
                if i == both_at:
                    anthropic.failing = True
                    say("** anthropic goes down too **")
                if i == recover_at:
                    openai.failing = anthropic.failing = False
                    say("** openai and anthropic recover **")
                tried: list[str] = []
                try:
                    answer = await registry.call(
                        "ActionSelectionPDMA",
                        "llm",
                        _ask,
                        i,
                        tried,
                        required_capabilities=["structured_output"],
                    )
                    served = answer.split(":")[0]
                except NoServiceAvailable as error:
                    served = f"none ({error})"
                failed = f"  (after {', '.join(tried[:-1])} failed)" if len(tried) > 1 else ""
                say(f"request {i:2d} -> {served}{failed}")
                await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
        print()
        print(registry.explain("ActionSelectionPDMA", "llm", ["structured_output"]))


# -- simulate -----------------------------------------------------------------------------

_SIMULATE = "ciris-actors simulate"
_RICH_HINT = "(install ciris-actors[sim] for a progress bar and tables)"
_PLOT_HINT = "--plot needs matplotlib: pip install 'ciris-actors[plot]'"


class _UsageError(Exception):
    """Bad input: reported as one line ``<prog>: error: <message>``, exit code 2."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and no usage dump."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(self.prog, f"{message} (see {self.prog} --help)")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _resolve(spec: str | None) -> Scenario:
    """The scenario *spec* names: a TOML file, a bundled scenario, or (None) the default.

    Raises:
      ScenarioError: the file is unreadable or invalid, or the name is unknown.
    """
    if spec is None:
        return default_scenario()
    path = Path(spec)
    bundled = bundled_scenarios()
    if spec in bundled and not path.exists():
        return load_scenario(bundled[spec])
    if path.suffix != ".toml" and not path.exists():
        known = ", ".join(bundled) or "none"
        raise ScenarioError(
            f"{spec}: no such file and no bundled scenario of that name"
            f" (bundled: {known}; see --list)"
        )
    return load_scenario(path)


def _check_writable(option: str, target: str | None) -> None:
    """Fail before a long run rather than after it when an output folder is missing."""
    if target is None or target == "-":
        return
    folder = Path(target).parent
    if not folder.is_dir():
        raise _UsageError(_SIMULATE, f"{option} {target}: no such directory {str(folder)!r}")


# -- formatting ---------------------------------------------------------------------------


def _span(seconds: float) -> str:
    """A run length for people: ``90 s``, ``10 min``, ``1 h 30 min``."""
    if seconds < 120 or seconds % 60:
        return f"{seconds:g} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def _num(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:d}:{secs:02d}"


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value:.3f} s"
    if value < 100:
        return f"{value:.1f} s"
    return f"{value:.0f} s"


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


@attrs.frozen
class _Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    #: How many leading columns hold text (aligned left); the rest are numbers.
    text_columns: int = 1
    #: A line under the table saying how to read it.
    note: str = ""


@attrs.frozen
class _Summary:
    """What the summary says, independent of how it is drawn (rich or plain text)."""

    heading: str
    description: str
    overview: tuple[tuple[str, str], ...]
    tables: tuple[_Table, ...]
    notes: tuple[str, ...]
    invariants: str
    violations: tuple[str, ...]
    ok: bool


def _summarize(report: Report, scenario: Scenario) -> _Summary:
    requests = report.requests
    latency = report.latency
    workload = scenario.workload
    heading = (
        f"{report.scenario}: seed {report.seed}, {_span(report.duration)} of traffic"
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
            f"{_pct(report.availability, 3)} (oracle {_pct(report.oracle_availability, 3)},"
            f" gap {'-' if gap is None else f'{gap * 100:.3f}'} points)",
        ),
        (
            "latency",
            f"p50 {_secs(latency.p50)}, p95 {_secs(latency.p95)},"
            f" p99 {_secs(latency.p99)} (succeeded requests)",
        ),
    )
    providers = _Table(
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
                _pct(p.share, 1),
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
                    f"{_num(fault.at)}-{_num(fault.end)} s",
                    _secs(fault.time_to_detect),
                    _secs(fault.time_to_failover),
                    _secs(fault.time_to_recover),
                    _pct(phases.before.availability),
                    _pct(phases.during.availability),
                    _pct(phases.after.availability),
                )
            )
        tables.append(
            _Table(
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
                f" the run ends ({_num(report.duration)} s) and had no effect."
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


def _plain_table(table: _Table) -> list[str]:
    widths = [
        max(len(cell) for cell in column) for column in zip(table.columns, *table.rows, strict=True)
    ]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(width) if i < table.text_columns else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return ("  " + "  ".join(parts)).rstrip()

    lines = [table.title, line(table.columns), *(line(row) for row in table.rows)]
    return [*lines, f"  {table.note}"] if table.note else lines


def _print_plain(summary: _Summary, out: TextIO) -> None:
    lines = [summary.heading]
    if summary.description:
        lines.append(summary.description)
    lines.append("")
    width = max(len(label) for label, _ in summary.overview)
    lines += [f"  {label.ljust(width)}  {value}" for label, value in summary.overview]
    for table in summary.tables:
        lines += ["", *_plain_table(table)]
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


# -- running ------------------------------------------------------------------------------


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
        task = bar.add_task("simulate", total=total, simulated=f"0:00 / {_clock(total)}")

        def advance(done: float, total: float) -> None:
            bar.update(task, completed=done, simulated=f"{_clock(done)} / {_clock(total)}")

        return run_scenario(scenario, seed=seed, progress=advance)


def _list_scenarios(prog: str, out: TextIO) -> None:
    rows = [("(default)", default_scenario().description)]
    for name, path in bundled_scenarios().items():
        try:
            description = load_scenario(path).description or "-"
        except ScenarioError as exc:
            description = f"(invalid: {exc})"
        rows.append((name, description))
    width = max(len(name) for name, _ in rows)
    print(f"Bundled scenarios ({prog} NAME, or a path to your own .toml):", file=out)
    for name, description in rows:
        print(f"  {name.ljust(width)}  {description}", file=out)


def _simulate(args: argparse.Namespace) -> int:
    if args.list:
        _list_scenarios(_SIMULATE, sys.stdout)
        return 0
    if args.plot is not None and not _available("matplotlib"):
        raise _UsageError(_SIMULATE, _PLOT_HINT)
    _check_writable("--json", args.json)
    _check_writable("--plot", args.plot)
    try:
        scenario = _resolve(args.scenario)
    except ScenarioError as exc:
        raise _UsageError(_SIMULATE, str(exc)) from None

    # With --json -, stdout carries the JSON; everything for people goes to stderr.
    out = sys.stderr if args.json == "-" else sys.stdout
    terminal = sys.stdout.isatty() and out.isatty()
    console = None
    if terminal and _available("rich"):
        from rich.console import Console

        console = Console(file=out, highlight=False)
    elif terminal:
        print(_RICH_HINT, file=out)
        print(f"Simulating {_span(scenario.workload.duration)} of traffic...", file=out, flush=True)

    started = time.monotonic()
    if console is not None:
        report = _run_with_bar(scenario, args.seed, console)
        console.print(
            f"[dim]Simulated {_span(scenario.workload.duration)} of traffic in"
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
            from .simulation.plot import write_timeline

            write_timeline(report, args.plot)
            written.append(f"Timeline written to {args.plot}")
    except OSError as exc:
        raise _UsageError(_SIMULATE, f"cannot write: {exc}") from None
    if written:
        print("\n" + "\n".join(written), file=out)
    return 0 if report.ok else 1


# -- serve --------------------------------------------------------------------------------

_SERVE = "ciris-actors serve"
_CONTROL_HINT = "serve needs the control extra: pip install 'ciris-actors[control]'"
#: Seconds between the one-line traffic summaries.
_SUMMARY_EVERY = 10.0


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535 (0: any free port), got {value}")
    return value


def _read_token(path: str) -> str:
    """The bearer token in the file at *path*, without one trailing newline.

    Raises:
      _UsageError: the file cannot be read, is empty, or holds no valid token.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise _UsageError(
            _SERVE, f"--token-file {path}: cannot read: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError:
        raise _UsageError(_SERVE, f"--token-file {path}: not UTF-8 text") from None
    token = text.removesuffix("\n").removesuffix("\r")
    if not token:
        raise _UsageError(_SERVE, f"--token-file {path}: the file is empty")
    from .control._app import check_token  # the server's own rule (the extra is checked)

    try:
        check_token(token)
    except ValueError:
        raise _UsageError(
            _SERVE,
            f"--token-file {path}: the token must be one line of printable ASCII without"
            " spaces around it",
        ) from None
    return token


@attrs.frozen
class _ServeOptions:
    scenario: Scenario
    seed: int | None
    host: str
    port: int
    token: str
    #: How the banner tells where the token came from.
    token_note: str
    #: How the banner's curl line passes the token.
    token_shell: str


class _BindError(Exception):
    """The control plane could not listen on the address asked for."""


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


def _say(text: str) -> None:
    print(f"{_stamp()}  {text}", flush=True)


def _share_text(traffic: Traffic, names: Sequence[str]) -> str:
    served = traffic.served.total()
    if not served:
        return "none served"
    shares = []
    for name in names:
        share = traffic.served[name] / served
        if share:
            shares.append(f"{name} {'<1%' if share < 0.005 else f'{share:.0%}'}")
    return "served by " + ", ".join(shares)


def _count(number: int, noun: str, plural: str = "") -> str:
    """``1 fault``, ``2 faults``; *plural* where adding ``s`` is wrong."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def _traffic_text(traffic: Traffic, names: Sequence[str]) -> str:
    outcomes = traffic.outcomes
    return (
        f"{traffic.total} requests: {outcomes['succeeded']} ok, {outcomes['failed']} failed,"
        f" {outcomes['rejected']} rejected, {outcomes['shed']} shed;"
        f" {_share_text(traffic, names)}"
    )


def _notice_text(notice: Notice, scenario: Scenario) -> str | None:
    """One line for something that happened, or None for what is not worth a line."""
    if isinstance(notice, BreakerTransition):
        return f"breaker {notice.name}: {notice.old.value} -> {notice.new.value} ({notice.reason})"
    if isinstance(notice, HealthChanged):
        word = "healthy" if notice.healthy else "unhealthy"
        return f"health {notice.name}: {word} ({notice.reason})"
    if isinstance(notice, ActorCrashed):
        return f"crash {notice.name}: {notice.error}"
    if isinstance(notice, ActorRestarted):
        return f"restart {notice.name}: restart {notice.restarts}, after {notice.delay:.1f} s"
    if isinstance(notice, ActorFailed):
        return (
            f"FAILED {notice.name}: crashed again after {notice.restarts} restarts"
            f" ({notice.error}); routed around from now on"
        )
    if isinstance(notice, EventsDropped):
        return f"({notice.count} registry events were dropped: the output fell behind)"
    if isinstance(notice, FaultNotice):
        fault = notice.fault
        if not notice.began:
            return f"fault #{notice.index} ends: {fault.kind.value} on {fault.provider}"
        return (
            f"fault #{notice.index} begins: {fault.kind.value} on {fault.provider}"
            f" for {_span(fault.duration)} (scenario t={_num(fault.at)} s)"
        )
    if isinstance(notice, CycleNotice):
        return (
            f"the scenario's {_span(scenario.workload.duration)} are over: the fault schedule"
            f" starts over (cycle {notice.cycle})"
        )
    return None  # registrations, resolve misses (counted as rejected requests)


def _banner(options: _ServeOptions, live: LiveRun, url: str) -> list[str]:
    scenario = options.scenario
    workload = scenario.workload
    names = ", ".join(live.providers)
    lines = [
        f"{_SERVE}: scenario {scenario.name} (seed {live.seed}),"
        f" {_count(len(live.providers), 'provider')}: {names}",
    ]
    if scenario.description:
        lines.append(f"  {scenario.description}")
    faults = scenario.faults
    if faults:
        first = min(f.at for f in faults)
        schedule = (
            f"{_count(len(faults), 'fault')}, the first at t={_num(first)} s;"
            f" the schedule repeats every {_span(workload.duration)}"
        )
    else:
        schedule = "no faults"
    lines += [
        f"traffic: {workload.rate:g} requests/s, mode {workload.mode}; {schedule}",
        f"control plane: {url}",
        f"token: {options.token_note}",
        f'try: curl -H "Authorization: Bearer {options.token_shell}"'
        f" {url}/v1/runtime/services/health",
        "Ctrl-C stops it.",
    ]
    return lines


async def _summaries(live: LiveRun, every: float) -> None:
    """Print a line about the last *every* seconds of traffic, every *every* seconds."""
    names = list(live.providers)
    previous = live.traffic.copy()
    while True:
        await trio.sleep(every)
        current = live.traffic.copy()
        window = _traffic_text(current.since(previous), names)
        _say(f"traffic, last {every:g} s: {window}; {live.in_flight} in flight")
        previous = current


@attrs.define
class _Serve:
    """One ``serve`` run: the live scenario, the control plane, and the signals."""

    options: _ServeOptions
    live: LiveRun | None = None
    #: The first signal received, by name.
    signal: str | None = None
    #: Everything; cancelled by a signal during start-up, or by a second signal.
    everything: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    #: The wait while serving; cancelled by the first signal, for an orderly stop.
    waiting: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    serving: bool = False
    #: Seconds of traffic when the stop began.
    elapsed: float = 0.0

    async def run(self) -> None:
        with (
            trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
            unwrap_single_exception(),
        ):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_signals, signals)
                with self.everything:
                    await self._serve()
                nursery.cancel_scope.cancel()

    async def _watch_signals(self, signals: AsyncIterator[int]) -> None:
        async for number in signals:
            if self.signal is None:
                self.signal = signal.Signals(number).name
            if self.serving and not self.waiting.cancel_called:
                self.waiting.cancel()
            else:
                self.everything.cancel()

    def _notify(self, notice: Notice) -> None:
        text = _notice_text(notice, self.options.scenario)
        if text is not None:
            _say(text)

    async def _serve(self) -> None:
        from .control import serve_control_api

        options = self.options
        async with run_live(options.scenario, seed=options.seed, notify=self._notify) as live:
            self.live = live
            bound = False
            try:
                async with serve_control_api(
                    live.registry, options.host, options.port, token=options.token
                ) as server:
                    bound = True
                    print("\n".join(_banner(options, live, server.url)), flush=True)
                    self.serving = True
                    with self.waiting:
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(_summaries, live, _SUMMARY_EVERY)
                            await trio.sleep_forever()
                    _say(f"{self.signal}: stopping: closing the control plane and the providers")
            except OSError as exc:
                if bound:
                    raise
                raise _BindError(exc.strerror or str(exc)) from None
            finally:
                self.elapsed = live.elapsed()


def _serve_options(args: argparse.Namespace) -> _ServeOptions:
    """Check everything ``serve`` was given before anything starts.

    Raises:
      _UsageError: the control extra is missing, or an argument is bad.
    """
    if not all(_available(m) for m in ("starlette", "hypercorn", "prometheus_client")):
        raise _UsageError(_SERVE, _CONTROL_HINT)
    if not args.host:
        raise _UsageError(_SERVE, "--host: must not be empty")
    try:
        scenario = _resolve(args.scenario)
    except ScenarioError as exc:
        raise _UsageError(_SERVE, str(exc)) from None
    if args.token_file is not None:
        token = _read_token(args.token_file)
        note = f"read from {args.token_file}"
        shell = f"$(cat {shlex.quote(args.token_file)})"
    else:
        token = secrets.token_urlsafe(24)
        note = f"{token} (generated for this run; --token-file PATH to choose one)"
        shell = token
    return _ServeOptions(
        scenario=scenario,
        seed=args.seed,
        host=args.host,
        port=args.port,
        token=token,
        token_note=note,
        token_shell=shell,
    )


def _serve_command(args: argparse.Namespace) -> int:
    if args.list:
        _list_scenarios(_SERVE, sys.stdout)
        return 0
    run = _Serve(_serve_options(args))
    status = 0
    try:
        trio.run(run.run)
    except _BindError as exc:
        print(f"{_SERVE}: error: {exc}", file=sys.stderr)
        return 1
    except RegistryError as exc:  # a provider failed under a restart policy that escalates
        print(f"{_SERVE}: error: {exc}", file=sys.stderr)
        status = 1
    live = run.live
    how = f" ({run.signal})" if run.signal else ""
    if live is None:
        print(f"stopped{how} before the providers were ready", flush=True)
        return status
    cancelled = live.arrivals - live.traffic.total
    opens = _count(live.breaker_opens, "breaker open")
    crashes = _count(live.crashes, "crash", "crashes")
    print(
        f"stopped after {_clock(run.elapsed)}{how}:"
        f" {_traffic_text(live.traffic, list(live.providers))};"
        f" {opens}, {crashes}, cycle {live.cycle}; {cancelled} in flight cancelled",
        flush=True,
    )
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ciris-actors`` command.

    Args:
      argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
      The exit status: 0 on success (for ``serve``, stopped by Ctrl-C or SIGTERM); 1 when
      ``simulate`` found an invariant violated, or ``serve`` could not bind its address
      or stopped on a provider failure its restart policy escalates; 2 on bad input
      (reported as one line on stderr, without a traceback).
    """
    parser = _Parser(
        prog="ciris-actors", description="Trio-native provider supervision and routing."
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    simulate = commands.add_parser(
        "simulate",
        help="run a fault-injection scenario on virtual time and summarize it",
        description=(
            "Run a fault-injection scenario on trio's virtual clock: the real registry,"
            " actors and routing, simulated providers. Without SCENARIO, an hour of the"
            " seed's LLM set-up under an outage, a flapping local model and a crash loop."
            " Exit status: 0 all invariants held, 1 invariant violations, 2 bad input."
        ),
    )
    simulate.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO",
        help="a scenario .toml file or the name of a bundled scenario (see --list)",
    )
    simulate.add_argument(
        "--seed", type=_seed, metavar="N", help="override the scenario's random seed"
    )
    simulate.add_argument(
        "--json", metavar="FILE", help="write the full report as JSON to FILE ('-': stdout)"
    )
    simulate.add_argument(
        "--plot", metavar="FILE.png", help="write a timeline picture (needs the plot extra)"
    )
    simulate.add_argument("--list", action="store_true", help="list the bundled scenarios and exit")
    serve = commands.add_parser(
        "serve",
        help="run a scenario live, on the real clock, behind the HTTP control plane",
        description=(
            "Run a scenario live: the real registry on the real clock, the scenario's"
            " simulated providers, traffic and faults (the fault schedule starts over when"
            " the scenario's duration is over), and the HTTP control plane to watch and"
            " poke it with curl. Prints breaker, health and crash events and a traffic"
            " summary every 10 s. Ctrl-C or SIGTERM stops it. Needs the control extra."
            " Exit status: 0 stopped, 1 the address could not be bound or a provider failure"
            " escalated, 2 bad input."
        ),
    )
    serve.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO",
        help="a scenario .toml file or the name of a bundled scenario (see --list)",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=8080,
        help="the port to listen on (default 8080; 0 picks a free one)",
    )
    serve.add_argument(
        "--token-file",
        metavar="PATH",
        help="read the bearer token from PATH (default: generate one and print it)",
    )
    serve.add_argument("--seed", type=_seed, metavar="N", help="override the scenario's seed")
    serve.add_argument("--list", action="store_true", help="list the bundled scenarios and exit")
    demo = commands.add_parser(
        "demo", help="fail the primary LLM of the seed set-up and watch requests fail over"
    )
    demo.add_argument("--requests", type=int, default=40, help="requests to send (default 40)")
    demo.add_argument("--fail-at", type=int, default=5, help="request at which openai fails")
    demo.add_argument(
        "--both-at", type=int, default=15, help="request at which anthropic fails too"
    )
    demo.add_argument("--recover-at", type=int, default=25, help="request at which both recover")
    try:
        args = parser.parse_args(argv)
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "serve":
            return _serve_command(args)
        if args.requests < 1:
            demo.error("--requests must be >= 1")
    except _UsageError as error:
        print(f"{error.prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ciris-actors: interrupted", file=sys.stderr)
        return 130
    trio.run(
        _demo,
        args.requests,
        args.fail_at,
        args.both_at,
        args.recover_at,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
