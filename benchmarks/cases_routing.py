"""The resolve per routing strategy: ``get_service_nowait`` on groups of FALLBACK,
ROUND_ROBIN, WEIGHTED, LEAST_OUTSTANDING and LATENCY, at each provider count.

Used by ``bench_registry.py`` (with the rest) and ``bench_routing.py`` (alone).
"""

from __future__ import annotations

import trio
import trio.testing
from _harness import Config, Results, Spec, Target, measure, progress
from cases_resolve import nowait_sample, register_many

from ciris_actors import open_registry

#: Strategy -> handler its group is registered under.
STRATEGIES = {
    "fallback": "r_fallback",
    "round_robin": "r_rr",
    "weighted": "r_weighted",
    "least_outstanding": "r_least",
    "latency": "r_latency",
}


async def bench_strategies(n: int, cfg: Config, results: Results) -> None:
    """Measure ``get_service_nowait`` per strategy at *n* providers, in interleaved rounds.

    One registry (``open_registry(health_check_interval=None, seed=1)``), one handler per
    strategy with *n* plain providers in one group. WEIGHTED members have weights 1 to 4
    in turn (a cycle of 2.5 n turns); LATENCY members each have a measured latency (from
    3 n leases before timing), so the comparison of the two picks is the real one;
    nothing is in flight, so LEAST_OUTSTANDING compares two zeros. Checked
    before timing: each resolve returns a provider of its own group.

    Args:
        n: The provider count.
        cfg: The run's settings.
        results: Where the rows go.
    """
    async with open_registry(health_check_interval=None, seed=1) as registry:
        groups = {}
        for strategy, handler in STRATEGIES.items():
            if strategy == "weighted":
                providers = []
                for i in range(n):
                    more, _ = register_many(
                        registry, handler, 1, strategy=strategy, weight=float(1 + i % 4)
                    )
                    providers += more
            else:
                providers, _ = register_many(registry, handler, n, strategy=strategy)
            groups[strategy] = providers
        # Measure the LATENCY members: an unmeasured one wins its picks, so 3 n leases
        # measure nearly all of them (each lease's latency is the real time it took).
        for _ in range(3 * n):
            async with registry.lease("r_latency", "llm"):
                await trio.lowlevel.checkpoint()
        await trio.testing.wait_all_tasks_blocked()
        for strategy, handler in STRATEGIES.items():
            chosen = registry.get_service_nowait(handler, "llm")
            assert any(chosen is p for p in groups[strategy]), strategy
        specs = [
            Spec(
                f"strategy/{strategy}/{n}",
                "get_service_nowait",
                strategy.upper(),
                n,
                "trio",
                nowait_sample(registry, handler, "llm", None),
            )
            for strategy, handler in STRATEGIES.items()
        ]
        progress(f"{n} provider(s): {len(specs)} strategies")
        await measure(specs, cfg, results)


def routing_targets(results: Results, cfg: Config) -> list[Target]:
    """The strategy targets: WEIGHTED and LEAST_OUTSTANDING within 1.5x FALLBACK at every
    provider count and flat (1000 providers <= 1.5x 10); LATENCY within 2x FALLBACK."""
    targets = []
    counts = [n for n in cfg.provider_counts if f"strategy/fallback/{n}" in results.by_key]
    for strategy, limit in (("weighted", 1.5), ("least_outstanding", 1.5), ("latency", 2.0)):
        ratios = [
            results.p50(f"strategy/{strategy}/{n}") / results.p50(f"strategy/fallback/{n}")
            for n in counts
        ]
        targets.append(
            Target(
                f"{strategy.upper()} get_service_nowait <= {limit}x FALLBACK at"
                f" {', '.join(map(str, counts))} providers",
                ", ".join(f"{r:.2f}x" for r in ratios),
                all(r <= limit for r in ratios),
            )
        )
        if strategy != "latency" and 10 in counts and 1000 in counts:
            flat = results.p50(f"strategy/{strategy}/1000") / results.p50(f"strategy/{strategy}/10")
            targets.append(
                Target(
                    f"{strategy.upper()} flat in the group size: 1000 <= 1.5x 10 providers",
                    f"{flat:.2f}x",
                    flat <= 1.5,
                )
            )
    return targets
