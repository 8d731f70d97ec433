"""The HTTP control plane over a real loopback socket, on trio's real clock.

Every test serves a live registry with :func:`serve_control_api` on a free port and talks
to it with ``httpx.AsyncClient``. Nothing sleeps to let things settle: tests wait on
registry events or on responses; ``trio.fail_after`` only guards against hangs.
"""

from __future__ import annotations

import gc
import json
import socket
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, MutableMapping
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import attrs
import h11
import httpx
import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Route

from ciris_actors import (
    ActorRestarted,
    CircuitBreakerConfig,
    HealthChanged,
    Registry,
    RestartPolicy,
    open_registry,
)
from ciris_actors.control import (
    METRIC_NAMES,
    ControlServer,
    RegistryCollector,
    create_app,
    openapi_document,
    serve_control_api,
)
from ciris_actors.control._metrics import metric_table
from ciris_actors.events import FleetDegraded, FleetRestored, FleetVerdict, RegistryEvent
from ciris_actors.fleet import LAG_BUCKETS, FleetLink, MemoryFleet
from ciris_actors.testing import FakeProvider

from .helpers import event_subscriptions, snapshot

TOKEN = "test-token-3f9a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "/v1/runtime/services"
JSON_HEADERS = {"Content-Type": "application/json"}

#: Never half-opens on its own during a test (recovery far beyond any test's length).
BREAKER = CircuitBreakerConfig(
    failure_threshold=3, recovery_timeout=600.0, success_threshold=1, timeout_duration=60.0
)

#: Bound on anything a test waits for; only a hang guard, never an assertion on timing.
HANG_GUARD = 30.0


@attrs.frozen
class Plane:
    """A registry with three providers, served with a token."""

    registry: Registry
    server: ControlServer
    client: httpx.AsyncClient
    providers: dict[str, FakeProvider]


async def register_and_wait_healthy(registry: Registry) -> dict[str, FakeProvider]:
    """Register primary (H/llm, HIGH), backup (H/llm, LOW) and archive (global memory),
    and return once each has passed its first health check."""
    providers = {name: FakeProvider(name) for name in ("primary", "backup", "archive")}
    async with registry.events() as events:
        registry.register("H", "llm", providers["primary"], "HIGH", ["chat"], name="primary")
        registry.register("H", "llm", providers["backup"], "LOW", ["chat", "vision"], name="backup")
        registry.register_service("memory", providers["archive"], name="archive")
        pending = set(providers)
        async for event in events:
            if isinstance(event, HealthChanged) and event.healthy:
                pending.discard(event.name or "")
                if not pending:
                    break
    assert await registry.wait_ready(HANG_GUARD, service_types=("llm", "memory"))
    return providers


@asynccontextmanager
async def control_plane(
    token: str | None = TOKEN, *, fleet: FleetLink | None = None, **serve: Any
) -> AsyncIterator[Plane]:
    with trio.fail_after(HANG_GUARD):
        async with open_registry(
            health_check_interval=None,
            default_breaker=BREAKER,
            restart_policy=RestartPolicy(initial=0.01, jitter=0.0),
            fleet=fleet,
        ) as registry:
            providers = await register_and_wait_healthy(registry)
            async with (
                serve_control_api(registry, "127.0.0.1", 0, token, **serve) as server,
                httpx.AsyncClient(base_url=server.url, timeout=HANG_GUARD) as client,
            ):
                yield Plane(registry, server, client, providers)


@pytest.fixture
async def plane() -> AsyncIterator[Plane]:
    async with control_plane() as value:
        yield value


def assert_error(response: httpx.Response, status: int, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"status", "error", "message"}
    assert body["status"] == status
    assert isinstance(body["error"], str)
    assert body["error"]
    assert fragment in body["message"]


def state_of(registry: Registry, name: str) -> str:
    state: str = registry.get_provider_info()["circuit_breaker_stats"][name]["state"]
    return state


# -- read endpoints ---------------------------------------------------------------------------


async def test_metadata_json_cannot_hold_is_shown_as_text_not_a_500(plane: Plane) -> None:
    # Metadata is typed as str keys; a caller not type-checking can still pass others.
    odd = cast(Any, {(1, 2): "tuple key", "when": float("nan"), "obj": object()})
    plane.registry.register("H", "llm", FakeProvider("odd"), name="odd", metadata=odd)
    response = await plane.client.get(BASE, headers=AUTH, params={"service_type": "llm"})
    assert response.status_code == 200, response.text
    (listed,) = [p for p in response.json()["handlers"]["H"]["llm"] if p["name"] == "odd"]
    assert listed["metadata"]["(1, 2)"] == "tuple key"
    assert listed["metadata"]["when"] == "nan"
    assert listed["metadata"]["obj"].startswith("<object object")


