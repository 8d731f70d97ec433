"""The fleet store on Redis or Valkey (>= 6), through coredis (extra ``redis``).

Every update is one Lua script (``_lua.py``) on the server's clock, which publishes the
verdict it makes on the fleet's channel; full reads go through a script too. The link
connects lazily inside the trio run (a :class:`RedisFleet` can be made outside one), keeps
its connection pool in a system task (coredis pools are task-group scoped), reconnects on
the next operation after the server comes back, and turns every store error into
:class:`FleetUnavailable`.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

import trio

from ._lua import CLAIM, READ, REPORT
from ._memory import DISABLED_TTL, VERDICT_LINGER
from ._protocol import (
    Claim,
    FleetSettings,
    FleetUnavailable,
    Report,
    Snapshot,
    Verdict,
    VerdictKind,
)

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    import coredis
    from coredis.commands.script import Script

__all__ = ["INSTALL_HINT", "RedisFleet"]

INSTALL_HINT = "RedisFleet needs coredis: pip install 'ciris-actors[redis]'"

_SCHEMES = ("redis", "rediss")


def _require_coredis() -> None:
    try:
        import coredis  # noqa: F401
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error


def _default_node() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


def _check_url(url: object) -> SplitResult:
    """*url* parsed, or an error naming what is wrong (never quoting the URL: it may hold
    a password)."""
    if not isinstance(url, str):
        raise TypeError(f"url: expected a string, got {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(
            f"url: expected a redis:// or rediss:// URL, got the scheme {parts.scheme!r}"
        )
    if not parts.hostname:
        raise ValueError("url: no host (expected redis://[:password@]host[:port][/db])")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise ValueError("url: the port must be a number from 0 to 65535") from None
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise ValueError("url: the database (the path) must be a number, as in /0")
    return parts


def _safe_url(parts: SplitResult) -> str:
    """*parts* with the password masked, for reprs and messages."""
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    if parts.username or parts.password:
        user = parts.username or ""
        netloc = f"{user}:***@{netloc}" if parts.password else f"{user}@{netloc}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def _check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str):
        raise TypeError(f"namespace: expected a string, got {type(namespace).__name__}")
    if not namespace or any(c in namespace for c in "{}") or not namespace.isprintable():
        raise ValueError(
            f"namespace: expected a non-empty printable string without braces, got {namespace!r}"
        )
    if any(c.isspace() for c in namespace):
        raise ValueError(f"namespace: must not contain spaces, got {namespace!r}")
    return namespace


def _describe(error: BaseException) -> str:
    """One line about a store error (the first of a group), with no password in it:
    coredis's messages name the host and port, never the credentials."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        causes = [e for e in error.exceptions if not isinstance(e, trio.Cancelled)]
        error = (causes or error.exceptions)[0]
    name = type(error).__name__
    if name.startswith("Authentication") or name.startswith("Authorization"):
        return f"authentication failed ({name}: {error})"
    text = str(error)
    return f"{name}: {text}" if text else name


def _verdict(raw: str) -> Verdict:
    """A verdict from the JSON a script made."""
    data = json.loads(raw)
    kind = VerdictKind(data["kind"])
    until = math.inf if data["disabled"] else float(data["until"])
    return Verdict(
        provider=str(data["provider"]),
        epoch=int(data["epoch"]),
        kind=kind,
        until=until,
        reason=str(data["reason"]),
        node=str(data["node"]),
        at=float(data["at"]),
    )


def _number(value: float) -> str:
    return repr(float(value))


class _Owner:
    """The task that keeps a coredis client's connection pool open (a system task: the
    link has no nursery of its own, and the pool must be entered and left by one task)."""

    def __init__(self, client: coredis.Redis[str]) -> None:
        self.client = client
        self.scripts: dict[str, Script[str]] = {
            "report": client.register_script(REPORT),
            "claim": client.register_script(CLAIM),
            "read": client.register_script(READ),
        }
        self.ready = trio.Event()
        self.stop = trio.Event()
        self.done = trio.Event()
        self.error: BaseException | None = None
        self.root = trio.lowlevel.current_root_task()

    @property
    def alive(self) -> bool:
        return self.error is None and not self.done.is_set()

    async def run(self) -> None:
        try:
            async with self.client:
                self.ready.set()
                await self.stop.wait()
        except Exception as error:  # a system task must not raise: the next call retries
            self.error = error
        finally:
            self.ready.set()
            self.done.set()


