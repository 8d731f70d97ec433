"""The resolve hot path: ``get_service_nowait``, ``get_service`` and a lease round per
variant and provider count, beside a bare trio checkpoint, and failover past OPEN
providers; the plain provider and batch loops the other groups reuse.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from _harness import (
    NO_N,
    Config,
    Results,
    SampleFn,
    Spec,
    Target,
    fmt_time,
    measure,
    perf_ns,
    progress,
    sync_sample,
)

from ciris_actors import Registry, open_registry

CAPS_OFFERED = ("structured_output", "function_calling")
CAPS_REQUIRED_LIST = ["structured_output"]
CAPS_REQUIRED_SET = frozenset(CAPS_REQUIRED_LIST)


class Provider:
    """A plain provider: no lifecycle, no health check, so routable at once."""


def register_many(
    registry: Registry, handler: str, count: int, **kwargs: Any
) -> tuple[list[Provider], list[str]]:
    """Register *count* plain providers of service type ``llm`` for *handler*.

    Args:
        registry: The registry (of this package or of a copy of it).
        handler: The handler they are registered for.
        count: How many.
        **kwargs: Passed on to ``register()`` (strategy, capabilities).

    Returns:
        The providers and their names, in the order registered.
    """
    providers = [Provider() for _ in range(count)]
    names = [registry.register(handler, "llm", p, **kwargs) for p in providers]
    return providers, names


def nowait_sample(registry: Registry, handler: str, st: str, caps: Any) -> SampleFn:
    """A batch of ``registry.get_service_nowait(handler, st, caps)`` calls.

    Args:
        registry: The registry resolved on.
        handler: The handler.
        st: The service type.
        caps: The capabilities required, or ``None``.

    Returns:
        The sample function.
    """

    def body(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            registry.get_service_nowait(handler, st, caps)
        return perf_ns() - t0

    return sync_sample(body)


def get_service_sample(registry: Registry, handler: str, st: str, caps: Any) -> SampleFn:
    """A batch of ``await registry.get_service(handler, st, caps)`` calls.

    Args:
        registry: The registry resolved on.
        handler: The handler.
        st: The service type.
        caps: The capabilities required, or ``None``.

    Returns:
        The sample function.
    """

    async def sample(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            await registry.get_service(handler, st, caps)
        return perf_ns() - t0

    return sample


def lease_sample(registry: Registry, handler: str, st: str) -> SampleFn:
    """A batch of ``async with registry.lease(handler, st): pass`` rounds.

    Args:
        registry: The registry leased from.
        handler: The handler.
        st: The service type.

    Returns:
        The sample function.
    """

    async def sample(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            async with registry.lease(handler, st):
                pass
        return perf_ns() - t0

    return sample


async def checkpoint_sample(batch: int) -> int:
    """A batch of bare ``trio.lowlevel.checkpoint()`` calls: the yardstick.

    Args:
        batch: The number of calls.

    Returns:
        Their elapsed ns.
    """
    checkpoint = trio.lowlevel.checkpoint
    t0 = perf_ns()
    for _ in range(batch):
        await checkpoint()
    return perf_ns() - t0


def empty_loop_body(batch: int) -> int:
    """An empty ``for _ in range(batch)`` loop: what every row's loop costs.

    Args:
        batch: The number of steps.

    Returns:
        Their elapsed ns.
    """
    t0 = perf_ns()
    for _ in range(batch):
        pass
    return perf_ns() - t0


VARIANTS = {
    # key: (label, handler, caps passed on resolve)
    "fallback": ("FALLBACK, first available", "h_fallback", None),
    "rr": ("ROUND_ROBIN, one group", "h_rr", None),
    "caps_list": ("caps required (list)", "h_caps", CAPS_REQUIRED_LIST),
    "caps_set": ("caps required (frozenset)", "h_caps", CAPS_REQUIRED_SET),
}


async def bench_providers(n: int, cfg: Config, results: Results) -> None:
    """Measure the resolve, ``get_service``, the lease round and failover at *n* providers.

    The registry is the real one: ``open_registry(health_check_interval=None)`` inside
    ``trio.run``, with plain objects (no ``start``/``is_healthy``, so routable at once)
    registered, and ``trio.testing.wait_all_tasks_blocked()`` awaited before any timing
    so that every provider's actors have started. Each variant has its own (handler,
    service type) key; every variant, the lease and a bare ``trio.lowlevel.checkpoint()``
    are measured in the same interleaved rounds (with the empty loop at the first
    provider count). Failover past k OPEN providers (``force_open`` on the first k of a
    FALLBACK key) is measured in rounds of its own with a k = 0 baseline on a second,
    identical key; the per-skip cost is (p50 with k OPEN - p50 of the baseline) / k.
    Before timing, each resolve is checked to return the provider its case claims.

    Args:
        n: The provider count.
        cfg: The run's settings.
        results: Where the rows go.
    """
    async with open_registry(health_check_interval=None) as registry:
        fallback, _ = register_many(registry, "h_fallback", n)
        rr, _ = register_many(registry, "h_rr", n, strategy="round_robin")
        caps, _ = register_many(registry, "h_caps", n, capabilities=CAPS_OFFERED)
        failover, failover_names = register_many(registry, "h_failover", n)
        await trio.testing.wait_all_tasks_blocked()

        # Sanity: every resolve returns what the case claims to measure.
        assert registry.get_service_nowait("h_fallback", "llm") is fallback[0]
        assert registry.get_service_nowait("h_caps", "llm", CAPS_REQUIRED_LIST) is caps[0]
        assert registry.get_service_nowait("h_failover", "llm") is failover[0]
        first = registry.get_service_nowait("h_rr", "llm")
        second = registry.get_service_nowait("h_rr", "llm")
        assert first in rr
        assert second in rr
        assert n == 1 or first is not second

        specs: list[Spec] = []
        for key, (label, handler, req) in VARIANTS.items():
            specs.append(
                Spec(
                    f"nowait/{key}/{n}",
                    "get_service_nowait",
                    label,
                    n,
                    "trio",
                    nowait_sample(registry, handler, "llm", req),
                )
            )
        for key, (label, handler, req) in VARIANTS.items():
            specs.append(
                Spec(
                    f"get_service/{key}/{n}",
                    "get_service",
                    label,
                    n,
                    "trio",
                    get_service_sample(registry, handler, "llm", req),
                )
            )
        specs.append(
            Spec(
                f"lease/fallback/{n}",
                "lease round",
                "FALLBACK, `async with lease(): pass`",
                n,
                "trio",
                lease_sample(registry, "h_fallback", "llm"),
            )
        )
        specs.append(
            Spec(
                f"checkpoint/{n}",
                "trio.lowlevel.checkpoint()",
                f"yardstick, beside {n} provider(s)",
                n,
                "trio",
                checkpoint_sample,
            )
        )
        if n == cfg.provider_counts[0]:
            specs.append(
                Spec(
                    "empty_loop",
                    "empty `for _ in range(N)` step",
                    "included in every row",
                    NO_N,
                    "sync",
                    sync_sample(empty_loop_body),
                )
            )
        progress(f"{n} provider(s): {len(specs)} cases")
        await measure(specs, cfg, results)
        checkpoint = results.p50(f"checkpoint/{n}")
        for key in VARIANTS:
            row = results.by_key[f"get_service/{key}/{n}"]
            ratio = results.p50(row.key) / checkpoint
            row.note = f"{ratio:.2f}x checkpoint"
            row.extra["ratio_to_checkpoint"] = ratio
        lease = results.by_key[f"lease/fallback/{n}"]
        lease.note = f"{results.p50(lease.key) / checkpoint:.2f}x checkpoint"

        # Failover past k OPEN providers, interleaved with a k = 0 baseline.
        opened = 0
        for k in cfg.open_counts:
            if k >= n:
                continue
            for name in failover_names[opened:k]:
                registry.force_open(name, duration=1e9)
            opened = k
            await trio.testing.wait_all_tasks_blocked()
            assert registry.get_service_nowait("h_failover", "llm") is failover[k]
            group = [
                Spec(
                    f"_base_nowait/{n}/{k}",
                    "baseline",
                    "",
                    n,
                    "trio",
                    nowait_sample(registry, "h_fallback", "llm", None),
                ),
                Spec(
                    f"failover_nowait/{n}/{k}",
                    "get_service_nowait",
                    f"failover past {k} OPEN",
                    n,
                    "trio",
                    nowait_sample(registry, "h_failover", "llm", None),
                ),
                Spec(
                    f"_base_get_service/{n}/{k}",
                    "baseline",
                    "",
                    n,
                    "trio",
                    get_service_sample(registry, "h_fallback", "llm", None),
                ),
                Spec(
                    f"failover_get_service/{n}/{k}",
                    "get_service",
                    f"failover past {k} OPEN",
                    n,
                    "trio",
                    get_service_sample(registry, "h_failover", "llm", None),
                ),
            ]
            progress(f"{n} provider(s): failover past {k} OPEN")
            await measure(group, cfg, results)
            for api in ("nowait", "get_service"):
                base = results.by_key.pop(f"_base_{api}/{n}/{k}")
                results.rows.remove(base)
                row = results.by_key[f"failover_{api}/{n}/{k}"]
                assert base.p50_ns is not None
                assert row.p50_ns is not None
                per_skip = (row.p50_ns - base.p50_ns) / k
                row.note = (
                    f"{per_skip / 1000:+.3f} us per skipped provider"
                    f" (k=0 baseline {base.p50_ns / 1000:.3f} us)"
                )
                row.extra.update(
                    k=k,
                    baseline_p50_ns=base.p50_ns,
                    baseline_p99_ns=base.p99_ns,
                    baseline_samples_ns=base.samples_ns,
                    per_skip_ns=per_skip,
                )


def resolve_targets(results: Results, cfg: Config) -> list[Target]:
    """Judge the resolve targets: latency, flat scaling, the skip cost, ``get_service``.

    Args:
        results: The run's rows.
        cfg: The run's settings.

    Returns:
        The judged targets, in the order printed.
    """
    targets: list[Target] = []
    n_small, n_large = cfg.provider_counts[0], cfg.provider_counts[-1]
    p1 = results.p50(f"nowait/fallback/{n_small}")
    targets.append(
        Target(
            f"get_service_nowait, first available, {n_small} provider: p50 <= 2 us",
            f"p50 {fmt_time(p1)}",
            p1 <= 2000,
        )
    )
    pn = results.p50(f"nowait/fallback/{n_large}")
    targets.append(
        Target(
            f"get_service_nowait at {n_large} providers <= 1.5x the {n_small}-provider p50",
            f"p50 {fmt_time(pn)} = {pn / p1:.2f}x",
            pn <= 1.5 * p1,
        )
    )

    skips = [
        (row.n, int(row.extra["k"]), float(row.extra["per_skip_ns"]))
        for row in results.rows
        if row.key.startswith("failover_nowait/")
    ]
    if skips:
        n, k, best = max(skips, key=lambda s: (s[1], s[0]))
        spread = ", ".join(f"n={sn} k={sk}: {sv / 1000:.3f}" for sn, sk, sv in sorted(skips))
        targets.append(
            Target(
                f"skipping an OPEN provider costs <= 0.3 us (judged at n={n}, k={k})",
                f"{best / 1000:.3f} us per skip (all estimates, us: {spread})",
                best <= 300,
            )
        )

    ratio1 = results.by_key[f"get_service/fallback/{n_small}"].extra["ratio_to_checkpoint"]
    targets.append(
        Target(
            f"get_service <= 1.3x one bare trio checkpoint (FALLBACK, {n_small} provider)",
            f"{ratio1:.2f}x",
            ratio1 <= 1.3,
        )
    )
    worst = max(
        (
            (row.extra["ratio_to_checkpoint"], row)
            for row in results.rows
            if row.case == "get_service" and "ratio_to_checkpoint" in row.extra
        ),
        key=lambda item: item[0],
    )
    targets.append(
        Target(
            "get_service <= 1.3x checkpoint, worst of every variant and n (no OPEN providers)",
            f"{worst[0]:.2f}x ({worst[1].variant}, n={worst[1].n})",
            worst[0] <= 1.3,
        )
    )
    return targets
