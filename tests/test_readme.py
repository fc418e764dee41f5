"""The documentation's commands stay true: every one parses, every subcommand it shows is run,
and the README's Python code runs.

The commands live in ``README.md`` and in the manual pages ``docs/*.md``. Every one is run by a
test, or by the demo, so the docs cannot rot:

1. **Parsing.** Each ``xray-seg ...`` line of a fenced code block (continuation lines joined,
   ``# comments``, a ``$ `` prompt, ``time`` and leading ``VAR=value`` assignments such as
   ``TF_CONFIG=...`` dropped) is parsed by the real parser, :func:`xray_seg.cli.build_parser`.
   In ``README.md`` every fenced block counts; in ``docs/*.md`` the ``console``, ``bash``,
   ``sh`` and ``shell`` blocks do (an untyped block there is a usage synopsis with
   ``[optional]`` parts, not a command). A renamed subcommand or flag, a missing required
   argument or a bad choice fails the test with argparse's message. Placeholders such as
   ``my_voc/`` are fine: they are just strings to the parser. ``train`` commands also resolve
   their preset and ``--set`` overrides into a ``TrainConfig``, so a renamed preset or setting
   fails too. Inline code spans that start with ``xray-seg`` (in prose, often with ``...`` or
   ``[optional]`` parts) are checked more loosely: the subcommand (and a nested one such as
   ``cyclegan train``) exists and each ``--flag`` is one of its options.

2. **Execution.** Every subcommand the docs use must be executed somewhere that runs:

   * by a test in ``tests/``: found with :mod:`ast`, not by grepping text, as a list or tuple
     literal of CLI arguments that is passed to ``main(...)`` (directly or through a variable
     assigned in the same function), e.g. ``main(["convert", ...])``, or that invokes the
     module, e.g. ``[sys.executable, "-m", "xray_seg", "bench", ...]``;
   * by a notebook: a code cell calling ``xray_seg("train", ...)``, the helper every notebook
     defines around ``xray_seg.cli.main``; ``tests/test_notebooks.py`` executes every notebook;
   * by the demo: ``scripts/demo.sh`` runs ``xray-seg demo`` (the demo's own steps call the
     library functions behind synth, convert, train, evaluate, export and predict).

   Only invocations count, not mentions in strings or comments, so a subcommand documented in
   the docs but run nowhere fails this test until a test or notebook runs it.

3. **Python.** The ``python`` blocks of ``README.md`` (and of ``docs/python_api.md`` where it
   exists) run, in order and as one script per page, in a fresh temporary directory with the
   repository on ``PYTHONPATH``: what a reader pastes must work. The other pages' ``python``
   blocks are fragments (``np.asarray(...)`` stands for the reader's scan) and are not run.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import prose_lines

from xray_seg.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
PROGRAM = "xray-seg"
SHELL_LANGUAGES = {"console", "bash", "sh", "shell"}
# Pages whose ``python`` blocks are complete programs (run by test_python_blocks_run).
PYTHON_PAGES = [README]  # docs/python_api.md runs in tests/test_python_api.py, which also checks its results
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")


# ----------------------------------------------------------------------------- README parsing


def fenced_blocks_with_language(markdown: str) -> list[tuple[str, list[str]]]:
    """``(language, lines)`` of every fenced code block (``` or ~~~, possibly indented in a list).

    ``language`` is the info string's first word, lower-cased ("" for an untyped block).
    """
    blocks, current, language = [], None, ""
    for line in markdown.splitlines():
        match = _FENCE.match(line)
        if match:
            if current is None:
                current, language = [], match.group(2).lower()
            else:
                blocks.append((language, current))
                current = None
        elif current is not None:
            current.append(line)
    assert current is None, "a Markdown page has an unclosed code fence"
    return blocks


def fenced_blocks(markdown: str) -> list[list[str]]:
    """The lines of every fenced code block, whatever its language."""
    return [lines for _, lines in fenced_blocks_with_language(markdown)]


def logical_lines(lines: list[str]) -> list[str]:
    """Join shell continuation lines (a trailing backslash)."""
    joined, pending = [], ""
    for line in lines:
        stripped = line.strip()
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
        else:
            joined.append(pending + stripped)
            pending = ""
    if pending:
        joined.append(pending)
    return joined


def command_argv(line: str) -> list[str] | None:
    """The arguments after ``xray-seg`` if ``line`` is an xray-seg command, else None."""
    line = line.strip()
    if line.startswith("$ "):  # a console prompt
        line = line[2:]
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return None
    while tokens and (_ENV_ASSIGNMENT.match(tokens[0]) or tokens[0] == "time"):
        tokens = tokens[1:]
    if not tokens or Path(tokens[0]).name != PROGRAM:
        return None
    return tokens[1:]


def readme_commands(markdown: str, languages: set[str] | None = None) -> list[list[str]]:
    """Every xray-seg command of a page's fenced code blocks, as argv lists.

    ``languages`` limits the blocks to those languages; None takes every block.
    """
    commands = []
    for language, block in fenced_blocks_with_language(markdown):
        if languages is not None and language not in languages:
            continue
        for line in logical_lines(block):
            argv = command_argv(line)
            if argv is not None:
                commands.append(argv)
    return commands


def inline_commands(markdown: str) -> list[list[str]]:
    """Inline code spans that start with ``xray-seg`` (outside fenced blocks), as token lists."""
    spans = []
    for span in _INLINE_CODE.findall("\n".join(prose_lines(markdown))):
        if span.startswith(PROGRAM + " "):
            spans.append(span.replace("[", " ").replace("]", " ").split()[1:])
    return spans


def doc_pages() -> list[Path]:
    """README.md, then the manual's pages ``docs/*.md``."""
    return [README] + sorted(DOCS.glob("*.md"))


def page_commands(path: Path, markdown: str) -> list[list[str]]:
    """The commands of one page: every fenced block of the README, the shell blocks of docs/."""
    return readme_commands(markdown, None if path == README else SHELL_LANGUAGES)


def python_blocks(markdown: str) -> list[str]:
    """The source of every ``python`` fenced block."""
    return ["\n".join(lines) for language, lines in fenced_blocks_with_language(markdown) if language == "python"]


# ----------------------------------------------------------------------------- the CLI


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the CLI has no subcommands")


def resolve_subcommand(tokens: list[str]) -> tuple[argparse.ArgumentParser | None, list[str]]:
    """The parser of the (possibly nested) subcommand ``tokens`` start with, and its name.

    ``["cyclegan", "train", "--a", "x"]`` -> (the ``cyclegan train`` parser, ["cyclegan", "train"]);
    (None, [...]) when the first token is not a subcommand.
    """
    parser, names = build_parser(), []
    for token in tokens:
        try:
            choices = subparsers(parser)
        except AssertionError:
            break
        if token not in choices:
            break
        parser = choices[token]
        names.append(token)
    return (parser if names else None), names


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse with the real CLI parser; an AssertionError carrying argparse's message on failure."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            return build_parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"`{PROGRAM} {shlex.join(argv)}` does not parse: {stderr.getvalue().strip()}") from exc


# ----------------------------------------------------------------------------- who runs what


def _string(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _module_invocation(elements) -> str | None:
    """``[..., "-m", "xray_seg", "<command>", ...]`` -> "<command>"."""
    values = [_string(e) for e in elements]
    for i in range(len(values) - 2):
        if values[i] == "-m" and values[i + 1] == "xray_seg":
            return values[i + 2]
    return None


def invoked_in_python(source: str, helper_names=("main",)) -> set[str]:
    """Subcommands that Python source invokes (see the module docstring for the forms)."""
    tree = ast.parse(source)
    found: set[str] = set()
    scopes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for scope in scopes:
        lists = {}  # variable -> list literal assigned to it in this scope
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign) and isinstance(node.value, (ast.List, ast.Tuple)):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        lists[target.id] = node.value
        for node in ast.walk(scope):
            if isinstance(node, (ast.List, ast.Tuple)):
                command = _module_invocation(node.elts)
                if command:
                    found.add(command)
            if isinstance(node, ast.Call) and _call_name(node) in helper_names and node.args:
                first = node.args[0]
                if isinstance(first, ast.Name) and first.id in lists:
                    first = lists[first.id]
                if isinstance(first, (ast.List, ast.Tuple)) and first.elts:
                    command = _string(first.elts[0])
                elif _call_name(node) != "main":  # the notebook helper takes the arguments directly
                    command = _string(first)
                else:
                    command = None
                if command:
                    found.add(command)
    return found


def invoked_by_tests() -> dict[str, set[str]]:
    """Subcommand -> the test files and notebooks that run it."""
    runners: dict[str, set[str]] = {}
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        for command in invoked_in_python(path.read_text(encoding="utf-8")):
            runners.setdefault(command, set()).add(str(path.relative_to(REPO)))
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for cell in cells:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            # IPython magics (%matplotlib, !pip) are not Python; blank them out before parsing.
            source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
            for command in invoked_in_python(source, helper_names=("main", "xray_seg")):
                runners.setdefault(command, set()).add(f"notebooks/{path.name}")
    return runners


def invoked_by_demo() -> set[str]:
    """Subcommands that ``scripts/demo.sh`` runs."""
    found = set()
    for line in logical_lines((REPO / "scripts" / "demo.sh").read_text(encoding="utf-8").splitlines()):
        argv = command_argv(line.removeprefix("exec "))
        if argv:
            found.add(argv[0])
    return found


# ----------------------------------------------------------------------------- the tests

README_TEXT = README.read_text(encoding="utf-8")
PAGES = {path: path.read_text(encoding="utf-8") for path in doc_pages()}
COMMANDS = readme_commands(README_TEXT)  # the README's own commands
PAGE_COMMANDS = [(path, argv) for path, text in PAGES.items() for argv in page_commands(path, text)]
ALL_COMMANDS = [argv for _, argv in PAGE_COMMANDS]
INLINE = {path: inline_commands(text) for path, text in PAGES.items()}
MAIN_COMMANDS = {"convert", "data-stats", "show-batch", "train", "evaluate", "export", "predict"}


def _page(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_readme_has_the_main_commands():
    """The extractor finds the commands (guards against a README or extractor change hiding them all)."""
    used = {argv[0] for argv in COMMANDS}
    assert used >= MAIN_COMMANDS, used


def test_docs_have_the_main_commands_and_every_page_is_read():
    """The manual's pages are found, and their shell blocks yield the commands of every stage."""
    names = {path.name for path in PAGES}
    assert {"README.md", "data.md", "training.md", "evaluation.md", "station.md"} <= names, names
    used = {argv[0] for argv in ALL_COMMANDS}
    assert MAIN_COMMANDS | {"synth", "compare", "cyclegan", "bench"} <= used, used
    for page in ("data.md", "training.md", "evaluation.md", "station.md"):
        assert any(path.name == page for path, _ in PAGE_COMMANDS), f"no command found in docs/{page}"


@pytest.mark.parametrize(
    "argv", ALL_COMMANDS, ids=[f"{_page(path)}: {' '.join(argv)}"[:80] for path, argv in PAGE_COMMANDS]
)
def test_readme_command_parses(argv):
    args = parse(argv)
    if argv[0] == "train" and not args.resume:
        from xray_seg.commands.train import build_config

        build_config(args)  # ConfigError for an unknown preset or --set key


def test_readme_inline_commands_use_real_subcommands_and_flags():
    assert INLINE[README], "expected inline `xray-seg ...` spans in the README prose"
    problems = []
    for path, spans in INLINE.items():
        for tokens in spans:
            parser, names = resolve_subcommand(tokens)
            if parser is None:
                problems.append(f"{_page(path)}: unknown subcommand in `{PROGRAM} {' '.join(tokens)}`")
                continue
            options = set(parser._option_string_actions)
            for token in tokens[len(names) :]:
                flag = token.split("=", 1)[0]
                if flag.startswith("--") and flag not in options:
                    problems.append(f"{_page(path)}: `{PROGRAM} {' '.join(names)}` has no option {flag}")
    assert not problems, "\n".join(problems)


def test_every_readme_subcommand_is_run_by_a_test_or_the_demo():
    used = {argv[0] for argv in ALL_COMMANDS} | {tokens[0] for spans in INLINE.values() for tokens in spans if tokens}
    runners = invoked_by_tests()
    demo = invoked_by_demo()
    assert demo == {"demo"}, demo
    not_run = sorted(command for command in used if command not in runners and command not in demo)
    assert not not_run, (
        f"subcommands in README.md or docs/ that no test, notebook or the demo runs: {not_run}. "
        "Run each from a test (main([...]) or [sys.executable, '-m', 'xray_seg', ...]) or a notebook."
    )


def test_execution_finder_sees_invocations_not_mentions():
    """The AST finder counts calls only; a subcommand merely named in a string or comment is not run."""
    source = (
        "def test_a(tmp_path):\n"
        "    args = ['show-batch', str(tmp_path)]\n"
        "    assert main(args) == 0\n"
        "    subprocess.run([sys.executable, '-m', 'xray_seg', 'bench', 'm.keras'])\n"
        "    main(['models'])\n"
        "    note = 'train'  # xray-seg evaluate\n"
        "    print(['evaluate', 'x'])\n"
    )
    assert invoked_in_python(source) == {"show-batch", "bench", "models"}
    assert invoked_in_python("xray_seg('train', voc)\n", helper_names=("main", "xray_seg")) == {"train"}


def test_extractor_reads_shell_blocks_of_docs_but_not_synopses_or_python():
    """In docs/, console/bash/sh blocks are commands; an untyped synopsis and Python are not."""
    page = (
        "```console\n$ xray-seg models --names-only\n```\n"
        "```bash\ntime xray-seg synth out --num 2 \\\n    --seed 1   # two bags\n```\n"
        "```\nxray-seg compare --data VOC [--seeds N]\n```\n"
        "```python\nprint('xray-seg train')\n```\n"
    )
    assert page_commands(DOCS / "example.md", page) == [
        ["models", "--names-only"],
        ["synth", "out", "--num", "2", "--seed", "1"],
    ]
    assert len(page_commands(README, page)) == 3  # the README keeps reading every block
    assert python_blocks(page) == ["print('xray-seg train')"]
    parser, names = resolve_subcommand(["cyclegan", "translate", "--run-dir", "R"])
    assert names == ["cyclegan", "translate"] and "--labelme-dir" in parser._option_string_actions


