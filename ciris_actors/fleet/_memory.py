"""An in-process fleet store with the semantics of the Redis one, on trio's clock.

For tests and simulations: every node of a :class:`MemoryFleet` lives in one trio run,
its clock is the run's clock (virtual time works), and one node's link, or the whole
store, can be cut and restored.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import attrs
import trio

from ._protocol import (
    IMMEDIATE,
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

__all__ = ["DISABLED_TTL", "VERDICT_LINGER", "MemoryFleet", "MemoryFleetNode"]

#: Seconds a verdict's key outlives its deadline, so the fleet can agree on one probe
#: (and a joiner learns the provider is due one); after that it expires by itself.
VERDICT_LINGER = 300.0
#: Seconds a disable's key lives without being reported again.
DISABLED_TTL = 86_400.0


@attrs.define
class _Provider:
    """What the store holds about one provider."""

    verdict: Verdict | None = None
    expires: float = 0.0  # of the verdict's key
    votes: dict[str, float] = attrs.field(factory=dict)  # node -> time of its open
    probe: tuple[str, float] | None = None  # holder, expiry
    epoch: int = 0  # the last epoch handed out (kept while the provider has state)


class MemoryFleet:
    """An in-process fleet store: ``hub.node(node_id)`` is one node's link.

    Args:
      quorum: distinct nodes whose ordinary opens within *quorum_window* make an open
        fleet-wide.
      quorum_window: seconds a node's open counts toward the quorum.
      timeout, sync_interval, retry_backoff, max_backoff: see :class:`FleetSettings`.
      latency: seconds every operation takes (virtual time in simulations), 0 by default.

    Raises:
      TypeError, ValueError: a bad argument.
    """

    def __init__(
        self,
        quorum: int = 1,
        quorum_window: float = 60.0,
        *,
        timeout: float = 0.25,
        sync_interval: float = 0.5,
        retry_backoff: float = 0.1,
        max_backoff: float = 2.0,
        latency: float = 0.0,
    ) -> None:
        self.settings = FleetSettings(
            quorum=quorum,
            quorum_window=quorum_window,
            timeout=timeout,
            sync_interval=sync_interval,
            retry_backoff=retry_backoff,
            max_backoff=max_backoff,
        )
        if isinstance(latency, bool) or not isinstance(latency, (int, float)):
            raise TypeError(f"latency: expected a number, got {type(latency).__name__}")
        if not math.isfinite(latency) or latency < 0:
            raise ValueError(f"latency: must be a finite number >= 0, got {latency!r}")
        self.latency = float(latency)
        self._providers: dict[str, _Provider] = {}
        self._nodes: dict[str, MemoryFleetNode] = {}
        self._cut: set[str] = set()
        self._down = False
        #: The last epoch handed out for any provider: epochs stay increasing across a
        #: take_down() even at one instant of a virtual clock.
        self._last_epoch = 0
        self._subscribers: dict[str, list[trio.MemorySendChannel[Verdict]]] = {}

    # -- nodes and faults ---------------------------------------------------------------

    def node(self, node_id: str) -> MemoryFleetNode:
        """The link of node *node_id* (the same object each time for one id).

        Raises:
          TypeError, ValueError: *node_id* is not a non-empty string.
        """
        if not isinstance(node_id, str):
            raise TypeError(f"node_id: expected a string, got {type(node_id).__name__}")
        if not node_id.strip():
            raise ValueError("node_id: must not be empty")
        node = self._nodes.get(node_id)
        if node is None:
            node = self._nodes[node_id] = MemoryFleetNode(self, node_id)
        return node

    @property
    def nodes(self) -> tuple[str, ...]:
        """The ids of the nodes made so far."""
        return tuple(self._nodes)

    def partition(self, node_id: str) -> None:
        """Cut node *node_id*'s link: its operations fail, its pushes stop."""
        self._cut.add(node_id)
        self._break(self._subscribers.pop(node_id, []))

    def heal(self, node_id: str) -> None:
        """Restore node *node_id*'s link."""
        self._cut.discard(node_id)

    def take_down(self) -> None:
        """Stop the whole store and lose what it held, as a Redis restarted without
        persistence does: every operation fails until :meth:`bring_up`."""
        self._down = True
        self._providers.clear()
        for channels in self._subscribers.values():
            self._break(channels)
        self._subscribers.clear()

    def bring_up(self) -> None:
        """Start the store again (empty)."""
        self._down = False

    @property
    def down(self) -> bool:
        """Whether the store is down (:meth:`take_down`)."""
        return self._down

    def is_cut(self, node_id: str) -> bool:
        """Whether node *node_id* cannot reach the store (partitioned, or the store down)."""
        return self._down or node_id in self._cut

    @staticmethod
    def _break(channels: list[trio.MemorySendChannel[Verdict]]) -> None:
        for channel in channels:
            channel.close()

    # -- the store's operations (one node's view) ----------------------------------------

    async def _enter(self, node_id: str) -> float:
        """Wait out the latency, fail if *node_id* is cut off, and return the store's now."""
        if self.latency:
            await trio.sleep(self.latency)
        else:
            await trio.lowlevel.checkpoint()
        if self._down:
            raise FleetUnavailable("the fleet store is down")
        if node_id in self._cut:
            raise FleetUnavailable(f"node {node_id!r} is cut off from the fleet store")
        return trio.current_time()

    def _state(self, provider: str, now: float) -> _Provider:
        state = self._providers.get(provider)
        if state is None:
            state = self._providers[provider] = _Provider()
        elif state.verdict is not None and now >= state.expires:
            state.verdict = None  # the key expired by itself
        return state

    def _publish(
        self, state: _Provider, node_id: str, report: Report, until: float, now: float
    ) -> Verdict:
        state.epoch = max(state.epoch + 1, self._last_epoch + 1, math.floor(now * 1e6))
        self._last_epoch = state.epoch
        verdict = Verdict(
            provider=report.provider,
            epoch=state.epoch,
            kind=report.kind,
            until=until,
            reason=report.reason,
            node=node_id,
            at=now,
        )
        state.verdict = verdict
        if verdict.opens:
            state.expires = now + DISABLED_TTL if until == math.inf else until + VERDICT_LINGER
        else:
            # A close is kept (and read) as long as a verdict lingers, so that a node that
            # missed its push learns of it, and a late report cannot undo it.
            state.expires = now + VERDICT_LINGER
        state.probe = None
        for channels in self._subscribers.values():
            for channel in channels:
                channel.send_nowait(verdict)
        return verdict

    async def _report(self, node_id: str, report: Report) -> Verdict | None:
        now = await self._enter(node_id)
        state = self._state(report.provider, now)
        current = state.verdict
        if current is not None and not current.opens:
            current = None  # a close: no verdict in force
        kind = report.kind
        if kind is VerdictKind.RESET:
            if current is not None and current.epoch > report.epoch and current.node != node_id:
                return current  # another node's verdict its node had not seen: stale
            state.votes.clear()
            self._publish(state, node_id, report, 0.0, now)
            return None
        if kind is VerdictKind.CLOSED:
            if current is not None and current.epoch != report.epoch:
                return current  # a newer verdict came meanwhile: this close is stale
            state.votes.clear()
            if current is not None:
                self._publish(state, node_id, report, 0.0, now)
            state.probe = None
            return None
        if kind is VerdictKind.PROBE_FAILED and (current is None or current.epoch != report.epoch):
            # The verdict the probe was for is gone (closed, reset, expired) or replaced:
            # the failure is one node's ordinary open, a vote like any other.
            kind = VerdictKind.FAILURE
            report = attrs.evolve(report, kind=kind)
        if kind is VerdictKind.FAILURE:
            window = self.settings.quorum_window
            state.votes = {n: t for n, t in state.votes.items() if t > now - window}
            state.votes[node_id] = now
            if len(state.votes) < self.settings.quorum:
                return current
        else:
            assert kind in IMMEDIATE
        if current is not None and current.kind is VerdictKind.DISABLED:
            if kind is VerdictKind.DISABLED:
                state.expires = now + DISABLED_TTL  # reported again: it lives on
            return current  # nothing outlasts a disable
        until = math.inf if kind is VerdictKind.DISABLED else now + report.duration
        if current is not None and current.until >= until:
            return current  # deadlines are only ever extended
        return self._publish(state, node_id, report, until, now)

    async def _claim(self, node_id: str, provider: str, epoch: int, ttl: float) -> Claim:
        now = await self._enter(node_id)
        state = self._state(provider, now)
        current = state.verdict
        if current is None or not current.opens or current.epoch != epoch:
            return Claim(won=False, holder=None, remaining=0.0)
        if current.until > now:
            return Claim(won=False, holder=None, remaining=current.until - now)
        if state.probe is not None and state.probe[1] > now and state.probe[0] != node_id:
            holder, expiry = state.probe
            return Claim(won=False, holder=holder, remaining=expiry - now)
        state.probe = (node_id, now + ttl)
        # The verdict stays in force until the probe's result: it lives while claimed.
        state.expires = max(state.expires, now + ttl + VERDICT_LINGER)
        return Claim(won=True, holder=node_id, remaining=ttl)

    async def _read(self, node_id: str) -> Snapshot:
        now = await self._enter(node_id)
        verdicts = []
        window = self.settings.quorum_window
        for provider in list(self._providers):
            state = self._state(provider, now)
            if state.verdict is not None:
                verdicts.append(state.verdict)
            elif (state.probe is None or state.probe[1] <= now) and not any(
                t > now - window for t in state.votes.values()
            ):
                del self._providers[provider]  # every key of it expired, as in Redis
        return Snapshot(now=now, verdicts=tuple(verdicts))

    @asynccontextmanager
    async def _subscribe(self, node_id: str) -> AsyncIterator[AsyncIterator[Verdict]]:
        await self._enter(node_id)
        send, receive = trio.open_memory_channel[Verdict](math.inf)
        channels = self._subscribers.setdefault(node_id, [])
        channels.append(send)
        try:
            yield _pushes(receive, self, node_id)
        finally:
            if send in self._subscribers.get(node_id, ()):
                self._subscribers[node_id].remove(send)
            send.close()
            receive.close()


