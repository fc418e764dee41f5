"""docs/importers.md stays true: its worked examples are run and their printed output compared."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from xray_seg.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "importers.md"


def console_blocks(text: str) -> list[list[tuple[str, list[str]]]]:
    """Each ```console block as ``[(command, expected output lines), ...]`` (heredocs and ``\\`` joined)."""
    blocks = []
    for body in re.findall(r"```console\n(.*?)```", text, re.S):
        steps: list[tuple[str, list[str]]] = []
        lines = body.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if not line.startswith("$ "):
                steps[-1][1].append(line)
                i += 1
                continue
            command = line[2:]
            while command.endswith("\\"):
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            if "<<'EOF'" in command:
                end = lines.index("EOF", i)
                command = "\n".join([command, *lines[i + 1 : end + 1]])
                i = end
            steps.append((command, []))
            i += 1
        blocks.append(steps)
    return blocks


def normalise(text: str, folder: Path) -> str:
    text = text.replace(str(folder), "<dir>").replace("/tmp/docex", "<dir>")
    text = re.sub(r"\d+\.\d s, \d+ worker\(s\)", "T s, N worker(s)", text)
    return text.strip()


def test_every_xray_seg_command_parses():
    parser = build_parser()
    commands = [c for block in console_blocks(DOC.read_text()) for c, _ in block if c.startswith("xray-seg ")]
    assert len(commands) >= 5
    for command in commands:
        parser.parse_args(shlex.split(command)[1:])


@pytest.mark.parametrize("block", [0, 2], ids=["coco", "pixray"])
def test_worked_example_runs_as_shown(tmp_path, block):
    steps = console_blocks(DOC.read_text())[block]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for command, expected in steps:
        command = re.sub(r"^xray-seg ", f"{shlex.quote(sys.executable)} -m xray_seg.cli ", command)
        command = re.sub(r"^python ", f"{shlex.quote(sys.executable)} ", command)
        done = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        got = normalise(done.stdout + done.stderr, tmp_path)
        assert got == normalise("\n".join(expected), tmp_path), command