async def test_services_lists_what_get_provider_info_returns(plane: Plane) -> None:
    response = await plane.client.get(BASE, headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == plane.registry.get_provider_info()
    body = response.json()
    assert [p["name"] for p in body["handlers"]["H"]["llm"]] == ["primary", "backup"]
    assert [p["name"] for p in body["global_services"]["memory"]] == ["archive"]

    filtered = await plane.client.get(BASE, params={"service_type": "memory"}, headers=AUTH)
    assert filtered.json() == plane.registry.get_provider_info(service_type="memory")
    assert set(filtered.json()["circuit_breaker_stats"]) == {"archive"}
    other = await plane.client.get(BASE, params={"handler": "Other"}, headers=AUTH)
    assert other.json()["handlers"] == {}
    assert set(other.json()["circuit_breaker_stats"]) == {"archive"}


async def test_health_returns_health_status(plane: Plane) -> None:
    response = await plane.client.get(f"{BASE}/health", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == plane.registry.health_status()
    assert response.json()["overall_health"] == "healthy"

    plane.registry.force_open("archive")
    degraded = await plane.client.get(f"{BASE}/health", headers=AUTH)
    assert degraded.json()["overall_health"] == "critical"  # memory has nothing available
    assert degraded.json() == plane.registry.health_status()


async def test_selection_explains_the_live_walk(plane: Plane) -> None:
    url = f"{BASE}/selection"
    response = await plane.client.get(
        url, params={"handler": "H", "service_type": "llm"}, headers=AUTH
    )
    assert response.status_code == 200
    body = response.json()
    assert body["chosen"] == "primary"
    assert [c["name"] for c in body["candidates"]] == ["primary", "backup"]
    assert body == {
        **plane.registry.explain("H", "llm").as_dict(),
        "table": str(plane.registry.explain("H", "llm")),
    }

    for params in (
        {"handler": "H", "service_type": "llm", "capabilities": "chat,vision"},
        {"handler": "H", "service_type": "llm", "capabilities": ["chat", "vision"]},
    ):
        vision = await plane.client.get(url, params=params, headers=AUTH)
        assert vision.json()["chosen"] == "backup"
        assert vision.json()["required_capabilities"] == ["chat", "vision"]

    via_global = await plane.client.get(
        url, params={"handler": "Other", "service_type": "memory"}, headers=AUTH
    )
    assert via_global.json()["chosen"] == "archive"
    local_only = await plane.client.get(
        url, params={"handler": "Other", "service_type": "memory", "global": "false"}, headers=AUTH
    )
    assert local_only.json()["chosen"] is None
    assert local_only.json()["candidates"] == []


async def test_openapi_document_lists_exactly_the_apps_routes_and_methods(plane: Plane) -> None:
    response = await plane.client.get("/openapi.json", headers=AUTH)
    assert response.status_code == 200
    document = response.json()
    assert document == openapi_document()

    served: set[tuple[str, str]] = set()
    for route in plane.server.app.routes:
        assert isinstance(route, Route)
        assert route.methods is not None
        path = route.path.replace("{name:path}", "{name}")
        served |= {(path, method.lower()) for method in route.methods if method != "HEAD"}
    documented = {
        (path, method) for path, operations in document["paths"].items() for method in operations
    }
    assert served == documented
    assert len(served) == 10


# -- mutations that work ----------------------------------------------------------------------


async def test_a_provider_name_with_a_slash_is_addressable(plane: Plane) -> None:
    plane.registry.register("H", "llm", FakeProvider("team/a"), name="team/a")
    for path in ("team%2Fa", "team/a"):
        response = await plane.client.put(
            f"{BASE}/{path}/priority", headers=AUTH, json={"priority_group": 7}
        )
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "team/a"
    assert describe(plane.registry.get_provider_info(), "team/a")["priority_group"] == 7


async def test_a_providers_weight_and_cap_are_read_and_changed_over_http(plane: Plane) -> None:
    registry = plane.registry
    response = await plane.client.put(
        f"{BASE}/primary/priority", json={"weight": 2.5, "max_in_flight": 1}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["weight"], body["max_in_flight"], body["in_flight"]) == (2.5, 1, 0)
    ticket = registry.admit("H", "llm")
    assert ticket is not None
    assert ticket.name == "primary"
    assert registry.get_service_nowait("H", "llm") is not plane.providers["primary"]  # capped
    lifted = await plane.client.put(
        f"{BASE}/primary/priority", json={"max_in_flight": None}, headers=AUTH
    )
    assert lifted.json()["max_in_flight"] is None
    assert lifted.json()["in_flight"] == 1
    assert lifted.json()["weight"] == 2.5  # left out, so kept
    assert registry.get_service_nowait("H", "llm") is plane.providers["primary"]
    registry.settle(ticket, "success")


async def test_priority_update_changes_which_provider_a_resolve_returns(plane: Plane) -> None:
    registry, providers = plane.registry, plane.providers
    assert registry.get_service_nowait("H", "llm") is providers["primary"]

    response = await plane.client.put(
        f"{BASE}/backup/priority", json={"priority": "CRITICAL"}, headers=AUTH
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["priority"]) == ("backup", "CRITICAL")
    assert body["circuit_breaker"]["state"] == "closed"
    assert registry.get_service_nowait("H", "llm") is providers["backup"]

    # Groups beat priorities: moving backup to a later group hands primary back.
    moved = await plane.client.put(
        f"{BASE}/backup/priority",
        json={"priority_group": 1, "strategy": "round_robin"},
        headers=AUTH,
    )
    assert moved.status_code == 200
    assert (moved.json()["priority_group"], moved.json()["strategy"]) == (1, "round_robin")
    assert moved.json()["priority"] == "CRITICAL"  # left out, so kept
    assert registry.get_service_nowait("H", "llm") is providers["primary"]
    (backup,) = [
        p for p in registry.get_provider_info()["handlers"]["H"]["llm"] if p["name"] == "backup"
    ]
    assert (backup["priority"], backup["priority_group"], backup["strategy"]) == (
        "CRITICAL",
        1,
        "round_robin",
    )


async def test_force_open_opens_the_breaker_and_reset_by_name_undoes_it(plane: Plane) -> None:
    registry, providers = plane.registry, plane.providers
    response = await plane.client.post(
        f"{BASE}/primary/circuit-breaker/force-open", json={"duration": 300}, headers=AUTH
    )
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "primary"
    assert body["circuit_breaker_state"] == "open"
    assert body["circuit_breaker"]["forced_open"] is True
    stats = body["circuit_breaker"]
    assert stats["next_attempt_time"] - stats["opened_at"] == pytest.approx(300)
    assert body["available"] is False
    assert state_of(registry, "primary") == "open"
    assert registry.get_service_nowait("H", "llm") is providers["backup"]

    reset = await plane.client.post(
        f"{BASE}/circuit-breakers/reset", json={"name": "primary"}, headers=AUTH
    )
    assert reset.status_code == 200
    assert reset.json() == {"reset": 1, "names": ["primary"]}
    assert state_of(registry, "primary") == "closed"
    assert registry.get_service_nowait("H", "llm") is providers["primary"]


async def test_force_open_without_a_body_uses_the_recovery_timeout(plane: Plane) -> None:
    response = await plane.client.post(f"{BASE}/backup/circuit-breaker/force-open", headers=AUTH)
    assert response.status_code == 200
    stats = response.json()["circuit_breaker"]
    assert stats["state"] == "open"
    held = stats["next_attempt_time"] - stats["opened_at"]
    assert held == pytest.approx(BREAKER.recovery_timeout)
    assert state_of(plane.registry, "backup") == "open"


async def test_reset_all_or_by_service_type_closes_those_breakers(plane: Plane) -> None:
    registry = plane.registry
    for name in ("primary", "backup", "archive"):
        registry.force_open(name)

    by_type = await plane.client.post(
        f"{BASE}/circuit-breakers/reset", json={"service_type": "llm"}, headers=AUTH
    )
    assert by_type.status_code == 200
    assert by_type.json() == {"reset": 2, "names": ["backup", "primary"]}
    assert [state_of(registry, n) for n in ("primary", "backup", "archive")] == [
        "closed",
        "closed",
        "open",
    ]

    everything = await plane.client.post(f"{BASE}/circuit-breakers/reset", headers=AUTH)
    assert everything.json() == {"reset": 3, "names": ["archive", "backup", "primary"]}
    assert state_of(registry, "archive") == "closed"


# -- 401 --------------------------------------------------------------------------------------

BAD_AUTH: dict[str, dict[str, str]] = {
    "missing": {},
    "wrong token": {"Authorization": "Bearer not-the-token"},
    "wrong scheme": {"Authorization": f"Basic {TOKEN}"},
    "scheme only": {"Authorization": "Bearer"},
    "token only": {"Authorization": TOKEN},
    "token prefix": {"Authorization": f"Bearer {TOKEN[:-1]}"},
}

MUTATIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("PUT", f"{BASE}/primary/priority", {"json": {"priority": "LOW"}}),
    ("POST", f"{BASE}/primary/circuit-breaker/force-open", {}),
    ("POST", f"{BASE}/circuit-breakers/reset", {}),
    ("POST", f"{BASE}/circuit-breakers/reset", {"json": {"name": "backup"}}),
]

READS = [
    BASE,
    f"{BASE}/health",
    f"{BASE}/selection?handler=H&service_type=llm",
    "/v1/runtime/events",
    "/metrics",
    "/openapi.json",
]


@pytest.mark.parametrize("auth", BAD_AUTH.values(), ids=BAD_AUTH.keys())
async def test_a_mutation_without_the_right_token_is_refused_and_changes_nothing(
    plane: Plane, auth: dict[str, str]
) -> None:
    plane.registry.force_open("backup")  # so a reset would show
    before = snapshot(plane.registry)
    for method, url, kwargs in MUTATIONS:
        response = await plane.client.request(method, url, headers=auth, **kwargs)
        assert_error(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert snapshot(plane.registry) == before
    # The same requests with the token do change it (so the comparison above can fail).
    for method, url, kwargs in MUTATIONS:
        response = await plane.client.request(method, url, headers=AUTH, **kwargs)
        assert response.status_code == 200, response.text
    assert snapshot(plane.registry) != before


@pytest.mark.parametrize("auth", BAD_AUTH.values(), ids=BAD_AUTH.keys())
async def test_a_read_without_the_right_token_is_refused(
    plane: Plane, auth: dict[str, str]
) -> None:
    for url in READS:
        response = await plane.client.get(url, headers=auth)
        assert_error(response, 401)
        assert response.headers["www-authenticate"] == 'Bearer realm="ciris_actors"'


async def test_the_bearer_scheme_is_case_insensitive(plane: Plane) -> None:
    response = await plane.client.get(BASE, headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200


async def test_a_tokenless_server_answers_loopback_reads_and_refuses_every_change() -> None:
    async with control_plane(token=None) as plane:
        assert plane.server.token_required is False
        for url in READS[:3] + READS[4:]:
            response = await plane.client.get(url)
            assert response.status_code == 200, (url, response.text)
        assert (await plane.client.get(BASE)).json() == plane.registry.get_provider_info()

        before = snapshot(plane.registry)
        auths: list[dict[str, str]] = [{}, AUTH, {"Authorization": "Bearer anything"}]
        for auth in auths:
            for method, url, kwargs in MUTATIONS:
                response = await plane.client.request(method, url, headers=auth, **kwargs)
                assert_error(response, 403, "no token configured")
                assert "www-authenticate" not in response.headers  # no credential helps
        assert snapshot(plane.registry) == before


async def test_a_tokenless_app_refuses_reads_from_a_non_loopback_client() -> None:
    # A real socket cannot come from off loopback here, so the app is called directly
    # with the client address a remote peer would have.
    async with open_registry(health_check_interval=None) as registry:
        registry.register("H", "llm", FakeProvider("a"), name="a")
        app = create_app(registry)
        try:
            for client_host, status in (("192.0.2.7", 403), ("127.0.0.1", 200), ("::1", 200)):
                transport = httpx.ASGITransport(app=app, client=(client_host, 40000))
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://127.0.0.1:8080"
                ) as c:
                    response = await c.get(BASE)
                assert response.status_code == status, (client_host, response.text)
                if status == 403:
                    assert_error(response, 403, "only loopback clients")
        finally:
            app.state.close()


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("attacker.example", 403),
        ("attacker.example:8080", 403),
        ("10.0.0.1", 403),
        ("", 403),
        ("localhost:8080", 200),
        ("127.0.0.1", 200),
        ("[::1]:8080", 200),
    ],
)
async def test_a_tokenless_app_answers_only_requests_to_a_loopback_host_name(
    host: str, status: int
) -> None:
    # DNS rebinding: a web page whose name now points at 127.0.0.1 reaches the server
    # from a loopback client, but its browser still sends the page's own Host header.
    async with open_registry(health_check_interval=None) as registry:
        registry.register("H", "llm", FakeProvider("a"), name="a")
        app = create_app(registry)
        try:
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
                response = await client.get(BASE, headers={"Host": host})
            assert response.status_code == status, response.text
            if status == 403:
                assert_error(response, 403, "loopback host name")
        finally:
            app.state.close()


