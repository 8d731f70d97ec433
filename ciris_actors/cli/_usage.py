"""Bad command-line input: the error every command raises for it, and the argument
parser that raises it too, so that bad input is always one line and exit status 2."""

from __future__ import annotations

import argparse
from typing import NoReturn

__all__ = ["Parser", "UsageError"]


class UsageError(Exception):
    """Bad input: reported as one line ``<prog>: error: <message>``, exit code 2.

    Args:
      prog: the command it is about (``ciris-actors simulate``).
      message: what is wrong.
    """

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and no usage dump."""

    def error(self, message: str) -> NoReturn:
        """Raise :class:`UsageError` for *message*, pointing at ``--help``."""
        raise UsageError(self.prog, f"{message} (see {self.prog} --help)")
