"""House style: no function in the package is longer than about 60 lines.

A function's length is its body, docstring included: from the first statement under the
``def`` line to its last line. Nested functions and methods count on their own, and inside
the function that holds them. Model-graph builders, which read top to bottom as the
paper's figure, are the exceptions, each listed below with its reason.
"""

import ast
import sys
from pathlib import Path

MAX_LINES = 60
PACKAGE = Path(__file__).resolve().parents[2] / "xray_seg"

# "module path:qualified name" -> why it may be longer. Keep it short.
ALLOWED = {
    "models/ifbfnet.py:build_ifbfnet": "model graph, read top to bottom as IFBFNet Fig. 2",
}


def function_lengths(root: Path = PACKAGE) -> dict[str, int]:
    """``{"module path:Class.function": body lines}`` for every function under ``root``."""
    lengths = {}

    def walk(node, module, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                lengths[f"{module}:{name}"] = child.end_lineno - child.body[0].lineno + 1
                walk(child, module, name + ".")
            elif isinstance(child, ast.ClassDef):
                walk(child, module, f"{prefix}{child.name}.")

    for path in sorted(root.rglob("*.py")):
        walk(ast.parse(path.read_text(encoding="utf-8")), path.relative_to(root).as_posix(), "")
    return lengths


def test_no_function_longer_than_sixty_lines():
    lengths = function_lengths()
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES and name not in ALLOWED}
    assert not too_long, f"functions longer than {MAX_LINES} lines (split them into named steps): " + ", ".join(
        f"{name} ({n})" for name, n in sorted(too_long.items(), key=lambda kv: -kv[1])
    )


def test_allowlist_is_current():
    lengths = function_lengths()
    stale = [name for name in ALLOWED if lengths.get(name, 0) <= MAX_LINES]
    assert not stale, f"remove from ALLOWED (gone, or now within {MAX_LINES} lines): {stale}"


def test_the_measure(tmp_path):
    (tmp_path / "m.py").write_text(
        "def short():\n    '''Doc.'''\n    return 1\n\n\n"
        "class A:\n    def method(self):\n"
        + "".join(f"        x{i} = {i}\n" for i in range(61))
        + "\n        def inner():\n            pass\n"
    )
    lengths = function_lengths(tmp_path)
    assert lengths["m.py:short"] == 2
    assert lengths["m.py:A.method.inner"] == 1
    assert lengths["m.py:A.method"] == 64  # 61 statements, a blank line, the nested def


if __name__ == "__main__":  # python tests/core/test_function_length.py [PACKAGE_DIR]: the longest ten
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE
    for name, n in sorted(function_lengths(root).items(), key=lambda kv: -kv[1])[:10]:
        print(f"{n:4d}  {name}{'  (allowed: ' + ALLOWED[name] + ')' if name in ALLOWED else ''}")
