"""The measuring harness the benchmark scripts share: run settings, timed batches and
interleaved rounds, result rows, tables and targets, the machine and commit header, JSON
output, and copies of the package imported under another name.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib
import json
import os
import pathlib
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import trio

import ciris_actors

perf_ns = time.perf_counter_ns

#: Returns the elapsed nanoseconds of one batch of *batch* calls.
SampleFn = Callable[[int], Awaitable[int]]

# Shown in the table's n column for rows that are not about a number of providers.
NO_N = -1


# -- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """The settings of a run of ``bench_registry.py`` or ``bench_control.py``."""

    samples: int
    warmup: int
    sample_target_ns: int
    min_batch: int
    max_batch: int
    provider_counts: tuple[int, ...]
    open_counts: tuple[int, ...]
    memory_providers: int
    per_key: int
    #: Provider counts of the control-plane overhead groups, and of the scrape rows.
    control_counts: tuple[int, ...]
    scrape_counts: tuple[int, ...]
    #: Scrapes timed (one per sample) at each scrape count, after the warm-up ones.
    scrape_samples: int
    scrape_warmup: int


FULL = Config(
    samples=400,
    warmup=20,
    sample_target_ns=500_000,
    min_batch=100,
    max_batch=1000,
    provider_counts=(1, 10, 100, 1000),
    open_counts=(1, 10, 100),
    memory_providers=10_000,
    per_key=100,
    control_counts=(1, 10, 100, 1000),
    scrape_counts=(10, 1000),
    scrape_samples=50,
    scrape_warmup=3,
)

QUICK = Config(
    samples=30,
    warmup=3,
    sample_target_ns=200_000,
    min_batch=20,
    max_batch=300,
    provider_counts=(1, 10, 100, 1000),
    open_counts=(1, 10, 100),
    memory_providers=1000,
    per_key=100,
    control_counts=(1, 10, 1000),
    scrape_counts=(10, 1000),
    scrape_samples=10,
    scrape_warmup=2,
)


# -- results ------------------------------------------------------------------------------


@dataclass
class Row:
    """One row of the table: a latency distribution or a single measurement."""

    key: str
    case: str
    variant: str
    n: int
    runtime: str
    p50_ns: float | None = None
    p99_ns: float | None = None
    batch: int = 0
    samples_ns: list[float] = field(default_factory=list)
    note: str = ""
    #: For rows that are not latencies (memory): the preformatted p50 and p99 cells.
    cells: tuple[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The row as written to the JSON file.

        Returns:
            The row's fields, with the mean and minimum of its samples.
        """
        return {
            "key": self.key,
            "case": self.case,
            "variant": self.variant,
            "n": None if self.n == NO_N else self.n,
            "runtime": self.runtime,
            "p50_ns": self.p50_ns,
            "p99_ns": self.p99_ns,
            "mean_ns": statistics.fmean(self.samples_ns) if self.samples_ns else None,
            "min_ns": min(self.samples_ns) if self.samples_ns else None,
            "batch": self.batch,
            "per_call_ns_samples": self.samples_ns,
            "note": self.note,
            "extra": self.extra,
        }


@dataclass
class Spec:
    """A latency case to measure: how to take one sample, and where it goes in the table."""

    key: str
    case: str
    variant: str
    n: int
    runtime: str
    fn: SampleFn


