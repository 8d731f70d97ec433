"""The ``ciris-actors simulate`` command, run as a user runs it: in a subprocess, on short
scenarios written to a temporary folder (two minutes of virtual traffic, about a second
each)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import ciris_actors
import ciris_actors.selection
from ciris_actors import cli
from ciris_actors.simulation import parse_scenario, run_scenario
from ciris_actors.simulation.engines import ENGINES

from .helpers import first_member_whatever_its_state
from .terminal import run_in_terminal

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
    assert out.replace("\n", " ").startswith(
        "two-providers (seed 5): 2 min of traffic at 5 requests/s, each through registry.call"
    )
    # First a verdict in words, then the numbers, then what to look at next.
    verdict = out.split("\n\n")[1].replace("\n", " ")
    assert verdict.startswith("Good run: ")
    assert "primary's outage was noticed" in verdict
    assert "its traffic moved to secondary" in verdict
    assert verdict.endswith("every routing rule held.")
    for expected in ("served", "best possible", "latency", "p99", "Providers", "Faults"):
        assert expected in out
    assert "Routing rules: all held" in out
    assert "Next: --plot timeline.png" in out
    for jargon in ("oracle", "gap", "shed", "first attempts", "routing checks", "mode call"):
        assert not re.search(rf"\b{jargon}\b", out), jargon
    provider_rows = [line.split() for line in out.splitlines() if line.startswith("  primary")]
    assert provider_rows
    assert provider_rows[0][-1] == "no"  # the primary's actor never became FAILED
    assert result.stderr == ""


def test_seed_overrides_the_scenario_seed(scenario: Path) -> None:
    result = simulate(str(scenario), "--seed", "11")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("two-providers (seed 11): ")


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
    assert "Routing rules: all held" in result.stderr


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
    assert "Routing rules: all held" in result.stdout
    assert "ciris-actors[sim]" not in result.stdout + result.stderr


def test_list_shows_the_bundled_scenarios() -> None:
    result = simulate("--list")
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()[1:] if line[2] != " "]
    assert "primary-outage" in names
    assert "(default)" in names


def test_every_run_says_how_many_attempts_were_wasted(tmp_path: Path) -> None:
    """The numbers end with the attempts on providers that could not serve, as the JSON
    counts them; without class faults, nothing about classes is said."""
    path = tmp_path / "off-the-grid.toml"
    # Off the 10 s health-check grid, so calls meet the outage before a check does.
    path.write_text(SCENARIO.replace("at = 30.0", "at = 31.3"), encoding="utf-8")
    result = simulate(str(path), "--json", "-")
    assert result.returncode == 0, result.stderr
    attempts = json.loads(result.stdout)["attempts"]
    assert attempts["wasted"] > 0  # the outage's failed attempts
    per_request = f"{attempts['wasted_per_request']:.4f}"
    expected = (
        f"  wasted tries   {attempts['wasted']} on providers that could not serve"
        f" ({per_request} per request)"
    )
    assert expected in result.stderr.splitlines()
    assert "Attempts by outcome" not in result.stderr
    assert "HTTP class" not in result.stderr


def test_a_class_scenario_shows_the_classes_and_no_classes_counts_plain_failures() -> None:
    classes = simulate("revoked-key", "--json", "-")
    assert classes.returncode == 0, classes.stderr
    report = json.loads(classes.stdout)
    assert report["classify"] == "http"
    assert report["providers"]["primary"]["outcomes"]["disabled"] > 0
    summary = classes.stderr.replace("\n", " ")
    assert "Errors counted by HTTP class: a 429 rate-limits, a 401 disables" in summary
    assert "primary's revoked key was noticed" in summary
    row = next(line for line in classes.stderr.splitlines() if line.startswith("  primary "))
    outcomes = report["providers"]["primary"]["outcomes"]
    table = classes.stderr.split("Attempts by outcome\n")[1].splitlines()
    assert table[0].split() == [
        "provider", "served", "failed", "timeout", "limited", "disabled", "rerouted", "ignored"
    ]  # fmt: skip
    assert table[1].split() == [
        "primary",
        *(str(outcomes[key]) for key in ("success", "failure", "timeout", "rate_limited",
                                          "disabled", "rerouted", "ignored")),
    ]  # fmt: skip
    assert row.split()[0] == "primary"

    plain = simulate("revoked-key", "--no-classes", "--json", "-")
    assert plain.returncode == 0, plain.stderr
    plain_report = json.loads(plain.stdout)
    assert plain_report["classify"] == "none"
    assert plain_report["providers"]["primary"]["outcomes"]["disabled"] == 0
    assert plain_report["attempts"]["wasted"] > report["attempts"]["wasted"]
    assert "Every error counted as a plain failure" in plain.stderr.replace("\n", " ")
    assert "Attempts by outcome" in plain.stderr


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
    # A misspelt key is named, with the key it resembles, not reported as the key missing.
    "misspelt-required-key": (
        'kind = "outage"',
        'knd = "outage"',
        "faults[0].knd: unknown field (did you mean 'kind'?)",
    ),
    "misspelt-optional-key": (
        "rate = 5.0",
        "rtae = 5.0",
        "workload.rtae: unknown field (did you mean 'rate'?)",
    ),
    "misspelt-breaker-key": (
        "failure_threshold = 3",
        "failure_treshold = 3",
        "registry.breaker.failure_treshold: unknown field (did you mean 'failure_threshold'?)",
    ),
    # The fields of error classes.
    "unknown-classify": (
        "[registry.breaker]",
        '[registry]\nclassify = "xml"\n\n[registry.breaker]',
        "registry.classify: unknown value 'xml' (expected one of http, none)",
    ),
    "bare-context-overflow": (
        "[registry.breaker]",
        '[registry]\ncontext_overflow = "long_context"\n\n[registry.breaker]',
        "registry.context_overflow: expected a list of strings, got 'long_context'",
    ),
    "long-share-above-one": (
        "rate = 5.0",
        "rate = 5.0\nlong_share = 2.0",
        "workload.long_share: must be <= 1, got 2.0",
    ),
    "negative-retry-after": (
        'kind = "outage"',
        'kind = "rate_limit"\nretry_after = -5',
        "faults[0].retry_after: must be >= 0, got -5",
    ),
    # One wording for a whole number wherever it is checked.
    "float-threshold": (
        "failure_threshold = 3",
        "failure_threshold = 3.5",
        "registry.breaker.failure_threshold: expected an integer, got float",
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


@pytest.mark.parametrize("engine", ENGINES)
def test_invariant_violations_fail_the_command(
    scenario: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    engine: str,
) -> None:
    """A broken router's violations are listed and the command exits 1, on either
    engine."""
    monkeypatch.setattr(ciris_actors.selection, "select", first_member_whatever_its_state)
    assert cli.main(["simulate", str(scenario), "--engine", engine]) == 1
    out = capsys.readouterr().out
    assert "Needs a look: " in out
    assert re.search(r"Routing rules: [\d,]+ violations? in [\d,]+ routing decisions", out)
    assert re.search(r"t=\d+\.\d{3} s  open-breaker: routed to 'primary' while its breaker", out)


# -- at a terminal ----------------------------------------------------------------------------

COMMAND = [sys.executable, "-m", "ciris_actors.cli"]

LONG_NAMES = SCENARIO.replace('"primary"', '"primary-openai-gpt-4o-structured-output-eu-west"')


def test_everything_fits_80_columns_at_a_terminal(scenario: Path) -> None:
    screen = run_in_terminal([*COMMAND, "simulate", str(scenario)])
    assert screen.status == 0, screen.text
    assert "Good run: " in screen.text
    printed = [line for line in screen.lines if not line.startswith("simulating")]
    too_wide = [line for line in printed if len(line) > 80]
    assert too_wide == []
    assert "…" not in screen.text  # nothing cut short to fit


@pytest.mark.parametrize("args", [["context-overflow"], ["revoked-key", "--no-classes"]])
def test_a_class_scenario_fits_80_columns_at_a_terminal(args: list[str]) -> None:
    screen = run_in_terminal([*COMMAND, "simulate", *args])
    assert screen.status == 0, screen.text
    assert "Attempts by outcome" in screen.text
    assert "wasted tries" in screen.text
    printed = [line for line in screen.lines if not line.startswith("simulating")]
    assert [line for line in printed if len(line) > 80] == []
    assert "…" not in screen.text


def test_a_table_too_wide_for_80_columns_is_stacked_and_loses_no_value(tmp_path: Path) -> None:
    path = tmp_path / "long-names.toml"
    path.write_text(LONG_NAMES, encoding="utf-8")
    screen = run_in_terminal([*COMMAND, "simulate", str(path)])
    assert screen.status == 0, screen.text
    assert all(len(line) <= 80 for line in screen.lines if not line.startswith("simulating"))
    text = screen.text
    assert "  primary-openai-gpt-4o-structured-output-eu-west\n" in text
    report = run_scenario(parse_scenario(tomllib.loads(LONG_NAMES)))
    primary = report.provider("primary-openai-gpt-4o-structured-output-eu-west")
    assert f"served {primary.served}, share" in text.replace("\n    ", " ")


def test_ctrl_c_prints_interrupted_and_exits_130(tmp_path: Path) -> None:
    path = tmp_path / "long.toml"
    path.write_text(SCENARIO.replace("duration = 120.0", "duration = 36000.0"), encoding="utf-8")
    screen = run_in_terminal([*COMMAND, "simulate", str(path)], interrupt_when="simulating")
    assert screen.status == 130
    assert "ciris-actors: interrupted" in screen.text
    assert "Traceback" not in screen.text
    assert "KeyboardInterrupt" not in screen.text


def test_ctrl_c_stops_the_demo_too() -> None:
    screen = run_in_terminal(
        [*COMMAND, "demo", "--requests", "100000000"], interrupt_when="request 10 ->"
    )
    assert screen.status == 130
    assert "ciris-actors: interrupted" in screen.text
    assert "Traceback" not in screen.text


@pytest.mark.parametrize("lines_read", [0, 1])
def test_a_reader_that_leaves_early_ends_simulate_quietly(scenario: Path, lines_read: int) -> None:
    # `| head -0` (gone before anything is written) and `| head -1` (gone after a line).
    process = subprocess.Popen(
        [*COMMAND, "simulate", str(scenario), "--json", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert_ends_quietly(process, 0)


def test_a_reader_that_leaves_early_ends_the_demo_quietly() -> None:
    process = subprocess.Popen(
        [*COMMAND, "demo", "--requests", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert_ends_quietly(process, 1)


def assert_ends_quietly(process: subprocess.Popen[str], lines_read: int) -> None:
    assert process.stdout is not None
    for _ in range(lines_read):
        assert process.stdout.readline()
    process.stdout.close()  # the reader goes away
    _, stderr = process.communicate(timeout=120)
    assert "Traceback" not in stderr
    assert "BrokenPipe" not in stderr
    assert "Exception ignored" not in stderr
    assert process.returncode == 141  # as a Unix tool that SIGPIPE ended


# -- what it reads and writes -------------------------------------------------------------------


def test_a_scenario_that_is_not_utf8_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "latin-1.toml"
    path.write_bytes(SCENARIO.replace("secondary", "secondaire é").encode("latin-1"))
    result = simulate(str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"ciris-actors simulate: error: {path}: not UTF-8 text (byte 0xe9 at offset"
        f" {SCENARIO.index('secondary') + len('secondaire ')}); save the file as UTF-8"
    ]


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + SCENARIO.encode("utf-8"))
    result = simulate(str(path))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("suffix", "magic"), [(".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_plot_picks_its_format_from_the_extension(
    scenario: Path, tmp_path: Path, suffix: str, magic: bytes
) -> None:
    target = tmp_path / f"timeline{suffix}"
    result = simulate(str(scenario), "--plot", str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_bytes().startswith(magic)


@pytest.mark.parametrize(
    ("option", "target", "message"),
    [
        ("--plot", "timeline.gif", "cannot tell the picture format from '.gif'"),
        ("--plot", "timeline", "cannot tell the picture format from 'a missing extension'"),
        ("--plot", ".", "is a directory; name a file in it"),
        ("--json", ".", "is a directory; name a file in it"),
        ("--json", "no/such/folder/report.json", "no such directory 'no/such/folder'"),
    ],
)
def test_an_output_that_cannot_be_written_fails_before_the_run(
    scenario: Path, tmp_path: Path, option: str, target: str, message: str
) -> None:
    result = subprocess.run(
        [*COMMAND, "simulate", str(scenario), option, target],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stdout == ""  # it never ran
    assert result.stderr.splitlines() == [
        f"ciris-actors simulate: error: {option} {target}: {message}"
        + ("; name it .png, .svg or .pdf" if "format" in message else "")
    ]


# -- the command itself ---------------------------------------------------------------------------


def test_no_command_prints_the_help() -> None:
    result = subprocess.run(COMMAND, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0
    assert "usage: ciris-actors" in result.stdout
    for command in ("simulate", "serve", "demo"):
        assert f"    {command}" in result.stdout
    assert result.stderr == ""


def test_version() -> None:
    result = subprocess.run(
        [*COMMAND, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert result.stdout == f"ciris-actors {ciris_actors.__version__}\n"


@pytest.mark.parametrize("command", ["simulate", "serve", "demo"])
def test_every_subcommand_says_what_it_does_and_its_defaults(command: str) -> None:
    result = subprocess.run(
        [*COMMAND, command, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    description = result.stdout.split("\n\n")[1]
    assert description[0].isupper()
    assert "Exit status: 0" in description.replace("\n", " ")
    options = result.stdout.split("options:")[1]
    assert "default" in options


def test_the_demo_and_the_scenario_list_fit_80_columns() -> None:
    for command in (["demo"], ["simulate", "--list"]):
        result = subprocess.run(
            [*COMMAND, *command], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr
        assert [line for line in result.stdout.splitlines() if len(line) > 80] == []
