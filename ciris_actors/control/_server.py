"""``serve_control_api``: the control plane on hypercorn's trio worker."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import attrs
import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio import serve
from starlette.applications import Starlette

from .._nursery import unwrap_single_exception
from ..registry import Registry
from ._app import DEFAULT_MAX_BODY_BYTES, check_token, create_app, is_loopback

__all__ = ["ControlServer", "serve_control_api"]

#: hypercorn reports through this logger (its start-up line is at INFO).
logger = logging.getLogger("ciris_actors.control")


@attrs.frozen
class ControlServer:
    """A running control plane, from :func:`serve_control_api`.

    Attributes:
      host: the address it is bound to.
      port: the port it is bound to (the one picked, if 0 was asked for).
      url: its base URL, e.g. ``http://127.0.0.1:8080``.
      app: the ASGI app it serves.
      token_required: whether every request needs the bearer token.
    """

    host: str
    port: int
    url: str
    app: Starlette
    token_required: bool


@asynccontextmanager
async def serve_control_api(
    registry: Registry,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    graceful_timeout: float = 5.0,
) -> AsyncIterator[ControlServer]:
    """Serve the control plane of *registry* for the duration of the block.

    The server runs in this task's nursery (so inside the registry's block when opened
    there). Leaving the block ends open event streams, lets requests in flight finish
    for up to *graceful_timeout* seconds, and closes the listening socket.

    Args:
      registry: the registry to serve.
      host: the address to bind; a non-loopback address needs a *token*.
      port: the port to bind; 0 picks a free one (see :attr:`ControlServer.port`).
      token: the bearer token every request must carry (see :func:`create_app`).
      max_body_bytes: request bodies larger than this are refused with 413.
      graceful_timeout: seconds requests in flight get to finish at exit.

    Yields:
      The running :class:`ControlServer`.

    Raises:
      ValueError: a non-loopback *host* without a token, a bad port or token.
      TypeError: an argument of the wrong type.
      OSError: the address could not be bound (in use, not local, no permission).
    """
    if not isinstance(host, str) or not host:
        raise TypeError(f"host: expected a non-empty str, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port: expected an int, got {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port: must be 0..65535, got {port}")
    if check_token(token) is None and not is_loopback(host):
        raise ValueError(
            f"host: refusing to serve on {host!r}, which is not a loopback address, without"
            " a token; pass token=... (and use TLS in front of it) or bind to 127.0.0.1"
        )
    if (
        isinstance(graceful_timeout, bool)
        or not isinstance(graceful_timeout, (int, float))
        or not 0 < graceful_timeout < 3600
    ):
        raise ValueError(f"graceful_timeout: must be 0 < seconds < 3600, got {graceful_timeout!r}")
    app = create_app(registry, token=token, max_body_bytes=max_body_bytes)
    config = _Config()
    config.accesslog = None
    config.errorlog = logger
    config.graceful_timeout = float(graceful_timeout)
    shutdown = trio.Event()
    try:
        # Bound here rather than by hypercorn, whose bind failure arrives wrapped in nested
        # exception groups and leaks the socket (a ResourceWarning when it is collected).
        fd = _bind(host, port)
        config.bind = [f"fd://{fd}"]
        with unwrap_single_exception():
            async with trio.open_nursery() as nursery:
                try:
                    binds: list[str] = await nursery.start(
                        partial(serve, app, config, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]
                    )
                except BaseException:
                    if not config.sockets_taken:  # cancelled before hypercorn took it
                        os.close(fd)
                    raise
                url = binds[0]
                bound_port = int(url.rsplit(":", 1)[1])
                try:
                    yield ControlServer(
                        host=host,
                        port=bound_port,
                        url=url,
                        app=app,
                        token_required=token is not None,
                    )
                finally:
                    # End the event streams first, or the graceful shutdown waits for them.
                    app.state.close()
                    shutdown.set()
    finally:
        app.state.close()  # idempotent; here for a failure before the server started


class _Config(Config):
    """hypercorn's configuration, noting when hypercorn takes over the bound socket."""

    sockets_taken = False

    def create_sockets(self) -> Sockets:
        self.sockets_taken = True
        return super().create_sockets()


def _bind(host: str, port: int) -> int:
    """Bind a TCP socket to *host*:*port* as hypercorn would, and return its descriptor
    (hypercorn owns it from then on).

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
    return sock.detach()
