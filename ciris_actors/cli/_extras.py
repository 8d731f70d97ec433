"""Whether an optional extra (``sim``, ``plot``, ``control``) is installed, asked
without importing it."""

from __future__ import annotations

import importlib.util

__all__ = ["available"]


def available(module: str) -> bool:
    """Whether *module* can be imported."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
