"""Fail when a function of the pure core is longer than LIMIT lines (issue 15: a core a maintainer can hold
in their head). Complexity is ruff's C901 (ruff.toml); this is the other half. Usage: python hack/function_length.py"""

from __future__ import annotations

import ast
import pathlib
import sys

LIMIT = 60
ROOT = pathlib.Path(__file__).resolve().parent.parent / "plugins" / "module_utils"


def main() -> int:
    long = []
    for path in sorted(ROOT.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > LIMIT:
                long.append(f"{path.name}:{node.lineno}: {node.name} has {node.end_lineno - node.lineno + 1} lines (at most {LIMIT})")
    for line in long:
        print(line, file=sys.stderr)
    return 1 if long else 0


if __name__ == "__main__":
    sys.exit(main())
