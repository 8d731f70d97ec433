"""``ciris-actors serve`` and the live engine behind it.

The command runs as a user runs it: in a subprocess, on a three-second scenario, with real
HTTP requests against its control plane and a real signal to stop it. Its output lines
are the synchronisation points: a test waits for the line saying something happened (with
a deadline, in case it never comes), never for a fixed time. The live engine's cycles and
the traffic summary are tested in-process on virtual time.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import httpx
import pytest
import trio
import trio.testing

from ciris_actors import CircuitState
from ciris_actors.cli.serve import _summaries
from ciris_actors.events import ActorCrashed, BreakerTransition
from ciris_actors.simulation import Scenario, parse_scenario
from ciris_actors.simulation.live import CycleNotice, FaultNotice, Notice, run_live

#: Three seconds a cycle: the primary is down from 0.6 s to 1.6 s, the secondary crashes
#: at 2 s. Fast breaker and health checks, so the output shows it within the cycle.
SCENARIO = """\
name = "quick"
description = "Primary down for a second of every three; the secondary crashes once."
seed = 3

[registry]
health_check_interval = 0.5

[registry.breaker]
failure_threshold = 2
recovery_timeout = 0.5
success_threshold = 1
timeout_duration = 2.0

[[providers]]
name = "primary"
priority = "CRITICAL"
latency = 0.02

[[providers]]
name = "secondary"
latency = 0.02

[workload]
duration = 3.0
rate = 40.0

[[faults]]
kind = "outage"
provider = "primary"
at = 0.6
duration = 1.0

[[faults]]
kind = "crash"
provider = "secondary"
at = 2.0
duration = 0.5
"""

TOKEN = "test-token-0123456789"
#: Seconds to wait for a line that should come within a cycle or two, or for an exit.
DEADLINE = 30.0


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "quick.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token.txt"
    path.write_text(TOKEN + "\n", encoding="utf-8")  # the one trailing newline is dropped
    return path


class Serve:
    """``ciris-actors serve ARGS`` in a subprocess, its stdout read line by line.

    A thread moves stdout lines into a queue, so a test can wait for a line with a
    deadline; every line read so far is in :attr:`lines`.
    """

    def __init__(self, *args: str, prelude: str | None = None) -> None:
        command = [sys.executable, "-m", "ciris_actors.cli", "serve", *args]
        if prelude is not None:  # Python run first, in the command's process
            main = "from ciris_actors.cli import main\nsys.exit(main(['serve', *sys.argv[1:]]))"
            command = [sys.executable, "-c", f"import sys\n{prelude}\n{main}", *args]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:
        """Read lines until one matches *pattern* (``re.search``), and return the match."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} in {timeout} s:\n" + self.output)
            if line is None:
                pytest.fail(f"the command exited before printing {pattern!r}:\n" + self.output)
            self.lines.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def stop(self, signum: int) -> tuple[int, str]:
        """Send *signum*; return the exit status and stderr once the command exits."""
        self.process.send_signal(signum)
        returncode = self.process.wait(timeout=DEADLINE)
        self._drain()
        assert self.process.stderr is not None
        return returncode, self.process.stderr.read()

    def _drain(self) -> None:
        self._reader.join(timeout=DEADLINE)
        while not self._queue.empty():
            line = self._queue.get_nowait()
            if line is not None:
                self.lines.append(line)

    @property
    def statements(self) -> list[str]:
        """:attr:`lines` with each wrapped continuation (an indented line) joined to the
        line it continues, as one statement."""
        return unwrapped(self.lines)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def __enter__(self) -> Serve:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=DEADLINE)
        self._reader.join(timeout=DEADLINE)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def unwrapped(lines: list[str]) -> list[str]:
    """*lines* with every indented line (a continuation of a wrapped line) joined to the
    one before it."""
    joined: list[str] = []
    for line in lines:
        if line.startswith("  ") and joined:
            joined[-1] += " " + line.strip()
        else:
            joined.append(line)
    return joined


def banner(serve: Serve) -> dict[str, str]:
    """Read the start-up banner; return its ``label: value`` lines by label, and as
    ``"try"`` the curl command it suggests, its continuation lines joined as a shell
    would."""
    serve.expect(r"^Ctrl-C stops it\.$")
    fields = {}
    for line in serve.statements:
        label, _, value = line.partition(": ")
        fields[label] = value
    # The curl line is split with a shell continuation: joined as a shell would.
    command = fields.pop("try, in another terminal", "")
    fields["try"] = command.replace(" \\ ", " ")
    return fields


