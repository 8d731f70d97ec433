"""The ``ciris-actors`` command.

``ciris-actors simulate`` runs a fault-injection scenario (an hour of the seed's LLM
set-up by default) on trio's virtual clock and prints a summary; ``--json`` and
``--plot`` write the full report and a timeline picture. ``ciris-actors serve`` runs a
scenario live, on the real clock, behind the HTTP control plane, and prints what happens
until Ctrl-C. ``ciris-actors demo`` fails the primary of the seed set-up and prints which
provider each request went to.

One module per subcommand (:mod:`.simulate`, :mod:`.serve`, :mod:`.demo`); the parser
and :func:`main` are in ``_parser.py``, the shared formatting in ``_render.py``.
"""

from ._parser import main

__all__ = ["main"]
