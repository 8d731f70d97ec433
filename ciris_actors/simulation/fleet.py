"""Fleet scenarios: many registries sharing verdicts through one ``MemoryFleet`` store.

A scenario with a ``[fleet]`` section runs one registry per node, each with the same
providers registered by name and its share of the workload (round-robin by arrival), on
one virtual clock. The store's faults (``[[fleet.faults]]``: partitions, the store down)
happen at their times; a provider fault may strike only some nodes (``nodes = [...]``).
The run is made twice, with the store and with every node alone, and the report's
:class:`~.report.FleetStats` compares them: above all the attempts sent to a provider
while a fault made every call to it fail.
"""

from __future__ import annotations

import collections
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from ..events import BreakerTransition, FleetDegraded, FleetRestored
from ..fleet import (
    Claim,
    FleetSettings,
    MemoryFleet,
    MemoryFleetNode,
    Report as FleetReport,
    Snapshot,
    Verdict,
)
from .model import FleetSpec
from .report import FleetFaultStats, FleetNodeStats, FleetProviderStats, FleetStats, Report

if TYPE_CHECKING:
    from .engines import Node, Run

__all__ = ["JITTER", "JitteredLink", "fleet_stats", "run_fleet_faults"]

#: The longest extra delay before each store operation of a node, in seconds.
JITTER = 1e-6


class JitteredLink:
    """A node's link to a :class:`MemoryFleet` whose every operation reaches the store
    after an extra delay under :data:`JITTER`, drawn from a stream seeded by the run's
    seed, the node and the operation.

    Nodes of a simulated fleet do the same things at the same virtual instants (their
    periodic reads, their claims of a probe at one deadline), and trio wakes tasks whose
    deadlines are equal in the order of their objects' memory addresses. Without the
    jitter, which node reaches the store first (and, say, probes for the fleet) would
    depend on the process's memory layout, not on the seed.

    Args:
      link: the node's link (``hub.node(node_id)``).
      seed: the run's seed.
    """

    def __init__(self, link: MemoryFleetNode, seed: int) -> None:
        self.link = link
        self._streams = {
            op: random.Random(f"{seed}:fleet:{link.node_id}:{op}")
            for op in ("report", "claim", "read", "subscribe")
        }

    def __repr__(self) -> str:
        return f"<JitteredLink {self.link.node_id!r}>"

    async def _jitter(self, op: str) -> None:
        await trio.sleep(self._streams[op].random() * JITTER)

    @property
    def node_id(self) -> str:
        """The node's id."""
        return self.link.node_id

    @property
    def settings(self) -> FleetSettings:
        """The hub's settings."""
        return self.link.settings

    def store_time(self) -> float:
        """The store's clock (trio's)."""
        return self.link.store_time()

    async def report(self, report: FleetReport) -> Verdict | None:
        """``MemoryFleetNode.report``, after the jitter."""
        await self._jitter("report")
        return await self.link.report(report)

    async def claim_probe(self, provider: str, epoch: int, ttl: float) -> Claim:
        """``MemoryFleetNode.claim_probe``, after the jitter."""
        await self._jitter("claim")
        return await self.link.claim_probe(provider, epoch, ttl)

    async def read(self) -> Snapshot:
        """``MemoryFleetNode.read``, after the jitter."""
        await self._jitter("read")
        return await self.link.read()

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Verdict]]:
        """``MemoryFleetNode.subscribe``, after the jitter."""
        await self._jitter("subscribe")
        async with self.link.subscribe() as pushes:
            yield pushes

    async def aclose(self) -> None:
        """Close the node's link."""
        await self.link.aclose()


async def run_fleet_faults(hub: MemoryFleet, fleet: FleetSpec, origin: float) -> None:
    """Cut and restore nodes' links, and take the store down and up, as *fleet*'s faults
    say (scenario time 0 is trio time *origin*). Overlapping faults nest: a node is
    healed, or the store brought up, when the last fault on it ends."""
    changes = sorted(
        (when, starts, index)
        for index, fault in enumerate(fleet.faults)
        for when, starts in ((fault.at, 1), (fault.end, 0))
    )
    cuts: collections.Counter[str] = collections.Counter()
    for when, starts, index in changes:
        await trio.sleep_until(origin + when)
        fault = fleet.faults[index]
        targets = fault.nodes if fault.kind == "partition" else ("",)
        for node in targets:
            cuts[node] += 1 if starts else -1
            if starts and cuts[node] == 1:
                if node:
                    hub.partition(node)
                else:
                    hub.take_down()
            elif not starts and cuts[node] == 0:
                if node:
                    hub.heal(node)
                else:
                    hub.bring_up()


def _node_stats(run: Run, alone: Run, index: int) -> FleetNodeStats:
    node, lonely = run.nodes[index], alone.nodes[index]
    count = len(run.nodes)
    slots = range(index, len(run.log.arrival), count)
    outcome = run.log.outcome
    status = node.status
    return FleetNodeStats(
        node=str(node.name),
        requests=len(slots),
        succeeded=sum(1 for slot in slots if outcome[slot] == "succeeded"),
        attempts=sum(run.log.attempts[slot] for slot in slots),
        dead_attempts=_dead(node),
        breaker_opens=_opens(node),
        verdicts_sent=0 if status is None else status.verdicts_sent,
        verdicts_received=0 if status is None else status.verdicts_received,
        degraded=tuple(e.time - run.origin for e in node.events if isinstance(e, FleetDegraded)),
        restored=tuple(e.time - run.origin for e in node.events if isinstance(e, FleetRestored)),
        alone_succeeded=sum(1 for slot in slots if alone.log.outcome[slot] == "succeeded"),
        alone_dead_attempts=_dead(lonely),
        alone_breaker_opens=_opens(lonely),
        served=tuple(
            (name, sum(1 for slot in slots if run.log.served[slot] == name))
            for name in node.providers
        ),
    )


def _dead(node: Node) -> int:
    return sum(provider.dead_calls for provider in node.providers.values())


def _opens(node: Node) -> int:
    return sum(1 for e in node.events if isinstance(e, BreakerTransition) and e.new.value == "open")


def fleet_stats(
    fleet: FleetSpec, run: Run, report: Report, alone: Run, alone_report: Report
) -> FleetStats:
    """What the fleet did, from its run with the store (*run*, *report*) and the same
    run with every node alone (*alone*, *alone_report*)."""
    names = [spec.name for spec in run.scenario.providers]
    return FleetStats(
        nodes=fleet.nodes,
        quorum=fleet.quorum,
        quorum_window=fleet.quorum_window,
        latency=fleet.latency,
        faults=tuple(FleetFaultStats(f.kind, f.at, f.duration, f.nodes) for f in fleet.faults),
        dead_attempts=sum(_dead(node) for node in run.nodes),
        alone_dead_attempts=sum(_dead(node) for node in alone.nodes),
        attempts=report.attempts.made,
        alone_attempts=alone_report.attempts.made,
        availability=report.availability,
        alone_availability=alone_report.availability,
        alone_ok=alone_report.ok,
        per_node=tuple(_node_stats(run, alone, i) for i in range(len(run.nodes))),
        per_provider=tuple(
            FleetProviderStats(
                name=name,
                dead_attempts=sum(node.providers[name].dead_calls for node in run.nodes),
                alone_dead_attempts=sum(node.providers[name].dead_calls for node in alone.nodes),
            )
            for name in names
        ),
    )
