"""One fleet node in a process of its own, for ``test_fleet_processes.py``.

``python -m tests.fleet_worker URL NAMESPACE NODE`` opens a registry with a
:class:`~ciris_actors.fleet.RedisFleet` and the providers ``primary`` (preferred) and
``backup``, then takes commands on stdin, one a line, and says what happens on stdout,
one JSON object a line:

- it prints ``{"event": "ready"}`` once ``wait_ready`` returned, and then each fleet
  event (``verdict``, ``degraded``, ``restored``) and each breaker transition
  (``{"event": "state", "name": ..., "state": ...}``) as it comes;
- ``fail``: reports enough failures of the primary to open its breaker;
- ``resolve``: prints ``{"event": "resolved", "name": ...}``, the provider a resolve
  picks now;
- ``traffic``: starts resolving in a loop, every millisecond, timing each resolve;
- ``stats``: prints ``{"event": "stats", "resolves": N, "slowest": S, "errors": E}``;
- ``exit`` (or the end of stdin): closes the registry and exits 0.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import trio

from ciris_actors import CircuitBreakerConfig, Registry, open_registry
from ciris_actors.events import BreakerTransition, FleetDegraded, FleetRestored, FleetVerdict
from ciris_actors.fleet import RedisFleet

BREAKER = CircuitBreakerConfig(
    failure_threshold=2, recovery_timeout=30.0, success_threshold=1, timeout_duration=5.0
)


class Named:
    """A provider that says its name."""

    def __init__(self, name: str) -> None:
        self.name = name


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


class Traffic:
    """Resolves in a loop, timing each: a resolve must never wait on the store."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.resolves = 0
        self.slowest = 0.0
        self.errors = 0

    async def run(self) -> None:
        while True:
            start = time.perf_counter()
            try:
                provider = self.registry.get_service_nowait("agent", "llm")
            except Exception:
                self.errors += 1
            else:
                if provider is None:
                    self.errors += 1
            self.slowest = max(self.slowest, time.perf_counter() - start)
            self.resolves += 1
            await trio.sleep(0.001)


async def watch(registry: Registry, *, task_status: trio.TaskStatus[None]) -> None:
    async with registry.events(max_buffer=10_000) as events:
        task_status.started()
        async for event in events:
            if isinstance(event, FleetVerdict):
                say(event="verdict", name=event.name, node=event.node, kind=event.kind)
            elif isinstance(event, FleetDegraded):
                say(event="degraded", error=event.error)
            elif isinstance(event, FleetRestored):
                say(event="restored", outage=event.outage)
            elif isinstance(event, BreakerTransition):
                say(event="state", name=event.name, state=event.new.value)


async def commands() -> AsyncIterator[str]:
    stream = trio.lowlevel.FdStream(sys.stdin.fileno())
    buffer = b""
    while True:
        chunk = await stream.receive_some()
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode().strip()


async def main(url: str, namespace: str, node: str) -> None:
    link = RedisFleet(url, node, namespace)
    async with open_registry(fleet=link, health_check_interval=None, default_breaker=BREAKER) as r:
        r.register("agent", "llm", Named("primary"), priority="critical", name="primary")
        r.register("agent", "llm", Named("backup"), priority="normal", name="backup")
        async with trio.open_nursery() as nursery:
            await nursery.start(watch, r)
            assert await r.wait_ready(10.0, ["llm"])
            say(event="ready")
            traffic = Traffic(r)
            async for command in commands():
                if command == "fail":
                    for _ in range(BREAKER.failure_threshold):
                        r.report_failure("primary")
                elif command == "resolve":
                    provider = r.get_service_nowait("agent", "llm")
                    say(event="resolved", name=getattr(provider, "name", None))
                elif command == "traffic":
                    nursery.start_soon(traffic.run)
                elif command == "stats":
                    say(
                        event="stats",
                        resolves=traffic.resolves,
                        slowest=traffic.slowest,
                        errors=traffic.errors,
                    )
                elif command == "exit":
                    break
            nursery.cancel_scope.cancel()
    say(event="closed")


if __name__ == "__main__":
    url, namespace, node = sys.argv[1:4]
    trio.run(main, url, namespace, node)
