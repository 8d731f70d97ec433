"""Seed sweeps: one scenario over many seeds, on a ``concurrent.futures`` executor.

Each seed is an independent run (:func:`run_seed`, a plain module-level function, so a
process pool or a Dask cluster can run it); :func:`sweep` gathers what each run came to
(:class:`SeedOutcome`), and :class:`SweepResult` says how the results are spread and
which seeds did worst. The aggregate depends only on the scenario, the seeds and the
engine, never on how many workers ran them or in which order they finished.
"""

from __future__ import annotations

import math
import os
import re
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import (
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    as_completed,
)
from contextlib import contextmanager
from typing import Any

import attrs

from .engines import Engine
from .model import Scenario
from .report import dumps
from .runner import run_scenario

__all__ = [
    "MAX_SEEDS",
    "SeedOutcome",
    "Spread",
    "SweepResult",
    "cluster",
    "parse_seeds",
    "run_seed",
    "sweep",
]

#: Seeds one sweep takes at most (a typo such as ``1-10000000000`` fails fast).
MAX_SEEDS = 1_000_000
#: Seeds the result lists as the worst.
WORST = 5

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_seeds(text: str) -> tuple[int, ...]:
    """The seeds *text* names: ``7``, ``1-1000`` (inclusive), or a comma-separated list of
    those (``1-10,42``); each seed once, in increasing order.

    Raises:
      ValueError: *text* is not such a list, a range runs backwards, or it names more
        than :data:`MAX_SEEDS` seeds.
    """
    seeds: set[int] = set()
    for part in text.split(","):
        match = _RANGE.match(part)
        if match is None:
            raise ValueError(
                f"expected seeds as N, FIRST-LAST or a comma-separated list of them"
                f" (e.g. 1-1000), got {text!r}"
            )
        first = int(match.group(1))
        last = first if match.group(2) is None else int(match.group(2))
        if last < first:
            raise ValueError(f"the range {part.strip()!r} runs backwards")
        if last - first + 1 + len(seeds) > MAX_SEEDS:
            raise ValueError(f"{text!r} names more than {MAX_SEEDS:,} seeds")
        seeds.update(range(first, last + 1))
    return tuple(sorted(seeds))


@attrs.frozen
class SeedOutcome:
    """What one seed's run came to, as much of its report as a sweep keeps.

    Attributes:
      seed: the seed.
      sent: requests sent.
      succeeded: requests served.
      availability: succeeded over sent (``None``: nothing was sent).
      oracle_gap: how far below a router that knew every failure in advance
        (``None``: nothing was sent).
      p99_latency: the 99th percentile latency of served requests, if any.
      detection: per fault, seconds until it was noticed (``None``: never).
      failover: per fault, seconds until its traffic moved (``None``: never).
      violations: routing rules broken (lost requests included).
      rules: the rules of the violations the report lists (its first hundred), each
        once, sorted.
      lost: requests not accounted for.
    """

    seed: int
    sent: int
    succeeded: int
    availability: float | None
    oracle_gap: float | None
    p99_latency: float | None
    detection: tuple[float | None, ...]
    failover: tuple[float | None, ...]
    violations: int
    rules: tuple[str, ...]
    lost: int

    @property
    def ok(self) -> bool:
        """Whether every routing rule held and every request was accounted for."""
        return not self.violations and not self.lost

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "seed": self.seed,
            "sent": self.sent,
            "succeeded": self.succeeded,
            "availability": self.availability,
            "oracle_gap": self.oracle_gap,
            "p99_latency": self.p99_latency,
            "detection": list(self.detection),
            "failover": list(self.failover),
            "violations": self.violations,
            "rules": list(self.rules),
            "lost": self.lost,
        }


def run_seed(scenario: Scenario, seed: int, engine: Engine = "events") -> SeedOutcome:
    """Run *scenario* with *seed* on *engine* and keep what a sweep needs.

    A module-level function, so any executor (a process pool, a Dask cluster) can run
    it by reference.
    """
    report = run_scenario(scenario, seed=seed, engine=engine)
    requests = report.requests
    counted = requests.succeeded + requests.failed + requests.rejected + requests.shed
    return SeedOutcome(
        seed=seed,
        sent=requests.sent,
        succeeded=requests.succeeded,
        availability=report.availability,
        oracle_gap=report.availability_gap,
        p99_latency=report.latency.p99,
        detection=tuple(f.time_to_detect for f in report.faults),
        failover=tuple(f.time_to_failover for f in report.faults),
        violations=report.invariants.violation_count,
        rules=tuple(sorted({v.rule for v in report.invariants.violations})),
        lost=requests.sent - counted,
    )


