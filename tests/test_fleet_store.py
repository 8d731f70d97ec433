"""The fleet store's contract, run on every store: ``MemoryFleet`` on virtual time and
``RedisFleet`` on a real ``redis-server`` and real time.

These check the store itself (what ``report``, ``claim_probe``, ``read`` and
``subscribe`` do), below the registry; ``test_fleet.py`` checks the rules a registry
builds on them. Each test takes ``store`` and ``store_clock`` (virtual time for the
memory store: pytest-trio only takes a clock from a test's own arguments).
"""

from __future__ import annotations

import math
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import coredis
import pytest
import trio
import trio.testing

from ciris_actors.fleet import (
    Claim,
    FleetLink,
    FleetUnavailable,
    MemoryFleet,
    RedisFleet,
    Report,
    Snapshot,
    Verdict,
    VerdictKind,
)

from .redis_server import RedisServer

K = VerdictKind
#: Seconds a test waits for a push before failing.
PATIENCE = 5.0
#: A short quorum window, claim ttl and deadline: long enough for a loopback round trip.
SHORT = 0.3


class Store:
    """One store under test: links made by :meth:`link` share it."""

    def __init__(self, name: str, server: RedisServer | None = None) -> None:
        self.name = name
        self.server = server
        self.namespace = f"t{secrets.token_hex(4)}"
        self.hub: MemoryFleet | None = None
        self.links: list[FleetLink] = []

    def link(self, node: str, *, quorum: int = 1, quorum_window: float = 60.0) -> FleetLink:
        link: FleetLink
        if self.server is None:
            if self.hub is None:
                self.hub = MemoryFleet(quorum=quorum, quorum_window=quorum_window)
            link = self.hub.node(node)
        else:
            link = RedisFleet(
                self.server.url, node, self.namespace, quorum, quorum_window, timeout=1.0
            )
        self.links.append(link)
        return link

    async def stop(self) -> None:
        if self.server is None:
            assert self.hub is not None
            self.hub.take_down()
        else:
            self.server.stop()
        await trio.lowlevel.checkpoint()

    async def start(self) -> None:
        if self.server is None:
            assert self.hub is not None
            self.hub.bring_up()
        else:
            self.server.start()
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        for link in self.links:
            await link.aclose()


@pytest.fixture(params=["memory", "redis"])
def store_clock(request: pytest.FixtureRequest) -> Iterator[object]:
    """Virtual time for the memory store; the real clock for Redis."""
    if request.param == "memory":
        yield trio.testing.MockClock(autojump_threshold=0)
    else:
        yield request.param


@pytest.fixture
async def store(store_clock: object, request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """The store under test, chosen by ``store_clock``'s parameter."""
    if isinstance(store_clock, trio.testing.MockClock):
        made = Store("memory")
    else:
        made = Store("redis", request.getfixturevalue("redis_server"))
    try:
        yield made
    finally:
        await made.aclose()


async def pushed(pushes: AsyncIterator[Verdict]) -> Verdict:
    """The next push (failing after :data:`PATIENCE` seconds)."""
    with trio.fail_after(PATIENCE):
        return await anext(pushes)


async def nothing_pushed_before(link: FleetLink, pushes: AsyncIterator[Verdict]) -> None:
    """Check nothing was pushed since the last push taken: a reset of a marker provider,
    made now, is the next push."""
    await link.report(Report("marker", K.RESET))
    verdict = await pushed(pushes)
    assert (verdict.provider, verdict.kind) == ("marker", K.RESET), verdict


def held(snapshot: Snapshot) -> tuple[Verdict, ...]:
    """*snapshot*'s verdicts, but for the marker's (:func:`nothing_pushed_before`)."""
    return tuple(v for v in snapshot.verdicts if v.provider != "marker")


@asynccontextmanager
async def subscribed(link: FleetLink) -> AsyncIterator[AsyncIterator[Verdict]]:
    """*link*'s pushes; the iterator is closed on the way out (a test takes a few pushes
    and leaves it suspended, where the fleet actor would run it to its end)."""
    async with link.subscribe() as pushes:
        try:
            yield pushes
        finally:
            close = getattr(pushes, "aclose", None)
            if close is not None:
                await close()


# -- report: every kind ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "duration"),
    [
        (K.FAILURE, 10.0),
        (K.RATE_LIMITED, 10.0),
        (K.FORCED, 10.0),
        (K.DISABLED, math.inf),
    ],
)
async def test_an_opening_report_makes_a_verdict_on_the_stores_clock_and_pushes_it(
    store: Store, store_clock: object, kind: VerdictKind, duration: float
) -> None:
    a = store.link("a")
    async with subscribed(a) as pushes:
        verdict = await a.report(Report("p", kind, duration, "why"))
        assert verdict is not None
        assert (verdict.provider, verdict.kind, verdict.reason, verdict.node) == (
            "p",
            kind,
            "why",
            "a",
        )
        assert verdict.until == verdict.at + duration
        assert abs(verdict.at - a.store_time()) < 1.0
        assert await pushed(pushes) == verdict
        snapshot = await a.read()
        assert snapshot.verdicts == (verdict,)
        assert snapshot.now >= verdict.at


