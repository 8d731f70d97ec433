"""Property-based fuzzing of the control plane from its own OpenAPI document.

schemathesis turns the document into hypothesis strategies of requests, valid ones and
deliberately invalid ones. A registry is served twice on loopback (with a token, and
without one); hypothesis runs in a worker thread and sends each generated request with
a sync httpx client, while trio serves it on the main thread.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs
import httpx
import schemathesis
import trio
from hypothesis import HealthCheck, given, settings, strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ciris_actors import CircuitBreakerConfig, HealthChanged, Registry, open_registry
from ciris_actors.control import openapi_document, serve_control_api
from ciris_actors.testing import FakeProvider

from .helpers import snapshot

TOKEN = "fuzz-token-5d2b"
NAMES = ("primary", "backup", "archive")
BREAKER = CircuitBreakerConfig(failure_threshold=3, recovery_timeout=600.0, timeout_duration=60.0)

SCHEMA = schemathesis.openapi.from_dict(openapi_document())
_NAMED = [
    SCHEMA["/v1/runtime/services/{name}/priority"]["PUT"],
    SCHEMA["/v1/runtime/services/{name}/circuit-breaker/force-open"]["POST"],
]
#: Valid and invalid requests to every operation, plus requests naming a provider that
#: exists (a random name is almost always unknown, and only reaches the 404).
CASES: st.SearchStrategy[Case[Any]] = st.one_of(
    SCHEMA.as_strategy(),
    SCHEMA.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    *(
        op.as_strategy(generation_mode=mode, path_parameters={"name": name})
        for op in _NAMED
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for name in NAMES
    ),
)

#: Authorization headers that must not let a request change anything.
NOT_AUTHORIZED: tuple[Mapping[str, str], ...] = (
    {},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": f"Bearer {TOKEN}x"},
)
VALID = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: What h11 sends: no control characters, no surrounding whitespace.
_HEADER_VALUE = re.compile(
    r"^([\x21-\x7e\x80-\xff]([\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?$"
)
#: Headers that frame the request: a random value would only make the client hang or
#: refuse to send, not test the app.
_FRAMING = {"content-length", "transfer-encoding", "host", "connection", "expect", "upgrade", "te"}


def sendable(name: str, value: str) -> bool:
    """Whether httpx can send this header at all (if not, nothing reaches the server)."""
    return bool(_HEADER_NAME.match(name) and _HEADER_VALUE.match(value))


def refused(response: httpx.Response, auth: Mapping[str, str], *, status: int = 401) -> None:
    """A request without a valid token must get *status* (401 from a server with a token;
    403 for a change sent to one without), or 404 if no route matched (a path parameter
    with a newline: Starlette's ``path`` convertor does not match one)."""
    if response.status_code == 404:
        assert response.json()["message"].startswith("no endpoint at "), response.text
    else:
        assert response.status_code == status, (auth, response.text)


def _query_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_query_value(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value)


@attrs.frozen
class Request:
    """One generated request, in a form httpx sends as is."""

    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]
    content: bytes | None

    @classmethod
    def from_case(cls, case: Case[Any]) -> Request:
        kwargs = case.as_transport_kwargs(base_url="http://unused")
        headers = {
            str(k): str(v)
            for k, v in kwargs["headers"].items()
            if sendable(str(k), str(v))
            and str(k).lower() not in _FRAMING
            and str(k).lower() != "authorization"
        }
        content: bytes | None = None
        if "json" in kwargs:
            content = json.dumps(kwargs["json"]).encode()
        elif "data" in kwargs:
            data = kwargs["data"]
            content = data if isinstance(data, bytes) else str(data).encode()
        params = {str(k): _query_value(v) for k, v in kwargs["params"].items()}
        return cls(case.method, case.formatted_path, params, headers, content)

    def send(self, client: httpx.Client, auth: Mapping[str, str]) -> httpx.Response:
        """Send it; an event stream is read up to its first comment and left."""
        with client.stream(
            self.method,
            self.path,
            params=self.params,
            headers={**self.headers, **auth},
            content=self.content,
        ) as response:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                first = next(response.iter_lines())
                assert first.startswith(": subscribed"), first
            else:
                response.read()
        return response


async def test_fuzzed_requests_never_5xx_and_never_change_state_without_token() -> None:
    async with open_registry(health_check_interval=None, default_breaker=BREAKER) as registry:
        async with registry.events() as events:
            registry.register("H", "llm", FakeProvider("primary"), "HIGH", name="primary")
            registry.register("H", "llm", FakeProvider("backup"), "LOW", name="backup")
            registry.register_service("memory", FakeProvider("archive"), name="archive")
            pending = set(NAMES)
            with trio.fail_after(30):
                async for event in events:
                    if isinstance(event, HealthChanged) and event.healthy:
                        pending.discard(event.name or "")
                        if not pending:
                            break
        async with (
            serve_control_api(registry, port=0, token=TOKEN) as guarded,
            serve_control_api(registry, port=0) as open_reads,
        ):
            stats = await trio.to_thread.run_sync(fuzz, registry, guarded.url, open_reads.url)
    # The generator reached the interesting outcomes, not only 401s and 404s.
    assert stats["changed"] > 0, stats
    assert {200, 404, 422} <= set(stats["statuses"]), stats


def fuzz(registry: Registry, guarded_url: str, open_url: str) -> dict[str, Any]:
    """Run the property in this worker thread; return what it saw."""
    seen: dict[str, Any] = {"changed": 0, "statuses": set()}

    def state() -> dict[str, Any]:
        return trio.from_thread.run_sync(snapshot, registry)

    def restore() -> None:
        # A breaker forced open for a moment half-opens on its own later: reset them all,
        # so the state only ever changes when a request changes it.
        trio.from_thread.run_sync(registry.reset_circuit_breakers)

    with (
        httpx.Client(base_url=guarded_url, timeout=30) as guarded,
        httpx.Client(base_url=open_url, timeout=30) as open_reads,
    ):

        @settings(
            max_examples=200,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(case=CASES)
        def property_(case: Case[Any]) -> None:
            request = Request.from_case(case)
            before = state()
            generated = str(case.headers.get("Authorization", "") if case.headers else "").strip(
                " \t"
            )
            candidates = [*NOT_AUTHORIZED]
            if sendable("Authorization", generated) and generated != VALID["Authorization"]:
                candidates.append({"Authorization": generated})
            for auth in candidates:
                response = request.send(guarded, auth)
                refused(response, auth)
            for auth in (NOT_AUTHORIZED[0], VALID):
                response = request.send(open_reads, auth)
                assert response.status_code < 500, response.text
                if request.method != "GET":
                    refused(response, auth, status=403)
            assert state() == before, "a request without a valid token changed the registry"

            response = request.send(guarded, VALID)
            seen["statuses"].add(response.status_code)
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                case.validate_response(response, checks=CHECKS)
            assert response.status_code < 500, response.text
            if state() != before:
                seen["changed"] += 1
                restore()

        property_()
    return seen
