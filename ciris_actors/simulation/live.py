"""The live engine: a scenario's simulated providers and workload on the real clock.

:func:`run_live` registers the scenario's providers in a real registry, as the simulation
does, and sends its workload through ``call`` or ``lease`` in real time while its faults
happen at their scheduled times. When the scenario's duration is over, the schedule
starts again from t = 0 (a new *cycle*), so a live registry always has something going
on. ``ciris-actors serve`` runs it behind the HTTP control plane::

    async with run_live(load_scenario("simulations/primary-outage.toml")) as live:
        print(live.registry.health_status())
        await trio.sleep(60)
    print(live.traffic.outcomes)

There is no report and no oracle: watch the registry (its events, its control plane, its
metrics) instead. :class:`LiveRun` keeps running totals.
"""

from __future__ import annotations

import collections
import math
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import attrs
import trio

from .._nursery import unwrap_single_exception
from .._types import CircuitState
from ..events import ActorCrashed, BreakerTransition, RegistryEvent
from ..fleet import FleetLink
from ..outcomes import Classifier
from ..registry import Registry
from .faults import Fault
from .model import ProviderSpec, RequestMix, Scenario, ScenarioError
from .providers import SimulatedError, SimulatedProvider
from .traffic import arrivals, is_long, open_scenario, send_request

__all__ = [
    "CycleNotice",
    "FaultNotice",
    "LiveProvider",
    "LiveRun",
    "Notice",
    "Traffic",
    "run_live",
]

#: Events held for the engine's subscriber before the oldest are dropped.
_EVENT_BUFFER = 10_000


class LiveProvider(SimulatedProvider):
    """A :class:`SimulatedProvider` whose crash schedule follows the cycles of a live run.

    ``SimulatedProvider.run`` waits forever once the last crash instant has passed; here
    the wait ends when a new cycle starts, and the next crash is looked up again.
    """

    def __init__(self, spec: ProviderSpec, faults: Sequence[Fault], seed: int) -> None:
        super().__init__(spec, faults, seed)
        # Start-up happens at scenario time 0, as in the simulation.
        self.origin = trio.current_time()
        self._new_cycle = trio.Event()

    def start_cycle(self, origin: float) -> None:
        """Start the fault schedule over: scenario time 0 is *origin* (trio time)."""
        self.origin = origin
        self._new_cycle.set()
        self._new_cycle = trio.Event()

    async def run(self) -> None:
        """Raise at the next crash instant of the current cycle's schedule."""
        while True:
            new_cycle = self._new_cycle
            at = self.next_crash(self.now())
            with trio.move_on_at(math.inf if at is None else self.origin + at) as crash:
                await new_cycle.wait()
            if crash.cancelled_caught:
                raise SimulatedError(f"{self.name}: simulated crash")


@attrs.define
class Traffic:
    """Requests by outcome, and how many requests each provider served.

    Attributes:
      outcomes: finished requests by outcome (``succeeded``, ``failed``, ``rejected``)
        and requests shed at the concurrency limit (``shed``).
      served: succeeded requests by the provider that served them.
    """

    outcomes: collections.Counter[str] = attrs.field(factory=collections.Counter)
    served: collections.Counter[str] = attrs.field(factory=collections.Counter)

    @property
    def total(self) -> int:
        """Requests that finished or were shed."""
        return self.outcomes.total()

    def record(self, outcome: str, served: str | None) -> None:
        """Count one request that ended as *outcome*, served by *served* (if any)."""
        self.outcomes[outcome] += 1
        if served is not None:
            self.served[served] += 1

    def copy(self) -> Traffic:
        """A snapshot of the counts as they are now."""
        return Traffic(collections.Counter(self.outcomes), collections.Counter(self.served))

    def since(self, earlier: Traffic) -> Traffic:
        """The requests counted after the snapshot *earlier* was taken."""
        return Traffic(self.outcomes - earlier.outcomes, self.served - earlier.served)


@attrs.frozen
class FaultNotice:
    """A scheduled fault began or ended.

    Attributes:
      index: the fault's position in the scenario's ``faults``, from 0.
      fault: the fault.
      began: ``True`` when it began, ``False`` when it ended (at its end, or when the
        cycle ended first).
      cycle: the cycle it happened in, from 1.
    """

    index: int
    fault: Fault
    began: bool
    cycle: int


@attrs.frozen
class CycleNotice:
    """The scenario's duration is over and its schedule starts again from t = 0.

    Attributes:
      cycle: the number of the cycle starting now (2, 3, ...).
    """

    cycle: int


#: What :func:`run_live` reports as it happens: the registry's events, and its own.
Notice = RegistryEvent | FaultNotice | CycleNotice


