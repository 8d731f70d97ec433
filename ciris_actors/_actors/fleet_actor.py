"""The fleet actor: shares this registry's verdicts about providers with other processes.

It runs beside the provider actors, in the registry's nursery, and is the only code that
talks to the fleet store. The rest of the registry talks to it synchronously and never
waits on it: breaker transitions and error classes are *offered* as reports (queued,
never dropped), and verdicts from the store are *applied* to the local breakers, which
keep admitting on their own. DESIGN.md section 7 is the contract; ``docs/fleet.md``
tells it for users.

Timing: a fleet verdict holds a local breaker OPEN until its deadline plus a grace of two
store timeouts. At the deadline this actor claims the fleet's one half-open probe: the
winner moves its breaker to HALF_OPEN at once, the others hold on until the claim ends or
the probe's result arrives. If the store cannot answer, the grace runs out and each local
breaker half-opens by itself, as it would without a fleet.
"""

from __future__ import annotations

import bisect
import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import attrs
import trio

from .._types import CircuitState
from ..events import FleetDegraded, FleetRestored, FleetVerdict
from ..fleet import _memory
from ..fleet._protocol import IMMEDIATE, FleetLink, Report, Snapshot, Verdict, VerdictKind
from ..fleet._status import LAG_BUCKETS, FleetStatus
from ..outcomes import ErrorClass, ErrorKind
from .messages import BreakerMessage

if TYPE_CHECKING:
    from .record import ProviderRecord
    from .supervisor import RegistrySupervisor

__all__ = ["FleetActor"]


#: The reason of a breaker's transition to OPEN made by ``force_open``.
_FORCED = "forced open"


