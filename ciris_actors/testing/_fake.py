"""A provider whose behaviour a test scripts: health, failures, latency, crashes."""

from __future__ import annotations

import math

import trio

__all__ = ["FakeProvider"]


class FakeProvider:
    """A controllable provider with the full lifecycle (``start``, ``run``, ``aclose``,
    ``is_healthy``) and a :meth:`handle` method to call through the registry.

    Every knob is a plain attribute a test flips between steps:

    Attributes:
      name: shown in reprs and returned by :meth:`handle`.
      healthy: what :meth:`is_healthy` returns.
      failing: whether :meth:`handle` raises :class:`RuntimeError`.
      latency: seconds :meth:`handle` sleeps (``math.inf``: hangs).
      health_latency: seconds :meth:`is_healthy` sleeps (``math.inf``: hangs).
      crash_on_start: how many next ``start()`` calls raise.
      start_delay: seconds ``start()`` takes.

    Counters (``starts``, ``closes``, ``calls``, ``health_checks``) say what the registry did.
    :meth:`crash` makes the running ``run()`` raise, so the supervisor restarts it.
    """

    def __init__(
        self,
        name: str = "fake",
        *,
        healthy: bool = True,
        failing: bool = False,
        latency: float = 0.0,
        health_latency: float = 0.0,
        crash_on_start: int = 0,
        start_delay: float = 0.0,
    ) -> None:
        self.name = name
        self.healthy = healthy
        self.failing = failing
        self.latency = latency
        self.health_latency = health_latency
        self.crash_on_start = crash_on_start
        self.start_delay = start_delay
        self.starts = 0
        self.closes = 0
        self.calls = 0
        self.health_checks = 0
        self.running = False
        self._crash = trio.Event()

    def __repr__(self) -> str:
        return f"FakeProvider({self.name!r})"

    async def start(self) -> None:
        """Count the start; wait ``start_delay``; raise while ``crash_on_start`` > 0."""
        self.starts += 1
        if self.start_delay:
            await trio.sleep(self.start_delay)
        if self.crash_on_start > 0:
            self.crash_on_start -= 1
            raise RuntimeError(f"{self.name}: start failed")
        self._crash = trio.Event()

    async def run(self) -> None:
        """Run until :meth:`crash` is called, then raise."""
        self.running = True
        try:
            await self._crash.wait()
        finally:
            self.running = False
        raise RuntimeError(f"{self.name}: crashed")

    def crash(self) -> None:
        """Make the running ``run()`` raise (the supervisor then restarts it)."""
        self._crash.set()

    async def aclose(self) -> None:
        """Count the close."""
        self.closes += 1
        await trio.lowlevel.checkpoint()

    async def is_healthy(self) -> bool:
        """Return :attr:`healthy` after ``health_latency`` seconds."""
        self.health_checks += 1
        await _sleep(self.health_latency)
        return self.healthy

    async def handle(self, request: object = None) -> str:
        """Serve one request: sleep ``latency``, then fail or answer ``"<name>:<request>"``."""
        self.calls += 1
        await _sleep(self.latency)
        if self.failing:
            raise RuntimeError(f"{self.name}: request failed")
        return f"{self.name}:{request}"


async def _sleep(seconds: float) -> None:
    if math.isinf(seconds):
        await trio.sleep_forever()
    elif seconds > 0:
        await trio.sleep(seconds)
    else:
        await trio.lowlevel.checkpoint()
