"""``ciris-actors serve``: a scenario run live, on the real clock, behind the HTTP
control plane; its events and a traffic summary printed as they happen, until a signal
stops it."""

from __future__ import annotations

import secrets
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import attrs
import trio

from .. import (
    ActorCrashed,
    ActorFailed,
    ActorRestarted,
    BreakerTransition,
    EventsDropped,
    HealthChanged,
    RegistryError,
)
from .._nursery import unwrap_single_exception
from ..events import FleetDegraded, FleetRestored, FleetVerdict
from ..fleet import FleetStatus
from ..simulation import Scenario, ScenarioError
from ..simulation.live import CycleNotice, FaultNotice, LiveRun, Notice, Traffic, run_live
from ._extras import available
from ._fleet import FleetOptions, fleet_options
from ._render import clock, count, num, span, wrap
from ._scenarios import list_scenarios, resolve_scenario
from ._usage import UsageError

__all__ = ["PROG", "ServeArgs", "run"]

PROG = "ciris-actors serve"
#: The exit status after Ctrl-C, as shells report a process SIGINT ended (128 + 2).
INTERRUPTED = 130
_CONTROL_HINT = "serve needs the control extra: pip install 'ciris-actors[control]'"
#: Seconds between the one-line traffic summaries.
_SUMMARY_EVERY = 10.0


@attrs.frozen
class ServeArgs:
    """What ``serve`` was asked for.

    Attributes:
      scenario: a scenario file or bundled scenario name; ``None`` for the default.
      seed: overrides the scenario's seed.
      host: the address to listen on.
      port: the port to listen on (0: any free one).
      token_file: the file holding the bearer token; ``None`` to generate one.
      list_only: list the bundled scenarios instead of serving.
      fleet: the URL of the fleet store to share breaker verdicts through
        (``redis://`` or ``rediss://``); ``None``: decide alone.
      fleet_node: this process's node id in the fleet (``None``: the link picks one).
      fleet_quorum: distinct nodes whose ordinary opens make an open fleet-wide
        (``None``: 1).
    """

    scenario: str | None = None
    seed: int | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    token_file: str | None = None
    list_only: bool = False
    fleet: str | None = None
    fleet_node: str | None = None
    fleet_quorum: int | None = None


