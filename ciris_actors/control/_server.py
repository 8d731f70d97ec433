"""``serve_control_api``: the control plane on hypercorn's HTTP/1.1 protocol, with every
connection isolated and counted.

hypercorn's own ``serve`` runs every connection in one nursery, so one connection's
exception ends the whole server, and it speaks HTTP/2 to any client that asks. Here each
connection runs under a guard that logs what it raises and closes it, HTTP/2 is refused
(the control plane's clients, curl, Prometheus and ``EventSource``, speak HTTP/1.1), and
the number of open connections is capped: a new connection past the cap sheds the
connection idle the longest, so clients that never finish a request cannot crowd out one
that does.
"""

from __future__ import annotations

import itertools
import logging
import resource
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import attrs
import h11
import trio
from hypercorn.config import Config
from hypercorn.events import Closed, RawData
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState
from hypercorn.utils import parse_socket_addr, wrap_app
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from .._nursery import unwrap_single_exception
from .._validators import count, seconds
from ..registry import Registry
from ._app import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_REQUEST_TIMEOUT,
    check_token,
    create_app,
    is_loopback,
)

__all__ = ["ControlServer", "default_max_connections", "serve_control_api"]

#: hypercorn reports through this logger, and so do connections that end in an error.
logger = logging.getLogger("ciris_actors.control")

#: Seconds a client has to send a request's head, after connecting or after the previous
#: response on a keep-alive connection (hypercorn's ``keep_alive_timeout``).
HEAD_TIMEOUT = 5.0


@attrs.frozen
class ControlServer:
    """A running control plane, from :func:`serve_control_api`.

    Attributes:
      host: the address it is bound to.
      port: the port it is bound to (the one picked, if 0 was asked for).
      url: its base URL, e.g. ``http://127.0.0.1:8080``.
      app: the ASGI app it serves.
      token_required: whether every request needs the bearer token.
      max_connections: open connections past which the longest-idle one is shed.
    """

    host: str
    port: int
    url: str
    app: Starlette
    token_required: bool
    max_connections: int


def default_max_connections() -> int:
    """The connection cap when none is given: 128, or a quarter of the process's file
    descriptor limit if that is lower (the registry and its providers need the rest)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 128
    return max(4, min(128, soft // 4))


@asynccontextmanager
async def serve_control_api(
    registry: Registry,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    max_connections: int | None = None,
    graceful_timeout: float = 5.0,
) -> AsyncIterator[ControlServer]:
    """Serve the control plane of *registry* for the duration of the block.

    The server runs in this task's nursery (so inside the registry's block when opened
    there). No connection can end it: an error in one connection is logged and closes
    that connection only. Leaving the block ends open event streams, lets requests in
    flight finish for up to *graceful_timeout* seconds, and closes every socket.

    Args:
      registry: the registry to serve.
      host: the address to bind; a non-loopback address needs a *token*.
      port: the port to bind; 0 picks a free one (see :attr:`ControlServer.port`).
      token: the bearer token every request must carry (see :func:`create_app`).
      max_body_bytes: request bodies larger than this are refused with 413.
      request_timeout: seconds a request's body may take to arrive once its head has
        (else 408). The head itself must arrive within 5 s of connecting.
      max_connections: open connections allowed at once (default:
        :func:`default_max_connections`). A connection past it sheds the one idle the
        longest (not in the middle of a request); when every connection is busy, the new
        one is answered 503 and closed.
      graceful_timeout: seconds requests in flight get to finish at exit.

    Yields:
      The running :class:`ControlServer`.

    Raises:
      ValueError: a non-loopback *host* without a token, a bad port, token or limit.
      TypeError: an argument of the wrong type.
      OSError: the address could not be bound (in use, not local, no permission).
    """
    if not isinstance(host, str) or not host:
        raise TypeError(f"host: expected a non-empty str, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port: expected an integer, got {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port: must be 0..65535, got {port}")
    if check_token(token) is None and not is_loopback(host):
        raise ValueError(
            f"host: refusing to serve on {host!r}, which is not a loopback address, without"
            " a token; pass token=... (and use TLS in front of it) or bind to 127.0.0.1"
        )
    grace = seconds(graceful_timeout, "graceful_timeout")
    if grace >= 3600:
        raise ValueError(f"graceful_timeout: must be < 3600, got {graceful_timeout!r}")
    if max_connections is None:
        max_connections = default_max_connections()
    count(max_connections, "max_connections")
    app = create_app(
        registry, token=token, max_body_bytes=max_body_bytes, request_timeout=request_timeout
    )
    config = Config()
    config.accesslog = None
    config.errorlog = logger
    config.keep_alive_timeout = HEAD_TIMEOUT
    connections = _Connections(max_connections)
    shutdown = trio.Event()
    try:
        # Bound here, so a bind failure is a plain OSError naming the address.
        sock = _bind(host, port)
        with unwrap_single_exception():
            async with trio.open_nursery() as nursery:
                try:
                    bound_port: int = await nursery.start(
                        _serve,
                        _Tracked(app, connections),
                        config,
                        sock,
                        connections,
                        shutdown,
                        grace,
                    )
                except BaseException:
                    sock.close()  # cancelled before the server took it: idempotent after
                    raise
                try:
                    yield ControlServer(
                        host=host,
                        port=bound_port,
                        url=f"http://{_url_host(host)}:{bound_port}",
                        app=app,
                        token_required=token is not None,
                        max_connections=max_connections,
                    )
                finally:
                    # End the event streams first, or the graceful shutdown waits for them.
                    app.state.close()
                    shutdown.set()
    finally:
        app.state.close()  # idempotent; here for a failure before the server started


def _url_host(host: str) -> str:
    address = host.strip("[]")
    return f"[{address}]" if ":" in address else address


async def _serve(
    app: ASGIApp,
    config: Config,
    sock: socket.socket,
    connections: _Connections,
    shutdown: trio.Event,
    graceful_timeout: float,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept connections on *sock* until *shutdown*, each in its own guarded task."""
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
    context = WorkerContext(None)
    sock.listen(config.backlog)
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    async with trio.open_nursery() as handlers:
        async with trio.open_nursery() as acceptor:
            handler = _Handler(wrapped, config, context, connections)
            acceptor.start_soon(
                partial(trio.serve_listeners, handler, [listener], handler_nursery=handlers)
            )
            task_status.started(sock.getsockname()[1])
            await shutdown.wait()
            acceptor.cancel_scope.cancel()
        await listener.aclose()
        await context.terminated.set()  # idle keep-alive connections close at once
        handlers.cancel_scope.deadline = trio.current_time() + graceful_timeout


