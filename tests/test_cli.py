"""The ``ciris-actors simulate`` command, run as a user runs it: in a subprocess, on short
scenarios written to a temporary folder (two minutes of virtual traffic, about a second
each)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from ciris_actors import cli
from ciris_actors.simulation import Report, Scenario, Violation, run_scenario
from ciris_actors.simulation.runner import ProgressCallback

SCENARIO = """\
name = "two-providers"
description = "A primary and a secondary; the primary is down for 40 seconds."
seed = 5

[registry.breaker]
failure_threshold = 3
recovery_timeout = 10.0
success_threshold = 1
timeout_duration = 5.0

[[providers]]
name = "primary"
priority = "CRITICAL"
latency = 0.2

[[providers]]
name = "secondary"
priority = "HIGH"
latency = 0.3

[workload]
duration = 120.0
rate = 5.0

[[faults]]
kind = "outage"
provider = "primary"
at = 30.0
duration = 40.0
"""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def simulate(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ciris_actors.cli simulate ARGS`` with stdout and stderr piped."""
    return subprocess.run(
        [sys.executable, "-m", "ciris_actors.cli", "simulate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run *code* in a fresh interpreter (to hide an installed extra), output piped."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "two-providers.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


def test_simulate_prints_a_summary_and_exits_0(scenario: Path) -> None:
    result = simulate(str(scenario))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("two-providers: seed 5, 2 min of traffic at 5 requests/s, mode call")
    for expected in ("requests", "availability", "oracle", "latency", "p99"):
        assert expected in out
    assert "Providers" in out
    assert "Faults" in out
    assert "Invariants: all held" in out
    provider_rows = [line.split() for line in out.splitlines() if line.startswith("  primary")]
    assert provider_rows
    assert provider_rows[0][-1] == "no"  # the primary's actor never became FAILED
    assert result.stderr == ""


def test_seed_overrides_the_scenario_seed(scenario: Path) -> None:
    result = simulate(str(scenario), "--seed", "11")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("two-providers: seed 11,")


def test_json_report_accounts_for_every_request(scenario: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    result = simulate(str(scenario), "--json", str(target))
    assert result.returncode == 0, result.stderr
    report = json.loads(target.read_text(encoding="utf-8"))
    requests = report["requests"]
    assert requests["sent"] > 0
    assert requests["sent"] == (
        requests["succeeded"] + requests["failed"] + requests["rejected"] + requests["shed"]
    )
    assert report["scenario"] == "two-providers"
    assert f"Report written to {target}" in result.stdout


def test_json_to_stdout_moves_the_summary_to_stderr(scenario: Path) -> None:
    result = simulate(str(scenario), "--json", "-")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["seed"] == 5
    assert "Invariants: all held" in result.stderr


def test_plot_writes_a_png(scenario: Path, tmp_path: Path) -> None:
    target = tmp_path / "timeline.png"
    result = simulate(str(scenario), "--plot", str(target))
    assert result.returncode == 0, result.stderr
    data = target.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1000
    assert f"Timeline written to {target}" in result.stdout


def test_plot_without_matplotlib_says_how_to_get_it(scenario: Path, tmp_path: Path) -> None:
    target = tmp_path / "timeline.png"
    result = run_python(
        "import sys; sys.modules['matplotlib'] = None\n"
        "from ciris_actors.cli import main\n"
        f"sys.exit(main(['simulate', {str(scenario)!r}, '--plot', {str(target)!r}]))"
    )
    assert result.returncode == 2
    assert result.stderr == (
        "ciris-actors simulate: error: --plot needs matplotlib: pip install 'ciris-actors[plot]'\n"
    )
    assert not target.exists()


def test_without_rich_a_pipe_gets_plain_text_and_no_hint(scenario: Path) -> None:
    result = run_python(
        "import sys; sys.modules['rich'] = None\n"
        "from ciris_actors.cli import main\n"
        f"sys.exit(main(['simulate', {str(scenario)!r}]))"
    )
    assert result.returncode == 0, result.stderr
    assert "Invariants: all held" in result.stdout
    assert "ciris-actors[sim]" not in result.stdout + result.stderr


def test_list_shows_the_bundled_scenarios() -> None:
    result = simulate("--list")
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert "primary-outage" in names
    assert "(default)" in names


def test_a_pipe_gets_no_progress_bar_and_no_escape_codes(scenario: Path) -> None:
    result = simulate(str(scenario))
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "\x1b" not in output
    assert "\r" not in output
    assert "simulating" not in output.lower()
    assert "ciris-actors[sim]" not in output


BAD_SCENARIOS = {
    "bad-toml": ('name = "two-providers"', 'name = "two-providers', "not valid TOML"),
    "unknown-provider": (
        'provider = "primary"',
        'provider = "primray"',
        "faults[0].provider: unknown provider 'primray'",
    ),
    "negative-duration": (
        "duration = 40.0",
        "duration = -40.0",
        "faults[0].duration: must be > 0",
    ),
    "unknown-kind": (
        'kind = "outage"',
        'kind = "meteor"',
        "faults[0].kind: unknown value 'meteor'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SCENARIOS))
def test_bad_scenario_is_one_line_naming_file_and_field_exit_2(tmp_path: Path, case: str) -> None:
    old, new, message = BAD_SCENARIOS[case]
    assert old in SCENARIO
    path = tmp_path / f"{case}.toml"
    path.write_text(SCENARIO.replace(old, new, 1), encoding="utf-8")
    result = simulate(str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"ciris-actors simulate: error: {path}: ")
    assert message in lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-scenario"], "no-such-scenario: no such file and no bundled scenario"),
        (["missing.toml"], "missing.toml: cannot read"),
        (["--seed", "many"], "argument --seed: expected an integer, got 'many'"),
        (["--seed", "-3"], "argument --seed: must be >= 0"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = simulate(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("ciris-actors simulate: error: ")
    assert message in lines[0]


def test_invariant_violations_fail_the_command(
    scenario: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run whose report carries a violation exits 1 and prints the violation (the
    runner is real; the violation is added to its report, as a broken router would)."""

    def run_with_a_violation(
        scenario: Scenario, *, seed: int | None = None, progress: ProgressCallback | None = None
    ) -> Report:
        report = run_scenario(scenario, seed=seed, progress=progress)
        invariants = report.invariants
        violation = Violation(42.0, "open-breaker", "routed to primary while OPEN")
        return attrs.evolve(
            report,
            invariants=attrs.evolve(
                invariants,
                violation_count=invariants.violation_count + 1,
                violations=(*invariants.violations, violation),
            ),
        )

    monkeypatch.setattr("ciris_actors.cli.simulate.run_scenario", run_with_a_violation)
    assert cli.main(["simulate", str(scenario)]) == 1
    out = capsys.readouterr().out
    assert "Invariants: 1 violation in" in out
    assert "t=42.000 s  open-breaker: routed to primary while OPEN" in out
