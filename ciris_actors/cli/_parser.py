"""The ``ciris-actors`` argument parser, and :func:`main`, which hands each subcommand
its typed arguments and turns bad input into one line on stderr."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import trio

from .. import __version__
from ..simulation.engines import ENGINES
from . import demo, serve, simulate, sweep
from ._usage import Parser, UsageError

__all__ = ["main"]

#: Exit statuses as shells report a process that SIGINT (128 + 2) or SIGPIPE (128 + 13)
#: ended.
INTERRUPTED = 130
BROKEN_PIPE = 141


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535 (0: any free port), got {value}")
    return value


def _parser() -> tuple[Parser, Parser]:
    """The parser of the command, and that of ``demo`` (which checks one value later)."""
    parser = Parser(
        prog="ciris-actors",
        description=(
            "Trio-native supervision, circuit breaking and priority routing for service"
            " providers. Start with `ciris-actors simulate`."
        ),
    )
    parser.add_argument("--version", action="version", version=f"ciris-actors {__version__}")
    commands = parser.add_subparsers(
        dest="command", parser_class=Parser, metavar="COMMAND", title="commands"
    )
    simulate_parser = commands.add_parser(
        "simulate",
        help="run a fault-injection scenario on virtual time and say how it went",
        description=(
            "Run a fault-injection scenario on virtual time and say how the registry coped."
            " The registry, its actors and routing are the real ones; the providers are"
            " simulated. Without SCENARIO: an hour of the seed's LLM set-up under five"
            " faults. Exit status: 0 every routing rule held, 1 a rule was broken, 2 bad"
            " input, 130 interrupted."
        ),
    )
    simulate_parser.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO",
        help="a scenario .toml file or the name of a bundled scenario (see --list)",
    )
    simulate_parser.add_argument(
        "--seed",
        type=_seed,
        metavar="N",
        help="the random seed (default: the scenario's own)",
    )
    simulate_parser.add_argument(
        "--json",
        metavar="FILE",
        help="write the full report as JSON to FILE ('-': stdout; default: none)",
    )
    simulate_parser.add_argument(
        "--plot",
        metavar="FILE",
        help=(
            "draw the run's timeline into FILE, a .png, .svg or .pdf (needs the plot extra;"
            " default: none)"
        ),
    )
    simulate_parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="events",
        help=(
            "how requests travel: events (one driver task, fast) or tasks (a trio task per"
            " request through registry.call/lease); both give the same report (default:"
            " events)"
        ),
    )
    simulate_parser.add_argument(
        "--no-classes",
        action="store_true",
        help=(
            "count every provider error as a plain failure, as if the scenario said"
            ' [registry] classify = "none" (default: the scenario\'s own setting, by'
            " default HTTP classes: a 429 rate-limits, a 401 disables, a context overflow"
            " reroutes)"
        ),
    )
    simulate_parser.add_argument(
        "--list", action="store_true", help="list the bundled scenarios and exit"
    )
    sweep_parser = commands.add_parser(
        "sweep",
        help="run a scenario over many seeds on every core and find the worst ones",
        description=(
            "Run a scenario over many seeds, on local processes or a Dask cluster, and say"
            " how availability, the gap to the best possible router, p99 latency and"
            " detection and failover times are spread, and which seeds did worst, each with"
            " the simulate command that replays it. Exit status: 0 every seed held every"
            " routing rule and lost no request, 1 one did not, 2 bad input, 130"
            " interrupted."
        ),
    )
    sweep_parser.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO",
        help="a scenario .toml file or the name of a bundled scenario (default: the default)",
    )
    sweep_parser.add_argument(
        "--seeds",
        required=True,
        metavar="SEEDS",
        help="the seeds: N, FIRST-LAST (inclusive) or a comma-separated list (e.g. 1-1000)",
    )
    sweep_parser.add_argument(
        "--jobs",
        type=_positive,
        metavar="N",
        help="worker processes (default: the CPU count)",
    )
    sweep_parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="events",
        help="the simulation engine of every run (default: events)",
    )
    sweep_parser.add_argument(
        "--no-classes",
        action="store_true",
        help=(
            "count every provider error as a plain failure in every run (default: the"
            " scenario's own setting)"
        ),
    )
    sweep_parser.add_argument(
        "--json",
        metavar="FILE",
        help="write the whole result as JSON to FILE ('-': stdout; default: none)",
    )
    sweep_parser.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="run on the Dask cluster of this scheduler (needs the cluster extra)",
    )
    serve_parser = commands.add_parser(
        "serve",
        help="run a scenario live, on the real clock, behind the HTTP control plane",
        description=(
            "Run a scenario live, behind the HTTP control plane you can poke with curl."
            " The real registry runs on the real clock with the scenario's simulated"
            " providers, traffic and faults (the fault schedule starts over when the"
            " scenario's duration is over). Prints breaker, health and crash events and a"
            " traffic summary every 10 s until Ctrl-C or SIGTERM. Needs the control extra."
            " With --fleet, processes running the same scenario share their verdicts about"
            " its providers (matched by name) through Redis."
            " Exit status: 0 stopped by SIGTERM, 130 by Ctrl-C, 1 the address could not be"
            " bound or a provider failure escalated, 2 bad input."
        ),
    )
    serve_parser.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO",
        help="a scenario .toml file or the name of a bundled scenario (see --list)",
    )
    serve_parser.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)"
    )
    serve_parser.add_argument(
        "--port",
        type=_port,
        default=8080,
        help="the port to listen on (default: 8080; 0 picks a free one)",
    )
    serve_parser.add_argument(
        "--token-file",
        metavar="PATH",
        help="read the bearer token from PATH (default: generate one and print it)",
    )
    serve_parser.add_argument(
        "--seed", type=_seed, metavar="N", help="the random seed (default: the scenario's own)"
    )
    serve_parser.add_argument(
        "--fleet",
        metavar="URL",
        help=(
            "share breaker verdicts with other serve processes through the Redis or Valkey"
            " at URL (redis://[:PASSWORD@]HOST[:PORT][/DB], rediss:// for TLS; needs the"
            " redis extra; default: decide alone)"
        ),
    )
    serve_parser.add_argument(
        "--fleet-node",
        metavar="ID",
        help="this process's node id in the fleet, unique in it (default: the link picks one)",
    )
    serve_parser.add_argument(
        "--fleet-quorum",
        type=_positive,
        metavar="N",
        help=(
            "distinct nodes whose ordinary breaker opens make an open fleet-wide (default:"
            " 1; rate limits and disables apply fleet-wide at once)"
        ),
    )
    serve_parser.add_argument(
        "--list", action="store_true", help="list the bundled scenarios and exit"
    )
    demo_parser = commands.add_parser(
        "demo",
        help="fail the primary LLM of the seed set-up and watch requests fail over",
        description=(
            "Fail the primary LLM of the seed set-up and watch each request fail over and"
            " come back, one line per request, on virtual time. Exit status: 0, 2 bad"
            " input, 130 interrupted."
        ),
    )
    demo_parser.add_argument(
        "--requests", type=int, default=40, help="requests to send (default: 40)"
    )
    demo_parser.add_argument(
        "--fail-at", type=int, default=5, help="request at which openai fails (default: 5)"
    )
    demo_parser.add_argument(
        "--both-at",
        type=int,
        default=15,
        help="request at which anthropic fails too (default: 15)",
    )
    demo_parser.add_argument(
        "--recover-at", type=int, default=25, help="request at which both recover (default: 25)"
    )
    return parser, demo_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ciris-actors`` command.

    Args:
      argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
      The exit status: 0 on success (and for ``serve`` stopped by SIGTERM); 1 when
      ``simulate`` found an invariant violated, or ``serve`` could not bind its address
      or stopped on a provider failure its restart policy escalates; 2 on bad input
      (reported as one line on stderr, without a traceback); 130 when interrupted by
      Ctrl-C; 141 when the reader of its output went away (``| head``), quietly.
    """
    try:
        status = _dispatch(argv)
        sys.stdout.flush()  # here, where a reader that left can be told apart
        return status
    except UsageError as error:
        print(f"{error.prog}: error: {error}", file=sys.stderr)
        return 2
    except BaseException as exc:
        if _only(exc, KeyboardInterrupt):
            print("ciris-actors: interrupted", file=sys.stderr)
            return INTERRUPTED
        if _only(exc, BrokenPipeError):
            # The reader left (`| head`): stop quietly, as Unix tools do, and keep Python
            # from complaining when it flushes stdout at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return BROKEN_PIPE
        raise


