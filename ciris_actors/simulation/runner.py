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
from collections.abc import Callable

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
    HealthChanged,
    RegistryEvent,
)
from ..registry import Registry, open_registry
from .invariants import InvariantChecker
from .model import RequestMix, Scenario
from .providers import SimulatedProvider
from .report import Report, RequestLog, build_report

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
        faults_by_provider = {
            spec.name: [f for f in scenario.faults if f.provider == spec.name]
            for spec in scenario.providers
        }
        providers = {
            spec.name: SimulatedProvider(spec, faults_by_provider[spec.name], self.seed)
            for spec in scenario.providers
        }
        async with (
            open_registry(
                health_check_interval=scenario.health_check_interval,
                restart_policy=scenario.restart_policy,
                default_breaker=scenario.default_breaker,
                seed=self.seed,
            ) as registry,
            registry.events(max_buffer=10_000_000) as events,
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
            await registry.wait_ready(_READY_TIMEOUT, types)
            self.origin = trio.current_time()
            for provider in providers.values():
                provider.origin = self.origin
            checker = InvariantChecker(registry, origin=self.origin)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._record_events, events)
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
        weights = list(itertools.accumulate(m.weight for m in workload.mix))
        next_report = 0.0
        step = workload.duration / 100
        t = 0.0
        for index in itertools.count():
            if workload.arrival == "poisson":
                t += rng.expovariate(workload.rate)
            else:
                t = index / workload.rate
            if t >= workload.duration:
                break
            await trio.sleep_until(self.origin + t)
            if self.progress is not None and t >= next_report:
                self.progress(t, workload.duration)
                next_report = t + step
            choice = rng.random() * weights[-1]
            mix_index = bisect.bisect_right(weights, choice)
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
        required = frozenset(mix.required_capabilities)

        async def serve(provider: SimulatedProvider, request: int) -> str:
            checker.on_route(provider.name, mix.handler, mix.service_type, required, tried)
            tried.append(provider.name)
            return await provider.handle(request)

        served: str | None = None
        try:
            if self.scenario.workload.mode == "call":
                served = await registry.call(
                    mix.handler, mix.service_type, serve, slot, required_capabilities=required
                )
            else:
                async with registry.lease(mix.handler, mix.service_type, required) as provider:
                    served = await serve(provider, slot)
            outcome = "succeeded"
        except NoServiceAvailable as error:
            outcome = "failed" if error.attempts else "rejected"
        except Exception:
            outcome = "failed"  # lease mode: the provider's error or the deadline
        finally:
            self.in_flight -= 1
        self.log.finish(slot, outcome, trio.current_time() - start, served, tuple(tried))