def _read_token(path: str) -> str:
    """The bearer token in the file at *path*, without one trailing newline.

    Raises:
      UsageError: the file cannot be read, is empty, or holds no valid token.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(PROG, f"--token-file {path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(PROG, f"--token-file {path}: not UTF-8 text") from None
    token = text.removesuffix("\n").removesuffix("\r")
    if not token:
        raise UsageError(PROG, f"--token-file {path}: the file is empty")
    from ..control._app import check_token  # the server's own rule (the extra is checked)

    try:
        check_token(token)
    except ValueError:
        raise UsageError(
            PROG,
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
    fleet: FleetOptions | None = None


class _BindError(Exception):
    """The control plane could not listen on the address asked for."""


class _FleetError(Exception):
    """The fleet link refused the arguments it was given (bad input: exit status 2)."""


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


def _say(text: str) -> None:
    stamp = _stamp()
    lines = wrap(text, indent=" " * (len(stamp) + 2), first=f"{stamp}  ")
    print("\n".join(lines), flush=True)


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


def _traffic_text(traffic: Traffic, names: Sequence[str]) -> str:
    outcomes = traffic.outcomes
    return (
        f"{count(traffic.total, 'request')}: {outcomes['succeeded']} ok,"
        f" {outcomes['failed']} failed, {outcomes['rejected']} rejected,"
        f" {outcomes['shed']} shed;"
        f" {_share_text(traffic, names)}"
    )


def _notice_text(notice: Notice, scenario: Scenario) -> str | None:
    """One line for something that happened, or None for what is not worth a line."""
    if isinstance(notice, FleetVerdict):
        how = "read from the store" if notice.lag is None else f"pushed in {_ms(notice.lag)}"
        return f"fleet: {notice.kind} on {notice.name} from node {notice.node} ({how})"
    if isinstance(notice, FleetDegraded):
        return (
            f"fleet: the store is lost ({notice.error}); node {notice.node} goes on alone"
            " and retries"
        )
    if isinstance(notice, FleetRestored):
        return (
            f"fleet: the store is back after {notice.outage:.1f} s; node {notice.node}"
            " re-published its verdicts and re-read the others'"
        )
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
            f" for {span(fault.duration)} (scenario t={num(fault.at)} s)"
        )
    if isinstance(notice, CycleNotice):
        return (
            f"the scenario's {span(scenario.workload.duration)} are over: the fault schedule"
            f" starts over (cycle {notice.cycle})"
        )
    return None  # registrations, resolve misses (counted as rejected requests)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _fleet_line(fleet: FleetOptions, status: FleetStatus | None) -> str:
    assert status is not None  # the registry was opened with the link
    state = (
        "the store answers"
        if status.reachable
        else "the store does not answer: going on alone, retrying"
    )
    return f"fleet: node {status.node} on {fleet.shown}, quorum {status.quorum}; {state}"


def _banner(options: _ServeOptions, live: LiveRun, url: str) -> list[str]:
    scenario = options.scenario
    workload = scenario.workload
    names = ", ".join(live.providers)
    lines = wrap(
        f"{PROG}: scenario {scenario.name} (seed {live.seed}),"
        f" {count(len(live.providers), 'provider')}: {names}",
        indent="  ",
        first="",
    )
    if scenario.description:
        lines += wrap(scenario.description, indent="  ")
    faults = scenario.faults
    if faults:
        first = min(f.at for f in faults)
        schedule = (
            f"{count(len(faults), 'fault')}, the first at t={num(first)} s;"
            f" the schedule repeats every {span(workload.duration)}"
        )
    else:
        schedule = "no faults"
    lines += wrap(
        f"traffic: {workload.rate:g} requests/s, each through registry.{workload.mode}; {schedule}",
        indent="  ",
    )
    if options.fleet is not None:
        status = live.registry.fleet_status()
        lines += wrap(options.fleet.scrub(_fleet_line(options.fleet, status)), "  ", first="")
    lines += [f"control plane: {url}", *wrap(f"token: {options.token_note}", indent="  ", first="")]
    # The curl line is meant to be pasted: split with a shell continuation, not wrapped.
    lines += [
        "try, in another terminal:",
        "  curl \\",
        f'    -H "Authorization: Bearer {options.token_shell}" \\',
        f"    {url}/v1/runtime/services/health",
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
    #: The fleet link as the stop found it (``None`` without a fleet).
    fleet_status: FleetStatus | None = None

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
            fleet = self.options.fleet
            _say(text if fleet is None else fleet.scrub(text))

    async def _serve(self) -> None:
        from ..control import serve_control_api

        options = self.options
        link = None
        if options.fleet is not None:
            try:
                link = options.fleet.link()
            except ValueError as exc:
                raise _FleetError(str(exc)) from None
        async with run_live(
            options.scenario, seed=options.seed, notify=self._notify, fleet=link
        ) as live:
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
                self.fleet_status = live.registry.fleet_status()


def _serve_options(args: ServeArgs) -> _ServeOptions:
    """Check everything ``serve`` was given before anything starts.

    Raises:
      UsageError: the control extra is missing, or an argument is bad.
    """
    if not all(available(m) for m in ("starlette", "hypercorn", "prometheus_client")):
        raise UsageError(PROG, _CONTROL_HINT)
    if not args.host:
        raise UsageError(PROG, "--host: must not be empty")
    try:
        scenario = resolve_scenario(args.scenario)
    except ScenarioError as exc:
        raise UsageError(PROG, str(exc)) from None
    if scenario.fleet is not None:
        # One registry runs live; a [fleet] of them runs only on virtual time.
        raise UsageError(
            PROG,
            f"{scenario.name}: [fleet] runs only in the simulator (ciris-actors simulate"
            f" {scenario.name}); serve runs one registry",
        )
    fleet = fleet_options(PROG, args.fleet, args.fleet_node, args.fleet_quorum)
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
        fleet=fleet,
    )


def run(args: ServeArgs) -> int:
    """Run ``serve`` as *args* say, until a signal stops it.

    Returns:
      The exit status: 130 when stopped by Ctrl-C (SIGINT), 0 by SIGTERM, 1 when the
      address could not be bound or a provider failure escalated, 2 when the fleet link
      refused its arguments.

    Raises:
      UsageError: bad input (a missing extra, a bad scenario, host, token file or
        fleet URL).
    """
    if args.list_only:
        list_scenarios(PROG, sys.stdout)
        return 0
    command = _Serve(_serve_options(args))
    status = 0
    try:
        trio.run(command.run)
    except _BindError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except _FleetError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except RegistryError as exc:  # a provider failed under a restart policy that escalates
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        status = 1
    live = command.live
    how = f" ({command.signal})" if command.signal else ""
    if live is None:
        print(f"stopped{how} before the providers were ready", flush=True)
    else:
        if command.fleet_status is not None:
            print("\n".join(wrap(_fleet_totals(command.fleet_status), "  ", first="")), flush=True)
        print("\n".join(wrap(_final_line(command, live, how), indent="  ", first="")), flush=True)
    if command.signal == "SIGINT":
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return INTERRUPTED
    return status


def _fleet_totals(status: FleetStatus) -> str:
    """What this node exchanged with its fleet, in words."""
    return (
        f"fleet node {status.node}: {count(status.verdicts_sent, 'verdict')} sent,"
        f" {status.verdicts_received} received, {count(status.outages, 'store outage')}"
    )


def _final_line(command: _Serve, live: LiveRun, how: str) -> str:
    """What the run came to, in words: the traffic, what happened, and the requests cut
    short by the stop."""
    waiting = live.arrivals - live.traffic.total
    if live.traffic.total:
        traffic = _traffic_text(live.traffic, list(live.providers))
    else:
        traffic = "no request had finished yet"
    events = (
        f"{count(live.breaker_opens, 'breaker open')},"
        f" {count(live.crashes, 'crash', 'crashes')}, cycle {live.cycle}"
    )
    cut = (
        f"{count(waiting, 'request')} still waiting for an answer"
        f" {'was' if waiting == 1 else 'were'} cancelled"
        if waiting
        else "nothing was left waiting"
    )
    return f"stopped after {clock(command.elapsed)}{how}: {traffic}; {events}; {cut}"