@attrs.define(eq=False)
class _Connection:
    """One open connection, as the cap sees it."""

    scope: trio.CancelScope
    client: tuple[str, int] | None
    #: Requests of this connection the app is handling now; 0: idle.
    busy: int = 0
    #: Order in which connections became idle (a counter, not a clock: ties are broken).
    idle_since: int = 0


class _Connections:
    """The open connections, capped: admitting one past the cap sheds the connection
    idle the longest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[_Connection, None] = {}
        self.by_client: dict[tuple[str, int], _Connection] = {}
        self._ticks = itertools.count()
        #: Connections shed so far (for tests and logs).
        self.shed = 0

    def admit(self, client: tuple[str, int] | None) -> _Connection | None:
        """Make room for a new connection from *client* and return it, or ``None`` when
        every open connection is in the middle of a request."""
        if len(self.open) >= self.limit:
            idle = [c for c in self.open if not c.busy]
            if not idle:
                return None
            victim = min(idle, key=lambda c: c.idle_since)
            victim.scope.cancel()
            self.release(victim)
            self.shed += 1
        connection = _Connection(trio.CancelScope(), client, idle_since=next(self._ticks))
        self.open[connection] = None
        if client is not None:
            self.by_client[client] = connection
        return connection

    def release(self, connection: _Connection) -> None:
        """Forget *connection* (idempotent)."""
        self.open.pop(connection, None)
        if connection.client is not None and self.by_client.get(connection.client) is connection:
            del self.by_client[connection.client]

    def enter(self, client: object) -> _Connection | None:
        """Mark the connection of *client* busy with one more request."""
        connection = self.by_client.get(client) if isinstance(client, tuple) else None
        if connection is not None:
            connection.busy += 1
        return connection

    def leave(self, connection: _Connection) -> None:
        """Mark one request of *connection* finished."""
        connection.busy -= 1
        if not connection.busy:
            connection.idle_since = next(self._ticks)


class _Tracked:
    """The app, telling the connection table which connections are mid-request."""

    def __init__(self, app: ASGIApp, connections: _Connections) -> None:
        self.app = app
        self.connections = connections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = self.connections.enter(scope.get("client"))
        try:
            await self.app(scope, receive, send)
        finally:
            if connection is not None:
                self.connections.leave(connection)


#: What a connection refused for want of room is told before it is closed.
_BUSY_BODY = (
    b'{"status": 503, "error": "Service Unavailable",'
    b' "message": "every connection is busy; try again"}'
)
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nRetry-After: 1\r\n"
    + f"Content-Length: {len(_BUSY_BODY)}\r\n\r\n".encode()
    + _BUSY_BODY
)


class _Handler:
    """Serve one accepted connection: admitted under the cap, isolated from the rest."""

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        context: WorkerContext,
        connections: _Connections,
    ) -> None:
        self.app = app
        self.config = config
        self.context = context
        self.connections = connections

    async def __call__(self, stream: trio.SocketStream) -> None:
        try:
            client = parse_socket_addr(stream.socket.family, stream.socket.getpeername())
        except OSError:  # gone before we looked
            await stream.aclose()
            return
        connection = self.connections.admit(client)
        try:
            if connection is None:
                with trio.move_on_after(1.0):
                    await stream.send_all(_BUSY)
                return
            with connection.scope:
                await _HTTP11Connection(self.app, self.config, self.context, {}, stream)  # type: ignore[arg-type]
        except Exception:
            # One connection's failure is that connection's alone: it never reaches the
            # server's nursery, the registry, or the other clients.
            logger.warning("connection from %s ended by an error", client, exc_info=True)
        finally:
            if connection is not None:
                self.connections.release(connection)
            await stream.aclose()


class _HTTP11Connection(TCPServer):
    """hypercorn's connection, speaking HTTP/1.1 only (see :class:`_HTTP11Only`)."""

    async def run(self) -> None:
        # hypercorn's TCPServer.run for a plain (non-TLS) socket, with our protocol.
        sock = self.stream.socket
        try:
            client = parse_socket_addr(sock.family, sock.getpeername())
            server = parse_socket_addr(sock.family, sock.getsockname())
            async with TaskGroup() as task_group:
                self._task_group = task_group
                self.protocol = _HTTP11Only(
                    self.app,
                    self.config,
                    self.context,
                    task_group,
                    ConnectionState(self.state.copy()),
                    False,
                    client,
                    server,
                    self.protocol_send,
                )
                await self.protocol.initiate()
                await self.idle_task.restart(self._task_group, self._idle_timeout)
                await self._read_data()
        except OSError:
            pass
        finally:
            await self._close()


