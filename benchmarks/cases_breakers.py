"""Circuit breakers: admission and record on our ``CircuitBreaker``, and our ``Guard``
around a no-op call, against the guarded no-op calls of pybreaker, purgatory, aiobreaker
and circuitbreaker, synchronous under trio and asynchronous under asyncio.
"""

from __future__ import annotations

import time

from _harness import (
    NO_N,
    Config,
    Results,
    Row,
    Spec,
    Target,
    fmt_time,
    measure,
    package_version,
    perf_ns,
    progress,
    sync_sample,
)

from ciris_actors import CircuitBreaker, Guard


def _noop() -> None:
    return None


async def _anoop() -> None:
    return None


def ours_sync_specs() -> list[Spec]:
    """Our breaker, synchronous: the minimal admission + record, and a like-for-like one.

    The like-for-like case reads ``time.monotonic()`` twice and calls ``noop()``, as the
    libraries' guarded calls do.

    Returns:
        The two cases.
    """
    cb = CircuitBreaker("bench")
    now = time.monotonic()

    def minimal(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            if cb.acquire(now):
                cb.record_success(now)
        return perf_ns() - t0

    cb2 = CircuitBreaker("bench2")
    monotonic = time.monotonic

    def with_call(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            if cb2.acquire(monotonic()):
                _noop()
                cb2.record_success(monotonic())
        return perf_ns() - t0

    version = package_version("ciris-actors")
    return [
        Spec(
            "breaker/ours",
            f"breaker: ciris_actors {version}",
            "if cb.acquire(now): cb.record_success(now)",
            NO_N,
            "sync",
            sync_sample(minimal),
        ),
        Spec(
            "breaker/ours_call",
            f"breaker: ciris_actors {version}",
            "same + 2 monotonic() reads + noop() call",
            NO_N,
            "sync",
            sync_sample(with_call),
        ),
    ]


class _Nothing:
    """A context manager that does nothing: the cost of a ``with`` statement itself."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


def guard_sync_specs() -> list[Spec]:
    """Our ``Guard`` around a no-op function, with ``time.monotonic`` as its clock: as a
    decorator and as a ``with`` block, and the cost of a ``with`` statement that does
    nothing, for scale.

    Returns:
        The three cases.
    """
    version = package_version("ciris-actors")
    guarded = Guard(CircuitBreaker("bench-guard"), time.monotonic)(_noop)
    guard = Guard(CircuitBreaker("bench-guard-with"), time.monotonic)
    nothing = _Nothing()

    def decorated(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            guarded()
        return perf_ns() - t0

    def block(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            with guard:
                _noop()
        return perf_ns() - t0

    def empty_with(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            with nothing:
                _noop()
        return perf_ns() - t0

    return [
        Spec(
            "breaker/guard",
            f"breaker: ciris_actors {version}",
            "@Guard(cb, time.monotonic)-decorated noop()",
            NO_N,
            "sync",
            sync_sample(decorated),
        ),
        Spec(
            "breaker/guard_with",
            f"breaker: ciris_actors {version}",
            "with guard: noop()  (clock time.monotonic)",
            NO_N,
            "sync",
            sync_sample(block),
        ),
        Spec(
            "breaker/empty_with",
            "breaker: yardstick",
            "with cm: noop()  (cm's __enter__/__exit__ do nothing)",
            NO_N,
            "sync",
            sync_sample(empty_with),
        ),
    ]


def library_sync_specs() -> tuple[list[Spec], list[Row]]:
    """The four libraries' synchronous guarded no-op calls.

    Returns:
        The cases of the libraries that can be imported, and a row for each that cannot.
    """
    specs: list[Spec] = []
    missing: list[Row] = []

    def absent(dist: str, error: Exception) -> None:
        missing.append(
            Row(
                key=f"breaker/{dist}/missing",
                case=f"breaker: {dist}",
                variant="not importable",
                n=NO_N,
                runtime="-",
                cells=("-", "-"),
                note=f"{type(error).__name__}: {error} (pip install 'ciris-actors[bench]')",
            )
        )

    try:
        import pybreaker

        pb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)

        def pybreaker_body(batch: int) -> int:
            t0 = perf_ns()
            for _ in range(batch):
                pb.call(_noop)
            return perf_ns() - t0

        specs.append(
            Spec(
                "breaker/pybreaker",
                f"breaker: pybreaker {package_version('pybreaker')}",
                "cb.call(noop)",
                NO_N,
                "sync",
                sync_sample(pybreaker_body),
            )
        )
    except ImportError as exc:
        absent("pybreaker", exc)

    try:
        import purgatory

        factory = purgatory.SyncCircuitBreakerFactory(default_threshold=5, default_ttl=60)
        factory.initialize()
        brk = factory.get_breaker("bench")

        def purgatory_body(batch: int) -> int:
            t0 = perf_ns()
            for _ in range(batch):
                with brk:
                    _noop()
            return perf_ns() - t0

        specs.append(
            Spec(
                "breaker/purgatory",
                f"breaker: purgatory {package_version('purgatory')}",
                "with brk: noop()  (brk fetched once)",
                NO_N,
                "sync",
                sync_sample(purgatory_body),
            )
        )
    except ImportError as exc:
        absent("purgatory", exc)

    try:
        import aiobreaker

        ab = aiobreaker.CircuitBreaker(fail_max=5)

        def aiobreaker_body(batch: int) -> int:
            t0 = perf_ns()
            for _ in range(batch):
                ab.call(_noop)
            return perf_ns() - t0

        specs.append(
            Spec(
                "breaker/aiobreaker",
                f"breaker: aiobreaker {package_version('aiobreaker')}",
                "cb.call(noop)",
                NO_N,
                "sync",
                sync_sample(aiobreaker_body),
            )
        )
    except ImportError as exc:
        absent("aiobreaker", exc)

    try:
        import circuitbreaker

        guarded = circuitbreaker.circuit(failure_threshold=5, recovery_timeout=60)(_noop)

        def circuitbreaker_body(batch: int) -> int:
            t0 = perf_ns()
            for _ in range(batch):
                guarded()
            return perf_ns() - t0

        specs.append(
            Spec(
                "breaker/circuitbreaker",
                f"breaker: circuitbreaker {package_version('circuitbreaker')}",
                "@circuit-decorated noop()",
                NO_N,
                "sync",
                sync_sample(circuitbreaker_body),
            )
        )
    except ImportError as exc:
        absent("circuitbreaker", exc)

    return specs, missing


async def library_async_specs() -> tuple[list[Spec], list[Row]]:
    """Async guarded no-op calls, to be measured under asyncio (what they are built for).

    Ours is in the same loop for comparison. Informational: the target uses the sync rows.

    Returns:
        The cases (ours first), and a row for each library that cannot be imported.
    """
    specs: list[Spec] = []
    missing: list[Row] = []
    cb = CircuitBreaker("bench-async")
    now = time.monotonic()

    async def ours(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            if cb.acquire(now):
                await _anoop()
                cb.record_success(now)
        return perf_ns() - t0

    # Names of their own: the library cases below rebind ``guarded`` in this scope.
    guard_anoop = Guard(CircuitBreaker("bench-guard-async"), time.monotonic)(_anoop)
    async_guard = Guard(CircuitBreaker("bench-guard-async-with"), time.monotonic)

    async def guard_decorated(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            await guard_anoop()
        return perf_ns() - t0

    async def guard_block(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            async with async_guard:
                await _anoop()
        return perf_ns() - t0

    version = package_version("ciris-actors")
    specs.append(
        Spec(
            "breaker/ours_async",
            f"breaker: ciris_actors {version}",
            "acquire; await anoop(); record_success",
            NO_N,
            "asyncio",
            ours,
        )
    )
    specs.append(
        Spec(
            "breaker/guard_async",
            f"breaker: ciris_actors {version}",
            "await @Guard(cb, time.monotonic)-decorated anoop()",
            NO_N,
            "asyncio",
            guard_decorated,
        )
    )
    specs.append(
        Spec(
            "breaker/guard_async_with",
            f"breaker: ciris_actors {version}",
            "async with guard: await anoop()",
            NO_N,
            "asyncio",
            guard_block,
        )
    )

    def absent(dist: str, error: Exception) -> None:
        missing.append(
            Row(
                key=f"breaker/{dist}/async-missing",
                case=f"breaker: {dist} (async)",
                variant="not importable",
                n=NO_N,
                runtime="-",
                cells=("-", "-"),
                note=f"{type(error).__name__}: {error}",
            )
        )

    try:
        import aiobreaker

        ab = aiobreaker.CircuitBreaker(fail_max=5)

        async def aiobreaker_fn(batch: int) -> int:
            t0 = perf_ns()
            for _ in range(batch):
                await ab.call_async(_anoop)
            return perf_ns() - t0

        specs.append(
            Spec(
                "breaker/aiobreaker_async",
                f"breaker: aiobreaker {package_version('aiobreaker')}",
                "await cb.call_async(anoop)",
                NO_N,
                "asyncio",
                aiobreaker_fn,
            )
        )
    except ImportError as exc:
        absent("aiobreaker", exc)

    try:
        import purgatory

        factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=60)
        await factory.initialize()
        brk = await factory.get_breaker("bench")

        async def purgatory_fn(batch: int) -> int:
            t0 = perf_ns()
            for _ in range(batch):
                async with brk:
                    await _anoop()
            return perf_ns() - t0

        specs.append(
            Spec(
                "breaker/purgatory_async",
                f"breaker: purgatory {package_version('purgatory')}",
                "async with brk: await anoop()",
                NO_N,
                "asyncio",
                purgatory_fn,
            )
        )
    except ImportError as exc:
        absent("purgatory", exc)

    try:
        import circuitbreaker

        guarded = circuitbreaker.circuit(failure_threshold=5, recovery_timeout=60)(_anoop)

        async def circuitbreaker_fn(batch: int) -> int:
            t0 = perf_ns()
            for _ in range(batch):
                await guarded()
            return perf_ns() - t0

        specs.append(
            Spec(
                "breaker/circuitbreaker_async",
                f"breaker: circuitbreaker {package_version('circuitbreaker')}",
                "await @circuit-decorated anoop()",
                NO_N,
                "asyncio",
                circuitbreaker_fn,
            )
        )
    except ImportError as exc:
        absent("circuitbreaker", exc)

    return specs, missing


async def bench_breakers_trio(cfg: Config, results: Results) -> None:
    """Measure the synchronous breaker calls, ours and the libraries', in one group.

    ``if cb.acquire(now): cb.record_success(now)`` on our ``CircuitBreaker`` (a fixed
    ``now``), and our ``Guard`` around ``noop()`` with ``time.monotonic`` as its clock
    (decorated, and as a ``with`` block, beside a ``with`` statement that does nothing),
    beside each library's minimal guarded no-op call through its synchronous API:
    pybreaker ``cb.call(noop)``, purgatory ``with brk: noop()`` (the breaker fetched
    once), aiobreaker ``cb.call(noop)`` and a ``@circuit``-decorated ``noop()``. A
    library that cannot be imported gets a row saying so.

    Args:
        cfg: The run's settings.
        results: Where the rows go.
    """
    specs, missing = library_sync_specs()
    ours = [*ours_sync_specs(), *guard_sync_specs()]
    progress(f"breakers (sync): {len(ours) + len(specs)} cases")
    await measure([*ours, *specs], cfg, results)
    for row in missing:
        results.add(row)


async def bench_breakers_asyncio(cfg: Config, results: Results) -> None:
    """Measure the async breaker calls in one group; to be run under ``asyncio.run``.

    Args:
        cfg: The run's settings.
        results: Where the rows go.
    """
    specs, missing = await library_async_specs()
    progress(f"breakers (asyncio): {len(specs)} cases")
    await measure(specs, cfg, results)
    for row in missing:
        results.add(row)


def breaker_targets(results: Results) -> list[Target]:
    """Judge the breaker targets: <= 1 us, and >= 2x faster than the fastest library;
    and the Guard's: a guarded no-op call, clock read included, >= 2x faster than the
    fastest library (decorated, as the issue has it, and as a ``with`` block).

    Args:
        results: The run's rows.

    Returns:
        The judged targets, in the order printed.
    """
    targets: list[Target] = []
    ours = results.p50("breaker/ours")
    targets.append(
        Target("breaker admission + record <= 1 us", f"p50 {fmt_time(ours)}", ours <= 1000)
    )
    library_keys = {
        "breaker/pybreaker",
        "breaker/purgatory",
        "breaker/aiobreaker",
        "breaker/circuitbreaker",
    }
    libs = [
        (row.p50_ns, row.case)
        for row in results.rows
        if row.key in library_keys and row.p50_ns is not None
    ]
    if libs:
        fastest, name = min(libs)
        ours_call = results.p50("breaker/ours_call")
        targets.append(
            Target(
                "breaker >= 2x faster than the fastest of the four libraries (sync)",
                f"fastest {name.removeprefix('breaker: ')} p50 {fmt_time(fastest)}:"
                f" {fastest / ours:.1f}x (with clock reads + noop call:"
                f" {fastest / ours_call:.1f}x)",
                fastest >= 2 * ours,
            )
        )
        for key, how in (("breaker/guard", "decorated"), ("breaker/guard_with", "`with guard:`")):
            guard = results.p50(key)
            targets.append(
                Target(
                    f"Guard ({how} noop, clock read) >= 2x faster than the fastest library",
                    f"p50 {fmt_time(guard)}; fastest {name.removeprefix('breaker: ')}"
                    f" p50 {fmt_time(fastest)}: {fastest / guard:.2f}x",
                    fastest >= 2 * guard,
                )
            )
    else:
        targets.append(
            Target("breaker >= 2x faster than the fastest library", "no library importable", None)
        )
    return targets