def test_models_table_matches_the_registry():
    from xray_seg.models.registry import available_models

    section = PAGES[DOCS / "models.md"].split("## Which one to pick", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z0-9_]+)`", section, flags=re.MULTILINE))
    assert documented == {spec.name for spec in available_models()}


def test_presets_named_in_the_readme_exist():
    bundled = {p.stem for p in (REPO / "xray_seg" / "presets").glob("*.yaml")}
    presets_bullet = PAGES[DOCS / "training.md"].split("**Presets**", 1)[1].split("\n- ", 1)[0]
    listed = set(re.findall(r"`([a-z0-9]+_[a-z0-9_]+)`", presets_bullet))
    used = set(re.findall(r"--preset ([a-z0-9_]+)(?![\w.])", "\n".join(PAGES.values())))
    assert {"cwf_xray512", "demo_cpu"} <= listed, listed
    assert listed | used <= bundled, (listed | used) - bundled
    assert listed == bundled, f"presets not described in docs/training.md: {sorted(bundled - listed)}"


def test_readme_has_a_python_api_block():
    blocks = python_blocks(README_TEXT)
    assert blocks, "the README's Python API section has no python block"
    assert any("import xray_seg" in block for block in blocks)


@pytest.mark.parametrize("page", [p for p in PYTHON_PAGES if p.is_file()], ids=_page)
def test_python_blocks_run(page, tmp_path):
    """A page's python blocks run in order, as one script, in a fresh directory (what a reader pastes)."""
    blocks = python_blocks(page.read_text(encoding="utf-8"))
    if not blocks:
        pytest.skip(f"{_page(page)} has no python block")
    script = tmp_path / "doc_example.py"
    script.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("KERAS_BACKEND", "tensorflow")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, (
        f"the python blocks of {_page(page)} failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
    )