async def test_epochs_increase_with_every_change(store: Store, store_clock: object) -> None:
    a = store.link("a")
    epochs = []
    for duration in (1.0, 2.0, 3.0):
        verdict = await a.report(Report("p", K.FORCED, duration))
        assert verdict is not None
        epochs.append(verdict.epoch)
    assert epochs == sorted(set(epochs))
    assert epochs[0] >= math.floor(a.store_time() * 1e6) - 10**7  # from the store's clock


async def test_a_probe_success_closes_only_the_verdict_it_was_for(
    store: Store, store_clock: object
) -> None:
    a = store.link("a")
    async with subscribed(a) as pushes:
        first = await a.report(Report("p", K.FAILURE, 10.0))
        assert first is not None
        second = await a.report(Report("p", K.RATE_LIMITED, 20.0))
        assert second is not None
        assert second.epoch > first.epoch
        await pushed(pushes)
        await pushed(pushes)
        # A close about the older verdict is stale: the newer one stays, nothing is pushed.
        assert await a.report(Report("p", K.CLOSED, epoch=first.epoch)) == second
        assert held(await a.read()) == (second,)
        await nothing_pushed_before(a, pushes)
        # About the current one: closed, and pushed.
        assert await a.report(Report("p", K.CLOSED, epoch=second.epoch)) is None
        closed = await pushed(pushes)
        assert (closed.kind, closed.until, closed.node) == (K.CLOSED, 0.0, "a")
        assert closed.epoch > second.epoch
        # The close is read, for a node that missed its push, and holds nothing open.
        assert held(await a.read()) == (closed,)
        # A close with nothing open: nothing to push.
        assert await a.report(Report("p", K.CLOSED, epoch=closed.epoch)) is None
        await nothing_pushed_before(a, pushes)


async def test_a_reset_always_closes_and_pushes(store: Store, store_clock: object) -> None:
    a, b = store.link("a"), store.link("b")
    async with subscribed(b) as pushes:
        assert await a.report(Report("p", K.RESET, reason="by hand")) is None
        reset = await pushed(pushes)
        assert (reset.provider, reset.kind, reset.reason, reset.node) == (
            "p",
            K.RESET,
            "by hand",
            "a",
        )
        disabled = await a.report(Report("p", K.DISABLED, math.inf, "revoked"))
        assert disabled is not None
        assert disabled.epoch > reset.epoch
        assert await pushed(pushes) == disabled
        # A reset ends a disable too, when its node had seen it.
        assert await b.report(Report("p", K.RESET, epoch=disabled.epoch)) is None
        reset_again = await pushed(pushes)
        assert reset_again.kind is K.RESET
        assert held(await a.read()) == (reset_again,)


