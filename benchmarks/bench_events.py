"""What event subscribers cost a resolve that finds nothing (a ``ResolveMiss``).

    python benchmarks/bench_events.py

Measures ``get_service_nowait`` for a service type nobody provides, with no subscriber,
with ten subscribers that filtered ``ResolveMiss`` out (``events(types=[...])``), and
with ten that take every event. Each sample times a batch of 200 calls with gc disabled;
the figure is the median of 200 samples.
"""

from __future__ import annotations

import statistics
from contextlib import AsyncExitStack

import trio
from _harness import perf_ns, time_batch_sync

from ciris_actors import BreakerTransition, Registry, open_registry

BATCH = 200
SAMPLES = 200
SUBSCRIBERS = 10


def miss_ns(registry: Registry) -> float:
    """Median per-call time of a resolve that misses.

    Args:
        registry: The registry resolved on.

    Returns:
        The median over ``SAMPLES`` batches of ``BATCH`` calls (gc disabled while each
        batch is timed) of the per-call time, in ns.
    """

    def body(batch: int) -> int:
        start = perf_ns()
        for _ in range(batch):
            registry.get_service_nowait("H", "nothing")
        return perf_ns() - start

    return statistics.median(time_batch_sync(body, BATCH) / BATCH for _ in range(SAMPLES))


async def main() -> None:
    """Measure a miss with no subscriber, with filtering ones and with unfiltered ones."""
    async with open_registry() as registry:
        alone = miss_ns(registry)
        async with AsyncExitStack() as stack:
            for _ in range(SUBSCRIBERS):
                await stack.enter_async_context(registry.events(types=[BreakerTransition]))
            filtered = miss_ns(registry)
        async with AsyncExitStack() as stack:
            for _ in range(SUBSCRIBERS):
                await stack.enter_async_context(registry.events(max_buffer=10))
            everything = miss_ns(registry)
    print(f"resolve miss, no subscriber:                          {alone:8.0f} ns")
    print(f"  + {SUBSCRIBERS} subscribers that filtered ResolveMiss out:  {filtered:8.0f} ns")
    print(f"  + {SUBSCRIBERS} subscribers taking every event:            {everything:8.0f} ns")


if __name__ == "__main__":
    trio.run(main)