def resolves(client: httpx.Client) -> float:
    """The ``ciris_resolves_total`` of resolves that chose a provider."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    match = re.search(r'^ciris_resolves_total\{outcome="hit",service_type="llm"\} (\S+)$',
                      response.text, re.MULTILINE)  # fmt: skip
    assert match, response.text
    return float(match.group(1))


def test_serve_runs_the_scenario_live_and_stops_on_sigint(scenario: Path, token_file: Path) -> None:
    with Serve(str(scenario), "--port", "0", "--token-file", str(token_file)) as serve:
        fields = banner(serve)
        assert fields["ciris-actors serve"].startswith(
            "scenario quick (seed 3), 2 providers: primary, secondary"
        )
        assert fields["token"] == f"read from {token_file}"
        url = fields["control plane"]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), url
        assert fields["try"] == (
            f'curl -H "Authorization: Bearer $(cat {token_file})" {url}/v1/runtime/services/health'
        )
        assert TOKEN not in serve.output

        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, headers=headers, timeout=DEADLINE) as client:
            assert httpx.get(f"{url}/v1/runtime/services", timeout=DEADLINE).status_code == 401
            services = client.get("/v1/runtime/services")
            assert services.status_code == 200, services.text
            assert sorted(services.json()["circuit_breaker_stats"]) == ["primary", "secondary"]
            before = resolves(client)

            # The fault schedule plays out, and starts over when the scenario ends.
            serve.expect(r"fault #0 begins: outage on primary for 1 s \(scenario t=0\.6 s\)$")
            serve.expect(r"breaker primary: closed -> open \(")
            serve.expect(r"fault #0 ends: outage on primary$")
            serve.expect(r"crash secondary: SimulatedError: secondary: simulated crash$")
            serve.expect(
                r"the scenario's 3 s are over: the fault schedule starts over \(cycle 2\)$"
            )
            serve.expect(r"fault #0 begins: outage on primary")
            assert resolves(client) > before

            forced = client.post(
                "/v1/runtime/services/secondary/circuit-breaker/force-open",
                json={"duration": 60},
            )
            assert forced.status_code == 200, forced.text
            assert forced.json()["circuit_breaker_state"] == "open"
            serve.expect(r"breaker secondary: \w+ -> open \(forced open\)$")

        returncode, stderr = serve.stop(signal.SIGINT)
        assert returncode == 130, stderr  # Ctrl-C: as shells report a SIGINT stop
        assert stderr == "ciris-actors serve: interrupted\n"
        assert re.search(r"  SIGINT: stopping", serve.output), serve.output
        # It fits a terminal, but for the token file's path, the user's own string.
        assert [
            line for line in serve.lines if len(line) > 80 and str(token_file) not in line
        ] == []
        final = serve.statements[-1]
        match = re.match(
            r"stopped after \d+:\d\d \(SIGINT\): ([\d,]+) requests?: (\d+) ok, ", final
        )
        assert match, final
        assert int(match.group(1).replace(",", "")) >= int(match.group(2)) > 0
        assert "served by primary" in final
        assert re.search(r"[1-9]\d* breaker opens?, [1-9]\d* crash(es)?, cycle [2-9]", final)
        assert re.search(
            r"; (nothing was left waiting|\d+ requests? still waiting for an answer"
            r" (was|were) cancelled)$",
            final,
        ), final
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/v1/runtime/services/health", headers=headers, timeout=DEADLINE)


def test_serve_generates_a_token_and_stops_on_sigterm() -> None:
    with Serve("primary-outage", "--port", "0") as serve:  # a bundled scenario, by name
        fields = banner(serve)
        assert fields["ciris-actors serve"].startswith("scenario primary-outage ")
        match = re.fullmatch(r"(\S+) \(generated for this run; .*\)", fields["token"])
        assert match, fields["token"]
        token = match.group(1)
        url = fields["control plane"]
        assert fields["try"] == (
            f'curl -H "Authorization: Bearer {token}" {url}/v1/runtime/services/health'
        )
        health = httpx.get(
            f"{url}/v1/runtime/services/health",
            headers={"Authorization": f"Bearer {token}"},
            timeout=DEADLINE,
        )
        assert health.status_code == 200, health.text
        assert health.json()["total_services"] == 2
        refused = httpx.get(
            f"{url}/v1/runtime/services/health",
            headers={"Authorization": "Bearer not-the-token"},
            timeout=DEADLINE,
        )
        assert refused.status_code == 401

        returncode, stderr = serve.stop(signal.SIGTERM)
        assert returncode == 0, stderr
        assert re.match(r"stopped after \d+:\d\d \(SIGTERM\): ", serve.statements[-1]), serve.output


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``ciris-actors serve ARGS`` to completion (for the commands that fail at once)."""
    return subprocess.run(
        [sys.executable, "-m", "ciris_actors.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ciris-actors serve: error: "), lines[0]
    assert message in lines[0]
    assert "control plane:" not in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "token.txt: cannot read: No such file or directory"),
        ("", "token.txt: the file is empty"),
        ("\n", "token.txt: the file is empty"),
        (" padded\n", "token.txt: the token must be one line of printable ASCII"),
        ("t\u00f6ken\n", "token.txt: the token must be one line of printable ASCII"),
        ("one\nline too many\n", "token.txt: the token must be one line of printable ASCII"),
    ],
)
def test_a_bad_token_file_exits_2(
    scenario: Path, tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "token.txt"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = run_serve(str(scenario), "--port", "0", "--token-file", str(path))
    assert result.returncode == 2
    assert_one_error_line(result, f"--token-file {path.parent}/{message}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-scenario"], "no-such-scenario: no such file and no bundled scenario"),
        (["missing.toml"], "missing.toml: cannot read"),
        (["--port", "70000"], "argument --port: must be 0..65535"),
        (["--port", "http"], "argument --port: expected a port number, got 'http'"),
        (["--seed", "-1"], "argument --seed: must be >= 0"),
        (
            ["--fleet", "memory://"],
            "--fleet memory://: a memory fleet lives inside one process; serve processes"
            " share state through Redis or Valkey: give a redis:// or rediss:// URL",
        ),
        (["--fleet", "http://127.0.0.1:6379"], "expected redis://[[USER]:PASSWORD@]HOST"),
        (["--fleet", "http://127.0.0.1:6379"], "got scheme 'http'"),
        (["--fleet", "127.0.0.1"], "--fleet 127.0.0.1: expected redis://"),
        (["--fleet", "redis://"], "--fleet redis://: no host"),
        (["--fleet", "redis://:6379/0"], "--fleet redis://:6379/0: no host"),
        (["--fleet", "redis://127.0.0.1:http"], "the port must be a number 0..65535"),
        (["--fleet", "redis://127.0.0.1:70000"], "the port must be a number 0..65535"),
        (["--fleet", "redis://127.0.0.1/db"], "the path must be a database number (/0)"),
        (["--fleet-node", "n1"], "--fleet-node: only with --fleet URL"),
        (["--fleet-quorum", "2"], "--fleet-quorum: only with --fleet URL"),
        (["--fleet-node", "n1", "--fleet-quorum", "2"], "--fleet-node and --fleet-quorum: only"),
        (["--fleet", "redis://127.0.0.1", "--fleet-node", " "], "--fleet-node: must not be empty"),
        (["--fleet", "redis://127.0.0.1", "--fleet-quorum", "0"], "--fleet-quorum: must be >= 1"),
    ],
)
def test_bad_arguments_exit_2(args: list[str], message: str) -> None:
    result = run_serve(*args)
    assert result.returncode == 2
    assert_one_error_line(result, message)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("memory://:s3cret@127.0.0.1", "memory://:***@127.0.0.1"),
        ("redis://:s3cret@127.0.0.1:http/0", "redis://:***@127.0.0.1:http/0"),
        ("rediss://alice:s3cret@127.0.0.1/x", "rediss://alice:***@127.0.0.1/x"),
        ("redis://s3cret@127.0.0.1:99999", "redis://***@127.0.0.1:99999"),
        ("redis://127.0.0.1/x?password=s3cret", "redis://127.0.0.1/x?password=***"),
    ],
)
def test_a_bad_fleet_url_is_named_without_its_password(url: str, shown: str) -> None:
    result = run_serve("--fleet", url)
    assert result.returncode == 2
    assert_one_error_line(result, f"--fleet {shown}: ")
    assert "s3cret" not in result.stderr + result.stdout


