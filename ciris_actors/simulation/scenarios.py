"""The built-in default scenario and the bundled scenario files.

The files live in the repository's ``simulations/`` folder; a wheel carries them inside
the package (``scenarios/``), so both a checkout and an installed package find them.
"""

from __future__ import annotations

from pathlib import Path

from .model import Scenario, parse_scenario

__all__ = ["bundled_scenarios", "default_scenario", "scenario_folder"]

#: The seed design's three-group LLM set-up under an hour of traffic and five faults.
_DEFAULT = {
    "name": "default",
    "description": (
        "The seed's three-group LLM set-up: openai goes down for ten minutes (anthropic"
        " too, for two of them), a local model's health flaps, the last-resort mock"
        " crash-loops, and openai slows down by 20 s for two minutes."
    ),
    "seed": 1,
    "registry": {
        "health_check_interval": 10.0,
        "breaker": {
            "failure_threshold": 5,
            "recovery_timeout": 30.0,
            "success_threshold": 3,
            "timeout_duration": 10.0,
        },
        "restart_policy": {"max_restarts": 3, "within": 60.0, "initial": 1.0},
    },
    "providers": [
        {"name": "openai", "group": 0, "priority": "CRITICAL",
         "capabilities": ["structured_output"],
         "latency": {"distribution": "lognormal", "median": 0.8, "p99": 3.0},
         "error_rate": 0.002},
        {"name": "anthropic", "group": 0, "priority": "HIGH",
         "capabilities": ["structured_output"],
         "latency": {"distribution": "lognormal", "median": 1.0, "p99": 4.0},
         "error_rate": 0.002},
        {"name": "local-1", "group": 1, "strategy": "round_robin",
         "capabilities": ["structured_output"],
         "latency": {"distribution": "lognormal", "median": 2.0, "p99": 6.0},
         "error_rate": 0.01},
        {"name": "local-2", "group": 1, "strategy": "round_robin",
         "capabilities": ["structured_output"],
         "latency": {"distribution": "lognormal", "median": 2.0, "p99": 6.0},
         "error_rate": 0.01},
        {"name": "local-3", "group": 1, "strategy": "round_robin",
         "latency": {"distribution": "lognormal", "median": 2.5, "p99": 8.0},
         "error_rate": 0.01},
        {"name": "mock", "group": 2, "priority": "FALLBACK",
         "capabilities": ["structured_output"],
         "latency": {"distribution": "fixed", "median": 0.05}},
    ],
    "workload": {
        "duration": 3600.0,
        "rate": 50.0,
        "mode": "call",
        "mix": [
            {"handler": "*", "service_type": "llm", "required_capabilities": ["structured_output"],
             "weight": 3.0},
            {"handler": "*", "service_type": "llm", "weight": 1.0},
        ],
    },
    "faults": [
        # Start times sit between health-check ticks (every 10 s from t=0), as real faults
        # do; a fault starting exactly on a tick would be detected at once.
        {"kind": "outage", "provider": "openai", "at": 603.7, "duration": 600.0},
        {"kind": "outage", "provider": "anthropic", "at": 904.2, "duration": 120.0},
        {"kind": "flap", "provider": "local-2", "at": 1506.1, "duration": 600.0,
         "period": 25.0},
        {"kind": "crash", "provider": "mock", "at": 2402.5, "duration": 60.0,
         "interval": 5.0},
        {"kind": "latency", "provider": "openai", "at": 3005.3, "duration": 120.0,
         "added_latency": 20.0},
    ],
}  # fmt: skip


def default_scenario() -> Scenario:
    """The scenario ``ciris-actors simulate`` runs when given none."""
    return parse_scenario(_DEFAULT, default_name="default")


def scenario_folder() -> Path | None:
    """Where the bundled scenario files are: inside an installed wheel, or the
    ``simulations/`` folder of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "scenarios", here.parent.parent / "simulations"):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    return None


def bundled_scenarios() -> dict[str, Path]:
    """The bundled scenario files by name (file stem), sorted."""
    folder = scenario_folder()
    if folder is None:
        return {}
    return {path.stem: path for path in sorted(folder.glob("*.toml"))}
