"""The cost of the registry's always-on resolve counters: an older package against this one,
in the same process and the same interleaved rounds.

Run from the repository root, giving a checkout of the older commit (a ``git worktree``)::

    git worktree add ../old 6731334
    python benchmarks/bench_control.py --baseline ../old            # full run
    python benchmarks/bench_control.py --baseline ../old --quick    # smoke run
    python benchmarks/bench_control.py --baseline ../old --json out.json

Comparing two processes, one per package, mixes the difference between the packages with
the difference between the processes (memory layout, hash seeds, what else the machine
was doing at the time), which on a 2-vCPU VM is as large as the counters' cost. So the
baseline's ``ciris_actors`` directory is copied to a temporary directory under another
name (``ciris_actors_baseline``; the package uses only relative imports inside, which is
checked) and imported beside this one. Method, as in ``bench_registry.py``:

* ``get_service_nowait``, first available, FALLBACK, plain providers registered with
  ``open_registry(health_check_interval=None)``, at 1, 10, 100 and 1000 providers; no
  observer is attached (no metrics collector, no event subscriber), so what the newer
  package adds is the always-on counting only.
* Per provider count, two registries of each package; one round takes one sample of each,
  in the order baseline A, current A, current B, baseline B (so neither package always
  goes first). A sample times a batch of calls (the same batch size for all four) with
  gc disabled; p50 and p99 are over the per-batch means.
* The result per provider count is the mean p50 of the two current registries minus
  (and divided by) the mean p50 of the two baseline ones; the A/B pairs of one package
  show the noise between identical registries.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import trio
import trio.testing
from bench_registry import (
    FULL,
    QUICK,
    Config,
    Results,
    Spec,
    describe_source,
    environment,
    fmt_time,
    load_average,
    loaded_modules_check,
    measure,
    nowait_sample,
    progress,
    register_many,
)

import ciris_actors

ALIAS = "ciris_actors_baseline"
SIDES = (("baseline", "A"), ("current", "A"), ("current", "B"), ("baseline", "B"))


def load_baseline(checkout: pathlib.Path, scratch: pathlib.Path) -> ModuleType:
    """Import the ``ciris_actors`` package of *checkout* as :data:`ALIAS`."""
    source = checkout / "ciris_actors"
    if not (source / "__init__.py").is_file():
        raise SystemExit(f"--baseline: no ciris_actors package in {checkout}")
    absolute = re.compile(r"^\s*(from|import)\s+ciris_actors\b", re.MULTILINE)
    for path in source.rglob("*.py"):
        if absolute.search(path.read_text()):
            raise SystemExit(
                f"--baseline: {path.relative_to(checkout)} imports ciris_actors by name,"
                " so the package cannot be loaded under another name"
            )
    shutil.copytree(source, scratch / ALIAS, ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(scratch))
    try:
        return importlib.import_module(ALIAS)
    finally:
        sys.path.remove(str(scratch))


def baseline_info(checkout: pathlib.Path) -> dict[str, Any]:
    """The baseline's commit, whether its package is as committed, and a hash of it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, text=True, timeout=10
        ).stdout.strip()

    digest = hashlib.sha256()
    package = checkout / "ciris_actors"
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return {
        "source_sha256": digest.hexdigest()[:12],
        "git_commit": git("rev-parse", "--short", "HEAD") or None,
        "git_commit_full": git("rev-parse", "HEAD") or None,
        "package_clean": not git("status", "--porcelain", "--", "ciris_actors"),
    }