def _only(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether *exc* is *kind*, or a group of them (with trio's Cancelled beside them)."""
    if isinstance(exc, kind):
        return True
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(kind)
        if matched is None:
            return False
        return rest is None or rest.split(trio.Cancelled)[1] is None
    return False


def _dispatch(argv: Sequence[str] | None) -> int:
    parser, demo_parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "simulate":
        return simulate.run(
            simulate.SimulateArgs(
                scenario=args.scenario,
                seed=args.seed,
                json=args.json,
                plot=args.plot,
                engine=args.engine,
                list_only=args.list,
                no_classes=args.no_classes,
            )
        )
    if args.command == "sweep":
        return sweep.run(
            sweep.SweepArgs(
                scenario=args.scenario,
                seeds=args.seeds,
                jobs=args.jobs,
                engine=args.engine,
                json=args.json,
                scheduler=args.scheduler,
                no_classes=args.no_classes,
            )
        )
    if args.command == "serve":
        return serve.run(
            serve.ServeArgs(
                scenario=args.scenario,
                seed=args.seed,
                host=args.host,
                port=args.port,
                token_file=args.token_file,
                list_only=args.list,
                fleet=args.fleet,
                fleet_node=args.fleet_node,
                fleet_quorum=args.fleet_quorum,
            )
        )
    if args.requests < 1:
        demo_parser.error("--requests must be >= 1")
    return demo.run(
        demo.DemoArgs(
            requests=args.requests,
            fail_at=args.fail_at,
            both_at=args.both_at,
            recover_at=args.recover_at,
        )
    )
