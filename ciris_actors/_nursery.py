"""Helpers for the nurseries our context managers open around their caller's block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["unwrap_single_exception"]


@contextmanager
def unwrap_single_exception() -> Iterator[None]:
    """Re-raise a one-exception group from a nursery as that exception.

    A context manager that opens a nursery around its caller's block would otherwise
    hand the caller's own exception back wrapped in an ``ExceptionGroup``; this gives it
    back unwrapped, as a plain context manager would, with the context it had (raising it
    from here would replace that context with the group).
    """
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        error = group.exceptions[0]
        context, suppress = error.__context__, error.__suppress_context__
        try:
            raise error
        finally:
            error.__context__, error.__suppress_context__ = context, suppress
            del error
