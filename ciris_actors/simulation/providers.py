"""Simulated providers: a provider's normal behaviour plus the faults scheduled on it.

A :class:`SimulatedProvider` is an ordinary provider (``start``, ``run``, ``aclose``,
``is_healthy``, ``handle``) whose answers depend on the scenario's fault schedule (each
fault's hooks, see :mod:`.faults`) and a random stream of its own, seeded from the
scenario seed and its name, so its behaviour does not depend on the order the scheduler
runs tasks in.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence

import trio

from .faults import Fault, FaultKind
from .model import Distribution, Latency, ProviderSpec

__all__ = ["SimulatedError", "SimulatedProvider"]


class SimulatedError(RuntimeError):
    """A simulated provider failed a call."""


def error_draw(seed: int, provider: str, request: object) -> float:
    """A uniform draw in [0, 1) fixed by (seed, provider, request).

    Whether a call fails is decided by this draw, not by a stream consumed in call
    order, so the oracle can know exactly which calls would have failed. A cryptographic
    hash keeps draws independent across providers and requests (a CRC, being linear,
    ties them together).
    """
    digest = hashlib.blake2b(f"{seed}:{provider}:{request}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 18446744073709551616.0


def sample_latency(latency: Latency, rng: random.Random) -> float:
    """Draw one latency from *latency* with *rng*."""
    kind = latency.distribution
    if kind is Distribution.FIXED:
        return latency.median
    if kind is Distribution.UNIFORM:
        return rng.uniform(latency.low, latency.high)
    if kind is Distribution.EXPONENTIAL:
        return rng.expovariate(math.log(2) / latency.median) if latency.median > 0 else 0.0
    if latency.median <= 0:
        return 0.0
    # Lognormal with the given median and 99th percentile (z(0.99) = 2.3263).
    sigma = math.log(max(latency.p99, latency.median) / latency.median) / 2.3263478740408408
    return rng.lognormvariate(math.log(latency.median), sigma)


class SimulatedProvider:
    """A provider that behaves as its :class:`ProviderSpec` says, under its faults.

    Args:
      spec: the provider's normal behaviour.
      faults: the faults scheduled on it.
      seed: the scenario seed (with the name, it seeds this provider's random stream).
    """

    def __init__(self, spec: ProviderSpec, faults: Sequence[Fault], seed: int) -> None:
        self.spec = spec
        self.name = spec.name
        self.faults = tuple(sorted(faults, key=lambda f: f.at))
        self.seed = seed
        self.rng = random.Random(f"{seed}:{spec.name}")
        #: Calls served so far (numbers the calls made without a request key).
        self.calls = 0
        #: Virtual time the scenario's t=0 corresponds to (set by the runner).
        self.origin = 0.0
        if not spec.health_check:
            # No is_healthy: hide the method so the registry sees a provider without one.
            self.is_healthy = None  # type: ignore[assignment,method-assign]

    def __repr__(self) -> str:
        return f"SimulatedProvider({self.name!r})"

    def now(self) -> float:
        """Scenario time: seconds since the workload started."""
        return trio.current_time() - self.origin

    def active(self, kind: FaultKind, at: float | None = None) -> Fault | None:
        """The fault of *kind* active at scenario time *at* (default: now), if any: the
        one that started first."""
        t = self.now() if at is None else at
        for fault in self.faults:
            if fault.kind is kind and fault.is_active(t):
                return fault
        return None

    def ruling(self, at: float) -> list[Fault]:
        """The faults that act on the provider at scenario time *at*: of each kind active
        then, the one that started first (faults of one kind do not add up)."""
        kinds: set[FaultKind] = set()
        result = []
        for fault in self.faults:
            if fault.kind not in kinds and fault.is_active(at):
                kinds.add(fault.kind)
                result.append(fault)
        return result

    def down(self, at: float) -> bool:
        """Whether the provider cannot serve at all at scenario time *at* (outage, the
        failing half of a flap)."""
        return any(fault.is_down(at) for fault in self.ruling(at))

    def added_latency(self, at: float) -> float:
        """Extra latency from latency faults active at *at*."""
        total = 0.0
        for fault in self.ruling(at):
            total += fault.extra_latency()
        return total

    def error_rate(self, at: float) -> float:
        """Probability that a call at *at* fails although the provider is up."""
        rate = self.spec.error_rate
        for fault in self.ruling(at):
            extra = fault.failure_rate()
            if extra is not None:
                rate = 1.0 - (1.0 - rate) * (1.0 - extra)
        return rate

    def start_delay(self, at: float) -> float:
        """Seconds a ``start()`` beginning at *at* takes: the spec's start delay, or a
        slow_start fault's while one is active."""
        for fault in self.ruling(at):
            delay = fault.startup_delay()
            if delay is not None:
                return delay
        return self.spec.start_delay

    # -- lifecycle the registry drives ---------------------------------------------------

    async def start(self) -> None:
        """Take the spec's start delay, or a slow_start fault's while one is active."""
        delay = self.start_delay(self.now())
        if delay > 0:
            await trio.sleep(delay)
        else:
            await trio.lowlevel.checkpoint()

    async def run(self) -> None:
        """Raise at the next crash instant of an active or future crash fault."""
        at = self.next_crash(self.now())
        if at is None:
            await trio.sleep_forever()
        await trio.sleep_until(self.origin + at)
        raise SimulatedError(f"{self.name}: simulated crash")

    def next_crash(self, after: float) -> float | None:
        """The first crash instant strictly after scenario time *after*, if any."""
        best: float | None = None
        for fault in self.faults:
            instant = fault.next_crash(after)
            if instant is not None and (best is None or instant < best):
                best = instant
        return best

    async def aclose(self) -> None:
        """Nothing to release."""
        await trio.lowlevel.checkpoint()

    async def is_healthy(self) -> bool:
        """False while down; a latency fault delays the answer (a hang times it out)."""
        at = self.now()
        extra = self.added_latency(at)
        if extra > 0:
            await trio.sleep(extra)
        else:
            await trio.lowlevel.checkpoint()
        return not self.down(at)

    async def handle(self, request: object = None) -> str:
        """Serve one request: take a latency, then fail or answer with this provider's
        name. Whether it fails is decided when the call starts, by the draw for
        *request* (by default, for this provider's call count)."""
        self.calls += 1
        if request is None:
            request = f"call-{self.calls}"
        at = self.now()
        latency = sample_latency(self.spec.latency, self.rng) + self.added_latency(at)
        fails = self.down(at) or error_draw(self.seed, self.name, request) < self.error_rate(at)
        await trio.sleep(latency)
        if fails:
            raise SimulatedError(f"{self.name}: simulated failure")
        return self.name
