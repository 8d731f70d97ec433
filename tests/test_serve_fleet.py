"""Two ``ciris-actors serve`` processes on one machine share one view of their providers
through a real ``redis-server`` with a password, and each goes on alone while it is gone.

As in ``test_serve.py``, the commands run as a user runs them, in subprocesses, and their
output lines are the synchronisation points: a test waits for the line saying something
happened, never for a fixed time.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .redis_server import RedisServer
from .test_serve import DEADLINE, TOKEN, Serve, banner

#: Two providers and steady traffic, no faults: the only verdicts are the test's own.
SCENARIO = """\
name = "fleet-pair"
seed = 5

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
latency = 0.01

[[providers]]
name = "secondary"
latency = 0.01

[workload]
duration = 600.0
rate = 20.0
"""

HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "fleet-pair.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token.txt"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    return path


@pytest.fixture
def pair(
    scenario: Path, token_file: Path, redis_password_server: RedisServer
) -> Iterator[tuple[Serve, Serve]]:
    """Node ``a`` and node ``b``, both serving *scenario* against the Redis server."""
    common = [str(scenario), "--port", "0", "--token-file", str(token_file)]
    common += ["--fleet", redis_password_server.url]
    with Serve(*common, "--fleet-node", "a") as a, Serve(*common, "--fleet-node", "b") as b:
        yield a, b


def fleet_of(url: str) -> dict[str, object]:
    response = httpx.get(f"{url}/v1/runtime/fleet", headers=HEADERS, timeout=DEADLINE)
    assert response.status_code == 200, response.text
    fleet = response.json()["fleet"]
    assert isinstance(fleet, dict)
    return fleet


def metric(url: str, line: str) -> float:
    """The value of the sample *line* names (``name{labels}``) in *url*'s metrics."""
    response = httpx.get(f"{url}/metrics", headers=HEADERS, timeout=DEADLINE)
    assert response.status_code == 200, response.text
    match = re.search(rf"^{re.escape(line)} (\S+)$", response.text, re.MULTILINE)
    assert match, response.text
    return float(match.group(1))


def breaker_state(url: str, name: str) -> str:
    response = httpx.get(f"{url}/v1/runtime/services", headers=HEADERS, timeout=DEADLINE)
    assert response.status_code == 200, response.text
    state: str = response.json()["circuit_breaker_stats"][name]["state"]
    return state


def test_two_serve_processes_share_one_view_through_redis(
    pair: tuple[Serve, Serve], redis_password_server: RedisServer
) -> None:
    a, b = pair
    shown = f"redis://:***@127.0.0.1:{redis_password_server.port}/0"
    url_a = banner(a)["control plane"]
    fields_b = banner(b)
    url_b = fields_b["control plane"]
    assert fields_b["fleet"] == f"node b on {shown}, quorum 1; the store answers"
    assert fleet_of(url_a)["node"] == "a"
    assert (fleet_of(url_b)["node"], fleet_of(url_b)["reachable"]) == ("b", True)

    # A change on node a's control plane reaches node b: its breaker opens, and b says so.
    forced = httpx.post(
        f"{url_a}/v1/runtime/services/secondary/circuit-breaker/force-open",
        headers=HEADERS,
        json={"duration": 60},
        timeout=DEADLINE,
    )
    assert forced.status_code == 200, forced.text
    b.expect(r"fleet: forced on secondary from node a \(pushed in [\d.]+ ms\)$")
    b.expect(r"breaker secondary: \w+ -> open \(fleet: forced from node a")
    assert breaker_state(url_b, "secondary") == "open"
    assert fleet_of(url_b)["verdicts_received"] == 1
    assert metric(url_b, 'ciris_fleet_verdicts_received_total{node="b"}') == 1.0
    assert metric(url_b, 'ciris_fleet_propagation_lag_seconds_count{node="b"}') == 1.0
    assert metric(url_a, 'ciris_fleet_verdicts_sent_total{node="a"}') >= 1.0

    # Redis gone: both go on alone, and say so; back: both rejoin.
    redis_password_server.stop()
    for node in (a, b):
        node.expect(r"fleet: the store is lost \(")
    assert fleet_of(url_b)["degraded"] is True
    assert metric(url_b, 'ciris_fleet_degraded{node="b"}') == 1.0
    assert breaker_state(url_b, "secondary") == "open"  # what it knew, it keeps
    redis_password_server.start()
    for node in (a, b):
        node.expect(r"fleet: the store is back after [\d.]+ s; ")
    assert metric(url_b, 'ciris_fleet_degraded{node="b"}') == 0.0
    assert metric(url_b, 'ciris_fleet_outages_total{node="b"}') == 1.0

    for node, name in ((a, "a"), (b, "b")):
        returncode, stderr = node.stop(signal.SIGTERM)
        assert returncode == 0, stderr
        assert "Traceback" not in stderr
        assert "secret" not in node.output + stderr  # the fixture's password
        assert re.fullmatch(
            rf"fleet node {name}: \d+ verdicts? sent, \d+ received, 1 store outage",
            node.statements[-2],
        ), node.output