def test_without_the_redis_extra_fleet_says_how_to_get_it(scenario: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['coredis'] = None\n"
            "from ciris_actors.cli import main\n"
            f"sys.exit(main(['serve', {str(scenario)!r}, '--fleet', 'redis://127.0.0.1:6379/0']))",
        ],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "ciris-actors serve: error: --fleet needs the redis extra:"
        " pip install 'ciris-actors[redis]'\n"
    )
    assert result.stdout == ""


#: Run in the command's process before it starts: ``RedisFleet`` stood in for by a node of
#: an in-process ``MemoryFleet``, which writes the arguments it was given to a file. The
#: command's own handling of ``--fleet`` is the real one.
STAND_IN_REDIS = """\
import json, types
from ciris_actors.fleet import MemoryFleet

def RedisFleet(url, node=None, quorum=1):
    with open({record!r}, "w", encoding="utf-8") as out:
        json.dump({{"url": url, "node": node, "quorum": quorum}}, out)
    return MemoryFleet(quorum=quorum).node(node or "picked-by-the-link")

stand_in = types.ModuleType("ciris_actors.fleet._redis")
stand_in.RedisFleet = RedisFleet
sys.modules["ciris_actors.fleet._redis"] = stand_in
"""


def test_serve_joins_the_fleet_it_is_given_and_shows_its_status(
    scenario: Path, token_file: Path, tmp_path: Path
) -> None:
    record = tmp_path / "fleet-args.json"
    url = "redis://:s3cret@127.0.0.1:6390/2"
    prelude = STAND_IN_REDIS.format(record=str(record))
    args = ["--port", "0", "--token-file", str(token_file), "--fleet", url]
    args += ["--fleet-node", "worker-7", "--fleet-quorum", "2"]
    with Serve(str(scenario), *args, prelude=prelude) as serve:
        fields = banner(serve)
        assert fields["fleet"] == (
            "node worker-7 on redis://:***@127.0.0.1:6390/2, quorum 2; the store answers"
        )
        # The link gets the URL with its password; nothing printed shows it.
        assert json.loads(record.read_text(encoding="utf-8")) == {
            "url": url,
            "node": "worker-7",
            "quorum": 2,
        }
        headers = {"Authorization": f"Bearer {TOKEN}"}
        base = fields["control plane"]
        with httpx.Client(base_url=base, headers=headers, timeout=DEADLINE) as client:
            fleet = client.get("/v1/runtime/fleet").json()["fleet"]
            assert (fleet["node"], fleet["reachable"], fleet["quorum"]) == ("worker-7", True, 2)
            metrics = client.get("/metrics").text
            assert 'ciris_fleet_degraded{node="worker-7"} 0.0' in metrics.splitlines()
            # A change made over HTTP is reported to the fleet.
            forced = client.post(
                "/v1/runtime/services/secondary/circuit-breaker/force-open",
                json={"duration": 60},
            )
            assert forced.status_code == 200, forced.text
            serve.expect(r"breaker secondary: \w+ -> open \(forced open\)$")
        returncode, stderr = serve.stop(signal.SIGTERM)
        assert returncode == 0, stderr
    assert "s3cret" not in serve.output + stderr
    totals = serve.statements[-2]
    assert re.fullmatch(
        r"fleet node worker-7: [01] verdicts? sent, 0 received, 0 store outages", totals
    ), serve.output