class Results:
    """The rows of a run, by key, and what else the run records for the JSON file."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.by_key: dict[str, Row] = {}
        self.extra: dict[str, Any] = {}

    def add(self, row: Row) -> Row:
        """Add *row*, whose key must be new.

        Args:
            row: The row to add.

        Returns:
            The row.

        Raises:
            ValueError: A row of the same key was added before.
        """
        if row.key in self.by_key:
            raise ValueError(f"duplicate result key {row.key!r}")
        self.rows.append(row)
        self.by_key[row.key] = row
        return row

    def p50(self, key: str) -> float:
        """The p50 of the latency row *key*, in ns.

        Args:
            key: The row's key.

        Returns:
            Its p50 in ns.
        """
        value = self.by_key[key].p50_ns
        assert value is not None
        return value


def percentile(data: Sequence[float], q: float) -> float:
    """The *q*-th percentile of *data*, linear interpolation between ranks.

    Args:
        data: The values (at least one).
        q: The percentile, 0 to 100.

    Returns:
        The percentile.
    """
    ordered = sorted(data)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def progress(message: str) -> None:
    """Tell on stderr what the run is doing now.

    Args:
        message: What it does.
    """
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- the measuring engine -----------------------------------------------------------------


async def time_batch(fn: SampleFn, batch: int) -> int:
    """Take one sample of *fn* with the garbage collector disabled.

    Args:
        fn: The sample function.
        batch: The number of calls in the batch.

    Returns:
        The batch's elapsed ns, as *fn* measured it.
    """
    gc.disable()
    try:
        return await fn(batch)
    finally:
        gc.enable()


def time_batch_sync(body: Callable[[int], int], batch: int) -> int:
    """Run a synchronous batch loop with the garbage collector disabled.

    Args:
        body: Runs *batch* calls and returns their elapsed ns.
        batch: The number of calls in the batch.

    Returns:
        The batch's elapsed ns, as *body* measured it.
    """
    gc.disable()
    try:
        return body(batch)
    finally:
        gc.enable()


async def _calibrate(fn: SampleFn, cfg: Config) -> int:
    """A batch size that makes one sample last about ``cfg.sample_target_ns``."""
    probe = cfg.min_batch
    await time_batch(fn, probe)
    elapsed = min([await time_batch(fn, probe) for _ in range(3)])
    per_call = max(elapsed / probe, 1.0)
    return int(min(cfg.max_batch, max(cfg.min_batch, cfg.sample_target_ns / per_call)))


async def measure(
    specs: Sequence[Spec],
    cfg: Config,
    results: Results,
    *,
    batch_groups: Sequence[str] | None = None,
) -> list[Row]:
    """Measure *specs* in interleaved rounds; add one row per spec to *results*.

    Each spec gets a batch size that makes one sample last about
    ``cfg.sample_target_ns``; after ``cfg.warmup`` rounds, ``cfg.samples`` rounds take one
    sample of every spec each, gc disabled while a batch is timed.

    Args:
        specs: The cases, in the order each round samples them.
        cfg: The run's settings.
        results: Where the rows go.
        batch_groups: One label per spec, or ``None``: the specs of a label share the
            smallest of their calibrated batch sizes, so that cases compared as a ratio
            also share the loop's amortisation.

    Returns:
        The new rows, in the order of *specs*.
    """
    batches = [await _calibrate(spec.fn, cfg) for spec in specs]
    if batch_groups is not None:
        shared: dict[str, int] = {}
        for label, batch in zip(batch_groups, batches, strict=True):
            shared[label] = min(shared.get(label, batch), batch)
        batches = [shared[label] for label in batch_groups]
    for _ in range(cfg.warmup):
        for spec, batch in zip(specs, batches, strict=True):
            await time_batch(spec.fn, batch)
    samples: list[list[float]] = [[] for _ in specs]
    for _ in range(cfg.samples):
        for spec, batch, out in zip(specs, batches, samples, strict=True):
            out.append(await time_batch(spec.fn, batch) / batch)
    rows = []
    for spec, batch, values in zip(specs, batches, samples, strict=True):
        rows.append(
            results.add(
                Row(
                    key=spec.key,
                    case=spec.case,
                    variant=spec.variant,
                    n=spec.n,
                    runtime=spec.runtime,
                    p50_ns=percentile(values, 50),
                    p99_ns=percentile(values, 99),
                    batch=batch,
                    samples_ns=values,
                )
            )
        )
    return rows


def sync_sample(body: Callable[[int], int]) -> SampleFn:
    """Wrap a synchronous batch loop as a sample function (no await inside the timing).

    Args:
        body: Runs a batch of calls and returns their elapsed ns.

    Returns:
        The sample function.
    """

    async def sample(batch: int) -> int:
        return body(batch)

    return sample


# -- report -------------------------------------------------------------------------------


def fmt_time(ns: float | None) -> str:
    """A duration for the table: microseconds, or milliseconds from 1 ms on.

    Args:
        ns: The duration in ns, or ``None``.

    Returns:
        The text, ``-`` for ``None``.
    """
    if ns is None:
        return "-"
    if ns >= 1_000_000:
        return f"{ns / 1e6:.3f} ms"
    return f"{ns / 1000:.3f} us"


def format_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Collection[int],
    *,
    markdown: bool = False,
) -> str:
    """Lay out a table in columns as wide as their widest cell.

    Args:
        header: The column names.
        rows: The cells of each row.
        right: The indexes of the right-aligned columns (the others are left-aligned).
        markdown: A Markdown table (``|`` between cells, ``:`` marking right-aligned
            columns in the rule) instead of plain columns two spaces apart.

    Returns:
        The table's lines, joined.
    """
    lines = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def cells(line: Sequence[str]) -> list[str]:
        return [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]

    if markdown:
        rule = "|".join(
            "-" * (w + 1) + ":" if i in right else "-" * (w + 2) for i, w in enumerate(widths)
        )
        body = [f"| {' | '.join(cells(line))} |" for line in lines]
        return "\n".join([body[0], f"|{rule}|", *body[1:]])
    out = []
    for index, line in enumerate(lines):
        out.append("  ".join(cells(line)).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


@dataclass
class Target:
    """A target judged on the run's results."""

    name: str
    measured: str
    #: ``None``: could not be measured here.
    hit: bool | None