@attrs.frozen
class Spread:
    """How one measure is spread over the runs of a sweep (nearest-rank percentiles).

    Attributes:
      count: runs (or faults) that had a value.
      missing: those that had none (no request served, a fault never noticed).
      low, p50, p90, p99, high: the smallest, the percentiles and the largest value.
      mean: the mean value.
    """

    count: int
    missing: int
    low: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    high: float | None
    mean: float | None

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Spread:
        """The spread of *values* (``None`` counts as missing)."""
        ordered = sorted(v for v in values if v is not None)
        missing = len(values) - len(ordered)
        n = len(ordered)
        if not n:
            return cls(0, missing, None, None, None, None, None, None)

        def rank(q: float) -> float:
            return ordered[min(n - 1, max(0, math.ceil(q * n) - 1))]

        return cls(
            count=n,
            missing=missing,
            low=ordered[0],
            p50=rank(0.50),
            p90=rank(0.90),
            p99=rank(0.99),
            high=ordered[-1],
            mean=math.fsum(ordered) / n,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return attrs.asdict(self)


@attrs.frozen
class SweepResult:
    """A scenario run over many seeds.

    Attributes:
      scenario: the scenario's name.
      engine: the engine every run used.
      outcomes: one per seed, in seed order.
    """

    scenario: str
    engine: Engine
    outcomes: tuple[SeedOutcome, ...]

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds run, in order."""
        return tuple(o.seed for o in self.outcomes)

    @property
    def ok(self) -> bool:
        """Whether every seed held every rule and accounted for every request."""
        return all(o.ok for o in self.outcomes)

    @property
    def broken(self) -> tuple[SeedOutcome, ...]:
        """The seeds that broke a routing rule or lost a request."""
        return tuple(o for o in self.outcomes if not o.ok)

    def spreads(self) -> dict[str, Spread]:
        """Each measure's spread over the seeds (detection and failover: over every fault
        of every seed)."""
        outcomes = self.outcomes
        return {
            "availability": Spread.of([o.availability for o in outcomes]),
            "oracle_gap": Spread.of([o.oracle_gap for o in outcomes]),
            "p99_latency": Spread.of([o.p99_latency for o in outcomes]),
            "detection": Spread.of([t for o in outcomes for t in o.detection]),
            "failover": Spread.of([t for o in outcomes for t in o.failover]),
            "violations": Spread.of([float(o.violations) for o in outcomes]),
        }

    def worst(self, limit: int = WORST) -> tuple[SeedOutcome, ...]:
        """The seeds that did worst, worst first: rules broken or requests lost first,
        then the lowest availability, then the widest gap to the best possible router
        (ties by seed)."""

        def badness(o: SeedOutcome) -> tuple[float, ...]:
            availability = 1.0 if o.availability is None else o.availability
            gap = 0.0 if o.oracle_gap is None else o.oracle_gap
            return (-(o.violations + o.lost), availability, -gap, o.seed)

        return tuple(sorted(self.outcomes, key=badness)[:limit])

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data: the aggregate, the worst seeds and every seed's outcome."""
        return {
            "scenario": self.scenario,
            "engine": self.engine,
            "seeds": len(self.outcomes),
            "ok": self.ok,
            "broken_seeds": [o.seed for o in self.broken],
            "spreads": {name: s.as_dict() for name, s in self.spreads().items()},
            "worst": [o.seed for o in self.worst()],
            "outcomes": [o.as_dict() for o in self.outcomes],
        }

    def to_json(self) -> str:
        """:meth:`as_dict` as deterministic JSON text (as ``Report.to_json`` writes it)."""
        return dumps(self.as_dict())


_ADDRESS = re.compile(r"^(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+):(\d{1,5})$")