async def compare(n: int, cfg: Config, results: Results, baseline: ModuleType) -> dict[str, Any]:
    handler, st = "h_fallback", "llm"
    packages = {"baseline": baseline, "current": ciris_actors}
    async with (
        packages["baseline"].open_registry(health_check_interval=None) as base_a,
        ciris_actors.open_registry(health_check_interval=None) as cur_a,
        ciris_actors.open_registry(health_check_interval=None) as cur_b,
        packages["baseline"].open_registry(health_check_interval=None) as base_b,
    ):
        registries = (base_a, cur_a, cur_b, base_b)
        firsts = [register_many(registry, handler, n)[0][0] for registry in registries]
        await trio.testing.wait_all_tasks_blocked()
        assert baseline.Registry is not ciris_actors.Registry
        for (side, _), registry, first in zip(SIDES, registries, firsts, strict=True):
            assert type(registry) is packages[side].Registry
            assert registry.get_service_nowait(handler, st) is first
            # No observer: the current package pays for its counters only.
            sup = registry._sup
            assert not sup.bus.has_subscribers
            stats = getattr(sup, "resolve_stats", None)
            assert stats is None or stats.every == 0
        specs = [
            Spec(
                f"counters/{side}/{copy}/{n}",
                "get_service_nowait",
                f"FALLBACK, first available; {side} package, registry {copy}",
                n,
                "trio",
                nowait_sample(registry, handler, st, None),
            )
            for (side, copy), registry in zip(SIDES, registries, strict=True)
        ]
        progress(f"{n} provider(s): baseline vs current package, {len(specs)} cases")
        rows = await measure(specs, cfg, results, batch_groups=["all"] * len(specs))
    p50 = {(side, copy): row.p50_ns for (side, copy), row in zip(SIDES, rows, strict=True)}
    base = statistics.fmean([p50[("baseline", "A")], p50[("baseline", "B")]])
    cur = statistics.fmean([p50[("current", "A")], p50[("current", "B")]])
    return {
        "n": n,
        "batch": rows[0].batch,
        "p50_ns": {f"{side}/{copy}": value for (side, copy), value in p50.items()},
        "p99_ns": {
            f"{side}/{copy}": row.p99_ns for (side, copy), row in zip(SIDES, rows, strict=True)
        },
        "baseline_p50_ns": base,
        "current_p50_ns": cur,
        "difference_ns": cur - base,
        "ratio": cur / base,
    }


def render(comparisons: list[dict[str, Any]]) -> str:
    header = ("n", "baseline A", "baseline B", "current A", "current B", "difference", "ratio")
    lines = [header]
    for c in comparisons:
        p = c["p50_ns"]
        lines.append(
            (
                str(c["n"]),
                fmt_time(p["baseline/A"]),
                fmt_time(p["baseline/B"]),
                fmt_time(p["current/A"]),
                fmt_time(p["current/B"]),
                f"{c['difference_ns']:+.1f} ns",
                f"{c['ratio']:.3f}x",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for index, line in enumerate(lines):
        out.append("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)))
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
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
    baseline_git = baseline_info(args.baseline)
    results = Results()
    comparisons: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        baseline = load_baseline(args.baseline.resolve(), pathlib.Path(scratch))

        async def run() -> None:
            for n in cfg.provider_counts:
                comparisons.append(await compare(n, cfg, results, baseline))

        trio.run(run)
    elapsed = time.perf_counter() - started
    env["load_average_after"] = load_average()
    loaded_modules_check(env["package_source"])
    source = env["package_source"]
    print(
        f"always-on counter cost, {env['date_utc']} UTC: Python {env['python']},"
        f" trio {env['trio']}, {env['cpu_count']} CPUs"
    )
    print(f"current package: {describe_source(source)}")
    package_state = "as committed" if baseline_git["package_clean"] else "DIFFERS from the commit"
    print(
        f"baseline package: git {baseline_git['git_commit']} (package directory"
        f" {package_state}), source sha256 {baseline_git['source_sha256']}"
    )
    loads = [env["load_average_before"], env["load_average_after"]]
    if all(load is not None for load in loads):
        before, after = (" ".join(f"{x:.2f}" for x in load) for load in loads)
        print(f"load average (1/5/15 min) before: {before}; after: {after}")
    print(
        f"get_service_nowait, FALLBACK, first available, no observer attached;"
        f" {cfg.samples} samples per case after {cfg.warmup} warm-up rounds; p50 of"
        f" per-batch means; rounds interleave both packages; run took {elapsed:.0f} s"
    )
    print()
    print(render(comparisons))
    if args.json:
        payload = {
            "environment": env,
            "baseline": baseline_git,
            "config": cfg.__dict__,
            "elapsed_s": elapsed,
            "comparisons": comparisons,
            "rows": [row.as_json() for row in results.rows],
        }
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=1)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
