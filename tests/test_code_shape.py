"""The shape the code keeps: short functions, so that each one can be read whole.

Issue 9 set it: no function over about 80 lines in src/. A function that grows past it is split
into named steps rather than added to the allow-list below (which lists what is left to split,
and should only shrink).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "whathappens"
MAX_LINES = 80

# Left to split (file, function): remove an entry when its function is split.
ALLOWED: set[tuple[str, str]] = set()


def long_functions() -> list[tuple[int, str, str]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    out.append((lines, str(path.relative_to(SRC)), node.name))
    return out


def test_no_function_is_longer_than_80_lines() -> None:
    found = [(n, f, name) for n, f, name in long_functions() if (f, name) not in ALLOWED]
    assert found == [], "split these into named steps: " + "; ".join(
        f"{f}:{name} ({n} lines)" for n, f, name in found)


def test_the_allow_list_only_names_functions_that_are_still_long() -> None:
    long = {(f, name) for _, f, name in long_functions()}
    assert long >= ALLOWED, f"already short, remove from ALLOWED: {sorted(ALLOWED - long)}"