async def _pushes(
    receive: trio.MemoryReceiveChannel[Verdict], hub: MemoryFleet, node_id: str
) -> AsyncIterator[Verdict]:
    async for verdict in receive:
        yield verdict
    raise FleetUnavailable(
        "the fleet store is down" if hub.down else f"node {node_id!r} was cut off"
    )


class MemoryFleetNode:
    """One node's link to a :class:`MemoryFleet` (made by :meth:`MemoryFleet.node`)."""

    def __init__(self, hub: MemoryFleet, node_id: str) -> None:
        self.hub = hub
        self._node_id = node_id

    def __repr__(self) -> str:
        return f"<MemoryFleetNode {self._node_id!r}>"

    @property
    def node_id(self) -> str:
        """This node's id."""
        return self._node_id

    @property
    def settings(self) -> FleetSettings:
        """The hub's settings."""
        return self.hub.settings

    def store_time(self) -> float:
        """The store's clock: trio's."""
        return trio.current_time()

    async def report(self, report: Report) -> Verdict | None:
        """See :meth:`FleetLink.report`."""
        if not isinstance(report, Report):
            raise TypeError(f"report: expected a Report, got {type(report).__name__}")
        return await self.hub._report(self._node_id, report)

    async def claim_probe(self, provider: str, epoch: int, ttl: float) -> Claim:
        """See :meth:`FleetLink.claim_probe`."""
        return await self.hub._claim(self._node_id, provider, epoch, ttl)

    async def read(self) -> Snapshot:
        """See :meth:`FleetLink.read`."""
        return await self.hub._read(self._node_id)

    def subscribe(self) -> AbstractAsyncContextManager[AsyncIterator[Verdict]]:
        """See :meth:`FleetLink.subscribe`."""
        return self.hub._subscribe(self._node_id)

    async def aclose(self) -> None:
        """Nothing to release."""
        await trio.lowlevel.checkpoint()
