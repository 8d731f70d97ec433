"""The mutation score of each pure-core module, from the last ``mutmut run``.

Run by ``benchmarks/mutation.sh`` (or on its own, from the repository root, after a run)::

    python benchmarks/mutation_score.py [--target 95]

For each module in ``[tool.mutmut] only_mutate`` it counts the mutants mutmut made, those
the tests caught (killed, or timed out), those listed as equivalent in
``benchmarks/MUTATION.md`` (no test can tell them from the original), and the rest, and
prints the score: caught / (mutants - equivalent). Then it names every survivor not
listed as equivalent, and every listed one that no longer survives (the list is out of
date: mutant numbers move when a function changes). It exits 1 when a module is below
the target, or the list is out of date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

ROOT = Path(__file__).resolve().parent.parent
NOTES = ROOT / "benchmarks" / "MUTATION.md"
CAUGHT = {"killed", "timeout", "caught by type check"}
MUTANT = re.compile(r"`(ciris_actors\.[^`\s]+__mutmut_\d+)`")


def equivalents() -> set[str]:
    """The mutant names in MUTATION.md's "Equivalent mutants" section."""
    text = NOTES.read_text(encoding="utf-8") if NOTES.exists() else ""
    match = re.search(r"^## Equivalent mutants\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return set(MUTANT.findall(match.group(1))) if match else set()


def modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(config["tool"]["mutmut"]["only_mutate"])


def commit() -> str:
    """The commit the last run measured (recorded by mutation.sh), or else HEAD."""
    recorded = ROOT / "mutants" / "commit.txt"
    if recorded.exists():
        return recorded.read_text(encoding="utf-8").strip().replace("-dirty", " (uncommitted)")
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head} (uncommitted changes)" if dirty else head


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float, default=95.0, help="lowest score, in %%")
    target = parser.parse_args().target
    known = equivalents()
    unexplained: list[str] = []
    stale: list[str] = []
    seen: set[str] = set()
    below = False
    print(f"mutation score of the pure core ({datetime.date.today()}), run at commit {commit()}")
    header = ("module", "mutants", "caught", "equivalent", "survived", "no tests", "score")
    print("{:<26} {:>7} {:>7} {:>10} {:>8} {:>8} {:>8}".format(*header))
    for module in modules():
        meta = ROOT / "mutants" / f"{module}.meta"
        if not meta.exists():
            print(f"{module:<26} not run")
            below = True
            continue
        results = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        counts: Counter[str] = Counter()
        for name, code in sorted(results.items()):
            seen.add(name)
            status = status_by_exit_code[code]
            if status in CAUGHT:
                counts["caught"] += 1
                if name in known:
                    stale.append(f"{name} ({status})")
            elif name in known:
                counts["equivalent"] += 1
            else:
                counts[status] += 1
                unexplained.append(f"{name} ({status})")
        judged = len(results) - counts["equivalent"]
        score = 100.0 * counts["caught"] / judged if judged else 100.0
        below |= score < target
        print(
            f"{module:<26} {len(results):>7} {counts['caught']:>7} {counts['equivalent']:>10}"
            f" {counts['survived']:>8} {counts['no tests']:>8} {score:>7.1f}%"
        )
    stale += sorted(f"{name} (no such mutant)" for name in known - seen)
    if unexplained:
        print("\nNot caught, and not listed as equivalent in benchmarks/MUTATION.md:")
        print("\n".join(f"  {line}" for line in unexplained))
        print("(`mutmut show NAME` shows one; `mutmut browse` all of them.)")
    if stale:
        print("\nListed as equivalent in benchmarks/MUTATION.md, but no longer surviving:")
        print("\n".join(f"  {line}" for line in stale))
    if below:
        print(f"\nBelow the target of {target:g} % in at least one module.")
    return 1 if below or stale else 0


if __name__ == "__main__":
    sys.exit(main())