# -- 404 and 405 ------------------------------------------------------------------------------


async def test_an_unknown_provider_is_404_and_changes_nothing(plane: Plane) -> None:
    before = snapshot(plane.registry)
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("PUT", f"{BASE}/ghost/priority", {"json": {"priority": "LOW"}}),
        ("PUT", f"{BASE}/ghost/priority", {}),
        ("POST", f"{BASE}/ghost/circuit-breaker/force-open", {"json": {"duration": 5}}),
        ("POST", f"{BASE}/circuit-breakers/reset", {"json": {"name": "ghost"}}),
    ]
    for method, url, kwargs in requests:
        response = await plane.client.request(method, url, headers=AUTH, **kwargs)
        assert_error(response, 404, "ghost")
    assert snapshot(plane.registry) == before


async def test_an_unknown_route_is_a_json_404(plane: Plane) -> None:
    for url in ("/nope", "/v1/runtime", f"{BASE}/primary"):
        response = await plane.client.get(url, headers=AUTH)
        assert_error(response, 404, url)


async def test_a_wrong_method_is_a_json_405_naming_the_allowed_ones(plane: Plane) -> None:
    before = snapshot(plane.registry)
    for method, url, allowed in [
        ("DELETE", f"{BASE}/health", "GET"),
        ("POST", BASE, "GET"),
        ("GET", f"{BASE}/primary/priority", "PUT"),
        ("GET", f"{BASE}/circuit-breakers/reset", "POST"),
    ]:
        response = await plane.client.request(method, url, headers=AUTH)
        assert_error(response, 405, method)
        assert allowed in response.headers["allow"]
    assert snapshot(plane.registry) == before


# -- 422 --------------------------------------------------------------------------------------

PRIORITY = f"{BASE}/primary/priority"
FORCE_OPEN = f"{BASE}/primary/circuit-breaker/force-open"
RESET = f"{BASE}/circuit-breakers/reset"