@attrs.define(eq=False)
class LiveRun:
    """A scenario running live, from :func:`run_live`.

    Attributes:
      scenario: what is running.
      seed: the effective seed.
      registry: the live registry.
      providers: the simulated providers by name, in the scenario's order.
      started: when the traffic started (``trio.current_time()``).
      origin: when the current cycle started: its scenario time 0.
      cycle: the current cycle, from 1.
      arrivals: requests that arrived so far (sent or shed).
      traffic: every request that finished or was shed so far.
      in_flight: requests sent and not finished.
      breaker_opens: breaker transitions to OPEN so far (forced ones included).
      crashes: provider crashes so far.
    """

    scenario: Scenario
    seed: int
    registry: Registry
    providers: dict[str, LiveProvider]
    started: float
    origin: float
    cycle: int = 1
    arrivals: int = 0
    traffic: Traffic = attrs.field(factory=Traffic)
    in_flight: int = 0
    breaker_opens: int = 0
    crashes: int = 0
    #: The registry's classifier (see :func:`~.traffic.scenario_classifier`).
    classifier: Classifier | None = None

    def elapsed(self) -> float:
        """Seconds since the traffic started."""
        return trio.current_time() - self.started

    def scenario_time(self) -> float:
        """Seconds into the current cycle."""
        return trio.current_time() - self.origin

    def _start_cycle(self, origin: float) -> None:
        self.origin = origin
        for provider in self.providers.values():
            provider.start_cycle(origin)

    async def _watch(
        self,
        events: trio.abc.ReceiveChannel[RegistryEvent],
        notify: Callable[[Notice], None],
    ) -> None:
        async for event in events:
            if event.time < self.started:
                continue  # start-up: every provider registering and passing its first check
            if isinstance(event, BreakerTransition) and event.new is CircuitState.OPEN:
                self.breaker_opens += 1
            elif isinstance(event, ActorCrashed):
                self.crashes += 1
            notify(event)

    async def _cycles(self, notify: Callable[[Notice], None], requests: trio.Nursery) -> None:
        duration = self.scenario.workload.duration
        rng = random.Random(f"{self.seed}:workload")
        while True:
            async with trio.open_nursery() as cycle:
                cycle.start_soon(self._announce_faults, notify)
                cycle.start_soon(self._send, rng, requests)
            await trio.sleep_until(self.origin + duration)
            self._start_cycle(self.origin + duration)
            self.cycle += 1
            notify(CycleNotice(self.cycle))

    async def _announce_faults(self, notify: Callable[[Notice], None]) -> None:
        duration = self.scenario.workload.duration
        changes = sorted(
            (at, began, index)
            for index, fault in enumerate(self.scenario.faults)
            if fault.at < duration
            for at, began in ((fault.at, True), (min(fault.end, duration), False))
        )
        for at, began, index in changes:
            await trio.sleep_until(self.origin + at)
            fault = self.scenario.faults[index]
            if not began and fault.reset_at_end:
                # As in a simulation: the operator resets the provider when it ends.
                self.registry.reset_circuit_breaker(fault.provider)
            notify(FaultNotice(index, fault, began, self.cycle))

    async def _send(self, rng: random.Random, requests: trio.Nursery) -> None:
        workload = self.scenario.workload
        for t, mix_index in arrivals(workload, rng):
            await trio.sleep_until(self.origin + t)
            # The request's key (its error draws) numbers the arrivals since the start.
            key = self.arrivals
            self.arrivals += 1
            if self.in_flight >= workload.concurrency:
                self.traffic.record("shed", None)
                continue
            self.in_flight += 1
            requests.start_soon(self._request, workload.mix[mix_index], key)

    async def _request(self, mix: RequestMix, key: int) -> None:
        workload = self.scenario.workload
        try:
            outcome, served = await send_request(
                self.registry,
                mix,
                workload.mode,
                key,
                [],
                long=is_long(self.seed, key, workload.long_share),
                classifier=self.classifier,
                hedge_after=workload.hedge_after,
            )
        finally:
            self.in_flight -= 1
        self.traffic.record(outcome, served)


@asynccontextmanager
async def run_live(
    scenario: Scenario,
    *,
    seed: int | None = None,
    notify: Callable[[Notice], None] | None = None,
    ready_timeout: float = 60.0,
    fleet: FleetLink | None = None,
) -> AsyncIterator[LiveRun]:
    """Run *scenario* live, on the current trio run's clock, for the duration of the block.

    The block starts when the providers are ready (or after *ready_timeout* seconds) and
    the traffic has started. Leaving it cancels the requests in flight, then closes the
    registry and every provider.

    Args:
      scenario: the providers, workload and faults.
      seed: overrides the scenario's seed.
      notify: called, in a task of the run, with each registry event after the start,
        each fault beginning or ending, and each new cycle. It must not block.
      ready_timeout: seconds to wait for the providers to become ready.
      fleet: share breaker verdicts with registries in other processes through this
        link (``open_registry(fleet=...)``); the scenario's providers are registered
        under their names, so another process running the same scenario matches them.

    Yields:
      The :class:`LiveRun`, whose counts grow as the traffic flows.

    Raises:
      ScenarioError: *scenario* has a ``[fleet]``, which runs only on virtual time.
    """
    if scenario.fleet is not None:
        raise ScenarioError(
            f"{scenario.name}: [fleet] runs only in the simulator (run_scenario); a live"
            " run has one registry"
        )
    effective = scenario.seed if seed is None else seed
    report: Callable[[Notice], None] = notify if notify is not None else _ignore
    async with open_scenario(
        scenario,
        effective,
        max_events=_EVENT_BUFFER,
        ready_timeout=ready_timeout,
        factory=LiveProvider,
        fleet=fleet,
    ) as setup:
        now = trio.current_time()
        live = LiveRun(
            scenario=scenario,
            seed=effective,
            registry=setup.registry,
            providers=_live_providers(setup.providers),
            started=now,
            origin=now,
            classifier=setup.classifier,
        )
        live._start_cycle(now)
        with unwrap_single_exception():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(live._watch, setup.events, report)
                nursery.start_soon(live._cycles, report, nursery)
                try:
                    yield live
                finally:
                    nursery.cancel_scope.cancel()


def _live_providers(providers: dict[str, SimulatedProvider]) -> dict[str, LiveProvider]:
    """*providers*, which the factory made :class:`LiveProvider`, typed as such."""
    live: dict[str, LiveProvider] = {}
    for name, provider in providers.items():
        assert isinstance(provider, LiveProvider)
        live[name] = provider
    return live


def _ignore(notice: Notice) -> None:
    """The default of :func:`run_live`'s *notify*."""
