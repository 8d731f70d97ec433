"""The control plane's ASGI application: routes, authentication, validation, errors."""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import aclosing, asynccontextmanager
from http import HTTPStatus
from typing import Any

import attrs
import trio
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import events as events_mod
from .._errors import RegistryError, UnknownProviderError
from .._types import coerce_group, coerce_priority, coerce_strategy
from .._validators import count, seconds
from ..registry import Registry
from ._metrics import RegistryCollector
from ._openapi import openapi_document

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app", "event_as_dict"]

#: Request bodies larger than this are refused with 413 (the largest valid body is a few
#: hundred bytes).
DEFAULT_MAX_BODY_BYTES = 16 * 1024

#: Seconds a request's whole body may take to arrive once its head has (else 408).
DEFAULT_REQUEST_TIMEOUT = 10.0

#: Seconds between keep-alive comments on an idle event stream.
DEFAULT_SSE_KEEPALIVE = 15.0

#: Event type names a client may filter the event stream by.
EVENT_TYPES: dict[str, type[events_mod.RegistryEvent]] = {
    name: getattr(events_mod, name) for name in events_mod.__all__ if name != "EventSubscription"
}

Handler = Callable[[Request], Awaitable[Response]]


@attrs.define(eq=False)
class _Settings:
    registry: Registry
    token: bytes | None
    collector: RegistryCollector
    metrics: CollectorRegistry
    sse_keepalive: float
    #: Set when the server shuts down: open event streams end.
    closing: trio.Event = attrs.field(factory=trio.Event)
    #: The cancel scopes event streams are waiting in; :meth:`close` cancels them.
    waits: set[trio.CancelScope] = attrs.field(factory=set)

    def close(self) -> None:
        """End every open event stream and stop counting resolves (idempotent)."""
        self.closing.set()
        for wait in list(self.waits):
            wait.cancel()
        self.collector.close()


def create_app(
    registry: Registry,
    *,
    token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    sse_keepalive: float = DEFAULT_SSE_KEEPALIVE,
) -> Starlette:
    """Build the control plane's ASGI app for *registry*.

    Serve it with :func:`serve_control_api`, or mount it in an existing ASGI server
    running on trio (see ``docs/control-plane.md``).

    Args:
      registry: the live registry to inspect and control.
      token: the bearer token every request must carry. Without one, mutating endpoints
        refuse every request (403) and read endpoints answer only loopback clients that
        name a loopback host.
      max_body_bytes: request bodies larger than this are refused with 413.
      request_timeout: seconds a request's body may take to arrive, once its head has
        (else 408).
      sse_keepalive: seconds between keep-alive comments on an idle event stream.

    Returns:
      A Starlette app. ``app.state.metrics`` is its prometheus ``CollectorRegistry``;
      ``app.state.close()`` ends its open event streams and stops resolve counting (its
      lifespan shutdown does the same).

    Raises:
      TypeError: a bad argument type.
      ValueError: an empty token, or a limit that is not positive.
    """
    if not isinstance(registry, Registry):
        raise TypeError(f"registry: expected a Registry, got {type(registry).__name__}")
    secret = check_token(token)
    count(max_body_bytes, "max_body_bytes")
    timeout = seconds(request_timeout, "request_timeout")
    keepalive = seconds(sse_keepalive, "sse_keepalive")
    collector = RegistryCollector(registry)
    metrics = CollectorRegistry(auto_describe=False)
    metrics.register(collector)
    settings = _Settings(
        registry=registry,
        token=secret,
        collector=collector,
        metrics=metrics,
        sse_keepalive=keepalive,
    )

    def endpoint(handler: Callable[[Request, _Settings], Awaitable[Response]]) -> Handler:
        return _guard(handler, settings)

    # Authorization is the gate's (_Gate), before routing: a GET reads, every other
    # method changes something.
    base = "/v1/runtime/services"
    routes = [
        Route(base, endpoint(_list_services), methods=["GET"]),
        Route(f"{base}/health", endpoint(_health), methods=["GET"]),
        Route(f"{base}/selection", endpoint(_selection), methods=["GET"]),
        Route(f"{base}/circuit-breakers/reset", endpoint(_reset), methods=["POST"]),
        Route(f"{base}/{{name:path}}/priority", endpoint(_priority), methods=["PUT"]),
        Route(
            f"{base}/{{name:path}}/circuit-breaker/force-open",
            endpoint(_force_open),
            methods=["POST"],
        ),
        Route("/v1/runtime/events", endpoint(_events), methods=["GET"]),
        Route("/v1/runtime/fleet", endpoint(_fleet), methods=["GET"]),
        Route("/metrics", endpoint(_metrics), methods=["GET"]),
        Route("/openapi.json", endpoint(_openapi), methods=["GET"]),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            settings.close()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(_Gate, settings=settings, limit=max_body_bytes, timeout=timeout)],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.state.close = settings.close
    return app


