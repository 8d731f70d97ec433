"""The two simulation engines, sharing everything but how requests travel.

``events`` (the default): one driver task (:class:`~.driver.EventDriver`) carries every
request through the real registry synchronously: ``Registry.admit`` (the resolve with
its real breakers, half-open permits and round-robin cursors), the invariant checker,
the simulated provider's decision, then ``Registry.settle`` (the outcome recording that
leases use, which classifies an error as the registry's classifier says) when the
provider's answer or the call's deadline comes, and in ``call`` mode failover as
``call``'s loop does it: on to the next provider after a failure, a rate limit or a
disable, on to providers with the capabilities a reroute requires, and no further after
an ignored error. ``tasks``: a trio task per request through ``Registry.call`` or
``Registry.lease``, exactly as an application would. Both run the registry's actors as
tasks on the same virtual clock, so timers, health checks, crashes, restarts, slow
starts and an operator's resets behave the same.
"""

from __future__ import annotations

import contextlib
import heapq
import random
from collections.abc import Iterator
from typing import Any, Literal

import attrs
import trio
import trio.testing

from .._errors import RetryBudgetExhausted
from .._lease import Outcome, Ticket
from ..events import (
    ActorCrashed,
    ActorFailed,
    ActorRestarted,
    BreakerTransition,
    EventsDropped,
    FleetDegraded,
    FleetRestored,
    HealthChanged,
    RegistryEvent,
)
from ..fleet import FleetStatus, MemoryFleet
from ..outcomes import Classifier, ErrorKind, classify
from ..registry import Registry
from .analysis import RequestLog, build_report
from .driver import EventDriver
from .errors import SimulatedError
from .fleet import JitteredLink, fleet_stats, run_fleet_faults
from .invariants import InvariantChecker
from .model import RequestMix, Scenario, ScenarioError
from .providers import SimulatedProvider
from .report import Report
from .traffic import ProgressCallback, arrivals, is_long, open_scenario, send_request

__all__ = ["ENGINES", "Engine", "EventsRun", "Node", "Run", "TasksRun", "check_engine"]

#: How a run carries its requests (see the module docstring).
Engine = Literal["events", "tasks"]
ENGINES: tuple[Engine, ...] = ("events", "tasks")

#: At one instant the events engine handles answers (which may free a concurrency slot)
#: before arrivals.
_ANSWER = 0
_ARRIVAL = 1

#: The answer of an attempt whose deadline came first.
_TIMED_OUT = SimulatedError("the call's deadline passed")

#: The events a report is built from.
RECORDED_EVENTS = (BreakerTransition, HealthChanged, ActorCrashed, ActorRestarted, ActorFailed)
#: The events a fleet's report adds (:class:`~.report.FleetNodeStats`).
FLEET_EVENTS = (FleetDegraded, FleetRestored)

#: Error classes after which ``call`` stops and raises the error (as ``_lease._FINAL``).
_FINAL = frozenset({ErrorKind.IGNORE, ErrorKind.SUCCESS})


@attrs.define(eq=False)
class Node:
    """One registry of a run: the only one without a fleet, one per node with one.

    Attributes:
      name: the node's id (``None`` without a fleet).
      registry: its registry.
      providers: its simulated providers by name, in the scenario's order.
      checker: the invariant checker of its routing decisions.
      events: the registry events it recorded, in order.
      outcomes: per provider, its calls by outcome (read at the end of the traffic).
      routing: ``Registry.routing_stats()`` at the end of the traffic.
      status: ``Registry.fleet_status()`` at the end of the traffic (``None``: no fleet).
    """

    name: str | None
    registry: Registry
    providers: dict[str, SimulatedProvider]
    checker: InvariantChecker
    events: list[RegistryEvent] = attrs.field(factory=list)
    outcomes: dict[str, dict[str, int]] = attrs.field(factory=dict)
    routing: dict[str, Any] = attrs.field(factory=dict)
    status: FleetStatus | None = None


