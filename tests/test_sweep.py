"""Seed sweeps: the seeds parsed, the aggregate independent of workers and order, a broken
router caught with a replay command that reproduces it, the CLI's exit statuses, and the
same sweep on a real Dask cluster."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

import ciris_actors.selection
from ciris_actors.cli import main, sweep as sweep_cli
from ciris_actors.cli._render import command
from ciris_actors.simulation import bundled_scenarios, load_scenario, run_scenario
from ciris_actors.simulation.sweep import (
    MAX_SEEDS,
    Spread,
    cluster,
    parse_seeds,
    run_seed,
    sweep,
)

from .helpers import first_member_whatever_its_state
from .terminal import run_in_terminal

SCENARIO = "all-tiers-down"  # short: about 0.15 s a seed
COMMAND = [sys.executable, "-m", "ciris_actors.cli"]


@pytest.fixture
def scenario_path(tmp_path: Path) -> Path:
    """The bundled scenario copied under a path long enough that the replay command cannot
    fit one 80-column line (a CI checkout's path did that)."""
    deep = tmp_path / "a-checkout-directory-with-a-long-name" / "simulations"
    deep.mkdir(parents=True)
    path = deep / f"{SCENARIO}.toml"
    path.write_bytes(bundled_scenarios()[SCENARIO].read_bytes())
    return path


@pytest.mark.parametrize(
    ("text", "seeds"),
    [
        ("7", (7,)),
        ("1-5", (1, 2, 3, 4, 5)),
        (" 3 - 4 ,1, 4", (1, 3, 4)),
        ("0-0", (0,)),
    ],
)
def test_seeds_are_single_ranges_or_lists_each_once_in_order(
    text: str, seeds: tuple[int, ...]
) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected seeds as N, FIRST-LAST"),
        ("1-", "expected seeds"),
        ("a-b", "expected seeds"),
        ("-3", "expected seeds"),
        ("1.5", "expected seeds"),
        ("10-1", "runs backwards"),
        (f"1-{MAX_SEEDS + 1}", "more than"),
    ],
)
def test_bad_seeds_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_seeds(text)


def test_a_seed_outcome_keeps_what_its_report_says() -> None:
    scenario = load_scenario(bundled_scenarios()[SCENARIO])
    report = run_scenario(scenario, seed=3)
    outcome = run_seed(scenario, 3)
    assert outcome.seed == 3
    assert outcome.sent == report.requests.sent
    assert outcome.succeeded == report.requests.succeeded
    assert outcome.availability == report.availability
    assert outcome.oracle_gap == report.availability_gap
    assert outcome.p99_latency == report.latency.p99
    assert outcome.detection == tuple(f.time_to_detect for f in report.faults)
    assert outcome.failover == tuple(f.time_to_failover for f in report.faults)
    assert outcome.violations == 0
    assert outcome.lost == 0
    assert outcome.ok


def test_the_aggregate_depends_only_on_the_seeds_not_on_workers_or_order() -> None:
    scenario = load_scenario(bundled_scenarios()[SCENARIO])
    two = sweep(scenario, [4, 1, 3, 2], jobs=2)
    again = sweep(scenario, range(1, 5), jobs=2)
    with ThreadPoolExecutor(max_workers=1) as one:
        serial = sweep(scenario, range(1, 5), executor=one)
    assert two.seeds == (1, 2, 3, 4)
    assert two.to_json() == again.to_json() == serial.to_json()
    assert [o.availability for o in two.outcomes] == [
        run_scenario(scenario, seed=s).availability for s in (1, 2, 3, 4)
    ]


def test_spreads_are_nearest_rank_and_count_what_is_missing() -> None:
    spread = Spread.of([5.0, None, 1.0, 3.0, 2.0, 4.0, None])
    assert (spread.count, spread.missing) == (5, 2)
    assert (spread.low, spread.p50, spread.p90, spread.p99, spread.high) == (
        1.0,
        3.0,
        5.0,
        5.0,
        5.0,
    )
    assert spread.mean == 3.0
    empty = Spread.of([None])
    assert (empty.count, empty.missing, empty.p50, empty.mean) == (0, 1, None, None)


def test_sweep_refuses_no_seeds_repeated_seeds_and_bad_jobs() -> None:
    scenario = load_scenario(bundled_scenarios()[SCENARIO])
    with pytest.raises(ValueError, match="none given"):
        sweep(scenario, [])
    with pytest.raises(ValueError, match="once"):
        sweep(scenario, [1, 1])
    with pytest.raises(ValueError, match="jobs"):
        sweep(scenario, [1], jobs=0)