def render_targets(targets: list[Target], quick: bool) -> str:
    """The targets section: one line per target, with its verdict.

    Args:
        targets: The judged targets.
        quick: Whether the run was a ``--quick`` one (said in the section's title).

    Returns:
        The section's lines, joined.
    """
    lines = ["targets" + ("  (--quick run: indicative only)" if quick else "")]
    width = max(len(t.name) for t in targets)
    for t in targets:
        verdict = "N/A   " if t.hit is None else "HIT   " if t.hit else "MISSED"
        lines.append(f"  {verdict}  {t.name.ljust(width)}  {t.measured}")
    return "\n".join(lines)


# -- the machine and the commit measured --------------------------------------------------


def package_version(dist: str) -> str:
    """The installed version of a distribution.

    Args:
        dist: The distribution's name.

    Returns:
        Its version, ``?`` when it is not installed.
    """
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def cpu_model() -> str:
    """The CPU's model name.

    Returns:
        The name from ``/proc/cpuinfo``, else what ``platform`` knows.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def utc_timestamp() -> str:
    """The time now, in UTC, to the second (``YYYY-MM-DD HH:MM:SS``).

    Returns:
        The timestamp.
    """
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


def load_average() -> tuple[float, float, float] | None:
    """The system's load average over 1, 5 and 15 minutes.

    Returns:
        The three averages, ``None`` where the platform has none.
    """
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None


def format_load(load: Sequence[float] | None, missing: str = "unknown") -> str:
    """Load averages as printed in the headers (two decimals each).

    Args:
        load: The averages, or ``None``.
        missing: The text for ``None``.

    Returns:
        The averages, space-separated.
    """
    if load is None:
        return missing
    return " ".join(f"{x:.2f}" for x in load)


def git(root: pathlib.Path, *args: str) -> str:
    """Run git on the repository that holds *root*.

    Args:
        root: A directory of the repository.
        *args: The git command and its arguments.

    Returns:
        Git's standard output.

    Raises:
        OSError: Git cannot be run.
        subprocess.SubprocessError: Git failed or took more than 10 s.
    """
    return subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout


def git_or_empty(root: pathlib.Path, *args: str) -> str:
    """Like :func:`git`, but an empty text where git fails.

    Args:
        root: A directory of the repository.
        *args: The git command and its arguments.

    Returns:
        Git's standard output, stripped; empty when git cannot be run or fails.
    """
    try:
        return git(root, *args).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def package_module_files() -> list[pathlib.Path]:
    """The files of the ``ciris_actors`` modules imported so far.

    Returns:
        Their resolved paths.
    """
    files = []
    for name, module in sys.modules.items():
        file = getattr(module, "__file__", None)
        if file and (name == "ciris_actors" or name.startswith("ciris_actors.")):
            files.append(pathlib.Path(file).resolve())
    return files


def package_source() -> dict[str, Any]:
    """Identify the package source measured.

    A hash of its imported modules and, when git is available, the commit, whether the
    package differs from it, and the uncommitted paths of the whole working tree
    (reported only: a dirty tree is not refused).

    Returns:
        What identifies the source; the private ``_top`` key (the repository's top
        directory) is for :func:`loaded_modules_check`, which removes it.
    """
    root = pathlib.Path(ciris_actors.__file__).parent
    digest = hashlib.sha256()
    # Only the modules imported (all of them are by now): stray files in the directory
    # do not change what is measured, so they do not change the hash either.
    for path in sorted(package_module_files()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    info: dict[str, Any] = {"source_sha256": digest.hexdigest()[:12]}
    try:
        info["git_commit_full"] = git(root, "rev-parse", "HEAD").strip()
        info["git_commit"] = git(root, "rev-parse", "--short", "HEAD").strip()
        info["uncommitted_changes"] = bool(git(root, "status", "--porcelain", "--", ".").strip())
        # Porcelain paths are relative to the repository root, whatever the directory.
        tree = git(root, "status", "--porcelain", "--untracked-files=all")
        info["tree_dirty_paths"] = [line[3:] for line in tree.splitlines() if line.strip()]
        info["tree_clean"] = not info["tree_dirty_paths"]
        top = pathlib.Path(git(root, "rev-parse", "--show-toplevel").strip())
        info["_top"] = top
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def loaded_modules_check(source: dict[str, Any]) -> None:
    """Record which of the package's modules this run imported, and which differ.

    Those that differ from the commit are the modified or untracked ones: untracked files
    the run never imported cannot have changed what was measured.

    Args:
        source: What :func:`package_source` returned; updated in place.
    """
    top = source.pop("_top", None)
    if top is None:
        return
    loaded = []
    for file in sorted(package_module_files()):
        try:
            loaded.append(file.relative_to(top.resolve()).as_posix())
        except ValueError:
            continue
    dirty = set(source.get("tree_dirty_paths", []))
    source["loaded_modules"] = loaded
    source["loaded_modules_dirty"] = [path for path in loaded if path in dirty]


def import_optional_modules() -> None:
    """Import the control plane now, when its extra is installed.

    So the source hash taken before the run covers every package module the run will use.
    """
    with contextlib.suppress(ImportError):
        importlib.import_module("ciris_actors.control")


def environment() -> dict[str, Any]:
    """What is measured, and on what: taken at the start of a run.

    Returns:
        Versions, the package source, the platform, the date and the load average.
    """
    import_optional_modules()
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "trio": trio.__version__,
        "ciris_actors": package_version("ciris-actors"),
        "package_source": package_source(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "date_utc": utc_timestamp(),
        "load_average_before": load_average(),
    }


def finish_environment(env: dict[str, Any]) -> None:
    """Complete :func:`environment`'s record at the end of a run.

    Adds the load average after the run, and which package modules the run imported.

    Args:
        env: What :func:`environment` returned; updated in place.
    """
    env["load_average_after"] = load_average()
    loaded_modules_check(env["package_source"])


def describe_source(source: dict[str, Any]) -> str:
    """The header's description of the package measured.

    Args:
        source: The package source, after :func:`loaded_modules_check`.

    Returns:
        Its hash, commit, and whether the package and the tree are as committed.
    """
    text = f"source sha256 {source['source_sha256']}"
    if "git_commit" in source:
        package = "dirty" if source.get("uncommitted_changes") else "clean"
        text += f", git {source['git_commit']} (package directory {package}"
        dirty = source.get("tree_dirty_paths", [])
        if dirty:
            more = f", ... ({len(dirty)} in all)" if len(dirty) > 8 else ""
            shown = ", ".join(dirty[:8]) + more
            text += f"; working tree NOT clean: {shown})"
        else:
            text += "; working tree clean)"
        if "loaded_modules" in source:
            loaded, changed = source["loaded_modules"], source["loaded_modules_dirty"]
            text += f"; {len(loaded)} package modules imported, " + (
                f"{len(changed)} differ from the commit: {', '.join(changed)}"
                if changed
                else "all as committed"
            )
    else:
        text += ", git commit unknown (no git, or not a checkout)"
    return text


def load_average_line(env: dict[str, Any]) -> str | None:
    """The header's load-average line.

    Args:
        env: The run's environment, after :func:`finish_environment`.

    Returns:
        The line, or ``None`` where the load average is not known.
    """
    loads = [env["load_average_before"], env["load_average_after"]]
    if not all(load is not None for load in loads):
        return None
    before, after = (format_load(load) for load in loads)
    return f"load average (1/5/15 min) before: {before}; after: {after}"


def checkout_info(checkout: pathlib.Path) -> dict[str, Any]:
    """A checkout's commit, whether its package is as committed, and a hash of it.

    Args:
        checkout: The checkout's top directory (it holds ``ciris_actors``).

    Returns:
        ``source_sha256``, ``git_commit``, ``git_commit_full`` (``None`` without git) and
        ``package_clean``.
    """
    digest = hashlib.sha256()
    package = checkout / "ciris_actors"
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return {
        "source_sha256": digest.hexdigest()[:12],
        "git_commit": git_or_empty(checkout, "rev-parse", "--short", "HEAD") or None,
        "git_commit_full": git_or_empty(checkout, "rev-parse", "HEAD") or None,
        "package_clean": not git_or_empty(checkout, "status", "--porcelain", "--", "ciris_actors"),
    }


# -- output -------------------------------------------------------------------------------


def write_json(path: str, payload: dict[str, Any]) -> None:
    """Write a run's raw numbers.

    Args:
        path: The file to write.
        payload: What to write (indented by one space, a newline at the end).
    """
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=1)
        fh.write("\n")


# -- copies of the package ----------------------------------------------------------------


def load_package_copy(source: pathlib.Path, alias: str, scratch: pathlib.Path) -> ModuleType:
    """Import a copy of a ``ciris_actors`` package directory under another name.

    The package uses only relative imports inside, which is checked; the copy's classes
    are then distinct from the ones imported as ``ciris_actors``.

    Args:
        source: The package directory to copy.
        alias: The name to import the copy under.
        scratch: A directory to copy it into (it must outlive the copy's use).

    Returns:
        The imported copy.

    Raises:
        SystemExit: *source* is no package, or one of its modules imports
            ``ciris_actors`` by name.
    """
    if not (source / "__init__.py").is_file():
        raise SystemExit(f"no ciris_actors package in {source.parent}")
    absolute = re.compile(r"^\s*(from|import)\s+ciris_actors\b", re.MULTILINE)
    for path in source.rglob("*.py"):
        if absolute.search(path.read_text()):
            raise SystemExit(
                f"{path} imports ciris_actors by name, so the package cannot be loaded"
                " under another name"
            )
    shutil.copytree(source, scratch / alias, ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(scratch))
    try:
        return importlib.import_module(alias)
    finally:
        sys.path.remove(str(scratch))


def print_run(title: str, env: dict[str, Any], cfg: Config, results: Results, quick: bool) -> None:
    """Print a small benchmark's header (package, machine, load) and its table of rows:
    what ``bench_classes.py`` and ``bench_routing.py`` share.

    Args:
        title: What the benchmark is (``"routing benchmark"``).
        env: The run's environment (``environment()``, finished).
        cfg: The run's settings.
        results: The rows to print.
        quick: Whether it was a ``--quick`` run.
    """
    print(
        f"ciris_actors {env['ciris_actors']} {title}{' (--quick)' if quick else ''},"
        f" {env['date_utc']} UTC: Python {env['python']}, trio {env['trio']},"
        f" {env['cpu_count']} CPUs, {env['platform']}"
    )
    print(f"package measured: {describe_source(env['package_source'])}")
    load_line = load_average_line(env)
    if load_line is not None:
        print(load_line)
    print(f"{cfg.samples} samples per case after {cfg.warmup} warm-up rounds, interleaved")
    print()
    rows = [
        (
            row.case,
            row.variant,
            str(row.n),
            fmt_time(row.p50_ns),
            fmt_time(row.p99_ns),
            str(row.batch),
        )
        for row in results.rows
    ]
    print(format_table(("case", "variant", "providers", "p50", "p99", "batch"), rows, {2, 3, 4, 5}))
    print()