BAD_MUTATIONS: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "bad priority": ("PUT", PRIORITY, {"json": {"priority": "URGENT"}}, "unknown priority"),
    "priority number": ("PUT", PRIORITY, {"json": {"priority": 99}}, "not a priority"),
    "negative group": ("PUT", PRIORITY, {"json": {"priority_group": -1}}, ">= 0"),
    "fractional group": ("PUT", PRIORITY, {"json": {"priority_group": 1.5}}, "int"),
    "bad strategy": ("PUT", PRIORITY, {"json": {"strategy": "random"}}, "unknown strategy"),
    "unknown field": ("PUT", PRIORITY, {"json": {"heft": 3}}, "unknown field"),
    "zero weight": ("PUT", PRIORITY, {"json": {"weight": 0}}, "weight: must be > 0"),
    "null weight": ("PUT", PRIORITY, {"json": {"weight": None}}, "weight: must not be null"),
    "zero cap": ("PUT", PRIORITY, {"json": {"max_in_flight": 0}}, "max_in_flight: must be >= 1"),
    "fractional cap": ("PUT", PRIORITY, {"json": {"max_in_flight": 2.5}}, "max_in_flight"),
    "unknown query": (
        "PUT",
        PRIORITY,
        {"json": {"priority": "LOW"}, "params": {"force": "1"}},
        "unknown query parameter",
    ),
    "array body": ("PUT", PRIORITY, {"content": b"[1, 2]"}, "must be a JSON object"),
    "string body": ("PUT", PRIORITY, {"content": b'"LOW"'}, "must be a JSON object"),
    "invalid json": ("PUT", PRIORITY, {"content": b'{"priority": '}, "not valid JSON"),
    "not utf-8": ("PUT", PRIORITY, {"content": b"\xff\xfe{"}, "not valid JSON"),
    "null value": ("PUT", PRIORITY, {"json": {"priority": None}}, "must not be null"),
    "one valid one invalid": (
        "PUT",
        PRIORITY,
        {"json": {"priority": "LOW", "priority_group": -1}},
        "priority_group",
    ),
    "valid then null": (
        "PUT",
        PRIORITY,
        {"json": {"priority": "LOW", "strategy": None}},
        "must not be null",
    ),
    "negative duration": ("POST", FORCE_OPEN, {"json": {"duration": -1}}, "duration"),
    "zero duration": ("POST", FORCE_OPEN, {"json": {"duration": 0}}, "duration"),
    "string duration": ("POST", FORCE_OPEN, {"json": {"duration": "soon"}}, "duration"),
    "NaN duration": ("POST", FORCE_OPEN, {"content": b'{"duration": NaN}'}, "duration"),
    "infinite duration": ("POST", FORCE_OPEN, {"content": b'{"duration": 1e999}'}, "duration"),
    "huge integer duration": (
        "POST",
        FORCE_OPEN,
        {"content": b'{"duration": 1' + b"0" * 400 + b"}"},
        "duration",
    ),
    "unknown force-open field": ("POST", FORCE_OPEN, {"json": {"for": 5}}, "unknown field"),
    "name and service_type": (
        "POST",
        RESET,
        {"json": {"name": "primary", "service_type": "llm"}},
        "not both",
    ),
    "empty name": ("POST", RESET, {"json": {"name": ""}}, "non-empty string"),
    "numeric name": ("POST", RESET, {"json": {"name": 5}}, "non-empty string"),
    "reset query": ("POST", RESET, {"params": {"all": "1"}}, "unknown query parameter"),
    "null name": ("POST", RESET, {"json": {"name": None}}, "must not be null"),
    "null service_type": ("POST", RESET, {"json": {"service_type": None}}, "must not be null"),
    "empty priority body": ("PUT", PRIORITY, {"content": b""}, "nothing to change"),
    "empty priority object": ("PUT", PRIORITY, {"json": {}}, "nothing to change"),
}


@pytest.mark.parametrize("case", BAD_MUTATIONS.values(), ids=BAD_MUTATIONS.keys())
async def test_a_bad_mutation_is_422_and_changes_nothing(
    plane: Plane, case: tuple[str, str, dict[str, Any], str]
) -> None:
    method, url, kwargs, fragment = case
    plane.registry.force_open("backup")  # so a reset would show
    before = snapshot(plane.registry)
    headers = {**AUTH, **JSON_HEADERS}
    response = await plane.client.request(method, url, headers=headers, **kwargs)
    assert_error(response, 422, fragment)
    assert snapshot(plane.registry) == before


BAD_READS: dict[str, tuple[str, str]] = {
    "services query": (f"{BASE}?name=primary", "unknown query parameter"),
    "health query": (f"{BASE}/health?verbose=1", "unknown query parameter"),
    "selection without params": (f"{BASE}/selection", "missing"),
    "selection without service_type": (f"{BASE}/selection?handler=H", "service_type"),
    "selection empty handler": (f"{BASE}/selection?handler=&service_type=llm", "handler"),
    "selection bad global": (
        f"{BASE}/selection?handler=H&service_type=llm&global=maybe",
        "true or false",
    ),
    "selection unknown param": (
        f"{BASE}/selection?handler=H&service_type=llm&limit=1",
        "unknown query parameter",
    ),
    "events unknown type": ("/v1/runtime/events?types=Nope", "unknown event type"),
    "events zero buffer": ("/v1/runtime/events?max_buffer=0", "max_buffer"),
    "events text buffer": ("/v1/runtime/events?max_buffer=lots", "max_buffer"),
    "events unknown param": ("/v1/runtime/events?since=3", "unknown query parameter"),
    "metrics query": ("/metrics?name=x", "unknown query parameter"),
    "openapi query": ("/openapi.json?v=2", "unknown query parameter"),
}


@pytest.mark.parametrize("case", BAD_READS.values(), ids=BAD_READS.keys())
async def test_a_bad_read_is_422(plane: Plane, case: tuple[str, str]) -> None:
    url, fragment = case
    response = await plane.client.get(url, headers=AUTH)
    assert_error(response, 422, fragment)


# -- 413 --------------------------------------------------------------------------------------


async def test_a_declared_oversized_body_is_413_and_changes_nothing() -> None:
    async with control_plane(max_body_bytes=64) as plane:
        before = snapshot(plane.registry)
        body = json.dumps({"priority": "LOW", "strategy": "fallback" + " " * 100}).encode()
        assert len(body) > 64
        response = await plane.client.put(PRIORITY, content=body, headers={**AUTH, **JSON_HEADERS})
        assert_error(response, 413, "64 bytes")
        assert response.headers["connection"] == "close"  # the rest was never read
        assert snapshot(plane.registry) == before
        # Just under the limit is fine.
        small = await plane.client.put(PRIORITY, json={"priority": "LOW"}, headers=AUTH)
        assert small.status_code == 200
        assert small.json()["priority"] == "LOW"


