"""What a ``/metrics`` scrape costs: its collect step, the formatting and the whole
``generate_latest``, and the event loop's longest pause during a real ``GET /metrics``.
"""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio
from _harness import Config, Results, Row, fmt_time, percentile, perf_ns


@dataclass(frozen=True)
class _Snapshot:
    """Metric families already collected, as the ``/metrics`` endpoint hands them over.

    Its worker thread gets an object with ``collect()``, which is all ``generate_latest``
    reads.
    """

    families: list[Any]

    def collect(self) -> Any:
        return iter(self.families)


SCRAPE_PARTS = (
    # key, variant
    ("collect", "collect: list(app.state.metrics.collect()) (on the event loop)"),
    ("format", "format: generate_latest(collected families) (in a worker thread)"),
    ("whole", "whole: generate_latest(app.state.metrics)"),
)


class _GcWatch:
    """Record the garbage collector's passes (in any thread) while installed.

    For each window (from :meth:`window` to the next): their total and longest duration.
    """

    def __init__(self) -> None:
        self._started = 0
        self.total = 0
        self.longest = 0

    def window(self) -> tuple[int, int]:
        """The (total, longest) ns of gc passes since the last call; start a new window."""
        seen = (self.total, self.longest)
        self.total = self.longest = 0
        return seen

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = perf_ns()
        else:
            took = perf_ns() - self._started
            self.total += took
            self.longest = max(self.longest, took)

    def __enter__(self) -> _GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def _gc_note(longest: Sequence[float]) -> str:
    """How many samples had a gc pass, and the longest."""
    hit = [x for x in longest if x > 0]
    if not hit:
        return "no gc pass"
    return f"gc ran in {len(hit)} of {len(longest)}, longest pass {fmt_time(max(hit))}"


def scrape_rows(
    n: int, cfg: Config, results: Results, app: Any, generate_latest: Callable[[Any], bytes]
) -> None:
    """Time a scrape's collect step, the formatting of what it collected, and the whole.

    The collect step, ``list(app.state.metrics.collect())``, is what the endpoint runs on
    the event loop; formatting those collected families (``generate_latest`` on a
    snapshot) is what it runs in a worker thread; the whole is
    ``generate_latest(app.state.metrics)``. One of each per round, gc left on (as in a
    server); the notes say in how many samples a gc pass ran.

    Args:
        n: The provider count of the registry served.
        cfg: The run's settings.
        results: Where the rows go.
        app: The control plane's ASGI app.
        generate_latest: ``prometheus_client.generate_latest``.

    Raises:
        RuntimeError: The scrape has no resolve-duration histogram, or formatting the
            collected families gives another text than a whole scrape.
    """
    metrics = app.state.metrics
    body = generate_latest(metrics)
    if b"ciris_resolve_duration_seconds_bucket" not in body:
        raise RuntimeError("the scrape has no resolve-duration histogram")
    if generate_latest(_Snapshot(list(metrics.collect()))) != generate_latest(metrics):
        raise RuntimeError("formatting the collected families differs from a whole scrape")
    samples: dict[str, list[float]] = {key: [] for key, _ in SCRAPE_PARTS}
    gc_longest: dict[str, list[float]] = {key: [] for key, _ in SCRAPE_PARTS}
    with _GcWatch() as watch:
        for round_ in range(cfg.scrape_warmup + cfg.scrape_samples):
            watch.window()
            t0 = perf_ns()
            families = list(metrics.collect())
            t1 = perf_ns()
            gc_collect = watch.window()
            generate_latest(_Snapshot(families))
            t2 = perf_ns()
            gc_format = watch.window()
            generate_latest(metrics)
            t3 = perf_ns()
            gc_whole = watch.window()
            if round_ >= cfg.scrape_warmup:
                samples["collect"].append(float(t1 - t0))
                samples["format"].append(float(t2 - t1))
                samples["whole"].append(float(t3 - t2))
                for key, seen in (
                    ("collect", gc_collect),
                    ("format", gc_format),
                    ("whole", gc_whole),
                ):
                    gc_longest[key].append(float(seen[1]))
    lines = body.count(b"\n")
    whole_p50 = percentile(samples["whole"], 50)
    for key, variant in SCRAPE_PARTS:
        values = samples[key]
        p50 = percentile(values, 50)
        note = f"{cfg.scrape_samples} scrapes"
        if key == "whole":
            note += f"; {len(body) / 1024:.1f} KiB, {lines} lines"
        else:
            note += f"; {p50 / whole_p50:.0%} of the whole"
        note += f"; {_gc_note(gc_longest[key])}"
        results.add(
            Row(
                key=f"control/scrape/{key}/{n}",
                case="control: /metrics scrape",
                variant=variant,
                n=n,
                runtime="trio",
                p50_ns=p50,
                p99_ns=percentile(values, 99),
                batch=1,
                samples_ns=values,
                note=note,
                extra={
                    "bytes": len(body),
                    "lines": lines,
                    "families": len(families),
                    "gc_longest_pass_ns": gc_longest[key],
                },
            )
        )


