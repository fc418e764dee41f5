"""The stage order of docs/architecture.md ("Stage order"), checked on the source with ``ast``.

Nothing of the package is imported: every ``xray_seg/**/*.py`` is parsed, and each import of
one of our own modules (absolute or relative, at module top or inside a function, and
``importlib.import_module("xray_seg....")`` with a literal name) is resolved to the module
file it loads. Three rules:

(a) a module imports only from its own stage and the stages below it;
(b) no cycle between our modules (Tarjan's strongly connected components over every import);
(c) imports of our own modules inside functions only on the app floor, where they keep
    ``import xray_seg`` and ``xray-seg --help`` free of TensorFlow; elsewhere they go at module
    top, except the few in ``FUNCTION_LEVEL_ALLOWED``, each with its reason.

``test_checker_*`` run the same checker on small synthetic trees, so a checker that finds
nothing fails too.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "xray_seg"

# The stage order, bottom first (docs/architecture.md, "Stage order"). A module belongs to the
# stage of its first folder under xray_seg/; modules directly in xray_seg/ are listed by name.
STAGES = [
    ("core", ["core", "presets"]),
    ("conversion", ["conversion"]),
    ("synthesis", ["synthesis"]),
    ("pipeline", ["pipeline"]),
    ("layers", ["layers"]),
    ("models", ["models"]),
    ("inference", ["inference"]),
    ("evaluation", ["evaluation"]),
    ("training", ["training"]),
    ("serving", ["serving"]),
    ("app", ["__init__.py", "__main__.py", "cli.py", "demo.py", "keras_objects.py", "segmenter.py", "commands"]),
]
APP = "app"

# Function-level imports of our own modules outside the app floor: (importing file, imported
# module) -> why it cannot sit at module top.
FUNCTION_LEVEL_ALLOWED = {
    ("xray_seg/layers/norm.py", "xray_seg.core.tf_kernels"): (
        "the TensorFlow fused batch-norm kernel, imported only after checking the backend is TensorFlow "
        "(layers and models build on JAX and PyTorch too)"
    ),
}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module, dotted
    path: str  # importing file, relative to the root
    line: int
    in_function: bool


def module_name(root: Path, file: Path) -> str:
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def stage_of(module: str, stages=STAGES) -> str:
    """The stage of a dotted module name of the package (``xray_seg`` itself: the app floor)."""
    parts = module.split(".")[1:]
    folders = {name for _, names in stages for name in names}
    if not parts:
        key = "__init__.py"
    elif len(parts) == 1 and parts[0] not in folders:
        key = f"{parts[0]}.py"  # a module directly in xray_seg/
    else:
        key = parts[0]
    for stage, names in stages:
        if key in names:
            return stage
    raise AssertionError(f"{module}: in no stage of the stage order; add it to STAGES and docs/architecture.md")


class _Collector(ast.NodeVisitor):
    """Own-module imports of one file, each with its line and whether it sits in a function."""

    def __init__(self, resolve):
        self.resolve = resolve
        self.depth = 0
        self.found: list[tuple[str, int, bool]] = []

    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _add(self, targets, line):
        self.found += [(t, line, self.depth > 0) for t in targets]

    def visit_Import(self, node):
        self._add([self.resolve(alias.name, None, 0) for alias in node.names], node.lineno)

    def visit_ImportFrom(self, node):
        names = [alias.name for alias in node.names]
        self._add([self.resolve(node.module, name, node.level) for name in names], node.lineno)

    def visit_Call(self, node):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name == "import_module" and node.args and isinstance(node.args[0], ast.Constant):
            value = node.args[0].value
            if isinstance(value, str) and not value.startswith("."):
                self._add([self.resolve(value, None, 0)], node.lineno)
        self.generic_visit(node)


def collect_imports(root: Path) -> tuple[list[str], list[Import]]:
    """``(every module, every own-module import)`` of the package under ``root/xray_seg``."""
    files = sorted((root / PACKAGE).rglob("*.py"))
    modules = {module_name(root, f): f for f in files}

    def existing(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    imports: list[Import] = []
    for module, file in modules.items():
        package = module if file.name == "__init__.py" else module.rpartition(".")[0]

        def resolve(name, member, level, package=package):
            if level:
                base = package.split(".")
                base = base[: len(base) - (level - 1)]
                name = ".".join(base + ([name] if name else []))
            if not name or name.split(".")[0] != PACKAGE:
                return None
            if member and f"{name}.{member}" in modules:
                return f"{name}.{member}"  # from package import submodule
            return existing(name)

        collector = _Collector(resolve)
        collector.visit(ast.parse(file.read_text(encoding="utf-8"), filename=str(file)))
        path = file.relative_to(root).as_posix()
        imports += [Import(module, t, path, line, inner) for t, line, inner in collector.found if t and t != module]
    return sorted(modules), sorted(set(imports), key=lambda i: (i.path, i.line, i.target))


def upward_imports(imports: list[Import], stages=STAGES) -> list[str]:
    """Rule (a): ``file:line: stage A imports module (stage B above it)``."""
    rank = {stage: i for i, (stage, _) in enumerate(stages)}
    out = []
    for imp in imports:
        low, high = stage_of(imp.source, stages), stage_of(imp.target, stages)
        if rank[high] > rank[low]:
            where = "inside a function" if imp.in_function else "at module top"
            out.append(
                f"{imp.path}:{imp.line}: {low} (stage {rank[low]}) imports {imp.target} "
                f"of {high} (stage {rank[high]}), {where}"
            )
    return out


def cycles(modules: list[str], imports: list[Import], stages=STAGES) -> list[list[str]]:
    """Rule (b): strongly connected components of more than one module (Tarjan) over the
    imports inside each stage, its folders and their subfolders. A cycle across stages has an
    upward import, which rule (a) reports."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        if stage_of(imp.source, stages) == stage_of(imp.target, stages):
            graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node):  # iterative Tarjan: the package's import chains can be deep
        work = [(node, iter(sorted(graph[node])))]
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        while work:
            current, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[current] = min(low[current], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[current])
            if low[current] == index[current]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == current:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            connect(module)
    return sorted(found)