async def test_a_reset_never_undoes_a_verdict_its_node_had_not_seen(
    store: Store, store_clock: object
) -> None:
    a, b = store.link("a"), store.link("b")
    seen = await a.report(Report("p", K.FORCED, 10.0))
    assert seen is not None
    newer = await b.report(Report("p", K.RATE_LIMITED, 600.0))
    assert newer is not None
    async with subscribed(b) as pushes:
        # a decided its reset knowing only the force-open (say, cut off from the store).
        assert await a.report(Report("p", K.RESET, epoch=seen.epoch)) == newer
        await nothing_pushed_before(b, pushes)
        assert held(await b.read()) == (newer,)
        assert await a.report(Report("p", K.RESET, epoch=newer.epoch)) is None
        assert (await pushed(pushes)).kind is K.RESET


async def test_a_failed_probe_reopens_its_verdict_at_once_and_is_a_vote_otherwise(
    store: Store, store_clock: object
) -> None:
    a = store.link("a", quorum=2)
    b = store.link("b", quorum=2)
    forced = await a.report(Report("p", K.FORCED, 1.0))
    assert forced is not None
    reopened = await a.report(Report("p", K.PROBE_FAILED, 30.0, epoch=forced.epoch))
    assert reopened is not None
    assert (reopened.kind, reopened.until) == (K.PROBE_FAILED, reopened.at + 30.0)
    # After a reset, a late failure of a probe of the old verdict is one node's open: a
    # vote, short of the quorum of two.
    assert await b.report(Report("p", K.RESET, epoch=reopened.epoch)) is None
    assert await a.report(Report("p", K.PROBE_FAILED, 30.0, epoch=reopened.epoch)) is None
    vote = await b.report(Report("p", K.PROBE_FAILED, 30.0, epoch=reopened.epoch))
    assert vote is not None
    assert vote.kind is K.FAILURE


# -- quorum ----------------------------------------------------------------------------------------


async def test_an_ordinary_open_needs_quorum_distinct_nodes_within_the_window(
    store: Store, store_clock: object
) -> None:
    a = store.link("a", quorum=2, quorum_window=SHORT)
    b = store.link("b", quorum=2, quorum_window=SHORT)
    async with subscribed(a) as pushes:
        assert await a.report(Report("p", K.FAILURE, 10.0)) is None
        assert await a.report(Report("p", K.FAILURE, 10.0)) is None  # the same node again
        assert held(await a.read()) == ()
        await nothing_pushed_before(a, pushes)
        # The window passes: a's votes no longer count.
        await trio.sleep(SHORT)
        assert await b.report(Report("p", K.FAILURE, 10.0)) is None
        # Within the window of b's vote: the quorum.
        verdict = await a.report(Report("p", K.FAILURE, 10.0))
        assert verdict is not None
        assert (verdict.kind, verdict.node) == (K.FAILURE, "a")
        assert await pushed(pushes) == verdict


async def test_immediate_kinds_need_no_quorum(store: Store, store_clock: object) -> None:
    a = store.link("a", quorum=3)
    for kind in (K.RATE_LIMITED, K.FORCED):
        verdict = await a.report(Report(kind.value, kind, 5.0))
        assert verdict is not None
        assert verdict.kind is kind
    assert await a.report(Report("d", K.DISABLED, math.inf)) is not None


async def test_a_close_clears_the_votes(store: Store, store_clock: object) -> None:
    a = store.link("a", quorum=2)
    b = store.link("b", quorum=2)
    assert await a.report(Report("p", K.FAILURE, 10.0)) is None
    assert await a.report(Report("p", K.RESET)) is None
    assert await b.report(Report("p", K.FAILURE, 10.0)) is None  # a's vote went


# -- deadlines: only ever extended; a disable outlasts everything ----------------------------------


async def test_deadlines_are_only_ever_extended(store: Store, store_clock: object) -> None:
    a, b = store.link("a"), store.link("b")
    async with subscribed(a) as pushes:
        long = await a.report(Report("p", K.RATE_LIMITED, 30.0))
        assert long is not None
        assert await pushed(pushes) == long
        for kind in (K.FAILURE, K.RATE_LIMITED, K.FORCED, K.PROBE_FAILED):
            assert await b.report(Report("p", kind, 2.0)) == long
        await nothing_pushed_before(a, pushes)
        longer = await b.report(Report("p", K.FORCED, 60.0))
        assert longer is not None
        assert longer.until > long.until
        assert longer.epoch > long.epoch
        assert await pushed(pushes) == longer


