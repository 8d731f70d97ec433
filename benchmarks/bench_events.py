"""What event subscribers cost a resolve that finds nothing (a ``ResolveMiss``).

    python benchmarks/bench_events.py

Measures ``get_service_nowait`` for a service type nobody provides, with no subscriber,
with ten subscribers that filtered ``ResolveMiss`` out (``events(types=[...])``), and
with ten that take every event. Each sample times a batch of 200 calls with gc disabled;
the figure is the median of 200 samples.
"""

from __future__ import annotations

import gc
import statistics
import time
from contextlib import AsyncExitStack

import trio

from ciris_actors import BreakerTransition, Registry, open_registry

BATCH = 200
SAMPLES = 200
SUBSCRIBERS = 10


def miss_ns(registry: Registry) -> float:
    """Median per-call time of a resolve that misses, in ns."""
    samples = []
    for _ in range(SAMPLES):
        gc.disable()
        try:
            start = time.perf_counter_ns()
            for _ in range(BATCH):
                registry.get_service_nowait("H", "nothing")
            samples.append((time.perf_counter_ns() - start) / BATCH)
        finally:
            gc.enable()
    return statistics.median(samples)


async def main() -> None:
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
