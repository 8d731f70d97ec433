"""The scenario a command names (a file, a bundled scenario, or the default), and the
list of bundled scenarios ``--list`` prints."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from ..simulation import (
    Scenario,
    ScenarioError,
    bundled_scenarios,
    default_scenario,
    load_scenario,
)
from ._render import wrap

__all__ = ["list_scenarios", "resolve_scenario"]


def resolve_scenario(spec: str | None) -> Scenario:
    """The scenario *spec* names: a TOML file, a bundled scenario, or (None) the default.

    Raises:
      ScenarioError: the file is unreadable or invalid, or the name is unknown.
    """
    if spec is None:
        return default_scenario()
    path = Path(spec)
    bundled = bundled_scenarios()
    if spec in bundled and not path.exists():
        return load_scenario(bundled[spec])
    if path.suffix != ".toml" and not path.exists():
        known = ", ".join(bundled) or "none"
        raise ScenarioError(
            f"{spec}: no such file and no bundled scenario of that name"
            f" (bundled: {known}; see --list)"
        )
    return load_scenario(path)


def list_scenarios(prog: str, out: TextIO) -> None:
    """Print the default and the bundled scenarios, with their descriptions, to *out*."""
    rows = [("(default)", default_scenario().description)]
    for name, path in bundled_scenarios().items():
        try:
            description = load_scenario(path).description or "-"
        except ScenarioError as exc:
            description = f"(invalid: {exc})"
        rows.append((name, description))
    width = max(len(name) for name, _ in rows)
    print(f"Bundled scenarios ({prog} NAME, or a path to your own .toml):", file=out)
    for name, description in rows:
        indent = " " * (width + 4)
        for line in wrap(description, indent=indent, first=f"  {name.ljust(width)}  "):
            print(line, file=out)