#: A SETTINGS frame (empty) and a GOAWAY frame with error HTTP_1_1_REQUIRED (RFC 9113
#: 7: "the endpoint requires that HTTP/1.1 be used instead of HTTP/2").
_GOAWAY_DEBUG = b"use HTTP/1.1"
_REFUSE_HTTP2 = (
    b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    + (8 + len(_GOAWAY_DEBUG)).to_bytes(3, "big")
    + b"\x07\x00\x00\x00\x00\x00"
    + (0).to_bytes(4, "big")
    + (0xD).to_bytes(4, "big")
    + _GOAWAY_DEBUG
)


class _HTTP2Refused(Exception):
    """The client opened with the HTTP/2 connection preface."""


class _H11(H11Protocol):
    """hypercorn's HTTP/1.1 protocol, refusing to switch to HTTP/2.

    A request with ``Upgrade: h2c`` is answered in HTTP/1.1, which the upgrade mechanism
    allows (a server may ignore ``Upgrade``); a connection that opens with the HTTP/2
    preface ("prior knowledge") is told HTTP_1_1_REQUIRED and closed.
    """

    async def _check_protocol(self, event: h11.Request) -> None:
        if event.method == b"PRI" and event.target == b"*" and event.http_version == b"2.0":
            raise _HTTP2Refused


class _HTTP11Only(ProtocolWrapper):
    """hypercorn's protocol wrapper with HTTP/1.1 as the only protocol."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.protocol = _H11(*args)  # type: ignore[arg-type]

    async def handle(self, event: object) -> None:
        try:
            await self.protocol.handle(event)  # type: ignore[arg-type]
        except _HTTP2Refused:
            await self.send(RawData(data=_REFUSE_HTTP2))
            await self.send(Closed())


def _bind(host: str, port: int) -> socket.socket:
    """Bind a TCP socket to *host*:*port* (the server listens on it from then on).

    Raises:
      OSError: the address could not be bound (the socket is closed).
    """
    address = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"could not bind {host}:{port}: {exc.strerror}") from None
    return sock