async def test_a_streamed_oversized_body_is_413_and_changes_nothing() -> None:
    async with control_plane(max_body_bytes=64) as plane:
        before = snapshot(plane.registry)

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"priority": "LOW", "strategy": "fallback'
            for _ in range(10):
                yield b" " * 16
            yield b'"}'

        response = await plane.client.put(
            PRIORITY, content=chunks(), headers={**AUTH, **JSON_HEADERS}
        )
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert_error(response, 413, "64 bytes")
        assert response.headers["connection"] == "close"
        assert snapshot(plane.registry) == before


async def test_an_oversized_body_is_413_by_default_too(plane: Plane) -> None:
    before = snapshot(plane.registry)
    response = await plane.client.post(
        RESET, content=b"{" + b" " * 20_000 + b"}", headers={**AUTH, **JSON_HEADERS}
    )
    assert_error(response, 413)
    assert snapshot(plane.registry) == before


async def exchange(
    connection: h11.Connection, stream: trio.SocketStream, *events: h11.Event
) -> h11.Response:
    """Send *events* as the client and return the response, its body read."""
    for event in events:
        data = connection.send(event)
        assert data is not None
        await stream.send_all(data)
    return await receive_response(connection, stream)


async def receive_response(connection: h11.Connection, stream: trio.SocketStream) -> h11.Response:
    """Read the server's next response (its body read too) as the client."""
    response: h11.Response | None = None
    while True:
        received = connection.next_event()
        if received is h11.NEED_DATA:
            connection.receive_data(await stream.receive_some())
        elif isinstance(received, h11.Response):
            response = received
        elif isinstance(received, h11.EndOfMessage):
            assert response is not None
            return response
        elif isinstance(received, h11.ConnectionClosed):
            raise AssertionError("the server closed the connection")


async def test_an_unauthorized_request_is_refused_before_its_body_is_read(plane: Plane) -> None:
    # Only the head is sent, declaring a body that never comes: the refusal must not wait
    # for it (a client trickling a body in must not hold the connection), and must say
    # the connection is closing, since the body it declared was never read.
    request = h11.Request(
        method="PUT",
        target=PRIORITY,
        headers=[
            ("Host", "localhost"),
            ("Content-Type", "application/json"),
            ("Content-Length", "16000"),
        ],
    )
    connection = h11.Connection(h11.CLIENT)
    with trio.fail_after(HANG_GUARD):
        async with await trio.open_tcp_stream("127.0.0.1", plane.server.port) as stream:
            await stream.send_all(connection.send(request) or b"")
            refused = await receive_response(connection, stream)
            assert refused.status_code == 401
            assert (b"connection", b"close") in refused.headers
            assert await stream.receive_some() == b""  # and it is closed
    # A request with the token on a fresh connection is served.
    response = await plane.client.put(PRIORITY, json={"priority": "LOW"}, headers=AUTH)
    assert response.status_code == 200


async def test_a_refused_request_without_a_body_keeps_the_connection(plane: Plane) -> None:
    connection = h11.Connection(h11.CLIENT)
    with trio.fail_after(HANG_GUARD):
        async with await trio.open_tcp_stream("127.0.0.1", plane.server.port) as stream:
            bare = h11.Request(method="GET", target=f"{BASE}/health", headers=[("Host", "x")])
            refused = await exchange(connection, stream, bare, h11.EndOfMessage())
            assert refused.status_code == 401
            assert (b"connection", b"close") not in refused.headers
            connection.start_next_cycle()
            health = h11.Request(
                method="GET",
                target=f"{BASE}/health",
                headers=[("Host", "localhost"), ("Authorization", f"Bearer {TOKEN}")],
            )
            answered = await exchange(connection, stream, health, h11.EndOfMessage())
            assert answered.status_code == 200


# -- events -----------------------------------------------------------------------------------


async def read_frame(lines: AsyncIterator[str]) -> dict[str, str]:
    """The next SSE event frame's fields (comments skipped)."""
    fields: dict[str, str] = {}
    async for line in lines:
        if line == "":
            if fields:
                return fields
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(": ")
        fields[key] = value
    raise AssertionError(f"the stream ended mid-frame: {fields}")


@asynccontextmanager
async def event_stream(
    plane: Plane, params: dict[str, str] | None = None
) -> AsyncIterator[AsyncIterator[str]]:
    """Open the event stream and return its lines once the server has subscribed.

    On exit the app closes its event streams and the rest of the stream is read to its
    end: a response left half-read leaves httpcore's body generator to the garbage
    collector, which trio reports as a ResourceWarning.
    """
    url = "/v1/runtime/events"
    async with plane.client.stream("GET", url, params=params, headers=AUTH) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-store"
        async with aclosing(cast(AsyncGenerator[str, None], r.aiter_lines())) as lines:
            first = await lines.__anext__()
            assert first == ": subscribed to ciris_actors registry events"
            yield lines
            plane.server.app.state.close()
            async for _ in lines:
                pass


async def test_events_deliver_a_breaker_transition_caused_over_http(plane: Plane) -> None:
    with trio.fail_after(HANG_GUARD):
        async with event_stream(plane) as lines:
            response = await plane.client.post(FORCE_OPEN, headers=AUTH)
            assert response.status_code == 200
            frame = await read_frame(lines)
            assert (frame["id"], frame["event"]) == ("1", "BreakerTransition")
            data = json.loads(frame["data"])
            assert data["type"] == "BreakerTransition"
            assert (data["name"], data["old"], data["new"]) == ("primary", "closed", "open")
            assert data["reason"] == "forced open"
            assert isinstance(data["timestamp"], float)

            plane.registry.reset_circuit_breaker("primary")
            frame = await read_frame(lines)
            data = json.loads(frame["data"])
            assert (frame["id"], frame["event"]) == ("2", "BreakerTransition")
            assert (data["name"], data["old"], data["new"]) == ("primary", "open", "closed")


async def test_events_types_filter_skips_other_events(plane: Plane) -> None:
    with trio.fail_after(HANG_GUARD):
        async with event_stream(plane, {"types": "ProviderRegistered,ResolveMiss"}) as lines:
            plane.registry.force_open("backup")  # a BreakerTransition: filtered out
            plane.registry.register("H", "tts", FakeProvider("voice"), name="voice")
            frame = await read_frame(lines)
            assert (frame["id"], frame["event"]) == ("1", "ProviderRegistered")
            data = json.loads(frame["data"])
            assert (data["name"], data["handler"], data["service_type"]) == ("voice", "H", "tts")
            assert plane.registry.get_service_nowait("Nobody", "video") is None
            frame = await read_frame(lines)
            assert (frame["id"], frame["event"]) == ("2", "ResolveMiss")
            assert json.loads(frame["data"])["service_type"] == "video"


