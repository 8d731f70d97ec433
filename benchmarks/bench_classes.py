"""What error classification costs ``Registry.call``: registries with and without a
classifier, in the same process and the same interleaved rounds.

Run from the repository root::

    python benchmarks/bench_classes.py            # full run (about a minute on 2 cores)
    python benchmarks/bench_classes.py --quick    # smoke run

Method (the timing is ``_harness.py``'s, as in ``bench_registry.py``):

* Two registries of plain providers (nothing to start or check), opened with
  ``open_registry(health_check_interval=None)``: ``plain``, without a classifier, and
  ``classified``, with ``classify=classify_http`` (the ready HTTP classifier, which
  duck-types its way through the error's attributes: the dearest classifier we ship).
* ``call, served``: ``await registry.call("h", "llm", ok)`` with one provider that
  answers. No error, so the classifier is never asked: this is what having one costs a
  call that succeeds.
* ``call, failover``: two providers; the first raises an error shaped like an HTTP 500
  (``status_code = 500``), the call fails over and the second answers. Each call asks
  the classifier once (``classify_http`` says ``failure``, as no classifier would). The
  breakers' ``failure_threshold`` is 10**9, so the first provider stays CLOSED and every
  call takes the same path.
* Two registries of each variant and kind (A and B: the difference between them is the
  noise between identical registries). Each round takes one sample of every case, in the
  order plain A, classified A, classified B, plain B per kind, so that neither variant
  always goes first. The mean p50 of the two classified registries of a kind is divided
  by that of the two plain ones. Target: <= 1.05x for both kinds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from time import perf_counter_ns as perf_ns
from typing import Any

import trio
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
    print_run,
    render_targets,
)

from ciris_actors import CircuitBreakerConfig, Registry, classify_http, open_registry

#: Breakers that never open here: every failover call takes the same path.
NEVER_OPEN = CircuitBreakerConfig(failure_threshold=10**9)


class ServerError(Exception):
    """An error shaped like an HTTP client's 500 (``status_code``)."""

    status_code = 500


class Answers:
    """A provider that answers."""


class Fails:
    """A provider whose every call raises a :class:`ServerError`."""


async def ok(instance: Any) -> int:
    if isinstance(instance, Fails):
        raise ServerError("internal error")
    return 1


def call_sample(registry: Registry) -> Any:
    async def sample(batch: int) -> int:
        t0 = perf_ns()
        for _ in range(batch):
            await registry.call("h", "llm", ok)
        return perf_ns() - t0

    return sample


async def run(cfg: Config, results: Results) -> None:
    async with trio.open_nursery() as nursery:
        registries: dict[str, Registry] = {}
        for kind in ("served", "failover"):
            for variant in ("plain", "classified"):
                for copy in ("A", "B"):
                    registries[f"{kind}/{variant}/{copy}"] = await nursery.start(
                        _serve_registry, kind, variant == "classified"
                    )
        specs = []
        groups = []
        for kind, case, n in (("served", "call, served", 1), ("failover", "call, failover", 2)):
            # A, then B in the opposite order: no kind always goes first.
            for key in (
                f"{kind}/plain/A",
                f"{kind}/classified/A",
                f"{kind}/classified/B",
                f"{kind}/plain/B",
            ):
                variant = "no classifier" if "/plain/" in key else "classify=classify_http"
                specs.append(
                    Spec(
                        key, case, f"{variant} ({key[-1]})", n, "trio", call_sample(registries[key])
                    )
                )
                groups.append(kind)
        await measure(specs, cfg, results, batch_groups=groups)
        for key, registry in registries.items():
            first = registry.snapshot()[0]
            if key.startswith("failover"):
                assert first.outcomes["failure"] > 0, "the failover path was not taken"
            assert first.breaker["state"] == "closed"
        nursery.cancel_scope.cancel()


async def _serve_registry(
    kind: str, classified: bool, *, task_status: trio.TaskStatus[Registry]
) -> None:
    """Open a registry for *kind* of call, hand it out, and keep it open until cancelled."""
    async with open_registry(
        health_check_interval=None,
        default_breaker=NEVER_OPEN,
        classify=classify_http if classified else None,
    ) as registry:
        if kind == "failover":
            registry.register("h", "llm", Fails(), priority="HIGH")
        registry.register("h", "llm", Answers(), priority="LOW")
        task_status.started(registry)
        await trio.sleep_forever()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table and the targets.

    Args:
        argv: The command line's arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    env = environment()
    results = Results()
    trio.run(run, cfg, results)
    finish_environment(env)
    print_run("error-class benchmark", env, cfg, results, args.quick)
    targets = []
    for kind, label in (("served", "a call that succeeds"), ("failover", "a call that fails over")):
        classified = (results.p50(f"{kind}/classified/A") + results.p50(f"{kind}/classified/B")) / 2
        plain = (results.p50(f"{kind}/plain/A") + results.p50(f"{kind}/plain/B")) / 2
        ratio = classified / plain
        targets.append(
            Target(
                f"classifier on the path of {label} <= 1.05x without",
                f"{ratio:.3f}x",
                ratio <= 1.05,
            )
        )
    print(render_targets(targets, args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
