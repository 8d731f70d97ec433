"""Fleet state on virtual time: attempts sent to a dead provider by a simulated fleet with
a shared store, against the same fleet with every node alone (issue 13's last target).

Run from the repository root::

    python benchmarks/bench_fleet_simulation.py            # seeds 1-10 (about a minute)
    python benchmarks/bench_fleet_simulation.py --seeds 3  # seeds 1-3

Cases, each on the events engine (both engines give byte-identical reports on these
scenarios; tests/test_simulation_engines.py checks it):

* ``fleet-outage``: the bundled scenario (8 nodes, quorum 1, the primary dead for 15
  minutes, no health endpoint) on its own seed, then on seeds 1..N. Each run is made
  twice by the simulator itself: with the nodes sharing a ``MemoryFleet`` store, and
  with every node alone (same requests to the same nodes, same faults). The figure is
  the attempts that started while the primary's outage was on, over every node, with
  the store / alone. Target: <= 0.25.
* ``fleet-partition`` at quorum 2 and at quorum 1: node-2 cannot reach the primary for
  ten minutes. The figure is the breaker opens and the share of requests the primary
  served on the three other nodes. Target: at quorum 2, no open and no traffic moved
  on the other nodes.
"""

from __future__ import annotations

import argparse
import time

import attrs

from ciris_actors.simulation import bundled_scenarios, load_scenario, run_scenario


def outage(seeds: int) -> None:
    scenario = load_scenario(bundled_scenarios()["fleet-outage"])
    ratios = []
    print("fleet-outage (8 nodes, primary dead 15 min): dead attempts with the store / alone")
    for seed in [None, *range(1, seeds + 1)]:
        started = time.perf_counter()
        report = run_scenario(scenario, seed=seed)
        fleet = report.fleet
        assert fleet is not None
        assert report.ok
        assert fleet.alone_ok
        primary = fleet.provider("primary")
        ratio = primary.dead_attempts / primary.alone_dead_attempts
        ratios.append(ratio)
        print(
            f"  seed {report.seed:>2}: {primary.dead_attempts:>4}"
            f" / {primary.alone_dead_attempts:>4}"
            f" = {ratio:.3f}  (availability {report.availability:.5f} /"
            f" {fleet.alone_availability:.5f}; {time.perf_counter() - started:.1f} s wall)"
        )
    print(
        f"  ratio over {len(ratios)} runs: min {min(ratios):.3f}, max {max(ratios):.3f};"
        f" target <= 0.25: {'HIT' if max(ratios) <= 0.25 else 'MISSED'}"
    )


def partition() -> None:
    scenario = load_scenario(bundled_scenarios()["fleet-partition"])
    assert scenario.fleet is not None
    print("fleet-partition (node-2 cannot reach the primary for 10 min):")
    for quorum in (2, 1):
        run = attrs.evolve(scenario, fleet=attrs.evolve(scenario.fleet, quorum=quorum))
        report = run_scenario(run)
        fleet = report.fleet
        assert fleet is not None
        others = [n for n in fleet.per_node if n.node != "node-2"]
        opens = sum(n.breaker_opens for n in others)
        share = sum(n.served_by("primary") for n in others) / sum(n.requests for n in others)
        sick = fleet.node("node-2")
        print(
            f"  quorum {quorum}: other nodes' opens {opens}, primary's share there {share:.4f};"
            f" node-2's opens {sick.breaker_opens}; dead attempts {fleet.dead_attempts}"
            f" (alone {fleet.alone_dead_attempts}); availability {report.availability:.5f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="run seeds 1..N (default 10)")
    args = parser.parse_args()
    outage(args.seeds)
    partition()


if __name__ == "__main__":
    main()
