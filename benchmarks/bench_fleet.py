"""Fleet state over a real redis-server: how fast a verdict spreads, what a fleet costs a
resolve, and Redis killed under traffic.

Run from the repository root (needs ``redis-server`` on PATH and the ``redis`` extra)::

    python benchmarks/bench_fleet.py            # full run
    python benchmarks/bench_fleet.py --quick    # smoke run

Method:

1. *Propagation.* A redis-server on a free loopback port (``tests/redis_server.py``), and
   2, 4 and 8 worker processes (this script with ``--worker``), each with its own registry
   and ``RedisFleet`` and the same providers registered by name. In each round one worker,
   in turn, opens a fresh provider's breaker (two failures); every other worker notes the
   wall-clock time its own breaker of that provider went OPEN on the fleet's verdict (a
   ``BreakerTransition`` whose reason starts ``fleet:``). Propagation is that time minus
   the time the opener's breaker opened (one machine, one clock), so it counts the report's
   queueing, the Lua script, the pub/sub push and applying it.
2. *Resolve cost.* In this process, ``get_service_nowait`` on two registries of the same
   providers, one with a ``RedisFleet`` attached and one without, timed in interleaved
   rounds by ``_harness.measure`` (batches, gc off while timing).
3. *Redis killed, and frozen, under traffic.* Four workers each resolve and settle a
   request every millisecond (``admit``/``settle``), timing every resolve. Redis is
   killed, then started again (empty); in a second run it is frozen (SIGSTOP: no
   connection closes, every reply just stops, as behind a network fault) and thawed.
   Each worker notes when it published ``FleetDegraded`` and ``FleetRestored``. A request
   is lost if its resolve raised.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from typing import Any

import trio
import trio.testing
from _harness import (
    FULL,
    QUICK,
    Config,
    Results,
    Spec,
    Target,
    environment,
    finish_environment,
    measure,
    percentile,
    print_run,
    progress,
    render_targets,
)
from cases_resolve import nowait_sample

from ciris_actors import CircuitBreakerConfig, CircuitState, Outcome, open_registry
from ciris_actors.events import BreakerTransition, FleetDegraded, FleetRestored

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.redis_server import find_redis_server, launch  # noqa: E402

#: The breaker of the providers the verdicts are about: two failures open it, for long
#: enough that no probe happens during a run.
BREAKER = CircuitBreakerConfig(failure_threshold=2, recovery_timeout=600.0)


class Provider:
    """A provider with nothing to start or check."""


# -- the worker process ---------------------------------------------------------------------


def _say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def worker(url: str, node: str, namespace: str, providers: int) -> None:
    """One fleet node: obeys commands on stdin (``open NAME``, ``traffic SECONDS``,
    ``quit``), and says on stdout what it did and saw, one JSON object per line."""
    from ciris_actors.fleet import RedisFleet

    fleet = RedisFleet(url, node=node, namespace=namespace)
    async with open_registry(
        fleet=fleet, health_check_interval=None, default_breaker=BREAKER
    ) as registry:
        registry.register("agent", "llm", Provider(), priority="low", name="backup")
        for i in range(providers):
            registry.register("agent", "probe", Provider(), name=f"p{i}")
        assert await registry.wait_ready(10.0, ["llm"])
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                types = [BreakerTransition, FleetDegraded, FleetRestored]
                async with registry.events(max_buffer=100_000, types=types) as events:
                    async for event in events:
                        now = time.time()
                        if isinstance(event, BreakerTransition):
                            if event.new is CircuitState.OPEN and event.reason.startswith("fleet:"):
                                _say(seen=event.name, t=now)
                        elif isinstance(event, FleetDegraded):
                            _say(degraded=now)
                        else:
                            _say(restored=now)

            nursery.start_soon(watch)
            await trio.testing.wait_all_tasks_blocked()
            _say(ready=node)
            stdin = trio.wrap_file(sys.stdin)
            while True:
                line = (await stdin.readline()).split()
                if not line or line[0] == "quit":
                    break
                if line[0] == "open":
                    for _ in range(BREAKER.failure_threshold):
                        registry.report_failure(line[1])
                    _say(opened=line[1], t=time.time())
                elif line[0] == "traffic":
                    _say(traffic=await _traffic(registry, float(line[1])))
            nursery.cancel_scope.cancel()


async def _traffic(registry: Any, seconds: float) -> dict[str, Any]:
    """Resolve and settle one request per millisecond for *seconds*; time every resolve."""
    served = lost = 0
    slowest = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter_ns()
        try:
            ticket = registry.admit("agent", "llm")
        except Exception:  # every request must be served: count the ones that were not
            lost += 1
        else:
            slowest = max(slowest, time.perf_counter_ns() - start)
            registry.settle(ticket, Outcome.SUCCESS)
            served += 1
        await trio.sleep(0.001)
    return {"served": served, "lost": lost, "slowest_resolve_ns": slowest}


# -- the conductor ----------------------------------------------------------------------------


class Worker:
    """A worker process and a reader of its lines."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        assert process.stdout is not None
        self.stream = process.stdout
        self.buffer = b""
        #: Lines received while waiting for another kind (events during traffic).
        self.other: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, url: str, node: str, namespace: str, providers: int) -> Worker:
        args = [sys.executable, __file__, "--worker", url, node, namespace, str(providers)]
        process = await trio.lowlevel.open_process(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        return cls(process)

    async def send(self, line: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(line.encode() + b"\n")

    async def receive(self) -> dict[str, Any]:
        while b"\n" not in self.buffer:
            chunk = await self.stream.receive_some()
            if not chunk:
                raise RuntimeError("a worker exited early (see its stderr above)")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    async def expect(self, key: str) -> dict[str, Any]:
        """The next line that has *key* (other lines, such as traffic events, are kept)."""
        while True:
            message = await self.receive()
            if key in message:
                return message
            self.other.append(message)

    async def stop(self) -> None:
        with trio.move_on_after(10):
            await self.send("quit")
            await self.process.wait()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def _start_workers(url: str, count: int, providers: int) -> list[Worker]:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    workers = [await Worker.start(url, f"node-{i}", namespace, providers) for i in range(count)]
    with trio.fail_after(60):
        for each in workers:
            await each.expect("ready")
    return workers


async def propagation(url: str, count: int, rounds: int) -> list[float]:
    """Seconds from one worker's open to each other worker's breaker refusing."""
    workers = await _start_workers(url, count, rounds)
    lags: list[float] = []
    try:
        for r in range(rounds):
            opener = workers[r % count]
            await opener.send(f"open p{r}")
            with trio.fail_after(10):
                opened = await opener.expect("opened")
                for each in workers:
                    if each is not opener:
                        seen = await each.expect("seen")
                        assert seen["seen"] == f"p{r}", seen
                        lags.append(seen["t"] - opened["t"])
    finally:
        for each in workers:
            await each.stop()
    return lags


async def redis_lost(server: Any, count: int, seconds: float, how: str) -> dict[str, Any]:
    """Take Redis away under traffic (*how*: ``"killed"``, or ``"frozen"``: SIGSTOP, no
    connection closed, as behind a network fault) and bring it back; what every worker
    saw."""
    workers = await _start_workers(server.url, count, 1)
    try:
        for each in workers:
            await each.send(f"traffic {seconds}")
        await trio.sleep(seconds * 0.25)
        killed = time.time()
        if how == "killed":
            server.stop()
        else:
            server.freeze()
        await trio.sleep(seconds * 0.35)
        started = time.time()
        if how == "killed":
            server.start()
        else:
            server.thaw()
        nodes = []
        with trio.fail_after(seconds + 30):
            for each in workers:
                traffic = await each.expect("traffic")
                events = each.other
                degraded = [m["degraded"] for m in events if "degraded" in m]
                restored = [m["restored"] for m in events if "restored" in m]
                nodes.append(
                    {
                        **traffic["traffic"],
                        "degraded_after_s": degraded[0] - killed if degraded else None,
                        "restored_after_s": restored[-1] - started if restored else None,
                    }
                )
    finally:
        for each in workers:
            await each.stop()
    return {"nodes": nodes, "outage_s": started - killed}


async def resolve_cost(url: str, cfg: Config, results: Results) -> None:
    """``get_service_nowait`` with a RedisFleet attached and without, interleaved."""
    from ciris_actors.fleet import RedisFleet

    fleet = RedisFleet(url, node="bench", namespace=f"bench-{uuid.uuid4().hex[:8]}")
    async with (
        open_registry(fleet=fleet, health_check_interval=None) as with_fleet,
        open_registry(health_check_interval=None) as alone,
    ):
        for registry in (with_fleet, alone):
            for i in range(10):
                registry.register("agent", "llm", Provider(), name=f"p{i}")
        assert await with_fleet.wait_ready(10.0, ["llm"])
        specs = [
            Spec(f"fleet/{variant}", "get_service_nowait", variant, 10, "trio", sample)
            for variant, sample in (
                ("with RedisFleet", nowait_sample(with_fleet, "agent", "llm", None)),
                ("no fleet", nowait_sample(alone, "agent", "llm", None)),
            )
        ]
        await measure(specs, cfg, results, batch_groups=["nowait", "nowait"])


async def run(args: argparse.Namespace, cfg: Config, results: Results) -> None:
    executable = find_redis_server()
    if executable is None:
        raise SystemExit("bench_fleet: redis-server is not on PATH (apt-get install redis-server)")
    with tempfile.TemporaryDirectory() as directory:
        server = launch(executable, pathlib.Path(directory))
        try:
            rounds = 30 if args.quick else 200
            for count in args.processes:
                progress(f"propagation: {count} processes, {rounds} rounds")
                lags = await propagation(server.url, count, rounds)
                results.extra[f"propagation/{count}"] = lags
            progress("resolve cost with and without a fleet")
            await resolve_cost(server.url, cfg, results)
            for how in ("killed", "frozen"):
                progress(f"Redis {how} under traffic: 4 processes")
                seconds = 4.0 if args.quick else 8.0
                results.extra[how] = await redis_lost(server, 4, seconds, how)
        finally:
            server.stop()


def targets(results: Results, processes: Sequence[int]) -> list[Target]:
    found = []
    for count in processes:
        lags = results.extra[f"propagation/{count}"]
        p50, p99 = percentile(lags, 50) * 1e3, percentile(lags, 99) * 1e3
        found.append(
            Target(
                f"propagation, {count} processes: p50 <= 5 ms, p99 <= 50 ms",
                f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(lags) * 1e3:.2f} ms"
                f" ({len(lags)} verdicts)",
                p50 <= 5.0 and p99 <= 50.0,
            )
        )
    ratio = results.p50("fleet/with RedisFleet") / results.p50("fleet/no fleet")
    found.append(
        Target("get_service_nowait with a fleet <= 1.05x without", f"{ratio:.3f}x", ratio <= 1.05)
    )
    for how in ("killed", "frozen"):
        nodes = results.extra[how]["nodes"]
        lost = sum(n["lost"] for n in nodes)
        served = sum(n["served"] for n in nodes)
        slowest = max(n["slowest_resolve_ns"] for n in nodes) / 1e3
        found.append(
            Target(
                f"Redis {how}: no request lost, no resolve waits on it",
                f"{served} served, {lost} lost; slowest resolve {slowest:.0f} us",
                lost == 0 and slowest < 10_000,
            )
        )
        degraded = [n["degraded_after_s"] for n in nodes]
        restored = [n["restored_after_s"] for n in nodes]
        found.append(
            Target(
                f"Redis {how}: every node degraded within 1 s",
                "after " + ", ".join("never" if d is None else f"{d:.2f} s" for d in degraded),
                all(d is not None and d <= 1.0 for d in degraded),
            )
        )
        found.append(
            Target(
                f"Redis {how}: every node restored within 1 s + back-off (max 2 s)",
                "after " + ", ".join("never" if r is None else f"{r:.2f} s" for r in restored),
                all(r is not None and r <= 3.0 for r in restored),
            )
        )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurements and print the tables and the targets.

    Args:
        argv: The command line's arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--processes", type=int, nargs="+", default=[2, 4, 8], help="worker counts")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        url, node, namespace, providers = args.worker
        trio.run(worker, url, node, namespace, int(providers))
        return 0
    cfg = QUICK if args.quick else FULL
    env = environment()
    results = Results()
    trio.run(run, args, cfg, results)
    finish_environment(env)
    print_run("fleet benchmark", env, cfg, results, args.quick)
    for count in args.processes:
        lags = results.extra[f"propagation/{count}"]
        print(
            f"propagation, {count} processes: p50 {percentile(lags, 50) * 1e3:.2f} ms,"
            f" p90 {percentile(lags, 90) * 1e3:.2f} ms, p99 {percentile(lags, 99) * 1e3:.2f} ms"
        )
    print()
    for how in ("killed", "frozen"):
        for i, node in enumerate(results.extra[how]["nodes"]):
            print(f"Redis {how}, node-{i}: {json.dumps(node)}")
    print()
    print(render_targets(targets(results, args.processes), args.quick))
    if args.json:
        pathlib.Path(args.json).write_text(
            json.dumps({"environment": env, "extra": results.extra}, indent=1, default=str)
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