def check_token(token: object) -> bytes | None:
    """Validate a bearer token and return it as bytes (``None`` stays ``None``).

    Raises:
      TypeError: *token* is not a string.
      ValueError: *token* is empty, has surrounding whitespace, or characters a header
        cannot carry.
    """
    if token is None:
        return None
    if not isinstance(token, str):
        raise TypeError(f"token: expected a str, got {type(token).__name__}")
    if not token:
        raise ValueError("token: must not be empty")
    if token != token.strip() or not token.isprintable() or not token.isascii():
        raise ValueError("token: must be printable ASCII without surrounding whitespace")
    return token.encode("ascii")


def is_loopback(host: str) -> bool:
    """Whether *host* (an address, or ``localhost``) is a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _JSON(JSONResponse):
    """A JSON response that renders anything: provider metadata is the user's data, and
    a value JSON cannot hold is shown as text rather than failing the request."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=False, allow_nan=False, default=str)
        except (ValueError, TypeError):  # NaN or an infinity, or a key JSON cannot hold
            text = json.dumps(_finite(content), ensure_ascii=False, default=str)
        return text.encode("utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# -- errors ---------------------------------------------------------------------------------


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return _JSON(
        {"status": status, "error": HTTPStatus(status).phrase, "message": message},
        status_code=status,
        headers=headers,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail
    if exc.status_code == 404 and message == "Not Found":
        message = f"no endpoint at {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return _error(exc.status_code, message, exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    return _error(500, f"internal error: {type(exc).__name__}")


class _Gate:
    """Authorize a request from its head, then read its whole body, then run the app.

    The order is the point: a request that may not be answered is refused before a byte
    of its body is read, so an unauthenticated client cannot hold a connection open by
    trickling a body in. A body is read whole, however it is framed (``Content-Length``,
    chunked, or neither), and refused with 413 as soon as it passes *limit* bytes (a
    declared length over the limit is refused before anything is read). The whole body
    must arrive within *timeout* seconds of the request's head, else 408.

    A refusal sent while the client may still be sending its body says
    ``Connection: close``: the rest of the body is never read, so the connection cannot
    carry another request, and the client is told rather than finding out on its next
    request.
    """

    def __init__(self, app: ASGIApp, settings: _Settings, limit: int, timeout: float) -> None:
        self.app = app
        self.settings = settings
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        may_have_body = (declared is not None and declared != "0") or (
            "transfer-encoding" in headers
        )
        close = {"Connection": "close"} if may_have_body else {}
        try:
            _authorize(Request(scope), self.settings, mutating=scope["method"] not in _SAFE)
        except _Refused as refused:
            await _error(refused.status, refused.message, {**(refused.headers or {}), **close})(
                scope, receive, send
            )
            return
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        with trio.move_on_after(self.timeout):
            while more:
                message = await receive()
                if message["type"] != "http.request":  # the client left
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.limit:
                    await _too_large(self.limit)(scope, receive, send)
                    return
                chunks.append(chunk)
                more = message.get("more_body", False)
        if more:
            late = f"the request body did not arrive within {self.timeout:g}s"
            await _error(408, late, {"Connection": "close"})(scope, receive, send)
            return
        body: Message | None = {"type": "http.request", "body": b"".join(chunks)}

        async def replay() -> Message:
            nonlocal body
            if body is None:
                return await receive()
            message, body = body, None
            return message

        await self.app(scope, replay, send)


#: Methods that change nothing; every other method is refused without a token.
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def _too_large_message(limit: int) -> str:
    return f"the request body is larger than this server accepts ({limit} bytes)"


def _too_large(limit: int) -> Response:
    # The rest of the body is left unread, so the connection cannot serve another request.
    return _error(413, _too_large_message(limit), {"Connection": "close"})


class _Refused(Exception):
    """A request the handler refuses with *status* and *message* (nothing was changed)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ciris_actors"'}


def _authorize(request: Request, settings: _Settings, *, mutating: bool) -> None:
    header = request.headers.get("authorization")
    if settings.token is None:
        # No credential could make these succeed: 403, not 401.
        if mutating:
            raise _Refused(
                403,
                "this server has no token configured, so it accepts no changes;"
                " restart it with a token",
            )
        client = request.client
        if client is None or not is_loopback(client.host):
            raise _Refused(403, "without a token configured, only loopback clients may read")
        # A page in a local browser can rebind its own host name to 127.0.0.1; it cannot
        # make the browser send a loopback Host header.
        host = _host_name(request.headers.get("host", ""))
        if not is_loopback(host):
            raise _Refused(
                403,
                f"without a token configured, only requests to a loopback host name are"
                f" answered (Host: {host!r})",
            )
        return
    if header is None:
        raise _Refused(401, "missing Authorization: Bearer <token> header", _CHALLENGE)
    scheme, _, credentials = header.partition(" ")
    given = credentials.strip().encode("utf-8", "surrogateescape")
    # Always compare, so a wrong scheme takes as long as a wrong token.
    matches = hmac.compare_digest(given, settings.token)
    if scheme.lower() != "bearer" or not matches:
        raise _Refused(401, "invalid bearer token", _CHALLENGE)


def _host_name(header: str) -> str:
    """The host of a ``Host`` header, without its port (``[::1]:80`` -> ``::1``)."""
    header = header.strip()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _guard(
    handler: Callable[[Request, _Settings], Awaitable[Response]], settings: _Settings
) -> Handler:
    """Wrap *handler* with the registry's error mapping (the gate has authorized it)."""

    async def endpoint(request: Request) -> Response:
        try:
            if settings.registry.closed:
                raise _Refused(503, "the registry is closed")
            return await handler(request, settings)
        except _Refused as refused:
            return _error(refused.status, refused.message, refused.headers)
        except UnknownProviderError as exc:
            return _error(404, str(exc))
        except RegistryError as exc:  # the registry closed while this request ran
            return _error(503, str(exc))

    endpoint.__name__ = handler.__name__.lstrip("_")
    endpoint.__doc__ = handler.__doc__
    return endpoint


# -- request parsing ------------------------------------------------------------------------


def _check_query(request: Request, allowed: frozenset[str]) -> None:
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        expected = ", ".join(sorted(allowed)) or "none"
        raise _Refused(422, f"unknown query parameter(s) {unknown} (expected: {expected})")


async def _json_body(request: Request, allowed: frozenset[str]) -> dict[str, Any]:
    """The request's JSON object, ``{}`` for an empty body; unknown keys are refused."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _Refused(422, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _Refused(422, f"the request body must be a JSON object, got {_json_type(body)}")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _Refused(422, f"unknown field(s) {unknown} (expected: {', '.join(sorted(allowed))})")
    return body


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _field(value: object, name: str, check: Callable[[object, str], Any]) -> Any:
    try:
        return check(value, name)
    except (TypeError, ValueError) as exc:
        raise _Refused(422, str(exc)) from None


def _optional_str(body: Mapping[str, Any], name: str) -> str | None:
    if name in body and body[name] is None:
        raise _Refused(422, f"{name}: must not be null (leave it out to mean every provider)")
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise _Refused(422, f"{name}: expected a non-empty string, got {_json_type(value)}")
    return value


def _provider(request: Request, settings: _Settings) -> dict[str, Any]:
    """The provider named in the path, described as ``get_provider_info`` does, with its
    breaker's statistics under ``"circuit_breaker"``."""
    view = settings.registry.view(request.path_params["name"])
    return {**view.as_dict(), "circuit_breaker": dict(view.breaker)}


# -- endpoints ------------------------------------------------------------------------------


async def _list_services(request: Request, settings: _Settings) -> Response:
    """Every provider: handlers, global services and breaker stats."""
    _check_query(request, frozenset({"handler", "service_type"}))
    params = request.query_params
    info = settings.registry.get_provider_info(
        handler=params.get("handler"), service_type=params.get("service_type")
    )
    return _JSON(info)


async def _health(request: Request, settings: _Settings) -> Response:
    """The registry's ``health_status()``."""
    _check_query(request, frozenset())
    return _JSON(settings.registry.health_status())


async def _selection(request: Request, settings: _Settings) -> Response:
    """The live selection walk for a request (``explain()``)."""
    _check_query(request, frozenset({"handler", "service_type", "capabilities", "global"}))
    params = request.query_params
    missing = [key for key in ("handler", "service_type") if not params.get(key)]
    if missing:
        raise _Refused(422, f"missing query parameter(s) {missing}")
    capabilities: list[str] = []
    for item in params.getlist("capabilities"):
        capabilities += [c.strip() for c in item.split(",") if c.strip()]
    fallback = params.get("global", "true").lower()
    if fallback not in ("true", "false"):
        raise _Refused(422, f"global: expected true or false, got {params['global']!r}")
    explanation = settings.registry.explain(
        params["handler"], params["service_type"], capabilities, fallback == "true"
    )
    body = explanation.as_dict()
    body["table"] = str(explanation)
    return _JSON(body)


async def _priority(request: Request, settings: _Settings) -> Response:
    """Move a provider or change its share or cap: any of priority, priority_group,
    strategy, weight, max_in_flight (``null``: no cap)."""
    _check_query(request, frozenset())
    body = await _json_body(
        request,
        frozenset({"priority", "priority_group", "strategy", "weight", "max_in_flight"}),
    )
    name = request.path_params["name"]
    _provider(request, settings)  # 404 before anything else
    if not body:
        raise _Refused(
            422,
            "nothing to change: give priority, priority_group, strategy, weight or max_in_flight",
        )
    changes: dict[str, Any] = {}
    if body.get("priority") is not None:
        changes["priority"] = _field(body["priority"], "priority", coerce_priority)
    if body.get("priority_group") is not None:
        changes["priority_group"] = _field(body["priority_group"], "priority_group", coerce_group)
    if body.get("strategy") is not None:
        changes["strategy"] = _field(body["strategy"], "strategy", coerce_strategy)
    for key in ("priority", "priority_group", "strategy", "weight"):
        if key in body and body[key] is None:
            raise _Refused(422, f"{key}: must not be null (leave it out to keep it)")
    for key in ("weight", "max_in_flight"):
        if key in body and body[key] is not None:
            changes[key] = body[key]
    if "max_in_flight" in body:
        changes["max_in_flight"] = body["max_in_flight"]
    try:
        settings.registry.update_priority(name, **changes)
    except (TypeError, ValueError) as exc:
        raise _Refused(422, str(exc)) from None
    return _JSON(_provider(request, settings))


async def _reset(request: Request, settings: _Settings) -> Response:
    """Reset breakers: all, one service type's, or one provider's."""
    _check_query(request, frozenset())
    body = await _json_body(request, frozenset({"service_type", "name"}))
    service_type = _optional_str(body, "service_type")
    name = _optional_str(body, "name")
    registry = settings.registry
    if name is not None and service_type is not None:
        raise _Refused(422, "give name or service_type, not both")
    if name is not None:
        registry.reset_circuit_breaker(name)
        names = [name]
    else:
        info = registry.get_provider_info(service_type=service_type)
        names = sorted(info["circuit_breaker_stats"])
        count = registry.reset_circuit_breakers(service_type=service_type)
        assert count == len(names)
    return _JSON({"reset": len(names), "names": names})


async def _force_open(request: Request, settings: _Settings) -> Response:
    """Hold a provider's breaker OPEN (for ``duration`` seconds, or its recovery time)."""
    _check_query(request, frozenset())
    body = await _json_body(request, frozenset({"duration"}))
    name = request.path_params["name"]
    _provider(request, settings)
    duration = body.get("duration")
    try:
        settings.registry.force_open(name, duration)
    except (TypeError, ValueError) as exc:
        raise _Refused(422, str(exc)) from None
    return _JSON(_provider(request, settings))


async def _fleet(request: Request, settings: _Settings) -> Response:
    """The registry's fleet link (``fleet_status()``), or ``{"fleet": null}`` without one."""
    _check_query(request, frozenset())
    status = settings.registry.fleet_status()
    if status is None:
        return _JSON({"fleet": None})
    body = status.as_dict()
    # The status's times are the registry's clock (arbitrary origin): say how long ago.
    now = trio.current_time()
    body["last_sync_age"] = None if status.last_sync is None else now - status.last_sync
    body["degraded_for"] = None if status.degraded_since is None else now - status.degraded_since
    return _JSON({"fleet": body})


async def _metrics(request: Request, settings: _Settings) -> Response:
    """Prometheus exposition of the registry's metrics."""
    _check_query(request, frozenset())
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    # Read the registry here, in its trio run (it is not thread-safe); format the snapshot
    # in a worker thread: formatting is most of a scrape's cost (about 100 ms at 1000
    # providers) and would otherwise stall every task of the registry.
    snapshot = _Snapshot(list(settings.metrics.collect()))
    body = await trio.to_thread.run_sync(encoder, snapshot)
    return Response(body, media_type=content_type)


@attrs.frozen
class _Snapshot:
    """Metric families already collected, in the shape prometheus' encoders read."""

    families: list[Metric]

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


async def _openapi(request: Request, settings: _Settings) -> Response:
    """This API's OpenAPI document."""
    _check_query(request, frozenset())
    return _JSON(openapi_document())


# -- events ---------------------------------------------------------------------------------


def event_as_dict(event: events_mod.RegistryEvent) -> dict[str, Any]:
    """A registry event in JSON-ready form, with its ``type`` and a Unix ``timestamp``."""
    body: dict[str, Any] = {"type": type(event).__name__}
    for key, value in attrs.asdict(event, recurse=False).items():
        if hasattr(value, "value"):  # an enum
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        body[key] = value
    # The registry's clock is trio's: monotonic, with an arbitrary origin.
    body["timestamp"] = time.time() - (trio.current_time() - event.time)
    return body


def _parse_types(request: Request) -> frozenset[type[events_mod.RegistryEvent]] | None:
    names: list[str] = []
    for item in request.query_params.getlist("types"):
        names += [n.strip() for n in item.split(",") if n.strip()]
    if not names:
        return None
    unknown = sorted(set(names) - set(EVENT_TYPES))
    if unknown:
        raise _Refused(
            422, f"types: unknown event type(s) {unknown} (expected: {', '.join(EVENT_TYPES)})"
        )
    # The registry filters before buffering, and always delivers EventsDropped.
    return frozenset(EVENT_TYPES[n] for n in names)


_SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


async def _events(request: Request, settings: _Settings) -> Response:
    """The registry's events as server-sent events."""
    _check_query(request, frozenset({"types", "max_buffer"}))
    wanted = _parse_types(request)
    raw_buffer = request.query_params.get("max_buffer", "1000")
    try:
        max_buffer = int(raw_buffer)
    except ValueError:
        max_buffer = 0
    if not 1 <= max_buffer <= 100_000:
        raise _Refused(422, f"max_buffer: expected an integer 1..100000, got {raw_buffer!r}")
    if request.method == "HEAD":  # the headers of a stream, without opening one
        return Response(headers=_SSE_HEADERS, media_type="text/event-stream")
    return _EventStreamResponse(
        _event_stream(settings, wanted, max_buffer),
        media_type="text/event-stream",
        headers=_SSE_HEADERS,
    )


class _EventStreamResponse(StreamingResponse):
    """A streaming response that closes its event generator however the response ends.

    Starlette abandons the body iterator when the client leaves mid-stream; a generator
    left waiting at a ``yield`` would keep its registry subscription until it is
    garbage-collected. Closing it here ends the subscription at once.
    """

    def __init__(
        self, stream: AsyncGenerator[str, None], media_type: str, headers: Mapping[str, str]
    ) -> None:
        super().__init__(stream, media_type=media_type, headers=headers)
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with aclosing(self._stream):
            await super().__call__(scope, receive, send)


async def _event_stream(
    settings: _Settings,
    wanted: frozenset[type[events_mod.RegistryEvent]] | None,
    max_buffer: int,
) -> AsyncGenerator[str, None]:
    """Yield SSE frames until the client leaves, the registry closes or the server stops.

    The first frame, a comment, is sent once subscribed: every event after it is
    delivered. Nothing is yielded inside a cancel scope (trio forbids that in async
    generators); each wait for an event gets its own.
    """
    if settings.registry.closed:
        return
    sequence = 0
    async with settings.registry.events(max_buffer=max_buffer, types=wanted) as subscription:
        yield ": subscribed to ciris_actors registry events\n\n"
        while not settings.closing.is_set():
            event: events_mod.RegistryEvent | None = None
            # A fresh scope per wait, cancelled by the keep-alive deadline or by close().
            # receive() returns an event it took or raises, never both, so an event is
            # never lost to a deadline that fires as it arrives.
            with trio.CancelScope(deadline=trio.current_time() + settings.sse_keepalive) as wait:
                settings.waits.add(wait)
                try:
                    event = await subscription.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    return
                finally:
                    settings.waits.discard(wait)
            if event is None:
                if settings.closing.is_set():
                    return
                yield ": keep-alive\n\n"
                continue
            sequence += 1
            data = json.dumps(event_as_dict(event), separators=(",", ":"), default=str)
            yield f"id: {sequence}\nevent: {type(event).__name__}\ndata: {data}\n\n"