#: The scrape client of :func:`scrape_stall_row`: one GET per line read from stdin.
_SCRAPE_CLIENT = """
import sys, urllib.request
url, token = sys.argv[1], sys.argv[2]
for _ in sys.stdin:
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(request, timeout=120) as response:
        size = len(response.read())
    print(response.status, size, flush=True)
"""


class _Ticker:
    """A task that only yields, recording the longest gap between two of its steps.

    That is how long the trio run (its scheduler) was kept from a ready task.
    """

    def __init__(self) -> None:
        self.longest = 0

    async def run(self) -> None:
        checkpoint = trio.lowlevel.checkpoint
        last = perf_ns()
        while True:
            await checkpoint()
            now = perf_ns()
            if now - last > self.longest:
                self.longest = now - last
            last = now


async def scrape_stall_row(n: int, cfg: Config, results: Results, url: str, token: str) -> None:
    """Measure the longest pause of the trio run during one real ``GET /metrics``.

    A task of the benchmark's trio run (which also runs the server) yields in a loop and
    records the longest gap between two of its steps, while a client in a separate process
    (so its own work is not in the loop) fetches ``/metrics``; one request per sample.

    Args:
        n: The provider count of the registry served.
        cfg: The run's settings.
        results: Where the row goes.
        url: The control plane's base URL.
        token: Its bearer token.
    """
    ticker = _Ticker()
    command = [sys.executable, "-c", _SCRAPE_CLIENT, f"{url}/metrics", token]
    pauses: list[float] = []
    walls: list[float] = []
    sizes: set[int] = set()
    process = await trio.lowlevel.open_process(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    gc_longest: list[float] = []
    try:
        with _GcWatch() as watch:
            async with trio.open_nursery() as nursery:
                assert process.stdin is not None
                assert process.stdout is not None
                nursery.start_soon(ticker.run)
                pending = b""
                for round_ in range(cfg.scrape_warmup + cfg.scrape_samples):
                    ticker.longest = 0
                    watch.window()
                    t0 = perf_ns()
                    await process.stdin.send_all(b"get\n")
                    while b"\n" not in pending:
                        chunk = await process.stdout.receive_some()
                        if not chunk:
                            raise RuntimeError("the scrape client exited")
                        pending += chunk
                    wall = perf_ns() - t0
                    gc_seen = watch.window()
                    line, pending = pending.split(b"\n", 1)
                    status, size = line.split()
                    if status != b"200":
                        raise RuntimeError(f"GET /metrics: HTTP {status.decode()}")
                    if round_ >= cfg.scrape_warmup:
                        pauses.append(float(ticker.longest))
                        gc_longest.append(float(gc_seen[1]))
                        walls.append(float(wall))
                        sizes.add(int(size))
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    await stream.aclose()
            if process.poll() is None:  # the client exits at the end of its input
                with trio.move_on_after(5):
                    await process.wait()
            if process.poll() is None:
                process.kill()
                await process.wait()
    results.add(
        Row(
            key=f"control/scrape/stall/{n}",
            case="control: /metrics scrape",
            variant="longest event-loop pause during one real GET /metrics",
            n=n,
            runtime="trio",
            p50_ns=percentile(pauses, 50),
            p99_ns=percentile(pauses, 99),
            batch=1,
            samples_ns=pauses,
            note=(
                f"{cfg.scrape_samples} requests; request p50 {fmt_time(percentile(walls, 50))}"
                f" (client in another process; a busy task in the loop); {_gc_note(gc_longest)}"
            ),
            extra={
                "request_wall_ns": walls,
                "gc_longest_pass_ns": gc_longest,
                "bytes": sorted(sizes),
                "switch_interval_s": sys.getswitchinterval(),
            },
        )
    )