def test_progress_counts_every_seed(scenario_path: Path) -> None:
    scenario = load_scenario(scenario_path)
    seen: list[tuple[int, int]] = []
    with ThreadPoolExecutor(max_workers=1) as one:
        sweep(scenario, [1, 2, 3], executor=one, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


# -- a broken router is caught, and its replay command reproduces it -----------------------


def test_a_broken_router_is_caught_and_its_replay_command_reproduces_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    scenario = load_scenario(bundled_scenarios()["primary-outage"])
    monkeypatch.setattr(ciris_actors.selection, "select", first_member_whatever_its_state)
    # Threads, not processes, so the patched router is the one every run uses.
    with ThreadPoolExecutor(max_workers=1) as one:
        result = sweep(scenario, [1, 2], executor=one)
    assert not result.ok
    worst = result.worst()[0]
    assert worst.violations > 0
    assert "open-breaker" in worst.rules

    args = sweep_cli.SweepArgs(scenario="primary-outage", seeds="1-2")
    command = sweep_cli.replay_command(args, worst.seed)
    assert command == f"ciris-actors simulate primary-outage --seed {worst.seed}"
    report_path = tmp_path / "replay.json"
    argv = shlex.split(command)[1:]
    assert main([*argv, "--json", str(report_path)]) == 1
    replayed = json.loads(report_path.read_text())
    assert replayed["invariants"]["violation_count"] == worst.violations
    assert "Routing rules:" in capsys.readouterr().out


def test_the_cli_names_the_broken_seeds_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ciris_actors.selection, "select", first_member_whatever_its_state)

    def in_threads(scenario: object, seeds: Collection[int], **kwargs: object) -> object:
        with ThreadPoolExecutor(max_workers=1) as one:
            return sweep(scenario, seeds, **{**kwargs, "executor": one})  # type: ignore[arg-type]

    monkeypatch.setattr(sweep_cli, "sweep", in_threads)
    assert main(["sweep", "primary-outage", "--seeds", "5", "--engine", "tasks"]) == 1
    out = capsys.readouterr().out
    assert "Needs a look: 1 of 1 seed broke a routing rule" in out
    assert "ciris-actors simulate primary-outage --seed 5 --engine tasks" in out


def test_no_classes_sweeps_every_error_as_a_failure_and_replays_it_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    swept: list[str] = []

    def in_threads(scenario: Any, seeds: Collection[int], **kwargs: Any) -> Any:
        swept.append(scenario.classify)
        with ThreadPoolExecutor(max_workers=1) as one:
            return sweep(scenario, seeds, **{**kwargs, "executor": one})

    monkeypatch.setattr(sweep_cli, "sweep", in_threads)
    assert main(["sweep", "revoked-key", "--seeds", "1", "--no-classes"]) == 0
    assert swept == ["none"]
    assert "ciris-actors simulate revoked-key --seed 1 --no-classes" in capsys.readouterr().out
    assert main(["sweep", "revoked-key", "--seeds", "1"]) == 0
    assert swept == ["none", "http"]
    assert "--no-classes" not in capsys.readouterr().out


# -- the command ---------------------------------------------------------------------------