async def test_leaving_the_server_block_ends_a_connected_event_stream() -> None:
    ended = trio.Event()
    lines_seen: list[str] = []
    with trio.fail_after(HANG_GUARD):
        async with open_registry(health_check_interval=None) as registry:
            registry.register("H", "llm", FakeProvider("a"), name="a")
            async with trio.open_nursery() as nursery:
                async with serve_control_api(
                    registry, port=0, token=TOKEN, graceful_timeout=60
                ) as server:
                    subscribed = trio.Event()

                    async def listen() -> None:
                        async with (
                            httpx.AsyncClient(base_url=server.url, timeout=None) as client,
                            client.stream("GET", "/v1/runtime/events", headers=AUTH) as r,
                        ):
                            async for line in r.aiter_lines():
                                lines_seen.append(line)
                                subscribed.set()
                        ended.set()

                    nursery.start_soon(listen)
                    await subscribed.wait()
                # The block is left with the client still reading: the stream ends
                # cleanly (a complete response, not a reset) well before graceful_timeout.
                await ended.wait()
    assert lines_seen[0] == ": subscribed to ciris_actors registry events"
    assert ended.is_set()


# -- metrics ----------------------------------------------------------------------------------


def parse_metrics(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Samples by sample name, then by sorted labels."""
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def describe(info: dict[str, Any], name: str) -> dict[str, Any]:
    """Provider *name* as get_provider_info() describes it."""
    (described,) = [
        p
        for bucket in (*info["handlers"].values(), info["global_services"])
        for providers in bucket.values()
        for p in providers
        if p["name"] == name
    ]
    assert isinstance(described, dict)
    return described


def provider_labels(info: dict[str, Any], name: str, **extra: str) -> tuple[tuple[str, str], ...]:
    p = describe(info, name)
    labels = {"provider": name, "handler": p["handler"], "service_type": p["service_type"]}
    return tuple(sorted({**labels, **extra}.items()))


async def scrape(plane: Plane) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = await plane.client.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse_metrics(response.text)


async def test_metrics_parse_and_match_the_registry(plane: Plane) -> None:
    registry, providers = plane.registry, plane.providers
    with trio.fail_after(HANG_GUARD):
        async with registry.events() as events:
            providers["archive"].crash()
            async for event in events:
                if isinstance(event, ActorRestarted) and event.name == "archive":
                    break
    hits, misses = 7, 3
    for _ in range(hits):
        assert registry.get_service_nowait("H", "llm") is providers["primary"]
    for _ in range(misses):
        assert registry.get_service_nowait("H", "tts") is None
    registry.report_failure("backup")
    registry.report_failure("backup")
    registry.force_open("primary")

    response = await plane.client.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    # Every metric but the fleet's: this registry has no fleet.
    assert families == {name: kind for name, kind in METRIC_NAMES.items() if "_fleet_" not in name}
    samples = parse_metrics(response.text)
    info = registry.get_provider_info()

    expected_failures = {"primary": 0, "backup": 2, "archive": 0}
    expected_restarts = {"primary": 0, "backup": 0, "archive": 1}
    for name, stats in info["circuit_breaker_stats"].items():
        for state in ("closed", "open", "half_open"):
            value = samples["ciris_breaker_state"][provider_labels(info, name, state=state)]
            assert value == float(state == stats["state"]), (name, state)
        labels = provider_labels(info, name)
        assert samples["ciris_breaker_failure_count"][labels] == stats["failure_count"]
        assert stats["failure_count"] == expected_failures[name]
        described = describe(info, name)
        assert samples["ciris_provider_restarts_total"][labels] == described["restarts"]
        assert described["restarts"] == expected_restarts[name]
        failed_calls = provider_labels(info, name, outcome="failure")
        assert samples["ciris_breaker_calls_total"][failed_calls] == stats["total_failures"]
    assert info["circuit_breaker_stats"]["primary"]["state"] == "open"

    selections = samples["ciris_provider_selections_total"]
    assert selections[provider_labels(info, "primary")] == hits
    assert selections[provider_labels(info, "backup")] == 0
    resolves = samples["ciris_resolves_total"]
    assert resolves[(("outcome", "hit"), ("service_type", "llm"))] == hits
    assert resolves[(("outcome", "miss"), ("service_type", "llm"))] == 0
    assert resolves[(("outcome", "miss"), ("service_type", "tts"))] == misses
    assert resolves[(("outcome", "hit"), ("service_type", "tts"))] == 0
    available = samples["ciris_provider_available"]
    assert available[provider_labels(info, "primary")] == 0.0
    assert available[provider_labels(info, "backup")] == 1.0


async def test_each_scrape_times_the_next_64_resolves(plane: Plane) -> None:
    def histogram(
        samples: dict[str, dict[tuple[tuple[str, str], ...], float]],
    ) -> tuple[float, float, list[float]]:
        name = "ciris_resolve_duration_seconds"
        buckets = samples[f"{name}_bucket"]
        ordered = sorted(buckets.items(), key=lambda kv: float(dict(kv[0])["le"]))
        assert dict(ordered[-1][0])["le"] == "+Inf"
        return samples[f"{name}_count"][()], samples[f"{name}_sum"][()], [v for _, v in ordered]

    count0, sum0, _ = histogram(await scrape(plane))
    for _ in range(200):
        assert plane.registry.get_service_nowait("H", "llm") is not None
    count1, sum1, buckets = histogram(await scrape(plane))
    assert count1 == count0 + 64  # the 64 after the scrape, not the 136 after those
    assert sum1 > sum0
    assert buckets == sorted(buckets)  # cumulative
    assert buckets[-1] == count1
    for _ in range(10):  # fewer than 64 before the next scrape: each is timed
        plane.registry.get_service_nowait("H", "llm")
    count2, _, _ = histogram(await scrape(plane))
    assert count2 == count1 + 10


async def test_metrics_speak_openmetrics_when_asked(plane: Plane) -> None:
    response = await plane.client.get(
        "/metrics", headers={**AUTH, "Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


# -- fleet status -----------------------------------------------------------------------------

FLEET = "/v1/runtime/fleet"
Event = TypeVar("Event", bound=RegistryEvent)


async def fleet_json(plane: Plane) -> Any:
    """The fleet member of ``GET /v1/runtime/fleet``."""
    response = await plane.client.get(FLEET, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"fleet"}
    return body["fleet"]


def fleet_samples(
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]], node: str
) -> dict[str, float]:
    """Node *node*'s one-value fleet series (gauges and counters), by sample name."""
    names = (
        "ciris_fleet_degraded",
        "ciris_fleet_verdicts_sent_total",
        "ciris_fleet_verdicts_received_total",
        "ciris_fleet_outages_total",
        "ciris_fleet_malformed_verdicts_total",
        "ciris_fleet_pending_reports",
    )
    return {name: samples[name][(("node", node),)] for name in names}


async def next_event(
    events: AsyncIterable[RegistryEvent], kind: type[Event], name: str | None = None
) -> Event:
    """The next event of type *kind* (about provider *name*, if given)."""
    async for event in events:
        if isinstance(event, kind) and (name is None or event.name == name):
            return event
    raise AssertionError(f"the event stream ended before a {kind.__name__}")  # pragma: no cover


@asynccontextmanager
async def fleet_peer(hub: MemoryFleet, node: str) -> AsyncIterator[Registry]:
    """Another registry of *hub*'s fleet, with providers named as the plane's LLMs."""
    async with open_registry(
        health_check_interval=None, default_breaker=BREAKER, fleet=hub.node(node)
    ) as peer:
        peer.register("H", "llm", FakeProvider("primary"), "HIGH", name="primary")
        peer.register("H", "llm", FakeProvider("backup"), "LOW", name="backup")
        assert await peer.wait_ready(HANG_GUARD, service_types=("llm",))
        yield peer


async def test_without_a_fleet_the_fleet_endpoint_says_null_and_no_fleet_metric_is_exposed(
    plane: Plane,
) -> None:
    assert await fleet_json(plane) is None
    assert not [name for name in await scrape(plane) if name.startswith("ciris_fleet_")]
    assert_error(await plane.client.get(FLEET, headers=AUTH, params={"node": "a"}), 422)
    assert (await plane.client.get(FLEET)).status_code == 401


async def test_fleet_status_and_metrics_count_verdicts_sent_and_received() -> None:
    hub = MemoryFleet(quorum=1)
    async with control_plane(fleet=hub.node("a")) as plane, fleet_peer(hub, "b") as peer:
        # Out: a force-open made over HTTP on node a reaches node b.
        async with peer.events(types=[FleetVerdict]) as seen_by_b:
            forced = await plane.client.post(
                f"{BASE}/primary/circuit-breaker/force-open", headers=AUTH, json={"duration": 60}
            )
            assert forced.status_code == 200, forced.text
            verdict = await next_event(seen_by_b, FleetVerdict, "primary")
        assert (verdict.node, verdict.kind) == ("a", "forced")
        assert state_of(peer, "primary") == "open"
        # In: node b's breaker opening on failures opens node a's.
        async with plane.registry.events(types=[FleetVerdict]) as seen_by_a:
            for _ in range(BREAKER.failure_threshold):
                peer.report_failure("backup")
            verdict = await next_event(seen_by_a, FleetVerdict, "backup")
        assert verdict.node == "b"
        assert verdict.lag is not None  # pushed, not read
        assert state_of(plane.registry, "backup") == "open"

        status = plane.registry.fleet_status()
        assert status is not None
        fleet = await fleet_json(plane)
        stable = (
            *("node", "reachable", "degraded", "degraded_since", "lag", "quorum"),
            *("quorum_window", "verdicts_sent", "verdicts_received", "pending", "outages"),
            "malformed",
        )
        assert {key: fleet[key] for key in stable} == {key: status.as_dict()[key] for key in stable}
        assert fleet["node"] == "a"
        assert fleet["reachable"] is True
        assert fleet["degraded"] is False
        assert fleet["degraded_since"] is None
        assert fleet["degraded_for"] is None
        assert fleet["quorum"] == 1
        assert fleet["verdicts_sent"] == 1
        assert fleet["verdicts_received"] == 1
        assert fleet["outages"] == 0
        assert fleet["malformed"] == 0
        assert fleet["last_sync"] is not None
        assert 0 <= fleet["last_sync_age"] < HANG_GUARD

        response = await plane.client.get("/metrics", headers=AUTH)
        assert response.status_code == 200
        families = {f.name: f.type for f in text_string_to_metric_families(response.text)}
        assert families == METRIC_NAMES  # with a fleet: every metric
        samples = parse_metrics(response.text)
        assert fleet_samples(samples, "a") == {
            "ciris_fleet_degraded": 0.0,
            "ciris_fleet_verdicts_sent_total": 1.0,
            "ciris_fleet_verdicts_received_total": 1.0,
            "ciris_fleet_outages_total": 0.0,
            "ciris_fleet_malformed_verdicts_total": 0.0,
            "ciris_fleet_pending_reports": 0.0,
        }
        lag = "ciris_fleet_propagation_lag_seconds"
        buckets = sorted(
            (
                (float(dict(labels)["le"]), value)
                for labels, value in samples[f"{lag}_bucket"].items()
            ),
        )
        assert [bound for bound, _ in buckets] == list(LAG_BUCKETS)
        counts = [value for _, value in buckets]
        assert counts == sorted(counts)  # cumulative
        assert counts[-1] == 1.0  # the one pushed verdict a received
        assert samples[f"{lag}_count"] == {(("node", "a"),): 1.0}
        assert samples[f"{lag}_sum"][(("node", "a"),)] == status.lag_sum == verdict.lag


async def test_the_degraded_gauge_flips_while_the_store_is_down_and_reports_wait() -> None:
    hub = MemoryFleet(quorum=1)
    async with control_plane(fleet=hub.node("a")) as plane:
        before = fleet_samples(await scrape(plane), "a")
        assert before["ciris_fleet_degraded"] == 0.0
        assert before["ciris_fleet_outages_total"] == 0.0
        async with plane.registry.events(types=[FleetDegraded, FleetRestored]) as events:
            hub.take_down()
            degraded = await next_event(events, FleetDegraded)
            assert degraded.node == "a"
            # Alone now: a change made meanwhile waits for the store.
            plane.registry.force_open("primary")
            fleet = await fleet_json(plane)
            assert fleet["reachable"] is False
            assert fleet["degraded"] is True
            assert fleet["degraded_since"] == degraded.time
            assert fleet["degraded_for"] >= 0
            assert fleet["outages"] == 1
            assert fleet["pending"] == 1
            down = fleet_samples(await scrape(plane), "a")
            assert down["ciris_fleet_degraded"] == 1.0
            assert down["ciris_fleet_outages_total"] == 1.0
            assert down["ciris_fleet_pending_reports"] == 1.0

            hub.bring_up()
            restored = await next_event(events, FleetRestored)
            assert restored.node == "a"
        up = fleet_samples(await scrape(plane), "a")
        assert up["ciris_fleet_degraded"] == 0.0
        assert up["ciris_fleet_outages_total"] == 1.0  # a counter: the outage stays counted
        fleet = await fleet_json(plane)
        assert (fleet["reachable"], fleet["degraded_since"], fleet["degraded_for"]) == (
            True,
            None,
            None,
        )


# -- serve_control_api ------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::", "example.com"])
async def test_serving_off_loopback_without_a_token_is_refused(host: str) -> None:
    async with open_registry() as registry:
        with pytest.raises(ValueError, match="not a loopback address"):
            async with serve_control_api(registry, host=host, port=0):
                raise AssertionError("served without a token")  # pragma: no cover


async def test_a_port_in_use_is_a_clear_oserror(plane: Plane) -> None:
    with pytest.raises(OSError, match=f"could not bind 127.0.0.1:{plane.server.port}") as info:
        async with serve_control_api(plane.registry, port=plane.server.port, token=TOKEN):
            raise AssertionError("bound a port already in use")  # pragma: no cover
    assert info.value.errno is not None
    del info
    gc.collect()  # a socket leaked by the failed bind would warn (an error) here
    # The first server is unaffected.
    assert (await plane.client.get(BASE, headers=AUTH)).status_code == 200


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _port_is_free(port: int) -> bool:
    # No SO_REUSEADDR: a socket still bound to the port makes this bind fail.
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_a_server_cancelled_while_starting_releases_its_port() -> None:
    port = _free_port()
    async with open_registry(health_check_interval=None) as registry:
        with trio.CancelScope() as scope:
            scope.cancel()
            async with serve_control_api(registry, port=port, token=TOKEN):
                raise AssertionError("started in a cancelled scope")  # pragma: no cover
        assert scope.cancelled_caught
        assert _port_is_free(port)
        # And a server started afterwards on that port works.
        async with (
            serve_control_api(registry, port=port, token=TOKEN) as server,
            httpx.AsyncClient(base_url=server.url, headers=AUTH) as client,
        ):
            assert (await client.get(BASE)).status_code == 200
        assert _port_is_free(port)


async def test_counting_stops_when_the_last_collector_closes() -> None:
    async with open_registry(health_check_interval=None) as registry:
        registry.register("H", "llm", FakeProvider("a"), name="a")
        assert await registry.wait_ready(timeout=HANG_GUARD, service_types=["llm"])
        first = RegistryCollector(registry)
        second = RegistryCollector(registry)
        first.close()
        first.close()  # idempotent: does not release the second collector's hold
        for _ in range(192):
            assert registry.get_service_nowait("H", "llm") is not None
        with registry.observe() as watching:  # reads the shared counts
            timing = watching.timing
        assert timing.count == 64  # the 64 after attaching, not every resolve
        list(second.collect())  # a scrape arms the next 64...
        second.close()  # ...but the last collector closing disarms them
        for _ in range(128):
            registry.get_service_nowait("H", "llm")
        assert registry.view("a").selections == 192  # nobody observes: nothing counted...
        with registry.observe() as watching:
            assert watching.timing.count == 64  # ...nor timed (attaching arms only from now)


async def test_the_server_reports_the_port_it_bound(plane: Plane) -> None:
    assert plane.server.port != 0
    assert plane.server.url == f"http://127.0.0.1:{plane.server.port}"
    assert plane.server.token_required is True


# -- the event stream on virtual time (the ASGI app called directly) ------------------------


@attrs.define
class _AsgiCall:
    """One request to the app, called directly: what it sent, chunk by chunk."""

    start: MutableMapping[str, Any] | None = None
    chunks: list[bytes] = attrs.field(factory=list)
    finished: bool = False
    changed: trio.Event = attrs.field(factory=trio.Event)

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.start = message
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))
            self.finished = not message.get("more_body", False)
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, fragment: bytes) -> None:
        while fragment not in b"".join(self.chunks):
            assert not self.finished, b"".join(self.chunks)
            await self.changed.wait()