async def test_nothing_outlasts_a_disable_but_a_reset(store: Store, store_clock: object) -> None:
    a, b = store.link("a"), store.link("b")
    disabled = await a.report(Report("p", K.DISABLED, math.inf, "revoked"))
    assert disabled is not None
    assert disabled.until == math.inf
    for kind in (K.FAILURE, K.RATE_LIMITED, K.FORCED, K.PROBE_FAILED):
        assert await b.report(Report("p", kind, 1e9)) == disabled
    assert await b.report(Report("p", K.DISABLED, math.inf, "again")) == disabled
    assert held(await b.read()) == (disabled,)
    assert await b.report(Report("p", K.RESET, epoch=disabled.epoch)) is None
    assert [v.kind for v in (await b.read()).verdicts] == [K.RESET]


# -- the half-open probe claim ---------------------------------------------------------------------


async def test_no_claim_before_the_deadline_or_for_another_epoch(
    store: Store, store_clock: object
) -> None:
    a = store.link("a")
    verdict = await a.report(Report("p", K.FAILURE, 10.0))
    assert verdict is not None
    claim = await a.claim_probe("p", verdict.epoch, 1.0)
    assert not claim.won
    assert claim.holder is None
    assert 9.0 < claim.remaining <= 10.0
    assert await a.claim_probe("p", verdict.epoch + 1, 1.0) == Claim(False, None, 0.0)
    assert await a.claim_probe("nothing", 1, 1.0) == Claim(False, None, 0.0)
    disabled = await a.report(Report("d", K.DISABLED, math.inf))
    assert disabled is not None
    assert (await a.claim_probe("d", disabled.epoch, 1.0)).remaining == math.inf


async def test_one_claimer_wins_the_probe_until_its_claim_expires(
    store: Store, store_clock: object
) -> None:
    links = [store.link(name) for name in "abcd"]
    verdict = await links[0].report(Report("p", K.FAILURE, 0.01))
    assert verdict is not None
    await trio.sleep(0.02)
    claims: dict[str, Claim] = {}

    async def claim(link: FleetLink) -> None:
        claims[link.node_id] = await link.claim_probe("p", verdict.epoch, SHORT * 2)

    async with trio.open_nursery() as nursery:
        for link in links:
            nursery.start_soon(claim, link)
    winners = [node for node, c in claims.items() if c.won]
    assert len(winners) == 1, claims
    winner = winners[0]
    assert claims[winner] == Claim(True, winner, SHORT * 2)
    for node, c in claims.items():
        if node != winner:
            assert c.holder == winner
            assert 0 < c.remaining <= SHORT * 2
    # The holder may claim again (a retry); the others still may not.
    holder = next(link for link in links if link.node_id == winner)
    other = next(link for link in links if link.node_id != winner)
    assert (await holder.claim_probe("p", verdict.epoch, SHORT * 2)).won
    assert not (await other.claim_probe("p", verdict.epoch, SHORT * 2)).won
    # Once the claim expires, another node wins it.
    await trio.sleep(SHORT * 2)
    again = await other.claim_probe("p", verdict.epoch, SHORT)
    assert again == Claim(True, other.node_id, SHORT)


async def test_a_new_verdict_ends_the_claim(store: Store, store_clock: object) -> None:
    a, b = store.link("a"), store.link("b")
    verdict = await a.report(Report("p", K.FAILURE, 0.01))
    assert verdict is not None
    await trio.sleep(0.02)
    assert (await a.claim_probe("p", verdict.epoch, 60.0)).won
    failed = await a.report(Report("p", K.PROBE_FAILED, 0.01, epoch=verdict.epoch))
    assert failed is not None
    await trio.sleep(0.02)
    assert await b.claim_probe("p", verdict.epoch, 60.0) == Claim(False, None, 0.0)
    assert (await b.claim_probe("p", failed.epoch, 60.0)).won  # a's claim went with it