@attrs.define
class Run:
    """One run of a scenario: the setup, event recording and report both engines share.

    A fleet scenario (``[fleet]``) runs twice: once with its nodes sharing one
    ``MemoryFleet`` store, then once more with every node alone (*shared* false), for
    the comparison its report gives (:class:`~.report.FleetStats`).
    """

    scenario: Scenario
    seed: int
    progress: ProgressCallback | None
    log: RequestLog = attrs.field(factory=RequestLog)
    dropped_events: int = 0
    origin: float = 0.0
    #: The registry's classifier (set when the registry opens).
    classifier: Classifier | None = None
    #: With a fleet: whether the nodes share the store (false: each node alone).
    shared: bool = True
    #: The run's registries, one per node (one without a fleet).
    nodes: list[Node] = attrs.field(factory=list)

    @property
    def events(self) -> list[RegistryEvent]:
        """Every node's recorded events, in time order."""
        if len(self.nodes) == 1:
            return self.nodes[0].events
        return list(heapq.merge(*(node.events for node in self.nodes), key=_event_time))

    async def run(self) -> Report:
        """Open the scenario's registries, run its traffic, and build the report."""
        fleet = self.scenario.fleet
        if fleet is None or not self.shared:
            return await self.run_pass()
        progress = self.progress
        if progress is not None:
            self.progress = lambda done, total: progress(done / 2, total)
        report = await self.run_pass()
        alone = attrs.evolve(self, log=RequestLog(), dropped_events=0, shared=False, nodes=[])
        if progress is not None:
            alone.progress = lambda done, total: progress((total + done) / 2, total)
        alone_report = await alone.run_pass()
        return attrs.evolve(report, fleet=fleet_stats(fleet, self, report, alone, alone_report))

    async def run_pass(self) -> Report:
        """One run of the traffic: with every node of a fleet sharing the store if
        :attr:`shared`, else each alone."""
        scenario = self.scenario
        fleet = scenario.fleet
        names: tuple[str | None, ...] = (None,) if fleet is None else fleet.names
        hub = None
        if fleet is not None and self.shared:
            hub = MemoryFleet(fleet.quorum, fleet.quorum_window, latency=fleet.latency)
        types = RECORDED_EVENTS if fleet is None else RECORDED_EVENTS + FLEET_EVENTS
        setups = []
        async with contextlib.AsyncExitStack() as stack:
            for name in names:
                setup = await stack.enter_async_context(
                    open_scenario(
                        scenario,
                        self.seed,
                        max_events=10_000_000,
                        event_types=types,
                        node=name,
                        fleet=(
                            None
                            if hub is None or name is None
                            else JitteredLink(hub.node(name), self.seed)
                        ),
                    )
                )
                setups.append((name, setup))
            self.classifier = setups[0][1].classifier
            self.origin = trio.current_time()
            for name, setup in setups:
                for provider in setup.providers.values():
                    provider.origin = self.origin
                checker = InvariantChecker(
                    setup.registry,
                    origin=self.origin,
                    spillover=scenario.overprovisioning_factor is not None,
                )
                self.nodes.append(Node(name, setup.registry, setup.providers, checker))
            async with trio.open_nursery() as nursery:
                for node, (_, setup) in zip(self.nodes, setups, strict=True):
                    nursery.start_soon(self._record_events, setup.events, node.events)
                    nursery.start_soon(self._operate, node)
                if hub is not None and fleet is not None:
                    nursery.start_soon(run_fleet_faults, hub, fleet, self.origin)
                await self.traffic()
                # Let the recorders take every event still buffered before they are
                # cancelled.
                await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()
            for node in self.nodes:
                node.outcomes = {
                    name: dict(node.registry.view(name).outcomes) for name in node.providers
                }
                node.routing = node.registry.routing_stats()
                node.status = node.registry.fleet_status()
        return self._report()

    def _report(self) -> Report:
        nodes = self.nodes
        first = nodes[0]
        violations = sorted(
            (v for node in nodes for v in node.checker.violations), key=lambda v: v.time
        )
        return build_report(
            scenario=self.scenario,
            seed=self.seed,
            log=self.log,
            events=self.events,
            origin=self.origin,
            providers=first.providers,
            violations=violations if len(nodes) > 1 else first.checker.violations,
            checks=sum(node.checker.checks for node in nodes),
            dropped_events=self.dropped_events,
            outcomes=_summed_outcomes(nodes),
            routing=first.routing if len(nodes) == 1 else _summed_routing(nodes),
            nodes=None if len(nodes) == 1 else [(n.events, n.providers) for n in nodes],
        )

    async def traffic(self) -> None:
        """Send the workload's requests; return when every one has ended."""
        raise NotImplementedError

    def node_of(self, slot: int) -> Node:
        """The node request *slot* goes to: round-robin over the nodes, by arrival."""
        nodes = self.nodes
        return nodes[slot % len(nodes)] if len(nodes) > 1 else nodes[0]

    async def _operate(self, node: Node) -> None:
        """Do what an operator does during the run: reset a provider's breaker at the end
        of each fault that says so (a revoked key replaced, the provider re-enabled)."""
        for end, name in sorted(
            (fault.end, fault.provider)
            for fault in self.scenario.faults
            if fault.reset_at_end and fault.strikes(node.name)
        ):
            await trio.sleep_until(self.origin + end)
            node.registry.reset_circuit_breaker(name)

    async def _record_events(
        self, events: trio.abc.ReceiveChannel[RegistryEvent], into: list[RegistryEvent]
    ) -> None:
        async for event in events:
            if isinstance(event, EventsDropped):
                self.dropped_events += event.count
            else:
                into.append(event)

    def _report_progress(self, t: float, next_report: float) -> float:
        """Call the progress callback if scenario time *t* reached *next_report*; return
        when to call it next."""
        if self.progress is None or t < next_report:
            return next_report
        workload = self.scenario.workload
        self.progress(t, workload.duration)
        return t + workload.duration / 100


