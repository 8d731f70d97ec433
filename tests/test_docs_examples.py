"""The code in docs/testing.md, run as it is written there: every Python block compiles,
and the blocks marked as run define tests that pass."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

ROOT = Path(__file__).resolve().parent.parent
MARK = "<!-- runs in tests/test_docs_examples.py -->"
BLOCK = re.compile(r"(?P<mark>" + re.escape(MARK) + r"\n)?```python\n(?P<code>.*?)```", re.S)


def blocks() -> list[tuple[str, bool]]:
    """Every Python block of docs/testing.md, and whether it is marked to run."""
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    return [(m["code"], m["mark"] is not None) for m in BLOCK.finditer(text)]


def test_every_python_block_of_the_testing_guide_compiles() -> None:
    found = blocks()
    assert len(found) >= 4
    for index, (code, _) in enumerate(found):
        compile(code, f"docs/testing.md, block {index}", "exec")


@pytest.mark.parametrize(
    "code", [code for code, marked in blocks() if marked], ids=["fake", "faults", "routing"]
)
def test_the_guides_examples_pass(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each marked block's tests run: async ones on an autojumping clock (given as their
    ``autojump_clock``), the others as they are; paths are the repository's."""
    monkeypatch.chdir(ROOT)
    namespace: dict[str, Any] = {"__name__": "docs_testing_example"}
    exec(compile(code, "docs/testing.md", "exec"), namespace)
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert tests
    for test in tests:
        if inspect.iscoroutinefunction(test):
            clock = trio.testing.MockClock(autojump_threshold=0)
            trio.run(test, clock, clock=clock)
        else:
            test()
