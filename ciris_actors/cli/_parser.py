"""The ``ciris-actors`` argument parser, and :func:`main`, which hands each subcommand
its typed arguments and turns bad input into one line on stderr."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import demo, serve, simulate
from ._usage import Parser, UsageError

__all__ = ["main"]


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
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
        prog="ciris-actors", description="Trio-native provider supervision and routing."
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    simulate_parser = commands.add_parser(
        "simulate",
        help="run a fault-injection scenario on virtual time and summarize it",
        description=(
            "Run a fault-injection scenario on trio's virtual clock: the real registry,"
            " actors and routing, simulated providers. Without SCENARIO, an hour of the"
            " seed's LLM set-up under an outage, a flapping local model and a crash loop."
            " Exit status: 0 all invariants held, 1 invariant violations, 2 bad input."
        ),
    )
    simulate_parser.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO",
        help="a scenario .toml file or the name of a bundled scenario (see --list)",
    )
    simulate_parser.add_argument(
        "--seed", type=_seed, metavar="N", help="override the scenario's random seed"
    )
    simulate_parser.add_argument(
        "--json", metavar="FILE", help="write the full report as JSON to FILE ('-': stdout)"
    )
    simulate_parser.add_argument(
        "--plot", metavar="FILE.png", help="write a timeline picture (needs the plot extra)"
    )
    simulate_parser.add_argument(
        "--list", action="store_true", help="list the bundled scenarios and exit"
    )
    serve_parser = commands.add_parser(
        "serve",
        help="run a scenario live, on the real clock, behind the HTTP control plane",
        description=(
            "Run a scenario live: the real registry on the real clock, the scenario's"
            " simulated providers, traffic and faults (the fault schedule starts over when"
            " the scenario's duration is over), and the HTTP control plane to watch and"
            " poke it with curl. Prints breaker, health and crash events and a traffic"
            " summary every 10 s. Ctrl-C or SIGTERM stops it. Needs the control extra."
            " Exit status: 0 stopped, 1 the address could not be bound or a provider failure"
            " escalated, 2 bad input."
        ),
    )
    serve_parser.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO",
        help="a scenario .toml file or the name of a bundled scenario (see --list)",
    )
    serve_parser.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)"
    )
    serve_parser.add_argument(
        "--port",
        type=_port,
        default=8080,
        help="the port to listen on (default 8080; 0 picks a free one)",
    )
    serve_parser.add_argument(
        "--token-file",
        metavar="PATH",
        help="read the bearer token from PATH (default: generate one and print it)",
    )
    serve_parser.add_argument(
        "--seed", type=_seed, metavar="N", help="override the scenario's seed"
    )
    serve_parser.add_argument(
        "--list", action="store_true", help="list the bundled scenarios and exit"
    )
    demo_parser = commands.add_parser(
        "demo", help="fail the primary LLM of the seed set-up and watch requests fail over"
    )
    demo_parser.add_argument(
        "--requests", type=int, default=40, help="requests to send (default 40)"
    )
    demo_parser.add_argument("--fail-at", type=int, default=5, help="request at which openai fails")
    demo_parser.add_argument(
        "--both-at", type=int, default=15, help="request at which anthropic fails too"
    )
    demo_parser.add_argument(
        "--recover-at", type=int, default=25, help="request at which both recover"
    )
    return parser, demo_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ciris-actors`` command.

    Args:
      argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
      The exit status: 0 on success (for ``serve``, stopped by Ctrl-C or SIGTERM); 1 when
      ``simulate`` found an invariant violated, or ``serve`` could not bind its address
      or stopped on a provider failure its restart policy escalates; 2 on bad input
      (reported as one line on stderr, without a traceback).
    """
    parser, demo_parser = _parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "simulate":
            return simulate.run(
                simulate.SimulateArgs(
                    scenario=args.scenario,
                    seed=args.seed,
                    json=args.json,
                    plot=args.plot,
                    list_only=args.list,
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
                )
            )
        if args.requests < 1:
            demo_parser.error("--requests must be >= 1")
    except UsageError as error:
        print(f"{error.prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ciris-actors: interrupted", file=sys.stderr)
        return 130
    # The demo runs outside the handlers above, as it always has.
    return demo.run(
        demo.DemoArgs(
            requests=args.requests,
            fail_at=args.fail_at,
            both_at=args.both_at,
            recover_at=args.recover_at,
        )
    )
