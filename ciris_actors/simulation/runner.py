"""Running a scenario: the real registry, real actors and the real resolve and outcome
recording on trio's virtual clock, driven by a scenario's workload and faults.

Nothing in the registry is replaced by a double: only the providers are simulated.
Same scenario, seed and engine give the same report, byte for byte; on the bundled
scenarios both engines give the same report too (see docs/simulation.md).
"""

from __future__ import annotations

import math

import trio
import trio.testing

from ._trio_private import seed_scheduler
from .engines import ENGINES, Engine, engine_run
from .model import Scenario
from .report import Report
from .traffic import ProgressCallback

__all__ = ["ENGINES", "Engine", "ProgressCallback", "run_scenario", "simulate"]


def run_scenario(
    scenario: Scenario,
    *,
    seed: int | None = None,
    progress: ProgressCallback | None = None,
    engine: Engine = "events",
) -> Report:
    """Run *scenario* on a fresh virtual clock and return its report.

    Args:
      scenario: what to simulate.
      seed: overrides the scenario's seed.
      progress: called as simulated time advances (about a hundred times a run).
      engine: ``"events"`` (one driver task carries every request; fast) or
        ``"tasks"`` (a trio task per request through ``call``/``lease``).

    Raises:
      ValueError: *engine* is not one of :data:`ENGINES`.

    This starts its own ``trio.run``; from inside a trio run on a ``MockClock`` (a
    pytest-trio test with ``autojump_clock``), use :func:`simulate`.
    """
    effective = scenario.seed if seed is None else seed
    run = engine_run(engine, scenario, effective, progress)
    seed_scheduler(effective)
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(run.run, clock=clock)


async def simulate(
    scenario: Scenario,
    seed: int | None = None,
    progress: ProgressCallback | None = None,
    *,
    engine: Engine = "events",
) -> Report:
    """Run *scenario* inside the current trio run, which must use a ``MockClock``.

    Args:
      scenario: what to simulate.
      seed: overrides the scenario's seed.
      progress: called as simulated time advances.
      engine: as for :func:`run_scenario`.

    Raises:
      RuntimeError: the current clock is not an autojumping ``trio.testing.MockClock``
        (with ``rate`` 0, for the events engine).
      ValueError: *engine* is not one of :data:`ENGINES`.
    """
    effective = scenario.seed if seed is None else seed
    run = engine_run(engine, scenario, effective, progress)
    clock = trio.lowlevel.current_clock()
    if not isinstance(clock, trio.testing.MockClock):
        raise RuntimeError("simulate() needs a trio.testing.MockClock as the run's clock")
    if clock.autojump_threshold == math.inf:
        # Virtual time would never move: the run would wait forever.
        raise RuntimeError(
            "simulate() needs an autojumping MockClock (autojump_threshold=0, the"
            " autojump_clock fixture), not one that only moves when jumped by hand"
        )
    if engine == "events" and clock.rate != 0:
        raise RuntimeError(
            "simulate(engine='events') needs a MockClock with rate 0: the engine moves"
            " the clock itself (engine='tasks' runs at any rate)"
        )
    return await run.run()
