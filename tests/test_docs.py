"""The documentation's links resolve, and docs/architecture.md lists the package as it is.

1. **Links.** Every relative Markdown link and image in ``README.md`` and ``docs/*.md``
   (outside code blocks and inline code) points to a file that exists, relative to the page;
   a ``#fragment`` must name a heading of the target page, with GitHub's anchor rule
   (lower case, punctuation dropped, spaces to hyphens, ``-1``, ``-2``, ... for repeats).
   Web links (``http:``, ``https:``, ``mailto:``) are not followed: there is no network.
2. **Today, not history.** ``README.md`` and ``docs/*.md`` state what holds today; the
   round-by-round history ("this round", "previous round", "issue 17's protocol") lives in
   ``CHANGELOG.md``, which this check leaves alone.
3. **Layout.** The layout table of ``docs/architecture.md`` names every module of
   ``xray_seg/`` (as ``sub/module.py`` relative to the package) and every subpackage, and
   every module it names exists, so the design document cannot drift from the tree.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _helpers import prose_lines

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "xray_seg"
ARCHITECTURE = REPO / "docs" / "architecture.md"
PAGES = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))

_INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target), with an optional "title"; text may hold inline code.
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_EXTERNAL = ("http://", "https://", "mailto:")
# Phrases that date a page: they belong in CHANGELOG.md.
_HISTORY = re.compile(r"this round|previous round|issue\s*#?\d+", re.IGNORECASE)


def links(markdown: str) -> list[str]:
    """Targets of the Markdown links and images in a page's prose (not in code)."""
    found = []
    for line in prose_lines(markdown):
        # Inline code can hold brackets and parentheses (`[B, H, W]`, `f(x)`), never links;
        # blank it out but keep link texts that are inline code: [`a.md`](a.md).
        masked = _INLINE_CODE.sub(lambda m: "`" + "x" * (len(m.group(0)) - 2) + "`", line)
        found += [m.group(1) for m in _LINK.finditer(masked)]
    return found


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading anchor of a page, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    result = set()
    for line in prose_lines(markdown):
        match = _HEADING.match(line)
        if not match:
            continue
        anchor = github_anchor(match.group(2))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        result.add(anchor if count == 0 else f"{anchor}-{count}")
    return result


def broken_links(page: Path) -> list[str]:
    problems = []
    text = page.read_text(encoding="utf-8")
    for target in links(text):
        if target.startswith(_EXTERNAL):
            continue
        path_part, _, fragment = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(REPO)}: ({target})"
        if not resolved.exists():
            shown = resolved.relative_to(REPO) if resolved.is_relative_to(REPO) else resolved
            problems.append(f"{where} points to a missing file {shown}")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved.read_text(encoding="utf-8")):
            problems.append(f"{where}: {resolved.name} has no heading with the anchor #{fragment}")
    return problems


def test_link_finder_and_anchor_rule():
    page = (
        'See [data](docs/data.md#the-voc-layout), ![pic](docs/x.png "title") and '
        "[`b.md`](b.md); `[B, H, W](not a link)` is code, [web](https://example.org).\n"
        "```\n[in a block](nope.md)\n```\n"
    )
    assert links(page) == ["docs/data.md#the-voc-layout", "docs/x.png", "b.md", "https://example.org"]
    assert github_anchor("Metrics (paper 1, eqs. 4-7)") == "metrics-paper-1-eqs-4-7"
    assert (
        github_anchor("The embedded synthetic data: `xray-seg synth`") == "the-embedded-synthetic-data-xray-seg-synth"
    )
    assert github_anchor("3. Check the data") == "3-check-the-data"
    assert anchors("# A\n## Notes\n```\n# not a heading\n```\n## Notes\n") == {"a", "notes", "notes-1"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    problems = broken_links(page)
    assert not problems, "\n".join(problems)


def test_readme_links_every_docs_page():
    """The front page's table reaches every page of the manual."""
    readme_links = {target.partition("#")[0] for target in links((REPO / "README.md").read_text(encoding="utf-8"))}
    pages = {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")}
    assert pages <= readme_links, f"docs pages the README does not link: {sorted(pages - readme_links)}"


def history_passages(markdown: str) -> list[str]:
    """Lines (code blocks included) that speak of rounds or issue numbers instead of today."""
    return [line.strip() for line in markdown.splitlines() if _HISTORY.search(line)]


def test_history_finder():
    page = "Today.\nThis Round we fixed it.\nSee issue #17 and Issue 20.\n```\nprevious round\n```\nissues page\n"
    assert history_passages(page) == ["This Round we fixed it.", "See issue #17 and Issue 20.", "previous round"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_pages_state_today(page):
    found = history_passages(page.read_text(encoding="utf-8"))
    assert not found, f"{page.relative_to(REPO)} dates itself (move the history to CHANGELOG.md): {found}"


def _layout_section() -> str:
    """The rows of the layout table (other lines of the section may name tests or scripts)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("\n## The layout", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("|"))


def test_architecture_lists_every_module_and_subpackage():
    section = _layout_section()
    named = set(re.findall(r"`([A-Za-z0-9_/]+\.py)`", section))
    modules = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" or path.parent == PACKAGE
    }
    commands = {m for m in modules if m.startswith("commands/")}  # one row covers the thin CLI modules
    missing = sorted(modules - commands - named)
    assert not missing, f"docs/architecture.md's layout table does not describe: {missing}"
    stale = sorted(m for m in named if not (PACKAGE / m).is_file())
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"
    subpackages = {
        str(path.parent.relative_to(PACKAGE)) for path in PACKAGE.rglob("__init__.py") if path.parent != PACKAGE
    }
    unnamed = sorted(
        p for p in subpackages if f"`{p}/`" not in section and not any(n.startswith(p + "/") for n in named)
    )
    assert not unnamed, f"docs/architecture.md's layout table does not name the subpackages: {unnamed}"