# -- reads and expiry ------------------------------------------------------------------------------


async def test_a_read_holds_verdicts_past_their_deadline_until_their_keys_expire(
    store: Store, store_clock: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ciris_actors.fleet._memory.VERDICT_LINGER", SHORT)
    monkeypatch.setattr("ciris_actors.fleet._redis.VERDICT_LINGER", SHORT)
    a = store.link("a")
    verdict = await a.report(Report("p", K.RATE_LIMITED, 0.05))
    assert verdict is not None
    await trio.sleep(0.1)
    snapshot = await a.read()
    assert snapshot.verdicts == (verdict,)  # past its deadline: due a probe
    assert snapshot.now > verdict.until
    await trio.sleep(SHORT)
    assert held(await a.read()) == ()
    # Expired means gone: a new report starts afresh, with a newer epoch.
    again = await a.report(Report("p", K.RATE_LIMITED, 0.01))
    assert again is not None
    assert again.epoch > verdict.epoch


# -- pushes ----------------------------------------------------------------------------------------


async def test_pushes_reach_every_subscriber_the_reporter_included(
    store: Store, store_clock: object
) -> None:
    links = [store.link(name) for name in "abc"]
    async with (
        subscribed(links[0]) as a,
        subscribed(links[1]) as b,
        subscribed(links[2]) as c,
        subscribed(links[2]) as c2,
    ):
        verdict = await links[0].report(Report("p", K.FORCED, 5.0))
        assert verdict is not None
        for pushes in (a, b, c, c2):
            assert await pushed(pushes) == verdict


# -- the store down --------------------------------------------------------------------------------


async def test_the_store_fails_when_down_and_works_again_after_it_comes_back(
    store: Store, store_clock: object
) -> None:
    a = store.link("a")
    before = await a.report(Report("p", K.FORCED, 60.0))
    assert before is not None
    # Any error will do (the fleet actor takes them alike), as long as the pushes end.
    with trio.fail_after(PATIENCE), pytest.raises(Exception):  # noqa: B017, PT011, PT012
        async with subscribed(a) as pushes:
            await store.stop()
            await anext(pushes)
    for operation in (
        lambda: a.report(Report("p", K.FORCED, 1.0)),
        lambda: a.claim_probe("p", before.epoch, 1.0),
        a.read,
    ):
        with pytest.raises(Exception):  # noqa: B017, PT011
            await operation()
    await trio.sleep(1e-3)  # the store's clock moves on while it is down (virtual time too)
    await store.start()
    assert held(await a.read()) == ()  # lost with the store (no persistence)
    after = await a.report(Report("p", K.FORCED, 1.0))
    assert after is not None
    assert after.epoch > before.epoch  # from the store's clock: newer across a restart
    async with subscribed(a) as pushes:
        reset = await a.report(Report("p", K.RESET, epoch=after.epoch))
        assert reset is None
        assert (await pushed(pushes)).kind is K.RESET


async def test_a_claimed_verdict_outlives_its_linger_while_it_is_claimed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from ciris_actors.fleet import VERDICT_LINGER

    a = MemoryFleet().node("a")
    verdict = await a.report(Report("p", K.FORCED, 1.0))
    assert verdict is not None
    await trio.sleep(1.0)
    for _ in range(3):  # renewed by its holder, past the linger of the deadline
        assert (await a.claim_probe("p", verdict.epoch, VERDICT_LINGER)).won
        await trio.sleep(VERDICT_LINGER - 1.0)
    assert held(await a.read()) == (verdict,)
    await trio.sleep(2 * VERDICT_LINGER + 1.0)  # no longer claimed: it goes
    assert held(await a.read()) == ()


# -- Redis only ------------------------------------------------------------------------------------


async def _ttls(server: RedisServer, namespace: str) -> dict[str, int]:
    async with coredis.Redis.from_url(server.url, decode_responses=True) as client:
        keys = [key async for key in client.scan_iter(match=f"{{{namespace}}}:*")]
        return {key: await client.pttl(key) for key in keys}


async def test_a_claimed_verdict_lives_as_long_as_it_is_claimed_on_redis(
    redis_server: RedisServer,
) -> None:
    store = Store("redis", redis_server)
    a = store.link("a")
    try:
        verdict = await a.report(Report("p", K.FORCED, SHORT))
        assert verdict is not None
        await trio.sleep(SHORT)
        ttls = await _ttls(redis_server, store.namespace)
        before = ttls[f"{{{store.namespace}}}:v:p"]
        assert (await a.claim_probe("p", verdict.epoch, 1000.0)).won
        ttls = await _ttls(redis_server, store.namespace)
        assert ttls[f"{{{store.namespace}}}:v:p"] >= before + 900_000  # ms: the claim's 1000 s
        assert held(await a.read()) == (verdict,)
    finally:
        await store.aclose()


async def test_every_redis_key_expires_by_itself(redis_server: RedisServer) -> None:
    store = Store("redis", redis_server)
    a = store.link("a", quorum=2, quorum_window=SHORT)
    b = store.link("b", quorum=2, quorum_window=SHORT)
    seen: set[str] = set()

    async def check() -> None:
        ttls = await _ttls(redis_server, store.namespace)
        seen.update(key.split(":")[1] for key in ttls)
        assert all(ttl > 0 for ttl in ttls.values()), ttls

    try:
        await a.report(Report("p", K.FAILURE, 0.01))  # a vote
        await check()
        verdict = await b.report(Report("p", K.FAILURE, 0.01))  # the quorum: a verdict
        assert verdict is not None
        await check()
        await trio.sleep(0.02)
        assert (await a.claim_probe("p", verdict.epoch, 5.0)).won
        await check()
        for kind in (K.RATE_LIMITED, K.FORCED, K.PROBE_FAILED):
            await a.report(Report("p", kind, 10.0 + len(seen)))
            await check()
        await a.report(Report("p", K.CLOSED, epoch=verdict.epoch))
        await a.report(Report("d", K.DISABLED, math.inf))
        await check()
        await a.report(Report("d", K.RESET))
        await a.report(Report("p", K.RESET))
        await check()
        await a.read()
        await check()
        assert seen >= {"v", "votes", "probe", "epoch", "index"}
        ttls = await _ttls(redis_server, store.namespace)
        assert ttls  # the epochs remain a while, then go
    finally:
        await store.aclose()


async def test_namespaces_keep_two_fleets_apart(redis_server: RedisServer) -> None:
    one, two = Store("redis", redis_server), Store("redis", redis_server)
    a, b = one.link("a"), two.link("b")
    try:
        async with subscribed(b) as pushes:
            assert await a.report(Report("p", K.FORCED, 60.0)) is not None
            assert held(await b.read()) == ()
            await nothing_pushed_before(b, pushes)
            assert (await a.read()).verdicts != ()
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_frozen_server_times_out_and_the_link_answers_right_afterwards(
    redis_server: RedisServer,
) -> None:
    store = Store("redis", redis_server)
    a = store.link("a")
    assert await a.report(Report("p", K.FORCED, 60.0)) is not None
    redis_server.freeze()
    try:
        with pytest.raises(FleetUnavailable, match="did not answer within"):
            await a.report(Report("q", K.FORCED, 60.0))
        with trio.move_on_after(0.05):  # cancelled mid-call, as the fleet actor may
            await a.read()
    finally:
        redis_server.thaw()
    try:
        # Replies are not mixed up with those of the calls that gave up.
        snapshot = await a.read()
        assert {v.provider for v in snapshot.verdicts} <= {"p", "q"}
        claim = await a.claim_probe("p", snapshot.verdicts[0].epoch, 1.0)
        assert not claim.won
        assert claim.remaining > 50.0
    finally:
        await store.aclose()


async def test_a_link_made_outside_the_run_connects_in_each_run(redis_server: RedisServer) -> None:
    link = RedisFleet(redis_server.url, "a", f"t{secrets.token_hex(4)}")
    assert "RedisFleet" in repr(link)

    async def report() -> Verdict | None:
        return await link.report(Report("p", K.FORCED, 60.0))

    # In a worker thread: a trio run of its own, as a user's script would start.
    first = await trio.to_thread.run_sync(trio.run, report)
    assert first is not None
    assert held(await link.read()) == (first,)
    await link.aclose()
    await link.aclose()  # twice is fine


async def test_the_right_password_works_and_a_wrong_one_says_so_without_echoing_it(
    redis_password_server: RedisServer,
) -> None:
    server = redis_password_server
    good = RedisFleet(server.url, "good", "pw")
    wrong_password = "hunter2-not-it"
    bad = RedisFleet(f"redis://:{wrong_password}@127.0.0.1:{server.port}/0", "bad", "pw")
    missing = RedisFleet(f"redis://127.0.0.1:{server.port}/0", "missing", "pw")
    try:
        assert await good.report(Report("p", K.FORCED, 60.0)) is not None
        assert wrong_password not in repr(bad)
        assert "secret" not in repr(good)
        with pytest.raises(FleetUnavailable) as wrong:
            await bad.read()
        assert "authentication failed" in str(wrong.value)
        assert wrong_password not in str(wrong.value)
        with pytest.raises(FleetUnavailable) as none:
            await missing.read()
        assert "Authentication" in str(none.value)
        assert len((await good.read()).verdicts) == 1
    finally:
        for link in (good, bad, missing):
            await link.aclose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://:pw@localhost:6379", "url: expected a redis:// or rediss:// URL"),
        ("redis://:pw@:6379", "url: no host"),
        ("redis://:pw@localhost:port", "url: the port must be a number"),
        ("redis://:pw@localhost:6379/zero", "url: the database"),
    ],
)
def test_a_bad_url_is_refused_up_front_without_its_password(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        RedisFleet(url)
    assert "pw" not in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"namespace": "a{b}"}, "namespace"),
        ({"namespace": ""}, "namespace"),
        ({"node": ""}, "node"),
        ({"quorum": 0}, "quorum"),
        ({"quorum_window": -1.0}, "quorum_window"),
        ({"timeout": math.nan}, "timeout"),
    ],
)
def test_bad_arguments_are_refused_up_front(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisFleet("rediss://:pw@localhost:6380/1", **kwargs)  # type: ignore[arg-type]


def test_a_node_id_is_made_when_none_is_given() -> None:
    one, two = RedisFleet("redis://localhost"), RedisFleet("redis://localhost")
    assert one.node_id != two.node_id
    assert one.namespace == "ciris"
    assert one.channel == "{ciris}:verdicts"


def test_the_fleet_package_imports_without_coredis_and_redisfleet_says_how_to_get_it() -> None:
    code = (
        "import sys; sys.modules['coredis'] = None\n"
        "import ciris_actors.fleet as fleet\n"
        "try:\n"
        "    fleet.RedisFleet('redis://localhost')\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'ciris-actors[redis]'" in result.stdout


async def test_a_foreign_value_under_a_verdict_key_is_no_verdict_and_fails_nothing(
    redis_server: RedisServer,
) -> None:
    store = Store("redis", redis_server)
    a = store.link("a")
    try:
        assert await a.report(Report("good", K.FORCED, 60.0)) is not None
        async with coredis.Redis.from_url(redis_server.url, decode_responses=True) as client:
            index = f"{{{store.namespace}}}:index"
            await client.zadd(index, {"bad": 1e12, "worse": 1e12})
            await client.set(f"{{{store.namespace}}}:v:bad", "not json")
            await client.set(f"{{{store.namespace}}}:v:worse", '{"expires": "soon"}')
        snapshot = await a.read()
        assert [v.provider for v in snapshot.verdicts] == ["good"]
        # A report about the provider whose key holds garbage replaces it.
        verdict = await a.report(Report("bad", K.FORCED, 60.0))
        assert verdict is not None
        assert verdict.provider == "bad"
    finally:
        await store.aclose()