def function_level_imports(imports: list[Import], stages=STAGES, allowed=None) -> list[str]:
    """Rule (c): own-module imports inside functions outside the app floor, less the allowlist."""
    allowed = FUNCTION_LEVEL_ALLOWED if allowed is None else allowed
    return [
        f"{imp.path}:{imp.line}: imports {imp.target} inside a function ({stage_of(imp.source, stages)} stage)"
        for imp in imports
        if imp.in_function and stage_of(imp.source, stages) != APP and (imp.path, imp.target) not in allowed
    ]


def _report(title: str, problems: list) -> str:
    return f"{len(problems)} {title}:\n" + "\n".join(str(p) for p in problems)


# --------------------------------------------------------------------------- the package


def _package():
    return collect_imports(REPO)


def test_every_module_has_a_stage():
    modules, _ = _package()
    assert len(modules) > 50
    for module in modules:
        stage_of(module)


def test_stages_import_only_downwards():
    _, imports = _package()
    problems = upward_imports(imports)
    assert not problems, _report("imports against the stage order", problems)


def test_no_import_cycles():
    problems = cycles(*_package())
    assert not problems, _report("import cycles", [" <-> ".join(c) for c in problems])


def test_function_level_imports_only_on_the_app_floor():
    _, imports = _package()
    problems = function_level_imports(imports)
    assert not problems, _report("function-level imports of our modules outside the app floor", problems)


def test_docs_state_the_same_order():
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Stage order", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| ") and line[2:3].isdigit()]
    documented = [folder.strip().strip("`/") for _, folder in rows]
    assert documented == [stage for stage, _ in STAGES], documented


def test_allowlist_is_still_needed():
    _, imports = _package()
    used = {(imp.path, imp.target) for imp in imports if imp.in_function}
    assert set(FUNCTION_LEVEL_ALLOWED) <= used, set(FUNCTION_LEVEL_ALLOWED) - used


# --------------------------------------------------------------------------- the checker itself

