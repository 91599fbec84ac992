"""The fenced blocks of README.md, CONTRIBUTING.md and docs/*.md, with the markers above them.

Every example in the docs runs as written, and nothing is skipped silently. A block's kind is its
language:

- ``sh`` and ``python``: examples; run in order, in one working directory per page
  (``tests/e2e/test_docs_examples.py``), the block's exit status must be 0 or the ``exit`` marker's;
- ``yaml``: a compose file; checked with ``luma-compose check`` and ``render`` (``tests/unit/test_docs.py``);
- ``text``: a synopsis (``luma-compose deploy [-f FILE]...``), not an example; its commands and
  options must exist all the same.

Markers are HTML comments on the lines right above the fence (GitHub does not show them):

- ``<!-- not run: REASON -->``: the block needs what a test machine does not have; REASON says what;
- ``<!-- file: PATH -->``: the block is the file PATH of the page's working directory, written
  before any later block of the page runs (``PATH`` relative, no ``..``);
- ``<!-- exit: N -->``: the block (a ``sh`` block, or ``check`` of a ``yaml`` one) exits with N.

Any other language, marker or a marker without its value is an error, not a skip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KINDS = {"sh", "python", "yaml", "text"}
MARKER_KEYS = {"not run", "file", "exit"}
_MARKER = re.compile(r"^<!--\s*([a-z ]+?)\s*:\s*(.*?)\s*-->\s*$")
_FENCE = re.compile(r"^```(.*)$")


def pages() -> list[Path]:
    """Every page whose examples must run: README, CONTRIBUTING and docs/*.md."""
    return [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]


def page_id(page: Path) -> str:
    return str(page.relative_to(REPO))


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    markers: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{page_id(self.page)}:{self.line}"

    @property
    def not_run(self) -> str | None:
        return self.markers.get("not run")

    @property
    def file(self) -> str | None:
        return self.markers.get("file")

    @property
    def exit(self) -> int:
        return int(self.markers.get("exit", "0"))


class DocError(AssertionError):
    pass


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, in order, each with the markers right above it."""
    lines = page.read_text().splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        if j == len(lines):
            raise DocError(f"{page_id(page)}:{start + 1}: a fence that is never closed")
        markers: dict[str, str] = {}
        k = start - 1
        while k >= 0 and lines[k].startswith("<!--"):
            mm = _MARKER.match(lines[k])
            if not mm or mm.group(1) not in MARKER_KEYS or not mm.group(2):
                raise DocError(f"{page_id(page)}:{k + 1}: not a marker of the form <!-- KEY: VALUE --> "
                               f"with KEY one of {sorted(MARKER_KEYS)}: {lines[k]!r}")
            markers[mm.group(1)] = mm.group(2)
            k -= 1
        out.append(Block(page, start + 1, m.group(1).strip(), "\n".join(lines[start + 1:j]) + "\n", markers))
        i = j + 1
    return out


def validate(block: Block) -> None:
    """Raise DocError when a block is of no known kind or its markers do not fit it."""
    if block.lang not in KINDS:
        raise DocError(f"{block.where}: a ```{block.lang} block: every block must be one of {sorted(KINDS)} "
                       "(text for a synopsis, or mark it <!-- not run: why -->)")
    if block.lang == "text" and block.markers:
        raise DocError(f"{block.where}: a text block (a synopsis) is never run: it takes no marker")
    if block.file is not None:
        p = Path(block.file)
        if p.is_absolute() or ".." in p.parts:
            raise DocError(f"{block.where}: file: {block.file} must be a relative path inside the page's directory")
    if "exit" in block.markers and not block.markers["exit"].isdigit():
        raise DocError(f"{block.where}: exit: {block.markers['exit']} is not a number")
    if block.not_run and ("exit" in block.markers or block.file):
        raise DocError(f"{block.where}: a block that is not run takes no other marker")


def all_blocks() -> list[Block]:
    out = []
    for p in pages():
        out += blocks(p)
    return out


def write_files(page: Path, directory: Path) -> None:
    """Write every ``file:`` block of a page under directory."""
    for b in blocks(page):
        if b.file and not b.not_run:
            target = directory / b.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(b.text)