def test_a_fleet_link_that_refuses_its_arguments_exits_2_without_the_password(
    scenario: Path, tmp_path: Path
) -> None:
    prelude = (
        "import types\n"
        "def RedisFleet(url, node=None, quorum=1):\n"
        "    raise ValueError(f'cannot use {url}')\n"
        "stand_in = types.ModuleType('ciris_actors.fleet._redis')\n"
        "stand_in.RedisFleet = RedisFleet\n"
        "sys.modules['ciris_actors.fleet._redis'] = stand_in"
    )
    url = "redis://u:s3cret@127.0.0.1:6390/0"
    with Serve(str(scenario), "--port", "0", "--fleet", url, prelude=prelude) as serve:
        returncode = serve.process.wait(timeout=DEADLINE)
        assert serve.process.stderr is not None
        stderr = serve.process.stderr.read()
    assert returncode == 2
    assert stderr == (
        "ciris-actors serve: error: --fleet redis://u:***@127.0.0.1:6390/0:"
        " cannot use redis://u:***@127.0.0.1:6390/0\n"
    )


def test_a_port_in_use_exits_1(scenario: Path, token_file: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(str(scenario), "--port", str(port), "--token-file", str(token_file))
    assert result.returncode == 1
    assert_one_error_line(result, f"could not bind 127.0.0.1:{port}: ")


def test_a_provider_failure_the_restart_policy_escalates_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "escalate.toml"
    path.write_text(
        SCENARIO.replace(
            "[registry]",
            "[registry.restart_policy]\nmax_restarts = 0\nescalate = true\n\n[registry]",
        ),
        encoding="utf-8",
    )
    result = run_serve(str(path), "--port", "0")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr == (
        "ciris-actors serve: error: provider 'secondary' exceeded its restart intensity"
        " (0 restarts within 5s); last error: SimulatedError: secondary: simulated crash\n"
    )
    last = unwrapped(result.stdout.splitlines())[-1]
    assert re.match(r"stopped after 0:0\d: [\d,]+ requests?: .*, 1 crash, cycle 1;", last), last


def test_without_the_control_extra_says_how_to_get_it(scenario: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['hypercorn'] = None\n"
            "from ciris_actors.cli import main\n"
            f"sys.exit(main(['serve', {str(scenario)!r}]))",
        ],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "ciris-actors serve: error: serve needs the control extra:"
        " pip install 'ciris-actors[control]'\n"
    )