_SMALL_STAGES = [("low", ["low"]), ("high", ["high"]), (APP, ["__init__.py", "cli.py"])]


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_checker_finds_upward_imports_top_level_and_in_functions(tmp_path):
    root = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "cli.py": "def main():\n    from xray_seg.high import b\n",
            "low/__init__.py": "",
            "low/a.py": "import os\nfrom xray_seg.high.b import thing\n",
            "low/c.py": "def f():\n    from ..high import b\n    from . import a\n",
            "high/__init__.py": "",
            "high/b.py": "from xray_seg.low import a\nimport xray_seg.low.c\nthing = 1\n",
        },
    )
    modules, imports = collect_imports(root)
    assert "xray_seg.low.a" in modules and "xray_seg" in modules
    problems = upward_imports(imports, _SMALL_STAGES)
    assert problems == [
        "xray_seg/low/a.py:2: low (stage 0) imports xray_seg.high.b of high (stage 1), at module top",
        "xray_seg/low/c.py:2: low (stage 0) imports xray_seg.high.b of high (stage 1), inside a function",
    ]
    inner = function_level_imports(imports, _SMALL_STAGES, allowed={})
    assert inner == [
        "xray_seg/low/c.py:2: imports xray_seg.high.b inside a function (low stage)",
        "xray_seg/low/c.py:3: imports xray_seg.low.a inside a function (low stage)",
    ]  # cli.py is the app floor: its function-level import is fine
    allowed = {("xray_seg/low/c.py", "xray_seg.low.a"): "reason"}
    assert len(function_level_imports(imports, _SMALL_STAGES, allowed=allowed)) == 1


def test_checker_resolves_relative_imports(tmp_path):
    root = _tree(
        tmp_path,
        {
            "__init__.py": "from .low import a\n",
            "low/__init__.py": "from . import a\nfrom .a import x\n",
            "low/a.py": "x = 1\n",
            "low/deep/__init__.py": "",
            "low/deep/d.py": "from ...low.a import x\nfrom .. import a\nfrom ... import low\n",
        },
    )
    _, imports = collect_imports(root)
    edges = {(i.source, i.target) for i in imports}
    assert edges == {
        ("xray_seg", "xray_seg.low.a"),
        ("xray_seg.low", "xray_seg.low.a"),
        ("xray_seg.low.deep.d", "xray_seg.low.a"),
        ("xray_seg.low.deep.d", "xray_seg.low"),
    }


def test_checker_finds_cycles_inside_a_folder(tmp_path):
    root = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "low/__init__.py": "",
            "low/a.py": "from xray_seg.low import b\n",
            "low/b.py": "def f():\n    from xray_seg.low.c import y\n",
            "low/c.py": "import importlib\ny = importlib.import_module('xray_seg.low.a')\n",
            "low/d.py": "from xray_seg.low import a\n",
        },
    )
    stages = [("low", ["low"]), (APP, ["__init__.py"])]
    assert cycles(*collect_imports(root), stages) == [["xray_seg.low.a", "xray_seg.low.b", "xray_seg.low.c"]]


# --------------------------------------------------------------------------- a summary by stage


def violations_by_stage() -> dict[str, dict[str, int]]:
    """Counts of each rule's findings by importing stage (``python tests/test_architecture.py``)."""
    modules, imports = _package()
    counts: dict[str, dict[str, int]] = {
        stage: {"upward": 0, "function-level": 0, "in cycles": 0} for stage, _ in STAGES
    }
    for line in upward_imports(imports):
        counts[stage_of(_module_of(line))]["upward"] += 1
    for line in function_level_imports(imports):
        counts[stage_of(_module_of(line))]["function-level"] += 1
    for component in cycles(modules, imports):
        for module in component:
            counts[stage_of(module)]["in cycles"] += 1
    return counts


def _module_of(line: str) -> str:
    return line.split(":")[0].removesuffix(".py").removesuffix("/__init__").replace("/", ".")


if __name__ == "__main__":
    modules, imports = _package()
    for title, problems in (
        ("upward imports", upward_imports(imports)),
        ("function-level imports", function_level_imports(imports)),
        ("cycles", [" <-> ".join(c) for c in cycles(modules, imports)]),
    ):
        print(_report(title, problems), end="\n\n")
    for stage, found in violations_by_stage().items():
        print(f"{stage:12s} " + ", ".join(f"{k} {v}" for k, v in found.items()))