def test_the_cli_sweeps_on_processes_and_prints_spreads_and_worst_seeds(
    scenario_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", str(scenario_path), "--seeds", "1-4", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "over 4 seeds (1-4) on 2 processes" in out
    assert "Good sweep: all 4 seeds held every routing rule" in out
    for label in ("served", "below best router", "p99 latency", "fault noticed in"):
        assert label in out
    for line in out.splitlines():
        # Only a word longer than the line itself (the path) may pass 80 columns, alone.
        assert len(line) <= 80 or len(line.removesuffix(" \\").split()) == 1, line
    worst = out.split("Worst seeds")[1].splitlines()[1:]
    # The first replay command, joined back the way a shell reads its continuation lines.
    first = []
    for line in worst[1:]:
        first.append(line.removesuffix(" \\"))
        if not line.endswith(" \\"):
            break
    assert len(first) > 1, "the long path should have made the command wrap"
    argv = shlex.split(" ".join(first))
    assert argv[:3] == ["ciris-actors", "simulate", str(scenario_path)]
    assert argv[3] == "--seed"
    assert int(argv[4]) in range(1, 5)


def test_json_to_stdout_keeps_the_words_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", SCENARIO, "--seeds", "1,2", "--jobs", "1", "--json", "-"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["seeds"] == 2
    assert [o["seed"] for o in result["outcomes"]] == [1, 2]
    assert set(result["spreads"]) >= {"availability", "oracle_gap", "detection", "failover"}
    assert "Good sweep" in captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "9-1"], "--seeds: the range '9-1' runs backwards"),
        (["--seeds", "one"], "--seeds: expected seeds"),
        (["--seeds", "1", "--jobs", "0"], "--jobs: must be >= 1"),
        (["--seeds", "1", "--jobs", "2", "--scheduler", "tcp://h:1"], "--jobs and --scheduler"),
        (["--seeds", "1", "--scheduler", "localhost"], "expected tcp://HOST:PORT"),
        (["--seeds", "1", "--scheduler", "tcp://h:port"], "expected tcp://HOST:PORT"),
        (["--seeds", "1", "--engine", "fast"], "invalid choice: 'fast'"),
        (["nowhere.toml", "--seeds", "1"], "nowhere.toml"),
        ([], "the following arguments are required: --seeds"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("ciris-actors sweep: error:")
    assert message in err


def test_an_unreachable_scheduler_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sweep_cli, "_CONNECT_TIMEOUT", 0.5)
    assert main(["sweep", SCENARIO, "--seeds", "1", "--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no Dask scheduler answered at tcp://127.0.0.1:9" in err


def test_without_dask_the_scheduler_option_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    assert main(["sweep", SCENARIO, "--seeds", "1", "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "pip install 'ciris-actors[cluster]'" in capsys.readouterr().err


# -- on a Dask cluster -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    """A real Dask cluster of two worker processes on this machine."""
    from distributed import LocalCluster

    local = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with local:
        yield str(local.scheduler_address)


def test_a_sweep_on_a_dask_cluster_matches_the_local_one(
    dask_scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    on_cluster = tmp_path / "cluster.json"
    local = tmp_path / "local.json"
    argv = ["sweep", SCENARIO, "--seeds", "1-4"]
    assert main([*argv, "--scheduler", dask_scheduler, "--json", str(on_cluster)]) == 0
    words = " ".join(capsys.readouterr().out.split())
    assert f"on the Dask cluster at {dask_scheduler} (2 workers)" in words
    assert main([*argv, "--json", str(local)]) == 0
    assert on_cluster.read_text() == local.read_text()
    with cluster(dask_scheduler) as (executor, workers):
        assert workers == 2
        assert sweep(load_scenario(bundled_scenarios()[SCENARIO]), [2], executor=executor).ok


def test_what_goes_wrong_inside_a_cluster_sweep_is_not_called_bad_input(
    dask_scheduler: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise ValueError("a bug inside a run")

    monkeypatch.setattr(sweep_cli, "sweep", broken)
    with pytest.raises(ValueError, match="a bug inside a run"):
        main(["sweep", SCENARIO, "--seeds", "1", "--scheduler", dask_scheduler])

    def workers_without_the_package(*args: object, **kwargs: object) -> object:
        raise ModuleNotFoundError("No module named 'ciris_actors'", name="ciris_actors")

    monkeypatch.setattr(sweep_cli, "sweep", workers_without_the_package)
    assert main(["sweep", SCENARIO, "--seeds", "1", "--scheduler", dask_scheduler]) == 2
    assert "install ciris-actors (this version) on every worker" in capsys.readouterr().err


class InterruptedWhileSubmitting(ThreadPoolExecutor):
    """A one-thread pool whose *n*-th submit is interrupted (Ctrl-C)."""

    def __init__(self, n: int) -> None:
        super().__init__(max_workers=1)
        self.n = n
        self.submitted: list[Future[Any]] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        if len(self.submitted) == self.n:
            raise KeyboardInterrupt
        future = super().submit(fn, *args, **kwargs)
        self.submitted.append(future)
        return future


def test_an_interrupt_while_submitting_drops_the_seeds_already_queued() -> None:
    scenario = load_scenario(bundled_scenarios()[SCENARIO])
    with InterruptedWhileSubmitting(3) as pool:
        with pytest.raises(KeyboardInterrupt):
            sweep(scenario, range(1, 10), executor=pool)
        queued = pool.submitted[1:]
        assert all(future.cancelled() for future in queued)


# -- at a terminal ---------------------------------------------------------------------------


def test_at_a_terminal_a_progress_bar_then_80_columns_and_ctrl_c_stops_the_workers() -> None:
    finished = run_in_terminal([*COMMAND, "sweep", SCENARIO, "--seeds", "1-6", "--jobs", "2"])
    assert finished.status == 0
    assert "Good sweep" in finished.text
    assert all(len(line) <= 80 for line in finished.lines)

    # The default scenario takes seconds a seed: Ctrl-C lands while seeds are running.
    stopped = run_in_terminal(
        [*COMMAND, "sweep", "--seeds", "1-100", "--jobs", "2"], interrupt_when="sweeping"
    )
    assert stopped.status == 130
    assert "ciris-actors: interrupted" in stopped.text
    assert "Traceback" not in stopped.text


@given(
    st.lists(
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30),
        min_size=1,
        max_size=12,
    )
)
def test_a_wrapped_command_pastes_back_into_the_same_words_and_fits_the_width(
    words: list[str],
) -> None:
    lines = command(words, indent="    ")
    # A shell reads backslash-newline as nothing; shlex does not, so join as the shell would.
    assert shlex.split(" ".join(line.removesuffix(" \\") for line in lines)) == words
    for line in lines:
        # Only a word too long for any line may pass the width, and then it is alone.
        assert len(line) <= 80 or len(shlex.split(line.removesuffix(" \\"))) == 1
    assert all(line.endswith(" \\") for line in lines[:-1])