def test_list_shows_the_bundled_scenarios() -> None:
    result = run_serve("--list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Bundled scenarios (ciris-actors serve NAME,")
    assert "primary-outage" in result.stdout


# -- the live engine, on virtual time -----------------------------------------------------


def quick_scenario() -> Scenario:
    return parse_scenario(
        {
            "name": "quick",
            "seed": 3,
            "registry": {
                "health_check_interval": 0.5,
                "breaker": {
                    "failure_threshold": 2,
                    "recovery_timeout": 0.5,
                    "success_threshold": 1,
                    "timeout_duration": 2.0,
                },
            },
            "providers": [
                {"name": "primary", "priority": "CRITICAL", "latency": 0.02},
                {"name": "secondary", "latency": 0.02},
            ],
            "workload": {"duration": 3.0, "rate": 40.0, "arrival": "uniform"},
            "faults": [
                {"kind": "outage", "provider": "primary", "at": 0.6, "duration": 1.0},
                {"kind": "crash", "provider": "secondary", "at": 2.0, "duration": 0.5},
                {"kind": "outage", "provider": "secondary", "at": 2.8, "duration": 5.0},
                {"kind": "errors", "provider": "secondary", "at": 4.0, "duration": 1.0},
            ],
        }
    )


async def test_the_fault_schedule_and_the_crashes_repeat_every_cycle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    received: list[tuple[float, Notice]] = []

    def notify(notice: Notice) -> None:
        received.append((trio.current_time(), notice))

    async with run_live(quick_scenario(), notify=notify) as live:
        await trio.sleep(7.5)  # two cycles and a half
        assert live.cycle == 3
        assert live.scenario_time() == pytest.approx(1.5)
        assert live.elapsed() == pytest.approx(7.5)
    notices = [(when - live.started, notice) for when, notice in received]
    schedule = [
        (round(t, 6), n.index, n.began, n.cycle) for t, n in notices if isinstance(n, FaultNotice)
    ]
    # Fault 2 outlasts the cycle: it ends with it. Fault 3 starts after the scenario
    # ends, so it never happens.
    one_cycle = [(0.6, 0, True), (1.6, 0, False), (2.0, 1, True), (2.5, 1, False),
                 (2.8, 2, True), (3.0, 2, False)]  # fmt: skip
    expected = [
        (round(t + 3.0 * cycle, 6), index, began, cycle + 1)
        for cycle in range(3)
        for t, index, began in one_cycle
        if t + 3.0 * cycle <= 7.5
    ]
    assert schedule == expected
    cycles = [(round(t, 6), n.cycle) for t, n in notices if isinstance(n, CycleNotice)]
    assert cycles == [(3.0, 2), (6.0, 3)]
    crashes = [round(t, 6) for t, n in notices if isinstance(n, ActorCrashed)]
    assert crashes == [2.0, 5.0]
    assert live.crashes == 2
    opened = [
        n.name
        for _, n in notices
        if isinstance(n, BreakerTransition) and n.new is CircuitState.OPEN
    ]
    assert "primary" in opened
    assert live.breaker_opens == len(opened)