def _event_time(event: RegistryEvent) -> float:
    return event.time


def _summed_outcomes(nodes: list[Node]) -> dict[str, dict[str, int]]:
    """Per provider, its calls by outcome over every node."""
    if len(nodes) == 1:
        return nodes[0].outcomes
    total: dict[str, dict[str, int]] = {}
    for node in nodes:
        for name, counts in node.outcomes.items():
            into = total.setdefault(name, {})
            for outcome, n in counts.items():
                into[outcome] = into.get(outcome, 0) + n
    return total


def _summed_routing(nodes: list[Node]) -> dict[str, Any]:
    """``routing_stats()`` summed over every node."""
    spilled: dict[str, int] = {}
    total: dict[str, Any] = {"retries_refused": 0, "hedges_started": 0, "hedges_won": 0}
    for node in nodes:
        for kind, n in node.routing["spilled"].items():
            spilled[kind] = spilled.get(kind, 0) + n
        for key in total:
            total[key] += node.routing[key]
    total["spilled"] = spilled
    return total


@attrs.define
class TasksRun(Run):
    """A trio task per request, through ``Registry.call`` or ``Registry.lease``."""

    in_flight: int = 0

    async def traffic(self) -> None:
        workload = self.scenario.workload
        rng = random.Random(f"{self.seed}:workload")
        next_report = 0.0
        async with trio.open_nursery() as requests:
            for t, mix_index in arrivals(workload, rng):
                await trio.sleep_until(self.origin + t)
                next_report = self._report_progress(t, next_report)
                slot = self.log.add(t, mix_index)
                if self.in_flight >= workload.concurrency:
                    self.log.finish(slot, "shed", 0.0, None, ())
                    continue
                self.in_flight += 1
                requests.start_soon(
                    self._request, self.node_of(slot), slot, workload.mix[mix_index]
                )
            if self.progress is not None:
                self.progress(workload.duration, workload.duration)

    async def _request(self, node: Node, slot: int, mix: RequestMix) -> None:
        start = trio.current_time()
        tried: list[str] = []
        workload = self.scenario.workload
        try:
            outcome, served = await send_request(
                node.registry,
                mix,
                workload.mode,
                slot,
                tried,
                node.checker,
                long=is_long(self.seed, slot, workload.long_share),
                classifier=self.classifier,
                hedge_after=workload.hedge_after,
            )
        finally:
            self.in_flight -= 1
        self.log.finish(slot, outcome, trio.current_time() - start, served, tuple(tried))


@attrs.define(slots=True, eq=False)
class _Request:
    """One request the events engine is carrying."""

    slot: int
    mix: RequestMix
    #: The capabilities a provider needs: the mix entry's, and those reroutes added.
    required: frozenset[str]
    start: float
    #: The node (registry) it goes through.
    node: Node
    long: bool = False
    tried: list[str] = attrs.field(factory=list)


@attrs.define
class EventsRun(Run):
    """Every request carried synchronously by one driver task (see the module docstring)."""

    async def traffic(self) -> None:
        driver = EventDriver(trio.lowlevel.current_clock())
        _Carrier(self, driver).start()
        await driver.run()


