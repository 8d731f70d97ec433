"""Simulated providers: a provider's normal behaviour plus the faults scheduled on it.

A :class:`SimulatedProvider` is an ordinary provider (``start``, ``run``, ``aclose``,
``is_healthy``, ``handle``) whose answers depend on the scenario's fault schedule (each
fault's hooks, see :mod:`.faults`) and a random stream of its own, seeded from the
scenario seed and its name, so its behaviour does not depend on the order the scheduler
runs tasks in.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Callable, Sequence

import trio

from .errors import SimulatedError
from .faults import Fault, FaultKind
from .model import Distribution, Latency, ProviderSpec

__all__ = ["SimulatedError", "SimulatedProvider"]  # SimulatedError: from .errors

#: What acts between two fault edges: the ruling faults, the latency they add, the error
#: rate they make, and those of them that refuse calls, by rank.
_Segment = tuple[tuple[Fault, ...], float, float, tuple[Fault, ...]]


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
    return latency_sampler(latency)(rng)


def latency_sampler(latency: Latency) -> Callable[[random.Random], float]:
    """A function drawing latencies from *latency* with the random generator it is
    given (its parameters worked out once, not at every draw)."""
    kind = latency.distribution
    if kind is Distribution.FIXED:
        median = latency.median
        return lambda rng: median
    if kind is Distribution.UNIFORM:
        low, high = latency.low, latency.high
        return lambda rng: rng.uniform(low, high)
    if latency.median <= 0:
        return lambda rng: 0.0
    if kind is Distribution.EXPONENTIAL:
        rate = math.log(2) / latency.median
        return lambda rng: rng.expovariate(rate)
    # Lognormal with the given median and 99th percentile (z(0.99) = 2.3263).
    sigma = math.log(max(latency.p99, latency.median) / latency.median) / 2.3263478740408408
    mu = math.log(latency.median)
    return lambda rng: rng.lognormvariate(mu, sigma)


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
        #: Every instant a fault starts or ends: between two of them, the same faults act.
        self._edges = sorted({f.at for f in self.faults} | {f.end for f in self.faults})
        #: Between edge ``i - 1`` and edge ``i``, by ``i``, as asked for: the faults
        #: acting, the latency they add, the error rate they make and the refusing ones.
        self._rulings: dict[int, _Segment] = {}
        self.seed = seed
        self.rng = random.Random(f"{seed}:{spec.name}")
        self._sample = latency_sampler(spec.latency)
        #: The hash state of this provider's error draws before the request's key.
        self._draws = hashlib.blake2b(f"{seed}:{spec.name}:".encode(), digest_size=8)
        #: Calls served so far (numbers the calls made without a request key).
        self.calls = 0
        #: Calls that started while a fault made every call fail (:meth:`dead`).
        self.dead_calls = 0
        #: The deadline of its calls (the breaker's ``timeout_duration``; set by the
        #: runner): a ``latency`` fault adding this much makes every call time out.
        self.timeout = math.inf
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

    def ruling(self, at: float) -> tuple[Fault, ...]:
        """The faults that act on the provider at scenario time *at*: of each kind active
        then, the one that started first (faults of one kind do not add up)."""
        return self._segment(at)[0]

    def _segment(self, at: float) -> _Segment:
        """The ruling at *at*, with the extra latency and error rate it makes and the
        faults of it that refuse calls (by :attr:`~.Fault.refusal_rank`).

        Faults start and end only at edges, so every instant from one edge to the next has
        the ruling of the edge it starts at (none before the first edge): it is worked out
        once per stretch between edges.
        """
        index = bisect.bisect_right(self._edges, at)
        segment = self._rulings.get(index)
        if segment is None:
            ruling = self._rule(self._edges[index - 1]) if index else ()
            extra = 0.0
            rate = self.spec.error_rate
            for fault in ruling:
                extra += fault.extra_latency()
                more = fault.failure_rate()
                if more is not None:
                    rate = 1.0 - (1.0 - rate) * (1.0 - more)
            refusing = tuple(
                sorted(
                    (fault for fault in ruling if fault.refusal_rank is not None),
                    key=lambda fault: fault.refusal_rank or 0,
                )
            )
            segment = self._rulings[index] = (ruling, extra, rate, refusing)
        return segment

    def _rule(self, at: float) -> tuple[Fault, ...]:
        kinds: set[FaultKind] = set()
        result = []
        for fault in self.faults:
            if fault.kind not in kinds and fault.is_active(at):
                kinds.add(fault.kind)
                result.append(fault)
        return tuple(result)

    def conditions(self, at: float) -> tuple[bool, float, float]:
        """At scenario time *at*: whether the provider is down, the latency its faults
        add, and the probability that a call fails although it is up."""
        ruling, extra, rate, _ = self._segment(at)
        return any(fault.is_down(at) for fault in ruling), extra, rate

    def refusal(self, at: float, long: bool = False) -> SimulatedError | None:
        """The error a class fault active at scenario time *at* answers a call with (one
        of a long request if *long*), if any: that of the lowest rank."""
        for fault in self._segment(at)[3]:
            error = fault.refusal(long)
            if error is not None:
                return error
        return None

    def down(self, at: float) -> bool:
        """Whether the provider cannot serve at all at scenario time *at* (outage, the
        failing half of a flap)."""
        return any(fault.is_down(at) for fault in self._segment(at)[0])

    def dead(self, at: float) -> bool:
        """Whether a fault active at scenario time *at* makes every call fail: an
        outage, the failing half of a flap, an ``errors`` fault at rate 1, a refusal of
        every call (a rate limit, a revoked key; not a context overflow, which refuses
        only long requests), or added latency beyond the call's deadline."""
        ruling, extra, rate, refusing = self._segment(at)
        if not ruling:
            return False
        return (
            rate >= 1.0
            or extra >= self.timeout
            or any(fault.is_down(at) for fault in ruling)
            or any(fault.refusal(False) is not None for fault in refusing)
        )

    def added_latency(self, at: float) -> float:
        """Extra latency from latency faults active at *at*."""
        return self._segment(at)[1]

    def error_rate(self, at: float) -> float:
        """Probability that a call at *at* fails although the provider is up."""
        return self._segment(at)[2]

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

    def answer(
        self, request: object = None, at: float | None = None, long: bool = False
    ) -> tuple[float, SimulatedError | None]:
        """Decide how one call starting now goes: how long it takes, and the error it
        raises at the end (``None``: it answers).

        Both engines come here: the ``tasks`` engine through :meth:`handle`, the
        ``events`` engine directly. The latency comes from this provider's random stream
        (so calls must be decided in the order they start), whatever the outcome. Then,
        first match wins: down (an outage, a flap's failing half) is a failure with no
        HTTP answer; a class fault's refusal (:meth:`refusal`) is its HTTP-shaped error;
        the draw for *request* (by default, for this provider's call count) against the
        error rate is a failure with no HTTP answer.

        Args:
          request: the request's key.
          at: the scenario time now, if the caller knows it (saves reading the clock).
          long: whether the request is a long one (a ``context_overflow`` fault refuses
            only those).

        Returns:
          ``(latency in seconds, error or None)``.
        """
        self.calls += 1
        if request is None:
            request = f"call-{self.calls}"
        if at is None:
            at = self.now()
        ruling, extra, rate, refusing = self._segment(at)
        latency = self._sample(self.rng) + extra
        if ruling:
            if self.dead(at):
                self.dead_calls += 1
            if any(fault.is_down(at) for fault in ruling):
                return latency, SimulatedError(f"{self.name}: simulated failure")
            for fault in refusing:
                error = fault.refusal(long)
                if error is not None:
                    return latency, error
        # A draw is in [0, 1): with no chance of an error, it need not be taken.
        if rate > 0 and self.draw(request) < rate:
            return latency, SimulatedError(f"{self.name}: simulated failure")
        return latency, None

    def decide(self, request: object = None, at: float | None = None) -> tuple[float, bool]:
        """:meth:`answer` for a request that is not long, as ``(latency in seconds,
        fails)``."""
        latency, error = self.answer(request, at)
        return latency, error is not None

    def draw(self, request: object) -> float:
        """:func:`error_draw` for this provider and *request*."""
        digest = self._draws.copy()
        digest.update(str(request).encode())
        return int.from_bytes(digest.digest(), "big") / 18446744073709551616.0

    async def handle(self, request: object = None, *, long: bool = False) -> str:
        """Serve one request: take a latency, then raise its :class:`SimulatedError` or
        answer with this provider's name (see :meth:`answer`).

        Args:
          request: the request's key.
          long: whether it is a long request.
        """
        latency, error = self.answer(request, long=long)
        await trio.sleep(latency)
        if error is not None:
            raise error
        return self.name
