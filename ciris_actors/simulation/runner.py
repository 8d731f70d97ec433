"""The simulation runner: the real registry, real actors and real ``call``/``lease``
on trio's virtual clock, driven by a scenario's workload and faults.

Nothing in the registry is replaced by a double: only the providers are simulated.
Same scenario and seed give the same report, byte for byte.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager

import attrs
import trio
import trio.testing

from .._errors import NoServiceAvailable
from ..events import (
    ActorCrashed,
    ActorFailed,
    ActorRestarted,
    BreakerTransition,
    EventsDropped,
    EventSubscription,
    HealthChanged,
    RegistryEvent,
)
from ..registry import Registry, open_registry
from .analysis import RequestLog, build_report
from .faults import Fault
from .invariants import InvariantChecker
from .model import ProviderSpec, RequestMix, Scenario, Workload
from .providers import SimulatedProvider
from .report import Report

__all__ = ["ProgressCallback", "run_scenario", "simulate"]

#: ``progress(simulated_seconds_done, simulated_seconds_total)``.
ProgressCallback = Callable[[float, float], None]

#: How long the runner waits for providers to become ready before traffic starts.
_READY_TIMEOUT = 600.0


def run_scenario(
    scenario: Scenario,
    *,
    seed: int | None = None,
    progress: ProgressCallback | None = None,
) -> Report:
    """Run *scenario* on a fresh virtual clock and return its report.

    Args:
      scenario: what to simulate.
      seed: overrides the scenario's seed.
      progress: called as simulated time advances (about a hundred times a run).

    This starts its own ``trio.run``; from inside a trio run on a ``MockClock`` (a
    pytest-trio test with ``autojump_clock``), use :func:`simulate`.
    """
    effective = scenario.seed if seed is None else seed
    _seed_trio_scheduler(effective)
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(simulate, scenario, effective, progress, clock=clock)


def _seed_trio_scheduler(seed: int) -> None:
    """Make trio's task scheduling order reproducible for this run.

    trio shuffles each batch of runnable tasks with a module-level random generator (to
    keep code from depending on scheduling order). Seeding it makes the order, and so
    the whole run, a function of the seed. This is the one place the simulation reaches
    into a private trio name; if it disappears, runs stay correct but may stop being
    byte-identical, which the determinism test would catch.
    """
    scheduler_random = getattr(getattr(trio, "_core", None), "_run", None)
    generator = getattr(scheduler_random, "_r", None)
    if isinstance(generator, random.Random):
        generator.seed(seed)


async def simulate(
    scenario: Scenario,
    seed: int | None = None,
    progress: ProgressCallback | None = None,
) -> Report:
    """Run *scenario* inside the current trio run, which must use a ``MockClock``.

    Raises:
      RuntimeError: the current clock is not an autojumping ``trio.testing.MockClock``.
    """
    clock = trio.lowlevel.current_clock()
    if not isinstance(clock, trio.testing.MockClock):
        raise RuntimeError("simulate() needs a trio.testing.MockClock as the run's clock")
    if clock.autojump_threshold == math.inf:
        # Virtual time would never move: the run would wait forever.
        raise RuntimeError(
            "simulate() needs an autojumping MockClock (autojump_threshold=0, the"
            " autojump_clock fixture), not one that only moves when jumped by hand"
        )
    effective = scenario.seed if seed is None else seed
    return await _Run(scenario, effective, progress).run()


# -- pieces the simulation and the live engine (live.py) share ----------------------------

#: Builds one provider from its spec, its faults and the run's seed.
ProviderFactory = Callable[[ProviderSpec, Sequence[Fault], int], SimulatedProvider]


@attrs.frozen
class ScenarioSetup:
    """A registry with a scenario's providers registered, from :func:`open_scenario`.

    Attributes:
      registry: the open registry.
      providers: the simulated providers by name, in the scenario's order.
      events: a subscription to the registry's events, opened before any registration.
    """

    registry: Registry
    providers: dict[str, SimulatedProvider]
    events: EventSubscription


@asynccontextmanager
async def open_scenario(
    scenario: Scenario,
    seed: int,
    *,
    max_events: int,
    ready_timeout: float = _READY_TIMEOUT,
    factory: ProviderFactory = SimulatedProvider,
) -> AsyncIterator[ScenarioSetup]:
    """Open a registry configured as *scenario* says, with its providers registered.

    The block starts once every service type has a ready provider (or *ready_timeout*
    seconds have passed); leaving it closes the registry and every provider.

    Args:
      scenario: the registry settings and the providers to register.
      seed: seeds the providers' random streams and the restart back-off jitter.
      max_events: the buffer of the event subscription (see :meth:`Registry.events`).
      ready_timeout: how long to wait for the providers to become ready.
      factory: builds each provider (default :class:`SimulatedProvider`).

    Yields:
      The registry, the providers and the event subscription.
    """
    providers = {
        spec.name: factory(spec, [f for f in scenario.faults if f.provider == spec.name], seed)
        for spec in scenario.providers
    }
    async with (
        open_registry(
            health_check_interval=scenario.health_check_interval,
            restart_policy=scenario.restart_policy,
            default_breaker=scenario.default_breaker,
            seed=seed,
        ) as registry,
        registry.events(max_buffer=max_events) as events,
    ):
        for spec in scenario.providers:
            registry.register(
                spec.handler,
                spec.service_type,
                providers[spec.name],
                spec.priority,
                capabilities=spec.capabilities,
                circuit_breaker_config=spec.breaker,
                priority_group=spec.group,
                strategy=spec.strategy,
                name=spec.name,
            )
        types = sorted({spec.service_type for spec in scenario.providers})
        await registry.wait_ready(ready_timeout, types)
        yield ScenarioSetup(registry=registry, providers=providers, events=events)


def arrivals(workload: Workload, rng: random.Random) -> Iterator[tuple[float, int]]:
    """The workload's arrivals before its duration: ``(scenario time, mix index)``.

    Each arrival draws its time, then its kind of request, from *rng*.
    """
    weights = list(itertools.accumulate(m.weight for m in workload.mix))
    t = 0.0
    for index in itertools.count():
        if workload.arrival == "poisson":
            t += rng.expovariate(workload.rate)
        else:
            t = index / workload.rate
        if t >= workload.duration:
            return
        choice = rng.random() * weights[-1]
        yield t, bisect.bisect_right(weights, choice)


async def send_request(
    registry: Registry,
    mix: RequestMix,
    mode: str,
    request: object,
    tried: list[str],
    checker: InvariantChecker | None = None,
) -> tuple[str, str | None]:
    """Send one request of kind *mix* through *registry*, as the workload's *mode* says.

    Args:
      registry: the registry to route through.
      mix: the handler, service type and capabilities of the request.
      mode: ``call`` (failover across providers) or ``lease`` (one provider).
      request: the request's key: the providers' error draws depend on it.
      tried: each provider the request reached is appended to it, in order.
      checker: checks every routing decision, if given.

    Returns:
      The outcome (``succeeded``, ``failed`` or ``rejected``) and the provider that
      served the request (``None`` unless it succeeded).
    """
    required = frozenset(mix.required_capabilities)

    async def serve(provider: SimulatedProvider, request: object) -> str:
        if checker is not None:
            checker.on_route(provider.name, mix.handler, mix.service_type, required, tried)
        tried.append(provider.name)
        return await provider.handle(request)

    try:
        if mode == "call":
            served = await registry.call(
                mix.handler, mix.service_type, serve, request, required_capabilities=required
            )
        else:
            async with registry.lease(mix.handler, mix.service_type, required) as provider:
                served = await serve(provider, request)
    except NoServiceAvailable as error:
        return ("failed" if error.attempts else "rejected"), None
    except Exception:
        return "failed", None  # lease mode: the provider's error or the deadline
    return "succeeded", served


# -- the simulation -----------------------------------------------------------------------


@attrs.define
class _Run:
    scenario: Scenario
    seed: int
    progress: ProgressCallback | None
    log: RequestLog = attrs.field(factory=RequestLog)
    events: list[RegistryEvent] = attrs.field(factory=list)
    dropped_events: int = 0
    in_flight: int = 0
    origin: float = 0.0

    async def run(self) -> Report:
        scenario = self.scenario
        async with open_scenario(scenario, self.seed, max_events=10_000_000) as setup:
            registry, providers = setup.registry, setup.providers
            self.origin = trio.current_time()
            for provider in providers.values():
                provider.origin = self.origin
            checker = InvariantChecker(registry, origin=self.origin)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._record_events, setup.events)
                async with trio.open_nursery() as requests:
                    await self._drive(registry, checker, requests)
                # Let the recorder take every event still buffered before it is cancelled.
                await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()
        return build_report(
            scenario=scenario,
            seed=self.seed,
            log=self.log,
            events=self.events,
            origin=self.origin,
            providers=providers,
            violations=checker.violations,
            checks=checker.checks,
            dropped_events=self.dropped_events,
        )

    async def _record_events(self, events: trio.abc.ReceiveChannel[RegistryEvent]) -> None:
        async for event in events:
            if isinstance(event, EventsDropped):
                self.dropped_events += event.count
            elif isinstance(
                event,
                BreakerTransition | HealthChanged | ActorCrashed | ActorRestarted | ActorFailed,
            ):
                self.events.append(event)

    async def _drive(
        self, registry: Registry, checker: InvariantChecker, requests: trio.Nursery
    ) -> None:
        workload = self.scenario.workload
        rng = random.Random(f"{self.seed}:workload")
        next_report = 0.0
        step = workload.duration / 100
        for t, mix_index in arrivals(workload, rng):
            await trio.sleep_until(self.origin + t)
            if self.progress is not None and t >= next_report:
                self.progress(t, workload.duration)
                next_report = t + step
            slot = self.log.add(t, mix_index)
            if self.in_flight >= workload.concurrency:
                self.log.finish(slot, "shed", 0.0, None, ())
                continue
            self.in_flight += 1
            requests.start_soon(self._request, registry, checker, slot, workload.mix[mix_index])
        if self.progress is not None:
            self.progress(workload.duration, workload.duration)

    async def _request(
        self, registry: Registry, checker: InvariantChecker, slot: int, mix: RequestMix
    ) -> None:
        start = trio.current_time()
        tried: list[str] = []
        try:
            outcome, served = await send_request(
                registry, mix, self.scenario.workload.mode, slot, tried, checker
            )
        finally:
            self.in_flight -= 1
        self.log.finish(slot, outcome, trio.current_time() - start, served, tuple(tried))