@attrs.define
class _Carrier:
    """Carries an :class:`EventsRun`'s requests: each step is one of the driver's events."""

    run: EventsRun
    driver: EventDriver
    in_flight: int = 0
    next_report: float = 0.0
    arrivals: Iterator[tuple[float, int]] = attrs.field(init=False)
    mixes: list[tuple[RequestMix, frozenset[str]]] = attrs.field(init=False)
    failover: bool = attrs.field(init=False)
    long_share: float = attrs.field(init=False)
    #: Whether the registry has a retry budget, which each admission then consults.
    budgeted: bool = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        workload = self.run.scenario.workload
        self.arrivals = arrivals(workload, random.Random(f"{self.run.seed}:workload"))
        self.mixes = [(mix, frozenset(mix.required_capabilities)) for mix in workload.mix]
        self.failover = workload.mode == "call"
        self.long_share = workload.long_share
        self.budgeted = self.run.scenario.retry_budget is not None

    def start(self) -> None:
        """Schedule the first arrival."""
        self._next_arrival()

    def _next_arrival(self) -> None:
        following = next(self.arrivals, None)
        if following is not None:
            self.driver.schedule(
                self.run.origin + following[0], self._arrive, following, rank=_ARRIVAL
            )
        elif self.run.progress is not None:
            duration = self.run.scenario.workload.duration
            self.run.progress(duration, duration)

    def _arrive(self, arrival: tuple[float, int]) -> None:
        """A request arrives: log it, then shed it or send it."""
        t, mix_index = arrival
        run = self.run
        self.next_report = run._report_progress(t, self.next_report)
        slot = run.log.add(t, mix_index)
        if self.in_flight >= run.scenario.workload.concurrency:
            run.log.finish(slot, "shed", 0.0, None, ())
        else:
            self.in_flight += 1
            mix, required = self.mixes[mix_index]
            request = _Request(slot, mix, required, self.driver.now, run.node_of(slot))
            if self.long_share:
                request.long = is_long(run.seed, slot, self.long_share)
            self._attempt(request)
        self._next_arrival()

    def _attempt(self, request: _Request) -> None:
        """Route *request* to the next provider, or end it when none is left."""
        mix = request.mix
        tried = request.tried
        # Nothing tried yet: admit's default exclude, so it has no names to look up.
        exclude = tried if tried else ()
        node = request.node
        try:
            ticket = node.registry.admit(
                mix.handler,
                mix.service_type,
                request.required,
                exclude=exclude,
                retry=bool(tried) if self.budgeted else None,
            )
        except RetryBudgetExhausted:
            # As ``call`` ends when the budget refuses a retry.
            self._finish(request, "failed", None)
            return
        if ticket is None:
            # As ``call``/``lease`` say: rejected when nothing was ever available.
            self._finish(request, "failed" if tried else "rejected", None)
            return
        node.checker.on_route(ticket.name, mix.handler, mix.service_type, request.required, tried)
        tried.append(ticket.name)
        provider: SimulatedProvider = ticket.instance
        now = self.driver.now
        latency, error = provider.answer(request.slot, now - self.run.origin, request.long)
        done = now + latency
        if done >= ticket.deadline:
            # The lease's deadline fires first (or with the answer): a failure then.
            self.driver.schedule(
                ticket.deadline, self._answer, (request, ticket, _TIMED_OUT), rank=_ANSWER
            )
        else:
            self.driver.schedule(done, self._answer, (request, ticket, error), rank=_ANSWER)

    def _answer(self, answer: tuple[_Request, Ticket, SimulatedError | None]) -> None:
        """The provider answered (or the call's deadline came): settle, then finish the
        request or, in ``call`` mode, go on as ``call`` would after that error's class."""
        request, ticket, error = answer
        registry = request.node.registry
        if error is None:
            registry.settle(ticket, Outcome.SUCCESS)
            self._finish(request, "succeeded", ticket.name)
            return
        if error is _TIMED_OUT or error.status_code is None:
            # The deadline, or a failure with no HTTP answer, which every classifier the
            # simulator gives a registry calls a failure: no need to ask one.
            registry.settle(ticket, Outcome.FAILURE)
            kind = ErrorKind.FAILURE
        else:
            registry.settle(ticket, Outcome.FAILURE, error=error)
            # The registry's classifier is pure: asked again, it gives the class the
            # registry just recorded, which says how ``call`` goes on.
            verdict = classify(error, self.run.classifier)
            kind = verdict.kind
            if kind is ErrorKind.REROUTE:
                request.required = request.required | verdict.require
        if self.failover and kind not in _FINAL:
            self._attempt(request)
        else:
            self._finish(request, "failed", None)

    def _finish(self, request: _Request, outcome: str, served: str | None) -> None:
        self.in_flight -= 1
        latency = self.driver.now - request.start
        self.run.log.finish(request.slot, outcome, latency, served, tuple(request.tried))


def check_engine(engine: str, scenario: Scenario) -> None:
    """Check that *engine* can carry *scenario*: the ``events`` engine does not carry
    hedged calls (a feature of ``call``'s own loop, which its requests do not go through).

    Raises:
      ScenarioError: one line naming what needs the ``tasks`` engine.
    """
    needs = scenario.needs_tasks_engine()
    if engine == "events" and needs is not None:
        raise ScenarioError(f"{scenario.name}: {needs} needs --engine tasks")


def engine_run(
    engine: Engine, scenario: Scenario, seed: int, progress: ProgressCallback | None
) -> Run:
    """The run of *scenario* by *engine*.

    Raises:
      ValueError: *engine* is not one of :data:`ENGINES`.
      ScenarioError: *engine* is ``events`` and *scenario* has hedged calls, which only
        the ``tasks`` engine carries (:func:`check_engine`).
    """
    check_engine(engine, scenario)
    if engine == "events":
        return EventsRun(scenario, seed, progress)
    if engine == "tasks":
        return TasksRun(scenario, seed, progress)
    raise ValueError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