def _describe(error: BaseException) -> str:
    """One line about what went wrong with the store (the first error of a group)."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    if isinstance(error, trio.TooSlowError):
        return "the fleet store did not answer in time"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _sane(verdict: object) -> bool:
    """Whether *verdict* can be applied: a store is another process, and a verdict with a
    NaN deadline or a bad epoch must not stop this node from applying the next ones."""
    if not isinstance(verdict, Verdict) or not isinstance(verdict.kind, VerdictKind):
        return False
    if not isinstance(verdict.provider, str) or isinstance(verdict.epoch, bool):
        return False
    if not isinstance(verdict.epoch, int):
        return False
    numbers = (verdict.until, verdict.at)
    if not all(isinstance(n, (int, float)) and not math.isnan(n) for n in numbers):
        return False
    if not math.isfinite(verdict.at):
        return False
    return (
        verdict.until == math.inf
        if verdict.kind is VerdictKind.DISABLED
        else (math.isfinite(verdict.until))
    )


@attrs.define
class _Pending:
    """A report waiting for the store."""

    report: Report
    #: Whether the next report about the same provider replaces it (a transition's
    #: guess, which an error class or a manual action made in the same step corrects).
    provisional: bool
    #: For an opening report, the registry time its deadline falls at: what is sent is
    #: what is left of it then (a report that waited out an outage is not replayed whole).
    deadline: float
    #: The store-clock time the decision was made (estimated, and capped by the store's
    #: clock once sent): a close made before it does not undo it.
    made: float
    #: The store-clock time it was last sent again to renew it (a disable's key).
    renewed: float = attrs.field()

    @renewed.default
    def _made(self) -> float:
        return self.made


class FleetActor:
    """One registry's link to its fleet: reports out, verdicts in, degraded mode."""

    def __init__(self, sup: RegistrySupervisor, link: FleetLink) -> None:
        self.sup = sup
        self.link = link
        self.settings = link.settings
        self.node = link.node_id
        #: Extra time a fleet verdict holds a breaker past its deadline, for this node to
        #: claim the probe; past it the local breaker half-opens by itself.
        self.grace = 2 * self.settings.timeout
        #: Reports waiting for the store, oldest first.
        self.outbox: list[_Pending] = []
        self._outbox_changed = trio.Event()
        #: The newest verdict seen for each provider (by epoch), and the registry time it
        #: was applied at.
        self.known: dict[str, Verdict] = {}
        self.applied_at: dict[str, float] = {}
        #: Provider -> registry time to claim its probe at.
        self.timers: dict[str, float] = {}
        self._timers_changed = trio.Event()
        #: Provider -> epoch of the verdict this node probes for the fleet, and of the
        #: verdict whose probe here failed (no second probe until a newer verdict).
        self.probing: dict[str, int] = {}
        self.probe_failed: dict[str, int] = {}
        #: The open reports this node made itself, re-published when the store comes back.
        self.mine: dict[str, _Pending] = {}
        #: Disables another node made that hold breakers here, and the registry time each
        #: was first found missing from the store (its maker may yet publish it again).
        self.foreign_disables: dict[str, Verdict] = {}
        self.vanished: dict[str, float] = {}
        #: How long a vanished disable is kept: long enough for every node to be back
        #: from a store restart (its back-off) and re-publish what it made.
        self.patience = (
            self.settings.max_backoff + self.settings.sync_interval + 2 * self.settings.timeout
        )
        #: Set while a verdict from the store is applied, so that what it does to a
        #: breaker is not reported back.
        self.applying = False
        #: Set once the first read of the store is done (or failed): ``wait_ready`` waits.
        self.synced = trio.Event()
        self.reachable = False
        self.degraded_since: float | None = None
        self.last_sync: float | None = None
        self.lag: float | None = None
        self.sent = 0
        self.received = 0
        self.outages = 0
        #: Verdicts from the store that could not be applied (a NaN deadline, say).
        self.malformed = 0
        self.lag_counts = [0] * len(LAG_BUCKETS)
        self.lag_sum = 0.0
        self.cancel_scope = trio.CancelScope()
        self.done = trio.Event()
        #: Set by :meth:`aclose`: reports are no longer taken.
        self.closed = False

    # -- what the registry tells it (synchronous, never waits) --------------------------

    def offer(
        self,
        report: Report,
        *,
        provisional: bool = False,
        made: float | None = None,
        renewed: float | None = None,
    ) -> None:
        """Queue *report* for the store.

        A waiting report of the same kind about the same provider is dropped: the newer
        one says all it said (deadlines only extend; a vote counts from its latest time),
        so the queue holds at most one report per provider and kind however long the
        store is away.
        """
        if self.closed:
            return  # the registry is closing: its last reports have been sent
        outbox = self.outbox
        if outbox and outbox[-1].provisional and outbox[-1].report.provider == report.provider:
            outbox.pop()
        name, kind = report.provider, report.kind
        if any(p.report.provider == name and p.report.kind is kind for p in outbox):
            outbox[:] = [
                p for p in outbox if p.report.provider != name or p.report.kind is not kind
            ]
        deadline = self.sup.now() + report.duration if kind.opens else 0.0
        if made is None:
            made = self.link.store_time()
        pending = _Pending(
            report, provisional, deadline, made, made if renewed is None else renewed
        )
        outbox.append(pending)
        if report.kind.opens:
            self.mine[report.provider] = pending
        else:
            self.mine.pop(report.provider, None)
        self._outbox_changed.set()

    def _seen(self, name: str) -> int:
        """The newest epoch this node has seen for provider *name* (0: none)."""
        known = self.known.get(name)
        return 0 if known is None else known.epoch

    def _open_for(self, record: ProviderRecord, now: float) -> float:
        deadline = record.breaker.next_attempt_time
        return math.inf if deadline is None else max(deadline - now, 1e-3)

    def transition(
        self,
        record: ProviderRecord,
        old: CircuitState,
        new: CircuitState,
        reason: str,
        now: float,
    ) -> None:
        """Report what a local breaker transition means for the fleet."""
        if self.applying or self.closed:
            return
        name = record.name
        known = self.known.get(name)
        if new is CircuitState.OPEN:
            span = self._open_for(record, now)
            epoch = self.probing.pop(name, None)
            if epoch is None and old is CircuitState.HALF_OPEN and known is not None:
                epoch = known.epoch if known.opens else None  # probed alone, store away
            if reason == _FORCED:
                pass  # force_open: forced() reports it, as a force-open, not a probe
            elif epoch is not None and span != math.inf:
                self.probe_failed[name] = epoch
                self.offer(Report(name, VerdictKind.PROBE_FAILED, span, "probe failed", epoch))
            elif span != math.inf:  # a disable's span: its error class reports it
                self.offer(Report(name, VerdictKind.FAILURE, span, "opened"), provisional=True)
        elif new is CircuitState.CLOSED:
            epoch = self.probing.pop(name, None)
            if old is CircuitState.OPEN:  # a reset, or a new configuration
                report = Report(name, VerdictKind.RESET, reason="reset", epoch=self._seen(name))
                self.offer(report)
            else:
                if epoch is None and known is not None and known.opens:
                    epoch = known.epoch  # probed alone (the store away, or slow)
                if epoch is not None:
                    report = Report(name, VerdictKind.CLOSED, reason="probe succeeded", epoch=epoch)
                    self.offer(report)

    def error_recorded(self, record: ProviderRecord, error_class: ErrorClass, now: float) -> None:
        """Report a rate limit or a disable: these apply fleet-wide at once."""
        name = record.name
        if error_class.kind is ErrorKind.DISABLE and record.breaker.disabled is not None:
            reason = record.breaker.disabled
            self.offer(Report(name, VerdictKind.DISABLED, math.inf, reason))
        elif error_class.kind is ErrorKind.RATE_LIMITED and record.breaker.disabled is None:
            span = self._open_for(record, now)
            self.offer(Report(name, VerdictKind.RATE_LIMITED, span, "rate limited"))

    def forced(self, record: ProviderRecord, now: float) -> None:
        """Report a manual force-open."""
        if record.breaker.disabled is None:
            span = self._open_for(record, now)
            self.offer(Report(record.name, VerdictKind.FORCED, span, "forced open"))

    def reset(self, record: ProviderRecord) -> None:
        """Report a manual reset."""
        name = record.name
        self.offer(Report(name, VerdictKind.RESET, reason="reset", epoch=self._seen(name)))

    def registered(self, record: ProviderRecord, now: float) -> None:
        """Apply what the fleet holds about a provider just registered under that name,
        and watch its deadline to claim the probe."""
        verdict = self.known.get(record.name)
        if verdict is not None and verdict.opens:
            remaining = verdict.until - self.link.store_time()
            self._hold(record, verdict, remaining, now)
            if verdict.kind is not VerdictKind.DISABLED:
                self.timers[record.name] = now + max(0.0, remaining)
                self._timers_changed.set()

    def unregistered(self, name: str) -> None:
        """Forget what is known about provider *name*: what a process keeps stays
        proportional to the providers registered now. A waiting reset or close about it
        still goes out (an open about a provider no longer here does not). A later
        registration under the name learns the fleet's verdict at the next read."""
        for table in (
            self.known,
            self.applied_at,
            self.timers,
            self.probing,
            self.probe_failed,
            self.mine,
            self.foreign_disables,
            self.vanished,
        ):
            table.pop(name, None)

    # -- applying verdicts -------------------------------------------------------------

    def apply(self, verdict: Verdict, store_now: float, *, pushed: bool) -> bool:
        """Apply *verdict* to the local breaker of its provider if it is newer than the
        last one seen. Returns whether it was."""
        if not _sane(verdict):
            self.malformed += 1
            return False
        name = verdict.provider
        known = self.known.get(name)
        if known is not None and verdict.epoch <= known.epoch:
            return False
        self.known[name] = verdict
        now = self.sup.now()
        self.applied_at[name] = now
        lag = None
        if pushed:
            lag = max(0.0, store_now - verdict.at)
            self.lag = lag
            self.lag_sum += lag
            self.lag_counts[bisect.bisect_left(LAG_BUCKETS, lag)] += 1
        if verdict.node != self.node:
            self.received += 1
        if name in self.probing and self.probing[name] != verdict.epoch:
            del self.probing[name]
        self.probe_failed.pop(name, None)
        if verdict.node != self.node:
            self.sup.publish(
                FleetVerdict(
                    name=name,
                    time=now,
                    node=verdict.node,
                    kind=verdict.kind.value,
                    reason=verdict.reason,
                    lag=lag,
                )
            )
        record = self.sup.providers.get(name)
        if verdict.kind is VerdictKind.DISABLED and verdict.node != self.node:
            self.foreign_disables[name] = verdict
        elif not verdict.opens:
            self.foreign_disables.pop(name, None)
        if verdict.opens:
            if verdict.kind is VerdictKind.DISABLED:
                self.timers.pop(name, None)  # no probe: a disable has no end
            else:
                self.timers[name] = now + max(0.0, verdict.until - store_now)
                self._timers_changed.set()
            if record is not None:
                self._hold(record, verdict, verdict.until - store_now, now)
        else:
            self.timers.pop(name, None)
            own = self.mine.get(name)
            if own is not None and own.made > verdict.at and own.deadline > now:
                return True  # this node opened it again since: its own report stands
            self.mine.pop(name, None)
            if record is not None:
                self._close(record, verdict, now)
        return True

    def _hold(
        self,
        record: ProviderRecord,
        verdict: Verdict,
        remaining: float,
        now: float,
        reason: str | None = None,
    ) -> None:
        """Hold *record*'s breaker open for *verdict*: *remaining* seconds plus the grace
        (for ever for a disable)."""
        breaker = record.breaker
        if reason is None:
            reason = f"fleet: {verdict.kind.value} from node {verdict.node}"
            if verdict.reason:
                reason = f"{reason} ({verdict.reason})"
        self.applying = True
        try:
            if verdict.kind is VerdictKind.DISABLED:
                changed = breaker.hold_open(now, math.inf, reason, disabled=verdict.reason)
            else:
                changed = breaker.hold_open(now, max(remaining, 0.0) + self.grace, reason)
        finally:
            self.applying = False
        if changed:
            self.sup.state_version += 1
            record.tell(BreakerMessage.OPENED)

    def _close(self, record: ProviderRecord, verdict: Verdict, now: float) -> None:
        breaker = record.breaker
        if breaker.state is CircuitState.CLOSED:
            return
        self.applying = True
        try:
            breaker.reset(now, f"fleet: {verdict.kind.value} by node {verdict.node}")
        finally:
            self.applying = False
        self.sup.state_version += 1
        record.tell(BreakerMessage.RESET)

    def _forget_missing(self, snapshot: Snapshot, asked: float) -> None:
        """Forget the open verdicts the store no longer holds (their keys expired, or a
        restart lost them), unless applied since the read was sent (*asked*, registry
        time). The holds they put on breakers run out by themselves, but a disable's,
        which has no end: a disable another node made is released (the breaker back in
        service, then held to whatever verdict the store holds now) once the store has
        lacked it for :attr:`patience`, time for its maker, if running, to publish it
        again."""
        present = {verdict.provider: verdict for verdict in snapshot.verdicts}
        for name, verdict in list(self.known.items()):
            if name in present or self.applied_at.get(name, -math.inf) >= asked:
                continue
            if not verdict.opens or verdict.kind is not VerdictKind.DISABLED:
                self._forget(name)  # a close that lingered and went, or an open's hold
        now = self.sup.now()
        for name, disable in list(self.foreign_disables.items()):
            current = present.get(name)
            if (current is not None and current.kind is VerdictKind.DISABLED) or (
                self.applied_at.get(name, -math.inf) >= asked
            ):
                self.vanished.pop(name, None)
                continue
            if now - self.vanished.setdefault(name, now) < self.patience:
                continue
            del self.foreign_disables[name]
            self.vanished.pop(name, None)
            if self.known.get(name) is disable:
                self._forget(name)
            record = self.sup.providers.get(name)
            if record is not None:
                self._release(record)
                if current is not None and current.opens:
                    self._hold(record, current, current.until - snapshot.now, now)

    def _forget(self, name: str) -> None:
        del self.known[name]
        self.applied_at.pop(name, None)
        self.timers.pop(name, None)
        self.probing.pop(name, None)

    def _release(self, record: ProviderRecord) -> None:
        breaker = record.breaker
        if breaker.disabled is None:
            return
        self.applying = True
        try:
            breaker.reset(self.sup.now(), "fleet: the disable is gone from the store")
        finally:
            self.applying = False
        self.sup.state_version += 1
        record.tell(BreakerMessage.RESET)

    def apply_snapshot(self, snapshot: Snapshot, asked: float) -> None:
        """Apply a full read of the store, sent at registry time *asked*."""
        self._forget_missing(snapshot, asked)
        for verdict in snapshot.verdicts:
            self.apply(verdict, snapshot.now, pushed=False)
        self.last_sync = self.sup.now()

    # -- the actor ----------------------------------------------------------------------

    def status(self) -> FleetStatus:
        """What the registry shows of the link."""
        counts = []
        total = 0
        for count in self.lag_counts:
            total += count
            counts.append(total)
        return FleetStatus(
            node=self.node,
            reachable=self.reachable,
            degraded_since=self.degraded_since,
            last_sync=self.last_sync,
            lag=self.lag,
            quorum=self.settings.quorum,
            quorum_window=self.settings.quorum_window,
            verdicts_sent=self.sent,
            verdicts_received=self.received,
            pending=len(self.outbox),
            outages=self.outages,
            malformed=self.malformed,
            lag_buckets=tuple(counts),
            lag_sum=self.lag_sum,
        )

    async def run(self) -> None:
        """Keep a session with the store; when it fails, go on alone and retry with
        back-off. A store error never leaves this task."""
        try:
            with self.cancel_scope:
                backoff = self.settings.retry_backoff
                while True:
                    error = await self._session()
                    if self.reachable:
                        backoff = self.settings.retry_backoff
                    if self.reachable or self.degraded_since is None:
                        self._degrade(error)
                    self.synced.set()
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, self.settings.max_backoff)
        finally:
            self.done.set()

    def _degrade(self, error: BaseException) -> None:
        now = self.sup.now()
        self.reachable = False
        self.degraded_since = now
        self.outages += 1
        self.timers.clear()
        self.vanished.clear()  # only time with the store counts toward a release
        self.sup.publish(FleetDegraded(name=None, time=now, node=self.node, error=_describe(error)))

    async def _session(self) -> BaseException:
        """Run one session until something in it fails; return what failed."""
        self._failure: BaseException | None = None
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._guard, self._connect)
        assert self._failure is not None
        return self._failure

    async def _guard(self, part: Callable[[], Awaitable[None]]) -> None:
        """Run *part* of a session; its error ends the session (and only the session)."""
        try:
            await part()
        except Exception as error:  # a store error ends the session, never the registry
            if self._failure is None:
                self._failure = error
            self._nursery.cancel_scope.cancel()

    async def _connect(self) -> None:
        timeout = self.settings.timeout
        self._subscribed = trio.Event()
        self._nursery.start_soon(self._guard, self._pushes)
        with trio.fail_after(timeout):
            await self._subscribed.wait()
        asked = self.sup.now()
        with trio.fail_after(timeout):
            snapshot = await self.link.read()
        self.apply_snapshot(snapshot, asked)
        self._rearm(snapshot)
        self._republish()
        if not self.reachable:
            now = self.sup.now()
            self.reachable = True
            if self.degraded_since is not None:
                outage = now - self.degraded_since
                self.degraded_since = None
                self.sup.publish(FleetRestored(name=None, time=now, node=self.node, outage=outage))
        self.synced.set()
        for part in (self._sender, self._backstop, self._claims):
            self._nursery.start_soon(self._guard, part)

    def _rearm(self, snapshot: Snapshot) -> None:
        """Watch again the deadlines of the open verdicts known from before an outage
        (the read skips them: their epochs are not new)."""
        now = self.sup.now()
        for name, verdict in self.known.items():
            if verdict.opens and name not in self.timers and verdict.until != math.inf:
                self.timers[name] = now + max(0.0, verdict.until - snapshot.now)
        self._timers_changed.set()

    def _republish(self, store: Snapshot | None = None) -> None:
        """Offer again this node's open verdicts whose breakers are still open here,
        unless a report about them is already waiting.

        Each is offered for what is left of its own deadline (one that is over is
        forgotten), whatever else holds the breaker open now.

        Args:
          store: after a routine read, only the verdicts that apply at once and that
            *store* lacks (it lost them: restarted between two reads, or a disable's key
            expired) are offered, and disables due for renewal; ``None`` (a new session)
            offers them all, votes too.
        """
        waiting = {pending.report.provider for pending in self.outbox}
        held = set() if store is None else {v.provider for v in store.verdicts if v.opens}
        now = self.sup.now()
        store_now = self.link.store_time()
        for name, pending in list(self.mine.items()):
            report = pending.report
            if report.kind is not VerdictKind.DISABLED and pending.deadline <= now:
                del self.mine[name]  # over: whatever holds the breaker now is not this
                continue
            if name in waiting:
                continue
            record = self.sup.providers.get(name)
            if record is None or record.breaker.state is not CircuitState.OPEN:
                continue
            if report.kind is VerdictKind.DISABLED:
                if record.breaker.disabled is None:
                    continue
                # A disable lives on in the store while its node runs: reported again
                # when missing, and well before its key would expire.
                stale = store_now - pending.renewed > _memory.DISABLED_TTL / 2
                if store is None or name not in held or stale:
                    self.offer(report, made=pending.made, renewed=store_now)
                continue
            if store is not None and (report.kind not in IMMEDIATE or name in held):
                continue
            left = pending.deadline - now
            again = Report(name, report.kind, left, report.reason, report.epoch)
            self.offer(again, made=pending.made)

    async def _pushes(self) -> None:
        async with self.link.subscribe() as pushes:
            self._subscribed.set()
            async for verdict in pushes:
                self.apply(verdict, self.link.store_time(), pushed=True)
        raise trio.BrokenResourceError("the fleet store's pushes ended")

    def _fresh(self, pending: _Pending, now: float) -> Report | None:
        """What to send of *pending* at *now*: an opening report with what is left of its
        deadline, or nothing if its breaker is no longer open here (the state it reported
        has ended) or its deadline has passed."""
        report = pending.report
        if not report.kind.opens:
            return report
        record = self.sup.providers.get(report.provider)
        if record is None or record.breaker.state is not CircuitState.OPEN:
            return None
        if report.kind is VerdictKind.DISABLED:
            return report if record.breaker.disabled is not None else None
        left = pending.deadline - now
        return attrs.evolve(report, duration=left) if left > 0 else None

    async def _sender(self) -> None:
        timeout = self.settings.timeout
        while True:
            while not self.outbox:
                self._outbox_changed = trio.Event()
                await self._outbox_changed.wait()
            pending = self.outbox.pop(0)
            report = self._fresh(pending, self.sup.now())
            if report is None:
                continue
            try:
                with trio.fail_after(timeout):
                    verdict = await self.link.report(report)
            except BaseException:
                self.outbox.insert(0, pending)  # nothing is lost
                raise
            self.sent += 1
            own = self.mine.get(report.provider)
            if own is not None:
                # The store's clock is known now: a decision was not made after it.
                own.made = min(own.made, self.link.store_time())
            if verdict is not None and not self.apply(
                verdict, self.link.store_time(), pushed=False
            ):
                self._stand_by(verdict)

    def _stand_by(self, verdict: Verdict) -> None:
        """Hold this node's breaker to the verdict the store kept over its report (a
        shorter force-open, say): the fleet's deadlines are only ever extended, and this
        node's own report may have shortened its local one."""
        record = self.sup.providers.get(verdict.provider)
        known = self.known.get(verdict.provider)
        if (
            record is not None
            and verdict.opens
            and known is not None
            and known.epoch == verdict.epoch
        ):
            now = self.sup.now()
            self._hold(record, verdict, verdict.until - self.link.store_time(), now)

    async def _backstop(self) -> None:
        timeout = self.settings.timeout
        while True:
            await trio.sleep(self.settings.sync_interval)
            asked = self.sup.now()
            with trio.fail_after(timeout):
                snapshot = await self.link.read()
            self.apply_snapshot(snapshot, asked)
            self._republish(snapshot)

    async def _claims(self) -> None:
        timeout = self.settings.timeout
        while True:
            due = min(self.timers.values(), default=math.inf)
            self._timers_changed = trio.Event()
            with trio.move_on_at(due):
                await self._timers_changed.wait()
                continue
            now = self.sup.now()
            for name in [n for n, at in self.timers.items() if at <= now]:
                del self.timers[name]
                verdict = self.known.get(name)
                record = self.sup.providers.get(name)
                if verdict is None or not verdict.opens or record is None:
                    continue
                if verdict.kind is VerdictKind.DISABLED:
                    continue
                breaker = record.breaker
                if (
                    self.probing.get(name) == verdict.epoch
                    and not breaker.probes_in_flight
                    and not breaker.success_count
                ):
                    # This node's claim ends with no call made under it (none running,
                    # none succeeded in this half-open period): let it lapse, so that a
                    # node with calls to make can probe.
                    del self.probing[name]
                    reason = "fleet: the probe's claim lapsed with no call"
                    self._hold(record, verdict, timeout, now, reason)
                    self.timers[name] = now + timeout
                    continue
                ttl = record.breaker.config.timeout_duration
                with trio.fail_after(timeout):
                    claim = await self.link.claim_probe(name, verdict.epoch, ttl)
                if self.known.get(name) is not verdict:
                    continue  # a newer verdict came while claiming
                now = self.sup.now()
                if claim.won:
                    # Probe, or go on probing: the claim is renewed a timeout before its
                    # end while a probe runs here, so the prober stays the only one.
                    self.probing[name] = verdict.epoch
                    renew = max(claim.remaining - timeout, claim.remaining / 2)
                    self.timers[name] = now + renew
                    if self.probe_failed.get(name) != verdict.epoch:
                        self._probe(record, now)
                    continue
                self.probing.pop(name, None)  # lost (or never had) the claim
                if claim.remaining > 0:
                    if claim.remaining != math.inf:
                        self.timers[name] = now + claim.remaining
                    holder = claim.holder or verdict.node
                    reason = f"fleet: node {holder} probes for the fleet"
                    self._hold(record, verdict, claim.remaining, now, reason)

    def _probe(self, record: ProviderRecord, now: float) -> None:
        self.applying = True
        try:
            changed = record.breaker.probe(now, "fleet: this node probes for the fleet")
        finally:
            self.applying = False
        if changed:
            self.sup.state_version += 1
            record.tell(BreakerMessage.OPENED)

    async def aclose(self) -> None:
        """Stop the session, send what is waiting (within one store timeout), and close
        the link."""
        self.closed = True
        self.cancel_scope.cancel()
        await self.done.wait()
        self.synced.set()  # a wait_ready still waiting for the first read: it is closed
        with trio.move_on_after(self.settings.timeout):
            while self.outbox:
                report = self._fresh(self.outbox[0], self.sup.now())
                if report is not None:
                    try:
                        await self.link.report(report)
                    except Exception:
                        break
                    self.sent += 1
                self.outbox.pop(0)
        with trio.move_on_after(self.settings.timeout):
            with contextlib.suppress(Exception):  # nothing more to do about it
                await self.link.aclose()
