"""The unobserved resolve hot path: an older package, from before the metrics counters,
against this one, in the same process and the same interleaved rounds.

A registry no metrics collector observes should resolve exactly as before the control
plane existed: the counting resolve is swapped in (an instance attribute shadowing
``Registry._resolve``) only while a collector is attached. This measures that claim:
``get_service_nowait`` on registries nothing observes, of this package and of an older
commit (``6731334``, the last one before the counters), where the ratio should be 1.0x.

Run from the repository root, giving a checkout of the older commit (a ``git worktree``)::

    git worktree add ../old 6731334
    python benchmarks/bench_control.py --baseline ../old            # full run
    python benchmarks/bench_control.py --baseline ../old --quick    # smoke run
    python benchmarks/bench_control.py --baseline ../old --json out.json

Comparing two processes, one per package, mixes the difference between the packages with
the difference between the processes (memory layout, hash seeds, what else the machine
was doing at the time), which on a 2-vCPU VM can be as large as the differences sought.
So the baseline's ``ciris_actors`` directory is copied to a temporary directory under
another name (``ciris_actors_baseline``; the package uses only relative imports inside,
which is checked) and imported beside this one. Method, as in ``bench_registry.py``:

* ``get_service_nowait``, first available, FALLBACK, plain providers registered with
  ``open_registry(health_check_interval=None)``, at 1, 10, 100 and 1000 providers; no
  observer is attached (no metrics collector, no event subscriber). Checked before
  timing: no registry has a subscriber or a metrics observer, and this package's registries
  run the class's plain ``_resolve`` (not shadowed by the counting one); checked after:
  they counted nothing.
* With the ``control`` extra, two more kinds of registry, of a second copy of this package
  (``ciris_actors_observed_copy``, so that no registry of the ``current`` kind's class is
  ever observed in the process): ``detached``, whose ``RegistryCollector`` was attached,
  used for one resolve and closed before timing (as when a control plane shuts down),
  and ``beside``, never observed itself but of the same class as the ``detached`` ones.
  They show what being observed once leaves behind. ``_unobserve`` removes the
  shadowing ``_resolve`` with ``del``, so a closed collector should leave the registry
  resolving as fast as before (``detached`` about 1.0x ``beside``); until ``29cda5d`` it
  used ``__dict__.pop``, which materialised the registry's ``__dict__`` and left it
  about 1.12x slower on CPython 3.11. A class whose instances had ``_resolve`` set may
  resolve slower in its other instances too (``beside`` against ``current``).
* Per provider count, two registries of each kind; one round takes one sample of each, in
  the order baseline A, current A, beside A, detached A, detached B, beside B, current B,
  baseline B (so that no kind always goes first). A sample times a batch of calls (the
  same batch size for all) with gc disabled; p50 and p99 are over the per-batch means.
* The result per provider count is the mean p50 of the two current registries minus
  (and divided by) the mean p50 of the two baseline ones; the A/B pairs of one kind show
  the noise between identical registries. ``beside`` and ``detached`` are divided by
  ``current``, and ``detached`` also by ``beside`` (the same class: what closing a
  collector leaves on the registry itself).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import trio
import trio.testing
from _harness import (
    FULL,
    QUICK,
    Config,
    Results,
    Spec,
    checkout_info,
    describe_source,
    environment,
    finish_environment,
    fmt_time,
    format_table,
    load_average_line,
    load_package_copy,
    measure,
    progress,
    write_json,
)
from cases_control import resolve_counts, resolve_kind
from cases_resolve import nowait_sample, register_many

import ciris_actors

ALIAS = "ciris_actors_baseline"
#: A second copy of this package, for the registries a collector has observed: a
#: registry class that was ever observed in a process resolves slower ever after (see
#: the module docstring), so they must not share a class with the never-observed ones.
OBSERVED_ALIAS = "ciris_actors_observed_copy"
#: One round's order: each kind's two registries are placed symmetrically about the
#: middle, so that no kind always goes first.
SIDES = (
    ("baseline", "A"),
    ("current", "A"),
    ("beside", "A"),
    ("detached", "A"),
    ("detached", "B"),
    ("beside", "B"),
    ("current", "B"),
    ("baseline", "B"),
)
SIDE_LABEL = {
    "baseline": "baseline package",
    "current": "current package, nothing of it ever observed in this process",
    "beside": "copy of the current package, never observed, beside observed ones",
    "detached": "copy of the current package, its collector attached and closed",
}
#: The sides that run this package's code (a copy or not).
OURS = ("current", "beside", "detached")


def load_observed_copy(scratch: pathlib.Path) -> tuple[ModuleType, Callable[[Any], Any]] | None:
    """Import a second copy of this package, for the registries a collector observes.

    Args:
        scratch: A directory to copy it into.

    Returns:
        The copy and its ``RegistryCollector``, or ``None`` without the ``control`` extra
        (the observed-copy cases are then left out).
    """
    try:
        importlib.import_module("ciris_actors.control")
    except ImportError:
        return None
    copy = load_package_copy(pathlib.Path(ciris_actors.__file__).parent, OBSERVED_ALIAS, scratch)
    control = importlib.import_module(f"{OBSERVED_ALIAS}.control")
    return copy, control.RegistryCollector


async def compare(
    n: int,
    cfg: Config,
    results: Results,
    baseline: ModuleType,
    observed_copy: tuple[ModuleType, Callable[[Any], Any]] | None,
) -> dict[str, Any]:
    """Measure the unobserved resolve of every kind of registry at *n* providers.

    Two registries of each kind, in one group of interleaved rounds in the order of
    :data:`SIDES`, all with the same batch size; checked before and after that nothing
    observes them and that this package's registries counted nothing.

    Args:
        n: The provider count.
        cfg: The run's settings.
        results: Where the rows go.
        baseline: The baseline package (a copy imported under :data:`ALIAS`).
        observed_copy: What :func:`load_observed_copy` returned.

    Returns:
        The group's p50s and p99s, and the ratios between the kinds.
    """
    handler, st = "h_fallback", "llm"
    packages = {"baseline": baseline, "current": ciris_actors}
    if observed_copy is None:
        sides = tuple(s for s in SIDES if s[0] in ("baseline", "current"))
        collector = None
    else:
        copied, collector = observed_copy
        packages["beside"] = packages["detached"] = copied
        sides = SIDES
    async with contextlib.AsyncExitStack() as stack:
        registries = [
            await stack.enter_async_context(
                packages[side].open_registry(health_check_interval=None)
            )
            for side, _ in sides
        ]
        firsts = [register_many(registry, handler, n)[0][0] for registry in registries]
        await trio.testing.wait_all_tasks_blocked()
        assert len({id(package.Registry) for package in packages.values()}) == len(
            set(map(id, packages.values()))
        )
        counted_before: dict[tuple[str, str], tuple[int, int, int]] = {}
        for (side, label), registry, first in zip(sides, registries, firsts, strict=True):
            assert type(registry) is packages[side].Registry
            if side == "detached":
                # A collector that came and went, as when a control plane shuts down.
                assert collector is not None
                attached = collector(registry)
                assert resolve_kind(registry) != "_resolve"
                assert registry.get_service_nowait(handler, st) is first
                attached.close()
            assert registry.get_service_nowait(handler, st) is first
            # Nothing observes any registry now: no subscriber, no collector, and this
            # package's registries run the class's plain resolve (the counting one
            # shadows it only while a collector is attached).
            sup = registry._sup
            assert not sup.bus.has_subscribers
            stats = getattr(sup, "resolve_stats", None)
            assert stats is None or stats.observers == 0
            if side in OURS:
                assert resolve_kind(registry) == "_resolve"
                counted_before[side, label] = resolve_counts(registry)
        specs = [
            Spec(
                f"unobserved/{side}/{copy}/{n}",
                "get_service_nowait",
                f"FALLBACK, first available; {SIDE_LABEL[side]}, registry {copy}",
                n,
                "trio",
                nowait_sample(registry, handler, st, None),
            )
            for (side, copy), registry in zip(sides, registries, strict=True)
        ]
        progress(f"{n} provider(s): baseline vs current package, {len(specs)} cases")
        rows = await measure(specs, cfg, results, batch_groups=["all"] * len(specs))
        for (side, label), registry in zip(sides, registries, strict=True):
            if side in OURS:
                assert resolve_kind(registry) == "_resolve"
                assert resolve_counts(registry) == counted_before[side, label], (
                    "unobserved, it counted"
                )
    p50: dict[tuple[str, str], float] = {}
    for key, row in zip(sides, rows, strict=True):
        assert row.p50_ns is not None
        p50[key] = row.p50_ns
    mean = {
        side: statistics.fmean([p50[side, "A"], p50[side, "B"]])
        for side in dict.fromkeys(side for side, _ in sides)
    }
    base, cur = mean["baseline"], mean["current"]
    out: dict[str, Any] = {
        "n": n,
        "batch": rows[0].batch,
        "p50_ns": {f"{side}/{copy}": value for (side, copy), value in p50.items()},
        "p99_ns": {
            f"{side}/{copy}": row.p99_ns for (side, copy), row in zip(sides, rows, strict=True)
        },
        "baseline_p50_ns": base,
        "current_p50_ns": cur,
        "difference_ns": cur - base,
        "ratio": cur / base,
    }
    for side in ("beside", "detached"):
        if side in mean:
            out[f"{side}_p50_ns"] = mean[side]
            out[f"{side}_ratio_to_current"] = mean[side] / cur
    if "detached" in mean:
        out["detached_ratio_to_beside"] = mean["detached"] / mean["beside"]
    return out


def render(comparisons: list[dict[str, Any]]) -> str:
    """The table: one line per provider count, every column right-aligned.

    Args:
        comparisons: What :func:`compare` returned, per provider count.

    Returns:
        The table's lines, joined.
    """
    copies = "detached_p50_ns" in comparisons[0]
    header = ["n", "baseline A", "baseline B", "current A", "current B", "difference", "ratio"]
    if copies:
        header += [
            "beside A",
            "beside B",
            "/ current",
            "detached A",
            "detached B",
            "/ current",
            "/ beside",
        ]
    lines: list[tuple[str, ...]] = []
    for c in comparisons:
        p = c["p50_ns"]
        line = [
            str(c["n"]),
            fmt_time(p["baseline/A"]),
            fmt_time(p["baseline/B"]),
            fmt_time(p["current/A"]),
            fmt_time(p["current/B"]),
            f"{c['difference_ns']:+.1f} ns",
            f"{c['ratio']:.3f}x",
        ]
        if copies:
            for side in ("beside", "detached"):
                line += [
                    fmt_time(p[f"{side}/A"]),
                    fmt_time(p[f"{side}/B"]),
                    f"{c[f'{side}_ratio_to_current']:.3f}x",
                ]
            line.append(f"{c['detached_ratio_to_beside']:.3f}x")
        lines.append(tuple(line))
    return format_table(header, lines, right=range(len(header)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison, print the table, and write the JSON file.

    Args:
        argv: The command line's arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--baseline",
        required=True,
        type=pathlib.Path,
        metavar="DIR",
        help="a checkout of the older commit (its ciris_actors package is measured)",
    )
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--json", metavar="FILE", help="also write the raw numbers to FILE")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    env = environment()
    baseline_git = checkout_info(args.baseline)
    results = Results()
    comparisons: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        checkout = args.baseline.resolve()
        if not (checkout / "ciris_actors").is_dir():
            raise SystemExit(f"--baseline: no ciris_actors package in {checkout}")
        baseline = load_package_copy(checkout / "ciris_actors", ALIAS, pathlib.Path(scratch))
        observed_copy = load_observed_copy(pathlib.Path(scratch))

        async def run() -> None:
            for n in cfg.provider_counts:
                comparisons.append(await compare(n, cfg, results, baseline, observed_copy))

        trio.run(run)
    elapsed = time.perf_counter() - started
    finish_environment(env)
    source = env["package_source"]
    print(
        f"unobserved resolve, older package against this one, {env['date_utc']} UTC:"
        f" Python {env['python']},"
        f" trio {env['trio']}, {env['cpu_count']} CPUs"
    )
    print(f"current package: {describe_source(source)}")
    package_state = "as committed" if baseline_git["package_clean"] else "DIFFERS from the commit"
    print(
        f"baseline package: git {baseline_git['git_commit']} (package directory"
        f" {package_state}), source sha256 {baseline_git['source_sha256']}"
    )
    load_line = load_average_line(env)
    if load_line is not None:
        print(load_line)
    print(
        f"get_service_nowait, FALLBACK, first available, no observer attached during the"
        f" rounds; {cfg.samples} samples per case after {cfg.warmup} warm-up rounds; p50 of"
        f" per-batch means; rounds interleave every case; run took {elapsed:.0f} s"
    )
    print()
    print(render(comparisons))
    if comparisons and "detached_p50_ns" in comparisons[0]:
        print()
        for side in ("current", "beside", "detached"):
            print(f"{side}: {SIDE_LABEL[side]}")
        print(f"(the copy is {OBSERVED_ALIAS}, copied from the current package's directory)")
    if args.json:
        payload = {
            "environment": env,
            "baseline": baseline_git,
            "config": cfg.__dict__,
            "elapsed_s": elapsed,
            "comparisons": comparisons,
            "rows": [row.as_json() for row in results.rows],
        }
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
