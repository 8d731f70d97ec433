"""Fleets of real processes: each runs ``tests/fleet_worker.py`` (a registry with a
``RedisFleet``) against the ``redis_server`` fixture's server, and says what happens as
JSON lines on stdout. Every wait is for a line, under a deadline.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from .redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
#: Seconds to wait for a line a worker should print (a process start included).
PATIENCE = 20.0

Line = dict[str, Any]


class Worker:
    """One worker process: send it commands, wait for what it prints."""

    def __init__(self, node: str, process: trio.Process) -> None:
        self.node = node
        self.process = process
        self.lines: list[Line] = []
        self._changed = trio.Event()
        self._taken: set[int] = set()

    async def read(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        async for chunk in self.process.stdout:
            buffer += chunk
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                self.lines.append(json.loads(raw))
                self._changed.set()
                self._changed = trio.Event()

    async def send(self, command: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(command.encode() + b"\n")

    async def expect(self, what: str, match: Callable[[Line], bool]) -> Line:
        """The first line matching *match* not taken by an earlier call (waiting for it)."""
        with trio.move_on_after(PATIENCE):
            while True:
                for index in range(len(self.lines)):
                    if index not in self._taken and match(self.lines[index]):
                        self._taken.add(index)
                        return self.lines[index]
                changed = self._changed
                if self.process.returncode is not None:
                    break
                await changed.wait()
        raise AssertionError(
            f"node {self.node}: no {what} within {PATIENCE:g} s; "
            f"exit code {self.process.returncode}; printed {self.lines}"
        )

    async def event(self, event: str, **fields: Any) -> Line:
        def match(line: Line) -> bool:
            return line.get("event") == event and all(line.get(k) == v for k, v in fields.items())

        return await self.expect(f"{event} {fields}", match)


@asynccontextmanager
async def fleet(server: RedisServer, count: int) -> AsyncIterator[list[Worker]]:
    """*count* workers in one namespace of *server*, each ready (its first read done)."""
    namespace = f"procs-{secrets.token_hex(4)}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers: list[Worker] = []
    async with trio.open_nursery() as nursery:
        for index in range(count):
            node = f"w{index}"
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "tests.fleet_worker", server.url, namespace, node],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=ROOT,
                env=env,
            )
            worker = Worker(node, process)
            workers.append(worker)
            nursery.start_soon(worker.read)
        try:
            for worker in workers:
                await worker.event("ready")
            yield workers
            for worker in workers:
                await worker.send("exit")
            for worker in workers:
                await worker.event("closed")
                with trio.fail_after(PATIENCE):
                    assert await worker.process.wait() == 0
        finally:
            for worker in workers:
                if worker.process.returncode is None:
                    worker.process.kill()
                    await worker.process.wait()


async def test_one_process_open_verdict_reaches_the_others(redis_server: RedisServer) -> None:
    async with fleet(redis_server, 3) as (first, *others):
        for worker in (first, *others):
            await worker.send("resolve")
            assert (await worker.event("resolved"))["name"] == "primary"
        await first.send("fail")
        await first.event("state", name="primary", state="open")
        for worker in others:
            verdict = await worker.event("verdict", name="primary")
            assert (verdict["node"], verdict["kind"]) == ("w0", "failure")
            await worker.event("state", name="primary", state="open")
            # Their local breakers refuse the primary: a resolve routes to the backup.
            await worker.send("resolve")
            assert (await worker.event("resolved"))["name"] == "backup"


async def test_killing_redis_under_traffic_degrades_and_restores_every_process(
    redis_server: RedisServer,
) -> None:
    async with fleet(redis_server, 3) as workers:
        for worker in workers:
            await worker.send("traffic")
        await trio.to_thread.run_sync(redis_server.stop)
        for worker in workers:
            degraded = await worker.event("degraded")
            assert degraded["error"]
        # Alone, each node goes on: its own failure opens its own breaker only.
        await workers[0].send("fail")
        await workers[0].event("state", name="primary", state="open")
        await trio.to_thread.run_sync(redis_server.start)
        for worker in workers:
            await worker.event("restored")
        # What w0 decided while the store was away reaches the others once it is back.
        for worker in workers[1:]:
            await worker.event("state", name="primary", state="open")
        for worker in workers:
            await worker.send("stats")
            stats = await worker.event("stats")
            assert stats["resolves"] > 0
            assert stats["errors"] == 0
            # A resolve never waited on the store (a generous bound for a loaded machine:
            # a store call would take the whole timeout, 0.25 s, or more).
            assert stats["slowest"] < 0.1, stats
            assert worker.process.returncode is None