async def test_every_arrival_is_counted_once(autojump_clock: trio.testing.MockClock) -> None:
    async with run_live(quick_scenario()) as live:
        await trio.sleep(3.51)
        in_flight = live.in_flight
    # Uniform arrivals at 40/s from t = 0: 120 a cycle, then 21 in the second cycle's
    # first half second.
    assert live.arrivals == 141
    assert live.traffic.total + in_flight == live.arrivals
    assert live.in_flight == 0  # cancelled at exit, and not counted as finished
    outcomes = live.traffic.outcomes
    assert outcomes["succeeded"] == sum(live.traffic.served.values())
    assert set(live.traffic.served) == {"primary", "secondary"}


async def test_a_summary_line_every_interval(
    autojump_clock: trio.testing.MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    async with run_live(quick_scenario()) as live, trio.open_nursery() as nursery:
        nursery.start_soon(_summaries, live, 1.0)
        await trio.sleep(2.5)
        nursery.cancel_scope.cancel()
    lines = unwrapped(capsys.readouterr().out.splitlines())
    assert len(lines) == 2
    for line in lines:
        match = re.fullmatch(
            r"\d\d:\d\d:\d\d  traffic, last 1 s: (\d+) requests?: (\d+) ok, \d+ failed,"
            r" \d+ rejected, \d+ shed; (served by .*|none served); \d+ in flight",
            line,
        )
        assert match, line
        assert 30 <= int(match.group(1)) <= 50


def test_a_stop_before_any_request_finished_says_so_plainly(tmp_path: Path) -> None:
    # Providers that take a minute to answer: stopped after the banner, nothing has
    # finished and the requests sent so far are cut short; the last line says so in words.
    path = tmp_path / "slow.toml"
    no_faults = SCENARIO[: SCENARIO.index("[[faults]]")]
    path.write_text(
        no_faults.replace("latency = 0.02", "latency = 60.0").replace(
            "timeout_duration = 2.0", "timeout_duration = 120.0"
        ),
        encoding="utf-8",
    )
    with Serve(str(path), "--port", "0") as serve:
        banner(serve)
        serve.expect(r"traffic, last 10 s: ", timeout=DEADLINE)
        returncode, _ = serve.stop(signal.SIGTERM)
    assert returncode == 0  # SIGTERM is an orderly stop, not an interruption
    final = serve.statements[-1]
    assert re.match(
        r"stopped after \d+:\d\d \(SIGTERM\): no request had finished yet; .*;"
        r" [1-9][\d,]* requests still waiting for an answer were cancelled$",
        final,
    ), final


async def test_live_a_revoked_key_disables_until_its_end_and_long_requests_are_rerouted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The live engine classifies as a simulation does: the primary's 401s disable it
    until the operator's reset at the fault's end, and the secondary's overflows send
    long requests on to the long-context provider."""
    scenario = parse_scenario(
        {
            "name": "live-classes",
            "seed": 3,
            "registry": {"health_check_interval": 0.5},
            "providers": [
                {"name": "primary", "priority": "CRITICAL", "latency": 0.02},
                {"name": "secondary", "latency": 0.02},
                {"name": "long", "group": 1, "capabilities": ["long_context"], "latency": 0.02},
            ],
            "workload": {"duration": 3.0, "rate": 40.0, "arrival": "uniform", "long_share": 0.5},
            "faults": [
                {"kind": "bad_credentials", "provider": "primary", "at": 0.6, "duration": 1.0},
                {"kind": "context_overflow", "provider": "secondary", "at": 0.0, "duration": 3.0},
            ],
        }
    )
    async with run_live(scenario) as live:
        await trio.sleep(1.0)
        assert live.registry.view("primary").disabled is not None
        await trio.sleep(0.7)  # past the fault's end, at 1.6
        assert live.registry.view("primary").disabled is None
        secondary = live.registry.view("secondary").outcomes
        assert secondary["rerouted"] > 0
        assert secondary["failure"] == 0
        assert live.traffic.served["long"] > 0
        assert live.traffic.outcomes["failed"] == 0