@contextmanager
def cluster(address: str, *, timeout: float = 10.0) -> Iterator[tuple[Executor, int]]:
    """Connect to the Dask scheduler at *address* (``tcp://HOST:PORT``) for the block.

    Yields:
      A ``concurrent.futures`` executor that runs calls on the cluster's workers (pass
      it to :func:`sweep`), and how many workers the cluster has. Its workers need
      ``ciris-actors`` installed.

    Raises:
      ImportError: ``dask.distributed`` is not installed (extra ``cluster``).
      ValueError: *address* is not ``tcp://HOST:PORT`` (or ``tls://``).
      ConnectionError: no scheduler answered there within *timeout* seconds.
    """
    if _ADDRESS.match(address) is None:
        raise ValueError(f"expected tcp://HOST:PORT, got {address!r}")
    from distributed import Client

    try:
        client = Client(address, timeout=timeout, set_as_default=False)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConnectionError(f"no Dask scheduler answered at {address} ({reason})") from None
    executor = client.get_executor()  # type: ignore[no-untyped-call]
    try:
        yield executor, len(client.nthreads())  # type: ignore[no-untyped-call]
    finally:
        # Whatever is still queued is cancelled in one call, then the client goes.
        executor.shutdown(wait=False)
        client.close()  # type: ignore[no-untyped-call]


def _abandon(pool: Executor, futures: list[Future[SeedOutcome]], own: bool) -> None:
    """After an error or an interrupt: drop the seeds not started, and do not wait for
    the ones running. A pool of our own is shut down; a standard-library pool given by
    the caller has its calls cancelled one by one (cheap); any other executor (a Dask
    cluster's, where each cancel is a round trip) is left to its owner, who cancels in
    bulk by shutting it down or closing its client."""
    if own:
        pool.shutdown(wait=False, cancel_futures=True)
    elif isinstance(pool, (ProcessPoolExecutor, ThreadPoolExecutor)):
        for future in futures:
            future.cancel()


#: ``progress(seeds_done, seeds_total)``.
SweepProgress = Callable[[int, int], None]


def _ignore_interrupts() -> None:
    """Process-pool workers leave Ctrl-C to the parent, which stops the sweep."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def sweep(
    scenario: Scenario,
    seeds: Iterable[int],
    *,
    engine: Engine = "events",
    executor: Executor | None = None,
    jobs: int | None = None,
    progress: SweepProgress | None = None,
) -> SweepResult:
    """Run *scenario* once per seed and gather the outcomes.

    Args:
      scenario: what to run.
      seeds: the seeds (each once).
      engine: the simulation engine of every run.
      executor: where to run them (a Dask ``Client.get_executor()``, a thread pool...);
        by default a process pool of *jobs* workers, shut down at the end. After an
        error or an interrupt, the seeds not started are dropped: from the default pool
        or a standard-library pool at once; on any other executor, when its owner shuts
        it down (:func:`cluster` does).
      jobs: workers of the default process pool (default: the CPU count).
      progress: called as ``progress(done, total)`` after each seed.

    Raises:
      ValueError: no seeds, a seed given twice, or *jobs* below 1.
      BaseException: what a run raised (the remaining runs are cancelled).
    """
    wanted = list(seeds)
    if not wanted:
        raise ValueError("seeds: none given")
    if len(set(wanted)) != len(wanted):
        raise ValueError("seeds: each seed may be given once")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"jobs: expected an integer >= 1, got {jobs!r}")
    own = executor is None
    pool: Executor = (
        ProcessPoolExecutor(max_workers=jobs or os.cpu_count(), initializer=_ignore_interrupts)
        if executor is None
        else executor
    )
    outcomes: list[SeedOutcome] = []
    futures: list[Future[SeedOutcome]] = []
    finished = False
    try:
        for seed in wanted:  # one at a time, so an interrupt here leaves nothing behind
            futures.append(pool.submit(run_seed, scenario, seed, engine))
        for future in as_completed(futures):
            outcomes.append(future.result())
            if progress is not None:
                progress(len(outcomes), len(wanted))
        finished = True
    finally:
        if not finished:
            _abandon(pool, futures, own)
        elif own:
            pool.shutdown()
    outcomes.sort(key=lambda o: o.seed)
    return SweepResult(scenario=scenario.name, engine=engine, outcomes=tuple(outcomes))