class RedisFleet:
    """One node's link to a fleet store on Redis or Valkey (>= 6).

    Args:
      url: ``redis://[[user]:password@]host[:port][/db]``, or ``rediss://`` for TLS
        (coredis's ``ssl_*`` query options apply).
      node: this node's id, unique in the fleet (default: host name, process id and a
        random part).
      namespace: the fleet's name; its keys are ``{namespace}:...`` (one cluster slot)
        and its channel ``{namespace}:verdicts``. Fleets with different namespaces share
        nothing.
      quorum, quorum_window, timeout, sync_interval, retry_backoff, max_backoff: see
        :class:`~ciris_actors.fleet.FleetSettings` (every node of a fleet should use the
        same quorum and window: the reporting node's apply).

    Raises:
      ImportError: coredis is not installed (``pip install 'ciris-actors[redis]'``).
      TypeError, ValueError: a bad argument (the message names it, and never holds the
        password).
    """

    def __init__(
        self,
        url: str,
        node: str | None = None,
        namespace: str = "ciris",
        quorum: int = 1,
        quorum_window: float = 60.0,
        *,
        timeout: float = 0.25,
        sync_interval: float = 0.5,
        retry_backoff: float = 0.1,
        max_backoff: float = 2.0,
    ) -> None:
        parts = _check_url(url)
        if node is None:
            node = _default_node()
        elif not isinstance(node, str):
            raise TypeError(f"node: expected a string, got {type(node).__name__}")
        elif not node.strip():
            raise ValueError("node: must not be empty")
        self._settings = FleetSettings(
            quorum=quorum,
            quorum_window=quorum_window,
            timeout=timeout,
            sync_interval=sync_interval,
            retry_backoff=retry_backoff,
            max_backoff=max_backoff,
        )
        self._namespace = _check_namespace(namespace)
        _require_coredis()
        self._url = url
        self._where = _safe_url(parts)
        self._node_id = node
        self._prefix = "{" + namespace + "}"
        self._channel = f"{self._prefix}:verdicts"
        self._owner: _Owner | None = None
        # store clock = local monotonic clock + offset, estimated from each reply's TIME
        # at the midpoint of its round trip (the tightest round trip of late wins).
        self._offset = time.time() - time.monotonic()
        self._best_rtt = math.inf

    def __repr__(self) -> str:
        return f"<RedisFleet node={self._node_id!r} {self._where} namespace={self._namespace!r}>"

    @property
    def node_id(self) -> str:
        """This node's id."""
        return self._node_id

    @property
    def settings(self) -> FleetSettings:
        """Quorum, timeouts and intervals."""
        return self._settings

    @property
    def namespace(self) -> str:
        """The fleet's namespace."""
        return self._namespace

    def keys(self, provider: str) -> tuple[str, str, str, str]:
        """The keys of *provider*'s verdict, votes, probe claim and epoch."""
        p = self._prefix
        return (f"{p}:v:{provider}", f"{p}:votes:{provider}", f"{p}:probe:{provider}",
                f"{p}:epoch:{provider}")  # fmt: skip

    @property
    def index_key(self) -> str:
        """The key of the fleet's index of verdicts."""
        return f"{self._prefix}:index"

    @property
    def channel(self) -> str:
        """The channel verdicts are published on."""
        return self._channel

    def store_time(self) -> float:
        """The server's clock now, as estimated from the last replies (no I/O)."""
        return time.monotonic() + self._offset

    # -- connections ------------------------------------------------------------------

    def _client(self) -> coredis.Redis[str]:
        import coredis
        from coredis.retry import NoRetryPolicy

        return coredis.Redis.from_url(
            self._url,
            decode_components=True,
            decode_responses=True,
            connect_timeout=self._settings.timeout,
            retry_policy=NoRetryPolicy(),
        )

    async def _connected(self) -> _Owner:
        """The live client, connected lazily (and again after it failed)."""
        owner = self._owner
        if owner is None or not owner.alive or owner.root is not trio.lowlevel.current_root_task():
            if owner is not None:
                owner.stop.set()
            try:
                owner = _Owner(self._client())
            except Exception as error:
                raise FleetUnavailable(f"redis at {self._where}: {_describe(error)}") from error
            self._owner = owner
            trio.lowlevel.spawn_system_task(owner.run, name=f"RedisFleet {self._node_id}")
        await owner.ready.wait()
        if owner.error is not None:
            raise FleetUnavailable(f"redis at {self._where}: {_describe(owner.error)}")
        return owner

    async def _run(self, script: str, keys: Sequence[str], args: Sequence[str]) -> list[str]:
        """Run one of the scripts; its reply, whose first item is the server's clock."""
        timeout = self._settings.timeout
        try:
            with trio.fail_after(timeout):
                owner = await self._connected()
                sent = time.monotonic()
                reply: object = await owner.scripts[script](keys=keys, args=args)
                received = time.monotonic()
        except FleetUnavailable:
            raise
        except trio.TooSlowError:
            raise FleetUnavailable(
                f"redis at {self._where} did not answer within {timeout:g} s"
            ) from None
        except Exception as error:
            raise FleetUnavailable(f"redis at {self._where}: {_describe(error)}") from error
        if not isinstance(reply, list) or not reply:
            raise FleetUnavailable(f"redis at {self._where}: a malformed reply {reply!r}")
        items = [str(item) for item in reply]
        self._clock(float(items[0]), sent, received)
        return items

    def _clock(self, server: float, sent: float, received: float) -> None:
        rtt = received - sent
        # A slow reply says little about the offset; the best round trip decays so that
        # the estimate keeps following a drifting clock.
        self._best_rtt = min(self._best_rtt * 1.05 + 1e-4, self._best_rtt + 0.01)
        if rtt <= self._best_rtt * 2 or rtt < 0.005:
            self._best_rtt = min(self._best_rtt, rtt)
            self._offset = server - (sent + received) / 2

    # -- the protocol -----------------------------------------------------------------

    async def report(self, report: Report) -> Verdict | None:
        """See :meth:`FleetLink.report`."""
        if not isinstance(report, Report):
            raise TypeError(f"report: expected a Report, got {type(report).__name__}")
        settings = self._settings
        duration = 0.0 if report.kind is VerdictKind.DISABLED else report.duration
        reply = await self._run(
            "report",
            (*self.keys(report.provider), self.index_key),
            (
                report.provider,
                report.kind.value,
                _number(duration),
                report.reason,
                str(report.epoch),
                self._node_id,
                str(settings.quorum),
                _number(settings.quorum_window),
                _number(VERDICT_LINGER),
                _number(DISABLED_TTL),
                self._channel,
            ),
        )
        return _verdict(reply[1]) if len(reply) > 1 and reply[1] else None

    async def claim_probe(self, provider: str, epoch: int, ttl: float) -> Claim:
        """See :meth:`FleetLink.claim_probe`."""
        if not isinstance(provider, str) or not provider:
            raise ValueError(f"provider: expected a non-empty string, got {provider!r}")
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise TypeError(f"epoch: expected an int, got {type(epoch).__name__}")
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
            raise TypeError(f"ttl: expected a number, got {type(ttl).__name__}")
        if not math.isfinite(ttl) or ttl <= 0:
            raise ValueError(f"ttl: must be a finite number > 0, got {ttl!r}")
        verdict, _, probe, epoch_key = self.keys(provider)
        reply = await self._run(
            "claim",
            (verdict, probe, self.index_key, epoch_key),
            (str(epoch), self._node_id, _number(ttl), _number(VERDICT_LINGER), provider),
        )
        won, holder, remaining = reply[1] == "1", reply[2] or None, float(reply[3])
        return Claim(won=won, holder=holder, remaining=remaining)

    async def read(self) -> Snapshot:
        """See :meth:`FleetLink.read`."""
        reply = await self._run("read", (self.index_key,), (f"{self._prefix}:v:",))
        verdicts = []
        for raw in reply[1:]:
            try:
                verdicts.append(_verdict(raw))
            except (ValueError, KeyError, TypeError):
                continue  # a key of the namespace someone else wrote: not a verdict
        return Snapshot(now=float(reply[0]), verdicts=tuple(verdicts))

    def subscribe(self) -> AbstractAsyncContextManager[AsyncIterator[Verdict]]:
        """See :meth:`FleetLink.subscribe`."""
        return self._subscribe()

    @asynccontextmanager
    async def _subscribe(self) -> AsyncIterator[AsyncIterator[Verdict]]:
        from coredis.retry import NoRetryPolicy

        timeout = self._settings.timeout
        with trio.fail_after(timeout):
            owner = await self._connected()
        # No retry policy: coredis would resubscribe by itself, hiding the outage (and
        # the pushes lost during it) from the fleet actor.
        pubsub = owner.client.pubsub(
            channels=[self._channel],
            ignore_subscribe_messages=True,
            retry_policy=NoRetryPolicy(),
            subscription_timeout=timeout,
            max_idle_seconds=max(1.0, self._settings.sync_interval),
        )
        entered = False
        body_error: BaseException | None = None
        try:
            async with pubsub:
                entered = True
                try:
                    yield self._pushes(pubsub)
                except BaseException as error:
                    body_error = error
                    raise
        except BaseException as error:
            if body_error is not None and not isinstance(body_error, trio.Cancelled):
                raise body_error from None  # the caller's own error, not the store's
            if isinstance(error, trio.Cancelled):
                raise
            if isinstance(error, BaseExceptionGroup):
                _, rest = error.split(trio.Cancelled)
                if rest is None:
                    raise  # only cancellations: from outside
            stage = "pushes" if entered else "subscribe"
            raise FleetUnavailable(
                f"redis at {self._where} ({stage}): {_describe(error)}"
            ) from error

    async def _pushes(self, pubsub: Any) -> AsyncIterator[Verdict]:
        async for message in pubsub:
            if message.get("type") != "message":
                continue
            try:
                verdict = _verdict(str(message["data"]))
            except (ValueError, KeyError, TypeError):
                continue  # not a verdict of ours: the next read is the backstop
            yield verdict
        raise FleetUnavailable(f"redis at {self._where}: the subscription ended")

    async def aclose(self) -> None:
        """Close the connections (the link connects again if used afterwards)."""
        owner, self._owner = self._owner, None
        if owner is None:
            await trio.lowlevel.checkpoint()
            return
        owner.stop.set()
        if owner.root is trio.lowlevel.current_root_task():
            await owner.done.wait()
        else:
            await trio.lowlevel.checkpoint()