def _scope(method: str, path: str, query: bytes = b"") -> MutableMapping[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.1"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8080"), (b"authorization", f"Bearer {TOKEN}".encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
    }


class _NeverDisconnect:
    """An ASGI ``receive`` for a request with no body whose client never leaves."""

    def __init__(self) -> None:
        self.body_sent = False

    async def __call__(self) -> MutableMapping[str, Any]:
        if not self.body_sent:
            self.body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await trio.sleep_forever()
        raise AssertionError("unreachable")


async def test_an_event_arriving_as_the_keepalive_fires_is_still_delivered(
    mock_clock: trio.testing.MockClock,
) -> None:
    keepalive = 1.0
    async with open_registry(health_check_interval=None) as registry:
        registry.register("H", "llm", FakeProvider("a"), name="a")
        app = create_app(registry, token=TOKEN, sse_keepalive=keepalive)
        call = _AsgiCall()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                app,
                _scope("GET", "/v1/runtime/events", b"types=BreakerTransition"),
                _NeverDisconnect(),
                call.send,
            )
            await call.wait_for(b": subscribed")
            for step in range(3):
                await trio.testing.wait_all_tasks_blocked()  # the stream waits for an event
                mock_clock.jump(keepalive * 0.999)
                # An event, then the keep-alive deadline passes before the stream runs.
                registry.force_open("a") if step % 2 == 0 else registry.reset_circuit_breaker("a")
                mock_clock.jump(keepalive * 0.01)
                await trio.testing.wait_all_tasks_blocked()  # the stream has run
                assert f"id: {step + 1}\n".encode() in b"".join(call.chunks), call.chunks
            app.state.close()
            await call.wait_for(b"")
            nursery.cancel_scope.cancel()
        body = b"".join(call.chunks).decode()
        frames = [f for f in body.split("\n\n") if f.startswith("id:")]
        assert [f.split("\n")[1] for f in frames] == ["event: BreakerTransition"] * 3


async def test_head_on_the_event_stream_answers_headers_and_opens_no_subscription(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_registry(health_check_interval=None) as registry:
        subscriptions = event_subscriptions()
        app = create_app(registry, token=TOKEN)
        call = _AsgiCall()
        try:
            await app(_scope("HEAD", "/v1/runtime/events"), _NeverDisconnect(), call.send)
        finally:
            app.state.close()
        assert call.start is not None
        assert call.start["status"] == 200
        assert (b"content-type", b"text/event-stream; charset=utf-8") in call.start["headers"]
        assert call.finished
        assert event_subscriptions() == subscriptions


def test_the_documented_metric_table_is_the_collectors_own() -> None:
    # The table in docs/control-plane.md is generated from METRICS: a metric added,
    # renamed or re-labelled without regenerating it fails here.
    docs = (Path(__file__).parent.parent / "docs" / "control-plane.md").read_text()
    assert metric_table() in docs
    assert [row.split("|")[1].strip(" `") for row in metric_table().splitlines()[2:]] == [
        name + ("_total" if kind == "counter" else "") for name, kind in METRIC_NAMES.items()
    ]
